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

/**
 * One opened log file. Its lines wait until the files opened before it are closed: two files on
 * one path (a reload from A to B and back, a reopen) would otherwise write in whichever order
 * their opens and writes finish.
 */
class LogFile {
  readonly stream: WriteStream;
  private held: Buffer[] | null = [];
  private readonly writing: Promise<void>;

  constructor(path: string, before: Promise<unknown>, onError: (file: LogFile, err: Error) => void) {
    this.stream = createWriteStream(path, { flags: 'a', mode: 0o640 });
    this.stream.on('error', (err) => onError(this, err));
    this.writing = before.then(() => {
      for (const chunk of this.held!) this.stream.write(chunk);
      this.held = null;
    });
  }

  write(chunk: Buffer): void {
    if (this.held) this.held.push(chunk);
    else this.stream.write(chunk);
  }

  /** Resolves once what was written so far is in the file. */
  async flushed(): Promise<void> {
    await this.writing;
    await written(this.stream);
  }

  /** Closes the file once what was written to it is in it. */
  async close(): Promise<void> {
    await this.writing;
    if (this.stream.closed) return;
    await new Promise<void>((done) => {
      this.stream.once('close', done);
      this.stream.end();
    });
  }
}

export class Destination extends Writable {
  private target: string;
  /** The file written to now; null while lines go to a standard stream. */
  private file: LogFile | null = null;
  /** The standard stream written to when there is no file: `std` for `-`, standard error for a file that failed. */
  private out: NodeJS.WritableStream;
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
    this.out = std;
    this.open();
  }

  /** Whether lines go to this process's standard error now (`-` for the error log, or a file that failed). */
  get toStderr(): boolean {
    return this.file === null && this.out === process.stderr;
  }

  private open(): void {
    if (this.target === '-') {
      this.file = null;
      this.out = this.std;
      return;
    }
    this.failed = false;
    this.file = new LogFile(this.target, Promise.all(this.closing), (file, err) => this.fallBack(file, err));
  }

  /** The file failed: standard error from now on, with one warning. */
  private fallBack(file: LogFile, err: Error): void {
    if (this.file !== file) return;
    this.file = null;
    this.out = process.stderr;
    if (!this.failed && !broken.has(process.stderr)) process.stderr.write(`tsgunicorn: cannot write log file ${this.target} (${err.message}); logging to standard error\n`);
    this.failed = true;
  }

  /** Switches to a freshly opened target and closes the file left, once what was written to it is flushed. */
  private switchTo(path: string): void {
    const left = this.file;
    if (left !== null) {
      const closed = left.close();
      this.closing.add(closed);
      void closed.then(() => this.closing.delete(closed));
    }
    this.target = path;
    this.open();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    // A failed write destroys the file at once, its 'error' event comes a tick later: no line in between is lost.
    const errored = this.file?.stream.errored;
    if (errored) this.fallBack(this.file!, errored);
    if (this.file) this.file.write(chunk);
    else if (!broken.has(this.out)) this.out.write(chunk);
    done();
  }

  /** Resolves once what was written so far has left for the file or standard stream, the files left behind too. */
  async flushed(): Promise<void> {
    await Promise.all([this.file ? this.file.flushed() : written(this.out), ...this.closing]);
  }

  /** Reopen the file at the same path (after logrotate). No-op for `-`. */
  reopen(): void {
    if (this.target !== '-') this.switchTo(this.target);
  }

  /** Write to another path from now on (a reload). The same path: nothing is opened or closed. */
  retarget(path: string): void {
    if (path !== this.target) this.switchTo(path);
  }
}
