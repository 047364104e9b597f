/* sc_call.c - what the server and the proxy both do to a call. */
#include "sc_call.h"

#include <string.h>
#include <time.h>

double sc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sc_strcopy(char *dst, size_t n, hpp_str_t s)
{
    size_t len = s.len < n - 1 ? s.len : n - 1;
    if (len) {
        memcpy(dst, s.ptr, len);
    }
    dst[len] = '\0';
}

void sc_decision_copy(sc_decision_t *d, const proto_reply_t *r)
{
    memset(d, 0, sizeof *d);
    sc_strcopy(d->model, sizeof d->model, r->model);
    sc_strcopy(d->provider, sizeof d->provider, r->provider);
    sc_strcopy(d->provider_model, sizeof d->provider_model, r->provider_model);
    sc_strcopy(d->tier, sizeof d->tier, r->tier);
    sc_strcopy(d->rule, sizeof d->rule, r->rule);
    d->cost_usd = r->cost_usd;
    d->output_tokens = r->output_tokens;
    d->decision_id = r->decision_id;
    d->nfallbacks = r->nfallbacks < HPP_MAX_FALLBACKS ? r->nfallbacks : HPP_MAX_FALLBACKS;
    for (uint32_t i = 0; i < d->nfallbacks; i++) {
        sc_strcopy(d->fallbacks[i].model, sizeof d->fallbacks[i].model, r->fallbacks[i].model);
        sc_strcopy(d->fallbacks[i].provider, sizeof d->fallbacks[i].provider,
                   r->fallbacks[i].provider);
        sc_strcopy(d->fallbacks[i].provider_model, sizeof d->fallbacks[i].provider_model,
                   r->fallbacks[i].provider_model);
        sc_strcopy(d->fallbacks[i].tier, sizeof d->fallbacks[i].tier, r->fallbacks[i].tier);
        d->fallbacks[i].cost_usd = r->fallbacks[i].cost_usd;
        d->fallbacks[i].has_cost = r->fallbacks[i].cost_usd >= 0;
    }
}

void sc_decision_endpoint(const sc_decision_t *d, sc_endpoint_t *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->model, d->model, sizeof out->model);
    memcpy(out->provider, d->provider, sizeof out->provider);
    memcpy(out->provider_model, d->provider_model, sizeof out->provider_model);
    memcpy(out->tier, d->tier, sizeof out->tier);
    out->cost_usd = d->cost_usd;
    out->has_cost = !d->fail_open;
}
