/* test_cost.c - the cost estimator: the issue's examples exactly, every
 * component, NA prices, overflow, scaling, and the same price from every
 * catalog format. */
#include <criterion/criterion.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_cost.h"

/* A price from USD-per-1M-token decimal strings (exact). */
static hpp_price_t s_price(const char *in, const char *out)
{
    hpp_price_t p = {HPP_PRICE_NA, HPP_PRICE_NA, HPP_PRICE_NA,
                     HPP_PRICE_NA, HPP_PRICE_NA, HPP_PRICE_NA};
    cr_assert_eq(hpp_pusd_parse(in, strlen(in), 6, &p.input), 0);
    cr_assert_eq(hpp_pusd_parse(out, strlen(out), 6, &p.output), 0);
    return p;
}

static hpp_cost_t s_cost(const hpp_price_t *p, int64_t in, int64_t out)
{
    eng_usage_t u = {.prompt_tokens = in, .completion_tokens = out};
    hpp_cost_t c;
    cr_assert_eq(eng_cost_estimate(p, &u, &c), 0);
    return c;
}

static void s_assert_usd(hpp_pusd_t v, const char *usd)
{
    char buf[64];
    hpp_pusd_format(v, false, buf, sizeof buf);
    cr_assert_str_eq(buf, usd);
}

Test(cost, issue_examples_exactly)
{
    /* claude-3.5-sonnet ($3/$15): 1,000 in + 500 out = $0.0105 */
    hpp_price_t sonnet = s_price("3", "15");
    hpp_cost_t c = s_cost(&sonnet, 1000, 500);
    cr_assert_eq(c.total, INT64_C(10500000000));
    s_assert_usd(c.total, "0.0105");
    cr_assert_eq(c.input, INT64_C(3000000000));
    cr_assert_eq(c.output, INT64_C(7500000000));

    /* $0.20/$0.60 with 1M in + 1.5M out = $1.10 */
    hpp_price_t p2 = s_price("0.20", "0.60");
    c = s_cost(&p2, 1000000, 1500000);
    cr_assert_eq(c.total, INT64_C(1100000000000));
    s_assert_usd(c.total, "1.1");

    /* $10/$30 with 25k in + 100k out = $3.25 */
    hpp_price_t p3 = s_price("10", "30");
    c = s_cost(&p3, 25000, 100000);
    cr_assert_eq(c.total, INT64_C(3250000000000));
    s_assert_usd(c.total, "3.25");

    /* $0.30/$0.60 with 4k in + 8k out = $0.006 */
    hpp_price_t p4 = s_price("0.30", "0.60");
    c = s_cost(&p4, 4000, 8000);
    cr_assert_eq(c.total, INT64_C(6000000000));
    s_assert_usd(c.total, "0.006");
}

Test(cost, every_component_and_the_sum_of_parts)
{
    hpp_price_t p = s_price("3", "15");
    p.cache_read = 300000;               /* $0.30 / 1M */
    p.cache_write = 3750000;             /* $3.75 / 1M */
    p.per_request = INT64_C(5000000000); /* $0.005 per call */
    p.per_image = INT64_C(1000000000);   /* $0.001 per image */
    eng_usage_t u = {.prompt_tokens = 2000,
                     .completion_tokens = 100,
                     .reasoning_tokens = 400,
                     .cache_read_tokens = 10000,
                     .cache_write_tokens = 1000,
                     .images = 3};
    hpp_cost_t c;
    cr_assert_eq(eng_cost_estimate(&p, &u, &c), 0);
    cr_assert_eq(c.input, 2000 * INT64_C(3000000));
    /* reasoning bills as output */
    cr_assert_eq(c.output, 500 * INT64_C(15000000));
    cr_assert_eq(c.cache, 10000 * INT64_C(300000) + 1000 * INT64_C(3750000));
    cr_assert_eq(c.fees, INT64_C(5000000000) + 3 * INT64_C(1000000000));
    cr_assert_eq(c.total, c.input + c.output + c.cache + c.fees);
    s_assert_usd(c.total, "0.02825");
}

