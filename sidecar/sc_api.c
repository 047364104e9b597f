/* sc_api.c - GET /api/quota-check, /api/usage and /api/v1/key. */
#include "sc_api.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto_ledger.h"

typedef enum { S_QUOTA, S_USAGE, S_KEY, S_NONE } s_kind_t;

static const char *const s_paths[] = {
    [S_QUOTA] = "/api/quota-check",
    [S_USAGE] = "/api/usage",
    [S_KEY] = "/api/v1/key",
};

static s_kind_t s_kind(const char *uri, size_t plen)
{
    for (int k = 0; k < S_NONE; k++) {
        if (strlen(s_paths[k]) == plen && memcmp(s_paths[k], uri, plen) == 0) {
            return (s_kind_t)k;
        }
    }
    return S_NONE;
}

bool sc_api_serves(const char *uri, size_t plen)
{
    return s_kind(uri, plen) != S_NONE;
}

/* Appends to a fixed buffer; `ok` turns false when it does not fit. */
typedef struct {
    char *p;
    size_t n, len;
    bool ok;
} s_out_t;

__attribute__((format(printf, 2, 3))) static void s_put(s_out_t *o, const char *fmt, ...)
{
    if (!o->ok) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->p + o->len, o->n - o->len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= o->n - o->len) {
        o->ok = false;
        return;
    }
    o->len += (size_t)w;
}

/* "name":X with X the exact decimal USD of pd, or null for none. */
static void s_money(s_out_t *o, const char *name, int64_t pd)
{
    if (pd == PROTO_LEDGER_NONE_PD) {
        s_put(o, "\"%s\":null", name);
        return;
    }
    char num[48];
    hpp_pusd_format(pd < 0 ? -pd : pd, false, num, sizeof num);
    s_put(o, "\"%s\":%s%s", name, pd < 0 ? "-" : "", num);
}

/* The least of what can still pay, as the engine's checks see it: the
 * account's balance less what all its keys hold reserved, the key's
 * remaining (already less its reservations) and the day's remaining (each
 * only when it applies). */
static int64_t s_remaining(const proto_ledger_key_t *k)
{
    int64_t r = k->balance_pd - k->account_reserved_pd;
    if (k->remaining_pd != PROTO_LEDGER_NONE_PD && k->remaining_pd < r) {
        r = k->remaining_pd;
    }
    if (k->daily_pd != PROTO_LEDGER_NONE_PD &&
        k->daily_pd - k->day_spent_pd - k->day_reserved_pd < r) {
        r = k->daily_pd - k->day_spent_pd - k->day_reserved_pd;
    }
    return r < 0 ? 0 : r;
}

/* A remaining amount as shown: never below 0 (a settled charge may pass
 * the limit by what the last request cost beyond its estimate). */
static int64_t s_floor0(int64_t pd)
{
    return pd != PROTO_LEDGER_NONE_PD && pd < 0 ? 0 : pd;
}

static int64_t s_day_remaining(const proto_ledger_key_t *k)
{
    if (k->daily_pd == PROTO_LEDGER_NONE_PD) {
        return PROTO_LEDGER_NONE_PD;
    }
    int64_t left = k->daily_pd - k->day_spent_pd - k->day_reserved_pd;
    return left > 0 ? left : 0;
}

/* "key":"...","group":"...","account":"..." (the engine checked the
 * strings: a hash, a group and an account name, nothing to escape). */
static void s_who(s_out_t *o, const proto_ledger_key_t *k)
{
    s_put(o, "\"key\":\"%.*s\",\"group\":\"%.*s\",\"account\":\"%.*s\"", (int)k->key.len,
          k->key.ptr, (int)k->group.len, k->group.ptr, (int)k->account.len, k->account.ptr);
}

