/* test_common.c - money parsing/formatting, error formatting, status names,
 * command-line flags, growable arrays. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "eng_common.h"
#include "eng_flags.h"
#include "eng_decision.h"

static hpp_pusd_t s_parse(const char *s, int scale, int expect_rc)
{
    hpp_pusd_t v = -7;
    int rc = hpp_pusd_parse(s, strlen(s), scale, &v);
    cr_assert_eq(rc, expect_rc, "parse(\"%s\", %d) returned %d", s, scale, rc);
    return v;
}

Test(money, same_price_from_every_source_unit)
{
    /* $3 per 1M tokens, as each catalog spells it. */
    cr_assert_eq(s_parse("0.000003", 12, 0), 3000000); /* OpenRouter, USD per token */
    cr_assert_eq(s_parse("0.0003", 10, 0), 3000000);   /* Portkey, cents per token */
    cr_assert_eq(s_parse("3", 6, 0), 3000000);         /* native, USD per 1M */
    cr_assert_eq(s_parse("3.00", 6, 0), 3000000);
    cr_assert_eq(s_parse("3e-6", 12, 0), 3000000);
    hpp_pusd_t v;
    cr_assert_eq(hpp_pusd_from_double(3e-06, 12, &v), 0);
    cr_assert_eq(v, 3000000);
    cr_assert_eq(hpp_pusd_from_double(0.0003, 10, &v), 0);
    cr_assert_eq(v, 3000000);
}

Test(money, sub_cent_and_rounding)
{
    cr_assert_eq(s_parse("0.0000000375", 12, 0), 37500);
    cr_assert_eq(s_parse("0.06", 6, 0), 60000);
    /* Below a picodollar: rounded half up. */
    cr_assert_eq(s_parse("0.0000000000005", 12, 0), 1);
    cr_assert_eq(s_parse("0.0000000000004", 12, 0), 0);
    cr_assert_eq(s_parse("0", 12, 0), 0);
    cr_assert_eq(s_parse(".5", 6, 0), 500000);
}

Test(money, rejects_bad_text)
{
    s_parse("", 12, -1);
    s_parse("-1", 12, -1);
    s_parse("abc", 12, -1);
    s_parse("1.2.3", 12, -1);
    s_parse("1e", 12, -1);
    s_parse("3 ", 12, -1);
    s_parse("99999999999", 12, -1); /* $1e11: overflows int64 picodollars */
    hpp_pusd_t v;
    cr_assert_eq(hpp_pusd_from_double(NAN, 12, &v), -1);
    cr_assert_eq(hpp_pusd_from_double(-0.5, 12, &v), -1);
    cr_assert_eq(hpp_pusd_from_double(INFINITY, 12, &v), -1);
}

Test(money, formats_without_trailing_zeros)
{
    char b[64];
    hpp_pusd_format(10500000000, false, b, sizeof b);
    cr_assert_str_eq(b, "0.0105");
    hpp_pusd_format(1250000, true, b, sizeof b);
    cr_assert_str_eq(b, "1.25");
    hpp_pusd_format(HPP_PUSD_PER_USD * 3, false, b, sizeof b);
    cr_assert_str_eq(b, "3");
    hpp_pusd_format(0, false, b, sizeof b);
    cr_assert_str_eq(b, "0");
    hpp_pusd_format(HPP_PRICE_NA, true, b, sizeof b);
    cr_assert_str_eq(b, "n/a");
    cr_assert_float_eq(hpp_pusd_to_usd(10500000000), 0.0105, 1e-15);
}

Test(errors, located_and_key_path_formats)
{
    eng_error_t e = {0};
    char b[512];
    cr_assert_eq(eng_error_set(&e, ENG_ERR_SYNTAX, "cat.json", 3, 14, NULL, "expected '%c'", '}'),
                 -1);
    eng_error_format(&e, b, sizeof b);
    cr_assert_str_eq(b, "cat.json:3:14: error: expected '}'");
    eng_error_set(&e, ENG_ERR_VALUE, "cat.json", 0, 0, "data[2].pricing.input", "negative price");
    eng_error_format(&e, b, sizeof b);
    cr_assert_str_eq(b, "cat.json: at data[2].pricing.input: error: negative price");
    eng_error_set(&e, ENG_ERR_VALUE, "cat.json", 0, 0, NULL, "not an object");
    eng_error_format(&e, b, sizeof b);
    cr_assert_str_eq(b, "cat.json: error: not an object");
    /* No file, line or where: the message names what failed, and nothing is made up. */
    eng_error_set(&e, ENG_ERR_IO, NULL, 0, 0, NULL, "epoll: %s", "no memory");
    eng_error_format(&e, b, sizeof b);
    cr_assert_str_eq(b, "error: epoll: no memory");
    eng_error_set(&e, ENG_ERR_SYNTAX, NULL, 2, 5, NULL, "expected a value");
    eng_error_format(&e, b, sizeof b);
    cr_assert_str_eq(b, "<input>:2:5: error: expected a value");
    cr_assert_str_eq(eng_errcode_name(ENG_ERR_DUP), "duplicate");
}

