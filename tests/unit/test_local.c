/* test_local.c - the engine's answers in the caller's process (eng_local.h)
 * and the sidecar's link to it (sc_local.h, through sc_engine):
 *   - a route is what the resolver decides on the same files, loaded apart;
 *   - reports move the health the resolver reads (a cooled endpoint is
 *     passed over), and a wrong one is refused as the engine refuses it;
 *   - ping says the version and the files' hash; the ops it has no state
 *     for (ledger, stats, reload) are refused with their own codes; a bad
 *     frame gets the decoder's located error;
 *   - a reload serves new files, keeps the health, and a bad file or one
 *     that loses the catch-all rule keeps the serving version;
 *   - readers answer while another thread reloads (for the sanitizers);
 *   - through sc_engine, a call comes back in the same loop turn, never
 *     inside the send, and the link is up from the first turn.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_local.h"
#include "eng_policy.h"
#include "proto_mp.h"
#include "sc_engine.h"

#define S_POLICY "policies/default.policy"
#define S_CATALOG "policies/catalog.json"

static const char *const s_catalogs[1] = {S_CATALOG};
static eng_loadlog_t s_log;

static eng_local_t *s_new(const char *policy, size_t readers)
{
    eng_local_config_t cfg = {
        .policy = policy, .catalogs = s_catalogs, .ncatalogs = 1, .readers = readers};
    eng_local_t *l = eng_local_new(&cfg, &s_log);
    cr_assert_not_null(l, "load: %s", s_log.n ? s_log.lines[0] : "(no line)");
    return l;
}

/* A code request of `prompt` tokens, encoded into b. */
static void s_route_frame(proto_buf_t *b, uint64_t id, int64_t prompt)
{
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.id = proto_id_uint(id);
    req.features.prompt_tokens = prompt;
    req.features.hints[0] = (hpp_str_t){"code", 4};
    req.features.nhints = 1;
    proto_buf_reset(b);
    cr_assert_eq(proto_request_encode(b, &req), PROTO_OK);
}

/* Answers `in` into `out` and decodes the reply into r. */
static void s_ask(eng_local_t *l, size_t reader, const proto_buf_t *in, proto_buf_t *out,
                  proto_reply_t *r)
{
    proto_buf_reset(out);
    cr_assert(eng_local_answer(l, reader, in->data, in->len, out), "no reply");
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(out->data, out->len, r, &err), PROTO_OK, "%s", err.msg);
}

static bool s_str_eq(hpp_str_t s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

Test(local, a_route_is_the_resolvers_decision_on_the_same_files)
{
    eng_local_t *l = s_new(S_POLICY, 1);
    eng_snapshot_cfg_t sc = {.policy = S_POLICY, .catalogs = s_catalogs, .ncatalogs = 1};
    eng_loadlog_t *log = calloc(1, sizeof *log);
    eng_snapshot_t *snap = eng_snapshot_load(&sc, 1, log);
    cr_assert_not_null(snap);
    proto_buf_t in, out;
    proto_buf_init(&in, 256);
    proto_buf_init(&out, 256);
    int64_t prompts[] = {10, 2000, 60000, 150000};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        s_route_frame(&in, 7 + i, prompts[i]);
        proto_reply_t r;
        s_ask(l, 0, &in, &out, &r);
        proto_request_t req;
        cr_assert_eq(proto_request_decode(in.data, in.len, &req, NULL), PROTO_OK);
        eng_decision_t d;
        eng_resolve(eng_snapshot_policy(snap), &req.features, &d, NULL);
        cr_assert_eq(r.status, d.status, "prompt %lld", (long long)prompts[i]);
        cr_assert_eq(r.id.num, 7 + i);
        if (d.status == HPP_OK) {
            cr_assert(s_str_eq(r.model, d.model->id), "prompt %lld: %.*s, resolver %s",
                      (long long)prompts[i], (int)r.model.len, r.model.ptr, d.model->id);
            cr_assert(s_str_eq(r.provider, d.endpoint->provider));
            cr_assert_eq(r.nfallbacks, d.nfallbacks);
            cr_assert_neq(r.decision_id, 0);
            cr_assert_not(r.has_ledger);
        }
    }
    eng_snapshot_destroy(&snap);
    free(log);
    proto_buf_destroy(&in);
    proto_buf_destroy(&out);
    eng_local_destroy(&l);
    cr_assert_null(l);
}

