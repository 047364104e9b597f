// Tests of hpprouter-client against a real hpp-engine: each test starts the
// engines it needs (HPP_ENGINE, default build/hpp-engine of the repository)
// on an ephemeral loopback port, waits for its readiness line and stops it
// by PID. Run with `node --test test/` once `npm install` has fetched the
// dependencies.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { decode, encode } from "@msgpack/msgpack";

import {
  Client,
  EngineError,
  HppError,
  TimeoutError,
  decodeReply,
  encodeRequest,
  readKey,
} from "../index.js";

const ROOT = process.env.HPP_ROOT || resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const ENGINE = process.env.HPP_ENGINE || join(ROOT, "build", "hpp-engine");

/** A real engine on 127.0.0.1:0, resolved once it printed its readiness line. */
function startEngine(...args) {
  const proc = spawn(ENGINE, ["--listen", "tcp://127.0.0.1:0", "--threads", "1", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`hpp-engine not ready in 10 s: ${log.slice(-400)}`));
    }, 10000);
    proc.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /^hpp-engine: ready on (tcp:\S+)$/m.exec(log);
      if (m && timer) {
        clearTimeout(timer);
        resolveReady({ endpoint: m[1], stop: () => stopEngine(proc) });
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`hpp-engine exited ${code}: ${log.slice(-400)}`));
    });
  });
}

function stopEngine(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    proc.once("exit", done);
    proc.kill("SIGTERM");
  });
}

/** An endpoint nothing listens on (a port the kernel just gave and took back). */
function freeEndpoint() {
  return new Promise((done) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => done(`tcp://127.0.0.1:${port}`));
    });
  });
}

/** Runs fn(client, engine) with one engine and one client, then stops both. */
async function withEngine(fn, options = {}) {
  const engine = await startEngine();
  const c = new Client(engine.endpoint, { timeoutMs: 5000, ...options });
  try {
    await fn(c, engine);
  } finally {
    c.close();
    await engine.stop();
  }
}

test("integers past 2^53 stay exact both ways", () => {
  const big = (5n << 56n) + 12345n; /* a node id in the top bits, as with a ledger */
  const frame = encode({ v: 1, ok: true, decision_id: big, n: 7 }, { useBigInt64: true });
  const reply = decodeReply(frame);
  assert.equal(reply.decision_id, big);
  assert.equal(reply.n, 7); /* small integers stay Numbers */
  const attempt = { decision: reply.decision_id, model: "m", provider: "p", status: 200 };
  const sent = decode(encodeRequest("report", { attempts: [attempt] }, 1), { useBigInt64: true });
  assert.equal(sent.attempts[0].decision, big);
});

test("route answers a decision", () =>
  withEngine(async (c) => {
    const d = await c.route({ prompt_tokens: 1200, hints: ["code"], budget_usd: 0.05 });
    assert.equal(d.ok, true);
    assert.equal(d.rule, "code");
    for (const k of ["model", "provider", "provider_model", "tier"]) {
      assert.ok(typeof d[k] === "string" && d[k].length > 0, k);
    }
    assert.ok(d.cost_usd <= 0.05);
    const p = d.cost_pusd;
    assert.equal(p.total, p.input + p.output + p.cache + p.fees);
    assert.ok(Array.isArray(d.fallbacks));
  }));

test("explain, models, ping and stats", () =>
  withEngine(async (c) => {
    const e = await c.explain({ prompt_tokens: 50, model: "google/gemma-2-9b-it:free" });
    assert.equal(e.trace.candidates[0].reason, "chosen");
    const models = await c.models();
    assert.ok(models.length > 0 && models.every((m) => typeof m.id === "string"));
    const ping = await c.ping();
    assert.match(ping.policy_hash, /^[0-9a-f]{64}$/);
    assert.ok(ping.policy_version >= 1);
    const before = (await c.stats()).requests.route;
    await c.route({ prompt_tokens: 5 });
    assert.equal((await c.stats()).requests.route, before + 1);
  }));

test("reports reach the engine; bad ones are refused with their location", () =>
  withEngine(async (c) => {
    const d = await c.route({ prompt_tokens: 1200, hints: ["code"] });
    const before = (await c.stats()).reports;
    const att = { decision: d.decision_id, model: d.model, provider: d.provider, status: 200,
      latency_ms: 812.5, ttft_ms: 140, prompt_tokens: 1200, completion_tokens: 300 };
    assert.equal(await c.report([att, { ...att, status: null, error: "timeout" }], { ack: true }), 2);
    const after = (await c.stats()).reports;
    assert.equal(after.received, before.received + 1);
    assert.equal(after.attempts, before.attempts + 2);
    const t = (await c.explain({ prompt_tokens: 1200, hints: ["code"] })).trace;
    const seen = t.candidates.filter((x) => x.model === d.model && x.provider === d.provider && x.health);
    assert.ok(seen.length > 0 && seen[0].health.attempts >= 2, "health figures for the endpoint");
    await assert.rejects(c.report([{ model: "m", provider: "p" }]), /exactly one of status and error/);
    await assert.rejects(c.report([]), /an array of 1 to 64/);
    const bad = [{ model: "openai/gpt-4o", provider: "nowhere", status: 500 }];
    await assert.rejects(
      c.report(bad, { ack: true }),
      (e) => e instanceof EngineError && /attempts\[0\]\.provider/.test(e.message),
    );
    const unmatched = c.counters().unmatched;
    assert.equal(await c.report(bad), undefined);
    await c.ping(); // the refusal was answered before this ping's reply
    assert.equal(c.counters().unmatched, unmatched + 1);
  }));

