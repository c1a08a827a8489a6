// Resolves the settings from every source. Precedence, lowest first (README "Configuration"): defaults, config
// file, TSGUNICORN_CMD_ARGS, command line. The master calls this again on HUP with the same argv,
// and relative paths (the config file, chdir) mean the same then: they are resolved against the
// directory the process started in, not the one `chdir` moved it to.

import { resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { parseArgs, splitShellWords, type ParsedArgs } from './cli-args.js';
import { loadConfigFile } from './config-file.js';
import { SETTINGS, defaultValue, type Settings } from './settings.js';
import { coerce } from './setting-types.js';

export interface LoadedSettings {
  readonly settings: Settings;
  /** Names of the settings some source set (the rest are defaults). */
  readonly explicit: ReadonlySet<string>;
  readonly help: boolean;
  readonly version: boolean;
}

function envArgs(env: NodeJS.ProcessEnv): ParsedArgs {
  const text = env['TSGUNICORN_CMD_ARGS'];
  if (!text) return { values: new Map(), appModule: null, help: false, version: false };
  try {
    return parseArgs(splitShellWords(text));
  } catch (err) {
    throw new ConfigError(`TSGUNICORN_CMD_ARGS: ${(err as Error).message}`);
  }
}

export async function loadSettings(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Promise<LoadedSettings> {
  const cli = parseArgs(argv);
  if (cli.help || cli.version) {
    return { settings: resolveValues([]), explicit: new Set(), help: cli.help, version: cli.version };
  }
  const fromEnv = envArgs(env);
  const configPath = (cli.values.get('config') ?? fromEnv.values.get('config') ?? null) as string | null;
  const fromFile = configPath === null ? new Map<string, unknown>() : await loadConfigFile(resolve(cwd, configPath));
  const layers: Map<string, unknown>[] = [fromFile, fromEnv.values, cli.values];
  const positional = cli.appModule ?? fromEnv.appModule;
  if (positional !== null) layers.push(new Map([['app', positional]]));
  const settings = resolveValues(layers, cwd);
  const explicit = new Set(layers.flatMap((l) => [...l.keys()]));
  return { settings, explicit, help: false, version: false };
}

/**
 * Applies the layers over the defaults (later wins) and coerces every value. With `cwd`, a
 * relative path setting (other than `-`, the standard stream) is made absolute against it.
 */
export function resolveValues(layers: readonly Map<string, unknown>[], cwd: string | null = null): Settings {
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    let raw: unknown = undefined;
    for (const layer of layers) if (layer.has(spec.name)) raw = layer.get(spec.name);
    const value = raw === undefined ? defaultValue(spec) : coerce(spec, raw);
    out[spec.name] = cwd !== null && 'path' in spec && spec.path && typeof value === 'string' && value !== '-' ? resolve(cwd, value) : value;
  }
  // The one cast from the table to its type: `coerce` gives each entry a value of the type
  // `Settings` derives from it (setting-types.ts), and `out` has a value for every entry.
  return out as Settings;
}
