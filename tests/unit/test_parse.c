/* test_parse.c - policy syntax tree, and the exact text of every diagnostic.
 *
 * Golden files: tests/golden/policy/NAME.policy is compiled against the
 * bundled catalog; what eng_diags_print writes must equal NAME.err byte for
 * byte (location, message, source line, caret, summary).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_parse.h"
#include "eng_policy_internal.h"

static char *s_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (tests run from the repository root)", path);
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static eng_catalog_t *s_catalog(void)
{
    eng_catalog_t *c = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(c, "policies/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(c, &err), 0);
    return c;
}

/* Compiles tests/golden/policy/NAME.policy; returns what the diagnostics print. */
static char *s_diagnose(const char *name, bool *compiled)
{
    char path[256];
    snprintf(path, sizeof path, "tests/golden/policy/%s.policy", name);
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load(path, cat, d);
    *compiled = p != NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    eng_diags_print(d, mem);
    fclose(mem);
    eng_policy_destroy(&p);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
    return out;
}

static void s_golden(const char *name, bool want_compiled)
{
    bool compiled;
    char *got = s_diagnose(name, &compiled);
    char path[256];
    snprintf(path, sizeof path, "tests/golden/policy/%s.err", name);
    char *want = s_read(path);
    cr_assert_str_eq(got, want, "%s: diagnostics differ", name);
    cr_assert_eq(compiled, want_compiled, "%s", name);
    free(got);
    free(want);
}

Test(eng_parse, golden_syntax_errors)
{
    s_golden("syntax_errors", false);
}

Test(eng_parse, golden_lexical_errors)
{
    s_golden("lexical", false);
}

Test(eng_parse, golden_semantic_errors)
{
    s_golden("semantic", false);
    s_golden("semantic_rules", false);
}

Test(eng_parse, golden_warnings_only)
{
    s_golden("warnings", true);
    s_golden("no_catch_all", true);
}

/* Diagnostics for authors: money without '$', "did you mean", quoting
 * hint words, tiers that take models out of their price tiers. */
Test(eng_parse, golden_authoring)
{
    s_golden("authoring", false);
    s_golden("authoring_warnings", true);
}

Test(eng_parse, golden_includes)
{
    s_golden("cycle_a", false);
    s_golden("include_missing", false);
    s_golden("include_nested", false); /* error located in the nested file */
}

Test(eng_parse, golden_misc)
{
    s_golden("no_tier", false);
    s_golden("tabs", false);
}

Test(eng_parse, counts_every_error)
{
    bool compiled;
    free(s_diagnose("semantic", &compiled));
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load("tests/golden/policy/semantic.policy", cat, d);
    cr_assert_null(p);
    /* The 24 errors of the two golden files, in two (fewer than ENG_MAX_ERRORS each). */
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 12);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_WARNING), 0);
    eng_diags_t *d2 = eng_diags_new();
    cr_assert_null(eng_policy_load("tests/golden/policy/semantic_rules.policy", cat, d2));
    cr_assert_eq(eng_diags_count(d2, ENG_DIAG_ERROR), 12);
    cr_assert_eq(eng_diags_count(d2, ENG_DIAG_WARNING), 2);
    eng_diags_destroy(&d2);
    const eng_diag_t *first = eng_diags_get(d, 0);
    cr_assert_eq(first->line, 1);
    cr_assert_eq(first->col, 27);
    cr_assert_eq(first->span, 1);
    cr_assert_str_eq(first->source_line,
                     "settings { default_output 0  step sideways  free_fallback maybe }");
    cr_assert_null(eng_diags_get(d, 1000));
    eng_diags_destroy(&d);
    eng_diags_destroy(&d); /* idempotent */
    eng_catalog_destroy(&cat);
}

Test(eng_parse, shipped_policies_compile_clean)
{
    const char *files[] = {"policies/default.policy", "policies/examples/budgets.policy",
                           "policies/examples/teams.policy"};
    eng_catalog_t *cat = s_catalog();
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        eng_diags_t *d = eng_diags_new();
        eng_policy_t *p = eng_policy_load(files[i], cat, d);
        if (!p || eng_diags_size(d)) {
            eng_diags_print(d, stderr);
        }
        cr_assert_not_null(p, "%s", files[i]);
        cr_assert_eq(eng_diags_size(d), 0, "%s has diagnostics", files[i]);
        eng_policy_destroy(&p);
        eng_diags_destroy(&d);
    }
    eng_catalog_destroy(&cat);
}

/* A UTF-8 byte order mark, as some editors write, is skipped; columns on
 * the first line are the editor's, which does not show it. */
