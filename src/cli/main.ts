// The `tsgi` command: `serve` runs a server, `cgi` answers one CGI request.

import { Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { flushLogs } from '../log.js';
import { PROTOCOLS } from '../net/protocols.js';

const program = new Command();
program
  .name('tsgi')
  .description('Serve TSGI (PEP 3333 for TypeScript) apps over ' + Object.keys(PROTOCOLS).join(', '))
  .version('0.1.0')
  .showHelpAfterError();

program
  .command('serve')
  .description('serve an app; with no --protocol and --bind: FastCGI on fd 0 when it is a listening socket, else HTTP on 127.0.0.1:8000')
  .argument('[app]', 'ES module path (.js, .mjs, .ts), optionally :exportName (default export otherwise); optional with --config')
  .option('--config <file>', 'tsgi.toml: app or mounts, middleware pipeline, protocol, bind, workers, limits (flags given here win)')
  .addOption(new Option('--protocol <name>', 'wire protocol').choices(Object.keys(PROTOCOLS)))
  .option('--bind <addr>', 'HOST:PORT, [IPv6]:PORT, unix:PATH or fd:N')
  .option('--workers <n>', 'worker processes (a number, or auto for one per CPU)', '1')
  .option('--socket-mode <octal>', 'permissions of a unix socket', '660')
  .option('--graceful-timeout <s>', 'seconds requests in flight get to finish on SIGTERM', '30')
  .option('--lint', 'check every request and response against the TSGI rules', false)
  .option('--debug', 'error responses carry the stack (never in production)', false)
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default info)')
  .option('--access-log', 'one log line per request (method, path, status, bytes, ms)', false)
  .option('--max-header-size <bytes>', 'request head limit: params, headers (default 128k)')
  .option('--max-body-size <bytes>', 'request body limit, answered 413 (default unlimited)')
  .option('--max-requests-per-conn <n>', 'concurrent requests on one multiplexed connection (default 100)')
  .option('--max-connections <n>', 'concurrent connections (default 10000)')
  .option('--idle-timeout <s>', 'close a connection idle this long (default 300)')
  .option('--header-timeout <s>', 'a request head must arrive within this time (default 60)')
  .option('--timeout <s>', 'a response must be complete within this time, else 504 (or aborted once begun); default: no limit')
  .option('--max-requests <n>', 'replace a worker after this many requests (runs a main process, even for one worker)')
  .option('--max-requests-jitter <n>', 'add 0..n to --max-requests, per worker, so that workers are not all replaced at once')
  .option('--status-path <path>', 'answer this path with the status page (JSON; ?text for plain text) before the app; off by default')
  .option('--slow-request <s>', 'count, list and log requests running longer than this (default: off)')
  .option('--no-fcgi-stderr', 'fastcgi: do not copy wsgi.errors output to the web server as STDERR records')
  .option('--ajp-secret <secret>', 'ajp: required shared secret (or TSGI_AJP_SECRET; mod_proxy_ajp secret=)')
  .option('--ajp-packet-size <bytes>', 'ajp: packet size, as ProxyIOBufferSize / max_packet_size (default 8192, max 65536)')
  .option('--ajp-allowed-attributes <regex>', 'ajp: request attributes let through to the app (others: 403)')
  .option('--ajp-allow-shutdown', 'ajp: obey the SHUTDOWN packet (default: ignored)', false)
  .addOption(interfaceOption())
  .action(async (appArg: string | undefined, cliOpts: Record<string, unknown>, cmd: Command) => {
    let app = appArg;
    let opts = cliOpts;
    if (typeof opts.config === 'string') {
      // The file fills in what the command line did not give (src/config).
      const { applyConfig } = await import('../config/index.js');
      const fromCli = (key: string) => ['cli', 'env'].includes(cmd.getOptionValueSource(key) ?? '');
      ({ appSpec: app, options: opts } = applyConfig(opts.config, appArg, opts, fromCli));
    }
    if (app === undefined) throw new UsageError('TSGI_NO_APP', 'serve needs an APP argument or --config FILE');
    passInterface(opts.interface);
    const { serve } = await import('./serve.js');
    await serve(app, {
      ...(opts as object),
    } as Parameters<typeof serve>[1]);
  });

program
  .command('cgi')
  .description('answer one CGI/1.1 request (RFC 3875): environment and stdin in, response on stdout')
  .argument('<app>', 'ES module path (.js, .mjs, .ts), optionally :exportName')
  .option('--nph', 'non-parsed headers: a full HTTP status line (default when the script is nph-*)')
  .option('--debug', 'error responses carry the stack (never in production)', false)
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default info)')
  .addOption(interfaceOption())
  .action(async (app: string, opts: { nph?: boolean; debug?: boolean; logLevel?: string; interface?: string }) => {
    passInterface(opts.interface);
    const { cgi } = await import('./cgi.js');
    await cgi(app, opts);
  });

/** --interface: what the app's export is, where its shape does not tell (docs/frameworks.md). */
function interfaceOption(): Option {
  return new Option(
    '--interface <shape>',
    "the export is a TSGI app, a Fetch handler ((request) => Response) or a Node (req, res) listener (default: told by its shape; a two-parameter function is TSGI)",
  ).choices(['tsgi', 'fetch', 'node']);
}

/** loadApp reads TSGI_INTERFACE (so do workers, which inherit the environment). */
function passInterface(value: unknown): void {
  if (typeof value === 'string') process.env.TSGI_INTERFACE = value;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tsgi: ${err.message}\n`);
      flushLogs();
      process.exit(2);
    }
    throw err;
  }
}
