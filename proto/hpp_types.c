/* hpp_types.c - money: exact decimal parsing and formatting of picodollars.
 *
 * Money parsing never goes through binary floating point on the way to an
 * integer: decimal text is scaled digit by digit, so "0.000003" USD per token
 * and 0.0003 cents per token are the same 3000000 picodollars exactly. JSON
 * numbers arrive as doubles; they are first printed with 15 significant
 * digits (the most a double round-trips) and then parsed as text, which
 * recovers the decimal the catalog author wrote.
 */
#include "hpp_types.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const hpp_cap_t hpp_caps[HPP_NCAPS] = {
    {HPP_CAP_VISION, "vision"},
    {HPP_CAP_TOOLS, "tools"},
    {HPP_CAP_JSON, "json"},
    {HPP_CAP_REASONING, "reasoning"},
};

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

int hpp_pusd_parse(const char *s, size_t len, int scale_exp, hpp_pusd_t *out)
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

int hpp_pusd_from_double(double v, int scale_exp, hpp_pusd_t *out)
{
    if (!isfinite(v) || v < 0) {
        return -1;
    }
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.15g", v);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        return -1;
    }
    return hpp_pusd_parse(buf, (size_t)n, scale_exp, out);
}

int hpp_pusd_format(hpp_pusd_t v, bool per_million, char *buf, size_t n)
{
    if (v == HPP_PRICE_NA) {
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

double hpp_pusd_to_usd(hpp_pusd_t v)
{
    if (v == HPP_PRICE_NA) {
        return 0.0;
    }
    /* Split so the integer dollars stay exact in the double. */
    return (double)(v / HPP_PUSD_PER_USD) + (double)(v % HPP_PUSD_PER_USD) / 1e12;
}
