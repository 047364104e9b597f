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
#include "sc_usage.h"

#define SC_NAME_MAX 65 /* provider, tier and rule names, with the NUL */

/* An endpoint: a fallback of a decision, or the one an attempt calls. */
typedef struct {
    char model[HPP_MAX_MODEL_LEN + 1];          /* model id */
    char provider[SC_NAME_MAX];                 /* its provider */
    char provider_model[HPP_MAX_MODEL_LEN + 1]; /* the provider's own id */
    char tier[SC_NAME_MAX];                     /* tier it was placed in, may be "" */
    double cost_usd;                            /* estimated cost */
    bool has_cost;                              /* the engine gave the estimate */
} sc_endpoint_t;

/* One upstream attempt of a call, for the access log. */
typedef struct {
    char model[HPP_MAX_MODEL_LEN + 1]; /* model id */
    char provider[SC_NAME_MAX];        /* provider */
    int status;                        /* HTTP status; 0 = no response */
    double seconds;                    /* from its send to its response headers (or failure) */
    double total;                      /* from its send to its end (the engine's report) */
    int up_error;       /* its libevent error + 1 (enum evhttp_request_error, whose 0 is a
                         * timeout), 0 = none */
    bool unreported;    /* not the endpoint's doing (a pooled connection closed) */
    double first_token; /* from its send to the first event with a token (streams), 0 = none */
    sc_usage_t usage;   /* what the answer said it used (sc_usage.h) */
    bool free_variant;  /* the model's `:free` endpoint (reported as ID:free) */
} sc_attempt_t;

/* Attempts a call records: the first, the retries, a 402's free one and a
 * fresh-connection retry. */
#define SC_MAX_ATTEMPTS (HPP_MAX_FALLBACKS + 3)

/* A decision owned by the call (the reply frame it came from is gone). */
typedef struct {
    char model[HPP_MAX_MODEL_LEN + 1];          /* resolved model id */
    char provider[SC_NAME_MAX];                 /* chosen endpoint's provider */
    char provider_model[HPP_MAX_MODEL_LEN + 1]; /* the provider's own id */
    char tier[SC_NAME_MAX];                     /* tier name, may be "" */
    char rule[SC_NAME_MAX]; /* deciding rule, "fail_open" when the engine was down */
    double cost_usd;        /* estimated cost */
    int64_t output_tokens;  /* output tokens the estimate assumed */
    sc_endpoint_t fallbacks[HPP_MAX_FALLBACKS]; /* next best, in order */
    uint32_t nfallbacks;                        /* used entries */
    bool fail_open;                             /* the engine was unreachable */
    uint64_t decision_id;                       /* the engine's id of it, for reports; 0 = none */
} sc_decision_t;

/* Why the proxy is about to try another model. */
typedef enum {
    SC_RETRY_NONE = 0,
    SC_RETRY_FREE,  /* 402: ask the engine for the free variant */
    SC_RETRY_NEXT,  /* 429/5xx: next endpoint (of the same model first, then fallbacks) */
    SC_RETRY_FRESH, /* a pooled connection was closed: the same endpoint, a new connection */
} sc_retry_kind_t;

/* One HTTP request from its arrival to its last byte. */
typedef struct sc_call sc_call_t;

/* What the proxy asks of the server that owns a call. The server fills one
 * table and every call points at it, so the proxy never calls into the
 * server's module (nor the server's struct into the proxy's). */
typedef struct {
    /* Answers the call with an OpenAI-style error and finishes it. */
    void (*reply_error)(sc_call_t *call, const oai_error_t *err);
    /* Adds the X-HPP-Router-* headers of the answering endpoint (call->at)
     * to `headers`. */
    void (*add_decision_headers)(const sc_call_t *call, struct evkeyvalq *headers);
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
    char model_id[HPP_MAX_MODEL_LEN + 1];   /* GET /v1/models/{id}: the id, else "" */
    /* For the access log, copied once the request is read (its body is gone
     * when the call finishes): the model asked for and the group. */
    char requested[HPP_MAX_MODEL_LEN + 1];
    char group[HPP_MAX_GROUP_LEN + 1];
    uint64_t eng;    /* engine call in flight, 0 = none */
    double eng_t0;   /* when it was sent (for the engine round-trip histogram) */
    sc_decision_t d; /* the decision */
    /* proxy state */
    struct evhttp_connection *up_conn;      /* upstream connection in use */
    struct evhttp_request *up_req;          /* upstream request in flight */
    double up_t0;                           /* when it was sent */
    int up_pool;                            /* pool of up_conn (sc_proxy.c) */
    uint32_t up_gen;                        /* the upstream table it came from */
    bool up_reused;                         /* up_conn was idle in the pool before */
    bool fresh_retried;                     /* a reused connection failed and was replaced once */
    sc_endpoint_t at;                       /* the endpoint answering: the decision's, or the
                                               attempt's in proxy mode */
    sc_attempt_t attempts[SC_MAX_ATTEMPTS]; /* upstream attempts so far */
    int nattempts;                          /* used entries of attempts[] */
    int retries;                            /* retries done */
    uint32_t next_fb;                       /* next fallback to consider */
    sc_retry_kind_t retry;                  /* set by the header callback to abort and retry */
    int retry_status;                       /* the upstream status that caused it */
    /* Proxy mode: the providers the upstream table reaches, copied when the
     * request is read (a reload may replace the table while it is routed). */
    char reach[HPP_MAX_PROVIDERS][HPP_MAX_PROVIDER_LEN + 1];
    bool free_tried;      /* the 402 retry was used */
    bool streaming;       /* the reply to the client has started */
    bool buffered;        /* the upstream's answer is collected, then sent in one reply */
    char reason[48];      /* the upstream's reason phrase, for a buffered reply */
    int up_status;        /* the attempt's response status (counted), 0 before headers */
    bool cancelled;       /* the client went away: ignore callbacks */
    int up_error;         /* last upstream error (enum evhttp_request_error) */
    int status;           /* HTTP status answered, for metrics */
    struct event *defer;  /* runs the next attempt from the loop */
    sc_sse_t sse;         /* scanner of a streamed answer's events (usage, first token) */
    struct sc_call *next; /* pool link */
};

/* Monotonic time in seconds. */
double sc_now(void);

/* Copies `s` into dst[n] as a C string, cut to fit. */
void sc_strcopy(char *dst, size_t n, hpp_str_t s);

/* Copies a successful route reply into `d` (strings truncated to fit). */
void sc_decision_copy(sc_decision_t *d, const proto_reply_t *r);

/* The decision's own endpoint, as an attempt would call it. */
void sc_decision_endpoint(const sc_decision_t *d, sc_endpoint_t *out);

#endif
