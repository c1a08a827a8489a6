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
//   - an asterisk-form target (`*`) on a method other than OPTIONS, a fragment in the target, a
//     backslash in its path, an absolute-form target that is not http(s)://host[:port],
//   - more than one Host, a Host value that is not `host[:port]`, no Host on HTTP/1.1,
//   - an expectation other than 100-continue (417), a Content-Length beyond 2^53 - 1,
//   - a repeated singleton field (see SINGLETONS): Node keeps the first, a proxy may use the last,
//   - Transfer-Encoding in an HTTP/1.0 request, repeated, with Content-Length, or with any coding
//     but a lone `chunked` (400 when chunked is not final: RFC 9112 §6.3; 501 for a coding
//     before it that we would have to decode: RFC 9112 §6.1),
//   - any request pipelined behind a refused one on the same connection (smuggled bytes), or
//     behind a response already known to close the connection (Node's own 400 for no Host),
// An absolute-form target that passes has its authority put in Host (RFC 9112 §3.2.2).
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
import type { Duplex } from 'node:stream';
import type { WorkerSettings } from '../config/settings.js';
import type { Logger } from '../logging/logger.js';
import { ForbiddenTrailerError, OVER_LIMIT, REFUSED, type Refusal } from './refusals.js';

/** Gunicorn's request limits, as the settings name them; 0 is unlimited. */
export type RequestLimits = Pick<WorkerSettings, 'limit_request_line' | 'limit_request_fields' | 'limit_request_field_size'>;

/**
 * Trailer fields refused: Gunicorn 26's list, plus the rest of what RFC 9110 §6.5.1 names as
 * needed before the content: framing and connection control, routing, request modifiers
 * (conditionals, ranges, cache controls, Expect, Max-Forwards), authentication (with cookies) and
 * how to process the content.
 */
export const FORBIDDEN_TRAILERS: ReadonlySet<string> = new Set([
  'host', 'content-length', 'transfer-encoding', 'trailer', 'te', 'authorization',
  'proxy-authorization', 'content-type', 'content-encoding',
  'connection', 'keep-alive', 'upgrade', 'proxy-connection', 'expect', 'max-forwards',
  'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'range',
  'cache-control', 'pragma', 'cookie', 'content-range', 'content-language', 'content-location',
]);

/** Returned by checkRequest for an acceptable chunked request: its trailers need a guard. */
export const CHUNKED = Symbol('tsgunicorn.chunked');
/** Set on a connection once a request on it is refused: whatever follows on it is suspect. */
const kRefused = Symbol('tsgunicorn.refused');
/** A connection as Node's server sees it: the response being written on it (Node's own field). */
type MarkedSocket = Socket & { [kRefused]?: true; _httpMessage?: (ServerResponse & { _last?: boolean }) | null };

/**
 * The server is closing the connection after an earlier response (ended, or still being written
 * and marked last): Node's own refusals (400 for a missing Host) never reach screenRequest, so they
 * mark nothing, yet Node parses and hands on what is pipelined behind them. RFC 9112 §9.6: a
 * server that closes MUST NOT process further requests on the connection.
 */
function closingAfterEarlier(req: IncomingMessage): boolean {
  const socket = req.socket as MarkedSocket;
  if (socket.writableEnded) return true;
  const earlier = socket._httpMessage;
  return earlier !== undefined && earlier !== null && earlier.req !== req && earlier._last === true;
}

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

