/* test_contains.c - `text contains` against a plain reference search.
 *
 * The resolver answers every CONTAINS node of a request from one shared,
 * resumable pass over the text (a found-set of the policy's deduplicated
 * needles). These tests pin the language's meaning - an ASCII
 * case-insensitive substring test - on hand-picked edge cases, the policy's
 * needle limit, and thousands of random policies and texts compared with a
 * naive search. Hint rules are observed through the trace (which runs every
 * hint rule), routing rules through the rule that answered.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "policy_fixture.h"

static const char s_catalog_json[] =
    "{\"object\":\"list\",\"providers\":[\"p1\"],\"data\":["
    "{\"id\":\"a/m\",\"owned_by\":\"a\",\"provider\":\"p1\","
    " \"pricing\":{\"input\":1,\"output\":1},\"context_length\":100000}]}";

static eng_catalog_t *s_cat;

static void s_setup(void)
{
    s_cat = fixture_catalog(s_catalog_json);
}

static void s_teardown(void)
{
    eng_catalog_destroy(&s_cat);
}

TestSuite(eng_contains, .init = s_setup, .fini = s_teardown);

/* Helpers ----------------------------------------------------------------- */

static eng_policy_t *s_compile(const char *src)
{
    return fixture_policy(src, s_cat);
}

/* Resolves an auto request carrying text[0..len); returns the rule that
 * answered and, with `hints`, the hint rules hN that fired as bit N. */
static const char *s_resolve(const eng_policy_t *p, const char *text, size_t len, bool trace,
                             uint64_t *hints)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 100;
    f.text.ptr = text;
    f.text.len = (uint32_t)len;
    eng_decision_t d;
    eng_trace_entry_t entries[8];
    eng_trace_t t = {.entries = entries, .cap = 8};
    eng_resolve(p, &f, &d, trace ? &t : NULL);
    cr_assert_eq(d.status, HPP_OK, "%s", d.message);
    if (hints) {
        *hints = 0;
        for (int i = 0; trace && t.hint_names[i]; i++) {
            cr_assert_eq(t.hint_names[i][0], 'h');
            *hints |= UINT64_C(1) << atoi(t.hint_names[i] + 1);
        }
    }
    return d.rule;
}

/* Hint bits (hN -> bit N) that fire for a NUL-terminated text. */
static uint64_t s_hints(const eng_policy_t *p, const char *text)
{
    uint64_t h;
    s_resolve(p, text, strlen(text), true, &h);
    return h;
}

static const char *s_rule(const eng_policy_t *p, const char *text)
{
    return s_resolve(p, text, strlen(text), false, NULL);
}

#define B(n) (UINT64_C(1) << (n))

/* A text and the hint bits that must fire for it; a NULL text ends a list. */
typedef struct {
    const char *text;
    uint64_t want;
} s_case_t;

/* Compiles "tier all", the given hint rules and a catch-all route, then
 * checks every case. */
static void s_check_hints(const char *hint_rules, const s_case_t *cases)
{
    char src[1024];
    int n = snprintf(src, sizeof src, "tier all\n%sroute last { tier all }\n", hint_rules);
    cr_assert(n > 0 && (size_t)n < sizeof src, "policy text too long for the test buffer");
    eng_policy_t *p = s_compile(src);
    cr_assert_not_null(p);
    for (const s_case_t *c = cases; c->text; c++) {
        uint64_t got = s_hints(p, c->text);
        cr_assert_eq(got, c->want, "\"%s\": hints %#llx, want %#llx", c->text,
                     (unsigned long long)got, (unsigned long long)c->want);
    }
    eng_policy_destroy(&p);
}

/* Hand-picked cases -------------------------------------------------------- */

