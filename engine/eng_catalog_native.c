/* eng_catalog_native.c - loader for the gateway's own models list.
 *
 * The native format is the OpenAI-style list a gateway already serves at
 * /v1/models, extended with optional keys (policies/CATALOG.md):
 *
 *   {"object": "list",
 *    "providers": ["openai", {"id": "ollama", "local": true}],   optional
 *    "aliases": {"anthropic.claude-3-5-sonnet-20241022-v2:0":
 *                "anthropic/claude-3.5-sonnet"},                  optional
 *    "data": [{"id": "openai/gpt-5", "object": "model", "owned_by": "openai",
 *              "pricing": {"input": 1.25, "output": 10, "cache_read": 0.125,
 *                          "cache_write": null},
 *              "context_length": 400000, "max_output": 128000,
 *              "capabilities": ["vision", "tools", "json", "reasoning"],
 *              "endpoints": [{"provider": "azure", ...}]}]}
 *
 * Prices are USD per 1M tokens (fees USD per request / image), as numbers or
 * exact decimal strings. Ids are taken verbatim: this file is the source of
 * canonical ids. Every problem is reported with its key path.
 */
#include "eng_catalog_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name; /* status word */
    bool enabled;     /* may the resolver choose it */
} s_status_t;

static const s_status_t s_statuses[] = {
    {"active", true},    {"beta", true},     {"preview", true}, {"deprecated", true},
    {"disabled", false}, {"offline", false}, {NULL, false},
};

typedef struct {
    const char *key; /* pricing member */
    int scale;       /* 6: USD per 1M tokens; 12: USD per unit */
    size_t off;      /* field in hpp_price_t */
} s_price_key_t;

static const s_price_key_t s_price_keys[] = {
    {"input", 6, offsetof(hpp_price_t, input)},
    {"output", 6, offsetof(hpp_price_t, output)},
    {"cache_read", 6, offsetof(hpp_price_t, cache_read)},
    {"cache_write", 6, offsetof(hpp_price_t, cache_write)},
    {"per_request", 12, offsetof(hpp_price_t, per_request)},
    {"per_image", 12, offsetof(hpp_price_t, per_image)},
    {NULL, 0, 0},
};

/* Per-file state. */
typedef struct {
    eng_catalog_t *cat;  /* target */
    const char *file;    /* for errors */
    eng_error_t *err;    /* error out */
    eng_cat_path_t path; /* current key path */
    json_t *providers;   /* declared providers: name -> true (local) / false; NULL = any */
    json_t *seen_ids;    /* data[].id -> index, for duplicates */
    json_t *seen_eps;    /* "provider\nnative" -> true, for duplicates */
} s_ctx_t;

/* Model-level settings an endpoint inherits. */
typedef struct {
    const char *id;          /* canonical id (":free" stripped) */
    size_t id_len;           /* its length */
    bool free_id;            /* the data id ended in ":free" */
    const char *raw_id;      /* data[].id as written */
    const char *owner;       /* owned_by */
    const char *provider;    /* model-level provider */
    const char *native_id;   /* model-level native id */
    const json_t *pricing;   /* model-level pricing */
    const json_t *status;    /* model-level status */
    uint32_t context_length; /* tokens */
    uint32_t max_output;     /* tokens */
    uint32_t caps;           /* ENG_CAP_* */
} s_model_t;

static int s_fail_type(s_ctx_t *c, const char *what, const json_t *v)
{
    (void)v;
    return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_TYPE, "expected %s", what);
}

