/* hpp_request.h - what a routing request says: the features, the limits of
 * each, the one place their rules are checked, and the request statuses.
 *
 * This is the contract between the wire codec (proto.h), the OpenAI request
 * reader (oai_request.h), the policy tool and the resolver (engine/).
 * Features borrow every string from the caller's buffer (a zmq message, an
 * HTTP body): a plain fixed-size struct, no allocation per request.
 */
#ifndef HPP_REQUEST_H
#define HPP_REQUEST_H

#include "hpp_types.h"

#define HPP_AUTO_MODEL "hpprouter/auto"
#define HPP_MAX_HINTS 16                  /* task hints per request */
#define HPP_MAX_META 16                   /* metadata key/values per request */
#define HPP_MAX_FALLBACKS 8               /* fallbacks returned with a decision */
#define HPP_MAX_TOKENS INT64_C(100000000) /* 1e8: larger token counts are bad_request */
#define HPP_MAX_IMAGES 10000
#define HPP_MAX_BUDGET_USD 1e6

/* Bytes of each string feature (proto/PROTOCOL.md "Limits"). */
#define HPP_MAX_MODEL_LEN 256    /* `model` */
#define HPP_MAX_GROUP_LEN 64     /* `group` */
#define HPP_MAX_HINT_LEN 64      /* one hint */
#define HPP_MAX_TEXT_LEN 16384   /* `text` */
#define HPP_MAX_META_KEY_LEN 64  /* a meta key */
#define HPP_MAX_META_VAL_LEN 256 /* a meta value */

typedef struct {
    hpp_str_t model;                   /* requested model; empty = hpprouter/auto */
    int64_t prompt_tokens;             /* >= 0 */
    int64_t output_tokens;             /* max_tokens; -1 = the policy's default */
    int64_t cache_read_tokens;         /* >= 0, part of prompt_tokens served from cache */
    int64_t images;                    /* input images; > 0 requires vision */
    bool vision;                       /* needs vision even without a counted image */
    bool tools;                        /* needs tool calling */
    bool json;                         /* needs response_format / structured output */
    hpp_str_t hints[HPP_MAX_HINTS];    /* task hints: "code", "math", "solidity" ... */
    uint32_t nhints;                   /* used entries of hints[] */
    bool has_budget;                   /* budget_usd is set */
    double budget_usd;                 /* most this request may cost, USD */
    hpp_str_t group;                   /* caller's key group; empty = "default" */
    hpp_str_t text;                    /* sample of the prompt text for hint rules */
    hpp_str_t meta_keys[HPP_MAX_META]; /* metadata keys */
    hpp_str_t meta_vals[HPP_MAX_META]; /* metadata values, same index */
    uint32_t nmeta;                    /* used entries of meta_* */
} hpp_features_t;

/* Sets every field to its "not given" value (output_tokens = -1). */
void hpp_features_init(hpp_features_t *f);

/* The rules of the numeric features, each in one place. Every reader (the
 * msgpack decoder, the OpenAI reader, the policy tool) and the resolver ask
 * these, so a value is refused by all of them with the same words. Each
 * returns NULL when the value is acceptable, else the rule as a static
 * message ("must be an integer from 0 to 100000000"), which callers put
 * after their own name of the field ("prompt_tokens: ", "X-HPP-Budget-USD: "). */
const char *hpp_check_tokens(int64_t n);                         /* 0..HPP_MAX_TOKENS */
const char *hpp_check_images(int64_t n);                         /* 0..HPP_MAX_IMAGES */
const char *hpp_check_budget(double usd);                        /* finite, 0..HPP_MAX_BUDGET_USD */
const char *hpp_check_cache_read(int64_t cache, int64_t prompt); /* 0..prompt */

/* Every rule above over a whole request, plus the counts and the strings'
 * pointers. Returns NULL when the features are usable, else the rule's
 * message with *field set to the wire name of the first bad field. */
const char *hpp_features_check(const hpp_features_t *f, const char **field);

/* Request statuses; names are the wire error codes. */
typedef enum {
    HPP_OK = 0,
    HPP_E_BAD_REQUEST,         /* "bad_request" */
    HPP_E_UNKNOWN_OP,          /* "unknown_op" */
    HPP_E_UNKNOWN_MODEL,       /* "unknown_model" */
    HPP_E_MODEL_NOT_ALLOWED,   /* "model_not_allowed" */
    HPP_E_INSUFFICIENT_BUDGET, /* "insufficient_budget" */
    HPP_E_NO_FREE_VARIANT,     /* "no_free_variant" */
    HPP_E_NO_CANDIDATE,        /* "no_candidate" */
    HPP_E_FORBIDDEN,           /* "forbidden": an admin op from a client key */
    HPP_E_INTERNAL,            /* "internal" */
    HPP_STATUS_COUNT
} hpp_status_t;

/* "bad_request" etc; "ok" for HPP_OK. Never NULL. */
const char *hpp_status_name(hpp_status_t s);
/* Parses a name back; -1 if unknown. */
int hpp_status_from_name(const char *name, size_t len);

#endif
