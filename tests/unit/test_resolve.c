/* test_resolve.c - every resolver semantic against a purpose-built catalog.
 *
 * The catalog below is small enough that each expected answer can be worked
 * out by hand; the comments next to each model give its tier under the test
 * policy (blended price = (3 x input + output) / 4 per 1M tokens).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "policy_fixture.h"

static const char s_catalog_json[] =
    "{\"object\":\"list\",\"providers\":[\"p1\",\"p2\",\"p3\",{\"id\":\"local\",\"local\":true}],"
    "\"data\":["
    /* $0 local: free tier, tools only, 8k window */
    "{\"id\":\"a/free-chat\",\"owned_by\":\"a\",\"provider\":\"local\",\"context_length\":8000,"
    " \"capabilities\":[\"tools\"]},"
    /* blend 0.10: budget, 16k */
    "{\"id\":\"a/cheap\",\"owned_by\":\"a\",\"provider\":\"p1\","
    " \"pricing\":{\"input\":0.1,\"output\":0.1},\"context_length\":16000,"
    " \"capabilities\":[\"tools\",\"json\"]},"
    /* blend 0.75: mid, 32k, vision */
    "{\"id\":\"b/mid\",\"owned_by\":\"b\",\"provider\":\"p1\","
    " \"pricing\":{\"input\":0.5,\"output\":1.5},\"context_length\":32000,"
    " \"capabilities\":[\"vision\",\"tools\",\"json\"]},"
    /* blend 1.25: mid, 200k, no vision */
    "{\"id\":\"b/mid-big\",\"owned_by\":\"b\",\"provider\":\"p2\","
    " \"pricing\":{\"input\":1,\"output\":2},\"context_length\":200000,"
    " \"capabilities\":[\"tools\"]},"
    /* two endpoints, floor p2 (2/10, blend 4.0): standard, 100k, everything */
    "{\"id\":\"c/std\",\"owned_by\":\"c\",\"context_length\":100000,"
    " \"capabilities\":[\"vision\",\"tools\",\"json\",\"reasoning\"],\"endpoints\":["
    "  {\"provider\":\"p1\",\"pricing\":{\"input\":3,\"output\":15}},"
    "  {\"provider\":\"p2\",\"pricing\":{\"input\":2,\"output\":10}}]},"
    /* blend 4.375: standard, 50k */
    "{\"id\":\"c/std2\",\"owned_by\":\"c\",\"provider\":\"p3\","
    " \"pricing\":{\"input\":2.5,\"output\":10},\"context_length\":50000,"
    " \"capabilities\":[\"tools\"]},"
    /* blend 26.25: premium */
    "{\"id\":\"d/prem\",\"owned_by\":\"d\",\"provider\":\"p1\","
    " \"pricing\":{\"input\":15,\"output\":60},\"context_length\":200000,"
    " \"capabilities\":[\"vision\",\"tools\",\"json\",\"reasoning\"]},"
    /* a paid endpoint and a :free one: floor is the free one -> free tier */
    "{\"id\":\"e/gem\",\"owned_by\":\"e\",\"context_length\":8000,\"endpoints\":["
    "  {\"provider\":\"p3\",\"pricing\":{\"input\":0.3,\"output\":0.3}},"
    "  {\"provider\":\"p2\",\"native_id\":\"e/gem:free\",\"variant\":\"free\","
    "   \"pricing\":{\"input\":0,\"output\":0}}]},"
    /* disabled: never chosen */
    "{\"id\":\"f/off\",\"owned_by\":\"f\",\"provider\":\"p1\",\"status\":\"disabled\","
    " \"pricing\":{\"input\":0.01,\"output\":0.01}}"
    "]}";

static const char s_policy[] =
    "settings { default_output 1000  step up, down  free_fallback on }\n"
    "tier free     max $0\n"
    "tier budget   max $0.15\n"
    "tier mid      max $1.50\n"
    "tier standard max $10\n"
    "tier premium\n"
    "group default models \"*\"\n"
    "group small   models \"a/*\", \"e/*\"\n"
    "group vip     models \"*\" multiplier 0.5\n"
    "group eonly   models \"e/*\"\n"
    "hint code when text contains \"def \"\n"
    "route r-free   when hints has \"freebie\" { tier free }\n"
    "route r-prem   when hints has \"hard\" { tier premium  step down }\n"
    "route r-none   when hints has \"strict\" { tier mid  step none  free_fallback off }\n"
    "route r-up     when hints has \"up\" { tier budget  step up  free_fallback off }\n"
    "route r-code   when hints has \"code\" { tier standard  prefer \"c/std2\" }\n"
    "route r-reason when hints has \"reason\" { tier mid  require reasoning }\n"
    "route r-out    when hints has \"out\" { tier mid  output 5000 }\n"
    "route default { tier mid }\n";

static eng_catalog_t *s_cat;
static eng_policy_t *s_pol;

static eng_policy_t *s_compile(const char *src)
{
    return fixture_policy(src, s_cat);
}

static void s_setup(void)
{
    s_cat = fixture_catalog(s_catalog_json);
    s_pol = s_compile(s_policy);
    cr_assert_not_null(s_pol);
}

static void s_teardown(void)
{
    eng_policy_destroy(&s_pol);
    eng_catalog_destroy(&s_cat);
}

TestSuite(eng_resolve, .init = s_setup, .fini = s_teardown);

/* A request: auto, 1000 prompt tokens, default output. */
static hpp_features_t s_req(void)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 1000;
    return f;
}

static void s_hint(hpp_features_t *f, const char *h)
{
    f->hints[f->nhints].ptr = h;
    f->hints[f->nhints].len = (uint32_t)strlen(h);
    f->nhints++;
}

static hpp_str_t s_s(const char *s)
{
    hpp_str_t r = {s, (uint32_t)strlen(s)};
    return r;
}

static eng_decision_t s_run(const hpp_features_t *f)
{
    eng_decision_t d;
    eng_resolve(s_pol, f, &d, NULL);
    return d;
}

static void s_expect(const hpp_features_t *f, const char *model, const char *tier)
{
    eng_decision_t d = s_run(f);
    cr_assert_eq(d.status, HPP_OK, "status %s: %s", hpp_status_name(d.status), d.message);
    cr_assert_str_eq(d.model->id, model, "%s", d.message);
    if (tier) {
        cr_assert_str_eq(d.tier_name, tier);
    }
}

static void s_expect_status(const hpp_features_t *f, hpp_status_t st)
{
    eng_decision_t d = s_run(f);
    cr_assert_eq(d.status, st, "got %s (%s), want %s", hpp_status_name(d.status), d.message,
                 hpp_status_name(st));
    cr_assert_null(d.model);
    cr_assert_neq(d.message[0], '\0');
}

/* Tiers and order ---------------------------------------------------------- */

Test(eng_resolve, tiers_by_price_band)
{
    cr_assert_eq(eng_policy_tier_count(s_pol), 5);
    cr_assert_str_eq(eng_policy_tier_name(s_pol, 0), "free");
    cr_assert_str_eq(eng_policy_tier_name(s_pol, 4), "premium");
    hpp_features_t f = s_req();
    s_expect(&f, "b/mid", "mid"); /* cheaper of the two mid models */
    s_hint(&f, "hard");
    s_expect(&f, "d/prem", "premium");
    f = s_req();
    s_hint(&f, "freebie");
    s_expect(&f, "a/free-chat", "free");
}

