// TypeScript apps: the workers get Node options from `node_options` (`--node-options`), so a
// loader the user installed (tsx) runs examples/typescript/app.ts without a build step, and
// `--enable-source-maps` maps a compiled app's stack back to its .ts lines.

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { ROOT, freePort, get, start, tempDir } from './helpers/daemon.js';

const APP = 'examples/typescript/app.ts';
/** The line of app.ts that throws, for the stack traces. */
const THROW_LINE = readFileSync(join(ROOT, APP), 'utf8').split('\n').findIndex((l) => l.includes("throw new Error('thrown from app.ts')")) + 1;

/** Node 22.18+ and 24 strip erasable TypeScript types by themselves; Node 20 cannot. */
const nodeStripsTypes = Boolean((process.features as { typescript?: string | false }).typescript);

test('tsgunicorn --node-options=--import=tsx serves a .ts app, with TypeScript line numbers in stacks', async (t) => {
  t.true(THROW_LINE > 1);
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--node-options=--import=tsx', APP]);
  await d.waitReady(30000);
  const [worker] = await d.waitWorkers(1);
  const hello = await get(`http://127.0.0.1:${port}/`);
  t.is(hello.status, 200);
  t.is(hello.body, 'Hello from TypeScript\n');
  const json = await get(`http://127.0.0.1:${port}/json`);
  t.deepEqual(JSON.parse(json.body), { language: 'typescript', worker, path: '/json' });

  const failed = await get(`http://127.0.0.1:${port}/throw`);
  t.is(failed.status, 500);
  const stack = await d.waitForLog(/Error: thrown from app\.ts\n\s+at explode \((.*?):(\d+):\d+\)/);
  t.true(stack[1]!.endsWith('app.ts'), `stack names the .ts file: ${stack[0]}`);
  t.is(Number(stack[2]), THROW_LINE, 'the TypeScript line that throws');
});

test('the option may be repeated and given as two words: --node-options --import=tsx', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--node-options', '--import=tsx', '--node-options', '--max-old-space-size=256', APP]);
  await d.waitReady(30000);
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'Hello from TypeScript\n');
});

test('--enable-source-maps: a tsc-compiled app reports its .ts lines', async (t) => {
  // Compile the example with the project's TypeScript, source map beside it.
  const out = tempDir();
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '--ignoreConfig', '--outDir', out, '--sourceMap', '--module', 'NodeNext',
    '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', '--skipLibCheck', '--strict', APP], { cwd: ROOT });
  writeFileSync(join(out, 'package.json'), '{"type": "module"}\n');
  const compiled = join(out, 'app.js');
  const jsLine = readFileSync(compiled, 'utf8').split('\n').findIndex((l) => l.includes("throw new Error('thrown from app.ts')")) + 1;
  t.not(jsLine, THROW_LINE, 'the compiled line differs from the source line (else this test proves nothing)');

  const stackLine = async (nodeOptions: string[]): Promise<string> => {
    const port = await freePort();
    const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, ...nodeOptions, compiled]);
    await d.waitReady(30000);
    t.is((await get(`http://127.0.0.1:${port}/throw`)).status, 500);
    const m = await d.waitForLog(/at explode \((.*?)\)/);
    return m[1]!;
  };
  const [mapped, plain] = await Promise.all([stackLine(['--node-options=--enable-source-maps']), stackLine([])]);
  t.regex(mapped, new RegExp(`app\\.ts:${THROW_LINE}:\\d+$`));
  t.regex(plain, new RegExp(`app\\.js:${jsLine}:\\d+$`));
});

test('a .ts app without a loader: served where Node strips types, else exit 4 naming the fix', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, APP]);
  if (nodeStripsTypes) {
    await d.waitReady(30000);
    t.is((await get(`http://127.0.0.1:${port}/`)).body, 'Hello from TypeScript\n');
    return;
  }
  t.is((await d.exited).code, 4);
  t.regex(d.output, /failed to load \(a TypeScript file: give the workers a loader, e\.g\. `--node-options=--import=tsx`/);
  t.regex(d.output, /ERR_UNKNOWN_FILE_EXTENSION|Unknown file extension/);
});
