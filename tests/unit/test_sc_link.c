/* test_sc_link.c - the sidecar's engine link (sc_link.h) against a real
 * libzmq ROUTER: both kinds carry messages of every size both ways, the
 * ZMTP link comes back after the ROUTER restarts on the same port, and it
 * stays down (without crashing) against a server that is not ZMTP; both
 * report their connection's ups and downs; the libzmq link is a CURVE
 * client that a server with another key does not let in. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "sc_link.h"

#include "../loopback.h"

/* A ROUTER that echoes every message, in a thread of its own. */
typedef struct {
    void *ctx;
    char endpoint[64]; /* in: where to bind (port 0 = any); out: the bound one */
    atomic_bool stop;
    atomic_bool ready;
    pthread_t thread;
} s_router_t;

static void *s_router_main(void *arg)
{
    s_router_t *r = arg;
    void *s = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(zmq_bind(s, r->endpoint), 0, "bind %s: %s", r->endpoint, zmq_strerror(errno));
    size_t len = sizeof r->endpoint;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, r->endpoint, &len);
    atomic_store(&r->ready, true);
    while (!atomic_load(&r->stop)) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) <= 0) {
            continue;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, s, 0) >= 0 && zmq_msg_more(&id) && zmq_msg_recv(&body, s, 0) >= 0) {
            zmq_msg_send(&id, s, ZMQ_SNDMORE);
            zmq_msg_send(&body, s, 0);
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    zmq_close(s);
    return NULL;
}

static void s_router_start(s_router_t *r, void *ctx, const char *endpoint)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
    pthread_create(&r->thread, NULL, s_router_main, r);
    while (!atomic_load(&r->ready)) {
        usleep(1000);
    }
}

static void s_router_stop(s_router_t *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
}

/* What the link handed back. */
typedef struct {
    int count;
    size_t bytes;
    bool intact; /* every echo had the length and pattern that was sent */
    size_t want[64];
} s_got_t;

static void s_on_msg(void *arg, const void *buf, size_t len)
{
    s_got_t *g = arg;
    const uint8_t *p = buf;
    bool ok = g->count < 64 && len == g->want[g->count];
    for (size_t i = 0; ok && i < len; i++) {
        ok = p[i] == (uint8_t)(i * 7 + len);
    }
    g->intact = g->intact && ok;
    g->count++;
    g->bytes += len;
}

/* A link of `kind` to `ep` handing messages to `got`. */
static sc_link_t *s_link(struct event_base *base, const char *ep, sc_link_kind_t kind,
                         const sc_link_curve_t *curve, void *got, char *err, size_t errlen)
{
    sc_link_config_t lc = {
        .endpoint = ep, .kind = kind, .curve = curve, .on_message = s_on_msg, .arg = got};
    return sc_link_new(base, &lc, err, errlen);
}

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the loop until cond(arg) holds or ms pass; returns cond's value. */
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

static const uint8_t s_zero[1] = {0};
static sc_link_t *s_probe_link;
static bool s_sends(void *arg)
{
    (void)arg;
    return sc_link_send(s_probe_link, s_zero, 0) == 0;
}
static int s_want_count;
static bool s_got_all(void *arg)
{
    return ((s_got_t *)arg)->count >= s_want_count;
}

/* Waits for the link, then sends messages of the sizes in `sizes` (after
 * the zero-length probes that found it up) and checks their echoes. */
static void s_echo(struct event_base *base, sc_link_t *link, s_got_t *got)
{
    static const size_t sizes[] = {1, 2, 254, 255, 256, 257, 1000, 65535, 70000, 200000, 3};
    s_probe_link = link;
    memset(got, 0, sizeof *got);
    cr_assert(s_until(base, s_sends, NULL, 5000), "the link did not come up");
    /* Echoes of the probe (one per successful send) arrive first. */
    got->intact = true;
    got->want[0] = 0;
    s_want_count = 1;
    cr_assert(s_until(base, s_got_all, got, 5000), "no echo of the probe");
    memset(got, 0, sizeof *got);
    got->intact = true;
    size_t n = sizeof sizes / sizeof sizes[0];
    uint8_t *buf = malloc(200000);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sizes[i]; j++) {
            buf[j] = (uint8_t)(j * 7 + sizes[i]);
        }
        got->want[i] = sizes[i];
        total += sizes[i];
        cr_assert_eq(sc_link_send(link, buf, sizes[i]), 0, "send of %zu bytes", sizes[i]);
    }
    free(buf);
    s_want_count = (int)n;
    cr_assert(s_until(base, s_got_all, got, 5000), "%d of %zu echoes", got->count, n);
    cr_assert(got->intact, "an echo came back changed or out of order");
    cr_assert_eq(got->bytes, total);
}

