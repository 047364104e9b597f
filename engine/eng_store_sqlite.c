/* eng_store_sqlite.c - the embedded store: state in memory, SQLite on disk.
 *
 * Memory is the truth while the engine runs; the database is its copy,
 * brought up to date by a writer thread in batches (one transaction every
 * S_BATCH_MS while something changed, at once when `sync` waits).
 *
 * What synchronizes what:
 *   - `mu` guards every table in memory: accounts, keys, reservations and
 *     the queue of reservation changes. It is held for a few hash lookups
 *     and additions (reserve, settle, release, expire, read, adjust) and by
 *     the writer only to copy what changed; never across a disk write or
 *     an allocation. So reserve, the decision path, waits on no disk.
 *   - `mu` also guards `changes`/`committed`; `cv_work` wakes the writer,
 *     `cv_done` wakes the threads waiting in `sync` for a commit.
 *   - The SQLite connection belongs to the writer thread once the store is
 *     open (the loading at open happens before the thread starts).
 *
 * Capacity is fixed at open, so nothing allocates after it: S_MAX_KEYS
 * keys, S_MAX_ACCOUNTS accounts, S_MAX_RESV reservations in flight and
 * S_QUEUE reservation changes between two commits. Past any of them a
 * reservation is refused `ledger_unavailable` (says which), never grown.
 *
 * What a crash (kill -9, a power loss) can lose, exactly:
 *   - nothing that `sync` returned for: a settle acknowledged by a report
 *     with `ack` and every top-up or set_balance (the engine syncs before
 *     answering them); commits are fsynced (synchronous=FULL, WAL);
 *   - the changes of the last uncommitted batch (at most S_BATCH_MS old,
 *     plus the commit in progress): reservations made then (a report for
 *     their decisions after the restart finds nothing to settle: the call
 *     goes uncharged), releases (their reservations come back and expire
 *     after the hold), the day's request counts of those decisions, and
 *     settles of reports sent without `ack` (their reservations come back
 *     and expire, uncharged).
 * A crash never charges twice, never loses a settled charge that was
 * acknowledged, and leaves the database at a consistent state (every batch
 * is one transaction copied from memory under `mu`).
 */
#define _GNU_SOURCE
#include "eng_store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_KEYS 65536      /* keys the store can hold */
#define S_MAX_ACCOUNTS 65536  /* accounts */
#define S_MAX_RESV (1u << 20) /* reservations in flight */
#define S_QUEUE (1u << 18)    /* reservation changes between two commits */
#define S_BATCH_MS 10         /* a commit at most this often while something changes */
#define S_NAME 72             /* bytes of a name with its NUL */
#define S_NIL UINT32_MAX      /* no index */
#define S_SCHEMA 1            /* the database's schema version (user_version) */

typedef struct {
    char name[S_NAME];
    int64_t balance_pd, reserved_pd, spent_pd;
    bool dirty; /* changed since the last commit: in dirty_accts */
} s_acct_t;

typedef struct {
    char hash[S_NAME];
    uint32_t acct; /* index of its account (the latest the key file gave) */
    int64_t spent_pd, reserved_pd, requests, prompt_tokens, completion_tokens;
    int64_t day, day_spent_pd, day_reserved_pd, day_requests, day_free_requests;
    bool dirty;
} s_key_t;

/* A reservation; entries never move (the hash table holds their index), so
 * they also form a list in the order they were made (= of expiry, the hold
 * being one for all). */
typedef struct {
    uint64_t decision;
    int64_t amount_pd, day, expires_ms;
    uint32_t key;        /* index of the key */
    uint32_t acct;       /* index of the account charged */
    uint32_t prev, next; /* the expiry list; next is the free list when unused */
    bool free_model;
} s_resv_t;

/* A change of the reservations table, queued for the writer. */
typedef struct {
    uint64_t decision;
    int64_t amount_pd, day, expires_ms;
    uint32_t key, acct;
    bool insert; /* else delete */
    bool free_model;
} s_change_t;

typedef struct {
    eng_store_t base;
    char *path;
    sqlite3 *db;

    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_t writer;
    bool writer_started, stopping;

    s_acct_t *accts;
    uint32_t naccts;
    uint32_t *acct_slots; /* open addressing, 2 x S_MAX_ACCOUNTS, S_NIL = empty */
    s_key_t *keys;
    uint32_t nkeys;
    uint32_t *key_slots;
    s_resv_t *resv;
    uint32_t resv_free, resv_head, resv_tail, nresv;
    uint32_t resv_used;   /* entries ever taken: past it, never touched */
    uint32_t *resv_slots; /* 2 x S_MAX_RESV */

    uint32_t *dirty_accts, ndirty_accts;
    uint32_t *dirty_keys, ndirty_keys;
    s_change_t *queue;
    uint32_t nqueue;

    uint64_t changes;   /* mutations counted, ever */
    uint64_t committed; /* `changes` as of the last commit */
    bool failed;        /* the last commit failed (disk full...): sync reports it */
    char fail_msg[160];
    bool urgent;      /* a sync waits: commit now */
    bool writer_idle; /* the writer sleeps until a change: the first one wakes it */

    /* The writer's copies (its own, filled under mu, written without). */
    s_acct_t *w_accts;
    s_key_t *w_keys;
    s_change_t *w_queue;
} s_store_t;

