/* hpprouter/client.h - the C client library of hpp-engine (libhppclient).
 *
 * The public header of the shared library: it includes standard headers
 * only, and every type that is not a plain struct of options is opaque.
 * Build against the installed library with
 *
 *     cc app.c $(pkg-config --cflags --libs hppclient)
 *
 * One request, synchronously:
 *
 *     char err[256];
 *     hpp_client_t *c = hpp_client_new("tcp://127.0.0.1:5555", NULL, err, sizeof err);
 *     hpp_request_t *req = hpp_request_new();
 *     hpp_reply_t *rep = hpp_reply_new();
 *     hpp_request_set_int(req, "prompt_tokens", 1200);
 *     hpp_request_add_str(req, "hints", "code");
 *     if (hpp_client_request(c, req, rep, 200) == HPP_CLIENT_OK) {
 *         char model[257];
 *         hpp_reply_str(rep, "model", model, sizeof model);
 *     }
 *     hpp_reply_destroy(&rep);
 *     hpp_request_destroy(&req);
 *     hpp_client_destroy(&c);
 *
 * Requests and replies name their fields by the wire keys of the protocol
 * (PROTOCOL.md: "prompt_tokens", "hints", "provider_model", ...), so this
 * library, the Python and the Node.js clients and the spec use one
 * vocabulary. Errors are values: nothing here aborts or prints.
 *
 * One client = one ZeroMQ DEALER connected to 1 to 8 engines. Requests may
 * be pipelined (hpp_client_submit several, then hpp_client_await each, or
 * hpp_client_recv in arrival order): replies are matched by id. With several
 * engines each request goes to the next connected one in turn; the
 * synchronous hpp_client_request sends an unanswered request again, with
 * the same id, after resend_ms, then 2x, 4x ... that, to the next engine,
 * within its timeout (the first reply wins, a late twin is dropped and
 * counted); a `reload` is never sent twice. With CURVE every connection is
 * encrypted and authenticated; a client key the engine does not allow gets
 * no answer at all (HPP_ERR_TIMEOUT).
 *
 * A client, a request and a reply are not thread-safe: use one client per
 * thread, optionally sharing one ZeroMQ context (a `void *` from zmq_ctx_new).
 */
#ifndef HPPROUTER_CLIENT_H
#define HPPROUTER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library exports these symbols only (it is built -fvisibility=hidden). */
#if defined(__GNUC__)
#define HPP_CLIENT_API __attribute__((visibility("default")))
#else
#define HPP_CLIENT_API
#endif

/* The library's ABI version: libhppclient.so.MAJOR.MINOR, soname
 * libhppclient.so.MAJOR. MINOR grows when symbols are added. */
#define HPP_CLIENT_VERSION_MAJOR 1
#define HPP_CLIENT_VERSION_MINOR 0

/* "MAJOR.MINOR" of the library actually loaded. */
HPP_CLIENT_API const char *hpp_client_version(void);

/* Return codes: 0 or one of the negative values. */
typedef enum {
    HPP_CLIENT_OK = 0,
    HPP_ERR_ARG = -1,       /* invalid argument (NULL, bad endpoint, unknown key, bad value) */
    HPP_ERR_TRANSPORT = -2, /* ZeroMQ failed */
    HPP_ERR_TIMEOUT = -3,   /* no reply (or no room to send) in time */
    HPP_ERR_PROTO = -4,     /* the reply is not valid protocol */
    HPP_ERR_ENGINE = -5,    /* the engine answered ok=false: see the reply's "error.code" */
    HPP_ERR_NOMEM = -6,     /* allocation failed */
} hpp_rc_t;

/* "ok", "timeout", ... Never NULL. */
HPP_CLIENT_API const char *hpp_strerror(int rc);

/* Connecting ---------------------------------------------------------------- */

typedef struct hpp_client hpp_client_t;

/* Replies the client keeps for an await while waiting for another id. When
 * full, the oldest is dropped (counted by hpp_client_dropped). */
