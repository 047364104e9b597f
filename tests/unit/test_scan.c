/* test_scan.c - the one-pass scan of a request's text (engine/eng_scan.c) and the regex pieces it
 * stands on (eng_regex_prefixes, eng_regex_match_at).
 *
 * The scan must give every regex and `contains` text exactly the answer of the per-pattern path
 * it replaces: a differential test compares eng_scan_run() with eng_regex_match() and a plain
 * case-insensitive search on thousands of texts (random ones over an alphabet made of the
 * patterns' own pieces, and the bench's real prompts), with a fixed seed; and at the policy level
 * the resolver's decisions and traces with the scan on and off, for every bundled policy.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "eng_policy_internal.h"
#include "eng_regex.h"
#include "eng_scan.h"

#define I ENG_REGEX_ICASE

/* Prefix literals ------------------------------------------------------------------------- */

/* The literals of pattern `pat` joined by ',' (in their order), or "-" when it has none. */
static const char *s_prefixes(const char *pat, int flags, char *buf, size_t n)
{
    eng_regex_prefixes_t px;
    int rc = eng_regex_prefixes(pat, strlen(pat), flags, &px);
    cr_assert_geq(rc, 0, "/%s/ should parse", pat);
    if (rc == 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    size_t k = 0;
    for (int i = 0; i < px.n; i++) {
        k += (size_t)snprintf(buf + k, n - k, "%s%.*s", i ? "," : "", px.len[i], px.lit[i]);
    }
    cr_assert_eq(px.caseless, (flags & I) != 0);
    return buf;
}

Test(scan, prefix_literals_of_patterns)
{
    static const struct {
        const char *pat;
        int flags;
        const char *want;
    } cases[] = {
        /* A short literal grows through a small class: "def" alone occurs in "undefined". */
        {"\\bdef\\s+\\w+\\s*\\(", 0, "def\t,def\n,def\v,def\f,def\r,def "},
        {"```|\\bdef +\\w+|#include\\s*<|\\bfn[ (]", 0, "```,def ,#include,fn ,fn("},
        {"\\bfunction\\s+\\w", 0, "function"}, /* long enough: no class taken */
        {"\\b(prove|proof|theorem)\\b", I, "prove,proof,theorem"},
        {"\\bContract\\s+\\w", I, "contract"},
        {"\\bContract\\s+\\w", 0, "Contract"},
        {"ab(c|d)e", 0, "abce,abde"},
        {"ab(c|d)*e", 0, "ab"},
        {"(ab)+c", 0, "ab"},
        {"(ab){2}c", 0, "ab"},
        {"^hello$", 0, "hello"},
        {"a\\.b", 0, "a.b"},
        {"\\x41\\x42", 0, "AB"},
        {"abcdefghijklmnopqrstuvwxyz", 0, "abcdefghijklmnop"}, /* cut at 16: still a prefix */
        {"[ab]cd", 0, "acd,bcd"},                              /* a small leading class */
        {"[a-z]bc", 0, "-"},                                   /* a large one */
        {"a?bc", 0, "-"},                                      /* an optional first atom */
        {"a|bc", 0, "-"},                                      /* a one-byte literal */
        {"x*yz", 0, "-"},
        {"(?:)ab", 0, "ab"},
        {"[Aa]b", 0, "Ab,ab"}, /* a case pair without ICASE: two literals */
        {"[Aa]b", I, "ab"},
        {".ab", 0, "-"},
    };
    char buf[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_str_eq(s_prefixes(cases[i].pat, cases[i].flags, buf, sizeof buf), cases[i].want,
                         "/%s/", cases[i].pat);
    }
    /* Too many alternatives for a set: none. */
    char big[4096];
    size_t k = 0;
    for (int i = 0; i < ENG_REGEX_MAX_PREFIXES + 1; i++) {
        k += (size_t)snprintf(big + k, sizeof big - k, "%sw%02d", i ? "|" : "", i);
    }
    cr_expect_str_eq(s_prefixes(big, 0, buf, sizeof buf), "-");
    eng_regex_prefixes_t px;
    cr_expect_eq(eng_regex_prefixes("(ab", 3, 0, &px), -1);
}

/* Anchored matching -------------------------------------------------------------------------- */

static int s_at(const char *pat, int flags, const char *text, size_t pos)
{
    eng_regex_t *re = eng_regex_compile(pat, strlen(pat), flags, NULL, 0, NULL);
    cr_assert_not_null(re);
    cr_assert(eng_regex_can_match_at(re));
    size_t budget = 1000;
    int m = eng_regex_match_at(re, text, strlen(text), pos, &budget);
    eng_regex_destroy(&re);
    return m;
}

Test(scan, match_at_is_anchored_and_sees_the_whole_text)
{
    cr_expect_eq(s_at("def", 0, "undef def", 2), 1);
    cr_expect_eq(s_at("\\bdef", 0, "undef def", 2), 0); /* \b looks at the byte before */
    cr_expect_eq(s_at("\\bdef", 0, "undef def", 6), 1);
    cr_expect_eq(s_at("^ab", 0, "abab", 2), 0); /* ^ only at the start of the text */
    cr_expect_eq(s_at("^ab", 0, "abab", 0), 1);
    cr_expect_eq(s_at("ab$", 0, "abab", 0), 0); /* $ only at its end */
    cr_expect_eq(s_at("ab$", 0, "abab", 2), 1);
    cr_expect_eq(s_at("ab", 0, "xab", 0), 0); /* no restart after pos */
    cr_expect_eq(s_at("AB", I, "xab", 1), 1);
    cr_expect_eq(s_at("a*", 0, "bbb", 3), 1); /* the empty match at the end */
    /* The budget: a long match needs as many steps as bytes. */
    eng_regex_t *re = eng_regex_compile("a+b", 3, 0, NULL, 0, NULL);
    char text[200];
    memset(text, 'a', sizeof text - 2);
    text[sizeof text - 2] = 'b';
    text[sizeof text - 1] = '\0';
    size_t budget = 50;
    cr_expect_eq(eng_regex_match_at(re, text, strlen(text), 0, &budget), -1);
    cr_expect_eq(budget, 0);
    budget = 500;
    cr_expect_eq(eng_regex_match_at(re, text, strlen(text), 0, &budget), 1);
    eng_regex_destroy(&re);
}

/* Differential: scan vs per-pattern ---------------------------------------------------------- */

static const struct {
    const char *pat;
    int flags;
} s_pats[] = {
    {"\\bcontract\\s+\\w+\\s+is\\s+\\w", 0},
    {"```|\\bdef\\s+\\w+\\s*\\(|#include\\s*<|\\bfunction\\s+\\w+\\s*\\(|\\bfn\\s+\\w+\\s*\\(", 0},
    {"\\b(prove|proof|theorem|lemma|integral|derivative|equation)\\b", I},
    {"^def", 0},
    {"fn$", 0},
    {"ab.*cd", 0},
    {"ab(ab)*x", I},
    {"\\Bde", 0},
    {"de\\B", I},
    {"[0-9]+px", 0}, /* no prefix literal: not covered, answered outside */
    {"fn\\(\\)", 0},
    {"DEF", 0},
    {"contract|ontr", 0},
    {"(?:x|y)z{2,3}", 0}, /* "xz", "yz" */
};
#define S_NPATS (sizeof s_pats / sizeof s_pats[0])

static const char *const s_lits[] = {
    "solidity", "stack trace", "fn", "de", "tl;dr", "ab ab", "\xc3\xa9t\xc3\xa9", "x",
};
#define S_NLITS (sizeof s_lits / sizeof s_lits[0])

/* The resolver's semantics of `contains`: ASCII case-insensitive, other bytes exact. */
static bool s_contains(const char *t, size_t len, const char *lower)
{
    size_t n = strlen(lower);
    for (size_t i = 0; i + n <= len; i++) {
        size_t j = 0;
        while (j < n) {
            unsigned c = (unsigned char)t[i + j];
            c = c >= 'A' && c <= 'Z' ? c + 32 : c;
            if (c != (unsigned char)lower[j]) {
                break;
            }
            j++;
        }
        if (j == n) {
            return true;
        }
    }
    return false;
}

static uint64_t s_rng = 0x9e3779b97f4a7c15u;

static uint32_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}

