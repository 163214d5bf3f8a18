// Checking the parsed TOML against what tsgi knows: value checkers that return the normalized
// value or throw a ConfigError placed at the key's line, and table checks that name unknown
// keys (with the closest known one) and missing required ones.

import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';
import type { KeyLocator, KeyPath } from './locate.js';

export interface Ctx {
  /** The file as the user named it (for messages). */
  file: string;
  /** The directory relative paths in the file are resolved against. */
  dir: string;
  locator: KeyLocator;
}

export function fail(ctx: Ctx, at: KeyPath, message: string): never {
  throw new ConfigError(ctx.file, ctx.locator.line(at), message);
}

/** `pipeline[2].min-size` style, for messages. */
export function keyName(at: KeyPath): string {
  let s = '';
  for (const p of at) s += typeof p === 'number' ? `[${p}]` : s ? `.${/^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(p)}` : p;
  return s || '(top level)';
}

export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return v instanceof Date ? 'a date' : 'a table';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return `${typeof v === 'number' && Number.isInteger(v) ? 'the integer' : `the ${typeof v}`} ${String(v)}`;
}

export type Check<T = unknown> = (v: unknown, at: KeyPath, ctx: Ctx) => T;

const bad = (ctx: Ctx, at: KeyPath, want: string, v: unknown): never => fail(ctx, at, `${keyName(at)} must be ${want}, got ${describeValue(v)}`);

export const string: Check<string> = (v, at, ctx) => (typeof v === 'string' ? v : bad(ctx, at, 'a string', v));
export const boolean: Check<boolean> = (v, at, ctx) => (typeof v === 'boolean' ? v : bad(ctx, at, 'true or false', v));

export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return (v, at, ctx) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) return bad(ctx, at, `a whole number`, v);
    if (v < min || v > max) return fail(ctx, at, `${keyName(at)} must be ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}, got ${v}`);
    return v;
  };
}

/** Seconds: a number >= 0. */
export const seconds: Check<number> = (v, at, ctx) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return bad(ctx, at, 'a number of seconds >= 0', v);
  return v;
};

/** A size: bytes as an integer, or a string such as "64k", "10m", "1g". */
export const size: Check<string> = (v, at, ctx) => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string' && /^[0-9]+[kmg]?i?b?$/i.test(v.trim())) return v.trim();
  return bad(ctx, at, 'a size such as 65536, "64k" or "10m"', v);
};

export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (v, at, ctx) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    return fail(ctx, at, `${keyName(at)} must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${describeValue(v)}${typeof v === 'string' ? suggest(v, values) : ''}`);
  };
}

export function arrayOf<T>(item: Check<T>): Check<T[]> {
  return (v, at, ctx) => {
    if (!Array.isArray(v)) return bad(ctx, at, 'an array', v);
    return v.map((x, i) => item(x, [...at, i], ctx));
  };
}

/** A table whose keys are free and whose values pass `value`. */
export function tableOf<T>(value: Check<T>): Check<Record<string, T>> {
  return (v, at, ctx) => {
    if (!isTable(v)) return bad(ctx, at, 'a table', v);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = value(x, [...at, k], ctx);
    return out;
  };
}

/** A path relative to the config file's directory; `kind` says what must be there. */
export function filePath(kind: 'file' | 'dir' | 'any' = 'any'): Check<string> {
  return (v, at, ctx) => {
    const p = path.resolve(ctx.dir, string(v, at, ctx));
    if (kind === 'any') return p;
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return fail(ctx, at, `${keyName(at)}: ${kind === 'dir' ? 'directory' : 'file'} not found: ${v as string} (${p})`);
    }
    if (kind === 'dir' && !st.isDirectory()) fail(ctx, at, `${keyName(at)}: not a directory: ${v as string}`);
    if (kind === 'file' && !st.isFile()) fail(ctx, at, `${keyName(at)}: not a file: ${v as string}`);
    return p;
  };
}

export function isTable(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
}

export interface Field {
  check: Check;
  required?: boolean;
  /** Where the value goes in the result (default: the key itself). */
  to?: string;
}

/**
 * Checks a table: every key known, required ones present. Returns the checked values under
 * their `to` names. `what` names the table in messages ("[limits]", "pipeline[1] (static)").
 */
export function checkTable(v: unknown, at: KeyPath, ctx: Ctx, fields: Record<string, Field>, what: string): Record<string, unknown> {
  if (!isTable(v)) return bad(ctx, at, 'a table', v);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const f = fields[k];
    if (!f) {
      const known = Object.keys(fields);
      fail(ctx, [...at, k], `unknown key '${k}' in ${what}${suggest(k, known)}${known.length ? ` (known: ${known.join(', ')})` : ' (it takes no options)'}`);
    }
    out[f.to ?? k] = f.check(x, [...at, k], ctx);
  }
  for (const [k, f] of Object.entries(fields)) {
    if (f.required && !(k in v)) fail(ctx, at, `${what} needs '${k}'`);
  }
  return out;
}

/** ", did you mean 'x'?" when a known word is close to `word`. */
export function suggest(word: string, known: readonly string[]): string {
  const w = word.toLowerCase();
  const prefix = w.length >= 3 ? known.find((k) => k.toLowerCase().startsWith(w)) : undefined;
  if (prefix !== undefined) return ` (did you mean '${prefix}'?)`;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean '${best}'?)` : '';
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** kebab-case TOML keys to the camelCase option names of the middleware functions. */
export const camel = (k: string): string => k.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
