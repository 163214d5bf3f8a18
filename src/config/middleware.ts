// The middleware a tsgi.toml [[pipeline]] can name (`use = "..."`): for each, the options it
// takes (kebab-case keys, checked with their lines) and how to make it. A `use` that is a path
// to a module (`./mw.mjs`, `./mw.mjs:name`) names middleware of your own: a function
// (app, options) => app, given the other keys of its table in camelCase.

import path from 'node:path';
import { loadModule, parseAppSpec } from '../load-app.js';
import { basicAuth } from '../middleware/basic-auth.js';
import { compression } from '../middleware/compression.js';
import { errorCatcher } from '../middleware/error-catcher.js';
import { proxyFix } from '../middleware/proxy-fix.js';
import { requestId } from '../middleware/request-id.js';
import { staticFiles, type StaticFilesOptions } from '../middleware/static-files.js';
import { timing } from '../middleware/timing.js';
import { validator } from '../runner/validate.js';
import type { App, Environ } from '../types.js';
import { ConfigError } from './errors.js';
import { arrayOf, boolean, camel, checkTable, type Check, type Ctx, fail, type Field, filePath, integer, isTable, keyName, oneOf, string, suggest, tableOf } from './schema.js';
import type { KeyPath } from './locate.js';

export type Middleware = (app: App) => App;

export interface MiddlewareSpec {
  /** One line for `tsgi serve --help`-style listings and the docs. */
  summary: string;
  fields: Record<string, Field>;
  /** Checks across options (exactly one of ...). */
  check?(options: Record<string, unknown>, at: KeyPath, ctx: Ctx): void;
  make(options: Record<string, unknown>, stage: StageInfo): Middleware | Promise<Middleware>;
}

/** Where a stage was written, for errors found when it is built. */
export interface StageInfo {
  file: string;
  line: number | undefined;
}

/** Options given in kebab-case in the file, camelCase in code. */
function fields(spec: Record<string, Check | [Check, { required?: boolean }]>): Record<string, Field> {
  const out: Record<string, Field> = {};
  for (const [k, v] of Object.entries(spec)) {
    const [check, extra] = Array.isArray(v) ? v : [v, {}];
    out[k] = { check, to: camel(k), ...extra };
  }
  return out;
}

/** A module spec (`file.mjs` or `file.mjs:name`), resolved against the config's directory. */
export const moduleSpec: Check<string> = (v, at, ctx) => {
  const s = parseAppSpec(string(v, at, ctx));
  const file = filePath('file')(s.file, at, ctx);
  return s.exportName === 'default' ? file : `${file}:${s.exportName}`;
};

async function loadFunction(spec: string, stage: StageInfo, what: string): Promise<(...args: never[]) => unknown> {
  let value: unknown;
  try {
    ({ value } = await loadModule(spec));
  } catch (err) {
    throw new ConfigError(stage.file, stage.line, (err as Error).message);
  }
  if (typeof value !== 'function') throw new ConfigError(stage.file, stage.line, `${what} ${spec} is not a function (got ${value === null ? 'null' : typeof value})`);
  return value as (...args: never[]) => unknown;
}

