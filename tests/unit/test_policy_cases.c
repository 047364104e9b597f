/* test_policy_cases.c - the shipped cases files, through the code of
 * `hpp-policy test` (eng_cases_run), and the cases format itself. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_cases.h"
#include "eng_catalog.h"
#include "eng_policy.h"
#include "eng_policy_internal.h"

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

/* The reload gate ------------------------------------------------------------ */

typedef struct {
    int n;           /* failures reported */
    char first[320]; /* "file:line: message" of the first */
} s_fails_t;

static void s_on_fail(void *ctx, const char *file, int line, const char *msg)
{
    s_fails_t *f = ctx;
    if (f->n++ == 0) {
        snprintf(f->first, sizeof f->first, "%s:%d: %s", file, line, msg);
    }
}

Test(eng_cases, check_names_each_failing_case_and_its_first_difference)
{
    const char *src = "good  hints=code => model=anthropic/claude-sonnet-4 tier=standard\n"
                      "bad   hints=chat prompt_tokens=500 \\\n"
                      "      => tier=budget model=openai/o1\n"
                      "boom  prompt_tokens=-1 => tier=-\n";
    eng_cases_t *cases = eng_cases_load_buffer("mem.cases", src, strlen(src), NULL);
    cr_assert_not_null(cases);
    s_fails_t f = {0};
    cr_assert_eq(eng_cases_check(cases, s_pol, s_on_fail, &f), 2);
    cr_assert_eq(f.n, 2);
    cr_assert_str_eq(f.first, "mem.cases:2: case 'bad' fails: model: expected openai/o1, got "
                              "meta-llama/llama-3.1-8b-instruct");
    cr_assert_eq(eng_cases_check(cases, s_pol, NULL, NULL), 2, "fn may be NULL");
    eng_cases_destroy(&cases);
}

/* The default policy with `from` replaced by `to`. */
static eng_policy_t *s_variant(const char *from, const char *to, unsigned flags, eng_diags_t *diags)
{
    size_t len;
    FILE *f = fopen("policies/default.policy", "rb");
    cr_assert_not_null(f);
    static char src[16384], out[16384];
    len = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    src[len] = '\0';
    const char *at = strstr(src, from);
    cr_assert_not_null(at, "no '%s'", from);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - src), src, to, at + strlen(from));
    return eng_policy_compile("variant.policy", out, strlen(out), NULL, s_cat, diags, flags);
}

Test(eng_cases, catch_all_is_named_and_required_on_demand)
{
    cr_assert_str_eq(eng_policy_catch_all(s_pol), "default");
    const char *rule = "route default {\n    tier mid\n}";
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = s_variant(rule, "", 0, d);
    cr_assert_not_null(p, "without the flag a lost catch-all is a warning");
    cr_assert_null(eng_policy_catch_all(p));
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_WARNING), 1);
    eng_policy_destroy(&p);
    eng_diags_destroy(&d);

    d = eng_diags_new();
    p = s_variant(rule, "", ENG_POLICY_REQUIRE_CATCH_ALL, d);
    cr_assert_null(p);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    const eng_diag_t *e = eng_diags_get(d, 0);
    cr_assert_eq(e->severity, ENG_DIAG_ERROR);
    cr_assert(strstr(e->msg, "no rule matches every request, but the serving policy has one"), "%s",
              e->msg);
    cr_assert_gt(e->line, 80, "located at the last rule left, line %d", e->line);
    eng_diags_destroy(&d);

    /* A catch-all under another name satisfies it. */
    d = eng_diags_new();
    p = s_variant(rule, "route rest {\n    tier mid\n}", ENG_POLICY_REQUIRE_CATCH_ALL, d);
    cr_assert_not_null(p);
    cr_assert_str_eq(eng_policy_catch_all(p), "rest");
    eng_policy_destroy(&p);
    eng_diags_destroy(&d);
}

Test(eng_cases, coverage_lost_lists_what_the_old_policy_routed)
{
    s_fails_t f = {0};
    cr_assert_eq(eng_policy_coverage_lost(s_pol, s_pol, "same", s_on_fail, &f), 0);

    /* Without the catch-all: the bare request, each group and json had
     * only the default rule. */
    eng_policy_t *p = s_variant("route default {\n    tier mid\n}", "", 0, NULL);
    cr_assert_not_null(p);
    cr_assert_eq(eng_policy_coverage_lost(s_pol, p, "v.policy", s_on_fail, &f), 5, "%s", f.first);
    cr_assert_str_eq(f.first, "v.policy:0: requests with no feature at all matched rule "
                              "'default' of the serving policy and match no rule of this one: "
                              "they would fail with no_candidate");
    /* The other way round nothing is lost. */
    cr_assert_eq(eng_policy_coverage_lost(p, s_pol, "v.policy", NULL, NULL), 0);

    /* Serving without a catch-all, the next one also drops the code hint
     * (the code rule now asks for "rust"). */
    static char both[16384];
    FILE *fp = fopen("policies/default.policy", "rb");
    cr_assert_not_null(fp);
    size_t n = fread(both, 1, sizeof both - 1, fp);
    fclose(fp);
    both[n] = '\0';
    char *cut = strstr(both, "route default {");
    cr_assert_not_null(cut);
    *cut = '\0';
    char *code = strstr(both, "hints has \"code\" or tools");
    cr_assert_not_null(code);
    memcpy(code + strlen("hints has \""), "rust", 4);
    eng_policy_t *q2 = eng_policy_compile("q.policy", both, strlen(both), NULL, s_cat, NULL, 0);
    cr_assert_not_null(q2);
    s_fails_t g = {0};
    cr_assert_eq(eng_policy_coverage_lost(p, q2, "q.policy", s_on_fail, &g), 1, "%s", g.first);
    cr_assert(strstr(g.first, "requests with hint 'code' matched rule 'code'"), "%s", g.first);
    eng_policy_destroy(&q2);
    eng_policy_destroy(&p);
}
