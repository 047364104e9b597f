#!/usr/bin/env bash
# hpp-sidecar's trust boundary, end to end: a real hpp-engine (the bundled
# policy: group trial may use ollama/, google/ and meta-llama/ models only),
# hpp-sidecars with --keys, --trusted-header, --trust-client-features and
# --fail-open, and the upstream stand-in tests/integration/upstream_stub.py,
# all on 127.0.0.1 ephemeral ports. Checks who may set a request's group and
# budget: the API key (401 without a known one, SIGHUP reloads the file, a
# bad file keeps the last good one), the gateway's header (never forwarded),
# the client only when trusted (403 otherwise); duplicate X-HPP-* headers
# (400); and that the fail-open model, with the engine killed, answers only
# a group the engine said may use it, within the request's budget.
# Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
BUILD=${HPP_BUILD:-build}
ENGINE=$BUILD/hpp-engine
SIDECAR=$BUILD/hpp-sidecar
STUB=tests/integration/upstream_stub.py
names=()

source tests/integration/check_lib.bash
suite_setup
has() { has_text "$@"; }
# Stops what still runs with SIGTERM; the sidecars must exit 0, and under
# `make asan` without a sanitizer report.
finish() {
    local i rc
    for i in "${!pids[@]}"; do
        kill -0 "${pids[$i]}" 2>/dev/null || continue
        kill -TERM "${pids[$i]}"
        wait "${pids[$i]}"
        rc=$?
        case "${names[$i]}" in sc_*) ;; *) continue ;; esac
        check "${names[$i]} exits 0 on SIGTERM" 0 "$rc"
        no_san_report "${names[$i]}: no sanitizer report" "$tmp/${names[$i]}.err"
    done
    pids=()
    suite_end
}
# start NAME REGEX CMD...: runs CMD in the background, stderr to
# $tmp/NAME.err, waits for its readiness line; $ready = REGEX's group 1.
start_engine() { # NAME -> $ready = endpoint, $pid
    start "$1" '^hpp-engine: ready on \(tcp:.*\)$' "$ENGINE" --listen tcp://127.0.0.1:0 --threads 1
}
start_sidecar() { # NAME ARGS... -> $ready = port, $pid
    local name=$1
    shift
    start "$name" '^hpp-sidecar: ready on 127\.0\.0\.1:\([0-9]*\)$' "$SIDECAR" \
        --listen 127.0.0.1:0 "$@"
}
# req PORT PATH BODY [curl args...]: POST (GET when BODY is -), status on
# stdout; headers in $tmp/h, body in $tmp/b.
req() {
    local p=$1 path=$2 body=$3
    shift 3
    local data=(--data-binary "$body")
    [ "$body" = - ] && data=()
    curl -s -m 10 -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "${data[@]}" "$@" \
        "http://127.0.0.1:$p$path"
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
jget() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[2])); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' \
        "$1" "${2:-$tmp/b}" 2>&1
}
# refused NAME STATUS WANT_STATUS WANT_CODE [WANT_PARAM]: an OpenAI-style error.
refused() {
    check "$1: status" "$3" "$2"
    check "$1: error.code" "$4" "$(jget 'j["error"]["code"]')"
    [ $# -ge 5 ] && check "$1: error.param" "$5" "$(jget 'j["error"]["param"]')"
}
MSG='"messages":[{"role":"user","content":"Write a C function that reverses a string."}]'
AUTO="{$MSG}"
GPT4O="{\"model\":\"openai/gpt-4o\",$MSG}"   # group trial may not use it

for bin in "$ENGINE" "$SIDECAR"; do
    [ -x "$bin" ] || {
        fail "binary $bin exists"
        finish
    }
done

# --hash-key and the key file's format ------------------------------------------------
hash() { printf '%s\n' "$1" | "$SIDECAR" --hash-key; }
check "--hash-key: sha256 of the key read from stdin" \
    "sha256:$(printf 'sk-alpha' | sha256sum | cut -d' ' -f1)" "$(hash sk-alpha)"
check "--hash-key: a CRLF line ending is not part of the key" "$(hash sk-alpha)" \
    "$(printf 'sk-alpha\r\n' | "$SIDECAR" --hash-key)"
printf '' | "$SIDECAR" --hash-key >/dev/null 2>"$tmp/e"
check "--hash-key: an empty key exits 1" 1 "$?"
has "--hash-key: says why" "the key is empty" "$(cat "$tmp/e")"
printf 'two words\n' | "$SIDECAR" --hash-key >/dev/null 2>"$tmp/e"
check "--hash-key: a space in the key exits 1" 1 "$?"
"$SIDECAR" --hash-key=sk-alpha >/dev/null 2>"$tmp/e"
check "--hash-key takes no value on the command line" 2 "$?"

HA=$(hash sk-alpha) HB=$(hash sk-beta) HC=$(hash sk-cheap) HD=$(hash sk-delta)
cat >"$tmp/keys" <<EOF
# hpp-sidecar key file
$HA group=partner   # partners' build bot

$HB group=trial budget_usd=0.50
	$HC   group=default budget_usd=0.0000001
EOF
# bad_keys NAME WANT_LOCATION_AND_TEXT CONTENT: the sidecar refuses to start (exit 1)
# and names FILE:LINE:COL.
bad_keys() {
    printf '%b' "$3" >"$tmp/bad.keys"
    "$SIDECAR" --listen 127.0.0.1:0 --keys "$tmp/bad.keys" >/dev/null 2>"$tmp/e"
    check "key file, $1: exit 1" 1 "$?"
    has "key file, $1: file:line:col and why" "$tmp/bad.keys:$2" "$(cat "$tmp/e")"
}
bad_keys "unknown key" "2:$((${#HA} + 10)): unknown key 'ledger'" \
    "# ok\n$HA group=a ledger=x\n"
bad_keys "hash not hex" "1:8: expected a lowercase hex digit" "sha256:$(printf 'x%.0s' {1..64}) group=a\n"
bad_keys "hash too short" "1:3: expected sha256:<64 lowercase hex digits>" "  sha256:abc group=a\n"
bad_keys "uppercase hex" "1:8: expected a lowercase hex digit" "sha256:A$(printf '0%.0s' {1..63}) group=a\n"
bad_keys "no hash" "1:1: expected sha256:" "group=a\n"
bad_keys "missing group" "1:$((${#HA} + 1)): missing group=NAME" "$HA\n"
bad_keys "bad group" "1:$((${#HA} + 8)): group: expected" "$HA group=a!b\n"
bad_keys "bad budget" "1:$((${#HA} + 21)): budget_usd: expected" "$HA group=a budget_usd=1e3\n"
bad_keys "negative budget" "1:" "$HA group=a budget_usd=-1\n"
bad_keys "key twice" "3:1: the same key as line 1" "$HA group=a\n\n$HA group=b\n"
bad_keys "group twice" "1:$((${#HA} + 10)): group given twice" "$HA group=a group=b\n"
bad_keys "control byte" "1:3: control character 0x01" "# \x01\n"
"$SIDECAR" --listen 127.0.0.1:0 --keys "$tmp/none.keys" >/dev/null 2>"$tmp/e"
check "key file missing: exit 1" 1 "$?"
has "key file missing: says so" "cannot open" "$(cat "$tmp/e")"
for bad in "X-HPP-Group" "Authorization" "a b" "" "X-HPP-Router-Tier"; do
    "$SIDECAR" --trusted-header "$bad" >/dev/null 2>"$tmp/e"
    check "--trusted-header '$bad': exit 2" 2 "$?"
done
help=$("$SIDECAR" --help)
for f in "--keys FILE" "--trusted-header NAME" "--trust-client-features" "--hash-key"; do
    has "--help lists $f" "$f" "$help"
done
check "--help fits 80 columns" "" "$(printf '%s\n' "$help" | awk 'length > 80')"

# Processes --------------------------------------------------------------------------
start_engine engine || finish
EP=$ready
start stub '^upstream_stub.py: ready on 127\.0\.0\.1:\([0-9]*\)$' python3 "$STUB" || finish
SP=$ready

# API keys ---------------------------------------------------------------------------
start_sidecar sc_keys --engine "$EP" --keys "$tmp/keys" || finish
K=$ready
KPID=$pid
s=$(req "$K" /v1/route "$AUTO")
refused "no key" "$s" 401 invalid_api_key
check "no key: WWW-Authenticate" Bearer "$(hdr WWW-Authenticate)"
s=$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-wrong-secret')
refused "unknown key" "$s" 401 invalid_api_key
case "$(cat "$tmp/b")" in *sk-wrong*) fail "unknown key: not quoted back" ;; *) ok "unknown key: not quoted back" ;; esac
refused "not a Bearer key" "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Basic c2stYWxwaGE=')" \
    401 invalid_api_key
