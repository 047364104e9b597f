/* test_no_alloc.c - the per-request paths allocate nothing once warm.
 *
 * The engine and the sidecar promise a hot path without heap allocation
 * (bench/ measures what that buys). This suite holds them to it: it counts
 * every malloc, calloc, realloc and free while the same work as one request
 * runs many times over, after one warm-up round that may grow reusable
 * buffers. The paths are the ones the servers run per request:
 *   engine:  decode the frame, resolve, encode the reply;
 *   sidecar: parse the body and headers, encode the engine request, decode
 *            the engine's reply;
 * and the sidecar's JSON reader on an object large enough for its sorted
 * duplicate-key check; the sidecar's trust boundary (API key lookup, the
 * gateway's header, the group and budget); and the sidecar's engine call
 * over its zmtp link, against a stand-in ROUTER on loopback: encode, send,
 * wait in the loop, parse the reply, decode it, run the callback.
 *
 * Counting (tests/alloc_count.h) replaces the allocator's entry points for
 * this binary, which the sanitizers also do, so under `make asan` the tests
 * are skipped.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_health.h"
#include "eng_local.h"
#include "eng_policy.h"
#include "eng_policy_internal.h"
#include "eng_reply.h"
#include "proto_zmtp.h"
#include "oai_request.h"
#include "sc_engine.h"
#include "oai_json.h"
#include "hpp_apikeys.h"
#include "sc_trust.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../alloc_count.h"
#include "../loopback.h"

static void s_need_counter(void)
{
    if (!alloc_count_available()) {
        cr_skip_test("allocation counting is off under the sanitizers");
    }
}

/* Sanity of the counter itself: without it every other test would pass. */
Test(no_alloc, the_counter_sees_allocations)
{
    s_need_counter();
    alloc_count_start();
    void *p = malloc(64);
    void *volatile q = realloc(p, 4096);
    free(q);
    cr_assert_eq(alloc_count_stop(), 3);
}

/* Whole file into a malloc'd NUL-terminated buffer. */
static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Sidecar: JSON reader ------------------------------------------------------ */

/* {"k0":0,...,"k{n-1}":n-1}, in a malloc'd buffer. */
static char *s_wide(int n, size_t *len)
{
    size_t cap = (size_t)n * 24 + 2, at = 0;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    s[at++] = '{';
    for (int i = 0; i < n; i++) {
        at += (size_t)snprintf(s + at, cap - at, "%s\"k%d\":%d", i ? "," : "", i, i);
    }
    s[at++] = '}';
    *len = at;
    return s;
}

Test(no_alloc, json_reader_on_small_and_large_objects)
{
    s_need_counter();
    size_t wide_len, body_len;
    char *wide = s_wide(5000, &wide_len); /* past the pairwise check: keys are sorted */
    char *body = s_slurp("bench/bodies/1k.json", &body_len);
    oai_jdoc_t *d = oai_jdoc_new();
    cr_assert_not_null(d);
    oai_jerr_t err;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            alloc_count_start();
        }
        for (int i = 0; i < 50; i++) {
            cr_assert_neq(oai_jdoc_parse(d, wide, wide_len, &err), OAI_JNONE, "%s", err.text);
            cr_assert_neq(oai_jdoc_parse(d, body, body_len, &err), OAI_JNONE, "%s", err.text);
        }
    }
    unsigned long n = alloc_count_stop();
    cr_assert_eq(n, 0, "%lu allocations in 100 warm parses", n);
    oai_jdoc_destroy(&d);
    free(body);
    free(wide);
}

/* Sidecar: one request's work around the engine call ------------------------- */

