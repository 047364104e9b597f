/* oai_json.c - strict JSON reader into a reusable tape (see oai_json.h).
 *
 * The document owns three buffers that only ever grow (geometrically) and
 * are reused by the next parse: the node tape, the string arena and a
 * scratch array for the duplicate-key check. Nodes are appended in source
 * order, so a container's first child is the node right after it and an
 * object's value is the node right after its key; siblings are chained by
 * `next` as they are appended.
 *
 * The arena is sized once per parse to the input length + 1 before any
 * byte is read: an unescaped string is never longer than its source span
 * minus the quotes (an escape never grows), so its bytes plus the NUL fit
 * in the span, and the string loop needs no capacity check. Long numbers
 * use the same slack as scratch space for strtod.
 *
 * The parser is a loop over an explicit stack of open containers (in the
 * document), never recursion, so a hostile body cannot exhaust the C stack.
 * Errors record a message and a byte offset; line and column are counted
 * only once a parse has failed. Refusals follow jansson's json_loadb with
 * JSON_REJECT_DUPLICATES, which this replaces; tests/fuzz/fuzz_json.c checks
 * that both agree.
 */
#include "oai_json.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Objects with at most this many members are checked for duplicate keys by
 * comparing every pair; larger ones sort their keys, so a body with a
 * hundred thousand members costs n log n, not n^2. */
#define S_PAIRWISE_MAX 16

/* Real numbers up to this many bytes are copied to the stack for strtod;
 * longer ones (legal: 0.000...1) use the free tail of the arena. */
#define S_NUM_STACK 64

/* First node capacity; the tape then doubles. */
#define S_NODES_MIN 256

typedef struct {
    uint32_t type;  /* oai_jtype_t */
    uint32_t start; /* source span [start, end) */
    uint32_t end;
    uint32_t next; /* next sibling: element -> element, key -> its value -> next key */
    union {
        struct {
            uint32_t off; /* arena offset of the NUL-terminated bytes */
            uint32_t len; /* bytes, NUL excluded */
        } str;
        int64_t i;      /* OAI_J_INT */
        double d;       /* OAI_J_REAL */
        uint32_t count; /* OAI_J_ARRAY elements, OAI_J_OBJECT members */
    } u;
} s_node_t;

typedef struct {
    uint32_t box;  /* the open array or object */
    uint32_t last; /* its last child so far, OAI_JNONE before the first */
} s_frame_t;

typedef struct {
    const char *s; /* key bytes in the arena */
    uint32_t len;  /* their length */
    uint32_t node; /* key handle: source order, to report the later duplicate */
} s_key_t;

struct oai_jdoc {
    s_node_t *nodes;                     /* the tape; nodes[0] unused (OAI_JNONE) */
    uint32_t nnodes;                     /* nodes in use, 1 when there is no root */
    uint32_t cap;                        /* nodes allocated */
    char *arena;                         /* unescaped strings, NUL-terminated */
    size_t used;                         /* arena bytes in use */
    size_t arena_cap;                    /* arena bytes allocated */
    s_key_t *keys;                       /* scratch: keys of one large object */
    size_t keys_cap;                     /* entries allocated */
    s_frame_t stack[OAI_JSON_MAX_DEPTH]; /* open containers, innermost last */
};

/* State of one parse. */
typedef struct {
    oai_jdoc_t *doc;
    const unsigned char *buf; /* the input, not NUL-terminated */
    size_t len;               /* its length */
    size_t pos;               /* next byte to read */
    uint32_t depth;           /* open containers (frames in doc->stack) */
    const char *msg;          /* first error, NULL while the input is fine */
    size_t err_off;           /* byte offset of that error */
} s_parser_t;

/* Bytes that a string copies as they are: printable ASCII but '"' and '\\'.
 * Control bytes, escapes and UTF-8 sequences take the slow path. */
static const unsigned char s_plain[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7f] = 1,
};

/* The byte a one-letter escape stands for; 0 for an invalid escape. */
static const char s_unescape[256] = {
    ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
};

oai_jdoc_t *oai_jdoc_new(void)
{
    oai_jdoc_t *self = calloc(1, sizeof *self);
    if (self) {
        self->nnodes = 1;
    }
    return self;
}

