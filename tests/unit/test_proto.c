/* test_proto.c - the wire codec (proto/): every message round-trips, every
 * kind of bad input gets its specific error, and the hex dumps in
 * proto/PROTOCOL.md decode to exactly what the document says.
 *
 * Malformed frames are built byte by byte with msgpack-c's packer (the only
 * place outside proto/ that packs msgpack, because the codec refuses to
 * produce invalid requests).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_reply.h"

/* Helpers -------------------------------------------------------------------- */

static bool s_str_is(hpp_str_t s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

static hpp_str_t s_s(const char *c)
{
    hpp_str_t s = {c, (uint32_t)strlen(c)};
    return s;
}

/* A raw frame under construction. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} s_raw_t;

static void s_raw_init(s_raw_t *r)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

static void s_kstr(s_raw_t *r, const char *k)
{
    msgpack_pack_str(&r->pk, strlen(k));
    msgpack_pack_str_body(&r->pk, k, strlen(k));
}

/* The head of a valid route request: v, op, prompt_tokens, then `extra`
 * caller-packed pairs. */
static void s_route_head(s_raw_t *r, uint32_t extra)
{
    msgpack_pack_map(&r->pk, 3 + extra);
    s_kstr(r, "v");
    msgpack_pack_uint8(&r->pk, 1);
    s_kstr(r, "op");
    s_kstr(r, "route");
    s_kstr(r, "prompt_tokens");
    msgpack_pack_uint32(&r->pk, 100);
}

/* Decodes and checks the error code, the wire status and a message fragment. */
static void s_expect(s_raw_t *r, int code, const char *fragment)
{
    proto_request_t req;
    proto_error_t err;
    int rc = proto_request_decode(r->sb.data, r->sb.size, &req, &err);
    cr_assert_eq(rc, code, "expected %s, got %s (%s)", proto_err_name(code), proto_err_name(rc),
                 err.msg);
    cr_assert_eq(err.code, code);
    cr_assert(strstr(err.msg, fragment), "message \"%s\" lacks \"%s\"", err.msg, fragment);
    msgpack_sbuffer_destroy(&r->sb);
}

static void s_expect_bytes(const void *buf, size_t len, int code, const char *fragment)
{
    proto_request_t req;
    proto_error_t err;
    int rc = proto_request_decode(buf, len, &req, &err);
    cr_assert_eq(rc, code, "expected %s, got %s (%s)", proto_err_name(code), proto_err_name(rc),
                 err.msg);
    cr_assert(strstr(err.msg, fragment), "message \"%s\" lacks \"%s\"", err.msg, fragment);
}

static proto_buf_t s_buf(void)
{
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 64), 0);
    return b;
}

static char *s_json(const void *buf, size_t len)
{
    proto_buf_t out = s_buf();
    proto_error_t err;
    int rc = proto_to_json(buf, len, &out, &err);
    cr_assert_eq(rc, PROTO_OK, "to_json: %s", err.msg);
    return out.data; /* NUL-terminated, caller frees */
}

/* Requests: round trips ------------------------------------------------------ */

Test(proto_request, full_route_round_trip)
{
    proto_request_t in, out;
    proto_request_init(&in, PROTO_OP_ROUTE);
    in.id = proto_id_uint(UINT64_MAX);
    hpp_features_t *f = &in.features;
    f->model = s_s("hpprouter/auto:floor");
    f->prompt_tokens = 12345;
    f->output_tokens = 0; /* 0 is a value, distinct from "not given" */
    f->cache_read_tokens = 1000;
    f->cache_write_tokens = 2000;
    f->reasoning_tokens = 3000;
    f->images = 2;
    f->vision = true;
    f->tools = true;
    f->json = true;
    f->hints[0] = s_s("code");
    f->hints[1] = s_s("solidity");
    f->nhints = 2;
    f->has_budget = true;
    f->budget_usd = 0.0125;
    f->group = s_s("team-a");
    f->text = s_s("write a contract\n\"quoted\"");
    f->meta_keys[0] = s_s("user");
    f->meta_vals[0] = s_s("u-42");
    f->meta_keys[1] = s_s("empty");
    f->meta_vals[1] = s_s("");
    f->nmeta = 2;

    char mem[2048];
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, sizeof mem);
    cr_assert_eq(proto_request_encode(&b, &in), PROTO_OK);
    proto_error_t err;
    cr_assert_eq(proto_request_decode(b.data, b.len, &out, &err), PROTO_OK, "%s", err.msg);

    cr_assert_eq(out.v, 1);
    cr_assert_eq(out.op, PROTO_OP_ROUTE);
    cr_assert(proto_id_equal(&out.id, &in.id));
    const hpp_features_t *g = &out.features;
    cr_assert(s_str_is(g->model, "hpprouter/auto:floor"));
    cr_assert_eq(g->prompt_tokens, 12345);
    cr_assert_eq(g->output_tokens, 0);
    cr_assert_eq(g->cache_read_tokens, 1000);
    cr_assert_eq(g->cache_write_tokens, 2000);
    cr_assert_eq(g->reasoning_tokens, 3000);
    cr_assert_eq(g->images, 2);
    cr_assert(g->vision && g->tools && g->json);
    cr_assert_eq(g->nhints, 2);
    cr_assert(s_str_is(g->hints[0], "code") && s_str_is(g->hints[1], "solidity"));
    cr_assert(g->has_budget);
    cr_assert_float_eq(g->budget_usd, 0.0125, 1e-15);
    cr_assert(s_str_is(g->group, "team-a"));
    cr_assert(s_str_is(g->text, "write a contract\n\"quoted\""));
    cr_assert_eq(g->nmeta, 2);
    cr_assert(s_str_is(g->meta_keys[1], "empty") && s_str_is(g->meta_vals[1], ""));
    /* Zero-copy: decoded strings point into the frame. */
    cr_assert(g->model.ptr >= b.data && g->model.ptr < b.data + b.len);
}

Test(proto_request, provider_routing_round_trip)
{
    proto_request_t in, out;
    proto_request_init(&in, PROTO_OP_ROUTE);
    hpp_features_t *f = &in.features;
    f->prompt_tokens = 10;
    f->providers_order[0] = s_s("azure");
    f->providers_order[1] = s_s("openai");
    f->nproviders_order = 2;
    f->providers_only[0] = s_s("openai");
    f->nproviders_only = 1;
    f->providers_ignore[0] = s_s("groq");
    f->nproviders_ignore = 1;
    f->no_fallbacks = true;
    f->sort = HPP_SORT_PRICE;
    cr_assert_null(hpp_max_price_set(&f->max_price, HPP_MAXP_PROMPT, 2.5));
    cr_assert_null(hpp_max_price_set(&f->max_price, HPP_MAXP_IMAGE, 0.002));
    for (uint32_t i = 0; i < HPP_MAX_MODELS; i++) {
        f->models[i] = s_s(i % 2 ? "openai/gpt-4o" : "openai/gpt-4o-mini:free");
    }
    f->nmodels = HPP_MAX_MODELS;
    proto_buf_t b = s_buf();
    cr_assert_eq(proto_request_encode(&b, &in), PROTO_OK);
    proto_error_t err;
    cr_assert_eq(proto_request_decode(b.data, b.len, &out, &err), PROTO_OK, "%s", err.msg);
    const hpp_features_t *g = &out.features;
    cr_assert_eq(g->nproviders_order, 2);
    cr_assert(s_str_is(g->providers_order[0], "azure") &&
              s_str_is(g->providers_order[1], "openai"));
    cr_assert(g->nproviders_only == 1 && s_str_is(g->providers_only[0], "openai"));
    cr_assert(g->nproviders_ignore == 1 && s_str_is(g->providers_ignore[0], "groq"));
    cr_assert(g->no_fallbacks);
    cr_assert_eq(g->sort, HPP_SORT_PRICE);
    cr_assert_eq(g->max_price.set, HPP_MAXP_PROMPT | HPP_MAXP_IMAGE);
    cr_assert_eq(g->max_price.prompt, f->max_price.prompt);
    cr_assert_eq(g->max_price.image, f->max_price.image);
    cr_assert_eq(g->nmodels, HPP_MAX_MODELS);
    cr_assert(s_str_is(g->models[15], "openai/gpt-4o"));
    char *json = s_json(b.data, b.len);
    cr_assert(strstr(json, "\"allow_fallbacks\":false") &&
                  strstr(json, "\"providers_sort\":\"price\"") &&
                  strstr(json, "\"max_price\":{\"prompt\":2.5,\"image\":0.002}"),
              "%s", json);
    free(json);
    proto_buf_destroy(&b);
}

/* Each new key refused with its name: type, count, length, value and, inside
 * max_price, unknown and repeated components. */
