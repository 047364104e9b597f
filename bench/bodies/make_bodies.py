#!/usr/bin/env python3
"""Writes the chat request bodies the benchmarks post (python3 stdlib only).

The bodies are committed; this script documents how they were made and
regenerates them byte for byte (nothing random, no clock):
  small.json   one short user question (~100 B)
  1k.json      system prompt + a three-turn conversation (~1 KB)
  32k.json     a code-review request carrying ~30 KB of C source (32 KiB total)
  image.json   a vision request: text + an image URL + an inline base64 PNG
  1m.json      (not committed: `make_bodies.py --long FILE` writes it, run.sh
               into its raw-tmp/) a long-context request of exactly 1 MiB: about
               250 turns of generated prose and code, with max_tokens and tools
               after the messages, so the features that decide come last
  prompt_1k.txt, prompt_8k.txt  the message texts of 1k.json and of 32k.json
               (cut to 8 KiB, the sidecar's text sample): what hint rules scan,
               for bench_resolve --text
  prompt_16k.txt  the same cut to 16 KiB: how the decision's cost grows past
               the sample size (bench_resolve, bench_scan)
The 32 KB body embeds this repository's own bench/upstream_stub.c (project
code, same license), cut so the body is exactly 32768 bytes.
Run from the repository root: python3 bench/bodies/make_bodies.py
"""
import base64
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def dump(name, body):
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    return len(data)


def png(width, height):
    """A small RGB gradient PNG, built by hand (no imaging library)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(((x * 255) // width, (y * 255) // height, 128))
                           for x in range(width))
        for y in range(height))

    def chunk(kind, payload):
        c = kind + payload
        return struct.pack(">I", len(payload)) + c + struct.pack(">I", zlib.crc32(c))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def small():
    return {"model": "hpprouter/auto",
            "messages": [{"role": "user", "content": "What is the capital of Australia?"}]}


def one_k():
    return {
        "model": "hpprouter/auto",
        "temperature": 0.3,
        "max_tokens": 512,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a logistics "
             "company. Answer in plain English, cite the figures you use, and say when "
             "you are unsure. Prefer short bullet lists over long paragraphs. Never invent "
             "numbers that are not in the conversation; when a figure is missing, ask "
             "for it instead of guessing."},
            {"role": "user", "content": "Our Rotterdam warehouse shipped 1,240 pallets "
             "in March and 1,515 in April. Returns were 3.1% and 2.4%. What changed, "
             "in percent, for shipments and for returns?"},
            {"role": "assistant", "content": "Shipments rose from 1,240 to 1,515 "
             "pallets, up 22.2%. The return rate fell from 3.1% to 2.4%, a drop of 0.7 "
             "percentage points (about 22.6% fewer returns relative to volume)."},
            {"role": "user", "content": "Good. Summarize that in two sentences for a "
             "weekly report to the operations director, and suggest one question she "
             "might ask about the return rate so I can prepare an answer before Monday."},
        ],
    }


def thirty_two_k():
    with open(os.path.join(ROOT, "bench", "upstream_stub.c"), encoding="utf-8") as f:
        source = f.read()
    body = {
        "model": "hpprouter/auto",
        "max_tokens": 2048,
        "messages": [
            {"role": "system", "content": "You are a senior C reviewer. Point out bugs, "
             "undefined behaviour and resource leaks first, style last."},
            {"role": "user", "content": ""},
        ],
    }
    intro = "Please review this file. It is an HTTP server on libevent:\n\n"
    target = 32768
    # Grow the embedded source until the serialized body reaches the target.
    lo, hi = 0, len(source)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        body["messages"][1]["content"] = intro + source[:mid]
        size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        if size <= target:
            lo = mid
        else:
            hi = mid - 1
    text = intro + source[:lo]
    body["messages"][1]["content"] = text
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    body["messages"][1]["content"] = text + " " * (target - size)
    return body


def long_context():
    """About 1 MiB of conversation from a fixed generator (an LCG over a word
    list: the same bytes on every machine, whatever the repository holds),
    with max_tokens and tools after the messages array."""
    words = ("the request routes a model within budget latency tokens cache "
             "provider fallback endpoint stream answer context window prompt "
             "decision engine sidecar upstream retry health price tier rule "
             "catalog policy gateway client server buffer").split()
    state = 12345

    def rnd(n):
        nonlocal state
        state = (state * 1103515245 + 12345) % 2**31
        return state % n

    def prose(n):
        out = []
        while sum(len(w) + 1 for w in out) < n:
            w = words[rnd(len(words))]
            if rnd(9) == 0:
                w = str(rnd(100000))
            out.append(w + ("." if rnd(12) == 0 else ""))
        return " ".join(out)

    def code(n):
        lines = []
        while sum(len(x) + 1 for x in lines) < n:
            a, b = words[rnd(len(words))], words[rnd(len(words))]
            lines.append(f"    if ({a}_{b} > {rnd(4096)}) {{ {a} = s_{b}({a}, {rnd(64)}); }}")
        return "\n".join(lines)

    target = 1 << 20
    messages = [{"role": "system", "content": "You are a careful assistant. " + prose(400)}]
    used, i = 0, 0
    while used < target - 8192:  # turns until the last one and the tail fit
        if i % 2 == 0:
            msg = {"role": "user", "content": prose(2600) + "\n\n" + code(1600)}
        else:
            msg = {"role": "assistant", "content": prose(3600)}
        messages.append(msg)
        used += len(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode()) + 1
        i += 1
    messages.append({"role": "user", "content": "Given all of the above, write the C "
                     "function that picks the cheapest endpoint within budget."})
    body = {
        "model": "hpprouter/auto",
        "messages": messages,
        "max_tokens": 1024,
        "tools": [{"type": "function", "function": {
            "name": "run_tests", "description": "Runs the project's unit tests",
            "parameters": {"type": "object", "properties": {
                "suite": {"type": "string"}}}}}],
    }
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    if size > target:
        raise SystemExit(f"long body is {size} bytes, over {target}")
    messages[-1]["content"] += " " * (target - size)
    return body


def image():
    data_url = "data:image/png;base64," + base64.b64encode(png(24, 24)).decode()
    return {
        "model": "hpprouter/auto",
        "max_tokens": 300,
        "messages": [{
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these two pictures: which one shows a "
                 "damaged parcel, and what kind of damage is it?"},
                {"type": "image_url", "image_url": {
                    "url": "https://images.example.com/parcels/2026-03-14/cam2-0931.jpg",
                    "detail": "low"}},
                {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
            ],
        }],
    }


def prompt_text(body, limit):
    """The messages' text joined by newlines, cut to `limit` bytes on a
    UTF-8 boundary (the sidecar builds its sample the same way)."""
    text = "\n".join(m["content"] for m in body["messages"]
                     if isinstance(m["content"], str)).encode()
    return text[:limit].decode("utf-8", "ignore").encode()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--long":
        data = json.dumps(long_context(), ensure_ascii=False, separators=(",", ":")).encode()
        with open(sys.argv[2], "wb") as f:
            f.write(data)
        print(f"{sys.argv[2]}: {len(data)} bytes")
        return
    for name, make in (("small.json", small), ("1k.json", one_k),
                       ("32k.json", thirty_two_k), ("image.json", image)):
        print(f"{name}: {dump(name, make())} bytes")
    for name, make, limit in (("prompt_1k.txt", one_k, 8192),
                              ("prompt_8k.txt", thirty_two_k, 8192),
                              ("prompt_16k.txt", thirty_two_k, 16384)):
        data = prompt_text(make(), limit)
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
