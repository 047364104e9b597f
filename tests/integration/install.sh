#!/usr/bin/env bash
# `make install DESTDIR=... PREFIX=/usr`: the layout (programs, the bundled
# policy and catalog, man pages, systemd units and their flag files), the
# installed programs finding their files from another working directory,
# the units as systemd reads them (`systemd-analyze verify`, when there is
# one), CFLAGS/CPPFLAGS/LDFLAGS reaching the compiler and the linker, and a
# plain `make` that installs no package. Ends with "N passed, N failed,
# N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
src=$PWD

source tests/integration/check_lib.bash
suite_setup
san=()
[ "${HPP_SAN:-0}" = 1 ] && san=(SAN=1)
mk() { make --no-print-directory BUILD="$BUILD" "${san[@]}" "$@"; }

root=$tmp/root
if mk install DESTDIR="$root" PREFIX=/usr >"$tmp/install.log" 2>&1; then
    ok "make install DESTDIR PREFIX=/usr"
else
    fail "make install DESTDIR PREFIX=/usr" "$(tail -n 5 "$tmp/install.log")"
fi
layout=(usr/bin/hpp-engine usr/bin/hpp-sidecar usr/bin/hpp-policy usr/bin/hpp-ledger
    usr/share/hpprouter/default.policy usr/share/hpprouter/catalog.json
    usr/share/hpprouter/cases/default.cases usr/share/hpprouter/examples/teams.policy
    usr/share/hpprouter/examples/shared/tiers.policy
    usr/share/man/man8/hpp-engine.8 usr/share/man/man8/hpp-sidecar.8
    usr/share/man/man1/hpp-policy.1 usr/share/man/man5/hpp-policy.5 usr/share/man/man1/hpp-ledger.1
    usr/lib/systemd/system/hpp-engine.service usr/lib/systemd/system/hpp-sidecar.service
    etc/hpprouter/engine.conf etc/hpprouter/sidecar.conf)
absent=""
for f in "${layout[@]}"; do [ -f "$root/$f" ] || absent+="$f "; done
check "the installed files are where they belong" "" "$absent"
notexec=""
for f in hpp-engine hpp-sidecar hpp-policy hpp-ledger; do [ -x "$root/usr/bin/$f" ] || notexec+="$f "; done
check "the programs are executable" "" "$notexec"
check "nothing outside /usr and /etc" "etc usr" "$(ls "$root" | paste -sd' ')"
# shellcheck disable=SC2016 # systemd's variables, written as in the unit
has_line "the engine's unit runs the installed program" \
    'ExecStart=/usr/bin/hpp-engine --listen ${HPP_ENGINE_LISTEN} $HPP_ENGINE_OPTS' \
    "$root/usr/lib/systemd/system/hpp-engine.service"
has_line "with its flags from /etc/hpprouter" 'EnvironmentFile=-/etc/hpprouter/engine.conf' \
    "$root/usr/lib/systemd/system/hpp-engine.service"
has_line "the sidecar's unit too" 'ExecStart=/usr/bin/hpp-sidecar --listen' \
    "$root/usr/lib/systemd/system/hpp-sidecar.service"
check "no placeholder is left in the units" "" \
    "$(grep -l '@[A-Z]*@' "$root"/usr/lib/systemd/system/* 2>/dev/null)"

# From a directory with no policies/ in it: the installed programs find the
# installed policy and catalog (../share/hpprouter next to themselves).
mkdir -p "$tmp/elsewhere"
cd "$tmp/elsewhere" || exit 2
if out=$("$root/usr/bin/hpp-engine" --check 2>&1); then
    ok "installed hpp-engine --check from another directory"
else
    fail "installed hpp-engine --check from another directory" "$out"
fi
out=$("$root/usr/bin/hpp-policy" check 2>&1)
check "installed hpp-policy check from another directory" 0 "$?"
has_text "it read the installed policy" "$root/usr/bin/../share/hpprouter/default.policy: ok" "$out"
out=$("$root/usr/bin/hpp-policy" test "$root/usr/share/hpprouter/default.policy" \
    "$root/usr/share/hpprouter/cases/default.cases" 2>&1)
has_text "the installed policy passes its installed cases" " 0 failed" "$out"
cd "$src" || exit 2

# The units as systemd reads them: installed under a prefix of their own, so
# that the programs they name exist. Any message fails (an unknown key is
# only a warning to systemd).
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze verify" "systemd-analyze is missing (Debian package systemd)"
else
    pfx=$tmp/pfx
    mk install PREFIX="$pfx" SYSCONFDIR="$pfx/etc" >"$tmp/pfx.log" 2>&1 ||
        fail "make install PREFIX=$pfx" "$(tail -n 5 "$tmp/pfx.log")"
    verify() { systemd-analyze verify --man=no "$@" 2>&1; }
    out=$(cd "$pfx/lib/systemd/system" && verify hpp-engine.service hpp-sidecar.service)
    check "systemd-analyze verify: both units, no message" "" "$out"
    sed 's/^ProtectSystem=/ProtectSysten=/' "$pfx/lib/systemd/system/hpp-engine.service" \
        >"$tmp/hpp-bad.service"
    out=$(verify "$tmp/hpp-bad.service")
    has_text "and it finds a misspelt key" "Unknown key 'ProtectSysten'" "$out"
fi

# The build flags a packager sets reach the compiler and the linker (a dry
# run of a build from scratch).
out=$(mk -n -B BUILD="$tmp/b" CFLAGS=-DHPP_T_CFLAGS CPPFLAGS=-DHPP_T_CPPFLAGS \
    LDFLAGS=-Wl,--hpp-t-ldflags _bins 2>&1)
has_text "CFLAGS reaches the compiler" "-DHPP_T_CFLAGS" "$(grep -- ' -c ' <<<"$out" | head -n 1)"
has_text "CPPFLAGS reaches the compiler" "-DHPP_T_CPPFLAGS" "$(grep -- ' -c ' <<<"$out" | head -n 1)"
has_text "LDFLAGS reaches the linker" "-Wl,--hpp-t-ldflags" "$(grep -- '-o .*/hpp-engine ' <<<"$out")"

# A plain make builds and installs no package: only the targets the README
# names (test, run, asan, ...) go through `make deps`.
check "make (all) never runs apt-get" 0 "$(mk -n all 2>&1 | grep -c 'apt-get')"
check "make test goes through make deps" 1 "$([ "$(mk -n test 2>&1 | grep -c 'apt-get')" -ge 1 ] && echo 1)"

suite_end
