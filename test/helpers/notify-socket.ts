// Plays systemd's side of sd_notify(3): a unix datagram socket at NOTIFY_SOCKET that records every
// datagram with the pid of the process that sent it. The kernel attaches the sender's credentials
// (SCM_CREDENTIALS) only to a receiver with SO_PASSCRED, which Node's sockets cannot set, so the
// receiving end is a few lines of Python's standard socket module, as systemd itself does it in C.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { tempDir, waitUntil } from './daemon.js';

const RECEIVER = `
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", raw[:12])[0]
    print(json.dumps({"pid": pid, "data": data.decode("utf-8", "replace")}), flush=True)
`;

export interface Datagram {
  readonly pid: number;
  readonly data: string;
  /** Milliseconds since the socket was opened. */
  readonly at: number;
  /** Each `KEY=VALUE` line. */
  readonly fields: Record<string, string>;
}

export class NotifySocket {
  readonly path: string;
  readonly messages: Datagram[] = [];
  private readonly proc: ChildProcess;
  private readonly opened = Date.now();
  private readonly bound: Promise<void>;

  constructor() {
    this.path = join(tempDir(), 'notify.sock');
    this.proc = spawn('python3', ['-c', RECEIVER, this.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let onBound: () => void;
    this.bound = new Promise((r) => { onBound = r; });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as { bound?: boolean; pid: number; data: string };
      if (m.bound) { onBound(); return; }
      const fields: Record<string, string> = {};
      for (const l of m.data.split('\n')) {
        const eq = l.indexOf('=');
        if (eq > 0) fields[l.slice(0, eq)] = l.slice(eq + 1);
      }
      this.messages.push({ pid: m.pid, data: m.data, at: Date.now() - this.opened, fields });
    });
  }

  ready(): Promise<void> {
    return this.bound;
  }

  /** Messages that have field `key` (with `value`, if given). */
  with(key: string, value?: string): Datagram[] {
    return this.messages.filter((m) => key in m.fields && (value === undefined || m.fields[key] === value));
  }

  async waitFor(key: string, value?: string, after = 0, timeoutMs = 15000): Promise<Datagram> {
    await waitUntil(`notify ${key}${value ? `=${value}` : ''} (got ${JSON.stringify(this.messages.map((m) => m.data))})`,
      () => this.with(key, value).some((m) => m.at >= after), timeoutMs);
    return this.with(key, value).find((m) => m.at >= after)!;
  }

  now(): number {
    return Date.now() - this.opened;
  }

  close(): void {
    this.proc.kill('SIGKILL');
  }
}
