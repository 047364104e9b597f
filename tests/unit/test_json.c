/* test_json.c - the tape JSON reader: values and accessors, iteration,
 * spans, every refusal with its line and column, the depth and duplicate
 * key limits, reuse of one document, and a table of tricky inputs that
 * must load exactly as jansson loads them. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/json_diff.h"
#include "oai_json.h"

static oai_jdoc_t *s_d;
static oai_jerr_t s_err;

static void s_setup(void)
{
    s_d = oai_jdoc_new();
    cr_assert_not_null(s_d);
    memset(&s_err, 0, sizeof s_err);
}

static void s_teardown(void)
{
    oai_jdoc_destroy(&s_d);
    oai_jdoc_destroy(&s_d); /* idempotent */
    cr_assert_null(s_d);
}

TestSuite(json, .init = s_setup, .fini = s_teardown);

/* Parses the first len bytes of text from a heap copy of exactly len bytes
 * (no NUL after it), so that ASan catches any read past the end. */
static oai_jv_t s_parse_n(const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, text, len);
    oai_jv_t root = oai_jdoc_parse(s_d, copy, len, &s_err);
    free(copy);
    return root;
}

static oai_jv_t s_ok(const char *text)
{
    oai_jv_t root = s_parse_n(text, strlen(text));
    cr_assert_neq(root, OAI_JNONE, "refused: %s at %d:%d (%s)", s_err.text, s_err.line,
                  s_err.column, text);
    return root;
}

static void s_refused_n(const char *text, size_t len, const char *msg, int line, int column)
{
    oai_jv_t root = s_parse_n(text, len);
    cr_assert_eq(root, OAI_JNONE, "accepted: %.*s", (int)len, text);
    cr_assert_str_eq(s_err.text, msg, "for %.*s", (int)len, text);
    cr_assert_eq(s_err.line, line, "line %d, want %d: %.*s", s_err.line, line, (int)len, text);
    cr_assert_eq(s_err.column, column, "column %d, want %d: %.*s", s_err.column, column, (int)len,
                 text);
    cr_assert_leq(s_err.offset, len);
}

static void s_refused(const char *text, const char *msg, int line, int column)
{
    s_refused_n(text, strlen(text), msg, line, column);
}

static bool s_str_is(oai_jv_t v, const char *want)
{
    size_t len;
    const char *s = oai_jstr(s_d, v, &len);
    return s && len == strlen(want) && strcmp(s, want) == 0;
}

/* Values and accessors ---------------------------------------------------- */

Test(json, scalars_have_their_type_and_value)
{
    cr_assert_eq(oai_jtype(s_d, s_ok("null")), OAI_J_NULL);
    cr_assert_eq(oai_jtype(s_d, s_ok("true")), OAI_J_TRUE);
    cr_assert_eq(oai_jtype(s_d, s_ok("false")), OAI_J_FALSE);

    oai_jv_t v = s_ok("42");
    cr_assert(oai_jis(s_d, v, OAI_J_INT));
    cr_assert_eq(oai_jint(s_d, v), 42);
    cr_assert_eq(oai_jnum(s_d, v), 42.0);
    v = s_ok("-7");
    cr_assert_eq(oai_jint(s_d, v), -7);
    v = s_ok("-0");
    cr_assert(oai_jis(s_d, v, OAI_J_INT), "-0 is an integer, as in jansson");
    cr_assert_eq(oai_jint(s_d, v), 0);

    v = s_ok("1.5");
    cr_assert(oai_jis(s_d, v, OAI_J_REAL));
    cr_assert_eq(oai_jnum(s_d, v), 1.5);
    cr_assert_eq(oai_jint(s_d, v), 0, "not an integer");
    cr_assert_eq(oai_jnum(s_d, s_ok("-2.5e-3")), -2.5e-3);
    v = s_ok("1E+2");
    cr_assert(oai_jis(s_d, v, OAI_J_REAL), "an exponent makes a real");
    cr_assert_eq(oai_jnum(s_d, v), 100.0);
    cr_assert_eq(oai_jnum(s_d, s_ok("0.1")), strtod("0.1", NULL));

    v = s_ok("\"hi\"");
    cr_assert(s_str_is(v, "hi"));
    cr_assert_eq(oai_jsize(s_d, v), 0);
    cr_assert_eq(oai_jfirst(s_d, v), OAI_JNONE);
    cr_assert_eq(oai_jnext(s_d, v), OAI_JNONE, "the root has no sibling");
    cr_assert_eq(oai_jnum(s_d, v), 0);
}

Test(json, integer_limits_and_real_edges)
{
    cr_assert_eq(oai_jint(s_d, s_ok("9223372036854775807")), INT64_MAX);
    cr_assert_eq(oai_jint(s_d, s_ok("-9223372036854775808")), INT64_MIN);
    cr_assert_eq(oai_jint(s_d, s_ok("[1000000000000000000]") + 1), 1000000000000000000);

    oai_jv_t v = s_ok("1e-400");
    cr_assert(oai_jis(s_d, v, OAI_J_REAL));
    cr_assert_eq(oai_jnum(s_d, v), 0.0, "underflow is 0, not an error");
    v = s_ok("-0.0");
    cr_assert(signbit(oai_jnum(s_d, v)));
    cr_assert_eq(oai_jnum(s_d, s_ok("1.7976931348623157e308")), 1.7976931348623157e308);
    cr_assert_eq(oai_jnum(s_d, s_ok("4.9e-324")), 4.9e-324);
    /* Twenty digits overflow int64 but are fine as a real. */
    cr_assert_eq(oai_jnum(s_d, s_ok("12345678901234567890.0")), 12345678901234567890.0);
}