/* Hashing ------------------------------------------------------------------ */

static uint64_t s_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static uint64_t s_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The account named `name`; created when absent and `create`. S_NIL when
 * absent (or the table is full). */
static uint32_t s_acct(s_store_t *st, const char *name, bool create)
{
    uint32_t mask = 2 * S_MAX_ACCOUNTS - 1;
    for (uint32_t i = (uint32_t)s_hash_str(name) & mask;; i = (i + 1) & mask) {
        uint32_t a = st->acct_slots[i];
        if (a == S_NIL) {
            if (!create || st->naccts == S_MAX_ACCOUNTS) {
                return S_NIL;
            }
            a = st->naccts++;
            memset(&st->accts[a], 0, sizeof st->accts[a]);
            snprintf(st->accts[a].name, S_NAME, "%s", name);
            st->acct_slots[i] = a;
            return a;
        }
        if (strcmp(st->accts[a].name, name) == 0) {
            return a;
        }
    }
}

static uint32_t s_key(s_store_t *st, const char *hash, bool create)
{
    uint32_t mask = 2 * S_MAX_KEYS - 1;
    for (uint32_t i = (uint32_t)s_hash_str(hash) & mask;; i = (i + 1) & mask) {
        uint32_t k = st->key_slots[i];
        if (k == S_NIL) {
            if (!create || st->nkeys == S_MAX_KEYS) {
                return S_NIL;
            }
            k = st->nkeys++;
            memset(&st->keys[k], 0, sizeof st->keys[k]);
            snprintf(st->keys[k].hash, S_NAME, "%s", hash);
            st->keys[k].acct = S_NIL;
            st->key_slots[i] = k;
            return k;
        }
        if (strcmp(st->keys[k].hash, hash) == 0) {
            return k;
        }
    }
}

/* Counts a change (under mu); the first after a commit wakes the writer,
 * which then gathers a batch for S_BATCH_MS. One signal per batch. */
static void s_changed(s_store_t *st)
{
    st->changes++;
    if (st->writer_idle) {
        st->writer_idle = false;
        pthread_cond_signal(&st->cv_work);
    }
}

static void s_dirty_acct(s_store_t *st, uint32_t a)
{
    if (!st->accts[a].dirty) {
        st->accts[a].dirty = true;
        st->dirty_accts[st->ndirty_accts++] = a;
    }
    s_changed(st);
}

static void s_dirty_key(s_store_t *st, uint32_t k)
{
    if (!st->keys[k].dirty) {
        st->keys[k].dirty = true;
        st->dirty_keys[st->ndirty_keys++] = k;
    }
    s_changed(st);
}

/* Reservations: hash table of indexes into `resv`, deleted by backward
 * shift (no tombstones), entries in a list by expiry (the order they were
 * made in, the hold being one for all; s_resv_add walks back otherwise). */

static uint32_t *s_resv_slot(s_store_t *st, uint64_t decision)
{
    uint32_t mask = 2 * S_MAX_RESV - 1;
    for (uint32_t i = (uint32_t)s_hash_u64(decision) & mask;; i = (i + 1) & mask) {
        uint32_t r = st->resv_slots[i];
        if (r == S_NIL || st->resv[r].decision == decision) {
            return &st->resv_slots[i];
        }
    }
}

static void s_resv_unslot(s_store_t *st, uint32_t *slot)
{
    uint32_t mask = 2 * S_MAX_RESV - 1;
    uint32_t i = (uint32_t)(slot - st->resv_slots);
    uint32_t j = i;
    st->resv_slots[i] = S_NIL;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t r = st->resv_slots[j];
        if (r == S_NIL) {
            return;
        }
        uint32_t home = (uint32_t)s_hash_u64(st->resv[r].decision) & mask;
        /* Move r back to the hole when its home is not in (i, j]. */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            st->resv_slots[i] = r;
            st->resv_slots[j] = S_NIL;
            i = j;
        }
    }
}

static bool s_resv_room(const s_store_t *st)
{
    return st->resv_free != S_NIL || st->resv_used < S_MAX_RESV;
}

static uint32_t s_resv_add(s_store_t *st, uint32_t *slot, const s_resv_t *in)
{
    uint32_t r = st->resv_free;
    if (r != S_NIL) {
        st->resv_free = st->resv[r].next;
    } else {
        r = st->resv_used++;
    }
    st->resv[r] = *in;
    /* After the last entry that expires no later: the tail, unless the
     * hold changed across a restart (entries loaded with an older hold). */
    uint32_t after = st->resv_tail;
    while (after != S_NIL && st->resv[after].expires_ms > in->expires_ms) {
        after = st->resv[after].prev;
    }
    uint32_t before = after == S_NIL ? st->resv_head : st->resv[after].next;
    st->resv[r].prev = after;
    st->resv[r].next = before;
    if (after != S_NIL) {
        st->resv[after].next = r;
    } else {
        st->resv_head = r;
    }
    if (before != S_NIL) {
        st->resv[before].prev = r;
    } else {
        st->resv_tail = r;
    }
    *slot = r;
    st->nresv++;
    return r;
}

