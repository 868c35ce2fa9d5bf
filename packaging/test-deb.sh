#!/usr/bin/env bash
# The Debian package end to end (issue 19, point 9): build it with `cargo deb`, `dpkg -i` it,
# check what it installed (binary, unit, conffile, the cronraft user, /var/lib/cronraft 0700),
# run `cronraft serve` from its config as the cronraft user until /health answers, stop it, then
# `dpkg -r` (data, user and config stay) and `dpkg -P` (everything is gone).
#
# Needs root, dpkg and cargo-deb (`cargo install cargo-deb --locked`); .ci/run installs cargo-deb
# and runs this. It fails, saying what is missing, rather than passing without doing its work.
# Where systemd runs (a developer's machine), the package starts the service itself and the test
# checks that one; without systemd (CI's container) it starts the node by hand with setpriv, on
# free ports (the config's are overridden by flags, as an operator would).
#
# The package is built with the dev profile by default (CRONRAFT_DEB_PROFILE=release for the
# real thing): the test is about packaging, and the test build is already there. Cargo honours
# CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "test-deb: $*"; }
fail() {
    echo "test-deb: FAILED: $*" >&2
    exit 1
}

# Phase 0: what the test needs, and a machine without a cronraft of its own (the test purges).
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, the cronraft user)"
command -v dpkg >/dev/null || fail "needs dpkg (a Debian system)"
command -v setpriv >/dev/null || fail "needs setpriv (util-linux)"
cargo deb --version >/dev/null 2>&1 || fail "needs cargo-deb: cargo install cargo-deb --locked"
if dpkg -s cronraft >/dev/null 2>&1; then fail "a cronraft package is installed already; this test installs and purges its own"; fi
if getent passwd cronraft >/dev/null; then fail "a cronraft user exists already"; fi
[ ! -e /var/lib/cronraft ] || fail "/var/lib/cronraft exists already"

work=$(mktemp -d)
node_pid=""
cleanup() {
    if [ -n "$node_pid" ]; then kill -KILL "$node_pid" 2>/dev/null || true; fi
    if dpkg -s cronraft >/dev/null 2>&1; then dpkg -P cronraft >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Phase 1: build and install.
profile=${CRONRAFT_DEB_PROFILE:-dev}
step "cargo deb --profile $profile"
cargo deb -p cronraft --profile "$profile" --fast -o "$work/" 2>&1 | tail -3
deb=$(ls "$work"/cronraft_*.deb)
step "dpkg -i $(basename "$deb")"
dpkg -i "$deb"

# Phase 2: what it installed, with the owners and modes the node relies on.
[ -x /usr/bin/cronraft ] || fail "/usr/bin/cronraft is missing"
/usr/bin/cronraft --version | grep -q '^cronraft ' || fail "cronraft --version"
grep -qx 'ExecStart=/usr/bin/cronraft serve --config /etc/cronraft/cronraft.toml' \
    /lib/systemd/system/cronraft.service || fail "the unit does not run /usr/bin/cronraft from /etc/cronraft"
dpkg-query -W -f='${Conffiles}\n' cronraft | grep -q '/etc/cronraft/cronraft.toml' \
    || fail "/etc/cronraft/cronraft.toml is not a conffile"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd cronraft) || fail "no cronraft user"
[ "$uid" -lt 1000 ] || fail "the cronraft user is not a system user (uid $uid)"
[ "$home" = /var/lib/cronraft ] && [ "$shell" = /usr/sbin/nologin ] || fail "cronraft user: home $home, shell $shell"
[ "$(stat -c '%a %U %G' /var/lib/cronraft)" = "700 cronraft cronraft" ] \
    || fail "/var/lib/cronraft is $(stat -c '%a %U %G' /var/lib/cronraft), not 700 cronraft cronraft"
[ "$(stat -c '%a %U %G' /etc/cronraft/cronraft.toml)" = "640 root cronraft" ] \
    || fail "/etc/cronraft/cronraft.toml is $(stat -c '%a %U %G' /etc/cronraft/cronraft.toml)"
