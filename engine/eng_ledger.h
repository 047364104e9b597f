/* eng_ledger.h - the engine's ledger: who is calling (the key table), what
 * they may still spend (the store), and what a decision reserves.
 *
 * A route with a `key` (the gateway's SHA-256 of the caller's API key)
 * runs these checks, in this order; the first that fails answers and
 * nothing is reserved or charged:
 *   1. the key is in the key file and not revoked          unknown_key (401)
 *   2. the key's group may use the model (the policy)       model_not_allowed (403)
 *      (the resolver's errors, unknown_model ..., come here too)
 *   3. paid model: the account's balance less its
 *      reservations is > 0                                   insufficient_balance (402)
 *   4. paid model: the key's limit less spend and
 *      reservations is > 0                                   key_limit_reached (402)
 *   5. paid model: the day's spend and reservations are
 *      under daily_usd                                      daily_limit_reached (429)
 *   6. the day's requests are under daily_requests, and for
 *      a $0 model the day's free requests under
 *      free_daily_requests (free_daily_requests_funded
 *      while the account's balance is > 0)                  daily_limit_reached (429)
 * When all pass, the decision's estimate is reserved under its decision id
 * until a report settles it (eng_ledger_report) or --ledger-hold passes.
 *
 * Decision ids with a ledger: the engine's node id (1..65535, random at
 * start unless --ledger-node) in the top 16 bits, the engine's own
 * sequence in the low 48, which starts from the clock (so a restarted
 * engine with a fixed node does not reuse the ids of reservations it
 * persisted before). Engines sharing one store never collide (distinct
 * nodes), and a report may reach any of them.
 *
 * Threads: every function may be called from any answering thread at once.
 * The key table is immutable and reference-counted (the snapshot holds one
 * reference, read under the snapshot's hazard slot); counters are atomics;
 * the store synchronizes its own state (eng_store.h). Nothing here
 * allocates on the decision path (eng_ledger_begin, eng_ledger_reserve).
 */
#ifndef ENG_LEDGER_H
#define ENG_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "eng_decision.h"
#include "eng_policy.h"
#include "eng_store.h"
#include "hpp_apikeys.h"
#include "proto.h"

#define ENG_LEDGER_HOLD_S 300 /* --ledger-hold default */
#define ENG_LEDGER_MAX_HOLD_S 86400

typedef struct {
    const char *store;    /* --ledger spec, NULL = no money (keys only, or nothing) */
    const char *keys;     /* --keys FILE, NULL = none */
    const char *secret;   /* --ledger-secret FILE, NULL = none */
    const char *ring_dir; /* --ledger-ring-dir DIR, NULL = the store's default */
    bool ring_lost;       /* --ledger-ring-lost: start without the last run's ring */
    int hold_s;           /* --ledger-hold: 1..86400 */
    bool optional;        /* --ledger-optional: a route without `key` is served unchecked */
    int day_offset_h;     /* --ledger-day-offset: -12..14 */
    uint64_t node;        /* --ledger-node: 1..65535, 0 = random */
    bool check; /* --check: the store opened to validate it, changed as little as can be */
} eng_ledger_cfg_t;

typedef struct eng_ledger eng_ledger_t;

/* An immutable key table with a reference count. */
typedef struct eng_ledger_keys eng_ledger_keys_t;

/* Opens the store (when cfg->store) and starts the expiry thread. NULL
 * with `err` saying why. */
eng_ledger_t *eng_ledger_new(const eng_ledger_cfg_t *cfg, char *err, size_t errlen);
void eng_ledger_destroy(eng_ledger_t **self_p);

/* Reads cfg->keys into a new table (one reference); NULL with `err`. */
eng_ledger_keys_t *eng_ledger_keys_load(const eng_ledger_t *self, char *err, size_t errlen);
/* Another reference to `keys`. */
eng_ledger_keys_t *eng_ledger_keys_ref(eng_ledger_keys_t *keys);
/* Lets go of one reference (void * so a snapshot can hold it). */
void eng_ledger_keys_release(void *keys);
size_t eng_ledger_keys_count(const eng_ledger_keys_t *keys);

/* This engine's node id, and a decision id mixing it with `local`. */
uint64_t eng_ledger_node(const eng_ledger_t *self);
uint64_t eng_ledger_decision_id(const eng_ledger_t *self, uint64_t local);
/* Where the local sequence starts (from the clock, see above). */
uint64_t eng_ledger_id_base(void);

/* The ledger's part of one route or explain, on the caller's stack. */
typedef struct {
    bool checked;            /* a key was given: the checks and the reservation apply */
    const hpp_apikey_t *key; /* the key's entry, NULL when none was given */
    eng_store_key_t skey;    /* the key as the store sees it */
    hpp_features_t features; /* the request's, the key's group in place of its own */
    int64_t day;             /* the ledger's day */
    int64_t remaining_pd;    /* before the decision (when read), else INT64_MAX */
    bool has_remaining;      /* remaining_pd was read */
} eng_ledger_call_t;

/* Step 1: the key. Fills `c` (c->features is what to resolve); when the
 * key's group has step_down thresholds in `pol` (may be NULL), also reads
 * what the key may still spend (c->remaining_pd, for
 * eng_resolve_remaining). Returns HPP_OK, HPP_E_UNKNOWN_KEY or
 * HPP_E_LEDGER_UNAVAILABLE with `msg`. */
hpp_status_t eng_ledger_begin(eng_ledger_t *self, const eng_ledger_keys_t *keys,
                              const hpp_features_t *f, const eng_policy_t *pol,
                              eng_ledger_call_t *c, char *msg, size_t cap);

/* Steps 3-6 and the reservation, for a decision the resolver made (d->status
 * HPP_OK, d->decision_id set). On success sets d->has_ledger, reserved and
 * remaining; on a refusal turns `d` into the error (nothing reserved). */
void eng_ledger_reserve(eng_ledger_t *self, eng_ledger_call_t *c, eng_decision_t *d);

/* Settles what a report's attempts say: per decision, the attempt that
 * answered (2xx) is charged its cost_usd, else `cost[i]` when priced[i]
 * (the engine's price of its usage), else the reservation's estimate; a
 * decision none of whose attempts answered is released. Attempts without
 * a decision are not the ledger's. */
void eng_ledger_report(eng_ledger_t *self, const proto_attempt_t *at, uint32_t n,
                       const hpp_cost_t *cost, const bool *priced);

/* Makes what was settled durable (a report with ack waits for it). */
int eng_ledger_sync(eng_ledger_t *self, char *msg, size_t cap);

/* Answers a `ledger` request into `out` (the admin check is the caller's). */
void eng_ledger_op(eng_ledger_t *self, const eng_ledger_keys_t *keys, const proto_request_t *req,
                   proto_buf_t *out);

/* Counters for stats and metrics. */
typedef struct {
    uint64_t reservations; /* decisions reserved */
    uint64_t settled;      /* reservations settled by a report */
    uint64_t released;     /* reservations released by a report (no attempt answered) */
    uint64_t expired;      /* reservations released after --ledger-hold */
    uint64_t duplicates;   /* settlements of a decision already settled, released or unknown */
    uint64_t unavailable;  /* store failures */
    uint64_t keys;         /* keys in the table serving (set by the caller) */
    const char *store;     /* "sqlite", "redis", "" */
} eng_ledger_stats_t;

void eng_ledger_stats(const eng_ledger_t *self, eng_ledger_stats_t *out);
bool eng_ledger_has_store(const eng_ledger_t *self);
bool eng_ledger_optional(const eng_ledger_t *self);

#endif
