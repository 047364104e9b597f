/* sc_report.c - the queue of proxy mode's reports (see sc_report.h).
 *
 * A fixed array of entries, each one call's attempts with its own copies of
 * the model and provider names; the attempts' strings are pointed at those
 * copies when the entry is queued, so flushing only hands them on. */
#include "sc_report.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "sc_call.h"

/* Attempts kept of one call: as many as a call makes (under the
 * protocol's PROTO_MAX_ATTEMPTS). */
#define S_ATTEMPTS SC_MAX_ATTEMPTS

typedef struct {
    proto_attempt_t at[S_ATTEMPTS];                             /* strings point below */
    char model[S_ATTEMPTS][HPP_MAX_MODEL_LEN + sizeof ":free"]; /* ID or ID:free */
    char provider[S_ATTEMPTS][HPP_MAX_PROVIDER_LEN + 1];
    size_t n; /* attempts */
} s_entry_t;

struct sc_report {
    sc_engine_t *engine;                /* where reports go (borrowed) */
    struct event *timer;                /* zero-delay: after the next iteration's I/O */
    s_entry_t entries[SC_REPORT_QUEUE]; /* queued calls, oldest first */
    size_t n;                           /* used entries */
};

static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_report_flush(arg);
}

sc_report_t *sc_report_new(struct event_base *base, sc_engine_t *engine)
{
    sc_report_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->engine = engine;
    self->timer = evtimer_new(base, s_on_timer, self);
    if (!self->timer) {
        free(self);
        return NULL;
    }
    return self;
}

void sc_report_destroy(sc_report_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_report_t *self = *self_p;
    sc_report_flush(self);
    event_free(self->timer);
    free(self);
    *self_p = NULL;
}

/* Copies s into dst (cap bytes, NUL included); false when it does not fit. */
static bool s_copy(char *dst, size_t cap, hpp_str_t s)
{
    if (s.len >= cap) {
        return false;
    }
    if (s.len) {
        memcpy(dst, s.ptr, s.len);
    }
    dst[s.len] = '\0';
    return true;
}

int sc_report_add(sc_report_t *self, const proto_attempt_t *at, size_t n)
{
    if (n == 0) {
        return -1;
    }
    if (self->n == SC_REPORT_QUEUE) {
        sc_report_flush(self);
    }
    s_entry_t *e = &self->entries[self->n];
    if (n > S_ATTEMPTS) {
        n = S_ATTEMPTS;
    }
    for (size_t i = 0; i < n; i++) {
        if (!s_copy(e->model[i], sizeof e->model[i], at[i].model) ||
            !s_copy(e->provider[i], sizeof e->provider[i], at[i].provider)) {
            return -1;
        }
        e->at[i] = at[i];
        e->at[i].model.ptr = e->model[i];
        e->at[i].provider.ptr = e->provider[i];
    }
    e->n = n;
    self->n++;
    if (!evtimer_pending(self->timer, NULL)) {
        static const struct timeval now = {0, 0};
        evtimer_add(self->timer, &now);
    }
    return 0;
}

size_t sc_report_flush(sc_report_t *self)
{
    size_t sent = 0;
    for (size_t i = 0; i < self->n; i++) {
        sent += sc_engine_report(self->engine, self->entries[i].at, self->entries[i].n) > 0;
    }
    self->n = 0;
    evtimer_del(self->timer);
    return sent;
}

size_t sc_report_pending(const sc_report_t *self)
{
    return self->n;
}
