// The settings reference, rendered from the registry: docs/settings.md (Markdown) and the
// tsgunicorn(1) man page (roff). Pure functions of SETTINGS, SIGNALS_HELP and a version string, so
// the committed files can be checked for staleness (packaging/gen-docs.ts --check, test/docs.test.ts).

import { SETTINGS } from '../src/config/settings.js';
import { EXIT_STATUS, SIGNALS_HELP, SIGNALS_PHASES, STATUS_USAGE, USAGE, defaultText } from '../src/config/help.js';
import type { SettingSpec } from '../src/config/setting-types.js';

const GENERATED = 'Generated from src/config/settings.ts by `npm run docs` (packaging/gen-docs.ts); do not edit.';

/** The TOML example shared by both documents: every key must be a setting (test/docs.test.ts). */
export const TOML_EXAMPLE = [
  '# /etc/tsgunicorn/myapp.toml',
  'app = "/srv/myapp/server.js:createApp()"',
  'bind = ["127.0.0.1:8000", "unix:/run/tsgunicorn/myapp/http.sock"]',
  'workers = 4',
  'timeout = 30',
  'max_requests = 10000',
  'max_requests_jitter = 500',
  'accesslog = "-"',
  'loglevel = "info"',
];

/** Settings grouped by section, in registry order. */
function sections(filter: (s: SettingSpec) => boolean = () => true): [string, SettingSpec[]][] {
  const out = new Map<string, SettingSpec[]>();
  for (const spec of SETTINGS) {
    if (!filter(spec)) continue;
    const list = out.get(spec.section) ?? [];
    list.push(spec);
    out.set(spec.section, list);
  }
  return [...out];
}

function typeText(spec: SettingSpec): string {
  switch (spec.type) {
    case 'int': return spec.min !== undefined ? `integer, at least ${spec.min}` : 'integer';
    case 'bool': return 'boolean (a flag on the command line)';
    case 'string': return 'string';
    case 'list': return 'list of strings (repeat the option on the command line)';
    case 'choice': return `one of ${(spec.choices ?? []).map((c) => `\`${c}\``).join(', ')}`;
    case 'octal': return 'octal file mode (`0022` on the command line; `"0022"` or `0o022` in TOML)';
    case 'hook': return `function taking up to ${spec.arity ?? 0} argument${spec.arity === 1 ? '' : 's'}, in a JS config file only`;
  }
}

/** Splits text at `code` spans: even indexes are prose, odd indexes are code. */
function codeSpans(text: string): string[] {
  return text.split('`');
}

// ---- Markdown ------------------------------------------------------------------------------------

function mdProse(text: string): string {
  return text.replace(/[\\*<[\]]/g, (c) => `\\${c}`).replace(/(^|\W)_|_(?=\W|$)/g, (m) => m.replace('_', '\\_'));
}

function mdText(text: string): string {
  return codeSpans(text).map((part, i) => (i % 2 ? `\`${part}\`` : mdProse(part))).join('');
}

