/* sc_engine.c - calls to hpp-engine over one DEALER link per engine
 * (sc_link.h).
 *
 * The table of pending calls is a fixed array of slots with a free list; a
 * call id is slot + generation * capacity, so a late reply to a timed-out
 * call never matches the slot's next occupant. Each slot owns a timer event
 * created on first use and reused, so steady state allocates nothing.
 *
 * Each slot remembers which engine has its call and the caller's request.
 * When a link reports that its connection went away, every call it had is
 * encoded again from that request with a new id (the slot's generation is
 * bumped, the caller's handle stays) and sent to the next engine that is
 * up, its timer untouched: a resent call keeps its deadline, and a reply to
 * the old id, should one still come, is dropped like any stale reply.
 * Links send only while their engine is connected, so a call fails at once
 * (503 or fail-open now) instead of queueing for an unknown time; the links
 * reconnect in the background.
 *
 * Policy pings use the same slots, pinned to one engine: they are never
 * resent, and their callback is internal.
 */
#include "sc_engine.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_common.h"
#include "sc_link.h"

#define S_WARN_EVERY_S 60.0 /* disagreement warnings at most this often */

/* The loop that owns an sc_engine_t is the only one to call into it, but
 * another worker may read its state for /metrics (sc_engine_state,
 * sc_engine_inflight, sc_engine_disagreements): counters and the `up`
 * mirror are stored and read with relaxed atomics, the policy a ping
 * reported (a version and a string) under `policy_lock`, taken only where
 * a ping answers, an engine goes down, and a reader copies it. */
#define S_GET(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define S_SET(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)
#define S_INC(f) S_SET(f, S_GET(f) + 1)

typedef struct {
    struct sc_engine *owner; /* the engine set, for the timer callback */
    uint64_t handle;         /* the caller's handle (first id), 0 = free */
    uint64_t id;             /* id on the wire now; changes when resent */
    proto_request_t *req;    /* the caller's request, encoded again on a resend */
    sc_engine_cb cb;         /* callback */
    void *arg;               /* its argument */
    struct event *timer;     /* deadline, created on first use */
    uint32_t next_free;      /* free list link */
    uint32_t gen;            /* generation, part of the id */
    uint8_t peer;            /* the engine that has the call */
    bool pinned;             /* a policy ping: never resent */
} s_slot_t;

/* One engine: its link, counters and the policy it last reported. */
typedef struct {
    struct sc_engine *owner;                /* the engine set */
    sc_link_t *link;                        /* the connection */
    uint8_t idx;                            /* index in peers[] */
    uint64_t calls;                         /* calls sent to it, resends included */
    uint64_t resends;                       /* its calls sent elsewhere when it went away */
    uint64_t ping;                          /* policy ping in flight, 0 = none */
    bool up;                                /* the link's last state callback said up */
    bool policy_known;                      /* a ping answered since it connected */
    uint64_t policy_version;                /* its reported policy version */
    char hash[SC_METRICS_HASH_MAX];         /* its reported policy hash, "" = none */
    char endpoint[SC_METRICS_ENDPOINT_MAX]; /* as configured */
} s_peer_t;

struct sc_engine {
    struct event_base *base;               /* the loop */
    s_peer_t peers[SC_ENGINE_MAX_ENGINES]; /* one per engine */
    size_t npeers;                         /* used entries */
    size_t next;                           /* round robin: the engine to try first */
    struct timeval timeout;                /* deadline of each call */
    const struct timeval *tv;              /* the same as a libevent common timeout (O(1) add) */
    struct timeval ping_every;             /* interval of the policy pings */
    struct event *pinger;                  /* their timer, NULL without pings */
    proto_request_t ping_req;              /* the ping request, shared by every engine */
    uint64_t disagreements;                /* ping replies whose hash differed */
    double warned_at;                      /* when a disagreement was last logged */
    pthread_mutex_t policy_lock;           /* the peers' policy_known, _version and hash */
    s_slot_t *slots;                       /* SC_ENGINE_MAX_INFLIGHT entries */
    uint32_t free_head;                    /* first free slot, UINT32_MAX when none */
    size_t inflight;                       /* used slots */
    proto_buf_t out;                       /* encode buffer (fixed, PROTO_MAX_FRAME) */
    char outmem[PROTO_MAX_FRAME];          /* its memory */
};

