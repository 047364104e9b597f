/* proto_reply.c - reply maps: encoders (engine) and decoders (clients).
 *
 * Encoders write with msgpack-c's packer into a proto_buf_t, so the route
 * reply costs no allocation when the buffer is fixed or already grown. Every
 * reply map starts with v, id (when the request had one) and ok, so a client
 * can match and classify a reply from its first bytes. Names in a decision
 * borrow from the policy snapshot; the encoder copies them into the frame.
 *
 * The decoder is the mirror image for clients: the common head, the decision
 * fields, and an iterator over a models reply, all zero-copy.
 */
#include "proto_mp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A key given as a literal: header and bytes in one write. */
#define s_key(pk, lit) proto_pack_key((pk), "" lit, sizeof(lit) - 1)

static int s_done(const proto_buf_t *b)
{
    return b->overflow ? PROTO_ERR_NOSPACE : PROTO_OK;
}

/* Map header plus v, id and ok; `extra` counts the caller's keys. */
static void s_head(msgpack_packer *pk, const proto_id_t *id, bool ok, uint32_t extra)
{
    bool has_id = id && id->kind != PROTO_ID_NONE;
    msgpack_pack_map(pk, 2 + has_id + extra);
    s_key(pk, "v");
    msgpack_pack_uint32(pk, PROTO_VERSION);
    if (has_id) {
        s_key(pk, "id");
        proto_pack_id(pk, id);
    }
    s_key(pk, "ok");
    if (ok) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
}

static void s_error_value(msgpack_packer *pk, hpp_status_t code, const char *message)
{
    msgpack_pack_map(pk, 2);
    s_key(pk, "code");
    proto_pack_cstr(pk, hpp_status_name(code));
    s_key(pk, "message");
    proto_pack_text(pk, message ? message : "", message ? strlen(message) : 0);
}

int proto_reply_error(proto_buf_t *b, const proto_id_t *id, hpp_status_t code, const char *message)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, false, 1);
    s_key(&pk, "error");
    s_error_value(&pk, code == HPP_OK ? HPP_E_INTERNAL : code, message);
    return s_done(b);
}

/* The "model", "provider" and "provider_model" pairs of an endpoint. */
static void s_pack_pairs(msgpack_packer *pk, const proto_endpoint_t *ep)
{
    s_key(pk, "model");
    proto_pack_strn(pk, ep->model.ptr, ep->model.len);
    s_key(pk, "provider");
    proto_pack_strn(pk, ep->provider.ptr, ep->provider.len);
    s_key(pk, "provider_model");
    proto_pack_strn(pk, ep->provider_model.ptr, ep->provider_model.len);
}

/* Pre-encoded endpoints ------------------------------------------------------ */

struct proto_epwire {
    proto_buf_t bytes; /* the pairs of every endpoint, back to back */
    uint32_t *off;     /* endpoint i is bytes[off[i] .. off[i + 1]) */
    size_t n;          /* endpoints */
};

proto_epwire_t *proto_epwire_new(const proto_endpoint_t *eps, size_t n)
{
    proto_epwire_t *self = calloc(1, sizeof *self);
    if (!self || proto_buf_init(&self->bytes, 64 * (n + 1)) != PROTO_OK ||
        !(self->off = malloc((n + 1) * sizeof *self->off))) {
        proto_epwire_destroy(&self);
        return NULL;
    }
    self->n = n;
    msgpack_packer pk;
    proto_packer_init(&pk, &self->bytes);
    for (size_t i = 0; i < n; i++) {
        self->off[i] = (uint32_t)self->bytes.len;
        s_pack_pairs(&pk, &eps[i]);
    }
    self->off[n] = (uint32_t)self->bytes.len;
    if (self->bytes.overflow || self->bytes.len > UINT32_MAX) {
        proto_epwire_destroy(&self);
    }
    return self;
}

void proto_epwire_destroy(proto_epwire_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    proto_buf_destroy(&(*self_p)->bytes);
    free((*self_p)->off);
    free(*self_p);
    *self_p = NULL;
}

/* s_pack_pairs, copied from the table when it has entry `i`. */
static void s_pairs(msgpack_packer *pk, const proto_epwire_t *w, const proto_endpoint_t *ep,
                    uint32_t i)
{
    if (w && i < w->n) {
        proto_buf_append(pk->data, w->bytes.data + w->off[i], w->off[i + 1] - w->off[i]);
        return;
    }
    s_pack_pairs(pk, ep);
}

/* Number of decision keys after the head (kept next to the writer below). */
#define S_DECISION_KEYS 9

static void s_decision_fields(msgpack_packer *pk, const proto_decision_t *d,
                              const proto_epwire_t *wire)
{
    s_pairs(pk, wire, &d->endpoint, d->endpoint_index);
    s_key(pk, "tier");
    proto_pack_strn(pk, d->tier.ptr, d->tier.len);
    s_key(pk, "rule");
    proto_pack_strn(pk, d->rule.ptr, d->rule.len);
    s_key(pk, "cost_usd");
    msgpack_pack_double(pk, hpp_pusd_to_usd(d->cost.total));
    s_key(pk, "cost_pusd");
    msgpack_pack_map(pk, 5);
    s_key(pk, "input");
    msgpack_pack_int64(pk, d->cost.input);
    s_key(pk, "output");
    msgpack_pack_int64(pk, d->cost.output);
    s_key(pk, "cache");
    msgpack_pack_int64(pk, d->cost.cache);
    s_key(pk, "fees");
    msgpack_pack_int64(pk, d->cost.fees);
    s_key(pk, "total");
    msgpack_pack_int64(pk, d->cost.total);
    s_key(pk, "output_tokens");
    msgpack_pack_int64(pk, d->output_tokens);
    uint32_t nf = d->nfallbacks > HPP_MAX_FALLBACKS ? HPP_MAX_FALLBACKS : d->nfallbacks;
    s_key(pk, "fallbacks");
    msgpack_pack_array(pk, nf);
    for (uint32_t i = 0; i < nf; i++) {
        msgpack_pack_map(pk, 5);
        s_pairs(pk, wire, &d->fallbacks[i], d->fallback_index[i]);
        s_key(pk, "tier");
        proto_pack_strn(pk, d->fallback_tier[i].ptr, d->fallback_tier[i].len);
        s_key(pk, "cost_usd");
        msgpack_pack_double(pk, hpp_pusd_to_usd(d->fallback_cost[i]));
    }
    if (d->decision_id != 0) {
        s_key(pk, "decision_id");
        msgpack_pack_uint64(pk, d->decision_id);
    }
    if (d->has_ledger) {
        s_key(pk, "reserved_usd");
        msgpack_pack_double(pk, hpp_pusd_to_usd(d->reserved_pd));
        s_key(pk, "reserved_pd");
        msgpack_pack_int64(pk, d->reserved_pd);
        s_key(pk, "remaining_usd");
        msgpack_pack_double(pk, hpp_pusd_to_usd(d->remaining_pd));
        s_key(pk, "remaining_pd");
        msgpack_pack_int64(pk, d->remaining_pd);
    }
}

