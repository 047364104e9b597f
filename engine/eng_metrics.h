/* eng_metrics.h - the engine's Prometheus endpoint (--metrics-listen).
 *
 * Why the engine serves its own metrics rather than the sidecar relaying
 * them: a deployment may run several engines behind one sidecar, or engines
 * with no sidecar at all (a gateway speaking the protocol); each engine's
 * counters belong to that process, and a scrape of the engine itself keeps
 * working while the sidecar is down or points elsewhere. The sidecar's
 * /metrics keeps its own view of each engine (up, calls, policy hash).
 *
 * Two parts:
 *  - decisions by rule: a bounded, append-only table of rule names, filled
 *    by the one thread that builds snapshots before it publishes them, and
 *    one row of counters per deciding thread. Counting a decision hashes
 *    the rule name, probes the table (read-only for the deciders) and bumps
 *    a counter only that thread writes: no lock, no allocation, no shared
 *    cache line. Each thread remembers its recent lookups by pointer.
 *  - a small HTTP/1.1 server on its own thread (poll, at most
 *    ENG_METRICS_MAX_CONNS connections, a request of at most 4 KiB within
 *    5 s, then Connection: close) answering GET/HEAD /metrics. On a scrape
 *    it asks the server for its stats through a callback and renders them,
 *    the rule counters, build info and the process_* series.
 * Nothing of it runs on the decision path but eng_metrics_decision.
 */
#ifndef ENG_METRICS_H
#define ENG_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_common.h"
#include "eng_policy.h"
#include "proto.h"

#define ENG_METRICS_MAX_RULES 2048 /* table slots; 3/4 of them may hold names */
#define ENG_METRICS_MAX_CONNS 8    /* scrapes served at once; more wait in the backlog */

typedef struct eng_metrics eng_metrics_t;

/* A table and `nthreads` rows of decision counters (one per deciding
 * thread, numbered 0..nthreads-1). The fixed outcomes of the resolver
 * ("direct", "floor", "free") are named from the start. */
eng_metrics_t *eng_metrics_new(size_t nthreads, eng_error_t *err);

/* Stops the HTTP thread (when started) and closes its sockets, so nothing
 * is collected any more; `self` may be NULL; idempotent. Counting goes on. */
void eng_metrics_stop(eng_metrics_t *self);

/* eng_metrics_stop, then frees all; idempotent. No thread may count. */
void eng_metrics_destroy(eng_metrics_t **self_p);

/* Names every routing rule of `pol` in the table. Only one thread may call
 * it (the one that builds snapshots), before the snapshot serves. Names past
 * the table's capacity are counted under rule="other". */
void eng_metrics_add_rules(eng_metrics_t *self, const eng_policy_t *pol);

/* Counts one decision by `rule` (the decision's pointer, valid as long as
 * the snapshot of version `version` that made it) on thread `thread`.
 * Lock-free and allocation-free; `self` may be NULL (metrics off). Each
 * thread remembers the slots of the last names it saw, by pointer and
 * version, so the usual cost is one compare. */
void eng_metrics_decision(eng_metrics_t *self, size_t thread, uint64_t version, const char *rule);

/* Fills `st` for one scrape: called on the HTTP thread. `hash` is storage
 * for st->policy_hash (the callback copies the hash there). */
typedef void (*eng_metrics_collect_fn)(void *ctx, proto_stats_t *st, char hash[65]);

/* Splits "HOST:PORT" ("[::1]:9464" for IPv6; PORT 0..65535, 0 = any free
 * port). Returns 0, or -1 with why in `why`. For the flag's check and for
 * eng_metrics_serve. */
int eng_metrics_parse_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen,
                           char *why, size_t whylen);

/* Binds `addr` and starts the HTTP thread, which calls `collect(ctx, ...)`
 * on each scrape until eng_metrics_destroy. Call it after the signals the
 * server takes through its signalfd are blocked (the thread inherits the
 * mask). A malformed or unresolvable address is ENG_ERR_VALUE, a bind
 * failure (address in use, no permission) ENG_ERR_IO. */
int eng_metrics_serve(eng_metrics_t *self, const char *addr, eng_metrics_collect_fn collect,
                      void *ctx, eng_error_t *err);

/* The bound address with the real port ("127.0.0.1:43817"), "" before
 * eng_metrics_serve. */
const char *eng_metrics_address(const eng_metrics_t *self);

/* The answer to an HTTP request of `len` bytes (its head, at most the
 * server's 4 KiB): 200 for GET or HEAD of /metrics (a query is ignored;
 * *head says which), 404 for another target, 405 for another method, 400
 * for a malformed request line. Pure, for the server and its fuzz target. */
int eng_metrics_request(const char *in, size_t len, bool *head);

/* The exposition for `st` (Prometheus text format 0.0.4): a malloc'd,
 * NUL-terminated text with its length in *len, or NULL when out of memory. */
char *eng_metrics_render(const eng_metrics_t *self, const proto_stats_t *st, size_t *len);

#endif
