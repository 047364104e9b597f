/* oai_request.c - OpenAI Chat Completions body + X-HPP-* headers -> features.
 *
 * The context owns the parsed body (an oai_json document: strings borrowed by
 * the features point into its arena; forwarding splices the caller's bytes,
 * which are not copied), a copy of our header values and the prompt text
 * sample.
 * Fields are read through tables (top-level keys, `hpp` keys, content part
 * types, headers) so the accepted names and the "expected one of" hints come
 * from one place. Unknown top-level keys are the upstream's business and are
 * forwarded untouched; unknown keys inside our own `hpp` object are errors,
 * because a typo there would silently change a routing decision.
 *
 * Precedence: a header replaces the body's value (the gateway that sets
 * headers is more trusted than the client that wrote the body), task hints
 * from both are merged; hpp.prompt_tokens replaces the estimate and
 * hpp.output_tokens replaces max_(completion_)tokens.
 */
#include "oai_request.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oai_json.h"
#include "oai_tokens.h"

/* Which values a header has set; the body must not replace them. */
enum {
    S_HDR_BUDGET = 1u << 0,
    S_HDR_GROUP = 1u << 1,
    S_HDR_MODEL = 1u << 2,
    S_HDR_PROMPT = 1u << 3,
    S_HDR_OUTPUT = 1u << 4,
};

struct oai_extract {
    oai_jdoc_t *doc;          /* the parsed body */
    oai_jv_t root;            /* its root object, OAI_JNONE when no body */
    size_t body_len;          /* bytes of the parsed body, checked by oai_extract_forward */
    bool stream;              /* body's "stream" */
    int64_t estimate;         /* prompt tokens estimated from the body */
    unsigned hdr_set;         /* S_HDR_* bits */
    size_t last_user;         /* index of the last user message, for the sample */
    char text[OAI_TEXT_MAX];  /* prompt text sample */
    size_t text_len;          /* bytes used in text */
    char hdr[OAI_HEADER_MAX]; /* copies of header values */
    size_t hdr_len;           /* bytes used in hdr */
};

oai_extract_t *oai_extract_new(void)
{
    oai_extract_t *self = calloc(1, sizeof *self);
    if (self && !(self->doc = oai_jdoc_new())) {
        free(self);
        self = NULL;
    }
    return self;
}

void oai_extract_destroy(oai_extract_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    oai_jdoc_destroy(&(*self_p)->doc);
    free(*self_p);
    *self_p = NULL;
}

void oai_extract_reset(oai_extract_t *self, hpp_features_t *f)
{
    self->root = OAI_JNONE;
    self->stream = false;
    self->estimate = 0;
    self->hdr_set = 0;
    self->text_len = 0;
    self->hdr_len = 0;
    hpp_features_init(f);
}

bool oai_extract_has_body(const oai_extract_t *self)
{
    return self->root != OAI_JNONE;
}

bool oai_extract_stream(const oai_extract_t *self)
{
    return self->stream;
}

int64_t oai_extract_estimate(const oai_extract_t *self)
{
    return self->estimate;
}

/* Small helpers --------------------------------------------------------- */

static hpp_str_t s_str(const char *p, size_t len)
{
    hpp_str_t s = {.ptr = p, .len = (uint32_t)len};
    return s;
}

/* Writes a parameter path such as messages[2].content into a 96-byte buffer
 * (oai_error_t.param), truncating silently: paths are for humans. */
static void s_path(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_path(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, 96, fmt, ap);
    va_end(ap);
}

/* JSON type names as the OpenAI API words them in its errors. */
static const char *s_json_type(const oai_jdoc_t *d, oai_jv_t v)
{
    switch (oai_jtype(d, v)) {
    case OAI_J_OBJECT:
        return "object";
    case OAI_J_ARRAY:
        return "array";
    case OAI_J_STRING:
        return "string";
    case OAI_J_INT:
        return "integer";
    case OAI_J_REAL:
        return "number";
    case OAI_J_TRUE:
    case OAI_J_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static int s_type_error(const oai_jdoc_t *d, oai_error_t *err, const char *param, const char *want,
                        oai_jv_t v)
{
    return oai_error_set(err, 400, "invalid_type", param, "%s: expected %s, got %s", param, want,
                         s_json_type(d, v));
}

static bool s_is_number(const oai_jdoc_t *d, oai_jv_t v)
{
    oai_jtype_t t = oai_jtype(d, v);
    return t == OAI_J_INT || t == OAI_J_REAL;
}

static bool s_is_bool(const oai_jdoc_t *d, oai_jv_t v)
{
    oai_jtype_t t = oai_jtype(d, v);
    return t == OAI_J_TRUE || t == OAI_J_FALSE;
}

/* Length of a string value (0 for anything else). */
static size_t s_slen(const oai_jdoc_t *d, oai_jv_t v)
{
    size_t n;
    oai_jstr(d, v, &n);
    return n;
}

/* A name usable as a hint or group: 1..max bytes of [A-Za-z0-9_.:/@-]. */
static bool s_valid_name(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("_.:/@-", c)) {
            return false;
        }
    }
    return true;
}

/* A model id: 1..HPP_MAX_MODEL_LEN bytes with no control characters or spaces. */
static int s_check_model(const char *s, size_t len, const char *param, oai_error_t *err)
{
    if (len == 0 || len > HPP_MAX_MODEL_LEN) {
        return oai_error_set(err, 400, "invalid_value", param,
                             "%s: a model id has 1 to %d bytes, got %zu", param, HPP_MAX_MODEL_LEN,
                             len);
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
            return oai_error_set(err, 400, "invalid_value", param,
                                 "%s: a model id has no spaces or control characters", param);
        }
    }
    return 0;
}

/* Adds one task hint unless already present. */
static int s_add_hint(hpp_features_t *f, const char *s, size_t len, const char *param,
                      oai_error_t *err)
{
    if (!s_valid_name(s, len, HPP_MAX_HINT_LEN)) {
        return oai_error_set(err, 400, "invalid_value", param,
                             "%s: a task hint has 1 to %d characters from [A-Za-z0-9_.:/@-], got "
                             "\"%.*s\"",
                             param, HPP_MAX_HINT_LEN, (int)(len > 64 ? 64 : len), s);
    }
    for (uint32_t i = 0; i < f->nhints; i++) {
        if (f->hints[i].len == len && memcmp(f->hints[i].ptr, s, len) == 0) {
            return 0;
        }
    }
    if (f->nhints >= HPP_MAX_HINTS) {
        return oai_error_set(err, 400, "too_many_hints", param,
                             "%s: at most %d task hints per request", param, HPP_MAX_HINTS);
    }
    f->hints[f->nhints++] = s_str(s, len);
    return 0;
}

/* Adds every comma-separated hint of s (spaces around items ignored). */
static int s_add_hint_list(hpp_features_t *f, const char *s, size_t len, const char *param,
                           oai_error_t *err)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != ',') {
            i++;
        }
        size_t a = start, b = i;
        while (a < b && (s[a] == ' ' || s[a] == '\t')) {
            a++;
        }
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) {
            b--;
        }
        if (b > a && s_add_hint(f, s + a, b - a, param, err) < 0) {
            return -1;
        }
        i++;
    }
    return 0;
}