Test(proto_request_bad, provider_routing_keys)
{
    static const struct {
        const char *key;
        int shape; /* 0: a string 1: 17 strings 2: ["a b"] 3: [""] 4: "latency"
                    * 5: {"tokens": 1} 6: {"prompt": 1, "prompt": 2} 7: {"prompt": -1}
                    * 8: {"prompt": "1"} 9: "fastest" */
        int code;
        const char *fragment;
    } cases[] = {
        {"providers_order", 0, PROTO_ERR_TYPE, "providers_order: expected array of strings"},
        {"providers_only", 1, PROTO_ERR_LIMIT, "providers_only: 17 entries exceed the maximum 16"},
        {"providers_ignore", 2, PROTO_ERR_RANGE, "providers_ignore[0]: a provider name"},
        {"providers_order", 3, PROTO_ERR_RANGE, "providers_order[0]: empty string"},
        {"models", 1, PROTO_ERR_LIMIT, "models: 17 entries exceed the maximum 16"},
        {"models", 2, PROTO_ERR_RANGE, "models[0]: a model id"},
        {"allow_fallbacks", 0, PROTO_ERR_TYPE, "allow_fallbacks: expected boolean"},
        {"providers_sort", 9, PROTO_ERR_RANGE, "providers_sort: expected one of: price"},
        {"max_price", 0, PROTO_ERR_TYPE, "max_price: expected map of numbers"},
        {"max_price", 5, PROTO_ERR_RANGE, "max_price: unknown key \"tokens\""},
        {"max_price", 6, PROTO_ERR_DUPLICATE, "max_price.prompt: given twice"},
        {"max_price", 7, PROTO_ERR_RANGE, "max_price.prompt: must be a finite number"},
        {"max_price", 8, PROTO_ERR_TYPE, "max_price.prompt: expected non-negative number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_raw_t r;
        s_raw_init(&r);
        s_route_head(&r, 1);
        s_kstr(&r, cases[i].key);
        switch (cases[i].shape) {
        case 0:
            s_kstr(&r, "x");
            break;
        case 1:
            msgpack_pack_array(&r.pk, 17);
            for (int k = 0; k < 17; k++) {
                s_kstr(&r, "p");
            }
            break;
        case 2:
            msgpack_pack_array(&r.pk, 1);
            s_kstr(&r, "a b");
            break;
        case 3:
            msgpack_pack_array(&r.pk, 1);
            s_kstr(&r, "");
            break;
        case 4:
            s_kstr(&r, "latency");
            break;
        case 5:
            msgpack_pack_map(&r.pk, 1);
            s_kstr(&r, "tokens");
            msgpack_pack_uint8(&r.pk, 1);
            break;
        case 6:
            msgpack_pack_map(&r.pk, 2);
            s_kstr(&r, "prompt");
            msgpack_pack_uint8(&r.pk, 1);
            s_kstr(&r, "prompt");
            msgpack_pack_uint8(&r.pk, 2);
            break;
        case 7:
            msgpack_pack_map(&r.pk, 1);
            s_kstr(&r, "prompt");
            msgpack_pack_int8(&r.pk, -1);
            break;
        case 8:
            msgpack_pack_map(&r.pk, 1);
            s_kstr(&r, "prompt");
            s_kstr(&r, "1");
            break;
        default:
            s_kstr(&r, "fastest");
            break;
        }
        s_expect(&r, cases[i].code, cases[i].fragment);
    }
}

Test(proto_request, defaults_round_trip_and_minimal_encoding)
{
    proto_request_t in, out;
    proto_request_init(&in, PROTO_OP_ROUTE);
    char mem[256];
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, sizeof mem);
    cr_assert_eq(proto_request_encode(&b, &in), PROTO_OK);
    /* {v:1, op:"route", prompt_tokens:0}: nothing else is written. */
    char *json = s_json(b.data, b.len);
    cr_assert_str_eq(json, "{\"v\":1,\"op\":\"route\",\"prompt_tokens\":0}");
    free(json);
    cr_assert_eq(proto_request_decode(b.data, b.len, &out, NULL), PROTO_OK);
    cr_assert_eq(out.features.output_tokens, -1);
    cr_assert_eq(out.features.nhints, 0);
    cr_assert(!out.features.has_budget);
    cr_assert_eq(out.id.kind, PROTO_ID_NONE);
}

Test(proto_request, every_op_round_trips_with_string_id)
{
    for (int op = 0; op < PROTO_OP_COUNT; op++) {
        if (op == PROTO_OP_REPORT || op == PROTO_OP_LEDGER) {
            continue; /* their arguments are required: own tests below */
        }
        proto_request_t in, out;
        proto_request_init(&in, (proto_op_t)op);
        in.id.kind = PROTO_ID_STR;
        in.id.str = s_s("req-7f3a");
        char mem[256];
        proto_buf_t b;
        proto_buf_init_fixed(&b, mem, sizeof mem);
        cr_assert_eq(proto_request_encode(&b, &in), PROTO_OK);
        proto_error_t err;
        cr_assert_eq(proto_request_decode(b.data, b.len, &out, &err), PROTO_OK, "%s: %s",
                     proto_op_name((proto_op_t)op), err.msg);
        cr_assert_eq(out.op, (proto_op_t)op);
        cr_assert(proto_id_equal(&out.id, &in.id));
        cr_assert_eq(proto_op_from_name(proto_op_name((proto_op_t)op),
                                        strlen(proto_op_name((proto_op_t)op))),
                     op);
    }
}

Test(proto_request, fixed_buffer_too_small_is_nospace)
{
    proto_request_t in;
    proto_request_init(&in, PROTO_OP_ROUTE);
    in.features.text = s_s("a text sample longer than the tiny output buffer");
    char mem[16];
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, sizeof mem);
    cr_assert_eq(proto_request_encode(&b, &in), PROTO_ERR_NOSPACE);
    cr_assert(b.overflow);
    cr_assert_leq(b.len, sizeof mem);
}

Test(proto_request, unknown_keys_are_ignored_whatever_their_shape)
{
    s_raw_t r;
    s_raw_init(&r);
    s_route_head(&r, 3);
    s_kstr(&r, "future_key");
    msgpack_pack_map(&r.pk, 1); /* nested containers are skipped whole */
    s_kstr(&r, "deep");
    msgpack_pack_array(&r.pk, 2);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_array(&r.pk, 0);
    s_kstr(&r, "x-bin");
    msgpack_pack_bin(&r.pk, 3);
    msgpack_pack_bin_body(&r.pk, "\x00\x01\x02", 3);
    s_kstr(&r, "tools");
    msgpack_pack_true(&r.pk);
    proto_request_t req;
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, NULL), PROTO_OK);
    cr_assert(req.features.tools);
    cr_assert_eq(req.features.prompt_tokens, 100);
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto_request, integers_in_any_width_and_nil_defaults)
{
    s_raw_t r;
    s_raw_init(&r);
    s_route_head(&r, 4);
    s_kstr(&r, "images");
    msgpack_pack_fix_int64(&r.pk, 3); /* signed 64-bit encoding of a small positive */
    s_kstr(&r, "output_tokens");
    msgpack_pack_nil(&r.pk);
    s_kstr(&r, "budget_usd");
    msgpack_pack_uint8(&r.pk, 2); /* an integer budget is accepted */
    s_kstr(&r, "vision");
    msgpack_pack_nil(&r.pk);
    proto_request_t req;
    proto_error_t err;
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(req.features.images, 3);
    cr_assert_eq(req.features.output_tokens, -1);
    cr_assert(req.features.has_budget);
    cr_assert_float_eq(req.features.budget_usd, 2.0, 0);
    cr_assert(!req.features.vision);
    msgpack_sbuffer_destroy(&r.sb);
}

/* PROTOCOL.md: nil for an optional key means the same as leaving it out.
 * Each optional key alone, then all of them in one map: the request must
 * decode to exactly the features of one without them. */
Test(proto_request, nil_means_absent_for_every_optional_key)
{
    static const char *const keys[] = {
        "id",
        "model",
        "output_tokens",
        "cache_read_tokens",
        "images",
        "vision",
        "tools",
        "json",
        "hints",
        "budget_usd",
        "group",
        "text",
        "meta",
        "providers_order",
        "providers_only",
        "providers_ignore",
        "allow_fallbacks",
        "providers_sort",
        "max_price",
        "models",
    };
    const size_t nkeys = sizeof keys / sizeof keys[0];
    hpp_features_t want;
    hpp_features_init(&want);
    want.prompt_tokens = 100;
    for (size_t i = 0; i <= nkeys; i++) {
        s_raw_t r;
        s_raw_init(&r);
        bool all = i == nkeys; /* the last round: every key at once */
        s_route_head(&r, all ? (uint32_t)nkeys : 1);
        for (size_t k = all ? 0 : i; k < (all ? nkeys : i + 1); k++) {
            s_kstr(&r, keys[k]);
            msgpack_pack_nil(&r.pk);
        }
        proto_request_t req;
        proto_error_t err;
        int rc = proto_request_decode(r.sb.data, r.sb.size, &req, &err);
        cr_assert_eq(rc, PROTO_OK, "%s: nil refused: %s", all ? "all keys" : keys[i], err.msg);
        cr_assert_eq(req.op, PROTO_OP_ROUTE);
        cr_assert_eq(req.id.kind, PROTO_ID_NONE);
        cr_assert_eq(memcmp(&req.features, &want, sizeof want), 0, "%s: nil is not absent",
                     all ? "all keys" : keys[i]);
        msgpack_sbuffer_destroy(&r.sb);
    }
}

/* Requests: each bad input gets its specific error --------------------------- */

Test(proto_request_bad, empty_and_non_map_frames)
{
    s_expect_bytes("", 0, PROTO_ERR_NOT_MAP, "empty frame");
    s_expect_bytes("\x93\x01\x02\x03", 4, PROTO_ERR_NOT_MAP, "got array");
    s_expect_bytes("\xa5hello", 6, PROTO_ERR_NOT_MAP, "got string");
    s_expect_bytes("\xc1", 1, PROTO_ERR_MALFORMED, "0xc1");
    s_expect_bytes("garbage!", 8, PROTO_ERR_NOT_MAP, "got integer");
}

Test(proto_request_bad, truncated_headers_and_bodies)
{
    s_expect_bytes("\x83", 1, PROTO_ERR_TRUNCATED, "request: frame ends inside the value");
    s_expect_bytes("\xde\x00", 2, PROTO_ERR_TRUNCATED, "request");
    s_expect_bytes("\x81\xa1v", 3, PROTO_ERR_TRUNCATED, "v: frame ends");
    s_expect_bytes("\x81\xa2v", 3, PROTO_ERR_TRUNCATED, "map key");
    s_expect_bytes("\x81\xa1v\xcd\x00", 5, PROTO_ERR_TRUNCATED, "v:");
    /* A container claiming 4 billion entries is refused at once, not allocated. */
    s_expect_bytes("\xdd\xff\xff\xff\xff", 5, PROTO_ERR_TRUNCATED, "request");
    s_expect_bytes("\xdf\xff\xff\xff\xff\x00", 6, PROTO_ERR_TRUNCATED, "request");
    s_expect_bytes("\x81\xa5hints\xdd\xff\xff\xff\xff", 11, PROTO_ERR_TRUNCATED, "hints");
}

