#!/bin/sh
# A CGI program that runs a tsgi app (docs/cgi.md). The web server runs this file once per
# request with the request in its environment and on stdin; `exec` turns this shell into node,
# so the process the server watches (and signals) is tsgi itself.
# Edit the two paths: where tsgi is installed (a checkout, or node_modules/tsgi), and your app.
# `node` must be on the PATH the web server gives CGI programs (else: exec /usr/bin/node /path/...).
exec /path/to/tsgi/bin/tsgi cgi /path/to/app.mjs