static void s_resv_drop(s_store_t *st, uint32_t *slot)
{
    uint32_t r = *slot;
    s_resv_t *e = &st->resv[r];
    if (e->prev != S_NIL) {
        st->resv[e->prev].next = e->next;
    } else {
        st->resv_head = e->next;
    }
    if (e->next != S_NIL) {
        st->resv[e->next].prev = e->prev;
    } else {
        st->resv_tail = e->prev;
    }
    s_resv_unslot(st, slot);
    e->next = st->resv_free;
    st->resv_free = r;
    st->nresv--;
}

static void s_queue(s_store_t *st, const s_resv_t *e, bool insert)
{
    s_change_t *c = &st->queue[st->nqueue++];
    c->decision = e->decision;
    c->amount_pd = e->amount_pd;
    c->day = e->day;
    c->expires_ms = e->expires_ms;
    c->key = e->key;
    c->acct = e->acct;
    c->insert = insert;
    c->free_model = e->free_model;
    s_changed(st);
}

/* The key's day counters moved to `day` when it is a later one. */
static void s_roll(s_store_t *st, uint32_t k, int64_t day)
{
    s_key_t *key = &st->keys[k];
    if (day > key->day) {
        key->day = day;
        key->day_spent_pd = key->day_reserved_pd = 0;
        key->day_requests = key->day_free_requests = 0;
        s_dirty_key(st, k);
    }
}

static void s_state(const s_store_t *st, uint32_t k, uint32_t a, int64_t day,
                    eng_store_state_t *out)
{
    memset(out, 0, sizeof *out);
    out->day = day;
    if (a != S_NIL) {
        out->balance_pd = st->accts[a].balance_pd;
        out->acct_reserved_pd = st->accts[a].reserved_pd;
    }
    if (k == S_NIL) {
        return;
    }
    const s_key_t *key = &st->keys[k];
    out->spent_pd = key->spent_pd;
    out->reserved_pd = key->reserved_pd;
    out->requests = key->requests;
    out->prompt_tokens = key->prompt_tokens;
    out->completion_tokens = key->completion_tokens;
    if (key->day == day) {
        out->day_spent_pd = key->day_spent_pd;
        out->day_reserved_pd = key->day_reserved_pd;
        out->day_requests = key->day_requests;
        out->day_free_requests = key->day_free_requests;
    }
}

/* The checks, in the ledger's order (eng_ledger.h); HPP_OK when all pass. */
static hpp_status_t s_check(const eng_store_key_t *key, const eng_store_state_t *s, bool free_model)
{
    if (!free_model) {
        if (s->balance_pd - s->acct_reserved_pd <= 0) {
            return HPP_E_INSUFFICIENT_BALANCE;
        }
        if (key->limit_pd != ENG_STORE_NONE && key->limit_pd - s->spent_pd - s->reserved_pd <= 0) {
            return HPP_E_KEY_LIMIT_REACHED;
        }
        if (key->daily_pd != ENG_STORE_NONE &&
            key->daily_pd - s->day_spent_pd - s->day_reserved_pd <= 0) {
            return HPP_E_DAILY_LIMIT_REACHED;
        }
    }
    if (key->daily_requests != ENG_STORE_NONE && s->day_requests >= key->daily_requests) {
        return HPP_E_DAILY_LIMIT_REACHED;
    }
    if (free_model) {
        int64_t lim =
            s->balance_pd > 0 ? key->free_daily_requests_funded : key->free_daily_requests;
        if (lim != ENG_STORE_NONE && s->day_free_requests >= lim) {
            return HPP_E_DAILY_LIMIT_REACHED;
        }
    }
    return HPP_OK;
}

static int s_full(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "ledger store full: %s", what);
    return HPP_E_LEDGER_UNAVAILABLE;
}

/* Ops ---------------------------------------------------------------------- */

