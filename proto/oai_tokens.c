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

/* The state of a count between bytes: the open runs (word, number,
 * whitespace) of the text so far. Each feature is counted where it becomes
 * certain, so that the scalar loop and the 64-byte blocks below can hand
 * the state to each other anywhere: a word at its first letter, a letter of
 * `longer` when it is past the 8th of its word, a group of digits at its
 * first digit (the 1st, 4th, 7th ... of a number), a whitespace run at its
 * first byte unless that is ' ', and at its second byte when the first was
 * ' ' (a lone ' ' is not counted). */
typedef struct {
    uint64_t run;  /* letters in the current word */
    uint64_t drun; /* digits in the current number */
    uint64_t wrun; /* code points in the current whitespace run */
    bool wsp;      /* that run started with ' ' */
} s_state_t;

/* One code point at s[*i] (any byte; a multi-byte one is decoded). */
static void s_step(oai_tok_counts_t *c, s_state_t *st, const unsigned char *s, size_t len,
                   size_t *i)
{
    int cls;
    uint32_t cp = s[*i];
    if (cp < 0x80) {
        cls = s_ascii[cp];
        (*i)++;
    } else {
        *i += s_decode(s, len, *i, &cp);
        cls = s_is_cjk(cp) ? S_PUNCT : S_LETTER;
    }
    if (cls != S_SPACE && cls != S_WHITE) {
        st->wrun = 0;
    }
    if (cls != S_DIGIT) {
        st->drun = 0;
    }
    if (cls == S_LETTER) {
        c->other += cp >= 0x80;
        c->words += st->run == 0;
        c->longer += st->run >= S_LONG_RUN;
        st->run++;
        return;
    }
    st->run = 0;
    if (cls == S_DIGIT) {
        c->digits += st->drun % 3 == 0;
        st->drun++;
    } else if (cls == S_SPACE || cls == S_WHITE) {
        if (st->wrun == 0) {
            st->wsp = cls == S_SPACE;
            c->space += !st->wsp;
        } else if (st->wrun == 1 && st->wsp) {
            c->space++;
        }
        st->wrun++;
    } else if (cp >= 0x80) {
        c->cjk++;
    } else {
        c->punct++;
    }
}

/* Class masks of 64 ASCII bytes: bit i stands for byte i. */
typedef struct {
    uint64_t letter, digit, white, space; /* white: ' ', \t, \n, \r; space: ' ' */
} s_masks_t;

/* Fills m from the 64 bytes at s; returns false (m unset) when one of them is
 * not ASCII: that block goes through s_step. */
#if defined(__SSE2__)
#include <emmintrin.h>

static inline __attribute__((always_inline)) bool s_masks(const unsigned char *s, s_masks_t *m)
{
    uint64_t high = 0, letter = 0, digit = 0, white = 0, space = 0;
    const __m128i lo = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a' - 1), z = _mm_set1_epi8('z' + 1);
    const __m128i d0 = _mm_set1_epi8('0' - 1), d9 = _mm_set1_epi8('9' + 1);
    const __m128i sp = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), nl = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + 16 * k));
        /* Signed compares are right for ASCII; a block with a high byte is
         * refused before its masks are used. */
        __m128i f = _mm_or_si128(v, lo);
        __m128i l = _mm_and_si128(_mm_cmpgt_epi8(f, a), _mm_cmplt_epi8(f, z));
        __m128i dg = _mm_and_si128(_mm_cmpgt_epi8(v, d0), _mm_cmplt_epi8(v, d9));
        __m128i s1 = _mm_cmpeq_epi8(v, sp);
        __m128i w = _mm_or_si128(_mm_or_si128(s1, _mm_cmpeq_epi8(v, tab)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, nl), _mm_cmpeq_epi8(v, cr)));
        int sh = 16 * k;
        high |= (uint64_t)(unsigned)_mm_movemask_epi8(v) << sh;
        letter |= (uint64_t)(unsigned)_mm_movemask_epi8(l) << sh;
        digit |= (uint64_t)(unsigned)_mm_movemask_epi8(dg) << sh;
        white |= (uint64_t)(unsigned)_mm_movemask_epi8(w) << sh;
        space |= (uint64_t)(unsigned)_mm_movemask_epi8(s1) << sh;
    }
    if (high) {
        return false;
    }
    *m = (s_masks_t){letter, digit, white, space};
    return true;
}
#else
static inline __attribute__((always_inline)) bool s_masks(const unsigned char *s, s_masks_t *m)
{
    uint64_t high = 0;
    s_masks_t r = {0, 0, 0, 0};
    for (unsigned i = 0; i < 64; i++) {
        unsigned b = s[i];
        unsigned cls = s_ascii[b & 0x7f];
        uint64_t bit = (uint64_t)1 << i;
        high |= b >= 0x80 ? bit : 0;
        r.letter |= cls == S_LETTER ? bit : 0;
        r.digit |= cls == S_DIGIT ? bit : 0;
        r.white |= cls == S_SPACE || cls == S_WHITE ? bit : 0;
        r.space |= cls == S_SPACE ? bit : 0;
    }
    if (high) {
        return false;
    }
    *m = r;
    return true;
}
#endif

