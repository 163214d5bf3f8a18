// tsgi.toml: what a good file gives (server settings as flags would, pipelines built in order,
// mounts), and for each mistake a one-line error naming the file and the line of the key.

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp, ConfigError, KeyLocator, loadConfig, parseConfig } from '../../src/config/index.js';
import { runApp } from '../../src/runner/run.js';
import { makeRequest } from '../helpers/recording-sink.js';

const DIR = 'test/fixtures/config';
const FILE = path.join(DIR, 'inline.toml'); // relative paths resolve against test/fixtures/config
const SITE = path.join(DIR, 'site.toml');

function configError(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('good files', () => {
  it('server settings come out as the flags would give them', () => {
    const c = parseConfig(
      `app = "app.mjs:default"
protocol = "scgi"
bind = "unix:/tmp/x.sock"
workers = "auto"
socket-mode = 0o600
graceful-timeout = 2.5
lint = true
debug = false
access-log = true
log-level = "warn"

[limits]
max-header-size = 65536
max-body-size = "10m"
max-requests-per-conn = 4
max-connections = 100
idle-timeout = 60
header-timeout = 5

[ajp]
secret = "s3cret"
packet-size = 16384
allowed-attributes = "AJP_.*"
allow-shutdown = false

[fastcgi]
stderr = false
`,
      FILE,
    );
    expect(c.serve).toEqual({
      protocol: 'scgi',
      bind: 'unix:/tmp/x.sock',
      workers: 'auto',
      socketMode: '600',
      gracefulTimeout: '2.5',
      lint: true,
      debug: false,
      accessLog: true,
      logLevel: 'warn',
      maxHeaderSize: '65536',
      maxBodySize: '10m',
      maxRequestsPerConn: '4',
      maxConnections: '100',
      idleTimeout: '60',
      headerTimeout: '5',
      ajpSecret: 's3cret',
      ajpPacketSize: '16384',
      ajpAllowedAttributes: 'AJP_.*',
      ajpAllowShutdown: false,
      fcgiStderr: false,
    });
    expect(c.app).toBe(path.resolve(DIR, 'app.mjs'));
  });

  it('the site fixture: a top pipeline, two mounts, one with [[mount.pipeline]], one with an inline pipeline', () => {
    const c = loadConfig(SITE);
    expect(c.pipeline.map((s) => s.use)).toEqual(['request-id', 'proxy-fix', 'errors', 'timing', 'compression', 'lint']);
    expect(c.mounts.map((m) => [m.path, m.pipeline.map((s) => s.use)])).toEqual([
      ['/api', ['basic-auth']],
      ['/', ['static']],
    ]);
    expect(c.pipeline[4]!.options).toEqual({ minSize: 256 });
    expect(c.serve).toMatchObject({ protocol: 'fastcgi', workers: '1', maxBodySize: '1m', headerTimeout: '30' });
  });

  it('builds the site: stages in order, mounts dispatched, static falling through to the app', async () => {
    const app = await buildApp(loadConfig(SITE));
    const get = async (vars: Record<string, string>) => {
      const req = makeRequest({ REMOTE_ADDR: '127.0.0.1', ...vars });
      await runApp(req.options(app));
      return req;
    };
    const home = await get({ PATH_INFO: '/' });
    expect(home.sink.text()).toContain('static home');
    expect(home.sink.header('Cache-Control')).toEqual(['public, max-age=60']);
    expect(home.sink.header('X-Request-Id')[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(home.sink.header('Server-Timing')[0]).toMatch(/^app;dur=/);
    const dyn = await get({ PATH_INFO: '/hello', HTTP_X_FORWARDED_FOR: '203.0.113.5' });
    expect(JSON.parse(dyn.sink.text())).toMatchObject({ PATH_INFO: '/hello', REMOTE_ADDR: '203.0.113.5' });
    const api = await get({ PATH_INFO: '/api/things' });
    expect(api.sink.head.status).toBe('401 Unauthorized');
    const auth = `Basic ${Buffer.from('bob:builder').toString('base64')}`;
    const ok = await get({ PATH_INFO: '/api/things', HTTP_AUTHORIZATION: auth });
    expect(JSON.parse(ok.sink.text())).toEqual({ api: true, user: 'bob', script: '/api', path: '/things' });
    const fail = await get({ PATH_INFO: '/fail' });
    expect(fail.sink.head.status).toBe('500 Internal Server Error');
  });

  it('custom middleware by path, with its options in camelCase; a check function by module', async () => {
    const c = loadConfig(path.join(DIR, 'custom.toml'));
    const app = await buildApp(c);
    const req = makeRequest({ HTTP_AUTHORIZATION: `Basic ${Buffer.from('robot:beep-boop').toString('base64')}` });
    await runApp(req.options(app));
    expect(req.sink.head.status).toBe('200 OK');
    expect(req.sink.header('X-From-File')).toEqual(['yes']);
  });

  it('an APP argument replaces the file\'s app; a mount without an app answers 404 past its static files', async () => {
    const c = parseConfig(`[[mount]]\npath = "/s"\npipeline = [{ use = "static", root = "public" }]\n`, FILE);
    const app = await buildApp(c);
    const req = makeRequest({ PATH_INFO: '/s/nothing-here' });
    await runApp(req.options(app));
    expect(req.sink.head.status).toBe('404 Not Found');
    const c2 = parseConfig(`app = "app.mjs"\n`, FILE);
    const app2 = await buildApp(c2, path.join(DIR, 'api/app.mjs'));
    const req2 = makeRequest();
    await runApp(req2.options(app2));
    expect(JSON.parse(req2.sink.text())).toMatchObject({ api: true });
  });
});

// Each: the file's text, the line the error must point at, and a part of the message.
const MISTAKES: Array<[string, string, number | undefined, RegExp]> = [
  ['TOML syntax', 'app = "app.mjs"\nworkers = [1,\n', 3, /not valid TOML/],
  ['a key twice', 'app = "app.mjs"\napp = "app.mjs"\n', 2, /not valid TOML.*redefine/],
  ['unknown top-level key', 'app = "app.mjs"\n\nworkrs = 2\n', 3, /unknown key 'workrs' in the top level \(did you mean 'workers'\?\)/],
  ['unknown limit', 'app = "app.mjs"\n[limits]\nmax-body = "1m"\n', 3, /unknown key 'max-body' in \[limits\]/],
  ['bad size', 'app = "app.mjs"\n[limits]\n\nmax-body-size = "ten megs"\n', 4, /max-body-size must be a size/],
  ['negative timeout', 'app = "app.mjs"\n[limits]\nidle-timeout = -1\n', 3, /idle-timeout must be a number of seconds/],
  ['workers zero', 'app = "app.mjs"\nworkers = 0\n', 2, /workers must be >= 1, got 0/],
  ['workers as a word', 'app = "app.mjs"\nworkers = "many"\n', 2, /workers must be a whole number, got the string "many"/],
  ['unknown protocol', 'app = "app.mjs"\nprotocol = "fastcgii"\n', 2, /protocol must be one of .* \(did you mean 'fastcgi'\?\)/],
  ['bad bind', 'app = "app.mjs"\nbind = "nowhere"\n', 2, /bind: /],
  ['bad socket mode', 'app = "app.mjs"\nsocket-mode = "rw"\n', 2, /socket-mode must be an octal mode/],
  ['missing app file', 'app = "missing.mjs"\n', 1, /file not found: missing.mjs/],
  ['app and mounts', 'app = "app.mjs"\n[[mount]]\npath = "/a"\napp = "app.mjs"\n', 2, /either 'app' or \[\[mount\]\]/],
  ['pipeline entry without use', 'app = "app.mjs"\n[[pipeline]]\nuse = "errors"\n[[pipeline]]\ndebug = true\n', 4, /pipeline\[1\] needs 'use'/],
  ['unknown middleware', 'app = "app.mjs"\n[[pipeline]]\nuse = "compress"\n', 3, /unknown middleware 'compress' \(did you mean 'compression'\?\)/],
  ['unknown option', 'app = "app.mjs"\n[[pipeline]]\nuse = "errors"\n[[pipeline]]\nuse = "compression"\nlevel = 9\n', 6, /unknown key 'level' in pipeline\[1\] \(compression\)/],
  ['bad option value', 'app = "app.mjs"\n[[pipeline]]\nuse = "compression"\ngzip-level = 12\n', 4, /pipeline\[1\]?.*gzip-level must be from 1 to 9, got 12|gzip-level must be from 1 to 9/],
  ['bad enum in a list', 'app = "app.mjs"\n[[pipeline]]\nuse = "compression"\nencodings = ["br", "zstd"]\n', 4, /encodings\[1\] must be one of "br", "gzip"/],
  ['static root missing', 'app = "app.mjs"\n[[pipeline]]\nuse = "static"\nroot = "nope"\n', 4, /directory not found: nope/],
  ['static without root', 'app = "app.mjs"\n[[pipeline]]\nuse = "static"\nmax-age = 5\n', 2, /\(static\) needs 'root'/],
  ['basic-auth with two sources', 'app = "app.mjs"\n[[pipeline]]\nuse = "basic-auth"\nhtpasswd = "auth/htpasswd"\nusers = { a = "b" }\n', 2, /needs exactly one of htpasswd, users or check/],
  ['proxy-fix bad address', 'app = "app.mjs"\n[[pipeline]]\nuse = "proxy-fix"\ntrusted = ["10.0.0.0/8", "localhost"]\n', 4, /'localhost' is not an IP address/],
  ['inline pipeline, second element', 'app = "app.mjs"\npipeline = [\n  { use = "errors" },\n  { use = "timing", header = "nope" },\n]\n', 4, /header must be one of/],
  ['mount without app or pipeline', '[[mount]]\npath = "/a"\n', 1, /needs an app, or a pipeline/],
  ['mount path without slash', '[[mount]]\npath = "api"\napp = "app.mjs"\n', 2, /must start with \//],
  ['unknown key in a mount pipeline', '[[mount]]\npath = "/a"\napp = "app.mjs"\n\n  [[mount.pipeline]]\n  use = "errors"\n  verbose = true\n', 7, /unknown key 'verbose' in mount\[0\]\.pipeline\[0\] \(errors\)/],
  ['second mount', '[[mount]]\napp = "app.mjs"\n[[mount]]\npath = "/b"\nhots = "x"\napp = "app.mjs"\n', 5, /unknown key 'hots'.*did you mean 'host'/],
  ['middleware module missing', 'app = "app.mjs"\n[[pipeline]]\nuse = "./nope.mjs"\n', 3, /file not found: .\/nope.mjs/],
  ['a table where a value goes', 'app = "app.mjs"\n[workers]\nn = 1\n', 2, /workers must be a whole number, got a table/],
];

describe('mistakes: one line, file and line of the key', () => {
  it.each(MISTAKES)('%s', (_what, text, line, message) => {
    const e = configError(text);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message.startsWith(`${FILE}:${line ?? ''}`)).toBe(true);
    expect(e.line).toBe(line);
    expect(e.message).toMatch(message);
    expect(e.code).toBe('TSGI_CONFIG');
  });

  it('errors found when building (a module export that is not a function) carry the line too', async () => {
    const c = parseConfig('app = "app.mjs"\n\n[[pipeline]]\nuse = "./mw.mjs:notAFactory"\n', FILE);
    await expect(buildApp(c)).rejects.toThrow(/inline\.toml:3: middleware .*mw\.mjs:notAFactory is not a function/);
    const c2 = parseConfig('\napp = "mw.mjs:nothing"\n', FILE);
    await expect(buildApp(c2)).rejects.toThrow(/inline\.toml:2: .*has no export named 'nothing'/);
  });

  it('a missing file is a usage error', () => {
    expect(() => loadConfig('test/fixtures/config/none.toml')).toThrow(/cannot read config file .*none.toml: not found/);
  });
});

describe('KeyLocator', () => {
  const src = `# comment
app = "a.mjs"
"quoted key" = 1
dotted.key = 2
text = """
fake = 3
"""
[limits]
max-body-size = "1m"

[[pipeline]]
use = "errors"
[[pipeline]]  # second
use = "compression"

[[mount]]
path = "/a"
  [[mount.pipeline]]
  use = "x"
  [[mount.pipeline]]
  use = "y"
[[mount]]
path = "/b"
pipeline = [ { use = "p" }, { use = "q", k = 1 } ]
others = [
  { use = "r" },
  { use = "s",
    k = 2 },
]
after = 1
`;
  const loc = new KeyLocator(src);
  it.each([
    [['app'], 2],
    [['quoted key'], 3],
    [['dotted', 'key'], 4],
    [['fake'], undefined],
    [['limits'], 8],
    [['limits', 'max-body-size'], 9],
    [['limits', 'unknown'], 8],
    [['pipeline', 0], 11],
    [['pipeline', 1, 'use'], 14],
    [['mount', 0, 'pipeline', 1, 'use'], 21],
    [['mount', 1, 'path'], 23],
    [['mount', 1, 'pipeline', 1, 'k'], 24],
    [['mount', 1, 'others', 1], 27],
    [['mount', 1, 'others', 0, 'use'], 26],
    [['mount', 1, 'after'], 30],
  ] as Array<[Array<string | number>, number | undefined]>)('%j -> line %j', (p, line) => {
    expect(loc.line(p)).toBe(line);
  });
});
