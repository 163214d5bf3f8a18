// Timing header: how long the app took to answer, from the request reaching this middleware to
// the app calling startResponse, as Server-Timing (shown by browsers' developer tools) or as
// X-Response-Time. The headers go out before the body, so time spent streaming the body is not
// in it (the access log, --access-log, has the whole duration).

import type { App, StartResponse } from '../types.js';

export interface TimingOptions {
  /** 'server-timing' (default): `Server-Timing: app;dur=12.3`; 'x-response-time': `X-Response-Time: 12.3ms`. */
  header?: 'server-timing' | 'x-response-time';
  /** The metric name in Server-Timing. Default 'app'. */
  metric?: string;
  /** Decimal places. Default 1. */
  digits?: number;
}

export function timing(app: App, options: TimingOptions = {}): App {
  const kind = options.header ?? 'server-timing';
  if (kind !== 'server-timing' && kind !== 'x-response-time') throw new TypeError(`timing: header must be 'server-timing' or 'x-response-time', got '${String(kind)}'`);
  const metric = options.metric ?? 'app';
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(metric)) throw new TypeError(`timing: metric '${metric}' is not a token`);
  const digits = options.digits ?? 1;
  return function timingApp(environ, startResponse) {
    const t0 = performance.now();
    const sr: StartResponse = (status, headers, excInfo) => {
      const ms = (performance.now() - t0).toFixed(digits);
      const extra: [string, string] = kind === 'server-timing' ? ['Server-Timing', `${metric};dur=${ms}`] : ['X-Response-Time', `${ms}ms`];
      return startResponse(status, [...headers, extra], excInfo);
    };
    return app(environ, sr);
  };
}
