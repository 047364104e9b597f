#!/usr/bin/env python3
"""loop_share.py - the closed loop over time: traffic share per endpoint.

Starts hpp-engine (127.0.0.1, an ephemeral port) with the bundled policy
and catalog plus short health settings, then plays a gateway for --seconds:
it asks for decisions for one model (openai/gpt-4o by default), "calls" the
chosen endpoint of a simulated upstream, tries the fallbacks in order when a
call fails, and reports every attempt to the engine in batches, without
waiting (the report op, fire and forget). The simulated upstream answers
every endpoint normally except one (--failing, default openai), which
answers 429 from --fail-from to --fail-to seconds.

Per --bucket-ms interval it counts which endpoint the engine chose first
and which one served the call, and writes DIR/loop_share.csv and, when
gnuplot is installed, DIR/loop_share.png (share of first choices per
endpoint over time). Prints one JSON object: decisions, attempts, reports
sent, the share of first choices inside and outside the outage, and when
the failing endpoint was first avoided and first chosen again.

    python3 bench/loop_share.py --engine-bin build/hpp-engine --out DIR
"""
import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

SETTINGS = "settings { cooldown_fails %d  cooldown %g  cooldown_max %g  health_window 10 }\n"


def start_engine(binary, policy, workdir):
    log = open(os.path.join(workdir, "engine.log"), "w+")
    proc = subprocess.Popen([binary, "--listen", "tcp://127.0.0.1:0", "--threads", "1",
                             "--policy", policy], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log.seek(0)
        m = re.search(r"hpp-engine: ready on (tcp://127\.0\.0\.1:\d+)", log.read())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    log.seek(0)
    sys.exit("loop_share: the engine did not start:\n" + log.read())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine-bin", default="build/hpp-engine")
    p.add_argument("--policy", default="policies/default.policy")
    p.add_argument("--model", default="openai/gpt-4o")
    p.add_argument("--failing", default="openai")
    p.add_argument("--seconds", type=float, default=16)
    p.add_argument("--fail-from", type=float, default=3)
    p.add_argument("--fail-to", type=float, default=7)
    p.add_argument("--rate", type=float, default=1000, help="decisions per second (bounded)")
    p.add_argument("--batch", type=int, default=16, help="attempts per report frame")
    p.add_argument("--bucket-ms", type=int, default=250)
    p.add_argument("--cooldown", type=float, default=1.0)
    p.add_argument("--fails", type=int, default=3)
    p.add_argument("--out", default=".")
    a = p.parse_args()
    if not (0 < a.seconds <= 120 and 0 < a.rate <= 20000):
        sys.exit("loop_share: --seconds 0..120 and --rate 0..20000")

    work = tempfile.mkdtemp(prefix="loop_share.")
    policy = os.path.join(work, "loop.policy")
    with open(a.policy) as f, open(policy, "w") as out:
        out.write(f.read() + "\n" + SETTINGS % (a.fails, a.cooldown, 4 * a.cooldown))
    proc, endpoint = start_engine(a.engine_bin, policy, work)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)

    first = collections.defaultdict(collections.Counter)   # bucket -> provider -> n
    served = collections.defaultdict(collections.Counter)
    pending, sent_reports, attempts, decisions = [], 0, 0, 0
    avoided_at = back_at = None
    t0 = time.monotonic()
    req_id = 0
    try:
        while True:
            now = time.monotonic() - t0
            if now >= a.seconds:
                break
            req_id += 1
            sock.send(msgpack.packb({"v": 1, "id": req_id, "op": "route", "model": a.model,
                                     "prompt_tokens": 800}))
            while True:  # refusals of reports may arrive first: skip them
                rep = msgpack.unpackb(sock.recv())
                if rep.get("id") == req_id:
                    break
            decisions += 1
            bucket = int(now * 1000) // a.bucket_ms
            chain = [rep["provider"]] + [fb["provider"] for fb in rep.get("fallbacks", [])
                                         if fb["model"] == a.model]
            first[bucket][chain[0]] += 1
            outage = a.fail_from <= now < a.fail_to
            if outage and chain[0] != a.failing and avoided_at is None:
                avoided_at = now
            if not outage and now >= a.fail_to and chain[0] == a.failing and back_at is None:
                back_at = now
            for prov in chain:
                ok = not (outage and prov == a.failing)
                att = {"model": a.model, "provider": prov, "status": 200 if ok else 429,
                       "latency_ms": 300.0 if ok else 20.0}
                if prov == chain[0]:
                    att["decision"] = rep["decision_id"]
                pending.append(att)
                attempts += 1
                if ok:
                    served[bucket][prov] += 1
                    break
            if len(pending) >= a.batch:
                sock.send(msgpack.packb({"v": 1, "op": "report", "attempts": pending}))
                sent_reports += 1
                pending = []
            # Bounded rate: the schedule, not the engine's speed, sets the pace.
            lag = decisions / a.rate - (time.monotonic() - t0)
            if lag > 0:
                time.sleep(lag)
    finally:
        sock.close(0)
        ctx.term()
        proc.terminate()
        proc.wait(timeout=5)

    os.makedirs(a.out, exist_ok=True)
    provs = sorted({p for c in first.values() for p in c} | {p for c in served.values() for p in c})
    csv = os.path.join(a.out, "loop_share.csv")
    with open(csv, "w") as f:
        f.write("t_s," + ",".join("first_" + p for p in provs) + "," +
                ",".join("served_" + p for p in provs) + "\n")
        for b in sorted(first):
            tot = sum(first[b].values()) or 1
            f.write("%.3f," % (b * a.bucket_ms / 1000.0) +
                    ",".join("%.4f" % (first[b][p] / tot) for p in provs) + "," +
                    ",".join("%.4f" % (served[b][p] / tot) for p in provs) + "\n")
    png = None
    if shutil.which("gnuplot"):
        png = os.path.join(a.out, "loop_share.png")
        plots = ", ".join("'%s' using 1:%d with steps lw 2 title '%s'" % (csv, i + 2, p)
                          for i, p in enumerate(provs))
        script = "\n".join([
            "set terminal pngcairo size 900,480 font 'sans,10'",
            "set output '%s'" % png,
            "set datafile separator ','",
            "set title 'first choice per endpoint of %s (%s answers 429 from %gs to %gs)'"
            % (a.model, a.failing, a.fail_from, a.fail_to),
            "set xlabel 'seconds'", "set ylabel 'share of decisions'",
            "set yrange [0:1.05]", "set key outside right",
            "set object 1 rect from %g,0 to %g,1.05 fc rgb '#eeeeee' behind"
            % (a.fail_from, a.fail_to),
            "plot " + plots, ""])
        subprocess.run(["gnuplot"], input=script.encode(), check=True)

    def share(lo, hi):
        c = collections.Counter()
        for b, cnt in first.items():
            t = b * a.bucket_ms / 1000.0
            if lo <= t and t + a.bucket_ms / 1000.0 <= hi:
                c.update(cnt)
        tot = sum(c.values()) or 1
        return {p: round(c[p] / tot, 4) for p in provs}

    print(json.dumps({
        "scenario": "loop_share", "model": a.model, "failing": a.failing,
        "decisions": decisions, "attempts": attempts, "reports": sent_reports,
        "share_before": share(0, a.fail_from),
        "share_outage": share(a.fail_from + 0.5, a.fail_to),
        "share_after_back": share(back_at + a.bucket_ms / 1000.0, a.seconds) if back_at else None,
        "first_avoided_s": None if avoided_at is None else round(avoided_at - a.fail_from, 3),
        "chosen_again_s": None if back_at is None else round(back_at - a.fail_to, 3),
        "csv": csv, "png": png}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