/** reg-name characters (RFC 3986 §3.2.2): unreserved, sub-delims and the `%` of pct-encoded; IPv4 too. */
const REG_NAME = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=%') REG_NAME[c.charCodeAt(0)] = 1;
/** What an IP-literal holds between its brackets: IPv6 (hex, `:`, `.`) or IPvFuture (`v`, then reg-name or `:`). */
const IP_LITERAL = new Uint8Array(128);
for (const c of '0123456789abcdefABCDEF:.vV') IP_LITERAL[c.charCodeAt(0)] = 1;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** Where the host of `value` ends (at `:` or the end), or -1 when what is before is no uri-host. */
function hostEnd(value: string, from: number, to: number): number {
  if (value.charCodeAt(from) === 0x5b /* [ */) {
    const close = value.indexOf(']', from);
    if (close < from + 2 || close >= to) return -1;
    for (let i = from + 1; i < close; i++) {
      const c = value.charCodeAt(i);
      if (c > 127 || (IP_LITERAL[c] === 0 && REG_NAME[c] === 0)) return -1;
    }
    return close + 1;
  }
  let i = from;
  for (; i < to; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x3a /* : */) break;
    if (c > 127 || REG_NAME[c] === 0) return -1;
    if (c === 0x25 /* % */ && !(isHex(value.charCodeAt(i + 1)) && isHex(value.charCodeAt(i + 2)))) return -1;
  }
  return i;
}

/**
 * `value[from, to)` is uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2.2-3): a reg-name or IPv4
 * address, or an IP literal in brackets, then an optional `:` and digits. Empty is valid (RFC 9112
 * §3.2); `a:1:2`, `::1` unbracketed, `a:b`, `user@a` and `a/b` are not.
 */
export function validHost(value: string, from = 0, to = value.length): boolean {
  let i = hostEnd(value, from, to);
  if (i < 0) return false;
  if (i === to) return true;
  if (value.charCodeAt(i) !== 0x3a) return false;
  for (i++; i < to; i++) if (!isDigit(value.charCodeAt(i))) return false;
  return true;
}

/** A target other than origin-form (`/...`) and asterisk-form (`*`): absolute-form, here. */
function isAbsoluteForm(url: string): boolean {
  return url.charCodeAt(0) !== 0x2f /* / */ && url !== '*';
}

/** Where the authority of an absolute-form target starts: after `http://` or `https://`, any case; else -1. */
function authorityStart(url: string): number {
  const colon = url.indexOf('://');
  const scheme = colon === 4 || colon === 5 ? url.slice(0, colon).toLowerCase() : '';
  return scheme === 'http' || scheme === 'https' ? colon + 3 : -1;
}

/** Where the authority starting at `from` ends: at the path, the query or the end. */
function authorityEnd(url: string, from: number): number {
  for (let i = from; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */) return i;
  }
  return url.length;
}

/**
 * An absolute-form target (RFC 9112 §3.2.2) is served only as http(s)://host[:port]: no other
 * scheme, no userinfo (RFC 9110 §4.2.4: treat it as an error) and a host that is not empty (RFC
 * 9110 §4.2.1: MUST reject).
 */
function validAbsoluteForm(url: string): boolean {
  const from = authorityStart(url);
  if (from < 0) return false;
  const to = authorityEnd(url, from);
  return to > from && url.charCodeAt(from) !== 0x3a && validHost(url, from, to);
}

/**
 * RFC 9112 §3.2.2: an origin server given an absolute-form target MUST ignore the Host field and
 * use the target's authority. The app reads Host (req.headers.host, rawHeaders), so the worker
 * puts the authority there: the app and a proxy that routed on the target agree on the host.
 */
function useTargetAuthority(req: IncomingMessage): void {
  const url = req.url!;
  const from = authorityStart(url);
  const authority = url.slice(from, authorityEnd(url, from));
  const raw = req.rawHeaders;
  let i = 0;
  while (i < raw.length && !sameField(raw[i]!, 'host', 'Host')) i += 2;
  if (i < raw.length) raw[i + 1] = authority;
  else raw.push('Host', authority);
  // Node builds req.headers and req.headersDistinct from rawHeaders once, when first read.
  req.headers.host = authority;
  req.headersDistinct.host = [authority];
}

/**
 * A request target Node accepts but RFC 9112 §3.2 does not: a fragment (`#` is not in any form's
 * grammar), or a backslash before the query, which WHATWG URL parsing (what apps use) reads as `/`
 * while a proxy in front reads it as a byte: `/public\..\admin` would be two different paths.
 */
