// The deploy bench's load (bench/deploy-load.ts) as a process of its own, driven from the bench
// (bench/deploys.ts, bench/distribution.ts).

import { fork } from 'node:child_process';
import { join } from 'node:path';
import type { LoadReport, LoadSpec } from './deploy-load.js';
import { ROOT } from './procs.js';

/**
 * The load process for `spec`. segment() resolves once the load counts its new requests in the
 * named window (before a deploy's signal goes out); stop() resolves with the report.
 */
export function startLoad(spec: LoadSpec): { segment(name: string): Promise<void>; stop(): Promise<LoadReport>; kill(): void } {
  const child = fork(join(ROOT, 'dist', 'bench', 'deploy-load.js'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let switched: (() => void) | null = null;
  let died: ((err: Error) => void) | null = null;
  const report = new Promise<LoadReport>((resolve, reject) => {
    child.on('message', (m: { t: 'segment' } | { t: 'report'; report: LoadReport }) => {
      if (m.t === 'segment') switched?.();
      else resolve(m.report);
    });
    child.once('exit', (code) => {
      const err = new Error(`the load process exited (${code}) before it reported`);
      died?.(err);
      reject(err);
    });
  });
  report.catch(() => undefined);
  child.on('error', () => undefined);
  const ask = (m: object): void => {
    if (!child.connected) throw new Error('the load process is gone');
    child.send(m);
  };
  return {
    segment: (name) => new Promise<void>((resolve, reject) => {
      switched = resolve;
      died = reject;
      ask({ t: 'segment', name });
    }),
    stop: () => { ask({ t: 'stop' }); return report; },
    kill: () => { child.kill('SIGKILL'); },
  };
}

