/* test_regex.c - the hint-rule regex engine (engine/eng_regex.c).
 *
 * A table of (pattern, flags, text, expected) over every supported feature, the rejected patterns
 * with the offset each error points at, pathological patterns that backtracking engines take
 * exponential time on (they must simply return the right answer), concurrent use of one compiled
 * regex, and a differential test against the C library's POSIX regcomp/regexec (REG_EXTENDED)
 * on thousands of random patterns from the common subset and random texts, with a fixed seed.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_regex.h"

#define I ENG_REGEX_ICASE

static eng_regex_t *s_compile_ok(const char *pat, int flags)
{
    char err[160];
    int off = 99;
    eng_regex_t *re = eng_regex_compile(pat, strlen(pat), flags, err, sizeof(err), &off);
    cr_assert_not_null(re, "pattern /%s/ should compile, got error at %d: %s", pat, off, err);
    cr_assert_eq(off, -1);
    cr_assert_str_empty(err);
    return re;
}

/* Patterns with few byte-matching states run on a bit-parallel matcher, larger ones on a
 * thread-list simulation. Appending an alternative of 100 \x01 bytes (which no test text holds)
 * moves any pattern to the second matcher without changing its answers, so both are checked. */
static eng_regex_t *s_compile_slow(const char *pat, int flags)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "(?:%s)|\x01{100}", pat);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return NULL;
    }
    return eng_regex_compile(buf, (size_t)n, flags, NULL, 0, NULL); /* NULL: too big */
}

/* Searches with every matcher (the DFA, the bit-parallel one, the list one), checks they agree,
 * returns the answer. */
static bool s_search_len(const char *pat, int flags, const char *text, size_t len)
{
    eng_regex_t *re = s_compile_ok(pat, flags);
    bool r = eng_regex_match(re, text, len);
    eng_regex_destroy(&re);
    re = s_compile_ok(pat, flags | ENG_REGEX_NO_DFA);
    cr_assert_eq(eng_regex_match(re, text, len), r, "/%s/: the DFA and the NFA disagree", pat);
    eng_regex_destroy(&re);
    re = s_compile_slow(pat, flags);
    if (re != NULL) {
        cr_assert_eq(eng_regex_match(re, text, len), r, "/%s/: the two matchers disagree", pat);
        eng_regex_destroy(&re);
    }
    return r;
}

static bool s_search(const char *pat, int flags, const char *text)
{
    return s_search_len(pat, flags, text, strlen(text));
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const char *pat;  /* pattern */
    int flags;        /* 0 or I */
    const char *text; /* searched text */
    bool expect;      /* whether it matches */
} s_case_t;

