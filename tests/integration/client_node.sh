#!/usr/bin/env bash
# The Node.js client (clients/node, npm `zeromq` 6 and `@msgpack/msgpack`)
# against real engines: its `node --test` suite (which starts and stops each
# engine it needs), each test reported as ok / FAIL / SKIP. The package is
# copied to $HPP_BUILD/node-client and its dependencies installed there once
# (npm install, kept until package.json changes; zeromq's npm tarball
# carries prebuilt binaries, so no install script runs). Skipped, with the
# reason, when node/npm are missing or the npm registry cannot be reached.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
source tests/integration/check_lib.bash
suite_setup

dir=$BUILD/node-client
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    skip "node client" "node/npm not installed"
    suite_end
fi
mkdir -p "$dir" && rm -rf "$dir/test" && cp -r clients/node/index.js clients/node/test "$dir/" || exit 2
if ! cmp -s clients/node/package.json "$dir/package.json" ||
    [ ! -d "$dir/node_modules/zeromq" ] || [ ! -d "$dir/node_modules/@msgpack/msgpack" ]; then
    cp clients/node/package.json "$dir/package.json"
    if ! timeout 240 npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts \
        --loglevel=error --fetch-retries=1 --fetch-timeout=30000 >"$tmp/npm.log" 2>&1; then
        rm -f "$dir/package.json" # try again next time
        skip "node client" "npm install failed (registry unreachable?): $(tail -n 2 "$tmp/npm.log")"
        suite_end
    fi
fi

HPP_ROOT=$PWD HPP_ENGINE=$BUILD/hpp-engine timeout 120 \
    node --test --test-reporter=tap "$dir/test/" >"$tmp/tap.log" 2>&1
rc=$?
# Top-level TAP lines: "ok 3 - name", "not ok 3 - name", "... # SKIP why".
while IFS= read -r line; do
    case "$line" in
    "ok "*" # SKIP"*) name=${line#ok * - } && skip "${name%% # SKIP*}" "${line##*# SKIP}" ;;
    "ok "*) ok "${line#ok * - }" ;;
    "not ok "*) fail "${line#not ok * - }" "$(grep -A 12 -F -- "$line" "$tmp/tap.log" | sed -n '2,13p')" ;;
    esac
done <"$tmp/tap.log"
[ "$rc" -eq 0 ] || fail "node --test exits 0" "exit $rc: $(tail -n 15 "$tmp/tap.log")"
suite_end
