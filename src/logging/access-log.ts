// Access log lines in Gunicorn's `access_log_format` language: `%(h)s`, `%({header}i)s`, ...
// The format is compiled once into a list of small functions; nothing here runs unless the access
// log is on.

import type { IncomingMessage, ServerResponse } from 'node:http';

export interface AccessEntry {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The client's address: the peer's, or the one an allowed proxy named (forwarded_allow_ips). */
  readonly client: string | undefined;
  /** process.hrtime.bigint() when the request arrived and when the response finished. */
  readonly start: bigint;
  readonly end: bigint;
  readonly when: Date;
  /** Body bytes sent. */
  readonly bytes: number;
  /** A response header, also when the app passed it to writeHead() only. */
  readonly outHeader: (name: string) => string | string[] | number | undefined;
}

type Atom = (e: AccessEntry) => string;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function p2(n: number): string {
  return String(n).padStart(2, '0');
}

/** `[10/Oct/2000:13:55:36 -0700]` (Apache's common log time). */
export function clfTime(d: Date): string {
  const off = -d.getTimezoneOffset();
  const tz = `${off >= 0 ? '+' : '-'}${p2(Math.floor(Math.abs(off) / 60))}${p2(Math.abs(off) % 60)}`;
  return `[${p2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${tz}]`;
}

const dash = (v: string | undefined | null): string => (v === undefined || v === null || v === '' ? '-' : v);
const header = (v: string | string[] | number | undefined): string => dash(Array.isArray(v) ? v.join(', ') : v === undefined ? undefined : String(v));
const micros = (e: AccessEntry): bigint => (e.end - e.start) / 1000n;

function basicAuthUser(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (!auth || !/^basic /i.test(auth)) return undefined;
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(0, colon) : undefined;
}

function path(req: IncomingMessage): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q >= 0 ? url.slice(0, q) : url;
}

const ATOMS: Record<string, Atom> = {
  h: (e) => dash(e.client),
  l: () => '-',
  u: (e) => dash(basicAuthUser(e.req)),
  t: (e) => clfTime(e.when),
  r: (e) => `${e.req.method} ${e.req.url} HTTP/${e.req.httpVersion}`,
  m: (e) => dash(e.req.method),
  U: (e) => path(e.req),
  q: (e) => { const url = e.req.url ?? ''; const i = url.indexOf('?'); return i >= 0 ? url.slice(i + 1) : ''; },
  H: (e) => `HTTP/${e.req.httpVersion}`,
  s: (e) => String(e.res.statusCode),
  B: (e) => String(e.bytes),
  b: (e) => (e.bytes > 0 ? String(e.bytes) : '-'),
  f: (e) => header(e.req.headers.referer),
  a: (e) => header(e.req.headers['user-agent']),
  T: (e) => String(micros(e) / 1000000n),
  M: (e) => String(micros(e) / 1000n),
  D: (e) => String(micros(e)),
  L: (e) => (Number(micros(e)) / 1e6).toFixed(6),
  p: () => `<${process.pid}>`,
};

function variableAtom(name: string, kind: string): Atom | undefined {
  const key = name.toLowerCase();
  if (kind === 'i') return (e) => header(e.req.headers[key]);
  if (kind === 'o') return (e) => header(e.outHeader(key));
  if (kind === 'e') return () => dash(process.env[name]);
  return undefined;
}

/** Compiles a format; unknown atoms render as `-` like Gunicorn's. */
export function compileAccessFormat(format: string): (e: AccessEntry) => string {
  const parts: (string | Atom)[] = [];
  const re = /%\((\{([^}]*)\}([ioe])|[A-Za-z])\)s/g;
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    if (m.index > last) parts.push(format.slice(last, m.index));
    const atom = m[2] !== undefined ? variableAtom(m[2], m[3]!) : ATOMS[m[1]!];
    parts.push(atom ?? (() => '-'));
    last = re.lastIndex;
  }
  if (last < format.length) parts.push(format.slice(last));
  return (e) => {
    let out = '';
    for (const part of parts) out += typeof part === 'string' ? part : part(e);
    return out;
  };
}
