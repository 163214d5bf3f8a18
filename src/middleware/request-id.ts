// Request id: each request gets an id, the one the front end or the client sent in X-Request-Id
// when it looks like one, else a fresh UUID. The app finds it in environ['tsgi.request_id'] (and
// HTTP_X_REQUEST_ID), and the response carries it back, so one id ties together the web
// server's log, the app's log lines and what the client saw.

import { randomUUID } from 'node:crypto';
import type { App, StartResponse } from '../types.js';
import { withoutHeader } from './util.js';

export interface RequestIdOptions {
  /** Header to read and to send. Default 'X-Request-Id'. */
  header?: string;
  /** Take the incoming id when it is well-formed (default true); false always makes a new one. */
  trustIncoming?: boolean;
  /** Makes a new id. Default crypto.randomUUID. */
  generate?: () => string;
}

/** What an incoming id may look like: visible ASCII without separators that could split a log line. */
const WELL_FORMED = /^[A-Za-z0-9._~:@/+=-]{1,200}$/;

export function requestId(app: App, options: RequestIdOptions = {}): App {
  const header = options.header ?? 'X-Request-Id';
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header)) throw new TypeError(`requestId: '${header}' is not a header name`);
  const key = `HTTP_${header.toUpperCase().replace(/-/g, '_')}`;
  const trust = options.trustIncoming ?? true;
  const generate = options.generate ?? randomUUID;
  return function requestIdApp(environ, startResponse) {
    const incoming = environ[key] as string | undefined;
    const id = trust && incoming !== undefined && WELL_FORMED.test(incoming) ? incoming : generate();
    environ['tsgi.request_id'] = id;
    environ[key] = id;
    const sr: StartResponse = (status, headers, excInfo) =>
      startResponse(status, [...withoutHeader(headers, header), [header, id]], excInfo);
    return app(environ, sr);
  };
}
