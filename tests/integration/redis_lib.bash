# redis_lib.bash - a private redis-server for the ledger's Redis tests
# (sourced, not run: the .bash ending keeps tests/run.sh from taking it for a
# suite). Needs check_lib.bash's suite_setup first ($tmp, $pids).
# shellcheck disable=SC2154,SC2034 # $tmp is check_lib.bash's; the suites read redis_*
#
# redis_start [NAME] [ARGS...]: starts redis-server listening only on a unix
#     socket in $tmp (port 0: no TCP), with no persistence (no RDB snapshot,
#     no AOF) and the working directory in $tmp; waits until
#     `redis-cli -s SOCK ping` answers PONG (the readiness probe, never a
#     sleep). Sets $redis_sock, $redis_pid (also appended to $pids, so the
#     suite's EXIT trap stops it) and $redis_log. Extra ARGS go to
#     redis-server (a test password: --requirepass PW). Returns 1, with the
#     reason in $redis_why, when redis-server is missing or does not start.
# redis_stop: stops the server started last by its PID (SIGTERM) and waits.
# redis_cli ARGS...: redis-cli on that socket, raw output.
redis_sock="" redis_pid="" redis_log="" redis_why=""

redis_start() {
    local name=${1:-redis} _
    [ $# -gt 0 ] && shift
    redis_why=""
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        redis_why="redis-server or redis-cli missing ('make deps' installs redis-server and redis-tools)"
        return 1
    fi
    mkdir -p "$tmp/$name"
    redis_sock=$tmp/$name/redis.sock
    redis_log=$tmp/$name/redis.log
    rm -f "$redis_sock"
    redis-server --port 0 --unixsocket "$redis_sock" --unixsocketperm 700 \
        --dir "$tmp/$name" --save '' --appendonly no --daemonize no \
        --logfile "$redis_log" "$@" >/dev/null 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 250); do
        [ "$(redis-cli -s "$redis_sock" ping 2>/dev/null)" = PONG ] && return 0
        # A password-protected server answers NOAUTH to ping: it is up.
        case "$(redis-cli -s "$redis_sock" ping 2>&1)" in *NOAUTH*) return 0 ;; esac
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.02
    done
    redis_why="redis-server did not answer ping: $(tail -n 3 "$redis_log" 2>/dev/null | tr '\n' ' ')"
    return 1
}

redis_stop() {
    [ -n "$redis_pid" ] || return 0
    kill -TERM "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=""
}

redis_cli() { redis-cli -s "$redis_sock" --raw "$@"; }
