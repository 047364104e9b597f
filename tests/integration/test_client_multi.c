/* test_client_multi.c - the C client (hpp_client.h) with several engines and
 * with CURVE, against real hpp-engine processes on 127.0.0.1.
 *
 * Covered: the options refused with a reason; three engines of which one is
 * killed (SIGKILL) under load, every request still answered within its
 * timeout; a hung engine (SIGSTOP) whose requests are resent to the others,
 * then dropped from the turn by the heartbeat; the late twin of a resent
 * request dropped by id; the examples (route_example, gateway.py) with
 * several --engine. CURVE against a CURVE ROUTER in this process with its
 * own ZAP allow-list (the client's handshake, key files and the examples'
 * flags, whatever the engine supports), and against hpp-engine itself when
 * its --help offers --curve-secret (SKIP otherwise): an allowed key is
 * served, an unknown key and a client without CURVE time out.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <zmq.h>

#include "harness.h"
#include "hpp_client.h"
#include "hpp_keys.h"

#define S_READY "hpp-engine: ready on "
#define S_TIMEOUT 5000

/* A running engine. */
typedef struct {
    hh_proc_t proc;     /* the process */
    char endpoint[256]; /* where it listens */
} s_engine_t;

/* Starts the engine with `extra` flags (NULL-terminated, may be NULL) and
 * waits for its readiness line. `probe`: also wait for a ping answered by a
 * plain client (not possible when the engine wants CURVE). */