void oai_jdoc_destroy(oai_jdoc_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    oai_jdoc_t *self = *self_p;
    free(self->nodes);
    free(self->arena);
    free(self->keys);
    free(self);
    *self_p = NULL;
}

/* Buffers ---------------------------------------------------------------- */

/* Records the first error of a parse; always returns -1. */
static int s_fail(s_parser_t *p, size_t off, const char *msg)
{
    if (!p->msg) {
        p->msg = msg;
        p->err_off = off;
    }
    return -1;
}

/* The next capacity for `need` items when `cap` are allocated: at least
 * double, 0 when the byte size would overflow. */
static size_t s_next_cap(size_t cap, size_t need, size_t min, size_t item)
{
    size_t n = cap < min ? min : cap;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            return 0;
        }
        n *= 2;
    }
    return n > SIZE_MAX / item ? 0 : n;
}

/* Makes room for the strings of a `len`-byte input (see the file comment).
 * The old contents are not needed, hence free + malloc instead of realloc. */
static int s_reserve_arena(oai_jdoc_t *self, size_t len)
{
    if (self->arena_cap > len) {
        return 0;
    }
    size_t cap = s_next_cap(self->arena_cap, len + 1, 1024, 1);
    free(self->arena);
    self->arena = cap ? malloc(cap) : NULL;
    self->arena_cap = self->arena ? cap : 0;
    return self->arena ? 0 : -1;
}

static int s_grow_nodes(oai_jdoc_t *self)
{
    size_t cap = s_next_cap(self->cap, (size_t)self->cap + 1, S_NODES_MIN, sizeof(s_node_t));
    if (cap == 0 || cap > UINT32_MAX) {
        return -1;
    }
    s_node_t *nodes = realloc(self->nodes, cap * sizeof(s_node_t));
    if (!nodes) {
        return -1;
    }
    self->nodes = nodes;
    self->cap = (uint32_t)cap;
    return 0;
}

static int s_reserve_keys(oai_jdoc_t *self, size_t n)
{
    if (self->keys_cap >= n) {
        return 0;
    }
    size_t cap = s_next_cap(self->keys_cap, n, 64, sizeof(s_key_t));
    free(self->keys);
    self->keys = cap ? malloc(cap * sizeof(s_key_t)) : NULL;
    self->keys_cap = self->keys ? cap : 0;
    return self->keys ? 0 : -1;
}

/* Appends a node of `type` starting at `start` and links it into the
 * innermost open container. Returns its handle, or OAI_JNONE when out of
 * memory. Any s_node_t pointer taken before this call is stale after it. */
static uint32_t s_node_new(s_parser_t *p, oai_jtype_t type, size_t start)
{
    oai_jdoc_t *d = p->doc;
    if (d->nnodes >= d->cap && s_grow_nodes(d) < 0) {
        s_fail(p, start, "out of memory");
        return OAI_JNONE;
    }
    uint32_t v = d->nnodes++;
    s_node_t *n = &d->nodes[v];
    n->type = type;
    n->start = (uint32_t)start;
    n->end = (uint32_t)start;
    n->next = OAI_JNONE;
    n->u.i = 0;
    if (p->depth > 0) {
        s_frame_t *f = &d->stack[p->depth - 1];
        if (f->last != OAI_JNONE) {
            d->nodes[f->last].next = v;
        }
        f->last = v;
        if (d->nodes[f->box].type == OAI_J_ARRAY) {
            d->nodes[f->box].u.count++;
        }
    }
    return v;
}

/* Lexical pieces ---------------------------------------------------------- */

static void s_skip_ws(s_parser_t *p)
{
    const unsigned char *buf = p->buf;
    size_t pos = p->pos, len = p->len;
    while (pos < len) {
        unsigned char c = buf[pos];
        if (c > ' ' || (c != ' ' && c != '\n' && c != '\r' && c != '\t')) {
            break;
        }
        pos++;
    }
    p->pos = pos;
}

/* Length of the valid UTF-8 sequence (2 to 4 bytes) at s, 0 when invalid:
 * a stray continuation byte, an overlong form, a surrogate, a code point
 * above U+10FFFF or a sequence cut by the end of the input. */
