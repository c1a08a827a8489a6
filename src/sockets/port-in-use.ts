// Finds another socket already listening on a TCP address. Our listeners carry SO_REUSEPORT, which
// would let a second server (or a second tsgunicorn) share the port silently; the kernel's own
// table of listening sockets tells us before we bind.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

const TCP_LISTEN = '0A';

/** The kernel writes addresses as 32-bit words in host (little-endian) order. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const isV4Mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isV4Mapped) return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || addr === '0:0:0:0:0:0:0:0';
}

function listening(file: string): { address: string; port: number }[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: { address: string; port: number }[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || cols[3] !== TCP_LISTEN) continue;
    const [addr, port] = cols[1]!.split(':');
    out.push({ address: decodeAddress(addr!), port: parseInt(port!, 16) });
  }
  return out;
}

/** True when some socket already listens on host:port (or a wildcard covering it). */
export function tcpAddressInUse(host: string, port: number): boolean {
  if (port === 0) return false;
  const files = isIP(host) === 4 ? ['/proc/net/tcp', '/proc/net/tcp6'] : ['/proc/net/tcp6', '/proc/net/tcp'];
  return files.some((file) =>
    listening(file).some((l) => l.port === port && (l.address === host || isWildcard(l.address) || isWildcard(host))),
  );
}
