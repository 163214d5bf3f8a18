// The package entry points: `tsgi/middleware` (package.json "exports") gives every middleware on
// its own, and `tsgi` the config loader and compose (resolved by Node as a user's code would,
// from the built dist/).

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/spawn.js';

describe('package exports', () => {
  it('tsgi/middleware and tsgi resolve to the built modules', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import('tsgi/middleware');
         const t = await import('tsgi');
         console.log(JSON.stringify({
           middleware: ['errorCatcher', 'compression', 'urlMap', 'basicAuth', 'proxyFix', 'staticFiles', 'requestId', 'timing', 'validator', 'compose'].filter((k) => typeof m[k] !== 'function'),
           main: ['loadConfig', 'buildApp', 'compose', 'ConfigError'].filter((k) => typeof t[k] !== 'function'),
         }));`,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual({ middleware: [], main: [] });
  });
});
