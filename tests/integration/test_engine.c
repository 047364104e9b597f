/* test_engine.c - the real hpp-engine binary over ZeroMQ on 127.0.0.1.
 *
 * Each test starts build/hpp-engine on tcp://127.0.0.1:0 with the bundled
 * policy and catalog (or a copy it edits), waits for the readiness line and
 * a ping, talks to it with the C client, raw ZeroMQ sockets and the Python
 * gateway example, and stops it by PID. Covered: every op, REQ / DEALER /
 * DEALER-with-delimiter shapes, pipelining with out-of-order ids, malformed
 * frames (each answered and counted, the engine keeps serving), reload with
 * a good and a bad policy under concurrent load (no failed request, the old
 * policy kept on a bad one, stats showing the failure), SIGHUP and --watch
 * reloads, the decision log, graceful shutdown, and the command line.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <zmq.h>

#include "harness.h"
#include "hpp_client.h"

#define S_READY "hpp-engine: ready on "
#define S_TIMEOUT 5000

/* A running engine. */
typedef struct {
    hh_proc_t proc;     /* the process */
    char endpoint[256]; /* where it listens */
} s_engine_t;

/* Starts the engine with `extra` flags (NULL-terminated, may be NULL) and
 * waits for the readiness line and a successful ping. */
static void s_start(s_engine_t *e, const char *const *extra)
{
    char *argv[32];
    int n = 0;
    argv[n++] = hh_bin("hpp-engine");
    argv[n++] = "--listen";
    argv[n++] = "tcp://127.0.0.1:0";
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (int i = 0; extra && extra[i] && n < 30; i++) {
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    cr_assert_eq(hh_spawn(&e->proc, argv, "engine"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&e->proc, S_READY, 15000, line, sizeof line), 0,
                 "engine did not become ready (log: %s)", e->proc.log);
    snprintf(e->endpoint, sizeof e->endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
    cr_assert(strncmp(e->endpoint, "tcp://127.0.0.1:", 16) == 0, "%s", e->endpoint);
    /* Readiness probe: the ping op. */
    char err[256];
    hpp_client_t *c = hpp_client_new(e->endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    hpp_reply_t rep = {0};
    int rc = hpp_client_op(c, PROTO_OP_PING, &rep, S_TIMEOUT);
    cr_assert_eq(rc, HPP_OK, "ping: %s %s", hpp_strerror(rc), hpp_client_errstr(c));
    cr_assert_geq(rep.r.policy_version, 1);
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
}

/* Stops the engine; it must exit 0. */
static void s_stop(s_engine_t *e)
{
    int rc = hh_stop(&e->proc);
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

static bool s_is(hpp_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* A route with one hint; returns the client's rc and leaves the reply. */
static int s_route_hint(hpp_client_t *c, const char *hint, hpp_reply_t *rep)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 500;
    f.hints[0] = s_s(hint);
    f.nhints = 1;
    return hpp_client_route(c, &f, rep, S_TIMEOUT);
}

/* Any reply frame as a JSON object (caller json_decref). */
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

static json_t *s_stats(hpp_client_t *c)
{
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_STATS, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    json_t *j = s_as_json(rep.data, rep.len);
    hpp_reply_close(&rep);
    return j;
}

static long long s_jint(json_t *root, const char *path)
{
    json_t *v = root;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) {
        v = json_object_get(v, tok);
    }
    cr_assert(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

/* Every op ------------------------------------------------------------------- */

Test(engine, each_op_with_the_c_client)
{
    s_engine_t e;
    s_start(&e, NULL);
    hpp_client_t *c = s_client(&e);
    hpp_reply_t rep = {0};

    /* route: the default policy sends solidity to the local model, free. */
    cr_assert_eq(s_route_hint(c, "solidity", &rep), HPP_OK, "%s", hpp_client_errstr(c));
    cr_assert(s_is(rep.r.model, "ollama/solidity-master:2"));
    cr_assert(s_is(rep.r.provider, "ollama"));
    cr_assert(s_is(rep.r.rule, "solidity"));
    cr_assert_eq(rep.r.cost.total, 0);
    /* code goes to the standard tier with a cost and fallbacks */
    cr_assert_eq(s_route_hint(c, "code", &rep), HPP_OK);
    cr_assert(s_is(rep.r.tier, "standard"));
    cr_assert_gt(rep.r.cost.total, 0);
    cr_assert_eq(rep.r.cost.total,
                 rep.r.cost.input + rep.r.cost.output + rep.r.cost.cache + rep.r.cost.fees);
    cr_assert_gt(rep.r.nfallbacks, 0);

    /* route errors carry their code */
    hpp_features_t f;
    hpp_features_init(&f);
    f.model = s_s("acme/no-such-model");
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert_eq(rep.r.status, HPP_E_UNKNOWN_MODEL);
    f.model = s_s("openai/gpt-5:free");
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert_eq(rep.r.status, HPP_E_NO_FREE_VARIANT);

    /* explain: the decision plus a trace whose chosen candidate is the answer */
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_EXPLAIN);
    req.features.prompt_tokens = 300;
    req.features.hints[0] = s_s("chat");
    req.features.nhints = 1;
    cr_assert_eq(hpp_client_call(c, &req, &rep, S_TIMEOUT), HPP_OK);
    json_t *j = s_as_json(rep.data, rep.len);
    json_t *cands = json_object_get(json_object_get(j, "trace"), "candidates");
    cr_assert(json_array_size(cands) > 0);
    bool chosen = false;
    for (size_t i = 0; i < json_array_size(cands); i++) {
        json_t *cd = json_array_get(cands, i);
        if (strcmp(json_string_value(json_object_get(cd, "reason")), "chosen") == 0) {
            chosen = true;
            cr_assert_str_eq(json_string_value(json_object_get(cd, "model")),
                             json_string_value(json_object_get(j, "model")));
            cr_assert_not_null(json_object_get(cd, "cost_pusd"));
        }
    }
    cr_assert(chosen);
    json_decref(j);
    /* A candidate refused before its cost was estimated has no cost (not $0). */
    req.features.prompt_tokens = 150000;
    cr_assert_eq(hpp_client_call(c, &req, &rep, S_TIMEOUT), HPP_OK);
    j = s_as_json(rep.data, rep.len);
    cands = json_object_get(json_object_get(j, "trace"), "candidates");
    size_t refused = 0;
    for (size_t i = 0; i < json_array_size(cands); i++) {
        json_t *cd = json_array_get(cands, i);
        if (strcmp(json_string_value(json_object_get(cd, "reason")), "context") == 0) {
            refused++;
            cr_assert_null(json_object_get(cd, "cost_usd"));
            cr_assert_null(json_object_get(cd, "cost_pusd"));
        }
    }
    cr_assert_gt(refused, 0, "no candidate too small for 150,000 tokens");
    json_decref(j);

    /* models: every listed model is well formed, solidity-master is free */
    cr_assert_eq(hpp_client_op(c, PROTO_OP_MODELS, &rep, S_TIMEOUT), HPP_OK);
    proto_models_iter_t it;
    proto_error_t perr;
    cr_assert_eq(proto_models_iter_init(&it, rep.data, rep.len, &perr), PROTO_OK, "%s", perr.msg);
    proto_model_info_t mi;
    int n = 0;
    bool saw_local = false;
    while (proto_models_iter_next(&it, &mi, &perr) == 1) {
        cr_assert_gt(mi.id.len, 0);
        cr_assert_geq(mi.endpoints, n == 0 ? 0 : 1, "only hpprouter/auto, first, has none");
        if (s_is(mi.id, "ollama/solidity-master:2")) {
            saw_local = mi.free;
        }
        n++;
    }
    cr_assert_geq(n, 5);
    cr_assert(saw_local);

    /* ping, reload (unchanged files: ok, next version), stats */
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, S_TIMEOUT), HPP_OK);
    cr_assert_eq(rep.r.policy_version, 1);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_RELOAD, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    cr_assert_eq(rep.r.policy_version, 2);
    hpp_reply_close(&rep);
    j = s_stats(c);
    cr_assert_eq(s_jint(j, "policy_version"), 2);
    cr_assert_eq(s_jint(j, "requests.route"), 4);
    cr_assert_eq(s_jint(j, "requests.explain"), 2); /* the two above */
    cr_assert_eq(s_jint(j, "requests.models"), 1);
    cr_assert_eq(s_jint(j, "requests.reload"), 1);
    cr_assert_geq(s_jint(j, "requests.ping"), 2); /* s_start's probe too */
    cr_assert_eq(s_jint(j, "errors.unknown_model"), 1);
    cr_assert_eq(s_jint(j, "errors.no_free_variant"), 1);
    cr_assert_eq(s_jint(j, "reloads_ok"), 1);
    cr_assert_eq(s_jint(j, "malformed"), 0);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "last_reload"), "ok")));
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "last_reload"), "trigger")), "op");
    json_decref(j);
    hpp_client_destroy(&c);
    s_stop(&e);
}