static const s_case_t s_cases[] = {
    /* literals, unanchored search */
    {"abc", 0, "abc", true},
    {"abc", 0, "xxabcxx", true},
    {"abc", 0, "ab", false},
    {"abc", 0, "abd abx", false},
    {"abc", 0, "", false},
    {"a", 0, "bbbbbbbba", true},
    {"aab", 0, "aaab", true},
    {"é", 0, "caf\xc3\xa9", true}, /* UTF-8 passes through as bytes */
    {"]", 0, "a]b", true},
    {"}", 0, "a}b", true},
    {"a}", 0, "a}", true},
    {"-", 0, "a-b", true},
    /* dot */
    {"a.c", 0, "abc", true},
    {"a.c", 0, "a-c", true},
    {"a.c", 0, "ac", false},
    {"a.c", 0, "a\nc", false},
    {"a.c", 0,
     "a\xff"
     "c",
     true},
    {".", 0, "", false},
    {".", 0, "\n", false},
    {"...", 0, "ab", false},
    /* classes */
    {"[abc]", 0, "xxbxx", true},
    {"[abc]", 0, "xyz", false},
    {"[a-z]+", 0, "HELLO world", true},
    {"^[a-z]+$", 0, "HELLO", false},
    {"[^a-z]", 0, "abc", false},
    {"[^a-z]", 0, "abC", true},
    {"[^\n]", 0, "\n", false},
    {"[]a]", 0, "]", true},
    {"[]a]", 0, "b", false},
    {"[^]a]", 0, "]a]", false},
    {"[^]a]", 0, "]b", true},
    {"[a-]", 0, "-", true},
    {"[-a]", 0, "-", true},
    {"[a-c-e]", 0, "-", true},
    {"[a-c-e]", 0, "d", false},
    {"[0-9a-fA-F]+$", 0, "0xDEADbeef", true},
    {"[\\d]", 0, "x7", true},
    {"[\\w.]+@", 0, "john.doe@example.com", true},
    {"[\\s]", 0, "a\tb", true},
    {"[\\S]", 0, " \t\n", false},
    {"[\\D]", 0, "123", false},
    {"[\\W]", 0, "a_1", false},
    {"[\\]]", 0, "]", true},
    {"[\\-a]", 0, "-", true},
    {"[\\^]", 0, "^", true},
    {"[\\\\]", 0, "\\", true},
    {"[\\x41-\\x43]", 0, "B", true},
    {"[\\x41-\\x43]", 0, "D", false},
    {"[\\t]", 0, "\t", true},
    {"[[:digit:]]", 0, "a5", true},
    {"[[:alpha:]]", 0, "123", false},
    {"[[:upper:][:digit:]]", 0, "abcD", true},
    {"[^[:space:]]", 0, " \t\n", false},
    {"[[:punct:]]", 0, "abc!", true},
    {"[[:xdigit:]]+$", 0, "beef", true},
    {"[[:word:]]", 0, "_", true},
    {"[[:blank:]]", 0, "\n", false},
    {"[[:cntrl:]]", 0, "\x01", true},
    {"[[:print:]]", 0, "\x01", false},
    {"[[:graph:]]", 0, " ", false},
    {"[[:lower:]]", 0, "ABC", false},
    {"[[:alnum:]]", 0, "-z", true},
    {"[a[]", 0, "[", true},
    /* escapes */
    {"\\d+", 0, "abc 42", true},
    {"\\d", 0, "abc", false},
    {"\\D", 0, "123", false},
    {"\\D", 0, "12a", true},
    {"\\w", 0, "--_--", true},
    {"\\w", 0, "-- --", false},
    {"\\W", 0, "abc", false},
    {"\\W", 0, "ab c", true},
    {"\\W", 0, "\xc3", true},
    {"\\w", 0, "\xc3\xa9", false},
    {"\\s", 0, "a\vb", true},
    {"\\s", 0, "ab", false},
    {"\\S", 0, " \t\r\n\f\v", false},
    {"a\\.b", 0, "a.b", true},
    {"a\\.b", 0, "axb", false},
    {"\\\\", 0, "a\\b", true},
    {"\\/", 0, "a/b", true},
    {"\\t", 0, "a\tb", true},
    {"\\n", 0, "a\nb", true},
    {"\\r\\n", 0, "a\r\nb", true},
    {"\\f", 0, "\f", true},
    {"\\v", 0, "\v", true},
    {"\\x41\\x62", 0, "Ab", true},
    {"\\xff", 0, "\xff", true},
    {"\\(\\)\\[\\]\\{\\}\\*\\+\\?\\|\\^\\$", 0, "()[]{}*+?|^$", true},
    {"a\\ b", 0, "a b", true},
    {"\\-\\#\\@\\!", 0, "-#@!", true},
    /* word boundaries */
    {"\\bcat\\b", 0, "the cat sat", true},
    {"\\bcat\\b", 0, "concatenate", false},
    {"\\bcat", 0, "cat", true},
    {"cat\\b", 0, "cat", true},
    {"cat\\b", 0, "cats", false},
    {"\\Bcat", 0, "concat", true},
    {"\\Bcat", 0, "a cat", false},
    {"\\b", 0, "", false},
    {"\\B", 0, "", true},
    {"\\b", 0, "   ", false},
    {"\\b", 0, "  x", true},
    {"\\bé", 0, " \xc3\xa9", false}, /* bytes >= 0x80 are not word bytes */
    {"a\\b-", 0, "a-", true},
    /* anchors */
    {"^abc", 0, "abcdef", true},
    {"^abc", 0, "xabc", false},
    {"abc$", 0, "xxabc", true},
    {"abc$", 0, "abcx", false},
    {"abc$", 0, "abc\n", false},
    {"^abc$", 0, "abc", true},
    {"^$", 0, "", true},
    {"^$", 0, "x", false},
    {"^", 0, "", true},
    {"$", 0, "abc", true},
    {"a^b", 0, "a^b", false},
    {"a$b", 0, "a$b", false},
    {"^b", 0, "a\nb", false},
    {"(^a|b)c", 0, "xbc", true},
    {"(^a|b)c", 0, "xac", false},
    {"(^a|b)c", 0, "acx", true},
    {"x(a$|b)", 0, "xa", true},
    {"x(a$|b)", 0, "xay", false},
    /* groups */
    {"(ab)+$", 0, "xababab", true},
    {"^(ab)+$", 0, "ababa", false},
    {"(?:ab)+c", 0, "ababc", true},
    {"(?:a|b)c", 0, "bc", true},
    {"((a))", 0, "a", true},
    {"()", 0, "", true},
    {"a()b", 0, "ab", true},
    {"(a|)b", 0, "b", true},
    {"(|a)b", 0, "ab", true},
    {"(a|b|)+$", 0, "abba", true},
    {"x(()|a)*y", 0, "xaaay", true},
    /* alternation */
    {"cat|dog", 0, "hotdog", true},
    {"cat|dog", 0, "cow", false},
    {"a|b|c", 0, "xxc", true},
    {"^a|b$", 0, "xb", true},
    {"^a|b$", 0, "xa", false},
    {"^(a|b)$", 0, "ab", false},
    {"a|", 0, "zzz", true}, /* empty alternative matches everywhere */
    {"|", 0, "", true},
    /* quantifiers */
    {"ab*c", 0, "ac", true},
    {"ab*c", 0, "abbbbc", true},
    {"ab+c", 0, "ac", false},
    {"ab+c", 0, "abbc", true},
    {"ab?c", 0, "abbc", false},
    {"ab?c", 0, "ac", true},
    {"^a*$", 0, "", true},
    {"^a+$", 0, "", false},
    {"a*?b", 0, "aab", true},
    {"a+?b", 0, "b", false},
    {"a??b", 0, "ab", true},
    {"^a{3}$", 0, "aaa", true},
    {"^a{3}$", 0, "aa", false},
    {"^a{3}$", 0, "aaaa", false},
    {"^a{2,}$", 0, "a", false},
    {"^a{2,}$", 0, "aaaaaa", true},
    {"^a{2,4}$", 0, "aaaa", true},
    {"^a{2,4}$", 0, "aaaaa", false},
    {"^a{0,2}$", 0, "", true},
    {"^a{0}b$", 0, "b", true},
    {"^a{0}b$", 0, "ab", false},
    {"^a{0,0}$", 0, "", true},
    {"^a{1}$", 0, "a", true},
    {"^(ab){2}$", 0, "abab", true},
    {"^(ab){2}$", 0, "ab", false},
    {"^(a|bc){2,3}$", 0, "bcabc", true},
    {"^(a|bc){2,3}$", 0, "bcabca", false},
    {"^a{2,3}?$", 0, "aa", true},
    {"^(a*)*$", 0, "aaa", true},
    {"^(a*)+$", 0, "", true},
    {"^(a?)+$", 0, "aa", true},
    {"^(a+|b)*$", 0, "abba", true},
    {"^(\\b)*a$", 0, "a", true},
    {"^(){3}a", 0, "a", true},
    {"^x{1000}$", 0, "xx", false},
    /* case-insensitive */
    {"abc", I, "xABCx", true},
    {"ABC", I, "abc", true},
    {"abc", 0, "ABC", false},
    {"[a-c]+$", I, "CAB", true},
    {"[A-C]+$", I, "cab", true},
    {"[^a]", I, "A", false},
    {"[^a]", I, "Ab", true},
    {"[^A-Z]", I, "abcXYZ", false},
    {"[[:upper:]]", I, "a", true},
    {"[[:lower:]]", I, "A", true},
    {"\\x41", I, "a", true},
    {"é", I, "\xc3\x89", false}, /* ASCII folding only */
    {"\\bsolidity\\b", I, "pragma SOLIDITY ^0.8", true},
    {"_1", I, "_1", true},
    {"[_@]", I, "@", true},
    /* a real hint rule */
    {"pragma\\s+solidity|\\bcontract\\s+\\w+\\s*\\{", I, "Pragma  Solidity ^0.8.0;", true},
    {"pragma\\s+solidity|\\bcontract\\s+\\w+\\s*\\{", I, "contract Token is ERC20 {", false},
    {"pragma\\s+solidity|\\bcontract\\s+\\w+\\s*\\{", I, "abstract CONTRACT Vault\n{", true},
    {"pragma\\s+solidity|\\bcontract\\s+\\w+\\s*\\{", I, "subcontract Vault {", false},
    {"pragma\\s+solidity|\\bcontract\\s+\\w+\\s*\\{", I, "write me a poem", false},
    {"\\b(def|class)\\s+\\w+\\s*[(:]", 0, "please fix:\ndef main():\n  pass", true},
    {"\\b\\d{1,3}(\\.\\d{1,3}){3}\\b", 0, "host 10.0.12.255 is up", true},
    {"\\b\\d{1,3}(\\.\\d{1,3}){3}\\b", 0, "version 1.2.3", false},
};

