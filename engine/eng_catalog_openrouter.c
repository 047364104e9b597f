/* eng_catalog_openrouter.c - loader for OpenRouter's /api/v1/models answer.
 *
 * {"data": [{"id": "anthropic/claude-3.5-sonnet", "context_length": 200000,
 *            "pricing": {"prompt": "0.000003", "completion": "0.000015", ...},
 *            "architecture": {"input_modalities": ["text", "image"]},
 *            "supported_parameters": ["tools", "response_format", ...],
 *            "top_provider": {"max_completion_tokens": 8192}}]}
 *
 * Prices are USD per token as decimal strings, parsed exactly; "-1" means
 * variable / not applicable, "0" free. An id ending in ":free" is the $0
 * endpoint of the model without the suffix. OpenRouter ids are already
 * canonical "author/slug" ids. Every endpoint is served by "openrouter".
 */
#include "eng_catalog_internal.h"

#include <string.h>

typedef struct {
    const char *key; /* pricing member */
    size_t off;      /* field in hpp_price_t */
    bool required;   /* every OpenRouter model states it */
} s_price_key_t;

static const s_price_key_t s_price_keys[] = {
    {"prompt", offsetof(hpp_price_t, input), true},
    {"completion", offsetof(hpp_price_t, output), true},
    {"input_cache_read", offsetof(hpp_price_t, cache_read), false},
    {"input_cache_write", offsetof(hpp_price_t, cache_write), false},
    {"request", offsetof(hpp_price_t, per_request), false},
    {"image", offsetof(hpp_price_t, per_image), false},
    {NULL, 0, false},
};

typedef struct {
    const char *param; /* a supported_parameters word */
    uint32_t bit;      /* the capability it implies */
} s_param_cap_t;

static const s_param_cap_t s_param_caps[] = {
    {"tools", HPP_CAP_TOOLS},
    {"response_format", HPP_CAP_JSON},
    {"structured_outputs", HPP_CAP_JSON},
    {"reasoning", HPP_CAP_REASONING},
    {"include_reasoning", HPP_CAP_REASONING},
    {NULL, 0},
};

typedef struct {
    eng_catalog_t *cat;  /* target */
    const char *file;    /* for errors */
    eng_error_t *err;    /* error out */
    eng_cat_path_t path; /* current key path */
    json_t *seen;        /* id -> index */
} s_ctx_t;

static int s_fail(s_ctx_t *c, eng_errcode_t code, const char *msg)
{
    return eng_cat_fail(c->err, c->file, &c->path, code, "%s", msg);
}

/* A list of strings under obj.key; calls back for each. */
static int s_strings(s_ctx_t *c, const json_t *obj, const char *key, uint32_t *caps,
                     uint32_t (*map)(const char *))
{
    const json_t *list = json_object_get(obj, key);
    if (!list || json_is_null(list)) {
        return 0;
    }
    size_t m0 = eng_cat_path_key(&c->path, key);
    if (!json_is_array(list)) {
        return s_fail(c, ENG_ERR_TYPE, "expected an array of strings");
    }
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v)) {
            eng_cat_path_index(&c->path, i);
            return s_fail(c, ENG_ERR_TYPE, "expected a string");
        }
        *caps |= map(json_string_value(v));
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static uint32_t s_modality_cap(const char *m)
{
    return strcmp(m, "image") == 0 ? HPP_CAP_VISION : 0;
}

static uint32_t s_param_cap(const char *p)
{
    for (const s_param_cap_t *k = s_param_caps; k->param; k++) {
        if (strcmp(k->param, p) == 0) {
            return k->bit;
        }
    }
    return 0;
}

