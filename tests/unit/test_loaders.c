/* test_loaders.c - each catalog loader on the real files in tests/data, and
 * every kind of bad input with its location.
 *
 * Expected counts were derived independently of this C code: a one-off
 * python3 script re-implemented the documented rules of policies/CATALOG.md
 * (which entries become models, the id normalisation steps, the provider
 * families, `:free` ids) with json.load and counted, per file:
 *   models    distinct canonical model ids
 *   endpoints entries that became endpoints
 *   vision    models with a vision capability
 *   multi     models with endpoints from two or more distinct providers
 * Bad-input cases take the real file, break one value through jansson and
 * check the error code and key path (or line:col for JSON syntax).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_catalog_internal.h"

#define LITELLM "tests/data/litellm/model_prices_and_context_window.json"
#define OPENROUTER "tests/data/openrouter/openrouter_models_2026-08-01.json"
#define PORTKEY_DIR "tests/data/portkey/pricing/"
#define NATIVE "policies/catalog.json"

#define GENERAL_DIR "tests/data/portkey/general/"

static const char *const s_portkey_files[] = {
    PORTKEY_DIR "openai.json",     PORTKEY_DIR "anthropic.json",
    PORTKEY_DIR "google.json",     PORTKEY_DIR "groq.json",
    PORTKEY_DIR "deepseek.json",   PORTKEY_DIR "together-ai.json",
    PORTKEY_DIR "openrouter.json", NULL,
};

/* Pricing files plus the general files that carry the capabilities. */
static const char *const s_portkey_all[] = {
    PORTKEY_DIR "openai.json",      PORTKEY_DIR "anthropic.json",  PORTKEY_DIR "google.json",
    PORTKEY_DIR "groq.json",        PORTKEY_DIR "deepseek.json",   PORTKEY_DIR "together-ai.json",
    PORTKEY_DIR "openrouter.json",  GENERAL_DIR "openai.json",     GENERAL_DIR "anthropic.json",
    GENERAL_DIR "google.json",      GENERAL_DIR "groq.json",       GENERAL_DIR "deepseek.json",
    GENERAL_DIR "together-ai.json", GENERAL_DIR "openrouter.json", NULL,
};

typedef struct {
    size_t models, endpoints, vision, multi, multi_endpoint, disabled, free_endpoints;
} s_counts_t;

static s_counts_t s_count(const eng_catalog_t *cat)
{
    s_counts_t c = {0};
    size_t nm, ne;
    const eng_model_t *m = eng_catalog_models(cat, &nm);
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    c.models = nm;
    c.endpoints = ne;
    for (size_t i = 0; i < nm; i++) {
        c.vision += (m[i].caps & HPP_CAP_VISION) != 0;
        c.multi_endpoint += m[i].ep_count > 1;
        for (uint32_t k = m[i].ep_first + 1; k < m[i].ep_first + m[i].ep_count; k++) {
            if (strcmp(e[k].provider, e[m[i].ep_first].provider) != 0) {
                c.multi++;
                break;
            }
        }
    }
    for (size_t k = 0; k < ne; k++) {
        c.disabled += !e[k].enabled;
        c.free_endpoints += e[k].is_free;
    }
    return c;
}

static eng_catalog_t *s_load_files(const char *const *specs)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err = {0};
    for (; *specs; specs++) {
        char buf[600];
        int rc = eng_catalog_load(cat, *specs, &err);
        eng_error_format(&err, buf, sizeof buf);
        cr_assert_eq(rc, 0, "%s: %s", *specs, buf);
    }
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0, "%s", err.msg);
    return cat;
}

static const eng_model_t *s_find(const eng_catalog_t *cat, const char *id)
{
    const eng_model_t *m = eng_catalog_find(cat, id, strlen(id));
    cr_assert_not_null(m, "%s missing", id);
    return m;
}

/* Distinct providers among a model's endpoints. */
static size_t s_providers(const eng_catalog_t *cat, const eng_model_t *m)
{
    size_t ne, n = 0;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    for (uint32_t k = m->ep_first; k < m->ep_first + m->ep_count; k++) {
        bool seen = false;
        for (uint32_t j = m->ep_first; j < k; j++) {
            seen = seen || strcmp(e[j].provider, e[k].provider) == 0;
        }
        n += !seen;
    }
    return n;
}

/* Real files ------------------------------------------------------------------ */

