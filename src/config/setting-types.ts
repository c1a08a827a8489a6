// Value types of settings: how a value from the command line (always a string) or from a config
// file (TOML or JS value) becomes the typed value, with one clear message when it cannot.

import { ConfigError } from '../core/errors.js';

export type SettingType = 'int' | 'bool' | 'string' | 'list' | 'choice' | 'octal' | 'hook';

export interface SettingSpec {
  /** Config-file key (Gunicorn's name). */
  readonly name: string;
  readonly section: string;
  /** Command-line flags; none for config-only settings such as hooks. */
  readonly cli: readonly string[];
  readonly metavar?: string;
  readonly type: SettingType;
  readonly default: unknown;
  /** How the default reads in --help and the docs when it is computed at run time. */
  readonly defaultText?: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  /** A file or directory: a relative path means one in the directory the process started in. */
  readonly path?: true;
  /** For hooks: how many arguments the function receives. */
  readonly arity?: number;
  /** Extra validation after coercion; throws ConfigError. */
  readonly validate?: (value: never) => void;
  readonly help: string;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'a table' : String(value);
}

function coerceInt(s: SettingSpec, raw: unknown): number {
  let n: number;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'bigint') n = Number(raw);
  else if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) n = Number(raw);
  else throw new ConfigError(`${s.name}: expected a whole number, got ${describe(raw)}`);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${s.name}: expected a whole number, got ${describe(raw)}`);
  if (s.min !== undefined && n < s.min) throw new ConfigError(`${s.name}: must be at least ${s.min}, got ${n}`);
  return n;
}

function coerceBool(s: SettingSpec, raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string') {
    const v = raw.trim().toLowerCase();
    if (['true', 'yes', '1', 'on'].includes(v)) return true;
    if (['false', 'no', '0', 'off'].includes(v)) return false;
  }
  throw new ConfigError(`${s.name}: expected true or false, got ${describe(raw)}`);
}

function coerceString(s: SettingSpec, raw: unknown): string | null {
  if (raw === null && s.default === null) return null;
  if (typeof raw === 'string') return raw;
  throw new ConfigError(`${s.name}: expected a string, got ${describe(raw)}`);
}

function coerceList(s: SettingSpec, raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw : [raw];
  return items.map((item) => {
    if (typeof item !== 'string') throw new ConfigError(`${s.name}: expected a string or a list of strings, got ${describe(item)}`);
    return item;
  });
}

function coerceChoice(s: SettingSpec, raw: unknown): string {
  const v = typeof raw === 'string' ? raw.trim().toLowerCase() : raw;
  const choice = s.choices?.find((c) => c.toLowerCase() === v);
  if (choice !== undefined) return choice;
  throw new ConfigError(`${s.name}: expected one of ${s.choices?.join(', ')}, got ${describe(raw)}`);
}

function coerceOctal(s: SettingSpec, raw: unknown): number {
  let n = NaN;
  if (typeof raw === 'number' && Number.isInteger(raw)) n = raw;
  else if (typeof raw === 'string' && /^\s*(0o?)?[0-7]{1,4}\s*$/i.test(raw)) n = parseInt(raw.trim().replace(/^0o/i, ''), 8);
  else if (typeof raw === 'string' && /^\s*0x[0-9a-f]+\s*$/i.test(raw)) n = parseInt(raw, 16);
  if (!(n >= 0 && n <= 0o777)) throw new ConfigError(`${s.name}: expected an octal mode such as 0022, got ${describe(raw)}`);
  return n;
}

function coerceHook(s: SettingSpec, raw: unknown): ((...args: unknown[]) => unknown) | null {
  if (raw === null) return null;
  if (typeof raw !== 'function') throw new ConfigError(`${s.name}: expected a function (hooks are set in a JS config file), got ${describe(raw)}`);
  if (s.arity !== undefined && raw.length > s.arity) {
    throw new ConfigError(`${s.name}: the hook takes ${s.arity} argument(s), the function declares ${raw.length}`);
  }
  return raw as (...args: unknown[]) => unknown;
}

const coercers: Record<SettingType, (s: SettingSpec, raw: unknown) => unknown> = {
  int: coerceInt,
  bool: coerceBool,
  string: coerceString,
  list: coerceList,
  choice: coerceChoice,
  octal: coerceOctal,
  hook: coerceHook,
};

/** Turns a raw value into the setting's type and validates it; throws ConfigError. */
export function coerce(spec: SettingSpec, raw: unknown): unknown {
  const value = coercers[spec.type](spec, raw);
  spec.validate?.(value as never);
  return value;
}

/** The value as a person writes it in TOML / reads it in --print-config. */
export function formatValue(value: unknown): string {
  if (typeof value === 'function') return `<function ${value.name || 'anonymous'}>`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined) return 'none';
  if (Array.isArray(value)) return `[${value.map(formatValue).join(', ')}]`;
  return String(value);
}
