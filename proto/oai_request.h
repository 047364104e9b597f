/* oai_request.h - routing features from an OpenAI Chat Completions request.
 *
 * An extraction context parses one request body (oai_json) and its X-HPP-*
 * headers into an hpp_features_t. Every string the features point to (model,
 * hints, group, text sample, metadata) is owned by the context, so they stay
 * valid until the next oai_extract_reset/oai_extract_body or until the context
 * is destroyed - long enough to encode an engine request and forward the
 * body. The module does not use libevent: hpp-policy reuses it.
 *
 * Typical use, once per request:
 *
 *   oai_extract_reset(x, &f);
 *   oai_extract_body(x, body, len, &f, &err);        (may be skipped: no body)
 *   oai_extract_header(x, "X-HPP-Task", v, &f, &err); (each header, any order)
 *   char *out = oai_extract_forward(x, body, len, "openai/gpt-5", &outlen);
 */
#ifndef OAI_REQUEST_H
#define OAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "hpp_request.h"
#include "oai_error.h"

/* Size of the prompt text sample handed to hint rules: the last user
 * message first, then the other messages in order, cut at a UTF-8 boundary. */
#define OAI_TEXT_MAX 8192
/* Bytes of header values a context keeps (hints, group, model from headers). */
#define OAI_HEADER_MAX 2048

/* Limits shared with the wire protocol (proto/PROTOCOL.md). */
#define HPP_MAX_MODEL_LEN 256 /* bytes of a model id */
#define HPP_MAX_GROUP_LEN 64  /* bytes of a group */
#define HPP_MAX_HINT_LEN 64   /* bytes of one task hint */
#define HPP_MAX_META_KEY_LEN 64
#define HPP_MAX_META_VAL_LEN 256

typedef struct oai_extract oai_extract_t;

/* Returns a context or NULL when out of memory. */
oai_extract_t *oai_extract_new(void);

/* Frees the context and the body it holds; sets *self_p to NULL. Idempotent. */
void oai_extract_destroy(oai_extract_t **self_p);

/* Drops the previous request and sets `f` to its defaults (hpp_features_init). */
void oai_extract_reset(oai_extract_t *self, hpp_features_t *f);

/* Parses a Chat Completions body and fills `f`: model, prompt token estimate,
 * output tokens (max_completion_tokens, else max_tokens), images and vision,
 * tools (tools/functions), json (response_format json_object/json_schema),
 * the text sample, metadata, and the `hpp` object (task, budget_usd, group,
 * prompt_tokens, output_tokens overrides). Duplicate keys are rejected so the
 * sidecar and the upstream cannot read different values.
 * Returns 0, or -1 with `err` filled (400 with the offending param). */
int oai_extract_body(oai_extract_t *self, const char *body, size_t len, hpp_features_t *f,
                     oai_error_t *err);

/* Applies one request header if it is one of ours (case-insensitive name):
 *   X-HPP-Task          comma-separated hints, added to the body's
 *   X-HPP-Budget-USD    decimal USD, replaces the body's budget
 *   X-HPP-Group         key group, replaces the body's group
 *   X-HPP-Model         requested model, replaces the body's (for body-less
 *                       auth subrequests)
 *   X-HPP-Prompt-Tokens / X-HPP-Output-Tokens  replace the estimate / limit
 * Other names are ignored (returns 0). Values are copied into the context.
 * Returns 0, or -1 with `err` filled (400). */
int oai_extract_header(oai_extract_t *self, const char *name, const char *value, hpp_features_t *f,
                       oai_error_t *err);

/* True when `name` is one of the X-HPP-* hint headers above (any case): a
 * request that carries one has features even without a body. */
bool oai_header_is_hint(const char *name);

/* True when a body was parsed. */
bool oai_extract_has_body(const oai_extract_t *self);

/* The body's "stream" flag (false without a body). */
bool oai_extract_stream(const oai_extract_t *self);

/* The prompt token estimate of the body, before any override. */
int64_t oai_extract_estimate(const oai_extract_t *self);

/* The parsed body for the upstream: `model` replaced (when not NULL; added
 * when the body had none), the `hpp`, `models` and `provider` members
 * removed (the engine has decided by them), `stream_options.include_usage:
 * true` added to a stream whose client did not set include_usage (so the
 * answer ends with its usage), every other byte as received. `body`/`body_len` are the bytes given
 * to oai_extract_body, still unchanged: the context keeps offsets into them, not a copy (a request
 * that is only routed never pays for one). Returns a malloc'd buffer
 * (caller frees) with its length in *len, or NULL when there is no parsed
 * body, body_len is not the parsed length, or memory ran out. Features stay
 * valid. */
char *oai_extract_forward(oai_extract_t *self, const char *body, size_t body_len, const char *model,
                          size_t *len);

#endif