Test(loaders, litellm_real_file)
{
    const char *specs[] = {LITELLM, NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    eng_catalog_t *cat = s_load_files(specs);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(secs, 2.0, "loading took %.3fs (well under a second unsanitised)", secs);
    s_counts_t c = s_count(cat);
    cr_assert_eq(c.models, 1123);
    cr_assert_eq(c.endpoints, 2361); /* chat + responses entries, but 9 that are not chat */
    cr_assert_eq(c.vision, 311);
    cr_assert_eq(c.multi, 300);
    cr_assert_eq(c.disabled, 141); /* chat entries without any price */
    /* Labelled "chat" by LiteLLM, but embedding, image and speech models. */
    static const char *const not_chat[] = {"cohere/embed-v4.0", "mistral/mistral-embed",
                                           "amazon/titan-embed-text-v2",
                                           "black-forest-labs/flux-1-schnell"};
    for (size_t i = 0; i < sizeof not_chat / sizeof not_chat[0]; i++) {
        cr_assert_null(eng_catalog_lookup(cat, not_chat[i], strlen(not_chat[i])), "%s",
                       not_chat[i]);
    }
    size_t nmod;
    const eng_model_t *models = eng_catalog_models(cat, &nmod);
    for (size_t i = 0; i < nmod; i++) {
        cr_assert_null(strstr(models[i].id, "embed"), "%s is not a chat model", models[i].id);
        cr_assert_null(strstr(models[i].id, "-tts"), "%s is not a chat model", models[i].id);
    }
    /* 7 provider families sell claude-3.5-sonnet under 13 different ids */
    const eng_model_t *m = s_find(cat, "anthropic/claude-3.5-sonnet");
    cr_assert_eq(s_providers(cat, m), 7);
    cr_assert_eq(s_providers(cat, s_find(cat, "openai/gpt-4o")), 7);
    cr_assert_eq(s_providers(cat, s_find(cat, "meta-llama/llama-3.1-8b-instruct")), 14);
    size_t ne;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    const eng_endpoint_t *floor = &e[m->floor_ep];
    cr_assert_eq(floor->price.input, 3000000); /* 3e-06 USD per token */
    cr_assert_eq(floor->price.output, 15000000);
    cr_assert(m->caps & HPP_CAP_VISION);
    /* cheapest first within every model, and floor = first enabled */
    size_t nm;
    const eng_model_t *all = eng_catalog_models(cat, &nm);
    for (size_t i = 0; i < nm; i++) {
        cr_assert_geq(all[i].ep_count, 1);
        if (i > 0) {
            cr_assert_lt(strcmp(all[i - 1].id, all[i].id), 0, "models sorted by id");
        }
        if (all[i].floor_ep >= 0) {
            cr_assert(e[all[i].floor_ep].enabled);
            cr_assert_eq(e[all[i].floor_ep].model, i);
        }
    }
    eng_catalog_destroy(&cat);
}

Test(loaders, openrouter_real_file)
{
    const char *specs[] = {OPENROUTER, NULL};
    eng_catalog_t *cat = s_load_files(specs);
    s_counts_t c = s_count(cat);
    cr_assert_eq(c.models, 328); /* 336 ids, 8 of them `:free` twins of a paid id */
    cr_assert_eq(c.endpoints, 336);
    cr_assert_eq(c.vision, 178); /* architecture.input_modalities has "image" */
    cr_assert_eq(c.multi, 0);    /* one provider: openrouter */
    cr_assert_eq(c.multi_endpoint, 8);
    cr_assert_eq(c.disabled, 5); /* "-1" prices: the openrouter/auto... routers */
    cr_assert_eq(c.free_endpoints, 17);
    const eng_model_t *m = s_find(cat, "openai/gpt-oss-20b");
    cr_assert_eq(m->ep_count, 2);
    size_t ne;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    cr_assert_str_eq(e[m->free_ep].native_id, "openai/gpt-oss-20b:free");
    cr_assert_eq(m->floor_ep, m->free_ep + 1); /* the plain id: the paid endpoint */
    cr_assert(e[m->free_ep].free_variant);
    cr_assert_not(e[m->floor_ep].is_free);
    /* exact decimal strings: "0.0000006000000000000001" is 600000 pUSD */
    const eng_model_t *luna = s_find(cat, "openai/gpt-5.6-luna");
    cr_assert_eq(e[luna->floor_ep].price.output, 600000);
    cr_assert_eq(e[luna->floor_ep].price.input, 100000);
    const eng_model_t *sonnet = s_find(cat, "anthropic/claude-sonnet-4");
    cr_assert_eq(e[sonnet->floor_ep].price.cache_write, 3750000);
    cr_assert_eq(sonnet->caps, HPP_CAP_VISION | HPP_CAP_TOOLS | HPP_CAP_REASONING);
    cr_assert_eq(sonnet->context_length, 1000000);
    cr_assert_eq(sonnet->max_output, 64000);
    eng_catalog_destroy(&cat);
}

Test(loaders, portkey_real_files)
{
    eng_catalog_t *cat = s_load_files(s_portkey_files);
    s_counts_t c = s_count(cat);
    cr_assert_eq(c.models, 962);
    cr_assert_eq(c.endpoints, 1096);
    cr_assert_eq(c.vision, 0); /* pricing files carry no capabilities */
    cr_assert_eq(c.multi, 114);
    eng_catalog_destroy(&cat);

    /* with the general files: same models, now with capabilities */
    cat = s_load_files(s_portkey_all);
    c = s_count(cat);
    cr_assert_eq(c.models, 962, "general files add no model of their own");
    cr_assert_eq(c.endpoints, 1096);
    cr_assert_eq(c.vision, 324); /* type.supported has "image" */
    cr_assert_eq(c.multi, 114);
    size_t nm, tools = 0;
    const eng_model_t *all = eng_catalog_models(cat, &nm);
    for (size_t i = 0; i < nm; i++) {
        tools += (all[i].caps & HPP_CAP_TOOLS) != 0;
    }
    cr_assert_eq(tools, 506);
    cr_assert_eq(s_find(cat, "openai/gpt-4o")->max_output, 16384, "params max_tokens.maxValue");
    size_t ne;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    /* 0.00025 cents per token = $2.50 / 1M; openai and openrouter both sell it */
    const eng_model_t *m = s_find(cat, "openai/gpt-4o");
    cr_assert_eq(s_providers(cat, m), 2);
    cr_assert_eq(e[m->floor_ep].price.input, 2500000);
    cr_assert_eq(e[m->floor_ep].price.output, 10000000);
    /* the default calculate tree bills cache reads at the entry's own rate */
    const eng_model_t *s = s_find(cat, "anthropic/claude-3.5-sonnet");
    cr_assert_eq(s_providers(cat, s), 2);
    bool found = false;
    for (uint32_t k = s->ep_first; k < s->ep_first + s->ep_count; k++) {
        if (strcmp(e[k].native_id, "claude-3-5-sonnet-20241022") == 0) {
            found = true;
            cr_assert_eq(e[k].price.input, 3000000); /* 0.0003 cents */
            cr_assert_eq(e[k].price.cache_read, 300000);
            cr_assert_eq(e[k].price.cache_write, 3750000);
            cr_assert_str_eq(e[k].provider, "anthropic");
        }
    }
    cr_assert(found);
    /* a provider comes from the file name, families merged */
    cr_assert_str_eq(e[s_find(cat, "meta-llama/llama-3.3-70b-instruct-turbo")->floor_ep].provider,
                     "together");
    eng_catalog_destroy(&cat);
}

Test(loaders, all_sources_together)
{
    const char *specs[] = {LITELLM,
                           OPENROUTER,
                           "portkey:" PORTKEY_DIR "openai.json",
                           "portkey:" PORTKEY_DIR "anthropic.json",
                           NATIVE,
                           NULL};
    eng_catalog_t *cat = s_load_files(specs);
    size_t ne;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    /* the bundled catalog's aliases and rules join Bedrock, Vertex, Anthropic,
     * OpenRouter and the others into one model */
    const eng_model_t *m = s_find(cat, "anthropic/claude-3.5-sonnet");
    cr_assert_geq(s_providers(cat, m), 8);
    /* the native file's attributes win */
    cr_assert_eq(m->context_length, 200000);
    cr_assert_eq(m->max_output, 8192);
    const eng_model_t *g = s_find(cat, "google/gemma-2-9b-it");
    cr_assert_geq(g->free_ep, 0);
    cr_assert(e[g->free_ep].is_free);
    eng_catalog_destroy(&cat);
}

/* Bad input -------------------------------------------------------------------- */

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Loads buf into a catalog that already holds one good model; asserts the
 * error and that the catalog still holds exactly that model. */
static eng_error_t s_expect_error(const char *name, const char *buf, size_t len,
                                  eng_catalog_format_t fmt, eng_errcode_t code, const char *where)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err = {0};
    const char good[] = "{\"data\":[{\"id\":\"keep/me\",\"pricing\":{\"input\":1,\"output\":2}}]}";
    cr_assert_eq(eng_catalog_load_buffer(cat, "good.json", good, strlen(good), ENG_FMT_AUTO, &err),
                 0);
    int rc = eng_catalog_load_buffer(cat, name, buf, len, fmt, &err);
    char text[700];
    eng_error_format(&err, text, sizeof text);
    cr_assert_eq(rc, -1, "%s loaded but should fail", name);
    cr_assert_eq(err.code, code, "%s: code %s, want %s: %s", name, eng_errcode_name(err.code),
                 eng_errcode_name(code), text);
    if (where) {
        cr_assert_str_eq(err.where, where, "%s", text);
        cr_assert_eq(err.line, 0);
        char expect[400];
        snprintf(expect, sizeof expect, "%s: at %s: error: ", name, where);
        cr_assert_eq(strncmp(text, expect, strlen(expect)), 0, "%s", text);
    }
    cr_assert_str_eq(err.file, name);
    cr_assert_gt(strlen(err.msg), 0);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0);
    size_t n;
    const eng_model_t *m = eng_catalog_models(cat, &n);
    cr_assert_eq(n, 1, "the failed load left %zu models", n);
    cr_assert_str_eq(m[0].id, "keep/me");
    eng_catalog_destroy(&cat);
    return err;
}

