// The one config pipeline. Start-up, HUP and a new master after USR2 all go through it, so they
// read the same sources the same way: settings from every layer (load-settings.ts), then what is
// derived from them once, up front, and refused with a ConfigError (exit 2 at start, "reload
// failed" on HUP) before anything changes: the app specifier, the bind addresses, the TLS files,
// the workers' identity and the directory the app loads from. Relative paths mean the directory
// the process started in (`startDir`), whatever directory `chdir` moved it to since.

import { statSync } from 'node:fs';
import { parseAppSpec, type AppSpec } from '../app/app-spec.js';
import { ConfigError } from '../core/errors.js';
import { parseBind, type BindAddress } from '../sockets/address.js';
import { resolveIdentity, type Identity } from './identity.js';
import { loadSettings, type LoadedSettings } from './load-settings.js';
import { parseHttpProtocols, type Settings } from './settings.js';
import { checkTls } from './tls.js';

export interface ResolvedConfig {
  readonly settings: Settings;
  /** Names of the settings some source set (the rest are defaults). */
  readonly explicit: ReadonlySet<string>;
  readonly app: AppSpec;
  readonly binds: readonly BindAddress[];
  readonly metricsBind: BindAddress | null;
  /** Who the workers run as; null: the master's own identity. */
  readonly identity: Identity | null;
  /** Where the app is loaded from (chdir, or the directory the process started in). */
  readonly appDir: string;
}

function checkDirectory(dir: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw new ConfigError(`chdir: cannot change to ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!isDir) throw new ConfigError(`chdir: cannot change to ${dir}: not a directory`);
}

/** What a server needs from loaded settings; throws ConfigError when they cannot serve. */
export async function resolveLoaded(loaded: LoadedSettings, startDir: string): Promise<ResolvedConfig> {
  const s = loaded.settings;
  if (!s.app) throw new ConfigError('no application given: tsgunicorn [OPTIONS] APP_MODULE (or app = "..." in the config file)');
  const app = parseAppSpec(s.app);
  const binds = s.bind.map((b) => parseBind(b, startDir));
  const metricsBind = s.metrics_bind === null ? null : parseBind(s.metrics_bind, startDir);
  if (s.chdir !== null) checkDirectory(s.chdir);
  if (s.proxy_protocol && s.certfile !== null) throw new ConfigError('proxy_protocol: not with certfile: terminate TLS at the balancer, or send plain HTTP with the PROXY header');
  if (s.http2_cleartext !== 'off' && s.certfile !== null) throw new ConfigError('http2_cleartext: not with certfile: over TLS, HTTP/2 is negotiated (http_protocols = "h2,h1")');
  if (parseHttpProtocols(s.http_protocols).includes('h2') && s.certfile === null && s.http2_cleartext === 'off') {
    throw new ConfigError('http_protocols: h2 needs TLS (certfile and keyfile), or http2_cleartext = "prior-knowledge" behind a proxy');
  }
  await checkTls(s);
  const identity = resolveIdentity(s);
  return { settings: s, explicit: loaded.explicit, app, binds, metricsBind, identity, appDir: s.chdir ?? startDir };
}

/** The whole pipeline from a command line: what HUP and a new master run. */
export async function resolveConfig(argv: readonly string[], env: NodeJS.ProcessEnv, startDir: string): Promise<ResolvedConfig> {
  return resolveLoaded(await loadSettings(argv, env, startDir), startDir);
}
