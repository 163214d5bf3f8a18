// HTTP Basic authentication (RFC 7617) in front of an app: the credentials are checked by a
// function of yours, against an htpasswd file, or against a table of users; a request that
// passes reaches the app with REMOTE_USER and AUTH_TYPE set (RFC 3875 4.1.1, 4.1.11), any other
// gets 401 with a WWW-Authenticate challenge for the realm.

import { createHash } from 'node:crypto';
import type { App, Environ } from '../types.js';
import { Htpasswd, safeEqual } from './htpasswd.js';
import { decodeUtf8, encodeUtf8, respond, after } from './util.js';

export interface BasicCredentials {
  /** The user-id as text (UTF-8, or latin-1 when the bytes are not UTF-8). */
  user: string;
  /** The password as text, decoded the same way. */
  password: string;
  /** The user-id's bytes as a PEP 3333 byte string: what REMOTE_USER gets. */
  rawUser: string;
  /** The password's bytes as sent. */
  passwordBytes: Uint8Array;
}

export interface BasicAuthOptions {
  /** Shown by the browser's login prompt. Default "Restricted". */
  realm?: string;
  /** Your check; it should compare secrets in constant time (`safeEqual`). */
  check?: (user: string, password: string, environ: Environ) => boolean | Promise<boolean>;
  /** Path of an htpasswd file (bcrypt, SHA-512/256 crypt, apr1 MD5, {SHA}, DES crypt). */
  htpasswd?: string;
  /** A fixed table of users and their plain passwords (for development and tests). */
  users?: Record<string, string>;
}

const MAX_HEADER = 8192;
// token68 for Basic is base64: RFC 4648 alphabet, padding optional.
const BASIC = /^[ \t]*[Bb][Aa][Ss][Ii][Cc][ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/;
// RFC 7617 section 2: the user-id and the password contain no control characters.
const CTL = /[\x00-\x1f\x7f]/;

/**
 * The credentials of an Authorization header value (a byte string), or undefined when it is
 * missing, not Basic, not canonical base64, lacks the colon, or holds control characters.
 */
export function parseBasicAuth(header: string | undefined): BasicCredentials | undefined {
  if (typeof header !== 'string' || header.length > MAX_HEADER) return undefined;
  const m = BASIC.exec(header);
  if (!m) return undefined;
  const b64 = m[1]!;
  const bare = b64.replace(/=+$/, '');
  if (bare.length % 4 === 1) return undefined;
  if (b64.length !== bare.length && b64.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(bare, 'base64');
  // Non-canonical encodings (stray bits in the last character) are refused, not guessed at.
  if (bytes.toString('base64').replace(/=+$/, '') !== bare) return undefined;
  const colon = bytes.indexOf(0x3a);
  if (colon < 0) return undefined;
  const rawUser = bytes.subarray(0, colon).toString('latin1');
  const rawPassword = bytes.subarray(colon + 1).toString('latin1');
  if (CTL.test(rawUser) || CTL.test(rawPassword)) return undefined;
  return {
    user: decodeUtf8(rawUser) ?? rawUser,
    password: decodeUtf8(rawPassword) ?? rawPassword,
    rawUser,
    passwordBytes: new Uint8Array(bytes.subarray(colon + 1)),
  };
}

/** The challenge header value for `realm` (quoted-string, UTF-8 announced as RFC 7617 says). */
export function challenge(realm: string): string {
  const quoted = encodeUtf8(realm).replace(/[\\"]/g, (c) => `\\${c}`);
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(quoted)) throw new TypeError('basicAuth: the realm must not hold control characters');
  return `Basic realm="${quoted}", charset="UTF-8"`;
}

type Verify = (c: BasicCredentials, environ: Environ) => boolean | Promise<boolean>;

function verifier(o: BasicAuthOptions): Verify {
  const given = [o.check, o.htpasswd, o.users].filter((x) => x !== undefined).length;
  if (given !== 1) throw new TypeError('basicAuth: give exactly one of check, htpasswd or users');
  if (o.check) {
    const check = o.check;
    return (c, environ) => check(c.user, c.password, environ);
  }
  if (o.htpasswd !== undefined) {
    const file = new Htpasswd(o.htpasswd);
    return (c) => file.verify(c.rawUser, c.passwordBytes);
  }
  const digest = (s: string | Uint8Array) => createHash('sha256').update(s).digest();
  const table = new Map(Object.entries(o.users!).map(([u, p]) => [encodeUtf8(u), digest(Buffer.from(p, 'utf8'))]));
  const nobody = digest('');
  return (c) => {
    const want = table.get(c.rawUser);
    // Compare digests, so the time depends on neither the password's length nor its content.
    const ok = safeEqual(digest(c.passwordBytes), want ?? nobody);
    return ok && want !== undefined;
  };
}

/** Lets through requests with valid Basic credentials; answers 401 to the others. */
export function basicAuth(app: App, options: BasicAuthOptions): App {
  const wwwAuthenticate = challenge(options.realm ?? 'Restricted');
  const verify = verifier(options);
  return function basicAuthApp(environ, startResponse) {
    const creds = parseBasicAuth(environ.HTTP_AUTHORIZATION as string | undefined);
    const deny = () =>
      respond(startResponse, '401 Unauthorized', 'Unauthorized\n', [
        ['WWW-Authenticate', wwwAuthenticate],
        ['Cache-Control', 'no-store'],
      ]);
    if (!creds) return deny();
    return after(verify(creds, environ), (ok) => {
      if (!ok) return deny();
      environ.REMOTE_USER = creds.rawUser;
      environ.AUTH_TYPE = 'Basic';
      return app(environ, startResponse);
    });
  };
}