/* Frames ---------------------------------------------------------------------- */

/* Receives one whole message into frames (each a malloc'd copy). */
static int s_recv_all(void *sock, char **frames, size_t *lens, int max, int timeout_ms)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        return -1;
    }
    int n = 0;
    int more = 1;
    while (more && n < max) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        cr_assert_geq(zmq_msg_recv(&m, sock, 0), 0);
        lens[n] = zmq_msg_size(&m);
        frames[n] = malloc(lens[n] + 1);
        memcpy(frames[n], zmq_msg_data(&m), lens[n]);
        frames[n][lens[n]] = '\0';
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        n++;
    }
    return n;
}

/* Sends `nparts` frames, receives the reply, checks its shape (a delimiter
 * first when `delim`) and returns the decoded error code ("ok" when ok). */
static void s_exchange(void *sock, const char *const *parts, const size_t *lens, int nparts,
                       bool delim, const char *want_code, const char *want_msg)
{
    for (int i = 0; i < nparts; i++) {
        cr_assert_geq(zmq_send(sock, parts[i], lens[i], i + 1 < nparts ? ZMQ_SNDMORE : 0), 0);
    }
    char *frames[4];
    size_t flens[4];
    int n = s_recv_all(sock, frames, flens, 4, S_TIMEOUT);
    cr_assert_eq(n, delim ? 2 : 1, "reply has %d frames", n);
    if (delim) {
        cr_assert_eq(flens[0], 0, "first reply frame is the empty delimiter");
    }
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(frames[n - 1], flens[n - 1], &r, &err), PROTO_OK, "%s",
                 err.msg);
    if (strcmp(want_code, "ok") == 0) {
        cr_assert(r.ok);
    } else {
        cr_assert(!r.ok);
        cr_assert(s_is(r.code, want_code), "code %.*s, want %s", (int)r.code.len, r.code.ptr,
                  want_code);
        cr_assert(memmem(r.message.ptr, r.message.len, want_msg, strlen(want_msg)),
                  "message '%.*s' lacks '%s'", (int)r.message.len, r.message.ptr, want_msg);
    }
    for (int i = 0; i < n; i++) {
        free(frames[i]);
    }
}

