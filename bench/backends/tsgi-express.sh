# tsgi-express: the Express app of apps/express.mjs, unchanged, through tsgi FastCGI behind nginx.
# Runs  $TSGI_HOME/bin/tsgi serve bench/apps/express.mjs --protocol fastcgi --bind ADDR --workers N
# (an Express app: served through fromNodeListener). Compare with express-node (node:http + proxy_pass).
TSGI_FRAMEWORK=express
. "$BENCH/lib/tsgi-framework.sh"
