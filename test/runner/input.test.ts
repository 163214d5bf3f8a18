// wsgi.input over BodyQueue, from both sides: the adapter pushes, ends or fails; the app reads
// with read(n), read(), readline(), readlines() and for await. It never yields more than
// CONTENT_LENGTH, and its high-water mark pauses and resumes the adapter's source.

import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { ClientGoneError, RequestError } from '../../src/errors.js';
import { BodyQueue } from '../../src/runner/input.js';
import { tick, within } from '../helpers/recording-sink.js';

const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const s = (u: Uint8Array): string => Buffer.from(u).toString('latin1');

/** A queue holding `chunks`, ended (with the length declared when `declared`). */
function filled(chunks: string[], declared = true): BodyQueue {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const q = new BodyQueue(declared ? { length } : {});
  for (const c of chunks) q.push(b(c));
  if (!declared) q.end();
  return q;
}

/** Settled state of a promise after a turn of the event loop. */
async function state(p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let st: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (st = 'resolved'),
    () => (st = 'rejected'),
  );
  await tick();
  return st;
}

describe('read(size)', () => {
  it('returns exactly size bytes when they are there, across chunk boundaries', async () => {
    const q = filled(['ab', 'cde', 'f', 'ghij']);
    expect(s(await q.read(3))).toBe('abc');
    expect(s(await q.read(1))).toBe('d');
    expect(s(await q.read(4))).toBe('efgh');
    expect(s(await q.read(5))).toBe('ij');
    expect((await q.read(5)).length).toBe(0);
  });

  it('waits until size bytes arrived (or the body ended)', async () => {
    const q = new BodyQueue({ length: 6 });
    const p = q.read(4);
    q.push(b('ab'));
    expect(await state(p)).toBe('pending');
    q.push(b('cdef'));
    expect(s(await p)).toBe('abcd');
    expect(s(await q.read(4))).toBe('ef');
  });

  it('returns fewer bytes only at the end of a body of unknown length', async () => {
    const q = new BodyQueue();
    const p = q.read(10);
    q.push(b('xyz'));
    expect(await state(p)).toBe('pending');
    q.end();
    expect(s(await p)).toBe('xyz');
    expect((await q.read(10)).length).toBe(0);
  });

  it('returns an empty array for read(0) without waiting', async () => {
    const q = new BodyQueue({ length: 5 });
    expect((await within(q.read(0), 200)).length).toBe(0);
  });
});

describe('read()', () => {
  it('returns the whole body once it has all arrived', async () => {
    const q = new BodyQueue({ length: 9 });
    const p = q.read();
    q.push(b('abc'));
    expect(await state(p)).toBe('pending');
    q.push(b('defghi'));
    expect(s(await p)).toBe('abcdefghi');
    expect((await q.read()).length).toBe(0);
  });

  it('returns what is left after partial reads, and treats negative sizes as "all"', async () => {
    const q = filled(['hello ', 'world']);
    expect(s(await q.read(2))).toBe('he');
    expect(s(await q.read(-1))).toBe('llo world');
  });

  it('returns an empty body at once when CONTENT_LENGTH is 0', async () => {
    const q = new BodyQueue({ length: 0 });
    expect((await within(q.read(), 200)).length).toBe(0);
    expect(q.complete).toBe(true);
  });
});

describe('readline()', () => {
  it('returns one line with its newline, across chunk boundaries', async () => {
    const q = filled(['fir', 'st\nsec', 'ond', '\n', 'third']);
    expect(s(await q.readline())).toBe('first\n');
    expect(s(await q.readline())).toBe('second\n');
    expect(s(await q.readline())).toBe('third');
    expect((await q.readline()).length).toBe(0);
  });

  it('waits for the newline to arrive', async () => {
    const q = new BodyQueue();
    const p = q.readline();
    q.push(b('no newline yet'));
    expect(await state(p)).toBe('pending');
    q.push(b(' ... now\nrest'));
    expect(s(await p)).toBe('no newline yet ... now\n');
  });

  it('returns at most size bytes', async () => {
    const q = filled(['abcdef\n', 'gh\n']);
    expect(s(await q.readline(4))).toBe('abcd');
    expect(s(await q.readline(4))).toBe('ef\n');
    expect(s(await q.readline(100))).toBe('gh\n');
  });

  it('returns size bytes without waiting for a newline once size bytes are there', async () => {
    const q = new BodyQueue();
    q.push(b('abc'));
    const p = q.readline(5);
    expect(await state(p)).toBe('pending');
    q.push(b('defg'));
    expect(s(await within(p, 200))).toBe('abcde');
  });

  it('readlines() returns every remaining line', async () => {
    const q = filled(['a\nb', '\n\nc']);
    expect((await q.readlines()).map(s)).toEqual(['a\n', 'b\n', '\n', 'c']);
  });
});

