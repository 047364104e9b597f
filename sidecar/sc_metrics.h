/* sc_metrics.h - the sidecar's counters and their Prometheus text.
 *
 * One event loop (a worker, sc_workers.h) owns one sc_metrics_t and is its
 * only writer: updates are increments with no lock, stored with relaxed
 * atomics so that another worker may read them at any time and sum every
 * worker's figures for /metrics (sc_metrics_merge). Label sets are fixed tables (routes, statuses,
 * engine error kinds, retry reasons) except decisions by model and tier, kept in a bounded
 * open-addressing table: past 3/4 of SC_METRICS_MAX_DECISIONS distinct pairs new pairs count under
 * model="other" so a flood of ids cannot grow memory or the exposition.
 */
#ifndef SC_METRICS_H
#define SC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_METRICS_MAX_DECISIONS 512
#define SC_METRICS_MAX_ENGINES 8    /* engines behind one sidecar, the `engine` label */
#define SC_METRICS_HASH_MAX 65      /* a policy hash label, with the NUL (SHA-256 in hex) */
#define SC_METRICS_ENDPOINT_MAX 256 /* an engine endpoint label, with the NUL */
#define SC_METRICS_MAX_WORKERS 256  /* workers of one sidecar, the `worker` label */

/* Routes, the `route` label. */
typedef enum {
    SC_ROUTE_ROUTE = 0, /* POST /v1/route */
    SC_ROUTE_CHAT,      /* POST /v1/chat/completions */
    SC_ROUTE_MODELS,    /* GET /v1/models */
    SC_ROUTE_HEALTH,    /* GET /healthz */
    SC_ROUTE_METRICS,   /* GET /metrics */
    SC_ROUTE_API,       /* GET /api/quota-check, /api/usage, /api/v1/key */
    SC_ROUTE_OTHER,     /* anything else (404/405) */
    SC_ROUTE_COUNT
} sc_route_t;

/* Engine failures, the `kind` label of engine errors. */
typedef enum {
    SC_ENGERR_UNAVAILABLE = 0, /* no connected engine: the send failed at once */
    SC_ENGERR_TIMEOUT,         /* no reply within --timeout-ms */
    SC_ENGERR_DECODE,          /* the reply could not be decoded */
    SC_ENGERR_STATUS,          /* the engine answered an error code */
    SC_ENGERR_COUNT
} sc_engerr_t;

/* Why the proxy retried with another model. */
typedef enum {
    SC_RETRY_402 = 0, /* payment required: the free fallback */
    SC_RETRY_429,     /* rate limited: next fallback */
    SC_RETRY_5XX,     /* upstream error: next fallback */
    SC_RETRY_COUNT
} sc_retry_t;

/* Which deadline of a client connection expired, the `phase` label. */
typedef enum {
    SC_CTIMEOUT_HEADER = 0, /* the request's headers were not complete in time (408) */
    SC_CTIMEOUT_BODY,       /* its body was not complete in time (408) */
    SC_CTIMEOUT_IDLE,       /* a kept-alive connection sent no request in time */
    SC_CTIMEOUT_COUNT
} sc_ctimeout_t;

/* One engine as /metrics shows it, labelled by its endpoint as configured.
 * The engine keeps these; the server hands a copy over before rendering. */
typedef struct {
    char endpoint[SC_METRICS_ENDPOINT_MAX]; /* as given to --engine */
    bool up;                                /* connected now */
    uint64_t calls;                         /* calls sent to it, resent ones included */
    uint64_t resends;                       /* its calls sent again elsewhere when it went away */
    bool policy_known;                      /* a ping answered since it connected */
    uint64_t policy_version;                /* the version that ping reported */
    char policy_hash[SC_METRICS_HASH_MAX];  /* and its hash, "" when the engine sends none */
} sc_metrics_engine_t;

typedef struct sc_metrics sc_metrics_t;

sc_metrics_t *sc_metrics_new(void);
void sc_metrics_destroy(sc_metrics_t **self_p);

/* Counts one finished HTTP request with its status and duration. */
void sc_metrics_request(sc_metrics_t *self, sc_route_t route, int status, double seconds);

/* Observes the round trip of one answered route call to the engine. */
void sc_metrics_engine_time(sc_metrics_t *self, double seconds);

/* Observes one upstream attempt, from its send to its response headers. */
void sc_metrics_upstream_time(sc_metrics_t *self, double seconds);

/* Counts one decision (model id, tier name; tier may be ""). */
void sc_metrics_decision(sc_metrics_t *self, const char *model, size_t model_len, const char *tier,
                         size_t tier_len);

/* Counts an engine failure; for SC_ENGERR_STATUS, `code` is the wire code. */
void sc_metrics_engine_error(sc_metrics_t *self, sc_engerr_t kind, const char *code);

/* Counts an answer given with the --fail-open model. */
void sc_metrics_fail_open(sc_metrics_t *self);

/* Sets the count of access log lines that could not be written. */
void sc_metrics_access_dropped(sc_metrics_t *self, uint64_t n);

/* Counts a retry of the upstream call with another model. */
void sc_metrics_retry(sc_metrics_t *self, sc_retry_t why);

/* Counts an upstream response by status (0 = could not connect). */
void sc_metrics_upstream(sc_metrics_t *self, int status);

/* Sets the open client connections gauge. */
void sc_metrics_connections(sc_metrics_t *self, uint64_t open);

/* Counts a client connection refused over --max-connections. */
void sc_metrics_connection_refused(sc_metrics_t *self);

/* Counts a failed accept() (out of descriptors, mostly). */
void sc_metrics_accept_error(sc_metrics_t *self);

/* Counts a client connection closed by one of its deadlines. */
void sc_metrics_client_timeout(sc_metrics_t *self, sc_ctimeout_t phase);

/* Sets the engine requests in flight gauge. */
void sc_metrics_inflight(sc_metrics_t *self, uint64_t n);

/* Sets the per-engine series (n <= SC_METRICS_MAX_ENGINES, copied) and the
 * count of policy disagreements seen between them. */
void sc_metrics_engines(sc_metrics_t *self, const sc_metrics_engine_t *engines, size_t n,
                        uint64_t disagreements);

/* Adds every counter, histogram, gauge and decision of `src` into `sum`
 * (not the engine and worker series: set those with sc_metrics_engines and
 * sc_metrics_workers). `src` may be written meanwhile by its own loop;
 * nothing else may write `sum`. */
void sc_metrics_merge(sc_metrics_t *sum, const sc_metrics_t *src);

/* Requests answered, every route and status; safe from any thread. */
uint64_t sc_metrics_requests_total(const sc_metrics_t *self);

/* Sets the per-worker series: requests[i] answered by worker i (n <=
 * SC_METRICS_MAX_WORKERS, copied); n = 0 leaves them out. */
void sc_metrics_workers(sc_metrics_t *self, const uint64_t *requests, size_t n);

/* Renders every metric in the Prometheus text format (version 0.0.4),
 * hpp_sidecar_build_info and the process_* series (read at the call) included.
 * Returns a malloc'd NUL-terminated buffer (caller frees) with its length
 * in *len, or NULL when out of memory. */
char *sc_metrics_render(const sc_metrics_t *self, size_t *len);

/* Name of a route, e.g. "/v1/route". */
const char *sc_route_name(sc_route_t route);

#endif
