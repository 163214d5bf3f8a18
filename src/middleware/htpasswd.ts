// htpasswd files (Apache's, as `htpasswd` writes them) and the password hashes in them:
// bcrypt ($2y$, $2a$, $2b$; bcryptjs), SHA-512 and SHA-256 crypt ($6$, $5$; Drepper's spec),
// Apache MD5 ($apr1$) and MD5 crypt ($1$), {SHA} (salt-free SHA-1), and DES crypt(3)
// (unix-crypt-td-js). Plain-text passwords, which Apache takes only on Windows, are refused.
// Every comparison is of whole digests in constant time.

import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import bcrypt from 'bcryptjs';

export type HashScheme = 'bcrypt' | 'sha512-crypt' | 'sha256-crypt' | 'apr1' | 'md5-crypt' | 'sha1' | 'crypt';

/** The scheme of an htpasswd hash, or undefined when it is none tsgi verifies. */
export function hashScheme(hash: string): HashScheme | undefined {
  if (/^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$/.test(hash)) return 'bcrypt';
  if (hash.startsWith('$6$')) return 'sha512-crypt';
  if (hash.startsWith('$5$')) return 'sha256-crypt';
  if (hash.startsWith('$apr1$')) return 'apr1';
  if (hash.startsWith('$1$')) return 'md5-crypt';
  if (hash.startsWith('{SHA}')) return 'sha1';
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) return 'crypt';
  return undefined;
}

/** Equal strings, compared in time that depends only on their lengths. */
export function safeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === 'string' ? Buffer.from(a, 'latin1') : Buffer.from(a);
  const y = typeof b === 'string' ? Buffer.from(b, 'latin1') : Buffer.from(b);
  if (x.length !== y.length) {
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** Does `password` (its bytes as sent) match `hash`? False for schemes tsgi does not know. */
export async function verifyPassword(password: Uint8Array | string, hash: string): Promise<boolean> {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password);
  switch (hashScheme(hash)) {
    case 'bcrypt':
      // bcryptjs compares in constant time; it hashes the UTF-8 encoding of a string.
      return bcrypt.compare(bcryptInput(pw), hash);
    case 'sha512-crypt':
      return safeEqual(shaCrypt('sha512', pw, hash), hash);
    case 'sha256-crypt':
      return safeEqual(shaCrypt('sha256', pw, hash), hash);
    case 'apr1':
      return safeEqual(md5Crypt(pw, hash, '$apr1$'), hash);
    case 'md5-crypt':
      return safeEqual(md5Crypt(pw, hash, '$1$'), hash);
    case 'sha1':
      return safeEqual(`{SHA}${createHash('sha1').update(pw).digest('base64')}`, hash);
    case 'crypt':
      return safeEqual(desCrypt(pw, hash), hash);
    default:
      return false;
  }
}

// bcryptjs hashes the UTF-8 encoding of a JS string. For bytes that are UTF-8 that is the same
// string; other bytes (a latin-1 client) have no string with that encoding, and are refused.
function bcryptInput(pw: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(pw);
  } catch {
    return '\u0000invalid-utf8\u0000' + pw.toString('hex');
  }
}

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function to64(v: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++, v >>>= 6) s += ITOA64[v & 0x3f];
  return s;
}

/** MD5 crypt (FreeBSD's, Poul-Henning Kamp), with `$1$` or Apache's `$apr1$` as magic. */
export function md5Crypt(pw: Buffer, setting: string, magic: '$1$' | '$apr1$'): string {
  const salt = setting.slice(magic.length).split('$')[0]!.slice(0, 8);
  const saltB = Buffer.from(salt, 'latin1');
  const alt = createHash('md5').update(pw).update(saltB).update(pw).digest();
  const ctx = createHash('md5').update(pw).update(magic).update(saltB);
  for (let pl = pw.length; pl > 0; pl -= 16) ctx.update(alt.subarray(0, Math.min(pl, 16)));
  for (let i = pw.length; i; i >>>= 1) ctx.update(i & 1 ? Buffer.of(0) : Buffer.of(pw[0] ?? 0));
  let fin = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    const c = createHash('md5');
    c.update(i & 1 ? pw : fin);
    if (i % 3) c.update(saltB);
    if (i % 7) c.update(pw);
    c.update(i & 1 ? fin : pw);
    fin = c.digest();
  }
  const f = fin;
  const out =
    to64((f[0]! << 16) | (f[6]! << 8) | f[12]!, 4) +
    to64((f[1]! << 16) | (f[7]! << 8) | f[13]!, 4) +
    to64((f[2]! << 16) | (f[8]! << 8) | f[14]!, 4) +
    to64((f[3]! << 16) | (f[9]! << 8) | f[15]!, 4) +
    to64((f[4]! << 16) | (f[10]! << 8) | f[5]!, 4) +
    to64(f[11]!, 2);
  return `${magic}${salt}$${out}`;
}