static void *s_raw_socket(void *ctx, int type, const char *ep)
{
    void *s = zmq_socket(ctx, type);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(s, ep), 0);
    return s;
}

Test(engine, socket_shapes_and_malformed_frames_are_answered_and_counted)
{
    s_engine_t e;
    s_start(&e, NULL);
    void *ctx = zmq_ctx_new();
    char ping[64];
    proto_buf_t pb;
    proto_buf_init_fixed(&pb, ping, sizeof ping);
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_PING);
    proto_request_encode(&pb, &req);

    /* REQ: ZeroMQ adds the delimiter; the REQ socket strips it on reply. */
    void *reqs = s_raw_socket(ctx, ZMQ_REQ, e.endpoint);
    const char *p1[] = {pb.data};
    size_t l1[] = {pb.len};
    s_exchange(reqs, p1, l1, 1, false, "ok", "");
    const char *garbage[] = {"hello"};
    size_t glen[] = {5};
    s_exchange(reqs, garbage, glen, 1, false, "bad_request", "expected a map");

    /* DEALER bare and with delimiter. */
    void *d = s_raw_socket(ctx, ZMQ_DEALER, e.endpoint);
    s_exchange(d, p1, l1, 1, false, "ok", "");
    const char *p2[] = {"", pb.data};
    size_t l2[] = {0, pb.len};
    s_exchange(d, p2, l2, 2, true, "ok", "");

    /* Multipart garbage, in both shapes. */
    const char *m3[] = {"a", "b", "c"};
    size_t ml3[] = {1, 1, 1};
    s_exchange(d, m3, ml3, 3, false, "bad_request", "envelope: 3 frames");
    const char *m4[] = {"", "x", "y"};
    size_t ml4[] = {0, 1, 1};
    s_exchange(d, m4, ml4, 3, true, "bad_request", "envelope: 3 frames");

    /* Empty body, oversized body, unknown op. */
    const char *empty[] = {""};
    size_t el[] = {0};
    s_exchange(d, empty, el, 1, false, "bad_request", "empty frame");
    size_t bign = PROTO_MAX_FRAME + 100;
    char *big = calloc(1, bign);
    big[0] = (char)0x80;
    const char *bp[] = {big};
    s_exchange(d, bp, &bign, 1, false, "bad_request", "exceeds 65536");
    free(big);
    const char unk[] = "\x82\xa1v\x01\xa2op\xa4nope";
    const char *up[] = {unk};
    size_t ul[] = {sizeof unk - 1};
    s_exchange(d, up, ul, 1, false, "unknown_op", "unknown operation \"nope\"");

    /* A client that vanishes right after sending. */
    void *gone = s_raw_socket(ctx, ZMQ_DEALER, e.endpoint);
    zmq_send(gone, pb.data, pb.len, 0);
    zmq_close(gone);

    /* Still serving, and every malformed frame was counted. */
    hpp_client_t *c = s_client(&e);
    hpp_reply_t rep = {0};
    cr_assert_eq(s_route_hint(c, "code", &rep), HPP_OK);
    hpp_reply_close(&rep);
    json_t *j = s_stats(c);
    cr_assert_eq(s_jint(j, "malformed"), 6, "garbage, 2 envelopes, empty, oversized, unknown op");
    cr_assert_eq(s_jint(j, "errors.bad_request"), 5);
    cr_assert_eq(s_jint(j, "errors.unknown_op"), 1);
    cr_assert_geq(s_jint(j, "dropped"), 0);
    json_decref(j);
    hpp_client_destroy(&c);
    zmq_close(reqs);
    zmq_close(d);
    zmq_ctx_term(ctx);
    s_stop(&e);
}

