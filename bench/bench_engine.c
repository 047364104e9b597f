/* bench_engine.c - load generator for hpp-engine over ZeroMQ (loopback only).
 *
 *   bench_engine --endpoint tcp://127.0.0.1:5555 --mode closed --depth 64 --seconds 3
 *   bench_engine --endpoint tcp://127.0.0.1:5555 --mode open --rate 20000 --seconds 3
 *   bench_engine --endpoint ... --curve-server-key engine.pub --curve-secret bench.sec
 *
 * Closed loop: each connection (a DEALER) keeps `depth` route requests in
 * flight and sends a new one for every reply: throughput vs pipelining.
 * Open loop: requests are scheduled at a fixed total rate whatever the
 * engine does; latency is measured from each request's *scheduled* send
 * time, so a stall delays every request behind it and shows in the tail
 * instead of silently lowering the offered load (no coordinated omission).
 *
 * Latencies go into a log-linear histogram (HDR-like: 64 sub-buckets per
 * power of two, <= 1.6% relative error, 1 ns .. ~18 minutes), one per thread,
 * merged at the end. With the two CURVE key files (hpp_keys.h), every
 * connection is a CURVE client of the engine ("curve": true in the JSON),
 * so one run with and one without show what encryption costs on the
 * engine link. Prints a fixed-format summary, then one JSON line
 * (--json: the JSON line only). Bounded: at most 60 s, 127.0.0.1 only.
 * Exit status: 0 when every request was answered ok, 1 otherwise, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>
#include <zmq.h>

#include "hpp_keys.h"
#include "proto.h"

#define S_MAX_CONNS 64
#define S_SUB_BITS 6 /* 64 sub-buckets per power of two */
#define S_SUB (1u << S_SUB_BITS)
#define S_BUCKETS (S_SUB + 40 * S_SUB) /* values up to 2^46 ns */
#define S_RING (1u << 20)              /* outstanding requests tracked per connection */
#define S_DRAIN_NS 2000000000LL        /* wait this long for the last replies */
#define S_CHECK_EVERY 64               /* replies decoded in full: one in this many */

/* Log-linear latency histogram in nanoseconds. */
typedef struct {
    uint64_t counts[S_BUCKETS]; /* per bucket */
    uint64_t n;                 /* values recorded */
    uint64_t max;               /* largest value */
    double sum;                 /* for the mean */
} s_hist_t;

