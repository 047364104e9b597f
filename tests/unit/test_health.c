/* test_health.c - the endpoint health math: which outcomes are failures,
 * the cooldown after `allowed_fails` in a row, its doubling on a failed
 * probe (capped), recovery on a success, the decayed error rate and
 * averages, the latency percentile, and health carried across catalogs.
 * Time is passed in explicitly: no test sleeps. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_health.h"
#include "eng_policy.h"

static proto_attempt_t s_status(uint32_t status, double latency_ms)
{
    proto_attempt_t a;
    proto_attempt_init(&a);
    a.model = (hpp_str_t){"m/x", 3};
    a.provider = (hpp_str_t){"p", 1};
    a.status = status;
    a.latency_ms = latency_ms;
    return a;
}

static proto_attempt_t s_xerr(proto_xerr_t e)
{
    proto_attempt_t a = s_status(0, -1);
    a.error = e;
    return a;
}

static eng_health_t *s_table(uint32_t fails, int64_t cool, int64_t cool_max)
{
    eng_health_cfg_t cfg;
    eng_health_cfg_defaults(&cfg);
    cfg.allowed_fails = fails;
    cfg.cooldown_ms = cool;
    cfg.cooldown_max_ms = cool_max;
    eng_health_t *h = eng_health_new(4, &cfg);
    cr_assert_not_null(h);
    return h;
}

Test(health, which_outcomes_are_failures)
{
    proto_attempt_t a = s_status(429, 10);
    cr_assert(eng_health_is_failure(&a));
    a = s_status(500, 10);
    cr_assert(eng_health_is_failure(&a));
    a = s_status(503, 10);
    cr_assert(eng_health_is_failure(&a));
    a = s_status(200, 10);
    cr_assert(!eng_health_is_failure(&a));
    a = s_status(400, 10); /* the request's fault, not the endpoint's */
    cr_assert(!eng_health_is_failure(&a));
    a = s_xerr(PROTO_XERR_TIMEOUT);
    cr_assert(eng_health_is_failure(&a));
    a = s_xerr(PROTO_XERR_CONNECT);
    cr_assert(eng_health_is_failure(&a));
    a = s_xerr(PROTO_XERR_CANCELED); /* the client left */
    cr_assert(!eng_health_is_failure(&a));
}

Test(health, cooldown_after_allowed_fails_in_a_row)
{
    eng_health_t *h = s_table(3, 1000, 8000);
    int64_t now = 100000;
    int64_t t;
    cr_assert(!eng_health_cooling_now(h, &t), "nothing cooled yet: no clock read");
    proto_attempt_t fail = s_status(429, 5), ok = s_status(200, 5);
    eng_health_record(h, 1, &fail, now);
    eng_health_record(h, 1, &fail, now);
    eng_health_record(h, 1, &ok, now); /* a success breaks the run */
    eng_health_record(h, 1, &fail, now);
    eng_health_record(h, 1, &fail, now);
    cr_assert(!eng_health_cooling(h, 1, now), "two in a row are allowed");
    eng_health_record(h, 1, &fail, now);
    cr_assert(eng_health_cooling(h, 1, now), "the third in a row starts a cooldown");
    cr_assert(eng_health_cooling(h, 1, now + 999));
    cr_assert(!eng_health_cooling(h, 1, now + 1000), "it ends after `cooldown`");
    cr_assert(!eng_health_cooling(h, 0, now), "other endpoints are not touched");
    proto_health_t f;
    cr_assert(eng_health_get(h, 1, now + 250, &f));
    cr_assert_float_eq(f.cooldown_s, 0.75, 1e-9);
    cr_assert_eq(f.attempts, 6);
    eng_health_destroy(&h);
}

Test(health, failed_probe_doubles_the_cooldown_up_to_the_cap)
{
    eng_health_t *h = s_table(2, 1000, 3000);
    proto_attempt_t fail = s_xerr(PROTO_XERR_TIMEOUT);
    int64_t now = 50000;
    eng_health_record(h, 2, &fail, now);
    eng_health_record(h, 2, &fail, now);
    cr_assert(eng_health_cooling(h, 2, now + 999));
    now += 1000; /* over: the next call is a probe */
    cr_assert(!eng_health_cooling(h, 2, now));
    eng_health_record(h, 2, &fail, now);
    cr_assert(eng_health_cooling(h, 2, now + 1999), "one failed probe: twice as long");
    cr_assert(!eng_health_cooling(h, 2, now + 2000));
    now += 2000;
    eng_health_record(h, 2, &fail, now);
    cr_assert(eng_health_cooling(h, 2, now + 2999), "4 s, capped at cooldown_max 3 s");
    cr_assert(!eng_health_cooling(h, 2, now + 3000));
    eng_health_destroy(&h);
}