/* Loads a real file as JSON, lets `edit` break it, and expects the error. */
static void s_broken(const char *path, eng_catalog_format_t fmt, void (*edit)(json_t *),
                     eng_errcode_t code, const char *where)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s: %s", path, je.text);
    edit(root);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    s_expect_error(path, text, strlen(text), fmt, code, where);
    free(text);
}

/* A truncated real file: a syntax error at the end, with line and column. */
static void s_truncated(const char *path, eng_catalog_format_t fmt)
{
    size_t len;
    char *buf = s_read(path, &len);
    size_t cut = len / 2;
    int lines = 1;
    for (size_t i = 0; i < cut; i++) {
        lines += buf[i] == '\n';
    }
    eng_error_t err = s_expect_error(path, buf, cut, fmt, ENG_ERR_SYNTAX, NULL);
    cr_assert_eq(err.line, lines, "%s: line %d, want %d", path, err.line, lines);
    cr_assert_gt(err.col, 0);
    char text[700], expect[300];
    eng_error_format(&err, text, sizeof text);
    snprintf(expect, sizeof expect, "%s:%d:%d: error: ", path, err.line, err.col);
    cr_assert_eq(strncmp(text, expect, strlen(expect)), 0, "%s", text);
    /* an empty file too */
    s_expect_error(path, buf, 0, fmt, ENG_ERR_SYNTAX, NULL);
    free(buf);
}