static unsigned s_bucket(uint64_t v)
{
    if (v < S_SUB) {
        return (unsigned)v;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= S_SUB_BITS */
    unsigned shift = e - S_SUB_BITS;
    unsigned idx = S_SUB + shift * S_SUB + (unsigned)((v >> shift) - S_SUB);
    return idx < S_BUCKETS ? idx : S_BUCKETS - 1;
}

/* Upper bound of a bucket: what a percentile reports (conservative). */
static uint64_t s_bucket_high(unsigned idx)
{
    if (idx < S_SUB) {
        return idx;
    }
    unsigned shift = (idx - S_SUB) / S_SUB;
    uint64_t base = (uint64_t)(S_SUB + (idx - S_SUB) % S_SUB) << shift;
    return base + ((uint64_t)1 << shift) - 1;
}

static void s_hist_add(s_hist_t *h, uint64_t v)
{
    h->counts[s_bucket(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max) {
        h->max = v;
    }
}

static void s_hist_merge(s_hist_t *into, const s_hist_t *from)
{
    for (unsigned i = 0; i < S_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }
    into->n += from->n;
    into->sum += from->sum;
    if (from->max > into->max) {
        into->max = from->max;
    }
}

static double s_hist_pct_us(const s_hist_t *h, double pct)
{
    if (h->n == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->n);
    rank = rank ? rank : 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < S_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = s_bucket_high(i);
            return (double)(v < h->max ? v : h->max) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Options ------------------------------------------------------------------- */

typedef struct {
    const char *endpoint;         /* engine, loopback */
    bool open;                    /* open loop (else closed) */
    int depth;                    /* closed: in flight per connection */
    int conns;                    /* DEALER sockets, one thread each */
    double rate;                  /* open: requests/s in total */
    double seconds;               /* measured duration */
    double warmup;                /* seconds before measuring */
    long long requests;           /* closed: stop after this many (0 = by time) */
    bool json_only;               /* --json */
    bool echo;                    /* --echo: measure a trivial server (a child process) instead */
    const char *curve_server_key; /* --curve-server-key: the engine's public key file */
    const char *curve_secret;     /* --curve-secret: this client's secret key file */
    hpp_curve_client_t curve;     /* the keys read from them */
} s_opts_t;

/* One connection's thread state and results. */
typedef struct {
    const s_opts_t *o; /* options */
    void *ctx;         /* shared ZeroMQ context */
    int index;         /* connection number */
    s_hist_t *hist;    /* measured latencies */
    int64_t *sent_at;  /* per id % S_RING: intended (open) or actual (closed) send time */
    uint64_t sent;     /* requests sent (measured window) */
    uint64_t ok;       /* ok replies (measured) */
    uint64_t errors;   /* ok=false or undecodable replies (measured) */
    uint64_t lost;     /* measured requests never answered */
    char error[160];   /* first error seen */
} s_conn_t;

static atomic_llong s_closed_budget; /* --requests left to send, shared */
static const char *s_key;            /* --key: the `key` feature of every route, or NULL */

/* A route request with a rotating hint; ids encode nothing but the sequence. */
static size_t s_encode(char *mem, size_t cap, uint64_t id)
{
    static const char *const hints[] = {"chat", "code", "solidity", "summarize", "reasoning"};
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.id = proto_id_uint(id);
    req.features.prompt_tokens = 200 + (int64_t)(id % 4000);
    req.features.hints[0].ptr = hints[id % 5];
    req.features.hints[0].len = (uint32_t)strlen(hints[id % 5]);
    req.features.nhints = 1;
    if (s_key) {
        req.features.key.ptr = s_key;
        req.features.key.len = (uint32_t)strlen(s_key);
    }
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, cap);
    return proto_request_encode(&b, &req) == PROTO_OK ? b.len : 0;
}

/* Handles one reply frame. Returns its id, or UINT64_MAX if undecodable.
 * Matching a reply needs only its head (proto_reply_peek), as in any
 * pipelining client; one reply in S_CHECK_EVERY is decoded in full so that
 * a broken reply still shows, without the load generator spending on every
 * reply the CPU the engine shares with it. */
static uint64_t s_on_reply(s_conn_t *c, const void *data, size_t len, int64_t now, bool measure,
                           int64_t measure_from)
{
    proto_reply_t r;
    proto_error_t err;
    int rc = proto_reply_peek(data, len, &r, &err);
    if (rc == PROTO_OK && r.id.kind == PROTO_ID_UINT && r.id.num % S_CHECK_EVERY == 0) {
        rc = proto_reply_decode(data, len, &r, &err);
    }
    if (rc != PROTO_OK || r.id.kind != PROTO_ID_UINT) {
        if (!c->error[0]) {
            snprintf(c->error, sizeof c->error, "undecodable reply: %.120s", err.msg);
        }
        c->errors += measure;
        return UINT64_MAX;
    }
    int64_t t = c->sent_at[r.id.num % S_RING];
    if (measure && t >= measure_from) {
        if (r.ok) {
            c->ok++;
            s_hist_add(c->hist, (uint64_t)(now - t));
        } else {
            c->errors++;
            if (!c->error[0]) {
                snprintf(c->error, sizeof c->error, "%.*s: %.*s", (int)r.code.len, r.code.ptr,
                         (int)r.message.len, r.message.ptr);
            }
        }
    }
    return r.id.num;
}

static void *s_conn_main(void *arg)
{
    s_conn_t *c = arg;
    const s_opts_t *o = c->o;
    void *sock = zmq_socket(c->ctx, ZMQ_DEALER);
    int hwm = 0, linger = 0;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (o->curve_server_key &&
        hpp_curve_client_apply(&o->curve, sock, c->error, sizeof c->error) != 0) {
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, o->endpoint) != 0) {
        snprintf(c->error, sizeof c->error, "connect: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    int zfd = -1;
    size_t zlen = sizeof zfd;
    zmq_getsockopt(sock, ZMQ_FD, &zfd, &zlen);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* precise wakeups for the schedule */
    char req[512];
    uint64_t next_id = 1, answered_through_end = 0;
    int64_t start = s_now_ns();
    int64_t measure_from = start + (int64_t)(o->warmup * 1e9);
    int64_t end = measure_from + (int64_t)(o->seconds * 1e9);
    /* Open loop: this connection's share of the rate, phase-shifted. */
    double interval = o->open ? 1e9 * o->conns / o->rate : 0;
    double next_send = (double)start + interval * c->index / o->conns;
    uint64_t inflight = 0;
    uint64_t measured_sent = 0, measured_answered = 0;
    bool sending = true;

    for (;;) {
        int64_t now = s_now_ns();
        if (now >= end && sending) {
            sending = false;
            end = now + S_DRAIN_NS; /* now waiting for the stragglers */
        }
        if (!sending && (inflight == 0 || now >= end)) {
            break;
        }
        /* Send what is due. */
        if (sending) {
            if (o->open) {
                while ((double)now >= next_send) {
                    uint64_t id = next_id++;
                    size_t n = s_encode(req, sizeof req, id);
                    c->sent_at[id % S_RING] = (int64_t)next_send; /* scheduled, not actual */
                    if (zmq_send(sock, req, n, ZMQ_DONTWAIT) < 0) {
                        snprintf(c->error, sizeof c->error, "send: %s", zmq_strerror(errno));
                        goto out;
                    }
                    inflight++;
                    if ((int64_t)next_send >= measure_from) {
                        measured_sent++;
                    }
                    next_send += interval;
                }
            } else {
                while (inflight < (uint64_t)o->depth) {
                    if (o->requests > 0 && atomic_fetch_sub(&s_closed_budget, 1) <= 0) {
                        sending = false;
                        end = now + S_DRAIN_NS;
                        break;
                    }
                    uint64_t id = next_id++;
                    size_t n = s_encode(req, sizeof req, id);
                    c->sent_at[id % S_RING] = s_now_ns();
                    if (zmq_send(sock, req, n, ZMQ_DONTWAIT) < 0) {
                        snprintf(c->error, sizeof c->error, "send: %s", zmq_strerror(errno));
                        goto out;
                    }
                    inflight++;
                    if (c->sent_at[id % S_RING] >= measure_from) {
                        measured_sent++;
                    }
                }
            }
        }
        /* Receive until the next send is due. The open loop sleeps with
         * nanosecond precision on the socket's fd (zmq_poll counts whole
         * milliseconds, which would either spin or oversleep). */
        int rc;
        if (o->open && sending) {
            int events = 0;
            size_t elen = sizeof events;
            zmq_getsockopt(sock, ZMQ_EVENTS, &events, &elen);
            rc = (events & ZMQ_POLLIN) ? 1 : 0;
            int64_t wait_ns = (int64_t)next_send - s_now_ns();
            if (!rc && wait_ns > 0) {
                struct pollfd pfd = {.fd = zfd, .events = POLLIN};
                struct timespec ts = {wait_ns / 1000000000LL, wait_ns % 1000000000LL};
                ppoll(&pfd, 1, &ts, NULL);
                zmq_getsockopt(sock, ZMQ_EVENTS, &events, &elen);
                rc = (events & ZMQ_POLLIN) ? 1 : 0;
            }
        } else {
            zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
            rc = zmq_poll(&it, 1, 100);
            if (rc < 0 && errno != EINTR) {
                snprintf(c->error, sizeof c->error, "poll: %s", zmq_strerror(errno));
                break;
            }
        }
        for (int k = 0; rc > 0 && k < 4096; k++) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            int64_t t = s_now_ns();
            uint64_t id = s_on_reply(c, zmq_msg_data(&m), zmq_msg_size(&m), t, true, measure_from);
            zmq_msg_close(&m);
            if (id != UINT64_MAX) {
                inflight--;
                measured_answered += c->sent_at[id % S_RING] >= measure_from;
                answered_through_end++;
            }
        }
    }
out:
    c->sent = measured_sent;
    c->lost = measured_sent > measured_answered ? measured_sent - measured_answered : 0;
    (void)answered_through_end;
    zmq_close(sock);
    return NULL;
}

/* Echo baseline ------------------------------------------------------------------- */

/* A ROUTER that decodes each request and answers a ping-sized reply with
 * its id: the same sockets, threads and transport as the engine, without
 * the decision. It runs in a child process, as the engine runs in its own:
 * in the load generator's process every hand-off between client and server
 * threads would skip the switch between address spaces that the engine's
 * requests pay, and the floor would read a few microseconds too low. The
 * difference between the two runs is what the engine adds over ZeroMQ
 * itself on this machine. */
typedef struct {
    pid_t pid;          /* the child serving */
    char endpoint[128]; /* its bound endpoint */
} s_echo_t;

/* The child: serves until SIGTERM (or until the parent dies). */
static _Noreturn void s_echo_serve(int ready_fd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        _exit(0); /* the parent died before the line above */
    }
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    int hwm = 0;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    char endpoint[128] = "";
    size_t n = sizeof endpoint;
    if (zmq_bind(sock, "tcp://127.0.0.1:0") != 0 ||
        zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &n) != 0) {
        _exit(1); /* the parent reads EOF */
    }
    if (write(ready_fd, endpoint, strlen(endpoint)) < 0) {
        _exit(1);
    }
    close(ready_fd);
    char mem[256];
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&body, sock, 0) < 0) {
            _exit(0);
        }
        proto_request_t req;
        proto_request_decode(zmq_msg_data(&body), zmq_msg_size(&body), &req, NULL);
        proto_buf_t b;
        proto_buf_init_fixed(&b, mem, sizeof mem);
        proto_reply_ping(&b, &req.id, 1, "echo");
        zmq_msg_close(&body);
        zmq_msg_send(&id, sock, ZMQ_SNDMORE);
        zmq_send(sock, b.data, b.len, 0);
    }
}

