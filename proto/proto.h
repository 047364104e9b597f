/* proto.h - the hpprouter wire schema: the one encoder/decoder of the
 * msgpack maps exchanged with hpp-engine (spec: proto/PROTOCOL.md).
 *
 * Engine, sidecar and clients use these functions and never touch raw
 * msgpack. Decoders are zero-copy: every string they return (hpp_str_t)
 * points into the input buffer, so a decoded request or reply is valid only
 * as long as that buffer (usually a zmq_msg_t) is alive and unchanged.
 * Encoders write into a proto_buf_t: a caller-provided fixed array (no
 * allocation at all) or a growable buffer kept per worker (allocates only
 * while it grows to its high-water mark).
 *
 * Errors are values: every function returns PROTO_OK (0) or a negative
 * proto_err_t, and decoders fill a proto_error_t whose message names the key
 * ("prompt_tokens: expected non-negative integer, got string").
 */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpp_request.h"

#define PROTO_VERSION 1

/* Limits (see PROTOCOL.md "Limits"). */
#define PROTO_MAX_FRAME 65536            /* request body bytes; larger: bad_request */
#define PROTO_MAX_HARD_FRAME (16u << 20) /* the engine disconnects a peer above this */
#define PROTO_MAX_ID 64                  /* bytes of a string id */
#define HPP_MAX_MODEL_LEN 256            /* bytes of `model` */
#define HPP_MAX_GROUP_LEN 64             /* bytes of `group` */
#define HPP_MAX_HINT_LEN 64              /* bytes of one hint */
#define HPP_MAX_TEXT_LEN 16384           /* bytes of `text` */
#define HPP_MAX_META_KEY_LEN 64          /* bytes of a meta key */
#define HPP_MAX_META_VAL_LEN 256         /* bytes of a meta value */
#define PROTO_MAX_JSON_DEPTH 32          /* nesting accepted by proto_to_json */

/* Operations, in wire order of the `op` names. */
typedef enum {
    PROTO_OP_ROUTE = 0, /* "route": one decision */
    PROTO_OP_EXPLAIN,   /* "explain": decision + trace */
    PROTO_OP_MODELS,    /* "models": the catalog */
    PROTO_OP_STATS,     /* "stats": counters, reload state */
    PROTO_OP_RELOAD,    /* "reload": recompile policy + catalog */
    PROTO_OP_PING,      /* "ping": liveness */
    PROTO_OP_REPORT,    /* "report": outcomes of calls (no reply unless `ack`) */
    PROTO_OP_LEDGER,    /* "ledger": read a key's spend, top up or set an account */
    PROTO_OP_COUNT
} proto_op_t;

/* "route" ... "ping"; "unknown" for an out-of-range value. */
const char *proto_op_name(proto_op_t op);
/* Parses an op name; -1 if unknown. */
int proto_op_from_name(const char *name, size_t len);

/* Result codes. */
typedef enum {
    PROTO_OK = 0,
    PROTO_ERR_TRUNCATED = -1,   /* input ends inside a value */
    PROTO_ERR_MALFORMED = -2,   /* not msgpack (0xc1), or bytes after the map */
    PROTO_ERR_TOO_LARGE = -3,   /* frame over PROTO_MAX_FRAME */
    PROTO_ERR_NOT_MAP = -4,     /* the frame is not one msgpack map */
    PROTO_ERR_TYPE = -5,        /* a key's value has the wrong type */
    PROTO_ERR_RANGE = -6,       /* a number out of its range */
    PROTO_ERR_MISSING = -7,     /* a required key is absent */
    PROTO_ERR_LIMIT = -8,       /* a string too long, too many hints or meta */
    PROTO_ERR_DUPLICATE = -9,   /* a key given twice */
    PROTO_ERR_VERSION = -10,    /* `v` is not a version this side speaks */
    PROTO_ERR_UNKNOWN_OP = -11, /* `op` names no operation */
    PROTO_ERR_ENVELOPE = -12,   /* ZMQ frames not shaped as the spec says */
    PROTO_ERR_NOSPACE = -13,    /* encoder: fixed output buffer too small */
    PROTO_ERR_DEPTH = -14,      /* nesting deeper than PROTO_MAX_JSON_DEPTH */
    PROTO_ERR_ENGINE = -15,     /* a reply with ok=false (see its error code) */
} proto_err_t;

