// Loads the app named on the command line: `path` or `path:exportName`, .js/.mjs/.cjs directly,
// .ts/.mts/.cts through tsx (loaded only then, so a .js app pays nothing for it).

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from './errors.js';
import type { App } from './types.js';

export interface AppSpec {
  file: string;
  exportName: string;
}

export function parseAppSpec(spec: string): AppSpec {
  // `app.mjs:application`; a colon followed by something that is not an identifier is part of
  // the path.
  const m = /^(.*):([A-Za-z_$][\w$]*)$/.exec(spec);
  if (m && m[1]) return { file: m[1], exportName: m[2]! };
  return { file: spec, exportName: 'default' };
}

export async function loadModule(spec: string): Promise<{ value: unknown; spec: AppSpec; where: string }> {
  const s = parseAppSpec(spec);
  const file = path.resolve(s.file);
  if (!fs.existsSync(file)) throw new UsageError('TSGI_APP_NOT_FOUND', `app file not found: ${s.file}`);
  if (fs.statSync(file).isDirectory()) throw new UsageError('TSGI_APP_NOT_FOUND', `app path is a directory, not a module: ${s.file}`);
  if (/\.[mc]?ts$/.test(file)) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const e = err as Error;
    throw new UsageError('TSGI_APP_LOAD_FAILED', `cannot load ${s.file}: ${e.message}`, );
  }
  const where = `${s.file}${s.exportName === 'default' ? '' : ':' + s.exportName}`;
  if (!(s.exportName in mod)) {
    throw new UsageError(
      'TSGI_APP_NO_EXPORT',
      s.exportName === 'default'
        ? `${s.file} has no default export (name one: ${s.file}:NAME)`
        : `${s.file} has no export named '${s.exportName}'`,
    );
  }
  return { value: mod[s.exportName], spec: s, where };
}

/** Loads the module and checks its export is an app (a function). */
export async function loadApp(spec: string): Promise<App> {
  const { value, spec: s, where } = await loadModule(spec);
  if (typeof value !== 'function') {
    throw new UsageError(
      'TSGI_APP_NOT_FUNCTION',
      `export '${s.exportName}' of ${where.split(':')[0]} is not a function (got ${value === null ? 'null' : typeof value})`,
    );
  }
  return value as App;
}
