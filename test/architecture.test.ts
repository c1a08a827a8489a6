// The shape of src/ (docs/architecture.md): each folder is a layer, a module imports only from its
// own folder or a lower layer (never master <-> worker, never from the command), there is no import
// cycle, the arbiter stays a page or two, and what ships (dist/src) holds no generator.

import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers/daemon.js';
import { LAYERS, cycles, folderGraph, importGraph, layerViolations } from './helpers/import-graph.js';

const SRC = join(ROOT, 'src');

test('every module sits in a layer folder and imports nothing from above it', (t) => {
  const graph = importGraph(SRC);
  t.deepEqual(layerViolations(graph), []);
  t.deepEqual(readdirSync(SRC).filter((e) => e.endsWith('.ts')), [], 'no loose files at the src/ root');
  t.deepEqual(readdirSync(SRC).sort(), LAYERS.flat().sort(), 'every folder has its layer');
  t.log(folderGraph(graph).join('\n'));
});

test('the import graph has no cycle', (t) => {
  t.deepEqual(cycles(importGraph(SRC)), []);
});

test('the arbiter stays small, and nothing in src/ cites a document the repository lacks', (t) => {
  const arbiter = readFileSync(join(SRC, 'master', 'arbiter.ts'), 'utf8').split('\n').length;
  t.true(arbiter <= 500, `src/master/arbiter.ts has ${arbiter} lines`);
  for (const file of importGraph(SRC).keys()) {
    const text = readFileSync(join(SRC, file), 'utf8');
    t.false(/\bSPEC\b/.test(text), `${file} cites SPEC`);
    for (const m of text.matchAll(/\b(docs\/[\w.-]+)/g)) t.notThrows(() => readFileSync(join(ROOT, m[1]!)), `${file} cites ${m[1]}`);
  }
});
