// The import graph of src/: which module imports which (static imports, `import type` and dynamic
// import() alike), read from the TypeScript sources. test/architecture.test.ts checks its layers
// and that it has no cycles; docs/architecture.md describes the same layers.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Folders of src/, lowest first: a module imports from its own folder or from a lower rank only. */
export const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['logging', 'sockets', 'app'],
  ['config', 'systemd'],
  ['ipc'],
  ['master', 'worker'],
  ['cli'],
];

export type ImportGraph = Map<string, Set<string>>;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Module paths relative to `srcDir` (`master/arbiter.ts`) and what each imports from src/. */
export function importGraph(srcDir: string): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of sources(srcDir)) {
    const from = relative(srcDir, file);
    const to = new Set<string>();
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)'(\.{1,2}\/[^']+)\.js'/gm)) {
      to.add(relative(srcDir, resolve(dirname(file), `${m[1]}.ts`)));
    }
    graph.set(from, to);
  }
  return graph;
}

export function folderOf(module: string): string {
  return module.includes('/') ? module.slice(0, module.indexOf('/')) : '';
}

export function rankOf(folder: string): number {
  return LAYERS.findIndex((l) => l.includes(folder));
}

/** Imports that break the layers: into a higher or same-rank other folder, or from a loose file. */
export function layerViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [from, tos] of graph) {
    const f = folderOf(from);
    if (rankOf(f) < 0) { out.push(`${from}: not in a layer folder`); continue; }
    for (const to of tos) {
      const g = folderOf(to);
      if (g === f) continue;
      if (!(rankOf(g) >= 0 && rankOf(g) < rankOf(f))) out.push(`${from} -> ${to}`);
    }
  }
  return out;
}

/** Every cycle found by a depth-first search, as module lists (first == last). */
export function cycles(graph: ImportGraph): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (m: string): void => {
    state.set(m, 'open');
    stack.push(m);
    for (const n of graph.get(m) ?? []) {
      if (state.get(n) === 'open') found.push([...stack.slice(stack.indexOf(n)), n]);
      else if (!state.has(n)) visit(n);
    }
    stack.pop();
    state.set(m, 'done');
  };
  for (const m of [...graph.keys()].sort()) if (!state.has(m)) visit(m);
  return found;
}

/** The folder-level graph: `master -> config, core, ...`, one line a folder. */
export function folderGraph(graph: ImportGraph): string[] {
  const edges = new Map<string, Set<string>>();
  for (const [from, tos] of graph) {
    const f = folderOf(from);
    const set = edges.get(f) ?? new Set<string>();
    for (const to of tos) if (folderOf(to) !== f) set.add(folderOf(to));
    edges.set(f, set);
  }
  return LAYERS.flat().filter((f) => edges.has(f)).map((f) => `${f} -> ${[...edges.get(f)!].sort().join(', ') || '(nothing)'}`);
}