/* Reports `n` attempts at model/provider with `status`. */
static proto_reply_t s_report(eng_local_t *l, proto_buf_t *in, proto_buf_t *out, hpp_str_t model,
                              hpp_str_t provider, uint32_t status, bool ack, bool *replied)
{
    proto_attempt_t a;
    proto_attempt_init(&a);
    a.model = model;
    a.provider = provider;
    a.status = status;
    a.latency_ms = 120;
    proto_buf_reset(in);
    proto_id_t id = proto_id_uint(99);
    cr_assert_eq(proto_report_encode(in, &id, &a, 1, ack), PROTO_OK);
    proto_reply_t r;
    memset(&r, 0, sizeof r);
    proto_buf_reset(out);
    *replied = eng_local_answer(l, 0, in->data, in->len, out);
    cr_assert_eq(*replied, out->len > 0, "a reply is appended exactly when one is said");
    if (*replied) {
        cr_assert_eq(proto_reply_decode(out->data, out->len, &r, NULL), PROTO_OK);
    }
    return r;
}

Test(local, reports_cool_an_endpoint_down_and_a_reload_keeps_it)
{
    /* The policy in a file of our own, so that it can be rewritten. */
    char dir[] = "/tmp/hpp-test-local-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pol[64];
    snprintf(pol, sizeof pol, "%s/p.policy", dir);
    FILE *src = fopen(S_POLICY, "r"), *dst = fopen(pol, "w");
    cr_assert(src && dst);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, src)) > 0) {
        fwrite(buf, 1, n, dst);
    }
    fclose(src);
    fclose(dst);

    eng_local_t *l = s_new(pol, 1);
    proto_buf_t in, out;
    proto_buf_init(&in, 256);
    proto_buf_init(&out, 256);
    s_route_frame(&in, 1, 2000);
    proto_reply_t r;
    s_ask(l, 0, &in, &out, &r);
    cr_assert(r.ok);
    char model[128], provider[64];
    snprintf(model, sizeof model, "%.*s", (int)r.model.len, r.model.ptr);
    snprintf(provider, sizeof provider, "%.*s", (int)r.provider.len, r.provider.ptr);
    hpp_str_t m = {model, strlen(model)}, p = {provider, strlen(provider)};

    /* Without ack: applied, no reply. With ack: the count. */
    bool replied;
    for (int i = 0; i < 5; i++) {
        s_report(l, &in, &out, m, p, 429, false, &replied);
        cr_assert_not(replied, "a report without ack has no reply");
    }
    proto_reply_t ack = s_report(l, &in, &out, m, p, 429, true, &replied);
    cr_assert(replied && ack.ok);

    s_route_frame(&in, 2, 2000);
    s_ask(l, 0, &in, &out, &r);
    cr_assert(r.ok);
    cr_assert_not(s_str_eq(r.model, model) && s_str_eq(r.provider, provider),
                  "%s at %s failed 6 times and is still chosen", model, provider);

    /* A reload of the same files keeps what was measured. */
    cr_assert(eng_local_reload(l, &s_log), "%s", s_log.n ? s_log.lines[0] : "");
    char hash[ENG_SNAPSHOT_HASH_HEX];
    cr_assert_eq(eng_local_version(l, hash), 2);
    s_route_frame(&in, 3, 2000);
    s_ask(l, 0, &in, &out, &r);
    cr_assert_not(s_str_eq(r.model, model) && s_str_eq(r.provider, provider),
                  "the cooldown was lost in the reload");

    /* A report naming no endpoint of the catalog counts nothing. */
    proto_reply_t bad =
        s_report(l, &in, &out, (hpp_str_t){"no/such-model", 13}, p, 500, false, &replied);
    cr_assert(replied, "a refused report is answered even without ack");
    cr_assert_eq(bad.status, HPP_E_BAD_REQUEST);
    cr_assert(memmem(bad.message.ptr, bad.message.len, "attempts[0].model", 17));

    /* A file that does not compile keeps version 2, and says where. */
    dst = fopen(pol, "a");
    fputs("\nroute broken when {\n", dst);
    fclose(dst);
    cr_assert_not(eng_local_reload(l, &s_log));
    cr_assert_gt(s_log.errors, 0);
    cr_assert(strstr(s_log.lines[0], "p.policy:") && strstr(s_log.lines[0], "error"), "%s",
              s_log.lines[0]);
    cr_assert_eq(eng_local_version(l, hash), 2);
    s_route_frame(&in, 4, 2000);
    s_ask(l, 0, &in, &out, &r);
    cr_assert(r.ok, "the serving version still answers");

    unlink(pol);
    rmdir(dir);
    proto_buf_destroy(&in);
    proto_buf_destroy(&out);
    eng_local_destroy(&l);
}

