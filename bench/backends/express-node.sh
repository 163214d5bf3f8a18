# express-node: the Express app of apps/express.mjs on node:http (as app.listen() runs it), behind
# nginx proxy_pass (HTTP/1.1, upstream keepalive 32). The peer of tsgi-express.
BE_FRONT=nginx
BE_KIND=proxy
BE_DESC="node $(node --version) node:http + express $(node -p "require('$BENCH/../node_modules/express/package.json').version" 2>/dev/null), $BE_WORKERS process(es) (node:cluster when >1), nginx proxy_pass HTTP/1.1 upstream keepalive 32, $TRANSPORT socket"
be_check() {
  command -v node >/dev/null || { log "node not found"; return 1; }
  [ -d "$BENCH/../node_modules/express" ] || { log "express not installed: npm install at the repository root"; return 1; }
}
be_start() {
  start_bg "$BE_DIR/app.log" node "$BENCH/apps/express-node.mjs" --bind "$BE_BIND" --workers "$BE_WORKERS"
  BE_PID=$LAST_PID
  BE_READY=$BE_READY_ADDR
}
