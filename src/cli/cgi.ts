// `tsgi cgi [options] APP`: answer the one CGI request of this process (RFC 3875). The same path
// as bin/tsgi's fast one, with options.

import { runCgiCommand } from '../protocols/cgi/entry.js';

export async function cgi(appSpec: string, opts: { nph?: boolean; debug?: boolean; logLevel?: string }): Promise<void> {
  await runCgiCommand(appSpec, opts);
}
