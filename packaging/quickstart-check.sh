#!/usr/bin/env bash
# Checks the README quick start on a fresh Debian 13 (trixie) that has only Debian's own
# `nodejs` and `npm` (no build tools, no libsystemd-dev), inside systemd-nspawn:
#
#   npm ci && npx tsgunicorn examples/hello.js   ->  curl 127.0.0.1:8000 answers
#   npm test                                    ->  passes
#
# Usage: packaging/quickstart-check.sh      (as root; no arguments)
# Prints a line per step and ends with PASS or FAIL (exit 0 / 1).
# `npm test` runs as a user would run it, without CI set: the tests that need what a bare Debian
# lacks (systemd-socket-activate, the native addons, systemd-nspawn) are skipped and say so
# (in CI they fail instead). QS_REQUIRE_TESTS=0 reports its result without counting it.
#
# The debootstrapped root is cached in $QS_ROOT (default
# /var/cache/tsgunicorn-test/trixie-root) and never modified: each run works in a
# throw-away copy (or with `systemd-nspawn --ephemeral`, QS_EPHEMERAL=1). Delete that
# directory to rebuild it.
# The code checked is the committed HEAD of this repository (a `git clone`, so untracked
# files don't leak in); QS_REF picks another commit/branch.
#
# Network: `npm ci` and the server run with the host's network (npm needs the registry;
# the server binds 127.0.0.1 only, port 8000 unless taken); the tests run in a container
# with --private-network (loopback only).
set -uo pipefail

QS_SUITE="${QS_SUITE:-trixie}"
QS_MIRROR="${QS_MIRROR:-http://deb.debian.org/debian}"
QS_ROOT="${QS_ROOT:-/var/cache/tsgunicorn-test/${QS_SUITE}-root}"
QS_REF="${QS_REF:-HEAD}"
QS_REQUIRE_TESTS="${QS_REQUIRE_TESTS:-1}"
QS_PACKAGES="nodejs,npm,ca-certificates,curl"
HOST_PACKAGES="debootstrap systemd-container git"

REPO="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)"
T0=$(date +%s)
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; echo FAIL; exit 1; }

# --register=no --keep-unit: work without systemd as PID 1 / without a system bus (CI
# sandboxes, containers); nspawn then only warns that it can't clean its propagation dir.
NSPAWN_OPTS="--quiet --register=no --keep-unit --console=pipe"
MACHINE_NAME="tsgunicorn-qs-$$"
cleanup_propagate() {
    rm -rf /run/systemd/nspawn/propagate/"$MACHINE_NAME"* "/run/systemd/nspawn/propagate/$(basename "$QS_ROOT").tmp" 2>/dev/null || true
}

[ "$(id -u)" = 0 ] || fail "must run as root (debootstrap, systemd-nspawn)"

# --- host tools --------------------------------------------------------------------------
missing=""
for p in $HOST_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "installing host packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q $missing </dev/null >/dev/null \
        || fail "could not install$missing"
fi

