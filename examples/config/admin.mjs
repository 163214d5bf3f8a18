// The admin app of examples/config/multi.toml, on its own host name.
export default function admin(environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`admin for ${environ.REMOTE_USER}\n`];
}
