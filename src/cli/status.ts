// `tsgunicorn status [--pid FILE | --name NAME] [--json]`: asks a running master, through its
// control socket, what it is doing, and prints a table a person can read (or the JSON).

import { connect } from 'node:net';
import { STATUS_USAGE } from '../config/help.js';
import { ConfigError, EXIT, NotRunningError } from '../core/errors.js';
import { controlPath, type MasterStatus } from '../master/control-socket.js';
import { isTsgunicornMaster, readPid } from '../master/pidfile.js';

const USAGE_LINE = `usage: ${STATUS_USAGE}`;

interface StatusArgs {
  readonly pidfile: string;
  readonly json: boolean;
}

function parseStatusArgs(argv: readonly string[]): StatusArgs | 'help' {
  let pidfile: string | null = null;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(`status: option ${a} needs a value`);
      return v;
    };
    if (a === '-h' || a === '--help') return 'help';
    else if (a === '--json') json = true;
    else if (a === '--pid' || a === '-p') pidfile = value();
    else if (a === '--name' || a === '-n') pidfile = `/run/tsgunicorn/${value()}/master.pid`;
    else throw new ConfigError(`status: unknown option ${a} (${USAGE_LINE})`);
  }
  if (pidfile === null) throw new ConfigError(`status: say which master with --pid FILE or --name NAME (${USAGE_LINE})`);
  return { pidfile, json };
}

function ask(path: string): Promise<MasterStatus> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect(path);
    s.setEncoding('utf8');
    s.setTimeout(5000, () => s.destroy(new Error('no answer within 5 s')));
    s.on('data', (d: string) => { text += d; });
    s.on('end', () => {
      try { resolve(JSON.parse(text) as MasterStatus); } catch { reject(new Error('an unreadable answer')); }
    });
    s.on('error', reject);
  });
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h${String(m % 60).padStart(2, '0')}m` : `${Math.floor(h / 24)}d${h % 24}h`;
}

function mib(bytes: number | null): string {
  return bytes === null ? '-' : `${(bytes / 1048576).toFixed(1)} MiB`;
}

export function renderStatus(st: MasterStatus, now = Date.now()): string {
  const rows = [['PID', 'AGE', 'UPTIME', 'REQUESTS', 'RSS', 'STATE'],
    ...st.workers.map((w) => [String(w.pid), String(w.age), duration(now - w.startedAt), String(w.requests), mib(w.rssBytes), w.state])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const table = rows.map((r) => `  ${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')}`);
  const ready = st.workers.filter((w) => w.state === 'ready').length;
  return [
    `tsgunicorn master ${st.pid} [${st.name}]: ${st.phase}, up ${duration(now - st.startedAt)}, version ${st.version} (node ${st.node})`,
    `listening: ${st.listeners.join(', ')}`,
    `workers: ${ready} ready of ${st.target}${st.upgradingTo ? `; upgrading to master ${st.upgradingTo}` : ''}`,
    ...(st.pending ?? []).map((note) => `pending: ${note}`),
    ...table,
    '',
  ].join('\n');
}

export async function statusCommand(argv: readonly string[]): Promise<number> {
  const args = parseStatusArgs(argv);
  if (args === 'help') {
    process.stdout.write(`${USAGE_LINE}\n\nShows a running master's workers (pid, age, uptime, requests, RSS, state).\n  --pid FILE   the master's pidfile\n  --name NAME  the systemd instance: /run/tsgunicorn/NAME/master.pid\n  --json       print the status as JSON\n`);
    return EXIT.OK;
  }
  const pid = readPid(args.pidfile);
  if (pid === null) throw new NotRunningError(`no master: cannot read a pid from ${args.pidfile}`);
  if (!isTsgunicornMaster(pid)) throw new NotRunningError(`no master: pid ${pid} from ${args.pidfile} is not a running tsgunicorn master`);
  let st: MasterStatus;
  try {
    st = await ask(controlPath(args.pidfile, pid));
  } catch (err) {
    throw new NotRunningError(`master ${pid} did not answer on ${controlPath(args.pidfile, pid)}: ${(err as Error).message}`);
  }
  process.stdout.write(args.json ? `${JSON.stringify(st, null, 2)}\n` : renderStatus(st));
  return EXIT.OK;
}
