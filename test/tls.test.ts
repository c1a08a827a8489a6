import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type PeerCertificate } from 'node:tls';
import { join } from 'node:path';
import { fixture, freePort, runCli, start, tempDir, waitUntil } from './helpers/daemon.js';
import { selfSigned } from './helpers/tls.js';

function httpsGet(port: number, ca: string): Promise<{ body: string; cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', ca: readFileSync(ca), agent: false }, (res) => {
      const cert = (res.socket as unknown as { getPeerCertificate(): PeerCertificate }).getPeerCertificate();
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ body, cert }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('serves HTTPS with certfile/keyfile, and HUP picks up a renewed certificate', async (t) => {
  const dir = tempDir();
  const one = selfSigned(dir, 'one');
  const two = selfSigned(dir, 'two');
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  writeFileSync(cert, readFileSync(one.cert));
  writeFileSync(key, readFileSync(one.key));
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--certfile', cert, '--keyfile', key, fixture('app.mjs')]);
  await d.waitReady();
  const first = await httpsGet(port, one.cert);
  t.is(first.body, 'hello GET /\n');
  t.is(first.cert.subject.CN, 'one');
  writeFileSync(cert, readFileSync(two.cert));
  writeFileSync(key, readFileSync(two.key));
  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 1 new worker/);
  await waitUntil('old worker gone', () => d.workers().length === 1);
  t.is((await httpsGet(port, two.cert)).cert.subject.CN, 'two');
});

test('tls_min_version TLSv1.3 refuses a TLS 1.2 client', async (t) => {
  const dir = tempDir();
  const { cert, key } = selfSigned(dir, 'v13');
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--certfile', cert, '--keyfile', key, '--tls-min-version', 'TLSv1.3', fixture('app.mjs')]);
  await d.waitReady();
  const outcome = await new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca: readFileSync(cert), maxVersion: 'TLSv1.2' }, () => { resolve(`connected ${s.getProtocol()}`); s.destroy(); });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
  });
  t.regex(outcome, /^error /);
  t.is((await httpsGet(port, cert)).body, 'hello GET /\n');
});

test('a bad TLS setup exits 2 with one line', async (t) => {
  const dir = tempDir();
  const a = selfSigned(dir, 'a');
  const b = selfSigned(dir, 'b');
  const cases: [string[], RegExp][] = [
    [['--certfile', a.cert], /TLS needs both certfile and keyfile/],
    [['--certfile', join(dir, 'missing.crt'), '--keyfile', a.key], /certfile: cannot read .*missing\.crt: ENOENT/],
    [['--certfile', a.cert, '--keyfile', b.key], /TLS: .*key values mismatch/],
    [['--cert-reqs', 'required', '--certfile', a.cert, '--keyfile', a.key], /cert_reqs = required needs ca_certs/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli([...args, fixture('app.mjs')]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, re);
    t.is(r.stderr.trim().split('\n').length, 1);
  }
});
