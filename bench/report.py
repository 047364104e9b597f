#!/usr/bin/env python3
"""report.py - raw benchmark records in, bench/RESULTS.md and plots out.

python3 stdlib only. bench/run.sh calls it; it can be rerun on any results
folder to regenerate the report without measuring again:

  report.py record FILE.jsonl [--wrk OUT] [--json OUT] [--cost A B] key=value...
      appends one record: the wrk summary line ("wrk-json: {...}", printed by
      bench/wrk/route.lua) or the last JSON object printed by a C load
      generator, plus the given fields (numbers stay numbers; cmd= is the
      exact command line). --cost adds, per process, the CPU time and the
      context switches per request between two procsnap files.
  report.py procsnap FILE name=PID...
      writes the CPU time (schedstat) and context switches of each process,
      summed over its threads, to FILE.
  report.py machine DIR [--build BUILD]
      writes DIR/machine.json: CPU, cores, memory, kernel, compiler and build
      flags, library and tool versions, git commit.
  report.py goals DIR
      prints the components (resolve, engine, sidecar) that missed a goal.
  report.py render DIR [--markdown bench/RESULTS.md] [--no-plots] [--with DIR2]
      writes DIR/*.csv, DIR/*.png (gnuplot) and the markdown report. --with
      takes scenario 8 (several engines) from another run's folder DIR2 (a
      run of that scenario alone, ONLY=multi) when DIR has none; the report
      names that run, its commit and its status.

The goals come from the issues: resolver p50 <= 1 us and p99 <= 5 us on the
full LiteLLM catalog with 0 allocations per decision; engine >= 300k
decisions/s pipelined and p99 <= 200 us open-loop at 20k/s; sidecar /v1/route
at 32 connections >= 30x Portkey's requests/s with p99 <= 1/20 of Portkey's;
proxy mode <= 100 us p50 over the upstream directly at 1 connection; no failed
request during reloads; no failed request when one engine of three is killed
under load (through the C client, and through the sidecar when it was measured).

Scenario 0 (the machine floor: bench/hiccup's stalls and wake-up latency, and
the ZeroMQ echo server of bench/bench_engine) does not change any verdict; it
is printed next to the open-loop goal so that a reader can tell an engine
problem from a machine problem.
"""
import csv
import datetime
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request

# ---------------------------------------------------------------------------
# record


def parse_value(v):
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", v):
        return float(v)
    return v


def wrk_summary(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("wrk-json: "):
                rec = json.loads(line[len("wrk-json: "):])
                e = rec.get("errors", {})
                rec["failed"] = sum(e.get(k, 0) for k in ("connect", "read", "write", "status",
                                                           "timeout"))
                return rec
    raise SystemExit(f"report.py: no 'wrk-json:' line in {path}")


def last_json_object(path):
    found = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{") and line.endswith("}"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    found = obj
    if found is None:
        raise SystemExit(f"report.py: no JSON object line in {path}")
    return found


def proc_totals(pid):
    """CPU time (ns, from schedstat: user and kernel, context switches
    included) and context switches summed over the threads of a process."""
    cpu_ns = switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                cpu_ns += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:",
                                        "nonvoluntary_ctxt_switches:")):
                        switches += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return {"cpu_ns": cpu_ns, "switches": switches}


def cmd_procsnap(args):
    """procsnap FILE name=PID...: the totals of each process, as JSON."""
    if not args:
        raise SystemExit("usage: report.py procsnap FILE name=PID...")
    snap = {}
    for a in args[1:]:
        name, pid = a.split("=", 1)
        try:
            snap[name] = proc_totals(int(pid))
        except OSError:
            pass  # not running: left out
    with open(args[0], "w", encoding="utf-8") as f:
        json.dump(snap, f)


# The sidecar's histograms of the calls inside a request (sidecar/README.md, Metrics).
SCRAPE_SERIES = {"engine": "hpp_sidecar_engine_duration_seconds",
                 "upstream": "hpp_sidecar_upstream_duration_seconds"}


def cmd_scrape(args):
    """scrape FILE URL: the sum and count of the sidecar's engine and upstream
    histograms at URL (its /metrics), as JSON."""
    if len(args) != 2:
        raise SystemExit("usage: report.py scrape FILE URL")
    try:
        with urllib.request.urlopen(args[1], timeout=5) as r:
            text = r.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        raise SystemExit(f"report.py scrape: {args[1]}: {e}")
    snap = {}
    for key, name in SCRAPE_SERIES.items():
        vals = {}
        for line in text.splitlines():
            for part in ("sum", "count"):
                if line.startswith(f"{name}_{part} "):
                    vals[part] = float(line.split()[1])
        if len(vals) == 2:
            snap[key] = vals
    with open(args[0], "w", encoding="utf-8") as f:
        json.dump(snap, f)


def load_pair(before, after):
    """The two JSON snapshots (procsnap or scrape files) around a run."""
    with open(before, encoding="utf-8") as f:
        a = json.load(f)
    with open(after, encoding="utf-8") as f:
        return a, json.load(f)


def phase_means(before, after):
    """Mean us of each scraped histogram between two scrape files."""
    a, b = load_pair(before, after)
    out = {}
    for key in b:
        if key in a and b[key]["count"] > a[key]["count"]:
            out[f"{key}_us"] = ((b[key]["sum"] - a[key]["sum"]) * 1e6
                                / (b[key]["count"] - a[key]["count"]))
    return out


def cost_per_request(before, after, requests):
    """Per process: CPU us and context switches per request between two
    procsnap files."""
    a, b = load_pair(before, after)
    out = {}
    for name in b:
        if name in a and requests:
            out[name] = {"cpu_us": (b[name]["cpu_ns"] - a[name]["cpu_ns"]) / 1e3 / requests,
                         "switches": (b[name]["switches"] - a[name]["switches"]) / requests}
    return out


def cmd_record(args):
    if not args:
        raise SystemExit("usage: report.py record FILE.jsonl [--wrk OUT] [--json OUT] "
                         "[--cost BEFORE AFTER] k=v...")
    out, rest = args[0], args[1:]
    rec = {}
    cost = phases = None
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("--wrk", "--json") and i + 1 < len(rest):
            src = rest[i + 1]
            rec.update(wrk_summary(src) if a == "--wrk" else last_json_object(src))
            i += 2
            continue
        if a in ("--cost", "--phases") and i + 2 < len(rest):
            if a == "--cost":
                cost = (rest[i + 1], rest[i + 2])
            else:
                phases = (rest[i + 1], rest[i + 2])
            i += 3
            continue
        if "=" not in a:
            raise SystemExit(f"report.py record: expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        rec[k] = v if k in ("cmd", "reason", "resolved") else parse_value(v)
        i += 1
    if cost:
        rec["cost"] = cost_per_request(cost[0], cost[1], rec.get("requests", 0))
    if phases:
        rec["phases"] = phase_means(phases[0], phases[1])
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, separators=(",", ":")) + "\n")


# ---------------------------------------------------------------------------
# machine


