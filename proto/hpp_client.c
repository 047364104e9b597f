/* hpp_client.c - DEALER client of hpp-engine with pipelining by id.
 *
 * Owns: the socket, optionally its context, an encode buffer and the stash
 * of replies received while waiting for another id. Requests go out as one
 * bare frame (the DEALER shape without delimiter, PROTOCOL.md "Frames").
 * Replies are kept as zmq_msg_t and decoded in place, so receiving copies
 * nothing; the stash keeps the message and its decoded id only.
 */
#include "hpp_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A stashed reply: the frame and the id it answers. */
typedef struct {
    zmq_msg_t msg; /* the frame */
    proto_id_t id; /* its id (a string id borrows from msg) */
    uint64_t seq;  /* arrival order, to drop the oldest */
} s_stashed_t;

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

hpp_client_t *hpp_client_new(const char *endpoint, void *zmq_ctx, char *errbuf, size_t errlen)
{
    if (!endpoint) {
        snprintf(errbuf, errlen, "no endpoint");
        return NULL;
    }
    hpp_client_t *self = calloc(1, sizeof *self);
    if (!self || proto_buf_init(&self->out, 1024) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        free(self);
        return NULL;
    }
    self->stash = calloc(HPP_CLIENT_STASH, sizeof *self->stash);
    self->ctx = zmq_ctx ? zmq_ctx : zmq_ctx_new();
    self->own_ctx = zmq_ctx == NULL;
    self->next_id = 1;
    if (!self->stash || !self->ctx) {
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
    if (zmq_connect(self->sock, endpoint) != 0) {
        snprintf(errbuf, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    return self;
fail:
    hpp_client_destroy(&self);
    return NULL;
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

static int s_send(hpp_client_t *self, proto_request_t *req, int64_t deadline)
{
    if (req->id.kind == PROTO_ID_NONE) {
        req->id = proto_id_uint(self->next_id++);
    }
    proto_buf_reset(&self->out);
    if (proto_request_encode(&self->out, req) != PROTO_OK) {
        return s_err(self, HPP_ERR_NOMEM, "request could not be encoded");
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
    return s_send(self, req, s_deadline(timeout_ms));
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
    int rc = s_send(self, req, deadline);
    if (rc == HPP_OK) {
        rc = s_recv_id(self, &req->id, out, deadline);
    }
    if (rc == HPP_OK && !out->r.ok) {
        rc = s_err(self, HPP_ERR_ENGINE, "%.*s: %.*s", (int)out->r.code.len,
                   out->r.code.ptr ? out->r.code.ptr : "", (int)out->r.message.len,
                   out->r.message.ptr ? out->r.message.ptr : "");
    }
    return rc;
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
    if ((unsigned)op >= PROTO_OP_COUNT || op == PROTO_OP_ROUTE || op == PROTO_OP_EXPLAIN) {
        return HPP_ERR_ARG;
    }
    proto_request_t req;
    proto_request_init(&req, op);
    return hpp_client_call(self, &req, out, timeout_ms);
}
