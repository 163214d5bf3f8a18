# hono-node: the Hono app of apps/hono.mjs on @hono/node-server (its usual Node server), behind
# nginx proxy_pass (HTTP/1.1, upstream keepalive 32). The peer of tsgi-hono.
BE_FRONT=nginx
BE_KIND=proxy
BE_DESC="node $(node --version) @hono/node-server $(node -p "require('$BENCH/../node_modules/@hono/node-server/package.json').version" 2>/dev/null) + hono $(node -p "require('$BENCH/../node_modules/hono/package.json').version" 2>/dev/null), $BE_WORKERS process(es) (node:cluster when >1), nginx proxy_pass HTTP/1.1 upstream keepalive 32, $TRANSPORT socket"
be_check() {
  command -v node >/dev/null || { log "node not found"; return 1; }
  [ -d "$BENCH/../node_modules/@hono/node-server" ] || { log "@hono/node-server not installed: npm install at the repository root"; return 1; }
}
be_start() {
  start_bg "$BE_DIR/app.log" node "$BENCH/apps/hono-node.mjs" --bind "$BE_BIND" --workers "$BE_WORKERS"
  BE_PID=$LAST_PID
  BE_READY=$BE_READY_ADDR
}
