// Logging: pino, JSON lines on standard error. Standard output stays free for CGI responses.

import { pino } from 'pino';
import type { Logger } from './log-line.js';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Write synchronously (CGI: the process exits right after one request). */
  sync?: boolean;
}

let destination: ReturnType<typeof pino.destination> | null = null;
let root: pino.Logger | null = null;

export function createLogger(opts: LogOptions = {}): Logger {
  return createPinoLogger(opts);
}

function createPinoLogger(opts: LogOptions): pino.Logger {
  destination = pino.destination({ dest: 2, sync: opts.sync ?? false, minLength: 0 });
  // EPIPE on stderr (the reader went away) must not take the server down.
  destination.on('error', () => {});
  root = pino(
    {
      level: opts.level ?? process.env.TSGI_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return root;
}

/** The process-wide logger (created on first use with the defaults). */
export function getLogger(): Logger {
  return root ?? createLogger();
}

/** Writes out what is buffered; call before the process exits. */
export function flushLogs(): void {
  try {
    destination?.flushSync();
  } catch {
    // nothing to flush to
  }
}
