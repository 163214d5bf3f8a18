// FastCGI codec against hand-written wire bytes (spec 3.3, 3.4, 4, 5): each fixture is decoded
// (whole, byte by byte, split at every offset) and re-encoded, from both the application's and
// the web server's side.

import { describe, expect, it } from 'vitest';
import { ProtocolError, RequestError } from '../../../src/errors.js';
import {
  type FcgiRecord,
  RecordDecoder,
  decodeBeginRequest,
  decodeEndRequest,
  decodeParams,
  decodeUnknownType,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  encodeUnknownType,
} from '../../../src/protocols/fastcgi/codec.js';
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONNS,
  FCGI_MAX_REQS,
  FCGI_MPXS_CONNS,
  ProtocolStatus,
  RecordType,
  Role,
} from '../../../src/protocols/fastcgi/constants.js';

/** Hex with `//` comments and any whitespace -> bytes. */
function hex(text: string): Uint8Array {
  const digits = text.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(digits, 'hex'));
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

interface Rec {
  type: number;
  requestId: number;
  content: string; // hex
}

function plain(rec: FcgiRecord): Rec {
  return { type: rec.type, requestId: rec.requestId, content: toHex(rec.content) };
}

function decodeChunks(chunks: Uint8Array[], decoder = new RecordDecoder()): Rec[] {
  const out: Rec[] = [];
  for (const chunk of chunks) decoder.push(chunk, (rec) => out.push(plain(rec)));
  expect(decoder.buffered).toBe(0);
  return out;
}

function byteByByte(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (_, i) => bytes.slice(i, i + 1));
}

interface Fixture {
  name: string;
  wire: Uint8Array;
  records: Rec[];
  /** The same bytes from our encoders; absent for bytes only another implementation would send. */
  encode?: () => Uint8Array;
}