Test(json, long_numbers_are_read_whole)
{
    /* Longer than the stack copy: strtod gets the text from the arena. */
    char big[400];
    snprintf(big, sizeof big, "1%0300d.5", 0); /* 1e300 + 0.5 */
    char buf[4200];
    size_t n = (size_t)snprintf(buf, sizeof buf, "[\"pad\",0.");
    memset(buf + n, '0', 3000);
    n += 3000;
    snprintf(buf + n, sizeof buf - n, "1,%s]", big);
    oai_jv_t root = s_ok(buf);
    cr_assert_eq(oai_jnum(s_d, oai_jat(s_d, root, 1)), 0.0, "1e-3001 underflows to 0");
    cr_assert_eq(oai_jnum(s_d, oai_jat(s_d, root, 2)), strtod(big, NULL));
    cr_assert_gt(oai_jnum(s_d, oai_jat(s_d, root, 2)), 9.9e299);
    cr_assert(s_str_is(oai_jat(s_d, root, 0), "pad"), "the arena scratch did not clobber strings");

    s_refused("[123456789012345678901234]", "too big integer", 1, 2);
}

Test(json, type_names)
{
    static const struct {
        oai_jtype_t t;
        const char *name;
    } names[] = {
        {OAI_J_NONE, "nothing"},  {OAI_J_NULL, "null"},   {OAI_J_FALSE, "false"},
        {OAI_J_TRUE, "true"},     {OAI_J_INT, "integer"}, {OAI_J_REAL, "real"},
        {OAI_J_STRING, "string"}, {OAI_J_ARRAY, "array"}, {OAI_J_OBJECT, "object"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cr_assert_str_eq(oai_jtype_name(names[i].t), names[i].name);
    }
    cr_assert_str_eq(oai_jtype_name((oai_jtype_t)99), "nothing");
}

Test(json, accessors_accept_none_and_wrong_types)
{
    oai_jv_t root = s_ok("{\"s\":\"x\",\"a\":[1],\"n\":3}");
    oai_jv_t s = oai_jget(s_d, root, "s"), a = oai_jget(s_d, root, "a");
    size_t len = 99;

    cr_assert_eq(oai_jtype(s_d, OAI_JNONE), OAI_J_NONE);
    cr_assert_null(oai_jstr(s_d, OAI_JNONE, &len));
    cr_assert_eq(len, 0);
    len = 99;
    cr_assert_null(oai_jstr(s_d, a, &len), "an array is not a string");
    cr_assert_eq(len, 0);
    cr_assert_null(oai_jstr(s_d, root, NULL));
    cr_assert_eq(oai_jint(s_d, s), 0);
    cr_assert_eq(oai_jnum(s_d, s), 0);
    cr_assert_eq(oai_jsize(s_d, s), 0);
    cr_assert_eq(oai_jfirst(s_d, OAI_JNONE), OAI_JNONE);
    cr_assert_eq(oai_jnext(s_d, OAI_JNONE), OAI_JNONE);
    cr_assert_eq(oai_jval(OAI_JNONE), OAI_JNONE);
    cr_assert_eq(oai_jget(s_d, a, "s"), OAI_JNONE, "not an object");
    cr_assert_eq(oai_jget(s_d, OAI_JNONE, "s"), OAI_JNONE);
    cr_assert_eq(oai_jget(s_d, root, NULL), OAI_JNONE);
    cr_assert_eq(oai_jat(s_d, root, 0), OAI_JNONE, "not an array");
    cr_assert_eq(oai_jat(s_d, OAI_JNONE, 0), OAI_JNONE);
    /* Chained lookups need no checks in between. */
    cr_assert_eq(oai_jint(s_d, oai_jat(s_d, oai_jget(s_d, oai_jget(s_d, root, "x"), "y"), 3)), 0);
    /* A handle past the last node answers as absent. */
    cr_assert_eq(oai_jtype(s_d, 1000), OAI_J_NONE);
    cr_assert_eq(oai_jnext(s_d, 1000), OAI_JNONE);

    size_t start = 7, end = 7;
    oai_jspan(s_d, OAI_JNONE, &start, &end);
    cr_assert_eq(start, 0);
    cr_assert_eq(end, 0);
}

/* Iteration --------------------------------------------------------------- */

Test(json, arrays_iterate_in_order)
{
    oai_jv_t root = s_ok("[1,\"two\",[3,[]],{\"four\":4},null]");
    cr_assert(oai_jis(s_d, root, OAI_J_ARRAY));
    cr_assert_eq(oai_jsize(s_d, root), 5);

    oai_jtype_t want[] = {OAI_J_INT, OAI_J_STRING, OAI_J_ARRAY, OAI_J_OBJECT, OAI_J_NULL};
    size_t i = 0;
    for (oai_jv_t e = oai_jfirst(s_d, root); e != OAI_JNONE; e = oai_jnext(s_d, e), i++) {
        cr_assert_lt(i, 5);
        cr_assert_eq(oai_jtype(s_d, e), want[i], "element %zu", i);
        cr_assert_eq(oai_jat(s_d, root, i), e);
    }
    cr_assert_eq(i, 5);
    cr_assert_eq(oai_jat(s_d, root, 5), OAI_JNONE);
    cr_assert_eq(oai_jat(s_d, root, SIZE_MAX), OAI_JNONE);

    oai_jv_t inner = oai_jat(s_d, root, 2);
    cr_assert_eq(oai_jsize(s_d, inner), 2);
    cr_assert_eq(oai_jint(s_d, oai_jfirst(s_d, inner)), 3);
    oai_jv_t empty = oai_jat(s_d, inner, 1);
    cr_assert(oai_jis(s_d, empty, OAI_J_ARRAY));
    cr_assert_eq(oai_jsize(s_d, empty), 0);
    cr_assert_eq(oai_jfirst(s_d, empty), OAI_JNONE);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, oai_jat(s_d, root, 3), "four")), 4);

    root = s_ok("[]");
    cr_assert_eq(oai_jsize(s_d, root), 0);
    cr_assert_eq(oai_jfirst(s_d, root), OAI_JNONE);
    cr_assert_eq(oai_jat(s_d, root, 0), OAI_JNONE);
}

