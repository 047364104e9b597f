/* eng_cost.h - the cost estimator.
 *
 *   cost = prompt x input + (completion + reasoning) x output
 *        + cache_read x cache_read_price + cache_write x cache_write_price
 *        + per_request + images x per_image
 *
 * with prices per token in picodollars, so the division by 1e6 of "per 1M
 * tokens" prices is already folded into the unit and every part is an exact
 * integer. A component whose price is HPP_PRICE_NA costs nothing, except
 * cache writes: without a cache-write price they are billed as input. Pure,
 * allocation-free: safe on the hot path.
 */
#ifndef ENG_COST_H
#define ENG_COST_H

#include "eng_catalog.h"

typedef struct {
    int64_t prompt_tokens;      /* uncached prompt tokens */
    int64_t completion_tokens;  /* visible output tokens */
    int64_t reasoning_tokens;   /* billed as output */
    int64_t cache_read_tokens;  /* prompt tokens read from the cache */
    int64_t cache_write_tokens; /* prompt tokens written to the cache */
    int64_t images;             /* input images */
} eng_usage_t;

/* Fills `out`. Returns 0, or -1 if a count is negative or the sum overflows
 * (then *out is zeroed). */
int eng_cost_estimate(const hpp_price_t *price, const eng_usage_t *usage, hpp_cost_t *out);

/* Scales a cost by a multiplier in thousandths (1000 = x1.0), rounding half up.
 * Used for group price multipliers. Returns -1 on overflow. */
int eng_cost_scale(hpp_cost_t *cost, uint32_t permille);

#endif