/* A ROUTER, a loop and a link of `kind` connected to it. */
typedef struct {
    void *ctx;
    s_router_t router;
    struct event_base *base;
    sc_link_t *link;
    s_got_t got;
} s_rig_t;

static void s_rig_up(s_rig_t *g, sc_link_kind_t kind)
{
    signal(SIGPIPE, SIG_IGN);
    memset(g, 0, sizeof *g);
    g->ctx = zmq_ctx_new();
    s_router_start(&g->router, g->ctx, "tcp://127.0.0.1:0");
    g->base = event_base_new();
    char err[256];
    g->link = s_link(g->base, g->router.endpoint, kind, NULL, &g->got, err, sizeof err);
    cr_assert_not_null(g->link, "%s", err);
}

static void s_rig_down(s_rig_t *g)
{
    sc_link_destroy(&g->link);
    cr_assert_null(g->link);
    sc_link_destroy(&g->link); /* idempotent */
    event_base_free(g->base);
    s_router_stop(&g->router);
    zmq_ctx_term(g->ctx);
}

static void s_both_kinds(sc_link_kind_t kind)
{
    s_rig_t g;
    s_rig_up(&g, kind);
    cr_assert_eq(sc_link_kind(g.link), kind);
    s_echo(g.base, g.link, &g.got);
    s_rig_down(&g);
}

Test(sc_link, zmtp_carries_every_size_both_ways)
{
    s_both_kinds(SC_LINK_ZMTP);
}

Test(sc_link, libzmq_carries_every_size_both_ways)
{
    s_both_kinds(SC_LINK_LIBZMQ);
}

/* More than the kernel's socket buffers hold, sent before the loop runs:
 * the link must queue the rest and write it, in order, as the peer reads. */
Test(sc_link, zmtp_queues_what_the_kernel_does_not_take)
{
    s_rig_t g;
    s_rig_up(&g, SC_LINK_ZMTP);
    s_echo(g.base, g.link, &g.got);
    enum { N = 64, SIZE = 256 * 1024 };
    uint8_t *buf = malloc(SIZE);
    for (size_t j = 0; j < SIZE; j++) {
        buf[j] = (uint8_t)(j * 7 + SIZE);
    }
    memset(&g.got, 0, sizeof g.got);
    g.got.intact = true;
    for (int i = 0; i < N; i++) {
        g.got.want[i] = SIZE;
        cr_assert_eq(sc_link_send(g.link, buf, SIZE), 0, "send %d", i);
    }
    free(buf);
    s_want_count = N;
    cr_assert(s_until(g.base, s_got_all, &g.got, 10000), "%d of %d echoes", g.got.count, N);
    cr_assert(g.got.intact, "an echo came back changed or out of order");
    cr_assert_eq(g.got.bytes, (size_t)N * SIZE);
    s_rig_down(&g);
}

/* The frames sent in one turn of the loop (many clients' requests read in
 * one turn) leave in one write at the end of it, whole and in order; a
 * frame larger than the batch is written after those before it. */