#define PROTO_ERR_COUNT 16

/* "truncated", "type", ...; "ok" for PROTO_OK. Never NULL. */
const char *proto_err_name(int code);
/* The wire error code a decoder failure answers with: unknown_op for
 * PROTO_ERR_UNKNOWN_OP, internal for PROTO_ERR_NOSPACE, else bad_request. */
hpp_status_t proto_err_status(int code);

/* A decoder error: code, byte offset in the input, message naming the key. */
typedef struct {
    int code;      /* proto_err_t */
    size_t offset; /* byte offset where the problem was found */
    char msg[192]; /* e.g. "hints[2]: expected string, got integer" */
} proto_error_t;

/* Output buffer ---------------------------------------------------------- */

typedef struct {
    char *data;    /* bytes written so far */
    size_t len;    /* used bytes */
    size_t cap;    /* allocated bytes */
    bool growable; /* false: caller-provided memory, never reallocated */
    bool overflow; /* a write did not fit (fixed) or allocation failed */
} proto_buf_t;

/* Wraps caller memory; nothing is ever allocated. */
void proto_buf_init_fixed(proto_buf_t *b, void *mem, size_t cap);
/* A growable heap buffer starting at `initial` bytes. Returns 0 or -1. */
int proto_buf_init(proto_buf_t *b, size_t initial);
/* Empties the buffer, keeping its memory. */
void proto_buf_reset(proto_buf_t *b);
/* Frees a growable buffer's memory; idempotent, a no-op for fixed ones. */
void proto_buf_destroy(proto_buf_t *b);

/* Request ids --------------------------------------------------------------- */

typedef enum { PROTO_ID_NONE = 0, PROTO_ID_UINT, PROTO_ID_STR } proto_id_kind_t;

/* The client-chosen `id`, echoed in the reply in the same type. */
typedef struct {
    proto_id_kind_t kind; /* none, unsigned integer or string */
    uint64_t num;         /* PROTO_ID_UINT */
    hpp_str_t str;        /* PROTO_ID_STR, borrowed, <= PROTO_MAX_ID bytes */
} proto_id_t;

static inline proto_id_t proto_id_uint(uint64_t n)
{
    proto_id_t id = {.kind = PROTO_ID_UINT, .num = n};
    return id;
}

/* True when both ids have the same kind and value. */
bool proto_id_equal(const proto_id_t *a, const proto_id_t *b);

/* Requests ------------------------------------------------------------------ */

/* The `attempts` of a report, as the decoder found them: the raw msgpack
 * array (borrowed from the frame, every entry already checked), walked with
 * proto_attempts_next. */
typedef struct {
    const void *ptr; /* first byte of the first entry */
    size_t len;      /* bytes of all entries */
    uint32_t n;      /* entries */
} proto_attempts_t;

/* What a `ledger` request asks (PROTOCOL.md "Ledger"). */
typedef enum {
    PROTO_LEDGER_NONE = 0,    /* not given: bad_request for the ledger op */
    PROTO_LEDGER_KEY,         /* "key": one key's spend and limits (any client) */
    PROTO_LEDGER_TOPUP,       /* "topup": add amount_usd to an account (admin) */
    PROTO_LEDGER_SET_BALANCE, /* "set_balance": set an account's balance_usd (admin) */
    PROTO_LEDGER_ACCOUNTS,    /* "accounts": every account's balance and spend (admin) */
    PROTO_LEDGER_COUNT
} proto_ledger_action_t;

#define PROTO_MAX_ACCOUNT_LEN 71     /* bytes of an account name (a key hash fits) */
#define PROTO_MAX_LEDGER_USD 1000000 /* largest amount_usd / balance_usd, by magnitude */

/* "key", "topup", ...; "none" for PROTO_LEDGER_NONE. */
const char *proto_ledger_action_name(proto_ledger_action_t a);
/* True for the actions only an admin key may ask for. */
bool proto_ledger_action_admin(proto_ledger_action_t a);

typedef struct {
    proto_ledger_action_t action; /* what is asked */
    hpp_str_t account;            /* topup, set_balance: the account (1..71 bytes) */
    bool has_amount;              /* amount_pd was given */
    int64_t amount_pd;            /* topup: amount_usd (> 0); set_balance: balance_usd */
} proto_ledger_req_t;

