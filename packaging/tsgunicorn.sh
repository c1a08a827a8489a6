#!/bin/sh
# /usr/bin/tsgunicorn in the Debian package: run the installed tree with the distribution's
# Node.js, the one its native addons were compiled for (whatever `node` comes first in PATH).
exec /usr/bin/node /usr/lib/tsgunicorn/bin/tsgunicorn.js "$@"
