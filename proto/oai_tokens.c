/* oai_tokens.c - the feature counter and the fitted coefficients.
 *
 * The counting rules must stay identical to features() in
 * sidecar/tools/token_calibration.mjs: the unit test replays the calibration
 * corpus and requires the same estimate, to the token, that the script
 * recorded. Coefficients are in thousandths of a token so the arithmetic is
 * integer and the result is the same on every machine.
 */
#include "oai_tokens.h"

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

void oai_tok_counts_init(oai_tok_counts_t *c)
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

/* Classes of ASCII bytes; bytes >= 0x80 are decoded as UTF-8. */
enum { S_PUNCT = 0, S_LETTER, S_DIGIT, S_SPACE, S_WHITE };

static const unsigned char s_ascii[128] = {
    ['\t'] = S_WHITE, ['\n'] = S_WHITE, ['\r'] = S_WHITE, [' '] = S_SPACE,  ['0'] = S_DIGIT,
    ['1'] = S_DIGIT,  ['2'] = S_DIGIT,  ['3'] = S_DIGIT,  ['4'] = S_DIGIT,  ['5'] = S_DIGIT,
    ['6'] = S_DIGIT,  ['7'] = S_DIGIT,  ['8'] = S_DIGIT,  ['9'] = S_DIGIT,  ['A'] = S_LETTER,
    ['B'] = S_LETTER, ['C'] = S_LETTER, ['D'] = S_LETTER, ['E'] = S_LETTER, ['F'] = S_LETTER,
    ['G'] = S_LETTER, ['H'] = S_LETTER, ['I'] = S_LETTER, ['J'] = S_LETTER, ['K'] = S_LETTER,
    ['L'] = S_LETTER, ['M'] = S_LETTER, ['N'] = S_LETTER, ['O'] = S_LETTER, ['P'] = S_LETTER,
    ['Q'] = S_LETTER, ['R'] = S_LETTER, ['S'] = S_LETTER, ['T'] = S_LETTER, ['U'] = S_LETTER,
    ['V'] = S_LETTER, ['W'] = S_LETTER, ['X'] = S_LETTER, ['Y'] = S_LETTER, ['Z'] = S_LETTER,
    ['a'] = S_LETTER, ['b'] = S_LETTER, ['c'] = S_LETTER, ['d'] = S_LETTER, ['e'] = S_LETTER,
    ['f'] = S_LETTER, ['g'] = S_LETTER, ['h'] = S_LETTER, ['i'] = S_LETTER, ['j'] = S_LETTER,
    ['k'] = S_LETTER, ['l'] = S_LETTER, ['m'] = S_LETTER, ['n'] = S_LETTER, ['o'] = S_LETTER,
    ['p'] = S_LETTER, ['q'] = S_LETTER, ['r'] = S_LETTER, ['s'] = S_LETTER, ['t'] = S_LETTER,
    ['u'] = S_LETTER, ['v'] = S_LETTER, ['w'] = S_LETTER, ['x'] = S_LETTER, ['y'] = S_LETTER,
    ['z'] = S_LETTER,
};

/* The loop keeps the three open runs (word, number, whitespace) and closes
 * each when a byte of another class arrives. Control bytes other than
 * \t \n \r count as punctuation, like in the calibration script. */
void oai_tok_count(oai_tok_counts_t *c, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    uint64_t run = 0;  /* letters in the current word */
    uint64_t drun = 0; /* digits in the current number */
    uint64_t wrun = 0; /* code points in the current whitespace run */
    bool wsp = false;  /* that run started with ' ' */
    size_t i = 0;
    while (i < len) {
        int cls;
        uint32_t cp = s[i];
        if (cp < 0x80) {
            cls = s_ascii[cp];
            i++;
        } else {
            i += s_decode(s, len, i, &cp);
            cls = s_is_cjk(cp) ? S_PUNCT : S_LETTER;
        }
        if (wrun > 0 && cls != S_SPACE && cls != S_WHITE) {
            c->space += !(wrun == 1 && wsp);
            wrun = 0;
        }
        if (drun > 0 && cls != S_DIGIT) {
            c->digits += (drun + 2) / 3;
            drun = 0;
        }
        if (cls == S_LETTER) {
            c->other += cp >= 0x80;
            run++;
            /* Tight loop over the rest of an ASCII word: most bytes of a prompt. */
            while (i < len && s[i] < 0x80 && s_ascii[s[i]] == S_LETTER) {
                run++;
                i++;
            }
            continue;
        }
        if (run > 0) {
            c->words++;
            c->longer += run > S_LONG_RUN ? run - S_LONG_RUN : 0;
            run = 0;
        }
        if (cls == S_DIGIT) {
            drun++;
        } else if (cls == S_SPACE || cls == S_WHITE) {
            if (wrun == 0) {
                wsp = cls == S_SPACE;
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

int64_t oai_tok_estimate(const oai_tok_counts_t *c)
{
    /* Counts are bounded by the body size (<= a few MB), so no overflow. */
    int64_t t = s_coef_words * (int64_t)c->words + s_coef_longer * (int64_t)c->longer +
                s_coef_digits * (int64_t)c->digits + s_coef_punct * (int64_t)c->punct +
                s_coef_space * (int64_t)c->space + s_coef_cjk * (int64_t)c->cjk +
                s_coef_other * (int64_t)c->other;
    return (t + 500) / 1000;
}

int64_t oai_tok_text(const char *s, size_t len)
{
    oai_tok_counts_t c;
    oai_tok_counts_init(&c);
    oai_tok_count(&c, s, len);
    return oai_tok_estimate(&c);
}