static int s_pricing(s_ctx_t *c, const json_t *pricing, hpp_price_t *out)
{
    size_t m0 = eng_cat_path_key(&c->path, "pricing");
    if (!json_is_object(pricing)) {
        return s_fail(c, ENG_ERR_TYPE,
                      pricing ? "expected a pricing object" : "missing \"pricing\" object");
    }
    for (const s_price_key_t *k = s_price_keys; k->key; k++) {
        size_t m1 = eng_cat_path_key(&c->path, k->key);
        hpp_pusd_t *field = (hpp_pusd_t *)((char *)out + k->off);
        if (k->required && !json_object_get(pricing, k->key)) {
            return s_fail(c, ENG_ERR_TYPE, "missing price");
        }
        if (eng_cat_json_price(json_object_get(pricing, k->key), 12, true, c->file, &c->path, field,
                               c->err) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

/* `pricing.overrides`: prices for prompts of at least `min_prompt_tokens`
 * ({"min_prompt_tokens": 200000, "prompt": "...", "completion": "..."}).
 * The catalog keeps one long-prompt price list per endpoint: the override
 * with the lowest threshold (the first to apply). Token prices only; a
 * member not given keeps the usual price. */
static int s_overrides(s_ctx_t *c, const json_t *pricing, eng_cat_record_t *rec)
{
    const json_t *ov = json_is_object(pricing) ? json_object_get(pricing, "overrides") : NULL;
    if (!ov || json_is_null(ov)) {
        return 0;
    }
    size_t m0 = eng_cat_path_key(&c->path, "pricing");
    size_t m1 = eng_cat_path_key(&c->path, "overrides");
    if (!json_is_array(ov)) {
        return s_fail(c, ENG_ERR_TYPE, "expected an array of overrides");
    }
    size_t i;
    const json_t *o;
    json_array_foreach(ov, i, o)
    {
        size_t m2 = eng_cat_path_index(&c->path, i);
        if (!json_is_object(o)) {
            return s_fail(c, ENG_ERR_TYPE, "expected an override object");
        }
        uint32_t min = 0;
        size_t m3 = eng_cat_path_key(&c->path, "min_prompt_tokens");
        if (eng_cat_json_count(json_object_get(o, "min_prompt_tokens"), c->file, &c->path, &min,
                               c->err) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m3);
        if (min == 0 || (rec->long_above && min - 1 >= rec->long_above)) {
            eng_cat_path_pop(&c->path, m2);
            continue; /* none, or a later threshold than the one kept */
        }
        hpp_price_t p = rec->price;
        for (const s_price_key_t *k = s_price_keys; k->key; k++) {
            if (k->off == offsetof(hpp_price_t, per_request) ||
                k->off == offsetof(hpp_price_t, per_image) || !json_object_get(o, k->key)) {
                continue;
            }
            size_t m4 = eng_cat_path_key(&c->path, k->key);
            if (eng_cat_json_price(json_object_get(o, k->key), 12, true, c->file, &c->path,
                                   (hpp_pusd_t *)((char *)&p + k->off), c->err) < 0) {
                return -1;
            }
            eng_cat_path_pop(&c->path, m4);
        }
        rec->long_price = p;
        rec->long_above = min - 1; /* "at least min" = "more than min - 1" */
        eng_cat_path_pop(&c->path, m2);
    }
    eng_cat_path_pop(&c->path, m1);
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_model(s_ctx_t *c, const json_t *e, size_t index)
{
    if (!json_is_object(e)) {
        return s_fail(c, ENG_ERR_TYPE, "expected a model object");
    }
    const char *id = NULL;
    if (eng_cat_json_string(e, "id", c->file, &c->path, &id, c->err) < 0) {
        return -1;
    }
    if (!id) {
        return s_fail(c, ENG_ERR_TYPE, "missing \"id\"");
    }
    size_t len = strlen(id), mk = eng_cat_path_key(&c->path, "id");
    const char *slash = strchr(id, '/');
    if (!slash || slash == id || slash[1] == '\0') {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                            "model id \"%s\" is not of the form author/model", id);
    }
    json_t *prev = json_object_get(c->seen, id);
    if (prev) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_DUP,
                            "duplicate model id \"%s\" (first at data[%lld])", id,
                            (long long)json_integer_value(prev));
    }
    json_object_set_new(c->seen, id, json_integer((json_int_t)index));
    eng_cat_path_pop(&c->path, mk);

    eng_cat_record_t rec;
    eng_cat_record_init(&rec);
    rec.free_variant = len > 5 && strcmp(id + len - 5, ":free") == 0;
    size_t id_len = rec.free_variant ? len - 5 : len;
    const json_t *top = json_object_get(e, "top_provider");
    const json_t *arch = json_object_get(e, "architecture");
    if (s_pricing(c, json_object_get(e, "pricing"), &rec.price) < 0 ||
        s_overrides(c, json_object_get(e, "pricing"), &rec) < 0) {
        return -1;
    }
    size_t m1 = eng_cat_path_key(&c->path, "context_length");
    if (eng_cat_json_count(json_object_get(e, "context_length"), c->file, &c->path,
                           &rec.context_length, c->err) < 0) {
        return -1;
    }
    eng_cat_path_pop(&c->path, m1);
    if (top && !json_is_null(top)) {
        m1 = eng_cat_path_key(&c->path, "top_provider");
        if (!json_is_object(top)) {
            return s_fail(c, ENG_ERR_TYPE, "expected an object");
        }
        size_t m2 = eng_cat_path_key(&c->path, "max_completion_tokens");
        if (eng_cat_json_count(json_object_get(top, "max_completion_tokens"), c->file, &c->path,
                               &rec.max_output, c->err) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m2);
        eng_cat_path_pop(&c->path, m1);
    }
    if (arch && !json_is_null(arch)) {
        m1 = eng_cat_path_key(&c->path, "architecture");
        if (!json_is_object(arch)) {
            return s_fail(c, ENG_ERR_TYPE, "expected an object");
        }
        if (s_strings(c, arch, "input_modalities", &rec.caps, s_modality_cap) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    if (s_strings(c, e, "supported_parameters", &rec.caps, s_param_cap) < 0) {
        return -1;
    }
    if (rec.free_variant) {
        const hpp_pusd_t v[] = {rec.price.input, rec.price.output, rec.price.per_request};
        for (size_t k = 0; k < 3; k++) {
            if (v[k] != 0 && v[k] != HPP_PRICE_NA) {
                return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                                    "a :free model must cost $0, but \"%s\" has a price", id);
            }
        }
    }
    rec.model_id = eng_cat_str(c->cat, id, id_len);
    rec.owner = eng_cat_str(c->cat, id, (size_t)(slash - id));
    rec.provider = eng_cat_str(c->cat, "openrouter", 10);
    rec.native_id = eng_cat_str(c->cat, id, len);
    if (rec.model_id == ENG_CAT_NOSTR || rec.owner == ENG_CAT_NOSTR ||
        rec.provider == ENG_CAT_NOSTR || rec.native_id == ENG_CAT_NOSTR ||
        eng_cat_add_record(c->cat, &rec) < 0) {
        return s_fail(c, ENG_ERR_NOMEM, "out of memory");
    }
    return 0;
}

int eng_cat_load_openrouter(eng_catalog_t *self, const char *file, const json_t *root,
                            eng_error_t *err)
{
    s_ctx_t c = {.cat = self, .file = file, .err = err};
    const json_t *data = json_object_get(root, "data");
    eng_cat_path_key(&c.path, "data");
    if (!json_is_array(data)) {
        return s_fail(&c, ENG_ERR_TYPE, data ? "expected an array" : "missing \"data\" array");
    }
    c.seen = json_object();
    if (!c.seen) {
        return s_fail(&c, ENG_ERR_NOMEM, "out of memory");
    }
    int rc = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(data, i, e)
    {
        size_t m = eng_cat_path_index(&c.path, i);
        if (s_model(&c, e, i) < 0) {
            rc = -1;
            break;
        }
        eng_cat_path_pop(&c.path, m);
    }
    json_decref(c.seen);
    return rc;
}
