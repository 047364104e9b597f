/* eng_store_sqlite.c - the embedded store: state in memory, SQLite on disk.
 *
 * Memory is the truth while the engine runs; the database is its copy,
 * brought up to date by a writer thread in batches (one transaction every
 * S_BATCH_MS while something changed, at once when `sync` waits). Between
 * commits, the changes are in the ring, which is a file mapped in memory
 * (eng_ringfile.h): it outlives the process, and the next open commits
 * what a dead process published and did not commit (s_ring_open).
 *
 * What synchronizes what:
 *   - `mu` guards every table in memory: accounts, keys, reservations. It
 *     is held for a few hash lookups and additions (reserve, settle,
 *     release, expire, read, adjust), never across a disk write, an
 *     allocation or a wait. The writer never takes it: a decision never
 *     waits for the writer, even when the writer is descheduled.
 *   - Every change is handed to the writer through `ring`, a queue with
 *     one producer at a time (whoever holds `mu`) and one consumer (the
 *     writer): each entry is a row as memory has it after the change. The
 *     producer fills entries past `head` and publishes them with one
 *     release store of `head` at the end of each operation, so the writer
 *     only ever sees whole operations; the writer commits [tail, head) and
 *     frees the room with one release store of `tail`. The writer folds
 *     the rows of one batch into its own copies (one row per key or
 *     account, however many times it changed), so a batch writes each row
 *     once.
 *   - `w_mu` (never taken by reserve, except to wake an idle writer, once
 *     per batch) guards the writer's sleep: `cv_work` wakes it, `cv_done`
 *     wakes the threads waiting in `sync` for a commit, `urgent`,
 *     `stopping`, `failed`.
 *   - The SQLite connection belongs to the writer thread once the store is
 *     open (the loading at open happens before the thread starts). It
 *     holds the file locked from open to close (s_claim): one engine per
 *     state file.
 *
 * Accounts and keys are rows. Reservations and their ends are a journal:
 * each batch adds one row holding them as records in two blobs (a row per
 * reservation cost the writer ten times the CPU), each record written as
 * what changed from the one before (eng_journal.h: about 3 bytes a
 * decision, against 56 for schema 2's fixed records: the writer's CPU is
 * what the ledger adds to the decisions' p99), replayed in order at open;
 * rows whose reservations have all ended are deleted as a prefix once the
 * expiry pass is past them.
 *
 * Capacity is fixed at open, so nothing allocates after it: S_MAX_KEYS
 * keys, S_MAX_ACCOUNTS accounts, S_MAX_RESV reservations in flight and
 * S_RING changes not committed yet. Past any of them a reservation is
 * refused `ledger_unavailable` (says which), never grown.
 *
 * What a crash (kill -9, a power loss) can lose, exactly:
 *   - nothing that `sync` returned for: a settle acknowledged by a report
 *     with `ack` and every top-up or set_balance (the engine syncs before
 *     answering them: the WAL is fdatasynced before a sync returns);
 *   - kill -9 (any death of the process): nothing. What was published is
 *     in the ring file, and what was not is an operation that had not
 *     returned.
 *   - A power loss (or a crash of the machine, which empties the tmpfs of
 *     the ring): the changes since the last commit synced (at most
 *     S_BATCH_MS of them plus the commit in progress; each commit is
 *     synced after it once S_SYNC_MS has passed since the last sync). What
 *     such a window holds: reservations made then (a report for their
 *     decisions after the restart finds nothing to settle: the call goes
 *     uncharged), releases (their reservations come back and expire after
 *     the hold), the day's request counts of those decisions, and settles
 *     of reports sent without `ack` (their reservations come back and
 *     expire, uncharged).
 * A crash never charges twice, never loses a settled charge that was
 * acknowledged, and leaves the database at a consistent state (every batch
 * is one transaction of the changes up to a point between two operations).
 */
#define _GNU_SOURCE
#include "eng_store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eng_common.h"
#include "eng_journal.h"
#include "eng_ringfile.h"

#define S_MAX_KEYS 65536      /* keys the store can hold */
#define S_MAX_ACCOUNTS 65536  /* accounts */
#define S_MAX_RESV (1u << 20) /* reservations in flight */
#define S_RING (1u << 18)     /* changes not committed yet (a power of two) */
#define S_EXPIRE_CHUNK 64     /* reservations expired per hold of mu */
/* A commit at most this often while something changes. Every 10 ms the
 * writer's CPU raised the p99 of decisions at 20,000/s to 1.53x-1.69x the
 * engine without a ledger on two cores; once a second, 0.94x-1.40x
 * (bench/RESULTS.md, "Commits once a second, the ring in a mapped file").
 * The ring file keeps a crash of the process from losing the second. */
#define S_BATCH_MS 1000
#define S_EARLY (S_RING / 8)       /* changes not committed that call for a commit at once */
#define S_BOOST_AT (S_RING / 4)    /* changes not committed past which the writer is raised */
#define S_IDLE_BELOW (S_RING / 64) /* ... and below which it goes back to SCHED_IDLE */
#define S_BOOST_AFTER_MS 50        /* how long a sync waits before it raises the writer */
#define S_SYNC_MS 1000             /* the WAL is synced at least this often after a commit */
#define S_NAME 72                  /* bytes of a name with its NUL */
#define S_NIL UINT32_MAX           /* no index */
#define S_RESV_RUN 64              /* consecutive decision ids whose slots are neighbours */
#define S_SCHEMA 4                 /* the database's schema version (user_version) */
#define S_LOG_CHUNK 4096           /* reservation changes per journal row at most */
#define S_PRUNE_MS 1000            /* expired journal rows are deleted this often */
#define S_WALK_MAX 64              /* entries a reservation passes to find its place by expiry */
#define S_CLAIM_MS 1000            /* how long an open waits for the file's last holder to let go */

typedef struct {
    char name[S_NAME];
    int64_t balance_pd, reserved_pd, spent_pd;
} s_acct_t;

typedef struct {
    char hash[S_NAME];
    uint32_t acct; /* index of its account (the latest the key file gave) */
    int64_t spent_pd, reserved_pd, requests, prompt_tokens, completion_tokens;
    int64_t day, day_spent_pd, day_reserved_pd, day_requests, day_free_requests;
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

/* A slot of the reservations' hash table: the entry's index (S_NIL: empty)
 * and its home slot, so that probing and deleting read no entry but the one
 * looked for. */
typedef struct {
    uint32_t idx, home;
} s_rslot_t;

/* A key's row in the database: its persisted counters. */
enum {
    S_KROW_SPENT,
    S_KROW_REQUESTS,
    S_KROW_PROMPT,
    S_KROW_COMPLETION,
    S_KROW_DAY,
    S_KROW_DAY_SPENT,
    S_KROW_DAY_REQUESTS,
    S_KROW_DAY_FREE,
    S_KROW_N
};

/* What a change is. A reservation's entry also carries its key's row (a
 * reservation always changes the key's day counters, its end the key's
 * spend), so a decision is one entry. */
typedef enum {
    S_CH_ACCT = ENG_RING_ACCT,
    S_CH_KEY = ENG_RING_KEY,
    S_CH_RESV_PUT = ENG_RING_RESV_PUT,
    S_CH_RESV_DEL = ENG_RING_RESV_DEL
} s_kind_t;

/* One change for the writer, as memory has it after the change: an entry
 * of the ring file (eng_ringfile.h). */
typedef eng_ring_change_t s_change_t;
_Static_assert(S_KROW_N == ENG_RING_ROW, "a ring entry carries a key's row");

/* The writer's copy of a row, whether the batch changed it, and its rowid
 * in the database (0: not known yet), which the journal names it by. */
typedef struct {
    uint32_t acct;
    bool dirty;
    int64_t rowid;
    int64_t row[S_KROW_N];
} s_wrow_t;

#define S_FRESH_ACCT 0x80000000u

/* The writer's statements (s_sqls). */
enum {
    S_Q_BEGIN,
    S_Q_COMMIT,
    S_Q_ACCT,
    S_Q_KEY,
    S_Q_ACCT_ROWID,
    S_Q_LOG,
    S_Q_PRUNE,
    S_Q_RING,
    S_Q_N
};

typedef struct {
    eng_store_t base;
    char *path;
    sqlite3 *db;
    int version; /* the file's schema when opened: its journal's records until upgraded */

    pthread_mutex_t mu;
    pthread_t writer;
    bool writer_started;

    s_acct_t *accts;
    uint32_t naccts;
    uint32_t *acct_slots; /* open addressing, 2 x S_MAX_ACCOUNTS, S_NIL = empty */
    s_key_t *keys;
    uint32_t nkeys;
    uint32_t *key_slots;
    s_resv_t *resv;
    uint32_t resv_free, resv_head, resv_tail, nresv;
    uint32_t resv_used;    /* entries ever taken: past it, never touched */
    s_rslot_t *resv_slots; /* 2 x S_MAX_RESV */

    /* The ring of changes (see the top of the file), in the ring file.
     * Positions count entries since the file was made; entry p is
     * ring[p % S_RING]. */
    eng_ringfile_t *rf;
    eng_ringfile_t *rf_old; /* at open, the last run's ring until its commit (s_ring_start) */
    uint64_t replayed;      /* ... and how many of its changes that commit holds */
    char real[PATH_MAX];    /* the state file's real path, which the ring names */
    char ring_path[PATH_MAX + 64];
    s_change_t *ring;
    _Atomic uint64_t *rf_head;  /* the file's copy of head, which outlives the process */
    uint64_t epoch;             /* the ring file's, which the database names */
    char boot[40];              /* this boot's id, which the database names with it */
    uint64_t fill;              /* under mu: next entry to fill (>= head) */
    _Atomic uint64_t head;      /* entries published to the writer */
    _Atomic uint64_t tail;      /* entries committed (room given back) */
    _Atomic bool writer_idle;   /* the writer sleeps until woken */
    _Atomic int64_t expired_ms; /* every reservation expiring before it has ended */
    uint64_t expired_inline;    /* under mu: expired by reserve, not counted by s_expire yet */

    pthread_mutex_t w_mu;
    pthread_cond_t cv_work, cv_done;
    bool stopping;        /* under w_mu: the store closes */
    bool idle_ok;         /* set at open: the writer runs at SCHED_IDLE and can be raised */
    _Atomic bool boosted; /* written under w_mu: the writer runs at SCHED_BATCH for now */
    bool urgent;          /* under w_mu: a sync or a full ring waits: commit now */
    bool failed;          /* under w_mu: the last commit or sync failed (disk full...) */
    uint64_t durable;     /* under w_mu: entries whose commit an fdatasync of the WAL covers */
    char fail_msg[160];

    /* The writer's own (no lock): the rows a batch changed, and statements. */
    s_wrow_t *w_keys;
    s_wrow_t *w_accts;
    uint32_t *w_dirty_keys, nw_dirty_keys;
    uint32_t *w_dirty_accts, nw_dirty_accts;
    uint64_t w_applied;       /* entries folded into w_keys/w_accts */
    int wal_fd;               /* the WAL file, opened for fdatasync (-1: not yet) */
    struct timespec w_synced; /* when the WAL was last synced (CLOCK_MONOTONIC) */
    sqlite3_stmt *w_stmt[S_Q_N];
    uint8_t *w_puts, *w_dels;  /* the journal row being filled: S_LOG_CHUNK records each */
    uint32_t nw_puts, nw_dels; /* records in them */
    size_t nw_puts_bytes, nw_dels_bytes; /* ... and their bytes */
    eng_journal_put_t w_last_put; /* the last record of each, which the next is written after */
    uint64_t w_last_end;
    int64_t w_until_ms;  /* the row's last expiry: it can be deleted after it */
    int64_t w_pruned_ms; /* expired_ms when journal rows were last deleted */
    uint32_t *w_fresh;   /* rows whose rowid this batch learnt (S_FRESH_ACCT: an account's) */
    uint32_t nw_fresh;
} s_store_t;

/* Hashing ------------------------------------------------------------------ */

static uint64_t s_hash_str(const char *s)
{
    return eng_fnv1a(s, strlen(s));
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
            if (st->rf) {
                eng_ringfile_set_acct(st->rf, a, name); /* before an entry names it */
            }
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
            if (st->rf) {
                eng_ringfile_set_key(st->rf, k, hash);
            }
            st->keys[k].acct = S_NIL;
            st->key_slots[i] = k;
            return k;
        }
        if (strcmp(st->keys[k].hash, hash) == 0) {
            return k;
        }
    }
}

