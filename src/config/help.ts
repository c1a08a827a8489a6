// Text generated from the settings registry: --help, --print-config, and the settings reference
// (docs/settings.md and the man page are rendered in reference.ts).

import { EXIT } from '../core/errors.js';
import { SETTINGS, type Settings } from './settings.js';
import { formatValue, type SettingSpec } from './setting-types.js';

export const USAGE = 'tsgunicorn [OPTIONS] [APP_MODULE]';
/** The `status` command's synopsis (src/cli/status.ts); --help and the man page show it too. */
export const STATUS_USAGE = 'tsgunicorn status [--pid FILE | --name NAME] [--json]';

export const SIGNALS_HELP: readonly [string, string][] = [
  ['TERM', 'graceful stop: finish in-flight and keep-alive requests (up to graceful_timeout), exit 0'],
  ['INT, QUIT', 'quick stop'],
  ['HUP', 'reload: re-read the config, start new workers with new app code, then drain the old ones'],
  ['TTIN / TTOU', 'one worker more / one less (never below 1)'],
  ['USR1', 'reopen log files (master and workers)'],
  ['USR2', 'upgrade on the fly: start a new master from the program on disk on the same sockets; the old one hands over and exits'],
  ['WINCH', 'gracefully stop all workers; the master stays'],
];

/** What happens to a signal that comes while the master is busy (docs/signals.md has the table). */
export const SIGNALS_PHASES = 'Signals are handled from the first instruction. A HUP or USR2 that comes while the master boots, reloads, upgrades or rolls back is carried out when that ends (repeats coalesce, with a log line; after a handoff the new master gets it); TERM, INT and QUIT always take effect at once; while stopping, the others are ignored with a log line.';

/** What each exit status (core/errors.ts) means: a new one does not compile until it is said here. */
const EXIT_MEANING: Readonly<Record<keyof typeof EXIT, string>> = {
  OK: 'The master stopped cleanly (TERM, INT or QUIT), or --help, --version, --print-config or --check-config succeeded.',
  RUNTIME: 'Runtime error, such as an address already in use or a pidfile naming a running master.',
  USAGE: 'Usage or configuration error: an unknown option, a bad value, an unreadable config file. One line on standard error says what is wrong.',
  WORKER_BOOT: 'Workers failed to boot.',
  APP_LOAD: 'The application failed to load; its error is shown.',
};

/** [status, meaning], lowest status first: --help and the man page. */
export const EXIT_STATUS: readonly [string, string][] = (Object.keys(EXIT_MEANING) as (keyof typeof EXIT)[])
  .sort((a, b) => EXIT[a] - EXIT[b])
  .map((name) => [String(EXIT[name]), EXIT_MEANING[name]]);

export function defaultText(spec: SettingSpec): string {
  if (spec.defaultText !== undefined) return spec.defaultText;
  return formatValue(spec.default);
}

function flagText(spec: SettingSpec): string {
  return spec.cli.map((f) => (spec.metavar ? `${f} ${spec.metavar}` : f)).join(', ');
}

function wrap(text: string, width: number, indent: string): string {
  const words = text.replace(/`/g, '').split(/\s+/);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) { lines.push(line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.map((l) => indent + l).join('\n');
}

export function helpText(version: string): string {
  const out: string[] = [
    `usage: ${USAGE}`,
    `       ${STATUS_USAGE}`,
    '',
    `tsgunicorn ${version}: a pre-fork HTTP server for Node.js apps, run by systemd.`,
    '',
    'APP_MODULE is PATH[:EXPORT] or PATH:FACTORY(ARGS): a request listener (req, res) => void,',
    'or an object with fetch(request). Precedence, lowest first: defaults, config file,',
    'TSGUNICORN_CMD_ARGS, command line.',
    '',
    'options:',
    '  -h, --help            show this help and exit',
    '  -v, --version         show the version and exit',
  ];
  let section = '';
  for (const spec of SETTINGS) {
    if (spec.cli.length === 0) continue;
    if (spec.section !== section) { section = spec.section; out.push('', `${section}:`); }
    const flags = `  ${flagText(spec)}`;
    const help = `${spec.help} [default: ${defaultText(spec)}]`;
    if (flags.length <= 22) out.push(flags.padEnd(24) + wrap(help, 72, '').split('\n').join(`\n${' '.repeat(24)}`));
    else out.push(flags, wrap(help, 72, ' '.repeat(24)));
  }
  out.push('', 'signals (to the master):');
  for (const [sig, what] of SIGNALS_HELP) out.push(`  ${sig.padEnd(14)}${what}`);
  out.push(wrap(SIGNALS_PHASES, 78, '  '));
  out.push('', 'exit status:');
  for (const [code, what] of EXIT_STATUS) out.push(`  ${code}  ${what.split(':')[0]!.split('.')[0]}`);
  return `${out.join('\n')}\n`;
}

export function printConfig(s: Settings): string {
  const width = Math.max(...SETTINGS.map((x) => x.name.length));
  return `${SETTINGS.map((spec) => `${spec.name.padEnd(width)} = ${formatValue(s[spec.name])}`).join('\n')}\n`;
}
