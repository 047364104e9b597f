/* test_catalog.c - the catalog builder: freeze order, floor/free endpoints,
 * find and lookup, aliases, id normalisation, merging several files, the
 * staging rollback, and the bundled default catalog. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_catalog_internal.h"
#include "eng_cost.h"

static eng_catalog_t *s_cat;

static void s_setup(void)
{
    s_cat = eng_catalog_new();
    cr_assert_not_null(s_cat);
}

static void s_teardown(void)
{
    eng_catalog_destroy(&s_cat);
}

TestSuite(catalog, .init = s_setup, .fini = s_teardown);

static void s_load(const char *name, const char *json)
{
    eng_error_t err = {0};
    int rc = eng_catalog_load_buffer(s_cat, name, json, strlen(json), ENG_FMT_AUTO, &err);
    char buf[600];
    eng_error_format(&err, buf, sizeof buf);
    cr_assert_eq(rc, 0, "load %s: %s", name, buf);
}

static void s_freeze(void)
{
    eng_error_t err = {0};
    cr_assert_eq(eng_catalog_freeze(s_cat, &err), 0, "freeze: %s", err.msg);
}

static const eng_model_t *s_find(const char *id)
{
    return eng_catalog_find(s_cat, id, strlen(id));
}

static const eng_endpoint_t *s_ep(int32_t i)
{
    size_t n;
    const eng_endpoint_t *eps = eng_catalog_endpoints(s_cat, &n);
    cr_assert(i >= 0 && (size_t)i < n, "endpoint index %d out of %zu", i, n);
    return &eps[i];
}

/* Three models out of order; one with four endpoints whose order exercises
 * every tie-break; one free and one disabled endpoint. */
static const char s_multi[] =
    "{\"object\":\"list\",\"data\":["
    "{\"id\":\"zeta/last\",\"pricing\":{\"input\":1,\"output\":1}},"
    "{\"id\":\"acme/chat\",\"owned_by\":\"acme\",\"context_length\":1000,\"max_output\":100,"
    " \"capabilities\":[\"vision\",\"tools\",\"telepathy\"],"
    " \"pricing\":{\"input\":2,\"output\":2},"
    " \"endpoints\":["
    "  {\"provider\":\"zz\",\"native_id\":\"a\"}," /* 4: sum 4 */
    "  {\"provider\":\"bb\",\"native_id\":\"b\",\"pricing\":{\"input\":1,\"output\":3}}," /* sum 4,
                                                                                             in 1 */
    "  {\"provider\":\"aa\",\"native_id\":\"z\"}," /* sum 4, in 2, aa */
    "  {\"provider\":\"aa\",\"native_id\":\"y\"}," /* same, native y */
    "  {\"provider\":\"cc\",\"native_id\":\"off\",\"status\":\"disabled\","
    "   \"pricing\":{\"input\":0.1,\"output\":0.1}},"
    "  {\"provider\":\"dd\",\"native_id\":\"big\",\"context_length\":5000,"
    "   \"pricing\":{\"input\":9,\"output\":9}}]},"
    "{\"id\":\"acme/chat:free\",\"provider\":\"aa\",\"pricing\":{\"input\":0,\"output\":0}},"
    "{\"id\":\"mid/model\",\"pricing\":{\"input\":\"0.5\",\"output\":\"0.5\"}}]}";

