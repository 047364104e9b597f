/* sc_tokens.c - the feature counter and the fitted coefficients.
 *
 * The counting rules must stay identical to features() in
 * sidecar/tools/token_calibration.mjs: the unit test replays the calibration
 * corpus and requires the same estimate, to the token, that the script
 * recorded. Coefficients are in thousandths of a token so the arithmetic is
 * integer and the result is the same on every machine.
 */
#include "sc_tokens.h"

#include <stdbool.h>
#include <string.h>

#define S_LONG_RUN 8 /* letters after this many in a word count as `longer` */

/* Fitted coefficients, thousandths of a token per feature (o200k_base). */
static const int64_t s_coef_words = 1076;
static const int64_t s_coef_longer = 53;
static const int64_t s_coef_digits = 1598;
static const int64_t s_coef_punct = 577;
static const int64_t s_coef_space = 1007;
static const int64_t s_coef_cjk = 656;
static const int64_t s_coef_other = 84;

void sc_tok_counts_init(sc_tok_counts_t *c)
{
    memset(c, 0, sizeof *c);
}

static bool s_is_cjk(uint32_t cp)
{
    return (cp >= 0x2e80 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7af) ||
           (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xff00 && cp <= 0xffef) ||
           (cp >= 0x20000 && cp <= 0x2fa1f);
}

/* Decodes one code point at s[i]; returns its byte length (>= 1). A malformed
 * or truncated sequence decodes as one byte U+FFFD, which counts as `other`. */
static size_t s_decode(const unsigned char *s, size_t len, size_t i, uint32_t *cp)
{
    unsigned char b = s[i];
    size_t n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    if (n == 0 || i + n > len) {
        *cp = 0xfffd;
        return 1;
    }
    uint32_t v = n == 1 ? b : n == 2 ? (b & 31u) : n == 3 ? (b & 15u) : (b & 7u);
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        v = (v << 6) | (s[i + k] & 63u);
    }
    *cp = v;
    return n;
}

void sc_tok_count(sc_tok_counts_t *c, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    uint64_t run = 0;  /* letters in the current word */
    uint64_t drun = 0; /* digits in the current number */
    uint64_t wrun = 0; /* code points in the current whitespace run */
    bool wsp = false;  /* that run started with ' ' */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += s_decode(s, len, i, &cp);
        bool letter = (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
        bool digit = cp >= '0' && cp <= '9';
        bool white = cp == ' ' || cp == '\n' || cp == '\t' || cp == '\r';
        if (!white && wrun > 0) {
            c->space += !(wrun == 1 && wsp);
            wrun = 0;
        }
        if (!digit && drun > 0) {
            c->digits += (drun + 2) / 3;
            drun = 0;
        }
        if (letter || (cp >= 0x80 && !s_is_cjk(cp))) {
            c->other += cp >= 0x80;
            run++;
            continue;
        }
        if (run > 0) {
            c->words++;
            c->longer += run > S_LONG_RUN ? run - S_LONG_RUN : 0;
            run = 0;
        }
        if (digit) {
            drun++;
        } else if (white) {
            if (wrun == 0) {
                wsp = cp == ' ';
            }
            wrun++;
        } else if (cp >= 0x80) {
            c->cjk++;
        } else {
            c->punct++;
        }
    }
    if (run > 0) {
        c->words++;
        c->longer += run > S_LONG_RUN ? run - S_LONG_RUN : 0;
    }
    c->digits += (drun + 2) / 3;
    if (wrun > 0) {
        c->space += !(wrun == 1 && wsp);
    }
}

int64_t sc_tok_estimate(const sc_tok_counts_t *c)
{
    /* Counts are bounded by the body size (<= a few MB), so no overflow. */
    int64_t t = s_coef_words * (int64_t)c->words + s_coef_longer * (int64_t)c->longer +
                s_coef_digits * (int64_t)c->digits + s_coef_punct * (int64_t)c->punct +
                s_coef_space * (int64_t)c->space + s_coef_cjk * (int64_t)c->cjk +
                s_coef_other * (int64_t)c->other;
    return (t + 500) / 1000;
}

int64_t sc_tok_text(const char *s, size_t len)
{
    sc_tok_counts_t c;
    sc_tok_counts_init(&c);
    sc_tok_count(&c, s, len);
    return sc_tok_estimate(&c);
}
