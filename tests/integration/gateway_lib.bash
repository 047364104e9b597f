# gateway_lib.bash - what sidecar_gateways.sh needs to run real gateways
# (nginx, Caddy) in front of hpp-sidecar: installing the Debian package of a
# missing one, and starting one on a free loopback port with its own
# configuration. Sourced after check_lib.bash (uses $tmp and $pids); the
# .bash ending keeps tests/run.sh from taking it for a suite.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # $pkg_why and $gw_port are for the suite; $tmp is its

# need_pkg COMMAND PACKAGE: makes COMMAND available, installing PACKAGE the
# way `make deps` installs the build's packages (apt-get, as root or through
# sudo) when it is missing. Debian starts the services of nginx and caddy on
# port 80 when they are installed; a policy-rc.d that answers 101 ("action
# not allowed") keeps them stopped. Docker images have one already; if this
# machine has none, one is put there for the install and removed after. The
# tests never use those services: they run their own processes. Returns 1
# with the reason in $pkg_why when COMMAND cannot be had.
need_pkg() {
    local cmd=$1 pkg=$2 sudo=() made="" rc
    pkg_why=""
    command -v "$cmd" >/dev/null && return 0
    if [ "$(id -u)" != 0 ]; then
        if ! sudo -n true 2>/dev/null; then
            pkg_why="$cmd is missing and installing $pkg needs root or sudo"
            return 1
        fi
        sudo=(sudo -n)
    fi
    if ! command -v apt-get >/dev/null; then
        pkg_why="$cmd is missing and there is no apt-get to install $pkg with"
        return 1
    fi
    echo "installing $pkg (for $cmd)"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# no service starts while the tests install packages\nexit 101\n' |
            "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null &&
            "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d && made=1
    fi
    "${sudo[@]}" apt-get update -qq -o DPkg::Lock::Timeout=300 >"$tmp/apt-$pkg.log" 2>&1 &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends -o DPkg::Lock::Timeout=300 "$pkg" >>"$tmp/apt-$pkg.log" 2>&1
    rc=$?
    [ -n "$made" ] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    if [ "$rc" -ne 0 ] || ! command -v "$cmd" >/dev/null; then
        pkg_why="apt-get install $pkg failed: $(tail -n 2 "$tmp/apt-$pkg.log" | tr '\n' ' ')"
        return 1
    fi
    return 0
}

# gw_start NAME WRITE_CONF CMD...: starts a gateway that cannot bind port 0
# and say which port it got (nginx, Caddy): picks a random high port, calls
# `WRITE_CONF PORT` to write its configuration, runs CMD in the background
# (output in $tmp/NAME.log) and polls http://127.0.0.1:PORT/_ready, which the
# configuration must answer with "ready", for up to 10 s. A port that is
# taken makes the gateway exit: up to 5 ports are tried. Sets $gw_port and
# appends the PID to $pids; returns 1 when it never came up.
gw_start() {
    local name=$1 write=$2 p pid _
    shift 2
    gw_port=""
    for _ in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 30000))
        "$write" "$p"
        "$@" >"$tmp/$name.log" 2>&1 &
        pid=$!
        for _ in $(seq 500); do
            if curl -s -m 1 "http://127.0.0.1:$p/_ready" 2>/dev/null | grep -q ready; then
                gw_port=$p
                pids+=("$pid")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.02
        done
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    return 1
}
