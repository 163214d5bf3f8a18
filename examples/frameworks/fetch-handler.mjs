// A bare Fetch handler module (the Workers, Bun and Deno shape): an object with fetch().
//   bin/tsgi serve examples/frameworks/fetch-handler.mjs
export default {
  async fetch(request, env, ctx) {
    // env is the environ; ctx.waitUntil() work runs after the response is sent.
    ctx.waitUntil(Promise.resolve().then(() => env['wsgi.errors'].write(`served ${request.url}\n`)));
    return new Response(`Hello from a Fetch handler, ${new URL(request.url).pathname}\n`);
  },
};