# --- the cached trixie root --------------------------------------------------------------
if [ ! -f "$QS_ROOT/.tsgunicorn-qs-ready" ]; then
    # debootstrap's own resolver can't install npm's dependency tree (--include=npm leaves
    # node-gauge unconfigured: it ignores some dependency forms), so debootstrap a bare
    # minbase and let apt inside install the packages, as a user would.
    # --no-install-recommends: plain `apt install npm` would pull build-essential through
    # node-gyp's Recommends; this check is about a machine without build tools.
    DBLOG="$(dirname "$QS_ROOT")/debootstrap.log"
    log "debootstrap $QS_SUITE minbase into $QS_ROOT, then apt-get install $QS_PACKAGES (log: $DBLOG)"
    mkdir -p "$(dirname "$QS_ROOT")"
    if [ ! -f "$QS_ROOT.tmp/.debootstrap-done" ]; then
        rm -rf "$QS_ROOT.tmp"
        if ! debootstrap --variant=minbase --include=ca-certificates "$QS_SUITE" "$QS_ROOT.tmp" "$QS_MIRROR" \
            >"$DBLOG" 2>&1; then
            tail -n 20 "$DBLOG"
            fail "debootstrap failed (log: $DBLOG)"
        fi
        touch "$QS_ROOT.tmp/.debootstrap-done"
    fi
    printf 'deb %s %s main\n' "$QS_MIRROR" "$QS_SUITE" >"$QS_ROOT.tmp/etc/apt/sources.list"
    if ! systemd-nspawn $NSPAWN_OPTS -D "$QS_ROOT.tmp" /bin/sh -c \
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends ${QS_PACKAGES//,/ } && apt-get clean" \
        </dev/null >>"$DBLOG" 2>&1; then
        tail -n 20 "$DBLOG"
        fail "apt-get install $QS_PACKAGES in the $QS_SUITE root failed (log: $DBLOG)"
    fi
    rm -rf "$QS_ROOT"; mv "$QS_ROOT.tmp" "$QS_ROOT"
    touch "$QS_ROOT/.tsgunicorn-qs-ready"
    log "root ready ($(( $(date +%s) - T0 ))s)"
else
    log "reusing cached root $QS_ROOT"
fi

# --- a clean copy of the repo ------------------------------------------------------------
WORK="$(mktemp -d /var/tmp/tsgunicorn-qs.XXXXXX)"
trap 'rm -rf "$WORK"; cleanup_propagate' EXIT
git clone -q "$REPO" "$WORK/src" || fail "git clone $REPO"
git -C "$WORK/src" checkout -q "$QS_REF" || fail "git checkout $QS_REF"
log "checking $(git -C "$WORK/src" log -1 --format='%h %s')"
mkdir -p "$WORK/app" "$WORK/qs"

cat >"$WORK/qs/inner.sh" <<'INNER'
#!/bin/bash
# runs inside the trixie container; $1 = install | serve | test
set -uo pipefail
export HOME=/root CI=true npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
cd /app
case "$1" in
install)
    echo "debian $(cat /etc/debian_version); node $(node -v); npm $(npm -v)"
    for t in gcc g++ make python3 pkg-config; do
        printf '  %-10s %s\n' "$t" "$(command -v $t || echo 'not installed')"
    done
    printf '  %-10s %s\n' libsystemd "$(ls /usr/include/systemd/sd-daemon.h 2>/dev/null || echo 'no headers')"
    cp -a /src/. /app/
    npm ci; rc=$?
    echo "npm ci exit status: $rc"
    # why optional dependencies were dropped (npm only says so in its debug log)
    grep -hE 'reify failed optional dependency .*/(sd-notify|posix)$' \
        /root/.npm/_logs/*-debug-0.log 2>/dev/null | sed 's/^[0-9]* /  npm log: /' | sort -u
    for m in sd-notify posix node-unix-socket; do
        if node -e "require('$m')" 2>/dev/null; then echo "  optional native dep $m: loads"
        else echo "  optional native dep $m: not available ($(node -e "try{require('$m')}catch(e){console.log(e.message.split('\n')[0])}"))"; fi
    done
    exit $rc ;;
serve)
    port="${QS_PORT:-8000}"
    # the README's command (default bind 127.0.0.1:8000); -b only if 8000 is taken here
    bind=(); [ "$port" = 8000 ] || bind=(-b "127.0.0.1:$port")
    echo "\$ npx tsgunicorn ${bind[*]} examples/hello.js"
    (npx tsgunicorn "${bind[@]}" examples/hello.js >/tmp/server.log 2>&1 &)
    sleep 3          # the README's wait; then keep trying for a slow (loaded) machine
    body="$(curl -s -m 10 "127.0.0.1:$port")"; rc=$?
    waited=3
    while [ "$rc" -ne 0 ] && [ "$waited" -lt 60 ]; do
        sleep 1; waited=$((waited + 1))
        body="$(curl -s -m 10 "127.0.0.1:$port")"; rc=$?
    done
    note=""; [ "$waited" -gt 3 ] && note=" (it was not answering yet after the README's 3s)"
    echo "curl exit status: $rc after ${waited}s$note; body: $body"
    echo "--- server log:"; cat /tmp/server.log
    # stop it the way systemd would (minbase has no pgrep: the pid is in the log)
    pid="$(sed -n 's/.*Listening at: .* (\([0-9]*\))$/\1/p' /tmp/server.log | head -n 1)"
    if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && echo "master $pid still running 10s after TERM" || echo "master $pid stopped on TERM"
    fi
    case "$body" in "Hello from tsgunicorn"*) exit 0 ;; *) exit 1 ;; esac ;;
test)
    # as a user runs it: tests that need what this machine lacks are skipped, not failed
    unset CI
    # stop the run 60s after its TAP summary if AVA lingers
    timeout --kill-after=30 1200 npm test -- --tap >/tmp/test.log 2>&1 &
    pid=$!; lingered=0
    tail -n +1 -f --pid=$pid /tmp/test.log &
    while kill -0 $pid 2>/dev/null; do
        sleep 2
        if grep -qE '^# fail [0-9]+' /tmp/test.log; then
            lingered=$((lingered + 2))
            [ $lingered -ge 60 ] && { echo "npm test still running 60s after its TAP summary: stopped"; kill -TERM $pid; break; }
        fi
    done
    wait $pid; rc=$?; sleep 1; exit $rc ;;
esac
INNER
chmod +x "$WORK/qs/inner.sh"

# The cached root is never modified. By default one throw-away copy of it serves the three
# steps, like one fresh machine; QS_EPHEMERAL=1 uses `systemd-nspawn --ephemeral` per step
# instead (same isolation, but nspawn's own copy took 2-3 minutes per step on a busy disk
# here, against ~10 s for cp -a).
if [ "${QS_EPHEMERAL:-0}" = 1 ]; then
    MACHINE_ARGS=(--ephemeral -D "$QS_ROOT")
else
    log "copying the root for this run"
    cp -a --reflink=auto "$QS_ROOT" "$WORK/root" || fail "cp -a $QS_ROOT"
    MACHINE_ARGS=(-D "$WORK/root")
fi

nspawn() { # nspawn LOGNAME [extra nspawn args] -- inner-step
    local name="$1"; shift
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done; shift
    systemd-nspawn $NSPAWN_OPTS --machine="$MACHINE_NAME-$name" "${MACHINE_ARGS[@]}" \
        --bind-ro="$WORK/src:/src" --bind="$WORK/app:/app" --bind-ro="$WORK/qs:/qs" \
        "${args[@]+"${args[@]}"}" /bin/bash /qs/inner.sh "$@" </dev/null >"$WORK/$name.log" 2>&1
}

LOGS="${QS_LOG_DIR:-/var/cache/tsgunicorn-test/logs}"; mkdir -p "$LOGS"

# The host's CA bundle, for hosts whose way to the npm registry re-signs TLS with a local CA
# (npm in the container would fail with SELF_SIGNED_CERT_IN_CHAIN): handed to npm/node in
# the container. On a host without such a CA this changes nothing.
HOST_CA="${NODE_EXTRA_CA_CERTS:-}"
[ -n "$HOST_CA" ] && [ -f "$HOST_CA" ] || HOST_CA="$(npm config get cafile 2>/dev/null || true)"
[ -n "$HOST_CA" ] && [ -f "$HOST_CA" ] || HOST_CA=/etc/ssl/certs/ca-certificates.crt
CA_ARGS=()
if [ -f "$HOST_CA" ]; then
    cp "$HOST_CA" "$WORK/qs/host-ca.crt"
    CA_ARGS=(--setenv=NODE_EXTRA_CA_CERTS=/qs/host-ca.crt --setenv=npm_config_cafile=/qs/host-ca.crt)
fi

verdict=0
log "step 1: npm ci (host network, for the npm registry)"
nspawn install "${CA_ARGS[@]+"${CA_ARGS[@]}"}" -- install; rc=$?
cp "$WORK/install.log" "$LOGS/"
grep -E '^(debian|  |npm ci exit)|npm (WARN|ERR|warn|error) (EBADENGINE +(package|required|current)|code|gyp)|gyp (ERR|info using)|^(added|removed) ' "$WORK/install.log" | head -40
if [ "$rc" -ne 0 ]; then
    grep -E '^npm ERR' "$WORK/install.log" | tail -n 15
    fail "npm ci failed in $QS_SUITE (log: $LOGS/install.log)"
fi
log "step 1: npm ci OK"

# The server runs with the host's network, like on a user's machine (npx may ask the
# registry); it binds loopback only. Port 8000 as in the README unless it is taken here.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
QS_PORT=8000
if port_busy "$QS_PORT"; then
    for _ in $(seq 50); do
        QS_PORT=$(( 20000 + RANDOM % 30000 )); port_busy "$QS_PORT" || break
    done
    log "port 8000 is in use on this host: using $QS_PORT instead"
fi
log "step 2: npx tsgunicorn examples/hello.js; curl 127.0.0.1:$QS_PORT"
nspawn serve --setenv=QS_PORT="$QS_PORT" -- serve; rc=$?
cp "$WORK/serve.log" "$LOGS/"
sed 's/^/    /' "$WORK/serve.log" | head -30
if [ "$rc" -ne 0 ]; then verdict=1; log "step 2: FAILED (log: $LOGS/serve.log)"; else log "step 2: server answered OK"; fi

log "step 3: npm test (private network)"
nspawn test --private-network -- test; rc=$?
cp "$WORK/test.log" "$LOGS/"
grep -E '^(not ok|# (tests|pass|skip|fail) )|still running' "$WORK/test.log" | sed 's/^/    /' | head -40
if [ "$rc" -ne 0 ]; then
    log "step 3: npm test exited $rc (log: $LOGS/test.log)"
    [ "$QS_REQUIRE_TESTS" = 1 ] && verdict=1
else
    log "step 3: npm test OK"
fi

log "total $(( $(date +%s) - T0 ))s"
if [ "$verdict" -eq 0 ]; then echo PASS; else echo FAIL; fi
exit "$verdict"
