#!/bin/sh
# Prints the value of ${nodejs:Depends} for debian/control: the Node.js packages whose ABI
# (NODE_MODULE_VERSION) matches the native addons (sd-notify, posix) that this build compiled
# with the `node` in PATH. Node keeps the ABI within a major version, so the bound is
#   nodejs (>= <the version built with>~), nodejs (<< <next major>~)
# plus libnode<ABI> where the distribution ships Node as that library (Debian's nodejs does).
set -eu

node_bin=$(command -v node) || { echo "debian-node-depends: no node in PATH" >&2; exit 1; }
node_bin=$(readlink -f "$node_bin")
version=$(node -p 'process.versions.node')
abi=$(node -p 'process.versions.modules')
major=${version%%.*}

# The addons must come from the distribution's package, not from a Node installed by hand.
if ! owner=$(dpkg-query -S "$node_bin" 2>/dev/null); then
    echo "debian-node-depends: $node_bin belongs to no package; build with the distribution's nodejs" >&2
    exit 1
fi
case "$owner" in
    nodejs:*|nodejs\ *) ;;
    *) echo "debian-node-depends: $node_bin comes from '${owner%%:*}', not from the nodejs package" >&2; exit 1 ;;
esac

depends="nodejs (>= ${version}~), nodejs (<< $((major + 1))~)"
if dpkg-query -W -f='${Status}' "libnode${abi}" 2>/dev/null | grep -q 'install ok installed'; then
    depends="$depends, libnode${abi}"
fi
printf '%s\n' "$depends"
