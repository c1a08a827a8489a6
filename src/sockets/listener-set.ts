// All the master's listeners, and which descriptors each worker gets. Shared listeners go to every
// worker. With reuse_port, each TCP bind has one SO_REUSEPORT socket per worker slot (the kernel
// balances connections between them); a replacement worker takes over its slot's socket, so no
// socket is left with queued connections and nobody accepting. A slot's socket is closed only
// when no worker is left to take it (fewer workers), and survives USR2: the new master gets each
// slot's sockets back as its own slots.

import { fstatSync, readFileSync } from 'node:fs';
import { parseBind, type BindAddress } from './address.js';
import { listenWithoutAccepting } from './listen-now.js';
import { bindAddress, type BindOptions, type Listener } from './listeners.js';

/** A listener as handed to a new master: its worker slot, or null for a shared one. */
export interface Handover {
  readonly listener: Listener;
  readonly slot: number | null;
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

export class ListenerSet {
  /** Each slot's reuse-port sockets, in `perSlot` order. */
  private readonly slots = new Map<number, Listener[]>();

  private constructor(
    readonly shared: readonly Listener[],
    private readonly perSlot: readonly BindAddress[],
    private readonly opts: BindOptions,
    slots: ReadonlyMap<number, Listener[]>,
  ) {
    for (const [slot, ls] of slots) this.slots.set(slot, ls);
  }

  static async open(addrs: readonly BindAddress[], reusePort: boolean, umask: number, backlog: number): Promise<ListenerSet> {
    const opts: BindOptions = { umask, checkInUse: true };
    const shared: Listener[] = [];
    const perSlot: BindAddress[] = [];
    // Slot 0's reuse-port sockets are bound up front, so that bind errors show at start.
    const first: Listener[] = [];
    try {
      for (const addr of addrs) {
        const l = await bindAddress(addr, opts);
        if (reusePort && addr.kind === 'tcp') { perSlot.push(addr); first.push(l); } else shared.push(l);
      }
      listenWithoutAccepting([...shared, ...first].filter((l) => l.kind !== 'fd').map((l) => l.fd), backlog);
    } catch (err) {
      for (const l of [...shared, ...first]) l.close();
      throw err;
    }
    return new ListenerSet(shared, perSlot, { umask, checkInUse: false }, new Map(perSlot.length > 0 ? [[0, first]] : []));
  }

  /**
   * Adopts listeners the master was given (systemd socket activation, an upgrading master). With
   * `reusePort`, the per-slot sockets of an upgrading master's reuse-port binds stay per slot
   * (renumbered from 0, more bound when there are more workers); otherwise every listener is shared.
   */
  static adopt(given: readonly Handover[], reusePort: boolean, umask: number): ListenerSet {
    const own = given.filter((h) => reusePort && h.slot !== null);
    const perSlot = [...new Set(own.map((h) => h.listener.name))].map(parseBind);
    const numbers = [...new Set(own.map((h) => h.slot!))].sort((a, b) => a - b);
    const slots = new Map<number, Listener[]>();
    for (const h of own) {
      const slot = numbers.indexOf(h.slot!);
      slots.set(slot, [...(slots.get(slot) ?? []), h.listener]);
    }
    const shared = given.filter((h) => !own.includes(h)).map((h) => h.listener);
    return new ListenerSet(shared, perSlot, { umask, checkInUse: false }, slots);
  }

  /** Descriptors for the worker in `slot`. */
  async fdsFor(slot: number): Promise<number[]> {
    if (this.perSlot.length === 0) return this.shared.map((l) => l.fd);
    const had = this.slots.get(slot) ?? [];
    const own: Listener[] = [];
    for (const addr of this.perSlot) {
      // No early listen() here: a reuse-port socket joins the kernel's group (and gets connections)
      // only once its worker listens, so nothing is refused while that worker boots.
      own.push(had.find((l) => l.name === addr.text) ?? await bindAddress(addr, this.opts));
    }
    this.slots.set(slot, own);
    return [...this.shared, ...own].map((l) => l.fd);
  }

  /**
   * Closes the sockets of the slots from `target` up that no worker in `inUse` takes (slot 0 stays,
   * like a shared socket, so connections queue while there are no workers). Called as soon as such
   * a slot's worker starts draining: it stops accepting then, and a socket nobody accepts on must
   * not keep getting its share of new connections. Returns how many slots it closed.
   */
  closeUnusedSlots(inUse: ReadonlySet<number>, target: number): number {
    let closed = 0;
    for (const [slot, ls] of this.slots) {
      if (slot > 0 && slot >= target && !inUse.has(slot)) {
        for (const l of ls) l.close();
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

  /** What a person reads: each address once. */
  describe(): string {
    const slot0 = this.slots.get(0) ?? [];
    return [...this.shared.map((l) => (l.name === l.text ? l.text : `${l.name} (${l.text})`)), ...slot0.map((l) => `${l.name} (reuse-port)`)].join(', ');
  }

  /** `removePaths: false` when handing the sockets to a new master. */
  close(removePaths = true): void {
    for (const l of this.all) l.close(removePaths);
  }
}