function mdCode(text: string): string {
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function mdAnchor(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}

function mdSetting(spec: SettingSpec): string[] {
  const flags = spec.cli.length > 0
    ? spec.cli.map((f) => mdCode(spec.metavar ? `${f} ${spec.metavar}` : f)).join(', ')
    : spec.name === 'app' ? 'the APP_MODULE argument' : 'none (config file only)';
  const dflt = spec.defaultText !== undefined || spec.default === null ? mdText(defaultText(spec)) : mdCode(defaultText(spec));
  return [
    `### ${spec.name}`,
    '',
    `- Command line: ${flags}`,
    `- Config key: \`${spec.name}\``,
    `- Type: ${typeText(spec)}`,
    `- Default: ${dflt}`,
    '',
    mdText(spec.help),
    '',
  ];
}

/** docs/settings.md */
export function settingsMarkdown(): string {
  const groups = sections();
  const out: string[] = [
    '# tsgunicorn settings',
    '',
    `<!-- ${GENERATED} -->`,
    '',
    'Settings come from a config file (`-c FILE`: TOML, or a JS module whose exports are settings),',
    'from the `TSGUNICORN_CMD_ARGS` environment variable (command-line options, split like a shell',
    'would) and from the command line. Precedence, lowest first: defaults, config file,',
    '`TSGUNICORN_CMD_ARGS`, command line. Config keys are the names below, with underscores',
    '(Gunicorn\'s names); command-line flags use dashes. Settings without flags can only be set in a',
    'config file, and server hooks, being functions, only in a JS config file.',
    '',
    '```toml',
    ...TOML_EXAMPLE,
    '```',
    '',
    'Run `tsgunicorn --print-config` to see the resolved value of every setting, and',
    '`tsgunicorn --check-config` to check a configuration and that the application loads.',
    '',
    ...groups.map(([name]) => `- [${name}](#${mdAnchor(name)})`),
    '',
  ];
  for (const [name, specs] of groups) {
    out.push(`## ${name}`, '');
    for (const spec of specs) out.push(...mdSetting(spec));
  }
  return `${out.join('\n').trimEnd()}\n`;
}

// ---- roff ----------------------------------------------------------------------------------------

/** Escapes text for a roff text line or macro argument; all dashes become \- (ASCII in output). */
function roffEscape(text: string): string {
  let out = '';
  for (const c of text) {
    if (c === '\\') out += '\\(rs';
    else if (c === '-') out += '\\-';
    else if (c === '"') out += '\\(dq';
    else if (c === "'") out += '\\(aq';
    else if (c === '`') out += '\\(ga';
    else if (c.charCodeAt(0) > 0x7e || c.charCodeAt(0) < 0x20) out += `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`;
    else out += c;
  }
  return out;
}

/** A text line: never starts with a control character or a space. */
function roffLine(text: string): string {
  return /^[.' ]/.test(text) ? `\\&${text}` : text;
}

/** Bold, never hyphenated (\%): flags, names and code. */
function bold(text: string): string {
  return `\\fB\\%${roffEscape(text)}\\fR`;
}

function italic(text: string): string {
  return `\\fI\\%${roffEscape(text)}\\fR`;
}

/** Prose with `code` spans in bold. */
function roffText(text: string): string {
  return roffLine(codeSpans(text).map((part, i) => (i % 2 ? bold(part) : roffEscape(part))).join(''));
}

function roffSetting(spec: SettingSpec): string[] {
  const tag = spec.cli.map((f) => (spec.metavar ? `${bold(f)} ${italic(spec.metavar)}` : bold(f))).join(', ');
  const dflt = spec.defaultText !== undefined || spec.default === null ? roffEscape(defaultText(spec)) : bold(defaultText(spec));
  return [
    '.TP',
    roffLine(tag),
    roffText(spec.help),
    '.IP',
    roffLine(`Config key: ${bold(spec.name)}; default: ${dflt}.`),
  ];
}

/** A usage line of help.ts: commands and flags in bold, placeholders (capitals) in italics. */
function roffSynopsis(usage: string): string {
  const parts = usage.split(/([a-z-]+(?: [a-z-]+)*|[A-Z_]+)/);
  return roffLine(parts.map((part, i) => (i % 2 ? (/[a-z]/.test(part) ? bold(part) : italic(part)) : roffEscape(part))).join(''));
}

function paragraphs(...texts: string[]): string[] {
  return texts.flatMap((t, i) => (i === 0 ? [roffText(t)] : ['.PP', roffText(t)]));
}

/** docs/tsgunicorn.1: the tsgunicorn(1) man page. */
export function manPage(version: string): string {
  const out: string[] = [
    `.\\" ${GENERATED}`,
    `.TH TSGUNICORN 1 "" "tsgunicorn ${roffEscape(version)}" "User Commands"`,
    '.SH NAME',
    'tsgunicorn \\- pre\\-fork HTTP server for Node.js applications',
    '.SH SYNOPSIS',
    roffSynopsis(USAGE),
    '.br',
    roffSynopsis(STATUS_USAGE),
    '.SH DESCRIPTION',
    ...paragraphs(
      'tsgunicorn serves a Node.js web application with a pre-fork process model, like Gunicorn does for Python: '
        + 'one master process owns the listening sockets and supervises a number of worker processes; each worker '
        + 'loads the application and accepts connections on the shared sockets itself.',
      'The master is driven by signals (see SIGNALS): it reloads the configuration and the application on HUP '
        + 'without failing a request, replaces workers that stop answering, and can grow or shrink the number of '
        + 'workers while running. It is meant to be run by systemd.',
    ),
    '.SH APP_MODULE',
    ...paragraphs(
      'The application is given as the APP_MODULE argument, or with the `app` setting of a config file, in one of these forms:',
    ),
    '.TP',
    italic('PATH'),
    roffText('A file (`.js`, `.cjs` or `.mjs`) or a module specifier, resolved against `--chdir`. Its default export is used (`module.exports` for CommonJS).'),
    '.TP',
    `${italic('PATH')}:${italic('EXPORT')}`,
    roffText('A named export of the module.'),
    '.TP',
    `${italic('PATH')}:${italic('FACTORY')}(${italic('ARGS')})`,
    roffText('A named export that is called with ARGS, literal values only (strings, numbers, true, false, null, arrays and objects; never evaluated), and whose awaited result is used, for example `app.js:create(\'prod\', 4)`.'),
    '.PP',
    roffText('The value must be a Node request listener `(req, res) => void` (Express, Koa\'s `app.callback()`), or an object with a `fetch(request)` method returning a `Response` (Hono and other Web-standard handlers). '
      + 'If the module also exports a function `onServer(server)`, each worker calls it with its `http.Server` before it listens, for example to handle WebSocket upgrades.'),
    '.SH OPTIONS',
    '.TP',
    `${bold('-h')}, ${bold('--help')}`,
    'Show a summary of the options and exit.',
    '.TP',
    `${bold('-v')}, ${bold('--version')}`,
    'Show the version of tsgunicorn and of Node.js and exit.',
  ];
  for (const [name, specs] of sections((s) => s.cli.length > 0)) {
    out.push(`.SS "${roffEscape(name)}"`);
    for (const spec of specs) out.push(...roffSetting(spec));
  }
  out.push('.SH "STATUS COMMAND"', roffText('`tsgunicorn status --pid FILE` asks the master named by the pidfile FILE, over a control socket next to it that only its owner may open, for its state, and prints its pid, uptime and version and one row per worker: pid, age, uptime, requests served, resident memory and state. `--name NAME` means the pidfile `/run/tsgunicorn/NAME/master.pid` of the systemd instance NAME; `--json` prints the same as JSON. It exits 1 when no master answers.'));
  out.push('.SH SIGNALS', roffText('Signals are sent to the master process:'));
  for (const [sig, what] of SIGNALS_HELP) out.push('.TP', bold(sig), roffText(what));
  out.push(
    '.PP',
    roffText(SIGNALS_PHASES),
    '.PP',
    roffText('A worker that stays silent for longer than `timeout` is sent SIGABRT, then SIGKILL, and replaced.'),
    '.SH "CONFIGURATION FILES"',
    ...paragraphs(
      'A config file given with `-c` is TOML (`.toml`) or a JS module (`.js`, `.mjs`, `.cjs`) whose exports, named or a default-exported object, are settings. '
        + 'Keys are the config keys listed under OPTIONS, with underscores. '
        + 'Under systemd, the instance `tsgunicorn@NAME` reads `/etc/tsgunicorn/NAME.toml`.',
      'Precedence, lowest first: defaults, config file, `TSGUNICORN_CMD_ARGS`, command line. An example:',
    ),
    '.PP',
    '.RS 4',
    '.nf',
    ...TOML_EXAMPLE.map((l) => roffLine(roffEscape(l))),
    '.fi',
    '.RE',
    '.PP',
    roffText('These settings have no command-line flag and are only read from config files; the server hooks only from JS config files, where a hook that throws is logged and does not stop the server:'),
  );
  for (const spec of SETTINGS.filter((s) => s.cli.length === 0)) out.push('.TP', bold(spec.name), roffText(spec.help));
  out.push(
    '.SH ENVIRONMENT',
    '.TP',
    bold('TSGUNICORN_CMD_ARGS'),
    roffText('Extra command-line options, split like a shell would (quotes and backslashes, no expansion). They override the config file and are overridden by the command line.'),
    '.TP',
    bold('WEB_CONCURRENCY'),
    roffText('The default number of workers when `workers` is not set.'),
    '.TP',
    bold('JOURNAL_STREAM'),
    roffText('Set by systemd; when it names standard error, error log lines carry syslog priority prefixes and no timestamp.'),
    '.SH "EXIT STATUS"',
  );
  for (const [code, what] of EXIT_STATUS) out.push('.TP', bold(code), roffText(what));
  out.push(
    '.SH FILES',
    '.TP',
    italic('/etc/tsgunicorn/NAME.toml'),
    roffText('Configuration of the systemd instance `tsgunicorn@NAME`.'),
    '.TP',
    italic('/run/tsgunicorn/NAME/master.pid'),
    roffText('Pidfile of that instance\'s master.'),
    '.TP',
    italic('/usr/lib/systemd/system/tsgunicorn@.service'),
    roffText('The templated service unit: `systemctl start tsgunicorn@NAME` runs the instance NAME.'),
    '.TP',
    italic('/usr/lib/systemd/system/tsgunicorn@.socket'),
    roffText('The matching socket unit, for socket activation.'),
    '.SH "SEE ALSO"',
    roffLine(`${bold('systemd.service')}(5), ${bold('sd_notify')}(3)`),
  );
  return `${out.join('\n')}\n`;
}
