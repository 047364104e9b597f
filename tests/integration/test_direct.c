/* test_direct.c - hpp-engine's direct listener (--direct, eng_direct.h),
 * the real binary on loopback.
 *
 * Covered: a libzmq DEALER (the C client) and REQ get the same answers on
 * the direct listener as on the ROUTER, for the ops decided inline (route,
 * ping) and for those the workers answer (explain, models, stats); a raw
 * ZMTP client with its own frames: the delimiter shape, a bad envelope, an
 * undecodable body, pipelined requests answered in one write's worth;
 * every way a client can misbehave (not ZMTP, an oversized frame, no
 * handshake) closes only that connection, and the engine keeps serving;
 * the ipc:// listener and its file mode; the endpoints refused at start.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <zmq.h>

#include "harness.h"
#include "hpp_client.h"
#include "hpp_procstats.h"
#include "proto_zmtp.h"

#define S_TIMEOUT 5000

typedef struct {
    hh_proc_t proc;
    char router[256]; /* the ROUTER's endpoint */
    char direct[256]; /* the direct listener's */
} s_engine_t;

/* Copies what follows `tag` on the log line that has it. */
static void s_line_value(hh_proc_t *p, const char *tag, char *out, size_t n)
{
    char line[512];
    cr_assert_eq(hh_wait_line(p, tag, 15000, line, sizeof line), 0, "no '%s' (log: %s)", tag,
                 p->log);
    snprintf(out, n, "%s", strstr(line, tag) + strlen(tag));
}

/* Starts an engine with its direct listener on `direct`, and `extra` (up to
 * 4 more arguments, NULL-terminated; NULL for none). */
static void s_start_with(s_engine_t *e, const char *direct, char *const *extra)
{
    char *argv[16] = {hh_bin("hpp-engine"), "--listen",    "tcp://127.0.0.1:0", "--threads", "2",
                      "--direct",           (char *)direct};
    for (int i = 0; extra && extra[i]; i++) {
        cr_assert_lt(i, 4);
        argv[7 + i] = extra[i];
    }
    cr_assert_eq(hh_spawn(&e->proc, argv, "direct"), 0);
    s_line_value(&e->proc, "hpp-engine: direct on ", e->direct, sizeof e->direct);
    s_line_value(&e->proc, "hpp-engine: ready on ", e->router, sizeof e->router);
}

static void s_start(s_engine_t *e, const char *direct)
{
    s_start_with(e, direct, NULL);
}

static void s_stop(s_engine_t *e)
{
    int rc = hh_stop(&e->proc);
    cr_assert_eq(rc, 0, "engine exited %d (log: %s)", rc, e->proc.log);
}

static hpp_client_t *s_client(const char *ep)
{
    char err[256];
    hpp_client_t *c = hpp_client_new(ep, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

static hpp_str_t s_s(const char *c)
{
    hpp_str_t s = {c, (uint32_t)strlen(c)};
    return s;
}

/* The model a route with `hint` resolves to, copied into out. */
static void s_model(hpp_client_t *c, const char *hint, char *out, size_t n)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 500;
    f.hints[0] = s_s(hint);
    f.nhints = 1;
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_route(c, &f, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(c));
    snprintf(out, n, "%.*s", (int)rep.r.model.len, rep.r.model.ptr);
    hpp_reply_close(&rep);
}

/* An op's reply as JSON text (caller frees). */
static char *s_op_json(hpp_client_t *c, proto_op_t op)
{
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, op, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(c));
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 4096), 0);
    proto_error_t perr;
    cr_assert_eq(proto_to_json(rep.data, rep.len, &b, &perr), PROTO_OK, "%s", perr.msg);
    char *s = strdup(b.data);
    proto_buf_destroy(&b);
    hpp_reply_close(&rep);
    return s;
}

static long long s_stat(hpp_client_t *c, const char *a, const char *b)
{
    char *text = s_op_json(c, PROTO_OP_STATS);
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j);
    json_t *v = json_object_get(j, a);
    if (b) {
        v = json_object_get(v, b);
    }
    cr_assert(json_is_integer(v), "%s.%s in %s", a, b ? b : "", text);
    long long n = json_integer_value(v);
    json_decref(j);
    free(text);
    return n;
}

