// What dist/cgi.cjs exports (scripts/build-cgi.mjs bundles from here): `tsgi/cgi` (the CGI
// adapter's exports, for require() and, through dist/cgi.mjs, import()), and the short path of
// `bin/tsgi cgi APP`.

export * from './adapter.js';
export { runCgiCommand } from './entry.js';
