/* eng_cost.c - the cost estimator: exact integer arithmetic on picodollars.
 *
 * Prices are per token in picodollars, so every part of a cost is a product
 * of two integers and the total is their sum: nothing is divided, nothing
 * drifts, and a total always equals the sum of its parts. Every product and
 * sum is overflow-checked (int64 holds about $9.2 million). Pure and
 * allocation-free: the resolver calls it per candidate on the hot path.
 */
#include "eng_cost.h"

#include <string.h>

/* price x count added to *acc; HPP_PRICE_NA costs nothing. -1 on overflow. */
static int s_add_product(hpp_pusd_t *acc, hpp_pusd_t price, int64_t count)
{
    if (price == HPP_PRICE_NA || count == 0) {
        return 0;
    }
    int64_t v;
    if (__builtin_mul_overflow(price, count, &v) || __builtin_add_overflow(*acc, v, acc)) {
        return -1;
    }
    return 0;
}

int eng_cost_estimate(const hpp_price_t *price, const eng_usage_t *usage, hpp_cost_t *out)
{
    memset(out, 0, sizeof *out);
    if (usage->prompt_tokens < 0 || usage->completion_tokens < 0 || usage->reasoning_tokens < 0 ||
        usage->cache_read_tokens < 0 || usage->cache_write_tokens < 0 || usage->images < 0) {
        return -1;
    }
    hpp_cost_t c = {0};
    int64_t billed_output;
    int bad =
        __builtin_add_overflow(usage->completion_tokens, usage->reasoning_tokens, &billed_output);
    bad = bad || s_add_product(&c.input, price->input, usage->prompt_tokens) < 0;
    bad = bad || s_add_product(&c.output, price->output, billed_output) < 0;
    bad = bad || s_add_product(&c.cache, price->cache_read, usage->cache_read_tokens) < 0;
    /* A provider without a cache-write price (OpenAI's automatic caching)
     * bills the tokens it writes as ordinary prompt tokens. */
    bad = bad || (price->cache_write == HPP_PRICE_NA
                      ? s_add_product(&c.input, price->input, usage->cache_write_tokens)
                      : s_add_product(&c.cache, price->cache_write, usage->cache_write_tokens)) < 0;
    bad = bad || s_add_product(&c.fees, price->per_request, 1) < 0;
    bad = bad || s_add_product(&c.fees, price->per_image, usage->images) < 0;
    bad = bad || __builtin_add_overflow(c.input, c.output, &c.total);
    bad = bad || __builtin_add_overflow(c.total, c.cache, &c.total);
    bad = bad || __builtin_add_overflow(c.total, c.fees, &c.total);
    if (bad) {
        return -1;
    }
    *out = c;
    return 0;
}

/* v x permille / 1000, rounded half up (away from zero for negatives). */
static int s_scale(hpp_pusd_t v, uint32_t permille, hpp_pusd_t *out)
{
    /* Fast path: 64-bit when the product fits; 128-bit division is a libgcc
     * call (__divti3) on the per-candidate path of multiplied groups. */
    int64_t q;
    if (!__builtin_mul_overflow(v, (int64_t)permille, &q) && q <= INT64_MAX - 1000 &&
        q >= -(INT64_MAX - 1000)) {
        *out = q >= 0 ? (q + 500) / 1000 : -((-q + 500) / 1000);
        return 0;
    }
    __int128 p = (__int128)v * permille;
    p = p >= 0 ? (p + 500) / 1000 : -((-p + 500) / 1000);
    if (p > INT64_MAX || p < INT64_MIN + 1) {
        return -1;
    }
    *out = (hpp_pusd_t)p;
    return 0;
}

int eng_cost_scale(hpp_cost_t *cost, uint32_t permille)
{
    hpp_cost_t c;
    /* Each part is scaled and the total re-summed, so it stays their sum. */
    if (s_scale(cost->input, permille, &c.input) < 0 ||
        s_scale(cost->output, permille, &c.output) < 0 ||
        s_scale(cost->cache, permille, &c.cache) < 0 ||
        s_scale(cost->fees, permille, &c.fees) < 0 ||
        __builtin_add_overflow(c.input, c.output, &c.total) ||
        __builtin_add_overflow(c.total, c.cache, &c.total) ||
        __builtin_add_overflow(c.total, c.fees, &c.total)) {
        return -1;
    }
    *cost = c;
    return 0;
}
