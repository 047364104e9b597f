/* eng_health.c - per-endpoint health from reports (see eng_health.h).
 *
 * Each slot has two halves. The writer's half holds the exact state in
 * doubles (decayed sums, averages, histogram) and is touched by the writer
 * only. The published half is a few atomic scalars the writer stores after
 * each update and the resolver loads with relaxed order: no lock, no torn
 * value (each is one aligned word), no allocation on either side.
 *
 * Decay: every figure is an exponentially weighted average in time, with a
 * half-life of the policy's window: a weight w = 2^(-dt / window) is applied
 * to what was known dt ago before the new attempt is added, so an endpoint
 * that failed an hour ago and has been quiet since is not judged by it,
 * and a burst of reports counts as much as its own length of time.
 *
 * Cooldown: `allowed_fails` consecutive failures put the endpoint on
 * cooldown for `cooldown`; when it ends the endpoint is tried again
 * (half-open): one more failure puts it back for twice as long (up to
 * `cooldown_max`), a success clears the backoff.
 */
#include "eng_health.h"

#include "eng_policy_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_BUCKETS 24 /* latency histogram: bucket b holds [2^(b-1), 2^b) ms */

typedef struct {
    /* Writer's half. */
    int64_t last_ms;             /* time of the last update, 0 = never */
    double w_total;              /* decayed count of attempts */
    double w_fail;               /* decayed count of failures */
    double lat, ttft, tps;       /* decayed averages, < 0 = none yet */
    double w_lat, w_ttft, w_tps; /* decayed weights of those averages */
    double hist[S_BUCKETS];      /* decayed latency histogram */
    uint32_t fails;              /* consecutive failures */
    uint32_t backoff;            /* cooldowns in a row without a success */
    uint64_t attempts;           /* reports counted */
    /* Published half. */
    _Atomic int64_t cool_until; /* monotonic ms; 0 = never cooled */
    _Atomic uint32_t pub_fails;
    _Atomic uint32_t err_ppm; /* error rate, parts per million */
    _Atomic uint32_t lat_us;  /* UINT32_MAX = not measured */
    _Atomic uint32_t p90_us;
    _Atomic uint32_t ttft_us;
    _Atomic uint32_t tps_milli; /* tokens per second x 1000 */
    _Atomic uint64_t pub_attempts;
} s_slot_t;

struct eng_health {
    eng_health_cfg_t cfg;
    size_t n;
    _Atomic int64_t cool_max; /* latest end of any cooldown, 0 = none ever */
    s_slot_t *slots;
};

#define S_NONE UINT32_MAX

void eng_health_cfg_defaults(eng_health_cfg_t *cfg)
{
    cfg->allowed_fails = ENG_HEALTH_FAILS;
    cfg->cooldown_ms = ENG_HEALTH_COOLDOWN_MS;
    cfg->cooldown_max_ms = ENG_HEALTH_COOLDOWN_MAX_MS;
    cfg->window_ms = ENG_HEALTH_WINDOW_MS;
}

static void s_slot_init(s_slot_t *s)
{
    memset(s, 0, sizeof *s);
    s->lat = s->ttft = s->tps = -1;
    atomic_init(&s->cool_until, 0);
    atomic_init(&s->pub_fails, 0);
    atomic_init(&s->err_ppm, 0);
    atomic_init(&s->lat_us, S_NONE);
    atomic_init(&s->p90_us, S_NONE);
    atomic_init(&s->ttft_us, S_NONE);
    atomic_init(&s->tps_milli, S_NONE);
    atomic_init(&s->pub_attempts, 0);
}

