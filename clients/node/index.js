// hpprouter-client: the Node.js client of hpp-engine, the hpprouter routing
// decision service. One ZeroMQ DEALER (npm `zeromq` 6) connected to 1 to 8
// engines, MessagePack requests and replies (`@msgpack/msgpack`) as
// proto/PROTOCOL.md defines them.
//
//   import { Client } from "hpprouter-client";
//   const c = new Client("tcp://127.0.0.1:5555", { timeoutMs: 200 });
//   const d = await c.route({ prompt_tokens: 1200, hints: ["code"] });
//   console.log(d.model, d.provider, d.cost_usd);
//   c.close();
//
// Every call returns a promise, and any number may be in flight at once:
// each request has its own id and one receive loop hands each reply to the
// call that waits for it. With several engines a request goes to the next
// connected one (ZMQ_IMMEDIATE); an unanswered request is sent again, same
// id, after resendMs, then 2x, 4x ... (at most 2 s apart), to the next
// engine, within its timeout: the first reply wins and a late twin is
// dropped (counted: counters().duplicates). A reload is never sent twice.
// An ok=false reply rejects with EngineError (code, message, reply), no
// reply in time with TimeoutError, a frame that is not protocol is dropped.

import { createPrivateKey, createPublicKey } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";

import { decode, encode } from "@msgpack/msgpack";
import { Dealer, capability } from "zeromq";

export const PROTOCOL_VERSION = 1;
export const OPS = ["route", "explain", "models", "stats", "reload", "ping", "report"];
export const MAX_ENDPOINTS = 8;
const RESEND_MAX_MS = 2000;
const FORGET = 256; // ids of resent requests remembered, to drop their late twins
const KEY_LEN = 40; // Z85 characters of a CURVE key

// Feature keys (PROTOCOL.md "Features") and the JavaScript types they take.
const FEATURES = {
  model: "string",
  prompt_tokens: "integer",
  output_tokens: "integer",
  cache_read_tokens: "integer",
  cache_write_tokens: "integer",
  reasoning_tokens: "integer",
  images: "integer",
  vision: "boolean",
  tools: "boolean",
  json: "boolean",
  hints: "array",
  budget_usd: "number",
  group: "string",
  text: "string",
  meta: "object",
  providers_order: "array",
  providers_only: "array",
  providers_ignore: "array",
  allow_fallbacks: "boolean",
  providers_sort: "string",
  max_price: "object",
  models: "array",
  preferred_max_latency: "number",
  preferred_min_throughput: "number",
  attempts: "array", // report
  ack: "boolean", // report
};

/** Keys of a report's attempt (PROTOCOL.md "Reports") and their types. */
const ATTEMPT = {
  decision: "integer",
  model: "string",
  provider: "string",
  status: "integer",
  error: "string",
  latency_ms: "number",
  ttft_ms: "number",
  tokens_per_s: "number",
  prompt_tokens: "integer",
  completion_tokens: "integer",
  cached_tokens: "integer",
  reasoning_tokens: "integer",
  cost_usd: "number",
};
const ATTEMPT_ERRORS = ["timeout", "connect", "tls", "reset", "protocol", "canceled"];
export const MAX_ATTEMPTS = 64;

/** Throws TypeError naming attempts[i].KEY when `a` breaks PROTOCOL.md's rules. */
export function checkAttempt(i, a) {
  if (!IS.object(a)) throw new TypeError(`attempts[${i}]: expected an object`);
  for (const [key, value] of Object.entries(a)) {
    const want = ATTEMPT[key];
    if (!want) throw new TypeError(`attempts[${i}]: unknown key '${key}'`);
    if (value !== undefined && value !== null && !IS[want](value)) {
      throw new TypeError(`attempts[${i}].${key}: expected ${want}, got ${typeof value}`);
    }
  }
  for (const key of ["model", "provider"]) {
    if (!a[key]) throw new TypeError(`attempts[${i}].${key}: required`);
  }
  if ((a.status ?? null) === null === ((a.error ?? null) === null)) {
    throw new TypeError(`attempts[${i}]: exactly one of status and error`);
  }
  if (a.error != null && !ATTEMPT_ERRORS.includes(a.error)) {
    throw new TypeError(`attempts[${i}].error: one of ${ATTEMPT_ERRORS.join(", ")}`);
  }
  if (a.status != null && (a.status < 100 || a.status > 599)) {
    throw new TypeError(`attempts[${i}].status: 100 .. 599`);
  }
}

const IS = {
  string: (v) => typeof v === "string",
  integer: (v) => Number.isInteger(v) || (typeof v === "bigint" && v >= 0n && v < 2n ** 64n),
  number: (v) => typeof v === "number" && Number.isFinite(v),
  boolean: (v) => typeof v === "boolean",
  array: (v) => Array.isArray(v),
  object: (v) => v !== null && typeof v === "object" && !Array.isArray(v),
};

