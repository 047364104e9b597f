/* eng_resolve.c - the decision: features + compiled policy -> model.
 *
 * A pure function over the read-only compiled policy: it allocates nothing,
 * takes no lock and writes only to the caller's decision and trace, so any
 * number of threads may resolve against one policy at once. Work per
 * request is a few condition evaluations and a walk down precomputed
 * candidate lists that stops at the first fit (plus a bounded look-ahead
 * for the fallback list). Semantics are specified in policies/README.md:
 *
 *   1. validate features (bad_request), find the group (model_not_allowed)
 *   2. a named model resolves to itself: ID, ID:floor, ID:free
 *   3. auto: hint rules add hints, the first routing rule that matches
 *      picks a target tier; candidates are filtered by the hard constraints
 *      (enabled, group, capabilities, context window) and the budget, tiers
 *      are stepped in the rule's precomputed order, then the free fallback;
 *      nothing left is insufficient_budget (if only money stopped us) or
 *      no_candidate.
 *   4. the request's own restrictions (OpenRouter's `provider` and `models`,
 *      proto/PROTOCOL.md "Provider routing") narrow every step above: they
 *      pick each model's endpoint and reject candidates, with their own
 *      trace reasons. Without them the walk is the plain one, plus one
 *      predictable branch per candidate.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_health.h"
#include "eng_parse.h"
#include "eng_policy_internal.h"

/* Candidates examined after the choice while filling the fallback list:
 * bounds the time spent on look-ahead when few candidates fit. Those the
 * request's group may not use do not count (a group that allows a few
 * models would otherwise spend it on refusals). */
#define S_LOOKAHEAD 64
/* Other endpoints of the chosen model that head the fallback list (the same
 * model from another provider is the closest retry). */
#define S_ALT_ENDPOINTS 2

/* S_AUTO: the endpoints auto may call a model through (any, the `:free`
 * variant included); S_PLAIN: those a client naming the model means. */
typedef enum { S_PLAIN, S_FLOOR, S_FREE, S_AUTO } s_variant_t;

/* Everything a decision computes once and the walk reads. */
typedef struct {
    const eng_policy_t *pol;        /* the policy */
    const hpp_features_t *f;        /* the request */
    eng_decision_t *out;            /* the answer */
    eng_trace_t *trace;             /* NULL unless tracing */
    const eng_pgroup_t *group;      /* NULL: every model, x1 */
    uint32_t permille;              /* group multiplier */
    uint32_t need;                  /* capabilities the request needs */
    uint32_t rule_caps;             /* capabilities the rule requires */
    int64_t out_tokens;             /* output tokens for estimates */
    bool out_explicit;              /* the request gave them */
    eng_usage_t usage;              /* for the cost estimator */
    hpp_pusd_t budget;              /* -1 when none */
    bool chosen;                    /* an answer was found */
    bool budget_hit;                /* a candidate failed on money alone */
    uint32_t extra;                 /* candidates examined after the choice */
    bool stop;                      /* the look-ahead is over */
    bool alternates;                /* list the chosen model's other endpoints first */
    bool bound;                     /* skip list tails the budget cannot pay for */
    bool skipped;                   /* the bound skipped something */
    bool filter;                    /* models, provider lists or max_price reject candidates */
    bool prov_rank;                 /* each model's endpoint is chosen per request (s_pick) */
    bool primary_only;              /* allow_fallbacks false, no order: one endpoint per model */
    const uint64_t *group_deny;     /* endpoints the group's provider lists exclude, or NULL */
    const uint64_t *rule_deny;      /* endpoints the rule's provider lists exclude, or NULL */
    uint32_t min_context;           /* the rule's min_context (0 = none) */
    uint32_t nallow;                /* auto with `models`: the models that may be chosen */
    uint32_t allow[HPP_MAX_MODELS]; /* their indexes */
    const eng_health_t *health;     /* endpoints on cooldown are skipped; NULL: none is */
    int64_t now_ms;                 /* the cooldowns' clock */
    hpp_sort_t sort;                /* each model's endpoints: the request's, else the rule's */
    bool measured;                  /* sort or preferences read the measured figures */
    bool *cooled;                   /* set when a candidate was skipped for its cooldown */
    int max_tier;                   /* the group's step_down: dearest tier allowed, -1 = any */
    hpp_pusd_t step_below;          /* the threshold that set it */
} s_walk_t;

/* Condition inputs, computed once per request. */
typedef struct {
    double num[ENG_F_TEXT_LENGTH + 1]; /* number fields */
    bool flag[ENG_F_COUNT];            /* bool fields */
    uint64_t hints;                    /* hint bits */
    hpp_str_t group;                   /* group name */
    const hpp_features_t *f;           /* metadata, text */
    uint32_t hint_next;                /* hint rules [0, hint_next) have run */
    uint32_t limit;                    /* hint rules a test may run: those before this */
    eng_needle_set_t found;            /* needles found in text[0, scanned) */
    uint32_t scanned;                  /* text bytes the needle scan has passed */
    uint32_t unfound;                  /* needles not found yet */
    uint8_t scan;                      /* S_SCAN_*: the one-pass scan's state */
    eng_scan_hits_t hits;              /* its answers, when S_SCAN_DONE */
    uint32_t scored;                   /* bit i: score[i] is computed */
    double score[ENG_MAX_SCORERS];     /* scorers' scores, computed on first use */
} s_ctx_t;

/* The one-pass scan of a request's text (eng_scan.h): run at the first text test. */
enum {
    S_SCAN_TODO, /* not run yet */
    S_SCAN_DONE, /* hits holds every covered pattern's answer */
    S_SCAN_NONE  /* no scan (none built, turned off, no slot free): per-pattern matchers */
};

/* Small helpers ------------------------------------------------------------ */

static void s_msg(eng_decision_t *out, const char *a, const char *b, const char *c)
{
    size_t n = 0;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; p && *p && n + 1 < sizeof out->message; p++) {
            out->message[n++] = *p;
        }
    }
    out->message[n] = '\0';
}

static hpp_status_t s_fail(eng_decision_t *out, hpp_status_t st, const char *a, const char *b,
                           const char *c)
{
    out->status = st;
    out->model = NULL;
    out->endpoint = NULL;
    out->nfallbacks = 0;
    s_msg(out, a, b, c);
    return st;
}

/* Copies a borrowed string into a NUL-terminated buffer for messages. */
static const char *s_cstr(hpp_str_t s, char *buf, size_t n)
{
    size_t len = s.len < n - 1 ? s.len : n - 1;
    if (len && s.ptr) {
        memcpy(buf, s.ptr, len);
    }
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)buf[i] < 0x20) {
            buf[i] = '?';
        }
    }
    return buf;
}

