// WebSockets with the `ws` package: tsgunicorn hands each worker's http.Server to the module's
// onServer(server) export before it listens; the app answers HTTP upgrades on it.
// Serve it with `npx tsgunicorn examples/websocket.mjs`, then e.g. `npx wscat -c ws://127.0.0.1:8000/echo`.
//
// When the worker stops (HUP, TERM, TTOU, max_requests), the server emits 'tsgunicorn:drain':
// here every client is told, so it can reconnect (to a new worker) when it suits it. Sockets still
// open after graceful_timeout are closed by tsgunicorn with code 1001 (going away).
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ noServer: true });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

export default function app(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Worker': String(process.pid) });
  res.end(`plain HTTP from worker ${process.pid}\n`);
}

export function onServer(server) {
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url, 'http://localhost').pathname !== '/echo') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  server.on('tsgunicorn:drain', () => {
    for (const ws of wss.clients) ws.send(JSON.stringify({ event: 'draining' }));
  });
}
