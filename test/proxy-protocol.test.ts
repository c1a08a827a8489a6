// Client addresses through proxies (docs/fleet.md): the PROXY protocol v1 and v2 parser (unit and
// fuzz tests), and a real worker behind it and behind forwarded_allow_ips, over raw sockets.

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection as connectUnix, connect as connectTcp, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { allowsPeer, markLocalPeers, parseAllowList } from '../src/sockets/allow-list.js';
import { parseProxyHeader, type ProxyHeader } from '../src/worker/proxy-protocol.js';
import { fixture, freePort, get, rawHttp, runCli, start, tempDir, waitUntil, type Daemon } from './helpers/daemon.js';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A PROXY v2 header: PROXY (or LOCAL) over TCP, IPv4 or IPv6, with `tlv` bytes of TLVs after the addresses. */
function v2(family: 4 | 6, src: number[], sport: number, command: 'PROXY' | 'LOCAL' = 'PROXY', tlv = 0): Buffer {
  const addrLen = family === 4 ? 12 : 36;
  const b = Buffer.alloc(16 + addrLen + tlv);
  SIG.copy(b);
  b[12] = 0x20 | (command === 'PROXY' ? 1 : 0);
  b[13] = (family === 4 ? 0x10 : 0x20) | 0x01;
  b.writeUInt16BE(addrLen + tlv, 14);
  if (family === 4) { Buffer.from(src).copy(b, 16); b.writeUInt16BE(sport, 24); b.writeUInt16BE(80, 26); }
  else { for (let i = 0; i < 8; i++) b.writeUInt16BE(src[i]!, 16 + 2 * i); b.writeUInt16BE(sport, 48); b.writeUInt16BE(80, 50); }
  return b;
}

const v1 = (text: string): Buffer => Buffer.from(text, 'latin1');