Test(proto_request_bad, every_prefix_of_a_valid_request_is_rejected)
{
    proto_request_t in;
    proto_request_init(&in, PROTO_OP_EXPLAIN);
    in.id = proto_id_uint(9);
    in.features.model = s_s("openai/gpt-5");
    in.features.hints[0] = s_s("code");
    in.features.nhints = 1;
    in.features.meta_keys[0] = s_s("k");
    in.features.meta_vals[0] = s_s("v");
    in.features.nmeta = 1;
    in.features.has_budget = true;
    in.features.budget_usd = 1.5;
    char mem[512];
    proto_buf_t b;
    proto_buf_init_fixed(&b, mem, sizeof mem);
    cr_assert_eq(proto_request_encode(&b, &in), PROTO_OK);
    for (size_t n = 0; n < b.len; n++) {
        proto_request_t out;
        proto_error_t err;
        int rc = proto_request_decode(b.data, n, &out, &err);
        cr_assert_neq(rc, PROTO_OK, "prefix of %zu/%zu bytes accepted", n, b.len);
        cr_assert(rc == PROTO_ERR_TRUNCATED || rc == PROTO_ERR_NOT_MAP, "prefix %zu: %s (%s)", n,
                  proto_err_name(rc), err.msg);
    }
}

Test(proto_request_bad, trailing_bytes)
{
    s_raw_t r;
    s_raw_init(&r);
    s_route_head(&r, 0);
    msgpack_pack_nil(&r.pk);
    s_expect(&r, PROTO_ERR_MALFORMED, "1 bytes after the request map");
}

Test(proto_request_bad, missing_required_keys)
{
    s_raw_t r;
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 1);
    s_kstr(&r, "op");
    s_kstr(&r, "ping");
    s_expect(&r, PROTO_ERR_MISSING, "v: required key missing");

    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 1);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_expect(&r, PROTO_ERR_MISSING, "op: required key missing");

    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_kstr(&r, "op");
    s_kstr(&r, "explain");
    s_expect(&r, PROTO_ERR_MISSING, "prompt_tokens: required key missing for explain");
}

/* nil is "absent" only where absence is allowed: a required key given as
 * nil names its type, nil inside hints or meta is no string, and a nil does
 * not make the same key given again legal. */
Test(proto_request_bad, nil_where_a_value_is_required)
{
    static const struct {
        const char *key; /* given as nil, after v and op (and prompt_tokens unless it is the key) */
        const char *fragment;
    } cases[] = {
        {"v", "v: expected non-negative integer, got nil"},
        {"op", "op: expected string, got nil"},
        {"prompt_tokens", "prompt_tokens: expected non-negative integer, got nil"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_raw_t r;
        s_raw_init(&r);
        msgpack_pack_map(&r.pk, 3);
        const char *order[] = {"v", "op", "prompt_tokens"};
        for (int k = 0; k < 3; k++) {
            s_kstr(&r, order[k]);
            if (strcmp(order[k], cases[i].key) == 0) {
                msgpack_pack_nil(&r.pk);
            } else if (k == 0) {
                msgpack_pack_uint8(&r.pk, 1);
            } else if (k == 1) {
                s_kstr(&r, "route");
            } else {
                msgpack_pack_uint32(&r.pk, 100);
            }
        }
        s_expect(&r, PROTO_ERR_TYPE, cases[i].fragment);
    }

    s_raw_t r;
    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "hints");
    msgpack_pack_array(&r.pk, 2);
    s_kstr(&r, "code");
    msgpack_pack_nil(&r.pk);
    s_expect(&r, PROTO_ERR_TYPE, "hints[1]: expected string, got nil");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "meta");
    msgpack_pack_map(&r.pk, 1);
    s_kstr(&r, "team");
    msgpack_pack_nil(&r.pk);
    s_expect(&r, PROTO_ERR_TYPE, "meta[0] value: expected string, got nil");

    s_raw_init(&r);
    s_route_head(&r, 2);
    s_kstr(&r, "group");
    msgpack_pack_nil(&r.pk);
    s_kstr(&r, "group");
    s_kstr(&r, "team-a");
    s_expect(&r, PROTO_ERR_DUPLICATE, "group");
}

Test(proto_request_bad, version_and_op)
{
    s_raw_t r;
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 2);
    s_kstr(&r, "op");
    s_kstr(&r, "ping");
    s_expect(&r, PROTO_ERR_VERSION, "unsupported protocol version 2");

    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_kstr(&r, "op");
    s_kstr(&r, "rout\x01\"");
    s_expect(&r, PROTO_ERR_UNKNOWN_OP, "unknown operation \"rout??\"");
    cr_assert_eq(proto_err_status(PROTO_ERR_UNKNOWN_OP), HPP_E_UNKNOWN_OP);
    cr_assert_eq(proto_err_status(PROTO_ERR_TYPE), HPP_E_BAD_REQUEST);

    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_kstr(&r, "op");
    msgpack_pack_uint8(&r.pk, 0);
    s_expect(&r, PROTO_ERR_TYPE, "op: expected string, got integer");
}

Test(proto_request_bad, mistyped_values_name_their_key)
{
    static const struct {
        const char *key;
        int kind; /* 0 string, 1 negative int, 2 float, 3 map, 4 true */
        int code;
        const char *fragment;
    } cases[] = {
        {"prompt_tokens", 0, PROTO_ERR_TYPE,
         "prompt_tokens: expected non-negative integer, got string"},
        {"prompt_tokens", 1, PROTO_ERR_RANGE,
         "prompt_tokens: expected non-negative integer, got -5"},
        {"prompt_tokens", 2, PROTO_ERR_TYPE,
         "prompt_tokens: expected non-negative integer, got float"},
        {"output_tokens", 4, PROTO_ERR_TYPE,
         "output_tokens: expected non-negative integer, got boolean"},
        {"cache_read_tokens", 3, PROTO_ERR_TYPE,
         "cache_read_tokens: expected non-negative integer, got map"},
        {"images", 1, PROTO_ERR_RANGE, "images: expected non-negative integer, got -5"},
        {"model", 1, PROTO_ERR_TYPE, "model: expected string, got -5"},
        {"group", 3, PROTO_ERR_TYPE, "group: expected string, got map"},
        {"text", 4, PROTO_ERR_TYPE, "text: expected string, got boolean"},
        {"vision", 0, PROTO_ERR_TYPE, "vision: expected boolean, got string"},
        {"tools", 2, PROTO_ERR_TYPE, "tools: expected boolean, got float"},
        {"json", 1, PROTO_ERR_TYPE, "json: expected boolean, got -5"},
        {"hints", 0, PROTO_ERR_TYPE, "hints: expected array of strings, got string"},
        {"meta", 0, PROTO_ERR_TYPE, "meta: expected map of strings, got string"},
        {"budget_usd", 0, PROTO_ERR_TYPE, "budget_usd: expected non-negative number, got string"},
        {"budget_usd", 1, PROTO_ERR_RANGE,
         "budget_usd: must be a finite number of USD from 0 to 1000000, got -5"},
        {"id", 1, PROTO_ERR_TYPE, "id: expected non-negative integer or string, got -5"},
        {"id", 2, PROTO_ERR_TYPE, "id: expected non-negative integer or string, got float"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_raw_t r;
        s_raw_init(&r);
        bool is_prompt = strcmp(cases[i].key, "prompt_tokens") == 0;
        if (is_prompt) {
            msgpack_pack_map(&r.pk, 3);
            s_kstr(&r, "v");
            msgpack_pack_uint8(&r.pk, 1);
            s_kstr(&r, "op");
            s_kstr(&r, "route");
        } else {
            s_route_head(&r, 1);
        }
        s_kstr(&r, cases[i].key);
        switch (cases[i].kind) {
        case 0:
            s_kstr(&r, "x");
            break;
        case 1:
            msgpack_pack_int8(&r.pk, -5);
            break;
        case 2:
            msgpack_pack_double(&r.pk, 1.5);
            break;
        case 3:
            msgpack_pack_map(&r.pk, 0);
            break;
        default:
            msgpack_pack_true(&r.pk);
            break;
        }
        s_expect(&r, cases[i].code, cases[i].fragment);
    }
}

Test(proto_request_bad, ranges)
{
    s_raw_t r;
    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "output_tokens");
    msgpack_pack_uint64(&r.pk, 100000001);
    s_expect(&r, PROTO_ERR_RANGE,
             "output_tokens: must be an integer from 0 to 100000000, got 100000001");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "images");
    msgpack_pack_uint32(&r.pk, 10001);
    s_expect(&r, PROTO_ERR_RANGE, "images: must be an integer from 0 to 10000, got 10001");

    const double bad_budgets[] = {NAN, INFINITY, -0.5, 2e6};
    const char *frags[] = {"finite", "finite", "finite", "from 0 to 1000000"};
    for (int i = 0; i < 4; i++) {
        s_raw_init(&r);
        s_route_head(&r, 1);
        s_kstr(&r, "budget_usd");
        msgpack_pack_double(&r.pk, bad_budgets[i]);
        s_expect(&r, PROTO_ERR_RANGE, frags[i]);
    }

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "cache_read_tokens");
    msgpack_pack_uint32(&r.pk, 101);
    s_expect(&r, PROTO_ERR_RANGE,
             "cache_read_tokens: must be from 0 to prompt_tokens, got 101 > 100");

    /* Cache writes are the rest of the prompt at most. */
    s_raw_init(&r);
    s_route_head(&r, 2);
    s_kstr(&r, "cache_read_tokens");
    msgpack_pack_uint32(&r.pk, 60);
    s_kstr(&r, "cache_write_tokens");
    msgpack_pack_uint32(&r.pk, 41);
    s_expect(&r, PROTO_ERR_RANGE,
             "cache_write_tokens: must be from 0 to prompt_tokens - cache_read_tokens, got 41 + "
             "60 cache_read_tokens > 100");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "reasoning_tokens");
    msgpack_pack_int64(&r.pk, 100000001);
    s_expect(&r, PROTO_ERR_RANGE, "reasoning_tokens: must be an integer from 0 to 100000000");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_expect(&r, PROTO_ERR_DUPLICATE, "v: duplicate key");
}

