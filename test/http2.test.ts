// HTTP/2 (src/worker/http2.ts) against a real daemon: over TLS (ALPN, HTTP/1.1 on the same
// socket) and cleartext with prior knowledge (h2c), for both app shapes, with Node's http2 client
// and curl; the drain (two-step GOAWAY) under an h2 load through HUP and USR2; the request limits
// per stream; and the known HTTP/2 floods against one worker while another client is served.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect, type ClientHttp2Session, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { connect as tcpConnect, createConnection as unixConnect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { type Daemon, alive, fixture, freePort, get, pidIn, runCli, sleep, start, tempDir, waitUntil } from './helpers/daemon.js';
import { H2Load } from './helpers/h2-load.js';
import { stopAtTeardown } from './helpers/load.js';
import { selfSigned } from './helpers/tls.js';

interface Transport {
  /** Flags that turn HTTP/2 on. */
  flags(dir: string): string[];
  scheme: 'http' | 'https';
  /** Node's client options (the CA for TLS). */
  client(dir: string): SecureClientSessionOptions;
  curl(dir: string): string[];
}

const TRANSPORTS: Record<'tls' | 'h2c', Transport> = {
  tls: {
    flags: (dir) => ['--certfile', join(dir, 'srv.crt'), '--keyfile', join(dir, 'srv.key'), '--http-protocols', 'h2,h1'],
    scheme: 'https',
    client: (dir) => ({ ca: readFileSync(join(dir, 'srv.crt')) }),
    curl: (dir) => ['--http2', '--cacert', join(dir, 'srv.crt')],
  },
  h2c: {
    flags: () => ['--http2-cleartext', 'prior-knowledge'],
    scheme: 'http',
    client: () => ({}),
    curl: () => ['--http2-prior-knowledge'],
  },
};

function setUp(): string {
  const dir = tempDir();
  selfSigned(dir, 'srv');
  return dir;
}

interface Answer { status: number; headers: Record<string, unknown>; body: string }

/** One request on a session (opened for it unless given); rejects without an answer within 5 s. */
function h2Request(target: string | ClientHttp2Session, opts: SecureClientSessionOptions, headers: OutgoingHttpHeaders, body?: string): Promise<Answer> {
  const session = typeof target === 'string' ? connect(target, opts) : target;
  let timer: NodeJS.Timeout | undefined;
  return new Promise<Answer>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
    session.once('error', reject);
    session.once('close', () => reject(new Error('session closed before the answer')));
    const req = session.request(headers);
    let status = 0;
    let got: Record<string, unknown> = {};
    let text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => { status = Number(h[':status']); got = h; });
    req.on('data', (c: string) => { text += c; });
    req.on('end', () => (status === 0 ? reject(new Error('stream ended without a response')) : resolve({ status, headers: got, body: text })));
    req.on('error', reject);
    req.end(body);
  }).finally(() => {
    clearTimeout(timer);
    if (typeof target === 'string') session.destroy();
  });
}

function curl(args: string[]): Promise<{ body: string; version: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_version}', ...args], (err, stdout) => {
      if (err) return reject(err);
      const at = stdout.lastIndexOf('\n');
      resolve({ body: stdout.slice(0, at), version: stdout.slice(at + 1) });
    });
  });
}

/** HTTP/1.1 on the same socket: plain, or over TLS without ALPN h2. */
function http1(t: Transport, dir: string, url: string): Promise<Answer> {
  if (t.scheme === 'http') return get(url).then((r) => ({ status: r.status, headers: r.headers, body: r.body }));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: readFileSync(join(dir, 'srv.crt')), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: `${body}` }));
    });
    req.on('error', reject);
    req.end();
  });
}

const APPS = {
  listener: { file: 'app.mjs', method: 'GET', body: undefined, status: 200, expect: 'hello GET /x\n' },
  fetch: { file: 'fetch-app.mjs', method: 'POST', body: 'abc', status: 201, expect: JSON.stringify({ path: '/x', body: 'abc' }) },
} as const;