const fixtures: Fixture[] = [
  {
    name: 'BEGIN_REQUEST, responder, keep connection',
    wire: hex(`
      01                       // version 1
      01                       // type BEGIN_REQUEST
      00 01                    // request id 1
      00 08                    // content length 8
      00                       // padding length 0
      00                       // reserved
      00 01                    // role RESPONDER
      01                       // flags FCGI_KEEP_CONN
      00 00 00 00 00           // reserved
    `),
    records: [{ type: 1, requestId: 1, content: '0001010000000000' }],
    encode: () => encodeBeginRequest(1, Role.Responder, FCGI_KEEP_CONN),
  },
  {
    name: 'PARAMS REQUEST_METHOD=GET, padded by 5',
    wire: hex(`
      01                       // version 1
      04                       // type PARAMS
      00 01                    // request id 1
      00 13                    // content length 19
      05                       // padding length 5
      00                       // reserved
      0e                       // name length 14
      03                       // value length 3
      52 45 51 55 45 53 54 5f 4d 45 54 48 4f 44  // "REQUEST_METHOD"
      47 45 54                 // "GET"
      00 00 00 00 00           // padding
    `),
    records: [{ type: 4, requestId: 1, content: '0e03524551554553545f4d4554484f44474554' }],
    encode: () => encodeRecord(RecordType.Params, 1, encodeParams([['REQUEST_METHOD', 'GET']])),
  },
  {
    name: 'empty PARAMS (end of params stream)',
    wire: hex(`
      01 04                    // version 1, type PARAMS
      00 01                    // request id 1
      00 00                    // content length 0
      00 00                    // padding 0, reserved
    `),
    records: [{ type: 4, requestId: 1, content: '' }],
    encode: () => encodeRecord(RecordType.Params, 1),
  },
  {
    name: 'STDIN "hello", padded by 3',
    wire: hex(`
      01 05                    // version 1, type STDIN
      00 01                    // request id 1
      00 05                    // content length 5
      03 00                    // padding 3, reserved
      68 65 6c 6c 6f           // "hello"
      00 00 00                 // padding
    `),
    records: [{ type: 5, requestId: 1, content: '68656c6c6f' }],
    encode: () => encodeRecord(RecordType.Stdin, 1, new TextEncoder().encode('hello')),
  },
  {
    name: 'empty STDIN (end of body)',
    wire: hex(`
      01 05 00 01              // version 1, type STDIN, request id 1
      00 00 00 00              // content length 0, padding 0, reserved
    `),
    records: [{ type: 5, requestId: 1, content: '' }],
    encode: () => encodeRecord(RecordType.Stdin, 1, new Uint8Array(0)),
  },
  {
    name: 'STDOUT "hi" on request 0x0102, padded by 6',
    wire: hex(`
      01 06                    // version 1, type STDOUT
      01 02                    // request id 258 (big-endian)
      00 02                    // content length 2
      06 00                    // padding 6, reserved
      68 69                    // "hi"
      00 00 00 00 00 00        // padding
    `),
    records: [{ type: 6, requestId: 0x0102, content: '6869' }],
    encode: () => encodeRecord(RecordType.Stdout, 0x0102, new TextEncoder().encode('hi')),
  },
  {
    name: 'END_REQUEST, app status 0, request complete',
    wire: hex(`
      01 03                    // version 1, type END_REQUEST
      00 01                    // request id 1
      00 08                    // content length 8
      00 00                    // padding 0, reserved
      00 00 00 00              // app status 0
      00                       // protocol status REQUEST_COMPLETE
      00 00 00                 // reserved
    `),
    records: [{ type: 3, requestId: 1, content: '0000000000000000' }],
    encode: () => encodeEndRequest(1, 0, ProtocolStatus.RequestComplete),
  },
  {
    name: 'END_REQUEST, app status 0x01020304, overloaded',
    wire: hex(`
      01 03 00 07              // version 1, type END_REQUEST, request id 7
      00 08 00 00              // content length 8, padding 0, reserved
      01 02 03 04              // app status 16909060 (big-endian)
      02                       // protocol status OVERLOADED
      00 00 00                 // reserved
    `),
    records: [{ type: 3, requestId: 7, content: '0102030402000000' }],
    encode: () => encodeEndRequest(7, 0x01020304, ProtocolStatus.Overloaded),
  },
  {
    name: 'GET_VALUES for the three management variables',
    wire: hex(`
      01 09                    // version 1, type GET_VALUES
      00 00                    // request id 0 (management)
      00 30                    // content length 48
      00 00                    // padding 0, reserved
      0e 00                    // name length 14, value length 0
      46 43 47 49 5f 4d 41 58 5f 43 4f 4e 4e 53     // "FCGI_MAX_CONNS"
      0d 00                    // name length 13, value length 0
      46 43 47 49 5f 4d 41 58 5f 52 45 51 53        // "FCGI_MAX_REQS"
      0f 00                    // name length 15, value length 0
      46 43 47 49 5f 4d 50 58 53 5f 43 4f 4e 4e 53  // "FCGI_MPXS_CONNS"
    `),
    records: [
      {
        type: 9,
        requestId: 0,
        content:
          '0e00464347495f4d41585f434f4e4e53' + '0d00464347495f4d41585f52455153' + '0f00464347495f4d5058535f434f4e4e53',
      },
    ],
    encode: () =>
      encodeRecord(
        RecordType.GetValues,
        0,
        encodeParams([
          [FCGI_MAX_CONNS, ''],
          [FCGI_MAX_REQS, ''],
          [FCGI_MPXS_CONNS, ''],
        ]),
      ),
  },
  {
    name: 'GET_VALUES_RESULT FCGI_MPXS_CONNS=0, padded by 6',
    wire: hex(`
      01 0a 00 00              // version 1, type GET_VALUES_RESULT, request id 0
      00 12 06 00              // content length 18, padding 6, reserved
      0f 01                    // name length 15, value length 1
      46 43 47 49 5f 4d 50 58 53 5f 43 4f 4e 4e 53  // "FCGI_MPXS_CONNS"
      30                       // "0"
      00 00 00 00 00 00        // padding
    `),
    records: [{ type: 10, requestId: 0, content: '0f01464347495f4d5058535f434f4e4e5330' }],
    encode: () => encodeRecord(RecordType.GetValuesResult, 0, encodeParams([[FCGI_MPXS_CONNS, '0']])),
  },
  {
    name: 'UNKNOWN_TYPE answering type 0x63',
    wire: hex(`
      01 0b 00 00              // version 1, type UNKNOWN_TYPE, request id 0
      00 08 00 00              // content length 8, padding 0, reserved
      63                       // the unknown type
      00 00 00 00 00 00 00     // reserved
    `),
    records: [{ type: 11, requestId: 0, content: '6300000000000000' }],
    encode: () => encodeUnknownType(0x63),
  },
  {
    name: 'ABORT_REQUEST on request 0xfffe',
    wire: hex(`
      01 02                    // version 1, type ABORT_REQUEST
      ff fe                    // request id 65534
      00 00 00 00              // content length 0, padding 0, reserved
    `),
    records: [{ type: 2, requestId: 0xfffe, content: '' }],
    encode: () => encodeAbortRequest(0xfffe),
  },
  {
    name: 'STDIN with padding not to a multiple of 8 and a non-zero reserved byte (other senders)',
    wire: hex(`
      01 05 00 03              // version 1, type STDIN, request id 3
      00 03                    // content length 3
      0a                       // padding length 10
      ff                       // reserved, ignored
      61 62 63                 // "abc"
      ee ee ee ee ee ee ee ee ee ee  // padding, content ignored
    `),
    records: [{ type: 5, requestId: 3, content: '616263' }],
  },
  {
    name: 'padding only, no content',
    wire: hex(`
      01 08 00 01              // version 1, type DATA, request id 1
      00 00 03 00              // content length 0, padding 3, reserved
      00 00 00                 // padding
    `),
    records: [{ type: 8, requestId: 1, content: '' }],
  },
];

