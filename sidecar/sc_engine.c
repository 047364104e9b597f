/* sc_engine.c - DEALER socket driven by libevent through ZMQ_FD.
 *
 * ZMQ_FD signals edge-triggered: it becomes readable when ZMQ_EVENTS may
 * have changed, not while messages are waiting. So the socket is drained
 * (recv until ZMQ_EVENTS lacks POLLIN) on every wakeup, and after every send
 * ZMQ_EVENTS is re-read: a send can consume the edge of a reply that already
 * arrived, and if POLLIN is then set the read event is activated by hand so
 * the drain runs from the loop, never nested inside a callback.
 *
 * The table of pending calls is a fixed array of slots with a free list; a
 * call id is slot + generation * capacity, so a late reply to a timed-out
 * call never matches the slot's next occupant. Each slot owns a timer event
 * created on first use and reused, so steady state allocates nothing.
 * ZMQ_IMMEDIATE makes a send fail at once while no engine is connected
 * instead of queueing for an unknown time; ZMQ reconnects in the background.
 */
#include "sc_engine.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "eng_common.h"

typedef struct {
    struct sc_engine *owner; /* the engine link, for the timer callback */
    uint64_t id;             /* call id, 0 = free */
    sc_engine_cb cb;         /* callback */
    void *arg;               /* its argument */
    struct event *timer;     /* deadline, created on first use */
    uint32_t next_free;      /* free list link */
    uint32_t gen;            /* generation, part of the id */
} s_slot_t;

struct sc_engine {
    struct event_base *base;      /* the loop */
    void *ctx;                    /* zmq context */
    void *sock;                   /* DEALER */
    struct event *ev;             /* ZMQ_FD readable */
    struct timeval timeout;       /* deadline of each call */
    const struct timeval *tv;     /* the same as a libevent common timeout (O(1) add) */
    s_slot_t *slots;              /* SC_ENGINE_MAX_INFLIGHT entries */
    uint32_t free_head;           /* first free slot, UINT32_MAX when none */
    size_t inflight;              /* used slots */
    bool draining;                /* inside s_drain: do not nest */
    proto_buf_t out;              /* encode buffer (fixed, PROTO_MAX_FRAME) */
    char outmem[PROTO_MAX_FRAME]; /* its memory */
};

#define S_NONE UINT32_MAX

static void s_drain(sc_engine_t *self);

static void s_on_fd(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_drain(arg);
}

/* After a send or recv the edge may be gone: look at ZMQ_EVENTS and, when
 * a message is waiting, make the loop run the drain. */
static void s_recheck(sc_engine_t *self)
{
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &sz) == 0 && (events & ZMQ_POLLIN)) {
        event_active(self->ev, EV_READ, 0);
    }
}

static void s_slot_free(sc_engine_t *self, uint32_t i)
{
    s_slot_t *s = &self->slots[i];
    if (s->timer) {
        event_del(s->timer);
    }
    s->id = 0;
    s->cb = NULL;
    s->arg = NULL;
    s->gen++;
    s->next_free = self->free_head;
    self->free_head = i;
    self->inflight--;
}

static void s_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_slot_t *s = arg;
    sc_engine_t *self = s->owner;
    sc_engine_cb cb = s->cb;
    void *cb_arg = s->arg;
    s_slot_free(self, (uint32_t)(s - self->slots));
    cb(cb_arg, SC_ENG_TIMEOUT, NULL, NULL, 0);
}

/* Hands one reply frame to its call, or drops it (late or foreign). */
static void s_dispatch(sc_engine_t *self, const void *buf, size_t len)
{
    proto_reply_t reply;
    proto_error_t err;
    int rc = proto_reply_decode(buf, len, &reply, &err);
    if (reply.id.kind != PROTO_ID_UINT) {
        eng_log(ENG_LOG_WARN, "sidecar", "engine reply without a usable id dropped: %s",
                rc == PROTO_OK ? "no numeric id" : err.msg);
        return;
    }
    uint64_t id = reply.id.num;
    uint32_t i = (uint32_t)(id % SC_ENGINE_MAX_INFLIGHT);
    s_slot_t *s = &self->slots[i];
    if (s->id == 0 || s->id != id) {
        return; /* the call timed out or was cancelled */
    }
    sc_engine_cb cb = s->cb;
    void *cb_arg = s->arg;
    s_slot_free(self, i);
    if (rc != PROTO_OK) {
        eng_log(ENG_LOG_WARN, "sidecar", "engine reply %llu undecodable: %s",
                (unsigned long long)id, err.msg);
        cb(cb_arg, SC_ENG_DECODE, NULL, buf, len);
        return;
    }
    cb(cb_arg, SC_ENG_REPLY, &reply, buf, len);
}

