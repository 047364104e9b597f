/* sc_local.c - the engine inside this process as an sc_link kind.
 *
 * Replies wait in a byte queue of [u32 length][frame] records. The
 * delivery event takes the whole queue (swapping it with a spare, so that
 * a callback that sends again appends to the other one and activates the
 * event for the next round of the same turn) and hands each frame to the
 * callback. Both queues keep their memory: in steady state nothing is
 * allocated.
 */
#include "sc_local.h"

#include <event2/event.h>

#include "eng_common.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEEP (1u << 20) /* a queue larger than this is freed once handed over */

typedef struct {
    uint8_t *data; /* [u32 length][frame] records */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
} s_queue_t;

struct sc_local {
    eng_local_t *eng;          /* borrowed */
    size_t reader;             /* our reader slot of it */
    sc_link_cb cb;             /* a reply is ready */
    sc_link_state_cb on_state; /* "up", once; may be NULL */
    void *arg;                 /* for both */
    struct event *deliver;     /* hands the queue over at the end of the turn */
    bool announced;            /* "up" was said */
    s_queue_t q, spare;        /* replies waiting; the one being handed over */
    proto_buf_t out;           /* the reply being made */
};

static void s_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_local_t *self = arg;
    if (!self->announced) {
        self->announced = true;
        if (self->on_state) {
            self->on_state(self->arg, true);
        }
    }
    s_queue_t taken = self->q;
    self->q = self->spare;
    self->q.len = 0;
    for (size_t pos = 0; pos < taken.len;) {
        uint32_t n;
        memcpy(&n, taken.data + pos, sizeof n);
        self->cb(self->arg, taken.data + pos + sizeof n, n);
        pos += sizeof n + n;
    }
    taken.len = 0;
    if (taken.cap > S_KEEP) { /* after a burst: give the memory back */
        free(taken.data);
        taken = (s_queue_t){0};
    }
    self->spare = taken;
}

sc_local_t *sc_local_new(struct event_base *base, eng_local_t *eng, size_t reader, sc_link_cb cb,
                         sc_link_state_cb on_state, void *arg, char *errbuf, size_t errlen)
{
    sc_local_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->eng = eng;
    self->reader = reader;
    self->cb = cb;
    self->on_state = on_state;
    self->arg = arg;
    self->deliver = event_new(base, -1, 0, s_deliver, self);
    if (!self->deliver || proto_buf_init(&self->out, 4096) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        sc_local_destroy(&self);
        return NULL;
    }
    event_active(self->deliver, EV_TIMEOUT, 0); /* "up" at the first turn */
    return self;
}

void sc_local_destroy(sc_local_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_local_t *self = *self_p;
    if (self->deliver) {
        event_free(self->deliver);
    }
    proto_buf_destroy(&self->out);
    free(self->q.data);
    free(self->spare.data);
    free(self);
    *self_p = NULL;
}

/* Room for `need` more bytes in q; false when out of memory. */
static bool s_reserve(s_queue_t *q, size_t need)
{
    if (q->len + need <= q->cap) {
        return true;
    }
    size_t cap = q->cap ? q->cap : 4096;
    while (cap < q->len + need) {
        cap *= 2;
    }
    uint8_t *p = realloc(q->data, cap);
    if (!p) {
        return false;
    }
    q->data = p;
    q->cap = cap;
    return true;
}

int sc_local_send(sc_local_t *self, const void *buf, size_t len)
{
    /* Refused before it is answered: a report refused here is not applied. */
    if (self->q.len >= SC_LOCAL_QUEUE_MAX) {
        return -1;
    }
    if (!eng_local_answer(self->eng, self->reader, buf, len, &self->out)) {
        return 0; /* a report without ack: nothing to hand back */
    }
    uint32_t n = (uint32_t)self->out.len;
    if (!s_reserve(&self->q, sizeof n + n)) {
        return -1;
    }
    if (self->q.len == 0) {
        event_active(self->deliver, EV_TIMEOUT, 0);
    }
    memcpy(self->q.data + self->q.len, &n, sizeof n);
    memcpy(self->q.data + self->q.len + sizeof n, self->out.data, n);
    self->q.len += sizeof n + n;
    return 0;
}

void sc_local_reload(eng_local_t *eng)
{
    static eng_loadlog_t log; /* one reloading thread: the signal thread or a lone server's */
    bool ok = eng_local_reload(eng, &log);
    eng_loadlog_log(&log, "sidecar");
    char hash[ENG_SNAPSHOT_HASH_HEX];
    uint64_t version = eng_local_version(eng, hash);
    if (ok) {
        eng_log(ENG_LOG_INFO, "sidecar",
                "SIGHUP: policy version %llu serving (%u warnings), policy hash %s",
                (unsigned long long)version, log.warnings, hash);
    } else {
        eng_log(ENG_LOG_ERROR, "sidecar",
                "SIGHUP: reload rejected (%u errors), version %llu keeps serving%s%s", log.errors,
                (unsigned long long)version, log.n ? ": " : "", log.n ? log.lines[0] : "");
    }
}
