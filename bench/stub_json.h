/* stub_json.h - the upstream stand-in's one-pass scan of a chat request body.
 *
 * The stub must answer far faster than anything it stands behind, so it does
 * not build a JSON tree: it walks the top-level object once, keeps the raw
 * bytes of "model" (a slice of the body, still JSON-escaped) and the value of
 * "stream", and skips every other value with a bounded-depth validator.
 * Header-only (static inline) so that bench/upstream_stub.c and the fuzz
 * target tests/fuzz/fuzz_stub_json.c compile the very same code.
 * Rejects what a JSON parser rejects at this level: bad tokens, raw control
 * characters in strings (they could otherwise reach an HTTP header), nesting
 * deeper than STUB_JSON_MAX_DEPTH, trailing bytes after the object.
 */
#ifndef STUB_JSON_H
#define STUB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define STUB_JSON_MAX_DEPTH 64 /* deeper bodies are rejected: bounds the recursion */

typedef enum {
    STUB_JSON_OK = 0,
    STUB_JSON_SYNTAX = -1,   /* not JSON, or not an object at the top */
    STUB_JSON_DEPTH = -2,    /* nested deeper than STUB_JSON_MAX_DEPTH */
    STUB_JSON_NO_MODEL = -3, /* no "model" string at the top level */
} stub_json_rc_t;

typedef struct {
    const char *model; /* raw bytes of the "model" value, inside the quotes */
    size_t model_len;  /* their count */
    bool stream;       /* "stream": true */
    size_t err_off;    /* byte offset of the first error */
} stub_json_req_t;

typedef struct {
    const char *p; /* body */
    size_t n;      /* its length */
    size_t i;      /* read position */
} stub_json_cur_t;

static inline void stub_json_ws(stub_json_cur_t *c)
{
    while (c->i < c->n &&
           (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\n' || c->p[c->i] == '\r')) {
        c->i++;
    }
}

/* Reads a string at c->i (which must be '"'); sets *s and *len to its raw inside. */
static inline int stub_json_string(stub_json_cur_t *c, const char **s, size_t *len)
{
    if (c->i >= c->n || c->p[c->i] != '"') {
        return STUB_JSON_SYNTAX;
    }
    size_t start = ++c->i;
    while (c->i < c->n) {
        unsigned char ch = (unsigned char)c->p[c->i];
        if (ch == '"') {
            *s = c->p + start;
            *len = c->i - start;
            c->i++;
            return STUB_JSON_OK;
        }
        if (ch < 0x20) {
            return STUB_JSON_SYNTAX;
        }
        if (ch == '\\') {
            if (c->i + 1 >= c->n) {
                return STUB_JSON_SYNTAX;
            }
            char e = c->p[c->i + 1];
            if (e == 'u') {
                if (c->i + 5 >= c->n) {
                    return STUB_JSON_SYNTAX;
                }
                for (size_t k = 2; k < 6; k++) {
                    char h = c->p[c->i + k];
                    bool hex =
                        (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
                    if (!hex) {
                        return STUB_JSON_SYNTAX;
                    }
                }
                c->i += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return STUB_JSON_SYNTAX;
            }
            c->i += 2;
            continue;
        }
        c->i++;
    }
    return STUB_JSON_SYNTAX;
}

static inline int stub_json_number(stub_json_cur_t *c)
{
    size_t start = c->i;
    if (c->i < c->n && c->p[c->i] == '-') {
        c->i++;
    }
    size_t digits = 0;
    while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
        c->i++;
        digits++;
    }
    if (digits == 0) {
        c->i = start;
        return STUB_JSON_SYNTAX;
    }
    if (c->i < c->n && c->p[c->i] == '.') {
        c->i++;
        size_t frac = 0;
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
            c->i++;
            frac++;
        }
        if (frac == 0) {
            return STUB_JSON_SYNTAX;
        }
    }
    if (c->i < c->n && (c->p[c->i] == 'e' || c->p[c->i] == 'E')) {
        c->i++;
        if (c->i < c->n && (c->p[c->i] == '+' || c->p[c->i] == '-')) {
            c->i++;
        }
        size_t exp = 0;
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
            c->i++;
            exp++;
        }
        if (exp == 0) {
            return STUB_JSON_SYNTAX;
        }
    }
    return STUB_JSON_OK;
}

static inline int stub_json_literal(stub_json_cur_t *c, const char *word)
{
    size_t len = strlen(word);
    if (c->n - c->i < len || memcmp(c->p + c->i, word, len) != 0) {
        return STUB_JSON_SYNTAX;
    }
    c->i += len;
    return STUB_JSON_OK;
}

