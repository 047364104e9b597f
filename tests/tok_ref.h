/* tok_ref.h - the token estimator's counting rules, byte by byte, as first
 * written: the oracle that proto/oai_tokens.c's block-at-a-time count must
 * match exactly (tests/unit/test_tokens.c, tests/fuzz/fuzz_tokens.c). Each
 * run (word, number, whitespace) is counted when it closes, the plainest
 * reading of sidecar/tools/token_calibration.mjs's features(). */
#ifndef TOK_REF_H
#define TOK_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oai_tokens.h"

static inline bool tok_ref_is_cjk(uint32_t cp)
{
    return (cp >= 0x2e80 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7af) ||
           (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xff00 && cp <= 0xffef) ||
           (cp >= 0x20000 && cp <= 0x2fa1f);
}

/* Decodes one code point at s[i]; returns its byte length (>= 1). A malformed
 * or truncated sequence decodes as one byte U+FFFD, which counts as `other`. */
static inline size_t tok_ref_decode(const unsigned char *s, size_t len, size_t i, uint32_t *cp)
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
enum { TR_PUNCT = 0, TR_LETTER, TR_DIGIT, TR_SPACE, TR_WHITE };

static const unsigned char tok_ref_ascii[128] = {
    ['\t'] = TR_WHITE, ['\n'] = TR_WHITE, ['\r'] = TR_WHITE, [' '] = TR_SPACE,  ['0'] = TR_DIGIT,
    ['1'] = TR_DIGIT,  ['2'] = TR_DIGIT,  ['3'] = TR_DIGIT,  ['4'] = TR_DIGIT,  ['5'] = TR_DIGIT,
    ['6'] = TR_DIGIT,  ['7'] = TR_DIGIT,  ['8'] = TR_DIGIT,  ['9'] = TR_DIGIT,  ['A'] = TR_LETTER,
    ['B'] = TR_LETTER, ['C'] = TR_LETTER, ['D'] = TR_LETTER, ['E'] = TR_LETTER, ['F'] = TR_LETTER,
    ['G'] = TR_LETTER, ['H'] = TR_LETTER, ['I'] = TR_LETTER, ['J'] = TR_LETTER, ['K'] = TR_LETTER,
    ['L'] = TR_LETTER, ['M'] = TR_LETTER, ['N'] = TR_LETTER, ['O'] = TR_LETTER, ['P'] = TR_LETTER,
    ['Q'] = TR_LETTER, ['R'] = TR_LETTER, ['S'] = TR_LETTER, ['T'] = TR_LETTER, ['U'] = TR_LETTER,
    ['V'] = TR_LETTER, ['W'] = TR_LETTER, ['X'] = TR_LETTER, ['Y'] = TR_LETTER, ['Z'] = TR_LETTER,
    ['a'] = TR_LETTER, ['b'] = TR_LETTER, ['c'] = TR_LETTER, ['d'] = TR_LETTER, ['e'] = TR_LETTER,
    ['f'] = TR_LETTER, ['g'] = TR_LETTER, ['h'] = TR_LETTER, ['i'] = TR_LETTER, ['j'] = TR_LETTER,
    ['k'] = TR_LETTER, ['l'] = TR_LETTER, ['m'] = TR_LETTER, ['n'] = TR_LETTER, ['o'] = TR_LETTER,
    ['p'] = TR_LETTER, ['q'] = TR_LETTER, ['r'] = TR_LETTER, ['s'] = TR_LETTER, ['t'] = TR_LETTER,
    ['u'] = TR_LETTER, ['v'] = TR_LETTER, ['w'] = TR_LETTER, ['x'] = TR_LETTER, ['y'] = TR_LETTER,
    ['z'] = TR_LETTER,
};

/* The loop keeps the three open runs (word, number, whitespace) and closes
 * each when a byte of another class arrives. Control bytes other than
 * \t \n \r count as punctuation, like in the calibration script. */
static inline void tok_ref_count(oai_tok_counts_t *c, const char *str, size_t len)
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
            cls = tok_ref_ascii[cp];
            i++;
        } else {
            i += tok_ref_decode(s, len, i, &cp);
            cls = tok_ref_is_cjk(cp) ? TR_PUNCT : TR_LETTER;
        }
        if (wrun > 0 && cls != TR_SPACE && cls != TR_WHITE) {
            c->space += !(wrun == 1 && wsp);
            wrun = 0;
        }
        if (drun > 0 && cls != TR_DIGIT) {
            c->digits += (drun + 2) / 3;
            drun = 0;
        }
        if (cls == TR_LETTER) {
            c->other += cp >= 0x80;
            run++;
            /* Tight loop over the rest of an ASCII word: most bytes of a prompt. */
            while (i < len && s[i] < 0x80 && tok_ref_ascii[s[i]] == TR_LETTER) {
                run++;
                i++;
            }
            continue;
        }
        if (run > 0) {
            c->words++;
            c->longer += run > 8 ? run - 8 : 0;
            run = 0;
        }
        if (cls == TR_DIGIT) {
            drun++;
        } else if (cls == TR_SPACE || cls == TR_WHITE) {
            if (wrun == 0) {
                wsp = cls == TR_SPACE;
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
        c->longer += run > 8 ? run - 8 : 0;
    }
    c->digits += (drun + 2) / 3;
    if (wrun > 0) {
        c->space += !(wrun == 1 && wsp);
    }
}

#endif