Test(eng_parse, byte_order_mark_is_skipped)
{
    char *src = s_read("policies/default.policy");
    size_t len = strlen(src);
    char *bom = malloc(len + 4);
    cr_assert_not_null(bom);
    memcpy(bom, "\xef\xbb\xbf", 3);
    memcpy(bom + 3, src, len + 1);
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load_buffer("bom.policy", bom, len + 3, cat, d);
    cr_assert_not_null(p);
    cr_assert_eq(eng_diags_size(d), 0);
    eng_policy_destroy(&p);
    eng_diags_destroy(&d);

    static const char bad[] = "\xef\xbb\xbf  route x";
    d = eng_diags_new();
    cr_assert_null(eng_policy_load_buffer("bom.policy", bad, sizeof bad - 1, cat, d));
    cr_assert_eq(eng_diags_get(d, 0)->line, 1);
    cr_assert_eq(eng_diags_get(d, 0)->col, 10, "after 'route x', not counting the mark");
    eng_diags_destroy(&d);

    /* Only at the very start: anywhere else it is a stray character. */
    static const char late[] = "  \xef\xbb\xbfroute x {}";
    d = eng_diags_new();
    cr_assert_null(eng_policy_load_buffer("late.policy", late, sizeof late - 1, cat, d));
    cr_assert(strstr(eng_diags_get(d, 0)->msg, "unexpected character"), "%s",
              eng_diags_get(d, 0)->msg);
    cr_assert_eq(eng_diags_get(d, 0)->col, 3);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
    free(bom);
    free(src);
}

/* Syntax tree ------------------------------------------------------------------ */

static eng_ast_t *s_parse(const char *src, eng_diags_t *d)
{
    eng_ast_t *a = eng_parse("t.policy", src, strlen(src), d);
    cr_assert_not_null(a);
    return a;
}

Test(eng_parse, statements_and_properties)
{
    const char *src = "include \"x.policy\"\n"
                      "settings { step down, up; free_fallback on }\n"
                      "tier budget max $0.15 models \"a/*\", \"b/c\"\n"
                      "group \"key group\" { models \"*\" multiplier 0.5 }\n"
                      "hint code when text ~ /def/\n"
                      "route r when tools { tier budget }\n"
                      "route catch { tier budget }\n";
    eng_ast_t *a = s_parse(src, NULL);
    cr_assert_eq(a->nerrors, 0);
    cr_assert_eq(a->nstmts, 7);
    eng_stkind_t kinds[] = {ENG_ST_INCLUDE, ENG_ST_SETTINGS, ENG_ST_TIER, ENG_ST_GROUP,
                            ENG_ST_HINT,    ENG_ST_ROUTE,    ENG_ST_ROUTE};
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(a->stmts[i].kind, kinds[i], "statement %d", i);
    }
    const eng_stmt_t *tier = &a->stmts[2];
    cr_assert_eq(tier->count, 2);
    cr_assert_eq(a->props[tier->first].id, ENG_P_MAX);
    cr_assert_eq(a->props[tier->first + 1].id, ENG_P_MODELS);
    cr_assert_eq(a->props[tier->first + 1].count, 2);
    const eng_stmt_t *set = &a->stmts[1];
    cr_assert_eq(a->props[set->first].count, 2); /* step down, up */
    cr_assert_eq(a->stmts[6].cond, -1);          /* no when */
    cr_assert_geq(a->stmts[5].cond, 0);
    eng_ast_destroy(&a);
    eng_ast_destroy(&a);
}

Test(eng_parse, precedence_and_spans)
{
    const char *src = "route r when a or b and not c { tier t }";
    eng_ast_t *a = s_parse(src, NULL);
    cr_assert_eq(a->nerrors, 0);
    const eng_xnode_t *root = &a->nodes[a->stmts[0].cond];
    cr_assert_eq(root->kind, ENG_X_OR); /* and binds tighter than or */
    const eng_xnode_t *rhs = &a->nodes[root->b];
    cr_assert_eq(rhs->kind, ENG_X_AND);
    cr_assert_eq(a->nodes[rhs->b].kind, ENG_X_NOT);
    cr_assert_eq(root->span.off, 13);
    cr_assert_eq(root->span.len, strlen("a or b and not c"));
    cr_assert_eq(root->depth, 4);
    eng_ast_destroy(&a);
}

