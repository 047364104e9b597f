/* eng_parse.c - recursive-descent parser for policy files.
 *
 * Builds an eng_ast_t: flat arrays of statements, properties, values and
 * expression nodes, each element located by a byte span. The parser knows
 * the grammar and the table of property keys (so it can say "unknown
 * property 'mx' for tier (expected one of: max, models)"), nothing else.
 *
 * Error recovery: the first error inside a statement is reported, the rest
 * of that statement is skipped up to the next statement keyword that starts
 * a line at brace depth zero, and parsing resumes there. Lexical errors are
 * always reported. This gives every independent error in one run without a
 * cascade of follow-on messages.
 */
#include "eng_parse.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "eng_policy_internal.h"

static const eng_propdef_t s_propdefs[] = {
    {ENG_ST_SETTINGS, ENG_P_DEFAULT_OUTPUT, "default_output", ENG_V_NUMBER, 1, 1,
     "output tokens assumed when a request gives no max_tokens"},
    {ENG_ST_SETTINGS, ENG_P_STEP, "step", ENG_V_WORD, 1, 2,
     "tiers a rule may step to: up, down, none, or two of up/down in order"},
    {ENG_ST_SETTINGS, ENG_P_FREE_FALLBACK, "free_fallback", ENG_V_WORD, 1, 1,
     "on/off: answer with a free model when nothing paid fits"},
    {ENG_ST_SETTINGS, ENG_P_PREFER, "prefer", ENG_V_STRING, 1, 64,
     "model patterns ranked first within every tier, in this order"},
    {ENG_ST_SETTINGS, ENG_P_PROVIDERS, "providers", ENG_V_STRING, 1, 64,
     "providers whose endpoints auto picks prefer, in this order"},
    {ENG_ST_TIER, ENG_P_MAX, "max", ENG_V_NUMBER, 1, 1,
     "highest blended price in USD per 1M tokens of the tier's band"},
    {ENG_ST_TIER, ENG_P_MODELS, "models", ENG_V_STRING, 1, 256,
     "model patterns placed in this tier whatever their price"},
    {ENG_ST_GROUP, ENG_P_MODELS, "models", ENG_V_STRING, 1, 256,
     "model patterns keys of this group may reach"},
    {ENG_ST_GROUP, ENG_P_MULTIPLIER, "multiplier", ENG_V_NUMBER, 1, 1,
     "price multiplier applied to estimates (1 = list price)"},
    {ENG_ST_GROUP, ENG_P_ALLOW_PROVIDERS, "allow_providers", ENG_V_STRING, 1, 64,
     "provider patterns: keys of this group reach only endpoints of these providers"},
    {ENG_ST_GROUP, ENG_P_DENY_PROVIDERS, "deny_providers", ENG_V_STRING, 1, 64,
     "provider patterns: keys of this group never reach endpoints of these providers"},
    {ENG_ST_GROUP, ENG_P_MIN_CONTEXT, "min_context", ENG_V_NUMBER, 1, 1,
     "least context window (tokens) of the models keys of this group reach"},
    {ENG_ST_GROUP, ENG_P_STEP_DOWN, "step_down", ENG_V_NUMBER | ENG_V_WORD, 2, 16,
     "$AMOUNT TIER pairs: below AMOUNT of the key's remaining money (the ledger's), at most "
     "TIER"},
    {ENG_ST_ROUTE, ENG_P_TIER, "tier", ENG_V_WORD | ENG_V_STRING, 1, 1, "the tier to pick from"},
    {ENG_ST_ROUTE, ENG_P_PREFER, "prefer", ENG_V_STRING, 1, 64,
     "model patterns tried first within each tier, in this order"},
    {ENG_ST_ROUTE, ENG_P_REQUIRE, "require", ENG_V_WORD, 1, 4,
     "capabilities the model must have: vision, tools, json, reasoning"},
    {ENG_ST_ROUTE, ENG_P_OUTPUT, "output", ENG_V_NUMBER, 1, 1,
     "output tokens assumed for this rule when the request gives none"},
    {ENG_ST_ROUTE, ENG_P_STEP, "step", ENG_V_WORD, 1, 2, "overrides the settings' step"},
    {ENG_ST_ROUTE, ENG_P_FREE_FALLBACK, "free_fallback", ENG_V_WORD, 1, 1,
     "overrides the settings' free_fallback"},
    {ENG_ST_ROUTE, ENG_P_ALLOW_PROVIDERS, "allow_providers", ENG_V_STRING, 1, 64,
     "provider patterns: the rule picks only endpoints of these providers"},
    {ENG_ST_ROUTE, ENG_P_DENY_PROVIDERS, "deny_providers", ENG_V_STRING, 1, 64,
     "provider patterns: the rule never picks endpoints of these providers"},
    {ENG_ST_ROUTE, ENG_P_MIN_CONTEXT, "min_context", ENG_V_NUMBER, 1, 1,
     "least context window (tokens) a model needs to be picked by the rule"},
    /* Endpoint health, from the gateways' reports. */
    {ENG_ST_SETTINGS, ENG_P_COOLDOWN_FAILS, "cooldown_fails", ENG_V_NUMBER, 1, 1,
     "consecutive failures (429, 5xx, timeouts) that put an endpoint on cooldown"},
    {ENG_ST_SETTINGS, ENG_P_COOLDOWN, "cooldown", ENG_V_NUMBER, 1, 1,
     "seconds of an endpoint's first cooldown"},
    {ENG_ST_SETTINGS, ENG_P_COOLDOWN_MAX, "cooldown_max", ENG_V_NUMBER, 1, 1,
     "seconds a cooldown may reach as it doubles"},
    {ENG_ST_SETTINGS, ENG_P_HEALTH_WINDOW, "health_window", ENG_V_NUMBER, 1, 1,
     "half-life in seconds of the measured error rate, latency and throughput"},
    {ENG_ST_ROUTE, ENG_P_SORT, "sort", ENG_V_WORD, 1, 1,
     "each model's endpoints by price, latency or throughput"},
    {ENG_ST_SCORER, ENG_P_FILE, "file", ENG_V_STRING, 1, 1,
     "the scorer's model file, relative to the policy file"},
    {0, 0, NULL, 0, 0, 0, NULL},
};

