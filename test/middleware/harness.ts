// Runs a middleware-wrapped app through the real runner with the validator on both sides of it
// (validator(middleware(validator(app)))): a middleware that breaks a PEP 3333 rule towards the
// server or towards the app it wraps fails the request with a "lint:" error, which `call`
// reports as a test failure unless the test expects an error.

import { Buffer } from 'node:buffer';
import { expect } from 'vitest';
import { validator } from '../../src/runner/validate.js';
import type { App, HeaderList } from '../../src/types.js';
import { makeRequest, type MakeRequestOptions, type TestRequest } from '../helpers/recording-sink.js';

export interface Reply {
  status: number;
  statusLine: string;
  headers: HeaderList;
  header(name: string): string | undefined;
  headerAll(name: string): string[];
  body: Buffer;
  text: string;
  outcome: string;
  req: TestRequest;
}

export interface CallOptions extends MakeRequestOptions {
  /** Leave out the outer validator (for apps that break rules on purpose). */
  noLint?: boolean;
  /** The run may end in 'error' (an app error answered or aborted). */
  allowError?: boolean;
}

/** One request through validator(app): `vars` are CGI variables over the GET / defaults. */
export async function call(app: App, vars: Record<string, string> = {}, body?: string | Uint8Array | Array<string | Uint8Array>, o: CallOptions = {}): Promise<Reply> {
  const req = makeRequest(vars, body, o);
  const result = await req.run(o.noLint ? app : validator(app, req.log));
  const lint = req.logs.filter((l) => JSON.stringify(l).includes('lint:'));
  if (!o.allowError) {
    expect(lint, 'lint errors').toEqual([]);
    expect(result.outcome, JSON.stringify(req.logs.filter((l) => l.level >= 50))).toBe('ok');
  }
  const starts = req.sink.calls.filter((c) => c.kind === 'start');
  const head = starts[0] as Extract<(typeof req.sink.calls)[number], { kind: 'start' }> | undefined;
  const headers = head?.headers ?? [];
  const all = (name: string) => headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  const bytes = Buffer.from(req.sink.collect());
  return {
    status: head ? Number(head.status.slice(0, 3)) : 0,
    statusLine: head?.status ?? '',
    headers,
    header: (n) => all(n)[0],
    headerAll: all,
    body: bytes,
    text: bytes.toString('utf8'),
    outcome: result.outcome,
    req,
  };
}

/** An app that answers `text` with `headers` (Content-Type text/plain unless given). */
export function textApp(text: string | Buffer, headers: HeaderList = [], status = '200 OK'): App {
  return (_e, sr) => {
    const h: HeaderList = headers.some(([n]) => n.toLowerCase() === 'content-type') ? headers : [['Content-Type', 'text/plain; charset=utf-8'], ...headers];
    sr(status, h);
    return [text];
  };
}

/** Wraps `inner` in the validator too, so the middleware's side towards the app is checked. */
export const linted = (inner: App): App => validator(inner);
