// Strict HTTP/1.1 (src/worker/strict-http.ts) and the request limits, against a real daemon: every
// hostile shape is sent as raw bytes and must get its 4xx/5xx and a closed connection, the app
// (test/fixtures/counting-app.mjs) must not have been handed the request, and the same worker must
// go on serving. The checks themselves are unit-tested first, on fake requests.

import test, { type ExecutionContext } from 'ava';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { REFUSED, type Refusal } from '../src/worker/refusals.js';
import { CHUNKED, SINGLETONS, answerClientError, checkRequest, forbiddenTrailer } from '../src/worker/strict-http.js';
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
  ['Host a:', { headers: ['Host', 'a:'] }, null],
  ['Host a:b', { headers: ['Host', 'a:b'] }, REFUSED.badHost],
  ['Host [::1', { headers: ['Host', '[::1'] }, REFUSED.badHost],
  ['Host [v1.x]', { headers: ['Host', '[v1.x]'] }, null],
  ['Host a%4', { headers: ['Host', 'a%4'] }, REFUSED.badHost],
  ['a fragment', { url: '/a#b', headers: ['Host', 'a'] }, REFUSED.fragment],
  ['a backslash in the path', { url: '/a\\b', headers: ['Host', 'a'] }, REFUSED.backslash],
  ['a backslash in the query', { url: '/a?b\\c', headers: ['Host', 'a'] }, null],
  ['absolute-form http', { url: 'http://a:1/x', headers: ['Host', 'b'] }, null],
  ['absolute-form without a path', { url: 'https://a?x', headers: ['Host', 'b'] }, null],
  ['absolute-form ws://', { url: 'ws://a/x', headers: ['Host', 'b'] }, REFUSED.absoluteForm],
  ['absolute-form with userinfo', { url: 'http://u@a/x', headers: ['Host', 'b'] }, REFUSED.absoluteForm],
  ['absolute-form with an empty host', { url: 'http:///x', headers: ['Host', 'b'] }, REFUSED.absoluteForm],
  ['Expect: 100-continue', { headers: ['Host', 'a', 'Expect', '100-continue'] }, null],
  ['Expect: , 100-CONTINUE', { headers: ['Host', 'a', 'expect', ', 100-CONTINUE'] }, null],
  ['Expect: 100-continue, x', { headers: ['Host', 'a', 'Expect', '100-continue, x'] }, REFUSED.expectation],
  ['Expect: x on HTTP/1.0', { v: [1, 0], headers: ['Expect', 'x'] }, null],
  ['Content-Length 2^53 - 1', { method: 'POST', headers: ['Host', 'a', 'Content-Length', '9007199254740991'] }, null],
  ['Content-Length 2^53 + 1', { method: 'POST', headers: ['Host', 'a', 'Content-Length', '9007199254740993'] }, REFUSED.hugeLength],
  ['Content-Length with twenty leading zeros', { method: 'POST', headers: ['Host', 'a', 'Content-Length', '00000000000000000003'] }, null],
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
  for (const name of ['Host', 'content-length', 'Transfer-Encoding', 'Trailer', 'TE', 'Authorization', 'Proxy-Authorization', 'Content-Type', 'Content-Encoding',
    'Connection', 'Keep-Alive', 'Upgrade', 'Expect', 'Max-Forwards', 'If-Match', 'Range', 'Cache-Control', 'Cookie', 'Content-Range']) {
    t.is(forbiddenTrailer(['X-Checksum', '1', name, 'x']), name);
  }
});

// answerClientError on a plain Node server with the worker's parser options: what http-server.ts
// gets once it installs it.
async function withClientErrors(t: ExecutionContext, send: string): Promise<string> {
  const server = createServer({ insecureHTTPParser: false, requireHostHeader: true }, (req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end(`seen ${req.url}`), 20));
  });
  server.on('clientError', answerClientError);
  t.teardown(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const answer = await raw((server.address() as AddressInfo).port, send, 5000);
  t.true(answer.closed);
  return answer.text;
}

