/* test_report.c - the closed loop with the real hpp-engine over ZeroMQ:
 * reports of failures put an endpoint on cooldown (skipped, traced as
 * `cooling_down` with its health figures) and it serves again once the
 * cooldown is over; reports are fire and forget (no reply) unless they ask
 * for an acknowledgement, a bad one is refused with a located error and
 * counted; health survives a reload and reaches the worker threads
 * (--route-workers); measured latency and throughput order endpoints for
 * `providers_sort` and `:nitro`.
 *
 * Cooldowns are short (set in the test's policy) and waited for by polling
 * decisions, never by sleeping a fixed time.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "harness.h"
#include "hpp_client.h"

#define S_READY "hpp-engine: ready on "
#define S_TIMEOUT 5000

typedef struct {
    hh_proc_t proc;
    char endpoint[256];
    char dir[256];
    char policy[320];
} s_engine_t;

/* The bundled policy with the health settings appended to its settings. */
static void s_policy(s_engine_t *e, const char *settings)
{
    cr_assert_eq(test_tmpdir_make(e->dir, sizeof e->dir, "test"), 0);
    snprintf(e->policy, sizeof e->policy, "%s/loop.policy", e->dir);
    char *orig = hh_read_file("policies/default.policy", NULL);
    cr_assert_not_null(orig);
    size_t n = strlen(orig) + strlen(settings) + 32;
    char *text = malloc(n);
    snprintf(text, n, "%s\nsettings { %s }\n", orig, settings);
    cr_assert_eq(hh_write_file(e->policy, text), 0);
    free(text);
    free(orig);
}

static void s_start(s_engine_t *e, const char *settings, bool route_workers)
{
    s_policy(e, settings);
    char *argv[] = {hh_bin("hpp-engine"),
                    "--listen",
                    "tcp://127.0.0.1:0",
                    "--threads",
                    "2",
                    "--policy",
                    e->policy,
                    route_workers ? "--route-workers" : NULL,
                    NULL};
    cr_assert_eq(hh_spawn(&e->proc, argv, "engine"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&e->proc, S_READY, 15000, line, sizeof line), 0,
                 "engine did not become ready (log: %s)", e->proc.log);
    snprintf(e->endpoint, sizeof e->endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
}

static void s_stop(s_engine_t *e)
{
    int rc = hh_stop(&e->proc);
    cr_assert_eq(test_tmpdir_remove(e->dir), 0, "%s", e->dir);
    cr_assert_eq(rc, 0, "engine exited %d (log: %s)", rc, e->proc.log);
}

static hpp_client_t *s_client(const s_engine_t *e)
{
    char err[256];
    hpp_client_t *c = hpp_client_new(e->endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

static hpp_str_t s_s(const char *c)
{
    hpp_str_t s = {c, (uint32_t)strlen(c)};
    return s;
}

static json_t *s_as_json(const void *data, size_t len)
{
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 4096), 0);
    proto_error_t perr;
    cr_assert_eq(proto_to_json(data, len, &b, &perr), PROTO_OK, "%s", perr.msg);
    json_error_t jerr;
    json_t *j = json_loads(b.data, 0, &jerr);
    cr_assert_not_null(j, "%s in %s", jerr.text, b.data);
    proto_buf_destroy(&b);
    return j;
}

/* Routes `model` and returns the chosen provider in buf; *decision gets the
 * decision id. */
static const char *s_route(hpp_client_t *c, const char *model, uint64_t *decision, char *buf,
                           size_t n)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.model = s_s(model);
    f.prompt_tokens = 100;
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(c));
    snprintf(buf, n, "%.*s", (int)rep.r.provider.len, rep.r.provider.ptr);
    if (decision) {
        *decision = rep.r.decision_id;
    }
    hpp_reply_close(&rep);
    return buf;
}

/* The explain reply's candidate of `provider` (a new reference), or NULL. */
static json_t *s_candidate(hpp_client_t *c, const char *model, const char *provider)
{
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_EXPLAIN);
    req.features.model = s_s(model);
    req.features.prompt_tokens = 100;
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_call(c, &req, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(c));
    json_t *j = s_as_json(rep.data, rep.len);
    hpp_reply_close(&rep);
    json_t *cands = json_object_get(json_object_get(j, "trace"), "candidates");
    json_t *found = NULL;
    for (size_t i = 0; i < json_array_size(cands) && !found; i++) {
        json_t *cand = json_array_get(cands, i);
        if (strcmp(json_string_value(json_object_get(cand, "provider")), provider) == 0) {
            found = json_incref(cand);
        }
    }
    json_decref(j);
    return found;
}

