// What the master runs against what is on disk now. A package upgrade replaces files under a
// running master: Debian's nodejs (its /usr/bin/node and libnode.so), tsgunicorn's own tree, the
// app. The kernel keeps the old ones mapped, so the master goes on running them, and only a USR2
// (a new master from the program on disk) or a HUP (new workers with the app on disk) applies the
// new ones. This says which is pending, for `tsgunicorn status`, STATUS= and the metrics:
//   upgrade pending: node v20.19.3 on disk, v20.19.2 running (USR2 to apply)
//   upgrade pending: tsgunicorn 0.2.0 on disk, 0.1.0 running (USR2 to apply)
//   app changed on disk (HUP to apply)
// It reads /proc/self/exe, /proc/self/maps and two files' metadata on a timer (master.ts), never
// per request; it starts `node --version` only when the binary changed.

import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { PACKAGE_JSON, VERSION } from '../core/program.js';
import type { Logger } from '../logging/logger.js';

/** How often what runs is compared with what is on disk. */
const EVERY_MS = 5000;

export type Pending = { readonly what: 'node' | 'tsgunicorn' | 'app'; readonly note: string };

export interface AppWatch {
  readonly file: string | null;
  readonly print: string | null;
}

/** The app's entry file, when APP_MODULE names a file (not a package): what HUP loads again. */
export function appEntry(appDir: string, path: string): string | null {
  const file = resolve(appDir, path);
  try {
    return statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

/** Where a file is and when it last changed: `dev:ino:mtime`, or null when it is not there. */
function fingerprint(path: string): string | null {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.mtimeNs}`;
  } catch {
    return null;
  }
}

/** Executable mappings of this process whose file was replaced or removed since it was mapped. */
export function deletedMappings(maps: string): string[] {
  const out = new Set<string>();
  for (const line of maps.split('\n')) {
    const m = /^\S+ ..x. \S+ \S+ \d+ +(\/.*) \(deleted\)$/.exec(line);
    if (m) out.add(m[1]!);
  }
  return [...out];
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

export class OnDisk {
  private now: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly execFingerprint = fingerprint(process.execPath);
  /** The version of the node binary on disk, by its fingerprint (asked once per change). */
  private diskNode: { readonly print: string | null; readonly version: string } | null = null;
  private appFile: string | null = null;
  private appFingerprint: string | null = null;

  /**
   * From now on, compares the app's entry file (null: not a file, e.g. a package name) with what
   * it is now: what the workers being started load. Returns what was watched before.
   */
  watchApp(file: string | null): AppWatch {
    const before = { file: this.appFile, print: this.appFingerprint };
    this.appFile = file;
    this.appFingerprint = file === null ? null : fingerprint(file);
    return before;
  }

  /** Back to what was watched before (a reload failed: the old workers still run that app). */
  restoreApp(before: AppWatch): void {
    this.appFile = before.file;
    this.appFingerprint = before.print;
  }

  /** `changed` hears the notes each time they change; they are logged as they appear. */
  constructor(private readonly log: Logger, private readonly changed: (notes: string[]) => void) {}

  /** What differs between what runs and what is on disk, as of the last check. */
  get pending(): readonly Pending[] {
    return this.now;
  }

  start(): void {
    this.timer = setInterval(() => this.refresh(), EVERY_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Checks now; says so when what is pending changed. */
  refresh(): void {
    const now = this.check();
    if (now.map((p) => p.note).join('\n') === this.now.map((p) => p.note).join('\n')) return;
    for (const p of now) if (!this.now.some((q) => q.note === p.note)) this.log.info(`On disk: ${p.note}`);
    this.now = now;
    this.changed(now.map((p) => p.note));
  }

  private check(): Pending[] {
    const out: Pending[] = [];
    const node = this.nodeNote();
    if (node) out.push({ what: 'node', note: node });
    const disk = this.diskVersion();
    if (disk !== null && disk !== VERSION) out.push({ what: 'tsgunicorn', note: `upgrade pending: tsgunicorn ${disk} on disk, ${VERSION} running (USR2 to apply)` });
    if (this.appFile !== null && fingerprint(this.appFile) !== this.appFingerprint) out.push({ what: 'app', note: 'app changed on disk (HUP to apply)' });
    return out;
  }

  private nodeNote(): string | null {
    const exe = safeReadlink('/proc/self/exe');
    const print = fingerprint(process.execPath);
    const libs = deletedMappings(readOr('/proc/self/maps', '')).filter((p) => /\/lib[^/]*node[^/]*\.so/.test(p) || p === process.execPath);
    const replaced = print !== this.execFingerprint || exe.endsWith(' (deleted)') || libs.length > 0;
    if (!replaced) return null;
    if (this.diskNode?.print !== print) this.diskNode = { print, version: nodeVersionOf(process.execPath) };
    const what = this.diskNode.version === process.version
      ? `node ${process.version} on disk is not the one running (${[...new Set([process.execPath, ...libs])].map((p) => basename(p)).join(', ')} replaced)`
      : `node ${this.diskNode.version} on disk, ${process.version} running`;
    return `upgrade pending: ${what} (USR2 to apply)`;
  }

  private diskVersion(): string | null {
    try {
      return (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: string }).version ?? null;
    } catch {
      return null;
    }
  }
}

function safeReadlink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

function nodeVersionOf(execPath: string): string {
  try {
    return execFileSync(execPath, ['--version'], { encoding: 'utf8', timeout: 10000, env: {}, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}