static size_t s_utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0xc2 || c > 0xf4) {
        return 0;
    }
    size_t n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (avail < n) {
        return 0;
    }
    /* The second byte's range is what rules out overlongs (E0, F0),
     * surrogates (ED) and code points past U+10FFFF (F4). */
    unsigned char lo = 0x80, hi = 0xbf;
    if (c == 0xe0) {
        lo = 0xa0;
    } else if (c == 0xed) {
        hi = 0x9f;
    } else if (c == 0xf0) {
        lo = 0x90;
    } else if (c == 0xf4) {
        hi = 0x8f;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

/* Value of 4 hex digits, -1 when one is not a hex digit. */
static int32_t s_hex4(const unsigned char *s)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        int32_t x;
        if (c >= '0' && c <= '9') {
            x = c - '0';
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            x = (c | 0x20) - 'a' + 10;
        } else {
            return -1;
        }
        v = v << 4 | x;
    }
    return v;
}

/* Reads "\uXXXX" at `pos` (its backslash) into *cp; returns the bytes
 * read, or -1 after recording why it is not one. */
static int s_u_escape(s_parser_t *p, size_t pos, int32_t *cp)
{
    for (size_t i = 2; i < 6; i++) {
        if (pos + i >= p->len) {
            return s_fail(p, p->len, "unterminated string");
        }
    }
    *cp = s_hex4(p->buf + pos + 2);
    return *cp < 0 ? s_fail(p, pos, "invalid \\u escape") : 6;
}

static size_t s_utf8_put(char *o, int32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escape whose backslash is at *pos into o, advancing *pos.
 * Returns the bytes written, or -1. */
static int s_escape(s_parser_t *p, size_t *pos, char *o)
{
    size_t at = *pos;
    if (at + 1 >= p->len) {
        return s_fail(p, p->len, "unterminated string");
    }
    unsigned char e = p->buf[at + 1];
    if (e != 'u') {
        if (!s_unescape[e]) {
            return s_fail(p, at, "invalid escape");
        }
        *o = s_unescape[e];
        *pos = at + 2;
        return 1;
    }
    int32_t cp, lo;
    int n = s_u_escape(p, at, &cp);
    if (n < 0) {
        return -1;
    }
    if (cp == 0) {
        /* Strings are handed out NUL-terminated without a length. */
        return s_fail(p, at, "\\u0000 is not allowed");
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        return s_fail(p, at, "invalid Unicode: lone low surrogate");
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
        /* Only a \u low surrogate may follow a high one. */
        size_t at2 = at + 6;
        if (at2 + 1 >= p->len || p->buf[at2] != '\\' || p->buf[at2 + 1] != 'u') {
            return s_fail(p, at, "invalid Unicode: lone high surrogate");
        }
        if (s_u_escape(p, at2, &lo) < 0) {
            return -1;
        }
        if (lo < 0xdc00 || lo > 0xdfff) {
            return s_fail(p, at, "invalid Unicode surrogate pair");
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        n += 6;
    }
    *pos = at + (size_t)n;
    return (int)s_utf8_put(o, cp);
}

/* Length of the run of s_plain bytes at buf[pos..len). Eight bytes at a
 * time while no byte is below 0x20, a quote, a backslash or above 0x7f
 * (the "has a byte less than n" / "has a zero byte" tricks, exact as a
 * yes/no answer); the byte loop then finds where the run stops. */
static size_t s_plain_run(const unsigned char *buf, size_t pos, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    size_t i = pos;
#if defined(__SSE2__)
    /* 16 bytes at a time; the first byte that needs a look ends the run
     * here, so that no byte of it is looked at twice. A signed compare with
     * 0x20 catches control bytes and bytes >= 0x80 at once. */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i below = _mm_set1_epi8(0x20);
    while (len - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
        __m128i x = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, below));
        unsigned m = (unsigned)_mm_movemask_epi8(x);
        if (m) {
            return i + (size_t)__builtin_ctz(m) - pos;
        }
        i += 16;
    }
#endif
    while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        uint64_t q = w ^ (ones * '"');
        uint64_t b = w ^ (ones * '\\');
        uint64_t ctl = (w - ones * 0x20) & ~w;
        if ((ctl | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & high) {
            break;
        }
        i += 8;
    }
    while (i < len && s_plain[buf[i]]) {
        i++;
    }
    return i - pos;
}