Test(regex, table)
{
    for (size_t i = 0; i < sizeof(s_cases) / sizeof(s_cases[0]); i++) {
        const s_case_t *c = &s_cases[i];
        bool got = s_search(c->pat, c->flags, c->text);
        cr_expect_eq(got, c->expect, "case %zu: /%s/%s on \"%s\": expected %s", i, c->pat,
                     c->flags ? "i" : "", c->text, c->expect ? "match" : "no match");
    }
}

/* Explicit lengths: NUL bytes are ordinary bytes in patterns and texts. */
Test(regex, nul_bytes)
{
    eng_regex_t *re = eng_regex_compile("a\0b", 3, 0, NULL, 0, NULL);
    cr_assert_not_null(re);
    cr_expect(eng_regex_match(re, "xa\0b", 4));
    cr_expect_not(eng_regex_match(re, "xa", 2));
    cr_expect_not(eng_regex_match(re, "ab", 2));
    eng_regex_destroy(&re);

    cr_expect(s_search_len("a.b$", 0, "a\0b", 3));
    cr_expect_not(s_search_len("a.b$", 0, "a\0b\0", 4));
    cr_expect(s_search_len("a.b$", 0, "a\0bxyz", 3)); /* the length ends the text */
    cr_expect(s_search_len("\\x00", 0, "ab\0", 3));
    cr_expect_not(s_search_len("\\x00", 0, "ab", 2));
    cr_expect(s_search_len("a[^b]c", 0, "a\0c", 3));
}

