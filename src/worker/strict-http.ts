// What a request must pass before the app runs, and the one writer of the answers to those that
// fail (refusals.ts lists them). First Gunicorn's request limits (limit_request_line: 414;
// limit_request_fields, limit_request_field_size: 431), refused without a log line. Then strict
// HTTP/1.1 (RFC 9110/9112) on top of Node's parser, so that nothing Gunicorn refuses reaches the
// app here. Node's llhttp, kept strict (http-server.ts passes insecureHTTPParser: false, which
// also overrides NODE_OPTIONS=--insecure-http-parser), already answers 400 by itself to
// Content-Length with Transfer-Encoding, duplicate or malformed Content-Length, obs-fold, bare CR
// or control bytes in fields, bad chunk sizes and extensions, HTTP/1.x versions beyond 1.1 and a
// missing Host on HTTP/1.1. It lets these through, and this module refuses them (logged):
//   - HTTP versions other than 1.0 and 1.1 (HTTP/0.9, HTTP/2.0 and up on the HTTP/1 parser),
//   - an asterisk-form target (`*`) on a method other than OPTIONS,
//   - more than one Host, a Host value that is not `host[:port]`, no Host on HTTP/1.1,
//   - a repeated singleton field (see SINGLETONS): Node keeps the first, a proxy may use the last,
//   - Transfer-Encoding in an HTTP/1.0 request, repeated, with Content-Length, or with any coding
//     but a lone `chunked` (400 when chunked is not final: RFC 9112 §6.3; 501 for a coding
//     before it that we would have to decode: RFC 9112 §6.1),
//   - any request pipelined behind a refused one on the same connection (smuggled bytes).
// The checks read req.rawHeaders once, compare only names whose length matches a field of interest
// and allocate nothing unless a request is refused or chunked.
//
// Trailer fields arrive after the body, when the app has long started: a chunked request whose
// trailer section holds a forbidden field (FORBIDDEN_TRAILERS, Gunicorn's list and more) has its
// body stream fail instead of ending (the app sees 'aborted' and, if it listens, an 'error' with
// code TSG_ERR_FORBIDDEN_TRAILER; never 'end'), gets a 400 when no response was started, and
// loses its connection. That is what Node does itself for the trailer fields llhttp refuses
// (Content-Length, Transfer-Encoding), and what Gunicorn does (its body reader raises in the app).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { WorkerSettings } from '../config/settings.js';
import type { Logger } from '../logging/logger.js';
import { ForbiddenTrailerError, OVER_LIMIT, REFUSED, type Refusal } from './refusals.js';

/** Gunicorn's request limits, as the settings name them; 0 is unlimited. */
export type RequestLimits = Pick<WorkerSettings, 'limit_request_line' | 'limit_request_fields' | 'limit_request_field_size'>;

/** Trailer fields refused (RFC 9110 §6.5.1): Gunicorn 26's list plus what Node merges into headers. */
export const FORBIDDEN_TRAILERS: ReadonlySet<string> = new Set([
  'host', 'content-length', 'transfer-encoding', 'trailer', 'te', 'authorization',
  'proxy-authorization', 'content-type', 'content-encoding',
]);

/** Returned by checkRequest for an acceptable chunked request: its trailers need a guard. */
export const CHUNKED = Symbol('tsgunicorn.chunked');
/** Set on a connection once a request on it is refused: whatever follows on it is suspect. */
const kRefused = Symbol('tsgunicorn.refused');
type MarkedSocket = Socket & { [kRefused]?: true };

/** Bits of the singleton fields a request carries that the checks after the loop read. */
const HOST = 1;
const TRANSFER_ENCODING = 2;
const CONTENT_LENGTH = 4;

interface Singleton {
  readonly lower: string;
  readonly canon: string;
  readonly bit: number;
  readonly refusal: Refusal;
}

function singleton(canon: string, bit: number, refusal: Refusal): Singleton {
  return { lower: canon.toLowerCase(), canon, bit, refusal };
}