Test(direct, every_op_answers_as_on_the_router)
{
    s_engine_t e;
    s_start(&e, "tcp://127.0.0.1:0");
    cr_assert(strncmp(e.direct, "tcp://127.0.0.1:", 16) == 0 && strcmp(e.direct, e.router) != 0,
              "%s", e.direct);
    hpp_client_t *d = s_client(e.direct), *r = s_client(e.router);
    static const char *hints[] = {"code", "chat", "solidity", "math"};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        char a[128], b[128];
        s_model(d, hints[i], a, sizeof a);
        s_model(r, hints[i], b, sizeof b);
        cr_assert_str_eq(a, b, "hint %s", hints[i]);
    }
    /* The workers' ops come back through the listener. */
    char *md = s_op_json(d, PROTO_OP_MODELS), *mr = s_op_json(r, PROTO_OP_MODELS);
    cr_assert_str_eq(md, mr);
    cr_assert_gt(strlen(md), 1000, "the whole models list");
    free(md);
    free(mr);
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_EXPLAIN);
    req.features.prompt_tokens = 300;
    req.features.hints[0] = s_s("chat");
    req.features.nhints = 1;
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_call(d, &req, &rep, S_TIMEOUT), HPP_OK, "%s", hpp_client_errstr(d));
    cr_assert_gt(rep.len, 1000, "an explain reply with its trace");
    hpp_reply_close(&rep);
    /* Counted with the ROUTER's: 8 routes, 2 models, 1 explain. */
    cr_assert_eq(s_stat(d, "requests", "route"), 8);
    cr_assert_eq(s_stat(r, "requests", "explain"), 1);
    hpp_client_destroy(&d);
    hpp_client_destroy(&r);

    /* A REQ socket: the delimiter shape, on both ops kinds. */
    void *ctx = zmq_ctx_new();
    void *q = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, tmo = S_TIMEOUT;
    zmq_setsockopt(q, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(q, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    cr_assert_eq(zmq_connect(q, e.direct), 0);
    static const proto_op_t ops[] = {PROTO_OP_PING, PROTO_OP_STATS};
    for (size_t i = 0; i < 2; i++) {
        char buf[64];
        proto_buf_t pb;
        proto_buf_init_fixed(&pb, buf, sizeof buf);
        proto_request_init(&req, ops[i]);
        proto_request_encode(&pb, &req);
        cr_assert_eq(zmq_send(q, pb.data, pb.len, 0), (int)pb.len);
        char reply[65536];
        int n = zmq_recv(q, reply, sizeof reply, 0);
        cr_assert_gt(n, 0, "REQ got no reply to op %d", ops[i]);
        proto_reply_t pr;
        cr_assert_eq(proto_reply_decode(reply, (size_t)n, &pr, NULL), PROTO_OK);
        cr_assert(pr.ok);
    }
    zmq_close(q);
    zmq_ctx_term(ctx);
    s_stop(&e);
}

/* A raw ZMTP client --------------------------------------------------------- */

typedef struct {
    int fd;
    proto_zmtp_t z;
    uint8_t buf[1 << 17];
    size_t len;
} s_raw_t;

/* A TCP connection to tcp://127.0.0.1:PORT. */
static int s_connect(const char *ep)
{
    const char *colon = strrchr(ep, ':');
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Waits up to timeout_ms for the peer to close: true when it did. */
static bool s_closed_by_peer(int fd, int timeout_ms)
{
    long long end = hh_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(end - hh_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            return false;
        }
        char b[4096];
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0) {
            return true;
        }
    }
}