Test(no_alloc, sidecar_request_path)
{
    s_need_counter();
    const char *files[] = {"bench/bodies/small.json", "bench/bodies/1k.json",
                           "bench/bodies/image.json", "bench/bodies/32k.json"};
    enum { NFILES = sizeof files / sizeof files[0] };
    char *bodies[NFILES];
    size_t lens[NFILES];
    for (int i = 0; i < NFILES; i++) {
        bodies[i] = s_slurp(files[i], &lens[i]);
    }
    /* A decision reply, as the engine would send it, to decode each time. */
    static char reply_mem[PROTO_MAX_FRAME];
    proto_buf_t reply;
    proto_buf_init_fixed(&reply, reply_mem, sizeof reply_mem);
    eng_decision_t dec;
    memset(&dec, 0, sizeof dec);
    dec.status = HPP_OK;
    cr_assert_eq(eng_reply_decision(&reply, &(proto_id_t){.kind = PROTO_ID_UINT, .num = 7}, &dec,
                                    NULL, NULL),
                 PROTO_OK);

    static char out_mem[PROTO_MAX_FRAME];
    oai_extract_t *x = oai_extract_new();
    cr_assert_not_null(x);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            alloc_count_start();
        }
        for (int i = 0; i < 40; i++) {
            proto_request_t req;
            proto_request_init(&req, PROTO_OP_ROUTE);
            oai_error_t err;
            oai_extract_reset(x, &req.features);
            int b = i % NFILES;
            cr_assert_eq(oai_extract_body(x, bodies[b], lens[b], &req.features, &err), 0, "%s: %s",
                         files[b], err.message);
            cr_assert_eq(oai_extract_header(x, "X-HPP-Task", "code, math", &req.features, &err), 0);
            cr_assert_eq(oai_extract_header(x, "X-HPP-Budget-USD", "0.05", &req.features, &err), 0);
            cr_assert_eq(oai_extract_header(x, "X-HPP-Group", "team-a", &req.features, &err), 0);
            req.id = proto_id_uint((uint64_t)i + 1);
            proto_buf_t out;
            proto_buf_init_fixed(&out, out_mem, sizeof out_mem);
            cr_assert_eq(proto_request_encode(&out, &req), PROTO_OK);
            proto_reply_t r;
            proto_error_t perr;
            cr_assert_eq(proto_reply_decode(reply.data, reply.len, &r, &perr), PROTO_OK, "%s",
                         perr.msg);
            cr_assert_eq(r.id.num, 7);
        }
    }
    unsigned long n = alloc_count_stop();
    cr_assert_eq(n, 0, "%lu allocations in 40 warm requests", n);
    oai_extract_destroy(&x);
    for (int i = 0; i < NFILES; i++) {
        free(bodies[i]);
    }
}

/* Sidecar: the trust boundary of a request (sc_trust.h): the duplicate
 * check, hashing and looking up the API key, the gateway's header, and
 * applying the trusted group and budget. */
Test(no_alloc, sidecar_trust_path)
{
    s_need_counter();
    char text[256], h[HPP_APIKEY_HASH_TEXT], err_text[256];
    hpp_apikeys_hash_text("sk-alpha", 8, h);
    snprintf(text, sizeof text, "%s group=team-a budget_usd=0.5\n", h);
    hpp_apikeys_t *keys = hpp_apikeys_parse(text, strlen(text), "k", err_text, sizeof err_text);
    cr_assert_not_null(keys, "%s", err_text);
    struct evkeyvalq hdrs;
    hdrs.tqh_first = NULL; /* TAILQ_INIT, which libevent does not export */
    hdrs.tqh_last = &hdrs.tqh_first;
    evhttp_add_header(&hdrs, "Authorization", "Bearer sk-alpha");
    evhttp_add_header(&hdrs, "X-HPP-Task", "code");
    evhttp_add_header(&hdrs, "X-Gw", "ops;budget_usd=0.25");
    sc_trust_config_t cfg = {.keys = keys, .trusted_header = "X-Gw", .trust_client = false};
    alloc_count_start();
    for (int i = 0; i < 100; i++) {
        sc_trust_t t;
        oai_error_t err;
        hpp_features_t f;
        hpp_features_init(&f);
        cr_assert_eq(sc_trust_headers(&cfg, &hdrs, &t, &err), 0, "%s", err.message);
        cr_assert_eq(sc_trust_apply(&cfg, &t, &f, &err), 0, "%s", err.message);
        cr_assert_eq(f.group.len, 3);
    }
    unsigned long n = alloc_count_stop();
    cr_assert_eq(n, 0, "%lu allocations in 100 trust checks", n);
    evhttp_clear_headers(&hdrs);
    hpp_apikeys_destroy(&keys);
}

