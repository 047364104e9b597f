/* sc_failopen.c - per group: may the fail-open model answer, at what price
 * (rules: sc_failopen.h).
 *
 * A fixed table; each entry owns its probe request (the engine may encode
 * it again after a failover) and at most one probe in flight. A 100 ms
 * tick asks about the groups not learned yet, and again about every group
 * once its answer is older than the refresh period. A probe that gets no
 * answer (engine down or late) leaves what was learned as it was: that is
 * what it is kept for.
 */
#include "sc_failopen.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "sc_call.h"

#define S_TICK_MS 100

typedef enum { S_UNKNOWN = 0, S_ALLOWED, S_FORBIDDEN } s_state_t;

typedef struct s_group {
    struct sc_failopen *owner;         /* the table */
    bool used;                         /* the slot holds a group */
    char group[HPP_MAX_GROUP_LEN + 1]; /* its name, "" = default */
    size_t len;                        /* bytes of group */
    s_state_t state;                   /* what the last answer said */
    char code[48];                     /* the engine's refusal, when forbidden */
    hpp_cost_t cost;                   /* estimate parts for 1 prompt token */
    int64_t out;                       /* output tokens that estimate assumed */
    proto_request_t req;               /* the probe, kept while it is in flight */
    uint64_t eng;                      /* the probe in flight, 0 = none */
    double asked;                      /* when it was last sent, monotonic s */
} s_group_t;

struct sc_failopen {
    sc_engine_t *engine;                 /* asked */
    const char *model;                   /* the fail-open model */
    double refresh_s;                    /* ask again after this long */
    struct event *tick;                  /* periodic */
    bool full_logged;                    /* "table full" said once */
    pthread_mutex_t lock;                /* the table, for every worker (see the header) */
    s_group_t g[SC_FAILOPEN_MAX_GROUPS]; /* the groups */
};

static const char *s_name(const s_group_t *e)
{
    return e->len ? e->group : "default";
}

static void s_learn(s_group_t *e, sc_eng_result_t res, const proto_reply_t *r);

static void s_on_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                       size_t len)
{
    (void)raw;
    (void)len;
    s_group_t *e = arg;
    pthread_mutex_lock(&e->owner->lock);
    s_learn(e, res, r);
    pthread_mutex_unlock(&e->owner->lock);
}

/* A probe's answer (under the lock). */
static void s_learn(s_group_t *e, sc_eng_result_t res, const proto_reply_t *r)
{
    sc_failopen_t *self = e->owner;
    e->eng = 0;
    if (res != SC_ENG_REPLY) {
        return; /* no answer: keep what was learned */
    }
    if (r->ok) {
        if (e->state != S_ALLOWED) {
            eng_log(ENG_LOG_INFO, "sidecar", "fail-open: group %s may use %s", s_name(e),
                    self->model);
        }
        e->state = S_ALLOWED;
        e->cost = r->cost;
        e->out = r->output_tokens;
        return;
    }
    if (r->status == HPP_E_BAD_REQUEST && e->len) {
        /* Most likely a group the policy does not define: not kept, so that
         * invented names cannot fill the table. */
        eng_log(ENG_LOG_DEBUG, "sidecar", "fail-open: group %s refused by the engine, forgotten",
                s_name(e));
        e->used = false;
        return;
    }
    if (e->state != S_FORBIDDEN) {
        eng_log(ENG_LOG_INFO, "sidecar", "fail-open: group %s may not use %s (%s)", s_name(e),
                self->model, hpp_status_name(r->status));
    }
    e->state = S_FORBIDDEN;
    snprintf(e->code, sizeof e->code, "%s", hpp_status_name(r->status));
}

static void s_ask(sc_failopen_t *self, s_group_t *e)
{
    proto_request_init(&e->req, PROTO_OP_ROUTE);
    hpp_features_t *f = &e->req.features;
    f->model.ptr = self->model;
    f->model.len = strlen(self->model);
    f->group.ptr = e->group;
    f->group.len = e->len;
    f->prompt_tokens = 1;
    e->asked = sc_now();
    e->eng = sc_engine_call(self->engine, &e->req, s_on_reply, e, NULL);
}

static void s_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_failopen_t *self = arg;
    double now = sc_now();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < SC_FAILOPEN_MAX_GROUPS; i++) {
        s_group_t *e = &self->g[i];
        if (e->used && !e->eng && (e->state == S_UNKNOWN || now - e->asked >= self->refresh_s)) {
            s_ask(self, e);
        }
    }
    pthread_mutex_unlock(&self->lock);
}

/* "default" and "" are the same group. */
static hpp_str_t s_norm(hpp_str_t g)
{
    if (g.len == 7 && memcmp(g.ptr, "default", 7) == 0) {
        g.len = 0;
    }
    return g;
}

static const s_group_t *s_find(const sc_failopen_t *self, hpp_str_t g)
{
    g = s_norm(g);
    for (size_t i = 0; i < SC_FAILOPEN_MAX_GROUPS; i++) {
        const s_group_t *e = &self->g[i];
        if (e->used && e->len == g.len && (g.len == 0 || memcmp(e->group, g.ptr, g.len) == 0)) {
            return e;
        }
    }
    return NULL;
}

