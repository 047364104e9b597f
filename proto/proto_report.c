/* proto_report.c - the `report` op: what happened when a gateway called the
 * endpoint a decision named (spec: proto/PROTOCOL.md "Reports").
 *
 * The request decoder hands the `attempts` array to proto_attempts_check,
 * which checks every entry once (types, ranges, required keys) and records
 * where the array's bytes are; the engine then walks them again with
 * proto_attempts_next, which cannot fail on a checked frame. Both passes use
 * one decoder, so what is checked is what is read. Nothing is allocated.
 */
#include "proto_mp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const s_xerr_names[PROTO_XERR_COUNT] = {
    [PROTO_XERR_NONE] = "none",         [PROTO_XERR_TIMEOUT] = "timeout",
    [PROTO_XERR_CONNECT] = "connect",   [PROTO_XERR_TLS] = "tls",
    [PROTO_XERR_RESET] = "reset",       [PROTO_XERR_PROTOCOL] = "protocol",
    [PROTO_XERR_CANCELED] = "canceled",
};

const char *proto_xerr_name(proto_xerr_t e)
{
    return (unsigned)e < PROTO_XERR_COUNT ? s_xerr_names[e] : "unknown";
}

void proto_attempt_init(proto_attempt_t *a)
{
    memset(a, 0, sizeof *a);
    a->latency_ms = a->ttft_ms = a->tokens_per_s = a->cost_usd = -1;
    a->prompt_tokens = a->completion_tokens = a->cached_tokens = a->reasoning_tokens = -1;
}

/* Decoder ------------------------------------------------------------------- */

/* One entry being decoded: where, which, and the error sink. */
typedef struct {
    proto_rd_t *rd;
    proto_error_t *err;
    uint32_t index;  /* entry number, for messages */
    const char *key; /* current key */
    size_t voff;     /* offset of its value */
    proto_attempt_t *out;
} s_att_t;

static int s_bad(s_att_t *a, int code, const char *fmt, const char *detail)
{
    return proto_fail(a->err, code, a->voff, "attempts[%u].%s: %s%s", a->index, a->key, fmt,
                      detail ? detail : "");
}

static int s_type(s_att_t *a, const proto_mp_val_t *v, const char *expected)
{
    char msg[64];
    snprintf(msg, sizeof msg, "expected %s, got ", expected);
    return s_bad(a, PROTO_ERR_TYPE, msg, proto_mp_type_name(v->type));
}

static int s_str(s_att_t *a, const proto_mp_val_t *v, uint32_t max, const char *(*check)(hpp_str_t),
                 hpp_str_t *out)
{
    if (v->type != PROTO_MP_STR) {
        return s_type(a, v, "string");
    }
    hpp_str_t s = {v->ptr, v->len};
    if (v->len == 0 || v->len > max) {
        char msg[64];
        snprintf(msg, sizeof msg, "string of %u bytes, expected 1 .. %u", v->len, max);
        return s_bad(a, PROTO_ERR_LIMIT, msg, NULL);
    }
    const char *why = check ? check(s) : NULL;
    if (why) {
        return s_bad(a, PROTO_ERR_RANGE, why, NULL);
    }
    *out = s;
    return PROTO_OK;
}

/* A non-negative number <= max (integer or float, finite). */
static int s_number(s_att_t *a, const proto_mp_val_t *v, double max, double *out)
{
    double x;
    if (v->type == PROTO_MP_UINT) {
        x = (double)v->u;
    } else if (v->type == PROTO_MP_INT) {
        x = (double)v->i;
    } else if (v->type == PROTO_MP_FLOAT) {
        x = v->f;
    } else {
        return s_type(a, v, "non-negative number");
    }
    if (!isfinite(x) || x < 0 || x > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "expected a number in 0 .. %g, got %g", max, x);
        return s_bad(a, PROTO_ERR_RANGE, msg, NULL);
    }
    *out = x;
    return PROTO_OK;
}

static int s_uint(s_att_t *a, const proto_mp_val_t *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (v->type != PROTO_MP_UINT && v->type != PROTO_MP_INT) {
        return s_type(a, v, "non-negative integer");
    }
    if (v->type == PROTO_MP_INT || v->u < min || v->u > max) {
        char msg[96];
        if (v->type == PROTO_MP_INT) {
            snprintf(msg, sizeof msg, "expected an integer in %llu .. %llu, got %lld",
                     (unsigned long long)min, (unsigned long long)max, (long long)v->i);
        } else {
            snprintf(msg, sizeof msg, "expected an integer in %llu .. %llu, got %llu",
                     (unsigned long long)min, (unsigned long long)max, (unsigned long long)v->u);
        }
        return s_bad(a, PROTO_ERR_RANGE, msg, NULL);
    }
    *out = v->u;
    return PROTO_OK;
}