Test(proto_request_bad, size_limits)
{
    char big[HPP_MAX_TEXT_LEN + 2];
    memset(big, 'a', sizeof big);
    static const struct {
        const char *key;
        size_t len;
        const char *fragment;
    } strs[] = {
        {"model", HPP_MAX_MODEL_LEN + 1, "model: string of 257 bytes exceeds 256"},
        {"group", HPP_MAX_GROUP_LEN + 1, "group: string of 65 bytes exceeds 64"},
        {"text", HPP_MAX_TEXT_LEN + 1, "text: string of 16385 bytes exceeds 16384"},
        {"id", PROTO_MAX_ID + 1, "id: string of 65 bytes exceeds 64"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        s_raw_t r;
        s_raw_init(&r);
        s_route_head(&r, 1);
        s_kstr(&r, strs[i].key);
        msgpack_pack_str(&r.pk, strs[i].len);
        msgpack_pack_str_body(&r.pk, big, strs[i].len);
        s_expect(&r, PROTO_ERR_LIMIT, strs[i].fragment);
    }
    /* At the limit is fine. */
    s_raw_t r;
    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "model");
    msgpack_pack_str(&r.pk, HPP_MAX_MODEL_LEN);
    msgpack_pack_str_body(&r.pk, big, HPP_MAX_MODEL_LEN);
    proto_request_t req;
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, NULL), PROTO_OK);
    msgpack_sbuffer_destroy(&r.sb);

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "hints");
    msgpack_pack_array(&r.pk, HPP_MAX_HINTS + 1);
    for (int i = 0; i <= HPP_MAX_HINTS; i++) {
        s_kstr(&r, "h");
    }
    s_expect(&r, PROTO_ERR_LIMIT, "hints: 17 entries exceed the maximum 16");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "hints");
    msgpack_pack_array(&r.pk, 2);
    s_kstr(&r, "code");
    msgpack_pack_str(&r.pk, HPP_MAX_HINT_LEN + 1);
    msgpack_pack_str_body(&r.pk, big, HPP_MAX_HINT_LEN + 1);
    s_expect(&r, PROTO_ERR_LIMIT, "hints[1]: string of 65 bytes exceeds 64");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "hints");
    msgpack_pack_array(&r.pk, 2);
    s_kstr(&r, "code");
    msgpack_pack_uint8(&r.pk, 7);
    s_expect(&r, PROTO_ERR_TYPE, "hints[1]: expected string, got integer");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "hints");
    msgpack_pack_array(&r.pk, 1);
    s_kstr(&r, "");
    s_expect(&r, PROTO_ERR_RANGE, "hints[0]: empty string");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "meta");
    msgpack_pack_map(&r.pk, HPP_MAX_META + 1);
    for (int i = 0; i <= HPP_MAX_META; i++) {
        s_kstr(&r, "k");
        s_kstr(&r, "v");
    }
    s_expect(&r, PROTO_ERR_LIMIT, "meta: 17 entries exceed the maximum 16");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "meta");
    msgpack_pack_map(&r.pk, 1);
    s_kstr(&r, "k");
    msgpack_pack_true(&r.pk);
    s_expect(&r, PROTO_ERR_TYPE, "meta[0] value: expected string, got boolean");

    s_raw_init(&r);
    s_route_head(&r, 1);
    s_kstr(&r, "meta");
    msgpack_pack_map(&r.pk, 1);
    msgpack_pack_str(&r.pk, HPP_MAX_META_KEY_LEN + 1);
    msgpack_pack_str_body(&r.pk, big, HPP_MAX_META_KEY_LEN + 1);
    s_kstr(&r, "v");
    s_expect(&r, PROTO_ERR_LIMIT, "meta[0] key: string of 65 bytes exceeds 64");
}

Test(proto_request_bad, oversized_frame_and_non_string_key)
{
    size_t n = PROTO_MAX_FRAME + 1;
    char *big = calloc(1, n);
    big[0] = (char)0x80; /* an empty map followed by padding: size is checked first */
    s_expect_bytes(big, n, PROTO_ERR_TOO_LARGE, "frame of 65537 bytes exceeds 65536");
    free(big);

    s_raw_t r;
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 1);
    s_expect(&r, PROTO_ERR_TYPE, "map key #1: expected string, got integer");
}

Test(proto_request_bad, error_keeps_the_id_for_the_reply)
{
    /* id after the faulty key, and as a string: still found. */
    s_raw_t r;
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 4);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_kstr(&r, "prompt_tokens");
    s_kstr(&r, "lots");
    s_kstr(&r, "op");
    s_kstr(&r, "route");
    s_kstr(&r, "id");
    s_kstr(&r, "abc-1");
    proto_request_t req;
    proto_error_t err;
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, &err), PROTO_ERR_TYPE);
    cr_assert_eq(req.id.kind, PROTO_ID_STR);
    cr_assert(s_str_is(req.id.str, "abc-1"));
    msgpack_sbuffer_destroy(&r.sb);

    /* Oversized frames too. */
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    s_kstr(&r, "id");
    msgpack_pack_uint32(&r.pk, 77);
    s_kstr(&r, "pad");
    msgpack_pack_bin(&r.pk, PROTO_MAX_FRAME);
    char *pad = calloc(1, PROTO_MAX_FRAME);
    msgpack_pack_bin_body(&r.pk, pad, PROTO_MAX_FRAME);
    free(pad);
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, &err), PROTO_ERR_TOO_LARGE);
    cr_assert_eq(req.id.kind, PROTO_ID_UINT);
    cr_assert_eq(req.id.num, 77);
    msgpack_sbuffer_destroy(&r.sb);

    /* No id at all: none. */
    s_expect_bytes("\x81\xa1v\x02", 4, PROTO_ERR_VERSION, "version 2");
}

/* Replies ---------------------------------------------------------------------- */

static eng_catalog_t *s_catalog(void)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0, "%s", err.msg);
    return cat;
}

static const eng_model_t *s_model(const eng_catalog_t *cat, const char *id)
{
    const eng_model_t *m = eng_catalog_find(cat, id, strlen(id));
    cr_assert_not_null(m, "catalog lacks %s", id);
    return m;
}

static const eng_endpoint_t *s_ep(const eng_catalog_t *cat, const eng_model_t *m)
{
    size_t n;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &n);
    cr_assert_lt(m->ep_first, n);
    return &eps[m->ep_first];
}

Test(proto_reply, decision_round_trip)
{
    eng_catalog_t *cat = s_catalog();
    const eng_model_t *m = s_model(cat, "openai/gpt-5");
    const eng_model_t *fb = s_model(cat, "anthropic/claude-sonnet-4");
    eng_decision_t d = {0};
    d.status = HPP_OK;
    d.model = m;
    d.endpoint = s_ep(cat, m);
    d.tier = 3;
    d.tier_name = "standard";
    d.rule = "code";
    d.cost = (hpp_cost_t){
        .input = 1250000000, .output = 10000000000, .cache = 0, .fees = 7, .total = 11250000007};
    d.output_tokens = 1000;
    d.fallbacks[0] = s_ep(cat, fb);
    d.fallback_tier[0] = "premium";
    d.fallback_cost[0] = 3000000000;
    d.nfallbacks = 1;

    proto_buf_t b = s_buf();
    proto_id_t id = proto_id_uint(42);
    cr_assert_eq(eng_reply_decision(&b, &id, &d, cat, NULL), PROTO_OK);
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, &err), PROTO_OK, "%s", err.msg);
    cr_assert(r.ok);
    cr_assert_eq(r.status, HPP_OK);
    cr_assert_eq(r.id.num, 42);
    cr_assert(s_str_is(r.model, "openai/gpt-5"));
    cr_assert(s_str_is(r.provider, d.endpoint->provider));
    cr_assert(s_str_is(r.provider_model, d.endpoint->native_id));
    cr_assert(s_str_is(r.tier, "standard"));
    cr_assert(s_str_is(r.rule, "code"));
    cr_assert_eq(r.cost.total, 11250000007);
    cr_assert_eq(r.cost.input, 1250000000);
    cr_assert_eq(r.cost.fees, 7);
    cr_assert_float_eq(r.cost_usd, 0.011250000007, 1e-15);
    cr_assert_eq(r.output_tokens, 1000);
    cr_assert_eq(r.nfallbacks, 1);
    cr_assert(s_str_is(r.fallbacks[0].model, "anthropic/claude-sonnet-4"));
    cr_assert(s_str_is(r.fallbacks[0].provider, d.fallbacks[0]->provider));
    /* A gateway that retries at a fallback reports its tier and estimate. */
    cr_assert(s_str_is(r.fallbacks[0].tier, "premium"));
    cr_assert_float_eq(r.fallbacks[0].cost_usd, 0.003, 1e-15);
    proto_buf_destroy(&b);
    eng_catalog_destroy(&cat);
}

/* The pre-encoded endpoint table must change nothing but the speed: every
 * endpoint of a catalog as the choice and as fallbacks, same bytes. */