Test(loaders, truncated_files)
{
    s_truncated(NATIVE, ENG_FMT_AUTO);
    s_truncated(OPENROUTER, ENG_FMT_AUTO);
    s_truncated(LITELLM, ENG_FMT_AUTO);
    s_truncated(PORTKEY_DIR "anthropic.json", ENG_FMT_PORTKEY);
}

static json_t *s_at(json_t *root, const char *path)
{
    /* "data/3/pricing": object keys and array indexes separated by '/'. */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "/"); tok; tok = strtok(NULL, "/")) {
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
        cr_assert_not_null(v, "no %s", path);
    }
    return v;
}

static void s_set(json_t *root, const char *parent, const char *key, json_t *value)
{
    cr_assert_eq(json_object_set_new(s_at(root, parent), key, value), 0);
}

/* native ---------------------------------------------------------------------- */

static void n_price_text(json_t *r)
{
    s_set(r, "data/3/pricing", "input", json_string("abc"));
}
static void n_price_negative(json_t *r)
{
    s_set(r, "data/3/pricing", "input", json_real(-2));
}
static void n_price_type(json_t *r)
{
    s_set(r, "data/3/pricing", "output", json_true());
}
static void n_pricing_type(json_t *r)
{
    s_set(r, "data/3", "pricing", json_string("cheap"));
}
static void n_dup_id(json_t *r)
{
    s_set(r, "data/4", "id", json_string("openai/gpt-5"));
}
static void n_unknown_provider(json_t *r)
{
    s_set(r, "data/1/endpoints/1", "provider", json_string("nowhere"));
}
static void n_unknown_model_provider(json_t *r)
{
    s_set(r, "data/10", "provider", json_string("lmstudio"));
}
static void n_context_text(json_t *r)
{
    s_set(r, "data/2", "context_length", json_string("lots"));
}
static void n_caps_type(json_t *r)
{
    s_set(r, "data/2", "capabilities", json_string("vision"));
}
static void n_caps_item(json_t *r)
{
    cr_assert_eq(json_array_append_new(s_at(r, "data/2/capabilities"), json_integer(7)), 0);
}
static void n_no_data(json_t *r)
{
    cr_assert_eq(json_object_del(r, "data"), 0);
}
static void n_data_type(json_t *r)
{
    s_set(r, "", "data", json_object());
}
static void n_free_priced(json_t *r)
{
    s_set(r, "data/9/pricing", "output", json_real(0.1));
}
static void n_bad_status(json_t *r)
{
    s_set(r, "data/0/endpoints/1", "status", json_string("sleeping"));
}
static void n_bad_id(json_t *r)
{
    s_set(r, "data/0", "id", json_string("gpt-5"));
}
static void n_no_id(json_t *r)
{
    cr_assert_eq(json_object_del(s_at(r, "data/6"), "id"), 0);
}
static void n_no_pricing(json_t *r)
{
    cr_assert_eq(json_object_del(s_at(r, "data/5"), "pricing"), 0);
    cr_assert_eq(json_object_del(s_at(r, "data/5"), "endpoints"), 0);
}
static void n_model_not_object(json_t *r)
{
    cr_assert_eq(json_array_set_new(s_at(r, "data"), 2, json_string("openai/gpt-5")), 0);
}
static void n_alias_type(json_t *r)
{
    s_set(r, "aliases", "gpt-oss:120b", json_integer(1));
}
static void n_providers_dup(json_t *r)
{
    cr_assert_eq(json_array_append_new(s_at(r, "providers"), json_string("openai")), 0);
}
static void n_dup_endpoint(json_t *r)
{
    s_set(r, "data/0/endpoints/1", "provider", json_string("openai"));
    s_set(r, "data/0/endpoints/1", "native_id", json_string("gpt-5"));
}

