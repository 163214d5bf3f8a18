// tsgi/middleware: each one a plain TSGI app wrapping another (PEP 3333's middleware), usable
// with any app and composable in code or from tsgi.toml (docs/middleware.md).

import type { App } from '../types.js';

export { errorCatcher, debugPage, type ErrorCatcherOptions } from './error-catcher.js';
export { compression, negotiateEncoding, typeMatcher, DEFAULT_COMPRESSIBLE, type Coding, type CompressionOptions } from './compression.js';
export { urlMap, parseMountKey, type Mount, type MountTable, type UrlMapOptions } from './url-map.js';
export { basicAuth, parseBasicAuth, challenge, type BasicAuthOptions, type BasicCredentials } from './basic-auth.js';
export { Htpasswd, parseHtpasswd, verifyPassword, hashScheme, safeEqual, type HashScheme } from './htpasswd.js';
export { proxyFix, parseForwarded, trustList, type ProxyFixOptions, type ProxyFixOrig } from './proxy-fix.js';
export { staticFiles, parseRange, safeSegments, MIME_TYPES, type StaticFilesOptions } from './static-files.js';
export { requestId, type RequestIdOptions } from './request-id.js';
export { timing, type TimingOptions } from './timing.js';
export { validator, checkEnviron } from './validator.js';

/** A middleware: an app in, an app out. */
export type Middleware = (app: App) => App;

/**
 * `compose(app, a, b, c)` is `a(b(c(app)))`: the first middleware listed is the outermost,
 * the one a request meets first (the order of tsgi.toml's [[pipeline]]).
 */
export function compose(app: App, ...middleware: Middleware[]): App {
  return middleware.reduceRight((inner, mw) => mw(inner), app);
}
