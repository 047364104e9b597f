/* test_policy_authoring.c - what the policy language offers its authors:
 * provider allow/deny lists per group and per rule, a rule's min_context,
 * and the "did you mean" helper behind the diagnostics. Resolved against
 * the bundled catalog, where openai/gpt-4o is sold by openai, openrouter
 * and azure, and the Claude models have 200k windows.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "eng_policy_internal.h"

#include "../alloc_count.h"

static const char s_policy[] =
    "tier budget   max $0.15\n"
    "tier standard max $10\n"
    "tier premium\n"
    "group default  models \"*\"\n"
    "group oa       models \"openai/*\"\n"
    "group oa-only  models \"openai/*\" deny_providers \"azure\", \"openrouter\"\n"
    "group azure    models \"*\" allow_providers \"azure\"\n"
    "group wide     models \"*\" min_context 200k\n"
    "route anth when hints has \"anth\" { tier standard  allow_providers \"anthropic\" }\n"
    "route no-oa when hints has \"no-oa\" { tier standard  deny_providers \"openai\" }\n"
    "route wide when hints has \"wide\" { tier standard  min_context 200k }\n"
    "route d { tier standard }\n";

static eng_catalog_t *s_cat;
static eng_policy_t *s_pol;

static void s_setup(void)
{
    s_cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(s_cat, "policies/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(s_cat, &err), 0, "%s", err.msg);
    eng_diags_t *d = eng_diags_new();
    s_pol = eng_policy_load_buffer("t.policy", s_policy, strlen(s_policy), s_cat, d);
    if (!s_pol) {
        eng_diags_print(d, stderr);
    }
    cr_assert_not_null(s_pol);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_WARNING), 0);
    eng_diags_destroy(&d);
}

static void s_teardown(void)
{
    eng_policy_destroy(&s_pol);
    eng_catalog_destroy(&s_cat);
}

TestSuite(authoring, .init = s_setup, .fini = s_teardown);

static hpp_features_t s_req(const char *model, const char *group, const char *hint)
{
    hpp_features_t f;
    hpp_features_init(&f);
    if (model) {
        f.model = (hpp_str_t){model, strlen(model)};
    }
    if (group) {
        f.group = (hpp_str_t){group, strlen(group)};
    }
    if (hint) {
        f.hints[0] = (hpp_str_t){hint, strlen(hint)};
        f.nhints = 1;
    }
    f.prompt_tokens = 1000;
    return f;
}

/* Providers of the answer and of every fallback. */
static void s_providers(const eng_decision_t *d, const char **out, size_t *n)
{
    *n = 0;
    out[(*n)++] = d->endpoint->provider;
    for (uint32_t i = 0; i < d->nfallbacks; i++) {
        out[(*n)++] = d->fallbacks[i]->provider;
    }
}

static bool s_has(const char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return true;
        }
    }
    return false;
}

Test(authoring, group_without_lists_reaches_every_endpoint_of_its_models)
{
    hpp_features_t f = s_req("openai/gpt-4o", "oa", NULL);
    eng_decision_t d;
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    const char *p[16];
    size_t n;
    s_providers(&d, p, &n);
    cr_assert(s_has(p, n, "azure") && s_has(p, n, "openrouter"));
}

Test(authoring, group_deny_providers_drops_their_endpoints)
{
    hpp_features_t f = s_req("openai/gpt-4o", "oa-only", NULL);
    eng_decision_t d;
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    const char *p[16];
    size_t n;
    s_providers(&d, p, &n);
    cr_assert_str_eq(p[0], "openai");
    cr_assert(!s_has(p, n, "azure") && !s_has(p, n, "openrouter"));
    /* Auto too, and the trace names the reason. */
    f = s_req(NULL, "oa-only", NULL);
    eng_trace_entry_t entries[128];
    eng_trace_t tr = {.entries = entries, .cap = 128};
    cr_assert_eq(eng_resolve(s_pol, &f, &d, &tr), HPP_OK, "%s", d.message);
    s_providers(&d, p, &n);
    cr_assert(!s_has(p, n, "azure") && !s_has(p, n, "openrouter"));
    bool named = false;
    for (size_t i = 0; i < tr.n; i++) {
        const char *prov = entries[i].endpoint->provider;
        if (strcmp(prov, "azure") == 0 || strcmp(prov, "openrouter") == 0) {
            named = named || entries[i].reason == ENG_REJ_POLICY_PROVIDER;
            cr_assert_neq(entries[i].reason, ENG_REJ_CHOSEN);
            cr_assert_neq(entries[i].reason, ENG_REJ_SHADOWED);
        }
    }
    cr_assert_str_eq(eng_reject_name(ENG_REJ_POLICY_PROVIDER), "policy_provider");
}

