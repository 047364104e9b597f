/* eng_ledger.c - the engine's ledger (see eng_ledger.h for the checks).
 *
 * Owns the store and the expiry thread; the key tables are owned by
 * whoever holds a reference (the snapshots and the reloader).
 *
 * What synchronizes what: the counters are relaxed atomics (read by stats);
 * a key table never changes after it is loaded, and its reference count is
 * touched only at reload and snapshot destruction, never per request; the
 * store guards its own state; `mu`/`cv` only wake and stop the expiry
 * thread.
 */
#define _GNU_SOURCE
#include "eng_ledger.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define S_EXPIRE_MS 200 /* how often reservations past their hold are looked for */
#define S_NODE_BITS 48  /* the local sequence's bits in a decision id */

struct eng_ledger_keys {
    hpp_apikeys_t *keys;
    _Atomic int refs;
};

struct eng_ledger {
    eng_ledger_cfg_t cfg;
    char *keys_path; /* copy of cfg.keys */
    eng_store_t *store;
    uint64_t node;
    pthread_t expirer;
    bool expirer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    _Atomic uint64_t reservations, settled, released, expired, duplicates, unavailable;
};

static void s_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keys ------------------------------------------------------------------------ */

eng_ledger_keys_t *eng_ledger_keys_load(const eng_ledger_t *self, char *err, size_t errlen)
{
    if (!self->keys_path) {
        snprintf(err, errlen, "no key file (--keys)");
        return NULL;
    }
    hpp_apikeys_t *k = hpp_apikeys_load(self->keys_path, err, errlen);
    if (!k) {
        return NULL;
    }
    eng_ledger_keys_t *t = calloc(1, sizeof *t);
    if (!t) {
        hpp_apikeys_destroy(&k);
        snprintf(err, errlen, "%s: out of memory", self->keys_path);
        return NULL;
    }
    t->keys = k;
    atomic_init(&t->refs, 1);
    return t;
}

eng_ledger_keys_t *eng_ledger_keys_ref(eng_ledger_keys_t *keys)
{
    if (keys) {
        atomic_fetch_add(&keys->refs, 1);
    }
    return keys;
}

void eng_ledger_keys_release(void *arg)
{
    eng_ledger_keys_t *keys = arg;
    if (keys && atomic_fetch_sub(&keys->refs, 1) == 1) {
        hpp_apikeys_destroy(&keys->keys);
        free(keys);
    }
}

size_t eng_ledger_keys_count(const eng_ledger_keys_t *keys)
{
    return keys ? hpp_apikeys_count(keys->keys) : 0;
}

/* Ids and days ------------------------------------------------------------------ */

uint64_t eng_ledger_node(const eng_ledger_t *self)
{
    return self->node;
}

uint64_t eng_ledger_decision_id(const eng_ledger_t *self, uint64_t local)
{
    return self->node << S_NODE_BITS | (local & ((UINT64_C(1) << S_NODE_BITS) - 1));
}

uint64_t eng_ledger_id_base(void)
{
    /* 64 ids a millisecond since 2026-01-01: 2^48 of them last 139 years,
     * and a restarted engine starts past the ids it used unless it made
     * more than 64,000 decisions a second on average while it ran. */
    int64_t ms = s_unix_ms() - INT64_C(1767225600000);
    return ms > 0 ? (uint64_t)ms * 64 : 0;
}

static int64_t s_day(const eng_ledger_t *self, int64_t now_ms)
{
    int64_t s = now_ms / 1000 + (int64_t)self->cfg.day_offset_h * 3600;
    return s >= 0 ? s / 86400 : (s - 86399) / 86400;
}

/* Lifecycle --------------------------------------------------------------------- */

static void *s_expirer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "hpp-expirer"); /* as top -H, perf and /proc show it */
    eng_ledger_t *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->stopping) {
        struct timespec until = eng_abstime_in_ms(S_EXPIRE_MS);
        pthread_cond_timedwait(&self->cv, &self->mu, &until);
        if (self->stopping) {
            break;
        }
        pthread_mutex_unlock(&self->mu);
        uint64_t n = 0;
        char err[160];
        do {
            n = 0;
            if (self->store->ops->expire(self->store, s_unix_ms(), &n, err, sizeof err) != HPP_OK) {
                s_add(&self->unavailable, 1);
                break;
            }
            s_add(&self->expired, n);
        } while (n >= 4096); /* a store expires at most that many per call */
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

eng_ledger_t *eng_ledger_new(const eng_ledger_cfg_t *cfg, char *err, size_t errlen)
{
    eng_ledger_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    if (cfg->keys && !(self->keys_path = strdup(cfg->keys))) {
        snprintf(err, errlen, "out of memory");
        eng_ledger_destroy(&self);
        return NULL;
    }
    self->node = cfg->node;
    while (self->node == 0) {
        uint16_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
            r = (uint16_t)(s_unix_ms() ^ (int64_t)getpid());
        }
        self->node = r;
    }
    if (cfg->store) {
        eng_store_cfg_t scfg = {.secret_file = cfg->secret,
                                .node = self->node,
                                .ring_dir = cfg->ring_dir,
                                .ring_lost = cfg->ring_lost,
                                .now_ms = s_unix_ms(),
                                .check = cfg->check};
        self->store = eng_store_open(cfg->store, &scfg, err, errlen);
        if (!self->store) {
            eng_ledger_destroy(&self);
            return NULL;
        }
        if (cfg->check) {
            return self; /* nothing expires in a check */
        }
        if (pthread_create(&self->expirer, NULL, s_expirer_main, self) != 0) {
            snprintf(err, errlen, "cannot start the ledger's expiry thread");
            eng_ledger_destroy(&self);
            return NULL;
        }
        self->expirer_started = true;
    }
    return self;
}

