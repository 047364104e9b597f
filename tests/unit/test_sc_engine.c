/* test_sc_engine.c - several engines behind sc_engine (sc_engine.h), played
 * by libzmq ROUTERs in threads that answer every request: calls go round
 * robin over the engines that are up; the calls of an engine that goes away
 * are answered by another, once each; with no engine left they fail at once;
 * the policy pings record each engine's version and hash and count the
 * replies whose hash differs from another engine's. Both link kinds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "sc_engine.h"

/* A fake engine: answers route with {model: its name}, ping with its
 * policy version and hash; while `mute`, it reads and answers nothing. */
typedef struct {
    void *ctx;
    char endpoint[64];
    const char *name;
    const char *hash; /* NULL: no policy_hash key at all */
    atomic_int requests;
    atomic_bool mute, stop, ready;
    pthread_t thread;
} s_fake_t;

static void s_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

static void *s_fake_main(void *arg)
{
    s_fake_t *f = arg;
    void *s = zmq_socket(f->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(zmq_bind(s, f->endpoint), 0, "bind %s: %s", f->endpoint, zmq_strerror(errno));
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    atomic_store(&f->ready, true);
    while (!atomic_load(&f->stop)) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 5) <= 0) {
            continue;
        }
        if (atomic_load(&f->mute)) { /* checked after the poll: what came stays unread */
            usleep(2000);
            continue;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, s, 0) >= 0 && zmq_msg_more(&id) && zmq_msg_recv(&body, s, 0) >= 0) {
            proto_request_t req;
            proto_error_t err;
            if (proto_request_decode(zmq_msg_data(&body), zmq_msg_size(&body), &req, &err) ==
                PROTO_OK) {
                bool ping = req.op == PROTO_OP_PING;
                atomic_fetch_add(&f->requests, !ping);
                msgpack_sbuffer sb;
                msgpack_sbuffer_init(&sb);
                msgpack_packer pk;
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, ping ? 4 + (f->hash != NULL) : 4);
                s_key(&pk, "v");
                msgpack_pack_uint32(&pk, PROTO_VERSION);
                s_key(&pk, "id");
                msgpack_pack_uint64(&pk, req.id.num);
                s_key(&pk, "ok");
                msgpack_pack_true(&pk);
                if (ping) {
                    s_key(&pk, "policy_version");
                    msgpack_pack_uint64(&pk, 7);
                    if (f->hash) {
                        s_key(&pk, "policy_hash");
                        s_key(&pk, f->hash);
                    }
                } else {
                    s_key(&pk, "model");
                    s_key(&pk, f->name);
                }
                zmq_msg_send(&id, s, ZMQ_SNDMORE);
                zmq_send(s, sb.data, sb.size, 0);
                msgpack_sbuffer_destroy(&sb);
            }
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    zmq_close(s);
    return NULL;
}

static void s_fake_start(s_fake_t *f, void *ctx, const char *name, const char *hash)
{
    memset(f, 0, sizeof *f);
    f->ctx = ctx;
    f->name = name;
    f->hash = hash;
    snprintf(f->endpoint, sizeof f->endpoint, "tcp://127.0.0.1:0");
    pthread_create(&f->thread, NULL, s_fake_main, f);
    while (!atomic_load(&f->ready)) {
        usleep(1000);
    }
}

static void s_fake_stop(s_fake_t *f)
{
    if (!atomic_load(&f->stop)) {
        atomic_store(&f->stop, true);
        pthread_join(f->thread, NULL);
    }
}

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool s_until(struct event_base *base, bool (*cond)(void *), void *arg, int ms)
{
    double end = s_now_ms() + ms;
    struct timeval tick = {0, 2000};
    while (!cond(arg)) {
        if (s_now_ms() > end) {
            return false;
        }
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return true;
}

/* One call's outcome: how often its callback ran, and with what. */
typedef struct {
    int runs;
    sc_eng_result_t res;
    char model[16];
} s_out_t;

static void s_on_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                       size_t len)
{
    (void)raw;
    (void)len;
    s_out_t *o = arg;
    o->runs++;
    o->res = res;
    if (r) {
        snprintf(o->model, sizeof o->model, "%.*s", (int)r->model.len, r->model.ptr);
    }
}

