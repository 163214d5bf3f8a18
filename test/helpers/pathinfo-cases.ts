// PATH_INFO edge cases (the CVE-2019-11043 class: PATH_INFO empty, holding a newline, not a
// suffix of the path the front end mapped, ...), as the CGI variables a front end sends and what
// the app must then see. One table for buildEnviron (test/runner/pathinfo.test.ts) and for the
// FastCGI and SCGI servers on the wire (test/protocols/pathinfo.test.ts); docs/security.md sums
// it up. Strings are byte strings: latin-1, one char per byte, as on the wire.

export interface PathInfoCase {
  name: string;
  /** The CGI variables sent, besides REQUEST_METHOD (GET) and SERVER_* (added by the tests). */
  vars: Array<[string, string]>;
  /** What the app sees. */
  expect: { SCRIPT_NAME: string; PATH_INFO: string };
  /** checkEnviron (the `--lint` validator) accepts the environ. */
  lint: boolean;
  /** Not on SCGI: a NUL cannot be in an SCGI value (it separates the pairs; see the SCGI test). */
  fastcgiOnly?: boolean;
}

const LONG = `/${'a'.repeat(100_000)}`;
// The request of the published CVE-2019-11043 exploit (phuip-fpizdam) as nginx forwards it with
// `fastcgi_split_path_info ^(.+?\.php)(/.*)$;` and `fastcgi_param PATH_INFO $fastcgi_path_info;`:
// the %0a makes the regex fail, so $fastcgi_script_name is the whole decoded path and
// $fastcgi_path_info is empty; the long query string shifts PHP-FPM's buffers.
const CVE_PATH = '/index.php/PHP\nis_the_shittiest_lang.php';
const CVE_QUERY = 'Q'.repeat(1700);