Test(eng_contains, shared_and_distinct_needles)
{
    s_check_hints("hint h0 when text contains [\"foo\", \"bar\"]\n"
                  "hint h1 when text contains \"bar\"\n"
                  "hint h2 when text contains [\"baz\", \"FOO\", \"bar\"]\n"
                  "hint h3 when text contains \"qux\"\n",
                  (const s_case_t[]){
                      {"", 0},
                      {"nothing here", 0},
                      {"xxBARxx", B(0) | B(1) | B(2)},
                      {"foo", B(0) | B(2)},
                      {"baz qux", B(2) | B(3)},
                      {"qux, then fOo", B(0) | B(2) | B(3)},
                      {NULL, 0},
                  });
}

Test(eng_contains, overlapping_needles)
{
    s_check_hints("hint h0 when text contains \"abab\"\n"
                  "hint h1 when text contains \"bab\"\n"
                  "hint h2 when text contains \"aba\"\n"
                  "hint h3 when text contains \"b\"\n"
                  "hint h4 when text contains \"aaaa\"\n"
                  "hint h5 when text contains \"aaa\"\n",
                  (const s_case_t[]){
                      {"xababx", B(0) | B(1) | B(2) | B(3)},
                      {"abxab", B(3)},
                      {"aba", B(2) | B(3)},
                      {"aaa", B(5)},
                      {"aaaa", B(4) | B(5)},
                      {"aa aa", 0},
                      {NULL, 0},
                  });
}

Test(eng_contains, needles_at_start_and_end)
{
    /* "xyz" anchors on its rarest byte, z, two bytes in: a match must start
     * exactly at the text's first byte; "quiz" must end at its last. */
    s_check_hints("hint h0 when text contains \"xyz\"\n"
                  "hint h1 when text contains \"quiz\"\n"
                  "hint h2 when text contains \"hello\"\n",
                  (const s_case_t[]){
                      {"xyz", B(0)},
                      {"xyz and more", B(0)},
                      {"yz", 0},
                      {"z", 0},
                      {"a quiz", B(1)},
                      {"a qui", 0},
                      {"say hell", 0},
                      {"say hello", B(2)},
                      {NULL, 0},
                  });
}

Test(eng_contains, ascii_case_folding_only)
{
    s_check_hints("hint h0 when text contains \"HeLLo WoRLD\"\n"
                  "hint h1 when text contains \"caf\xc3\xa9\"\n"
                  "hint h2 when text contains \"tl;dr\"\n",
                  (const s_case_t[]){
                      {"hello world", B(0)},
                      {"HELLO WORLD", B(0)},
                      {"hEllO wOrld!", B(0)},
                      {"hello  world", 0},
                      {"CAF\xc3\xa9", B(1)},
                      {"CAF\xc3\x89", 0}, /* É is not folded: ASCII only */
                      {"TL;DR: no", B(2)},
                      {"tl,dr", 0},
                      {NULL, 0},
                  });
}

Test(eng_contains, needle_longer_than_text)
{
    s_check_hints("hint h0 when text contains \"a long needle indeed\"\n"
                  "hint h1 when text contains \"needle\"\n",
                  (const s_case_t[]){
                      {"needle", B(1)},
                      {"long needle", B(1)},
                      {"a long needle indee", B(1)},
                      {"A LONG NEEDLE INDEED", B(0) | B(1)},
                      {NULL, 0},
                  });
}

Test(eng_contains, bytes_past_the_text_length_are_not_read)
{
    eng_policy_t *p = s_compile("tier all\n"
                                "hint h0 when text contains \"abc\"\n"
                                "route last { tier all }\n");
    cr_assert_not_null(p);
    uint64_t h;
    s_resolve(p, "xxabc", 4, true, &h); /* the sample ends inside the match */
    cr_assert_eq(h, 0);
    s_resolve(p, "ab\0abc", 6, true, &h); /* a NUL byte is ordinary text */
    cr_assert_eq(h, B(0));
    eng_policy_destroy(&p);
}

