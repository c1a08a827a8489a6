// Strict HTTP/1.1 (src/worker/strict-http.ts) and the request limits, against a real daemon: every
// hostile shape is sent as raw bytes and must get its 4xx/5xx and a closed connection, the app
// (test/fixtures/counting-app.mjs) must not have been handed the request, and the same worker must
// go on serving. The checks themselves are unit-tested first, on fake requests.

import test, { type ExecutionContext } from 'ava';
import type { IncomingMessage } from 'node:http';
import { REFUSED, type Refusal } from '../src/worker/refusals.js';
import { CHUNKED, SINGLETONS, checkRequest, forbiddenTrailer } from '../src/worker/strict-http.js';
import { Daemon, fixture, freePort, get, rawHttp as raw } from './helpers/daemon.js';

// ---- the checks, on fake requests --------------------------------------------------------------

function fake(head: { v?: [number, number]; method?: string; url?: string; headers: string[] }): IncomingMessage {
  const [major, minor] = head.v ?? [1, 1];
  return {
    socket: {}, httpVersionMajor: major, httpVersionMinor: minor, method: head.method ?? 'GET', url: head.url ?? '/', rawHeaders: head.headers,
  } as unknown as IncomingMessage;
}

const verdicts: [string, Parameters<typeof fake>[0], Refusal | typeof CHUNKED | null][] = [
  ['a plain GET', { headers: ['Host', 'example.com', 'Accept', '*/*'] }, null],
  ['lowercase and odd-case names', { headers: ['host', 'a', 'cOnTeNt-TyPe', 'x', 'CONTENT-LENGTH', '1'] }, null],
  ['HTTP/1.0 without Host', { v: [1, 0], headers: [] }, null],
  ['an empty Host (RFC 9112 §3.2)', { headers: ['Host', ''] }, null],
  ['an IPv6 Host with port', { headers: ['Host', '[::1]:8000'] }, null],
  ['OPTIONS *', { method: 'OPTIONS', url: '*', headers: ['Host', 'a'] }, null],
  ['chunked', { method: 'POST', headers: ['Host', 'a', 'Transfer-Encoding', 'chunked'] }, CHUNKED],
  ['Chunked, any case', { method: 'POST', headers: ['Host', 'a', 'transfer-encoding', 'Chunked'] }, CHUNKED],
  ['HTTP/0.9', { v: [0, 9], headers: [] }, REFUSED.version],
  ['HTTP/2.0', { v: [2, 0], headers: ['Host', 'a'] }, REFUSED.version],
  ['HTTP/1.2', { v: [1, 2], headers: ['Host', 'a'] }, REFUSED.version],
  ['GET *', { url: '*', headers: ['Host', 'a'] }, REFUSED.asterisk],
  ['HTTP/1.1 without Host', { headers: ['Accept', '*/*'] }, REFUSED.noHost],
  ['two Hosts', { headers: ['Host', 'a', 'host', 'b'] }, REFUSED.host],
  ['a Host with a path', { headers: ['Host', 'a/b'] }, REFUSED.badHost],
  ['a Host with a space', { headers: ['Host', 'a b'] }, REFUSED.badHost],
  ['a Host with userinfo', { headers: ['Host', 'user@a'] }, REFUSED.badHost],
  ['two Content-Types', { method: 'POST', headers: ['Host', 'a', 'Content-Type', 'a/b', 'content-type', 'c/d'] }, REFUSED.contentType],
  ['two Content-Lengths', { method: 'POST', headers: ['Host', 'a', 'Content-Length', '1', 'Content-Length', '1'] }, REFUSED.contentLength],
  ['two Authorizations', { headers: ['Host', 'a', 'Authorization', 'a', 'AUTHORIZATION', 'b'] }, REFUSED.authorization],
  ['two Proxy-Authorizations', { headers: ['Host', 'a', 'Proxy-Authorization', 'a', 'Proxy-Authorization', 'b'] }, REFUSED.proxyAuthorization],
  ['two Transfer-Encodings', { method: 'POST', headers: ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'] }, REFUSED.transferEncoding],
  ['Content-Length and chunked', { method: 'POST', headers: ['Host', 'a', 'Content-Length', '3', 'Transfer-Encoding', 'chunked'] }, REFUSED.lengthAndChunked],
  ['chunked on HTTP/1.0', { v: [1, 0], method: 'POST', headers: ['Transfer-Encoding', 'chunked'] }, REFUSED.chunkedHttp10],
  ['gzip alone', { method: 'POST', headers: ['Host', 'a', 'Transfer-Encoding', 'gzip'] }, REFUSED.notChunked],
  ['chunked, gzip', { method: 'POST', headers: ['Host', 'a', 'Transfer-Encoding', 'chunked, gzip'] }, REFUSED.notChunked],
  ['chunked, chunked', { method: 'POST', headers: ['Host', 'a', 'Transfer-Encoding', 'chunked, chunked'] }, REFUSED.notChunked],
  ['gzip, chunked', { method: 'POST', headers: ['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'] }, REFUSED.coding],
];
for (const [what, head, expected] of verdicts) {
  test(`check: ${what}`, (t) => {
    t.is(checkRequest(fake(head)), expected);
  });
}

// The documented list and the check agree: each singleton field, sent twice, is refused.
for (const name of SINGLETONS) {
  test(`check: ${name} twice (a singleton field) is refused`, (t) => {
    const value = name === 'transfer-encoding' ? 'chunked' : name === 'content-length' ? '1' : 'a';
    const verdict = checkRequest(fake({ method: 'POST', headers: ['Host', 'a', name, value, name.toUpperCase(), value].slice(name === 'host' ? 2 : 0) }));
    t.true(verdict !== null && verdict !== CHUNKED, `${name}: ${String(verdict)}`);
  });
}

test('check: forbidden trailer fields, any case', (t) => {
  t.is(forbiddenTrailer(['X-Checksum', '1']), null);
  for (const name of ['Host', 'content-length', 'Transfer-Encoding', 'Trailer', 'TE', 'Authorization', 'Proxy-Authorization', 'Content-Type', 'Content-Encoding']) {
    t.is(forbiddenTrailer(['X-Checksum', '1', name, 'x']), name);
  }
});

// ---- against the real daemon --------------------------------------------------------------------


interface Count {
  readonly calls: number;
  readonly ended: number;
  readonly failed: number;
  readonly last: string;
  readonly pid: number;
}

let daemon: Daemon | null = null;
let port = 0;
let worker = 0;

async function count(): Promise<Count> {
  const r = await get(`http://127.0.0.1:${port}/__count`);
  return JSON.parse(r.body) as Count;
}

test.before(async () => {
  port = await freePort();
  daemon = new Daemon(['-w', '1', '-b', `127.0.0.1:${port}`, fixture('counting-app.mjs')]);
  await daemon.waitReady();
  [worker] = await daemon.waitWorkers(1) as [number];
});

test.after.always(() => {
  daemon?.kill();
});

/** Sends `bytes`; expects `status`, a closed connection, and the app's counters moved by `moved`. */
async function expectRefused(t: ExecutionContext, bytes: string, status: number, moved: Partial<Count> = {}): Promise<Count> {
  const before = await count();
  const answer = await raw(port, bytes);
  t.regex(answer.text, new RegExp(`^HTTP/1\\.1 ${status} `), JSON.stringify(answer.text));
  t.true(answer.closed, 'the server closed the connection');
  const after = await count();
  t.is(after.calls - before.calls, moved.calls ?? 0, `the app was handed the request: ${after.last}`);
  t.is(after.ended - before.ended, moved.ended ?? 0, 'bodies the app read to the end');
  t.is(after.failed - before.failed, moved.failed ?? 0, 'body streams that failed in the app');
  t.is(after.pid, worker, 'the same worker serves on');
  if (t.passed === false) t.log(daemon?.output);
  return after;
}

const H = 'Host: x\r\n';
const POST = `POST / HTTP/1.1\r\n${H}`;
const CHUNKED_BODY = '3\r\nabc\r\n0\r\n\r\n';

/** [title, raw request, status]: refused before the app runs, by Node itself or by strict-http.ts. */
const refusedBeforeApp: [string, string, number][] = [
  // request smuggling shapes
  ['Content-Length with Transfer-Encoding (CL.TE)', `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding with Content-Length (TE.CL)', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n${CHUNKED_BODY}`, 400],
  ['two equal Content-Lengths', `${POST}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, 400],
  ['two conflicting Content-Lengths', `${POST}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, 400],
  ['a Content-Length list', `${POST}Content-Length: 3, 3\r\n\r\nabc`, 400],
  ['a signed Content-Length', `${POST}Content-Length: +3\r\n\r\nabc`, 400],
  ['a negative Content-Length', `${POST}Content-Length: -1\r\n\r\n`, 400],
  ['Transfer-Encoding in an HTTP/1.0 request', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding gzip (chunked not final)', `${POST}Transfer-Encoding: gzip\r\n\r\nabc`, 400],
  ['Transfer-Encoding identity', `${POST}Transfer-Encoding: identity\r\n\r\nabc`, 400],
  ['Transfer-Encoding chunked, gzip', `${POST}Transfer-Encoding: chunked, gzip\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunked twice in one line', `${POST}Transfer-Encoding: chunked, chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding on two lines', `${POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding gzip, chunked (a coding we do not decode)', `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n${CHUNKED_BODY}`, 501],
  ['whitespace between field name and colon', `${POST}Transfer-Encoding : chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['obs-fold (a folded header, space)', `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`, 400],
  ['obs-fold (a folded header, tab)', `GET / HTTP/1.1\r\n${H}X-A: a\r\n\tb\r\n\r\n`, 400],
  ['whitespace before the first header', `GET / HTTP/1.1\r\n X-A: b\r\n${H}\r\n`, 400],
  ['bare LF line endings', `GET / HTTP/1.1\nHost: x\n\n`, 400],
  ['a bare CR in a field value', `GET / HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, 400],
  ['a NUL in a field value', `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, 400],
  ['a DEL in a field value', `GET / HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, 400],
  // Host
  ['two Hosts', `GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`, 400],
  ['no Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['a Host that is not host[:port]', 'GET / HTTP/1.1\r\nHost: evil.example/reset?x=\r\n\r\n', 400],
  // singleton fields
  ['two Content-Types', `${POST}Content-Type: text/plain\r\ncontent-type: application/json\r\nContent-Length: 0\r\n\r\n`, 400],
  ['two Authorizations', `GET / HTTP/1.1\r\n${H}Authorization: Basic YTpi\r\nAuthorization: Basic Yzpk\r\n\r\n`, 400],
  // request line
  ['an asterisk-form target on GET', `GET * HTTP/1.1\r\n${H}\r\n`, 400],
  ['an authority-form target on GET', `GET example.com:80 HTTP/1.1\r\n${H}\r\n`, 400],
  ['HTTP/0.9 (no version)', 'GET /\r\n\r\n', 400],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 400],
  ['HTTP/2.0 on the HTTP/1 parser', `GET / HTTP/2.0\r\n${H}\r\n`, 400],
  ['HTTP/1.10', `GET / HTTP/1.10\r\n${H}\r\n`, 400],
  ['a lowercase protocol name', `GET / http/1.1\r\n${H}\r\n`, 400],
  ['a lowercase method', `get / HTTP/1.1\r\n${H}\r\n`, 400],
];

for (const [title, bytes, status] of refusedBeforeApp) {
  test.serial(`refuses ${title} before the app runs`, async (t) => {
    await expectRefused(t, bytes, status);
  });
}

test.serial('a request smuggled behind a refused one on the same connection never reaches the app', async (t) => {
  // An HTTP/1.0 keep-alive request whose chunked body a front end reading Content-Length-less
  // HTTP/1.0 framing would not see: the GET after it must not be served either.
  await expectRefused(t, `POST /a HTTP/1.0\r\n${H}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`
    + `GET /smuggled HTTP/1.1\r\n${H}\r\n`, 400);
  await daemon!.waitForLog(/Invalid request from ip=127\.0\.0\.1: request pipelined after a refused request/);
});

test.serial('OPTIONS * and absolute-form targets still reach the app', async (t) => {
  const before = await count();
  for (const line of ['OPTIONS * HTTP/1.1', 'GET http://x/abs HTTP/1.1']) {
    const answer = await raw(port, `${line}\r\n${H}Connection: close\r\n\r\n`);
    t.regex(answer.text, /^HTTP\/1\.1 200 /, line);
  }
  t.is((await count()).calls - before.calls, 2);
});

// Chunk framing is parsed after the head: Node has handed the request to the app by then. A bad
// chunk makes llhttp fail, Node answers 400 and closes, and the app's body stream never ends.
const badChunks: [string, string][] = [
  ['a chunk size that is not hex', `${POST}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`],
  ['a negative chunk size', `${POST}Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`],
  ['a 0x-prefixed chunk size', `${POST}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`],
  ['a chunk size that overflows 64 bits', `${POST}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n`],
  ['whitespace after a chunk size', `${POST}Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n`],
  ['a bare CR in a chunk extension', `${POST}Transfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n`],
  ['a control byte in a chunk extension', `${POST}Transfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n0\r\n\r\n`],
  ['chunk data without its CRLF', `${POST}Transfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n`],
  ['a Content-Length trailer', `${POST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n`],
  ['a folded trailer', `${POST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n 2\r\n\r\n`],
];
for (const [title, bytes] of badChunks) {
  test.serial(`refuses ${title}; the app never gets the body`, async (t) => {
    await expectRefused(t, bytes, 400, { calls: 1, failed: 1 });
  });
}

// Trailers Node accepts but RFC 9110 §6.5.1 forbids: strict-http.ts fails the body stream.
for (const field of ['Host: evil', 'Authorization: Basic YTpi', 'Trailer: X', 'TE: trailers', 'Content-Type: text/html']) {
  test.serial(`refuses the trailer field ${field.split(':')[0]}; the app's body stream fails instead of ending`, async (t) => {
    const after = await expectRefused(t, `${POST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${field}\r\n\r\n`, 400, { calls: 1, failed: 1 });
    t.is(after.last, 'POST /: TSG_ERR_FORBIDDEN_TRAILER');
  });
}

test.serial('a chunked body with an allowed trailer and a chunk extension reaches the app whole', async (t) => {
  const before = await count();
  const answer = await raw(port, `${POST}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;name="a b"\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n`);
  t.regex(answer.text, /^HTTP\/1\.1 200 /);
  t.regex(answer.text, /seen POST \/ trailers=\{"x-checksum":"1"\}/);
  const after = await count();
  t.is(after.ended - before.ended, 1);
});

test.serial('the worker that refused everything above still serves', async (t) => {
  const ok = await get(`http://127.0.0.1:${port}/after`);
  t.is(ok.status, 200);
  t.is(ok.headers['x-worker'], String(worker));
  t.deepEqual(daemon!.workers(), [worker]);
});

// ---- Node's own lenient mode cannot be switched on under us -------------------------------------

test('workers stay strict when started with --insecure-http-parser', async (t) => {
  const p = await freePort();
  const d = new Daemon(['-w', '1', '-b', `127.0.0.1:${p}`, '--node-options=--insecure-http-parser', fixture('counting-app.mjs')],
    { env: { NODE_OPTIONS: '--insecure-http-parser' } });
  t.teardown(() => d.kill());
  await d.waitReady();
  for (const bytes of [
    `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`,
    `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`,
    `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`,
  ]) {
    t.regex((await raw(p, bytes)).text, /^HTTP\/1\.1 400 /, JSON.stringify(bytes));
  }
  const r = await get(`http://127.0.0.1:${p}/__count`);
  t.is((JSON.parse(r.body) as Count).calls, 0);
  if (t.passed === false) t.log(d.output);
});

// ---- request limits: the boundaries, and 0 = unlimited ------------------------------------------

/** A request head whose request line is exactly `lineLength` bytes (without CRLF). */
function requestLine(lineLength: number): string {
  return `GET /${'a'.repeat(lineLength - 'GET / HTTP/1.1'.length)} HTTP/1.1`;
}

test('limits: exactly at each limit is served, one past it gets 414/431, and the app never sees those', async (t) => {
  const p = await freePort();
  const d = new Daemon(['-w', '1', '-b', `127.0.0.1:${p}`, '--limit-request-line', '200', '--limit-request-fields', '10',
    '--limit-request-field-size', '100', fixture('counting-app.mjs')]);
  t.teardown(() => d.kill());
  await d.waitReady();
  const status = async (head: string): Promise<string> => (await raw(p, `${head}\r\nConnection: close\r\n\r\n`)).text.slice(0, 12);
  const calls = async (): Promise<number> => (JSON.parse((await get(`http://127.0.0.1:${p}/__count`)).body) as Count).calls;
  const host = 'Host: x\r\n';

  t.is(requestLine(200).length, 200);
  t.is(await status(`${requestLine(200)}\r\n${host.trimEnd()}`), 'HTTP/1.1 200');
  t.is(await status(`${requestLine(201)}\r\n${host.trimEnd()}`), 'HTTP/1.1 414');

  // 10 fields with Host and Connection: served; 11: refused.
  const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-F${i}: v`).join('\r\n');
  t.is(await status(`GET / HTTP/1.1\r\n${host}${fields(8)}`), 'HTTP/1.1 200');
  t.is(await status(`GET / HTTP/1.1\r\n${host}${fields(9)}`), 'HTTP/1.1 431');

  // A field line counts `Name: value` and its CRLF, as in Gunicorn: 100 bytes served, 101 refused.
  const field = (lineLength: number): string => `X-Big: ${'b'.repeat(lineLength - 'X-Big: \r\n'.length)}`;
  t.is(`${field(100)}\r\n`.length, 100);
  t.is(await status(`GET / HTTP/1.1\r\n${host}${field(100)}`), 'HTTP/1.1 200');
  t.is(await status(`GET / HTTP/1.1\r\n${host}${field(101)}`), 'HTTP/1.1 431');

  t.is(await calls(), 3, 'only the requests within the limits reached the app');
  if (t.passed === false) t.log(d.output);
});

test('limits: 0 means unlimited (up to Node\'s own header size bound)', async (t) => {
  const p = await freePort();
  const d = new Daemon(['-w', '1', '-b', `127.0.0.1:${p}`, '--limit-request-line', '0', '--limit-request-fields', '0',
    '--limit-request-field-size', '0', fixture('counting-app.mjs')]);
  t.teardown(() => d.kill());
  await d.waitReady();
  const fields = Array.from({ length: 300 }, (_, i) => `X-F${i}: v`).join('\r\n');
  const answer = await raw(p, `${requestLine(20000)}\r\nHost: x\r\n${fields}\r\nX-Big: ${'b'.repeat(20000)}\r\nConnection: close\r\n\r\n`);
  t.regex(answer.text, /^HTTP\/1\.1 200 /, '20 kB line, 300 fields, a 20 kB field: all within "unlimited"');
  // Past Node's maxHeaderSize (1 MiB at most) Node itself answers 431.
  const huge = await raw(p, `GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(2 * 1024 * 1024)}\r\n\r\n`);
  t.regex(huge.text, /^HTTP\/1\.1 431 /);
  t.is((await get(`http://127.0.0.1:${p}/`)).status, 200, 'and the worker serves on');
  if (t.passed === false) t.log(d.output);
});
