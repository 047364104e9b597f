/* oai_json.h - a strict JSON reader for request bodies, without a tree of
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
 * int64, reals that overflow, nesting deeper than OAI_JSON_MAX_DEPTH, and
 * anything but whitespace after the value.
 *
 *   oai_jdoc_t *d = oai_jdoc_new();
 *   oai_jerr_t e;
 *   oai_jv_t root = oai_jdoc_parse(d, body, len, &e);
 *   if (root == OAI_JNONE) ... e.text, e.line, e.column ...
 *   oai_jv_t msgs = oai_jget(d, root, "messages");
 *   for (oai_jv_t m = oai_jfirst(d, msgs); m != OAI_JNONE; m = oai_jnext(d, m)) ...
 *   for (oai_jv_t k = oai_jfirst(d, obj); k != OAI_JNONE; k = oai_jnext(d, oai_jval(k))) ...
 *
 * Values are node handles (oai_jv_t), valid until the next parse or
 * oai_jdoc_destroy. OAI_JNONE stands for "absent": every accessor accepts it
 * and answers as for a missing value, so lookups chain without checks.
 */
#ifndef OAI_JSON_H
#define OAI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deeper nesting is refused (the parser itself does not recurse). */
#define OAI_JSON_MAX_DEPTH 512

typedef enum {
    OAI_J_NONE = 0, /* absent (OAI_JNONE) */
    OAI_J_NULL,
    OAI_J_FALSE,
    OAI_J_TRUE,
    OAI_J_INT,    /* a number without fraction or exponent that fits int64 */
    OAI_J_REAL,   /* any other number */
    OAI_J_STRING, /* also the type of an object's keys */
    OAI_J_ARRAY,
    OAI_J_OBJECT,
} oai_jtype_t;

typedef uint32_t oai_jv_t; /* node handle */
#define OAI_JNONE ((oai_jv_t)0)

typedef struct {
    char text[128]; /* what is wrong: "invalid UTF-8 in string", ... */
    int line;       /* 1-based line of the offending byte */
    int column;     /* 1-based column (bytes) */
    size_t offset;  /* byte offset */
} oai_jerr_t;

typedef struct oai_jdoc oai_jdoc_t;

/* Returns an empty document, or NULL when out of memory. */
oai_jdoc_t *oai_jdoc_new(void);

/* Frees the document and its buffers; sets *self_p to NULL. Idempotent. */
void oai_jdoc_destroy(oai_jdoc_t **self_p);

/* Parses `len` bytes (need not be NUL-terminated; the buffer is only read
 * during the call). Returns the root value, or OAI_JNONE with `err` filled
 * (also when memory runs out: "out of memory"). err->text is one of a fixed
 * set of short messages, e.g. "nesting too deep", "duplicate object key".
 * Handles of a previous parse become invalid. */
oai_jv_t oai_jdoc_parse(oai_jdoc_t *self, const char *buf, size_t len, oai_jerr_t *err);

/* Type of a value; OAI_J_NONE for OAI_JNONE. */
oai_jtype_t oai_jtype(const oai_jdoc_t *self, oai_jv_t v);

/* Type name for messages: "object", "array", "string", "integer", "real",
 * "true", "false", "null", "nothing". */
const char *oai_jtype_name(oai_jtype_t t);

static inline bool oai_jis(const oai_jdoc_t *self, oai_jv_t v, oai_jtype_t t)
{
    return oai_jtype(self, v) == t;
}

/* A string value (or key), unescaped and NUL-terminated, with its length in
 * *len (when not NULL; it may contain no NUL since "\u0000" is refused).
 * NULL (and *len 0) when v is not a string. */
const char *oai_jstr(const oai_jdoc_t *self, oai_jv_t v, size_t *len);

/* An integer's value; 0 when v is not OAI_J_INT. */
int64_t oai_jint(const oai_jdoc_t *self, oai_jv_t v);

/* A number's value as double (integers converted); 0 when not a number. */
double oai_jnum(const oai_jdoc_t *self, oai_jv_t v);

/* Elements of an array or members of an object; 0 for anything else. */
size_t oai_jsize(const oai_jdoc_t *self, oai_jv_t v);

/* First element of an array, or first key of an object; OAI_JNONE when
 * empty or not a container. */
oai_jv_t oai_jfirst(const oai_jdoc_t *self, oai_jv_t v);

/* The element after an array element, or the key after a member's value
 * (pass the value: oai_jnext(d, oai_jval(k))); OAI_JNONE after the last. On a
 * key it gives that key's value: members chain key -> value -> next key. */
oai_jv_t oai_jnext(const oai_jdoc_t *self, oai_jv_t v);

/* The value of the member whose key is k. */
static inline oai_jv_t oai_jval(oai_jv_t k)
{
    return k == OAI_JNONE ? OAI_JNONE : k + 1;
}

/* Value of `key` in an object (keys compared after unescaping); OAI_JNONE
 * when absent or when obj is not an object. Linear in the members. */
oai_jv_t oai_jget(const oai_jdoc_t *self, oai_jv_t obj, const char *key);

/* The i-th element of an array; OAI_JNONE when out of range. Linear in i. */
oai_jv_t oai_jat(const oai_jdoc_t *self, oai_jv_t arr, size_t i);

/* Byte span [*start, *end) of a value (or key, quotes included) in the
 * parsed source; both 0 for OAI_JNONE. */
void oai_jspan(const oai_jdoc_t *self, oai_jv_t v, size_t *start, size_t *end);

#endif