/* Budget in USD, by the contract's rule (hpp_check_budget). */
static int s_set_budget(hpp_features_t *f, double v, const char *param, oai_error_t *err)
{
    const char *why = hpp_check_budget(v);
    if (why) {
        return oai_error_set(err, 400, "invalid_value", param, "%s: %s", param, why);
    }
    f->has_budget = true;
    f->budget_usd = v;
    return 0;
}

/* A token count (hpp_check_tokens). Absent or null leaves *out unchanged. */
static int s_get_tokens(const oai_jdoc_t *d, oai_jv_t v, int64_t *out, const char *param,
                        oai_error_t *err)
{
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_INT)) {
        return s_type_error(d, err, param, "integer", v);
    }
    int64_t n = oai_jint(d, v);
    const char *why = hpp_check_tokens(n);
    if (why) {
        return oai_error_set(err, 400, "invalid_value", param, "%s: %s, got %lld", param, why,
                             (long long)n);
    }
    *out = n;
    return 0;
}

/* Appends to the text sample, cutting at a UTF-8 boundary when full. */
static void s_text_append(oai_extract_t *self, const char *s, size_t len)
{
    size_t room = sizeof self->text - self->text_len;
    if (self->text_len > 0 && room > 0 && len > 0) {
        self->text[self->text_len++] = '\n';
        room--;
    }
    if (len > room) {
        len = room;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80) {
            len--; /* s[len] continues a code point: drop the partial one */
        }
    }
    memcpy(self->text + self->text_len, s, len);
    self->text_len += len;
}

/* Counts every string (keys and values) of a JSON tree, for tool schemas. */
static void s_count_tree(const oai_jdoc_t *d, oai_tok_counts_t *c, oai_jv_t v)
{
    if (oai_jis(d, v, OAI_J_STRING)) {
        oai_tok_count(c, oai_jstr(d, v, NULL), s_slen(d, v));
    } else if (oai_jis(d, v, OAI_J_OBJECT)) {
        for (oai_jv_t kv = oai_jfirst(d, v); kv; kv = oai_jnext(d, oai_jval(kv))) {
            size_t klen;
            const char *key = oai_jstr(d, kv, &klen);
            oai_tok_count(c, key, klen);
            s_count_tree(d, c, oai_jval(kv));
        }
    } else if (oai_jis(d, v, OAI_J_ARRAY)) {
        for (oai_jv_t e = oai_jfirst(d, v); e; e = oai_jnext(d, e)) {
            s_count_tree(d, c, e);
        }
    } else if (s_is_number(d, v)) {
        c->digits++;
    }
}

/* Messages -------------------------------------------------------------- */

static const char *const s_roles[] = {"system", "developer", "user", "assistant",
                                      "tool",   "function",  NULL};

/* State of a walk over the messages: counts text into c, images into the
 * image fields; with `sample` set, appends text to the sample instead. */
typedef struct {
    oai_extract_t *self; /* context */
    oai_tok_counts_t *c; /* counts of the current message */
    int64_t images;      /* images seen */
    int64_t img_tokens;  /* their token cost */
    bool sample;         /* second pass: fill the text sample only */
} s_walk_t;

static void s_text(s_walk_t *w, const char *s, size_t len)
{
    if (w->sample) {
        s_text_append(w->self, s, len);
    } else {
        oai_tok_count(w->c, s, len);
    }
}

/* Where a value sits in the body, rendered as a path ("messages[2].content[0]
 * .text") only when an error names it. The walk runs twice over every
 * message on the hot path, and formatting each path up front cost a
 * vsnprintf per message and part. */
typedef struct s_at {
    const struct s_at *up; /* enclosing value, NULL at the top */
    const char *key;       /* member name, or NULL for an array element */
    size_t index;          /* element index when key is NULL */
} s_at_t;

/* Renders `at` into buf (oai_error_t.param's 96 bytes), truncating silently:
 * paths are for humans. */
static const char *s_at_text(const s_at_t *at, char *buf)
{
    if (!at) {
        buf[0] = '\0';
        return buf;
    }
    s_at_text(at->up, buf);
    size_t n = strlen(buf);
    if (at->key) {
        snprintf(buf + n, 96 - n, "%s%s", n ? "." : "", at->key);
    } else {
        snprintf(buf + n, 96 - n, "[%zu]", at->index);
    }
    return buf;
}

static int s_at_type_error(const oai_jdoc_t *d, oai_error_t *err, const s_at_t *at,
                           const char *want, oai_jv_t v)
{
    char p[96];
    return s_type_error(d, err, s_at_text(at, p), want, v);
}

static int s_at_missing(oai_error_t *err, const s_at_t *at, const char *why)
{
    char p[96];
    s_at_text(at, p);
    return oai_error_set(err, 400, "missing_required_parameter", p, "%s: %s", p, why);
}

static int s_part_text(s_walk_t *w, oai_jv_t part, const s_at_t *at, oai_error_t *err)
{
    const oai_jdoc_t *d = w->self->doc;
    oai_jv_t t = oai_jget(d, part, "text");
    if (!oai_jis(d, t, OAI_J_STRING)) {
        s_at_t tat = {.up = at, .key = "text"};
        return t ? s_at_type_error(d, err, &tat, "string", t)
                 : s_at_missing(err, &tat, "a text part needs \"text\"");
    }
    s_text(w, oai_jstr(d, t, NULL), s_slen(d, t));
    return 0;
}

static int s_part_refusal(s_walk_t *w, oai_jv_t part, const s_at_t *at, oai_error_t *err)
{
    const oai_jdoc_t *d = w->self->doc;
    oai_jv_t t = oai_jget(d, part, "refusal");
    if (t && !oai_jis(d, t, OAI_J_STRING)) {
        s_at_t rat = {.up = at, .key = "refusal"};
        return s_at_type_error(d, err, &rat, "string", t);
    }
    if (t) {
        s_text(w, oai_jstr(d, t, NULL), s_slen(d, t));
    }
    return 0;
}