Test(regex, null_and_empty_inputs)
{
    eng_regex_t *re = s_compile_ok("^$", 0);
    cr_expect(eng_regex_match(re, NULL, 0));
    cr_expect(eng_regex_match(re, "", 0));
    eng_regex_destroy(&re);
    cr_expect_null(re);
    eng_regex_destroy(&re); /* idempotent */
    eng_regex_destroy(NULL);
    cr_expect_not(eng_regex_match(NULL, "abc", 3));
    cr_expect_eq(eng_regex_states(NULL), 0);

    re = s_compile_ok("a", 0);
    cr_expect_not(eng_regex_match(re, NULL, 5));
    eng_regex_destroy(&re);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const char *pat; /* pattern */
    int flags;       /* flags given */
    int off;         /* expected error offset */
    const char *msg; /* expected part of the message */
} s_err_t;

static const s_err_t s_errors[] = {
    {"", 0, 0, "empty pattern"},
    {"abc", 4, 0, "unknown regex flags"},
    {"(", 0, 0, "never closed"},
    {"ab(cd", 0, 2, "never closed"},
    {"((a)", 0, 0, "never closed"},
    {"(?:a", 0, 0, "never closed"},
    {"a)b", 0, 1, "')' without a matching '('"},
    {"(a))", 0, 3, "')' without a matching '('"},
    {")", 0, 0, "')' without a matching '('"},
    {"[abc", 0, 0, "unterminated character class"},
    {"x[]", 0, 1, "unterminated character class"},
    {"x[^]", 0, 1, "unterminated character class"},
    {"[a-", 0, 0, "unterminated character class"},
    {"[z-a]", 0, 1, "bad class range z-a: its start is after its end"},
    {"x[b-a]", I, 2, "bad class range b-a"},
    {"[\\x42-\\x41]", 0, 1, "bad class range \\x42-\\x41"},
    {"[\\d-z]", 0, 1, "cannot start with a class escape"},
    {"[a-\\w]", 0, 1, "cannot end in a class escape"},
    {"[[:foo:]]", 0, 1, "unknown POSIX class '[:foo:]'"},
    {"[[:alpha]", 0, 1, "unterminated POSIX class"},
    {"[[.a.]]", 0, 1, "collating elements"},
    {"[[=a=]]", 0, 1, "collating elements"},
    {"[\\b]", 0, 1, "not allowed in a character class"},
    {"[\\q]", 0, 1, "unknown escape \\q"},
    {"*a", 0, 0, "nothing to repeat"},
    {"a|*b", 0, 2, "nothing to repeat"},
    {"(+a)", 0, 1, "nothing to repeat"},
    {"?", 0, 0, "nothing to repeat"},
    {"{2}", 0, 0, "nothing to repeat"},
    {"a|{", 0, 2, "nothing to repeat"},
    {"^*", 0, 1, "anchor"},
    {"a$+", 0, 2, "anchor"},
    {"\\b+", 0, 2, "anchor"},
    {"\\B{2}", 0, 2, "anchor"},
    {"a**", 0, 2, "follows another quantifier"},
    {"a+*", 0, 2, "follows another quantifier"},
    {"a???", 0, 3, "follows another quantifier"},
    {"a*?+", 0, 3, "follows another quantifier"},
    {"a{2}{3}", 0, 4, "follows another quantifier"},
    {"a{x}", 0, 2, "bad repetition"},
    {"a{,2}", 0, 2, "bad repetition"},
    {"a{", 0, 2, "bad repetition"},
    {"a{2", 0, 3, "expected '}'"},
    {"a{2,3", 0, 5, "expected '}'"},
    {"a{2,x}", 0, 4, "expected '}'"},
    {"a{3,2}", 0, 1, "minimum above its maximum"},
    {"a{1001}", 0, 1, "above 1000"},
    {"a{0,1001}", 0, 1, "above 1000"},
    {"a{99999999999999999999}", 0, 1, "above 1000"},
    {"\\q", 0, 0, "unknown escape \\q"},
    {"ab\\Z", 0, 2, "unknown escape \\Z"},
    {"x\\\xc3\xa9", 0, 1, "unknown escape: backslash before byte 0xc3"},
    {"\\\x01", 0, 0, "backslash before byte 0x01"},
    {"ab\\1", 0, 2, "backreferences"},
    {"\\0", 0, 0, "backreferences"},
    {"abc\\", 0, 3, "trailing backslash"},
    {"[a\\", 0, 2, "trailing backslash"},
    {"\\xZZ", 0, 0, "two hex digits"},
    {"\\x4", 0, 0, "two hex digits"},
    {"(?=a)", 0, 0, "only (?:...)"},
    {"x(?<n>a)", 0, 1, "only (?:...)"},
    {"(?i)a", 0, 0, "only (?:...)"},
    {"[a-z]{2,600}", 0, 5, "more than 1024 NFA states"},
    {"(\\w+\\s+){400}", 0, 8, "more than 1024 NFA states"},
    {"(a{30}){40}", 0, 7, "more than 1024 NFA states"},
    {"x(a{30}){0,40}", 0, 8, "more than 1024 NFA states"},
    {"(\\b){1000}b{100}", 0, 11, "more than 1024 NFA states"},
};