Test(authoring, group_allow_providers_picks_an_allowed_endpoint)
{
    /* gpt-4o's usual endpoint is openai's; the group may only call azure. */
    hpp_features_t f = s_req("openai/gpt-4o", "azure", NULL);
    eng_decision_t d;
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.endpoint->provider, "azure");
    cr_assert_eq(d.nfallbacks, 0);
    /* A model azure does not sell: no endpoint the group's providers allow. */
    f = s_req("anthropic/claude-sonnet-4", "azure", NULL);
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_E_NO_CANDIDATE);
    cr_assert(strstr(d.message, "providers allow") != NULL, "%s", d.message);
}

Test(authoring, rule_provider_lists)
{
    hpp_features_t f = s_req(NULL, NULL, "anth");
    eng_decision_t d;
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    const char *p[16];
    size_t n;
    s_providers(&d, p, &n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(p[i], "anthropic");
    }
    f = s_req(NULL, NULL, "no-oa");
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    s_providers(&d, p, &n);
    cr_assert(!s_has(p, n, "openai"));
    /* The same request under the catch-all picks an openai endpoint. */
    f = s_req(NULL, NULL, NULL);
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.endpoint->provider, "openai");
}

Test(authoring, rule_min_context)
{
    hpp_features_t f = s_req(NULL, NULL, "wide");
    eng_decision_t d;
    eng_trace_entry_t entries[128];
    eng_trace_t tr = {.entries = entries, .cap = 128};
    cr_assert_eq(eng_resolve(s_pol, &f, &d, &tr), HPP_OK, "%s", d.message);
    cr_assert_geq(d.endpoint->context_length ? d.endpoint->context_length : d.model->context_length,
                  200000);
    for (uint32_t i = 0; i < d.nfallbacks; i++) {
        const eng_endpoint_t *e = d.fallbacks[i];
        size_t nm;
        const eng_model_t *m = &eng_catalog_models(s_cat, &nm)[e->model];
        cr_assert_geq(e->context_length ? e->context_length : m->context_length, 200000);
    }
    bool named = false;
    for (size_t i = 0; i < tr.n; i++) {
        named = named || entries[i].reason == ENG_REJ_MIN_CONTEXT;
    }
    cr_assert(named, "the trace names min_context");
    /* Without the rule the cheapest standard model (a 128k window) wins. */
    f = s_req(NULL, NULL, NULL);
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_lt(d.model->context_length, 200000);
}

Test(authoring, group_min_context)
{
    hpp_features_t f = s_req(NULL, "wide", NULL);
    eng_decision_t d;
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_geq(d.model->context_length, 200000);
    /* A named model with a smaller window: no_candidate, saying why. */
    f = s_req("openai/gpt-4o", "wide", NULL);
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_E_NO_CANDIDATE);
    cr_assert(strstr(d.message, "min_context") != NULL, "%s", d.message);
    f = s_req("anthropic/claude-sonnet-4", "wide", NULL);
    cr_assert_eq(eng_resolve(s_pol, &f, &d, NULL), HPP_OK, "%s", d.message);
}

Test(authoring, provider_lists_and_min_context_allocate_nothing)
{
    if (!alloc_count_available()) {
        cr_skip_test("allocation counting is off under the sanitizers");
    }
    hpp_features_t reqs[] = {
        s_req(NULL, "oa-only", NULL), s_req("openai/gpt-4o", "azure", NULL),
        s_req(NULL, NULL, "anth"),    s_req(NULL, NULL, "no-oa"),
        s_req(NULL, NULL, "wide"),    s_req(NULL, "wide", NULL),
    };
    eng_decision_t d;
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        eng_resolve(s_pol, &reqs[i], &d, NULL); /* warm */
    }
    alloc_count_start();
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
            cr_assert_eq(eng_resolve(s_pol, &reqs[i], &d, NULL), HPP_OK);
        }
    }
    cr_assert_eq(alloc_count_stop(), 0);
}

