// VarsBuilder (src/protocols/name-cache.ts): the CGI variables of a request as an object, through
// a compiled constructor once the same names came twice in a row. Whatever path builds it, the
// object must be the one the protocol's own rule (`merge`) builds: same keys in the same order,
// same values, a plain object; names never run as code.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { storeParam } from '../../src/protocols/fastcgi/codec.js';
import { VarsBuilder } from '../../src/protocols/name-cache.js';

type Pairs = Array<[string, string]>;

function build(b: VarsBuilder, pairs: Pairs): Record<string, string> {
  b.begin();
  for (const [n, v] of pairs) b.add(n, v);
  return b.build(storeParam);
}

function reference(pairs: Pairs): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [n, v] of pairs) storeParam(o, n, v);
  return o;
}

/** Own enumerable entries in order, and the prototype: what an app can see of the object. */
const seen = (o: Record<string, string>) => ({ entries: Object.entries(o), proto: Object.getPrototypeOf(o) as unknown });

const NGINX: Pairs = [
  ['QUERY_STRING', ''],
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', '/hello'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['HTTP_HOST', 'example.org'],
];

describe('VarsBuilder', () => {
  it('builds the same object on the first, second and later requests (compiled from the second on)', () => {
    const b = new VarsBuilder();
    const want = seen(reference(NGINX));
    for (let i = 0; i < 5; i++) expect(seen(build(b, NGINX))).toEqual(want);
    // Values change from request to request; the layout holds only the names.
    const other = NGINX.map(([n, v]): [string, string] => [n, `${v}-2`]);
    expect(seen(build(b, other))).toEqual(seen(reference(other)));
    // Objects are independent of each other.
    const a1 = build(b, NGINX);
    const a2 = build(b, NGINX);
    a1.REQUEST_METHOD = 'POST';
    expect(a2.REQUEST_METHOD).toBe('GET');
    expect(Object.getPrototypeOf(a1)).toBe(Object.prototype);
    expect(a1.constructor).toBe(Object);
  });

  it('keeps the protocol rule for a repeated name, even when the same sequence comes again', () => {
    const b = new VarsBuilder();
    const pairs: Pairs = [['HTTP_COOKIE', 'a=1'], ['SCRIPT_NAME', '/x'], ['HTTP_COOKIE', 'b=2'], ['SCRIPT_NAME', '']];
    for (let i = 0; i < 4; i++) expect(build(b, pairs)).toEqual({ HTTP_COOKIE: 'a=1; b=2', SCRIPT_NAME: '' });
  });

  it('stores __proto__ as an own property and never touches the prototype', () => {
    const b = new VarsBuilder();
    const pairs: Pairs = [['__proto__', 'x'], ['A', '1']];
    for (let i = 0; i < 3; i++) {
      const o = build(b, pairs);
      expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value).toBe('x');
      expect(o.A).toBe('1');
    }
  });

  it('takes names that look like code as names', () => {
    const g = globalThis as Record<string, unknown>;
    const evil = ['"]=1;globalThis.tsgiPwned=1;//', "'); globalThis.tsgiPwned=1; ('", '\\', '\u2028x\u2029', '*/ globalThis.tsgiPwned=1 /*', '\n}\nglobalThis.tsgiPwned=1\n{', 'constructor', 'toString', '0', '1e3'];
    const pairs: Pairs = evil.map((n, i) => [n, String(i)]);
    const b = new VarsBuilder();
    for (let i = 0; i < 3; i++) expect(seen(build(b, pairs))).toEqual(seen(reference(pairs)));
    expect(g.tsgiPwned).toBeUndefined();
  });

  it('serves many sequences, and one new at every request never breaks the result', () => {
    const b = new VarsBuilder();
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 40; k++) {
        const pairs: Pairs = [['A', '1'], [`N${k}`, String(k)], ['B', '2']];
        expect(seen(build(b, pairs))).toEqual(seen(reference(pairs)));
        expect(seen(build(b, pairs))).toEqual(seen(reference(pairs)));
      }
      for (let k = 0; k < 3000; k++) {
        const pairs: Pairs = [[`U${round}_${k}`, 'v']];
        expect(build(b, pairs)).toEqual({ [`U${round}_${k}`]: 'v' });
      }
    }
  });

  it('works where code generation from strings is disallowed (every request the plain way)', () => {
    const dist = fileURLToPath(new URL('../../dist/protocols/', import.meta.url));
    const script = `
      const { VarsBuilder } = await import(${JSON.stringify(dist + 'name-cache.js')});
      const { storeParam } = await import(${JSON.stringify(dist + 'fastcgi/codec.js')});
      const b = new VarsBuilder();
      const out = [];
      for (let i = 0; i < 4; i++) { b.begin(); b.add('A', String(i)); b.add('HTTP_X', 'y'); out.push(b.build(storeParam)); }
      console.log(JSON.stringify(out));`;
    const got = execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(JSON.parse(got)).toEqual([0, 1, 2, 3].map((i) => ({ A: String(i), HTTP_X: 'y' })));
  });

  it('compiles a sequence seen twice in a row, and keeps the busiest layouts when full', () => {
    const b = new VarsBuilder();
    const hot: Pairs = [['HOT', '1'], ['X', '2']];
    build(b, hot);
    expect(b.compiled(['HOT', 'X'])).toBe(false);
    build(b, hot);
    expect(b.compiled(['HOT', 'X'])).toBe(true);
    // Fill the other slots with layouts used a few times each.
    for (let k = 0; k < 15; k++) {
      const p: Pairs = [[`L${k}`, 'v']];
      build(b, p);
      build(b, p);
      expect(b.compiled([`L${k}`])).toBe(true);
    }
    for (let round = 0; round < 5; round++) for (let k = 0; k < 15; k++) build(b, [[`L${k}`, 'v']]);
    // The hot layout is used again and again (the builder's last-used fast path).
    for (let i = 0; i < 100; i++) build(b, hot);
    // Then new sequences come, each twice: after enough misses one of them takes a slot, and
    // the one given up is one of those, never the hot one.
    for (let k = 0; k < 1100; k++) {
      const p: Pairs = [[`N${k}`, 'v']];
      build(b, p);
      build(b, p);
      build(b, hot);
    }
    expect(b.compiled(['HOT', 'X'])).toBe(true);
    expect([...Array(15).keys()].filter((k) => !b.compiled([`L${k}`])).length).toBeGreaterThan(0);
  });

  it('agrees with the plain rule on generated sequences (property)', () => {
    const name = fc.oneof(fc.constantFrom('A', 'B', 'HTTP_X', 'HTTP_COOKIE', '__proto__', 'constructor', 'hasOwnProperty'), fc.string({ maxLength: 6 }));
    const pairs = fc.array(fc.tuple(name, fc.string({ maxLength: 6 })), { maxLength: 12 });
    const b = new VarsBuilder();
    fc.assert(
      fc.property(pairs, fc.integer({ min: 1, max: 3 }), (ps, times) => {
        const want = seen(reference(ps));
        for (let i = 0; i < times; i++) expect(seen(build(b, ps))).toEqual(want);
      }),
      { numRuns: 500 },
    );
  });
});
