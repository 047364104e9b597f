/* proto_request.c - the request map: decoder (engine) and encoder (clients).
 *
 * The decoder walks the top-level map once with the bounds-checked reader and
 * dispatches each key through a table; the value is type- and range-checked
 * and stored straight into hpp_features_t, strings borrowed from the frame.
 * Unknown keys are skipped (forward compatibility), a known key given twice
 * is an error (two meanings for one request). Nothing is allocated, so the
 * decoder is safe on the hot path and in the fuzzer.
 *
 * When a request is rejected its id is still looked up with a second,
 * forgiving pass, so a pipelining client can match the error to its request.
 */
#include "proto_mp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Names ------------------------------------------------------------------- */

static const char *const s_op_names[PROTO_OP_COUNT] = {
    [PROTO_OP_ROUTE] = "route",   [PROTO_OP_EXPLAIN] = "explain", [PROTO_OP_MODELS] = "models",
    [PROTO_OP_STATS] = "stats",   [PROTO_OP_RELOAD] = "reload",   [PROTO_OP_PING] = "ping",
    [PROTO_OP_REPORT] = "report", [PROTO_OP_LEDGER] = "ledger",
};

static const char *const s_ledger_actions[PROTO_LEDGER_COUNT] = {
    [PROTO_LEDGER_NONE] = "none",         [PROTO_LEDGER_KEY] = "key",
    [PROTO_LEDGER_TOPUP] = "topup",       [PROTO_LEDGER_SET_BALANCE] = "set_balance",
    [PROTO_LEDGER_ACCOUNTS] = "accounts",
};

const char *proto_ledger_action_name(proto_ledger_action_t a)
{
    return (unsigned)a < PROTO_LEDGER_COUNT ? s_ledger_actions[a] : "none";
}

bool proto_ledger_action_admin(proto_ledger_action_t a)
{
    return a == PROTO_LEDGER_TOPUP || a == PROTO_LEDGER_SET_BALANCE || a == PROTO_LEDGER_ACCOUNTS;
}

const char *proto_op_name(proto_op_t op)
{
    if ((unsigned)op < PROTO_OP_COUNT) {
        return s_op_names[op];
    }
    return "unknown";
}

int proto_op_from_name(const char *name, size_t len)
{
    for (int i = 0; i < PROTO_OP_COUNT; i++) {
        if (strlen(s_op_names[i]) == len && memcmp(s_op_names[i], name, len) == 0) {
            return i;
        }
    }
    return -1;
}

static const char *const s_err_names[PROTO_ERR_COUNT] = {
    "ok",    "truncated", "malformed", "too_large",  "not_map",  "type",    "range", "missing",
    "limit", "duplicate", "version",   "unknown_op", "envelope", "nospace", "depth", "engine",
};

const char *proto_err_name(int code)
{
    if (code <= 0 && -code < PROTO_ERR_COUNT) {
        return s_err_names[-code];
    }
    return "unknown";
}

hpp_status_t proto_err_status(int code)
{
    switch (code) {
    case PROTO_OK:
        return HPP_OK;
    case PROTO_ERR_UNKNOWN_OP:
        return HPP_E_UNKNOWN_OP;
    case PROTO_ERR_NOSPACE:
        return HPP_E_INTERNAL;
    default:
        return HPP_E_BAD_REQUEST;
    }
}

bool proto_id_equal(const proto_id_t *a, const proto_id_t *b)
{
    if (a->kind != b->kind) {
        return false;
    }
    switch (a->kind) {
    case PROTO_ID_UINT:
        return a->num == b->num;
    case PROTO_ID_STR:
        return a->str.len == b->str.len &&
               (a->str.len == 0 || memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0);
    default:
        return true;
    }
}

void proto_request_init(proto_request_t *req, proto_op_t op)
{
    memset(req, 0, sizeof *req);
    req->v = PROTO_VERSION;
    req->op = op;
    hpp_features_init(&req->features);
}

/* Decoder ----------------------------------------------------------------- */

/* Context of one decode: the reader, the output and the error. */
typedef struct {
    proto_rd_t rd;        /* cursor */
    proto_request_t *out; /* being filled */
    proto_error_t *err;   /* where failures go */
    size_t voff;          /* offset of the current value */
    const char *key;      /* name of the current key, for messages */
    const char *elem;     /* inside an array or map: "", " key" or " value"; else NULL */
    uint32_t index;       /* the element's index, when elem is set */
    char name[48];        /* "key[index]elem", formatted only for a message */
} s_dec_t;

/* The current key's name for a message: "hints[2]" inside an element. The
 * element's name is only put together here, on the error path, so that a
 * good request pays nothing for it. */
static const char *s_name(s_dec_t *d)
{
    if (!d->elem) {
        return d->key;
    }
    snprintf(d->name, sizeof d->name, "%s[%u]%s", d->key, d->index, d->elem);
    return d->name;
}

/* What a value is, for "got ..." in messages: a negative integer shows its value. */
static const char *s_got(const proto_mp_val_t *v, char *buf, size_t n)
{
    if (v->type == PROTO_MP_INT) {
        snprintf(buf, n, "%lld", (long long)v->i);
        return buf;
    }
    return proto_mp_type_name(v->type);
}

static int s_type(s_dec_t *d, const proto_mp_val_t *v, const char *expected)
{
    char got[32];
    return proto_fail(d->err, PROTO_ERR_TYPE, d->voff, "%s: expected %s, got %s", s_name(d),
                      expected, s_got(v, got, sizeof got));
}