/* The next event of kind `want`, reading as needed. */
static proto_zmtp_ev_t s_next(s_raw_t *r, proto_zmtp_kind_t want)
{
    for (;;) {
        proto_zmtp_ev_t ev;
        long used = proto_zmtp_read(&r->z, r->buf, r->len, &ev);
        cr_assert_geq(used, 0, "%s", ev.msg);
        if (used > 0) {
            /* The event's bytes stay valid until the next call: the caller
             * copies what it keeps before asking again. */
            static uint8_t keep[1 << 17];
            memcpy(keep, r->buf, (size_t)used);
            memmove(r->buf, r->buf + used, r->len - (size_t)used);
            r->len -= (size_t)used;
            if (ev.data) {
                ev.data = keep + (ev.data - r->buf);
            }
            if (ev.kind == want) {
                return ev;
            }
            continue;
        }
        struct pollfd p = {r->fd, POLLIN, 0};
        cr_assert_gt(poll(&p, 1, S_TIMEOUT), 0, "no reply within %d ms", S_TIMEOUT);
        ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        cr_assert_gt(n, 0, "the engine closed the connection");
        r->len += (size_t)n;
    }
}

static void s_raw_open(s_raw_t *r, const char *ep)
{
    r->fd = s_connect(ep);
    r->len = 0;
    proto_zmtp_init(&r->z, 1 << 20);
    uint8_t hello[PROTO_ZMTP_HELLO_MAX];
    size_t hl = proto_zmtp_hello(hello, sizeof hello);
    cr_assert_eq(write(r->fd, hello, hl), (ssize_t)hl);
    s_next(r, PROTO_ZMTP_EV_READY);
}

/* Puts one frame (its head, then `body`) at out; returns the bytes put
 * (room for PROTO_ZMTP_HEAD_MAX + len is the caller's). */
static size_t s_put_frame(uint8_t *out, const void *body, size_t len, bool more)
{
    size_t o = proto_zmtp_frame_head(out, len, more);
    memcpy(out + o, body, len);
    return o + len;
}

/* Writes one message of `n` frames. */
static void s_send(s_raw_t *r, const void *const *frames, const size_t *lens, int n)
{
    uint8_t out[4096];
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        o += s_put_frame(out + o, frames[i], lens[i], i + 1 < n);
    }
    cr_assert_eq(write(r->fd, out, o), (ssize_t)o);
}

/* Reads one reply: its frames' count, and the last one decoded. */
static int s_reply(s_raw_t *r, proto_reply_t *pr, bool *delim)
{
    int frames = 0;
    *delim = false;
    for (;;) {
        proto_zmtp_ev_t ev = s_next(r, PROTO_ZMTP_EV_FRAME);
        frames++;
        if (ev.more) {
            *delim = ev.len == 0;
            continue;
        }
        static uint8_t body[1 << 17];
        memcpy(body, ev.data, ev.len);
        cr_assert_eq(proto_reply_decode(body, ev.len, pr, NULL), PROTO_OK);
        return frames;
    }
}

static size_t s_encode(char *buf, size_t cap, proto_op_t op, uint64_t id)
{
    proto_buf_t pb;
    proto_buf_init_fixed(&pb, buf, cap);
    proto_request_t req;
    proto_request_init(&req, op);
    req.id = proto_id_uint(id);
    if (op == PROTO_OP_ROUTE) {
        req.features.prompt_tokens = 400;
    }
    proto_request_encode(&pb, &req);
    return pb.len;
}

