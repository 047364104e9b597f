/* test_request.c - the contract's value rules (proto/hpp_request.h): one
 * place decides each range, and its message quotes the limit it checks. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hpp_request.h"

Test(hpp_check, tokens_edges)
{
    cr_assert_null(hpp_check_tokens(0));
    cr_assert_null(hpp_check_tokens(HPP_MAX_TOKENS));
    cr_assert_not_null(hpp_check_tokens(-1));
    cr_assert_not_null(hpp_check_tokens(HPP_MAX_TOKENS + 1));
}

Test(hpp_check, images_edges)
{
    cr_assert_null(hpp_check_images(HPP_MAX_IMAGES));
    cr_assert_not_null(hpp_check_images(HPP_MAX_IMAGES + 1));
    cr_assert_not_null(hpp_check_images(-1));
}

Test(hpp_check, budget_edges)
{
    cr_assert_null(hpp_check_budget(0));
    cr_assert_null(hpp_check_budget(HPP_MAX_BUDGET_USD));
    cr_assert_not_null(hpp_check_budget(-0.5));
    cr_assert_not_null(hpp_check_budget(HPP_MAX_BUDGET_USD * 2));
    cr_assert_not_null(hpp_check_budget(NAN));
    cr_assert_not_null(hpp_check_budget(INFINITY));
}

Test(hpp_check, cache_read_within_prompt)
{
    cr_assert_null(hpp_check_cache_read(100, 100));
    cr_assert_not_null(hpp_check_cache_read(101, 100));
    cr_assert_not_null(hpp_check_cache_read(-1, 100));
}

/* The messages spell the limits out as text; they must say the macros. */
Test(hpp_check, cache_write_within_the_uncached_prompt)
{
    cr_assert_null(hpp_check_cache_write(40, 60, 100));
    cr_assert_null(hpp_check_cache_write(0, 0, 0));
    cr_assert_not_null(hpp_check_cache_write(41, 60, 100));
    cr_assert_not_null(hpp_check_cache_write(-1, 0, 100));
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 100;
    f.cache_write_tokens = 101;
    const char *field = NULL;
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "cache_write_tokens");
    f.cache_write_tokens = 100;
    f.reasoning_tokens = HPP_MAX_TOKENS + 1;
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "reasoning_tokens");
    f.reasoning_tokens = HPP_MAX_TOKENS;
    cr_assert_null(hpp_features_check(&f, &field));
}

Test(hpp_check, messages_quote_the_limits)
{
    char want[64];
    snprintf(want, sizeof want, "from 0 to %lld", (long long)HPP_MAX_TOKENS);
    cr_assert(strstr(hpp_check_tokens(-1), want), "%s", hpp_check_tokens(-1));
    snprintf(want, sizeof want, "from 0 to %d", HPP_MAX_IMAGES);
    cr_assert(strstr(hpp_check_images(-1), want), "%s", hpp_check_images(-1));
    snprintf(want, sizeof want, "from 0 to %.0f", HPP_MAX_BUDGET_USD);
    cr_assert(strstr(hpp_check_budget(-1), want), "%s", hpp_check_budget(-1));
}

Test(hpp_features_check, names_the_first_bad_field)
{
    hpp_features_t f;
    hpp_features_init(&f);
    const char *field = NULL;
    cr_assert_null(hpp_features_check(&f, &field));
    f.has_budget = true;
    f.budget_usd = -1;
    cr_assert_str_eq(hpp_features_check(&f, &field), hpp_check_budget(-1));
    cr_assert_str_eq(field, "budget_usd");
    f.budget_usd = 1;
    f.prompt_tokens = 10;
    f.cache_read_tokens = 11;
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "cache_read_tokens");
    f.cache_read_tokens = 0;
    f.output_tokens = -1; /* the policy's default: allowed */
    cr_assert_null(hpp_features_check(&f, &field));
    f.group.len = 3; /* a length with no data */
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "group");
}

