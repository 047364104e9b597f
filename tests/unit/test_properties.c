/* test_properties.c - resolver invariants over thousands of random requests.
 *
 * Requests are drawn from a fixed-seed generator and resolved by the default
 * policy over the bundled catalog and over the full LiteLLM catalog. Every
 * answer is checked against properties computed independently from the
 * catalog: never over budget (a free answer costs $0, so this holds for it
 * too), vision/tools/JSON requests get models that have them, prompt plus
 * output fits the window, ID:floor is the cheapest enabled endpoint, the
 * group's model list is respected, fallbacks obey the same constraints, and
 * the same request gets the same answer.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"

#define S_REQUESTS 4000

typedef struct {
    uint64_t s; /* xorshift64 state */
} s_rng_t;

static uint64_t s_next(s_rng_t *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static uint32_t s_below(s_rng_t *r, uint32_t n)
{
    return (uint32_t)(s_next(r) % n);
}

/* Log-uniform-ish integer in [0, max]. */
static int64_t s_logish(s_rng_t *r, int64_t max)
{
    double e = (double)s_below(r, 1000) / 1000.0 * log((double)max + 1);
    return (int64_t)exp(e) - 1;
}

static const char *const s_hints[] = {"code",     "math",      "reasoning", "chat",
                                      "classify", "summarize", "solidity",  "not-a-policy-word"};
static const char *const s_texts[] = {
    "",
    "hi",
    "pragma solidity ^0.8.0; contract A {}",
    "def main():\n    print('x')",
    "Prove that there are infinitely many primes, step by step.",
    "Summarize this article in three bullet points please, the article follows below and is long",
    "Classify the sentiment of: I loved it",
    "Write a short poem about the sea and the wind and the boats that sail on it at night.",
};
static const char *const s_groups[] = {"", "default", "trial", "partner"};

/* Cheapest-first key of the catalog (input + output, n/a = 0). */
static hpp_pusd_t s_price_key(const eng_endpoint_t *e)
{
    hpp_pusd_t in = e->price.input == HPP_PRICE_NA ? 0 : e->price.input;
    hpp_pusd_t out = e->price.output == HPP_PRICE_NA ? 0 : e->price.output;
    return in + out;
}

typedef struct {
    eng_catalog_t *cat;
    eng_policy_t *pol;
    const eng_model_t *models;
    size_t nmodels;
    const eng_endpoint_t *eps;
    size_t neps;
    /* counters, to prove the properties were exercised */
    int ok, budget_ok, vision_ok, floor_ok, free_ok, errors, fallbacks;
} s_env_t;

static void s_env(s_env_t *env, const char *catalog)
{
    memset(env, 0, sizeof *env);
    env->cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(env->cat, catalog, &err), 0, "%s: %s", catalog, err.msg);
    cr_assert_eq(eng_catalog_freeze(env->cat, &err), 0);
    eng_diags_t *d = eng_diags_new();
    env->pol = eng_policy_load("policies/default.policy", env->cat, d);
    if (!env->pol) {
        eng_diags_print(d, stderr);
    }
    cr_assert_not_null(env->pol);
    eng_diags_destroy(&d);
    env->models = eng_catalog_models(env->cat, &env->nmodels);
    env->eps = eng_catalog_endpoints(env->cat, &env->neps);
}

static void s_env_free(s_env_t *env)
{
    eng_policy_destroy(&env->pol);
    eng_catalog_destroy(&env->cat);
}

/* Builds a random request; strings point to static data or `buf`. */
static void s_random(s_rng_t *r, const s_env_t *env, hpp_features_t *f, char *buf, size_t n)
{
    hpp_features_init(f);
    uint32_t pick = s_below(r, 100);
    if (pick < 60) {
        f->model.len = 0;
    } else if (pick < 70) {
        f->model.ptr = "hpprouter/auto:floor";
        f->model.len = 20;
    } else if (pick < 75) {
        f->model.ptr = "hpprouter/auto:free";
        f->model.len = 19;
    } else {
        const eng_model_t *m = &env->models[s_below(r, (uint32_t)env->nmodels)];
        const char *suffix = pick < 85 ? ":floor" : pick < 90 ? ":free" : "";
        int len = snprintf(buf, n, "%s%s", m->id, suffix);
        f->model.ptr = buf;
        f->model.len = (uint32_t)len;
    }
    f->prompt_tokens = s_logish(r, 600000);
    f->output_tokens = s_below(r, 2) ? -1 : 1 + s_logish(r, 60000);
    if (s_below(r, 10) == 0) {
        f->cache_read_tokens = f->prompt_tokens / 2;
    }
    f->images = s_below(r, 5) == 0 ? 1 + s_below(r, 4) : 0;
    f->vision = s_below(r, 20) == 0;
    f->tools = s_below(r, 5) == 0;
    f->json = s_below(r, 7) == 0;
    uint32_t nh = s_below(r, 3);
    for (uint32_t i = 0; i < nh; i++) {
        const char *h = s_hints[s_below(r, sizeof s_hints / sizeof s_hints[0])];
        f->hints[f->nhints].ptr = h;
        f->hints[f->nhints].len = (uint32_t)strlen(h);
        f->nhints++;
    }
    if (s_below(r, 5) < 2) {
        f->has_budget = true;
        f->budget_usd = s_below(r, 30) == 0 ? 0 : exp(-16.0 + (double)s_below(r, 1000) / 55.0);
    }
    const char *g = s_groups[s_below(r, sizeof s_groups / sizeof s_groups[0])];
    f->group.ptr = g;
    f->group.len = (uint32_t)strlen(g);
    const char *t = s_texts[s_below(r, sizeof s_texts / sizeof s_texts[0])];
    f->text.ptr = t;
    f->text.len = (uint32_t)strlen(t);
}