sc_failopen_t *sc_failopen_new(struct event_base *base, sc_engine_t *engine, const char *model,
                               int refresh_ms, char *errbuf, size_t errlen)
{
    sc_failopen_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->engine = engine;
    self->model = model;
    self->refresh_s = (refresh_ms > 0 ? refresh_ms : 1000) / 1000.0;
    for (size_t i = 0; i < SC_FAILOPEN_MAX_GROUPS; i++) {
        self->g[i].owner = self;
    }
    self->g[0].used = true; /* the default group, learned from the start */
    self->tick = event_new(base, -1, EV_PERSIST, s_on_tick, self);
    struct timeval tv = {0, S_TICK_MS * 1000};
    if (!self->tick || event_add(self->tick, &tv) != 0) {
        snprintf(errbuf, errlen, "cannot start the fail-open timer");
        sc_failopen_destroy(&self);
        return NULL;
    }
    return self;
}

void sc_failopen_destroy(sc_failopen_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_failopen_t *self = *self_p;
    for (size_t i = 0; i < SC_FAILOPEN_MAX_GROUPS; i++) {
        if (self->g[i].eng) {
            sc_engine_cancel(self->engine, self->g[i].eng);
        }
    }
    if (self->tick) {
        event_free(self->tick);
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Whether the worker has handed `g` over already (no lock: its own). */
static bool s_cached(const sc_failopen_cache_t *c, hpp_str_t g)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->len[i] == g.len && (g.len == 0 || memcmp(c->name[i], g.ptr, g.len) == 0)) {
            return true;
        }
    }
    return false;
}

/* Adds `group` to the table (under the lock); the prober asks at once. */
static void s_add(sc_failopen_t *self, hpp_str_t group, bool prober)
{
    if (s_find(self, group)) {
        return;
    }
    for (size_t i = 0; i < SC_FAILOPEN_MAX_GROUPS; i++) {
        s_group_t *e = &self->g[i];
        if (!e->used) {
            e->used = true;
            e->state = S_UNKNOWN;
            e->len = group.len;
            memcpy(e->group, group.ptr, group.len);
            e->group[group.len] = '\0';
            e->eng = 0;
            if (prober) {
                s_ask(self, e);
            }
            return;
        }
    }
    if (!self->full_logged) {
        self->full_logged = true;
        eng_log(ENG_LOG_WARN, "sidecar",
                "fail-open: %d groups learned already; requests of other groups get 503 while "
                "no engine answers",
                SC_FAILOPEN_MAX_GROUPS);
    }
}

void sc_failopen_seen(sc_failopen_t *self, sc_failopen_cache_t *cache, hpp_str_t group)
{
    group = s_norm(group);
    if (group.len > HPP_MAX_GROUP_LEN || s_cached(cache, group)) {
        return;
    }
    pthread_mutex_lock(&self->lock);
    s_add(self, group, cache->prober);
    pthread_mutex_unlock(&self->lock);
    /* Remembered even when the table is full or the engine forgets the
     * name (not a group): it is not handed over again from this worker.
     * Past the cache's size every new name takes the lock, as before. */
    if (cache->n < SC_FAILOPEN_MAX_GROUPS) {
        cache->len[cache->n] = (uint8_t)group.len;
        if (group.len) { /* the default group's name may be NULL */
            memcpy(cache->name[cache->n], group.ptr, group.len);
        }
        cache->n++;
    }
}

bool sc_failopen_allows(const sc_failopen_t *self, const hpp_features_t *f, char *why, size_t n)
{
    pthread_mutex_t *lock = (pthread_mutex_t *)&self->lock; /* a reader's lock */
    pthread_mutex_lock(lock);
    const s_group_t *found = s_find(self, f->group);
    s_group_t copy;
    if (found) {
        copy = *found;
    }
    pthread_mutex_unlock(lock);
    const s_group_t *e = found ? &copy : NULL;
    hpp_str_t g = s_norm(f->group);
    int glen = g.len ? (int)g.len : 7;
    const char *gname = g.len ? g.ptr : "default";
    if (!e || e->state == S_UNKNOWN) {
        snprintf(why, n, "what group %.*s may use was not learned while an engine answered", glen,
                 gname);
        return false;
    }
    if (e->state == S_FORBIDDEN) {
        snprintf(why, n, "group %.*s may not use the fail-open model (%s)", glen, gname, e->code);
        return false;
    }
    if (!f->has_budget) {
        return true;
    }
    /* The probe's parts are for 1 prompt token and the default output;
     * scaled to this request. Image fees are not known, and not counted. */
    double out = (double)e->cost.output;
    if (f->output_tokens >= 0) {
        out = e->out > 0 ? out * (double)f->output_tokens / (double)e->out : 0;
    }
    double usd =
        ((double)e->cost.input * (double)f->prompt_tokens + out + (double)e->cost.fees) / 1e12;
    if (usd > f->budget_usd) {
        snprintf(why, n,
                 "the fail-open model's estimate of %.6f USD exceeds the budget of %.6f USD", usd,
                 f->budget_usd);
        return false;
    }
    return true;
}
