// The validator (src/runner/validate.ts) as a pipeline stage: `use = "lint"` in tsgi.toml.
// Placed innermost it checks the app; placed outermost it checks the server and everything in
// between; anywhere else it checks the middleware around it.

export { validator, checkEnviron } from '../runner/validate.js';
