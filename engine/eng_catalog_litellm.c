/* eng_catalog_litellm.c - loader for LiteLLM's model_prices_and_context_window.json.
 *
 * One object keyed by LiteLLM's model name ("claude-3-5-sonnet-20241022",
 * "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", ...), each value
 * with litellm_provider, mode, max_input_tokens, max_output_tokens, prices in
 * USD per token as JSON numbers, and supports_* booleans. Only chat-like
 * modes (chat, responses) become models; embeddings, image generation,
 * speech, rerank... are skipped. The key is the endpoint's native id; the
 * model id comes from the normalisation rules (eng_catalog_ids.c), so the
 * same model sold by several providers becomes one model with several
 * endpoints. The reserved keys sample_spec, last_updated and
 * fallback_generalizations are not models.
 *
 * Some entries are labelled "chat" but are not chat models: embeddings sold
 * through a chat-style gateway, image generators, text-to-speech. Priced at
 * zero or near zero per output token, they would win every cheap tier of
 * hpprouter/auto, so names carrying one of s_not_chat's markers are skipped
 * like the other modes.
 */
#include "eng_catalog_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const s_reserved[] = {"sample_spec", "last_updated", "fallback_generalizations",
                                         NULL};
static const char *const s_chat_modes[] = {"chat", "responses", NULL};
/* Markers, in the last path segment of the name (lower-cased), of models that
 * LiteLLM labels "chat" but that do not answer chat completions. */
static const char *const s_not_chat[] = {
    "embed", "rerank", "flux-", "stable-diffusion", "dall-e", "imagen", "whisper", "-tts", NULL};

typedef struct {
    const char *key; /* LiteLLM member */
    size_t off;      /* field in hpp_price_t */
} s_price_key_t;

/* All USD per token (or per request / image): scale 12 to picodollars. */
static const s_price_key_t s_price_keys[] = {
    {"input_cost_per_token", offsetof(hpp_price_t, input)},
    {"output_cost_per_token", offsetof(hpp_price_t, output)},
    {"cache_read_input_token_cost", offsetof(hpp_price_t, cache_read)},
    {"cache_creation_input_token_cost", offsetof(hpp_price_t, cache_write)},
    {"input_cost_per_request", offsetof(hpp_price_t, per_request)},
    {"input_cost_per_image", offsetof(hpp_price_t, per_image)},
    {NULL, 0},
};

typedef struct {
    const char *key; /* supports_* member */
    uint32_t bit;    /* capability */
} s_cap_key_t;

static const s_cap_key_t s_cap_keys[] = {
    {"supports_vision", HPP_CAP_VISION},
    {"supports_function_calling", HPP_CAP_TOOLS},
    {"supports_response_schema", HPP_CAP_JSON},
    {"supports_reasoning", HPP_CAP_REASONING},
    {NULL, 0},
};

/* Whether the last path segment of `key` contains one of the markers,
 * ASCII case-insensitively. */
static bool s_marked(const char *const *markers, const char *key)
{
    const char *seg = strrchr(key, '/');
    seg = seg ? seg + 1 : key;
    char low[ENG_CATALOG_MAX_ID + 1];
    size_t n = 0;
    for (; seg[n] && n < ENG_CATALOG_MAX_ID; n++) {
        low[n] = (char)((seg[n] >= 'A' && seg[n] <= 'Z') ? seg[n] + 32 : seg[n]);
    }
    low[n] = '\0';
    for (; *markers; markers++) {
        if (strstr(low, *markers)) {
            return true;
        }
    }
    return false;
}

static bool s_in(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (strcmp(*list, s) == 0) {
            return true;
        }
    }
    return false;
}

/* Reads prices, counts and capabilities of one entry into rec. */
static int s_fields(const char *file, eng_cat_path_t *path, const json_t *e, eng_cat_record_t *rec,
                    eng_error_t *err)
{
    for (const s_price_key_t *k = s_price_keys; k->key; k++) {
        size_t m = eng_cat_path_key(path, k->key);
        hpp_pusd_t *field = (hpp_pusd_t *)((char *)&rec->price + k->off);
        if (eng_cat_json_price(json_object_get(e, k->key), 12, false, file, path, field, err) < 0) {
            return -1;
        }
        eng_cat_path_pop(path, m);
    }
    const char *ctx_key =
        json_object_get(e, "max_input_tokens") ? "max_input_tokens" : "max_tokens";
    size_t m = eng_cat_path_key(path, ctx_key);
    if (eng_cat_json_count(json_object_get(e, ctx_key), file, path, &rec->context_length, err) <
        0) {
        return -1;
    }
    eng_cat_path_pop(path, m);
    m = eng_cat_path_key(path, "max_output_tokens");
    if (eng_cat_json_count(json_object_get(e, "max_output_tokens"), file, path, &rec->max_output,
                           err) < 0) {
        return -1;
    }
    eng_cat_path_pop(path, m);
    for (const s_cap_key_t *k = s_cap_keys; k->key; k++) {
        bool on;
        m = eng_cat_path_key(path, k->key);
        if (eng_cat_json_bool(json_object_get(e, k->key), file, path, &on, err) < 0) {
            return -1;
        }
        eng_cat_path_pop(path, m);
        rec->caps |= on ? k->bit : 0;
    }
    return 0;
}