describe('record fixtures', () => {
  const all = concat(fixtures.map((f) => f.wire));
  const allRecords = fixtures.flatMap((f) => f.records);
  const cases: [string, Uint8Array, Rec[]][] = [
    ...fixtures.map((f): [string, Uint8Array, Rec[]] => [f.name, f.wire, f.records]),
    ['every fixture back to back', all, allRecords],
  ];

  describe.each(cases)('%s', (_name, wire, records) => {
    it('decodes whole', () => {
      expect(decodeChunks([wire])).toEqual(records);
    });

    it('decodes byte by byte', () => {
      expect(decodeChunks(byteByByte(wire))).toEqual(records);
    });

    it('decodes split at every offset', () => {
      for (let cut = 0; cut <= wire.length; cut++) {
        expect(decodeChunks([wire.slice(0, cut), wire.slice(cut)])).toEqual(records);
      }
    });
  });

  it.each(fixtures.filter((f) => f.encode !== undefined))('re-encodes $name', (f) => {
    expect(toHex(f.encode!())).toBe(toHex(f.wire));
  });

  it('re-encodes every decoded record with 8-byte padding', () => {
    const decoder = new RecordDecoder();
    decoder.push(all, (rec) => {
      const again = encodeRecord(rec.type, rec.requestId, rec.content);
      expect(again.length % 8).toBe(0);
      expect(decodeChunks([again])).toEqual([plain(rec)]);
    });
  });
});

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