#define HPP_CLIENT_STASH 1024
#define HPP_CLIENT_MAX_ENDPOINTS 8  /* engines one client connects to */
#define HPP_CLIENT_HEARTBEAT_MS 500 /* default ZMTP heartbeat interval */
#define HPP_CLIENT_RESEND_MS 100    /* default first resend of an unanswered request */

/* How to connect. Start from hpp_client_opts_init(); a field left zero
 * (a struct zeroed by hand) means "off". */
typedef struct {
    const char *const *endpoints; /* 1 .. HPP_CLIENT_MAX_ENDPOINTS engines */
    size_t nendpoints;            /* how many */
    const char *curve_server_key; /* file: the engines' CURVE public key, or NULL */
    const char
        *curve_secret_key; /* file: this client's CURVE secret key, or NULL (both or neither) */
    int heartbeat_ms;      /* ZMTP PING every this many ms; an engine silent for 3x is
                              dropped. 0 = no heartbeat */
    int resend_ms;         /* synchronous calls: first resend of an unanswered request after
                              this many ms, then doubling. 0 = send once */
} hpp_client_opts_t;

/* No endpoint, no CURVE, heartbeat HPP_CLIENT_HEARTBEAT_MS, resend
 * HPP_CLIENT_RESEND_MS. */
HPP_CLIENT_API void hpp_client_opts_init(hpp_client_opts_t *opts);

/* Connects one DEALER to every endpoint of `opts` (read during the call
 * only). `zmq_ctx` may be NULL (the client then owns a context of its own)
 * or a ZeroMQ context shared by several clients, which must outlive them.
 * Returns NULL with a message in errbuf: a bad endpoint, a key file that
 * cannot be read or is readable by others, a libzmq without CURVE. The
 * secret key is read from its file (mode 0600), never from argv, and wiped
 * from memory once ZeroMQ has it. */
HPP_CLIENT_API hpp_client_t *hpp_client_new_opts(const hpp_client_opts_t *opts, void *zmq_ctx,
                                                 char *errbuf, size_t errlen);

/* One endpoint, the defaults of hpp_client_opts_init except resend_ms = 0:
 * each request is sent once. */
HPP_CLIENT_API hpp_client_t *hpp_client_new(const char *endpoint, void *zmq_ctx, char *errbuf,
                                            size_t errlen);

/* Closes the socket (pending requests are abandoned) and frees the client;
 * idempotent. */
HPP_CLIENT_API void hpp_client_destroy(hpp_client_t **self_p);

/* The last error's details ("reply: v: required key missing"), "" if none. */
HPP_CLIENT_API const char *hpp_client_errstr(const hpp_client_t *self);

/* Replies dropped from a full stash so far. */
HPP_CLIENT_API size_t hpp_client_dropped(const hpp_client_t *self);

/* What the client did on its own so far. */
typedef struct {
    size_t dropped;    /* replies dropped from a full stash (hpp_client_dropped) */
    size_t resent;     /* requests sent again for want of a reply */
    size_t duplicates; /* second replies to a resent request, dropped */
} hpp_client_counters_t;

HPP_CLIENT_API void hpp_client_counters(const hpp_client_t *self, hpp_client_counters_t *out);

/* Requests ---------------------------------------------------------------- */

/* A request: an op ("route" unless set), an id (given when sent, unless
 * set) and the features. It owns copies of its strings and can be reset and
 * reused without allocating. */
typedef struct hpp_request hpp_request_t;

/* A route request with every feature at its default; NULL when out of memory. */
HPP_CLIENT_API hpp_request_t *hpp_request_new(void);
/* Back to what hpp_request_new returned. */
HPP_CLIENT_API void hpp_request_reset(hpp_request_t *req);
HPP_CLIENT_API void hpp_request_destroy(hpp_request_t **req_p);