Test(health, a_success_recovers)
{
    eng_health_t *h = s_table(2, 1000, 60000);
    proto_attempt_t fail = s_status(502, 5), ok = s_status(200, 5);
    int64_t now = 1000;
    eng_health_record(h, 0, &fail, now);
    eng_health_record(h, 0, &fail, now);
    now += 1000;
    eng_health_record(h, 0, &ok, now); /* the probe answers */
    eng_health_record(h, 0, &fail, now);
    cr_assert(!eng_health_cooling(h, 0, now), "backoff cleared: one failure is allowed again");
    eng_health_record(h, 0, &fail, now);
    cr_assert(eng_health_cooling(h, 0, now + 999));
    cr_assert(!eng_health_cooling(h, 0, now + 1000), "and the first cooldown is the base again");
    eng_health_destroy(&h);
}

Test(health, late_reports_of_one_outage_do_not_extend_it)
{
    eng_health_t *h = s_table(1, 1000, 60000);
    proto_attempt_t fail = s_status(500, 5);
    eng_health_record(h, 0, &fail, 0 + 10);
    for (int i = 0; i < 20; i++) {
        eng_health_record(h, 0, &fail, 500);
    }
    cr_assert(!eng_health_cooling(h, 0, 1010), "calls in flight when it cooled do not count");
    eng_health_destroy(&h);
}

Test(health, error_rate_decays_with_the_window)
{
    eng_health_cfg_t cfg;
    eng_health_cfg_defaults(&cfg);
    cfg.allowed_fails = 1000;
    cfg.window_ms = 10000;
    eng_health_t *h = eng_health_new(1, &cfg);
    proto_attempt_t fail = s_status(500, 5), ok = s_status(200, 5);
    for (int i = 0; i < 10; i++) {
        eng_health_record(h, 0, &fail, 1000);
    }
    proto_health_t f;
    cr_assert(eng_health_get(h, 0, 1000, &f));
    cr_assert_float_eq(f.error_rate, 1.0, 1e-6);
    /* One half-life later the ten failures weigh five: one success makes
     * the rate 5/6. */
    eng_health_record(h, 0, &ok, 11000);
    eng_health_get(h, 0, 11000, &f);
    cr_assert_float_eq(f.error_rate, 5.0 / 6.0, 1e-5);
    /* Ten half-lives of successes: the outage is forgotten. */
    for (int64_t t = 12000; t <= 111000; t += 1000) {
        eng_health_record(h, 0, &ok, t);
    }
    eng_health_get(h, 0, 111000, &f);
    cr_assert_lt(f.error_rate, 0.01);
    eng_health_destroy(&h);
}

Test(health, averages_and_percentile)
{
    eng_health_t *h = s_table(3, 1000, 1000);
    proto_health_t f;
    cr_assert(!eng_health_get(h, 3, 0, &f), "nothing measured");
    cr_assert_lt(eng_health_latency_ms(h, 3), 0);
    cr_assert_lt(eng_health_tps(h, 3), 0);
    for (int i = 0; i < 9; i++) {
        proto_attempt_t a = s_status(200, 100);
        a.ttft_ms = 40;
        a.tokens_per_s = 80;
        eng_health_record(h, 3, &a, 5000);
    }
    proto_attempt_t slow = s_status(200, 1000);
    eng_health_record(h, 3, &slow, 5000);
    proto_attempt_t failed = s_status(500, 30000); /* failures are not timed */
    eng_health_record(h, 3, &failed, 5000);
    cr_assert(eng_health_get(h, 3, 5000, &f));
    cr_assert_float_eq(f.latency_ms, 190, 0.01, "(9 x 100 + 1000) / 10, got %g", f.latency_ms);
    cr_assert_float_eq(f.ttft_ms, 40, 0.01);
    cr_assert_float_eq(f.tokens_per_s, 80, 0.01);
    /* 100 ms lies in the [64, 128) bucket, which holds 90% of the weight. */
    cr_assert_float_eq(f.latency_p90_ms, 128, 0.01, "got %g", f.latency_p90_ms);
    cr_assert_float_eq(eng_health_latency_ms(h, 3), 190, 0.01);
    eng_health_destroy(&h);
}

static eng_catalog_t *s_catalog(const char *json)
{
    eng_catalog_t *c = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load_buffer(c, "t.json", json, strlen(json), ENG_FMT_AUTO, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(c, &err), 0, "%s", err.msg);
    return c;
}

