/* hpp_types.h - the scalar types of the request contract: borrowed strings,
 * money, prices, costs and model capabilities.
 *
 * This is the bottom of the code: the wire codec, the OpenAI request reader,
 * the decision library and the services all use these types, and this
 * header includes nothing of the project.
 *
 * Money is an integer count of picodollars (1e-12 USD), never a double.
 * A price "per 1M tokens in micro-USD" and a price "per token in pico-USD" are
 * the same integer, so $3 per 1M tokens is 3000000 whichever catalog said it
 * (OpenRouter "0.000003" per token, Portkey 0.0003 cents per token, native 3).
 * Integer sums cannot drift: a cost is the exact sum of its parts.
 */
#ifndef HPP_TYPES_H
#define HPP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Release of the engine, the sidecar and the tools (one version for all). */
#define HPP_VERSION "0.1.0"

/* A borrowed, length-delimited string: wire data is not NUL-terminated. */
typedef struct {
    const char *ptr; /* first byte, may be NULL when len == 0 */
    uint32_t len;    /* byte count */
} hpp_str_t;

/* Picodollars. $1 = 1e12. int64 holds up to about $9.2 million. */
typedef int64_t hpp_pusd_t;

#define HPP_PUSD_PER_USD INT64_C(1000000000000)
/* A price that does not apply (JSON null, "-1" in OpenRouter). Never summed. */
#define HPP_PRICE_NA INT64_MIN

/* Per-token prices in picodollars (= micro-USD per 1M tokens). HPP_PRICE_NA
 * for a component that does not apply. Fees are per request / per image. */
typedef struct {
    hpp_pusd_t input;       /* prompt token */
    hpp_pusd_t output;      /* completion token (reasoning bills as output) */
    hpp_pusd_t cache_read;  /* cached prompt token read */
    hpp_pusd_t cache_write; /* prompt token written to the cache */
    hpp_pusd_t per_request; /* flat fee per call */
    hpp_pusd_t per_image;   /* per input image */
} hpp_price_t;

/* An estimate split into its parts; total is their exact sum. */
typedef struct {
    hpp_pusd_t input;  /* prompt part */
    hpp_pusd_t output; /* completion + reasoning part */
    hpp_pusd_t cache;  /* cache read + write part */
    hpp_pusd_t fees;   /* per-request + per-image part */
    hpp_pusd_t total;  /* sum of the above */
} hpp_cost_t;

/* Capability bits of a model. An unknown capability counts as absent. */
enum {
    HPP_CAP_VISION = 1u << 0,    /* accepts image input */
    HPP_CAP_TOOLS = 1u << 1,     /* function / tool calling */
    HPP_CAP_JSON = 1u << 2,      /* response_format / structured output */
    HPP_CAP_REASONING = 1u << 3, /* reasoning / thinking tokens */
};

/* Every capability with its name, as the catalogs, the policy language and
 * both wire formats spell it, in this order. */
typedef struct {
    uint32_t bit;     /* HPP_CAP_* */
    const char *name; /* "vision", "tools", "json", "reasoning" */
} hpp_cap_t;

#define HPP_NCAPS 4
extern const hpp_cap_t hpp_caps[HPP_NCAPS];

/* Money helpers --------------------------------------------------------- */

/* Parses a plain decimal string ("0.000003", "3", "1e-6" is NOT accepted) scaled
 * by 10^scale_exp into picodollars, exactly, with no floating point. For a
 * per-token USD string use scale_exp = 12; for USD per 1M tokens use 6; for
 * cents per token use 10. Digits beyond picodollar precision are rounded half
 * up. Returns 0, or -1 on empty/non-numeric/negative/overflowing input. */
int hpp_pusd_parse(const char *s, size_t len, int scale_exp, hpp_pusd_t *out);

/* Converts a JSON double scaled the same way (rounded to the nearest
 * picodollar). -1 for NaN, infinity, negative or overflowing values. */
int hpp_pusd_from_double(double v, int scale_exp, hpp_pusd_t *out);

/* Formats picodollars as a decimal USD amount with no trailing zeros:
 * 10500000000 -> "0.0105". With per_million, formats a per-token price as
 * USD per 1M tokens (3000000 -> "3"). Returns the length like snprintf. */
int hpp_pusd_format(hpp_pusd_t v, bool per_million, char *buf, size_t n);

/* USD as a double, for JSON/msgpack output only. */
double hpp_pusd_to_usd(hpp_pusd_t v);

#endif