/* Setters, by wire key. Each returns 0, or HPP_ERR_ARG for an unknown key,
 * a key of another type or a value out of its range, with the reason in
 * hpp_request_errstr ("prompt_tokens: must be an integer from 0 to
 * 100000000"). The engine checks everything again.
 *
 *   set_str:  op ("route", "explain", "models", "stats", "reload", "ping"),
 *             id (a string id), model, group, text, providers_sort (price,
 *             latency, throughput)
 *   set_int:  id (an integer id), prompt_tokens, output_tokens,
 *             cache_read_tokens, cache_write_tokens, reasoning_tokens, images
 *   set_num:  budget_usd, max_price.prompt, max_price.completion (USD per
 *             1M tokens), max_price.request, max_price.image (USD each),
 *             preferred_max_latency (seconds), preferred_min_throughput
 *             (tokens per second)
 *   set_bool: vision, tools, json, allow_fallbacks
 *   add_str:  hints, providers_order, providers_only, providers_ignore, models
 *   set_meta: one meta pair (a key given again replaces its value)
 */
HPP_CLIENT_API int hpp_request_set_str(hpp_request_t *req, const char *key, const char *value);
HPP_CLIENT_API int hpp_request_set_int(hpp_request_t *req, const char *key, int64_t value);
HPP_CLIENT_API int hpp_request_set_num(hpp_request_t *req, const char *key, double value);
HPP_CLIENT_API int hpp_request_set_bool(hpp_request_t *req, const char *key, bool value);
HPP_CLIENT_API int hpp_request_add_str(hpp_request_t *req, const char *key, const char *value);
HPP_CLIENT_API int hpp_request_set_meta(hpp_request_t *req, const char *key, const char *value);

/* Why the last setter failed, "" if none. */
HPP_CLIENT_API const char *hpp_request_errstr(const hpp_request_t *req);

/* Replies ------------------------------------------------------------------ */

/* A received reply: it owns the frame until the next receive into it or
 * hpp_reply_close. */
typedef struct hpp_reply hpp_reply_t;

/* An empty reply; NULL when out of memory. */
HPP_CLIENT_API hpp_reply_t *hpp_reply_new(void);
/* Releases the frame (the reply stays usable); idempotent. */
HPP_CLIENT_API void hpp_reply_close(hpp_reply_t *rep);
HPP_CLIENT_API void hpp_reply_destroy(hpp_reply_t **rep_p);

/* The reply's `ok`; false when it holds no reply. */
HPP_CLIENT_API bool hpp_reply_ok(const hpp_reply_t *rep);

/* Copies a string field, NUL-terminated and cut to `size`, into buf (which
 * may be NULL when size is 0) and returns its full length, like snprintf
 * (0 for a field the reply does not have). Keys: model, provider,
 * provider_model, tier, rule, policy_hash, error.code, error.message.
 * HPP_ERR_ARG for another key. */
HPP_CLIENT_API int hpp_reply_str(const hpp_reply_t *rep, const char *key, char *buf, size_t size);

/* A number field into *out (0 when the reply does not have it): cost_usd,
 * output_tokens, policy_version, decision_id (for reports), v, and the exact parts in picodollars
 * cost_pusd.input, .output, .cache, .fees, .total (integers, also given
 * exactly by hpp_reply_int). HPP_ERR_ARG for another key. */
HPP_CLIENT_API int hpp_reply_num(const hpp_reply_t *rep, const char *key, double *out);
HPP_CLIENT_API int hpp_reply_int(const hpp_reply_t *rep, const char *key, int64_t *out);

/* The decision's fallbacks: how many, and a string field (model, provider,
 * provider_model, tier) of fallback i, as hpp_reply_str. */
HPP_CLIENT_API size_t hpp_reply_nfallbacks(const hpp_reply_t *rep);
HPP_CLIENT_API int hpp_reply_fallback_str(const hpp_reply_t *rep, size_t i, const char *key,
                                          char *buf, size_t size);

/* The whole reply as one line of JSON (models, stats, explain's trace ...),
 * to be free()d; NULL when there is no reply or no memory. */