Test(regex, errors_are_located)
{
    for (size_t i = 0; i < sizeof(s_errors) / sizeof(s_errors[0]); i++) {
        const s_err_t *c = &s_errors[i];
        char err[160] = "unchanged";
        int off = -7;
        size_t len = strlen(c->pat);
        eng_regex_t *re = eng_regex_compile(c->pat, len, c->flags, err, sizeof(err), &off);
        cr_expect_null(re, "case %zu: /%s/ should not compile", i, c->pat);
        eng_regex_destroy(&re);
        cr_expect_eq(off, c->off, "case %zu: /%s/: offset %d, expected %d (%s)", i, c->pat, off,
                     c->off, err);
        cr_expect(off >= 0 && (size_t)off <= len, "case %zu: offset %d out of the pattern", i, off);
        cr_expect(strstr(err, c->msg) != NULL, "case %zu: /%s/: message \"%s\" lacks \"%s\"", i,
                  c->pat, err, c->msg);
    }
}

/* eng_regex_check, which a rejected policy's regexes get, finds each error compiling finds, at
 * the same place, and passes what compiles. */
Test(regex, check_finds_what_compile_finds)
{
    for (size_t i = 0; i < sizeof(s_errors) / sizeof(s_errors[0]); i++) {
        const s_err_t *c = &s_errors[i];
        char err[160] = "unchanged", cerr[160] = "unchanged";
        int off = -7, coff = -7;
        size_t len = strlen(c->pat);
        eng_regex_t *re = eng_regex_compile(c->pat, len, c->flags, err, sizeof(err), &off);
        eng_regex_destroy(&re);
        cr_expect_eq(eng_regex_check(c->pat, len, c->flags, cerr, sizeof(cerr), &coff), -1,
                     "case %zu: /%s/ should fail the check", i, c->pat);
        cr_expect_eq(coff, off, "case %zu: /%s/: offset %d, compile's %d", i, c->pat, coff, off);
        cr_expect_str_eq(cerr, err, "case %zu: /%s/", i, c->pat);
    }
    for (size_t i = 0; i < sizeof(s_cases) / sizeof(s_cases[0]); i++) {
        char cerr[160] = "unchanged";
        int coff = -7;
        const char *pat = s_cases[i].pat;
        cr_expect_eq(eng_regex_check(pat, strlen(pat), s_cases[i].flags, cerr, sizeof(cerr), &coff),
                     0, "/%s/: %s", pat, cerr);
        cr_expect_eq(coff, -1);
        cr_expect_str_eq(cerr, "");
    }
}

/* The state limit: errors point at the element that crossed it. */
Test(regex, state_limit)
{
    /* \w{1,300}: one SET, then 299 times SPLIT + SET, then MATCH */
    eng_regex_t *re = s_compile_ok("\\w{1,300}", 0);
    cr_expect_eq(eng_regex_states(re), 600);
    eng_regex_destroy(&re);

    /* a{1000} is 1000 states; with the MATCH state 23 more bytes fit, the 24th does not. */
    char pat[64];
    snprintf(pat, sizeof(pat), "a{1000}%s", "bcdefghijklmnopqrstuvwx");
    re = s_compile_ok(pat, 0);
    cr_expect_eq(eng_regex_states(re), ENG_REGEX_MAX_STATES);
    cr_expect(eng_regex_match(re, "", 0) == false);
    eng_regex_destroy(&re);
    snprintf(pat, sizeof(pat), "a{1000}%s", "bcdefghijklmnopqrstuvwxy");
    int off = 0;
    char err[128];
    re = eng_regex_compile(pat, strlen(pat), 0, err, sizeof(err), &off);
    cr_expect_null(re);
    cr_expect_eq(off, 30, "offset %d: %s", off, err);

    /* Alternation: k branches cost 3k - 2 states; the 342nd crosses 1023 at its '|'. */
    char alt[1024];
    size_t n = 0;
    for (int k = 0; k < 400; k++) {
        if (k) {
            alt[n++] = '|';
        }
        alt[n++] = 'a';
    }
    re = eng_regex_compile(alt, n, 0, err, sizeof(err), &off);
    cr_expect_null(re);
    cr_expect_eq(off, 681, "offset %d: %s", off, err);
    re = eng_regex_compile(alt, 681, 0, err, sizeof(err), &off);
    cr_expect_not_null(re, "341 branches should fit: %s", err);
    cr_expect(eng_regex_match(re, "xa", 2));
    eng_regex_destroy(&re);

    /* Empty repetitions cost nothing, however deep. */
    re = s_compile_ok("((((){1000}){1000}){1000}){1000}x", 0);
    cr_expect_eq(eng_regex_states(re), 2);
    cr_expect(eng_regex_match(re, "x", 1));
    eng_regex_destroy(&re);
}

