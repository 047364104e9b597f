/* sc_failopen.h - what the --fail-open model may answer while no engine can.
 *
 * Failing open must not undo the policy: a group that may not use the
 * fail-open model, or a budget it does not fit, gets a 503 rather than the
 * model. While an engine answers, the sidecar learns per group whether the
 * model is allowed and what it costs, by asking the engine itself: a route
 * request for that model, that group, 1 prompt token and the policy's
 * default output. It asks on the first request of a group and again every
 * refresh period (the policy may have been reloaded). When no engine
 * answers, a request gets the model only if its group was last seen allowed
 * and the estimate, from the learned cost parts scaled to the request's
 * tokens, fits its budget.
 *
 * The table holds SC_FAILOPEN_MAX_GROUPS groups (a policy defines 64 at
 * most, plus the default group, learned from the start). A group the engine
 * does not know (bad_request) is not kept, so made-up names cannot fill the
 * table; once full, new groups are not learned and fail closed.
 *
 * One table serves every worker of the sidecar (sc_workers.h), so that a
 * group learned through one is known to all: the worker whose loop made it
 * (the prober) sends the probes and takes their answers; the others add the
 * groups they see, which the prober asks about on its next tick (100 ms).
 * The table is guarded by a mutex, taken where a probe is sent or answered,
 * where the engine is down (sc_failopen_allows), and where a worker sees a
 * group for the first time: each worker remembers the groups it has handed
 * over (sc_failopen_cache_t, its own), so a request of a known group takes
 * no lock.
 */
#ifndef SC_FAILOPEN_H
#define SC_FAILOPEN_H

#include <stdbool.h>

#include "hpp_request.h"
#include "sc_engine.h"

struct event_base;

#define SC_FAILOPEN_MAX_GROUPS 65

typedef struct sc_failopen sc_failopen_t;

/* A worker's own memory of the groups it has handed to the table. */
typedef struct {
    bool prober;                                          /* the loop that made the table */
    size_t n;                                             /* names kept */
    uint8_t len[SC_FAILOPEN_MAX_GROUPS];                  /* their lengths */
    char name[SC_FAILOPEN_MAX_GROUPS][HPP_MAX_GROUP_LEN]; /* and bytes */
} sc_failopen_cache_t;

/* Starts learning `model` (borrowed) for the default group; asks again
 * every refresh_ms. NULL with a message in errbuf when out of memory. */
sc_failopen_t *sc_failopen_new(struct event_base *base, sc_engine_t *engine, const char *model,
                               int refresh_ms, char *errbuf, size_t errlen);

/* Cancels the probes in flight and frees; before the engine is destroyed. */
void sc_failopen_destroy(sc_failopen_t **self_p);

/* A request of `group` ("" = default) arrived at the worker whose cache
 * this is: an unknown group is added, and asked about at once by the
 * prober, at its next tick by the others' (through the prober). */
void sc_failopen_seen(sc_failopen_t *self, sc_failopen_cache_t *cache, hpp_str_t group);

/* True when the model may answer a request with features `f` now; else
 * false with *why saying why in words ("group 'x' may not use it", ...),
 * into why[n]. */
bool sc_failopen_allows(const sc_failopen_t *self, const hpp_features_t *f, char *why, size_t n);

#endif