void eng_ledger_destroy(eng_ledger_t **self_p)
{
    eng_ledger_t *self = self_p ? *self_p : NULL;
    if (!self) {
        return;
    }
    *self_p = NULL;
    if (self->expirer_started) {
        pthread_mutex_lock(&self->mu);
        self->stopping = true;
        pthread_cond_signal(&self->cv);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->expirer, NULL);
    }
    eng_store_destroy(&self->store);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    free(self->keys_path);
    free(self);
}

bool eng_ledger_has_store(const eng_ledger_t *self)
{
    return self && self->store;
}

bool eng_ledger_optional(const eng_ledger_t *self)
{
    return self->cfg.optional;
}

/* The decision path ------------------------------------------------------------- */

static void s_store_key(const hpp_apikey_t *k, eng_store_key_t *out)
{
    out->hash = k->hash;
    out->account = k->account;
    out->limit_pd = k->limit_pd;
    out->daily_pd = k->daily_pd;
    out->daily_requests = k->daily_requests;
    out->free_daily_requests = k->free_daily_requests;
    out->free_daily_requests_funded = k->free_daily_requests_funded;
}

hpp_status_t eng_ledger_begin(eng_ledger_t *self, const eng_ledger_keys_t *keys,
                              const hpp_features_t *f, const eng_policy_t *pol,
                              eng_ledger_call_t *c, char *msg, size_t cap)
{
    c->checked = false;
    c->key = NULL;
    c->has_remaining = false;
    c->remaining_pd = INT64_MAX;
    c->features = *f;
    if (f->key.len == 0) {
        if (self->store && !self->cfg.optional) {
            snprintf(msg, cap, "key: required: this engine keeps a ledger");
            return HPP_E_UNKNOWN_KEY;
        }
        return HPP_OK; /* served as before: the request's own group */
    }
    const hpp_apikey_t *k = keys ? hpp_apikeys_find_hash(keys->keys, f->key.ptr, f->key.len) : NULL;
    if (!k || k->revoked) {
        snprintf(msg, cap, "key: %s key %.15s...", k ? "revoked" : "unknown", f->key.ptr);
        return HPP_E_UNKNOWN_KEY;
    }
    c->key = k;
    c->features.group.ptr = k->group;
    c->features.group.len = strlen(k->group);
    if (!self->store) {
        return HPP_OK; /* keys only: the group, no money */
    }
    c->checked = true;
    s_store_key(k, &c->skey);
    int64_t now = s_unix_ms();
    c->day = s_day(self, now);
    if (pol && eng_policy_group_steps(pol, c->features.group)) {
        eng_store_state_t st;
        char err[160];
        if (self->store->ops->read(self->store, &c->skey, c->day, &st, err, sizeof err) != HPP_OK) {
            s_add(&self->unavailable, 1);
            snprintf(msg, cap, "%s", err);
            return HPP_E_LEDGER_UNAVAILABLE;
        }
        c->remaining_pd = eng_store_remaining(&c->skey, &st);
        c->has_remaining = true;
    }
    return HPP_OK;
}

static const char *s_refusal(hpp_status_t st)
{
    switch (st) {
    case HPP_E_INSUFFICIENT_BALANCE:
        return "the account's balance is spent";
    case HPP_E_KEY_LIMIT_REACHED:
        return "the key's limit is reached";
    case HPP_E_DAILY_LIMIT_REACHED:
        return "the key's daily limit is reached";
    default:
        return "the ledger refused";
    }
}

