// Tests that need something a machine may not have: a systemd tool, a native addon that needs
// build tools, root. On a developer's machine without it (`npm ci && npm test` on a bare Debian,
// as the README's quick start has it), such a test is skipped with what is missing in its title;
// in CI (CI set, as .ci/run does) it is not skipped but fails saying what is missing, so that
// nothing goes untested there.

import test, { type ImplementationFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ROOT } from './daemon.js';

const require = createRequire(`${ROOT}/package.json`);

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function loads(module: string): boolean {
  try {
    require(module);
    return true;
  } catch {
    return false;
  }
}

/** Why socket activation cannot be tested here, or null. */
export function lacksSocketActivate(): string | null {
  return hasCommand('systemd-socket-activate') ? null : 'no systemd-socket-activate (apt-get install systemd)';
}

/** Why listening sockets' backlogs cannot be read here (ss(8) reads them from the kernel), or null. */
export function lacksSs(): string | null {
  return hasCommand('ss') ? null : 'no ss (apt-get install iproute2)';
}

/** Why sd_notify cannot be tested here (the addon, and Python for the receiving end), or null. */
export function lacksNotify(): string | null {
  if (!loads('sd-notify')) return 'no sd-notify addon (apt-get install libsystemd-dev build-essential python3, then npm rebuild sd-notify)';
  return hasCommand('python3') ? null : 'no python3 (the NOTIFY_SOCKET receiver)';
}

/** Why workers cannot be started as another user here (root; setpriv(1) for initgroups), or null. */
export function lacksUserSwitch(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  return hasCommand('setpriv') ? null : 'no setpriv (apt-get install util-linux)';
}

/**
 * Defines the tests of `define` where nothing is missing (`lacking` null); otherwise one test
 * `title`, skipped with the reason, or, in CI, failing with it.
 */
export function needing(lacking: string | null, title: string, define: () => void): void {
  if (lacking === null) define();
  else if (process.env['CI']) test(title, (t) => { t.fail(`cannot run in CI: ${lacking}; .ci/run must install it`); });
  else test.skip(`${title} (skipped: ${lacking})`, () => { /* skipped */ });
}

/** One serial test that needs what `lacking` says is missing (null: nothing). */
export function serialNeeding(lacking: string | null, title: string, impl: ImplementationFn<[]>): void {
  needing(lacking, title, () => test.serial(title, impl));
}

/**
 * A node binary of another major version than this one (TSG_NODES, a colon-separated list .ci/run
 * sets, then the `node`s in PATH), or null: what a Node upgrade across an ABI looks like.
 */
export function otherMajorNode(): string | null {
  const major = process.versions.node.split('.')[0];
  const candidates = [...(process.env['TSG_NODES'] ?? '').split(':'), ...(process.env['PATH'] ?? '').split(':').map((d) => `${d}/node`)];
  for (const file of candidates.filter(Boolean)) {
    const r = spawnSync(file, ['-p', 'process.versions.node'], { encoding: 'utf8', env: {} });
    if (r.status === 0 && r.stdout.trim().split('.')[0] !== major) return file;
  }
  return null;
}
