// The `posix` addon (getpwnam, getgrnam, getrlimit, setrlimit), an optional dependency: where it
// could not be built (no compiler, Debian's nodejs without headers) callers fall back to getent(1)
// and /proc.

import { createRequire } from 'node:module';

interface PosixAddon {
  getpwnam(user: string | number): { name: string; uid: number; gid: number };
  getgrnam(group: string | number): { name: string; gid: number };
  getrlimit(resource: 'nofile'): { soft: number | null; hard: number | null };
  setrlimit(resource: 'nofile', limits: { soft?: number | null; hard?: number | null }): void;
}

/** The addon, or null when it is not installed. */
export function posixAddon(): PosixAddon | null {
  try {
    return createRequire(import.meta.url)('posix') as PosixAddon;
  } catch {
    return null;
  }
}