eng_health_t *eng_health_new(size_t n, const eng_health_cfg_t *cfg)
{
    eng_health_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->slots = calloc(n ? n : 1, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    self->n = n;
    if (cfg) {
        self->cfg = *cfg;
    } else {
        eng_health_cfg_defaults(&self->cfg);
    }
    if (self->cfg.allowed_fails == 0) {
        self->cfg.allowed_fails = 1;
    }
    if (self->cfg.window_ms <= 0) {
        self->cfg.window_ms = ENG_HEALTH_WINDOW_MS;
    }
    atomic_init(&self->cool_max, 0);
    for (size_t i = 0; i < n; i++) {
        s_slot_init(&self->slots[i]);
    }
    return self;
}

void eng_health_destroy(eng_health_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

int64_t eng_health_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool eng_health_is_failure(const proto_attempt_t *a)
{
    if (a->error != PROTO_XERR_NONE) {
        return a->error != PROTO_XERR_CANCELED;
    }
    return a->status == 429 || a->status >= 500;
}

/* Writer ------------------------------------------------------------------- */

/* Adds x with weight 1 to the average `avg` of decayed weight *w. */
static void s_avg(double *avg, double *w, double decay, double x)
{
    if (x < 0) {
        return;
    }
    double old = *avg < 0 ? 0 : *avg * *w * decay;
    *w = *w * decay + 1;
    *avg = (old + x) / *w;
}

static int s_bucket(double ms)
{
    int b = ms < 1 ? 0 : 1 + (int)floor(log2(ms));
    return b < S_BUCKETS ? b : S_BUCKETS - 1;
}

/* The 90th percentile from the histogram: the upper edge of the bucket
 * where the cumulated weight reaches 90%, in microseconds. */
static uint32_t s_p90_us(const s_slot_t *s)
{
    double total = 0;
    for (int b = 0; b < S_BUCKETS; b++) {
        total += s->hist[b];
    }
    if (total <= 0) {
        return S_NONE;
    }
    double acc = 0;
    for (int b = 0; b < S_BUCKETS; b++) {
        acc += s->hist[b];
        if (acc >= 0.9 * total) {
            return (uint32_t)(ldexp(1.0, b) * 1000);
        }
    }
    return (uint32_t)(ldexp(1.0, S_BUCKETS - 1) * 1000);
}

static uint32_t s_fixed(double v, double scale)
{
    if (v < 0) {
        return S_NONE;
    }
    double x = v * scale;
    return x >= (double)(S_NONE - 1) ? S_NONE - 1 : (uint32_t)llround(x);
}

static void s_publish(s_slot_t *s)
{
    atomic_store_explicit(&s->pub_fails, s->fails, memory_order_relaxed);
    double rate = s->w_total > 0 ? s->w_fail / s->w_total : 0;
    atomic_store_explicit(&s->err_ppm, (uint32_t)llround(rate * 1e6), memory_order_relaxed);
    atomic_store_explicit(&s->lat_us, s_fixed(s->lat, 1000), memory_order_relaxed);
    atomic_store_explicit(&s->p90_us, s_p90_us(s), memory_order_relaxed);
    atomic_store_explicit(&s->ttft_us, s_fixed(s->ttft, 1000), memory_order_relaxed);
    atomic_store_explicit(&s->tps_milli, s_fixed(s->tps, 1000), memory_order_relaxed);
    atomic_store_explicit(&s->pub_attempts, s->attempts, memory_order_relaxed);
}

static void s_cool_max(eng_health_t *self, int64_t until)
{
    if (until > atomic_load_explicit(&self->cool_max, memory_order_relaxed)) {
        atomic_store_explicit(&self->cool_max, until, memory_order_relaxed);
    }
}

/* The failure that ends a run (or a half-open probe) starts a cooldown. */
static void s_fail(eng_health_t *self, s_slot_t *s, int64_t now_ms)
{
    int64_t until = atomic_load_explicit(&s->cool_until, memory_order_relaxed);
    if (until > now_ms) {
        return; /* already cooling: late reports of the same outage */
    }
    s->fails++;
    bool probe = s->backoff > 0; /* the first try after a cooldown failed */
    if (s->fails < self->cfg.allowed_fails && !probe) {
        return;
    }
    int64_t ms = self->cfg.cooldown_ms;
    for (uint32_t i = 0; i < s->backoff && ms < self->cfg.cooldown_max_ms; i++) {
        ms *= 2;
    }
    if (ms > self->cfg.cooldown_max_ms) {
        ms = self->cfg.cooldown_max_ms;
    }
    s->backoff++;
    s->fails = 0;
    atomic_store_explicit(&s->cool_until, now_ms + (ms > 0 ? ms : 0), memory_order_relaxed);
    s_cool_max(self, now_ms + ms);
}

void eng_health_record(eng_health_t *self, size_t ep, const proto_attempt_t *a, int64_t now_ms)
{
    if (!self || ep >= self->n) {
        return;
    }
    s_slot_t *s = &self->slots[ep];
    double decay = 1;
    if (s->last_ms > 0 && now_ms > s->last_ms) {
        decay = exp2(-(double)(now_ms - s->last_ms) / (double)self->cfg.window_ms);
    }
    s->last_ms = now_ms;
    bool failed = eng_health_is_failure(a);
    s->w_total = s->w_total * decay + 1;
    s->w_fail = s->w_fail * decay + failed;
    for (int b = 0; b < S_BUCKETS; b++) {
        s->hist[b] *= decay;
    }
    s->attempts++;
    if (!failed && a->error == PROTO_XERR_NONE) {
        /* Only answers say how fast the endpoint is; failures are timed by
         * whoever gave up, not by the endpoint. */
        s_avg(&s->lat, &s->w_lat, decay, a->latency_ms);
        s_avg(&s->ttft, &s->w_ttft, decay, a->ttft_ms);
        s_avg(&s->tps, &s->w_tps, decay, a->tokens_per_s);
        if (a->latency_ms >= 0) {
            s->hist[s_bucket(a->latency_ms)] += 1;
        }
    }
    if (failed) {
        s_fail(self, s, now_ms);
    } else if (a->error == PROTO_XERR_NONE) {
        s->fails = 0;
        s->backoff = 0;
    }
    s_publish(s);
}

/* The index in `cat` of the endpoint of `cat2` entry e2, or -1. */
static long s_same(const eng_catalog_t *cat, const eng_catalog_t *cat2, size_t e2)
{
    size_t n2 = 0, nm2 = 0;
    const eng_endpoint_t *ep2 = &eng_catalog_endpoints(cat2, &n2)[e2];
    const eng_model_t *m2 = &eng_catalog_models(cat2, &nm2)[ep2->model];
    const eng_model_t *m = eng_catalog_find(cat, m2->id, m2->id_len);
    if (!m) {
        return -1;
    }
    size_t n = 0;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &n);
    for (uint32_t k = 0; k < m->ep_count; k++) {
        const eng_endpoint_t *ep = &eps[m->ep_first + k];
        if (strcmp(ep->provider, ep2->provider) == 0 &&
            strcmp(ep->native_id, ep2->native_id) == 0) {
            return (long)(m->ep_first + k);
        }
    }
    return -1;
}

void eng_health_carry(eng_health_t *self, const eng_catalog_t *cat, const eng_health_t *from,
                      const eng_catalog_t *from_cat)
{
    if (!self || !from || !cat || !from_cat) {
        return;
    }
    for (size_t e2 = 0; e2 < from->n; e2++) {
        const s_slot_t *src = &from->slots[e2];
        if (src->attempts == 0 && atomic_load(&src->cool_until) == 0) {
            continue;
        }
        long e = s_same(cat, from_cat, e2);
        if (e < 0 || (size_t)e >= self->n) {
            continue;
        }
        s_slot_t *dst = &self->slots[e];
        int64_t until = atomic_load(&src->cool_until);
        memcpy(dst, src, offsetof(s_slot_t, cool_until)); /* the writer's half */
        atomic_store(&dst->cool_until, until);
        s_cool_max(self, until);
        s_publish(dst);
    }
}

/* Readers ------------------------------------------------------------------ */

bool eng_health_cooling_now(const eng_health_t *self, int64_t *now_ms)
{
    if (!self) {
        return false;
    }
    int64_t until = atomic_load_explicit(&self->cool_max, memory_order_relaxed);
    if (until == 0) {
        return false;
    }
    *now_ms = eng_health_now_ms();
    return until > *now_ms;
}

bool eng_health_cooling(const eng_health_t *self, size_t ep, int64_t now_ms)
{
    return ep < self->n &&
           atomic_load_explicit(&self->slots[ep].cool_until, memory_order_relaxed) > now_ms;
}

static double s_unfixed(const _Atomic uint32_t *v, double scale)
{
    uint32_t x = atomic_load_explicit(v, memory_order_relaxed);
    return x == S_NONE ? -1 : (double)x / scale;
}

double eng_health_latency_ms(const eng_health_t *self, size_t ep)
{
    return ep < self->n ? s_unfixed(&self->slots[ep].lat_us, 1000) : -1;
}

double eng_health_tps(const eng_health_t *self, size_t ep)
{
    return ep < self->n ? s_unfixed(&self->slots[ep].tps_milli, 1000) : -1;
}

bool eng_health_get(const eng_health_t *self, size_t ep, int64_t now_ms, proto_health_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self || ep >= self->n) {
        return false;
    }
    const s_slot_t *s = &self->slots[ep];
    out->attempts = atomic_load_explicit(&s->pub_attempts, memory_order_relaxed);
    if (out->attempts == 0) {
        return false;
    }
    out->error_rate = atomic_load_explicit(&s->err_ppm, memory_order_relaxed) / 1e6;
    out->fails = atomic_load_explicit(&s->pub_fails, memory_order_relaxed);
    int64_t until = atomic_load_explicit(&s->cool_until, memory_order_relaxed);
    out->cooldown_s = until > now_ms ? (double)(until - now_ms) / 1000.0 : 0;
    out->latency_ms = s_unfixed(&s->lat_us, 1000);
    out->latency_p90_ms = s_unfixed(&s->p90_us, 1000);
    out->ttft_ms = s_unfixed(&s->ttft_us, 1000);
    out->tokens_per_s = s_unfixed(&s->tps_milli, 1000);
    return true;
}

