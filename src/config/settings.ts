// The settings registry: one entry per setting. The CLI parser, --help, --print-config, the man
// page and docs/settings.md are all generated from this table, so they cannot drift apart.

import { availableParallelism } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { parseBind } from '../sockets/address.js';
import { parseAllowList } from '../sockets/allow-list.js';
import type { SettingSpec } from './setting-types.js';

/** The protocols of http_protocols, in order; throws ConfigError on anything but h1 and h2, once each. */
export function parseHttpProtocols(text: string): ('h1' | 'h2')[] {
  const out: ('h1' | 'h2')[] = [];
  for (const p of text.split(',').map((e) => e.trim().toLowerCase())) {
    if ((p !== 'h1' && p !== 'h2') || out.includes(p)) throw new ConfigError(`http_protocols: expected a list of h1 and h2 (e.g. "h2,h1"), got ${JSON.stringify(text)}`);
    out.push(p);
  }
  return out;
}

function defaultWorkers(): number {
  const env = process.env['WEB_CONCURRENCY'];
  if (env && /^\d+$/.test(env) && Number(env) > 0) return Number(env);
  return availableParallelism();
}

/** A server hook's entry; generic so that the table keeps its literal name. */
function hook<const N extends string>(name: N, arity: number, help: string) {
  return { name, section: 'Server hooks', cli: [], type: 'hook', default: null, arity, help } as const satisfies SettingSpec;
}

/**
 * The table, as a literal: `Settings` below is derived from each entry's name, type, choices and
 * default, so a setting's value type is written once, here.
 */
