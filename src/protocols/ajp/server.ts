// AJP13 from the container's side (Tomcat's "AJPv13" reference; httpd mod_proxy_ajp): a
// FORWARD_REQUEST becomes the environ, body packets are asked for with GET_BODY_CHUNK as the app
// reads, and the response goes back as SEND_HEADERS, SEND_BODY_CHUNK and END_RESPONSE.

import { timingSafeEqual } from 'node:crypto';
import type net from 'node:net';
import { ClientGoneError, ProtocolError, RequestError } from '../../errors.js';
import { addHeaderVar, newVars, percentDecode } from '../../runner/environ.js';
import type { Gateway } from '../../runner/gateway.js';
import { refusingApp } from '../../runner/gateway.js';
import { RequestAbort } from '../../runner/abort.js';
import { BodyQueue } from '../../runner/input.js';
import type { ResponseSink } from '../../runner/sink.js';
import { statusCode } from '../../runner/start-response.js';
import type { App, HeaderList } from '../../types.js';
import type { ProtocolServer } from '../../net/protocols.js';
import { createStreamServer, logProtocolError, writeList, type Connection } from '../../net/stream-server.js';
import { SocketReader } from '../../net/socket-reader.js';
import {
  decodeBodyChunk,
  decodeForwardRequest,
  encodeCPong,
  encodeEndResponse,
  encodeGetBodyChunk,
  encodeResponse,
  PacketDecoder,
  type ForwardRequest,
} from './codec.js';
import { DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE, PrefixCode, READ_BODY_OVERHEAD, ReqAttributeName } from './constants.js';

export interface AjpOptions {
  /** The shared secret (mod_proxy_ajp `secret=`, mod_jk `worker.*.secret`): required when set. */
  secret?: string;
  /** Packet size (ProxyIOBufferSize / max_packet_size): 8192 by default, at most 65536. */
  packetSize?: number;
  /** req_attribute names let through (as environ['tsgi.ajp_attributes']); others get a 403. */
  allowedAttributes?: RegExp;
  /** Obey the SHUTDOWN packet (default: ignored and logged). */
  allowShutdown?: boolean;
}

/** Attributes httpd sends on every request, and the CGI variables they become. */
const KNOWN_ATTRIBUTES: Record<string, string> = {
  [ReqAttributeName.RemotePort]: 'REMOTE_PORT',
  [ReqAttributeName.LocalAddr]: 'SERVER_ADDR',
  [ReqAttributeName.SslProtocol]: 'SSL_PROTOCOL',
};

/**
 * Attributes a web server sends on its own, with no CGI name: let through to
 * environ['tsgi.ajp_attributes'] without the allow-list, as Tomcat's AjpProcessor does. mod_jk
 * sends JK_LB_ACTIVATION (ACT, DIS or STP) on every request, load balancer or not.
 */
const PASSED_ATTRIBUTES = new Set(['JK_LB_ACTIVATION']);

/**
 * SEND_BODY_CHUNK of no data: httpd's mod_proxy_ajp and mod_jk read it as "flush now". Neither
 * passes body packets on to the client before the response ends unless told (mod_proxy_ajp's
 * flushpackets, mod_jk's +FlushPackets), which would hold back a streamed response (PEP 3333:
 * no block may be delayed); this packet goes out whenever the app pauses between chunks.
 */
const FLUSH = Buffer.from([0x41, 0x42, 0x00, 0x04, PrefixCode.SendBodyChunk, 0x00, 0x00, 0x00]);

/**
 * GET_BODY_CHUNKs outstanding at most for a body with a Content-Length. httpd answers each with
 * one body packet (what it reads from the client, up to packet size - 6 bytes), in order. Asking
 * for several in one write spares a round trip per packet: httpd finds the next request waiting
 * instead of sleeping on the socket, and tsgi reads several packets per wake-up (a 1 MiB upload
 * in 8 KiB packets behind httpd: 2.5-3.1 ms of tsgi CPU and 3.4-4.7 ms of httpd's with one
 * outstanding, 0.9-1.2 and 1.6-2.0 ms with the queue's room outstanding). In practice the bound
 * is the queue's room (bodyHighWaterMark, 256 KiB: 31 asks in 8 KiB packets, 3 in 64 KiB ones);
 * this is a ceiling for a larger one. Never more are outstanding than the body can still fill
 * (each packet brings at least a byte and at most packet size - 6), so none reaches the end of
 * the body, and one at a time for a chunked body, whose end is not known. They are refilled by
 * halves (see askForBody). The price: a response sent before the body is read waits until httpd
 * has forwarded what was asked for.
 */
