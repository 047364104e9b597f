#!/usr/bin/env bash
# libhppclient as a gateway gets it: `make install-client` into a temporary
# DESTDIR, the installed header and library checked (standard headers only,
# only the public API exported, soname links), then the C example built
# from its source with nothing but `pkg-config --cflags --libs hppclient`
# (PKG_CONFIG_SYSROOT_DIR pointed at the DESTDIR) and run, on the installed
# library, against a real hpp-engine on an ephemeral loopback port.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
source tests/integration/check_lib.bash
suite_setup

root=$tmp/root
# A make of its own (not the one running the tests, whose flags it would inherit).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory install-client \
    BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr >"$tmp/install.log" 2>&1
check "make install-client DESTDIR=... PREFIX=/usr" 0 "$?"
lib=$root/usr/lib
check "library installed with its version" yes "$([ -f "$lib/libhppclient.so.1.0" ] && echo yes)"
check "soname link" libhppclient.so.1.0 "$(readlink "$lib/libhppclient.so.1")"
check "development link" libhppclient.so.1.0 "$(readlink "$lib/libhppclient.so")"
check "soname" libhppclient.so.1 \
    "$(objdump -p "$lib/libhppclient.so.1.0" | sed -n 's/^ *SONAME *//p')"

hdr=$root/usr/include/hpprouter/client.h
incs=$(sed -n 's/^#include //p' "$hdr" | sort | tr '\n' ' ')
check "the header includes standard headers only" "<stdbool.h> <stddef.h> <stdint.h> " "$incs"

# Every exported function is declared HPP_CLIENT_API in the header, and the
# header declares nothing the library does not export.
exported=$(nm -D --defined-only "$lib/libhppclient.so.1.0" | awk '$2 == "T" {print $3}' | sort)
declared=$(grep -v '^#define' "$hdr" | tr '\n' ' ' | grep -o 'HPP_CLIENT_API [^(]*(' | sed 's/($//; s/.*[ *]//' | sort)
check "exported symbols = the header's API" "$declared" "$exported"
others=$(nm -D --defined-only "$lib/libhppclient.so.1.0" | awk '$2 != "T" && $2 != "A" {print $3}')
check "no other symbol exported" "" "$others"
has_text "the internal codec is hidden" "hpp_client_request" "$exported"
case "$exported" in *proto_*) fail "no proto_ symbol exported" ;; *) ok "no proto_ symbol exported" ;; esac

pc() { PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$lib/pkgconfig pkg-config "$@"; }
check "pkg-config knows hppclient 1.0" 1.0 "$(pc --modversion hppclient 2>&1)"
flags=$(pc --cflags --libs hppclient 2>&1)
has_text "pkg-config points into the DESTDIR" "-I$root/usr/include" "$flags"
san=()
# shellcheck disable=SC2054 # the comma is part of the one flag
[ "${HPP_SAN:-0}" = 1 ] && san=(-fsanitize=address,undefined -fno-omit-frame-pointer)
# shellcheck disable=SC2086 # pkg-config's flags are words
${CC:-cc} -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$tmp/route_example" \
    proto/examples/route_example.c $flags >"$tmp/cc.log" 2>&1
check "the example builds on the installed header and library alone" 0 "$?"
[ -s "$tmp/cc.log" ] && echo "$(head -n 20 "$tmp/cc.log")"
has_text "it runs on the installed library" "$lib/libhppclient.so.1" \
    "$(LD_LIBRARY_PATH=$lib ldd "$tmp/route_example" 2>&1)"

"$BUILD/hpp-engine" --listen tcp://127.0.0.1:0 --threads 1 2>"$tmp/engine.err" &
pids+=($!)
ep=$(await_line "$tmp/engine.err" 's/^hpp-engine: ready on \(tcp:.*\)$/\1/p' "${pids[0]}" 250) ||
    fail "engine starts" "$(tail -n 5 "$tmp/engine.err")"
if [ -n "$ep" ]; then
    out=$(LD_LIBRARY_PATH=$lib "$tmp/route_example" --engine "$ep" --prompt-tokens 1200 \
        --hint code --budget 0.05 2>&1)
    check "a route answered: exit 0" 0 "$?"
    has_text "a route answered: ok" '"ok":true' "$out"
    has_text "a route answered: the coding rule decided" '"rule":"code"' "$out"
    out=$(LD_LIBRARY_PATH=$lib "$tmp/route_example" --engine "$ep" --model acme/nope \
        --prompt-tokens 10 2>&1)
    check "an engine error: exit 1" 1 "$?"
    has_text "an engine error: its code" '"code":"unknown_model"' "$out"
    out=$(LD_LIBRARY_PATH=$lib "$tmp/route_example" --engine "$ep" --prompt-tokens 100000001 2>&1)
    check "a value out of range: exit 2" 2 "$?"
    has_text "a value out of range: the rule" "prompt_tokens: must be" "$out"
fi
no_san_report "no sanitizer report" "$tmp/engine.err"
suite_end