Test(eng_resolve, policy_preference_before_price)
{
    hpp_features_t f = s_req();
    s_hint(&f, "code");
    s_expect(&f, "c/std2", "standard"); /* preferred although dearer than c/std */
    f.text = s_s("def f(): pass");      /* hint rule adds the same hint */
    f.nhints = 0;
    s_expect(&f, "c/std2", "standard");
}

Test(eng_resolve, request_hints_are_case_insensitive)
{
    hpp_features_t f = s_req();
    s_hint(&f, "CoDe");
    s_expect(&f, "c/std2", NULL);
}

Test(eng_resolve, auto_floor_ignores_preference)
{
    hpp_features_t f = s_req();
    s_hint(&f, "code");
    f.model = s_s("hpprouter/auto:floor");
    s_expect(&f, "c/std", "standard");
}

/* Stepping ------------------------------------------------------------------- */

Test(eng_resolve, step_up_when_tier_cannot_serve)
{
    hpp_features_t f = s_req();
    s_hint(&f, "up");
    f.prompt_tokens = 20000; /* a/cheap holds 16k: up to mid */
    s_expect(&f, "b/mid", "mid");
}

Test(eng_resolve, step_none_stays_in_tier)
{
    hpp_features_t f = s_req();
    s_hint(&f, "strict");
    f.prompt_tokens = 40000; /* b/mid holds 32k, b/mid-big 200k */
    s_expect(&f, "b/mid-big", "mid");
    f.prompt_tokens = 250000; /* nothing in mid, no stepping, no free fallback */
    s_expect_status(&f, HPP_E_NO_CANDIDATE);
}

Test(eng_resolve, step_down_and_group_filter)
{
    hpp_features_t f = s_req();
    s_hint(&f, "hard");
    f.group = s_s("small"); /* a and e models only: premium..mid empty, budget has a/cheap */
    s_expect(&f, "a/cheap", "budget");
}

/* A group without the mid models: the target tier is empty, and both
 * neighbours (budget below, standard above) can serve. */
#define S_NOMID                                                                                    \
    "tier budget max $0.15\ntier mid max $1.50\ntier standard max $10\ntier premium\n"             \
    "group nomid models \"a/*\", \"c/*\", \"d/*\"\n"

Test(eng_resolve, step_order_at_equal_distance)
{
    hpp_features_t f = s_req();
    f.group = s_s("nomid");
    const char *up = S_NOMID "route r { tier mid step up, down }\n";
    const char *down = S_NOMID "route r { tier mid step down, up }\n";
    const char *only_up = S_NOMID "route r { tier mid step up }\n";
    eng_policy_t *p = s_compile(up);
    eng_decision_t d;
    eng_resolve(p, &f, &d, NULL);
    cr_assert_str_eq(d.model->id, "c/std");
    cr_assert_str_eq(d.tier_name, "standard");
    eng_policy_destroy(&p);
    p = s_compile(down);
    eng_resolve(p, &f, &d, NULL);
    /* No free tier here: the $0 model is the cheapest of the budget band. */
    cr_assert_str_eq(d.model->id, "a/free-chat");
    cr_assert_str_eq(d.tier_name, "budget");
    eng_policy_destroy(&p);
    /* Only up: never the cheaper budget tier. */
    p = s_compile(only_up);
    eng_resolve(p, &f, &d, NULL);
    cr_assert_str_eq(d.tier_name, "standard");
    eng_policy_destroy(&p);
}

Test(eng_resolve, nothing_fits_anywhere)
{
    hpp_features_t f = s_req();
    f.prompt_tokens = 250000; /* the largest window is 200k */
    s_expect_status(&f, HPP_E_NO_CANDIDATE);
    f.prompt_tokens = 150000;
    f.images = 1; /* mid and standard cannot, budget is blind: premium (distance 2) */
    s_expect(&f, "d/prem", "premium");
}

/* Budget and free fallback ---------------------------------------------------- */

Test(eng_resolve, budget_steps_down)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0.0015; /* b/mid costs 0.0005 + 0.0015 = 0.002 */
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_str_eq(d.model->id, "a/cheap");
    cr_assert_str_eq(d.tier_name, "budget");
    cr_assert_eq(d.cost.total, INT64_C(200000000)); /* 2000 x $0.1/1M = $0.0002 */
    cr_assert_leq(d.cost.total, (hpp_pusd_t)llround(f.budget_usd * 1e12));
}

Test(eng_resolve, budget_exactly_met_is_allowed)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0.002; /* b/mid: exactly $0.002 */
    s_expect(&f, "b/mid", "mid");
}

Test(eng_resolve, free_fallback_when_nothing_paid_fits)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0;
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "a/free-chat");
    cr_assert_eq(d.cost.total, 0);
    cr_assert(strstr(d.message, "free fallback"));
}

Test(eng_resolve, free_fallback_uses_free_endpoint)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0;
    f.group = s_s("eonly"); /* only e/gem: its paid endpoint is over budget, its :free one not */
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "e/gem");
    cr_assert_str_eq(d.endpoint->provider, "p2");
    cr_assert(d.endpoint->is_free);
    cr_assert_eq(d.cost.total, 0);
}

Test(eng_resolve, insufficient_budget_without_free_fallback)
{
    hpp_features_t f = s_req();
    s_hint(&f, "strict");
    f.has_budget = true;
    f.budget_usd = 0.0001;
    s_expect_status(&f, HPP_E_INSUFFICIENT_BUDGET);
}

Test(eng_resolve, insufficient_budget_when_no_free_model_fits)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0.000001;
    f.images = 1; /* no free vision model */
    s_expect_status(&f, HPP_E_INSUFFICIENT_BUDGET);
}

Test(eng_resolve, no_candidate_is_not_a_budget_problem)
{
    hpp_features_t f = s_req();
    f.prompt_tokens = 300000; /* fits nowhere, money is not the reason */
    f.has_budget = true;
    f.budget_usd = 100;
    s_expect_status(&f, HPP_E_NO_CANDIDATE);
}

/* Named models --------------------------------------------------------------- */

Test(eng_resolve, floor_is_cheapest_enabled_endpoint)
{
    hpp_features_t f = s_req();
    f.model = s_s("c/std:floor");
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_str_eq(d.endpoint->provider, "p2");
    cr_assert_str_eq(d.rule, "floor");
    /* 1000 x $2/1M + 1000 x $10/1M */
    cr_assert_eq(d.cost.total, INT64_C(12000000000));
    cr_assert_eq(d.nfallbacks, 1);
    cr_assert_str_eq(d.fallbacks[0]->provider, "p1");
}

Test(eng_resolve, plain_id_resolves_to_itself)
{
    hpp_features_t f = s_req();
    f.model = s_s("d/prem");
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_str_eq(d.model->id, "d/prem");
    cr_assert_str_eq(d.rule, "direct");
    cr_assert_str_eq(d.tier_name, "premium");
    cr_assert_eq(d.cost.total, INT64_C(75000000000)); /* $0.015 + $0.06 */
}

Test(eng_resolve, free_variant)
{
    hpp_features_t f = s_req();
    f.model = s_s("e/gem:free");
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_eq(d.cost.total, 0);
    f.model = s_s("c/std:free");
    s_expect_status(&f, HPP_E_NO_FREE_VARIANT);
}

/* A plain id means the model's paid endpoints: e/gem's :free endpoint is
 * the cheapest, yet only e/gem:free asks for it. */
