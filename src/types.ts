// The TSGI interface: PEP 3333 (WSGI 1.0.1) carried over to TypeScript, names and rules kept.
// See docs/tsgi.md for the rules an application and a server follow.

/** A piece of response body. Strings are sent as UTF-8. */
export type Chunk = Uint8Array | string;

/** What an application returns: any sync or async iterable of chunks, optionally closable. */
export type Body = (Iterable<Chunk> | AsyncIterable<Chunk>) & { close?(): void | Promise<void> };

/** Response headers as PEP 3333 has them: a list of [name, value] pairs, repeats allowed. */
export type HeaderList = Array<[name: string, value: string]>;

/** The legacy `write()` callable returned by `startResponse`. */
export type WriteCallable = (chunk: Chunk) => void | Promise<void>;

export type StartResponse = (status: string, headers: HeaderList, excInfo?: unknown) => WriteCallable;

export type App = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;

/** `wsgi.input`: the request body, never more than it. */
export interface InputStream extends AsyncIterable<Uint8Array> {
  /** Up to `size` bytes (all that is left when omitted); fewer only at the end; empty at the end. */
  read(size?: number): Promise<Uint8Array>;
  /** One line including its `\n` (at most `size` bytes); empty at the end. */
  readline(size?: number): Promise<Uint8Array>;
  /** All remaining lines. */
  readlines(hint?: number): Promise<Uint8Array[]>;
}

/** `wsgi.errors`: text written here goes to the server's log. */
export interface ErrorStream {
  write(text: string): void;
  flush(): void;
  writelines(lines: Iterable<string>): void;
}

/** PEP 3333's optional file wrapper: `environ['wsgi.file_wrapper'](fileLike, blockSize)`. */
export type FileWrapper = (file: FileLike, blockSize?: number) => Body;

/** What `wsgi.file_wrapper` accepts: a path, a file descriptor, or anything with `read(size)`. */
export type FileLike = string | number | { read(size: number): Uint8Array | Promise<Uint8Array>; close?(): void | Promise<void> };

export type Protocol = 'fastcgi' | 'scgi' | 'ajp' | 'cgi' | 'http';

/**
 * The request environment: CGI meta-variables as byte strings (one char per byte, latin-1),
 * plus the `wsgi.*` and `tsgi.*` keys.
 */
export interface Environ {
  [key: string]: unknown;
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING?: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  'wsgi.version': [1, 0];
  'wsgi.url_scheme': 'http' | 'https';
  'wsgi.input': InputStream;
  'wsgi.errors': ErrorStream;
  'wsgi.multithread': boolean;
  'wsgi.multiprocess': boolean;
  'wsgi.run_once': boolean;
  'wsgi.input_terminated': true;
  'wsgi.file_wrapper'?: FileWrapper;
  'tsgi.protocol': Protocol;
  'tsgi.signal': AbortSignal;
}
