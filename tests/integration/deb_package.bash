#!/usr/bin/env bash
# deb_package.bash OUT: the Debian package `make deb` built into OUT, checked
# without installing it on this system: its control data (conffiles, the
# units enabled by its maintainer scripts, library dependencies), its files
# unpacked with `dpkg-deb -x` into a temporary root, and both services run
# from there with the command lines of their units (ExecStart with the
# unit's EnvironmentFile, the unpacked root standing for /) on ephemeral
# loopback ports: the engine, the sidecar in front of it, one request
# through the sidecar, both stopped by PID. Run by `make deb-test` (not by
# `make test`: it builds the package). Ends with "N passed, N failed,
# N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
out=${1:-build-deb}

source tests/integration/check_lib.bash
suite_setup

deb=$(ls "$out"/hpprouter_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
    fail "make deb built a package" "no $out/hpprouter_*.deb"
    suite_end
fi
ok "make deb built $(basename "$deb")"

# Control data.
dpkg-deb -e "$deb" "$tmp/control"
check "conffiles: the flag files in /etc/hpprouter" \
    "/etc/hpprouter/engine.conf /etc/hpprouter/sidecar.conf" \
    "$(sort "$tmp/control/conffiles" | paste -sd' ')"
has_line "postinst enables the engine's unit" "enable 'hpp-engine.service'" "$tmp/control/postinst"
has_line "postinst enables the sidecar's unit" "enable 'hpp-sidecar.service'" "$tmp/control/postinst"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libzmq5 libsodium23 libevent-2.1-7 libjansson4 libsystemd0; do
    has_text "Depends names $lib" "$lib" "$depends"
done

# Files.
root=$tmp/root
dpkg-deb -x "$deb" "$root"
absent=""
for f in usr/bin/hpp-engine usr/bin/hpp-sidecar usr/bin/hpp-policy usr/bin/hpp-ledger \
    usr/share/hpprouter/default.policy usr/share/hpprouter/catalog.json \
    usr/share/man/man8/hpp-engine.8.gz usr/share/man/man8/hpp-sidecar.8.gz \
    usr/share/man/man1/hpp-policy.1.gz usr/share/man/man5/hpp-policy.5.gz usr/share/man/man1/hpp-ledger.1.gz \
    usr/share/doc/hpprouter/copyright lib/systemd/system/hpp-engine.service \
    lib/systemd/system/hpp-sidecar.service etc/hpprouter/engine.conf etc/hpprouter/sidecar.conf; do
    [ -f "$root/$f" ] || absent+="$f "
done
check "the package's files" "" "$absent"

# The client library's two packages: the shared library, and the header,
# link and pkg-config file a gateway builds against (in the multiarch
# library folder), unpacked into the same root.
libdeb=$(ls "$out"/libhppclient1_*.deb 2>/dev/null | head -n 1)
devdeb=$(ls "$out"/libhppclient-dev_*.deb 2>/dev/null | head -n 1)
if [ -n "$libdeb" ] && [ -n "$devdeb" ]; then
    ok "make deb built $(basename "$libdeb") and $(basename "$devdeb")"
    dpkg-deb -x "$libdeb" "$root"
    dpkg-deb -x "$devdeb" "$root"
    has_text "libhppclient-dev depends on libhppclient1" "libhppclient1 (=" "$(dpkg-deb -f "$devdeb" Depends)"
    has_text "libhppclient1 depends on libzmq5" "libzmq5" "$(dpkg-deb -f "$libdeb" Depends)"
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    absent=""
    for f in "usr/lib/$ma/libhppclient.so.1" "usr/lib/$ma/libhppclient.so" \
        "usr/lib/$ma/pkgconfig/hppclient.pc" usr/include/hpprouter/client.h; do
        [ -e "$root/$f" ] || absent+="$f "
    done
    check "the client packages' files" "" "$absent"
    check "hppclient.pc points at the multiarch folder" "/usr/lib/$ma" \
        "$(PKG_CONFIG_PATH="$root/usr/lib/$ma/pkgconfig" pkg-config --variable=libdir hppclient)"
else
    fail "make deb built the client library packages" "no $out/libhppclient1_*.deb or libhppclient-dev_*.deb"
fi
out=$(cd "$tmp" && "$root/usr/bin/hpp-policy" check 2>&1)
has_text "the packaged hpp-policy checks the packaged policy" \
    "$root/usr/bin/../share/hpprouter/default.policy: ok" "$out"

# unit_argv UNIT: the unit's ExecStart as words ($argv), its variables
# taken from its EnvironmentFile (read from the unpacked root as systemd
# reads one: KEY=VALUE lines, the value the rest of the line, # and ;
# comments) and then from $overrides (the ports), its program taken from
# the unpacked root.
unit_argv() {
    local unit=$root/lib/systemd/system/$1 envfile line
    envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
    line=$(sed -n 's/^ExecStart=//p' "$unit")
    mapfile -t argv < <(
        while IFS= read -r kv; do
            case $kv in '' | '#'* | ';'*) continue ;; esac
            export "${kv?}"
        done <"$root$envfile"
        for kv in "${overrides[@]}"; do export "${kv?}"; done
        eval "printf '%s\n' $line"
    )
    argv[0]=$root${argv[0]}
}
# start NAME REGEX: runs $argv from an empty working directory (the units'
# WorkingDirectory is the empty state directory), waits for its readiness
# line; $ready = REGEX's group 1.
start() {
    mkdir -p "$tmp/state"
    (cd "$tmp/state" && exec "${argv[@]}") 2>"$tmp/$1.err" >/dev/null &
    pid=$!
    pids+=("$pid")
    ready=$(await_line "$tmp/$1.err" "s/$2/\\1/p" "$pid" 250) && return 0
    fail "$1 starts as its unit would" "${argv[*]}: $(tail -n 5 "$tmp/$1.err")"
    return 1
}