/* The ring of changes ------------------------------------------------------- */

/* Is there room for n more entries? (Under mu: `fill` is ours; `tail` only
 * grows, so an old value only underestimates the room.) */
static bool s_room(s_store_t *st, uint32_t n)
{
    return st->fill + n - atomic_load_explicit(&st->tail, memory_order_acquire) <= S_RING;
}

/* The next entry to fill (under mu, after s_room said there is room). */
static s_change_t *s_emit(s_store_t *st, s_kind_t kind)
{
    s_change_t *c = &st->ring[st->fill++ & (S_RING - 1)];
    c->kind = (uint8_t)kind;
    c->free_model = false;
    return c;
}

static void s_key_row(const s_store_t *st, uint32_t k, s_change_t *c)
{
    const s_key_t *key = &st->keys[k];
    c->key = k;
    c->acct = key->acct;
    c->row[S_KROW_SPENT] = key->spent_pd;
    c->row[S_KROW_REQUESTS] = key->requests;
    c->row[S_KROW_PROMPT] = key->prompt_tokens;
    c->row[S_KROW_COMPLETION] = key->completion_tokens;
    c->row[S_KROW_DAY] = key->day;
    c->row[S_KROW_DAY_SPENT] = key->day_spent_pd;
    c->row[S_KROW_DAY_REQUESTS] = key->day_requests;
    c->row[S_KROW_DAY_FREE] = key->day_free_requests;
}

static void s_emit_key(s_store_t *st, uint32_t k)
{
    s_key_row(st, k, s_emit(st, S_CH_KEY));
}

static void s_emit_acct(s_store_t *st, uint32_t a)
{
    s_change_t *c = s_emit(st, S_CH_ACCT);
    c->acct = a;
    c->row[0] = st->accts[a].balance_pd;
    c->row[1] = st->accts[a].spent_pd;
}

/* The writer's scheduling. It runs at SCHED_IDLE: it gets a CPU only when
 * no other thread wants one, so a commit never delays a decision (at
 * SCHED_BATCH its bursts of CPU every S_BATCH_MS raised the p99 of
 * decisions at 20,000/s more than twofold on two cores). A thread at
 * SCHED_IDLE can starve on a saturated machine, so whoever would wait for
 * it raises it to SCHED_BATCH until the backlog is drained: a backlog past
 * S_BOOST_AT changes, a full ring, a sync still waiting after
 * S_BOOST_AFTER_MS. Leaving SCHED_IDLE needs RLIMIT_NICE >= 20 (systemd's
 * LimitNICE=+0) or CAP_SYS_NICE; without it the writer stays at
 * SCHED_BATCH throughout. */
static int s_set_policy(pthread_t t, int policy)
{
    struct sched_param sp = {.sched_priority = 0};
    return pthread_setschedparam(t, policy, &sp);
}

static void *s_probe_main(void *arg)
{
    bool *ok = arg;
    *ok = s_set_policy(pthread_self(), SCHED_IDLE) == 0 &&
          s_set_policy(pthread_self(), SCHED_BATCH) == 0;
    return NULL;
}

/* Can a thread of this process leave SCHED_IDLE? Tried on a thread of its
 * own, which is thrown away. */
static bool s_idle_ok(void)
{
    pthread_t t;
    bool ok = false;
    if (pthread_create(&t, NULL, s_probe_main, &ok) != 0) {
        return false;
    }
    pthread_join(t, NULL);
    return ok;
}

/* Raises the writer (under w_mu). */
static void s_boost(s_store_t *st)
{
    if (st->idle_ok && !atomic_load_explicit(&st->boosted, memory_order_relaxed)) {
        atomic_store_explicit(&st->boosted, true, memory_order_relaxed);
        s_set_policy(st->writer, SCHED_BATCH);
    }
}

/* Puts the writer (the caller, holding w_mu) back to SCHED_IDLE, without w_mu held: at idle
 * priority a thread is often descheduled at once and for long, and every thread that would
 * raise it, a deciding thread among them (s_unlock), takes w_mu first. A raise between the
 * two is seen after and done again. */
static void s_unboost(s_store_t *st)
{
    atomic_store_explicit(&st->boosted, false, memory_order_relaxed);
    pthread_mutex_unlock(&st->w_mu);
    s_set_policy(st->writer, SCHED_IDLE);
    pthread_mutex_lock(&st->w_mu);
    if (atomic_load_explicit(&st->boosted, memory_order_relaxed)) {
        s_set_policy(st->writer, SCHED_BATCH);
    }
}

/* Does the backlog call for raising the writer? (Under mu; a relaxed read
 * of the flag, the raise itself under w_mu.) */
static bool s_backlog_high(const s_store_t *st)
{
    return st->idle_ok && !atomic_load_explicit(&st->boosted, memory_order_relaxed) &&
           st->fill - atomic_load_explicit(&st->tail, memory_order_relaxed) >= S_BOOST_AT;
}

/* Hands what this operation filled to the writer (under mu, so positions
 * are published in order). True when the writer must be woken (s_unlock,
 * after letting go of mu): it sleeps, or this operation took the changes
 * not committed past S_EARLY (a batch that fast is committed at once, so
 * that the ring keeps room). seq_cst on both sides: either the writer sees
 * the new head before it sleeps, or we see it asleep. */
static bool s_publish(s_store_t *st)
{
    uint64_t old = atomic_load_explicit(&st->head, memory_order_relaxed);
    if (old == st->fill) {
        return false;
    }
    atomic_store_explicit(&st->head, st->fill, memory_order_seq_cst);
    atomic_store_explicit(st->rf_head, st->fill, memory_order_release);
    uint64_t tail = atomic_load_explicit(&st->tail, memory_order_relaxed);
    bool early = old - tail < S_EARLY && st->fill - tail >= S_EARLY;
    return (atomic_load_explicit(&st->writer_idle, memory_order_seq_cst) &&
            atomic_exchange_explicit(&st->writer_idle, false, memory_order_seq_cst)) ||
           early;
}

/* Publishes and lets go of mu; wakes the writer if it sleeps (once per
 * batch at most: the first change after it found nothing to do) and
 * raises it when the backlog is high. */
static void s_unlock(s_store_t *st)
{
    bool wake = s_publish(st);
    bool boost = s_backlog_high(st);
    pthread_mutex_unlock(&st->mu);
    if (wake || boost) {
        pthread_mutex_lock(&st->w_mu);
        if (boost) {
            s_boost(st);
        }
        pthread_cond_signal(&st->cv_work);
        pthread_mutex_unlock(&st->w_mu);
    }
}

/* Takes mu with room for n entries, waiting for the writer to commit when
 * the ring is full (not on the decision path: settle, release, adjust).
 * False (mu held, no room) when the store closes or, timeout_ms >= 0, the
 * disk refused for that long. */
static bool s_lock_room(s_store_t *st, uint32_t n, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        pthread_mutex_lock(&st->mu);
        if (s_room(st, n)) {
            return true;
        }
        pthread_mutex_unlock(&st->mu);
        pthread_mutex_lock(&st->w_mu);
        bool give_up = st->stopping || (timeout_ms >= 0 && waited >= timeout_ms);
        if (!give_up) {
            st->urgent = true;
            s_boost(st);
            pthread_cond_signal(&st->cv_work);
            struct timespec until = eng_abstime_in_ms(10);
            pthread_cond_timedwait(&st->cv_done, &st->w_mu, &until);
        }
        pthread_mutex_unlock(&st->w_mu);
        if (give_up) {
            pthread_mutex_lock(&st->mu);
            return s_room(st, n);
        }
    }
}

/* Reservations: hash table of indexes into `resv`, deleted by backward
 * shift (no tombstones), entries in a list by expiry (the order they were
 * made in, the hold being one for all; s_resv_add walks back otherwise). */

/* The home slot of a decision. A thread's ids are threads + 1 apart
 * (eng_server.c), so a run of S_RESV_RUN ids holds about 21 decisions of
 * one thread (with 2 threads), in 512 bytes of slots that are reserved, and expired, in
 * order: a stream the prefetcher follows, where runs of 8 (one cache line,
 * under 3 decisions) made each next line a miss. The probe for a slot was
 * 2% of the deciding thread's samples at 20,000 decisions a second, 1% with
 * runs of 64. */
static uint32_t s_resv_home(uint64_t decision)
{
    uint64_t run = s_hash_u64(decision / S_RESV_RUN) * S_RESV_RUN;
    return (uint32_t)(run + decision % S_RESV_RUN) & (2 * S_MAX_RESV - 1);
}

static s_rslot_t *s_resv_slot(s_store_t *st, uint64_t decision)
{
    uint32_t mask = 2 * S_MAX_RESV - 1, home = s_resv_home(decision);
    for (uint32_t i = home;; i = (i + 1) & mask) {
        s_rslot_t *e = &st->resv_slots[i];
        if (e->idx == S_NIL || (e->home == home && st->resv[e->idx].decision == decision)) {
            return e;
        }
    }
}

static void s_resv_unslot(s_store_t *st, s_rslot_t *slot)
{
    uint32_t mask = 2 * S_MAX_RESV - 1;
    uint32_t i = (uint32_t)(slot - st->resv_slots);
    uint32_t j = i;
    st->resv_slots[i].idx = S_NIL;
    for (;;) {
        j = (j + 1) & mask;
        s_rslot_t r = st->resv_slots[j];
        if (r.idx == S_NIL) {
            return;
        }
        /* Move r back to the hole when its home is not in (i, j]. */
        bool between = i <= j ? (r.home > i && r.home <= j) : (r.home > i || r.home <= j);
        if (!between) {
            st->resv_slots[i] = r;
            st->resv_slots[j].idx = S_NIL;
            i = j;
        }
    }
}

static bool s_resv_room(const s_store_t *st)
{
    return st->resv_free != S_NIL || st->resv_used < S_MAX_RESV;
}