for (const [tname, tr] of Object.entries(TRANSPORTS)) {
  for (const [aname, app] of Object.entries(APPS)) {
    test(`${tname}, ${aname} app: Node's http2 client and curl are served HTTP/2, HTTP/1.1 still on the same socket; access log, metrics and status count HTTP/2`, async (t) => {
      const dir = setUp();
      const [port, mport] = [await freePort(), await freePort()];
      const pidfile = join(dir, 'pid');
      const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--access-logfile', '-', '--metrics-bind', `127.0.0.1:${mport}`, '-p', pidfile, ...tr.flags(dir), fixture(app.file)]);
      await d.waitReady();
      const url = `${tr.scheme}://127.0.0.1:${port}`;
      const headers = { ':path': '/x', ':method': app.method, ...(app.body ? { 'content-type': 'text/plain' } : {}) };
      const node = await h2Request(url, tr.client(dir), headers, app.body);
      t.is(node.status, app.status);
      t.is(node.body.trim(), app.expect.trim());
      const viaCurl = await curl([...tr.curl(dir), ...(app.body ? ['--data-binary', app.body] : []), `${url}/x`]);
      t.is(viaCurl.version, '2');
      t.is(viaCurl.body.trim(), app.expect.trim());
      const one = await http1(tr, dir, `${url}/x`);
      t.is(one.status, app.status, 'HTTP/1.1 on the same socket');
      await d.waitForLog(/"(GET|POST) \/x HTTP\/2\.0" 20[01] [^]*"(GET|POST) \/x HTTP\/2\.0" 20[01] /);
      await d.waitForLog(/"GET \/x HTTP\/1\.1" 20[01] /);
      const metrics = (await get(`http://127.0.0.1:${mport}/metrics`)).body;
      t.regex(metrics, /tsgunicorn_http_requests_total\{status_class="2xx",protocol="HTTP\/2\.0"\} 2\b/);
      t.regex(metrics, /tsgunicorn_http_requests_total\{status_class="2xx",protocol="HTTP\/1\.1"\} 1\b/);
      const requests = async (): Promise<number> => (JSON.parse((await runCli(['status', '--json', '--pid', pidfile])).stdout) as { workers: { requests: number }[] }).workers.reduce((n, w) => n + w.requests, 0);
      await waitUntil('tsgunicorn status to count 3 requests', async () => (await requests()) === 3, 10000);
      t.pass();
    });
  }
}

/** A deploy or a retirement of workers, done once its old workers (or master) are gone. */
interface Operation {
  /** Workers to start with, and more flags. */
  readonly start: number;
  readonly flags: readonly string[];
  run(d: Daemon, pidfile: string): Promise<void>;
  /** How many sessions the old workers close at least. */
  readonly closes: number;
}

const gone = (pids: number[]): Promise<void> => waitUntil('the old workers gone', () => pids.every((p) => !alive(p)), 40000);

const OPERATIONS: Record<string, Operation> = {
  HUP: {
    start: 2,
    flags: [],
    async run(d) {
      const old = d.workers();
      d.signal('SIGHUP');
      await d.waitForLog(/Reloaded: 2 new worker/, 30000);
      await gone(old);
    },
    closes: 20,
  },
  USR2: {
    start: 2,
    flags: [],
    async run(d, pidfile) {
      d.signal('SIGUSR2');
      await d.waitForLog(/Upgrade complete/, 30000);
      await waitUntil('the old master gone', () => !alive(d.pid) && pidIn(pidfile) !== d.pid, 40000);
    },
    closes: 20,
  },
  // One worker holds every session; TTIN adds a younger one, and TTOU retires the oldest.
  'TTIN then TTOU': {
    start: 1,
    flags: [],
    async run(d) {
      const [first] = d.workers();
      d.signal('SIGTTIN');
      await d.waitWorkers(2);
      d.signal('SIGTTOU');
      await gone([first!]);
    },
    closes: 20,
  },
  'max_requests recycling': {
    start: 2,
    flags: ['--max-requests', '3000'],
    async run(d) {
      const m = await d.waitForLog(/Worker (\d+) served \d+ requests \(max_requests\): replacing it/, 30000);
      await gone([Number(m[1])]);
    },
    closes: 1,
  },
};