/* Did you mean ------------------------------------------------------------ */

static const char *s_suggest(const char *word, const char *const *names)
{
    static char buf[300];
    eng_suggest_t sg;
    eng_suggest_init(&sg, word, strlen(word));
    for (int i = 0; names[i]; i++) {
        eng_suggest_add(&sg, names[i], strlen(names[i]));
    }
    return eng_suggest_text(&sg, buf, sizeof buf);
}

Test(suggest, nearest_name_or_nothing)
{
    const char *tiers[] = {"free", "budget", "mid", "standard", "premium", NULL};
    cr_assert_str_eq(s_suggest("budgte", tiers), "; did you mean 'budget'?");
    cr_assert_str_eq(s_suggest("standrad", tiers), "; did you mean 'standard'?");
    cr_assert_str_eq(s_suggest("MID", tiers), "; did you mean 'mid'?"); /* case */
    cr_assert_str_eq(s_suggest("mdi", tiers), "; did you mean 'mid'?"); /* swap counts one */
    cr_assert_str_eq(s_suggest("cheap", tiers), "");                    /* nothing close */
    cr_assert_str_eq(s_suggest("mid", tiers), "");                      /* exact: no hint */
    cr_assert_str_eq(s_suggest("x", tiers), "");
    cr_assert_str_eq(s_suggest("", tiers), "");
    const char *models[] = {"openai/gpt-4o", "openai/gpt-4o-mini", NULL};
    cr_assert_str_eq(s_suggest("openai/gpt-4o-mni", models),
                     "; did you mean 'openai/gpt-4o-mini'?");
}

/* Formatting --------------------------------------------------------------- */

#include <glob.h>
#include <jansson.h>

#include "eng_fmt.h"
#include "eng_lex.h"
#include "../lex_same.h"
#include "eng_parse.h"
#include "hpp_types.h"

static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Every policy in the repository: fmt is idempotent, keeps every token, and
 * text with a syntax error is refused with its errors. */
Test(fmt, idempotent_on_every_policy_in_the_repo)
{
    const char *patterns[] = {"policies/*.policy",
                              "policies/examples/*.policy",
                              "policies/examples/*/*.policy",
                              "tests/golden/policy/*.policy",
                              "tests/golden/policy/*/*.policy",
                              "tests/fuzz/corpus/fuzz_policy/*.policy"};
    size_t formatted = 0, refused = 0;
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        glob_t g;
        if (glob(patterns[p], 0, NULL, &g) != 0) {
            continue;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            size_t len;
            char *src = s_slurp(g.gl_pathv[i], &len);
            eng_diags_t *d = eng_diags_new();
            char *once = NULL, *twice = NULL;
            size_t n1 = 0, n2 = 0;
            if (eng_fmt(g.gl_pathv[i], src, len, &once, &n1, d) != 0) {
                cr_assert_gt(eng_diags_count(d, ENG_DIAG_ERROR), 0, "%s", g.gl_pathv[i]);
                cr_assert_null(once);
                refused++;
            } else {
                cr_assert(lex_same_tokens(src, len, once, n1), "%s: tokens changed", g.gl_pathv[i]);
                cr_assert_eq(eng_fmt(g.gl_pathv[i], once, n1, &twice, &n2, NULL), 0);
                cr_assert(n1 == n2 && memcmp(once, twice, n1) == 0, "%s: not idempotent",
                          g.gl_pathv[i]);
                formatted++;
            }
            free(once);
            free(twice);
            free(src);
            eng_diags_destroy(&d);
        }
        globfree(&g);
    }
    cr_assert_geq(formatted, 20);
    cr_assert_geq(refused, 3); /* the golden files with syntax errors */
}

Test(fmt, shipped_policies_are_formatted)
{
    const char *files[] = {"policies/default.policy", "policies/examples/budgets.policy",
                           "policies/examples/teams.policy",
                           "policies/examples/shared/tiers.policy"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len, n;
        char *src = s_slurp(files[i], &len);
        char *out = NULL;
        cr_assert_eq(eng_fmt(files[i], src, len, &out, &n, NULL), 0);
        cr_assert(n == len && memcmp(out, src, n) == 0, "%s is not formatted (hpp-policy fmt -w)",
                  files[i]);
        free(out);
        free(src);
    }
}

