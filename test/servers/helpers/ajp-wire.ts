// AJP13 from the web server's side, for tests: a raw client that speaks to tsgi as httpd's
// mod_proxy_ajp does (FORWARD_REQUEST, the unasked first body packet, one body packet per
// GET_BODY_CHUNK, an empty packet at the end), and a tap observer that decodes what a real web
// server and tsgi say to each other. Built on the project's codec; every wait is bounded.

import { Buffer } from 'node:buffer';
import net from 'node:net';
import {
  type ContainerPacket,
  decodeBodyChunk,
  decodeContainerPacket,
  decodeForwardRequest,
  encodeBodyPacket,
  encodeForwardRequest,
  type ForwardRequest,
  type ForwardRequestInit,
  PacketDecoder,
} from '../../../src/protocols/ajp/codec.js';
import { DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE, PrefixCode, READ_BODY_OVERHEAD } from '../../../src/protocols/ajp/constants.js';
import { within } from './daemon.js';
import type { Direction, TapConnection } from './tap.js';

export interface AjpTarget {
  host?: string;
  port: number;
}

/** What came back for one request, as httpd would see it. */
export interface Exchange {
  status: number;
  message: string;
  headers: Array<[string, string]>;
  header(name: string): string[];
  body: Buffer;
  /** Data bytes of each SEND_BODY_CHUNK, in order. */
  bodyPackets: number[];
  /** Whole packet sizes (header included) of each SEND_BODY_CHUNK. */
  bodyPacketSizes: number[];
  /** The size asked for by each GET_BODY_CHUNK. */
  getBody: number[];
  /** Empty SEND_BODY_CHUNKs: "flush now" to httpd. */
  flushes: number;
  /** GET_BODY_CHUNKs that came after the empty end-of-body packet (httpd: "read after end"). */
  asksAfterEnd: number;
  end: { reuse: boolean } | null;
  /** Packet types in arrival order: headers, body, flush, get-body, end, cpong. */
  sequence: string[];
}

export interface ExchangeOptions {
  /**
   * Body with a Content-Length (sent as httpd does: the first packet unasked, then one packet of
   * up to packetSize - 6 bytes per GET_BODY_CHUNK).
   */
  body?: Uint8Array;
  /** Chunked body: nothing unasked; one element per GET_BODY_CHUNK, then the empty packet. */
  chunks?: Uint8Array[];
  /** Packet size the "web server" uses for body packets (default 8192). */
  packetSize?: number;
  /** Bound on each wait (ms). */
  ms?: number;
}

