// Config files: TOML for /etc/tsgunicorn/NAME.toml, or a JS module (ESM or CommonJS) whose exports
// (named, or a default-exported object) are settings and may include server hooks.

import { readFileSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../core/errors.js';
import { SETTINGS_BY_NAME } from './settings.js';

export type RawSettings = Map<string, unknown>;

function checkKeys(file: string, entries: Iterable<[string, unknown]>): RawSettings {
  const out: RawSettings = new Map();
  for (const [key, value] of entries) {
    const name = key.replace(/-/g, '_');
    if (!SETTINGS_BY_NAME.has(name)) throw new ConfigError(`${file}: unknown setting ${JSON.stringify(key)} (see tsgunicorn --help)`);
    out.set(name, value);
  }
  return out;
}

async function loadToml(file: string): Promise<RawSettings> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  // Workers read JS config files for their hooks only: the TOML parser loads when it is needed.
  const { parse: parseToml } = await import('smol-toml');
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    throw new ConfigError(`${file}: invalid TOML: ${first}`);
  }
  return checkKeys(file, Object.entries(doc));
}

async function loadJs(file: string): Promise<RawSettings> {
  let mod: Record<string, unknown>;
  try {
    // Node caches modules: a query with the file's mtime makes HUP read an edited ES module, and
    // a CommonJS one is dropped from require's cache.
    delete createRequire(import.meta.url).cache[file];
    const url = `${pathToFileURL(file).href}?mtime=${statSync(file).mtimeMs}`;
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(file))) throw new ConfigError(`cannot read config file ${file}: no such file`);
    const where = e.stack?.split('\n').find((l) => l.includes(file))?.trim();
    throw new ConfigError(`${file}: ${e.name}: ${e.message.split('\n')[0]}${where ? ` (${where})` : ''}`);
  }
  const named = Object.entries(mod).filter(([k]) => k !== 'default' && k !== 'module.exports');
  const dflt = mod['default'];
  const entries = dflt && typeof dflt === 'object' && named.length === 0 ? Object.entries(dflt) : named;
  return checkKeys(file, entries);
}

export async function loadConfigFile(path: string): Promise<RawSettings> {
  const file = resolve(path);
  switch (extname(file)) {
    case '.toml':
      return loadToml(file);
    case '.js':
    case '.mjs':
    case '.cjs':
      return loadJs(file);
    default:
      throw new ConfigError(`config file ${file}: use a .toml, .js, .mjs or .cjs file`);
  }
}
