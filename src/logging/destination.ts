// A log destination that USR1 can reopen (logrotate moves the file, we open the path anew). `-`
// means the process's own stdout/stderr. A file that cannot be opened or written falls back to
// standard error with one warning instead of taking the server down. When standard output or error
// is a pipe whose reader went away (EPIPE), lines to it are dropped: a process must neither die of
// it nor log the write error, which would fail the same way, over and over.

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

export class Destination extends Writable {
  private stream: NodeJS.WritableStream;
  private failed = false;

  constructor(
    readonly path: string,
    private readonly std: NodeJS.WriteStream,
  ) {
    super({ objectMode: false });
    watch(std);
    watch(process.stderr);
    this.stream = this.open();
  }

  /** Whether writes go to a terminal/pipe of ours rather than a file. */
  get isStd(): boolean {
    return this.path === '-';
  }

  private open(): NodeJS.WritableStream {
    if (this.isStd) return this.std;
    const file: WriteStream = createWriteStream(this.path, { flags: 'a', mode: 0o640 });
    file.on('error', (err) => {
      if (this.stream !== file) return;
      this.stream = process.stderr;
      if (!this.failed && !broken.has(process.stderr)) process.stderr.write(`tsgunicorn: cannot write log file ${this.path} (${err.message}); logging to standard error\n`);
      this.failed = true;
    });
    return file;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!broken.has(this.stream)) this.stream.write(chunk);
    done();
  }

  /** Resolves once what was written so far has left for the file or standard stream too. */
  flushed(): Promise<void> {
    const stream = this.stream;
    return new Promise((done) => {
      // Writes complete in order: an empty one's callback comes after everything before it.
      if (broken.has(stream)) setImmediate(done);
      else stream.write('', () => done());
    });
  }

  /** Closes the file (a reload moved the log elsewhere). No-op for `-`. */
  close(): void {
    if (this.stream !== process.stderr && this.stream !== this.std) (this.stream as WriteStream).end();
  }

  /** Reopen the file at the same path (after logrotate). No-op for `-`. */
  reopen(): void {
    if (this.isStd) return;
    const old = this.stream;
    this.failed = false;
    this.stream = this.open();
    if (old !== process.stderr && old !== this.std) (old as WriteStream).end();
  }
}
