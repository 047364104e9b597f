#!/usr/bin/env python3
"""body_proxy.py - the body-size and proxy goals of a bench/run.sh run, as a
Markdown section (python3 stdlib only).

  python3 bench/body_proxy.py bench/results/<folder> [--load "TEXT"]

Reads <folder>/sidecar_route.jsonl, sidecar_proxy.jsonl and
sidecar_proxy32.jsonl (scenario 3 of
bench/run.sh: body sizes at 32 connections in BENCH_REPEAT rounds; proxy
mode against the upstream directly and nginx as a reverse proxy, at 1 and
at 32 connections, with nginx's static reply at 32) and prints:
  - a 32 KB body's req/s against the 1 KB body's (goal: at least 50%), and
    what the 1 MiB long-context body costs;
  - what proxy mode adds at p50 over the upstream directly, against what
    nginx as a proxy adds (goal: at most nginx's + 30 us), and proxy mode's
    req/s at 32 connections against nginx as a proxy's (goal: at least 60%);
each the median of the rounds, with the CPU each request cost the sidecar
and the engine, and the exact commands (with BENCH_SIDECAR_BEFORE, the same for the build
before a change, measured in the same rounds). The section is appended to
bench/RESULTS.md by hand (report.py regenerates the rest of that file).
"""
import json
import os
import statistics
import sys