Test(regex, other_limits)
{
    char pat[ENG_REGEX_MAX_LEN + 2];
    char err[128];
    int off = 0;

    /* nesting */
    size_t n = 0;
    for (int i = 0; i < ENG_REGEX_MAX_DEPTH + 1; i++) {
        pat[n++] = '(';
    }
    pat[n++] = 'a';
    for (int i = 0; i < ENG_REGEX_MAX_DEPTH + 1; i++) {
        pat[n++] = ')';
    }
    eng_regex_t *re = eng_regex_compile(pat, n, 0, err, sizeof(err), &off);
    cr_expect_null(re);
    cr_expect_eq(off, ENG_REGEX_MAX_DEPTH);
    cr_expect(strstr(err, "nested deeper") != NULL, "%s", err);
    re = eng_regex_compile(pat + 1, n - 2, 0, err, sizeof(err), &off);
    cr_expect_not_null(re, "%d levels should be accepted: %s", ENG_REGEX_MAX_DEPTH, err);
    cr_expect(eng_regex_match(re, "a", 1));
    eng_regex_destroy(&re);

    /* length: empty groups cost no state, so only the length limit stops this one */
    memset(pat, 0, sizeof(pat));
    for (size_t i = 0; i + 1 < sizeof(pat); i += 2) {
        pat[i] = '(';
        pat[i + 1] = ')';
    }
    re = eng_regex_compile(pat, ENG_REGEX_MAX_LEN + 1, 0, err, sizeof(err), &off);
    cr_expect_null(re);
    cr_expect_eq(off, ENG_REGEX_MAX_LEN);
    cr_expect(strstr(err, "longer than") != NULL, "%s", err);
    re = eng_regex_compile(pat, ENG_REGEX_MAX_LEN, 0, err, sizeof(err), &off);
    cr_expect_not_null(re, "%s", err);
    cr_expect(eng_regex_match(re, "", 0));
    eng_regex_destroy(&re);

    /* NULL buffers and truncation */
    cr_expect_null(eng_regex_compile("(", 1, 0, NULL, 0, NULL));
    char small[8];
    cr_expect_null(eng_regex_compile("(", 1, 0, small, sizeof(small), &off));
    cr_expect_eq(strlen(small), sizeof(small) - 1);
    cr_expect_null(eng_regex_compile(NULL, 3, 0, err, sizeof(err), &off));
    cr_expect_eq(off, 0);
}

/* ------------------------------------------------------------------------------------------ */

static char *s_repeat_text(const char *unit, size_t times, const char *tail)
{
    size_t u = strlen(unit);
    size_t t = strlen(tail);
    char *s = malloc(u * times + t + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i < times; i++) {
        memcpy(s + i * u, unit, u);
    }
    memcpy(s + u * times, tail, t + 1);
    return s;
}

typedef struct {
    const char *pat;  /* pattern */
    const char *unit; /* text: unit repeated */
    size_t times;     /* this many times */
    const char *tail; /* then this */
    bool expect;      /* expected answer */
} s_patho_t;

/* Exponential for backtracking matchers; linear here. Only the answers are checked. */
static const s_patho_t s_patho[] = {
    {"(a*)*b", "a", 100000, "", false},
    {"(a*)*b", "a", 100000, "b", true},
    {"(a|a)*c", "a", 100000, "", false},
    {"(a|aa)+$", "a", 100000, "", true},
    {"^(a|aa)+$", "a", 100000, "!", false},
    {"(x+x+)+y", "x", 50000, "", false},
    {"^(\\w+\\s?)*$", "ab ", 30000, "!", false},
    {"^(\\w+\\s?)*$", "ab ", 30000, "z", true},
    {"(.*){20}z", "abc", 20000, "", false},
    {"(a?){300}a{300}", "a", 300, "", true},
    {"^(a?){300}a{300}$", "a", 299, "", false},
    {"(a|b|ab)*c", "ab", 50000, "", false},
    {"\\bcontract\\s+\\w+\\s*\\{", "contract x ", 20000, "", false},
    {"([a-z]+)*[0-9]", "abcdefgh", 20000, "9", true},
};

Test(regex, pathological_patterns_are_linear, .timeout = 60)
{
    for (size_t i = 0; i < sizeof(s_patho) / sizeof(s_patho[0]); i++) {
        const s_patho_t *c = &s_patho[i];
        char *text = s_repeat_text(c->unit, c->times, c->tail);
        cr_expect_eq(s_search(c->pat, 0, text), c->expect, "case %zu: /%s/", i, c->pat);
        free(text);
    }
}

