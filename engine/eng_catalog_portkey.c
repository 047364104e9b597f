/* eng_catalog_portkey.c - loader for Portkey pricing files (pricing/<provider>.json).
 *
 * {"default": {"pricing_config": {"pay_as_you_go": {"request_token": {"price": 0}, ...},
 *                                 "calculate": {"request": TREE, "response": TREE},
 *                                 "currency": "USD"}},
 *  "claude-3-5-sonnet-20241022": {"pricing_config": {"pay_as_you_go": {
 *      "request_token": {"price": 0.0003}, "response_token": {"price": 0.0015}}}}}
 *
 * Prices are US cents per token (0.0003 cents = $3 per 1M tokens, exactly
 * 3000000 picodollars). Each entry inherits every rate and the calculate
 * tree it does not set from "default". The calculate trees (operation sum |
 * multiply over operands {"value": "input_tokens" | "rates.<name>" | "<n>"})
 * are interpreted symbolically: each tree is expanded into a sum of
 * monomials (integer x token variable x rate), which must be linear in the
 * token variables; the coefficient of input_tokens, output_tokens,
 * cache_read_tokens and cache_write_tokens become the per-token prices, a
 * rate with no token variable becomes the per-request fee. Unknown variables
 * or operations are located errors. The provider is the file's base name.
 *
 * Only entries that set their own request_token or response_token rate are
 * token-priced models; the name filter of s_skip_words drops embeddings,
 * moderation, speech and image models that are token-priced too.
 *
 * The same loader reads Portkey's general/<provider>.json (model types,
 * supported features, parameters, no prices): those records only add
 * capabilities and max output to models some pricing file sells.
 */
#include "eng_catalog_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Token variables a calculate tree may use; only the first four are billed. */
enum { V_INPUT, V_OUTPUT, V_CACHE_READ, V_CACHE_WRITE, V_OTHER, V_NONE };

typedef struct {
    const char *name; /* variable in the tree */
    int var;          /* V_* */
} s_var_t;

static const s_var_t s_vars[] = {
    {"input_tokens", V_INPUT},
    {"output_tokens", V_OUTPUT},
    {"cache_read_tokens", V_CACHE_READ},
    {"cache_write_tokens", V_CACHE_WRITE},
    {"audio_input_tokens", V_OTHER},
    {"audio_output_tokens", V_OTHER},
    {"request_audio_tokens", V_OTHER},
    {"response_audio_tokens", V_OTHER},
    {"cache_read_audio_tokens", V_OTHER},
    {"image_tokens", V_OTHER},
    {"request_image_tokens", V_OTHER},
    {"response_image_tokens", V_OTHER},
    {"thinking_tokens", V_OUTPUT},
    {NULL, V_NONE},
};

/* Ids with these words are not chat models even when token-priced. */
static const char *const s_skip_words[] = {"embed",      "moderation", "whisper", "tts", "dall-e",
                                           "transcribe", "image",      "rerank",  NULL};

#define S_MAX_TERMS 32 /* monomials in one expanded tree */
#define S_MAX_DEPTH 16 /* nesting of operations */

/* scalar x variable x rate; rate HPP_PRICE_NA when the monomial has none. */
typedef struct {
    int64_t scalar;  /* product of integer literals */
    int var;         /* V_* or V_NONE */
    hpp_pusd_t rate; /* product's money factor, or HPP_PRICE_NA */
} s_term_t;

typedef struct {
    s_term_t t[S_MAX_TERMS]; /* monomials */
    size_t n;                /* used */
} s_poly_t;

typedef struct {
    const char *file;       /* for errors */
    eng_error_t *err;       /* error out */
    eng_cat_path_t path;    /* current key path */
    const json_t *rates;    /* entry pay_as_you_go */
    const json_t *defrates; /* default pay_as_you_go */
} s_ctx_t;

static int s_fail(s_ctx_t *c, eng_errcode_t code, const char *msg)
{
    return eng_cat_fail(c->err, c->file, &c->path, code, "%s", msg);
}

/* A rate: the entry's pay_as_you_go.<name>.price, else the default's. A rate
 * neither defines does not apply and costs nothing. */