export const MAX_ASKS_AHEAD = 32;

export function createAjpServer(gw: Gateway, opts: AjpOptions = {}): ProtocolServer {
  const packetSize = opts.packetSize ?? DEFAULT_PACKET_SIZE;
  if (!Number.isInteger(packetSize) || packetSize < 1024 || packetSize > MAX_PACKET_SIZE) {
    throw new RangeError(`ajp: packet size must be 1024..${MAX_PACKET_SIZE}, got ${packetSize}`);
  }
  const cfg: Config = {
    packetSize,
    // As bytes (latin-1, one char each), the way httpd sends it: made once, compared per request.
    secret: opts.secret === undefined ? undefined : Buffer.from(opts.secret, 'latin1'),
    allowed: opts.allowedAttributes,
    allowShutdown: opts.allowShutdown ?? false,
    askFull: encodeGetBodyChunk(packetSize - READ_BODY_OVERHEAD),
  };
  return createStreamServer(gw, 'ajp', (socket) => new AjpConnection(gw, socket, cfg));
}

interface Config {
  packetSize: number;
  secret: Buffer | undefined;
  allowed: RegExp | undefined;
  allowShutdown: boolean;
  /** GET_BODY_CHUNK for a whole packet's worth (packet size - 6), the usual one: made once. */
  askFull: Uint8Array;
}

/**
 * The secret check, in constant time (node:crypto's timingSafeEqual): the time depends on the
 * secret's length only, never on where or whether the given one differs. A given secret of
 * another length is refused after the same comparison of the secret with itself. No hashing
 * per request: a sha256 of the given secret cost more than decoding the rest of the
 * FORWARD_REQUEST. Both are byte strings (latin-1, one char per byte).
 */
export function secretMatches(expected: Buffer | string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const want = typeof expected === 'string' ? Buffer.from(expected, 'latin1') : expected;
  const got = Buffer.from(given, 'latin1');
  if (got.length !== want.length) {
    timingSafeEqual(want, want);
    return false;
  }
  return timingSafeEqual(want, got);
}

/** Port numbers as strings: one entry per port httpd listens on. */
const portStrings: string[] = [];
function portString(port: number): string {
  return (portStrings[port] ??= String(port));
}

const State = { Idle: 0, Request: 1 } as const;

class AjpConnection implements Connection, ResponseSink {
  private readonly decoder: PacketDecoder;
  private state: number = State.Idle;
  requests = 0;
  private input: BodyQueue | null = null;
  private ac = new RequestAbort();
  /** Body packets on their way: the unsolicited first one, and those asked for. */
  private pending = 0;
  private bodyEnded = false;
  /** Request body bytes received (the limit applies to chunked bodies as they come). */
  private bodyReceived = 0;
  /** A FLUSH packet is due once the app pauses (setImmediate after a body write). */
  private flushTimer: NodeJS.Immediate | null = null;
  private readonly flush = () => {
    this.flushTimer = null;
    if (this.responding && !this.dead) this.socket.write(FLUSH);
  };
  private responding = false; // the runner has the request
  private draining = false;
  private dead = false;
  private drainWait: Promise<void> | null = null;
  private release: (() => void) | null = null;
  private readonly onPacket = (p: Uint8Array) => this.packet(p);
  private readonly gw: Gateway;
  private readonly socket: net.Socket;
  private readonly cfg: Config;
  /** The socket's bytes, read into a shared buffer: body data kept past a chunk goes through keep(). */
  private readonly reader: SocketReader;