static uint32_t s_resv_add(s_store_t *st, s_rslot_t *slot, const s_resv_t *in)
{
    uint32_t r = st->resv_free;
    if (r != S_NIL) {
        st->resv_free = st->resv[r].next;
    } else {
        r = st->resv_used++;
    }
    st->resv[r] = *in;
    /* After the last entry that expires no later: the tail, unless the
     * hold changed across a restart (entries loaded with a longer hold) or
     * the clock stepped back. Past S_WALK_MAX entries it goes where the walk
     * stopped and expires with them, later than asked, never earlier: a
     * decision's cost stays bounded whatever was loaded (a journal in
     * decreasing order cost n * n / 2 steps to load). */
    uint32_t after = st->resv_tail;
    for (int steps = 0; after != S_NIL && st->resv[after].expires_ms > in->expires_ms; steps++) {
        if (steps == S_WALK_MAX) {
            st->resv[r].expires_ms = st->resv[after].expires_ms;
            break;
        }
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
    slot->idx = r;
    slot->home = s_resv_home(in->decision);
    st->nresv++;
    return r;
}

static void s_resv_drop(s_store_t *st, s_rslot_t *slot)
{
    uint32_t r = slot->idx;
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

/* The key's day counters moved to `day` when it is a later one (true). */
static bool s_roll(s_store_t *st, uint32_t k, int64_t day)
{
    s_key_t *key = &st->keys[k];
    if (day > key->day) {
        key->day = day;
        key->day_spent_pd = key->day_reserved_pd = 0;
        key->day_requests = key->day_free_requests = 0;
        return true;
    }
    return false;
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

/* *x += d, held at the int64 bounds: a report's cost is bounded (HPP_MAX_BUDGET_USD, 1e18
 * picodollars) but not the sum of many. */
static void s_add_sat(int64_t *x, int64_t d)
{
    if (__builtin_add_overflow(*x, d, x)) {
        *x = d > 0 ? INT64_MAX : INT64_MIN;
    }
}

/* Gives back what the reservation in `slot` holds and drops it, in memory
 * only. Under mu. */
static void s_unreserve(s_store_t *st, s_rslot_t *slot)
{
    const s_resv_t *e = &st->resv[slot->idx];
    s_key_t *k = &st->keys[e->key];
    k->reserved_pd -= e->amount_pd;
    if (k->day == e->day) {
        k->day_reserved_pd -= e->amount_pd;
    }
    st->accts[e->acct].reserved_pd -= e->amount_pd;
    s_resv_drop(st, slot);
}

/* Ends the reservation in `slot`: charges cost_pd (settle) or nothing
 * (release, cost_pd < 0), and journals the end. Under mu, with room for 2
 * entries. */
static void s_end(s_store_t *st, s_rslot_t *slot, int64_t cost_pd, int64_t prompt,
                  int64_t completion)
{
    s_resv_t e = st->resv[slot->idx];
    s_unreserve(st, slot);
    if (cost_pd >= 0) {
        s_key_t *k = &st->keys[e.key];
        s_acct_t *a = &st->accts[e.acct];
        s_add_sat(&k->spent_pd, cost_pd);
        k->requests++;
        s_add_sat(&k->prompt_tokens, prompt);
        s_add_sat(&k->completion_tokens, completion);
        if (k->day == e.day) {
            s_add_sat(&k->day_spent_pd, cost_pd);
        }
        s_add_sat(&a->balance_pd, -cost_pd);
        s_add_sat(&a->spent_pd, cost_pd);
        s_emit_acct(st, e.acct); /* a release changes nothing the database keeps */
    }
    s_change_t *c = s_emit(st, S_CH_RESV_DEL);
    s_key_row(st, e.key, c);
    c->decision = e.decision;
    c->expires_ms = e.expires_ms;
}

/* Expires up to `max` reservations due at now_ms, oldest first, in memory
 * only: an expiry is not journaled, since the journal holds each
 * reservation's expiry and a reopened store leaves out what expired before
 * it (s_load_log_row), so the writer gets no work from it and the pass
 * needs no room in the ring. Under mu. How many it expired. */
static uint32_t s_expire_due(s_store_t *st, int64_t now_ms, uint32_t max)
{
    uint32_t n = 0;
    while (n < max && st->resv_head != S_NIL && st->resv[st->resv_head].expires_ms <= now_ms) {
        s_unreserve(st, s_resv_slot(st, st->resv[st->resv_head].decision));
        n++;
    }
    return n;
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
    /* Two due for each one made: at a steady rate the deciding threads
     * expire their own reservations a few at a time, so the expiry pass
     * finds little and holds mu only briefly (a pass of thousands, taking
     * mu by turns with the deciders, tripled the p99 at 20,000 a second). */
    st->expired_inline += s_expire_due(st, r->now_ms, 2);
    uint32_t a = s_acct(st, key->account, true);
    uint32_t k = s_key(st, key->hash, true);
    if (a == S_NIL || k == S_NIL) {
        rc = s_full(err, errlen, a == S_NIL ? "too many accounts" : "too many keys");
        goto out;
    }
    bool moved = st->keys[k].acct != a;
    st->keys[k].acct = a; /* new, or moved to another account by the key file */
    moved |= s_roll(st, k, r->day);
    /* The key's day, never earlier than the request's: a decision checked just before midnight
     * that reserves after another one has moved the key to the next day counts in that day, so
     * the day's limits apply to it and its end gives back to the day it was added to. */
    int64_t day = st->keys[k].day;
    s_state(st, k, a, day, s);
    rc = s_check(key, s, r->free_model);
    if (rc != HPP_OK) {
        if (moved && s_room(st, 1)) {
            s_emit_key(st, k); /* else the next change of the key carries it */
        }
        goto out;
    }
    if (!s_resv_room(st) || !s_room(st, 1)) {
        rc = s_full(err, errlen,
                    !s_resv_room(st) ? "too many reservations in flight"
                                     : "the writer is behind (disk slow or full)");
        goto out;
    }
    s_rslot_t *slot = s_resv_slot(st, r->decision);
    if (slot->idx != S_NIL) {
        snprintf(err, errlen, "decision %llu reserved twice", (unsigned long long)r->decision);
        rc = HPP_E_INTERNAL;
        goto out;
    }
    s_resv_t e = {.decision = r->decision,
                  .amount_pd = r->amount_pd,
                  .day = day,
                  .expires_ms = r->expires_ms,
                  .key = k,
                  .acct = a,
                  .free_model = r->free_model};
    e.expires_ms = st->resv[s_resv_add(st, slot, &e)].expires_ms; /* perhaps later (s_resv_add) */
    s_key_t *kk = &st->keys[k];
    kk->reserved_pd += r->amount_pd;
    kk->day_reserved_pd += r->amount_pd;
    kk->day_requests++;
    kk->day_free_requests += r->free_model;
    st->accts[a].reserved_pd += r->amount_pd;
    s_change_t *c = s_emit(st, S_CH_RESV_PUT);
    s_key_row(st, k, c);
    c->acct = a;
    c->decision = e.decision;
    c->amount_pd = e.amount_pd;
    c->day = e.day;
    c->expires_ms = e.expires_ms;
    c->free_model = e.free_model;
    s_state(st, k, a, day, s);
out:
    s_unlock(st);
    return rc;
}

/* How long adjust waits for room in a full ring. A settlement or a
 * release waits as long as it takes (S_ROOM_FOREVER): it runs on a worker
 * thread, never on the decision path, and giving up would drop a charge
 * that a report with `ack` then acknowledges. */
#define S_ROOM_WAIT_MS 5000
#define S_ROOM_FOREVER (-1)

/* No room, the store closing (or, adjust, a disk refusing for
 * S_ROOM_WAIT_MS): the call changes nothing and says so. */
static int s_behind(char *err, size_t errlen)
{
    return s_full(err, errlen, "the writer is behind (disk slow or full)");
}

static int s_settle(eng_store_t *base, const eng_store_settle_t *s, bool *settled, char *err,
                    size_t errlen)
{
    s_store_t *st = (s_store_t *)base;
    if (settled) {
        *settled = false;
    }
    if (!s_lock_room(st, 2, S_ROOM_FOREVER)) {
        pthread_mutex_unlock(&st->mu);
        return s_behind(err, errlen);
    }
    s_rslot_t *slot = s_resv_slot(st, s->decision);
    bool found = slot->idx != S_NIL;
    if (found) {
        int64_t cost = s->cost_pd < 0 ? st->resv[slot->idx].amount_pd : s->cost_pd;
        s_end(st, slot, cost, s->prompt_tokens, s->completion_tokens);
    }
    s_unlock(st);
    if (settled) {
        *settled = found;
    }
    return HPP_OK;
}

static int s_release(eng_store_t *base, uint64_t decision, bool *released, char *err, size_t errlen)
{
    s_store_t *st = (s_store_t *)base;
    if (released) {
        *released = false;
    }
    if (!s_lock_room(st, 2, S_ROOM_FOREVER)) {
        pthread_mutex_unlock(&st->mu);
        return s_behind(err, errlen);
    }
    s_rslot_t *slot = s_resv_slot(st, decision);
    bool found = slot->idx != S_NIL;
    if (found) {
        s_end(st, slot, -1, 0, 0);
    }
    s_unlock(st);
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
    /* At most 4096 per call (the ledger calls again soon when this was the
     * bound), in chunks of S_EXPIRE_CHUNK per hold of mu, so a decision
     * never waits behind more than a chunk. Under load there is little
     * left: each reservation made expires those due (s_reserve). */
    pthread_mutex_lock(&st->mu);
    uint64_t earlier = st->expired_inline;
    st->expired_inline = 0;
    pthread_mutex_unlock(&st->mu);
    uint64_t count = 0;
    uint32_t chunk = S_EXPIRE_CHUNK;
    while (chunk == S_EXPIRE_CHUNK && count < 4096) {
        pthread_mutex_lock(&st->mu);
        chunk = s_expire_due(st, now_ms, S_EXPIRE_CHUNK);
        pthread_mutex_unlock(&st->mu);
        count += chunk;
    }
    if (chunk < S_EXPIRE_CHUNK) {
        /* Every reservation expiring by now_ms has ended (not so when the
         * bound stopped the pass): the journal may drop them. */
        atomic_store_explicit(&st->expired_ms, now_ms, memory_order_relaxed);
    }
    if (n) {
        *n = earlier + count;
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
    if (!s_lock_room(st, 1, S_ROOM_WAIT_MS)) {
        pthread_mutex_unlock(&st->mu);
        return s_behind(err, errlen);
    }
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
    s_emit_acct(st, a);
    s_unlock(st);
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
    struct timespec until = eng_abstime_in_ms(timeout_ms);
    int rc = HPP_OK;
    /* Everything published before the call: a settle or adjust that
     * returned is published (s_unlock). */
    uint64_t target = atomic_load_explicit(&st->head, memory_order_seq_cst);
    struct timespec boost_at =
        eng_abstime_in_ms(timeout_ms < S_BOOST_AFTER_MS ? timeout_ms : S_BOOST_AFTER_MS);
    bool raised = false;
    pthread_mutex_lock(&st->w_mu);
    while (st->durable < target && !st->failed) {
        st->urgent = true;
        pthread_cond_signal(&st->cv_work);
        int w = pthread_cond_timedwait(&st->cv_done, &st->w_mu, raised ? &until : &boost_at);
        if (w == ETIMEDOUT && !raised) {
            raised = true; /* an idle writer that did not get a CPU in time */
            s_boost(st);
        } else if (w == ETIMEDOUT) {
            break;
        }
    }
    if (st->durable < target) {
        snprintf(err, errlen, "ledger store: %s",
                 st->failed ? st->fail_msg : "the write to disk did not complete in time");
        rc = HPP_E_LEDGER_UNAVAILABLE;
    }
    pthread_mutex_unlock(&st->w_mu);
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
    "CREATE TABLE IF NOT EXISTS resv_log(id INTEGER PRIMARY KEY, until_ms INTEGER NOT NULL,"
    " puts BLOB NOT NULL, dels BLOB NOT NULL);"
    /* The ring file this database goes with, and the first of its entries
     * the database lacks (eng_ringfile.h). Written by every commit. */
    "CREATE TABLE IF NOT EXISTS ring(id INTEGER PRIMARY KEY CHECK(id = 1),"
    " epoch INTEGER NOT NULL, pos INTEGER NOT NULL, boot TEXT NOT NULL DEFAULT '');";

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

/* Why SQLite could not use the state file at open, by what it found: a
 * file that is not a database is called so; anything else (its WAL that
 * cannot be opened, a read error) is not that file's fault, and gets
 * SQLite's own words. */
static void s_unusable(const s_store_t *st, char *err, size_t errlen)
{
    int code = sqlite3_errcode(st->db) & 0xff;
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
        snprintf(err, errlen, "--ledger %s: not a SQLite database (%s)", st->path,
                 sqlite3_errmsg(st->db));
    } else {
        snprintf(err, errlen, "--ledger %s: cannot use it or its WAL (%s-wal): %s", st->path,
                 st->path, sqlite3_errmsg(st->db));
    }
}

/* Takes the state file for this process alone, for as long as it is open:
 * locking_mode EXCLUSIVE keeps the lock from the first transaction on, so
 * a second engine (or a --check) on the same file is refused here instead
 * of both writing rows over each other's. (The WAL's index then lives in
 * the writer's memory, not in a shared -shm file, which spares each commit
 * its lock calls; the writer's CPU was not told apart by it.) The price:
 * nothing else can read a live state file (hpp-ledger reads through the
 * engine). A stopping engine is waited for S_CLAIM_MS. */
static int s_claim(s_store_t *st, char *err, size_t errlen)
{
    sqlite3_busy_timeout(st->db, S_CLAIM_MS);
    if (s_exec(st, "PRAGMA locking_mode = EXCLUSIVE", err, errlen) < 0) {
        return -1;
    }
    int rc = sqlite3_exec(st->db, "BEGIN EXCLUSIVE; COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_BUSY) {
        snprintf(err, errlen,
                 "--ledger %s: the state file is in use by another process (an engine runs on"
                 " it; sqlite: serves one engine, redis:// several)",
                 st->path);
        return -1;
    }
    if (rc != SQLITE_OK) {
        s_unusable(st, err, errlen);
        return -1;
    }
    return 0;
}

bool eng_store_sqlite_in_use(const char *spec)
{
    sqlite3 *db = NULL;
    bool busy = false;
    if (strncmp(spec, "sqlite:", 7) == 0 &&
        sqlite3_open_v2(spec + 7, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        /* No wait: any lock of another process is an answer. */
        busy = sqlite3_exec(db, "BEGIN EXCLUSIVE; ROLLBACK", NULL, NULL, NULL) == SQLITE_BUSY;
    }
    sqlite3_close(db);
    return busy;
}

/* Schema 1 stored decision ids as SQLite's signed integers, bit for bit. */
static uint64_t s_dec_from_db(sqlite3_int64 v)
{
    uint64_t d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* Prepares a query of the loader; -1 with the database's message. */
static int s_query(s_store_t *st, const char *sql, sqlite3_stmt **q, char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, q, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    return 0;
}

/* The key or account a stored name is, made if new; S_NIL for a missing
 * or too long name, or a full table. */
static uint32_t s_key_named(s_store_t *st, const char *name)
{
    return name && strlen(name) < S_NAME ? s_key(st, name, true) : S_NIL;
}

static uint32_t s_acct_named(s_store_t *st, const char *name)
{
    return name && strlen(name) < S_NAME ? s_acct(st, name, true) : S_NIL;
}

/* Column i of the current row, as text (NULL when it is NULL). */
static const char *s_text(sqlite3_stmt *q, int i)
{
    return (const char *)sqlite3_column_text(q, i);
}

/* A reservation read from the database, counted in its key and account; -1 when it is there
 * already, the table is full, or its amount would overflow what the key or account holds
 * reserved (a damaged file). */
static int s_load_resv(s_store_t *st, const s_resv_t *e)
{
    s_rslot_t *slot = s_resv_slot(st, e->decision);
    int64_t sum;
    if (!s_resv_room(st) || slot->idx != S_NIL || e->amount_pd < 0 ||
        __builtin_add_overflow(st->keys[e->key].reserved_pd, e->amount_pd, &sum) ||
        __builtin_add_overflow(st->accts[e->acct].reserved_pd, e->amount_pd, &sum)) {
        return -1;
    }
    s_resv_add(st, slot, e);
    st->keys[e->key].reserved_pd += e->amount_pd;
    if (st->keys[e->key].day == e->day) {
        st->keys[e->key].day_reserved_pd += e->amount_pd;
    }
    st->accts[e->acct].reserved_pd += e->amount_pd;
    return 0;
}

/* A reservation's end read from the journal (unknown: ended before). */
static void s_load_end(s_store_t *st, uint64_t decision)
{
    s_rslot_t *slot = s_resv_slot(st, decision);
    if (slot->idx != S_NIL) {
        s_unreserve(st, slot);
    }
}

/* Rowid to index, for the rows of one table loaded in rowid order. */
typedef struct {
    int64_t rowid;
    uint32_t idx;
} s_rowmap_t;

static uint32_t s_rowmap_find(const s_rowmap_t *m, uint32_t n, int64_t rowid)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m[mid].rowid < rowid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && m[lo].rowid == rowid ? m[lo].idx : S_NIL;
}

static int s_load_accounts(s_store_t *st, s_rowmap_t *map, uint32_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT rowid, name, balance_pd, spent_pd FROM accounts ORDER BY rowid";
    if (s_query(st, sql, &q, err, errlen) < 0) {
        return -1;
    }
    int rc = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        const char *name = s_text(q, 1);
        uint32_t a = s_acct_named(st, name);
        if (a == S_NIL) {
            snprintf(err, errlen, "%s: account '%.40s': bad name or too many accounts", st->path,
                     name ? name : "");
            rc = -1;
            break;
        }
        if (st->w_accts[a].rowid != 0) {
            snprintf(err, errlen, "%s: account '%.40s': two rows", st->path, name);
            rc = -1;
            break;
        }
        st->accts[a].balance_pd = sqlite3_column_int64(q, 2);
        st->accts[a].spent_pd = sqlite3_column_int64(q, 3);
        st->w_accts[a].rowid = sqlite3_column_int64(q, 0);
        map[(*n)++] = (s_rowmap_t){st->w_accts[a].rowid, a};
    }
    sqlite3_finalize(q);
    return rc;
}

static int s_load_keys(s_store_t *st, s_rowmap_t *map, uint32_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    const char *sql =
        "SELECT rowid, hash, account, spent_pd, requests, prompt_tokens, completion_tokens, day,"
        " day_spent_pd, day_requests, day_free_requests FROM keys ORDER BY rowid";
    if (s_query(st, sql, &q, err, errlen) < 0) {
        return -1;
    }
    int rc = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        const char *hash = s_text(q, 1);
        uint32_t k = s_key_named(st, hash);
        uint32_t a = s_acct_named(st, s_text(q, 2));
        if (k == S_NIL || a == S_NIL) {
            snprintf(err, errlen, "%s: key '%.40s': bad row or too many keys", st->path,
                     hash ? hash : "");
            rc = -1;
            break;
        }
        if (st->w_keys[k].rowid != 0) {
            snprintf(err, errlen, "%s: key '%.40s': two rows", st->path, hash);
            rc = -1;
            break;
        }
        s_key_t *key = &st->keys[k];
        key->acct = a;
        key->spent_pd = sqlite3_column_int64(q, 3);
        key->requests = sqlite3_column_int64(q, 4);
        key->prompt_tokens = sqlite3_column_int64(q, 5);
        key->completion_tokens = sqlite3_column_int64(q, 6);
        key->day = sqlite3_column_int64(q, 7);
        key->day_spent_pd = sqlite3_column_int64(q, 8);
        key->day_requests = sqlite3_column_int64(q, 9);
        key->day_free_requests = sqlite3_column_int64(q, 10);
        st->w_keys[k].rowid = sqlite3_column_int64(q, 0);
        map[(*n)++] = (s_rowmap_t){st->w_keys[k].rowid, k};
    }
    sqlite3_finalize(q);
    return rc;
}

/* The next reservation of a journal row's blob, at p with n bytes left,
 * after *last, into *last: schema 2's fixed records (whole ones, checked
 * first), or schema 3's. The bytes it took, 0 with the reason. */
static size_t s_next_put(int version, const uint8_t *p, size_t n, eng_journal_put_t *last,
                         char *why, size_t whylen)
{
    if (version == 2) {
        return eng_journal_v2_put_read(p, last, why, whylen) ? ENG_JOURNAL_V2_PUT_BYTES : 0;
    }
    eng_journal_put_t r;
    size_t used = eng_journal_put_read(p, n, last, &r, why, whylen);
    *last = r;
    return used;
}

/* The same for an end. */
static size_t s_next_end(int version, const uint8_t *p, size_t n, uint64_t *last, char *why,
                         size_t whylen)
{
    if (version == 2) {
        *last = eng_journal_v2_end_read(p);
        return ENG_JOURNAL_V2_END_BYTES;
    }
    return eng_journal_end_read(p, n, *last, last, why, whylen);
}

/* One journal row: its reservations, then the ends (a batch's ends come
 * after its reservations, and a reservation before its end). */
static int s_load_log_row(s_store_t *st, const s_rowmap_t *keys, uint32_t nkeys,
                          const s_rowmap_t *accts, uint32_t naccts, int64_t now_ms, sqlite3_stmt *q,
                          char *err, size_t errlen)
{
    int64_t id = sqlite3_column_int64(q, 0);
    const uint8_t *puts = sqlite3_column_blob(q, 1);
    size_t nputs = (size_t)sqlite3_column_bytes(q, 1);
    const uint8_t *dels = sqlite3_column_blob(q, 2);
    size_t ndels = (size_t)sqlite3_column_bytes(q, 2);
    char why[160];
    const char *col = "puts"; /* where it went wrong, for the message */
    size_t off = 0, used;
    if (st->version == 2 && !eng_journal_v2_sizes_ok(nputs, ndels, why, sizeof why)) {
        snprintf(err, errlen, "%s: reservation journal row %lld: %s", st->path, (long long)id, why);
        return -1;
    }
    eng_journal_put_t r = {0};
    for (; off < nputs; off += used) {
        if ((used = s_next_put(st->version, puts + off, nputs - off, &r, why, sizeof why)) == 0) {
            goto bad;
        }
        s_resv_t e = {.decision = r.decision,
                      .amount_pd = r.amount_pd,
                      .day = r.day,
                      .expires_ms = r.expires_ms,
                      .key = s_rowmap_find(keys, nkeys, r.key_rowid),
                      .acct = s_rowmap_find(accts, naccts, r.acct_rowid),
                      .free_model = r.free_model};
        bool known = e.key != S_NIL && e.acct != S_NIL;
        if (known && e.expires_ms <= now_ms) {
            /* Expired before this start: expiries are not journaled (s_expire_due), so
             * without this every reservation never reported would come back at each start,
             * and a journal whose prefix cannot be pruned (a hold shortened across a
             * restart, a clock stepped back) would grow past what a start can load. */
            continue;
        }
        if (!known || s_load_resv(st, &e) < 0) {
            snprintf(why, sizeof why, "reservation %llu: %s", (unsigned long long)e.decision,
                     e.key == S_NIL    ? "no such key"
                     : e.acct == S_NIL ? "no such account"
                                       : "twice, too many in flight, or a bad amount");
            goto bad;
        }
    }
    uint64_t end = 0;
    col = "dels";
    for (off = 0; off < ndels; off += used) {
        if ((used = s_next_end(st->version, dels + off, ndels - off, &end, why, sizeof why)) == 0) {
            goto bad;
        }
        s_load_end(st, end);
    }
    return 0;
bad:
    snprintf(err, errlen, "%s: reservation journal row %lld, %s at byte %zu: %s", st->path,
             (long long)id, col, off, why);
    return -1;
}

static int s_load_log(s_store_t *st, const s_rowmap_t *keys, uint32_t nkeys,
                      const s_rowmap_t *accts, uint32_t naccts, int64_t now_ms, char *err,
                      size_t errlen)
{
    sqlite3_stmt *q = NULL;
    if (s_query(st, "SELECT id, puts, dels FROM resv_log ORDER BY id", &q, err, errlen) < 0) {
        return -1;
    }
    int rc = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        rc = s_load_log_row(st, keys, nkeys, accts, naccts, now_ms, q, err, errlen);
    }
    sqlite3_finalize(q);
    return rc;
}

/* Schema 1 kept a row per reservation. */
static int s_load_v1(s_store_t *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    const char *sql = "SELECT decision, key, account, amount_pd, day, expires_ms, free FROM"
                      " reservations ORDER BY expires_ms";
    if (s_query(st, sql, &q, err, errlen) < 0) {
        return -1;
    }
    int rc = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        s_resv_t e = {.decision = s_dec_from_db(sqlite3_column_int64(q, 0)),
                      .amount_pd = sqlite3_column_int64(q, 3),
                      .day = sqlite3_column_int64(q, 4),
                      .expires_ms = sqlite3_column_int64(q, 5),
                      .key = s_key_named(st, s_text(q, 1)),
                      .acct = s_acct_named(st, s_text(q, 2)),
                      .free_model = sqlite3_column_int(q, 6) != 0};
        if (e.key == S_NIL || e.acct == S_NIL || s_load_resv(st, &e) < 0) {
            snprintf(err, errlen, "%s: reservation %llu: bad row or too many", st->path,
                     (unsigned long long)e.decision);
            rc = -1;
        }
    }
    sqlite3_finalize(q);
    return rc;
}

/* Loads every table into memory (before the writer starts); reservations of the journal that
 * expired by now_ms are left out. */
static int s_load(s_store_t *st, int version, int64_t now_ms, char *err, size_t errlen)
{
    s_rowmap_t *accts = malloc(sizeof *accts * S_MAX_ACCOUNTS);
    s_rowmap_t *keys = malloc(sizeof *keys * S_MAX_KEYS);
    uint32_t naccts = 0, nkeys = 0;
    int rc = -1;
    if (!accts || !keys) {
        snprintf(err, errlen, "%s: out of memory", st->path);
    } else if (s_load_accounts(st, accts, &naccts, err, errlen) == 0 &&
               s_load_keys(st, keys, &nkeys, err, errlen) == 0) {
        rc = version == 1 ? s_load_v1(st, err, errlen)
                          : s_load_log(st, keys, nkeys, accts, naccts, now_ms, err, errlen);
    }
    free(accts);
    free(keys);
    return rc;
}

/* Folds the entries [w_applied, upto) into the writer's rows: the last
 * change of a key or account wins, so a batch writes each row once. */
static void s_fold(s_store_t *st, uint64_t upto)
{
    for (uint64_t p = st->w_applied; p < upto; p++) {
        const s_change_t *c = &st->ring[p & (S_RING - 1)];
        bool acct = c->kind == S_CH_ACCT;
        s_wrow_t *w = acct ? &st->w_accts[c->acct] : &st->w_keys[c->key];
        if (!w->dirty) {
            w->dirty = true;
            if (acct) {
                st->w_dirty_accts[st->nw_dirty_accts++] = c->acct;
            } else {
                st->w_dirty_keys[st->nw_dirty_keys++] = c->key;
            }
        }
        w->acct = c->acct;
        memcpy(w->row, c->row, sizeof w->row);
    }
    st->w_applied = upto;
}

static const char *const s_sqls[S_Q_N] = {
    /* Prepared once like the rest: through sqlite3_exec each commit parsed
     * and compiled them again (at 20,000 decisions a second SQLite's share
     * of the writer's samples went from 18% to 15% once prepared; one
     * profile each, its CPU not told apart). */
    [S_Q_BEGIN] = "BEGIN IMMEDIATE",
    [S_Q_COMMIT] = "COMMIT",
    [S_Q_ACCT] = "INSERT INTO accounts(name, balance_pd, spent_pd) VALUES(?1, ?2, ?3)"
                 " ON CONFLICT(name) DO UPDATE SET balance_pd = ?2, spent_pd = ?3 RETURNING rowid",
    [S_Q_KEY] =
        "INSERT INTO keys(hash, account, spent_pd, requests, prompt_tokens, completion_tokens,"
        " day, day_spent_pd, day_requests, day_free_requests)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(hash) DO UPDATE SET"
        " account = ?2, spent_pd = ?3, requests = ?4, prompt_tokens = ?5, completion_tokens = ?6,"
        " day = ?7, day_spent_pd = ?8, day_requests = ?9, day_free_requests = ?10 RETURNING rowid",
    /* An account a reservation names that has no row yet (never topped
     * up): a row at zero, the values of one that exists left alone. */
    [S_Q_ACCT_ROWID] = "INSERT INTO accounts(name, balance_pd, spent_pd) VALUES(?1, 0, 0)"
                       " ON CONFLICT(name) DO UPDATE SET name = name RETURNING rowid",
    [S_Q_LOG] = "INSERT INTO resv_log(until_ms, puts, dels) VALUES(?1, ?2, ?3)",
    /* The rows before the first that may hold a reservation in flight: a
     * prefix, so an end is never deleted while its reservation (in the
     * same row or an earlier one) is kept. The scan stops at that row. */
    [S_Q_PRUNE] = "DELETE FROM resv_log WHERE id < coalesce((SELECT id FROM resv_log WHERE"
                  " until_ms >= ?1 ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM resv_log))",
    /* Epoch 0: the ring was closed cleanly (s_destroy), none is left. */
    [S_Q_RING] = "INSERT INTO ring(id, epoch, pos, boot) VALUES(1, ?1, ?2, ?3)"
                 " ON CONFLICT(id) DO UPDATE SET epoch = ?1, pos = ?2, boot = ?3",
};

/* One statement's step, reset for the next row. */
static int s_step(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_reset(q);
    return rc;
}

/* The step of an upsert that returns its row's rowid. */
static int s_step_rowid(sqlite3_stmt *q, int64_t *rowid)
{
    int rc = SQLITE_ERROR;
    if (sqlite3_step(q) == SQLITE_ROW) {
        *rowid = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_reset(q);
    return rc;
}

/* Starts a journal row: empty blobs, whose first records are written after zeros. */
static void s_log_reset(s_store_t *st)
{
    st->nw_puts = st->nw_dels = 0;
    st->nw_puts_bytes = st->nw_dels_bytes = 0;
    st->w_last_put = (eng_journal_put_t){0};
    st->w_last_end = 0;
    st->w_until_ms = INT64_MIN;
}

/* Writes the journal row being filled, if any. */
static int s_log_flush(s_store_t *st)
{
    if (st->nw_puts == 0 && st->nw_dels == 0) {
        return SQLITE_OK;
    }
    sqlite3_stmt *q = st->w_stmt[S_Q_LOG];
    sqlite3_bind_int64(q, 1, st->w_until_ms);
    sqlite3_bind_blob(q, 2, st->w_puts, (int)st->nw_puts_bytes, SQLITE_STATIC);
    sqlite3_bind_blob(q, 3, st->w_dels, (int)st->nw_dels_bytes, SQLITE_STATIC);
    s_log_reset(st);
    return s_step(q);
}

/* The step of an upsert of writer row w (index i, S_FRESH_ACCT for an
 * account): learns its rowid, noted as fresh when it was not known. */
static int s_step_learn(s_store_t *st, sqlite3_stmt *q, s_wrow_t *w, uint32_t i)
{
    bool known = w->rowid != 0;
    int rc = s_step_rowid(q, &w->rowid);
    if (rc == SQLITE_OK && !known) {
        st->w_fresh[st->nw_fresh++] = i;
    }
    return rc;
}

/* The rowid of account a, its row made at zero if it has none. */
static int s_acct_rowid(s_store_t *st, uint32_t a, int64_t *rowid)
{
    if (st->w_accts[a].rowid == 0) {
        sqlite3_stmt *q = st->w_stmt[S_Q_ACCT_ROWID];
        sqlite3_bind_text(q, 1, st->accts[a].name, -1, SQLITE_STATIC);
        if (s_step_learn(st, q, &st->w_accts[a], a | S_FRESH_ACCT) != SQLITE_OK) {
            return SQLITE_ERROR;
        }
    }
    *rowid = st->w_accts[a].rowid;
    return SQLITE_OK;
}

static int s_key_upsert(s_store_t *st, uint32_t k)
{
    sqlite3_stmt *q = st->w_stmt[S_Q_KEY];
    s_wrow_t *w = &st->w_keys[k];
    sqlite3_bind_text(q, 1, st->keys[k].hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, st->accts[w->acct].name, -1, SQLITE_STATIC);
    for (int j = 0; j < S_KROW_N; j++) {
        sqlite3_bind_int64(q, 3 + j, w->row[j]);
    }
    return s_step_learn(st, q, w, k);
}

/* Adds one reservation change to the journal row being filled. A
 * reservation's key changed in the same batch, so its row (and rowid) was
 * written just before. */
static int s_log_add(s_store_t *st, const s_change_t *c)
{
    int rc = SQLITE_OK;
    if (c->kind == S_CH_RESV_PUT) {
        int64_t acct = 0;
        if ((st->w_keys[c->key].rowid == 0 && (rc = s_key_upsert(st, c->key)) != SQLITE_OK) ||
            (rc = s_acct_rowid(st, c->acct, &acct)) != SQLITE_OK) {
            return rc;
        }
        const eng_journal_put_t r = {.decision = c->decision,
                                     .key_rowid = st->w_keys[c->key].rowid,
                                     .acct_rowid = acct,
                                     .amount_pd = c->amount_pd,
                                     .day = c->day,
                                     .expires_ms = c->expires_ms,
                                     .free_model = c->free_model};
        st->nw_puts_bytes +=
            eng_journal_put_write(st->w_puts + st->nw_puts_bytes, &st->w_last_put, &r);
        st->w_last_put = r;
        st->nw_puts++;
    } else {
        st->nw_dels_bytes +=
            eng_journal_end_write(st->w_dels + st->nw_dels_bytes, st->w_last_end, c->decision);
        st->w_last_end = c->decision;
        st->nw_dels++;
    }
    if (c->expires_ms > st->w_until_ms) {
        st->w_until_ms = c->expires_ms;
    }
    if (st->nw_puts == S_LOG_CHUNK || st->nw_dels == S_LOG_CHUNK) {
        rc = s_log_flush(st);
    }
    return rc;
}

/* Deletes the journal rows whose reservations have all ended: those that
 * expire before the last expiry pass (which ended every one due), as a
 * prefix. The journal holds about one hold's worth of rows. Due with
 * nothing else to write too (expiries write nothing), at the next wake of
 * the writer. */
static bool s_prune_due(const s_store_t *st)
{
    return atomic_load_explicit(&st->expired_ms, memory_order_relaxed) - st->w_pruned_ms >=
           S_PRUNE_MS;
}

static int s_log_prune(s_store_t *st)
{
    if (!s_prune_due(st)) {
        return SQLITE_OK;
    }
    int64_t upto = atomic_load_explicit(&st->expired_ms, memory_order_relaxed);
    st->w_pruned_ms = upto;
    sqlite3_bind_int64(st->w_stmt[S_Q_PRUNE], 1, upto);
    return s_step(st->w_stmt[S_Q_PRUNE]);
}

static int s_prepare(s_store_t *st)
{
    int rc = SQLITE_OK;
    for (int i = 0; rc == SQLITE_OK && i < S_Q_N; i++) {
        if (!st->w_stmt[i]) {
            rc = sqlite3_prepare_v2(st->db, s_sqls[i], -1, &st->w_stmt[i], NULL);
        }
    }
    return rc;
}

/* One batch in one transaction: the rows folded so far, the reservation
 * changes [tail, upto) as journal rows, and `pos` as the ring file's first
 * entry the database lacks (upto, but for the replay of an old ring into
 * a new one's epoch). Names are read from memory without mu: an account's
 * or key's name is written once, before the first entry naming it is
 * published, and never changes or moves. */
/* A commit's rows, in a transaction begun (s_prepare done): the dirty
 * accounts and keys, the journal of [tail, upto), the prune, and the
 * ring's row at pos. */
static int s_commit_rows(s_store_t *st, uint64_t upto, uint64_t pos)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = st->w_stmt[S_Q_ACCT];
    for (uint32_t i = 0; rc == SQLITE_OK && i < st->nw_dirty_accts; i++) {
        s_wrow_t *w = &st->w_accts[st->w_dirty_accts[i]];
        sqlite3_bind_text(q, 1, st->accts[st->w_dirty_accts[i]].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, w->row[0]);
        sqlite3_bind_int64(q, 3, w->row[1]);
        rc = s_step_learn(st, q, w, st->w_dirty_accts[i] | S_FRESH_ACCT);
    }
    for (uint32_t i = 0; rc == SQLITE_OK && i < st->nw_dirty_keys; i++) {
        rc = s_key_upsert(st, st->w_dirty_keys[i]);
    }
    uint64_t from = atomic_load_explicit(&st->tail, memory_order_relaxed);
    s_log_reset(st);
    for (uint64_t p = from; rc == SQLITE_OK && p < upto; p++) {
        const s_change_t *c = &st->ring[p & (S_RING - 1)];
        if (c->kind == S_CH_RESV_PUT || c->kind == S_CH_RESV_DEL) {
            rc = s_log_add(st, c);
        }
    }
    if (rc == SQLITE_OK) {
        rc = s_log_flush(st);
    }
    if (rc == SQLITE_OK) {
        rc = s_log_prune(st);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st->w_stmt[S_Q_RING], 1, (int64_t)st->epoch);
        sqlite3_bind_int64(st->w_stmt[S_Q_RING], 2, (int64_t)pos);
        sqlite3_bind_text(st->w_stmt[S_Q_RING], 3, st->boot, -1, SQLITE_STATIC);
        rc = s_step(st->w_stmt[S_Q_RING]);
    }
    return rc;
}

