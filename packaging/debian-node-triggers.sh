#!/bin/sh
# Prints debian/tsgunicorn.triggers: dpkg file triggers on what a running master executes from
# the distribution's nodejs, the node binary and the libnode it links (their real paths on this
# architecture). An upgrade of nodejs or libnode then runs the postinst's `triggered` branch,
# which hands every running instance over to a new master by USR2 (as a tsgunicorn upgrade
# does): the instances run the new Node without a restart. `interest-noawait`: nodejs is
# configured without waiting for that.
set -eu

node_bin=$(readlink -f "$(command -v node)")
echo "interest-noawait $node_bin"
# ldd names the library as the loader found it (/lib/... on a merged /usr): dpkg knows the
# real path.
ldd "$node_bin" | awk '$1 ~ /^libnode\.so/ { print $3 }' | while read -r lib; do
    echo "interest-noawait $(readlink -f "$lib")"
done