Test(eng_contains, later_nodes_resume_the_pass)
{
    /* r0 finds "mid", then asks for "nope" and scans to the end; r1's needle
     * was passed before the pause and must be in the found-set. "eeez"
     * anchors on z: it starts before the point where r2's scan paused. */
    eng_policy_t *p = s_compile("tier all\n"
                                "route r0 when text contains \"mid\" and text contains \"nope\" "
                                "{ tier all }\n"
                                "route r1 when text contains \"start\" { tier all }\n"
                                "route last { tier all }\n");
    cr_assert_not_null(p);
    cr_assert_str_eq(s_rule(p, "start mid end"), "r1");
    cr_assert_str_eq(s_rule(p, "mid end, start"), "r1");
    cr_assert_str_eq(s_rule(p, "start, mid, nope"), "r0");
    cr_assert_str_eq(s_rule(p, "mid"), "last");
    eng_policy_destroy(&p);

    p = s_compile("tier all\n"
                  "route r2 when text contains \"e\" and text contains \"nope\" { tier all }\n"
                  "route r3 when text contains \"eeez\" { tier all }\n"
                  "route last { tier all }\n");
    cr_assert_not_null(p);
    cr_assert_str_eq(s_rule(p, "eeez"), "r3");
    cr_assert_str_eq(s_rule(p, "eee z"), "last");
    eng_policy_destroy(&p);
}

Test(eng_contains, negated_contains)
{
    eng_policy_t *p = s_compile("tier all\n"
                                "route r0 when not text contains [\"x\", \"y\"] { tier all }\n"
                                "route r1 when text contains \"x\" and not text contains \"y\" "
                                "{ tier all }\n"
                                "route last { tier all }\n");
    cr_assert_not_null(p);
    cr_assert_str_eq(s_rule(p, "abc"), "r0");
    cr_assert_str_eq(s_rule(p, "aXc"), "r1");
    cr_assert_str_eq(s_rule(p, "aXcY"), "last");
    cr_assert_str_eq(s_rule(p, ""), "r0");
    eng_policy_destroy(&p);
}

Test(eng_contains, empty_needle_is_an_error)
{
    eng_diags_t *d = eng_diags_new();
    const char *src =
        "tier all\nhint h0 when text contains [\"a\", \"\"]\nroute last { tier all }\n";
    eng_policy_t *p = eng_policy_load_buffer("e.policy", src, strlen(src), s_cat, d);
    cr_assert_null(p);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    const eng_diag_t *g = eng_diags_get(d, 0);
    cr_assert_eq(g->line, 2);
    cr_assert_eq(g->col, 34, "col %d", g->col);
    cr_assert(strstr(g->msg, "empty text"), "%s", g->msg);
    eng_diags_destroy(&d);
}

/* The needle limit ----------------------------------------------------------- */

/* A policy with `rules` hint rules h0.. of `per` needles each: needle k of
 * rule r is "nRRR_KKK;" - distinct, none a substring of another. */
static char *s_many(int rules, int per, const char *extra)
{
    size_t cap = (size_t)rules * (size_t)per * 16 + 4096;
    char *src = malloc(cap);
    cr_assert_not_null(src);
    size_t n = (size_t)snprintf(src, cap, "tier all\n");
    for (int r = 0; r < rules; r++) {
        n += (size_t)snprintf(src + n, cap - n, "hint h%d when text contains [", r);
        for (int k = 0; k < per; k++) {
            n += (size_t)snprintf(src + n, cap - n, "%s\"n%03d_%03d;\"", k ? ", " : "", r, k);
        }
        n += (size_t)snprintf(src + n, cap - n, "]\n");
    }
    snprintf(src + n, cap - n, "%sroute last { tier all }\n", extra);
    return src;
}

