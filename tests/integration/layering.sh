#!/usr/bin/env bash
# The layering of the code (README.md, "Layout of the code"): the include
# graph between top-level folders points one way, and the checker that says
# so fails on a tree where it does not. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=tests/integration/check_lib.bash
source tests/integration/check_lib.bash
suite_setup

out=$(bash tests/check_layers.sh 2>&1)
check "the tree's arrows all point down" 0 $?
check "proto includes no other folder" "" "$(grep '^proto ->' <<<"$out")"
check "engine includes only proto" "engine -> proto" "$(grep -o '^engine -> [a-z]*' <<<"$out")"
check "sidecar does not include policies" "" "$(grep '^sidecar -> policies' <<<"$out")"

# A copy of the checked folders, broken on purpose: the checker must fail.
copy() {
    rm -rf "$tmp/tree"
    mkdir -p "$tmp/tree"
    cp -r proto engine sidecar policies "$tmp/tree/"
}
copy
printf '#include "eng_common.h"\n' >>"$tmp/tree/proto/hpp_types.c"
out=$(bash tests/check_layers.sh "$tmp/tree" 2>&1)
check "an include from proto up to engine fails" 1 $?
has_text "the failure names the file" "proto/hpp_types.c" "$out"

copy
printf '#include "sc_call.h"\n' >>"$tmp/tree/engine/eng_reply.c"
bash tests/check_layers.sh "$tmp/tree" >/dev/null 2>&1
check "an include from engine up to sidecar fails" 1 $?

copy
printf '#include "hpp_policy.h"\n' >>"$tmp/tree/sidecar/sc_call.c"
bash tests/check_layers.sh "$tmp/tree" >/dev/null 2>&1
check "a sideways include from sidecar to policies fails" 1 $?

# The build enforces the same thing: a folder compiles with the include
# paths of itself and the folders below it (Makefile, INC_*).
# shellcheck disable=SC2016 # $(INC_proto) is make's, not the shell's
flags=$(make -s --no-print-directory -f Makefile -f - print-inc <<<'print-inc: ; @echo $(INC_proto)')
check "proto compiles with its own include path only" "-Iproto" "$flags"
printf '#include "eng_common.h"\n' >"$tmp/up.c"
# shellcheck disable=SC2086 # the flags are words
cc $flags -fsyntax-only "$tmp/up.c" >/dev/null 2>&1
check "so an engine header does not compile from proto" 1 $?

suite_end