Test(proto_reply, endpoint_table_gives_the_same_bytes)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t cerr;
    cr_assert_eq(eng_catalog_load(cat, "policies/catalog.json", &cerr), 0, "%s", cerr.msg);
    cr_assert_eq(eng_catalog_load(
                     cat, "litellm:tests/data/litellm/model_prices_and_context_window.json", &cerr),
                 0, "%s", cerr.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &cerr), 0, "%s", cerr.msg);
    eng_epwire_t *wire = eng_epwire_new(cat);
    cr_assert_not_null(wire);
    size_t n, nm;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &n);
    const eng_model_t *models = eng_catalog_models(cat, &nm);
    cr_assert_gt(n, 1000, "the LiteLLM catalog has thousands of endpoints, got %zu", n);
    proto_buf_t plain = s_buf(), fast = s_buf();
    proto_id_t id = proto_id_uint(3);
    for (size_t i = 0; i < n; i++) {
        eng_decision_t d = {.status = HPP_OK, .endpoint = &eps[i], .tier_name = "mid", .rule = "r"};
        /* Every third: the model left for the endpoint to name; every
         * fifth: a model other than the endpoint's (the table must not be
         * used for it). */
        d.model = i % 3 == 0 ? NULL : i % 5 == 0 ? &models[(i * 7) % nm] : &models[eps[i].model];
        d.nfallbacks = (uint32_t)(i % (HPP_MAX_FALLBACKS + 1));
        for (uint32_t k = 0; k < d.nfallbacks; k++) {
            d.fallbacks[k] = &eps[(i * 31 + k * 17) % n];
        }
        proto_buf_reset(&plain);
        proto_buf_reset(&fast);
        cr_assert_eq(eng_reply_decision(&plain, &id, &d, cat, NULL), PROTO_OK);
        cr_assert_eq(eng_reply_decision(&fast, &id, &d, cat, wire), PROTO_OK);
        cr_assert(plain.len == fast.len && memcmp(plain.data, fast.data, plain.len) == 0,
                  "endpoint %zu (%s): bytes differ", i, eps[i].native_id);
    }
    /* An endpoint from another catalog is packed, not looked up. */
    eng_catalog_t *other = s_catalog();
    size_t no;
    const eng_endpoint_t *oeps = eng_catalog_endpoints(other, &no);
    eng_decision_t d = {.status = HPP_OK, .endpoint = &oeps[0], .rule = "r"};
    proto_buf_reset(&plain);
    proto_buf_reset(&fast);
    cr_assert_eq(eng_reply_decision(&plain, &id, &d, other, NULL), PROTO_OK);
    cr_assert_eq(eng_reply_decision(&fast, &id, &d, other, wire), PROTO_OK);
    cr_assert(plain.len == fast.len && memcmp(plain.data, fast.data, plain.len) == 0);
    proto_buf_destroy(&plain);
    proto_buf_destroy(&fast);
    eng_epwire_destroy(&wire);
    cr_assert_null(wire);
    eng_epwire_destroy(&wire);
    eng_catalog_destroy(&other);
    eng_catalog_destroy(&cat);
}

Test(proto_reply, error_round_trip_and_sanitised_message)
{
    proto_buf_t b = s_buf();
    proto_id_t id = {.kind = PROTO_ID_STR, .str = s_s("r1")};
    /* A message quoting client bytes: invalid UTF-8 and controls become '?'. */
    cr_assert_eq(proto_reply_error(&b, &id, HPP_E_INSUFFICIENT_BUDGET, "over \xff\x01 budget é"),
                 PROTO_OK);
    proto_reply_t r;
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert(!r.ok);
    cr_assert_eq(r.status, HPP_E_INSUFFICIENT_BUDGET);
    cr_assert(s_str_is(r.code, "insufficient_budget"));
    cr_assert(s_str_is(r.message, "over ?? budget é"), "%.*s", (int)r.message.len, r.message.ptr);
    cr_assert(s_str_is(r.id.str, "r1"));
    proto_buf_destroy(&b);

    /* A failed decision encodes as its error. */
    b = s_buf();
    eng_decision_t d = {.status = HPP_E_NO_FREE_VARIANT};
    snprintf(d.message, sizeof d.message, "openai/gpt-5 has no free endpoint");
    cr_assert_eq(eng_reply_decision(&b, NULL, &d, NULL, NULL), PROTO_OK);
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert_eq(r.status, HPP_E_NO_FREE_VARIANT);
    cr_assert_eq(r.id.kind, PROTO_ID_NONE);
    char *json = s_json(b.data, b.len);
    cr_assert_str_eq(json, "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"no_free_variant\","
                           "\"message\":\"openai/gpt-5 has no free endpoint\"}}");
    free(json);
    proto_buf_destroy(&b);
}

