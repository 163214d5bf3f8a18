// fcgiwrap for tests: the FastCGI-to-CGI bridge nginx needs to run CGI programs, started by the
// test on a Unix socket in a temp dir (`fcgiwrap -s unix:PATH`), ready once the socket accepts,
// stopped by pid together with the children it preforked (-c), which share its command line.

import { type Daemon, killPids, pidsWithCommandLine, startDaemon } from './daemon.js';

export interface FcgiwrapOptions {
  bin?: string;
  socket: string;
  /** Preforked processes: each runs one CGI request at a time (-c). */
  children?: number;
  /** The CGI programs' stderr goes to the web server as FastCGI STDERR (-f): nginx logs it. */
  stderrToServer?: boolean;
}

export interface Fcgiwrap {
  daemon: Daemon;
  socket: string;
  /** The command line it was started with (for docs and messages). */
  command: string;
  stop(): Promise<void>;
}

export async function startFcgiwrap(o: FcgiwrapOptions): Promise<Fcgiwrap> {
  const bin = o.bin ?? 'fcgiwrap';
  const args = ['-c', String(o.children ?? 4), ...(o.stderrToServer ? ['-f'] : []), '-s', `unix:${o.socket}`];
  const daemon = await startDaemon({ name: 'fcgiwrap', command: bin, args, ready: [{ path: o.socket }] });
  return {
    daemon,
    socket: o.socket,
    command: [bin, ...args].join(' '),
    async stop() {
      await daemon.stop();
      // The preforked children: same command line (it names our socket), stopped by pid.
      await killPids(pidsWithCommandLine(`unix:${o.socket}`));
    },
  };
}