/** Every error of this package. */
export class HppError extends Error {}

/** The engine answered ok=false: .code ("unknown_model" ...), .message, .reply. */
export class EngineError extends HppError {
  constructor(reply) {
    const err = reply.error || {};
    super(`${err.code}: ${err.message}`);
    this.code = err.code;
    this.engineMessage = err.message;
    this.reply = reply;
  }
}

/** No reply (or no room to send) in time. */
export class TimeoutError extends HppError {}

/** A reply that does not follow PROTOCOL.md. */
export class ProtocolError extends HppError {}

/** The request frame: v first, id, op, then the features (checked). */
export function encodeRequest(op, features = {}, id = undefined) {
  if (!OPS.includes(op)) {
    throw new TypeError(`unknown op '${op}' (expected one of ${OPS.join(", ")})`);
  }
  const body = { v: PROTOCOL_VERSION };
  if (id !== undefined && id !== null) {
    if (!(typeof id === "string" || (Number.isInteger(id) && id >= 0))) {
      throw new TypeError("id: a non-negative integer or a string");
    }
    body.id = id;
  }
  body.op = op;
  for (const [key, value] of Object.entries(features || {})) {
    if (value === undefined || value === null) continue;
    const want = FEATURES[key];
    if (!want) throw new TypeError(`unknown feature '${key}'`);
    if (!IS[want](value)) throw new TypeError(`${key}: expected ${want}, got ${typeof value}`);
    body[key] = value;
  }
  if ((op === "route" || op === "explain") && body.prompt_tokens === undefined) {
    throw new TypeError(`prompt_tokens is required for ${op}`);
  }
  return encode(body, { useBigInt64: true });
}

/* Integers past 2^53 (a decision id of an engine with a ledger carries its
 * node id in the top bits) would be rounded as Numbers: they are decoded as
 * BigInt, and every one a Number holds exactly is given back as a Number, so
 * small counts keep their usual type. */
function s_exactInts(v) {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v;
  }
  if (Array.isArray(v)) return v.map(s_exactInts);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    for (const k of Object.keys(v)) v[k] = s_exactInts(v[k]);
  }
  return v;
}

/** One reply frame as an object, checked: v, a boolean ok, error.code when not ok. */
export function decodeReply(frame) {
  let reply;
  try {
    reply = s_exactInts(decode(frame, { useBigInt64: true }));
  } catch (e) {
    throw new ProtocolError(`reply is not msgpack: ${e.message}`);
  }
  if (!IS.object(reply)) throw new ProtocolError("reply is not a map");
  if (reply.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(`reply speaks protocol version ${reply.v}`);
  }
  if (typeof reply.ok !== "boolean") throw new ProtocolError("reply has no boolean 'ok'");
  if (!reply.ok && !(IS.object(reply.error) && typeof reply.error.code === "string")) {
    throw new ProtocolError("ok=false without error.code");
  }
  return reply;
}

// Z85 (ZeroMQ RFC 32) ---------------------------------------------------------

const Z85 =
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

function z85Decode(s) {
  const out = Buffer.alloc((s.length / 5) * 4);
  for (let i = 0, o = 0; i < s.length; i += 5, o += 4) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 85 + Z85.indexOf(s[i + j]);
    out.writeUInt32BE(v >>> 0, o);
  }
  return out;
}

function z85Encode(buf) {
  let s = "";
  for (let i = 0; i < buf.length; i += 4) {
    let v = buf.readUInt32BE(i);
    let chunk = "";
    for (let j = 0; j < 5; j++) {
      chunk = Z85[v % 85] + chunk;
      v = Math.floor(v / 85);
    }
    s += chunk;
  }
  return s;
}

/** The Z85 public key of a Z85 CURVE secret key (X25519, as zmq_curve_public). */
export function curvePublic(secretZ85) {
  const d = z85Decode(secretZ85).toString("base64url");
  const priv = createPrivateKey({ key: { kty: "OKP", crv: "X25519", d, x: "" }, format: "jwk" });
  const x = createPublicKey(priv).export({ format: "jwk" }).x;
  return z85Encode(Buffer.from(x, "base64url"));
}

/**
 * The key of a key file (hpp-engine --curve-keygen): its first line that is
 * not blank or a '#' comment, first word, 40 Z85 characters. A secret key
 * file that group or others can read is refused; its content is never quoted.
 */