static int s_reserve(eng_store_t *base, const eng_store_key_t *key, const eng_store_resv_t *r,
                     eng_store_state_t *state, char *err, size_t errlen)
{
    s_store_t *st = (s_store_t *)base;
    int rc = HPP_OK;
    eng_store_state_t local;
    eng_store_state_t *s = state ? state : &local;
    pthread_mutex_lock(&st->mu);
    uint32_t a = s_acct(st, key->account, true);
    uint32_t k = s_key(st, key->hash, true);
    if (a == S_NIL || k == S_NIL) {
        rc = s_full(err, errlen, a == S_NIL ? "too many accounts" : "too many keys");
        goto out;
    }
    if (st->keys[k].acct != a) {
        st->keys[k].acct = a; /* new, or moved to another account by the key file */
        s_dirty_key(st, k);
    }
    s_roll(st, k, r->day);
    s_state(st, k, a, r->day, s);
    rc = s_check(key, s, r->free_model);
    if (rc != HPP_OK) {
        goto out;
    }
    if (!s_resv_room(st) || st->nqueue == S_QUEUE) {
        rc = s_full(err, errlen,
                    !s_resv_room(st) ? "too many reservations in flight"
                                     : "the writer is behind (disk slow or full)");
        goto out;
    }
    uint32_t *slot = s_resv_slot(st, r->decision);
    if (*slot != S_NIL) {
        snprintf(err, errlen, "decision %llu reserved twice", (unsigned long long)r->decision);
        rc = HPP_E_INTERNAL;
        goto out;
    }
    s_resv_t e = {.decision = r->decision,
                  .amount_pd = r->amount_pd,
                  .day = r->day,
                  .expires_ms = r->expires_ms,
                  .key = k,
                  .acct = a,
                  .free_model = r->free_model};
    s_resv_add(st, slot, &e);
    s_queue(st, &e, true);
    s_key_t *kk = &st->keys[k];
    kk->reserved_pd += r->amount_pd;
    kk->day_reserved_pd += r->amount_pd;
    kk->day_requests++;
    kk->day_free_requests += r->free_model;
    st->accts[a].reserved_pd += r->amount_pd;
    s_dirty_key(st, k);
    s_state(st, k, a, r->day, s);
out:
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Ends the reservation in `slot`: charges cost_pd (settle) or nothing
 * (release, cost_pd < 0). Under mu. */
static void s_end(s_store_t *st, uint32_t *slot, int64_t cost_pd, int64_t prompt,
                  int64_t completion)
{
    s_resv_t e = st->resv[*slot];
    s_key_t *k = &st->keys[e.key];
    s_acct_t *a = &st->accts[e.acct];
    k->reserved_pd -= e.amount_pd;
    a->reserved_pd -= e.amount_pd;
    if (k->day == e.day) {
        k->day_reserved_pd -= e.amount_pd;
    }
    if (cost_pd >= 0) {
        k->spent_pd += cost_pd;
        k->requests++;
        k->prompt_tokens += prompt;
        k->completion_tokens += completion;
        if (k->day == e.day) {
            k->day_spent_pd += cost_pd;
        }
        a->balance_pd -= cost_pd;
        a->spent_pd += cost_pd;
    }
    s_dirty_key(st, e.key);
    s_dirty_acct(st, e.acct);
    s_queue(st, &e, false);
    s_resv_drop(st, slot);
}

/* Waits (not on the decision path) for room in the change queue. */
static void s_wait_room(s_store_t *st)
{
    while (st->nqueue == S_QUEUE && !st->stopping) {
        st->urgent = true;
        pthread_cond_signal(&st->cv_work);
        pthread_cond_wait(&st->cv_done, &st->mu);
    }
}

static int s_settle(eng_store_t *base, const eng_store_settle_t *s, bool *settled, char *err,
                    size_t errlen)
{
    (void)err;
    (void)errlen;
    s_store_t *st = (s_store_t *)base;
    pthread_mutex_lock(&st->mu);
    s_wait_room(st);
    uint32_t *slot = s_resv_slot(st, s->decision);
    bool found = *slot != S_NIL && st->nqueue < S_QUEUE;
    if (found) {
        int64_t cost = s->cost_pd < 0 ? st->resv[*slot].amount_pd : s->cost_pd;
        s_end(st, slot, cost, s->prompt_tokens, s->completion_tokens);
    }
    pthread_mutex_unlock(&st->mu);
    if (settled) {
        *settled = found;
    }
    return HPP_OK;
}

static int s_release(eng_store_t *base, uint64_t decision, bool *released, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    s_store_t *st = (s_store_t *)base;
    pthread_mutex_lock(&st->mu);
    s_wait_room(st);
    uint32_t *slot = s_resv_slot(st, decision);
    bool found = *slot != S_NIL && st->nqueue < S_QUEUE;
    if (found) {
        s_end(st, slot, -1, 0, 0);
    }
    pthread_mutex_unlock(&st->mu);
    if (released) {
        *released = found;
    }
    return HPP_OK;
}

static int s_expire(eng_store_t *base, int64_t now_ms, uint64_t *n, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    s_store_t *st = (s_store_t *)base;
    uint64_t count = 0;
    pthread_mutex_lock(&st->mu);
    /* A bounded number per call, so the lock is never held long; the
     * ledger calls again soon when this was the bound. */
    while (count < 4096 && st->resv_head != S_NIL && st->resv[st->resv_head].expires_ms <= now_ms &&
           st->nqueue < S_QUEUE) {
        uint32_t *slot = s_resv_slot(st, st->resv[st->resv_head].decision);
        s_end(st, slot, -1, 0, 0);
        count++;
    }
    pthread_mutex_unlock(&st->mu);
    if (n) {
        *n = count;
    }
    return HPP_OK;
}

static int s_read(eng_store_t *base, const eng_store_key_t *key, int64_t day,
                  eng_store_state_t *out, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    s_store_t *st = (s_store_t *)base;
    pthread_mutex_lock(&st->mu);
    s_state(st, s_key(st, key->hash, false), s_acct(st, key->account, false), day, out);
    pthread_mutex_unlock(&st->mu);
    return HPP_OK;
}

static int s_sync(eng_store_t *base, int timeout_ms, char *err, size_t errlen);

static int s_adjust(eng_store_t *base, const char *account, int64_t delta_pd, bool absolute,
                    int64_t *balance_pd, char *err, size_t errlen)
{
    s_store_t *st = (s_store_t *)base;
    pthread_mutex_lock(&st->mu);
    uint32_t a = s_acct(st, account, true);
    if (a == S_NIL) {
        pthread_mutex_unlock(&st->mu);
        return s_full(err, errlen, "too many accounts");
    }
    int64_t b = st->accts[a].balance_pd;
    if (absolute) {
        b = delta_pd;
    } else if (__builtin_add_overflow(b, delta_pd, &b)) {
        pthread_mutex_unlock(&st->mu);
        snprintf(err, errlen, "account '%s': the balance would overflow", account);
        return HPP_E_BAD_REQUEST;
    }
    st->accts[a].balance_pd = b;
    s_dirty_acct(st, a);
    pthread_mutex_unlock(&st->mu);
    if (balance_pd) {
        *balance_pd = b;
    }
    return s_sync(base, 5000, err, errlen);
}

static int s_accounts(eng_store_t *base, eng_store_account_fn fn, void *arg, char *err,
                      size_t errlen)
{
    (void)err;
    (void)errlen;
    s_store_t *st = (s_store_t *)base;
    pthread_mutex_lock(&st->mu);
    for (uint32_t a = 0; a < st->naccts; a++) {
        eng_store_account_t out;
        memcpy(out.name, st->accts[a].name, sizeof out.name);
        out.balance_pd = st->accts[a].balance_pd;
        out.reserved_pd = st->accts[a].reserved_pd;
        out.spent_pd = st->accts[a].spent_pd;
        if (!fn(arg, &out)) {
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return HPP_OK;
}

static int s_sync(eng_store_t *base, int timeout_ms, char *err, size_t errlen)
{
    s_store_t *st = (s_store_t *)base;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = HPP_OK;
    pthread_mutex_lock(&st->mu);
    uint64_t target = st->changes;
    while (st->committed < target && !st->failed) {
        st->urgent = true;
        pthread_cond_signal(&st->cv_work);
        if (pthread_cond_timedwait(&st->cv_done, &st->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    if (st->committed < target) {
        snprintf(err, errlen, "ledger store: %s",
                 st->failed ? st->fail_msg : "the write to disk did not complete in time");
        rc = HPP_E_LEDGER_UNAVAILABLE;
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* The database ------------------------------------------------------------ */

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS accounts(name TEXT PRIMARY KEY, balance_pd INTEGER NOT NULL,"
    " spent_pd INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS keys(hash TEXT PRIMARY KEY, account TEXT NOT NULL,"
    " spent_pd INTEGER NOT NULL, requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
    " completion_tokens INTEGER NOT NULL, day INTEGER NOT NULL, day_spent_pd INTEGER NOT NULL,"
    " day_requests INTEGER NOT NULL, day_free_requests INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS reservations(decision INTEGER PRIMARY KEY, key TEXT NOT NULL,"
    " account TEXT NOT NULL, amount_pd INTEGER NOT NULL, day INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL, free INTEGER NOT NULL);";

static int s_exec(s_store_t *st, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", st->path, msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Decision ids are stored as SQLite's signed integers, bit for bit. */
static sqlite3_int64 s_dec_to_db(uint64_t d)
{
    sqlite3_int64 v;
    memcpy(&v, &d, sizeof v);
    return v;
}

static uint64_t s_dec_from_db(sqlite3_int64 v)
{
    uint64_t d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* Loads every table into memory (before the writer starts). */
static int s_load(s_store_t *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT name, balance_pd, spent_pd FROM accounts";
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
        goto fail;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        uint32_t a = name && strlen(name) < S_NAME ? s_acct(st, name, true) : S_NIL;
        if (a == S_NIL) {
            snprintf(err, errlen, "%s: account '%.40s': bad name or too many accounts", st->path,
                     name ? name : "");
            sqlite3_finalize(q);
            return -1;
        }
        st->accts[a].balance_pd = sqlite3_column_int64(q, 1);
        st->accts[a].spent_pd = sqlite3_column_int64(q, 2);
    }
    sqlite3_finalize(q);
    sql = "SELECT hash, account, spent_pd, requests, prompt_tokens, completion_tokens, day,"
          " day_spent_pd, day_requests, day_free_requests FROM keys";
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
        goto fail;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *hash = (const char *)sqlite3_column_text(q, 0);
        const char *acct = (const char *)sqlite3_column_text(q, 1);
        uint32_t k = hash && strlen(hash) < S_NAME ? s_key(st, hash, true) : S_NIL;
        uint32_t a = acct && strlen(acct) < S_NAME ? s_acct(st, acct, true) : S_NIL;
        if (k == S_NIL || a == S_NIL) {
            snprintf(err, errlen, "%s: key '%.40s': bad row or too many keys", st->path,
                     hash ? hash : "");
            sqlite3_finalize(q);
            return -1;
        }
        s_key_t *key = &st->keys[k];
        key->acct = a;
        key->spent_pd = sqlite3_column_int64(q, 2);
        key->requests = sqlite3_column_int64(q, 3);
        key->prompt_tokens = sqlite3_column_int64(q, 4);
        key->completion_tokens = sqlite3_column_int64(q, 5);
        key->day = sqlite3_column_int64(q, 6);
        key->day_spent_pd = sqlite3_column_int64(q, 7);
        key->day_requests = sqlite3_column_int64(q, 8);
        key->day_free_requests = sqlite3_column_int64(q, 9);
    }
    sqlite3_finalize(q);
    sql = "SELECT decision, key, account, amount_pd, day, expires_ms, free FROM reservations"
          " ORDER BY expires_ms";
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
        goto fail;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *hash = (const char *)sqlite3_column_text(q, 1);
        const char *acct = (const char *)sqlite3_column_text(q, 2);
        uint32_t k = hash && strlen(hash) < S_NAME ? s_key(st, hash, true) : S_NIL;
        uint32_t a = acct && strlen(acct) < S_NAME ? s_acct(st, acct, true) : S_NIL;
        uint64_t d = s_dec_from_db(sqlite3_column_int64(q, 0));
        uint32_t *slot = s_resv_slot(st, d);
        if (k == S_NIL || a == S_NIL || !s_resv_room(st) || *slot != S_NIL) {
            snprintf(err, errlen, "%s: reservation %llu: bad row or too many", st->path,
                     (unsigned long long)d);
            sqlite3_finalize(q);
            return -1;
        }
        s_resv_t e = {.decision = d,
                      .amount_pd = sqlite3_column_int64(q, 3),
                      .day = sqlite3_column_int64(q, 4),
                      .expires_ms = sqlite3_column_int64(q, 5),
                      .key = k,
                      .acct = a,
                      .free_model = sqlite3_column_int(q, 6) != 0};
        s_resv_add(st, slot, &e);
        st->keys[k].reserved_pd += e.amount_pd;
        if (st->keys[k].day == e.day) {
            st->keys[k].day_reserved_pd += e.amount_pd;
        }
        st->accts[a].reserved_pd += e.amount_pd;
    }
    sqlite3_finalize(q);
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
    return -1;
}

/* One batch: what changed, copied under mu, written in one transaction. */
static int s_commit(s_store_t *st, uint32_t na, uint32_t nk, uint32_t nq)
{
    static const char *const sqls[] = {
        "INSERT INTO accounts(name, balance_pd, spent_pd) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(name) DO UPDATE SET balance_pd = ?2, spent_pd = ?3",
        "INSERT INTO keys(hash, account, spent_pd, requests, prompt_tokens, completion_tokens,"
        " day, day_spent_pd, day_requests, day_free_requests)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(hash) DO UPDATE SET"
        " account = ?2, spent_pd = ?3, requests = ?4, prompt_tokens = ?5, completion_tokens = ?6,"
        " day = ?7, day_spent_pd = ?8, day_requests = ?9, day_free_requests = ?10",
        "INSERT OR REPLACE INTO reservations(decision, key, account, amount_pd, day, expires_ms,"
        " free) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        "DELETE FROM reservations WHERE decision = ?1",
    };
    sqlite3_stmt *q[4] = {0};
    int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int i = 0; rc == SQLITE_OK && i < 4; i++) {
        rc = sqlite3_prepare_v2(st->db, sqls[i], -1, &q[i], NULL);
    }
    for (uint32_t i = 0; rc == SQLITE_OK && i < na; i++) {
        const s_acct_t *a = &st->w_accts[i];
        sqlite3_bind_text(q[0], 1, a->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q[0], 2, a->balance_pd);
        sqlite3_bind_int64(q[0], 3, a->spent_pd);
        rc = sqlite3_step(q[0]) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(q[0]);
    }
    for (uint32_t i = 0; rc == SQLITE_OK && i < nk; i++) {
        const s_key_t *k = &st->w_keys[i];
        sqlite3_bind_text(q[1], 1, k->hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(q[1], 2, st->accts[k->acct].name, -1, SQLITE_STATIC);
        const int64_t v[] = {k->spent_pd, k->requests,     k->prompt_tokens, k->completion_tokens,
                             k->day,      k->day_spent_pd, k->day_requests,  k->day_free_requests};
        for (int j = 0; j < 8; j++) {
            sqlite3_bind_int64(q[1], 3 + j, v[j]);
        }
        rc = sqlite3_step(q[1]) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(q[1]);
    }
    for (uint32_t i = 0; rc == SQLITE_OK && i < nq; i++) {
        const s_change_t *c = &st->w_queue[i];
        sqlite3_stmt *s = c->insert ? q[2] : q[3];
        sqlite3_bind_int64(s, 1, s_dec_to_db(c->decision));
        if (c->insert) {
            sqlite3_bind_text(s, 2, st->keys[c->key].hash, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 3, st->accts[c->acct].name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 4, c->amount_pd);
            sqlite3_bind_int64(s, 5, c->day);
            sqlite3_bind_int64(s, 6, c->expires_ms);
            sqlite3_bind_int(s, 7, c->free_model);
        }
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(s);
    }
    for (int i = 0; i < 4; i++) {
        sqlite3_finalize(q[i]);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        pthread_mutex_lock(&st->mu);
        snprintf(st->fail_msg, sizeof st->fail_msg, "%s: %s", st->path, sqlite3_errmsg(st->db));
        pthread_mutex_unlock(&st->mu);
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* Copies what changed into the writer's buffers (under mu). Names are not
 * copied: an account's or key's name is written once, when its entry is
 * made under mu, and never changes or moves, so the writer reads it
 * without the lock. */
static void s_snapshot(s_store_t *st, uint32_t *na, uint32_t *nk, uint32_t *nq)
{
    uint32_t a = st->ndirty_accts, k = st->ndirty_keys, q = st->nqueue;
    for (uint32_t i = 0; i < a; i++) {
        st->w_accts[i] = st->accts[st->dirty_accts[i]];
        st->accts[st->dirty_accts[i]].dirty = false;
    }
    for (uint32_t i = 0; i < k; i++) {
        st->w_keys[i] = st->keys[st->dirty_keys[i]];
        st->keys[st->dirty_keys[i]].dirty = false;
    }
    memcpy(st->w_queue, st->queue, q * sizeof *st->queue);
    st->ndirty_accts = st->ndirty_keys = st->nqueue = 0;
    *na = a;
    *nk = k;
    *nq = q;
}

static void *s_writer_main(void *arg)
{
    s_store_t *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->stopping && st->changes == st->committed && !st->urgent) {
            st->writer_idle = true;
            pthread_cond_wait(&st->cv_work, &st->mu);
        }
        st->writer_idle = false;
        if (!st->urgent && !st->stopping) {
            /* Let a batch gather, unless someone waits for it. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += S_BATCH_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!st->urgent && !st->stopping &&
                   pthread_cond_timedwait(&st->cv_work, &st->mu, &until) != ETIMEDOUT) {
            }
        }
        st->urgent = false;
        uint64_t target = st->changes;
        uint32_t na, nk, nq;
        s_snapshot(st, &na, &nk, &nq);
        bool stopping = st->stopping;
        pthread_mutex_unlock(&st->mu);
        int rc = (na | nk | nq) ? s_commit(st, na, nk, nq) : 0;
        pthread_mutex_lock(&st->mu);
        if (rc == 0) {
            st->committed = target;
            st->failed = false;
        } else {
            /* The rows are marked again so the next batch retries them. */
            st->failed = true;
            for (uint32_t i = 0; i < na; i++) {
                uint32_t ai = s_acct(st, st->w_accts[i].name, false);
                if (ai != S_NIL && !st->accts[ai].dirty) {
                    st->accts[ai].dirty = true;
                    st->dirty_accts[st->ndirty_accts++] = ai;
                }
            }
            for (uint32_t i = 0; i < nk; i++) {
                uint32_t ki = s_key(st, st->w_keys[i].hash, false);
                if (ki != S_NIL && !st->keys[ki].dirty) {
                    st->keys[ki].dirty = true;
                    st->dirty_keys[st->ndirty_keys++] = ki;
                }
            }
            /* Reservation changes are put back in front of the newer ones. */
            uint32_t room = S_QUEUE - st->nqueue;
            uint32_t back = nq < room ? nq : room;
            memmove(st->queue + back, st->queue, st->nqueue * sizeof *st->queue);
            memcpy(st->queue, st->w_queue, back * sizeof *st->queue);
            st->nqueue += back;
        }
        pthread_cond_broadcast(&st->cv_done);
        if (stopping && st->changes == st->committed) {
            break;
        }
        if (stopping && rc != 0) {
            break; /* the disk refuses: give up at exit */
        }
        if (rc != 0) {
            /* Do not spin on a failing disk. */
            pthread_mutex_unlock(&st->mu);
            usleep(100 * 1000);
            pthread_mutex_lock(&st->mu);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void s_destroy(eng_store_t **self_p)
{
    s_store_t *st = (s_store_t *)*self_p;
    if (!st) {
        return;
    }
    *self_p = NULL;
    if (st->writer_started) {
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        pthread_cond_signal(&st->cv_work);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
    }
    if (st->db) {
        sqlite3_close(st->db);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv_work);
    pthread_cond_destroy(&st->cv_done);
    free(st->accts);
    free(st->acct_slots);
    free(st->keys);
    free(st->key_slots);
    free(st->resv);
    free(st->resv_slots);
    free(st->dirty_accts);
    free(st->dirty_keys);
    free(st->queue);
    free(st->w_accts);
    free(st->w_keys);
    free(st->w_queue);
    free(st->path);
    free(st);
}

static const eng_store_ops_t s_ops = {
    .name = "sqlite",
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

/* The tables, sized once (calloc: pages never used are never touched). */
static bool s_alloc(s_store_t *st)
{
    st->accts = calloc(S_MAX_ACCOUNTS, sizeof *st->accts);
    st->acct_slots = malloc(2 * sizeof(uint32_t) * S_MAX_ACCOUNTS);
    st->keys = calloc(S_MAX_KEYS, sizeof *st->keys);
    st->key_slots = malloc(2 * sizeof(uint32_t) * S_MAX_KEYS);
    st->resv = calloc(S_MAX_RESV, sizeof *st->resv);
    st->resv_slots = malloc(2 * sizeof(uint32_t) * S_MAX_RESV);
    st->dirty_accts = calloc(S_MAX_ACCOUNTS, sizeof *st->dirty_accts);
    st->dirty_keys = calloc(S_MAX_KEYS, sizeof *st->dirty_keys);
    st->queue = calloc(S_QUEUE, sizeof *st->queue);
    st->w_accts = calloc(S_MAX_ACCOUNTS, sizeof *st->w_accts);
    st->w_keys = calloc(S_MAX_KEYS, sizeof *st->w_keys);
    st->w_queue = calloc(S_QUEUE, sizeof *st->w_queue);
    if (!st->accts || !st->acct_slots || !st->keys || !st->key_slots || !st->resv ||
        !st->resv_slots || !st->dirty_accts || !st->dirty_keys || !st->queue || !st->w_accts ||
        !st->w_keys || !st->w_queue) {
        return false;
    }
    memset(st->acct_slots, 0xff, 2 * sizeof(uint32_t) * S_MAX_ACCOUNTS);
    memset(st->key_slots, 0xff, 2 * sizeof(uint32_t) * S_MAX_KEYS);
    memset(st->resv_slots, 0xff, 2 * sizeof(uint32_t) * S_MAX_RESV);
    st->resv_free = S_NIL; /* entries are taken from resv_used up first */
    st->resv_head = st->resv_tail = S_NIL;
    return true;
}

eng_store_t *eng_store_sqlite_open(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                   size_t errlen)
{
    (void)cfg;
    const char *path = spec + strlen("sqlite:");
    if (*path == '\0') {
        snprintf(err, errlen, "--ledger '%s': expected sqlite:PATH", spec);
        return NULL;
    }
    /* The file holds balances: created private (0600), as key files are. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "--ledger %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    close(fd);
    s_store_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "--ledger %s: out of memory", path);
        return NULL;
    }
    st->base.ops = &s_ops;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv_work, NULL);
    pthread_cond_init(&st->cv_done, NULL);
    eng_store_t *base = &st->base;
    st->path = strdup(path);
    if (!st->path || !s_alloc(st)) {
        snprintf(err, errlen, "--ledger %s: out of memory", path);
        s_destroy(&base);
        return NULL;
    }
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "--ledger %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "cannot open");
        s_destroy(&base);
        return NULL;
    }
    sqlite3_busy_timeout(st->db, 5000);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version");
    sqlite3_stmt *q = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        version = sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
    if (version < 0) {
        snprintf(err, errlen, "--ledger %s: not a SQLite database (%s)", path,
                 sqlite3_errmsg(st->db));
        s_destroy(&base);
        return NULL;
    }
    if (version > S_SCHEMA) {
        snprintf(err, errlen, "--ledger %s: schema version %d is newer than this engine's (%d)",
                 path, version, S_SCHEMA);
        s_destroy(&base);
        return NULL;
    }
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", S_SCHEMA);
    if (s_exec(st, "PRAGMA journal_mode = WAL", err, errlen) < 0 ||
        s_exec(st, "PRAGMA synchronous = FULL", err, errlen) < 0 ||
        s_exec(st, s_schema, err, errlen) < 0 || s_exec(st, sql, err, errlen) < 0 ||
        s_load(st, err, errlen) < 0) {
        s_destroy(&base);
        return NULL;
    }
    if (pthread_create(&st->writer, NULL, s_writer_main, st) != 0) {
        snprintf(err, errlen, "--ledger %s: cannot start the writer thread", path);
        s_destroy(&base);
        return NULL;
    }
    st->writer_started = true;
    return base;
}