Test(local, a_policy_that_does_not_compile_gives_no_engine_and_says_where)
{
    char dir[] = "/tmp/hpp-test-local-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pol[64];
    snprintf(pol, sizeof pol, "%s/p.policy", dir);
    FILE *f = fopen(pol, "w");
    cr_assert_not_null(f);
    fputs("tier budget max $1\nroute x when {\n", f);
    fclose(f);
    eng_local_config_t cfg = {.policy = pol, .catalogs = s_catalogs, .ncatalogs = 1, .readers = 4};
    cr_assert_null(eng_local_new(&cfg, &s_log));
    cr_assert_gt(s_log.errors, 0);
    cr_assert(strstr(s_log.lines[0], "p.policy:2:") && s_log.is_error[0], "%s", s_log.lines[0]);
    static const char *const missing[1] = {"/nonexistent/catalog.json"};
    cfg.policy = S_POLICY;
    cfg.catalogs = missing;
    cr_assert_null(eng_local_new(&cfg, &s_log));
    cr_assert(strstr(s_log.lines[0], "/nonexistent/catalog.json"), "%s", s_log.lines[0]);
    unlink(pol);
    rmdir(dir);
}

/* Writes `text` into `path`. */
static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

#define S_HEAD "tier budget max $2\ntier premium\ngroup default models \"*\"\n"

/* The engine's reload gate: a policy that would route with no rule a
 * request the serving one routes does not serve. */
