// Variable names as strings, remembered by position. Web servers send the same names in the
// same order on every request (nginx's fastcgi_params and scgi_params, then the headers). The
// name at each position is kept with its bytes: when they match, the same string is used again.
// V8 has to internalize a fresh string each time it is used as a property key (hash it, look it
// up); a string already used as one is found at once. Measured on a 21-param FastCGI block: a
// third off its decoding.

import { newVars } from '../runner/environ.js';

const SLOTS = 64;
const MAX_NAME = 48;

export class NameCache {
  private readonly bytes: Array<Uint8Array | undefined> = [];
  private readonly names: string[] = [];

  /**
   * The name at `slot` (its position in the request), `length` bytes of `buf` from `pos`;
   * `text` is `buf` as latin-1, of which the name is the same slice.
   */
  name(buf: Uint8Array, text: string, pos: number, length: number, slot: number): string {
    if (slot >= SLOTS || length > MAX_NAME) return text.slice(pos, pos + length);
    const known = this.bytes[slot];
    if (known !== undefined && known.length === length) {
      let i = 0;
      while (i < length && known[i] === buf[pos + i]) i++;
      if (i === length) return this.names[slot]!;
    }
    const name = text.slice(pos, pos + length);
    this.bytes[slot] = Uint8Array.prototype.slice.call(buf, pos, pos + length); // a copy: buf is a view of a socket chunk
    this.names[slot] = name;
    return name;
  }
}

const MAX_LAYOUTS = 16;
/** Once every layout slot is taken, at most one is replaced per this many misses. */
const REPLACE_EVERY = 1024;
const MAX_LAYOUT_PAIRS = 128;

type Layout = { names: string[]; make: new (values: string[]) => Record<string, string>; hits: number };

/**
 * The CGI variables of a request as the object that becomes its environ, built the way V8 builds
 * objects fastest. Web servers send the same names in the same order request after request; for
 * such a sequence, seen twice in a row, a constructor is compiled that stores each name at a
 * fixed place (`this["REQUEST_METHOD"] = v[1]`): each store then has one shape to handle and the
 * object is made with room for all of them. Filling one object with names that change at every
 * store costs V8 a lookup per store and a few reallocations of the object's property storage.
 * Anything else (a new sequence, a repeated name, `__proto__`) goes through `merge`, the
 * protocol's own rule, into a plain object. Names are written into the compiled code only as
 * JSON string literals.
 */
export class VarsBuilder {
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private count = 0;
  private readonly layouts: Layout[] = [];
  private last: Layout | undefined;
  /** The last sequence that matched no layout, to compile when it comes again. */
  private missed: string[] = [];
  private misses = 0;

  /** Starts a request's variables. */
  begin(): void {
    this.count = 0;
  }

  add(name: string, value: string): void {
    this.names[this.count] = name;
    this.values[this.count++] = value;
  }

  /** The variables added since begin(), as a new object; `merge(vars, name, value)` stores a
   * pair where no compiled layout fits (it decides what a repeated name means). */
  build(merge: (vars: Record<string, string>, name: string, value: string) => void): Record<string, string> {
    const layout = this.find();
    if (layout) return new layout.make(this.values);
    const vars = newVars();
    const { names, values, count } = this;
    for (let i = 0; i < count; i++) merge(vars, names[i]!, values[i]!);
    this.miss();
    return vars;
  }

  /** Whether a compiled layout serves this sequence of names (diagnostics, tests). */
  compiled(names: readonly string[]): boolean {
    return this.layouts.some((l) => l.names.length === names.length && l.names.every((n, i) => n === names[i]));
  }

  private find(): Layout | undefined {
    const last = this.last;
    if (last && this.matches(last.names)) {
      last.hits++;
      return last;
    }
    for (const l of this.layouts) {
      if (l !== last && this.matches(l.names)) {
        l.hits++;
        return (this.last = l);
      }
    }
    return undefined;
  }

  private matches(names: string[]): boolean {
    const count = this.count;
    if (names.length !== count) return false;
    const mine = this.names;
    for (let i = 0; i < count; i++) if (names[i] !== mine[i]) return false;
    return true;
  }

  /** A sequence no layout fits: compiled when it is the same as the previous miss. */
  private miss(): void {
    const count = this.count;
    this.misses++;
    if (!this.matches(this.missed)) {
      this.missed = this.names.slice(0, count);
      return;
    }
    this.missed = [];
    const names = this.names.slice(0, count);
    if (count > MAX_LAYOUT_PAIRS || new Set(names).size !== count || names.includes('__proto__')) return;
    if (this.layouts.length >= MAX_LAYOUTS) {
      // All slots taken: the least used one gives way, now and then (traffic changes; a client
      // sending new headers at every request must not make us compile at every request).
      if (this.misses < REPLACE_EVERY) return;
      let least = 0;
      for (let i = 1; i < this.layouts.length; i++) if (this.layouts[i]!.hits < this.layouts[least]!.hits) least = i;
      this.layouts.splice(least, 1);
      for (const l of this.layouts) l.hits = 0;
    }
    this.misses = 0;
    const make = compileLayout(names);
    if (make) this.layouts.push((this.last = { names, make, hits: 0 }));
  }
}

function compileLayout(names: string[]): Layout['make'] | undefined {
  let body = '';
  for (let i = 0; i < names.length; i++) body += `this[${JSON.stringify(names[i])}] = v[${i}];\n`;
  try {
    const make = new Function('v', body) as unknown as Layout['make'];
    // Plain objects: their prototype is Object.prototype, as a literal's is.
    (make as unknown as { prototype: object }).prototype = Object.prototype;
    return make;
  } catch {
    return undefined; // code generation from strings disallowed (--disallow-code-generation-from-strings)
  }
}
