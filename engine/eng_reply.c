/* eng_reply.c - decisions, traces and catalogs as the codec's views. */
#include "eng_reply.h"

#include "eng_health.h"

#include <stdlib.h>
#include <string.h>

struct eng_epwire {
    const eng_catalog_t *cat; /* the catalog the table was made from */
    proto_epwire_t *wire;     /* its endpoints, pre-encoded */
};

static hpp_str_t s_str(const char *s, uint32_t len)
{
    return (hpp_str_t){.ptr = s ? s : "", .len = s ? len : 0};
}

static hpp_str_t s_cstr(const char *s)
{
    return s_str(s, s ? (uint32_t)strlen(s) : 0);
}

/* A catalog's arrays, looked up once per reply rather than per endpoint. */
typedef struct {
    const eng_model_t *models; /* NULL without a catalog */
    size_t nmodels;
    const eng_endpoint_t *eps;
    size_t neps;
} s_cat_t;

static s_cat_t s_cat(const eng_catalog_t *cat)
{
    s_cat_t c = {0};
    if (cat) {
        c.models = eng_catalog_models(cat, &c.nmodels);
        c.eps = eng_catalog_endpoints(cat, &c.neps);
    }
    return c;
}

/* `ep` as the wire names it, serving `m` (its own model when NULL), and its
 * index in the catalog's endpoint array when the names are its own. */
static uint32_t s_endpoint(const s_cat_t *c, const eng_model_t *m, const eng_endpoint_t *ep,
                           proto_endpoint_t *out)
{
    const eng_model_t *own =
        ep && c->models && ep->model < c->nmodels ? &c->models[ep->model] : NULL;
    const eng_model_t *named = m ? m : own;
    out->model = named ? s_str(named->id, named->id_len) : s_str(NULL, 0);
    out->provider = ep ? s_str(ep->provider, ep->provider_len) : s_str(NULL, 0);
    out->provider_model = ep ? s_str(ep->native_id, ep->native_id_len) : s_str(NULL, 0);
    if (!ep || !c->eps || ep < c->eps || ep >= c->eps + c->neps || named != own) {
        return PROTO_NO_INDEX;
    }
    return (uint32_t)(ep - c->eps);
}

eng_epwire_t *eng_epwire_new(const eng_catalog_t *cat)
{
    s_cat_t c = s_cat(cat);
    eng_epwire_t *self = calloc(1, sizeof *self);
    proto_endpoint_t *views = calloc(c.neps + 1, sizeof *views);
    if (self && views) {
        for (size_t i = 0; i < c.neps; i++) {
            s_endpoint(&c, NULL, &c.eps[i], &views[i]);
        }
        self->cat = cat;
        self->wire = proto_epwire_new(views, c.neps);
    }
    free(views);
    if (self && !self->wire) {
        eng_epwire_destroy(&self);
    }
    return self;
}

void eng_epwire_destroy(eng_epwire_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    proto_epwire_destroy(&(*self_p)->wire);
    free(*self_p);
    *self_p = NULL;
}

void eng_reply_view(const eng_decision_t *d, const eng_catalog_t *cat, proto_decision_t *out)
{
    out->status = d->status;
    out->message = d->message;
    if (d->status != HPP_OK) {
        return; /* an error reply says only the status and the message */
    }
    s_cat_t c = s_cat(cat);
    out->endpoint_index = s_endpoint(&c, d->model, d->endpoint, &out->endpoint);
    out->tier = s_cstr(d->tier_name);
    out->rule = s_cstr(d->rule);
    out->cost = d->cost;
    out->output_tokens = d->output_tokens;
    out->decision_id = d->decision_id;
    out->has_ledger = d->has_ledger;
    out->reserved_pd = d->reserved_pd;
    out->remaining_pd = d->remaining_pd;
    out->nfallbacks = d->nfallbacks > HPP_MAX_FALLBACKS ? HPP_MAX_FALLBACKS : d->nfallbacks;
    for (uint32_t i = 0; i < out->nfallbacks; i++) {
        out->fallback_index[i] = s_endpoint(&c, NULL, d->fallbacks[i], &out->fallbacks[i]);
        out->fallback_tier[i] = s_cstr(d->fallback_tier[i]);
        out->fallback_cost[i] = d->fallback_cost[i];
    }
}

int eng_reply_decision(proto_buf_t *b, const proto_id_t *id, const eng_decision_t *d,
                       const eng_catalog_t *cat, const eng_epwire_t *wire)
{
    proto_decision_t v;
    eng_reply_view(d, cat, &v);
    return proto_reply_decision(b, id, &v, wire && wire->cat == cat ? wire->wire : NULL);
}

/* What the candidate callback reads. */
typedef struct {
    const eng_trace_t *t;
    const eng_policy_t *pol;
    s_cat_t cat;    /* the policy's catalog */
    int64_t now_ms; /* the health figures' clock */
} s_explain_t;

