// The hello-world app every contender serves: a plain Node request listener. X-Worker (the pid)
// lets the bench count the requests each worker served.
const worker = String(process.pid);
const body = 'Hello, World!\n';

export default function hello(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'X-Worker': worker });
  res.end(body);
}