static int s_tokens(s_att_t *a, const proto_mp_val_t *v, int64_t *out)
{
    uint64_t n = 0;
    int rc = s_uint(a, v, 0, HPP_MAX_TOKENS, &n);
    *out = (int64_t)n;
    return rc;
}

static int s_k_decision(s_att_t *a, const proto_mp_val_t *v)
{
    return s_uint(a, v, 0, UINT64_MAX, &a->out->decision);
}
static int s_k_model(s_att_t *a, const proto_mp_val_t *v)
{
    return s_str(a, v, HPP_MAX_MODEL_LEN, hpp_check_model_id, &a->out->model);
}
static int s_k_provider(s_att_t *a, const proto_mp_val_t *v)
{
    return s_str(a, v, HPP_MAX_PROVIDER_LEN, hpp_check_provider, &a->out->provider);
}
static int s_k_status(s_att_t *a, const proto_mp_val_t *v)
{
    uint64_t st = 0;
    int rc = s_uint(a, v, 100, 599, &st);
    a->out->status = (uint32_t)st;
    return rc;
}
static int s_k_error(s_att_t *a, const proto_mp_val_t *v)
{
    if (v->type != PROTO_MP_STR) {
        return s_type(a, v, "string");
    }
    for (int e = PROTO_XERR_NONE + 1; e < PROTO_XERR_COUNT; e++) {
        if (strlen(s_xerr_names[e]) == v->len && memcmp(s_xerr_names[e], v->ptr, v->len) == 0) {
            a->out->error = (proto_xerr_t)e;
            return PROTO_OK;
        }
    }
    return s_bad(a, PROTO_ERR_RANGE,
                 "expected one of timeout, connect, tls, reset, protocol, canceled", NULL);
}
static int s_k_latency(s_att_t *a, const proto_mp_val_t *v)
{
    return s_number(a, v, PROTO_MAX_LATENCY_MS, &a->out->latency_ms);
}
static int s_k_ttft(s_att_t *a, const proto_mp_val_t *v)
{
    return s_number(a, v, PROTO_MAX_LATENCY_MS, &a->out->ttft_ms);
}
static int s_k_tps(s_att_t *a, const proto_mp_val_t *v)
{
    return s_number(a, v, PROTO_MAX_TPS, &a->out->tokens_per_s);
}
static int s_k_prompt(s_att_t *a, const proto_mp_val_t *v)
{
    return s_tokens(a, v, &a->out->prompt_tokens);
}
static int s_k_completion(s_att_t *a, const proto_mp_val_t *v)
{
    return s_tokens(a, v, &a->out->completion_tokens);
}
static int s_k_cached(s_att_t *a, const proto_mp_val_t *v)
{
    return s_tokens(a, v, &a->out->cached_tokens);
}
static int s_k_reasoning(s_att_t *a, const proto_mp_val_t *v)
{
    return s_tokens(a, v, &a->out->reasoning_tokens);
}
static int s_k_cost(s_att_t *a, const proto_mp_val_t *v)
{
    return s_number(a, v, HPP_MAX_BUDGET_USD, &a->out->cost_usd);
}

typedef int (*s_att_fn)(s_att_t *a, const proto_mp_val_t *v);

#define S_KEY(lit) "" lit, sizeof(lit) - 1

/* The keys of an attempt; the order is the bit in the `seen` mask. */
static const struct {
    const char *name;
    uint32_t len; /* every key of every attempt is looked up: lengths first */
    s_att_fn fn;
} s_att_keys[] = {
    {S_KEY("decision"), s_k_decision},    {S_KEY("model"), s_k_model},
    {S_KEY("provider"), s_k_provider},    {S_KEY("status"), s_k_status},
    {S_KEY("error"), s_k_error},          {S_KEY("latency_ms"), s_k_latency},
    {S_KEY("ttft_ms"), s_k_ttft},         {S_KEY("tokens_per_s"), s_k_tps},
    {S_KEY("prompt_tokens"), s_k_prompt}, {S_KEY("completion_tokens"), s_k_completion},
    {S_KEY("cached_tokens"), s_k_cached}, {S_KEY("reasoning_tokens"), s_k_reasoning},
    {S_KEY("cost_usd"), s_k_cost},
};
#define S_NATT (sizeof s_att_keys / sizeof s_att_keys[0])