/* Pipelining --------------------------------------------------------------------- */

Test(engine, pipelining_with_out_of_order_ids)
{
    s_engine_t e;
    s_start(&e, NULL);
    hpp_client_t *c = s_client(&e);
    enum { N = 1000 }; /* below HPP_CLIENT_STASH: reverse order stashes N-1 replies */
    static proto_id_t ids[N];
    for (int i = 0; i < N; i++) {
        proto_request_t req;
        proto_request_init(&req, PROTO_OP_ROUTE);
        req.features.prompt_tokens = 100 + i;
        req.features.hints[0] = s_s(i % 2 ? "solidity" : "code");
        req.features.nhints = 1;
        if (i % 3 == 0) { /* string ids too */
            static char names[N][16];
            snprintf(names[i], sizeof names[i], "r-%d", i);
            req.id.kind = PROTO_ID_STR;
            req.id.str = s_s(names[i]);
        } else {
            req.id = proto_id_uint(1000000 + (uint64_t)i);
        }
        cr_assert_eq(hpp_client_send(c, &req, S_TIMEOUT), HPP_OK);
        ids[i] = req.id;
    }
    /* Collect in reverse order: every reply is stashed until asked for. */
    for (int i = N - 1; i >= 0; i--) {
        hpp_reply_t rep = {0};
        cr_assert_eq(hpp_client_recv_id(c, &ids[i], &rep, S_TIMEOUT), HPP_OK, "id %d: %s", i,
                     hpp_client_errstr(c));
        cr_assert(proto_id_equal(&rep.r.id, &ids[i]));
        cr_assert(rep.r.ok);
        bool local = s_is(rep.r.model, "ollama/solidity-master:2");
        cr_assert_eq(local, i % 2 == 1, "request %d got %.*s", i, (int)rep.r.model.len,
                     rep.r.model.ptr);
        hpp_reply_close(&rep);
    }
    cr_assert_eq(hpp_client_dropped(c), 0);
    hpp_client_destroy(&c);
    s_stop(&e);
}

/* The Python gateway ----------------------------------------------------------------- */