/* Decision keys after the head: the fixed ones, the id, the ledger's four. */
static uint32_t s_decision_nkeys(const proto_decision_t *d)
{
    return S_DECISION_KEYS + (d->decision_id != 0) + (d->has_ledger ? 4u : 0u);
}

int proto_reply_decision(proto_buf_t *b, const proto_id_t *id, const proto_decision_t *d,
                         const proto_epwire_t *wire)
{
    if (d->status != HPP_OK) {
        return proto_reply_error(b, id, d->status, d->message);
    }
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, s_decision_nkeys(d));
    s_decision_fields(&pk, d, wire);
    return s_done(b);
}

/* Ledger replies ------------------------------------------------------------ */

/* `name`_usd and `name`_pd; nil for both when v is PROTO_LEDGER_NONE_PD. */
static void s_money(msgpack_packer *pk, const char *name, int64_t v)
{
    char key[48];
    int n = snprintf(key, sizeof key, "%s_usd", name);
    proto_pack_key(pk, key, (size_t)n);
    if (v == PROTO_LEDGER_NONE_PD) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_double(pk, hpp_pusd_to_usd(v));
    }
    n = snprintf(key, sizeof key, "%s_pd", name);
    proto_pack_key(pk, key, (size_t)n);
    if (v == PROTO_LEDGER_NONE_PD) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_int64(pk, v);
    }
}

int proto_reply_ledger_key(proto_buf_t *b, const proto_id_t *id, const proto_ledger_key_t *k)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, 3 + 2 * 9 + 5);
    s_key(&pk, "key");
    proto_pack_strn(&pk, k->key.ptr, k->key.len);
    s_key(&pk, "group");
    proto_pack_strn(&pk, k->group.ptr, k->group.len);
    s_key(&pk, "account");
    proto_pack_strn(&pk, k->account.ptr, k->account.len);
    s_money(&pk, "balance", k->balance_pd);
    s_money(&pk, "limit", k->limit_pd);
    s_money(&pk, "remaining", k->remaining_pd);
    s_money(&pk, "daily", k->daily_pd);
    s_money(&pk, "day_spent", k->day_spent_pd);
    s_money(&pk, "spent", k->spent_pd);
    s_money(&pk, "reserved", k->reserved_pd);
    s_money(&pk, "account_reserved", k->account_reserved_pd);
    s_money(&pk, "day_reserved", k->day_reserved_pd);
    s_key(&pk, "day_requests");
    msgpack_pack_int64(&pk, k->day_requests);
    s_key(&pk, "day_free_requests");
    msgpack_pack_int64(&pk, k->day_free_requests);
    s_key(&pk, "requests");
    msgpack_pack_int64(&pk, k->requests);
    s_key(&pk, "prompt_tokens");
    msgpack_pack_int64(&pk, k->prompt_tokens);
    s_key(&pk, "completion_tokens");
    msgpack_pack_int64(&pk, k->completion_tokens);
    return s_done(b);
}

int proto_reply_ledger_balance(proto_buf_t *b, const proto_id_t *id, hpp_str_t account,
                               int64_t balance_pd)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, 3);
    s_key(&pk, "account");
    proto_pack_strn(&pk, account.ptr, account.len);
    s_money(&pk, "balance", balance_pd);
    return s_done(b);
}

int proto_reply_ledger_accounts(proto_buf_t *b, const proto_id_t *id, size_t n,
                                void (*get)(const void *arg, size_t i, proto_ledger_account_t *out),
                                const void *arg)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, 1);
    s_key(&pk, "accounts");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        proto_ledger_account_t a = {0};
        get(arg, i, &a);
        msgpack_pack_map(&pk, 7);
        s_key(&pk, "account");
        proto_pack_strn(&pk, a.account.ptr, a.account.len);
        s_money(&pk, "balance", a.balance_pd);
        s_money(&pk, "reserved", a.reserved_pd);
        s_money(&pk, "spent", a.spent_pd);
    }
    return s_done(b);
}

static void s_cstrs(msgpack_packer *pk, const char *const *v, uint32_t n)
{
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        proto_pack_cstr(pk, v[i]);
    }
}

/* A figure not measured is nil. */
static void s_figure(msgpack_packer *pk, const char *key, double v)
{
    proto_pack_key(pk, key, strlen(key));
    if (v < 0) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_double(pk, v);
    }
}

static void s_health(msgpack_packer *pk, const proto_health_t *h)
{
    s_key(pk, "health");
    msgpack_pack_map(pk, 8);
    s_key(pk, "attempts");
    msgpack_pack_uint64(pk, h->attempts);
    s_figure(pk, "error_rate", h->error_rate);
    s_key(pk, "fails");
    msgpack_pack_uint32(pk, h->fails);
    s_figure(pk, "cooldown_s", h->cooldown_s);
    s_figure(pk, "latency_ms", h->latency_ms);
    s_figure(pk, "latency_p90_ms", h->latency_p90_ms);
    s_figure(pk, "ttft_ms", h->ttft_ms);
    s_figure(pk, "tokens_per_s", h->tokens_per_s);
}

static void s_trace(msgpack_packer *pk, const proto_trace_t *t)
{
    msgpack_pack_map(pk, 4);
    s_key(pk, "hints");
    s_cstrs(pk, t->hints, t->nhints);
    s_key(pk, "rules");
    s_cstrs(pk, t->rules, t->nrules);
    s_key(pk, "candidates");
    msgpack_pack_array(pk, t->ncandidates);
    for (size_t i = 0; i < t->ncandidates; i++) {
        proto_candidate_t cand = {0};
        t->candidate(t->arg, i, &cand);
        const proto_candidate_t *c = &cand;
        bool costed = c->cost != HPP_PRICE_NA; /* refused before an estimate: no cost */
        msgpack_pack_map(pk, 4 + 2 * costed + c->has_health);
        s_key(pk, "model");
        proto_pack_strn(pk, c->endpoint.model.ptr, c->endpoint.model.len);
        s_key(pk, "provider");
        proto_pack_strn(pk, c->endpoint.provider.ptr, c->endpoint.provider.len);
        s_key(pk, "tier");
        proto_pack_strn(pk, c->tier.ptr, c->tier.len);
        s_key(pk, "reason");
        proto_pack_cstr(pk, c->reason ? c->reason : "");
        if (costed) {
            s_key(pk, "cost_usd");
            msgpack_pack_double(pk, hpp_pusd_to_usd(c->cost));
            s_key(pk, "cost_pusd");
            msgpack_pack_int64(pk, c->cost);
        }
        if (c->has_health) {
            s_health(pk, &c->health);
        }
    }
    s_key(pk, "dropped");
    msgpack_pack_uint64(pk, t->dropped);
}