Test(sc_link, zmtp_writes_one_turns_frames_at_once)
{
    s_rig_t g;
    s_rig_up(&g, SC_LINK_ZMTP);
    s_echo(g.base, g.link, &g.got);
    enum { N = 60 };
    size_t sizes[N];
    for (int i = 0; i < N; i++) {
        sizes[i] = i == 30 ? 100000 : i == 31 ? 5 : 300;
    }
    uint8_t *buf = malloc(100000);
    memset(&g.got, 0, sizeof g.got);
    g.got.intact = true;
    /* Two turns' worth: 30 small frames, then the large one and the rest. */
    uint64_t w0 = sc_link_writes(g.link);
    for (int i = 0; i < 30; i++) {
        for (size_t j = 0; j < sizes[i]; j++) {
            buf[j] = (uint8_t)(j * 7 + sizes[i]);
        }
        g.got.want[i] = sizes[i];
        cr_assert_eq(sc_link_send(g.link, buf, sizes[i]), 0, "send %d", i);
    }
    cr_assert_eq(sc_link_writes(g.link), w0, "written before the turn ended");
    event_base_loop(g.base, EVLOOP_NONBLOCK);
    cr_assert_eq(sc_link_writes(g.link), w0 + 1, "30 frames of one turn: %llu writes",
                 (unsigned long long)(sc_link_writes(g.link) - w0));
    for (int i = 30; i < N; i++) {
        for (size_t j = 0; j < sizes[i]; j++) {
            buf[j] = (uint8_t)(j * 7 + sizes[i]);
        }
        g.got.want[i] = sizes[i];
        cr_assert_eq(sc_link_send(g.link, buf, sizes[i]), 0, "send %d", i);
    }
    free(buf);
    s_want_count = N;
    cr_assert(s_until(g.base, s_got_all, &g.got, 5000), "%d of %d echoes", g.got.count, N);
    cr_assert(g.got.intact, "an echo came back changed or out of order");
    s_rig_down(&g);
}

/* A host name is resolved once, IPv4 first, as libzmq resolves it. */
Test(sc_link, zmtp_connects_by_host_name)
{
    s_rig_t g;
    s_rig_up(&g, SC_LINK_ZMTP);
    const char *port = strrchr(g.router.endpoint, ':');
    char ep[64], err[256];
    snprintf(ep, sizeof ep, "tcp://localhost%s", port);
    sc_link_t *named = s_link(g.base, ep, SC_LINK_ZMTP, NULL, &g.got, err, sizeof err);
    cr_assert_not_null(named, "%s", err);
    s_echo(g.base, named, &g.got);
    sc_link_destroy(&named);
    s_rig_down(&g);
}

static bool s_refused_send(void *arg)
{
    (void)arg;
    return sc_link_send(s_probe_link, s_zero, 0) != 0;
}

Test(sc_link, zmtp_reconnects_after_the_router_restarts)
{
    s_rig_t g;
    s_rig_up(&g, SC_LINK_AUTO);
    cr_assert_eq(sc_link_kind(g.link), SC_LINK_ZMTP, "auto picks zmtp for tcp://");
    s_echo(g.base, g.link, &g.got);
    char ep[64];
    snprintf(ep, sizeof ep, "%s", g.router.endpoint);
    s_router_stop(&g.router);
    s_probe_link = g.link;
    cr_assert(s_until(g.base, s_refused_send, NULL, 5000), "sends still accepted with no router");
    s_router_start(&g.router, g.ctx, ep);
    s_echo(g.base, g.link, &g.got);
    s_rig_down(&g);
}

/* A TCP server that answers every connection with an HTTP error. */
static void *s_http_main(void *arg)
{
    int lfd = *(int *)arg;
    for (int i = 0; i < 3; i++) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) {
            break;
        }
        static const char reply[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
        ssize_t w = write(c, reply, sizeof reply - 1);
        (void)w;
        close(c);
    }
    return NULL;
}

static bool s_never(void *arg)
{
    (void)arg;
    return sc_link_send(s_probe_link, s_zero, 0) == 0;
}

Test(sc_link, zmtp_stays_down_against_a_non_zmtp_server)
{
    signal(SIGPIPE, SIG_IGN);
    char ep[64];
    int lfd = loopback_listen(ep, sizeof ep);
    cr_assert_geq(lfd, 0, "listen: %s", strerror(errno));
    pthread_t t;
    pthread_create(&t, NULL, s_http_main, &lfd);
    struct event_base *base = event_base_new();
    char err[256];
    s_got_t got = {0};
    sc_link_t *link = s_link(base, ep, SC_LINK_ZMTP, NULL, &got, err, sizeof err);
    cr_assert_not_null(link, "%s", err);
    s_probe_link = link;
    cr_assert_not(s_until(base, s_never, NULL, 400), "the link came up against an HTTP server");
    cr_assert_eq(got.count, 0);
    sc_link_destroy(&link);
    event_base_free(base);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(t, NULL);
}