test('parseProxyHeader: v1 and v2, each family, LOCAL and UNKNOWN, and the refusals', (t) => {
  t.deepEqual(parseProxyHeader(v1('PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\nGET')), { length: 42, source: { address: '203.0.113.7', port: 40000, family: 'IPv4' } });
  t.deepEqual(parseProxyHeader(v1('PROXY TCP6 2001:db8::7 ::1 1 65535\r\n')), { length: 36, source: { address: '2001:db8::7', port: 1, family: 'IPv6' } });
  t.deepEqual(parseProxyHeader(v1('PROXY UNKNOWN\r\n')), { length: 15, source: null });
  t.deepEqual(parseProxyHeader(v2(4, [198, 51, 100, 9], 5555)), { length: 28, source: { address: '198.51.100.9', port: 5555, family: 'IPv4' } });
  t.deepEqual(parseProxyHeader(v2(6, [0x2001, 0xdb8, 0, 0, 0, 0, 0, 9], 6666, 'PROXY', 5)), { length: 57, source: { address: '2001:db8::9', port: 6666, family: 'IPv6' } });
  t.deepEqual(parseProxyHeader(v2(4, [1, 2, 3, 4], 1, 'LOCAL')), { length: 28, source: null });
  t.is(parseProxyHeader(v1('PROX')), 'incomplete');
  t.is(parseProxyHeader(v1('PROXY TCP4 1.2.3.4')), 'incomplete');
  t.is(parseProxyHeader(v2(4, [1, 2, 3, 4], 1).subarray(0, 27)), 'incomplete');
  for (const bad of ['GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', 'PROXY TCP4 ::1 ::1 1 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 80\r\n', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 80\r\n', `PROXY ${'x'.repeat(120)}`]) {
    t.true(typeof parseProxyHeader(v1(bad)) === 'object' && 'error' in (parseProxyHeader(v1(bad)) as object), bad);
  }
  const badVersion = v2(4, [1, 2, 3, 4], 1); badVersion[12] = 0x31;
  t.deepEqual(parseProxyHeader(badVersion), { error: 'unknown PROXY protocol version' });
  const short = v2(4, [1, 2, 3, 4], 1); short.writeUInt16BE(4, 14);
  t.deepEqual(parseProxyHeader(short), { error: 'PROXY v2 address block too short' });
});

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 });
const port = fc.nat(65535);
/** A valid header, its expected source, and bytes that follow it. */
const header = fc.oneof(
  fc.tuple(ipv4, port).map(([a, p]) => ({ bytes: v1(`PROXY TCP4 ${a.join('.')} 10.0.0.1 ${p} 80\r\n`), address: a.join('.'), port: p })),
  fc.tuple(ipv4, port, fc.nat(40)).map(([a, p, tlv]) => ({ bytes: v2(4, a, p, 'PROXY', tlv), address: a.join('.'), port: p })),
  fc.tuple(ipv6, port, fc.nat(40)).map(([a, p, tlv]) => ({ bytes: v2(6, a, p, 'PROXY', tlv), address: new URL(`http://[${a.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1), port: p })),
);

test('fuzz: any bytes give a header within them, "incomplete" or an error, and never throw', (t) => {
  const anyStart = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.concat([SIG, u])), fc.string({ maxLength: 120 }).map((s) => v1(`PROXY ${s}`)));
  fc.assert(fc.property(anyStart, (bytes) => {
    const r = parseProxyHeader(Buffer.from(bytes));
    return r === 'incomplete' || 'error' in r || (r.length > 0 && r.length <= bytes.length);
  }), { numRuns: 5000 });
  t.pass();
});

test('fuzz: a valid v1 or v2 header parses to its client and length whatever follows it; every shorter prefix is incomplete', (t) => {
  fc.assert(fc.property(header, fc.uint8Array({ maxLength: 64 }), (h, rest) => {
    const r = parseProxyHeader(Buffer.concat([h.bytes, rest])) as ProxyHeader;
    if (r.length !== h.bytes.length || r.source?.address !== h.address || r.source.port !== h.port) return false;
    for (let n = 0; n < h.bytes.length; n++) if (parseProxyHeader(h.bytes.subarray(0, n)) !== 'incomplete') return false;
    return true;
  }), { numRuns: 1000 });
  t.pass();
});

test('fuzz: a valid header with one byte changed never throws, and what it parses to stays within its bytes', (t) => {
  fc.assert(fc.property(header, fc.nat(), fc.nat(255), (h, at, value) => {
    const bytes = Buffer.from(h.bytes);
    bytes[at % bytes.length] = value;
    const r = parseProxyHeader(bytes);
    return r === 'incomplete' || 'error' in r || r.length <= bytes.length;
  }), { numRuns: 5000 });
  t.pass();
});

// ---- a real worker -----------------------------------------------------------------------------

interface Seen { remote: string; port: number; family: string; xff: string | null; proto: string | null; raw: string[] }

async function serve(t: ExecutionContext, extra: string[]): Promise<{ d: Daemon; port: number; mport: number; accessLog: string }> {
  const [port, mport] = [await freePort(), await freePort()];
  const accessLog = join(tempDir(), 'access.log');
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--metrics-bind', `127.0.0.1:${mport}`, '--access-logfile', accessLog, '--access-logformat', '%(h)s %(r)s', ...extra, fixture('client-address.mjs')]);
  await d.waitReady();
  return { d, port, mport, accessLog };
}

const REQUEST = 'GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n';

/** Sends `head`, then a request; what the app saw, or that the connection was closed (a reset is a close too). */
async function ask(port: number, head: Buffer | string, headers = ''): Promise<{ seen: Seen | null; closed: boolean; worker: string | null }> {
  const a = await rawHttp(port, Buffer.concat([Buffer.from(head), Buffer.from(`${REQUEST}${headers}\r\n`)]))
    .catch((err: NodeJS.ErrnoException) => { if (err.code === 'ECONNRESET') return { text: '', closed: true }; throw err; });
  const body = a.text.split('\r\n\r\n')[1];
  return { seen: body ? JSON.parse(body) as Seen : null, closed: a.closed, worker: /X-Worker: (\d+)/i.exec(a.text)?.[1] ?? null };
}

const accessLines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean);

async function rejected(mport: number): Promise<Record<string, number>> {
  const text = (await get(`http://127.0.0.1:${mport}/metrics`)).body;
  return Object.fromEntries([...text.matchAll(/tsgunicorn_proxy_protocol_rejected_total\{reason="(\w+)"\} (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

test.serial('proxy_protocol: v1 and v2 from an allowed peer name the client for the app and the access log; a malformed header, a peer not allowed and a silent one are closed and counted, and the worker serves on', async (t) => {
  const { port, mport, accessLog } = await serve(t, ['--proxy-protocol', '--header-timeout', '1']);
  const a = await ask(port, v1('PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n'));
  t.like(a.seen, { remote: '203.0.113.7', port: 40000, family: 'IPv4' });
  const b = await ask(port, v2(6, [0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 41000, 'PROXY', 8));
  t.like(b.seen, { remote: '2001:db8::7', port: 41000, family: 'IPv6' });
  const local = await ask(port, v2(4, [1, 2, 3, 4], 1, 'LOCAL'));
  t.like(local.seen, { remote: '127.0.0.1' }, 'LOCAL: the connection\'s own address');

  const malformed = await ask(port, 'PROXY TCP4 999.0.0.1 10.0.0.1 1 80\r\n');
  t.deepEqual([malformed.seen, malformed.closed], [null, true]);
  const none = await ask(port, '');
  t.deepEqual([none.seen, none.closed], [null, true], 'plain HTTP without the header');
  const silent = await rawHttp(port, '', 5000);
  t.deepEqual([silent.text, silent.closed], ['', true], 'nothing sent: closed after header_timeout');
  t.deepEqual(await rejected(mport), { malformed: 2, timeout: 1 });

  const after = await ask(port, v1('PROXY TCP4 198.51.100.1 10.0.0.1 1234 80\r\n'));
  t.is(after.worker, a.worker, 'the same worker serves on');
  t.like(after.seen, { remote: '198.51.100.1' });
  await waitUntil('the access log', () => accessLines(accessLog).length >= 4, 5000);
  t.deepEqual(accessLines(accessLog), ['203.0.113.7 GET /who HTTP/1.1', '2001:db8::7 GET /who HTTP/1.1', '127.0.0.1 GET /who HTTP/1.1', '198.51.100.1 GET /who HTTP/1.1']);
});

test.serial('proxy_allow_ips: a PROXY header from a peer not on the list is closed and counted', async (t) => {
  const { port, mport } = await serve(t, ['--proxy-protocol', '--proxy-allow-ips', '10.9.9.9,192.168.0.0/16']);
  const r = await ask(port, v1('PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n'));
  t.deepEqual([r.seen, r.closed], [null, true]);
  t.deepEqual(await rejected(mport), { peer: 1 });
});

test.serial('forwarded_allow_ips: an allowed peer\'s X-Forwarded-For names the client in the access log, read from the right past allowed proxies; another peer\'s forwarding headers never reach the app', async (t) => {
  const trusted = await serve(t, []);
  const xff = 'X-Forwarded-For: 192.0.2.66, 198.51.100.20, 127.0.0.1\r\nX-Forwarded-Proto: https\r\n';
  const a = await ask(trusted.port, '', xff);
  t.like(a.seen, { remote: '127.0.0.1', xff: '192.0.2.66, 198.51.100.20, 127.0.0.1', proto: 'https', raw: ['x-forwarded-for', 'x-forwarded-proto'] });
  const plain = await ask(trusted.port, '');
  t.like(plain.seen, { xff: null });
  await waitUntil('the access log', () => accessLines(trusted.accessLog).length >= 2, 5000);
  t.deepEqual(accessLines(trusted.accessLog), ['198.51.100.20 GET /who HTTP/1.1', '127.0.0.1 GET /who HTTP/1.1']);

  const untrusted = await serve(t, ['--forwarded-allow-ips', '10.0.0.1']);
  const b = await ask(untrusted.port, '', xff);
  t.like(b.seen, { remote: '127.0.0.1', xff: null, proto: null, raw: [] });
  await waitUntil('the access log', () => accessLines(untrusted.accessLog).length >= 1, 5000);
  t.deepEqual(accessLines(untrusted.accessLog), ['127.0.0.1 GET /who HTTP/1.1']);
});

test.serial('PROXY protocol and forwarded_allow_ips together: the client the PROXY header names is the peer whose X-Forwarded-For is or is not believed', async (t) => {
  const { port, accessLog } = await serve(t, ['--proxy-protocol', '--forwarded-allow-ips', '10.0.0.5']);
  const viaProxy = await ask(port, v1('PROXY TCP4 10.0.0.5 10.0.0.1 1000 80\r\n'), 'X-Forwarded-For: 203.0.113.50\r\n');
  t.like(viaProxy.seen, { remote: '10.0.0.5', xff: '203.0.113.50' });
  const direct = await ask(port, v1('PROXY TCP4 203.0.113.99 10.0.0.1 1000 80\r\n'), 'X-Forwarded-For: 6.6.6.6\r\n');
  t.like(direct.seen, { remote: '203.0.113.99', xff: null });
  await waitUntil('the access log', () => accessLines(accessLog).length >= 2, 5000);
  t.deepEqual(accessLines(accessLog), ['203.0.113.50 GET /who HTTP/1.1', '203.0.113.99 GET /who HTTP/1.1']);
});

test('proxy_protocol with certfile is a configuration error (exit 2, one line)', async (t) => {
  const r = await runCli(['--proxy-protocol', '--certfile', fixture('app.mjs'), '--keyfile', fixture('app.mjs'), '--check-config', fixture('app.mjs')]);
  t.is(r.code, 2);
  t.regex(r.stderr, /proxy_protocol: not with certfile/);
});

test('a peer is local (trusted, as in Gunicorn) only through a unix-socket listener: a TCP connection without an address, as after a reset, is not', async (t) => {
  const list = parseAllowList('forwarded_allow_ips', '127.0.0.1');
  const accepted = async (listen: (s: NetServer) => void, dial: () => Socket): Promise<Socket> => {
    const server = createNetServer();
    markLocalPeers(server);
    const got = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => { server.once('listening', resolve); listen(server); });
    const client = dial();
    t.teardown(() => { client.destroy(); server.close(); });
    return got;
  };
  const path = join(tempDir(), 'peer.sock');
  const unix = await accepted((s) => s.listen(path), () => connectUnix(path));
  t.true(allowsPeer(list, unix), 'a unix-socket peer');
  const port = await freePort();
  const tcp = await accepted((s) => s.listen(port, '127.0.0.1'), () => connectTcp(port, '127.0.0.1'));
  t.true(allowsPeer(list, tcp), '127.0.0.1 is on the list');
  Object.defineProperty(tcp, 'remoteAddress', { value: undefined });
  t.false(allowsPeer(list, tcp), 'a TCP peer whose address is gone is nobody');
});
