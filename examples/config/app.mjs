// The app of examples/config/*.toml: says where it is mounted and what it was asked.
//   bin/tsgi serve --config examples/config/tsgi.toml
export default function app(environ, startResponse) {
  if (environ.PATH_INFO === '/boom') throw new Error('something broke');
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`app at "${environ.SCRIPT_NAME}", path "${environ.PATH_INFO}", user ${environ.REMOTE_USER ?? '(none)'}\n`];
}