/* Parses the string whose opening quote is at p->pos into a new node. */
static uint32_t s_string(s_parser_t *p)
{
    size_t start = p->pos;
    uint32_t v = s_node_new(p, OAI_J_STRING, start);
    if (v == OAI_JNONE) {
        return OAI_JNONE;
    }
    oai_jdoc_t *d = p->doc;
    const unsigned char *buf = p->buf;
    size_t len = p->len, pos = start + 1;
    char *out = d->arena + d->used, *o = out;
    for (;;) {
        bool special = false; /* pos is at a byte that is not plain */
#if defined(__SSE2__)
        /* Scan and copy in one pass: each 16 bytes are stored whole before
         * they are looked at, and o advances only over the plain ones; a
         * special byte goes straight to its case below. The store stays in
         * the arena: it holds len + 1 bytes and a string's output never runs
         * ahead of its source (o - arena < pos), so o + 16 < arena + len + 1
         * while pos + 16 <= len. Prompt text breaks runs at every "\n" (every
         * 20 to 40 bytes of code), so the way back here is kept short: on
         * the 32 KB bench body 26% fewer instructions than a run scan, a
         * memcpy call and an escape call per run (callgrind). */
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
        const __m128i below = _mm_set1_epi8(0x20);
        while (len - pos >= 16) {
            __m128i b16 = _mm_loadu_si128((const __m128i *)(const void *)(buf + pos));
            _mm_storeu_si128((__m128i *)(void *)o, b16);
            __m128i x =
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b16, quote), _mm_cmpeq_epi8(b16, bslash)),
                             _mm_cmplt_epi8(b16, below));
            unsigned m = (unsigned)_mm_movemask_epi8(x);
            if (m) {
                size_t k = (size_t)__builtin_ctz(m);
                o += k;
                pos += k;
                special = true;
                break;
            }
            o += 16;
            pos += 16;
        }
#endif
        if (!special) {
            size_t run = s_plain_run(buf, pos, len);
            memcpy(o, buf + pos, run);
            o += run;
            pos += run;
        }
        if (pos == len) {
            s_fail(p, len, "unterminated string");
            return OAI_JNONE;
        }
        unsigned char c = buf[pos];
        if (c == '"') {
            break;
        }
        if (c == '\\' && pos + 1 < len && buf[pos + 1] != 'u' && s_unescape[buf[pos + 1]]) {
            *o++ = s_unescape[buf[pos + 1]]; /* \n, \", ...: inline */
            pos += 2;
        } else if (c == '\\') {
            int n = s_escape(p, &pos, o);
            if (n < 0) {
                return OAI_JNONE;
            }
            o += n;
        } else if (c < 0x20) {
            s_fail(p, pos, "control character in string");
            return OAI_JNONE;
        } else {
            size_t n = s_utf8_seq(buf + pos, len - pos);
            if (n == 0) {
                s_fail(p, pos, "invalid UTF-8 in string");
                return OAI_JNONE;
            }
            memcpy(o, buf + pos, n);
            o += n;
            pos += n;
        }
    }
    *o = '\0';
    s_node_t *n = &d->nodes[v];
    n->end = (uint32_t)(pos + 1);
    n->u.str.off = (uint32_t)d->used;
    n->u.str.len = (uint32_t)(o - out);
    d->used += (size_t)(o - out) + 1;
    p->pos = pos + 1;
    return v;
}

/* strtod on the NUL-terminated number text; -1 when it does not take it all.
 * strtod follows LC_NUMERIC: under a locale whose decimal point is not '.',
 * the point is swapped for it (as jansson does). */
static int s_strtod(char *text, size_t n, double *out)
{
    char *end;
    *out = strtod(text, &end);
    if (end != text + n) {
        const char *dp = localeconv()->decimal_point;
        char *dot = memchr(text, '.', n);
        if (!dot || !dp || !dp[0] || dp[1]) {
            return -1;
        }
        *dot = dp[0];
        *out = strtod(text, &end);
    }
    return end == text + n ? 0 : -1;
}

/* Scans the RFC 8259 number at p->pos into a new node: OAI_J_INT without a
 * fraction or exponent (refused outside int64), else OAI_J_REAL (refused
 * when it overflows; underflow gives 0). */