Test(catalog, models_sorted_endpoints_cheapest_first)
{
    s_load("multi.json", s_multi);
    s_freeze();
    size_t nm, ne;
    const eng_model_t *m = eng_catalog_models(s_cat, &nm);
    eng_catalog_endpoints(s_cat, &ne);
    cr_assert_eq(nm, 3);
    cr_assert_eq(ne, 9);
    cr_assert_str_eq(m[0].id, "acme/chat");
    cr_assert_str_eq(m[1].id, "mid/model");
    cr_assert_str_eq(m[2].id, "zeta/last");
    const eng_model_t *chat = &m[0];
    cr_assert_eq(chat->ep_first, 0);
    cr_assert_eq(chat->ep_count, 7);
    /* free (sum 0) < bb (sum 4, input 1) < aa/y < aa/z < zz < dd (sum 18) < disabled cc */
    const char *order[][2] = {{"aa", "acme/chat:free"},
                              {"bb", "b"},
                              {"aa", "y"},
                              {"aa", "z"},
                              {"zz", "a"},
                              {"dd", "big"},
                              {"cc", "off"}};
    for (uint32_t k = 0; k < 7; k++) {
        const eng_endpoint_t *ep = s_ep((int32_t)k);
        cr_assert_str_eq(ep->provider, order[k][0], "endpoint %u", k);
        cr_assert_str_eq(ep->native_id, order[k][1], "endpoint %u", k);
        cr_assert_eq(ep->model, 0);
        cr_assert_str_eq(ep->source, "multi.json");
    }
    /* floor: the cheapest endpoint the plain id means, not the :free variant */
    cr_assert_eq(chat->floor_ep, 1);
    cr_assert_eq(chat->free_ep, 0);
    cr_assert(s_ep(0)->free_variant);
    cr_assert_not(s_ep(1)->free_variant);
    cr_assert(s_ep(0)->is_free);
    cr_assert_not(s_ep(1)->is_free);
    cr_assert_not(s_ep(6)->enabled);
    cr_assert(s_ep(5)->enabled);
    cr_assert_eq(s_ep(5)->context_length, 5000);
    cr_assert_eq(s_ep(1)->context_length, 0, "0 = same as the model");
    /* model attributes; an unknown capability counts as absent */
    cr_assert_eq(chat->context_length, 1000);
    cr_assert_eq(chat->max_output, 100);
    cr_assert_eq(chat->caps, HPP_CAP_VISION | HPP_CAP_TOOLS);
    cr_assert_str_eq(chat->owner, "acme");
    /* mid/model has one paid endpoint: floor but no free one */
    cr_assert_eq(m[1].ep_count, 1);
    cr_assert_eq(m[1].floor_ep, (int32_t)m[1].ep_first);
    cr_assert_eq(m[1].free_ep, -1);
    cr_assert_eq(s_ep(m[1].floor_ep)->price.input, 500000);
    cr_assert_eq(eng_catalog_model_index(s_cat, &m[2]), 2);
}

Test(catalog, floor_skips_disabled_and_none_when_all_disabled)
{
    s_load("d.json",
           "{\"data\":[{\"id\":\"x/y\",\"endpoints\":["
           "{\"provider\":\"p\",\"status\":\"offline\",\"pricing\":{\"input\":0,\"output\":0}},"
           "{\"provider\":\"q\",\"status\":\"disabled\",\"pricing\":{\"input\":1,\"output\":1}}]},"
           "{\"id\":\"x/z\",\"endpoints\":["
           "{\"provider\":\"p\",\"status\":\"disabled\",\"pricing\":{\"input\":0,\"output\":0}},"
           "{\"provider\":\"q\",\"status\":\"deprecated\",\"pricing\":{\"input\":1,\"output\":1}}]}"
           "]}");
    s_freeze();
    const eng_model_t *y = s_find("x/y"), *z = s_find("x/z");
    cr_assert_eq(y->floor_ep, -1);
    cr_assert_eq(y->free_ep, -1);
    cr_assert_eq(z->free_ep, -1, "the free endpoint is disabled");
    cr_assert_str_eq(s_ep(z->floor_ep)->provider, "q");
}

Test(catalog, local_provider_is_free_without_pricing)
{
    s_load("l.json", "{\"data\":[{\"id\":\"ollama/tiny:1b\",\"provider\":\"ollama\"},"
                     "{\"id\":\"lab/m\",\"providers\":[],\"provider\":\"rig\"}],"
                     "\"providers\":[\"ollama\",{\"id\":\"rig\",\"local\":true}]}");
    s_freeze();
    const eng_model_t *m = s_find("ollama/tiny:1b");
    cr_assert_not_null(m);
    cr_assert(s_ep(m->floor_ep)->is_free);
    cr_assert_eq(m->free_ep, m->floor_ep);
    cr_assert_eq(s_ep(m->free_ep)->price.input, 0);
    cr_assert(s_ep(s_find("lab/m")->floor_ep)->is_free, "declared local");
}

