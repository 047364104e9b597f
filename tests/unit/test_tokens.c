/* test_tokens.c - the token counter, 64 bytes at a time, against the byte by
 * byte oracle (tests/tok_ref.h): every count equal, on texts built to put
 * each kind of run across a block boundary, on non-ASCII and broken UTF-8
 * and at every offset of a long text. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "../tok_ref.h"
#include "oai_tokens.h"

static void s_same(const char *s, size_t len)
{
    oai_tok_counts_t got, want;
    oai_tok_counts_init(&got);
    oai_tok_counts_init(&want);
    oai_tok_count(&got, s, len);
    tok_ref_count(&want, s, len);
    cr_assert_eq(got.words, want.words, "words %llu, want %llu (len %zu)",
                 (unsigned long long)got.words, (unsigned long long)want.words, len);
    cr_assert_eq(got.longer, want.longer, "longer (len %zu)", len);
    cr_assert_eq(got.digits, want.digits, "digits (len %zu)", len);
    cr_assert_eq(got.punct, want.punct, "punct (len %zu)", len);
    cr_assert_eq(got.space, want.space, "space (len %zu)", len);
    cr_assert_eq(got.cjk, want.cjk, "cjk (len %zu)", len);
    cr_assert_eq(got.other, want.other, "other (len %zu)", len);
}

/* A fixed generator: the same texts on every machine. */
static uint64_t s_rng = 0x9e3779b97f4a7c15u;
static uint32_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 11);
}

/* Pieces a text is made of: every class, runs of every length that matters
 * (a lone ' ', 8 and 9 letters, 3 and 4 digits), 2-, 3- and 4-byte UTF-8, CJK,
 * a stray continuation byte, a cut sequence. */
static const char *const s_pieces[] = {
    "a",
    "Z",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "1",
    "23",
    "456",
    "7890",
    ".",
    "{",
    "\x01",
    "\x7f",
    "abcdefgh",
    "abcdefghi",
    "Supercalifragilistic",
    " x ",
    "\xc3\xa9",
    "\xe4\xb8\xad",
    "\xf0\x9f\x98\x80",
    "\xff",
    "\x80",
    "\xe4\xb8",
    "\xed\x95\x9c",
};

static size_t s_build(char *buf, size_t want, bool ascii)
{
    size_t n = 0, npieces = sizeof s_pieces / sizeof s_pieces[0];
    while (n < want) {
        const char *p = s_pieces[s_next() % npieces];
        if (ascii && (unsigned char)p[0] >= 0x80) {
            continue;
        }
        size_t l = strlen(p);
        if (n + l > want) {
            break;
        }
        memcpy(buf + n, p, l);
        n += l;
    }
    return n;
}

Test(tokens, blocks_match_the_byte_by_byte_count)
{
    static char buf[4096];
    for (int i = 0; i < 20000; i++) {
        size_t n = s_build(buf, s_next() % sizeof buf, i % 3 != 0);
        s_same(buf, n);
    }
}

/* Runs that end exactly at, or cross, a block boundary; texts that are one
 * run from end to end. */
Test(tokens, runs_across_block_boundaries)
{
    static const char fill[] = {'a', '7', ' ', '\n', '.'};
    static char buf[300];
    for (size_t k = 0; k < sizeof fill; k++) {
        for (size_t f = 0; f < sizeof fill; f++) {
            for (size_t at = 0; at < 200; at++) {
                memset(buf, fill[k], sizeof buf);
                memset(buf + at, fill[f], sizeof buf - at);
                buf[at] = ' '; /* a lone space or the first of a run */
                s_same(buf, sizeof buf);
                s_same(buf + 1, sizeof buf - 1);
            }
        }
    }
}

/* Every offset and length of one text: a block starts anywhere. */
Test(tokens, every_offset)
{
    static char buf[1024];
    size_t n = s_build(buf, sizeof buf, false);
    for (size_t off = 0; off < 70; off++) {
        for (size_t len = 0; off + len <= n; len += 1 + len / 4) {
            s_same(buf + off, len);
        }
    }
}
