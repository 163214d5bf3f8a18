// What a web server actually sends a FastCGI app (and gets back), decoded from a tap with the
// project's own codec: BEGIN_REQUEST role and flags, how PARAMS and STDIN are split into records,
// whether STDIN is closed by an empty record, END_REQUEST statuses, ABORT_REQUEST.

import { decodeBeginRequest, decodeEndRequest, decodeParams, RecordDecoder } from '../../../src/protocols/fastcgi/codec.js';
import { RecordType } from '../../../src/protocols/fastcgi/constants.js';
import type { Direction, TapConnection } from './tap.js';

export interface ObservedRequest {
  conn: number;
  requestId: number;
  role: number;
  flags: number;
  paramsRecords: number;
  paramsBytes: number;
  /** Largest single PARAMS record (content bytes). */
  paramsMaxRecord: number;
  params: Record<string, string>;
  /** Names in the order sent, repeats kept (nginx < 1.23 repeats HTTP_* for repeated headers). */
  paramNames: string[];
  stdinRecords: number;
  stdinBytes: number;
  /** An empty STDIN record closed the body. */
  stdinEnded: boolean;
  /** That empty STDIN record came after the app's END_REQUEST (the app answered first). */
  stdinEndedAfterEnd: boolean;
  aborted: boolean;
  stdoutBytes: number;
  end?: { appStatus: number; protocolStatus: number };
}

export interface FcgiWire {
  observe: (conn: TapConnection, dir: Direction, chunk: Buffer) => void;
  readonly requests: ObservedRequest[];
  /** Management records (request id 0) seen either way, by type. */
  readonly management: Array<{ dir: Direction; type: number }>;
  /** Decoding errors (the tap forwards the bytes anyway). */
  readonly errors: string[];
  clear(): void;
}

export function fcgiWire(): FcgiWire {
  const decoders = new Map<string, RecordDecoder>();
  const open = new Map<string, ObservedRequest>(); // `${conn}:${id}`
  const paramsBuf = new Map<string, Buffer[]>();
  const w: FcgiWire = {
    requests: [],
    management: [],
    errors: [],
    clear() {
      w.requests.length = 0;
      w.management.length = 0;
      w.errors.length = 0;
    },
    observe(conn, dir, chunk) {
      const dk = `${conn.id}:${dir}`;
      let dec = decoders.get(dk);
      if (!dec) decoders.set(dk, (dec = new RecordDecoder()));
      try {
        dec.push(chunk, (rec) => {
          const key = `${conn.id}:${rec.requestId}`;
          if (rec.requestId === 0) {
            w.management.push({ dir, type: rec.type });
            return;
          }
          if (dir === 'up' && rec.type === RecordType.BeginRequest) {
            const { role, flags } = decodeBeginRequest(rec.content);
            const r: ObservedRequest = {
              conn: conn.id,
              requestId: rec.requestId,
              role,
              flags,
              paramsRecords: 0,
              paramsBytes: 0,
              paramsMaxRecord: 0,
              params: {},
              paramNames: [],
              stdinRecords: 0,
              stdinBytes: 0,
              stdinEnded: false,
              stdinEndedAfterEnd: false,
              aborted: false,
              stdoutBytes: 0,
            };
            open.set(key, r);
            paramsBuf.set(key, []);
            w.requests.push(r);
            return;
          }
          const r = open.get(key);
          if (!r) return;
          switch (rec.type) {
            case RecordType.Params: {
              r.paramsRecords++;
              if (rec.content.length === 0) {
                const all = Buffer.concat(paramsBuf.get(key) ?? []);
                const pairs: Record<string, string> = Object.create(null) as Record<string, string>;
                decodeParams(all, pairs);
                r.params = pairs;
                r.paramNames = namesInOrder(all);
              } else {
                r.paramsBytes += rec.content.length;
                r.paramsMaxRecord = Math.max(r.paramsMaxRecord, rec.content.length);
                paramsBuf.get(key)!.push(Buffer.from(rec.content));
              }
              return;
            }
            case RecordType.Stdin:
              r.stdinRecords++;
              r.stdinBytes += rec.content.length;
              if (rec.content.length === 0) {
                r.stdinEnded = true;
                r.stdinEndedAfterEnd = r.end !== undefined;
              }
              return;
            case RecordType.AbortRequest:
              r.aborted = true;
              return;
            case RecordType.Stdout:
              r.stdoutBytes += rec.content.length;
              return;
            case RecordType.EndRequest:
              // Kept open: the web server may close STDIN after this (a new BEGIN_REQUEST with the
              // same id replaces the entry).
              r.end = decodeEndRequest(rec.content);
              return;
            default:
          }
        });
      } catch (e) {
        w.errors.push(`${dk}: ${(e as Error).message}`);
      }
    },
  };
  return w;
}

/** Param names in wire order (decodeParams keeps only the last of a repeated name). */
function namesInOrder(buf: Buffer): string[] {
  const names: string[] = [];
  let pos = 0;
  const len = (): number => {
    const b = buf[pos]!;
    if (b < 0x80) {
      pos += 1;
      return b;
    }
    const n = buf.readUInt32BE(pos) & 0x7fffffff;
    pos += 4;
    return n;
  };
  while (pos < buf.length) {
    const nl = len();
    const vl = len();
    names.push(buf.toString('latin1', pos, pos + nl));
    pos += nl + vl;
  }
  return names;
}

export const FCGI_KEEP_CONN_FLAG = 1;
export const ROLE_NAMES: Record<number, string> = { 1: 'RESPONDER', 2: 'AUTHORIZER', 3: 'FILTER' };

/** One line per request, for the test log and the report. */
export function describeRequest(r: ObservedRequest): string {
  const stdin = r.stdinEnded
    ? `${r.stdinBytes} B in ${r.stdinRecords} STDIN records (empty one last${r.stdinEndedAfterEnd ? ', after END_REQUEST' : ''})`
    : `${r.stdinBytes} B STDIN, not ended`;
  return (
    `conn ${r.conn} id ${r.requestId} ${ROLE_NAMES[r.role] ?? r.role} flags=${r.flags}` +
    ` params ${r.paramsBytes} B in ${r.paramsRecords} records (max ${r.paramsMaxRecord}), ${stdin}` +
    `${r.aborted ? ', ABORT_REQUEST' : ''}, end=${r.end ? `${r.end.appStatus}/${r.end.protocolStatus}` : 'none'}`
  );
}