export const SETTINGS = [
  // Config file
  { name: 'config', section: 'Config file', cli: ['-c', '--config'], metavar: 'FILE', type: 'string', path: true, default: null,
    help: 'Configuration file: TOML (`.toml`) or a JS module (`.js`, `.mjs`, `.cjs`) whose exports are settings; JS files may also define server hooks.' },
  { name: 'app', section: 'Config file', cli: [], type: 'string', default: null,
    help: 'The application, `PATH[:EXPORT]` or `PATH:FACTORY(ARGS)`, when it is not given as the APP_MODULE argument.' },
  { name: 'check_config', section: 'Config file', cli: ['--check-config'], type: 'bool', default: false,
    help: 'Check the configuration and that the application loads, then exit (0 when good, 2 or 4 when not).' },
  { name: 'print_config', section: 'Config file', cli: ['--print-config'], type: 'bool', default: false,
    help: 'Print the resolved settings and exit.' },

  // Server socket
  { name: 'bind', section: 'Server socket', cli: ['-b', '--bind'], metavar: 'ADDRESS', type: 'list', default: ['127.0.0.1:8000'],
    defaultText: '127.0.0.1:8000 (none when sockets are inherited from systemd)',
    validate: (v: string[]) => { for (const a of v) parseBind(a); },
    help: 'Socket to listen on: `HOST:PORT`, `[IPV6]:PORT`, `unix:PATH` or `fd://N`. Repeat to listen on several.' },
  { name: 'backlog', section: 'Server socket', cli: ['--backlog'], metavar: 'INT', type: 'int', default: 2048, min: 1,
    help: 'Maximum number of pending connections queued on each listening socket, sockets passed by systemd included (it replaces the socket unit\'s Backlog=, as in Gunicorn); the kernel caps it at net.core.somaxconn.' },
  { name: 'reuse_port', section: 'Server socket', cli: ['--reuse-port'], type: 'bool', default: false,
    help: 'Give each worker its own listening socket with SO_REUSEPORT so the kernel spreads connections evenly across workers (TCP binds only; kept across HUP and USR2). Recommended when clients hold connections open (keep-alive, a proxy\'s pool): one shared socket can leave a worker with few of them. Set net.ipv4.tcp_migrate_req = 1 with it (the Debian package does), or connections queued on the socket of a worker that goes for good (TTOU) are reset.' },

  // Worker processes
  { name: 'workers', section: 'Worker processes', cli: ['-w', '--workers'], metavar: 'INT', type: 'int', default: defaultWorkers, min: 1,
    defaultText: '$WEB_CONCURRENCY, or the number of available CPUs',
    help: 'Number of worker processes.' },
  { name: 'worker_connections', section: 'Worker processes', cli: ['--worker-connections'], metavar: 'INT', type: 'int', default: 1000, min: 1,
    help: 'Maximum number of simultaneous connections one worker holds.' },
  { name: 'max_requests', section: 'Worker processes', cli: ['--max-requests'], metavar: 'INT', type: 'int', default: 0, min: 0,
    help: 'Replace a worker after it has served this many requests (0 disables). Its replacement starts first, so nothing is refused.' },
  { name: 'max_requests_jitter', section: 'Worker processes', cli: ['--max-requests-jitter'], metavar: 'INT', type: 'int', default: 0, min: 0,
    help: 'Add a random 0..N to max_requests per worker so workers are not all replaced at once.' },
  { name: 'max_worker_memory', section: 'Worker processes', cli: ['--max-worker-memory'], metavar: 'MIB', type: 'int', default: 0, min: 0,
    help: 'Replace a worker whose resident memory exceeds this many MiB (0 disables).' },
  { name: 'timeout', section: 'Worker processes', cli: ['-t', '--timeout'], metavar: 'SECONDS', type: 'int', default: 30, min: 1,
    help: 'A worker silent for this many seconds (its event loop blocked) is sent SIGABRT, then SIGKILL, and replaced.' },
  { name: 'graceful_timeout', section: 'Worker processes', cli: ['--graceful-timeout'], metavar: 'SECONDS', type: 'int', default: 30, min: 0,
    help: 'Time a stopping worker gets to finish its in-flight requests before it is killed.' },
  { name: 'keepalive', section: 'Worker processes', cli: ['--keep-alive'], metavar: 'SECONDS', type: 'int', default: 5, min: 0,
    help: 'Seconds an idle keep-alive connection is kept open (0 disables keep-alive).' },

  { name: 'node_options', section: 'Worker processes', cli: ['--node-options'], metavar: 'OPTION', type: 'list', default: [],
    help: 'A Node.js option for the worker processes, e.g. `--import=tsx` (TypeScript apps), `--enable-source-maps` or `--max-old-space-size=512`. Repeat for several.' },

  // Security
  { name: 'header_timeout', section: 'Security', cli: ['--header-timeout'], metavar: 'SECONDS', type: 'int', default: 10, min: 1,
    help: 'Seconds a client gets to send the request line and headers; a slower client (slowloris) gets 408 and is disconnected.' },
  { name: 'limit_request_line', section: 'Security', cli: ['--limit-request-line'], metavar: 'BYTES', type: 'int', default: 4094, min: 0,
    help: 'Maximum size of the HTTP request line (method, target and version); larger gets 414. 0 means unlimited.' },
  { name: 'limit_request_fields', section: 'Security', cli: ['--limit-request-fields'], metavar: 'INT', type: 'int', default: 100, min: 0,
    help: 'Maximum number of header fields in a request; more gets 431. 0 means unlimited (up to Node\'s own limit).' },
  { name: 'limit_request_field_size', section: 'Security', cli: ['--limit-request-field-size', '--limit-request-field_size'], metavar: 'BYTES', type: 'int', default: 8190, min: 0,
    help: 'Maximum size of one request header line; larger gets 431. 0 means unlimited (up to Node\'s own limit).' },

  // TLS
  { name: 'certfile', section: 'TLS', cli: ['--certfile'], metavar: 'FILE', type: 'string', path: true, default: null,
    help: 'PEM certificate (chain) file: serve HTTPS. Re-read on HUP.' },
  { name: 'keyfile', section: 'TLS', cli: ['--keyfile'], metavar: 'FILE', type: 'string', path: true, default: null,
    help: 'PEM private key file for certfile. Re-read on HUP.' },
  { name: 'ca_certs', section: 'TLS', cli: ['--ca-certs'], metavar: 'FILE', type: 'string', path: true, default: null,
    help: 'PEM file of CA certificates to verify client certificates with.' },
  { name: 'cert_reqs', section: 'TLS', cli: ['--cert-reqs'], metavar: 'MODE', type: 'choice', default: 'none', choices: ['none', 'optional', 'required'],
    help: 'Client certificates: `none`, `optional` (verified when sent) or `required`.' },
  { name: 'ciphers', section: 'TLS', cli: ['--ciphers'], metavar: 'LIST', type: 'string', default: null,
    defaultText: "Node's default cipher list",
    help: 'OpenSSL cipher list for TLS 1.2 and below.' },
  { name: 'tls_min_version', section: 'TLS', cli: ['--tls-min-version'], metavar: 'VERSION', type: 'choice', default: 'TLSv1.2', choices: ['TLSv1.2', 'TLSv1.3'],
    help: 'Lowest TLS version accepted.' },

  // Process
  { name: 'pidfile', section: 'Process', cli: ['-p', '--pid'], metavar: 'FILE', type: 'string', path: true, default: null,
    help: 'Write the master\'s pid to this file (atomically); removed at exit.' },
  { name: 'user', section: 'Process', cli: ['-u', '--user'], metavar: 'USER', type: 'string', default: null,
    help: 'Run workers as this user (name or uid). Workers are started as it: none of their code, not even Node\'s startup, runs as root. The master keeps its own identity to bind and manage sockets; a user other than its own needs the master to run as root.' },
  { name: 'group', section: 'Process', cli: ['-g', '--group'], metavar: 'GROUP', type: 'string', default: null,
    help: 'Run workers as this group (name or gid). Without it, the primary group of `user`.' },
  { name: 'umask', section: 'Process', cli: ['-m', '--umask'], metavar: 'MODE', type: 'octal', default: 0o022,
    defaultText: '0022',
    help: 'File mode mask of the workers (and of the unix sockets the master creates).' },
  { name: 'initgroups', section: 'Process', cli: ['--initgroups'], type: 'bool', default: false,
    help: 'Give workers the supplementary groups of `user` (initgroups(3), through setpriv(1) of util-linux). Without it, workers that run as another user have no supplementary groups.' },
  { name: 'chdir', section: 'Process', cli: ['--chdir'], metavar: 'DIR', type: 'string', path: true, default: null,
    defaultText: 'the current directory',
    help: 'Change to this directory before loading the application.' },
  { name: 'daemon', section: 'Process', cli: ['-D', '--daemon'], type: 'bool', default: false,
    help: 'Detach from the terminal and run in the background (ignored under systemd).' },
  { name: 'raw_env', section: 'Process', cli: ['-e', '--env'], metavar: 'KEY=VALUE', type: 'list', default: [],
    validate: (v: string[]) => {
      for (const kv of v) if (!/^[^=\s]+=/.test(kv)) throw new ConfigError(`raw_env: expected KEY=VALUE, got ${JSON.stringify(kv)}`);
    },
    help: 'Set an environment variable for the workers. Repeat for several.' },
  { name: 'proc_name', section: 'Process', cli: ['-n', '--name'], metavar: 'NAME', type: 'string', default: 'tsgunicorn',
    help: 'Name shown in process titles: `tsgunicorn: master [NAME]`, `tsgunicorn: worker [NAME]`.' },

  // Logging
  { name: 'accesslog', section: 'Logging', cli: ['--access-logfile'], metavar: 'FILE', type: 'string', path: true, default: null,
    help: 'Access log file; `-` is standard output. Off by default.' },
  { name: 'access_log_format', section: 'Logging', cli: ['--access-logformat'], metavar: 'FORMAT', type: 'string',
    default: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    help: 'Access log line format with Gunicorn\'s atoms: h remote address, l `-`, u user, t time, r request line, m method, U path, q query, H protocol, s status, B/b response length, f referer, a user agent, T/M/D/L request time (s/ms/us/decimal s), p pid, {name}i request header, {name}o response header, {name}e environment variable.' },
  { name: 'errorlog', section: 'Logging', cli: ['--error-logfile', '--log-file'], metavar: 'FILE', type: 'string', path: true, default: '-',
    help: 'Error log file; `-` is standard error.' },
  { name: 'loglevel', section: 'Logging', cli: ['--log-level'], metavar: 'LEVEL', type: 'choice', default: 'info',
    choices: ['debug', 'info', 'warning', 'error', 'critical'],
    help: 'Error log level: debug, info, warning, error or critical.' },

  // Observability
  { name: 'metrics_bind', section: 'Observability', cli: ['--metrics-bind'], metavar: 'ADDRESS', type: 'string', default: null,
    validate: (v: string | null) => { if (v !== null) parseBind(v); },
    help: 'Serve Prometheus metrics (aggregated over all workers) on this address, e.g. `127.0.0.1:9100` or `unix:PATH`. Off by default.' },

  // Load balancers
  { name: 'health_min_workers', section: 'Load balancers', cli: ['--health-min-workers'], metavar: 'INT', type: 'int', default: 0, min: 0,
    defaultText: '0 (every worker)',
    help: '`GET /health` on metrics_bind answers 200 while at least this many workers are ready (0: all of them), 503 otherwise, and while the instance boots, drains or is in lame duck.' },
  { name: 'lame_duck', section: 'Load balancers', cli: ['--lame-duck'], metavar: 'SECONDS', type: 'int', default: 0, min: 0,
    help: 'On TERM, first serve this many seconds more with `/health` at 503 and every response marked `Connection: close`, so that load balancers move away, then stop gracefully. INT and QUIT skip it.' },

  { name: 'forwarded_allow_ips', section: 'Load balancers', cli: ['--forwarded-allow-ips'], metavar: 'LIST', type: 'string', default: '127.0.0.1,::1',
    validate: (v: string) => { parseAllowList('forwarded_allow_ips', v); },
    help: 'Peers (comma-separated addresses or networks, `*` for any) whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed: the access log\'s `%(h)s` is then the client they name. From any other peer both headers are removed before the app sees the request, so an app may trust them (Express `trust proxy`, Koa `app.proxy`). A peer on a unix socket is trusted, as in Gunicorn.' },
  { name: 'proxy_protocol', section: 'Load balancers', cli: ['--proxy-protocol'], type: 'bool', default: false,
    help: 'Expect a PROXY protocol header (v1 or v2, as HAProxy and AWS NLB send it) on every connection: the connection\'s remote address is then the client it names, for the app and the access log. Plain HTTP binds only (not with `certfile`).' },
  { name: 'proxy_allow_ips', section: 'Load balancers', cli: ['--proxy-allow-ips', '--proxy-allow-from'], metavar: 'LIST', type: 'string', default: '127.0.0.1,::1',
    validate: (v: string) => { parseAllowList('proxy_allow_ips', v); },
    help: 'Peers (comma-separated addresses or networks, `*` for any) allowed to send a PROXY protocol header; a connection from another, or with a malformed header, or none within `header_timeout`, is closed and counted (`tsgunicorn_proxy_protocol_rejected_total`). A peer on a unix socket is allowed.' },

  // HTTP/2
  { name: 'http_protocols', section: 'HTTP/2', cli: ['--http-protocols'], metavar: 'LIST', type: 'string', default: 'h1',
    validate: (v: string) => { parseHttpProtocols(v); },
    help: 'Protocols offered over TLS, by preference (ALPN): `h1`, or `h2,h1` to serve HTTP/2 as well (`h2` alone refuses clients without it). HTTP/2 needs `certfile`, or `http2_cleartext` behind a proxy.' },
  { name: 'http2_cleartext', section: 'HTTP/2', cli: ['--http2-cleartext'], metavar: 'MODE', type: 'choice', default: 'off', choices: ['off', 'prior-knowledge'],
    help: '`prior-knowledge`: a plain-HTTP connection from a peer in `forwarded_allow_ips` (or on a unix socket) that opens with the HTTP/2 preface is served as HTTP/2 (h2c, as HAProxy and Envoy speak it to backends); every other connection is HTTP/1.x. Never expose such a port to the internet.' },
  { name: 'http2_max_concurrent_streams', section: 'HTTP/2', cli: ['--http2-max-concurrent-streams'], metavar: 'INT', type: 'int', default: 100, min: 1,
    help: 'Streams a client may have open at once on one HTTP/2 connection.' },
  { name: 'http2_initial_window_size', section: 'HTTP/2', cli: ['--http2-initial-window-size'], metavar: 'BYTES', type: 'int', default: 65535, min: 0,
    validate: (v: number) => { if (v > 2 ** 31 - 1) throw new ConfigError(`http2_initial_window_size: at most 2147483647, got ${v}`); },
    help: 'A stream\'s flow-control window for request bodies: how much a client may send before the app reads.' },
  { name: 'http2_max_frame_size', section: 'HTTP/2', cli: ['--http2-max-frame-size'], metavar: 'BYTES', type: 'int', default: 16384, min: 16384,
    validate: (v: number) => { if (v > 16777215) throw new ConfigError(`http2_max_frame_size: at most 16777215, got ${v}`); },
    help: 'The largest frame payload the server accepts.' },
  { name: 'http2_max_header_list_size', section: 'HTTP/2', cli: ['--http2-max-header-list-size'], metavar: 'BYTES', type: 'int', default: 65536, min: 1024,
    help: 'The largest header list (decoded, as HTTP/2 counts it) a request may have; the request limits (`limit_request_*`) apply as well.' },

  // Upgrades
  { name: 'upgrade_handoff', section: 'Upgrades', cli: ['--upgrade-handoff'], metavar: 'MODE', type: 'choice', default: 'auto',
    choices: ['auto', 'manual'],
    help: 'After USR2, `auto`: the old master stops once the new one is ready; `manual`: it stays until WINCH, QUIT/TERM or HUP (roll back).' },
  { name: 'upgrade_timeout', section: 'Upgrades', cli: ['--upgrade-timeout'], metavar: 'SECONDS', type: 'int', default: 60, min: 1,
    help: 'Seconds a new master started by USR2 gets to become ready before it is stopped and the old one keeps serving.' },

  // Server hooks (JS config files only)
  hook('on_starting', 1, 'Called in the master just before it starts: `on_starting(server)`.'),
  hook('when_ready', 1, 'Called in the master once every initial worker is serving: `when_ready(server)`.'),
  hook('on_reload', 1, 'Called in the master on HUP, before new workers start: `on_reload(server)`.'),
  hook('pre_fork', 2, 'Called in the master before a worker is started: `pre_fork(server, worker)`.'),
  hook('post_fork', 2, 'Called in the worker when it starts, before the app loads: `post_fork(server, worker)`.'),
  hook('post_worker_init', 1, 'Called in the worker after the app loaded, before it serves: `post_worker_init(worker)`.'),
  hook('worker_int', 1, 'Called in the worker when it gets INT or QUIT: `worker_int(worker)`.'),
  hook('worker_abort', 1, 'Called in the worker on SIGABRT (its timeout), when its event loop still runs: `worker_abort(worker)`.'),
  hook('pre_exec', 1, 'Called in the old master before it starts a new master on USR2: `pre_exec(server)`.'),
  hook('child_exit', 2, 'Called in the master after a worker exited: `child_exit(server, worker)`.'),
  hook('worker_exit', 2, 'Called in the worker just before it exits: `worker_exit(server, worker)`.'),
  hook('nworkers_changed', 3, 'Called in the master when the number of workers changes: `nworkers_changed(server, new, old)`.'),
  hook('on_exit', 1, 'Called in the master just before it exits: `on_exit(server)`.'),
] as const satisfies readonly SettingSpec[];

