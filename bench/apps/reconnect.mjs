// bench:deploys' baseline (bench/deployers.ts, "reconnect"): the deploy app, and on SIGWINCH every
// keep-alive connection open then is closed once, after its next response (`Connection: close`),
// as a drain closes them, with no process replaced: what the clients' reconnections alone cost.
import deploy from './deploy.mjs';

let generation = 0;
process.on('SIGWINCH', () => { generation++; });
/** The generation each connection was first seen in. */
const seen = new WeakMap();

export default function reconnect(req, res) {
  const g = seen.get(req.socket);
  if (g === undefined) seen.set(req.socket, generation);
  else if (g < generation) res.setHeader('Connection', 'close');
  deploy(req, res);
}