# route_and_stop SUFFIX: the README's request through the sidecar on port
# $ready, then SIGTERM to the sidecar and the engine, each expected to exit 0;
# SUFFIX tells the runs apart in the check names.
route_and_stop() {
    local res p
    res=$(curl -s -D - -o "$tmp/body" "http://127.0.0.1:$ready/v1/route" -H 'X-HPP-Task: code' \
        -d '{"model":"hpprouter/auto","messages":[{"role":"user","content":"hi"}]}')
    has_text "a request through the sidecar$1: 200" "HTTP/1.1 200" "$res"
    has_text "with the resolved model$1" "X-HPP-Router-Resolved-Model: " "$res"
    for p in "$sidecar_pid:sidecar" "$engine_pid:engine"; do
        kill -TERM "${p%%:*}"
        wait "${p%%:*}"
        check "the ${p#*:} stops on SIGTERM with 0$1" 0 "$?"
    done
    pids=()
}

overrides=(HPP_ENGINE_LISTEN=tcp://127.0.0.1:0)
unit_argv hpp-engine.service
check "the engine's command line" "$root/usr/bin/hpp-engine --listen tcp://127.0.0.1:0 --log-format json" \
    "${argv[*]}"
start engine '^hpp-engine: ready on \(tcp:.*\)$' || suite_end
engine_pid=$pid
ok "the packaged engine is ready on $ready"

overrides=(HPP_SIDECAR_LISTEN=127.0.0.1:0 "HPP_SIDECAR_ENGINE=$ready")
unit_argv hpp-sidecar.service
check "the sidecar's command line" \
    "$root/usr/bin/hpp-sidecar --listen 127.0.0.1:0 --engine $ready --log-format json" "${argv[*]}"
start sidecar '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' || suite_end
sidecar_pid=$pid
ok "the packaged sidecar is ready on port $ready"
route_and_stop ""

# The direct listener as engine.conf describes it: the engine adds
# --direct ipc://..., the sidecar's engine is that socket.
sock=$tmp/state/engine.sock
overrides=(HPP_ENGINE_LISTEN=tcp://127.0.0.1:0 "HPP_ENGINE_OPTS=--log-format json --direct ipc://$sock")
unit_argv hpp-engine.service
start engine '^hpp-engine: ready on \(tcp:.*\)$' || suite_end
engine_pid=$pid
has_line "the engine says where its direct listener is" "hpp-engine: direct on ipc://$sock" \
    "$tmp/engine.err"
overrides=(HPP_SIDECAR_LISTEN=127.0.0.1:0 "HPP_SIDECAR_ENGINE=ipc://$sock")
unit_argv hpp-sidecar.service
start sidecar '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' || suite_end
sidecar_pid=$pid
route_and_stop " (the engine's direct listener)"

suite_end
