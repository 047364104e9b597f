#!/usr/bin/env bash
# check_layers.sh [ROOT] - the include graph between the top-level folders,
# checked against the layering of README.md ("Layout of the code").
#
# Every quoted #include of a C file under proto/, engine/, sidecar/ and
# policies/ is resolved to the folder that holds the named header. Prints
# each arrow "from -> to (N includes)", then fails (exit 1) on an arrow that
# points up the layers, with the files that make it. The layers, bottom up:
#   1 proto      the request contract, the codecs, the clients
#   2 engine     the decision library and the engine service
#   3 sidecar, policies, tools (side by side; none includes another)
# tests/ and bench/ sit on top of everything and are not checked.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

declare -A layer=([proto]=1 [engine]=2 [sidecar]=3 [policies]=3 [tools]=3)
declare -A count=() where=()

# Which checked folder holds each header, read once (the first folder wins
# when two hold the same name).
declare -A home=()
while read -r path; do
    name=$(basename "$path")
    [ -n "${home[$name]:-}" ] || home[$name]=${path%%/*}
done < <(find proto engine sidecar policies tools -name '*.h' | sort)

while IFS=: read -r file _ inc; do
    from=${file%%/*}
    # A bash match, not a sed per line: the tree has about a thousand includes.
    [[ $inc =~ ^#include\ \"([^\"]*)\" ]] || continue
    name=${BASH_REMATCH[1]}
    to=${home[${name##*/}]:-}
    if [ -z "$to" ] || [ "$to" = "$from" ]; then
        continue
    fi
    key="$from -> $to"
    count[$key]=$((${count[$key]:-0} + 1))
    where[$key]="${where[$key]:-} $file"
done < <(grep -rn --include='*.c' --include='*.h' '^#include "' proto engine sidecar policies tools)

bad=0
for key in $(printf '%s\n' "${!count[@]}" | sed 's/ -> /->/' | sort); do
    from=${key%%->*} to=${key##*->}
    arrow="$from -> $to"
    echo "$arrow (${count[$arrow]} includes)"
    if [ "${layer[$to]}" -ge "${layer[$from]}" ]; then
        echo "  points up or sideways: layer ${layer[$from]} includes layer ${layer[$to]} in:" \
            "$(tr ' ' '\n' <<<"${where[$arrow]}" | sort -u | tr '\n' ' ')"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "layering: FAILED (see README.md, \"Layout of the code\")"
    exit 1
fi
echo "layering: ok, every arrow points down"
