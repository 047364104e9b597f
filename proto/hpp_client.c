/* hpp_client.c - DEALER client of hpp-engine with pipelining by id.
 *
 * Owns: the socket, optionally its context, an encode buffer, the stash
 * of replies received while waiting for another id, and the ids of
 * requests that were sent more than once (whose second reply is dropped).
 * Requests go out as one bare frame (the DEALER shape without delimiter,
 * PROTOCOL.md "Frames"). Replies are kept as zmq_msg_t and decoded in
 * place, so receiving copies nothing; the stash keeps the message and its
 * decoded id only. The behaviour with several engines is described in
 * hpp_client.h.
 */
#include "hpp_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hpp_keys.h"

/* Ids of resent requests remembered for dropping their late replies: the
 * newest S_FORGET, enough for every resent call of the last seconds. */
#define S_FORGET 256
/* Resends back off by doubling, up to this interval. */
#define S_RESEND_MAX_MS 2000

/* A stashed reply: the frame and the id it answers. */
typedef struct {
    zmq_msg_t msg; /* the frame */
    proto_id_t id; /* its id (a string id borrows from msg) */
    uint64_t seq;  /* arrival order, to drop the oldest */
} s_stashed_t;

/* The id of a resent request, owned (a string id is copied). */
typedef struct {
    proto_id_t id;              /* kind NONE when the slot is free */
    char str[PROTO_MAX_ID + 1]; /* a string id's bytes */
} s_forgot_t;

struct hpp_client {
    void *ctx;          /* ZeroMQ context */
    bool own_ctx;       /* we created it */
    void *sock;         /* DEALER */
    proto_buf_t out;    /* request encode buffer */
    uint64_t next_id;   /* next automatic id */
    s_stashed_t *stash; /* HPP_CLIENT_STASH slots */
    size_t nstash;      /* used slots */
    uint64_t seq;       /* arrival counter */
    size_t dropped;     /* replies dropped from a full stash */
    int resend_ms;      /* first resend of call(); 0 = never */
    s_forgot_t *forget; /* S_FORGET ids of resent requests (a ring) */
    size_t nforget;     /* slots ever written (next one: nforget % S_FORGET) */
    size_t resent;      /* requests sent again */
    size_t duplicates;  /* their second replies, dropped */
    char errstr[256];   /* last error's details */
};

static const char *const s_rc_names[] = {"ok",           "bad argument",   "transport error",
                                         "timeout",      "protocol error", "engine error",
                                         "out of memory"};

const char *hpp_strerror(int rc)
{
    if (rc <= 0 && -rc < (int)(sizeof s_rc_names / sizeof s_rc_names[0])) {
        return s_rc_names[-rc];
    }
    return "unknown error";
}

static int s_err(hpp_client_t *self, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_err(hpp_client_t *self, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->errstr, sizeof self->errstr, fmt, ap);
    va_end(ap);
    return rc;
}

void hpp_client_opts_init(hpp_client_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->heartbeat_ms = HPP_CLIENT_HEARTBEAT_MS;
    opts->resend_ms = HPP_CLIENT_RESEND_MS;
}

/* Sets the CURVE options from the two key files (hpp_keys.h); the secret is
 * wiped from memory once libzmq has its copy. */
static int s_curve(void *sock, const char *server_file, const char *secret_file, char *errbuf,
                   size_t errlen)
{
    hpp_curve_client_t keys;
    int rc = hpp_curve_client_load(&keys, server_file, secret_file, errbuf, errlen);
    rc = rc == 0 ? hpp_curve_client_apply(&keys, sock, errbuf, errlen) : rc;
    hpp_curve_client_wipe(&keys);
    return rc;
}

