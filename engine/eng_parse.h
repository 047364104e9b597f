/* eng_parse.h - the policy syntax tree.
 *
 * One eng_ast_t per source file. Statements, their properties and the
 * condition expressions live in flat arrays indexed by int32; every element
 * carries a byte span into the file's text, from which diagnostics compute
 * line and column. The parser checks syntax only; names, types and values
 * are the compiler's business (eng_compile.c). Grammar (policies/README.md):
 *
 *   policy   := stmt*
 *   stmt     := 'include' STRING
 *             | 'settings' block
 *             | 'tier' NAME (block | prop*) | 'group' NAME (block | prop*)
 *             | 'hint' NAME 'when' expr
 *             | 'route' NAME ['when' expr] block
 *             | 'scorer' NAME (block | prop*)
 *   block    := '{' (prop [';'])* '}'
 *   NAME     := IDENT | STRING
 *   prop     := KEY value (',' value)*
 *   value    := NUMBER | STRING | IDENT
 *   expr     := and ('or' and)*
 *   and      := unary ('and' unary)*
 *   unary    := 'not' unary | '(' expr ')' | test
 *   test     := operand [relop operand | '~' REGEX | 'in' operand | 'contains' operand
 *                        | 'has' ['any' | 'all'] operand]
 *   operand  := NAME ['.' NAME] | NUMBER | STRING | REGEX | 'true' | 'false'
 *             | '[' [literal (',' literal)*] ']'
 */
#ifndef ENG_PARSE_H
#define ENG_PARSE_H

#include "eng_lex.h"
#include "eng_policy.h"

/* A byte range in the AST's source. */
typedef struct {
    uint32_t off; /* first byte */
    uint32_t len; /* byte count, >= 1 for real tokens */
} eng_span_t;

/* Expression nodes. */
typedef enum {
    ENG_X_OR,     /* a or b */
    ENG_X_AND,    /* a and b */
    ENG_X_NOT,    /* not a */
    ENG_X_TEST,   /* a OP b (op in .op) */
    ENG_X_NAME,   /* a field: prompt_tokens, meta.tenant (key span in .key) */
    ENG_X_NUMBER, /* numeric literal */
    ENG_X_STRING, /* string literal */
    ENG_X_REGEX,  /* regex literal */
    ENG_X_BOOL,   /* true / false (value in .op: 1 true) */
    ENG_X_LIST,   /* [ items ]: first item in .a, items chained by .next */
} eng_xkind_t;

/* Operators of ENG_X_TEST. */
typedef enum {
    ENG_OP_LT,
    ENG_OP_LE,
    ENG_OP_GT,
    ENG_OP_GE,
    ENG_OP_EQ,
    ENG_OP_NE,
    ENG_OP_MATCH,    /* ~ */
    ENG_OP_IN,       /* in */
    ENG_OP_HAS,      /* has */
    ENG_OP_HAS_ANY,  /* has any */
    ENG_OP_HAS_ALL,  /* has all */
    ENG_OP_CONTAINS, /* contains */
    ENG_OP_COUNT
} eng_op_t;

typedef struct {
    uint8_t kind;    /* eng_xkind_t */
    uint8_t op;      /* eng_op_t for TEST; 0/1 for BOOL */
    uint16_t depth;  /* height of the subtree (a leaf is 1) */
    eng_span_t span; /* the whole node in the source */
    eng_span_t key;  /* NAME with a '.': the part after the dot; TEST: the operator */
    int32_t a;       /* left / only child, list head; -1 if none */
    int32_t b;       /* right child; -1 if none */
    int32_t next;    /* next item of a list; -1 at the end */
} eng_xnode_t;

typedef enum {
    ENG_ST_INCLUDE,
    ENG_ST_SETTINGS,
    ENG_ST_TIER,
    ENG_ST_GROUP,
    ENG_ST_HINT,
    ENG_ST_ROUTE,
    ENG_ST_SCORER, /* scorer NAME file "PATH" */
    ENG_ST_COUNT
} eng_stkind_t;

