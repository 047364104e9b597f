/* sc_json.h - a strict JSON reader for request bodies, without a tree of
 * heap nodes.
 *
 * The sidecar parses one Chat Completions body per request. A general DOM
 * (jansson) costs a malloc per value and a hash table per object, which was
 * a third of the sidecar's CPU time. This reader parses into a flat array of
 * nodes (a "tape") and one arena of unescaped, NUL-terminated strings, both
 * owned by a reusable document: after the first few requests a parse makes
 * no allocation at all. Every node remembers its byte span in the source, so
 * the proxy can forward the body as received with only `model` replaced and
 * `hpp` cut out, instead of re-serialising it.
 *
 * It accepts exactly RFC 8259 JSON, with the same refusals as jansson's
 * json_loadb(JSON_REJECT_DUPLICATES), which it replaces on this path:
 * invalid UTF-8, "\u0000", duplicate keys in one object, integers outside
 * int64, reals that overflow, nesting deeper than SC_JSON_MAX_DEPTH, and
 * anything but whitespace after the value.
 *
 *   sc_jdoc_t *d = sc_jdoc_new();
 *   sc_jerr_t e;
 *   sc_jv_t root = sc_jdoc_parse(d, body, len, &e);
 *   if (root == SC_JNONE) ... e.text, e.line, e.column ...
 *   sc_jv_t msgs = sc_jget(d, root, "messages");
 *   for (sc_jv_t m = sc_jfirst(d, msgs); m != SC_JNONE; m = sc_jnext(d, m)) ...
 *   for (sc_jv_t k = sc_jfirst(d, obj); k != SC_JNONE; k = sc_jnext(d, sc_jval(k))) ...
 *
 * Values are node handles (sc_jv_t), valid until the next parse or
 * sc_jdoc_destroy. SC_JNONE stands for "absent": every accessor accepts it
 * and answers as for a missing value, so lookups chain without checks.
 */
#ifndef SC_JSON_H
#define SC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deeper nesting is refused (the parser itself does not recurse). */
#define SC_JSON_MAX_DEPTH 512

typedef enum {
    SC_J_NONE = 0, /* absent (SC_JNONE) */
    SC_J_NULL,
    SC_J_FALSE,
    SC_J_TRUE,
    SC_J_INT,    /* a number without fraction or exponent that fits int64 */
    SC_J_REAL,   /* any other number */
    SC_J_STRING, /* also the type of an object's keys */
    SC_J_ARRAY,
    SC_J_OBJECT,
} sc_jtype_t;

typedef uint32_t sc_jv_t; /* node handle */
#define SC_JNONE ((sc_jv_t)0)

typedef struct {
    char text[128]; /* what is wrong: "invalid UTF-8 in string", ... */
    int line;       /* 1-based line of the offending byte */
    int column;     /* 1-based column (bytes) */
    size_t offset;  /* byte offset */
} sc_jerr_t;

typedef struct sc_jdoc sc_jdoc_t;

/* Returns an empty document, or NULL when out of memory. */
sc_jdoc_t *sc_jdoc_new(void);

/* Frees the document and its buffers; sets *self_p to NULL. Idempotent. */
void sc_jdoc_destroy(sc_jdoc_t **self_p);

/* Parses `len` bytes (need not be NUL-terminated; the buffer is only read
 * during the call). Returns the root value, or SC_JNONE with `err` filled
 * (also when memory runs out: "out of memory"). err->text is one of a fixed
 * set of short messages, e.g. "nesting too deep", "duplicate object key".
 * Handles of a previous parse become invalid. */
sc_jv_t sc_jdoc_parse(sc_jdoc_t *self, const char *buf, size_t len, sc_jerr_t *err);

/* Type of a value; SC_J_NONE for SC_JNONE. */
sc_jtype_t sc_jtype(const sc_jdoc_t *self, sc_jv_t v);

/* Type name for messages: "object", "array", "string", "integer", "real",
 * "true", "false", "null", "nothing". */
const char *sc_jtype_name(sc_jtype_t t);

static inline bool sc_jis(const sc_jdoc_t *self, sc_jv_t v, sc_jtype_t t)
{
    return sc_jtype(self, v) == t;
}

/* A string value (or key), unescaped and NUL-terminated, with its length in
 * *len (when not NULL; it may contain no NUL since "\u0000" is refused).
 * NULL (and *len 0) when v is not a string. */
const char *sc_jstr(const sc_jdoc_t *self, sc_jv_t v, size_t *len);

/* An integer's value; 0 when v is not SC_J_INT. */
int64_t sc_jint(const sc_jdoc_t *self, sc_jv_t v);

/* A number's value as double (integers converted); 0 when not a number. */
double sc_jnum(const sc_jdoc_t *self, sc_jv_t v);

/* Elements of an array or members of an object; 0 for anything else. */
size_t sc_jsize(const sc_jdoc_t *self, sc_jv_t v);

/* First element of an array, or first key of an object; SC_JNONE when
 * empty or not a container. */
sc_jv_t sc_jfirst(const sc_jdoc_t *self, sc_jv_t v);

/* The element after an array element, or the key after a member's value
 * (pass the value: sc_jnext(d, sc_jval(k))); SC_JNONE after the last. On a
 * key it gives that key's value: members chain key -> value -> next key. */
sc_jv_t sc_jnext(const sc_jdoc_t *self, sc_jv_t v);

/* The value of the member whose key is k. */
static inline sc_jv_t sc_jval(sc_jv_t k)
{
    return k == SC_JNONE ? SC_JNONE : k + 1;
}

/* Value of `key` in an object (keys compared after unescaping); SC_JNONE
 * when absent or when obj is not an object. Linear in the members. */
sc_jv_t sc_jget(const sc_jdoc_t *self, sc_jv_t obj, const char *key);

/* The i-th element of an array; SC_JNONE when out of range. Linear in i. */
sc_jv_t sc_jat(const sc_jdoc_t *self, sc_jv_t arr, size_t i);

/* Byte span [*start, *end) of a value (or key, quotes included) in the
 * parsed source; both 0 for SC_JNONE. */
void sc_jspan(const sc_jdoc_t *self, sc_jv_t v, size_t *start, size_t *end);

#endif
