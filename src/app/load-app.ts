// Loads the application in a worker: import the module (ESM or CommonJS), pick the export, call
// the factory, and turn what comes back into a Node request listener. Web-standard `fetch`
// handlers (Hono, ...) go through @hono/node-server's adapter.

import { existsSync } from 'node:fs';
import type { RequestListener, Server } from 'node:http';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AppLoadError } from '../core/errors.js';
import type { AppSpec } from './app-spec.js';

export interface LoadedApp {
  readonly listener: RequestListener;
  /** The module's optional `onServer(server)` export: gives the app its worker's http.Server. */
  readonly onServer: ((server: Server) => void | Promise<void>) | null;
}

type FetchHandler = { fetch: (request: Request) => Response | Promise<Response> };

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? `an object without a fetch() method (keys: ${Object.keys(v as object).slice(0, 5).join(', ') || 'none'})` : `a ${typeof v}`;
}

function resolveModule(path: string, chdir: string): string {
  if (isAbsolute(path) || path.startsWith('.') || existsSync(resolve(chdir, path))) {
    const file = resolve(chdir, path);
    if (!existsSync(file)) throw new AppLoadError(`cannot find application module ${JSON.stringify(path)} (looked for ${file})`);
    return pathToFileURL(file).href;
  }
  try {
    return pathToFileURL(createRequire(join(chdir, 'noop.js')).resolve(path)).href;
  } catch {
    throw new AppLoadError(`cannot find application module ${JSON.stringify(path)} (not a file in ${chdir}, nor a package it can import)`);
  }
}

async function asListener(value: unknown, what: string): Promise<RequestListener> {
  if (typeof value === 'function') return value as RequestListener;
  if (value && typeof value === 'object' && typeof (value as FetchHandler).fetch === 'function') {
    const handler = value as FetchHandler;
    // Loaded only for fetch-style apps: workers of plain listeners do not pay for it.
    const { getRequestListener } = await import('@hono/node-server');
    return getRequestListener((request: Request) => handler.fetch(request)) as unknown as RequestListener;
  }
  throw new AppLoadError(`${what} is ${describe(value)}; expected a request listener (req, res) => void or an object with fetch(request)`);
}

/** Node 20 cannot load TypeScript, and later Nodes only strip erasable types: name the fix. */
function typeScriptHint(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (!/\.[cm]?tsx?$/.test(path)) return '';
  if (code !== 'ERR_UNKNOWN_FILE_EXTENSION' && code !== 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' && code !== 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING') return '';
  return ' (a TypeScript file: give the workers a loader, e.g. `--node-options=--import=tsx` with tsx installed)';
}

export async function loadApp(spec: AppSpec, chdir: string): Promise<LoadedApp> {
  const url = resolveModule(spec.path, chdir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new AppLoadError(`application module ${spec.path} failed to load${typeScriptHint(spec.path, err)}`, { cause: err });
  }
  const name = spec.exportName;
  const cjs = mod['default'] as Record<string, unknown> | undefined;
  let value: unknown = name === null ? mod['default'] : name in mod ? mod[name] : cjs?.[name];
  const what = `${spec.path}:${name ?? 'default'}`;
  if (value === undefined) {
    const names = Object.keys(mod).filter((k) => k !== 'module.exports');
    throw new AppLoadError(`${spec.path} has no export ${JSON.stringify(name ?? 'default')} (it exports: ${names.join(', ') || 'nothing'})`);
  }
  if (spec.factoryArgs !== null) {
    if (typeof value !== 'function') throw new AppLoadError(`${what} is ${describe(value)}, not a factory function to call`);
    try {
      value = await (value as (...a: unknown[]) => unknown)(...spec.factoryArgs);
    } catch (err) {
      throw new AppLoadError(`factory ${what}() failed`, { cause: err });
    }
  } else {
    value = await value;
  }
  const onServer = mod['onServer'] ?? cjs?.['onServer'];
  return {
    listener: await asListener(value, spec.factoryArgs !== null ? `the result of ${what}()` : what),
    onServer: typeof onServer === 'function' ? (onServer as (server: Server) => void | Promise<void>) : null,
  };
}