test("an engine error rejects with its code", () =>
  withEngine(async (c) => {
    await assert.rejects(c.route({ prompt_tokens: 10, model: "acme/nope" }), (e) => {
      assert.ok(e instanceof EngineError);
      assert.equal(e.code, "unknown_model");
      assert.equal(e.reply.ok, false);
      return true;
    });
    await assert.rejects(
      c.route({ prompt_tokens: 100000001 }),
      (e) => e instanceof EngineError && e.code === "bad_request",
    );
  }));

test("bad features are refused before sending", () =>
  withEngine(async (c) => {
    for (const f of [
      { prompt_tokens: "1200" },
      { prompt_tokens: 1.5 },
      { prompt_tokens: 1, colour: "red" },
      { hints: ["code"] },
    ]) {
      await assert.rejects(c.route(f), TypeError, JSON.stringify(f));
    }
    await assert.rejects(c.request("nope"), TypeError);
    assert.equal((await c.stats()).requests.route, 0);
  }));

test("many requests in flight are matched by id", () =>
  withEngine(async (c) => {
    const calls = Array.from({ length: 50 }, (_, i) =>
      c.route({ prompt_tokens: 100 + i, output_tokens: 10 + i }),
    );
    const replies = await Promise.all(calls);
    replies.forEach((d, i) => assert.equal(d.output_tokens, 10 + i));
    assert.equal(new Set(replies.map((d) => d.id)).size, 50);
    const p = await c.ping({ id: "ping-a7" });
    assert.equal(p.id, "ping-a7");
    assert.deepEqual(c.counters(), { resent: 0, duplicates: 0, unmatched: 0 });
  }));

test("no engine: a timeout, after resending", async () => {
  const c = new Client(await freeEndpoint(), { timeoutMs: 300, resendMs: 50 });
  try {
    await assert.rejects(c.ping(), TimeoutError);
    assert.ok(c.counters().resent >= 1);
  } finally {
    c.close();
  }
});

test("bad options and a closed client", async () => {
  assert.throws(() => new Client([]), TypeError);
  assert.throws(() => new Client(Array(9).fill("tcp://127.0.0.1:1")), TypeError);
  assert.throws(() => new Client("tcp://127.0.0.1:1", { curveServerKey: "x" }), TypeError);
  assert.throws(() => new Client("nonsense://x"), TypeError);
  const c = new Client("tcp://127.0.0.1:1");
  c.close();
  await assert.rejects(c.ping(), HppError);
});

test("several engines: all take requests, and one dying loses none", async () => {
  const engines = [await startEngine(), await startEngine()];
  const c = new Client(
    engines.map((e) => e.endpoint),
    { timeoutMs: 5000 },
  );
  try {
    for (let i = 0; i < 10; i++) await c.route({ prompt_tokens: 10 });
    let sum = 0;
    for (const e of engines) {
      const one = new Client(e.endpoint, { timeoutMs: 5000 });
      sum += (await one.stats()).requests.route;
      one.close();
    }
    assert.ok(sum >= 10);
    await engines[0].stop();
    for (let i = 0; i < 5; i++) assert.equal((await c.route({ prompt_tokens: 10 })).ok, true);
  } finally {
    c.close();
    for (const e of engines) await e.stop();
  }
});

test("CURVE: an allowed key is answered, a stranger is not, a readable secret is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hpp-nodecurve-"));
  const keys = join(dir, "keys");
  const key = (name, ext) => join(keys, `${name}.${ext}`);
  try {
    for (const name of ["engine", "gateway", "stranger"]) {
      const r = spawnSync(ENGINE, ["--curve-keygen", keys, "--curve-name", name]);
      assert.equal(r.status, 0, String(r.stderr));
    }
    const clients = join(dir, "clients");
    writeFileSync(clients, `${readKey(key("gateway", "pub"))} admin gateway\n`, { mode: 0o600 });
    const engine = await startEngine(
      "--curve-secret",
      key("engine", "sec"),
      "--curve-clients",
      clients,
    );
    const curve = (name, timeoutMs) =>
      new Client(engine.endpoint, {
        timeoutMs,
        curveServerKey: key("engine", "pub"),
        curveSecretKey: key(name, "sec"),
      });
    const gw = curve("gateway", 5000);
    const stranger = curve("stranger", 300);
    try {
      assert.equal((await gw.route({ prompt_tokens: 10 })).ok, true);
      assert.ok("requests" in (await gw.stats()));
      await assert.rejects(stranger.ping(), TimeoutError);
    } finally {
      gw.close();
      stranger.close();
      await engine.stop();
    }
    chmodSync(key("gateway", "sec"), 0o640);
    assert.throws(() => curve("gateway", 300), /must not be readable by others/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