/* A random text of pieces that make the patterns almost match, and sometimes match. */
static size_t s_random_text(char *buf, size_t cap)
{
    static const char *const pieces[] = {"def",
                                         "DEF",
                                         "de",
                                         "f",
                                         " ",
                                         "  ",
                                         "\n",
                                         "(",
                                         "x",
                                         "fn",
                                         "Fn",
                                         "fn()",
                                         "ab",
                                         "AB",
                                         "cd",
                                         "contract",
                                         "Contract",
                                         " is ",
                                         "ontr",
                                         "prove",
                                         "PROOF",
                                         "lemma",
                                         "integ",
                                         "ral",
                                         "_",
                                         "```",
                                         "``",
                                         "#include",
                                         "<",
                                         "z",
                                         "zz",
                                         "y",
                                         "\xc3\xa9t\xc3\xa9",
                                         "\xc3\x89T\xc3\x89",
                                         "stack",
                                         " trace",
                                         "solid",
                                         "ity",
                                         "tl;dr",
                                         "12",
                                         "px",
                                         "function",
                                         "q",
                                         "ab ab"};
    size_t npieces = sizeof pieces / sizeof pieces[0];
    size_t want = s_rand() % (cap < 300 ? cap : 300);
    size_t n = 0;
    while (n < want) {
        const char *p = pieces[s_rand() % npieces];
        size_t k = strlen(p);
        if (n + k > cap) {
            break;
        }
        memcpy(buf + n, p, k);
        n += k;
    }
    return n;
}

