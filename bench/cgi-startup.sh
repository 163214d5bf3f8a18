#!/usr/bin/env bash
# What one CGI request costs: the full cycle, spawn to last byte on stdout, of a hello-world
# response under `bin/tsgi cgi` and its peers, in one hyperfine run, as ratios to a bare Node
# script that prints the same response (what any Node CGI program pays before doing anything).
#   bench/cgi-startup.sh [RUNS] [ROUNDS]   (default 40 runs of each command after 5 warm-up
#                                          runs, in each of 3 rounds)
# Each round is one hyperfine run of all the commands. hyperfine runs one command's series after
# the other, so on a shared machine the load can change between two series: the rounds repeat
# the whole comparison (even rounds in the opposite order), and the summary gives each round's
# ratios (of medians) and their median.
# Also printed: the load average before and after each round. JSON per round: $OUT_DIR if set.
# Peers that are not installed (python3, php-cgi) are left out with a note.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-40}
ROUNDS=${2:-3}
[ "$RUNS" -ge 30 ] || { echo "RUNS must be at least 30" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "hyperfine not found (apt-get install hyperfine)" >&2; exit 2; }
[ -f "$ROOT/dist/cgi.cjs" ] || { echo "dist/ is not built: npm run build" >&2; exit 2; }
NODE=$(command -v node)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tsgi-cgi-startup.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The same response everywhere: status 200, Content-Type text/plain, body "hello\n". The app as
# an ES module (what the docs and examples show), and as CommonJS.
cat > "$TMP/hello.mjs" <<'EOF'
export default function hello(environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['hello\n'];
}
EOF
sed -e 's/^export default function/module.exports = function/' "$TMP/hello.mjs" > "$TMP/hello.cjs"
# The shell wrapper of examples/cgi/app.cgi, and a single-file.cgi (as examples/cgi/ writes it)
# with tsgi "installed" beside it.
sed -e "s|/path/to/tsgi/bin/tsgi|$ROOT/bin/tsgi|" -e "s|/path/to/app.mjs|$TMP/hello.mjs|" "$ROOT/examples/cgi/app.cgi" > "$TMP/app.cgi"
mkdir -p "$TMP/single/node_modules"
ln -s "$ROOT" "$TMP/single/node_modules/tsgi"
cat > "$TMP/single/hello.cgi" <<EOF
#!/usr/bin/env node
function app(environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['hello\n'];
}
require('tsgi/cgi').runCgi(app);
EOF
# The same with import('tsgi/cgi'), as single-file.cgi had it before require() was the quicker way.
sed -e "s|^require('tsgi/cgi').runCgi(app);|import('tsgi/cgi').then(({ runCgi }) => runCgi(app));|" "$TMP/single/hello.cgi" > "$TMP/single/hello-import.cgi"
chmod 755 "$TMP/app.cgi" "$TMP/single/hello.cgi" "$TMP/single/hello-import.cgi"
cat > "$TMP/hello_wsgiref.py" <<'EOF'
from wsgiref.handlers import CGIHandler

def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello\n']

CGIHandler().run(app)
EOF
cat > "$TMP/hello.php" <<'EOF'
<?php
header('Content-Type: text/plain');
echo "hello\n";
EOF

# Versions, before the CGI environment below makes php-cgi answer a request instead.
PY=$(command -v python3 >/dev/null && python3 -c 'import sys; print(sys.executable)' || true)
versions="node $("$NODE" --version)${PY:+, python $("$PY" -c 'import platform; print(platform.python_version())')}"
command -v php-cgi >/dev/null && versions="$versions, $(php-cgi -v | head -n1 | cut -d' ' -f1-2)"

# One GET, as a web server would set it up. php-cgi wants SCRIPT_FILENAME and REDIRECT_STATUS
# (its force-cgi-redirect check); the others ignore them.
export GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET SCRIPT_NAME=/hello.cgi PATH_INFO=/ QUERY_STRING= \
  SERVER_NAME=localhost SERVER_PORT=80 SERVER_PROTOCOL=HTTP/1.1 REMOTE_ADDR=127.0.0.1 \
  SCRIPT_FILENAME="$TMP/hello.php" REDIRECT_STATUS=200

