/* eng_regex.c - allocation-free, linear-time regular-expression search.
 *
 * Compile: a recursive-descent parser builds a small AST (growable arrays, freed at the end of
 * compilation), annotating every node with the number of NFA states it will need so that an
 * oversized repetition is reported at its own quantifier. The AST is then emitted as a Thompson
 * NFA in one flat instruction array (SET byte-class, SPLIT, JMP, ASSERT, MATCH) with deduplicated
 * 256-bit byte classes. Counted repetition is expanded into copies, so the program has no
 * counters and the matcher no per-thread data beyond a state number.
 *
 * Match: one step per text byte over the set of live NFA threads, never backtracking, so
 * O(len * states) time for any pattern, and nothing allocated, locked or shared. Two matchers:
 *  - bit-parallel, for programs with at most 63 byte-matching (SET) states, i.e. nearly every
 *    hint rule: the thread set is one uint64; a step ANDs it with the byte's precomputed state
 *    mask and ORs the precomputed epsilon closure of each survivor. Closures depend on the
 *    assertions (^ $ \b \B), so they are tabled for the 8 possible contexts of a position.
 *  - thread lists, for larger programs: a Pike-style simulation whose two lists, "already on the
 *    list" bitset and closure stack live on the C stack, sized by ENG_REGEX_MAX_STATES. Every
 *    state enters a list at most once per position.
 * Both use a first-byte set computed at compile time to skip, with a table scan (memchr for a
 * single byte), the stretches of text where no thread is alive and no match can start, which is
 * most of the text for typical hint patterns.
 *
 * Owns: one heap block per compiled regex (header, matcher tables, classes, program), read-only
 * after compile.
 */
#include "eng_regex.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Instructions. */
enum { OP_SET, OP_SPLIT, OP_JMP, OP_ASSERT, OP_MATCH };
/* Assertions; the value is the bit position in the per-position context mask. */
enum { AS_BOL, AS_EOL, AS_WORDB, AS_NWORDB };

/* The table builders below loop over every byte and every state of a compiled program. Under a
 * coverage-guided fuzzer their comparisons were most of the cost of compiling a policy, and their
 * branches follow from the program the parser and emitter built, whose own coverage the fuzzer
 * still sees; AddressSanitizer still checks them. */
#if defined(__clang__) && __clang_major__ >= 13
#define S_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define S_NO_COVERAGE
#endif
#define S_NONE 0xFFFFu                             /* "no state" in 16-bit state links */
#define S_WORDS ((ENG_REGEX_MAX_STATES + 63) / 64) /* uint64 words of a state bitset */
#define S_INF (-1)                                 /* unbounded repetition maximum */

/* A set of bytes. */
typedef struct {
    uint64_t w[4]; /* bit c set when byte c is in the set */
} s_class_t;

typedef struct {
    uint8_t op;   /* OP_* */
    uint8_t arg;  /* OP_ASSERT: AS_* */
    uint16_t cls; /* OP_SET: index into classes */
    uint16_t x;   /* next state (SET, ASSERT, JMP), first branch (SPLIT) */
    uint16_t y;   /* SPLIT: second branch */
} s_inst_t;

struct eng_regex {
    uint16_t nstates;   /* instructions in prog; prog[0] is the start */
    uint16_t nwords;    /* uint64 words needed for a bitset of nstates */
    uint16_t nclasses;  /* entries in classes */
    bool nullable;      /* a fresh start after position 0 may match without consuming a byte */
    int first_count;    /* bytes in `first`; 0 when a match can only start at position 0 */
    int first_single;   /* the only byte of `first`, or -1 */
    s_class_t first;    /* bytes a match starting after position 0 may begin with */
    s_class_t *classes; /* byte classes of the SET instructions (same block) */
    s_inst_t *prog;     /* the NFA (same block) */
    /* Bit-parallel matcher, for programs with at most S_FAST_MAX SET states (most hint rules):
     * a set of threads is one uint64, SET state k being bit k (its number is in prog[].y). */
    bool fast;        /* the tables below exist */
    bool has_assert;  /* any ASSERT: closures depend on the context at each position */
    uint16_t nset;    /* SET states; bit nset of a row index is the start state */
    uint64_t *bymask; /* [256]: SET states whose class holds the byte (same block) */
    uint64_t *clos;   /* [8][nset + 1]: per context index (s_ctx_index), the SET states and
                         S_MATCH_BIT reachable without consuming from the successor of SET
                         state k, or from the start for k = nset (same block) */
    /* DFA over the bit-parallel matcher's thread sets, when they stay few (s_build_dfa): one
     * table lookup per text byte. NULL when not built. Its own block. */
    uint16_t *dfa;       /* [dfa_states][dfa_nclass]: the next state's row (state number times
                            dfa_nclass, saving a multiply per byte), or S_DFA_ACCEPT */
    uint8_t *dfa_class;  /* [256]: byte -> column of dfa (same block) */
    uint8_t *dfa_eot;    /* [dfa_states]: 1 when a match ends at the end of the text */
    uint16_t dfa_nclass; /* byte classes */
    uint16_t dfa_states; /* DFA states; state 0 is the start of the text */
    int32_t dfa_dead[2]; /* states with no thread alive after a non-word / word byte, or -1 */
    bool dfa_skip;       /* both exist, the pattern is not nullable and at most 4 bytes can
                            begin a match: skip from them */
};

#define S_FAST_MAX 63                   /* SET states the bit-parallel matcher handles */
#define S_MATCH_BIT (UINT64_C(1) << 63) /* "MATCH reachable" in a closure mask */
#define S_NCTX 8                        /* context indexes: bol | eol << 1 | wordb << 2 */
#define S_DFA_MAX_STATES 1024           /* more: keep the bit-parallel matcher */
#define S_DFA_MAX_CELLS (60 * 1024)     /* states x classes: rows fit uint16 below ACCEPT */
#define S_DFA_ACCEPT UINT16_MAX         /* transition marker: a match ends here */

/* ---------------------------------------------------------------------------------------------
 * Byte classes
 */

static inline bool s_has(const s_class_t *c, unsigned b)
{
    return (c->w[b >> 6] >> (b & 63)) & 1;
}

static inline void s_add(s_class_t *c, unsigned b)
{
    c->w[b >> 6] |= UINT64_C(1) << (b & 63);
}

/* Bytes lo..hi (lo <= hi <= 255), a word at a time: a range such as [\x00-\xff] would otherwise
 * cost 256 steps. */
static void s_add_range(s_class_t *c, unsigned lo, unsigned hi)
{
    for (unsigned i = lo >> 6; i <= hi >> 6; i++) {
        unsigned from = lo > i * 64 ? lo - i * 64 : 0;
        unsigned to = hi < i * 64 + 63 ? hi - i * 64 : 63;
        uint64_t upto = to == 63 ? UINT64_MAX : (UINT64_C(1) << (to + 1)) - 1;
        c->w[i] |= upto & ~((UINT64_C(1) << from) - 1);
    }
}

static void s_union(s_class_t *dst, const s_class_t *src)
{
    for (int i = 0; i < 4; i++) {
        dst->w[i] |= src->w[i];
    }
}

static void s_negate(s_class_t *c)
{
    for (int i = 0; i < 4; i++) {
        c->w[i] = ~c->w[i];
    }
}

/* ASCII case folding: a letter in either case brings in the other. */
static void s_fold(s_class_t *c)
{
    /* 'A'..'Z' are bits 1..26 of word 1 and 'a'..'z' bits 33..58: both cases of every letter
     * either case of which is in the class, in three word operations. */
    const uint64_t letters = (UINT64_C(1) << 26) - 1;
    uint64_t m = ((c->w[1] >> 1) | (c->w[1] >> 33)) & letters;
    c->w[1] |= (m << 1) | (m << 33);
}