Test(loaders, native_bad_input_is_located)
{
    s_broken(NATIVE, ENG_FMT_AUTO, n_price_text, ENG_ERR_VALUE, "data[3].pricing.input");
    s_broken(NATIVE, ENG_FMT_AUTO, n_price_negative, ENG_ERR_VALUE, "data[3].pricing.input");
    s_broken(NATIVE, ENG_FMT_AUTO, n_price_type, ENG_ERR_TYPE, "data[3].pricing.output");
    s_broken(NATIVE, ENG_FMT_AUTO, n_pricing_type, ENG_ERR_TYPE, "data[3].pricing");
    s_broken(NATIVE, ENG_FMT_AUTO, n_dup_id, ENG_ERR_DUP, "data[4].id");
    s_broken(NATIVE, ENG_FMT_AUTO, n_unknown_provider, ENG_ERR_UNKNOWN,
             "data[1].endpoints[1].provider");
    s_broken(NATIVE, ENG_FMT_AUTO, n_unknown_model_provider, ENG_ERR_UNKNOWN, "data[10]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_context_text, ENG_ERR_VALUE, "data[2].context_length");
    s_broken(NATIVE, ENG_FMT_AUTO, n_caps_type, ENG_ERR_TYPE, "data[2].capabilities");
    s_broken(NATIVE, ENG_FMT_AUTO, n_caps_item, ENG_ERR_TYPE, "data[2].capabilities[3]");
    s_broken(NATIVE, ENG_FMT_NATIVE, n_no_data, ENG_ERR_TYPE, "data");
    s_broken(NATIVE, ENG_FMT_NATIVE, n_data_type, ENG_ERR_TYPE, "data");
    s_broken(NATIVE, ENG_FMT_AUTO, n_free_priced, ENG_ERR_VALUE, "data[9]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_bad_status, ENG_ERR_VALUE, "data[0].endpoints[1].status");
    s_broken(NATIVE, ENG_FMT_AUTO, n_bad_id, ENG_ERR_VALUE, "data[0].id");
    s_broken(NATIVE, ENG_FMT_AUTO, n_no_id, ENG_ERR_TYPE, "data[6]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_no_pricing, ENG_ERR_TYPE, "data[5]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_model_not_object, ENG_ERR_TYPE, "data[2]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_alias_type, ENG_ERR_TYPE, "aliases[\"gpt-oss:120b\"]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_providers_dup, ENG_ERR_DUP, "providers[11]");
    s_broken(NATIVE, ENG_FMT_AUTO, n_dup_endpoint, ENG_ERR_DUP, "data[0].endpoints[1]");
}

Test(loaders, duplicate_json_keys_are_located)
{
    const char doc[] = "{\"data\": [\n"
                       "  {\"id\": \"a/b\",\n"
                       "   \"pricing\": {\"input\": 1, \"input\": 2}}]}";
    eng_error_t err = s_expect_error("dup.json", doc, strlen(doc), ENG_FMT_AUTO, ENG_ERR_DUP, NULL);
    cr_assert_eq(err.line, 3);
    cr_assert_gt(err.col, 0);
    const char lite[] = "{\"gpt-4o\": {\"mode\": \"chat\"},\n\"gpt-4o\": {\"mode\": \"chat\"}}";
    err = s_expect_error("lite.json", lite, strlen(lite), ENG_FMT_LITELLM, ENG_ERR_DUP, NULL);
    cr_assert_eq(err.line, 2);
}

/* openrouter -------------------------------------------------------------------- */

static void o_prompt_text(json_t *r)
{
    s_set(r, "data/3/pricing", "prompt", json_string("abc"));
}
static void o_completion_negative(json_t *r)
{
    s_set(r, "data/3/pricing", "completion", json_string("-0.5"));
}
static void o_prompt_type(json_t *r)
{
    s_set(r, "data/3/pricing", "prompt", json_true());
}
static void o_no_prompt(json_t *r)
{
    cr_assert_eq(json_object_del(s_at(r, "data/3/pricing"), "prompt"), 0);
}
static void o_dup_id(json_t *r)
{
    s_set(r, "data/5", "id", json_copy(s_at(r, "data/2/id")));
}
static void o_modalities_type(json_t *r)
{
    s_set(r, "data/3/architecture", "input_modalities", json_string("image"));
}
static void o_context_negative(json_t *r)
{
    s_set(r, "data/3", "context_length", json_integer(-5));
}
static void o_not_object(json_t *r)
{
    cr_assert_eq(json_array_set_new(s_at(r, "data"), 7, json_integer(42)), 0);
}
static void o_free_priced(json_t *r)
{
    /* data[0] priced, renamed to a :free id */
    s_set(r, "data/0", "id", json_string("deepseek/deepseek-v4-flash-0731:free"));
}
static void o_params_item(json_t *r)
{
    cr_assert_eq(json_array_insert_new(s_at(r, "data/4/supported_parameters"), 0, json_null()), 0);
}
static void o_no_slash(json_t *r)
{
    s_set(r, "data/6", "id", json_string("gpt"));
}

Test(loaders, openrouter_bad_input_is_located)
{
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_prompt_text, ENG_ERR_VALUE, "data[3].pricing.prompt");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_completion_negative, ENG_ERR_VALUE,
             "data[3].pricing.completion");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_prompt_type, ENG_ERR_TYPE, "data[3].pricing.prompt");
    s_broken(OPENROUTER, ENG_FMT_OPENROUTER, o_no_prompt, ENG_ERR_TYPE, "data[3].pricing.prompt");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_dup_id, ENG_ERR_DUP, "data[5].id");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_modalities_type, ENG_ERR_TYPE,
             "data[3].architecture.input_modalities");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_context_negative, ENG_ERR_VALUE, "data[3].context_length");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_not_object, ENG_ERR_TYPE, "data[7]");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_free_priced, ENG_ERR_VALUE, "data[0]");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_params_item, ENG_ERR_TYPE,
             "data[4].supported_parameters[0]");
    s_broken(OPENROUTER, ENG_FMT_AUTO, o_no_slash, ENG_ERR_VALUE, "data[6].id");
}

