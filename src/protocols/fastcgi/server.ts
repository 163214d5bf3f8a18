// FastCGI 1.0 from the application's side: one connection's records in, requests handed to the
// runner, STDOUT/STDERR/END_REQUEST out (spec sections 3-6; Go net/http/fcgi child.go).

import type net from 'node:net';
import { ClientGoneError, ProtocolError, RequestError } from '../../errors.js';
import { cgiHeadText } from '../../runner/cgi-head.js';
import { newVars, parseContentLength } from '../../runner/environ.js';
import { LogErrorStream } from '../../runner/errors-stream.js';
import type { Gateway } from '../../runner/gateway.js';
import { refusingApp } from '../../runner/gateway.js';
import { RequestAbort } from '../../runner/abort.js';
import { BodyQueue } from '../../runner/input.js';
import type { ResponseSink } from '../../runner/sink.js';
import type { HeaderList } from '../../types.js';
import type { ProtocolServer } from '../../net/protocols.js';
import { SocketReader } from '../../net/socket-reader.js';
import { VarsBuilder } from '../name-cache.js';
import { closeAfterWrite, createStreamServer, logProtocolError, parseAddressList, writeList, type Connection } from '../../net/stream-server.js';
import {
  decodeBeginRequest,
  decodeParams,
  encodeEndRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  encodeUnknownType,
  RecordDecoder,
  storeParam,
  type FcgiRecord,
} from './codec.js';
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONNS,
  FCGI_MAX_REQS,
  FCGI_MPXS_CONNS,
  HEADER_LENGTH,
  NULL_REQUEST_ID,
  ProtocolStatus,
  RecordType,
  Role,
} from './constants.js';

export interface FastcgiOptions {
  /** Send wsgi.errors output to the web server as STDERR records too (default true). */
  stderrToWebServer?: boolean;
  /** FCGI_WEB_SERVER_ADDRS: only these peers may connect over TCP (default: the environment's). */
  webServerAddrs?: string;
}

const STREAM_TYPES: ReadonlySet<number> = new Set([RecordType.Stdin, RecordType.Data]);
const ROLE_NAMES: Record<number, string> = { [Role.Responder]: 'RESPONDER', [Role.Authorizer]: 'AUTHORIZER', [Role.Filter]: 'FILTER' };
const END_STDOUT_AND_REQUEST_LENGTH = HEADER_LENGTH * 2 + 8;
/** Bodies of requests sharing a connection may buffer this many times the high-water mark
 * before the socket is paused, so one slow reader does not stall the others. */
const MULTIPLEX_BUFFER_FACTOR = 16;
/** How long a finished request's STDIN may take to end before the connection closes anyway. */
const STDIN_LINGER_MS = 5_000;
/** The params of each request become its environ through here (one at a time: it is synchronous). */
const paramVars = new VarsBuilder();

export function createFastcgiServer(gw: Gateway, opts: FastcgiOptions = {}): ProtocolServer {
  const addrs = opts.webServerAddrs ?? process.env.FCGI_WEB_SERVER_ADDRS;
  const allow = addrs ? parseAddressList(addrs) : undefined;
  return createStreamServer(gw, 'fastcgi', (socket) => new FcgiConnection(gw, socket, opts.stderrToWebServer ?? true), { allow, allowHalfOpen: true });
}

/** One request on a connection, from BEGIN_REQUEST to END_REQUEST. */
class FcgiRequest implements ResponseSink {
  params: Uint8Array[] = [];
  paramsBytes = 0;
  paramsTooLarge = false;
  input: BodyQueue | null = null;
  data: BodyQueue | null = null;
  stdinDone = false;
  ended = false; // END_REQUEST sent
  readonly begun = performance.now();
  readonly ac = new RequestAbort();
  readonly id: number;
  readonly role: number;
  readonly keepConn: boolean;
  private readonly conn: FcgiConnection;

  constructor(conn: FcgiConnection, id: number, role: number, keepConn: boolean) {
    this.conn = conn;
    this.id = id;
    this.role = role;
    this.keepConn = keepConn;
  }