/* Property keys; each belongs to one statement kind (table in eng_parse.c). */
typedef enum {
    ENG_P_DEFAULT_OUTPUT,  /* settings */
    ENG_P_STEP,            /* settings, route */
    ENG_P_FREE_FALLBACK,   /* settings, route */
    ENG_P_PREFER,          /* settings, route */
    ENG_P_PROVIDERS,       /* settings */
    ENG_P_MAX,             /* tier */
    ENG_P_MODELS,          /* tier, group */
    ENG_P_MULTIPLIER,      /* group */
    ENG_P_TIER,            /* route */
    ENG_P_REQUIRE,         /* route */
    ENG_P_OUTPUT,          /* route */
    ENG_P_ALLOW_PROVIDERS, /* group, route */
    ENG_P_DENY_PROVIDERS,  /* group, route */
    ENG_P_MIN_CONTEXT,     /* group, route */
    ENG_P_COOLDOWN_FAILS,  /* settings: endpoint health (eng_health.h) */
    ENG_P_COOLDOWN,        /* settings */
    ENG_P_COOLDOWN_MAX,    /* settings */
    ENG_P_HEALTH_WINDOW,   /* settings */
    ENG_P_SORT,            /* route */
    ENG_P_FILE,            /* scorer */
    ENG_P_STEP_DOWN,       /* group: the ledger's step-down thresholds */
    ENG_P_COUNT
} eng_propid_t;

/* Kinds of property values, as a bit set. */
enum { ENG_V_NUMBER = 1, ENG_V_STRING = 2, ENG_V_WORD = 4 };

/* One allowed property of one statement kind. */
typedef struct {
    eng_stkind_t stmt; /* where it may appear */
    eng_propid_t id;   /* which property */
    const char *name;  /* the key as written */
    unsigned vkinds;   /* ENG_V_* accepted */
    unsigned min, max; /* value count bounds */
    const char *help;  /* one line for docs and "expected one of" */
} eng_propdef_t;

/* The property table, terminated by an entry with name NULL. */
const eng_propdef_t *eng_parse_propdefs(void);
/* Keyword that starts a statement kind ("tier"). */
const char *eng_parse_stmt_name(eng_stkind_t kind);
/* Every word the language gives a meaning to, NULL-terminated: statement
 * keywords, condition words (and, or, not, in, has, contains, any, all,
 * when, true, false), property keys, condition fields, and the words some
 * property values take (up, down, none, on, off, yes, no, capabilities),
 * each once. Writes up to `cap` of them to out[]; returns how many there are.
 * Editor syntax files are tested against it, so they cannot fall behind. */
size_t eng_parse_keywords(const char **out, size_t cap);

typedef struct {
    eng_propid_t id; /* which property */
    eng_span_t key;  /* the key in the source */
    uint32_t first;  /* first value in eng_ast_t.values */
    uint32_t count;  /* number of values */
} eng_prop_t;

typedef struct {
    eng_stkind_t kind; /* what statement */
    eng_span_t kw;     /* its keyword */
    eng_span_t name;   /* tier/group/hint/route name, or the include's string token */
    int32_t cond;      /* hint/route condition root in nodes[], -1 if none */
    uint32_t first;    /* first property in props[] */
    uint32_t count;    /* number of properties */
} eng_stmt_t;

/* A parsed file. Owns its arrays; borrows `src`, which must outlive it. */
typedef struct {
    const char *name;    /* file name for diagnostics (borrowed) */
    const char *src;     /* source text (borrowed) */
    uint32_t len;        /* its length */
    eng_stmt_t *stmts;   /* statements in source order */
    uint32_t nstmts;     /* count */
    eng_prop_t *props;   /* all properties */
    uint32_t nprops;     /* count */
    eng_token_t *values; /* all property values */
    uint32_t nvalues;    /* count */
    eng_xnode_t *nodes;  /* all expression nodes */
    uint32_t nnodes;     /* count */
    uint32_t nerrors;    /* syntax errors reported */
    bool stopped;        /* too many errors: the rest of the file was not parsed */
} eng_ast_t;

/* Deepest nesting of parentheses / 'not' in one condition. */
#define ENG_PARSE_MAX_DEPTH 64
/* Highest condition tree (bounds every recursive walk of it): a chain of
 * 'or' / 'and' adds one level per term. */
#define ENG_PARSE_MAX_TREE 256

/* Parses src[0..len) named `name` (both borrowed). Every syntax error goes to
 * `diags` (may be NULL) located in `name`; parsing resumes at the next
 * statement. Returns the AST (possibly partial; check nerrors) or NULL when
 * out of memory. */
eng_ast_t *eng_parse(const char *name, const char *src, size_t len, eng_diags_t *diags);

/* eng_parse, stopping after `max_errors` errors (eng_parse: ENG_MAX_ERRORS):
 * one more error is reported as "too many errors", sets `stopped`, and the
 * rest of the file reads as its end. The compiler passes what its earlier
 * files left of the policy's limit. */
eng_ast_t *eng_parse_max(const char *name, const char *src, size_t len, eng_diags_t *diags,
                         uint32_t max_errors);

/* Frees the AST; sets *self_p to NULL. Idempotent. */
void eng_ast_destroy(eng_ast_t **self_p);

#endif
