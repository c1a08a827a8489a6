#!/usr/bin/env bash
# Builds the tsgunicorn Debian package and checks it with lintian.
#
#   packaging/build-deb.sh [--host] [--version VERSION] [--out DIR]
#
# By default the package is built inside a Debian 13 (trixie) build root with systemd-nspawn,
# against trixie's own nodejs (20.19, ABI 115) and libsystemd, so the native addons match the
# Node.js the package will run on exactly, whatever Node this machine has. The root is
# debootstrapped once and cached in $TSG_CACHE (default /var/cache/tsgunicorn-test) as
# trixie-build (with build-essential, debhelper, npm, node-gyp, libnode-dev, libsystemd-dev,
# lintian); npm's download cache is kept there too.
#
#   --host         build on this machine instead (`dpkg-buildpackage -us -uc -b` in a copy of
#                  the tree, with the machine's nodejs; the package then depends on that Node)
#   --version V    build version V instead of the one in debian/changelog (adds a changelog
#                  entry and sets package.json's version in the build copy: a newer build of
#                  the same code)
#   --out DIR      where the .deb, .buildinfo, .changes and lintian.txt go (default dist/deb)
#
# Builds what is in the work tree now (tracked and untracked files, minus .gitignore'd ones).
# Needs root (debootstrap, systemd-nspawn) unless --host. Exit status non-zero when the build
# fails or lintian reports an error; lintian's full output is in DIR/lintian.txt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TSG_CACHE="${TSG_CACHE:-/var/cache/tsgunicorn-test}"
SUITE="${TSG_SUITE:-trixie}"
MIRROR="${TSG_MIRROR:-http://deb.debian.org/debian}"
OUT="$REPO/dist/deb"
MODE=container
VERSION=""

while [ $# -gt 0 ]; do
    case "$1" in
        --host) MODE=host ;;
        --version) VERSION="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[build-deb %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /var/tmp/tsgunicorn-deb.XXXXXX)"
chmod 0755 "$WORK"   # lintian runs as nobody
trap 'rm -rf "$WORK"' EXIT

# --- the sources: the work tree as git sees it -------------------------------------------
SRC="$WORK/tsgunicorn"
mkdir -p "$SRC"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
    | tar --null -T - -cf -) | tar -xf - -C "$SRC"
rm -rf "$SRC/.ci"

if [ -n "$VERSION" ]; then
    log "version $VERSION"
    node_version_edit="const f='$SRC/package.json';const p=JSON.parse(require('fs').readFileSync(f,'utf8'));p.version=process.argv[1];require('fs').writeFileSync(f,JSON.stringify(p,null,2)+'\n')"
    if command -v node >/dev/null; then node -e "$node_version_edit" "$VERSION"
    else sed -i "0,/\"version\": \"[^\"]*\"/s//\"version\": \"$VERSION\"/" "$SRC/package.json"; fi
    {
        printf 'tsgunicorn (%s) unstable; urgency=medium\n\n  * Rebuild as version %s.\n\n' "$VERSION" "$VERSION"
        printf ' -- %s  %s\n\n' "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$SRC/debian/changelog" | head -n 1)" "$(date -R)"
        cat "$SRC/debian/changelog"
    } >"$SRC/debian/changelog.new"
    mv "$SRC/debian/changelog.new" "$SRC/debian/changelog"
fi

# --- build --------------------------------------------------------------------------------
BUILD_SCRIPT='
set -eu
cd "$1"
dpkg-buildpackage -us -uc -b
cd ..
changes=$(ls tsgunicorn_*.changes | head -n 1)
rc=0
# lintian does not need (and does not want) root
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp"; else as_user=""; fi
$as_user lintian --info --display-level ">=pedantic" --fail-on error "$changes" >lintian.txt 2>&1 || rc=$?
cat lintian.txt
exit $rc
'

if [ "$MODE" = host ]; then
    log "building on this machine with $(command -v node) $(node -v)"
    rc=0
    bash -c "$BUILD_SCRIPT" build "$SRC" || rc=$?
else
    [ "$(id -u)" = 0 ] || die "building in the $SUITE root needs root (or use --host)"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn is missing (apt-get install systemd-container)"
    # shellcheck source=packaging/trixie-root.sh
    . "$REPO/packaging/trixie-root.sh"
    ROOT="$(ensure_root build)"
    mkdir -p "$TSG_CACHE/npm-cache"
    # the npm registry as this machine reaches it (its address, and the CA bundle if a proxy
    # re-signs TLS: the build root only has Debian's CAs)
    npm_args=()
    if command -v npm >/dev/null; then
        registry="$(npm config get registry 2>/dev/null || true)"
        cafile="$(npm config get cafile 2>/dev/null || true)"
        [ -n "$registry" ] && [ "$registry" != undefined ] && npm_args+=(-E "npm_config_registry=$registry")
        if [ -n "$cafile" ] && [ "$cafile" != undefined ] && [ "$cafile" != null ] && [ -f "$cafile" ]; then
            npm_args+=(--bind-ro="$(readlink -f "$cafile"):/etc/ssl/npm-registry-ca.crt" -E npm_config_cafile=/etc/ssl/npm-registry-ca.crt)
        fi
    fi
    log "building in $ROOT ($SUITE's nodejs $(chroot "$ROOT" node -v))"
    rc=0
    cgname="tsg-build-$$"
    ( tsg_nspawn_exec "$cgname" --quiet --register=no --keep-unit --pipe \
        --volatile=overlay -D "$ROOT" \
        --bind="$WORK:/work" --bind="$TSG_CACHE/npm-cache:/var/cache/npm" \
        -E HOME=/root -E npm_config_cache=/var/cache/npm -E LC_ALL=C.UTF-8 \
        -E DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" "${npm_args[@]+"${npm_args[@]}"}" \
        /bin/bash -c "$BUILD_SCRIPT" build /work/tsgunicorn </dev/null >&2 ) || rc=$?
    tsg_cgroup_remove "$cgname"
fi

shopt -s nullglob
built=("$WORK"/tsgunicorn_*.deb)
[ "${#built[@]}" -gt 0 ] || die "no .deb was built (exit status $rc)"
rm -f "$OUT"/tsgunicorn_* "$OUT"/tsgunicorn-dbgsym_*
cp "$WORK"/tsgunicorn_*.deb "$WORK"/tsgunicorn_*.buildinfo "$WORK"/tsgunicorn_*.changes "$OUT"/
dbgsym=("$WORK"/tsgunicorn-dbgsym_*.deb)
[ "${#dbgsym[@]}" -gt 0 ] && cp "${dbgsym[@]}" "$OUT"/
cp "$WORK/lintian.txt" "$OUT/lintian.txt" 2>/dev/null || true
[ "$rc" -eq 0 ] || die "build or lintian failed (exit status $rc); lintian: $OUT/lintian.txt"
for deb in "$OUT"/tsgunicorn_*.deb; do printf '%s\n' "$deb"; done
