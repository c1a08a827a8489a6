// Every answer tsgunicorn gives in place of the app, as constants: the status, its reason phrase
// and the `why` it logs. strict-http.ts decides which a request gets and writes it; constants mean
// that refusing a request allocates nothing to describe it.

import { STATUS_CODES } from 'node:http';

/** Why a request is refused, and with which status. Constants: refusing allocates nothing. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly why: string;
}

function refusal(status: number, why: string): Refusal {
  return Object.freeze({ status, reason: STATUS_CODES[status]!, why });
}

/** The strict HTTP/1.1 rules (strict-http.ts says which and why): each logged with its `why`. */
export const REFUSED = Object.freeze({
  version: refusal(400, 'HTTP version other than 1.0 or 1.1'),
  asterisk: refusal(400, 'asterisk-form target on a method other than OPTIONS'),
  fragment: refusal(400, 'a fragment (#) in the request target'),
  backslash: refusal(400, 'a backslash in the path of the request target'),
  absoluteForm: refusal(400, 'absolute-form target that is not http(s)://host[:port] without userinfo'),
  noHost: refusal(400, 'HTTP/1.1 request without Host'),
  badHost: refusal(400, 'invalid Host value'),
  host: refusal(400, 'more than one Host'),
  contentType: refusal(400, 'more than one Content-Type'),
  contentLength: refusal(400, 'more than one Content-Length'),
  hugeLength: refusal(400, 'Content-Length beyond 2^53 - 1'),
  authorization: refusal(400, 'more than one Authorization'),
  proxyAuthorization: refusal(400, 'more than one Proxy-Authorization'),
  transferEncoding: refusal(400, 'more than one Transfer-Encoding'),
  lengthAndChunked: refusal(400, 'Content-Length with Transfer-Encoding'),
  chunkedHttp10: refusal(400, 'Transfer-Encoding in an HTTP/1.0 request'),
  notChunked: refusal(400, 'Transfer-Encoding whose final coding is not chunked'),
  coding: refusal(501, 'transfer coding other than chunked'),
  expectation: refusal(417, 'an expectation other than 100-continue'),
  afterRefusal: refusal(400, 'request pipelined after a refused request'),
  afterClose: refusal(400, 'request pipelined after a response that closes the connection'),
  trailer: refusal(400, 'forbidden trailer field'),
});

/** Gunicorn's request limits (limit_request_*): answered without a log line. */
export const OVER_LIMIT = Object.freeze({
  line: refusal(414, 'request line longer than limit_request_line'),
  fields: refusal(431, 'more fields than limit_request_fields'),
  fieldSize: refusal(431, 'a field line longer than limit_request_field_size'),
});

/** What a request handler that throws before answering gets (http-server.ts). */
export const HANDLER_THREW = refusal(500, 'the request handler threw');

/** The error a chunked request's body stream fails with when its trailers hold a forbidden field. */
export class ForbiddenTrailerError extends Error {
  readonly code = 'TSG_ERR_FORBIDDEN_TRAILER';
  constructor(readonly field: string) {
    super(`forbidden trailer field ${field}`);
    this.name = 'ForbiddenTrailerError';
  }
}