/* A non-negative integer <= max. */
static int s_uint(s_dec_t *d, const proto_mp_val_t *v, uint64_t max, uint64_t *out)
{
    if (v->type == PROTO_MP_INT) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff,
                          "%s: expected non-negative integer, got %lld", s_name(d),
                          (long long)v->i);
    }
    if (v->type != PROTO_MP_UINT) {
        return s_type(d, v, "non-negative integer");
    }
    if (v->u > max) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "%s: %llu exceeds the maximum %llu",
                          s_name(d), (unsigned long long)v->u, (unsigned long long)max);
    }
    *out = v->u;
    return PROTO_OK;
}

/* A string of at most max bytes; min_len 1 rejects "". */
static int s_str(s_dec_t *d, const proto_mp_val_t *v, uint32_t max, uint32_t min_len,
                 hpp_str_t *out)
{
    if (v->type != PROTO_MP_STR) {
        return s_type(d, v, "string");
    }
    if (v->len > max) {
        return proto_fail(d->err, PROTO_ERR_LIMIT, d->voff, "%s: string of %u bytes exceeds %u",
                          s_name(d), v->len, max);
    }
    if (v->len < min_len) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "%s: empty string", s_name(d));
    }
    out->ptr = v->ptr;
    out->len = v->len;
    return PROTO_OK;
}

static int s_key_v(s_dec_t *d, const proto_mp_val_t *v)
{
    uint64_t n = 0;
    int rc = s_uint(d, v, UINT32_MAX, &n);
    if (rc != PROTO_OK) {
        return rc;
    }
    if (n != PROTO_VERSION) {
        return proto_fail(d->err, PROTO_ERR_VERSION, d->voff,
                          "v: unsupported protocol version %llu (this side speaks %d)",
                          (unsigned long long)n, PROTO_VERSION);
    }
    d->out->v = (uint32_t)n;
    return PROTO_OK;
}

static int s_key_id(s_dec_t *d, const proto_mp_val_t *v)
{
    proto_id_t *id = &d->out->id;
    if (v->type == PROTO_MP_UINT) {
        id->kind = PROTO_ID_UINT;
        id->num = v->u;
        return PROTO_OK;
    }
    if (v->type == PROTO_MP_STR) {
        hpp_str_t s;
        int rc = s_str(d, v, PROTO_MAX_ID, 0, &s);
        if (rc == PROTO_OK) {
            id->kind = PROTO_ID_STR;
            id->str = s;
        }
        return rc;
    }
    return s_type(d, v, "non-negative integer or string");
}

/* Copies up to n bytes as printable ASCII for quoting client text. */
static void s_printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t i = 0;
    for (; i < len && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    dst[i] = '\0';
}

static int s_key_op(s_dec_t *d, const proto_mp_val_t *v)
{
    if (v->type != PROTO_MP_STR) {
        return s_type(d, v, "string");
    }
    int op = proto_op_from_name(v->ptr, v->len);
    if (op < 0) {
        char shown[33];
        s_printable(shown, sizeof shown, v->ptr, v->len);
        return proto_fail(d->err, PROTO_ERR_UNKNOWN_OP, d->voff,
                          "op: unknown operation \"%s\" (expected one of route, explain, models, "
                          "stats, reload, ping, report, ledger)",
                          shown);
    }
    d->out->op = (proto_op_t)op;
    return PROTO_OK;
}

static int s_key_model(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_str(d, v, HPP_MAX_MODEL_LEN, 0, &d->out->features.model);
}

/* A non-negative integer whose range is the contract's rule `check`
 * (hpp_request.h): the decoder checks the type, the contract the value. */
static int s_count(s_dec_t *d, const proto_mp_val_t *v, const char *(*check)(int64_t), int64_t *out)
{
    uint64_t n = 0;
    int rc = s_uint(d, v, UINT64_MAX, &n);
    if (rc != PROTO_OK) {
        return rc;
    }
    const char *why = check(n > (uint64_t)INT64_MAX ? -1 : (int64_t)n);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "%s: %s, got %llu", s_name(d), why,
                          (unsigned long long)n);
    }
    *out = (int64_t)n;
    return PROTO_OK;
}

static int s_tokens(s_dec_t *d, const proto_mp_val_t *v, int64_t *out)
{
    return s_count(d, v, hpp_check_tokens, out);
}

static int s_key_prompt(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_tokens(d, v, &d->out->features.prompt_tokens);
}

static int s_key_output(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_tokens(d, v, &d->out->features.output_tokens);
}

static int s_key_cache_read(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_tokens(d, v, &d->out->features.cache_read_tokens);
}

static int s_key_cache_write(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_tokens(d, v, &d->out->features.cache_write_tokens);
}

static int s_key_reasoning(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_tokens(d, v, &d->out->features.reasoning_tokens);
}

static int s_key_images(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_count(d, v, hpp_check_images, &d->out->features.images);
}

static int s_flag(s_dec_t *d, const proto_mp_val_t *v, bool *out)
{
    if (v->type != PROTO_MP_BOOL) {
        return s_type(d, v, "boolean");
    }
    *out = v->b;
    return PROTO_OK;
}

static int s_key_vision(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_flag(d, v, &d->out->features.vision);
}

static int s_key_tools(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_flag(d, v, &d->out->features.tools);
}

static int s_key_json(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_flag(d, v, &d->out->features.json);
}

/* An array of at most maxn strings of 1..maxlen bytes, each also passing the
 * contract's rule `check` when there is one (provider names, model ids). */