static int s_part_image(s_walk_t *w, oai_jv_t part, const s_at_t *at, oai_error_t *err)
{
    const oai_jdoc_t *d = w->self->doc;
    oai_jv_t img = oai_jget(d, part, "image_url");
    bool nested = oai_jis(d, img, OAI_J_OBJECT);
    oai_jv_t url = nested ? oai_jget(d, img, "url") : img;
    s_at_t iat = {.up = at, .key = "image_url"};
    s_at_t uat = {.up = &iat, .key = "url"};
    if (!oai_jis(d, url, OAI_J_STRING)) {
        const s_at_t *where = nested ? &uat : &iat;
        return url ? s_at_type_error(d, err, where, "string", url)
                   : s_at_missing(err, where, "an image_url part needs a url");
    }
    bool low = false;
    oai_jv_t detail = nested ? oai_jget(d, img, "detail") : OAI_JNONE;
    if (detail && !oai_jis(d, detail, OAI_J_NULL)) {
        const char *level = oai_jstr(d, detail, NULL);
        if (!level || (strcmp(level, "low") && strcmp(level, "high") && strcmp(level, "auto"))) {
            s_at_t dat = {.up = &iat, .key = "detail"};
            char p[96];
            s_at_text(&dat, p);
            return oai_error_set(err, 400, "invalid_value", p,
                                 "%s: expected one of: low, high, auto", p);
        }
        low = strcmp(level, "low") == 0;
    }
    if (!w->sample) {
        w->images++;
        w->img_tokens += low ? OAI_TOK_IMAGE_LOW : OAI_TOK_IMAGE_HIGH;
    }
    return 0;
}

/* Parts that carry no text we count (audio, files): accepted, not counted. */
static int s_part_skip(s_walk_t *w, oai_jv_t part, const s_at_t *at, oai_error_t *err)
{
    (void)w;
    (void)part;
    (void)at;
    (void)err;
    return 0;
}

static const struct {
    const char *type;                                               /* part "type" */
    int (*fn)(s_walk_t *, oai_jv_t, const s_at_t *, oai_error_t *); /* its reader */
} s_parts[] = {
    {"text", s_part_text}, {"image_url", s_part_image}, {"input_audio", s_part_skip},
    {"file", s_part_skip}, {"refusal", s_part_refusal}, {NULL, NULL},
};

static int s_content(s_walk_t *w, oai_jv_t content, const s_at_t *at, oai_error_t *err)
{
    const oai_jdoc_t *d = w->self->doc;
    if (oai_jis(d, content, OAI_J_STRING)) {
        s_text(w, oai_jstr(d, content, NULL), s_slen(d, content));
        return 0;
    }
    if (!oai_jis(d, content, OAI_J_ARRAY)) {
        return s_at_type_error(d, err, at, "string or array of content parts", content);
    }
    s_at_t pat = {.up = at};
    oai_jv_t part;
    for (part = oai_jfirst(d, content); part; part = oai_jnext(d, part), pat.index++) {
        if (!oai_jis(d, part, OAI_J_OBJECT)) {
            return s_at_type_error(d, err, &pat, "object", part);
        }
        const char *type = oai_jstr(d, oai_jget(d, part, "type"), NULL);
        int k = 0;
        while (type && s_parts[k].type && strcmp(s_parts[k].type, type) != 0) {
            k++;
        }
        if (!type || !s_parts[k].type) {
            char p[96];
            s_at_text(&pat, p);
            return oai_error_set(err, 400, "invalid_value", p,
                                 "%s.type: expected one of: text, image_url, input_audio, file, "
                                 "refusal",
                                 p);
        }
        if (s_parts[k].fn(w, part, &pat, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* An assistant's tool_calls: names and arguments count as prompt text. */
static int s_tool_calls(s_walk_t *w, oai_jv_t calls, const s_at_t *at, oai_error_t *err)
{
    const oai_jdoc_t *d = w->self->doc;
    if (!oai_jis(d, calls, OAI_J_ARRAY)) {
        return s_at_type_error(d, err, at, "array", calls);
    }
    for (oai_jv_t call = oai_jfirst(d, calls); call; call = oai_jnext(d, call)) {
        oai_jv_t fn = oai_jget(d, call, "function");
        const char *name = oai_jstr(d, oai_jget(d, fn, "name"), NULL);
        oai_jv_t args = oai_jget(d, fn, "arguments");
        if (name) {
            s_text(w, name, strlen(name));
        }
        if (oai_jis(d, args, OAI_J_STRING)) {
            s_text(w, oai_jstr(d, args, NULL), s_slen(d, args));
        }
        if (!w->sample) {
            w->c->punct += OAI_TOK_PER_TOOL; /* call framing, ~1 token each */
        }
    }
    return 0;
}

static const s_at_t s_messages_at = {.key = "messages"};

/* One message; on the first pass validates and counts, on the second fills
 * the text sample. Returns the message's tokens (first pass) or -1. */
static int64_t s_message(s_walk_t *w, oai_jv_t msg, size_t i, bool *is_user, oai_error_t *err)
{
    const oai_jdoc_t *d = w->self->doc;
    s_at_t mat = {.up = &s_messages_at, .index = i};
    if (!oai_jis(d, msg, OAI_J_OBJECT)) {
        return s_at_type_error(d, err, &mat, "object", msg);
    }
    oai_jv_t role = oai_jget(d, msg, "role");
    const char *r = oai_jstr(d, role, NULL);
    int k = 0;
    while (r && s_roles[k] && strcmp(s_roles[k], r) != 0) {
        k++;
    }
    if (!r || !s_roles[k]) {
        char p[96];
        s_at_t rat = {.up = &mat, .key = "role"};
        s_at_text(&rat, p);
        return oai_error_set(err, 400, role ? "invalid_value" : "missing_required_parameter", p,
                             "%s: expected one of: system, developer, user, assistant, tool, "
                             "function",
                             p);
    }
    *is_user = strcmp(r, "user") == 0;
    oai_tok_counts_t c;
    oai_tok_counts_init(&c);
    w->c = &c;
    int64_t extra = OAI_TOK_PER_MESSAGE;
    oai_jv_t content = oai_jget(d, msg, "content");
    s_at_t cat = {.up = &mat, .key = "content"};
    if (oai_jis(d, content, OAI_J_NULL) || !content) {
        /* Only an assistant turn (tool calls instead of text) may omit content. */
        if (strcmp(r, "assistant") != 0) {
            char why[48];
            snprintf(why, sizeof why, "a %s message needs content", r);
            return s_at_missing(err, &cat, why);
        }
    } else if (s_content(w, content, &cat, err) < 0) {
        return -1;
    }
    oai_jv_t name = oai_jget(d, msg, "name");
    if (name && !oai_jis(d, name, OAI_J_NULL)) {
        if (!oai_jis(d, name, OAI_J_STRING)) {
            s_at_t nat = {.up = &mat, .key = "name"};
            return s_at_type_error(d, err, &nat, "string", name);
        }
        if (!w->sample) {
            extra += OAI_TOK_NAME + oai_tok_text(oai_jstr(d, name, NULL), s_slen(d, name));
        }
    }
    oai_jv_t calls = oai_jget(d, msg, "tool_calls");
    if (calls && !oai_jis(d, calls, OAI_J_NULL)) {
        s_at_t tat = {.up = &mat, .key = "tool_calls"};
        if (s_tool_calls(w, calls, &tat, err) < 0) {
            return -1;
        }
    }
    return extra + oai_tok_estimate(&c);
}

static int s_messages(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!v) {
        return oai_error_set(err, 400, "missing_required_parameter", "messages",
                             "messages: required");
    }
    if (!oai_jis(d, v, OAI_J_ARRAY) || oai_jsize(d, v) == 0) {
        return oai_jis(d, v, OAI_J_ARRAY)
                   ? oai_error_set(err, 400, "invalid_value", "messages",
                                   "messages: at least one message is required")
                   : s_type_error(d, err, "messages", "array", v);
    }
    s_walk_t w = {.self = self};
    int64_t total = OAI_TOK_REPLY;
    bool found = false;
    size_t i;
    oai_jv_t msg;
    for (i = 0, msg = oai_jfirst(d, v); msg; msg = oai_jnext(d, msg), i++) {
        bool is_user = false;
        int64_t t = s_message(&w, msg, i, &is_user, err);
        if (t < 0) {
            return -1;
        }
        total += t;
        if (is_user) {
            self->last_user = i;
            found = true;
        }
    }
    const char *why = hpp_check_images(w.images);
    if (why) {
        return oai_error_set(err, 400, "invalid_value", "messages",
                             "messages: the number of images %s, got %lld", why,
                             (long long)w.images);
    }
    self->estimate += total + w.img_tokens;
    f->images = w.images;
    f->vision = w.images > 0;
    /* Text sample: the last user message first (it says what is asked), then
     * the conversation in order until the sample is full. */
    w.sample = true;
    bool dummy;
    if (found) {
        s_message(&w, oai_jat(d, v, self->last_user), self->last_user, &dummy, err);
    }
    for (i = 0, msg = oai_jfirst(d, v); msg; msg = oai_jnext(d, msg), i++) {
        if ((!found || i != self->last_user) && self->text_len < sizeof self->text) {
            s_message(&w, msg, i, &dummy, err);
        }
    }
    f->text = s_str(self->text, self->text_len);
    return 0;
}

/* Top-level fields ------------------------------------------------------- */

static int s_model(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!v || oai_jis(d, v, OAI_J_NULL) || (self->hdr_set & S_HDR_MODEL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_STRING)) {
        return s_type_error(d, err, "model", "string", v);
    }
    if (s_check_model(oai_jstr(d, v, NULL), s_slen(d, v), "model", err) < 0) {
        return -1;
    }
    f->model = s_str(oai_jstr(d, v, NULL), s_slen(d, v));
    return 0;
}

static int s_tools(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err,
                   const char *param)
{
    const oai_jdoc_t *d = self->doc;
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_ARRAY)) {
        return s_type_error(d, err, param, "array", v);
    }
    oai_tok_counts_t c;
    oai_tok_counts_init(&c);
    size_t i;
    oai_jv_t tool;
    for (i = 0, tool = oai_jfirst(d, v); tool; tool = oai_jnext(d, tool), i++) {
        if (!oai_jis(d, tool, OAI_J_OBJECT)) {
            char p[96];
            s_path(p, "%s[%zu]", param, i);
            return s_type_error(d, err, p, "object", tool);
        }
        s_count_tree(d, &c, tool);
    }
    if (oai_jsize(d, v) > 0) {
        f->tools = true;
        self->estimate += oai_tok_estimate(&c) + OAI_TOK_PER_TOOL * (int64_t)oai_jsize(d, v);
    }
    return 0;
}