static void s_drain(sc_engine_t *self)
{
    if (self->draining) {
        return; /* the outer drain re-reads ZMQ_EVENTS before it stops */
    }
    self->draining = true;
    for (;;) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &sz) != 0 || !(events & ZMQ_POLLIN)) {
            break;
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        /* We send bare bodies, so replies are one frame; anything else is
         * read to its end and only its last frame considered. */
        while (zmq_msg_more(&msg)) {
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
                break;
            }
        }
        s_dispatch(self, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    self->draining = false;
}

uint64_t sc_engine_call(sc_engine_t *self, proto_request_t *req, sc_engine_cb cb, void *arg,
                        const char **why)
{
    const char *dummy;
    why = why ? why : &dummy;
    if (self->free_head == S_NONE) {
        *why = "overloaded";
        return 0;
    }
    uint32_t i = self->free_head;
    s_slot_t *s = &self->slots[i];
    uint64_t id = (uint64_t)s->gen * SC_ENGINE_MAX_INFLIGHT + i;
    req->id = proto_id_uint(id);
    proto_buf_reset(&self->out);
    if (proto_request_encode(&self->out, req) != PROTO_OK) {
        *why = "encode";
        return 0;
    }
    if (!s->timer) {
        s->owner = self;
        s->timer = evtimer_new(self->base, s_on_timeout, s);
        if (!s->timer) {
            *why = "overloaded";
            return 0;
        }
    }
    int rc = zmq_send(self->sock, self->out.data, self->out.len, ZMQ_DONTWAIT);
    s_recheck(self);
    if (rc < 0) {
        *why = "unavailable";
        return 0;
    }
    self->free_head = s->next_free;
    self->inflight++;
    s->id = id;
    s->cb = cb;
    s->arg = arg;
    evtimer_add(s->timer, self->tv);
    return id;
}

void sc_engine_cancel(sc_engine_t *self, uint64_t handle)
{
    if (handle == 0) {
        return;
    }
    uint32_t i = (uint32_t)(handle % SC_ENGINE_MAX_INFLIGHT);
    if (self->slots[i].id == handle) {
        s_slot_free(self, i);
    }
}

size_t sc_engine_inflight(const sc_engine_t *self)
{
    return self->inflight;
}

sc_engine_t *sc_engine_new(struct event_base *base, const char *endpoint, int timeout_ms,
                           char *errbuf, size_t errlen)
{
    sc_engine_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->base = base;
    self->timeout.tv_sec = timeout_ms / 1000;
    self->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    self->tv = event_base_init_common_timeout(base, &self->timeout);
    if (!self->tv) {
        self->tv = &self->timeout;
    }
    proto_buf_init_fixed(&self->out, self->outmem, sizeof self->outmem);
    self->slots = calloc(SC_ENGINE_MAX_INFLIGHT, sizeof *self->slots);
    self->ctx = zmq_ctx_new();
    if (!self->slots || !self->ctx) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < SC_ENGINE_MAX_INFLIGHT; i++) {
        self->slots[i].next_free = i + 1 < SC_ENGINE_MAX_INFLIGHT ? i + 1 : S_NONE;
        self->slots[i].gen = 1;
    }
    self->free_head = 0;
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock) {
        snprintf(errbuf, errlen, "zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int zero = 0, one = 1, hwm = SC_ENGINE_MAX_INFLIGHT * 2, ivl = 100, ivlmax = 1000;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    /* Fail a send at once while no engine is connected (503/fail-open now,
     * not after the deadline), and never queue for a dead peer. */
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL_MAX, &ivlmax, sizeof ivlmax);
    if (zmq_connect(self->sock, endpoint) != 0) {
        snprintf(errbuf, errlen, "cannot connect to engine endpoint '%s': %s", endpoint,
                 zmq_strerror(errno));
        goto fail;
    }
    int fd = -1;
    size_t fdsz = sizeof fd;
    if (zmq_getsockopt(self->sock, ZMQ_FD, &fd, &fdsz) != 0) {
        snprintf(errbuf, errlen, "ZMQ_FD: %s", zmq_strerror(errno));
        goto fail;
    }
    self->ev = event_new(base, fd, EV_READ | EV_PERSIST, s_on_fd, self);
    if (!self->ev || event_add(self->ev, NULL) != 0) {
        snprintf(errbuf, errlen, "cannot watch the engine socket");
        goto fail;
    }
    return self;
fail:
    sc_engine_destroy(&self);
    return NULL;
}

void sc_engine_destroy(sc_engine_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_engine_t *self = *self_p;
    if (self->ev) {
        event_free(self->ev);
    }
    if (self->slots) {
        for (uint32_t i = 0; i < SC_ENGINE_MAX_INFLIGHT; i++) {
            if (self->slots[i].timer) {
                event_free(self->slots[i].timer);
            }
        }
        free(self->slots);
    }
    if (self->sock) {
        zmq_close(self->sock);
    }
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    free(self);
    *self_p = NULL;
}