/* litellm -------------------------------------------------------------------- */

static void l_price_text(json_t *r)
{
    s_set(r, "gpt-4o", "input_cost_per_token", json_string("x"));
}
static void l_price_negative(json_t *r)
{
    s_set(r, "anthropic.claude-3-5-sonnet-20241022-v2:0", "output_cost_per_token",
          json_real(-1.5e-05));
}
static void l_supports_type(json_t *r)
{
    s_set(r, "gpt-4o", "supports_vision", json_string("yes"));
}
static void l_no_provider(json_t *r)
{
    cr_assert_eq(json_object_del(s_at(r, "gpt-4o"), "litellm_provider"), 0);
}
static void l_not_object(json_t *r)
{
    s_set(r, "", "gpt-4o", json_array());
}
static void l_tokens_text(json_t *r)
{
    s_set(r, "gpt-4o", "max_input_tokens", json_string("many"));
}
static void l_mode_type(json_t *r)
{
    s_set(r, "gpt-4o", "mode", json_integer(1));
}
static void l_price_object(json_t *r)
{
    s_set(r, "gpt-4o", "cache_read_input_token_cost", json_object());
}

Test(loaders, litellm_bad_input_is_located)
{
    s_broken(LITELLM, ENG_FMT_AUTO, l_price_text, ENG_ERR_VALUE, "gpt-4o.input_cost_per_token");
    s_broken(LITELLM, ENG_FMT_AUTO, l_price_negative, ENG_ERR_VALUE,
             "[\"anthropic.claude-3-5-sonnet-20241022-v2:0\"].output_cost_per_token");
    s_broken(LITELLM, ENG_FMT_AUTO, l_supports_type, ENG_ERR_TYPE, "gpt-4o.supports_vision");
    s_broken(LITELLM, ENG_FMT_AUTO, l_no_provider, ENG_ERR_TYPE, "gpt-4o");
    s_broken(LITELLM, ENG_FMT_AUTO, l_not_object, ENG_ERR_TYPE, "gpt-4o");
    s_broken(LITELLM, ENG_FMT_AUTO, l_tokens_text, ENG_ERR_VALUE, "gpt-4o.max_input_tokens");
    s_broken(LITELLM, ENG_FMT_AUTO, l_mode_type, ENG_ERR_TYPE, "gpt-4o.mode");
    s_broken(LITELLM, ENG_FMT_AUTO, l_price_object, ENG_ERR_TYPE,
             "gpt-4o.cache_read_input_token_cost");
}

