/* hpp_apikeys.h - the API key file: which key belongs to which group and
 * account, and what it may spend. One file for the whole project: the
 * sidecar reads it to authenticate callers (--keys), the engine to run its
 * ledger checks (--keys), hpp-ledger to administer it.
 *
 * The file holds SHA-256 hashes of the keys, never the keys, one a line:
 *
 *   # team A's build bot
 *   sha256:<64 lowercase hex digits> group=team-a account=team-a limit_usd=20   # comment
 *
 * Blank lines and lines starting with '#' are ignored; a '#' word starts a
 * comment. After the hash come key=value words, each at most once:
 *
 *   group=G                        required; 1-64 of [A-Za-z0-9_.:/@-]
 *   account=A                      the account whose balance the key spends
 *                                  (default: the key's hash, one account per
 *                                  key); 1-71 of the group's characters
 *   budget_usd=X                   most one request may cost
 *   limit_usd=X                    the key's lifetime spending limit
 *   daily_usd=X                    most the key may spend per day
 *   daily_requests=N               requests per day, all models
 *   free_daily_requests=N          requests per day to $0 models (default 50)
 *   free_daily_requests_funded=N   the same once the account holds a positive
 *                                  balance (default 1000)
 *   revoked=0|1                    a revoked key is refused
 *
 * USD amounts are plain decimals (no sign, no exponent) from 0 to 1000000,
 * read exactly as picodollars; counts are decimal integers from 0 to
 * 10^12. An unknown key or a bad value is an error naming FILE:LINE:COL of
 * the value. A request's key (the `Authorization: Bearer` token) is hashed
 * and looked up; the hash comparison that decides is constant-time
 * (sodium_memcmp).
 *
 * A loaded table is immutable: a reload builds a new one, so a bad new file
 * leaves the last good table serving.
 */
#ifndef HPP_APIKEYS_H
#define HPP_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpp_request.h"

#define HPP_APIKEYS_MAX_FILE (64u << 20)     /* bytes of a key file at most */
#define HPP_APIKEY_MAX_KEY 1024              /* bytes of an API key at most */
#define HPP_APIKEY_HASH_TEXT 72              /* "sha256:" + 64 hex digits + NUL */
#define HPP_APIKEY_MAX_USD 1000000           /* the most any USD amount in the file */
#define HPP_APIKEY_MAX_COUNT 1000000000000LL /* the most any request count */
#define HPP_APIKEY_FREE_DAILY 50             /* free_daily_requests when not given */
#define HPP_APIKEY_FREE_DAILY_FUNDED 1000    /* free_daily_requests_funded when not given */

/* What a key grants. Limits not given are -1. */
typedef struct {
    char hash[HPP_APIKEY_HASH_TEXT];    /* "sha256:<hex>" */
    char group[HPP_MAX_GROUP_LEN + 1];  /* the key's group */
    char account[HPP_APIKEY_HASH_TEXT]; /* account name, or the hash when not given */
    bool has_budget;                    /* budget_usd was given */
    double budget_usd;                  /* most one request may cost, USD */
    int64_t limit_pd;                   /* lifetime limit, picodollars; -1: none */
    int64_t daily_pd;                   /* per-day limit, picodollars; -1: none */
    int64_t daily_requests;             /* requests per day; -1: none */
    int64_t free_daily_requests;        /* requests per day to $0 models */
    int64_t free_daily_requests_funded; /* the same, the account funded */
    bool revoked;                       /* refused everywhere */
    uint32_t line;                      /* where it was defined */
} hpp_apikey_t;

typedef struct hpp_apikeys hpp_apikeys_t;

/* Parses a key file's text; `name` is the file name for messages. Returns a
 * table, or NULL with "NAME:LINE:COL: what" in err (out of memory: a
 * message without a location). The text may hold any bytes. */
hpp_apikeys_t *hpp_apikeys_parse(const char *text, size_t len, const char *name, char *err,
                                 size_t errlen);

/* Reads and parses the file at `path`. NULL with the reason in err. */
hpp_apikeys_t *hpp_apikeys_load(const char *path, char *err, size_t errlen);

/* Frees the table; sets *self_p to NULL. Idempotent. */
void hpp_apikeys_destroy(hpp_apikeys_t **self_p);

/* Keys in the table (revoked ones included). */
size_t hpp_apikeys_count(const hpp_apikeys_t *self);

/* The i-th key in hash order (i < count), or NULL. */
const hpp_apikey_t *hpp_apikeys_at(const hpp_apikeys_t *self, size_t i);

/* The entry of the key `key` (len bytes, as sent), or NULL. Hashes the key
 * (no allocation) and searches the sorted hashes; the final comparison is
 * constant-time. A revoked key is returned too: the caller refuses it
 * (check ->revoked). */
const hpp_apikey_t *hpp_apikeys_find(const hpp_apikeys_t *self, const char *key, size_t len);

/* The entry whose hash is `hash` ("sha256:<64 lowercase hex>", len bytes),
 * or NULL (also for text that is not such a hash). Revoked keys included. */
const hpp_apikey_t *hpp_apikeys_find_hash(const hpp_apikeys_t *self, const char *hash, size_t len);

/* Writes "sha256:<hex>" of `key` into out (HPP_APIKEY_HASH_TEXT bytes). */
void hpp_apikeys_hash_text(const char *key, size_t len, char out[HPP_APIKEY_HASH_TEXT]);

/* True when s[0..n) is "sha256:" and 64 lowercase hex digits. */
bool hpp_apikeys_hash_ok(const char *s, size_t n);

/* NULL when `key` is usable as an API key (1 to HPP_APIKEY_MAX_KEY visible
 * ASCII bytes, 0x21-0x7e), else why, as a static message. */
const char *hpp_apikeys_check_key(const char *key, size_t len);

/* True when s[0..n) is a group name: 1 to HPP_MAX_GROUP_LEN bytes of
 * [A-Za-z0-9_.:/@-], the request reader's rule. */
bool hpp_apikeys_group_ok(const char *s, size_t n);

/* True when s[0..n) is an account name: 1 to HPP_APIKEY_HASH_TEXT - 1 bytes
 * of the group's characters (a key's hash is one). */
bool hpp_apikeys_account_ok(const char *s, size_t n);

/* Reads a budget: a plain decimal amount of USD (no sign, no exponent) within
 * the contract's rule (hpp_check_budget). Returns 0, or -1. */
int hpp_apikeys_parse_usd(const char *s, size_t n, double *usd);

/* Reads a plain decimal amount of USD from 0 to HPP_APIKEY_MAX_USD exactly
 * as picodollars. Returns 0, or -1. */
int hpp_apikeys_parse_pd(const char *s, size_t n, int64_t *pd);

/* Reads a decimal count from 0 to HPP_APIKEY_MAX_COUNT. Returns 0, or -1. */
int hpp_apikeys_parse_count(const char *s, size_t n, int64_t *count);

/* The words a line may carry after the hash, in the order above, NULL
 * terminated (for help texts and editors). */
extern const char *const hpp_apikeys_fields[];

#endif