Test(sc_link, endpoints_the_zmtp_link_refuses)
{
    struct event_base *base = event_base_new();
    static const struct {
        const char *ep, *msg;
    } cases[] = {
        {"inproc://x", "expected tcp://HOST:PORT or ipc://PATH"},
        {"ipc://", "the socket path must be 1-107 bytes"},
        {"tcp://127.0.0.1", "expected tcp://HOST:PORT"},
        {"tcp://:5555", "expected tcp://HOST:PORT"},
        {"tcp://127.0.0.1:0", "port must be 1-65535"},
        {"tcp://127.0.0.1:99999", "port must be 1-65535"},
        {"tcp://127.0.0.1:12x", "port must be 1-65535"},
        {"tcp://*:5555", "no wildcard"},
        {"tcp://127.0.0.1;127.0.0.1:5555", "no source address"},
        {"tcp://no-such-host.invalid:5555", "cannot resolve 'no-such-host.invalid'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        sc_link_t *link = s_link(base, cases[i].ep, SC_LINK_ZMTP, NULL, NULL, err, sizeof err);
        cr_assert_null(link, "%s accepted", cases[i].ep);
        cr_assert(strstr(err, cases[i].msg), "%s: '%s' lacks '%s'", cases[i].ep, err, cases[i].msg);
    }
    char err[256];
    sc_link_t *v6 = s_link(base, "tcp://[::1]:5555", SC_LINK_ZMTP, NULL, NULL, err, sizeof err);
    cr_assert_not_null(v6, "[::1]: %s", err);
    sc_link_destroy(&v6);
    event_base_free(base);
}

Test(sc_link, kind_names)
{
    sc_link_kind_t k;
    cr_assert_eq(sc_link_kind_parse("zmtp", &k), 0);
    cr_assert_eq(k, SC_LINK_ZMTP);
    cr_assert_eq(sc_link_kind_parse("libzmq", &k), 0);
    cr_assert_eq(k, SC_LINK_LIBZMQ);
    cr_assert_eq(sc_link_kind_parse("auto", &k), 0);
    cr_assert_eq(k, SC_LINK_AUTO);
    cr_assert_eq(sc_link_kind_parse("zmq", &k), -1);
    cr_assert_str_eq(sc_link_kind_name(SC_LINK_LIBZMQ), "libzmq");
}

/* State callbacks ------------------------------------------------------------ */

typedef struct {
    int ups, downs;
} s_states_t;

static void s_on_state(void *arg, bool up)
{
    s_states_t *st = arg;
    st->ups += up;
    st->downs += !up;
}

static bool s_one_up(void *arg)
{
    return ((s_states_t *)arg)->ups == 1 && sc_link_up(s_probe_link);
}
static bool s_one_down(void *arg)
{
    return ((s_states_t *)arg)->downs == 1 && !sc_link_up(s_probe_link);
}
static bool s_two_up(void *arg)
{
    return ((s_states_t *)arg)->ups == 2 && sc_link_up(s_probe_link);
}

/* The link says when its connection comes up and when it goes, once each
 * time, for both kinds; the router stopping is a disconnection. */
static void s_states(sc_link_kind_t kind)
{
    signal(SIGPIPE, SIG_IGN);
    void *ctx = zmq_ctx_new();
    s_router_t r;
    s_router_start(&r, ctx, "tcp://127.0.0.1:0");
    char ep[64], err[256];
    snprintf(ep, sizeof ep, "%s", r.endpoint);
    struct event_base *base = event_base_new();
    s_states_t st = {0};
    sc_link_config_t lc = {
        .endpoint = ep, .kind = kind, .on_message = s_on_msg, .on_state = s_on_state, .arg = &st};
    /* s_on_msg and s_on_state share arg: only states are checked here. */
    sc_link_t *link = sc_link_new(base, &lc, err, sizeof err);
    cr_assert_not_null(link, "%s", err);
    s_probe_link = link;
    cr_assert(s_until(base, s_one_up, &st, 5000), "up %d down %d", st.ups, st.downs);
    s_router_stop(&r);
    cr_assert(s_until(base, s_one_down, &st, 5000), "up %d down %d", st.ups, st.downs);
    s_router_start(&r, ctx, ep);
    cr_assert(s_until(base, s_two_up, &st, 5000), "up %d down %d", st.ups, st.downs);
    sc_link_destroy(&link);
    event_base_free(base);
    s_router_stop(&r);
    zmq_ctx_term(ctx);
}

Test(sc_link, zmtp_reports_up_and_down)
{
    s_states(SC_LINK_ZMTP);
}

Test(sc_link, libzmq_reports_up_and_down)
{
    s_states(SC_LINK_LIBZMQ);
}

/* CURVE ------------------------------------------------------------------------ */

/* A CURVE ROUTER that echoes (no ZAP handler: any client key is let in,
 * the server key is what is checked here). */
typedef struct {
    void *ctx;
    char endpoint[64];
    char secret[41];
    atomic_bool stop, ready;
    pthread_t thread;
} s_curve_router_t;

static void *s_curve_main(void *arg)
{
    s_curve_router_t *r = arg;
    void *s = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0, one = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, r->secret, 41);
    cr_assert_eq(zmq_bind(s, "tcp://127.0.0.1:0"), 0);
    size_t len = sizeof r->endpoint;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, r->endpoint, &len);
    atomic_store(&r->ready, true);
    while (!atomic_load(&r->stop)) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) <= 0) {
            continue;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, s, 0) >= 0 && zmq_msg_more(&id) && zmq_msg_recv(&body, s, 0) >= 0) {
            zmq_msg_send(&id, s, ZMQ_SNDMORE);
            zmq_msg_send(&body, s, 0);
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    zmq_close(s);
    return NULL;
}

