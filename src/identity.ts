// Who the workers run as, resolved in the master before anything starts: unknown users or groups
// are a configuration error (exit 2). Lookups use the `posix` addon (getpwnam/getgrnam); where it
// could not be built, getent(1) answers the same questions from the same NSS databases.

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ConfigError } from './errors.js';

export interface Identity {
  readonly uid: number;
  readonly gid: number;
  /** The user name, for initgroups(3); null when only a uid was given and it has no name. */
  readonly user: string | null;
}

interface PosixAddon {
  getpwnam(user: string | number): { name: string; uid: number; gid: number };
  getgrnam(group: string | number): { name: string; gid: number };
  getrlimit(resource: 'nofile'): { soft: number | null; hard: number | null };
  setrlimit(resource: 'nofile', limits: { soft?: number | null; hard?: number | null }): void;
  setuid(uid: number): void;
  setgid(gid: number): void;
  initgroups(user: string, gid: number): void;
}

export function posixAddon(): PosixAddon | null {
  try {
    return createRequire(import.meta.url)('posix') as PosixAddon;
  } catch {
    return null;
  }
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

/** The workers' identity, or null to keep the master's. Throws ConfigError for unknown names. */
export function resolveIdentity(s: { user: string | null; group: string | null }): Identity | null {
  if (s.user === null && s.group === null) return null;
  const u = s.user !== null ? lookupUser(s.user) : { name: null, uid: process.getuid!(), gid: process.getgid!() };
  const gid = s.group !== null ? lookupGroup(s.group) : u.gid;
  return { uid: u.uid, gid, user: u.name };
}