int proto_reply_explain(proto_buf_t *b, const proto_id_t *id, const proto_decision_t *d,
                        const proto_trace_t *t)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    bool ok = d->status == HPP_OK;
    s_head(&pk, id, ok, (ok ? s_decision_nkeys(d) : 1) + 1);
    if (ok) {
        s_decision_fields(&pk, d, NULL);
    } else {
        s_key(&pk, "error");
        s_error_value(&pk, d->status, d->message);
    }
    s_key(&pk, "trace");
    s_trace(&pk, t);
    return s_done(b);
}

/* Models ---------------------------------------------------------------------- */

/* Pricing keys: token prices in USD per 1M tokens, fees in USD. */
static void s_pricing(msgpack_packer *pk, const hpp_price_t *p)
{
    const struct {
        const char *name;
        hpp_pusd_t v;
        double div; /* picodollars per token / 1e6 = USD per 1M tokens */
    } rows[] = {
        {"prompt", p->input, 1e6},          {"completion", p->output, 1e6},
        {"cache_read", p->cache_read, 1e6}, {"cache_write", p->cache_write, 1e6},
        {"request", p->per_request, 1e12},  {"image", p->per_image, 1e12},
    };
    uint32_t n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        n += rows[i].v != HPP_PRICE_NA;
    }
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (rows[i].v != HPP_PRICE_NA) {
            proto_pack_cstr(pk, rows[i].name);
            msgpack_pack_double(pk, (double)rows[i].v / rows[i].div);
        }
    }
}

int proto_models_encode(proto_buf_t *b, const proto_model_t *models, size_t n)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const proto_model_t *m = &models[i];
        msgpack_pack_map(&pk, 9);
        s_key(&pk, "id");
        proto_pack_strn(&pk, m->id.ptr, m->id.len);
        s_key(&pk, "owned_by");
        proto_pack_cstr(&pk, m->owner ? m->owner : "");
        s_key(&pk, "context_length");
        msgpack_pack_uint32(&pk, m->context_length);
        s_key(&pk, "max_output");
        msgpack_pack_uint32(&pk, m->max_output);
        s_key(&pk, "caps");
        uint32_t nc = 0;
        for (size_t c = 0; c < HPP_NCAPS; c++) {
            nc += (m->caps & hpp_caps[c].bit) != 0;
        }
        msgpack_pack_array(&pk, nc);
        for (size_t c = 0; c < HPP_NCAPS; c++) {
            if (m->caps & hpp_caps[c].bit) {
                proto_pack_cstr(&pk, hpp_caps[c].name);
            }
        }
        s_key(&pk, "endpoints");
        msgpack_pack_uint32(&pk, m->nproviders);
        s_key(&pk, "providers");
        s_cstrs(&pk, m->providers, m->nproviders);
        s_key(&pk, "free");
        if (m->free) {
            msgpack_pack_true(&pk);
        } else {
            msgpack_pack_false(&pk);
        }
        s_key(&pk, "pricing");
        s_pricing(&pk, &m->price);
    }
    return s_done(b);
}

int proto_reply_models(proto_buf_t *b, const proto_id_t *id, const void *models, size_t len)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, 1);
    s_key(&pk, "models");
    if (!models || len == 0) {
        msgpack_pack_array(&pk, 0);
    } else {
        proto_buf_append(b, models, len);
    }
    return s_done(b);
}

int proto_reply_ping(proto_buf_t *b, const proto_id_t *id, uint64_t policy_version,
                     const char *engine_version)
{
    return proto_reply_ping_hash(b, id, policy_version, NULL, engine_version);
}

/* The "policy_hash" pair, when there is a hash to report. */
static void s_policy_hash(msgpack_packer *pk, const char *hash)
{
    if (hash) {
        s_key(pk, "policy_hash");
        proto_pack_cstr(pk, hash);
    }
}

int proto_reply_ping_hash(proto_buf_t *b, const proto_id_t *id, uint64_t policy_version,
                          const char *policy_hash, const char *engine_version)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, 2 + (policy_hash != NULL));
    s_key(&pk, "policy_version");
    msgpack_pack_uint64(&pk, policy_version);
    s_policy_hash(&pk, policy_hash);
    s_key(&pk, "version");
    proto_pack_cstr(&pk, engine_version);
    return s_done(b);
}

static void s_diags(msgpack_packer *pk, const char *const *diags, uint32_t n)
{
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const char *s = diags[i] ? diags[i] : "";
        proto_pack_text(pk, s, strlen(s));
    }
}

int proto_reply_reload(proto_buf_t *b, const proto_id_t *id, const proto_reload_info_t *r)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, r->ok, (r->ok ? 2 : 3) + (r->policy_hash != NULL));
    s_key(&pk, "policy_version");
    msgpack_pack_uint64(&pk, r->policy_version);
    s_policy_hash(&pk, r->policy_hash);
    s_key(&pk, "diagnostics");
    s_diags(&pk, r->diags, r->ndiags);
    if (!r->ok) {
        char msg[320];
        snprintf(msg, sizeof msg, "reload rejected, version %llu keeps serving%s%s",
                 (unsigned long long)r->policy_version, r->ndiags ? ": " : "",
                 r->ndiags && r->diags[0] ? r->diags[0] : "");
        s_key(&pk, "error");
        s_error_value(&pk, HPP_E_BAD_REQUEST, msg);
    }
    return s_done(b);
}

static void s_reload_info(msgpack_packer *pk, const proto_reload_info_t *r)
{
    msgpack_pack_map(pk, 5 + (r->policy_hash != NULL));
    s_key(pk, "ok");
    if (r->ok) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
    s_key(pk, "at");
    msgpack_pack_double(pk, r->at);
    s_key(pk, "trigger");
    proto_pack_cstr(pk, r->trigger ? r->trigger : "");
    s_key(pk, "policy_version");
    msgpack_pack_uint64(pk, r->policy_version);
    s_policy_hash(pk, r->policy_hash);
    s_key(pk, "diagnostics");
    s_diags(pk, r->diags, r->ndiags);
}