static bool s_group_allows(const hpp_features_t *f, const char *id)
{
    if (f->group.len == 5 && memcmp(f->group.ptr, "trial", 5) == 0) {
        return strncmp(id, "ollama/", 7) == 0 || strncmp(id, "google/", 7) == 0 ||
               strncmp(id, "meta-llama/", 11) == 0;
    }
    return true;
}

static uint32_t s_permille(const hpp_features_t *f)
{
    return f->group.len == 7 && memcmp(f->group.ptr, "partner", 7) == 0 ? 800 : 1000;
}

/* Hard constraints and budget for endpoint e answering request f. */
static void s_check_fit(const s_env_t *env, const hpp_features_t *f, const eng_endpoint_t *e,
                        int64_t out_tokens, const char *what)
{
    const eng_model_t *m = &env->models[e->model];
    cr_assert(e->enabled, "%s %s: disabled endpoint", what, m->id);
    if (f->images > 0 || f->vision) {
        cr_assert(m->caps & HPP_CAP_VISION, "%s %s: vision request, blind model", what, m->id);
    }
    if (f->tools) {
        cr_assert(m->caps & HPP_CAP_TOOLS, "%s %s: no tools", what, m->id);
    }
    if (f->json) {
        cr_assert(m->caps & HPP_CAP_JSON, "%s %s: no json", what, m->id);
    }
    uint32_t ctx = e->context_length ? e->context_length : m->context_length;
    if (ctx > 0) {
        cr_assert_leq(f->prompt_tokens + out_tokens, (int64_t)ctx,
                      "%s %s: %lld + %lld tokens in a %u window", what, m->id,
                      (long long)f->prompt_tokens, (long long)out_tokens, ctx);
    }
    cr_assert(s_group_allows(f, m->id), "%s %s: outside the group", what, m->id);
    if (f->has_budget) {
        eng_usage_t u;
        memset(&u, 0, sizeof u);
        u.prompt_tokens = f->prompt_tokens - f->cache_read_tokens;
        u.cache_read_tokens = f->cache_read_tokens;
        u.completion_tokens = out_tokens;
        u.images = f->images;
        hpp_cost_t c;
        cr_assert_eq(eng_cost_estimate(&e->price, &u, &c), 0);
        cr_assert_eq(eng_cost_scale(&c, s_permille(f)), 0);
        hpp_pusd_t budget = (hpp_pusd_t)llround(f->budget_usd * 1e12);
        cr_assert(c.total <= budget, "%s %s: costs %lld > budget %lld pUSD", what, m->id,
                  (long long)c.total, (long long)budget);
    }
}

static void s_check(s_env_t *env, const hpp_features_t *f, const eng_decision_t *d)
{
    cr_assert_neq(d->status, HPP_E_INTERNAL, "%s", d->message);
    cr_assert_neq(d->message[0], '\0');
    if (d->status != HPP_OK) {
        cr_assert_null(d->model);
        cr_assert_eq(d->nfallbacks, 0);
        env->errors++;
        return;
    }
    env->ok++;
    const eng_endpoint_t *e = d->endpoint;
    cr_assert_eq(&env->models[e->model], d->model, "endpoint of another model");
    cr_assert_eq(d->cost.input + d->cost.output + d->cost.cache + d->cost.fees, d->cost.total);
    s_check_fit(env, f, e, d->output_tokens, "answer");
    env->budget_ok += f->has_budget;
    env->vision_ok += f->images > 0 || f->vision;
    for (uint32_t i = 0; i < d->nfallbacks; i++) {
        cr_assert_neq(d->fallbacks[i], e);
        s_check_fit(env, f, d->fallbacks[i], d->output_tokens, "fallback");
        env->fallbacks++;
    }
    size_t ml = f->model.len;
    bool floor = ml > 6 && memcmp(f->model.ptr + ml - 6, ":floor", 6) == 0 &&
                 strncmp(f->model.ptr, "hpprouter/", 10) != 0;
    bool free = ml > 5 && memcmp(f->model.ptr + ml - 5, ":free", 5) == 0;
    if (floor) {
        /* The cheapest enabled endpoint of the model, by the catalog's key,
         * among those the id means (never its `:free` variant). */
        const eng_model_t *m = d->model;
        hpp_pusd_t best = INT64_MAX;
        for (uint32_t k = 0; k < m->ep_count; k++) {
            const eng_endpoint_t *o = &env->eps[m->ep_first + k];
            if (o->enabled && !o->free_variant && s_price_key(o) < best) {
                best = s_price_key(o);
            }
        }
        cr_assert_eq(s_price_key(e), best, "%s:floor is not the cheapest endpoint", m->id);
        /* Not necessarily floor_ep itself: endpoints can tie on price (grok-4.3
         * costs the same at xAI and on Bedrock), and the one that fits the
         * request (tools, window) is taken among them. */
        cr_assert_eq(s_price_key(e), s_price_key(&env->eps[m->floor_ep]));
        env->floor_ok++;
    }
    bool named = !free && ml > 0 && !(ml >= 10 && memcmp(f->model.ptr, "hpprouter/", 10) == 0);
    if (named && f->nmodels == 0) {
        cr_assert_not(e->free_variant, "%.*s answered by its :free variant", (int)ml, f->model.ptr);
    }
    if (free) {
        cr_assert_eq(d->cost.total, 0, "a :free answer that costs money");
        env->free_ok++;
    }
}