/* The writer's commit of [tail, upto): the database then lacks the ring
 * from upto on. */
static int s_commit(s_store_t *st, uint64_t upto)
{
    int rc = s_prepare(st);
    if (rc == SQLITE_OK) {
        rc = s_step(st->w_stmt[S_Q_BEGIN]);
    }
    if (rc == SQLITE_OK) {
        rc = s_commit_rows(st, upto, upto);
    }
    if (rc == SQLITE_OK) {
        rc = s_step(st->w_stmt[S_Q_COMMIT]);
    }
    if (rc != SQLITE_OK) {
        pthread_mutex_lock(&st->w_mu);
        snprintf(st->fail_msg, sizeof st->fail_msg, "%s: %s", st->path, sqlite3_errmsg(st->db));
        pthread_mutex_unlock(&st->w_mu);
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        /* Rows the rolled-back transaction inserted do not exist: learn
         * their rowids again. The rows stay dirty and the entries in the
         * ring: the next batch retries. */
        for (uint32_t i = 0; i < st->nw_fresh; i++) {
            uint32_t f = st->w_fresh[i];
            (f & S_FRESH_ACCT ? &st->w_accts[f & ~S_FRESH_ACCT] : &st->w_keys[f])->rowid = 0;
        }
        st->nw_fresh = 0;
        return -1;
    }
    for (uint32_t i = 0; i < st->nw_dirty_accts; i++) {
        st->w_accts[st->w_dirty_accts[i]].dirty = false;
    }
    for (uint32_t i = 0; i < st->nw_dirty_keys; i++) {
        st->w_keys[st->w_dirty_keys[i]].dirty = false;
    }
    st->nw_dirty_accts = st->nw_dirty_keys = st->nw_fresh = 0;
    return 0;
}

