/* eng_store.c - picks the store a --ledger spec names; the arithmetic every
 * store shares.
 *
 * Stores are registered in one table by their scheme, so adding one is a
 * line here and its own file.
 */
#include "eng_store.h"

#include <stdio.h>
#include <string.h>

#include "eng_store_redis.h"
#include "eng_store_sqlite.h"

/* The schemes, longest prefix first where one is a prefix of another. */
static const struct {
    const char *prefix;           /* start of the spec */
    eng_store_open_fn open;       /* its opener */
    bool (*in_use)(const char *); /* NULL: a store any number of engines share */
} s_stores[] = {
    {"sqlite:", eng_store_sqlite_open, eng_store_sqlite_in_use},
    {"redis://", eng_store_redis_open, NULL},
    {"redis+unix:", eng_store_redis_open, NULL},
};

static int s_scheme(const char *spec)
{
    for (size_t i = 0; i < sizeof s_stores / sizeof s_stores[0]; i++) {
        if (strncmp(spec, s_stores[i].prefix, strlen(s_stores[i].prefix)) == 0) {
            return (int)i;
        }
    }
    return -1;
}

bool eng_store_in_use(const char *spec)
{
    int i = s_scheme(spec);
    return i >= 0 && s_stores[i].in_use && s_stores[i].in_use(spec);
}

eng_store_t *eng_store_open(const char *spec, const eng_store_cfg_t *cfg, char *err, size_t errlen)
{
    int i = s_scheme(spec);
    if (i >= 0) {
        return s_stores[i].open(spec, cfg, err, errlen);
    }
    snprintf(err, errlen,
             "--ledger '%.64s': unknown store (expected sqlite:PATH, redis://HOST:PORT or "
             "redis+unix:PATH)",
             spec);
    return NULL;
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t eng_store_remaining(const eng_store_key_t *key, const eng_store_state_t *st)
{
    int64_t r = st->balance_pd - st->acct_reserved_pd;
    if (key->limit_pd != ENG_STORE_NONE) {
        r = s_min(r, key->limit_pd - st->spent_pd - st->reserved_pd);
    }
    if (key->daily_pd != ENG_STORE_NONE) {
        r = s_min(r, key->daily_pd - st->day_spent_pd - st->day_reserved_pd);
    }
    return r;
}