Test(json, objects_iterate_keys_then_values)
{
    oai_jv_t root = s_ok("{\"model\":\"m\",\"n\":2,\"deep\":{\"x\":[true]},\"z\":{}}");
    cr_assert(oai_jis(s_d, root, OAI_J_OBJECT));
    cr_assert_eq(oai_jsize(s_d, root), 4);

    const char *keys[] = {"model", "n", "deep", "z"};
    size_t i = 0;
    for (oai_jv_t k = oai_jfirst(s_d, root); k != OAI_JNONE; k = oai_jnext(s_d, oai_jval(k)), i++) {
        cr_assert_lt(i, 4);
        cr_assert(s_str_is(k, keys[i]), "key %zu", i);
        cr_assert_eq(oai_jnext(s_d, k), oai_jval(k), "a key chains to its value");
        cr_assert_eq(oai_jget(s_d, root, keys[i]), oai_jval(k));
    }
    cr_assert_eq(i, 4);
    cr_assert(s_str_is(oai_jget(s_d, root, "model"), "m"));
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "n")), 2);
    oai_jv_t x = oai_jget(s_d, oai_jget(s_d, root, "deep"), "x");
    cr_assert_eq(oai_jtype(s_d, oai_jfirst(s_d, x)), OAI_J_TRUE);
    oai_jv_t z = oai_jget(s_d, root, "z");
    cr_assert(oai_jis(s_d, z, OAI_J_OBJECT));
    cr_assert_eq(oai_jsize(s_d, z), 0);
    cr_assert_eq(oai_jfirst(s_d, z), OAI_JNONE);
    cr_assert_eq(oai_jnext(s_d, z), OAI_JNONE, "the last value ends the chain");

    cr_assert_eq(oai_jget(s_d, root, "mode"), OAI_JNONE, "a prefix is not a match");
    cr_assert_eq(oai_jget(s_d, root, "models"), OAI_JNONE);
    cr_assert_eq(oai_jget(s_d, root, ""), OAI_JNONE);
    cr_assert_eq(oai_jget(s_d, root, "x"), OAI_JNONE, "only direct members");

    root = s_ok("{}");
    cr_assert_eq(oai_jsize(s_d, root), 0);
    cr_assert_eq(oai_jfirst(s_d, root), OAI_JNONE);
    cr_assert_eq(oai_jget(s_d, root, "a"), OAI_JNONE);
}

Test(json, get_compares_unescaped_keys)
{
    oai_jv_t root = s_ok("{\"a\\\"b\":1,\"\\u00e9t\\u00E9\":2,\"tab\\there\":3,"
                         "\"\\ud83d\\ude00\":4,\"sl\\/ash\":5,\"\":6,\"\xc3\xa9\":7}");
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "a\"b")), 1);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "\xc3\xa9t\xc3\xa9")), 2);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "tab\there")), 3);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "\xf0\x9f\x98\x80")), 4);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "sl/ash")), 5);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "")), 6);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "\xc3\xa9")), 7);
    cr_assert_eq(oai_jget(s_d, root, "a\\\"b"), OAI_JNONE, "the escaped form is not the key");
}

/* Strings ----------------------------------------------------------------- */

