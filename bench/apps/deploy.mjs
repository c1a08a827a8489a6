// The deploy bench's app (bench/deploys.ts), for every Node contender: GET / answers at once, a
// POST is read whole before the answer, GET /slow answers after 2 s, GET /busy
// after 50 ms of CPU (bench/distribution.ts). X-Worker is the pid.
const worker = String(process.pid);

export default function deploy(req, res) {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => {
    const body = `ok ${n}\n`;
    const send = () => res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'X-Worker': worker }).end(body);
    if (req.url === '/slow') setTimeout(send, 2000);
    else if (req.url === '/busy') { const until = Date.now() + 50; while (Date.now() < until) { /* the CPU-heavy endpoint */ } send(); }
    else send();
  });
}