static proto_attempt_t s_attempt(const char *model, const char *provider, uint32_t status)
{
    proto_attempt_t a;
    proto_attempt_init(&a);
    a.model = s_s(model);
    a.provider = s_s(provider);
    a.status = status;
    return a;
}

static json_t *s_stats(hpp_client_t *c)
{
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_STATS, &rep, S_TIMEOUT), HPP_OK);
    json_t *j = s_as_json(rep.data, rep.len);
    hpp_reply_close(&rep);
    return j;
}

static long long s_report_stat(hpp_client_t *c, const char *key)
{
    json_t *st = s_stats(c);
    long long v = json_integer_value(json_object_get(json_object_get(st, "reports"), key));
    json_decref(st);
    return v;
}

/* Polls `provider`'s reason in explain until it is (or is not) `reason`,
 * for at most `ms`. */
static bool s_await_reason(hpp_client_t *c, const char *provider, const char *reason, bool is,
                           int ms)
{
    long long end = hh_now_ms() + ms;
    do {
        json_t *cand = s_candidate(c, "openai/gpt-4o", provider);
        bool hit = cand && strcmp(json_string_value(json_object_get(cand, "reason")), reason) == 0;
        json_decref(cand);
        if (hit == is) {
            return true;
        }
        hh_sleep_ms(20);
    } while (hh_now_ms() < end);
    return false;
}

static void s_failing_endpoint_is_avoided_then_used_again(bool route_workers)
{
    s_engine_t e;
    s_start(&e, "cooldown_fails 2  cooldown 1  cooldown_max 4", route_workers);
    hpp_client_t *c = s_client(&e);
    char prov[64];
    uint64_t decision = 0;
    cr_assert_str_eq(s_route(c, "openai/gpt-4o", &decision, prov, sizeof prov), "openai");
    cr_assert_neq(decision, 0, "the decision reply carries an id for reports");

    /* Two 429s from openai, fire and forget: no reply comes. */
    proto_attempt_t a[2] = {s_attempt("openai/gpt-4o", "openai", 429),
                            s_attempt("openai/gpt-4o", "openai", 429)};
    a[0].decision = decision;
    a[0].latency_ms = 35;
    cr_assert_eq(hpp_client_report(c, a, 2, false, NULL, S_TIMEOUT), HPP_OK);
    cr_assert(s_await_reason(c, "openai", "cooling_down", true, 3000),
              "openai is not traced as cooling_down");
    cr_assert_str_neq(s_route(c, "openai/gpt-4o", NULL, prov, sizeof prov), "openai",
                      "a cooling endpoint is avoided");
    json_t *cand = s_candidate(c, "openai/gpt-4o", "openai");
    json_t *h = json_object_get(cand, "health");
    cr_assert_not_null(h, "explain shows the health that decided");
    cr_assert_eq(json_integer_value(json_object_get(h, "attempts")), 2);
    cr_assert_float_eq(json_real_value(json_object_get(h, "error_rate")), 1.0, 1e-6);
    cr_assert_gt(json_real_value(json_object_get(h, "cooldown_s")), 0);
    json_decref(cand);
    cr_assert_eq(s_report_stat(c, "received"), 1);
    cr_assert_eq(s_report_stat(c, "attempts"), 2);

    /* The cooldown ends: openai serves again (polled, about a second). */
    long long end = hh_now_ms() + 10000;
    while (strcmp(s_route(c, "openai/gpt-4o", NULL, prov, sizeof prov), "openai") != 0 &&
           hh_now_ms() < end) {
        hh_sleep_ms(20);
    }
    cr_assert_str_eq(prov, "openai", "openai is used again after its cooldown");
    hpp_client_destroy(&c);
    s_stop(&e);
}

Test(report, failing_endpoint_is_avoided_then_used_again)
{
    s_failing_endpoint_is_avoided_then_used_again(false);
}

Test(report, route_workers_see_the_same_health)
{
    s_failing_endpoint_is_avoided_then_used_again(true);
}