Test(cost, na_components_cost_nothing)
{
    hpp_price_t p = s_price("1", "2"); /* cache and fees NA */
    eng_usage_t u = {.prompt_tokens = 1000,
                     .completion_tokens = 1000,
                     .cache_read_tokens = 50000,
                     .cache_write_tokens = 50000,
                     .images = 7};
    hpp_cost_t c;
    cr_assert_eq(eng_cost_estimate(&p, &u, &c), 0);
    cr_assert_eq(c.cache, 0);
    cr_assert_eq(c.fees, 0);
    /* cache writes without a write price are billed as input: 51000 x $1/1M */
    cr_assert_eq(c.input, INT64_C(51000000000));
    cr_assert_eq(c.total, INT64_C(53000000000));
    /* A per-call model: only a flat fee. */
    hpp_price_t call = {HPP_PRICE_NA, HPP_PRICE_NA,         HPP_PRICE_NA,
                        HPP_PRICE_NA, INT64_C(40000000000), HPP_PRICE_NA};
    cr_assert_eq(eng_cost_estimate(&call, &u, &c), 0);
    cr_assert_eq(c.total, INT64_C(40000000000));
    s_assert_usd(c.total, "0.04");
}

Test(cost, free_model_costs_zero)
{
    hpp_price_t p = s_price("0", "0");
    hpp_cost_t c = s_cost(&p, 100000000, 100000000);
    cr_assert_eq(c.total, 0);
}

Test(cost, rejects_negative_counts_and_overflow)
{
    hpp_price_t p = s_price("15", "60");
    hpp_cost_t c;
    memset(&c, 0x5a, sizeof c);
    eng_usage_t neg = {.prompt_tokens = -1};
    cr_assert_eq(eng_cost_estimate(&p, &neg, &c), -1);
    cr_assert_eq(c.total, 0, "out is zeroed on error");
    eng_usage_t neg2 = {.images = -3};
    cr_assert_eq(eng_cost_estimate(&p, &neg2, &c), -1);

    /* 60e6 pUSD x 2e11 tokens = 1.2e19 > INT64_MAX */
    eng_usage_t big = {.completion_tokens = INT64_C(200000000000)};
    memset(&c, 0x5a, sizeof c);
    cr_assert_eq(eng_cost_estimate(&p, &big, &c), -1);
    cr_assert_eq(c.input, 0);
    cr_assert_eq(c.total, 0);
    /* completion + reasoning overflow */
    eng_usage_t sum = {.completion_tokens = INT64_MAX, .reasoning_tokens = 1};
    cr_assert_eq(eng_cost_estimate(&p, &sum, &c), -1);
    /* parts fit, their sum does not */
    hpp_price_t huge = {INT64_MAX / 2, INT64_MAX / 2, HPP_PRICE_NA,
                        HPP_PRICE_NA,  HPP_PRICE_NA,  HPP_PRICE_NA};
    eng_usage_t two = {.prompt_tokens = 1, .completion_tokens = 1};
    cr_assert_eq(eng_cost_estimate(&huge, &two, &c), 0);
    huge.per_request = 2;
    cr_assert_eq(eng_cost_estimate(&huge, &two, &c), -1);
    /* the largest token counts a request may carry (1e8) never overflow at $1000/1M */
    hpp_price_t dear = s_price("1000", "1000");
    eng_usage_t max = {.prompt_tokens = 100000000, .completion_tokens = 100000000};
    cr_assert_eq(eng_cost_estimate(&dear, &max, &c), 0);
    s_assert_usd(c.total, "200000");
}