typedef struct {
    uint32_t v;                /* protocol version (PROTO_VERSION) */
    proto_id_t id;             /* echoed in the reply */
    proto_op_t op;             /* what to do */
    hpp_features_t features;   /* route and explain (and ledger's `key`); defaults otherwise */
    proto_attempts_t attempts; /* report: the outcomes, checked */
    bool ack;                  /* report: the client wants a reply */
    proto_ledger_req_t ledger; /* ledger: the action and its arguments */
} proto_request_t;

/* v = PROTO_VERSION, no id, the given op, features at their defaults. */
void proto_request_init(proto_request_t *req, proto_op_t op);

/* Decodes one request frame. Strings in `out` borrow from `buf`. On error
 * `out->id` still holds the request's id when it could be found (so the
 * error reply can be addressed), `out->op` the op when it was read before
 * the failure (else ping), `err` says what and where. Allocation-free. */
int proto_request_decode(const void *buf, size_t len, proto_request_t *out, proto_error_t *err);

/* Encodes a request (clients). Only non-default features are written. */
int proto_request_encode(proto_buf_t *b, const proto_request_t *req);

/* Replies: encoders (engine) ---------------------------------------------- */

/* {v, id, ok:false, error:{code, message}}. */
int proto_reply_error(proto_buf_t *b, const proto_id_t *id, hpp_status_t code, const char *message);

/* An endpoint as the wire names it. */
typedef struct {
    hpp_str_t model;          /* model id */
    hpp_str_t provider;       /* endpoint's provider */
    hpp_str_t provider_model; /* the provider's own id */
} proto_endpoint_t;

/* The model, provider and provider_model of every endpoint of a catalog,
 * encoded once (per snapshot) so that a decision reply copies the nine
 * endpoints it names instead of packing some thirty strings. */
typedef struct proto_epwire proto_epwire_t;

/* The table of `n` endpoints (index i is eps[i]), or NULL when out of memory. */
proto_epwire_t *proto_epwire_new(const proto_endpoint_t *eps, size_t n);
void proto_epwire_destroy(proto_epwire_t **self_p);

#define PROTO_NO_INDEX UINT32_MAX

/* A decision as the wire says it: the names, not the engine's objects.
 * Strings are borrowed. An endpoint whose `*_index` names an entry of the
 * epwire table given to the encoder is copied from the table (same bytes,
 * faster); PROTO_NO_INDEX packs its strings. */
typedef struct {
    hpp_status_t status;                           /* HPP_OK, else an error reply */
    const char *message;                           /* the error's message */
    proto_endpoint_t endpoint;                     /* the chosen endpoint */
    uint32_t endpoint_index;                       /* its epwire index */
    hpp_str_t tier;                                /* tier name, may be empty */
    hpp_str_t rule;                                /* deciding rule */
    hpp_cost_t cost;                               /* estimate, picodollars */
    int64_t output_tokens;                         /* output tokens estimated */
    proto_endpoint_t fallbacks[HPP_MAX_FALLBACKS]; /* next best, in order */
    uint32_t fallback_index[HPP_MAX_FALLBACKS];    /* their epwire indexes */
    hpp_str_t fallback_tier[HPP_MAX_FALLBACKS];    /* their tiers, may be empty */
    hpp_pusd_t fallback_cost[HPP_MAX_FALLBACKS];   /* their estimates (total) */
    uint32_t nfallbacks;                           /* used entries */
    uint64_t decision_id;                          /* for reports; 0 = not sent */
    bool has_ledger;                               /* a ledger reserved: the two below are sent */
    int64_t reserved_pd;                           /* the estimate reserved, picodollars */
    int64_t remaining_pd; /* least of balance, key and day remaining after it */
} proto_decision_t;

/* The reply to route: the decision, or its error when d->status != HPP_OK.
 * `wire` may be NULL (then every endpoint's strings are packed). */
int proto_reply_decision(proto_buf_t *b, const proto_id_t *id, const proto_decision_t *d,
                         const proto_epwire_t *wire);

/* What the engine has measured of an endpoint (from reports), as explain
 * shows it. A figure not measured yet is negative. */