static void s_start_with(s_engine_t *e, const char *const *extra, bool probe)
{
    char *argv[32];
    int n = 0;
    argv[n++] = hh_bin("hpp-engine");
    argv[n++] = "--listen";
    argv[n++] = "tcp://127.0.0.1:0";
    argv[n++] = "--threads";
    argv[n++] = "1";
    for (int i = 0; extra && extra[i] && n < 30; i++) {
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    cr_assert_eq(hh_spawn(&e->proc, argv, "engine"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&e->proc, S_READY, 15000, line, sizeof line), 0,
                 "engine did not become ready (log: %s)", e->proc.log);
    snprintf(e->endpoint, sizeof e->endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
    if (!probe) {
        return;
    }
    char err[256];
    hpp_client_t *c = hpp_client_new(e->endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    hpp_reply_t rep = {0};
    int rc = hpp_client_op(c, PROTO_OP_PING, &rep, S_TIMEOUT);
    cr_assert_eq(rc, HPP_OK, "ping: %s %s", hpp_strerror(rc), hpp_client_errstr(c));
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
}

static void s_start(s_engine_t *e)
{
    s_start_with(e, NULL, true);
}

/* Stops an engine whatever state it is in (stopped, killed, running). */
static void s_finish(s_engine_t *e)
{
    hh_signal(&e->proc, SIGCONT);
    hh_stop(&e->proc);
}

/* A client of `n` engines with a short resend and the given heartbeat. */
static hpp_client_t *s_multi(s_engine_t *const *engines, size_t n, int heartbeat_ms, int resend_ms)
{
    const char *eps[HPP_CLIENT_MAX_ENDPOINTS];
    for (size_t i = 0; i < n; i++) {
        eps[i] = engines[i]->endpoint;
    }
    hpp_client_opts_t o;
    hpp_client_opts_init(&o);
    o.endpoints = eps;
    o.nendpoints = n;
    o.heartbeat_ms = heartbeat_ms;
    o.resend_ms = resend_ms;
    char err[256];
    hpp_client_t *c = hpp_client_new_opts(&o, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

/* One route; checks the reply is ok and answers this request's id. */
static int s_route(hpp_client_t *c, int prompt_tokens, int timeout_ms)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = prompt_tokens;
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.features = f;
    hpp_reply_t rep = {0};
    int rc = hpp_client_call(c, &req, &rep, timeout_ms);
    if (rc == HPP_OK) {
        cr_assert(proto_id_equal(&rep.r.id, &req.id), "a reply to another request");
        cr_assert_gt(rep.r.model.len, 0);
    }
    hpp_reply_close(&rep);
    return rc;
}

static hpp_client_counters_t s_counters(const hpp_client_t *c)
{
    hpp_client_counters_t k;
    hpp_client_counters(c, &k);
    return k;
}

/* requests.route of one engine, asked by a client of that engine alone. */
static long long s_routes_of(const s_engine_t *e)
{
    char err[256];
    hpp_client_t *c = hpp_client_new(e->endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_STATS, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 4096), 0);
    proto_error_t perr;
    cr_assert_eq(proto_to_json(rep.data, rep.len, &b, &perr), PROTO_OK, "%s", perr.msg);
    json_error_t jerr;
    json_t *j = json_loads(b.data, 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    json_t *v = json_object_get(json_object_get(j, "requests"), "route");
    long long n = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    proto_buf_destroy(&b);
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    return n;
}

static char *s_python(void)
{
    /* Debian's interpreter has python3-zmq and python3-msgpack. */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

/* Options ------------------------------------------------------------------------ */

Test(client_opts, refused_with_a_reason)
{
    char dir[256], err[512];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    cr_assert_eq(hpp_key_generate(dir, "engine", err, sizeof err), 0, "%s", err);
    cr_assert_eq(hpp_key_generate(dir, "gw", err, sizeof err), 0, "%s", err);
    char pub[400], sec[400];
    snprintf(pub, sizeof pub, "%s/engine.pub", dir);
    snprintf(sec, sizeof sec, "%s/gw.sec", dir);
    const char *nine[9] = {"tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3",
                           "tcp://127.0.0.1:4", "tcp://127.0.0.1:5", "tcp://127.0.0.1:6",
                           "tcp://127.0.0.1:7", "tcp://127.0.0.1:8", "tcp://127.0.0.1:9"};
    const char *bad_ep[] = {"tcp://127.0.0.1:1", "127.0.0.1:5555"};
    const char *empty_ep[] = {"tcp://127.0.0.1:1", ""};
    static const struct {
        int n;         /* endpoints */
        int which;     /* 0 nine, 1 bad_ep, 2 empty_ep */
        int keys;      /* 0 none, 1 server only, 2 both, 3 secret readable by others */
        int heartbeat; /* heartbeat_ms */
        int resend;    /* resend_ms */
        const char *msg;
    } cases[] = {
        {0, 0, 0, 500, 100, "no endpoint"},
        {9, 0, 0, 500, 100, "9 endpoints, at most 8"},
        {2, 1, 0, 500, 100, "cannot connect to 127.0.0.1:5555"},
        {2, 2, 0, 500, 100, "endpoint 2 is empty"},
        {1, 0, 1, 500, 100, "CURVE needs both"},
        {1, 0, 3, 500, 100, "must not be readable by others (mode 644"},
        {1, 0, 0, -1, 100, "heartbeat of -1 ms"},
        {1, 0, 0, 500, -5, "resend after -5 ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hpp_client_opts_t o;
        hpp_client_opts_init(&o);
        o.endpoints = cases[i].which == 0 ? nine : cases[i].which == 1 ? bad_ep : empty_ep;
        o.nendpoints = (size_t)cases[i].n;
        o.heartbeat_ms = cases[i].heartbeat;
        o.resend_ms = cases[i].resend;
        if (cases[i].keys >= 1) {
            o.curve_server_key = pub;
        }
        if (cases[i].keys >= 2) {
            o.curve_secret_key = sec;
        }
        chmod(sec, cases[i].keys == 3 ? 0644 : 0600);
        err[0] = '\0';
        hpp_client_t *c = hpp_client_new_opts(&o, NULL, err, sizeof err);
        cr_assert_null(c, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].msg), "case %zu: '%s' not in '%s'", i, cases[i].msg, err);
    }
    cr_assert_null(hpp_client_new(NULL, NULL, err, sizeof err));
    cr_assert_str_eq(err, "no endpoint");
    /* 8 endpoints and both keys: accepted (connecting is asynchronous). */
    hpp_client_opts_t o;
    hpp_client_opts_init(&o);
    cr_assert_eq(o.heartbeat_ms, HPP_CLIENT_HEARTBEAT_MS);
    cr_assert_eq(o.resend_ms, HPP_CLIENT_RESEND_MS);
    o.endpoints = nine;
    o.nendpoints = 8;
    o.curve_server_key = pub;
    o.curve_secret_key = sec;
    hpp_client_t *c = hpp_client_new_opts(&o, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    hpp_client_destroy(&c);
    cr_assert_eq(test_tmpdir_remove(dir), 0, "%s", dir);
}

/* Several engines ---------------------------------------------------------------- */

typedef struct {
    const s_engine_t *const *engines; /* the three engines */
    atomic_int *phase;                /* 0 before the kill, 1 after, 2 stop */
    atomic_llong *after;              /* requests completed after the kill */
    long long answered, failed;       /* this thread's requests */
    long long worst_ms;               /* slowest request */
    hpp_client_counters_t counters;   /* the client's, at the end */
    char first_error[256];            /* the first failure */
} s_load_t;

#define S_LOAD_TIMEOUT 1000

static void *s_load_main(void *arg)
{
    s_load_t *l = arg;
    hpp_client_t *c = s_multi((s_engine_t *const *)l->engines, 3, 200, 50);
    for (int k = 0; atomic_load(l->phase) < 2; k++) {
        long long t0 = hh_now_ms();
        int rc = s_route(c, 100 + k % 3000, S_LOAD_TIMEOUT);
        long long took = hh_now_ms() - t0;
        l->worst_ms = took > l->worst_ms ? took : l->worst_ms;
        if (rc == HPP_OK) {
            l->answered++;
        } else if (l->failed++ == 0) {
            snprintf(l->first_error, sizeof l->first_error, "%s: %s", hpp_strerror(rc),
                     hpp_client_errstr(c));
        }
        if (atomic_load(l->phase) == 1) {
            atomic_fetch_add(l->after, 1);
        }
    }
    l->counters = s_counters(c);
    hpp_client_destroy(&c);
    return NULL;
}

Test(client_multi, three_engines_one_killed_every_request_answered, .timeout = 60)
{
    s_engine_t e[3];
    for (int i = 0; i < 3; i++) {
        s_start(&e[i]);
    }
    const s_engine_t *engines[3] = {&e[0], &e[1], &e[2]};
    atomic_int phase = 0;
    atomic_llong after = 0;
    enum { THREADS = 4 };
    s_load_t loads[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        loads[i] = (s_load_t){.engines = engines, .phase = &phase, .after = &after};
        cr_assert_eq(pthread_create(&th[i], NULL, s_load_main, &loads[i]), 0);
    }
    /* Load on all three, then SIGKILL one while requests are in flight. */
    long long deadline = hh_now_ms() + 20000;
    while (s_routes_of(&e[1]) < 200 && hh_now_ms() < deadline) {
        hh_sleep_ms(10);
    }
    cr_assert_eq(kill(e[1].proc.pid, SIGKILL), 0);
    atomic_store(&phase, 1);
    cr_assert_eq(hh_wait_exit(&e[1].proc, S_TIMEOUT), 128 + SIGKILL);
    /* Keep going until 2000 more requests are done after the kill. */
    deadline = hh_now_ms() + 30000;
    while (atomic_load(&after) < 2000 && hh_now_ms() < deadline) {
        hh_sleep_ms(10);
    }
    atomic_store(&phase, 2);
    long long answered = 0, failed = 0, worst = 0;
    size_t resent = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        answered += loads[i].answered;
        failed += loads[i].failed;
        worst = loads[i].worst_ms > worst ? loads[i].worst_ms : worst;
        resent += loads[i].counters.resent;
        cr_assert_eq(loads[i].failed, 0, "thread %d: %lld failed, first: %s", i, loads[i].failed,
                     loads[i].first_error);
        cr_assert_eq(loads[i].counters.dropped, 0);
    }
    cr_assert_geq(atomic_load(&after), 2000, "only %lld requests after the kill",
                  (long long)atomic_load(&after));
    cr_assert_lt(worst, S_LOAD_TIMEOUT);
    /* The survivors took the rest. */
    cr_assert_gt(s_routes_of(&e[0]), 0);
    cr_assert_gt(s_routes_of(&e[2]), 0);
    cr_log_info("%lld answered, %lld failed, %zu resent, slowest %lld ms", answered, failed, resent,
                worst);
    s_finish(&e[0]);
    s_finish(&e[1]);
    s_finish(&e[2]);
}

Test(client_multi, a_hung_engine_is_resent_around_then_dropped_by_the_heartbeat, .timeout = 60)
{
    s_engine_t e[3];
    for (int i = 0; i < 3; i++) {
        s_start(&e[i]);
    }
    s_engine_t *engines[3] = {&e[0], &e[1], &e[2]};
    hpp_client_t *c = s_multi(engines, 3, 100, 50);
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(s_route(c, 100 + i, 1000), HPP_OK, "%s", hpp_client_errstr(c));
    }
    cr_assert_eq(s_counters(c).resent, 0, "all engines up: nothing resent");
    /* A hung engine keeps its connection open: only the heartbeat tells. */
    cr_assert_eq(hh_signal(&e[1].proc, SIGSTOP), 0);
    for (int i = 0; i < 3; i++) {
        long long t0 = hh_now_ms();
        cr_assert_eq(s_route(c, 200 + i, 1000), HPP_OK, "%s", hpp_client_errstr(c));
        cr_assert_lt(hh_now_ms() - t0, 1000);
    }
    size_t resent = s_counters(c).resent;
    cr_assert_geq(resent, 1, "one of three consecutive requests went to the hung engine");
    /* After 3 heartbeats without an answer, it is out of the turn: a batch of
     * requests goes through without a resend. */
    bool clean = false;
    long long deadline = hh_now_ms() + 10000;
    while (!clean && hh_now_ms() < deadline) {
        size_t before = s_counters(c).resent;
        for (int i = 0; i < 9; i++) {
            cr_assert_eq(s_route(c, 300 + i, 1000), HPP_OK, "%s", hpp_client_errstr(c));
        }
        clean = s_counters(c).resent == before;
    }
    cr_assert(clean, "the hung engine was never dropped");
    /* Back from the dead: it rejoins (its connection is made anew). */
    cr_assert_eq(hh_signal(&e[1].proc, SIGCONT), 0);
    long long base = s_routes_of(&e[1]);
    deadline = hh_now_ms() + 10000;
    while (s_routes_of(&e[1]) == base && hh_now_ms() < deadline) {
        cr_assert_eq(s_route(c, 400, 1000), HPP_OK, "%s", hpp_client_errstr(c));
    }
    cr_assert_gt(s_routes_of(&e[1]), base, "the engine did not rejoin the turn");
    hpp_client_destroy(&c);
    for (int i = 0; i < 3; i++) {
        s_finish(&e[i]);
    }
}

Test(client_multi, the_late_twin_of_a_resent_request_is_dropped, .timeout = 60)
{
    s_engine_t e[2];
    s_start(&e[0]);
    s_start(&e[1]);
    s_engine_t *engines[2] = {&e[0], &e[1]};
    /* No heartbeat: the stopped engine stays in the turn, and answers late. */
    hpp_client_t *c = s_multi(engines, 2, 0, 50);
    /* Connected to both before one stops (a connection is made in the
     * background; an engine stopped before it is made is never in the turn). */
    long long deadline = hh_now_ms() + 10000;
    while (s_routes_of(&e[1]) == 0 && hh_now_ms() < deadline) {
        cr_assert_eq(s_route(c, 50, 2000), HPP_OK, "%s", hpp_client_errstr(c));
    }
    cr_assert_eq(s_counters(c).resent, 0);
    cr_assert_eq(hh_signal(&e[1].proc, SIGSTOP), 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(s_route(c, 100 + i, 2000), HPP_OK, "%s", hpp_client_errstr(c));
    }
    cr_assert_geq(s_counters(c).resent, 1);
    cr_assert_eq(hh_signal(&e[1].proc, SIGCONT), 0);
    /* Its answers to the first sends now arrive; each call still gets the
     * reply to its own id (s_route checks), and the twins are counted: every
     * extra send makes one extra reply, so in the end twins = resends. */
    deadline = hh_now_ms() + 10000;
    hpp_client_counters_t k = s_counters(c);
    while (k.duplicates < k.resent && hh_now_ms() < deadline) {
        cr_assert_eq(s_route(c, 500, 2000), HPP_OK, "%s", hpp_client_errstr(c));
        k = s_counters(c);
    }
    cr_assert_eq(k.duplicates, k.resent, "%zu twins dropped of %zu resent", k.duplicates, k.resent);
    cr_assert_eq(k.dropped, 0, "no twin sat in the stash");
    /* A plain receive sees nothing more: every twin was dropped, none stashed. */
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_recv(c, &rep, 100), HPP_ERR_TIMEOUT);
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    s_finish(&e[0]);
    s_finish(&e[1]);
}

Test(client_multi, the_examples_take_several_engines)
{
    s_engine_t e[2];
    s_start(&e[0]);
    s_start(&e[1]);
    char *out = NULL;
    /* --help is not an error. */
    char *help[] = {hh_bin("examples/route_example"), "--help", NULL};
    cr_assert_eq(hh_run(help, "route_example", S_TIMEOUT, &out), 0, "%s", out);
    cr_assert(strstr(out, "--engine ENDPOINT [--engine ENDPOINT]...") &&
                  strstr(out, "--curve-secret FILE"),
              "%s", out);
    free(out);
    /* Routes over two engines: both get some. */
    long long before0 = s_routes_of(&e[0]), before1 = s_routes_of(&e[1]);
    for (int i = 0; i < 4; i++) {
        char *argv[] = {hh_bin("examples/route_example"),
                        "--engine",
                        e[0].endpoint,
                        "--engine",
                        e[1].endpoint,
                        "--prompt-tokens",
                        "300",
                        "--hint",
                        "code",
                        NULL};
        cr_assert_eq(hh_run(argv, "route_example", S_TIMEOUT, &out), 0, "%s", out);
        cr_assert(strstr(out, "\"ok\":true"), "%s", out);
        free(out);
    }
    /* Each run is a new client: its request goes to the engine it reached
     * first, so only the sum is known (at least 4: an engine slower than
     * the resend interval gets a twin). */
    cr_assert_geq(s_routes_of(&e[0]) - before0 + s_routes_of(&e[1]) - before1, 4);
    char *nine[24] = {hh_bin("examples/route_example")};
    for (int i = 0; i < 9; i++) {
        nine[1 + 2 * i] = "--engine";
        nine[2 + 2 * i] = e[0].endpoint;
    }
    cr_assert_eq(hh_run(nine, "route_example", S_TIMEOUT, &out), 2, "%s", out);
    cr_assert(strstr(out, "too many --engine"), "%s", out);
    free(out);

    /* The Python gateway: one DEALER to both, a pipelined batch. */
    char dir[256], reqs[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(reqs, sizeof reqs, "%s/requests.jsonl", dir);
    char text[2048] = "";
    for (int i = 0; i < 20; i++) {
        char line[96];
        snprintf(line, sizeof line, "{\"prompt_tokens\": %d, \"hints\": [\"code\"]}\n", 100 + i);
        strcat(text, line);
    }
    cr_assert_eq(hh_write_file(reqs, text), 0);
    before0 = s_routes_of(&e[0]);
    before1 = s_routes_of(&e[1]);
    char *argv[] = {s_python(),   "proto/examples/gateway.py",
                    "--engine",   e[0].endpoint,
                    "--engine",   e[1].endpoint,
                    "--requests", reqs,
                    NULL};
    int rc = hh_run(argv, "gateway", 20000, &out);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    int lines = 0;
    for (char *s = out; (s = strstr(s, "\"ok\": true")) != NULL; s++) {
        lines++;
    }
    cr_assert_eq(lines, 20, "%s", out);
    free(out);
    long long got0 = s_routes_of(&e[0]) - before0, got1 = s_routes_of(&e[1]) - before1;
    cr_assert(got0 > 0 && got1 > 0 && got0 + got1 >= 20, "engine 1: %lld, engine 2: %lld", got0,
              got1);
    /* One engine gone: the gateway's requests all go to the other. */
    s_finish(&e[1]);
    char *argv2[] = {s_python(),   "proto/examples/gateway.py",
                     "--engine",   e[0].endpoint,
                     "--engine",   e[1].endpoint,
                     "--requests", reqs,
                     NULL};
    rc = hh_run(argv2, "gateway", 20000, &out);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    free(out);
    unlink(reqs);
    rmdir(dir);
    s_finish(&e[0]);
}

/* CURVE -------------------------------------------------------------------------- */

/* A CURVE ROUTER in this process: answers every request with a ping reply,
 * and checks each client's key against `allowed` through its own ZAP
 * handler (RFC 27), the way an engine with an allow-list does. */
typedef struct {
    void *ctx;          /* its own context (ZAP is per context) */
    void *router;       /* bound on 127.0.0.1:0 */
    void *zap;          /* inproc://zeromq.zap.01 */
    char endpoint[128]; /* where it listens */
    char allowed[41];   /* the one client key it lets in (Z85) */
    pthread_t th;       /* serving thread */
    atomic_bool stop;   /* set to end it */
    atomic_int denied;  /* handshakes refused */
} s_curve_srv_t;

static void s_zap_answer(s_curve_srv_t *s)
{
    /* version, request id, domain, address, identity, mechanism, key */
    zmq_msg_t f[7];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->zap, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 7) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n++], &m);
        }
        zmq_msg_close(&m);
    }
    bool ok = false;
    if (n < 2) {
        for (int i = 0; i < n; i++) {
            zmq_msg_close(&f[i]);
        }
        return;
    }
    if (n == 7 && zmq_msg_size(&f[6]) == 32) {
        char z85[41];
        zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
        ok = strcmp(z85, s->allowed) == 0;
    }
    if (!ok) {
        atomic_fetch_add(&s->denied, 1);
    }
    const char *status = ok ? "200" : "400";
    zmq_send(s->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    zmq_send(s->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(s->zap, ok ? "OK" : "unknown key", ok ? 2 : 11, ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, 0);
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&f[i]);
    }
}

