/* test_sc_report.c - proxy mode's report queue (sc_report.h) in front of a
 * fake engine (a libzmq ROUTER in a thread that records every report frame):
 * a report waits for the loop's next turn and then goes as its own frame, in
 * the order the calls finished, with the names it was given even when the
 * caller's buffers changed since; a full queue is sent at once; destroying
 * the queue sends what waits; a name over the protocol's bound is refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "sc_report.h"

#define S_MAX_SEEN 256

/* A fake engine that records the reports it is sent. */
typedef struct {
    void *ctx;
    char endpoint[64];
    atomic_bool stop, ready;
    atomic_int frames;             /* report frames received */
    uint64_t decision[S_MAX_SEEN]; /* first attempt's decision of each frame */
    uint32_t attempts[S_MAX_SEEN]; /* attempts in each frame */
    char model[S_MAX_SEEN][64];    /* first attempt's model of each frame */
    pthread_t thread;
} s_fake_t;

static void s_record(s_fake_t *f, const void *buf, size_t len)
{
    proto_request_t req;
    proto_error_t err;
    if (proto_request_decode(buf, len, &req, &err) != PROTO_OK || req.op != PROTO_OP_REPORT) {
        return;
    }
    int k = atomic_load(&f->frames);
    if (k >= S_MAX_SEEN) {
        return;
    }
    size_t pos = 0;
    proto_attempt_t a;
    uint32_t n = 0;
    while (proto_attempts_next(&req.attempts, &pos, &a, NULL) == 1) {
        if (n++ == 0) {
            f->decision[k] = a.decision;
            snprintf(f->model[k], sizeof f->model[k], "%.*s", (int)a.model.len, a.model.ptr);
        }
    }
    f->attempts[k] = n;
    atomic_store(&f->frames, k + 1); /* publishes the entries above */
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
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, s, 0) >= 0 && zmq_msg_more(&id) && zmq_msg_recv(&body, s, 0) >= 0) {
            s_record(f, zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    zmq_close(s);
    return NULL;
}

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the loop until cond holds (a readiness wait, not a timed assertion). */
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

typedef struct {
    void *ctx;
    s_fake_t fake;
    struct event_base *base;
    sc_engine_t *eng;
    sc_report_t *rep;
    int want; /* frames s_got waits for */
} s_rig_t;

static bool s_up(void *arg)
{
    return sc_engine_up(((s_rig_t *)arg)->eng) == 1;
}

static bool s_got(void *arg)
{
    s_rig_t *g = arg;
    return atomic_load(&g->fake.frames) >= g->want;
}

static void s_rig_up(s_rig_t *g)
{
    signal(SIGPIPE, SIG_IGN);
    memset(g, 0, sizeof *g);
    g->ctx = zmq_ctx_new();
    g->fake.ctx = g->ctx;
    snprintf(g->fake.endpoint, sizeof g->fake.endpoint, "tcp://127.0.0.1:0");
    pthread_create(&g->fake.thread, NULL, s_fake_main, &g->fake);
    while (!atomic_load(&g->fake.ready)) {
        usleep(1000);
    }
    g->base = event_base_new();
    const char *eps[1] = {g->fake.endpoint};
    char err[256];
    sc_engine_config_t ec = {
        .endpoints = eps, .nendpoints = 1, .kind = SC_LINK_ZMTP, .timeout_ms = 3000};
    g->eng = sc_engine_new(g->base, &ec, err, sizeof err);
    cr_assert_not_null(g->eng, "%s", err);
    cr_assert(s_until(g->base, s_up, g, 5000), "the engine link did not come up");
    g->rep = sc_report_new(g->base, g->eng);
    cr_assert_not_null(g->rep);
}

static void s_rig_down(s_rig_t *g)
{
    sc_report_destroy(&g->rep);
    sc_report_destroy(&g->rep); /* idempotent */
    sc_engine_destroy(&g->eng);
    event_base_free(g->base);
    atomic_store(&g->fake.stop, true);
    pthread_join(g->fake.thread, NULL);
    zmq_ctx_term(g->ctx);
}

/* Queues the report of decision `id`: n attempts at `model`, named from a
 * buffer that is overwritten right after. */
static int s_add(s_rig_t *g, uint64_t id, const char *model, size_t n)
{
    char name[300], prov[16];
    snprintf(name, sizeof name, "%s", model);
    snprintf(prov, sizeof prov, "openai");
    proto_attempt_t at[4];
    for (size_t i = 0; i < n && i < 4; i++) {
        proto_attempt_init(&at[i]);
        at[i].decision = id;
        at[i].model = (hpp_str_t){name, (uint32_t)strlen(name)};
        at[i].provider = (hpp_str_t){prov, (uint32_t)strlen(prov)};
        at[i].status = 200;
        at[i].latency_ms = 12;
    }
    int rc = sc_report_add(g->rep, at, n);
    memset(name, 'x', sizeof name - 1); /* the queue holds its own copy */
    memset(prov, 'y', sizeof prov - 1);
    return rc;
}

Test(sc_report, reports_wait_for_the_loop_then_go_in_order_with_their_names)
{
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g);
    cr_assert_eq(s_add(g, 11, "openai/gpt-4o", 1), 0);
    cr_assert_eq(s_add(g, 12, "openai/gpt-5", 2), 0);
    cr_assert_eq(s_add(g, 13, "openai/gpt-4o-mini", 1), 0);
    cr_assert_eq(sc_report_pending(g->rep), 3, "queued until the loop turns");
    event_base_loop(g->base, EVLOOP_ONCE);
    cr_assert_eq(sc_report_pending(g->rep), 0, "sent on the loop's next turn");
    g->want = 3;
    cr_assert(s_until(g->base, s_got, g, 5000), "%d of 3 reports arrived",
              atomic_load(&g->fake.frames));
    static const char *const models[] = {"openai/gpt-4o", "openai/gpt-5", "openai/gpt-4o-mini"};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(g->fake.decision[k], 11 + (uint64_t)k, "frame %d is decision %llu", k,
                     (unsigned long long)g->fake.decision[k]);
        cr_assert_str_eq(g->fake.model[k], models[k]);
        cr_assert_eq(g->fake.attempts[k], k == 1 ? 2u : 1u, "one frame per call");
    }
    s_rig_down(g);
    free(g);
}

