// The request limits and the refusals a worker answers itself (src/worker/strict-http.ts,
// src/worker/refusals.ts), in this process: a real http.Server on port 0 whose handler is the
// worker's screening (screenRequest) in front of a small app, and raw bytes over net sockets. The
// limits are checked first on fake request heads, at their boundaries; then what goes on the wire
// for each kind of refusal, what is logged, and that the app never sees a refused request.

import test from 'ava';
import { createServer, type IncomingMessage, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolveValues } from '../src/config/load-settings.js';
import type { Logger } from '../src/logging/logger.js';
import { createServers } from '../src/worker/http-server.js';
import { OVER_LIMIT, REFUSED } from '../src/worker/refusals.js';
import { limitViolation, maxHeaderSize, screenRequest, type RequestLimits } from '../src/worker/strict-http.js';
import { rawHttp as raw } from './helpers/daemon.js';

const LIMITS: RequestLimits = { limit_request_line: 200, limit_request_fields: 10, limit_request_field_size: 100 };
const UNLIMITED: RequestLimits = { limit_request_line: 0, limit_request_fields: 0, limit_request_field_size: 0 };

/** A logger that keeps its lines (`LEVEL message`) for the tests to read. */
function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string): void => { lines.push(`${level} ${msg}`); };
  const nothing = (): void => { /* no files to reopen or reconfigure */ };
  return {
    lines, debug: at('DEBUG'), info: at('INFO'), warning: at('WARNING'), error: at('ERROR'), critical: at('CRITICAL'),
    reopen: nothing, reconfigure: nothing, flush: () => Promise.resolve(),
  };
}

/** A request head as Node's parser leaves it, for the checks that read only the head. */
function head(url: string, rawHeaders: string[]): IncomingMessage {
  return { method: 'GET', url, rawHeaders } as unknown as IncomingMessage;
}