Test(eng_resolve, plain_id_means_the_paid_endpoints)
{
    hpp_features_t f = s_req();
    const char *ids[] = {"e/gem", "e/gem:floor"};
    for (size_t i = 0; i < 2; i++) {
        f.model = s_s(ids[i]);
        eng_decision_t d = s_run(&f);
        cr_assert_eq(d.status, HPP_OK, "%s: %s", ids[i], d.message);
        cr_assert_str_eq(d.endpoint->provider, "p3", "%s", ids[i]);
        cr_assert_not(d.endpoint->free_variant, "%s", ids[i]);
        cr_assert_eq(d.cost.total, INT64_C(600000000), "%s", ids[i]); /* 2000 x $0.30/1M */
        for (uint32_t k = 0; k < d.nfallbacks; k++) {
            cr_assert_not(d.fallbacks[k]->free_variant, "%s: free fallback", ids[i]);
        }
    }
    f.model = s_s("e/gem:free");
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert(d.endpoint->free_variant);
    cr_assert_eq(d.nfallbacks, 0);
}

/* A model sold only as a :free variant has no plain endpoint. */
Test(eng_resolve, free_only_model_needs_the_free_suffix)
{
    eng_catalog_t *cat = fixture_catalog(
        "{\"data\":[{\"id\":\"x/only:free\",\"provider\":\"p\","
        "\"pricing\":{\"input\":0,\"output\":0}},"
        "{\"id\":\"x/paid\",\"provider\":\"p\",\"pricing\":{\"input\":1,\"output\":1}}]}");
    eng_policy_t *pol = fixture_policy("tier free max $0\ntier paid\nroute r { tier free }\n", cat);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    eng_decision_t d;
    const char *plain[] = {"x/only", "x/only:floor"};
    for (size_t i = 0; i < 2; i++) {
        f.model = s_s(plain[i]);
        cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_E_NO_CANDIDATE, "%s: %s", plain[i],
                     d.message);
        cr_assert(strstr(d.message, "':free'"), "%s", d.message);
    }
    f.model = s_s("x/only:free");
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    /* auto may still call it through its free endpoint: a free model */
    f.model = s_s("");
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "x/only");
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* Cache writes and reasoning tokens are part of the estimate: reasoning is
 * billed as output, cache writes without a write price as input. */
Test(eng_resolve, cache_write_and_reasoning_are_estimated)
{
    hpp_features_t f = s_req();
    f.model = s_s("d/prem"); /* $15 / $60 */
    f.output_tokens = 1000;
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.cost.total, INT64_C(75000000000));
    f.cache_write_tokens = 400;
    f.reasoning_tokens = 500;
    d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK, "%s", d.message);
    cr_assert_eq(d.cost.input, INT64_C(15000000000));  /* 600 + 400 written, x $15 */
    cr_assert_eq(d.cost.output, INT64_C(90000000000)); /* (1000 + 500) x $60 */
    cr_assert_eq(d.cost.total, INT64_C(105000000000));
    /* a budget sees them too */
    f.has_budget = true;
    f.budget_usd = 0.1;
    s_expect_status(&f, HPP_E_INSUFFICIENT_BUDGET);
}

/* Output over the model's max output is not a context-window problem. */
Test(eng_resolve, max_output_is_its_own_reason)
{
    eng_catalog_t *cat =
        fixture_catalog("{\"data\":[{\"id\":\"x/m\",\"provider\":\"p\",\"context_length\":10000,"
                        "\"max_output\":1000,\"pricing\":{\"input\":1,\"output\":1}}]}");
    eng_policy_t *pol = fixture_policy("tier any\nroute r { tier any }\n", cat);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    f.model = s_s("x/m");
    f.output_tokens = 1001;
    eng_decision_t d;
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_E_NO_CANDIDATE);
    cr_assert(strstr(d.message, "max output"), "%s", d.message);
    cr_assert_null(strstr(d.message, "context window"), "%s", d.message);
    /* reasoning counts against it too, and the trace names the limit */
    f.output_tokens = 800;
    f.reasoning_tokens = 300;
    f.model = s_s("");
    eng_trace_entry_t entries[8];
    eng_trace_t tr = {.entries = entries, .cap = 8};
    cr_assert_eq(eng_resolve(pol, &f, &d, &tr), HPP_E_NO_CANDIDATE);
    cr_assert_eq(tr.n, 1);
    cr_assert_eq(entries[0].reason, ENG_REJ_MAX_OUTPUT);
    cr_assert_str_eq(eng_reject_name(ENG_REJ_MAX_OUTPUT), "max_output");
    /* the window: prompt + output + reasoning */
    f.output_tokens = 500;
    f.reasoning_tokens = 400;
    f.prompt_tokens = 9200;
    cr_assert_eq(eng_resolve(pol, &f, &d, &tr), HPP_E_NO_CANDIDATE);
    cr_assert_eq(entries[0].reason, ENG_REJ_CONTEXT);
    f.prompt_tokens = 9000;
    cr_assert_eq(eng_resolve(pol, &f, &d, &tr), HPP_OK, "%s", d.message);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* A per-call model is placed and ranked by what the reference request
 * (1000 tokens) costs it: $0.02 a call is $20 per 1M tokens, premium, not a
 * $0 blend that wins the budget tier. */
Test(eng_resolve, per_call_models_priced_by_the_reference_request)
{
    eng_catalog_t *cat = fixture_catalog(
        "{\"data\":[{\"id\":\"acme/"
        "percall\",\"provider\":\"p\",\"pricing\":{\"per_request\":0.02}},"
        "{\"id\":\"acme/cheap\",\"provider\":\"p\",\"pricing\":{\"input\":0.06,\"output\":0.06}},"
        "{\"id\":\"acme/tiny-fee\",\"provider\":\"p\",\"pricing\":{\"input\":0.01,\"output\":0.01,"
        "\"per_request\":0.0001}}]}");
    eng_policy_t *pol = fixture_policy("tier budget max $0.15\ntier mid max $1.50\n"
                                       "tier standard max $10\ntier premium\n"
                                       "route r { tier budget  step up }\n",
                                       cat);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    f.prompt_tokens = 100;
    f.output_tokens = 100;
    eng_decision_t d;
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "acme/cheap");
    cr_assert_eq(d.cost.total, INT64_C(12000000)); /* $0.000012 */
    /* acme/tiny-fee: $0.01 + $0.0001 / 1000 tokens = $0.11 per 1M, still
     * budget, ranked after acme/cheap ($0.06) although its tokens are cheaper */
    /* A long prompt: the fee weighs nothing next to the tokens, and the
     * request's own estimate ranks acme/tiny-fee first ($0.0101 against
     * $0.06); acme/cheap is its fallback. */
    f.prompt_tokens = 999900;
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "acme/tiny-fee", "got %s", d.model->id);
    cr_assert_eq(d.cost.total, INT64_C(10100000000));
    cr_assert_geq(d.nfallbacks, 1);
    cr_assert_str_eq(d.fallbacks[0]->native_id, "acme/cheap");
    f.prompt_tokens = 100;
    f.model = s_s("acme/percall");
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK);
    cr_assert_str_eq(d.tier_name, "premium");
    f.model = s_s("acme/tiny-fee");
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK);
    cr_assert_str_eq(d.tier_name, "budget");
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* The budget is checked exactly around the cost, whatever the shortcuts
 * (the bound's least prices, the test before a group's multiplier scales a
 * cost): a budget one picodollar short refuses, the exact cost is allowed,
 * and a trace (which turns the shortcuts off) gives the same answers. The
 * prices are not whole thousands of picodollars, so 0.777 rounds each part;
 * the fee puts the tier on the request's own estimate (cheapest first). */