static const char *const s_stmt_names[ENG_ST_COUNT] = {
    [ENG_ST_INCLUDE] = "include", [ENG_ST_SETTINGS] = "settings", [ENG_ST_TIER] = "tier",
    [ENG_ST_GROUP] = "group",     [ENG_ST_HINT] = "hint",         [ENG_ST_ROUTE] = "route",
    [ENG_ST_SCORER] = "scorer",
};

/* Words that cannot be field names in a condition. */
static const char *const s_reserved[] = {"and",      "or",  "not", "in",   "has",
                                         "contains", "any", "all", "when", NULL};

const eng_propdef_t *eng_parse_propdefs(void)
{
    return s_propdefs;
}

/* Condition fields are the compiler's (eng_compile.c s_fields) and value
 * words its checks' (s_step, s_switch, hpp_caps); they are listed here too,
 * and test_policy_authoring.c checks the two lists agree with the compiler
 * by compiling a use of each. */
static const char *const s_value_words[] = {
    "prompt_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "images",
    "budget",
    "text_length",
    "tools",
    "json",
    "vision",
    "has_budget",
    "hints",
    "group",
    "text",
    "meta",
    "score",
    "up",
    "down",
    "none",
    "on",
    "off",
    "yes",
    "no",
    "reasoning",
    "price",
    "latency",
    "throughput",
    NULL,
};

/* Adds w to out[0..*n) unless it is there; counts past cap. */
static void s_kw_add(const char **out, size_t cap, size_t *n, const char *w)
{
    for (size_t j = 0; j < *n && j < cap; j++) {
        if (strcmp(out[j], w) == 0) {
            return;
        }
    }
    if (*n < cap) {
        out[*n] = w;
    }
    ++*n;
}

size_t eng_parse_keywords(const char **out, size_t cap)
{
    size_t n = 0;
    for (int k = 0; k < ENG_ST_COUNT; k++) {
        s_kw_add(out, cap, &n, s_stmt_names[k]);
    }
    for (int i = 0; s_reserved[i]; i++) {
        s_kw_add(out, cap, &n, s_reserved[i]);
    }
    s_kw_add(out, cap, &n, "true");
    s_kw_add(out, cap, &n, "false");
    for (const eng_propdef_t *d = s_propdefs; d->name; d++) {
        s_kw_add(out, cap, &n, d->name);
    }
    for (int i = 0; s_value_words[i]; i++) {
        s_kw_add(out, cap, &n, s_value_words[i]);
    }
    return n;
}

const char *eng_parse_stmt_name(eng_stkind_t kind)
{
    return (unsigned)kind < ENG_ST_COUNT ? s_stmt_names[kind] : "statement";
}