Test(report, bad_reports_are_refused_with_a_located_error)
{
    s_engine_t e;
    s_start(&e, "cooldown_fails 1", false);
    hpp_client_t *c = s_client(&e);
    hpp_reply_t rep = {0};
    /* An endpoint the catalog does not have: the whole frame is refused. */
    proto_attempt_t a[2] = {s_attempt("openai/gpt-4o", "openai", 500),
                            s_attempt("openai/gpt-4o", "nowhere", 500)};
    cr_assert_eq(hpp_client_report(c, a, 2, true, &rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert_eq(rep.r.status, HPP_E_BAD_REQUEST);
    cr_assert(strstr(hpp_client_errstr(c), "attempts[1].provider: model 'openai/gpt-4o' has no "
                                           "endpoint at provider 'nowhere'"),
              "%s", hpp_client_errstr(c));
    hpp_reply_close(&rep);
    a[1] = s_attempt("acme/nope", "openai", 200);
    cr_assert_eq(hpp_client_report(c, a, 2, true, &rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert(strstr(hpp_client_errstr(c), "attempts[1].model: unknown model 'acme/nope'"), "%s",
              hpp_client_errstr(c));
    hpp_reply_close(&rep);
    /* Nothing of them counted: openai (one failure would cool it) serves. */
    char prov[64];
    cr_assert_str_eq(s_route(c, "openai/gpt-4o", NULL, prov, sizeof prov), "openai");

    /* A bad field, without ack: still answered, with the field named. */
    void *ctx = zmq_ctx_new();
    void *raw = zmq_socket(ctx, ZMQ_DEALER);
    cr_assert_eq(zmq_connect(raw, e.endpoint), 0);
    static const unsigned char bad[] = {
        /* {"v":1,"id":5,"op":"report","attempts":[{"model":"openai/gpt-4o",
         *  "provider":"openai","status":"200"}]} */
        0x84, 0xa1, 'v',  0x01, 0xa2, 'i', 'd', 0x05, 0xa2, 'o', 'p',  0xa6, 'r',  'e',  'p', 'o',
        'r',  't',  0xa8, 'a',  't',  't', 'e', 'm',  'p',  't', 's',  0x91, 0x83, 0xa5, 'm', 'o',
        'd',  'e',  'l',  0xad, 'o',  'p', 'e', 'n',  'a',  'i', '/',  'g',  'p',  't',  '-', '4',
        'o',  0xa8, 'p',  'r',  'o',  'v', 'i', 'd',  'e',  'r', 0xa6, 'o',  'p',  'e',  'n', 'a',
        'i',  0xa6, 's',  't',  'a',  't', 'u', 's',  0xa3, '2', '0',  '0'};
    cr_assert_eq(zmq_send(raw, bad, sizeof bad, 0), (int)sizeof bad);
    int timeout = S_TIMEOUT;
    zmq_setsockopt(raw, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char buf[512];
    int n = zmq_recv(raw, buf, sizeof buf, 0);
    cr_assert_gt(n, 0, "a refused report is answered");
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(buf, (size_t)n, &r, &err), PROTO_OK, "%s", err.msg);
    cr_assert(!r.ok);
    cr_assert_eq(r.id.num, 5);
    cr_assert(strncmp(r.message.ptr,
                      "attempts[0].status: expected non-negative integer, got string",
                      r.message.len) == 0,
              "%.*s", (int)r.message.len, r.message.ptr);
    /* A good one without ack: no reply at all (the next reply is the ping's). */
    proto_attempt_t ok = s_attempt("openai/gpt-4o", "openai", 200);
    proto_buf_t b;
    proto_buf_init(&b, 256);
    proto_id_t rid = proto_id_uint(6);
    proto_report_encode(&b, &rid, &ok, 1, false);
    cr_assert_eq(zmq_send(raw, b.data, b.len, 0), (int)b.len);
    proto_request_t ping;
    proto_request_init(&ping, PROTO_OP_PING);
    ping.id = proto_id_uint(7);
    proto_buf_reset(&b);
    proto_request_encode(&b, &ping);
    cr_assert_eq(zmq_send(raw, b.data, b.len, 0), (int)b.len);
    n = zmq_recv(raw, buf, sizeof buf, 0);
    cr_assert_gt(n, 0);
    cr_assert_eq(proto_reply_decode(buf, (size_t)n, &r, &err), PROTO_OK);
    cr_assert_eq(r.id.num, 7, "the report without ack got no reply");
    proto_buf_destroy(&b);
    zmq_close(raw);
    zmq_ctx_term(ctx);

    cr_assert_eq(s_report_stat(c, "refused"), 3);
    cr_assert_eq(s_report_stat(c, "received"), 1);
    hpp_client_destroy(&c);
    s_stop(&e);
}

Test(report, health_survives_a_reload)
{
    s_engine_t e;
    s_start(&e, "cooldown_fails 1  cooldown 60", false);
    hpp_client_t *c = s_client(&e);
    proto_attempt_t a = s_attempt("openai/gpt-4o", "openai", 503);
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_report(c, &a, 1, true, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    cr_assert(rep.r.ok);
    hpp_reply_close(&rep);
    cr_assert(s_await_reason(c, "openai", "cooling_down", true, 3000));
    cr_assert_eq(hpp_client_op(c, PROTO_OP_RELOAD, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    cr_assert_eq(rep.r.policy_version, 2);
    hpp_reply_close(&rep);
    cr_assert(s_await_reason(c, "openai", "cooling_down", true, 100),
              "the cooldown is carried to the new snapshot");
    hpp_client_destroy(&c);
    s_stop(&e);
}

Test(report, measured_speed_orders_endpoints)
{
    s_engine_t e;
    s_start(&e, "cooldown_fails 3", false);
    hpp_client_t *c = s_client(&e);
    /* openai answers slowly at a high rate, azure fast at a low rate. */
    proto_attempt_t a[4] = {
        s_attempt("openai/gpt-4o", "openai", 200), s_attempt("openai/gpt-4o", "openai", 200),
        s_attempt("openai/gpt-4o", "azure", 200), s_attempt("openai/gpt-4o", "azure", 200)};
    for (int i = 0; i < 4; i++) {
        a[i].latency_ms = i < 2 ? 2400 : 300;
        a[i].tokens_per_s = i < 2 ? 150 : 40;
    }
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_report(c, a, 4, true, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    hpp_reply_close(&rep);
    char prov[64];
    cr_assert_str_eq(s_route(c, "openai/gpt-4o", NULL, prov, sizeof prov), "openai",
                     "no sort asked: the price decides");
    hpp_features_t f;
    hpp_features_init(&f);
    f.model = s_s("openai/gpt-4o");
    f.prompt_tokens = 100;
    f.sort = HPP_SORT_LATENCY;
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_OK);
    cr_assert(strncmp(rep.r.provider.ptr, "azure", rep.r.provider.len) == 0, "latency: %.*s",
              (int)rep.r.provider.len, rep.r.provider.ptr);
    hpp_reply_close(&rep);
    f.sort = HPP_SORT_DEFAULT;
    f.max_latency_s = 1; /* openai's 2.4 s misses it: demoted */
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_OK);
    cr_assert(strncmp(rep.r.provider.ptr, "openai", rep.r.provider.len) != 0,
              "preferred_max_latency: %.*s", (int)rep.r.provider.len, rep.r.provider.ptr);
    hpp_reply_close(&rep);
    cr_assert_str_eq(s_route(c, "openai/gpt-4o:nitro", NULL, prov, sizeof prov), "openai",
                     ":nitro: the highest throughput");
    f.max_latency_s = 0;
    f.sort = HPP_SORT_THROUGHPUT;
    f.min_throughput = 200; /* both measured ones miss it: an unmeasured endpoint first */
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_OK);
    cr_assert(strncmp(rep.r.provider.ptr, "openrouter", rep.r.provider.len) == 0, "%.*s",
              (int)rep.r.provider.len, rep.r.provider.ptr);
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    s_stop(&e);
}

/* The Python example (written from PROTOCOL.md) reports, routes with a
 * measured sort, and reads the refusal of a bad report. */
Test(report, python_gateway_example_reports)
{
    s_engine_t e;
    s_start(&e, "cooldown_fails 1", false);
    char reqs[400];
    snprintf(reqs, sizeof reqs, "%s/reports.jsonl", e.dir);
    cr_assert_eq(hh_write_file(
                     reqs, "{\"op\": \"report\", \"attempts\": [{\"model\": \"openai/gpt-4o\", "
                           "\"provider\": \"openai\", \"status\": 500, \"latency_ms\": 20}]}\n"
                           "{\"op\": \"explain\", \"model\": \"openai/gpt-4o\", \"prompt_tokens\": "
                           "10, \"providers_sort\": \"latency\"}\n"
                           "{\"op\": \"report\", \"attempts\": [{\"model\": \"openai/gpt-4o\", "
                           "\"provider\": \"openai\", \"status\": 200, \"ttft_ms\": -5}]}\n"),
                 0);
    /* Debian's interpreter has python3-zmq and python3-msgpack. */
    char *argv[] = {access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3",
                    "proto/examples/gateway.py",
                    "--engine",
                    e.endpoint,
                    "--requests",
                    reqs,
                    NULL};
    char *out = NULL;
    int rc = hh_run(argv, "gateway", 20000, &out);
    cr_assert_eq(rc, 1, "the last report is refused, so exit 1; got %d:\n%s", rc, out);
    cr_assert(strstr(out, "\"ok\": true, \"attempts\": 1"), "the report is acknowledged:\n%s", out);
    cr_assert(strstr(out, "\"reason\": \"cooling_down\""), "explain shows the cooldown:\n%s", out);
    cr_assert(strstr(out, "attempts[0].ttft_ms: expected a number in 0 .. 3.6e+06, got -5"),
              "the refusal names the field:\n%s", out);
    free(out);
    s_stop(&e);
}