/* From schema 1 (a row per reservation) or 2 (the journal's fixed
 * records): the reservations in flight, as loaded, are written as a
 * journal row of schema 3's records, in the transaction that sets the new
 * version; schema 2's rows go. From 3 (no ring row, which 4 adds: an
 * engine before it, given a file that had one, would have ignored its
 * ring and let the next one replay stale rows) and a new file (0): only
 * the version. */
static int s_upgrade(s_store_t *st, int version, char *err, size_t errlen)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", S_SCHEMA);
    int rc = s_prepare(st) == SQLITE_OK && s_exec(st, "BEGIN IMMEDIATE", err, errlen) == 0
                 ? SQLITE_OK
                 : SQLITE_ERROR;
    s_log_reset(st);
    if (rc == SQLITE_OK && version == 2) {
        rc = sqlite3_exec(st->db, "DELETE FROM resv_log", NULL, NULL, NULL);
    }
    /* Schema 3's journal is already schema 4's (4 adds the ring row). */
    for (uint32_t r = version < 3 ? st->resv_head : S_NIL; rc == SQLITE_OK && r != S_NIL;
         r = st->resv[r].next) {
        const s_resv_t *e = &st->resv[r];
        s_change_t c = {.kind = S_CH_RESV_PUT,
                        .free_model = e->free_model,
                        .key = e->key,
                        .acct = e->acct,
                        .decision = e->decision,
                        .expires_ms = e->expires_ms,
                        .amount_pd = e->amount_pd,
                        .day = e->day};
        rc = s_log_add(st, &c);
    }
    if (rc == SQLITE_OK) {
        rc = s_log_flush(st);
    }
    if (rc != SQLITE_OK ||
        (version == 1 && s_exec(st, "DROP TABLE reservations", err, errlen) < 0) ||
        s_exec(st, sql, err, errlen) < 0 || s_exec(st, "COMMIT", err, errlen) < 0) {
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "%s: upgrading from schema %d: %s", st->path, version,
                     sqlite3_errmsg(st->db));
        }
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    st->nw_fresh = 0;
    return 0;
}

