// The documents generated from the settings registry: the committed docs/settings.md and man page
// must match what the registry renders now, --help must list every flag, and the man page must
// format without warnings (the check lintian runs).

import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { parse as parseToml } from 'smol-toml';
import { generatedDocs } from '../packaging/gen-docs.js';
import { TOML_EXAMPLE } from '../packaging/reference.js';
import { resolveValues } from '../src/config/load-settings.js';
import { SETTINGS, SETTINGS_BY_NAME } from '../src/config/settings.js';
import { VERSION } from '../src/core/program.js';

const run = promisify(execFile);
/** The repository root (tests run from dist/test/). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = 'bin/tsgunicorn.js';

for (const [path, fresh] of generatedDocs(VERSION)) {
  test(`${path} is up to date with the settings registry`, (t) => {
    let committed: string | null = null;
    try {
      committed = readFileSync(join(ROOT, path), 'utf8');
    } catch {
      t.fail(`${path} is missing: run \`npm run build && npm run docs\` and commit it`);
      return;
    }
    t.is(committed, fresh, `${path} is stale: run \`npm run build && npm run docs\` and commit it`);
  });
}

test('--help lists every command-line flag of the registry', async (t) => {
  const { stdout } = await run(process.execPath, [BIN, '--help'], { cwd: ROOT });
  const missing = SETTINGS.flatMap((s) => s.cli).filter((flag) => !new RegExp(`(^|[\\s,])${flag}([\\s,]|$)`, 'm').test(stdout));
  t.deepEqual(missing, [], `flags missing from --help: ${missing.join(' ')}`);
});

test('--version prints the version and exits 0', async (t) => {
  const { stdout } = await run(process.execPath, [BIN, '--version'], { cwd: ROOT });
  t.regex(stdout, new RegExp(`^tsgunicorn ${VERSION.replace(/\./g, '\\.')}\\b`));
});

test('the TOML example in the docs is a valid configuration', (t) => {
  const doc = parseToml(TOML_EXAMPLE.join('\n')) as Record<string, unknown>;
  const unknown = Object.keys(doc).filter((k) => !SETTINGS_BY_NAME.has(k));
  t.deepEqual(unknown, []);
  t.notThrows(() => resolveValues([new Map(Object.entries(doc))]));
});

test('the man page formats without warnings (lintian groff-message)', (t) => {
  const probe = spawnSync('man', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    t.log('man is not installed; skipping the man --warnings check (apt-get install man-db groff-base)');
    t.pass();
    return;
  }
  // The command lintian runs (see its groff-message tag).
  const r = spawnSync('man', ['--warnings', '-E', 'UTF-8', '-l', '-Tutf8', '-Z', 'docs/tsgunicorn.1'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C.UTF-8', MANROFFSEQ: '', MANWIDTH: '80' },
  });
  t.is(r.status, 0, r.stderr);
  t.is(r.stderr, '', 'man --warnings printed warnings for docs/tsgunicorn.1');
  t.true(r.stdout.length > 0);
});