static int s_rate(s_ctx_t *c, const char *name, hpp_pusd_t *out)
{
    const json_t *r = json_object_get(c->rates, name);
    if (!r) {
        r = json_object_get(c->defrates, name);
    }
    if (!r) {
        *out = 0;
        return 0;
    }
    const json_t *price = json_object_get(r, "price");
    if (!json_is_object(r) || !price) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_TYPE,
                            "rate \"%s\" has no flat \"price\"", name);
    }
    return eng_cat_json_price(price, 10, false, c->file, &c->path, out, c->err);
}

static int s_leaf(s_ctx_t *c, const json_t *v, s_poly_t *out)
{
    size_t m = eng_cat_path_key(&c->path, "value");
    if (!json_is_string(v)) {
        return s_fail(c, ENG_ERR_TYPE, "expected a string (a variable, rates.NAME or a number)");
    }
    const char *s = json_string_value(v);
    s_term_t t = {1, V_NONE, HPP_PRICE_NA};
    if (strncmp(s, "rates.", 6) == 0) {
        if (s_rate(c, s + 6, &t.rate) < 0) {
            return -1;
        }
    } else if (s[0] >= '0' && s[0] <= '9') {
        char *end;
        long long n = strtoll(s, &end, 10);
        if (*end || n < 0 || n > 1000000) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                                "literal \"%.40s\" is not a whole number up to 1000000", s);
        }
        t.scalar = n;
    } else {
        const s_var_t *k = s_vars;
        while (k->name && strcmp(k->name, s) != 0) {
            k++;
        }
        if (!k->name) {
            return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_UNKNOWN,
                                "unknown variable \"%.60s\"", s);
        }
        t.var = k->var;
    }
    eng_cat_path_pop(&c->path, m);
    out->t[0] = t;
    out->n = 1;
    return 0;
}

static int s_mul_term(const s_term_t *a, const s_term_t *b, s_term_t *out)
{
    if (a->var != V_NONE && b->var != V_NONE) {
        return -1; /* tokens x tokens: not linear */
    }
    if (a->rate != HPP_PRICE_NA && b->rate != HPP_PRICE_NA) {
        return -1; /* money x money: meaningless */
    }
    out->var = a->var != V_NONE ? a->var : b->var;
    out->rate = a->rate != HPP_PRICE_NA ? a->rate : b->rate;
    if (__builtin_mul_overflow(a->scalar, b->scalar, &out->scalar)) {
        return -1;
    }
    return 0;
}

static int s_eval(s_ctx_t *c, const json_t *node, int depth, s_poly_t *out);