/**
 * Fields a request may carry once (RFC 9110 §5.3: their grammar is not a list). Gunicorn 26
 * refuses repeated Host, Content-Type and Content-Length; Node keeps only the first of each of
 * these in req.headers, so a proxy reading the last one would disagree with the app.
 */
const SINGLETON_FIELDS: readonly Singleton[] = [
  singleton('Host', HOST, REFUSED.host),
  singleton('Transfer-Encoding', TRANSFER_ENCODING, REFUSED.transferEncoding),
  singleton('Content-Length', CONTENT_LENGTH, REFUSED.contentLength),
  singleton('Content-Type', 8, REFUSED.contentType),
  singleton('Authorization', 16, REFUSED.authorization),
  singleton('Proxy-Authorization', 32, REFUSED.proxyAuthorization),
];

/** The singleton fields' names, lowercase. */
export const SINGLETONS: readonly string[] = SINGLETON_FIELDS.map((f) => f.lower);

/** The singleton field of each name length (no two have the same length): one lookup per field line. */
const SINGLETON_BY_LENGTH: (Singleton | undefined)[] = [];
for (const f of SINGLETON_FIELDS) SINGLETON_BY_LENGTH[f.lower.length] = f;

/**
 * `name` equals `lower` (a lowercase field name of the same length) ignoring ASCII case. The two
 * spellings clients send (`lower`, `canon`) are plain comparisons; other casings take the loop.
 */
function sameField(name: string, lower: string, canon: string): boolean {
  if (name === lower || name === canon) return true;
  // Field names are tokens: `| 0x20` lowercases A-Z and maps no other token byte onto a-z or '-'.
  for (let i = 0; i < lower.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** uri-host [":" port]: reg-name, IPv4 or [IP-literal] characters (RFC 3986 §3.2.2). */
const HOST_CHARS = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&\'()*+,;=:[]') HOST_CHARS[c.charCodeAt(0)] = 1;

function validHost(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 127 || HOST_CHARS[c] === 0) return false;
  }
  return true;
}

/** A lone `chunked` is fine; chunked twice or not last is a framing error; another coding is not ours. */
function transferCoding(value: string): Refusal | typeof CHUNKED {
  if (value === 'chunked') return CHUNKED;
  const codings = value.toLowerCase().split(',').map((c) => c.trim()).filter((c) => c !== '');
  if (codings.pop() !== 'chunked' || codings.includes('chunked')) return REFUSED.notChunked;
  return codings.length === 0 ? CHUNKED : REFUSED.coding;
}

/** Node's parser gives up beyond maxHeaderSize; leave it room for what the limits allow. */
export function maxHeaderSize(l: RequestLimits): number {
  const line = l.limit_request_line || 8192;
  const fields = (l.limit_request_fields || 100) * ((l.limit_request_field_size || 8190) + 2);
  return Math.min(Math.max(16 * 1024, line + fields + 4), 1024 * 1024);
}

/** The refusal a request deserves under the limits, or null when it is within them. */
export function limitViolation(req: IncomingMessage, l: RequestLimits): Refusal | null {
  if (l.limit_request_line > 0) {
    const lineLength = (req.method?.length ?? 0) + 1 + (req.url?.length ?? 0) + 9;
    if (lineLength > l.limit_request_line) return OVER_LIMIT.line;
  }
  const raw = req.rawHeaders;
  if (l.limit_request_fields > 0 && raw.length / 2 > l.limit_request_fields) return OVER_LIMIT.fields;
  if (l.limit_request_field_size > 0) {
    // Gunicorn counts the line `Name: value` and its CRLF.
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length + 4 + raw[i + 1]!.length > l.limit_request_field_size) return OVER_LIMIT.fieldSize;
    }
  }
  return null;
}

/**
 * What the strict rules say about a request whose head Node has parsed: a refusal, CHUNKED (fine,
 * but its trailers are still to come), or null (fine). Runs for every request.
 */
