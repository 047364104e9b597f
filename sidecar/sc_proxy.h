/* sc_proxy.h - proxy mode: a call's body goes to the upstream with the
 * decided model, and the answer streams back to its client.
 *
 * The proxy owns the upstream (its parsed URL and the pool of keep-alive
 * connections). It is given calls by the server and hands each back through
 * the call's sc_call_ops_t when it is answered. Retry rules: sc_proxy.c.
 */
#ifndef SC_PROXY_H
#define SC_PROXY_H

#include <stddef.h>

#include "sc_call.h"
#include "sc_engine.h"

struct event_base;

typedef struct sc_proxy sc_proxy_t;

/* What the proxy works with; borrowed, and must outlive it. */
typedef struct {
    struct event_base *base; /* the loop */
    sc_engine_t *engine;     /* asked again for the free variant after a 402 */
    sc_metrics_t *metrics;   /* upstream counters and timings */
    const char *url;         /* upstream base URL, http://host:port/v1 */
    int timeout_s;           /* connect / read inactivity timeout */
    int max_retries;         /* retries with a fallback model (429/5xx) */

    const char *strip_header; /* --trusted-header: never forwarded; NULL = none */
} sc_proxy_config_t;

/* Parses the URL and resolves its host once. Returns NULL with a message in
 * errbuf (bad URL, unknown host, out of memory). */
sc_proxy_t *sc_proxy_new(const sc_proxy_config_t *cfg, char *errbuf, size_t errlen);

/* Frees the idle connections and the proxy; idempotent. */
void sc_proxy_destroy(sc_proxy_t **self_p);

/* Forwards the call's body to the upstream with call->d.model (first
 * attempt) and streams the answer back; retries as documented. */
void sc_proxy_start(sc_proxy_t *self, sc_call_t *call);

/* The client went away: stops the call's upstream request without
 * callbacks. A call the proxy never started is left as it is. */
void sc_proxy_cancel(sc_call_t *call);

#endif