Test(status, names_round_trip)
{
    for (int s = 0; s < HPP_STATUS_COUNT; s++) {
        const char *n = hpp_status_name((hpp_status_t)s);
        cr_assert_eq(hpp_status_from_name(n, strlen(n)), s, "%s", n);
    }
    cr_assert_str_eq(hpp_status_name(HPP_E_INSUFFICIENT_BUDGET), "insufficient_budget");
    cr_assert_eq(hpp_status_from_name("nope", 4), -1);
    hpp_features_t f;
    hpp_features_init(&f);
    cr_assert_eq(f.output_tokens, -1);
    cr_assert_eq(f.nhints, 0);
}

/* Flags (eng_flags.h) ---------------------------------------------------------- */

typedef struct {
    bool on;
    const char *name;
    int n;
    int calls;
} s_flag_opts_t;

static int s_flag_n(void *opts, const char *flag, const char *arg)
{
    s_flag_opts_t *o = opts;
    o->calls++;
    return eng_flag_int(flag, arg, 1, 10, &o->n);
}

static const eng_flag_t s_test_flags[] = {
    {"--on", NULL, NULL, offsetof(s_flag_opts_t, on), "a switch"},
    {"--name", "NAME", NULL, offsetof(s_flag_opts_t, name), "a string"},
    {"--n", "N", s_flag_n, 0, "an integer 1..10"},
    {NULL, NULL, NULL, 0, NULL},
};

/* Parses a space-separated command line (no quoting) into a fresh opts. */
static int s_flags(const char *line, s_flag_opts_t *o)
{
    static char buf[256];
    char *argv[16] = {"prog"};
    int argc = 1;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *tok = strtok(buf, " "); tok && argc < 16; tok = strtok(NULL, " ")) {
        argv[argc++] = tok;
    }
    memset(o, 0, sizeof *o);
    return eng_flags_parse("prog", s_test_flags, argc, argv, o);
}

Test(flags, values_switches_and_handlers)
{
    s_flag_opts_t o;
    cr_assert_eq(s_flags("", &o), 0);
    cr_assert(!o.on && !o.name && o.calls == 0);
    cr_assert_eq(s_flags("--on --name a=b --n 3", &o), 0);
    cr_assert(o.on);
    cr_assert_str_eq(o.name, "a=b");
    cr_assert_eq(o.n, 3);
    cr_assert_eq(s_flags("--name=x=y --n=10 --n 2", &o), 0, "the last of a repeated flag wins");
    cr_assert_str_eq(o.name, "x=y");
    cr_assert_eq(o.n, 2);
    cr_assert_eq(o.calls, 2);
}

Test(flags, refusals)
{
    s_flag_opts_t o;
    const char *bad[] = {"--bogus", "--on=1", "--name", "--n 0",  "--n 11",
                         "--n x",   "--n 3x", "-n 3",   "--na 1", "--n= "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_flags(bad[i], &o), -1, "'%s' was accepted", bad[i]);
    }
    /* Nothing after the first refusal is applied. */
    cr_assert_eq(s_flags("--bogus --on", &o), -1);
    cr_assert(!o.on);
}

Test(grow, doubles_from_first_and_keeps_the_elements)
{
    uint32_t *a = NULL, cap = 0;
    for (uint32_t n = 0; n < 100; n++) {
        cr_assert(eng_grow((void **)&a, n, &cap, sizeof *a, 4));
        cr_assert_gt(cap, n);
        a[n] = n * 7;
    }
    cr_assert_eq(cap, 128); /* 4, 8, ..., 128 */
    for (uint32_t n = 0; n < 100; n++) {
        cr_assert_eq(a[n], n * 7);
    }
    uint32_t *same = a;
    cr_assert(eng_grow((void **)&a, 127, &cap, sizeof *a, 4)); /* room already */
    cr_assert_eq(a, same);
    cr_assert_eq(cap, 128);
    free(a);
}

Test(grow, refuses_sizes_that_overflow_and_leaves_the_array)
{
    char *a = malloc(1);
    cr_assert_not_null(a);
    char *before = a;
    uint32_t cap = UINT32_MAX / 2 + 1; /* doubling it passes UINT32_MAX */
    cr_assert_not(eng_grow((void **)&a, cap, &cap, 1, 8));
    cr_assert_eq(a, before);
    cr_assert_eq(cap, UINT32_MAX / 2 + 1);
    cap = 1u << 20; /* the bytes overflow size_t on a 32-bit size_t only */
    bool ok = eng_grow((void **)&a, cap, &cap, SIZE_MAX / 2, 8);
    cr_assert_not(ok, "2^21 elements of SIZE_MAX/2 bytes cannot fit");
    cr_assert_eq(a, before);
    cr_assert_eq(cap, 1u << 20);
    free(a);
}