Test(catalog, unknown_price_endpoint_is_listed_but_disabled)
{
    s_load("or.json", "{\"data\":[{\"id\":\"openrouter/auto\",\"pricing\":"
                      "{\"prompt\":\"-1\",\"completion\":\"-1\"}}]}");
    s_freeze();
    const eng_model_t *m = s_find("openrouter/auto");
    cr_assert_not_null(m);
    cr_assert_eq(m->floor_ep, -1);
    cr_assert_not(s_ep((int32_t)m->ep_first)->enabled);
    cr_assert_not(s_ep((int32_t)m->ep_first)->is_free);
}

Test(catalog, find_is_exact_and_length_delimited)
{
    s_load("multi.json", s_multi);
    cr_assert_null(s_find("acme/chat"), "nothing is visible before freeze");
    s_freeze();
    cr_assert_not_null(s_find("acme/chat"));
    cr_assert_null(s_find("acme/cha"));
    cr_assert_null(s_find("acme/chat:free"), ":free is an endpoint, not a model");
    cr_assert_null(s_find("ACME/chat"));
    cr_assert_null(s_find(""));
    /* not NUL-terminated: only len bytes count */
    const char wire[] = "mid/modelXYZ";
    const eng_model_t *m = eng_catalog_find(s_cat, wire, 9);
    cr_assert_not_null(m);
    cr_assert_str_eq(m->id, "mid/model");
    cr_assert_null(eng_catalog_find(s_cat, wire, 10));
    /* every model finds itself */
    size_t n;
    const eng_model_t *all = eng_catalog_models(s_cat, &n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(s_find(all[i].id), &all[i]);
    }
}

Test(catalog, merges_files_later_endpoint_wins)
{
    s_load("a.json",
           "{\"data\":[{\"id\":\"anthropic/claude-3.5-sonnet\",\"owned_by\":\"anthropic\","
           "\"capabilities\":[\"vision\"],\"context_length\":200000,"
           "\"provider\":\"anthropic\",\"native_id\":\"claude-3-5-sonnet-20241022\","
           "\"pricing\":{\"input\":3,\"output\":15}}]}");
    /* OpenRouter describes the same model: a second endpoint of the same model */
    s_load("b.json", "{\"data\":[{\"id\":\"anthropic/claude-3.5-sonnet\",\"context_length\":1,"
                     "\"pricing\":{\"prompt\":\"0.000003\",\"completion\":\"0.000015\"}}]}");
    /* a newer native file re-prices the anthropic endpoint */
    s_load("c.json",
           "{\"data\":[{\"id\":\"anthropic/claude-3.5-sonnet\",\"provider\":\"anthropic\","
           "\"native_id\":\"claude-3-5-sonnet-20241022\","
           "\"pricing\":{\"input\":2,\"output\":10}}]}");
    s_freeze();
    const eng_model_t *m = s_find("anthropic/claude-3.5-sonnet");
    cr_assert_not_null(m);
    cr_assert_eq(m->ep_count, 2);
    const eng_endpoint_t *floor = s_ep(m->floor_ep);
    cr_assert_str_eq(floor->provider, "anthropic");
    cr_assert_eq(floor->price.input, 2000000);
    cr_assert_str_eq(floor->source, "c.json");
    cr_assert_str_eq(s_ep(m->floor_ep + 1)->provider, "openrouter");
    /* the native file's attributes win over a third-party price list */
    cr_assert_eq(m->context_length, 200000);
    cr_assert_eq(m->caps, HPP_CAP_VISION);
}