HPP_CLIENT_API char *hpp_reply_json(const hpp_reply_t *rep);

/* The raw reply frame (a MessagePack map, PROTOCOL.md), borrowed from the
 * reply; NULL when it holds none. */
HPP_CLIENT_API const void *hpp_reply_data(const hpp_reply_t *rep, size_t *len);

/* Calls -------------------------------------------------------------------- */

/* Sends `req` and waits for its reply, resending as the options say, all
 * within timeout_ms (-1 = forever). Returns HPP_ERR_ENGINE, with the reply
 * in `rep`, when the engine answered ok=false. A request without an id is
 * given a fresh integer one. */
HPP_CLIENT_API int hpp_client_request(hpp_client_t *self, hpp_request_t *req, hpp_reply_t *rep,
                                      int timeout_ms);

/* Sends `req` once without waiting for its reply (pipelining); waits at most
 * timeout_ms for room in the send queue. A request without an id is given a
 * fresh integer one, kept in `req` for hpp_client_await. */
HPP_CLIENT_API int hpp_client_submit(hpp_client_t *self, hpp_request_t *req, int timeout_ms);

/* Receives the reply to a submitted `req` (matched by its id); replies to
 * other requests that arrive meanwhile are kept for their own await.
 * HPP_ERR_ENGINE, with the reply in `rep`, when the engine answered ok=false. */
HPP_CLIENT_API int hpp_client_await(hpp_client_t *self, const hpp_request_t *req, hpp_reply_t *rep,
                                    int timeout_ms);

/* Receives the next reply, whatever its id (kept replies first); an
 * ok=false reply is returned as 0 too: check hpp_reply_ok. */
HPP_CLIENT_API int hpp_client_recv(hpp_client_t *self, hpp_reply_t *rep, int timeout_ms);

/* Reports ------------------------------------------------------------------ */

/* One call to an endpoint, as a report tells it (PROTOCOL.md "Reports").
 * Start from hpp_attempt_init: figures not measured stay negative. */
typedef struct {
    uint64_t decision;         /* the decision reply's decision_id; 0 = none */
    const char *model;         /* the model called (required) */
    const char *provider;      /* its provider, as in the decision (required) */
    int status;                /* the HTTP status, 100..599; 0 when `error` is set */
    const char *error;         /* no HTTP answer: "timeout", "connect", "tls", "reset",
                                * "protocol", "canceled"; NULL with a status */
    double latency_ms;         /* request sent to the answer's end */
    double ttft_ms;            /* request sent to the first token (streams) */
    double tokens_per_s;       /* output tokens per second after the first */
    int64_t prompt_tokens;     /* the usage the provider returned */
    int64_t completion_tokens; /* reasoning tokens included, as OpenAI counts */
    int64_t cached_tokens;     /* part of prompt_tokens read from a cache */
    int64_t reasoning_tokens;  /* part of completion_tokens */
    double cost_usd;           /* the provider's own cost of the call */
} hpp_attempt_t;

/* Nothing measured: zero ids, negative figures. */
HPP_CLIENT_API void hpp_attempt_init(hpp_attempt_t *a);

/* Sends `n` attempts (1 to 64) in one report frame, once: a report is never
 * resent (the engine would count it twice). Without `ack` it returns once
 * the frame is queued, and the engine answers only a refused report (that
 * reply then comes out of a later hpp_client_recv as ok=false). With `ack`
 * it waits for the engine's answer in `rep`: ok with the count taken
 * (hpp_reply_json shows it), or HPP_ERR_ENGINE with the located refusal
 * ("attempts[1].provider: ..."). HPP_ERR_ARG, before sending, for an
 * attempt the protocol refuses (no model or provider, both or neither of
 * status and error, an unknown error class, a status out of range). */
HPP_CLIENT_API int hpp_client_send_report(hpp_client_t *self, const hpp_attempt_t *attempts,
                                          size_t n, bool ack, hpp_reply_t *rep, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
