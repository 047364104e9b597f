/* sc_engine.c - calls to hpp-engine over one DEALER link (sc_link.h).
 *
 * The table of pending calls is a fixed array of slots with a free list; a
 * call id is slot + generation * capacity, so a late reply to a timed-out
 * call never matches the slot's next occupant. Each slot owns a timer event
 * created on first use and reused, so steady state allocates nothing.
 * The link sends only while the engine is connected, so a call fails at
 * once (503 or fail-open now) instead of queueing for an unknown time; the
 * link reconnects in the background.
 */
#include "sc_engine.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "sc_link.h"

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
    sc_link_t *link;              /* the connection */
    struct timeval timeout;       /* deadline of each call */
    const struct timeval *tv;     /* the same as a libevent common timeout (O(1) add) */
    s_slot_t *slots;              /* SC_ENGINE_MAX_INFLIGHT entries */
    uint32_t free_head;           /* first free slot, UINT32_MAX when none */
    size_t inflight;              /* used slots */
    proto_buf_t out;              /* encode buffer (fixed, PROTO_MAX_FRAME) */
    char outmem[PROTO_MAX_FRAME]; /* its memory */
};

#define S_NONE UINT32_MAX

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
static void s_dispatch(void *arg, const void *buf, size_t len)
{
    sc_engine_t *self = arg;
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

const char *sc_call_err_message(sc_call_err_t e)
{
    static const char *const names[] = {
        [SC_CALL_OK] = "was called",
        [SC_CALL_UNAVAILABLE] = "is not connected",
        [SC_CALL_OVERLOADED] = "has too many requests in flight",
        [SC_CALL_ENCODE] = "cannot take features over the protocol's limits",
    };
    return (unsigned)e < sizeof names / sizeof names[0] ? names[e] : "failed";
}

/* Sets *err (when given) and returns the failed call's handle, 0. */
static uint64_t s_call_fail(sc_call_err_t *err, sc_call_err_t e)
{
    if (err) {
        *err = e;
    }
    return 0;
}

uint64_t sc_engine_call(sc_engine_t *self, proto_request_t *req, sc_engine_cb cb, void *arg,
                        sc_call_err_t *err)
{
    if (self->free_head == S_NONE) {
        return s_call_fail(err, SC_CALL_OVERLOADED);
    }
    uint32_t i = self->free_head;
    s_slot_t *s = &self->slots[i];
    uint64_t id = (uint64_t)s->gen * SC_ENGINE_MAX_INFLIGHT + i;
    req->id = proto_id_uint(id);
    proto_buf_reset(&self->out);
    if (proto_request_encode(&self->out, req) != PROTO_OK) {
        return s_call_fail(err, SC_CALL_ENCODE);
    }
    if (!s->timer) {
        s->owner = self;
        s->timer = evtimer_new(self->base, s_on_timeout, s);
        if (!s->timer) {
            return s_call_fail(err, SC_CALL_OVERLOADED);
        }
    }
    if (sc_link_send(self->link, self->out.data, self->out.len) != 0) {
        return s_call_fail(err, SC_CALL_UNAVAILABLE);
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

sc_link_kind_t sc_engine_link_kind(const sc_engine_t *self)
{
    return sc_link_kind(self->link);
}

size_t sc_engine_inflight(const sc_engine_t *self)
{
    return self->inflight;
}

sc_engine_t *sc_engine_new(struct event_base *base, const char *endpoint, sc_link_kind_t kind,
                           int timeout_ms, char *errbuf, size_t errlen)
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
    if (!self->slots) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < SC_ENGINE_MAX_INFLIGHT; i++) {
        self->slots[i].next_free = i + 1 < SC_ENGINE_MAX_INFLIGHT ? i + 1 : S_NONE;
        self->slots[i].gen = 1;
    }
    self->free_head = 0;
    self->link = sc_link_new(base, endpoint, kind, s_dispatch, self, errbuf, errlen);
    if (!self->link) {
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
    sc_link_destroy(&self->link);
    if (self->slots) {
        for (uint32_t i = 0; i < SC_ENGINE_MAX_INFLIGHT; i++) {
            if (self->slots[i].timer) {
                event_free(self->slots[i].timer);
            }
        }
        free(self->slots);
    }
    free(self);
    *self_p = NULL;
}
