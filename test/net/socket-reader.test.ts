// SocketReader (src/net/socket-reader.ts): accepted sockets read into one shared buffer. What a
// protocol keeps must survive every later read of every connection; pause and resume must work
// any number of times; and a socket it cannot read that way still works through 'data' events.

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SocketReader } from '../../src/net/socket-reader.js';
import { within } from '../helpers/recording-sink.js';

const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

/** A server keeping every piece through keep(); resolves each connection's bytes at its end. */
async function keepingServer(onReader?: (r: SocketReader, s: net.Socket) => void): Promise<{ port: number; done: Promise<Buffer>[]; readers: SocketReader[] }> {
  const done: Promise<Buffer>[] = [];
  const readers: SocketReader[] = [];
  const server = net.createServer((socket) => {
    const kept: Uint8Array[] = [];
    const reader = new SocketReader(socket, (chunk) => {
      kept.push(reader.keep(chunk));
      // Scribble over the chunk once kept: the kept bytes must not be views of it.
      if (reader.direct && kept[kept.length - 1]!.buffer !== chunk.buffer) chunk.fill(0xee);
    });
    readers.push(reader);
    onReader?.(reader, socket);
    done.push(
      new Promise((resolve) =>
        socket.on('end', () => {
          resolve(Buffer.concat(kept));
          socket.end();
        }),
      ),
    );
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, done, readers };
}

function send(port: number, pieces: Buffer[], gapMs = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', reject);
    c.resume();
    c.on('close', () => resolve());
    c.on('connect', async () => {
      for (const p of pieces) {
        if (!c.write(p)) await new Promise((r) => c.once('drain', r));
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
      c.end();
    });
  });
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const random = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  let x = seed || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
};

describe('SocketReader', () => {
  it('reads accepted sockets into the shared buffer on this Node (the fast path is in use)', async () => {
    const srv = await keepingServer();
    await within(send(srv.port, [Buffer.from('hello')]), 5000, 'send');
    expect(srv.readers[0]!.direct).toBe(true);
    expect((await srv.done[0]!).toString()).toBe('hello');
  });

  it('keeps every byte of many connections at once, small pieces and large ones', async () => {
    const srv = await keepingServer();
    const expected: string[] = [];
    const clients: Promise<void>[] = [];
    for (let c = 0; c < 8; c++) {
      // Small writes spaced out: each its own read of the shared buffer, kept as a copy.
      const small = Array.from({ length: 20 }, (_, i) => random(1 + ((i * 37 + c) % 300), c * 100 + i + 1));
      expected.push(sha(Buffer.concat(small)));
      clients.push(send(srv.port, small, 1));
      // Large writes at once, on other connections meanwhile: read into buffers of their own.
      const large = Array.from({ length: 6 }, (_, i) => random(20_000 + i * 17_001, c * 1000 + i + 7));
      expected.push(sha(Buffer.concat(large)));
      clients.push(send(srv.port, large));
    }
    await within(Promise.all(clients), 20_000, 'clients');
    const got = await within(Promise.all(srv.done), 5000, 'ends');
    // Connections are accepted in any order: compare as sets of digests.
    expect(got.map(sha).sort()).toEqual(expected.sort());
  });

  it('pauses and resumes any number of times, and the bytes stay whole', async () => {
    let pauses = 0;
    const srv = await keepingServer((reader, socket) => {
      socket.on('end', () => {});
      // Pause after each read, resume a little later: a slow consumer.
      const original = reader.keep.bind(reader);
      reader.keep = (view) => {
        const kept = original(view);
        pauses++;
        socket.pause();
        setTimeout(() => socket.resume(), 2);
        return kept;
      };
    });
    const data = random(600_000, 99);
    await within(send(srv.port, [data]), 20_000, 'send');
    const got = await within(srv.done[0]!, 5000, 'end');
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
    expect(pauses).toBeGreaterThan(3);
  });

  it('a stream standing in for a socket first does not keep real sockets off the fast path', async () => {
    // A fresh copy of the module: nothing found or remembered yet.
    vi.resetModules();
    const { SocketReader: Fresh } = await import('../../src/net/socket-reader.js');
    const fake = new Fresh(new Duplex({ read() {}, write(_c, _e, cb) { cb(); } }) as unknown as net.Socket, () => {});
    expect(fake.direct).toBe(false);
    let direct: boolean | undefined;
    const server = net.createServer((socket) => {
      direct = new Fresh(socket, () => {}).direct;
      socket.on('end', () => socket.end());
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    await within(send((server.address() as net.AddressInfo).port, [Buffer.from('after a fake')]), 5000, 'send');
    expect(direct).toBe(true);
  });

  it('falls back to data events for a socket it cannot read directly', async () => {
    const chunks: Buffer[] = [];
    const d = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    const reader = new SocketReader(d as unknown as net.Socket, (c) => chunks.push(reader.keep(c) as Buffer));
    expect(reader.direct).toBe(false);
    const piece = Buffer.from('abc');
    d.push(piece);
    await new Promise((r) => setImmediate(r));
    expect(chunks).toEqual([piece]);
    expect(chunks[0]).toBe(piece); // kept as it is: node never reuses a 'data' chunk
  });
});