/* Engine: frame in, decision, frame out --------------------------------------- */

Test(no_alloc, engine_request_path)
{
    s_need_counter();
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t cerr;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &cerr), 0, "%s", cerr.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &cerr), 0, "%s", cerr.msg);
    eng_diags_t *diags = eng_diags_new();
    eng_policy_t *pol = eng_policy_load("policies/default.policy", cat, diags);
    if (!pol) {
        eng_diags_print(diags, stderr);
    }
    cr_assert_not_null(pol);
    eng_diags_destroy(&diags);

    /* Request frames as a gateway sends them: a mix of hints, budgets,
     * images and named models, so several rules and resolutions run. */
    static const struct {
        const char *model, *hint, *group;
        int64_t prompt, output;
        double budget;
        int64_t images;
    } specs[] = {
        {"hpprouter/auto", "code", NULL, 1200, 400, -1, 0},
        {"hpprouter/auto", "math", "team-a", 90000, 2000, 0.02, 0},
        {"hpprouter/auto", NULL, NULL, 300, 100, 0.0000001, 0},
        {"hpprouter/auto", "vision", NULL, 2000, 300, -1, 2},
        {"openai/gpt-4o-mini:floor", NULL, NULL, 500, 200, -1, 0},
        {"no/such-model", NULL, NULL, 10, 10, -1, 0},
    };
    enum { NSPECS = sizeof specs / sizeof specs[0] };
    static char frames[NSPECS][1024];
    size_t frame_len[NSPECS];
    for (int i = 0; i < NSPECS; i++) {
        proto_request_t req;
        proto_request_init(&req, PROTO_OP_ROUTE);
        req.id = proto_id_uint((uint64_t)i);
        hpp_features_t *f = &req.features;
        f->model = (hpp_str_t){specs[i].model, strlen(specs[i].model)};
        if (specs[i].hint) {
            f->hints[0] = (hpp_str_t){specs[i].hint, strlen(specs[i].hint)};
            f->nhints = 1;
        }
        if (specs[i].group) {
            f->group = (hpp_str_t){specs[i].group, strlen(specs[i].group)};
        }
        f->prompt_tokens = specs[i].prompt;
        f->output_tokens = specs[i].output;
        if (specs[i].budget >= 0) {
            f->has_budget = true;
            f->budget_usd = specs[i].budget;
        }
        f->images = specs[i].images;
        proto_buf_t b;
        proto_buf_init_fixed(&b, frames[i], sizeof frames[i]);
        cr_assert_eq(proto_request_encode(&b, &req), PROTO_OK);
        frame_len[i] = b.len;
    }

    static char out_mem[PROTO_MAX_FRAME];
    eng_epwire_t *wire = eng_epwire_new(cat); /* as the engine's snapshot has */
    cr_assert_not_null(wire);
    int ok = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            alloc_count_start();
        }
        for (int i = 0; i < 60; i++) {
            int k = i % NSPECS;
            proto_request_t req;
            proto_error_t perr;
            cr_assert_eq(proto_request_decode(frames[k], frame_len[k], &req, &perr), PROTO_OK, "%s",
                         perr.msg);
            eng_decision_t d;
            eng_resolve(pol, &req.features, &d, NULL);
            ok += round == 1 && d.status == HPP_OK;
            proto_buf_t out;
            proto_buf_init_fixed(&out, out_mem, sizeof out_mem);
            cr_assert_eq(eng_reply_decision(&out, &req.id, &d, cat, wire), PROTO_OK);
        }
    }
    unsigned long n = alloc_count_stop();
    cr_assert_eq(n, 0, "%lu allocations in 60 warm decisions", n);
    cr_assert_gt(ok, 0, "no request was routed: the loop measured only refusals");
    eng_epwire_destroy(&wire);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* Long prompts: the policy's text tests answered by the one-pass scan (eng_scan.h) on 8 KiB and
 * 16 KiB samples, from the very first decision (its scratch space is allocated when the policy
 * loads), and by the per-pattern matchers with the scan off. */