/* Set bits of a mask. The baseline x86-64 build has no popcnt instruction,
 * and __builtin_popcountll is then a call into libgcc that took a quarter of
 * the count's time: `hw` is true only in the copy of the loop compiled for
 * popcnt (used when the CPU has it), false elsewhere, where the same
 * arithmetic is inlined. */
static inline __attribute__((always_inline)) uint64_t s_pop(uint64_t x, bool hw)
{
    if (hw) {
        return (uint64_t)__builtin_popcountll(x);
    }
    x -= (x >> 1) & 0x5555555555555555u;
    x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fu;
    return (x * 0x0101010101010101u) >> 56;
}

/* The virtual bits before a block: the last n positions set (n capped at 64),
 * in the high bits, as the block before would have them. */
static uint64_t s_tail(uint64_t n)
{
    return n == 0 ? 0 : n >= 64 ? ~(uint64_t)0 : ~(uint64_t)0 << (64 - n);
}

/* How many positions at the end of the block are set (the open run). */
static uint64_t s_open(uint64_t m, uint64_t before)
{
    return m == ~(uint64_t)0 ? before + 64 : (uint64_t)__builtin_clzll(~m);
}

static uint64_t s_ceil3(uint64_t n)
{
    return (n + 2) / 3;
}

/* Digit groups of a block: each run of digits, continued from the state. */
static inline __attribute__((always_inline)) void s_block_digits(oai_tok_counts_t *c, s_state_t *st,
                                                                 uint64_t d)
{
    uint64_t drun = 0;
    while (d) {
        unsigned at = (unsigned)__builtin_ctzll(d);
        uint64_t rest = d >> at;
        unsigned n = rest == ~(uint64_t)0 >> at ? 64 - at : (unsigned)__builtin_ctzll(~rest);
        uint64_t before = at == 0 ? st->drun : 0;
        c->digits += s_ceil3(before + n) - s_ceil3(before);
        drun = at + n == 64 ? before + n : 0;
        d = at + n == 64 ? 0 : d & (~(uint64_t)0 << (at + n));
    }
    st->drun = drun;
}

/* The bits shifted into a block from the word open before it: the last
 * positions of the block before that end a run of k letters or more. */
static uint64_t s_carry(uint64_t run, uint64_t k)
{
    return s_tail(run >= k ? run - k + 1 : 0);
}

/* The same counts as s_step over 64 ASCII bytes, with the masks. */
static inline __attribute__((always_inline)) void s_block(oai_tok_counts_t *c, s_state_t *st,
                                                          const s_masks_t *m, bool hw)
{
    uint64_t l = m->letter, w = m->white, run = st->run;
    uint64_t lprev = (l << 1) | (s_carry(run, 1) >> 63);
    c->words += s_pop(l & ~lprev, hw);
    /* A letter past the 8th of its word ends a run of 9 letters: runs of
     * 2, 4, 8 by doubling, then one more letter 8 positions back. */
    uint64_t r2 = l & lprev;
    uint64_t r4 = r2 & ((r2 << 2) | (s_carry(run, 2) >> 62));
    uint64_t r8 = r4 & ((r4 << 4) | (s_carry(run, 4) >> 60));
    uint64_t past = r8 & ((l << 8) | (s_carry(run, 1) >> 56));
    c->longer += s_pop(past, hw);
    c->punct += s_pop(~(l | m->digit | w), hw);
    s_block_digits(c, st, m->digit);
    /* Whitespace: a run counts at its first byte unless that is ' ', and at
     * its second when the first was ' '. */
    uint64_t wprev = (w << 1) | (st->wrun > 0);
    uint64_t first = w & ~wprev;
    uint64_t lone = first & m->space; /* runs that start with ' ' */
    uint64_t before = st->wrun == 1 && st->wsp;
    c->space += s_pop(first & ~m->space, hw) + s_pop(w & ((lone << 1) | before), hw);
    uint64_t wrun = s_open(w, st->wrun);
    if (w != ~(uint64_t)0 && wrun > 0) {
        st->wsp = (m->space >> (64 - wrun)) & 1;
    } else if (w == ~(uint64_t)0 && st->wrun == 0) {
        st->wsp = m->space & 1;
    }
    st->wrun = wrun;
    st->run = s_open(l, run);
}

/* Prompts are mostly ASCII: 64 bytes at a time, as bit masks; a block with
 * a byte >= 0x80 (and the tail) byte by byte. */
static inline __attribute__((always_inline)) void
s_count(oai_tok_counts_t *c, const unsigned char *s, size_t len, bool hw)
{
    s_state_t st = {0, 0, 0, false};
    size_t i = 0;
    while (len - i >= 64) {
        s_masks_t m;
        if (s_masks(s + i, &m)) {
            s_block(c, &st, &m, hw);
            i += 64;
            continue;
        }
        size_t end = i + 64;
        while (i < end) {
            s_step(c, &st, s, len, &i);
        }
    }
    while (i < len) {
        s_step(c, &st, s, len, &i);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt"))) static void s_count_popcnt(oai_tok_counts_t *c,
                                                             const unsigned char *s, size_t len)
{
    s_count(c, s, len, true);
}
#endif

void oai_tok_count(oai_tok_counts_t *c, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("popcnt")) {
        s_count_popcnt(c, s, len);
        return;
    }
#endif
    s_count(c, s, len, false);
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