static void *s_curve_main(void *arg)
{
    s_curve_srv_t *s = arg;
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t it[2] = {{s->router, 0, ZMQ_POLLIN, 0}, {s->zap, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, 50) <= 0) {
            continue;
        }
        if (it[1].revents & ZMQ_POLLIN) {
            s_zap_answer(s);
        }
        if (it[0].revents & ZMQ_POLLIN) {
            zmq_msg_t who, body;
            zmq_msg_init(&who);
            zmq_msg_init(&body);
            zmq_msg_recv(&who, s->router, 0);
            zmq_msg_recv(&body, s->router, 0);
            proto_request_t req;
            proto_error_t err;
            proto_request_decode(zmq_msg_data(&body), zmq_msg_size(&body), &req, &err);
            char mem[256];
            proto_buf_t b;
            proto_buf_init_fixed(&b, mem, sizeof mem);
            proto_reply_ping(&b, &req.id, 7, "curve-test");
            zmq_msg_send(&who, s->router, ZMQ_SNDMORE);
            zmq_send(s->router, b.data, b.len, 0);
            zmq_msg_close(&who);
            zmq_msg_close(&body);
        }
    }
    return NULL;
}

static void s_curve_srv_start(s_curve_srv_t *s, const char *server_sec, const char *allowed_pub)
{
    memset(s, 0, sizeof *s);
    char err[512];
    hpp_key_t sec, pub;
    cr_assert_eq(hpp_key_read_secret(server_sec, &sec, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hpp_key_read_public(allowed_pub, &pub, err, sizeof err), 0, "%s", err);
    memcpy(s->allowed, pub.z85, sizeof s->allowed);
    s->ctx = zmq_ctx_new();
    s->zap = zmq_socket(s->ctx, ZMQ_REP);
    cr_assert_eq(zmq_bind(s->zap, "inproc://zeromq.zap.01"), 0);
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    int on = 1, linger = 0;
    zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s->zap, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s->router, ZMQ_CURVE_SERVER, &on, sizeof on);
    zmq_setsockopt(s->router, ZMQ_CURVE_SECRETKEY, sec.z85, sizeof sec.z85);
    cr_assert_eq(zmq_bind(s->router, "tcp://127.0.0.1:0"), 0);
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
    cr_assert_eq(pthread_create(&s->th, NULL, s_curve_main, s), 0);
}