/** A raw AJP13 connection to tsgi, from the web server's side. */
export class AjpClient {
  readonly socket: net.Socket;
  /** Every packet received on this connection, decoded, in order. */
  readonly received: ContainerPacket[] = [];
  /** Whole sizes (header included) of the packets in `received`. */
  readonly sizes: number[] = [];
  /** A decoding error: tsgi sent something httpd would reject. */
  error: Error | null = null;
  private readonly queue: Array<{ packet: ContainerPacket; size: number }> = [];
  private wake: (() => void) | null = null;
  private isClosed = false;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket, maxPacketSize: number) {
    this.socket = socket;
    const decoder = new PacketDecoder({ maxPacketSize, magic: 'container' });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (payload) => {
          const packet = decodeContainerPacket(payload);
          // The decoder's payload may be a view of the chunk: copy body data out.
          if (packet.type === 'body') packet.data = Buffer.from(packet.data);
          this.received.push(packet);
          this.sizes.push(payload.length + 4);
          this.queue.push({ packet, size: payload.length + 4 });
        });
      } catch (err) {
        this.error = err as Error;
        socket.destroy();
      }
      this.notify();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.notify();
        resolve();
      }),
    );
  }

  static connect(target: AjpTarget, o: { maxPacketSize?: number; ms?: number } = {}): Promise<AjpClient> {
    const socket = net.connect({ host: target.host ?? '127.0.0.1', port: target.port });
    const client = new AjpClient(socket, o.maxPacketSize ?? MAX_PACKET_SIZE);
    const connected = new Promise<AjpClient>((resolve, reject) => {
      socket.once('connect', () => resolve(client));
      socket.once('error', reject);
    });
    return within(connected, o.ms ?? 5_000, `connect to AJP port ${target.port}`);
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  send(...packets: Uint8Array[]): void {
    this.socket.write(Buffer.concat(packets));
  }

  /** FORWARD_REQUEST with plain defaults (GET / from 127.0.0.1 to localhost:80). */
  forward(init: ForwardRequestInit = {}): void {
    this.send(encodeForwardRequest(init));
  }

  /** The next packet from tsgi; rejects when the connection closes first or after `ms`. */
  async next(ms = 5_000, what = 'the next packet'): Promise<ContainerPacket> {
    return (await this.nextSized(ms, what)).packet;
  }

  async nextSized(ms = 5_000, what = 'the next packet'): Promise<{ packet: ContainerPacket; size: number }> {
    const wait = async () => {
      for (;;) {
        const item = this.queue.shift();
        if (item) return item;
        if (this.error) throw this.error;
        if (this.isClosed) throw new Error(`connection closed while waiting for ${what}`);
        await new Promise<void>((r) => (this.wake = r));
      }
    };
    return within(wait(), ms, what);
  }

  /** Resolves with the packets that arrived within `ms` (the test asserts there were none). */
  async quietFor(ms: number): Promise<ContainerPacket[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0).map((i) => i.packet);
  }

  /** Resolves once tsgi closed the connection; rejects after `ms`. */
  waitClosed(ms = 5_000, what = 'tsgi to close the connection'): Promise<void> {
    return within(this.closed, ms, what);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** One request run as httpd runs it: body packets as asked, the response collected to END_RESPONSE. */
  async exchange(req: ForwardRequestInit, o: ExchangeOptions = {}): Promise<Exchange> {
    const packetData = (o.packetSize ?? DEFAULT_PACKET_SIZE) - READ_BODY_OVERHEAD;
    const ms = o.ms ?? 10_000;
    let pieces: Uint8Array[] = [];
    if (o.chunks) pieces = o.chunks.slice();
    else if (o.body) for (let at = 0; at < o.body.length; at += packetData) pieces.push(o.body.subarray(at, at + packetData));
    const first = o.chunks ? undefined : pieces.shift();
    this.send(encodeForwardRequest(req), ...(first ? [encodeBodyPacket(first)] : []));
    const ex: Exchange = {
      status: 0,
      message: '',
      headers: [],
      header: (name) => ex.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v),
      body: Buffer.alloc(0),
      bodyPackets: [],
      bodyPacketSizes: [],
      getBody: [],
      flushes: 0,
      asksAfterEnd: 0,
      end: null,
      sequence: [],
    };
    const body: Buffer[] = [];
    let bodyEnded = false;
    for (;;) {
      const { packet: p, size } = await this.nextSized(ms, `the response to ${req.method ?? 'GET'} ${req.requestUri ?? '/'}`);
      ex.sequence.push(p.type === 'body' && p.data.length === 0 ? 'flush' : p.type);
      if (p.type === 'headers') {
        ex.status = p.status;
        ex.message = p.message;
        ex.headers = p.headers;
      } else if (p.type === 'body' && p.data.length === 0) {
        ex.flushes++;
      } else if (p.type === 'body') {
        body.push(Buffer.from(p.data));
        ex.bodyPackets.push(p.data.length);
        ex.bodyPacketSizes.push(size);
      } else if (p.type === 'get-body') {
        ex.getBody.push(p.size);
        if (bodyEnded) ex.asksAfterEnd++;
        const piece = pieces.shift();
        if (piece && piece.length > 0) this.send(encodeBodyPacket(piece));
        else {
          bodyEnded = true;
          this.send(encodeBodyPacket(new Uint8Array(0)));
        }
      } else if (p.type === 'end') {
        ex.end = { reuse: p.reuse };
        break;
      }
    }
    ex.body = Buffer.concat(body);
    return ex;
  }
}

// ---------------------------------------------------------------------------------------------
// A tap observer: what a web server sends tsgi over AJP, and what comes back.

export type WireEvent =
  | { conn: number; dir: 'up'; type: 'forward'; size: number; request: ForwardRequest }
  | { conn: number; dir: 'up'; type: 'body'; size: number; data: number }
  | { conn: number; dir: 'up'; type: 'cping' | 'shutdown' | 'other'; size: number }
  | { conn: number; dir: 'down'; type: ContainerPacket['type'] | 'flush'; size: number; data?: number; reuse?: boolean; status?: number; asked?: number };

