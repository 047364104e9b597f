#!/usr/bin/env python3
"""scaling_report.py DIR: the markdown section of bench/run.sh scenario 13.

Reads DIR/scaling.jsonl (wrk: hpp-sidecar /v1/route and nginx's static
reply at 32 connections, by sidecar --workers and engine threads, rounds
interleaved) and DIR/scaling_open.jsonl (bench_engine open loop at 20k/s:
the engine and the ZeroMQ echo server, interleaved), and prints the tables
and the verdicts of the goals, each a ratio to a floor of the same run:

  - /v1/route at 32 connections >= 40% of nginx's static reply (full LiteLLM
    catalog), judged at the sidecar's default (one worker per core) and the
    engine's;
  - open loop at 20k/s: the engine's p99 within 1.5x the echo floor's.

Medians of the rounds; every round's figure is listed. A profile_*.txt
perf summary in DIR is cited when a goal is missed.
"""
import json
import os
import statistics
import sys

ROUTE_GOAL = 0.40
OPEN_GOAL = 1.5


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def med(values):
    return statistics.median(values) if values else None


def fmt_int(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_us(v):
    return "-" if v is None else f"{v:,.0f} us"


NAMES = {"engine": "hpp-engine (ROUTER)", "engine-direct": "hpp-engine (direct listener)",
         "echo": "ZeroMQ echo"}


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: scaling_report.py DIR")
    folder = sys.argv[1]
    recs = load_jsonl(os.path.join(folder, "scaling.jsonl"))
    opens = load_jsonl(os.path.join(folder, "scaling_open.jsonl"))
    out = []
    cells = sorted({(r["engine_threads"], r["workers"]) for r in recs})
    rows = []
    ratios = {}
    for et, w in cells:
        sc = [r for r in recs if r["system"] == "sidecar-route" and r["engine_threads"] == et
              and r["workers"] == w]
        ng = [r for r in recs if r["system"] == "nginx-static" and r["engine_threads"] == et
              and r["workers"] == w]
        sc_rps, ng_rps = med([r["rps"] for r in sc]), med([r["rps"] for r in ng])
        ratio = sc_rps / ng_rps if sc_rps and ng_rps else None
        ratios[(et, w)] = ratio
        loads = [r.get("load") for r in sc + ng if r.get("load") is not None]
        rows.append((et, w, sc_rps, ng_rps, ratio, sc, ng, loads))
    out.append("| engine threads | sidecar workers | /v1/route req/s | p99 | nginx static req/s "
               "| ratio | CPU us/request: sidecar + engine / nginx | rounds (sidecar / nginx) "
               "| load average |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for et, w, sc_rps, ng_rps, ratio, sc, ng, loads in rows:
        p99 = med([r["latency_us"]["p99"] for r in sc])
        cpu = "-"
        sc_cpu = med([r["cost"]["sidecar"]["cpu_us"] for r in sc
                      if "sidecar" in r.get("cost", {})])
        en_cpu = med([r["cost"]["engine"]["cpu_us"] for r in sc if "engine" in r.get("cost", {})])
        ng_cpu = med([sum(v["cpu_us"] for v in r["cost"].values()) for r in ng if r.get("cost")])
        if sc_cpu is not None and en_cpu is not None:
            cpu = f"{sc_cpu:.1f} + {en_cpu:.1f} / {'-' if ng_cpu is None else f'{ng_cpu:.1f}'}"
        rounds = ", ".join(fmt_int(r["rps"]) for r in sc) + " / " + ", ".join(
            fmt_int(r["rps"]) for r in ng)
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
        out.append(f"| {et} | {w} | {fmt_int(sc_rps)} | {fmt_us(p99)} | {fmt_int(ng_rps)} | "
                   f"{'-' if ratio is None else f'{ratio:.0%}'} | {cpu} | {rounds} | {load} |")
    out.append("")
    # Scaling: what the second worker adds at each engine setting.
    for et in sorted({c[0] for c in cells}):
        one, two = ratios.get((et, 1)), ratios.get((et, 2))
        r1 = med([r["rps"] for r in recs if r["system"] == "sidecar-route"
                  and r["engine_threads"] == et and r["workers"] == 1])
        r2 = med([r["rps"] for r in recs if r["system"] == "sidecar-route"
                  and r["engine_threads"] == et and r["workers"] == 2])
        if r1 and r2:
            out.append(f"- engine threads {et}: 2 workers give {r2 / r1:.2f}x the req/s of 1 "
                       f"({one:.0%} -> {two:.0%} of nginx).")
    # Goal 1, judged at the default (one worker per core: the largest here).
    if cells:
        best = max(cells, key=lambda c: ratios.get(c) or 0)
        default = (1, max(c[1] for c in cells))
        dr = ratios.get(default)
        verdict = "met" if dr is not None and dr >= ROUTE_GOAL else "not met"
        out.append(f"- Goal: `/v1/route` at 32 connections >= {ROUTE_GOAL:.0%} of nginx's static "
                   f"reply, full LiteLLM catalog: **{verdict}**, {dr:.0%} with the sidecar's "
                   f"default ({default[1]} workers) and the engine at 1 thread (routes inline); "
                   f"best cell {ratios[best]:.0%} (engine threads {best[0]}, {best[1]} workers).")
    out.append("")
    # Open loop.
    if opens:
        out.append("| engine threads | system | p50 | p99 | p99.9 | runs (p99) | failed of sent "
                   "| load average |")
        out.append("|---|---|---|---|---|---|---|---|")
        for et in sorted({r["engine_threads"] for r in opens}):
            for system in ("engine", "engine-direct", "echo"):
                rs = [r for r in opens if r["engine_threads"] == et and r["system"] == system]
                if not rs:
                    continue
                loads = [r["load"] for r in rs if r.get("load") is not None]
                out.append(f"| {et} | {NAMES[system]} | "
                           f"{fmt_us(med([r['p50_us'] for r in rs]))} | "
                           f"{fmt_us(med([r['p99_us'] for r in rs]))} | "
                           f"{fmt_us(med([r['p999_us'] for r in rs]))} | "
                           + ", ".join(fmt_us(r["p99_us"]) for r in rs) + " | "
                           + f"{sum(r.get('failed', 0) for r in rs):,} of "
                           + f"{sum(r.get('sent', 0) for r in rs):,} | "
                           + (f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-") + " |")
        out.append("")
        for et in sorted({r["engine_threads"] for r in opens}):
            f = med([r["p99_us"] for r in opens if r["engine_threads"] == et
                     and r["system"] == "echo"])
            for system in ("engine", "engine-direct"):
                e = med([r["p99_us"] for r in opens if r["engine_threads"] == et
                         and r["system"] == system])
                if e is None or f is None:
                    continue
                verdict = "met" if e <= OPEN_GOAL * f else "not met"
                out.append(f"- Goal: open loop at 20k/s, p99 within {OPEN_GOAL}x the ZeroMQ echo "
                           f"floor of the same run (engine threads {et}, {NAMES[system]}): "
                           f"**{verdict}**, {e:,.0f} us against {f:,.0f} us ({e / f:.2f}x).")
        out.append("")
    profiles = sorted(p for p in os.listdir(folder) if p.startswith("profile_"))
    for p in profiles:
        out.append(f"Profile under the same load: `{os.path.join(folder, p)}`.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