static bool s_up(void *arg)
{
    return sc_link_up(arg);
}

Test(sc_link, curve_client_with_the_right_server_key_and_not_with_a_wrong_one)
{
    if (!zmq_has("curve")) {
        cr_skip_test("libzmq without CURVE");
    }
    void *ctx = zmq_ctx_new();
    s_curve_router_t r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    sc_link_curve_t good, wrong;
    memset(&good, 0, sizeof good);
    cr_assert_eq(zmq_curve_keypair(good.server.z85, r.secret), 0);
    cr_assert_eq(zmq_curve_keypair(good.public.z85, good.secret.z85), 0);
    wrong = good;
    char junk[41];
    cr_assert_eq(zmq_curve_keypair(wrong.server.z85, junk), 0);
    pthread_create(&r.thread, NULL, s_curve_main, &r);
    while (!atomic_load(&r.ready)) {
        usleep(1000);
    }
    struct event_base *base = event_base_new();
    char err[256];
    s_got_t got;
    /* auto picks libzmq when CURVE is asked for, whatever the endpoint. */
    sc_link_t *link = s_link(base, r.endpoint, SC_LINK_AUTO, &good, &got, err, sizeof err);
    cr_assert_not_null(link, "%s", err);
    cr_assert_eq(sc_link_kind(link), SC_LINK_LIBZMQ);
    s_echo(base, link, &got);
    sc_link_t *bad = s_link(base, r.endpoint, SC_LINK_LIBZMQ, &wrong, &got, err, sizeof err);
    cr_assert_not_null(bad, "%s", err);
    cr_assert_not(s_until(base, s_up, bad, 600), "up with a wrong server key");
    cr_assert_neq(sc_link_send(bad, "x", 1), 0);
    /* The zmtp link speaks NULL only: CURVE is refused, not ignored. */
    cr_assert_null(s_link(base, r.endpoint, SC_LINK_ZMTP, &good, &got, err, sizeof err));
    cr_assert(strstr(err, "only the NULL mechanism"), "%s", err);
    sc_link_destroy(&bad);
    sc_link_destroy(&link);
    event_base_free(base);
    atomic_store(&r.stop, true);
    pthread_join(r.thread, NULL);
    zmq_ctx_term(ctx);
}