static char *s_python(void)
{
    /* Debian's interpreter has python3-zmq and python3-msgpack. */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

Test(engine, python_gateway_example)
{
    s_engine_t e;
    s_start(&e, NULL);
    char dir[256], reqs[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(reqs, sizeof reqs, "%s/requests.jsonl", dir);
    cr_assert_eq(hh_write_file(reqs,
                               "{\"prompt_tokens\": 900, \"hints\": [\"solidity\"]}\n"
                               "{\"prompt_tokens\": 120, \"text\": \"pragma solidity ^0.8.0;\"}\n"
                               "{\"op\": \"ping\"}\n"
                               "{\"prompt_tokens\": 10, \"model\": \"acme/nope\"}\n"),
                 0);
    char *argv[] = {
        s_python(), "proto/examples/gateway.py", "--engine", e.endpoint, "--requests", reqs, NULL};
    char *out = NULL;
    int rc = hh_run(argv, "gateway", 20000, &out);
    cr_assert_eq(rc, 1, "one request is an error, so exit 1; got %d:\n%s", rc, out);
    /* One JSON line per request, in request order. */
    const char *want_model[] = {"ollama/solidity-master:2", "ollama/solidity-master:2", NULL, NULL};
    int line = 0;
    for (char *s = strtok(out, "\n"); s; s = strtok(NULL, "\n")) {
        if (s[0] != '{') {
            continue;
        }
        json_error_t jerr;
        json_t *j = json_loads(s, 0, &jerr);
        cr_assert_not_null(j, "%s: %s", jerr.text, s);
        cr_assert_lt(line, 4);
        cr_assert_eq(json_integer_value(json_object_get(j, "id")), line + 1);
        if (want_model[line]) {
            cr_assert_str_eq(json_string_value(json_object_get(j, "model")), want_model[line]);
        } else if (line == 2) {
            cr_assert(json_is_true(json_object_get(j, "ok")));
        } else {
            cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                "unknown_model");
        }
        json_decref(j);
        line++;
    }
    cr_assert_eq(line, 4, "gateway printed %d replies", line);
    free(out);

    /* One request over REQ, and the models op. */
    char *argv2[] = {s_python(), "proto/examples/gateway.py", "--engine", e.endpoint, "--socket",
                     "req",      "--prompt-tokens",           "50",       "--hint",   "code",
                     NULL};
    cr_assert_eq(hh_run(argv2, "gateway", 20000, &out), 0, "%s", out);
    cr_assert(strstr(out, "\"tier\": \"standard\""), "%s", out);
    free(out);
    char *argv3[] = {s_python(), "proto/examples/gateway.py",
                     "--engine", e.endpoint,
                     "--socket", "dealer-delim",
                     "--op",     "models",
                     NULL};
    cr_assert_eq(hh_run(argv3, "gateway", 20000, &out), 0, "%s", out);
    cr_assert(strstr(out, "\"pricing\""), "%s", out);
    free(out);
    unlink(reqs);
    rmdir(dir);
    s_stop(&e);
}

/* Reload under load ----------------------------------------------------------------- */

typedef struct {
    const char *endpoint;  /* engine */
    atomic_bool *stop;     /* set by the test */
    long ok;               /* answered decisions */
    long failed;           /* anything else */
    char first_error[256]; /* what the first failure was */
} s_load_t;

static void *s_load_main(void *arg)
{
    s_load_t *l = arg;
    char err[256];
    hpp_client_t *c = hpp_client_new(l->endpoint, NULL, err, sizeof err);
    if (!c) {
        l->failed++;
        return NULL;
    }
    for (long i = 0; !atomic_load(l->stop); i++) {
        hpp_reply_t rep = {0};
        int rc = s_route_hint(c, i % 2 ? "code" : "chat", &rep);
        if (rc == HPP_OK && rep.r.ok && rep.r.model.len > 0) {
            l->ok++;
        } else {
            if (l->failed++ == 0) {
                snprintf(l->first_error, sizeof l->first_error, "%s: %s", hpp_strerror(rc),
                         hpp_client_errstr(c));
            }
        }
        hpp_reply_close(&rep);
    }
    hpp_client_destroy(&c);
    return NULL;
}

/* Replaces `from` by `to` once in the policy text. */
static char *s_edit(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "policy lacks '%s'", from);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static const char *s_solidity_model(hpp_client_t *c, char *buf, size_t n)
{
    hpp_reply_t rep = {0};
    cr_assert_eq(s_route_hint(c, "solidity", &rep), HPP_OK, "%s", hpp_client_errstr(c));
    snprintf(buf, n, "%.*s", (int)rep.r.model.len, rep.r.model.ptr);
    hpp_reply_close(&rep);
    return buf;
}

Test(engine, reload_good_and_bad_policy_under_load, .timeout = 60)
{
    char dir[256], policy[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(policy, sizeof policy, "%s/test.policy", dir);
    char *orig = hh_read_file("policies/default.policy", NULL);
    cr_assert_not_null(orig);
    cr_assert_eq(hh_write_file(policy, orig), 0);
    const char *flags[] = {"--policy", policy, NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    char model[128];
    cr_assert_str_eq(s_solidity_model(c, model, sizeof model), "ollama/solidity-master:2");

    atomic_bool stop = false;
    s_load_t load[2] = {{.endpoint = e.endpoint, .stop = &stop},
                        {.endpoint = e.endpoint, .stop = &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, s_load_main, &load[i]);
    }
    hh_sleep_ms(200);

    /* A good edit: solidity now prefers the other local model. */
    char *good =
        s_edit(orig, "prefer \"ollama/solidity-master:2\"", "prefer \"ollama/gpt-oss:120b\"");
    cr_assert_eq(hh_write_file(policy, good), 0);
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_RELOAD, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    cr_assert_eq(rep.r.policy_version, 2);
    cr_assert_str_eq(s_solidity_model(c, model, sizeof model), "ollama/gpt-oss:120b");
    hh_sleep_ms(200);

    /* A bad edit: rejected with located diagnostics, version 2 keeps serving. */
    char *bad = s_edit(good, "    tier standard\n    prefer", "    tier standrd\n    prefer");
    cr_assert_eq(hh_write_file(policy, bad), 0);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_RELOAD, &rep, S_TIMEOUT), HPP_ERR_ENGINE);
    cr_assert_eq(rep.r.status, HPP_E_BAD_REQUEST);
    cr_assert_eq(rep.r.policy_version, 2);
    json_t *j = s_as_json(rep.data, rep.len);
    json_t *diags = json_object_get(j, "diagnostics");
    cr_assert_gt(json_array_size(diags), 0);
    const char *d0 = json_string_value(json_array_get(diags, 0));
    cr_assert(strstr(d0, "test.policy:") && strstr(d0, ": error: "), "%s", d0);
    json_decref(j);
    cr_assert_str_eq(s_solidity_model(c, model, sizeof model), "ollama/gpt-oss:120b");
    j = s_stats(c);
    cr_assert_eq(s_jint(j, "policy_version"), 2);
    cr_assert_eq(s_jint(j, "reloads_ok"), 1);
    cr_assert_eq(s_jint(j, "reloads_failed"), 1);
    json_t *last = json_object_get(j, "last_reload");
    cr_assert(json_is_false(json_object_get(last, "ok")));
    cr_assert_gt(json_array_size(json_object_get(last, "diagnostics")), 0);
    json_decref(j);
    cr_assert_gt(hh_count_lines(&e.proc, "reload rejected"), 0, "the rejection is logged");
    hh_sleep_ms(200);

    /* SIGHUP with the original policy back: version 3, solidity-master again. */
    cr_assert_eq(hh_write_file(policy, orig), 0);
    cr_assert_eq(hh_signal(&e.proc, SIGHUP), 0);
    long long deadline = hh_now_ms() + S_TIMEOUT;
    long long version = 0;
    while (hh_now_ms() < deadline) {
        j = s_stats(c);
        version = s_jint(j, "policy_version");
        json_decref(j);
        if (version == 3) {
            break;
        }
        hh_sleep_ms(20);
    }
    cr_assert_eq(version, 3, "SIGHUP did not reload");
    cr_assert_str_eq(s_solidity_model(c, model, sizeof model), "ollama/solidity-master:2");
    hh_sleep_ms(200);

    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(load[i].failed, 0, "load thread %d: %ld failed (%s)", i, load[i].failed,
                     load[i].first_error);
        cr_assert_gt(load[i].ok, 50, "load thread %d made only %ld requests", i, load[i].ok);
    }
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    s_stop(&e);
    free(orig);
    free(good);
    free(bad);
    unlink(policy);
    rmdir(dir);
}

