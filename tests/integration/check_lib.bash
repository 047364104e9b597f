# check_lib.bash - the counters and checks every shell suite reports with
# (sourced, not run: the .bash ending keeps tests/run.sh from taking it for a
# suite). A suite ends by printing "N passed, N failed" (tests/run.sh reads
# that line) and failing when anything failed.
passed=0 failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
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