describe('record bodies', () => {
  it('BEGIN_REQUEST body', () => {
    expect(decodeBeginRequest(hex('0001 01 0000000000'))).toEqual({ role: Role.Responder, flags: FCGI_KEEP_CONN });
    expect(decodeBeginRequest(hex('0003 00 0000000000'))).toEqual({ role: Role.Filter, flags: 0 });
    expect(decodeBeginRequest(hex('0102 fe 0000000000'))).toEqual({ role: 0x0102, flags: 0xfe });
  });

  it('BEGIN_REQUEST body shorter than 8 bytes', () => {
    expect(() => decodeBeginRequest(hex('0001 01 00000000'))).toThrow(
      expect.objectContaining({ code: 'TSGI_FCGI_BAD_BEGIN' }),
    );
    expect(() => decodeBeginRequest(new Uint8Array(0))).toThrow(ProtocolError);
  });

  it('END_REQUEST body', () => {
    expect(decodeEndRequest(hex('ffffffff 03 000000'))).toEqual({
      appStatus: 0xffffffff,
      protocolStatus: ProtocolStatus.UnknownRole,
    });
    const rec = encodeEndRequest(9, 0xffffffff, ProtocolStatus.CantMpxConn);
    expect(toHex(rec)).toBe('0103000900080000' + 'ffffffff' + '01' + '000000');
    expect(() => decodeEndRequest(hex('00000000 00'))).toThrow(
      expect.objectContaining({ code: 'TSGI_FCGI_BAD_END' }),
    );
  });

  it('UNKNOWN_TYPE body', () => {
    const [rec] = decodeChunks([encodeUnknownType(200)]);
    expect(decodeUnknownType(hex(rec!.content))).toBe(200);
    expect(() => decodeUnknownType(hex('c8'))).toThrow(expect.objectContaining({ code: 'TSGI_FCGI_BAD_UNKNOWN_TYPE' }));
  });

  it('a content view is read at its own offset', () => {
    const wire = hex('ee ee ee 0001 00 0000000000');
    expect(decodeBeginRequest(wire.subarray(3))).toEqual({ role: 1, flags: 0 });
  });
});

describe('RecordDecoder', () => {
  it('hands out a subarray of the chunk when the record lies wholly in it (no copy)', () => {
    const chunk = concat([encodeRecord(RecordType.Stdin, 1, hex('0102030405')), encodeRecord(RecordType.Stdin, 1, hex('06'))]);
    const got: FcgiRecord[] = [];
    new RecordDecoder().push(chunk, (rec) => got.push(rec));
    expect(got.map((r) => [r.content.buffer === chunk.buffer, r.content.byteOffset])).toEqual([
      [true, 8],
      [true, 24],
    ]);
  });

  it('assembles a straddling record into its own buffer', () => {
    const wire = encodeRecord(RecordType.Stdin, 1, hex('0102030405'));
    const a = new Uint8Array(wire.subarray(0, 10)); // copies: the pushed chunks are the caller's own
    const b = new Uint8Array(wire.subarray(10));
    const got: FcgiRecord[] = [];
    const decoder = new RecordDecoder();
    decoder.push(a, (rec) => got.push(rec));
    expect(got).toEqual([]);
    decoder.push(b, (rec) => got.push(rec));
    expect(toHex(got[0]!.content)).toBe('0102030405');
    a.fill(0);
    b.fill(0);
    expect(toHex(got[0]!.content)).toBe('0102030405');
  });

  it('counts buffered bytes of the record in progress, 0 at a boundary', () => {
    const wire = encodeRecord(RecordType.Stdin, 1, hex('0102030405')); // 8 + 5 + 3 padding
    const decoder = new RecordDecoder();
    const seen: number[] = [];
    const emitted: number[] = [];
    for (let i = 0; i < wire.length; i++) {
      decoder.push(wire.subarray(i, i + 1), () => emitted.push(i));
      seen.push(decoder.buffered);
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0]);
    expect(emitted).toEqual([12]); // as soon as the content is complete, before its padding
  });

  it('accepts plain Uint8Array chunks and empty pushes', () => {
    const wire = fixtures[3]!.wire;
    const chunks = [new Uint8Array(0), wire.subarray(0, 3), new Uint8Array(0), wire.subarray(3)];
    expect(decodeChunks(chunks)).toEqual(fixtures[3]!.records);
  });

  it('rejects a version other than 1, after the records before it', () => {
    const wire = concat([
      fixtures[0]!.wire,
      hex(`
        02                     // version 2
        01 00 01 00 08 00 00   // type, request id, content length, padding, reserved
      `),
    ]);
    for (const chunks of [[wire], byteByByte(wire)]) {
      const decoder = new RecordDecoder();
      const got: Rec[] = [];
      const push = () => {
        for (const c of chunks) decoder.push(c, (rec) => got.push(plain(rec)));
      };
      expect(push).toThrow(expect.objectContaining({ name: 'ProtocolError', code: 'TSGI_FCGI_BAD_VERSION' }));
      expect(got).toEqual(fixtures[0]!.records);
      // The stream is out of step: it stays failed.
      expect(() => decoder.push(fixtures[0]!.wire, () => {})).toThrow(
        expect.objectContaining({ code: 'TSGI_FCGI_BAD_VERSION' }),
      );
    }
  });

  it('waits for all 8 header bytes before judging the version', () => {
    const decoder = new RecordDecoder();
    expect(() => decoder.push(hex('00 01 00 01 00 00 00'), () => {})).not.toThrow();
    expect(() => decoder.push(hex('00'), () => {})).toThrow(expect.objectContaining({ code: 'TSGI_FCGI_BAD_VERSION' }));
  });

  it('rejects content over maxContentLength', () => {
    const decoder = new RecordDecoder({ maxContentLength: 4 });
    expect(decodeChunks([encodeRecord(RecordType.Stdin, 1, hex('01020304'))], decoder)).toHaveLength(1);
    expect(() => decoder.push(encodeRecord(RecordType.Stdin, 1, hex('0102030405')), () => {})).toThrow(
      expect.objectContaining({ code: 'TSGI_FCGI_RECORD_TOO_LONG' }),
    );
    expect(() => new RecordDecoder({ maxContentLength: 65536 })).toThrow(RangeError);
  });

  it('takes the largest record: 65535 content bytes and 255 padding bytes', () => {
    const content = new Uint8Array(65535).map((_, i) => i % 251);
    const wire = concat([hex('01 07 00 05 ff ff ff 00'), content, new Uint8Array(255).fill(0xaa)]);
    const expected = [{ type: RecordType.Stderr, requestId: 5, content: toHex(content) }];
    expect(decodeChunks([wire])).toEqual(expected);
    for (const cut of [1, 7, 8, 9, 65542, 65543, 65544, wire.length - 1]) {
      expect(decodeChunks([wire.subarray(0, cut), wire.subarray(cut)])).toEqual(expected);
    }
  });
});