/* Matching only reads the compiled regex: many threads may share one. */
typedef struct {
    const eng_regex_t *re[2]; /* shared: one per matcher */
    int mismatches;           /* answers that differ from the expected ones */
} s_thread_arg_t;

static const char *s_thread_texts[] = {
    "pragma solidity ^0.8.0;", "contract Foo {", "just chat", "CONTRACT   Bar{", "subcontract X {",
};
static const bool s_thread_expect[] = {true, true, false, true, false};

static void *s_thread_main(void *arg)
{
    s_thread_arg_t *a = arg;
    for (int round = 0; round < 2000; round++) {
        for (size_t k = 0; k < 5; k++) {
            const char *t = s_thread_texts[k];
            for (int m = 0; m < 2; m++) {
                if (eng_regex_match(a->re[m], t, strlen(t)) != s_thread_expect[k]) {
                    a->mismatches++;
                }
            }
        }
    }
    return NULL;
}

Test(regex, concurrent_matching)
{
    const char *pat = "pragma\\s+solidity|\\bcontract\\s+\\w+\\s*\\{";
    eng_regex_t *re = s_compile_ok(pat, I);
    eng_regex_t *slow = s_compile_slow(pat, I);
    cr_assert_not_null(slow);
    pthread_t th[4];
    s_thread_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i].re[0] = re;
        args[i].re[1] = slow;
        args[i].mismatches = 0;
        cr_assert_eq(pthread_create(&th[i], NULL, s_thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(args[i].mismatches, 0, "thread %d", i);
    }
    eng_regex_destroy(&re);
    eng_regex_destroy(&slow);
}

/* ------------------------------------------------------------------------------------------
 * Differential test against POSIX regexec. Random patterns use only syntax on which both agree:
 * literals, '.', classes with ranges and POSIX names, groups, '|', * + ?, bounds, anchors and the
 * GNU escapes \w \W \s \S \b \B (supported by the C library's regcomp). Texts contain no newline
 * (our '.' excludes it, POSIX's does not) and no NUL (regexec needs a C string).
 */

typedef struct {
    uint64_t state; /* xorshift64* state */
    char buf[512];  /* pattern being generated */
    size_t n;       /* its length */
} s_gen_t;

static uint32_t s_rand(s_gen_t *g, uint32_t bound)
{
    g->state ^= g->state >> 12;
    g->state ^= g->state << 25;
    g->state ^= g->state >> 27;
    return (uint32_t)((g->state * UINT64_C(2685821657736338717)) >> 33) % bound;
}

static void s_put_str(s_gen_t *g, const char *s)
{
    size_t l = strlen(s);
    if (g->n + l < sizeof(g->buf)) {
        memcpy(g->buf + g->n, s, l);
        g->n += l;
    }
}

static void s_put_pick(s_gen_t *g, const char *const *items, uint32_t count)
{
    s_put_str(g, items[s_rand(g, count)]);
}

#define S_PICK(g, arr) s_put_pick((g), (arr), sizeof(arr) / sizeof((arr)[0]))

static const char *const s_g_lits[] = {"a", "b", "c", "A", "B", "x", "_", " ", "-", "1"};
static const char *const s_g_items[] = {
    "a",         "b",         "c",         "A",         "B",         "x",         "_",
    " ",         ".",         "1",         "a-c",       "A-C",       "0-9",       "b-x",
    "[:alpha:]", "[:digit:]", "[:upper:]", "[:lower:]", "[:space:]", "[:punct:]", "[:alnum:]"};
static const char *const s_g_escapes[] = {"\\w", "\\W", "\\s", "\\S", "\\.", "\\*", "\\+", "\\("};
static const char *const s_g_quants[] = {"*",     "+",    "?",    "{2}",  "{0,1}",
                                         "{1,3}", "{0,}", "{2,}", "{0,2}"};

static void s_gen_alt(s_gen_t *g, int depth);

static void s_gen_class(s_gen_t *g)
{
    s_put_str(g, s_rand(g, 4) == 0 ? "[^" : "[");
    uint32_t k = 1 + s_rand(g, 3);
    for (uint32_t i = 0; i < k; i++) {
        S_PICK(g, s_g_items);
    }
    s_put_str(g, "]");
}

/* One atom, possibly quantified. */
static void s_gen_piece(s_gen_t *g, int depth)
{
    uint32_t r = s_rand(g, 22);
    bool assertion = false;
    if (r < 9) {
        S_PICK(g, s_g_lits);
    } else if (r < 10) {
        s_put_str(g, ".");
    } else if (r < 13) {
        s_gen_class(g);
    } else if (r < 16 && depth < 3) {
        s_put_str(g, "(");
        s_gen_alt(g, depth + 1);
        s_put_str(g, ")");
    } else if (r < 18) {
        S_PICK(g, s_g_escapes);
    } else if (depth == 0) {
        /* The C library mishandles assertions inside repeated groups: (a\b){2} matches "aa",
         * ($|-{2}){2} matches "x--". So they appear only outside groups; the table covers
         * them inside. */
        static const char *const as[] = {"^", "$", "\\b", "\\B"};
        S_PICK(g, as);
        assertion = true;
    } else {
        S_PICK(g, s_g_lits);
    }
    if (!assertion && s_rand(g, 3) == 0) {
        S_PICK(g, s_g_quants);
    }
}

