// A keep-alive load (./load.ts) as its own process, so that it can run inside another network
// namespace (a container's: `nsenter --net=/proc/PID/ns/net node netns-load.js URL N [FRESH]`),
// with FRESH loops of one request per new connection beside the N keep-alive connections.
// Prints `served N` about every 100 ms on stdout; on SIGTERM or SIGINT it stops the load and
// prints one last line, `result {json}` (ok, failed, errors, workers seen).

import { Load } from './load.js';

const [url, connections = '20', fresh = '0'] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: netns-load.js URL [CONNECTIONS [FRESH]]\n');
  process.exit(2);
}

const load = new Load(url, Number(connections), { fresh: Number(fresh) });
const ticker = setInterval(() => process.stdout.write(`served ${load.served}\n`), 100);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  const r = await load.stop();
  process.stdout.write(`result ${JSON.stringify({ ok: r.ok, failed: r.failed, errors: r.errors, workers: [...r.workers] })}\n`);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