Test(catalog, aliases_map_provider_ids_to_one_model)
{
    s_load("lite.json", "{\"anthropic.claude-3-5-sonnet-20241022-v2:0\":{\"litellm_provider\":"
                        "\"bedrock\",\"mode\":\"chat\",\"input_cost_per_token\":3e-06,"
                        "\"output_cost_per_token\":1.5e-05},"
                        "\"groq/llama-3.1-8b-instant\":{\"litellm_provider\":\"groq\","
                        "\"mode\":\"chat\",\"input_cost_per_token\":5e-08,"
                        "\"output_cost_per_token\":8e-08}}");
    s_load("native.json",
           "{\"aliases\":{\"groq/llama-3.1-8b-instant\":"
           "\"meta-llama/llama-3.1-8b-instruct\"},"
           "\"data\":[{\"id\":\"meta-llama/llama-3.1-8b-instruct\","
           "\"provider\":\"openrouter\",\"pricing\":{\"input\":0.06,\"output\":0.06}}]}");
    s_freeze();
    size_t n;
    eng_catalog_models(s_cat, &n);
    cr_assert_eq(n, 2);
    /* the rules: Bedrock's id becomes the canonical one */
    const eng_model_t *sonnet = s_find("anthropic/claude-3.5-sonnet");
    cr_assert_not_null(sonnet);
    cr_assert_str_eq(s_ep(sonnet->floor_ep)->provider, "bedrock");
    /* the alias table, loaded after the file it applies to */
    const eng_model_t *llama = s_find("meta-llama/llama-3.1-8b-instruct");
    cr_assert_eq(llama->ep_count, 2);
    cr_assert_str_eq(s_ep(llama->floor_ep)->provider, "openrouter");
    cr_assert_str_eq(s_ep(llama->floor_ep + 1)->provider, "groq");
    /* lookup accepts every spelling */
    const char *spellings[] = {"anthropic.claude-3-5-sonnet-20241022-v2:0",
                               "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                               "claude-3-5-sonnet-20241022", "vertex_ai/claude-3-5-sonnet@20241022",
                               "anthropic/claude-3.5-sonnet"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        cr_assert_eq(eng_catalog_lookup(s_cat, spellings[i], strlen(spellings[i])), sonnet, "%s",
                     spellings[i]);
    }
    cr_assert_eq(eng_catalog_lookup(s_cat, "groq/llama-3.1-8b-instant", 25), llama);
    cr_assert_null(eng_catalog_lookup(s_cat, "nobody/nothing", 14));
}