static int s_att_key(const proto_mp_val_t *k)
{
    for (size_t i = 0; i < S_NATT; i++) {
        if (s_att_keys[i].len == k->len && memcmp(s_att_keys[i].name, k->ptr, k->len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int s_broken(s_att_t *a, int rc, size_t off)
{
    return proto_fail(a->err, rc, off, "attempts[%u]: %s", a->index,
                      rc == PROTO_ERR_TRUNCATED ? "frame ends inside the value"
                                                : "invalid msgpack byte");
}

/* Decodes entry a->index at the cursor into a->out. */
static int s_attempt(s_att_t *a)
{
    proto_attempt_init(a->out);
    proto_mp_val_t m;
    size_t off = proto_rd_offset(a->rd);
    int rc = proto_rd_next(a->rd, &m);
    if (rc != PROTO_OK) {
        return s_broken(a, rc, off);
    }
    if (m.type != PROTO_MP_MAP) {
        return proto_fail(a->err, PROTO_ERR_TYPE, off, "attempts[%u]: expected map, got %s",
                          a->index, proto_mp_type_name(m.type));
    }
    uint32_t seen = 0;
    for (uint32_t i = 0; i < m.n; i++) {
        proto_mp_val_t k, v;
        size_t koff = proto_rd_offset(a->rd);
        if ((rc = proto_rd_next(a->rd, &k)) != PROTO_OK) {
            return s_broken(a, rc, koff);
        }
        if (k.type != PROTO_MP_STR) {
            return proto_fail(a->err, PROTO_ERR_TYPE, koff,
                              "attempts[%u]: map key #%u: expected string, got %s", a->index, i + 1,
                              proto_mp_type_name(k.type));
        }
        int idx = s_att_key(&k);
        if (idx < 0) { /* unknown key: ignored, as everywhere */
            if ((rc = proto_rd_skip(a->rd)) != PROTO_OK) {
                return s_broken(a, rc, proto_rd_offset(a->rd));
            }
            continue;
        }
        a->key = s_att_keys[idx].name;
        if (seen & (1u << idx)) { /* the message is formatted only on this path */
            return proto_fail(a->err, PROTO_ERR_DUPLICATE, koff, "attempts[%u].%s: duplicate key",
                              a->index, a->key);
        }
        seen |= 1u << idx;
        a->voff = proto_rd_offset(a->rd);
        if ((rc = proto_rd_next(a->rd, &v)) != PROTO_OK) {
            return s_broken(a, rc, a->voff);
        }
        if (v.type == PROTO_MP_NIL) {
            continue; /* nil is absent */
        }
        if ((rc = s_att_keys[idx].fn(a, &v)) != PROTO_OK) {
            return rc;
        }
    }
    const proto_attempt_t *o = a->out;
    if (o->model.len == 0 || o->provider.len == 0) {
        return proto_fail(a->err, PROTO_ERR_MISSING, off, "attempts[%u].%s: required key missing",
                          a->index, o->model.len == 0 ? "model" : "provider");
    }
    if ((o->status != 0) == (o->error != PROTO_XERR_NONE)) {
        return proto_fail(a->err, o->status ? PROTO_ERR_DUPLICATE : PROTO_ERR_MISSING, off,
                          "attempts[%u]: %s", a->index,
                          o->status ? "status and error both given: an attempt has one outcome"
                                    : "status or error required: the attempt's outcome");
    }
    if (o->cached_tokens > 0 && o->prompt_tokens >= 0 && o->cached_tokens > o->prompt_tokens) {
        return proto_fail(a->err, PROTO_ERR_RANGE, off,
                          "attempts[%u].cached_tokens: %lld exceeds prompt_tokens %lld", a->index,
                          (long long)o->cached_tokens, (long long)o->prompt_tokens);
    }
    if (o->reasoning_tokens > 0 && o->completion_tokens >= 0 &&
        o->reasoning_tokens > o->completion_tokens) {
        return proto_fail(a->err, PROTO_ERR_RANGE, off,
                          "attempts[%u].reasoning_tokens: %lld exceeds completion_tokens %lld",
                          a->index, (long long)o->reasoning_tokens,
                          (long long)o->completion_tokens);
    }
    return PROTO_OK;
}

int proto_attempts_check(proto_rd_t *rd, uint32_t n, proto_attempts_t *out, proto_error_t *err)
{
    if (n == 0 || n > PROTO_MAX_ATTEMPTS) {
        return proto_fail(err, n ? PROTO_ERR_LIMIT : PROTO_ERR_RANGE, proto_rd_offset(rd),
                          "attempts: %u entries, expected 1 .. %d", n, PROTO_MAX_ATTEMPTS);
    }
    const uint8_t *start = rd->p;
    proto_attempt_t tmp;
    s_att_t a = {.rd = rd, .err = err, .out = &tmp};
    for (uint32_t i = 0; i < n; i++) {
        a.index = i;
        int rc = s_attempt(&a);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    out->ptr = start;
    out->len = (size_t)(rd->p - start);
    out->n = n;
    return PROTO_OK;
}

int proto_attempts_next(const proto_attempts_t *at, size_t *pos, proto_attempt_t *out,
                        proto_error_t *err)
{
    if (!at->ptr || *pos >= at->len) {
        return 0;
    }
    proto_rd_t rd;
    proto_rd_init(&rd, at->ptr, at->len);
    rd.p += *pos;
    /* The entry's index, for messages only: counted from the start. */
    s_att_t a = {.rd = &rd, .err = err, .out = out, .index = 0};
    int rc = s_attempt(&a);
    if (rc != PROTO_OK) {
        return rc;
    }
    *pos = proto_rd_offset(&rd);
    return 1;
}

/* Encoder ------------------------------------------------------------------- */

#define s_key(pk, lit) proto_pack_key((pk), "" lit, sizeof(lit) - 1)

static void s_pack_attempt(msgpack_packer *pk, const proto_attempt_t *a)
{
    uint32_t n = 3 + (a->decision != 0) + (a->latency_ms >= 0) + (a->ttft_ms >= 0) +
                 (a->tokens_per_s >= 0) + (a->prompt_tokens >= 0) + (a->completion_tokens >= 0) +
                 (a->cached_tokens >= 0) + (a->reasoning_tokens >= 0) + (a->cost_usd >= 0);
    msgpack_pack_map(pk, n);
    if (a->decision != 0) {
        s_key(pk, "decision");
        msgpack_pack_uint64(pk, a->decision);
    }
    s_key(pk, "model");
    proto_pack_strn(pk, a->model.ptr, a->model.len);
    s_key(pk, "provider");
    proto_pack_strn(pk, a->provider.ptr, a->provider.len);
    if (a->error != PROTO_XERR_NONE) {
        s_key(pk, "error");
        proto_pack_cstr(pk, proto_xerr_name(a->error));
    } else {
        s_key(pk, "status");
        msgpack_pack_uint32(pk, a->status);
    }
    const struct {
        const char *key;
        double v;
    } nums[] = {
        {"latency_ms", a->latency_ms}, {"ttft_ms", a->ttft_ms}, {"tokens_per_s", a->tokens_per_s}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (nums[i].v >= 0) {
            proto_pack_key(pk, nums[i].key, strlen(nums[i].key));
            msgpack_pack_double(pk, nums[i].v);
        }
    }
    const struct {
        const char *key;
        int64_t v;
    } toks[] = {{"prompt_tokens", a->prompt_tokens},
                {"completion_tokens", a->completion_tokens},
                {"cached_tokens", a->cached_tokens},
                {"reasoning_tokens", a->reasoning_tokens}};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        if (toks[i].v >= 0) {
            proto_pack_key(pk, toks[i].key, strlen(toks[i].key));
            msgpack_pack_int64(pk, toks[i].v);
        }
    }
    if (a->cost_usd >= 0) {
        s_key(pk, "cost_usd");
        msgpack_pack_double(pk, a->cost_usd);
    }
}

int proto_report_encode(proto_buf_t *b, const proto_id_t *id, const proto_attempt_t *attempts,
                        size_t n, bool ack)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    bool has_id = id && id->kind != PROTO_ID_NONE;
    msgpack_pack_map(&pk, 3 + has_id + ack);
    s_key(&pk, "v");
    msgpack_pack_uint32(&pk, PROTO_VERSION);
    if (has_id) {
        s_key(&pk, "id");
        proto_pack_id(&pk, id);
    }
    s_key(&pk, "op");
    proto_pack_cstr(&pk, "report");
    if (ack) {
        s_key(&pk, "ack");
        msgpack_pack_true(&pk);
    }
    s_key(&pk, "attempts");
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        s_pack_attempt(&pk, &attempts[i]);
    }
    return b->overflow ? PROTO_ERR_NOSPACE : PROTO_OK;
}

int proto_reply_report(proto_buf_t *b, const proto_id_t *id, uint32_t attempts)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    bool has_id = id && id->kind != PROTO_ID_NONE;
    msgpack_pack_map(&pk, 3 + has_id);
    s_key(&pk, "v");
    msgpack_pack_uint32(&pk, PROTO_VERSION);
    if (has_id) {
        s_key(&pk, "id");
        proto_pack_id(&pk, id);
    }
    s_key(&pk, "ok");
    msgpack_pack_true(&pk);
    s_key(&pk, "attempts");
    msgpack_pack_uint32(&pk, attempts);
    return b->overflow ? PROTO_ERR_NOSPACE : PROTO_OK;
}

uint32_t proto_attempts_all(const proto_attempts_t *at, proto_attempt_t out[PROTO_MAX_ATTEMPTS])
{
    size_t pos = 0;
    uint32_t n = 0;
    while (n < PROTO_MAX_ATTEMPTS && proto_attempts_next(at, &pos, &out[n], NULL) == 1) {
        n++;
    }
    return n;
}