for (const [tname, tr] of Object.entries(TRANSPORTS)) {
  for (const [oname, op] of Object.entries(OPERATIONS)) {
    test.serial(`${tname}: ${oname} under an h2 load of 20 sessions x 10 streams fails no stream, and every session the server closes gets GOAWAY first`, async (t) => {
      const dir = setUp();
      const port = await freePort();
      const pidfile = join(dir, 'pid');
      const d = start(t, ['-w', String(op.start), '-b', `127.0.0.1:${port}`, '-p', pidfile, ...op.flags, ...tr.flags(dir), fixture('app.mjs')]);
      await d.waitReady();
      const load = stopAtTeardown(t, new H2Load(`${tr.scheme}://127.0.0.1:${port}`, 20, 10, tr.client(dir)));
      await waitUntil('load running', () => load.served > 1000, 30000);
      const oldWorkers = new Set(d.workers().map(String));
      await op.run(d, pidfile);
      const after = load.served;
      // With a shared socket one worker may accept all 20 sessions, so count kinds, not pids:
      // streams answered by an old worker, then by a new one.
      const isNew = (w: string): boolean => !oldWorkers.has(w);
      await waitUntil('served after it, by a new worker', () => load.served > after + 1000 && [...load.seen].some(isNew), 30000);
      const r = await load.stop();
      t.log(`${r.ok} streams answered, ${r.failed} failed, ${r.refused} refused by the client at a GOAWAY and sent again`, r.errors, `${r.sessionsClosed} sessions closed by the server, ${r.closedAfterGoaway} after a GOAWAY; workers seen: ${r.workers.size}`);
      t.is(r.failed, 0, JSON.stringify(r.errors));
      t.true(r.sessionsClosed >= op.closes, 'the old workers closed their sessions');
      t.is(r.closedAfterGoaway, r.sessionsClosed, 'each with a GOAWAY before the close');
      const seen = [...r.workers];
      t.true(seen.some((w) => !isNew(w)) && seen.some(isNew), `served by an old worker and a new one (old ${[...oldWorkers]}, seen ${seen})`);
    });
  }
}

test('HTTP/2 requests get the request limits and singleton rules per stream; the session goes on; h2c only from trusted peers; bad settings exit 2', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--http2-cleartext', 'prior-knowledge', '--limit-request-fields', '10', '--limit-request-line', '100', fixture('app.mjs')]);
  await d.waitReady();
  const session = connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.destroy());
  const many: OutgoingHttpHeaders = { ':path': '/' };
  for (let i = 0; i < 11; i++) many[`x-f${i}`] = 'v';
  t.is((await h2Request(session, {}, many)).status, 431);
  t.is((await h2Request(session, {}, { ':path': `/${'a'.repeat(120)}` })).status, 414);
  // Node's client will not send a field twice: raw frames, two content-type fields (HPACK
  // literals of static entry 31); the answer's :status 400 is static entry 12 (0x8c).
  const contentType = (v: string): Buffer => Buffer.concat([Buffer.from([0x0f, 0x10, v.length]), Buffer.from(v)]);
  const answer = await rawFrames(port, frame(HEADERS, END_HEADERS | END_STREAM, 1, Buffer.concat([GET, contentType('a/b'), contentType('c/d')])));
  t.is(answer.headers[0], 0x8c, 'a duplicate content-type gets 400');
  const ok = await h2Request(session, {}, { ':path': '/after' });
  t.is(ok.status, 200, 'the same session serves on');
  t.is(ok.body, 'hello GET /after\n');

  // A client not in forwarded_allow_ips is served HTTP/1.x only: its preface is a bad request.
  const port2 = await freePort();
  const d2 = start(t, ['-w', '1', '-b', `127.0.0.1:${port2}`, '--http2-cleartext', 'prior-knowledge', '--forwarded-allow-ips', '10.9.9.9', fixture('app.mjs')]);
  await d2.waitReady();
  await t.throwsAsync(h2Request(`http://127.0.0.1:${port2}`, {}, { ':path': '/' }));
  t.is((await get(`http://127.0.0.1:${port2}/`)).status, 200);

  for (const [args, message] of [
    [['--http-protocols', 'h2,h1'], /http_protocols: h2 needs TLS/],
    [['--http-protocols', 'h3'], /http_protocols: expected a list of h1 and h2/],
    [['--http2-cleartext', 'upgrade'], /http2_cleartext: expected one of off, prior-knowledge/],
  ] as const) {
    const r = await runCli([...args, fixture('app.mjs')]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split('\n').length, 1);
  }
});

test('responses with HTTP/1.1 connection fields (Hono streamSSE, a proxied fetch Response) are served over HTTP/2 without them, and the worker is not replaced', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--http2-cleartext', 'prior-knowledge', fixture('hop-headers-app.mjs')]);
  await d.waitReady();
  const [worker] = await d.waitWorkers(1);
  const session = connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.destroy());
  const sse = await h2Request(session, {}, { ':path': '/sse' });
  t.is(sse.status, 200);
  t.regex(sse.body, /data: one/);
  t.is(sse.headers['transfer-encoding'], undefined);
  const proxied = await h2Request(session, {}, { ':path': '/proxied' });
  t.is(proxied.body, 'proxied body');
  for (const name of ['connection', 'keep-alive', 'transfer-encoding']) t.is(proxied.headers[name], undefined, name);
  t.is((await h2Request(session, {}, { ':path': '/throw' })).status, 500);
  t.deepEqual(d.workers(), [worker], 'the same worker serves on');
  t.notRegex(d.output, /Unhandled rejection|Uncaught exception|replacing it/);
});

