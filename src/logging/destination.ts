// A log destination (the error log's, the access log's): one stream for the process's whole life,
// whose target changes under it. USR1 reopens it (logrotate moved the file, we open the path
// anew); a reload retargets it to another path (the new file is opened, the old one closed once
// what was written to it is flushed). `-` means the process's own stdout/stderr. A file that
// cannot be opened or written falls back to standard error with one warning instead of taking the
// server down. When standard output or error is a pipe whose reader went away (EPIPE), lines to it
// are dropped: a process must neither die of it nor log the write error, which would fail the same
// way, over and over.

import { createWriteStream, type WriteStream } from 'node:fs';
import { Writable } from 'node:stream';

/** Standard streams that failed (EPIPE, EBADF): nothing more is written to them. */
const broken = new WeakSet<NodeJS.WritableStream>();
const watched = new WeakSet<NodeJS.WritableStream>();

function watch(std: NodeJS.WritableStream): void {
  if (watched.has(std)) return;
  watched.add(std);
  std.on('error', () => broken.add(std));
}

/** Resolves once what was written to `stream` so far has left for it (writes complete in order). */
function written(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((done) => {
    if (broken.has(stream)) setImmediate(done);
    else stream.write('', () => done());
  });
}

export class Destination extends Writable {
  private target: string;
  private stream: NodeJS.WritableStream;
  private failed = false;
  /** Files this destination left (reopen, retarget) that are still being flushed and closed. */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    path: string,
    private readonly std: NodeJS.WriteStream,
  ) {
    super({ objectMode: false });
    watch(std);
    watch(process.stderr);
    this.target = path;
    this.stream = this.open();
  }

  /** Whether the target is a terminal/pipe of ours rather than a file. */
  private get isStd(): boolean {
    return this.target === '-';
  }

  /** Whether lines go to this process's standard error now (`-` for the error log, or a file that failed). */
  get toStderr(): boolean {
    return this.stream === process.stderr;
  }

  private open(): NodeJS.WritableStream {
    if (this.isStd) return this.std;
    this.failed = false;
    const file: WriteStream = createWriteStream(this.target, { flags: 'a', mode: 0o640 });
    file.on('error', (err) => this.fallBack(file, err));
    return file;
  }

  /** The file failed: standard error from now on, with one warning. */
  private fallBack(file: WriteStream, err: Error): void {
    if (this.stream !== file) return;
    this.stream = process.stderr;
    if (!this.failed && !broken.has(process.stderr)) process.stderr.write(`tsgunicorn: cannot write log file ${this.target} (${err.message}); logging to standard error\n`);
    this.failed = true;
  }

  /** The file written to now; null for a standard stream. */
  private get file(): WriteStream | null {
    return this.stream === process.stderr || this.stream === this.std ? null : (this.stream as WriteStream);
  }

  /** Switches to a freshly opened target and closes the file left, once what was written to it is flushed. */
  private switchTo(path: string): void {
    const file = this.file;
    this.target = path;
    this.stream = this.open();
    if (file === null || file.closed) return;
    const closed = new Promise<void>((done) => file.once('close', done));
    this.closing.add(closed);
    void closed.then(() => this.closing.delete(closed));
    file.end();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    // A failed write destroys the file at once, its 'error' event comes a tick later: no line in between is lost.
    const file = this.file;
    if (file?.errored) this.fallBack(file, file.errored);
    if (!broken.has(this.stream)) this.stream.write(chunk);
    done();
  }

  /** Resolves once what was written so far has left for the file or standard stream, the files left behind too. */
  async flushed(): Promise<void> {
    await Promise.all([written(this.stream), ...this.closing]);
  }

  /** Reopen the file at the same path (after logrotate). No-op for `-`. */
  reopen(): void {
    if (!this.isStd) this.switchTo(this.target);
  }

  /** Write to another path from now on (a reload). The same path: nothing is opened or closed. */
  retarget(path: string): void {
    if (path !== this.target) this.switchTo(path);
  }
}