export function readKey(path, secret = false) {
  const fd = openSync(path, "r");
  let text;
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (secret && mode & 0o077) {
      throw new HppError(
        `${path}: a secret key file must not be readable by others ` +
          `(mode ${mode.toString(8).padStart(3, "0")}; chmod 600 it)`,
      );
    }
    text = readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const key = line.split(/\s+/)[0];
    if (key.length !== KEY_LEN || [...key].some((ch) => !Z85.includes(ch))) {
      throw new HppError(`${path}:${i + 1}: expected a ${KEY_LEN}-character Z85 key`);
    }
    return key;
  }
  throw new HppError(`${path}: no key in the file`);
}

const idKey = (id) => `${typeof id === "string" ? "s" : "n"}:${id}`;

/**
 * A client of one or several engines.
 *
 * endpoints: one endpoint string or an array of 1 to 8.
 * options: timeoutMs (1000, each call's default limit), curveServerKey and
 * curveSecretKey (key files: the engines' public key, this client's secret,
 * mode 0600; both or neither), heartbeatMs (500; 0 = off), resendMs (100;
 * 0 = never).
 */
export class Client {
  #sock;
  #pending = new Map(); // idKey -> call
  #forget = new Set(); // idKeys of resent requests, oldest first
  #counters = { resent: 0, duplicates: 0, unmatched: 0 };
  #nextId = 1;
  #sendChain = Promise.resolve();
  #closed = false;

  constructor(endpoints, options = {}) {
    const eps = typeof endpoints === "string" ? [endpoints] : [...(endpoints || [])];
    const {
      timeoutMs = 1000,
      curveServerKey = null,
      curveSecretKey = null,
      heartbeatMs = 500,
      resendMs = 100,
    } = options;
    if (eps.length === 0) throw new TypeError("no endpoint");
    if (eps.length > MAX_ENDPOINTS) {
      throw new TypeError(`${eps.length} endpoints, at most ${MAX_ENDPOINTS}`);
    }
    if (eps.some((e) => typeof e !== "string" || !e)) throw new TypeError("an endpoint is empty");
    if (!curveServerKey !== !curveSecretKey) {
      throw new TypeError(
        "CURVE needs both the engines' public key file and this client's secret key file",
      );
    }
    if (!(heartbeatMs >= 0 && heartbeatMs <= 600000)) {
      throw new TypeError("heartbeatMs: expected 0 (off) to 600000");
    }
    if (!(resendMs >= 0)) throw new TypeError("resendMs: expected 0 (never) or more");
    this.timeoutMs = timeoutMs;
    this.resendMs = resendMs;
    // A send waits for room (an engine to take it) at most one call's time, -1 = forever.
    const sendTimeout = timeoutMs >= 0 ? timeoutMs : -1;
    const opts = { linger: 0, reconnectInterval: 100, sendTimeout };
    if (eps.length > 1) opts.immediate = true;
    if (heartbeatMs > 0) {
      Object.assign(opts, {
        heartbeatInterval: heartbeatMs,
        heartbeatTimeout: 3 * heartbeatMs,
        heartbeatTimeToLive: Math.min(3 * heartbeatMs, 0xffff * 100),
      });
    }
    if (curveServerKey) {
      if (!capability.curve) throw new HppError("this libzmq was built without CURVE");
      const secret = readKey(curveSecretKey, true);
      Object.assign(opts, {
        curveServerKey: readKey(curveServerKey),
        curveSecretKey: secret,
        curvePublicKey: curvePublic(secret),
      });
    }
    this.#sock = new Dealer(opts);
    try {
      for (const e of eps) this.#sock.connect(e);
    } catch (e) {
      this.#sock.close();
      throw new TypeError(`cannot connect: ${e.message}`);
    }
    this.#receiveLoop();
  }

