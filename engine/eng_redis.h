/* eng_redis.h - the ledger's state in Redis: connections and the atomic
 * server-side scripts (reserve, settle, release, expire, read, adjust).
 *
 * Several engines, on several machines, share one ledger by sharing one
 * Redis: every step that reads and changes money is one Lua script that
 * Redis runs atomically, so two engines reserving against one key at once
 * see each other's reservations. eng_store_redis.c adapts this module to the
 * engine's store interface (eng_store.h).
 *
 * Money is integer picodollars (int64_t). Lua numbers are doubles, exact only
 * below 2^53 pd (about $9,007), so the scripts never do arithmetic on money
 * in Lua: amounts travel as decimal text, every change is an HINCRBY (Redis's
 * own 64-bit integers; an overflow is an error, not a wrap), and the checks
 * compare decimal texts exactly (see the scripts). A few derived fields kept
 * by HINCRBY alongside (an account's `avail` = balance - reserved, a key's
 * and a day's `used` = spent + reserved) make every check one comparison of
 * two stored integers.
 *
 * Key schema, under a configurable prefix P (default "hpp:"):
 *   P a:ACCOUNT       hash  balance, reserved, avail, spent       (an account)
 *   P k:KEYHASH       hash  spent, reserved, used, requests,
 *                           prompt_tokens, completion_tokens      (a key, lifetime)
 *   P d:KEYHASH:DAY   hash  spent, reserved, used, requests,
 *                           free_requests                        (a key's day;
 *                           expires ENG_REDIS_DAY_TTL_S after its last change)
 *   P r:DECISION      hash  a, k, d (the three keys above), amt, free, exp
 *                                                                 (a reservation)
 *   P exp             zset  DECISION scored by its expiry (unix ms)
 * Missing hashes and fields read as 0. A reservation names the keys it
 * changes, so settle, release and expire touch keys their caller did not
 * name: the store needs one Redis (replicas are fine), not a Redis Cluster.
 *
 * Threads: any thread may call any function at once. Each call takes a
 * connection from the store's pool (a mutex held only to pop or push a
 * pointer, never across I/O) and puts it back, so the pool holds as many
 * connections as threads ever called at once (at most ENG_REDIS_MAX_CONNS):
 * one per worker thread in practice, without tying the store to the
 * engine's threads.
 *
 * Failures: a Redis that cannot be reached, times out or refuses (LOADING,
 * NOAUTH, a failover's READONLY) is ENG_REDIS_UNAVAILABLE; a reply of a
 * shape the scripts never give is ENG_REDIS_ERROR; both come with "where:
 * what" in err (the server, the step, the reply element). Never a crash. A
 * broken connection is dropped and made again by the next call; after a
 * failed connect, calls answer UNAVAILABLE at once for ENG_REDIS_BACKOFF_MS
 * instead of each waiting for its own connect timeout. The idempotent steps
 * (all but adjust) are retried once on a fresh connection when the first
 * attempt broke.
 *
 * Allocation: hiredis allocates each reply; this module allocates nothing
 * else per call.
 */
#ifndef ENG_REDIS_H
#define ENG_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENG_REDIS_MAX_CONNS 128
#define ENG_REDIS_BACKOFF_MS 100
#define ENG_REDIS_DAY_TTL_S (3 * 86400)
#define ENG_REDIS_PREFIX_MAX 64
#define ENG_REDIS_NAME_MAX 128     /* an account or key-hash name, bytes */
#define ENG_REDIS_EXPIRE_BATCH 500 /* reservations one expire script releases */

typedef enum {
    ENG_REDIS_OK = 0,
    ENG_REDIS_INSUFFICIENT_BALANCE, /* the account's balance less its reservations is <= 0 */
    ENG_REDIS_KEY_LIMIT,            /* the key's spent + reserved reached its limit */
    ENG_REDIS_DAILY_LIMIT,          /* the day's money or request count is reached */
    ENG_REDIS_DUPLICATE,            /* reserve: the decision is reserved already */
    ENG_REDIS_UNAVAILABLE,          /* Redis cannot be reached or refuses: err says why */
    ENG_REDIS_ERROR,                /* a bad argument or an unexpected reply: err says where */
} eng_redis_rc_t;

/* A key's and its account's state, every field a count stored in Redis.
 * The key's requests are its settled ones; the day's, those reserved. */
typedef struct {
    int64_t balance_pd, acct_reserved_pd;                /* the account */
    int64_t spent_pd, reserved_pd, requests;             /* the key, lifetime */
    int64_t prompt_tokens, completion_tokens;            /* the key, lifetime */
    int64_t day_spent_pd, day_reserved_pd, day_requests; /* the key, on `day` */
    int64_t day_free_requests;                           /* of those, to $0 models */
} eng_redis_state_t;

