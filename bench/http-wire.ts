// The deploy bench's HTTP/1.1 client connection: requests written as bytes and responses parsed
// by hand, off a plain net.Socket. Node's own client (http.request with an Agent) costs the load
// several times the CPU per request and per new connection; with it the load process was the
// saturated one (its CPU busy all the time, the servers' core 40 % idle), so the latencies it
// measured were mostly its own, and worst when a deploy made it reconnect 1,000 sockets at once.
// It reads what the bench's servers send: a status line, headers, then a body of Content-Length
// bytes, chunked, or up to the close.

import { connect, type Socket } from 'node:net';

/** How a request ended on the wire. */
export type WireError = 'refused' | 'reset' | 'timeout' | 'other';

export interface Answer {
  readonly status: number;
  /** The X-Worker header (the pid that answered), or ''. */
  readonly worker: string;
}

const HEAD_END = Buffer.from('\r\n\r\n');

interface Head {
  readonly status: number;
  readonly worker: string;
  /** Body framing: its length, 'chunked', or 'close' (read to the end). */
  readonly body: number | 'chunked' | 'close';
  /** The server closes the connection after this response. */
  readonly close: boolean;
  readonly size: number;
}

function parseHead(buf: Buffer, end: number): Head {
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const status = Number(lines[0]!.slice(9, 12));
  const http10 = lines[0]!.startsWith('HTTP/1.0');
  let length: number | null = null;
  let chunked = false;
  let connection = '';
  let worker = '';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') length = Number(value);
    else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked');
    else if (name === 'connection') connection = value.toLowerCase();
    else if (name === 'x-worker') worker = value;
  }
  const bodyless = status === 204 || status === 304 || (status >= 100 && status < 200);
  const body = bodyless ? 0 : chunked ? 'chunked' : length ?? 'close';
  const close = connection.includes('close') || (http10 && !connection.includes('keep-alive')) || body === 'close';
  return { status, worker, body, close, size: end + HEAD_END.length };
}

/** The length of a complete chunked body at the start of `buf`, -1 while it is incomplete, or null when it is not chunked at all. */
function chunkedLength(buf: Buffer): number | null {
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return -1;
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (Number.isNaN(size)) return null;
    if (size === 0) {
      const end = buf.indexOf(HEAD_END, eol);
      if (end === eol) return eol + 4; // no trailers
      return end < 0 ? -1 : end + 4;
    }
    at = eol + 2 + size + 2;
    if (at > buf.length) return -1;
  }
}

/**
 * One connection, one request at a time. request() resolves with the answer, or rejects with how
 * it failed; a connection that failed, or that the server said it closes, is not used again.
 */
export class WireConnection {
  private readonly socket: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private head: Head | null = null;
  private waiting: { resolve: (a: Answer) => void; reject: (e: WireError) => void; timer: NodeJS.Timeout } | null = null;
  private error: WireError | null = null;
  /** A response has come on it: the next request goes on a reused connection. */
  used = false;
  /** It takes no more requests. */
  done = false;

  constructor(host: string, port: number) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (b: Buffer) => this.read(b));
    this.socket.on('error', (e: NodeJS.ErrnoException) => {
      this.error ??= e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'other';
    });
    this.socket.on('end', () => this.ended());
    this.socket.on('close', () => this.ended());
  }

  request(bytes: Buffer, timeoutMs: number): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail('timeout'), timeoutMs);
      this.waiting = { resolve, reject, timer };
      if (this.done) this.fail(this.error ?? 'reset');
      else this.socket.write(bytes);
    });
  }

  close(): void {
    this.done = true;
    this.socket.destroy();
  }

  private read(b: Buffer): void {
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    if (this.head === null) {
      const end = this.buf.indexOf(HEAD_END);
      if (end < 0) return;
      this.head = parseHead(this.buf, end);
    }
    const body = this.buf.subarray(this.head.size);
    const len = this.head.body === 'chunked' ? chunkedLength(body) : this.head.body === 'close' ? -1 : body.length >= this.head.body ? this.head.body : -1;
    if (len === null) this.fail('other');
    else if (len >= 0) this.complete(len);
  }

  private complete(bodyLength: number): void {
    const head = this.head!;
    this.buf = this.buf.subarray(head.size + bodyLength);
    this.head = null;
    this.used = true;
    if (head.close) {
      this.done = true;
      this.socket.end();
    }
    this.settle()?.resolve({ status: head.status, worker: head.worker });
  }

  private ended(): void {
    // A body read up to the close is whole only if the connection closed cleanly.
    if (this.head?.body === 'close' && this.error === null) {
      this.complete(this.buf.length - this.head.size);
      return;
    }
    this.fail(this.error ?? 'reset');
  }

  private fail(e: WireError): void {
    this.done = true;
    this.socket.destroy();
    this.settle()?.reject(e);
  }

  /** The request waiting for an answer, if any, no longer waiting. */
  private settle(): { resolve: (a: Answer) => void; reject: (e: WireError) => void } | null {
    const w = this.waiting;
    this.waiting = null;
    if (w) clearTimeout(w.timer);
    return w;
  }
}
