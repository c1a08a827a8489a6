// `npm run bench:hot-path`: what a tsgunicorn worker adds to each request before the app runs
// (the request counter, Gunicorn's request limits, the strict HTTP/1.1 checks, the drain's
// connection tracking), with the default settings, around an app that does nothing. It calls
// the worker's real request handler on synthetic requests (a wrk-like GET on one of 50
// keep-alive connections) and subtracts the same loop without the handler. Prints the median
// over rounds in nanoseconds per request; CPU per request under wrk is in docs/performance.md.

import { IncomingMessage, ServerResponse, type RequestListener } from 'node:http';
import { Socket } from 'node:net';
import { resolveValues } from '../src/config/load-settings.js';
import { createLogger } from '../src/logging/logger.js';
import { createServers } from '../src/worker/http-server.js';

const REQUESTS = 200_000;
const ROUNDS = 15;
const CONNECTIONS = 50;

const settings = resolveValues([new Map([['app', 'app.mjs']])]);
const noop: RequestListener = () => { /* the app */ };
const { servers } = await createServers(1, { settings, app: noop, log: createLogger({ errorlog: '-', loglevel: 'critical' }), access: null, onRequest: () => { /* counted */ }, observe: null, proxyRejected: () => { /* none */ } });
const handler = servers[0]!.listeners('request')[0] as RequestListener;
const sockets = Array.from({ length: CONNECTIONS }, () => new Socket());

function requests(): [IncomingMessage, ServerResponse][] {
  return Array.from({ length: REQUESTS }, (_, i) => {
    const req = new IncomingMessage(sockets[i % CONNECTIONS]!);
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.method = 'GET';
    req.url = '/';
    req.rawHeaders = ['Host', '127.0.0.1:8000'];
    return [req, new ServerResponse(req)];
  });
}

/**
 * Nanoseconds for the loop over fresh requests, with or without the handler. Each response is
 * put on its connection first and taken off after, as Node's server does around the handler.
 */
function time(withHandler: boolean): number {
  const batch = requests();
  const t0 = process.hrtime.bigint();
  for (const [req, res] of batch) {
    res.assignSocket(req.socket);
    if (withHandler) handler(req, res);
    res.detachSocket(req.socket);
    res.emit('close');
  }
  return Number(process.hrtime.bigint() - t0);
}

const perRequest: number[] = [];
for (let round = 0; round < ROUNDS; round++) perRequest.push((time(true) - time(false)) / REQUESTS);
perRequest.sort((a, b) => a - b);
const median = perRequest[Math.floor(ROUNDS / 2)]!;
process.stdout.write(`tsgunicorn's request handler around a no-op app: ${median.toFixed(0)} ns per request `
  + `(median of ${ROUNDS} rounds of ${REQUESTS.toLocaleString('en')}; range ${perRequest[0]!.toFixed(0)}-${perRequest[ROUNDS - 1]!.toFixed(0)}), Node ${process.version}\n`);