/* The limits a reservation is checked against; -1: none. */
typedef struct {
    int64_t limit_pd;                   /* the key's lifetime limit */
    int64_t daily_pd;                   /* the key's money per day */
    int64_t daily_requests;             /* the key's requests per day, all models */
    int64_t free_daily_requests;        /* requests per day to $0 models ... */
    int64_t free_daily_requests_funded; /* ... once the account's balance is > 0 */
} eng_redis_limits_t;

typedef struct eng_redis eng_redis_t;

/* Opens a store on `spec`:
 *   redis://HOST:PORT[?OPTIONS]   (HOST a name or an IPv4 address; [v6] too)
 *   redis+unix:PATH[?OPTIONS]
 * OPTIONS, '&'-separated: prefix=P (key prefix, default "hpp:", letters,
 * digits and ":_-."), db=N (SELECT N), connect_ms=N (default 500),
 * timeout_ms=N (each command, default 1000). `secret_file`, when not NULL,
 * holds the password (its first line that is not blank or a '#' comment; the
 * file must not be readable by group or others): sent with AUTH on each
 * connection, never logged, wiped from memory by destroy. The first
 * connection is made, authenticated and the scripts loaded here: a store
 * that cannot reach Redis at start is an error (the engine should not start
 * believing it has a ledger). NULL with "spec: why" in err. */
eng_redis_t *eng_redis_new(const char *spec, const char *secret_file, char *err, size_t errlen);
void eng_redis_destroy(eng_redis_t **self_p);

/* "redis+unix:/path" or "redis://host:port", for messages (no secret). */
const char *eng_redis_name(const eng_redis_t *self);
const char *eng_redis_prefix(const eng_redis_t *self);

/* Atomically, in this order: when !free_model, the account's balance less
 * its reservations > 0, the key's spent + reserved < limit_pd, the day's
 * spent + reserved < daily_pd; then, for every model, the day's requests <
 * daily_requests and, when free_model, the day's free requests < the free
 * allowance (funded when the balance is > 0). The first that fails is
 * returned and nothing changes. When all pass: reserves amount_pd (>= 0)
 * under `decision` until expires_ms and counts the request in the day. A
 * decision that is already reserved is not reserved again: DUPLICATE, or OK
 * when this call sent the script twice (its first attempt's connection broke
 * after Redis ran it). `state` (when not NULL) is the state after the step, on `day`. */
eng_redis_rc_t eng_redis_reserve(eng_redis_t *self, const char *account, const char *key,
                                 const eng_redis_limits_t *lim, uint64_t decision,
                                 int64_t amount_pd, bool free_model, int64_t day,
                                 int64_t expires_ms, eng_redis_state_t *state, char *err,
                                 size_t errlen);

/* Settles `decision` at cost_pd (>= 0; -1: the amount it reserved): its reservation is released and
 * the cost charged to the account, the key and the reservation's day, with the tokens and one
 * request of the key; *settled = true. A decision not (or no longer) reserved changes nothing: OK
 * with *settled = false, so a second settle is a no-op. */
eng_redis_rc_t eng_redis_settle(eng_redis_t *self, uint64_t decision, int64_t cost_pd,
                                int64_t prompt_tokens, int64_t completion_tokens, bool *settled,
                                char *err, size_t errlen);

/* Releases `decision`'s reservation without a charge; *released says
 * whether there was one. */
eng_redis_rc_t eng_redis_release(eng_redis_t *self, uint64_t decision, bool *released, char *err,
                                 size_t errlen);

/* Releases every reservation whose expiry is <= now_ms (in batches of
 * ENG_REDIS_EXPIRE_BATCH, one script each, so Redis is never held long);
 * *count (when not NULL) = how many. */
eng_redis_rc_t eng_redis_expire(eng_redis_t *self, int64_t now_ms, int64_t *count, char *err,
                                size_t errlen);

/* The state of `key` and `account` on `day`, read atomically. */
eng_redis_rc_t eng_redis_read(eng_redis_t *self, const char *account, const char *key, int64_t day,
                              eng_redis_state_t *state, char *err, size_t errlen);

/* Adds delta_pd to the account's balance (absolute: sets it to delta_pd);
 * the new balance in *balance_pd. Not retried: a top-up that may have been
 * applied is UNAVAILABLE, never applied twice. */
eng_redis_rc_t eng_redis_adjust(eng_redis_t *self, const char *account, int64_t delta_pd,
                                bool absolute, int64_t *balance_pd, char *err, size_t errlen);

/* Every account under the prefix (SCAN: not one atomic snapshot, and an
 * account changed during the listing may be seen before or after):
 * fn(arg, name, len, balance, reserved, spent) until it returns false. */
typedef bool (*eng_redis_account_fn)(void *arg, const char *name, size_t len, int64_t balance_pd,
                                     int64_t reserved_pd, int64_t spent_pd);
eng_redis_rc_t eng_redis_accounts(eng_redis_t *self, eng_redis_account_fn fn, void *arg, char *err,
                                  size_t errlen);

/* Reservations held now (the expiry set's size), for tests and stats. */
eng_redis_rc_t eng_redis_held(eng_redis_t *self, int64_t *count, char *err, size_t errlen);

#endif
