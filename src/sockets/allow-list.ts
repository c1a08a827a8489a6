// Which peers may speak for a client: Gunicorn's `forwarded_allow_ips` and `proxy_allow_ips`, a
// comma-separated list of addresses and networks (`127.0.0.1,::1,10.0.0.0/8`), or `*` for any.
// Matching is Node's own BlockList; an IPv4 peer seen on an IPv6 socket (`::ffff:10.0.0.1`)
// matches its IPv4 entries.

import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';

export interface AllowList {
  /**
   * Whether `address` (a socket's remoteAddress) is on the list. A peer on a unix socket (no
   * address) is, as in Gunicorn: who may connect is up to the socket file's permissions.
   */
  allows(address: string | undefined): boolean;
}

const ANY: AllowList = { allows: () => true };

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
      if (address === undefined) return true;
      if (!address) return false;
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
      const a = mapped ? mapped[1]! : address;
      const family = isIP(a);
      return family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
