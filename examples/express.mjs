// Express 5: the app is a Node request listener, so export it as it is.
// Serve it with `npx tsgunicorn examples/express.mjs`.
import express from 'express';

const app = express();

app.get('/', (req, res) => {
  res.type('text/plain').send('Hello from Express\n');
});

app.get('/json', (req, res) => {
  res.json({ framework: 'express', worker: process.pid });
});

export default app;
