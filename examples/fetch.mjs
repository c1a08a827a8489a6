// A Web-standard handler (the shape Hono and others export): an object with fetch(request).
// Serve it with `npx tsgunicorn examples/fetch.mjs`.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    return Response.json({ path: url.pathname, worker: process.pid });
  },
};
