"""Tests of the hpprouter Python client against a real hpp-engine.

Each test class starts the engine it needs (HPP_BUILD/hpp-engine, default
build/) on an ephemeral loopback port, waits for its readiness line and
stops it by PID. Run from the repository root:

    HPP_BUILD=build /usr/bin/python3 -m unittest discover -s clients/python/tests -v
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

import hpprouter  # noqa: E402
from hpprouter import Client, EngineError, Timeout  # noqa: E402

BUILD = os.path.join(ROOT, os.environ.get("HPP_BUILD", "build"))
ENGINE = os.path.join(BUILD, "hpp-engine")
READY = re.compile(r"^hpp-engine: ready on (tcp:\S+)$", re.M)


class Engine:
    """A real hpp-engine on 127.0.0.1:0; .endpoint once it said it is ready."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="hpp-pyclient-")
        self.log = os.path.join(self.dir, "engine.err")
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [ENGINE, "--listen", "tcp://127.0.0.1:0", "--threads", "1", *args],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.endpoint = self._await_ready()

    def _await_ready(self):
        # The readiness line is the probe: polled (bounded), never a fixed sleep.
        for _ in range(500):
            with open(self.log, "r", errors="replace") as f:
                m = READY.search(f.read())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        with open(self.log, errors="replace") as f:
            raise RuntimeError("hpp-engine did not start: " + f.read()[-500:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port_endpoint():
    """An endpoint nothing listens on (a port the kernel just gave and took back)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "tcp://127.0.0.1:%d" % port


class OneEngine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.engine = Engine()

    @classmethod
    def tearDownClass(cls):
        cls.engine.stop()

    def setUp(self):
        self.c = Client(self.engine.endpoint, timeout_ms=5000)

    def tearDown(self):
        self.c.close()

    def test_route_answers_a_decision(self):
        d = self.c.route(prompt_tokens=1200, hints=["code"], budget_usd=0.05)
        self.assertTrue(d["ok"])
        self.assertEqual(d["rule"], "code")
        for key in ("model", "provider", "provider_model", "tier"):
            self.assertIsInstance(d[key], str)
            self.assertTrue(d[key], key)
        self.assertLessEqual(d["cost_usd"], 0.05)
        parts = d["cost_pusd"]
        self.assertEqual(parts["total"],
                         parts["input"] + parts["output"] + parts["cache"] + parts["fees"])
        self.assertIsInstance(d["fallbacks"], list)

    def test_features_as_a_dict_and_keywords(self):
        d = self.c.route({"model": "openai/gpt-4o:floor", "output_tokens": 400},
                         prompt_tokens=800)
        self.assertEqual((d["model"], d["rule"]), ("openai/gpt-4o", "floor"))
        self.assertEqual(d["output_tokens"], 400)

    def test_explain_has_a_trace(self):
        d = self.c.explain(prompt_tokens=50, model="google/gemma-2-9b-it:free")
        self.assertEqual(d["trace"]["candidates"][0]["reason"], "chosen")

    def test_an_engine_error_raises_with_its_code(self):
        with self.assertRaises(EngineError) as cm:
            self.c.route(prompt_tokens=10, model="acme/nope")
        self.assertEqual(cm.exception.code, "unknown_model")
        self.assertIn("acme/nope", cm.exception.message)
        self.assertFalse(cm.exception.reply["ok"])

    def test_bad_features_are_refused_before_sending(self):
        for feats in ({"prompt_tokens": "1200"}, {"prompt_tokens": True},
                      {"prompt_tokens": 1, "colour": "red"}, {"hints": ["code"]}):
            with self.assertRaises(ValueError, msg=feats):
                self.c.route(feats)
        with self.assertRaises(ValueError):
            self.c.request("nope")

    def test_the_engine_checks_values_too(self):
        with self.assertRaises(EngineError) as cm:
            self.c.route(prompt_tokens=100000001)
        self.assertEqual(cm.exception.code, "bad_request")

    def test_models_ping_stats(self):
        models = self.c.models()
        self.assertTrue(models)
        self.assertTrue(all(isinstance(m["id"], str) for m in models))
        ping = self.c.ping()
        self.assertGreaterEqual(ping["policy_version"], 1)
        self.assertRegex(ping["policy_hash"], r"^[0-9a-f]{64}$")
        self.assertEqual(ping["version"], "0.1.0")
        before = self.c.stats()["requests"]["route"]
        self.c.route(prompt_tokens=5)
        self.assertEqual(self.c.stats()["requests"]["route"], before + 1)

    def test_reports_reach_the_engine(self):
        d = self.c.route(prompt_tokens=1200, hints=["code"])
        before = self.c.stats()["reports"]
        att = {"decision": d["decision_id"], "model": d["model"], "provider": d["provider"],
               "status": 200, "latency_ms": 812.5, "ttft_ms": 140, "prompt_tokens": 1200,
               "completion_tokens": 300}
        self.assertEqual(self.c.report([att, dict(att, status=None, error="timeout")], ack=True), 2)
        after = self.c.stats()["reports"]
        self.assertEqual(after["received"], before["received"] + 1)
        self.assertEqual(after["attempts"], before["attempts"] + 2)
        # The health the engine now holds for that endpoint shows in explain.
        t = self.c.explain(prompt_tokens=1200, hints=["code"])["trace"]
        seen = [c for c in t["candidates"]
                if c["model"] == d["model"] and c["provider"] == d["provider"] and c.get("health")]
        self.assertTrue(seen, "no health figures for the reported endpoint")
        self.assertGreaterEqual(seen[0]["health"]["attempts"], 2)

    def test_a_report_names_the_paid_or_the_free_endpoint(self):
        # At openrouter, google/gemma-2-9b-it has a paid endpoint and its
        # :free variant: a plain id's report is the paid one's, ID:free's the
        # free one's.
        def health(model):
            t = self.c.explain(prompt_tokens=10, model=model)["trace"]
            return {c["provider"] + (":free" if c.get("cost_pusd") == 0 else ""):
                    c.get("health", {}).get("attempts", 0)
                    for c in t["candidates"] if c["provider"] == "openrouter"}
        paid = "google/gemma-2-9b-it"
        before_paid, before_free = health(paid), health(paid + ":free")
        self.c.report([{"model": paid, "provider": "openrouter", "status": 200}], ack=True)
        self.assertEqual(health(paid)["openrouter"], before_paid["openrouter"] + 1)
        self.assertEqual(health(paid + ":free"), before_free)
        self.c.report([{"model": paid + ":free", "provider": "openrouter", "status": 200}] * 2,
                      ack=True)
        self.assertEqual(health(paid + ":free")["openrouter:free"],
                         before_free["openrouter:free"] + 2)
        self.assertEqual(health(paid)["openrouter"], before_paid["openrouter"] + 1)

    def test_bad_reports(self):
        with self.assertRaisesRegex(ValueError, r"attempts\[0\]: exactly one of status and error"):
            self.c.report([{"model": "openai/gpt-4o", "provider": "openai"}])
        with self.assertRaisesRegex(ValueError, r"attempts\[0\]\.status: expected int"):
            self.c.report([{"model": "openai/gpt-4o", "provider": "openai", "status": "200"}])
        with self.assertRaisesRegex(ValueError, "a list of 1 to 64"):
            self.c.report([])
        # The engine refuses an endpoint it does not know, with its location,
        # answering even a report that asked for no answer.
        bad = [{"model": "openai/gpt-4o", "provider": "nowhere", "status": 500}]
        with self.assertRaises(EngineError) as cm:
            self.c.report(bad, ack=True)
        self.assertIn("attempts[0].provider", str(cm.exception))
        self.assertIsNone(self.c.report(bad))
        reply = self.c.receive_any(timeout_ms=5000)
        self.assertFalse(reply["ok"])
        self.assertIn("attempts[0].provider", reply["error"]["message"])

    def test_pipelined_requests_are_matched_by_id(self):
        ids = [self.c.submit("route", {"prompt_tokens": 100 + i, "output_tokens": 10 + i})
               for i in range(20)]
        self.assertEqual(len(set(ids)), 20)
        for i, req_id in reversed(list(enumerate(ids))):
            d = self.c.receive(req_id)
            self.assertEqual(d["id"], req_id)
            self.assertEqual(d["output_tokens"], 10 + i)
        sid = self.c.submit("ping", id="ping-a7")
        self.assertEqual(self.c.receive_any()["id"], sid)
        self.assertEqual(self.c.counters(), {"dropped": 0, "resent": 0, "duplicates": 0})

    def test_a_closed_client_refuses(self):
        self.c.close()
        with self.assertRaises(hpprouter.Error):
            self.c.ping()


class Failures(unittest.TestCase):
    def test_no_engine_times_out_after_resending(self):
        with Client(free_port_endpoint(), timeout_ms=300, resend_ms=50) as c:
            with self.assertRaises(TimeoutError):
                c.ping()
            self.assertGreaterEqual(c.counters()["resent"], 1)

    def test_bad_options(self):
        for kw in ({"endpoints": []}, {"endpoints": ["tcp://127.0.0.1:1"] * 9},
                   {"endpoints": "tcp://127.0.0.1:1", "curve_server_key": "x"},
                   {"endpoints": "nonsense://x"}, {"endpoints": "tcp://127.0.0.1:1",
                                                   "heartbeat_ms": -1}):
            with self.assertRaises(ValueError, msg=kw):
                Client(**kw)


class SeveralEngines(unittest.TestCase):
    def test_requests_reach_every_engine_and_survive_one_dying(self):
        engines = [Engine(), Engine()]
        try:
            with Client([e.endpoint for e in engines], timeout_ms=5000) as c:
                for _ in range(10):
                    c.route(prompt_tokens=10)
                # Each engine answers its own stats: reach them one by one.
                per = []
                for e in engines:
                    with Client(e.endpoint, timeout_ms=5000) as one:
                        per.append(one.stats()["requests"]["route"])
                self.assertGreaterEqual(sum(per), 10)
                engines[0].stop()
                for _ in range(5):
                    self.assertTrue(c.route(prompt_tokens=10)["ok"])
        finally:
            for e in engines:
                e.stop()


class Curve(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hpp-pycurve-")
        keys = os.path.join(self.dir, "keys")
        for name in ("engine", "gateway", "stranger"):
            subprocess.run([ENGINE, "--curve-keygen", keys, "--curve-name", name],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.key = lambda name, ext: os.path.join(keys, "%s.%s" % (name, ext))
        clients = os.path.join(self.dir, "clients")
        with open(clients, "w") as f:
            f.write("%s admin gateway\n" % hpprouter.read_key(self.key("gateway", "pub")).decode())
        os.chmod(clients, 0o600)
        self.engine = Engine("--curve-secret", self.key("engine", "sec"),
                             "--curve-clients", clients)

    def tearDown(self):
        self.engine.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, name, **kw):
        return Client(self.engine.endpoint, curve_server_key=self.key("engine", "pub"),
                      curve_secret_key=self.key(name, "sec"), **kw)

    def test_an_allowed_key_is_answered(self):
        with self.client("gateway", timeout_ms=5000) as c:
            self.assertTrue(c.route(prompt_tokens=10)["ok"])
            self.assertIn("requests", c.stats())

    def test_an_unknown_key_gets_no_answer(self):
        with self.client("stranger", timeout_ms=300) as c:
            with self.assertRaises(Timeout):
                c.ping()

    def test_a_secret_others_can_read_is_refused(self):
        os.chmod(self.key("gateway", "sec"), 0o640)
        with self.assertRaisesRegex(ValueError, "must not be readable by others"):
            self.client("gateway")


if __name__ == "__main__":
    unittest.main()