Test(direct, raw_frames_envelopes_and_pipelining)
{
    s_engine_t e;
    s_start(&e, "tcp://127.0.0.1:0");
    s_raw_t *r = calloc(1, sizeof *r);
    s_raw_open(r, e.direct);
    char body[256];
    size_t bl = s_encode(body, sizeof body, PROTO_OP_ROUTE, 7);
    proto_reply_t pr;
    bool delim;

    /* The body alone, then with the delimiter: the reply has the same shape. */
    const void *f1[] = {body};
    size_t l1[] = {bl};
    s_send(r, f1, l1, 1);
    cr_assert_eq(s_reply(r, &pr, &delim), 1);
    cr_assert(pr.ok && pr.id.num == 7);
    const void *f2[] = {"", body};
    size_t l2[] = {0, bl};
    s_send(r, f2, l2, 2);
    cr_assert_eq(s_reply(r, &pr, &delim), 2);
    cr_assert(delim && pr.ok);

    /* A bad envelope and an undecodable body: answered, counted, served on. */
    const void *f3[] = {"a", "b", body};
    size_t l3[] = {1, 1, bl};
    s_send(r, f3, l3, 3);
    s_reply(r, &pr, &delim);
    cr_assert(!pr.ok && pr.status == HPP_E_BAD_REQUEST);
    cr_assert(memmem(pr.message.ptr, pr.message.len, "envelope: 3 frames", 18));
    const void *f4[] = {"hello"};
    size_t l4[] = {5};
    s_send(r, f4, l4, 1);
    s_reply(r, &pr, &delim);
    cr_assert(!pr.ok && pr.status == HPP_E_BAD_REQUEST);

    /* 200 requests in one write: 200 replies, every id once, in order. */
    static uint8_t burst[200 * 300];
    size_t o = 0;
    for (uint64_t i = 0; i < 200; i++) {
        char b[256];
        size_t n = s_encode(b, sizeof b, i % 2 ? PROTO_OP_PING : PROTO_OP_ROUTE, 1000 + i);
        o += s_put_frame(burst + o, b, n, false);
    }
    cr_assert_eq(write(r->fd, burst, o), (ssize_t)o);
    for (uint64_t i = 0; i < 200; i++) {
        cr_assert_eq(s_reply(r, &pr, &delim), 1);
        cr_assert(pr.ok && pr.id.num == 1000 + i, "reply %llu: id %llu", (unsigned long long)i,
                  (unsigned long long)pr.id.num);
    }
    /* A ZMTP PING is answered with its context. */
    static const uint8_t ping[] = {0x04, 9, 4, 'P', 'I', 'N', 'G', 0, 10, 'h', 'i'};
    cr_assert_eq(write(r->fd, ping, sizeof ping), (ssize_t)sizeof ping);
    proto_zmtp_ev_t ev = s_next(r, PROTO_ZMTP_EV_NONE);
    (void)ev; /* the PONG is a command the reader skips; the stream stays good */
    s_send(r, f1, l1, 1);
    cr_assert_eq(s_reply(r, &pr, &delim), 1);
    cr_assert(pr.ok);
    close(r->fd);

    hpp_client_t *c = s_client(e.router);
    cr_assert_eq(s_stat(c, "malformed", NULL), 2, "the envelope and the body");
    hpp_client_destroy(&c);
    free(r);
    s_stop(&e);
}

Test(direct, misbehaving_clients_lose_only_their_connection, .timeout = 30)
{
    s_engine_t e;
    s_start(&e, "tcp://127.0.0.1:0");
    /* Not ZMTP at all. */
    int fd = s_connect(e.direct);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, http, sizeof http - 1), (ssize_t)sizeof http - 1);
    cr_assert(s_closed_by_peer(fd, S_TIMEOUT), "an HTTP client was not closed");
    close(fd);
    /* A frame header announcing 1 GiB, past the 16 MiB limit. */
    s_raw_t *r = calloc(1, sizeof *r);
    s_raw_open(r, e.direct);
    uint8_t head[PROTO_ZMTP_HEAD_MAX];
    size_t hl = proto_zmtp_frame_head(head, 1ull << 30, false);
    cr_assert_eq(write(r->fd, head, hl), (ssize_t)hl);
    cr_assert(s_closed_by_peer(r->fd, S_TIMEOUT), "an oversized frame was not refused");
    close(r->fd);
    /* Another ROUTER: refused at the handshake. */
    fd = s_connect(e.direct);
    uint8_t hello[PROTO_ZMTP_HELLO_MAX];
    hl = proto_zmtp_hello_router(hello, sizeof hello);
    cr_assert_eq(write(fd, hello, hl), (ssize_t)hl);
    cr_assert(s_closed_by_peer(fd, S_TIMEOUT), "a ROUTER peer was not refused");
    close(fd);
    /* Connected, silent: closed once the handshake is overdue (2 s). */
    fd = s_connect(e.direct);
    long long t0 = hh_now_ms();
    cr_assert(s_closed_by_peer(fd, 10000), "a silent client was kept");
    long long waited = hh_now_ms() - t0;
    cr_assert(waited >= 1500 && waited < 8000, "closed after %lld ms", waited);
    close(fd);
    /* Connections arriving every 300 ms do not postpone the deadline of
     * the first silent one. */
    fd = s_connect(e.direct);
    t0 = hh_now_ms();
    int others[12];
    bool closed = false;
    for (int i = 0; i < 12 && !closed; i++) {
        others[i] = s_connect(e.direct);
        closed = s_closed_by_peer(fd, 300);
        if (closed) {
            for (int j = 0; j <= i; j++) {
                close(others[j]);
            }
        } else if (i == 11) {
            for (int j = 0; j < 12; j++) {
                close(others[j]);
            }
        }
    }
    waited = hh_now_ms() - t0;
    cr_assert(closed, "a silent client outlived a stream of new connections");
    cr_assert(waited < 3500, "closed after %lld ms", waited);
    close(fd);
    /* Gone in the middle of a frame. */
    s_raw_open(r, e.direct);
    hl = proto_zmtp_frame_head(head, 100, false);
    cr_assert_eq(write(r->fd, head, hl), (ssize_t)hl);
    close(r->fd);

    /* Still serving on both doors. */
    hpp_client_t *c = s_client(e.direct);
    char m[128];
    s_model(c, "code", m, sizeof m);
    cr_assert_gt(strlen(m), 0);
    hpp_client_destroy(&c);
    free(r);
    s_stop(&e);
}

