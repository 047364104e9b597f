/* test_client_api.c - the public API of libhppclient (hpprouter/client.h)
 * against the real hpp-engine: requests set by wire key and their refusals,
 * reply getters (strings cut like snprintf, exact picodollar parts,
 * fallbacks, JSON), engine errors, pipelining with submit/await/recv, and a
 * reused request getting a fresh id each time. Uses nothing but the public
 * header, as a gateway would.
 */
#include <criterion/criterion.h>

#include "harness.h"
#include "hpprouter/client.h"

#define S_READY "hpp-engine: ready on "
#define S_TIMEOUT 5000

static hh_proc_t s_engine;
static char s_endpoint[256];

static void s_start(void)
{
    char *argv[] = {hh_bin("hpp-engine"), "--listen", "tcp://127.0.0.1:0", "--threads", "1", NULL};
    cr_assert_eq(hh_spawn(&s_engine, argv, "engine-client-api"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&s_engine, S_READY, 15000, line, sizeof line), 0,
                 "engine did not become ready (log: %s)", s_engine.log);
    snprintf(s_endpoint, sizeof s_endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
}

static void s_stop(void)
{
    cr_assert_eq(hh_stop(&s_engine), 0, "engine log: %s", s_engine.log);
}

static hpp_client_t *s_client(void)
{
    char err[256];
    hpp_client_t *c = hpp_client_new(s_endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

TestSuite(client_api, .init = s_start, .fini = s_stop);

Test(client_api, setters_refuse_what_the_protocol_refuses)
{
    hpp_request_t *r = hpp_request_new();
    cr_assert_not_null(r);
    cr_assert_eq(hpp_request_set_int(r, "prompt_tokens", 1200), 0);
    cr_assert_eq(hpp_request_set_int(r, "prompt_tokens", 100000001), HPP_ERR_ARG);
    cr_assert(strstr(hpp_request_errstr(r), "prompt_tokens: must be"), "%s", hpp_request_errstr(r));
    cr_assert_eq(hpp_request_set_int(r, "colour", 1), HPP_ERR_ARG);
    cr_assert(strstr(hpp_request_errstr(r), "colour: not an integer feature"), "%s",
              hpp_request_errstr(r));
    cr_assert_eq(hpp_request_set_str(r, "prompt_tokens", "1"), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_str(r, "op", "nope"), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_num(r, "budget_usd", -1), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_num(r, "max_price.prompt", 5), 0);
    cr_assert_eq(hpp_request_set_num(r, "max_price.colour", 5), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_num(r, "preferred_max_latency", 2.5), 0);
    cr_assert_eq(hpp_request_set_num(r, "preferred_min_throughput", 50), 0);
    cr_assert_eq(hpp_request_set_num(r, "preferred_max_latency", -1), HPP_ERR_ARG);
    cr_assert(strstr(hpp_request_errstr(r), "preferred_max_latency: "), "%s",
              hpp_request_errstr(r));
    cr_assert_eq(hpp_request_set_bool(r, "allow_fallbacks", false), 0);
    cr_assert_eq(hpp_request_set_bool(r, "model", true), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_str(r, "providers_sort", "fastest"), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_str(r, "providers_sort", "latency"), 0);
    cr_assert_eq(hpp_request_add_str(r, "providers_only", "has space"), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_add_str(r, "hints", ""), HPP_ERR_ARG);
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(hpp_request_add_str(r, "hints", "code"), 0);
    }
    cr_assert_eq(hpp_request_add_str(r, "hints", "code"), HPP_ERR_ARG);
    cr_assert(strstr(hpp_request_errstr(r), "hints: more than 16 entries"), "%s",
              hpp_request_errstr(r));
    char longer[300];
    memset(longer, 'm', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cr_assert_eq(hpp_request_set_str(r, "model", longer), HPP_ERR_ARG);
    cr_assert(strstr(hpp_request_errstr(r), "model: longer than 256 bytes"), "%s",
              hpp_request_errstr(r));
    cr_assert_eq(hpp_request_set_meta(r, "", "x"), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_meta(r, "team", "a"), 0);
    cr_assert_eq(hpp_request_set_int(r, "id", -1), HPP_ERR_ARG);
    cr_assert_eq(hpp_request_set_int(NULL, "id", 1), HPP_ERR_ARG);
    hpp_request_destroy(&r);
    cr_assert_null(r);
}

Test(client_api, a_route_and_its_getters)
{
    hpp_client_t *c = s_client();
    hpp_request_t *r = hpp_request_new();
    hpp_reply_t *rep = hpp_reply_new();
    cr_assert_not_null(rep);
    cr_assert_not(hpp_reply_ok(rep));
    cr_assert_null(hpp_reply_json(rep));
    hpp_request_set_int(r, "prompt_tokens", 1200);
    hpp_request_add_str(r, "hints", "code");
    hpp_request_set_num(r, "budget_usd", 0.05);
    cr_assert_eq(hpp_client_request(c, r, rep, S_TIMEOUT), HPP_CLIENT_OK, "%s",
                 hpp_client_errstr(c));
    cr_assert(hpp_reply_ok(rep));
    char s[300];
    cr_assert_gt(hpp_reply_str(rep, "model", s, sizeof s), 0);
    cr_assert_gt(hpp_reply_str(rep, "provider_model", s, sizeof s), 0);
    cr_assert_eq(hpp_reply_str(rep, "rule", s, sizeof s), 4);
    cr_assert_str_eq(s, "code");
    /* Cut like snprintf: the full length, a NUL-terminated prefix. */
    cr_assert_eq(hpp_reply_str(rep, "rule", s, 3), 4);
    cr_assert_str_eq(s, "co");
    cr_assert_eq(hpp_reply_str(rep, "rule", NULL, 0), 4);
    cr_assert_eq(hpp_reply_str(rep, "error.code", s, sizeof s), 0);
    cr_assert_eq(hpp_reply_str(rep, "colour", s, sizeof s), HPP_ERR_ARG);
    int64_t parts[5];
    const char *names[] = {"cost_pusd.input", "cost_pusd.output", "cost_pusd.cache",
                           "cost_pusd.fees", "cost_pusd.total"};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(hpp_reply_int(rep, names[i], &parts[i]), 0);
    }
    cr_assert_gt(parts[4], 0);
    cr_assert_eq(parts[0] + parts[1] + parts[2] + parts[3], parts[4]);
    double usd = 0;
    cr_assert_eq(hpp_reply_num(rep, "cost_usd", &usd), 0);
    cr_assert(usd > 0 && usd <= 0.05, "%g", usd);
    cr_assert_eq(hpp_reply_int(rep, "cost_usd", &parts[0]), HPP_ERR_ARG);
    cr_assert_gt(hpp_reply_nfallbacks(rep), 0);
    cr_assert_gt(hpp_reply_fallback_str(rep, 0, "model", s, sizeof s), 0);
    cr_assert_eq(hpp_reply_fallback_str(rep, 99, "model", s, sizeof s), HPP_ERR_ARG);
    char *json = hpp_reply_json(rep);
    cr_assert(json && strstr(json, "\"ok\":true") && strstr(json, "\"rule\":\"code\""), "%s", json);
    free(json);
    size_t len = 0;
    cr_assert_not_null(hpp_reply_data(rep, &len));
    cr_assert_gt(len, 0);
    hpp_reply_destroy(&rep);
    hpp_request_destroy(&r);
    hpp_client_destroy(&c);
}

Test(client_api, an_engine_error_is_a_value_with_its_reply)
{
    hpp_client_t *c = s_client();
    hpp_request_t *r = hpp_request_new();
    hpp_reply_t *rep = hpp_reply_new();
    hpp_request_set_int(r, "prompt_tokens", 10);
    hpp_request_set_str(r, "model", "acme/nope");
    cr_assert_eq(hpp_client_request(c, r, rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert_not(hpp_reply_ok(rep));
    char s[128];
    hpp_reply_str(rep, "error.code", s, sizeof s);
    cr_assert_str_eq(s, "unknown_model");
    cr_assert(strstr(hpp_client_errstr(c), "unknown_model: unknown model 'acme/nope'"), "%s",
              hpp_client_errstr(c));
    hpp_reply_destroy(&rep);
    hpp_request_destroy(&r);
    hpp_client_destroy(&c);
}

/* A route's decision_id, reported back with ack: the engine's stats count
 * it; attempts the protocol refuses are refused before sending, an unknown
 * endpoint by the engine with its location. */
Test(client_api, reports)
{
    hpp_client_t *c = s_client();
    hpp_request_t *r = hpp_request_new();
    hpp_reply_t *rep = hpp_reply_new();
    hpp_request_set_int(r, "prompt_tokens", 1200);
    cr_assert_eq(hpp_client_request(c, r, rep, S_TIMEOUT), HPP_CLIENT_OK, "%s",
                 hpp_client_errstr(c));
    int64_t id = 0;
    cr_assert_eq(hpp_reply_int(rep, "decision_id", &id), 0);
    cr_assert_gt(id, 0);
    char model[128], provider[64];
    hpp_reply_str(rep, "model", model, sizeof model);
    hpp_reply_str(rep, "provider", provider, sizeof provider);
    hpp_attempt_t a[2];
    hpp_attempt_init(&a[0]);
    a[0].decision = (uint64_t)id;
    a[0].model = model;
    a[0].provider = provider;
    a[0].status = 200;
    a[0].latency_ms = 812.5;
    a[0].prompt_tokens = 1200;
    a[0].completion_tokens = 300;
    a[1] = a[0];
    a[1].status = 0;
    a[1].error = "timeout";
    cr_assert_eq(hpp_client_send_report(c, a, 2, true, rep, S_TIMEOUT), HPP_CLIENT_OK, "%s",
                 hpp_client_errstr(c));
    char *json = hpp_reply_json(rep);
    cr_assert(json && strstr(json, "\"attempts\":2"), "%s", json);
    free(json);
    hpp_request_reset(r);
    hpp_request_set_str(r, "op", "stats");
    cr_assert_eq(hpp_client_request(c, r, rep, S_TIMEOUT), HPP_CLIENT_OK);
    json = hpp_reply_json(rep);
    cr_assert(json && strstr(json, "\"reports\":{\"received\":1,\"attempts\":2"), "%s", json);
    free(json);
    /* Refused before sending. */
    hpp_attempt_t bad = a[0];
    bad.error = "timeout"; /* and a status */
    cr_assert_eq(hpp_client_send_report(c, &bad, 1, false, NULL, S_TIMEOUT), HPP_ERR_ARG);
    bad = a[1];
    bad.error = "gone";
    cr_assert_eq(hpp_client_send_report(c, &bad, 1, false, NULL, S_TIMEOUT), HPP_ERR_ARG);
    bad = a[0];
    bad.status = 99;
    cr_assert_eq(hpp_client_send_report(c, &bad, 1, false, NULL, S_TIMEOUT), HPP_ERR_ARG);
    cr_assert_eq(hpp_client_send_report(c, a, 0, false, NULL, S_TIMEOUT), HPP_ERR_ARG);
    /* Refused by the engine, located. */
    bad = a[0];
    bad.provider = "nowhere";
    cr_assert_eq(hpp_client_send_report(c, &bad, 1, true, rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert(strstr(hpp_client_errstr(c), "attempts[0].provider"), "%s", hpp_client_errstr(c));
    hpp_reply_destroy(&rep);
    hpp_request_destroy(&r);
    hpp_client_destroy(&c);
}

Test(client_api, pipelined_requests_are_matched_by_id)
{
    hpp_client_t *c = s_client();
    hpp_request_t *r[10];
    for (int i = 0; i < 10; i++) {
        r[i] = hpp_request_new();
        hpp_request_set_int(r[i], "prompt_tokens", 100);
        hpp_request_set_int(r[i], "output_tokens", 10 + i);
        cr_assert_eq(hpp_client_submit(c, r[i], S_TIMEOUT), 0, "%s", hpp_client_errstr(c));
    }
    hpp_reply_t *rep = hpp_reply_new();
    for (int i = 9; i >= 0; i--) {
        cr_assert_eq(hpp_client_await(c, r[i], rep, S_TIMEOUT), 0, "%s", hpp_client_errstr(c));
        int64_t out = 0;
        hpp_reply_int(rep, "output_tokens", &out);
        cr_assert_eq(out, 10 + i);
        hpp_request_destroy(&r[i]);
    }
    /* A string id, received by whoever asks first. */
    hpp_request_t *p = hpp_request_new();
    hpp_request_set_str(p, "op", "ping");
    hpp_request_set_str(p, "id", "ping-a7");
    cr_assert_eq(hpp_client_submit(c, p, S_TIMEOUT), 0);
    cr_assert_eq(hpp_client_recv(c, rep, S_TIMEOUT), 0);
    char *json = hpp_reply_json(rep);
    cr_assert(json && strstr(json, "\"id\":\"ping-a7\""), "%s", json);
    free(json);
    int64_t version = 0;
    hpp_reply_int(rep, "policy_version", &version);
    cr_assert_geq(version, 1);
    char hash[80];
    cr_assert_eq(hpp_reply_str(rep, "policy_hash", hash, sizeof hash), 64);
    hpp_request_destroy(&p);
    hpp_reply_destroy(&rep);
    hpp_client_destroy(&c);
}

Test(client_api, a_reused_request_gets_a_fresh_id_each_time)
{
    hpp_client_t *c = s_client();
    hpp_request_t *r = hpp_request_new();
    hpp_reply_t *rep = hpp_reply_new();
    hpp_request_set_str(r, "op", "ping");
    char *ids[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(hpp_client_request(c, r, rep, S_TIMEOUT), 0);
        ids[i] = hpp_reply_json(rep);
        cr_assert_not_null(ids[i]);
        *strchr(strstr(ids[i], "\"id\":"), ',') = '\0';
    }
    cr_assert_str_neq(strstr(ids[0], "\"id\":"), strstr(ids[1], "\"id\":"));
    free(ids[0]);
    free(ids[1]);
    /* After a reset it is a route again (the ping is forgotten). */
    hpp_request_reset(r);
    hpp_request_set_int(r, "prompt_tokens", 10);
    cr_assert_eq(hpp_client_request(c, r, rep, S_TIMEOUT), 0, "%s", hpp_client_errstr(c));
    cr_assert_gt(hpp_reply_str(rep, "model", NULL, 0), 0);
    hpp_reply_destroy(&rep);
    hpp_request_destroy(&r);
    hpp_client_destroy(&c);
}

Test(client_api, version_and_strerror)
{
    char want[16];
    snprintf(want, sizeof want, "%d.%d", HPP_CLIENT_VERSION_MAJOR, HPP_CLIENT_VERSION_MINOR);
    cr_assert_str_eq(hpp_client_version(), want);
    cr_assert_str_eq(hpp_strerror(HPP_ERR_TIMEOUT), "timeout");
    cr_assert_str_eq(hpp_strerror(-99), "unknown error");
}
