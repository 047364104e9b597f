/* eng_store.h - where the ledger keeps its money: the store interface.
 *
 * A store holds the state of accounts and keys (balance, spend, the day's
 * counters) and the reservations of decisions not settled yet, and runs
 * the ledger's checks against that state atomically with the reservation,
 * so two engines (or two threads) can never both take the last dollar.
 * Two implementations: the embedded one (eng_store_sqlite.h: state in
 * memory, persisted to SQLite by a writer thread) and Redis
 * (eng_store_redis.h: server-side scripts, shared by several engines).
 *
 * The store does not read the key file: the engine's ledger (eng_ledger.h)
 * hands it each key's limits (eng_store_key_t) with every call, so a key
 * file reload changes limits at once, and the store keeps only counters.
 *
 * Money is integer picodollars (1e-12 USD) everywhere; a day is the number
 * of the ledger's day (eng_ledger.h: floor((unix_seconds + offset) / 86400)).
 *
 * Decision ids: the engine gives every store the wire `decision_id`, which
 * with a ledger on carries the engine's node id in its top 16 bits
 * (eng_ledger.h), so ids of engines sharing one store never collide and a
 * report may reach any engine of the deployment.
 *
 * Thread safety: every function may be called from any thread at once;
 * each store says in its own file what synchronizes what. Calls never
 * allocate on the reserve path of the embedded store.
 *
 * Errors: functions return an hpp_status_t: HPP_OK, one of the ledger's
 * refusals (reserve only), or HPP_E_LEDGER_UNAVAILABLE with `err` saying
 * why (the store cannot be reached, a write failed).
 */
#ifndef ENG_STORE_H
#define ENG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpp_request.h"

#define ENG_STORE_NONE (-1) /* a limit not set */

/* One key as the store sees it: its names and its limits. Strings are
 * NUL-terminated and live as long as the call. */
typedef struct {
    const char *hash;                   /* "sha256:<64 hex>" */
    const char *account;                /* the account it spends */
    int64_t limit_pd;                   /* lifetime limit, ENG_STORE_NONE = none */
    int64_t daily_pd;                   /* spend per day, ENG_STORE_NONE = none */
    int64_t daily_requests;             /* requests per day (all models), ENG_STORE_NONE = none */
    int64_t free_daily_requests;        /* requests per day to $0 models, ENG_STORE_NONE = none */
    int64_t free_daily_requests_funded; /* the same while the account's balance is > 0 */
} eng_store_key_t;

/* One key's and its account's state. The day's counters are those of
 * `day` (zero when the stored day is older). */
typedef struct {
    int64_t balance_pd;        /* the account's balance: top-ups less settled charges */
    int64_t acct_reserved_pd;  /* reserved by every key of the account */
    int64_t spent_pd;          /* the key's settled charges, ever */
    int64_t reserved_pd;       /* the key's reservations in flight */
    int64_t requests;          /* the key's settled requests, ever */
    int64_t prompt_tokens;     /* the key's settled tokens, ever */
    int64_t completion_tokens; /* ditto */
    int64_t day;               /* the day of the four below */
    int64_t day_spent_pd;      /* settled that day */
    int64_t day_reserved_pd;   /* reserved that day, not settled yet */
    int64_t day_requests;      /* requests decided that day (counted at reservation) */
    int64_t day_free_requests; /* of which to $0 models */
} eng_store_state_t;

/* The least of what the key may still spend: balance less the account's
 * reservations, the limit's remaining, the day's remaining (each only
 * when it applies). INT64_MAX when nothing limits it but the balance
 * cannot be negative, so the balance always applies. */
int64_t eng_store_remaining(const eng_store_key_t *key, const eng_store_state_t *st);

/* One account, as the `accounts` listing gives it. */
typedef struct {
    char name[72];       /* account name */
    int64_t balance_pd;  /* balance */
    int64_t reserved_pd; /* reservations of its keys */
    int64_t spent_pd;    /* settled charges of its keys, ever */
} eng_store_account_t;

/* Called once per account; return false to stop. */
typedef bool (*eng_store_account_fn)(void *arg, const eng_store_account_t *acct);

/* What a reservation is, for reserve. */
typedef struct {
    uint64_t decision;  /* the wire decision id */
    int64_t amount_pd;  /* the estimate to reserve, >= 0 */
    bool free_model;    /* a $0 model: the money checks do not apply, the free counts do */
    int64_t day;        /* the ledger's day now */
    int64_t now_ms;     /* Unix milliseconds now */
    int64_t expires_ms; /* released unless settled by then (Unix milliseconds) */
} eng_store_resv_t;

/* What a settlement is, for settle. */
typedef struct {
    uint64_t decision;         /* the wire decision id */
    int64_t cost_pd;           /* the real cost, >= 0; -1: the reservation's estimate */
    int64_t prompt_tokens;     /* usage of the attempt that answered, >= 0 */
    int64_t completion_tokens; /* ditto */
    int64_t now_ms;            /* Unix milliseconds now */
} eng_store_settle_t;