/* The resident size of process pid, in kB, read by the parser the
 * services' process_* metrics use. */
static long s_rss_kb(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    hpp_procstats_t ps;
    cr_assert_eq(
        hpp_procstats_parse_stat(line, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), 0, &ps), 0,
        "%s", line);
    return (long)(ps.resident_bytes / 1024);
}

/* A client that writes requests and never reads the replies: the engine
 * stops reading from it once --peer-queue-kb of replies wait, so the
 * client's writes stall while the engine holds little, other clients are
 * served, and the queued bytes go when it leaves. Without the pause the
 * engine would read all 8 MiB of requests and queue their replies. */
Test(direct, a_client_that_never_reads_is_paused_not_buffered, .timeout = 60)
{
    s_engine_t e;
    char *extra[] = {"--peer-queue-kb", "64", "--queue-mb", "1", NULL};
    s_start_with(&e, "tcp://127.0.0.1:0", extra);
    hpp_client_t *c = s_client(e.direct);
    char m[128];
    s_model(c, "code", m, sizeof m); /* warm: the first decisions' memory */
    long rss0 = s_rss_kb(e.proc.pid);

    s_raw_t *r = calloc(1, sizeof *r);
    s_raw_open(r, e.direct);
    int small = 16384;
    setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
    static uint8_t chunk[64 * 1024];
    size_t clen = 0;
    for (uint64_t i = 0;; i++) {
        char b[256];
        size_t n = s_encode(b, sizeof b, PROTO_OP_ROUTE, i);
        if (clen + PROTO_ZMTP_HEAD_MAX + n > sizeof chunk) {
            break;
        }
        clen += s_put_frame(chunk + clen, b, n, false);
    }
    /* Whole chunks only, so the stream stays frames: a partial write is
     * finished before the next. */
    const size_t cap = 8u << 20;
    size_t sent = 0, off = 0;
    bool stalled = false;
    while (sent < cap && !stalled) {
        ssize_t n = write(r->fd, chunk + off, clen - off);
        if (n > 0) {
            sent += (size_t)n;
            off = (off + (size_t)n) % clen;
            continue;
        }
        cr_assert(n < 0 && errno == EAGAIN, "write: %s", strerror(errno));
        struct pollfd p = {r->fd, POLLOUT, 0};
        stalled = poll(&p, 1, 1000) == 0;
    }
    cr_assert(stalled, "the engine kept reading: %zu bytes of requests taken", sent);

    /* Stalled: others are served, and the engine holds about the limit. */
    s_model(c, "code", m, sizeof m);
    cr_assert_gt(strlen(m), 0);
    hpp_client_t *admin = s_client(e.router);
    long long queued = s_stat(admin, "queued_bytes", NULL);
    cr_assert(queued >= 64 * 1024 && queued <= 1024 * 1024,
              "queued_bytes %lld with %zu bytes of requests sent", queued, sent);
    long grown = s_rss_kb(e.proc.pid) - rss0;
    cr_assert_lt(grown, 32 * 1024, "the resident size grew %ld kB (%zu bytes of requests sent)",
                 grown, sent);

    /* Gone: its queued replies go with it. */
    close(r->fd);
    long long end = hh_now_ms() + S_TIMEOUT;
    while ((queued = s_stat(admin, "queued_bytes", NULL)) != 0 && hh_now_ms() < end) {
        hh_sleep_ms(20); /* polling the counter */
    }
    cr_assert_eq(queued, 0);
    hpp_client_destroy(&admin);
    hpp_client_destroy(&c);
    free(r);
    s_stop(&e);
}