Test(json, strings_are_unescaped_and_nul_terminated)
{
    oai_jv_t root = s_ok("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\","
                         "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\",\"\\u0001\x7f\","
                         "\"\"]");
    size_t len;
    const char *s = oai_jstr(s_d, oai_jat(s_d, root, 0), &len);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(s, "\"\\/\b\f\n\r\t", 9), 0, "with its NUL");
    cr_assert(s_str_is(oai_jat(s_d, root, 1), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    cr_assert(
        s_str_is(oai_jat(s_d, root, 2), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
    cr_assert(s_str_is(oai_jat(s_d, root, 3), "\x01\x7f"), "escaped controls and DEL are fine");
    s = oai_jstr(s_d, oai_jat(s_d, root, 4), &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, 0);
    cr_assert_eq(s[0], '\0');
}

Test(json, long_strings_with_escapes_anywhere)
{
    /* Runs of plain bytes are scanned 8 at a time: put the special byte at
     * every position of a word and check nothing is skipped or copied twice. */
    for (size_t at = 0; at < 40; at++) {
        char src[128], want[64];
        memset(want, 'a', sizeof want);
        want[40] = '\0';
        size_t n = 0;
        src[n++] = '"';
        for (size_t i = 0; i < 40; i++) {
            if (i == at) {
                src[n++] = '\\';
                src[n++] = 'n';
                want[i] = '\n';
            } else if (i == 39 - at) {
                src[n++] = (char)0xc3; /* é: two bytes where one 'a' was */
                src[n++] = (char)0xa9;
            } else {
                src[n++] = (char)('a' + i % 26);
                want[i] = (char)('a' + i % 26);
            }
        }
        src[n++] = '"';
        oai_jv_t v = s_parse_n(src, n);
        cr_assert_neq(v, OAI_JNONE, "at %zu: %s", at, s_err.text);
        size_t len;
        const char *s = oai_jstr(s_d, v, &len);
        size_t wi = 0;
        for (size_t i = 0; i < 40; i++) {
            if (i == 39 - at && i != at) {
                cr_assert_eq((unsigned char)s[wi], 0xc3, "at %zu", at);
                cr_assert_eq((unsigned char)s[wi + 1], 0xa9, "at %zu", at);
                wi += 2;
            } else {
                cr_assert_eq(s[wi], want[i], "at %zu, byte %zu", at, i);
                wi++;
            }
        }
        cr_assert_eq(len, wi);
        cr_assert_eq(s[len], '\0');
    }
}

/* Spans ------------------------------------------------------------------- */

static void s_span_is(oai_jv_t v, size_t start, size_t end)
{
    size_t s, e;
    oai_jspan(s_d, v, &s, &e);
    cr_assert_eq(s, start, "start %zu, want %zu", s, start);
    cr_assert_eq(e, end, "end %zu, want %zu", e, end);
}

Test(json, spans_cover_exact_source_bytes)
{
    static const char src[] = " {\n  \"a\" : [ 1 , true ],\n  \"b\\\"\":\"x\\ny\" ,"
                              "\"c\":-2.5e1\t}\n ";
    oai_jv_t root = s_ok(src);
    s_span_is(root, 1, 53);
    oai_jv_t a = oai_jfirst(s_d, root);
    s_span_is(a, 5, 8); /* key, quotes included */
    s_span_is(oai_jval(a), 11, 23);
    s_span_is(oai_jat(s_d, oai_jval(a), 0), 13, 14);
    s_span_is(oai_jat(s_d, oai_jval(a), 1), 17, 21);
    oai_jv_t b = oai_jnext(s_d, oai_jval(a));
    cr_assert(s_str_is(b, "b\""));
    s_span_is(b, 27, 32);
    s_span_is(oai_jval(b), 33, 39);
    cr_assert(s_str_is(oai_jval(b), "x\ny"));
    oai_jv_t c = oai_jnext(s_d, oai_jval(b));
    s_span_is(c, 41, 44);
    s_span_is(oai_jval(c), 45, 51);
    cr_assert_eq(oai_jnum(s_d, oai_jval(c)), -25.0);
    cr_assert_eq(memcmp(src + 45, "-2.5e1", 6), 0, "the sample itself is as intended");
}

/* Refusals ---------------------------------------------------------------- */

/* Each bad value is put on line 3, column 8 of a small object; `at` is the
 * offending byte's offset inside the value. */
static const struct {
    const char *value;
    const char *msg;
    int at;
} s_bad_values[] = {
    {"01", "invalid number: leading zero", 0},
    {"-01", "invalid number: leading zero", 0},
    {"1.", "invalid number: digit expected after '.'", 0},
    {"1.e5", "invalid number: digit expected after '.'", 0},
    {"1e", "invalid number: digit expected in exponent", 0},
    {"1e+", "invalid number: digit expected in exponent", 0},
    {"-", "invalid number", 0},
    {"-a", "invalid number", 0},
    {".5", "expected a value", 0},
    {"+1", "expected a value", 0},
    {"NaN", "expected a value", 0},
    {"Infinity", "expected a value", 0},
    {"-Infinity", "invalid number", 0},
    {"nul", "invalid literal", 0},
    {"tru", "invalid literal", 0},
    {"fals", "invalid literal", 0},
    {"True", "expected a value", 0},
    {"'x'", "expected a value", 0},
    {"@", "expected a value", 0},
    {"\xef\xbb\xbf{}", "expected a value", 0},
    {"9223372036854775808", "too big integer", 0},
    {"-9223372036854775809", "too big negative integer", 0},
    {"18446744073709551616", "too big integer", 0},           /* 2^64: wraps to 0 */
    {"-99999999999999999999", "too big negative integer", 0}, /* wraps below 2^63 */
    {"1e400", "real number overflow", 0},
    {"-1e400", "real number overflow", 0},
    {"\"a\tb\"", "control character in string", 2},
    {"\"ab\x01\"", "control character in string", 3},
    {"\"a\\x\"", "invalid escape", 2},
    {"\"\\U0041\"", "invalid escape", 1},
    {"\"\\u12G4\"", "invalid \\u escape", 1},
    {"\"\\u00e\"", "invalid \\u escape", 1},
    {"\"a\\u0000\"", "\\u0000 is not allowed", 2},
    {"\"\\udc00\"", "invalid Unicode: lone low surrogate", 1},
    {"\"\\ud800\"", "invalid Unicode: lone high surrogate", 1},
    {"\"\\ud800\\n\"", "invalid Unicode: lone high surrogate", 1},
    {"\"\\ud800\\u0041\"", "invalid Unicode surrogate pair", 1},
    {"\"\\ud800\\ud800\"", "invalid Unicode surrogate pair", 1},
    {"\"\\ud800\\uzzzz\"", "invalid \\u escape", 7},
    {"\"x\xc0\xaf\"", "invalid UTF-8 in string", 2},
    {"\"\xe0\x80\xaf\"", "invalid UTF-8 in string", 1},
    {"\"\xed\xa0\x80\"", "invalid UTF-8 in string", 1},
    {"\"\xf4\x90\x80\x80\"", "invalid UTF-8 in string", 1},
    {"\"\xf5\x80\x80\x80\"", "invalid UTF-8 in string", 1},
    {"\"\xe2\x82\"", "invalid UTF-8 in string", 1},
    {"\"\x80\"", "invalid UTF-8 in string", 1},
    {"\"\xff\"", "invalid UTF-8 in string", 1},
    {"[1,]", "expected a value", 3},
    {"[,1]", "expected a value", 1},
    {"[1,,2]", "expected a value", 3},
    {"[1 2]", "expected ',' or ']'", 3},
    {"[1}", "expected ',' or ']'", 2},
    {"{\"x\" 1}", "expected ':'", 5},
    {"{\"x\":1,}", "expected a string key", 7},
    {"{1:2}", "expected a string key", 1},
    {"{\"x\":}", "expected a value", 5},
    {"{\"x\":1 \"y\":2}", "expected ',' or '}'", 7},
    {"{\"x\":1]", "expected ',' or '}'", 6},
    {"{\"x\":1,\"x\":2}", "duplicate object key", 7},
    {"{\"x\":1,\"\\u0078\":2}", "duplicate object key", 7},
    {"{\"x\":1,\"y\":{\"x\":2,\"x\":3}}", "duplicate object key", 18},
};

Test(json, each_refusal_with_line_and_column)
{
    for (size_t i = 0; i < sizeof s_bad_values / sizeof s_bad_values[0]; i++) {
        char doc[256];
        snprintf(doc, sizeof doc, "{\n  \"a\": 1,\n  \"b\": %s\n}", s_bad_values[i].value);
        s_refused(doc, s_bad_values[i].msg, 3, 8 + s_bad_values[i].at);
        cr_assert_eq(s_err.offset, (size_t)(19 + s_bad_values[i].at));
    }
}

Test(json, refusals_at_the_end_or_after_the_value)
{
    s_refused("", "empty input", 1, 1);
    s_refused(" \n\t\r\n ", "empty input", 3, 2);
    cr_assert_eq(oai_jdoc_parse(s_d, NULL, 0, &s_err), OAI_JNONE);
    cr_assert_str_eq(s_err.text, "empty input");

    s_refused("{\"a\":1}\n\n  x", "trailing characters after the value", 3, 3);
    s_refused("[1] [2]", "trailing characters after the value", 1, 5);
    s_refused("1 2", "trailing characters after the value", 1, 3);
    s_refused("truex", "trailing characters after the value", 1, 5);
    s_refused("{\n \"a\": \"abc", "unterminated string", 2, 11);
    s_refused("\"abc\\", "unterminated string", 1, 6);
    s_refused("\"\\u12", "unterminated string", 1, 6);
    s_refused("[1,\n2", "unexpected end of input", 2, 2);
    s_refused("{\"a\"", "unexpected end of input", 1, 5);
    s_refused("{\"a\":", "unexpected end of input", 1, 6);
    s_refused("[", "unexpected end of input", 1, 2);
    s_refused("{", "unexpected end of input", 1, 2);
    s_refused("]", "expected a value", 1, 1);
    s_refused("-", "invalid number", 1, 1);
    s_refused("\r\n[\r\n  01]", "invalid number: leading zero", 3, 3);
    /* Bytes after the length are not the document's. */
    s_refused_n("true", 3, "invalid literal", 1, 1);
    cr_assert_eq(oai_jint(s_d, s_parse_n("1234", 3)), 123);
    /* NUL bytes are refused outside strings, even where jansson drops one. */
    s_refused_n("[1\0]", 4, "expected ',' or ']'", 1, 3);
    s_refused_n("\"a\0\"", 4, "control character in string", 1, 3);
}

Test(json, too_large_input_is_refused_without_reading)
{
    /* Only the length is looked at: the parser refuses before any read. */
    cr_assert_eq(oai_jdoc_parse(s_d, "[]", (size_t)UINT32_MAX / 2 + 1, &s_err), OAI_JNONE);
    cr_assert_str_eq(s_err.text, "input too large");
    cr_assert_eq(s_err.offset, 0);
}

/* Limits ------------------------------------------------------------------ */

/* n nested arrays, or objects {"k":...}, around `inner`. */
static char *s_nest(int n, bool objects, const char *inner)
{
    size_t cap = (size_t)n * 6 + strlen(inner) + 1;
    char *s = malloc(cap), *p = s;
    cr_assert_not_null(s);
    for (int i = 0; i < n; i++) {
        p += objects ? sprintf(p, "{\"k\":") : sprintf(p, "[");
    }
    p += sprintf(p, "%s", inner);
    for (int i = 0; i < n; i++) {
        *p++ = objects ? '}' : ']';
    }
    *p = '\0';
    return s;
}

Test(json, nesting_up_to_the_limit)
{
    char *s = s_nest(OAI_JSON_MAX_DEPTH, false, "1");
    oai_jv_t v = s_ok(s);
    for (int i = 0; i < OAI_JSON_MAX_DEPTH; i++) {
        cr_assert(oai_jis(s_d, v, OAI_J_ARRAY));
        v = oai_jfirst(s_d, v);
    }
    cr_assert_eq(oai_jint(s_d, v), 1);
    free(s);

    s = s_nest(OAI_JSON_MAX_DEPTH, true, "{}");
    s_refused(s, "nesting too deep", 1, OAI_JSON_MAX_DEPTH * 5 + 1);
    free(s);
    s = s_nest(OAI_JSON_MAX_DEPTH - 1, true, "[]");
    v = s_ok(s);
    free(s);

    s = s_nest(OAI_JSON_MAX_DEPTH + 1, false, "");
    s_refused(s, "nesting too deep", 1, OAI_JSON_MAX_DEPTH + 1);
    free(s);

    /* Far deeper than any C stack would take if the parser recursed. */
    s = s_nest(1000000, false, "");
    s_refused(s, "nesting too deep", 1, OAI_JSON_MAX_DEPTH + 1);
    free(s);
}

/* An object of n members "k0".."k<n-1>" followed by the given extra keys;
 * *at receives the offset of each extra key. */
static char *s_wide_object(int n, const char *const *extra, int nextra, size_t *at)
{
    char *s = malloc((size_t)(n + nextra) * 24 + 2), *p = s;
    cr_assert_not_null(s);
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    }
    for (int i = 0; i < nextra; i++) {
        *p++ = ',';
        at[i] = (size_t)(p - s);
        p += sprintf(p, "\"%s\":0", extra[i]);
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

Test(json, duplicate_keys_in_small_objects)
{
    s_refused("{\"a\":1,\"b\":2,\"a\":3}", "duplicate object key", 1, 14);
    s_refused("{\"\xc3\xa9\":1,\"\\u00e9\":2}", "duplicate object key", 1, 9);
    s_refused("{\"a\":{\"b\":1,\"b\":2}}", "duplicate object key", 1, 13);
    /* The same key in different objects, and keys that only share a prefix. */
    s_ok("{\"a\":{\"a\":1},\"b\":{\"a\":{\"a\":2}},\"ab\":3,\"\":4}");
    s_ok("[{\"a\":1},{\"a\":1}]");

    /* 16 members are compared pairwise, 17 are sorted: both find the repeat. */
    for (int n = 15; n <= 17; n++) {
        const char *extra[] = {"k3"};
        size_t at;
        char *s = s_wide_object(n - 1, extra, 1, &at);
        s_refused(s, "duplicate object key", 1, (int)at + 1);
        free(s);
        s = s_wide_object(n, NULL, 0, NULL);
        s_ok(s);
        free(s);
    }
}

Test(json, duplicate_keys_in_a_large_object)
{
    char *s = s_wide_object(5000, NULL, 0, NULL);
    oai_jv_t root = s_ok(s);
    cr_assert_eq(oai_jsize(s_d, root), 5000);
    cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "k4999")), 4999);
    free(s);

    const char *one[] = {"k123"};
    size_t at[2];
    s = s_wide_object(5000, one, 1, at);
    s_refused(s, "duplicate object key", 1, (int)at[0] + 1);
    cr_assert_eq(s_err.offset, at[0]);
    free(s);

    /* Two repeats: the first in source order is reported, although "k1"
     * sorts before "k4000". */
    const char *two[] = {"k4000", "k1"};
    s = s_wide_object(5000, two, 2, at);
    s_refused(s, "duplicate object key", 1, (int)at[0] + 1);
    free(s);

    /* A repeat written with an escape is still a repeat. */
    const char *esc[] = {"\\u006b42"};
    s = s_wide_object(5000, esc, 1, at);
    s_refused(s, "duplicate object key", 1, (int)at[0] + 1);
    free(s);
}

/* A value in [0, n) from a small LCG: repeatable test data. */
static int s_below(unsigned *seed, int n)
{
    *seed = *seed * 1103515245u + 12345u;
    return (int)((*seed >> 16) % (unsigned)n);
}

/* Random objects past the pairwise limit, keys drawn from a small set so
 * repeats are common: the refusal must name the first key (in source
 * order) that repeats an earlier one, exactly as a naive scan finds it. */
Test(json, duplicate_keys_match_a_naive_scan)
{
    enum { MAXN = 300 };
    char *s = malloc(MAXN * 16 + 2);
    cr_assert_not_null(s);
    unsigned seed = 12345;
    int refused = 0;
    for (int round = 0; round < 400; round++) {
        int n = 17 + s_below(&seed, MAXN - 16);
        /* From n (repeats certain) to 2n^2 names (often none). */
        int alphabet = n * (1 + s_below(&seed, 2 * n));
        int keys[MAXN];
        size_t at[MAXN];
        char *p = s;
        *p++ = '{';
        for (int i = 0; i < n; i++) {
            keys[i] = s_below(&seed, alphabet);
            if (i) {
                *p++ = ',';
            }
            at[i] = (size_t)(p - s);
            p += sprintf(p, "\"k%d\":%d", keys[i], i);
        }
        *p++ = '}';
        *p = '\0';
        int first = -1;
        for (int j = 1; j < n && first < 0; j++) {
            for (int i = 0; i < j; i++) {
                if (keys[i] == keys[j]) {
                    first = j;
                    break;
                }
            }
        }
        if (first < 0) {
            s_ok(s);
            continue;
        }
        refused++;
        s_refused(s, "duplicate object key", 1, (int)at[first] + 1);
    }
    cr_assert_gt(refused, 50, "the generator should make repeats often");
    cr_assert_lt(refused, 400, "and objects without any");
    free(s);
}

/* Reuse ------------------------------------------------------------------- */

Test(json, one_document_many_parses)
{
    size_t cap = 1 << 21;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (int round = 0; round < 300; round++) {
        /* Sizes go up and down, so buffers grow and are reused. */
        int n = round % 7 == 3 ? 60000 : (round * 7919) % 1500;
        size_t len = 0;
        if (round % 10 == 9) {
            len = (size_t)snprintf(buf, cap, "[1,2,{\"a\":\"b\"},]");
            cr_assert_eq(oai_jdoc_parse(s_d, buf, len, &s_err), OAI_JNONE);
            cr_assert_eq(oai_jtype(s_d, 1), OAI_J_NONE, "a refused parse leaves no nodes");
            continue;
        }
        if (round % 2 == 0) {
            len += (size_t)snprintf(buf + len, cap - len, "[");
            for (int i = 0; i < n; i++) {
                len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", i * 3);
            }
            len += (size_t)snprintf(buf + len, cap - len, "]");
        } else {
            len += (size_t)snprintf(buf + len, cap - len, "{\"text\":\"");
            for (int i = 0; i < n; i++) {
                len += (size_t)snprintf(buf + len, cap - len, "w%d\\n", i % 10);
            }
            len += (size_t)snprintf(buf + len, cap - len, "\",\"n\":%d}", n);
        }
        oai_jv_t root = oai_jdoc_parse(s_d, buf, len, &s_err);
        cr_assert_neq(root, OAI_JNONE, "round %d: %s", round, s_err.text);
        if (round % 2 == 0) {
            cr_assert_eq(oai_jsize(s_d, root), (size_t)n);
            if (n > 0) {
                cr_assert_eq(oai_jint(s_d, oai_jat(s_d, root, (size_t)n - 1)), (n - 1) * 3);
            }
        } else {
            size_t tlen;
            const char *t = oai_jstr(s_d, oai_jget(s_d, root, "text"), &tlen);
            cr_assert_eq(tlen, (size_t)n * 3, "round %d", round);
            cr_assert(n == 0 || (t[0] == 'w' && t[2] == '\n' && t[tlen] == '\0'));
            cr_assert_eq(oai_jint(s_d, oai_jget(s_d, root, "n")), n);
        }
    }
    free(buf);
}

/* Against jansson ----------------------------------------------------------- */

#define S_IN(lit)                                                                                  \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* Tricky inputs, valid and invalid: oai_json must accept exactly those that
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) accepts, and read
 * them as the same tree. */