describe('encodeStream', () => {
  it('splits 66000 bytes into 65535 padded by 1, then 465 padded by 7 (Go streamTests)', () => {
    const data = new Uint8Array(66000).map((_, i) => i % 253);
    const out: Uint8Array[] = [];
    encodeStream(RecordType.Stdout, 1, data, out);
    expect(out.map((b) => b.length)).toEqual([8, 65535, 1, 8, 465, 7]);
    expect(toHex(out[0]!)).toBe(
      toHex(hex(`
        01 06 00 01            // version 1, type STDOUT, request id 1
        ff ff                  // content length 65535
        01 00                  // padding 1, reserved
      `)),
    );
    expect(toHex(out[3]!)).toBe(
      toHex(hex(`
        01 06 00 01            // version 1, type STDOUT, request id 1
        01 d1                  // content length 465
        07 00                  // padding 7, reserved
      `)),
    );
    expect(toHex(out[2]!)).toBe('00');
    expect(toHex(out[5]!)).toBe('00000000000000');
    // Content parts are views of the caller's bytes, not copies.
    expect([out[1]!.buffer === data.buffer, out[1]!.byteOffset]).toEqual([true, 0]);
    expect([out[4]!.buffer === data.buffer, out[4]!.byteOffset]).toEqual([true, 65535]);

    // With the empty end-of-stream record the caller adds, the web server reads it back.
    const wire = concat([...out, encodeRecord(RecordType.Stdout, 1)]);
    expect(wire.length).toBe(8 + 65536 + 8 + 472 + 8);
    const expected: Rec[] = [
      { type: 6, requestId: 1, content: toHex(data.subarray(0, 65535)) },
      { type: 6, requestId: 1, content: toHex(data.subarray(65535)) },
      { type: 6, requestId: 1, content: '' },
    ];
    expect(decodeChunks([wire])).toEqual(expected);
    // Split around every record boundary and at a stride through the middle.
    const cuts = [...[0, 65544, 66024, 66032].flatMap((b) => [b - 9, b - 1, b, b + 1, b + 9])];
    for (let c = 5; c < wire.length; c += 997) cuts.push(c);
    for (const cut of cuts.filter((c) => c >= 0 && c <= wire.length)) {
      expect(decodeChunks([wire.subarray(0, cut), wire.subarray(cut)])).toEqual(expected);
    }
  });

  it.each([
    [0, []],
    [1, [8, 1, 7]],
    [8, [8, 8]],
    [65535, [8, 65535, 1]],
    [65536, [8, 65535, 1, 8, 1, 7]],
    [131070, [8, 65535, 1, 8, 65535, 1]],
  ])('%i bytes -> parts %j', (size, parts) => {
    const data = new Uint8Array(size);
    const out: Uint8Array[] = [hex('aa')];
    encodeStream(RecordType.Stdin, 2, data, out);
    expect(out.slice(1).map((b) => b.length)).toEqual(parts);
    if (size > 0 && size <= 65535) expect(out[2]).toBe(data); // a whole record: the very same view
  });

  it('rejects what the wire cannot carry', () => {
    expect(() => encodeRecord(RecordType.Stdout, 1, new Uint8Array(65536))).toThrow(RangeError);
    expect(() => encodeRecord(RecordType.Stdout, 65536)).toThrow(RangeError);
    expect(() => encodeRecord(256, 1)).toThrow(RangeError);
    expect(() => encodeStream(RecordType.Stdout, -1, new Uint8Array(1), [])).toThrow(RangeError);
  });
});