function badTarget(url: string): Refusal | null {
  if (url.indexOf('#') !== -1) return REFUSED.fragment;
  const backslash = url.indexOf('\\');
  if (backslash !== -1) {
    const query = url.indexOf('?');
    if (query === -1 || backslash < query) return REFUSED.backslash;
  }
  if (isAbsoluteForm(url) && !validAbsoluteForm(url)) return REFUSED.absoluteForm;
  return null;
}

/**
 * An Expect value is fine when each of its members is `100-continue` (any case). Node answers 417
 * itself when no member is; a list with another member (`100-continue, foo`) it would pass on
 * after sending 100 Continue, so a client's expectation would silently go unmet.
 */
function metExpectation(value: string): boolean {
  if (value === '100-continue') return true;
  for (const member of value.split(',')) {
    const m = member.trim().toLowerCase();
    if (m !== '' && m !== '100-continue') return false;
  }
  return true;
}

/** Content-Length an app cannot turn into a Number without losing precision (RFC 9110 §8.6). */
function hugeLength(value: string): boolean {
  return value.length > 15 && Number(value) > Number.MAX_SAFE_INTEGER;
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
  if (closingAfterEarlier(req)) return REFUSED.afterClose;
  const minor = req.httpVersionMinor;
  if (req.httpVersionMajor !== 1 || (minor !== 1 && minor !== 0)) return REFUSED.version;
  const url = req.url!;
  if (url === '*' && req.method !== 'OPTIONS') return REFUSED.asterisk;
  const target = badTarget(url);
  if (target !== null) return target;
  const raw = req.rawHeaders;
  let seen = 0;
  let host = '';
  let coding = '';
  let length = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Node checks Expect only on HTTP/1.1; RFC 9110 §10.1.1 has HTTP/1.0's ignored.
    if (name.length === 6 && minor === 1 && sameField(name, 'expect', 'Expect') && !metExpectation(raw[i + 1]!)) return REFUSED.expectation;
    const field = SINGLETON_BY_LENGTH[name.length];
    if (field === undefined || !sameField(name, field.lower, field.canon)) continue;
    if (seen & field.bit) return field.refusal;
    seen |= field.bit;
    if (field.bit === HOST) host = raw[i + 1]!;
    else if (field.bit === TRANSFER_ENCODING) coding = raw[i + 1]!;
    else if (field.bit === CONTENT_LENGTH) length = raw[i + 1]!;
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
  if (hugeLength(length)) return REFUSED.hugeLength;
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

/** What Node's default clientError handling answers, by the parser's error code (400 otherwise). */
const CLIENT_ERROR_ANSWERS: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
};
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/**
 * A server's 'clientError' listener: Node's default answer to a connection its parser gave up on,
 * except for bytes after a request that closes its connection (`Connection: close`, HTTP/1.0
 * without keep-alive). llhttp calls those an error (HPE_CLOSED_CONNECTION) and Node's default then
 * writes 400 in place of the response the app is still producing, and destroys the connection.
 * RFC 9112 §9.6 wants that response sent, then the connection closed, and nothing after the
 * request processed: the bytes are ignored and Node closes the connection after the response.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code === 'HPE_CLOSED_CONNECTION' && inFlight) return;
  if (socket.writable && (!inFlight || !inFlight.headersSent)) socket.write(CLIENT_ERROR_ANSWERS[err.code ?? ''] ?? BAD_REQUEST);
  socket.destroy(err);
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
  if (verdict !== null && verdict !== CHUNKED) {
    markRefused(req, verdict.why, log);
    writeRefusal(res, verdict);
    return true;
  }
  if (verdict === CHUNKED) guardTrailers(req, res, log);
  if (isAbsoluteForm(req.url!)) useTargetAuthority(req);
  return false;
}