static const struct {
    const char *s;
    size_t len;
} s_tricky[] = {
    S_IN("{}"),
    S_IN(" [ ] "),
    S_IN("{\"a\":[]}"),
    S_IN("null"),
    S_IN("true"),
    S_IN("false"),
    S_IN("0"),
    S_IN("-0"),
    S_IN("-0.0"),
    S_IN("0e0"),
    S_IN("0E-0"),
    S_IN("-1e-400"),
    S_IN("123.456e-7"),
    S_IN("1.7976931348623157e308"),
    S_IN("1.7976931348623159e308"),
    S_IN("4.9e-324"),
    S_IN("9223372036854775807"),
    S_IN("-9223372036854775808"),
    S_IN("9223372036854775808"),
    S_IN("-9223372036854775809"),
    S_IN("10000000000000000000"),
    S_IN("18446744073709551616"),
    S_IN("99999999999999999999"),
    S_IN("12345678901234567890.0"),
    S_IN("1e400"),
    S_IN("\"\\/\\b\\f\\n\\r\\t\\\"\\\\\""),
    S_IN("\"\\u00e9\\u20AC\\uD83D\\uDE00\\uDBFF\\uDFFF\""),
    S_IN("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\""),
    S_IN("\"\\u0001\x7f\""),
    S_IN("{\"a\":1,\"b\":{\"a\":2},\"\":3}"),
    S_IN("[[[[[]]]],{\"a\":{\"b\":{\"c\":{}}}}]"),
    S_IN(" \t\r\n\"x\"\n "),
    S_IN("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"),
    S_IN("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
         "\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17}"),
    S_IN("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
         "\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"\\u0061\":17}"),
    S_IN(""),
    S_IN(" "),
    S_IN("["),
    S_IN("]"),
    S_IN("{"),
    S_IN("[1,]"),
    S_IN("{\"a\":1,}"),
    S_IN("{\"a\"}"),
    S_IN("{\"a\":}"),
    S_IN("[01]"),
    S_IN("[1.]"),
    S_IN("[.1]"),
    S_IN("[+1]"),
    S_IN("[-]"),
    S_IN("[1e]"),
    S_IN("[NaN]"),
    S_IN("[-Infinity]"),
    S_IN("[nul]"),
    S_IN("[True]"),
    S_IN("\"\\x\""),
    S_IN("\"\\u0000\""),
    S_IN("{\"\\u0000\":1}"),
    S_IN("\"\\ud800\""),
    S_IN("\"\\udc00\""),
    S_IN("\"\\ud800\\ud800\""),
    S_IN("\"\xc0\x80\""),
    S_IN("\"\xed\xa0\x80\""),
    S_IN("\"\xf4\x90\x80\x80\""),
    S_IN("\"\xe2\x82\""),
    S_IN("\"\t\""),
    S_IN("\"a\0b\""),
    S_IN("\0"),
    S_IN("[1]]"),
    S_IN("[1] x"),
    S_IN("{\"a\":1,\"a\":1}"),
    S_IN("{\"a\":1,\"\\u0061\":1}"),
    S_IN("'x'"),
    S_IN("[1 2]"),
    S_IN("{\"a\" 1}"),
    S_IN("\xef\xbb\xbf{}"),
    S_IN("\"abc"),
    S_IN("\"\\u12\""),
};