#define S_NONE UINT32_MAX

static double s_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t s_id(const s_slot_t *s, uint32_t i)
{
    return (uint64_t)s->gen * SC_ENGINE_MAX_INFLIGHT + i;
}

static void s_slot_free(sc_engine_t *self, uint32_t i)
{
    s_slot_t *s = &self->slots[i];
    if (s->timer) {
        event_del(s->timer);
    }
    s->handle = 0;
    s->id = 0;
    s->req = NULL;
    s->cb = NULL;
    s->arg = NULL;
    s->pinned = false;
    s->gen++;
    s->next_free = self->free_head;
    self->free_head = i;
    S_SET(self->inflight, self->inflight - 1);
}

/* Frees slot i and runs its callback with `res` (no reply). */
static void s_slot_end(sc_engine_t *self, uint32_t i, sc_eng_result_t res)
{
    s_slot_t *s = &self->slots[i];
    sc_engine_cb cb = s->cb;
    void *cb_arg = s->arg;
    s_slot_free(self, i);
    cb(cb_arg, res, NULL, NULL, 0);
}

static void s_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_slot_t *s = arg;
    sc_engine_t *self = s->owner;
    s_slot_end(self, (uint32_t)(s - self->slots), SC_ENG_TIMEOUT);
}

/* Hands one reply frame from engine `p` to its call, or drops it (late,
 * cancelled, resent elsewhere, or foreign). */
