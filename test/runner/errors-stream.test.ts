// wsgi.errors over LogErrorStream: text is buffered until a newline and each line becomes one
// log record (stream: "wsgi.errors"); flush() writes out a pending partial line.

import { describe, expect, it } from 'vitest';
import { LogErrorStream } from '../../src/runner/errors-stream.js';
import type { App } from '../../src/types.js';
import { Level, makeRequest, memoryLogger } from '../helpers/recording-sink.js';

function stream(also?: (text: string) => void) {
  const { log, logs } = memoryLogger();
  const errors = new LogErrorStream(log, also);
  const lines = () => logs.filter((l) => l.stream === 'wsgi.errors').map((l) => l.msg);
  return { errors, logs, lines };
}

describe('LogErrorStream', () => {
  it('logs nothing until a line is complete', () => {
    const { errors, lines } = stream();
    errors.write('partial');
    errors.write(' still partial');
    expect(lines()).toEqual([]);
  });

  it('logs one record per line, joining writes and splitting at every newline', () => {
    const { errors, lines } = stream();
    errors.write('first ');
    errors.write('line\nsecond line\nthird');
    expect(lines()).toEqual(['first line', 'second line']);
    errors.write(' line\n');
    expect(lines()).toEqual(['first line', 'second line', 'third line']);
  });

  it('writes out a pending partial line on flush(), and nothing when there is none', () => {
    const { errors, lines } = stream();
    errors.write('no newline');
    errors.flush();
    expect(lines()).toEqual(['no newline']);
    errors.flush();
    expect(lines()).toEqual(['no newline']);
  });

  it('writelines() writes each string as given (no newline added)', () => {
    const { errors, lines } = stream();
    errors.writelines(['a\n', 'b', 'c\n']);
    expect(lines()).toEqual(['a', 'bc']);
  });

  it('logs at warn with stream "wsgi.errors"', () => {
    const { errors, logs } = stream();
    errors.write('hello\n');
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ level: Level.warn, stream: 'wsgi.errors', msg: 'hello' });
  });

  it('hands the raw text to `also` as written (FastCGI STDERR)', () => {
    const seen: string[] = [];
    const { errors } = stream((t) => seen.push(t));
    errors.write('a');
    errors.write('b\nc');
    expect(seen).toEqual(['a', 'b\nc']);
  });

  it('is environ[\'wsgi.errors\'], and what the app writes there reaches the server log', async () => {
    const req = makeRequest();
    const app: App = (environ, sr) => {
      environ['wsgi.errors'].write('from the app\n');
      sr('200 OK', []);
      return [];
    };
    await req.run(app);
    expect(req.logs.some((l) => l.stream === 'wsgi.errors' && l.msg === 'from the app')).toBe(true);
  });
});