Test(engine, watch_reloads_on_file_change)
{
    char dir[256], policy[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(policy, sizeof policy, "%s/w.policy", dir);
    char *orig = hh_read_file("policies/default.policy", NULL);
    cr_assert_eq(hh_write_file(policy, orig), 0);
    const char *flags[] = {"--policy", policy, "--watch", "--watch-ms", "50", NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    char *good =
        s_edit(orig, "prefer \"ollama/solidity-master:2\"", "prefer \"ollama/gpt-oss:120b\"");
    cr_assert_eq(hh_write_file(policy, good), 0);
    char model[128] = "";
    long long deadline = hh_now_ms() + S_TIMEOUT;
    while (hh_now_ms() < deadline &&
           strcmp(s_solidity_model(c, model, sizeof model), "ollama/gpt-oss:120b") != 0) {
        hh_sleep_ms(20);
    }
    cr_assert_str_eq(model, "ollama/gpt-oss:120b", "the edit was not picked up");
    json_t *j = s_stats(c);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "last_reload"), "trigger")), "watch");
    json_decref(j);
    hpp_client_destroy(&c);
    s_stop(&e);
    free(orig);
    free(good);
    unlink(policy);
    rmdir(dir);
}

/* Decision log and shutdown ----------------------------------------------------------- */