  // ResponseSink: the CGI head and body as STDOUT records.

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    if (this.ended) return;
    const head = cgiHeadText(status, headers);
    const bodyLength = chunk ? chunk.length : 0;
    const content = head.length + bodyLength;
    if (content <= 16384) {
      // Small responses: one buffer, one write, END_REQUEST included when this is all of it.
      const pad = -content & 7;
      const size = HEADER_LENGTH + content + pad + (last ? END_STDOUT_AND_REQUEST_LENGTH : 0);
      const out = Buffer.allocUnsafe(size) as Buffer & { latin1Write(s: string, offset: number): number };
      writeRecordHeader(out, 0, RecordType.Stdout, this.id, content, pad);
      out.latin1Write(head, HEADER_LENGTH);
      if (chunk) out.set(chunk, HEADER_LENGTH + head.length);
      let at = HEADER_LENGTH + content;
      // Zeros byte by byte: a few of them cost less than a call into fill().
      for (let i = 0; i < pad; i++) out[at++] = 0;
      if (last) {
        writeRecordHeader(out, at, RecordType.Stdout, this.id, 0, 0);
        writeRecordHeader(out, at + HEADER_LENGTH, RecordType.EndRequest, this.id, 8, 0);
        for (let i = at + 2 * HEADER_LENGTH; i < size; i++) out[i] = 0; // appStatus 0, FCGI_REQUEST_COMPLETE
        const p = this.conn.send(out);
        this.finish();
        return p;
      }
      return this.conn.send(out);
    }
    const list: Uint8Array[] = [];
    encodeStream(RecordType.Stdout, this.id, Buffer.from(head, 'latin1'), list);
    if (chunk) encodeStream(RecordType.Stdout, this.id, chunk, list);
    return this.conn.sendList(list);
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.ended) return;
    const list: Uint8Array[] = [];
    encodeStream(RecordType.Stdout, this.id, chunk, list);
    return this.conn.sendList(list);
  }

  end(): void | Promise<void> {
    if (this.ended) return;
    const out = Buffer.concat([
      encodeRecord(RecordType.Stdout, this.id),
      encodeEndRequest(this.id, 0, ProtocolStatus.RequestComplete),
    ]);
    const p = this.conn.send(out);
    this.finish();
    return p;
  }

  abort(_error: Error): void {
    if (this.ended) return;
    this.conn.abortRequest(this, false);
  }

  /** wsgi.errors text as STDERR records. */
  stderr = (text: string): void => {
    if (this.ended || !text) return;
    const list: Uint8Array[] = [];
    encodeStream(RecordType.Stderr, this.id, Buffer.from(text, 'utf8'), list);
    void this.conn.sendList(list);
  };

  private finish(): void {
    this.ended = true;
    this.conn.requestEnded(this);
  }
}

class FcgiConnection implements Connection {
  // STDIN and DATA arrive as pieces of records as they come (see RecordDecoder `streams`); the
  // reader decides whether a piece kept for the app is copied (SocketReader.keep).
  private readonly decoder = new RecordDecoder({ streams: STREAM_TYPES });
  /** Requests begun and not yet forgotten (ended, and their STDIN read to its end). */
  private readonly table = new Map<number, FcgiRequest>();
  /** Requests whose END_REQUEST has not gone out. */
  private running = 0;
  requests = 0;
  private drainWaiters: Array<() => void> = [];
  private paused = false;
  private draining = false;
  private closeAfter = false; // a request without FCGI_KEEP_CONN ended, or the peer half-closed
  private dead = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private paramsTimer: NodeJS.Timeout | undefined;
  /** Requests whose params ended in the chunk being decoded: they start once all of it is
   * decoded, so that the STDIN records that came with them (all of a GET's, usually) are in
   * wsgi.input first, and the connection can close the moment the response is out. */
  private ready: Array<{ req: FcgiRequest; vars: Record<string, string>; errors: LogErrorStream; app: ReturnType<typeof refusingApp> | undefined }> = [];
  private readonly onRecord = (rec: FcgiRecord) => this.record(rec);
  private readonly onDemand = () => this.resumeIfWanted();
  private readonly gw: Gateway;
  private readonly socket: net.Socket;
  private readonly stderrToWebServer: boolean;
  /** The socket's bytes, read into a shared buffer: what is kept past a chunk goes through keep(). */
  private readonly reader: SocketReader;
  /** Requests holding PARAMS records as views of the chunk being decoded (copied at its end). */
  private paramViews: FcgiRequest[] = [];