static void s_candidate(const void *arg, size_t i, proto_candidate_t *out)
{
    const s_explain_t *x = arg;
    const eng_trace_entry_t *e = &x->t->entries[i];
    int ntiers = x->pol ? eng_policy_tier_count(x->pol) : 0;
    s_endpoint(&x->cat, NULL, e->endpoint, &out->endpoint);
    out->tier =
        s_cstr(e->tier >= 0 && e->tier < ntiers ? eng_policy_tier_name(x->pol, e->tier) : NULL);
    out->reason = eng_reject_name(e->reason);
    out->cost = e->cost;
    /* The figures the resolver read (an explain is not the hot path). */
    const eng_health_t *h = x->pol ? eng_policy_health(x->pol) : NULL;
    size_t ne = 0;
    const eng_endpoint_t *eps =
        x->pol ? eng_catalog_endpoints(eng_policy_catalog(x->pol), &ne) : NULL;
    if (h && eps && e->endpoint >= eps && e->endpoint < eps + ne) {
        out->has_health = eng_health_get(h, (size_t)(e->endpoint - eps), x->now_ms, &out->health);
    }
}

int eng_reply_explain(proto_buf_t *b, const proto_id_t *id, const eng_decision_t *d,
                      const eng_trace_t *t, const eng_policy_t *pol)
{
    proto_decision_t v;
    eng_reply_view(d, pol ? eng_policy_catalog(pol) : NULL, &v);
    s_explain_t x = {.t = t,
                     .pol = pol,
                     .cat = s_cat(pol ? eng_policy_catalog(pol) : NULL),
                     .now_ms = eng_health_now_ms()};
    proto_trace_t tv = {.candidate = s_candidate, .arg = &x};
    tv.hints = t->hint_names;
    while (tv.nhints < 64 && t->hint_names[tv.nhints]) {
        tv.nhints++;
    }
    tv.rules = t->rules_tried;
    tv.nrules = t->nrules_tried > 32 ? 32 : t->nrules_tried;
    tv.ncandidates = t->n > t->cap ? t->cap : t->n;
    tv.dropped = t->dropped + (t->n > t->cap ? t->n - t->cap : 0);
    return proto_reply_explain(b, id, &v, &tv);
}

/* The entries of a model: its own id for its paid endpoints (the cheapest's
 * prices), and `ID:free` for its $0 endpoint, each what a plain or a `:free`
 * request resolves to. */
static size_t s_model_views(const eng_model_t *m, const eng_endpoint_t *eps, size_t ne,
                            const char **providers, char *free_id, proto_model_t *out)
{
    size_t n = 0;
    uint32_t first = m->ep_first, count = m->ep_count;
    if (first > ne || count > ne - first) {
        count = 0;
    }
    proto_model_t base = {
        .id = s_str(m->id, m->id_len),
        .owner = m->owner,
        .context_length = m->context_length,
        .max_output = m->max_output,
        .caps = m->caps,
        .providers = providers + (count ? first : 0),
        .nproviders = count,
        .free = m->free_ep >= 0,
    };
    if (m->floor_ep >= 0 && (size_t)m->floor_ep < ne) {
        out[n] = base;
        out[n].price = eps[m->floor_ep].price;
        n++;
    }
    if (m->free_ep >= 0 && (size_t)m->free_ep < ne) {
        memcpy(free_id, m->id, m->id_len);
        memcpy(free_id + m->id_len, ":free", 5);
        out[n] = base;
        out[n].id = s_str(free_id, m->id_len + 5);
        out[n].providers = providers + m->free_ep;
        out[n].nproviders = 1;
        out[n].price = eps[m->free_ep].price;
        n++;
    }
    return n;
}

int eng_reply_models_encode(proto_buf_t *b, const eng_catalog_t *cat)
{
    size_t nm = 0, ne = 0;
    const eng_model_t *models = eng_catalog_models(cat, &nm);
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &ne);
    size_t idbytes = 1;
    for (size_t i = 0; i < nm; i++) {
        idbytes += models[i].free_ep >= 0 ? models[i].id_len + 5 : 0;
    }
    /* Built once per snapshot (the reply is spliced from it), not per request. */
    proto_model_t *views = calloc(2 * nm + 2, sizeof *views);
    const char **providers = calloc(ne + 1, sizeof *providers);
    char *ids = malloc(idbytes);
    if (!views || !providers || !ids) {
        free(views);
        free(providers);
        free(ids);
        return PROTO_ERR_NOSPACE;
    }
    for (size_t e = 0; e < ne; e++) {
        providers[e] = eps[e].provider;
    }
    /* The virtual model first: every request for it is routed by the policy. */
    const hpp_price_t none = {HPP_PRICE_NA, HPP_PRICE_NA, HPP_PRICE_NA,
                              HPP_PRICE_NA, HPP_PRICE_NA, HPP_PRICE_NA};
    views[0] = (proto_model_t){.id = s_str(HPP_AUTO_MODEL, sizeof HPP_AUTO_MODEL - 1),
                               .owner = "hpprouter",
                               .price = none};
    size_t listed = 1, used = 0;
    for (size_t i = 0; i < nm; i++) {
        listed += s_model_views(&models[i], eps, ne, providers, ids + used, views + listed);
        used += models[i].free_ep >= 0 ? models[i].id_len + 5 : 0;
    }
    int rc = proto_models_encode(b, views, listed);
    free(views);
    free(providers);
    free(ids);
    return rc;
}