Test(engine, decision_log_records_the_resolved_model)
{
    char dir[256], logpath[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(logpath, sizeof logpath, "%s/decisions.jsonl", dir);
    const char *flags[] = {"--decision-log", logpath, NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    hpp_reply_t rep = {0};
    cr_assert_eq(s_route_hint(c, "solidity", &rep), HPP_OK);
    cr_assert_eq(s_route_hint(c, "code", &rep), HPP_OK);
    hpp_features_t f;
    hpp_features_init(&f);
    f.model = s_s("bad\"model\n");
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_ERR_ENGINE);
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    s_stop(&e); /* flushes */
    char *text = hh_read_file(logpath, NULL);
    cr_assert_not_null(text);
    /* Workers flush their own buffers: lines are complete but not in order. */
    int lines = 0, solidity = 0, unknown = 0;
    for (char *s = strtok(text, "\n"); s; s = strtok(NULL, "\n"), lines++) {
        json_error_t jerr;
        json_t *j = json_loads(s, 0, &jerr);
        cr_assert_not_null(j, "line %d is not JSON (%s): %s", lines + 1, jerr.text, s);
        const char *status = json_string_value(json_object_get(j, "status"));
        const char *model = json_string_value(json_object_get(j, "model"));
        if (model && strcmp(model, "ollama/solidity-master:2") == 0) {
            cr_assert_str_eq(status, "ok");
            cr_assert_str_eq(json_string_value(json_object_get(j, "requested")), "hpprouter/auto");
            solidity++;
        } else if (strcmp(status, "unknown_model") == 0) {
            cr_assert_str_eq(json_string_value(json_object_get(j, "requested")), "bad\"model\n");
            unknown++;
        } else {
            cr_assert_str_eq(status, "ok");
            cr_assert_str_eq(json_string_value(json_object_get(j, "tier")), "standard");
        }
        cr_assert(json_is_integer(json_object_get(j, "policy_version")));
        json_decref(j);
    }
    cr_assert_eq(solidity, 1);
    cr_assert_eq(unknown, 1);
    cr_assert_eq(lines, 3);
    free(text);
    unlink(logpath);
    rmdir(dir);
}

Test(engine, sigterm_answers_in_flight_requests_then_exits_0)
{
    s_engine_t e;
    s_start(&e, NULL);
    hpp_client_t *c = s_client(&e);
    enum { N = 500 };
    for (int i = 0; i < N; i++) {
        proto_request_t req;
        proto_request_init(&req, i % 10 ? PROTO_OP_ROUTE : PROTO_OP_EXPLAIN);
        req.features.prompt_tokens = i;
        cr_assert_eq(hpp_client_send(c, &req, S_TIMEOUT), HPP_OK);
    }
    cr_assert_eq(hh_signal(&e.proc, SIGTERM), 0);
    bool seen[N + 1] = {false};
    for (int i = 0; i < N; i++) {
        hpp_reply_t rep = {0};
        cr_assert_eq(hpp_client_recv(c, &rep, S_TIMEOUT), HPP_OK, "reply %d of %d: %s", i + 1, N,
                     hpp_client_errstr(c));
        cr_assert(rep.r.ok);
        cr_assert_eq(rep.r.id.kind, PROTO_ID_UINT);
        cr_assert(rep.r.id.num >= 1 && rep.r.id.num <= N && !seen[rep.r.id.num]);
        seen[rep.r.id.num] = true;
        hpp_reply_close(&rep);
    }
    cr_assert_eq(hh_wait_exit(&e.proc, S_TIMEOUT), 0, "log: %s", e.proc.log);
    cr_assert_gt(hh_count_lines(&e.proc, "SIGTERM: draining"), 0);
    hpp_client_destroy(&c);
}

/* Command line ------------------------------------------------------------------------- */

Test(engine_cli, help_version_and_bad_flags)
{
    char *out = NULL;
    char *help[] = {hh_bin("hpp-engine"), "--help", NULL};
    cr_assert_eq(hh_run(help, "cli", S_TIMEOUT, &out), 0);
    cr_assert(strstr(out, "--policy FILE") && strstr(out, "--decision-log FILE"), "%s", out);
    free(out);
    char *ver[] = {hh_bin("hpp-engine"), "--version", NULL};
    cr_assert_eq(hh_run(ver, "cli", S_TIMEOUT, &out), 0);
    cr_assert(strstr(out, "hpp-engine 0."), "%s", out);
    free(out);
    static const struct {
        const char *a, *b, *msg;
    } bad[] = {
        {"--threads", "0", "--threads: expected an integer 1..64, got '0'"},
        {"--threads", "many", "expected an integer"},
        {"--bogus", NULL, "unknown option '--bogus'"},
        {"--listen", "127.0.0.1:5555", "expected a ZeroMQ endpoint"},
        {"--listen", "tcp://not-an-address:x", "cannot bind"},
        {"--policy", "/nonexistent/x.policy", "x.policy"},
        {"--catalog", "/nonexistent/c.json", "c.json"},
        {"--policy", NULL, "--policy needs FILE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {hh_bin("hpp-engine"), (char *)bad[i].a, (char *)bad[i].b, NULL};
        int rc = hh_run(argv, "cli", 15000, &out);
        cr_assert_eq(rc, 2, "%s %s: exit %d\n%s", bad[i].a, bad[i].b ? bad[i].b : "", rc, out);
        cr_assert(strstr(out, bad[i].msg), "%s %s: '%s' not in\n%s", bad[i].a,
                  bad[i].b ? bad[i].b : "", bad[i].msg, out);
        free(out);
    }
}

Test(engine_cli, broken_policy_is_reported_with_locations_and_exit_2)
{
    char dir[256], policy[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(policy, sizeof policy, "%s/broken.policy", dir);
    cr_assert_eq(hh_write_file(policy, "tier free max $0\nroute x { tier nowhere }\n"), 0);
    char *out = NULL;
    char *argv[] = {hh_bin("hpp-engine"), "--policy",          policy,
                    "--listen",           "tcp://127.0.0.1:0", NULL};
    cr_assert_eq(hh_run(argv, "cli", 15000, &out), 2, "%s", out);
    cr_assert(strstr(out, "broken.policy:2:"), "no located error in\n%s", out);
    cr_assert_null(strstr(out, S_READY), "it must not claim to be ready");
    free(out);
    char *check[] = {hh_bin("hpp-engine"), "--check", NULL};
    cr_assert_eq(hh_run(check, "cli", 15000, &out), 0, "%s", out);
    cr_assert(strstr(out, "hpp-engine: ok"), "%s", out);
    free(out);
    unlink(policy);
    rmdir(dir);
}

Test(engine, route_workers_mode_gives_the_same_answers)
{
    const char *flags[] = {"--route-workers", "--threads", "3", NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    enum { N = 300 };
    static const char *const hints[] = {"solidity", "code", "chat"};
    static const char *const want[] = {"ollama/solidity-master:2", NULL, NULL};
    for (int i = 0; i < N; i++) {
        proto_request_t req;
        proto_request_init(&req, PROTO_OP_ROUTE);
        req.features.prompt_tokens = 100;
        req.features.hints[0] = s_s(hints[i % 3]);
        req.features.nhints = 1;
        cr_assert_eq(hpp_client_send(c, &req, S_TIMEOUT), HPP_OK);
    }
    int got = 0;
    for (int i = 0; i < N; i++) {
        hpp_reply_t rep = {0};
        cr_assert_eq(hpp_client_recv(c, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(c));
        int k = (int)((rep.r.id.num - 1) % 3);
        cr_assert(rep.r.ok);
        if (want[k]) {
            cr_assert(s_is(rep.r.model, want[k]));
        } else {
            cr_assert(s_is(rep.r.tier, k == 1 ? "standard" : "budget"), "hint %s: tier %.*s",
                      hints[k], (int)rep.r.tier.len, rep.r.tier.ptr);
        }
        got++;
        hpp_reply_close(&rep);
    }
    cr_assert_eq(got, N);
    json_t *j = s_stats(c);
    cr_assert_eq(s_jint(j, "threads"), 3);
    cr_assert_eq(s_jint(j, "requests.route"), N);
    json_decref(j);
    hpp_client_destroy(&c);
    s_stop(&e);
}