export function checkRequest(req: IncomingMessage): Refusal | typeof CHUNKED | null {
  if ((req.socket as MarkedSocket)[kRefused] === true) return REFUSED.afterRefusal;
  const minor = req.httpVersionMinor;
  if (req.httpVersionMajor !== 1 || (minor !== 1 && minor !== 0)) return REFUSED.version;
  if (req.url === '*' && req.method !== 'OPTIONS') return REFUSED.asterisk;
  const raw = req.rawHeaders;
  let seen = 0;
  let host = '';
  let coding = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const field = SINGLETON_BY_LENGTH[name.length];
    if (field === undefined || !sameField(name, field.lower, field.canon)) continue;
    if (seen & field.bit) return field.refusal;
    seen |= field.bit;
    if (field.bit === HOST) host = raw[i + 1]!;
    else if (field.bit === TRANSFER_ENCODING) coding = raw[i + 1]!;
  }
  if (seen & HOST) {
    if (!validHost(host)) return REFUSED.badHost;
  } else if (minor === 1) {
    return REFUSED.noHost;
  }
  if (seen & TRANSFER_ENCODING) {
    if (seen & CONTENT_LENGTH) return REFUSED.lengthAndChunked;
    if (minor === 0) return REFUSED.chunkedHttp10;
    return transferCoding(coding);
  }
  return null;
}

/** The first forbidden field in a trailer section, or null. */
export function forbiddenTrailer(rawTrailers: readonly string[]): string | null {
  for (let i = 0; i < rawTrailers.length; i += 2) {
    if (FORBIDDEN_TRAILERS.has(rawTrailers[i]!.toLowerCase())) return rawTrailers[i]!;
  }
  return null;
}

/**
 * Answers a request tsgunicorn refuses, or whose handler threw, and closes the connection after
 * it: the one writer of these responses. Through `res` while it is ours. Once the app holds `res`
 * (a trailer refused as the body ends), `appHolds` is the connection: the answer goes on it as
 * raw bytes, as Node's own clientError handler writes them, and only when no response was started
 * (the app's later writes to `res` then go nowhere instead of throwing).
 */
export function writeRefusal(res: ServerResponse, r: Refusal, appHolds: Socket | null = null): void {
  if (appHolds === null) {
    res.writeHead(r.status, r.reason, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end(`${r.reason}\n`);
  } else if (!res.headersSent && appHolds.writable) {
    appHolds.write(`HTTP/1.1 ${r.status} ${r.reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n`
      + `Content-Length: ${r.reason.length + 1}\r\n\r\n${r.reason}\n`);
  }
}

/** Logs a refusal under the strict rules and marks its connection: what follows on it is refused too. */
function markRefused(req: IncomingMessage, why: string, log: Logger): void {
  (req.socket as MarkedSocket)[kRefused] = true;
  log.warning(`Invalid request from ip=${req.socket.remoteAddress ?? 'unix'}: ${why}`);
}

/**
 * Checks the trailer section of a chunked request when Node has parsed it, before the body stream
 * ends (Node sets req.rawTrailers, then pushes the end of the stream).
 */
function guardTrailers(req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const push = req.push;
  req.push = function guardedPush(this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) {
      const field = forbiddenTrailer(this.rawTrailers);
      if (field !== null) {
        markRefused(this, `${REFUSED.trailer.why} ${field}`, log);
        writeRefusal(res, REFUSED.trailer, this.socket);
        this.destroy(new ForbiddenTrailerError(field));
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  };
}

/**
 * Applies the limits, then the strict rules, to a request before the app runs. Returns true when
 * the request was refused (and answered); false when the app may have it.
 */
export function screenRequest(req: IncomingMessage, res: ServerResponse, limits: RequestLimits, log: Logger): boolean {
  const over = limitViolation(req, limits);
  if (over !== null) {
    writeRefusal(res, over);
    return true;
  }
  const verdict = checkRequest(req);
  if (verdict === null) return false;
  if (verdict === CHUNKED) {
    guardTrailers(req, res, log);
    return false;
  }
  markRefused(req, verdict.why, log);
  writeRefusal(res, verdict);
  return true;
}