Test(eng_contains, many_needles_up_to_the_limit)
{
    /* 4 x 64 = 256 distinct needles, plus a rule repeating some: duplicates
     * share a slot and do not count against the limit. */
    char *src = s_many(4, 64, "hint h4 when text contains [\"N001_063;\", \"n003_000;\"]\n");
    eng_policy_t *p = s_compile(src);
    free(src);
    cr_assert_not_null(p);
    cr_assert_eq(s_hints(p, "some text"), 0);
    cr_assert_eq(s_hints(p, "..n002_017;.."), B(2));
    cr_assert_eq(s_hints(p, "n001_063;"), B(1) | B(4));
    cr_assert_eq(s_hints(p, "N003_000;n000_063;"), B(0) | B(3) | B(4));
    cr_assert_eq(s_hints(p, "n003_000"), 0);
    /* Every needle, each found once: the pass may stop when all are found. */
    char all[256 * 9 + 1];
    size_t n = 0;
    for (int r = 3; r >= 0; r--) {
        for (int k = 0; k < 64; k++) {
            n += (size_t)snprintf(all + n, sizeof all - n, "n%03d_%03d;", r, k);
        }
    }
    cr_assert_eq(s_hints(p, all), B(0) | B(1) | B(2) | B(3) | B(4));
    eng_policy_destroy(&p);
}

Test(eng_contains, too_many_needles_is_a_located_error)
{
    /* 256 needles in 4 rules, then a fifth rule whose second text is the
     * 257th distinct one (its first repeats a known needle). */
    char *src = s_many(4, 64, "hint h4 when text contains [\"n000_000;\", \"one more\"]\n");
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load_buffer("big.policy", src, strlen(src), s_cat, d);
    cr_assert_null(p);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    const eng_diag_t *g = eng_diags_get(d, 0);
    cr_assert_str_eq(g->file, "big.policy");
    cr_assert_eq(g->line, 6);
    cr_assert_eq(g->col, 42, "col %d", g->col);
    cr_assert(strstr(g->msg, "at most 256"), "%s", g->msg);
    cr_assert(strstr(g->source_line, "\"one more\""));
    eng_diags_destroy(&d);
    free(src);
}

/* Randomized differential test ------------------------------------------------ */

/* Small alphabets so that needles occur often: letters of both cases, a
 * space, punctuation, two bytes of a UTF-8 sequence and (in texts) NUL. */
static const char s_needle_bytes[] = "abcABz .;\xc3\xa9";
static const char s_text_bytes[] = "abcABCzZ .;x\xc3\xa9\xc3\x89";

static uint32_t s_rng = 12345;

static uint32_t s_rand(uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 17;
    s_rng ^= s_rng << 5;
    return s_rng % n;
}

static int s_fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* The reference: a direct search at every offset. */
static bool s_ref_find(const char *t, size_t tl, const char *nd, size_t nl)
{
    for (size_t i = 0; i + nl <= tl; i++) {
        size_t j = 0;
        while (j < nl && s_fold((unsigned char)t[i + j]) == s_fold((unsigned char)nd[j])) {
            j++;
        }
        if (j == nl) {
            return true;
        }
    }
    return false;
}

#define S_MAX_LISTS 12
#define S_MAX_LIST 4

typedef struct {
    char needle[S_MAX_LIST][6]; /* NUL-terminated */
    int n;                      /* used */
} s_list_t;

static bool s_ref_list(const s_list_t *l, const char *t, size_t tl)
{
    for (int i = 0; i < l->n; i++) {
        if (s_ref_find(t, tl, l->needle[i], strlen(l->needle[i]))) {
            return true;
        }
    }
    return false;
}

static size_t s_put_list(char *out, size_t cap, const s_list_t *l)
{
    size_t n = (size_t)snprintf(out, cap, "text contains [");
    for (int i = 0; i < l->n; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", i ? ", " : "", l->needle[i]);
    }
    return n + (size_t)snprintf(out + n, cap - n, "]");
}

