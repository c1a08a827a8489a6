// Bind addresses as users write them (`HOST:PORT`, `[IPV6]:PORT`, `unix:PATH`, `fd://N`), parsed
// into one shape the listener code works with.

import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';

export type BindAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly text: string }
  | { readonly kind: 'unix'; readonly path: string; readonly text: string }
  | { readonly kind: 'fd'; readonly fd: number; readonly text: string };

const DEFAULT_PORT = 8000;

function parsePort(text: string, raw: string): number {
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) throw new ConfigError(`bind: invalid port in ${JSON.stringify(text)}`);
  return Number(raw);
}

/** Parses one address; a relative unix socket path is taken from `cwd`. */
export function parseBind(text: string, cwd: string = process.cwd()): BindAddress {
  const t = text.trim();
  if (t.startsWith('unix:')) {
    const path = t.slice(5);
    if (!path) throw new ConfigError(`bind: ${JSON.stringify(text)} names no socket path`);
    return { kind: 'unix', path: resolve(cwd, path), text: `unix:${resolve(cwd, path)}` };
  }
  if (t.startsWith('fd://')) {
    const raw = t.slice(5);
    if (!/^\d+$/.test(raw) || Number(raw) < 3) throw new ConfigError(`bind: ${JSON.stringify(text)}: fd://N needs a descriptor number of 3 or more`);
    return { kind: 'fd', fd: Number(raw), text: `fd://${raw}` };
  }
  let host: string;
  let port = DEFAULT_PORT;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(t);
  if (v6) {
    host = v6[1]!;
    if (isIP(host) !== 6) throw new ConfigError(`bind: ${JSON.stringify(text)} is not an IPv6 address`);
    if (v6[2] !== undefined) port = parsePort(text, v6[2]);
  } else {
    const colon = t.lastIndexOf(':');
    if (colon >= 0 && t.indexOf(':') !== colon) {
      throw new ConfigError(`bind: write IPv6 addresses in brackets, like [::1]:8000 (got ${JSON.stringify(text)})`);
    }
    host = colon >= 0 ? t.slice(0, colon) : t;
    if (colon >= 0) port = parsePort(text, t.slice(colon + 1));
    if (host === '' || host === '*') host = '0.0.0.0';
    if (host === 'localhost') host = '127.0.0.1';
    if (isIP(host) !== 4) {
      throw new ConfigError(`bind: ${JSON.stringify(text)}: use a numeric address (127.0.0.1, 0.0.0.0, [::]), unix:PATH or fd://N`);
    }
  }
  const shown = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  return { kind: 'tcp', host, port, text: shown };
}

/** The address a socket's name (`127.0.0.1:8000`, `unix:/run/x.sock`) stands for, or null for other names. */
export function bindOf(name: string): BindAddress | null {
  try {
    return parseBind(name);
  } catch {
    return null;
  }
}
