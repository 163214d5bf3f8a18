// The runner core, for those who write a protocol adapter: `tsgi/runner`.

export { runApp, toBytes, REASONS, type RunOptions, type RunResult } from './run.js';
export type { ResponseSink } from './sink.js';
export { BodyQueue, type BodyQueueOptions } from './input.js';
export { buildEnviron, cgiHeaderName, parseContentLength, percentDecode, type ServerContext } from './environ.js';
export { Gateway, DEFAULT_LIMITS, refusingApp, type GatewayOptions, type Limits } from './gateway.js';
export { RequestAbort, type AbortFlag } from './abort.js';
export { LogErrorStream } from './errors-stream.js';
export { encodeCgiHead, parseCgiHead } from './cgi-head.js';
export { checkHeaders, checkStatus } from './start-response.js';
export { validator, checkEnviron } from './validate.js';
export { fileWrapper } from './file-wrapper.js';
