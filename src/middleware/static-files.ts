// Static files from a directory, through wsgi.file_wrapper (PEP 3333's way for a server to send
// files well): ETag and Last-Modified with their conditional requests, single byte ranges,
// HEAD, Content-Type from the extension. A path that could leave the directory (.. segments in
// any spelling, encoded slashes, NUL, backslashes, symlinks pointing outside) is never opened;
// such a request, and any that names no file, goes on to the wrapped app (or gets 404).

import { constants as FS, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileWrapper } from '../runner/file-wrapper.js';
import type { App, Body, Environ, FileWrapper, HeaderList } from '../types.js';
import { decodeUtf8, respond } from './util.js';

export interface StaticFilesOptions {
  /** The directory to serve. */
  root: string;
  /** Files tried for a directory, in order. Default ['index.html']; false for none. */
  index?: string[] | false;
  /** Names starting with a dot: 'ignore' (not served; .well-known always is) or 'allow'. Default 'ignore'. */
  dotfiles?: 'ignore' | 'allow';
  /** Cache-Control max-age in seconds (no Cache-Control when unset). */
  maxAge?: number;
  /** Adds `immutable` to Cache-Control (for file names that change with their content). */
  immutable?: boolean;
  /** Extra or replaced types by extension: { '.webmanifest': 'application/manifest+json' }. */
  mimeTypes?: Record<string, string>;
  /** Redirect /dir to /dir/ (301) when dir has an index file. Default true. */
  redirect?: boolean;
}

export const MIME_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.xml': 'application/xml',
  '.rss': 'application/rss+xml',
  '.atom': 'application/atom+xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.bmp': 'image/bmp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.eot': 'application/vnd.ms-fontobject',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.wav': 'audio/wav',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
};

/**
 * The file path segments of a request path (a PEP 3333 byte string), or undefined when the
 * path is not one a static file may have: not UTF-8, NUL or other controls, backslashes,
 * `.`/`..` segments, or dot-names when they are not allowed.
 */
export function safeSegments(pathInfo: string, dotfiles: 'ignore' | 'allow' = 'ignore'): string[] | undefined {
  const text = decodeUtf8(pathInfo);
  if (text === undefined) return undefined;
  if (/[\x00-\x1f\x7f\\]/.test(text)) return undefined;
  const segments = text.split('/').filter((s) => s !== '');
  for (const s of segments) {
    if (s === '.' || s === '..') return undefined;
    if (s.startsWith('.') && dotfiles !== 'allow' && s !== '.well-known') return undefined;
  }
  return segments;
}

/** The raw request path holds an encoded slash, backslash or NUL (which PATH_INFO no longer shows). */
function encodedSeparator(environ: Environ): boolean {
  const uri = environ.REQUEST_URI as string | undefined;
  if (!uri) return false;
  const q = uri.indexOf('?');
  return /%(?:2f|5c|00)/i.test(q >= 0 ? uri.slice(0, q) : uri);
}

type Range = { start: number; end: number } | 'unsatisfiable' | undefined;

