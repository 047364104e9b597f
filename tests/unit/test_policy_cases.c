/* test_policy_cases.c - the shipped cases files, through the code of
 * `hpp-policy test` (eng_cases_run), and the cases format itself. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_cases.h"
#include "eng_catalog.h"
#include "eng_policy.h"

static eng_catalog_t *s_cat;
static eng_policy_t *s_pol;

static void s_setup(void)
{
    s_cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(s_cat, "policies/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(s_cat, &err), 0);
    s_pol = eng_policy_load("policies/default.policy", s_cat, NULL);
    cr_assert_not_null(s_pol);
}

static void s_teardown(void)
{
    eng_policy_destroy(&s_pol);
    eng_catalog_destroy(&s_cat);
}

TestSuite(eng_cases, .init = s_setup, .fini = s_teardown);

/* Runs cases and returns the report; *failed receives the count. */
static char *s_report(const eng_cases_t *cases, size_t *failed)
{
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    *failed = eng_cases_run(cases, s_pol, mem, false);
    fclose(mem);
    return out;
}

Test(eng_cases, default_policy_cases_pass)
{
    eng_diags_t *d = eng_diags_new();
    eng_cases_t *cases = eng_cases_load("policies/cases/default.cases", d);
    eng_diags_print(d, stderr);
    cr_assert_not_null(cases);
    size_t n = eng_cases_count(cases);
    cr_assert_geq(n, 60, "the default policy deserves many cases");
    size_t failed;
    char *out = s_report(cases, &failed);
    char want[64];
    snprintf(want, sizeof want, "%zu passed, 0 failed\n", n);
    cr_assert_eq(failed, 0, "%s", out);
    cr_assert_str_eq(out, want);
    free(out);
    eng_cases_destroy(&cases);
    eng_diags_destroy(&d);
}

Test(eng_cases, failures_print_a_diff)
{
    const char *src = "# two cases, one wrong\n"
                      "good  hints=code => model=anthropic/claude-sonnet-4 tier=standard\n"
                      "bad   hints=chat prompt_tokens=500 \\\n"
                      "      => model=openai/o1 tier=budget cost=0.00009\n";
    eng_cases_t *cases = eng_cases_load_buffer("mem.cases", src, strlen(src), NULL);
    cr_assert_not_null(cases);
    size_t failed;
    char *out = s_report(cases, &failed);
    cr_assert_eq(failed, 1);
    const char *want = "FAIL mem.cases:3: bad\n"
                       "    request: hints=chat prompt_tokens=500\n"
                       "  -   model: openai/o1\n"
                       "  +   model: meta-llama/llama-3.1-8b-instruct\n"
                       "      tier: budget\n"
                       "      cost: 0.00009\n"
                       "      (rule 'simple')\n"
                       "1 passed, 1 failed\n";
    cr_assert_str_eq(out, want);
    free(out);
    eng_cases_destroy(&cases);
}

Test(eng_cases, unexpected_error_is_a_failure)
{
    const char *src = "x prompt_tokens=-1 => tier=-\n"
                      "y prompt_tokens=-1 => error=bad_request\n";
    eng_cases_t *cases = eng_cases_load_buffer("mem.cases", src, strlen(src), NULL);
    cr_assert_not_null(cases);
    size_t failed;
    char *out = s_report(cases, &failed);
    cr_assert_eq(failed, 1, "%s", out);
    cr_assert(strstr(out, "  +   error: bad_request\n"));
    free(out);
    eng_cases_destroy(&cases);
}

Test(eng_cases, malformed_files_are_located)
{
    const char *src = "a hints=code => model=x\n"
                      "b colour=red => model=x\n"
                      "c hints=code => flavour=x\n"
                      "d hints=code\n"
                      "e text=\"open => model=x\n"
                      "f hints=code => error=teapot cost=abc\n"
                      "g prompt_tokens=lots => model=x\n";
    eng_diags_t *d = eng_diags_new();
    cr_assert_null(eng_cases_load_buffer("bad.cases", src, strlen(src), d));
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 7);
    const int lines[] = {2, 3, 4, 5, 6, 6, 7};
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(eng_diags_get(d, (size_t)i)->line, lines[i], "error %d", i);
    }
    cr_assert(strstr(eng_diags_get(d, 0)->msg, "unknown request key"));
    cr_assert_eq(eng_diags_get(d, 0)->col, 3);
    cr_assert(strstr(eng_diags_get(d, 2)->msg, "has no '=>'"));
    eng_diags_destroy(&d);
    d = eng_diags_new();
    cr_assert_null(eng_cases_load_buffer("empty.cases", "# nothing\n", 10, d));
    cr_assert_str_eq(eng_diags_get(d, 0)->msg, "no cases in the file");
    eng_diags_destroy(&d);
    d = eng_diags_new();
    cr_assert_null(eng_cases_load("tests/no/such.cases", d));
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    eng_diags_destroy(&d);
}

Test(eng_cases, features_from_text)
{
    hpp_features_t f;
    hpp_features_init(&f);
    char why[256];
    cr_assert_eq(eng_features_set(&f, "prompt_tokens", 13, "32k", 3, why, sizeof why), 0);
    cr_assert_eq(f.prompt_tokens, 32000);
    cr_assert_eq(eng_features_set(&f, "hints", 5, "a,,b", 4, why, sizeof why), 0);
    cr_assert_eq(f.nhints, 2);
    cr_assert_eq(f.hints[1].len, 1);
    cr_assert_eq(eng_features_set(&f, "tools", 5, "yes", 3, why, sizeof why), 0);
    cr_assert(f.tools);
    cr_assert_eq(eng_features_set(&f, "budget_usd", 10, "0.25", 4, why, sizeof why), 0);
    cr_assert(f.has_budget);
    cr_assert_float_eq(f.budget_usd, 0.25, 1e-12);
    cr_assert_eq(eng_features_set(&f, "meta.team", 9, "red", 3, why, sizeof why), 0);
    cr_assert_eq(f.nmeta, 1);
    cr_assert_eq(f.meta_keys[0].len, 4);
    cr_assert_eq(eng_features_set(&f, "tools", 5, "maybe", 5, why, sizeof why), -1);
    cr_assert_eq(eng_features_set(&f, "images", 6, "1x", 2, why, sizeof why), -1);
    cr_assert_eq(eng_features_set(&f, "budget", 6, "", 0, why, sizeof why), -1);
    cr_assert_eq(eng_features_set(&f, "colour", 6, "red", 3, why, sizeof why), -1);
    cr_assert(strstr(why, "unknown request key"));
}

Test(eng_cases, byte_order_mark_is_skipped)
{
    static const char ok[] = "\xef\xbb\xbf"
                             "a hints=code => tier=standard\n";
    eng_diags_t *d = eng_diags_new();
    eng_cases_t *c = eng_cases_load_buffer("bom.cases", ok, sizeof ok - 1, d);
    cr_assert_not_null(c, "a file starting with a byte order mark loads");
    cr_assert_eq(eng_diags_size(d), 0);
    eng_cases_destroy(&c);
    eng_diags_destroy(&d);
    static const char bad[] = "\xef\xbb\xbf"
                              "a colour=red => model=x\n";
    d = eng_diags_new();
    cr_assert_null(eng_cases_load_buffer("bom.cases", bad, sizeof bad - 1, d));
    cr_assert_eq(eng_diags_get(d, 0)->col, 3, "the column the editor shows");
    eng_diags_destroy(&d);
}