static void s_gen_alt(s_gen_t *g, int depth)
{
    uint32_t branches = s_rand(g, 5) == 0 ? 2 + s_rand(g, 2) : 1;
    for (uint32_t b = 0; b < branches; b++) {
        if (b) {
            s_put_str(g, "|");
        }
        uint32_t pieces = 1 + s_rand(g, 4);
        for (uint32_t i = 0; i < pieces; i++) {
            s_gen_piece(g, depth);
        }
    }
}

Test(regex, differential_against_posix_regexec)
{
    static const char alphabet[] = "abcABCx_ -.1*(+\t";
    s_gen_t g = {.state = UINT64_C(0x9e3779b97f4a7c15), .n = 0};
    int compared = 0;
    int matched = 0;
    for (int i = 0; i < 4000; i++) {
        g.n = 0;
        s_gen_alt(&g, 0);
        g.buf[g.n] = '\0';
        int flags = s_rand(&g, 4) == 0 ? ENG_REGEX_ICASE : 0;

        char err[160];
        int off;
        eng_regex_t *re = eng_regex_compile(g.buf, g.n, flags, err, sizeof(err), &off);
        cr_assert_not_null(re, "/%s/ rejected at %d: %s", g.buf, off, err);
        eng_regex_t *slow = s_compile_slow(g.buf, flags);
        cr_assert_not_null(slow);
        eng_regex_t *nfa = eng_regex_compile(g.buf, g.n, flags | ENG_REGEX_NO_DFA, NULL, 0, NULL);
        cr_assert_not_null(nfa);
        regex_t px;
        int prc = regcomp(&px, g.buf, REG_EXTENDED | REG_NOSUB | (flags ? REG_ICASE : 0));
        cr_assert_eq(prc, 0, "regcomp rejected /%s/", g.buf);

        for (int t = 0; t < 12; t++) {
            char text[16];
            uint32_t len = s_rand(&g, sizeof(text));
            for (uint32_t k = 0; k < len; k++) {
                text[k] = alphabet[s_rand(&g, sizeof(alphabet) - 1)];
            }
            text[len] = '\0';
            bool want = regexec(&px, text, 0, NULL, 0) == 0;
            bool got = eng_regex_match(re, text, len);
            cr_assert_eq(got, want, "/%s/%s on \"%s\": regexec says %d, we say %d", g.buf,
                         flags ? "i" : "", text, want, got);
            got = eng_regex_match(slow, text, len);
            cr_assert_eq(got, want, "/%s/%s on \"%s\": regexec says %d, list matcher %d", g.buf,
                         flags ? "i" : "", text, want, got);
            got = eng_regex_match(nfa, text, len);
            cr_assert_eq(got, want, "/%s/%s on \"%s\": regexec says %d, without DFA %d", g.buf,
                         flags ? "i" : "", text, want, got);
            compared++;
            matched += want;
        }
        regfree(&px);
        eng_regex_destroy(&re);
        eng_regex_destroy(&slow);
        eng_regex_destroy(&nfa);
    }
    /* The generator must exercise both answers, or the comparison proves little. */
    cr_expect_gt(matched, compared / 10, "%d of %d matched", matched, compared);
    cr_expect_lt(matched, compared - compared / 10, "%d of %d matched", matched, compared);
}

/* \d has no POSIX spelling: check it against [0-9] on the same random texts. */
Test(regex, digit_escape_equals_range)
{
    static const char *const pairs[][2] = {
        {"\\d+x", "[0-9]+x"}, {"^\\D*$", "^[^0-9]*$"}, {"a\\d{2}", "a[0-9]{2}"},
        {"[\\dx]", "[0-9x]"}, {"[^\\d]", "[^0-9]"},
    };
    s_gen_t g = {.state = 42, .n = 0};
    for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
        eng_regex_t *a = s_compile_ok(pairs[p][0], 0);
        eng_regex_t *b = s_compile_ok(pairs[p][1], 0);
        for (int t = 0; t < 500; t++) {
            char text[12];
            uint32_t len = s_rand(&g, sizeof(text));
            for (uint32_t k = 0; k < len; k++) {
                text[k] = "0123456789ax"[s_rand(&g, 12)];
            }
            cr_assert_eq(eng_regex_match(a, text, len), eng_regex_match(b, text, len),
                         "/%s/ vs /%s/ on \"%.*s\"", pairs[p][0], pairs[p][1], (int)len, text);
        }
        eng_regex_destroy(&a);
        eng_regex_destroy(&b);
    }
}
