#!/bin/sh
# check-bundled-licenses.sh NODE_MODULES COPYRIGHT: fails when a package bundled in NODE_MODULES
# (at any depth) has no "Files: node_modules/NAME/*" stanza in the machine-readable COPYRIGHT.
set -eu
nm=$1 copyright=$2
missing=0
for pj in $(find "$nm" -name package.json -path '*/node_modules/*' | sort); do
    dir=$(dirname "$pj")
    rel=${dir##*/node_modules/}
    # a package is node_modules/NAME or node_modules/@SCOPE/NAME (skip files deeper inside one)
    case "$rel" in
        @*/*/*|[!@]*/*) continue ;;
    esac
    if ! grep -qxF "Files: node_modules/$rel/*" "$copyright"; then
        echo "check-bundled-licenses: $rel (in $dir) is bundled but not in $copyright" >&2
        missing=1
    fi
done
exit $missing