  constructor(gw: Gateway, socket: net.Socket, cfg: Config) {
    this.gw = gw;
    this.socket = socket;
    this.cfg = cfg;
    this.decoder = new PacketDecoder({ maxPacketSize: cfg.packetSize, magic: 'server' });
    this.reader = new SocketReader(socket, (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, this.onPacket);
      } catch (err) {
        logProtocolError(gw, 'ajp', err, socket.remoteAddress);
        this.destroy();
      }
    });
    socket.on('drain', () => this.wake());
    socket.on('close', () => this.closed());
  }

  idle(): boolean {
    return this.state === State.Idle;
  }

  drain(): void {
    // An idle connection is left for httpd to use once more rather than closed under it: closing
    // it could cross a request already on its way, and mod_proxy_ajp does not resend one it has
    // sent. Its next CPING is answered by closing (httpd with ping= then retries on a new
    // connection), its next request with END_RESPONSE reuse = 0; the process exit closes the rest.
    this.draining = true;
  }

  private packet(payload: Uint8Array): void {
    if (this.state === State.Request) return this.bodyPacket(payload);
    const code = payload[0];
    switch (code) {
      case PrefixCode.ForwardRequest:
        return this.forward(decodeForwardRequest(payload));
      case PrefixCode.CPing:
        if (this.draining) this.socket.end();
        else this.socket.write(encodeCPong());
        return;
      case PrefixCode.Shutdown:
        if (this.cfg.allowShutdown) {
          this.gw.log.warn('ajp: SHUTDOWN received and allowed; stopping');
          process.kill(process.pid, 'SIGTERM');
        } else this.gw.log.warn('ajp: SHUTDOWN packet ignored (not allowed)');
        return;
      default:
        throw new ProtocolError('TSGI_AJP_UNEXPECTED_PACKET', `ajp: unexpected packet type ${code} between requests`);
    }
  }

  /** Server-bound packets during a request are request body data ("Request Packet Structure"). */
  private bodyPacket(payload: Uint8Array): void {
    if (this.pending === 0) throw new ProtocolError('TSGI_AJP_UNEXPECTED_PACKET', 'ajp: a packet arrived that was not asked for');
    this.pending--;
    const data = decodeBodyChunk(payload);
    const q = this.input!;
    this.bodyReceived += data.length;
    if (this.bodyReceived > this.gw.limits.maxBodyBytes && !q.complete) {
      // A chunked body has no length to check up front: it is refused once it passes the limit.
      const err = new RequestError('TSGI_BODY_TOO_LARGE', `ajp: request body is over the limit of ${this.gw.limits.maxBodyBytes} bytes`, 413);
      this.gw.log.warn({ code: err.code }, err.message);
      q.fail(err);
      this.bodyEnded = true;
    } else if (data.length === 0) {
      this.bodyEnded = true;
      q.end();
    } else if (q.push(this.reader.keep(data)) && !q.complete) this.askForBody();
    if (q.complete) this.bodyEnded = true;
    if (!this.responding) this.finished();
  }

  /**
   * GET_BODY_CHUNKs, in one write: for a chunked body one when none is outstanding; for a body
   * with a Content-Length enough to have min(MAX_ASKS_AHEAD, packets the body still needs at
   * most, packets the queue has room for, at least 1) outstanding, once no more than half of
   * that is. Each asks for packet size - 6 bytes, or what the body still lacks beyond the ones
   * before it (mod_jk sends no more than asked; mod_proxy_ajp sends what it has).
   */
  private askForBody(): void {
    if (this.bodyEnded || !this.responding) return;
    const q = this.input!;
    const room = this.cfg.packetSize - READ_BODY_OVERHEAD;
    const remaining = q.remaining;
    if (!Number.isFinite(remaining)) {
      if (this.pending > 0) return;
      this.pending = 1;
      this.socket.write(this.cfg.askFull);
      return;
    }
    const queueRoom = Math.max(1, Math.floor((this.gw.limits.bodyHighWaterMark - q.buffered) / room));
    const target = Math.min(MAX_ASKS_AHEAD, Math.ceil(remaining / room), queueRoom);
    // Refilled by halves: asked again once half of what may be outstanding came in, so that a
    // write of GET_BODY_CHUNKs covers several reads of body packets, not one each (a 1 MiB upload
    // behind httpd: 8.7 writes instead of 15.4, 4 % less CPU).
    if (this.pending >= target || this.pending * 2 > target) return;
    const asks: Uint8Array[] = [];
    for (; this.pending < target; this.pending++) {
      const size = Math.min(room, remaining - this.pending * room);
      asks.push(size === room ? this.cfg.askFull : encodeGetBodyChunk(size));
    }
    this.socket.write(asks.length === 1 ? asks[0]! : Buffer.concat(asks));
  }

  private forward(req: ForwardRequest): void {
    this.requests++;
    this.state = State.Request;
    this.responding = true;
    this.bodyEnded = false;
    this.bodyReceived = 0;
    this.ac = new RequestAbort();
    let refuse: RequestError | null = null;
    const vars = this.environ(req);
    if (this.cfg.secret !== undefined && !secretMatches(this.cfg.secret, req.attributes.secret)) {
      refuse = new RequestError('TSGI_AJP_BAD_SECRET', `ajp: ${req.attributes.secret === undefined ? 'missing' : 'wrong'} secret`, 403);
    }
    const extra: Record<string, string> = {};
    for (const [name, value] of req.requestAttributes) {
      const known = KNOWN_ATTRIBUTES[name];
      if (known) vars[known] = value;
      else if (PASSED_ATTRIBUTES.has(name) || this.cfg.allowed?.test(name)) extra[name] = value;
      else refuse ??= new RequestError('TSGI_AJP_BAD_ATTRIBUTE', `ajp: request attribute '${name}' is not allowed`, 403);
    }
    // Transfer-Encoding wins over Content-Length (CVE-2022-26377): the body is then chunked,
    // and httpd sends no first packet.
    const chunked = vars.HTTP_TRANSFER_ENCODING !== undefined;
    if (chunked) delete vars.CONTENT_LENGTH;
    let length: number | undefined;
    const cl = vars.CONTENT_LENGTH;
    if (cl !== undefined && !chunked) {
      if (!/^[0-9]{1,15}$/.test(cl)) refuse ??= new RequestError('TSGI_BAD_CONTENT_LENGTH', 'ajp: invalid Content-Length', 400);
      else length = Number(cl);
    } else if (!chunked) length = 0;
    // httpd sends the first body packet unasked when Content-Length > 0.
    this.pending = length !== undefined && length > 0 ? 1 : 0;
    if (length !== undefined && length > this.gw.limits.maxBodyBytes) {
      refuse ??= new RequestError('TSGI_BODY_TOO_LARGE', `ajp: request body of ${length} bytes is over the limit of ${this.gw.limits.maxBodyBytes}`, 413);
    }
    if (refuse) this.gw.log.warn({ code: refuse.code }, refuse.message);
    (vars as Record<string, unknown>)['tsgi.ajp_attributes'] = extra;
    this.input = new BodyQueue({
      length: refuse ? 0 : length,
      highWaterMark: this.gw.limits.bodyHighWaterMark,
      onDemand: () => this.askForBody(),
    });
    if (length === 0 || refuse) this.bodyEnded = this.pending === 0;
    const app: App | undefined = refuse ? refusingApp(refuse) : undefined;
    void this.gw.handle(vars, this.input, this, this.ac, undefined, app);
    // A chunked body starts with our request for it.
    if (chunked && !refuse) this.askForBody();
  }

  private environ(req: ForwardRequest): Record<string, string> {
    const a = req.attributes;
    const vars = newVars();
    vars.REQUEST_METHOD = req.method;
    vars.SERVER_PROTOCOL = req.protocol;
    vars.REQUEST_URI = a.queryString ? `${req.requestUri}?${a.queryString}` : req.requestUri;
    vars.SCRIPT_NAME = '';
    vars.PATH_INFO = percentDecode(req.requestUri);
    vars.QUERY_STRING = a.queryString ?? '';
    vars.REMOTE_ADDR = req.remoteAddr;
    vars.SERVER_NAME = req.serverName;
    vars.SERVER_PORT = portString(req.serverPort);
    vars.GATEWAY_INTERFACE = 'CGI/1.1';
    if (req.remoteHost !== null && req.remoteHost !== '') vars.REMOTE_HOST = req.remoteHost;
    if (req.isSsl) vars.HTTPS = 'on';
    if (a.remoteUser !== undefined) vars.REMOTE_USER = a.remoteUser;
    if (a.authType !== undefined) vars.AUTH_TYPE = a.authType;
    if (a.sslCipher !== undefined) vars.SSL_CIPHER = a.sslCipher;
    if (a.sslSession !== undefined) vars.SSL_SESSION_ID = a.sslSession;
    if (a.sslCert !== undefined) vars.SSL_CLIENT_CERT = a.sslCert;
    if (a.sslKeySize !== undefined) vars.SSL_CIPHER_USEKEYSIZE = String(a.sslKeySize);
    if (a.route !== undefined) vars.AJP_ROUTE = a.route;
    const headers = req.headers;
    for (let i = 0; i < headers.length; i++) addHeaderVar(vars, headers[i]![0], headers[i]![1]);
    return vars;
  }

  // ResponseSink

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    const code = statusCode(status);
    const list: Uint8Array[] = [];
    // With the whole body at hand, END_RESPONSE goes in the same write: a small response is
    // one buffer (SEND_HEADERS, SEND_BODY_CHUNK, END_RESPONSE), a large one one writev.
    const head = { status: code, message: status.slice(4) || String(code), headers };
    encodeResponse(list, head, chunk, last ? !this.draining : undefined, this.cfg.packetSize);
    if (last) return this.ended(list);
    return this.sendBody(list);
  }

  write(chunk: Uint8Array): void | Promise<void> {
    const list: Uint8Array[] = [];
    encodeResponse(list, null, chunk, undefined, this.cfg.packetSize);
    return this.sendBody(list);
  }

  /** Body packets, then a FLUSH once the app pauses (not while the socket is backed up: see wake). */
  private sendBody(list: Uint8Array[]): void | Promise<void> {
    const p = this.sendList(list);
    if (!p) this.flushTimer ??= setImmediate(this.flush);
    return p;
  }

  end(): void | Promise<void> {
    if (!this.responding) return;
    return this.ended([encodeEndResponse(!this.draining)]);
  }

  abort(_error: Error): void {
    // No END_RESPONSE: httpd sees the backend connection close mid-response and aborts the client's.
    this.destroy();
  }

  /** `list` ends with END_RESPONSE. */
  private ended(list: Uint8Array[]): void | Promise<void> {
    this.responding = false;
    this.cancelFlush();
    const p = this.sendList(list);
    this.finished();
    return p;
  }

  /** After END_RESPONSE: idle again once the first body packet httpd sent unasked is read. */
  private finished(): void {
    // Body packets on their way (the unsolicited first one, those we asked for) must be read
    // before the next FORWARD_REQUEST, or one would be taken for it.
    if (this.responding || this.pending > 0) return;
    if (this.state !== State.Request) return;
    this.state = State.Idle;
    this.input?.discard();
    if (this.draining) this.socket.end();
  }

  /** One write (a writev when `list` has several pieces); a promise while the socket is backed up. */
  private sendList(list: Uint8Array[]): void | Promise<void> {
    if (this.dead || list.length === 0 || writeList(this.socket, list)) return;
    this.drainWait ??= new Promise((resolve) => (this.release = resolve));
    return this.drainWait;
  }

  private wake(): void {
    const r = this.release;
    this.release = null;
    this.drainWait = null;
    if (r && this.responding && !this.dead) this.flushTimer ??= setImmediate(this.flush);
    r?.();
  }

  private cancelFlush(): void {
    if (this.flushTimer === null) return;
    clearImmediate(this.flushTimer);
    this.flushTimer = null;
  }

  private destroy(): void {
    this.socket.destroy();
    this.closed();
  }

  private closed(): void {
    if (this.dead) return;
    this.dead = true;
    this.cancelFlush();
    if (this.state === State.Request) {
      this.input?.fail(new ClientGoneError('ajp: the web server closed the connection'));
      // After END_RESPONSE (still waiting for the unasked first body packet) the response is
      // complete: a hang-up now is no abort of it.
      if (this.responding) this.ac.abort();
    }
    this.wake();
  }
}