static char *s_fmt(const char *src)
{
    char *out = NULL;
    size_t n;
    cr_assert_eq(eng_fmt("t.policy", src, strlen(src), &out, &n, NULL), 0, "%s", src);
    return out;
}

Test(fmt, canonical_layout)
{
    /* Spacing, indentation, blank lines, alignment, comments kept. */
    char *out = s_fmt("\xef\xbb\xbf\n\n# head\r\n"
                      "tier  a   max $1 # cheap\n"
                      "tier long_name max $2   #dear\n\n\n\n"
                      "group g { models \"*\" , \"x/*\" ; multiplier 1 }\n"
                      "hint h when( text_length>0 and meta . k==\"v\" )\n"
                      "        or hints has any[ \"a\",\"b\" ]\n"
                      "route r when h { tier a\n"
                      "prefer \"x\",\n"
                      "\"y\"\n"
                      "  }\n");
    cr_assert_str_eq(out, "# head\n"
                          "tier a          max $1  # cheap\n"
                          "tier long_name  max $2  #dear\n"
                          "\n"
                          "group g  { models \"*\", \"x/*\"; multiplier 1 }\n"
                          "hint h  when (text_length > 0 and meta.k == \"v\")\n"
                          "    or hints has any [\"a\", \"b\"]\n"
                          "route r when h { tier a\n"
                          "    prefer \"x\",\n"
                          "        \"y\"\n"
                          "}\n");
    free(out);
    /* A word that starts a statement elsewhere continues a condition here. */
    out = s_fmt("hint x when tools or\ngroup == \"a\"\n");
    cr_assert_str_eq(out, "hint x  when tools or\n    group == \"a\"\n");
    free(out);
    /* Comment lines: indented as the code after them, never left of their block. */
    out = s_fmt("hint x when tools\n# why\nor json\nroute r {\ntier a\n# end\n}\n");
    cr_assert_str_eq(out, "hint x  when tools\n    # why\n    or json\nroute r {\n    tier a\n"
                          "    # end\n}\n");
    free(out);
    out = s_fmt("");
    cr_assert_str_eq(out, "");
    free(out);
}

Test(fmt, refuses_text_with_errors)
{
    eng_diags_t *d = eng_diags_new();
    char *out = (char *)1;
    size_t n;
    const char *bad = "tier a max $1\nroute r when { tier a }\n";
    cr_assert_eq(eng_fmt("bad.policy", bad, strlen(bad), &out, &n, d), -1);
    cr_assert_null(out);
    cr_assert_eq(eng_diags_count(d, ENG_DIAG_ERROR), 1);
    eng_diags_destroy(&d);
}

/* Editor syntax files ------------------------------------------------------- */

static bool s_has_word(const char *text, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = strstr(text, w); p; p = strstr(p + 1, w)) {
        bool left = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool right = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (left && right) {
            return true;
        }
    }
    return false;
}

/* The keyword list covers what the compiler accepts: every field its
 * "unknown field" message lists, every property of every statement, every
 * capability. */
Test(editors, keyword_list_matches_the_compiler, .init = s_setup, .fini = s_teardown)
{
    const char *kw[256];
    size_t n = eng_parse_keywords(kw, 256);
    cr_assert_lt(n, 256);
    const char *src = "tier t max $1\nroute r when nosuchfield > 1 { tier t }\n";
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load_buffer("k.policy", src, strlen(src), s_cat, d);
    cr_assert_null(p);
    const char *msg = eng_diags_get(d, 0)->msg;
    const char *list = strstr(msg, "expected one of: ");
    cr_assert_not_null(list, "%s", msg);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list + strlen("expected one of: "));
    size_t fields = 0;
    for (char *save = NULL, *w = strtok_r(buf, ", )", &save); w; w = strtok_r(NULL, ", )", &save)) {
        char *dot = strchr(w, '.');
        if (dot) {
            *dot = '\0'; /* meta.KEY */
        }
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            found = strcmp(kw[i], w) == 0;
        }
        cr_assert(found, "field '%s' missing from eng_parse_keywords", w);
        fields++;
    }
    cr_assert_geq(fields, 15);
    eng_diags_destroy(&d);
    for (const eng_propdef_t *pd = eng_parse_propdefs(); pd->name; pd++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            found = strcmp(kw[i], pd->name) == 0;
        }
        cr_assert(found, "property '%s' missing", pd->name);
    }
    for (int c = 0; c < HPP_NCAPS; c++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            found = strcmp(kw[i], hpp_caps[c].name) == 0;
        }
        cr_assert(found, "capability '%s' missing", hpp_caps[c].name);
    }
}

