/* sc_call.h - one HTTP request of the sidecar from its arrival to its last
 * byte: the state the server and the proxy share, and the callbacks through
 * which the proxy hands a call back to the server that owns it.
 *
 * The server (sc_server.c) creates calls and owns them; the proxy
 * (sc_proxy.c) runs the upstream attempts of the ones it is given. Neither
 * module includes the other's header: the arrows are server -> proxy ->
 * call, and the way back is the table of sc_call_ops_t.
 */
#ifndef SC_CALL_H
#define SC_CALL_H

#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "oai_error.h"
#include "oai_request.h"
#include "proto.h"
#include "sc_metrics.h"
#include "sc_trust.h"

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

/* Why the proxy is about to try another model. */
typedef enum {
    SC_RETRY_NONE = 0,
    SC_RETRY_FREE, /* 402: ask the engine for the free variant */
    SC_RETRY_NEXT, /* 429/5xx: next fallback */
} sc_retry_kind_t;

/* One HTTP request from its arrival to its last byte. */
typedef struct sc_call sc_call_t;

/* What the proxy asks of the server that owns a call. The server fills one
 * table and every call points at it, so the proxy never calls into the
 * server's module (nor the server's struct into the proxy's). */
typedef struct {
    /* Answers the call with an OpenAI-style error and finishes it. */
    void (*reply_error)(sc_call_t *call, const oai_error_t *err);
    /* Adds the X-HPP-Router-* decision headers for `model` to `headers`. */
    void (*add_decision_headers)(const sc_call_t *call, struct evkeyvalq *headers,
                                 const char *model);
    /* Stops watching the client connection for the call (its close no longer
     * cancels it); call before the last reply call, which may free the
     * connection. */
    void (*detach)(sc_call_t *call);
    /* Records metrics, detaches from the client connection and returns the
     * call to the server's pool. The reply must already be sent. */
    void (*finish)(sc_call_t *call);
} sc_call_ops_t;

struct sc_call {
    struct sc_server *srv;      /* owner (opaque here) */
    void *conn;                 /* the owner's state of the client connection, NULL once
                                   detached (opaque here) */
    const sc_call_ops_t *ops;   /* the owner's callbacks */
    struct sc_proxy *px;        /* the proxy running it, NULL until sc_proxy_start */
    struct evhttp_request *req; /* client request; NULL once libevent freed it */
    sc_route_t route;           /* which endpoint */
    double t0;                  /* arrival, monotonic seconds */
    oai_extract_t *x;           /* extraction context, kept across reuse */
    hpp_features_t f;           /* features of the request */
    sc_trust_t trust;           /* its trusted group and budget (f.group may point here) */
    proto_request_t ereq;       /* the engine call's request: kept, a resend encodes it again */
    char free_model[HPP_MAX_MODEL_LEN + 1]; /* proxy: the ":free" model ereq may name */
    uint64_t eng;                           /* engine call in flight, 0 = none */
    double eng_t0;   /* when it was sent (for the engine round-trip histogram) */
    sc_decision_t d; /* the decision */
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
};

/* Monotonic time in seconds. */
double sc_now(void);

/* Copies `s` into dst[n] as a C string, cut to fit. */
void sc_strcopy(char *dst, size_t n, hpp_str_t s);

/* Copies a successful route reply into `d` (strings truncated to fit). */
void sc_decision_copy(sc_decision_t *d, const proto_reply_t *r);

#endif
