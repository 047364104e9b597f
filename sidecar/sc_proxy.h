/* sc_proxy.h - proxy mode: a call's body goes to the upstream with the
 * decided model, and the answer streams back to its client.
 *
 * The proxy owns the upstream (its parsed URL and the pool of keep-alive
 * connections). It is given calls by the server and hands each back through
 * the call's sc_call_ops_t when it is answered. Retry rules: sc_proxy.c.
 */
#ifndef SC_PROXY_H
#define SC_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc_call.h"
#include "sc_engine.h"

struct event_base;

typedef struct sc_proxy sc_proxy_t;

/* What the proxy works with; borrowed, and must outlive it. */
typedef struct {
    struct event_base *base;    /* the loop */
    sc_engine_t *engine;        /* asked again for the free variant after a 402 */
    sc_metrics_t *metrics;      /* upstream counters and timings */
    const char *upstreams_file; /* --upstreams: provider -> upstream (sc_upstreams.h) */
    const char *url;            /* else --upstream: one base URL serves every provider */
    int timeout_s;              /* connect / read inactivity timeout */
    int max_retries;            /* retries with another endpoint (429/5xx) */

    const char *strip_header; /* --trusted-header: never forwarded; NULL = none */
    bool strip_auth;          /* the client's Authorization is ours (--keys): not forwarded */
} sc_proxy_config_t;

/* Reads the upstream table (the file, or the single URL) and resolves its
 * hosts. Returns NULL with a message in errbuf (bad file or URL, unknown
 * host, out of memory). */
sc_proxy_t *sc_proxy_new(const sc_proxy_config_t *cfg, char *errbuf, size_t errlen);

/* Reads the --upstreams file again (SIGHUP). 0: the new table serves from
 * now on (calls in flight finish on their connections); -1: errbuf says
 * why and the last good table keeps serving; 1: there is no file. */
int sc_proxy_reload(sc_proxy_t *self, char *errbuf, size_t errlen);

/* Lines of the table in service. */
size_t sc_proxy_upstreams(const sc_proxy_t *self);

/* The providers the table reaches (sc_upstreams_reachable): 0 = all. The
 * views are valid until the next reload. */
uint32_t sc_proxy_reachable(const sc_proxy_t *self, hpp_str_t out[HPP_MAX_PROVIDERS]);

/* Frees the idle connections and the proxy; idempotent. */
void sc_proxy_destroy(sc_proxy_t **self_p);

/* Forwards the call's body to the upstream of the decision's provider with
 * the provider's model id (first attempt) and streams the answer back;
 * retries as documented in sc_proxy.c. */
void sc_proxy_start(sc_proxy_t *self, sc_call_t *call);

/* The client went away: stops the call's upstream request without
 * callbacks. A call the proxy never started is left as it is. */
void sc_proxy_cancel(sc_call_t *call);

#endif