check "known key: 200" 200 "$(req "$K" /v1/route "$GPT4O" -H 'Authorization: Bearer sk-alpha')"
check "known key, scheme in lower case: 200" 200 \
    "$(req "$K" /v1/route "$AUTO" -H 'authorization: bearer sk-alpha')"
refused "key of group trial: its group applies" \
    "$(req "$K" /v1/route "$GPT4O" -H 'Authorization: Bearer sk-beta')" 403 model_not_allowed
check "key of group trial: a model it may use" 200 \
    "$(req "$K" /v1/route "{\"model\":\"google/gemma-2-9b-it\",$MSG}" -H 'Authorization: Bearer sk-beta')"
refused "key with a tiny budget cap" \
    "$(req "$K" /v1/route "$GPT4O" -H 'Authorization: Bearer sk-cheap')" 402 insufficient_budget
refused "key: a client group is still refused" \
    "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-beta' -H 'X-HPP-Group: partner')" \
    403 client_features_not_trusted X-HPP-Group
refused "Authorization twice" \
    "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-alpha' -H 'authorization: Bearer sk-beta')" \
    400 duplicate_header
refused "chat needs a key too" "$(req "$K" /v1/chat/completions "$AUTO")" 401 invalid_api_key
refused "models needs a key" "$(req "$K" /v1/models -)" 401 invalid_api_key
check "models with a key: 200" 200 "$(req "$K" /v1/models - -H 'Authorization: Bearer sk-alpha')"
check "healthz needs no key" 200 "$(req "$K" /healthz -)"
refused "a new key is unknown before the reload" \
    "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-delta')" 401 invalid_api_key
