// A JS config file with server hooks (docs/hooks.md):
//   npx tsgunicorn -c examples/hooks.config.mjs examples/hello.js
// Settings are named exports (or one default-exported object); hooks are functions with
// Gunicorn's names. Master hooks get `server` ({ pid, settings, log, workers }); worker hooks run
// inside the worker and get `worker` ({ pid, ppid, age, log, settings }). A hook may be async
// (it is awaited); one that throws is logged and the server goes on.

export const workers = 2;
export const graceful_timeout = 10;

// ---- in the master -------------------------------------------------------------------------

export function on_starting(server) {
  server.log.info(`hook on_starting: master ${server.pid}, ${server.workers} workers wanted`);
}

export function when_ready(server) {
  server.log.info(`hook when_ready: serving with ${server.workers} workers on ${server.settings.bind.join(', ')}`);
}

export function pre_fork(server, worker) {
  server.log.info(`hook pre_fork: starting worker #${worker.age}`);
}

export function child_exit(server, worker) {
  server.log.info(`hook child_exit: worker ${worker.pid} (#${worker.age}) exited`);
}

export function nworkers_changed(server, now, before) {
  server.log.info(`hook nworkers_changed: ${before} -> ${now}`);
}

export function on_reload(server) {
  server.log.info(`hook on_reload: master ${server.pid} reloads`);
}

export function on_exit(server) {
  server.log.info(`hook on_exit: master ${server.pid} stops`);
}

// ---- in each worker ------------------------------------------------------------------------

export function post_fork(server, worker) {
  worker.log.info(`hook post_fork: worker ${worker.pid} (#${worker.age}) of master ${server.pid}`);
}

export async function post_worker_init(worker) {
  // The app is loaded and the worker is about to report ready: warm caches, open pools, ...
  await new Promise((resolve) => setTimeout(resolve, 10));
  worker.log.info(`hook post_worker_init: worker ${worker.pid} loaded the app`);
}

export function worker_exit(server, worker) {
  worker.log.info(`hook worker_exit: worker ${worker.pid} exits`);
}
