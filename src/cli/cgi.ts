// `tsgi cgi APP`: answer the one CGI request of this process (RFC 3875).

import { loadApp } from '../load-app.js';
import { runCgi } from '../protocols/cgi/adapter.js';

export async function cgi(appSpec: string, opts: { nph?: boolean; debug?: boolean; logLevel?: string }): Promise<void> {
  const app = await loadApp(appSpec);
  await runCgi(app, opts);
}