typedef struct {
    eng_regex_t *re[S_NPATS];
    eng_scan_t *scan;
} s_fixture_t;

static void s_fixture(s_fixture_t *fx)
{
    fx->scan = eng_scan_new();
    cr_assert_not_null(fx->scan);
    for (size_t i = 0; i < S_NPATS; i++) {
        const char *p = s_pats[i].pat;
        fx->re[i] = eng_regex_compile(p, strlen(p), s_pats[i].flags, NULL, 0, NULL);
        cr_assert_not_null(fx->re[i], "/%s/", p);
        cr_assert_eq(
            eng_scan_add_regex(fx->scan, (uint32_t)i, fx->re[i], p, strlen(p), s_pats[i].flags), 0);
    }
    for (size_t i = 0; i < S_NLITS; i++) {
        cr_assert_eq(eng_scan_add_literal(fx->scan, (uint32_t)i, s_lits[i], strlen(s_lits[i])), 0);
    }
    cr_assert_eq(eng_scan_build(fx->scan, 2), 0);
}

static void s_fixture_free(s_fixture_t *fx)
{
    eng_scan_destroy(&fx->scan);
    cr_assert_null(fx->scan);
    for (size_t i = 0; i < S_NPATS; i++) {
        eng_regex_destroy(&fx->re[i]);
    }
}

static void s_compare(const s_fixture_t *fx, const char *t, size_t len)
{
    eng_scan_hits_t h;
    cr_assert(eng_scan_run(fx->scan, t, len, &h));
    for (size_t i = 0; i < S_NPATS; i++) {
        bool want = eng_regex_match(fx->re[i], t, len);
        bool got = (h.rx[i / 64] >> (i % 64)) & 1;
        if (eng_scan_covers_regex(fx->scan, (uint32_t)i)) {
            cr_assert_eq(got, want, "/%s/ on \"%.*s\": scan %d, regex %d", s_pats[i].pat,
                         (int)(len > 200 ? 200 : len), t, got, want);
        } else {
            cr_assert(!got, "an uncovered regex's bit stays 0");
        }
    }
    cr_assert(eng_scan_covers_literals(fx->scan));
    for (size_t i = 0; i < S_NLITS; i++) {
        bool want = s_contains(t, len, s_lits[i]);
        bool got = (h.lit[i / 64] >> (i % 64)) & 1;
        cr_assert_eq(got, want, "\"%s\" in \"%.*s\"", s_lits[i], (int)(len > 200 ? 200 : len), t);
    }
}

Test(scan, covers_what_has_prefix_literals)
{
    s_fixture_t fx;
    s_fixture(&fx);
    for (size_t i = 0; i < S_NPATS; i++) {
        bool want = strcmp(s_pats[i].pat, "[0-9]+px") != 0;
        cr_expect_eq(eng_scan_covers_regex(fx.scan, (uint32_t)i), want, "/%s/", s_pats[i].pat);
    }
    cr_expect_gt(eng_scan_bytes(fx.scan), 0);
    s_fixture_free(&fx);
}

Test(scan, same_answers_as_each_pattern_on_random_texts)
{
    s_fixture_t fx;
    s_fixture(&fx);
    static char buf[512];
    s_compare(&fx, NULL, 0);
    for (int round = 0; round < 20000; round++) {
        size_t n = s_random_text(buf, sizeof buf);
        s_compare(&fx, buf, n);
    }
    s_fixture_free(&fx);
}

static size_t s_read(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "%s", path);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