/* Checks what the options ask for before anything is allocated. */
static int s_opts_check(const hpp_client_opts_t *o, char *errbuf, size_t errlen)
{
    if (!o || !o->endpoints || o->nendpoints == 0) {
        snprintf(errbuf, errlen, "no endpoint");
        return -1;
    }
    if (o->nendpoints > HPP_CLIENT_MAX_ENDPOINTS) {
        snprintf(errbuf, errlen, "%zu endpoints, at most %d", o->nendpoints,
                 HPP_CLIENT_MAX_ENDPOINTS);
        return -1;
    }
    for (size_t i = 0; i < o->nendpoints; i++) {
        if (!o->endpoints[i] || !o->endpoints[i][0]) {
            snprintf(errbuf, errlen, "endpoint %zu is empty", i + 1);
            return -1;
        }
    }
    if (!o->curve_server_key != !o->curve_secret_key) {
        snprintf(errbuf, errlen,
                 "CURVE needs both the engine's public key file and this "
                 "client's secret key file");
        return -1;
    }
    /* TTL and timeout are 3 intervals; ZeroMQ's TTL is in 100 ms units, at most 0xffff. */
    if (o->heartbeat_ms < 0 || o->heartbeat_ms > 600000) {
        snprintf(errbuf, errlen, "heartbeat of %d ms: expected 0 (off) to 600000", o->heartbeat_ms);
        return -1;
    }
    if (o->resend_ms < 0) {
        snprintf(errbuf, errlen, "resend after %d ms: expected 0 (never) or more", o->resend_ms);
        return -1;
    }
    return 0;
}

hpp_client_t *hpp_client_new_opts(const hpp_client_opts_t *opts, void *zmq_ctx, char *errbuf,
                                  size_t errlen)
{
    if (s_opts_check(opts, errbuf, errlen) != 0) {
        return NULL;
    }
    hpp_client_t *self = calloc(1, sizeof *self);
    if (!self || proto_buf_init(&self->out, 1024) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        free(self);
        return NULL;
    }
    self->stash = calloc(HPP_CLIENT_STASH, sizeof *self->stash);
    self->forget = calloc(S_FORGET, sizeof *self->forget);
    self->ctx = zmq_ctx ? zmq_ctx : zmq_ctx_new();
    self->own_ctx = zmq_ctx == NULL;
    self->next_id = 1;
    self->resend_ms = opts->resend_ms;
    if (!self->stash || !self->forget || !self->ctx) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock) {
        snprintf(errbuf, errlen, "zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 0, hwm = 100000, ivl = 100;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    if (opts->nendpoints > 1) {
        /* Round robin only over engines that are connected: without this a
         * request would wait in the queue of an engine that is away while
         * the others could answer it. */
        int on = 1;
        zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &on, sizeof on);
    }
    if (opts->heartbeat_ms > 0) {
        /* A peer silent for 3 intervals is disconnected (and, with
         * ZMQ_IMMEDIATE, leaves the round robin); the TTL tells the engine
         * to do the same with a client that went silent. */
        int hb = opts->heartbeat_ms, dead = 3 * opts->heartbeat_ms;
        int ttl = dead < 0xffff * 100 ? dead : 0xffff * 100;
        zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
        zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TIMEOUT, &dead, sizeof dead);
        zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl);
    }
    if (opts->curve_server_key &&
        s_curve(self->sock, opts->curve_server_key, opts->curve_secret_key, errbuf, errlen) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < opts->nendpoints; i++) {
        if (zmq_connect(self->sock, opts->endpoints[i]) != 0) {
            snprintf(errbuf, errlen, "cannot connect to %s: %s", opts->endpoints[i],
                     zmq_strerror(errno));
            goto fail;
        }
    }
    return self;
fail:
    hpp_client_destroy(&self);
    return NULL;
}

hpp_client_t *hpp_client_new(const char *endpoint, void *zmq_ctx, char *errbuf, size_t errlen)
{
    if (!endpoint) {
        snprintf(errbuf, errlen, "no endpoint");
        return NULL;
    }
    hpp_client_opts_t o;
    hpp_client_opts_init(&o);
    o.endpoints = &endpoint;
    o.nendpoints = 1;
    o.resend_ms = 0;
    return hpp_client_new_opts(&o, zmq_ctx, errbuf, errlen);
}