Test(proto_reply, ping_reload_stats)
{
    proto_buf_t b = s_buf();
    proto_id_t id = proto_id_uint(1);
    cr_assert_eq(proto_reply_ping(&b, &id, 7, "0.1.0"), PROTO_OK);
    proto_reply_t r;
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert(r.ok);
    cr_assert_eq(r.policy_version, 7);
    cr_assert_eq(r.policy_hash.len, 0, "no hash given, none sent");

    /* The engine's ping names the policy hash; the decoder hands it back. */
    const char *hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    proto_buf_reset(&b);
    cr_assert_eq(proto_reply_ping_hash(&b, &id, 7, hash, "0.1.0"), PROTO_OK);
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert_eq(r.policy_version, 7);
    cr_assert_eq(r.policy_hash.len, 64);
    cr_assert(memcmp(r.policy_hash.ptr, hash, 64) == 0);

    const char *diags[] = {"p.policy:3:9: error: unknown tier 'midd'"};
    proto_reload_info_t info = {.ok = false,
                                .at = 1.7e9,
                                .trigger = "op",
                                .policy_version = 7,
                                .policy_hash = hash,
                                .diags = diags,
                                .ndiags = 1};
    proto_buf_reset(&b);
    cr_assert_eq(proto_reply_reload(&b, &id, &info), PROTO_OK);
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert(!r.ok);
    cr_assert_eq(r.status, HPP_E_BAD_REQUEST);
    cr_assert_eq(r.policy_version, 7);
    cr_assert_eq(r.policy_hash.len, 64, "the hash of the version that keeps serving");
    char *json = s_json(b.data, b.len);
    cr_assert(strstr(json, "\"diagnostics\":[\"p.policy:3:9: error: unknown tier 'midd'\"]"), "%s",
              json);
    cr_assert(strstr(json, "reload rejected, version 7 keeps serving"), "%s", json);
    free(json);

    proto_stats_t st = {0};
    st.policy_version = 3;
    st.policy_hash = hash;
    st.threads = 2;
    st.policy = "policies/default.policy";
    const char *cats[] = {"policies/catalog.json"};
    st.catalogs = cats;
    st.ncatalogs = 1;
    st.requests[PROTO_OP_ROUTE] = 10;
    st.errors[HPP_E_UNKNOWN_MODEL] = 2;
    st.malformed = 4;
    st.reloads_failed = 1;
    st.dropped = 5;
    st.refused = 6;
    st.queued_bytes = 7;
    st.decision_log_dropped = 8;
    st.last_reload = info;
    proto_buf_reset(&b);
    cr_assert_eq(proto_reply_stats(&b, &id, &st), PROTO_OK);
    cr_assert_eq(proto_reply_decode(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert_eq(r.policy_version, 3);
    cr_assert_eq(r.policy_hash.len, 64);
    json = s_json(b.data, b.len);
    cr_assert(strstr(json, "\"policy_version\":3,\"policy_hash\":\"9f86d0"), "%s", json);
    cr_assert(strstr(json, "\"forbidden\":0"), "%s", json);
    cr_assert(strstr(json, "\"requests\":{\"route\":10,\"explain\":0,"), "%s", json);
    cr_assert(strstr(json, "\"unknown_model\":2"), "%s", json);
    cr_assert(strstr(json, "\"malformed\":4"), "%s", json);
    cr_assert(strstr(json, "\"reloads_failed\":1"), "%s", json);
    cr_assert(strstr(json, "\"dropped\":5,\"refused\":6,\"queued_bytes\":7,"
                           "\"decision_log_dropped\":8,"),
              "%s", json);
    cr_assert(strstr(json, "\"last_reload\":{\"ok\":false,\"at\":1700000000.0,\"trigger\":\"op\""),
              "%s", json);
    free(json);
    proto_buf_destroy(&b);
}

Test(proto_reply, models_list_from_the_catalog)
{
    eng_catalog_t *cat = s_catalog();
    proto_buf_t blob = s_buf(), b = s_buf();
    cr_assert_eq(eng_reply_models_encode(&blob, cat), PROTO_OK);
    proto_id_t id = proto_id_uint(5);
    cr_assert_eq(proto_reply_models(&b, &id, blob.data, blob.len), PROTO_OK);
    proto_models_iter_t it;
    proto_error_t err;
    cr_assert_eq(proto_models_iter_init(&it, b.data, b.len, &err), PROTO_OK, "%s", err.msg);
    size_t nm;
    const eng_model_t *models = eng_catalog_models(cat, &nm);
    size_t listed = 0;
    proto_model_info_t mi;
    bool saw_gpt5 = false;
    int rc;
    size_t frees = 0;
    while ((rc = proto_models_iter_next(&it, &mi, &err)) == 1) {
        if (listed++ == 0) {
            /* The virtual model first, with no price of its own. */
            cr_assert(s_str_is(mi.id, HPP_AUTO_MODEL));
            cr_assert_eq(mi.endpoints, 0);
            cr_assert_lt(mi.prompt, 0);
            continue;
        }
        /* `ID:free` is the free endpoint of ID, priced $0; ID alone is its
         * cheapest paid one. */
        bool is_free = mi.id.len > 5 && memcmp(mi.id.ptr + mi.id.len - 5, ":free", 5) == 0;
        const eng_model_t *m = eng_catalog_find(cat, mi.id.ptr, mi.id.len - (is_free ? 5 : 0));
        cr_assert_not_null(m, "listed model %.*s is not in the catalog", (int)mi.id.len, mi.id.ptr);
        cr_assert_eq(mi.caps, m->caps);
        cr_assert_eq(mi.context_length, m->context_length);
        cr_assert_eq(mi.free, m->free_ep >= 0);
        if (is_free) {
            frees++;
            cr_assert_eq(mi.endpoints, 1);
            cr_assert_float_eq(mi.prompt, 0, 1e-12);
            cr_assert_float_eq(mi.completion, 0, 1e-12);
        } else {
            cr_assert_geq(m->floor_ep, 0, "%s is listed but has no paid endpoint", m->id);
        }
        if (s_str_is(mi.id, "openai/gpt-5")) {
            saw_gpt5 = true;
            cr_assert_float_eq(mi.prompt, 1.25, 1e-9); /* USD per 1M tokens */
            cr_assert_float_eq(mi.completion, 10.0, 1e-9);
            cr_assert_float_eq(mi.cache_read, 0.125, 1e-9);
            cr_assert_lt(mi.cache_write, 0); /* null in the catalog: absent */
            cr_assert(mi.caps & HPP_CAP_VISION);
        }
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert(saw_gpt5);
    size_t paid = 0, free_eps = 0;
    for (size_t i = 0; i < nm; i++) {
        paid += models[i].floor_ep >= 0;
        free_eps += models[i].free_ep >= 0;
    }
    cr_assert_eq(listed, 1 + paid + free_eps);
    cr_assert_eq(frees, free_eps);
    cr_assert_gt(frees, 0);
    cr_assert_gt(listed, 5);

    /* An error reply is not a models list. */
    proto_buf_reset(&b);
    proto_reply_error(&b, NULL, HPP_E_INTERNAL, "boom");
    cr_assert_eq(proto_models_iter_init(&it, b.data, b.len, &err), PROTO_ERR_ENGINE);
    cr_assert(strstr(err.msg, "internal: boom"), "%s", err.msg);
    proto_buf_destroy(&b);
    proto_buf_destroy(&blob);
    eng_catalog_destroy(&cat);
}

Test(proto_reply, bad_replies)
{
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode("", 0, &r, &err), PROTO_ERR_NOT_MAP);
    cr_assert_eq(proto_reply_decode("\x81\xa1v\x01", 4, &r, &err), PROTO_ERR_MISSING);
    cr_assert(strstr(err.msg, "ok: required"), "%s", err.msg);
#define S_DEC(lit) proto_reply_decode(lit, sizeof lit - 1, &r, &err)
    cr_assert_eq(S_DEC("\x82\xa1v\x01\xa2ok\x01"), PROTO_ERR_TYPE);
    cr_assert(strstr(err.msg, "ok: expected boolean, got integer"), "%s", err.msg);
    cr_assert_eq(S_DEC("\x82\xa1v\x01\xa2ok"), PROTO_ERR_TRUNCATED);
    cr_assert_eq(S_DEC("\x82\xa1v\x09\xa2ok\xc3"), PROTO_ERR_VERSION);
    cr_assert_eq(S_DEC("\x82\xa1v\x01\xa2ok\xc3\xc0"), PROTO_ERR_MALFORMED);
    cr_assert_eq(S_DEC("\x92\x01\x02"), PROTO_ERR_NOT_MAP);
    /* A known key given twice, at any level, names the key and its offset
     * (PROTOCOL.md: an error for every message). */
    static const struct {
        const char *bytes;
        size_t len;
        const char *label;
        size_t offset;
    } dups[] = {
#define S_DUP(lit, label, off) {lit, sizeof lit - 1, label, off}
        S_DUP("\x84\xa1v\x01\xa2id\x07\xa2ok\xc3\xa2id\x08", "id", 12),
        S_DUP("\x83\xa1v\x01\xa2ok\xc3\xa1v\x01", "v", 8),
        S_DUP("\x83\xa1v\x01\xa2ok\xc2\xa5\x65rror\x82\xa4\x63ode\xa1x\xa4\x63ode\xa1y",
              "error.code", 22),
        S_DUP(
            "\x83\xa1v\x01\xa2ok\xc3\xa9\x63ost_pusd\x82\xa4\x66\x65\x65s\x01\xa4\x66\x65\x65s\x02",
            "cost_pusd.fees", 25),
        S_DUP("\x83\xa1v\x01\xa2ok\xc3\xa9\x66\x61llbacks\x91\x82\xa5model\xa1m\xa5model\xa1n",
              "fallbacks[].model", 28),
        S_DUP("\x84\xa1v\x01\xa2ok\xc3\xa4rule\xa1\x61\xa4rule\xa1\x62", "rule", 15),
#undef S_DUP
    };
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        cr_assert_eq(proto_reply_decode(dups[i].bytes, dups[i].len, &r, &err), PROTO_ERR_DUPLICATE,
                     "case %zu: %s", i, err.msg);
        char want[64];
        snprintf(want, sizeof want, "%s: duplicate key", dups[i].label);
        cr_assert_str_eq(err.msg, want, "case %zu", i);
        cr_assert_eq(err.offset, dups[i].offset, "case %zu: offset %zu", i, err.offset);
    }
    /* Unknown keys may repeat: they are skipped whatever they hold. */
    cr_assert_eq(S_DEC("\x84\xa1v\x01\xa2ok\xc3\xa1z\x01\xa1z\x02"), PROTO_OK, "%s", err.msg);
#undef S_DEC
}

/* peek must agree with decode on what it reports, for every reply decode
 * accepts, and fail wherever decode fails on the head. */
static void s_peek_agrees(const void *buf, size_t len)
{
    proto_reply_t full, head;
    proto_error_t ferr, herr;
    int frc = proto_reply_decode(buf, len, &full, &ferr);
    int hrc = proto_reply_peek(buf, len, &head, &herr);
    if (frc == PROTO_OK) {
        cr_assert_eq(hrc, PROTO_OK, "peek failed on a valid reply: %s", herr.msg);
        cr_assert(proto_id_equal(&head.id, &full.id));
        cr_assert_eq(head.ok, full.ok);
        cr_assert_eq(head.status, full.status);
        cr_assert_eq(head.v, full.v);
    } else if (hrc != PROTO_OK) {
        cr_assert_eq(hrc, frc, "peek %d, decode %d", hrc, frc);
        cr_assert_str_eq(herr.msg, ferr.msg);
    }
}

Test(proto_reply, peek_reads_the_head_of_a_decision)
{
    eng_catalog_t *cat = s_catalog();
    const eng_model_t *m = s_model(cat, "openai/gpt-5");
    eng_decision_t d = {.status = HPP_OK, .model = m, .endpoint = s_ep(cat, m), .rule = "code"};
    proto_buf_t b = s_buf();
    proto_id_t id = proto_id_uint(7);
    cr_assert_eq(eng_reply_decision(&b, &id, &d, cat, NULL), PROTO_OK);
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_peek(b.data, b.len, &r, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(r.id.kind, PROTO_ID_UINT);
    cr_assert_eq(r.id.num, 7);
    cr_assert(r.ok);
    cr_assert_eq(r.status, HPP_OK);
    cr_assert_eq(r.v, 1);
    cr_assert_eq(err.code, PROTO_OK);
    cr_assert_null(r.model.ptr, "peek decoded past the head");
    s_peek_agrees(b.data, b.len);
    /* Every prefix: peek may accept a cut-off body (it does not read it),
     * never a cut-off head. */
    for (size_t n = 0; n < b.len; n++) {
        s_peek_agrees(b.data, n);
        if (n <= 12) {
            cr_assert_neq(proto_reply_peek(b.data, n, &r, &err), PROTO_OK, "prefix %zu", n);
        }
    }
    proto_buf_destroy(&b);
    eng_catalog_destroy(&cat);
}

Test(proto_reply, peek_of_errors_and_other_key_orders)
{
    /* An error reply is decoded in full: code and message are there. */
    proto_buf_t b = s_buf();
    proto_id_t sid = {.kind = PROTO_ID_STR, .str = s_s("q-9")};
    cr_assert_eq(proto_reply_error(&b, &sid, HPP_E_NO_CANDIDATE, "nothing fits"), PROTO_OK);
    proto_reply_t r;
    cr_assert_eq(proto_reply_peek(b.data, b.len, &r, NULL), PROTO_OK);
    cr_assert(!r.ok);
    cr_assert_eq(r.status, HPP_E_NO_CANDIDATE);
    cr_assert(s_str_is(r.message, "nothing fits"));
    cr_assert(s_str_is(r.id.str, "q-9"));
    proto_buf_destroy(&b);

    /* Another encoder's order: other keys first, id last, or no id. */
    static const struct {
        const char *bytes;
        size_t len;
        uint64_t id; /* 0: none */
        int rc;      /* of peek */
    } cases[] = {
#define S_CASE(lit, id, rc) {lit, sizeof lit - 1, id, rc}
        S_CASE("\x84\xa5model\xa1m\xa2ok\xc3\xa1v\x01\xa2id\x05", 5, PROTO_OK),
        S_CASE("\x83\xa5other\x92\x01\x81\xa1k\xc0\xa2ok\xc3\xa1v\x01", 0, PROTO_OK),
        S_CASE("\x83\xa2ok\xc3\xa1v\x01\xa2id\xc0", 0, PROTO_OK),
        S_CASE("\x82\xa2ok\xc3\xa2id\x05", 0, PROTO_ERR_MISSING),
        S_CASE("\x83\xa1v\x01\xa2id\xc2\xa2ok\xc3", 0, PROTO_ERR_TYPE),
        S_CASE("\x83\xa1v\x02\xa2id\x05\xa2ok\xc3", 0, PROTO_ERR_VERSION),
        S_CASE("\x83\xa1v\x01\xa2id\x05\xa2ok\x01", 0, PROTO_ERR_TYPE),
        S_CASE("\x83\xa1v\x01\x07\x05\xa2ok\xc3", 0, PROTO_ERR_TYPE),
#undef S_CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_error_t err;
        int rc = proto_reply_peek(cases[i].bytes, cases[i].len, &r, &err);
        cr_assert_eq(rc, cases[i].rc, "case %zu: %d (%s)", i, rc, err.msg);
        if (rc == PROTO_OK) {
            cr_assert_eq(r.id.kind, cases[i].id ? PROTO_ID_UINT : PROTO_ID_NONE, "case %zu", i);
            cr_assert_eq(r.id.num, cases[i].id, "case %zu", i);
            cr_assert(r.ok);
        } else {
            cr_assert(err.msg[0], "case %zu: no message", i);
        }
        s_peek_agrees(cases[i].bytes, cases[i].len);
    }
}

/* `word` is one of the space-separated words of `list`. */
static bool s_word_in(const char *word, const char *list)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* A valid value for each known reply key, packed twice: every key must be
 * recognised (a key the decoder missed would be skipped as unknown and the
 * reply accepted). Nested maps likewise. */
static void s_pack_valid(s_raw_t *r, const char *key)
{
    if (!strcmp(key, "v")) {
        msgpack_pack_uint8(&r->pk, 1);
    } else if (!strcmp(key, "ok")) {
        msgpack_pack_true(&r->pk);
    } else if (!strcmp(key, "cost_usd")) {
        msgpack_pack_double(&r->pk, 1.5);
    } else if (!strcmp(key, "error") || !strcmp(key, "cost_pusd")) {
        msgpack_pack_map(&r->pk, 0);
    } else if (!strcmp(key, "fallbacks")) {
        msgpack_pack_array(&r->pk, 0);
    } else if (s_word_in(key, "model provider provider_model tier rule code message")) {
        s_kstr(r, "x");
    } else {
        msgpack_pack_uint8(&r->pk, 3); /* id, the token counts and the cost_pusd parts */
    }
}

/* Decodes {v: 1, ok: false, KEY: x, KEY: x}, the pair inside MAP ({...},
 * or [{...}] for fallbacks) when MAP is not NULL. */
static int s_decode_twice(const char *map, const char *key, proto_error_t *err)
{
    s_raw_t raw;
    s_raw_init(&raw);
    msgpack_pack_map(&raw.pk, map ? 3 : 4);
    s_kstr(&raw, "v");
    msgpack_pack_uint8(&raw.pk, 1);
    s_kstr(&raw, "ok");
    msgpack_pack_false(&raw.pk);
    if (map) {
        s_kstr(&raw, map);
        if (!strcmp(map, "fallbacks")) {
            msgpack_pack_array(&raw.pk, 1);
        }
        msgpack_pack_map(&raw.pk, 2);
    }
    for (int twice = 0; twice < 2; twice++) {
        s_kstr(&raw, key);
        s_pack_valid(&raw, key);
    }
    proto_reply_t r;
    int rc = proto_reply_decode(raw.sb.data, raw.sb.size, &r, err);
    msgpack_sbuffer_destroy(&raw.sb);
    return rc;
}

Test(proto_reply, every_known_key_given_twice_is_refused)
{
    static const struct {
        const char *map; /* NULL: the reply map itself */
        const char *keys[14];
    } maps[] = {
        {NULL,
         {"v", "ok", "id", "error", "model", "provider", "provider_model", "tier", "rule",
          "cost_usd", "cost_pusd", "output_tokens", "fallbacks", "policy_version"}},
        {"error", {"code", "message"}},
        {"cost_pusd", {"input", "output", "cache", "fees", "total"}},
        {"fallbacks", {"model", "provider", "provider_model"}},
    };
    for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++) {
        for (size_t i = 0; i < 14 && maps[m].keys[i]; i++) {
            const char *key = maps[m].keys[i];
            proto_error_t err;
            int rc = s_decode_twice(maps[m].map, key, &err);
            cr_assert_eq(rc, PROTO_ERR_DUPLICATE, "%s.%s twice: %d (%s)",
                         maps[m].map ? maps[m].map : "reply", key, rc, err.msg);
            cr_assert(strstr(err.msg, key), "%s", err.msg);
        }
    }
}

Test(proto_json, renders_any_value_and_refuses_deep_nesting)
{
    static const char mixed[] = "\x84\xa1s\xa3\x61\"\n\xa1\x66\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a"
                                "\x01\xc0\xa1\x62\xc4\x02\xab\xcd";
    char *json = s_json(mixed, sizeof mixed - 1);
    cr_assert_str_eq(json, "{\"s\":\"a\\\"\\n\",\"f\":0.1,\"1\":null,\"b\":\"abcd\"}", "%s", json);
    free(json);
    /* Shortest round-trip float form. */
    char fbuf[9] = {(char)0xcb};
    double v = 0.0125;
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++) {
        fbuf[1 + i] = (char)(bits >> (56 - 8 * i));
    }
    json = s_json(fbuf, 9);
    cr_assert_str_eq(json, "0.0125");
    free(json);

    char deep[PROTO_MAX_JSON_DEPTH + 2];
    memset(deep, 0x91, sizeof deep); /* [[[[...]]]] */
    deep[sizeof deep - 1] = (char)0xc0;
    proto_buf_t out = s_buf();
    proto_error_t err;
    cr_assert_eq(proto_to_json(deep, sizeof deep, &out, &err), PROTO_ERR_DEPTH);
    proto_buf_destroy(&out);
}