/* Word bytes, for \w and \b. */
static const bool s_word_byte[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['_'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
    ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,
    ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Context index of text position i (between t[i-1] and t[i]): bol | eol << 1 | wordb << 2. */
static inline unsigned s_ctx_index(const unsigned char *t, size_t len, size_t i)
{
    bool before = i > 0 && s_word_byte[t[i - 1]];
    bool after = i < len && s_word_byte[t[i]];
    return (unsigned)(i == 0) | (unsigned)(i == len) << 1 | (unsigned)(before != after) << 2;
}

/* The assertion mask (bits AS_*) of a context index. */
static unsigned s_ctx_mask(unsigned ci)
{
    unsigned m = (ci & 4) ? 1u << AS_WORDB : 1u << AS_NWORDB;
    if (ci & 1) {
        m |= 1u << AS_BOL;
    }
    if (ci & 2) {
        m |= 1u << AS_EOL;
    }
    return m;
}

/* Named byte sets: POSIX classes and the \d \w \s escapes (ASCII, independent of the locale). */
typedef enum {
    K_ALPHA,
    K_DIGIT,
    K_ALNUM,
    K_UPPER,
    K_LOWER,
    K_SPACE,
    K_BLANK,
    K_PUNCT,
    K_PRINT,
    K_GRAPH,
    K_CNTRL,
    K_XDIGIT,
    K_WORD
} s_named_t;

static const struct {
    const char *name; /* POSIX name, as in [:name:] */
    s_named_t kind;   /* which set */
} s_posix_classes[] = {
    {"alpha", K_ALPHA}, {"digit", K_DIGIT}, {"alnum", K_ALNUM}, {"upper", K_UPPER},
    {"lower", K_LOWER}, {"space", K_SPACE}, {"blank", K_BLANK}, {"punct", K_PUNCT},
    {"print", K_PRINT}, {"graph", K_GRAPH}, {"cntrl", K_CNTRL}, {"xdigit", K_XDIGIT},
    {"word", K_WORD},   {NULL, K_ALPHA},
};

static void s_named(s_class_t *c, s_named_t kind)
{
    switch (kind) {
    case K_ALPHA:
        s_add_range(c, 'a', 'z');
        s_add_range(c, 'A', 'Z');
        break;
    case K_DIGIT:
        s_add_range(c, '0', '9');
        break;
    case K_ALNUM:
        s_named(c, K_ALPHA);
        s_named(c, K_DIGIT);
        break;
    case K_UPPER:
        s_add_range(c, 'A', 'Z');
        break;
    case K_LOWER:
        s_add_range(c, 'a', 'z');
        break;
    case K_SPACE:
        s_add_range(c, '\t', '\r'); /* \t \n \v \f \r */
        s_add(c, ' ');
        break;
    case K_BLANK:
        s_add(c, ' ');
        s_add(c, '\t');
        break;
    case K_PUNCT:
        s_add_range(c, '!', '/');
        s_add_range(c, ':', '@');
        s_add_range(c, '[', '`');
        s_add_range(c, '{', '~');
        break;
    case K_PRINT:
        s_add_range(c, ' ', '~');
        break;
    case K_GRAPH:
        s_add_range(c, '!', '~');
        break;
    case K_CNTRL:
        s_add_range(c, 0, 31);
        s_add(c, 127);
        break;
    case K_XDIGIT:
        s_add_range(c, '0', '9');
        s_add_range(c, 'a', 'f');
        s_add_range(c, 'A', 'F');
        break;
    case K_WORD:
        s_named(c, K_ALNUM);
        s_add(c, '_');
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Parser: pattern -> AST
 */

typedef enum { N_EMPTY, N_SET, N_ASSERT, N_CAT, N_ALT, N_REP } s_kind_t;

#define S_INL_NODES 64 /* AST nodes a parser holds in place (s_parser_t) */
#define S_INL_RAW 16   /* and byte classes */

typedef struct {
    uint8_t kind;  /* s_kind_t */
    uint8_t arg;   /* N_ASSERT: AS_* */
    int32_t child; /* N_CAT, N_ALT: first child; N_REP: operand; N_SET: raw class index */
    int32_t next;  /* next sibling in the parent's N_CAT/N_ALT list, -1 at the end */
    int32_t min;   /* N_REP: minimum count */
    int32_t max;   /* N_REP: maximum count or S_INF */
    int32_t off;   /* pattern offset, for errors (quantifier offset for N_REP) */
    int32_t size;  /* NFA states it emits, saturated at ENG_REGEX_MAX_STATES + 1 */
} s_node_t;

typedef struct {
    const unsigned char *pat; /* the pattern */
    size_t len;               /* its length */
    size_t pos;               /* next byte to read */
    bool icase;               /* ENG_REGEX_ICASE */
    int depth;                /* current group nesting */
    s_node_t *nodes;          /* AST nodes (indexes, never pointers: the array moves) */
    size_t nnodes;            /* used */
    size_t capnodes;          /* allocated */
    s_class_t *raw;           /* one class per N_SET node, not yet deduplicated */
    size_t nraw;              /* used */
    size_t capraw;            /* allocated */
    char *errbuf;             /* caller's message buffer, may be NULL */
    size_t errlen;            /* its size */
    int erroff;               /* offset of the first error, -1 while none */
    /* The first nodes and classes, in place: a policy's patterns mostly fit, and then parsing
     * allocates nothing. The parser is never copied (nodes may point here). */
    s_node_t inl_nodes[S_INL_NODES];
    s_class_t inl_raw[S_INL_RAW];
} s_parser_t;

/* Frees what the parser allocated beyond its in-place arrays. */
static void s_parser_free(s_parser_t *p)
{
    if (p->nodes != p->inl_nodes) {
        free(p->nodes);
    }
    if (p->raw != p->inl_raw) {
        free(p->raw);
    }
}

/* Makes room for one more element of an array that starts in place (inl, ninl elements): the
 * first call points it there, later ones double it on the heap. */
static bool s_room(void **arr, size_t n, size_t *cap, void *inl, size_t ninl, size_t size)
{
    if (n < *cap) {
        return true;
    }
    if (*arr == NULL) {
        *arr = inl;
        *cap = ninl;
        return true;
    }
    void *grown = *arr == inl ? malloc(*cap * 2 * size) : realloc(*arr, *cap * 2 * size);
    if (grown == NULL) {
        return false;
    }
    if (*arr == inl) {
        memcpy(grown, inl, n * size);
    }
    *arr = grown;
    *cap *= 2;
    return true;
}

static int s_fail(s_parser_t *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are consequences. Returns -1. */
static int s_fail(s_parser_t *p, size_t off, const char *fmt, ...)
{
    if (p->erroff >= 0) {
        return -1;
    }
    p->erroff = (int)(off > p->len ? p->len : off);
    if (p->errbuf != NULL && p->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->errbuf, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Saturating state count: anything above the limit is "too many". */
static int32_t s_sat(int64_t v)
{
    return v > ENG_REGEX_MAX_STATES ? ENG_REGEX_MAX_STATES + 1 : (int32_t)v;
}

/* Largest AST a subtree may compile to: the final MATCH state needs the last slot. */
#define S_MAX_BODY (ENG_REGEX_MAX_STATES - 1)

static int s_too_big(s_parser_t *p, size_t off, const char *what)
{
    return s_fail(p, off, "%s needs more than %d NFA states (reduce repetition counts)", what,
                  ENG_REGEX_MAX_STATES);
}

static int32_t s_node_new(s_parser_t *p, s_kind_t kind, size_t off)
{
    if (!s_room((void **)&p->nodes, p->nnodes, &p->capnodes, p->inl_nodes, S_INL_NODES,
                sizeof *p->nodes)) {
        return s_fail(p, off, "out of memory");
    }
    s_node_t *n = &p->nodes[p->nnodes];
    memset(n, 0, sizeof(*n));
    n->kind = (uint8_t)kind;
    n->child = -1;
    n->next = -1;
    n->off = (int32_t)off;
    return (int32_t)p->nnodes++;
}

/* A node matching one byte of `cls` (folded when case-insensitive). */
static int32_t s_set_node(s_parser_t *p, const s_class_t *cls, size_t off)
{
    if (!s_room((void **)&p->raw, p->nraw, &p->capraw, p->inl_raw, S_INL_RAW, sizeof *p->raw)) {
        return s_fail(p, off, "out of memory");
    }
    int32_t n = s_node_new(p, N_SET, off);
    if (n < 0) {
        return -1;
    }
    p->raw[p->nraw] = *cls;
    if (p->icase) {
        s_fold(&p->raw[p->nraw]);
    }
    p->nodes[n].child = (int32_t)p->nraw++;
    p->nodes[n].size = 1;
    return n;
}

static int32_t s_assert_node(s_parser_t *p, int kind, size_t off)
{
    int32_t n = s_node_new(p, N_ASSERT, off);
    if (n >= 0) {
        p->nodes[n].arg = (uint8_t)kind;
        p->nodes[n].size = 1;
    }
    return n;
}

static int s_hexval(unsigned c)
{
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return (int)(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return (int)(c - 'A' + 10);
    }
    return -1;
}

/* What an escape denotes. */
typedef enum { E_BYTE, E_CLASS, E_ASSERT } s_esc_t;

/* Escape letters that name a byte. */
static const struct {
    char letter; /* after the backslash */
    char byte;   /* the byte it stands for */
} s_byte_escapes[] = {
    {'t', '\t'}, {'n', '\n'}, {'r', '\r'}, {'f', '\f'}, {'v', '\v'}, {0, 0},
};

/* Escape letters that name a class: lower case the set, upper case its complement. */
static const struct {
    char letter;    /* lower-case form */
    s_named_t kind; /* the set */
} s_class_escapes[] = {
    {'d', K_DIGIT},
    {'w', K_WORD},
    {'s', K_SPACE},
    {0, K_ALPHA},
};

/* Parses the escape at p->pos (a backslash). Fills *byte, *cls or *as by kind; returns the kind,
 * or -1 on error. `in_class` rejects the assertions \b \B. */
static int s_escape(s_parser_t *p, bool in_class, unsigned *byte, s_class_t *cls, int *as)
{
    size_t off = p->pos;
    if (off + 1 >= p->len) {
        return s_fail(p, off, "trailing backslash");
    }
    unsigned e = p->pat[off + 1];
    p->pos += 2;
    for (int i = 0; s_byte_escapes[i].letter; i++) {
        if ((unsigned)s_byte_escapes[i].letter == e) {
            *byte = (unsigned char)s_byte_escapes[i].byte;
            return E_BYTE;
        }
    }
    for (int i = 0; s_class_escapes[i].letter; i++) {
        unsigned l = (unsigned char)s_class_escapes[i].letter;
        if (e == l || e == l - 32) {
            memset(cls, 0, sizeof(*cls));
            s_named(cls, s_class_escapes[i].kind);
            if (e != l) {
                s_negate(cls);
            }
            return E_CLASS;
        }
    }
    if (e == 'b' || e == 'B') {
        if (in_class) {
            return s_fail(p, off, "\\%c is not allowed in a character class", (char)e);
        }
        *as = e == 'b' ? AS_WORDB : AS_NWORDB;
        return E_ASSERT;
    }
    if (e == 'x') {
        int hi = p->pos < p->len ? s_hexval(p->pat[p->pos]) : -1;
        int lo = p->pos + 1 < p->len ? s_hexval(p->pat[p->pos + 1]) : -1;
        if (hi < 0 || lo < 0) {
            return s_fail(p, off, "\\x needs exactly two hex digits, as in \\x41");
        }
        p->pos += 2;
        *byte = (unsigned)(hi * 16 + lo);
        return E_BYTE;
    }
    if (e >= '0' && e <= '9') {
        return s_fail(p, off, "backreferences (\\%c) are not supported", (char)e);
    }
    if (e >= ' ' && e <= '~' && !s_word_byte[e]) {
        *byte = e; /* escaped punctuation or space: literal */
        return E_BYTE;
    }
    if (e > ' ' && e < 127) {
        return s_fail(p, off, "unknown escape \\%c", (char)e);
    }
    return s_fail(p, off, "unknown escape: backslash before byte 0x%02x", e);
}

/* [:name:] at p->pos inside a class. */
static int s_posix_class(s_parser_t *p, s_class_t *set)
{
    size_t off = p->pos;
    size_t name = off + 2;
    size_t end = name;
    while (end + 1 < p->len && !(p->pat[end] == ':' && p->pat[end + 1] == ']')) {
        end++;
    }
    if (end + 1 >= p->len) {
        return s_fail(p, off, "unterminated POSIX class: missing ':]'");
    }
    for (int i = 0; s_posix_classes[i].name; i++) {
        size_t n = strlen(s_posix_classes[i].name);
        if (n == end - name && memcmp(s_posix_classes[i].name, p->pat + name, n) == 0) {
            s_named(set, s_posix_classes[i].kind);
            p->pos = end + 2;
            return 0;
        }
    }
    return s_fail(p, off, "unknown POSIX class '[:%.*s:]'",
                  (int)(end - name > 20 ? 20 : end - name), (const char *)p->pat + name);
}

/* One range end inside a class: a byte, literal or escaped. Returns 0, or -1 (class escapes
 * cannot end a range). */
static int s_range_end(s_parser_t *p, size_t range_off, unsigned *out)
{
    if (p->pat[p->pos] != '\\') {
        *out = p->pat[p->pos++];
        return 0;
    }
    s_class_t cls;
    int as;
    int k = s_escape(p, true, out, &cls, &as);
    if (k < 0) {
        return -1;
    }
    if (k != E_BYTE) {
        return s_fail(p, range_off, "bad class range: a range cannot end in a class escape");
    }
    return 0;
}

/* A class [...] at p->pos. */
static int32_t s_class(s_parser_t *p)
{
    size_t off = p->pos++;
    bool neg = false;
    s_class_t set;
    memset(&set, 0, sizeof(set));
    if (p->pos < p->len && p->pat[p->pos] == '^') {
        neg = true;
        p->pos++;
    }
    for (bool first = true;; first = false) {
        if (p->pos >= p->len) {
            return s_fail(p, off, "unterminated character class: missing ']'");
        }
        size_t item = p->pos;
        unsigned c = p->pat[item];
        if (c == ']' && !first) {
            p->pos++;
            break;
        }
        if (c == '[' && item + 1 < p->len &&
            (p->pat[item + 1] == ':' || p->pat[item + 1] == '.' || p->pat[item + 1] == '=')) {
            if (p->pat[item + 1] != ':') {
                return s_fail(p, item,
                              "collating elements [. .] and [= =] are not supported "
                              "(write \\[ for a literal '[')");
            }
            if (s_posix_class(p, &set) < 0) {
                return -1;
            }
            continue;
        }
        unsigned lo;
        if (c == '\\') {
            s_class_t cls;
            int as;
            int k = s_escape(p, true, &lo, &cls, &as);
            if (k < 0) {
                return -1;
            }
            if (k == E_CLASS) {
                if (p->pos + 1 < p->len && p->pat[p->pos] == '-' && p->pat[p->pos + 1] != ']') {
                    return s_fail(p, item,
                                  "bad class range: a range cannot start with a class escape");
                }
                s_union(&set, &cls);
                continue;
            }
        } else {
            lo = c;
            p->pos++;
        }
        unsigned hi = lo;
        if (p->pos + 1 < p->len && p->pat[p->pos] == '-' && p->pat[p->pos + 1] != ']') {
            p->pos++;
            if (s_range_end(p, item, &hi) < 0) {
                return -1;
            }
            if (hi < lo) {
                return s_fail(p, item, "bad class range %.*s: its start is after its end",
                              (int)(p->pos - item), (const char *)p->pat + item);
            }
        }
        s_add_range(&set, lo, hi);
    }
    /* Fold before negating so that [^a] with ICASE excludes 'A' too (s_set_node folds again:
     * a no-op on a set closed under folding). */
    if (p->icase) {
        s_fold(&set);
    }
    if (neg) {
        s_negate(&set);
    }
    return s_set_node(p, &set, off);
}

static int32_t s_alt(s_parser_t *p);

static int32_t s_group(s_parser_t *p)
{
    size_t off = p->pos++;
    if (p->depth >= ENG_REGEX_MAX_DEPTH) {
        return s_fail(p, off, "groups nested deeper than %d", ENG_REGEX_MAX_DEPTH);
    }
    if (p->pos < p->len && p->pat[p->pos] == '?') {
        if (p->pos + 1 < p->len && p->pat[p->pos + 1] == ':') {
            p->pos += 2;
        } else {
            return s_fail(p, off, "unsupported group '(?': only (?:...) is supported");
        }
    }
    p->depth++;
    int32_t n = s_alt(p);
    p->depth--;
    if (n < 0) {
        return -1;
    }
    if (p->pos >= p->len || p->pat[p->pos] != ')') {
        return s_fail(p, off, "unbalanced parenthesis: this '(' is never closed");
    }
    p->pos++;
    return n;
}

/* One atom at p->pos. *is_assert tells the caller that it cannot be repeated. */
static int32_t s_atom(s_parser_t *p, bool *is_assert)
{
    size_t off = p->pos;
    unsigned c = p->pat[off];
    s_class_t cls;
    memset(&cls, 0, sizeof(cls));
    *is_assert = false;
    switch (c) {
    case '(':
        return s_group(p);
    case '*':
    case '+':
    case '?':
    case '{':
        return s_fail(p, off, "nothing to repeat before '%c' (write \\%c for the literal)", c, c);
    case '[':
        return s_class(p);
    case '.':
        p->pos++;
        s_negate(&cls);
        cls.w['\n' >> 6] &= ~(UINT64_C(1) << ('\n' & 63));
        return s_set_node(p, &cls, off);
    case '^':
    case '$':
        p->pos++;
        *is_assert = true;
        return s_assert_node(p, c == '^' ? AS_BOL : AS_EOL, off);
    case '\\': {
        unsigned byte = 0;
        int as = 0;
        int k = s_escape(p, false, &byte, &cls, &as);
        if (k < 0) {
            return -1;
        }
        if (k == E_ASSERT) {
            *is_assert = true;
            return s_assert_node(p, as, off);
        }
        if (k == E_BYTE) {
            s_add(&cls, byte);
        }
        return s_set_node(p, &cls, off);
    }
    default:
        p->pos++;
        s_add(&cls, c);
        return s_set_node(p, &cls, off);
    }
}

/* A decimal count at p->pos; -1 when there is none. Values above the limit saturate at
 * ENG_REGEX_MAX_REPEAT + 1 for the caller to reject. */
static int32_t s_count(s_parser_t *p)
{
    if (p->pos >= p->len || p->pat[p->pos] < '0' || p->pat[p->pos] > '9') {
        return -1;
    }
    int32_t v = 0;
    while (p->pos < p->len && p->pat[p->pos] >= '0' && p->pat[p->pos] <= '9') {
        v = v * 10 + (p->pat[p->pos] - '0');
        if (v > ENG_REGEX_MAX_REPEAT) {
            v = ENG_REGEX_MAX_REPEAT + 1;
        }
        p->pos++;
    }
    return v;
}

/* The bound {m}, {m,} or {m,n} at p->pos. */
static int s_bound(s_parser_t *p, int32_t *min, int32_t *max)
{
    size_t off = p->pos++;
    *min = s_count(p);
    if (*min < 0) {
        return s_fail(p, p->pos,
                      "bad repetition: '{' must start {m}, {m,} or {m,n} (write \\{ for the "
                      "literal)");
    }
    *max = *min;
    if (p->pos < p->len && p->pat[p->pos] == ',') {
        p->pos++;
        *max = s_count(p);
        if (*max < 0) {
            *max = S_INF;
        }
    }
    if (p->pos >= p->len || p->pat[p->pos] != '}') {
        return s_fail(p, p->pos, "bad repetition: expected '}' to close {m}, {m,} or {m,n}");
    }
    p->pos++;
    if (*min > ENG_REGEX_MAX_REPEAT || *max > ENG_REGEX_MAX_REPEAT) {
        return s_fail(p, off, "repetition count above %d", ENG_REGEX_MAX_REPEAT);
    }
    if (*max != S_INF && *max < *min) {
        return s_fail(p, off, "bad repetition: {%d,%d} has its minimum above its maximum", *min,
                      *max);
    }
    return 0;
}

static bool s_is_quant(unsigned c)
{
    return c == '*' || c == '+' || c == '?' || c == '{';
}

/* An atom and its optional quantifier. */
static int32_t s_repeat(s_parser_t *p)
{
    bool is_assert;
    int32_t a = s_atom(p, &is_assert);
    if (a < 0 || p->pos >= p->len || !s_is_quant(p->pat[p->pos])) {
        return a;
    }
    size_t qoff = p->pos;
    if (is_assert) {
        return s_fail(p, qoff, "nothing to repeat: an anchor or \\b cannot take a quantifier");
    }
    int32_t min = 0;
    int32_t max = S_INF;
    switch (p->pat[qoff]) {
    case '*':
        p->pos++;
        break;
    case '+':
        min = 1;
        p->pos++;
        break;
    case '?':
        max = 1;
        p->pos++;
        break;
    default:
        if (s_bound(p, &min, &max) < 0) {
            return -1;
        }
        break;
    }
    if (p->pos < p->len && p->pat[p->pos] == '?') {
        p->pos++; /* lazy: same yes/no answer */
    }
    if (p->pos < p->len && s_is_quant(p->pat[p->pos])) {
        return s_fail(p, p->pos, "quantifier follows another quantifier (use a group: (a*)*)");
    }
    int32_t r = s_node_new(p, N_REP, qoff);
    if (r < 0) {
        return -1;
    }
    int64_t x = p->nodes[a].size;
    int64_t size;
    if (max == S_INF) {
        size = min == 0 ? x + 2 : (int64_t)min * x + 1;
    } else {
        size = (int64_t)min * x + (int64_t)(max - min) * (x + 1);
    }
    s_node_t *n = &p->nodes[r];
    n->child = a;
    n->min = min;
    n->max = max;
    n->size = s_sat(size);
    if (n->size > S_MAX_BODY) {
        return s_too_big(p, qoff, "this repetition");
    }
    return r;
}

/* A concatenation, up to '|', ')' or the end. */
static int32_t s_cat(s_parser_t *p)
{
    size_t off = p->pos;
    int32_t first = -1;
    int32_t last = -1;
    int64_t size = 0;
    while (p->pos < p->len && p->pat[p->pos] != '|' && p->pat[p->pos] != ')') {
        int32_t n = s_repeat(p);
        if (n < 0) {
            return -1;
        }
        size += p->nodes[n].size;
        if (size > S_MAX_BODY) {
            return s_too_big(p, (size_t)p->nodes[n].off, "the pattern up to here");
        }
        if (p->nodes[n].size == 0) {
            continue; /* emits nothing, e.g. () or x{0}: keeps emission linear */
        }
        if (first < 0) {
            first = n;
        } else {
            p->nodes[last].next = n;
        }
        last = n;
    }
    if (first < 0) {
        return s_node_new(p, N_EMPTY, off);
    }
    if (first == last) {
        return first;
    }
    int32_t c = s_node_new(p, N_CAT, off);
    if (c >= 0) {
        p->nodes[c].child = first;
        p->nodes[c].size = (int32_t)size;
    }
    return c;
}

/* Alternatives separated by '|', up to ')' or the end. */
static int32_t s_alt(s_parser_t *p)
{
    size_t off = p->pos;
    int32_t first = s_cat(p);
    if (first < 0 || p->pos >= p->len || p->pat[p->pos] != '|') {
        return first;
    }
    int32_t last = first;
    int64_t size = p->nodes[first].size;
    while (p->pos < p->len && p->pat[p->pos] == '|') {
        size_t bar = p->pos++;
        int32_t n = s_cat(p);
        if (n < 0) {
            return -1;
        }
        size += p->nodes[n].size + 2; /* a SPLIT and a JMP per extra branch */
        if (size > S_MAX_BODY) {
            return s_too_big(p, bar, "the alternation up to here");
        }
        p->nodes[last].next = n;
        last = n;
    }
    int32_t a = s_node_new(p, N_ALT, off);
    if (a >= 0) {
        p->nodes[a].child = first;
        p->nodes[a].size = (int32_t)size;
    }
    return a;
}

/* ---------------------------------------------------------------------------------------------
 * Emitter: AST -> NFA program
 */

typedef struct {
    const s_parser_t *p; /* the AST and raw classes */
    s_inst_t *prog;      /* cap slots: the root's size and the final MATCH */
    uint16_t n;          /* used */
    uint16_t cap;        /* slots */
    bool overflow;       /* more states than slots: a size-accounting bug, reported as error */
    int32_t *rawmap;     /* raw class index -> deduplicated index, -1 when not yet emitted */
    s_class_t *classes;  /* deduplicated classes: at most one per raw class */
    uint16_t nclasses;   /* used */
} s_emitter_t;

/* The emitter's arrays in one block sized for the AST rooted at `root` (which the parser has
 * bounded by ENG_REGEX_MAX_STATES): a pattern's compile is a handful of allocations, not one of
 * 40 KB for the largest pattern whatever its size. Freed with e->classes; -1 when out of memory. */
static int s_emitter_init(s_emitter_t *e, const s_parser_t *p, int32_t root)
{
    size_t nraw = p->nraw ? p->nraw : 1;
    size_t cap = (size_t)p->nodes[root].size + 1;
    e->p = p;
    e->cap = (uint16_t)cap;
    e->classes = malloc(nraw * sizeof *e->classes + cap * sizeof *e->prog +
                        nraw * sizeof *e->rawmap); /* in decreasing alignment */
    if (e->classes == NULL) {
        return -1;
    }
    e->prog = (s_inst_t *)(void *)(e->classes + nraw);
    e->rawmap = (int32_t *)(void *)(e->prog + cap);
    memset(e->rawmap, 0xff, nraw * sizeof *e->rawmap); /* all -1 */
    return 0;
}

static uint16_t s_put(s_emitter_t *e, int op, int arg, uint16_t cls, uint16_t x, uint16_t y)
{
    if (e->n >= e->cap) {
        e->overflow = true;
        return 0;
    }
    s_inst_t *in = &e->prog[e->n];
    in->op = (uint8_t)op;
    in->arg = (uint8_t)arg;
    in->cls = cls;
    in->x = x;
    in->y = y;
    return e->n++;
}

/* Word by word, not memcmp: this runs for every pair of a pattern's classes. */
static bool s_class_eq(const s_class_t *a, const s_class_t *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
            (a->w[3] ^ b->w[3])) == 0;
}

static uint16_t s_class_index(s_emitter_t *e, int32_t raw)
{
    if (e->rawmap[raw] >= 0) {
        return (uint16_t)e->rawmap[raw];
    }
    const s_class_t *c = &e->p->raw[raw];
    uint16_t i = 0;
    while (i < e->nclasses && !s_class_eq(&e->classes[i], c)) {
        i++;
    }
    if (i == e->nclasses) {
        e->classes[e->nclasses++] = *c; /* at most one class per SET state: cannot overflow */
    }
    e->rawmap[raw] = i;
    return i;
}

/* Points every link of a chain (threaded through `y` for SPLIT, `x` for JMP) at `to`. */
static void s_patch(s_emitter_t *e, uint16_t chain, bool via_y, uint16_t to)
{
    while (chain != S_NONE && !e->overflow) {
        s_inst_t *in = &e->prog[chain];
        uint16_t next = via_y ? in->y : in->x;
        if (via_y) {
            in->y = to;
        } else {
            in->x = to;
        }
        chain = next;
    }
}

static void s_emit(s_emitter_t *e, int32_t ni)
{
    const s_node_t *n = &e->p->nodes[ni];
    if (n->size == 0) {
        return; /* emits nothing; skipping keeps nested {m} over empty groups linear */
    }
    switch (n->kind) {
    case N_EMPTY:
        break;
    case N_SET:
        s_put(e, OP_SET, 0, s_class_index(e, n->child), (uint16_t)(e->n + 1), S_NONE);
        break;
    case N_ASSERT:
        s_put(e, OP_ASSERT, n->arg, 0, (uint16_t)(e->n + 1), S_NONE);
        break;
    case N_CAT:
        for (int32_t c = n->child; c >= 0; c = e->p->nodes[c].next) {
            s_emit(e, c);
        }
        break;
    case N_ALT: {
        /* split L1, next; L1: a; jmp end; next: split L2, next2; ... last: z; end: */
        uint16_t jmps = S_NONE;
        int32_t c = n->child;
        for (; e->p->nodes[c].next >= 0; c = e->p->nodes[c].next) {
            uint16_t sp = s_put(e, OP_SPLIT, 0, 0, (uint16_t)(e->n + 1), S_NONE);
            s_emit(e, c);
            jmps = s_put(e, OP_JMP, 0, 0, jmps, S_NONE);
            if (!e->overflow) {
                e->prog[sp].y = e->n;
            }
        }
        s_emit(e, c);
        s_patch(e, jmps, false, e->n);
        break;
    }
    case N_REP:
        if (n->max == S_INF && n->min == 0) {
            /* L: split body, end; body: x; jmp L; end: */
            uint16_t l = s_put(e, OP_SPLIT, 0, 0, (uint16_t)(e->n + 1), S_NONE);
            s_emit(e, n->child);
            s_put(e, OP_JMP, 0, 0, l, S_NONE);
            if (!e->overflow) {
                e->prog[l].y = e->n;
            }
        } else if (n->max == S_INF) {
            /* x{m-1}; L: x; split L, end */
            for (int32_t i = 0; i < n->min - 1; i++) {
                s_emit(e, n->child);
            }
            uint16_t l = e->n;
            s_emit(e, n->child);
            s_put(e, OP_SPLIT, 0, 0, l, (uint16_t)(e->n + 1));
        } else {
            /* x{m}; then n-m times: split next, end; x - every optional copy may exit to end */
            for (int32_t i = 0; i < n->min; i++) {
                s_emit(e, n->child);
            }
            uint16_t exits = S_NONE;
            for (int32_t i = n->min; i < n->max; i++) {
                exits = s_put(e, OP_SPLIT, 0, 0, (uint16_t)(e->n + 1), exits);
                s_emit(e, n->child);
            }
            s_patch(e, exits, true, e->n);
        }
        break;
    }
}

/* Bytes a match may start with at a position > 0 (where ^ fails; other assertions are assumed to
 * pass, which over-approximates safely), and whether it may match without consuming. */
static void s_first_set(eng_regex_t *re)
{
    uint16_t stack[ENG_REGEX_MAX_STATES];
    uint64_t seen[S_WORDS] = {0};
    size_t sp = 0;
    stack[sp++] = 0;
    seen[0] = 1;
    while (sp > 0) {
        const s_inst_t *in = &re->prog[stack[--sp]];
        uint16_t succ[2] = {S_NONE, S_NONE};
        switch (in->op) {
        case OP_MATCH:
            re->nullable = true;
            break;
        case OP_SET:
            s_union(&re->first, &re->classes[in->cls]);
            break;
        case OP_SPLIT:
            succ[1] = in->y;
            /* fallthrough */
        case OP_JMP:
            succ[0] = in->x;
            break;
        case OP_ASSERT:
            if (in->arg != AS_BOL) {
                succ[0] = in->x;
            }
            break;
        }
        for (int i = 0; i < 2; i++) {
            uint16_t s = succ[i];
            if (s != S_NONE && !((seen[s >> 6] >> (s & 63)) & 1)) {
                seen[s >> 6] |= UINT64_C(1) << (s & 63);
                stack[sp++] = s;
            }
        }
    }
    int count = 0;
    re->first_single = -1;
    for (int i = 0; i < 4; i++) {
        uint64_t w = re->first.w[i];
        count += __builtin_popcountll(w);
        if (w) {
            re->first_single = i * 64 + __builtin_ctzll(w);
        }
    }
    re->first_count = count;
    if (count != 1) {
        re->first_single = -1;
    }
}

/* SET states (as bits, S_MATCH_BIT for MATCH) reachable from `from` without consuming, under the
 * assertion mask `ctx`. Compile time only. */
S_NO_COVERAGE static uint64_t s_closure_mask(const eng_regex_t *re, uint16_t from, unsigned ctx)
{
    uint16_t stack[ENG_REGEX_MAX_STATES];
    uint64_t seen[S_WORDS] = {0};
    uint64_t mask = 0;
    size_t sp = 0;
    stack[sp++] = from;
    seen[from >> 6] |= UINT64_C(1) << (from & 63);
    while (sp > 0) {
        const s_inst_t *in = &re->prog[stack[--sp]];
        uint16_t succ[2] = {S_NONE, S_NONE};
        switch (in->op) {
        case OP_MATCH:
            mask |= S_MATCH_BIT;
            break;
        case OP_SET:
            mask |= UINT64_C(1) << in->y;
            break;
        case OP_SPLIT:
            succ[1] = in->y;
            /* fallthrough */
        case OP_JMP:
            succ[0] = in->x;
            break;
        case OP_ASSERT:
            if ((ctx >> in->arg) & 1) {
                succ[0] = in->x;
            }
            break;
        }
        for (int i = 0; i < 2; i++) {
            uint16_t s = succ[i];
            if (s != S_NONE && !((seen[s >> 6] >> (s & 63)) & 1)) {
                seen[s >> 6] |= UINT64_C(1) << (s & 63);
                stack[sp++] = s;
            }
        }
    }
    return mask;
}

/* Fills the bit-parallel tables (re->fast already decided, SET states numbered in prog[].y). */
S_NO_COVERAGE static void s_build_fast(eng_regex_t *re)
{
    size_t row = re->nset + 1u;
    for (uint16_t pc = 0; pc < re->nstates; pc++) {
        const s_inst_t *in = &re->prog[pc];
        if (in->op != OP_SET) {
            continue;
        }
        /* Walks the class's set bits only: a class is often a few bytes. */
        const s_class_t *c = &re->classes[in->cls];
        for (unsigned w = 0; w < 4; w++) {
            for (uint64_t bits = c->w[w]; bits != 0; bits &= bits - 1) {
                re->bymask[w * 64 + (unsigned)__builtin_ctzll(bits)] |= UINT64_C(1) << in->y;
            }
        }
        for (unsigned ci = 0; ci < S_NCTX; ci++) {
            re->clos[ci * row + in->y] = s_closure_mask(re, in->x, s_ctx_mask(ci));
        }
    }
    for (unsigned ci = 0; ci < S_NCTX; ci++) {
        re->clos[ci * row + re->nset] = s_closure_mask(re, 0, s_ctx_mask(ci));
    }
}

/* DFA construction. A state is what the bit-parallel matcher knows between two bytes: the
 * threads that have just consumed a byte (`alive`), whether that byte was a word byte (for \b),
 * and whether nothing has been read yet (^). On the next byte b, or at the end of the text, the
 * context is then known, so the step is a function of (state, b):
 *   cur = closure of alive and of a fresh start, under the context before b;
 *   MATCH in cur: accept; otherwise the next state is (cur & bymask[b], word(b), not at start).
 * Adding the fresh start at every position is what s_match_fast does too (it only skips it when
 * b cannot begin a match, where every thread it adds dies on b anyway). Bytes with the same
 * bymask entry and word-ness are one column. Compile time only; gives up (leaving re->dfa NULL)
 * past S_DFA_MAX_STATES states or S_DFA_MAX_CELLS cells, and on allocation failure. */
typedef struct {
    uint64_t alive; /* SET states that consumed the last byte */
    uint8_t flags;  /* 1: the last byte was a word byte; 2: at the start of the text */
} s_dstate_t;

typedef struct {
    s_dstate_t *states; /* by number */
    uint16_t *slots;    /* hash of states: number + 1, 0 when free */
    size_t nslots;      /* power of two > 2 * S_DFA_MAX_STATES */
    uint16_t n;         /* states numbered */
} s_dbuild_t;

S_NO_COVERAGE static size_t s_dhash(s_dstate_t st, size_t nslots)
{
    uint64_t h = (st.alive ^ ((uint64_t)st.flags << 61)) * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 32) & (nslots - 1);
}

/* The number of state `st`, adding it when new; -1 past the state limit. */
S_NO_COVERAGE static int s_dstate(s_dbuild_t *b, s_dstate_t st)
{
    size_t i = s_dhash(st, b->nslots);
    while (b->slots[i] != 0) {
        const s_dstate_t *o = &b->states[b->slots[i] - 1];
        if (o->alive == st.alive && o->flags == st.flags) {
            return b->slots[i] - 1;
        }
        i = (i + 1) & (b->nslots - 1);
    }
    if (b->n >= S_DFA_MAX_STATES) {
        return -1;
    }
    b->states[b->n] = st;
    b->slots[i] = (uint16_t)(b->n + 1);
    return b->n++;
}

/* One step from `st` before a byte with bymask entry `mask` and word-ness `word`, or before the
 * end of the text (eot): the next state's `alive` in *next, or true when a match ends here. */
S_NO_COVERAGE static bool s_dstep(const eng_regex_t *re, s_dstate_t st, uint64_t mask, bool word,
                                  bool eot, uint64_t *next)
{
    size_t row = re->nset + 1u;
    bool before = st.flags & 1;
    unsigned ci = (st.flags & 2 ? 1u : 0u) | (eot ? 2u : 0u) | (before != word ? 4u : 0u);
    const uint64_t *c = re->clos + (re->has_assert ? ci : 0) * row;
    uint64_t cur = c[re->nset];
    for (uint64_t a = st.alive; a != 0; a &= a - 1) {
        cur |= c[__builtin_ctzll(a)];
    }
    *next = cur & mask;
    return (cur & S_MATCH_BIT) != 0;
}

S_NO_COVERAGE static void s_build_dfa(eng_regex_t *re)
{
    /* Columns: bytes with equal (bymask, word-ness); rep[k] is one byte of column k. */
    uint8_t col[256];
    uint8_t rep[256];
    unsigned ncol = 0;
    for (unsigned b = 0; b < 256; b++) {
        /* Neighbouring bytes mostly share a column: try the previous one first. */
        unsigned k = b > 0 ? col[b - 1] : 0;
        if (k < ncol && re->bymask[rep[k]] == re->bymask[b] &&
            s_word_byte[rep[k]] == s_word_byte[b]) {
            col[b] = (uint8_t)k;
            continue;
        }
        k = 0;
        while (k < ncol &&
               !(re->bymask[rep[k]] == re->bymask[b] && s_word_byte[rep[k]] == s_word_byte[b])) {
            k++;
        }
        if (k == ncol) {
            rep[ncol++] = (uint8_t)b;
        }
        col[b] = (uint8_t)k;
    }
    s_dbuild_t bld = {.nslots = 4096};
    bld.states = malloc(S_DFA_MAX_STATES * sizeof *bld.states);
    bld.slots = calloc(bld.nslots, sizeof *bld.slots);
    size_t max_states =
        S_DFA_MAX_CELLS / ncol < S_DFA_MAX_STATES ? S_DFA_MAX_CELLS / ncol : S_DFA_MAX_STATES;
    uint16_t *table = malloc(max_states * ncol * sizeof *table);
    uint8_t *eot = malloc(max_states);
    bool ok = bld.states && bld.slots && table && eot;
    if (ok) {
        s_dstate(&bld, (s_dstate_t){0, 2});
    }
    /* Breadth first: states are numbered as found, so every row below n is filled in turn. */
    for (uint16_t s = 0; ok && s < bld.n; s++) {
        s_dstate_t st = bld.states[s];
        uint64_t next;
        eot[s] = s_dstep(re, st, 0, false, true, &next);
        for (unsigned k = 0; ok && k < ncol; k++) {
            bool word = s_word_byte[rep[k]];
            if (s_dstep(re, st, re->bymask[rep[k]], word, false, &next)) {
                table[s * ncol + k] = S_DFA_ACCEPT;
                continue;
            }
            int id = s_dstate(&bld, (s_dstate_t){next, word ? 1 : 0});
            ok = id >= 0 && (size_t)id < max_states;
            table[s * ncol + k] = ok ? (uint16_t)((size_t)id * ncol) : 0;
        }
    }
    if (ok) {
        /* One block: table, then the per-state end flags, then the byte map. */
        size_t tbytes = (size_t)bld.n * ncol * sizeof *table;
        uint8_t *blk = malloc(tbytes + bld.n + 256);
        if (blk != NULL) {
            memcpy(blk, table, tbytes);
            memcpy(blk + tbytes, eot, bld.n);
            memcpy(blk + tbytes + bld.n, col, 256);
            re->dfa = (uint16_t *)(void *)blk;
            re->dfa_eot = blk + tbytes;
            re->dfa_class = blk + tbytes + bld.n;
            re->dfa_nclass = (uint16_t)ncol;
            re->dfa_states = bld.n;
            re->dfa_dead[0] = re->dfa_dead[1] = -1;
            for (uint16_t i = 0; i < bld.n; i++) {
                if (bld.states[i].alive == 0 && bld.states[i].flags < 2) {
                    re->dfa_dead[bld.states[i].flags] = i;
                }
            }
            /* Skipping pays when few bytes can begin a match (memchr for one); with many
             * (a list of words, case-insensitive) the plain table walk is faster. */
            re->dfa_skip = re->dfa_dead[0] >= 0 && re->dfa_dead[1] >= 0 && !re->nullable &&
                           re->first_count <= 4;
        }
    }
    free(bld.states);
    free(bld.slots);
    free(table);
    free(eot);
}

/* ---------------------------------------------------------------------------------------------
 * Public API
 */

/* Parses [pat, pat+len) into p (whose nodes and raw classes the caller frees): the AST's root,
 * or -1 with the pattern's first error in p (message and offset). */
static int32_t s_parse_pattern(s_parser_t *p, const char *pat, size_t len, int flags, char *errbuf,
                               size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->pat = (const unsigned char *)pat;
    p->len = len;
    p->icase = (flags & ENG_REGEX_ICASE) != 0;
    p->errbuf = errbuf;
    p->errlen = errlen;
    p->erroff = -1;
    if (errbuf != NULL && errlen > 0) {
        errbuf[0] = '\0';
    }
    if (pat == NULL && len > 0) {
        return s_fail(p, 0, "no pattern");
    }
    if ((flags & ~(ENG_REGEX_ICASE | ENG_REGEX_NO_DFA)) != 0) {
        return s_fail(p, 0, "unknown regex flags 0x%x", (unsigned)flags);
    }
    if (len == 0) {
        return s_fail(p, 0, "empty pattern: it would match every text");
    }
    if (len > ENG_REGEX_MAX_LEN) {
        return s_fail(p, ENG_REGEX_MAX_LEN, "pattern longer than %d bytes", ENG_REGEX_MAX_LEN);
    }
    int32_t root = s_alt(p);
    if (root >= 0 && p->pos < p->len) { /* s_alt stops early only at a ')' it did not open */
        return s_fail(p, p->pos, "unbalanced parenthesis: ')' without a matching '('");
    }
    return root;
}

int eng_regex_check(const char *pat, size_t len, int flags, char *errbuf, size_t errlen,
                    int *erroff)
{
    s_parser_t p;
    int32_t root = s_parse_pattern(&p, pat, len, flags, errbuf, errlen);
    s_parser_free(&p);
    if (erroff != NULL) {
        *erroff = root >= 0 ? -1 : p.erroff;
    }
    return root >= 0 ? 0 : -1;
}

eng_regex_t *eng_regex_compile(const char *pat, size_t len, int flags, char *errbuf, size_t errlen,
                               int *erroff)
{
    s_parser_t p;
    eng_regex_t *re = NULL;
    s_emitter_t e;
    memset(&e, 0, sizeof(e));
    int32_t root = s_parse_pattern(&p, pat, len, flags, errbuf, errlen);
    if (root < 0) {
        goto out;
    }
    if (s_emitter_init(&e, &p, root) != 0) {
        s_fail(&p, 0, "out of memory");
        goto out;
    }
    s_emit(&e, root);
    s_put(&e, OP_MATCH, 0, 0, S_NONE, S_NONE);
    if (e.overflow) {
        s_too_big(&p, 0, "the pattern");
        goto out;
    }

    /* Number the SET states (in their unused `y`) for the bit-parallel matcher. */
    uint16_t nset = 0;
    bool has_assert = false;
    for (uint16_t pc = 0; pc < e.n; pc++) {
        if (e.prog[pc].op == OP_SET) {
            e.prog[pc].y = nset++;
        }
        has_assert |= e.prog[pc].op == OP_ASSERT;
    }
    bool fast = nset <= S_FAST_MAX;
    size_t nfast = fast ? 256 + S_NCTX * (nset + 1u) : 0; /* uint64 words of fast tables */

    /* One block: header, fast tables, classes, program (in decreasing alignment). */
    size_t bytes = sizeof(*re) + nfast * sizeof(uint64_t) + e.nclasses * sizeof(s_class_t) +
                   e.n * sizeof(s_inst_t);
    re = calloc(1, bytes);
    if (re == NULL) {
        s_fail(&p, 0, "out of memory");
        goto out;
    }
    re->nstates = e.n;
    re->nwords = (uint16_t)((e.n + 63) / 64);
    re->nclasses = e.nclasses;
    re->fast = fast;
    re->has_assert = has_assert;
    re->nset = nset;
    re->bymask = (uint64_t *)(re + 1); /* the struct's size keeps uint64 alignment */
    re->clos = re->bymask + 256;
    re->classes = (s_class_t *)(re->bymask + nfast);
    re->prog = (s_inst_t *)(re->classes + e.nclasses);
    memcpy(re->classes, e.classes, e.nclasses * sizeof(s_class_t));
    memcpy(re->prog, e.prog, e.n * sizeof(s_inst_t));
    s_first_set(re);
    if (fast) {
        s_build_fast(re);
        if (!(flags & ENG_REGEX_NO_DFA)) {
            s_build_dfa(re);
        }
    }

out:
    free(e.classes); /* and the rest of the emitter's block */
    s_parser_free(&p);
    if (erroff != NULL) {
        *erroff = re != NULL ? -1 : p.erroff;
    }
    return re;
}

/* ---------------------------------------------------------------------------------------------
 * PCRE rendering, for multi-pattern scanners (eng_scan.c)
 */

typedef struct {
    char *out;     /* the caller's buffer */
    size_t cap;    /* its size */
    size_t n;      /* bytes written */
    bool overflow; /* out was too small */
} s_pcre_t;

static void s_pcre_put(s_pcre_t *w, const char *s)
{
    size_t k = strlen(s);
    if (w->n + k >= w->cap) {
        w->overflow = true;
        return;
    }
    memcpy(w->out + w->n, s, k);
    w->n += k;
}

static void s_pcre_byte(s_pcre_t *w, unsigned b)
{
    char buf[16];
    snprintf(buf, sizeof buf, "\\x%02x", b & 0xffu);
    s_pcre_put(w, buf);
}

/* A class as explicit byte ranges, so that no dialect difference (\s, \w, case folding of
 * classes, what '.' excludes) can change its meaning. */
static void s_pcre_class(s_pcre_t *w, const s_class_t *c)
{
    int count = 0;
    unsigned only = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (s_has(c, b)) {
            count++;
            only = b;
        }
    }
    if (count == 1) {
        s_pcre_byte(w, only);
        return;
    }
    s_pcre_put(w, count == 0 ? "[^\\x00-\\xff" : "[");
    for (unsigned b = 0; b < 256; b++) {
        if (!s_has(c, b)) {
            continue;
        }
        unsigned hi = b;
        while (hi < 255 && s_has(c, hi + 1)) {
            hi++;
        }
        s_pcre_byte(w, b);
        if (hi > b) {
            s_pcre_put(w, "-");
            s_pcre_byte(w, hi);
        }
        b = hi;
    }
    s_pcre_put(w, "]");
}

/* Recursion depth follows the AST's, bounded by ENG_REGEX_MAX_DEPTH groups. */
static void s_pcre_node(s_pcre_t *w, const s_parser_t *p, int32_t ni)
{
    const s_node_t *n = &p->nodes[ni];
    switch (n->kind) {
    case N_EMPTY:
        break;
    case N_SET:
        s_pcre_class(w, &p->raw[n->child]);
        break;
    case N_ASSERT: {
        /* $ is the end of the text only (PCRE's $ also matches before a final newline). */
        static const char *const as[] = {
            [AS_BOL] = "^", [AS_EOL] = "\\z", [AS_WORDB] = "\\b", [AS_NWORDB] = "\\B"};
        s_pcre_put(w, as[n->arg]);
        break;
    }
    case N_CAT:
        for (int32_t k = n->child; k >= 0; k = p->nodes[k].next) {
            s_pcre_node(w, p, k);
        }
        break;
    case N_ALT:
        s_pcre_put(w, "(?:");
        for (int32_t k = n->child; k >= 0; k = p->nodes[k].next) {
            s_pcre_node(w, p, k);
            s_pcre_put(w, p->nodes[k].next >= 0 ? "|" : ")");
        }
        break;
    case N_REP: {
        s_pcre_put(w, "(?:");
        s_pcre_node(w, p, n->child);
        char buf[32];
        if (n->max == S_INF) {
            snprintf(buf, sizeof buf, "){%d,}", (int)n->min);
        } else {
            snprintf(buf, sizeof buf, "){%d,%d}", (int)n->min, (int)n->max);
        }
        s_pcre_put(w, buf);
        break;
    }
    default:
        break;
    }
}

int eng_regex_to_pcre(const char *pat, size_t len, int flags, char *out, size_t cap)
{
    if (pat == NULL || len == 0 || len > ENG_REGEX_MAX_LEN || out == NULL || cap == 0 ||
        (flags & ~(ENG_REGEX_ICASE | ENG_REGEX_NO_DFA)) != 0) {
        return -1;
    }
    s_parser_t p;
    memset(&p, 0, sizeof(p));
    p.pat = (const unsigned char *)pat;
    p.len = len;
    p.icase = (flags & ENG_REGEX_ICASE) != 0;
    p.erroff = -1;
    int32_t root = s_alt(&p);
    s_pcre_t w = {out, cap, 0, false};
    if (root >= 0 && p.pos == p.len) {
        s_pcre_node(&w, &p, root);
    }
    s_parser_free(&p);
    if (root < 0 || p.pos != p.len || w.overflow) {
        out[0] = '\0';
        return -1;
    }
    out[w.n] = '\0';
    return (int)w.n;
}

/* ---------------------------------------------------------------------------------------------
 * Literal prefixes, for the literal prefilter of eng_scan.c
 */

#define S_PFX_DEPTH 48 /* deeper ASTs get no prefixes (bounds the recursion's stack) */
#define S_PFX_CLASS 8  /* a class of more bytes ends the literals */
#define S_PFX_GOOD 4   /* literals this long are not multiplied by a class */

/* A set of literals every match of a node begins with. */
typedef struct {
    bool ok;    /* such a set exists (within the bounds) */
    bool exact; /* every match of the node is exactly one of the literals */
    int n;      /* literals */
    uint8_t len[ENG_REGEX_MAX_PREFIXES];
    unsigned char s[ENG_REGEX_MAX_PREFIXES][ENG_REGEX_PREFIX_LEN];
} s_pset_t;

static void s_pset_one(s_pset_t *r, bool exact)
{
    memset(r, 0, sizeof(*r));
    r->ok = true;
    r->exact = exact;
    r->n = 1; /* the empty literal */
}

/* Adds literal [b, b+n) to r unless already there; false when r is full. */
static bool s_pset_add(s_pset_t *r, const unsigned char *b, size_t n)
{
    for (int i = 0; i < r->n; i++) {
        if (r->len[i] == n && memcmp(r->s[i], b, n) == 0) {
            return true;
        }
    }
    if (r->n == ENG_REGEX_MAX_PREFIXES) {
        return false;
    }
    memcpy(r->s[r->n], b, n);
    r->len[r->n++] = (uint8_t)n;
    return true;
}

/* The one-byte literals a class stands for, at most S_PFX_CLASS of them: its bytes, under ICASE
 * (where classes are closed under case) letters as their lower case only. */
static void s_pfx_class(const s_parser_t *p, const s_class_t *c, s_pset_t *r)
{
    memset(r, 0, sizeof(*r));
    uint64_t w[4] = {c->w[0], c->w[1], c->w[2], c->w[3]};
    if (p->icase) {
        w[1] &= ~(((UINT64_C(1) << 26) - 1) << 1); /* 'A'..'Z' */
    }
    /* Counted first, then only the set bits visited: a class is often wide (\w, [^x]), and a
     * byte-by-byte walk cost 256 steps per class. */
    int count = 0;
    for (int i = 0; i < 4; i++) {
        count += __builtin_popcountll(w[i]);
    }
    if (count > S_PFX_CLASS) {
        return; /* not ok */
    }
    r->ok = r->exact = true;
    for (int i = 0; i < 4; i++) {
        for (uint64_t bits = w[i]; bits; bits &= bits - 1) {
            unsigned char x = (unsigned char)(i * 64 + __builtin_ctzll(bits));
            r->s[r->n][0] = x; /* distinct bytes: no duplicate to look for */
            r->len[r->n++] = 1;
        }
    }
}

static void s_pfx(const s_parser_t *p, int32_t ni, int depth, s_pset_t *r);

/* r := every literal of a followed by every literal of b (a is not r). */
static void s_pfx_cross(s_pset_t *r, const s_pset_t *a, const s_pset_t *b)
{
    unsigned char buf[2 * ENG_REGEX_PREFIX_LEN];
    memset(r, 0, sizeof(*r));
    r->ok = true;
    r->exact = a->exact && b->exact;
    for (int i = 0; i < a->n; i++) {
        for (int j = 0; j < b->n; j++) {
            size_t n = (size_t)a->len[i] + b->len[j];
            memcpy(buf, a->s[i], a->len[i]);
            memcpy(buf + a->len[i], b->s[j], b->len[j]);
            if (n > ENG_REGEX_PREFIX_LEN) {
                n = ENG_REGEX_PREFIX_LEN; /* a prefix of the literal is still a prefix */
                r->exact = false;
            }
            if (!s_pset_add(r, buf, n)) {
                r->ok = false;
                return;
            }
        }
    }
}

/* The shortest literal of r. */
static size_t s_pfx_shortest(const s_pset_t *r)
{
    size_t m = ENG_REGEX_PREFIX_LEN;
    for (int i = 0; i < r->n; i++) {
        m = r->len[i] < m ? r->len[i] : m;
    }
    return m;
}

/* Literals grow through the concatenation while they are exact; a class multiplies them, so it
 * is taken only while some literal is still short (a short literal occurs often in any text,
 * and each occurrence costs the prefilter a report and an anchored check). */
static void s_pfx_cat(const s_parser_t *p, int32_t first, int depth, s_pset_t *r)
{
    s_pset_one(r, true);
    s_pset_t c, x;
    for (int32_t k = first; k >= 0 && r->exact; k = p->nodes[k].next) {
        s_pfx(p, k, depth + 1, &c);
        if (!c.ok || (c.n > 1 && s_pfx_shortest(r) >= S_PFX_GOOD)) {
            r->exact = false; /* what r holds so far still begins every match */
            break;
        }
        s_pfx_cross(&x, r, &c);
        if (!x.ok) {
            r->exact = false;
            break;
        }
        *r = x;
    }
}

static void s_pfx(const s_parser_t *p, int32_t ni, int depth, s_pset_t *r)
{
    const s_node_t *n = &p->nodes[ni];
    if (depth > S_PFX_DEPTH) {
        memset(r, 0, sizeof(*r));
        return;
    }
    switch (n->kind) {
    case N_EMPTY:
    case N_ASSERT: /* zero-width: the anchored match checks it where the literal starts */
        s_pset_one(r, true);
        break;
    case N_SET:
        s_pfx_class(p, &p->raw[n->child], r);
        break;
    case N_CAT:
        s_pfx_cat(p, n->child, depth, r);
        break;
    case N_ALT: {
        memset(r, 0, sizeof(*r));
        r->ok = r->exact = true;
        s_pset_t c;
        for (int32_t k = n->child; k >= 0 && r->ok; k = p->nodes[k].next) {
            s_pfx(p, k, depth + 1, &c);
            r->ok = c.ok;
            r->exact = r->exact && c.exact;
            for (int i = 0; i < c.n && r->ok; i++) {
                r->ok = s_pset_add(r, c.s[i], c.len[i]);
            }
        }
        break;
    }
    case N_REP:
        if (n->min == 0) {
            s_pset_one(r, false); /* may match nothing: no literal begins every match */
        } else {
            s_pfx(p, n->child, depth + 1, r);
            r->exact = r->exact && n->min == 1 && n->max == 1;
        }
        break;
    default:
        memset(r, 0, sizeof(*r));
        break;
    }
}

int eng_regex_prefixes(const char *pat, size_t len, int flags, eng_regex_prefixes_t *out)
{
    memset(out, 0, sizeof(*out));
    if (pat == NULL || len == 0 || len > ENG_REGEX_MAX_LEN ||
        (flags & ~(ENG_REGEX_ICASE | ENG_REGEX_NO_DFA)) != 0) {
        return -1;
    }
    s_parser_t p;
    memset(&p, 0, sizeof(p));
    p.pat = (const unsigned char *)pat;
    p.len = len;
    p.icase = (flags & ENG_REGEX_ICASE) != 0;
    p.erroff = -1;
    int32_t root = s_alt(&p);
    int rc = -1;
    if (root >= 0 && p.pos == p.len) {
        s_pset_t *r = malloc(sizeof(*r));
        rc = 0;
        if (r != NULL) {
            s_pfx(&p, root, 0, r);
            bool usable = r->ok && r->n > 0;
            for (int i = 0; i < r->n && usable; i++) {
                usable = r->len[i] >= ENG_REGEX_PREFIX_MIN;
            }
            if (usable) {
                out->n = r->n;
                out->caseless = p.icase;
                memcpy(out->len, r->len, sizeof(out->len));
                memcpy(out->lit, r->s, sizeof(out->lit));
                rc = 1;
            }
            free(r);
        }
    }
    s_parser_free(&p);
    return rc;
}

bool eng_regex_can_match_at(const eng_regex_t *re)
{
    return re != NULL && re->fast;
}

int eng_regex_match_at(const eng_regex_t *re, const char *s, size_t len, size_t pos, size_t *budget)
{
    if (re == NULL || !re->fast || pos > len || (s == NULL && len > 0)) {
        return -1;
    }
    const unsigned char *t = (const unsigned char *)(s != NULL ? s : "");
    const size_t row = re->nset + 1u;
    const uint64_t *clos = re->clos;
    const bool ctx_matters = re->has_assert;
    uint64_t cur = clos[s_ctx_index(t, len, pos) * row + re->nset];
    for (size_t i = pos; !(cur & S_MATCH_BIT); i++) {
        if (cur == 0 || i >= len) {
            return 0;
        }
        if (*budget == 0) {
            return -1;
        }
        (*budget)--;
        uint64_t alive = cur & re->bymask[t[i]];
        const uint64_t *c = clos + (ctx_matters ? s_ctx_index(t, len, i + 1) : 0) * row;
        uint64_t nxt = 0;
        while (alive != 0) {
            nxt |= c[__builtin_ctzll(alive)];
            alive &= alive - 1;
        }
        cur = nxt;
    }
    return 1;
}

void eng_regex_destroy(eng_regex_t **re_p)
{
    if (re_p != NULL && *re_p != NULL) {
        free((*re_p)->dfa);
        free(*re_p);
        *re_p = NULL;
    }
}

int eng_regex_states(const eng_regex_t *re)
{
    return re != NULL ? re->nstates : 0;
}

/* Matcher scratch, all on the caller's stack. */
typedef struct {
    uint64_t seen[S_WORDS];                 /* states already added at this text position */
    uint16_t stack[ENG_REGEX_MAX_STATES];   /* epsilon-closure work list */
    uint16_t list[2][ENG_REGEX_MAX_STATES]; /* SET states alive: current and next position */
} s_scratch_t;

/* Which assertions hold at text position i (between t[i-1] and t[i]), as a bit mask of AS_*. */
static unsigned s_context(const unsigned char *t, size_t len, size_t i)
{
    return s_ctx_mask(s_ctx_index(t, len, i));
}

/* Adds state `from` and everything reachable from it without consuming a byte to `list`
 * (SET states only). Returns true as soon as MATCH is reachable. */
static bool s_closure(const eng_regex_t *re, uint16_t from, unsigned ctx, s_scratch_t *sc,
                      uint16_t *list, size_t *n)
{
    if ((sc->seen[from >> 6] >> (from & 63)) & 1) {
        return false;
    }
    sc->seen[from >> 6] |= UINT64_C(1) << (from & 63);
    size_t sp = 0;
    sc->stack[sp++] = from;
    while (sp > 0) {
        uint16_t pc = sc->stack[--sp];
        const s_inst_t *in = &re->prog[pc];
        uint16_t succ[2] = {S_NONE, S_NONE};
        switch (in->op) {
        case OP_MATCH:
            return true;
        case OP_SET:
            list[(*n)++] = pc;
            break;
        case OP_SPLIT:
            succ[1] = in->y; /* pushed first, so x is explored first */
            /* fallthrough */
        case OP_JMP:
            succ[0] = in->x;
            break;
        case OP_ASSERT:
            if ((ctx >> in->arg) & 1) {
                succ[0] = in->x;
            }
            break;
        }
        for (int i = 1; i >= 0; i--) {
            uint16_t s = succ[i];
            if (s != S_NONE && !((sc->seen[s >> 6] >> (s & 63)) & 1)) {
                sc->seen[s >> 6] |= UINT64_C(1) << (s & 63);
                sc->stack[sp++] = s;
            }
        }
    }
    return false;
}

/* First position j >= from where a fresh match could start (t[j] in the first-byte set), or len. */
static size_t s_next_start(const eng_regex_t *re, const unsigned char *t, size_t len, size_t from)
{
    if (from >= len || re->first_count == 0) {
        return len;
    }
    if (re->first_single >= 0) {
        const unsigned char *q = memchr(t + from, re->first_single, len - from);
        return q != NULL ? (size_t)(q - t) : len;
    }
    while (from < len && !s_has(&re->first, t[from])) {
        from++;
    }
    return from;
}

/* Bit-parallel search: the thread set is one word; stepping is an AND with the byte's mask and an
 * OR of precomputed closures per surviving thread. */
static bool s_match_fast(const eng_regex_t *re, const unsigned char *t, size_t len)
{
    const size_t row = re->nset + 1u;
    const uint64_t *clos = re->clos;
    const size_t start = re->nset;
    const bool ctx_matters = re->has_assert;
    uint64_t cur = clos[s_ctx_index(t, len, 0) * row + start];
    if (cur & S_MATCH_BIT) {
        return true;
    }
    size_t i = 0;
    while (i < len) {
        if (cur == 0 && !re->nullable) {
            /* No thread alive: jump to the next byte a match can begin with. */
            i = s_next_start(re, t, len, i + 1);
            if (i >= len) {
                return false;
            }
            cur = clos[s_ctx_index(t, len, i) * row + start];
            if (cur & S_MATCH_BIT) {
                return true;
            }
            continue;
        }
        uint64_t alive = cur & re->bymask[t[i]];
        const uint64_t *c = clos + (ctx_matters ? s_ctx_index(t, len, i + 1) : 0) * row;
        uint64_t nxt = 0;
        while (alive != 0) {
            nxt |= c[__builtin_ctzll(alive)];
            alive &= alive - 1;
        }
        if (re->nullable || (i + 1 < len && s_has(&re->first, t[i + 1]))) {
            nxt |= c[start];
        }
        if (nxt & S_MATCH_BIT) {
            return true;
        }
        cur = nxt;
        i++;
    }
    return false;
}

/* One lookup per byte: the DFA of s_build_dfa. From a dead state (no thread alive) the bytes
 * that cannot begin a match only lead to the other dead state, so they are skipped at memchr
 * speed where the pattern's first bytes allow (s_next_start). */
static bool s_match_dfa(const eng_regex_t *re, const unsigned char *t, size_t len)
{
    const uint16_t *dfa = re->dfa;
    const uint8_t *col = re->dfa_class;
    const size_t ncol = re->dfa_nclass;
    const bool skip = re->dfa_skip;
    const size_t dead0 = (size_t)re->dfa_dead[0] * ncol, dead1 = (size_t)re->dfa_dead[1] * ncol;
    size_t row = 0; /* the current state's row */
    size_t i = 0;
    while (i < len) {
        if (skip && (row == dead0 || row == dead1)) {
            size_t j = s_next_start(re, t, len, i);
            if (j > i) {
                row = s_word_byte[t[j - 1]] ? dead1 : dead0;
                i = j;
                if (i >= len) {
                    break;
                }
            }
        }
        row = dfa[row + col[t[i]]];
        if (row == S_DFA_ACCEPT) {
            return true;
        }
        i++;
    }
    return re->dfa_eot[row / ncol] != 0;
}

bool eng_regex_match(const eng_regex_t *re, const char *s, size_t len)
{
    if (re == NULL || (s == NULL && len > 0)) {
        return false;
    }
    const unsigned char *t = (const unsigned char *)(s != NULL ? s : "");
    if (re->dfa != NULL) {
        return s_match_dfa(re, t, len);
    }
    if (re->fast) {
        return s_match_fast(re, t, len);
    }
    s_scratch_t sc; /* not zeroed: only `seen` is read before being written */
    size_t nwords = re->nwords;
    uint16_t *cur = sc.list[0];
    uint16_t *nxt = sc.list[1];
    size_t ncur = 0;

    memset(sc.seen, 0, nwords * sizeof(uint64_t));
    if (s_closure(re, 0, s_context(t, len, 0), &sc, cur, &ncur)) {
        return true;
    }
    size_t i = 0;
    while (i < len) {
        if (ncur == 0 && !re->nullable) {
            /* No thread alive and no empty match from a fresh start: jump to the next byte a
             * match can begin with. */
            size_t j = s_next_start(re, t, len, i + 1);
            if (j >= len) {
                return false;
            }
            i = j;
            memset(sc.seen, 0, nwords * sizeof(uint64_t));
            if (s_closure(re, 0, s_context(t, len, i), &sc, cur, &ncur)) {
                return true;
            }
            continue;
        }
        /* Step every thread over t[i] into position i + 1. */
        unsigned c = t[i];
        unsigned ctx = s_context(t, len, i + 1);
        size_t nnxt = 0;
        memset(sc.seen, 0, nwords * sizeof(uint64_t));
        for (size_t k = 0; k < ncur; k++) {
            const s_inst_t *in = &re->prog[cur[k]];
            if (s_has(&re->classes[in->cls], c) && s_closure(re, in->x, ctx, &sc, nxt, &nnxt)) {
                return true;
            }
        }
        /* A fresh start at i + 1 (unanchored search), when it can lead anywhere. */
        if ((re->nullable || (i + 1 < len && s_has(&re->first, t[i + 1]))) &&
            s_closure(re, 0, ctx, &sc, nxt, &nnxt)) {
            return true;
        }
        uint16_t *tmp = cur;
        cur = nxt;
        nxt = tmp;
        ncur = nnxt;
        i++;
    }
    return false;
}
