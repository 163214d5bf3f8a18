// The one interface every protocol adapter implements to put a response on its wire.
// The runner calls start() once, then write() any number of times, then end() or abort().

import type { HeaderList } from '../types.js';

export interface ResponseSink {
  /**
   * Status and headers, already validated, with the first non-empty piece of body (or none).
   * `last` says that piece is the whole body, so the sink may put everything, end included,
   * in one write. Returns a promise only when the transport asks the app to wait.
   */
  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void>;
  /** One more piece of body. A promise means: wait for it before producing more (backpressure). */
  write(chunk: Uint8Array): void | Promise<void>;
  /** Finishes the response on the wire (END_REQUEST, END_RESPONSE, connection closed, message ended). */
  end(): void | Promise<void>;
  /** Ends the response so that the front end sees it incomplete. Never throws. */
  abort(error: Error): void;
}
