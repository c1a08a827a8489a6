// Where the program is installed and what it is: its package.json (next to dist/ in every install
// layout) with the version, read once at start, and the worker program the master starts.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The program's package.json: a package upgrade replaces it (master/on-disk.ts reads it again). */
export const PACKAGE_JSON = fileURLToPath(new URL('../../../package.json', import.meta.url));

/** The version this process runs. */
export const VERSION: string = (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;

/** The worker program (dist/src/worker/main.js): the master starts it, and checks its user can read it. */
export const WORKER_MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url));
