// The PROXY protocol (proxy_protocol, proxy_allow_ips), versions 1 and 2, as HAProxy, AWS NLB and
// nginx's `proxy_protocol on` send it: the first bytes of each connection name the client the
// balancer accepted. The worker reads them before the HTTP parser sees the connection, and from
// then on the socket's remoteAddress, remotePort and remoteFamily are the client's, for the app,
// the access log and forwarded_allow_ips alike. A connection from a peer not allowed to send one,
// or whose header is malformed or late (header_timeout), is closed, and counted.
// The format: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { allowsPeer, keepTransportPeer, type AllowList } from '../sockets/allow-list.js';
import { judgeFirstBytes, routeConnections } from './first-bytes.js';

export interface ProxySource {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** A whole header: its length in bytes, and the client it names (null: LOCAL or UNKNOWN, the connection's own). */
export interface ProxyHeader {
  readonly length: number;
  readonly source: ProxySource | null;
}

export interface ProxyError {
  readonly error: string;
}

const V1_PREFIX = Buffer.from('PROXY ');
/** v1: at most 107 bytes, CRLF included. */
const V1_MAX = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_HEAD = 16;
const PORT = /^(0|[1-9][0-9]{0,4})$/;

/** Whether `buf` is the start of `prefix` (or `prefix` the start of `buf`). */
function agrees(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

function port(text: string | undefined): number | null {
  if (text === undefined || !PORT.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

function parseV1(buf: Buffer): ProxyHeader | 'incomplete' | ProxyError {
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= V1_MAX ? { error: 'PROXY v1 header longer than 107 bytes' } : 'incomplete';
  if (end + 2 > V1_MAX) return { error: 'PROXY v1 header longer than 107 bytes' };
  const fields = buf.toString('latin1', 0, end).split(' ');
  const length = end + 2;
  if (fields[1] === 'UNKNOWN') return { length, source: null };
  if (fields.length !== 6 || (fields[1] !== 'TCP4' && fields[1] !== 'TCP6')) return { error: 'malformed PROXY v1 header' };
  const family = fields[1] === 'TCP4' ? 'IPv4' : 'IPv6';
  const valid = family === 'IPv4' ? isIPv4 : isIPv6;
  const [src, dst, sport, dport] = [fields[2]!, fields[3]!, port(fields[4]), port(fields[5])];
  if (!valid(src) || !valid(dst) || sport === null || dport === null) return { error: 'malformed PROXY v1 header' };
  return { length, source: { address: src, port: sport, family } };
}

/** The 16 bytes at `at` as an IPv6 address in its canonical text form (RFC 5952, as Node writes them). */
function ipv6(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + 2 * i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function parseV2(buf: Buffer): ProxyHeader | 'incomplete' | ProxyError {
  if (buf.length < V2_HEAD) return 'incomplete';
  const verCmd = buf[12]!;
  const famProto = buf[13]!;
  const length = V2_HEAD + buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return { error: 'unknown PROXY protocol version' };
  const command = verCmd & 0x0f;
  if (command > 1) return { error: 'unknown PROXY v2 command' };
  if (buf.length < length) return 'incomplete';
  // LOCAL (a balancer's own health check), or a family we do not map: the connection's own address.
  if (command === 0) return { length, source: null };
  const family = famProto >> 4;
  const need = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (family > 3 || (famProto & 0x0f) > 2) return { error: 'unknown PROXY v2 address family' };
  if (length - V2_HEAD < need) return { error: 'PROXY v2 address block too short' };
  if (family === 1) {
    const address = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
    return { length, source: { address, port: buf.readUInt16BE(24), family: 'IPv4' } };
  }
  if (family === 2) return { length, source: { address: ipv6(buf, 16), port: buf.readUInt16BE(48), family: 'IPv6' } };
  return { length, source: null };
}

/**
 * Parses the PROXY header at the start of `buf`: the header, 'incomplete' (more bytes needed),
 * or why it is not one. Never throws.
 */
export function parseProxyHeader(buf: Buffer): ProxyHeader | 'incomplete' | ProxyError {
  if (buf.length === 0) return 'incomplete';
  if (agrees(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? 'incomplete' : parseV1(buf);
  if (agrees(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? 'incomplete' : parseV2(buf);
  return { error: 'no PROXY protocol header' };
}

/** Why a connection was closed before HTTP: a few kinds, for a metric's label. */
export type ProxyRejection = 'peer' | 'malformed' | 'timeout';

/**
 * Makes `server` read a PROXY header on each connection before its HTTP parser does. `rejected`
 * hears each connection closed, with the kind and what was wrong.
 */
export function acceptProxyProtocol(server: Server, allow: AllowList, timeoutMs: number, rejected: (kind: ProxyRejection, why: string) => void): void {
  const reject = (socket: Socket, kind: ProxyRejection, why: string): void => {
    rejected(kind, `${why} (from ${socket.remoteAddress})`);
    socket.destroy();
  };
  const judge = (buf: Buffer): ProxyHeader | ProxyError | undefined => {
    const header = parseProxyHeader(buf);
    return header === 'incomplete' ? undefined : header;
  };
  routeConnections(server, 'connection', (socket, next) => {
    if (!allowsPeer(allow, socket)) return reject(socket, 'peer', 'peer not in proxy_allow_ips');
    judgeFirstBytes(socket, timeoutMs, judge, (header, buf) => {
      if ('error' in header) return reject(socket, 'malformed', header.error);
      if (header.source) {
        keepTransportPeer(socket);
        const { address, port, family } = header.source;
        Object.defineProperties(socket, { remoteAddress: { value: address }, remotePort: { value: port }, remoteFamily: { value: family } });
      }
      if (buf.length > header.length) socket.unshift(buf.subarray(header.length));
      next(socket);
      socket.resume();
    }, () => reject(socket, 'timeout', 'no PROXY header within header_timeout'));
  });
}