typedef struct {
    uint64_t attempts;     /* reports counted */
    double error_rate;     /* decayed share of failed attempts, 0..1 */
    uint32_t fails;        /* consecutive failures (429, 5xx, transport) */
    double cooldown_s;     /* seconds left of its cooldown, 0 = none */
    double latency_ms;     /* EWMA of the total latency */
    double latency_p90_ms; /* 90th percentile of the latency (log buckets) */
    double ttft_ms;        /* EWMA of the time to first token */
    double tokens_per_s;   /* EWMA of the output throughput */
} proto_health_t;

/* One candidate of an explain trace. */
typedef struct {
    proto_endpoint_t endpoint; /* the candidate (provider_model unused) */
    hpp_str_t tier;            /* tier it was considered in, may be empty */
    const char *reason;        /* why not, or "chosen" */
    hpp_pusd_t cost;           /* its estimate (total); HPP_PRICE_NA: none was made */
    bool has_health;           /* health below was measured (a report came) */
    proto_health_t health;     /* the endpoint's health when it was considered */
} proto_candidate_t;

/* The trace of an explain reply. */
typedef struct {
    const char *const *hints; /* final hint names */
    uint32_t nhints;          /* entries of hints */
    const char *const *rules; /* routing rules evaluated, in order */
    uint32_t nrules;          /* entries of rules */
    size_t ncandidates;       /* candidates seen */
    /* Fills candidate i (0 <= i < ncandidates): the encoder asks for each in
     * turn, so the caller needs no array of views. */
    void (*candidate)(const void *arg, size_t i, proto_candidate_t *out);
    const void *arg;  /* the callback's argument */
    uint64_t dropped; /* candidates not recorded */
} proto_trace_t;

/* The reply to explain: as route plus `trace` (also on error). */
int proto_reply_explain(proto_buf_t *b, const proto_id_t *id, const proto_decision_t *d,
                        const proto_trace_t *t);

/* One entry of the models array, as the encoder is given it. */
typedef struct {
    hpp_str_t id;                 /* model id */
    const char *owner;            /* owned_by */
    uint32_t context_length;      /* tokens, 0 = unknown */
    uint32_t max_output;          /* tokens, 0 = unknown */
    uint32_t caps;                /* HPP_CAP_* bits */
    const char *const *providers; /* provider of each endpoint */
    uint32_t nproviders;          /* endpoints serving it */
    bool free;                    /* a $0 endpoint exists */
    hpp_price_t price;            /* cheapest enabled endpoint's prices */
} proto_model_t;

/* Encodes the `models` array on its own, so the engine can build it once
 * per snapshot and splice it into every models reply. */
int proto_models_encode(proto_buf_t *b, const proto_model_t *models, size_t n);

/* {v, id, ok:true, models: <blob from proto_models_encode>}. */
int proto_reply_models(proto_buf_t *b, const proto_id_t *id, const void *models, size_t len);

/* {v, id, ok:true, policy_version, version}. */
int proto_reply_ping(proto_buf_t *b, const proto_id_t *id, uint64_t policy_version,
                     const char *engine_version);

/* {v, id, ok:true, policy_version, policy_hash, version}: the engine's ping.
 * `policy_hash` (lowercase hex SHA-256 of the snapshot's files) is left out
 * when NULL, which is proto_reply_ping. */
int proto_reply_ping_hash(proto_buf_t *b, const proto_id_t *id, uint64_t policy_version,
                          const char *policy_hash, const char *engine_version);

/* The result of one (re)load, as reported by reload and stats. */
typedef struct {
    bool ok;                  /* the new snapshot serves */
    double at;                /* when, Unix time in seconds */
    const char *trigger;      /* "startup", "sighup", "op", "watch" */
    uint64_t policy_version;  /* version serving after it */
    const char *policy_hash;  /* hex SHA-256 of that version's files; NULL = not sent */
    const char *const *diags; /* "file:line:col: error: msg" lines */
    uint32_t ndiags;          /* entries of diags */
} proto_reload_info_t;

/* {v, id, ok, policy_version, policy_hash?, diagnostics[], error? } for the
 * reload op. */
int proto_reply_reload(proto_buf_t *b, const proto_id_t *id, const proto_reload_info_t *r);