printf '%s group=default\n' "$HD" >>"$tmp/keys"
kill -HUP "$KPID"
await_line "$tmp/sc_keys.err" '/reloaded, 4 keys/p' "$KPID" >/dev/null
check "SIGHUP: the sidecar lives on" 0 "$(kill -0 "$KPID" 2>/dev/null; echo $?)"
check "SIGHUP: the new key is known" 200 "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-delta')"
cp "$tmp/keys" "$tmp/keys.good"
printf '%s group=default\n%s group=x colour=blue\n' "$HA" "$HB" >"$tmp/keys"
kill -HUP "$KPID"
line=$(await_line "$tmp/sc_keys.err" '/keeping the 4 keys/p' "$KPID")
has "SIGHUP, bad file: file:line:col logged" "$tmp/keys:2:$((${#HB} + 10)): unknown key 'colour'" "$line"
check "SIGHUP, bad file: the last good keys still serve" 200 \
    "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-delta')"
refused "SIGHUP, bad file: its group is not used" \
    "$(req "$K" /v1/route "$GPT4O" -H 'Authorization: Bearer sk-beta')" 403 model_not_allowed
rm -f "$tmp/keys"
kill -HUP "$KPID"
await_line "$tmp/sc_keys.err" '/cannot open/p' "$KPID" >/dev/null
check "SIGHUP, file gone: the last good keys still serve" 200 \
    "$(req "$K" /v1/route "$AUTO" -H 'Authorization: Bearer sk-alpha')"
if grep -qE 'sk-(alpha|beta|cheap|delta|wrong)' "$tmp/sc_keys.err"; then
    fail "no key appears in the log" "$(grep -E 'sk-' "$tmp/sc_keys.err" | head -n 3)"
else
    ok "no key appears in the log"
fi

# The client's group and budget ------------------------------------------------------
start_sidecar sc_plain --engine "$EP" || finish
D=$ready
DPID=$pid
refused "X-HPP-Group from the client" "$(req "$D" /v1/route "$AUTO" -H 'X-HPP-Group: partner')" \
    403 client_features_not_trusted X-HPP-Group
refused "X-HPP-Budget-USD from the client" "$(req "$D" /v1/route "$AUTO" -H 'X-HPP-Budget-USD: 5')" \
    403 client_features_not_trusted X-HPP-Budget-USD