static uint32_t s_number(s_parser_t *p)
{
    const unsigned char *buf = p->buf;
    size_t len = p->len, start = p->pos, pos = start;
    bool neg = false, real = false;
    if (buf[pos] == '-') {
        neg = true;
        pos++;
    }
    uint64_t u = 0;
    size_t digits_at = pos;
    if (pos < len && buf[pos] == '0') {
        pos++;
        if (pos < len && buf[pos] >= '0' && buf[pos] <= '9') {
            s_fail(p, start, "invalid number: leading zero");
            return OAI_JNONE;
        }
    } else if (pos < len && buf[pos] >= '1' && buf[pos] <= '9') {
        while (pos < len && buf[pos] >= '0' && buf[pos] <= '9') {
            u = u * 10 + (uint64_t)(buf[pos] - '0'); /* wraps past 19 digits: see below */
            pos++;
        }
    } else {
        s_fail(p, start, "invalid number");
        return OAI_JNONE;
    }
    size_t ndigits = pos - digits_at;
    if (pos < len && buf[pos] == '.') {
        real = true;
        pos++;
        if (pos == len || buf[pos] < '0' || buf[pos] > '9') {
            s_fail(p, start, "invalid number: digit expected after '.'");
            return OAI_JNONE;
        }
        while (pos < len && buf[pos] >= '0' && buf[pos] <= '9') {
            pos++;
        }
    }
    if (pos < len && (buf[pos] == 'e' || buf[pos] == 'E')) {
        real = true;
        pos++;
        if (pos < len && (buf[pos] == '+' || buf[pos] == '-')) {
            pos++;
        }
        if (pos == len || buf[pos] < '0' || buf[pos] > '9') {
            s_fail(p, start, "invalid number: digit expected in exponent");
            return OAI_JNONE;
        }
        while (pos < len && buf[pos] >= '0' && buf[pos] <= '9') {
            pos++;
        }
    }

    int64_t i = 0;
    double d = 0;
    if (!real) {
        /* 19 digits never wrap a uint64_t; without leading zeros, 20 or more
         * are at least 10^19 > 2^63. */
        uint64_t max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (ndigits > 19 || u > max) {
            s_fail(p, start, neg ? "too big negative integer" : "too big integer");
            return OAI_JNONE;
        }
        i = !neg ? (int64_t)u : u == max ? INT64_MIN : -(int64_t)u;
    } else {
        size_t n = pos - start;
        char small[S_NUM_STACK];
        /* The arena has len + 1 bytes and strings so far used at most the
         * bytes before this number, so its tail holds the number too. */
        char *text = n < sizeof small ? small : p->doc->arena + p->doc->used;
        memcpy(text, buf + start, n);
        text[n] = '\0';
        if (s_strtod(text, n, &d) < 0) {
            s_fail(p, start, "invalid number");
            return OAI_JNONE;
        }
        if (isinf(d)) {
            s_fail(p, start, "real number overflow");
            return OAI_JNONE;
        }
    }
    uint32_t v = s_node_new(p, real ? OAI_J_REAL : OAI_J_INT, start);
    if (v != OAI_JNONE) {
        s_node_t *node = &p->doc->nodes[v];
        node->end = (uint32_t)pos;
        if (real) {
            node->u.d = d;
        } else {
            node->u.i = i;
        }
        p->pos = pos;
    }
    return v;
}

static uint32_t s_literal(s_parser_t *p, const char *word, size_t n, oai_jtype_t type)
{
    if (p->len - p->pos < n || memcmp(p->buf + p->pos, word, n) != 0) {
        s_fail(p, p->pos, "invalid literal");
        return OAI_JNONE;
    }
    uint32_t v = s_node_new(p, type, p->pos);
    if (v != OAI_JNONE) {
        p->pos += n;
        p->doc->nodes[v].end = (uint32_t)p->pos;
    }
    return v;
}

/* Structure --------------------------------------------------------------- */