/* Everything the stats op reports. */
typedef struct {
    uint64_t policy_version;           /* serving snapshot version */
    const char *policy_hash;           /* its hex SHA-256, NULL = not sent */
    double uptime_s;                   /* seconds since start */
    uint32_t threads;                  /* worker threads */
    const char *policy;                /* policy path */
    const char *const *catalogs;       /* catalog specs */
    uint32_t ncatalogs;                /* entries of catalogs */
    uint64_t models;                   /* models in the catalog */
    uint64_t endpoints;                /* endpoints in the catalog */
    uint64_t requests[PROTO_OP_COUNT]; /* decoded requests by op */
    uint64_t errors[HPP_STATUS_COUNT]; /* error replies by code (HPP_OK unused) */
    uint64_t malformed;                /* frames that failed to decode or had a bad envelope */
    uint64_t dropped;                  /* replies that could not be delivered */
    uint64_t refused;                  /* requests refused by a per-client or engine limit */
    uint64_t queued_bytes;             /* reply bytes not yet written: large ones, and --direct's */
    uint64_t decision_log_dropped;     /* decision log lines not written (disk full...) */
    uint64_t reloads_ok;               /* successful reloads (startup excluded) */
    uint64_t reloads_failed;           /* rejected reloads */
    proto_reload_info_t last_reload;   /* most recent (re)load */
    uint64_t reports;                  /* report frames applied */
    uint64_t report_attempts;          /* attempts they carried */
    uint64_t reports_refused;          /* report frames refused (bad field, unknown endpoint) */
    /* The ledger (`ledger` map, sent when ledger_store is not NULL). */
    const char *ledger_store;     /* "sqlite", "redis"; "" = keys only; NULL = no ledger */
    uint64_t ledger_keys;         /* keys in the key table serving */
    uint64_t ledger_reservations; /* decisions reserved */
    uint64_t ledger_settled;      /* reservations settled by a report */
    uint64_t ledger_released;     /* released by a report none of whose attempts answered */
    uint64_t ledger_expired;      /* released after --ledger-hold */
    uint64_t ledger_duplicates;   /* reports of decisions already settled, or unknown */
    uint64_t ledger_unavailable;  /* store failures */
} proto_stats_t;

int proto_reply_stats(proto_buf_t *b, const proto_id_t *id, const proto_stats_t *s);

/* Ledger replies (PROTOCOL.md "Ledger"). Every amount is sent twice: as a
 * float of USD (`*_usd`) and as exact integer picodollars (`*_pd`). */

#define PROTO_LEDGER_NONE_PD INT64_MIN /* a limit not set: sent as nil */

/* One key's state, the reply to `ledger` action `key`. */
typedef struct {
    hpp_str_t key;             /* "sha256:..." */
    hpp_str_t group;           /* its group */
    hpp_str_t account;         /* the account it spends */
    int64_t balance_pd;        /* the account's balance (settled charges taken off) */
    int64_t limit_pd;          /* the key's lifetime limit, PROTO_LEDGER_NONE_PD = none */
    int64_t remaining_pd;      /* limit - spent - reserved, PROTO_LEDGER_NONE_PD = no limit */
    int64_t daily_pd;          /* the key's daily limit, PROTO_LEDGER_NONE_PD = none */
    int64_t day_spent_pd;      /* settled today (the ledger's day) */
    int64_t day_requests;      /* requests decided today */
    int64_t day_free_requests; /* of which to $0 models */
    int64_t requests;          /* requests settled, ever */
    int64_t prompt_tokens;     /* tokens settled, ever */
    int64_t completion_tokens; /* tokens settled, ever */
    int64_t spent_pd;          /* settled charges, ever */
    int64_t reserved_pd;       /* reserved now (decisions not settled yet) */
    /* What the checks also take off, so a client can show what a request may
     * still spend: the account's reservations by all its keys (off the
     * balance) and the key's reservations of the day (off the daily limit).
     * 0 from an engine that does not send them. */
    int64_t account_reserved_pd;
    int64_t day_reserved_pd;
} proto_ledger_key_t;

int proto_reply_ledger_key(proto_buf_t *b, const proto_id_t *id, const proto_ledger_key_t *k);

/* {v, id, ok, account, balance_usd, balance_pd}: topup and set_balance. */
int proto_reply_ledger_balance(proto_buf_t *b, const proto_id_t *id, hpp_str_t account,
                               int64_t balance_pd);