static int s_load_providers(s_ctx_t *c, const json_t *root)
{
    const json_t *list = json_object_get(root, "providers");
    if (!list || json_is_null(list)) {
        return 0;
    }
    size_t m0 = eng_cat_path_key(&c->path, "providers");
    if (!json_is_array(list)) {
        return s_fail_type(c, "an array of provider names", list);
    }
    c->providers = json_object();
    if (!c->providers) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_NOMEM, "out of memory");
    }
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        size_t m1 = eng_cat_path_index(&c->path, i);
        const char *name = NULL;
        bool local = false;
        if (json_is_string(p)) {
            name = json_string_value(p);
        } else if (json_is_object(p)) {
            if (eng_cat_json_string(p, "id", c->file, &c->path, &name, c->err) < 0) {
                return -1;
            }
            size_t m2 = eng_cat_path_key(&c->path, "local");
            if (eng_cat_json_bool(json_object_get(p, "local"), c->file, &c->path, &local, c->err) <
                0) {
                return -1;
            }
            eng_cat_path_pop(&c->path, m2);
        } else {
            return s_fail_type(c, "a provider name or {\"id\": ..., \"local\": ...}", p);
        }
        if (!name || !*name || strlen(name) > ENG_CATALOG_MAX_ID) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                                "provider name must be 1 to %u bytes", ENG_CATALOG_MAX_ID);
        }
        if (json_object_get(c->providers, name)) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_DUP,
                                "provider \"%s\" is declared twice", name);
        }
        json_object_set_new(c->providers, name, json_boolean(local));
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_load_aliases(s_ctx_t *c, const json_t *root)
{
    const json_t *al = json_object_get(root, "aliases");
    if (!al || json_is_null(al)) {
        return 0;
    }
    size_t m0 = eng_cat_path_key(&c->path, "aliases");
    if (!json_is_object(al)) {
        return s_fail_type(c, "an object mapping provider ids to model ids", al);
    }
    const char *from;
    const json_t *to;
    json_object_foreach((json_t *)al, from, to)
    {
        size_t m1 = eng_cat_path_key(&c->path, from);
        if (!json_is_string(to)) {
            return s_fail_type(c, "a model id string", to);
        }
        size_t fl = strlen(from), tl = json_string_length(to);
        if (fl == 0 || tl == 0 || fl > ENG_CATALOG_MAX_ID || tl > ENG_CATALOG_MAX_ID ||
            strlen(json_string_value(to)) != tl) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                                "alias and model id must be 1 to %u bytes", ENG_CATALOG_MAX_ID);
        }
        if (eng_cat_add_alias(c->cat, from, fl, json_string_value(to), tl) < 0) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_NOMEM, "out of memory");
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_parse_pricing(s_ctx_t *c, const json_t *pricing, bool local, hpp_price_t *out)
{
    const hpp_price_t na = {HPP_PRICE_NA, HPP_PRICE_NA, HPP_PRICE_NA,
                            HPP_PRICE_NA, HPP_PRICE_NA, HPP_PRICE_NA};
    *out = na;
    if (!pricing) {
        if (local) {
            /* A local model runs on our own hardware: $0 per token. */
            out->input = out->output = 0;
            return 0;
        }
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_TYPE,
                            "missing \"pricing\" (only local providers may omit it)");
    }
    size_t m0 = eng_cat_path_key(&c->path, "pricing");
    if (!json_is_object(pricing)) {
        return s_fail_type(c, "a pricing object {\"input\": ..., \"output\": ...}", pricing);
    }
    for (const s_price_key_t *k = s_price_keys; k->key; k++) {
        size_t m1 = eng_cat_path_key(&c->path, k->key);
        hpp_pusd_t *field = (hpp_pusd_t *)((char *)out + k->off);
        if (eng_cat_json_price(json_object_get(pricing, k->key), k->scale, false, c->file, &c->path,
                               field, c->err) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_parse_status(s_ctx_t *c, const json_t *status, bool *enabled)
{
    *enabled = true;
    if (!status || json_is_null(status)) {
        return 0;
    }
    size_t m0 = eng_cat_path_key(&c->path, "status");
    if (!json_is_string(status)) {
        return s_fail_type(c, "a status string", status);
    }
    for (const s_status_t *s = s_statuses; s->name; s++) {
        if (strcmp(s->name, json_string_value(status)) == 0) {
            *enabled = s->enabled;
            eng_cat_path_pop(&c->path, m0);
            return 0;
        }
    }
    return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                        "unknown status \"%.40s\" (expected one of: active, beta, preview, "
                        "deprecated, disabled, offline)",
                        json_string_value(status));
}

static int s_parse_caps(s_ctx_t *c, const json_t *caps, uint32_t *out)
{
    *out = 0;
    if (!caps || json_is_null(caps)) {
        return 0;
    }
    size_t m0 = eng_cat_path_key(&c->path, "capabilities");
    if (!json_is_array(caps)) {
        return s_fail_type(c, "an array of capability names", caps);
    }
    size_t i;
    const json_t *v;
    json_array_foreach(caps, i, v)
    {
        size_t m1 = eng_cat_path_index(&c->path, i);
        if (!json_is_string(v)) {
            return s_fail_type(c, "a capability name (vision, tools, json, reasoning)", v);
        }
        /* Unknown capability names are ignored: an unknown capability is absent. */
        for (size_t k = 0; k < HPP_NCAPS; k++) {
            if (strcmp(hpp_caps[k].name, json_string_value(v)) == 0) {
                *out |= hpp_caps[k].bit;
            }
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_count(s_ctx_t *c, const json_t *obj, const char *key, uint32_t *out)
{
    size_t m = eng_cat_path_key(&c->path, key);
    int rc = eng_cat_json_count(json_object_get(obj, key), c->file, &c->path, out, c->err);
    eng_cat_path_pop(&c->path, m);
    return rc;
}

static bool s_price_all_zero(const hpp_price_t *p)
{
    const hpp_pusd_t v[] = {p->input,       p->output,      p->cache_read,
                            p->cache_write, p->per_request, p->per_image};
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        if (v[k] != 0 && v[k] != HPP_PRICE_NA) {
            return false;
        }
    }
    return true;
}

static bool s_ends_free(const char *s, size_t len)
{
    return len > 5 && memcmp(s + len - 5, ":free", 5) == 0;
}

/* One endpoint: `ep` is an endpoints[] entry, or NULL for the implicit one. */
static int s_load_endpoint(s_ctx_t *c, const s_model_t *m, const json_t *ep)
{
    const char *provider = NULL, *native = NULL, *variant = NULL;
    if (ep && (eng_cat_json_string(ep, "provider", c->file, &c->path, &provider, c->err) < 0 ||
               eng_cat_json_string(ep, "native_id", c->file, &c->path, &native, c->err) < 0 ||
               eng_cat_json_string(ep, "variant", c->file, &c->path, &variant, c->err) < 0)) {
        return -1;
    }
    char prefix[ENG_CATALOG_MAX_ID + 1];
    if (!provider) {
        provider = m->provider ? m->provider : m->owner;
    }
    if (!provider) {
        const char *slash = memchr(m->id, '/', m->id_len);
        size_t pl = (size_t)(slash - m->id);
        memcpy(prefix, m->id, pl);
        prefix[pl] = '\0';
        provider = prefix;
    }
    if (!*provider) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE, "empty provider name");
    }
    bool local = eng_cat_provider_is_local(provider);
    if (c->providers) {
        const json_t *decl = json_object_get(c->providers, provider);
        if (!decl) {
            if (ep && json_object_get(ep, "provider")) {
                eng_cat_path_key(&c->path, "provider");
            }
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_UNKNOWN,
                                "unknown provider \"%s\" (not in the top-level \"providers\" list)",
                                provider);
        }
        local = local || json_is_true(decl);
    }
    if (!native) {
        native = m->native_id ? m->native_id : m->raw_id;
    }
    if (variant && strcmp(variant, "free") != 0 && strcmp(variant, "standard") != 0) {
        eng_cat_path_key(&c->path, "variant");
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                            "unknown variant \"%.40s\" (expected free or standard)", variant);
    }
    eng_cat_record_t rec;
    eng_cat_record_init(&rec);
    rec.prio = ENG_REC_PRIO_NATIVE;
    rec.free_variant = (variant && strcmp(variant, "free") == 0) ||
                       s_ends_free(native, strlen(native)) || (m->free_id && !ep);
    const json_t *pricing =
        ep && json_object_get(ep, "pricing") ? json_object_get(ep, "pricing") : m->pricing;
    if (s_parse_pricing(c, pricing, local || rec.free_variant, &rec.price) < 0 ||
        s_parse_status(
            c, ep && json_object_get(ep, "status") ? json_object_get(ep, "status") : m->status,
            &rec.enabled) < 0 ||
        (ep && s_count(c, ep, "context_length", &rec.ep_context) < 0)) {
        return -1;
    }
    if (rec.free_variant && !s_price_all_zero(&rec.price)) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                            "a :free endpoint must cost $0, but \"%s\" has a price", native);
    }
    /* Duplicate endpoints in one file are an error (across files, later wins). */
    char key[2 * ENG_CATALOG_MAX_ID + 2];
    snprintf(key, sizeof key, "%s\n%s", provider, native);
    if (json_object_get(c->seen_eps, key)) {
        return eng_cat_fail(
            c->err, c->file, &c->path, ENG_ERR_DUP,
            "duplicate endpoint: provider \"%s\" already serves \"%s\" in this file", provider,
            native);
    }
    json_object_set_new(c->seen_eps, key, json_true());
    rec.model_id = eng_cat_str(c->cat, m->id, m->id_len);
    rec.owner = m->owner ? eng_cat_str(c->cat, m->owner, strlen(m->owner)) : ENG_CAT_NOSTR;
    rec.provider = eng_cat_str(c->cat, provider, strlen(provider));
    rec.native_id = eng_cat_str(c->cat, native, strlen(native));
    rec.context_length = m->context_length;
    rec.max_output = m->max_output;
    rec.caps = m->caps;
    if (rec.model_id == ENG_CAT_NOSTR || rec.provider == ENG_CAT_NOSTR ||
        rec.native_id == ENG_CAT_NOSTR || (m->owner && rec.owner == ENG_CAT_NOSTR) ||
        eng_cat_add_record(c->cat, &rec) < 0) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_NOMEM,
                            "out of memory (or more than %u endpoints)", ENG_CATALOG_MAX_RECORDS);
    }
    return 0;
}