Test(eng_parse, tests_and_operands)
{
    const char *src = "route r when meta.tenant in [\"a\", \"b\"] and hints has any [\"x\"] "
                      "and (text ~ /z/i) and 3 <= prompt_tokens { tier t }";
    eng_ast_t *a = s_parse(src, NULL);
    cr_assert_eq(a->nerrors, 0);
    int tests = 0, lists = 0, names_with_keys = 0;
    for (uint32_t i = 0; i < a->nnodes; i++) {
        const eng_xnode_t *x = &a->nodes[i];
        tests += x->kind == ENG_X_TEST;
        lists += x->kind == ENG_X_LIST;
        names_with_keys += x->kind == ENG_X_NAME && x->key.len > 0;
        if (x->kind == ENG_X_TEST && x->op == ENG_OP_HAS_ANY) {
            cr_assert_eq(x->key.len, strlen("has any"));
        }
    }
    cr_assert_eq(tests, 4);
    cr_assert_eq(lists, 2);
    cr_assert_eq(names_with_keys, 1);
    eng_ast_destroy(&a);
}

Test(eng_parse, nesting_is_bounded)
{
    char src[4096];
    size_t n = (size_t)snprintf(src, sizeof src, "route r when ");
    for (int i = 0; i < ENG_PARSE_MAX_DEPTH + 5; i++) {
        src[n++] = '(';
    }
    snprintf(src + n, sizeof src - n, "tools");
    eng_diags_t *d = eng_diags_new();
    eng_ast_t *a = s_parse(src, d);
    cr_assert_eq(a->nerrors, 1);
    cr_assert(strstr(eng_diags_get(d, 0)->msg, "nested deeper than 64"));
    eng_ast_destroy(&a);
    eng_diags_destroy(&d);
}

Test(eng_parse, long_chains_are_bounded)
{
    size_t cap = 64 + 10 * (ENG_PARSE_MAX_TREE + 10);
    char *src = malloc(cap);
    size_t n = (size_t)snprintf(src, cap, "route r when tools");
    for (int i = 0; i < ENG_PARSE_MAX_TREE + 5; i++) {
        n += (size_t)snprintf(src + n, cap - n, " or json");
    }
    snprintf(src + n, cap - n, " { tier t }");
    eng_diags_t *d = eng_diags_new();
    eng_ast_t *a = s_parse(src, d);
    cr_assert_eq(a->nerrors, 1);
    cr_assert(strstr(eng_diags_get(d, 0)->msg, "condition too long"));
    eng_ast_destroy(&a);
    eng_diags_destroy(&d);
    free(src);
}

Test(eng_parse, recovery_reports_each_statement_once)
{
    const char *src = "tier a max\n"           /* missing number */
                      "tier b max $1 max $2\n" /* fine for the parser (dup is semantic) */
                      "route x when ( { tier a }\n"
                      "route y { tier a }\n";
    eng_diags_t *d = eng_diags_new();
    eng_ast_t *a = s_parse(src, d);
    cr_assert_eq(a->nerrors, 2);
    cr_assert_eq(eng_diags_get(d, 0)->line, 2); /* the value is missing where 'tier' starts */
    cr_assert_eq(eng_diags_get(d, 1)->line, 3);
    cr_assert_eq(a->nstmts, 2); /* tier b and route y survive */
    eng_ast_destroy(&a);
    eng_diags_destroy(&d);
}

Test(eng_parse, property_table_is_consistent)
{
    const eng_propdef_t *defs = eng_parse_propdefs();
    int n = 0;
    for (const eng_propdef_t *p = defs; p->name; p++, n++) {
        cr_assert(p->min >= 1 && p->min <= p->max, "%s", p->name);
        cr_assert_not_null(p->help);
        cr_assert(p->stmt != ENG_ST_INCLUDE && p->stmt != ENG_ST_HINT);
    }
    cr_assert_geq(n, ENG_P_COUNT);
    cr_assert_str_eq(eng_parse_stmt_name(ENG_ST_ROUTE), "route");
}

/* Loading -------------------------------------------------------------------------- */

Test(eng_parse, includes_can_be_forbidden)
{
    const char *src = "include \"policies/default.policy\"\ntier a\nroute r { tier a }\n";
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p =
        eng_policy_compile("fuzz", src, strlen(src), NULL, cat, d, ENG_POLICY_NO_INCLUDES);
    cr_assert_null(p);
    cr_assert_str_eq(eng_diags_get(d, 0)->msg, "include is not allowed here");
    eng_diags_destroy(&d);
    /* The same text from memory includes relative to the current directory. */
    d = eng_diags_new();
    p = eng_policy_load_buffer("mem", src, strlen(src), cat, d);
    cr_assert_null(p); /* tier a comes after default.policy's unbounded premium */
    cr_assert_geq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
}

Test(eng_parse, missing_file_and_no_catalog)
{
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    cr_assert_null(eng_policy_load("tests/golden/policy/nope.policy", cat, d));
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    cr_assert_eq(eng_diags_get(d, 0)->line, 0);
    eng_diags_destroy(&d);
    d = eng_diags_new();
    cr_assert_null(eng_policy_load_buffer("x", "tier a", 6, NULL, d));
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    eng_diags_destroy(&d);
    /* diags may be NULL */
    cr_assert_null(eng_policy_load_buffer("x", "tier", 4, cat, NULL));
    eng_catalog_destroy(&cat);
}

