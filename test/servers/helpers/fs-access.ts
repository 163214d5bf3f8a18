// Temp dirs for generated configs, and what the unprivileged user a web server drops to (Apache's
// www-data) can reach: programs it spawns (mod_fcgid) must read the checkout and run node.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made = new Set<string>();

/** A fresh dir under the system temp dir, mode 0755 so that a dropped-privilege worker can
 * traverse it (mkdtemp makes 0700). Removed by `removeTempDirs()`. */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tsgi-${prefix}-`));
  fs.chmodSync(dir, 0o755);
  made.add(dir);
  return dir;
}

/** Removes every dir `makeTempDir` made (for afterAll); TSGI_TEST_KEEP_TMP=1 keeps them, with
 * the generated configs and the servers' logs, for a look after the run. */
export function removeTempDirs(): void {
  if (process.env.TSGI_TEST_KEEP_TMP === '1') {
    process.stderr.write(`[servers] TSGI_TEST_KEEP_TMP=1: keeping ${[...made].join(' ')}\n`);
  } else {
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  }
  made.clear();
}

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  group: string;
}

/** The account `name` (uid, primary gid and group name), or undefined when it does not exist. */
export function lookupUser(name: string): UserInfo | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    const group = execFileSync('id', ['-gn', name], { encoding: 'utf8' }).trim();
    return { name, uid, gid, group };
  } catch {
    return undefined;
  }
}

/** The current process's account, as a UserInfo. */
export function currentUser(): UserInfo {
  const u = os.userInfo();
  let group = String(u.gid);
  try {
    group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  } catch {
    // keep the number
  }
  return { name: u.username, uid: u.uid, gid: u.gid, group };
}

/**
 * Which of `paths` user `u` cannot read (or, for dirs, list); checked by a child process running
 * as that user, since access() as root says yes to everything.
 */
export function unreadableAs(u: UserInfo, paths: string[]): string[] {
  if (!isRoot() || u.uid === process.getuid!()) {
    return paths.filter((p) => {
      try {
        fs.accessSync(p, fs.constants.R_OK);
        return false;
      } catch {
        return true;
      }
    });
  }
  const script =
    "const fs=require('fs');const bad=[];for(const p of JSON.parse(process.argv[1])){try{fs.accessSync(p,fs.constants.R_OK);if(fs.statSync(p).isDirectory())fs.readdirSync(p)}catch{bad.push(p)}}process.stdout.write(JSON.stringify(bad))";
  const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(paths)], {
    uid: u.uid,
    gid: u.gid,
    cwd: '/',
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.status !== 0) return [`${process.execPath} (cannot run as ${u.name}: ${r.error?.message ?? r.stderr})`];
  return JSON.parse(r.stdout) as string[];
}

/**
 * A checkout root that user `u` can read: `root` itself when it is readable, else a copy of what
 * running `bin/tsgi` needs (bin, dist, package.json, node_modules, and `extra` dirs relative to
 * root) in a fresh temp dir, opened up to everyone. Throws when node itself is out of reach.
 */
export function checkoutReadableBy(u: UserInfo, root: string, extra: string[] = []): { root: string; copied: boolean } {
  const needed = ['bin/tsgi', 'dist/cli/main.js', 'package.json', 'node_modules', ...extra].map((p) => path.join(root, p));
  const node = unreadableAs(u, [process.execPath]);
  if (node.length) throw new Error(`${u.name} cannot run node at ${process.execPath}: make it readable and executable for that user`);
  const bad = unreadableAs(u, needed);
  if (bad.length === 0) return { root, copied: false };
  const copy = makeTempDir('checkout');
  for (const rel of ['bin', 'dist', 'package.json', 'node_modules', ...extra]) {
    const from = path.join(root, rel);
    const to = path.join(copy, rel);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.cpSync(from, to, { recursive: true, dereference: false, verbatimSymlinks: true });
  }
  execFileSync('chmod', ['-R', 'a+rX', copy]);
  const still = unreadableAs(u, needed.map((p) => path.join(copy, path.relative(root, p))));
  if (still.length) throw new Error(`${u.name} still cannot read ${still.join(', ')} after copying the checkout to ${copy}`);
  return { root: copy, copied: true };
}