Test(no_alloc, engine_resolve_with_long_texts)
{
    s_need_counter();
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t cerr;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &cerr), 0, "%s", cerr.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &cerr), 0, "%s", cerr.msg);
    eng_diags_t *diags = eng_diags_new();
    eng_policy_t *pol = eng_policy_load("policies/default.policy", cat, diags);
    eng_diags_destroy(&diags);
    cr_assert_not_null(pol);
    cr_assert(eng_scan_covers_regex(pol->scan, 0), "the scan answers the policy's regexes");
    static char texts[3][16384];
    size_t lens[3];
    FILE *fp = fopen("bench/bodies/prompt_16k.txt", "rb");
    cr_assert_not_null(fp);
    lens[0] = fread(texts[0], 1, sizeof texts[0], fp);
    fclose(fp);
    memcpy(texts[1], texts[0], 8192); /* the 8 KiB sample: code, #include */
    lens[1] = 8192;
    for (size_t i = 0; i < sizeof texts[2]; i++) { /* prose that matches nothing */
        texts[2][i] = "the quick brown fox jumps over a lazy dog, "[i % 43];
    }
    lens[2] = sizeof texts[2];
    cr_assert_eq(lens[0], 16384);
    for (int scan = 1; scan >= 0; scan--) {
        eng_policy_set_scan(pol, scan);
        alloc_count_start();
        int ok = 0;
        for (int i = 0; i < 60; i++) {
            hpp_features_t f;
            hpp_features_init(&f);
            f.prompt_tokens = 3000;
            f.text = (hpp_str_t){texts[i % 3], (uint32_t)lens[i % 3]};
            eng_decision_t d;
            ok += eng_resolve(pol, &f, &d, NULL) == HPP_OK;
        }
        unsigned long n = alloc_count_stop();
        cr_assert_eq(n, 0, "%lu allocations in 60 decisions on long texts (scan %s)", n,
                     scan ? "on" : "off");
        cr_assert_eq(ok, 60);
    }
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* The same with endpoint health on: a report frame decoded and applied,
 * and decisions while endpoints cool down and with the measured sorts
 * (latency, :nitro), which take the per-request endpoint choice. */
Test(no_alloc, engine_request_path_with_health)
{
    s_need_counter();
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t cerr;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &cerr), 0, "%s", cerr.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &cerr), 0, "%s", cerr.msg);
    eng_diags_t *diags = eng_diags_new();
    eng_policy_t *pol = eng_policy_load("policies/default.policy", cat, diags);
    cr_assert_not_null(pol);
    eng_diags_destroy(&diags);
    size_t neps = 0;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &neps);
    eng_health_cfg_t hc;
    eng_health_cfg_defaults(&hc);
    hc.cooldown_ms = 3600000; /* cooling through the whole test */
    hc.cooldown_max_ms = hc.cooldown_ms;
    eng_health_t *h = eng_health_new(neps, &hc);
    cr_assert_not_null(h);
    eng_policy_set_health(pol, h);

    /* A report: three 500s from openai's gpt-4o-mini, speeds for others. */
    proto_attempt_t at[5];
    for (int i = 0; i < 5; i++) {
        proto_attempt_init(&at[i]);
        at[i].model = (hpp_str_t){"openai/gpt-4o-mini", 18};
        at[i].provider = (hpp_str_t){"openai", 6};
        at[i].status = i < 3 ? 500 : 200;
        at[i].latency_ms = 100.0 * (i + 1);
        at[i].tokens_per_s = 20.0 * (i + 1);
    }
    at[4].provider = (hpp_str_t){"azure", 5};
    static char report[2048];
    proto_buf_t rb;
    proto_buf_init_fixed(&rb, report, sizeof report);
    cr_assert_eq(proto_report_encode(&rb, NULL, at, 5, false), PROTO_OK);
    size_t report_len = rb.len;

    static const char *const models[] = {"hpprouter/auto", "openai/gpt-4o-mini",
                                         "openai/gpt-4o-mini:nitro", "openai/gpt-4o"};
    static char out_mem[PROTO_MAX_FRAME];
    int ok = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            alloc_count_start();
        }
        for (int i = 0; i < 40; i++) {
            proto_request_t req;
            proto_error_t perr;
            cr_assert_eq(proto_request_decode(report, report_len, &req, &perr), PROTO_OK, "%s",
                         perr.msg);
            size_t pos = 0;
            proto_attempt_t a;
            int64_t now = eng_health_now_ms();
            while (proto_attempts_next(&req.attempts, &pos, &a, &perr) == 1) {
                const eng_model_t *m = eng_catalog_lookup(cat, a.model.ptr, a.model.len);
                for (uint32_t k = 0; m && k < m->ep_count; k++) {
                    if (strncmp(eps[m->ep_first + k].provider, a.provider.ptr, a.provider.len) ==
                        0) {
                        eng_health_record(h, m->ep_first + k, &a, now);
                    }
                }
            }
            hpp_features_t f;
            hpp_features_init(&f);
            f.model = (hpp_str_t){models[i % 4], strlen(models[i % 4])};
            f.prompt_tokens = 800;
            f.sort = i % 3 == 0 ? HPP_SORT_LATENCY : HPP_SORT_DEFAULT;
            eng_decision_t d;
            eng_resolve(pol, &f, &d, NULL);
            ok += round == 1 && d.status == HPP_OK;
            proto_buf_t out;
            proto_buf_init_fixed(&out, out_mem, sizeof out_mem);
            proto_id_t id = proto_id_uint((uint64_t)i);
            cr_assert_eq(eng_reply_decision(&out, &id, &d, cat, NULL), PROTO_OK);
        }
    }
    unsigned long n = alloc_count_stop();
    cr_assert_eq(n, 0, "%lu allocations in 40 warm reports and decisions with health", n);
    cr_assert_gt(ok, 0);
    int64_t now = 0;
    cr_assert(eng_health_cooling_now(h, &now), "the loop ran with an endpoint cooling down");
    eng_policy_destroy(&pol);
    eng_health_destroy(&h);
    eng_catalog_destroy(&cat);
}