Test(editors, syntax_files_cover_every_keyword)
{
    const char *kw[256];
    size_t n = eng_parse_keywords(kw, 256);
    size_t len;
    char *vim = s_slurp("policies/editors/vim/syntax/hpp-policy.vim", &len);
    char *tm = s_slurp("policies/editors/textmate/hpp-policy.tmLanguage.json", &len);
    json_error_t jerr;
    json_t *doc = json_loads(tm, 0, &jerr);
    cr_assert_not_null(doc, "TextMate grammar is not JSON: %s (line %d)", jerr.text, jerr.line);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "scopeName")), "source.hpp-policy");
    /* The keywords' own patterns, not the comment, must name each word. */
    json_t *pats = json_object_get(json_object_get(json_object_get(doc, "repository"), "keywords"),
                                   "patterns");
    cr_assert(json_is_array(pats));
    char *joined = json_dumps(pats, 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert(s_has_word(vim, kw[i]), "vim syntax lacks '%s'", kw[i]);
        cr_assert(s_has_word(joined, kw[i]), "TextMate grammar lacks '%s'", kw[i]);
    }
    free(joined);
    json_decref(doc);
    free(vim);
    free(tm);
}

/* fuzz_policy's front end is built without comparison tracing, and its
 * dictionary gives the fuzzer the language's words whole: each keyword must
 * be there, as a line of its own in libFuzzer's "word" form. */
Test(editors, fuzz_dictionary_covers_every_keyword)
{
    const char *kw[256];
    size_t n = eng_parse_keywords(kw, 256);
    size_t len;
    char *dict = s_slurp("tests/fuzz/fuzz_policy.dict", &len);
    for (size_t i = 0; i < n; i++) {
        char line[96];
        snprintf(line, sizeof line, "\n\"%s\"\n", kw[i]);
        cr_assert_not_null(strstr(dict, line), "tests/fuzz/fuzz_policy.dict lacks \"%s\"", kw[i]);
    }
    free(dict);
}

/* check --format json ------------------------------------------------------- */

Test(diags, json_array_for_editors, .init = s_setup, .fini = s_teardown)
{
    const char *src = "tier budget max 0.15\nroute r { tier budgte }\n";
    eng_diags_t *d = eng_diags_new();
    cr_assert_null(eng_policy_load_buffer("j\"son.policy", src, strlen(src), s_cat, d));
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    eng_diags_print_json(d, mem);
    fclose(mem);
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    cr_assert_not_null(arr, "%s: %s", text, jerr.text);
    cr_assert_eq(json_array_size(arr), 2);
    json_t *e0 = json_array_get(arr, 0), *e1 = json_array_get(arr, 1);
    cr_assert_str_eq(json_string_value(json_object_get(e0, "file")), "j\"son.policy");
    cr_assert_eq(json_integer_value(json_object_get(e0, "line")), 1);
    cr_assert_eq(json_integer_value(json_object_get(e0, "col")), 17);
    cr_assert_eq(json_integer_value(json_object_get(e0, "end_col")), 21);
    cr_assert_str_eq(json_string_value(json_object_get(e0, "severity")), "error");
    cr_assert_str_eq(json_string_value(json_object_get(e0, "code")), "money");
    cr_assert_str_eq(json_string_value(json_object_get(e1, "code")), "unknown-tier");
    cr_assert_not_null(strstr(json_string_value(json_object_get(e1, "message")), "budget"));
    json_decref(arr);
    free(text);
    eng_diags_destroy(&d);
    /* No diagnostics: an empty array. */
    mem = open_memstream(&text, &tlen);
    eng_diags_print_json(NULL, mem);
    fclose(mem);
    cr_assert_str_eq(text, "[]\n");
    free(text);
}