def run(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def first_line(s):
    return s.splitlines()[0].strip() if s else ""


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def producer(binary):
    """The compiler and flags recorded in the binary's DWARF (DW_AT_producer)."""
    text = run(["readelf", "--debug-dump=info", "--dwarf-depth=1", binary])
    for line in text.splitlines():
        if "DW_AT_producer" in line:
            return line.split(":", 1)[-1].strip().split("):", 1)[-1].strip()
    return ""


def cmd_machine(args):
    if not args:
        raise SystemExit("usage: report.py machine DIR [--build BUILD]")
    out = args[0]
    build = args[args.index("--build") + 1] if "--build" in args else "build-bench"
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = read("/proc/meminfo")
    mem = re.search(r"^MemTotal:\s*(\d+)", meminfo, re.M)
    osr = re.search(r'^PRETTY_NAME="?([^"\n]+)', read("/etc/os-release"), re.M)
    lscpu = run(["lscpu"])
    hyper = re.search(r"^Hypervisor vendor:\s*(.+)$", lscpu, re.M)
    libs = {}
    for lib in ("libzmq", "msgpack", "libevent", "jansson", "criterion"):
        libs[lib] = run(["pkg-config", "--modversion", lib]) or None
    portkey = None
    pj = read("bench/peers/node_modules/@portkey-ai/gateway/package.json")
    if pj:
        portkey = json.loads(pj).get("version")
    binaries = {}
    for b in ("hpp-engine", "hpp-sidecar", "bench/bench_resolve", "bench/bench_engine",
              "bench/upstream_stub"):
        path = os.path.join(build, b)
        if os.path.exists(path):
            binaries[b] = producer(path) or "present (no DWARF producer)"
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"])
    m = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "hypervisor": hyper.group(1).strip() if hyper else None,
        "cpu_governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip()
        or None,
        "memory_mb": int(mem.group(1)) // 1024 if mem else None,
        "kernel": platform.release(),
        "os": osr.group(1) if osr else platform.platform(),
        "compiler": first_line(run(["cc", "--version"])),
        "build_dir": build,
        "build_flags": binaries,
        "libraries": libs,
        "tools": {
            "wrk": first_line(run(["wrk", "-v"])) or None,
            "nginx": first_line(run(["nginx", "-v"])) or None,
            "node": first_line(run(["node", "--version"])) or None,
            "portkey_gateway": portkey,
            "gnuplot": first_line(run(["gnuplot", "--version"])) or None,
            "perf": first_line(run(["perf", "--version"])) or None,
            "python": platform.python_version(),
        },
        "git_commit": run(["git", "rev-parse", "HEAD"]) or None,
        "git_dirty": bool(dirty),
        "git_dirty_files": [l[2:].strip() for l in dirty.splitlines()][:20],
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "machine.json"), "w", encoding="utf-8") as f:
        json.dump(m, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------
# loading results


def load(folder, name):
    path = os.path.join(folder, name + ".jsonl")
    recs = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    recs.append(json.loads(line))
    return recs


def pick(rec, *keys):
    """First present key; 'a.b' looks inside nested objects."""
    for k in keys:
        cur = rec
        for part in k.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                cur = None
                break
        if cur is not None:
            return cur
    return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# Field names of the C tools' JSON lines (bench/bench_resolve.c, bench/bench_engine.c).
RES_P50 = ("p50_ns", "ns_p50", "latency_ns.p50")
RES_P99 = ("p99_ns", "ns_p99", "latency_ns.p99")
RES_MEAN = ("mean_ns", "ns_mean", "ns_per_decision", "latency_ns.mean")
RES_ALLOCS = ("allocs_per_decision", "allocations_per_decision", "allocs")
ENG_RPS = ("rps", "decisions_per_s", "throughput")
ENG_P50 = ("p50_us", "latency_us.p50")
ENG_P99 = ("p99_us", "latency_us.p99")
ENG_P999 = ("p999_us", "p99.9_us", "latency_us.p99.9", "latency_us.p999")
ENG_MAX = ("max_us", "latency_us.max")
ENG_FAILED = ("failed", "errors", "timeouts")


class Results:
    def __init__(self, folder):
        self.folder = folder
        self.machine = {}
        mpath = os.path.join(folder, "machine.json")
        if os.path.exists(mpath):
            with open(mpath, encoding="utf-8") as f:
                self.machine = json.load(f)
        self.status = {r["scenario"]: r for r in load(folder, "status")}
        # Idle states (run.sh "Idle states"): when the run held them, its numbers
        # are those measured held, and the runs with the machine's own setting
        # are kept apart for comparison (the *_default lists).
        idle = load(folder, "idle")
        self.idle = idle[0] if idle else None
        self.idle_main = "held" if self.idle and self.idle.get("held") == 1 else "default"
        # The last run of the meter under each setting (None when there is none).
        self.hiccup, self.hiccup_default = (runs[-1] if runs else None for runs in
                                            self.split(load(folder, "floor_hiccup")))
        self.echo = load(folder, "floor_echo")
        self.resolve = load(folder, "resolve")
        self.engine_closed = load(folder, "engine_closed")
        self.engine_open, self.engine_open_default = self.split(load(folder, "engine_open"))
        self.sidecar_route = load(folder, "sidecar_route")
        self.sidecar_proxy, self.sidecar_proxy_default = self.split(
            load(folder, "sidecar_proxy"))
        self.peers = load(folder, "peers")
        self.memory = load(folder, "memory")
        self.reload = load(folder, "reload")
        self.multi = load(folder, "multi")
        self.multi_from = None  # another run's folder scenario 8 was taken from (--with)
        self.flood = load(folder, "flood")
        self.flood_from = None  # the same for scenario 9

    def take_multi(self, other):
        """Scenario 8 from another run's folder, when this one has none."""
        if self.multi or not os.path.isdir(other):
            return
        self.multi = load(other, "multi")
        if self.multi:
            self.multi_from = other
            st = {r["scenario"]: r for r in load(other, "status")}.get("multi")
            if st:
                self.status["multi"] = st
            mpath = os.path.join(other, "machine.json")
            self.multi_machine = {}
            if os.path.exists(mpath):
                with open(mpath, encoding="utf-8") as f:
                    self.multi_machine = json.load(f)

    def take_flood(self, other):
        """Scenario 9 from another run's folder, when this one has none."""
        if self.flood or not os.path.isdir(other):
            return
        self.flood = load(other, "flood")
        if self.flood:
            self.flood_from = other
            st = {r["scenario"]: r for r in load(other, "status")}.get("flood")
            if st:
                self.status["flood"] = st
            mpath = os.path.join(other, "machine.json")
            self.flood_machine = {}
            if os.path.exists(mpath):
                with open(mpath, encoding="utf-8") as f:
                    self.flood_machine = json.load(f)

    def split(self, records):
        """(records measured under the run's idle states, the others); a record
        without the mark predates it and was measured with the machine's own."""
        main = [r for r in records if r.get("idle", "default") == self.idle_main]
        return main, [r for r in records if r.get("idle", "default") != self.idle_main]

    def idle_text(self):
        """How the idle states were set in this run, for the machine table."""
        if self.idle is None:
            return "left to the machine (not recorded by this run)"
        if self.idle_main == "held":
            return (f"exit latency held at {self.idle.get('us')} us from scenario 0's second "
                    "hiccup run on (`bench/cpu_latency`, the CPU latency PM QoS request): idle "
                    "CPUs poll instead of halting; the latency goal points ran once more "
                    "with the machine's own setting")
        return f"left to the machine ({self.idle.get('reason') or 'BENCH_CPU_LATENCY=off'})"

    def echo_point(self, mode):
        """The ZeroMQ echo run of scenario 0 in one mode (open or closed), or None."""
        rs = [r for r in self.echo if r.get("mode") == mode]
        return rs[-1] if rs else None

    def wake(self, key):
        """One wake-up measurement of bench/hiccup (cross_cpu, same_cpu, timer), or None."""
        w = (self.hiccup or {}).get("wake")
        return w.get(key) if isinstance(w, dict) else None

    def floor_note(self):
        """What the machine allows at 20k/s open loop, for the goals table; '' if unmeasured."""
        parts = []
        echo = self.echo_point("open")
        if echo and echo.get("rate") == 20000 and pick(echo, *ENG_P99) is not None:
            parts.append(f"ZeroMQ echo on this machine: {fmt_us(pick(echo, *ENG_P99))}")
        h = self.hiccup
        if h and h.get("stall_p99_us") is not None:
            text = f"machine stalls: p99 residual {fmt_us(h['stall_p99_us'])}"
            if h.get("stall_p99_not_preempted_us") is not None:
                text += (f", {fmt_us(h['stall_p99_not_preempted_us'])} not counting other "
                         "tasks")
            parts.append(text)
        cross = self.wake("cross_cpu")
        if cross and cross.get("p99_us") is not None:
            parts.append(f"cross-CPU wake-up p99 {fmt_us(cross['p99_us'])}")
        elif h:
            parts.append("cross-CPU wake-up not measured")
        return f" ({'; '.join(parts)})" if parts else ""

    def engine_points(self, records, key, value):
        """{point: (median of `value` over its runs, [each run's value])} of engine records
        grouped by `key` (depth or rate): the goal points run several times (run.sh
        BENCH_REPEAT), and a median does not hang a verdict on one stall of the machine."""
        runs = {}
        for r in records:
            runs.setdefault(r.get(key), []).append(pick(r, *value))
        return {k: (median(v), v) for k, v in runs.items()}

    def peer_point(self, system, conns):
        """Median over rounds of rps, p50 and p99 at one connection count."""
        rs = [r for r in self.peers if r["system"] == system and r["connections"] == conns]
        if not rs:
            return None
        return {
            "rps": median([r["rps"] for r in rs]),
            "p50": median([pick(r, "latency_us.p50") for r in rs]),
            "p99": median([pick(r, "latency_us.p99") for r in rs]),
            "failed": sum(r.get("failed", 0) for r in rs),
            "rounds": len(rs),
            "cmds": [r.get("cmd", "") for r in rs],
        }


# ---------------------------------------------------------------------------
# goals


def goals(res):
    """[(component, goal text, issue, measured text, verdict)]; verdict True/False/None."""
    out = []
    full = [r for r in res.resolve if r.get("catalog") == "litellm"]
    if full:
        r = full[0]
        p50, p99, allocs = pick(r, *RES_P50), pick(r, *RES_P99), pick(r, *RES_ALLOCS)
        out.append(("resolve", "decision p50 <= 1 us, full LiteLLM catalog", "#3",
                    fmt_ns(p50), None if p50 is None else p50 <= 1000))
        out.append(("resolve", "decision p99 <= 5 us, full LiteLLM catalog", "#3",
                    fmt_ns(p99), None if p99 is None else p99 <= 5000))
        out.append(("resolve", "0 heap allocations per decision", "#3",
                    "n/a" if allocs is None else f"{allocs:g}",
                    None if allocs is None else allocs == 0))
    else:
        out.append(("resolve", "decision p50 <= 1 us / p99 <= 5 us, 0 allocations", "#3",
                    "not measured", None))
    if res.engine_closed:
        points = res.engine_points(res.engine_closed, "depth", ENG_RPS)
        depth, (rps, runs) = max(points.items(), key=lambda kv: kv[1][0] or 0)
        out.append(("engine", ">= 300k decisions/s pipelined over tcp loopback", "#4",
                    f"{fmt_int(rps)}/s at depth {depth}{fmt_runs(runs, fmt_int)}",
                    None if rps is None else rps >= 300000))
    else:
        out.append(("engine", ">= 300k decisions/s pipelined over tcp loopback", "#4",
                    "not measured", None))
    at20k = res.engine_points(res.engine_open, "rate", ENG_P99).get(20000)
    if at20k:
        p99, runs = at20k
        other = res.engine_points(res.engine_open_default, "rate", ENG_P99).get(20000)
        out.append(("engine", "open loop at 20k/s: p99 <= 200 us", "#4",
                    fmt_us(p99) + fmt_runs(runs, fmt_us) + res.floor_note()
                    + (f"; idle states left to the machine: {fmt_us(other[0])}" if other
                       else ""),
                    None if p99 is None else p99 <= 200))
    else:
        out.append(("engine", "open loop at 20k/s: p99 <= 200 us", "#4", "not measured", None))
    sc = res.peer_point("sidecar-route", 32)
    pk = res.peer_point("portkey", 32)
    if sc and pk and pk["rps"]:
        ratio = sc["rps"] / pk["rps"]
        out.append(("sidecar", "/v1/route at 32 connections >= 30x Portkey's requests/s", "#5",
                    f"{ratio:.1f}x ({fmt_int(sc['rps'])} vs {fmt_int(pk['rps'])} req/s)",
                    ratio >= 30))
        if sc["p99"] and pk["p99"]:
            pr = pk["p99"] / sc["p99"]
            out.append(("sidecar", "/v1/route p99 <= 1/20 of Portkey's at 32 connections",
                        "#5", f"1/{pr:.1f} ({fmt_us(sc['p99'])} vs {fmt_us(pk['p99'])})",
                        pr >= 20))
    else:
        out.append(("sidecar", "/v1/route at 32 connections >= 30x Portkey's req/s, "
                    "p99 <= 1/20", "#5", "not measured", None))
    px, dr, ng = proxy_p50s(res.sidecar_proxy)
    if px and dr:
        diff = median(px) - median(dr)
        parts = []
        dpx, ddr, _ = proxy_p50s(res.sidecar_proxy_default)
        if dpx and ddr:
            parts.append(f"idle states left to the machine: +{median(dpx) - median(ddr):.0f} us "
                         f"({fmt_us(median(dpx))} vs {fmt_us(median(ddr))})")
        if ng and median(ng) is not None:
            parts.append(f"nginx as a plain reverse proxy, no decision, on this machine: "
                         f"+{median(ng) - median(dr):.0f} us")
        zr = [pick(r, "latency_us.p50") for r in res.sidecar_proxy
              if r["system"] == "sidecar-proxy-router"]
        if zr and median(zr) is not None:
            parts.append(f"the same proxy on the engine's ROUTER instead of its direct "
                         f"listener: +{median(zr) - median(dr):.0f} us")
        zq = [pick(r, "latency_us.p50") for r in res.sidecar_proxy
              if r["system"] == "sidecar-proxy-libzmq"]
        if zq and median(zq) is not None:
            parts.append(f"the same proxy on the libzmq engine link: +{median(zq) - median(dr):.0f} us")
        echo = res.echo_point("closed")
        if echo and pick(echo, *ENG_P50) is not None:
            parts.append(f"a ZeroMQ round trip, no decision: {fmt_us(pick(echo, *ENG_P50))} p50")
        floor = f" ({'; '.join(parts)})" if parts else ""
        out.append(("sidecar", "proxy mode adds <= 100 us p50 over the upstream directly "
                    "(1 connection)", "#5",
                    f"+{diff:.0f} us ({fmt_us(median(px))} vs {fmt_us(median(dr))}){floor}",
                    diff <= 100))
    else:
        out.append(("sidecar", "proxy mode adds <= 100 us p50 (1 connection)", "#5",
                    "not measured", None))
    rel = [r for r in res.reload if r.get("mode") == "reload"]
    if rel:
        failed = sum(pick(r, *ENG_FAILED) or 0 if r.get("target") == "engine"
                     else r.get("failed", 0) for r in rel)
        out.append(("engine", "no failed request during reloads under load", "#4",
                    f"{failed} failed over {sum(r.get('sighups', 0) for r in rel)} SIGHUPs",
                    failed == 0))
    else:
        out.append(("engine", "no failed request during reloads under load", "#4",
                    "not measured", None))
    kills = [r for r in res.multi if r.get("part") in ("client-kill", "sidecar-kill")]
    if kills:
        for r in kills:
            via = "the C client" if r["part"] == "client-kill" else "the sidecar (wrk)"
            failed = r.get("failed", 0)
            extra = (f", back to normal {r['recovery_ms']:.0f} ms after the kill"
                     if r.get("recovery_ms") is not None else "")
            out.append(("multi", f"one engine of three killed under load: no failed request, "
                        f"through {via}", "many engines",
                        f"{failed} failed of {fmt_int(r.get('requests'))}{extra}",
                        failed == 0))
    else:
        out.append(("multi", "one engine of three killed under load: no failed request",
                    "many engines", "not measured", None))
    out += flood_goals(res)
    return out


FLOOD_PEAK_MB = 64
FLOOD_PING_P99_MS = 10


def flood_goals(res):
    """Scenario 9's goals, judged at the median of the repeats."""
    issue = "bounded memory"
    if not res.flood:
        return [("flood", f"10 clients that never read: engine peak RSS < {FLOOD_PEAK_MB} MB, "
                 f"ping p99 <= {FLOOD_PING_P99_MS} ms", issue, "not measured", None)]
    peaks = [r["peak_kb"] / 1024 for r in res.flood]
    p99s = [r["p99_ms"] for r in res.flood if r.get("p99_ms") is not None]
    afters = [(r["after_kb"] - r["start_kb"]) / 1024 for r in res.flood]
    runs = lambda vals, unit: (f" (median of {len(vals)} runs: "
                               + ", ".join(f"{v:.1f} {unit}" for v in vals) + ")")
    peak, p99, after = median(peaks), median(p99s), median(afters)
    n = res.flood[0].get("clients", 10)
    return [
        ("flood", f"{n} clients that never read: engine peak RSS < {FLOOD_PEAK_MB} MB", issue,
         f"{peak:.1f} MB{runs(peaks, 'MB')}", peak < FLOOD_PEAK_MB),
        ("flood", f"{n} clients that never read: a reading client's ping p99 <= "
         f"{FLOOD_PING_P99_MS} ms", issue, f"{p99:.1f} ms{runs(p99s, 'ms')}",
         None if p99 is None else p99 <= FLOOD_PING_P99_MS),
        ("flood", "memory given back once they left: RSS within 8 MB of the start", issue,
         f"+{after:.1f} MB{runs(afters, 'MB')}", after <= 8),
    ]


def proxy_p50s(records):
    """p50s of proxy mode, the upstream directly and nginx as a proxy, each a list."""
    return tuple([pick(r, "latency_us.p50") for r in records if r["system"] == system]
                 for system in ("sidecar-proxy", "upstream-direct", "nginx-proxy"))


def cmd_goals(args):
    res = Results(args[0])
    missed = sorted({g[0] for g in goals(res) if g[4] is False})
    print(" ".join(missed))


# ---------------------------------------------------------------------------
# formatting


def fmt_runs(runs, fmt):
    """' (median of 3 runs: a, b, c)' for a point measured more than once, else ''."""
    if len(runs) < 2:
        return ""
    return f" (median of {len(runs)} runs: {', '.join(fmt(v) for v in runs)})"


def fmt_int(v):
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "n/a"
    if v >= 10000:
        return f"{v / 1000:.1f} ms"
    return f"{v:.0f} us"


def fmt_ns(v):
    return "n/a" if v is None else f"{v:,.0f} ns"


def verdict(v):
    return {True: "met", False: "**missed**", None: "not measured"}[v]


class Commands:
    """Numbers each distinct command once per section: rows cite [n]."""

    def __init__(self):
        self.cmds = []

    def ref(self, cmd):
        if not cmd:
            return ""
        if cmd not in self.cmds:
            self.cmds.append(cmd)
        return f"[{self.cmds.index(cmd) + 1}]"

    def block(self):
        if not self.cmds:
            return []
        lines = ["", "Commands:", "", "```"]
        lines += [f"[{i + 1}] {c}" for i, c in enumerate(self.cmds)]
        return lines + ["```"]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return lines


# ---------------------------------------------------------------------------
# CSV and plots


def flat(rec, prefix=""):
    out = {}
    for k, v in rec.items():
        if k == "cdf_us":
            continue
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        elif isinstance(v, list):
            out[prefix + k] = json.dumps(v, separators=(",", ":"))
        else:
            out[prefix + k] = v
    return out


def write_csvs(folder):
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        name = os.path.splitext(os.path.basename(path))[0]
        rows = [flat(r) for r in load(folder, name)]
        if not rows:
            continue
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with open(os.path.join(folder, name + ".csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


SYSTEM_ORDER = ["sidecar-route", "sidecar-proxy", "portkey", "upstream-direct", "nginx-static"]
SYSTEM_LABEL = {
    "sidecar-route": "hpp-sidecar /v1/route",
    "sidecar-proxy": "hpp-sidecar proxy -> stub",
    "portkey": "Portkey gateway (conditional) -> stub",
    "upstream-direct": "upstream stub direct",
    "nginx-static": "nginx static reply (ceiling)",
}


def systems_in(res):
    seen = {r["system"] for r in res.peers}
    return [s for s in SYSTEM_ORDER if s in seen] + sorted(seen - set(SYSTEM_ORDER))


def write_plots(res, folder):
    """Writes the .dat files and a gnuplot script, runs gnuplot; returns PNG names.
    Without gnuplot, the plots the run already has are kept (a report rendered
    again on another machine still shows them)."""
    if not shutil.which("gnuplot"):
        return [p for p in ("throughput_vs_connections.png", "latency_cdf.png",
                            "engine_depth.png") if os.path.exists(os.path.join(folder, p))]
    pngs, script = [], ["set terminal pngcairo size 900,560 font 'sans,10'",
                        "set grid", "set key below"]
    systems = systems_in(res)
    if systems:
        conns = sorted({r["connections"] for r in res.peers})
        plots = []
        for s in systems:
            dat = f"plot_rps_{s}.dat"
            with open(os.path.join(folder, dat), "w", encoding="utf-8") as f:
                f.write("# connections median_rps\n")
                for c in conns:
                    p = res.peer_point(s, c)
                    if p:
                        f.write(f"{c} {p['rps']:.1f}\n")
            plots.append(f"'{dat}' using 1:2 with linespoints lw 2 title '{SYSTEM_LABEL.get(s, s)}'")
        script += ["set output 'throughput_vs_connections.png'",
                   "set title 'Requests/s vs connections (wrk, 1 KB chat body, median of rounds)'",
                   "set xlabel 'connections'", "set ylabel 'requests/s'",
                   f"set xrange [{conns[0] * 0.8}:{conns[-1] * 1.25}]", "set logscale xy",
                   "set xtics (" + ", ".join(str(c) for c in conns) + ")",
                   "plot " + ", \\\n     ".join(plots),
                   "unset logscale", "set xtics autofreq", "set autoscale x"]
        pngs.append("throughput_vs_connections.png")
        plots = []
        c = 32 if 32 in conns else conns[-1]
        for s in systems:
            rs = [r for r in res.peers if r["system"] == s and r["connections"] == c
                  and r.get("cdf_us")]
            if not rs:
                continue
            rec = rs[-1]
            dat = f"plot_cdf_{s}.dat"
            with open(os.path.join(folder, dat), "w", encoding="utf-8") as f:
                f.write(f"# latency_us percentile  ({s}, {c} connections, round {rec.get('round')})\n")
                for pct, us in rec["cdf_us"]:
                    if us is not None:
                        f.write(f"{max(us, 1)} {pct}\n")
            plots.append(f"'{dat}' using 1:2 with lines lw 2 title '{SYSTEM_LABEL.get(s, s)}'")
        if plots:
            script += ["set output 'latency_cdf.png'",
                       f"set title 'Latency CDF at {c} connections (wrk, closed loop, last round)'",
                       "set xlabel 'latency (us, log scale)'", "set ylabel 'percentile'",
                       "set logscale x", "set yrange [0:100]",
                       "plot " + ", \\\n     ".join(plots), "unset logscale", "set autoscale y"]
            pngs.append("latency_cdf.png")
    if res.engine_closed:
        with open(os.path.join(folder, "plot_engine_depth.dat"), "w", encoding="utf-8") as f:
            f.write("# depth decisions_per_s\n")
            points = res.engine_points(res.engine_closed, "depth", ENG_RPS)
            for depth in sorted(points, key=lambda d: d or 0):
                if points[depth][0] is not None:
                    f.write(f"{depth} {points[depth][0]}\n")
        script += ["set output 'engine_depth.png'",
                   "set title 'hpp-engine: decisions/s vs pipelining depth (tcp loopback)'",
                   "set xlabel 'requests in flight'", "set ylabel 'decisions/s'",
                   "set logscale x 2", "set yrange [0:*]",
                   "plot 'plot_engine_depth.dat' using 1:2 with linespoints lw 2 notitle",
                   "unset logscale", "set autoscale y"]
        pngs.append("engine_depth.png")
    if not pngs:
        return []
    with open(os.path.join(folder, "plots.gp"), "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    p = subprocess.run(["gnuplot", "plots.gp"], cwd=folder, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write("report.py: gnuplot failed:\n" + p.stderr)
        return []
    return [png for png in pngs if os.path.exists(os.path.join(folder, png))]


# ---------------------------------------------------------------------------
# markdown


def md_machine(res, rel):
    m = res.machine
    libs = m.get("libraries", {})
    tools = m.get("tools", {})
    lines = ["## Machine", ""]
    lines += table(["what", "value"], [
        ["CPU", f"{m.get('cpu_model')}, {m.get('cores')} cores"
                + (f", hypervisor {m['hypervisor']}" if m.get("hypervisor") else "")],
        ["memory", f"{m.get('memory_mb')} MB"],
        ["OS, kernel", f"{m.get('os')}, Linux {m.get('kernel')}"],
        ["compiler", m.get("compiler")],
        ["build", f"`{m.get('build_dir')}`: "
                  + (next(iter(m.get("build_flags", {}).values()), "n/a") or "n/a")],
        ["libraries", ", ".join(f"{k} {v}" for k, v in libs.items() if v)],
        ["load tools", ", ".join(v if k.split("_")[0] in v.lower() else f"{k} {v}"
                                 for k, v in tools.items() if v)],
        ["git commit", f"`{m.get('git_commit')}`" + (
            " (with uncommitted changes" + (": " + ", ".join(m["git_dirty_files"])
                                            if m.get("git_dirty_files") else "") + ")"
            if m.get("git_dirty") else "")],
        ["idle states", res.idle_text()],
        ["run", f"{m.get('date_utc')}; raw numbers in [{rel}]({rel}/)"],
    ])
    lines += ["", "Everything runs on this one machine over 127.0.0.1: servers and load "
              "generators share its cores, so absolute numbers are lower than on a "
              "dedicated client/server pair; the ratios between systems measured in the "
              "same run are the robust part."]
    return lines


def md_status(res):
    names = [("floor", "0. machine floor"), ("resolve", "1. in-process resolver"),
             ("engine", "2. engine over ZMQ"), ("sidecar", "3. sidecar /v1/route"),
             ("peers", "4. peers"), ("memory", "6. memory"), ("reload", "7. reload under load"),
             ("multi", "8. several engines, CURVE"), ("flood", "9. clients that never read")]
    rows = []
    for key, label in names:
        st = res.status.get(key)
        if st is None:
            rows.append([label, "not run", ""])
        else:
            rows.append([label, st["status"], st.get("reason", "")])
    return ["## Scenarios in this run", ""] + table(["scenario", "status", "note"], rows)


def md_goals(res):
    lines = ["## Goals from the issues", ""]
    rows = [[g[1], g[2], g[3], verdict(g[4])] for g in goals(res)]
    lines += table(["goal", "issue", "measured", "verdict"], rows)
    missed = [g for g in goals(res) if g[4] is False]
    if missed:
        lines += ["", "Missed goals are listed with the profile that shows where the time "
                  "goes in [Profiles](#profiles) (rerun with `PROFILE=1` for all "
                  "components)."]
    return lines


def fmt_pct(v, digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}%"


ECHO_LABEL = "ZeroMQ echo (floor)"
OWN_IDLE = "machine's own idle states"  # a run with idle states not held (run.sh)


def md_floor(res):
    lines = ["## 0. Machine floor", "",
             "Measured first, while nothing else of the run is up. `bench/hiccup` pins one "
             "thread to each CPU that does nothing but read `CLOCK_MONOTONIC` in a loop (a "
             "hiccup meter, like jHiccup): two reads are normally a few tens of nanoseconds "
             "apart, and a longer gap is time this machine did not run a thread that never "
             "blocks: an interrupt, the local scheduler running something else (*preempted*: "
             "involuntary context switches of the thread), or the hypervisor not running "
             "the vCPU (*steal*: from `/proc/stat`, in 10 ms ticks). *Time lost* sums the "
             "gaps >= 50 us; a gap across which the thread was switched out for another "
             "task of this machine counts as *lost to other tasks* (another benchmark, a "
             "build: the machine was not idle), the rest is interrupts and the hypervisor. "
             "*Stall p99* is the time-weighted 99th percentile of how long a "
             "request arriving at a random instant waits for the stall it lands in (a gap of "
             "length g covers g of the time and the wait inside it is uniform on [0, g]; "
             "the formula is in `bench/hiccup.c`): no server on this machine can have a "
             "lower p99 for work that stays on one CPU, and a request that crosses "
             "several can be stopped by any of them. The ZeroMQ echo server "
             "(`bench_engine --echo`, forked into its own process like the engine) answers "
             "on the engine's sockets, threads and transport without the decision: what the "
             "engine shows in section 2 above these numbers is the engine's own.",
             ""]
    if not res.hiccup and not res.echo:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    if res.hiccup and res.hiccup.get("cpus"):
        h = res.hiccup

        def row(name, r):
            return [name, f"{r.get('read_ns', 0):.0f} ns", fmt_int(r.get("gaps_ge_50us")),
                    fmt_int(r.get("gaps_ge_200us")), fmt_int(r.get("gaps_ge_1ms")),
                    fmt_us(r.get("max_gap_us")), fmt_pct(r.get("lost_pct")),
                    f"{fmt_pct(r.get('lost_preempted_pct'))} ({fmt_int(r.get('preempted'))} "
                    "switches)", fmt_us(r.get("stall_p99_us")),
                    fmt_us(r.get("stall_p99_not_preempted_us")),
                    fmt_pct(r.get("steal_pct"), 1), cmds.ref(h.get("cmd"))]

        rows = [row(f"cpu{c.get('cpu')}", c) for c in h.get("cpus", [])]
        overall = h.get("overall", {})
        if overall:
            rows.append(row("all", overall))
        lines += table(["CPU", "one read every", "gaps >= 50 us", ">= 200 us", ">= 1 ms",
                        "max gap", "time lost", "lost to other tasks", "stall p99",
                        "stall p99 without other tasks", "steal", "cmd"], rows)
        if (overall.get("lost_preempted_pct") or 0) >= 1:
            lines += ["", f"Other tasks of this machine took "
                      f"{overall['lost_preempted_pct']:.1f}% of the measured CPUs' time while "
                      "the meter ran: the machine was not idle, and whatever ran then may "
                      "have slowed the scenarios below too."]
        if overall.get("unlogged_gaps"):
            lines += ["", "Some gaps >= 1 us did not fit the meter's log: the stall p99 is a "
                      "lower bound."]
    if res.hiccup:
        lines += [""] + md_wake(res, cmds)
    if res.echo:
        rows = [[r.get("mode"), f"{fmt_int(r.get('rate'))}/s" if r.get("mode") == "open"
                 else f"depth {r.get('depth')}", fmt_int(pick(r, "rps")),
                 fmt_us(pick(r, *ENG_P50)), fmt_us(pick(r, *ENG_P99)),
                 fmt_us(pick(r, *ENG_P999)), fmt_us(pick(r, *ENG_MAX)),
                 fmt_int(pick(r, *ENG_FAILED)), cmds.ref(r.get("cmd"))] for r in res.echo]
        lines += ["", "ZeroMQ echo server, in its own process like the engine, over tcp "
                  "loopback (open loop: latency from the scheduled send time, as in "
                  "section 2):", ""]
        lines += table(["mode", "load", "replies/s", "p50", "p99", "p99.9", "max", "failed",
                        "cmd"], rows)
    at20k = res.engine_points(res.engine_open, "rate", ENG_P99).get(20000)
    echo = res.echo_point("open")
    if at20k and echo and res.hiccup:
        text = (f"At 20k requests/s open loop, p99: hpp-engine "
                f"{fmt_us(at20k[0])}{' (median)' if len(at20k[1]) > 1 else ''}, ZeroMQ echo "
                f"{fmt_us(pick(echo, *ENG_P99))}; machine stalls (residual wait) "
                f"{fmt_us(res.hiccup.get('stall_p99_us'))}, "
                f"{fmt_us(res.hiccup.get('stall_p99_not_preempted_us'))} without other tasks")
        cross = res.wake("cross_cpu")
        if cross:
            text += f"; one cross-CPU wake-up {fmt_us(cross.get('p99_us'))}"
        lines += ["", text + "."]
    return lines + cmds.block()


WAKE_ROWS = [("cross_cpu", "cross-CPU"), ("same_cpu", "same-CPU"), ("timer", "timer")]


def wake_rows(h, idle, cmds):
    """Rows of the wake-up table for one run of the meter, under `idle` states."""
    w = h.get("wake")
    rows = []
    for key, label in WAKE_ROWS:
        r = w.get(key)
        if not r:
            rows.append([label, idle, "not measured (needs two CPUs)", "", "", "", "", "", ""])
            continue
        cpus = r.get("cpus") or []
        rows.append([label, idle, " <-> ".join(f"cpu{c}" for c in cpus),
                     fmt_us(r.get("p50_us")), fmt_us(r.get("p99_us")),
                     fmt_us(r.get("p999_us")), fmt_us(r.get("max_us")),
                     fmt_int(r.get("count")), cmds.ref(h.get("cmd"))])
    return rows


def md_wake(res, cmds):
    """The wake-up table of the floor section; runs of the meter before it say not measured."""
    w = res.hiccup.get("wake")
    if not isinstance(w, dict):
        return ["Wake-up latency of sleeping threads: not measured in this run (its "
                "`bench/hiccup` only spun)."]
    held = res.idle_main == "held"
    rows = []
    other = res.hiccup_default
    if held and other and isinstance(other.get("wake"), dict):
        rows += wake_rows(other, "machine's own", cmds)
    rows += wake_rows(res.hiccup, f"held at {res.idle.get('us')} us" if held
                      else "machine's own", cmds)
    nap = w.get("nap_us") or ["?", "?"]
    text = ("A spinning thread never sleeps, so it never pays what a blocking server pays on "
            "every request: waking a thread whose CPU is idle. The meter measures that next "
            "(*wake-up latency*, from just before the write that wakes a thread to its "
            "return from `read()`): two threads on two CPUs play ping-pong through eventfd, "
            f"each napping a random {nap[0]}-{nap[1]} us before it pings so that the other "
            "CPU goes idle (*cross-CPU*: an interrupt to the other CPU and, in a virtual "
            "machine, the host running its halted vCPU again); the same with both threads "
            "on one CPU (*same-CPU*: a context switch only); and how late a "
            f"{w.get('timer_sleep_us', '?')} us `clock_nanosleep` ends (*timer*). A ZeroMQ "
            "request and its reply wake about six threads (the app and I/O threads of both "
            "ends), most of them across CPUs, so a blocking server's p99 cannot be far "
            "below the cross-CPU wake-up p99, however small the stall p99 is.")
    if held:
        text += (" With the idle states held (the machine table says how), an idle CPU polls "
                 "instead of halting, and a cross-CPU wake-up costs about what a context "
                 "switch costs; the rest of the run was measured that way.")
    return [text, ""] + table(["wake-up", "idle states", "CPUs", "p50", "p99", "p99.9",
                               "max", "count", "cmd"], rows)


def md_resolve(res):
    lines = ["## 1. In-process resolver", "",
             "`bench/bench_resolve` calls `eng_resolve()` in a loop over a mix of requests "
             "and times each decision (the timer's own cost, `timer_ns`, is included, so the "
             "figures are upper bounds); malloc/calloc/realloc are interposed and counted "
             "inside the timed loop. The `text-*` runs give every request the same real "
             "prompt text (`--text`, the message texts of the 1 KB and 32 KB bodies, the "
             "latter cut to the sidecar's 8 KiB sample): hint rules scan all of it, so these "
             "rows show what a long prompt costs.", ""]
    if not res.resolve:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    rows = []
    for r in res.resolve:
        text = r.get("text_bytes")
        rows.append([r.get("catalog"), fmt_int(pick(r, "models")),
                     f"{fmt_int(text)} B" if text else "short (mix)",
                     fmt_int(pick(r, "decisions",
                     "iterations")), fmt_int(pick(r, "decisions_per_s")),
                     fmt_ns(pick(r, *RES_P50)), fmt_ns(pick(r, *RES_P99)),
                     fmt_ns(pick(r, *RES_MEAN)),
                     "n/a" if pick(r, *RES_ALLOCS) is None else f"{pick(r, *RES_ALLOCS):g}",
                     cmds.ref(r.get("cmd"))])
    lines += table(["run", "models", "text sample", "decisions", "decisions/s", "p50", "p99",
                    "mean", "allocs/decision", "cmd"], rows)
    return lines + cmds.block()


def md_engine(res, pngs):
    lines = ["## 2. hpp-engine over ZMQ (tcp loopback)", ""]
    if not res.engine_closed and not res.engine_open:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    if res.engine_closed:
        lines += ["Closed loop: a DEALER keeps `depth` requests in flight (pipelining).", ""]
        recs = [("hpp-engine", r) for r in sorted(res.engine_closed,
                                                  key=lambda r: r.get("depth", 0))]
        if res.echo_point("closed"):
            recs.append((ECHO_LABEL, res.echo_point("closed")))
        rows = [[name, r.get("depth"), r.get("round", ""), fmt_int(pick(r, *ENG_RPS)),
                 fmt_us(pick(r, *ENG_P50)), fmt_us(pick(r, *ENG_P99)), cmds.ref(r.get("cmd"))]
                for name, r in recs]
        lines += table(["server", "depth", "run", "decisions/s", "p50", "p99", "cmd"], rows)
        if "engine_depth.png" in pngs:
            lines += ["", f"![engine throughput vs depth]({res.rel}/engine_depth.png)"]
    if res.engine_open:
        lines += ["", "Open loop: requests are sent on a fixed schedule and latency is "
                  "measured from the scheduled send time, so a stall is charged to every "
                  "request it delayed (no coordinated omission).", ""]
        recs = [("hpp-engine", r) for r in sorted(res.engine_open,
                                                  key=lambda r: r.get("rate", 0))]
        recs += [(f"hpp-engine, {OWN_IDLE}", r) for r in res.engine_open_default]
        if res.echo_point("open"):
            recs.append((ECHO_LABEL, res.echo_point("open")))
        rows = [[name, fmt_int(r.get("rate")), r.get("round", ""),
                 fmt_int(pick(r, "achieved_rps", "rps")), fmt_us(pick(r, *ENG_P50)),
                 fmt_us(pick(r, *ENG_P99)), fmt_us(pick(r, *ENG_P999)), fmt_us(pick(r, *ENG_MAX)),
                 fmt_int(pick(r, *ENG_FAILED)), cmds.ref(r.get("cmd"))] for name, r in recs]
        lines += table(["server", "target rate/s", "run", "achieved/s", "p50", "p99", "p99.9",
                        "max", "failed", "cmd"], rows)
    return lines + cmds.block()


def md_sidecar(res):
    lines = ["## 3. hpp-sidecar `/v1/route` with wrk", "",
             "wrk posts the same body on every request (`bench/wrk/route.lua`, bodies in "
             "`bench/bodies/`), 32 connections, header `X-HPP-Task: code`; every answer "
             "must be 2xx and a curl before each run checks that it carries "
             "`X-HPP-Router-Resolved-Model`. The engine has the bundled and the full LiteLLM "
             "catalog loaded.", ""]
    if not res.sidecar_route and not res.sidecar_proxy:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    rows = [[r.get("body"), fmt_int(r.get("body_bytes")), fmt_int(r.get("rps")),
             fmt_us(pick(r, "latency_us.p50")), fmt_us(pick(r, "latency_us.p99")),
             fmt_int(r.get("failed")), f"`{r.get('resolved', '')}`", cmds.ref(r.get("cmd"))]
            for r in res.sidecar_route]
    lines += table(["body", "bytes", "req/s", "p50", "p99", "failed", "resolved model", "cmd"],
                   rows)
    if res.sidecar_proxy:
        lines += ["", "Proxy mode (`--upstream` = the stub) against the stub called directly, "
                  "1 connection, 1 KB body, interleaved A B A B ...; the goal compares the medians. "
                  "`nginx-proxy` is nginx as a plain reverse proxy (kept-alive upstream "
                  "connections, no decision) to the same stub: the cost of one more HTTP hop "
                  "on this machine, the floor under what proxy mode can add. "
                  "`sidecar-proxy` talks to the engine's direct listener (`--direct`); "
                  "`sidecar-proxy-router` is the same proxy on the engine's ROUTER, whose "
                  "libzmq I/O thread hands each request to the deciding thread and back. "
                  "`sidecar-proxy-libzmq` is that with `--engine-link libzmq`: the "
                  "engine round trip through a libzmq DEALER and its I/O thread instead of "
                  "the sidecar's own ZMTP socket (the design before the zmtp link).", ""]
        recs = [(r.get("system"), r) for r in res.sidecar_proxy]
        recs += [(f"{r.get('system')}, {OWN_IDLE}", r) for r in res.sidecar_proxy_default]
        rows = [[name, r.get("round"), fmt_int(r.get("rps")),
                 fmt_us(pick(r, "latency_us.p50")), fmt_us(pick(r, "latency_us.p99")),
                 fmt_int(r.get("failed")), cmds.ref(r.get("cmd"))] for name, r in recs]
        lines += table(["system", "round", "req/s", "p50", "p99", "failed", "cmd"], rows)
        lines += md_cost(res.sidecar_proxy)
        lines += md_phases(res.sidecar_proxy)
    return lines + cmds.block()


COST_PROCS = ("sidecar", "engine", "upstream")


def md_cost(recs):
    """Per request: CPU time and context switches of each process on the path."""
    recs = [r for r in recs if r.get("cost")]
    if not recs:
        return []
    lines = ["", "What each request cost the processes on its path, over the same runs, "
             "from the `/proc` counters of all their threads: CPU time is user plus kernel "
             "time (the work of switching included, and any time the hypervisor stole "
             "while a thread ran), *switches* how often a thread gave up its CPU. wrk's own "
             "cost is not counted. At one connection the steps run one after the other, "
             "so the difference between the two CPU totals is, roughly, latency that proxy "
             "mode adds before any wait for an idle CPU to wake up.", ""]
    rows = []
    for r in recs:
        c = r["cost"]
        row = [r.get("system"), r.get("round")]
        total = 0.0
        for p in COST_PROCS:
            if p in c and (c[p]["cpu_us"] >= 0.05 or c[p]["switches"] >= 0.005):
                row.append(f"{c[p]['cpu_us']:.1f} us, {c[p]['switches']:.2f}")
                total += c[p]["cpu_us"]
            else:
                row.append("-")
        row.append(f"{total:.1f} us")
        rows.append(row)
    return lines + table(["system", "round"] + [f"{p}: CPU, switches" for p in COST_PROCS] +
                         ["CPU total"], rows)


def md_phases(recs):
    """Where a proxied request's time goes, from the sidecar's own histograms."""
    recs = [r for r in recs if r.get("phases") and pick(r, "latency_us.mean") is not None]
    if not recs:
        return []
    lines = ["", "Inside the proxied requests of the same runs, from the sidecar's "
             "`/metrics` read before and after each run (means, so one stall weighs in "
             "fully): the engine round trip as the sidecar sees it, the upstream from the "
             "send to the response headers, and the rest of the request's mean latency: "
             "the client's HTTP hop, the sidecar's own work and the upstream's body.", ""]
    rows = []
    for r in recs:
        ph = r["phases"]
        eng, up = ph.get("engine_us"), ph.get("upstream_us")
        mean = pick(r, "latency_us.mean")
        rest = mean - eng - up if eng is not None and up is not None else None
        rows.append([r.get("system"), r.get("round"), fmt_us(mean), fmt_us(eng), fmt_us(up),
                     fmt_us(rest)])
    return lines + table(["system", "round", "request (mean)", "engine round trip",
                          "upstream", "rest"], rows)


def md_peers(res, pngs):
    lines = ["## 4. Peers, same run, interleaved A B A B", "",
             "Each system gets the same 1 KB chat body from wrk at each connection count, "
             "in rounds (two; at 32 connections, where the goals compare, `BENCH_REPEAT`), "
             "systems alternating within a round; the table gives the median of the rounds. The Portkey gateway (npm `@portkey-ai/gateway`, bound to "
             "127.0.0.1) routes with a conditional config (`x-portkey-config`, strategy "
             "`conditional` on `metadata.task` and `params.max_tokens`, see "
             "`portkey_config` in bench/run.sh) to the same upstream stand-in as "
             "hpp-sidecar's proxy mode. Portkey has no decision-only endpoint, so the "
             "issue's goal compares hpp-sidecar's `/v1/route` with Portkey routing and "
             "forwarding; hpp-sidecar's proxy mode is the like-for-like row. nginx returning "
             "a static reply is the ceiling of this HTTP stack on this machine.", ""]
    if not res.peers:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    systems = systems_in(res)
    conns = sorted({r["connections"] for r in res.peers})
    rows = []
    for c in conns:
        for s in systems:
            p = res.peer_point(s, c)
            if p:
                rows.append([c, SYSTEM_LABEL.get(s, s), fmt_int(p["rps"]), fmt_us(p["p50"]),
                             fmt_us(p["p99"]), fmt_int(p["failed"]),
                             " ".join(cmds.ref(x) for x in sorted(set(p["cmds"])))])
    lines += table(["connections", "system", "req/s", "p50", "p99", "failed", "cmd"], rows)
    ratio_rows = []
    for c in conns:
        pk = res.peer_point("portkey", c)
        if not pk or not pk["rps"]:
            continue
        for s in ("sidecar-route", "sidecar-proxy"):
            p = res.peer_point(s, c)
            if p and p["rps"]:
                ratio_rows.append([c, SYSTEM_LABEL[s], f"{p['rps'] / pk['rps']:.1f}x",
                                   f"1/{pk['p99'] / p['p99']:.1f}" if p["p99"] and pk["p99"]
                                   else "n/a"])
    if ratio_rows:
        lines += ["", "Ratios against the Portkey gateway (req/s ratio; p99 as a fraction of "
                  "Portkey's p99):", ""]
        lines += table(["connections", "system", "req/s vs Portkey", "p99 vs Portkey"],
                       ratio_rows)
    ng = res.peer_point("nginx-static", 32)
    sc = res.peer_point("sidecar-route", 32)
    if ng and sc and ng["rps"]:
        lines += ["", f"At 32 connections hpp-sidecar `/v1/route` reaches "
                  f"{100 * sc['rps'] / ng['rps']:.0f}% of the nginx static ceiling."]
    lines += cmds.block()
    lines += ["", "## 5. Plots", ""]
    for png, alt in (("throughput_vs_connections.png", "throughput vs connections"),
                     ("latency_cdf.png", "latency CDF")):
        if png in pngs:
            lines += [f"![{alt}]({res.rel}/{png})", ""]
    if not any(p in pngs for p in ("throughput_vs_connections.png", "latency_cdf.png")):
        lines += ["No plots in this run (gnuplot missing or SKIP_PLOTS=1)."]
    return lines


def md_memory(res):
    lines = ["## 6. Memory", "",
             "VmRSS (resident now) and VmHWM (peak resident) from `/proc/PID/status` of a "
             "fresh engine and sidecar with the bundled + full LiteLLM catalog, at start and "
             "after the requests (engine: the ZMQ load generator; sidecar: wrk on "
             "`/v1/route`, which the engine serves too).", ""]
    if not res.memory:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    rows = [[r.get("process"), r.get("phase"), fmt_int(r.get("requests")),
             f"{r.get('vmrss_kb', 0) / 1024:.1f} MB", f"{r.get('vmhwm_kb', 0) / 1024:.1f} MB",
             cmds.ref(r.get("cmd"))] for r in res.memory]
    lines += table(["process", "phase", "requests", "VmRSS", "VmHWM", "cmd"], rows)
    return lines + cmds.block()


def md_reload(res):
    lines = ["## 7. Reload under load", "",
             "The engine gets SIGHUP every 250 ms while a load runs (a full recompile of "
             "policy + catalogs each time, swapped atomically); the same load without "
             "reloads is the baseline. Engine: open loop at 20k requests/s from the ZMQ "
             "load generator. Sidecar: wrk, 32 connections on `/v1/route`.", ""]
    if not res.reload:
        return lines + ["Not measured in this run (see the scenario table)."]
    cmds = Commands()
    rows = []
    for r in res.reload:
        if r.get("target") == "engine":
            rows.append(["engine (ZMQ)", r.get("mode"), r.get("sighups"), r.get("reloads_done"),
                         fmt_int(pick(r, "requests", "sent")), fmt_int(pick(r, *ENG_FAILED)),
                         fmt_us(pick(r, *ENG_P50)), fmt_us(pick(r, *ENG_P99)),
                         fmt_us(pick(r, *ENG_MAX)), cmds.ref(r.get("cmd"))])
        else:
            rows.append(["sidecar (HTTP)", r.get("mode"), r.get("sighups"), r.get("reloads_done"),
                         fmt_int(r.get("requests")), fmt_int(r.get("failed")),
                         fmt_us(pick(r, "latency_us.p50")), fmt_us(pick(r, "latency_us.p99")),
                         fmt_us(pick(r, "latency_us.max")), cmds.ref(r.get("cmd"))])
    lines += table(["through", "mode", "SIGHUPs", "reloads done", "requests", "failed", "p50",
                    "p99", "max", "cmd"], rows)
    return lines + cmds.block()


def md_multi(res):
    lines = ["## 8. Several engines, one killed; CURVE on the engine link", "",
             "Engines behind one client: closed loop, each thread a client connected to every "
             "engine (`bench/bench_client`: the C client library, `proto/hpp_client.h`, with "
             "its round robin over connected engines and its resend of an unanswered request "
             "after 100 ms), and wrk through the sidecar given several `--engine`. All engines "
             "share this machine's cores with the load generator, so more engines cannot add "
             "throughput here: the rows show what spreading over several costs, and the kill "
             "rows what losing one costs. *Recovered* is the time from the kill to the end of "
             "the last request that failed or took more than the threshold (5x the p99.9 "
             "before the kill, at least 10 ms: a request that waited for a resend).", ""]
    if not res.multi:
        return lines + ["Not measured in this run (see the scenario table)."]
    if res.multi_from:
        m = getattr(res, "multi_machine", {})
        lines += [f"Measured in a run of this scenario alone: [{res.multi_from}]"
                  f"({res.multi_rel}/) "
                  f"(`ONLY=multi`), {m.get('date_utc', 'date unknown')}, commit "
                  f"`{m.get('git_commit', 'unknown')}`, same machine type: "
                  f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} cores.", ""]
    cmds = Commands()
    runs = [r for r in res.multi if r.get("part") in ("client", "sidecar") and r.get("ran") != 0]
    if runs:
        rows = []
        for r in runs:
            client = r["part"] == "client"
            rows.append(["C client" if client else "sidecar /v1/route (wrk, 32 connections)",
                         r.get("engines"), fmt_int(r.get("rps")),
                         fmt_us(pick(r, *ENG_P50) if client else pick(r, "latency_us.p50")),
                         fmt_us(pick(r, *ENG_P99) if client else pick(r, "latency_us.p99")),
                         fmt_int(r.get("failed", 0)),
                         fmt_int(r.get("resent")) if client else "-",
                         cmds.ref(r.get("cmd"))])
        lines += table(["through", "engines", "requests/s", "p50", "p99", "failed", "resent",
                        "cmd"], rows)
    kills = [r for r in res.multi if r.get("part") in ("client-kill", "sidecar-kill")]
    if kills:
        rows = []
        for r in kills:
            client = r["part"] == "client-kill"
            rows.append(["C client" if client else "sidecar (wrk)", r.get("engines"),
                         f"{r.get('killed_at_s', 0):g} s", fmt_int(r.get("requests")),
                         fmt_int(r.get("failed", 0)),
                         fmt_int(r.get("resent")) if client else "-",
                         fmt_us(pick(r, *ENG_MAX) if client else pick(r, "latency_us.max")),
                         f"{r['recovery_ms']:.0f} ms" if r.get("recovery_ms") is not None
                         else "not measured (wrk)",
                         cmds.ref(r.get("cmd"))])
        lines += ["", "One engine killed (SIGKILL) halfway through the run:", ""]
        lines += table(["through", "engines", "killed at", "requests", "failed", "resent",
                        "slowest", "recovered", "cmd"], rows)
    link = [r for r in res.multi if r.get("part") == "link" and "mode" in r]
    if link:
        rows = []
        summary = []
        for test, label, key in (("closed", "closed loop, depth 64", ENG_RPS),
                                 ("open", "open loop, 20,000/s", ENG_P99)):
            med = {}
            for mode in ("null", "curve"):
                rs = [r for r in link if r.get("test") == test and r.get("mode") == mode]
                if not rs:
                    continue
                med[mode] = median([pick(r, *key) for r in rs])
                rows.append([label, "CURVE" if mode == "curve" else "NULL", len(rs),
                             fmt_int(median([pick(r, *ENG_RPS) for r in rs])),
                             fmt_us(median([pick(r, *ENG_P50) for r in rs])),
                             fmt_us(median([pick(r, *ENG_P99) for r in rs])),
                             fmt_int(sum(pick(r, *ENG_FAILED) or 0 for r in rs)),
                             ", ".join(cmds.ref(r.get("cmd")) for r in rs)])
            if med.get("null") and med.get("curve"):
                if test == "closed":
                    summary.append(f"CURVE keeps {med['curve'] / med['null']:.0%} of the "
                                   "pipelined decisions/s")
                else:
                    summary.append(f"open-loop p99 {fmt_us(med['null'])} -> "
                                   f"{fmt_us(med['curve'])} with CURVE")
        lines += ["", "The engine link with CURVE against NULL (`bench/bench_engine`, two "
                  "engines started alike, runs interleaved; medians of the runs):", ""]
        lines += table(["load", "mechanism", "runs", "decisions/s", "p50", "p99", "failed",
                        "cmd"], rows)
        if summary:
            lines += ["", "; ".join(summary) + "."]
    reasons = [r for r in res.multi if r.get("ran") == 0]
    if reasons:
        lines += ["", "Not run in this run:", ""]
        lines += [f"- {r.get('part')}: {r.get('reason')}" for r in reasons]
    return lines + cmds.block()


def profile_shares(text):
    """[(object, percent)] from the '# by object' part of a profile file."""
    out, inside = [], False
    for line in text:
        if line.startswith("# by object"):
            inside = True
            continue
        if line.startswith("#"):
            if inside:
                break
            continue
        if inside:
            m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
            if m:
                obj = "kernel" if "kernel" in m.group(2) else m.group(2)
                out.append((obj, float(m.group(1))))
    return out


def md_profiles(res):
    files = sorted(glob.glob(os.path.join(res.folder, "profile_*.txt")))
    lines = ["## Profiles", ""]
    if not files:
        return lines + ["No profile in this run: every measured goal was met, or perf was "
                        "not available (`PROFILE=1` profiles every component)."]
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().splitlines()
        lines += [f"### {name[len('profile_'):-4]} ([full]({res.rel}/{name}))", ""]
        shares = profile_shares(text)
        if shares:
            lines += ["Where the samples fall: " + ", ".join(f"{pct:.0f}% {obj}"
                                                             for obj, pct in shares[:4]) +
                      (". The kernel (system calls, wake-ups and context switches between "
                       "the threads sharing the cores) takes more time than the code's own "
                       "computation." if shares[0][0] == "kernel" and shares[0][1] >= 40
                       else "."), ""]
        lines += ["```"]
        lines += text[:50] + ["```", ""]
    return lines


def md_flood(res):
    lines = ["## 9. Clients that never read", "",
             "Ten DEALERs (`tests/integration/flood_client.py`, pyzmq, one process) connect to "
             "a fresh engine (bundled catalog, default limits) and each send 40,000 `models` "
             "requests (2.3 KB replies) without reading a reply, all at once; meanwhile a "
             "well-behaved client pings, one ping at a time, 2 ms apart (its round trips, "
             "Python included, are the p50/p99/max). *Peak* is VmHWM once the engine has taken "
             "every request (answered or refused); *after* is VmRSS once the flooders have "
             "closed their connections. `dropped` and `refused` are the engine's `stats`. "
             "Before the limits (engine/README.md, \"Clients that do not read\"), one such "
             "client with 400,000 requests took the engine from 7 MB to 280 MB on this "
             "machine, and it kept 265 MB after the client left.", ""]
    if not res.flood:
        return lines + ["Not measured in this run (see the scenario table)."]
    if res.flood_from:
        m = getattr(res, "flood_machine", {})
        lines += [f"Measured in a run of this scenario alone: [{res.flood_from}]"
                  f"({res.flood_rel}/) (`ONLY=flood`), {m.get('date_utc', 'date unknown')}, "
                  f"commit `{m.get('git_commit', 'unknown')}`, same machine type: "
                  f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} cores.", ""]
    cmds = Commands()
    rows = [[r.get("repeat"), fmt_int(r.get("requests")), f"{r['start_kb'] / 1024:.1f} MB",
             f"{r['peak_kb'] / 1024:.1f} MB", f"{r['connected_kb'] / 1024:.1f} MB",
             f"{r['after_kb'] / 1024:.1f} MB", fmt_int(r.get("dropped")),
             fmt_int(r.get("refused")), f"{r.get('answered')}/{r.get('count')}",
             f"{r.get('p50_ms')} ms", f"{r.get('p99_ms')} ms", f"{r.get('max_ms')} ms",
             cmds.ref(r.get("cmd"))] for r in res.flood]
    lines += table(["run", "requests", "RSS start", "peak (VmHWM)", "RSS connected",
                    "RSS after they left", "dropped", "refused", "pings answered",
                    "ping p50", "ping p99", "ping max", "cmd"], rows)
    lines += [""] + [f"Goals (medians of the {len(res.flood)} runs): " + "; ".join(
        f"{g[1]}: {g[3]}, {verdict(g[4])}" for g in flood_goals(res)) + "."]
    return lines + cmds.block()


def cmd_render(args):
    if not args:
        raise SystemExit("usage: report.py render DIR [--markdown FILE] [--no-plots] "
                         "[--with DIR2]")
    folder = args[0]
    md = args[args.index("--markdown") + 1] if "--markdown" in args else None
    res = Results(folder)
    for i, a in enumerate(args):
        if a == "--with" and i + 1 < len(args):
            res.take_multi(args[i + 1])
            res.take_flood(args[i + 1])
    write_csvs(folder)
    pngs = [] if "--no-plots" in args else write_plots(res, folder)
    if not md:
        return
    res.rel = os.path.relpath(folder, os.path.dirname(os.path.abspath(md)) or ".")
    if res.multi_from:
        res.multi_rel = os.path.relpath(res.multi_from,
                                        os.path.dirname(os.path.abspath(md)) or ".")
    if res.flood_from:
        res.flood_rel = os.path.relpath(res.flood_from,
                                        os.path.dirname(os.path.abspath(md)) or ".")
    lines = ["# Benchmark results", "",
             f"Generated by `bench/report.py` from [{res.rel}]({res.rel}/) "
             "(`make bench`, which runs `bench/run.sh`; read [bench/README.md](README.md) for "
             "what each scenario measures). Do not edit by hand: rerun `make bench`, or "
             f"`python3 bench/report.py render {folder} --markdown {md}"
             f"{' --with ' + res.multi_from if res.multi_from else ''}"
             f"{' --with ' + res.flood_from if res.flood_from else ''}` to regenerate "
             "from the same raw numbers. Each table cites the exact command of each number.",
             ""]
    for part in (md_machine(res, res.rel), md_status(res), md_goals(res), md_floor(res),
                 md_resolve(res), md_engine(res, pngs), md_sidecar(res), md_peers(res, pngs),
                 md_memory(res), md_reload(res), md_multi(res), md_flood(res),
                 md_profiles(res)):
        lines += part + [""]
    with open(md, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    cmds = {"record": cmd_record, "procsnap": cmd_procsnap, "scrape": cmd_scrape,
            "machine": cmd_machine,
            "goals": cmd_goals, "render": cmd_render}
    if sys.argv[1] not in cmds:
        sys.stderr.write(f"report.py: unknown command {sys.argv[1]!r} (expected one of: "
                         f"{', '.join(cmds)})\n")
        return 2
    cmds[sys.argv[1]](sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