as_cronraft() { setpriv --reuid=cronraft --regid=cronraft --init-groups -- "$@"; }
as_cronraft /usr/bin/cronraft config check --config /etc/cronraft/cronraft.toml >/dev/null \
    || fail "the shipped config does not pass cronraft config check as the cronraft user"
step "files, user and modes ok; the shipped config checks clean"

# GET /health on $1 (host:port): prints the status line.
health() {
    local host=${1%:*} port=${1##*:} line
    exec 3<>"/dev/tcp/$host/$port" || return 1
    printf 'GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" >&3
    read -r -t 5 line <&3 || true
    exec 3<&-
    echo "${line%$'\r'}"
}
# Waits up to 30 s for /health on $1 to answer 200.
wait_healthy() {
    for _ in $(seq 1 60); do
        if [ "$(health "$1" 2>/dev/null)" = "HTTP/1.1 200 OK" ]; then return 0; fi
        sleep 0.5
    done
    return 1
}

# Phase 3: the node runs from its config, as the cronraft user.
if [ -d /run/systemd/system ]; then
    step "systemd runs here: the package started the service"
    systemctl is-active --quiet cronraft || fail "the service is not active: $(systemctl status cronraft --no-pager || true)"
    wait_healthy 127.0.0.1:7340 || fail "the service's /health did not answer 200"
    [ "$(stat -c %U /proc/"$(systemctl show -p MainPID --value cronraft)")" = cronraft ] || fail "not run as cronraft"
else
    step "no systemd: starting cronraft serve --config /etc/cronraft/cronraft.toml as cronraft"
    (cd / && exec setpriv --reuid=cronraft --regid=cronraft --init-groups -- /usr/bin/cronraft serve \
        --config /etc/cronraft/cronraft.toml --http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 \
        >"$work/stdout" 2>"$work/stderr") &
    node_pid=$!
    addr=""
    for _ in $(seq 1 60); do
        addr=$(sed -n 's/^cronraft node 1 listening http=\([^ ]*\) .*/\1/p' "$work/stdout")
        [ -n "$addr" ] && break
        kill -0 "$node_pid" 2>/dev/null || fail "the node exited: $(cat "$work/stderr")"
        sleep 0.5
    done
    [ -n "$addr" ] || fail "no listening line within 30 s: $(cat "$work/stderr")"
    wait_healthy "$addr" || fail "/health on $addr did not answer 200: $(cat "$work/stderr")"
    step "node up at $addr, /health 200"
    [ -z "$(find /var/lib/cronraft -not -user cronraft)" ] || fail "files in /var/lib/cronraft not owned by cronraft"
    [ -n "$(find /var/lib/cronraft -mindepth 1 -print -quit)" ] || fail "the node wrote nothing to /var/lib/cronraft"
    kill -TERM "$node_pid"
    wait "$node_pid" || fail "the node did not exit 0 on SIGTERM: $(cat "$work/stderr")"
    node_pid=""
    step "stopped with SIGTERM, exit 0"
fi

# Phase 4: remove keeps the data, the user and the edited config; purge removes everything.
dpkg -r cronraft
[ ! -e /usr/bin/cronraft ] && [ ! -e /lib/systemd/system/cronraft.service ] || fail "dpkg -r left the binary or unit"
[ -d /var/lib/cronraft ] && getent passwd cronraft >/dev/null || fail "dpkg -r removed the data or the user"
[ -f /etc/cronraft/cronraft.toml ] || fail "dpkg -r removed the conffile"
step "dpkg -r: binary and unit gone; data, user and config kept"
dpkg -P cronraft
dpkg -s cronraft >/dev/null 2>&1 && fail "the package is still known to dpkg after purge"
for path in /var/lib/cronraft /etc/cronraft /usr/bin/cronraft /lib/systemd/system/cronraft.service; do
    [ ! -e "$path" ] || fail "$path is left after dpkg -P"
done
getent passwd cronraft >/dev/null && fail "the cronraft user is left after dpkg -P"
getent group cronraft >/dev/null && fail "the cronraft group is left after dpkg -P"
step "dpkg -P: everything gone"
echo "test-deb: 1 passed, 0 failed"