describe('name-value pairs', () => {
  const long = (n: number, c = 'x') => c.repeat(n);

  it.each([
    ['short name and value', [['A', 'b']], '01 01 41 62'],
    ['empty value', [['A', '']], '01 00 41'],
    ['empty name and value', [['', '']], '00 00'],
    ['latin-1 bytes above 0x7f', [['\u00e9', '\u00ff\u0080']], '01 02 e9 ff80'],
    ['127-byte name: still 1 length byte', [[long(127), 'v']], '7f 01' + '78'.repeat(127) + '76'],
    ['128-byte value: 4 length bytes, top bit set', [['n', long(128)]], '01 80000080 6e' + '78'.repeat(128)],
    ['0x12345-byte value', [['n', long(0x12345)]], '01 80012345 6e' + '78'.repeat(0x12345)],
    [
      'two pairs',
      [
        ['SCRIPT_NAME', '/app'],
        ['HTTP_HOST', 'h'],
      ],
      '0b 04 5343524950545f4e414d45 2f617070' + '09 01 485454505f484f5354 68',
    ],
  ] as [string, [string, string][], string][])('%s', (_name, pairs, wireHex) => {
    const wire = hex(wireHex);
    expect(toHex(encodeParams(pairs))).toBe(toHex(wire));
    const into: Record<string, string> = Object.create(null);
    expect(decodeParams(wire, into)).toBe(pairs.length);
    expect(into).toEqual(Object.fromEntries(pairs));
  });

  it('keeps every char one byte (latin-1), all 256 of them', () => {
    const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
    const wire = encodeParams([[all, all]]);
    expect(wire.length).toBe(4 + 4 + 256 + 256);
    const into: Record<string, string> = {};
    decodeParams(wire, into);
    expect(into[all]).toBe(all);
  });

  it('refuses to encode chars above U+00FF', () => {
    expect(() => encodeParams([['n', '\u20ac']])).toThrow(RangeError);
    expect(() => encodeParams([['\u0100', 'v']])).toThrow(RangeError);
  });

  it('takes any iterable of pairs', () => {
    const map = new Map([
      ['A', '1'],
      ['B', '2'],
    ]);
    expect(toHex(encodeParams(map))).toBe('0101' + '41' + '31' + '0101' + '42' + '32');
    expect(toHex(encodeParams([]))).toBe('');
  });

  it('a later duplicate wins; the count is of pairs', () => {
    const into: Record<string, string> = {};
    expect(decodeParams(hex('01 01 41 31  01 01 41 32'), into)).toBe(2);
    expect(into).toEqual({ A: '2' });
  });

  it('names remembered by position never leak into the next block: same length, other bytes', () => {
    // decodeParams reuses the name string seen at the same position when the bytes match.
    const blocks: Array<Array<[string, string]>> = [
      [['SERVER_NAME', 'a'], ['HTTP_X', '1']],
      [['SERVER_PORT', 'b'], ['HTTP_Y', '2']],
      [['SERVER_PORT', 'c'], ['HTTP_X', '3'], ['HTTP_Y', '4']],
      [['SERVER_NAMf', 'd']],
      [['SERVER_NAME', 'e']],
    ];
    for (const block of blocks) {
      const wire = Buffer.from(encodeParams(block));
      const into: Record<string, string> = {};
      decodeParams(wire, into);
      wire.fill(0); // a name kept as a view of the wire would change with it
      expect(into).toEqual(Object.fromEntries(block));
    }
    const again: Record<string, string> = {};
    decodeParams(encodeParams([['SERVER_PORT', 'z']]), again);
    expect(again).toEqual({ SERVER_PORT: 'z' });
  });

  it('stores __proto__ as an own property, even on a plain object', () => {
    const into: Record<string, string> = {};
    decodeParams(encodeParams([['__proto__', 'x']]), into);
    expect(Object.getOwnPropertyDescriptor(into, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(into)).toBe(Object.prototype);
  });

  it('decodes a pair whose 4-byte length straddles two PARAMS records', () => {
    const name = long(200, 'N');
    const params = encodeParams([
      ['A', 'b'],
      [name, 'v'],
    ]); // 01 01 41 62 | 80 00 00 c8 01 4e...
    const cut = 6; // two of the four name-length bytes in each record
    expect(toHex(params.subarray(4, 8))).toBe('800000c8');
    const wire = concat([
      encodeRecord(RecordType.Params, 1, params.subarray(0, cut)),
      encodeRecord(RecordType.Params, 1, params.subarray(cut)),
      encodeRecord(RecordType.Params, 1),
    ]);
    expect(toHex(wire.subarray(0, 16))).toBe(
      toHex(hex(`
        01 04 00 01            // version 1, type PARAMS, request id 1
        00 06 02 00            // content length 6, padding 2, reserved
        01 01 41 62            // "A" = "b"
        80 00                  // first half of the name length 200
        00 00                  // padding
      `)),
    );

    for (const chunks of [[wire], byteByByte(wire)]) {
      const parts: Uint8Array[] = [];
      const decoder = new RecordDecoder();
      for (const c of chunks) decoder.push(c, (rec) => parts.push(new Uint8Array(rec.content)));
      expect(parts.map((p) => p.length)).toEqual([6, params.length - 6, 0]);

      // One record alone is a truncated stream ...
      expect(() => decodeParams(parts[0]!, {})).toThrow(expect.objectContaining({ code: 'TSGI_FCGI_BAD_PARAMS' }));
      // ... the caller joins them, as the server does before decoding.
      const into: Record<string, string> = {};
      expect(decodeParams(concat(parts), into)).toBe(2);
      expect(into).toEqual({ A: 'b', [name]: 'v' });
    }
  });

  it.each([
    ['name length only', '0e'],
    ['4-byte name length cut short', '80 00 00'],
    ['4-byte value length cut short', '01 80 00 00'],
    ['value runs past the end', '01 05 41 62'],
    ['name runs past the end', '05 00 41'],
    ['huge 4-byte lengths, a few bytes of data', 'ffffffff ffffffff 00'],
    ['length 0x40000001: only the top bit is a flag', 'c0000001 00 41'],
    ['good pair, then a stray byte', '01 01 41 62 01'],
  ])('truncated or over-long: %s', (_name, wireHex) => {
    expect(() => decodeParams(hex(wireHex), {})).toThrow(
      expect.objectContaining({ name: 'ProtocolError', code: 'TSGI_FCGI_BAD_PARAMS' }),
    );
  });

  it('empty params decode to nothing', () => {
    expect(decodeParams(new Uint8Array(0), {})).toBe(0);
  });

  it('maxPairs: a request error (431), not a broken stream', () => {
    const wire = encodeParams([
      ['A', '1'],
      ['B', '2'],
      ['C', '3'],
    ]);
    expect(decodeParams(wire, {}, { maxPairs: 3 })).toBe(3);
    let err: unknown;
    try {
      decodeParams(wire, {}, { maxPairs: 2 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ code: 'TSGI_FCGI_TOO_MANY_PARAMS', status: 431 });
  });
});
