# Sourced by packaging/build-deb.sh (and the end-to-end test): cached Debian roots.
#
#   ensure_root build     prints the path of a root with the package's build dependencies
#   ensure_root systemd   prints the path of a bootable root (systemd, dbus, Debian's nodejs)
#
# Roots live in $TSG_CACHE/$TSG_SUITE-<kind> (default /var/cache/tsgunicorn-test/trixie-*) and
# are made once: debootstrap (or, for the build root, a copy of packaging/quickstart-check.sh's
# $TSG_SUITE-root when that exists), then `apt-get install` inside with systemd-nspawn. A root
# whose package list changed here is made again. They are never modified after that: builds and
# boots use them through a throw-away overlay. Delete a directory to force a fresh one.

TSG_CACHE="${TSG_CACHE:-/var/cache/tsgunicorn-test}"
TSG_SUITE="${TSG_SUITE:-trixie}"
TSG_MIRROR="${TSG_MIRROR:-http://deb.debian.org/debian}"

# What each root has on top of debootstrap's minbase.
tsg_root_packages() {
    case "$1" in
        build) echo "nodejs npm node-gyp libnode-dev libsystemd-dev build-essential debhelper pkgconf python3 lintian ca-certificates" ;;
        systemd) echo "systemd systemd-sysv dbus nodejs curl ca-certificates procps iproute2 logrotate man-db" ;;
        *) return 1 ;;
    esac
}

tsg_log() { printf '[trixie-root %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ensure_root() {
    local kind="$1" packages root marker want
    packages="$(tsg_root_packages "$kind")" || { tsg_log "unknown root kind '$kind'"; return 1; }
    root="$TSG_CACHE/$TSG_SUITE-$kind"
    marker="$root/.tsgunicorn-root-ready"
    want="$TSG_SUITE $packages"
    mkdir -p "$TSG_CACHE"
    (
        # one builder per root at a time
        flock 9
        if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
            exit 0
        fi
        local tmp="$root.tmp" t0 seed="$TSG_CACHE/$TSG_SUITE-root"
        t0=$(date +%s)
        rm -rf "$tmp"
        if [ "$kind" = build ] && [ -f "$seed/.tsgunicorn-qs-ready" ]; then
            tsg_log "making $root from a copy of $seed"
            cp -a "$seed" "$tmp" || exit 1
            rm -f "$tmp/.tsgunicorn-qs-ready"
        else
            tsg_log "debootstrap $TSG_SUITE into $root (minbase + ${packages// /,})"
            if ! debootstrap --variant=minbase --include="${packages// /,}" "$TSG_SUITE" "$tmp" "$TSG_MIRROR" \
                >"$TSG_CACHE/debootstrap-$kind.log" 2>&1; then
                tail -n 20 "$TSG_CACHE/debootstrap-$kind.log" >&2
                tsg_log "debootstrap failed (log: $TSG_CACHE/debootstrap-$kind.log)"
                exit 1
            fi
        fi
        tsg_log "apt-get install in $root: $packages"
        # shellcheck disable=SC2086
        if ! SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --quiet --register=no --keep-unit --pipe \
            -D "$tmp" -E DEBIAN_FRONTEND=noninteractive /bin/sh -c \
            "apt-get -o Acquire::Retries=3 update -q && apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends $packages && apt-get clean" \
            </dev/null >"$TSG_CACHE/apt-$kind.log" 2>&1; then
            tail -n 20 "$TSG_CACHE/apt-$kind.log" >&2
            tsg_log "apt-get failed (log: $TSG_CACHE/apt-$kind.log)"
            exit 1
        fi
        # a machine id is made at each boot (the overlay is thrown away)
        : >"$tmp/etc/machine-id"
        printf '%s\n' "$want" >"$tmp/.tsgunicorn-root-ready"
        rm -rf "$root" && mv "$tmp" "$root"
        tsg_log "$root ready in $(( $(date +%s) - t0 ))s"
    ) 9>"$TSG_CACHE/.lock-$TSG_SUITE-$kind" || return 1
    printf '%s\n' "$root"
}