refused "hpp.group from the client" "$(req "$D" /v1/route "{$MSG,\"hpp\":{\"group\":\"partner\"}}")" \
    403 client_features_not_trusted hpp.group
refused "hpp.budget_usd from the client" \
    "$(req "$D" /v1/route "{$MSG,\"hpp\":{\"budget_usd\":1}}")" \
    403 client_features_not_trusted hpp.budget_usd
refused "a client group in a body-less auth subrequest" \
    "$(req "$D" /v1/chat/completions "" -H 'X-HPP-Task: code' -H 'X-HPP-Group: partner')" \
    403 client_features_not_trusted X-HPP-Group
check "other hints are still the client's: 200" 200 \
    "$(req "$D" /v1/route "{$MSG,\"hpp\":{\"task\":\"code\"}}" -H 'X-HPP-Output-Tokens: 50')"
refused "X-HPP-Task twice" "$(req "$D" /v1/route "$AUTO" -H 'X-HPP-Task: code' -H 'X-HPP-Task: math')" \
    400 duplicate_header X-HPP-Task
refused "an X-HPP header twice, in two cases" \
    "$(req "$D" /v1/route "$AUTO" -H 'X-HPP-Model: openai/gpt-4o' -H 'x-hpp-model: openai/gpt-4o-mini')" \
    400 duplicate_header
refused "an unknown X-HPP header twice" \
    "$(req "$D" /v1/route "$AUTO" -H 'X-HPP-Whatever: 1' -H 'X-HPP-WHATEVER: 2')" 400 duplicate_header
kill -HUP "$DPID"
await_line "$tmp/sc_plain.err" '/no --keys file/p' "$DPID" >/dev/null
check "SIGHUP without --keys: the sidecar lives on" 200 "$(req "$D" /v1/route "$AUTO")"

start_sidecar sc_client --engine "$EP" --trust-client-features || finish
C=$ready
refused "--trust-client-features: X-HPP-Group is honoured" \
    "$(req "$C" /v1/route "$GPT4O" -H 'X-HPP-Group: trial')" 403 model_not_allowed
refused "--trust-client-features: hpp.budget_usd is honoured" \
    "$(req "$C" /v1/route "{\"model\":\"openai/gpt-4o\",$MSG,\"hpp\":{\"budget_usd\":0.0000001}}")" \
    402 insufficient_budget

# The gateway's header ---------------------------------------------------------------
start_sidecar sc_gateway --engine "$EP" --trusted-header X-Gateway-Group \
    --upstream "http://127.0.0.1:$SP/v1" || finish
T=$ready
refused "trusted header: its group applies" "$(req "$T" /v1/route "$GPT4O" -H 'X-Gateway-Group: trial')" \
    403 model_not_allowed
check "trusted header: another group" 200 "$(req "$T" /v1/route "$GPT4O" -H 'x-gateway-group: partner')"
refused "trusted header: its budget applies" \
    "$(req "$T" /v1/route "$GPT4O" -H 'X-Gateway-Group: default; budget_usd=0.0000001')" \
    402 insufficient_budget
check "trusted header: a budget that fits" 200 \
    "$(req "$T" /v1/route "$GPT4O" -H 'X-Gateway-Group: default;budget_usd=5')"
refused "trusted header: a bad group" "$(req "$T" /v1/route "$AUTO" -H 'X-Gateway-Group: a b')" \
    400 invalid_value X-Gateway-Group
refused "trusted header: an unknown parameter" \
    "$(req "$T" /v1/route "$AUTO" -H 'X-Gateway-Group: default;tier=gold')" 400 invalid_value
refused "trusted header: twice" \
    "$(req "$T" /v1/route "$AUTO" -H 'X-Gateway-Group: trial' -H 'X-Gateway-Group: partner')" \
    400 duplicate_header X-Gateway-Group
refused "trusted header: the client's X-HPP-Group is still refused" \
    "$(req "$T" /v1/route "$AUTO" -H 'X-Gateway-Group: trial' -H 'X-HPP-Group: partner')" \
    403 client_features_not_trusted X-HPP-Group
curl -s -m 5 "http://127.0.0.1:$SP/_control" -d '{"reset":true}' >/dev/null
check "proxy: 200 with the trusted header" 200 \
    "$(req "$T" /v1/chat/completions "$AUTO" -H 'X-Gateway-Group: partner' -H 'Authorization: Bearer up-key')"