/* Three fakes, a loop and an engine set over them. */
typedef struct {
    void *ctx;
    s_fake_t fake[3];
    struct event_base *base;
    sc_engine_t *eng;
    proto_request_t req[64];
    s_out_t out[64];
} s_rig_t;

static sc_engine_t *s_eng;
static size_t s_want_up;
static bool s_all_up(void *arg)
{
    (void)arg;
    return sc_engine_up(s_eng) == s_want_up;
}

static void s_rig_up(s_rig_t *g, size_t n, sc_link_kind_t kind, int ping_ms,
                     const char *const hashes[3])
{
    signal(SIGPIPE, SIG_IGN);
    memset(g, 0, sizeof *g);
    g->ctx = zmq_ctx_new();
    static const char *const names[3] = {"a", "b", "c"};
    const char *eps[3];
    for (size_t i = 0; i < n; i++) {
        s_fake_start(&g->fake[i], g->ctx, names[i], hashes ? hashes[i] : NULL);
        eps[i] = g->fake[i].endpoint;
    }
    g->base = event_base_new();
    char err[256];
    sc_engine_config_t ec = {
        .endpoints = eps, .nendpoints = n, .kind = kind, .timeout_ms = 3000, .ping_ms = ping_ms};
    g->eng = sc_engine_new(g->base, &ec, err, sizeof err);
    cr_assert_not_null(g->eng, "%s", err);
    cr_assert_eq(sc_engine_count(g->eng), n);
    s_eng = g->eng;
    s_want_up = n;
    cr_assert(s_until(g->base, s_all_up, NULL, 5000), "%zu of %zu engines up", sc_engine_up(g->eng),
              n);
}

static void s_rig_down(s_rig_t *g)
{
    sc_engine_destroy(&g->eng);
    event_base_free(g->base);
    for (size_t i = 0; i < 3; i++) {
        if (g->fake[i].ctx) {
            s_fake_stop(&g->fake[i]);
        }
    }
    zmq_ctx_term(g->ctx);
}

/* Sends call i (a route request). */
static uint64_t s_call(s_rig_t *g, int i)
{
    proto_request_init(&g->req[i], PROTO_OP_ROUTE);
    g->req[i].features.prompt_tokens = 100 + i;
    return sc_engine_call(g->eng, &g->req[i], s_on_reply, &g->out[i], NULL);
}

static int s_pending_from, s_pending_to;
static s_rig_t *s_rig;
static bool s_all_answered(void *arg)
{
    (void)arg;
    for (int i = s_pending_from; i < s_pending_to; i++) {
        if (s_rig->out[i].runs == 0) {
            return false;
        }
    }
    return true;
}

static void s_await(s_rig_t *g, int from, int to)
{
    s_rig = g;
    s_pending_from = from;
    s_pending_to = to;
    cr_assert(s_until(g->base, s_all_answered, NULL, 5000), "calls %d..%d unanswered", from, to);
}

static void s_spread_and_resend(sc_link_kind_t kind)
{
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g, 3, kind, 0, NULL);
    for (int i = 0; i < 30; i++) {
        cr_assert_neq(s_call(g, i), 0, "call %d", i);
    }
    s_await(g, 0, 30);
    for (int e = 0; e < 3; e++) {
        cr_assert_eq(atomic_load(&g->fake[e].requests), 10, "engine %d: %d calls", e,
                     atomic_load(&g->fake[e].requests));
        sc_metrics_engine_t st;
        sc_engine_state(g->eng, (size_t)e, &st);
        cr_assert_eq(st.calls, 10);
        cr_assert(st.up);
    }
    /* b stops answering: of the next three calls one waits there. */
    atomic_store(&g->fake[1].mute, true);
    for (int i = 30; i < 33; i++) {
        cr_assert_neq(s_call(g, i), 0, "call %d", i);
    }
    struct timeval tick = {0, 50000};
    event_base_loopexit(g->base, &tick);
    event_base_dispatch(g->base);
    int answered = 0;
    for (int i = 30; i < 33; i++) {
        answered += g->out[i].runs;
    }
    cr_assert_eq(answered, 2, "the call on the mute engine was answered");
    /* b goes away: its call is answered by a or c, once. */
    s_fake_stop(&g->fake[1]);
    s_await(g, 30, 33);
    for (int i = 30; i < 33; i++) {
        cr_assert_eq(g->out[i].runs, 1, "call %d ran %d times", i, g->out[i].runs);
        cr_assert_eq(g->out[i].res, SC_ENG_REPLY);
        cr_assert_str_neq(g->out[i].model, "b");
    }
    sc_metrics_engine_t st;
    sc_engine_state(g->eng, 1, &st);
    cr_assert_eq(st.resends, 1);
    cr_assert_not(st.up);
    cr_assert_eq(sc_engine_up(g->eng), 2);
    /* The two left share the calls. */
    for (int i = 33; i < 37; i++) {
        cr_assert_neq(s_call(g, i), 0, "call %d", i);
    }
    s_await(g, 33, 37);
    cr_assert_eq(sc_engine_inflight(g->eng), 0);
    s_rig_down(g);
    free(g);
}

