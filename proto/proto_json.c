/* proto_json.c - any msgpack value rendered as JSON text.
 *
 * For humans and for tools that speak JSON (the example client prints
 * replies with it, tests compare against it). Recursion is bounded by
 * PROTO_MAX_JSON_DEPTH so a hostile frame of nested arrays cannot exhaust
 * the stack; the reader's own checks bound everything else.
 */
#include "proto_mp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_put(proto_buf_t *b, const char *s, size_t n)
{
    proto_buf_append(b, s, n);
}

static void s_puts(proto_buf_t *b, const char *s)
{
    s_put(b, s, strlen(s));
}

/* JSON string body with escapes; bytes that are not valid UTF-8 become \u00XX. */
static void s_string(proto_buf_t *b, const char *s, size_t n)
{
    s_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            s_put(b, esc, 2);
        } else if (c == '\n') {
            s_put(b, "\\n", 2);
        } else if (c == '\t') {
            s_put(b, "\\t", 2);
        } else if (c == '\r') {
            s_put(b, "\\r", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            s_put(b, esc, 6);
        } else if (c < 0x80) {
            s_put(b, (const char *)&s[i], 1);
        } else {
            size_t u = proto_utf8_len((const unsigned char *)s + i, n - i);
            if (u == 0) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                s_put(b, esc, 6);
            } else {
                s_put(b, s + i, u);
                i += u - 1;
            }
        }
    }
    s_put(b, "\"", 1);
}

static int s_value(proto_rd_t *rd, proto_buf_t *b, int depth, proto_error_t *err);

static int s_fail(proto_error_t *err, int code, size_t off, const char *msg)
{
    if (err) {
        err->code = code;
        err->offset = off;
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return code;
}

/* A map key: strings as they are, scalars as their text, containers refused. */
static int s_key(proto_rd_t *rd, proto_buf_t *b, proto_error_t *err)
{
    size_t off = proto_rd_offset(rd);
    proto_mp_val_t k;
    int rc = proto_rd_next(rd, &k);
    if (rc != PROTO_OK) {
        return s_fail(err, rc, off, "input ends inside a map key");
    }
    char tmp[40];
    switch (k.type) {
    case PROTO_MP_STR:
        s_string(b, k.ptr, k.len);
        return PROTO_OK;
    case PROTO_MP_UINT:
        snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)k.u);
        break;
    case PROTO_MP_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)k.i);
        break;
    case PROTO_MP_BOOL:
        snprintf(tmp, sizeof tmp, "%s", k.b ? "true" : "false");
        break;
    case PROTO_MP_NIL:
        snprintf(tmp, sizeof tmp, "null");
        break;
    default:
        return s_fail(err, PROTO_ERR_TYPE, off, "map key of a type JSON cannot show");
    }
    s_string(b, tmp, strlen(tmp));
    return PROTO_OK;
}

static int s_value(proto_rd_t *rd, proto_buf_t *b, int depth, proto_error_t *err)
{
    size_t off = proto_rd_offset(rd);
    proto_mp_val_t v;
    int rc = proto_rd_next(rd, &v);
    if (rc != PROTO_OK) {
        return s_fail(err, rc, off,
                      rc == PROTO_ERR_TRUNCATED ? "input ends inside a value"
                                                : "invalid msgpack byte 0xc1");
    }
    char tmp[48];
    switch (v.type) {
    case PROTO_MP_NIL:
    case PROTO_MP_EXT:
        s_puts(b, "null");
        break;
    case PROTO_MP_BOOL:
        s_puts(b, v.b ? "true" : "false");
        break;
    case PROTO_MP_UINT:
        snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v.u);
        s_puts(b, tmp);
        break;
    case PROTO_MP_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.i);
        s_puts(b, tmp);
        break;
    case PROTO_MP_FLOAT:
        if (isfinite(v.f) && v.f == floor(v.f) && fabs(v.f) < 1e15) {
            /* Integral floats keep a ".0" so JSON shows they are floats. */
            snprintf(tmp, sizeof tmp, "%.1f", v.f);
            s_puts(b, tmp);
        } else if (isfinite(v.f)) {
            snprintf(tmp, sizeof tmp, "%.17g", v.f);
            /* Shortest form that reads back the same double. */
            for (int prec = 1; prec < 17; prec++) {
                char shorter[48];
                snprintf(shorter, sizeof shorter, "%.*g", prec, v.f);
                if (strtod(shorter, NULL) == v.f) {
                    memcpy(tmp, shorter, sizeof shorter);
                    break;
                }
            }
            s_puts(b, tmp);
        } else {
            s_puts(b, "null");
        }
        break;
    case PROTO_MP_STR:
        s_string(b, v.ptr, v.len);
        break;
    case PROTO_MP_BIN:
        s_put(b, "\"", 1);
        for (uint32_t i = 0; i < v.len; i++) {
            snprintf(tmp, sizeof tmp, "%02x", (unsigned char)v.ptr[i]);
            s_put(b, tmp, 2);
        }
        s_put(b, "\"", 1);
        break;
    case PROTO_MP_ARRAY:
    case PROTO_MP_MAP:
        if (depth >= PROTO_MAX_JSON_DEPTH) {
            return s_fail(err, PROTO_ERR_DEPTH, off, "nesting too deep");
        }
        s_put(b, v.type == PROTO_MP_MAP ? "{" : "[", 1);
        for (uint32_t i = 0; i < v.n; i++) {
            if (i > 0) {
                s_put(b, ",", 1);
            }
            if (v.type == PROTO_MP_MAP) {
                rc = s_key(rd, b, err);
                if (rc != PROTO_OK) {
                    return rc;
                }
                s_put(b, ":", 1);
            }
            rc = s_value(rd, b, depth + 1, err);
            if (rc != PROTO_OK) {
                return rc;
            }
        }
        s_put(b, v.type == PROTO_MP_MAP ? "}" : "]", 1);
        break;
    }
    return PROTO_OK;
}

int proto_to_json(const void *buf, size_t len, proto_buf_t *out, proto_error_t *err)
{
    proto_rd_t rd;
    proto_rd_init(&rd, buf, len);
    int rc = s_value(&rd, out, 0, err);
    if (rc == PROTO_OK && rd.p != rd.end) {
        rc = s_fail(err, PROTO_ERR_MALFORMED, proto_rd_offset(&rd), "bytes after the value");
    }
    if (rc == PROTO_OK) {
        proto_buf_append(out, "", 1); /* NUL, not counted */
        if (!out->overflow) {
            out->len--;
        }
    }
    if (out->overflow) {
        return s_fail(err, PROTO_ERR_NOSPACE, 0, "output buffer full");
    }
    return rc;
}