Test(eng_resolve, budget_exact_at_the_cost_with_and_without_shortcuts)
{
    eng_catalog_t *cat =
        fixture_catalog("{\"data\":[{\"id\":\"x/odd\",\"provider\":\"p\",\"context_length\":100000,"
                        "\"pricing\":{\"input\":0.123457,\"output\":0.987653}},"
                        "{\"id\":\"x/fee\",\"provider\":\"p\",\"context_length\":100000,"
                        "\"pricing\":{\"input\":0.2,\"output\":0.2,\"per_request\":0.0001}}]}");
    eng_policy_t *pol = fixture_policy("tier any\ngroup default models \"*\"\n"
                                       "group odd models \"*\" multiplier 0.777\n"
                                       "route r { tier any }\n",
                                       cat);
    cr_assert_not_null(pol);
    static eng_trace_entry_t entries[16];
    const char *const groups[] = {"default", "odd"};
    for (int g = 0; g < 2; g++) {
        hpp_features_t f = s_req();
        f.prompt_tokens = 1001;
        f.output_tokens = 333;
        f.group = s_s(groups[g]);
        eng_decision_t d, t;
        cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
        const eng_endpoint_t *best = d.endpoint;
        hpp_pusd_t cost = d.cost.total;
        for (int k = -3; k <= 3; k++) {
            f.has_budget = true;
            f.budget_usd = (double)(cost + k) / 1e12;
            cr_assert_eq(llround(f.budget_usd * 1e12), cost + k);
            eng_resolve(pol, &f, &d, NULL);
            eng_trace_t tr = {.entries = entries, .cap = 16};
            eng_resolve(pol, &f, &t, &tr);
            cr_assert_eq(d.status, t.status, "%s %+d: %s / traced %s", groups[g], k, d.message,
                         t.message);
            cr_assert_eq(d.endpoint, t.endpoint);
            cr_assert_eq(d.cost.total, t.cost.total);
            if (k >= 0) {
                cr_assert_eq(d.status, HPP_OK, "%s %+d: %s", groups[g], k, d.message);
                cr_assert_eq(d.endpoint, best);
                cr_assert_eq(d.cost.total, cost);
            } else {
                cr_assert_eq(d.status, HPP_E_INSUFFICIENT_BUDGET, "%s %+d: %s", groups[g], k,
                             d.message);
            }
        }
    }
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* The look-ahead after the choice counts only the models the group may
 * use: 70 refused ones between the choice and the group's next models do
 * not use it up, with or without a trace. */
Test(eng_resolve, group_refusals_do_not_use_up_the_look_ahead)
{
    char json[16384];
    size_t n = (size_t)snprintf(json, sizeof json,
                                "{\"data\":[{\"id\":\"ok/a\",\"provider\":\"p\","
                                "\"pricing\":{\"input\":0.5,\"output\":0.5}}");
    for (int i = 0; i < 70; i++) {
        n += (size_t)snprintf(json + n, sizeof json - n,
                              ",{\"id\":\"other/m%02d\",\"provider\":\"p\","
                              "\"pricing\":{\"input\":1,\"output\":1}}",
                              i);
    }
    snprintf(json + n, sizeof json - n,
             ",{\"id\":\"ok/b\",\"provider\":\"p\",\"pricing\":{\"input\":1.5,\"output\":1.5}},"
             "{\"id\":\"ok/c\",\"provider\":\"p\",\"pricing\":{\"input\":1.6,\"output\":1.6}}]}");
    eng_catalog_t *cat = fixture_catalog(json);
    eng_policy_t *pol = fixture_policy("tier any\ngroup default models \"*\"\n"
                                       "group few models \"ok/*\"\nroute r { tier any }\n",
                                       cat);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    f.group = s_s("few");
    static eng_trace_entry_t entries[128];
    for (int traced = 0; traced < 2; traced++) {
        eng_trace_t tr = {.entries = entries, .cap = 128};
        eng_decision_t d;
        cr_assert_eq(eng_resolve(pol, &f, &d, traced ? &tr : NULL), HPP_OK, "%s", d.message);
        cr_assert_str_eq(d.model->id, "ok/a");
        cr_assert_eq(d.nfallbacks, 2, "traced %d: %u fallbacks", traced, d.nfallbacks);
        cr_assert_str_eq(d.fallbacks[0]->native_id, "ok/b");
        cr_assert_str_eq(d.fallbacks[1]->native_id, "ok/c");
    }
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* LiteLLM's *_above_200k_tokens prices apply to a prompt above 200k. */
Test(eng_resolve, long_prompt_prices_apply_above_the_threshold)
{
    static const char lite[] =
        "{\"gemini-2.5-pro\":{\"litellm_provider\":\"vertex_ai-language-models\",\"mode\":\"chat\","
        "\"max_input_tokens\":1048576,\"max_output_tokens\":65535,"
        "\"input_cost_per_token\":1.25e-06,\"output_cost_per_token\":1e-05,"
        "\"input_cost_per_token_above_200k_tokens\":2.5e-06,"
        "\"output_cost_per_token_above_200k_tokens\":1.5e-05,"
        "\"output_cost_per_token_above_200k_tokens_priority\":9e-05}}";
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(
        eng_catalog_load_buffer(cat, "lite.json", lite, strlen(lite), ENG_FMT_LITELLM, &err), 0,
        "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0);
    eng_policy_t *pol = fixture_policy("tier any\nroute r { tier any }\n", cat);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    f.model = s_s("google/gemini-2.5-pro");
    f.output_tokens = 1000;
    f.prompt_tokens = 200000; /* not above: the usual prices */
    eng_decision_t d;
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_eq(d.cost.total, INT64_C(260000000000)); /* $0.25 + $0.01 */
    f.prompt_tokens = 250000;
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_eq(d.cost.input, INT64_C(625000000000)); /* 250k x $2.50 */
    cr_assert_eq(d.cost.output, INT64_C(15000000000)); /* 1k x $15, not the priority $90 */
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

/* Long-prompt prices move a model to the tier they fall in, for a request
 * whose prompt is above the threshold: not offered in its usual tier, offered
 * in the one its long prices are in. */
Test(eng_resolve, long_prompt_prices_move_the_tier)
{
    static const char lite[] =
        "{\"gpt-long\":{\"litellm_provider\":\"openai\",\"mode\":\"chat\","
        "\"max_input_tokens\":1048576,\"max_output_tokens\":65535,"
        "\"input_cost_per_token\":1e-06,\"output_cost_per_token\":1e-06,"
        "\"input_cost_per_token_above_200k_tokens\":2e-05,"
        "\"output_cost_per_token_above_200k_tokens\":2e-05},"
        "\"gpt-steady\":{\"litellm_provider\":\"openai\",\"mode\":\"chat\","
        "\"max_input_tokens\":1048576,\"max_output_tokens\":65535,"
        "\"input_cost_per_token\":1.5e-06,\"output_cost_per_token\":1.5e-06}}";
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(
        eng_catalog_load_buffer(cat, "lite.json", lite, strlen(lite), ENG_FMT_LITELLM, &err), 0,
        "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0);
    eng_policy_t *pol = fixture_policy("tier cheap max $2\ntier premium\n"
                                       "route big when prompt_tokens > 500000 { tier premium }\n"
                                       "route r { tier cheap }\n",
                                       cat);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    f.output_tokens = 1000;
    eng_decision_t d;
    f.prompt_tokens = 200000; /* at the usual prices gpt-long is the cheapest */
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "openai/gpt-long");
    cr_assert_str_eq(d.tier_name, "cheap");
    f.prompt_tokens = 250000; /* above: $20/$20 is premium's, not cheap's */
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "openai/gpt-steady", "got %s", d.model->id);
    cr_assert_str_eq(d.tier_name, "cheap");
    f.prompt_tokens = 600000; /* the premium rule: gpt-long is there now */
    cr_assert_eq(eng_resolve(pol, &f, &d, NULL), HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "openai/gpt-long", "got %s", d.model->id);
    cr_assert_str_eq(d.tier_name, "premium");
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
}

Test(eng_resolve, auto_free)
{
    hpp_features_t f = s_req();
    f.model = s_s("hpprouter/auto:free");
    s_expect(&f, "a/free-chat", "free");
    f.images = 1;
    s_expect_status(&f, HPP_E_NO_FREE_VARIANT);
}

Test(eng_resolve, unknown_and_disabled_models)
{
    hpp_features_t f = s_req();
    f.model = s_s("z/none");
    s_expect_status(&f, HPP_E_UNKNOWN_MODEL);
    f.model = s_s("z/none:floor");
    s_expect_status(&f, HPP_E_UNKNOWN_MODEL);
    f.model = s_s("f/off");
    s_expect_status(&f, HPP_E_NO_CANDIDATE);
}

Test(eng_resolve, disabled_model_never_chosen_by_auto)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0.00003; /* only f/off ($0.00002) would fit among paid models */
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_str_neq(d.model->id, "f/off");
    cr_assert_eq(d.cost.total, 0);
}

Test(eng_resolve, direct_over_budget)
{
    hpp_features_t f = s_req();
    f.model = s_s("d/prem");
    f.has_budget = true;
    f.budget_usd = 0.01;
    s_expect_status(&f, HPP_E_INSUFFICIENT_BUDGET);
}

/* Groups ---------------------------------------------------------------------- */

Test(eng_resolve, model_not_allowed_for_group)
{
    hpp_features_t f = s_req();
    f.group = s_s("small");
    f.model = s_s("c/std");
    s_expect_status(&f, HPP_E_MODEL_NOT_ALLOWED);
    f.model = s_s("c/std:floor");
    s_expect_status(&f, HPP_E_MODEL_NOT_ALLOWED);
    f.model = s_s("a/cheap");
    s_expect(&f, "a/cheap", "budget");
}

Test(eng_resolve, unknown_group_is_bad_request)
{
    hpp_features_t f = s_req();
    f.group = s_s("nobody");
    s_expect_status(&f, HPP_E_BAD_REQUEST);
}

Test(eng_resolve, group_multiplier_applies_to_cost_and_budget)
{
    hpp_features_t f = s_req();
    f.group = s_s("vip");
    eng_decision_t d = s_run(&f);
    cr_assert_str_eq(d.model->id, "b/mid");
    cr_assert_eq(d.cost.total, INT64_C(1000000000)); /* half of $0.002 */
    cr_assert_eq(d.cost.input + d.cost.output + d.cost.cache + d.cost.fees, d.cost.total);
    /* $0.0012 is below list price but above vip price */
    f.has_budget = true;
    f.budget_usd = 0.0012;
    s_expect(&f, "b/mid", "mid");
}

/* Constraints -------------------------------------------------------------------- */

Test(eng_resolve, context_window_filters)
{
    hpp_features_t f = s_req();
    f.prompt_tokens = 35000; /* + 1000 > b/mid's 32k */
    s_expect(&f, "b/mid-big", "mid");
    f.prompt_tokens = 31000;
    f.output_tokens = 1000; /* exactly 32k fits */
    s_expect(&f, "b/mid", "mid");
}

Test(eng_resolve, capabilities_filter)
{
    hpp_features_t f = s_req();
    f.images = 2;
    s_expect(&f, "b/mid", "mid");
    f.prompt_tokens = 40000; /* vision + 41k: mid cannot; standard c/std can */
    s_expect(&f, "c/std", "standard");
    f = s_req();
    f.vision = true;
    f.prompt_tokens = 40000;
    s_expect(&f, "c/std", "standard");
    f = s_req();
    s_hint(&f, "reason"); /* rule requires reasoning: none in mid */
    s_expect(&f, "c/std", "standard");
    f = s_req();
    s_hint(&f, "freebie");
    f.json = true; /* no free model has json: free tier steps up */
    s_expect(&f, "a/cheap", "budget");
}

Test(eng_resolve, default_output_tokens)
{
    hpp_features_t f = s_req();
    cr_assert_eq(eng_policy_default_output(s_pol), 1000);
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.output_tokens, 1000);
    s_hint(&f, "out");
    d = s_run(&f);
    cr_assert_eq(d.output_tokens, 5000); /* the rule's */
    cr_assert_eq(d.cost.output, INT64_C(7500000000));
    f.output_tokens = 10;
    d = s_run(&f);
    cr_assert_eq(d.output_tokens, 10); /* the request's */
}

/* Bad input ------------------------------------------------------------------------ */

Test(eng_resolve, bad_requests)
{
    hpp_features_t f = s_req();
    f.prompt_tokens = -1;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.prompt_tokens = HPP_MAX_TOKENS + 1;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.output_tokens = -2;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.has_budget = true;
    f.budget_usd = NAN;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f.budget_usd = INFINITY;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f.budget_usd = -0.5;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.images = -1;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.cache_read_tokens = 2000;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.nhints = HPP_MAX_HINTS + 1;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
    f = s_req();
    f.text.ptr = NULL;
    f.text.len = 5;
    s_expect_status(&f, HPP_E_BAD_REQUEST);
}

/* Determinism and trace ---------------------------------------------------------------- */

Test(eng_resolve, deterministic)
{
    eng_policy_t *again = s_compile(s_policy);
    cr_assert_not_null(again);
    for (int i = 0; i < 200; i++) {
        hpp_features_t f = s_req();
        f.prompt_tokens = (i * 7919) % 60000;
        f.images = i % 3 == 0;
        f.has_budget = i % 4 == 0;
        f.budget_usd = (i % 11) * 0.0004;
        if (i % 5 == 0) {
            s_hint(&f, "code");
        }
        eng_decision_t a, b, c;
        eng_resolve(s_pol, &f, &a, NULL);
        eng_resolve(s_pol, &f, &b, NULL);
        eng_resolve(again, &f, &c, NULL);
        cr_assert_eq(a.status, b.status);
        cr_assert_eq(a.status, c.status);
        cr_assert_eq(a.endpoint, b.endpoint);
        cr_assert_eq(a.cost.total, c.cost.total);
        cr_assert_eq(a.nfallbacks, c.nfallbacks);
        cr_assert_str_eq(a.message, c.message);
        if (a.status == HPP_OK) {
            cr_assert_str_eq(a.model->id, c.model->id);
            cr_assert_str_eq(a.endpoint->provider, c.endpoint->provider);
        }
    }
    eng_policy_destroy(&again);
}

Test(eng_resolve, trace_records_candidates)
{
    hpp_features_t f = s_req();
    f.prompt_tokens = 35000;
    eng_trace_entry_t entries[64];
    eng_trace_t tr;
    memset(&tr, 0, sizeof tr);
    tr.entries = entries;
    tr.cap = 64;
    eng_decision_t d;
    eng_resolve(s_pol, &f, &d, &tr);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_geq(tr.n, 2);
    cr_assert_str_eq(entries[0].endpoint->provider, "p1"); /* b/mid first ... */
    cr_assert_eq(entries[0].reason, ENG_REJ_CONTEXT);      /* ... too small */
    cr_assert_eq(entries[0].cost, HPP_PRICE_NA);           /* refused before an estimate */
    cr_assert_eq(entries[1].reason, ENG_REJ_CHOSEN);
    cr_assert_eq(entries[1].endpoint, d.endpoint);
    cr_assert_eq(entries[1].cost, d.cost.total);
    cr_assert_eq(tr.nrules_tried, 8); /* every rule up to the catch-all */
    cr_assert_str_eq(tr.rules_tried[7], "default");
    /* A tiny buffer counts what it drops. */
    tr.cap = 1;
    eng_resolve(s_pol, &f, &d, &tr);
    cr_assert_eq(tr.n, 1);
    cr_assert_gt(tr.dropped, 0);
}

Test(eng_resolve, trace_lists_hints)
{
    hpp_features_t f = s_req();
    f.text = s_s("def main(): pass");
    eng_trace_entry_t entries[8];
    eng_trace_t tr;
    memset(&tr, 0, sizeof tr);
    tr.entries = entries;
    tr.cap = 8;
    eng_decision_t d;
    eng_resolve(s_pol, &f, &d, &tr);
    cr_assert_str_eq(tr.hint_names[0], "code");
    cr_assert_null(tr.hint_names[1]);
    cr_assert_str_eq(d.rule, "r-code");
}

Test(eng_resolve, fallbacks_are_distinct_and_fit)
{
    hpp_features_t f = s_req();
    s_hint(&f, "code");
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_gt(d.nfallbacks, 0);
    for (uint32_t i = 0; i < d.nfallbacks; i++) {
        cr_assert_neq(d.fallbacks[i], d.endpoint);
        cr_assert(d.fallbacks[i]->enabled);
        for (uint32_t j = 0; j < i; j++) {
            cr_assert_neq(d.fallbacks[i], d.fallbacks[j]);
        }
    }
}

/* Conditions ----------------------------------------------------------------------- */

static const char *s_rule_for(const char *policy, const hpp_features_t *f)
{
    eng_policy_t *p = s_compile(policy);
    cr_assert_not_null(p);
    eng_decision_t d;
    eng_resolve(p, f, &d, NULL);
    static char rule[64];
    snprintf(rule, sizeof rule, "%s", d.rule);
    eng_policy_destroy(&p);
    return rule;
}

#define S_TIERS "tier cheap max $0.15\ntier rest\n"

Test(eng_resolve, condition_operators)
{
    const char *pol =
        S_TIERS "route big when prompt_tokens >= 10k and not tools { tier rest }\n"
                "route flip when 500 > prompt_tokens { tier cheap }\n"
                "route meta when meta.tenant == \"acme\" { tier cheap }\n"
                "route grp when group in [\"default\", \"x\"] and budget < $0.5 { tier cheap }\n"
                "route any when hints has all [\"a\", \"b\"] or \"c\" in hints { tier cheap }\n"
                "route re when text ~ /^hello\\s+world/i { tier cheap }\n"
                "route last { tier rest }\n";
    hpp_features_t f = s_req();
    f.prompt_tokens = 10000;
    cr_assert_str_eq(s_rule_for(pol, &f), "big");
    f.tools = true;
    cr_assert_str_eq(s_rule_for(pol, &f), "last");
    f.prompt_tokens = 499;
    cr_assert_str_eq(s_rule_for(pol, &f), "flip");
    f = s_req();
    f.meta_keys[0] = s_s("tenant");
    f.meta_vals[0] = s_s("acme");
    f.nmeta = 1;
    cr_assert_str_eq(s_rule_for(pol, &f), "meta");
    f = s_req();
    cr_assert_str_eq(s_rule_for(pol, &f), "last"); /* no budget = infinite */
    f.has_budget = true;
    f.budget_usd = 0.25;
    cr_assert_str_eq(s_rule_for(pol, &f), "grp");
    f = s_req();
    s_hint(&f, "a");
    cr_assert_str_eq(s_rule_for(pol, &f), "last");
    s_hint(&f, "b");
    cr_assert_str_eq(s_rule_for(pol, &f), "any");
    f = s_req();
    s_hint(&f, "c");
    cr_assert_str_eq(s_rule_for(pol, &f), "any");
    f = s_req();
    f.text = s_s("HELLO   World, how are you");
    cr_assert_str_eq(s_rule_for(pol, &f), "re");
    f.text = s_s("say hello world");
    cr_assert_str_eq(s_rule_for(pol, &f), "last");
}

Test(eng_resolve, hint_rules_run_in_order)
{
    const char *pol = S_TIERS "hint one when text contains \"x\"\n"
                              "hint two when hints has \"one\"\n"
                              "route r when hints has \"two\" { tier cheap }\n"
                              "route last { tier rest }\n";
    hpp_features_t f = s_req();
    f.text = s_s("abc X def");
    cr_assert_str_eq(s_rule_for(pol, &f), "r");
    f.text = s_s("abc def");
    cr_assert_str_eq(s_rule_for(pol, &f), "last");
}

Test(eng_resolve, hint_rules_see_only_earlier_rules)
{
    /* Rule "a" tests "b", which only a later rule sets: in order, "a" never
     * sees it, however lazily the rules run. */
    const char *pol = S_TIERS "hint a when hints has \"b\"\n"
                              "hint b when text contains \"x\"\n"
                              "route ra when hints has \"a\" { tier cheap }\n"
                              "route rb when hints has \"b\" { tier cheap }\n"
                              "route last { tier rest }\n";
    hpp_features_t f = s_req();
    f.text = s_s("x");
    cr_assert_str_eq(s_rule_for(pol, &f), "rb");
    s_hint(&f, "b"); /* given by the request: visible to every rule */
    cr_assert_str_eq(s_rule_for(pol, &f), "ra");
}

Test(eng_resolve, no_matching_rule)
{
    const char *pol = S_TIERS "route r when tools { tier cheap }\n";
    eng_policy_t *p = s_compile(pol);
    cr_assert_not_null(p);
    hpp_features_t f = s_req();
    eng_decision_t d;
    cr_assert_eq(eng_resolve(p, &f, &d, NULL), HPP_E_NO_CANDIDATE);
    eng_policy_destroy(&p);
}

Test(eng_resolve, explicit_tier_members)
{
    const char *pol = "tier local models \"a/*\"\n"
                      "tier cheap max $1\n"
                      "tier rest\n"
                      "route r { tier local step none }\n";
    eng_policy_t *p = s_compile(pol);
    cr_assert_not_null(p);
    hpp_features_t f = s_req();
    f.tools = true;
    eng_decision_t d;
    eng_resolve(p, &f, &d, NULL);
    cr_assert_eq(d.status, HPP_OK);
    /* a/cheap and a/free-chat are the members; both have tools; order by price */
    cr_assert_str_eq(d.model->id, "a/free-chat");
    cr_assert_str_eq(d.tier_name, "local");
    eng_policy_destroy(&p);
}

Test(eng_resolve, provider_order)
{
    const char *pol = "settings { providers \"p1\" }\n" S_TIERS "route r { tier rest }\n";
    eng_policy_t *p = s_compile(pol);
    cr_assert_not_null(p);
    hpp_features_t f = s_req();
    f.model = s_s("c/std");
    eng_decision_t d;
    eng_resolve(p, &f, &d, NULL);
    cr_assert_str_eq(d.endpoint->provider, "p1"); /* the policy's provider, not the cheapest */
    f.model = s_s("c/std:floor");
    eng_resolve(p, &f, &d, NULL);
    cr_assert_str_eq(d.endpoint->provider, "p2"); /* :floor stays the cheapest */
    eng_policy_destroy(&p);
}

/* The request's provider routing and models (OpenRouter's `provider` and
 * `models`, proto/PROTOCOL.md "Provider routing") ------------------------------ */

static eng_decision_t s_run_traced(const hpp_features_t *f, eng_trace_t *tr,
                                   eng_trace_entry_t *entries, size_t cap)
{
    memset(tr, 0, sizeof *tr);
    tr->entries = entries;
    tr->cap = cap;
    eng_decision_t d;
    eng_resolve(s_pol, f, &d, tr);
    return d;
}

static bool s_traced(const eng_trace_t *tr, eng_reject_t why)
{
    for (size_t i = 0; i < tr->n; i++) {
        if (tr->entries[i].reason == why) {
            return true;
        }
    }
    return false;
}

static eng_decision_t s_expect_ep(const hpp_features_t *f, const char *model, const char *provider)
{
    eng_decision_t d = s_run(f);
    cr_assert_eq(d.status, HPP_OK, "status %s: %s", hpp_status_name(d.status), d.message);
    cr_assert_str_eq(d.model->id, model, "%s", d.message);
    cr_assert_str_eq(d.endpoint->provider, provider, "%s", d.message);
    return d;
}

/* No answer and no fallback outside `providers` (NULL: any provider) and
 * outside `models` (NULL-terminated, NULL: any model). */
static void s_expect_within(const eng_decision_t *d, const char *provider,
                            const char *const *models)
{
    for (uint32_t i = 0; i <= d->nfallbacks; i++) {
        const eng_endpoint_t *ep = i == 0 ? d->endpoint : d->fallbacks[i - 1];
        const char *id = s_pol ? eng_catalog_models(s_cat, &(size_t){0})[ep->model].id : "";
        if (provider) {
            cr_assert_str_eq(ep->provider, provider, "%s via %s", id, ep->provider);
        }
        bool listed = !models;
        for (size_t k = 0; models && models[k] && !listed; k++) {
            listed = strcmp(models[k], id) == 0;
        }
        cr_assert(listed, "%s is outside the request's models", id);
    }
}

Test(eng_resolve, provider_order_picks_the_endpoint_and_orders_fallbacks)
{
    hpp_features_t f = s_req();
    f.model = s_s("c/std");
    s_expect_ep(&f, "c/std", "p2");   /* the cheapest without an order */
    f.providers_order[0] = s_s("P1"); /* case-insensitive */
    f.nproviders_order = 1;
    eng_decision_t d = s_expect_ep(&f, "c/std", "p1");
    cr_assert_eq(d.nfallbacks, 1);
    cr_assert_str_eq(d.fallbacks[0]->provider, "p2"); /* allow_fallbacks defaults to true */
    /* Auto too: its pick of each model's endpoint follows the order. */
    f = s_req();
    s_hint(&f, "code");
    f.model = s_s("hpprouter/auto:floor");
    s_expect_ep(&f, "c/std", "p2");
    f.providers_order[0] = s_s("p1");
    f.nproviders_order = 1;
    s_expect_ep(&f, "c/std", "p1");
}

Test(eng_resolve, provider_only_and_ignore)
{
    hpp_features_t f = s_req();
    f.model = s_s("c/std");
    f.providers_only[0] = s_s("p1");
    f.nproviders_only = 1;
    eng_decision_t d = s_expect_ep(&f, "c/std", "p1");
    cr_assert_eq(d.nfallbacks, 0);
    f.nproviders_only = 0;
    f.providers_ignore[0] = s_s("p2");
    f.nproviders_ignore = 1;
    d = s_expect_ep(&f, "c/std", "p1");
    cr_assert_eq(d.nfallbacks, 0);
    f.providers_ignore[1] = s_s("p1");
    f.nproviders_ignore = 2;
    d = s_run(&f);
    cr_assert_eq(d.status, HPP_E_NO_CANDIDATE);
    cr_assert(strstr(d.message, "providers allow"), "%s", d.message);
    /* Auto: b/mid (p1) is the mid answer; without p1, b/mid-big (p2). */
    f = s_req();
    f.providers_ignore[0] = s_s("p1");
    f.nproviders_ignore = 1;
    d = s_expect_ep(&f, "b/mid-big", "p2");
    for (uint32_t i = 0; i < d.nfallbacks; i++) {
        cr_assert_str_neq(d.fallbacks[i]->provider, "p1");
    }
    f.nproviders_ignore = 0;
    f.providers_only[0] = s_s("p3");
    f.nproviders_only = 1;
    d = s_expect_ep(&f, "c/std2", "p3"); /* mid has none: stepped up */
    s_expect_within(&d, "p3", NULL);
}

Test(eng_resolve, allow_fallbacks_false)
{
    /* With an order: only its providers serve, auto included. */
    hpp_features_t f = s_req();
    f.providers_order[0] = s_s("p2");
    f.nproviders_order = 1;
    f.no_fallbacks = true;
    eng_decision_t d = s_expect_ep(&f, "b/mid-big", "p2");
    s_expect_within(&d, "p2", NULL);
    /* Without one: each model at its first endpoint, no other provider. */
    f = s_req();
    f.model = s_s("c/std");
    f.no_fallbacks = true;
    d = s_expect_ep(&f, "c/std", "p2");
    cr_assert_eq(d.nfallbacks, 0);
}

Test(eng_resolve, max_price_components)
{
    hpp_features_t f = s_req();
    f.model = s_s("c/std");
    cr_assert_null(hpp_max_price_set(&f.max_price, HPP_MAXP_COMPLETION, 12)); /* p2 10, p1 15 */
    eng_decision_t d = s_expect_ep(&f, "c/std", "p2");
    cr_assert_eq(d.nfallbacks, 0);
    cr_assert_null(hpp_max_price_set(&f.max_price, HPP_MAXP_COMPLETION, 5));
    d = s_run(&f);
    cr_assert_eq(d.status, HPP_E_NO_CANDIDATE);
    cr_assert(strstr(d.message, "max_price"), "%s", d.message);
    /* Auto: mid models cost 0.5 and 1 per 1M input; a/cheap 0.1 is the one left. */
    f = s_req();
    cr_assert_null(hpp_max_price_set(&f.max_price, HPP_MAXP_PROMPT, 0.4));
    d = s_expect_ep(&f, "a/cheap", "p1");
    /* A limit is a limit for the group's price: vip pays half. */
    f = s_req();
    f.model = s_s("c/std");
    f.providers_order[0] = s_s("p1");
    f.nproviders_order = 1;
    cr_assert_null(hpp_max_price_set(&f.max_price, HPP_MAXP_PROMPT, 2));
    s_expect_ep(&f, "c/std", "p2"); /* p1's 3 is over */
    f.group = s_s("vip");
    s_expect_ep(&f, "c/std", "p1"); /* 1.5 for vip */
    /* A fee above the request component. */
    f = s_req();
    f.model = s_s("c/std");
    cr_assert_null(hpp_max_price_set(&f.max_price, HPP_MAXP_REQUEST, 0));
    s_expect_ep(&f, "c/std", "p2"); /* no per-request fee: within $0 */
}

Test(eng_resolve, sort_price_overrides_the_policys_providers)
{
    static const char prefix[] = "settings { providers \"p1\" }\n";
    char src[sizeof prefix + sizeof s_policy];
    snprintf(src, sizeof src, "%s%s", prefix, s_policy);
    eng_policy_t *pol = s_compile(src);
    cr_assert_not_null(pol);
    hpp_features_t f = s_req();
    f.model = s_s("c/std");
    eng_decision_t d;
    eng_resolve(pol, &f, &d, NULL);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_str_eq(d.endpoint->provider, "p1"); /* the policy prefers p1 */
    f.sort = HPP_SORT_PRICE;
    eng_resolve(pol, &f, &d, NULL);
    cr_assert_eq(d.status, HPP_OK);
    cr_assert_str_eq(d.endpoint->provider, "p2"); /* cheapest first */
    cr_assert_str_eq(d.fallbacks[0]->provider, "p1");
    eng_policy_destroy(&pol);
}

Test(eng_resolve, models_list_in_order)
{
    static const char *const list[] = {"d/prem", "a/cheap", NULL};
    hpp_features_t f = s_req();
    f.models[0] = s_s("d/prem");
    f.models[1] = s_s("a/cheap");
    f.nmodels = 2;
    eng_decision_t d = s_expect_ep(&f, "d/prem", "p1"); /* the first, not auto's choice */
    s_expect_within(&d, NULL, list);
    cr_assert_str_eq(d.rule, "direct");
    bool has_cheap = false;
    for (uint32_t i = 0; i < d.nfallbacks; i++) {
        has_cheap =
            has_cheap || d.fallbacks[i] == eng_catalog_endpoints(s_cat, &(size_t){0}) +
                                               eng_catalog_find(s_cat, "a/cheap", 7)->ep_first;
    }
    cr_assert(has_cheap, "the next model of the list is a fallback");
    /* The first that resolves: d/prem is over this budget. */
    f.has_budget = true;
    f.budget_usd = 0.001;
    d = s_expect_ep(&f, "a/cheap", "p1");
    s_expect_within(&d, NULL, list);
    /* The body's model comes first. */
    f.model = s_s("b/mid");
    f.models[0] = s_s("a/cheap");
    f.nmodels = 1;
    f.has_budget = false;
    s_expect_ep(&f, "b/mid", "p1");
    f.has_budget = true; /* b/mid costs $0.002 */
    s_expect_ep(&f, "a/cheap", "p1");
    /* None fits: the first one's error. */
    f.budget_usd = 0.0001;
    d = s_run(&f);
    cr_assert_eq(d.status, HPP_E_INSUFFICIENT_BUDGET, "%s", d.message);
    cr_assert(strstr(d.message, "b/mid"), "%s", d.message);
    /* A group that may not use the first one. */
    f = s_req();
    f.group = s_s("small");
    f.models[0] = s_s("d/prem");
    f.models[1] = s_s("e/gem:free");
    f.nmodels = 2;
    d = s_expect_ep(&f, "e/gem", "p2");
    cr_assert_str_eq(d.rule, "free");
}

Test(eng_resolve, models_entries_are_checked)
{
    hpp_features_t f = s_req();
    f.models[0] = s_s("a/cheap");
    f.models[1] = s_s("zz/none");
    f.nmodels = 2;
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_E_UNKNOWN_MODEL);
    cr_assert_str_eq(d.message, "models[1]: unknown model 'zz/none'");
    f.models[1] = s_s("hpprouter/auto");
    d = s_run(&f);
    cr_assert_eq(d.status, HPP_E_BAD_REQUEST);
    cr_assert(strstr(d.message, "models[1]"), "%s", d.message);
}

