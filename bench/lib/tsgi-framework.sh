# Shared by tsgi-hono.sh and tsgi-express.sh (sourced with TSGI_FRAMEWORK set): a framework app
# from apps/$TSGI_FRAMEWORK.mjs through tsgi FastCGI behind nginx fastcgi_pass, every scenario.
TSGI_HOME=${TSGI_HOME:-$(cd "$BENCH/.." && pwd)}
TSGI_BIN=$TSGI_HOME/bin/tsgi
SCRIPT_FILENAME=$BENCH/apps/$TSGI_FRAMEWORK.mjs
BE_FRONT=nginx
BE_KIND=fastcgi
BE_KEEPALIVE=${FCGI_KEEPALIVE:-0}
BE_DESC="tsgi ($TSGI_BIN) --protocol fastcgi --bind $BE_BIND --workers $BE_WORKERS, app bench/apps/$TSGI_FRAMEWORK.mjs ($TSGI_FRAMEWORK $(node -p "require('$TSGI_HOME/node_modules/$TSGI_FRAMEWORK/package.json').version" 2>/dev/null)), fastcgi_keep_conn $( [ "$BE_KEEPALIVE" = 1 ] && echo on || echo off)"
be_check() {
  [ -x "$TSGI_BIN" ] || { log "$TSGI_BIN not found or not executable (set TSGI_HOME to a tsgi checkout after npm install)"; return 1; }
  [ -d "$TSGI_HOME/node_modules/$TSGI_FRAMEWORK" ] || { log "$TSGI_FRAMEWORK not installed: npm install in $TSGI_HOME (a devDependency)"; return 1; }
}
be_start() {
  start_bg "$BE_DIR/tsgi.log" "$TSGI_BIN" serve "$BENCH/apps/$TSGI_FRAMEWORK.mjs" \
    --protocol fastcgi --bind "$BE_BIND" --workers "$BE_WORKERS"
  BE_PID=$LAST_PID
  BE_READY=$BE_READY_ADDR
}