def load(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cost(rec, proc):
    c = (rec.get("cost") or {}).get(proc)
    return c["cpu_us"] if c else None


def fmt(v, unit="", digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}{unit}"


def verdict(ok):
    return "met" if ok else "missed"


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    folder = sys.argv[1].rstrip("/")
    load_note = ""
    if len(sys.argv) == 4 and sys.argv[2] == "--load":
        load_note = sys.argv[3]
    route = load(folder, "sidecar_route.jsonl")
    proxy = load(folder, "sidecar_proxy.jsonl") + load(folder, "sidecar_proxy32.jsonl")
    if any(r.get("idle") == "held" for r in proxy):
        # The runs with the machine's own idle states are a second look, not the goal's.
        proxy = [r for r in proxy if r.get("idle") == "held"]
    cmds = []

    def cite(rec):
        if rec["cmd"] not in cmds:
            cmds.append(rec["cmd"])
        return f"[{cmds.index(rec['cmd']) + 1}]"

    out = []
    rel = os.path.relpath(folder, "bench")
    out.append(f"## Body size and proxy mode ({os.path.basename(folder)})\n")
    out.append(f"Raw numbers: [{rel}]({rel}/) (`sidecar_route.jsonl`, `sidecar_proxy.jsonl`, `sidecar_proxy32.jsonl`), "
               "made by `ONLY=sidecar` of bench/run.sh (scenario 3 alone: the body sizes in "
               "interleaved rounds, proxy mode against the upstream directly and nginx as a "
               "proxy at 1 and 32 connections, nginx's static reply at 32), section written by "
               f"`python3 bench/body_proxy.py {folder}`. Medians of the rounds. *CPU* is user "
               "plus kernel time of all the process's threads per request (`/proc`), wrk's "
               "own not counted." + (f" {load_note}" if load_note else "") + "\n")

    # Body sizes ---------------------------------------------------------
    bodies = []
    for r in route:
        if r["body"] not in bodies:
            bodies.append(r["body"])
    rows, by = [], {}
    for b in bodies:
        rs = [r for r in route if r["body"] == b]
        m = {
            "rps": med([r["rps"] for r in rs]),
            "p50": med([r["latency_us"]["p50"] for r in rs]),
            "p99": med([r["latency_us"]["p99"] for r in rs]),
            "sc": med([cost(r, "sidecar") for r in rs]),
            "eng": med([cost(r, "engine") for r in rs]),
            "bytes": rs[0].get("body_bytes"),
            "runs": ", ".join(fmt(r["rps"]) for r in rs),
            "failed": sum(r.get("failed", 0) for r in rs),
        }
        by[b] = m
        rows.append(f"| {b} | {fmt(m['bytes'])} | {fmt(m['rps'])} ({m['runs']}) | "
                    f"{fmt(m['p50'], ' us')} | {fmt(m['p99'], ' us')} | {fmt(m['sc'], ' us', 1)} | "
                    f"{fmt(m['eng'], ' us', 1)} | {m['failed']} | {cite(rs[0])} |")
    goals = []
    if "1k" in by and "32k" in by:
        ratio = by["32k"]["rps"] / by["1k"]["rps"]
        goals.append(f"| a 32 KB body gets >= 50% of the 1 KB body's req/s (`/v1/route`, 32 "
                     f"connections) | {ratio:.0%} ({fmt(by['32k']['rps'])} vs "
                     f"{fmt(by['1k']['rps'])} req/s) | {verdict(ratio >= 0.5)} |")
    if "1m" in by:
        m = by["1m"]
        mbps = m["rps"] * m["bytes"] / 1e6 if m["bytes"] else None
        goals.append(f"| a 1 MiB body is routed, its cost reported | {fmt(m['rps'])} req/s "
                     f"({fmt(mbps, ' MB/s')} of bodies), p50 {fmt(m['p50'] / 1000, ' ms', 1)}; "
                     f"sidecar {fmt(m['sc'] / 1000, ' ms', 2)} CPU a request "
                     f"({fmt(m['sc'] * 1000 / m['bytes'], ' ns/byte', 1)}), engine "
                     f"{fmt(m['eng'], ' us')} | reported |")

    # Proxy ----------------------------------------------------------------
    def pm(system, conns, key):
        rs = [r for r in proxy if r["system"] == system and r.get("connections") == conns]
        if not rs:
            return None, []
        if key == "p50":
            return med([r["latency_us"]["p50"] for r in rs]), rs
        return med([r["rps"] for r in rs]), rs

    sp, sp_rs = pm("sidecar-proxy", 1, "p50")
    up, up_rs = pm("upstream-direct", 1, "p50")
    ng, ng_rs = pm("nginx-proxy", 1, "p50")
    if sp is not None and up is not None and ng is not None:
        added, ng_added = sp - up, ng - up
        goals.append(f"| proxy mode adds <= nginx-as-proxy's added p50 + 30 us (1 connection) | "
                     f"+{added:.0f} us ({sp:.0f} vs {up:.0f} us direct); nginx as a proxy "
                     f"+{ng_added:.0f} us: limit +{ng_added + 30:.0f} us | "
                     f"{verdict(added <= ng_added + 30)} |")
    s32, s32_rs = pm("sidecar-proxy", 32, "rps")
    n32, n32_rs = pm("nginx-proxy", 32, "rps")
    if s32 and n32:
        goals.append(f"| proxy mode at 32 connections >= 60% of nginx-as-proxy's req/s | "
                     f"{s32 / n32:.0%} ({fmt(s32)} vs {fmt(n32)} req/s) | "
                     f"{verdict(s32 / n32 >= 0.6)} |")

    # --local-engine: the same goals for the proxy that decides in its own process.
    lp, _ = pm("sidecar-proxy-local", 1, "p50")
    if lp is not None and up is not None and ng is not None:
        goals.append(f"| (in process, `--local-engine`, same run) added p50, 1 connection | "
                     f"+{lp - up:.0f} us ({lp:.0f} vs {up:.0f} us direct); limit "
                     f"+{ng - up + 30:.0f} us | {verdict(lp - up <= ng - up + 30)} |")
    l32, _ = pm("sidecar-proxy-local", 32, "rps")
    if l32 and n32:
        goals.append(f"| (in process, `--local-engine`, same run) req/s at 32 connections | "
                     f"{l32 / n32:.0%} ({fmt(l32)} vs {fmt(n32)} req/s) | "
                     f"{verdict(l32 / n32 >= 0.6)} |")

    # BENCH_SIDECAR_BEFORE: the same goals for the build before a change, same rounds.
    bp, _ = pm("sidecar-proxy-before", 1, "p50")
    if bp is not None and up is not None and ng is not None:
        goals.append(f"| (build before, same run) added p50, 1 connection | +{bp - up:.0f} us "
                     f"({bp:.0f} vs {up:.0f} us direct) | {verdict(bp - up <= ng - up + 30)} |")
    b32, _ = pm("sidecar-proxy-before", 32, "rps")
    if b32 and n32:
        goals.append(f"| (build before, same run) req/s at 32 connections | {b32 / n32:.0%} "
                     f"({fmt(b32)} vs {fmt(n32)} req/s) | {verdict(b32 / n32 >= 0.6)} |")

    out.append("| goal | measured | verdict |\n|---|---|---|")
    out.extend(goals)
    out.append("")
    out.append("`/v1/route` at 32 connections, each body in every round (the engine has the "
               "bundled and the full LiteLLM catalog; header `X-HPP-Task: code`); req/s is the "
               "median, the rounds in brackets:\n")
    out.append("| body | bytes | req/s | p50 | p99 | sidecar CPU | engine CPU | failed | cmd |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    out.extend(rows)
    out.append("")
    out.append("Proxy mode (`--upstream` = the stub), the upstream directly, nginx as a reverse "
               "proxy (kept-alive upstream connections, no decision) and, at 32 connections, "
               "nginx's static reply, interleaved in each round:\n")
    out.append("| connections | system | req/s | p50 | p99 | sidecar CPU | engine CPU | "
               "upstream CPU | cmd |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    systems = ["sidecar-proxy", "sidecar-proxy-before", "sidecar-proxy-router", "sidecar-proxy-local",
               "sidecar-proxy-libzmq", "upstream-direct",
               "nginx-proxy", "nginx-static"]
    for conns in (1, 32):
        for s in systems:
            rs = [r for r in proxy if r["system"] == s and r.get("connections") == conns]
            if not rs:
                continue
            out.append(
                f"| {conns} | {s} | {fmt(med([r['rps'] for r in rs]))} | "
                f"{fmt(med([r['latency_us']['p50'] for r in rs]), ' us')} | "
                f"{fmt(med([r['latency_us']['p99'] for r in rs]), ' us')} | "
                f"{fmt(med([cost(r, 'sidecar') for r in rs]), ' us', 1)} | "
                f"{fmt(med([cost(r, 'engine') for r in rs]), ' us', 1)} | "
                f"{fmt(med([cost(r, 'upstream') for r in rs]), ' us', 1)} | {cite(rs[0])} |")
    out.append("")
    out.append("Commands (ports are ephemeral):\n")
    out.append("```")
    out.extend(f"[{i + 1}] {c}" for i, c in enumerate(cmds))
    out.append("```")
    print("\n".join(out))


if __name__ == "__main__":
    main()