Test(json, agrees_with_jansson_on_tricky_inputs)
{
    for (size_t i = 0; i < sizeof s_tricky / sizeof s_tricky[0]; i++) {
        const char *s = s_tricky[i].s;
        size_t len = s_tricky[i].len;
        oai_jv_t root = s_parse_n(s, len);
        json_error_t jerr;
        json_t *j = json_loadb(s, len, JSON_DIFF_FLAGS, &jerr);
        if (!j) {
            cr_assert_eq(root, OAI_JNONE, "jansson refuses (%s), oai_json accepts: %.*s", jerr.text,
                         (int)len, s);
            continue;
        }
        cr_assert_neq(root, OAI_JNONE, "oai_json refuses (%s), jansson accepts: %.*s", s_err.text,
                      (int)len, s);
        const char *why = json_diff(s_d, root, j, s, len);
        json_decref(j);
        cr_assert_null(why, "%s: %.*s", why, (int)len, s);
    }
}

Test(json, agrees_with_jansson_on_the_bench_bodies)
{
    static const char *const files[] = {"bench/bodies/small.json", "bench/bodies/1k.json",
                                        "bench/bodies/32k.json", "bench/bodies/image.json"};
    const char *root_dir = getenv("HPP_ROOT");
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", root_dir ? root_dir : ".", files[i]);
        json_error_t jerr;
        json_t *j = json_load_file(path, JSON_DIFF_FLAGS, &jerr);
        cr_assert_not_null(j, "%s: %s", path, jerr.text);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f);
        char *buf = malloc(1 << 20);
        size_t len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        oai_jv_t root = oai_jdoc_parse(s_d, buf, len, &s_err);
        cr_assert_neq(root, OAI_JNONE, "%s: %s", path, s_err.text);
        const char *why = json_diff(s_d, root, j, buf, len);
        cr_assert_null(why, "%s: %s", path, why);
        json_decref(j);
        free(buf);
    }
}

Test(json, jansson_drops_a_nul_after_a_number_and_we_do_not)
{
    /* The one place jansson accepts more than RFC 8259 (see json_diff.h). */
    static const char in[] = "[1\0]";
    json_t *j = json_loadb(in, 4, JSON_DIFF_FLAGS, NULL);
    bool jansson_accepts = j != NULL;
    json_decref(j);
    cr_assert_eq(s_parse_n(in, 4), OAI_JNONE);
    cr_assert(json_diff_jansson_nul_quirk(in, 4, s_err.offset) == jansson_accepts);
}