int proto_reply_stats(proto_buf_t *b, const proto_id_t *id, const proto_stats_t *s)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    s_head(&pk, id, true, 18 + (s->policy_hash != NULL) + (s->ledger_store != NULL));
    s_key(&pk, "policy_version");
    msgpack_pack_uint64(&pk, s->policy_version);
    s_policy_hash(&pk, s->policy_hash);
    s_key(&pk, "uptime_s");
    msgpack_pack_double(&pk, s->uptime_s);
    s_key(&pk, "threads");
    msgpack_pack_uint32(&pk, s->threads);
    s_key(&pk, "policy");
    proto_pack_cstr(&pk, s->policy);
    s_key(&pk, "catalogs");
    msgpack_pack_array(&pk, s->ncatalogs);
    for (uint32_t i = 0; i < s->ncatalogs; i++) {
        proto_pack_cstr(&pk, s->catalogs[i]);
    }
    s_key(&pk, "models");
    msgpack_pack_uint64(&pk, s->models);
    s_key(&pk, "endpoints");
    msgpack_pack_uint64(&pk, s->endpoints);
    s_key(&pk, "requests");
    msgpack_pack_map(&pk, PROTO_OP_COUNT);
    for (int i = 0; i < PROTO_OP_COUNT; i++) {
        proto_pack_cstr(&pk, proto_op_name((proto_op_t)i));
        msgpack_pack_uint64(&pk, s->requests[i]);
    }
    s_key(&pk, "errors");
    msgpack_pack_map(&pk, HPP_STATUS_COUNT - 1);
    for (int i = 1; i < HPP_STATUS_COUNT; i++) {
        proto_pack_cstr(&pk, hpp_status_name((hpp_status_t)i));
        msgpack_pack_uint64(&pk, s->errors[i]);
    }
    s_key(&pk, "malformed");
    msgpack_pack_uint64(&pk, s->malformed);
    s_key(&pk, "dropped");
    msgpack_pack_uint64(&pk, s->dropped);
    s_key(&pk, "refused");
    msgpack_pack_uint64(&pk, s->refused);
    s_key(&pk, "queued_bytes");
    msgpack_pack_uint64(&pk, s->queued_bytes);
    s_key(&pk, "decision_log_dropped");
    msgpack_pack_uint64(&pk, s->decision_log_dropped);
    s_key(&pk, "reloads_ok");
    msgpack_pack_uint64(&pk, s->reloads_ok);
    s_key(&pk, "reloads_failed");
    msgpack_pack_uint64(&pk, s->reloads_failed);
    s_key(&pk, "last_reload");
    s_reload_info(&pk, &s->last_reload);
    s_key(&pk, "reports");
    msgpack_pack_map(&pk, 3);
    s_key(&pk, "received");
    msgpack_pack_uint64(&pk, s->reports);
    s_key(&pk, "attempts");
    msgpack_pack_uint64(&pk, s->report_attempts);
    s_key(&pk, "refused");
    msgpack_pack_uint64(&pk, s->reports_refused);
    if (s->ledger_store) {
        const struct {
            const char *name;
            uint64_t v;
        } ctr[] = {
            {"keys", s->ledger_keys},
            {"reservations", s->ledger_reservations},
            {"settled", s->ledger_settled},
            {"released", s->ledger_released},
            {"expired", s->ledger_expired},
            {"duplicates", s->ledger_duplicates},
            {"unavailable", s->ledger_unavailable},
        };
        s_key(&pk, "ledger");
        msgpack_pack_map(&pk, 1 + sizeof ctr / sizeof ctr[0]);
        s_key(&pk, "store");
        proto_pack_cstr(&pk, s->ledger_store);
        for (size_t i = 0; i < sizeof ctr / sizeof ctr[0]; i++) {
            proto_pack_cstr(&pk, ctr[i].name);
            msgpack_pack_uint64(&pk, ctr[i].v);
        }
    }
    return s_done(b);
}

/* Decoder ------------------------------------------------------------------- */

static bool s_is_n(const proto_mp_val_t *k, const char *name, size_t n)
{
    return k->type == PROTO_MP_STR && k->len == n && memcmp(k->ptr, name, n) == 0;
}

/* Key tests with the length known at compile time: every reply a client
 * decodes runs through them, and strlen on each comparison showed up in
 * its profile. */
#define S_IS(k, lit) s_is_n((k), "" lit, sizeof(lit) - 1)
#define S_NAME(lit) "" lit, sizeof(lit) - 1

/* Reads a value expected to be of `type` (integers: UINT also for INT when
 * signed_ok). On mismatch, fails naming `key`. */
static int s_read(proto_rd_t *rd, proto_mp_type_t type, const char *key, proto_mp_val_t *v,
                  proto_error_t *err)
{
    size_t off = proto_rd_offset(rd);
    int rc = proto_rd_next(rd, v);
    if (rc != PROTO_OK) {
        return proto_fail(err, rc, off, "%s: %s", key,
                          rc == PROTO_ERR_TRUNCATED ? "reply ends inside the value"
                                                    : "invalid msgpack byte");
    }
    bool match = v->type == type || (type == PROTO_MP_FLOAT && v->type == PROTO_MP_UINT) ||
                 (type == PROTO_MP_INT && v->type == PROTO_MP_UINT);
    if (!match) {
        return proto_fail(err, PROTO_ERR_TYPE, off, "%s: expected %s, got %s", key,
                          proto_mp_type_name(type), proto_mp_type_name(v->type));
    }
    return PROTO_OK;
}

static int s_read_str(proto_rd_t *rd, const char *key, hpp_str_t *out, proto_error_t *err)
{
    proto_mp_val_t v;
    int rc = s_read(rd, PROTO_MP_STR, key, &v, err);
    if (rc == PROTO_OK) {
        out->ptr = v.ptr;
        out->len = v.len;
    }
    return rc;
}

static int s_read_i64(proto_rd_t *rd, const char *key, int64_t *out, proto_error_t *err)
{
    proto_mp_val_t v;
    int rc = s_read(rd, PROTO_MP_INT, key, &v, err);
    if (rc != PROTO_OK) {
        return rc;
    }
    if (v.type == PROTO_MP_UINT) {
        if (v.u > INT64_MAX) {
            return proto_fail(err, PROTO_ERR_RANGE, proto_rd_offset(rd), "%s: out of range", key);
        }
        *out = (int64_t)v.u;
    } else {
        *out = v.i;
    }
    return PROTO_OK;
}

