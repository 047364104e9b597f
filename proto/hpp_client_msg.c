/* hpp_client_msg.c - the public requests and replies of libhppclient
 * (hpprouter/client.h): setters and getters by wire key over the codec's
 * proto_request_t and proto_reply_t, and the calls that take them.
 *
 * Owns: a request's copies of its strings. Every string feature has a
 * buffer of its protocol limit inside the request, so a request is one
 * allocation and setting, resetting and reusing it allocates nothing.
 * Keys are looked up in tables, one per value type, in the order of
 * PROTOCOL.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_client.h"

#define S_STR2(x) #x
#define S_STR(x) S_STR2(x)

const char *hpp_client_version(void)
{
    return S_STR(HPP_CLIENT_VERSION_MAJOR) "." S_STR(HPP_CLIENT_VERSION_MINOR);
}

/* The three provider lists, in the order of s_lists below. */
#define S_NPLISTS 3

struct hpp_request {
    proto_request_t req;               /* what goes on the wire; strings point below */
    bool auto_id;                      /* the id was given by the client: a fresh one
                                          for each send */
    char id[PROTO_MAX_ID + 1];         /* a string id */
    char model[HPP_MAX_MODEL_LEN + 1]; /* model */
    char group[HPP_MAX_GROUP_LEN + 1]; /* group */
    char text[HPP_MAX_TEXT_LEN + 1];   /* text */
    char hints[HPP_MAX_HINTS][HPP_MAX_HINT_LEN + 1];
    char meta_keys[HPP_MAX_META][HPP_MAX_META_KEY_LEN + 1];
    char meta_vals[HPP_MAX_META][HPP_MAX_META_VAL_LEN + 1];
    char providers[S_NPLISTS][HPP_MAX_PROVIDERS][HPP_MAX_PROVIDER_LEN + 1];
    char models[HPP_MAX_MODELS][HPP_MAX_MODEL_LEN + 1];
    char err[256]; /* why the last setter failed */
};

