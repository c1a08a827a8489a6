// The deploy bench's app (bench/deploys.ts), for every Node contender: GET / answers at once, a
// POST is read whole before the answer, GET /slow answers after 2 s, GET /busy
// after 50 ms of CPU (bench/distribution.ts). X-Worker is the pid.
const worker = String(process.pid);

/**
 * Keeps the worker busy for `ms` of its own CPU time (not of the clock: workers that share a core
 * would get less), in one block: the event loop waits for it.
 */
function busy(ms) {
  const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
  const until = cpu() + ms * 1000;
  while (cpu() < until) { /* the CPU-heavy endpoint */ }
}

export default function deploy(req, res) {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => {
    const body = `ok ${n}\n`;
    const send = () => res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'X-Worker': worker }).end(body);
    if (req.url === '/slow') setTimeout(send, 2000);
    else if (req.url === '/busy') { busy(50); send(); }
    else send();
  });
}
