/* eng_common.h - types and conventions shared by every engine module.
 *
 * Money is an integer count of picodollars (1e-12 USD), never a double.
 * A price "per 1M tokens in micro-USD" and a price "per token in pico-USD" are
 * the same integer, so $3 per 1M tokens is 3000000 whichever catalog said it
 * (OpenRouter "0.000003" per token, Portkey 0.0003 cents per token, native 3).
 * Integer sums cannot drift: a cost is the exact sum of its parts.
 *
 * Errors are values: functions return 0 / -1 (or a status enum) and fill an
 * eng_error_t with a code, the file, a location and a message.
 */
#ifndef ENG_COMMON_H
#define ENG_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Release of the engine, the sidecar and the tools (one version for all). */
#define ENG_VERSION "0.1.0"

/* Picodollars. $1 = 1e12. int64 holds up to about $9.2 million. */
typedef int64_t eng_pusd_t;

#define ENG_PUSD_PER_USD INT64_C(1000000000000)
/* A price that does not apply (JSON null, "-1" in OpenRouter). Never summed. */
#define ENG_PRICE_NA INT64_MIN

/* A borrowed, length-delimited string: wire data is not NUL-terminated. */
typedef struct {
    const char *ptr; /* first byte, may be NULL when len == 0 */
    uint32_t len;    /* byte count */
} eng_str_t;

/* Error codes for loaders and compilers (not request statuses, see eng_request.h). */
typedef enum {
    ENG_ERR_NONE = 0,
    ENG_ERR_IO,      /* file cannot be read */
    ENG_ERR_SYNTAX,  /* malformed JSON / policy text */
    ENG_ERR_TYPE,    /* a value of the wrong type */
    ENG_ERR_VALUE,   /* a value out of range: negative price, bad number */
    ENG_ERR_DUP,     /* duplicate id */
    ENG_ERR_UNKNOWN, /* reference to something not defined (provider, model) */
    ENG_ERR_LIMIT,   /* a size limit was exceeded */
    ENG_ERR_NOMEM,   /* allocation failed */
} eng_errcode_t;

/* One located error. `line`/`col` are 1-based and 0 when unknown; `where` is a
 * key path such as data[3].pricing.input when the position is a JSON key. */
typedef struct {
    eng_errcode_t code; /* ENG_ERR_NONE when no error */
    char file[256];     /* file name as given by the caller */
    int line;           /* 1-based line, 0 if unknown */
    int col;            /* 1-based column, 0 if unknown */
    char where[160];    /* key path, "" if unknown */
    char msg[256];      /* what is wrong, in words */
} eng_error_t;

/* Fills `err` (when not NULL). Returns -1 so callers can `return eng_error_set(...)`. */
int eng_error_set(eng_error_t *err, eng_errcode_t code, const char *file, int line, int col,
                  const char *where, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Formats as "file:line:col: error: msg" or "file: at where: error: msg".
 * Returns the length written (truncated to n-1), like snprintf. */
int eng_error_format(const eng_error_t *err, char *buf, size_t n);

/* Name of an error code, e.g. "syntax". */
const char *eng_errcode_name(eng_errcode_t code);

/* Money helpers -------------------------------------------------------- */

/* Parses a plain decimal string ("0.000003", "3", "1e-6" is NOT accepted) scaled
 * by 10^scale_exp into picodollars, exactly, with no floating point. For a
 * per-token USD string use scale_exp = 12; for USD per 1M tokens use 6; for
 * cents per token use 10. Digits beyond picodollar precision are rounded half
 * up. Returns 0, or -1 on empty/non-numeric/negative/overflowing input. */
int eng_pusd_parse(const char *s, size_t len, int scale_exp, eng_pusd_t *out);

/* Converts a JSON double scaled the same way (rounded to the nearest
 * picodollar). -1 for NaN, infinity, negative or overflowing values. */
int eng_pusd_from_double(double v, int scale_exp, eng_pusd_t *out);

/* Formats picodollars as a decimal USD amount with no trailing zeros:
 * 10500000000 -> "0.0105". With per_million, formats a per-token price as
 * USD per 1M tokens (3000000 -> "3"). Returns the length like snprintf. */
int eng_pusd_format(eng_pusd_t v, bool per_million, char *buf, size_t n);

/* USD as a double, for JSON/msgpack output only. */
double eng_pusd_to_usd(eng_pusd_t v);

/* Logging: one line per event to stderr, "ts level module: message". */
typedef enum { ENG_LOG_DEBUG, ENG_LOG_INFO, ENG_LOG_WARN, ENG_LOG_ERROR } eng_log_level_t;
void eng_log(eng_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void eng_log_set_level(eng_log_level_t level);

/* 3 when `buf` starts with a UTF-8 byte order mark, else 0. Some editors
 * write one; policy, cases and catalog files skip it rather than failing
 * on a character the author cannot see. */
size_t eng_bom_len(const char *buf, size_t len);

#endif
