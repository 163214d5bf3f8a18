// tsgi.toml for `tsgi serve --config FILE` (docs/configuration.md): the file names the app (or
// mounts several), the middleware pipeline, and the server settings; flags given on the command
// line win over the file.

import type { App } from '../types.js';
import { buildApp, checkAppChoice, describeApp, loadConfig } from './load.js';

export { ConfigError } from './errors.js';
export { KeyLocator, type KeyPath } from './locate.js';
export { buildApp, loadConfig, parseConfig, type MountConfig, type TsgiConfig } from './load.js';
export { MIDDLEWARE, type MiddlewareSpec, type Stage } from './middleware.js';

export interface Configured<T> {
  /** What to call the app in the log. */
  appSpec: string;
  /** The options with the file's settings under those given on the command line. */
  options: T & { loadApp: () => Promise<App> };
}

/**
 * Merges a config file into `tsgi serve`'s options. `fromCommandLine(key)` says whether the
 * option (by its ServeOptions name) was given as a flag: those keep their value; the file fills
 * in the rest, over the flags' defaults. `loadApp` builds the app and its pipeline (called in
 * the process that serves, so never in the main process of --workers).
 */
export function applyConfig<T extends object>(
  file: string,
  appArg: string | undefined,
  options: T,
  fromCommandLine: (key: string) => boolean,
): Configured<T> {
  const config = loadConfig(file);
  checkAppChoice(config, appArg);
  const merged = { ...options } as Record<string, unknown>;
  for (const [k, v] of Object.entries(config.serve)) if (!fromCommandLine(k)) merged[k] = v;
  return {
    appSpec: describeApp(config, appArg),
    options: Object.assign(merged as T, { loadApp: () => buildApp(config, appArg) }),
  };
}
