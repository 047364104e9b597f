/* proto_ledger.c - the `ledger` key reply, decoded for clients. */
#include "proto_ledger.h"

#include <string.h>

#include "proto_mp.h"

/* Where each reply key goes: a string, an amount (int or nil) or a count. */
typedef enum { S_STR, S_PD, S_COUNT } s_kind_t;

typedef struct {
    const char *name; /* key on the wire */
    s_kind_t kind;    /* what it holds */
    size_t off;       /* offset of the field in proto_ledger_key_t */
} s_field_t;

#define S_F(name, kind, field)                                                                     \
    {                                                                                              \
        name, kind, offsetof(proto_ledger_key_t, field)                                            \
    }
static const s_field_t s_fields[] = {
    S_F("key", S_STR, key),
    S_F("group", S_STR, group),
    S_F("account", S_STR, account),
    S_F("balance_pd", S_PD, balance_pd),
    S_F("limit_pd", S_PD, limit_pd),
    S_F("remaining_pd", S_PD, remaining_pd),
    S_F("daily_pd", S_PD, daily_pd),
    S_F("day_spent_pd", S_PD, day_spent_pd),
    S_F("spent_pd", S_PD, spent_pd),
    S_F("reserved_pd", S_PD, reserved_pd),
    S_F("account_reserved_pd", S_PD, account_reserved_pd),
    S_F("day_reserved_pd", S_PD, day_reserved_pd),
    S_F("day_requests", S_COUNT, day_requests),
    S_F("day_free_requests", S_COUNT, day_free_requests),
    S_F("requests", S_COUNT, requests),
    S_F("prompt_tokens", S_COUNT, prompt_tokens),
    S_F("completion_tokens", S_COUNT, completion_tokens),
};
#define S_NFIELDS (sizeof s_fields / sizeof s_fields[0])

static int s_value(const s_field_t *f, const proto_mp_val_t *v, proto_ledger_key_t *out, size_t off,
                   proto_error_t *err)
{
    char *at = (char *)out + f->off;
    if (f->kind == S_STR) {
        if (v->type != PROTO_MP_STR) {
            return proto_fail(err, PROTO_ERR_TYPE, off, "%s: expected string", f->name);
        }
        hpp_str_t s = {.ptr = v->ptr, .len = v->len};
        memcpy(at, &s, sizeof s);
        return PROTO_OK;
    }
    int64_t n;
    if (v->type == PROTO_MP_NIL && f->kind == S_PD) {
        n = PROTO_LEDGER_NONE_PD;
    } else if (v->type == PROTO_MP_UINT && v->u <= INT64_MAX) {
        n = (int64_t)v->u;
    } else if (v->type == PROTO_MP_INT && f->kind == S_PD && v->i != PROTO_LEDGER_NONE_PD) {
        n = v->i; /* a balance may be negative */
    } else {
        return proto_fail(err, PROTO_ERR_TYPE, off, "%s: expected %s", f->name,
                          f->kind == S_PD ? "an integer of picodollars or nil"
                                          : "a non-negative integer");
    }
    memcpy(at, &n, sizeof n);
    return PROTO_OK;
}

int proto_ledger_key_decode(const void *buf, size_t len, proto_ledger_key_t *out,
                            proto_error_t *err)
{
    memset(out, 0, sizeof *out);
    out->limit_pd = out->remaining_pd = out->daily_pd = PROTO_LEDGER_NONE_PD;
    proto_rd_t rd;
    proto_rd_init(&rd, buf, len);
    proto_mp_val_t v;
    int rc = proto_rd_next(&rd, &v);
    if (rc != PROTO_OK) {
        return proto_fail(err, rc, 0, "the reply is not msgpack");
    }
    if (v.type != PROTO_MP_MAP) {
        return proto_fail(err, PROTO_ERR_TYPE, 0, "the reply is not a map");
    }
    bool ok = false, have_key = false, have_balance = false;
    for (uint32_t i = 0; i < v.n; i++) {
        proto_mp_val_t k, val;
        size_t koff = proto_rd_offset(&rd);
        if ((rc = proto_rd_next(&rd, &k)) != PROTO_OK) {
            return proto_fail(err, rc, koff, "the reply ends early");
        }
        if (k.type != PROTO_MP_STR) {
            return proto_fail(err, PROTO_ERR_TYPE, koff, "a key of the reply is not a string");
        }
        size_t voff = proto_rd_offset(&rd);
        if ((rc = proto_rd_next(&rd, &val)) != PROTO_OK) {
            return proto_fail(err, rc, voff, "the reply ends early");
        }
        if (k.len == 2 && memcmp(k.ptr, "ok", 2) == 0) {
            ok = val.type == PROTO_MP_BOOL && val.b;
        }
        size_t f = 0;
        while (f < S_NFIELDS && !(strlen(s_fields[f].name) == k.len &&
                                  memcmp(s_fields[f].name, k.ptr, k.len) == 0)) {
            f++;
        }
        if (val.type == PROTO_MP_ARRAY || val.type == PROTO_MP_MAP) {
            /* The header is read: skip its elements, then the value counts as unknown. */
            proto_rd_t back = rd;
            rd.p = rd.start + voff;
            if ((rc = proto_rd_skip(&rd)) != PROTO_OK) {
                rd = back;
                return proto_fail(err, rc, voff, "the reply ends early");
            }
            if (f < S_NFIELDS) {
                return proto_fail(err, PROTO_ERR_TYPE, voff, "%s: expected a scalar",
                                  s_fields[f].name);
            }
            continue;
        }
        if (f == S_NFIELDS) {
            continue;
        }
        if ((rc = s_value(&s_fields[f], &val, out, voff, err)) != PROTO_OK) {
            return rc;
        }
        have_key |= f == 0;
        have_balance |= s_fields[f].off == offsetof(proto_ledger_key_t, balance_pd);
    }
    if (!ok) {
        return proto_fail(err, PROTO_ERR_RANGE, 0, "the engine refused (ok is not true)");
    }
    if (!have_key || !have_balance) {
        return proto_fail(err, PROTO_ERR_MISSING, 0, "%s: required key missing",
                          have_key ? "balance_pd" : "key");
    }
    return PROTO_OK;
}