Test(sc_engine, zmtp_spreads_calls_and_resends_those_of_a_lost_engine)
{
    s_spread_and_resend(SC_LINK_ZMTP);
}

Test(sc_engine, libzmq_spreads_calls_and_resends_those_of_a_lost_engine)
{
    s_spread_and_resend(SC_LINK_LIBZMQ);
}

Test(sc_engine, calls_of_the_last_engine_fail_at_once_when_it_goes)
{
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g, 1, SC_LINK_ZMTP, 0, NULL);
    atomic_store(&g->fake[0].mute, true);
    cr_assert_neq(s_call(g, 0), 0);
    uint64_t cancelled = s_call(g, 1);
    cr_assert_neq(cancelled, 0);
    sc_engine_cancel(g->eng, cancelled);
    double t0 = s_now_ms();
    s_fake_stop(&g->fake[0]);
    s_await(g, 0, 1);
    cr_assert_lt(s_now_ms() - t0, 1000, "lost only at the deadline");
    cr_assert_eq(g->out[0].res, SC_ENG_LOST);
    cr_assert_eq(g->out[1].runs, 0, "a cancelled call ran");
    sc_call_err_t why = SC_CALL_OK;
    proto_request_init(&g->req[2], PROTO_OP_ROUTE);
    cr_assert_eq(sc_engine_call(g->eng, &g->req[2], s_on_reply, &g->out[2], &why), 0);
    cr_assert_eq(why, SC_CALL_UNAVAILABLE);
    s_rig_down(g);
    free(g);
}

static bool s_disagreed(void *arg)
{
    (void)arg;
    return sc_engine_disagreements(s_eng) > 0;
}

static bool s_policies_known(void *arg)
{
    size_t n = *(size_t *)arg;
    for (size_t i = 0; i < n; i++) {
        sc_metrics_engine_t st;
        sc_engine_state(s_eng, i, &st);
        if (!st.policy_known) {
            return false;
        }
    }
    return true;
}

Test(sc_engine, policy_pings_record_hashes_and_count_disagreements)
{
    static const char *const differ[3] = {"aa11", "bb22", NULL};
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g, 2, SC_LINK_ZMTP, 20, differ);
    cr_assert(s_until(g->base, s_disagreed, NULL, 3000), "no disagreement counted");
    sc_metrics_engine_t st;
    sc_engine_state(g->eng, 1, &st);
    cr_assert(st.policy_known);
    cr_assert_eq(st.policy_version, 7);
    cr_assert_str_eq(st.policy_hash, "bb22");
    s_rig_down(g);

    static const char *const agree[3] = {"aa11", "aa11", NULL};
    s_rig_up(g, 2, SC_LINK_ZMTP, 20, agree);
    size_t n = 2;
    cr_assert(s_until(g->base, s_policies_known, &n, 3000));
    struct timeval tick = {0, 100000};
    event_base_loopexit(g->base, &tick);
    event_base_dispatch(g->base);
    cr_assert_eq(sc_engine_disagreements(g->eng), 0);
    s_rig_down(g);

    /* Engines that send no hash are not compared. */
    static const char *const none[3] = {NULL, "aa11", NULL};
    s_rig_up(g, 2, SC_LINK_ZMTP, 20, none);
    cr_assert(s_until(g->base, s_policies_known, &n, 3000));
    event_base_loopexit(g->base, &tick);
    event_base_dispatch(g->base);
    cr_assert_eq(sc_engine_disagreements(g->eng), 0);
    sc_engine_state(g->eng, 0, &st);
    cr_assert_str_eq(st.policy_hash, "");
    s_rig_down(g);
    free(g);
}
