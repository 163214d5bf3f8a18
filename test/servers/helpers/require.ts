// What a real-server test needs on this machine (a binary, a module file), and the rule for when
// it is missing: skip with a printed reason on a developer's machine, fail under CI=true.

import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';

export const IN_CI = process.env.CI === 'true';

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The absolute path of executable `name` on PATH or in the usual sbin/bin dirs, else undefined. */
export function which(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const p = path.join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first of `candidates` that exists, else undefined. */
export function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((c) => fs.existsSync(c));
}

/** A set of things a suite needs; `missing` lists what is not there, in words. */
export class Requirements {
  readonly missing: string[] = [];
  private readonly found = new Map<string, string>();

  /** Needs executable `name`; `hint` says which package brings it. */
  binary(name: string, hint?: string): this {
    const p = which(name);
    if (p) this.found.set(name, p);
    else this.missing.push(`${name} not found on PATH${hint ? ` (${hint})` : ''}`);
    return this;
  }

  /** Needs one of `candidates` (files such as Apache modules), known afterwards as `key`. */
  file(key: string, candidates: string[], hint?: string): this {
    const p = firstExisting(candidates);
    if (p) this.found.set(key, p);
    else this.missing.push(`${key} not found (looked for ${candidates.join(', ')})${hint ? ` (${hint})` : ''}`);
    return this;
  }

  /** A custom check: `why` is undefined when fine, else the reason. */
  check(why: string | undefined): this {
    if (why) this.missing.push(why);
    return this;
  }

  get ok(): boolean {
    return this.missing.length === 0;
  }

  /** The path found for a binary or file key (throws when it was missing: use inside the suite). */
  path(key: string): string {
    const p = this.found.get(key);
    if (!p) throw new Error(`${key} was not found: ${this.missing.join('; ')}`);
    return p;
  }
}

/**
 * `describe(title, fn)` when `req` is met. Otherwise the suite is skipped with the reason
 * printed, except under CI=true, where a missing server is a failure, never a skip.
 */
export function describeWith(title: string, req: Requirements, fn: () => void): void {
  if (req.ok) {
    describe(title, fn);
    return;
  }
  const reason = req.missing.join('; ');
  if (IN_CI) {
    describe(title, () => {
      it('has what it needs on this machine', () => {
        throw new Error(`${title}: ${reason}. CI=true: the real-server tests must run, not skip.`);
      });
    });
    return;
  }
  process.stderr.write(`[servers] skipping "${title}": ${reason}\n`);
  describe.skip(title, fn);
}