static int s_tools_new(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_tools(self, v, f, err, "tools");
}

static int s_functions(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_tools(self, v, f, err, "functions");
}

static int s_response_format(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_OBJECT)) {
        return s_type_error(d, err, "response_format", "object", v);
    }
    const char *type = oai_jstr(d, oai_jget(d, v, "type"), NULL);
    if (!type ||
        (strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema"))) {
        return oai_error_set(err, 400, "invalid_value", "response_format.type",
                             "response_format.type: expected one of: text, json_object, "
                             "json_schema");
    }
    f->json = strcmp(type, "text") != 0;
    oai_jv_t schema = oai_jget(d, v, "json_schema");
    if (f->json && schema) {
        /* The schema is sent to the model with the prompt. */
        oai_tok_counts_t c;
        oai_tok_counts_init(&c);
        s_count_tree(d, &c, schema);
        self->estimate += oai_tok_estimate(&c);
    }
    return 0;
}

/* A completion limit: a token count of at least 1. OpenAI refuses 0 (a call
 * that may generate nothing), so a router must not route it. */
static int s_get_limit(const oai_jdoc_t *d, oai_jv_t v, int64_t *out, const char *param,
                       oai_error_t *err)
{
    int64_t n = -1;
    if (s_get_tokens(d, v, &n, param, err) < 0) {
        return -1;
    }
    if (n == 0) {
        return oai_error_set(err, 400, "invalid_value", param,
                             "%s: must be at least 1 (a completion of 0 tokens), got 0", param);
    }
    if (n > 0) {
        *out = n;
    }
    return 0;
}

static int s_max_tokens(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (self->hdr_set & S_HDR_OUTPUT) {
        return 0;
    }
    return s_get_limit(d, v, &f->output_tokens, "max_tokens", err);
}

/* Read after max_tokens: the newer name wins when both are given. */
static int s_max_completion(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (self->hdr_set & S_HDR_OUTPUT) {
        return 0;
    }
    return s_get_limit(d, v, &f->output_tokens, "max_completion_tokens", err);
}

static int s_stream(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    (void)f;
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!s_is_bool(d, v)) {
        return s_type_error(d, err, "stream", "boolean", v);
    }
    self->stream = oai_jis(d, v, OAI_J_TRUE);
    return 0;
}

static int s_metadata(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    (void)self;
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_OBJECT)) {
        return s_type_error(d, err, "metadata", "object", v);
    }
    for (oai_jv_t kv = oai_jfirst(d, v); kv; kv = oai_jnext(d, oai_jval(kv))) {
        const char *key = oai_jstr(d, kv, NULL);
        oai_jv_t val = oai_jval(kv);
        char p[96];
        s_path(p, "metadata.%.80s", key);
        if (!oai_jis(d, val, OAI_J_STRING)) {
            return s_type_error(d, err, p, "string", val);
        }
        size_t kl = strlen(key), vl = s_slen(d, val);
        if (kl == 0 || kl > HPP_MAX_META_KEY_LEN || vl > HPP_MAX_META_VAL_LEN) {
            return oai_error_set(err, 400, "invalid_value", p,
                                 "%s: keys have 1 to %d bytes, values at most %d", p,
                                 HPP_MAX_META_KEY_LEN, HPP_MAX_META_VAL_LEN);
        }
        if (f->nmeta >= HPP_MAX_META) {
            return oai_error_set(err, 400, "invalid_value", "metadata",
                                 "metadata: at most %d pairs", HPP_MAX_META);
        }
        f->meta_keys[f->nmeta] = s_str(key, kl);
        f->meta_vals[f->nmeta] = s_str(oai_jstr(d, val, NULL), vl);
        f->nmeta++;
    }
    return 0;
}

/* OpenRouter's `provider` object and `models` array ------------------------ */

typedef int (*s_field_fn)(oai_extract_t *, oai_jv_t, hpp_features_t *, oai_error_t *);

/* An array of at most max strings, each passing the contract's rule `check`,
 * borrowed from the document into out[]. */