/* One account, as `ledger` action `accounts` lists it. */
typedef struct {
    hpp_str_t account;   /* its name */
    int64_t balance_pd;  /* balance */
    int64_t reserved_pd; /* reserved by its keys now */
    int64_t spent_pd;    /* settled charges of its keys, ever */
} proto_ledger_account_t;

/* {v, id, ok, accounts: [{account, balance_*, reserved_*, spent_*}...]}:
 * `get` fills entry i (0 <= i < n) in turn. */
int proto_reply_ledger_accounts(proto_buf_t *b, const proto_id_t *id, size_t n,
                                void (*get)(const void *arg, size_t i, proto_ledger_account_t *out),
                                const void *arg);

/* Replies: decoder (clients) ------------------------------------------------ */

/* A fallback of a decision: an endpoint, its tier and its estimate. */
typedef struct {
    hpp_str_t model;          /* model id */
    hpp_str_t provider;       /* endpoint's provider */
    hpp_str_t provider_model; /* the provider's own id */
    hpp_str_t tier;           /* tier it was placed in, may be empty */
    double cost_usd;          /* the request's estimate there, USD; < 0 = not sent */
} proto_fallback_t;

/* The common part of every reply plus the decision fields of route/explain.
 * Absent fields stay empty / zero. Strings borrow from the reply buffer. */
typedef struct {
    uint32_t v;                                    /* protocol version */
    proto_id_t id;                                 /* echoed id */
    bool ok;                                       /* success */
    hpp_status_t status;                           /* HPP_OK or the error code */
    hpp_str_t code;                                /* error code as sent */
    hpp_str_t message;                             /* error message */
    hpp_str_t model;                               /* chosen model id */
    hpp_str_t provider;                            /* chosen endpoint's provider */
    hpp_str_t provider_model;                      /* the provider's own id */
    hpp_str_t tier;                                /* tier name, may be empty */
    hpp_str_t rule;                                /* deciding rule */
    double cost_usd;                               /* estimate, USD */
    hpp_cost_t cost;                               /* estimate parts, picodollars */
    int64_t output_tokens;                         /* output tokens estimated */
    proto_fallback_t fallbacks[HPP_MAX_FALLBACKS]; /* next best, in order */
    uint32_t nfallbacks;                           /* used entries */
    uint64_t policy_version;                       /* ping, reload, stats */
    hpp_str_t policy_hash; /* ping, reload, stats: hex SHA-256, empty when absent */
    uint64_t decision_id;  /* route, explain: the id reports name; 0 when absent */
    bool has_ledger;       /* reserved_pd and remaining_pd were sent (a ledger is on) */
    int64_t reserved_pd;   /* route: the estimate the ledger reserved, picodollars */
    int64_t remaining_pd;  /* route: what the key may still spend after it, picodollars */
} proto_reply_t;

/* Decodes any reply. Returns PROTO_OK for a well-formed reply whether ok is
 * true or false (check out->ok / out->status); unknown keys are skipped, a
 * known key given twice (at any level) is PROTO_ERR_DUPLICATE. */
int proto_reply_decode(const void *buf, size_t len, proto_reply_t *out, proto_error_t *err);

/* Reads only what a pipelining client needs to match a reply to its request:
 * v, id, ok and status (an error reply, which is small, is decoded in full).
 * The engine writes v, id and ok first, so for a decision this reads a few
 * bytes instead of the whole reply; other key orders work too. The rest of a
 * successful reply is not checked: proto_reply_decode does that when the
 * reply is used. */
int proto_reply_peek(const void *buf, size_t len, proto_reply_t *out, proto_error_t *err);

/* One entry of a models reply. */
typedef struct {
    hpp_str_t id;            /* model id */
    hpp_str_t owned_by;      /* owner */
    uint32_t context_length; /* tokens, 0 = unknown */
    uint32_t max_output;     /* tokens, 0 = unknown */
    uint32_t caps;           /* ENG_CAP_* bits */
    uint32_t endpoints;      /* endpoints serving it */
    bool free;               /* a $0 endpoint exists */
    /* Cheapest enabled endpoint's prices; negative when not given.
     * Token prices in USD per 1M tokens, fees in USD. */
    double prompt, completion, cache_read, cache_write, request, image;
} proto_model_info_t;

/* Walks the `models` array of a models reply without allocating. */
typedef struct {
    const void *buf; /* the reply */
    size_t len;      /* its size */
    size_t pos;      /* offset of the next entry */
    uint32_t left;   /* entries not yet returned */
} proto_models_iter_t;

