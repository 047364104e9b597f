/* eng_health.h - what the engine has measured of each endpoint, from the
 * gateways' reports: a decayed error rate, a cooldown after repeated
 * failures (with exponential backoff), and decayed averages of latency,
 * time to first token and throughput, plus a latency percentile.
 *
 * One fixed table per snapshot, indexed like the catalog's endpoints[] and
 * allocated when the snapshot is built, never per request. One writer at a
 * time updates it (the caller serialises eng_health_record and
 * eng_health_carry); the decision threads read it with relaxed atomic loads
 * of scalars, no lock, no allocation. A reader may see one figure of an
 * update before another: each figure is a value the writer did publish.
 */
#ifndef ENG_HEALTH_H
#define ENG_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_catalog.h"
#include "proto.h"

/* The policy's settings (policies/README.md, "settings"). */
typedef struct eng_health_cfg {
    uint32_t allowed_fails;  /* consecutive failures that start a cooldown */
    int64_t cooldown_ms;     /* the first cooldown */
    int64_t cooldown_max_ms; /* backoff doubles it up to this */
    int64_t window_ms;       /* half-life of the decayed figures */
} eng_health_cfg_t;

#define ENG_HEALTH_FAILS 3
#define ENG_HEALTH_COOLDOWN_MS 30000
#define ENG_HEALTH_COOLDOWN_MAX_MS 300000
#define ENG_HEALTH_WINDOW_MS 60000

/* The defaults above. */
void eng_health_cfg_defaults(eng_health_cfg_t *cfg);

typedef struct eng_health eng_health_t;

/* A table for `n` endpoints, nothing measured. NULL when out of memory. */
eng_health_t *eng_health_new(size_t n, const eng_health_cfg_t *cfg);
void eng_health_destroy(eng_health_t **self_p);

/* Monotonic milliseconds, the clock of every `now_ms` below. */
int64_t eng_health_now_ms(void);

/* Is attempt `a` a failure of the endpoint? 429, 5xx and transport errors
 * are; a canceled call and other 4xx (the request's fault) are not. */
bool eng_health_is_failure(const proto_attempt_t *a);

/* The endpoint of `cat` each of a report's `n` attempts names, into
 * idx[]: its model by id (or a provider's spelling of it) and, among its
 * endpoints, the provider (ASCII case-insensitive); "ID:free" names the
 * model's `:free` variant. All or none: false, with `msg` saying which
 * attempt and what was not found, when one names no endpoint (a report is
 * one unit: a gateway that sends a wrong name learns it, rather than half
 * its report counting). */
bool eng_health_endpoints(const eng_catalog_t *cat, const proto_attempt_t *at, uint32_t n,
                          uint32_t *idx, char *msg, size_t cap);

/* Counts one attempt at endpoint `ep` (writer only). */
void eng_health_record(eng_health_t *self, size_t ep, const proto_attempt_t *a, int64_t now_ms);

/* Copies what `from` measured into `self` for every endpoint both catalogs
 * have (same model id, provider and provider id): health survives a reload
 * for the endpoints that remain (writer only, before `self` serves). */
void eng_health_carry(eng_health_t *self, const eng_catalog_t *cat, const eng_health_t *from,
                      const eng_catalog_t *from_cat);

/* Reader side: lock-free, allocation-free. ------------------------------- */

/* True when some endpoint is cooling down now, with *now_ms set to the
 * clock. One atomic load while no cooldown was ever started; the clock is
 * read only after one was. `self` may be NULL (false). */
bool eng_health_cooling_now(const eng_health_t *self, int64_t *now_ms);

/* Is endpoint `ep` cooling down at `now_ms`? */
bool eng_health_cooling(const eng_health_t *self, size_t ep, int64_t now_ms);

/* Measured figures, or a negative value when nothing is measured yet. */
double eng_health_latency_ms(const eng_health_t *self, size_t ep);
double eng_health_tps(const eng_health_t *self, size_t ep);

/* Every figure of endpoint `ep`, as explain shows it. False when no
 * report counted for it. */
bool eng_health_get(const eng_health_t *self, size_t ep, int64_t now_ms, proto_health_t *out);

/* The settings a policy compiled (defaults where it set none). */
struct eng_policy;
const eng_health_cfg_t *eng_health_policy_cfg(const struct eng_policy *pol);

#endif
