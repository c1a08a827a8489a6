// Test hosts of our own: each a network namespace this test creates, joined to this one by a veth
// pair with an address of its own (10.231.N.2, this side 10.231.N.1), so that a balancer here
// reaches each host over a network and the hosts reach nothing else. Deleted at the test's
// teardown (deleting a namespace deletes its end of the veth, and with it the pair).

import { execFileSync, spawnSync } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { alive } from './proc.js';

/** Why network namespaces cannot be made here, or null. */
export function lacksNetns(): string | null {
  if (process.getuid?.() !== 0) return 'not root (ip netns)';
  return spawnSync('ip', ['-V'], { stdio: 'ignore' }).status === 0 ? null : 'no ip(8) (apt-get install iproute2)';
}

export interface Host {
  /** The namespace's name (ip netns exec NAME ...). */
  readonly ns: string;
  /** The host's address, reachable from this namespace. */
  readonly address: string;
  /** Runs a command in the host: the prefix for a Daemon (see DaemonOptions.prefix). */
  readonly prefix: readonly string[];
}

const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'pipe' }); };

const PREFIX = 'tsg-fleet-';

/**
 * Deletes the namespaces a test process that is gone left behind (killed before its teardown):
 * their veth ends keep this side's 10.231.N.1 address, and the kernel would route a new host's
 * traffic to the dead one.
 */
function deleteStale(): void {
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!);
  for (const name of names.filter((n) => n.startsWith(PREFIX))) {
    const owner = /^tsg-fleet-(\d+)-\d+$/.exec(name)?.[1];
    if (owner === undefined || !alive(Number(owner))) spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  }
}

/** Creates host number `n` (1..250) for this test. */
export function createHost(t: ExecutionContext, n: number): Host {
  deleteStale();
  // A deleted namespace's veth goes a moment later; one still holding this host's address goes now.
  const holder = execFileSync('ip', ['-o', 'addr', 'show', 'to', `10.231.${n}.1/32`], { encoding: 'utf8' }).split(' ')[1]?.split('@')[0];
  if (holder?.startsWith('tsgf')) spawnSync('ip', ['link', 'del', holder], { stdio: 'ignore' });
  const ns = `${PREFIX}${process.pid}-${n}`;
  // An interface name has at most 15 characters: 4 + a pid (at most 7 digits) + 1 + n (at most 3).
  const outside = `tsgf${process.pid}-${n}`;
  t.teardown(() => { spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); });
  ip('netns', 'add', ns);
  ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  ip('addr', 'add', `10.231.${n}.1/30`, 'dev', outside);
  ip('link', 'set', outside, 'up');
  ip('-n', ns, 'addr', 'add', `10.231.${n}.2/30`, 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  return { ns, address: `10.231.${n}.2`, prefix: ['ip', 'netns', 'exec', ns] };
}
