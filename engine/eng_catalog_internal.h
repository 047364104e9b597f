/* eng_catalog_internal.h - what the catalog builder shares with its loaders.
 *
 * Loaders never touch the frozen arrays. They parse one JSON document and
 * append "records" (one per endpoint, carrying the model attributes the file
 * knows) and aliases to the builder's staging area. eng_catalog.c rolls the
 * staging area back when a loader fails, and turns records into the sorted
 * model/endpoint arrays at freeze time. Strings live in one arena and are
 * referenced by offset until freeze (the arena may move while it grows).
 */
#ifndef ENG_CATALOG_INTERNAL_H
#define ENG_CATALOG_INTERNAL_H

#include <jansson.h>

#include "eng_catalog.h"

/* Largest catalog file we read; bigger files are ENG_ERR_LIMIT. */
#define ENG_CATALOG_MAX_FILE (64u * 1024u * 1024u)
/* Longest model id, provider name or native id kept (bytes). */
#define ENG_CATALOG_MAX_ID 255u
/* Most records (endpoints) and aliases one catalog may hold. */
#define ENG_CATALOG_MAX_RECORDS 1000000u

/* Priority of a record's model attributes: the gateway's own file wins over
 * third-party price lists when both describe the same model. */
enum { ENG_REC_PRIO_FOREIGN = 1, ENG_REC_PRIO_NATIVE = 2 };

/* One endpoint as a loader saw it. String fields are arena offsets;
 * ENG_CAT_NOSTR means absent. */
typedef struct {
    uint32_t model_id;       /* canonical model id (before aliases) */
    uint32_t owner;          /* owned_by, or ENG_CAT_NOSTR */
    uint32_t provider;       /* who serves it */
    uint32_t native_id;      /* the provider's own id */
    uint32_t source;         /* file name */
    hpp_price_t price;       /* per-token prices, fees */
    hpp_price_t long_price;  /* prices for prompts above long_above tokens (n/a parts:
                              * those of `price`) */
    uint32_t long_above;     /* 0 = no long-prompt prices */
    uint32_t context_length; /* model context window, 0 = unknown */
    uint32_t max_output;     /* model max output, 0 = unknown */
    uint32_t ep_context;     /* endpoint-specific window, 0 = same as model */
    uint32_t caps;           /* ENG_CAP_* bits */
    uint32_t load_seq;       /* which load call added it (later wins) */
    uint8_t prio;            /* ENG_REC_PRIO_* */
    bool free_variant;       /* a `:free` endpoint */
    bool enabled;            /* false: listed, never chosen */
    bool attrs_only;         /* describes the model only (capabilities): not an endpoint */
} eng_cat_record_t;

#define ENG_CAT_NOSTR UINT32_MAX

/* A JSON key path under construction, e.g. data[3].pricing.input. */
typedef struct {
    char buf[160]; /* NUL-terminated path */
    size_t len;    /* strlen(buf) */
} eng_cat_path_t;

/* Path helpers: push returns the previous length, pop restores it. */
size_t eng_cat_path_key(eng_cat_path_t *p, const char *key);
size_t eng_cat_path_index(eng_cat_path_t *p, size_t i);
void eng_cat_path_pop(eng_cat_path_t *p, size_t len);

/* Builder API for loaders -------------------------------------------------- */

/* Copies [s, s+len) into the arena; returns its offset or ENG_CAT_NOSTR on
 * allocation failure. */
uint32_t eng_cat_str(eng_catalog_t *self, const char *s, size_t len);
/* The string at an arena offset (valid until the next eng_cat_str call). */
const char *eng_cat_strat(const eng_catalog_t *self, uint32_t off);

/* Appends a record (strings already in the arena); fills load_seq and source.
 * Returns its index, or -1 on allocation failure / record limit. */
int64_t eng_cat_add_record(eng_catalog_t *self, const eng_cat_record_t *rec);
/* Appends an alias from -> to (both copied). -1 on allocation failure. */
int eng_cat_add_alias(eng_catalog_t *self, const char *from, size_t from_len, const char *to,
                      size_t to_len);
/* The record at index i (valid until the next add). */
eng_cat_record_t *eng_cat_record(eng_catalog_t *self, size_t i);
/* The arena offset of the current file's name. */
uint32_t eng_cat_source(const eng_catalog_t *self);

/* A record with every price NA and the defaults of a fresh endpoint. */
void eng_cat_record_init(eng_cat_record_t *rec);

/* Error helpers: fill err with the current file and path; return -1. */
int eng_cat_fail(eng_error_t *err, const char *file, const eng_cat_path_t *path, eng_errcode_t code,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Money from a JSON value: number or decimal string, scaled by 10^scale_exp to
 * picodollars. null (and na_minus_one with "-1") give HPP_PRICE_NA. Returns 0,
 * or -1 with a located error (wrong type, negative, not a number). */
int eng_cat_json_price(const json_t *v, int scale_exp, bool na_minus_one, const char *file,
                       const eng_cat_path_t *path, hpp_pusd_t *out, eng_error_t *err);
/* A non-negative token count from a JSON integer, integral real or numeric
 * string; null gives 0. Clamped to UINT32_MAX. -1 with a located error. */
int eng_cat_json_count(const json_t *v, const char *file, const eng_cat_path_t *path, uint32_t *out,
                       eng_error_t *err);
/* A boolean; null/absent gives false. -1 with a located error otherwise. */
int eng_cat_json_bool(const json_t *v, const char *file, const eng_cat_path_t *path, bool *out,
                      eng_error_t *err);
/* A string member of `obj` (NULL when absent or null); -1 with a located
 * error when present with another type or longer than ENG_CATALOG_MAX_ID. */
int eng_cat_json_string(const json_t *obj, const char *key, const char *file, eng_cat_path_t *path,
                        const char **out, eng_error_t *err);

/* Id normalisation (CATALOG.md "Model ids"): maps a provider-specific id
 * (LiteLLM key, Portkey key, Bedrock/Vertex/Azure spelling) to a canonical
 * "author/slug" id. `provider` is the serving provider, used when the author
 * cannot be inferred. Writes at most n-1 bytes and a NUL; returns the length,
 * or 0 when the id is empty. Allocation-free. */
size_t eng_cat_normalize_id(const char *provider, const char *id, size_t len, char *out, size_t n);
/* Canonical provider name: lower case, '_' -> '-', families merged
 * (bedrock_converse -> bedrock, vertex_ai-* -> vertex-ai, azure-openai ->
 * azure, gemini -> google). Returns the length written. */
size_t eng_cat_normalize_provider(const char *p, size_t len, char *out, size_t n);
/* True for providers that run models locally at no cost (ollama, ...). */
bool eng_cat_provider_is_local(const char *p);

/* Loaders: append the records of one parsed document. */
int eng_cat_load_native(eng_catalog_t *self, const char *file, const json_t *root,
                        eng_error_t *err);
int eng_cat_load_openrouter(eng_catalog_t *self, const char *file, const json_t *root,
                            eng_error_t *err);
int eng_cat_load_litellm(eng_catalog_t *self, const char *file, const json_t *root,
                         eng_error_t *err);
int eng_cat_load_portkey(eng_catalog_t *self, const char *file, const json_t *root,
                         eng_error_t *err);

/* Detects the format of a parsed document; ENG_FMT_AUTO when unknown. */
eng_catalog_format_t eng_cat_detect(const json_t *root);

#endif