Test(sc_report, a_full_queue_goes_at_once)
{
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g);
    for (int i = 0; i < SC_REPORT_QUEUE; i++) {
        cr_assert_eq(s_add(g, 100 + (uint64_t)i, "openai/gpt-4o", 1), 0);
    }
    cr_assert_eq(sc_report_pending(g->rep), SC_REPORT_QUEUE);
    cr_assert_eq(s_add(g, 100 + SC_REPORT_QUEUE, "openai/gpt-4o", 1), 0);
    cr_assert_eq(sc_report_pending(g->rep), 1, "the full queue was sent, the new one waits");
    g->want = SC_REPORT_QUEUE;
    cr_assert(s_until(g->base, s_got, g, 5000), "%d of %d reports arrived",
              atomic_load(&g->fake.frames), SC_REPORT_QUEUE);
    g->want = SC_REPORT_QUEUE + 1;
    cr_assert(s_until(g->base, s_got, g, 5000), "the last report did not follow");
    for (int k = 0; k <= SC_REPORT_QUEUE; k++) {
        cr_assert_eq(g->fake.decision[k], 100 + (uint64_t)k, "frame %d out of order", k);
    }
    s_rig_down(g);
    free(g);
}

Test(sc_report, destroying_the_queue_sends_what_waits)
{
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g);
    cr_assert_eq(s_add(g, 7, "openai/gpt-4o", 1), 0);
    cr_assert_eq(s_add(g, 8, "openai/gpt-5", 1), 0);
    sc_report_destroy(&g->rep);
    cr_assert_null(g->rep);
    g->want = 2;
    cr_assert(s_until(g->base, s_got, g, 5000), "%d of 2 reports arrived",
              atomic_load(&g->fake.frames));
    s_rig_down(g);
    free(g);
}

Test(sc_report, refuses_what_it_cannot_hold)
{
    s_rig_t *g = calloc(1, sizeof *g);
    s_rig_up(g);
    char longname[HPP_MAX_MODEL_LEN + 16];
    memset(longname, 'm', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(s_add(g, 1, longname, 1), -1, "a model id over the protocol's bound");
    cr_assert_eq(s_add(g, 1, "openai/gpt-4o", 0), -1, "no attempt");
    cr_assert_eq(sc_report_pending(g->rep), 0);
    s_rig_down(g);
    free(g);
}