Test(catalog, normalises_provider_specific_ids)
{
    const char *cases[][3] = {
        /* provider, id, canonical */
        {"bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic/claude-3.5-sonnet"},
        {"bedrock", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic/claude-3.7-sonnet"},
        {"bedrock", "bedrock/us-gov-west-1/anthropic.claude-3-5-sonnet-20240620-v1:0",
         "anthropic/claude-3.5-sonnet"},
        {"bedrock", "anthropic.claude-v2:1", "anthropic/claude-v2"},
        {"bedrock", "meta.llama3-1-8b-instruct-v1:0", "meta-llama/llama-3.1-8b-instruct"},
        {"bedrock", "openai.gpt-oss-120b-1:0", "openai/gpt-oss-120b"},
        {"bedrock", "amazon.nova-pro-v1:0", "amazon/nova-pro"},
        {"vertex-ai", "vertex_ai/claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4.5"},
        {"anthropic", "claude-3-5-sonnet-latest", "anthropic/claude-3.5-sonnet"},
        {"anthropic", "claude-opus-4-1-20250805", "anthropic/claude-opus-4.1"},
        {"azure", "azure/gpt-4o", "openai/gpt-4o"},
        {"openai", "gpt-4o-2024-08-06", "openai/gpt-4o-2024-08-06"},
        {"openai", "o1", "openai/o1"},
        {"openai", "o1-mini", "openai/o1-mini"},
        {"together", "together_ai/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
         "meta-llama/llama-3.1-8b-instruct-turbo"},
        {"deepinfra", "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct",
         "meta-llama/llama-3.1-8b-instruct"},
        {"cloudflare", "cloudflare/@cf/openai/gpt-oss-120b", "openai/gpt-oss-120b"},
        {"bedrock", "bedrock/us-east-1/moonshotai.kimi-k2.5", "moonshotai/kimi-k2.5"},
        {"google", "gemini/gemini-2.5-pro", "google/gemini-2.5-pro"},
        {"groq", "gemma2-9b-it", "google/gemma2-9b-it"},
        {"openrouter", "openrouter/anthropic/claude-3.5-sonnet", "anthropic/claude-3.5-sonnet"},
        {"ollama", "ollama/gpt-oss:120b", "openai/gpt-oss:120b"},
        {"databricks", "databricks/databricks-dbrx", "databricks/databricks-dbrx"},
        {NULL, "mystery-model", "unknown/mystery-model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[300];
        size_t n =
            eng_cat_normalize_id(cases[i][0], cases[i][1], strlen(cases[i][1]), out, sizeof out);
        cr_assert_eq(n, strlen(out));
        cr_assert_str_eq(out, cases[i][2], "%s", cases[i][1]);
    }
    char out[300];
    cr_assert_eq(eng_cat_normalize_id("x", "", 0, out, sizeof out), 0);
    cr_assert_eq(eng_cat_normalize_id("x", "gpt-4o", 6, out, 5), 0, "too small a buffer");
    char p[64];
    eng_cat_normalize_provider("Bedrock_Converse", 16, p, sizeof p);
    cr_assert_str_eq(p, "bedrock");
    eng_cat_normalize_provider("vertex_ai-anthropic_models", 26, p, sizeof p);
    cr_assert_str_eq(p, "vertex-ai");
    eng_cat_normalize_provider("together-ai", 11, p, sizeof p);
    cr_assert_str_eq(p, "together");
    eng_cat_normalize_provider("fireworks_ai", 12, p, sizeof p);
    cr_assert_str_eq(p, "fireworks-ai");
}

Test(catalog, failed_load_leaves_catalog_unchanged)
{
    s_load("good.json", s_multi);
    eng_error_t err = {0};
    /* valid JSON whose 3rd model is bad: the first two must not be kept */
    const char bad[] = "{\"data\":[{\"id\":\"new/one\",\"pricing\":{\"input\":1,\"output\":1}},"
                       "{\"id\":\"new/two\",\"pricing\":{\"input\":1,\"output\":1}},"
                       "{\"id\":\"new/three\",\"pricing\":{\"input\":-1,\"output\":1}}],"
                       "\"aliases\":{\"x\":\"new/one\"}}";
    cr_assert_eq(eng_catalog_load_buffer(s_cat, "bad.json", bad, strlen(bad), ENG_FMT_AUTO, &err),
                 -1);
    cr_assert_eq(err.code, ENG_ERR_VALUE);
    cr_assert_str_eq(err.where, "data[2].pricing.input");
    /* and a syntax error */
    cr_assert_eq(eng_catalog_load_buffer(s_cat, "t.json", bad, 40, ENG_FMT_AUTO, &err), -1);
    cr_assert_eq(err.code, ENG_ERR_SYNTAX);
    s_freeze();
    size_t nm, ne;
    eng_catalog_models(s_cat, &nm);
    eng_catalog_endpoints(s_cat, &ne);
    cr_assert_eq(nm, 3);
    cr_assert_eq(ne, 9);
    cr_assert_null(s_find("new/one"));
    cr_assert_null(eng_catalog_lookup(s_cat, "x", 1));
}

Test(catalog, lifecycle_errors)
{
    eng_error_t err = {0};
    cr_assert_eq(eng_catalog_freeze(s_cat, &err), -1, "an empty catalog cannot freeze");
    cr_assert_eq(err.code, ENG_ERR_VALUE);
    s_load("m.json", s_multi);
    s_freeze();
    cr_assert_eq(eng_catalog_freeze(s_cat, &err), 0, "freeze is idempotent");
    cr_assert_eq(
        eng_catalog_load_buffer(s_cat, "late.json", s_multi, strlen(s_multi), ENG_FMT_AUTO, &err),
        -1);
    cr_assert_str_eq(err.file, "late.json");
    eng_catalog_t *c = eng_catalog_new();
    eng_catalog_destroy(&c);
    cr_assert_null(c);
    eng_catalog_destroy(&c);
    eng_catalog_destroy(NULL);
}

Test(catalog, detects_formats_and_honours_spec_prefix)
{
    const char * or
        = "{\"data\":[{\"id\":\"a/b\",\"pricing\":{\"prompt\":\"0\",\"completion\":\"0\"}}]}";
    const char *nat = "{\"data\":[{\"id\":\"a/b\",\"pricing\":{\"input\":0,\"output\":0}}]}";
    const char *lite = "{\"gpt-4o\":{\"litellm_provider\":\"openai\",\"mode\":\"chat\"}}";
    const char *pk = "{\"default\":{\"pricing_config\":{}}}";
    const char *none = "{\"hello\":\"world\"}";
    json_error_t je;
    const struct {
        const char *src;
        eng_catalog_format_t fmt;
    } cases[] = {{ or, ENG_FMT_OPENROUTER},
                 {nat, ENG_FMT_NATIVE},
                 {lite, ENG_FMT_LITELLM},
                 {pk, ENG_FMT_PORTKEY},
                 {none, ENG_FMT_AUTO}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *root = json_loads(cases[i].src, 0, &je);
        cr_assert_not_null(root);
        cr_assert_eq(eng_cat_detect(root), cases[i].fmt, "case %zu", i);
        json_decref(root);
    }
    eng_error_t err = {0};
    cr_assert_eq(eng_catalog_load_buffer(s_cat, "x.json", none, strlen(none), ENG_FMT_AUTO, &err),
                 -1);
    cr_assert_eq(err.code, ENG_ERR_VALUE);
    cr_assert(strstr(err.msg, "native:"), "%s", err.msg);
    /* a top-level array is not a catalog in any format */
    cr_assert_eq(eng_catalog_load_buffer(s_cat, "a.json", "[1]", 3, ENG_FMT_NATIVE, &err), -1);
    cr_assert_eq(err.code, ENG_ERR_TYPE);

    /* "fmt:path" forces the format: this native-looking file read as OpenRouter fails */
    char path[] = "/tmp/hpp-catalog-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(nat, f);
    fclose(f);
    char spec[64];
    snprintf(spec, sizeof spec, "openrouter:%s", path);
    cr_assert_eq(eng_catalog_load(s_cat, spec, &err), -1);
    cr_assert_str_eq(err.where, "data[0].pricing.prompt", "%s", err.msg);
    snprintf(spec, sizeof spec, "native:%s", path);
    cr_assert_eq(eng_catalog_load(s_cat, spec, &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_load(s_cat, path, &err), 0, "detected; a later file may repeat ids");
    unlink(path);
    cr_assert_eq(eng_catalog_load(s_cat, path, &err), -1);
    cr_assert_eq(err.code, ENG_ERR_IO);
    cr_assert_str_eq(err.file, path);
    cr_assert_eq(eng_catalog_load(s_cat, "", &err), -1);
}

Test(catalog, default_path_from_environment)
{
    unsetenv("HPP_CATALOG");
    cr_assert_str_eq(eng_catalog_default_path(), "policies/catalog.json");
    setenv("HPP_CATALOG", "other/cat.json", 1);
    cr_assert_str_eq(eng_catalog_default_path(), "other/cat.json");
    setenv("HPP_CATALOG", "", 1);
    cr_assert_str_eq(eng_catalog_default_path(), "policies/catalog.json");
    unsetenv("HPP_CATALOG");
}

/* The bundled catalog: the seed models of the issue with their prices. */
Test(catalog, bundled_default_catalog)
{
    eng_error_t err = {0};
    cr_assert_eq(eng_catalog_load(s_cat, "policies/catalog.json", &err), 0, "%s at %s", err.msg,
                 err.where);
    s_freeze();
    const struct {
        const char *id;
        hpp_pusd_t in, out; /* floor endpoint, pUSD per token */
        uint32_t caps;      /* at least these */
        bool free;          /* floor endpoint is $0 */
    } seeds[] = {
        {"openai/gpt-5", 1250000, 10000000, HPP_CAP_REASONING, false},
        {"openai/gpt-4o", 2500000, 10000000, HPP_CAP_VISION, false},
        {"anthropic/claude-sonnet-4", 3000000, 15000000, HPP_CAP_TOOLS, false},
        {"moonshotai/kimi-k2.6", 600000, 3410000, HPP_CAP_TOOLS, false},
        {"ollama/gpt-oss:120b", 0, 0, 0, true},
        {"ollama/solidity-master:2", 0, 0, 0, true},
        {"google/gemma-2-9b-it", 30000, 90000, 0, false}, /* paid floor; :free is free_ep */
        {"meta-llama/llama-3.1-8b-instruct", 60000, 60000, 0, false},
        {"openai/gpt-4o-mini", 150000, 600000, HPP_CAP_VISION, false},
        {"anthropic/claude-3.5-sonnet", 3000000, 15000000, HPP_CAP_VISION, false},
        {"openai/o1", 15000000, 60000000, HPP_CAP_REASONING, false},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        const eng_model_t *m = s_find(seeds[i].id);
        cr_assert_not_null(m, "%s", seeds[i].id);
        cr_assert(m->floor_ep >= 0, "%s", seeds[i].id);
        const eng_endpoint_t *ep = s_ep(m->floor_ep);
        cr_assert_eq(ep->price.input, seeds[i].in, "%s", seeds[i].id);
        cr_assert_eq(ep->price.output, seeds[i].out, "%s", seeds[i].id);
        cr_assert_eq(m->caps & seeds[i].caps, seeds[i].caps, "%s", seeds[i].id);
        cr_assert_eq(ep->is_free, seeds[i].free, "%s", seeds[i].id);
        cr_assert(m->context_length > 0, "%s", seeds[i].id);
    }
    /* gemma: the :free endpoint and paid ones */
    const eng_model_t *g = s_find("google/gemma-2-9b-it");
    cr_assert_eq(g->ep_count, 3);
    cr_assert_str_eq(s_ep(g->free_ep)->native_id, "google/gemma-2-9b-it:free");
    cr_assert_not(s_ep(g->free_ep + 1)->is_free);
    /* multi-provider models so :floor has a choice */
    const char *multi[] = {"anthropic/claude-3.5-sonnet", "openai/gpt-4o",
                           "meta-llama/llama-3.1-8b-instruct"};
    for (size_t i = 0; i < 3; i++) {
        const eng_model_t *m = s_find(multi[i]);
        cr_assert_geq(m->ep_count, 2, "%s", multi[i]);
        cr_assert_str_neq(s_ep((int32_t)m->ep_first)->provider,
                          s_ep((int32_t)m->ep_first + 1)->provider);
    }
    /* the alias table and the rules */
    cr_assert_eq(eng_catalog_lookup(s_cat, "anthropic.claude-3-5-sonnet-20241022-v2:0", 41),
                 s_find("anthropic/claude-3.5-sonnet"));
    cr_assert_eq(eng_catalog_lookup(s_cat, "gpt-oss:120b", 12), s_find("ollama/gpt-oss:120b"));
    /* the cost example on the bundled price */
    const eng_model_t *s = s_find("anthropic/claude-3.5-sonnet");
    eng_usage_t u = {.prompt_tokens = 1000, .completion_tokens = 500};
    hpp_cost_t c;
    cr_assert_eq(eng_cost_estimate(&s_ep(s->floor_ep)->price, &u, &c), 0);
    cr_assert_eq(c.total, INT64_C(10500000000));
}

Test(catalog, byte_order_mark_is_skipped)
{
    size_t n = strlen(s_multi);
    char *bom = malloc(n + 4);
    cr_assert_not_null(bom);
    memcpy(bom, "\xef\xbb\xbf", 3);
    memcpy(bom + 3, s_multi, n + 1);
    s_load("bom.json", bom);
    s_freeze();
    size_t nm;
    eng_catalog_models(s_cat, &nm);
    cr_assert_gt(nm, 0);
    eng_catalog_t *c = eng_catalog_new();
    eng_error_t err = {0};
    cr_assert_eq(
        eng_catalog_load_buffer(c, "bad.json", "\xef\xbb\xbf{\"a\":", 8, ENG_FMT_AUTO, &err), -1);
    cr_assert_eq(err.code, ENG_ERR_SYNTAX);
    cr_assert_eq(err.line, 1);
    cr_assert_eq(err.col, 5, "the column the editor shows");
    eng_catalog_destroy(&c);
    free(bom);
}