static int s_str_array(s_dec_t *d, const proto_mp_val_t *v, uint32_t maxn, uint32_t maxlen,
                       const char *(*check)(hpp_str_t), hpp_str_t *out, uint32_t *nout)
{
    if (v->type != PROTO_MP_ARRAY) {
        return s_type(d, v, "array of strings");
    }
    if (v->n > maxn) {
        return proto_fail(d->err, PROTO_ERR_LIMIT, d->voff, "%s: %u entries exceed the maximum %u",
                          d->key, v->n, maxn);
    }
    for (uint32_t i = 0; i < v->n; i++) {
        proto_mp_val_t e;
        d->voff = proto_rd_offset(&d->rd);
        int rc = proto_rd_next(&d->rd, &e);
        if (rc != PROTO_OK) {
            return proto_fail(d->err, rc, d->voff, "%s[%u]: %s", d->key, i,
                              rc == PROTO_ERR_TRUNCATED ? "frame ends inside the value"
                                                        : "invalid msgpack byte");
        }
        d->elem = "";
        d->index = i;
        rc = s_str(d, &e, maxlen, 1, &out[i]);
        const char *why = rc == PROTO_OK && check ? check(out[i]) : NULL;
        if (why) {
            rc = proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "%s: %s", s_name(d), why);
        }
        d->elem = NULL;
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    *nout = v->n;
    return PROTO_OK;
}

static int s_key_hints(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    return s_str_array(d, v, HPP_MAX_HINTS, HPP_MAX_HINT_LEN, NULL, f->hints, &f->nhints);
}

static int s_providers(s_dec_t *d, const proto_mp_val_t *v, hpp_str_t *out, uint32_t *nout)
{
    return s_str_array(d, v, HPP_MAX_PROVIDERS, HPP_MAX_PROVIDER_LEN, hpp_check_provider, out,
                       nout);
}

static int s_key_prov_order(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    return s_providers(d, v, f->providers_order, &f->nproviders_order);
}

static int s_key_prov_only(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    return s_providers(d, v, f->providers_only, &f->nproviders_only);
}

static int s_key_prov_ignore(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    return s_providers(d, v, f->providers_ignore, &f->nproviders_ignore);
}

static int s_key_models(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    return s_str_array(d, v, HPP_MAX_MODELS, HPP_MAX_MODEL_LEN, hpp_check_model_id, f->models,
                       &f->nmodels);
}

static int s_key_allow_fallbacks(s_dec_t *d, const proto_mp_val_t *v)
{
    bool allow = true;
    int rc = s_flag(d, v, &allow);
    d->out->features.no_fallbacks = !allow;
    return rc;
}

static int s_key_sort(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_str_t s;
    int rc = s_str(d, v, 32, 0, &s);
    if (rc != PROTO_OK) {
        return rc;
    }
    const char *why = hpp_check_sort(s, &d->out->features.sort);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "providers_sort: %s", why);
    }
    return PROTO_OK;
}

/* The components of max_price, by wire name. */
static const struct {
    const char *name;
    uint32_t bit;
} s_max_price_keys[] = {
    {"prompt", HPP_MAXP_PROMPT},
    {"completion", HPP_MAXP_COMPLETION},
    {"request", HPP_MAXP_REQUEST},
    {"image", HPP_MAXP_IMAGE},
};

/* Reads the next value of a container, naming `what` when the frame is broken. */
static int s_next(s_dec_t *d, proto_mp_val_t *e, const char *what)
{
    d->voff = proto_rd_offset(&d->rd);
    int rc = proto_rd_next(&d->rd, e);
    if (rc != PROTO_OK) {
        return proto_fail(d->err, rc, d->voff, "%s: %s", what,
                          rc == PROTO_ERR_TRUNCATED ? "frame ends inside the value"
                                                    : "invalid msgpack byte");
    }
    return PROTO_OK;
}

/* The component of max_price named by key k, or -1. */
static int s_max_price_key(const proto_mp_val_t *k)
{
    for (size_t c = 0; c < sizeof s_max_price_keys / sizeof s_max_price_keys[0]; c++) {
        if (k->type == PROTO_MP_STR && strlen(s_max_price_keys[c].name) == k->len &&
            memcmp(s_max_price_keys[c].name, k->ptr, k->len) == 0) {
            return (int)c;
        }
    }
    return -1;
}

static int s_key_max_price(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_max_price_t *mp = &d->out->features.max_price;
    if (v->type != PROTO_MP_MAP) {
        return s_type(d, v, "map of numbers");
    }
    uint32_t seen = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        proto_mp_val_t k, e;
        int rc = s_next(d, &k, "max_price");
        if (rc != PROTO_OK) {
            return rc;
        }
        int c = s_max_price_key(&k);
        if (c < 0) {
            /* Not skipped like an unknown top-level key: a limit the engine
             * does not know would be a limit silently not applied. */
            char shown[33];
            if (k.type == PROTO_MP_STR) {
                s_printable(shown, sizeof shown, k.ptr, k.len);
            } else {
                snprintf(shown, sizeof shown, "(%s)", proto_mp_type_name(k.type));
            }
            return proto_fail(d->err, PROTO_ERR_RANGE, d->voff,
                              "max_price: unknown key \"%s\" (expected one of prompt, "
                              "completion, request, image)",
                              shown);
        }
        const char *name = s_max_price_keys[c].name;
        if (seen & s_max_price_keys[c].bit) {
            return proto_fail(d->err, PROTO_ERR_DUPLICATE, d->voff, "max_price.%s: given twice",
                              name);
        }
        seen |= s_max_price_keys[c].bit;
        if ((rc = s_next(d, &e, "max_price")) != PROTO_OK) {
            return rc;
        }
        double usd;
        if (e.type == PROTO_MP_NIL) {
            continue; /* nil means absent, as everywhere */
        } else if (e.type == PROTO_MP_UINT) {
            usd = (double)e.u;
        } else if (e.type == PROTO_MP_INT) {
            usd = (double)e.i; /* rejected below with the range message */
        } else if (e.type == PROTO_MP_FLOAT) {
            usd = e.f;
        } else {
            char got[32];
            return proto_fail(d->err, PROTO_ERR_TYPE, d->voff,
                              "max_price.%s: expected non-negative number, got %s", name,
                              s_got(&e, got, sizeof got));
        }
        const char *why = hpp_max_price_set(mp, s_max_price_keys[c].bit, usd);
        if (why) {
            return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "max_price.%s: %s, got %g", name,
                              why, usd);
        }
    }
    return PROTO_OK;
}

