#!/usr/bin/env bash
# fuzz_options.sh - a fuzz target's own libFuzzer flags (tests/fuzz/NAME.options),
# as tests/fuzz/long.sh reads them for itself and for `make fuzz`: the flags one
# a line, comments and blank lines left out, nothing for a target without a
# file, and a line that is not a -flag=value refused (exit 2, with the file and
# the line) rather than run with the defaults unseen.
set -u
cd "$(dirname "$0")/../.." || exit 2
source tests/integration/check_lib.bash

long=tests/fuzz/long.sh
check "fuzz_policy runs without entropic scheduling" "-entropic=0" "$(bash $long --options fuzz_policy)"
check "a target without a file has no flags of its own" "" "$(bash $long --options fuzz_proto)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '# two flags\n-max_len=4096   # a comment\n\n  -entropic=0\n' >"$tmp/good.options"
check "comments and blanks are left out" "-max_len=4096 -entropic=0" \
    "$(FUZZ_OPTIONS_DIR=$tmp bash $long --options good | tr '\n' ' ' | sed 's/ $//')"
printf -- '-runs=10\nmax_len=5\n' >"$tmp/bad.options"
out=$(FUZZ_OPTIONS_DIR=$tmp bash $long --options bad 2>&1)
check "a line that is not a -flag=value is refused" 2 "$?"
has_text "the refusal names the file and the line" "$tmp/bad.options: 'max_len=5'" "$out"
printf -- '-runs\n' >"$tmp/noval.options"
FUZZ_OPTIONS_DIR=$tmp bash $long --options noval >/dev/null 2>&1
check "a flag without a value is refused" 2 "$?"
suite_end
