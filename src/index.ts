// tsgi's public API: the TSGI types, the runner core for those who write adapters, the validator.

export type * from './types.js';
export { AppError, ClientGoneError, ProtocolError, RequestError } from './errors.js';
export { runApp, type RunOptions, type RunResult } from './runner/run.js';
export type { ResponseSink } from './runner/sink.js';
export { BodyQueue } from './runner/input.js';
export { buildEnviron, percentDecode, type ServerContext } from './runner/environ.js';
export { Gateway, DEFAULT_LIMITS, type Limits } from './runner/gateway.js';
export { validator, checkEnviron } from './runner/validate.js';
export { fileWrapper } from './runner/file-wrapper.js';