  /** Closes the socket; calls still waiting reject with HppError. Idempotent. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const call of [...this.#pending.values()]) call.finish(new HppError("client closed"));
    this.#sock.close();
  }

  /** What the client did on its own: resent, duplicates, unmatched replies. */
  counters() {
    return { ...this.#counters };
  }

  /** One decision: the reply (model, provider, provider_model, tier, rule, cost_usd, ...). */
  route(features, options) {
    return this.request("route", features, options);
  }

  /** The decision plus its trace. */
  explain(features, options) {
    return this.request("explain", features, options);
  }

  /** The catalog: an array of model objects. */
  async models(options) {
    return (await this.request("models", {}, options)).models;
  }

  /** policy_version, policy_hash and the engine's version. */
  ping(options) {
    return this.request("ping", {}, options);
  }

  /** The engine's counters (an admin key under CURVE). */
  stats(options) {
    return this.request("stats", {}, options);
  }

  /** Recompiles the policy and catalog (an admin key under CURVE); never resent. */
  reload(options) {
    return this.request("reload", {}, options);
  }

  /**
   * Tells the engine how calls to endpoints went (PROTOCOL.md "Reports"):
   * 1 to 64 attempt objects (decision, model, provider, status or error,
   * latency_ms, ttft_ms, tokens_per_s, the four token counts, cost_usd).
   * Sent once, never resent (the engine would count it twice). Without ack
   * it resolves (undefined) once the frame is handed to ZeroMQ: a report
   * the engine refuses is answered anyway, and that reply, which no call
   * waits for, is counted in counters().unmatched. With ack it resolves to
   * the count the engine took, or rejects with EngineError.
   */
  async report(attempts, { ack = false, timeoutMs } = {}) {
    if (!Array.isArray(attempts) || attempts.length < 1 || attempts.length > MAX_ATTEMPTS) {
      throw new TypeError(`attempts: an array of 1 to ${MAX_ATTEMPTS} attempts`);
    }
    attempts.forEach((a, i) => checkAttempt(i, a));
    const clean = attempts.map((a) =>
      Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined && v !== null)),
    );
    if (ack) {
      return (await this.request("report", { attempts: clean, ack: true }, { timeoutMs })).attempts;
    }
    if (this.#closed) throw new HppError("client is closed");
    await this.#send(encodeRequest("report", { attempts: clean }, this.#nextId++));
    return undefined;
  }

  /** Any op: the reply, resending as described at the top of this file. */
  request(op, features = {}, { id, timeoutMs } = {}) {
    if (this.#closed) return Promise.reject(new HppError("client is closed"));
    const reqId = id ?? this.#nextId++;
    let frame;
    try {
      frame = encodeRequest(op, features, reqId);
    } catch (e) {
      return Promise.reject(e);
    }
    const key = idKey(reqId);
    if (this.#pending.has(key)) {
      return Promise.reject(new HppError(`id ${reqId} is already in flight`));
    }
    this.#forget.delete(key);
    const ms = timeoutMs ?? this.timeoutMs;
    return new Promise((resolve, reject) => {
      const call = { sends: 0, timers: [] };
      call.finish = (err, reply) => {
        if (this.#pending.get(key) !== call) return;
        this.#pending.delete(key);
        call.timers.forEach(clearTimeout);
        if (call.sends > 1) this.#remember(key);
        if (err) reject(err);
        else resolve(reply);
      };
      this.#pending.set(key, call);
      const send = () => {
        call.sends++;
        this.#send(frame).catch((e) =>
          call.finish(
            e.code === "EAGAIN"
              ? new TimeoutError("send timed out (no engine connected?)")
              : new HppError(`send: ${e.message}`),
          ),
        );
      };
      if (ms >= 0) {
        call.timers.push(
          setTimeout(
            () =>
              call.finish(
                new TimeoutError(`no reply to ${op} in ${ms} ms (sent ${call.sends} times)`),
              ),
            ms,
          ),
        );
      }
      send();
      let interval = op === "reload" || op === "report" ? 0 : this.resendMs;
      const again = () => {
        if (this.#pending.get(key) !== call) return;
        // No reply yet: the engine that took it may be gone; the next one
        // in turn gets the same bytes, the same id.
        this.#counters.resent++;
        send();
        interval = Math.min(interval * 2, RESEND_MAX_MS);
        call.timers.push(setTimeout(again, interval));
      };
      if (interval > 0) call.timers.push(setTimeout(again, interval));
    });
  }

  // One send at a time (the socket allows no concurrent sends), in call order.
  #send(frame) {
    const sent = this.#sendChain.then(() => this.#sock.send(frame));
    this.#sendChain = sent.catch(() => {});
    return sent;
  }

  #remember(key) {
    this.#forget.add(key);
    if (this.#forget.size > FORGET) this.#forget.delete(this.#forget.values().next().value);
  }

  async #receiveLoop() {
    try {
      for await (const frames of this.#sock) this.#dispatch(frames);
    } catch (e) {
      if (!this.#closed) {
        for (const call of [...this.#pending.values()]) call.finish(new HppError(e.message));
      }
    }
  }

  #dispatch(frames) {
    let parts = frames;
    if (parts.length === 2 && parts[0].length === 0) parts = parts.slice(1); // echoed delimiter
    if (parts.length !== 1) return;
    let reply;
    try {
      reply = decodeReply(parts[0]);
    } catch {
      return; // undecodable: cannot tell whose it is
    }
    const key = idKey(reply.id);
    const call = this.#pending.get(key);
    if (!call) {
      if (this.#forget.has(key)) this.#counters.duplicates++;
      else this.#counters.unmatched++;
      return;
    }
    call.finish(reply.ok ? null : new EngineError(reply), reply);
  }
}
