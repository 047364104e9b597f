/* sc_internal.h - what the sidecar's server and proxy modules share: the
 * server struct, the per-request call state and the reply helpers.
 * Not for use outside sidecar/.
 */
#ifndef SC_INTERNAL_H
#define SC_INTERNAL_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "sc_engine.h"
#include "oai_error.h"
#include "oai_request.h"
#include "sc_metrics.h"
#include "sc_server.h"

#define SC_NAME_MAX 65 /* provider, tier and rule names, with the NUL */

/* One fallback of a decision, copied out of the engine reply. */
typedef struct {
    char model[HPP_MAX_MODEL_LEN + 1];          /* model id */
    char provider[SC_NAME_MAX];                 /* its provider */
    char provider_model[HPP_MAX_MODEL_LEN + 1]; /* the provider's own id */
} sc_fallback_t;

/* A decision owned by the call (the reply frame it came from is gone). */
typedef struct {
    char model[HPP_MAX_MODEL_LEN + 1];          /* resolved model id */
    char provider[SC_NAME_MAX];                 /* chosen endpoint's provider */
    char provider_model[HPP_MAX_MODEL_LEN + 1]; /* the provider's own id */
    char tier[SC_NAME_MAX];                     /* tier name, may be "" */
    char rule[SC_NAME_MAX]; /* deciding rule, "fail_open" when the engine was down */
    double cost_usd;        /* estimated cost */
    int64_t output_tokens;  /* output tokens the estimate assumed */
    sc_fallback_t fallbacks[HPP_MAX_FALLBACKS]; /* next best, in order */
    uint32_t nfallbacks;                        /* used entries */
    bool fail_open;                             /* the engine was unreachable */
} sc_decision_t;

/* The upstream of proxy mode: parsed base URL and idle connections. */
typedef struct {
    char host[256];                     /* host name or address, as given */
    char addr[64];                      /* its numeric address, resolved once at startup */
    int port;                           /* TCP port */
    char hostport[300];                 /* Host header value */
    char path[512];                     /* request path: base path + /chat/completions */
    struct evhttp_connection *idle[64]; /* keep-alive connections ready for reuse */
    int nidle;                          /* used entries of idle[] */
} sc_upstream_t;

struct sc_call;

struct sc_server {
    sc_config_t cfg;                   /* configuration (strings borrowed) */
    struct event_base *base;           /* the loop */
    struct evhttp *http;               /* the HTTP server */
    struct evhttp_bound_socket *bound; /* the listener */
    int port;                          /* bound port */
    struct event *sigint;              /* SIGINT -> stop */
    struct event *sigterm;             /* SIGTERM -> stop */
    sc_engine_t *engine;               /* link to hpp-engine */
    sc_metrics_t *metrics;             /* counters */
    bool proxy;                        /* an upstream is configured */
    sc_upstream_t up;                  /* the upstream (proxy mode) */
    struct sc_call *pool;              /* finished calls kept for reuse */
    int npool;                         /* their number */
    int live;                          /* calls in progress */
};

/* Why the proxy is about to try another model. */
typedef enum {
    SC_RETRY_NONE = 0,
    SC_RETRY_FREE, /* 402: ask the engine for the free variant */
    SC_RETRY_NEXT, /* 429/5xx: next fallback */
} sc_retry_kind_t;

/* One HTTP request from its arrival to its last byte. */
typedef struct sc_call {
    struct sc_server *srv;      /* owner */
    struct evhttp_request *req; /* client request; NULL once libevent freed it */
    sc_route_t route;           /* which endpoint */
    double t0;                  /* arrival, monotonic seconds */
    oai_extract_t *x;           /* extraction context, kept across reuse */
    hpp_features_t f;           /* features of the request */
    uint64_t eng;               /* engine call in flight, 0 = none */
    double eng_t0;              /* when it was sent (for the engine round-trip histogram) */
    sc_decision_t d;            /* the decision */
    /* proxy state */
    struct evhttp_connection *up_conn;                        /* upstream connection in use */
    struct evhttp_request *up_req;                            /* upstream request in flight */
    double up_t0;                                             /* when it was sent */
    char model[HPP_MAX_MODEL_LEN + 1];                        /* model of the current attempt */
    char tried[HPP_MAX_FALLBACKS + 2][HPP_MAX_MODEL_LEN + 1]; /* models already sent */
    int ntried;                                               /* used entries of tried[] */
    int retries;                                              /* retries done */
    uint32_t next_fb;                                         /* next fallback to consider */
    sc_retry_kind_t retry; /* set by the header callback to abort and retry */
    int retry_status;      /* the upstream status that caused it */
    bool free_tried;       /* the 402 retry was used */
    bool streaming;        /* the reply to the client has started */
    bool buffered;         /* the upstream's answer is collected, then sent in one reply */
    char reason[48];       /* the upstream's reason phrase, for a buffered reply */
    int up_status;         /* the attempt's response status (counted), 0 before headers */
    bool cancelled;        /* the client went away: ignore callbacks */
    int up_error;          /* last upstream error (enum evhttp_request_error) */
    int status;            /* HTTP status answered, for metrics */
    struct event *defer;   /* runs the next attempt from the loop */
    struct sc_call *next;  /* pool link */
} sc_call_t;

/* Server helpers used by the proxy ------------------------------------- */

/* Answers the call with an OpenAI-style error and finishes it. */
void sc_reply_error(sc_call_t *call, const oai_error_t *err);

/* Adds the X-HPP-Router-* decision headers for `model` to `headers`. */
void sc_add_decision_headers(const sc_call_t *call, struct evkeyvalq *headers, const char *model);

/* Records metrics, detaches from the client connection and returns the
 * call to the pool. The reply must already be sent (or libevent owns it). */
void sc_call_finish(sc_call_t *call);

/* Copies a successful route reply into `d` (strings truncated to fit). */
void sc_decision_copy(sc_decision_t *d, const proto_reply_t *r);

/* Monotonic time in seconds. */
double sc_now(void);

/* Proxy ------------------------------------------------------------------ */

/* Parses the upstream base URL. Returns 0 or -1 with a message. */
int sc_upstream_init(sc_upstream_t *up, const char *url, char *errbuf, size_t errlen);

/* Frees the idle connections. */
void sc_upstream_close(sc_upstream_t *up);

/* Forwards the call's body to the upstream with call->d.model (first
 * attempt) and streams the answer back; retries as documented. */
void sc_proxy_start(sc_call_t *call);

/* The client went away: stops the upstream request without callbacks. */
void sc_proxy_cancel(sc_call_t *call);

#endif
