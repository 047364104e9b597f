/* eng_common.c - errors, money and logging shared by every engine module.
 *
 * Money parsing never goes through binary floating point on the way to an
 * integer: decimal text is scaled digit by digit, so "0.000003" USD per token
 * and 0.0003 cents per token are the same 3000000 picodollars exactly. JSON
 * numbers arrive as doubles; they are first printed with 15 significant
 * digits (the most a double round-trips) and then parsed as text, which
 * recovers the decimal the catalog author wrote.
 */
#include "eng_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int eng_error_set(eng_error_t *err, eng_errcode_t code, const char *file, int line, int col,
                  const char *where, const char *fmt, ...)
{
    if (!err) {
        return -1;
    }
    err->code = code;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    err->col = col;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int eng_error_format(const eng_error_t *err, char *buf, size_t n)
{
    const char *file = err->file[0] ? err->file : "<input>";
    if (err->line > 0) {
        return snprintf(buf, n, "%s:%d:%d: error: %s", file, err->line, err->col > 0 ? err->col : 1,
                        err->msg);
    }
    if (err->where[0]) {
        return snprintf(buf, n, "%s: at %s: error: %s", file, err->where, err->msg);
    }
    return snprintf(buf, n, "%s: error: %s", file, err->msg);
}

const char *eng_errcode_name(eng_errcode_t code)
{
    static const char *const names[] = {
        [ENG_ERR_NONE] = "none",       [ENG_ERR_IO] = "io",       [ENG_ERR_SYNTAX] = "syntax",
        [ENG_ERR_TYPE] = "type",       [ENG_ERR_VALUE] = "value", [ENG_ERR_DUP] = "duplicate",
        [ENG_ERR_UNKNOWN] = "unknown", [ENG_ERR_LIMIT] = "limit", [ENG_ERR_NOMEM] = "nomem",
    };
    if ((unsigned)code < sizeof names / sizeof names[0] && names[code]) {
        return names[code];
    }
    return "unknown";
}

/* Money ----------------------------------------------------------------- */

/* Adds digit x 10^pos to *acc (pos >= 0). Returns -1 on overflow. */
static int s_add_digit(int64_t *acc, int digit, int pos)
{
    int64_t term = digit;
    for (int i = 0; i < pos; i++) {
        if (term > INT64_MAX / 10) {
            return digit == 0 ? 0 : -1;
        }
        term *= 10;
    }
    if (*acc > INT64_MAX - term) {
        return -1;
    }
    *acc += term;
    return 0;
}

int eng_pusd_parse(const char *s, size_t len, int scale_exp, eng_pusd_t *out)
{
    size_t i = 0;
    if (i < len && s[i] == '+') {
        i++;
    }
    /* Collect the significant digits and where the decimal point falls. */
    char digits[64];
    int ndigits = 0, int_digits = 0, seen_point = 0, any_digit = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            any_digit = 1;
            if (ndigits == 0 && c == '0') {
                /* A leading zero: shifts the point when after it, else nothing. */
                if (seen_point) {
                    int_digits--;
                }
                continue;
            }
            if (!seen_point) {
                int_digits++;
            }
            /* 64 significant digits are far below a picodollar: drop the rest. */
            if (ndigits < (int)sizeof digits) {
                digits[ndigits++] = (char)(c - '0');
            }
        } else if (c == '.' && !seen_point) {
            seen_point = 1;
        } else {
            break;
        }
    }
    if (!any_digit) {
        return -1;
    }
    int exp10 = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int sign = 1, any = 0;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            sign = s[i] == '-' ? -1 : 1;
            i++;
        }
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            any = 1;
            if (exp10 < 1000) {
                exp10 = exp10 * 10 + (s[i] - '0');
            }
        }
        if (!any) {
            return -1;
        }
        exp10 *= sign;
    }
    if (i != len) {
        return -1;
    }
    /* digit k has weight 10^(int_digits - 1 - k + scale_exp + exp10). */
    int64_t acc = 0;
    int top = int_digits - 1 + scale_exp + exp10;
    for (int k = 0; k < ndigits; k++) {
        int pos = top - k;
        if (pos >= 0) {
            if (s_add_digit(&acc, digits[k], pos) < 0) {
                return -1;
            }
        } else {
            if (pos == -1 && digits[k] >= 5) {
                if (acc == INT64_MAX) {
                    return -1;
                }
                acc++;
            }
            break;
        }
    }
    *out = acc;
    return 0;
}

int eng_pusd_from_double(double v, int scale_exp, eng_pusd_t *out)
{
    if (!isfinite(v) || v < 0) {
        return -1;
    }
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.15g", v);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        return -1;
    }
    return eng_pusd_parse(buf, (size_t)n, scale_exp, out);
}

int eng_pusd_format(eng_pusd_t v, bool per_million, char *buf, size_t n)
{
    if (v == ENG_PRICE_NA) {
        return snprintf(buf, n, "n/a");
    }
    /* per token pUSD == micro-USD per 1M tokens: 6 decimals; else 12. */
    int decimals = per_million ? 6 : 12;
    uint64_t unit = per_million ? 1000000u : 1000000000000u;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t whole = mag / unit, frac = mag % unit;
    char fbuf[16];
    snprintf(fbuf, sizeof fbuf, "%0*llu", decimals, (unsigned long long)frac);
    int flen = decimals;
    while (flen > 0 && fbuf[flen - 1] == '0') {
        flen--;
    }
    return snprintf(buf, n, "%s%llu%s%.*s", v < 0 ? "-" : "", (unsigned long long)whole,
                    flen ? "." : "", flen, fbuf);
}

double eng_pusd_to_usd(eng_pusd_t v)
{
    if (v == ENG_PRICE_NA) {
        return 0.0;
    }
    /* Split so the integer dollars stay exact in the double. */
    return (double)(v / ENG_PUSD_PER_USD) + (double)(v % ENG_PUSD_PER_USD) / 1e12;
}

/* Logging --------------------------------------------------------------- */

static eng_log_level_t s_log_level = ENG_LOG_INFO;

void eng_log_set_level(eng_log_level_t level)
{
    s_log_level = level;
}

size_t eng_bom_len(const char *buf, size_t len)
{
    return len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

void eng_log(eng_log_level_t level, const char *module, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < s_log_level) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* One buffer, one write: concurrent threads never interleave a line. */
    char line[1024];
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level], module);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) {
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    }
    va_end(ap);
    size_t len = strlen(line);
    if (len >= sizeof line - 1) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