static double s_num(const proto_mp_val_t *v)
{
    return v->type == PROTO_MP_UINT ? (double)v->u : v->f;
}

static int s_skip(proto_rd_t *rd, proto_error_t *err)
{
    size_t off = proto_rd_offset(rd);
    int rc = proto_rd_skip(rd);
    if (rc != PROTO_OK) {
        return proto_fail(err, rc, off, "reply ends inside a value");
    }
    return PROTO_OK;
}

/* Adapters so that one map reader can fill fields of either kind. */
typedef int (*s_read_fn)(proto_rd_t *rd, const char *key, void *dst, proto_error_t *err);

static int s_read_str_at(proto_rd_t *rd, const char *key, void *dst, proto_error_t *err)
{
    return s_read_str(rd, key, dst, err);
}

static int s_read_i64_at(proto_rd_t *rd, const char *key, void *dst, proto_error_t *err)
{
    return s_read_i64(rd, key, dst, err);
}

static int s_read_f64_at(proto_rd_t *rd, const char *key, void *dst, proto_error_t *err)
{
    proto_mp_val_t v;
    int rc = s_read(rd, PROTO_MP_FLOAT, key, &v, err);
    *(double *)dst = rc == PROTO_OK ? s_num(&v) : 0;
    return rc;
}

/* A known key of a map, the name errors give it, and where its value goes. */
typedef struct {
    const char *name;  /* the key */
    size_t len;        /* its length */
    const char *label; /* for messages: "error.code" */
    size_t off;        /* of the field in the destination struct */
    s_read_fn read;    /* reads its value; NULL: the map's reader */
} s_field_t;

#define S_FIELD(lit, label, type, member)                                                          \
    {                                                                                              \
        S_NAME(lit), label, offsetof(type, member), NULL                                           \
    }
/* A field whose value is not of the map's kind. */
#define S_FIELD_READ(lit, label, type, member, fn)                                                 \
    {                                                                                              \
        S_NAME(lit), label, offsetof(type, member), fn                                             \
    }
#define S_NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* Index of `k` in fields[0..n), or n when the key is not known. */
static size_t s_field(const proto_mp_val_t *k, const s_field_t *fields, size_t n)
{
    size_t i = 0;
    while (i < n && !s_is_n(k, fields[i].name, fields[i].len)) {
        i++;
    }
    return i;
}

/* Index of a key in a field table, or the table's size: the generic scan,
 * or a hand-written lookup for the maps every decision carries (literal
 * compares compile to a few word compares; a runtime-length memcmp per key
 * made decoding a reply a fifth slower). Tests check each lookup against
 * its table. */
typedef size_t (*s_lookup_fn)(const proto_mp_val_t *k);

/* A map whose known keys all hold one kind of value. */
typedef struct {
    const char *name;        /* the map, in errors */
    const char *key_label;   /* its keys, in errors */
    const s_field_t *fields; /* known keys */
    size_t n;                /* entries of fields */
    s_lookup_fn lookup;      /* index of a key in fields, or n; NULL: scan */
    s_read_fn read;          /* reads one value into its field */
} s_map_t;

/* Reads map `m` into `base`; unknown keys are skipped. */
static int s_dec_fields(proto_rd_t *rd, const s_map_t *m, void *base, proto_error_t *err)
{
    proto_mp_val_t hdr;
    int rc = s_read(rd, PROTO_MP_MAP, m->name, &hdr, err);
    uint32_t seen = 0;
    for (uint32_t i = 0; rc == PROTO_OK && i < hdr.n; i++) {
        size_t koff = proto_rd_offset(rd);
        proto_mp_val_t k;
        rc = s_read(rd, PROTO_MP_STR, m->key_label, &k, err);
        if (rc != PROTO_OK) {
            break;
        }
        size_t f = m->lookup ? m->lookup(&k) : s_field(&k, m->fields, m->n);
        if (f >= m->n) {
            rc = s_skip(rd, err);
        } else if ((rc = proto_key_once(&seen, (unsigned)f, m->fields[f].label, koff, err)) ==
                   PROTO_OK) {
            s_read_fn read = m->fields[f].read ? m->fields[f].read : m->read;
            rc = read(rd, m->fields[f].label, (char *)base + m->fields[f].off, err);
        }
    }
    return rc;
}

static const s_field_t s_error_fields[] = {
    S_FIELD("code", "error.code", proto_reply_t, code),
    S_FIELD("message", "error.message", proto_reply_t, message),
};

static const s_field_t s_cost_fields[] = {
    S_FIELD("input", "cost_pusd.input", hpp_cost_t, input),
    S_FIELD("output", "cost_pusd.output", hpp_cost_t, output),
    S_FIELD("cache", "cost_pusd.cache", hpp_cost_t, cache),
    S_FIELD("fees", "cost_pusd.fees", hpp_cost_t, fees),
    S_FIELD("total", "cost_pusd.total", hpp_cost_t, total),
};

static const s_field_t s_fallback_fields[] = {
    S_FIELD("model", "fallbacks[].model", proto_fallback_t, model),
    S_FIELD("provider", "fallbacks[].provider", proto_fallback_t, provider),
    S_FIELD("provider_model", "fallbacks[].provider_model", proto_fallback_t, provider_model),
    S_FIELD("tier", "fallbacks[].tier", proto_fallback_t, tier),
    S_FIELD_READ("cost_usd", "fallbacks[].cost_usd", proto_fallback_t, cost_usd, s_read_f64_at),
};

static size_t s_fallback_key(const proto_mp_val_t *k)
{
    return S_IS(k, "model")            ? 0
           : S_IS(k, "provider")       ? 1
           : S_IS(k, "provider_model") ? 2
           : S_IS(k, "tier")           ? 3
           : S_IS(k, "cost_usd")       ? 4
                                       : 5;
}

static const s_map_t s_error_map = {
    "error", "error key", s_error_fields, S_NFIELDS(s_error_fields), NULL, s_read_str_at,
};
static const s_map_t s_cost_map = {
    "cost_pusd", "cost_pusd key", s_cost_fields, S_NFIELDS(s_cost_fields), NULL, s_read_i64_at,
};
static const s_map_t s_fallback_map = {
    "fallbacks[]",  "fallbacks[] key", s_fallback_fields, S_NFIELDS(s_fallback_fields),
    s_fallback_key, s_read_str_at,
};