/* Sleeps (under w_mu) until there is something to commit, or commits to
 * sync once S_SYNC_MS is up, then lets a batch gather for S_BATCH_MS unless
 * someone waits for it or it reaches S_EARLY changes. True when someone waits (or the sync is due):
 * the batch is synced to disk once committed. */
static bool s_writer_wait(s_store_t *st)
{
    for (;;) {
        if (st->stopping || st->urgent ||
            atomic_load_explicit(&st->head, memory_order_seq_cst) !=
                atomic_load_explicit(&st->tail, memory_order_relaxed)) {
            break;
        }
        /* Say we sleep, then look again: a change published meanwhile is
         * seen here, or its producer sees us asleep and wakes us. */
        atomic_store_explicit(&st->writer_idle, true, memory_order_seq_cst);
        if (atomic_load_explicit(&st->head, memory_order_seq_cst) !=
            atomic_load_explicit(&st->tail, memory_order_relaxed)) {
            break;
        }
        if (st->durable < atomic_load_explicit(&st->tail, memory_order_relaxed)) {
            struct timespec due = eng_abstime_in_ms(S_SYNC_MS);
            if (pthread_cond_timedwait(&st->cv_work, &st->w_mu, &due) == ETIMEDOUT) {
                st->urgent = true; /* commits not synced yet: sync them now */
            }
        } else {
            pthread_cond_wait(&st->cv_work, &st->w_mu);
        }
    }
    atomic_store_explicit(&st->writer_idle, false, memory_order_seq_cst);
    if (!st->urgent && !st->stopping) {
        struct timespec until = eng_abstime_in_ms(S_BATCH_MS);
        while (!st->urgent && !st->stopping &&
               atomic_load_explicit(&st->head, memory_order_acquire) -
                       atomic_load_explicit(&st->tail, memory_order_relaxed) <
                   S_EARLY &&
               pthread_cond_timedwait(&st->cv_work, &st->w_mu, &until) != ETIMEDOUT) {
        }
    }
    bool urgent = st->urgent;
    st->urgent = false;
    return urgent;
}

/* Makes every commit so far durable: an fdatasync of the WAL, where each
 * commit is written (synchronous=NORMAL writes it without a sync, which a
 * crash of the process cannot undo but a power loss can). Writer only. */
static int s_sync_wal(s_store_t *st)
{
    if (st->wal_fd < 0) {
        char wal[4096];
        snprintf(wal, sizeof wal, "%s-wal", st->path);
        st->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    }
    if (st->wal_fd < 0 || fdatasync(st->wal_fd) != 0) {
        pthread_mutex_lock(&st->w_mu);
        snprintf(st->fail_msg, sizeof st->fail_msg, "%s-wal: cannot sync: %s", st->path,
                 strerror(errno));
        pthread_mutex_unlock(&st->w_mu);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &st->w_synced);
    return 0;
}