test('on a unix socket (a proxy on the same host) the peer is trusted: h2c is served, X-Forwarded-For is kept', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'app.sock');
  const d = start(t, ['-w', '1', '-b', `unix:${path}`, '--http2-cleartext', 'prior-knowledge', fixture('client-address.mjs')]);
  await d.waitReady();
  const session = connect('http://localhost', { createConnection: () => unixConnect(path) });
  t.teardown(() => session.destroy());
  const h2 = await h2Request(session, {}, { ':path': '/', 'x-forwarded-for': '203.0.113.7' });
  t.is(h2.status, 200);
  t.is((JSON.parse(h2.body) as { xff: string | null }).xff, '203.0.113.7');
  const h1 = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ socketPath: path, path: '/', headers: { 'X-Forwarded-For': '203.0.113.8' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
  t.is((JSON.parse(h1) as { xff: string | null }).xff, '203.0.113.8', 'and HTTP/1.1 on the same socket');
});

test('h2c behind the PROXY protocol is judged by the proxy, not by the client it names', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--http2-cleartext', 'prior-knowledge', '--proxy-protocol', fixture('app.mjs')]);
  await d.waitReady();
  const proxied = Buffer.from('PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n');
  const answer = await rawFrames(port, frame(HEADERS, END_HEADERS | END_STREAM, 1, GET), proxied);
  t.is(answer.headers[0], 0x88, 'served over HTTP/2 (:status 200, static entry 8)');
});

test('an h2c session that sends no request within header_timeout is closed; worker_connections counts sessions', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--http2-cleartext', 'prior-knowledge', '--header-timeout', '1', '--worker-connections', '2', fixture('app.mjs')]);
  await d.waitReady();
  const silent = tcpConnect(port, '127.0.0.1');
  silent.on('error', () => { /* closed by the server */ });
  silent.resume();
  silent.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
  const t0 = Date.now();
  await new Promise((done) => silent.once('close', done));
  const took = Date.now() - t0;
  t.true(took >= 900 && took < 5000, `closed after ${took} ms`);

  const sessions = [connect(`http://127.0.0.1:${port}`), connect(`http://127.0.0.1:${port}`)];
  t.teardown(() => { for (const s of sessions) s.destroy(); });
  for (const s of sessions) t.is((await h2Request(s, {}, { ':path': '/' })).status, 200);
  await t.throwsAsync(h2Request(`http://127.0.0.1:${port}`, {}, { ':path': '/' }), undefined, 'a third session is over worker_connections');
  sessions[0]!.close();
  await waitUntil('a slot free again', async () => (await h2Request(`http://127.0.0.1:${port}`, {}, { ':path': '/' }).catch(() => null))?.status === 200, 10000);
  t.pass();
});

// ---- floods ---------------------------------------------------------------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** An HTTP/2 frame: type, flags, stream id, payload (RFC 9113 §4.1). */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

const [HEADERS, RST_STREAM, SETTINGS, PING, CONTINUATION] = [1, 3, 4, 6, 9];
const [END_STREAM, END_HEADERS] = [0x1, 0x4];
/** GET / over http with :authority 127.0.0.1, in HPACK (static-table indexes, a literal without indexing). */
const GET = Buffer.concat([Buffer.from([0x82, 0x84, 0x86, 0x01, 9]), Buffer.from('127.0.0.1')]);
/** One more header field, x-a: 100 bytes, as a literal (for CONTINUATION frames). */
const FIELD = Buffer.concat([Buffer.from([0x00, 3]), Buffer.from('x-a'), Buffer.from([100]), Buffer.alloc(100, 0x62)]);

interface Flood {
  /** Frames sent once after the preface. */
  readonly start: Buffer;
  /** The next burst of frames; `n` counts bursts. */
  burst(n: number): Buffer;
  /** Whether the attacker stops reading (floods whose answers pile up in the server). */
  readonly unread: boolean;
}

const FLOODS: Record<string, Flood> = {
  'rapid reset (CVE-2023-44487)': {
    start: Buffer.alloc(0),
    burst: (n) => Buffer.concat(Array.from({ length: 100 }, (_, i) => {
      const id = (n * 100 + i) * 2 + 1;
      return Buffer.concat([frame(HEADERS, END_HEADERS | END_STREAM, id, GET), frame(RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8]))]);
    })),
    unread: false,
  },
  'CONTINUATION flood (CVE-2024-27316)': {
    start: frame(HEADERS, END_STREAM, 1, GET),
    burst: () => Buffer.concat(Array.from({ length: 100 }, () => frame(CONTINUATION, 0, 1, FIELD))),
    unread: false,
  },
  'SETTINGS flood': { start: Buffer.alloc(0), burst: () => Buffer.concat(Array.from({ length: 200 }, () => frame(SETTINGS, 0, 0))), unread: true },
  'PING flood': { start: Buffer.alloc(0), burst: () => Buffer.concat(Array.from({ length: 200 }, () => frame(PING, 0, 0, Buffer.alloc(8)))), unread: true },
};