/* PROTOCOL.md examples --------------------------------------------------------- */

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (tests run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The body of the next ``` fence of `lang` after p, NUL-terminated in place. */
static char *s_fence(char **p, const char *lang)
{
    char open[16];
    snprintf(open, sizeof open, "```%s\n", lang);
    char *start = strstr(*p, open);
    cr_assert_not_null(start, "no ```%s block where expected", lang);
    start += strlen(open);
    char *end = strstr(start, "```");
    cr_assert_not_null(end);
    *end = '\0';
    *p = end + 3;
    return start;
}

/* JSON with the whitespace outside strings removed. */
static void s_compact(char *s)
{
    char *w = s;
    bool in = false, esc = false;
    for (char *r = s; *r; r++) {
        if (in) {
            esc = !esc && *r == '\\';
            in = esc || *r != '"';
        } else if (*r == '"') {
            in = true;
        } else if (*r == ' ' || *r == '\n' || *r == '\t') {
            continue;
        }
        *w++ = *r;
    }
    *w = '\0';
}

Test(protocol_md, hex_dumps_decode_as_documented)
{
    char *doc = s_slurp("proto/PROTOCOL.md");
    char *p = doc;
    int checked = 0;
    const char *marker = "<!-- example: ";
    while ((p = strstr(p, marker)) != NULL) {
        p += strlen(marker);
        char kind[32] = {0};
        cr_assert_eq(sscanf(p, "%31[a-z-]", kind), 1);
        char *hex = s_fence(&p, "hex");
        char *json = s_fence(&p, "json");
        unsigned char bytes[4096];
        size_t n = 0;
        for (char *h = hex; *h;) {
            unsigned v;
            int used;
            if (sscanf(h, " %2x%n", &v, &used) != 1) {
                break;
            }
            cr_assert_lt(n, sizeof bytes);
            bytes[n++] = (unsigned char)v;
            h += used;
        }
        cr_assert_gt(n, 0, "example %d has no bytes", checked + 1);
        char *got = s_json(bytes, n);
        s_compact(json);
        cr_assert_str_eq(got, json,
                         "example %d (%s): bytes decode to\n%s\nbut the document says\n%s",
                         checked + 1, kind, got, json);
        free(got);
        proto_error_t err;
        if (strcmp(kind, "request") == 0) {
            proto_request_t req;
            cr_assert_eq(proto_request_decode(bytes, n, &req, &err), PROTO_OK, "example %d: %s",
                         checked + 1, err.msg);
        } else if (strcmp(kind, "bad-request") == 0) {
            proto_request_t req;
            cr_assert_neq(proto_request_decode(bytes, n, &req, &err), PROTO_OK);
            cr_assert_neq(req.id.kind, PROTO_ID_NONE, "the id of a bad request is still found");
        } else {
            cr_assert_str_eq(kind, "reply");
            proto_reply_t rep;
            cr_assert_eq(proto_reply_decode(bytes, n, &rep, &err), PROTO_OK, "example %d: %s",
                         checked + 1, err.msg);
        }
        checked++;
    }
    cr_assert_geq(checked, 10, "only %d examples found in PROTOCOL.md", checked);
    free(doc);
}

/* Reports ---------------------------------------------------------------------- */