static int s_key_budget(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    double usd;
    if (v->type == PROTO_MP_UINT) {
        usd = (double)v->u;
    } else if (v->type == PROTO_MP_INT) {
        usd = (double)v->i; /* rejected below with the range message */
    } else if (v->type == PROTO_MP_FLOAT) {
        usd = v->f;
    } else {
        return s_type(d, v, "non-negative number");
    }
    const char *why = hpp_check_budget(usd);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "budget_usd: %s, got %g", why, usd);
    }
    f->has_budget = true;
    f->budget_usd = usd;
    return PROTO_OK;
}

static int s_key_group(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_str(d, v, HPP_MAX_GROUP_LEN, 0, &d->out->features.group);
}

static int s_key_text(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_str(d, v, HPP_MAX_TEXT_LEN, 0, &d->out->features.text);
}

static int s_key_meta(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_features_t *f = &d->out->features;
    if (v->type != PROTO_MP_MAP) {
        return s_type(d, v, "map of strings");
    }
    if (v->n > HPP_MAX_META) {
        return proto_fail(d->err, PROTO_ERR_LIMIT, d->voff,
                          "meta: %u entries exceed the maximum %d", v->n, HPP_MAX_META);
    }
    for (uint32_t i = 0; i < v->n; i++) {
        for (int half = 0; half < 2; half++) {
            proto_mp_val_t e;
            d->voff = proto_rd_offset(&d->rd);
            int rc = proto_rd_next(&d->rd, &e);
            if (rc != PROTO_OK) {
                return proto_fail(d->err, rc, d->voff, "meta: %s",
                                  rc == PROTO_ERR_TRUNCATED ? "frame ends inside the value"
                                                            : "invalid msgpack byte");
            }
            d->elem = half ? " value" : " key";
            d->index = i;
            rc = half ? s_str(d, &e, HPP_MAX_META_VAL_LEN, 0, &f->meta_vals[i])
                      : s_str(d, &e, HPP_MAX_META_KEY_LEN, 1, &f->meta_keys[i]);
            d->elem = NULL;
            if (rc != PROTO_OK) {
                return rc;
            }
        }
    }
    f->nmeta = v->n;
    return PROTO_OK;
}

/* A non-negative finite number, checked by the contract's rule `check`. */
static int s_pref(s_dec_t *d, const proto_mp_val_t *v, const char *(*check)(double), double *out)
{
    double x;
    if (v->type == PROTO_MP_UINT) {
        x = (double)v->u;
    } else if (v->type == PROTO_MP_INT) {
        x = (double)v->i;
    } else if (v->type == PROTO_MP_FLOAT) {
        x = v->f;
    } else {
        return s_type(d, v, "non-negative number");
    }
    const char *why = check(x);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "%s: %s, got %g", d->key, why, x);
    }
    *out = x;
    return PROTO_OK;
}

static int s_key_max_latency(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_pref(d, v, hpp_check_max_latency, &d->out->features.max_latency_s);
}

static int s_key_min_throughput(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_pref(d, v, hpp_check_min_throughput, &d->out->features.min_throughput);
}

static int s_key_attempts(s_dec_t *d, const proto_mp_val_t *v)
{
    if (v->type != PROTO_MP_ARRAY) {
        return s_type(d, v, "array of maps");
    }
    return proto_attempts_check(&d->rd, v->n, &d->out->attempts, d->err);
}

static int s_key_ack(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_flag(d, v, &d->out->ack);
}

/* `key`: the hash of the caller's API key (route, explain, ledger). */
static int s_key_key(s_dec_t *d, const proto_mp_val_t *v)
{
    hpp_str_t k;
    int rc = s_str(d, v, HPP_KEY_HASH_LEN, 0, &k);
    if (rc != PROTO_OK) {
        return rc;
    }
    const char *why = hpp_check_key_hash(k);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff, "key: %s", why);
    }
    d->out->features.key = k;
    return PROTO_OK;
}

static int s_key_action(s_dec_t *d, const proto_mp_val_t *v)
{
    if (v->type != PROTO_MP_STR) {
        return s_type(d, v, "string");
    }
    for (int a = PROTO_LEDGER_NONE + 1; a < PROTO_LEDGER_COUNT; a++) {
        if (strlen(s_ledger_actions[a]) == v->len &&
            memcmp(s_ledger_actions[a], v->ptr, v->len) == 0) {
            d->out->ledger.action = (proto_ledger_action_t)a;
            return PROTO_OK;
        }
    }
    char shown[33];
    s_printable(shown, sizeof shown, v->ptr, v->len);
    return proto_fail(d->err, PROTO_ERR_RANGE, d->voff,
                      "action: unknown ledger action \"%s\" (expected one of key, topup, "
                      "set_balance, accounts)",
                      shown);
}

static int s_key_account(s_dec_t *d, const proto_mp_val_t *v)
{
    int rc = s_str(d, v, PROTO_MAX_ACCOUNT_LEN, 1, &d->out->ledger.account);
    for (uint32_t i = 0; rc == PROTO_OK && i < d->out->ledger.account.len; i++) {
        unsigned char c = (unsigned char)d->out->ledger.account.ptr[i];
        if (c <= 0x20 || c == 0x7f) {
            return proto_fail(d->err, PROTO_ERR_RANGE, d->voff,
                              "account: control byte or space at byte %u", i);
        }
    }
    return rc;
}