typedef struct eng_store eng_store_t;

typedef struct {
    const char *name; /* "sqlite", "redis" */
    /* Atomically: runs the checks (key remaining > 0 ... see eng_ledger.h
     * for the order; for a paid model the account's balance less its
     * reservations > 0, the key's remaining > 0, the day's spend and
     * reservations < daily_pd, the day's requests < daily_requests; for a
     * free model the day's requests and the free count against
     * free_daily_requests, or free_daily_requests_funded while the balance
     * is > 0) and, when every one passes, reserves r->amount_pd under
     * r->decision and counts the request in the day. Returns HPP_OK, the
     * failed check's status (nothing reserved or counted), or
     * HPP_E_LEDGER_UNAVAILABLE. `state` (may be NULL): the state after the
     * reservation, or at the refusal. A decision reserved twice is
     * HPP_E_INTERNAL. */
    int (*reserve)(eng_store_t *self, const eng_store_key_t *key, const eng_store_resv_t *r,
                   eng_store_state_t *state, char *err, size_t errlen);
    /* Settles s->decision at s->cost_pd: the account's balance and the
     * key's spend take the cost, the reservation goes, tokens and requests
     * are counted. Once: a second call, or an unknown or released
     * decision, changes nothing and sets *settled = false. HPP_OK either
     * way. Durable (survives a crash of the engine) once `sync` returned
     * after it. */
    int (*settle)(eng_store_t *self, const eng_store_settle_t *s, bool *settled, char *err,
                  size_t errlen);
    /* Releases the reservation of `decision` with nothing charged (the call
     * had no answer); an unknown decision is a no-op (*released = false). */
    int (*release)(eng_store_t *self, uint64_t decision, bool *released, char *err, size_t errlen);
    /* Releases every reservation whose expires_ms <= now_ms; *n (may be
     * NULL) gets how many. Called about once a second by the ledger. */
    int (*expire)(eng_store_t *self, int64_t now_ms, uint64_t *n, char *err, size_t errlen);
    /* The key's state as of `day` (zeros for a key never seen). */
    int (*read)(eng_store_t *self, const eng_store_key_t *key, int64_t day, eng_store_state_t *out,
                char *err, size_t errlen);
    /* Top-up (absolute = false: balance += delta_pd) or set_balance
     * (absolute: balance = delta_pd) of an account, created when new;
     * *balance_pd gets the new balance. Durable when it returns. */
    int (*adjust)(eng_store_t *self, const char *account, int64_t delta_pd, bool absolute,
                  int64_t *balance_pd, char *err, size_t errlen);
    /* Calls fn for every account (in no particular order). */
    int (*accounts)(eng_store_t *self, eng_store_account_fn fn, void *arg, char *err,
                    size_t errlen);
    /* Returns once every settle and adjust made before the call is
     * durable, or after timeout_ms (then HPP_E_LEDGER_UNAVAILABLE). A
     * store whose writes are durable when they return does nothing. */
    int (*sync)(eng_store_t *self, int timeout_ms, char *err, size_t errlen);
    void (*destroy)(eng_store_t **self_p);
} eng_store_ops_t;

/* Every store starts with this (the implementations' structs embed it first). */
struct eng_store {
    const eng_store_ops_t *ops;
};

/* How to open a store. */
typedef struct {
    const char *secret_file; /* a password (0600 file) for a store that needs one, NULL = none */
    uint64_t node;           /* this engine's node id (1..65535) */
    const char *ring_dir;    /* the embedded store's ring file's directory, NULL = the default */
    bool ring_lost;          /* start though the last run's ring is missing or damaged */
    int64_t now_ms;          /* Unix milliseconds now (reservations older than ... are gone) */
    bool check; /* --check: read the store to validate it; a file of an older schema is not
                 * upgraded (a check changes no schema: the start does) */
} eng_store_cfg_t;

/* Opens the store a `--ledger` spec names: "sqlite:PATH", "redis://HOST:PORT",
 * "redis+unix:PATH". NULL with `err` saying why (unknown scheme, cannot
 * open, wrong file). */
eng_store_t *eng_store_open(const char *spec, const eng_store_cfg_t *cfg, char *err, size_t errlen);

/* True when the store of `spec` is held by an engine running on it, so that
 * nothing else can read it: the embedded store's file while an engine has
 * it open. A store that several engines share (Redis) never is. For
 * --check, which cannot read such a store and says so. */
bool eng_store_in_use(const char *spec);

/* The opener of one scheme (the prefix of a spec up to and including ':'). */
typedef eng_store_t *(*eng_store_open_fn)(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                          size_t errlen);

/* Thin wrappers, so callers read as functions. */
static inline void eng_store_destroy(eng_store_t **self_p)
{
    if (self_p && *self_p) {
        (*self_p)->ops->destroy(self_p);
    }
}

#endif
