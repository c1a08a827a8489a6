// All the master's listeners, and which descriptors each worker gets. Shared listeners go to every
// worker. With reuse_port, each TCP bind has one SO_REUSEPORT socket per worker slot (the kernel
// balances connections between them); a replacement worker takes over its slot's socket, so no
// socket is left with queued connections and nobody accepting. A slot's socket is closed only
// when no worker is left to take it (fewer workers), and survives USR2: the new master gets each
// slot's sockets back as its own slots.

import { fstatSync, readFileSync } from 'node:fs';
import { parseBind, type BindAddress } from './address.js';
import { listenWithoutAccepting } from './listen-now.js';
import { bindAddress, bindTcp, type BindOptions, type Listener } from './listeners.js';

/** A listener as handed to a new master: its worker slot, or null for a shared one. */
export interface Handover {
  readonly listener: Listener;
  readonly slot: number | null;
}

/** Told of each socket a set binds or closes after it was made (reuse-port slots come and go). */
export interface ListenerWatcher {
  bound(h: Handover): void;
  closed(h: Handover): void;
}

/**
 * Whether the kernel moves the connections queued on a closing SO_REUSEPORT socket to another
 * socket of its group (net.ipv4.tcp_migrate_req, Linux 5.14+; off by default). Without it they
 * are reset.
 */
export function kernelMigratesQueued(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

type TcpAddress = Extract<BindAddress, { kind: 'tcp' }>;

export class ListenerSet {
  /** Each slot's reuse-port sockets, one per address of `perSlot`. */
  private readonly slots = new Map<number, Listener[]>();

  private constructor(
    readonly shared: readonly Listener[],
    private readonly perSlot: readonly TcpAddress[],
    slots: ReadonlyMap<number, Listener[]>,
  ) {
    for (const [slot, ls] of slots) this.slots.set(slot, ls);
  }

  /**
   * Binds `addrs`, except those found in `kept` (sockets of an earlier master, by address, kept
   * for us by systemd's file descriptor store): those are used as they are, with their slots.
   */
  static async open(addrs: readonly BindAddress[], reusePort: boolean, umask: number, backlog: number, kept: ReadonlyMap<string, readonly Handover[]> = new Map()): Promise<ListenerSet> {
    const opts: BindOptions = { umask, checkInUse: true };
    const shared: Listener[] = [];
    const perSlot: TcpAddress[] = [];
    const slots = new Map<number, Listener[]>();
    const fresh: Listener[] = [];
    try {
      for (const addr of addrs) {
        const given = kept.get(addr.text);
        const slotted = reusePort && addr.kind === 'tcp';
        if (slotted) perSlot.push(addr);
        if (given) {
          if (!slotted) { shared.push(given[0]!.listener); continue; }
          const numbers = [...new Set(given.map((h) => h.slot!))].sort((a, b) => a - b);
          for (const h of given) slots.set(numbers.indexOf(h.slot!), [...(slots.get(numbers.indexOf(h.slot!)) ?? []), h.listener]);
          continue;
        }
        // Slot 0's reuse-port sockets are bound up front, so that bind errors show at start.
        const l = await bindAddress(addr, opts);
        fresh.push(l);
        if (slotted) slots.set(0, [...(slots.get(0) ?? []), l]);
        else shared.push(l);
      }
      listenWithoutAccepting(fresh.map((l) => l.fd), backlog);
    } catch (err) {
      for (const l of fresh) l.close();
      throw err;
    }
    return new ListenerSet(shared, perSlot, slots);
  }

  /**
   * Adopts listeners the master was given (systemd socket activation, an upgrading master). The
   * per-slot sockets of an upgrading master's reuse-port binds stay per slot, renumbered from 0
   * (more are bound when there are more workers): the layout of the sockets, like `bind`, changes
   * only with a restart.
   */
  static adopt(given: readonly Handover[]): ListenerSet {
    const own = given.filter((h) => h.slot !== null);
    const perSlot = [...new Set(own.map((h) => h.listener.name))].map((name) => parseBind(name)).filter((a): a is TcpAddress => a.kind === 'tcp');
    const numbers = [...new Set(own.map((h) => h.slot!))].sort((a, b) => a - b);
    const slots = new Map<number, Listener[]>();
    for (const h of own) {
      const slot = numbers.indexOf(h.slot!);
      slots.set(slot, [...(slots.get(slot) ?? []), h.listener]);
    }
    return new ListenerSet(given.filter((h) => h.slot === null).map((h) => h.listener), perSlot, slots);
  }

  private watcher: ListenerWatcher | null = null;

  /** From now on, tells `w` of the reuse-port sockets bound and closed as workers come and go. */
  watch(w: ListenerWatcher): void {
    this.watcher = w;
  }

  /** Whether TCP binds have a socket per worker slot (reuse_port). */
  get perWorker(): boolean {
    return this.perSlot.length > 0;
  }

  /**
   * Descriptors for the worker in `slot`, binding the slot's sockets it does not have yet. Each
   * is recorded as it is made (nothing runs in between), so that every worker started from now
   * on knows to close its inherited copy.
   */
  fdsFor(slot: number): number[] {
    if (!this.perWorker) return this.shared.map((l) => l.fd);
    const own = this.slots.get(slot) ?? [];
    this.slots.set(slot, own);
    for (const addr of this.perSlot) {
      // No early listen() here: a reuse-port socket joins the kernel's group (and gets connections)
      // only once its worker listens, so nothing is refused while that worker boots.
      if (own.some((l) => l.name === addr.text)) continue;
      const listener = bindTcp(addr, false);
      own.push(listener);
      this.watcher?.bound({ listener, slot });
    }
    return [...this.shared, ...own].map((l) => l.fd);
  }

  /**
   * Closes the sockets of the slots not in `keep` (slot 0 stays, like a shared socket, so that
   * connections queue while there are no workers). A slot's worker stops accepting when it starts
   * draining, and a socket nobody accepts on must not keep getting its share of new connections.
   * Returns how many slots it closed.
   */
  closeSlotsExcept(keep: ReadonlySet<number>): number {
    let closed = 0;
    for (const [slot, ls] of this.slots) {
      if (slot > 0 && !keep.has(slot)) {
        for (const l of ls) { l.close(); this.watcher?.closed({ listener: l, slot }); }
        this.slots.delete(slot);
        closed++;
      }
    }
    return closed;
  }

  get all(): Listener[] {
    return this.handover().map((h) => h.listener);
  }

  /** Every listener with its slot, for a new master (USR2). */
  handover(): Handover[] {
    const perSlot = [...this.slots].sort(([a], [b]) => a - b).flatMap(([slot, ls]) => ls.map((listener) => ({ listener, slot })));
    return [...this.shared.map((listener) => ({ listener, slot: null })), ...perSlot];
  }

  /** The sockets' inode numbers: a worker closes the copies of these it inherited by accident. */
  inodes(): string[] {
    return this.all.map((l) => String(fstatSync(l.fd, { bigint: true }).ino));
  }

  /** What a person reads: each socket as it was bound (or named by systemd), each address once. */
  describe(): string[] {
    const slot0 = this.slots.get(0) ?? [];
    return [...this.shared.map((l) => l.label), ...slot0.map((l) => `${l.label} (reuse-port)`)];
  }

  /**
   * Closes every descriptor. At a final stop (`final`), the paths of our unix sockets go too, where
   * no other master still serves on them; never when handing the sockets over.
   */
  close(final: boolean): void {
    for (const l of this.all) {
      if (final) l.removeOwnPath();
      l.close();
    }
  }
}