static int s_dec_fallbacks(proto_rd_t *rd, proto_reply_t *out, proto_error_t *err)
{
    proto_mp_val_t a;
    int rc = s_read(rd, PROTO_MP_ARRAY, "fallbacks", &a, err);
    for (uint32_t i = 0; rc == PROTO_OK && i < a.n; i++) {
        proto_fallback_t junk, *fb = i < HPP_MAX_FALLBACKS ? &out->fallbacks[i] : &junk;
        memset(fb, 0, sizeof *fb);
        fb->cost_usd = -1; /* absent (an older engine) */
        rc = s_dec_fields(rd, &s_fallback_map, fb, err);
    }
    if (rc == PROTO_OK) {
        out->nfallbacks = a.n > HPP_MAX_FALLBACKS ? HPP_MAX_FALLBACKS : a.n;
    }
    return rc;
}

/* Known keys of the reply map; the index is the key's bit in `seen`, so
 * v and ok are bits 0 and 1 and id is bit 2. Only the string keys use the
 * table's offsets; s_dec_value knows where the others go. */
enum {
    S_K_V,
    S_K_OK,
    S_K_ID,
    S_K_ERROR,
    S_K_MODEL,
    S_K_PROVIDER,
    S_K_PROVIDER_MODEL,
    S_K_TIER,
    S_K_RULE,
    S_K_COST_USD,
    S_K_COST_PUSD,
    S_K_OUTPUT_TOKENS,
    S_K_FALLBACKS,
    S_K_POLICY_VERSION,
    S_K_POLICY_HASH,
    S_K_DECISION_ID,
    S_K_RESERVED_PD,
    S_K_REMAINING_PD,
    S_K_COUNT
};
#define S_SEEN_HEAD ((1u << S_K_V) | (1u << S_K_OK) | (1u << S_K_ID))

static const s_field_t s_reply_fields[S_K_COUNT] = {
    [S_K_V] = S_FIELD("v", "v", proto_reply_t, v),
    [S_K_OK] = S_FIELD("ok", "ok", proto_reply_t, ok),
    [S_K_ID] = S_FIELD("id", "id", proto_reply_t, id),
    [S_K_ERROR] = S_FIELD("error", "error", proto_reply_t, code),
    [S_K_MODEL] = S_FIELD("model", "model", proto_reply_t, model),
    [S_K_PROVIDER] = S_FIELD("provider", "provider", proto_reply_t, provider),
    [S_K_PROVIDER_MODEL] =
        S_FIELD("provider_model", "provider_model", proto_reply_t, provider_model),
    [S_K_TIER] = S_FIELD("tier", "tier", proto_reply_t, tier),
    [S_K_RULE] = S_FIELD("rule", "rule", proto_reply_t, rule),
    [S_K_COST_USD] = S_FIELD("cost_usd", "cost_usd", proto_reply_t, cost_usd),
    [S_K_COST_PUSD] = S_FIELD("cost_pusd", "cost_pusd", proto_reply_t, cost),
    [S_K_OUTPUT_TOKENS] = S_FIELD("output_tokens", "output_tokens", proto_reply_t, output_tokens),
    [S_K_FALLBACKS] = S_FIELD("fallbacks", "fallbacks", proto_reply_t, fallbacks),
    [S_K_POLICY_VERSION] =
        S_FIELD("policy_version", "policy_version", proto_reply_t, policy_version),
    [S_K_POLICY_HASH] = S_FIELD("policy_hash", "policy_hash", proto_reply_t, policy_hash),
    [S_K_DECISION_ID] = S_FIELD("decision_id", "decision_id", proto_reply_t, decision_id),
    [S_K_RESERVED_PD] = S_FIELD("reserved_pd", "reserved_pd", proto_reply_t, reserved_pd),
    [S_K_REMAINING_PD] = S_FIELD("remaining_pd", "remaining_pd", proto_reply_t, remaining_pd),
};

/* s_field over s_reply_fields, by length first. */
static size_t s_reply_key(const proto_mp_val_t *k)
{
    switch (k->len) {
    case 1:
        return S_IS(k, "v") ? S_K_V : S_K_COUNT;
    case 2:
        return S_IS(k, "ok") ? S_K_OK : S_IS(k, "id") ? S_K_ID : S_K_COUNT;
    case 4:
        return S_IS(k, "tier") ? S_K_TIER : S_IS(k, "rule") ? S_K_RULE : S_K_COUNT;
    case 5:
        return S_IS(k, "model") ? S_K_MODEL : S_IS(k, "error") ? S_K_ERROR : S_K_COUNT;
    case 8:
        return S_IS(k, "provider") ? S_K_PROVIDER : S_IS(k, "cost_usd") ? S_K_COST_USD : S_K_COUNT;
    case 9:
        return S_IS(k, "fallbacks")   ? S_K_FALLBACKS
               : S_IS(k, "cost_pusd") ? S_K_COST_PUSD
                                      : S_K_COUNT;
    case 11:
        return S_IS(k, "policy_hash")   ? S_K_POLICY_HASH
               : S_IS(k, "decision_id") ? S_K_DECISION_ID
               : S_IS(k, "reserved_pd") ? S_K_RESERVED_PD
                                        : S_K_COUNT;
    case 12:
        return S_IS(k, "remaining_pd") ? S_K_REMAINING_PD : S_K_COUNT;
    case 13:
        return S_IS(k, "output_tokens") ? S_K_OUTPUT_TOKENS : S_K_COUNT;
    case 14:
        return S_IS(k, "provider_model")   ? S_K_PROVIDER_MODEL
               : S_IS(k, "policy_version") ? S_K_POLICY_VERSION
                                           : S_K_COUNT;
    default:
        return S_K_COUNT;
    }
}

static int s_dec_id(proto_rd_t *rd, proto_id_t *id, proto_error_t *err)
{
    size_t off = proto_rd_offset(rd);
    proto_mp_val_t v;
    int rc = proto_rd_next(rd, &v);
    if (rc != PROTO_OK) {
        return proto_fail(err, rc, off, "id: reply ends inside the value");
    }
    if (v.type == PROTO_MP_UINT) {
        *id = proto_id_uint(v.u);
    } else if (v.type == PROTO_MP_STR) {
        id->kind = PROTO_ID_STR;
        id->str.ptr = v.ptr;
        id->str.len = v.len;
    } else if (v.type != PROTO_MP_NIL) {
        return proto_fail(err, PROTO_ERR_TYPE, off, "id: expected integer or string, got %s",
                          proto_mp_type_name(v.type));
    }
    return PROTO_OK;
}