Test(health, carried_to_the_endpoints_a_new_catalog_keeps)
{
    eng_catalog_t *a =
        s_catalog("{\"data\": [{\"id\": \"x/m\", \"pricing\": {\"input\": 1, \"output\": 1},"
                  " \"endpoints\": [{\"provider\": \"p1\", \"native_id\": \"m\"},"
                  " {\"provider\": \"p2\", \"native_id\": \"m\"}]}]}");
    eng_catalog_t *b =
        s_catalog("{\"data\": [{\"id\": \"x/a\", \"pricing\": {\"input\": 1, \"output\": 1},"
                  " \"endpoints\": [{\"provider\": \"p1\", \"native_id\": \"a\"}]},"
                  " {\"id\": \"x/m\", \"pricing\": {\"input\": 1, \"output\": 1},"
                  " \"endpoints\": [{\"provider\": \"p2\", \"native_id\": \"m\"}]}]}");
    size_t na = 0, nb = 0;
    const eng_endpoint_t *ea = eng_catalog_endpoints(a, &na);
    const eng_endpoint_t *eb = eng_catalog_endpoints(b, &nb);
    eng_health_t *ha = s_table(1, 5000, 5000), *hb = s_table(1, 5000, 5000);
    proto_attempt_t fail = s_status(429, 5);
    for (size_t i = 0; i < na; i++) {
        eng_health_record(ha, i, &fail, 100); /* every endpoint of the old one cools */
    }
    eng_health_carry(hb, b, ha, a);
    for (size_t i = 0; i < nb; i++) {
        bool kept = strcmp(eb[i].provider, "p2") == 0; /* x/m at p2 remains; x/a is new */
        cr_assert_eq(ea[0].model, 0);
        cr_assert_eq(eng_health_cooling(hb, i, 200), kept, "%s", eb[i].provider);
    }
    eng_health_destroy(&ha);
    eng_health_destroy(&hb);
    eng_catalog_destroy(&a);
    eng_catalog_destroy(&b);
}

/* The resolver with health: an endpoint on cooldown is skipped (traced
 * cooling_down) and its model served by another endpoint; when every
 * endpoint that fits cools, the request is still answered. */
Test(health, resolver_skips_cooling_endpoints_or_tries_them_last)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t cerr;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &cerr), 0, "%s", cerr.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &cerr), 0);
    eng_diags_t *diags = eng_diags_new();
    eng_policy_t *pol = eng_policy_load("policies/default.policy", cat, diags);
    cr_assert_not_null(pol);
    eng_diags_destroy(&diags);
    size_t neps = 0;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &neps);
    eng_health_cfg_t hc;
    eng_health_cfg_defaults(&hc);
    hc.allowed_fails = 1;
    hc.cooldown_ms = hc.cooldown_max_ms = 3600000;
    eng_health_t *h = eng_health_new(neps, &hc);
    eng_policy_set_health(pol, h);
    const eng_model_t *m = eng_catalog_find(cat, "openai/gpt-4o", 13);
    cr_assert_not_null(m);
    hpp_features_t f;
    hpp_features_init(&f);
    f.model = (hpp_str_t){"openai/gpt-4o", 13};
    f.prompt_tokens = 100;
    eng_decision_t d;
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK);
    const eng_endpoint_t *usual = d.endpoint;
    proto_attempt_t fail = s_status(503, 5);
    eng_health_record(h, (size_t)(usual - eps), &fail, eng_health_now_ms());

    static eng_trace_entry_t entries[256];
    eng_trace_t t;
    memset(&t, 0, sizeof t);
    t.entries = entries;
    t.cap = 256;
    cr_assert_eq(eng_resolve(pol, &f, &d, &t), HPP_OK, "%s", d.message);
    cr_assert_neq(d.endpoint, usual, "the cooling endpoint is skipped");
    cr_assert_eq(d.model, m, "the same model, at another endpoint");
    bool traced = false;
    for (size_t i = 0; i < t.n; i++) {
        traced = traced || (entries[i].endpoint == usual && entries[i].reason == ENG_REJ_COOLING);
    }
    cr_assert(traced, "the trace says cooling_down");
    for (uint32_t i = 0; i < d.nfallbacks; i++) {
        cr_assert_neq(d.fallbacks[i], usual, "nor offered as a fallback");
    }

    for (uint32_t k = 0; k < m->ep_count; k++) {
        eng_health_record(h, m->ep_first + k, &fail, eng_health_now_ms());
    }
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_eq(d.model, m);
    cr_assert(strstr(d.message, "every endpoint that fits is cooling down"), "%s", d.message);

    /* Without health (hpp-policy, tests) nothing cools. */
    eng_policy_set_health(pol, NULL);
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK);
    cr_assert_eq(d.endpoint, usual);
    eng_policy_destroy(&pol);
    eng_health_destroy(&h);
    eng_catalog_destroy(&cat);
}
