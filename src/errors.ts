// Errors with stable codes: tests and callers match on `code`, never on the message.

/** Bad bytes from the peer. The connection that sent them is closed; nothing else is affected. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * A request the protocol could still answer over a limit or malformed: `status` is the HTTP
 * answer to give (400, 413, 431) when headers can still be sent.
 */
export class RequestError extends Error {
  override name = 'RequestError';
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** The application broke a rule of the interface (PEP 3333 / TSGI). */
export class AppError extends Error {
  override name = 'AppError';
  readonly code = 'TSGI_APP_ERROR';
}

/** The client or the web server went away before the response was complete. */
export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
  readonly code = 'TSGI_CLIENT_GONE';
  constructor(message = 'client went away before the response was complete') {
    super(message);
  }
}

/** A usage or start-up error of the program: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
