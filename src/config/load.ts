// tsgi.toml: read, parse (smol-toml) and check the file, then build the app it describes: the
// app or the mounted apps (a URL map), each wrapped in its pipeline, the whole in the top-level
// pipeline. Relative paths in the file are relative to the file's directory.

import fs from 'node:fs';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { UsageError } from '../errors.js';
import { loadApp } from '../load-app.js';
import { respond } from '../middleware/util.js';
import { urlMap, type Mount } from '../middleware/url-map.js';
import { parseBind } from '../net/listen.js';
import { PROTOCOLS } from '../net/protocols.js';
import type { App } from '../types.js';
import { ConfigError } from './errors.js';
import { KeyLocator, type KeyPath } from './locate.js';
import { checkStage, makeStage, moduleSpec, type Stage } from './middleware.js';
import { arrayOf, boolean, type Check, checkTable, type Ctx, fail, type Field, integer, keyName, oneOf, seconds, size, string } from './schema.js';

/** A checked [[mount]]. */
export interface MountConfig {
  path: string;
  host?: string;
  scheme?: 'http' | 'https';
  /** Resolved module spec; absent when the pipeline alone answers (static files). */
  app?: string;
  pipeline: Stage[];
  at: KeyPath;
}

/** A checked tsgi.toml. */
export interface TsgiConfig {
  /** The file as named (for messages). */
  file: string;
  /** Its absolute path. */
  path: string;
  app?: string;
  pipeline: Stage[];
  mounts: MountConfig[];
  /**
   * Server settings as `tsgi serve` flags would give them: ServeOptions property names
   * (commander's camelCase attribute names), string values as on a command line.
   */
  serve: Record<string, string | boolean>;
  ctx: Ctx;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const asString = <T>(c: Check<T>): Check<string> => (v, at, ctx) => String(c(v, at, ctx));

const workers: Check<string> = (v, at, ctx) => (v === 'auto' ? 'auto' : String(integer(1)(v, at, ctx)));

// TOML writes octal integers as 0o660; a string "660" works too.
const socketMode: Check<string> = (v, at, ctx) => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0o777) return v.toString(8);
  if (typeof v === 'string' && /^0?[0-7]{3}$/.test(v)) return v;
  return fail(ctx, at, `socket-mode must be an octal mode such as 0o660 or "660", got ${JSON.stringify(v)}`);
};

const bind: Check<string> = (v, at, ctx) => {
  const s = string(v, at, ctx);
  try {
    parseBind(s);
  } catch (err) {
    fail(ctx, at, `bind: ${(err as Error).message}`);
  }
  return s;
};

const regex: Check<string> = (v, at, ctx) => {
  const s = string(v, at, ctx);
  try {
    new RegExp(s);
  } catch (err) {
    fail(ctx, at, `${keyName(at)} is not a valid regular expression: ${(err as Error).message}`);
  }
  return s;
};

/** Top-level server keys: TOML key -> the ServeOptions property it sets. */
const SERVER: Record<string, Field> = {
  protocol: { check: oneOf(Object.keys(PROTOCOLS)), to: 'protocol' },
  bind: { check: bind, to: 'bind' },
  workers: { check: workers, to: 'workers' },
  'socket-mode': { check: socketMode, to: 'socketMode' },
  'graceful-timeout': { check: asString(seconds), to: 'gracefulTimeout' },
  lint: { check: boolean, to: 'lint' },
  debug: { check: boolean, to: 'debug' },
  'access-log': { check: boolean, to: 'accessLog' },
  'log-level': { check: oneOf(LOG_LEVELS), to: 'logLevel' },
};

const LIMITS: Record<string, Field> = {
  'max-header-size': { check: size, to: 'maxHeaderSize' },
  'max-body-size': { check: size, to: 'maxBodySize' },
  'max-requests-per-conn': { check: asString(integer(1)), to: 'maxRequestsPerConn' },
  'max-connections': { check: asString(integer(1)), to: 'maxConnections' },
  'idle-timeout': { check: asString(seconds), to: 'idleTimeout' },
  'header-timeout': { check: asString(seconds), to: 'headerTimeout' },
};

const AJP: Record<string, Field> = {
  secret: { check: string, to: 'ajpSecret' },
  'packet-size': { check: asString(integer(1024, 65536)), to: 'ajpPacketSize' },
  'allowed-attributes': { check: regex, to: 'ajpAllowedAttributes' },
  'allow-shutdown': { check: boolean, to: 'ajpAllowShutdown' },
};

const FASTCGI: Record<string, Field> = {
  stderr: { check: boolean, to: 'fcgiStderr' },
};

const mountPath: Check<string> = (v, at, ctx) => {
  const s = string(v, at, ctx);
  if (!s.startsWith('/')) fail(ctx, at, `mount path ${JSON.stringify(s)} must start with /`);
  return s;
};

const checkMount: Check<MountConfig> = (v, at, ctx) => {
  const m = checkTable(
    v,
    at,
    ctx,
    {
      path: { check: mountPath },
      host: { check: string },
      scheme: { check: oneOf(['http', 'https'] as const) },
      app: { check: moduleSpec },
      pipeline: { check: arrayOf(checkStage) },
    },
    `${keyName(at)} ([[mount]])`,
  );
  const pipeline = (m.pipeline as Stage[] | undefined) ?? [];
  if (m.app === undefined && pipeline.length === 0) fail(ctx, at, `${keyName(at)} ([[mount]]) needs an app, or a pipeline that answers by itself (such as static)`);
  return { path: (m.path as string | undefined) ?? '/', host: m.host as string | undefined, scheme: m.scheme as MountConfig['scheme'], app: m.app as string | undefined, pipeline, at };
};