Test(eng_resolve, auto_chooses_only_among_models)
{
    static const char *const list[] = {"c/std2", "a/cheap", NULL};
    hpp_features_t f = s_req();
    f.model = s_s("hpprouter/auto");
    s_expect(&f, "b/mid", "mid");
    f.models[0] = s_s("c/std2");
    f.models[1] = s_s("a/cheap");
    f.nmodels = 2;
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK, "%s", d.message);
    cr_assert_str_eq(d.model->id, "c/std2"); /* mid has none of them: up first */
    cr_assert_str_eq(d.rule, "default");
    s_expect_within(&d, NULL, list);
    /* :free and the free fallback stay inside the list too. */
    f.model = s_s("hpprouter/auto:free");
    s_expect_status(&f, HPP_E_NO_FREE_VARIANT);
    f.models[1] = s_s("e/gem");
    s_expect_ep(&f, "e/gem", "p2");
    f.model = s_s("hpprouter/auto:floor");
    f.models[1] = s_s("a/cheap");
    d = s_run(&f);
    cr_assert_eq(d.status, HPP_OK);
    s_expect_within(&d, NULL, list);
}

Test(eng_resolve, free_fallback_applies_the_provider_filters)
{
    hpp_features_t f = s_req();
    f.has_budget = true;
    f.budget_usd = 0; /* nothing paid fits: the free fallback */
    s_expect_ep(&f, "a/free-chat", "local");
    f.providers_ignore[0] = s_s("local");
    f.nproviders_ignore = 1;
    s_expect_ep(&f, "e/gem", "p2");
    /* ID:free with its free endpoint excluded. */
    f = s_req();
    f.model = s_s("e/gem:free");
    f.providers_ignore[0] = s_s("p2");
    f.nproviders_ignore = 1;
    eng_decision_t d = s_run(&f);
    cr_assert_eq(d.status, HPP_E_NO_CANDIDATE, "%s", d.message);
}