test('answerClientError: bytes after a Connection: close request are ignored and its response goes out', async (t) => {
  const text = await withClientErrors(t, 'GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
  t.regex(text, /^HTTP\/1\.1 200 [^]*seen \/1$/);
});

test('answerClientError: other parser errors get Node\'s answers', async (t) => {
  t.is(await withClientErrors(t, 'GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n'), 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  t.regex(await withClientErrors(t, `GET / HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
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

/** A 100 Continue Node sends before the request reaches the handler, which may still refuse it. */
const CONTINUE = '(?:HTTP/1\\.1 100 Continue\r\n\r\n)?';

/** Sends `bytes`; expects `status`, a closed connection, and the app's counters moved by `moved`. */
async function expectRefused(t: ExecutionContext, bytes: string, status: number, moved: Partial<Count> = {}): Promise<Count> {
  const before = await count();
  const answer = await raw(port, Buffer.from(bytes, 'latin1'));
  t.regex(answer.text, new RegExp(`^${CONTINUE}HTTP/1\\.1 ${status} `), JSON.stringify(answer.text));
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
const C = 'Connection: close\r\n';
const POST = `POST / HTTP/1.1\r\n${H}`;
const TE = `${POST}Transfer-Encoding: chunked\r\n`;
const CHUNKED_BODY = '3\r\nabc\r\n0\r\n\r\n';
const GET = (line: string, fields = H): string => `${line}\r\n${fields}\r\n`;

/** [title, raw request, status]: refused before the app runs, by Node itself or by strict-http.ts. */
const refusedBeforeApp: [string, string, number][] = [
  // request smuggling shapes
  ['Content-Length with Transfer-Encoding (CL.TE)', `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding with Content-Length (TE.CL)', `${TE}Content-Length: 5\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding with Content-Length: 0', `${TE}Content-Length: 0\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding with Content-Length on HTTP/1.0', `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc`, 400],
  // Content-Length forms
  ['two equal Content-Lengths', `${POST}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, 400],
  ['two conflicting Content-Lengths', `${POST}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, 400],
  ['a Content-Length list', `${POST}Content-Length: 3, 3\r\n\r\nabc`, 400],
  ['a Content-Length list without a space', `${POST}Content-Length: 3,3\r\n\r\nabc`, 400],
  ['a signed Content-Length', `${POST}Content-Length: +3\r\n\r\nabc`, 400],
  ['a negative Content-Length', `${POST}Content-Length: -1\r\n\r\n`, 400],
  ['an empty Content-Length', `${POST}Content-Length: \r\n\r\n`, 400],
  ['a hex Content-Length', `${POST}Content-Length: 0x3\r\n\r\nabc`, 400],
  ['a Content-Length with a decimal point', `${POST}Content-Length: 3.0\r\n\r\nabc`, 400],
  ['a Content-Length with an exponent', `${POST}Content-Length: 3e0\r\n\r\nabc`, 400],
  ['a Content-Length with a space inside', `${POST}Content-Length: 1 2\r\n\r\nabc`, 400],
  ['a Content-Length of 2^53 (past what a Number holds exactly)', `${POST}Content-Length: 9007199254740993\r\n\r\nabc`, 400],
  ['a Content-Length of 2^63', `${POST}Content-Length: 9223372036854775808\r\n\r\nabc`, 400],
  ['a Content-Length of 2^64 (overflows 64 bits)', `${POST}Content-Length: 18446744073709551616\r\n\r\nabc`, 400],
  ['a Content-Length of forty digits', `${POST}Content-Length: ${'9'.repeat(40)}\r\n\r\nabc`, 400],
  // Transfer-Encoding forms
  ['Transfer-Encoding in an HTTP/1.0 request', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding gzip (chunked not final)', `${POST}Transfer-Encoding: gzip\r\n\r\nabc`, 400],
  ['Transfer-Encoding identity', `${POST}Transfer-Encoding: identity\r\n\r\nabc`, 400],
  ['Transfer-Encoding chunked, gzip', `${POST}Transfer-Encoding: chunked, gzip\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunked twice in one line', `${POST}Transfer-Encoding: chunked, chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding on two lines', `${TE}Transfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunked with a parameter', `${POST}Transfer-Encoding: chunked;q=1\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding xchunked', `${POST}Transfer-Encoding: xchunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunkedx', `${POST}Transfer-Encoding: chunkedx\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding "chunked" (quoted)', `${POST}Transfer-Encoding: "chunked"\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunk ed', `${POST}Transfer-Encoding: chunk ed\r\n\r\n${CHUNKED_BODY}`, 400],
  ['an empty Transfer-Encoding', `${POST}Transfer-Encoding: \r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunked with a trailing comma', `${POST}Transfer-Encoding: chunked,\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding chunked with a VT after it', `${POST}Transfer-Encoding: chunked\x0b\r\n\r\n${CHUNKED_BODY}`, 400],
  ['Transfer-Encoding gzip, chunked (a coding we do not decode)', `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n${CHUNKED_BODY}`, 501],
  ['Transfer-Encoding identity,chunked', `${POST}Transfer-Encoding: identity,chunked\r\n\r\n${CHUNKED_BODY}`, 501],
  // field syntax
  ['whitespace between field name and colon', `${POST}Transfer-Encoding : chunked\r\n\r\n${CHUNKED_BODY}`, 400],
  ['a tab between field name and colon', GET('GET / HTTP/1.1', `${H}X-A\t: b\r\n`), 400],
  ['obs-fold (a folded header, space)', GET('GET / HTTP/1.1', `${H}X-A: a\r\n b\r\n`), 400],
  ['obs-fold (a folded header, tab)', GET('GET / HTTP/1.1', `${H}X-A: a\r\n\tb\r\n`), 400],
  ['whitespace before the first header', GET('GET / HTTP/1.1', ` X-A: b\r\n${H}`), 400],
  ['an empty field name', GET('GET / HTTP/1.1', `${H}: b\r\n`), 400],
  ['a field line without a colon', GET('GET / HTTP/1.1', `${H}X-A b\r\n`), 400],
  ['a field name that is not a token', GET('GET / HTTP/1.1', `${H}X(A): b\r\n`), 400],
  ['bare LF line endings', 'GET / HTTP/1.1\nHost: x\n\n', 400],
  ['a bare LF ending one field line', GET('GET / HTTP/1.1', `${H}X-A: b\n`), 400],
  ['a bare LF ending the head', `GET / HTTP/1.1\r\n${H}\n`, 400],
  ['a bare CR ending a field line', GET('GET / HTTP/1.1', `${H}X-A: b\r`), 400],
  ['a bare CR in a field value', GET('GET / HTTP/1.1', `${H}X-A: a\rb\r\n`), 400],
  ['a NUL in a field value', GET('GET / HTTP/1.1', `${H}X-A: a\x00b\r\n`), 400],
  ['a NUL in a field name', GET('GET / HTTP/1.1', `${H}X\x00A: b\r\n`), 400],
  ['a DEL in a field value', GET('GET / HTTP/1.1', `${H}X-A: a\x7fb\r\n`), 400],
  // Host
  ['two Hosts', GET('GET / HTTP/1.1', 'Host: a\r\nHost: b\r\n'), 400],
  ['two Hosts on HTTP/1.0', GET('GET / HTTP/1.0', 'Host: a\r\nHost: b\r\n'), 400],
  ['no Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['a Host that is not host[:port]', GET('GET / HTTP/1.1', 'Host: evil.example/reset?x=\r\n'), 400],
  ['a Host that is not host[:port] on HTTP/1.0', GET('GET / HTTP/1.0', 'Host: a/b\r\n'), 400],
  ['a Host with a port that is not digits', GET('GET / HTTP/1.1', 'Host: a:b\r\n'), 400],
  ['a Host with two ports', GET('GET / HTTP/1.1', 'Host: a:1:2\r\n'), 400],
  ['a Host with an IPv6 address out of brackets', GET('GET / HTTP/1.1', 'Host: ::1\r\n'), 400],
  ['a Host with an unclosed bracket', GET('GET / HTTP/1.1', 'Host: [::1\r\n'), 400],
  ['a Host with userinfo', GET('GET / HTTP/1.1', 'Host: user@a\r\n'), 400],
  ['a Host list', GET('GET / HTTP/1.1', 'Host: a, b\r\n'), 400],
  ['a Host with a bad percent-encoding', GET('GET / HTTP/1.1', 'Host: a%zz\r\n'), 400],
  // singleton fields
  ['two Content-Types', `${POST}Content-Type: text/plain\r\ncontent-type: application/json\r\nContent-Length: 0\r\n\r\n`, 400],
  ['two Authorizations', GET('GET / HTTP/1.1', `${H}Authorization: Basic YTpi\r\nAuthorization: Basic Yzpk\r\n`), 400],
  // request line
  ['an asterisk-form target on GET', GET('GET * HTTP/1.1'), 400],
  ['an authority-form target on GET', GET('GET example.com:80 HTTP/1.1'), 400],
  ['a relative target (no leading /)', GET('GET a/b HTTP/1.1'), 400],
  ['a target of only a query', GET('GET ?a HTTP/1.1'), 400],
  ['a fragment in the target', GET('GET /a#frag HTTP/1.1'), 400],
  ['a backslash in the path', GET('GET /public\\..\\admin HTTP/1.1'), 400],
  ['a space in the target', GET('GET /a b HTTP/1.1'), 400],
  ['a control byte in the target', GET('GET /a\x01 HTTP/1.1'), 400],
  ['a DEL in the target', GET('GET /a\x7f HTTP/1.1'), 400],
  ['an 8-bit byte in the target', GET('GET /a\xe9 HTTP/1.1'), 400],
  ['a tab between method and target', GET('GET\t/ HTTP/1.1'), 400],
  ['a tab between target and version', GET('GET /\tHTTP/1.1'), 400],
  ['a VT between method and target', GET('GET\x0b/ HTTP/1.1'), 400],
  ['whitespace after the version', GET('GET / HTTP/1.1 '), 400],
  ['whitespace before the method', GET(' GET / HTTP/1.1'), 400],
  ['a bare LF ending the request line', `GET / HTTP/1.1\n${H}\r\n`, 400],
  ['a bare CR ending the request line', `GET / HTTP/1.1\r${H}\r\n`, 400],
  ['HTTP/0.9 (no version)', 'GET /\r\n\r\n', 400],
  ['HTTP/0.9 as a version', GET('GET / HTTP/0.9'), 400],
  ['HTTP/1 without a minor version', GET('GET / HTTP/1'), 400],
  ['HTTP/1.01', GET('GET / HTTP/1.01'), 400],
  ['HTTP/1.2', GET('GET / HTTP/1.2'), 400],
  ['HTTP/2.0 on the HTTP/1 parser', GET('GET / HTTP/2.0'), 400],
  ['HTTP/1.10', GET('GET / HTTP/1.10'), 400],
  ['a lowercase protocol name', GET('GET / http/1.1'), 400],
  ['a lowercase method', GET('get / HTTP/1.1'), 400],
  ['an unknown method', GET('FOO / HTTP/1.1'), 400],
  // absolute-form targets
  ['an absolute-form target with a scheme other than http(s)', GET('GET ftp://a.example/p HTTP/1.1'), 400],
  ['an absolute-form target with userinfo', GET('GET http://u:p@a.example/p HTTP/1.1'), 400],
  ['an absolute-form target with an empty host', GET('GET http:///p HTTP/1.1'), 400],
  ['an absolute-form target with an empty host and a port', GET('GET http://:80/p HTTP/1.1'), 400],
  ['an absolute-form target with a bad port', GET('GET http://a.example:x/p HTTP/1.1'), 400],
  ['an absolute-form target on HTTP/1.1 without Host', 'GET http://a.example/ HTTP/1.1\r\n\r\n', 400],
  // Expect
  ['Expect: other than 100-continue', `${POST}Expect: foo\r\nContent-Length: 3\r\n\r\nabc`, 417],
  ['an empty Expect', `${POST}Expect: \r\nContent-Length: 3\r\n\r\nabc`, 417],
  ['Expect: 100-continue with another expectation', `${POST}Expect: 100-continue, foo\r\nContent-Length: 3\r\n\r\nabc`, 417],
  // pipelining behind a refused request: the connection closes, the app never sees the second
  ['a request pipelined behind one Node refuses', `GET /1 HTTP/1.1\r\n${H}X-A : b\r\n\r\nGET /2 HTTP/1.1\r\n${H}${C}\r\n`, 400],
  ['a request pipelined behind one without Host (Node\'s own 400)', `GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n${H}${C}\r\n`, 400],
  ['a request pipelined behind a body of one without Host', `GET /1 HTTP/1.1\r\nContent-Length: 1\r\n\r\naGET /2 HTTP/1.1\r\n${H}${C}\r\n`, 400],
  ['a request pipelined behind one strict-http.ts refuses', `GET * HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}${C}\r\n`, 400],
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

test.serial('CONNECT gets no answer and a closed connection, and never reaches the app', async (t) => {
  const before = await count();
  const answer = await raw(port, `CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n`);
  t.deepEqual(answer, { text: '', closed: true });
  const after = await count();
  t.is(after.calls, before.calls);
  t.is(after.pid, worker);
});

/**
 * [title, raw request (each closes its connection), what the app answers]: accepted, and the app
 * is handed exactly this method, target, Host and body length.
 */
const served: [string, string, string][] = [
  // request line
  ['one CRLF before the request line (RFC 9112 §2.2)', `\r\nGET / HTTP/1.1\r\n${H}${C}\r\n`, 'GET / host=x bytes=0'],
  ['two CRLFs before the request line', `\r\n\r\nGET / HTTP/1.1\r\n${H}${C}\r\n`, 'GET / host=x bytes=0'],
  ['a bare LF before the request line', `\nGET / HTTP/1.1\r\n${H}${C}\r\n`, 'GET / host=x bytes=0'],
  ['two spaces between method and target', `GET  /a HTTP/1.1\r\n${H}${C}\r\n`, 'GET /a host=x bytes=0'],
  ['two spaces between target and version', `GET /a  HTTP/1.1\r\n${H}${C}\r\n`, 'GET /a host=x bytes=0'],
  ['characters browsers send unencoded in a target', `GET /a|^{}?q="\\\`" HTTP/1.1\r\n${H}${C}\r\n`, 'GET /a|^{}?q="\\`" host=x'],
  ['OPTIONS *', `OPTIONS * HTTP/1.1\r\n${H}${C}\r\n`, 'OPTIONS * host=x'],
  ['HTTP/1.0 without Host', `GET / HTTP/1.0\r\n\r\n`, 'GET / host=undefined bytes=0'],
  // absolute-form: Host is the target's authority (RFC 9112 §3.2.2)
  ['an absolute-form target: Host becomes its authority', `GET http://a.example/p?q HTTP/1.1\r\nHost: b.example\r\n${C}\r\n`, 'GET http://a.example/p?q host=a.example bytes=0'],
  ['an absolute-form target with a port and an uppercase scheme', `GET HTTP://A.example:8080/p HTTP/1.1\r\nHost: b\r\n${C}\r\n`, 'host=A.example:8080 bytes=0'],
  ['an https absolute-form target without a path', `GET https://a.example HTTP/1.1\r\nHost: b\r\n${C}\r\n`, 'GET https://a.example host=a.example'],
  ['an absolute-form target with an IPv6 host', `GET http://[::1]:80/ HTTP/1.1\r\nHost: b\r\n${C}\r\n`, 'host=[::1]:80'],
  ['an absolute-form target on HTTP/1.0 without Host', `GET http://a.example/ HTTP/1.0\r\n\r\n`, 'GET http://a.example/ host=a.example'],
  // fields
  ['an underscore in a field name', `GET / HTTP/1.1\r\n${H}X_A: b\r\n${C}\r\n`, 'GET / host=x'],
  ['obs-text (8-bit bytes) and a tab in a field value', `GET / HTTP/1.1\r\n${H}X-A: \xe9\tb\r\n${C}\r\n`, 'GET / host=x'],
  // Host forms
  ['an empty Host (RFC 9112 §3.2)', `GET / HTTP/1.1\r\nHost: \r\n${C}\r\n`, 'host= bytes=0'],
  ['a Host with an empty port', `GET / HTTP/1.1\r\nHost: a:\r\n${C}\r\n`, 'host=a: bytes=0'],
  ['a Host with an IPv6 address and port', `GET / HTTP/1.1\r\nHost: [::1]:8000\r\n${C}\r\n`, 'host=[::1]:8000'],
  ['a Host with sub-delims and percent-encoding', `GET / HTTP/1.1\r\nHost: a,b%41\r\n${C}\r\n`, 'host=a,b%41'],
  ['a Host with whitespace around it', `GET / HTTP/1.1\r\nHost:  a  \r\n${C}\r\n`, 'host=a bytes=0'],
  // Content-Length
  ['a Content-Length with leading zeros (1*DIGIT)', `${POST}Content-Length: 003\r\n${C}\r\nabc`, 'POST / host=x bytes=3'],
  ['a Content-Length of 00', `${POST}Content-Length: 00\r\n${C}\r\n`, 'POST / host=x bytes=0'],
  ['a Content-Length with whitespace around it', `${POST}Content-Length:\t3 \r\n${C}\r\nabc`, 'POST / host=x bytes=3'],
  ['a Content-Length on GET', `GET / HTTP/1.1\r\n${H}Content-Length: 3\r\n${C}\r\nabc`, 'GET / host=x bytes=3'],
  ['a Content-Length on HTTP/1.0', `POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc`, 'POST / host=undefined bytes=3'],
  // Transfer-Encoding
  ['Transfer-Encoding in any case', `${POST}Transfer-Encoding: CHUNKED\r\n${C}\r\n${CHUNKED_BODY}`, 'POST / host=x bytes=3'],
  ['Transfer-Encoding with spaces around chunked', `${POST}Transfer-Encoding:  chunked  \r\n${C}\r\n${CHUNKED_BODY}`, 'POST / host=x bytes=3'],
  ['Transfer-Encoding with an empty list element', `${POST}Transfer-Encoding: , chunked\r\n${C}\r\n${CHUNKED_BODY}`, 'POST / host=x bytes=3'],
  ['a chunked GET', `GET / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n${C}\r\n${CHUNKED_BODY}`, 'GET / host=x bytes=3'],
  // chunks
  ['chunk sizes in uppercase hex with leading zeros', `${TE}${C}\r\n000A\r\nabcdefghij\r\n${'0'.repeat(20)}3\r\nabc\r\n0\r\n\r\n`, 'bytes=13'],
  ['chunk extensions: a name, name=token, two, quoted with 8-bit bytes, on the last chunk', `${TE}${C}\r\n1;a\r\na\r\n1;a=b;c=d\r\nb\r\n1;a="\xe9 x"\r\nc\r\n0;z=1\r\n\r\n`, 'bytes=3'],
  ['a chunked body with an allowed trailer and a chunk extension', `${TE}${C}\r\n3;name="a b"\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n`, 'POST / host=x bytes=3 trailers={"x-checksum":"1"}'],
  // Expect
  ['Expect: 100-continue, in any case', `${POST}Expect: 100-Continue\r\nContent-Length: 3\r\n${C}\r\nabc`, 'POST / host=x bytes=3'],
  ['Expect: 100-continue on two lines', `${POST}Expect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 3\r\n${C}\r\nabc`, 'bytes=3'],
  ['Expect on HTTP/1.0 (ignored, RFC 9110 §10.1.1)', `POST / HTTP/1.0\r\nExpect: foo\r\nContent-Length: 3\r\n\r\nabc`, 'POST / host=undefined bytes=3'],
];

test.serial('accepted request shapes reach the app exactly as sent', async (t) => {
  for (const [title, bytes, seen] of served) {
    const before = await count();
    const answer = await raw(port, Buffer.from(bytes, 'latin1'));
    t.regex(answer.text, new RegExp(`^${CONTINUE}HTTP/1\\.1 200 `), `${title}: ${JSON.stringify(answer.text)}`);
    t.true(answer.text.includes(seen), `${title}: ${JSON.stringify(answer.text)}`);
    t.true(answer.closed, `${title}: closed`);
    const after = await count();
    t.is(after.calls - before.calls, 1, title);
    t.is(after.pid, worker, title);
  }
});

test.serial('Expect: 100-continue gets 100 Continue before the final answer', async (t) => {
  const answer = await raw(port, `${POST}Expect: 100-continue\r\nContent-Length: 3\r\n${C}\r\nabc`);
  t.regex(answer.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
});

/** Splits what a server answered on one connection into its responses' status codes and bodies. */
function responses(text: string): string[] {
  return text.split(/(?=HTTP\/1\.1 \d{3} )/).filter((r) => r !== '').map((r) => `${r.slice(9, 12)} ${/seen [^\n]*/.exec(r)?.[0] ?? ''}`.trim());
}

test.serial('pipelined requests on one connection are each answered, in order', async (t) => {
  const answer = await raw(port, `GET /1 HTTP/1.1\r\n${H}\r\n${POST}Content-Length: 3\r\n\r\nabc`
    + `${TE}\r\n${CHUNKED_BODY}GET /4 HTTP/1.1\r\n${H}${C}\r\n`);
  t.deepEqual(responses(answer.text), ['200 seen GET /1 host=x bytes=0 trailers={}', '200 seen POST / host=x bytes=3 trailers={}',
    '200 seen POST / host=x bytes=3 trailers={}', '200 seen GET /4 host=x bytes=0 trailers={}']);
  t.true(answer.closed);
});

// RFC 9112 §9.6: the response to a request with the close option is sent, then the connection
// closes, and nothing after it is processed. Node's parser treats bytes after such a request as an
// error, and Node's default clientError handling would answer 400 in place of the response:
// each server's clientError listener is answerClientError (strict-http.ts) instead.
const closers: [string, string][] = [
  ['Connection: close', `GET /1 HTTP/1.1\r\n${H}${C}\r\n`],
  ['Connection: keep-alive, Close', `GET /1 HTTP/1.1\r\n${H}Connection: keep-alive, Close\r\n\r\n`],
  ['HTTP/1.0 without keep-alive', 'GET /1 HTTP/1.0\r\n\r\n'],
];
for (const [title, bytes] of closers) {
  test.serial(`${title} is honoured: the response goes out, and what is pipelined after it never reaches the app`, async (t) => {
    const before = await count();
    const answer = await raw(port, `${bytes}GET /2 HTTP/1.1\r\n${H}\r\n`);
    t.deepEqual(responses(answer.text).map((r) => r.slice(0, 15)), ['200 seen GET /1']);
    t.true(answer.closed);
    t.is((await count()).calls - before.calls, 1);
  });
}

// Chunk framing is parsed after the head: Node has handed the request to the app by then. A bad
// chunk makes llhttp fail, Node answers 400 and closes, and the app's body stream never ends.
const badChunks: [string, string][] = [
  ['a chunk size that is not hex', `${TE}\r\nzz\r\nabc\r\n0\r\n\r\n`],
  ['an empty chunk size', `${TE}\r\n\r\nabc\r\n0\r\n\r\n`],
  ['a negative chunk size', `${TE}\r\n-3\r\nabc\r\n0\r\n\r\n`],
  ['a signed chunk size', `${TE}\r\n+3\r\nabc\r\n0\r\n\r\n`],
  ['a 0x-prefixed chunk size', `${TE}\r\n0x3\r\nabc\r\n0\r\n\r\n`],
  ['a chunk size that overflows 64 bits', `${TE}\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n`],
  ['whitespace before a chunk size', `${TE}\r\n 3\r\nabc\r\n0\r\n\r\n`],
  ['whitespace after a chunk size', `${TE}\r\n3 \r\nabc\r\n0\r\n\r\n`],
  ['a tab after a chunk size', `${TE}\r\n3\t\r\nabc\r\n0\r\n\r\n`],
  ['a bare LF after a chunk size', `${TE}\r\n3\nabc\r\n0\r\n\r\n`],
  ['a bare CR after a chunk size', `${TE}\r\n3\rabc\r\n0\r\n\r\n`],
  ['whitespace before a chunk extension', `${TE}\r\n3 ;a=b\r\nabc\r\n0\r\n\r\n`],
  ['whitespace after the ; of a chunk extension', `${TE}\r\n3; a=b\r\nabc\r\n0\r\n\r\n`],
  ['whitespace around the = of a chunk extension', `${TE}\r\n3;a = b\r\nabc\r\n0\r\n\r\n`],
  ['an empty chunk extension', `${TE}\r\n3;\r\nabc\r\n0\r\n\r\n`],
  ['a chunk extension that is not a token', `${TE}\r\n3;a@b\r\nabc\r\n0\r\n\r\n`],
  ['an unterminated quoted chunk extension', `${TE}\r\n3;a="b\r\nabc\r\n0\r\n\r\n`],
  ['an 8-bit byte in an unquoted chunk extension', `${TE}\r\n3;a=\xe9\r\nabc\r\n0\r\n\r\n`],
  ['a bare CR in a chunk extension', `${TE}\r\n3;a\rb\r\nabc\r\n0\r\n\r\n`],
  ['a bare LF ending a chunk extension', `${TE}\r\n3;a\nabc\r\n0\r\n\r\n`],
  ['a NUL in a chunk extension', `${TE}\r\n3;a\x00\r\nabc\r\n0\r\n\r\n`],
  ['a control byte in a chunk extension', `${TE}\r\n3;a=\x01\r\nabc\r\n0\r\n\r\n`],
  ['chunk data without its CRLF', `${TE}\r\n3\r\nabcX0\r\n\r\n`],
  ['chunk data longer than its size', `${TE}\r\n3\r\nabcd\r\n0\r\n\r\n`],
  ['chunk data ended by a bare LF', `${TE}\r\n3\r\nabc\n0\r\n\r\n`],
  ['chunk data ended by a bare CR', `${TE}\r\n3\r\nabc\r0\r\n\r\n`],
  ['a last chunk ended by a bare LF', `${TE}\r\n3\r\nabc\r\n0\n\r\n`],
  ['a chunked body ended by a bare LF', `${TE}\r\n3\r\nabc\r\n0\r\n\n`],
  ['a Content-Length trailer', `${TE}\r\n3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n`],
  ['a Transfer-Encoding trailer', `${TE}\r\n3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n`],
  ['a folded trailer', `${TE}\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n 2\r\n\r\n`],
  ['a trailer with whitespace before the colon', `${TE}\r\n3\r\nabc\r\n0\r\nX-Sum : 1\r\n\r\n`],
  ['a trailer ended by a bare LF', `${TE}\r\n3\r\nabc\r\n0\r\nX-Sum: 1\n\r\n`],
  ['a NUL in a trailer', `${TE}\r\n3\r\nabc\r\n0\r\nX-Sum: 1\x00\r\n\r\n`],
  ['a trailer line without a colon', `${TE}\r\n3\r\nabc\r\n0\r\nX-Sum\r\n\r\n`],
  // llhttp reads `chunked<TAB>` as another coding, though Node trims the tab from the value it shows.
  ['Transfer-Encoding chunked with a tab after it', `${POST}Transfer-Encoding: chunked\t\r\n\r\n${CHUNKED_BODY}`],
  ['a chunk pipelined behind a bad chunk', `${TE}\r\nzz\r\nGET /2 HTTP/1.1\r\n${H}${C}\r\n`],
];
for (const [title, bytes] of badChunks) {
  test.serial(`refuses ${title}; the app never gets the body`, async (t) => {
    await expectRefused(t, bytes, 400, { calls: 1, failed: 1 });
  });
}

// Trailers Node accepts but RFC 9110 §6.5.1 forbids: strict-http.ts fails the body stream.
for (const field of ['Host: evil', 'Authorization: Basic YTpi', 'Trailer: X', 'TE: trailers', 'Content-Type: text/html', 'Connection: close',
  'Expect: 100-continue', 'Cookie: a=b', 'Range: bytes=0-1', 'If-None-Match: "x"', 'Max-Forwards: 1', 'Upgrade: h2c', 'Cache-Control: no-cache']) {
  test.serial(`refuses the trailer field ${field.split(':')[0]!}; the app's body stream fails instead of ending`, async (t) => {
    const after = await expectRefused(t, `${TE}\r\n3\r\nabc\r\n0\r\n${field}\r\n\r\n`, 400, { calls: 1, failed: 1 });
    t.is(after.last, 'POST /: TSG_ERR_FORBIDDEN_TRAILER');
  });
}

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
