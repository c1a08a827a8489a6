// Writes the documents generated from the settings registry: docs/settings.md and the man page
// docs/tsgunicorn.1. With --check, writes nothing and exits 1 listing the files that are stale.
//
//   npm run build && npm run docs            regenerate
//   node dist/packaging/gen-docs.js --check  fail when a committed file is out of date

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { manPage, settingsMarkdown } from './reference.js';
import { VERSION } from '../src/core/program.js';

/** The repository root (this file runs as dist/packaging/gen-docs.js). */
const ROOT = new URL('../../', import.meta.url);

export function generatedDocs(version: string = VERSION): ReadonlyMap<string, string> {
  return new Map([
    ['docs/settings.md', settingsMarkdown()],
    ['docs/tsgunicorn.1', manPage(version)],
  ]);
}

function readOrNull(url: URL): string | null {
  try {
    return readFileSync(url, 'utf8');
  } catch {
    return null;
  }
}

function main(argv: readonly string[]): number {
  const unknown = argv.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    process.stderr.write(`gen-docs: unknown argument ${unknown[0]} (usage: gen-docs.js [--check])\n`);
    return 2;
  }
  const docs = generatedDocs();
  if (argv.includes('--check')) {
    const stale = [...docs].filter(([path, text]) => readOrNull(new URL(path, ROOT)) !== text).map(([path]) => path);
    if (stale.length === 0) return 0;
    process.stderr.write(`gen-docs: stale generated files (run \`npm run build && npm run docs\`):\n${stale.map((p) => `  ${p}\n`).join('')}`);
    return 1;
  }
  for (const [path, text] of docs) {
    const url = new URL(path, ROOT);
    mkdirSync(new URL('.', url), { recursive: true });
    if (readOrNull(url) === text) continue;
    writeFileSync(url, text);
    process.stdout.write(`gen-docs: wrote ${path}\n`);
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
