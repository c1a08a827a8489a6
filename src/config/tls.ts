// TLS for the workers' servers. The files are read when a worker boots, so HUP (which replaces
// every worker) picks up renewed certificates; the master reads them first to refuse a bad setup.

import { readFileSync } from 'node:fs';
import type { SecureVersion } from 'node:tls';
import type { ServerOptions } from 'node:https';
import { ConfigError } from '../core/errors.js';
import { parseHttpProtocols, type WorkerSettings } from './settings.js';

type TlsSettings = Pick<WorkerSettings, 'certfile' | 'keyfile' | 'ca_certs' | 'cert_reqs' | 'ciphers' | 'tls_min_version' | 'http_protocols'>;

function read(setting: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** https.createServer options, or null when TLS is off; throws ConfigError on a bad setup. */
export function tlsOptions(s: TlsSettings): ServerOptions | null {
  if (s.certfile === null && s.keyfile === null) {
    if (s.ca_certs !== null || s.cert_reqs !== 'none') throw new ConfigError('ca_certs and cert_reqs need certfile and keyfile');
    return null;
  }
  if (s.certfile === null || s.keyfile === null) throw new ConfigError('TLS needs both certfile and keyfile');
  if (s.cert_reqs !== 'none' && s.ca_certs === null) throw new ConfigError(`cert_reqs = ${s.cert_reqs} needs ca_certs to verify client certificates with`);
  const opts: ServerOptions = {
    cert: read('certfile', s.certfile),
    key: read('keyfile', s.keyfile),
    minVersion: s.tls_min_version as SecureVersion,
    requestCert: s.cert_reqs !== 'none',
    rejectUnauthorized: s.cert_reqs === 'required',
  };
  if (s.ca_certs !== null) opts.ca = read('ca_certs', s.ca_certs);
  if (s.ciphers !== null) opts.ciphers = s.ciphers;
  // ALPN, in the order of preference given, once HTTP/2 is offered (http2.ts serves those sessions).
  const protocols = parseHttpProtocols(s.http_protocols);
  if (protocols.includes('h2')) opts.ALPNProtocols = protocols.map((p) => (p === 'h2' ? 'h2' : 'http/1.1'));
  return opts;
}

/** Checks that the certificate and key load and belong together (as the worker will). */
export async function checkTls(s: TlsSettings): Promise<void> {
  const opts = tlsOptions(s);
  if (!opts) return;
  const { createSecureContext } = await import('node:tls');
  try {
    createSecureContext(opts);
  } catch (err) {
    throw new ConfigError(`TLS: ${(err as Error).message.split('\n')[0]} (certfile ${s.certfile}, keyfile ${s.keyfile})`);
  }
}