static int s_fail(hpp_request_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_fail(hpp_request_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return HPP_ERR_ARG;
}

hpp_request_t *hpp_request_new(void)
{
    hpp_request_t *r = malloc(sizeof *r);
    if (r) {
        hpp_request_reset(r);
    }
    return r;
}

void hpp_request_reset(hpp_request_t *r)
{
    if (r) {
        proto_request_init(&r->req, PROTO_OP_ROUTE);
        r->auto_id = false;
        r->err[0] = '\0';
    }
}

void hpp_request_destroy(hpp_request_t **r_p)
{
    if (r_p) {
        free(*r_p);
        *r_p = NULL;
    }
}

const char *hpp_request_errstr(const hpp_request_t *r)
{
    return r ? r->err : "no request";
}

/* Copies `value` (at most `max` bytes) into `buf` and points *dst at it. */
static int s_copy(hpp_request_t *r, const char *key, const char *value, char *buf, size_t max,
                  hpp_str_t *dst)
{
    size_t len = strnlen(value, max + 1);
    if (len > max) {
        return s_fail(r, "%s: longer than %zu bytes", key, max);
    }
    memcpy(buf, value, len);
    buf[len] = '\0';
    dst->ptr = buf;
    dst->len = (uint32_t)len;
    return HPP_CLIENT_OK;
}

/* String features: where the view is and where its bytes are kept. */
typedef struct {
    const char *key;
    size_t view; /* offset of the hpp_str_t in hpp_features_t */
    size_t buf;  /* offset of the buffer in hpp_request_t */
    size_t max;  /* bytes */
} s_str_t;

static const s_str_t s_strs[] = {
    {"model", offsetof(hpp_features_t, model), offsetof(hpp_request_t, model), HPP_MAX_MODEL_LEN},
    {"group", offsetof(hpp_features_t, group), offsetof(hpp_request_t, group), HPP_MAX_GROUP_LEN},
    {"text", offsetof(hpp_features_t, text), offsetof(hpp_request_t, text), HPP_MAX_TEXT_LEN},
};

int hpp_request_set_str(hpp_request_t *r, const char *key, const char *value)
{
    if (!r || !key || !value) {
        return HPP_ERR_ARG;
    }
    hpp_features_t *f = &r->req.features;
    if (!strcmp(key, "op")) {
        int op = proto_op_from_name(value, strlen(value));
        if (op < 0) {
            return s_fail(r, "op: unknown operation '%.64s'", value);
        }
        r->req.op = (proto_op_t)op;
        return HPP_CLIENT_OK;
    }
    if (!strcmp(key, "id")) {
        int rc = s_copy(r, key, value, r->id, PROTO_MAX_ID, &r->req.id.str);
        if (rc == HPP_CLIENT_OK) {
            r->req.id.kind = PROTO_ID_STR;
            r->auto_id = false;
        }
        return rc;
    }
    if (!strcmp(key, "providers_sort")) {
        hpp_str_t s = {value, (uint32_t)strnlen(value, 64)};
        const char *why = hpp_check_sort(s, &f->sort);
        return why ? s_fail(r, "providers_sort: %s", why) : HPP_CLIENT_OK;
    }
    for (size_t i = 0; i < sizeof s_strs / sizeof s_strs[0]; i++) {
        if (!strcmp(key, s_strs[i].key)) {
            return s_copy(r, key, value, (char *)r + s_strs[i].buf, s_strs[i].max,
                          (hpp_str_t *)((char *)f + s_strs[i].view));
        }
    }
    return s_fail(r, "%s: not a string feature", key);
}

/* Integer features and the rule of each. */
typedef struct {
    const char *key;
    size_t off; /* of the int64_t in hpp_features_t */
    const char *(*check)(int64_t);
} s_int_t;

static const s_int_t s_ints[] = {
    {"prompt_tokens", offsetof(hpp_features_t, prompt_tokens), hpp_check_tokens},
    {"output_tokens", offsetof(hpp_features_t, output_tokens), hpp_check_tokens},
    {"cache_read_tokens", offsetof(hpp_features_t, cache_read_tokens), hpp_check_tokens},
    {"cache_write_tokens", offsetof(hpp_features_t, cache_write_tokens), hpp_check_tokens},
    {"reasoning_tokens", offsetof(hpp_features_t, reasoning_tokens), hpp_check_tokens},
    {"images", offsetof(hpp_features_t, images), hpp_check_images},
};

int hpp_request_set_int(hpp_request_t *r, const char *key, int64_t value)
{
    if (!r || !key) {
        return HPP_ERR_ARG;
    }
    if (!strcmp(key, "id")) {
        if (value < 0) {
            return s_fail(r, "id: must be a non-negative integer or a string");
        }
        r->req.id = proto_id_uint((uint64_t)value);
        r->auto_id = false;
        return HPP_CLIENT_OK;
    }
    for (size_t i = 0; i < sizeof s_ints / sizeof s_ints[0]; i++) {
        if (!strcmp(key, s_ints[i].key)) {
            const char *why = s_ints[i].check(value);
            if (why) {
                return s_fail(r, "%s: %s", key, why);
            }
            *(int64_t *)((char *)&r->req.features + s_ints[i].off) = value;
            return HPP_CLIENT_OK;
        }
    }
    return s_fail(r, "%s: not an integer feature", key);
}

/* The components of max_price and their bits. */
static const struct {
    const char *key;
    uint32_t bit;
} s_prices[] = {
    {"max_price.prompt", HPP_MAXP_PROMPT},
    {"max_price.completion", HPP_MAXP_COMPLETION},
    {"max_price.request", HPP_MAXP_REQUEST},
    {"max_price.image", HPP_MAXP_IMAGE},
};

int hpp_request_set_num(hpp_request_t *r, const char *key, double value)
{
    if (!r || !key) {
        return HPP_ERR_ARG;
    }
    hpp_features_t *f = &r->req.features;
    if (!strcmp(key, "budget_usd")) {
        const char *why = hpp_check_budget(value);
        if (why) {
            return s_fail(r, "budget_usd: %s", why);
        }
        f->budget_usd = value;
        f->has_budget = true;
        return HPP_CLIENT_OK;
    }
    if (!strcmp(key, "preferred_max_latency") || !strcmp(key, "preferred_min_throughput")) {
        bool lat = !strcmp(key, "preferred_max_latency");
        const char *why = lat ? hpp_check_max_latency(value) : hpp_check_min_throughput(value);
        if (why) {
            return s_fail(r, "%s: %s", key, why);
        }
        *(lat ? &f->max_latency_s : &f->min_throughput) = value;
        return HPP_CLIENT_OK;
    }
    for (size_t i = 0; i < sizeof s_prices / sizeof s_prices[0]; i++) {
        if (!strcmp(key, s_prices[i].key)) {
            const char *why = hpp_max_price_set(&f->max_price, s_prices[i].bit, value);
            return why ? s_fail(r, "%s: %s", key, why) : HPP_CLIENT_OK;
        }
    }
    return s_fail(r, "%s: not a number feature", key);
}

int hpp_request_set_bool(hpp_request_t *r, const char *key, bool value)
{
    if (!r || !key) {
        return HPP_ERR_ARG;
    }
    hpp_features_t *f = &r->req.features;
    bool *dst = !strcmp(key, "vision")  ? &f->vision
                : !strcmp(key, "tools") ? &f->tools
                : !strcmp(key, "json")  ? &f->json
                                        : NULL;
    if (dst) {
        *dst = value;
    } else if (!strcmp(key, "allow_fallbacks")) {
        f->no_fallbacks = !value;
    } else {
        return s_fail(r, "%s: not a boolean feature", key);
    }
    return HPP_CLIENT_OK;
}

/* A hint: 1 .. HPP_MAX_HINT_LEN bytes (s_copy checks the upper bound). */
static const char *s_check_hint(hpp_str_t s)
{
    return s.len == 0 ? "must not be empty" : NULL;
}

/* List features: their views, count, buffers and the rule of an entry. */
typedef struct {
    const char *key;
    size_t views; /* offset of the hpp_str_t array in hpp_features_t */
    size_t count; /* offset of its uint32_t count */
    size_t buf;   /* offset of the [n][max + 1] buffers in hpp_request_t */
    size_t max;   /* bytes of an entry */
    uint32_t cap; /* entries */
    const char *(*check)(hpp_str_t);
} s_list_t;

#define S_PLIST(name, i)                                                                           \
    {                                                                                              \
#name, offsetof(hpp_features_t, name), offsetof(hpp_features_t, n##name),                  \
            offsetof(hpp_request_t, providers) + (i) * sizeof(((hpp_request_t *)0)->providers[0]), \
            HPP_MAX_PROVIDER_LEN, HPP_MAX_PROVIDERS, hpp_check_provider                            \
    }

static const s_list_t s_lists[] = {
    {"hints", offsetof(hpp_features_t, hints), offsetof(hpp_features_t, nhints),
     offsetof(hpp_request_t, hints), HPP_MAX_HINT_LEN, HPP_MAX_HINTS, s_check_hint},
    S_PLIST(providers_order, 0),
    S_PLIST(providers_only, 1),
    S_PLIST(providers_ignore, 2),
    {"models", offsetof(hpp_features_t, models), offsetof(hpp_features_t, nmodels),
     offsetof(hpp_request_t, models), HPP_MAX_MODEL_LEN, HPP_MAX_MODELS, hpp_check_model_id},
};

int hpp_request_add_str(hpp_request_t *r, const char *key, const char *value)
{
    if (!r || !key || !value) {
        return HPP_ERR_ARG;
    }
    for (size_t i = 0; i < sizeof s_lists / sizeof s_lists[0]; i++) {
        const s_list_t *l = &s_lists[i];
        if (strcmp(key, l->key) != 0) {
            continue;
        }
        char *feat = (char *)&r->req.features;
        uint32_t *n = (uint32_t *)(feat + l->count);
        if (*n >= l->cap) {
            return s_fail(r, "%s: more than %u entries", key, (unsigned)l->cap);
        }
        hpp_str_t *view = (hpp_str_t *)(feat + l->views) + *n;
        int rc = s_copy(r, key, value, (char *)r + l->buf + *n * (l->max + 1), l->max, view);
        const char *why = rc == HPP_CLIENT_OK ? l->check(*view) : NULL;
        if (why) {
            rc = s_fail(r, "%s[%u]: %s", key, (unsigned)*n, why);
        }
        *n += rc == HPP_CLIENT_OK;
        return rc;
    }
    return s_fail(r, "%s: not a list feature", key);
}

int hpp_request_set_meta(hpp_request_t *r, const char *key, const char *value)
{
    if (!r || !key || !value) {
        return HPP_ERR_ARG;
    }
    hpp_features_t *f = &r->req.features;
    if (!*key) {
        return s_fail(r, "meta: a key must not be empty");
    }
    uint32_t i = 0;
    while (i < f->nmeta && !(strlen(key) == f->meta_keys[i].len &&
                             !memcmp(key, f->meta_keys[i].ptr, f->meta_keys[i].len))) {
        i++;
    }
    if (i == HPP_MAX_META) {
        return s_fail(r, "meta: more than %d pairs", HPP_MAX_META);
    }
    int rc = s_copy(r, "meta key", key, r->meta_keys[i], HPP_MAX_META_KEY_LEN, &f->meta_keys[i]);
    rc = rc == HPP_CLIENT_OK ? s_copy(r, "meta value", value, r->meta_vals[i], HPP_MAX_META_VAL_LEN,
                                      &f->meta_vals[i])
                             : rc;
    if (rc == HPP_CLIENT_OK && i == f->nmeta) {
        f->nmeta++;
    }
    return rc;
}

/* Replies ------------------------------------------------------------------ */

hpp_reply_t *hpp_reply_new(void)
{
    return calloc(1, sizeof(hpp_reply_t));
}

void hpp_reply_destroy(hpp_reply_t **rep_p)
{
    if (rep_p && *rep_p) {
        hpp_reply_close(*rep_p);
        free(*rep_p);
        *rep_p = NULL;
    }
}

bool hpp_reply_ok(const hpp_reply_t *rep)
{
    return rep && rep->has_msg && rep->r.ok;
}

/* snprintf-like copy of a borrowed string. */
static int s_out(hpp_str_t s, char *buf, size_t size)
{
    if (size > 0 && buf) {
        size_t n = s.len < size - 1 ? s.len : size - 1;
        if (n) {
            memcpy(buf, s.ptr, n);
        }
        buf[n] = '\0';
    }
    return (int)s.len;
}

static const struct {
    const char *key;
    size_t off; /* of the hpp_str_t in proto_reply_t */
} s_reply_strs[] = {
    {"model", offsetof(proto_reply_t, model)},
    {"provider", offsetof(proto_reply_t, provider)},
    {"provider_model", offsetof(proto_reply_t, provider_model)},
    {"tier", offsetof(proto_reply_t, tier)},
    {"rule", offsetof(proto_reply_t, rule)},
    {"policy_hash", offsetof(proto_reply_t, policy_hash)},
    {"error.code", offsetof(proto_reply_t, code)},
    {"error.message", offsetof(proto_reply_t, message)},
};

int hpp_reply_str(const hpp_reply_t *rep, const char *key, char *buf, size_t size)
{
    if (!rep || !key) {
        return HPP_ERR_ARG;
    }
    for (size_t i = 0; i < sizeof s_reply_strs / sizeof s_reply_strs[0]; i++) {
        if (!strcmp(key, s_reply_strs[i].key)) {
            hpp_str_t none = {NULL, 0};
            return s_out(rep->has_msg
                             ? *(const hpp_str_t *)((const char *)&rep->r + s_reply_strs[i].off)
                             : none,
                         buf, size);
        }
    }
    return HPP_ERR_ARG;
}

int hpp_reply_int(const hpp_reply_t *rep, const char *key, int64_t *out)
{
    if (!rep || !key || !out) {
        return HPP_ERR_ARG;
    }
    const proto_reply_t *r = &rep->r;
    const struct {
        const char *key;
        int64_t value;
    } ints[] = {
        {"v", r->v},
        {"output_tokens", r->output_tokens},
        {"policy_version", (int64_t)r->policy_version},
        {"decision_id", (int64_t)r->decision_id},
        {"cost_pusd.input", r->cost.input},
        {"cost_pusd.output", r->cost.output},
        {"cost_pusd.cache", r->cost.cache},
        {"cost_pusd.fees", r->cost.fees},
        {"cost_pusd.total", r->cost.total},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (!strcmp(key, ints[i].key)) {
            *out = rep->has_msg ? ints[i].value : 0;
            return HPP_CLIENT_OK;
        }
    }
    return HPP_ERR_ARG;
}

int hpp_reply_num(const hpp_reply_t *rep, const char *key, double *out)
{
    if (!rep || !key || !out) {
        return HPP_ERR_ARG;
    }
    if (!strcmp(key, "cost_usd")) {
        *out = rep->has_msg ? rep->r.cost_usd : 0;
        return HPP_CLIENT_OK;
    }
    int64_t v = 0;
    int rc = hpp_reply_int(rep, key, &v);
    *out = rc == HPP_CLIENT_OK ? (double)v : 0;
    return rc;
}

size_t hpp_reply_nfallbacks(const hpp_reply_t *rep)
{
    return rep && rep->has_msg ? rep->r.nfallbacks : 0;
}

int hpp_reply_fallback_str(const hpp_reply_t *rep, size_t i, const char *key, char *buf,
                           size_t size)
{
    if (!key || i >= hpp_reply_nfallbacks(rep)) {
        return HPP_ERR_ARG;
    }
    const proto_fallback_t *fb = &rep->r.fallbacks[i];
    const hpp_str_t *s = !strcmp(key, "model")            ? &fb->model
                         : !strcmp(key, "provider")       ? &fb->provider
                         : !strcmp(key, "provider_model") ? &fb->provider_model
                         : !strcmp(key, "tier")           ? &fb->tier
                                                          : NULL;
    return s ? s_out(*s, buf, size) : HPP_ERR_ARG;
}

char *hpp_reply_json(const hpp_reply_t *rep)
{
    if (!rep || !rep->has_msg) {
        return NULL;
    }
    proto_buf_t b;
    proto_error_t err;
    if (proto_buf_init(&b, 1024) != 0) {
        return NULL;
    }
    if (proto_to_json(rep->data, rep->len, &b, &err) != PROTO_OK) {
        proto_buf_destroy(&b);
        return NULL;
    }
    return b.data; /* malloc'd by the growable buffer: the caller frees it */
}

const void *hpp_reply_data(const hpp_reply_t *rep, size_t *len)
{
    if (len) {
        *len = rep && rep->has_msg ? rep->len : 0;
    }
    return rep && rep->has_msg ? rep->data : NULL;
}

/* Calls -------------------------------------------------------------------- */

/* An id the client gave is renewed on each send, so a request sent again
 * (reused) is never taken for its earlier self by a late reply. */
static bool s_take_id(hpp_request_t *r)
{
    if (r->auto_id) {
        r->req.id.kind = PROTO_ID_NONE;
    }
    return r->req.id.kind == PROTO_ID_NONE;
}

int hpp_client_request(hpp_client_t *self, hpp_request_t *req, hpp_reply_t *rep, int timeout_ms)
{
    if (!self || !req || !rep) {
        return HPP_ERR_ARG;
    }
    bool fresh = s_take_id(req);
    int rc = hpp_client_call(self, &req->req, rep, timeout_ms);
    req->auto_id = fresh;
    return rc;
}

int hpp_client_submit(hpp_client_t *self, hpp_request_t *req, int timeout_ms)
{
    if (!self || !req) {
        return HPP_ERR_ARG;
    }
    bool fresh = s_take_id(req);
    int rc = hpp_client_send(self, &req->req, timeout_ms);
    req->auto_id = fresh;
    return rc;
}

int hpp_client_await(hpp_client_t *self, const hpp_request_t *req, hpp_reply_t *rep, int timeout_ms)
{
    if (!self || !req || !rep || req->req.id.kind == PROTO_ID_NONE) {
        return HPP_ERR_ARG;
    }
    int rc = hpp_client_recv_id(self, &req->req.id, rep, timeout_ms);
    return rc == HPP_CLIENT_OK ? hpp_client_engine_rc(self, rep) : rc;
}

/* The transport error classes by name, as hpp_attempt_t spells them. */
static int s_xerr(const char *name, proto_xerr_t *out)
{
    for (int e = PROTO_XERR_NONE + 1; e < PROTO_XERR_COUNT; e++) {
        if (!strcmp(name, proto_xerr_name((proto_xerr_t)e))) {
            *out = (proto_xerr_t)e;
            return 0;
        }
    }
    return -1;
}

int hpp_client_send_report(hpp_client_t *self, const hpp_attempt_t *attempts, size_t n, bool ack,
                           hpp_reply_t *rep, int timeout_ms)
{
    if (!self || !attempts || n == 0 || n > PROTO_MAX_ATTEMPTS || (ack && !rep)) {
        return HPP_ERR_ARG;
    }
    proto_attempt_t at[PROTO_MAX_ATTEMPTS];
    for (size_t i = 0; i < n; i++) {
        const hpp_attempt_t *a = &attempts[i];
        proto_attempt_init(&at[i]);
        if (!a->model || !a->provider || !*a->model || !*a->provider ||
            (a->status == 0) == (a->error == NULL) ||
            (a->error && s_xerr(a->error, &at[i].error)) ||
            (a->status != 0 && (a->status < 100 || a->status > 599))) {
            return HPP_ERR_ARG; /* the engine would refuse it: say so before sending */
        }
        at[i].decision = a->decision;
        at[i].model = (hpp_str_t){a->model, (uint32_t)strlen(a->model)};
        at[i].provider = (hpp_str_t){a->provider, (uint32_t)strlen(a->provider)};
        at[i].status = (uint32_t)a->status;
        at[i].latency_ms = a->latency_ms;
        at[i].ttft_ms = a->ttft_ms;
        at[i].tokens_per_s = a->tokens_per_s;
        at[i].prompt_tokens = a->prompt_tokens;
        at[i].completion_tokens = a->completion_tokens;
        at[i].cached_tokens = a->cached_tokens;
        at[i].reasoning_tokens = a->reasoning_tokens;
        at[i].cost_usd = a->cost_usd;
    }
    return hpp_client_report(self, at, n, ack, rep, timeout_ms);
}

void hpp_attempt_init(hpp_attempt_t *a)
{
    memset(a, 0, sizeof *a);
    a->latency_ms = a->ttft_ms = a->tokens_per_s = a->cost_usd = -1;
    a->prompt_tokens = a->completion_tokens = a->cached_tokens = a->reasoning_tokens = -1;
}