static void s_run(const char *catalog, uint64_t seed)
{
    s_env_t env;
    s_env(&env, catalog);
    s_rng_t r = {seed};
    static eng_trace_entry_t entries[4096];
    for (int i = 0; i < S_REQUESTS; i++) {
        hpp_features_t f;
        char buf[512];
        s_random(&r, &env, &f, buf, sizeof buf);
        eng_decision_t a, b;
        eng_resolve(env.pol, &f, &a, NULL);
        s_check(&env, &f, &a);
        eng_resolve(env.pol, &f, &b, NULL);
        cr_assert_eq(a.status, b.status, "not deterministic");
        cr_assert_eq(a.endpoint, b.endpoint, "not deterministic");
        cr_assert_eq(a.cost.total, b.cost.total);
        /* A trace skips nothing the budget bound would skip: the answer
         * must not change, nor its fallbacks (what `explain` shows is what
         * a gateway gets). */
        eng_trace_t tr;
        memset(&tr, 0, sizeof tr);
        tr.entries = entries;
        tr.cap = sizeof entries / sizeof entries[0];
        eng_resolve(env.pol, &f, &b, &tr);
        cr_assert_eq(a.status, b.status, "request %d: %s vs traced %s", i, a.message, b.message);
        cr_assert_eq(a.endpoint, b.endpoint, "request %d: bound changed the answer", i);
        cr_assert_eq(a.cost.total, b.cost.total);
        cr_assert_eq(a.nfallbacks, b.nfallbacks, "request %d: bound changed the fallbacks", i);
        for (uint32_t k = 0; k < a.nfallbacks; k++) {
            cr_assert_eq(a.fallbacks[k], b.fallbacks[k], "request %d: fallback %u", i, k);
        }
    }
    /* The generator must actually reach every property. */
    cr_assert_gt(env.ok, S_REQUESTS / 4, "ok %d", env.ok);
    cr_assert_gt(env.errors, 0);
    cr_assert_gt(env.budget_ok, 100, "budget %d", env.budget_ok);
    cr_assert_gt(env.vision_ok, 50, "vision %d", env.vision_ok);
    cr_assert_gt(env.floor_ok, 50, "floor %d", env.floor_ok);
    cr_assert_gt(env.free_ok, 5, "free %d", env.free_ok);
    cr_assert_gt(env.fallbacks, 1000);
    s_env_free(&env);
}

Test(eng_properties, bundled_catalog, .timeout = 60)
{
    s_run("policies/catalog.json", UINT64_C(0x9E3779B97F4A7C15));
}

Test(eng_properties, litellm_catalog, .timeout = 60)
{
    s_run("litellm:tests/data/litellm/model_prices_and_context_window.json",
          UINT64_C(0xD1B54A32D192ED03));
}

Test(eng_properties, bad_features_never_crash, .timeout = 60)
{
    s_env_t env;
    s_env(&env, "policies/catalog.json");
    s_rng_t r = {42};
    const double budgets[] = {NAN, INFINITY, -INFINITY, -1e-300, 1e300, -0.0};
    for (int i = 0; i < 2000; i++) {
        hpp_features_t f;
        char buf[512];
        s_random(&r, &env, &f, buf, sizeof buf);
        switch (s_below(&r, 6)) {
        case 0:
            f.prompt_tokens = -(int64_t)s_next(&r) / 2;
            break;
        case 1:
            f.output_tokens = (int64_t)(s_next(&r) >> 1);
            break;
        case 2:
            f.has_budget = true;
            f.budget_usd = budgets[s_below(&r, 6)];
            break;
        case 3:
            f.images = (int64_t)s_next(&r);
            break;
        case 4:
            f.cache_read_tokens = f.prompt_tokens + 1 + s_below(&r, 10);
            break;
        default:
            f.nmeta = 17;
            break;
        }
        eng_decision_t d;
        eng_resolve(env.pol, &f, &d, NULL);
        bool fine_budget = f.has_budget && f.budget_usd == 0; /* -0.0 is a valid $0 */
        if (!fine_budget) {
            cr_assert_eq(d.status, HPP_E_BAD_REQUEST, "case %d: %s", i, d.message);
        }
    }
    s_env_free(&env);
}
