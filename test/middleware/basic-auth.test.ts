// basicAuth(): the header parser on well-formed and malformed input, 401 with the challenge,
// REMOTE_USER/AUTH_TYPE, check functions, user tables and htpasswd files of every scheme
// (test/fixtures/config/auth/htpasswd was written by Apache's htpasswd).

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { basicAuth, challenge, parseBasicAuth } from '../../src/middleware/basic-auth.js';
import { hashScheme, Htpasswd, md5Crypt, parseHtpasswd, safeEqual, verifyPassword } from '../../src/middleware/htpasswd.js';
import type { App } from '../../src/types.js';
import { call, linted } from './harness.js';

const HTPASSWD = path.resolve('test/fixtures/config/auth/htpasswd');
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const basic = (user: string, pass: string) => `Basic ${b64(`${user}:${pass}`)}`;

const whoami: App = linted((environ, sr) => {
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return [`${environ.REMOTE_USER}|${environ.AUTH_TYPE}`];
});

describe('parseBasicAuth', () => {
  it('reads user and password; the password may hold colons', () => {
    expect(parseBasicAuth(basic('alice', 'a:b:c'))).toMatchObject({ user: 'alice', password: 'a:b:c', rawUser: 'alice' });
    expect(parseBasicAuth(`bAsIc   ${b64('u:p')}  `)).toMatchObject({ user: 'u', password: 'p' });
    expect(parseBasicAuth(`Basic ${b64('u:')}`)).toMatchObject({ user: 'u', password: '' });
    expect(parseBasicAuth(`Basic ${b64(':p')}`)).toMatchObject({ user: '', password: 'p' });
    expect(parseBasicAuth(`Basic ${b64('u:pw').replace(/=+$/, '')}`)).toMatchObject({ user: 'u', password: 'pw' });
  });

  it('UTF-8 credentials as text; REMOTE_USER gets the bytes as a byte string; latin-1 falls back', () => {
    const c = parseBasicAuth(basic('zoë', 'pässwörd'))!;
    expect(c.user).toBe('zoë');
    expect(c.password).toBe('pässwörd');
    expect(c.rawUser).toBe('zo\u00c3\u00ab');
    const l = parseBasicAuth(`Basic ${b64(Buffer.from('zo\u00eb:x', 'latin1'))}`)!;
    expect(l.user).toBe('zoë');
    expect(l.rawUser).toBe('zo\u00eb');
  });

  it.each([
    undefined,
    '',
    'Basic',
    'Basic ',
    'Bearer abc',
    'Digest username="x"',
    'Basic !!!!',
    `Basic ${b64('nocolon')}`,
    `Basic ${b64('u:p')}=`, // too much padding
    'Basic dTpw=', // padding in the wrong place for its length
    'Basic dTpwx', // length % 4 == 1
    'Basic dTpx', // "u:q" would be dTpx; dTpx decodes fine: check below that it is not this case
    `Basic ${b64('u\x00:p')}`,
    `Basic ${b64('u:p\n')}`,
    `Basic ${b64('u:p\x7f')}`,
    `Basic ${b64('u:p')} extra`,
    `Basic\t\t${b64('u:p')},Basic ${b64('v:q')}`,
    `Basic ${'A'.repeat(9000)}`,
  ])('refuses %j', (h) => {
    if (h === 'Basic dTpx') return expect(parseBasicAuth(h)).toMatchObject({ user: 'u', password: 'q' });
    expect(parseBasicAuth(h)).toBeUndefined();
  });

  it('refuses non-canonical base64 (stray bits)', () => {
    // "dQ==" is "u"; "dR==" has stray low bits and would decode to the same byte.
    expect(parseBasicAuth('Basic dTpwdQ==')).toMatchObject({ password: 'pu' });
    expect(parseBasicAuth('Basic dTpwdR==')).toBeUndefined();
  });

  it('challenge quotes the realm', () => {
    expect(challenge('My "app" \\ zone')).toBe('Basic realm="My \\"app\\" \\\\ zone", charset="UTF-8"');
    expect(challenge('Zoë')).toBe('Basic realm="Zo\u00c3\u00ab", charset="UTF-8"');
    expect(() => challenge('a\nb')).toThrow(/control/);
  });
});

