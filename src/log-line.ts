// The logger interface the core uses (pino's, the part we call), and a dependency-free logger
// that writes the same JSON lines synchronously to stderr: for `tsgi cgi`, whose process lives
// for one request, where importing pino took longer than the request itself (docs/cgi.md).

import { writeSync } from 'node:fs';

type LogFn = {
  (msg: string): void;
  (obj: object, msg?: string): void;
};

export interface Logger {
  level: string;
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

function serializeError(err: Error): object {
  return { type: err.name, message: err.message, stack: err.stack, code: (err as { code?: unknown }).code };
}

/** JSON lines on fd 2, written synchronously (nothing is lost when the process exits). */
export function createLineLogger(opts: { level?: string; write?: (line: string) => void } = {}): Logger {
  const level = opts.level ?? process.env.TSGI_LOG_LEVEL ?? 'info';
  const min = LEVELS[level] ?? 30;
  const write =
    opts.write ??
    ((line: string) => {
      try {
        writeSync(2, line);
      } catch {
        // stderr gone: nothing to tell
      }
    });
  const make = (name: string): LogFn => {
    const n = LEVELS[name]!;
    return ((a: object | string, b?: string) => {
      if (n < min) return;
      const rec: Record<string, unknown> = { level: name, time: new Date().toISOString(), pid: process.pid };
      if (typeof a === 'string') rec.msg = a;
      else {
        for (const [k, v] of Object.entries(a)) rec[k] = v instanceof Error ? serializeError(v) : v;
        if (b !== undefined) rec.msg = b;
      }
      write(JSON.stringify(rec) + '\n');
    }) as LogFn;
  };
  return { level, fatal: make('fatal'), error: make('error'), warn: make('warn'), info: make('info'), debug: make('debug'), trace: make('trace') };
}
