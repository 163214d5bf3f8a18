// Where a key of a TOML document is written: the TOML parser gives positions for syntax errors
// only, so errors found later (an unknown key, a bad value) are placed by scanning the source for
// table headers ([a], [[a]]), dotted keys and the elements of multi-line inline arrays.

export type KeyPath = Array<string | number>;

const BARE = String.raw`[A-Za-z0-9_-]+`;
const BASIC = String.raw`"(?:[^"\\]|\\.)*"`;
const LITERAL = String.raw`'[^']*'`;
const PART = `(?:${BARE}|${BASIC}|${LITERAL})`;
const DOTTED = `${PART}(?:\\s*\\.\\s*${PART})*`;
const HEADER_ARRAY = new RegExp(`^\\s*\\[\\[\\s*(${DOTTED})\\s*\\]\\]\\s*(?:#.*)?$`);
const HEADER = new RegExp(`^\\s*\\[\\s*(${DOTTED})\\s*\\]\\s*(?:#.*)?$`);
const ASSIGN = new RegExp(`^\\s*(${DOTTED})\\s*=\\s*(.*)$`);
const INLINE_KEY = new RegExp(`(?:^|[{,])\\s*(${DOTTED})\\s*=`, 'g');

function splitKey(dotted: string): string[] {
  const out: string[] = [];
  const re = new RegExp(PART, 'g');
  for (const m of dotted.matchAll(re)) {
    const p = m[0];
    if (p.startsWith('"')) out.push(JSON.parse(p) as string);
    else if (p.startsWith("'")) out.push(p.slice(1, -1));
    else out.push(p);
  }
  return out;
}

const keyOf = (path: KeyPath): string => path.map(String).join('\u0000');

/** Maps key paths of `source` to the 1-based line where each is written. */
export class KeyLocator {
  private readonly lines = new Map<string, number>();

  constructor(source: string) {
    const counts = new Map<string, number>(); // array-of-tables path -> elements so far
    const resolve = (keys: string[]): KeyPath => {
      const out: KeyPath = [];
      for (const k of keys) {
        out.push(k);
        const n = counts.get(keyOf(out));
        if (n !== undefined) out.push(n - 1);
      }
      return out;
    };
    let table: KeyPath = [];
    let multiline: string | null = null;
    // A multi-line inline array being read: its key path, element count, bracket depth.
    let array: { path: KeyPath; index: number; depth: number } | null = null;
    const src = source.split(/\r?\n/);
    for (let i = 0; i < src.length; i++) {
      const line = src[i]!;
      const n = i + 1;
      if (multiline) {
        if (line.includes(multiline)) multiline = null;
        continue;
      }
      if (array) {
        const body = stripStrings(line);
        if (/^\s*\{/.test(body)) {
          array.index++;
          this.record([...array.path, array.index], n);
          for (const m of body.matchAll(INLINE_KEY)) this.record([...array.path, array.index, ...splitKey(m[1]!)], n);
        }
        array.depth += count(body, '[') - count(body, ']');
        if (array.depth <= 0) array = null;
        continue;
      }
      let m = HEADER_ARRAY.exec(line);
      if (m) {
        const keys = splitKey(m[1]!);
        const parent = resolve(keys.slice(0, -1));
        const full = [...parent, keys[keys.length - 1]!];
        const idx = counts.get(keyOf(full)) ?? 0;
        counts.set(keyOf(full), idx + 1);
        if (idx === 0) this.record(full, n);
        table = [...full, idx];
        this.record(table, n);
        continue;
      }
      m = HEADER.exec(line);
      if (m) {
        table = resolve(splitKey(m[1]!));
        this.record(table, n);
        continue;
      }
      m = ASSIGN.exec(line);
      if (!m) continue;
      const path = [...table, ...splitKey(m[1]!)];
      this.record(path, n);
      const value = m[2]!;
      for (const delim of ['"""', "'''"]) {
        if (value.startsWith(delim) && !value.slice(3).includes(delim)) multiline = delim;
      }
      const body = stripStrings(value);
      if (body.startsWith('{')) for (const k of body.matchAll(INLINE_KEY)) this.record([...path, ...splitKey(k[1]!)], n);
      if (body.startsWith('[')) {
        const depth = count(body, '[') - count(body, ']');
        // Elements on this line: each `{` at depth 1 is one.
        let index = -1;
        let d = 0;
        for (let j = 0; j < body.length; j++) {
          const c = body[j];
          if (c === '[') d++;
          else if (c === ']') d--;
          else if (c === '{' && d === 1) {
            index++;
            this.record([...path, index], n);
            const end = body.indexOf('}', j);
            for (const k of body.slice(j, end < 0 ? undefined : end + 1).matchAll(INLINE_KEY)) this.record([...path, index, ...splitKey(k[1]!)], n);
          }
        }
        if (depth > 0) array = { path, index, depth };
      }
    }
  }

  private record(path: KeyPath, line: number): void {
    const k = keyOf(path);
    if (!this.lines.has(k)) this.lines.set(k, line);
  }

  /** The line of `path`, or of its nearest written ancestor; undefined when none is. */
  line(path: KeyPath): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const l = this.lines.get(keyOf(path.slice(0, n)));
      if (l !== undefined) return l;
    }
    return undefined;
  }
}

function count(s: string, c: string): number {
  let n = 0;
  for (const ch of s) if (ch === c) n++;
  return n;
}

/** The line with string contents blanked and any comment removed (brackets in strings do not count). */
function stripStrings(line: string): string {
  return line.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, (s) => `"${' '.repeat(Math.max(0, s.length - 2))}"`).replace(/#.*$/, '');
}