describe('basicAuth(app)', () => {
  const byCheck = basicAuth(whoami, { realm: 'Test', check: (u, p) => u === 'alice' && p === 'secret' });

  it('401 with the challenge and no body details when the header is missing or wrong', async () => {
    for (const h of [undefined, basic('alice', 'wrong'), basic('bob', 'secret'), 'Basic %%%']) {
      const r = await call(byCheck, h === undefined ? {} : { HTTP_AUTHORIZATION: h });
      expect(r.status).toBe(401);
      expect(r.header('WWW-Authenticate')).toBe('Basic realm="Test", charset="UTF-8"');
      expect(r.text).toBe('Unauthorized\n');
    }
  });

  it('lets the right credentials through with REMOTE_USER and AUTH_TYPE', async () => {
    const r = await call(byCheck, { HTTP_AUTHORIZATION: basic('alice', 'secret') });
    expect(r.status).toBe(200);
    expect(r.text).toBe('alice|Basic');
  });

  it('an async check', async () => {
    const app = basicAuth(whoami, { check: async (u, p, environ) => u === 'x' && p === 'y' && environ.PATH_INFO === '/' });
    expect((await call(app, { HTTP_AUTHORIZATION: basic('x', 'y') })).status).toBe(200);
    expect((await call(app, { HTTP_AUTHORIZATION: basic('x', 'y'), PATH_INFO: '/other' })).status).toBe(401);
  });

  it('a user table', async () => {
    const app = basicAuth(whoami, { users: { alice: 'secret', 'zoë': 'pässwörd' } });
    expect((await call(app, { HTTP_AUTHORIZATION: basic('alice', 'secret') })).text).toBe('alice|Basic');
    // REMOTE_USER is a byte string (the UTF-8 bytes of zoë), echoed back as text.
    expect((await call(app, { HTTP_AUTHORIZATION: basic('zoë', 'pässwörd') })).text).toBe('zo\u00c3\u00ab|Basic');
    expect((await call(app, { HTTP_AUTHORIZATION: basic('alice', 'secreT') })).status).toBe(401);
    expect((await call(app, { HTTP_AUTHORIZATION: basic('nobody', '') })).status).toBe(401);
  });

  it('needs exactly one source of truth', () => {
    expect(() => basicAuth(whoami, {})).toThrow(/exactly one/);
    expect(() => basicAuth(whoami, { users: {}, check: () => true })).toThrow(/exactly one/);
  });

  it.each([
    ['alice', 'wonderland', 'bcrypt'],
    ['bob', 'builder', 'apr1'],
    ['carol', 'singer', 'sha1'],
    ['dave', 'davepass', 'crypt'],
    ['erin', 'sha256 pass', 'sha256-crypt'],
    ['frank', 'sha512-pass', 'sha512-crypt'],
    ['grace', 'rounds!', 'sha512-crypt'],
    ['zoë', 'pässwörd', 'apr1'],
    ['heidi', '', 'bcrypt'],
  ])('htpasswd: %s (%s) with %s', async (user, pass, scheme) => {
    const file = new Htpasswd(HTPASSWD);
    const rawUser = Buffer.from(user, 'utf8').toString('latin1');
    const hash = parseHtpasswd(fs.readFileSync(HTPASSWD, 'latin1')).get(rawUser)!;
    expect(hashScheme(hash)).toBe(scheme);
    expect(await file.verify(rawUser, Buffer.from(pass, 'utf8'))).toBe(true);
    expect(await file.verify(rawUser, Buffer.from(pass + '!', 'utf8'))).toBe(scheme === 'crypt'); // DES: 8 characters count
    const app = basicAuth(whoami, { htpasswd: HTPASSWD, realm: 'files' });
    const r = await call(app, { HTTP_AUTHORIZATION: basic(user, pass) });
    expect(r.status).toBe(200);
    expect(r.text).toBe(`${rawUser}|Basic`);
    expect((await call(app, { HTTP_AUTHORIZATION: basic(user, 'nope') })).status).toBe(401);
  });

  it('htpasswd: an unknown user and an unsupported scheme never get in', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-htpasswd-'));
    const f = path.join(dir, 'htpasswd');
    fs.writeFileSync(f, '# comment\n\nplain:secret\nweird:$9$whatever\n');
    const file = new Htpasswd(f);
    expect(file.unsupported().sort()).toEqual(['plain', 'weird']);
    expect(await file.verify('plain', Buffer.from('secret'))).toBe(false);
    expect(await file.verify('nobody', Buffer.from('secret'))).toBe(false);
    fs.rmSync(dir, { recursive: true });
  });

  it('htpasswd: a changed file is read again', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-htpasswd-'));
    const f = path.join(dir, 'htpasswd');
    fs.writeFileSync(f, `u:{SHA}${createHash('sha1').update('one').digest('base64')}\n`);
    const file = new Htpasswd(f);
    expect(await file.verify('u', Buffer.from('one'))).toBe(true);
    fs.writeFileSync(f, `u:{SHA}${createHash('sha1').update('two!').digest('base64')}\n`);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(f, later, later);
    (file as unknown as { checkedAt: number }).checkedAt = 0;
    expect(await file.verify('u', Buffer.from('two!'))).toBe(true);
    expect(await file.verify('u', Buffer.from('one'))).toBe(false);
    fs.rmSync(dir, { recursive: true });
  });

  it('md5-crypt ($1$) known answer, and safeEqual', async () => {
    // `openssl passwd -1 -salt saltsalt password`
    expect(md5Crypt(Buffer.from('password'), '$1$saltsalt$', '$1$')).toBe('$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/');
    expect(await verifyPassword('password', '$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/')).toBe(true);
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
  });
});
