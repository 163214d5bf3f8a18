// The API of examples/config/multi.toml.
export default function api(environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ api: 'v1', user: environ.REMOTE_USER ?? null, path: environ.PATH_INFO })];
}
