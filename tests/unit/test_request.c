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
