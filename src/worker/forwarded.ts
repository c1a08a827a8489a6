// forwarded_allow_ips (Gunicorn's): which peers may say who the client is with X-Forwarded-For and
// X-Forwarded-Proto. From such a peer the headers stay, and the client is the last address in
// X-Forwarded-For that is not itself an allowed proxy (what each proxy appended, read from the
// right, the way nginx's real_ip_recursive and Express's `trust proxy` read it). From any other
// peer both headers are removed before the app sees the request: an app that trusts them cannot
// be told a made-up client. A request without them costs a walk over its raw header names
// (req.headers is not built for it).

import type { IncomingMessage } from 'node:http';
import { allowsPeer, type AllowList } from '../sockets/allow-list.js';

const XFF = 'x-forwarded-for';
const XFP = 'x-forwarded-proto';

/** Whether raw header name `name` is X-Forwarded-For or X-Forwarded-Proto (lengths first: most names are neither). */
function forwarding(name: string): boolean {
  if (name.length !== XFF.length && name.length !== XFP.length) return false;
  const lower = name.toLowerCase();
  return lower === XFF || lower === XFP;
}

/** The client a request comes from, for the access log's `%(h)s`; strips the headers of peers not allowed. */
export function forwardedClient(req: IncomingMessage, allow: AllowList): string | undefined {
  const peer = req.socket.remoteAddress;
  const raw = req.rawHeaders;
  let found = false;
  const hops: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!forwarding(raw[i]!)) continue;
    found = true;
    if (raw[i]!.length === XFF.length) hops.push(...raw[i + 1]!.split(',').map((a) => a.trim()).filter(Boolean));
  }
  if (!found) return peer;
  if (!allowsPeer(allow, req.socket)) {
    for (let i = raw.length - 2; i >= 0; i -= 2) if (forwarding(raw[i]!)) raw.splice(i, 2);
    delete req.headers[XFF];
    delete req.headers[XFP];
    return peer;
  }
  for (let i = hops.length - 1; i >= 0; i--) if (!allow.allows(hops[i])) return hops[i];
  return hops[0] ?? peer;
}