static int s_load_model(s_ctx_t *c, const json_t *e, size_t index)
{
    if (!json_is_object(e)) {
        return s_fail_type(c, "a model object {\"id\": ..., \"pricing\": ...}", e);
    }
    s_model_t m = {0};
    if (eng_cat_json_string(e, "id", c->file, &c->path, &m.raw_id, c->err) < 0 ||
        eng_cat_json_string(e, "owned_by", c->file, &c->path, &m.owner, c->err) < 0 ||
        eng_cat_json_string(e, "provider", c->file, &c->path, &m.provider, c->err) < 0 ||
        eng_cat_json_string(e, "native_id", c->file, &c->path, &m.native_id, c->err) < 0) {
        return -1;
    }
    if (!m.raw_id) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_TYPE,
                            "missing \"id\" (a model id such as \"openai/gpt-5\")");
    }
    size_t mk = eng_cat_path_key(&c->path, "id");
    m.id = m.raw_id;
    m.id_len = strlen(m.raw_id);
    m.free_id = s_ends_free(m.id, m.id_len);
    if (m.free_id) {
        m.id_len -= 5;
    }
    const char *slash = memchr(m.id, '/', m.id_len);
    if (!slash || slash == m.id || slash == m.id + m.id_len - 1) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                            "model id \"%s\" is not of the form provider/model", m.raw_id);
    }
    json_t *prev = json_object_get(c->seen_ids, m.raw_id);
    if (prev) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_DUP,
                            "duplicate model id \"%s\" (first at data[%lld])", m.raw_id,
                            (long long)json_integer_value(prev));
    }
    json_object_set_new(c->seen_ids, m.raw_id, json_integer((json_int_t)index));
    eng_cat_path_pop(&c->path, mk);
    m.pricing = json_object_get(e, "pricing");
    m.status = json_object_get(e, "status");
    if (s_count(c, e, "context_length", &m.context_length) < 0 ||
        s_count(c, e, "max_output", &m.max_output) < 0 ||
        s_parse_caps(c, json_object_get(e, "capabilities"), &m.caps) < 0) {
        return -1;
    }
    /* Check what endpoints inherit here, so errors point at the model's keys. */
    hpp_price_t probe;
    bool enabled;
    if ((m.pricing && s_parse_pricing(c, m.pricing, true, &probe) < 0) ||
        s_parse_status(c, m.status, &enabled) < 0) {
        return -1;
    }
    const json_t *eps = json_object_get(e, "endpoints");
    if (!eps || json_is_null(eps)) {
        return s_load_endpoint(c, &m, NULL);
    }
    size_t m0 = eng_cat_path_key(&c->path, "endpoints");
    if (!json_is_array(eps) || json_array_size(eps) == 0) {
        return s_fail_type(c, "a non-empty array of endpoints", eps);
    }
    size_t i;
    const json_t *ep;
    json_array_foreach(eps, i, ep)
    {
        size_t m1 = eng_cat_path_index(&c->path, i);
        if (!json_is_object(ep)) {
            return s_fail_type(c, "an endpoint object {\"provider\": ..., \"pricing\": ...}", ep);
        }
        if (s_load_endpoint(c, &m, ep) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_load(s_ctx_t *c, const json_t *root)
{
    const json_t *obj = json_object_get(root, "object");
    if (obj && !json_is_null(obj)) {
        size_t m = eng_cat_path_key(&c->path, "object");
        if (!json_is_string(obj) || strcmp(json_string_value(obj), "list") != 0) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE, "expected \"list\"");
        }
        eng_cat_path_pop(&c->path, m);
    }
    if (s_load_providers(c, root) < 0 || s_load_aliases(c, root) < 0) {
        return -1;
    }
    const json_t *data = json_object_get(root, "data");
    size_t m0 = eng_cat_path_key(&c->path, "data");
    if (!json_is_array(data)) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_TYPE,
                            data ? "expected an array of models" : "missing \"data\" array");
    }
    size_t i;
    const json_t *e;
    json_array_foreach(data, i, e)
    {
        size_t m1 = eng_cat_path_index(&c->path, i);
        if (s_load_model(c, e, i) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

int eng_cat_load_native(eng_catalog_t *self, const char *file, const json_t *root, eng_error_t *err)
{
    s_ctx_t c = {.cat = self, .file = file, .err = err};
    c.seen_ids = json_object();
    c.seen_eps = json_object();
    int rc = -1;
    if (!c.seen_ids || !c.seen_eps) {
        eng_cat_fail(err, file, NULL, ENG_ERR_NOMEM, "out of memory");
    } else {
        rc = s_load(&c, root);
    }
    json_decref(c.providers);
    json_decref(c.seen_ids);
    json_decref(c.seen_eps);
    return rc;
}