void eng_ledger_reserve(eng_ledger_t *self, eng_ledger_call_t *c, eng_decision_t *d)
{
    if (!c->checked || d->status != HPP_OK) {
        return;
    }
    int64_t now = s_unix_ms();
    eng_store_resv_t r = {
        .decision = d->decision_id,
        .amount_pd = d->cost.total > 0 ? d->cost.total : 0,
        .free_model = d->endpoint && d->endpoint->is_free,
        .day = c->day,
        .now_ms = now,
        .expires_ms = now + (int64_t)self->cfg.hold_s * 1000,
    };
    eng_store_state_t st;
    char err[160];
    int rc = self->store->ops->reserve(self->store, &c->skey, &r, &st, err, sizeof err);
    if (rc != HPP_OK) {
        d->status = (hpp_status_t)rc;
        if (rc == HPP_E_LEDGER_UNAVAILABLE || rc == HPP_E_INTERNAL) {
            s_add(&self->unavailable, 1);
            snprintf(d->message, sizeof d->message, "%s", err);
        } else {
            snprintf(d->message, sizeof d->message, "%s (key %.15s..., account %.40s)",
                     s_refusal((hpp_status_t)rc), c->key->hash, c->key->account);
        }
        return;
    }
    s_add(&self->reservations, 1);
    d->has_ledger = true;
    d->reserved_pd = r.amount_pd;
    d->remaining_pd = eng_store_remaining(&c->skey, &st);
}

/* Reports --------------------------------------------------------------------- */

static bool s_answered(const proto_attempt_t *a)
{
    return a->error == PROTO_XERR_NONE && a->status >= 200 && a->status < 300;
}

/* The charge of an attempt that answered: its own cost, else the engine's
 * price of its usage, else -1 (the reservation's estimate). */
static int64_t s_charge(const proto_attempt_t *a, const hpp_cost_t *cost, bool priced)
{
    hpp_pusd_t pd = 0;
    if (a->cost_usd >= 0 && hpp_pusd_from_double(a->cost_usd, 12, &pd) == 0) {
        return pd;
    }
    if (priced && cost->total >= 0) {
        return cost->total;
    }
    return -1;
}

void eng_ledger_report(eng_ledger_t *self, const proto_attempt_t *at, uint32_t n,
                       const hpp_cost_t *cost, const bool *priced)
{
    if (!self || !self->store) {
        return;
    }
    bool done[PROTO_MAX_ATTEMPTS] = {false};
    int64_t now = s_unix_ms();
    for (uint32_t i = 0; i < n && i < PROTO_MAX_ATTEMPTS; i++) {
        if (done[i] || at[i].decision == 0) {
            continue;
        }
        /* Every attempt of this decision: the one that answered pays. */
        int winner = -1;
        for (uint32_t j = i; j < n; j++) {
            if (at[j].decision == at[i].decision) {
                done[j] = true;
                if (winner < 0 && s_answered(&at[j])) {
                    winner = (int)j;
                }
            }
        }
        char err[160];
        bool hit = false;
        int rc;
        if (winner >= 0) {
            const proto_attempt_t *a = &at[winner];
            eng_store_settle_t s = {
                .decision = a->decision,
                .cost_pd = s_charge(a, &cost[winner], priced[winner]),
                .prompt_tokens = a->prompt_tokens > 0 ? a->prompt_tokens : 0,
                .completion_tokens = a->completion_tokens > 0 ? a->completion_tokens : 0,
                .now_ms = now,
            };
            rc = self->store->ops->settle(self->store, &s, &hit, err, sizeof err);
            s_add(hit ? &self->settled : &self->duplicates, rc == HPP_OK);
        } else {
            rc = self->store->ops->release(self->store, at[i].decision, &hit, err, sizeof err);
            s_add(hit ? &self->released : &self->duplicates, rc == HPP_OK);
        }
        if (rc != HPP_OK) {
            s_add(&self->unavailable, 1);
        }
    }
}

int eng_ledger_sync(eng_ledger_t *self, char *msg, size_t cap)
{
    if (!self || !self->store) {
        return HPP_OK;
    }
    int rc = self->store->ops->sync(self->store, 5000, msg, cap);
    if (rc != HPP_OK) {
        s_add(&self->unavailable, 1);
    }
    return rc;
}

/* The ledger op ------------------------------------------------------------------ */

static int64_t s_or_none(int64_t v)
{
    return v < 0 ? PROTO_LEDGER_NONE_PD : v;
}