static int s_str_list(const oai_jdoc_t *d, oai_jv_t v, const char *param, uint32_t max,
                      const char *(*check)(hpp_str_t), hpp_str_t *out, uint32_t *n,
                      oai_error_t *err)
{
    if (!oai_jis(d, v, OAI_J_ARRAY)) {
        return s_type_error(d, err, param, "array of strings", v);
    }
    if (oai_jsize(d, v) > max) {
        return oai_error_set(err, 400, "invalid_value", param, "%s: at most %u entries, got %zu",
                             param, max, (size_t)oai_jsize(d, v));
    }
    size_t i;
    oai_jv_t e;
    for (i = 0, e = oai_jfirst(d, v); e; e = oai_jnext(d, e), i++) {
        char p[96];
        s_path(p, "%s[%zu]", param, i);
        if (!oai_jis(d, e, OAI_J_STRING)) {
            return s_type_error(d, err, p, "string", e);
        }
        hpp_str_t s = s_str(oai_jstr(d, e, NULL), s_slen(d, e));
        const char *why = check(s);
        if (why) {
            return oai_error_set(err, 400, "invalid_value", p, "%s: %s", p, why);
        }
        out[i] = s;
    }
    *n = (uint32_t)i;
    return 0;
}

static int s_prov_order(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_str_list(self->doc, v, "provider.order", HPP_MAX_PROVIDERS, hpp_check_provider,
                      f->providers_order, &f->nproviders_order, err);
}

static int s_prov_only(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_str_list(self->doc, v, "provider.only", HPP_MAX_PROVIDERS, hpp_check_provider,
                      f->providers_only, &f->nproviders_only, err);
}

static int s_prov_ignore(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_str_list(self->doc, v, "provider.ignore", HPP_MAX_PROVIDERS, hpp_check_provider,
                      f->providers_ignore, &f->nproviders_ignore, err);
}

static int s_prov_fallbacks(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    if (!s_is_bool(self->doc, v)) {
        return s_type_error(self->doc, err, "provider.allow_fallbacks", "boolean", v);
    }
    f->no_fallbacks = oai_jis(self->doc, v, OAI_J_FALSE);
    return 0;
}

/* require_parameters: the engine always requires the capabilities the
 * request's parameters need (vision for images, tools for tools/functions,
 * json for a JSON response_format), whatever this says; the catalog records
 * no other parameter per endpoint. So both values are honoured as they
 * stand, and only the type is checked. */
static int s_prov_require(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    (void)f;
    if (!s_is_bool(self->doc, v)) {
        return s_type_error(self->doc, err, "provider.require_parameters", "boolean", v);
    }
    return 0;
}

static int s_prov_sort(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!oai_jis(d, v, OAI_J_STRING)) {
        return s_type_error(d, err, "provider.sort", "string", v);
    }
    const char *why = hpp_check_sort(s_str(oai_jstr(d, v, NULL), s_slen(d, v)), &f->sort);
    if (why) {
        return oai_error_set(err, 400, "invalid_value", "provider.sort", "provider.sort: %s", why);
    }
    return 0;
}

/* preferred_max_latency (seconds) and preferred_min_throughput (tokens per
 * second): numbers. OpenRouter also takes an object of percentiles; the
 * router measures averages, so that form is refused by name. */
static int s_prov_pref(oai_extract_t *self, oai_jv_t v, const char *name,
                       const char *(*check)(double), double *out, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!s_is_number(d, v)) {
        return s_type_error(d, err, name, "number", v);
    }
    const char *why = check(oai_jnum(d, v));
    if (why) {
        return oai_error_set(err, 400, "invalid_value", name, "%s: %s", name, why);
    }
    *out = oai_jnum(d, v);
    return 0;
}

static int s_prov_max_latency(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_prov_pref(self, v, "provider.preferred_max_latency", hpp_check_max_latency,
                       &f->max_latency_s, err);
}

static int s_prov_min_throughput(oai_extract_t *self, oai_jv_t v, hpp_features_t *f,
                                 oai_error_t *err)
{
    return s_prov_pref(self, v, "provider.preferred_min_throughput", hpp_check_min_throughput,
                       &f->min_throughput, err);
}

static const struct {
    const char *key; /* member of max_price */
    uint32_t bit;    /* HPP_MAXP_* */
} s_max_price_keys[] = {
    {"prompt", HPP_MAXP_PROMPT},
    {"completion", HPP_MAXP_COMPLETION},
    {"request", HPP_MAXP_REQUEST},
    {"image", HPP_MAXP_IMAGE},
    {NULL, 0},
};

static int s_prov_max_price(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!oai_jis(d, v, OAI_J_OBJECT)) {
        return s_type_error(d, err, "provider.max_price", "object", v);
    }
    for (oai_jv_t kv = oai_jfirst(d, v); kv; kv = oai_jnext(d, oai_jval(kv))) {
        const char *key = oai_jstr(d, kv, NULL);
        oai_jv_t val = oai_jval(kv);
        char p[96];
        s_path(p, "provider.max_price.%.60s", key);
        int k = 0;
        while (s_max_price_keys[k].key && strcmp(s_max_price_keys[k].key, key) != 0) {
            k++;
        }
        if (!s_max_price_keys[k].key) {
            /* A price limit we do not know would be a limit not applied. */
            return oai_error_set(err, 400, "unknown_parameter", p,
                                 "%s: unknown key (expected one of: prompt, completion, "
                                 "request, image)",
                                 p);
        }
        if (oai_jis(d, val, OAI_J_NULL)) {
            continue;
        }
        if (!s_is_number(d, val)) {
            return s_type_error(d, err, p, "number", val);
        }
        const char *why =
            hpp_max_price_set(&f->max_price, s_max_price_keys[k].bit, oai_jnum(d, val));
        if (why) {
            return oai_error_set(err, 400, "invalid_value", p, "%s: %s", p, why);
        }
    }
    return 0;
}

static const struct {
    const char *key; /* member of the provider object */
    s_field_fn fn;   /* its reader (never called with NULL or null) */
} s_provider_keys[] = {
    {"order", s_prov_order},
    {"only", s_prov_only},
    {"ignore", s_prov_ignore},
    {"allow_fallbacks", s_prov_fallbacks},
    {"require_parameters", s_prov_require},
    {"sort", s_prov_sort},
    {"max_price", s_prov_max_price},
    {"preferred_max_latency", s_prov_max_latency},
    {"preferred_min_throughput", s_prov_min_throughput},
    {NULL, NULL},
};

/* OpenRouter's provider routing. A member we do not honour (data_collection,
 * quantizations, zdr, ...) is refused by name rather than ignored: the
 * client asked for a guarantee the router would not give. */