/* A ROUTER stand-in speaking raw ZMTP on one connection: greeting and READY,
 * then a decision reply to every request frame, with the request's id. It
 * allocates nothing per request either, so the count stays the sidecar's. */
static int s_read_all(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) {
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static void *s_fake_router(void *arg)
{
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    static const uint8_t hello[] = {
        0xFF, 0,   0,   0,   0,   0,   0,   0,   0,   0x7F, 3,   0,   'N', 'U', 'L', 'L', 0,
        0,    0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   0,   0,   1,   0,
        0,    0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   0,   0,   0,   0,
        0,    0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0, /* greeting */
        0x04, 28,  5,   'R', 'E', 'A', 'D', 'Y', 11,  'S',  'o', 'c', 'k', 'e', 't', '-', 'T',
        'y',  'p', 'e', 0,   0,   0,   6,   'R', 'O', 'U',  'T', 'E', 'R'};
    uint8_t in[64 + PROTO_MAX_FRAME], head[9];
    static char out_mem[PROTO_MAX_FRAME];
    if (write(fd, hello, sizeof hello) != (ssize_t)sizeof hello || s_read_all(fd, in, 64) != 0 ||
        s_read_all(fd, head, 2) != 0 || s_read_all(fd, in, head[1]) != 0) {
        close(fd);
        return NULL;
    }
    eng_decision_t dec;
    memset(&dec, 0, sizeof dec);
    dec.status = HPP_OK;
    for (;;) {
        if (s_read_all(fd, head, 2) != 0) {
            break;
        }
        size_t len = head[1];
        if (head[0] & 0x02) {
            if (s_read_all(fd, head + 2, 7) != 0) {
                break;
            }
            len = 0;
            for (int i = 1; i < 9; i++) {
                len = len << 8 | head[i];
            }
        }
        proto_request_t req;
        if (len > sizeof in || s_read_all(fd, in, len) != 0 ||
            proto_request_decode(in, len, &req, NULL) != PROTO_OK) {
            break;
        }
        proto_buf_t out;
        proto_buf_init_fixed(&out, out_mem, sizeof out_mem);
        eng_reply_decision(&out, &req.id, &dec, NULL, NULL);
        size_t hl = proto_zmtp_frame_head(head, out.len, false);
        if (write(fd, head, hl) != (ssize_t)hl ||
            write(fd, out.data, out.len) != (ssize_t)out.len) {
            break;
        }
    }
    close(fd);
    return NULL;
}

static int s_replies;
static void s_on_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                       size_t len)
{
    (void)arg;
    (void)raw;
    (void)len;
    s_replies += res == SC_ENG_REPLY && r->ok;
}

