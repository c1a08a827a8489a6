// Strict HTTP/1.1 (RFC 9110/9112) on top of Node's parser, so that nothing Gunicorn refuses reaches
// the app here. Node's llhttp, kept strict (http-server.ts passes insecureHTTPParser: false, which
// also overrides NODE_OPTIONS=--insecure-http-parser), already answers 400 by itself to
// Content-Length with Transfer-Encoding, duplicate or malformed Content-Length, obs-fold, bare CR
// or control bytes in fields, bad chunk sizes and extensions, HTTP/1.x versions beyond 1.1 and a
// missing Host on HTTP/1.1. It lets these through, and this module refuses them before the app runs:
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
import type { Logger } from '../logging/logger.js';

/** Why a request is refused, and with which status. Constants: refusing allocates nothing. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly why: string;
}

function refusal(status: number, why: string): Refusal {
  return Object.freeze({ status, reason: status === 501 ? 'Not Implemented' : 'Bad Request', why });
}

export const REFUSED = Object.freeze({
  version: refusal(400, 'HTTP version other than 1.0 or 1.1'),
  asterisk: refusal(400, 'asterisk-form target on a method other than OPTIONS'),
  noHost: refusal(400, 'HTTP/1.1 request without Host'),
  badHost: refusal(400, 'invalid Host value'),
  host: refusal(400, 'more than one Host'),
  contentType: refusal(400, 'more than one Content-Type'),
  contentLength: refusal(400, 'more than one Content-Length'),
  authorization: refusal(400, 'more than one Authorization'),
  proxyAuthorization: refusal(400, 'more than one Proxy-Authorization'),
  transferEncoding: refusal(400, 'more than one Transfer-Encoding'),
  lengthAndChunked: refusal(400, 'Content-Length with Transfer-Encoding'),
  chunkedHttp10: refusal(400, 'Transfer-Encoding in an HTTP/1.0 request'),
  notChunked: refusal(400, 'Transfer-Encoding whose final coding is not chunked'),
  coding: refusal(501, 'transfer coding other than chunked'),
  afterRefusal: refusal(400, 'request pipelined after a refused request'),
  trailer: refusal(400, 'forbidden trailer field'),
});

/**
 * Fields a request may carry once (RFC 9110 §5.3: their grammar is not a list). Gunicorn 26
 * refuses repeated Host, Content-Type and Content-Length; Node keeps only the first of each of
 * these in req.headers, so a proxy reading the last one would disagree with the app.
 */
export const SINGLETONS = ['host', 'content-type', 'content-length', 'authorization', 'proxy-authorization', 'transfer-encoding'] as const;

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

const HOST = 1;
const CONTENT_TYPE = 2;
const CONTENT_LENGTH = 4;
const AUTHORIZATION = 8;
const PROXY_AUTHORIZATION = 16;
const TRANSFER_ENCODING = 32;

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
    switch (name.length) {
      case 4:
        if (sameField(name, 'host', 'Host')) {
          if (seen & HOST) return REFUSED.host;
          seen |= HOST;
          host = raw[i + 1]!;
        }
        break;
      case 12:
        if (sameField(name, 'content-type', 'Content-Type')) {
          if (seen & CONTENT_TYPE) return REFUSED.contentType;
          seen |= CONTENT_TYPE;
        }
        break;
      case 13:
        if (sameField(name, 'authorization', 'Authorization')) {
          if (seen & AUTHORIZATION) return REFUSED.authorization;
          seen |= AUTHORIZATION;
        }
        break;
      case 14:
        if (sameField(name, 'content-length', 'Content-Length')) {
          if (seen & CONTENT_LENGTH) return REFUSED.contentLength;
          seen |= CONTENT_LENGTH;
        }
        break;
      case 17:
        if (sameField(name, 'transfer-encoding', 'Transfer-Encoding')) {
          if (seen & TRANSFER_ENCODING) return REFUSED.transferEncoding;
          seen |= TRANSFER_ENCODING;
          coding = raw[i + 1]!;
        }
        break;
      case 19:
        if (sameField(name, 'proxy-authorization', 'Proxy-Authorization')) {
          if (seen & PROXY_AUTHORIZATION) return REFUSED.proxyAuthorization;
          seen |= PROXY_AUTHORIZATION;
        }
        break;
      default:
    }
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

/** The error a chunked request's body stream fails with when its trailers hold a forbidden field. */
export class ForbiddenTrailerError extends Error {
  readonly code = 'TSG_ERR_FORBIDDEN_TRAILER';
  constructor(readonly field: string) {
    super(`forbidden trailer field ${field}`);
    this.name = 'ForbiddenTrailerError';
  }
}

function logRefusal(log: Logger, req: IncomingMessage, why: string): void {
  log.warning(`Invalid request from ip=${req.socket.remoteAddress ?? 'unix'}: ${why}`);
}

/** Answers a refused request itself (the app never sees it) and closes the connection after it. */
export function refuse(req: IncomingMessage, res: ServerResponse, r: Refusal, log: Logger): void {
  (req.socket as MarkedSocket)[kRefused] = true;
  logRefusal(log, req, r.why);
  res.writeHead(r.status, r.reason, { 'Content-Type': 'text/plain', Connection: 'close' });
  res.end(`${r.reason}\n`);
}

const TRAILER_400 = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nBad Request\n';

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
        const socket = this.socket as MarkedSocket;
        socket[kRefused] = true;
        logRefusal(log, this, `${REFUSED.trailer.why} ${field}`);
        // What Node's own clientError handler writes, for the same reason: no response started.
        if (!res.headersSent && socket.writable) socket.write(TRAILER_400);
        this.destroy(new ForbiddenTrailerError(field));
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  };
}

/**
 * Applies the strict rules to a request before the app runs. Returns true when the request was
 * refused (and answered); false when the app may have it.
 */
export function enforceStrictHttp(req: IncomingMessage, res: ServerResponse, log: Logger): boolean {
  const verdict = checkRequest(req);
  if (verdict === null) return false;
  if (verdict === CHUNKED) {
    guardTrailers(req, res, log);
    return false;
  }
  refuse(req, res, verdict, log);
  return true;
}