/* Skips one value of any type; depth counts the containers around it. */
static inline int stub_json_value(stub_json_cur_t *c, int depth)
{
    stub_json_ws(c);
    if (c->i >= c->n) {
        return STUB_JSON_SYNTAX;
    }
    char ch = c->p[c->i];
    if (ch == '"') {
        const char *s;
        size_t len;
        return stub_json_string(c, &s, &len);
    }
    if (ch == 't') {
        return stub_json_literal(c, "true");
    }
    if (ch == 'f') {
        return stub_json_literal(c, "false");
    }
    if (ch == 'n') {
        return stub_json_literal(c, "null");
    }
    if (ch != '{' && ch != '[') {
        return stub_json_number(c);
    }
    if (depth >= STUB_JSON_MAX_DEPTH) {
        return STUB_JSON_DEPTH;
    }
    char close = ch == '{' ? '}' : ']';
    c->i++;
    stub_json_ws(c);
    if (c->i < c->n && c->p[c->i] == close) {
        c->i++;
        return STUB_JSON_OK;
    }
    for (;;) {
        if (close == '}') {
            const char *k;
            size_t klen;
            stub_json_ws(c);
            if (stub_json_string(c, &k, &klen) != STUB_JSON_OK) {
                return STUB_JSON_SYNTAX;
            }
            stub_json_ws(c);
            if (c->i >= c->n || c->p[c->i] != ':') {
                return STUB_JSON_SYNTAX;
            }
            c->i++;
        }
        int rc = stub_json_value(c, depth + 1);
        if (rc != STUB_JSON_OK) {
            return rc;
        }
        stub_json_ws(c);
        if (c->i >= c->n) {
            return STUB_JSON_SYNTAX;
        }
        if (c->p[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->p[c->i] == close) {
            c->i++;
            return STUB_JSON_OK;
        }
        return STUB_JSON_SYNTAX;
    }
}

/* Scans a request body: a JSON object whose "model" is a string. Fills `out`
 * (model borrows from `p`). Returns STUB_JSON_OK or a negative stub_json_rc_t
 * with out->err_off set. A later duplicate "model" key wins, as in most
 * parsers. */
static inline int stub_json_scan(const char *p, size_t n, stub_json_req_t *out)
{
    stub_json_cur_t c = {p, n, 0};
    memset(out, 0, sizeof(*out));
    int rc = STUB_JSON_SYNTAX;
    stub_json_ws(&c);
    if (c.i >= c.n || c.p[c.i] != '{') {
        goto fail;
    }
    c.i++;
    stub_json_ws(&c);
    bool empty = c.i < c.n && c.p[c.i] == '}';
    if (empty) {
        c.i++;
    }
    while (!empty) {
        const char *k;
        size_t klen;
        stub_json_ws(&c);
        if ((rc = stub_json_string(&c, &k, &klen)) != STUB_JSON_OK) {
            goto fail;
        }
        stub_json_ws(&c);
        if (c.i >= c.n || c.p[c.i] != ':') {
            rc = STUB_JSON_SYNTAX;
            goto fail;
        }
        c.i++;
        stub_json_ws(&c);
        size_t vstart = c.i;
        if ((rc = stub_json_value(&c, 1)) != STUB_JSON_OK) {
            goto fail;
        }
        if (klen == 5 && memcmp(k, "model", 5) == 0) {
            if (c.p[vstart] == '"') {
                out->model = c.p + vstart + 1;
                out->model_len = c.i - vstart - 2;
            } else {
                out->model = NULL;
                out->model_len = 0;
            }
        } else if (klen == 6 && memcmp(k, "stream", 6) == 0) {
            out->stream = c.i - vstart == 4 && memcmp(c.p + vstart, "true", 4) == 0;
        }
        stub_json_ws(&c);
        if (c.i < c.n && c.p[c.i] == ',') {
            c.i++;
            continue;
        }
        if (c.i < c.n && c.p[c.i] == '}') {
            c.i++;
            break;
        }
        rc = STUB_JSON_SYNTAX;
        goto fail;
    }
    stub_json_ws(&c);
    if (c.i != c.n) {
        rc = STUB_JSON_SYNTAX;
        goto fail;
    }
    if (out->model == NULL || out->model_len == 0) {
        rc = STUB_JSON_NO_MODEL;
        goto fail;
    }
    return STUB_JSON_OK;
fail:
    out->err_off = c.i;
    out->model = NULL;
    out->model_len = 0;
    return rc;
}

#endif