typedef struct {
    eng_ast_t *ast;      /* being built */
    eng_diags_t *diags;  /* sink, may be NULL */
    eng_lex_t lx;        /* lexer */
    eng_token_t cur;     /* current token (never ENG_TOK_ERROR) */
    uint32_t prev_end;   /* end of the previous token */
    bool panic;          /* an error was reported in this statement */
    bool oom;            /* an allocation failed */
    bool stop;           /* too many errors: the rest reads as end of file */
    uint32_t max_errors; /* errors reported before stopping (see ENG_MAX_ERRORS) */
    int depth;           /* expression nesting */
    uint32_t cap_stmts;  /* allocated entries of ast->stmts */
    uint32_t cap_props;  /* of ast->props */
    uint32_t cap_values; /* of ast->values */
    uint32_t cap_nodes;  /* of ast->nodes */
} s_parser_t;

/* Growable arrays ------------------------------------------------------- */

/* eng_grow, with the first capacity of this module's arrays; out of memory is noted. */
static bool s_grow(s_parser_t *p, void **arr, uint32_t n, uint32_t *cap, size_t size)
{
    if (eng_grow(arr, n, cap, size, 16)) {
        return true;
    }
    p->oom = true;
    return false;
}

/* Tokens and errors ----------------------------------------------------- */

static void s_verror(s_parser_t *p, uint32_t off, uint32_t len, const char *fmt, va_list ap)
{
    if (p->stop) {
        return;
    }
    /* Past the limit, like a C compiler: one more error says so and the rest
     * of the file reads as its end. Later errors are mostly the cascade of
     * earlier ones, and each costs a located, formatted diagnostic (a garbage
     * file of megabytes would report an error per token). */
    if (p->ast->nerrors >= p->max_errors) {
        p->stop = true;
        p->ast->stopped = true;
        p->ast->nerrors++;
        eng_diags_add(p->diags, ENG_DIAG_ERROR, p->ast->name, p->ast->src, p->ast->len, off, len,
                      "too many errors (more than %u); the rest of the file is not checked",
                      (unsigned)p->max_errors);
        return;
    }
    p->ast->nerrors++;
    eng_diags_vadd(p->diags, ENG_DIAG_ERROR, p->ast->name, p->ast->src, p->ast->len, off, len, fmt,
                   ap);
}