/* Forks the echo server and waits for its endpoint. Call it before this
 * process creates any ZeroMQ context (a context does not survive fork). */
static int s_echo_start(s_echo_t *e)
{
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    e->pid = fork();
    if (e->pid < 0) {
        return -1;
    }
    if (e->pid == 0) {
        close(fds[0]);
        s_echo_serve(fds[1], parent);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], e->endpoint + got, sizeof e->endpoint - 1 - got)) > 0) {
        got += (size_t)r;
    }
    close(fds[0]);
    e->endpoint[got] = '\0';
    if (got == 0) {
        waitpid(e->pid, NULL, 0);
        errno = EADDRNOTAVAIL;
        return -1;
    }
    return 0;
}

static void s_echo_stop(s_echo_t *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
}

/* Command line ------------------------------------------------------------------ */

static int s_usage(const char *msg)
{
    fprintf(msg ? stderr : stdout,
            "%s%s%s"
            "usage: bench_engine [--endpoint tcp://127.0.0.1:PORT] [--mode closed|open]\n"
            "         [--depth N] [--connections N] [--rate PER_S] [--seconds S]\n"
            "         [--warmup S] [--requests N] [--echo] [--json]\n"
            "         [--curve-server-key FILE --curve-secret FILE] [--key sha256:HEX]\n"
            "--echo: load a ZeroMQ echo server (started in a child process, like the\n"
            "        engine in its own) instead of the engine: the transport floor of this\n"
            "        machine, for comparison\n"
            "--curve-server-key, --curve-secret: connect as a CURVE client (the engine's\n"
            "        public key file, this client's secret key file, mode 0600)\n"
            "--key: every route carries this API key hash (an engine with --ledger\n"
            "        checks and reserves against it; nothing is reported, so its\n"
            "        reservations stay until --ledger-hold)\n"
            "Exit: 0 when every request was answered, 1 otherwise, 2 on bad usage.\n",
            msg ? "bench_engine: " : "", msg ? msg : "", msg ? "\n" : "");
    return msg ? 2 : 0;
}