static void s_curve_srv_stop(s_curve_srv_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    zmq_close(s->router);
    zmq_close(s->zap);
    zmq_ctx_term(s->ctx);
}

/* Key files for one test: DIR/{engine,gateway,stranger}.{pub,sec}. */
typedef struct {
    char dir[256];
    char engine_pub[320], engine_sec[320];
    char gw_pub[320], gw_sec[320];
    char stranger_sec[320];
} s_keys_t;

static void s_keys(s_keys_t *k)
{
    char err[512];
    cr_assert_eq(test_tmpdir_make(k->dir, sizeof k->dir, "test"), 0);
    cr_assert_eq(hpp_key_generate(k->dir, "engine", err, sizeof err), 0, "%s", err);
    cr_assert_eq(hpp_key_generate(k->dir, "gateway", err, sizeof err), 0, "%s", err);
    cr_assert_eq(hpp_key_generate(k->dir, "stranger", err, sizeof err), 0, "%s", err);
    snprintf(k->engine_pub, sizeof k->engine_pub, "%s/engine.pub", k->dir);
    snprintf(k->engine_sec, sizeof k->engine_sec, "%s/engine.sec", k->dir);
    snprintf(k->gw_pub, sizeof k->gw_pub, "%s/gateway.pub", k->dir);
    snprintf(k->gw_sec, sizeof k->gw_sec, "%s/gateway.sec", k->dir);
    snprintf(k->stranger_sec, sizeof k->stranger_sec, "%s/stranger.sec", k->dir);
}

