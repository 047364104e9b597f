/* eng_store_redis.c - the store interface over eng_redis (see
 * eng_store_redis.h). This file only translates: types, and eng_redis's
 * outcomes into the wire's statuses.
 */
#include "eng_store_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_redis.h"

typedef struct {
    eng_store_t base; /* first: the interface's view */
    eng_redis_t *redis;
} s_store_t;

static eng_redis_t *s_redis(eng_store_t *self)
{
    return ((s_store_t *)self)->redis;
}

/* eng_redis's outcome as the wire's status. A reply Redis should never give
 * (ENG_REDIS_ERROR: wrongly typed data under the prefix, a script error)
 * leaves the ledger unusable just as an outage does. */
static int s_status(eng_redis_rc_t rc)
{
    switch (rc) {
    case ENG_REDIS_OK:
        return HPP_OK;
    case ENG_REDIS_INSUFFICIENT_BALANCE:
        return HPP_E_INSUFFICIENT_BALANCE;
    case ENG_REDIS_KEY_LIMIT:
        return HPP_E_KEY_LIMIT_REACHED;
    case ENG_REDIS_DAILY_LIMIT:
        return HPP_E_DAILY_LIMIT_REACHED;
    case ENG_REDIS_DUPLICATE:
        return HPP_E_INTERNAL;
    case ENG_REDIS_UNAVAILABLE:
    case ENG_REDIS_ERROR:
        return HPP_E_LEDGER_UNAVAILABLE;
    }
    return HPP_E_INTERNAL;
}

static void s_state(eng_store_state_t *out, const eng_redis_state_t *st, int64_t day)
{
    *out = (eng_store_state_t){
        .balance_pd = st->balance_pd,
        .acct_reserved_pd = st->acct_reserved_pd,
        .spent_pd = st->spent_pd,
        .reserved_pd = st->reserved_pd,
        .requests = st->requests,
        .prompt_tokens = st->prompt_tokens,
        .completion_tokens = st->completion_tokens,
        .day = day,
        .day_spent_pd = st->day_spent_pd,
        .day_reserved_pd = st->day_reserved_pd,
        .day_requests = st->day_requests,
        .day_free_requests = st->day_free_requests,
    };
}

static int s_reserve(eng_store_t *self, const eng_store_key_t *key, const eng_store_resv_t *r,
                     eng_store_state_t *state, char *err, size_t errlen)
{
    const eng_redis_limits_t lim = {
        .limit_pd = key->limit_pd,
        .daily_pd = key->daily_pd,
        .daily_requests = key->daily_requests,
        .free_daily_requests = key->free_daily_requests,
        .free_daily_requests_funded = key->free_daily_requests_funded,
    };
    eng_redis_state_t st = {0};
    eng_redis_rc_t rc =
        eng_redis_reserve(s_redis(self), key->account, key->hash, &lim, r->decision, r->amount_pd,
                          r->free_model, r->day, r->expires_ms, &st, err, errlen);
    if (state && rc != ENG_REDIS_UNAVAILABLE && rc != ENG_REDIS_ERROR) {
        s_state(state, &st, r->day);
    }
    return s_status(rc);
}

static int s_settle(eng_store_t *self, const eng_store_settle_t *s, bool *settled, char *err,
                    size_t errlen)
{
    return s_status(eng_redis_settle(s_redis(self), s->decision, s->cost_pd, s->prompt_tokens,
                                     s->completion_tokens, settled, err, errlen));
}

static int s_release(eng_store_t *self, uint64_t decision, bool *released, char *err, size_t errlen)
{
    return s_status(eng_redis_release(s_redis(self), decision, released, err, errlen));
}

static int s_expire(eng_store_t *self, int64_t now_ms, uint64_t *n, char *err, size_t errlen)
{
    int64_t count = 0;
    eng_redis_rc_t rc = eng_redis_expire(s_redis(self), now_ms, &count, err, errlen);
    if (n) {
        *n = (uint64_t)count;
    }
    return s_status(rc);
}

static int s_read(eng_store_t *self, const eng_store_key_t *key, int64_t day,
                  eng_store_state_t *out, char *err, size_t errlen)
{
    eng_redis_state_t st = {0};
    eng_redis_rc_t rc =
        eng_redis_read(s_redis(self), key->account, key->hash, day, &st, err, errlen);
    if (rc == ENG_REDIS_OK) {
        s_state(out, &st, day);
    }
    return s_status(rc);
}

static int s_adjust(eng_store_t *self, const char *account, int64_t delta_pd, bool absolute,
                    int64_t *balance_pd, char *err, size_t errlen)
{
    return s_status(
        eng_redis_adjust(s_redis(self), account, delta_pd, absolute, balance_pd, err, errlen));
}

typedef struct {
    eng_store_account_fn fn;
    void *arg;
} s_accounts_ctx_t;

static bool s_account(void *arg, const char *name, size_t len, int64_t balance_pd,
                      int64_t reserved_pd, int64_t spent_pd)
{
    const s_accounts_ctx_t *ctx = arg;
    eng_store_account_t a = {
        .balance_pd = balance_pd, .reserved_pd = reserved_pd, .spent_pd = spent_pd};
    if (len >= sizeof a.name) {
        return true; /* not an account the key file can name */
    }
    memcpy(a.name, name, len);
    a.name[len] = '\0';
    return ctx->fn(ctx->arg, &a);
}

static int s_accounts(eng_store_t *self, eng_store_account_fn fn, void *arg, char *err,
                      size_t errlen)
{
    s_accounts_ctx_t ctx = {fn, arg};
    return s_status(eng_redis_accounts(s_redis(self), s_account, &ctx, err, errlen));
}

/* Redis applies each script when it answers; what survives a crash of
 * Redis itself is its persistence's business (appendonly, appendfsync). */
static int s_sync(eng_store_t *self, int timeout_ms, char *err, size_t errlen)
{
    (void)self;
    (void)timeout_ms;
    (void)err;
    (void)errlen;
    return HPP_OK;
}

static void s_destroy(eng_store_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    s_store_t *self = (s_store_t *)*self_p;
    eng_redis_destroy(&self->redis);
    free(self);
    *self_p = NULL;
}

static const eng_store_ops_t S_OPS = {
    .name = "redis",
    .reserve = s_reserve,
    .settle = s_settle,
    .release = s_release,
    .expire = s_expire,
    .read = s_read,
    .adjust = s_adjust,
    .accounts = s_accounts,
    .sync = s_sync,
    .destroy = s_destroy,
};

eng_store_t *eng_store_redis_open(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                  size_t errlen)
{
    s_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "--ledger '%.64s': out of memory", spec);
        return NULL;
    }
    self->base.ops = &S_OPS;
    self->redis = eng_redis_new(spec, cfg ? cfg->secret_file : NULL, err, errlen);
    if (!self->redis) {
        free(self);
        return NULL;
    }
    if (cfg && cfg->now_ms > 0 &&
        eng_redis_expire(self->redis, cfg->now_ms, NULL, err, errlen) != ENG_REDIS_OK) {
        eng_store_t *base = &self->base;
        s_destroy(&base);
        return NULL;
    }
    return &self->base;
}