/* Reads `"key" :` (after '{' or ',') as the next member's key node. */
static int s_key(s_parser_t *p)
{
    s_skip_ws(p);
    if (p->pos == p->len) {
        return s_fail(p, p->pos, "unexpected end of input");
    }
    if (p->buf[p->pos] != '"') {
        return s_fail(p, p->pos, "expected a string key");
    }
    if (s_string(p) == OAI_JNONE) {
        return -1;
    }
    p->doc->nodes[p->doc->stack[p->depth - 1].box].u.count++;
    s_skip_ws(p);
    if (p->pos == p->len) {
        return s_fail(p, p->pos, "unexpected end of input");
    }
    if (p->buf[p->pos] != ':') {
        return s_fail(p, p->pos, "expected ':'");
    }
    p->pos++;
    return 0;
}

static bool s_key_eq(const oai_jdoc_t *d, uint32_t a, uint32_t b)
{
    const s_node_t *x = &d->nodes[a], *y = &d->nodes[b];
    return x->u.str.len == y->u.str.len &&
           memcmp(d->arena + x->u.str.off, d->arena + y->u.str.off, x->u.str.len) == 0;
}

/* Sorts by length, then bytes (only equality matters), then source order. */
static int s_key_cmp(const s_key_t *x, const s_key_t *y)
{
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    int c = memcmp(x->s, y->s, x->len);
    if (c != 0) {
        return c;
    }
    return x->node < y->node ? -1 : x->node > y->node;
}

/* Bottom-up merge sort of k[0..n) using tmp[0..n): O(n log n) at worst,
 * and no allocation (tmp is the second half of the reusable key scratch).
 * qsort would do as well, but glibc's merge sort mallocs its buffer once
 * the entries pass 1 KiB, on every large object of every request. */
static void s_sort_keys(s_key_t *k, s_key_t *tmp, size_t n)
{
    s_key_t *src = k, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) {
                dst[o++] = s_key_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
            }
            memcpy(dst + o, src + i, (mid - i) * sizeof *src);
            o += mid - i;
            memcpy(dst + o, src + j, (hi - j) * sizeof *src);
        }
        s_key_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != k) {
        memcpy(k, src, n * sizeof *k);
    }
}

/* Refuses an object with two equal keys, reporting the first key (in
 * source order) that repeats an earlier one, as jansson does. */
static int s_check_dups(s_parser_t *p, uint32_t obj)
{
    oai_jdoc_t *d = p->doc;
    uint32_t n = d->nodes[obj].u.count;
    if (n < 2) {
        return 0;
    }
    if (n <= S_PAIRWISE_MAX) {
        uint32_t k[S_PAIRWISE_MAX];
        k[0] = obj + 1;
        for (uint32_t j = 1; j < n; j++) {
            k[j] = d->nodes[d->nodes[k[j - 1]].next].next;
            for (uint32_t i = 0; i < j; i++) {
                if (s_key_eq(d, k[i], k[j])) {
                    return s_fail(p, d->nodes[k[j]].start, "duplicate object key");
                }
            }
        }
        return 0;
    }
    if (s_reserve_keys(d, 2 * (size_t)n) < 0) {
        return s_fail(p, d->nodes[obj].start, "out of memory");
    }
    uint32_t k = obj + 1;
    for (uint32_t j = 0; j < n; j++) {
        const s_node_t *key = &d->nodes[k];
        d->keys[j] = (s_key_t){d->arena + key->u.str.off, key->u.str.len, k};
        k = j + 1 < n ? d->nodes[key->next].next : OAI_JNONE;
    }
    s_sort_keys(d->keys, d->keys + n, n);
    /* Within a run of equal keys the handles ascend, so the run's second
     * entry is its first repeat; report the earliest over all runs. */
    uint32_t dup = UINT32_MAX;
    for (uint32_t j = 1; j < n; j++) {
        const s_key_t *a = &d->keys[j - 1], *b = &d->keys[j];
        if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0 && b->node < dup) {
            dup = b->node;
        }
    }
    return dup == UINT32_MAX ? 0 : s_fail(p, d->nodes[dup].start, "duplicate object key");
}

/* Closes the innermost container at its closing bracket (p->pos). */
static int s_close(s_parser_t *p)
{
    oai_jdoc_t *d = p->doc;
    uint32_t box = d->stack[p->depth - 1].box;
    d->nodes[box].end = (uint32_t)(++p->pos);
    p->depth--;
    return d->nodes[box].type == OAI_J_OBJECT ? s_check_dups(p, box) : 0;
}

