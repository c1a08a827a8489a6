#!/bin/sh
# Trims an installed tsgunicorn tree (DIR = .../usr/lib/tsgunicorn) after `npm prune --omit=dev`:
# drops what only building needed (node-gyp's object files, makefiles, the .bin links), source
# maps, and files that have no business in a system package (VCS and CI dotfiles, tests).
set -eu
dir=$1
nm=$dir/node_modules
[ -d "$nm" ] || { echo "prune-node-modules: no $nm" >&2; exit 1; }

# compiled addons: keep build/Release/*.node, drop the rest of the node-gyp build tree
find "$nm" -type d -path '*/build/Release/obj.target' -prune -exec rm -rf {} +
find "$nm" -type d -path '*/build/Release/.deps' -prune -exec rm -rf {} +
find "$nm" -type d -path '*/build/Release/obj' -prune -exec rm -rf {} +
find "$nm" -path '*/build/*' -type f \( -name Makefile -o -name '*.mk' -o -name 'config.gypi' \
    -o -name '*.o' -o -name '*.a' -o -name '*.target.mk' -o -name 'binding.Makefile' \) -delete
find "$nm" -path '*/build/Release/.forge-meta' -delete 2>/dev/null || true
# prebuilt binaries for musl libc (npm installs both libc variants of napi-rs packages such as
# node-unix-socket; Debian is glibc)
find "$nm" -mindepth 1 -maxdepth 2 -type d -name '*-musl' -prune -exec rm -rf {} +
# nan is C++ headers for compiling addons, not used at run time
rm -rf "$nm/nan"
# npm's links to the packages' command-line tools: nothing here runs them
rm -rf "$nm/.bin"
# VCS, CI and editor files, source maps, tests shipped by some packages
find "$nm" \( -name '.git*' -o -name '.npmignore' -o -name '.travis.yml' -o -name '.eslintrc*' \
    -o -name '.editorconfig' -o -name '.prettierrc*' -o -name '.nycrc*' -o -name '.jshintrc' \
    -o -name '.github' \) -prune -exec rm -rf {} +
find "$dir" -name '*.map' -type f -delete
find "$nm" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name examples -o -name example \) -exec rm -rf {} +
# documentation (README, CHANGELOG, ...) is not needed next to the code; licence texts stay
find "$nm" -type f \( -iname 'readme*' -o -iname 'changelog*' -o -iname 'history.md' -o -iname 'contributing*' \
    -o -iname 'security.md' -o -iname 'code_of_conduct*' \) -delete
# empty directories left behind
find "$nm" -depth -type d -empty -delete