/* The value of top-level key number `key` (a S_K_*). */
static int s_dec_value(proto_rd_t *rd, unsigned key, proto_reply_t *out, proto_error_t *err)
{
    const char *label = s_reply_fields[key].label;
    proto_mp_val_t v;
    int rc;
    switch (key) {
    case S_K_V:
        rc = s_read(rd, PROTO_MP_UINT, label, &v, err);
        if (rc != PROTO_OK) {
            return rc;
        }
        if (v.u != PROTO_VERSION) {
            return proto_fail(err, PROTO_ERR_VERSION, proto_rd_offset(rd),
                              "v: unsupported protocol version %llu", (unsigned long long)v.u);
        }
        out->v = (uint32_t)v.u;
        return PROTO_OK;
    case S_K_OK:
        rc = s_read(rd, PROTO_MP_BOOL, label, &v, err);
        out->ok = rc == PROTO_OK && v.b;
        return rc;
    case S_K_ID:
        return s_dec_id(rd, &out->id, err);
    case S_K_ERROR:
        return s_dec_fields(rd, &s_error_map, out, err);
    case S_K_COST_USD:
        rc = s_read(rd, PROTO_MP_FLOAT, label, &v, err);
        out->cost_usd = rc == PROTO_OK ? s_num(&v) : 0;
        return rc;
    case S_K_COST_PUSD:
        return s_dec_fields(rd, &s_cost_map, &out->cost, err);
    case S_K_OUTPUT_TOKENS:
        return s_read_i64(rd, label, &out->output_tokens, err);
    case S_K_FALLBACKS:
        return s_dec_fallbacks(rd, out, err);
    case S_K_POLICY_VERSION:
        rc = s_read(rd, PROTO_MP_UINT, label, &v, err);
        out->policy_version = rc == PROTO_OK ? v.u : 0;
        return rc;
    case S_K_DECISION_ID:
        rc = s_read(rd, PROTO_MP_UINT, label, &v, err);
        out->decision_id = rc == PROTO_OK ? v.u : 0;
        return rc;
    case S_K_RESERVED_PD:
    case S_K_REMAINING_PD: {
        /* nil in a ledger key reply: no limit (PROTOCOL.md "Ledger"). */
        int64_t *dst = key == S_K_RESERVED_PD ? &out->reserved_pd : &out->remaining_pd;
        proto_rd_t peek = *rd;
        if (proto_rd_next(&peek, &v) == PROTO_OK && v.type == PROTO_MP_NIL) {
            *rd = peek;
            return PROTO_OK;
        }
        out->has_ledger = true;
        return s_read_i64(rd, label, dst, err);
    }
    default: /* the string keys */
        return s_read_str(rd, label, (hpp_str_t *)((char *)out + s_reply_fields[key].off), err);
    }
}

/* One key of the reply map, at offset `koff`; `seen` has a bit per known key. */
static int s_dec_key(proto_rd_t *rd, const proto_mp_val_t *k, size_t koff, proto_reply_t *out,
                     uint32_t *seen, proto_error_t *err)
{
    size_t key = s_reply_key(k);
    if (key == S_K_COUNT) {
        return s_skip(rd, err);
    }
    int rc = proto_key_once(seen, (unsigned)key, s_reply_fields[key].label, koff, err);
    return rc == PROTO_OK ? s_dec_value(rd, (unsigned)key, out, err) : rc;
}