static void s_keys_remove(const s_keys_t *k)
{
    cr_assert_eq(test_tmpdir_remove(k->dir), 0, "%s", k->dir);
}

/* A CURVE client of `endpoint` with the engine's key and `secret` (NULL: no
 * CURVE at all). */
static hpp_client_t *s_curve_client(const char *endpoint, const s_keys_t *k, const char *secret)
{
    hpp_client_opts_t o;
    hpp_client_opts_init(&o);
    o.endpoints = &endpoint;
    o.nendpoints = 1;
    o.resend_ms = 0;
    if (secret) {
        o.curve_server_key = k->engine_pub;
        o.curve_secret_key = secret;
    }
    char err[512];
    hpp_client_t *c = hpp_client_new_opts(&o, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

Test(client_curve, handshake_and_allow_list_against_a_curve_router)
{
    cr_assert(zmq_has("curve"), "libzmq without CURVE");
    s_keys_t k;
    s_keys(&k);
    s_curve_srv_t srv;
    s_curve_srv_start(&srv, k.engine_sec, k.gw_pub);
    hpp_reply_t rep = {0};
    /* The allowed key: served. */
    hpp_client_t *c = s_curve_client(srv.endpoint, &k, k.gw_sec);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    cr_assert_eq(rep.r.policy_version, 7);
    hpp_client_destroy(&c);
    /* Another key, and no CURVE at all: never answered. */
    c = s_curve_client(srv.endpoint, &k, k.stranger_sec);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, 500), HPP_ERR_TIMEOUT);
    hpp_client_destroy(&c);
    cr_assert_geq(atomic_load(&srv.denied), 1, "the stranger reached the allow-list");
    c = s_curve_client(srv.endpoint, &k, NULL);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, 500), HPP_ERR_TIMEOUT);
    hpp_client_destroy(&c);
    /* The wrong server key (the client's own public key): the client refuses
     * the server, nothing is answered. */
    const char *ep = srv.endpoint;
    hpp_client_opts_t o;
    hpp_client_opts_init(&o);
    o.endpoints = &ep;
    o.nendpoints = 1;
    o.curve_server_key = k.gw_pub;
    o.curve_secret_key = k.gw_sec;
    char err[512];
    c = hpp_client_new_opts(&o, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, 500), HPP_ERR_TIMEOUT);
    hpp_client_destroy(&c);
    hpp_reply_close(&rep);

    /* The examples' CURVE flags. */
    char *out = NULL;
    char *argv[] = {hh_bin("examples/route_example"),
                    "--engine",
                    srv.endpoint,
                    "--curve-server-key",
                    k.engine_pub,
                    "--curve-secret",
                    k.gw_sec,
                    "--op",
                    "ping",
                    NULL};
    cr_assert_eq(hh_run(argv, "route_example", S_TIMEOUT, &out), 0, "%s", out);
    cr_assert(strstr(out, "\"policy_version\":7"), "%s", out);
    free(out);
    char *py[] = {s_python(),
                  "proto/examples/gateway.py",
                  "--engine",
                  srv.endpoint,
                  "--curve-server-key",
                  k.engine_pub,
                  "--curve-secret",
                  k.gw_sec,
                  "--op",
                  "ping",
                  NULL};
    cr_assert_eq(hh_run(py, "gateway", 20000, &out), 0, "%s", out);
    cr_assert(strstr(out, "\"policy_version\": 7"), "%s", out);
    free(out);
    char *py_stranger[] = {s_python(),
                           "proto/examples/gateway.py",
                           "--engine",
                           srv.endpoint,
                           "--curve-server-key",
                           k.engine_pub,
                           "--curve-secret",
                           k.stranger_sec,
                           "--op",
                           "ping",
                           "--timeout-ms",
                           "500",
                           NULL};
    cr_assert_eq(hh_run(py_stranger, "gateway", 20000, &out), 1, "%s", out);
    cr_assert(strstr(out, "\"timeout\": true"), "%s", out);
    free(out);
    /* A secret key file others may read is refused, without quoting it. */
    chmod(k.gw_sec, 0640);
    cr_assert_eq(hh_run(py, "gateway", 20000, &out), 2, "%s", out);
    cr_assert(strstr(out, "must not be readable by others (mode 640"), "%s", out);
    free(out);
    cr_assert_eq(hh_run(argv, "route_example", S_TIMEOUT, &out), 2, "%s", out);
    cr_assert(strstr(out, "must not be readable by others (mode 640"), "%s", out);
    free(out);
    s_curve_srv_stop(&srv);
    s_keys_remove(&k);
}