Test(direct, ipc_listener_is_a_0660_socket_removed_at_exit)
{
    char dir[256], ep[320], path[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(path, sizeof path, "%s/engine.sock", dir);
    snprintf(ep, sizeof ep, "ipc://%s", path);
    s_engine_t e;
    s_start(&e, ep);
    cr_assert_str_eq(e.direct, ep);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
    hpp_client_t *c = s_client(ep);
    char m[128];
    s_model(c, "code", m, sizeof m);
    cr_assert_gt(strlen(m), 0);
    hpp_client_destroy(&c);
    s_stop(&e);
    cr_assert_neq(stat(path, &st), 0, "the socket file outlived the engine");
    /* A stale socket file (an engine killed) is replaced ... */
    s_start(&e, ep);
    cr_assert_eq(hh_signal(&e.proc, SIGKILL), 0);
    hh_wait_exit(&e.proc, 5000);
    cr_assert_eq(stat(path, &st), 0);
    s_start(&e, ep);
    s_stop(&e);
    /* ... a live one is not: the second engine is refused, the first serves on. */
    s_start(&e, ep);
    char *out2 = NULL;
    char *argv2[] = {hh_bin("hpp-engine"), "--listen", "tcp://127.0.0.1:0", "--direct", ep, NULL};
    cr_assert_neq(hh_run(argv2, "direct-cli", 15000, &out2), 0);
    cr_assert(strstr(out2, "another process serves"), "%s", out2);
    free(out2);
    c = s_client(ep);
    s_model(c, "code", m, sizeof m);
    hpp_client_destroy(&c);
    s_stop(&e);
    /* ... a file that is not a socket is not. */
    cr_assert_eq(hh_write_file(path, "keep me\n"), 0);
    char *out = NULL;
    char *argv[] = {hh_bin("hpp-engine"), "--listen", "tcp://127.0.0.1:0", "--direct", ep, NULL};
    cr_assert_neq(hh_run(argv, "direct-cli", 15000, &out), 0);
    cr_assert(strstr(out, "exists and is not a socket"), "%s", out);
    free(out);
    char *kept = hh_read_file(path, NULL);
    cr_assert_str_eq(kept, "keep me\n");
    free(kept);
    cr_assert_eq(test_tmpdir_remove(dir), 0, "%s", dir);
}

Test(direct, endpoints_refused_at_start)
{
    static const struct {
        const char *ep, *msg;
    } bad[] = {
        {"tcp://0.0.0.0:0", "'0.0.0.0' is not a loopback address"},
        {"tcp://192.0.2.1:0", "not a loopback address"},
        {"tcp://localhost:99999", "port must be 0-65535"},
        {"tcp://127.0.0.1", "expected tcp://HOST:PORT or ipc://PATH"},
        {"ipc://", "socket path must be 1-"},
        {"http://127.0.0.1:1", "expected tcp://127.0.0.1:PORT or ipc://PATH"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        char *argv[] = {hh_bin("hpp-engine"), "--listen",        "tcp://127.0.0.1:0",
                        "--direct",           (char *)bad[i].ep, NULL};
        int rc = hh_run(argv, "direct-cli", 15000, &out);
        cr_assert_eq(rc, 2, "%s: exit %d\n%s", bad[i].ep, rc, out);
        cr_assert(strstr(out, bad[i].msg), "%s: '%s' not in\n%s", bad[i].ep, bad[i].msg, out);
        free(out);
    }
}

/* A ROUTER peer that announces a routing id of the direct listener's shape
 * (a zero byte, 'D', 8 bytes) is not served: a worker's reply to it would
 * go to that direct connection. */
Test(direct, router_peers_cannot_take_a_direct_routing_id)
{
    s_engine_t e;
    s_start(&e, "tcp://127.0.0.1:0");
    s_raw_t *r = calloc(1, sizeof *r);
    r->fd = s_connect(e.router);
    proto_zmtp_init(&r->z, 1 << 20);
    uint8_t hs[256];
    memset(hs, 0, 64);
    hs[0] = 0xFF;
    hs[9] = 0x7F;
    hs[10] = 3;
    memcpy(hs + 12, "NULL", 4);
    uint8_t *p = hs + 64;
    static const uint8_t ready[] = "\x05READY"
                                   "\x0bSocket-Type\0\0\0\x06"
                                   "DEALER"
                                   "\x08Identity\0\0\0\x0a"
                                   "\0D\x01\0\0\0\0\0\0\0";
    size_t rl = sizeof ready - 1;
    *p++ = 0x04;
    *p++ = (uint8_t)rl;
    memcpy(p, ready, rl);
    p += rl;
    cr_assert_eq(write(r->fd, hs, (size_t)(p - hs)), p - hs);
    s_next(r, PROTO_ZMTP_EV_READY);
    char body[256];
    size_t bl = s_encode(body, sizeof body, PROTO_OP_STATS, 5);
    const void *f[] = {body};
    size_t l[] = {bl};
    s_send(r, f, l, 1);
    struct pollfd pf = {r->fd, POLLIN, 0};
    cr_assert_eq(poll(&pf, 1, 1000), 0, "a reply came to the borrowed routing id");
    close(r->fd);
    free(r);
    hpp_client_t *c = s_client(e.router);
    cr_assert_eq(s_stat(c, "malformed", NULL), 1);
    hpp_client_destroy(&c);
    s_stop(&e);
}

/* CPU seconds the process has used (utime + stime). */
static double s_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *text = hh_read_file(path, NULL);
    cr_assert_not_null(text);
    const char *p = strrchr(text, ')');
    unsigned long ut = 0, st = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    free(text);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Out of descriptors, the listener rests instead of waking the loop at once
 * for ever; once clients leave, it accepts again. */
Test(direct, out_of_descriptors_is_not_a_busy_loop, .timeout = 30)
{
    s_engine_t e;
    /* util-linux, part of every Debian system: the limit for the engine alone. */
    char *argv[] = {"/usr/bin/prlimit",
                    "--nofile=48:48",
                    hh_bin("hpp-engine"),
                    "--listen",
                    "tcp://127.0.0.1:0",
                    "--threads",
                    "2",
                    "--direct",
                    "tcp://127.0.0.1:0",
                    NULL};
    cr_assert_eq(hh_spawn(&e.proc, argv, "direct-emfile"), 0);
    s_line_value(&e.proc, "hpp-engine: direct on ", e.direct, sizeof e.direct);
    s_line_value(&e.proc, "hpp-engine: ready on ", e.router, sizeof e.router);
    int fds[40];
    for (int i = 0; i < 40; i++) {
        fds[i] = s_connect(e.direct);
    }
    hh_sleep_ms(300);
    double c0 = s_cpu_s(e.proc.pid);
    hh_sleep_ms(2000);
    double used = s_cpu_s(e.proc.pid) - c0;
    cr_assert_lt(used, 0.5, "the engine used %.2f s of CPU in 2 s with no descriptor left", used);
    cr_assert_geq(hh_count_lines(&e.proc, "Too many open files"), 1, "log: %s", e.proc.log);
    cr_assert_leq(hh_count_lines(&e.proc, "Too many open files"), 4,
                  "one line a second at most (log: %s)", e.proc.log);
    for (int i = 0; i < 40; i++) {
        close(fds[i]);
    }
    hpp_client_t *c = s_client(e.direct);
    char m[128];
    s_model(c, "code", m, sizeof m);
    cr_assert_gt(strlen(m), 0);
    hpp_client_destroy(&c);
    s_stop(&e);
}