static int s_operation(s_ctx_t *c, const json_t *node, const char *op, int depth, s_poly_t *out)
{
    bool sum = strcmp(op, "sum") == 0;
    if (!sum && strcmp(op, "multiply") != 0) {
        eng_cat_path_key(&c->path, "operation");
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_UNKNOWN,
                            "unknown operation \"%.40s\" (expected sum or multiply)", op);
    }
    const json_t *ops = json_object_get(node, "operands");
    size_t m0 = eng_cat_path_key(&c->path, "operands");
    if (!json_is_array(ops) || json_array_size(ops) == 0) {
        return s_fail(c, ENG_ERR_TYPE, "expected a non-empty array of operands");
    }
    /* Identity: 0 terms for a sum, the single term 1 for a product. */
    out->n = 0;
    if (!sum) {
        out->t[0] = (s_term_t){1, V_NONE, HPP_PRICE_NA};
        out->n = 1;
    }
    size_t i;
    const json_t *opnd;
    json_array_foreach(ops, i, opnd)
    {
        size_t m1 = eng_cat_path_index(&c->path, i);
        s_poly_t p;
        if (s_eval(c, opnd, depth + 1, &p) < 0) {
            return -1;
        }
        if (sum) {
            if (out->n + p.n > S_MAX_TERMS) {
                return s_fail(c, ENG_ERR_LIMIT, "expression has too many terms");
            }
            memcpy(out->t + out->n, p.t, p.n * sizeof p.t[0]);
            out->n += p.n;
        } else {
            if (out->n * p.n > S_MAX_TERMS) {
                return s_fail(c, ENG_ERR_LIMIT, "expression has too many terms");
            }
            s_poly_t r = {.n = 0};
            for (size_t a = 0; a < out->n; a++) {
                for (size_t b = 0; b < p.n; b++) {
                    if (s_mul_term(&out->t[a], &p.t[b], &r.t[r.n++]) < 0) {
                        return s_fail(c, ENG_ERR_VALUE,
                                      "product is not linear in tokens x one rate (or "
                                      "overflows)");
                    }
                }
            }
            *out = r;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_eval(s_ctx_t *c, const json_t *node, int depth, s_poly_t *out)
{
    if (depth > S_MAX_DEPTH) {
        return s_fail(c, ENG_ERR_LIMIT, "expression nested too deeply");
    }
    if (!json_is_object(node)) {
        return s_fail(c, ENG_ERR_TYPE, "expected {\"operation\": ...} or {\"value\": ...}");
    }
    const json_t *op = json_object_get(node, "operation");
    if (op) {
        if (!json_is_string(op)) {
            eng_cat_path_key(&c->path, "operation");
            return s_fail(c, ENG_ERR_TYPE, "expected a string");
        }
        return s_operation(c, node, json_string_value(op), depth, out);
    }
    const json_t *v = json_object_get(node, "value");
    if (!v) {
        return s_fail(c, ENG_ERR_TYPE, "expected {\"operation\": ...} or {\"value\": ...}");
    }
    return s_leaf(c, v, out);
}

/* Adds scalar x rate to *acc with overflow checks. */
static int s_accumulate(hpp_pusd_t *acc, const s_term_t *t)
{
    int64_t v;
    if (t->scalar == 0 || t->rate == 0) {
        return 0;
    }
    if (__builtin_mul_overflow(t->scalar, t->rate, &v)) {
        return -1;
    }
    if (*acc == HPP_PRICE_NA) {
        *acc = 0;
    }
    return __builtin_add_overflow(*acc, v, acc) ? -1 : 0;
}

/* Evaluates calculate.request + calculate.response into per-token prices. */
static int s_price(s_ctx_t *c, const json_t *calc, hpp_price_t *price)
{
    static const char *const parts[] = {"request", "response", NULL};
    size_t m0 = eng_cat_path_key(&c->path, "calculate");
    if (!json_is_object(calc)) {
        return s_fail(c, ENG_ERR_TYPE, "expected a calculate object");
    }
    price->input = price->output = price->cache_read = price->cache_write = 0;
    for (const char *const *p = parts; *p; p++) {
        const json_t *tree = json_object_get(calc, *p);
        if (!tree) {
            continue;
        }
        size_t m1 = eng_cat_path_key(&c->path, *p);
        s_poly_t poly;
        if (s_eval(c, tree, 0, &poly) < 0) {
            return -1;
        }
        for (size_t k = 0; k < poly.n; k++) {
            const s_term_t *t = &poly.t[k];
            if (t->rate == HPP_PRICE_NA) {
                if (t->scalar != 0) {
                    return s_fail(c, ENG_ERR_VALUE, "a term has no rate (it cannot cost money)");
                }
                continue;
            }
            hpp_pusd_t *acc = t->var == V_INPUT         ? &price->input
                              : t->var == V_OUTPUT      ? &price->output
                              : t->var == V_CACHE_READ  ? &price->cache_read
                              : t->var == V_CACHE_WRITE ? &price->cache_write
                              : t->var == V_NONE        ? &price->per_request
                                                        : NULL;
            if (acc && s_accumulate(acc, t) < 0) {
                return s_fail(c, ENG_ERR_VALUE, "price overflows");
            }
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static bool s_skip_id(const char *id)
{
    for (const char *const *w = s_skip_words; *w; w++) {
        if (strstr(id, *w)) {
            return true;
        }
    }
    return false;
}

/* Checks every flat rate {"price": ...} of a pay_as_you_go object, so a bad
 * price is reported where it is written, not where a tree uses it. */
static int s_check_rates(s_ctx_t *c, const json_t *payg)
{
    size_t m0 = eng_cat_path_key(&c->path, "pay_as_you_go");
    const char *name;
    const json_t *rate;
    json_object_foreach((json_t *)payg, name, rate)
    {
        const json_t *price = json_object_get(rate, "price");
        if (!price) {
            continue; /* nested tables (additional_units, image sizes): not token rates */
        }
        size_t m1 = eng_cat_path_key(&c->path, name);
        eng_cat_path_key(&c->path, "price");
        hpp_pusd_t v;
        if (eng_cat_json_price(price, 10, false, c->file, &c->path, &v, c->err) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

/* Reads pricing_config.pay_as_you_go of an entry into *payg (NULL when the
 * entry has no prices). Returns 0, or -1 with a located error. */
static int s_payg(s_ctx_t *c, const json_t *entry, const json_t **payg)
{
    *payg = NULL;
    if (!json_is_object(entry)) {
        return s_fail(c, ENG_ERR_TYPE, "expected an object");
    }
    const json_t *pc = json_object_get(entry, "pricing_config");
    if (!pc || json_is_null(pc)) {
        return 0;
    }
    size_t m = eng_cat_path_key(&c->path, "pricing_config");
    if (!json_is_object(pc)) {
        return s_fail(c, ENG_ERR_TYPE, "expected an object");
    }
    const json_t *cur = json_object_get(pc, "currency");
    if (cur && (!json_is_string(cur) || strcmp(json_string_value(cur), "USD") != 0)) {
        eng_cat_path_key(&c->path, "currency");
        return s_fail(c, ENG_ERR_VALUE, "only USD prices are supported");
    }
    const json_t *p = json_object_get(pc, "pay_as_you_go");
    if (p && !json_is_object(p)) {
        eng_cat_path_key(&c->path, "pay_as_you_go");
        return s_fail(c, ENG_ERR_TYPE, "expected an object of rates");
    }
    if (s_check_rates(c, p) < 0) {
        return -1;
    }
    const json_t *calc = json_object_get(pc, "calculate");
    if (calc && !json_is_object(calc)) {
        eng_cat_path_key(&c->path, "calculate");
        return s_fail(c, ENG_ERR_TYPE, "expected a calculate object");
    }
    eng_cat_path_pop(&c->path, m);
    *payg = p;
    return 0;
}

static int s_entry(eng_catalog_t *self, s_ctx_t *c, const char *prov, const char *key,
                   const json_t *entry, const json_t *defcalc)
{
    const json_t *payg;
    if (s_payg(c, entry, &payg) < 0) {
        return -1;
    }
    bool tokens = json_object_get(payg, "request_token") || json_object_get(payg, "response_token");
    if (!tokens || s_skip_id(key)) {
        return 0; /* no token prices (image, video...) or not a chat model */
    }
    size_t klen = strlen(key);
    if (klen == 0 || klen > ENG_CATALOG_MAX_ID) {
        return s_fail(c, ENG_ERR_LIMIT, "model name too long");
    }
    const json_t *calc = json_object_get(json_object_get(entry, "pricing_config"), "calculate");
    if (calc) {
        eng_cat_path_key(&c->path, "pricing_config");
    } else {
        /* Inherited: errors point at the default tree, evaluated on this entry's rates. */
        calc = defcalc;
        eng_cat_path_pop(&c->path, 0);
        eng_cat_path_key(&c->path, "default");
        eng_cat_path_key(&c->path, "pricing_config");
    }
    if (!calc) {
        return s_fail(c, ENG_ERR_TYPE, "no \"calculate\" tree here or in \"default\"");
    }
    eng_cat_record_t rec;
    eng_cat_record_init(&rec);
    c->rates = payg;
    if (s_price(c, calc, &rec.price) < 0) {
        return -1;
    }
    eng_cat_path_pop(&c->path, 0);
    eng_cat_path_key(&c->path, key);
    char id[ENG_CATALOG_MAX_ID + 64];
    size_t il = eng_cat_normalize_id(prov, key, klen, id, sizeof id);
    if (il == 0) {
        return eng_cat_fail(c->err, c->file, &c->path, ENG_ERR_VALUE,
                            "cannot derive a model id from \"%s\"", key);
    }
    const char *slash = strchr(id, '/');
    rec.model_id = eng_cat_str(self, id, il);
    rec.owner = eng_cat_str(self, id, (size_t)(slash - id));
    rec.provider = eng_cat_str(self, prov, strlen(prov));
    rec.native_id = eng_cat_str(self, key, klen);
    if (rec.model_id == ENG_CAT_NOSTR || rec.owner == ENG_CAT_NOSTR ||
        rec.provider == ENG_CAT_NOSTR || rec.native_id == ENG_CAT_NOSTR ||
        eng_cat_add_record(self, &rec) < 0) {
        return s_fail(c, ENG_ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* general/<provider>.json ------------------------------------------------------ */

typedef struct {
    const char *word; /* a type.supported word or a params key */
    uint32_t bit;     /* the capability it implies */
} s_cap_word_t;

static const s_cap_word_t s_supported_caps[] = {
    {"image", HPP_CAP_VISION},
    {"tools", HPP_CAP_TOOLS},
    {NULL, 0},
};
static const s_cap_word_t s_param_caps[] = {
    {"response_format", HPP_CAP_JSON},
    {"reasoning_effort", HPP_CAP_REASONING},
    {"thinking", HPP_CAP_REASONING},
    {NULL, 0},
};
static const char *const s_chat_types[] = {"chat", "responses", NULL};

static uint32_t s_cap_of(const s_cap_word_t *table, const char *w)
{
    for (; table->word; table++) {
        if (strcmp(table->word, w) == 0) {
            return table->bit;
        }
    }
    return 0;
}

/* type: {"primary": "chat", "supported": ["tools", "image"]}. Sets *chat. */
static int s_general_type(s_ctx_t *c, const json_t *type, bool *chat, uint32_t *caps)
{
    *chat = false;
    size_t m0 = eng_cat_path_key(&c->path, "type");
    if (!json_is_object(type)) {
        return s_fail(c, ENG_ERR_TYPE, "expected {\"primary\": ..., \"supported\": [...]}");
    }
    const json_t *primary = json_object_get(type, "primary");
    if (primary && !json_is_string(primary)) {
        eng_cat_path_key(&c->path, "primary");
        return s_fail(c, ENG_ERR_TYPE, "expected a string");
    }
    for (const char *const *t = s_chat_types; primary && *t; t++) {
        *chat = *chat || strcmp(*t, json_string_value(primary)) == 0;
    }
    const json_t *sup = json_object_get(type, "supported");
    if (sup) {
        eng_cat_path_key(&c->path, "supported");
        if (!json_is_array(sup)) {
            return s_fail(c, ENG_ERR_TYPE, "expected an array of strings");
        }
        size_t i;
        const json_t *w;
        json_array_foreach(sup, i, w)
        {
            if (!json_is_string(w)) {
                eng_cat_path_index(&c->path, i);
                return s_fail(c, ENG_ERR_TYPE, "expected a string");
            }
            *caps |= s_cap_of(s_supported_caps, json_string_value(w));
        }
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

/* params: [{"key": "max_tokens", "maxValue": 16384}, {"key": "response_format"}, ...] */
static int s_general_params(s_ctx_t *c, const json_t *params, uint32_t *max_output, uint32_t *caps)
{
    size_t m0 = eng_cat_path_key(&c->path, "params");
    if (!json_is_array(params)) {
        return s_fail(c, ENG_ERR_TYPE, "expected an array of parameters");
    }
    size_t i;
    const json_t *p;
    json_array_foreach(params, i, p)
    {
        size_t m1 = eng_cat_path_index(&c->path, i);
        const json_t *key = json_object_get(p, "key");
        if (!json_is_object(p) || !json_is_string(key)) {
            return s_fail(c, ENG_ERR_TYPE, "expected {\"key\": \"...\", ...}");
        }
        *caps |= s_cap_of(s_param_caps, json_string_value(key));
        if (strcmp(json_string_value(key), "max_tokens") == 0) {
            eng_cat_path_key(&c->path, "maxValue");
            if (eng_cat_json_count(json_object_get(p, "maxValue"), c->file, &c->path, max_output,
                                   c->err) < 0) {
                return -1;
            }
        }
        eng_cat_path_pop(&c->path, m1);
    }
    eng_cat_path_pop(&c->path, m0);
    return 0;
}

static int s_general_entry(eng_catalog_t *self, s_ctx_t *c, const char *prov, const char *key,
                           const json_t *entry, const json_t *deftype)
{
    if (!json_is_object(entry)) {
        return s_fail(c, ENG_ERR_TYPE, "expected a model object");
    }
    eng_cat_record_t rec;
    eng_cat_record_init(&rec);
    rec.attrs_only = true;
    const json_t *type = json_object_get(entry, "type");
    bool chat = false;
    if (s_general_type(c, type ? type : deftype, &chat, &rec.caps) < 0) {
        return -1;
    }
    const json_t *params = json_object_get(entry, "params");
    if (params && s_general_params(c, params, &rec.max_output, &rec.caps) < 0) {
        return -1;
    }
    size_t klen = strlen(key);
    if (!chat || s_skip_id(key) || klen == 0 || klen > ENG_CATALOG_MAX_ID) {
        return 0;
    }
    char id[ENG_CATALOG_MAX_ID + 64];
    size_t il = eng_cat_normalize_id(prov, key, klen, id, sizeof id);
    if (il == 0) {
        return 0;
    }
    const char *slash = strchr(id, '/');
    rec.model_id = eng_cat_str(self, id, il);
    rec.owner = eng_cat_str(self, id, (size_t)(slash - id));
    rec.provider = eng_cat_str(self, prov, strlen(prov));
    rec.native_id = eng_cat_str(self, key, klen);
    if (rec.model_id == ENG_CAT_NOSTR || rec.owner == ENG_CAT_NOSTR ||
        rec.provider == ENG_CAT_NOSTR || rec.native_id == ENG_CAT_NOSTR ||
        eng_cat_add_record(self, &rec) < 0) {
        return s_fail(c, ENG_ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* A general file: "name", "description" and per-model types and params,
 * no prices. Its records only add capabilities to models priced elsewhere. */
static int s_load_general(eng_catalog_t *self, s_ctx_t *c, const char *prov, const json_t *root)
{
    const json_t *deftype = json_object_get(json_object_get(root, "default"), "type");
    const char *key;
    const json_t *entry;
    json_object_foreach((json_t *)root, key, entry)
    {
        if (strcmp(key, "default") == 0 || strcmp(key, "name") == 0 ||
            strcmp(key, "description") == 0) {
            continue;
        }
        eng_cat_path_pop(&c->path, 0);
        eng_cat_path_key(&c->path, key);
        if (s_general_entry(self, c, prov, key, entry, deftype) < 0) {
            return -1;
        }
    }
    return 0;
}

static bool s_is_general(const json_t *root)
{
    const json_t *def = json_object_get(root, "default");
    return json_is_object(def) && !json_object_get(def, "pricing_config") &&
           (json_object_get(def, "params") || json_object_get(def, "type"));
}

/* Provider from the file name: ".../pricing/together-ai.json" -> "together". */
static void s_provider_of(const char *file, char *out, size_t n)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".json") == 0) {
        len -= 5;
    }
    if (eng_cat_normalize_provider(base, len, out, n) == 0) {
        snprintf(out, n, "portkey");
    }
}

int eng_cat_load_portkey(eng_catalog_t *self, const char *file, const json_t *root,
                         eng_error_t *err)
{
    s_ctx_t c = {.file = file, .err = err};
    char prov[64];
    s_provider_of(file, prov, sizeof prov);
    if (s_is_general(root)) {
        return s_load_general(self, &c, prov, root);
    }
    /* The default template: rates and calculate tree every entry inherits. */
    const json_t *def = json_object_get(root, "default");
    const json_t *defcalc = NULL;
    if (def) {
        eng_cat_path_key(&c.path, "default");
        if (s_payg(&c, def, &c.defrates) < 0) {
            return -1;
        }
        defcalc = json_object_get(json_object_get(def, "pricing_config"), "calculate");
        eng_cat_path_pop(&c.path, 0);
    }
    const char *key;
    const json_t *entry;
    json_object_foreach((json_t *)root, key, entry)
    {
        if (strcmp(key, "default") == 0) {
            continue;
        }
        eng_cat_path_key(&c.path, key);
        if (s_entry(self, &c, prov, key, entry, defcalc) < 0) {
            return -1;
        }
        eng_cat_path_pop(&c.path, 0);
    }
    return 0;
}