static int s_provider(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_OBJECT)) {
        return s_type_error(d, err, "provider", "object", v);
    }
    for (oai_jv_t kv = oai_jfirst(d, v); kv; kv = oai_jnext(d, oai_jval(kv))) {
        const char *key = oai_jstr(d, kv, NULL);
        oai_jv_t val = oai_jval(kv);
        int k = 0;
        while (s_provider_keys[k].key && strcmp(s_provider_keys[k].key, key) != 0) {
            k++;
        }
        if (!s_provider_keys[k].key) {
            char p[96];
            s_path(p, "provider.%.80s", key);
            return oai_error_set(err, 400, "unsupported_parameter", p,
                                 "%s: not supported by this router (supported: order, only, "
                                 "ignore, allow_fallbacks, require_parameters, sort, max_price, "
                                 "preferred_max_latency, preferred_min_throughput)",
                                 p);
        }
        if (oai_jis(d, val, OAI_J_NULL)) {
            continue;
        }
        if (s_provider_keys[k].fn(self, val, f, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* OpenRouter's model fallbacks: the body's model first (when given), then
 * these in order; nothing outside them is chosen (engine/eng_resolve.c). */
static int s_models(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    if (!v || oai_jis(self->doc, v, OAI_J_NULL)) {
        return 0;
    }
    return s_str_list(self->doc, v, "models", HPP_MAX_MODELS, hpp_check_model_id, f->models,
                      &f->nmodels, err);
}

/* The `hpp` object ------------------------------------------------------- */

static int s_hpp_task(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    (void)self;
    if (oai_jis(d, v, OAI_J_STRING)) {
        return s_add_hint_list(f, oai_jstr(d, v, NULL), s_slen(d, v), "hpp.task", err);
    }
    if (!oai_jis(d, v, OAI_J_ARRAY)) {
        return s_type_error(d, err, "hpp.task", "string or array of strings", v);
    }
    size_t i;
    oai_jv_t h;
    for (i = 0, h = oai_jfirst(d, v); h; h = oai_jnext(d, h), i++) {
        char p[96];
        s_path(p, "hpp.task[%zu]", i);
        if (!oai_jis(d, h, OAI_J_STRING)) {
            return s_type_error(d, err, p, "string", h);
        }
        if (s_add_hint(f, oai_jstr(d, h, NULL), s_slen(d, h), p, err) < 0) {
            return -1;
        }
    }
    return 0;
}

static int s_hpp_budget(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!s_is_number(d, v)) {
        return s_type_error(d, err, "hpp.budget_usd", "number", v);
    }
    hpp_features_t tmp = *f; /* validate even when a header wins */
    if (s_set_budget(&tmp, oai_jnum(d, v), "hpp.budget_usd", err) < 0) {
        return -1;
    }
    if (!(self->hdr_set & S_HDR_BUDGET)) {
        *f = tmp;
    }
    return 0;
}

static int s_hpp_group(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!oai_jis(d, v, OAI_J_STRING)) {
        return s_type_error(d, err, "hpp.group", "string", v);
    }
    if (!s_valid_name(oai_jstr(d, v, NULL), s_slen(d, v), HPP_MAX_GROUP_LEN)) {
        return oai_error_set(err, 400, "invalid_value", "hpp.group",
                             "hpp.group: 1 to %d characters from [A-Za-z0-9_.:/@-]",
                             HPP_MAX_GROUP_LEN);
    }
    if (!(self->hdr_set & S_HDR_GROUP)) {
        f->group = s_str(oai_jstr(d, v, NULL), s_slen(d, v));
    }
    return 0;
}

static int s_hpp_prompt(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    int64_t n = f->prompt_tokens;
    if (s_get_tokens(d, v, &n, "hpp.prompt_tokens", err) < 0) {
        return -1;
    }
    if (!(self->hdr_set & S_HDR_PROMPT)) {
        f->prompt_tokens = n;
    }
    return 0;
}

static int s_hpp_output(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    int64_t n = f->output_tokens;
    if (s_get_tokens(d, v, &n, "hpp.output_tokens", err) < 0) {
        return -1;
    }
    if (!(self->hdr_set & S_HDR_OUTPUT)) {
        f->output_tokens = n;
    }
    return 0;
}

/* Cache writes and reasoning: no standard field carries these counts (see
 * PROTOCOL.md "OpenAI bodies"), so only the hpp object sets them. */
static int s_hpp_cache_write(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_get_tokens(self->doc, v, &f->cache_write_tokens, "hpp.cache_write_tokens", err);
}

static int s_hpp_reasoning(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    return s_get_tokens(self->doc, v, &f->reasoning_tokens, "hpp.reasoning_tokens", err);
}

static const struct {
    const char *key; /* key in the hpp object */
    s_field_fn fn;   /* its reader (never called with NULL) */
} s_hpp_keys[] = {
    {"task", s_hpp_task},
    {"budget_usd", s_hpp_budget},
    {"group", s_hpp_group},
    {"prompt_tokens", s_hpp_prompt},
    {"output_tokens", s_hpp_output},
    {"cache_write_tokens", s_hpp_cache_write},
    {"reasoning_tokens", s_hpp_reasoning},
    {NULL, NULL},
};

static int s_hpp(oai_extract_t *self, oai_jv_t v, hpp_features_t *f, oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    if (!v || oai_jis(d, v, OAI_J_NULL)) {
        return 0;
    }
    if (!oai_jis(d, v, OAI_J_OBJECT)) {
        return s_type_error(d, err, "hpp", "object", v);
    }
    for (oai_jv_t kv = oai_jfirst(d, v); kv; kv = oai_jnext(d, oai_jval(kv))) {
        const char *key = oai_jstr(d, kv, NULL);
        oai_jv_t val = oai_jval(kv);
        int k = 0;
        while (s_hpp_keys[k].key && strcmp(s_hpp_keys[k].key, key) != 0) {
            k++;
        }
        if (!s_hpp_keys[k].key) {
            char p[96];
            s_path(p, "hpp.%.80s", key);
            return oai_error_set(err, 400, "unknown_parameter", p,
                                 "%s: unknown key (expected one of: task, budget_usd, group, "
                                 "prompt_tokens, output_tokens, cache_write_tokens, "
                                 "reasoning_tokens)",
                                 p);
        }
        if (oai_jis(d, val, OAI_J_NULL)) {
            continue;
        }
        if (s_hpp_keys[k].fn(self, val, f, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Read in this order: the estimate exists before hpp.prompt_tokens replaces
 * it, max_completion_tokens after max_tokens, hpp last. */
static const struct {
    const char *key; /* top-level key */
    s_field_fn fn;   /* its reader (called with NULL when absent) */
} s_fields[] = {
    {"model", s_model},
    {"messages", s_messages},
    {"tools", s_tools_new},
    {"functions", s_functions},
    {"response_format", s_response_format},
    {"max_tokens", s_max_tokens},
    {"max_completion_tokens", s_max_completion},
    {"stream", s_stream},
    {"metadata", s_metadata},
    {"provider", s_provider},
    {"models", s_models},
    {"hpp", s_hpp},
    {NULL, NULL},
};

int oai_extract_body(oai_extract_t *self, const char *body, size_t len, hpp_features_t *f,
                     oai_error_t *err)
{
    const oai_jdoc_t *d = self->doc;
    self->root = OAI_JNONE;
    self->stream = false;
    self->estimate = 0;
    self->text_len = 0;
    oai_jerr_t jerr;
    /* Duplicate keys are refused: the sidecar and the upstream must not read
     * two different "model" values from one body. */
    oai_jv_t root = oai_jdoc_parse(self->doc, body, len, &jerr);
    if (root == OAI_JNONE) {
        return oai_error_set(err, 400, "invalid_json", NULL,
                             "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                             jerr.line, jerr.column);
    }
    if (!oai_jis(d, root, OAI_J_OBJECT)) {
        return oai_error_set(err, 400, "invalid_json", NULL,
                             "request body must be a JSON object, got %s", s_json_type(d, root));
    }
    self->body_len = len;
    int64_t prompt_hdr = f->prompt_tokens;
    for (int i = 0; s_fields[i].key; i++) {
        oai_jv_t v = oai_jget(d, root, s_fields[i].key);
        if (s_fields[i].fn == s_hpp && !(self->hdr_set & S_HDR_PROMPT)) {
            f->prompt_tokens = self->estimate > HPP_MAX_TOKENS ? HPP_MAX_TOKENS : self->estimate;
        }
        if (s_fields[i].fn(self, v, f, err) < 0) {
            return -1;
        }
    }
    self->root = root;
    if (self->hdr_set & S_HDR_PROMPT) {
        f->prompt_tokens = prompt_hdr;
    }
    /* Cache writes are part of the prompt, known only now. */
    if (hpp_check_cache_write(f->cache_write_tokens, f->cache_read_tokens, f->prompt_tokens)) {
        return oai_error_set(err, 400, "invalid_value", "hpp.cache_write_tokens",
                             "hpp.cache_write_tokens: must be at most the prompt tokens less "
                             "cache reads, got %lld > %lld",
                             (long long)f->cache_write_tokens,
                             (long long)(f->prompt_tokens - f->cache_read_tokens));
    }
    return 0;
}

/* Headers ---------------------------------------------------------------- */

/* Copies a header value into the context; NULL when the space is used up. */
static const char *s_keep(oai_extract_t *self, const char *v, size_t len, oai_error_t *err,
                          const char *name)
{
    if (len > sizeof self->hdr - self->hdr_len) {
        oai_error_set(err, 400, "header_too_large", name,
                      "%s: X-HPP-* header values exceed %d bytes in total", name, OAI_HEADER_MAX);
        return NULL;
    }
    char *p = self->hdr + self->hdr_len;
    memcpy(p, v, len);
    self->hdr_len += len;
    return p;
}

/* A plain non-negative decimal: digits with at most one '.', nothing else. */
static bool s_plain_decimal(const char *s)
{
    int digits = 0, dots = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            digits++;
        } else if (*s == '.' && dots == 0) {
            dots++;
        } else {
            return false;
        }
    }
    return digits > 0;
}

static int s_hdr_task(oai_extract_t *self, const char *v, hpp_features_t *f, oai_error_t *err)
{
    size_t len = strlen(v);
    const char *kept = s_keep(self, v, len, err, "X-HPP-Task");
    return kept ? s_add_hint_list(f, kept, len, "X-HPP-Task", err) : -1;
}

static int s_hdr_budget(oai_extract_t *self, const char *v, hpp_features_t *f, oai_error_t *err)
{
    if (!s_plain_decimal(v) || strlen(v) > 32) {
        return oai_error_set(err, 400, "invalid_value", "X-HPP-Budget-USD",
                             "X-HPP-Budget-USD: expected a decimal amount such as 0.05");
    }
    self->hdr_set |= S_HDR_BUDGET;
    return s_set_budget(f, strtod(v, NULL), "X-HPP-Budget-USD", err);
}

static int s_hdr_group(oai_extract_t *self, const char *v, hpp_features_t *f, oai_error_t *err)
{
    size_t len = strlen(v);
    if (!s_valid_name(v, len, HPP_MAX_GROUP_LEN)) {
        return oai_error_set(err, 400, "invalid_value", "X-HPP-Group",
                             "X-HPP-Group: 1 to %d characters from [A-Za-z0-9_.:/@-]",
                             HPP_MAX_GROUP_LEN);
    }
    const char *kept = s_keep(self, v, len, err, "X-HPP-Group");
    if (!kept) {
        return -1;
    }
    self->hdr_set |= S_HDR_GROUP;
    f->group = s_str(kept, len);
    return 0;
}

static int s_hdr_model(oai_extract_t *self, const char *v, hpp_features_t *f, oai_error_t *err)
{
    size_t len = strlen(v);
    if (s_check_model(v, len, "X-HPP-Model", err) < 0) {
        return -1;
    }
    const char *kept = s_keep(self, v, len, err, "X-HPP-Model");
    if (!kept) {
        return -1;
    }
    self->hdr_set |= S_HDR_MODEL;
    f->model = s_str(kept, len);
    return 0;
}

static int s_hdr_tokens(const char *v, int64_t *out, const char *name, oai_error_t *err)
{
    size_t len = strlen(v);
    bool ok = len > 0 && len <= 18; /* fits int64; the range is the rule's */
    for (size_t i = 0; ok && i < len; i++) {
        ok = v[i] >= '0' && v[i] <= '9';
    }
    const char *why = ok ? hpp_check_tokens(strtoll(v, NULL, 10)) : "must be an integer";
    if (why) {
        return oai_error_set(err, 400, "invalid_value", name, "%s: %s", name, why);
    }
    *out = strtoll(v, NULL, 10);
    return 0;
}

static int s_hdr_prompt(oai_extract_t *self, const char *v, hpp_features_t *f, oai_error_t *err)
{
    if (s_hdr_tokens(v, &f->prompt_tokens, "X-HPP-Prompt-Tokens", err) < 0) {
        return -1;
    }
    self->hdr_set |= S_HDR_PROMPT;
    return 0;
}

static int s_hdr_output(oai_extract_t *self, const char *v, hpp_features_t *f, oai_error_t *err)
{
    if (s_hdr_tokens(v, &f->output_tokens, "X-HPP-Output-Tokens", err) < 0) {
        return -1;
    }
    self->hdr_set |= S_HDR_OUTPUT;
    return 0;
}

static const struct {
    const char *name; /* header name, matched case-insensitively */
    int (*fn)(oai_extract_t *, const char *, hpp_features_t *, oai_error_t *);
} s_headers[] = {
    {"X-HPP-Task", s_hdr_task},
    {"X-HPP-Budget-USD", s_hdr_budget},
    {"X-HPP-Group", s_hdr_group},
    {"X-HPP-Model", s_hdr_model},
    {"X-HPP-Prompt-Tokens", s_hdr_prompt},
    {"X-HPP-Output-Tokens", s_hdr_output},
    {NULL, NULL},
};

int oai_extract_header(oai_extract_t *self, const char *name, const char *value, hpp_features_t *f,
                       oai_error_t *err)
{
    for (int i = 0; s_headers[i].name; i++) {
        if (strcasecmp(name, s_headers[i].name) == 0) {
            return s_headers[i].fn(self, value, f, err);
        }
    }
    return 0;
}

bool oai_header_is_hint(const char *name)
{
    for (int i = 0; s_headers[i].name; i++) {
        if (strcasecmp(name, s_headers[i].name) == 0) {
            return true;
        }
    }
    return false;
}

/* Forwarding ------------------------------------------------------------- */

/* One edit of the body: bytes [from, to) become `with` (wlen bytes). */
typedef struct {
    size_t from, to;
    const char *with;
    size_t wlen;
} s_edit_t;

/* Members the upstream must not see: our own `hpp` object, and OpenRouter's
 * `models` list and `provider` object, which the engine has already decided
 * by (an upstream that read them could answer with another model or
 * provider than the one decided, and a provider's own API refuses them).
 * The parser refuses duplicate keys, so each is cut at most once. */
static bool s_cut_member(const char *key)
{
    return strcmp(key, "hpp") == 0 || strcmp(key, "models") == 0 || strcmp(key, "provider") == 0;
}

/* Adds the edits that remove the cut members of the root object, each run
 * of adjacent ones with one comma: ",a,b" after a kept member, else "a,b,"
 * before the next kept one (or just "a,b" when nothing is kept). Returns
 * the number of kept members. */
static size_t s_cut_edits(const oai_jdoc_t *d, oai_jv_t obj, s_edit_t *edits, int *nedits)
{
    size_t kept = 0, kept_end = 0; /* members kept so far, the last one's end */
    size_t run_start = 0, run_end = 0;
    bool in_run = false;
    for (oai_jv_t k = oai_jfirst(d, obj); k; k = oai_jnext(d, oai_jval(k))) {
        size_t ks, ke, vs, ve;
        oai_jspan(d, k, &ks, &ke);
        oai_jspan(d, oai_jval(k), &vs, &ve);
        if (s_cut_member(oai_jstr(d, k, NULL))) {
            run_start = in_run ? run_start : ks;
            run_end = ve;
            in_run = true;
            continue;
        }
        if (in_run) {
            edits[(*nedits)++] =
                kept ? (s_edit_t){kept_end, run_end, "", 0} : (s_edit_t){run_start, ks, "", 0};
            in_run = false;
        }
        kept++;
        kept_end = ve;
    }
    if (in_run) {
        edits[(*nedits)++] =
            kept ? (s_edit_t){kept_end, run_end, "", 0} : (s_edit_t){run_start, run_end, "", 0};
    }
    return kept;
}

/* Adds `e` in order of position. Edits never overlap (the model and
 * stream members are never cut), and an insertion goes before a cut that
 * starts where it is. */
static void s_edit_add(s_edit_t *edits, int *nedits, s_edit_t e)
{
    int i = (*nedits)++;
    while (i > 0 && e.from <= edits[i - 1].from) {
        edits[i] = edits[i - 1];
        i--;
    }
    edits[i] = e;
}

/* A streamed answer ends with a usage chunk only when the request asks
 * for it: the edit that asks, when the client did not say either way. It
 * goes after the `stream` member (never cut), or first in the client's own
 * `stream_options` object; anything else in there is kept. */
static bool s_usage_edit(const oai_extract_t *self, s_edit_t *e)
{
    static const char add_member[] = ",\"stream_options\":{\"include_usage\":true}";
    static const char add_first[] = "\"include_usage\":true,";
    const oai_jdoc_t *d = self->doc;
    if (!self->stream) {
        return false;
    }
    oai_jv_t opts = oai_jget(d, self->root, "stream_options");
    size_t start, end;
    if (opts == OAI_JNONE) {
        oai_jspan(d, oai_jget(d, self->root, "stream"), &start, &end);
        *e = (s_edit_t){end, end, add_member, sizeof add_member - 1};
        return true;
    }
    if (!oai_jis(d, opts, OAI_J_OBJECT) || oai_jget(d, opts, "include_usage") != OAI_JNONE) {
        return false; /* the client's choice, or the upstream's error to give */
    }
    oai_jspan(d, opts, &start, &end);
    size_t n = sizeof add_first - 1 - (oai_jsize(d, opts) == 0); /* no comma in "{}" */
    *e = (s_edit_t){start + 1, start + 1, add_first, n};
    return true;
}

/* The body as received, spliced: the value of "model" replaced (or a
 * "model" member added first), the "hpp", "models" and "provider" members
 * cut out, and a stream asked for its usage (s_usage_edit).
 * Splicing instead of re-serialising keeps every other byte the client sent,
 * numbers included, and costs one copy. */
char *oai_extract_forward(oai_extract_t *self, const char *body, size_t body_len, const char *model,
                          size_t *len)
{
    if (self->root == OAI_JNONE || !body || body_len != self->body_len) {
        return NULL;
    }
    const oai_jdoc_t *d = self->doc;
    char quoted[6 * HPP_MAX_MODEL_LEN + 16]; /* every byte may become \u00XX */
    size_t qlen = 0;
    s_edit_t edits[5]; /* three cut runs at most, the model and stream_options */
    int nedits = 0;
    if (model) {
        size_t pos = 0;
        quoted[0] = '"';
        pos = 1;
        oai_json_escape(quoted, sizeof quoted - 2, &pos, model, strlen(model));
        quoted[pos++] = '"';
        qlen = pos;
    }
    size_t kept = s_cut_edits(d, self->root, edits, &nedits);
    s_edit_t usage;
    if (s_usage_edit(self, &usage)) {
        s_edit_add(edits, &nedits, usage);
    }
    char added[sizeof quoted + 16];
    if (model) {
        oai_jv_t mv = oai_jget(d, self->root, "model");
        s_edit_t e = {0, 0, quoted, qlen};
        if (mv) {
            oai_jspan(d, mv, &e.from, &e.to);
        } else {
            /* No model in the body (it came in a header): add one first. */
            size_t ostart, oend;
            oai_jspan(d, self->root, &ostart, &oend);
            int n = snprintf(added, sizeof added, "\"model\":%.*s%s", (int)qlen, quoted,
                             kept ? "," : "");
            e = (s_edit_t){ostart + 1, ostart + 1, added, (size_t)n};
        }
        s_edit_add(edits, &nedits, e);
    }
    size_t cap = body_len + 1;
    for (int i = 0; i < nedits; i++) {
        cap += edits[i].wlen;
    }
    char *out = malloc(cap);
    if (!out) {
        return NULL;
    }
    size_t n = 0, at = 0;
    for (int i = 0; i < nedits; i++) {
        memcpy(out + n, body + at, edits[i].from - at);
        n += edits[i].from - at;
        memcpy(out + n, edits[i].with, edits[i].wlen);
        n += edits[i].wlen;
        at = edits[i].to;
    }
    memcpy(out + n, body + at, body_len - at);
    n += body_len - at;
    out[n] = '\0';
    if (len) {
        *len = n;
    }
    return out;
}