static hpp_str_t s_s(const char *c)
{
    hpp_str_t s = {c, (uint32_t)strlen(c)};
    return s;
}

Test(hpp_check, provider_routing_rules)
{
    cr_assert_null(hpp_check_provider(s_s("openai")));
    cr_assert_not_null(hpp_check_provider(s_s("")));
    cr_assert_not_null(hpp_check_provider(s_s("open ai")));
    char name[HPP_MAX_PROVIDER_LEN + 2];
    memset(name, 'p', sizeof name - 1);
    name[HPP_MAX_PROVIDER_LEN] = '\0';
    cr_assert_null(hpp_check_provider(s_s(name)));
    name[HPP_MAX_PROVIDER_LEN] = 'p';
    name[HPP_MAX_PROVIDER_LEN + 1] = '\0';
    cr_assert_not_null(hpp_check_provider(s_s(name)));
    cr_assert_null(hpp_check_model_id(s_s("openai/gpt-4o:free")));
    cr_assert_not_null(hpp_check_model_id(s_s("a\tb")));
    hpp_sort_t sort = HPP_SORT_DEFAULT;
    cr_assert_null(hpp_check_sort(s_s("price"), &sort));
    cr_assert_eq(sort, HPP_SORT_PRICE);
    cr_assert_null(hpp_check_sort(s_s("latency"), &sort));
    cr_assert_eq(sort, HPP_SORT_LATENCY);
    cr_assert_null(hpp_check_sort(s_s("throughput"), &sort));
    cr_assert_eq(sort, HPP_SORT_THROUGHPUT);
    cr_assert_null(hpp_check_max_latency(2.5));
    cr_assert(strstr(hpp_check_max_latency(-1), "seconds"));
    cr_assert(strstr(hpp_check_min_throughput(2e6), "tokens per second"));
    cr_assert(strstr(hpp_check_sort(s_s("Price"), &sort), "expected one of"));
    hpp_max_price_t mp = {0};
    cr_assert_null(hpp_max_price_set(&mp, HPP_MAXP_COMPLETION, 15));
    cr_assert_eq(mp.completion, 15000000); /* $15 per 1M tokens = 15e6 pusd per token */
    cr_assert_null(hpp_max_price_set(&mp, HPP_MAXP_REQUEST, 0.5));
    cr_assert_eq(mp.request, 500000000000);
    cr_assert_eq(mp.set, HPP_MAXP_COMPLETION | HPP_MAXP_REQUEST);
    cr_assert_not_null(hpp_max_price_set(&mp, HPP_MAXP_PROMPT, -1));
    cr_assert_not_null(hpp_max_price_set(&mp, HPP_MAXP_PROMPT, NAN));
    cr_assert_not_null(hpp_max_price_set(&mp, HPP_MAXP_IMAGE, 2e6));
    cr_assert_eq(mp.set, HPP_MAXP_COMPLETION | HPP_MAXP_REQUEST, "a refused value sets nothing");
}

Test(hpp_features_check, provider_routing_fields)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 1;
    const char *field = NULL;
    f.nproviders_only = HPP_MAX_PROVIDERS + 1;
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "providers_only");
    f.nproviders_only = 1;
    f.providers_only[0] = s_s("a b");
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "providers_only");
    f.providers_only[0] = s_s("ab");
    cr_assert_null(hpp_features_check(&f, &field));
    f.nmodels = 1;
    f.models[0].len = 4; /* a length with no data */
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "models");
    f.models[0] = s_s("a/b");
    f.sort = (hpp_sort_t)7;
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "providers_sort");
    f.sort = HPP_SORT_PRICE;
    f.max_price.set = HPP_MAXP_IMAGE;
    f.max_price.image = -5;
    cr_assert_not_null(hpp_features_check(&f, &field));
    cr_assert_str_eq(field, "max_price");
    f.max_price.image = 0;
    cr_assert_null(hpp_features_check(&f, &field));
}
