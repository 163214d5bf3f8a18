// An in-memory pino logger for server tests: every line the server logs, parsed, so a test can
// assert on `code`, level and message instead of scraping standard error.

import { pino, type Logger } from 'pino';

/** One parsed log line (pino's JSON): level as a number, `msg`, and whatever fields were bound. */
export interface LogLine {
  level: number;
  msg?: string;
  code?: string;
  [key: string]: unknown;
}

/** pino levels by number. */
export const LogLevel = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** A debug-level pino logger writing into memory; `lines()` returns what it wrote so far. */
export function memoryLogger(): { log: Logger; lines(): LogLine[] } {
  const lines: LogLine[] = [];
  const stream = { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) };
  return { log: pino({ level: 'debug' }, stream), lines: () => lines.slice() };
}