/** Sends the preface, SETTINGS and `frames`; resolves with the payload of the first HEADERS frame the server sends. */
function rawFrames(port: number, frames: Buffer, before: Buffer = Buffer.alloc(0)): Promise<{ headers: Buffer }> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no HEADERS frame within 5 s')); }, 5000);
    sock.on('error', reject);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (let at = 0; at + 9 <= buf.length;) {
        const length = buf.readUIntBE(at, 3);
        if (at + 9 + length > buf.length) break;
        if (buf[at + 3] === HEADERS) {
          clearTimeout(timer);
          sock.destroy();
          return resolve({ headers: buf.subarray(at + 9, at + 9 + length) });
        }
        at += 9 + length;
      }
    });
    sock.write(Buffer.concat([before, PREFACE, frame(SETTINGS, 0, 0), frames]));
  });
}

/** The worker's CPU time (user + system, seconds) and resident memory (MiB), from /proc. */
function usage(pid: number): { cpu: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))!;
  return { cpu: (Number(fields[11]) + Number(fields[12])) / 100, rssMiB: Number(rss[1]) / 1024 };
}

/** Floods for up to `ms`; resolves with how long until the server closed the connection (null: it did not). */
function flood(port: number, f: Flood, ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    const sock = tcpConnect(port, '127.0.0.1');
    const t0 = Date.now();
    let closed = false;
    sock.on('error', () => { /* reset by the server */ });
    sock.on('close', () => { if (!closed) { closed = true; resolve(Date.now() - t0); } });
    sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0), f.start]));
    if (f.unread) sock.pause();
    let n = 0;
    const burst = (): void => {
      if (closed) return;
      if (Date.now() - t0 > ms) { closed = true; sock.destroy(); resolve(null); return; }
      if (sock.write(f.burst(n++))) setImmediate(burst);
      else sock.once('drain', burst);
    };
    burst();
  });
}

const floodMacro = test.macro(async (t: ExecutionContext, f: Flood) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--http2-cleartext', 'prior-knowledge', fixture('app.mjs')]);
  await d.waitReady();
  const [worker] = await d.waitWorkers(1);
  const before = usage(worker!);
  // Another client asks all along: over HTTP/1.1 and over its own HTTP/2 session.
  let asking = true;
  const answers: number[] = [];
  const other = connect(`http://127.0.0.1:${port}`);
  t.teardown(() => other.destroy());
  const ask = (async () => {
    while (asking) {
      const [a, b] = await Promise.all([get(`http://127.0.0.1:${port}/`, {}, 5000).catch(() => null), h2Request(other, {}, { ':path': '/' }).catch(() => null)]);
      answers.push(a?.status ?? 0, b?.status ?? 0);
      await sleep(50);
    }
  })();
  const closedAfter = await flood(port, f, 5000);
  await sleep(500);
  const mid = usage(worker!);
  await sleep(1000);
  const after = usage(worker!);
  asking = false;
  await ask;
  t.log(`closed by the server after ${closedAfter} ms; worker CPU ${(mid.cpu - before.cpu).toFixed(2)} s in the attack, ${(after.cpu - mid.cpu).toFixed(2)} s in the second after; RSS ${before.rssMiB.toFixed(0)} -> ${mid.rssMiB.toFixed(0)} MiB; ${answers.length} answers to the other client`);
  t.not(closedAfter, null, 'the server closed the attacking connection');
  t.true(closedAfter! < 3000, `within 3 s (${closedAfter} ms)`);
  t.true(answers.length >= 4 && answers.every((s) => s === 200), `the other client was served throughout: ${answers.join(' ')}`);
  t.true(after.cpu - mid.cpu < 0.3, 'the worker is idle again once the attack is over');
  t.true(mid.rssMiB - before.rssMiB < 64, 'memory stays bounded');
  t.deepEqual(d.workers(), [worker], 'the worker was not replaced');
});

for (const [name, f] of Object.entries(FLOODS)) test.serial(`${name} against a worker: the connection is closed, CPU and memory stay bounded, another client is served`, floodMacro, f);