static void s_dispatch(void *arg, const void *buf, size_t len)
{
    s_peer_t *p = arg;
    sc_engine_t *self = p->owner;
    proto_reply_t reply;
    proto_error_t err;
    int rc = proto_reply_decode(buf, len, &reply, &err);
    if (reply.id.kind != PROTO_ID_UINT) {
        if (rc == PROTO_OK && !reply.ok && reply.id.kind == PROTO_ID_NONE) {
            /* Reports carry no id: only their refusals come back. */
            eng_log(ENG_LOG_WARN, "sidecar", "engine %s: a report was refused: %.*s", p->endpoint,
                    (int)reply.message.len, reply.message.ptr ? reply.message.ptr : "");
            return;
        }
        eng_log(ENG_LOG_WARN, "sidecar", "engine %s: reply without a usable id dropped: %s",
                p->endpoint, rc == PROTO_OK ? "no numeric id" : err.msg);
        return;
    }
    uint64_t id = reply.id.num;
    uint32_t i = (uint32_t)(id % SC_ENGINE_MAX_INFLIGHT);
    s_slot_t *s = &self->slots[i];
    if (s->handle == 0 || s->id != id || s->peer != p->idx) {
        return; /* the call timed out, was cancelled or went to another engine */
    }
    sc_engine_cb cb = s->cb;
    void *cb_arg = s->arg;
    s_slot_free(self, i);
    if (rc != PROTO_OK) {
        eng_log(ENG_LOG_WARN, "sidecar", "engine %s: reply %llu undecodable: %s", p->endpoint,
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

/* Sends what is encoded in `out` to the next engine that is up, other than
 * `skip`, in round robin order. Returns its index, or -1 when none took it. */
static int s_send_any(sc_engine_t *self, int skip)
{
    for (size_t k = 0; k < self->npeers; k++) {
        size_t j = (self->next + k) % self->npeers;
        s_peer_t *p = &self->peers[j];
        if ((int)j == skip || !sc_link_up(p->link) ||
            sc_link_send(p->link, self->out.data, self->out.len) != 0) {
            continue;
        }
        self->next = j + 1 < self->npeers ? j + 1 : 0;
        return (int)j;
    }
    return -1;
}

/* Encodes `req` with the id of slot i. Returns 0 or -1. */
static int s_encode(sc_engine_t *self, proto_request_t *req, uint64_t id)
{
    req->id = proto_id_uint(id);
    proto_buf_reset(&self->out);
    return proto_request_encode(&self->out, req) == PROTO_OK ? 0 : -1;
}

/* Takes the free head for a call; `peer` has it. Returns the slot. */
static s_slot_t *s_slot_take(sc_engine_t *self, int peer, proto_request_t *req, sc_engine_cb cb,
                             void *arg)
{
    uint32_t i = self->free_head;
    s_slot_t *s = &self->slots[i];
    self->free_head = s->next_free;
    S_SET(self->inflight, self->inflight + 1);
    s->handle = s->id = s_id(s, i);
    s->req = req;
    s->cb = cb;
    s->arg = arg;
    s->peer = (uint8_t)peer;
    s->pinned = false;
    evtimer_add(s->timer, self->tv);
    return s;
}

/* The free head's timer, created on its first use. Returns 0 or -1. */
static int s_slot_ready(sc_engine_t *self)
{
    s_slot_t *s = &self->slots[self->free_head];
    if (!s->timer) {
        s->owner = self;
        s->timer = evtimer_new(self->base, s_on_timeout, s);
    }
    return s->timer ? 0 : -1;
}

uint64_t sc_engine_call(sc_engine_t *self, proto_request_t *req, sc_engine_cb cb, void *arg,
                        sc_call_err_t *err)
{
    if (self->free_head == S_NONE) {
        return s_call_fail(err, SC_CALL_OVERLOADED);
    }
    uint32_t i = self->free_head;
    if (s_encode(self, req, s_id(&self->slots[i], i)) != 0) {
        return s_call_fail(err, SC_CALL_ENCODE);
    }
    if (s_slot_ready(self) != 0) {
        return s_call_fail(err, SC_CALL_OVERLOADED);
    }
    int peer = s_send_any(self, -1);
    if (peer < 0) {
        return s_call_fail(err, SC_CALL_UNAVAILABLE);
    }
    S_INC(self->peers[peer].calls);
    return s_slot_take(self, peer, req, cb, arg)->handle;
}

void sc_engine_cancel(sc_engine_t *self, uint64_t handle)
{
    if (handle == 0) {
        return;
    }
    uint32_t i = (uint32_t)(handle % SC_ENGINE_MAX_INFLIGHT);
    if (self->slots[i].handle == handle) {
        s_slot_free(self, i);
    }
}

/* Engine p's connection went away: its calls go to the others, or fail. */
static void s_move_calls(sc_engine_t *self, s_peer_t *p)
{
    size_t moved = 0, lost = 0;
    for (uint32_t i = 0; i < SC_ENGINE_MAX_INFLIGHT && self->inflight > 0; i++) {
        s_slot_t *s = &self->slots[i];
        if (s->handle == 0 || s->peer != p->idx) {
            continue;
        }
        if (s->pinned) {
            s_slot_end(self, i, SC_ENG_LOST);
            continue;
        }
        /* A new id: whatever the old engine may still send for the old one
         * is stale. The handle, the callback and the deadline stay. */
        s->gen++;
        s->id = s_id(s, i);
        int q = s_encode(self, s->req, s->id) == 0 ? s_send_any(self, p->idx) : -1;
        if (q >= 0) {
            s->peer = (uint8_t)q;
            S_INC(self->peers[q].calls);
            S_INC(p->resends);
            moved++;
            continue;
        }
        lost++;
        s_slot_end(self, i, SC_ENG_LOST);
    }
    if (moved || lost) {
        eng_log(lost ? ENG_LOG_WARN : ENG_LOG_INFO, "sidecar",
                "engine %s went away with calls in flight: %zu sent to other engines, %zu "
                "failed (no engine up)",
                p->endpoint, moved, lost);
    }
}

static void s_ping_peer(sc_engine_t *self, s_peer_t *p);

static void s_on_state(void *arg, bool up)
{
    s_peer_t *p = arg;
    sc_engine_t *self = p->owner;
    S_SET(p->up, up);
    if (up) {
        /* Its policy at once, not at the next tick. */
        if (self->pinger) {
            event_active(self->pinger, EV_TIMEOUT, 0);
        }
        return;
    }
    pthread_mutex_lock(&self->policy_lock);
    p->policy_known = false;
    pthread_mutex_unlock(&self->policy_lock);
    s_move_calls(self, p);
}

/* Policy pings ------------------------------------------------------------- */

/* Compares engine p's newly reported hash with every other connected
 * engine's; counts and (rate-limited) logs a difference. */
static void s_check_agreement(sc_engine_t *self, const s_peer_t *p)
{
    if (!p->hash[0]) {
        return; /* an engine that sends no hash cannot disagree */
    }
    for (size_t j = 0; j < self->npeers; j++) {
        const s_peer_t *o = &self->peers[j];
        if (o == p || !o->policy_known || !o->hash[0] || !sc_link_up(o->link) ||
            strcmp(o->hash, p->hash) == 0) {
            continue;
        }
        S_INC(self->disagreements);
        double now = s_mono();
        if (self->warned_at == 0 || now - self->warned_at >= S_WARN_EVERY_S) {
            self->warned_at = now;
            eng_log(ENG_LOG_WARN, "sidecar",
                    "engines serve different policies: %s has %s (version %llu), %s has %s "
                    "(version %llu); decisions depend on which engine answers",
                    p->endpoint, p->hash, (unsigned long long)p->policy_version, o->endpoint,
                    o->hash, (unsigned long long)o->policy_version);
        }
        return;
    }
}

static void s_on_ping(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                      size_t len)
{
    (void)raw;
    (void)len;
    s_peer_t *p = arg;
    p->ping = 0;
    if (res != SC_ENG_REPLY || !r->ok) {
        return; /* down, late or refusing: the last report stands until it goes down */
    }
    pthread_mutex_lock(&p->owner->policy_lock);
    p->policy_known = true;
    p->policy_version = r->policy_version;
    /* A label value: kept to hex-like characters, cut to fit. */
    size_t n = r->policy_hash.len < sizeof p->hash - 1 ? r->policy_hash.len : sizeof p->hash - 1;
    for (size_t i = 0; i < n; i++) {
        char c = r->policy_hash.ptr[i];
        bool plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        p->hash[i] = plain ? c : '_';
    }
    p->hash[n] = '\0';
    pthread_mutex_unlock(&p->owner->policy_lock);
    s_check_agreement(p->owner, p);
}

/* Sends a ping pinned to engine p: not round robin, never resent. */
static void s_ping_peer(sc_engine_t *self, s_peer_t *p)
{
    if (p->ping || !sc_link_up(p->link) || self->free_head == S_NONE) {
        return;
    }
    uint32_t i = self->free_head;
    if (s_encode(self, &self->ping_req, s_id(&self->slots[i], i)) != 0 || s_slot_ready(self) != 0 ||
        sc_link_send(p->link, self->out.data, self->out.len) != 0) {
        return;
    }
    s_slot_t *s = s_slot_take(self, p->idx, NULL, s_on_ping, p);
    s->pinned = true;
    p->ping = s->handle;
}

static void s_on_pinger(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_engine_t *self = arg;
    for (size_t j = 0; j < self->npeers; j++) {
        s_ping_peer(self, &self->peers[j]);
    }
}

/* State ----------------------------------------------------------------------- */

sc_link_kind_t sc_engine_link_kind(const sc_engine_t *self)
{
    return sc_link_kind(self->peers[0].link);
}

size_t sc_engine_inflight(const sc_engine_t *self)
{
    return S_GET(self->inflight);
}

size_t sc_engine_count(const sc_engine_t *self)
{
    return self->npeers;
}

size_t sc_engine_up(const sc_engine_t *self)
{
    size_t n = 0;
    for (size_t j = 0; j < self->npeers; j++) {
        n += sc_link_up(self->peers[j].link);
    }
    return n;
}

void sc_engine_state(const sc_engine_t *self, size_t i, sc_metrics_engine_t *out)
{
    const s_peer_t *p = &self->peers[i];
    memset(out, 0, sizeof *out);
    memcpy(out->endpoint, p->endpoint, sizeof out->endpoint); /* set once */
    out->up = S_GET(p->up);
    out->calls = S_GET(p->calls);
    out->resends = S_GET(p->resends);
    pthread_mutex_t *lock = (pthread_mutex_t *)&self->policy_lock; /* a reader's lock */
    pthread_mutex_lock(lock);
    out->policy_known = p->policy_known;
    out->policy_version = p->policy_version;
    memcpy(out->policy_hash, p->hash, sizeof out->policy_hash);
    pthread_mutex_unlock(lock);
}

uint64_t sc_engine_disagreements(const sc_engine_t *self)
{
    return S_GET(self->disagreements);
}

/* Life ------------------------------------------------------------------------ */

sc_engine_t *sc_engine_new(struct event_base *base, const sc_engine_config_t *cfg, char *errbuf,
                           size_t errlen)
{
    if (cfg->nendpoints < 1 || cfg->nendpoints > SC_ENGINE_MAX_ENGINES) {
        snprintf(errbuf, errlen, "%zu engines: expected 1 to %d", cfg->nendpoints,
                 SC_ENGINE_MAX_ENGINES);
        return NULL;
    }
    sc_engine_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->base = base;
    pthread_mutex_init(&self->policy_lock, NULL);
    self->timeout.tv_sec = cfg->timeout_ms / 1000;
    self->timeout.tv_usec = (cfg->timeout_ms % 1000) * 1000;
    self->tv = event_base_init_common_timeout(base, &self->timeout);
    if (!self->tv) {
        self->tv = &self->timeout;
    }
    proto_buf_init_fixed(&self->out, self->outmem, sizeof self->outmem);
    proto_request_init(&self->ping_req, PROTO_OP_PING);
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
    for (size_t j = 0; j < cfg->nendpoints; j++) {
        s_peer_t *p = &self->peers[j];
        p->owner = self;
        p->idx = (uint8_t)j;
        snprintf(p->endpoint, sizeof p->endpoint, "%s", cfg->endpoints[j]);
        sc_link_config_t lc = {
            .endpoint = cfg->endpoints[j],
            .kind = cfg->kind,
            .local = cfg->local,
            .reader = cfg->reader,
            .curve = cfg->curve,
            .on_message = s_dispatch,
            .on_state = s_on_state,
            .arg = p,
        };
        p->link = sc_link_new(base, &lc, errbuf, errlen);
        if (!p->link) {
            goto fail;
        }
        self->npeers = j + 1;
    }
    if (cfg->ping_ms > 0) {
        self->ping_every.tv_sec = cfg->ping_ms / 1000;
        self->ping_every.tv_usec = (cfg->ping_ms % 1000) * 1000;
        self->pinger = event_new(base, -1, EV_PERSIST, s_on_pinger, self);
        if (!self->pinger || event_add(self->pinger, &self->ping_every) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            goto fail;
        }
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
    if (self->pinger) {
        event_free(self->pinger);
    }
    for (size_t j = 0; j < SC_ENGINE_MAX_ENGINES; j++) {
        sc_link_destroy(&self->peers[j].link);
    }
    if (self->slots) {
        for (uint32_t i = 0; i < SC_ENGINE_MAX_INFLIGHT; i++) {
            if (self->slots[i].timer) {
                event_free(self->slots[i].timer);
            }
        }
        free(self->slots);
    }
    pthread_mutex_destroy(&self->policy_lock);
    free(self);
    *self_p = NULL;
}

size_t sc_engine_report(sc_engine_t *self, const proto_attempt_t *attempts, size_t n)
{
    if (!self || n == 0) {
        return 0;
    }
    proto_buf_reset(&self->out);
    if (proto_report_encode(&self->out, NULL, attempts,
                            n > PROTO_MAX_ATTEMPTS ? PROTO_MAX_ATTEMPTS : n, false) != PROTO_OK) {
        return 0;
    }
    size_t sent = 0;
    for (size_t j = 0; j < self->npeers; j++) {
        s_peer_t *p = &self->peers[j];
        if (sc_link_up(p->link) && sc_link_send(p->link, self->out.data, self->out.len) == 0) {
            sent++;
        }
    }
    return sent;
}