static bool s_loopback(const char *ep)
{
    static const char *const ok[] = {
        "tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:", "ipc://"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (strncmp(ep, ok[i], strlen(ok[i])) == 0) {
            return true;
        }
    }
    return false;
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json_only = true;
            continue;
        }
        if (!strcmp(a, "--echo")) {
            o->echo = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(NULL);
            return 1; /* stop: main exits 0 */
        }
        if (i + 1 >= argc) {
            return s_usage("missing value or unknown flag");
        }
        const char *v = argv[++i];
        char *end = NULL;
        double d = strtod(v, &end);
        bool num = end && *end == '\0' && end != v;
        if (!strcmp(a, "--endpoint")) {
            o->endpoint = v;
        } else if (!strcmp(a, "--curve-server-key")) {
            o->curve_server_key = v;
        } else if (!strcmp(a, "--curve-secret")) {
            o->curve_secret = v;
        } else if (!strcmp(a, "--key")) {
            if (hpp_check_key_hash((hpp_str_t){.ptr = v, .len = (uint32_t)strlen(v)})) {
                return s_usage("--key: expected sha256: and 64 lowercase hex digits");
            }
            s_key = v;
        } else if (!strcmp(a, "--mode")) {
            if (strcmp(v, "open") && strcmp(v, "closed")) {
                return s_usage("--mode is open or closed");
            }
            o->open = !strcmp(v, "open");
        } else if (!num) {
            return s_usage("expected a number");
        } else if (!strcmp(a, "--depth") && d >= 1 && d <= 100000) {
            o->depth = (int)d;
        } else if (!strcmp(a, "--connections") && d >= 1 && d <= S_MAX_CONNS) {
            o->conns = (int)d;
        } else if (!strcmp(a, "--rate") && d >= 1 && d <= 10e6) {
            o->rate = d;
        } else if (!strcmp(a, "--seconds") && d > 0 && d <= 60) {
            o->seconds = d;
        } else if (!strcmp(a, "--warmup") && d >= 0 && d <= 10) {
            o->warmup = d;
        } else if (!strcmp(a, "--requests") && d >= 1 && d <= 1e9) {
            o->requests = (long long)d;
        } else {
            return s_usage("unknown flag or value out of range");
        }
    }
    if (!s_loopback(o->endpoint)) {
        return s_usage("the endpoint must be on 127.0.0.1, localhost, [::1] or ipc://");
    }
    if (!o->curve_server_key != !o->curve_secret) {
        return s_usage("CURVE needs both --curve-server-key and --curve-secret");
    }
    if (o->curve_server_key && o->echo) {
        return s_usage("--echo serves without CURVE");
    }
    if (o->curve_server_key) {
        char err[512];
        if (hpp_curve_client_load(&o->curve, o->curve_server_key, o->curve_secret, err,
                                  sizeof err) != 0) {
            return s_usage(err);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o = {.endpoint = "tcp://127.0.0.1:5555",
                  .depth = 64,
                  .conns = 1,
                  .rate = 20000,
                  .seconds = 3,
                  .warmup = 0.3};
    int rc = s_parse(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (o.requests > 0) {
        /* A request count replaces the duration (bounded at 60 s anyway). */
        o.open = false;
        o.warmup = 0;
        o.seconds = 60;
        atomic_store(&s_closed_budget, o.requests);
    }
    s_echo_t echo = {0};
    if (o.echo) {
        if (s_echo_start(&echo) != 0) {
            fprintf(stderr, "bench_engine: echo server: %s\n", zmq_strerror(errno));
            return 1;
        }
        o.endpoint = echo.endpoint;
    }
    void *ctx = zmq_ctx_new();
    s_conn_t conns[S_MAX_CONNS];
    pthread_t th[S_MAX_CONNS];
    memset(conns, 0, sizeof conns);
    for (int i = 0; i < o.conns; i++) {
        conns[i].o = &o;
        conns[i].ctx = ctx;
        conns[i].index = i;
        conns[i].hist = calloc(1, sizeof(s_hist_t));
        conns[i].sent_at = calloc(S_RING, sizeof(int64_t));
        if (!conns[i].hist || !conns[i].sent_at) {
            fprintf(stderr, "bench_engine: out of memory\n");
            return 1;
        }
    }
    int64_t t0 = s_now_ns();
    for (int i = 0; i < o.conns; i++) {
        pthread_create(&th[i], NULL, s_conn_main, &conns[i]);
    }
    s_hist_t *all = calloc(1, sizeof *all);
    uint64_t sent = 0, ok = 0, errors = 0, lost = 0;
    const char *first_error = "";
    for (int i = 0; i < o.conns; i++) {
        pthread_join(th[i], NULL);
        s_hist_merge(all, conns[i].hist);
        sent += conns[i].sent;
        ok += conns[i].ok;
        errors += conns[i].errors;
        lost += conns[i].lost;
        if (!first_error[0] && conns[i].error[0]) {
            first_error = conns[i].error;
        }
    }
    double wall = (double)(s_now_ns() - t0) / 1e9;
    double measured = o.requests > 0 ? wall : o.seconds;
    double rps = (double)ok / measured;
    double p50 = s_hist_pct_us(all, 50), p90 = s_hist_pct_us(all, 90);
    double p99 = s_hist_pct_us(all, 99), p999 = s_hist_pct_us(all, 99.9);
    double mean = all->n ? all->sum / (double)all->n / 1000.0 : 0;
    double max = (double)all->max / 1000.0;
    if (!o.json_only) {
        printf("bench_engine %s%s%s %s conns=%d %s%g seconds=%.2f\n", o.echo ? "echo " : "",
               o.curve_server_key ? "curve " : "", o.endpoint, o.open ? "open" : "closed", o.conns,
               o.open ? "rate=" : "depth=", o.open ? o.rate : (double)o.depth, measured);
        printf("  requests  sent %llu  ok %llu  errors %llu  lost %llu\n", (unsigned long long)sent,
               (unsigned long long)ok, (unsigned long long)errors, (unsigned long long)lost);
        printf("  throughput %.0f decisions/s\n", rps);
        printf("  latency_us p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", p50,
               p90, p99, p999, max, mean);
        if (first_error[0]) {
            printf("  first error: %s\n", first_error);
        }
    }
    printf("{\"tool\":\"bench_engine\",\"target\":\"%s\",\"endpoint\":\"%s\",\"mode\":\"%s\","
           "\"connections\":%d,"
           "\"depth\":%d,\"rate\":%.0f,\"seconds\":%.3f,\"sent\":%llu,\"ok\":%llu,"
           "\"errors\":%llu,\"lost\":%llu,\"failed\":%llu,\"rps\":%.1f,"
           "\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
           "\"mean_us\":%.2f,\"latency_from\":\"%s\",\"curve\":%s}\n",
           o.echo ? "echo" : "engine", o.endpoint, o.open ? "open" : "closed", o.conns,
           o.open ? 0 : o.depth, o.open ? o.rate : 0, measured, (unsigned long long)sent,
           (unsigned long long)ok, (unsigned long long)errors, (unsigned long long)lost,
           (unsigned long long)(errors + lost), rps, p50, p90, p99, p999, max, mean,
           o.open ? "scheduled send time" : "actual send time",
           o.curve_server_key ? "true" : "false");
    for (int i = 0; i < o.conns; i++) {
        free(conns[i].hist);
        free(conns[i].sent_at);
    }
    free(all);
    hpp_curve_client_wipe(&o.curve);
    zmq_ctx_term(ctx);
    if (o.echo) {
        s_echo_stop(&echo);
    }
    return errors + lost == 0 && ok > 0 ? 0 : 1;
}