int proto_reply_decode(const void *buf, size_t len, proto_reply_t *out, proto_error_t *err)
{
    memset(out, 0, sizeof *out);
    out->status = HPP_E_INTERNAL;
    proto_no_error(err);
    proto_rd_t rd;
    proto_rd_init(&rd, buf, len);
    proto_mp_val_t top;
    if (len == 0) {
        return proto_fail(err, PROTO_ERR_NOT_MAP, 0, "empty frame: expected a msgpack map");
    }
    int rc = s_read(&rd, PROTO_MP_MAP, "reply", &top, err);
    if (rc != PROTO_OK) {
        return rc == PROTO_ERR_TYPE ? proto_fail(err, PROTO_ERR_NOT_MAP, 0, "reply: expected a map")
                                    : rc;
    }
    uint32_t seen = 0;
    for (uint32_t i = 0; i < top.n; i++) {
        proto_mp_val_t k;
        size_t off = proto_rd_offset(&rd);
        rc = proto_rd_next(&rd, &k);
        if (rc != PROTO_OK) {
            return proto_fail(err, rc, off, "reply ends inside a key");
        }
        if (k.type != PROTO_MP_STR) {
            return proto_fail(err, PROTO_ERR_TYPE, off, "reply key: expected string, got %s",
                              proto_mp_type_name(k.type));
        }
        rc = s_dec_key(&rd, &k, off, out, &seen, err);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    if (rd.p != rd.end) {
        return proto_fail(err, PROTO_ERR_MALFORMED, proto_rd_offset(&rd),
                          "bytes after the reply map");
    }
    if (!(seen & (1u << S_K_V))) {
        return proto_fail(err, PROTO_ERR_MISSING, 0, "v: required key missing");
    }
    if (!(seen & (1u << S_K_OK))) {
        return proto_fail(err, PROTO_ERR_MISSING, 0, "ok: required key missing");
    }
    if (out->ok) {
        out->status = HPP_OK;
    } else {
        int st = hpp_status_from_name(out->code.ptr ? out->code.ptr : "", out->code.len);
        out->status = st > 0 ? (hpp_status_t)st : HPP_E_INTERNAL;
    }
    return PROTO_OK;
}

int proto_reply_peek(const void *buf, size_t len, proto_reply_t *out, proto_error_t *err)
{
    memset(out, 0, sizeof *out);
    out->status = HPP_E_INTERNAL;
    proto_rd_t rd;
    proto_rd_init(&rd, buf, len);
    proto_mp_val_t top;
    if (len == 0 || s_read(&rd, PROTO_MP_MAP, "reply", &top, NULL) != PROTO_OK) {
        return proto_reply_decode(buf, len, out, err); /* for its error message */
    }
    uint32_t seen = 0;
    for (uint32_t i = 0; i < top.n && seen != S_SEEN_HEAD; i++) {
        size_t off = proto_rd_offset(&rd);
        proto_mp_val_t k;
        if (proto_rd_next(&rd, &k) != PROTO_OK || k.type != PROTO_MP_STR) {
            return proto_reply_decode(buf, len, out, err);
        }
        int rc = s_reply_key(&k) <= S_K_ID ? s_dec_key(&rd, &k, off, out, &seen, NULL)
                                           : proto_rd_skip(&rd);
        if (rc != PROTO_OK) {
            return proto_reply_decode(buf, len, out, err);
        }
    }
    if ((seen & (1u << S_K_V)) == 0 || (seen & (1u << S_K_OK)) == 0 || !out->ok) {
        /* A key is missing (an error to report) or this is an error reply
         * (its code is wanted): both are short. */
        return proto_reply_decode(buf, len, out, err);
    }
    out->status = HPP_OK;
    proto_no_error(err);
    return PROTO_OK;
}

/* Models reply iterator ------------------------------------------------------- */

int proto_models_iter_init(proto_models_iter_t *it, const void *buf, size_t len, proto_error_t *err)
{
    memset(it, 0, sizeof *it);
    proto_reply_t head;
    int rc = proto_reply_decode(buf, len, &head, err);
    if (rc != PROTO_OK) {
        return rc;
    }
    if (!head.ok) {
        return proto_fail(err, PROTO_ERR_ENGINE, 0, "engine error %.*s: %.*s", (int)head.code.len,
                          head.code.ptr ? head.code.ptr : "", (int)head.message.len,
                          head.message.ptr ? head.message.ptr : "");
    }
    /* The reply is well formed: walk to the models key. */
    proto_rd_t rd;
    proto_mp_val_t top, k, v;
    proto_rd_init(&rd, buf, len);
    proto_rd_next(&rd, &top);
    for (uint32_t i = 0; i < top.n; i++) {
        proto_rd_next(&rd, &k);
        if (S_IS(&k, "models")) {
            rc = s_read(&rd, PROTO_MP_ARRAY, "models", &v, err);
            if (rc != PROTO_OK) {
                return rc;
            }
            it->buf = buf;
            it->len = len;
            it->pos = proto_rd_offset(&rd);
            it->left = v.n;
            return PROTO_OK;
        }
        proto_rd_skip(&rd);
    }
    return proto_fail(err, PROTO_ERR_MISSING, 0, "models: required key missing");
}

static int s_dec_price(proto_rd_t *rd, proto_model_info_t *out, proto_error_t *err)
{
    static const struct {
        const char *name;
        size_t off;
    } rows[] = {
        {"prompt", offsetof(proto_model_info_t, prompt)},
        {"completion", offsetof(proto_model_info_t, completion)},
        {"cache_read", offsetof(proto_model_info_t, cache_read)},
        {"cache_write", offsetof(proto_model_info_t, cache_write)},
        {"request", offsetof(proto_model_info_t, request)},
        {"image", offsetof(proto_model_info_t, image)},
    };
    proto_mp_val_t m;
    int rc = s_read(rd, PROTO_MP_MAP, "pricing", &m, err);
    for (uint32_t i = 0; rc == PROTO_OK && i < m.n; i++) {
        proto_mp_val_t k, v;
        rc = s_read(rd, PROTO_MP_STR, "pricing key", &k, err);
        if (rc != PROTO_OK) {
            break;
        }
        size_t r = 0;
        while (r < sizeof rows / sizeof rows[0] &&
               !s_is_n(&k, rows[r].name, strlen(rows[r].name))) {
            r++;
        }
        if (r == sizeof rows / sizeof rows[0]) {
            rc = s_skip(rd, err);
            continue;
        }
        rc = s_read(rd, PROTO_MP_FLOAT, "pricing", &v, err);
        if (rc == PROTO_OK) {
            *(double *)((char *)out + rows[r].off) = s_num(&v);
        }
    }
    return rc;
}

static int s_dec_u32(proto_rd_t *rd, const char *key, uint32_t *out, proto_error_t *err)
{
    proto_mp_val_t v;
    int rc = s_read(rd, PROTO_MP_UINT, key, &v, err);
    if (rc == PROTO_OK) {
        *out = v.u > UINT32_MAX ? UINT32_MAX : (uint32_t)v.u;
    }
    return rc;
}

static int s_dec_caps(proto_rd_t *rd, uint32_t *caps, proto_error_t *err)
{
    proto_mp_val_t a;
    int rc = s_read(rd, PROTO_MP_ARRAY, "caps", &a, err);
    for (uint32_t i = 0; rc == PROTO_OK && i < a.n; i++) {
        proto_mp_val_t s;
        rc = s_read(rd, PROTO_MP_STR, "caps[]", &s, err);
        for (size_t c = 0; rc == PROTO_OK && c < HPP_NCAPS; c++) {
            if (s_is_n(&s, hpp_caps[c].name, strlen(hpp_caps[c].name))) {
                *caps |= hpp_caps[c].bit;
            }
        }
    }
    return rc;
}

int proto_models_iter_next(proto_models_iter_t *it, proto_model_info_t *out, proto_error_t *err)
{
    if (it->left == 0) {
        return 0;
    }
    proto_rd_t rd;
    proto_rd_init(&rd, it->buf, it->len);
    rd.p += it->pos;
    memset(out, 0, sizeof *out);
    out->prompt = out->completion = out->cache_read = out->cache_write = -1;
    out->request = out->image = -1;
    proto_mp_val_t m;
    int rc = s_read(&rd, PROTO_MP_MAP, "models[]", &m, err);
    for (uint32_t i = 0; rc == PROTO_OK && i < m.n; i++) {
        proto_mp_val_t k, v;
        rc = s_read(&rd, PROTO_MP_STR, "models[] key", &k, err);
        if (rc != PROTO_OK) {
            break;
        }
        if (S_IS(&k, "id")) {
            rc = s_read_str(&rd, "id", &out->id, err);
        } else if (S_IS(&k, "owned_by")) {
            rc = s_read_str(&rd, "owned_by", &out->owned_by, err);
        } else if (S_IS(&k, "context_length")) {
            rc = s_dec_u32(&rd, "context_length", &out->context_length, err);
        } else if (S_IS(&k, "max_output")) {
            rc = s_dec_u32(&rd, "max_output", &out->max_output, err);
        } else if (S_IS(&k, "endpoints")) {
            rc = s_dec_u32(&rd, "endpoints", &out->endpoints, err);
        } else if (S_IS(&k, "caps")) {
            rc = s_dec_caps(&rd, &out->caps, err);
        } else if (S_IS(&k, "free")) {
            rc = s_read(&rd, PROTO_MP_BOOL, "free", &v, err);
            out->free = rc == PROTO_OK && v.b;
        } else if (S_IS(&k, "pricing")) {
            rc = s_dec_price(&rd, out, err);
        } else {
            rc = s_skip(&rd, err);
        }
    }
    if (rc != PROTO_OK) {
        it->left = 0;
        return rc;
    }
    it->pos = proto_rd_offset(&rd);
    it->left--;
    return 1;
}
