// Who the workers run as, resolved in the master before anything starts: unknown users or groups,
// and identities the master cannot start workers as, are a configuration error (exit 2). Lookups
// use the `posix` addon (getpwnam/getgrnam); where it could not be built, getent(1) answers the
// same questions from the same NSS databases.

import { execFileSync } from 'node:child_process';
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { WORKER_MAIN } from '../core/program.js';
import { ConfigError } from '../core/errors.js';
import { posixAddon } from '../core/posix.js';

export interface Identity {
  readonly uid: number;
  readonly gid: number;
}

const asKey = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);

function getent(db: 'passwd' | 'group', key: string): string[] | null {
  try {
    return execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(':');
  } catch {
    return null;
  }
}

function lookupUser(user: string): { name: string | null; uid: number; gid: number } {
  const posix = posixAddon();
  if (posix) {
    try {
      return posix.getpwnam(asKey(user));
    } catch {
      if (/^\d+$/.test(user)) return { name: null, uid: Number(user), gid: Number(user) };
      throw new ConfigError(`user: no such user ${JSON.stringify(user)}`);
    }
  }
  const row = getent('passwd', user);
  if (row) return { name: row[0]!, uid: Number(row[2]), gid: Number(row[3]) };
  if (/^\d+$/.test(user)) return { name: null, uid: Number(user), gid: Number(user) };
  throw new ConfigError(`user: no such user ${JSON.stringify(user)}`);
}

function lookupGroup(group: string): number {
  const posix = posixAddon();
  if (posix) {
    try {
      return posix.getgrnam(asKey(group)).gid;
    } catch {
      if (/^\d+$/.test(group)) return Number(group);
      throw new ConfigError(`group: no such group ${JSON.stringify(group)}`);
    }
  }
  const row = getent('group', group);
  if (row) return Number(row[2]);
  if (/^\d+$/.test(group)) return Number(group);
  throw new ConfigError(`group: no such group ${JSON.stringify(group)}`);
}

/**
 * setpriv(1) from util-linux (Essential on Debian), which starts workers with the user's
 * supplementary groups: spawn() itself can only clear them. Only absolute PATH entries are
 * searched, as the master running as root must not run a setpriv from the working directory.
 */
export function setpriv(): string {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    if (!isAbsolute(dir)) continue;
    const file = join(dir, 'setpriv');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not in this directory */
    }
  }
  throw new ConfigError('initgroups needs setpriv(1), which is not installed: apt-get install util-linux');
}

/**
 * The workers' identity, or null to keep the master's (none set, or the master's own uid and gid).
 * Throws ConfigError for unknown names and for what the master cannot start workers as: another
 * identity unless it is root, initgroups without a user name or without setpriv.
 */
export function resolveIdentity(s: { user: string | null; group: string | null; initgroups: boolean }): Identity | null {
  if (s.user === null && s.group === null) return null;
  const u = lookupUser(s.user ?? String(process.getuid!()));
  const gid = s.group !== null ? lookupGroup(s.group) : u.gid;
  if (u.uid === process.getuid!() && gid === process.getgid!()) return null;
  if (process.getuid!() !== 0) {
    const setting = u.uid !== process.getuid!() || s.group === null ? 'user' : 'group';
    const value = setting === 'user' ? s.user : s.group;
    throw new ConfigError(`${setting}: workers can run as ${JSON.stringify(value)} only when the master runs as root (it runs as uid ${process.getuid!()}); start tsgunicorn as root, or unset ${setting}`);
  }
  if (s.initgroups) {
    // setpriv --init-groups finds the groups by the uid's passwd name.
    if (u.name === null) throw new ConfigError(`initgroups: uid ${u.uid} has no user name, and initgroups(3) needs one; name a user in passwd or turn initgroups off`);
    setpriv();
  }
  const id = { uid: u.uid, gid };
  // Workers are that user from exec on: node and tsgunicorn must be theirs to run (not under /root).
  for (const [file, what] of [[process.execPath, 'x'], [WORKER_MAIN, 'r']] as const) {
    const denied = deniedTo(file, what, id);
    if (denied && !s.initgroups) {
      throw new ConfigError(`user: workers run as uid ${id.uid}, which cannot ${what === 'x' ? 'run' : 'read'} ${file} (${denied}); install Node.js and tsgunicorn where that user can reach them`);
    }
  }
  return id;
}

/**
 * Why `id` (without supplementary groups) may not reach `file` for `what` (read or execute),
 * or null: the owner, group or other bits of the file and of every directory above it.
 */
function deniedTo(file: string, what: 'r' | 'x', id: { uid: number; gid: number }): string | null {
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    return null;
  }
  const dirs = new Set<string>();
  for (const p of [file, real]) for (let d = dirname(p); !dirs.has(d); d = dirname(d)) dirs.add(d);
  const checks: [string, number][] = [...[...dirs].map((d): [string, number] => [d, 1]), [real, what === 'x' ? 1 : 4]];
  for (const [path, bit] of checks) {
    let st;
    try {
      st = statSync(path);
    } catch {
      return null;
    }
    const shift = st.uid === id.uid ? 6 : st.gid === id.gid ? 3 : 0;
    if (((st.mode >> shift) & bit) === 0) return `${path} is mode ${(st.mode & 0o777).toString(8)}`;
  }
  return null;
}
