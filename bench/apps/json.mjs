// The JSON app every contender serves: builds a small document per request (about 700 bytes) and
// serializes it, like an API endpoint reading a few rows. X-Worker is the pid, as in hello.mjs.
const worker = String(process.pid);
let served = 0;

export default function json(req, res) {
  served++;
  const items = [];
  for (let i = 0; i < 10; i++) items.push({ id: served * 10 + i, name: `item ${i}`, price: i * 1.25, tags: ['bench', i % 2 === 0 ? 'even' : 'odd'] });
  const body = JSON.stringify({ message: 'Hello, World!', path: req.url, served, items });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Worker': worker });
  res.end(body);
}
