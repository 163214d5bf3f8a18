// Servers that signal their whole process group when they stop: Apache's prefork MPM ends with
// killpg(getpgrp(), SIGTERM), which, run in the foreground from a test, is the test runner's
// group (vitest dies with "Terminated"). Such a server is started through a wrapper that execs it
// under setsid: same pid (a spawned child is no group leader, so setsid does not fork), own group.

import fs from 'node:fs';
import path from 'node:path';
import { which } from './require.js';

/**
 * An executable `dir/NAME` that runs `bin` with the same arguments in a new session and process
 * group; use it wherever the server's binary path is asked for.
 */
export function inOwnProcessGroup(bin: string, dir: string): string {
  const setsid = which('setsid');
  if (!setsid) throw new Error('setsid not found (util-linux): needed to keep the server out of the test runner\'s process group');
  const wrapper = path.join(dir, `${path.basename(bin)}-own-pgroup`);
  fs.writeFileSync(wrapper, `#!/bin/sh\n# ${bin} in its own process group: its killpg() on shutdown must not reach the test runner.\nexec ${setsid} ${bin} "$@"\n`, { mode: 0o755 });
  return wrapper;
}