/* Long-prompt prices: `<token price key>_above_<N>k_tokens` (N thousand
 * tokens; the price applies to a prompt of more than that). Variants with a
 * further suffix (`_priority`) are other service tiers and are ignored, as
 * are other units (`_per_character_`, `_per_second_`). An entry with several
 * thresholds keeps the lowest. */
static int s_long_prices(const char *file, eng_cat_path_t *path, const json_t *e,
                         eng_cat_record_t *rec, eng_error_t *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)e, key, v)
    {
        const char *ab = strstr(key, "_above_");
        if (!ab) {
            continue;
        }
        unsigned long n = 0;
        int used = 0;
        if (sscanf(ab, "_above_%lu%*[k]_tokens%n", &n, &used) != 1 || used == 0 ||
            ab[used] != '\0' || n == 0 || n > UINT32_MAX / 1000) {
            continue;
        }
        for (const s_price_key_t *k = s_price_keys; k->key; k++) {
            if (strlen(k->key) != (size_t)(ab - key) || strncmp(key, k->key, (size_t)(ab - key)) ||
                k->off == offsetof(hpp_price_t, per_request) ||
                k->off == offsetof(hpp_price_t, per_image)) {
                continue;
            }
            uint32_t above = (uint32_t)n * 1000u;
            if (rec->long_above && above > rec->long_above) {
                break; /* a higher threshold than the one kept */
            }
            if (rec->long_above && above < rec->long_above) {
                eng_cat_record_t fresh;
                eng_cat_record_init(&fresh);
                rec->long_price = fresh.long_price; /* the lower threshold wins */
            }
            rec->long_above = above;
            size_t m = eng_cat_path_key(path, key);
            hpp_pusd_t *field = (hpp_pusd_t *)((char *)&rec->long_price + k->off);
            if (eng_cat_json_price(v, 12, false, file, path, field, err) < 0) {
                return -1;
            }
            eng_cat_path_pop(path, m);
            break;
        }
    }
    return 0;
}

static int s_entry(eng_catalog_t *self, const char *file, eng_cat_path_t *path, const char *key,
                   const json_t *e, eng_error_t *err)
{
    if (!json_is_object(e)) {
        return eng_cat_fail(err, file, path, ENG_ERR_TYPE, "expected a model object");
    }
    const char *mode = NULL, *lprov = NULL;
    if (eng_cat_json_string(e, "mode", file, path, &mode, err) < 0) {
        return -1;
    }
    if (!mode || !s_in(s_chat_modes, mode) || s_marked(s_not_chat, key)) {
        return 0; /* not a chat model: not routable */
    }
    if (eng_cat_json_string(e, "litellm_provider", file, path, &lprov, err) < 0) {
        return -1;
    }
    if (!lprov || !*lprov) {
        return eng_cat_fail(err, file, path, ENG_ERR_TYPE, "missing \"litellm_provider\"");
    }
    size_t klen = strlen(key);
    if (klen == 0 || klen > ENG_CATALOG_MAX_ID) {
        return eng_cat_fail(err, file, path, ENG_ERR_LIMIT, "model name must be 1 to %u bytes",
                            ENG_CATALOG_MAX_ID);
    }
    eng_cat_record_t rec;
    eng_cat_record_init(&rec);
    if (s_fields(file, path, e, &rec, err) < 0 || s_long_prices(file, path, e, &rec, err) < 0) {
        return -1;
    }
    char prov[64], id[ENG_CATALOG_MAX_ID + 64];
    size_t pl = eng_cat_normalize_provider(lprov, strlen(lprov), prov, sizeof prov);
    size_t il = eng_cat_normalize_id(prov, key, klen, id, sizeof id);
    if (il == 0) {
        return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "cannot derive a model id from \"%s\"",
                            key);
    }
    const char *slash = strchr(id, '/');
    rec.model_id = eng_cat_str(self, id, il);
    rec.owner = eng_cat_str(self, id, (size_t)(slash - id));
    rec.provider = eng_cat_str(self, prov, pl);
    rec.native_id = eng_cat_str(self, key, klen);
    if (eng_cat_provider_is_local(prov)) {
        /* Local runtimes: LiteLLM lists them with no price; they cost $0. */
        rec.price.input = rec.price.input == HPP_PRICE_NA ? 0 : rec.price.input;
        rec.price.output = rec.price.output == HPP_PRICE_NA ? 0 : rec.price.output;
    }
    if (rec.model_id == ENG_CAT_NOSTR || rec.owner == ENG_CAT_NOSTR ||
        rec.provider == ENG_CAT_NOSTR || rec.native_id == ENG_CAT_NOSTR ||
        eng_cat_add_record(self, &rec) < 0) {
        return eng_cat_fail(err, file, path, ENG_ERR_NOMEM, "out of memory");
    }
    return 0;
}

int eng_cat_load_litellm(eng_catalog_t *self, const char *file, const json_t *root,
                         eng_error_t *err)
{
    eng_cat_path_t path = {.len = 0};
    const char *key;
    const json_t *e;
    json_object_foreach((json_t *)root, key, e)
    {
        if (s_in(s_reserved, key)) {
            continue;
        }
        size_t m = eng_cat_path_key(&path, key);
        if (s_entry(self, file, &path, key, e, err) < 0) {
            return -1;
        }
        eng_cat_path_pop(&path, m);
    }
    return 0;
}