/* Parses the value at p->pos. Returns 0 when a whole value was read, 1 when
 * a container was opened and its first value (after the key, for an
 * object) comes next, -1 on error. */
static int s_value(s_parser_t *p)
{
    s_skip_ws(p);
    if (p->pos == p->len) {
        return s_fail(p, p->pos, "unexpected end of input");
    }
    unsigned char c = p->buf[p->pos];
    uint32_t v;
    switch (c) {
    case '[':
    case '{':
        if (p->depth == OAI_JSON_MAX_DEPTH) {
            return s_fail(p, p->pos, "nesting too deep");
        }
        v = s_node_new(p, c == '[' ? OAI_J_ARRAY : OAI_J_OBJECT, p->pos);
        if (v == OAI_JNONE) {
            return -1;
        }
        p->doc->stack[p->depth++] = (s_frame_t){v, OAI_JNONE};
        p->pos++;
        s_skip_ws(p);
        if (p->pos < p->len && p->buf[p->pos] == (c == '[' ? ']' : '}')) {
            return s_close(p);
        }
        if (c == '{') {
            return s_key(p) < 0 ? -1 : 1;
        }
        return 1;
    case '"':
        v = s_string(p);
        break;
    case 't':
        v = s_literal(p, "true", 4, OAI_J_TRUE);
        break;
    case 'f':
        v = s_literal(p, "false", 5, OAI_J_FALSE);
        break;
    case 'n':
        v = s_literal(p, "null", 4, OAI_J_NULL);
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        v = s_number(p);
        break;
    default:
        return s_fail(p, p->pos, "expected a value");
    }
    return v == OAI_JNONE ? -1 : 0;
}

/* After a complete value: closes every container that ends here. Returns 1
 * when another value follows (after ',' and, in an object, the key), 0 when
 * the top-level value is complete, -1 on error. */
static int s_after_value(s_parser_t *p)
{
    while (p->depth > 0) {
        s_skip_ws(p);
        if (p->pos == p->len) {
            return s_fail(p, p->pos, "unexpected end of input");
        }
        bool obj = p->doc->nodes[p->doc->stack[p->depth - 1].box].type == OAI_J_OBJECT;
        unsigned char c = p->buf[p->pos];
        if (c == ',') {
            p->pos++;
            return obj && s_key(p) < 0 ? -1 : 1;
        }
        if (c != (obj ? '}' : ']')) {
            return s_fail(p, p->pos, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        if (s_close(p) < 0) {
            return -1;
        }
    }
    return 0;
}

static int s_parse(s_parser_t *p)
{
    s_skip_ws(p);
    if (p->pos == p->len) {
        return s_fail(p, p->pos, "empty input");
    }
    for (;;) {
        int rc = s_value(p);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            rc = s_after_value(p);
            if (rc <= 0) {
                break;
            }
        }
    }
    if (p->msg) {
        return -1;
    }
    s_skip_ws(p);
    return p->pos == p->len ? 0 : s_fail(p, p->pos, "trailing characters after the value");
}

/* 1-based line and byte column of `off`; only called for an error. */
static void s_locate(const unsigned char *buf, size_t off, int *line, int *column)
{
    size_t lines = 1, bol = 0;
    const unsigned char *q = buf, *end = buf + off;
    while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        q++;
        lines++;
        bol = (size_t)(q - buf);
    }
    size_t col = off - bol + 1;
    *line = lines > INT_MAX ? INT_MAX : (int)lines;
    *column = col > INT_MAX ? INT_MAX : (int)col;
}

oai_jv_t oai_jdoc_parse(oai_jdoc_t *self, const char *buf, size_t len, oai_jerr_t *err)
{
    s_parser_t p = {.doc = self, .buf = (const unsigned char *)buf, .len = buf ? len : 0};
    self->nnodes = 1;
    self->used = 0;
    if (p.len > UINT32_MAX / 2) {
        /* Spans and arena offsets are 32-bit; the sidecar never gets close. */
        s_fail(&p, 0, "input too large");
    } else if (s_reserve_arena(self, p.len) < 0) {
        s_fail(&p, 0, "out of memory");
    } else if (s_parse(&p) == 0) {
        return 1; /* the root is the first node */
    }
    self->nnodes = 1; /* stale handles now answer as OAI_JNONE */
    if (err) {
        snprintf(err->text, sizeof err->text, "%s", p.msg);
        err->offset = p.err_off;
        if (p.len > UINT32_MAX / 2) {
            err->line = err->column = 1;
        } else {
            s_locate(p.buf, p.err_off, &err->line, &err->column);
        }
    }
    return OAI_JNONE;
}