Test(cost, scale_by_permille_rounds_half_up)
{
    hpp_price_t sonnet = s_price("3", "15");
    hpp_cost_t c = s_cost(&sonnet, 1000, 500);
    cr_assert_eq(eng_cost_scale(&c, 1500), 0);
    cr_assert_eq(c.input, INT64_C(4500000000));
    cr_assert_eq(c.output, INT64_C(11250000000));
    s_assert_usd(c.total, "0.01575");
    cr_assert_eq(c.total, c.input + c.output + c.cache + c.fees);

    hpp_cost_t one = {.input = 1, .output = 3, .total = 4};
    cr_assert_eq(eng_cost_scale(&one, 500), 0);
    cr_assert_eq(one.input, 1);  /* 0.5 -> 1 */
    cr_assert_eq(one.output, 2); /* 1.5 -> 2 */
    cr_assert_eq(one.total, 3);

    hpp_cost_t same = {.input = 7, .output = 11, .cache = 13, .fees = 17, .total = 48};
    cr_assert_eq(eng_cost_scale(&same, 1000), 0);
    cr_assert_eq(same.total, 48);
    cr_assert_eq(eng_cost_scale(&same, 0), 0);
    cr_assert_eq(same.total, 0);

    hpp_cost_t big = {.input = INT64_MAX / 2, .total = INT64_MAX / 2};
    cr_assert_eq(eng_cost_scale(&big, 3000), -1);
    cr_assert_eq(big.input, INT64_MAX / 2, "unchanged on overflow");
}

/* The same $3 / 1M tokens as each catalog format writes it. */
static const char s_native[] =
    "{\"object\":\"list\",\"data\":[{\"id\":\"anthropic/claude-3.5-sonnet\",\"object\":\"model\","
    "\"owned_by\":\"anthropic\",\"pricing\":{\"input\":3,\"output\":15,\"cache_write\":null,"
    "\"cache_read\":null}}]}";
static const char s_openrouter[] =
    "{\"data\":[{\"id\":\"anthropic/claude-3.5-sonnet\",\"pricing\":{\"prompt\":\"0.000003\","
    "\"completion\":\"0.000015\"}}]}";
static const char s_portkey[] =
    "{\"default\":{\"pricing_config\":{\"pay_as_you_go\":{\"request_token\":{\"price\":0},"
    "\"response_token\":{\"price\":0}},\"calculate\":{\"request\":{\"operation\":\"multiply\","
    "\"operands\":[{\"value\":\"input_tokens\"},{\"value\":\"rates.request_token\"}]},"
    "\"response\":{\"operation\":\"multiply\",\"operands\":[{\"value\":\"output_tokens\"},"
    "{\"value\":\"rates.response_token\"}]}},\"currency\":\"USD\"}},"
    "\"claude-3-5-sonnet-20241022\":{\"pricing_config\":{\"pay_as_you_go\":{"
    "\"request_token\":{\"price\":0.0003},\"response_token\":{\"price\":0.0015}}}}}";
static const char s_litellm[] =
    "{\"claude-3-5-sonnet-20241022\":{\"litellm_provider\":\"anthropic\",\"mode\":\"chat\","
    "\"input_cost_per_token\":3e-06,\"output_cost_per_token\":1.5e-05}}";

Test(cost, same_price_from_every_format)
{
    const struct {
        const char *name, *buf;
    } files[] = {{"native.json", s_native},
                 {"openrouter.json", s_openrouter},
                 {"anthropic.json", s_portkey},
                 {"litellm.json", s_litellm}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        eng_catalog_t *cat = eng_catalog_new();
        eng_error_t err = {0};
        int rc = eng_catalog_load_buffer(cat, files[i].name, files[i].buf, strlen(files[i].buf),
                                         ENG_FMT_AUTO, &err);
        cr_assert_eq(rc, 0, "%s: %s at %s", files[i].name, err.msg, err.where);
        cr_assert_eq(eng_catalog_freeze(cat, &err), 0);
        const eng_model_t *m = eng_catalog_find(cat, "anthropic/claude-3.5-sonnet", 27);
        cr_assert_not_null(m, "%s", files[i].name);
        size_t n;
        const eng_endpoint_t *ep = eng_catalog_endpoints(cat, &n) + m->floor_ep;
        cr_assert_eq(ep->price.input, 3000000, "%s", files[i].name);
        cr_assert_eq(ep->price.output, 15000000, "%s", files[i].name);
        hpp_cost_t c = s_cost(&ep->price, 1000, 500);
        s_assert_usd(c.total, "0.0105");
        eng_catalog_destroy(&cat);
        cr_assert_null(cat);
    }
}