/* The policy's side ------------------------------------------------------- */

const eng_health_cfg_t *eng_health_policy_cfg(const eng_policy_t *pol)
{
    return &pol->health_cfg;
}

const eng_health_t *eng_policy_health(const eng_policy_t *self)
{
    return self ? self->health : NULL;
}

void eng_policy_set_health(eng_policy_t *self, const eng_health_t *health)
{
    self->health = health;
}

/* The endpoint of `cat` an attempt names: its model by id (or a provider's
 * spelling of it) and, among its endpoints, the provider (ASCII
 * case-insensitive). -1 with `msg` saying what was not found. */
static long s_endpoint(const eng_catalog_t *cat, const proto_attempt_t *a, uint32_t i, char *msg,
                       size_t cap)
{
    /* "ID:free" names the model's `:free` variant, a plain id its paid
     * endpoints: at OpenRouter both have the same provider, and a 429 of
     * the free variant says nothing about the paid one. */
    hpp_str_t id = a->model;
    bool want_free = id.len > 5 && memcmp(id.ptr + id.len - 5, ":free", 5) == 0;
    const eng_model_t *m = eng_catalog_lookup(cat, id.ptr, id.len);
    if (!m && want_free) {
        m = eng_catalog_lookup(cat, id.ptr, id.len - 5);
    } else if (m && want_free && strlen(m->id) == id.len && memcmp(m->id, id.ptr, id.len) == 0) {
        want_free = false; /* a catalog id that itself ends in :free */
    }
    if (!m) {
        snprintf(msg, cap, "attempts[%u].model: unknown model '%.*s'", i,
                 (int)(a->model.len > 96 ? 96 : a->model.len), a->model.ptr);
        return -1;
    }
    size_t n = 0;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &n);
    long any = -1;
    for (uint32_t k = 0; k < m->ep_count; k++) {
        const eng_endpoint_t *ep = &eps[m->ep_first + k];
        if (ep->provider_len == a->provider.len &&
            strncasecmp(ep->provider, a->provider.ptr, a->provider.len) == 0) {
            if (ep->free_variant == want_free) {
                return (long)(m->ep_first + k);
            }
            any = any < 0 ? (long)(m->ep_first + k) : any;
        }
    }
    if (any >= 0) {
        return any; /* the provider's only endpoint of the model */
    }
    snprintf(msg, cap, "attempts[%u].provider: model '%s' has no endpoint at provider '%.*s'", i,
             m->id, (int)(a->provider.len > 64 ? 64 : a->provider.len), a->provider.ptr);
    return -1;
}

bool eng_health_endpoints(const eng_catalog_t *cat, const proto_attempt_t *at, uint32_t n,
                          uint32_t *idx, char *msg, size_t cap)
{
    for (uint32_t i = 0; i < n; i++) {
        long e = s_endpoint(cat, &at[i], i, msg, cap);
        if (e < 0) {
            return false;
        }
        idx[i] = (uint32_t)e;
    }
    return true;
}