names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
add 'bare node -e' "$NODE -e 'process.stdout.write(\"Status: 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 6\\r\\n\\r\\nhello\\n\")'"
add 'tsgi: bin/tsgi cgi APP' "$NODE $ROOT/bin/tsgi cgi $TMP/hello.mjs"
add 'tsgi: bin/tsgi cgi APP.cjs' "$NODE $ROOT/bin/tsgi cgi $TMP/hello.cjs"
add 'tsgi: app.cgi (sh wrapper)' "$TMP/app.cgi"
add 'tsgi: single-file.cgi' "$TMP/single/hello.cgi"
add 'tsgi: single-file, import()' "$TMP/single/hello-import.cgi"
if [ -n "$PY" ]; then add 'python wsgiref CGIHandler' "$PY $TMP/hello_wsgiref.py"; else echo "note: python3 not found, left out"; fi
if command -v php-cgi >/dev/null; then add 'php-cgi' "$(command -v php-cgi)"; else echo "note: php-cgi not found (apt-get install php-cgi), left out"; fi

echo "== what each prints (first line), and a check that it answers"
for i in "${!cmds[@]}"; do
  out=$(bash -c "${cmds[$i]}" </dev/null)
  printf '  %-28s %s\n' "${names[$i]}" "$(printf '%s' "$out" | head -n1 | tr -d '\r')"
  printf '%s' "$out" | grep -q '^hello$' || { echo "  ^ did not answer hello" >&2; exit 1; }
done

echo "== $versions; $(nproc) cores"
outdir=${OUT_DIR:-$TMP}
mkdir -p "$outdir"
jsons=()
for round in $(seq 1 "$ROUNDS"); do
  # Even rounds run the commands in the opposite order: a load that rises (or falls) during a
  # round then weighs on the last series in one round and on the first in the next.
  args=()
  if [ $((round % 2)) -eq 1 ]; then order=("${!cmds[@]}"); else order=(); for i in "${!cmds[@]}"; do order=("$i" "${order[@]}"); done; fi
  for i in "${order[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
  echo "== round $round of $ROUNDS; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  json=$outdir/cgi-startup-round$round.json
  hyperfine -N --warmup 5 --runs "$RUNS" --style basic --export-json "$json" "${args[@]}"
  echo "== round $round: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  jsons+=("$json")
done

"$NODE" -e '
const fs = require("fs");
const names = JSON.parse(process.argv[1]);
// Each round'"'"'s results in the order of `names` (even rounds ran them backwards).
const rounds = process.argv.slice(2).map((f) => { const r = JSON.parse(fs.readFileSync(f, "utf8")).results; return names.map((n) => r.find((x) => x.command === n)); });
const med = (a) => { const s = [...a].sort((p, q) => p - q); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const ms = (s) => (s * 1000).toFixed(1).padStart(8);
console.log(`\nmedian ms per round, and the ratio of medians to "${names[0]}" (per round; median of the rounds):`);
console.log(`${"command".padEnd(28)}${rounds.map((_, i) => `   r${i + 1} ms`.padStart(9)).join("")}  ${rounds.map((_, i) => `r${i + 1}`.padStart(6)).join("")}  ${"ratio".padStart(6)}`);
for (const [i, n] of names.entries()) {
  const ratios = rounds.map((r) => r[i].median / r[0].median);
  console.log(`${n.padEnd(28)}${rounds.map((r) => ms(r[i].median).padStart(9)).join("")}  ${ratios.map((x) => x.toFixed(2).padStart(6)).join("")}  ${med(ratios).toFixed(2).padStart(5)}x`);
}
const mins = names.map((n, i) => Math.min(...rounds.map((r) => r[i].min)));
console.log(`\nfastest single run of each (ms), and its ratio to "${names[0]}":`);
for (const [i, n] of names.entries()) console.log(`${n.padEnd(28)}${ms(mins[i])}  ${(mins[i] / mins[0]).toFixed(2)}x`);
' "$("$NODE" -e 'console.log(JSON.stringify(process.argv.slice(1)))' "${names[@]}")" "${jsons[@]}"
