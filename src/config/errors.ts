// Errors of a configuration file: one line, `FILE:LINE: what is wrong`, printed by the CLI like
// any other usage error (exit 2).

import { UsageError } from '../errors.js';

export class ConfigError extends UsageError {
  override name = 'ConfigError';
  readonly file: string;
  readonly line: number | undefined;
  constructor(file: string, line: number | undefined, message: string, column?: number) {
    super('TSGI_CONFIG', `${file}${line !== undefined ? `:${line}${column !== undefined ? `:${column}` : ''}` : ''}: ${message}`);
    this.file = file;
    this.line = line;
  }
}
