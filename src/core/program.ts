// Where the program is installed and what it is: the package version, read once from package.json
// (next to dist/ in every install layout), and the worker program the master starts.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The worker program (dist/src/worker/main.js): the master starts it, and checks its user can read it. */
export const WORKER_MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url));