/* 50 engine calls to warm up, then 50 more counted: the allocations of the
 * second 50. Each call is awaited in the loop before the next. */
static unsigned long s_warm_calls(sc_engine_t *eng, struct event_base *base, proto_request_t *req)
{
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            alloc_count_start();
        }
        for (int i = 0; i < 50; i++) {
            int want = s_replies + 1;
            cr_assert_neq(sc_engine_call(eng, req, s_on_reply, NULL, NULL), 0);
            while (s_replies < want) {
                event_base_loop(base, EVLOOP_ONCE);
            }
        }
    }
    return alloc_count_stop();
}

Test(no_alloc, sidecar_engine_call_over_zmtp)
{
    s_need_counter();
    char ep[64], err[256];
    int lfd = loopback_listen(ep, sizeof ep);
    cr_assert_geq(lfd, 0, "listen: %s", strerror(errno));
    pthread_t t;
    pthread_create(&t, NULL, s_fake_router, &lfd);
    struct event_base *base = event_base_new();
    const char *eps[1] = {ep};
    sc_engine_config_t ec = {
        .endpoints = eps, .nendpoints = 1, .kind = SC_LINK_ZMTP, .timeout_ms = 1000};
    sc_engine_t *eng = sc_engine_new(base, &ec, err, sizeof err);
    cr_assert_not_null(eng, "%s", err);
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.features.prompt_tokens = 1200;
    /* Up once the handshake is done: calls fail ("unavailable") before. */
    for (int i = 0; i < 2000 && !sc_engine_call(eng, &req, s_on_reply, NULL, NULL); i++) {
        struct timeval tick = {0, 1000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    cr_assert_eq(sc_engine_inflight(eng), 1, "the link did not come up");
    while (s_replies < 1) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    unsigned long n = s_warm_calls(eng, base, &req);
    cr_assert_eq(n, 0, "%lu allocations in 50 warm engine calls", n);
    cr_assert_eq(s_replies, 101);
    sc_engine_destroy(&eng);
    event_base_free(base);
    close(lfd);
    pthread_join(t, NULL);
}

/* The same call to the engine inside this process (--local-engine): encode,
 * answer through the resolver, queue the reply, hand it over in the loop,
 * decode it, run the callback. */
Test(no_alloc, sidecar_engine_call_in_process)
{
    s_need_counter();
    static const char *const catalogs[1] = {"policies/catalog.json"};
    static eng_loadlog_t log;
    eng_local_config_t lc = {
        .policy = "policies/default.policy", .catalogs = catalogs, .ncatalogs = 1, .readers = 1};
    eng_local_t *local = eng_local_new(&lc, &log);
    cr_assert_not_null(local, "%s", log.n ? log.lines[0] : "");
    struct event_base *base = event_base_new();
    const char *eps[1] = {"local"};
    char err[256];
    sc_engine_config_t ec = {.endpoints = eps,
                             .nendpoints = 1,
                             .kind = SC_LINK_LOCAL,
                             .local = local,
                             .timeout_ms = 1000};
    sc_engine_t *eng = sc_engine_new(base, &ec, err, sizeof err);
    cr_assert_not_null(eng, "%s", err);
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.features.prompt_tokens = 1200;
    static const char text[] = "def f(x):\n    return x  # fix this traceback";
    req.features.text = (hpp_str_t){text, sizeof text - 1};
    int before = s_replies;
    unsigned long n = s_warm_calls(eng, base, &req);
    cr_assert_eq(n, 0, "%lu allocations in 50 warm in-process engine calls", n);
    cr_assert_eq(s_replies - before, 100);
    sc_engine_destroy(&eng);
    event_base_free(base);
    eng_local_destroy(&local);
}