/* A file of garbage stops after ENG_MAX_ERRORS errors, one more saying so,
 * instead of reporting (and locating, from the top) one error per token. */
Test(eng_parse, stops_after_too_many_errors)
{
    size_t n = 5000, len = 0;
    char *src = malloc(n * 4 + 1);
    cr_assert_not_null(src);
    for (size_t i = 0; i < n; i++) {
        len += (size_t)sprintf(src + len, "%s", i % 2 ? "@@\n" : "$ \n");
    }
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load_buffer("garbage.policy", src, len, cat, d);
    cr_assert_null(p);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), ENG_MAX_ERRORS + 1);
    cr_assert_eq(eng_diags_size(d), ENG_MAX_ERRORS + 1);
    const eng_diag_t *last = eng_diags_get(d, eng_diags_size(d) - 1);
    cr_assert_not_null(last);
    cr_assert_str_eq(last->msg,
                     "too many errors (more than 20); the rest of the file is not checked");
    cr_assert_str_eq(last->code, "limit");
    cr_assert_lt(last->line, 30, "stopped early, at line %d", last->line);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
    free(src);
}

/* Exactly ENG_MAX_ERRORS errors are all reported, with no "too many". */
Test(eng_parse, max_errors_reported_without_stopping)
{
    char src[ENG_MAX_ERRORS * 4 + 1];
    size_t len = 0;
    for (int i = 0; i < ENG_MAX_ERRORS; i++) {
        len += (size_t)sprintf(src + len, "@\n");
    }
    eng_diags_t *d = eng_diags_new();
    eng_ast_t *a = eng_parse("t.policy", src, len, d);
    cr_assert_not_null(a);
    cr_assert_eq(a->nerrors, ENG_MAX_ERRORS);
    cr_assert(!a->stopped);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), ENG_MAX_ERRORS);
    for (size_t i = 0; i < eng_diags_size(d); i++) {
        cr_assert(strstr(eng_diags_get(d, i)->msg, "too many errors") == NULL);
    }
    eng_ast_destroy(&a);
    eng_diags_destroy(&d);
}

/* A policy with more semantic errors than ENG_MAX_ERRORS: the compile stops,
 * and the "too many errors" stays last after sorting, though later statements
 * and earlier-line errors were reported before it. Syntax errors count too. */
Test(eng_parse, compile_stops_after_too_many_errors)
{
    char src[8192];
    size_t len = (size_t)sprintf(src, "tier free max $0\n");
    for (int i = 0; i < 5; i++) {
        len += (size_t)sprintf(src + len, "route s%d { tier @ }\n", i); /* syntax */
    }
    for (int i = 0; i < 40; i++) {
        len += (size_t)sprintf(src + len, "route r%d { tier nope%d }\n", i, i); /* semantic */
    }
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load_buffer("many.policy", src, len, cat, d);
    cr_assert_null(p);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), ENG_MAX_ERRORS + 1);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_WARNING), 0);
    size_t n = eng_diags_size(d);
    cr_assert_eq(n, ENG_MAX_ERRORS + 1);
    const eng_diag_t *last = eng_diags_get(d, n - 1);
    cr_assert_str_eq(last->msg,
                     "too many errors (more than 20); the rest of the policy is not checked");
    /* At the route that would have been the 21st error: the 16th semantic one. */
    cr_assert_eq(last->line, 1 + 5 + 16, "line %d", last->line);
    for (size_t i = 1; i + 1 < n; i++) {
        cr_assert_leq(eng_diags_get(d, i - 1)->line, eng_diags_get(d, i)->line, "sorted");
    }
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
}

/* The caret line of a diagnostic on a very long line is cut to what is shown. */
Test(eng_parse, long_line_diagnostic_is_cut)
{
    size_t len = 100000;
    char *src = malloc(len + 1);
    cr_assert_not_null(src);
    memset(src, 'x', len);
    memcpy(src, "tier ", 5);
    src[len] = '\0';
    src[len / 2] = '@';
    eng_catalog_t *cat = s_catalog();
    eng_diags_t *d = eng_diags_new();
    cr_assert_null(eng_policy_load_buffer("long.policy", src, len, cat, d));
    const eng_diag_t *first = eng_diags_get(d, 0);
    cr_assert_not_null(first);
    cr_assert_eq(first->line, 1);
    cr_assert_lt(strlen(first->source_line), sizeof first->source_line);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
    free(src);
}