int sc_api_body(const char *path, size_t plen, const proto_ledger_key_t *k, char *buf, size_t n)
{
    s_out_t o = {.p = buf, .n = n, .ok = n > 0};
    int64_t rem = s_remaining(k);
    switch (s_kind(path, plen)) {
    case S_QUOTA:
        s_put(&o, "{");
        s_who(&o, k);
        s_put(&o, ",");
        s_money(&o, "remaining_usd", rem);
        s_put(&o, ",\"exhausted\":%s,", rem <= 0 ? "true" : "false");
        s_money(&o, "balance_usd", k->balance_pd);
        s_put(&o, ",");
        s_money(&o, "limit_usd", k->limit_pd);
        s_put(&o, ",");
        s_money(&o, "key_remaining_usd", s_floor0(k->remaining_pd));
        s_put(&o, ",");
        s_money(&o, "daily_usd", k->daily_pd);
        s_put(&o, ",");
        s_money(&o, "day_remaining_usd", s_day_remaining(k));
        s_put(&o, ",\"day_requests\":%lld}\n", (long long)k->day_requests);
        break;
    case S_USAGE:
        s_put(&o, "{");
        s_who(&o, k);
        s_put(&o,
              ",\"requests\":%lld,\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
              "\"total_tokens\":%lld,",
              (long long)k->requests, (long long)k->prompt_tokens, (long long)k->completion_tokens,
              (long long)(k->prompt_tokens + k->completion_tokens));
        s_money(&o, "total_cost_usd", k->spent_pd);
        s_put(&o, ",");
        s_money(&o, "reserved_usd", k->reserved_pd);
        s_put(&o, ",");
        s_money(&o, "remaining_usd", rem);
        s_put(&o, ",\"day\":{\"requests\":%lld,\"free_requests\":%lld,", (long long)k->day_requests,
              (long long)k->day_free_requests);
        s_money(&o, "cost_usd", k->day_spent_pd);
        s_put(&o, "}}\n");
        break;
    case S_KEY:
        /* OpenRouter's shape: usage and limit in USD, limit null = none. */
        s_put(&o, "{\"data\":{\"label\":\"%.*s...\",", 19, k->key.ptr);
        s_money(&o, "usage", k->spent_pd);
        s_put(&o, ",");
        s_money(&o, "usage_daily", k->day_spent_pd);
        s_put(&o, ",");
        s_money(&o, "limit", k->limit_pd);
        s_put(&o, ",");
        s_money(&o, "limit_remaining", s_floor0(k->remaining_pd));
        s_put(&o, ",\"limit_reset\":null,\"is_free_tier\":%s,\"is_provisioning_key\":false,",
              k->balance_pd <= 0 ? "true" : "false");
        s_money(&o, "balance", k->balance_pd);
        s_put(&o, ",\"group\":\"%.*s\"}}\n", (int)k->group.len, k->group.ptr);
        break;
    case S_NONE:
        return -1;
    }
    return o.ok && k->key.len >= 19 ? (int)o.len : -1;
}

static void s_send(sc_call_t *call, int status, const char *reason, const char *body, size_t n)
{
    struct evbuffer *b = evhttp_request_get_output_buffer(call->req);
    evhttp_add_header(evhttp_request_get_output_headers(call->req), "Content-Type",
                      "application/json");
    evbuffer_add(b, body, n);
    call->status = status;
    call->ops->detach(call);
    evhttp_send_reply(call->req, status, reason, b);
    call->ops->finish(call);
}

static void s_on_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                       size_t len)
{
    sc_call_t *call = arg;
    call->eng = 0;
    oai_error_t err;
    if (res != SC_ENG_REPLY) {
        oai_error_set(&err, 503, "engine_unavailable", NULL, "the routing engine did not answer");
        call->ops->reply_error(call, &err);
        return;
    }
    if (!r->ok) {
        char msg[200];
        sc_strcopy(msg, sizeof msg, r->message);
        oai_error_set(&err, oai_status_http(r->status), hpp_status_name(r->status), NULL, "%s",
                      msg);
        call->ops->reply_error(call, &err);
        return;
    }
    proto_ledger_key_t k;
    proto_error_t perr;
    char body[2048];
    const char *uri = evhttp_request_get_uri(call->req);
    int n = -1;
    if (proto_ledger_key_decode(raw, len, &k, &perr) != PROTO_OK ||
        (n = sc_api_body(uri, strcspn(uri, "?#"), &k, body, sizeof body)) < 0) {
        oai_error_set(&err, 502, "engine_bad_reply", NULL, "engine ledger reply: %s",
                      n < 0 && perr.msg[0] ? perr.msg : "does not read");
        call->ops->reply_error(call, &err);
        return;
    }
    s_send(call, 200, "OK", body, (size_t)n);
}

void sc_api_handle(sc_call_t *call, sc_engine_t *engine, const sc_trust_config_t *trust)
{
    oai_error_t err;
    const char *uri = evhttp_request_get_uri(call->req);
    if (!trust->keys) {
        oai_error_set(&err, 404, "not_found", NULL,
                      "%.*s answers for the caller's API key: start hpp-sidecar with --keys",
                      (int)strcspn(uri, "?#"), uri);
        call->ops->reply_error(call, &err);
        return;
    }
    if (sc_trust_headers(trust, evhttp_request_get_input_headers(call->req), &call->trust, &err) <
        0) {
        if (err.status == 401) {
            evhttp_add_header(evhttp_request_get_output_headers(call->req), "WWW-Authenticate",
                              "Bearer");
        }
        call->ops->reply_error(call, &err);
        return;
    }
    proto_request_t *req = &call->ereq;
    proto_request_init(req, PROTO_OP_LEDGER);
    req->ledger.action = PROTO_LEDGER_KEY;
    req->features.key.ptr = call->trust.key_hash;
    req->features.key.len = (uint32_t)strlen(call->trust.key_hash);
    sc_call_err_t why = SC_CALL_OK;
    call->eng_t0 = sc_now();
    call->eng = sc_engine_call(engine, req, s_on_reply, call, &why);
    if (!call->eng) {
        oai_error_set(&err, 503, "engine_unavailable", NULL, "the routing engine %s",
                      sc_call_err_message(why));
        call->ops->reply_error(call, &err);
    }
}
