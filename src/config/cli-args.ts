// The command-line parser, generated from the settings registry: every setting with `cli` flags is
// an option. Values stay raw strings here; the registry's types coerce them later, so a bad value
// from the command line, TSGUNICORN_CMD_ARGS or a config file reads the same.

import { ConfigError } from '../core/errors.js';
import { SETTINGS } from './settings.js';
import type { SettingSpec } from './setting-types.js';

export interface ParsedArgs {
  /** Raw values by setting name, in the order given (lists accumulate). */
  readonly values: Map<string, unknown>;
  readonly appModule: string | null;
  readonly help: boolean;
  readonly version: boolean;
}

const FLAGS: ReadonlyMap<string, SettingSpec> = new Map(SETTINGS.flatMap((s) => s.cli.map((f) => [f, s] as const)));

function unknownOption(flag: string): ConfigError {
  return new ConfigError(`unknown option ${flag} (see tsgunicorn --help)`);
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const values = new Map<string, unknown>();
  const positionals: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') { help = true; continue; }
    if (arg === '-v' || arg === '--version') { version = true; continue; }
    if (!arg.startsWith('-') || arg === '-') { positionals.push(arg); continue; }

    let flag = arg;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq > 0) { flag = arg.slice(0, eq); inline = arg.slice(eq + 1); }
    } else if (arg.length > 2) {
      flag = arg.slice(0, 2);
      inline = arg.slice(2);
    }
    const spec = FLAGS.get(flag);
    if (!spec) throw unknownOption(flag);
    let raw: string | boolean;
    if (spec.type === 'bool') {
      if (inline !== undefined) throw new ConfigError(`option ${flag} takes no value`);
      raw = true;
    } else if (inline !== undefined) {
      raw = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`option ${flag} needs a value${spec.metavar ? ` (${spec.metavar})` : ''}`);
      raw = next;
      i++;
    }
    if (spec.type === 'list') {
      const list = (values.get(spec.name) as string[] | undefined) ?? [];
      values.set(spec.name, [...list, raw]);
    } else {
      values.set(spec.name, raw);
    }
  }
  if (positionals.length > 1) throw new ConfigError(`expected one APP_MODULE, got ${positionals.length}: ${positionals.join(' ')}`);
  return { values, appModule: positionals[0] ?? null, help, version };
}

/** Splits TSGUNICORN_CMD_ARGS like a POSIX shell would (quotes and backslashes, no expansion). */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new ConfigError('TSGUNICORN_CMD_ARGS: unterminated quote');
  if (inWord) words.push(word);
  return words;
}
