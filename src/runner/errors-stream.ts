// wsgi.errors: a text stream for the app, one log record per line, into the server's log.

import type { Logger } from '../log-line.js';
import type { ErrorStream } from '../types.js';

export class LogErrorStream implements ErrorStream {
  private pending = '';
  private readonly log: Logger;
  private readonly also: ((text: string) => void) | undefined;

  /** `also` receives the same text (FastCGI sends it to the web server as STDERR records). */
  constructor(log: Logger, also?: (text: string) => void) {
    this.log = log;
    this.also = also;
  }

  write(text: string): void {
    const s = String(text);
    this.also?.(s);
    let start = 0;
    for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', start)) {
      this.emit(this.pending + s.slice(start, i));
      this.pending = '';
      start = i + 1;
    }
    this.pending += s.slice(start);
  }

  writelines(lines: Iterable<string>): void {
    for (const line of lines) this.write(line);
  }

  flush(): void {
    if (this.pending) this.emit(this.pending);
    this.pending = '';
  }

  private emit(line: string): void {
    this.log.warn({ stream: 'wsgi.errors' }, line);
  }
}
