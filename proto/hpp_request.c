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
    [HPP_E_UNKNOWN_KEY] = "unknown_key",
    [HPP_E_INSUFFICIENT_BALANCE] = "insufficient_balance",
    [HPP_E_KEY_LIMIT_REACHED] = "key_limit_reached",
    [HPP_E_DAILY_LIMIT_REACHED] = "daily_limit_reached",
    [HPP_E_LEDGER_UNAVAILABLE] = "ledger_unavailable",
};

const char *hpp_check_key_hash(hpp_str_t key)
{
    static const char why[] = "must be \"sha256:\" and 64 lowercase hex digits";
    if (key.len != HPP_KEY_HASH_LEN || memcmp(key.ptr, "sha256:", 7) != 0) {
        return why;
    }
    for (size_t i = 7; i < key.len; i++) {
        char c = key.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return why;
        }
    }
    return NULL;
}

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

const char *hpp_check_cache_write(int64_t write, int64_t read, int64_t prompt)
{
    return write >= 0 && read >= 0 && write <= prompt - read
               ? NULL
               : "must be from 0 to prompt_tokens - cache_read_tokens";
}

const char *hpp_check_max_price(double usd)
{
    return isfinite(usd) && usd >= 0 && usd <= HPP_MAX_PRICE_USD
               ? NULL
               : "must be a finite number of USD from 0 to 1000000";
}

/* 1..max bytes, none of them a control byte or a space: names and ids are
 * compared byte for byte, so a stray space would match nothing, silently. */
static const char *s_check_name(hpp_str_t s, uint32_t max, const char *msg)
{
    if (s.len == 0 || s.len > max || !s.ptr) {
        return msg;
    }
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c <= 0x20 || c == 0x7f) {
            return msg;
        }
    }
    return NULL;
}

const char *hpp_check_provider(hpp_str_t name)
{
    return s_check_name(name, HPP_MAX_PROVIDER_LEN,
                        "a provider name has 1 to 64 bytes, no spaces or control characters");
}

const char *hpp_check_model_id(hpp_str_t id)
{
    return s_check_name(id, HPP_MAX_MODEL_LEN,
                        "a model id has 1 to 256 bytes, no spaces or control characters");
}

/* The sorts a request may ask for; the refused ones say why. */
static const struct {
    const char *name; /* wire value */
    hpp_sort_t sort;  /* what it sets */
    const char *why;  /* NULL: accepted; else the refusal */
} s_sorts[] = {
    {"price", HPP_SORT_PRICE, NULL},
    {"latency", HPP_SORT_LATENCY, NULL},
    {"throughput", HPP_SORT_THROUGHPUT, NULL},
};

const char *hpp_check_sort(hpp_str_t s, hpp_sort_t *out)
{
    for (size_t i = 0; i < sizeof s_sorts / sizeof s_sorts[0]; i++) {
        size_t n = strlen(s_sorts[i].name);
        if (s.len == n && s.ptr && memcmp(s.ptr, s_sorts[i].name, n) == 0) {
            if (!s_sorts[i].why) {
                *out = s_sorts[i].sort;
            }
            return s_sorts[i].why;
        }
    }
    return "expected one of: price, latency, throughput";
}

const char *hpp_check_max_latency(double s)
{
    return isfinite(s) && s >= 0 && s <= 3600 ? NULL
                                              : "must be a finite number of seconds from 0 to 3600";
}

const char *hpp_check_min_throughput(double tps)
{
    return isfinite(tps) && tps >= 0 && tps <= 1e6
               ? NULL
               : "must be a finite number of tokens per second from 0 to 1000000";
}

const char *hpp_max_price_set(hpp_max_price_t *mp, uint32_t bit, double usd)
{
    const char *why = hpp_check_max_price(usd);
    if (why) {
        return why;
    }
    /* Per-token components are given per 1M tokens: 10^6 picodollars per
     * token for each USD; the others are plain USD (at most 10^18 pusd, well
     * inside int64). Rounded to the nearest picodollar: a limit, not a sum. */
    bool per_token = bit == HPP_MAXP_PROMPT || bit == HPP_MAXP_COMPLETION;
    hpp_pusd_t v = (hpp_pusd_t)llround(usd * (per_token ? 1e6 : 1e12));
    hpp_pusd_t *slot = bit == HPP_MAXP_PROMPT       ? &mp->prompt
                       : bit == HPP_MAXP_COMPLETION ? &mp->completion
                       : bit == HPP_MAXP_REQUEST    ? &mp->request
                                                    : &mp->image;
    *slot = v;
    mp->set |= bit;
    return NULL;
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

/* Provider routing and models: the lists as a table, one loop, one message each. */
static const char *s_routing_check(const hpp_features_t *f, const char **field)
{
    const struct {
        const char *name;
        const hpp_str_t *v;
        uint32_t n, max;
        const char *(*check)(hpp_str_t);
    } lists[] = {
        {"providers_order", f->providers_order, f->nproviders_order, HPP_MAX_PROVIDERS,
         hpp_check_provider},
        {"providers_only", f->providers_only, f->nproviders_only, HPP_MAX_PROVIDERS,
         hpp_check_provider},
        {"providers_ignore", f->providers_ignore, f->nproviders_ignore, HPP_MAX_PROVIDERS,
         hpp_check_provider},
        {"models", f->models, f->nmodels, HPP_MAX_MODELS, hpp_check_model_id},
    };
    const char *why;
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        if (lists[l].n > lists[l].max) {
            return s_bad(field, lists[l].name, "too many entries");
        }
        for (uint32_t i = 0; i < lists[l].n; i++) {
            if ((why = lists[l].check(lists[l].v[i]))) {
                return s_bad(field, lists[l].name, why);
            }
        }
    }
    if ((unsigned)f->sort > HPP_SORT_THROUGHPUT) {
        return s_bad(field, "providers_sort", "expected one of: price, latency, throughput");
    }
    if (hpp_check_max_latency(f->max_latency_s)) {
        return s_bad(field, "preferred_max_latency", hpp_check_max_latency(f->max_latency_s));
    }
    if (hpp_check_min_throughput(f->min_throughput)) {
        return s_bad(field, "preferred_min_throughput",
                     hpp_check_min_throughput(f->min_throughput));
    }
    const hpp_max_price_t *mp = &f->max_price;
    const hpp_pusd_t mps[] = {mp->prompt, mp->completion, mp->request, mp->image};
    for (int k = 0; k < 4; k++) {
        if ((mp->set >> k & 1) && mps[k] < 0) {
            return s_bad(field, "max_price", "must be a finite number of USD from 0 to 1000000");
        }
    }
    return NULL;
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
    if ((why = hpp_check_cache_write(f->cache_write_tokens, f->cache_read_tokens,
                                     f->prompt_tokens))) {
        return s_bad(field, "cache_write_tokens", why);
    }
    if ((why = hpp_check_tokens(f->reasoning_tokens))) {
        return s_bad(field, "reasoning_tokens", why);
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
    if (f->nproviders_order | f->nproviders_only | f->nproviders_ignore | f->nmodels |
        f->max_price.set | (uint32_t)f->sort) {
        return s_routing_check(f, field); /* off the common path: most requests have none */
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
