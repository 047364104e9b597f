/* eng_request.h - what a routing request says and what the resolver answers.
 *
 * These two structs are the contract between the wire codec (proto/), the
 * HTTP feature extractor (sidecar/) and the resolver (engine/). Features
 * borrow every string from the caller's buffer (a zmq message, an HTTP body);
 * a decision borrows model/endpoint/rule names from the policy snapshot that
 * produced it, so it stays valid as long as that snapshot lives.
 * Both are plain fixed-size structs: no allocation per request.
 */
#ifndef ENG_REQUEST_H
#define ENG_REQUEST_H

#include "eng_catalog.h"
#include "eng_cost.h"

#define ENG_AUTO_MODEL "hpprouter/auto"
#define ENG_MAX_HINTS 16                  /* task hints per request */
#define ENG_MAX_META 16                   /* metadata key/values per request */
#define ENG_MAX_FALLBACKS 8               /* fallbacks returned with a decision */
#define ENG_MAX_TOKENS INT64_C(100000000) /* 1e8: larger token counts are bad_request */
#define ENG_MAX_IMAGES 10000
#define ENG_MAX_BUDGET_USD 1e6

typedef struct {
    eng_str_t model;                   /* requested model; empty = hpprouter/auto */
    int64_t prompt_tokens;             /* >= 0 */
    int64_t output_tokens;             /* max_tokens; -1 = the policy's default */
    int64_t cache_read_tokens;         /* >= 0, part of prompt_tokens served from cache */
    int64_t images;                    /* input images; > 0 requires vision */
    bool vision;                       /* needs vision even without a counted image */
    bool tools;                        /* needs tool calling */
    bool json;                         /* needs response_format / structured output */
    eng_str_t hints[ENG_MAX_HINTS];    /* task hints: "code", "math", "solidity" ... */
    uint32_t nhints;                   /* used entries of hints[] */
    bool has_budget;                   /* budget_usd is set */
    double budget_usd;                 /* most this request may cost, USD */
    eng_str_t group;                   /* caller's key group; empty = "default" */
    eng_str_t text;                    /* sample of the prompt text for hint rules */
    eng_str_t meta_keys[ENG_MAX_META]; /* metadata keys */
    eng_str_t meta_vals[ENG_MAX_META]; /* metadata values, same index */
    uint32_t nmeta;                    /* used entries of meta_* */
} eng_features_t;

/* Sets every field to its "not given" value (output_tokens = -1). */
void eng_features_init(eng_features_t *f);

/* Request statuses; names are the wire error codes. */
typedef enum {
    ENG_OK = 0,
    ENG_E_BAD_REQUEST,         /* "bad_request" */
    ENG_E_UNKNOWN_OP,          /* "unknown_op" */
    ENG_E_UNKNOWN_MODEL,       /* "unknown_model" */
    ENG_E_MODEL_NOT_ALLOWED,   /* "model_not_allowed" */
    ENG_E_INSUFFICIENT_BUDGET, /* "insufficient_budget" */
    ENG_E_NO_FREE_VARIANT,     /* "no_free_variant" */
    ENG_E_NO_CANDIDATE,        /* "no_candidate" */
    ENG_E_INTERNAL,            /* "internal" */
    ENG_STATUS_COUNT
} eng_status_t;

/* "bad_request" etc; "ok" for ENG_OK. Never NULL. */
const char *eng_status_name(eng_status_t s);
/* Parses a name back; -1 if unknown. */
int eng_status_from_name(const char *name, size_t len);

typedef struct {
    eng_status_t status;            /* ENG_OK or an error */
    char message[192];              /* why, in words (always set) */
    const eng_model_t *model;       /* chosen model, NULL on error */
    const eng_endpoint_t *endpoint; /* chosen endpoint, NULL on error */
    int tier;                       /* index of the tier, -1 if none */
    const char *tier_name;          /* "budget", ..., "" if none */
    const char *rule;               /* deciding rule name, or "direct", "floor", "free" */
    eng_cost_t cost;                /* estimate, group multiplier applied */
    int64_t output_tokens;          /* output tokens used for the estimate */
    const eng_endpoint_t *fallbacks[ENG_MAX_FALLBACKS]; /* next best, in order */
    uint32_t nfallbacks;                                /* used entries of fallbacks[] */
} eng_decision_t;

/* Why a candidate was passed over. */
typedef enum {
    ENG_REJ_CHOSEN = 0, /* not rejected: this is the answer */
    ENG_REJ_DISABLED,   /* endpoint disabled */
    ENG_REJ_GROUP,      /* group may not reach the model */
    ENG_REJ_VISION,     /* request has images, model lacks vision */
    ENG_REJ_TOOLS,      /* request needs tools */
    ENG_REJ_JSON,       /* request needs JSON output */
    ENG_REJ_CAPABILITY, /* a capability the rule requires */
    ENG_REJ_CONTEXT,    /* prompt + output exceed the context window */
    ENG_REJ_BUDGET,     /* estimate over budget_usd */
    ENG_REJ_NOT_FREE,   /* a free answer was required */
    ENG_REJ_SHADOWED,   /* fit, but a better candidate was chosen first */
    ENG_REJ_COUNT
} eng_reject_t;

const char *eng_reject_name(eng_reject_t r);

/* One candidate seen while resolving (trace mode only). */
typedef struct {
    const eng_endpoint_t *endpoint; /* the candidate */
    int tier;                       /* tier it was considered in, -1 if none */
    eng_reject_t reason;            /* why not, or ENG_REJ_CHOSEN */
    eng_pusd_t cost;                /* its estimate (total) */
} eng_trace_entry_t;

/* Caller-owned trace buffer. The resolver appends up to `cap` entries and
 * counts the rest in `dropped`. */
typedef struct {
    eng_trace_entry_t *entries;  /* caller-allocated array */
    size_t cap;                  /* its size */
    size_t n;                    /* entries written */
    size_t dropped;              /* entries that did not fit */
    uint64_t hints;              /* final hint bit set (after hint rules) */
    const char *hint_names[64];  /* names of the set bits, NULL-terminated */
    const char *rules_tried[32]; /* names of routing rules evaluated, in order */
    uint32_t nrules_tried;       /* used entries of rules_tried */
} eng_trace_t;

#endif