  constructor(gw: Gateway, socket: net.Socket, stderrToWebServer: boolean) {
    this.gw = gw;
    this.socket = socket;
    this.stderrToWebServer = stderrToWebServer;
    this.reader = new SocketReader(socket, (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, this.onRecord);
        if (this.ready.length) this.startReady();
      } catch (err) {
        logProtocolError(gw, 'fastcgi', err, socket.remoteAddress);
        this.destroy();
        return;
      }
      this.afterChunk();
    });
    socket.on('drain', () => this.releaseWriters());
    socket.on('close', () => this.closed());
    socket.on('end', () => {
      // The web server is done sending (half-close): answer what is under way, then close our
      // side. A request still waiting for its params or body can never get them: abort it.
      for (const r of [...this.table.values()]) {
        if (r.ended) this.table.delete(r.id);
        else if (!r.input || !r.input.complete || (r.data && !r.data.complete)) this.abortRequest(r, true);
      }
      this.closeAfter = true;
      this.maybeClose();
    });
  }

  idle(): boolean {
    return this.running === 0;
  }

  drain(): void {
    this.draining = true;
    this.maybeClose();
  }

  private record(rec: FcgiRecord): void {
    const id = rec.requestId;
    if (id === NULL_REQUEST_ID) return this.management(rec);
    if (rec.type === RecordType.BeginRequest) return this.begin(id, rec.content);
    const req = this.table.get(id);
    // Records for inactive request ids are ignored (spec 3.3); the framing keeps us in sync.
    if (!req) return;
    switch (rec.type) {
      case RecordType.Params:
        return this.params(req, rec.content);
      case RecordType.Stdin:
        return this.stdin(req, rec.content);
      case RecordType.Data:
        return this.dataRecord(req, rec.content);
      case RecordType.AbortRequest:
        return this.abortRequest(req, true);
      default:
        // STDOUT/STDERR/END_REQUEST travel the other way; anything else is not for a request.
        this.gw.log.debug({ type: rec.type, id }, 'fastcgi: ignoring record');
    }
  }

  /** Spec 4: management records on request id 0. */
  private management(rec: FcgiRecord): void {
    if (rec.type !== RecordType.GetValues) {
      void this.send(encodeUnknownType(rec.type));
      return;
    }
    const asked: Record<string, string> = {};
    decodeParams(rec.content, asked, { maxPairs: 64 });
    const l = this.gw.limits;
    const values: Record<string, string> = {
      [FCGI_MAX_CONNS]: String(l.maxConnections),
      [FCGI_MAX_REQS]: String(l.maxConnections * l.maxRequestsPerConnection),
      [FCGI_MPXS_CONNS]: '1',
    };
    const pairs: Array<[string, string]> = [];
    for (const name of Object.keys(asked)) if (values[name] !== undefined) pairs.push([name, values[name]!]);
    void this.send(encodeRecord(RecordType.GetValuesResult, NULL_REQUEST_ID, encodeParams(pairs)));
  }

  private begin(id: number, content: Uint8Array): void {
    const { role, flags } = decodeBeginRequest(content);
    // An id is inactive once its END_REQUEST went out (spec 3.3), even if the rest of its STDIN
    // never came (Apache with enablereuse stops sending it once the response is in).
    if (this.table.get(id)?.ended) this.table.delete(id);
    if (this.table.has(id)) {
      this.gw.log.warn({ id }, 'fastcgi: BEGIN_REQUEST for a request id already in flight; ignored');
      return;
    }
    if (role !== Role.Responder && role !== Role.Authorizer && role !== Role.Filter) {
      void this.send(encodeEndRequest(id, 0, ProtocolStatus.UnknownRole));
      return;
    }
    if (this.running >= this.gw.limits.maxRequestsPerConnection) {
      void this.send(encodeEndRequest(id, 0, ProtocolStatus.Overloaded));
      return;
    }
    this.running++;
    this.requests++;
    this.table.set(id, new FcgiRequest(this, id, role, (flags & FCGI_KEEP_CONN) !== 0));
  }

  private params(req: FcgiRequest, content: Uint8Array): void {
    if (req.input) return; // params already complete
    if (content.length === 0) return this.startRequest(req);
    if (req.paramsTooLarge) return;
    req.paramsBytes += content.length;
    if (req.paramsBytes > this.gw.limits.maxHeaderBytes) {
      req.paramsTooLarge = true;
      req.params = [];
      return;
    }
    // A view of the chunk: decoded before the chunk ends if the params end in it too (the usual
    // case), else copied when it ends (afterChunk).
    if (this.paramViews[this.paramViews.length - 1] !== req) this.paramViews.push(req);
    req.params.push(content);
  }

  private startRequest(req: FcgiRequest): void {
    const onDemand = this.onDemand;
    let vars: Record<string, string>;
    let refuse: RequestError | null = null;
    let length: number | undefined;
    try {
      if (req.paramsTooLarge) {
        throw new RequestError('TSGI_FCGI_PARAMS_TOO_LARGE', `request params over the limit of ${this.gw.limits.maxHeaderBytes} bytes`, 431);
      }
      const all = req.params.length === 1 ? req.params[0]! : Buffer.concat(req.params);
      req.params = [];
      paramVars.begin();
      decodeParams(all, paramVars);
      vars = paramVars.build(storeParam);
      // An Authorizer gets no body (spec 6.3).
      length = req.role === Role.Authorizer ? 0 : parseContentLength(vars.CONTENT_LENGTH);
      req.input = this.gw.bodyQueue(length, onDemand);
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      refuse = err;
      vars = newVars();
    }
    vars.FCGI_ROLE = ROLE_NAMES[req.role]!;
    if (refuse) req.input = new BodyQueue({ length: 0 });
    if (req.role === Role.Filter && !refuse) {
      // Filter role: the file to filter arrives on the DATA stream (spec 6.4), exposed to the app
      // as environ['tsgi.fcgi_data'], an input stream like wsgi.input.
      req.data = this.gw.bodyQueue(parseContentLength(vars.FCGI_DATA_LENGTH), onDemand);
      (vars as Record<string, unknown>)['tsgi.fcgi_data'] = req.data;
    }
    const errors = new LogErrorStream(this.gw.log, this.stderrToWebServer ? req.stderr : undefined);
    if (refuse) this.gw.log.warn({ code: refuse.code }, `fastcgi: ${refuse.message}`);
    const app = refuse ? refusingApp(refuse) : undefined;
    this.ready.push({ req, vars, errors, app });
  }

  private startReady(): void {
    const ready = this.ready;
    this.ready = [];
    for (const { req, vars, errors, app } of ready) {
      if (!req.ended) void this.gw.handle(vars, req.input!, req, req.ac, errors, app);
    }
  }

  private stdin(req: FcgiRequest, content: Uint8Array): void {
    if (req.stdinDone) return;
    if (!req.input) throw new ProtocolError('TSGI_FCGI_STDIN_BEFORE_PARAMS', 'fastcgi: STDIN before the end of PARAMS');
    if (content.length === 0) {
      req.stdinDone = true;
      req.input.end();
      if (req.ended) this.forget(req);
      return;
    }
    if (!req.input.push(this.reader.keep(content)) && this.shouldPause(req.input)) this.pause();
  }

  private dataRecord(req: FcgiRequest, content: Uint8Array): void {
    if (!req.data) return;
    if (content.length === 0) return req.data.end();
    if (!req.data.push(this.reader.keep(content)) && this.shouldPause(req.data)) this.pause();
  }

  /** A lone request pauses the socket at its high-water mark; multiplexed ones buffer more
   * first, so that one slow reader does not stall the others on the connection. */
  private shouldPause(q: BodyQueue): boolean {
    return this.running <= 1 || q.buffered >= this.gw.limits.bodyHighWaterMark * MULTIPLEX_BUFFER_FACTOR;
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private resumeIfWanted(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /**
   * The request ends early: the web server sent ABORT_REQUEST (`byWebServer`), a limit or timer
   * ran out, or the app failed after its headers. Exactly one END_REQUEST, or none at all when
   * the response must be seen as incomplete.
   */
  abortRequest(req: FcgiRequest, byWebServer: boolean): void {
    if (req.ended) return;
    const gone = new ClientGoneError('fastcgi: request aborted');
    req.input?.fail(gone);
    req.data?.fail(gone);
    req.ac.abort();
    req.ended = true;
    this.running--;
    this.table.delete(req.id);
    if (!byWebServer && this.running === 0) {
      // Alone on the connection: no END_REQUEST, and the connection closes. nginx without
      // keep_conn (or with fastcgi_buffering off) takes a plain close as the end of the
      // response, so a record header of version 0 goes first: a protocol error it cannot take
      // for a complete response ("unsupported FastCGI protocol version"), and it cuts the
      // client off. Apache and lighttpd see the close either way.
      if (!this.dead) {
        const poison = Buffer.alloc(HEADER_LENGTH);
        poison[1] = RecordType.Stdout;
        poison[2] = req.id >>> 8;
        poison[3] = req.id & 0xff;
        this.socket.end(poison);
        this.socket.destroySoon();
      }
      this.closed();
      return;
    }
    // Spec 5.4: an aborted request is answered with END_REQUEST; when others share the
    // connection, appStatus 1 marks this one as failed.
    void this.send(encodeEndRequest(req.id, byWebServer ? 0 : 1, ProtocolStatus.RequestComplete));
    if (!req.keepConn) this.closeAfter = true;
    this.maybeClose();
  }

  /** END_REQUEST went out for `req`. */
  requestEnded(req: FcgiRequest): void {
    this.running--;
    if (!req.keepConn) this.closeAfter = true;
    if (req.stdinDone || req.role === Role.Authorizer) return this.forget(req);
    if (!req.keepConn && this.running === 0 && !this.dead && !req.input?.complete) {
      // The app left body unread: nginx then stops sending it and waits for our close before
      // it answers the client. Lingering close: our side ends now, and what is still on its
      // way is read and dropped until the web server closes too. (With the whole body in,
      // only the empty STDIN record is missing: that one is waited for, below.)
      this.table.delete(req.id);
      req.input?.discard();
      req.data?.discard();
      this.socket.end();
      return;
    }
    // Body bytes still on their way for this id are read and dropped before the connection may
    // close (Go issue 4183: closing on unread input makes the web server see a reset instead of
    // the response). The request stays in the table until its STDIN ends; see lingerCheck.
    req.input?.discard();
    req.data?.discard();
  }

  private forget(req: FcgiRequest): void {
    if (this.table.get(req.id) === req) this.table.delete(req.id);
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.table.size === 0 && (this.closeAfter || this.draining) && !this.dead && !this.socket.writableEnded) {
      clearTimeout(this.lingerTimer);
      closeAfterWrite(this.socket);
    }
  }

  /**
   * After each chunk: if the connection only waits for the STDIN of finished requests before it
   * closes, a peer that never sends it gets a few seconds. (Checked per chunk, not per request:
   * the end of STDIN usually arrives in the same chunk as the request.)
   */
  private afterChunk(): void {
    if (this.paramViews.length) this.keepParamViews();
    this.lingerCheck();
    this.paramsCheck();
  }

  /** PARAMS of requests whose params go on in a later chunk: copied before it overwrites them. */
  private keepParamViews(): void {
    for (const req of this.paramViews) {
      if (!req.input && req.params.length) req.params = req.params.map((p) => this.reader.keep(p));
    }
    this.paramViews = [];
  }

  /**
   * limits.headerTimeoutMs: a request whose PARAMS never end must not hold its slot forever.
   * One timer per connection, armed only while some request waits for its params (usually
   * none does once a chunk is processed).
   */
  private paramsCheck(): void {
    const ms = this.gw.limits.headerTimeoutMs;
    if (this.paramsTimer || ms <= 0 || this.running === 0) return;
    let oldest = Infinity;
    for (const r of this.table.values()) if (!r.input && !r.ended && r.begun < oldest) oldest = r.begun;
    if (oldest === Infinity) return;
    this.paramsTimer = setTimeout(() => {
      this.paramsTimer = undefined;
      const now = performance.now();
      for (const r of [...this.table.values()]) {
        if (r.input || r.ended || now - r.begun < ms - 1) continue;
        this.gw.log.warn({ code: 'TSGI_HEADER_TIMEOUT', id: r.id }, 'fastcgi: request params not received in time; request aborted');
        this.abortRequest(r, false);
      }
      if (!this.dead) this.paramsCheck();
    }, Math.max(1, oldest + ms - performance.now()));
    this.paramsTimer.unref();
  }

  private lingerCheck(): void {
    if (this.lingerTimer || this.running > 0 || this.table.size === 0 || !(this.closeAfter || this.draining)) return;
    this.lingerTimer = setTimeout(() => {
      this.table.clear();
      this.maybeClose();
    }, STDIN_LINGER_MS);
    this.lingerTimer.unref();
  }

  send(buf: Uint8Array): void | Promise<void> {
    if (this.dead) return;
    if (this.socket.write(buf)) return;
    return this.waitDrain();
  }

  sendList(list: Uint8Array[]): void | Promise<void> {
    if (this.dead || writeList(this.socket, list)) return;
    return this.waitDrain();
  }

  private waitDrain(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private releaseWriters(): void {
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  private destroy(): void {
    this.socket.destroy();
    this.closed();
  }

  private closed(): void {
    if (this.dead) return;
    this.dead = true;
    this.ready = [];
    clearTimeout(this.lingerTimer);
    clearTimeout(this.paramsTimer);
    let gone: ClientGoneError | undefined;
    for (const req of this.table.values()) {
      if (req.ended) continue;
      gone ??= new ClientGoneError('fastcgi: the web server closed the connection');
      req.ended = true;
      req.input?.fail(gone);
      req.data?.fail(gone);
      req.ac.abort();
    }
    this.table.clear();
    this.running = 0;
    this.releaseWriters();
  }
}

function writeRecordHeader(out: Buffer, at: number, type: number, id: number, length: number, padding: number): void {
  out[at] = 1;
  out[at + 1] = type;
  out[at + 2] = id >>> 8;
  out[at + 3] = id & 0xff;
  out[at + 4] = length >>> 8;
  out[at + 5] = length & 0xff;
  out[at + 6] = padding;
  out[at + 7] = 0;
}
