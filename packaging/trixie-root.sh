# Sourced by packaging/build-deb.sh (and the end-to-end test): cached Debian roots.
#
#   ensure_root build     prints the path of a root with the package's build dependencies
#   ensure_root systemd   prints the path of a bootable root (systemd, dbus, Debian's nodejs)
#
# Roots live in $TSG_CACHE/$TSG_SUITE-<kind> (default /var/cache/tsgunicorn-test/trixie-*) and
# are made once: debootstrap of a bare minbase (or, for the build root, a copy of
# packaging/quickstart-check.sh's $TSG_SUITE-root when that exists), then `apt-get install`
# inside with systemd-nspawn. A root whose package list changed here is made again. They are
# never modified after that: builds and boots use them through a throw-away overlay. Delete a
# directory to force a fresh one.

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

# tsg_cgroup_dir NAME: a cgroup (v2) of our own for one systemd-nspawn, below the caller's, or
# nothing where there is none to be had. Run without a host systemd (--keep-unit
# --register=no), nspawn puts its container in "payload" below its own cgroup: two nspawns
# started from the same cgroup would share it (and two booted systemds would fight over it).
tsg_cgroup_dir() {
    local mnt cur
    mnt=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -n 1)
    cur=$(sed -n 's/^0:://p' /proc/self/cgroup)
    [ -n "$mnt" ] && [ -n "$cur" ] && [ -d "$mnt$cur" ] || return 0
    printf '%s/%s\n' "$mnt${cur%/}" "$1"
}

# tsg_cgroup_remove NAME: removes that cgroup (and the empty ones nspawn left in it).
tsg_cgroup_remove() {
    local cg
    cg=$(tsg_cgroup_dir "$1")
    [ -n "$cg" ] && [ -d "$cg" ] || return 0
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

# tsg_nspawn_exec NAME ARGS...: becomes `systemd-nspawn ARGS...` in the cgroup
# tsg_cgroup_dir NAME (when it can be made; tsg_cgroup_remove it once nspawn has exited).
tsg_nspawn_exec() {
    local cg
    cg=$(tsg_cgroup_dir "$1"); shift
    if [ -n "$cg" ] && mkdir -p "$cg" 2>/dev/null; then
        echo "${BASHPID:-$$}" >"$cg/cgroup.procs" 2>/dev/null || rmdir "$cg" 2>/dev/null || true
    fi
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn "$@"
}

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
            # A bare minbase: debootstrap's own resolver can't install these packages' dependency
            # trees (--include=npm,lintian leaves npm and libnet-ssleay-perl unconfigured: it ignores
            # virtual packages such as perl-openssl-abi-3), so apt-get installs them below.
            tsg_log "debootstrap $TSG_SUITE minbase into $root"
            if ! debootstrap --variant=minbase "$TSG_SUITE" "$tmp" "$TSG_MIRROR" \
                >"$TSG_CACHE/debootstrap-$kind.log" 2>&1; then
                tail -n 20 "$TSG_CACHE/debootstrap-$kind.log" >&2
                tsg_log "debootstrap failed (log: $TSG_CACHE/debootstrap-$kind.log)"
                exit 1
            fi
        fi
        tsg_log "apt-get install in $root: $packages"
        # shellcheck disable=SC2086
        local cgname="tsg-root-$kind-$$" rc=0
        ( tsg_nspawn_exec "$cgname" --quiet --register=no --keep-unit --pipe \
            -D "$tmp" -E DEBIAN_FRONTEND=noninteractive /bin/sh -c \
            "apt-get -o Acquire::Retries=3 update -q && apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends $packages && apt-get clean" \
            </dev/null >"$TSG_CACHE/apt-$kind.log" 2>&1 ) || rc=$?
        tsg_cgroup_remove "$cgname"
        if [ "$rc" -ne 0 ]; then
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