export interface AjpWire {
  observe: (conn: TapConnection, dir: Direction, chunk: Buffer) => void;
  readonly events: WireEvent[];
  /** The FORWARD_REQUESTs seen, decoded. */
  readonly requests: ForwardRequest[];
  /** Decoding errors (the tap forwards the bytes anyway). */
  readonly errors: string[];
  clear(): void;
}

/** Decodes both directions of every tapped connection; `maxPacketSize` bounds what is accepted. */
export function ajpWire(maxPacketSize = MAX_PACKET_SIZE): AjpWire {
  const events: WireEvent[] = [];
  const requests: ForwardRequest[] = [];
  const errors: string[] = [];
  // `body`: body packets on their way up, as tsgi counts them: the first one httpd sends unasked
  // (Content-Length > 0), and one per GET_BODY_CHUNK. Not "until END_RESPONSE": the unasked
  // packet may cross the tap after a response that did not wait for it (a refused request).
  const state = new Map<number, { up: PacketDecoder; down: PacketDecoder; body: number; broken: boolean }>();
  const observe = (conn: TapConnection, dir: Direction, chunk: Buffer) => {
    let s = state.get(conn.id);
    if (!s) {
      s = {
        up: new PacketDecoder({ maxPacketSize, magic: 'server' }),
        down: new PacketDecoder({ maxPacketSize, magic: 'container' }),
        body: 0,
        broken: false,
      };
      state.set(conn.id, s);
    }
    if (s.broken) return;
    const st = s;
    try {
      if (dir === 'up') {
        st.up.push(chunk, (payload) => {
          const size = payload.length + 4;
          if (st.body > 0) {
            st.body--;
            events.push({ conn: conn.id, dir, type: 'body', size, data: decodeBodyChunk(payload).length });
          } else if (payload[0] === PrefixCode.ForwardRequest) {
            const request = decodeForwardRequest(Buffer.from(payload));
            requests.push(request);
            const chunked = request.headers.some(([n]) => n.toLowerCase() === 'transfer-encoding');
            const length = request.headers.find(([n]) => n.toLowerCase() === 'content-length')?.[1];
            if (!chunked && length !== undefined && Number(length) > 0) st.body = 1;
            events.push({ conn: conn.id, dir, type: 'forward', size, request });
          } else if (payload[0] === PrefixCode.CPing) events.push({ conn: conn.id, dir, type: 'cping', size });
          else if (payload[0] === PrefixCode.Shutdown) events.push({ conn: conn.id, dir, type: 'shutdown', size });
          else events.push({ conn: conn.id, dir, type: 'other', size });
        });
      } else {
        st.down.push(chunk, (payload) => {
          const p = decodeContainerPacket(payload);
          const size = payload.length + 4;
          if (p.type === 'end') {
            events.push({ conn: conn.id, dir, type: 'end', size, reuse: p.reuse });
          } else if (p.type === 'body') events.push({ conn: conn.id, dir, type: p.data.length === 0 ? 'flush' : 'body', size, data: p.data.length });
          else if (p.type === 'headers') events.push({ conn: conn.id, dir, type: 'headers', size, status: p.status });
          else if (p.type === 'get-body') {
            st.body++;
            events.push({ conn: conn.id, dir, type: 'get-body', size, asked: p.size });
          } else events.push({ conn: conn.id, dir, type: p.type, size });
        });
      }
    } catch (err) {
      st.broken = true;
      errors.push(`conn ${conn.id} ${dir}: ${(err as Error).message}`);
    }
  };
  return {
    observe,
    events,
    requests,
    errors,
    clear() {
      events.length = 0;
      requests.length = 0;
      errors.length = 0;
    },
  };
}

/** One line per event, for logs: "#1 up forward GET /x", "#1 down body 8184". */
export function describeEvents(events: WireEvent[]): string[] {
  return events.map((e) => {
    const head = `#${e.conn} ${e.dir} ${e.type}`;
    if (e.type === 'forward') return `${head} ${e.request.method} ${e.request.requestUri} (${e.size} B)`;
    if (e.dir === 'up' && e.type === 'body') return `${head} ${e.data} B`;
    if (e.dir === 'down') {
      if (e.type === 'body') return `${head} ${e.data} B`;
      if (e.type === 'headers') return `${head} ${e.status}`;
      if (e.type === 'get-body') return `${head} ${e.asked}`;
      if (e.type === 'end') return `${head} reuse=${e.reuse ? 1 : 0}`;
    }
    return head;
  });
}