/** Parses and checks `text` as the content of `file`. */
export function parseConfig(text: string, file: string): TsgiConfig {
  const abs = path.resolve(file);
  const ctx: Ctx = { file, dir: path.dirname(abs), locator: new KeyLocator(text) };
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new ConfigError(file, err.line, `not valid TOML: ${first}`, err.column);
    }
    throw err;
  }
  const fields: Record<string, Field> = {
    app: { check: moduleSpec },
    ...SERVER,
    limits: { check: (v, at, c) => checkTable(v, at, c, LIMITS, '[limits]') },
    ajp: { check: (v, at, c) => checkTable(v, at, c, AJP, '[ajp]') },
    fastcgi: { check: (v, at, c) => checkTable(v, at, c, FASTCGI, '[fastcgi]') },
    pipeline: { check: arrayOf(checkStage) },
    mount: { check: arrayOf(checkMount) },
  };
  const top = checkTable(doc, [], ctx, fields, 'the top level');
  if (top.app !== undefined && top.mount !== undefined) fail(ctx, ['mount'], "give either 'app' or [[mount]] tables, not both (mount the app at path \"/\")");
  const serve: Record<string, string | boolean> = {};
  for (const k of Object.keys(SERVER)) {
    const to = SERVER[k]!.to!;
    if (top[to] !== undefined) serve[to] = top[to] as string | boolean;
  }
  for (const section of ['limits', 'ajp', 'fastcgi']) {
    const t = top[section] as Record<string, string | boolean> | undefined;
    if (t) Object.assign(serve, t);
  }
  return {
    file,
    path: abs,
    app: top.app as string | undefined,
    pipeline: (top.pipeline as Stage[] | undefined) ?? [],
    mounts: (top.mount as MountConfig[] | undefined) ?? [],
    serve,
    ctx,
  };
}

/** Reads and checks a tsgi.toml. */
export function loadConfig(file: string): TsgiConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError('TSGI_CONFIG', `cannot read config file ${file}: ${e.code === 'ENOENT' ? 'not found' : e.message}`);
  }
  return parseConfig(text, file);
}

const notFound: App = (_e, sr) => respond(sr, '404 Not Found', 'Not Found\n');

async function wrap(app: App, stages: Stage[], ctx: Ctx): Promise<App> {
  const made = [];
  for (const s of stages) made.push(await makeStage(s, ctx));
  // The first stage listed is the outermost: a request meets the stages top to bottom.
  return made.reduceRight<App>((inner, mw) => mw(inner), app);
}

async function loadAt(spec: string, at: KeyPath, ctx: Ctx): Promise<App> {
  try {
    return await loadApp(spec);
  } catch (err) {
    if (err instanceof UsageError) throw new ConfigError(ctx.file, ctx.locator.line(at), err.message);
    throw err;
  }
}

/**
 * The app the config describes, with its pipelines. `appSpec` (the APP argument of the command
 * line) replaces the file's `app`.
 */
export async function buildApp(config: TsgiConfig, appSpec?: string): Promise<App> {
  const { ctx } = config;
  let core: App;
  if (config.mounts.length > 0) {
    if (appSpec !== undefined) throw new UsageError('TSGI_CONFIG', `${config.file} mounts several apps with [[mount]]: an APP argument cannot replace them`);
    const mounts: Mount[] = [];
    for (const m of config.mounts) {
      const app = m.app !== undefined ? await loadAt(m.app, [...m.at, 'app'], ctx) : notFound;
      mounts.push({ path: m.path, host: m.host, scheme: m.scheme, app: await wrap(app, m.pipeline, ctx) });
    }
    core = urlMap(mounts);
  } else if (appSpec !== undefined) {
    core = await loadApp(appSpec);
  } else if (config.app !== undefined) {
    core = await loadAt(config.app, ['app'], ctx);
  } else {
    throw new ConfigError(config.file, undefined, "names no app: give 'app = \"app.mjs\"', [[mount]] tables, or an APP argument");
  }
  return wrap(core, config.pipeline, ctx);
}

/** The config's app key as a readable spec, for the start-up log line. */
export function describeApp(config: TsgiConfig, appSpec?: string): string {
  if (appSpec !== undefined) return appSpec;
  if (config.mounts.length > 0) return `${config.file} (${config.mounts.length} mounts)`;
  return config.app !== undefined ? path.relative(process.cwd(), config.app) || config.app : config.file;
}

/** Checks the file's `app`/[[mount]] against the APP argument before anything is started. */
export function checkAppChoice(config: TsgiConfig, appSpec: string | undefined): void {
  if (config.mounts.length > 0 && appSpec !== undefined) {
    throw new UsageError('TSGI_CONFIG', `${config.file} mounts several apps with [[mount]]: an APP argument cannot replace them`);
  }
  if (config.mounts.length === 0 && config.app === undefined && appSpec === undefined) {
    throw new ConfigError(config.file, undefined, "names no app: give 'app = \"app.mjs\"', [[mount]] tables, or an APP argument");
  }
}
