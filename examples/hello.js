// The smallest app: a Node request listener. Serve it with `npx tsgunicorn examples/hello.js`.
export default function hello(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(`Hello from tsgunicorn worker ${process.pid}\n`);
}