/* portkey -------------------------------------------------------------------- */

#define PK_OPENAI PORTKEY_DIR "openai.json"
#define PK_CALC "default/pricing_config/calculate/request"

static void p_unknown_variable(json_t *r)
{
    s_set(r, PK_CALC "/operands/0/operands/0", "value", json_string("banana_tokens"));
}
static void p_unknown_operation(json_t *r)
{
    s_set(r, PK_CALC, "operation", json_string("divide"));
}
static void p_negative(json_t *r)
{
    s_set(r, "gpt-4o/pricing_config/pay_as_you_go/request_token", "price", json_real(-0.1));
}
static void p_text(json_t *r)
{
    s_set(r, "gpt-4o/pricing_config/pay_as_you_go/request_token", "price", json_string("abc"));
}
static void p_type(json_t *r)
{
    s_set(r, "gpt-4o/pricing_config/pay_as_you_go/response_token", "price", json_false());
}
static void p_currency(json_t *r)
{
    s_set(r, "gpt-4o/pricing_config", "currency", json_string("EUR"));
}
static void p_nonlinear(json_t *r)
{
    s_set(r, PK_CALC "/operands/0/operands/1", "value", json_string("output_tokens"));
}
static void p_operands_type(json_t *r)
{
    s_set(r, PK_CALC, "operands", json_string("all"));
}
static void p_literal(json_t *r)
{
    s_set(r, PK_CALC "/operands/0/operands/0", "value", json_string("1.5x"));
}
static void p_entry_type(json_t *r)
{
    s_set(r, "", "gpt-4o", json_integer(3));
}
static void p_config_type(json_t *r)
{
    s_set(r, "gpt-4o", "pricing_config", json_string("free"));
}

Test(loaders, portkey_bad_input_is_located)
{
    s_broken(PK_OPENAI, ENG_FMT_PORTKEY, p_unknown_variable, ENG_ERR_UNKNOWN,
             "default.pricing_config.calculate.request.operands[0].operands[0].value");
    s_broken(PK_OPENAI, ENG_FMT_PORTKEY, p_unknown_operation, ENG_ERR_UNKNOWN,
             "default.pricing_config.calculate.request.operation");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_negative, ENG_ERR_VALUE,
             "gpt-4o.pricing_config.pay_as_you_go.request_token.price");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_text, ENG_ERR_VALUE,
             "gpt-4o.pricing_config.pay_as_you_go.request_token.price");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_type, ENG_ERR_TYPE,
             "gpt-4o.pricing_config.pay_as_you_go.response_token.price");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_currency, ENG_ERR_VALUE, "gpt-4o.pricing_config.currency");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_nonlinear, ENG_ERR_VALUE,
             "default.pricing_config.calculate.request.operands[0].operands[1]");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_operands_type, ENG_ERR_TYPE,
             "default.pricing_config.calculate.request.operands");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_literal, ENG_ERR_VALUE,
             "default.pricing_config.calculate.request.operands[0].operands[0].value");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_entry_type, ENG_ERR_TYPE, "gpt-4o");
    s_broken(PK_OPENAI, ENG_FMT_AUTO, p_config_type, ENG_ERR_TYPE, "gpt-4o.pricing_config");
}

