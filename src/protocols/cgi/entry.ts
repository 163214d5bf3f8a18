// The short path from `bin/tsgi cgi APP` to the answer: no option parser, errors as a 500.

import { UsageError } from '../../errors.js';
import { loadApp } from '../../load-app.js';
import { runCgi } from './adapter.js';

export async function runCgiCommand(appSpec: string): Promise<void> {
  try {
    const app = await loadApp(appSpec);
    await runCgi(app);
  } catch (err) {
    // The web server shows our stdout to the client: a plain 500, the reason on stderr.
    const msg = err instanceof UsageError ? err.message : String((err as Error)?.stack ?? err);
    process.stderr.write(`tsgi: ${msg}\n`);
    process.stdout.write('Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nInternal Server Error\n');
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}
