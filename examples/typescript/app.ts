// A TypeScript app, run without a build step by a loader in the workers:
//   npm install --save-dev tsx
//   npx tsgunicorn --node-options=--import=tsx examples/typescript/app.ts
// Add `--node-options=--enable-source-maps` for TypeScript line numbers in error stacks (tsx
// already maps them). Type-check it with `npx tsc -p examples/typescript`.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

interface Greeting {
  readonly language: 'typescript';
  readonly worker: number;
  readonly path: string;
}

type Route = (req: IncomingMessage, res: ServerResponse) => void;

function greeting(path: string): Greeting {
  return { language: 'typescript', worker: process.pid, path };
}

function explode(): never {
  throw new Error('thrown from app.ts');
}

const routes: Record<string, Route> = {
  '/': (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('Hello from TypeScript\n');
  },
  '/json': (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(greeting(req.url ?? '/')));
  },
  '/throw': () => explode(),
};

const app: RequestListener = (req, res) => {
  const route = routes[new URL(req.url ?? '/', 'http://localhost').pathname];
  if (route) {
    route(req, res);
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('Not Found\n');
};

export default app;