/* An amount of USD: a number of magnitude <= PROTO_MAX_LEDGER_USD, converted
 * to picodollars once, here; `positive` refuses zero and below. */
static int s_ledger_usd(s_dec_t *d, const proto_mp_val_t *v, bool positive)
{
    double usd;
    if (v->type == PROTO_MP_UINT) {
        usd = (double)v->u;
    } else if (v->type == PROTO_MP_INT) {
        usd = (double)v->i;
    } else if (v->type == PROTO_MP_FLOAT) {
        usd = v->f;
    } else {
        return s_type(d, v, "number");
    }
    if (!isfinite(usd) || fabs(usd) > PROTO_MAX_LEDGER_USD || (positive && usd <= 0)) {
        return proto_fail(d->err, PROTO_ERR_RANGE, d->voff,
                          "%s: must be a %snumber of USD %s%d, got %g", d->key,
                          positive ? "positive " : "", positive ? "up to " : "from -1000000 to ",
                          PROTO_MAX_LEDGER_USD, usd);
    }
    hpp_pusd_t pd = 0;
    (void)hpp_pusd_from_double(fabs(usd), 12, &pd); /* in range: cannot fail */
    d->out->ledger.amount_pd = usd < 0 ? -pd : pd;
    d->out->ledger.has_amount = true;
    return PROTO_OK;
}

static int s_key_amount(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_ledger_usd(d, v, true);
}

static int s_key_balance(s_dec_t *d, const proto_mp_val_t *v)
{
    return s_ledger_usd(d, v, false);
}

typedef int (*s_key_fn)(s_dec_t *d, const proto_mp_val_t *v);

#define S_KEY(lit) "" lit, sizeof(lit) - 1

/* Every key the request map knows; order is the bit in the `seen` mask. */
static const struct {
    const char *name; /* wire key */
    uint32_t len;     /* its length: every key of every request is looked up */
    s_key_fn fn;      /* checks and stores the value */
    bool optional;    /* nil means absent (PROTOCOL.md); required keys refuse it */
} s_keys[] = {
    {S_KEY("v"), s_key_v, false},
    {S_KEY("id"), s_key_id, true},
    {S_KEY("op"), s_key_op, false},
    {S_KEY("model"), s_key_model, true},
    {S_KEY("prompt_tokens"), s_key_prompt, false},
    {S_KEY("output_tokens"), s_key_output, true},
    {S_KEY("cache_read_tokens"), s_key_cache_read, true},
    {S_KEY("images"), s_key_images, true},
    {S_KEY("vision"), s_key_vision, true},
    {S_KEY("tools"), s_key_tools, true},
    {S_KEY("json"), s_key_json, true},
    {S_KEY("hints"), s_key_hints, true},
    {S_KEY("budget_usd"), s_key_budget, true},
    {S_KEY("group"), s_key_group, true},
    {S_KEY("text"), s_key_text, true},
    {S_KEY("meta"), s_key_meta, true},
    {S_KEY("providers_order"), s_key_prov_order, true},
    {S_KEY("providers_only"), s_key_prov_only, true},
    {S_KEY("providers_ignore"), s_key_prov_ignore, true},
    {S_KEY("allow_fallbacks"), s_key_allow_fallbacks, true},
    {S_KEY("providers_sort"), s_key_sort, true},
    {S_KEY("max_price"), s_key_max_price, true},
    {S_KEY("models"), s_key_models, true},
    {S_KEY("cache_write_tokens"), s_key_cache_write, true},
    {S_KEY("reasoning_tokens"), s_key_reasoning, true},
    {S_KEY("attempts"), s_key_attempts, false},
    {S_KEY("ack"), s_key_ack, true},
    {S_KEY("preferred_max_latency"), s_key_max_latency, true},
    {S_KEY("preferred_min_throughput"), s_key_min_throughput, true},
    {S_KEY("key"), s_key_key, true},
    {S_KEY("action"), s_key_action, false},
    {S_KEY("account"), s_key_account, false},
    {S_KEY("amount_usd"), s_key_amount, false},
    {S_KEY("balance_usd"), s_key_balance, false},
};
_Static_assert(sizeof s_keys / sizeof s_keys[0] <= 64, "the `seen` mask has 64 bits");

enum {
    S_KEY_V = 0,
    S_KEY_ID = 1,
    S_KEY_OP = 2,
    S_KEY_PROMPT = 4,
    S_KEY_ATTEMPTS = 25,
    S_KEY_KEY = 29,
    S_KEY_ACTION = 30,
    S_KEY_ACCOUNT = 31,
    S_KEY_AMOUNT = 32,
    S_KEY_BALANCE = 33,
};

/* The request map has more keys than proto_key_once's 32-bit mask. */
static int s_key_once(uint64_t *seen, unsigned index, const char *name, size_t koff,
                      proto_error_t *err)
{
    if (*seen & (UINT64_C(1) << index)) {
        return proto_fail(err, PROTO_ERR_DUPLICATE, koff, "%s: duplicate key", name);
    }
    *seen |= UINT64_C(1) << index;
    return PROTO_OK;
}

#define S_SEEN(k) (seen & (UINT64_C(1) << (k)))
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

