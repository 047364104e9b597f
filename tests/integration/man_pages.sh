#!/usr/bin/env bash
# The man pages (man/): each passes `mandoc -T lint` (warnings and worse) and
# `groff -ww -z -man` without a message; every flag each program's --help
# lists (each hpp-policy command's) heads an entry of its page; every statement,
# property and condition field of the policy language (policies/README.md,
# section 1) is in hpp-policy(5). Each check is also run on a page broken on
# purpose, and must fail there. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
PAGES=(man/hpp-engine.8 man/hpp-sidecar.8 man/hpp-policy.1 man/hpp-policy.5 man/hpp-ledger.1)

source tests/integration/check_lib.bash
suite_setup

# lint PAGE: prints what mandoc and groff say about PAGE; fails when either
# says anything (or is missing).
lint() {
    local out rc=0
    out=$(mandoc -T lint -W warning "$1" 2>&1) || rc=1
    [ -n "$out" ] && { printf '%s\n' "$out"; rc=1; }
    out=$(groff -ww -z -man "$1" 2>&1) || rc=1
    [ -n "$out" ] && { printf '%s\n' "$out"; rc=1; }
    return "$rc"
}
# text PAGE: the page as read, one long line per paragraph.
text() { mandoc -T ascii -O width=400 "$1" | col -b; }
# help_flags CMD...: the flags of CMD's --help, one a line.
help_flags() { "$@" --help | sed -n 's/^  \(--[a-z0-9][a-z0-9-]*\).*/\1/p' | sort -u; }
# missing TEXT_FILE WORD...: the words not in the text (whole words).
missing() {
    local f=$1 w
    shift
    for w in "$@"; do
        grep -qE -- "(^|[^A-Za-z0-9_.-])$(sed 's/[.[\*^$]/\\&/g' <<<"$w")([^A-Za-z0-9_-]|$)" "$f" ||
            printf '%s ' "$w"
    done
}
# untagged TEXT_FILE FLAG...: the flags that head no entry of the page (a
# .TP tag: at the start of a line, indented as a section's paragraphs), so
# that a mention in another flag's text does not count.
untagged() {
    local f=$1 w
    shift
    for w in "$@"; do
        grep -qE -- "^ {7}$w( |$)" "$f" || printf '%s ' "$w"
    done
}

have=1
for tool in mandoc groff col; do
    command -v "$tool" >/dev/null || { skip "man pages" "$tool is missing (make deps installs it)"; have=0; }
done
[ "$have" = 1 ] || suite_end

for p in "${PAGES[@]}"; do
    if out=$(lint "$p"); then ok "$p: mandoc and groff find nothing"; else fail "$p: lint" "$out"; fi
done
# The linters catch a broken page: an unknown macro, a bad font escape.
sed -e 's/^\.SH OPTIONS$/.SJ OPTIONS/' -e '0,/^\.B /s/^\.B \(.*\)$/.B \\fQ\1/' \
    man/hpp-engine.8 >"$tmp/broken.8"
if lint "$tmp/broken.8" >/dev/null; then
    fail "a broken page fails the lint"
else
    ok "a broken page fails the lint"
fi

# flags_in NAME PAGE CMD...: every --help flag of CMD is in PAGE.
flags_in() {
    local name=$1 page=$2 flags
    shift 2
    mapfile -t flags < <(help_flags "$@")
    if [ "${#flags[@]}" -lt 1 ]; then
        fail "$name: --help lists flags" "$("$@" --help 2>&1 | head -n 3)"
        return
    fi
    text "$page" >"$tmp/page.txt"
    check "$name: its ${#flags[@]} flags are in $page" "" "$(untagged "$tmp/page.txt" "${flags[@]}")"
}
flags_in hpp-engine man/hpp-engine.8 "$BUILD/hpp-engine"
flags_in hpp-sidecar man/hpp-sidecar.8 "$BUILD/hpp-sidecar"
commands=$("$BUILD/hpp-policy" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
# At least the six commands the page was written with (a broken sed would find none).
check "hpp-policy: its commands are listed" yes "$([ "$(wc -w <<<"$commands")" -ge 6 ] && echo yes || echo "$commands")"
for c in $commands; do
    flags_in "hpp-policy $c" man/hpp-policy.1 "$BUILD/hpp-policy" "$c"
    has_line "hpp-policy $c: a section of its own" ".SS $c" man/hpp-policy.1
done
# hpp-ledger: each command's flags (a command is one or two words).
for c in "keys add" "keys revoke" "keys list" "balance set" topup usage; do
    # shellcheck disable=SC2086 # the command's words
    flags_in "hpp-ledger $c" man/hpp-ledger.1 "$BUILD/hpp-ledger" $c
    has_line "hpp-ledger $c: a section of its own" ".SS $c" man/hpp-ledger.1
done
# The comparison catches a flag the page lost.
sed '/^\.BI \\-\\-watch\\-ms /,+1d' man/hpp-engine.8 >"$tmp/lost.8"
text "$tmp/lost.8" >"$tmp/lost.txt"
mapfile -t flags < <(help_flags "$BUILD/hpp-engine")
check "a page without --watch-ms fails the comparison" "--watch-ms " \
    "$(untagged "$tmp/lost.txt" "${flags[@]}")"

# The language's words: the first column of every table in section 1 of
# policies/README.md (its backticked words, else the plain word).
words=$(sed -n '/^## 1\. /,/^## 2\. /p' policies/README.md |
    awk -F'|' '/^\|/ && !/^\|[- |]*$/ { print $2 }' |
    while IFS= read -r cell; do
        # shellcheck disable=SC2016 # backticks, not an expansion
        if grep -q '`' <<<"$cell"; then grep -o '`[^`]*`' <<<"$cell" | tr -d '`'; else echo "$cell"; fi
    done | sed 's/^ *//; s/ *$//' | grep -v -E '^(token|statement|key|field)$' | sort -u)
check "policies/README.md: the language's words are found" 1 "$([ "$(wc -l <<<"$words")" -ge 30 ] && echo 1)"
text man/hpp-policy.5 >"$tmp/lang.txt"
# shellcheck disable=SC2086 # one word a line
check "hpp-policy(5): every statement, property and field" "" "$(missing "$tmp/lang.txt" $words)"
grep -v -w 'multiplier' "$tmp/lang.txt" >"$tmp/lang-lost.txt"
# shellcheck disable=SC2086
check "a page without 'multiplier' fails the comparison" "multiplier " \
    "$(missing "$tmp/lang-lost.txt" $words)"

suite_end