/* True when this build's engine has CURVE (--help says --curve-secret); the
 * help text goes into *help (caller frees). */
static bool s_engine_has_curve(char **help)
{
    char *argv[] = {hh_bin("hpp-engine"), "--help", NULL};
    *help = NULL;
    if (hh_run(argv, "engine-help", S_TIMEOUT, help) != 0 || !*help) {
        return false;
    }
    return strstr(*help, "--curve-secret") != NULL;
}

Test(client_curve, engine_serves_an_allowed_key_only)
{
    char *help = NULL;
    if (!s_engine_has_curve(&help)) {
        free(help);
        cr_skip_test("hpp-engine --help does not mention --curve-secret: this engine has no CURVE");
    }
    s_keys_t k;
    s_keys(&k);
    /* The allow-list: a directory of .pub files or a file of keys, as the
     * engine's help describes --curve-clients; the client's .pub is both. */
    char allowed[400];
    const char *line = strstr(help, "--curve-clients");
    const char *eol = line ? strchr(line, '\n') : NULL;
    bool wants_dir = line && memmem(line, eol ? (size_t)(eol - line) : strlen(line), "DIR", 3);
    if (wants_dir) {
        snprintf(allowed, sizeof allowed, "%s/allowed", k.dir);
        cr_assert_eq(mkdir(allowed, 0700), 0);
        char copy[1000];
        snprintf(copy, sizeof copy, "cp '%s' '%s/'", k.gw_pub, allowed);
        cr_assert_eq(system(copy), 0);
    } else {
        snprintf(allowed, sizeof allowed, "%s", k.gw_pub);
    }
    free(help);
    const char *extra[] = {"--curve-secret", k.engine_sec, "--curve-clients", allowed, NULL};
    s_engine_t e;
    s_start_with(&e, extra, false);
    hpp_reply_t rep = {0};
    hpp_client_t *c = s_curve_client(e.endpoint, &k, k.gw_sec);
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, S_TIMEOUT), HPP_OK, "%s (engine log: %s)",
                 hpp_client_errstr(c), e.proc.log);
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 500;
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(c));
    cr_assert_gt(rep.r.model.len, 0);
    hpp_client_destroy(&c);
    c = s_curve_client(e.endpoint, &k, k.stranger_sec);
    cr_assert_eq(hpp_client_route(c, &f, &rep, 500), HPP_ERR_TIMEOUT, "an unknown key was served");
    hpp_client_destroy(&c);
    c = s_curve_client(e.endpoint, &k, NULL);
    cr_assert_eq(hpp_client_route(c, &f, &rep, 500), HPP_ERR_TIMEOUT,
                 "a client without CURVE was served");
    hpp_client_destroy(&c);
    hpp_reply_close(&rep);
    /* The secret never reaches the engine's log. */
    char *log = hh_read_file(e.proc.log, NULL);
    char *sec = hh_read_file(k.engine_sec, NULL);
    cr_assert_not_null(log);
    cr_assert_not_null(sec);
    sec[HPP_KEY_LEN] = '\0';
    cr_assert_null(strstr(log, sec), "the engine logged its secret key");
    free(log);
    free(sec);
    cr_assert_eq(hh_stop(&e.proc), 0, "log: %s", e.proc.log);
    s_keys_remove(&k);
}