static void g_supported_type(json_t *r)
{
    s_set(r, "gpt-4o/type", "supported", json_string("image"));
}
static void g_params_item(json_t *r)
{
    cr_assert_eq(json_array_insert_new(s_at(r, "gpt-4o/params"), 0, json_integer(1)), 0);
}
static void g_max_tokens(json_t *r)
{
    s_set(r, "gpt-4o/params/0", "maxValue", json_string("big"));
}

Test(loaders, portkey_general_files)
{
    s_broken(GENERAL_DIR "openai.json", ENG_FMT_AUTO, g_supported_type, ENG_ERR_TYPE,
             "gpt-4o.type.supported");
    s_broken(GENERAL_DIR "openai.json", ENG_FMT_AUTO, g_params_item, ENG_ERR_TYPE,
             "gpt-4o.params[0]");
    s_broken(GENERAL_DIR "openai.json", ENG_FMT_AUTO, g_max_tokens, ENG_ERR_VALUE,
             "gpt-4o.params[0].maxValue");
    /* alone, a general file prices nothing: no model to route to */
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err = {0};
    cr_assert_eq(eng_catalog_load(cat, GENERAL_DIR "anthropic.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), -1);
    cr_assert_eq(err.code, ENG_ERR_VALUE);
    eng_catalog_destroy(&cat);
}

Test(loaders, portkey_calculate_tree_is_interpreted)
{
    /* a tree with a per-request constant, a doubled output rate and cache terms */
    const char doc[] =
        "{\"default\":{\"pricing_config\":{\"pay_as_you_go\":{\"request_token\":{\"price\":0},"
        "\"response_token\":{\"price\":0}},\"calculate\":{\"request\":{\"operation\":\"sum\","
        "\"operands\":[{\"operation\":\"multiply\",\"operands\":[{\"value\":\"input_tokens\"},"
        "{\"value\":\"rates.request_token\"}]},{\"operation\":\"multiply\",\"operands\":["
        "{\"value\":\"cache_read_tokens\"},{\"value\":\"rates.cache_read_input_token\"}]},"
        "{\"value\":\"rates.call\"}]},\"response\":{\"operation\":\"multiply\",\"operands\":["
        "{\"value\":\"2\"},{\"operation\":\"sum\",\"operands\":[{\"value\":\"output_tokens\"},"
        "{\"value\":\"audio_output_tokens\"}]},{\"value\":\"rates.response_token\"}]}}}},"
        "\"m-1\":{\"pricing_config\":{\"pay_as_you_go\":{\"request_token\":{\"price\":0.0003},"
        "\"response_token\":{\"price\":0.0015},\"cache_read_input_token\":{\"price\":0.00003},"
        "\"call\":{\"price\":0.5}}}},"
        "\"text-embedding-3-small\":{\"pricing_config\":{\"pay_as_you_go\":{"
        "\"request_token\":{\"price\":0.000002}}}},"
        "\"dall-e-3\":{\"pricing_config\":{\"pay_as_you_go\":{\"image\":{\"price\":4}}}},"
        "\"nothing\":{\"pricing_config\":null}}";
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err = {0};
    cr_assert_eq(
        eng_catalog_load_buffer(cat, "pricing/acme_ai.json", doc, strlen(doc), ENG_FMT_AUTO, &err),
        0, "%s at %s", err.msg, err.where);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0);
    size_t n;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &n);
    cr_assert_eq(n, 1, "embedding, image and unpriced entries are not chat models");
    cr_assert_str_eq(e[0].provider, "acme-ai");
    cr_assert_str_eq(e[0].native_id, "m-1");
    cr_assert_eq(e[0].price.input, 3000000);
    cr_assert_eq(e[0].price.output, 30000000); /* 2 x 0.0015 cents */
    cr_assert_eq(e[0].price.cache_read, 300000);
    cr_assert_eq(e[0].price.cache_write, 0);
    cr_assert_eq(e[0].price.per_request, INT64_C(5000000000)); /* 0.5 cents */
    eng_catalog_destroy(&cat);
}
