# check_lib.bash - the counters and checks every shell suite reports with
# (sourced, not run: the .bash ending keeps tests/run.sh from taking it for a
# suite). A suite ends with suite_end, which prints the closing line
# "N passed, N failed, N skipped" that tests/run.sh reads (the skipped count
# may be left out) and fails when anything failed.
passed=0 failed=0 skipped=0

# `python3` in a suite is the Python `make deps` provisions (Debian's, with
# python3-zmq and python3-msgpack), whatever PATH finds first: a version
# manager's shim in front of it costs about 0.4 s a call, and the suites
# call Python hundreds of times. A link on PATH rather than a function, so
# that `python3 ... &` leaves the interpreter's own PID in $!.
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
    _pybin=$PWD/${HPP_BUILD:-build}/test-bin
    mkdir -p "$_pybin"
    [ -e "$_pybin/python3" ] || ln -s /usr/bin/python3 "$_pybin/python3" 2>/dev/null
    PATH=$_pybin:$PATH
fi

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
# skip NAME REASON: a test that cannot run here, and why; tests/run.sh repeats
# the "SKIP NAME: REASON" lines under the suite's count.
skip() { skipped=$((skipped + 1)); echo "SKIP $1: ${2:-no reason given}"; }
check() { # name expected actual
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}
# has_text NAME NEEDLE HAYSTACK: the haystack is a string.
has_text() {
    case "$3" in *"$2"*) ok "$1" ;; *) fail "$1" "[$2] not in [${3:0:400}]" ;; esac
}
# has_line NAME NEEDLE FILE: the haystack is a file.
has_line() {
    if grep -qF -- "$2" "$3"; then ok "$1"; else fail "$1" "[$2] not in $(head -c 300 "$3")"; fi
}

# no_san_report NAME FILE...: under `make asan` (HPP_SAN=1) the binaries are
# built with AddressSanitizer and UBSan, and a report in any FILE fails NAME.
# In any other run nothing could write one: nothing is checked or counted.
no_san_report() {
    local name=$1 re='LeakSanitizer|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:'
    shift
    [ "${HPP_SAN:-0}" = 1 ] || return 0
    if grep -qE "$re" "$@" 2>/dev/null; then
        fail "$name" "$(grep -hE -m3 -A8 "$re" "$@" 2>/dev/null)"
    else
        ok "$name"
    fi
}

# suite_end: the closing line, then the suite's exit: 0 when nothing failed.
suite_end() {
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
}

# suite_setup: a temporary directory ($tmp) and a list of started processes
# ($pids, append with pids+=($!)) that the EXIT trap stops and removes. A
# process a test left stopped (SIGSTOP) is continued first, or the wait for
# it would never end.
suite_setup() {
    tmp=$(mktemp -d)
    pids=()
    trap suite_cleanup EXIT
}
suite_cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -CONT "$p" 2>/dev/null
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}

# await_line FILE SED_SCRIPT [PID] [TRIES]: polls FILE every 20 ms (TRIES
# times, default 200: 4 s) until `sed -n SED_SCRIPT FILE` prints something,
# and prints its first line: a server's readiness line is the probe. Fails
# when nothing came, at once when PID has exited.
await_line() {
    local out _
    for _ in $(seq "${4:-200}"); do
        out=$(sed -n "$2" "$1" 2>/dev/null | head -n 1)
        if [ -n "$out" ]; then
            printf '%s\n' "$out"
            return 0
        fi
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
            return 1
        fi
        sleep 0.02
    done
    return 1
}

# start NAME REGEX CMD...: CMD in the background, its stderr in
# $tmp/NAME.err, recorded in $pids and $names (for stop_started); waits
# (5 s) for its readiness line, sets $ready to REGEX's group 1 and $pid to
# its PID. Fails "NAME starts" with its last lines, and returns 1, when the
# line does not come. (A suite that needs another shape defines its own.)
# shellcheck disable=SC2034 # $ready and $pid are for the suite
start() {
    local name=$1 re=$2
    shift 2
    "$@" 2>"$tmp/$name.err" >/dev/null &
    pid=$!
    pids+=("$pid")
    names+=("$name")
    ready=$(await_line "$tmp/$name.err" "s/$re/\\1/p" "$pid" 250) && return 0
    fail "$name starts" "$(tail -n 5 "$tmp/$name.err")"
    return 1
}

# stop_started [SKIP_GLOB]: stops, with SIGTERM, every process `start`
# started that still runs (continued first: a test may have stopped it) and
# waits for it; unless its name matches SKIP_GLOB (the stand-ins a suite
# does not test), checks that it exited 0 and left no sanitizer report.
stop_started() {
    local i rc skip=${1:-}
    for i in "${!pids[@]}"; do
        kill -0 "${pids[$i]}" 2>/dev/null || continue
        kill -CONT "${pids[$i]}" 2>/dev/null
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}"
        rc=$?
        # shellcheck disable=SC2254 # SKIP_GLOB is a glob on purpose
        [ -n "$skip" ] && case "${names[$i]}" in $skip) continue ;; esac
        check "${names[$i]} exits 0 on SIGTERM" 0 "$rc"
        no_san_report "${names[$i]}: no sanitizer report" "$tmp/${names[$i]}.err"
    done
    pids=()
}