static void s_error(s_parser_t *p, uint32_t off, uint32_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reports once per statement: later errors in a broken statement are noise. */
static void s_error(s_parser_t *p, uint32_t off, uint32_t len, const char *fmt, ...)
{
    if (p->panic) {
        return;
    }
    p->panic = true;
    va_list ap;
    va_start(ap, fmt);
    s_verror(p, off, len, fmt, ap);
    va_end(ap);
}

static void s_lex_error(s_parser_t *p, const eng_token_t *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_lex_error(s_parser_t *p, const eng_token_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_verror(p, t->start, t->end - t->start, fmt, ap);
    va_end(ap);
}

static void s_advance(s_parser_t *p)
{
    p->prev_end = p->cur.end;
    for (;;) {
        if (p->stop) {
            p->cur.kind = ENG_TOK_EOF;
            p->cur.start = p->cur.end = p->ast->len;
            return;
        }
        eng_token_t t;
        if (eng_lex_next(&p->lx, &t) != ENG_TOK_ERROR) {
            p->cur = t;
            return;
        }
        const char *s = p->ast->src + t.start;
        if (p->lx.err && strcmp(p->lx.err, "unexpected character") == 0 &&
            (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) {
            s_lex_error(p, &t, "unexpected character '%c'", *s);
        } else {
            s_lex_error(p, &t, "%s", p->lx.err ? p->lx.err : "invalid token");
        }
        p->panic = true; /* the statement around it is broken */
    }
}

static bool s_is(const s_parser_t *p, eng_tok_kind_t kind)
{
    return p->cur.kind == kind;
}

static bool s_word(const s_parser_t *p, const char *w)
{
    size_t n = strlen(w);
    return p->cur.kind == ENG_TOK_IDENT && p->cur.end - p->cur.start == n &&
           memcmp(p->ast->src + p->cur.start, w, n) == 0;
}

static eng_span_t s_span(const eng_token_t *t)
{
    eng_span_t s = {t->start, t->end - t->start};
    return s;
}

/* Quotes the current token for a message ("'foo'" or "end of file"). */
static const char *s_describe(const s_parser_t *p, char *buf, size_t n)
{
    if (p->cur.kind == ENG_TOK_EOF) {
        return "end of file";
    }
    uint32_t len = p->cur.end - p->cur.start;
    if (len > 40) {
        len = 40;
    }
    snprintf(buf, n, "'%.*s'", (int)len, p->ast->src + p->cur.start);
    return buf;
}

static void s_expected(s_parser_t *p, const char *what)
{
    char buf[64];
    s_error(p, p->cur.start, p->cur.end - p->cur.start, "expected %s, got %s", what,
            s_describe(p, buf, sizeof buf));
}

static bool s_expect(s_parser_t *p, eng_tok_kind_t kind)
{
    if (s_is(p, kind)) {
        s_advance(p);
        return true;
    }
    s_expected(p, eng_tok_kind_name(kind));
    return false;
}

static int s_stmt_kind(const s_parser_t *p)
{
    for (int k = 0; k < ENG_ST_COUNT; k++) {
        if (s_word(p, s_stmt_names[k])) {
            return k;
        }
    }
    return -1;
}

/* True when only blanks precede the current token on its line. */
static bool s_line_initial(const s_parser_t *p)
{
    uint32_t i = p->cur.start;
    while (i > 0) {
        char c = p->ast->src[i - 1];
        if (c == '\n') {
            return true;
        }
        if (c != ' ' && c != '\t' && c != '\r') {
            return false;
        }
        i--;
    }
    return true;
}

static const eng_propdef_t *s_find_prop(eng_stkind_t kind, const char *s, uint32_t len);

/* True when the current token is a line-initial statement keyword that cannot
 * be a property of `kind`: inside a block it means a '}' is missing. */
static bool s_stmt_start(const s_parser_t *p, int kind)
{
    if (s_stmt_kind(p) < 0 || !s_line_initial(p)) {
        return false;
    }
    return kind < 0 ||
           !s_find_prop((eng_stkind_t)kind, p->ast->src + p->cur.start, p->cur.end - p->cur.start);
}

/* Skips the rest of a broken statement of `kind` (see the file comment).
 * `depth` is the brace depth the error happened at. */
static void s_sync(s_parser_t *p, int depth, int kind)
{
    while (!s_is(p, ENG_TOK_EOF)) {
        if (s_is(p, ENG_TOK_LBRACE)) {
            depth++;
        } else if (s_is(p, ENG_TOK_RBRACE)) {
            if (--depth <= 0) {
                s_advance(p);
                return;
            }
        } else if (depth <= 0 && s_stmt_kind(p) >= 0 && s_line_initial(p)) {
            return;
        } else if (depth == 1 && s_stmt_start(p, kind)) {
            return;
        }
        s_advance(p);
    }
}

/* Expressions ----------------------------------------------------------- */

static int32_t s_node(s_parser_t *p, eng_xkind_t kind, uint32_t start, uint32_t end)
{
    eng_ast_t *a = p->ast;
    if (!s_grow(p, (void **)&a->nodes, a->nnodes, &p->cap_nodes, sizeof *a->nodes)) {
        return -1;
    }
    eng_xnode_t *n = &a->nodes[a->nnodes];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->span.off = start;
    n->span.len = end > start ? end - start : 1;
    n->a = n->b = n->next = -1;
    n->depth = 1;
    return (int32_t)a->nnodes++;
}

/* Links children a and b (b may be -1) under node n and checks the height.
 * Returns n, or -1 after an error. */
static int32_t s_link(s_parser_t *p, int32_t n, int32_t a, int32_t b)
{
    if (n < 0) {
        return -1;
    }
    eng_xnode_t *x = &p->ast->nodes[n];
    x->a = a;
    x->b = b;
    unsigned da = p->ast->nodes[a].depth;
    unsigned db = b >= 0 ? p->ast->nodes[b].depth : 0;
    unsigned d = 1 + (da > db ? da : db);
    x->depth = (uint16_t)d;
    if (d > ENG_PARSE_MAX_TREE) {
        s_error(p, x->span.off, x->span.len, "condition too long (more than %d levels of terms)",
                ENG_PARSE_MAX_TREE);
        return -1;
    }
    return n;
}

static uint32_t s_node_end(const s_parser_t *p, int32_t i)
{
    const eng_xnode_t *n = &p->ast->nodes[i];
    return n->span.off + n->span.len;
}

static int32_t s_expr(s_parser_t *p);

static bool s_reserved_word(const s_parser_t *p)
{
    for (int i = 0; s_reserved[i]; i++) {
        if (s_word(p, s_reserved[i])) {
            return true;
        }
    }
    return false;
}

static int32_t s_list(s_parser_t *p)
{
    uint32_t start = p->cur.start;
    s_advance(p); /* [ */
    int32_t head = -1, tail = -1;
    while (!s_is(p, ENG_TOK_RBRACKET)) {
        if (s_is(p, ENG_TOK_IDENT)) {
            s_error(p, p->cur.start, p->cur.end - p->cur.start,
                    "list items are quoted strings or numbers: write \"%.*s\"",
                    (int)(p->cur.end - p->cur.start), p->ast->src + p->cur.start);
            return -1;
        }
        if (!s_is(p, ENG_TOK_STRING) && !s_is(p, ENG_TOK_NUMBER)) {
            s_expected(p, "a string or a number in the list");
            return -1;
        }
        int32_t item = s_node(p, s_is(p, ENG_TOK_STRING) ? ENG_X_STRING : ENG_X_NUMBER,
                              p->cur.start, p->cur.end);
        if (item < 0) {
            return -1;
        }
        if (tail < 0) {
            head = item;
        } else {
            p->ast->nodes[tail].next = item;
        }
        tail = item;
        s_advance(p);
        if (s_is(p, ENG_TOK_COMMA)) {
            s_advance(p);
        } else if (!s_is(p, ENG_TOK_RBRACKET)) {
            s_expected(p, "',' or ']'");
            return -1;
        }
    }
    int32_t n = s_node(p, ENG_X_LIST, start, p->cur.end);
    s_advance(p); /* ] */
    if (n >= 0) {
        p->ast->nodes[n].a = head;
    }
    return n;
}

static int32_t s_operand(s_parser_t *p)
{
    eng_token_t t = p->cur;
    switch (t.kind) {
    case ENG_TOK_NUMBER:
    case ENG_TOK_STRING:
    case ENG_TOK_REGEX: {
        eng_xkind_t k = t.kind == ENG_TOK_NUMBER   ? ENG_X_NUMBER
                        : t.kind == ENG_TOK_STRING ? ENG_X_STRING
                                                   : ENG_X_REGEX;
        s_advance(p);
        return s_node(p, k, t.start, t.end);
    }
    case ENG_TOK_LBRACKET:
        return s_list(p);
    case ENG_TOK_IDENT:
        break;
    default:
        s_expected(p, "a condition");
        return -1;
    }
    if (s_word(p, "true") || s_word(p, "false")) {
        int32_t n = s_node(p, ENG_X_BOOL, t.start, t.end);
        if (n >= 0) {
            p->ast->nodes[n].op = s_word(p, "true");
        }
        s_advance(p);
        return n;
    }
    if (s_reserved_word(p)) {
        s_expected(p, "a field name or a value");
        return -1;
    }
    s_advance(p);
    eng_span_t key = {0, 0};
    uint32_t end = t.end;
    if (s_is(p, ENG_TOK_DOT)) {
        s_advance(p);
        if (!s_is(p, ENG_TOK_IDENT) && !s_is(p, ENG_TOK_STRING)) {
            s_expected(p, "a key after '.'");
            return -1;
        }
        key = s_span(&p->cur);
        end = p->cur.end;
        s_advance(p);
    }
    int32_t n = s_node(p, ENG_X_NAME, t.start, end);
    if (n >= 0) {
        p->ast->nodes[n].key = key;
    }
    return n;
}

/* Maps the current token to a test operator, or -1. Consumes nothing. */
static int s_test_op(const s_parser_t *p)
{
    switch (p->cur.kind) {
    case ENG_TOK_LT:
        return ENG_OP_LT;
    case ENG_TOK_LE:
        return ENG_OP_LE;
    case ENG_TOK_GT:
        return ENG_OP_GT;
    case ENG_TOK_GE:
        return ENG_OP_GE;
    case ENG_TOK_EQ:
        return ENG_OP_EQ;
    case ENG_TOK_NE:
        return ENG_OP_NE;
    case ENG_TOK_MATCH:
        return ENG_OP_MATCH;
    default:
        break;
    }
    if (s_word(p, "in")) {
        return ENG_OP_IN;
    }
    if (s_word(p, "has")) {
        return ENG_OP_HAS;
    }
    if (s_word(p, "contains")) {
        return ENG_OP_CONTAINS;
    }
    return -1;
}

static int32_t s_test(s_parser_t *p)
{
    int32_t lhs = s_operand(p);
    if (lhs < 0) {
        return -1;
    }
    int op = s_test_op(p);
    if (op < 0) {
        return lhs;
    }
    eng_span_t opspan = s_span(&p->cur);
    s_advance(p);
    if (op == ENG_OP_HAS && (s_word(p, "any") || s_word(p, "all"))) {
        op = s_word(p, "any") ? ENG_OP_HAS_ANY : ENG_OP_HAS_ALL;
        opspan.len = p->cur.end - opspan.off;
        s_advance(p);
    }
    int32_t rhs = s_operand(p);
    if (rhs < 0) {
        return -1;
    }
    int32_t n = s_node(p, ENG_X_TEST, p->ast->nodes[lhs].span.off, s_node_end(p, rhs));
    if (n >= 0) {
        eng_xnode_t *x = &p->ast->nodes[n];
        x->op = (uint8_t)op;
        x->key = opspan;
    }
    return s_link(p, n, lhs, rhs);
}

static int32_t s_unary(s_parser_t *p)
{
    if (++p->depth > ENG_PARSE_MAX_DEPTH) {
        s_error(p, p->cur.start, p->cur.end - p->cur.start,
                "condition nested deeper than %d levels", ENG_PARSE_MAX_DEPTH);
        return -1;
    }
    int32_t r = -1;
    if (s_word(p, "not")) {
        uint32_t start = p->cur.start;
        s_advance(p);
        int32_t a = s_unary(p);
        if (a >= 0) {
            r = s_link(p, s_node(p, ENG_X_NOT, start, s_node_end(p, a)), a, -1);
        }
    } else if (s_is(p, ENG_TOK_LPAREN)) {
        uint32_t start = p->cur.start;
        s_advance(p);
        r = s_expr(p);
        if (r >= 0 && s_expect(p, ENG_TOK_RPAREN)) {
            /* Widen the span to the parentheses for carets on the whole group. */
            eng_xnode_t *x = &p->ast->nodes[r];
            x->span.len = p->prev_end - start;
            x->span.off = start;
        } else {
            r = -1;
        }
    } else {
        r = s_test(p);
    }
    p->depth--;
    return r;
}

static int32_t s_binary(s_parser_t *p, bool is_or)
{
    int32_t lhs = is_or ? s_binary(p, false) : s_unary(p);
    while (lhs >= 0 && s_word(p, is_or ? "or" : "and")) {
        s_advance(p);
        int32_t rhs = is_or ? s_binary(p, false) : s_unary(p);
        if (rhs < 0) {
            return -1;
        }
        int32_t n = s_node(p, is_or ? ENG_X_OR : ENG_X_AND, p->ast->nodes[lhs].span.off,
                           s_node_end(p, rhs));
        lhs = s_link(p, n, lhs, rhs);
    }
    return lhs;
}

static int32_t s_expr(s_parser_t *p)
{
    return s_binary(p, true);
}

/* Statements ------------------------------------------------------------ */

static const eng_propdef_t *s_find_prop(eng_stkind_t kind, const char *s, uint32_t len)
{
    for (const eng_propdef_t *d = s_propdefs; d->name; d++) {
        if (d->stmt == kind && strlen(d->name) == len && memcmp(d->name, s, len) == 0) {
            return d;
        }
    }
    return NULL;
}

static void s_unknown_prop(s_parser_t *p, eng_stkind_t kind)
{
    char list[256] = "";
    size_t used = 0;
    for (const eng_propdef_t *d = s_propdefs; d->name; d++) {
        if (d->stmt == kind && used < sizeof list) {
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                                     d->name);
        }
    }
    char buf[64], dym[300];
    eng_suggest_t sg;
    eng_suggest_init(&sg, p->ast->src + p->cur.start, p->cur.end - p->cur.start);
    for (const eng_propdef_t *d = s_propdefs; d->name; d++) {
        if (d->stmt == kind) {
            eng_suggest_add(&sg, d->name, strlen(d->name));
        }
    }
    s_error(p, p->cur.start, p->cur.end - p->cur.start,
            "unknown property %s for %s%s (expected one of: %s)", s_describe(p, buf, sizeof buf),
            s_stmt_names[kind], eng_suggest_text(&sg, dym, sizeof dym), list);
}

static const char *s_vkinds_name(unsigned k)
{
    switch (k) {
    case ENG_V_NUMBER:
        return "a number";
    case ENG_V_STRING:
        return "a quoted string";
    case ENG_V_WORD:
        return "a word";
    default:
        return "a word or a quoted string";
    }
}

/* KEY value (',' value)* ; the key is the current token, already looked up. */
static bool s_prop(s_parser_t *p, const eng_propdef_t *def, eng_stmt_t *st)
{
    eng_ast_t *a = p->ast;
    if (!s_grow(p, (void **)&a->props, a->nprops, &p->cap_props, sizeof *a->props)) {
        return false;
    }
    eng_prop_t *pr = &a->props[a->nprops];
    pr->id = def->id;
    pr->key = s_span(&p->cur);
    pr->first = a->nvalues;
    pr->count = 0;
    s_advance(p);
    for (;;) {
        unsigned k = s_is(p, ENG_TOK_NUMBER)   ? ENG_V_NUMBER
                     : s_is(p, ENG_TOK_STRING) ? ENG_V_STRING
                     : s_is(p, ENG_TOK_IDENT)  ? ENG_V_WORD
                                               : 0;
        if (!(k & def->vkinds)) {
            char what[96];
            snprintf(what, sizeof what, "%s after '%s'", s_vkinds_name(def->vkinds), def->name);
            s_expected(p, what);
            return false;
        }
        if (pr->count >= def->max) {
            s_error(p, p->cur.start, p->cur.end - p->cur.start,
                    "too many values for '%s' (at most %u)", def->name, def->max);
            return false;
        }
        if (!s_grow(p, (void **)&a->values, a->nvalues, &p->cap_values, sizeof *a->values)) {
            return false;
        }
        a->values[a->nvalues++] = p->cur;
        pr->count++;
        s_advance(p);
        /* step_down's values are pairs, "$5 mid, $0.50 free": the tier
         * follows its amount with no comma between them. */
        if (def->id == ENG_P_STEP_DOWN && k == ENG_V_NUMBER && s_is(p, ENG_TOK_IDENT) &&
            !(s_line_initial(p) && s_stmt_kind(p) >= 0)) {
            continue;
        }
        if (!s_is(p, ENG_TOK_COMMA)) {
            break;
        }
        s_advance(p);
    }
    a->nprops++;
    st->count++;
    return true;
}

/* '{' (prop [';'])* '}' ; sets *depth to 1 once inside. */
static bool s_block(s_parser_t *p, eng_stmt_t *st, int *depth)
{
    if (!s_is(p, ENG_TOK_LBRACE)) {
        s_expected(p, "'{'");
        return false;
    }
    s_advance(p);
    *depth = 1;
    while (!s_is(p, ENG_TOK_RBRACE)) {
        if (s_is(p, ENG_TOK_SEMI)) {
            s_advance(p);
            continue;
        }
        if (!s_is(p, ENG_TOK_IDENT)) {
            s_expected(p, "a property name or '}'");
            return false;
        }
        const eng_propdef_t *def =
            s_find_prop(st->kind, p->ast->src + p->cur.start, p->cur.end - p->cur.start);
        if (!def && s_stmt_start(p, (int)st->kind)) {
            char buf[64];
            s_error(p, p->cur.start, p->cur.end - p->cur.start,
                    "missing '}' before the statement %s", s_describe(p, buf, sizeof buf));
            return false;
        }
        if (!def) {
            s_unknown_prop(p, st->kind);
            return false;
        }
        if (!s_prop(p, def, st)) {
            return false;
        }
    }
    s_advance(p);
    *depth = 0;
    return true;
}

/* Inline properties: while the word is a key of this statement. */
static bool s_inline_props(s_parser_t *p, eng_stmt_t *st)
{
    for (;;) {
        if (!s_is(p, ENG_TOK_IDENT)) {
            return true;
        }
        const eng_propdef_t *def =
            s_find_prop(st->kind, p->ast->src + p->cur.start, p->cur.end - p->cur.start);
        if (!def) {
            return true;
        }
        if (!s_prop(p, def, st)) {
            return false;
        }
    }
}

static bool s_name(s_parser_t *p, eng_stmt_t *st, const char *what)
{
    if (s_is(p, ENG_TOK_IDENT) || s_is(p, ENG_TOK_STRING)) {
        st->name = s_span(&p->cur);
        s_advance(p);
        return true;
    }
    s_expected(p, what);
    return false;
}

static bool s_when(s_parser_t *p, eng_stmt_t *st, bool required)
{
    if (!s_word(p, "when")) {
        if (required) {
            s_expected(p, "'when'");
            return false;
        }
        return true;
    }
    s_advance(p);
    p->depth = 0;
    st->cond = s_expr(p);
    return st->cond >= 0;
}

/* scorer NAME file "PATH" (or a block): like a tier's. */
static bool s_scorer_stmt(s_parser_t *p, eng_stmt_t *st, int *depth)
{
    if (!s_name(p, st, "a scorer name")) {
        return false;
    }
    return s_is(p, ENG_TOK_LBRACE) ? s_block(p, st, depth) : s_inline_props(p, st);
}

/* Parses one statement whose keyword is current. Returns false on error. */
static bool s_statement(s_parser_t *p, eng_stkind_t kind, int *depth)
{
    eng_ast_t *a = p->ast;
    eng_stmt_t st = {kind, s_span(&p->cur), {0, 0}, -1, a->nprops, 0};
    s_advance(p);
    bool ok = true;
    switch (kind) {
    case ENG_ST_INCLUDE:
        if (s_is(p, ENG_TOK_STRING)) {
            st.name = s_span(&p->cur);
            s_advance(p);
        } else {
            s_expected(p, "a quoted file name after 'include'");
            ok = false;
        }
        break;
    case ENG_ST_SETTINGS:
        ok = s_block(p, &st, depth);
        break;
    case ENG_ST_SCORER:
        ok = s_scorer_stmt(p, &st, depth);
        break;
    case ENG_ST_TIER:
    case ENG_ST_GROUP:
        ok = s_name(p, &st, kind == ENG_ST_TIER ? "a tier name" : "a group name");
        if (ok && s_is(p, ENG_TOK_LBRACE)) {
            ok = s_block(p, &st, depth);
        } else if (ok) {
            ok = s_inline_props(p, &st);
        }
        break;
    case ENG_ST_HINT:
        ok = s_name(p, &st, "a hint word") && s_when(p, &st, true);
        break;
    case ENG_ST_ROUTE:
        ok = s_name(p, &st, "a rule name") && s_when(p, &st, false);
        if (ok) {
            ok = s_block(p, &st, depth);
        }
        break;
    default:
        ok = false;
        break;
    }
    if (!ok || p->oom) {
        return false;
    }
    if (!s_grow(p, (void **)&a->stmts, a->nstmts, &p->cap_stmts, sizeof *a->stmts)) {
        return false;
    }
    a->stmts[a->nstmts++] = st;
    return true;
}

eng_ast_t *eng_parse(const char *name, const char *src, size_t len, eng_diags_t *diags)
{
    return eng_parse_max(name, src, len, diags, ENG_MAX_ERRORS);
}

eng_ast_t *eng_parse_max(const char *name, const char *src, size_t len, eng_diags_t *diags,
                         uint32_t max_errors)
{
    eng_ast_t *ast = calloc(1, sizeof *ast);
    if (!ast) {
        return NULL;
    }
    ast->name = name;
    ast->src = src;
    s_parser_t parser;
    memset(&parser, 0, sizeof parser);
    s_parser_t *p = &parser;
    p->ast = ast;
    p->diags = diags;
    p->max_errors = max_errors;
    eng_lex_init(&p->lx, src, len);
    ast->len = p->lx.len;
    if (len > ENG_LEX_MAX_SRC) {
        eng_diags_add(diags, ENG_DIAG_ERROR, name, NULL, 0, 0, 0,
                      "file too large (more than %u bytes)", (unsigned)ENG_LEX_MAX_SRC);
        ast->nerrors++;
    }
    s_advance(p);
    while (!s_is(p, ENG_TOK_EOF) && !p->oom) {
        int depth = 0;
        if (p->panic) {
            s_sync(p, 0, -1);
            p->panic = false;
            continue;
        }
        int kind = s_stmt_kind(p);
        if (kind < 0) {
            char buf[64], dym[300] = "";
            if (s_is(p, ENG_TOK_IDENT)) {
                eng_suggest_t sg;
                eng_suggest_init(&sg, p->ast->src + p->cur.start, p->cur.end - p->cur.start);
                for (int k = 0; k < ENG_ST_COUNT; k++) {
                    eng_suggest_add(&sg, s_stmt_names[k], strlen(s_stmt_names[k]));
                }
                eng_suggest_text(&sg, dym, sizeof dym);
            }
            s_error(p, p->cur.start, p->cur.end - p->cur.start,
                    "expected a statement (include, settings, tier, group, hint, route), got %s%s",
                    s_describe(p, buf, sizeof buf), dym);
        } else if (!s_statement(p, (eng_stkind_t)kind, &depth)) {
            /* Skip what remains of the statement; an error without a report
             * (a lexical one already shown) still needs the skip. */
            if (!p->oom) {
                p->panic = true;
                s_sync(p, depth, kind);
                p->panic = false;
            }
            continue;
        }
        if (p->panic) {
            continue; /* a lexical error inside a statement that otherwise parsed */
        }
    }
    if (p->oom) {
        eng_ast_destroy(&ast);
        return NULL;
    }
    return ast;
}

void eng_ast_destroy(eng_ast_t **self_p)
{
    if (self_p && *self_p) {
        eng_ast_t *a = *self_p;
        free(a->stmts);
        free(a->props);
        free(a->values);
        free(a->nodes);
        free(a);
        *self_p = NULL;
    }
}
