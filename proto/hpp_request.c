/* hpp_request.c - feature defaults, the rules of their values, status names.
 *
 * The status names are the wire error codes of proto/PROTOCOL.md; keeping
 * them in one table means codec, sidecar and CLI cannot disagree. The same
 * goes for the value rules: each is written once, here, and every reader
 * and the resolver call it.
 */
#include "hpp_request.h"

#include <math.h>
#include <string.h>

static const char *const s_status_names[HPP_STATUS_COUNT] = {
    [HPP_OK] = "ok",
    [HPP_E_BAD_REQUEST] = "bad_request",
    [HPP_E_UNKNOWN_OP] = "unknown_op",
    [HPP_E_UNKNOWN_MODEL] = "unknown_model",
    [HPP_E_MODEL_NOT_ALLOWED] = "model_not_allowed",
    [HPP_E_INSUFFICIENT_BUDGET] = "insufficient_budget",
    [HPP_E_NO_FREE_VARIANT] = "no_free_variant",
    [HPP_E_NO_CANDIDATE] = "no_candidate",
    [HPP_E_FORBIDDEN] = "forbidden",
    [HPP_E_INTERNAL] = "internal",
};

void hpp_features_init(hpp_features_t *f)
{
    memset(f, 0, sizeof *f);
    f->output_tokens = -1;
}

/* The messages quote the limits as numbers; a test keeps them in step. */
const char *hpp_check_tokens(int64_t n)
{
    return n >= 0 && n <= HPP_MAX_TOKENS ? NULL : "must be an integer from 0 to 100000000";
}

const char *hpp_check_images(int64_t n)
{
    return n >= 0 && n <= HPP_MAX_IMAGES ? NULL : "must be an integer from 0 to 10000";
}

const char *hpp_check_budget(double usd)
{
    return isfinite(usd) && usd >= 0 && usd <= HPP_MAX_BUDGET_USD
               ? NULL
               : "must be a finite number of USD from 0 to 1000000";
}

const char *hpp_check_cache_read(int64_t cache, int64_t prompt)
{
    return cache >= 0 && cache <= prompt ? NULL : "must be from 0 to prompt_tokens";
}

static bool s_str_ok(hpp_str_t s)
{
    return s.len == 0 || s.ptr != NULL;
}

/* Sets *field and passes the message on, so each rule below is one line. */
static const char *s_bad(const char **field, const char *name, const char *msg)
{
    *field = name;
    return msg;
}

const char *hpp_features_check(const hpp_features_t *f, const char **field)
{
    const char *why;
    if ((why = hpp_check_tokens(f->prompt_tokens))) {
        return s_bad(field, "prompt_tokens", why);
    }
    if (f->output_tokens != -1 && (why = hpp_check_tokens(f->output_tokens))) {
        return s_bad(field, "output_tokens", why);
    }
    if ((why = hpp_check_cache_read(f->cache_read_tokens, f->prompt_tokens))) {
        return s_bad(field, "cache_read_tokens", why);
    }
    if ((why = hpp_check_images(f->images))) {
        return s_bad(field, "images", why);
    }
    if (f->has_budget && (why = hpp_check_budget(f->budget_usd))) {
        return s_bad(field, "budget_usd", why);
    }
    if (f->nhints > HPP_MAX_HINTS) {
        return s_bad(field, "hints", "too many entries");
    }
    if (f->nmeta > HPP_MAX_META) {
        return s_bad(field, "meta", "too many entries");
    }
    if (!s_str_ok(f->model) || !s_str_ok(f->group) || !s_str_ok(f->text)) {
        return s_bad(field,
                     !s_str_ok(f->model)   ? "model"
                     : !s_str_ok(f->group) ? "group"
                                           : "text",
                     "a string with no data");
    }
    for (uint32_t i = 0; i < f->nhints; i++) {
        if (!s_str_ok(f->hints[i])) {
            return s_bad(field, "hints", "a string with no data");
        }
    }
    for (uint32_t i = 0; i < f->nmeta; i++) {
        if (!s_str_ok(f->meta_keys[i]) || !s_str_ok(f->meta_vals[i])) {
            return s_bad(field, "meta", "a string with no data");
        }
    }
    return NULL;
}

const char *hpp_status_name(hpp_status_t s)
{
    if ((unsigned)s < HPP_STATUS_COUNT) {
        return s_status_names[s];
    }
    return "internal";
}

int hpp_status_from_name(const char *name, size_t len)
{
    for (int i = 0; i < HPP_STATUS_COUNT; i++) {
        if (strlen(s_status_names[i]) == len && memcmp(s_status_names[i], name, len) == 0) {
            return i;
        }
    }
    return -1;
}