// Byte orders of the final encoding (Drepper, "Unix crypt using SHA-256 and SHA-512").
const SHA256_ORDER = [[0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29]];
const SHA512_ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10],
  [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];

/** SHA-256/SHA-512 crypt ($5$, $6$), with `rounds=N$` when the setting has it. */
export function shaCrypt(alg: 'sha256' | 'sha512', pw: Buffer, setting: string): string {
  const magic = alg === 'sha256' ? '$5$' : '$6$';
  let rest = setting.slice(3);
  let rounds = 5000;
  let custom = false;
  const rm = /^rounds=([0-9]+)\$/.exec(rest);
  if (rm) {
    rounds = Math.min(999_999_999, Math.max(1000, Number(rm[1])));
    custom = true;
    rest = rest.slice(rm[0].length);
  }
  const salt = Buffer.from(rest.split('$')[0]!.slice(0, 16), 'latin1');
  const H = () => createHash(alg);
  const repeat = (src: Buffer, n: number) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += src.length) src.copy(out, i, 0, Math.min(src.length, n - i));
    return out;
  };
  const b = H().update(pw).update(salt).update(pw).digest();
  const a = H().update(pw).update(salt).update(repeat(b, pw.length));
  for (let i = pw.length; i > 0; i >>>= 1) a.update(i & 1 ? b : pw);
  const A = a.digest();
  const dp = H();
  for (let i = 0; i < pw.length; i++) dp.update(pw);
  const P = repeat(dp.digest(), pw.length);
  const ds = H();
  for (let i = 0; i < 16 + A[0]!; i++) ds.update(salt);
  const S = repeat(ds.digest(), salt.length);
  let C = A;
  for (let r = 0; r < rounds; r++) {
    const c = H();
    c.update(r & 1 ? P : C);
    if (r % 3) c.update(S);
    if (r % 7) c.update(P);
    c.update(r & 1 ? C : P);
    C = c.digest();
  }
  let out = '';
  for (const [x, y, z] of alg === 'sha256' ? SHA256_ORDER : SHA512_ORDER) out += to64((C[x!]! << 16) | (C[y!]! << 8) | C[z!]!, 4);
  out += alg === 'sha256' ? to64((C[31]! << 8) | C[30]!, 3) : to64(C[63]!, 2);
  return `${magic}${custom ? `rounds=${rounds}$` : ''}${salt.toString('latin1')}$${out}`;
}

let unixCrypt: ((pw: string, salt: string) => string) | undefined;

/** Traditional DES crypt(3): the first 8 bytes of the password, 2 characters of salt. */
function desCrypt(pw: Buffer, hash: string): string {
  unixCrypt ??= createRequire(import.meta.url)('unix-crypt-td-js') as (pw: string, salt: string) => string;
  return unixCrypt(pw.subarray(0, 8).toString('latin1'), hash.slice(0, 2));
}

/** Users and hashes of an htpasswd file's text (byte strings; `#` comments and blank lines skipped). */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const user = line.slice(0, colon);
    // Apache's format allows a trailing ":comment" field after the hash in some tools.
    const hash = line.slice(colon + 1).split(':')[0]!;
    if (!users.has(user)) users.set(user, hash);
  }
  return users;
}

/** An htpasswd file, read again when it changes (checked at most once a second). */
export class Htpasswd {
  readonly file: string;
  private users: Map<string, string>;
  private stamp: string;
  private checkedAt = Date.now();
  private reloading: Promise<void> | undefined;

  constructor(file: string) {
    this.file = file;
    const st = fs.statSync(file);
    this.stamp = `${st.mtimeMs}:${st.size}`;
    this.users = parseHtpasswd(fs.readFileSync(file, 'latin1'));
  }

  /** Entries whose hash scheme tsgi cannot verify (those users can never log in). */
  unsupported(): string[] {
    return [...this.users].filter(([, h]) => hashScheme(h) === undefined).map(([u]) => u);
  }

  /** Checks user and password (byte strings / bytes as the client sent them). */
  async verify(user: string, password: Uint8Array): Promise<boolean> {
    await this.refresh();
    const hash = this.users.get(user);
    if (hash === undefined) {
      // Spend the time a known user would cost, so that timing does not tell who exists.
      const any = this.users.values().next().value as string | undefined;
      if (any !== undefined) await verifyPassword(password, any);
      return false;
    }
    return verifyPassword(password, hash);
  }

  private refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < 1000) return this.reloading ?? Promise.resolve();
    this.checkedAt = Date.now();
    this.reloading ??= (async () => {
      try {
        const st = await fs.promises.stat(this.file);
        const stamp = `${st.mtimeMs}:${st.size}`;
        if (stamp !== this.stamp) {
          this.users = parseHtpasswd(await fs.promises.readFile(this.file, 'latin1'));
          this.stamp = stamp;
        }
      } catch {
        // gone or unreadable for a moment (being replaced): keep the users we have
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }
}
