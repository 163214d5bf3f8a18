// The two ways to write a tsgi CGI program, made from the files in examples/cgi/ as a user would
// deploy them: the shell wrapper (app.cgi, with its two placeholder paths filled in) and the
// single file (single-file.cgi, beside a node_modules/tsgi link, as `npm install tsgi` leaves it).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHECKOUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const EXAMPLE_WRAPPER = path.join(CHECKOUT, 'examples/cgi/app.cgi');
export const EXAMPLE_SINGLE_FILE = path.join(CHECKOUT, 'examples/cgi/single-file.cgi');

/** The placeholders examples/cgi/app.cgi is written with. */
export const WRAPPER_PLACEHOLDERS = { tsgi: '/path/to/tsgi/bin/tsgi', app: '/path/to/app.mjs' } as const;

/**
 * Writes `dir/name`: examples/cgi/app.cgi with `root`'s bin/tsgi and `app` (absolute) in place of
 * the placeholders, mode 0755. `args` go after `cgi` (e.g. --nph).
 */
export function writeWrapper(dir: string, name: string, o: { root: string; app: string; args?: string[] }): string {
  const text = fs.readFileSync(EXAMPLE_WRAPPER, 'utf8');
  for (const p of Object.values(WRAPPER_PLACEHOLDERS)) {
    if (!text.includes(p)) throw new Error(`${EXAMPLE_WRAPPER} no longer contains the placeholder ${p}`);
  }
  let out = text.replace(WRAPPER_PLACEHOLDERS.tsgi, path.join(o.root, 'bin/tsgi')).replace(WRAPPER_PLACEHOLDERS.app, o.app);
  if (o.args?.length) out = out.replace(' cgi ', ` cgi ${o.args.join(' ')} `);
  const file = path.join(dir, name);
  fs.writeFileSync(file, out, { mode: 0o755 });
  fs.chmodSync(file, 0o755);
  return file;
}

/**
 * Copies examples/cgi/single-file.cgi to `dir/name` (mode 0755) and links `dir/node_modules/tsgi`
 * to `root`, which is what `npm install /path/to/tsgi` does in that dir.
 */
export function installSingleFile(dir: string, name: string, root: string): string {
  const file = path.join(dir, name);
  fs.copyFileSync(EXAMPLE_SINGLE_FILE, file);
  fs.chmodSync(file, 0o755);
  const link = path.join(dir, 'node_modules/tsgi');
  fs.mkdirSync(path.dirname(link), { recursive: true, mode: 0o755 });
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  return file;
}
