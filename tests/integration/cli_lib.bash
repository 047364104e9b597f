# Shared by the hpp-policy CLI suites (sourced, not run: the .bash ending keeps
# tests/run.sh from taking it for a suite). Defines P, tmp, the counters and
# ok/fail/check/has/json/run; the suite ends with suite_end.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
P=${HPP_BUILD:-build}/hpp-policy
source tests/integration/check_lib.bash
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

has() { has_line "$@"; }
# json FILE EXPR: evaluates a python expression over the parsed JSON `d`.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>&1; }
# run NAME EXPECTED_RC ARGS...: runs hpp-policy, output in $tmp/out, $tmp/err.
run() {
    local name=$1 want=$2
    shift 2
    "$P" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    check "$name (exit $want)" "$want" "$rc"
}

if [ ! -x "$P" ]; then
    fail "hpp-policy is built" "$P missing"
    suite_end
fi