Test(local, a_reload_that_leaves_requests_without_a_rule_is_refused)
{
    char dir[] = "/tmp/hpp-test-local-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pol[64];
    snprintf(pol, sizeof pol, "%s/p.policy", dir);
    char hash[ENG_SNAPSHOT_HASH_HEX];
    static const char *const cases[][2] = {
        /* the catch-all rule lost */
        {S_HEAD "route all {\n    tier budget\n}\n",
         S_HEAD "route some when hints has \"code\" {\n    tier budget\n}\n"},
        /* no catch-all either side: code requests lost */
        {S_HEAD "route code when hints has \"code\" {\n    tier budget\n}\n"
                "route see when vision {\n    tier premium\n}\n",
         S_HEAD "route see when vision {\n    tier premium\n}\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write(pol, cases[i][0]);
        eng_local_t *l = s_new(pol, 1);
        s_write(pol, cases[i][1]);
        cr_assert_not(eng_local_reload(l, &s_log), "case %zu: a policy that routes less was taken",
                      i);
        cr_assert_gt(s_log.errors, 0);
        cr_assert(s_log.is_error[0], "case %zu: the first line is an error", i);
        cr_assert_eq(eng_local_version(l, hash), 1);
        eng_local_destroy(&l);
    }
    unlink(pol);
    rmdir(dir);
}

/* The reply goes after what the buffer holds (the sidecar's queue encodes
 * each reply in place): the bytes before it are kept. */
Test(local, a_reply_is_appended_after_what_the_buffer_holds)
{
    eng_local_t *l = s_new(S_POLICY, 1);
    proto_buf_t in, out;
    proto_buf_init(&in, 256);
    proto_buf_init(&out, 16); /* small: the reply grows it */
    s_route_frame(&in, 41, 2000);
    cr_assert_eq(proto_buf_append(&out, "HEAD", 4), PROTO_OK);
    cr_assert(eng_local_answer(l, 0, in.data, in.len, &out));
    cr_assert_gt(out.len, 4);
    cr_assert_eq(memcmp(out.data, "HEAD", 4), 0, "the bytes before the reply were changed");
    proto_reply_t r;
    cr_assert_eq(proto_reply_decode(out.data + 4, out.len - 4, &r, NULL), PROTO_OK);
    cr_assert(r.ok);
    cr_assert_eq(r.id.num, 41);
    size_t before = out.len;
    cr_assert(eng_local_answer(l, 0, in.data, in.len, &out), "a second reply after the first");
    cr_assert_eq(proto_reply_decode(out.data + before, out.len - before, &r, NULL), PROTO_OK);
    cr_assert_eq(r.id.num, 41);
    proto_buf_destroy(&in);
    proto_buf_destroy(&out);
    eng_local_destroy(&l);
}

Test(local, ping_models_and_the_ops_it_has_no_state_for)
{
    eng_local_t *l = s_new(S_POLICY, 1);
    char hash[ENG_SNAPSHOT_HASH_HEX];
    uint64_t version = eng_local_version(l, hash);
    proto_buf_t in, out;
    proto_buf_init(&in, 256);
    proto_buf_init(&out, 256);
    proto_request_t req;
    proto_reply_t r;

    proto_request_init(&req, PROTO_OP_PING);
    cr_assert_eq(proto_request_encode(&in, &req), PROTO_OK);
    s_ask(l, 0, &in, &out, &r);
    cr_assert(r.ok);
    cr_assert_eq(r.policy_version, version);
    cr_assert(s_str_eq(r.policy_hash, hash));

    proto_buf_reset(&in);
    proto_request_init(&req, PROTO_OP_MODELS);
    cr_assert_eq(proto_request_encode(&in, &req), PROTO_OK);
    s_ask(l, 0, &in, &out, &r);
    cr_assert(r.ok);
    cr_assert_gt(out.len, 1000, "the models list is the catalog's");

    static const struct {
        proto_op_t op;
        hpp_status_t status;
    } refused[] = {
        {PROTO_OP_STATS, HPP_E_UNKNOWN_OP},
        {PROTO_OP_RELOAD, HPP_E_UNKNOWN_OP},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        proto_buf_reset(&in);
        proto_request_init(&req, refused[i].op);
        cr_assert_eq(proto_request_encode(&in, &req), PROTO_OK);
        s_ask(l, 0, &in, &out, &r);
        cr_assert_not(r.ok);
        cr_assert_eq(r.status, refused[i].status, "op %s", proto_op_name(refused[i].op));
        cr_assert(memmem(r.message.ptr, r.message.len, "--local-engine", 14));
    }

    /* A reader slot the engine was not made with: refused, nothing touched. */
    proto_buf_reset(&in);
    proto_request_init(&req, PROTO_OP_PING);
    cr_assert_eq(proto_request_encode(&in, &req), PROTO_OK);
    cr_assert_eq(eng_local_readers(l), 1);
    s_ask(l, 1, &in, &out, &r);
    cr_assert_eq(r.status, HPP_E_INTERNAL);

    /* Not msgpack at all, then a map with an unknown op. */
    proto_buf_reset(&out);
    cr_assert(eng_local_answer(l, 0, "\xc1", 1, &out));
    cr_assert_eq(proto_reply_decode(out.data, out.len, &r, NULL), PROTO_OK);
    cr_assert_not(r.ok);
    static const char unknown[] = "\x82\xa1v\x01\xa2op\xa4nope";
    proto_buf_reset(&out);
    cr_assert(eng_local_answer(l, 0, unknown, sizeof unknown - 1, &out));
    cr_assert_eq(proto_reply_decode(out.data, out.len, &r, NULL), PROTO_OK);
    cr_assert_not(r.ok);
    cr_assert_eq(r.status, HPP_E_UNKNOWN_OP);

    proto_buf_destroy(&in);
    proto_buf_destroy(&out);
    eng_local_destroy(&l);
}

/* Readers answering while the main thread reloads. */
typedef struct {
    eng_local_t *l;
    size_t reader;
    atomic_bool *stop;
    atomic_long answered;
    atomic_bool failed;
} s_reader_arg_t;

static void *s_reader(void *arg)
{
    s_reader_arg_t *a = arg;
    proto_buf_t in, out;
    proto_buf_init(&in, 256);
    proto_buf_init(&out, 256);
    while (!atomic_load(a->stop)) {
        long n = atomic_load(&a->answered);
        s_route_frame(&in, (uint64_t)n + 1, 1000 + n % 5000);
        proto_reply_t r;
        proto_buf_reset(&out);
        if (!eng_local_answer(a->l, a->reader, in.data, in.len, &out) ||
            proto_reply_decode(out.data, out.len, &r, NULL) != PROTO_OK || !r.ok ||
            r.id.num != (uint64_t)n + 1) {
            atomic_store(&a->failed, true);
            break;
        }
        atomic_store(&a->answered, n + 1);
    }
    proto_buf_destroy(&in);
    proto_buf_destroy(&out);
    return NULL;
}

Test(local, readers_answer_while_another_thread_reloads)
{
    eng_local_t *l = s_new(S_POLICY, 2);
    atomic_bool stop = false;
    s_reader_arg_t args[2] = {{l, 0, &stop, 0, false}, {l, 1, &stop, 0, false}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, s_reader, &args[i]);
    }
    /* Until each reader has answered across several reloads (a reader
     * that fails stops, and its count with it). */
    uint64_t reloads = 0;
    while ((reloads < 5 || atomic_load(&args[0].answered) < 500 ||
            atomic_load(&args[1].answered) < 500) &&
           !atomic_load(&args[0].failed) && !atomic_load(&args[1].failed)) {
        cr_assert(eng_local_reload(l, &s_log));
        reloads++;
        cr_assert_lt(reloads, 5000, "the readers stopped: %ld and %ld answered",
                     atomic_load(&args[0].answered), atomic_load(&args[1].answered));
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        cr_assert_not(atomic_load(&args[i].failed), "reader %d got a bad answer", i);
    }
    char hash[ENG_SNAPSHOT_HASH_HEX];
    cr_assert_eq(eng_local_version(l, hash), reloads + 1);
    eng_local_destroy(&l);
}