/** `GET /aaa... HTTP/1.1`, exactly `length` bytes without its CRLF. */
function requestLine(length: number): string {
  return `GET /${'a'.repeat(length - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
}

/** `count` distinct fields, Host first. */
function fields(count: number): string[] {
  return ['Host', 'x', ...Array.from({ length: count - 1 }, (_, i) => [`X-F${i}`, 'v']).flat()];
}

/** A field whose line `Name: value\r\n` is exactly `length` bytes. */
function fieldOf(length: number): string[] {
  return ['X-Big', 'b'.repeat(length - 'X-Big: \r\n'.length)];
}

/** Field lines (each with its CRLF) from a [name, value, ...] list. */
function fieldLines(rawHeaders: string[]): string {
  let out = '';
  for (let i = 0; i < rawHeaders.length; i += 2) out += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return out;
}

// ---- the limits, on request heads ----------------------------------------------------------------

test('limits: the request line counts method, target, version and the spaces; one byte past is 414', (t) => {
  const url = (length: number): string => requestLine(length).split(' ')[1]!;
  t.is(limitViolation(head(url(200), ['Host', 'x']), LIMITS), null);
  t.is(limitViolation(head(url(201), ['Host', 'x']), LIMITS), OVER_LIMIT.line);
  t.is(OVER_LIMIT.line.status, 414);
});

test('limits: the field count and a field line\'s size (`Name: value` and CRLF); one past is 431', (t) => {
  t.is(limitViolation(head('/', fields(10)), LIMITS), null);
  t.is(limitViolation(head('/', fields(11)), LIMITS), OVER_LIMIT.fields);
  t.is(limitViolation(head('/', ['Host', 'x', ...fieldOf(100)]), LIMITS), null);
  t.is(limitViolation(head('/', ['Host', 'x', ...fieldOf(101)]), LIMITS), OVER_LIMIT.fieldSize);
  t.deepEqual([OVER_LIMIT.fields.status, OVER_LIMIT.fieldSize.status], [431, 431]);
});

test('limits: 0 is unlimited', (t) => {
  t.is(limitViolation(head(`/${'a'.repeat(100_000)}`, [...fields(5000), ...fieldOf(100_000)]), UNLIMITED), null);
});

test('limits: Node\'s maxHeaderSize leaves room for what the limits allow, between 16 KiB and 1 MiB', (t) => {
  const defaults = resolveValues([]);
  t.is(maxHeaderSize(defaults), 4094 + 100 * (8190 + 2) + 4);
  t.is(maxHeaderSize(LIMITS), 16 * 1024);
  t.is(maxHeaderSize(UNLIMITED), 8192 + 100 * (8190 + 2) + 4);
  t.is(maxHeaderSize({ ...UNLIMITED, limit_request_fields: 10_000 }), 1024 * 1024);
});

// ---- on the wire ---------------------------------------------------------------------------------

const log = recordingLog();
/** `METHOD url` of each request the app was handed, and the code of each body stream that failed. */
const handed: string[] = [];
const failed: string[] = [];

const app: RequestListener = (req, res) => {
  handed.push(`${req.method} ${req.url}`);
  req.on('error', (err: NodeJS.ErrnoException) => { failed.push(err.code ?? err.message); });
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end('ok\n'); });
};

/** The worker's options that bear on refusals (http-server.ts), and its screening before the app. */
const server = createServer({ maxHeaderSize: maxHeaderSize(LIMITS), insecureHTTPParser: false, requireHostHeader: true }, (req, res) => {
  if (!screenRequest(req, res, LIMITS, log)) app(req, res);
});
let port = 0;

test.before(async () => {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  port = (server.address() as AddressInfo).port;
});

test.after.always(() => {
  server.closeAllConnections();
  server.close();
});

test.beforeEach(() => {
  log.lines.length = 0;
  handed.length = 0;
  failed.length = 0;
});

/** The status line, the header section as sorted `name: value` lines (Date dropped) and the body. */
function parse(text: string): { status: string; headers: string[]; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const [status, ...headers] = text.slice(0, end).split('\r\n');
  return { status: status!, headers: headers.filter((h) => !h.startsWith('Date:')).sort(), body: text.slice(end + 4) };
}

/** What a refusal written through the response looks like: `reason` as a one-chunk body. */
function refusalThroughResponse(status: string, reason: string): ReturnType<typeof parse> {
  return {
    status: `HTTP/1.1 ${status} ${reason}`,
    headers: ['Connection: close', 'Content-Type: text/plain', 'Transfer-Encoding: chunked'],
    body: `${(reason.length + 1).toString(16)}\r\n${reason}\n\r\n0\r\n\r\n`,
  };
}

test.serial('a request within every limit reaches the app', async (t) => {
  const answer = await raw(port, `${requestLine(200)}\r\n${fieldLines(['Host', 'x', ...fieldOf(100)])}Connection: close\r\n\r\n`);
  t.is(parse(answer.text).status, 'HTTP/1.1 200 OK');
  t.is(handed.length, 1);
  t.deepEqual(log.lines, []);
});

const overLimits: [string, string, string, string][] = [
  ['a request line one byte too long', `${requestLine(201)}\r\n${fieldLines(['Host', 'x'])}\r\n`, '414', 'URI Too Long'],
  ['one field too many', `GET / HTTP/1.1\r\n${fieldLines(fields(11))}\r\n`, '431', 'Request Header Fields Too Large'],
  ['a field line one byte too long', `GET / HTTP/1.1\r\n${fieldLines(['Host', 'x', ...fieldOf(101)])}\r\n`, '431', 'Request Header Fields Too Large'],
];
for (const [what, bytes, status, reason] of overLimits) {
  test.serial(`${what}: ${status} ${reason} and a closed connection, unlogged, the app never called`, async (t) => {
    const answer = await raw(port, bytes);
    t.deepEqual(parse(answer.text), refusalThroughResponse(status, reason));
    t.true(answer.closed);
    t.deepEqual(handed, []);
    t.deepEqual(log.lines, [], 'limits are not logged');
  });
}

test.serial('a strict refusal answers 400, logs why, and refuses what is pipelined behind it', async (t) => {
  const answer = await raw(port, 'GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n');
  t.deepEqual(parse(answer.text), refusalThroughResponse('400', 'Bad Request'));
  t.true(answer.closed);
  t.deepEqual(handed, []);
  t.deepEqual(log.lines, [
    `WARNING Invalid request from ip=127.0.0.1: ${REFUSED.host.why}`,
    `WARNING Invalid request from ip=127.0.0.1: ${REFUSED.afterRefusal.why}`,
  ]);
});

test.serial('a transfer coding to decode before chunked is 501 Not Implemented', async (t) => {
  const answer = await raw(port, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
  t.is(parse(answer.text).status, 'HTTP/1.1 501 Not Implemented');
  t.deepEqual(handed, []);
  t.deepEqual(log.lines, [`WARNING Invalid request from ip=127.0.0.1: ${REFUSED.coding.why}`]);
});

test.serial('a forbidden trailer, with the app holding the response: 400 as raw bytes, and the body stream fails', async (t) => {
  const answer = await raw(port, 'POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nHost: evil\r\n\r\n');
  t.is(answer.text, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nBad Request\n');
  t.true(answer.closed);
  t.deepEqual(handed, ['POST /t']);
  t.deepEqual(failed, ['TSG_ERR_FORBIDDEN_TRAILER']);
  t.deepEqual(log.lines, [`WARNING Invalid request from ip=127.0.0.1: ${REFUSED.trailer.why} Host`]);
});

test.serial('the worker\'s own servers: the limits from the settings, and 500 when the app throws', async (t) => {
  const settings = resolveValues([new Map<string, unknown>([['app', 'app.mjs'], ['limit_request_line', 100]])]);
  const own = recordingLog();
  const boom: RequestListener = () => { throw new Error('boom'); };
  const { servers: [srv] } = await createServers(1, { settings, app: boom, log: own, access: null, onRequest: () => { /* counted */ }, observe: null, proxyRejected: () => { /* none */ } });
  t.teardown(() => { srv!.closeAllConnections(); srv!.close(); });
  await new Promise<void>((done) => srv!.listen(0, '127.0.0.1', done));
  const p = (srv!.address() as AddressInfo).port;

  t.is(parse((await raw(p, `${requestLine(101)}\r\nHost: x\r\n\r\n`)).text).status, 'HTTP/1.1 414 URI Too Long');
  const answer = await raw(p, 'GET /boom HTTP/1.1\r\nHost: x\r\n\r\n');
  t.deepEqual(parse(answer.text), refusalThroughResponse('500', 'Internal Server Error'));
  t.true(answer.closed);
  t.is(own.lines.length, 1);
  t.regex(own.lines[0]!, /^ERROR Error handling request GET \/boom: Error: boom\n/);
});
