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

/* Provider routing and model fallbacks (OpenRouter's `provider` object and
 * `models` array; proto/PROTOCOL.md "Provider routing"). */
#define HPP_MAX_PROVIDERS 16    /* entries of each provider list */
#define HPP_MAX_PROVIDER_LEN 64 /* bytes of a provider name */
#define HPP_MAX_MODELS 16       /* entries of `models` */
#define HPP_MAX_PRICE_USD 1e6   /* largest max_price component, USD (per 1M tokens or each) */

/* Which components of max_price are set (hpp_max_price_t.set). */
enum {
    HPP_MAXP_PROMPT = 1u << 0,     /* prompt: USD per 1M input tokens */
    HPP_MAXP_COMPLETION = 1u << 1, /* completion: USD per 1M output tokens */
    HPP_MAXP_REQUEST = 1u << 2,    /* request: USD per call */
    HPP_MAXP_IMAGE = 1u << 3,      /* image: USD per input image */
};

/* The most the caller will pay per unit, in picodollars per token (= micro-USD
 * per 1M tokens) for prompt and completion, per call and per image for the
 * others. Only the components whose bit is in `set` apply. */
typedef struct {
    uint32_t set;          /* HPP_MAXP_* bits */
    hpp_pusd_t prompt;     /* per input token */
    hpp_pusd_t completion; /* per output token */
    hpp_pusd_t request;    /* per call */
    hpp_pusd_t image;      /* per image */
} hpp_max_price_t;

/* How endpoints of one model are ordered (`providers_sort`). */
typedef enum {
    HPP_SORT_DEFAULT = 0, /* the policy's `providers`, then price */
    HPP_SORT_PRICE,       /* cheapest endpoint first */
    HPP_SORT_LATENCY,     /* lowest measured latency first (unmeasured last) */
    HPP_SORT_THROUGHPUT,  /* highest measured output throughput first */
} hpp_sort_t;

typedef struct {
    hpp_str_t model;                   /* requested model; empty = hpprouter/auto */
    int64_t prompt_tokens;             /* >= 0 */
    int64_t output_tokens;             /* max_tokens; -1 = the policy's default */
    int64_t cache_read_tokens;         /* >= 0, part of prompt_tokens served from cache */
    int64_t cache_write_tokens;        /* >= 0, part of prompt_tokens written to the cache
                                        * (with cache_read_tokens at most prompt_tokens) */
    int64_t reasoning_tokens;          /* >= 0, reasoning tokens expected on top of
                                        * output_tokens, billed as output */
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
    /* Provider routing: names compared ASCII case-insensitively with the
     * catalog's providers. Every field empty/false/0 = no preference. */
    hpp_str_t providers_order[HPP_MAX_PROVIDERS];  /* tried first, in this order */
    uint32_t nproviders_order;                     /* used entries */
    hpp_str_t providers_only[HPP_MAX_PROVIDERS];   /* none but these */
    uint32_t nproviders_only;                      /* used entries */
    hpp_str_t providers_ignore[HPP_MAX_PROVIDERS]; /* never these */
    uint32_t nproviders_ignore;                    /* used entries */
    bool no_fallbacks;                /* allow_fallbacks false: only providers_order may serve (none
                                       * given: each model's first endpoint only) */
    hpp_sort_t sort;                  /* providers_sort */
    double max_latency_s;             /* preferred_max_latency, seconds; 0 = none */
    double min_throughput;            /* preferred_min_throughput, tokens/s; 0 = none */
    hpp_max_price_t max_price;        /* endpoints priced above a set component are not chosen */
    hpp_str_t models[HPP_MAX_MODELS]; /* model fallbacks; only these may be chosen */
    uint32_t nmodels;                 /* used entries */
    /* The caller's API key as the gateway authenticated it: "sha256:" and
     * 64 lowercase hex digits of its SHA-256, never the key itself; empty =
     * not given. With a ledger it names the key charged and its group. */
    hpp_str_t key;
} hpp_features_t;

#define HPP_KEY_HASH_LEN 71 /* bytes of "sha256:" + 64 hex */

/* A `key` feature: "sha256:" then 64 lowercase hex digits. */
const char *hpp_check_key_hash(hpp_str_t key);

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
/* Cache writes: 0..prompt - cache_read (both are parts of the prompt). */
const char *hpp_check_cache_write(int64_t write, int64_t read, int64_t prompt);
const char *hpp_check_max_price(double usd); /* finite, 0..HPP_MAX_PRICE_USD */
/* A provider name: 1..HPP_MAX_PROVIDER_LEN bytes, no control bytes or spaces. */
const char *hpp_check_provider(hpp_str_t name);
/* A model id in `models`: 1..HPP_MAX_MODEL_LEN bytes, no control bytes or spaces. */
const char *hpp_check_model_id(hpp_str_t id);
/* `providers_sort`: "price" sets *out; "latency" and "throughput" are
 * refused until the engine measures them, anything else is unknown. */
const char *hpp_check_sort(hpp_str_t s, hpp_sort_t *out);
/* preferred_max_latency: seconds, finite, 0 .. 3600 (0 = none). */
const char *hpp_check_max_latency(double s);
/* preferred_min_throughput: tokens per second, finite, 0 .. 1000000. */
const char *hpp_check_min_throughput(double tps);
/* Converts one max_price component (USD per 1M tokens for prompt and
 * completion, USD each for request and image) to picodollars per unit and
 * sets it in *mp; `bit` is its HPP_MAXP_* bit. Returns the rule's message
 * when the value is refused (hpp_check_max_price). */
const char *hpp_max_price_set(hpp_max_price_t *mp, uint32_t bit, double usd);

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
    /* The ledger's refusals (PROTOCOL.md "Ledger"), in the order of its checks. */
    HPP_E_UNKNOWN_KEY,          /* "unknown_key": no such key, or revoked (401) */
    HPP_E_INSUFFICIENT_BALANCE, /* "insufficient_balance": the account cannot pay (402) */
    HPP_E_KEY_LIMIT_REACHED,    /* "key_limit_reached": the key's limit is spent (402) */
    HPP_E_DAILY_LIMIT_REACHED,  /* "daily_limit_reached": the day's money or requests (429) */
    HPP_E_LEDGER_UNAVAILABLE,   /* "ledger_unavailable": the store cannot be reached (503) */
    HPP_STATUS_COUNT
} hpp_status_t;

/* "bad_request" etc; "ok" for HPP_OK. Never NULL. */
const char *hpp_status_name(hpp_status_t s);
/* Parses a name back; -1 if unknown. */
int hpp_status_from_name(const char *name, size_t len);

#endif