curl -s -m 5 "http://127.0.0.1:$SP/_requests" >"$tmp/seen"
check "proxy: the trusted header is not forwarded" False \
    "$(jget '"x-gateway-group" in j[-1]["headers"]' "$tmp/seen")"
check "proxy: Authorization still is (no --keys)" "Bearer up-key" \
    "$(jget 'j[-1]["headers"]["authorization"]' "$tmp/seen")"
# Without --trusted-header nothing reads it: an X-HPP-* name is neither
# honoured nor forwarded.
start_sidecar sc_nogateway --engine "$EP" --upstream "http://127.0.0.1:$SP/v1" || finish
N=$ready
check "no --trusted-header: the header gives nothing" 200 \
    "$(req "$N" /v1/route "$GPT4O" -H 'X-HPP-Gateway-Group: trial')"
curl -s -m 5 "http://127.0.0.1:$SP/_control" -d '{"reset":true}' >/dev/null
req "$N" /v1/chat/completions "$AUTO" -H 'X-HPP-Gateway-Group: trial' >/dev/null
curl -s -m 5 "http://127.0.0.1:$SP/_requests" >"$tmp/seen"
check "no --trusted-header: an X-HPP-* name is not forwarded" False \
    "$(jget '"x-hpp-gateway-group" in j[-1]["headers"]' "$tmp/seen")"

# Fail-open by group and budget ---------------------------------------------------------
if start_engine engine_fo; then
    EF=$ready
    EFPID=$pid
    start_sidecar sc_failopen --engine "$EF" --timeout-ms 300 --fail-open openai/gpt-4o-mini \
        --trusted-header X-Gateway-Group || finish
    F=$ready
    for g in partner trial; do
        check "fail-open: group $g seen while the engine is up" 200 \
            "$(req "$F" /v1/route "{\"model\":\"google/gemma-2-9b-it\",$MSG}" -H "X-Gateway-Group: $g")"
    done
    await_line "$tmp/sc_failopen.err" '/group default may use openai\/gpt-4o-mini/p' "" >/dev/null
    await_line "$tmp/sc_failopen.err" '/group partner may use openai\/gpt-4o-mini/p' "" >/dev/null
    has "fail-open: learned that trial may not use it" "group trial may not use openai/gpt-4o-mini" \
        "$(await_line "$tmp/sc_failopen.err" '/group trial may not/p' "")"
    kill -KILL "$EFPID"
    wait "$EFPID" 2>/dev/null
    s=$(req "$F" /v1/chat/completions "$AUTO")
    check "engine killed: the default group gets the fail-open model" "200 openai/gpt-4o-mini true" \
        "$s $(hdr X-HPP-Router-Resolved-Model) $(hdr X-HPP-Router-Fail-Open)"
    s=$(req "$F" /v1/route "$AUTO" -H 'X-Gateway-Group: partner')
    check "engine killed: an allowed group gets it" "200 openai/gpt-4o-mini" "$s $(jget 'j["model"]')"
    s=$(req "$F" /v1/route "$AUTO" -H 'X-Gateway-Group: trial')
    refused "engine killed: a group the policy forbids it gets 503" "$s" 503 engine_unavailable
    has "engine killed, forbidden group: says why" "group trial may not use the fail-open model" \
        "$(jget 'j["error"]["message"]')"
    s=$(req "$F" /v1/route "$AUTO" -H 'X-Gateway-Group: default;budget_usd=0.0000001')
    refused "engine killed: a budget too small gets 503" "$s" 503 engine_unavailable
    has "engine killed, small budget: says why" "exceeds the budget" "$(jget 'j["error"]["message"]')"
    check "engine killed: a budget that fits gets it" 200 \
        "$(req "$F" /v1/route "$AUTO" -H 'X-Gateway-Group: default;budget_usd=1')"
    s=$(req "$F" /v1/route "$AUTO" -H 'X-Gateway-Group: never-seen')
    refused "engine killed: a group never seen gets 503" "$s" 503 engine_unavailable
fi
start_sidecar sc_neverup --engine tcp://127.0.0.1:1 --timeout-ms 300 --fail-open openai/gpt-4o-mini &&
    refused "no engine ever up: nothing learned, 503" "$(req "$ready" /v1/route "$AUTO")" \
        503 engine_unavailable

finish