/** A single byte range of `bytes=...` for a representation of `size` bytes (RFC 9110 §14.1.2). */
export function parseRange(header: string, size: number): Range {
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return undefined;
  const specs = m[1]!.split(',').map((s) => s.trim()).filter(Boolean);
  if (specs.length !== 1) return undefined; // several ranges: answered whole (a server may)
  const r = /^([0-9]*)-([0-9]*)$/.exec(specs[0]!);
  if (!r || (r[1] === '' && r[2] === '')) return undefined;
  if (r[1] === '') {
    const n = Number(r[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  const end = r[2] === '' ? size - 1 : Number(r[2]);
  if (r[2] !== '' && end < start) return undefined; // invalid: ignored
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}

function etagOf(st: Stats): string {
  return `"${Math.floor(st.mtimeMs).toString(16)}-${st.size.toString(16)}"`;
}

/** Does an If-None-Match / If-Match list hold `etag`? Weak comparison unless `strong`. */
function etagMatches(list: string, etag: string, strong: boolean): boolean {
  if (list.trim() === '*') return true;
  const bare = (t: string) => t.replace(/^W\//, '');
  for (const raw of list.split(',')) {
    const t = raw.trim();
    if (strong ? t === etag && !t.startsWith('W/') : bare(t) === bare(etag)) return true;
  }
  return false;
}

function httpDate(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

/** Serves files under `root`; other requests go to `app` (404 without one). */
export function staticFiles(app: App | undefined | null, options: StaticFilesOptions): App;
export function staticFiles(options: StaticFilesOptions): App;
export function staticFiles(a: App | StaticFilesOptions | undefined | null, b?: StaticFilesOptions): App {
  const app = typeof a === 'function' ? a : undefined;
  const o = (typeof a === 'function' || a == null ? b : a) as StaticFilesOptions | undefined;
  if (!o || typeof o.root !== 'string') throw new TypeError('staticFiles: options.root (a directory) is required');
  const rootPath = path.resolve(o.root);
  const index = o.index === false ? [] : (o.index ?? ['index.html']);
  const dotfiles = o.dotfiles ?? 'ignore';
  const types = { ...MIME_TYPES, ...o.mimeTypes };
  const cacheControl =
    o.maxAge !== undefined ? `public, max-age=${Math.max(0, Math.floor(o.maxAge))}${o.immutable ? ', immutable' : ''}` : undefined;
  const redirect = o.redirect ?? true;
  let rootReal: Promise<string> | undefined;
  const notFound: App = (_e, sr) => respond(sr, '404 Not Found', 'Not Found\n');
  const next = app ?? notFound;

  /** The real path of a regular file inside the root, or a directory marker, or undefined. */
  const locate = async (segments: string[]): Promise<{ file: string; st: Stats } | { dir: string } | undefined> => {
    const root = await (rootReal ??= fs.realpath(rootPath));
    const joined = path.join(root, ...segments);
    if (joined !== root && !joined.startsWith(root + path.sep)) return undefined;
    let real: string;
    try {
      real = await fs.realpath(joined);
    } catch {
      return undefined;
    }
    // A symlink may point anywhere: what counts is where the path really leads.
    if (real !== root && !real.startsWith(root + path.sep)) return undefined;
    const st = await fs.stat(real).catch(() => undefined);
    if (!st) return undefined;
    if (st.isDirectory()) return { dir: real };
    if (!st.isFile()) return undefined;
    return { file: real, st };
  };

  return function staticFilesApp(environ, startResponse) {
    const method = environ.REQUEST_METHOD;
    if (method !== 'GET' && method !== 'HEAD') return next(environ, startResponse);
    const pathInfo = environ.PATH_INFO || '/';
    const segments = safeSegments(pathInfo, dotfiles);
    if (!segments || encodedSeparator(environ)) return next(environ, startResponse);
    return (async (): Promise<Body> => {
      let found = await locate(segments);
      if (found && 'dir' in found) {
        let hit: { file: string; st: Stats } | undefined;
        for (const name of index) {
          const f = await locate([...segments, name]);
          if (f && 'file' in f) {
            hit = f;
            break;
          }
        }
        if (!hit) return next(environ, startResponse);
        if (!(environ.PATH_INFO ?? '').endsWith('/') && redirect) {
          const target = (decodeUtf8(`${environ.SCRIPT_NAME ?? ''}${environ.PATH_INFO ?? ''}`) ?? '').split('/').map(encodeURIComponent).join('/');
          const location = `${target}/${environ.QUERY_STRING ? `?${environ.QUERY_STRING}` : ''}`;
          return respond(startResponse, '301 Moved Permanently', 'Moved Permanently\n', [['Location', location]]);
        }
        found = hit;
      } else if (found && pathInfo.endsWith('/')) {
        found = undefined; // a file asked for as a directory (/file.txt/) is not that file
      }
      if (!found) return next(environ, startResponse);
      return serveFile(environ, startResponse, found.file, types, cacheControl);
    })();
  };
}

async function serveFile(
  environ: Environ,
  startResponse: Parameters<App>[1],
  file: string,
  types: Record<string, string>,
  cacheControl: string | undefined,
): Promise<Body> {
  // O_NOFOLLOW: the last component cannot have been swapped for a symlink since realpath().
  const handle = await fs.open(file, FS.O_RDONLY | (FS.O_NOFOLLOW ?? 0));
  let handed = false;
  try {
    const st = await handle.stat();
    const etag = etagOf(st);
    const mtime = Math.floor(st.mtimeMs / 1000);
    const lastModified = new Date(mtime * 1000).toUTCString();
    const validators: HeaderList = [['ETag', etag], ['Last-Modified', lastModified]];
    if (cacheControl) validators.push(['Cache-Control', cacheControl]);
    const h = (k: string) => environ[k] as string | undefined;

    // RFC 9110 §13.2.2: the order in which preconditions are evaluated.
    const ifMatch = h('HTTP_IF_MATCH');
    const ius = httpDate(h('HTTP_IF_UNMODIFIED_SINCE'));
    if ((ifMatch !== undefined && !etagMatches(ifMatch, etag, true)) || (ifMatch === undefined && ius !== undefined && mtime > ius)) {
      return respond(startResponse, '412 Precondition Failed', 'Precondition Failed\n', validators);
    }
    const inm = h('HTTP_IF_NONE_MATCH');
    const ims = httpDate(h('HTTP_IF_MODIFIED_SINCE'));
    if ((inm !== undefined && etagMatches(inm, etag, false)) || (inm === undefined && ims !== undefined && mtime <= ims)) {
      startResponse('304 Not Modified', validators);
      return [];
    }

    const ext = path.extname(file).toLowerCase();
    const headers: HeaderList = [
      ['Content-Type', types[ext] ?? 'application/octet-stream'],
      ...validators,
      ['Accept-Ranges', 'bytes'],
      ['X-Content-Type-Options', 'nosniff'],
    ];
    let start = 0;
    let length = st.size;
    let status = '200 OK';
    const rangeHeader = h('HTTP_RANGE');
    const ifRange = h('HTTP_IF_RANGE');
    const rangeApplies =
      rangeHeader !== undefined &&
      (ifRange === undefined ||
        (/^(?:W\/)?"/.test(ifRange.trim()) ? etagMatches(ifRange, etag, true) : httpDate(ifRange) === mtime));
    if (rangeApplies) {
      const r = parseRange(rangeHeader, st.size);
      if (r === 'unsatisfiable') {
        return respond(startResponse, '416 Range Not Satisfiable', 'Range Not Satisfiable\n', [['Content-Range', `bytes */${st.size}`], ...validators]);
      }
      if (r) {
        status = '206 Partial Content';
        start = r.start;
        length = r.end - r.start + 1;
        headers.push(['Content-Range', `bytes ${r.start}-${r.end}/${st.size}`]);
      }
    }
    headers.push(['Content-Length', String(length)]);
    startResponse(status, headers);
    if (environ.REQUEST_METHOD === 'HEAD' || length === 0) return [];
    let position = start;
    let left = length;
    const wrapper: FileWrapper = (environ['wsgi.file_wrapper'] as FileWrapper | undefined) ?? fileWrapper;
    handed = true;
    return wrapper({
      async read(size: number) {
        if (left <= 0) return new Uint8Array(0);
        const want = Math.min(size, left);
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await handle.read(buf, 0, want, position);
        position += bytesRead;
        left = bytesRead === 0 ? 0 : left - bytesRead;
        return bytesRead === want ? buf : buf.subarray(0, bytesRead);
      },
      close: () => handle.close(),
    });
  } finally {
    if (!handed) await handle.close();
  }
}
