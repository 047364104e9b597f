/* sc_keys.h - the sidecar's API key file: which key belongs to which group,
 * and the most a request made with it may cost.
 *
 * The file holds SHA-256 hashes of the keys, never the keys, one a line:
 *
 *   # team A's build bot
 *   sha256:<64 lowercase hex digits> group=team-a budget_usd=0.50   # comment
 *
 * Blank lines and lines starting with '#' are ignored; a '#' word starts a
 * comment. After the hash come key=value words: `group` (required) and
 * `budget_usd` (optional); more keys will come (a ledger), so an unknown key
 * is an error rather than skipped, naming FILE:LINE:COL. A request's key
 * (the `Authorization: Bearer` token) is hashed and looked up; the hash
 * comparison that decides is constant-time (sodium_memcmp).
 *
 * A loaded table is immutable: a reload builds a new one, so a bad new file
 * leaves the last good table serving.
 */
#ifndef SC_KEYS_H
#define SC_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "hpp_request.h"

#define SC_KEYS_MAX_FILE (64u << 20) /* bytes of a key file at most */
#define SC_KEYS_MAX_KEY 1024         /* bytes of an API key at most */
#define SC_KEYS_HASH_TEXT 72         /* "sha256:" + 64 hex digits + NUL */

/* What a key grants. */
typedef struct {
    char group[HPP_MAX_GROUP_LEN + 1]; /* the key's group */
    bool has_budget;                   /* budget_usd was given */
    double budget_usd;                 /* most one request may cost, USD */
} sc_key_info_t;

typedef struct sc_keys sc_keys_t;

/* Parses a key file's text; `name` is the file name for messages. Returns a
 * table, or NULL with "NAME:LINE:COL: what" in errbuf (out of memory: a
 * message without a location). The text may hold any bytes. */
sc_keys_t *sc_keys_parse(const char *text, size_t len, const char *name, char *errbuf,
                         size_t errlen);

/* Reads and parses the file at `path`. NULL with the reason in errbuf. */
sc_keys_t *sc_keys_load(const char *path, char *errbuf, size_t errlen);

/* Frees the table; sets *self_p to NULL. Idempotent. */
void sc_keys_destroy(sc_keys_t **self_p);

/* Keys in the table. */
size_t sc_keys_count(const sc_keys_t *self);

/* The entry of the key `key` (len bytes, as sent), or NULL. Hashes the key
 * (no allocation) and searches the sorted hashes; the final comparison is
 * constant-time. */
const sc_key_info_t *sc_keys_find(const sc_keys_t *self, const char *key, size_t len);

/* NULL when `key` is usable as an API key (1 to SC_KEYS_MAX_KEY visible
 * ASCII bytes, 0x21-0x7e), else why, as a static message. */
const char *sc_keys_check_key(const char *key, size_t len);

/* True when s[0..n) is a group name: 1 to HPP_MAX_GROUP_LEN bytes of
 * [A-Za-z0-9_.:/@-], the request reader's rule. */
bool sc_keys_group_ok(const char *s, size_t n);

/* Reads a budget: a plain decimal amount of USD (no sign, no exponent) within
 * the contract's rule (hpp_check_budget). Returns 0, or -1. */
int sc_keys_parse_usd(const char *s, size_t n, double *usd);

/* Writes "sha256:<hex>" of `key` into out (SC_KEYS_HASH_TEXT bytes). */
void sc_keys_hash_text(const char *key, size_t len, char out[SC_KEYS_HASH_TEXT]);

#endif