Test(scan, same_answers_on_real_prompts_and_every_cut_of_them)
{
    s_fixture_t fx;
    s_fixture(&fx);
    static char buf[16384];
    const char *files[] = {"bench/bodies/prompt_1k.txt", "bench/bodies/prompt_8k.txt",
                           "policies/default.policy", "engine/eng_regex.c"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t n = s_read(files[f], buf, sizeof buf);
        for (size_t cut = 0; cut <= n; cut += 97) {
            s_compare(&fx, buf + cut / 3, n - cut);
        }
    }
    s_fixture_free(&fx);
}

/* Many occurrences of a literal where the anchored check fails late: the budget sends the regex
 * to its own matcher, with the same answer. */
Test(scan, over_budget_regexes_still_answer_right)
{
    s_fixture_t fx;
    s_fixture(&fx);
    static char buf[8192];
    for (size_t i = 0; i + 2 <= sizeof buf; i += 2) {
        memcpy(buf + i, "ab", 2);
    }
    s_compare(&fx, buf, sizeof buf); /* /ab.*cd/: no; /ab(ab)*x/: no */
    memcpy(buf + sizeof buf - 2, "cd", 2);
    s_compare(&fx, buf, sizeof buf); /* now both of /ab.*cd/'s ends */
    buf[sizeof buf - 1] = 'x';
    s_compare(&fx, buf, sizeof buf);
    s_fixture_free(&fx);
}

Test(scan, unusable_scan_answers_false)
{
    eng_scan_hits_t h;
    cr_expect(!eng_scan_run(NULL, "x", 1, &h));
    eng_scan_t *s = eng_scan_new();
    cr_expect_eq(eng_scan_build(s, 1), -1, "nothing queued");
    cr_expect(!eng_scan_run(s, "x", 1, &h));
    cr_expect(!eng_scan_covers_literals(s));
    eng_scan_destroy(&s);
    eng_scan_destroy(&s);
    eng_scan_destroy(NULL);
}

/* Policy level: decisions and traces with the scan on and off ------------------------------ */

static void s_decide(eng_policy_t *pol, const hpp_features_t *f, bool scan, char *out, size_t n)
{
    eng_policy_set_scan(pol, scan);
    eng_trace_entry_t entries[64];
    eng_trace_t tr;
    memset(&tr, 0, sizeof tr);
    tr.entries = entries;
    tr.cap = 64;
    eng_decision_t d, lazy;
    eng_resolve(pol, f, &lazy, NULL); /* hint rules run only as far as the rules need */
    eng_resolve(pol, f, &d, &tr);     /* every hint rule runs */
    size_t k = (size_t)snprintf(out, n, "%d %s %s %s | %d %s %s hints=%llx |", (int)lazy.status,
                                lazy.model ? lazy.model->id : "-", lazy.rule ? lazy.rule : "-",
                                lazy.message, (int)d.status, d.model ? d.model->id : "-",
                                d.rule ? d.rule : "-", (unsigned long long)tr.hints);
    for (int i = 0; tr.hint_names[i] && k < n; i++) {
        k += (size_t)snprintf(out + k, n - k, " %s", tr.hint_names[i]);
    }
    for (uint32_t i = 0; i < tr.nrules_tried && k < n; i++) {
        k += (size_t)snprintf(out + k, n - k, " >%s", tr.rules_tried[i]);
    }
}

Test(scan, policies_decide_the_same_with_and_without_the_scan)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0, "%s", err.msg);
    glob_t g;
    cr_assert_eq(glob("policies/examples/*.policy", 0, NULL, &g), 0);
    static char buf[8192], a[4096], b[4096];
    size_t nfile = s_read("bench/bodies/prompt_8k.txt", buf, sizeof buf);
    int npol = 0, ncovered = 0;
    for (size_t p = 0; p <= g.gl_pathc; p++) {
        const char *path = p < g.gl_pathc ? g.gl_pathv[p] : "policies/default.policy";
        eng_diags_t *d = eng_diags_new();
        eng_policy_t *pol = eng_policy_load(path, cat, d);
        eng_diags_destroy(&d);
        cr_assert_not_null(pol, "%s", path);
        npol++;
        for (uint32_t i = 0; i < pol->nregexes; i++) {
            ncovered += eng_scan_covers_regex(pol->scan, i);
        }
        for (int round = 0; round < 3000; round++) {
            hpp_features_t f;
            hpp_features_init(&f);
            f.prompt_tokens = 1000 + round;
            static char text[600];
            size_t n = round < 2900 ? s_random_text(text, sizeof text) : 0;
            f.text = (hpp_str_t){text, (uint32_t)n};
            if (round >= 2900) { /* cuts of a real prompt */
                size_t cut = (size_t)(round - 2900) * (nfile / 100);
                f.text = (hpp_str_t){buf + cut / 2, (uint32_t)(nfile - cut)};
            }
            s_decide(pol, &f, false, a, sizeof a);
            s_decide(pol, &f, true, b, sizeof b);
            cr_assert_str_eq(b, a, "%s, text \"%.*s\"", path,
                             (int)(f.text.len > 120 ? 120 : f.text.len), f.text.ptr);
        }
        eng_policy_destroy(&pol);
    }
    globfree(&g);
    cr_expect_geq(npol, 2);
    cr_expect_geq(ncovered, 3, "the default policy's regexes are in the scan");
    eng_catalog_destroy(&cat);
}