/* Is a sync of the WAL due (S_SYNC_MS since the last)? */
static bool s_sync_due(const s_store_t *st)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(now.tv_sec - st->w_synced.tv_sec) * 1000 +
                 (now.tv_nsec - st->w_synced.tv_nsec) / 1000000;
    return ms >= S_SYNC_MS;
}

static void *s_writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "hpp-ledger-wr"); /* as top -H, perf and /proc show it */
    s_store_t *st = arg;
    pthread_mutex_lock(&st->w_mu);
    uint64_t durable = 0; /* the writer's copy of st->durable */
    for (;;) {
        bool urgent = s_writer_wait(st);
        bool stopping = st->stopping;
        pthread_mutex_unlock(&st->w_mu);
        uint64_t upto = atomic_load_explicit(&st->head, memory_order_acquire);
        s_fold(st, upto);
        bool work = upto != atomic_load_explicit(&st->tail, memory_order_relaxed) ||
                    st->nw_dirty_accts || st->nw_dirty_keys || s_prune_due(st);
        int rc = work ? s_commit(st, upto) : 0;
        uint64_t done = rc == 0 ? upto : atomic_load_explicit(&st->tail, memory_order_relaxed);
        int src = 0;
        if (durable < done && (urgent || stopping || s_sync_due(st))) {
            src = s_sync_wal(st);
            durable = src == 0 ? done : durable;
        }
        pthread_mutex_lock(&st->w_mu);
        if (rc == 0) {
            atomic_store_explicit(&st->tail, upto, memory_order_release);
        }
        st->durable = durable;
        st->failed = rc != 0 || src != 0;
        pthread_cond_broadcast(&st->cv_done);
        uint64_t backlog = atomic_load_explicit(&st->head, memory_order_acquire) -
                           atomic_load_explicit(&st->tail, memory_order_relaxed);
        if (backlog >= S_BOOST_AT) {
            s_boost(st);
        } else if (backlog < S_IDLE_BELOW && !st->urgent &&
                   atomic_load_explicit(&st->boosted, memory_order_relaxed)) {
            s_unboost(st); /* drained: back to idle time */
        }
        if (stopping &&
            (rc != 0 || upto == atomic_load_explicit(&st->head, memory_order_acquire))) {
            break; /* all written, or the disk refuses: give up at exit */
        }
        if (rc != 0) {
            /* Do not spin on a failing disk. */
            pthread_mutex_unlock(&st->w_mu);
            usleep(100 * 1000);
            pthread_mutex_lock(&st->w_mu);
        }
    }
    pthread_mutex_unlock(&st->w_mu);
    return NULL;
}

/* The ring file ----------------------------------------------------------- */

/* Where ring files go: --ledger-ring-dir, else the service's runtime
 * directory (systemd's RuntimeDirectory=, a tmpfs kept across restarts),
 * else /dev/shm. */
static const char *s_ring_dir(const eng_store_cfg_t *cfg)
{
    const char *env = getenv("RUNTIME_DIRECTORY");
    return cfg->ring_dir                               ? cfg->ring_dir
           : env && env[0] == '/' && !strchr(env, ':') ? env /* one directory only */
                                                       : "/dev/shm";
}

static const eng_ring_layout_t s_layout = {
    .name_len = S_NAME, .max_accts = S_MAX_ACCOUNTS, .max_keys = S_MAX_KEYS, .entries = S_RING};

/* The database's ring row: the epoch and first entry it lacks. False when
 * it has none (a new file, or one no engine with a ring has opened). */
static int s_ring_row(s_store_t *st, uint64_t *epoch, uint64_t *pos, char boot[40], char *err,
                      size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int step = sqlite3_prepare_v2(st->db, "SELECT epoch, pos, boot FROM ring WHERE id = 1", -1, &q,
                                  NULL) == SQLITE_OK
                   ? sqlite3_step(q)
                   : SQLITE_ERROR;
    if (step == SQLITE_ROW) {
        *epoch = (uint64_t)sqlite3_column_int64(q, 0);
        *pos = (uint64_t)sqlite3_column_int64(q, 1);
        const unsigned char *b = sqlite3_column_text(q, 2);
        snprintf(boot, 40, "%s", b ? (const char *)b : "");
    } else if (step != SQLITE_DONE) {
        snprintf(err, errlen, "--ledger %s: reading its ring row: %s", st->path,
                 sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(q);
    return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
}

/* Schema 3 files made by an engine with a ring before the boot column:
 * the column added (a check of a file adds nothing: s_ring_row then reads
 * the row without it). */
static int s_ring_columns(s_store_t *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    bool has = sqlite3_prepare_v2(st->db, "SELECT boot FROM ring", -1, &q, NULL) == SQLITE_OK;
    sqlite3_finalize(q);
    return has ? 0
               : s_exec(st, "ALTER TABLE ring ADD COLUMN boot TEXT NOT NULL DEFAULT ''", err,
                        errlen);
}

/* Writes what the old ring holds past the database's position, in the
 * transaction s_ring_open began: the changes a process published and did
 * not commit before it died. The ring's names stand in for memory's (the
 * rows name accounts and keys by index), then memory is emptied again for
 * the load, which reads them inside the same transaction: they are
 * committed only if the file then loads (s_ring_start). The same rows name
 * the new epoch at position 0. */
static int s_replay(s_store_t *st, eng_ringfile_t *old, uint64_t from, char *err, size_t errlen)
{
    uint32_t na = eng_ringfile_naccts(old), nk = eng_ringfile_nkeys(old);
    for (uint32_t i = 0; i < na; i++) {
        snprintf(st->accts[i].name, S_NAME, "%s", eng_ringfile_acct_name(old, i));
    }
    for (uint32_t i = 0; i < nk; i++) {
        snprintf(st->keys[i].hash, S_NAME, "%s", eng_ringfile_key_name(old, i));
    }
    uint64_t head = eng_ringfile_checked_head(old); /* the checked values, not the live ones */
    st->ring = eng_ringfile_entries(old);
    st->w_applied = from;
    atomic_store_explicit(&st->tail, from, memory_order_relaxed);
    s_fold(st, head);
    int rc = s_prepare(st);
    if (rc == SQLITE_OK) {
        rc = s_commit_rows(st, head, 0);
    }
    memset(st->accts, 0, sizeof *st->accts * na);
    memset(st->keys, 0, sizeof *st->keys * nk);
    memset(st->w_accts, 0, sizeof *st->w_accts * S_MAX_ACCOUNTS);
    memset(st->w_keys, 0, sizeof *st->w_keys * S_MAX_KEYS);
    st->nw_dirty_accts = st->nw_dirty_keys = st->nw_fresh = 0;
    st->w_applied = 0;
    atomic_store_explicit(&st->tail, 0, memory_order_relaxed);
    st->ring = NULL;
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "--ledger %s: writing what its ring %s holds: %s", st->path,
                 st->ring_path, sqlite3_errmsg(st->db));
        return -1;
    }
    st->replayed = head - from;
    return 0;
}

/* Names the new epoch in the database, at position 0, with nothing to
 * replay (in the transaction s_ring_open began). Prepared alone: the load, next, is what reports a
 * damaged table. */
static int s_name_epoch(s_store_t *st, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(st->db, s_sqls[S_Q_RING], -1, &q, NULL) == SQLITE_OK ? 0 : -1;
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, (int64_t)st->epoch);
        sqlite3_bind_int64(q, 2, 0);
        sqlite3_bind_text(q, 3, st->boot, -1, SQLITE_STATIC);
        rc = s_step(q) == SQLITE_OK ? 0 : -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "--ledger %s: %s", st->path, sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(q);
    return rc;
}

/* A ring the database waits for that is missing (this boot, no file) or
 * damaged: refused, or with --ledger-ring-lost started without it, said
 * loudly, the damaged file kept as RING.bad. */
static int s_ring_lost(s_store_t *st, const eng_store_cfg_t *cfg, bool missing, int found,
                       const char *ring_path, const char *why, char *err, size_t errlen)
{
    bool check = cfg->check;
    if ((missing || found == ENG_RING_BAD) && !cfg->ring_lost) {
        if (missing) {
            snprintf(err, errlen,
                     "--ledger %s: the last run stopped without closing it, and its ring is not "
                     "at %s: start with the --ledger-ring-dir it used (its changes since its "
                     "last commit are there), or with --ledger-ring-lost to start without them",
                     st->path, ring_path);
        } else {
            snprintf(err, errlen,
                     "--ledger %s: its ring %s: %s (--ledger-ring-lost starts from the state "
                     "file alone: the changes it holds past the state file are then lost)",
                     st->path, ring_path, why);
        }
        return -1;
    }
    if (missing && !check) {
        eng_log(ENG_LOG_WARN, "ledger",
                "%s: started without the last run's ring (--ledger-ring-lost): not found at %s; "
                "its changes since its last commit are lost",
                st->path, ring_path);
    } else if (found == ENG_RING_BAD && !check) {
        char bad[PATH_MAX + 72];
        snprintf(bad, sizeof bad, "%s.bad", ring_path);
        eng_log(ENG_LOG_WARN, "ledger",
                "%s: started without the last run's ring (--ledger-ring-lost): %s: %s; its "
                "changes since its last commit are lost; %s %s",
                st->path, ring_path, why,
                rename(ring_path, bad) == 0 ? "the ring is kept as" : "cannot keep the ring as",
                bad);
    }
    return 0;
}

/* The ring file for this open, in three steps. Here: a transaction that
 * names a new epoch and writes what the ring a dead process left holds,
 * when it goes with the database (s_replay). The load then reads inside
 * it, and s_ring_start commits it and makes the new ring (a crash in
 * between leaves a ring the database has moved past: stale, ignored). A
 * state file that does not load is left as it was, and so is the ring. A
 * check only reads the ring: it commits nothing and makes no ring. */