static void s_op_key(eng_ledger_t *self, const eng_ledger_keys_t *keys, const proto_request_t *req,
                     proto_buf_t *out)
{
    const hpp_str_t h = req->features.key;
    const hpp_apikey_t *k = keys ? hpp_apikeys_find_hash(keys->keys, h.ptr, h.len) : NULL;
    if (!k || k->revoked) {
        proto_reply_error(out, &req->id, HPP_E_UNKNOWN_KEY,
                          k ? "key: revoked" : "key: not in the key file");
        return;
    }
    eng_store_key_t sk;
    s_store_key(k, &sk);
    eng_store_state_t st;
    char err[160];
    if (self->store->ops->read(self->store, &sk, s_day(self, s_unix_ms()), &st, err, sizeof err) !=
        HPP_OK) {
        s_add(&self->unavailable, 1);
        proto_reply_error(out, &req->id, HPP_E_LEDGER_UNAVAILABLE, err);
        return;
    }
    proto_ledger_key_t r = {
        .key = {k->hash, strlen(k->hash)},
        .group = {k->group, strlen(k->group)},
        .account = {k->account, strlen(k->account)},
        .balance_pd = st.balance_pd,
        .limit_pd = s_or_none(k->limit_pd),
        .remaining_pd =
            k->limit_pd < 0 ? PROTO_LEDGER_NONE_PD : k->limit_pd - st.spent_pd - st.reserved_pd,
        .daily_pd = s_or_none(k->daily_pd),
        .day_spent_pd = st.day_spent_pd,
        .day_requests = st.day_requests,
        .day_free_requests = st.day_free_requests,
        .requests = st.requests,
        .prompt_tokens = st.prompt_tokens,
        .completion_tokens = st.completion_tokens,
        .spent_pd = st.spent_pd,
        .reserved_pd = st.reserved_pd,
        .account_reserved_pd = st.acct_reserved_pd,
        .day_reserved_pd = st.day_reserved_pd,
    };
    proto_reply_ledger_key(out, &req->id, &r);
}

typedef struct {
    eng_store_account_t *v;
    size_t n, cap;
    bool oom;
} s_accts_t;

static bool s_collect(void *arg, const eng_store_account_t *a)
{
    s_accts_t *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        eng_store_account_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *a;
    return true;
}

static void s_account_at(const void *arg, size_t i, proto_ledger_account_t *out)
{
    const s_accts_t *l = arg;
    const eng_store_account_t *a = &l->v[i];
    out->account.ptr = a->name;
    out->account.len = strlen(a->name);
    out->balance_pd = a->balance_pd;
    out->reserved_pd = a->reserved_pd;
    out->spent_pd = a->spent_pd;
}

void eng_ledger_op(eng_ledger_t *self, const eng_ledger_keys_t *keys, const proto_request_t *req,
                   proto_buf_t *out)
{
    if (!self || !self->store) {
        proto_reply_error(out, &req->id, HPP_E_LEDGER_UNAVAILABLE,
                          "this engine keeps no ledger (start it with --ledger)");
        return;
    }
    const proto_ledger_req_t *l = &req->ledger;
    char err[160];
    switch (l->action) {
    case PROTO_LEDGER_KEY:
        s_op_key(self, keys, req, out);
        return;
    case PROTO_LEDGER_TOPUP:
    case PROTO_LEDGER_SET_BALANCE: {
        char account[PROTO_MAX_ACCOUNT_LEN + 1];
        snprintf(account, sizeof account, "%.*s", (int)l->account.len, l->account.ptr);
        int64_t balance = 0;
        int rc = self->store->ops->adjust(self->store, account, l->amount_pd,
                                          l->action == PROTO_LEDGER_SET_BALANCE, &balance, err,
                                          sizeof err);
        if (rc != HPP_OK) {
            s_add(&self->unavailable, rc == HPP_E_LEDGER_UNAVAILABLE);
            proto_reply_error(out, &req->id, (hpp_status_t)rc, err);
            return;
        }
        proto_reply_ledger_balance(out, &req->id, l->account, balance);
        return;
    }
    case PROTO_LEDGER_ACCOUNTS: {
        s_accts_t list = {0};
        int rc = self->store->ops->accounts(self->store, s_collect, &list, err, sizeof err);
        if (rc != HPP_OK || list.oom) {
            proto_reply_error(out, &req->id, list.oom ? HPP_E_INTERNAL : (hpp_status_t)rc,
                              list.oom ? "out of memory" : err);
        } else {
            proto_reply_ledger_accounts(out, &req->id, list.n, s_account_at, &list);
        }
        free(list.v);
        return;
    }
    default:
        proto_reply_error(out, &req->id, HPP_E_BAD_REQUEST, "action: required");
        return;
    }
}

void eng_ledger_stats(const eng_ledger_t *self, eng_ledger_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->store = "";
    if (!self) {
        return;
    }
    eng_ledger_t *m = (eng_ledger_t *)self; /* atomics are read, not changed */
    out->reservations = atomic_load_explicit(&m->reservations, memory_order_relaxed);
    out->settled = atomic_load_explicit(&m->settled, memory_order_relaxed);
    out->released = atomic_load_explicit(&m->released, memory_order_relaxed);
    out->expired = atomic_load_explicit(&m->expired, memory_order_relaxed);
    out->duplicates = atomic_load_explicit(&m->duplicates, memory_order_relaxed);
    out->unavailable = atomic_load_explicit(&m->unavailable, memory_order_relaxed);
    out->store = self->store ? self->store->ops->name : "";
}
