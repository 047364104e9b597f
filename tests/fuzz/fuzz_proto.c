/* fuzz_proto.c - libFuzzer target for the wire decoders (proto/).
 *
 * Every input goes through the request decoder, the reply decoder and its
 * head-only peek, the models iterator and the JSON renderer: none may crash,
 * read out of bounds or allocate without freeing. Where the reply decoder
 * accepts, peek must report the same id, ok and status. A request that decodes is re-encoded and
 * decoded again; the features must survive the round trip unchanged (an
 * oracle that catches decoders accepting what encoders cannot express).
 * A report's attempts take the same round trip through the report encoder,
 * each figure unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static int s_str_eq(hpp_str_t a, hpp_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int s_attempt_eq(const proto_attempt_t *x, const proto_attempt_t *y)
{
    return x->decision == y->decision && s_str_eq(x->model, y->model) &&
           s_str_eq(x->provider, y->provider) && x->status == y->status && x->error == y->error &&
           x->latency_ms == y->latency_ms && x->ttft_ms == y->ttft_ms &&
           x->tokens_per_s == y->tokens_per_s && x->prompt_tokens == y->prompt_tokens &&
           x->completion_tokens == y->completion_tokens && x->cached_tokens == y->cached_tokens &&
           x->reasoning_tokens == y->reasoning_tokens && x->cost_usd == y->cost_usd;
}

/* The attempts of a decoded report, encoded again, decode to the same. */
static void s_check_report(const proto_request_t *a)
{
    static proto_attempt_t at[PROTO_MAX_ATTEMPTS];
    size_t pos = 0, n = 0;
    proto_error_t err;
    int rc;
    while (n < PROTO_MAX_ATTEMPTS &&
           (rc = proto_attempts_next(&a->attempts, &pos, &at[n], &err)) == 1) {
        n++;
    }
    if (n != a->attempts.n || proto_attempts_next(&a->attempts, &pos, &at[0], &err) != 0) {
        abort(); /* a checked frame walks without error, entry for entry */
    }
    static char mem[2 * PROTO_MAX_FRAME];
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, sizeof mem);
    proto_request_t c;
    if (proto_report_encode(&b, &a->id, at, n, a->ack) != PROTO_OK ||
        proto_request_decode(b.data, b.len, &c, NULL) != PROTO_OK || c.ack != a->ack ||
        c.attempts.n != n) {
        abort();
    }
    pos = 0;
    for (size_t i = 0; i < n; i++) {
        proto_attempt_t y;
        if (proto_attempts_next(&c.attempts, &pos, &y, &err) != 1 || !s_attempt_eq(&at[i], &y)) {
            abort();
        }
    }
}

static void s_check_round_trip(const proto_request_t *a)
{
    if (a->op == PROTO_OP_REPORT) {
        s_check_report(a);
        return;
    }
    static char mem[2 * PROTO_MAX_FRAME];
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, sizeof mem);
    if (proto_request_encode(&b, a) != PROTO_OK) {
        abort(); /* anything decoded fits twice the frame limit */
    }
    proto_request_t c;
    if (proto_request_decode(b.data, b.len, &c, NULL) != PROTO_OK) {
        abort();
    }
    const hpp_features_t *f = &a->features, *g = &c.features;
    int same = c.op == a->op && proto_id_equal(&c.id, &a->id);
    if (a->op == PROTO_OP_LEDGER) {
        /* Amounts travel as USD floats: exact to a picodollar per 2^-52 of them. */
        const proto_ledger_req_t *x = &a->ledger, *y = &c.ledger;
        int64_t d = x->amount_pd - y->amount_pd;
        int64_t tol = 1 + (x->amount_pd < 0 ? -x->amount_pd : x->amount_pd) / (INT64_C(1) << 50);
        same = same && x->action == y->action && s_str_eq(x->account, y->account) &&
               x->has_amount == y->has_amount && d <= tol && -d <= tol && s_str_eq(f->key, g->key);
    }
    if (a->op == PROTO_OP_ROUTE || a->op == PROTO_OP_EXPLAIN) {
        same = same && s_str_eq(f->model, g->model) && f->prompt_tokens == g->prompt_tokens &&
               f->output_tokens == g->output_tokens &&
               f->cache_read_tokens == g->cache_read_tokens && f->images == g->images &&
               f->vision == g->vision && f->tools == g->tools && f->json == g->json &&
               f->nhints == g->nhints && f->has_budget == g->has_budget &&
               (!f->has_budget || f->budget_usd == g->budget_usd) && s_str_eq(f->group, g->group) &&
               s_str_eq(f->text, g->text) && f->nmeta == g->nmeta && s_str_eq(f->key, g->key);
        for (uint32_t i = 0; same && i < f->nhints; i++) {
            same = s_str_eq(f->hints[i], g->hints[i]);
        }
        for (uint32_t i = 0; same && i < f->nmeta; i++) {
            same = s_str_eq(f->meta_keys[i], g->meta_keys[i]) &&
                   s_str_eq(f->meta_vals[i], g->meta_vals[i]);
        }
        /* Provider routing; max_price travels as USD, so only which parts
         * are set must survive exactly. */
        same = same && f->nproviders_order == g->nproviders_order &&
               f->nproviders_only == g->nproviders_only &&
               f->nproviders_ignore == g->nproviders_ignore && f->nmodels == g->nmodels &&
               f->no_fallbacks == g->no_fallbacks && f->sort == g->sort &&
               f->max_price.set == g->max_price.set && f->max_latency_s == g->max_latency_s &&
               f->min_throughput == g->min_throughput;
        for (uint32_t i = 0; same && i < f->nproviders_order; i++) {
            same = s_str_eq(f->providers_order[i], g->providers_order[i]);
        }
        for (uint32_t i = 0; same && i < f->nproviders_only; i++) {
            same = s_str_eq(f->providers_only[i], g->providers_only[i]);
        }
        for (uint32_t i = 0; same && i < f->nproviders_ignore; i++) {
            same = s_str_eq(f->providers_ignore[i], g->providers_ignore[i]);
        }
        for (uint32_t i = 0; same && i < f->nmodels; i++) {
            same = s_str_eq(f->models[i], g->models[i]);
        }
    }
    if (!same) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_request_t req;
    proto_error_t err;
    if (proto_request_decode(data, size, &req, &err) == PROTO_OK) {
        s_check_round_trip(&req);
    } else if (err.code == PROTO_OK || err.msg[0] == '\0') {
        abort(); /* every failure carries its code and a message */
    }

    /* peek reads less than decode but must report the same head. */
    proto_reply_t rep, head;
    if (proto_reply_decode(data, size, &rep, &err) == PROTO_OK) {
        if (proto_reply_peek(data, size, &head, &err) != PROTO_OK ||
            !proto_id_equal(&head.id, &rep.id) || head.ok != rep.ok || head.status != rep.status) {
            abort();
        }
    } else {
        proto_reply_peek(data, size, &head, &err);
    }

    proto_models_iter_t it;
    if (proto_models_iter_init(&it, data, size, &err) == PROTO_OK) {
        proto_model_info_t mi;
        while (proto_models_iter_next(&it, &mi, &err) == 1) {
        }
    }

    static char jmem[8 * 65536];
    proto_buf_t j;
    proto_buf_init_fixed(&j, jmem, sizeof jmem);
    proto_to_json(data, size, &j, &err);
    return 0;
}
