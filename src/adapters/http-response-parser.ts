// Reads back what node:http's ServerResponse writes to its socket: the response head (interim
// 1xx heads skipped), then the body, un-chunked when ServerResponse framed it. Bytes in, a head
// and body pieces out, incrementally (no sockets, no promises: the codec layer of the adapter).

import { ProtocolError } from '../errors.js';
import type { HeaderList } from '../types.js';

export interface ParsedHead {
  code: number;
  /** `200 OK`, as TSGI's startResponse takes it. */
  status: string;
  /** Every header line in order, hop-by-hop ones included (the caller filters). */
  headers: HeaderList;
  /** The body is framed in chunked transfer coding. */
  chunked: boolean;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/[0-9]\.[0-9] ([0-9]{3}) ?(.*)$/;

const State = {
  Head: 0,
  Identity: 1,
  ChunkSize: 2,
  ChunkData: 3,
  ChunkDataEnd: 4,
  Trailers: 5,
  Done: 6,
} as const;
type State = (typeof State)[keyof typeof State];

export class HttpResponseParser {
  head: ParsedHead | undefined;
  private state: State = State.Head;
  private pending: Buffer | null = null; // an incomplete head, size line or trailer
  private chunkLeft = 0;

  /** True once the chunked body's last chunk and trailers went by. */
  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Takes the next bytes and returns the body pieces in them (views, not copies). `onHead` is
   * called once, as soon as the final head is complete.
   */
  push(data: Buffer, onHead: (head: ParsedHead) => void): Buffer[] {
    const out: Buffer[] = [];
    let buf = data;
    if (this.pending) {
      buf = Buffer.concat([this.pending, data]);
      this.pending = null;
    }
    let at = 0;
    while (at < buf.length) {
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(CRLFCRLF, at);
          if (end < 0) {
            this.pending = buf.subarray(at);
            return out;
          }
          const head = parseHead(buf.toString('latin1', at, end));
          at = end + 4;
          // 100 Continue, 102 Processing, 103 Early Hints: interim, the final head follows.
          if (head.code >= 100 && head.code < 200 && head.code !== 101) continue;
          this.head = head;
          this.state = head.chunked ? State.ChunkSize : State.Identity;
          onHead(head);
          break;
        }
        case State.Identity:
          out.push(at === 0 ? buf : buf.subarray(at));
          return out;
        case State.ChunkSize: {
          const nl = buf.indexOf(0x0a, at);
          if (nl < 0) {
            this.pending = buf.subarray(at);
            return out;
          }
          const line = buf.toString('latin1', at, nl).replace(/\r$/, '');
          const m = /^([0-9A-Fa-f]+)(?:[ \t]*;.*)?$/.exec(line);
          if (!m) throw new ProtocolError('TSGI_NODE_BAD_CHUNK', `node adapter: bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
          this.chunkLeft = parseInt(m[1]!, 16);
          at = nl + 1;
          this.state = this.chunkLeft === 0 ? State.Trailers : State.ChunkData;
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.chunkLeft, buf.length - at);
          out.push(buf.subarray(at, at + n));
          at += n;
          this.chunkLeft -= n;
          if (this.chunkLeft === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          // The CRLF after a chunk's data, possibly split across writes.
          const c = buf[at]!;
          at++;
          if (c === 0x0a) this.state = State.ChunkSize;
          else if (c !== 0x0d) throw new ProtocolError('TSGI_NODE_BAD_CHUNK', 'node adapter: chunk data not followed by CRLF');
          break;
        }
        case State.Trailers: {
          // Trailer fields (res.addTrailers) end with an empty line; they are not passed on.
          const nl = buf.indexOf(0x0a, at);
          if (nl < 0) {
            this.pending = buf.subarray(at);
            return out;
          }
          const empty = nl === at || (nl === at + 1 && buf[at] === 0x0d);
          at = nl + 1;
          if (empty) this.state = State.Done;
          break;
        }
        case State.Done:
          // Nothing may follow the last chunk; ServerResponse never writes more.
          return out;
      }
    }
    return out;
  }
}

function parseHead(text: string): ParsedHead {
  const lines = text.split('\r\n');
  const m = STATUS_LINE.exec(lines[0]!);
  if (!m) throw new ProtocolError('TSGI_NODE_BAD_HEAD', `node adapter: bad status line ${JSON.stringify(lines[0]!.slice(0, 60))}`);
  const code = Number(m[1]);
  const headers: HeaderList = [];
  let chunked = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding' && /(^|,)\s*chunked\s*$/i.test(value)) chunked = true;
    headers.push([name, value]);
  }
  return { code, status: `${m[1]} ${m[2]}`, headers, chunked };
}
