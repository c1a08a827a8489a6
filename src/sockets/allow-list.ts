// Which peers may speak for a client: Gunicorn's `forwarded_allow_ips` and `proxy_allow_ips`, a
// comma-separated list of addresses and networks (`127.0.0.1,::1,10.0.0.0/8`), or `*` for any.
// Matching is Node's own BlockList; an IPv4 peer seen on an IPv6 socket (`::ffff:10.0.0.1`)
// matches its IPv4 entries.

import { BlockList, isIP, type Server as NetServer, type Socket } from 'node:net';
import { ConfigError } from '../core/errors.js';

export interface AllowList {
  /** Whether `address` is on the list (an address that is not there, undefined, is not). */
  allows(address: string | undefined): boolean;
}

const ANY: AllowList = { allows: () => true };

const kLocal = Symbol('tsgunicorn.localPeer');
const kTransport = Symbol('tsgunicorn.transportPeer');
/** A connection as the allow lists judge it. */
type Peer = Pick<Socket, 'remoteAddress'> & { [kLocal]?: true; [kTransport]?: string };

/**
 * Marks the connections `server` accepts as local when it listens on a unix socket: such a peer
 * is trusted, as in Gunicorn (who may connect is up to the socket file's permissions). Decided by
 * the listener, not by a missing remoteAddress, which a TCP peer that has reset also has.
 */
export function markLocalPeers(server: NetServer): void {
  let unix: boolean | undefined;
  server.prependListener('connection', (socket: Socket) => {
    // A listening pipe says its path, or null when it was inherited by descriptor (as a
    // worker's are); a TCP listener says its address and port.
    if (unix === undefined) {
      const address = server.address();
      unix = address === null || typeof address === 'string';
    }
    if (unix) (socket as Peer)[kLocal] = true;
  });
}

/** Whether the peer of `socket` (a connection, or HTTP/2's proxy of one) is local or on `list`. */
export function allowsPeer(list: AllowList, socket: Peer): boolean {
  return socket[kLocal] === true || list.allows(socket.remoteAddress);
}

/** Keeps the address a connection came from before the PROXY protocol named its client. */
export function keepTransportPeer(socket: Socket): void {
  (socket as Peer)[kTransport] = socket.remoteAddress;
}

/** Whether the peer that `socket`'s own transport came from (the proxy, under the PROXY protocol) is local or on `list`. */
export function allowsTransportPeer(list: AllowList, socket: Socket): boolean {
  const peer = socket as Peer;
  return peer[kLocal] === true || list.allows(peer[kTransport] ?? peer.remoteAddress);
}

/** Parses `text` for the setting `setting`; throws ConfigError naming the entry that is not an address or network. */
export function parseAllowList(setting: string, text: string): AllowList {
  const entries = text.split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.includes('*')) return ANY;
  const list = new BlockList();
  for (const entry of entries) {
    const [addr = '', bits, extra] = entry.split('/');
    const family = isIP(addr);
    const prefix = Number(bits);
    if (family === 0 || extra !== undefined || (bits !== undefined && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= (family === 4 ? 32 : 128)))) {
      throw new ConfigError(`${setting}: ${JSON.stringify(entry)} is not an address or a network (e.g. 10.0.0.1, 10.0.0.0/8, ::1, or * for any)`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, prefix, type);
  }
  return {
    allows: (address) => {
      if (!address) return false;
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
      const a = mapped ? mapped[1]! : address;
      const family = isIP(a);
      return family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