static int s_ring_open(s_store_t *st, const eng_store_cfg_t *cfg, char *err, size_t errlen)
{
    const char *dir = s_ring_dir(cfg);
    bool check = cfg->check;
    char *real = st->real, *ring_path = st->ring_path, why[256] = "";
    if (!realpath(st->path, real)) {
        snprintf(err, errlen, "--ledger %s: %s", st->path, strerror(errno));
        return -1;
    }
    if (!check && s_ring_columns(st, err, errlen) < 0) {
        return -1;
    }
    if (eng_ringfile_path(dir, real, ring_path, sizeof st->ring_path, err, errlen) < 0) {
        return -1;
    }
    eng_ringfile_boot_id(st->boot);
    eng_ring_want_t want = {.layout = s_layout, .boot_id = st->boot, .state_path = real};
    eng_ringfile_t *old = NULL;
    char row_boot[40] = "";
    int row = s_ring_row(st, &want.epoch, &want.from, row_boot, err, errlen);
    if (row < 0) {
        return -1;
    }
    /* Epoch 0: closed cleanly, no ring left. */
    int found = row && want.epoch ? eng_ringfile_open(ring_path, &want, &old, why, sizeof why)
                                  : ENG_RING_ABSENT;
    /* The last run died in this boot, so its ring is somewhere: in
     * another --ledger-ring-dir, most likely. Starting without it would
     * lose its changes without a word. */
    bool missing = found == ENG_RING_ABSENT && row && want.epoch && st->boot[0] &&
                   strcmp(row_boot, st->boot) == 0;
    if (s_ring_lost(st, cfg, missing, found, ring_path, why, err, errlen) < 0) {
        eng_ringfile_destroy(&old, false);
        return -1;
    }
    if (check) {
        if (old) {
            eng_log(ENG_LOG_INFO, "ledger",
                    "%s: its ring %s holds %" PRIu64 " changes the last run did not commit; "
                    "the next start commits them if they load with it",
                    st->path, ring_path, eng_ringfile_checked_head(old) - want.from);
        }
        eng_ringfile_destroy(&old, false);
        return 0;
    }
    if (found == ENG_RING_STALE) {
        eng_log(ENG_LOG_INFO, "ledger", "%s: ring %s not used: %s; replaced", st->path, ring_path,
                why);
    }
    if (getrandom(&st->epoch, sizeof st->epoch, 0) != (ssize_t)sizeof st->epoch) {
        snprintf(err, errlen, "--ledger %s: no random epoch: %s", st->path, strerror(errno));
        eng_ringfile_destroy(&old, false);
        return -1;
    }
    /* Committed after the load (s_ring_start), or rolled back with the
     * old ring left as it is (s_destroy). */
    st->rf_old = old;
    return s_exec(st, "BEGIN IMMEDIATE", err, errlen) < 0 ? -1
           : old ? s_replay(st, old, want.from, err, errlen)
                 : s_name_epoch(st, err, errlen);
}

/* The load, and with the last run's ring to commit, what to do when the
 * two do not load together (a ring another program wrote, say): nothing is
 * committed and the ring stays where it is. */
static int s_load_ring(s_store_t *st, int version, int64_t now_ms, char *err, size_t errlen)
{
    if (s_load(st, version, now_ms, err, errlen) == 0) {
        return 0;
    }
    if (st->rf_old && st->replayed > 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n,
                 " (read with the %" PRIu64 " change%s of its ring %s, none committed, the "
                 "ring kept; if --check, which reads the file without them, passes, they are "
                 "the cause: move the ring aside and start with --ledger-ring-lost)",
                 st->replayed, st->replayed == 1 ? "" : "s", st->ring_path);
    }
    return -1;
}

/* Makes the new ring, for the new epoch, with the names the load made
 * (the entries name them by index). */
static int s_ring_make(s_store_t *st, char *err, size_t errlen)
{
    char why[256] = "";
    st->rf = eng_ringfile_create(st->ring_path, &s_layout, st->boot, st->real, st->epoch, why,
                                 sizeof why);
    if (!st->rf) {
        snprintf(err, errlen, "--ledger %s: its ring: %s", st->path, why);
        return -1;
    }
    for (uint32_t a = 0; a < st->naccts; a++) {
        eng_ringfile_set_acct(st->rf, a, st->accts[a].name);
    }
    for (uint32_t k = 0; k < st->nkeys; k++) {
        eng_ringfile_set_key(st->rf, k, st->keys[k].hash);
    }
    st->ring = eng_ringfile_entries(st->rf);
    st->rf_head = eng_ringfile_head(st->rf);
    return 0;
}

/* After the load: commits the epoch and what the last run's ring held
 * (s_ring_open), and makes the new ring. With no ring to replay, the new
 * one is made first, so that a database naming it never goes without it
 * (the next start in this boot would refuse, the ring missing); a crash
 * before the commit leaves it stale. With one, it is made after: it takes
 * the old one's place, which the commit must not lose first; a crash in
 * between leaves the old one at an epoch the database has moved past
 * (stale). If it cannot be made then, the database is left naming no ring
 * (epoch 0: all is committed and nothing was published since). */
static int s_ring_start(s_store_t *st, const eng_store_cfg_t *cfg, char *err, size_t errlen)
{
    if (cfg->check || (!st->rf_old && s_ring_make(st, err, errlen) < 0) ||
        s_exec(st, "COMMIT", err, errlen) < 0) {
        return cfg->check ? 0 : -1;
    }
    if (st->replayed > 0) {
        eng_log(ENG_LOG_WARN, "ledger",
                "%s: the last run stopped without closing it: %" PRIu64
                " changes it made and had not committed were committed from its ring %s",
                st->path, st->replayed, st->ring_path);
    }
    if (st->rf_old) {
        eng_ringfile_destroy(&st->rf_old, false); /* the new one takes its place */
        if (s_ring_make(st, err, errlen) < 0) {
            sqlite3_exec(st->db, "UPDATE ring SET epoch = 0", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

static void s_destroy(eng_store_t **self_p)
{
    s_store_t *st = (s_store_t *)*self_p;
    if (!st) {
        return;
    }
    *self_p = NULL;
    if (st->writer_started) {
        pthread_mutex_lock(&st->w_mu);
        st->stopping = true;
        pthread_cond_signal(&st->cv_work);
        pthread_mutex_unlock(&st->w_mu);
        pthread_join(st->writer, NULL);
    }
    /* Everything published is committed: the ring holds nothing the
     * database lacks, and goes, once the database says so (epoch 0: the
     * next open looks for no ring). Else it stays for the next open. */
    if (st->db && !sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL); /* an open that failed (s_ring_open) */
    }
    eng_ringfile_destroy(&st->rf_old, false);
    bool clean = st->rf && !st->failed && atomic_load(&st->tail) == atomic_load(&st->head) &&
                 sqlite3_exec(st->db, "UPDATE ring SET epoch = 0", NULL, NULL, NULL) == SQLITE_OK;
    eng_ringfile_destroy(&st->rf, clean);
    for (int i = 0; i < S_Q_N; i++) {
        sqlite3_finalize(st->w_stmt[i]);
    }
    if (st->wal_fd >= 0) {
        close(st->wal_fd);
    }
    if (st->db) {
        sqlite3_close(st->db);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->w_mu);
    pthread_cond_destroy(&st->cv_work);
    pthread_cond_destroy(&st->cv_done);
    free(st->accts);
    free(st->acct_slots);
    free(st->keys);
    free(st->key_slots);
    free(st->resv);
    free(st->resv_slots);
    free(st->w_keys);
    free(st->w_accts);
    free(st->w_dirty_keys);
    free(st->w_dirty_accts);
    free(st->w_puts);
    free(st->w_dels);
    free(st->w_fresh);
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
    st->resv_slots = malloc(2 * sizeof *st->resv_slots * S_MAX_RESV);
    st->w_keys = calloc(S_MAX_KEYS, sizeof *st->w_keys);
    st->w_accts = calloc(S_MAX_ACCOUNTS, sizeof *st->w_accts);
    st->w_dirty_keys = calloc(S_MAX_KEYS, sizeof *st->w_dirty_keys);
    st->w_dirty_accts = calloc(S_MAX_ACCOUNTS, sizeof *st->w_dirty_accts);
    st->w_puts = malloc((size_t)S_LOG_CHUNK * ENG_JOURNAL_PUT_MAX);
    st->w_dels = malloc((size_t)S_LOG_CHUNK * ENG_JOURNAL_END_MAX);
    st->w_fresh = calloc(S_MAX_KEYS + S_MAX_ACCOUNTS, sizeof *st->w_fresh);
    if (!st->accts || !st->acct_slots || !st->keys || !st->key_slots || !st->resv ||
        !st->resv_slots || !st->w_keys || !st->w_accts || !st->w_dirty_keys || !st->w_dirty_accts ||
        !st->w_puts || !st->w_dels || !st->w_fresh) {
        return false;
    }
    memset(st->acct_slots, 0xff, 2 * sizeof(uint32_t) * S_MAX_ACCOUNTS);
    memset(st->key_slots, 0xff, 2 * sizeof(uint32_t) * S_MAX_KEYS);
    memset(st->resv_slots, 0xff, 2 * sizeof *st->resv_slots * S_MAX_RESV);
    st->resv_free = S_NIL; /* entries are taken from resv_used up first */
    st->resv_head = st->resv_tail = S_NIL;
    return true;
}

eng_store_t *eng_store_sqlite_open(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                   size_t errlen)
{
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
    /* A FIFO or a device would reach SQLite as a "disk I/O error". */
    struct stat sb;
    bool regular = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    close(fd);
    if (!regular) {
        snprintf(err, errlen, "--ledger %s: not a regular file", path);
        return NULL;
    }
    s_store_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "--ledger %s: out of memory", path);
        return NULL;
    }
    st->base.ops = &s_ops;
    st->wal_fd = -1;
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->w_mu, NULL);
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
    /* Before anything reads the file, the only time a page size can be
     * set (a file that exists keeps its own). Each WAL frame is two
     * pwrites whatever its size, and a commit at 20,000 decisions a second
     * dirtied 44 pages of 4 KiB: at 16 KiB it writes 17 frames, and the
     * writer's CPU fell 8% (bench/RESULTS.md, "Fewer pages a commit"). */
    if (s_exec(st, "PRAGMA page_size = 16384", err, errlen) < 0 || s_claim(st, err, errlen) < 0) {
        s_destroy(&base);
        return NULL;
    }
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
        s_unusable(st, err, errlen);
        s_destroy(&base);
        return NULL;
    }
    if (version > S_SCHEMA) {
        snprintf(err, errlen, "--ledger %s: schema version %d is newer than this engine's (%d)",
                 path, version, S_SCHEMA);
        s_destroy(&base);
        return NULL;
    }
    st->version = version == 0 ? S_SCHEMA : version; /* 0: a new file, its journal empty */
    if (cfg->check && version > 0 && version < S_SCHEMA) {
        /* Read as it is: the upgrade is the start's, once the engine that
         * uses the file now has stopped. No writer: a check writes nothing. */
        if (s_load(st, version, cfg->now_ms, err, errlen) < 0) {
            s_destroy(&base);
            return NULL;
        }
        return base;
    }
    if (s_exec(st, "PRAGMA journal_mode = WAL", err, errlen) < 0 ||
        s_exec(st, "PRAGMA synchronous = NORMAL", err, errlen) < 0 ||
        /* Debian builds SQLite with SQLITE_SECURE_DELETE, which zeroes
         * every page freed: the journal rows each commit prunes, which hold
         * no secret (key hashes, amounts). It doubled the pages a commit
         * writes and cost a quarter of the writer's CPU. */
        s_exec(st, "PRAGMA secure_delete = OFF", err, errlen) < 0 ||
        s_exec(st, s_schema, err, errlen) < 0 || s_ring_open(st, cfg, err, errlen) < 0 ||
        s_load_ring(st, version, cfg->now_ms, err, errlen) < 0 ||
        s_ring_start(st, cfg, err, errlen) < 0 ||
        (version < S_SCHEMA && s_upgrade(st, version, err, errlen) < 0)) {
        s_destroy(&base);
        return NULL;
    }
    st->idle_ok = s_idle_ok();
    if (pthread_create(&st->writer, NULL, s_writer_main, st) != 0) {
        snprintf(err, errlen, "--ledger %s: cannot start the writer thread", path);
        s_destroy(&base);
        return NULL;
    }
    st->writer_started = true;
    /* Set here, before any change can raise it (s_boost). */
    s_set_policy(st->writer, st->idle_ok ? SCHED_IDLE : SCHED_BATCH);
    return base;
}