describe('async iteration', () => {
  it('yields the body chunk by chunk and stops at its end', async () => {
    const q = new BodyQueue({ length: 6 });
    const got: string[] = [];
    const done = (async () => {
      for await (const c of q) got.push(s(c));
    })();
    q.push(b('ab'));
    await tick();
    q.push(b('cd'));
    await tick();
    q.push(b('ef'));
    await within(done, 500);
    expect(got.join('')).toBe('abcdef');
    expect(got.length).toBeGreaterThan(1);
  });

  it('continues where read() left off', async () => {
    const q = filled(['abc', 'def']);
    await q.read(2);
    let rest = '';
    for await (const c of q) rest += s(c);
    expect(rest).toBe('cdef');
  });
});

describe('CONTENT_LENGTH', () => {
  it('never yields more than the declared length, whatever the adapter pushes', async () => {
    const q = new BodyQueue({ length: 5 });
    q.push(b('hel'));
    q.push(b('lo, and more'));
    q.push(b('and more still'));
    expect(q.complete).toBe(true);
    expect(s(await q.read())).toBe('hello');
    expect((await q.read(1)).length).toBe(0);
  });

  it('never iterates past the declared length', async () => {
    const q = new BodyQueue({ length: 4 });
    q.push(b('abcdefgh'));
    let all = '';
    for await (const c of q) all += s(c);
    expect(all).toBe('abcd');
  });

  it('ends the body by itself once the declared length arrived, without end()', async () => {
    const q = new BodyQueue({ length: 3 });
    const p = q.read();
    q.push(b('abc'));
    expect(s(await within(p, 200))).toBe('abc');
  });

  it('fails when the body ends short of its length: reads reject with a 400 RequestError', async () => {
    const q = new BodyQueue({ length: 10 });
    const pending = q.read();
    q.push(b('short'));
    q.end();
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestError);
    expect(error).toMatchObject({ code: 'TSGI_BODY_INCOMPLETE', status: 400 });
    await expect(q.read(1)).rejects.toMatchObject({ code: 'TSGI_BODY_INCOMPLETE' });
    expect(q.remaining).toBe(5);
  });
});

describe('fail()', () => {
  it('rejects pending read(), readline() and iteration with the given error', async () => {
    const q = new BodyQueue({ length: 100 });
    q.push(b('partial'));
    const r1 = q.read(50);
    const r2 = q.readline();
    const it = q[Symbol.asyncIterator]();
    const r3 = it.next().then(() => it.next());
    await tick();
    const error = new ClientGoneError();
    q.fail(error);
    await expect(r1).rejects.toBe(error);
    await expect(r2).rejects.toBe(error);
    await expect(r3).rejects.toBe(error);
  });

  it('makes later reads reject too, buffered bytes included', async () => {
    const q = new BodyQueue({ length: 100 });
    q.push(b('buffered'));
    const error = new Error('connection lost');
    q.fail(error);
    await expect(q.read(3)).rejects.toBe(error);
    await expect(q.read()).rejects.toBe(error);
    await expect(q.readline()).rejects.toBe(error);
  });

  it('does not disturb a body that already arrived and was read in full', async () => {
    const q = filled(['all of it']);
    expect(s(await q.read())).toBe('all of it');
    q.fail(new Error('late'));
    expect((await q.read()).length).toBe(0);
  });
});

describe('high-water mark', () => {
  it('answers false from push() at the mark and calls onDemand once the reader drains below half', async () => {
    let demands = 0;
    const q = new BodyQueue({ length: 100, highWaterMark: 10, onDemand: () => demands++ });
    expect(q.push(b('12345'))).toBe(true);
    expect(q.push(b('67890'))).toBe(false);
    expect(demands).toBe(0);
    await q.read(3); // 7 left: still above half
    expect(demands).toBe(0);
    await q.read(3); // 4 left: below half
    expect(demands).toBe(1);
    await q.read(4);
    expect(demands).toBe(1); // no longer paused: no second call
  });

  it('calls onDemand when the reader waits for more than the mark allows', async () => {
    let demands = 0;
    const q = new BodyQueue({ length: 100, highWaterMark: 4, onDemand: () => demands++ });
    expect(q.push(b('abcd'))).toBe(false);
    const p = q.read(8);
    await tick();
    expect(demands).toBe(1);
    q.push(b('efgh'));
    expect(s(await p)).toBe('abcdefgh');
  });

  it('does not ask the adapter to pause once the whole body arrived', () => {
    const q = new BodyQueue({ length: 10, highWaterMark: 4 });
    expect(q.push(b('0123456789'))).toBe(true);
  });

  it('discard() drops the body and resumes a paused adapter', async () => {
    let demands = 0;
    const q = new BodyQueue({ length: 100, highWaterMark: 4, onDemand: () => demands++ });
    expect(q.push(b('abcdef'))).toBe(false);
    q.discard();
    expect(demands).toBe(1);
    expect(q.push(b('more bytes than the mark'))).toBe(true);
  });
});
