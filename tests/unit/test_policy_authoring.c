/* test_policy_authoring.c - what the policy language offers its authors:
 * provider allow/deny lists per group and per rule, a rule's min_context,
 * and the "did you mean" helper behind the diagnostics. Resolved against
 * the bundled catalog, where openai/gpt-4o is sold by openai, openrouter
 * and azure, and the Claude models have 200k windows.
 */
#include <criterion/criterion.h>
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

Test(authoring, provider_lists_and_min_context_allocate_nothing)
{
    if (!alloc_count_available()) {
        cr_skip_test("allocation counting is off under the sanitizers");
    }
    hpp_features_t reqs[] = {
        s_req(NULL, "oa-only", NULL), s_req("openai/gpt-4o", "azure", NULL),
        s_req(NULL, NULL, "anth"),    s_req(NULL, NULL, "no-oa"),
        s_req(NULL, NULL, "wide"),
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