Test(eng_resolve, trace_names_the_request_restrictions)
{
    cr_assert_str_eq(eng_reject_name(ENG_REJ_NOT_IN_MODELS), "not_in_models");
    cr_assert_str_eq(eng_reject_name(ENG_REJ_PROVIDER), "provider_excluded");
    cr_assert_str_eq(eng_reject_name(ENG_REJ_MAX_PRICE), "over_max_price");
    eng_trace_entry_t entries[64];
    eng_trace_t tr;
    hpp_features_t f = s_req();
    f.model = s_s("hpprouter/auto");
    f.models[0] = s_s("c/std2");
    f.nmodels = 1;
    s_run_traced(&f, &tr, entries, 64);
    cr_assert(s_traced(&tr, ENG_REJ_NOT_IN_MODELS));
    f = s_req();
    f.model = s_s("c/std");
    f.providers_ignore[0] = s_s("p2");
    f.nproviders_ignore = 1;
    s_run_traced(&f, &tr, entries, 64);
    cr_assert(s_traced(&tr, ENG_REJ_PROVIDER));
    f.nproviders_ignore = 0;
    cr_assert_null(hpp_max_price_set(&f.max_price, HPP_MAXP_PROMPT, 2.5));
    eng_decision_t d = s_run_traced(&f, &tr, entries, 64);
    cr_assert_str_eq(d.endpoint->provider, "p2");
    cr_assert(s_traced(&tr, ENG_REJ_MAX_PRICE));
}
