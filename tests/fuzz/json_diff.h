/* json_diff.h - compares a document read by oai_json with jansson's tree of
 * the same bytes, and checks the spans oai_json recorded against the source.
 *
 * Shared by the differential fuzz target (tests/fuzz/fuzz_json.c) and the
 * unit suite (tests/unit/test_json.c) so that both hold oai_json to the same
 * definition of "the same JSON": equal types, strings equal byte for byte,
 * equal integers, reals equal with == and of the same sign, arrays equal in
 * order, objects with the same keys (order ignored: jansson hashes them).
 * Recursion is fine here: oai_json refuses nesting deeper than 512.
 */
#ifndef JSON_DIFF_H
#define JSON_DIFF_H

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "oai_json.h"

/* Flags of the jansson parse oai_json mirrors (any top-level value). */
#define JSON_DIFF_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* True when jansson accepts an input only because of its lookahead quirk:
 * a NUL byte read just after a number or a literal is pushed back into a
 * NUL-terminated buffer, which then looks empty, so the byte is dropped
 * ("[1\0]" loads as [1]). oai_json refuses any NUL outside a string, as
 * RFC 8259 does; `off` is where it stopped. */
static inline bool json_diff_jansson_nul_quirk(const char *buf, size_t len, size_t off)
{
    if (off == 0 || off >= len || buf[off] != '\0') {
        return false;
    }
    unsigned char prev = (unsigned char)buf[off - 1];
    return (prev >= '0' && prev <= '9') || (prev >= 'a' && prev <= 'z');
}

/* NULL when v and j are the same value, else what differs. */
static inline const char *json_diff_value(const oai_jdoc_t *d, oai_jv_t v, const json_t *j)
{
    size_t len;
    const char *s;
    switch (oai_jtype(d, v)) {
    case OAI_J_NULL:
        return json_is_null(j) ? NULL : "null vs other type";
    case OAI_J_TRUE:
        return json_is_true(j) ? NULL : "true vs other type";
    case OAI_J_FALSE:
        return json_is_false(j) ? NULL : "false vs other type";
    case OAI_J_INT:
        if (!json_is_integer(j)) {
            return "integer vs other type";
        }
        return oai_jint(d, v) == json_integer_value(j) ? NULL : "integers differ";
    case OAI_J_REAL:
        if (!json_is_real(j)) {
            return "real vs other type";
        }
        if (oai_jnum(d, v) != json_real_value(j) ||
            !signbit(oai_jnum(d, v)) != !signbit(json_real_value(j))) {
            return "reals differ";
        }
        return NULL;
    case OAI_J_STRING:
        if (!json_is_string(j)) {
            return "string vs other type";
        }
        s = oai_jstr(d, v, &len);
        if (!s || len != json_string_length(j) || memcmp(s, json_string_value(j), len) != 0 ||
            s[len] != '\0') {
            return "strings differ";
        }
        return NULL;
    case OAI_J_ARRAY: {
        if (!json_is_array(j)) {
            return "array vs other type";
        }
        if (oai_jsize(d, v) != json_array_size(j)) {
            return "array sizes differ";
        }
        size_t i = 0;
        for (oai_jv_t e = oai_jfirst(d, v); e != OAI_JNONE; e = oai_jnext(d, e), i++) {
            const char *why = i < json_array_size(j) ? json_diff_value(d, e, json_array_get(j, i))
                                                     : "array chain longer than its size";
            if (why) {
                return why;
            }
        }
        return i == json_array_size(j) ? NULL : "array chain shorter than its size";
    }
    case OAI_J_OBJECT: {
        if (!json_is_object(j)) {
            return "object vs other type";
        }
        if (oai_jsize(d, v) != json_object_size(j)) {
            return "object sizes differ";
        }
        size_t n = 0;
        for (oai_jv_t k = oai_jfirst(d, v); k != OAI_JNONE; k = oai_jnext(d, oai_jval(k)), n++) {
            s = oai_jstr(d, k, &len);
            if (!s || oai_jnext(d, k) != oai_jval(k)) {
                return "bad key node";
            }
            /* oai_jget must find the member too (first match wins; keys are unique). */
            if (oai_jget(d, v, s) != oai_jval(k)) {
                return "oai_jget misses a key";
            }
            const json_t *m = json_object_getn(j, s, len);
            const char *why = m ? json_diff_value(d, oai_jval(k), m) : "key missing in jansson";
            if (why) {
                return why;
            }
        }
        return n == json_object_size(j) ? NULL : "object chain length differs from its size";
    }
    default:
        return "no value";
    }
}

/* NULL when the span of v (and of everything in it) is plausible: inside
 * [lo, hi), and a scalar's or key's span alone parses to the same value. */
static inline const char *json_diff_spans(const oai_jdoc_t *d, oai_jv_t v, const char *buf,
                                          size_t lo, size_t hi)
{
    size_t start, end;
    oai_jspan(d, v, &start, &end);
    if (start < lo || end > hi || start >= end) {
        return "span out of its parent";
    }
    oai_jtype_t t = oai_jtype(d, v);
    if (t == OAI_J_ARRAY || t == OAI_J_OBJECT) {
        bool arr = t == OAI_J_ARRAY;
        if (buf[start] != (arr ? '[' : '{') || buf[end - 1] != (arr ? ']' : '}')) {
            return "container span is not bracketed";
        }
        size_t at = start + 1;
        for (oai_jv_t c = oai_jfirst(d, v); c != OAI_JNONE; c = oai_jnext(d, c)) {
            const char *why = json_diff_spans(d, c, buf, at, end - 1);
            if (why) {
                return why;
            }
            oai_jspan(d, c, &start, &at); /* the next child starts after this one */
        }
        return NULL;
    }
    json_t *alone = json_loadb(buf + start, end - start, JSON_DIFF_FLAGS, NULL);
    const char *why = alone ? json_diff_value(d, v, alone) : "span alone is not JSON";
    json_decref(alone);
    return why;
}

/* NULL when the document rooted at root is the same as j and its spans fit
 * the `len`-byte source buf. */
static inline const char *json_diff(const oai_jdoc_t *d, oai_jv_t root, const json_t *j,
                                    const char *buf, size_t len)
{
    const char *why = json_diff_value(d, root, j);
    return why ? why : json_diff_spans(d, root, buf, 0, len);
}

#endif
