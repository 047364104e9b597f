/* sc_local.c - the engine inside this process as an sc_link kind.
 *
 * Replies wait in a byte queue of [u32 length][frame] records, each
 * encoded in place by the engine (eng_local_answer appends). The delivery
 * event takes the whole queue (swapping it with a spare, so that a
 * callback that sends again appends to the other one and activates the
 * event for the next round of the same turn) and hands each frame to the
 * callback. Both queues keep their memory: in steady state nothing is
 * allocated or copied.
 */
#include "sc_local.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "proto_mp.h"

#define S_KEEP (1u << 20) /* a queue larger than this is freed once handed over */

struct sc_local {
    eng_local_t *eng;          /* borrowed */
    size_t reader;             /* our reader slot of it */
    sc_link_cb cb;             /* a reply is ready */
    sc_link_state_cb on_state; /* "up", once; may be NULL */
    void *arg;                 /* for both */
    struct event *deliver;     /* hands the queue over at the end of the turn */
    bool announced;            /* "up" was said */
    proto_buf_t q, spare;      /* replies waiting; the one being handed over */
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
    proto_buf_t taken = self->q;
    self->q = self->spare;
    proto_buf_reset(&self->q);
    for (size_t pos = 0; pos < taken.len;) {
        uint32_t n;
        memcpy(&n, taken.data + pos, sizeof n);
        self->cb(self->arg, taken.data + pos + sizeof n, n);
        pos += sizeof n + n;
    }
    proto_buf_reset(&taken);
    if (taken.cap > S_KEEP) { /* after a burst: give the memory back (regrown on use) */
        proto_buf_destroy(&taken);
        taken.growable = true;
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
    if (!self->deliver || proto_buf_init(&self->q, 4096) != 0 ||
        proto_buf_init(&self->spare, 4096) != 0) {
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
    proto_buf_destroy(&self->q);
    proto_buf_destroy(&self->spare);
    free(self);
    *self_p = NULL;
}

int sc_local_send(sc_local_t *self, const void *buf, size_t len)
{
    /* Refused before it is answered: a report refused here is not applied. */
    size_t start = self->q.len;
    if (start >= SC_LOCAL_QUEUE_MAX) {
        return -1;
    }
    uint32_t n = 0; /* the record's length, written once the reply is */
    if (proto_buf_append(&self->q, &n, sizeof n) != PROTO_OK) {
        self->q.len = start;
        self->q.overflow = false;
        return -1;
    }
    bool reply = eng_local_answer(self->eng, self->reader, buf, len, &self->q);
    if (!reply || self->q.overflow) { /* a report without ack; or out of memory */
        bool oom = self->q.overflow;
        self->q.len = start;
        self->q.overflow = false;
        return oom ? -1 : 0;
    }
    n = (uint32_t)(self->q.len - start - sizeof n);
    memcpy(self->q.data + start, &n, sizeof n);
    if (start == 0) {
        event_active(self->deliver, EV_TIMEOUT, 0);
    }
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
