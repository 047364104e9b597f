#!/usr/bin/env bash
# shell_lint.sh (make lint): every shell script of the tree passes `shellcheck -x -S warning`: the test
# suites, bench/, .ci/run and the helpers they source. A quoting or
# word-splitting mistake in a test can make it pass without checking
# anything, so warnings fail here (style notes do not). The linter finds
# the scripts itself: *.sh, *.bash and the files whose first line runs bash.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=tests/integration/check_lib.bash
source tests/integration/check_lib.bash
suite_setup

if ! command -v shellcheck >/dev/null; then
    skip "shell lint" "shellcheck is not installed ('make deps' installs it)"
    suite_end
fi

scripts=()
while IFS= read -r -d '' f; do
    case "$f" in *.sh | *.bash) scripts+=("$f") ;; *)
        head -n 1 "$f" | grep -qE '^#!.*\b(ba)?sh\b' && scripts+=("$f") ;;
    esac
done < <(find . -path ./.git -prune -o -path './build*' -prune -o -path ./debian/hpprouter -prune \
    -o -path ./node_modules -prune -o -type f \( -name '*.sh' -o -name '*.bash' -o -perm -u+x \) \
    -print0)
if [ "${#scripts[@]}" -lt 10 ]; then
    fail "scripts found" "only ${#scripts[@]}: ${scripts[*]}"
fi
# One run over all of them (each would parse check_lib.bash again), one
# line per finding: FILE:LINE:COL: warning: TEXT [SCnnnn].
shellcheck -x -S warning -f gcc "${scripts[@]}" >"$tmp/lint" 2>&1
for f in "${scripts[@]}"; do
    if grep -q "^$f:" "$tmp/lint"; then
        fail "${f#./}" "$(grep "^$f:" "$tmp/lint" | head -n 8)"
    else
        ok "${f#./}"
    fi
done

# The lint itself must catch what it is here for: an unquoted expansion.
printf '#!/usr/bin/env bash\nf() { echo $(cat "$1"); }\nf x\n' >"$tmp/bad.sh"
shellcheck -x -S warning "$tmp/bad.sh" >/dev/null 2>&1
check "an unquoted command substitution is a warning" 1 "$?"
suite_end