Test(report, round_trips_every_field)
{
    proto_attempt_t in[2];
    proto_attempt_init(&in[0]);
    in[0].decision = 77;
    in[0].model = s_s("openai/gpt-4o");
    in[0].provider = s_s("openai");
    in[0].status = 200;
    in[0].latency_ms = 812.5;
    in[0].ttft_ms = 210;
    in[0].tokens_per_s = 61.25;
    in[0].prompt_tokens = 1200;
    in[0].completion_tokens = 300;
    in[0].cached_tokens = 1024;
    in[0].reasoning_tokens = 100;
    in[0].cost_usd = 0.0042;
    proto_attempt_init(&in[1]);
    in[1].model = s_s("openai/gpt-4o");
    in[1].provider = s_s("azure");
    in[1].error = PROTO_XERR_TIMEOUT;
    proto_id_t id = proto_id_uint(9);
    proto_buf_t b = s_buf();
    cr_assert_eq(proto_report_encode(&b, &id, in, 2, true), PROTO_OK);
    proto_request_t req;
    proto_error_t err;
    cr_assert_eq(proto_request_decode(b.data, b.len, &req, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(req.op, PROTO_OP_REPORT);
    cr_assert(req.ack);
    cr_assert_eq(req.attempts.n, 2);
    size_t pos = 0;
    proto_attempt_t out;
    cr_assert_eq(proto_attempts_next(&req.attempts, &pos, &out, &err), 1);
    cr_assert_eq(out.decision, 77);
    cr_assert(s_str_is(out.model, "openai/gpt-4o") && s_str_is(out.provider, "openai"));
    cr_assert_eq(out.status, 200);
    cr_assert_eq(out.error, PROTO_XERR_NONE);
    cr_assert_float_eq(out.latency_ms, 812.5, 1e-9);
    cr_assert_float_eq(out.ttft_ms, 210, 1e-9);
    cr_assert_float_eq(out.tokens_per_s, 61.25, 1e-9);
    cr_assert_eq(out.prompt_tokens, 1200);
    cr_assert_eq(out.completion_tokens, 300);
    cr_assert_eq(out.cached_tokens, 1024);
    cr_assert_eq(out.reasoning_tokens, 100);
    cr_assert_float_eq(out.cost_usd, 0.0042, 1e-12);
    cr_assert_eq(proto_attempts_next(&req.attempts, &pos, &out, &err), 1);
    cr_assert(s_str_is(out.provider, "azure"));
    cr_assert_eq(out.status, 0);
    cr_assert_eq(out.error, PROTO_XERR_TIMEOUT);
    cr_assert_lt(out.latency_ms, 0, "not measured stays unset");
    cr_assert_eq(out.prompt_tokens, -1);
    cr_assert_eq(proto_attempts_next(&req.attempts, &pos, &out, &err), 0);
    /* The acknowledgement. */
    proto_buf_reset(&b);
    cr_assert_eq(proto_reply_report(&b, &id, 2), PROTO_OK);
    proto_reply_t rep;
    cr_assert_eq(proto_reply_decode(b.data, b.len, &rep, &err), PROTO_OK, "%s", err.msg);
    cr_assert(rep.ok);
    cr_assert_eq(rep.id.num, 9);
    proto_buf_destroy(&b);
}

Test(report, decision_id_travels_in_the_decision_reply)
{
    proto_decision_t d;
    memset(&d, 0, sizeof d);
    d.status = HPP_OK;
    d.endpoint.model = s_s("openai/gpt-4o");
    d.endpoint.provider = s_s("openai");
    d.endpoint.provider_model = s_s("gpt-4o");
    d.endpoint_index = PROTO_NO_INDEX;
    d.decision_id = 123456789012ULL;
    proto_id_t id = proto_id_uint(1);
    proto_buf_t b = s_buf();
    cr_assert_eq(proto_reply_decision(&b, &id, &d, NULL), PROTO_OK);
    proto_reply_t rep;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(b.data, b.len, &rep, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(rep.decision_id, 123456789012ULL);
    proto_buf_destroy(&b);
}

/* A report whose one attempt is {model, provider, [status 200], key: value}
 * where `kind` says how the value is packed. */
static void s_report_frame(s_raw_t *r, const char *key, int kind)
{
    bool outcome = strcmp(key, "status") == 0 || strcmp(key, "error") == 0;
    bool dup = strcmp(key, "model") == 0 && kind == 9;
    msgpack_pack_map(&r->pk, 4);
    s_kstr(r, "v");
    msgpack_pack_uint8(&r->pk, 1);
    s_kstr(r, "id");
    msgpack_pack_uint8(&r->pk, 3);
    s_kstr(r, "op");
    s_kstr(r, "report");
    s_kstr(r, "attempts");
    msgpack_pack_array(&r->pk, 1);
    bool own_model = strcmp(key, "model") == 0, own_provider = strcmp(key, "provider") == 0;
    msgpack_pack_map(&r->pk, 3 + !outcome - own_model - own_provider + dup);
    if (!own_model) {
        s_kstr(r, "model");
        s_kstr(r, "openai/gpt-4o");
    }
    if (!own_provider) {
        s_kstr(r, "provider");
        s_kstr(r, "openai");
    }
    if (!outcome) {
        s_kstr(r, "status");
        msgpack_pack_uint16(&r->pk, 200);
    }
    if (dup) {
        s_kstr(r, "model");
        s_kstr(r, "openai/gpt-4o");
    }
    s_kstr(r, key);
    switch (kind) {
    case 0: /* a string */
        s_kstr(r, "200");
        break;
    case 1: /* a negative integer */
        msgpack_pack_int8(&r->pk, -1);
        break;
    case 2: /* a too large number */
        msgpack_pack_double(&r->pk, 1e9);
        break;
    case 3: /* 99 */
        msgpack_pack_uint8(&r->pk, 99);
        break;
    case 4: /* an unknown word */
        s_kstr(r, "oops");
        break;
    case 5: /* an integer */
        msgpack_pack_uint8(&r->pk, 5);
        break;
    case 6: /* a name with a space */
        s_kstr(r, "open ai");
        break;
    default: /* 9: the same key again */
        s_kstr(r, "openai/gpt-4o");
        break;
    }
}

Test(report, bad_fields_are_refused_with_their_location)
{
    static const struct {
        const char *key;
        int kind;
        int code;
        const char *msg;
    } cases[] = {
        {"status", 0, PROTO_ERR_TYPE,
         "attempts[0].status: expected non-negative integer, got string"},
        {"status", 3, PROTO_ERR_RANGE,
         "attempts[0].status: expected an integer in 100 .. 599, got 99"},
        {"error", 4, PROTO_ERR_RANGE, "attempts[0].error: expected one of timeout, connect"},
        {"latency_ms", 1, PROTO_ERR_RANGE, "attempts[0].latency_ms: expected a number in 0 .."},
        {"ttft_ms", 2, PROTO_ERR_RANGE, "attempts[0].ttft_ms: expected a number in 0 .."},
        {"tokens_per_s", 0, PROTO_ERR_TYPE,
         "attempts[0].tokens_per_s: expected non-negative number"},
        {"prompt_tokens", 2, PROTO_ERR_TYPE, "attempts[0].prompt_tokens: expected non-negative"},
        {"completion_tokens", 1, PROTO_ERR_RANGE,
         "attempts[0].completion_tokens: expected an integer"},
        {"cost_usd", 0, PROTO_ERR_TYPE, "attempts[0].cost_usd: expected non-negative number"},
        {"decision", 0, PROTO_ERR_TYPE, "attempts[0].decision: expected non-negative integer"},
        {"provider", 6, PROTO_ERR_RANGE, "attempts[0].provider: "},
        {"model", 9, PROTO_ERR_DUPLICATE, "attempts[0].model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_raw_t r;
        s_raw_init(&r);
        s_report_frame(&r, cases[i].key, cases[i].kind);
        proto_request_t req;
        proto_error_t err;
        int rc = proto_request_decode(r.sb.data, r.sb.size, &req, &err);
        cr_assert_eq(rc, cases[i].code, "%s/%d: %s (%s)", cases[i].key, cases[i].kind,
                     proto_err_name(rc), err.msg);
        cr_assert(strstr(err.msg, cases[i].msg), "%s: got \"%s\"", cases[i].key, err.msg);
        cr_assert_eq(req.id.num, 3, "the id is still found");
        cr_assert_eq(req.op, PROTO_OP_REPORT, "and the op, to count the refusal");
        msgpack_sbuffer_destroy(&r.sb);
    }
}

/* Frames whose attempts as a whole are wrong, from their JSON-like spelling
 * packed by hand: each case names the message expected. */
Test(report, attempts_shape_is_checked)
{
    proto_attempt_t a[PROTO_MAX_ATTEMPTS + 1];
    for (int i = 0; i <= PROTO_MAX_ATTEMPTS; i++) {
        proto_attempt_init(&a[i]);
        a[i].model = s_s("openai/gpt-4o");
        a[i].provider = s_s("openai");
        a[i].status = 500;
    }
    proto_buf_t b = s_buf();
    proto_request_t req;
    proto_error_t err;
    /* Too many, and none. */
    cr_assert_eq(proto_report_encode(&b, NULL, a, PROTO_MAX_ATTEMPTS + 1, false), PROTO_OK);
    cr_assert_eq(proto_request_decode(b.data, b.len, &req, &err), PROTO_ERR_LIMIT);
    cr_assert(strstr(err.msg, "attempts: 65 entries, expected 1 .. 64"), "%s", err.msg);
    proto_buf_reset(&b);
    cr_assert_eq(proto_report_encode(&b, NULL, a, 0, false), PROTO_OK);
    cr_assert_eq(proto_request_decode(b.data, b.len, &req, &err), PROTO_ERR_RANGE);
    /* The second attempt is named. */
    a[1].error = PROTO_XERR_RESET; /* with its status 500: two outcomes */
    proto_buf_reset(&b);
    /* The encoder writes one outcome; a hand-made frame has both. */
    s_raw_t r;
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_kstr(&r, "op");
    s_kstr(&r, "report");
    s_kstr(&r, "attempts");
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_map(&r.pk, 3);
    s_kstr(&r, "model");
    s_kstr(&r, "openai/gpt-4o");
    s_kstr(&r, "provider");
    s_kstr(&r, "openai");
    s_kstr(&r, "status");
    msgpack_pack_uint16(&r.pk, 200);
    msgpack_pack_map(&r.pk, 4);
    s_kstr(&r, "model");
    s_kstr(&r, "openai/gpt-4o");
    s_kstr(&r, "provider");
    s_kstr(&r, "openai");
    s_kstr(&r, "status");
    msgpack_pack_uint16(&r.pk, 500);
    s_kstr(&r, "error");
    s_kstr(&r, "reset");
    msgpack_pack_uint8(&r.pk, 7);
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, &err), PROTO_ERR_DUPLICATE);
    cr_assert(strstr(err.msg, "attempts[1]: status and error both given"), "%s", err.msg);
    msgpack_sbuffer_destroy(&r.sb);
    /* Missing pieces: the attempts, an attempt's provider. */
    s_raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    s_kstr(&r, "v");
    msgpack_pack_uint8(&r.pk, 1);
    s_kstr(&r, "op");
    s_kstr(&r, "report");
    cr_assert_eq(proto_request_decode(r.sb.data, r.sb.size, &req, &err), PROTO_ERR_MISSING);
    cr_assert(strstr(err.msg, "attempts: required key missing for report"), "%s", err.msg);
    msgpack_sbuffer_destroy(&r.sb);
    a[0].provider = s_s("");
    proto_buf_reset(&b);
    cr_assert_eq(proto_report_encode(&b, NULL, a, 1, false), PROTO_OK);
    cr_assert_neq(proto_request_decode(b.data, b.len, &req, &err), PROTO_OK);
    cr_assert(strstr(err.msg, "attempts[0].provider"), "%s", err.msg);
    a[0].provider = s_s("openai");
    a[0].prompt_tokens = 10;
    a[0].cached_tokens = 11;
    proto_buf_reset(&b);
    cr_assert_eq(proto_report_encode(&b, NULL, a, 1, false), PROTO_OK);
    cr_assert_eq(proto_request_decode(b.data, b.len, &req, &err), PROTO_ERR_RANGE);
    cr_assert(strstr(err.msg, "attempts[0].cached_tokens: 11 exceeds prompt_tokens 10"), "%s",
              err.msg);
    proto_buf_destroy(&b);
}