Test(eng_contains, random_policies_match_a_plain_search)
{
    s_rng = 12345;
    int checked = 0;
    for (int round = 0; round < 300; round++) {
        /* Needle lists; hint rule hK tests list K, routing rule rR tests list
         * nhints + R alone, negated, and-ed with the next list, or a hint. */
        s_list_t lists[S_MAX_LISTS];
        int nhints = 1 + (int)s_rand(5), nroutes = 1 + (int)s_rand(6);
        int nlists = nhints + nroutes + 1;
        for (int k = 0; k < nlists; k++) {
            lists[k].n = 1 + (int)s_rand(S_MAX_LIST);
            for (int i = 0; i < lists[k].n; i++) {
                int len = 1 + (int)s_rand(4);
                for (int j = 0; j < len; j++) {
                    lists[k].needle[i][j] = s_needle_bytes[s_rand(sizeof s_needle_bytes - 1)];
                }
                lists[k].needle[i][len] = '\0';
            }
        }
        int kind[S_MAX_LISTS], which[S_MAX_LISTS];
        char src[4096];
        size_t n = (size_t)snprintf(src, sizeof src, "tier all\n");
        for (int k = 0; k < nhints; k++) {
            n += (size_t)snprintf(src + n, sizeof src - n, "hint h%d when ", k);
            n += s_put_list(src + n, sizeof src - n, &lists[k]);
            n += (size_t)snprintf(src + n, sizeof src - n, "\n");
        }
        for (int r = 0; r < nroutes; r++) {
            const s_list_t *l = &lists[nhints + r];
            kind[r] = (int)s_rand(4);
            n += (size_t)snprintf(src + n, sizeof src - n, "route r%d when ", r);
            if (kind[r] == 1) {
                n += (size_t)snprintf(src + n, sizeof src - n, "not ");
            }
            if (kind[r] == 3) {
                which[r] = (int)s_rand((uint32_t)nhints);
                n += (size_t)snprintf(src + n, sizeof src - n, "hints has \"h%d\"", which[r]);
            } else {
                n += s_put_list(src + n, sizeof src - n, l);
            }
            if (kind[r] == 2) {
                n += (size_t)snprintf(src + n, sizeof src - n, " and ");
                n += s_put_list(src + n, sizeof src - n, l + 1);
            }
            n += (size_t)snprintf(src + n, sizeof src - n, " { tier all }\n");
        }
        snprintf(src + n, sizeof src - n, "route last { tier all }\n");
        cr_assert_lt(n, sizeof src - 64);
        eng_policy_t *p = s_compile(src);
        cr_assert_not_null(p, "%s", src);

        for (int q = 0; q < 12; q++) {
            char text[64];
            size_t tl = s_rand(sizeof text);
            for (size_t i = 0; i < tl; i++) {
                /* one byte in 40 is NUL */
                text[i] = s_rand(40) ? s_text_bytes[s_rand(sizeof s_text_bytes - 1)] : '\0';
            }
            uint64_t want_hints = 0;
            for (int k = 0; k < nhints; k++) {
                want_hints |= (uint64_t)s_ref_list(&lists[k], text, tl) << k;
            }
            const char *want_rule = "last";
            char name[8];
            for (int r = 0; r < nroutes; r++) {
                const s_list_t *l = &lists[nhints + r];
                bool hit;
                switch (kind[r]) {
                case 0:
                    hit = s_ref_list(l, text, tl);
                    break;
                case 1:
                    hit = !s_ref_list(l, text, tl);
                    break;
                case 2:
                    hit = s_ref_list(l, text, tl) && s_ref_list(l + 1, text, tl);
                    break;
                default:
                    hit = want_hints >> which[r] & 1;
                    break;
                }
                if (hit) {
                    snprintf(name, sizeof name, "r%d", r);
                    want_rule = name;
                    break;
                }
            }
            /* Without a trace rules run lazily (the pass pauses and resumes);
             * with one, every hint rule runs too. */
            cr_assert_str_eq(s_resolve(p, text, tl, false, NULL), want_rule, "%s\ntext %.*s", src,
                             (int)tl, text);
            uint64_t got_hints;
            cr_assert_str_eq(s_resolve(p, text, tl, true, &got_hints), want_rule);
            cr_assert_eq(got_hints, want_hints, "%s\ntext %.*s", src, (int)tl, text);
            checked++;
        }
        eng_policy_destroy(&p);
    }
    cr_assert_eq(checked, 3600);
}
