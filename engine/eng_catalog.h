/* eng_catalog.h - models, the providers serving them, and their prices.
 *
 * A catalog is built by loading one or more files, then frozen. A frozen
 * catalog is immutable and shared read-only by every worker; its arrays are
 * flat so the resolver walks them without chasing pointers:
 *
 *   models[]    sorted by id; each has a contiguous run of endpoints
 *   endpoints[] grouped by model, cheapest first (ties: provider name)
 *
 * The same model from several files or providers becomes several endpoints of
 * one model. Provider-specific ids are mapped to one model id by the alias
 * table (see policies/CATALOG.md).
 */
#ifndef ENG_CATALOG_H
#define ENG_CATALOG_H

#include "eng_common.h"

typedef enum {
    ENG_FMT_AUTO = 0,   /* detect from content */
    ENG_FMT_NATIVE,     /* the gateway's own models list */
    ENG_FMT_OPENROUTER, /* OpenRouter /api/v1/models */
    ENG_FMT_LITELLM,    /* LiteLLM model_prices_and_context_window.json */
    ENG_FMT_PORTKEY,    /* Portkey pricing/<provider>.json */
} eng_catalog_format_t;

typedef struct {
    const char *provider;    /* who serves it: "openai", "bedrock", "ollama" */
    const char *native_id;   /* the provider's own id for the model */
    uint32_t provider_len;   /* strlen(provider): replies encode it per request */
    uint32_t native_id_len;  /* strlen(native_id), likewise */
    const char *source;      /* file it was loaded from */
    hpp_price_t price;       /* prices at this endpoint */
    hpp_price_t long_price;  /* prices when the prompt has more than long_above tokens
                              * (LiteLLM's *_above_200k_tokens, OpenRouter's overrides) */
    uint32_t long_above;     /* 0: the prices do not depend on the prompt's size */
    uint32_t model;          /* index of its model in models[] */
    uint32_t context_length; /* 0 = same as the model */
    bool is_free;            /* a $0 endpoint (`:free` variant or local model) */
    bool free_variant;       /* the `:free` variant: only ID:free (and auto's free
                              * candidates) use it, never the plain id */
    bool enabled;            /* false: never chosen */
} eng_endpoint_t;

typedef struct {
    const char *id;          /* "provider/model", e.g. "openai/gpt-5" */
    uint32_t id_len;         /* strlen(id) */
    const char *owner;       /* owned_by */
    uint32_t context_length; /* tokens, prompt + output; 0 = unknown */
    uint32_t max_output;     /* tokens; 0 = unknown */
    uint32_t caps;           /* ENG_CAP_* bits */
    uint32_t ep_first;       /* first endpoint in endpoints[] */
    uint32_t ep_count;       /* number of endpoints, >= 1 */
    int32_t floor_ep;        /* cheapest enabled endpoint the plain id may use
                              * (not a `:free` variant), -1 if none */
    int32_t free_ep;         /* a $0 enabled endpoint, -1 if none */
} eng_model_t;

typedef struct eng_catalog eng_catalog_t;

/* Returns an empty catalog or NULL on allocation failure. */
eng_catalog_t *eng_catalog_new(void);

/* Frees the catalog and everything it owns; sets *self_p to NULL. Idempotent. */
void eng_catalog_destroy(eng_catalog_t **self_p);

/* Loads one file into an unfrozen catalog. A spec "litellm:path" forces a
 * format (native, openrouter, litellm, portkey); otherwise it is detected.
 * Returns 0, or -1 with `err` filled (file and key path or line:col). On error
 * the catalog is unchanged. */
int eng_catalog_load(eng_catalog_t *self, const char *spec, eng_error_t *err);

/* Same, and `on_source` (may be NULL) sees the file's bytes once read,
 * before they are parsed. */
int eng_catalog_load_observed(eng_catalog_t *self, const char *spec, eng_error_t *err,
                              eng_source_fn on_source, void *ctx);

/* Same, from memory; `name` is used in errors and as the endpoint source. */
int eng_catalog_load_buffer(eng_catalog_t *self, const char *name, const char *buf, size_t len,
                            eng_catalog_format_t fmt, eng_error_t *err);

/* Builds the sorted arrays and indexes. After it the catalog is read-only.
 * Returns 0, or -1 (empty catalog, allocation failure). */
int eng_catalog_freeze(eng_catalog_t *self, eng_error_t *err);

/* The models of a frozen catalog, sorted by id; *n receives the count. */
const eng_model_t *eng_catalog_models(const eng_catalog_t *self, size_t *n);

/* The endpoints of a frozen catalog; *n receives the count. */
const eng_endpoint_t *eng_catalog_endpoints(const eng_catalog_t *self, size_t *n);

/* Looks up a model by exact id (not NUL-terminated). NULL if absent.
 * O(1) average; allocation-free. */
const eng_model_t *eng_catalog_find(const eng_catalog_t *self, const char *id, size_t len);

/* Looks up a model by its id or by any provider-specific spelling of it: the
 * alias table, the native id of one of its endpoints, then the id
 * normalisation rules of policies/CATALOG.md (so
 * "anthropic.claude-3-5-sonnet-20241022-v2:0" finds
 * "anthropic/claude-3.5-sonnet"). NULL if absent. Allocation-free. */
const eng_model_t *eng_catalog_lookup(const eng_catalog_t *self, const char *id, size_t len);

/* Model index of m in models[]. */
uint32_t eng_catalog_model_index(const eng_catalog_t *self, const eng_model_t *m);

/* Loads the bundled default catalog (policies/catalog.json) from `dir`, or
 * the path in HPP_CATALOG. Convenience for tools and tests. */
const char *eng_catalog_default_path(void);

#endif