/* Debian's Vectorscan 5.4.9 misses some literal occurrences in the last bytes of a text (its
 * accelerator for sets of short literals): with "za" and "zb", a text of 66 to 96 bytes ending
 * in "za" got no report. The scan looks at the tail again itself. */
Test(scan, literals_at_the_end_of_the_text_are_found)
{
    eng_scan_t *s = eng_scan_new();
    cr_assert_eq(eng_scan_add_literal(s, 0, "za", 2), 0);
    cr_assert_eq(eng_scan_add_literal(s, 1, "zb", 2), 0);
    cr_assert_eq(eng_scan_build(s, 1), 0);
    static char text[256];
    for (size_t n = 2; n < sizeof text; n++) {
        for (size_t p = 0; p + 2 <= n; p++) {
            memset(text, 'x', n);
            memcpy(text + p, "za", 2);
            eng_scan_hits_t h;
            cr_assert(eng_scan_run(s, text, n, &h));
            cr_assert_eq(h.lit[0], 1, "\"za\" at %zu of %zu bytes", p, n);
        }
    }
    eng_scan_destroy(&s);
}

/* A scan of literal "lit<n>" and one of "abc", built with `slots` slots. */
static eng_scan_t *s_scan_of(int n, unsigned slots)
{
    char lit[32];
    int len = snprintf(lit, sizeof lit, "lit%d", n);
    eng_scan_t *s = eng_scan_new();
    cr_assert_eq(eng_scan_add_literal(s, 0, lit, (size_t)len), 0);
    cr_assert_eq(eng_scan_add_literal(s, 1, "abc", 3), 0);
    cr_assert_eq(eng_scan_build(s, slots), 0);
    return s;
}

/* A reload that leaves the text patterns alone reuses the database: the scans share it, each
 * answers after the other is gone, and a different literal list or slot count compiles its own. */
Test(scan, the_same_literals_share_one_database)
{
    eng_scan_t *a = s_scan_of(1000, 2), *b = s_scan_of(1000, 2);
    eng_scan_t *other = s_scan_of(1001, 2), *wider = s_scan_of(1000, 3);
    cr_expect(eng_scan_shares(a, b));
    cr_expect_not(eng_scan_shares(a, other));
    cr_expect_not(eng_scan_shares(a, wider));
    cr_expect_eq(eng_scan_bytes(a), eng_scan_bytes(b));
    eng_scan_destroy(&a);
    eng_scan_hits_t h;
    cr_assert(eng_scan_run(b, "xx LIT1000 abc", 14, &h));
    cr_expect_eq(h.lit[0], 3, "both literals, from the shared database");
    cr_assert(eng_scan_run(other, "lit1000", 7, &h));
    cr_expect_eq(h.lit[0], 0);
    eng_scan_destroy(&b);
    eng_scan_destroy(&other);
    eng_scan_destroy(&wider);
}

/* Four sets are kept: a fifth one built since pushes the oldest out, and the next scan of the
 * oldest's literals compiles again (the scan still using the old one keeps it working). */
Test(scan, at_most_four_databases_are_kept)
{
    eng_scan_t *first = s_scan_of(2000, 2);
    for (int i = 1; i <= 4; i++) {
        eng_scan_t *s = s_scan_of(2000 + i, 2);
        eng_scan_destroy(&s);
    }
    eng_scan_t *again = s_scan_of(2000, 2), *third = s_scan_of(2000, 2);
    cr_expect_not(eng_scan_shares(first, again), "pushed out by four newer sets");
    cr_expect(eng_scan_shares(again, third), "kept again once rebuilt");
    eng_scan_hits_t h;
    cr_assert(eng_scan_run(first, "lit2000", 7, &h));
    cr_expect_eq(h.lit[0], 1);
    eng_scan_destroy(&first);
    eng_scan_destroy(&again);
    eng_scan_destroy(&third);
}