static bool s_streq(hpp_str_t s, const char *lit, size_t n)
{
    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

static int s_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool s_has_bit(const uint64_t *set, uint32_t i)
{
    return (set[i / 64] >> (i % 64)) & 1;
}

/* Conditions --------------------------------------------------------------- */

/* Does t start with needle nd (lower-cased), ASCII case-insensitively? The
 * caller has checked that it fits. */
static bool s_needle_at(const unsigned char *t, const eng_pstr_t *nd)
{
    const unsigned char *p = (const unsigned char *)nd->ptr;
    uint32_t j = 0;
    while (j < nd->len && s_lower(t[j]) == p[j]) {
        j++;
    }
    return j == nd->len;
}

static bool s_needles_meet(const uint64_t *a, const uint64_t *b)
{
    uint64_t any = 0;
    for (int w = 0; w < ENG_NEEDLE_WORDS; w++) {
        any |= a[w] & b[w];
    }
    return any != 0;
}

/* Runs the one-pass scan once per request; true when its answers are in x->hits. When it covers
 * every needle, the needle scan below is complete at once (found[] exact for the whole text). */
static bool s_scanned(const eng_policy_t *pol, s_ctx_t *x)
{
    if (x->scan == S_SCAN_TODO) {
        x->scan = S_SCAN_NONE;
        if (eng_scan_run(pol->scan, x->f->text.ptr, x->f->text.len, &x->hits)) {
            x->scan = S_SCAN_DONE;
            if (eng_scan_covers_literals(pol->scan)) {
                _Static_assert(sizeof x->found == sizeof x->hits.lit, "one bit per needle");
                memcpy(x->found, x->hits.lit, sizeof x->found);
                x->scanned = x->f->text.len;
                x->unfound = 0;
            }
        }
    }
    return x->scan == S_SCAN_DONE;
}

/* Is regex i's answer in the one-pass scan? Else its own matcher gives it. */
static bool s_regex(const eng_policy_t *pol, s_ctx_t *x, uint32_t i)
{
    if (s_scanned(pol, x) && eng_scan_covers_regex(pol->scan, i)) {
        return (x->hits.rx[i / 64] >> (i % 64)) & 1;
    }
    return eng_regex_match(pol->regexes[i], x->f->text.ptr, x->f->text.len);
}

/* Does the text contain one of the needles in `want`?
 *
 * Every CONTAINS node of a request shares one pass over the text: the scan
 * looks at each byte once, and where the byte anchors needles (their rarest
 * byte, from the policy's anchor table) compares those not found yet. It
 * pauses after the first anchor byte at which a needle of `want` is found
 * (compared forward from its start), and the
 * next node resumes it where it stopped, so a request whose first node
 * matches early does not pay for the whole text, and one that never reaches
 * a CONTAINS node pays nothing. A needle occurs exactly when one of its
 * anchor positions matches, and every position before `scanned` has been
 * checked for every needle, so found[] is exact for text[0, scanned). */
static bool s_contains(const eng_policy_t *pol, s_ctx_t *x, const uint64_t *want)
{
    s_scanned(pol, x);
    if (s_needles_meet(x->found, want)) {
        return true;
    }
    const unsigned char *t = (const unsigned char *)x->f->text.ptr;
    const uint32_t len = x->f->text.len;
    const uint16_t *off = pol->anchor_off;
    for (uint32_t i = x->scanned; i < len; i++) {
        uint32_t k = off[t[i]], end = off[t[i] + 1];
        if (k == end) {
            continue;
        }
        bool hit = false;
        for (; k < end; k++) {
            uint32_t id = pol->anchor_ids[k];
            const eng_pstr_t *nd = &pol->needles[id];
            if (s_has_bit(x->found, id) || i < nd->anchor || nd->len > len - (i - nd->anchor) ||
                !s_needle_at(t + i - nd->anchor, nd)) {
                continue;
            }
            x->found[id / 64] |= UINT64_C(1) << (id % 64);
            x->unfound--;
            hit = hit || s_has_bit(want, id);
        }
        if (hit || x->unfound == 0) {
            x->scanned = x->unfound == 0 ? len : i + 1; /* nothing left to find */
            return hit;
        }
    }
    x->scanned = len;
    return false;
}

static hpp_str_t s_meta(const hpp_features_t *f, const eng_pstr_t *key)
{
    for (uint32_t i = 0; i < f->nmeta; i++) {
        if (s_streq(f->meta_keys[i], key->ptr, key->len)) {
            return f->meta_vals[i];
        }
    }
    hpp_str_t none = {"", 0};
    return none;
}

static bool s_num_cmp(double v, eng_op_t op, double k)
{
    switch (op) {
    case ENG_OP_LT:
        return v < k;
    case ENG_OP_LE:
        return v <= k;
    case ENG_OP_GT:
        return v > k;
    case ENG_OP_GE:
        return v >= k;
    case ENG_OP_EQ:
        return v == k;
    case ENG_OP_NE:
        return v != k;
    default:
        return false;
    }
}

static void s_hints_upto(const eng_policy_t *pol, s_ctx_t *x, uint32_t upto);

/* Scorer i's score of the text: computed once per request, when a
 * condition first needs it. */
static double s_score(const eng_policy_t *pol, s_ctx_t *x, uint32_t i)
{
    if (!(x->scored >> i & 1)) {
        x->score[i] = eng_scorer_score(pol->scorers[i], x->f->text.ptr, x->f->text.len);
        x->scored |= 1u << i;
    }
    return x->score[i];
}

/* The threshold of a score test: the request's meta threshold.NAME when it
 * is a number in [0, 1], else the policy's. */
static double s_score_threshold(const eng_policy_t *pol, const s_ctx_t *x, const eng_cnode_t *n)
{
    const char *knob = pol->scorer_knobs[n->a];
    size_t klen = strlen(knob);
    for (uint32_t i = 0; i < x->f->nmeta; i++) {
        hpp_str_t v = x->f->meta_vals[i];
        if (!s_streq(x->f->meta_keys[i], knob, klen) || v.len == 0 || v.len >= 32) {
            continue;
        }
        char buf[32];
        memcpy(buf, v.ptr, v.len);
        buf[v.len] = '\0';
        char *end = NULL;
        double d = strtod(buf, &end);
        if (*end == '\0' && d >= 0 && d <= 1) {
            return d;
        }
    }
    return n->num;
}

/* Recursion depth is bounded by the parser (ENG_PARSE_MAX_TREE). */
static bool s_eval(const eng_policy_t *pol, s_ctx_t *x, int32_t i)
{
    const eng_cnode_t *n = &pol->nodes[i];
    switch (n->op) {
    case ENG_C_TRUE:
        return true;
    case ENG_C_FALSE:
        return false;
    case ENG_C_OR:
        return s_eval(pol, x, n->a) || s_eval(pol, x, n->b);
    case ENG_C_AND:
        return s_eval(pol, x, n->a) && s_eval(pol, x, n->b);
    case ENG_C_NOT:
        return !s_eval(pol, x, n->a);
    case ENG_C_NUM:
        return s_num_cmp(x->num[n->field], (eng_op_t)n->cmp, n->num);
    case ENG_C_BOOL:
        return x->flag[n->field];
    case ENG_C_HINT_ANY:
        s_hints_upto(pol, x, (uint32_t)n->key < x->limit ? (uint32_t)n->key : x->limit);
        return (x->hints & n->mask) != 0;
    case ENG_C_HINT_ALL:
        s_hints_upto(pol, x, (uint32_t)n->key < x->limit ? (uint32_t)n->key : x->limit);
        return (x->hints & n->mask) == n->mask;
    case ENG_C_STR_IN:
    case ENG_C_STR_NOT: {
        hpp_str_t v = n->field == ENG_F_META ? s_meta(x->f, &pol->strs[n->key]) : x->group;
        bool hit = false;
        for (int32_t k = 0; k < n->b && !hit; k++) {
            hit = s_streq(v, pol->strs[n->a + k].ptr, pol->strs[n->a + k].len);
        }
        return n->op == ENG_C_STR_IN ? hit : !hit;
    }
    case ENG_C_REGEX:
        return s_regex(pol, x, (uint32_t)n->a);
    case ENG_C_CONTAINS:
        return s_contains(pol, x, pol->needle_sets[n->key]);
    case ENG_C_SCORE:
        return s_num_cmp(s_score(pol, x, (uint32_t)n->a), (eng_op_t)n->cmp,
                         s_score_threshold(pol, x, n));
    default:
        return false;
    }
}

static int s_word_bit(const eng_policy_t *pol, hpp_str_t h)
{
    for (uint32_t i = 0; i < pol->nwords; i++) {
        if (pol->word_len[i] != h.len) {
            continue;
        }
        const char *w = pol->words[i];
        uint32_t k = 0;
        while (k < h.len && s_lower((unsigned char)h.ptr[k]) == (unsigned char)w[k]) {
            k++;
        }
        if (k == h.len) {
            return (int)i;
        }
    }
    return -1;
}

static void s_ctx_init(const eng_policy_t *pol, const hpp_features_t *f, s_ctx_t *x)
{
    int64_t out = f->output_tokens >= 0 ? f->output_tokens : pol->default_output;
    x->num[ENG_F_PROMPT_TOKENS] = (double)f->prompt_tokens;
    x->num[ENG_F_OUTPUT_TOKENS] = (double)out;
    x->num[ENG_F_TOTAL_TOKENS] = (double)(f->prompt_tokens + out);
    x->num[ENG_F_CACHE_READ] = (double)f->cache_read_tokens;
    x->num[ENG_F_IMAGES] = (double)f->images;
    x->num[ENG_F_BUDGET] = f->has_budget ? f->budget_usd : INFINITY;
    x->num[ENG_F_TEXT_LENGTH] = (double)f->text.len;
    memset(x->flag, 0, sizeof x->flag);
    x->flag[ENG_F_TOOLS] = f->tools;
    x->flag[ENG_F_JSON] = f->json;
    x->flag[ENG_F_VISION] = f->vision || f->images > 0;
    x->flag[ENG_F_HAS_BUDGET] = f->has_budget;
    x->group = f->group;
    if (x->group.len == 0) {
        x->group.ptr = "default";
        x->group.len = 7;
    }
    x->f = f;
    x->hints = 0;
    for (uint32_t i = 0; i < f->nhints; i++) {
        int b = s_word_bit(pol, f->hints[i]);
        if (b >= 0) {
            x->hints |= UINT64_C(1) << b;
        }
    }
    /* Hint rules run lazily, when a test needs their words (s_hints_upto). */
    x->hint_next = 0;
    x->limit = pol->nhints;
    /* The needle scan starts at the first CONTAINS node (s_contains). */
    memset(x->found, 0, sizeof x->found);
    x->scanned = 0;
    x->unfound = pol->nneedles;
    x->scan = pol->scan && !pol->scan_off ? S_SCAN_TODO : S_SCAN_NONE;
    x->scored = 0;
}

/* Runs hint rules [hint_next, upto) in order; each sees the hints the
 * earlier ones added. While rule j runs, its own tests may use only rules
 * before j (limit = j): exactly what running them all in order would see. */
static void s_hints_upto(const eng_policy_t *pol, s_ctx_t *x, uint32_t upto)
{
    while (x->hint_next < upto) {
        uint32_t j = x->hint_next;
        const eng_phint_t *h = &pol->hints[j];
        uint32_t saved = x->limit;
        x->limit = j;
        if (!(x->hints >> h->word & 1) && s_eval(pol, x, h->cond)) {
            x->hints |= UINT64_C(1) << h->word;
        }
        x->limit = saved;
        x->hint_next = j + 1;
    }
}

/* Candidates ------------------------------------------------------------------ */

static void s_trace(s_walk_t *w, const eng_endpoint_t *ep, int tier, eng_reject_t why,
                    hpp_pusd_t cost)
{
    eng_trace_t *t = w->trace;
    if (t->n < t->cap && t->entries) {
        eng_trace_entry_t *e = &t->entries[t->n++];
        e->endpoint = ep;
        e->tier = tier;
        e->reason = why;
        e->cost = cost;
    } else {
        t->dropped++;
    }
}

static eng_reject_t s_caps_check(const s_walk_t *w, uint32_t caps)
{
    uint32_t missing = w->need & ~caps;
    if (missing & HPP_CAP_VISION) {
        return ENG_REJ_VISION;
    }
    if (missing & HPP_CAP_TOOLS) {
        return ENG_REJ_TOOLS;
    }
    if (missing & HPP_CAP_JSON) {
        return ENG_REJ_JSON;
    }
    if (w->rule_caps & ~caps) {
        return ENG_REJ_CAPABILITY;
    }
    return ENG_REJ_CHOSEN;
}

/* The prices of endpoint ep for this request: those that rise with the
 * prompt's size apply to the whole request. */
static const hpp_price_t *s_price(const s_walk_t *w, const eng_endpoint_t *ep)
{
    return ep->long_above && w->f->prompt_tokens > (int64_t)ep->long_above ? &ep->long_price
                                                                           : &ep->price;
}

/* The group's multiplier applied to an estimate: 0, or -1 when it cannot
 * be represented. */
static int s_multiply(const s_walk_t *w, hpp_cost_t *cost)
{
    return w->permille != 1000 && eng_cost_scale(cost, w->permille) != 0 ? -1 : 0;
}

static int s_estimate(const s_walk_t *w, const eng_endpoint_t *ep, hpp_cost_t *cost)
{
    return eng_cost_estimate(s_price(w, ep), &w->usage, cost) != 0 ? -1 : s_multiply(w, cost);
}

/* True when an unscaled estimate `total` is over the budget by enough that
 * its scaled cost is too: each of the four parts is scaled and rounded on
 * its own, half up, so the scaled total is at least total x permille /
 * 1000 - 2. Most candidates of a tight, multiplied budget end here, without
 * the four roundings. */
static bool s_over_scaled(const s_walk_t *w, hpp_pusd_t total)
{
    return w->permille != 1000 && (__int128)total * w->permille >= ((__int128)w->budget + 3) * 1000;
}

/* The request's provider routing --------------------------------------------- */

static bool s_name_eq(hpp_str_t a, const char *b, uint32_t blen)
{
    if (a.len != blen) {
        return false;
    }
    for (uint32_t i = 0; i < blen; i++) {
        if (s_lower((unsigned char)a.ptr[i]) != s_lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

/* Index of the endpoint's provider in list[0, n) (ASCII case-insensitive:
 * OpenRouter's documentation writes "OpenAI" where its slugs say "openai"),
 * or -1. */
static int s_prov_index(const hpp_str_t *list, uint32_t n, const eng_endpoint_t *ep)
{
    for (uint32_t i = 0; i < n; i++) {
        if (s_name_eq(list[i], ep->provider, ep->provider_len)) {
            return (int)i;
        }
    }
    return -1;
}

/* A price above the caller's limit; the group multiplier applies, as it
 * does to what a budget buys. A price that does not apply is no price. */
static bool s_above(hpp_pusd_t price, hpp_pusd_t max, uint32_t permille)
{
    return price != HPP_PRICE_NA && (__int128)price * permille > (__int128)max * 1000;
}

/* The policy's allow_/deny_providers (group, rule), the request's
 * providers_only / _ignore / allow_fallbacks, then max_price, for one endpoint. */
static eng_reject_t s_endpoint_filter(const s_walk_t *w, const eng_endpoint_t *ep)
{
    const hpp_features_t *f = w->f;
    uint32_t e = (uint32_t)(ep - w->pol->eps);
    if ((w->group_deny && s_has_bit(w->group_deny, e)) ||
        (w->rule_deny && s_has_bit(w->rule_deny, e))) {
        return ENG_REJ_POLICY_PROVIDER;
    }
    if ((f->nproviders_only && s_prov_index(f->providers_only, f->nproviders_only, ep) < 0) ||
        s_prov_index(f->providers_ignore, f->nproviders_ignore, ep) >= 0 ||
        (f->no_fallbacks && f->nproviders_order &&
         s_prov_index(f->providers_order, f->nproviders_order, ep) < 0)) {
        return ENG_REJ_PROVIDER;
    }
    const hpp_max_price_t *mp = &f->max_price;
    const hpp_price_t *p = &ep->price;
    if (((mp->set & HPP_MAXP_PROMPT) && s_above(p->input, mp->prompt, w->permille)) ||
        ((mp->set & HPP_MAXP_COMPLETION) && s_above(p->output, mp->completion, w->permille)) ||
        ((mp->set & HPP_MAXP_REQUEST) && s_above(p->per_request, mp->request, w->permille)) ||
        ((mp->set & HPP_MAXP_IMAGE) && s_above(p->per_image, mp->image, w->permille))) {
        return ENG_REJ_MAX_PRICE;
    }
    return ENG_REJ_CHOSEN;
}

/* The request's restrictions on endpoint ep of model m (w->filter is set). */
static eng_reject_t s_filter(const s_walk_t *w, uint32_t m, const eng_endpoint_t *ep)
{
    if (w->nallow) {
        uint32_t i = 0;
        while (i < w->nallow && w->allow[i] != m) {
            i++;
        }
        if (i == w->nallow) {
            return ENG_REJ_NOT_IN_MODELS;
        }
    }
    return s_endpoint_filter(w, ep);
}

/* The rank key of endpoint e when the measured figures order or demote it
 * (the request's or the rule's `sort` latency or throughput, and the
 * request's preferred_max_latency / preferred_min_throughput): keys above
 * the providers_order ones, lower is better, an endpoint not measured after
 * the measured ones, one that misses a preference after every other. */
static uint32_t s_measured_key(const s_walk_t *w, int32_t e, uint32_t key)
{
    const eng_health_t *h = w->pol->health;
    if (!h) {
        return key;
    }
    double lat = eng_health_latency_ms(h, (size_t)e);
    double tps = eng_health_tps(h, (size_t)e);
    uint32_t base = HPP_MAX_PROVIDERS + 2, span = 0x3ffe;
    if (w->sort == HPP_SORT_LATENCY) {
        key = lat < 0 ? base + span : base + (uint32_t)(lat < span - 1 ? lat : span - 1);
    } else if (w->sort == HPP_SORT_THROUGHPUT) {
        key = tps < 0 ? base + span : base + span - 1 - (uint32_t)(tps < span - 1 ? tps : span - 1);
    }
    const hpp_features_t *f = w->f;
    bool slow = (f->max_latency_s > 0 && lat >= 0 && lat > f->max_latency_s * 1000) ||
                (f->min_throughput > 0 && tps >= 0 && tps < f->min_throughput);
    return slow ? key | 0x8000 : key;
}

/* Where endpoint e of model m stands in the request's order: providers_order
 * first (in its order), then the endpoint the variant would use without the
 * request's preferences (`base`: the policy's `providers` for a plain model),
 * then the others cheapest first - all of them cheapest first for
 * providers_sort "price" and the :floor and :free variants. The endpoint's
 * place in the catalog breaks ties, so ranks are distinct. */
static uint32_t s_rank(const s_walk_t *w, const eng_model_t *model, int32_t e, int32_t base,
                       s_variant_t v)
{
    const hpp_features_t *f = w->f;
    uint32_t k = (uint32_t)e - model->ep_first;
    int o = s_prov_index(f->providers_order, f->nproviders_order, &w->pol->eps[e]);
    uint32_t key = o >= 0 ? (uint32_t)o
                   : (v == S_PLAIN || v == S_AUTO) && w->sort != HPP_SORT_PRICE && e != base
                       ? HPP_MAX_PROVIDERS + 1
                       : HPP_MAX_PROVIDERS;
    if (o < 0 && w->measured) {
        key = s_measured_key(w, e, key);
    }
    return key << 16 | (k & 0xffff);
}

/* Endpoints a variant may use at all: only $0 ones for :free, and never
 * the `:free` variant for the plain id or :floor (a plain id means the paid
 * endpoints, as on OpenRouter where ID:free is a model of its own). */
static bool s_variant_ep(const eng_endpoint_t *ep, s_variant_t v)
{
    return v == S_FREE ? ep->is_free : v == S_AUTO || !ep->free_variant;
}

/* The endpoint of model m that the request's preferences pick: the first
 * in s_rank order that is enabled and passes the provider filters. When none
 * does, `base`, so that the check names the reason. */
static int32_t s_pick(const s_walk_t *w, uint32_t m, int32_t base, s_variant_t v)
{
    if (base < 0) {
        return base;
    }
    const eng_model_t *model = &w->pol->models[m];
    int32_t best = -1;
    uint32_t best_rank = UINT32_MAX;
    for (uint32_t k = 0; k < model->ep_count; k++) {
        int32_t e = (int32_t)(model->ep_first + k);
        const eng_endpoint_t *ep = &w->pol->eps[e];
        if (!ep->enabled || !s_variant_ep(ep, v) || s_endpoint_filter(w, ep) != ENG_REJ_CHOSEN ||
            (w->health && eng_health_cooling(w->health, (size_t)e, w->now_ms))) {
            continue;
        }
        uint32_t r = s_rank(w, model, e, base, v);
        if (r < best_rank) {
            best = e;
            best_rank = r;
        }
    }
    return best >= 0 ? best : base;
}

/* The endpoint of model m the walk offers, `base` being the policy's: the
 * request's choice when it has preferences, another endpoint when `base` is
 * cooling down (only then: the plain walk stays one predictable branch). */
static inline int32_t s_ep_for(const s_walk_t *w, uint32_t m, int32_t base, s_variant_t v)
{
    if (w->prov_rank ||
        (w->health && base >= 0 && eng_health_cooling(w->health, (size_t)base, w->now_ms))) {
        return s_pick(w, m, base, v);
    }
    return base;
}

/* The endpoint auto offers for model m. */
static inline int32_t s_auto_ep(const s_walk_t *w, uint32_t m)
{
    return s_ep_for(w, m, w->pol->model_ep[m], S_AUTO);
}

/* The policy's provider lists apply: like the request's own, they make each
 * model's endpoint a per-request choice (the first one they allow) and reject
 * the others; the budget bound, computed from the policy's endpoints, is off. */
static void s_policy_providers(s_walk_t *w, const uint64_t *group_deny, const uint64_t *rule_deny)
{
    if (group_deny) {
        w->group_deny = group_deny;
    }
    if (rule_deny) {
        w->rule_deny = rule_deny;
    }
    w->filter = w->prov_rank = true;
    w->bound = false;
}

/* Whether the request's group may use model m. */
static inline bool s_group_allows(const s_walk_t *w, uint32_t m)
{
    return !w->group || !w->group->allow || s_has_bit(w->group->allow, m);
}

/* Hard constraints and budget for endpoint e of model m. */
static eng_reject_t s_check(s_walk_t *w, uint32_t m, const eng_endpoint_t *ep, hpp_cost_t *cost,
                            bool *have_cost)
{
    const eng_policy_t *pol = w->pol;
    const eng_model_t *model = &pol->models[m];
    *have_cost = false;
    if (!ep->enabled) {
        return ENG_REJ_DISABLED;
    }
    if (!s_group_allows(w, m)) {
        return ENG_REJ_GROUP;
    }
    if (w->filter) {
        eng_reject_t fr = s_filter(w, m, ep);
        if (fr != ENG_REJ_CHOSEN) {
            return fr;
        }
    }
    eng_reject_t r = s_caps_check(w, model->caps);
    if (r != ENG_REJ_CHOSEN) {
        return r;
    }
    /* Reasoning tokens are generated too: they take room in the window and
     * count against the model's output limit. */
    int64_t gen = w->out_tokens + w->f->reasoning_tokens;
    uint32_t ctx = ep->context_length ? ep->context_length : model->context_length;
    if (ctx > 0 && w->f->prompt_tokens + gen > (int64_t)ctx) {
        return ENG_REJ_CONTEXT;
    }
    if (ctx < w->min_context) {
        return ENG_REJ_MIN_CONTEXT; /* an unknown window (0) does not prove it */
    }
    if ((w->out_explicit || w->f->reasoning_tokens > 0) && model->max_output > 0 &&
        gen > (int64_t)model->max_output) {
        return ENG_REJ_MAX_OUTPUT;
    }
    if (w->budget >= 0 || w->trace) {
        /* Beyond any representable amount, or (without a trace, which shows
         * each candidate's scaled cost) over the budget before scaling. */
        if (eng_cost_estimate(s_price(w, ep), &w->usage, cost) != 0 ||
            (!w->trace && s_over_scaled(w, cost->total)) || s_multiply(w, cost) != 0) {
            return ENG_REJ_BUDGET;
        }
        *have_cost = true;
        if (w->budget >= 0 && cost->total > w->budget) {
            return ENG_REJ_BUDGET;
        }
    }
    /* Last: a cooling endpoint is one that would fit otherwise, so that
     * only then is the request worth resolving again with it allowed. */
    if (w->health && eng_health_cooling(w->health, (size_t)(ep - pol->eps), w->now_ms)) {
        *w->cooled = true;
        return ENG_REJ_COOLING;
    }
    return ENG_REJ_CHOSEN;
}

static void s_choose(s_walk_t *w, uint32_t m, const eng_endpoint_t *ep, int tier,
                     const hpp_cost_t *cost, bool have_cost)
{
    eng_decision_t *out = w->out;
    const eng_policy_t *pol = w->pol;
    out->status = HPP_OK;
    out->model = &pol->models[m];
    out->endpoint = ep;
    out->tier = tier;
    out->tier_name = tier >= 0 ? pol->tiers[tier].name : "";
    if (have_cost) {
        out->cost = *cost;
    } else if (s_estimate(w, ep, &out->cost) != 0) {
        memset(&out->cost, 0, sizeof out->cost);
    }
    w->chosen = true;
}

static void s_offer(s_walk_t *w, uint32_t m, int32_t e, int tier);

/* Offers the endpoints of model m other than `skip` in the request's order
 * (s_rank against `base`), until `max` of them have joined the fallbacks.
 * Endpoints are few per model: picking the next rank each time is cheaper
 * than any sort, and needs no memory. */
static void s_offer_ranked(s_walk_t *w, uint32_t m, int32_t skip, int32_t base, s_variant_t v,
                           int tier, uint32_t max)
{
    const eng_model_t *model = &w->pol->models[m];
    uint32_t prev = 0, added = 0;
    bool first = true;
    for (uint32_t n = 0; n < model->ep_count && added < max && !w->stop; n++) {
        int32_t next = -1;
        uint32_t next_rank = UINT32_MAX;
        for (uint32_t k = 0; k < model->ep_count; k++) {
            int32_t e = (int32_t)(model->ep_first + k);
            if (e == skip || !s_variant_ep(&w->pol->eps[e], v)) {
                continue;
            }
            uint32_t r = s_rank(w, model, e, base, v);
            if ((first || r > prev) && r < next_rank) {
                next = e;
                next_rank = r;
            }
        }
        if (next < 0) {
            break;
        }
        prev = next_rank;
        first = false;
        uint32_t before = w->out->nfallbacks;
        s_offer(w, m, next, tier);
        added += w->out->nfallbacks > before;
    }
}

/* After a choice by auto: the chosen model's other endpoints that fit, of
 * the same kind (a paid choice is not backed by the free variant, nor a free
 * variant by paid endpoints). */
static void s_alternates(s_walk_t *w, uint32_t m, int tier)
{
    const eng_model_t *model = &w->pol->models[m];
    s_variant_t v = w->out->endpoint->free_variant ? S_FREE : S_PLAIN;
    if (w->prov_rank) {
        if (!w->primary_only) {
            int32_t chosen = (int32_t)(w->out->endpoint - w->pol->eps);
            int32_t base = v == S_FREE ? model->free_ep : w->pol->model_plain_ep[m];
            s_offer_ranked(w, m, chosen, base, v, tier, S_ALT_ENDPOINTS);
        }
        return;
    }
    uint32_t added = 0;
    for (uint32_t k = 0; k < model->ep_count && added < S_ALT_ENDPOINTS && !w->stop; k++) {
        int32_t e = (int32_t)(model->ep_first + k);
        if (&w->pol->eps[e] == w->out->endpoint || !s_variant_ep(&w->pol->eps[e], v)) {
            continue;
        }
        uint32_t before = w->out->nfallbacks;
        s_offer(w, m, e, tier);
        added += w->out->nfallbacks > before;
    }
}

/* Offers endpoint e of model m, considered in tier `tier`; after the
 * choice it counts toward the look-ahead when `counts` and the group may use
 * m. A trace passes counts = false for what the bound would have skipped
 * (s_walk_tier), so that it stops where the walk without one stops. */
static void s_offer_as(s_walk_t *w, uint32_t m, int32_t e, int tier, bool counts)
{
    if (w->stop || e < 0) {
        return;
    }
    const eng_endpoint_t *ep = &w->pol->eps[e];
    hpp_cost_t cost;
    bool have_cost;
    eng_reject_t why = s_check(w, m, ep, &cost, &have_cost);
    if (why == ENG_REJ_BUDGET) {
        w->budget_hit = true;
    }
    if (why == ENG_REJ_CHOSEN) {
        if (!w->chosen) {
            s_choose(w, m, ep, tier, &cost, have_cost);
            if (w->trace) {
                s_trace(w, ep, tier, why, have_cost ? cost.total : HPP_PRICE_NA);
            }
            if (w->alternates) {
                s_alternates(w, m, tier);
            }
            return;
        } else {
            eng_decision_t *out = w->out;
            bool dup = out->endpoint == ep;
            for (uint32_t i = 0; i < out->nfallbacks && !dup; i++) {
                dup = out->fallbacks[i] == ep;
            }
            if (!dup) {
                /* A gateway that retries here reports this tier and estimate. */
                out->fallback_tier[out->nfallbacks] = tier >= 0 ? w->pol->tiers[tier].name : "";
                if (!have_cost && s_estimate(w, ep, &cost) != 0) {
                    cost.total = 0;
                }
                out->fallback_cost[out->nfallbacks] = cost.total;
                out->fallbacks[out->nfallbacks++] = ep;
            }
            why = ENG_REJ_SHADOWED;
        }
    }
    if (w->trace) {
        s_trace(w, ep, tier, why, have_cost ? cost.total : HPP_PRICE_NA);
    }
    if (w->chosen && ((counts && s_group_allows(w, m) && ++w->extra > S_LOOKAHEAD) ||
                      w->out->nfallbacks >= HPP_MAX_FALLBACKS)) {
        w->stop = true;
    }
}

static void s_offer(s_walk_t *w, uint32_t m, int32_t e, int tier)
{
    s_offer_as(w, m, e, tier, true);
}

/* True when even the least prices from a list entry on (input, cache read,
 * output) put the request over budget. A few picodollars of slack cover the
 * half-up rounding of a group multiplier, part by part: the test is
 * sum x permille / 1000 - 4 > budget, with the division (a libgcc call in
 * 128 bits) moved to the other side as a product. The bound is only on
 * when the budget is not negative, and the sum never is. */
static bool s_over_budget(const s_walk_t *w, const hpp_pusd_t lo[3])
{
    const int64_t n[3] = {w->usage.prompt_tokens, w->usage.cache_read_tokens,
                          w->usage.completion_tokens + w->usage.reasoning_tokens};
    __int128 sum = 0;
    for (int k = 0; k < 3; k++) {
        sum += (__int128)n[k] * lo[k];
    }
    return sum * w->permille >= ((__int128)w->budget + 5) * 1000;
}

/* With the budget bound on, at the start of each block of list l: how many
 * entries from i on cost more than the budget by their least prices: the
 * rest of the list, the block, or none. */
static uint32_t s_bound_span(const s_walk_t *w, const eng_plist_t *l, uint32_t i)
{
    if (!w->bound || i % ENG_BLOCK != 0) {
        return 0;
    }
    const eng_policy_t *pol = w->pol;
    if (s_over_budget(w, pol->pool_min[l->off + i][0])) {
        return l->len - i; /* this entry and every later one */
    }
    if (s_over_budget(w, pol->pool_min[l->off + i][1])) {
        return ENG_BLOCK; /* every entry of this block (a last, shorter one: past the end) */
    }
    return 0;
}

/* The entries from i on that the walk passes unexamined (none under a
 * trace, which shows every candidate). */
static uint32_t s_bound_skip(s_walk_t *w, const eng_plist_t *l, uint32_t i)
{
    uint32_t n = w->trace ? 0 : s_bound_span(w, l, i);
    w->skipped = w->skipped || n > 0;
    return n;
}

/* Whether this request's prompt moves model m to another tier: it is above
 * the threshold of m's long-prompt prices, and they are in another band. */
static inline bool s_moved(const s_walk_t *w, uint32_t m)
{
    const eng_policy_t *pol = w->pol;
    return pol->model_long_tier[m] != ENG_LONG_SAME &&
           w->f->prompt_tokens > (int64_t)pol->eps[pol->model_ep[m]].long_above;
}

/* The tier model m is in for this request. */
static inline int s_tier_of(const s_walk_t *w, uint32_t m)
{
    return s_moved(w, m) ? w->pol->model_long_tier[m] : w->pol->model_tier[m];
}

/* A tier with fee-bearing models is ordered by the blend of a reference
 * request (policies/README.md 2.4), which a request of another size or with
 * images may not follow: a per-call fee weighs little on a long prompt and
 * much on a short one. There, the candidate the request's own estimate
 * finds cheapest among the first S_FEE_WINDOW that fit is offered first;
 * the walk then goes on in blend order for the fallbacks. Tiers without
 * fees (every bundled one) are walked as they are. */
#define S_FEE_WINDOW 16

static void s_cheapest_first(s_walk_t *w, const eng_plist_t *l, int t, bool longs)
{
    const eng_policy_t *pol = w->pol;
    uint32_t best = UINT32_MAX, seen = 0;
    int32_t best_e = -1;
    hpp_pusd_t best_cost = INT64_MAX;
    for (uint32_t i = 0; i < l->len && seen < S_FEE_WINDOW; i++) {
        uint32_t skip = s_bound_skip(w, l, i);
        if (skip) {
            i += skip - 1;
            continue;
        }
        uint32_t m = pol->pool[l->off + i];
        if (!s_group_allows(w, m)) {
            continue; /* first: s_check says the same after finding the endpoint */
        }
        int32_t e = s_auto_ep(w, m);
        if (e < 0 || (longs && s_moved(w, m))) {
            continue;
        }
        hpp_cost_t cost;
        bool have_cost;
        if (s_check(w, m, &pol->eps[e], &cost, &have_cost) != ENG_REJ_CHOSEN) {
            continue;
        }
        seen++;
        if ((have_cost || s_estimate(w, &pol->eps[e], &cost) == 0) && cost.total < best_cost) {
            best = m;
            best_e = e;
            best_cost = cost.total;
        }
    }
    if (best != UINT32_MAX) {
        s_offer(w, best, best_e, t);
    }
}

/* Walks tier t: the rule's preferred models first, then the tier's list,
 * then the models this request's long prompt moves into t (their prices
 * above a prompt size put them in t's band; they are skipped in the tier of
 * their usual prices). */
static void s_walk_tier(s_walk_t *w, const eng_prule_t *r, int t, uint32_t mask, bool floor)
{
    const eng_policy_t *pol = w->pol;
    bool prefs = !floor && r->pref_count > 0;
    bool longs = pol->nlong > 0 && w->f->prompt_tokens > 0;
    if (prefs) {
        for (uint32_t i = 0; i < r->pref_count && !w->stop; i++) {
            uint32_t m = pol->prefer_pool[r->pref_first + i];
            if ((longs ? s_tier_of(w, m) : pol->model_tier[m]) == t &&
                (pol->models[m].caps & mask) == mask) {
                s_offer(w, m, s_auto_ep(w, m), t);
            }
        }
    }
    const eng_plist_t *l = floor ? &pol->floor_lists[t][mask] : &pol->lists[t][mask];
    if (pol->tier_fees[t] && !w->chosen) {
        s_cheapest_first(w, l, t, longs);
    }
    uint32_t unexamined = 0; /* under a trace: entries before it the bound would pass */
    for (uint32_t i = 0; i < l->len && !w->stop; i++) {
        uint32_t skip = s_bound_skip(w, l, i);
        if (skip) {
            i += skip - 1;
            continue;
        }
        uint32_t span = w->trace ? s_bound_span(w, l, i) : 0;
        unexamined = span ? i + span : unexamined;
        uint32_t m = pol->pool[l->off + i];
        if ((prefs && s_has_bit(r->pref_set, m)) || (longs && s_moved(w, m)) ||
            (!w->trace && !s_group_allows(w, m))) {
            continue; /* a trace shows the group's refusals; they count for nothing */
        }
        s_offer_as(w, m, s_auto_ep(w, m), t, i >= unexamined);
    }
    for (uint32_t i = 0; longs && i < pol->nlong && !w->stop; i++) {
        uint32_t m = pol->long_pool[i];
        if (pol->model_long_tier[m] == t && s_moved(w, m) && (pol->models[m].caps & mask) == mask &&
            !(prefs && s_has_bit(r->pref_set, m))) {
            s_offer(w, m, s_auto_ep(w, m), t);
        }
    }
}

/* Free candidates: every model with an enabled $0 endpoint, skipping those
 * already offered with that endpoint in a visited tier. */
static void s_walk_free(s_walk_t *w, uint32_t mask, uint32_t visited)
{
    const eng_policy_t *pol = w->pol;
    const eng_plist_t *l = &pol->free_lists[mask];
    for (uint32_t i = 0; i < l->len && !w->stop; i++) {
        uint32_t m = pol->pool[l->off + i];
        int tier = pol->model_tier[m];
        int32_t e = s_ep_for(w, m, pol->models[m].free_ep, S_FREE);
        if (tier >= 0 && (visited >> tier & 1) && s_auto_ep(w, m) == e) {
            continue;
        }
        s_offer(w, m, e, tier);
    }
}

/* Requests for a named model ----------------------------------------------------- */

static hpp_status_t s_direct(s_walk_t *w, const eng_model_t *model, s_variant_t v)
{
    const eng_policy_t *pol = w->pol;
    eng_decision_t *out = w->out;
    uint32_t m = eng_catalog_model_index(pol->catalog, model);
    out->rule = v == S_FREE ? "free" : v == S_FLOOR ? "floor" : "direct";
    if (w->group && w->group->allow && !s_has_bit(w->group->allow, m)) {
        return s_fail(out, HPP_E_MODEL_NOT_ALLOWED, "model '", model->id,
                      "' is not allowed for this group");
    }
    int32_t base = v == S_FREE    ? model->free_ep
                   : v == S_FLOOR ? model->floor_ep
                                  : pol->model_plain_ep[m];
    if (v != S_FREE && base < 0 && model->free_ep >= 0) {
        return s_fail(out, HPP_E_NO_CANDIDATE, "model '", model->id,
                      "' has only a free endpoint: ask for the ':free' variant");
    }
    int32_t e = s_ep_for(w, m, base, v);
    if (e < 0 || !pol->eps[e].enabled) {
        if (v == S_FREE) {
            return s_fail(out, HPP_E_NO_FREE_VARIANT, "model '", model->id,
                          "' has no free endpoint");
        }
        return s_fail(out, HPP_E_NO_CANDIDATE, "model '", model->id, "' has no enabled endpoint");
    }
    int tier = v == S_FREE ? pol->model_tier[m] : pol->model_plain_tier[m];
    s_offer(w, m, e, tier);
    /* The other endpoints of the model are its fallbacks: in the request's
     * order when it has one, and none when it allows no fallback provider. */
    if (w->prov_rank) {
        if (!w->primary_only) {
            s_offer_ranked(w, m, e, base, v, tier, UINT32_MAX);
        }
    } else {
        for (uint32_t k = 0; k < model->ep_count && !w->stop; k++) {
            int32_t o = (int32_t)(model->ep_first + k);
            if (o != e && s_variant_ep(&pol->eps[o], v)) {
                s_offer(w, m, o, tier);
            }
        }
    }
    /* When the asked-for endpoint does not fit but another endpoint of the
     * model does, that one answers: the gateway may call any of them. */
    if (!w->chosen) {
        hpp_cost_t cost;
        bool have_cost;
        s_walk_t probe = *w;
        probe.trace = NULL;
        probe.budget = -1;
        eng_reject_t why = s_check(&probe, m, &pol->eps[e], &cost, &have_cost);
        if (w->budget_hit) {
            return s_fail(out, HPP_E_INSUFFICIENT_BUDGET, "model '", model->id,
                          "' costs more than the budget");
        }
        return s_fail(
            out, HPP_E_NO_CANDIDATE, "model '", model->id,
            why == ENG_REJ_CONTEXT      ? "' context window is too small for the request"
            : why == ENG_REJ_MAX_OUTPUT ? "' max output is smaller than the request's output tokens"
            : why == ENG_REJ_PROVIDER   ? "' has no endpoint the request's providers allow"
            : why == ENG_REJ_POLICY_PROVIDER ? "' has no endpoint the group's providers allow"
            : why == ENG_REJ_MIN_CONTEXT     ? "' context window is below the group's min_context"
            : why == ENG_REJ_MAX_PRICE       ? "' has no endpoint within the request's max_price"
                                             : "' lacks a capability the request needs");
    }
    out->tier = tier;
    out->tier_name = tier >= 0 ? pol->tiers[tier].name : "";
    s_msg(out, "named model '", model->id, "'");
    return HPP_OK;
}

/* Parses the requested model: auto or a catalog id, with :floor / :free. */
static const eng_model_t *s_model(const eng_policy_t *pol, hpp_str_t name, bool *is_auto,
                                  s_variant_t *v)
{
    static const char auto_id[] = HPP_AUTO_MODEL;
    const size_t alen = sizeof auto_id - 1;
    *v = S_PLAIN;
    *is_auto = false;
    if (name.len == 0 || s_streq(name, auto_id, alen)) {
        *is_auto = true;
        return NULL;
    }
    const eng_model_t *m = eng_catalog_find(pol->catalog, name.ptr, name.len);
    if (m) {
        return m;
    }
    hpp_str_t base = name;
    s_variant_t var = S_PLAIN;
    if (name.len > 6 && memcmp(name.ptr + name.len - 6, ":floor", 6) == 0) {
        var = S_FLOOR;
        base.len -= 6;
    } else if (name.len > 5 && memcmp(name.ptr + name.len - 5, ":free", 5) == 0) {
        var = S_FREE;
        base.len -= 5;
    }
    if (var != S_PLAIN) {
        if (s_streq(base, auto_id, alen)) {
            *is_auto = true;
            *v = var;
            return NULL;
        }
        m = eng_catalog_lookup(pol->catalog, base.ptr, base.len);
        if (m) {
            *v = var;
            return m;
        }
    }
    /* A provider's spelling of the id (aliases, native ids). */
    return eng_catalog_lookup(pol->catalog, name.ptr, name.len);
}

/* The request's `models` ------------------------------------------------------ */

/* Model fallbacks, OpenRouter's way: the body's model (when it names one),
 * then `models` in order; the first that resolves answers (as a named model:
 * its endpoints, in the request's provider order), and each later one adds
 * its endpoint to the fallbacks. Nothing outside the list is offered. When
 * none resolves, the first one's error is the answer: it is the model the
 * client wanted most. */
static hpp_status_t s_list(s_walk_t *w, const eng_model_t *const *models, const s_variant_t *vars,
                           uint32_t n)
{
    const eng_policy_t *pol = w->pol;
    eng_decision_t *out = w->out;
    hpp_status_t first_st = HPP_OK;
    char first_msg[sizeof out->message];
    const char *first_rule = "";
    for (uint32_t i = 0; i < n && !w->stop; i++) {
        uint32_t m = eng_catalog_model_index(pol->catalog, models[i]);
        if (w->chosen) {
            int32_t base = vars[i] == S_FREE    ? models[i]->free_ep
                           : vars[i] == S_FLOOR ? models[i]->floor_ep
                                                : pol->model_plain_ep[m];
            s_offer(w, m, s_ep_for(w, m, base, vars[i]),
                    vars[i] == S_FREE ? pol->model_tier[m] : pol->model_plain_tier[m]);
            continue;
        }
        out->status = HPP_OK;
        w->budget_hit = w->stop = false;
        w->extra = 0;
        hpp_status_t st = s_direct(w, models[i], vars[i]);
        if (st != HPP_OK && first_st == HPP_OK) {
            first_st = st;
            memcpy(first_msg, out->message, sizeof first_msg);
            first_rule = out->rule;
        }
    }
    if (!w->chosen) {
        out->rule = first_rule;
        return s_fail(out, first_st, first_msg, NULL, NULL);
    }
    return HPP_OK;
}

/* Looks up every entry of `models`: the named models, or for auto the only
 * models it may choose (w->allow). An entry that names no catalog model is
 * unknown_model, and auto is not a model: neither is skipped in silence. */
static hpp_status_t s_models(s_walk_t *w, const eng_model_t **models, s_variant_t *vars)
{
    const hpp_features_t *f = w->f;
    for (uint32_t i = 0; i < f->nmodels; i++) {
        bool is_auto;
        char buf[96], idx[24];
        snprintf(idx, sizeof idx, "models[%u]: ", i);
        models[i] = s_model(w->pol, f->models[i], &is_auto, &vars[i]);
        if (is_auto) {
            return s_fail(w->out, HPP_E_BAD_REQUEST, idx,
                          "'hpprouter/auto' is not a catalog model (put it in model)", NULL);
        }
        if (!models[i]) {
            s_fail(w->out, HPP_E_UNKNOWN_MODEL, idx, "unknown model '",
                   s_cstr(f->models[i], buf, sizeof buf));
            size_t len = strlen(w->out->message);
            if (len + 1 < sizeof w->out->message) {
                w->out->message[len] = '\'';
                w->out->message[len + 1] = '\0';
            }
            return HPP_E_UNKNOWN_MODEL;
        }
        w->allow[i] = eng_catalog_model_index(w->pol->catalog, models[i]);
    }
    return HPP_OK;
}

/* Auto ------------------------------------------------------------------------ */

/* Walks the rule's tiers, then the free fallback. Returns true when the
 * answer came from the free fallback. */
static bool s_walk_rule(s_walk_t *w, const eng_prule_t *r, uint32_t mask, bool floor)
{
    if (w->max_tier >= 0 && r->tier > w->max_tier) {
        /* Stepped down by the key's remaining money: the tier allowed, then
         * cheaper ones; a free cap leaves only the free models. */
        uint32_t visited = 0;
        for (int t = w->max_tier; t >= 0 && !w->stop; t--) {
            if (!w->pol->tiers[t].is_free) {
                visited |= 1u << t;
                s_walk_tier(w, r, t, mask, floor);
            }
        }
        bool fell = !w->chosen;
        if (!w->stop) {
            s_walk_free(w, mask, visited);
        }
        return fell && w->chosen;
    }
    int ob = w->budget >= 0;
    uint32_t visited = 0;
    for (uint32_t i = 0; i < r->norder[ob] && !w->stop; i++) {
        int t = r->order[ob][i];
        visited |= 1u << t;
        s_walk_tier(w, r, t, mask, floor);
    }
    bool fell_back = false;
    if (r->free_fallback && !w->stop) {
        fell_back = !w->chosen;
        s_walk_free(w, mask, visited);
    }
    return fell_back && w->chosen;
}

static hpp_status_t s_auto(s_walk_t *w, s_ctx_t *x, s_variant_t v)
{
    const eng_policy_t *pol = w->pol;
    eng_decision_t *out = w->out;
    const eng_prule_t *r = NULL;
    w->alternates = true;
    for (uint32_t i = 0; i < pol->nrules; i++) {
        const eng_prule_t *c = &pol->rules[i];
        if (w->trace && w->trace->nrules_tried < 32) {
            w->trace->rules_tried[w->trace->nrules_tried++] = c->name;
        }
        if (c->cond < 0 || s_eval(pol, x, c->cond)) {
            r = c;
            break;
        }
    }
    if (!r) {
        out->rule = "";
        return s_fail(out, HPP_E_NO_CANDIDATE, "no routing rule matches the request", NULL, NULL);
    }
    out->rule = r->name;
    if (r->sort != HPP_SORT_DEFAULT && w->f->sort == HPP_SORT_DEFAULT) {
        w->sort = r->sort;
        w->measured = w->measured || r->sort != HPP_SORT_PRICE;
        w->prov_rank = true;
        w->bound = false;
    }
    if (w->f->output_tokens < 0 && r->output > 0) {
        w->out_tokens = r->output;
        w->usage.completion_tokens = r->output;
        out->output_tokens = r->output;
    }
    w->rule_caps = r->caps;
    if (r->min_context > w->min_context) {
        w->min_context = r->min_context; /* the stricter of the group's and the rule's */
    }
    if (r->ep_deny) {
        s_policy_providers(w, NULL, r->ep_deny);
    }
    uint32_t mask = (w->need | r->caps) & (ENG_CAP_MASKS - 1);
    if (v == S_FREE) {
        s_walk_free(w, mask, 0);
        if (!w->chosen) {
            return s_fail(out, HPP_E_NO_FREE_VARIANT, "no free model fits the request (rule '",
                          r->name, "')");
        }
        s_msg(out, "rule '", r->name, "': free model asked for");
        return HPP_OK;
    }
    bool fell_back = s_walk_rule(w, r, mask, v == S_FLOOR);
    if (!w->chosen && w->skipped && !w->budget_hit) {
        /* The budget bound skipped candidates unexamined: walk again without
         * it to tell insufficient_budget from no_candidate exactly. Only
         * failing requests pay for this. */
        w->bound = false;
        w->skipped = w->stop = false;
        w->extra = 0;
        fell_back = s_walk_rule(w, r, mask, v == S_FLOOR);
    }
    if (!w->chosen) {
        if (w->budget_hit) {
            return s_fail(out, HPP_E_INSUFFICIENT_BUDGET,
                          "every candidate that fits costs more than the budget (rule '", r->name,
                          "')");
        }
        return s_fail(out, HPP_E_NO_CANDIDATE, "no model satisfies the request (rule '", r->name,
                      "')");
    }
    if (w->max_tier >= 0 && r->tier > w->max_tier) {
        char why[96];
        snprintf(why, sizeof why, "': the key's money is below $%.6g: stepped down to tier '",
                 (double)w->step_below / 1e12);
        char tail[160];
        snprintf(tail, sizeof tail, "%.64s'%s", pol->tiers[w->max_tier].name,
                 fell_back ? ", free model" : "");
        s_msg(out, "rule '", r->name, why);
        size_t n = strlen(out->message);
        snprintf(out->message + n, sizeof out->message - n, "%s", tail);
    } else if (fell_back) {
        s_msg(out, "rule '", r->name, "': nothing paid fits, free fallback");
    } else if (out->tier != r->tier) {
        s_msg(out, "rule '", r->name, "': stepped from the target tier");
    } else {
        s_msg(out, "rule '", r->name, "'");
    }
    return HPP_OK;
}

/* What the measured health changes for this request: endpoints on cooldown
 * (only when one is cooling now: otherwise the walk is the plain one, for
 * one atomic load), and the request's sort and preferences. */
static void s_measures(s_walk_t *w, bool health, bool *cooled)
{
    const hpp_features_t *f = w->f;
    w->cooled = cooled;
    w->health = NULL;
    w->now_ms = 0;
    w->sort = f->sort;
    w->measured = f->sort == HPP_SORT_LATENCY || f->sort == HPP_SORT_THROUGHPUT ||
                  f->max_latency_s > 0 || f->min_throughput > 0;
    if (w->measured) {
        w->prov_rank = true;
        w->bound = false;
    }
    if (health && eng_health_cooling_now(w->pol->health, &w->now_ms)) {
        /* A model whose usual endpoint cools is served by another one
         * (s_ep_for). The budget bound keeps the usual endpoints' least
         * prices: the usual one is the cheapest unless the policy prefers
         * providers, so a substitute is seldom cheaper, and walking whole
         * lists for every budget request while something cools would cost
         * far more (bench/RESULTS.md). */
        w->health = w->pol->health;
    }
}

/* The decision; `health`: skip endpoints on cooldown (*cooled says whether
 * one was skipped). */
static hpp_status_t s_resolve(const eng_policy_t *self, const hpp_features_t *f,
                              hpp_pusd_t remaining, eng_decision_t *out, eng_trace_t *trace,
                              bool health, bool *cooled)
{
    out->status = HPP_OK;
    out->message[0] = '\0';
    out->model = NULL;
    out->endpoint = NULL;
    out->tier = -1;
    out->tier_name = "";
    out->rule = "";
    memset(&out->cost, 0, sizeof out->cost);
    out->output_tokens = 0;
    out->permille = 1000;
    out->nfallbacks = 0;
    if (trace) {
        trace->n = 0;
        trace->dropped = 0;
        trace->hints = 0;
        trace->hint_names[0] = NULL;
        trace->nrules_tried = 0;
        trace->nscores = 0;
    }
    if (!self || !f) {
        return s_fail(out, HPP_E_INTERNAL, "no policy or no request", NULL, NULL);
    }
    const char *field = "";
    const char *bad = hpp_features_check(f, &field);
    if (bad) {
        return s_fail(out, HPP_E_BAD_REQUEST, field, ": ", bad);
    }
    s_walk_t w;
    w.pol = self;
    w.f = f;
    w.out = out;
    w.trace = trace;
    w.group = NULL;
    w.permille = 1000;
    w.chosen = w.budget_hit = w.stop = false;
    w.extra = 0;
    w.rule_caps = 0;
    w.alternates = false;
    w.skipped = false;
    /* The request's provider routing: any of it makes each model's endpoint
     * a per-request choice; the lists and max_price also reject endpoints. */
    w.nallow = 0;
    w.filter = w.prov_rank = w.primary_only = false;
    if (f->nproviders_order | f->nproviders_only | f->nproviders_ignore | f->max_price.set |
        (uint32_t)f->sort | f->no_fallbacks) {
        w.primary_only = f->no_fallbacks && f->nproviders_order == 0;
        w.filter = f->nproviders_only || f->nproviders_ignore ||
                   (f->no_fallbacks && f->nproviders_order) || f->max_price.set;
        w.prov_rank = true;
    }
    /* The group: "default" when absent; unknown names are refused when the
     * policy defines groups. */
    hpp_str_t gname = f->group.len ? f->group : (hpp_str_t){"default", 7};
    if (self->ngroups > 0) {
        for (int g = 0; g < self->ngroups && !w.group; g++) {
            if (s_streq(gname, self->groups[g].name, strlen(self->groups[g].name))) {
                w.group = &self->groups[g];
            }
        }
        if (!w.group && !s_streq(gname, "default", 7)) {
            char buf[64];
            return s_fail(out, HPP_E_BAD_REQUEST, "unknown group '", s_cstr(gname, buf, sizeof buf),
                          "'");
        }
        w.permille = w.group ? w.group->permille : 1000;
    }
    out->permille = w.permille;
    w.group_deny = w.rule_deny = NULL;
    w.min_context = w.group ? w.group->min_context : 0;
    if (w.group && w.group->ep_deny) {
        s_policy_providers(&w, w.group->ep_deny, NULL);
    }
    w.need = (f->images > 0 || f->vision ? HPP_CAP_VISION : 0) | (f->tools ? HPP_CAP_TOOLS : 0) |
             (f->json ? HPP_CAP_JSON : 0);
    w.out_explicit = f->output_tokens >= 0;
    w.out_tokens = w.out_explicit ? f->output_tokens : self->default_output;
    out->output_tokens = w.out_tokens;
    memset(&w.usage, 0, sizeof w.usage);
    w.usage.prompt_tokens = f->prompt_tokens - f->cache_read_tokens - f->cache_write_tokens;
    w.usage.cache_read_tokens = f->cache_read_tokens;
    w.usage.cache_write_tokens = f->cache_write_tokens;
    w.usage.reasoning_tokens = f->reasoning_tokens;
    w.usage.completion_tokens = w.out_tokens;
    w.usage.images = f->images;
    w.budget = f->has_budget ? (hpp_pusd_t)llround(f->budget_usd * 1e12) : -1;
    w.max_tier = -1;
    w.step_below = 0;
    if (remaining != ENG_NO_REMAINING && w.group && w.group->nsteps > 0) {
        /* The ledger's step_down: the key's remaining money caps the tier
         * and is the most the request may cost (free models excepted). */
        for (uint32_t i = 0; i < w.group->nsteps; i++) {
            if (remaining < w.group->steps[i].below) {
                w.max_tier = w.group->steps[i].tier;
                w.step_below = w.group->steps[i].below;
            }
        }
        hpp_pusd_t cap = remaining > 0 ? remaining : 0;
        w.budget = w.budget < 0 || cap < w.budget ? cap : w.budget;
    }
    /* The bound's least prices are those of the endpoints the policy picks,
     * which a request's provider order may replace with cheaper ones. A
     * trace shows every candidate: it walks what the bound would skip, and
     * does not count it toward the look-ahead (s_offer_as), so that it stops
     * where the walk without a trace stops, with the same fallbacks. */
    w.bound = w.budget >= 0 && !w.prov_rank;
    s_measures(&w, health, cooled);

    bool is_auto;
    s_variant_t v;
    hpp_str_t name = f->model;
    if (name.len > 6 && memcmp(name.ptr + name.len - 6, ":nitro", 6) == 0) {
        /* OpenRouter's :nitro: the model's fastest endpoint (throughput). */
        name.len -= 6;
        if (f->sort == HPP_SORT_DEFAULT) {
            w.sort = HPP_SORT_THROUGHPUT;
            w.measured = w.prov_rank = true;
            w.bound = false;
        }
    }
    const eng_model_t *model = s_model(self, name, &is_auto, &v);
    if (!is_auto && !model) {
        char buf[96];
        return s_fail(out, HPP_E_UNKNOWN_MODEL, "unknown model '",
                      s_cstr(f->model, buf, sizeof buf), "'");
    }
    if (f->nmodels > 0) {
        /* The list: the body's model first when it names one (or when it
         * is absent, the list alone); auto chooses among the list. */
        const eng_model_t *list[1 + HPP_MAX_MODELS];
        s_variant_t vars[1 + HPP_MAX_MODELS];
        hpp_status_t st = s_models(&w, list + 1, vars + 1);
        if (st != HPP_OK) {
            return st;
        }
        if (!is_auto) {
            list[0] = model;
            vars[0] = v;
            return s_list(&w, list, vars, 1 + f->nmodels);
        }
        if (f->model.len == 0) {
            return s_list(&w, list + 1, vars + 1, f->nmodels);
        }
        w.nallow = f->nmodels;
        w.filter = true;
    } else if (!is_auto) {
        return s_direct(&w, model, v);
    }
    s_ctx_t x;
    s_ctx_init(self, f, &x);
    hpp_status_t st = s_auto(&w, &x, v);
    if (trace) {
        s_hints_upto(self, &x, self->nhints); /* the trace shows every hint */
        trace->hints = x.hints;
        uint32_t n = 0;
        for (uint32_t b = 0; b < self->nwords && n < 63; b++) {
            if (x.hints >> b & 1) {
                trace->hint_names[n++] = self->words[b];
            }
        }
        trace->hint_names[n] = NULL;
        for (uint32_t i = 0; i < self->nscorers && i < ENG_TRACE_SCORES; i++) {
            trace->score_names[i] = self->scorer_names[i];
            trace->scores[i] = s_score(self, &x, i); /* the trace shows every score */
        }
        trace->nscores = self->nscorers < ENG_TRACE_SCORES ? self->nscorers : ENG_TRACE_SCORES;
    }
    return st;
}

hpp_status_t eng_resolve(const eng_policy_t *self, const hpp_features_t *f, eng_decision_t *out,
                         eng_trace_t *trace)
{
    return eng_resolve_remaining(self, f, ENG_NO_REMAINING, out, trace);
}

bool eng_policy_group_steps(const eng_policy_t *self, hpp_str_t group)
{
    hpp_str_t g = group.len ? group : (hpp_str_t){"default", 7};
    for (int i = 0; i < self->ngroups; i++) {
        if (s_streq(g, self->groups[i].name, strlen(self->groups[i].name))) {
            return self->groups[i].nsteps > 0;
        }
    }
    return false;
}

hpp_status_t eng_resolve_remaining(const eng_policy_t *self, const hpp_features_t *f,
                                   hpp_pusd_t remaining, eng_decision_t *out, eng_trace_t *trace)
{
    bool cooled = false;
    out->has_ledger = false; /* the server's ledger sets it after the decision */
    hpp_status_t st = s_resolve(self, f, remaining, out, trace, true, &cooled);
    if (st != HPP_OK && cooled) {
        /* Nothing else fits: the endpoints on cooldown are tried after all,
         * rather than no answer. */
        bool again = false;
        st = s_resolve(self, f, remaining, out, trace, false, &again);
        if (st == HPP_OK) {
            char why[sizeof out->message];
            memcpy(why, out->message, sizeof why);
            s_msg(out, "every endpoint that fits is cooling down: ", why, NULL);
        }
    }
    return st;
}