/* Accessors ---------------------------------------------------------------- */

/* The node of v, NULL for OAI_JNONE or a handle beyond the last parse. */
static const s_node_t *s_get(const oai_jdoc_t *self, oai_jv_t v)
{
    return self && v != OAI_JNONE && v < self->nnodes ? &self->nodes[v] : NULL;
}

oai_jtype_t oai_jtype(const oai_jdoc_t *self, oai_jv_t v)
{
    const s_node_t *n = s_get(self, v);
    return n ? (oai_jtype_t)n->type : OAI_J_NONE;
}

const char *oai_jtype_name(oai_jtype_t t)
{
    static const char *const names[] = {
        [OAI_J_NONE] = "nothing",  [OAI_J_NULL] = "null",   [OAI_J_FALSE] = "false",
        [OAI_J_TRUE] = "true",     [OAI_J_INT] = "integer", [OAI_J_REAL] = "real",
        [OAI_J_STRING] = "string", [OAI_J_ARRAY] = "array", [OAI_J_OBJECT] = "object",
    };
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "nothing";
}

const char *oai_jstr(const oai_jdoc_t *self, oai_jv_t v, size_t *len)
{
    const s_node_t *n = s_get(self, v);
    if (!n || n->type != OAI_J_STRING) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }
    if (len) {
        *len = n->u.str.len;
    }
    return self->arena + n->u.str.off;
}

int64_t oai_jint(const oai_jdoc_t *self, oai_jv_t v)
{
    const s_node_t *n = s_get(self, v);
    return n && n->type == OAI_J_INT ? n->u.i : 0;
}

double oai_jnum(const oai_jdoc_t *self, oai_jv_t v)
{
    const s_node_t *n = s_get(self, v);
    if (n && n->type == OAI_J_INT) {
        return (double)n->u.i;
    }
    return n && n->type == OAI_J_REAL ? n->u.d : 0;
}

size_t oai_jsize(const oai_jdoc_t *self, oai_jv_t v)
{
    const s_node_t *n = s_get(self, v);
    return n && (n->type == OAI_J_ARRAY || n->type == OAI_J_OBJECT) ? n->u.count : 0;
}

oai_jv_t oai_jfirst(const oai_jdoc_t *self, oai_jv_t v)
{
    return oai_jsize(self, v) > 0 ? v + 1 : OAI_JNONE;
}

oai_jv_t oai_jnext(const oai_jdoc_t *self, oai_jv_t v)
{
    const s_node_t *n = s_get(self, v);
    return n ? n->next : OAI_JNONE;
}

oai_jv_t oai_jget(const oai_jdoc_t *self, oai_jv_t obj, const char *key)
{
    if (!key || oai_jtype(self, obj) != OAI_J_OBJECT) {
        return OAI_JNONE;
    }
    size_t len = strlen(key);
    for (oai_jv_t k = oai_jfirst(self, obj); k != OAI_JNONE; k = oai_jnext(self, k + 1)) {
        const s_node_t *n = &self->nodes[k];
        if (n->u.str.len == len && memcmp(self->arena + n->u.str.off, key, len) == 0) {
            return k + 1;
        }
    }
    return OAI_JNONE;
}

oai_jv_t oai_jat(const oai_jdoc_t *self, oai_jv_t arr, size_t i)
{
    if (oai_jtype(self, arr) != OAI_J_ARRAY || i >= oai_jsize(self, arr)) {
        return OAI_JNONE;
    }
    oai_jv_t v = arr + 1;
    while (i-- > 0) {
        v = self->nodes[v].next;
    }
    return v;
}

void oai_jspan(const oai_jdoc_t *self, oai_jv_t v, size_t *start, size_t *end)
{
    const s_node_t *n = s_get(self, v);
    *start = n ? n->start : 0;
    *end = n ? n->end : 0;
}