void hpp_client_destroy(hpp_client_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    hpp_client_t *self = *self_p;
    for (size_t i = 0; i < self->nstash; i++) {
        zmq_msg_close(&self->stash[i].msg);
    }
    free(self->stash);
    free(self->forget);
    if (self->sock) {
        zmq_close(self->sock);
    }
    if (self->own_ctx && self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    proto_buf_destroy(&self->out);
    free(self);
    *self_p = NULL;
}

void hpp_reply_close(hpp_reply_t *rep)
{
    if (rep && rep->has_msg) {
        zmq_msg_close(&rep->msg);
        rep->has_msg = false;
        rep->data = NULL;
        rep->len = 0;
    }
}

size_t hpp_client_dropped(const hpp_client_t *self)
{
    return self->dropped;
}

void hpp_client_counters(const hpp_client_t *self, hpp_client_counters_t *out)
{
    out->dropped = self->dropped;
    out->resent = self->resent;
    out->duplicates = self->duplicates;
}

const char *hpp_client_errstr(const hpp_client_t *self)
{
    return self->errstr;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before `deadline` (-1 = none), at least 0. */
static long s_left(int64_t deadline)
{
    if (deadline < 0) {
        return -1;
    }
    int64_t left = deadline - s_now_ms();
    return left > 0 ? (long)left : 0;
}

static int64_t s_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
}

/* Waits for `events` on the socket until the deadline. */
static int s_wait(hpp_client_t *self, short events, int64_t deadline)
{
    for (;;) {
        zmq_pollitem_t it = {self->sock, 0, events, 0};
        int rc = zmq_poll(&it, 1, s_left(deadline));
        if (rc > 0) {
            return HPP_OK;
        }
        if (rc == 0) {
            return s_err(self, HPP_ERR_TIMEOUT, "%s timed out",
                         events == ZMQ_POLLOUT ? "send" : "receive");
        }
        if (errno != EINTR) {
            return s_err(self, HPP_ERR_TRANSPORT, "poll: %s", zmq_strerror(errno));
        }
    }
}

/* The forget ring ----------------------------------------------------------- */

/* Slot of `id` in the forget ring, or -1. */
static ssize_t s_forget_find(const hpp_client_t *self, const proto_id_t *id)
{
    if (id->kind == PROTO_ID_NONE) {
        return -1; /* a reply without id is nobody's twin; free slots are NONE too */
    }
    size_t n = self->nforget < S_FORGET ? self->nforget : S_FORGET;
    for (size_t i = 0; i < n; i++) {
        if (proto_id_equal(&self->forget[i].id, id)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* Remembers the id of a request that was sent more than once: any reply to
 * it that comes after the call returned is a duplicate. */
static void s_forget_add(hpp_client_t *self, const proto_id_t *id)
{
    if (s_forget_find(self, id) >= 0) {
        return;
    }
    s_forgot_t *f = &self->forget[self->nforget++ % S_FORGET];
    f->id = *id;
    if (id->kind == PROTO_ID_STR) {
        memcpy(f->str, id->str.ptr, id->str.len);
        f->str[id->str.len] = '\0';
        f->id.str.ptr = f->str;
    }
}

/* A caller that sends an id again means a new request: its replies are
 * no longer duplicates of the old one. */
static void s_forget_drop(hpp_client_t *self, const proto_id_t *id)
{
    ssize_t i = self->nforget ? s_forget_find(self, id) : -1;
    if (i >= 0) {
        self->forget[i].id.kind = PROTO_ID_NONE;
    }
}

/* Sending ---------------------------------------------------------------------- */

/* Sends `req`, giving it a fresh id when it has none; `again` marks a
 * resend of the request just encoded (same bytes, same id). */
static int s_send_frame(hpp_client_t *self, proto_request_t *req, bool again, int64_t deadline)
{
    if (!again) {
        if (req->id.kind == PROTO_ID_NONE) {
            req->id = proto_id_uint(self->next_id++);
        } else {
            s_forget_drop(self, &req->id);
        }
    }
    if (!again) {
        proto_buf_reset(&self->out);
        if (proto_request_encode(&self->out, req) != PROTO_OK) {
            return s_err(self, HPP_ERR_NOMEM, "request could not be encoded");
        }
    }
    for (;;) {
        if (zmq_send(self->sock, self->out.data, self->out.len, ZMQ_DONTWAIT) >= 0) {
            return HPP_OK;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return s_err(self, HPP_ERR_TRANSPORT, "send: %s", zmq_strerror(errno));
        }
        int rc = s_wait(self, ZMQ_POLLOUT, deadline);
        if (rc != HPP_OK) {
            return rc;
        }
    }
}

int hpp_client_send(hpp_client_t *self, proto_request_t *req, int timeout_ms)
{
    if (!self || !req) {
        return HPP_ERR_ARG;
    }
    return s_send_frame(self, req, false, s_deadline(timeout_ms));
}

/* Moves a frame into `out` and decodes it. */
static int s_take(hpp_client_t *self, zmq_msg_t *msg, hpp_reply_t *out)
{
    hpp_reply_close(out);
    zmq_msg_init(&out->msg);
    zmq_msg_move(&out->msg, msg);
    zmq_msg_close(msg);
    out->has_msg = true;
    out->data = zmq_msg_data(&out->msg);
    out->len = zmq_msg_size(&out->msg);
    proto_error_t err;
    if (proto_reply_decode(out->data, out->len, &out->r, &err) != PROTO_OK) {
        return s_err(self, HPP_ERR_PROTO, "reply: %s", err.msg);
    }
    return HPP_OK;
}

/* Receives one frame from the socket (a delimiter frame, if the engine
 * echoed one, is skipped). */
static int s_recv_frame(hpp_client_t *self, zmq_msg_t *msg, int64_t deadline)
{
    for (;;) {
        zmq_msg_init(msg);
        if (zmq_msg_recv(msg, self->sock, ZMQ_DONTWAIT) >= 0) {
            if (zmq_msg_more(msg) && zmq_msg_size(msg) == 0) {
                zmq_msg_close(msg);
                continue; /* empty delimiter */
            }
            if (zmq_msg_more(msg)) {
                /* Not a reply shape this client produces: drain and report. */
                do {
                    zmq_msg_close(msg);
                    zmq_msg_init(msg);
                } while (zmq_msg_recv(msg, self->sock, 0) >= 0 && zmq_msg_more(msg));
                zmq_msg_close(msg);
                return s_err(self, HPP_ERR_PROTO, "unexpected multipart reply");
            }
            return HPP_OK;
        }
        zmq_msg_close(msg);
        if (errno != EAGAIN && errno != EINTR) {
            return s_err(self, HPP_ERR_TRANSPORT, "receive: %s", zmq_strerror(errno));
        }
        int rc = s_wait(self, ZMQ_POLLIN, deadline);
        if (rc != HPP_OK) {
            return rc;
        }
    }
}

/* Index of the stashed reply for `id` (any when id is NULL), or -1. */
static ssize_t s_stash_find(hpp_client_t *self, const proto_id_t *id)
{
    ssize_t best = -1;
    for (size_t i = 0; i < self->nstash; i++) {
        if (id ? proto_id_equal(&self->stash[i].id, id)
               : (best < 0 || self->stash[i].seq < self->stash[best].seq)) {
            best = (ssize_t)i;
            if (id) {
                break;
            }
        }
    }
    return best;
}

/* Offset of a string id inside its frame (small frames live inside the
 * zmq_msg_t itself, so a move relocates them: ids are re-pointed). */
static size_t s_id_off(const proto_id_t *id, zmq_msg_t *msg)
{
    return id->kind == PROTO_ID_STR ? (size_t)(id->str.ptr - (const char *)zmq_msg_data(msg)) : 0;
}

/* Moves slot `from` into the empty slot `to` (its message already closed). */
static void s_stash_move(hpp_client_t *self, size_t to, size_t from)
{
    s_stashed_t *d = &self->stash[to], *s = &self->stash[from];
    size_t off = s_id_off(&s->id, &s->msg);
    zmq_msg_init(&d->msg);
    zmq_msg_move(&d->msg, &s->msg);
    zmq_msg_close(&s->msg);
    d->id = s->id;
    d->seq = s->seq;
    if (d->id.kind == PROTO_ID_STR) {
        d->id.str.ptr = (const char *)zmq_msg_data(&d->msg) + off;
    }
}

/* Frees slot i (its message already closed or moved out). */
static void s_stash_remove(hpp_client_t *self, size_t i)
{
    size_t last = --self->nstash;
    if (i != last) {
        s_stash_move(self, i, last);
    }
}

static int s_stash_take(hpp_client_t *self, size_t i, hpp_reply_t *out)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    zmq_msg_move(&msg, &self->stash[i].msg);
    zmq_msg_close(&self->stash[i].msg);
    s_stash_remove(self, i);
    return s_take(self, &msg, out);
}

static void s_stash_put(hpp_client_t *self, zmq_msg_t *msg, const proto_id_t *id)
{
    if (self->nstash == HPP_CLIENT_STASH) {
        ssize_t old = s_stash_find(self, NULL);
        zmq_msg_close(&self->stash[old].msg);
        s_stash_remove(self, (size_t)old);
        self->dropped++;
    }
    size_t off = s_id_off(id, msg);
    s_stashed_t *s = &self->stash[self->nstash++];
    zmq_msg_init(&s->msg);
    zmq_msg_move(&s->msg, msg);
    zmq_msg_close(msg);
    s->seq = self->seq++;
    s->id = *id;
    if (id->kind == PROTO_ID_STR) {
        s->id.str.ptr = (const char *)zmq_msg_data(&s->msg) + off;
    }
}

static int s_recv_id(hpp_client_t *self, const proto_id_t *id, hpp_reply_t *out, int64_t deadline)
{
    ssize_t i = s_stash_find(self, id);
    if (i >= 0) {
        return s_stash_take(self, (size_t)i, out);
    }
    for (;;) {
        zmq_msg_t msg;
        int rc = s_recv_frame(self, &msg, deadline);
        if (rc != HPP_OK) {
            return rc;
        }
        proto_reply_t head;
        proto_error_t err;
        const void *data = zmq_msg_data(&msg);
        size_t len = zmq_msg_size(&msg);
        if (proto_reply_peek(data, len, &head, &err) != PROTO_OK) {
            if (!id) {
                return s_take(self, &msg, out); /* report it to a plain recv */
            }
            zmq_msg_close(&msg); /* undecodable: cannot tell whose it is */
            continue;
        }
        if (self->nforget && s_forget_find(self, &head.id) >= 0) {
            zmq_msg_close(&msg); /* the late twin of a reply already delivered */
            self->duplicates++;
            continue;
        }
        if (!id || proto_id_equal(&head.id, id)) {
            return s_take(self, &msg, out);
        }
        s_stash_put(self, &msg, &head.id);
    }
}

int hpp_client_recv(hpp_client_t *self, hpp_reply_t *out, int timeout_ms)
{
    if (!self || !out) {
        return HPP_ERR_ARG;
    }
    if (self->nstash > 0) {
        return s_stash_take(self, (size_t)s_stash_find(self, NULL), out);
    }
    return s_recv_id(self, NULL, out, s_deadline(timeout_ms));
}

int hpp_client_recv_id(hpp_client_t *self, const proto_id_t *id, hpp_reply_t *out, int timeout_ms)
{
    if (!self || !id || !out || id->kind == PROTO_ID_NONE) {
        return HPP_ERR_ARG;
    }
    return s_recv_id(self, id, out, s_deadline(timeout_ms));
}

int hpp_client_call(hpp_client_t *self, proto_request_t *req, hpp_reply_t *out, int timeout_ms)
{
    if (!self || !req || !out) {
        return HPP_ERR_ARG;
    }
    int64_t deadline = s_deadline(timeout_ms);
    int rc = s_send_frame(self, req, false, deadline);
    /* A reload is not resent: it is not a question, and two would bump
     * the policy version twice. */
    int interval = req->op == PROTO_OP_RELOAD ? 0 : self->resend_ms;
    int sends = 1;
    while (rc == HPP_OK) {
        int64_t wait = deadline;
        if (interval > 0) {
            int64_t next = s_now_ms() + interval;
            wait = deadline < 0 || next < deadline ? next : deadline;
        }
        rc = s_recv_id(self, &req->id, out, wait);
        if (rc != HPP_ERR_TIMEOUT || wait == deadline) {
            break;
        }
        /* No reply yet: the engine that took it may be gone. The next one
         * in turn gets the same bytes, the same id. */
        rc = s_send_frame(self, req, true, deadline);
        if (rc == HPP_OK) {
            sends++;
            self->resent++;
            interval = interval < S_RESEND_MAX_MS / 2 ? interval * 2 : S_RESEND_MAX_MS;
        }
    }
    if (sends > 1) {
        s_forget_add(self, &req->id);
        if (rc == HPP_ERR_TIMEOUT) {
            s_err(self, rc, "no reply in %d ms (sent %d times)", timeout_ms, sends);
        }
    }
    return rc == HPP_OK ? hpp_client_engine_rc(self, out) : rc;
}

int hpp_client_engine_rc(hpp_client_t *self, const hpp_reply_t *rep)
{
    if (rep->r.ok) {
        return HPP_OK;
    }
    return s_err(self, HPP_ERR_ENGINE, "%.*s: %.*s", (int)rep->r.code.len,
                 rep->r.code.ptr ? rep->r.code.ptr : "", (int)rep->r.message.len,
                 rep->r.message.ptr ? rep->r.message.ptr : "");
}

int hpp_client_route(hpp_client_t *self, const hpp_features_t *features, hpp_reply_t *out,
                     int timeout_ms)
{
    if (!features) {
        return HPP_ERR_ARG;
    }
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    req.features = *features;
    return hpp_client_call(self, &req, out, timeout_ms);
}

int hpp_client_op(hpp_client_t *self, proto_op_t op, hpp_reply_t *out, int timeout_ms)
{
    if ((unsigned)op >= PROTO_OP_COUNT || op == PROTO_OP_ROUTE || op == PROTO_OP_EXPLAIN ||
        op == PROTO_OP_REPORT) {
        return HPP_ERR_ARG;
    }
    proto_request_t req;
    proto_request_init(&req, op);
    return hpp_client_call(self, &req, out, timeout_ms);
}

/* Reports (the report op) ---------------------------------------------------- */

int hpp_client_report(hpp_client_t *self, const proto_attempt_t *attempts, size_t n, bool ack,
                      hpp_reply_t *out, int timeout_ms)
{
    if (!self || !attempts || n == 0 || n > PROTO_MAX_ATTEMPTS || (ack && !out)) {
        return HPP_ERR_ARG;
    }
    int64_t deadline = s_deadline(timeout_ms);
    proto_id_t id = proto_id_uint(self->next_id++);
    proto_buf_reset(&self->out);
    if (proto_report_encode(&self->out, &id, attempts, n, ack) != PROTO_OK) {
        return s_err(self, HPP_ERR_NOMEM, "report could not be encoded");
    }
    /* Sent once, never again: a resent report would count its attempts twice. */
    for (;;) {
        if (zmq_send(self->sock, self->out.data, self->out.len, ZMQ_DONTWAIT) >= 0) {
            break;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return s_err(self, HPP_ERR_TRANSPORT, "send: %s", zmq_strerror(errno));
        }
        int rc = s_wait(self, ZMQ_POLLOUT, deadline);
        if (rc != HPP_OK) {
            return rc;
        }
    }
    if (!ack) {
        return HPP_OK;
    }
    int rc = s_recv_id(self, &id, out, deadline);
    if (rc == HPP_OK && !out->r.ok) {
        rc = s_err(self, HPP_ERR_ENGINE, "%.*s: %.*s", (int)out->r.code.len,
                   out->r.code.ptr ? out->r.code.ptr : "", (int)out->r.message.len,
                   out->r.message.ptr ? out->r.message.ptr : "");
    }
    return rc;
}