export const SETTINGS_BY_NAME: ReadonlyMap<string, SettingSpec> = new Map(SETTINGS.map((s) => [s.name, s]));

/** A server hook: a function from a JS config file, or null when none is set. */
export type Hook = ((...args: never[]) => unknown) | null;

/** The value type of one entry of the table. */
type SettingValue<S extends SettingSpec> =
  S extends { readonly type: 'int' | 'octal' } ? number
  : S extends { readonly type: 'bool' } ? boolean
  : S extends { readonly type: 'list' } ? string[]
  : S extends { readonly type: 'choice'; readonly choices: readonly (infer C)[] } ? C
  : S extends { readonly type: 'string'; readonly default: null } ? string | null
  : S extends { readonly type: 'string' } ? string
  : S extends { readonly type: 'hook' } ? Hook
  : never;

type Entry = (typeof SETTINGS)[number];

/** Resolved settings, keyed by name. */
export type Settings = { [S in Entry as S['name']]: SettingValue<S> };

export type HookName = Extract<Entry, { readonly type: 'hook' }>['name'];

/** Settings as a worker receives them: everything but the hook functions. */
export type WorkerSettings = Omit<Settings, HookName>;

export function defaultValue(spec: SettingSpec): unknown {
  if (typeof spec.default === 'function') return (spec.default as () => unknown)();
  // A copy: a list default must not be shared by every resolved configuration.
  return Array.isArray(spec.default) ? [...(spec.default as unknown[])] : spec.default;
}
