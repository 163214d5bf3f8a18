// The short path from `bin/tsgi cgi APP` to the answer: no option parser, errors as a 500.

import { writeSync } from 'node:fs';
import { UsageError } from '../../errors.js';
import { type CgiOptions, isNphScript, keepStdoutForTheResponse, nphProtocol, runCgi } from './adapter.js';
import { loadCgiApp } from './load.js';

/** Loads APP and answers this process's one CGI request; a load failure is a 500 on stdout. */
export async function runCgiCommand(appSpec: string, opts: CgiOptions & { interface?: string } = {}): Promise<void> {
  // Before the app's module runs: its top-level console.log must not land in the response.
  keepStdoutForTheResponse();
  try {
    const app = await loadCgiApp(appSpec, { interface: opts.interface });
    await runCgi(app, opts);
  } catch (err) {
    // The web server shows our stdout to the client: a plain 500, the reason on stderr.
    const msg = err instanceof UsageError ? err.message : String((err as Error)?.stack ?? err);
    writeQuietly(2, `tsgi: ${msg}\n`);
    const status = (opts.nph ?? isNphScript()) ? nphProtocol(process.env.SERVER_PROTOCOL) : 'Status:';
    writeQuietly(1, `${status} 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nInternal Server Error\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}

/** Synchronous, and silent when the reader is gone (EPIPE): the process is about to exit. */
function writeQuietly(fd: number, text: string): void {
  try {
    writeSync(fd, text);
  } catch {
    // nobody is reading
  }
}