static int s_find_key(const char *name, uint32_t len)
{
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (s_keys[i].len == len && memcmp(s_keys[i].name, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int s_rd_fail(s_dec_t *d, int rc, const char *what)
{
    return proto_fail(d->err, rc, proto_rd_offset(&d->rd), "%s: %s", what,
                      rc == PROTO_ERR_TRUNCATED ? "frame ends inside the value"
                                                : "invalid msgpack byte 0xc1");
}

/* Second pass after a failure: the id alone, ignoring anything else wrong. */
static void s_salvage_id(const void *buf, size_t len, proto_id_t *id)
{
    proto_rd_t rd;
    proto_mp_val_t v;
    proto_rd_init(&rd, buf, len);
    if (proto_rd_next(&rd, &v) != PROTO_OK || v.type != PROTO_MP_MAP) {
        return;
    }
    for (uint32_t i = 0; i < v.n; i++) {
        proto_mp_val_t k, val;
        if (proto_rd_next(&rd, &k) != PROTO_OK) {
            return;
        }
        bool is_id = k.type == PROTO_MP_STR && k.len == 2 && memcmp(k.ptr, "id", 2) == 0;
        if (!is_id) {
            if ((k.type == PROTO_MP_ARRAY || k.type == PROTO_MP_MAP) && k.n > 0) {
                return; /* a container key: give up rather than guess */
            }
            if (proto_rd_skip(&rd) != PROTO_OK) {
                return;
            }
            continue;
        }
        if (proto_rd_next(&rd, &val) != PROTO_OK) {
            return;
        }
        if (val.type == PROTO_MP_UINT) {
            *id = proto_id_uint(val.u);
        } else if (val.type == PROTO_MP_STR && val.len <= PROTO_MAX_ID) {
            id->kind = PROTO_ID_STR;
            id->str.ptr = val.ptr;
            id->str.len = val.len;
        }
        return;
    }
}

/* The arguments each ledger action needs, and none it does not take. */
static int s_ledger_args(s_dec_t *d, uint64_t seen)
{
    static const struct {
        uint64_t need; /* keys required */
        const char *names;
    } rules[PROTO_LEDGER_COUNT] = {
        [PROTO_LEDGER_KEY] = {UINT64_C(1) << S_KEY_KEY, "key"},
        [PROTO_LEDGER_TOPUP] = {(UINT64_C(1) << S_KEY_ACCOUNT) | (UINT64_C(1) << S_KEY_AMOUNT),
                                "account and amount_usd"},
        [PROTO_LEDGER_SET_BALANCE] = {(UINT64_C(1) << S_KEY_ACCOUNT) |
                                          (UINT64_C(1) << S_KEY_BALANCE),
                                      "account and balance_usd"},
        [PROTO_LEDGER_ACCOUNTS] = {0, "no argument"},
    };
    const uint64_t args = (UINT64_C(1) << S_KEY_KEY) | (UINT64_C(1) << S_KEY_ACCOUNT) |
                          (UINT64_C(1) << S_KEY_AMOUNT) | (UINT64_C(1) << S_KEY_BALANCE);
    proto_ledger_action_t a = d->out->ledger.action;
    if (a == PROTO_LEDGER_NONE) {
        return proto_fail(d->err, PROTO_ERR_MISSING, 0, "action: required key missing for ledger");
    }
    if ((seen & args) != rules[a].need) {
        return proto_fail(
            d->err, (seen & rules[a].need) != rules[a].need ? PROTO_ERR_MISSING : PROTO_ERR_RANGE,
            0, "ledger %s: takes %s", s_ledger_actions[a], rules[a].names);
    }
    return PROTO_OK;
}

static int s_decode_map(s_dec_t *d, size_t len)
{
    proto_mp_val_t top;
    if (len == 0) {
        return proto_fail(d->err, PROTO_ERR_NOT_MAP, 0, "empty frame: expected a msgpack map");
    }
    if (len > PROTO_MAX_FRAME) {
        return proto_fail(d->err, PROTO_ERR_TOO_LARGE, 0, "frame of %zu bytes exceeds %d", len,
                          PROTO_MAX_FRAME);
    }
    int rc = proto_rd_next(&d->rd, &top);
    if (rc != PROTO_OK) {
        return s_rd_fail(d, rc, "request");
    }
    if (top.type != PROTO_MP_MAP) {
        return proto_fail(d->err, PROTO_ERR_NOT_MAP, 0, "expected a map at the top level, got %s",
                          proto_mp_type_name(top.type));
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < top.n; i++) {
        proto_mp_val_t k, v;
        size_t koff = proto_rd_offset(&d->rd);
        rc = proto_rd_next(&d->rd, &k);
        if (rc != PROTO_OK) {
            return s_rd_fail(d, rc, "map key");
        }
        if (k.type != PROTO_MP_STR) {
            return proto_fail(d->err, PROTO_ERR_TYPE, koff, "map key #%u: expected string, got %s",
                              i + 1, proto_mp_type_name(k.type));
        }
        int idx = s_find_key(k.ptr, k.len);
        if (idx < 0) {
            rc = proto_rd_skip(&d->rd); /* unknown key: ignored */
            if (rc != PROTO_OK) {
                return s_rd_fail(d, rc, "value of an unknown key");
            }
            continue;
        }
        d->key = s_keys[idx].name;
        rc = s_key_once(&seen, (unsigned)idx, d->key, koff, d->err);
        if (rc != PROTO_OK) {
            return rc;
        }
        d->voff = proto_rd_offset(&d->rd);
        rc = proto_rd_next(&d->rd, &v);
        if (rc != PROTO_OK) {
            return s_rd_fail(d, rc, d->key);
        }
        if (v.type == PROTO_MP_NIL && s_keys[idx].optional) {
            /* The same as leaving the key out: the default set by
             * proto_request_init stays. Still counted in `seen`, so a nil
             * and a value for one key are two meanings and refused. */
            continue;
        }
        rc = s_keys[idx].fn(d, &v);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    if (d->rd.p != d->rd.end) {
        return proto_fail(d->err, PROTO_ERR_MALFORMED, proto_rd_offset(&d->rd),
                          "%zu bytes after the request map", (size_t)(d->rd.end - d->rd.p));
    }
    if (!S_SEEN(S_KEY_V)) {
        return proto_fail(d->err, PROTO_ERR_MISSING, 0, "v: required key missing");
    }
    if (!S_SEEN(S_KEY_OP)) {
        return proto_fail(d->err, PROTO_ERR_MISSING, 0, "op: required key missing");
    }
    proto_op_t op = d->out->op;
    if ((op == PROTO_OP_ROUTE || op == PROTO_OP_EXPLAIN) && !S_SEEN(S_KEY_PROMPT)) {
        return proto_fail(d->err, PROTO_ERR_MISSING, 0,
                          "prompt_tokens: required key missing for %s", proto_op_name(op));
    }
    if (op == PROTO_OP_REPORT && !S_SEEN(S_KEY_ATTEMPTS)) {
        return proto_fail(d->err, PROTO_ERR_MISSING, 0,
                          "attempts: required key missing for report");
    }
    if (op == PROTO_OP_LEDGER) {
        int lrc = s_ledger_args(d, seen);
        if (lrc != PROTO_OK) {
            return lrc;
        }
    }
    const hpp_features_t *f = &d->out->features;
    const char *why = hpp_check_cache_read(f->cache_read_tokens, f->prompt_tokens);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, 0, "cache_read_tokens: %s, got %lld > %lld", why,
                          (long long)f->cache_read_tokens, (long long)f->prompt_tokens);
    }
    why = hpp_check_cache_write(f->cache_write_tokens, f->cache_read_tokens, f->prompt_tokens);
    if (why) {
        return proto_fail(d->err, PROTO_ERR_RANGE, 0,
                          "cache_write_tokens: %s, got %lld + %lld cache_read_tokens > %lld", why,
                          (long long)f->cache_write_tokens, (long long)f->cache_read_tokens,
                          (long long)f->prompt_tokens);
    }
    return PROTO_OK;
}

int proto_request_decode(const void *buf, size_t len, proto_request_t *out, proto_error_t *err)
{
    s_dec_t d = {.out = out, .err = err, .key = "request"};
    proto_request_init(out, PROTO_OP_PING);
    out->v = 0;
    proto_no_error(err);
    proto_rd_init(&d.rd, buf, len);
    int rc = s_decode_map(&d, len);
    if (rc != PROTO_OK) {
        proto_id_t id = {0};
        proto_op_t op = out->op; /* when read before the failure: counts refused reports */
        s_salvage_id(buf, len, &id);
        proto_request_init(out, op);
        out->v = 0;
        out->id = id;
    }
    return rc;
}

/* Encoder ----------------------------------------------------------------- */

/* A key given as a literal: header and bytes in one write. */
#define s_key(pk, lit) proto_pack_key((pk), "" lit, sizeof(lit) - 1)

/* An array of strings under `key`, at most max of them; nothing when empty. */
static void s_pack_strs(msgpack_packer *pk, const char *key, const hpp_str_t *v, uint32_t n,
                        uint32_t max)
{
    if (n == 0) {
        return;
    }
    n = n > max ? max : n;
    proto_pack_key(pk, key, strlen(key));
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        proto_pack_strn(pk, v[i].ptr, v[i].len);
    }
}

int proto_request_encode(proto_buf_t *b, const proto_request_t *req)
{
    msgpack_packer pk;
    proto_packer_init(&pk, b);
    const hpp_features_t *f = &req->features;
    bool feat = req->op == PROTO_OP_ROUTE || req->op == PROTO_OP_EXPLAIN;
    const proto_ledger_req_t *lg = &req->ledger;
    bool ledger = req->op == PROTO_OP_LEDGER;
    uint32_t n = 2 + (req->id.kind != PROTO_ID_NONE);
    if (ledger) {
        n += (lg->action != PROTO_LEDGER_NONE) + (f->key.len > 0) + (lg->account.len > 0) +
             lg->has_amount;
    }
    if (feat) {
        n += 1 + (f->model.len > 0) + (f->output_tokens >= 0) + (f->cache_read_tokens > 0) +
             (f->cache_write_tokens > 0) + (f->reasoning_tokens > 0) + (f->images > 0) + f->vision +
             f->tools + f->json + (f->nhints > 0) + f->has_budget + (f->group.len > 0) +
             (f->text.len > 0) + (f->nmeta > 0) + (f->nproviders_order > 0) +
             (f->nproviders_only > 0) + (f->nproviders_ignore > 0) + f->no_fallbacks +
             (f->sort != HPP_SORT_DEFAULT) + (f->max_price.set != 0) + (f->nmodels > 0) +
             (f->max_latency_s > 0) + (f->min_throughput > 0) + (f->key.len > 0);
    }
    msgpack_pack_map(&pk, n);
    s_key(&pk, "v");
    msgpack_pack_uint32(&pk, req->v ? req->v : PROTO_VERSION);
    if (req->id.kind != PROTO_ID_NONE) {
        s_key(&pk, "id");
        proto_pack_id(&pk, &req->id);
    }
    s_key(&pk, "op");
    proto_pack_cstr(&pk, proto_op_name(req->op));
    if ((feat || ledger) && f->key.len > 0) {
        s_key(&pk, "key");
        proto_pack_strn(&pk, f->key.ptr, f->key.len);
    }
    if (ledger) {
        if (lg->action != PROTO_LEDGER_NONE) {
            s_key(&pk, "action");
            proto_pack_cstr(&pk, proto_ledger_action_name(lg->action));
        }
        if (lg->account.len > 0) {
            s_key(&pk, "account");
            proto_pack_strn(&pk, lg->account.ptr, lg->account.len);
        }
        if (lg->has_amount) {
            if (lg->action == PROTO_LEDGER_SET_BALANCE) {
                s_key(&pk, "balance_usd");
            } else {
                s_key(&pk, "amount_usd");
            }
            msgpack_pack_double(&pk, hpp_pusd_to_usd(lg->amount_pd));
        }
    }
    if (feat) {
        if (f->model.len > 0) {
            s_key(&pk, "model");
            proto_pack_strn(&pk, f->model.ptr, f->model.len);
        }
        s_key(&pk, "prompt_tokens");
        msgpack_pack_int64(&pk, f->prompt_tokens);
        if (f->output_tokens >= 0) {
            s_key(&pk, "output_tokens");
            msgpack_pack_int64(&pk, f->output_tokens);
        }
        if (f->cache_read_tokens > 0) {
            s_key(&pk, "cache_read_tokens");
            msgpack_pack_int64(&pk, f->cache_read_tokens);
        }
        if (f->cache_write_tokens > 0) {
            s_key(&pk, "cache_write_tokens");
            msgpack_pack_int64(&pk, f->cache_write_tokens);
        }
        if (f->reasoning_tokens > 0) {
            s_key(&pk, "reasoning_tokens");
            msgpack_pack_int64(&pk, f->reasoning_tokens);
        }
        if (f->images > 0) {
            s_key(&pk, "images");
            msgpack_pack_int64(&pk, f->images);
        }
        if (f->vision) {
            s_key(&pk, "vision");
            msgpack_pack_true(&pk);
        }
        if (f->tools) {
            s_key(&pk, "tools");
            msgpack_pack_true(&pk);
        }
        if (f->json) {
            s_key(&pk, "json");
            msgpack_pack_true(&pk);
        }
        if (f->nhints > 0) {
            uint32_t nh = f->nhints > HPP_MAX_HINTS ? HPP_MAX_HINTS : f->nhints;
            s_key(&pk, "hints");
            msgpack_pack_array(&pk, nh);
            for (uint32_t i = 0; i < nh; i++) {
                proto_pack_strn(&pk, f->hints[i].ptr, f->hints[i].len);
            }
        }
        if (f->has_budget) {
            s_key(&pk, "budget_usd");
            msgpack_pack_double(&pk, f->budget_usd);
        }
        if (f->group.len > 0) {
            s_key(&pk, "group");
            proto_pack_strn(&pk, f->group.ptr, f->group.len);
        }
        if (f->text.len > 0) {
            s_key(&pk, "text");
            proto_pack_strn(&pk, f->text.ptr, f->text.len);
        }
        if (f->nmeta > 0) {
            uint32_t nm = f->nmeta > HPP_MAX_META ? HPP_MAX_META : f->nmeta;
            s_key(&pk, "meta");
            msgpack_pack_map(&pk, nm);
            for (uint32_t i = 0; i < nm; i++) {
                proto_pack_strn(&pk, f->meta_keys[i].ptr, f->meta_keys[i].len);
                proto_pack_strn(&pk, f->meta_vals[i].ptr, f->meta_vals[i].len);
            }
        }
        s_pack_strs(&pk, "providers_order", f->providers_order, f->nproviders_order,
                    HPP_MAX_PROVIDERS);
        s_pack_strs(&pk, "providers_only", f->providers_only, f->nproviders_only,
                    HPP_MAX_PROVIDERS);
        s_pack_strs(&pk, "providers_ignore", f->providers_ignore, f->nproviders_ignore,
                    HPP_MAX_PROVIDERS);
        if (f->no_fallbacks) {
            s_key(&pk, "allow_fallbacks");
            msgpack_pack_false(&pk);
        }
        if (f->sort != HPP_SORT_DEFAULT) {
            s_key(&pk, "providers_sort");
            proto_pack_cstr(&pk, f->sort == HPP_SORT_LATENCY      ? "latency"
                                 : f->sort == HPP_SORT_THROUGHPUT ? "throughput"
                                                                  : "price");
        }
        if (f->max_latency_s > 0) {
            s_key(&pk, "preferred_max_latency");
            msgpack_pack_double(&pk, f->max_latency_s);
        }
        if (f->min_throughput > 0) {
            s_key(&pk, "preferred_min_throughput");
            msgpack_pack_double(&pk, f->min_throughput);
        }
        if (f->max_price.set != 0) {
            /* Back to USD (per 1M tokens for the per-token parts): the wire
             * speaks what the client wrote. */
            const hpp_max_price_t *mp = &f->max_price;
            const hpp_pusd_t vals[] = {mp->prompt, mp->completion, mp->request, mp->image};
            s_key(&pk, "max_price");
            msgpack_pack_map(&pk, (size_t)__builtin_popcount(mp->set & 15u));
            for (size_t c = 0; c < sizeof s_max_price_keys / sizeof s_max_price_keys[0]; c++) {
                if (mp->set & s_max_price_keys[c].bit) {
                    bool per_token = c < 2;
                    proto_pack_cstr(&pk, s_max_price_keys[c].name);
                    msgpack_pack_double(&pk, (double)vals[c] / (per_token ? 1e6 : 1e12));
                }
            }
        }
        s_pack_strs(&pk, "models", f->models, f->nmodels, HPP_MAX_MODELS);
    }
    return b->overflow ? PROTO_ERR_NOSPACE : PROTO_OK;
}