export const PATH_INFO_CASES: PathInfoCase[] = [
  {
    name: 'PATH_INFO empty (sent as "")',
    vars: [['SCRIPT_NAME', '/index.php'], ['PATH_INFO', ''], ['REQUEST_URI', '/index.php/x']],
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '' },
    lint: true,
  },
  {
    name: 'PATH_INFO and REQUEST_URI both absent',
    vars: [],
    expect: { SCRIPT_NAME: '', PATH_INFO: '' },
    lint: true,
  },
  {
    name: 'PATH_INFO absent, REQUEST_URI "/": PATH_INFO "/"',
    vars: [['REQUEST_URI', '/']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/' },
    lint: true,
  },
  {
    name: 'PATH_INFO "/" only',
    vars: [['SCRIPT_NAME', ''], ['PATH_INFO', '/'], ['REQUEST_URI', '/']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/' },
    lint: true,
  },
  {
    name: 'PATH_INFO with a raw "%0a" (not decoded by the front end): kept, not decoded again',
    vars: [['SCRIPT_NAME', ''], ['PATH_INFO', '/a%0ab'], ['REQUEST_URI', '/a%250ab']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/a%0ab' },
    lint: true,
  },
  {
    name: 'PATH_INFO with a decoded newline: kept',
    vars: [['SCRIPT_NAME', ''], ['PATH_INFO', '/a\nb\r\n'], ['REQUEST_URI', '/a%0ab%0d%0a']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/a\nb\r\n' },
    lint: true,
  },
  {
    name: 'PATH_INFO absent, "%0a" in REQUEST_URI: decoded to a newline',
    vars: [['REQUEST_URI', '/a%0Ab%0a?x=%0a'], ['QUERY_STRING', 'x=%0a']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/a\nb\n' },
    lint: true,
  },
  {
    name: 'CVE-2019-11043 shape: PATH_INFO "", SCRIPT_NAME the whole path with its newline, long query',
    vars: [
      ['SCRIPT_NAME', CVE_PATH],
      ['SCRIPT_FILENAME', `/var/www/html${CVE_PATH}`],
      ['PATH_INFO', ''],
      ['REQUEST_URI', `/index.php/PHP%0Ais_the_shittiest_lang.php?${CVE_QUERY}`],
      ['QUERY_STRING', CVE_QUERY],
    ],
    expect: { SCRIPT_NAME: CVE_PATH, PATH_INFO: '' },
    lint: true,
  },
  {
    name: 'PATH_INFO not a suffix of REQUEST_URI: kept as sent',
    vars: [['SCRIPT_NAME', '/app'], ['PATH_INFO', '/elsewhere'], ['REQUEST_URI', '/app/x']],
    expect: { SCRIPT_NAME: '/app', PATH_INFO: '/elsewhere' },
    lint: true,
  },
  {
    name: 'PATH_INFO longer than the path it should end: kept as sent',
    vars: [['SCRIPT_NAME', '/index.php'], ['PATH_INFO', '/index.php/index.php/x'], ['REQUEST_URI', '/x']],
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '/index.php/index.php/x' },
    lint: true,
  },
  {
    name: 'PATH_INFO absent, SCRIPT_NAME not a prefix of REQUEST_URI: the whole decoded path',
    vars: [['SCRIPT_NAME', '/app'], ['REQUEST_URI', '/other/x']],
    expect: { SCRIPT_NAME: '/app', PATH_INFO: '/other/x' },
    lint: true,
  },
  {
    name: 'PATH_INFO absent, SCRIPT_NAME a prefix of REQUEST_URI inside a segment: not stripped',
    vars: [['SCRIPT_NAME', '/app'], ['REQUEST_URI', '/application/x']],
    expect: { SCRIPT_NAME: '/app', PATH_INFO: '/application/x' },
    lint: true,
  },
  {
    name: 'PATH_INFO without a leading "/": kept (only --lint refuses it)',
    vars: [['SCRIPT_NAME', '/app'], ['PATH_INFO', 'x/y'], ['REQUEST_URI', '/app/x/y']],
    expect: { SCRIPT_NAME: '/app', PATH_INFO: 'x/y' },
    lint: false,
  },
  {
    name: 'PATH_INFO of 100 001 bytes (under the 128 KiB head limit): kept',
    vars: [['SCRIPT_NAME', ''], ['PATH_INFO', LONG]],
    expect: { SCRIPT_NAME: '', PATH_INFO: LONG },
    lint: true,
  },
  {
    name: 'PATH_INFO with a NUL byte: kept',
    vars: [['SCRIPT_NAME', ''], ['PATH_INFO', '/a\0b'], ['REQUEST_URI', '/a%00b']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/a\0b' },
    lint: true,
    fastcgiOnly: true,
  },
  {
    name: 'PATH_INFO absent, "%00" in REQUEST_URI: decoded to a NUL',
    vars: [['REQUEST_URI', '/a%00b']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/a\0b' },
    lint: true,
  },
  {
    name: 'PATH_INFO with invalid UTF-8 bytes: kept, one char per byte',
    vars: [['SCRIPT_NAME', ''], ['PATH_INFO', '/\xff\xfe/\xc3(/\xed\xa0\x80'], ['REQUEST_URI', '/%FF%FE/%C3%28/%ED%A0%80']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/\xff\xfe/\xc3(/\xed\xa0\x80' },
    lint: true,
  },
  {
    name: 'PATH_INFO absent, invalid UTF-8 escapes in REQUEST_URI: decoded one char per byte',
    vars: [['REQUEST_URI', '/%FF%fe/%C3%28/%ED%A0%80']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/\xff\xfe/\xc3(/\xed\xa0\x80' },
    lint: true,
  },
  {
    name: 'PATH_INFO absent, malformed escapes in REQUEST_URI: left as they are',
    vars: [['REQUEST_URI', '/%/%0/%zz/%0g']],
    expect: { SCRIPT_NAME: '', PATH_INFO: '/%/%0/%zz/%0g' },
    lint: true,
  },
];
