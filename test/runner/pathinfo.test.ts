// PATH_INFO edge cases through buildEnviron (the table in test/helpers/pathinfo-cases.ts): the
// environ is the same every time for the same variables, nothing throws, the values are exactly
// the table's, and the --lint validator (checkEnviron) accepts or refuses as the table says.
// The same table goes over the FastCGI and SCGI wires in test/protocols/pathinfo.test.ts.

import { describe, expect, it } from 'vitest';
import { buildEnviron, type ServerContext } from '../../src/runner/environ.js';
import { LogErrorStream } from '../../src/runner/errors-stream.js';
import { BodyQueue } from '../../src/runner/input.js';
import { checkEnviron } from '../../src/runner/validate.js';
import type { Environ } from '../../src/types.js';
import { PATH_INFO_CASES } from '../helpers/pathinfo-cases.js';
import { memoryLogger } from '../helpers/recording-sink.js';

const CTX: ServerContext = { protocol: 'fastcgi', multithread: false, multiprocess: true, runOnce: false };
const SERVER: Array<[string, string]> = [
  ['REQUEST_METHOD', 'GET'],
  ['SERVER_NAME', 'localhost'],
  ['SERVER_PORT', '80'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
];

function build(vars: Array<[string, string]>): Environ {
  const input = new BodyQueue({ length: 0 });
  const errors = new LogErrorStream(memoryLogger().log);
  return buildEnviron(Object.fromEntries([...SERVER, ...vars]), input, errors, new AbortController().signal, CTX);
}

/** The environ's strings: what is compared between two builds. */
function strings(env: Environ): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string') out[k] = v;
  return out;
}

describe('PATH_INFO edge cases: buildEnviron', () => {
  for (const c of PATH_INFO_CASES) {
    it(c.name, () => {
      const first = build(c.vars);
      const second = build(c.vars);
      expect({ SCRIPT_NAME: first.SCRIPT_NAME, PATH_INFO: first.PATH_INFO }).toEqual(c.expect);
      // Deterministic: the same variables give the same environ.
      expect(strings(second)).toEqual(strings(first));
      // Every variable sent reaches the app unchanged (PATH_INFO and SCRIPT_NAME included when sent).
      for (const [k, v] of c.vars) expect(first[k], k).toBe(v);
      if (c.lint) expect(() => checkEnviron(first)).not.toThrow();
      else expect(() => checkEnviron(first)).toThrow(/PATH_INFO .* must be empty or start with \//);
    });
  }
});