/* Finds the models array in a reply. PROTO_ERR_ENGINE when ok is false. */
int proto_models_iter_init(proto_models_iter_t *it, const void *buf, size_t len,
                           proto_error_t *err);
/* 1 with *out filled, 0 at the end, or a negative proto_err_t. */
int proto_models_iter_next(proto_models_iter_t *it, proto_model_info_t *out, proto_error_t *err);

/* Reports ------------------------------------------------------------------- */

#define PROTO_MAX_ATTEMPTS 64         /* attempts in one report frame */
#define PROTO_MAX_LATENCY_MS 3600000. /* latency_ms, ttft_ms: one hour */
#define PROTO_MAX_TPS 1000000.        /* tokens_per_s */

/* Transport failures an attempt may end with instead of an HTTP status. */
typedef enum {
    PROTO_XERR_NONE = 0, /* the provider answered: see status */
    PROTO_XERR_TIMEOUT,  /* "timeout": no (complete) answer in time */
    PROTO_XERR_CONNECT,  /* "connect": refused, unreachable, DNS */
    PROTO_XERR_TLS,      /* "tls": handshake or certificate */
    PROTO_XERR_RESET,    /* "reset": the connection broke mid-answer */
    PROTO_XERR_PROTOCOL, /* "protocol": an answer that is not HTTP or not the API's */
    PROTO_XERR_CANCELED, /* "canceled": the client went away (not the endpoint's fault) */
    PROTO_XERR_COUNT
} proto_xerr_t;

/* "timeout" ...; "none" for PROTO_XERR_NONE. */
const char *proto_xerr_name(proto_xerr_t e);

/* One attempt of a call, as a gateway reports it. Figures not measured are
 * negative (durations, throughput, cost) or -1 (token counts). */
typedef struct {
    uint64_t decision;         /* decision_id of the reply it followed; 0 = none */
    hpp_str_t model;           /* catalog model id */
    hpp_str_t provider;        /* the endpoint's provider */
    uint32_t status;           /* HTTP status 100..599; 0 with a transport error */
    proto_xerr_t error;        /* transport failure, PROTO_XERR_NONE with a status */
    double latency_ms;         /* request sent to the answer's end */
    double ttft_ms;            /* request sent to the first token (streams) */
    double tokens_per_s;       /* output tokens per second after the first */
    int64_t prompt_tokens;     /* usage as the provider returned it */
    int64_t completion_tokens; /* includes reasoning tokens, as OpenAI counts */
    int64_t cached_tokens;     /* part of prompt_tokens read from the cache */
    int64_t reasoning_tokens;  /* part of completion_tokens */
    double cost_usd;           /* the provider's own cost of the call */
} proto_attempt_t;

/* An attempt with nothing measured: no decision, status 0, figures unset. */
void proto_attempt_init(proto_attempt_t *a);

/* Walks the attempts of a decoded report. Returns 1 with *out filled, 0 at
 * the end, or a negative proto_err_t (never for a frame that
 * proto_request_decode accepted). `*pos` starts at 0. Allocation-free. */
int proto_attempts_next(const proto_attempts_t *at, size_t *pos, proto_attempt_t *out,
                        proto_error_t *err);

/* Every attempt of a decoded report, up to PROTO_MAX_ATTEMPTS, into out[]
 * (borrowing from the frame, which must outlive them); returns how many. */
uint32_t proto_attempts_all(const proto_attempts_t *at, proto_attempt_t out[PROTO_MAX_ATTEMPTS]);

/* Encodes {v, [id], op: "report", [ack: true], attempts: [...]} (clients). */
int proto_report_encode(proto_buf_t *b, const proto_id_t *id, const proto_attempt_t *attempts,
                        size_t n, bool ack);

/* {v, id, ok:true, attempts: n}: the acknowledgement of a report. */
int proto_reply_report(proto_buf_t *b, const proto_id_t *id, uint32_t attempts);

/* Any msgpack value as JSON text (for logs, tools and examples). Strings are
 * escaped; bin is hex, ext is null. Appends to `out` (NUL-terminated). */
int proto_to_json(const void *buf, size_t len, proto_buf_t *out, proto_error_t *err);

#endif
