# tsgi-hono: the Hono app of apps/hono.mjs, unchanged, through tsgi FastCGI behind nginx.
# Runs  $TSGI_HOME/bin/tsgi serve bench/apps/hono.mjs --protocol fastcgi --bind ADDR --workers N
# (the app has fetch(): served through fromFetch). Compare with hono-node (@hono/node-server + proxy_pass).
TSGI_FRAMEWORK=hono
. "$BENCH/lib/tsgi-framework.sh"
