// All the master's listeners, and which descriptors each worker gets. Shared listeners go to every
// worker. With reuse_port, each TCP bind has one SO_REUSEPORT socket per worker slot (the kernel
// balances connections between them); a replacement worker takes over its slot's socket, so no
// socket is left with queued connections and nobody accepting.

import type { BindAddress } from './address.js';
import { listenWithoutAccepting } from './listen-now.js';
import { bindAddress, type BindOptions, type Listener } from './listeners.js';

export class ListenerSet {
  private readonly slots = new Map<number, Listener[]>();

  private constructor(
    readonly shared: readonly Listener[],
    private readonly perSlot: readonly BindAddress[],
    private readonly opts: BindOptions,
    /** Slot 0's reuse-port sockets, bound up front so bind errors show at start. */
    first: Listener[],
  ) {
    if (perSlot.length > 0) this.slots.set(0, first);
  }

  static async open(addrs: readonly BindAddress[], reusePort: boolean, umask: number, backlog: number): Promise<ListenerSet> {
    const opts: BindOptions = { umask, checkInUse: true };
    const shared: Listener[] = [];
    const perSlot: BindAddress[] = [];
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
    return new ListenerSet(shared, perSlot, { umask, checkInUse: false }, first);
  }

  /** Adopts listeners the master was given (systemd socket activation, an upgrading master). */
  static adopt(listeners: readonly Listener[]): ListenerSet {
    return new ListenerSet(listeners, [], { umask: 0o022, checkInUse: false }, []);
  }

  /** Descriptors for the worker in `slot`. */
  async fdsFor(slot: number): Promise<number[]> {
    let own = this.slots.get(slot);
    if (!own) {
      own = [];
      // No early listen() here: a reuse-port socket joins the kernel's group (and gets connections)
      // only once its worker listens, so nothing is refused while that worker boots.
      for (const addr of this.perSlot) own.push(await bindAddress(addr, this.opts));
      this.slots.set(slot, own);
    }
    return [...this.shared, ...own].map((l) => l.fd);
  }

  /** Closes the per-slot sockets of slots >= n (after the worker count went down). */
  closeSlotsFrom(n: number): void {
    for (const [slot, ls] of this.slots) {
      if (slot >= n && slot > 0) { for (const l of ls) l.close(); this.slots.delete(slot); }
    }
  }

  get all(): Listener[] {
    return [...this.shared, ...[...this.slots.values()].flat()];
  }

  /** What a person reads: each address once. */
  describe(): string {
    return [...this.shared.map((l) => (l.name === l.text ? l.text : `${l.name} (${l.text})`)), ...(this.slots.get(0) ?? []).map((l) => `${l.text} (reuse-port)`)].join(', ');
  }

  /** `removePaths: false` when handing the sockets to a new master. */
  close(removePaths = true): void {
    for (const l of this.all) l.close(removePaths);
  }
}