/* Through sc_engine: the reply comes in the loop, not inside the call. */
static int s_replies;
static char s_model[128];

static void s_on_reply(void *arg, sc_eng_result_t res, const proto_reply_t *reply, const void *raw,
                       size_t len)
{
    (void)arg;
    (void)raw;
    (void)len;
    cr_assert_eq(res, SC_ENG_REPLY);
    cr_assert(reply->ok);
    snprintf(s_model, sizeof s_model, "%.*s", (int)reply->model.len, reply->model.ptr);
    s_replies++;
}

Test(local, a_call_through_the_sidecars_engine_comes_back_in_the_loop)
{
    eng_local_t *l = s_new(S_POLICY, 1);
    struct event_base *base = event_base_new();
    const char *eps[1] = {"local"};
    char err[256];
    sc_engine_config_t ec = {.endpoints = eps,
                             .nendpoints = 1,
                             .kind = SC_LINK_LOCAL,
                             .local = l,
                             .reader = 0,
                             .timeout_ms = 1000,
                             .ping_ms = 1000};
    sc_engine_t *eng = sc_engine_new(base, &ec, err, sizeof err);
    cr_assert_not_null(eng, "%s", err);
    cr_assert_eq(sc_engine_link_kind(eng), SC_LINK_LOCAL);
    cr_assert_eq(sc_engine_up(eng), 1, "no connection to wait for");
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.features.prompt_tokens = 1200;
    for (int i = 1; i <= 3; i++) {
        cr_assert_neq(sc_engine_call(eng, &req, s_on_reply, NULL, NULL), 0);
        cr_assert_eq(s_replies, i - 1, "the callback ran inside the call");
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        cr_assert_eq(s_replies, i, "no reply after one turn");
    }
    cr_assert_neq(s_model[0], '\0');
    cr_assert_eq(sc_engine_inflight(eng), 0);
    sc_metrics_engine_t st;
    sc_engine_state(eng, 0, &st);
    cr_assert(st.up);
    cr_assert(st.policy_known, "the first turn's ping was answered");
    cr_assert_eq(st.policy_version, 1);
    sc_engine_destroy(&eng);
    event_base_free(base);
    eng_local_destroy(&l);
}