export const MIDDLEWARE: Record<string, MiddlewareSpec> = {
  errors: {
    summary: 'catch app errors: a 500 (a debug page with debug = true), logged through wsgi.errors',
    fields: fields({ debug: boolean }),
    make: (o) => (app) => errorCatcher(app, o),
  },
  compression: {
    summary: 'gzip and brotli, negotiated on Accept-Encoding',
    fields: fields({
      encodings: arrayOf(oneOf(['br', 'gzip'] as const)),
      'min-size': integer(0),
      'gzip-level': integer(1, 9),
      'brotli-quality': integer(0, 11),
      types: arrayOf(string),
      flush: oneOf(['auto', 'always', 'never'] as const),
    }),
    make: (o) => (app) => compression(app, o),
  },
  'basic-auth': {
    summary: 'HTTP Basic authentication against an htpasswd file, a users table or a check function',
    fields: fields({ realm: string, htpasswd: filePath('file'), users: tableOf(string), check: moduleSpec }),
    check(o, at, ctx) {
      const n = ['htpasswd', 'users', 'check'].filter((k) => o[k] !== undefined).length;
      if (n !== 1) fail(ctx, at, `${keyName(at)} (basic-auth) needs exactly one of htpasswd, users or check`);
    },
    async make(o, stage) {
      const opts = { ...o } as Parameters<typeof basicAuth>[1] & { check?: unknown };
      if (typeof o.check === 'string') opts.check = (await loadFunction(o.check, stage, 'check')) as (u: string, p: string, e: Environ) => boolean;
      return (app) => basicAuth(app, opts);
    },
  },
  'proxy-fix': {
    summary: 'trust X-Forwarded-* / Forwarded from your proxies and rewrite the environ',
    fields: fields({
      trusted: arrayOf(string),
      'x-for': integer(0),
      'x-proto': integer(0),
      'x-host': integer(0),
      'x-port': integer(0),
      'x-prefix': integer(0),
      forwarded: integer(0),
    }),
    check(o, at, ctx) {
      for (const [i, t] of ((o.trusted as string[] | undefined) ?? []).entries()) {
        const [addr, bits] = t.split('/');
        const ok = /^[0-9.]+$|:/.test(addr ?? '') && (bits === undefined || /^[0-9]{1,3}$/.test(bits));
        if (!ok) fail(ctx, [...at, 'trusted', i], `${keyName([...at, 'trusted', i])}: '${t}' is not an IP address or CIDR block`);
      }
    },
    make: (o) => (app) => proxyFix(app, o),
  },
  static: {
    summary: 'serve files from a directory (ETag, Range, HEAD), the rest goes on to the app',
    fields: fields({
      root: [filePath('dir'), { required: true }],
      index: (v, at, ctx) => (v === false ? false : arrayOf(string)(v, at, ctx)),
      dotfiles: oneOf(['ignore', 'allow'] as const),
      'max-age': integer(0),
      immutable: boolean,
      'mime-types': tableOf(string),
      redirect: boolean,
    }),
    make: (o) => (app) => staticFiles(app, o as unknown as StaticFilesOptions),
  },
  'request-id': {
    summary: 'X-Request-Id in and out (made when absent), in environ["tsgi.request_id"]',
    fields: fields({ header: string, 'trust-incoming': boolean }),
    make: (o) => (app) => requestId(app, o),
  },
  timing: {
    summary: 'Server-Timing or X-Response-Time: the time until the app answered',
    fields: fields({ header: oneOf(['server-timing', 'x-response-time'] as const), metric: string, digits: integer(0, 6) }),
    make: (o) => (app) => timing(app, o),
  },
  lint: {
    summary: 'the validator: checks both sides of the TSGI interface at this point of the pipeline',
    fields: {},
    make: () => (app) => validator(app),
  },
};

/** A checked [[pipeline]] entry, ready to be made. */
export interface Stage {
  use: string;
  options: Record<string, unknown>;
  at: KeyPath;
  /** For `use` naming a module: its resolved spec. */
  module?: string;
}

const isModuleUse = (use: string): boolean => use.includes('/') || /\.[mc]?[jt]s(?::|$)/.test(use);

export const checkStage: Check<Stage> = (v, at, ctx) => {
  if (!isTable(v)) return fail(ctx, at, `${keyName(at)} must be a table such as { use = "compression" }`);
  const use = v.use;
  if (use === undefined) fail(ctx, at, `${keyName(at)} needs 'use' (one of ${Object.keys(MIDDLEWARE).join(', ')}, or a module path)`);
  if (typeof use !== 'string') fail(ctx, [...at, 'use'], `${keyName([...at, 'use'])} must be a string`);
  const rest = Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'use'));
  if (isModuleUse(use)) {
    const module = moduleSpec(use, [...at, 'use'], ctx);
    return { use, module, at, options: Object.fromEntries(Object.entries(rest).map(([k, x]) => [camel(k), x])) };
  }
  const spec = MIDDLEWARE[use];
  if (!spec) fail(ctx, [...at, 'use'], `unknown middleware '${use}'${suggest(use, Object.keys(MIDDLEWARE))} (known: ${Object.keys(MIDDLEWARE).join(', ')}; or a module path such as ./my-middleware.mjs)`);
  const options = checkTable(rest, at, ctx, spec.fields, `${keyName(at)} (${use})`);
  spec.check?.(options, at, ctx);
  return { use, options, at };
};

/** Makes the middleware of a checked stage (imports modules now). */
export async function makeStage(stage: Stage, ctx: Ctx): Promise<Middleware> {
  const info: StageInfo = { file: ctx.file, line: ctx.locator.line(stage.at) };
  if (stage.module) {
    const factory = (await loadFunction(stage.module, info, 'middleware')) as unknown as (app: App, options: Record<string, unknown>) => App;
    return (app) => {
      const out = factory(app, stage.options);
      if (typeof out !== 'function') throw new ConfigError(info.file, info.line, `middleware ${path.basename(stage.module!)} did not return an app (a function)`);
      return out;
    };
  }
  try {
    return await MIDDLEWARE[stage.use]!.make(stage.options, info);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(info.file, info.line, `${stage.use}: ${(err as Error).message}`);
  }
}
