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
export {
  fromFetch,
  toFetch,
  fromNodeListener,
  toNodeListener,
  type ExecutionContext,
  type FetchApp,
  type FetchHandler,
  type FromAdapterOptions,
  type NodeListener,
  type ToFetchOptions,
  type ToNodeListenerOptions,
} from './adapters/index.js';
export { loadConfig, parseConfig, buildApp, ConfigError, type TsgiConfig } from './config/index.js';
export { compose, type Middleware } from './middleware/index.js';
