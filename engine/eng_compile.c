/* eng_compile.c - from policy text to the immutable compiled policy.
 *
 * Loads the top file and its includes (relative to the including file,
 * each file once, cycles reported at the include that closes them), parses
 * each into an AST, then runs the semantic passes over the statements in
 * include-expanded order: settings, tiers, groups, then hint and routing
 * rules (name resolution, type checks, condition trees). Every error is
 * reported with its location; compilation goes on after an error so one run
 * lists them all. Only when there is no error are the lookup tables the
 * resolver needs built: the tier and endpoint of every model, candidate
 * lists per (tier, capability mask) in preference-then-price order, the
 * free-fallback lists and each rule's preference list and tier visit order.
 *
 * The compiled policy owns its strings (a chunked arena, so pointers stay
 * put), its arrays and its regexes; ASTs and sources are freed on return.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eng_lex.h"
#include "eng_parse.h"
#include "eng_policy_internal.h"

/* Arena ------------------------------------------------------------------ */

typedef struct s_chunk {
    struct s_chunk *next; /* older chunk */
    size_t used;          /* bytes used in data */
    size_t cap;           /* bytes in data */
    char data[];          /* storage */
} s_chunk_t;

static void *s_arena_alloc(eng_policy_t *pol, size_t n)
{
    s_chunk_t *c = pol->arena;
    n = (n + 7) & ~(size_t)7;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        s_chunk_t *nc = malloc(sizeof *nc + cap);
        if (!nc) {
            return NULL;
        }
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        pol->arena = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static char *s_arena_str(eng_policy_t *pol, const char *s, size_t len)
{
    char *p = s_arena_alloc(pol, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void s_arena_free(eng_policy_t *pol)
{
    s_chunk_t *c = pol->arena;
    while (c) {
        s_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    pol->arena = NULL;
}

/* Compiler state ----------------------------------------------------------- */

typedef struct {
    char *path;     /* as opened (owned); diagnostics use it */
    char *dir;      /* directory its includes are relative to, "" or ending in '/' (owned) */
    char *src;      /* text (owned) */
    size_t len;     /* its length */
    eng_ast_t *ast; /* parsed */
    dev_t dev;      /* identity, for include-once and cycles */
    ino_t ino;      /* identity */
    bool has_id;    /* dev/ino valid (false for in-memory text) */
} s_file_t;

typedef struct {
    uint32_t file; /* index in files[] */
    uint32_t stmt; /* index in that file's AST */
} s_sref_t;

/* A model pattern with where it was written, for "matches nothing" warnings. */
typedef struct {
    const char *pat; /* arena string */
    uint32_t len;    /* its length */
    uint32_t file;   /* where */
    eng_span_t span; /* the string token */
} s_pat_t;

typedef struct {
    s_pat_t *v;   /* patterns */
    uint32_t n;   /* used */
    uint32_t cap; /* allocated */
} s_pats_t;

/* A group's or a rule's allow_providers / deny_providers patterns. */
typedef struct {
    s_pats_t allow; /* only endpoints of these providers (empty = any) */
    s_pats_t deny;  /* never endpoints of these */
} s_provs_t;

typedef struct {
    uint32_t file;   /* where a tier/group/rule was defined */
    eng_span_t name; /* its name token */
} s_def_t;

typedef struct {
    eng_policy_t *pol;       /* being built */
    eng_diags_t *diags;      /* sink, may be NULL */
    unsigned flags;          /* ENG_POLICY_* */
    uint32_t nerrors;        /* errors reported by this compile */
    bool stopped;            /* past ENG_MAX_ERRORS: nothing more is checked or reported */
    bool oom;                /* an allocation failed */
    eng_source_fn on_source; /* sees each file's bytes as read, may be NULL */
    void *source_ctx;        /* its argument */

    s_file_t *files;                           /* every file loaded */
    uint32_t nfiles;                           /* count */
    uint32_t cap_files;                        /* allocated */
    uint32_t stack[ENG_MAX_INCLUDE_DEPTH + 1]; /* include chain (file indexes) */
    int depth;                                 /* used entries of stack */
    s_sref_t *stmts;                           /* statements in include-expanded order */
    uint32_t nstmts;                           /* count */
    uint32_t cap_stmts;                        /* allocated */

    uint32_t cap_nodes, cap_strs, cap_regexes, cap_hints, cap_needle_sets; /* allocated */
    uint32_t cap_rules; /* rules[] size, from the statement count */
    eng_scan_t *scan;   /* the text patterns queued so far (pol->scan once built) */

    s_pats_t prefer;                     /* settings prefer */
    s_pats_t providers;                  /* settings providers */
    s_pats_t tier_models[ENG_MAX_TIERS]; /* explicit tier members */
    s_def_t tier_defs[ENG_MAX_TIERS];    /* tier locations */
    s_pats_t *group_models;              /* per group */
    s_def_t *group_defs;                 /* group locations */
    s_def_t word_defs[ENG_MAX_WORDS];    /* where each hint word was first written */
    uint32_t suggests;                   /* "did you mean" searches done (bounded) */
    s_provs_t *group_provs;              /* per group */
    s_provs_t *rule_provs;               /* per rule */
    s_pats_t *rule_prefer;               /* per rule */
    bool *rule_ff_set;                   /* per rule: free_fallback written */
    s_def_t *rule_defs;                  /* rule locations */
} s_comp_t;

/* Diagnostics ---------------------------------------------------------- */

/* Past ENG_MAX_ERRORS errors (the parser's included) one more error says so
 * and the compile stops reporting; the passes check `stopped` and end early. */
static void s_vdiag(s_comp_t *c, eng_diag_severity_t sev, uint32_t fi, eng_span_t at,
                    const char *fmt, va_list ap)
{
    if (c->stopped) {
        return;
    }
    const s_file_t *f = fi < c->nfiles ? &c->files[fi] : NULL;
    if (sev == ENG_DIAG_ERROR && c->nerrors >= ENG_MAX_ERRORS) {
        c->stopped = true;
        c->nerrors++;
        eng_diags_add(c->diags, ENG_DIAG_ERROR, f ? f->path : NULL, f ? f->src : NULL,
                      f ? f->len : 0, at.off, at.len,
                      "too many errors (more than %d); the rest of the policy is not checked",
                      ENG_MAX_ERRORS);
        return;
    }
    if (sev == ENG_DIAG_ERROR) {
        c->nerrors++;
    }
    eng_diags_vadd(c->diags, sev, f ? f->path : NULL, f ? f->src : NULL, f ? f->len : 0, at.off,
                   at.len, fmt, ap);
}

static void s_err(s_comp_t *c, uint32_t fi, eng_span_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_warn(s_comp_t *c, uint32_t fi, eng_span_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_err(s_comp_t *c, uint32_t fi, eng_span_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vdiag(c, ENG_DIAG_ERROR, fi, at, fmt, ap);
    va_end(ap);
}

static void s_warn(s_comp_t *c, uint32_t fi, eng_span_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vdiag(c, ENG_DIAG_WARNING, fi, at, fmt, ap);
    va_end(ap);
}

/* An error with no location (I/O on the top file, out of memory). */
static void s_err_noloc(s_comp_t *c, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err_noloc(s_comp_t *c, const char *file, const char *fmt, ...)
{
    c->nerrors++;
    va_list ap;
    va_start(ap, fmt);
    eng_diags_vadd(c->diags, ENG_DIAG_ERROR, file, NULL, 0, 0, 0, fmt, ap);
    va_end(ap);
}

/* Starts a "did you mean" search for word[0..len), or returns false when
 * enough were done: past the diagnostics anyone reads, a search over a
 * large catalog per warning would only cost time on a hostile policy. */
static bool s_suggest_begin(s_comp_t *c, eng_suggest_t *sg, const char *word, size_t len)
{
    eng_suggest_init(sg, word, len);
    return c->suggests++ < ENG_MAX_DIAGS;
}

/* eng_grow, with the first capacity of this module's arrays; out of memory is noted. */
static bool s_grow(s_comp_t *c, void **arr, uint32_t n, uint32_t *cap, size_t size)
{
    if (eng_grow(arr, n, cap, size, 8)) {
        return true;
    }
    c->oom = true;
    return false;
}

static eng_span_t s_tspan(const eng_token_t *t)
{
    eng_span_t s = {t->start, t->end - t->start};
    return s;
}

/* Token helpers ---------------------------------------------------------- */

static const eng_ast_t *s_ast(const s_comp_t *c, uint32_t fi)
{
    return c->files[fi].ast;
}

/* Text of a name token: identifier as is, string unescaped. Arena copy. */
static const char *s_name_str(s_comp_t *c, uint32_t fi, eng_span_t sp)
{
    const char *src = c->files[fi].src;
    if (sp.len >= 2 && src[sp.off] == '"') {
        eng_token_t t = {ENG_TOK_STRING, sp.off, sp.off + sp.len};
        char buf[256];
        size_t n = eng_lex_string(src, &t, buf, sizeof buf);
        if (n >= sizeof buf) {
            n = sizeof buf - 1;
        }
        return s_arena_str(c->pol, buf, n);
    }
    return s_arena_str(c->pol, src + sp.off, sp.len);
}

static bool s_tok_is(const s_comp_t *c, uint32_t fi, const eng_token_t *t, const char *w)
{
    size_t n = strlen(w);
    return t->kind == ENG_TOK_IDENT && t->end - t->start == n &&
           memcmp(c->files[fi].src + t->start, w, n) == 0;
}

/* The value tokens of a property. */
static const eng_token_t *s_vals(const s_comp_t *c, uint32_t fi, const eng_prop_t *pr)
{
    return &s_ast(c, fi)->values[pr->first];
}

static bool s_push_pat(s_comp_t *c, s_pats_t *ps, uint32_t fi, const eng_token_t *t)
{
    if (!s_grow(c, (void **)&ps->v, ps->n, &ps->cap, sizeof *ps->v)) {
        return false;
    }
    const char *s = s_name_str(c, fi, s_tspan(t));
    if (!s) {
        c->oom = true;
        return false;
    }
    if (*s == '\0') {
        s_err(c, fi, s_tspan(t), "empty model pattern");
        return false;
    }
    s_pat_t *p = &ps->v[ps->n++];
    p->pat = s;
    p->len = (uint32_t)strlen(s);
    p->file = fi;
    p->span = s_tspan(t);
    return true;
}

static bool s_push_pats(s_comp_t *c, s_pats_t *ps, uint32_t fi, const eng_prop_t *pr)
{
    const eng_token_t *v = s_vals(c, fi, pr);
    for (uint32_t i = 0; i < pr->count; i++) {
        if (!s_push_pat(c, ps, fi, &v[i])) {
            return false;
        }
    }
    return true;
}

static void s_pats_free(s_pats_t *ps)
{
    free(ps->v);
    ps->v = NULL;
    ps->n = ps->cap = 0;
}

/* A number property: value in *out. Token suffixes are allowed. */
static bool s_number(s_comp_t *c, uint32_t fi, const eng_token_t *t, double *out, int *money)
{
    if (eng_lex_number(c->files[fi].src, t, out, money) != 0) {
        s_err(c, fi, s_tspan(t), "number out of range");
        return false;
    }
    return true;
}

/* A whole token count in [lo, hi]. */
static bool s_count(s_comp_t *c, uint32_t fi, const eng_token_t *t, double lo, double hi,
                    int64_t *out)
{
    double v;
    int money;
    if (!s_number(c, fi, t, &v, &money)) {
        return false;
    }
    if (money) {
        s_err(c, fi, s_tspan(t), "expected a token count, not money");
        return false;
    }
    if (v != floor(v) || v < lo || v > hi) {
        s_err(c, fi, s_tspan(t), "expected a whole number from %.0f to %.0f", lo, hi);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* on/off words. */
static bool s_switch(s_comp_t *c, uint32_t fi, const eng_token_t *t, bool *out)
{
    static const char *const on[] = {"on", "yes", "true", NULL};
    static const char *const off[] = {"off", "no", "false", NULL};
    for (int i = 0; on[i]; i++) {
        if (s_tok_is(c, fi, t, on[i])) {
            *out = true;
            return true;
        }
        if (s_tok_is(c, fi, t, off[i])) {
            *out = false;
            return true;
        }
    }
    s_err(c, fi, s_tspan(t), "expected on or off");
    return false;
}

static bool s_step(s_comp_t *c, uint32_t fi, const eng_prop_t *pr, eng_step_t *out)
{
    const eng_token_t *v = s_vals(c, fi, pr);
    int dir[2] = {0, 0}; /* 1 up, 2 down, 3 none */
    for (uint32_t i = 0; i < pr->count; i++) {
        dir[i] = s_tok_is(c, fi, &v[i], "up")     ? 1
                 : s_tok_is(c, fi, &v[i], "down") ? 2
                 : s_tok_is(c, fi, &v[i], "none") ? 3
                                                  : 0;
        if (dir[i] == 0) {
            s_err(c, fi, s_tspan(&v[i]), "expected up, down or none");
            return false;
        }
    }
    if (pr->count == 1) {
        *out = dir[0] == 1 ? ENG_STEP_UP : dir[0] == 2 ? ENG_STEP_DOWN : ENG_STEP_NONE;
        return true;
    }
    if (dir[0] == 3 || dir[1] == 3 || dir[0] == dir[1]) {
        s_err(c, fi, s_tspan(&v[1]), "two step directions must be up and down, in either order");
        return false;
    }
    *out = dir[0] == 1 ? ENG_STEP_UP_DOWN : ENG_STEP_DOWN_UP;
    return true;
}

/* Reports duplicate properties in one statement. */
static void s_check_dups(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    const eng_ast_t *a = s_ast(c, fi);
    for (uint32_t i = 1; i < st->count; i++) {
        const eng_prop_t *pi = &a->props[st->first + i];
        for (uint32_t j = 0; j < i; j++) {
            const eng_prop_t *pj = &a->props[st->first + j];
            if (pi->id == pj->id) {
                int line, col;
                eng_lex_locate(a->src, a->len, pj->key.off, &line, &col, NULL);
                s_err(c, fi, pi->key, "duplicate property '%.*s' (first set at line %d)",
                      (int)pi->key.len, a->src + pi->key.off, line);
                break;
            }
        }
    }
}

/* Loading and includes ------------------------------------------------------ */

static int s_read_file(const char *path, char **out, size_t *len, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        fclose(f);
        return -1;
    }
    if ((uint64_t)st.st_size > ENG_LEX_MAX_SRC) {
        snprintf(why, whylen, "file larger than %u bytes", (unsigned)ENG_LEX_MAX_SRC);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        snprintf(why, whylen, "out of memory");
        fclose(f);
        return -1;
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

/* The directory part of a path, with its '/', or "" (owned). */
static char *s_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* Joins a directory ("" or ending in '/') and a name; absolute names stay. */
static char *s_join(const char *dir, const char *name)
{
    size_t dlen = name[0] == '/' ? 0 : strlen(dir);
    size_t nlen = strlen(name);
    char *p = malloc(dlen + nlen + 1);
    if (p) {
        memcpy(p, dir, dlen);
        memcpy(p + dlen, name, nlen + 1);
    }
    return p;
}

/* Takes ownership of path, dir and src. */
static int s_add_file(s_comp_t *c, char *path, char *dir, char *src, size_t len)
{
    if (!path || !dir || !src ||
        !s_grow(c, (void **)&c->files, c->nfiles, &c->cap_files, sizeof *c->files)) {
        c->oom = true;
        free(path);
        free(dir);
        free(src);
        return -1;
    }
    if (c->on_source) {
        c->on_source(c->source_ctx, path, src, len);
    }
    s_file_t *f = &c->files[c->nfiles];
    memset(f, 0, sizeof *f);
    f->path = path;
    f->dir = dir;
    f->src = src;
    f->len = len;
    struct stat st;
    if (c->flags & ENG_POLICY_NO_INCLUDES) {
        f->has_id = false;
    } else if (src && stat(path, &st) == 0) {
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->has_id = true;
    }
    return (int)c->nfiles++;
}

static void s_expand(s_comp_t *c, uint32_t fi);

static void s_include(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_span_t at = st->name;
    if (c->flags & ENG_POLICY_NO_INCLUDES) {
        s_err(c, fi, at, "include is not allowed here");
        return;
    }
    char name[1024];
    eng_token_t t = {ENG_TOK_STRING, at.off, at.off + at.len};
    size_t n = eng_lex_string(c->files[fi].src, &t, name, sizeof name);
    if (n == 0 || n >= sizeof name || memchr(name, '\0', n)) {
        s_err(c, fi, at, "bad include file name");
        return;
    }
    char *path = s_join(c->files[fi].dir, name);
    if (!path) {
        c->oom = true;
        return;
    }
    struct stat st_;
    if (stat(path, &st_) == 0) {
        /* Cycle: the file is on the include chain. */
        for (int d = 0; d < c->depth; d++) {
            const s_file_t *g = &c->files[c->stack[d]];
            if (g->has_id && g->dev == st_.st_dev && g->ino == st_.st_ino) {
                char chain[512] = "";
                size_t used = 0;
                for (int k = d; k < c->depth && used < sizeof chain; k++) {
                    used += (size_t)snprintf(chain + used, sizeof chain - used, "%s -> ",
                                             c->files[c->stack[k]].path);
                }
                s_err(c, fi, at, "include cycle: %s%s", chain, path);
                free(path);
                return;
            }
        }
        /* Included before (not a cycle): each file counts once. */
        for (uint32_t k = 0; k < c->nfiles; k++) {
            const s_file_t *g = &c->files[k];
            if (g->has_id && g->dev == st_.st_dev && g->ino == st_.st_ino) {
                free(path);
                return;
            }
        }
    }
    if (c->depth >= ENG_MAX_INCLUDE_DEPTH) {
        s_err(c, fi, at, "includes nested deeper than %d files", ENG_MAX_INCLUDE_DEPTH);
        free(path);
        return;
    }
    char *src = NULL;
    size_t len = 0;
    char why[128];
    if (s_read_file(path, &src, &len, why, sizeof why) != 0) {
        s_err(c, fi, at, "cannot include '%s': %s", path, why);
        free(path);
        return;
    }
    int nf = s_add_file(c, path, s_dirname(path), src, len);
    if (nf >= 0) {
        s_expand(c, (uint32_t)nf);
    }
}

/* Parses file fi and appends its statements, expanding includes in place. */
static void s_expand(s_comp_t *c, uint32_t fi)
{
    s_file_t *f = &c->files[fi];
    uint32_t left = c->nerrors < ENG_MAX_ERRORS ? ENG_MAX_ERRORS - c->nerrors : 0;
    f->ast = eng_parse_max(f->path, f->src, f->len, c->diags, left);
    if (!f->ast) {
        c->oom = true;
        return;
    }
    c->nerrors += f->ast->nerrors;
    c->stopped = c->stopped || f->ast->stopped;
    c->stack[c->depth++] = fi;
    uint32_t nst = c->files[fi].ast->nstmts;
    for (uint32_t i = 0; i < nst && !c->oom && !c->stopped; i++) {
        const eng_stmt_t *st = &c->files[fi].ast->stmts[i];
        if (st->kind == ENG_ST_INCLUDE) {
            eng_stmt_t copy = *st; /* files[] may move while including */
            s_include(c, fi, &copy);
            continue;
        }
        if (!s_grow(c, (void **)&c->stmts, c->nstmts, &c->cap_stmts, sizeof *c->stmts)) {
            break;
        }
        c->stmts[c->nstmts].file = fi;
        c->stmts[c->nstmts].stmt = i;
        c->nstmts++;
    }
    c->depth--;
}

static const eng_stmt_t *s_stmt(const s_comp_t *c, uint32_t i, uint32_t *fi)
{
    *fi = c->stmts[i].file;
    return &c->files[*fi].ast->stmts[c->stmts[i].stmt];
}

/* Settings --------------------------------------------------------------- */

/* A duration in seconds, from 1 ms to a day, as milliseconds. */
static void s_seconds(s_comp_t *c, uint32_t fi, const eng_token_t *t, int64_t *ms)
{
    double v;
    int money;
    if (!s_number(c, fi, t, &v, &money)) {
        return;
    }
    if (money || !(v >= 0.001 && v <= 86400)) {
        s_err(c, fi, s_tspan(t), "expected seconds from 0.001 to 86400");
        return;
    }
    *ms = (int64_t)llround(v * 1000);
}

/* The endpoint health settings (eng_health.h); true when `pr` was one. */
static bool s_health_setting(s_comp_t *c, uint32_t fi, const eng_prop_t *pr, const eng_token_t *v)
{
    eng_health_cfg_t *h = &c->pol->health_cfg;
    int64_t n = 0;
    switch (pr->id) {
    case ENG_P_COOLDOWN_FAILS:
        if (s_count(c, fi, &v[0], 1, 1000, &n)) {
            h->allowed_fails = (uint32_t)n;
        }
        return true;
    case ENG_P_COOLDOWN:
        s_seconds(c, fi, &v[0], &h->cooldown_ms);
        return true;
    case ENG_P_COOLDOWN_MAX:
        s_seconds(c, fi, &v[0], &h->cooldown_max_ms);
        return true;
    case ENG_P_HEALTH_WINDOW:
        s_seconds(c, fi, &v[0], &h->window_ms);
        return true;
    default:
        return false;
    }
}

/* A rule's `sort`: price, latency or throughput. */
static void s_rule_sort(s_comp_t *c, uint32_t fi, const eng_token_t *t, hpp_sort_t *out)
{
    static const struct {
        const char *w;
        hpp_sort_t sort;
    } sorts[] = {{"price", HPP_SORT_PRICE},
                 {"latency", HPP_SORT_LATENCY},
                 {"throughput", HPP_SORT_THROUGHPUT}};
    for (size_t i = 0; i < sizeof sorts / sizeof sorts[0]; i++) {
        if (s_tok_is(c, fi, t, sorts[i].w)) {
            *out = sorts[i].sort;
            return;
        }
    }
    s_err(c, fi, s_tspan(t), "unknown sort (expected one of: price, latency, throughput)");
}

static void s_settings(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_policy_t *pol = c->pol;
    const eng_ast_t *a = s_ast(c, fi);
    s_check_dups(c, fi, st);
    for (uint32_t i = 0; i < st->count; i++) {
        const eng_prop_t *pr = &a->props[st->first + i];
        const eng_token_t *v = s_vals(c, fi, pr);
        switch (pr->id) {
        case ENG_P_DEFAULT_OUTPUT:
            s_count(c, fi, &v[0], 1, (double)HPP_MAX_TOKENS, &pol->default_output);
            break;
        case ENG_P_STEP:
            s_step(c, fi, pr, &pol->step);
            break;
        case ENG_P_FREE_FALLBACK:
            s_switch(c, fi, &v[0], &pol->free_fallback);
            break;
        case ENG_P_PREFER:
            c->prefer.n = 0; /* a later settings block replaces the list */
            s_push_pats(c, &c->prefer, fi, pr);
            break;
        case ENG_P_PROVIDERS:
            c->providers.n = 0;
            s_push_pats(c, &c->providers, fi, pr);
            break;
        default:
            s_health_setting(c, fi, pr, v);
            break;
        }
    }
}

/* Tiers ------------------------------------------------------------------ */

static int s_find_tier(const eng_policy_t *pol, const char *name)
{
    for (int t = 0; t < pol->ntiers; t++) {
        if (strcmp(pol->tiers[t].name, name) == 0) {
            return t;
        }
    }
    return -1;
}

static void s_tier_list(const eng_policy_t *pol, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int t = 0; t < pol->ntiers && used < n; t++) {
        used += (size_t)snprintf(buf + used, n - used, "%s%s", t ? ", " : "", pol->tiers[t].name);
    }
}

static void s_tier(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_policy_t *pol = c->pol;
    const char *name = s_name_str(c, fi, st->name);
    if (!name) {
        c->oom = true;
        return;
    }
    int prev = s_find_tier(pol, name);
    if (prev >= 0) {
        const s_def_t *d = &c->tier_defs[prev];
        int line, col;
        eng_lex_locate(c->files[d->file].src, c->files[d->file].len, d->name.off, &line, &col,
                       NULL);
        s_err(c, fi, st->name, "tier '%s' is already defined (at %s:%d)", name,
              c->files[d->file].path, line);
        return;
    }
    if (pol->ntiers >= ENG_MAX_TIERS) {
        s_err(c, fi, st->name, "too many tiers (at most %d)", ENG_MAX_TIERS);
        return;
    }
    int t = pol->ntiers++;
    eng_ptier_t *tier = &pol->tiers[t];
    tier->name = name;
    tier->max = -1;
    tier->has_band = true;
    c->tier_defs[t].file = fi;
    c->tier_defs[t].name = st->name;
    s_check_dups(c, fi, st);
    const eng_ast_t *a = s_ast(c, fi);
    bool has_max = false, has_models = false;
    for (uint32_t i = 0; i < st->count; i++) {
        const eng_prop_t *pr = &a->props[st->first + i];
        const eng_token_t *v = s_vals(c, fi, pr);
        if (pr->id == ENG_P_MAX) {
            double usd;
            int money;
            if (!s_number(c, fi, &v[0], &usd, &money)) {
                continue;
            }
            if (!money) {
                /* Reported, then read as written with '$' so that the band
                 * checks below do not add follow-on errors. */
                s_err(c, fi, s_tspan(&v[0]), "tier max is money in USD per 1M tokens: write $%.*s",
                      (int)(v[0].end - v[0].start), c->files[fi].src + v[0].start);
            }
            if (usd < 0 || usd > 1e6) {
                s_err(c, fi, s_tspan(&v[0]), "tier max must be from $0 to $1000000 per 1M tokens");
                continue;
            }
            /* USD per 1M tokens == micro-USD per token == picodollars per token x 1e-6. */
            tier->max = (hpp_pusd_t)llround(usd * 1e6);
            has_max = true;
        } else if (pr->id == ENG_P_MODELS) {
            has_models = true;
            s_push_pats(c, &c->tier_models[t], fi, pr);
        }
    }
    /* "tier x models ..." without max holds only its listed models. */
    tier->has_band = has_max || !has_models;
    tier->is_free = has_max && tier->max == 0;
    /* Bands must rise: each band starts above the previous band's max. */
    for (int p = t - 1; p >= 0 && tier->has_band; p--) {
        const eng_ptier_t *pt = &pol->tiers[p];
        if (!pt->has_band) {
            continue;
        }
        if (pt->max < 0) {
            s_err(c, fi, st->name,
                  "tier '%s' comes after tier '%s', which has no max and takes every price above "
                  "the tiers before it",
                  name, pt->name);
        } else if (tier->max >= 0 && tier->max <= pt->max) {
            char a1[32], a2[32];
            hpp_pusd_format(tier->max, true, a1, sizeof a1);
            hpp_pusd_format(pt->max, true, a2, sizeof a2);
            s_err(c, fi, st->name,
                  "tier '%s' max $%s is not above tier '%s' max $%s (tiers go cheapest first)",
                  name, a1, pt->name, a2);
        }
        break;
    }
}

/* Groups ------------------------------------------------------------------ */

static int s_find_group(const eng_policy_t *pol, const char *name, size_t len)
{
    for (int g = 0; g < pol->ngroups; g++) {
        if (strlen(pol->groups[g].name) == len && memcmp(pol->groups[g].name, name, len) == 0) {
            return g;
        }
    }
    return -1;
}

/* step_down $AMOUNT TIER, ...: amounts in USD, each below the one before,
 * tiers defined (before the group) and never dearer than the one before. */
static void s_step_down(s_comp_t *c, uint32_t fi, const eng_prop_t *pr, eng_pgroup_t *grp)
{
    const eng_token_t *v = s_vals(c, fi, pr);
    if (pr->count % 2 != 0) {
        s_err(c, fi, s_tspan(&v[pr->count - 1]),
              "step_down takes pairs: an amount then a tier (\"$5 mid, $0.50 free\")");
        return;
    }
    if (pr->count / 2 > ENG_MAX_STEP_DOWN) {
        s_err(c, fi, s_tspan(&v[0]), "step_down: at most %d thresholds", ENG_MAX_STEP_DOWN);
        return;
    }
    for (uint32_t i = 0; i + 1 < pr->count; i += 2) {
        double usd;
        int money;
        if (v[i].kind != ENG_TOK_NUMBER || v[i + 1].kind != ENG_TOK_IDENT) {
            s_err(c, fi, s_tspan(&v[i]),
                  "step_down takes pairs: an amount then a tier (\"$5 mid, $0.50 free\")");
            return;
        }
        if (!s_number(c, fi, &v[i], &usd, &money)) {
            return;
        }
        hpp_pusd_t pd = 0;
        if (!money || hpp_pusd_from_double(usd, 12, &pd) != 0 || pd <= 0) {
            s_err(c, fi, s_tspan(&v[i]), "step_down: expected an amount of USD above 0 ($5)");
            return;
        }
        char tn[64];
        snprintf(tn, sizeof tn, "%.*s", (int)(v[i + 1].end - v[i + 1].start),
                 c->files[fi].src + v[i + 1].start);
        int t = s_find_tier(c->pol, tn);
        if (t < 0) {
            s_err(c, fi, s_tspan(&v[i + 1]), "step_down: unknown tier '%s' (define it first)", tn);
            return;
        }
        if (grp->nsteps > 0 &&
            (pd >= grp->steps[grp->nsteps - 1].below || t > grp->steps[grp->nsteps - 1].tier)) {
            s_err(c, fi, s_tspan(&v[i]),
                  "step_down: each amount must be below the one before, and its tier no dearer");
            return;
        }
        grp->steps[grp->nsteps].below = pd;
        grp->steps[grp->nsteps].tier = t;
        grp->nsteps++;
    }
}

static void s_group(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_policy_t *pol = c->pol;
    const char *name = s_name_str(c, fi, st->name);
    if (!name) {
        c->oom = true;
        return;
    }
    if (s_find_group(pol, name, strlen(name)) >= 0) {
        s_err(c, fi, st->name, "group '%s' is already defined", name);
        return;
    }
    if (pol->ngroups >= ENG_MAX_GROUPS) {
        s_err(c, fi, st->name, "too many groups (at most %d)", ENG_MAX_GROUPS);
        return;
    }
    int g = pol->ngroups++;
    eng_pgroup_t *grp = &pol->groups[g];
    grp->name = name;
    grp->permille = 1000;
    c->group_defs[g].file = fi;
    c->group_defs[g].name = st->name;
    s_check_dups(c, fi, st);
    const eng_ast_t *a = s_ast(c, fi);
    bool has_models = false;
    for (uint32_t i = 0; i < st->count; i++) {
        const eng_prop_t *pr = &a->props[st->first + i];
        const eng_token_t *v = s_vals(c, fi, pr);
        if (pr->id == ENG_P_MULTIPLIER) {
            double m;
            int money;
            if (!s_number(c, fi, &v[0], &m, &money)) {
                continue;
            }
            double pm = m * 1000.0;
            if (money || m <= 0 || m > 1000 || fabs(pm - round(pm)) > 1e-6) {
                s_err(c, fi, s_tspan(&v[0]),
                      "multiplier must be a factor above 0 and at most 1000 with up to 3 decimals");
                continue;
            }
            grp->permille = (uint32_t)llround(pm);
        } else if (pr->id == ENG_P_MODELS) {
            has_models = true;
            s_push_pats(c, &c->group_models[g], fi, pr);
        } else if (pr->id == ENG_P_MIN_CONTEXT) {
            int64_t n = 0;
            if (s_count(c, fi, &v[0], 1, (double)UINT32_MAX, &n)) {
                grp->min_context = (uint32_t)n;
            }
        } else if (pr->id == ENG_P_ALLOW_PROVIDERS) {
            s_push_pats(c, &c->group_provs[g].allow, fi, pr);
        } else if (pr->id == ENG_P_DENY_PROVIDERS) {
            s_push_pats(c, &c->group_provs[g].deny, fi, pr);
        } else if (pr->id == ENG_P_STEP_DOWN) {
            s_step_down(c, fi, pr, grp);
        }
    }
    if (!has_models) {
        s_err(c, fi, st->name, "group '%s' lists no models (write models \"*\" for all)", name);
    }
}

/* Conditions ----------------------------------------------------------------- */

typedef enum { T_NUM, T_BOOL, T_SET, T_STR, T_TEXT } s_type_t;

typedef struct {
    const char *name;  /* as written */
    eng_field_t field; /* which */
    s_type_t type;     /* its type */
    const char *help;  /* for docs */
} s_fielddef_t;

static const s_fielddef_t s_fields[] = {
    {"prompt_tokens", ENG_F_PROMPT_TOKENS, T_NUM, "tokens in the prompt"},
    {"output_tokens", ENG_F_OUTPUT_TOKENS, T_NUM, "max_tokens, or the policy's default_output"},
    {"total_tokens", ENG_F_TOTAL_TOKENS, T_NUM, "prompt_tokens + output_tokens"},
    {"cache_read_tokens", ENG_F_CACHE_READ, T_NUM, "prompt tokens served from a cache"},
    {"images", ENG_F_IMAGES, T_NUM, "input images"},
    {"budget", ENG_F_BUDGET, T_NUM, "budget in USD (infinite when absent)"},
    {"text_length", ENG_F_TEXT_LENGTH, T_NUM, "bytes of the text sample"},
    {"tools", ENG_F_TOOLS, T_BOOL, "the request needs tool calling"},
    {"json", ENG_F_JSON, T_BOOL, "the request needs JSON output"},
    {"vision", ENG_F_VISION, T_BOOL, "the request has images or asks for vision"},
    {"has_budget", ENG_F_HAS_BUDGET, T_BOOL, "the request gives a budget"},
    {"hints", ENG_F_HINTS, T_SET, "task hints: the request's plus those hint rules added"},
    {"group", ENG_F_GROUP, T_STR, "the caller's key group (\"default\" when absent)"},
    {"text", ENG_F_TEXT, T_TEXT, "the prompt text sample"},
    {"meta", ENG_F_META, T_STR, "meta.KEY: a metadata value (\"\" when absent)"},
    {"score", ENG_F_SCORE, T_NUM, "score.NAME: scorer NAME's score of the text sample, 0 to 1"},
    {NULL, 0, 0, NULL},
};

static const char *const s_type_names[] = {
    [T_NUM] = "a number", [T_BOOL] = "a yes/no flag",   [T_SET] = "a set of words",
    [T_STR] = "a string", [T_TEXT] = "the text sample",
};

static const s_fielddef_t *s_field(const char *s, size_t len)
{
    for (const s_fielddef_t *f = s_fields; f->name; f++) {
        if (strlen(f->name) == len && memcmp(f->name, s, len) == 0) {
            return f;
        }
    }
    return NULL;
}

static int32_t s_cnode(s_comp_t *c, eng_cop_t op)
{
    eng_policy_t *pol = c->pol;
    if (!s_grow(c, (void **)&pol->nodes, pol->nnodes, &c->cap_nodes, sizeof *pol->nodes)) {
        return -1;
    }
    eng_cnode_t *n = &pol->nodes[pol->nnodes];
    memset(n, 0, sizeof *n);
    n->op = (uint8_t)op;
    n->a = n->b = n->key = -1;
    return (int32_t)pol->nnodes++;
}

/* Adds a string operand; lower-cases it when `fold`. Returns its index. */
static int32_t s_str(s_comp_t *c, const char *s, size_t len, bool fold)
{
    eng_policy_t *pol = c->pol;
    if (!s_grow(c, (void **)&pol->strs, pol->nstrs, &c->cap_strs, sizeof *pol->strs)) {
        return -1;
    }
    char *p = s_arena_str(pol, s, len);
    if (!p) {
        c->oom = true;
        return -1;
    }
    for (size_t i = 0; fold && i < len; i++) {
        if (p[i] >= 'A' && p[i] <= 'Z') {
            p[i] = (char)(p[i] - 'A' + 'a');
        }
    }
    pol->strs[pol->nstrs].ptr = p;
    pol->strs[pol->nstrs].len = (uint32_t)len;
    pol->strs[pol->nstrs].anchor = 0;
    return (int32_t)pol->nstrs++;
}

/* Unescaped text of a string node, into buf. Returns its length or -1 if too long. */
static int s_lit(const s_comp_t *c, uint32_t fi, const eng_xnode_t *x, char *buf, size_t n)
{
    eng_token_t t = {ENG_TOK_STRING, x->span.off, x->span.off + x->span.len};
    size_t len = eng_lex_string(c->files[fi].src, &t, buf, n);
    return len < n ? (int)len : -1;
}

/* The bit of a hint word, interning it (ASCII case-folded). -1 when full. */
static int s_word(s_comp_t *c, uint32_t fi, eng_span_t at, const char *w, size_t len)
{
    eng_policy_t *pol = c->pol;
    for (uint32_t i = 0; i < pol->nwords; i++) {
        if (pol->word_len[i] == len && strncasecmp(pol->words[i], w, len) == 0) {
            return (int)i;
        }
    }
    if (pol->nwords >= ENG_MAX_WORDS) {
        s_err(c, fi, at, "too many distinct hint words (at most %d)", ENG_MAX_WORDS);
        return -1;
    }
    char *p = s_arena_str(pol, w, len);
    if (!p) {
        c->oom = true;
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] >= 'A' && p[i] <= 'Z') {
            p[i] = (char)(p[i] - 'A' + 'a');
        }
    }
    pol->words[pol->nwords] = p;
    pol->word_len[pol->nwords] = (uint32_t)len;
    c->word_defs[pol->nwords].file = fi;
    c->word_defs[pol->nwords].name = at;
    return (int)pol->nwords++;
}

static const char *s_xkind_name(const eng_xnode_t *x)
{
    switch (x->kind) {
    case ENG_X_NUMBER:
        return "a number";
    case ENG_X_STRING:
        return "a string";
    case ENG_X_REGEX:
        return "a regex";
    case ENG_X_LIST:
        return "a list";
    case ENG_X_BOOL:
        return "true/false";
    default:
        return "a condition";
    }
}

/* Word mask of a hint operand: a string or a list of strings. 0 on error. */
static bool s_word_mask(s_comp_t *c, uint32_t fi, const eng_xnode_t *x, uint64_t *mask)
{
    const eng_ast_t *a = s_ast(c, fi);
    *mask = 0;
    int32_t item = x->kind == ENG_X_LIST ? x->a : (int32_t)(x - a->nodes);
    if (x->kind == ENG_X_LIST && item < 0) {
        s_err(c, fi, x->span, "empty list of hint words");
        return false;
    }
    for (; item >= 0; item = x->kind == ENG_X_LIST ? a->nodes[item].next : -1) {
        const eng_xnode_t *it = &a->nodes[item];
        char buf[256];
        int len = it->kind == ENG_X_STRING ? s_lit(c, fi, it, buf, sizeof buf) : -1;
        if (it->kind != ENG_X_STRING || len <= 0) {
            s_err(c, fi, it->span, "expected a hint word in quotes");
            return false;
        }
        int bit = s_word(c, fi, it->span, buf, (size_t)len);
        if (bit < 0) {
            return false;
        }
        *mask |= UINT64_C(1) << bit;
    }
    return true;
}

/* Adds the strings of a string/list operand; first and count receive them. */
static bool s_str_list(s_comp_t *c, uint32_t fi, const eng_xnode_t *x, bool fold, const char *what,
                       int32_t *first, int32_t *count)
{
    const eng_ast_t *a = s_ast(c, fi);
    *first = (int32_t)c->pol->nstrs;
    *count = 0;
    int32_t item = x->kind == ENG_X_LIST ? x->a : (int32_t)(x - a->nodes);
    if (x->kind == ENG_X_LIST && item < 0) {
        s_err(c, fi, x->span, "empty list");
        return false;
    }
    for (; item >= 0; item = x->kind == ENG_X_LIST ? a->nodes[item].next : -1) {
        const eng_xnode_t *it = &a->nodes[item];
        char buf[1024];
        int len = it->kind == ENG_X_STRING ? s_lit(c, fi, it, buf, sizeof buf) : -1;
        if (it->kind != ENG_X_STRING || len < 0) {
            s_err(c, fi, it->span, "expected %s", what);
            return false;
        }
        if (fold && len == 0) {
            s_err(c, fi, it->span, "empty text to look for (it would match every request)");
            return false;
        }
        if (s_str(c, buf, (size_t)len, fold) < 0) {
            return false;
        }
        (*count)++;
    }
    return true;
}

static int32_t s_regex(s_comp_t *c, uint32_t fi, const eng_xnode_t *x)
{
    eng_policy_t *pol = c->pol;
    const char *src = c->files[fi].src;
    uint32_t end = x->span.off + x->span.len;
    uint32_t close = end;
    while (close > x->span.off + 1 && src[close - 1] != '/') {
        close--;
    }
    close--; /* the closing '/' */
    int flags = 0;
    for (uint32_t i = close + 1; i < end; i++) {
        if (src[i] == 'i') {
            flags |= ENG_REGEX_ICASE;
        } else {
            eng_span_t at = {i, 1};
            s_err(c, fi, at, "unknown regex flag '%c' (the only flag is i)", src[i]);
            return -1;
        }
    }
    uint32_t start = x->span.off + 1;
    char why[128];
    int erroff = -1;
    /* Once the policy has an error it is only checked, never loaded: its regexes are only
     * checked (a NULL in pol->regexes keeps the indexes), and take no place in the scan, which
     * is not built. A policy compiled to be checked (ENG_POLICY_CHECK_ONLY) may still resolve,
     * so its regexes are compiled, without a DFA: the matcher answers the same without one. */
    bool rejected = c->nerrors > 0;
    bool check_only = rejected || (c->flags & ENG_POLICY_CHECK_ONLY);
    eng_regex_t *re = NULL;
    bool bad;
    if (rejected) {
        bad = eng_regex_check(src + start, close - start, flags, why, sizeof why, &erroff) != 0;
    } else {
        re = eng_regex_compile(src + start, close - start,
                               flags | (check_only ? ENG_REGEX_NO_DFA : 0), why, sizeof why,
                               &erroff);
        bad = re == NULL;
    }
    if (bad) {
        eng_span_t at = {start + (erroff > 0 ? (uint32_t)erroff : 0), 1};
        if (at.off >= close && close > start) {
            at.off = close - 1;
        }
        s_err(c, fi, at, "bad regex: %s", why);
        return -1;
    }
    if (!s_grow(c, (void **)&pol->regexes, pol->nregexes, &c->cap_regexes, sizeof *pol->regexes)) {
        eng_regex_destroy(&re);
        return -1;
    }
    if (!check_only && !c->scan) {
        c->scan = eng_scan_new();
    }
    if (!check_only && (!c->scan || eng_scan_add_regex(c->scan, pol->nregexes, re, src + start,
                                                       close - start, flags))) {
        eng_regex_destroy(&re);
        c->oom = true;
        return -1;
    }
    pol->regexes[pol->nregexes] = re;
    return (int32_t)pol->nregexes++;
}

/* How common a (lower-cased) byte is in prose, higher = more common: the
 * resolver searches text for each needle's rarest byte, so fewer positions
 * need a full comparison. */
static int s_commonness(unsigned char b)
{
    static const char letters[] = "zqxjkvbpygfwmucldrhsnioate"; /* rarest first */
    const char *p = b ? strchr(letters, b) : NULL;
    if (p) {
        return 10 + (int)(p - letters);
    }
    if (b == ' ') {
        return 40;
    }
    if (b == '.' || b == ',' || b == '\n') {
        return 20;
    }
    if (b >= '0' && b <= '9') {
        return 8;
    }
    return 5;
}

/* Offset of the needle's rarest byte, the one the resolver looks for first. */
static uint32_t s_anchor(const eng_pstr_t *nd)
{
    const unsigned char *p = (const unsigned char *)nd->ptr; /* lower-cased */
    uint32_t best = 0;
    for (uint32_t k = 1; k < nd->len; k++) {
        if (s_commonness(p[k]) < s_commonness(p[best])) {
            best = k;
        }
    }
    return best;
}

/* Index of needle `s` in the policy's needle table, adding it when new.
 * -1 when the table is full. */
static int32_t s_needle(eng_policy_t *pol, const eng_pstr_t *s)
{
    for (uint32_t i = 0; i < pol->nneedles; i++) {
        const eng_pstr_t *nd = &pol->needles[i];
        if (nd->len == s->len && memcmp(nd->ptr, s->ptr, s->len) == 0) {
            return (int32_t)i;
        }
    }
    if (pol->nneedles >= ENG_MAX_NEEDLES) {
        return -1;
    }
    eng_pstr_t *nd = &pol->needles[pol->nneedles];
    *nd = *s;
    nd->anchor = s_anchor(nd);
    return (int32_t)pol->nneedles++;
}

/* The needle set of a CONTAINS node whose texts are strs[first..first+count),
 * the items of operand x in order. Returns its index in needle_sets[], or -1
 * (an error at the first text beyond the policy's limit, or out of memory). */
static int32_t s_needle_set(s_comp_t *c, uint32_t fi, const eng_xnode_t *x, int32_t first,
                            int32_t count)
{
    eng_policy_t *pol = c->pol;
    if (!s_grow(c, (void **)&pol->needle_sets, pol->nneedle_sets, &c->cap_needle_sets,
                sizeof *pol->needle_sets)) {
        return -1;
    }
    uint64_t *set = pol->needle_sets[pol->nneedle_sets];
    memset(set, 0, sizeof pol->needle_sets[0]);
    const eng_ast_t *a = s_ast(c, fi);
    int32_t item = x->kind == ENG_X_LIST ? x->a : (int32_t)(x - a->nodes);
    for (int32_t i = 0; i < count; i++) {
        int32_t id = s_needle(pol, &pol->strs[first + i]);
        if (id < 0) {
            s_err(c, fi, a->nodes[item].span,
                  "too many distinct texts to look for with contains (at most %d per policy)",
                  ENG_MAX_NEEDLES);
            return -1;
        }
        set[id / 64] |= UINT64_C(1) << (id % 64);
        item = a->nodes[item].next;
    }
    return (int32_t)pol->nneedle_sets++;
}

/* The anchor table: for each byte value, the needles anchored on it (a
 * letter anchors its needles under both cases), in CSR form. */
static void s_anchor_table(eng_policy_t *pol)
{
    uint16_t count[256] = {0};
    for (uint32_t i = 0; i < pol->nneedles; i++) {
        unsigned char b = (unsigned char)pol->needles[i].ptr[pol->needles[i].anchor];
        count[b]++;
        if (b >= 'a' && b <= 'z') {
            count[b - 'a' + 'A']++;
        }
    }
    pol->anchor_off[0] = 0;
    for (int b = 0; b < 256; b++) {
        pol->anchor_off[b + 1] = (uint16_t)(pol->anchor_off[b] + count[b]);
    }
    uint16_t next[256];
    memcpy(next, pol->anchor_off, sizeof next);
    for (uint32_t i = 0; i < pol->nneedles; i++) {
        unsigned char b = (unsigned char)pol->needles[i].ptr[pol->needles[i].anchor];
        pol->anchor_ids[next[b]++] = (uint8_t)i;
        if (b >= 'a' && b <= 'z') {
            pol->anchor_ids[next[b - 'a' + 'A']++] = (uint8_t)i;
        }
    }
}

/* The one-pass scan of every regex and `contains` text (eng_scan.h). A policy whose patterns the
 * scanner cannot take at all still loads: the resolver answers them one by one. -1 only when out
 * of memory. */
static int s_build_scan(s_comp_t *c)
{
    eng_policy_t *pol = c->pol;
    if (c->flags & ENG_POLICY_CHECK_ONLY) {
        return 0;
    }
    if (pol->nneedles > 0 && !c->scan) {
        c->scan = eng_scan_new();
        if (!c->scan) {
            c->oom = true;
            return -1;
        }
    }
    for (uint32_t i = 0; i < pol->nneedles; i++) {
        if (eng_scan_add_literal(c->scan, i, pol->needles[i].ptr, pol->needles[i].len) != 0) {
            c->oom = true;
            return -1;
        }
    }
    if (c->scan && eng_scan_build(c->scan, 0) == 0) {
        pol->scan = c->scan;
        c->scan = NULL;
    }
    return 0;
}

static eng_op_t s_flip(eng_op_t op)
{
    switch (op) {
    case ENG_OP_LT:
        return ENG_OP_GT;
    case ENG_OP_LE:
        return ENG_OP_GE;
    case ENG_OP_GT:
        return ENG_OP_LT;
    case ENG_OP_GE:
        return ENG_OP_LE;
    default:
        return op;
    }
}

static const char *const s_op_names[ENG_OP_COUNT] = {
    [ENG_OP_LT] = "<",
    [ENG_OP_LE] = "<=",
    [ENG_OP_GT] = ">",
    [ENG_OP_GE] = ">=",
    [ENG_OP_EQ] = "==",
    [ENG_OP_NE] = "!=",
    [ENG_OP_MATCH] = "~",
    [ENG_OP_IN] = "in",
    [ENG_OP_HAS] = "has",
    [ENG_OP_HAS_ANY] = "has any",
    [ENG_OP_HAS_ALL] = "has all",
    [ENG_OP_CONTAINS] = "contains",
};

/* Resolves a NAME node to its field; reports unknown names. */
static const s_fielddef_t *s_name_field(s_comp_t *c, uint32_t fi, const eng_xnode_t *x)
{
    const char *src = c->files[fi].src;
    uint32_t len = 0;
    while (len < x->span.len && src[x->span.off + len] != '.' && src[x->span.off + len] != ' ' &&
           src[x->span.off + len] != '\t' && src[x->span.off + len] != '\n' &&
           src[x->span.off + len] != '#' && src[x->span.off + len] != '\r') {
        len++;
    }
    const s_fielddef_t *f = s_field(src + x->span.off, len);
    if (!f) {
        char list[400];
        size_t used = 0;
        for (const s_fielddef_t *d = s_fields; d->name && used < sizeof list; d++) {
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s%s", used ? ", " : "",
                                     d->name,
                                     d->field == ENG_F_META    ? ".KEY"
                                     : d->field == ENG_F_SCORE ? ".NAME"
                                                               : "");
        }
        eng_span_t at = {x->span.off, len};
        char dym[300];
        eng_suggest_t sg;
        eng_suggest_init(&sg, src + x->span.off, len);
        for (const s_fielddef_t *d = s_fields; d->name; d++) {
            eng_suggest_add(&sg, d->name, strlen(d->name));
        }
        s_err(c, fi, at, "unknown field '%.*s'%s (expected one of: %s)", (int)len,
              src + x->span.off, eng_suggest_text(&sg, dym, sizeof dym), list);
        return NULL;
    }
    if ((f->field == ENG_F_META || f->field == ENG_F_SCORE) && x->key.len == 0) {
        s_err(c, fi, x->span, "%s needs a key: %s", f->name,
              f->field == ENG_F_META ? "meta.KEY" : "score.NAME");
        return NULL;
    }
    if (f->field != ENG_F_META && f->field != ENG_F_SCORE && x->key.len > 0) {
        s_err(c, fi, x->span, "'%s' has no keys (only meta.KEY does)", f->name);
        return NULL;
    }
    return f;
}

static int32_t s_type_error(s_comp_t *c, uint32_t fi, const eng_xnode_t *t, const s_fielddef_t *f,
                            const eng_xnode_t *rhs, const char *hint)
{
    s_err(c, fi, t->span, "type mismatch: %s is %s; '%s' %s %s is not allowed%s%s", f->name,
          s_type_names[f->type], f->name, s_op_names[t->op], s_xkind_name(rhs), hint ? "; " : "",
          hint ? hint : "");
    return -1;
}

static int32_t s_cond(s_comp_t *c, uint32_t fi, int32_t xi);

/* Scorers -------------------------------------------------------------------- */

/* scorer NAME file "PATH": loads the model, PATH relative to the file. */
static void s_scorer(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_policy_t *pol = c->pol;
    const char *name = s_name_str(c, fi, st->name);
    if (!name) {
        c->oom = true;
        return;
    }
    if (c->flags & ENG_POLICY_NO_INCLUDES) {
        s_err(c, fi, st->kw, "scorer is not allowed here (it reads a file)");
        return;
    }
    for (uint32_t i = 0; i < pol->nscorers; i++) {
        if (strcmp(pol->scorer_names[i], name) == 0) {
            s_err(c, fi, st->name, "scorer '%s' is already defined", name);
            return;
        }
    }
    if (pol->nscorers >= ENG_MAX_SCORERS) {
        s_err(c, fi, st->name, "too many scorers (at most %d)", ENG_MAX_SCORERS);
        return;
    }
    s_check_dups(c, fi, st);
    const eng_ast_t *a = s_ast(c, fi);
    const eng_token_t *file = NULL;
    for (uint32_t i = 0; i < st->count; i++) {
        const eng_prop_t *pr = &a->props[st->first + i];
        if (pr->id == ENG_P_FILE) {
            file = s_vals(c, fi, pr);
        }
    }
    if (!file) {
        s_err(c, fi, st->name, "scorer '%s' needs its model: file \"NAME.model\"", name);
        return;
    }
    char rel[1024];
    size_t n = eng_lex_string(c->files[fi].src, file, rel, sizeof rel);
    if (n == 0 || n >= sizeof rel || memchr(rel, '\0', n)) {
        s_err(c, fi, s_tspan(file), "bad scorer file name");
        return;
    }
    char *path = rel[0] == '/' ? strdup(rel) : s_join(c->files[fi].dir, rel);
    char knob[300];
    snprintf(knob, sizeof knob, "threshold.%s", name);
    const char *kn = s_arena_str(pol, knob, strlen(knob));
    if (!path || !kn) {
        free(path);
        c->oom = true;
        return;
    }
    eng_error_t err;
    memset(&err, 0, sizeof err);
    eng_scorer_t *sc = eng_scorer_load_observed(path, &err, c->on_source, c->source_ctx);
    if (!sc) {
        char why[768];
        eng_error_format(&err, why, sizeof why);
        s_err(c, fi, s_tspan(file), "cannot load scorer '%s': %s", name, why);
        free(path);
        return;
    }
    free(path);
    pol->scorers[pol->nscorers] = sc;
    pol->scorer_names[pol->nscorers] = name;
    pol->scorer_knobs[pol->nscorers] = kn;
    pol->nscorers++;
}

/* score.NAME OP number */
static int32_t s_score_test(s_comp_t *c, uint32_t fi, const eng_xnode_t *t, const eng_xnode_t *lhs,
                            const eng_xnode_t *rhs, eng_op_t op)
{
    if (op > ENG_OP_NE || rhs->kind != ENG_X_NUMBER) {
        s_err(c, fi, t->span, "compare score.%.*s with a number from 0 to 1 (e.g. > 0.5)",
              (int)lhs->key.len, c->files[fi].src + lhs->key.off);
        return -1;
    }
    const char *name = s_name_str(c, fi, lhs->key);
    if (!name) {
        c->oom = true;
        return -1;
    }
    int32_t k = -1;
    for (uint32_t i = 0; i < c->pol->nscorers && k < 0; i++) {
        if (strcmp(c->pol->scorer_names[i], name) == 0) {
            k = (int32_t)i;
        }
    }
    if (k < 0) {
        s_err(c, fi, lhs->key, "no scorer '%s' (define it first: scorer %s file \"%s.model\")",
              name, name, name);
        return -1;
    }
    eng_token_t tok = {ENG_TOK_NUMBER, rhs->span.off, rhs->span.off + rhs->span.len};
    double v;
    int money;
    if (!s_number(c, fi, &tok, &v, &money)) {
        return -1;
    }
    if (money || v < 0 || v > 1) {
        s_err(c, fi, rhs->span, "a score is from 0 to 1");
        return -1;
    }
    int32_t n = s_cnode(c, ENG_C_SCORE);
    if (n >= 0) {
        eng_cnode_t *cn = &c->pol->nodes[n];
        cn->field = ENG_F_SCORE;
        cn->cmp = (uint8_t)op;
        cn->a = k;
        cn->num = v;
    }
    return n;
}

/* field OP operand */
static int32_t s_test(s_comp_t *c, uint32_t fi, const eng_xnode_t *t)
{
    const eng_ast_t *a = s_ast(c, fi);
    const eng_xnode_t *lhs = &a->nodes[t->a];
    const eng_xnode_t *rhs = &a->nodes[t->b];
    eng_op_t op = (eng_op_t)t->op;
    /* "word" in hints */
    if (op == ENG_OP_IN && lhs->kind != ENG_X_NAME && rhs->kind == ENG_X_NAME) {
        const s_fielddef_t *f = s_name_field(c, fi, rhs);
        if (!f) {
            return -1;
        }
        uint64_t mask;
        if (f->type != T_SET) {
            s_err(c, fi, t->span, "type mismatch: '%s' is %s; use %s in [...] instead", f->name,
                  s_type_names[f->type], f->name);
            return -1;
        }
        if (!s_word_mask(c, fi, lhs, &mask)) {
            return -1;
        }
        int32_t n = s_cnode(c, ENG_C_HINT_ANY);
        if (n >= 0) {
            c->pol->nodes[n].mask = mask;
        }
        return n;
    }
    /* 1000 < prompt_tokens reads as prompt_tokens > 1000 */
    if (lhs->kind == ENG_X_NUMBER && rhs->kind == ENG_X_NAME && op <= ENG_OP_NE) {
        const eng_xnode_t *tmp = lhs;
        lhs = rhs;
        rhs = tmp;
        op = s_flip(op);
    }
    if (lhs->kind != ENG_X_NAME) {
        s_err(c, fi, lhs->span, "expected a field name on the left of '%s', got %s", s_op_names[op],
              s_xkind_name(lhs));
        return -1;
    }
    const s_fielddef_t *f = s_name_field(c, fi, lhs);
    if (!f) {
        return -1;
    }
    if (f->field == ENG_F_SCORE) {
        return s_score_test(c, fi, t, lhs, rhs, op);
    }
    int32_t n = -1;
    switch (f->type) {
    case T_NUM: {
        if (op > ENG_OP_NE || rhs->kind != ENG_X_NUMBER) {
            return s_type_error(c, fi, t, f, rhs, "compare it with a number (e.g. > 1000)");
        }
        eng_token_t tok = {ENG_TOK_NUMBER, rhs->span.off, rhs->span.off + rhs->span.len};
        double v;
        int money;
        if (!s_number(c, fi, &tok, &v, &money)) {
            return -1;
        }
        if (money && f->field != ENG_F_BUDGET) {
            s_err(c, fi, rhs->span, "'%.*s' is money but %s is not", (int)rhs->span.len,
                  c->files[fi].src + rhs->span.off, f->name);
            return -1;
        }
        if (!money && f->field == ENG_F_BUDGET) {
            s_err(c, fi, rhs->span, "budget is money in USD: write $%.*s", (int)rhs->span.len,
                  c->files[fi].src + rhs->span.off);
            return -1;
        }
        n = s_cnode(c, ENG_C_NUM);
        if (n >= 0) {
            c->pol->nodes[n].field = (uint8_t)f->field;
            c->pol->nodes[n].cmp = (uint8_t)op;
            c->pol->nodes[n].num = v;
        }
        return n;
    }
    case T_BOOL: {
        if ((op != ENG_OP_EQ && op != ENG_OP_NE) || rhs->kind != ENG_X_BOOL) {
            return s_type_error(c, fi, t, f, rhs, "write it alone or with 'not'");
        }
        n = s_cnode(c, ENG_C_BOOL);
        if (n < 0) {
            return -1;
        }
        c->pol->nodes[n].field = (uint8_t)f->field;
        if ((op == ENG_OP_EQ) != (rhs->op == 1)) {
            int32_t neg = s_cnode(c, ENG_C_NOT);
            if (neg >= 0) {
                c->pol->nodes[neg].a = n;
            }
            return neg;
        }
        return n;
    }
    case T_SET: {
        uint64_t mask;
        if (rhs->kind == ENG_X_NAME && op >= ENG_OP_HAS && op <= ENG_OP_HAS_ALL) {
            const char *src = c->files[fi].src;
            s_err(c, fi, rhs->span, "hint words are quoted: write %s \"%.*s\"",
                  op == ENG_OP_HAS       ? "has"
                  : op == ENG_OP_HAS_ALL ? "has all"
                                         : "has any",
                  (int)rhs->span.len, src + rhs->span.off);
            return -1;
        }
        if (op == ENG_OP_HAS && rhs->kind == ENG_X_STRING) {
            op = ENG_OP_HAS_ANY;
        } else if (op == ENG_OP_HAS) {
            return s_type_error(c, fi, t, f, rhs, "use has any [...] or has all [...]");
        }
        if (op != ENG_OP_HAS_ANY && op != ENG_OP_HAS_ALL) {
            return s_type_error(c, fi, t, f, rhs, "use hints has \"word\"");
        }
        if (rhs->kind != ENG_X_STRING && rhs->kind != ENG_X_LIST) {
            return s_type_error(c, fi, t, f, rhs, "name hint words in quotes");
        }
        if (!s_word_mask(c, fi, rhs, &mask)) {
            return -1;
        }
        n = s_cnode(c, op == ENG_OP_HAS_ALL ? ENG_C_HINT_ALL : ENG_C_HINT_ANY);
        if (n >= 0) {
            c->pol->nodes[n].mask = mask;
        }
        return n;
    }
    case T_STR: {
        bool list_ok = op == ENG_OP_IN && rhs->kind == ENG_X_LIST;
        bool one_ok = (op == ENG_OP_EQ || op == ENG_OP_NE) && rhs->kind == ENG_X_STRING;
        if (!list_ok && !one_ok) {
            return s_type_error(c, fi, t, f, rhs, "use == \"x\", != \"x\" or in [\"x\", \"y\"]");
        }
        int32_t first, count;
        if (!s_str_list(c, fi, rhs, false, "a string in quotes", &first, &count)) {
            return -1;
        }
        int32_t key = -1;
        if (f->field == ENG_F_META) {
            eng_span_t k = lhs->key;
            const char *ks = s_name_str(c, fi, k);
            key = ks ? s_str(c, ks, strlen(ks), false) : -1;
            if (key < 0) {
                return -1;
            }
        }
        n = s_cnode(c, op == ENG_OP_NE ? ENG_C_STR_NOT : ENG_C_STR_IN);
        if (n >= 0) {
            eng_cnode_t *cn = &c->pol->nodes[n];
            cn->field = (uint8_t)f->field;
            cn->a = first;
            cn->b = count;
            cn->key = key;
        }
        return n;
    }
    case T_TEXT:
        if (op == ENG_OP_MATCH && rhs->kind == ENG_X_REGEX) {
            int32_t re = s_regex(c, fi, rhs);
            if (re < 0) {
                return -1;
            }
            n = s_cnode(c, ENG_C_REGEX);
            if (n >= 0) {
                c->pol->nodes[n].a = re;
            }
            return n;
        }
        if (op == ENG_OP_CONTAINS && (rhs->kind == ENG_X_STRING || rhs->kind == ENG_X_LIST)) {
            int32_t first, count;
            if (!s_str_list(c, fi, rhs, true, "text to look for in quotes", &first, &count)) {
                return -1;
            }
            int32_t set = s_needle_set(c, fi, rhs, first, count);
            n = set >= 0 ? s_cnode(c, ENG_C_CONTAINS) : -1;
            if (n >= 0) {
                c->pol->nodes[n].a = first;
                c->pol->nodes[n].b = count;
                c->pol->nodes[n].key = set;
            }
            return n;
        }
        return s_type_error(c, fi, t, f, rhs, "use text ~ /regex/ or text contains \"words\"");
    }
    return -1;
}

static int32_t s_cond(s_comp_t *c, uint32_t fi, int32_t xi)
{
    const eng_ast_t *a = s_ast(c, fi);
    const eng_xnode_t *x = &a->nodes[xi];
    switch (x->kind) {
    case ENG_X_OR:
    case ENG_X_AND: {
        /* Both sides are compiled even after an error, to report both. */
        int32_t l = s_cond(c, fi, x->a);
        int32_t r = s_cond(c, fi, x->b);
        if (l < 0 || r < 0) {
            return -1;
        }
        int32_t n = s_cnode(c, x->kind == ENG_X_OR ? ENG_C_OR : ENG_C_AND);
        if (n >= 0) {
            c->pol->nodes[n].a = l;
            c->pol->nodes[n].b = r;
        }
        return n;
    }
    case ENG_X_NOT: {
        int32_t l = s_cond(c, fi, x->a);
        int32_t n = l >= 0 ? s_cnode(c, ENG_C_NOT) : -1;
        if (n >= 0) {
            c->pol->nodes[n].a = l;
        }
        return n;
    }
    case ENG_X_BOOL:
        return s_cnode(c, x->op ? ENG_C_TRUE : ENG_C_FALSE);
    case ENG_X_TEST:
        return s_test(c, fi, x);
    case ENG_X_NAME: {
        const s_fielddef_t *f = s_name_field(c, fi, x);
        if (!f) {
            return -1;
        }
        if (f->type != T_BOOL) {
            s_err(c, fi, x->span, "type mismatch: %s is %s, not a condition by itself", f->name,
                  s_type_names[f->type]);
            return -1;
        }
        int32_t n = s_cnode(c, ENG_C_BOOL);
        if (n >= 0) {
            c->pol->nodes[n].field = (uint8_t)f->field;
        }
        return n;
    }
    default:
        s_err(c, fi, x->span, "expected a condition, got %s", s_xkind_name(x));
        return -1;
    }
}

/* Constant value of a condition: 1 always true, 0 never, -1 depends. */
static int s_const(const eng_policy_t *pol, int32_t n)
{
    if (n < 0) {
        return 1; /* no condition */
    }
    const eng_cnode_t *x = &pol->nodes[n];
    switch (x->op) {
    case ENG_C_TRUE:
        return 1;
    case ENG_C_FALSE:
        return 0;
    case ENG_C_NOT: {
        int v = s_const(pol, x->a);
        return v < 0 ? -1 : !v;
    }
    case ENG_C_AND: {
        int l = s_const(pol, x->a), r = s_const(pol, x->b);
        return (l == 0 || r == 0) ? 0 : (l == 1 && r == 1) ? 1 : -1;
    }
    case ENG_C_OR: {
        int l = s_const(pol, x->a), r = s_const(pol, x->b);
        return (l == 1 || r == 1) ? 1 : (l == 0 && r == 0) ? 0 : -1;
    }
    default:
        return -1;
    }
}

/* Structural equality of two condition trees (regexes compare by identity). */
static bool s_same(const eng_policy_t *pol, int32_t p, int32_t q)
{
    if (p < 0 || q < 0) {
        return p == q;
    }
    const eng_cnode_t *x = &pol->nodes[p], *y = &pol->nodes[q];
    if (x->op != y->op || x->field != y->field || x->cmp != y->cmp || x->num != y->num ||
        x->mask != y->mask) {
        return false;
    }
    switch (x->op) {
    case ENG_C_OR:
    case ENG_C_AND:
        return s_same(pol, x->a, y->a) && s_same(pol, x->b, y->b);
    case ENG_C_NOT:
        return s_same(pol, x->a, y->a);
    case ENG_C_STR_IN:
    case ENG_C_STR_NOT:
    case ENG_C_CONTAINS:
        if (x->b != y->b) {
            return false;
        }
        /* meta.KEY: the keys must match too (CONTAINS keeps a needle set there). */
        if (x->op != ENG_C_CONTAINS && x->field == ENG_F_META &&
            (pol->strs[x->key].len != pol->strs[y->key].len ||
             memcmp(pol->strs[x->key].ptr, pol->strs[y->key].ptr, pol->strs[x->key].len) != 0)) {
            return false;
        }
        for (int32_t i = 0; i < x->b; i++) {
            const eng_pstr_t *s = &pol->strs[x->a + i], *t = &pol->strs[y->a + i];
            if (s->len != t->len || memcmp(s->ptr, t->ptr, s->len) != 0) {
                return false;
            }
        }
        return true;
    case ENG_C_REGEX:
        return x->a == y->a;
    default:
        return true;
    }
}

/* Hint and routing rules ------------------------------------------------------ */

static void s_hint(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_policy_t *pol = c->pol;
    const char *name = s_name_str(c, fi, st->name);
    if (!name) {
        c->oom = true;
        return;
    }
    if (*name == '\0') {
        s_err(c, fi, st->name, "empty hint word");
        return;
    }
    int bit = s_word(c, fi, st->name, name, strlen(name));
    int32_t cond = s_cond(c, fi, st->cond);
    if (bit < 0 || cond < 0) {
        return;
    }
    if (pol->nhints >= ENG_MAX_HINT_RULES) {
        s_err(c, fi, st->kw, "too many hint rules (at most %d)", ENG_MAX_HINT_RULES);
        return;
    }
    if (!s_grow(c, (void **)&pol->hints, pol->nhints, &c->cap_hints, sizeof *pol->hints)) {
        return;
    }
    eng_phint_t *h = &pol->hints[pol->nhints++];
    h->word = (uint32_t)bit;
    h->cond = cond;
    h->name = pol->words[bit];
}

static void s_rule_props(s_comp_t *c, uint32_t fi, const eng_stmt_t *st, eng_prule_t *r,
                         uint32_t ri)
{
    const eng_ast_t *a = s_ast(c, fi);
    bool has_tier = false;
    for (uint32_t i = 0; i < st->count; i++) {
        const eng_prop_t *pr = &a->props[st->first + i];
        const eng_token_t *v = s_vals(c, fi, pr);
        switch (pr->id) {
        case ENG_P_TIER: {
            has_tier = true;
            const char *tn = s_name_str(c, fi, s_tspan(&v[0]));
            if (!tn) {
                c->oom = true;
                return;
            }
            r->tier = s_find_tier(c->pol, tn);
            if (r->tier < 0) {
                char list[256], dym[300];
                s_tier_list(c->pol, list, sizeof list);
                eng_suggest_t sg;
                eng_suggest_init(&sg, tn, strlen(tn));
                for (int t = 0; t < c->pol->ntiers; t++) {
                    eng_suggest_add(&sg, c->pol->tiers[t].name, strlen(c->pol->tiers[t].name));
                }
                s_err(c, fi, s_tspan(&v[0]), "unknown tier '%s'%s (expected one of: %s)", tn,
                      eng_suggest_text(&sg, dym, sizeof dym),
                      c->pol->ntiers ? list : "none defined before this rule");
            }
            break;
        }
        case ENG_P_PREFER:
            s_push_pats(c, &c->rule_prefer[ri], fi, pr);
            break;
        case ENG_P_REQUIRE:
            for (uint32_t k = 0; k < pr->count; k++) {
                int found = -1;
                for (int q = 0; q < HPP_NCAPS; q++) {
                    if (s_tok_is(c, fi, &v[k], hpp_caps[q].name)) {
                        found = q;
                    }
                }
                if (found < 0) {
                    char dym[300];
                    eng_suggest_t sg;
                    eng_suggest_init(&sg, c->files[fi].src + v[k].start, v[k].end - v[k].start);
                    for (int q = 0; q < HPP_NCAPS; q++) {
                        eng_suggest_add(&sg, hpp_caps[q].name, strlen(hpp_caps[q].name));
                    }
                    s_err(c, fi, s_tspan(&v[k]),
                          "unknown capability '%.*s'%s (expected one of: vision, tools, json, "
                          "reasoning)",
                          (int)(v[k].end - v[k].start), c->files[fi].src + v[k].start,
                          eng_suggest_text(&sg, dym, sizeof dym));
                } else {
                    r->caps |= hpp_caps[found].bit;
                }
            }
            break;
        case ENG_P_OUTPUT:
            s_count(c, fi, &v[0], 1, (double)HPP_MAX_TOKENS, &r->output);
            break;
        case ENG_P_STEP:
            s_step(c, fi, pr, &r->step);
            break;
        case ENG_P_FREE_FALLBACK:
            s_switch(c, fi, &v[0], &r->free_fallback);
            break;
        case ENG_P_ALLOW_PROVIDERS:
            s_push_pats(c, &c->rule_provs[ri].allow, fi, pr);
            break;
        case ENG_P_DENY_PROVIDERS:
            s_push_pats(c, &c->rule_provs[ri].deny, fi, pr);
            break;
        case ENG_P_MIN_CONTEXT: {
            int64_t n = 0;
            if (s_count(c, fi, &v[0], 1, (double)UINT32_MAX, &n)) {
                r->min_context = (uint32_t)n;
            }
            break;
        }
        case ENG_P_SORT:
            s_rule_sort(c, fi, &v[0], &r->sort);
            break;
        default:
            break;
        }
    }
    if (!has_tier) {
        s_err(c, fi, st->name, "rule '%s' has no tier (add: tier NAME)", r->name);
    }
}

/* Rule-level step/free_fallback default to the settings: they are resolved
 * after every settings block is read, so these mark "not set". */
#define S_STEP_UNSET ((eng_step_t)-1)

static void s_route(s_comp_t *c, uint32_t fi, const eng_stmt_t *st)
{
    eng_policy_t *pol = c->pol;
    const char *name = s_name_str(c, fi, st->name);
    if (!name) {
        c->oom = true;
        return;
    }
    for (uint32_t i = 0; i < pol->nrules; i++) {
        if (strcmp(pol->rules[i].name, name) == 0) {
            s_err(c, fi, st->name, "rule '%s' is already defined", name);
            return;
        }
    }
    if (pol->nrules >= ENG_MAX_RULES) {
        s_err(c, fi, st->kw, "too many rules (at most %d)", ENG_MAX_RULES);
        return;
    }
    if (pol->nrules >= c->cap_rules) {
        return; /* cannot happen: sized from the statement count */
    }
    uint32_t ri = pol->nrules++;
    eng_prule_t *r = &pol->rules[ri];
    memset(r, 0, sizeof *r);
    memset(&c->rule_prefer[ri], 0, sizeof c->rule_prefer[ri]);
    memset(&c->rule_provs[ri], 0, sizeof c->rule_provs[ri]);
    r->name = name;
    r->tier = -1;
    r->output = -1;
    r->step = S_STEP_UNSET;
    r->free_fallback = false;
    r->cond = -1;
    c->rule_defs[ri].file = fi;
    c->rule_defs[ri].name = st->name;
    s_check_dups(c, fi, st);
    for (uint32_t i = 0; i < st->count; i++) {
        if (s_ast(c, fi)->props[st->first + i].id == ENG_P_FREE_FALLBACK) {
            c->rule_ff_set[ri] = true;
        }
    }
    if (st->cond >= 0) {
        r->cond = s_cond(c, fi, st->cond);
        if (r->cond < 0) {
            r->cond = -2; /* error already reported */
        }
    }
    s_rule_props(c, fi, st, r, ri);
}

/* Reachability warnings over the rule list. */
static void s_reachability(s_comp_t *c)
{
    const eng_policy_t *pol = c->pol;
    int32_t always = -1;
    for (uint32_t i = 0; i < pol->nrules; i++) {
        const eng_prule_t *r = &pol->rules[i];
        const s_def_t *d = &c->rule_defs[i];
        if (r->cond == -2) {
            continue;
        }
        if (always >= 0) {
            const s_def_t *ad = &c->rule_defs[always];
            int line, col;
            eng_lex_locate(c->files[ad->file].src, c->files[ad->file].len, ad->name.off, &line,
                           &col, NULL);
            s_warn(c, d->file, d->name,
                   "rule '%s' is unreachable: rule '%s' (%s:%d) matches every request", r->name,
                   pol->rules[always].name, c->files[ad->file].path, line);
            continue;
        }
        int k = s_const(pol, r->cond);
        if (k == 0) {
            s_warn(c, d->file, d->name, "rule '%s' never matches", r->name);
            continue;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (pol->rules[j].cond >= 0 && r->cond >= 0 &&
                s_same(pol, pol->rules[j].cond, r->cond)) {
                s_warn(c, d->file, d->name,
                       "rule '%s' is unreachable: rule '%s' has the same condition and comes first",
                       r->name, pol->rules[j].name);
                break;
            }
        }
        if (k == 1) {
            always = (int32_t)i;
        }
    }
    c->pol->catch_all = always;
    /* After errors some rules are missing: the catch-all may be one of them. */
    if (pol->nrules > 0 && always < 0 && c->nerrors == 0) {
        const s_def_t *d = &c->rule_defs[pol->nrules - 1];
        if (c->flags & ENG_POLICY_REQUIRE_CATCH_ALL) {
            s_err(c, d->file, d->name,
                  "no rule matches every request, but the serving policy has one: requests "
                  "that match none would fail with no_candidate (end with a rule without "
                  "'when'; a file cut short loses its last rules)");
        } else {
            s_warn(c, d->file, d->name,
                   "no rule matches every request: requests that match none fail with "
                   "no_candidate (end with a rule without 'when')");
        }
    }
}

/* Tables for the resolver ---------------------------------------------------- */

hpp_pusd_t eng_policy_blend(const hpp_price_t *price)
{
    hpp_pusd_t in = price->input == HPP_PRICE_NA ? 0 : price->input;
    hpp_pusd_t out = price->output == HPP_PRICE_NA ? 0 : price->output;
    hpp_pusd_t fee = price->per_request == HPP_PRICE_NA ? 0 : price->per_request;
    if (in < 0 || out < 0 || fee < 0 || in > INT64_MAX / 8 || out > INT64_MAX / 8) {
        return INT64_MAX / 2;
    }
    /* A per-call model is priced like the others: what the reference request
     * costs it, per token. Without this a $0.02 call would blend to $0 and
     * win every cheap tier. */
    hpp_pusd_t b = (3 * in + out) / 4;
    hpp_pusd_t f = fee / ENG_REF_REQUEST_TOKENS;
    return b > INT64_MAX / 2 - f ? INT64_MAX / 2 : b + f;
}

bool eng_glob_match(const char *pattern, size_t plen, const char *s, size_t len)
{
    size_t p = 0, i = 0, star = SIZE_MAX, mark = 0;
    while (i < len) {
        if (p < plen && pattern[p] == '*') {
            star = p++;
            mark = i;
        } else if (p < plen && pattern[p] == s[i]) {
            p++;
            i++;
        } else if (star != SIZE_MAX) {
            p = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (p < plen && pattern[p] == '*') {
        p++;
    }
    return p == plen;
}

static bool s_ep_free(const eng_endpoint_t *e)
{
    const hpp_price_t *p = &e->price;
    if (e->is_free) {
        return true;
    }
    const hpp_pusd_t parts[] = {p->input,       p->output,      p->cache_read,
                                p->cache_write, p->per_request, p->per_image};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i] != HPP_PRICE_NA && parts[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Rank of s among patterns (first match), or ps->n when none matches. */
static uint32_t s_rank(const s_pats_t *ps, const char *s, size_t len)
{
    for (uint32_t i = 0; i < ps->n; i++) {
        if (eng_glob_match(ps->v[i].pat, ps->v[i].len, s, len)) {
            return i;
        }
    }
    return ps->n;
}

/* The endpoint auto picks for model m: the first enabled one in provider
 * order, ties (and no order) by catalog order, which is cheapest first, so
 * without a provider order auto agrees with ID:floor. With `plain`, the
 * endpoint the model's plain id names: the same among the endpoints that
 * are not its `:free` variant (auto may call a model through its free
 * variant; a client naming the model asks for the paid endpoints). */
static int32_t s_pick_ep(const s_comp_t *c, const eng_model_t *m, bool plain)
{
    const eng_policy_t *pol = c->pol;
    int32_t best = -1;
    uint32_t best_rank = 0;
    for (uint32_t k = 0; k < m->ep_count; k++) {
        uint32_t e = m->ep_first + k;
        const eng_endpoint_t *ep = &pol->eps[e];
        if (!ep->enabled || (plain && ep->free_variant)) {
            continue;
        }
        uint32_t rank = s_rank(&c->providers, ep->provider, strlen(ep->provider));
        if (best < 0 || rank < best_rank) {
            best = (int32_t)e;
            best_rank = rank;
        }
    }
    return best;
}

/* The tier of model m called at endpoint e (-1: none), and its blended
 * price in *blend: the first tier whose `models` name it, else the band its
 * price falls in. */
static int s_model_tier(const s_comp_t *c, const eng_model_t *m, int32_t e, hpp_pusd_t *blend)
{
    const eng_policy_t *pol = c->pol;
    *blend = 0;
    if (e < 0) {
        return -1;
    }
    const eng_endpoint_t *ep = &pol->eps[e];
    hpp_pusd_t b = s_ep_free(ep) ? 0 : eng_policy_blend(&ep->price);
    if (b == 0 && !s_ep_free(ep)) {
        b = 1; /* fees only: not free, so not in a $0 band */
    }
    *blend = b;
    for (int t = 0; t < pol->ntiers; t++) {
        const s_pats_t *ps = &c->tier_models[t];
        if (ps->n && s_rank(ps, m->id, strlen(m->id)) < ps->n) {
            return t;
        }
    }
    for (int t = 0; t < pol->ntiers; t++) {
        const eng_ptier_t *pt = &pol->tiers[t];
        if (pt->has_band && (pt->max < 0 || b <= pt->max)) {
            return t;
        }
    }
    return -1;
}

/* The tier of model m at endpoint e for a prompt above the endpoint's
 * long_above, when its long-prompt prices put it in another price band than
 * `tier` (its tier at the usual prices); else ENG_LONG_SAME. A tier that
 * names the model keeps it whatever the prompt. */
static int s_model_long_tier(const s_comp_t *c, const eng_model_t *m, int32_t e, int tier,
                             hpp_pusd_t *blend)
{
    const eng_policy_t *pol = c->pol;
    if (e < 0 || pol->eps[e].long_above == 0 || s_ep_free(&pol->eps[e])) {
        return ENG_LONG_SAME;
    }
    for (int t = 0; t < pol->ntiers; t++) {
        const s_pats_t *ps = &c->tier_models[t];
        if (ps->n && s_rank(ps, m->id, strlen(m->id)) < ps->n) {
            return ENG_LONG_SAME;
        }
    }
    hpp_pusd_t b = eng_policy_blend(&pol->eps[e].long_price);
    *blend = b > 0 ? b : 1;
    for (int t = 0; t < pol->ntiers; t++) {
        const eng_ptier_t *pt = &pol->tiers[t];
        if (pt->has_band && (pt->max < 0 || *blend <= pt->max)) {
            return t == tier ? ENG_LONG_SAME : t;
        }
    }
    return tier == -1 ? ENG_LONG_SAME : -1;
}

/* Sort keys for candidate lists (qsort has no context argument). */
typedef struct {
    uint32_t model;   /* index */
    uint32_t rank;    /* preference rank, 0 first */
    hpp_pusd_t price; /* blended price */
} s_key_t;

static int s_key_cmp(const void *pa, const void *pb)
{
    const s_key_t *a = pa, *b = pb;
    if (a->rank != b->rank) {
        return a->rank < b->rank ? -1 : 1;
    }
    if (a->price != b->price) {
        return a->price < b->price ? -1 : 1;
    }
    return a->model < b->model ? -1 : a->model > b->model;
}

/* Appends to pool the models of keys[0..n) whose caps cover every mask, one
 * list per mask. */
static int s_emit_lists(eng_policy_t *pol, const s_key_t *keys, uint32_t n, eng_plist_t *lists)
{
    for (uint32_t m = 0; m < ENG_CAP_MASKS; m++) {
        lists[m].off = pol->npool;
        for (uint32_t i = 0; i < n; i++) {
            if ((pol->models[keys[i].model].caps & m) == m) {
                pol->pool[pol->npool++] = keys[i].model;
            }
        }
        lists[m].len = pol->npool - lists[m].off;
        /* Suffix minima of the prices, last entry first: a lower bound of the
         * cost of everything from an entry to the end of the list; and the
         * minima of each block of ENG_BLOCK entries, stored at its start. */
        hpp_pusd_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
        hpp_pusd_t blk[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
        for (uint32_t i = pol->npool; i-- > lists[m].off;) {
            int32_t e = pol->model_ep[pol->pool[i]];
            hpp_pusd_t v[3] = {0, 0, 0};
            if (e >= 0) {
                const hpp_price_t *p = &pol->eps[e].price;
                const hpp_pusd_t raw[3] = {p->input, p->cache_read, p->output};
                for (int k = 0; k < 3; k++) {
                    v[k] = raw[k] == HPP_PRICE_NA || raw[k] < 0 ? 0 : raw[k];
                }
            }
            bool block_end = (i - lists[m].off + 1) % ENG_BLOCK == 0 || i + 1 == pol->npool;
            for (int k = 0; k < 3; k++) {
                lo[k] = v[k] < lo[k] ? v[k] : lo[k];
                blk[k] = block_end ? v[k] : (v[k] < blk[k] ? v[k] : blk[k]);
            }
            memcpy(pol->pool_min[i][0], lo, sizeof lo);
            memcpy(pol->pool_min[i][1], blk, sizeof blk);
        }
    }
    return 0;
}

static void s_set_bit(uint64_t *set, uint32_t i)
{
    set[i / 64] |= UINT64_C(1) << (i % 64);
}

/* Builds model tiers, endpoints, candidate lists and rule tables. */
static int s_tables(s_comp_t *c)
{
    eng_policy_t *pol = c->pol;
    uint32_t nm = pol->nmodels;
    size_t words = (nm + 63) / 64;
    pol->model_tier = malloc((nm ? nm : 1) * sizeof *pol->model_tier);
    pol->model_ep = malloc((nm ? nm : 1) * sizeof *pol->model_ep);
    pol->model_plain_ep = malloc((nm ? nm : 1) * sizeof *pol->model_plain_ep);
    pol->model_plain_tier = malloc((nm ? nm : 1) * sizeof *pol->model_plain_tier);
    pol->model_long_tier = malloc((nm ? nm : 1) * sizeof *pol->model_long_tier);
    pol->long_pool = malloc((nm ? nm : 1) * sizeof *pol->long_pool);
    pol->model_blend = malloc((nm ? nm : 1) * sizeof *pol->model_blend);
    /* Each model appears at most once per (tier, mask) and per (free, mask):
     * bounded by 3 x 16 x nm entries (lists, floor lists, free lists). */
    pol->pool = malloc(((size_t)nm * ENG_CAP_MASKS * 3 + 1) * sizeof *pol->pool);
    pol->pool_min = malloc(((size_t)nm * ENG_CAP_MASKS * 3 + 1) * sizeof *pol->pool_min);
    s_key_t *keys = malloc((nm ? nm : 1) * sizeof *keys);
    uint32_t *rank = malloc((nm ? nm : 1) * sizeof *rank);
    if (!pol->model_tier || !pol->model_ep || !pol->model_plain_ep || !pol->model_plain_tier ||
        !pol->model_long_tier || !pol->long_pool || !pol->model_blend || !pol->pool ||
        !pol->pool_min || !keys || !rank) {
        free(keys);
        free(rank);
        c->oom = true;
        return -1;
    }
    /* Endpoint, price, tier and preference rank of every model. */
    for (uint32_t i = 0; i < nm; i++) {
        const eng_model_t *m = &pol->models[i];
        int32_t e = s_pick_ep(c, m, false);
        int32_t plain = e >= 0 && pol->eps[e].free_variant ? s_pick_ep(c, m, true) : e;
        pol->model_ep[i] = e;
        pol->model_plain_ep[i] = plain;
        rank[i] = s_rank(&c->prefer, m->id, strlen(m->id));
        pol->model_tier[i] = (int8_t)s_model_tier(c, m, e, &pol->model_blend[i]);
        hpp_pusd_t unused;
        pol->model_plain_tier[i] =
            plain == e ? pol->model_tier[i] : (int8_t)s_model_tier(c, m, plain, &unused);
        hpp_pusd_t long_blend = 0;
        pol->model_long_tier[i] =
            (int8_t)s_model_long_tier(c, m, e, pol->model_tier[i], &long_blend);
        if (pol->model_long_tier[i] != ENG_LONG_SAME) {
            keys[pol->nlong].model = i;
            keys[pol->nlong].rank = 0;
            keys[pol->nlong].price = long_blend;
            pol->nlong++;
        }
    }
    /* Tiers whose order by blend may not be a request's order by estimate. */
    for (uint32_t i = 0; i < nm; i++) {
        int32_t e = pol->model_ep[i];
        const hpp_price_t *pr = e >= 0 ? &pol->eps[e].price : NULL;
        if (pr && pol->model_tier[i] >= 0 &&
            ((pr->per_request != HPP_PRICE_NA && pr->per_request > 0) ||
             (pr->per_image != HPP_PRICE_NA && pr->per_image > 0))) {
            pol->tier_fees[pol->model_tier[i]] = true;
        }
    }
    /* Models a long prompt moves to another tier, cheapest first. */
    qsort(keys, pol->nlong, sizeof *keys, s_key_cmp);
    for (uint32_t i = 0; i < pol->nlong; i++) {
        pol->long_pool[i] = keys[i].model;
    }
    /* Candidate lists per tier: preference then price, and price alone. */
    for (int t = 0; t < pol->ntiers; t++) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < nm; i++) {
            if (pol->model_tier[i] == t) {
                keys[n].model = i;
                keys[n].rank = rank[i];
                keys[n].price = pol->model_blend[i];
                n++;
            }
        }
        qsort(keys, n, sizeof *keys, s_key_cmp);
        s_emit_lists(pol, keys, n, pol->lists[t]);
        if (c->prefer.n == 0) {
            memcpy(pol->floor_lists[t], pol->lists[t], sizeof pol->lists[t]);
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            keys[i].rank = 0;
        }
        qsort(keys, n, sizeof *keys, s_key_cmp);
        s_emit_lists(pol, keys, n, pol->floor_lists[t]);
    }
    /* Free fallback: every model with an enabled $0 endpoint. */
    uint32_t n = 0;
    for (uint32_t i = 0; i < nm; i++) {
        if (pol->models[i].free_ep >= 0 && pol->eps[pol->models[i].free_ep].enabled) {
            keys[n].model = i;
            keys[n].rank = rank[i];
            keys[n].price = 0;
            n++;
        }
    }
    qsort(keys, n, sizeof *keys, s_key_cmp);
    s_emit_lists(pol, keys, n, pol->free_lists);
    free(rank);

    /* Rule preferences: per pattern, matching models by price. */
    uint32_t total = 0;
    for (uint32_t r = 0; r < pol->nrules; r++) {
        total += c->rule_prefer[r].n ? nm : 0;
    }
    pol->prefer_pool = malloc((total ? total : 1) * sizeof *pol->prefer_pool);
    if (!pol->prefer_pool) {
        free(keys);
        c->oom = true;
        return -1;
    }
    for (uint32_t r = 0; r < pol->nrules; r++) {
        eng_prule_t *rule = &pol->rules[r];
        const s_pats_t *ps = &c->rule_prefer[r];
        rule->pref_first = pol->nprefer_pool;
        rule->pref_count = 0;
        if (ps->n == 0) {
            continue;
        }
        rule->pref_set = calloc(words ? words : 1, sizeof *rule->pref_set);
        if (!rule->pref_set) {
            free(keys);
            c->oom = true;
            return -1;
        }
        uint32_t k = 0;
        for (uint32_t i = 0; i < nm; i++) {
            uint32_t rk = s_rank(ps, pol->models[i].id, strlen(pol->models[i].id));
            if (rk < ps->n && pol->model_ep[i] >= 0) {
                keys[k].model = i;
                keys[k].rank = rk;
                keys[k].price = pol->model_blend[i];
                k++;
            }
        }
        qsort(keys, k, sizeof *keys, s_key_cmp);
        for (uint32_t i = 0; i < k; i++) {
            pol->prefer_pool[pol->nprefer_pool++] = keys[i].model;
            s_set_bit(rule->pref_set, keys[i].model);
        }
        rule->pref_count = k;
    }
    free(keys);
    return 0;
}

/* Tiers a rule visits, in order. Free tiers are skipped when stepping: only
 * a target or the free fallback reaches them. With a budget, the cheaper
 * paid tiers not yet listed follow, dearest first ("step down while over
 * budget"). */
static void s_rule_order(const eng_policy_t *pol, eng_prule_t *r)
{
    int t0 = r->tier;
    int nt = pol->ntiers;
    uint8_t *o = r->order[0];
    uint8_t n = 0;
    o[n++] = (uint8_t)t0;
    bool up = r->step == ENG_STEP_UP || r->step == ENG_STEP_UP_DOWN || r->step == ENG_STEP_DOWN_UP;
    bool down =
        r->step == ENG_STEP_DOWN || r->step == ENG_STEP_UP_DOWN || r->step == ENG_STEP_DOWN_UP;
    bool up_first = r->step != ENG_STEP_DOWN_UP;
    for (int d = 1; d < nt; d++) {
        int cand[2] = {up_first ? t0 + d : t0 - d, up_first ? t0 - d : t0 + d};
        for (int k = 0; k < 2; k++) {
            int t = cand[k];
            bool ok = t > t0 ? up : down;
            if (ok && t >= 0 && t < nt && !pol->tiers[t].is_free) {
                o[n++] = (uint8_t)t;
            }
        }
    }
    r->norder[0] = n;
    memcpy(r->order[1], o, n);
    uint8_t nb = n;
    for (int t = t0 - 1; t >= 0; t--) {
        if (pol->tiers[t].is_free || memchr(o, t, n)) {
            continue;
        }
        r->order[1][nb++] = (uint8_t)t;
    }
    r->norder[1] = nb;
}

/* Warnings for patterns that match nothing and tiers with no model. */
static void s_provider_warnings(s_comp_t *c, const s_pats_t *ps)
{
    const eng_policy_t *pol = c->pol;
    for (uint32_t i = 0; i < ps->n; i++) {
        const s_pat_t *p = &ps->v[i];
        bool hit = false;
        for (uint32_t e = 0; e < pol->neps && !hit; e++) {
            hit =
                eng_glob_match(p->pat, p->len, pol->eps[e].provider, strlen(pol->eps[e].provider));
        }
        if (!hit) {
            char dym[300];
            eng_suggest_t sg;
            bool look = s_suggest_begin(c, &sg, p->pat, p->len);
            for (uint32_t e = 0; look && e < pol->neps; e++) {
                eng_suggest_add(&sg, pol->eps[e].provider, pol->eps[e].provider_len);
            }
            s_warn(c, p->file, p->span, "provider '%s' serves no model in the catalog%s", p->pat,
                   eng_suggest_text(&sg, dym, sizeof dym));
        }
    }
}

static void s_catalog_warnings(s_comp_t *c)
{
    const eng_policy_t *pol = c->pol;
    s_pats_t *all[3 + ENG_MAX_TIERS];
    uint32_t nall = 0;
    all[nall++] = &c->prefer;
    for (int t = 0; t < pol->ntiers; t++) {
        all[nall++] = &c->tier_models[t];
    }
    for (int pass = 0; pass < 3; pass++) {
        uint32_t count = pass == 0 ? nall : pass == 1 ? (uint32_t)pol->ngroups : pol->nrules;
        for (uint32_t k = 0; k < count; k++) {
            const s_pats_t *ps = pass == 0   ? all[k]
                                 : pass == 1 ? &c->group_models[k]
                                             : &c->rule_prefer[k];
            for (uint32_t i = 0; i < ps->n; i++) {
                const s_pat_t *p = &ps->v[i];
                bool hit = false;
                for (uint32_t m = 0; m < pol->nmodels && !hit; m++) {
                    hit = eng_glob_match(p->pat, p->len, pol->models[m].id,
                                         strlen(pol->models[m].id));
                }
                if (hit) {
                    continue;
                }
                if (strchr(p->pat, '*')) {
                    s_warn(c, p->file, p->span, "pattern '%s' matches no model in the catalog",
                           p->pat);
                } else {
                    char dym[300];
                    eng_suggest_t sg;
                    bool look = s_suggest_begin(c, &sg, p->pat, p->len);
                    for (uint32_t m = 0; look && m < pol->nmodels; m++) {
                        eng_suggest_add(&sg, pol->models[m].id, strlen(pol->models[m].id));
                    }
                    s_warn(c, p->file, p->span, "model '%s' is not in the catalog%s", p->pat,
                           eng_suggest_text(&sg, dym, sizeof dym));
                }
            }
        }
    }
    s_provider_warnings(c, &c->providers);
    for (int g = 0; g < pol->ngroups; g++) {
        s_provider_warnings(c, &c->group_provs[g].allow);
        s_provider_warnings(c, &c->group_provs[g].deny);
    }
    for (uint32_t r = 0; r < pol->nrules; r++) {
        s_provider_warnings(c, &c->rule_provs[r].allow);
        s_provider_warnings(c, &c->rule_provs[r].deny);
    }
}

static void s_tier_warnings(s_comp_t *c)
{
    const eng_policy_t *pol = c->pol;
    for (int t = 0; t < pol->ntiers; t++) {
        if (pol->lists[t][0].len == 0) {
            const s_def_t *d = &c->tier_defs[t];
            s_warn(c, d->file, d->name, "tier '%s' holds no model of the catalog",
                   pol->tiers[t].name);
        }
    }
}

/* The band a blended price falls in, ignoring tiers' `models` lists; -1 none. */
static int s_band_tier(const eng_policy_t *pol, hpp_pusd_t blend)
{
    for (int t = 0; t < pol->ntiers; t++) {
        const eng_ptier_t *pt = &pol->tiers[t];
        if (pt->has_band && (pt->max < 0 || blend <= pt->max)) {
            return t;
        }
    }
    return -1;
}

/* A tier that lists models by hand takes them out of the tier their price
 * puts them in: a rule that targets that tier no longer sees them, which is
 * easy to miss. One warning per pattern, naming the first model it moves. */
static void s_tier_models_warnings(s_comp_t *c)
{
    const eng_policy_t *pol = c->pol;
    for (int t = 0; t < pol->ntiers; t++) {
        const s_pats_t *ps = &c->tier_models[t];
        for (uint32_t i = 0; i < ps->n; i++) {
            const s_pat_t *p = &ps->v[i];
            uint32_t moved = 0, first = 0;
            int from = -1;
            for (uint32_t m = 0; m < pol->nmodels; m++) {
                const char *id = pol->models[m].id;
                if (pol->model_tier[m] != t || pol->model_ep[m] < 0 ||
                    !eng_glob_match(p->pat, p->len, id, strlen(id))) {
                    continue;
                }
                int band = s_band_tier(pol, pol->model_blend[m]);
                if (band >= 0 && band != t) {
                    if (moved++ == 0) {
                        first = m;
                        from = band;
                    }
                }
            }
            if (moved == 1) {
                s_warn(c, p->file, p->span,
                       "tier '%s' takes model '%s' out of its price tier '%s' (rules that target "
                       "'%s' no longer see it)",
                       pol->tiers[t].name, pol->models[first].id, pol->tiers[from].name,
                       pol->tiers[from].name);
            } else if (moved > 1) {
                s_warn(c, p->file, p->span,
                       "tier '%s' takes %u models out of their price tiers (first: '%s' from "
                       "'%s')",
                       pol->tiers[t].name, moved, pol->models[first].id, pol->tiers[from].name);
            }
        }
    }
}

/* A hint word some test asks about that no hint rule sets, close to one a
 * rule does set, is most likely a misspelling (requests may still send it,
 * so this is a warning and only when a near word exists). */
static void s_hint_word_warnings(s_comp_t *c)
{
    const eng_policy_t *pol = c->pol;
    uint64_t set = 0;
    for (uint32_t j = 0; j < pol->nhints; j++) {
        set |= UINT64_C(1) << pol->hints[j].word;
    }
    for (uint32_t b = 0; b < pol->nwords; b++) {
        if ((set >> b & 1) || c->word_defs[b].name.len == 0) {
            continue;
        }
        eng_suggest_t sg;
        eng_suggest_init(&sg, pol->words[b], pol->word_len[b]);
        for (uint32_t k = 0; k < pol->nwords; k++) {
            if (set >> k & 1) {
                eng_suggest_add(&sg, pol->words[k], pol->word_len[k]);
            }
        }
        if (sg.best) {
            char dym[300];
            s_warn(c, c->word_defs[b].file, c->word_defs[b].name, "no hint rule sets hint '%s'%s",
                   pol->words[b], eng_suggest_text(&sg, dym, sizeof dym));
        }
    }
}

/* Group model sets. */
static int s_group_sets(s_comp_t *c)
{
    eng_policy_t *pol = c->pol;
    size_t words = (pol->nmodels + 63) / 64;
    for (int g = 0; g < pol->ngroups; g++) {
        const s_pats_t *ps = &c->group_models[g];
        bool every = false;
        for (uint32_t i = 0; i < ps->n; i++) {
            every = every || (ps->v[i].len == 1 && ps->v[i].pat[0] == '*');
        }
        if (every) {
            continue;
        }
        pol->groups[g].allow = calloc(words ? words : 1, sizeof(uint64_t));
        if (!pol->groups[g].allow) {
            c->oom = true;
            return -1;
        }
        for (uint32_t m = 0; m < pol->nmodels; m++) {
            if (s_rank(ps, pol->models[m].id, strlen(pol->models[m].id)) < ps->n) {
                s_set_bit(pol->groups[g].allow, m);
            }
        }
    }
    return 0;
}

static bool s_provider_matches(const s_pats_t *ps, const eng_endpoint_t *e)
{
    for (uint32_t i = 0; i < ps->n; i++) {
        if (eng_glob_match(ps->v[i].pat, ps->v[i].len, e->provider, e->provider_len)) {
            return true;
        }
    }
    return false;
}

/* The endpoints allow_providers / deny_providers exclude, as a bit set, so
 * the resolver tests one bit per candidate. NULL when there are no lists. */
static uint64_t *s_provider_set(s_comp_t *c, const s_provs_t *pv)
{
    const eng_policy_t *pol = c->pol;
    if (pv->allow.n == 0 && pv->deny.n == 0) {
        return NULL;
    }
    uint64_t *set = calloc((pol->neps + 63) / 64 + 1, sizeof *set);
    if (!set) {
        c->oom = true;
        return NULL;
    }
    for (uint32_t e = 0; e < pol->neps; e++) {
        const eng_endpoint_t *ep = &pol->eps[e];
        if ((pv->allow.n > 0 && !s_provider_matches(&pv->allow, ep)) ||
            s_provider_matches(&pv->deny, ep)) {
            s_set_bit(set, e);
        }
    }
    return set;
}

static int s_provider_sets(s_comp_t *c)
{
    eng_policy_t *pol = c->pol;
    for (int g = 0; g < pol->ngroups && !c->oom; g++) {
        pol->groups[g].ep_deny = s_provider_set(c, &c->group_provs[g]);
    }
    for (uint32_t r = 0; r < pol->nrules && !c->oom; r++) {
        pol->rules[r].ep_deny = s_provider_set(c, &c->rule_provs[r]);
    }
    return c->oom ? -1 : 0;
}

/* For lazy hint evaluation: each hint test records 1 + the last hint rule
 * that can set one of its words, so the resolver runs only that prefix of
 * the hint rules (running a prefix in order gives the same bits for those
 * words as running them all). */
static void s_hint_keys(eng_policy_t *pol)
{
    uint32_t last[ENG_MAX_WORDS] = {0};
    for (uint32_t j = 0; j < pol->nhints; j++) {
        last[pol->hints[j].word] = j + 1;
    }
    for (uint32_t i = 0; i < pol->nnodes; i++) {
        eng_cnode_t *n = &pol->nodes[i];
        if (n->op != ENG_C_HINT_ANY && n->op != ENG_C_HINT_ALL) {
            continue;
        }
        uint32_t k = 0;
        for (uint32_t b = 0; b < pol->nwords; b++) {
            if ((n->mask >> b & 1) && last[b] > k) {
                k = last[b];
            }
        }
        n->key = (int32_t)k;
    }
}

/* Driver ---------------------------------------------------------------------- */

static void s_passes(s_comp_t *c)
{
    eng_policy_t *pol = c->pol;
    uint32_t fi;
    if (c->stopped) {
        return; /* too many errors while parsing: the policy is rejected as it is */
    }
    /* Settings first: rules inherit them wherever they are written. */
    for (uint32_t i = 0; i < c->nstmts && !c->stopped; i++) {
        const eng_stmt_t *st = s_stmt(c, i, &fi);
        if (st->kind == ENG_ST_SETTINGS) {
            s_settings(c, fi, st);
        }
    }
    uint32_t ngroups = 0, nrules = 0;
    for (uint32_t i = 0; i < c->nstmts; i++) {
        const eng_stmt_t *st = s_stmt(c, i, &fi);
        ngroups += st->kind == ENG_ST_GROUP;
        nrules += st->kind == ENG_ST_ROUTE;
    }
    pol->groups = calloc(ngroups + 1, sizeof *pol->groups);
    c->group_models = calloc(ngroups + 1, sizeof *c->group_models);
    c->group_defs = calloc(ngroups + 1, sizeof *c->group_defs);
    c->rule_defs = calloc(nrules + 1, sizeof *c->rule_defs);
    c->rule_prefer = calloc(nrules + 1, sizeof *c->rule_prefer);
    c->rule_ff_set = calloc(nrules + 1, sizeof *c->rule_ff_set);
    c->group_provs = calloc(ngroups + 1, sizeof *c->group_provs);
    c->rule_provs = calloc(nrules + 1, sizeof *c->rule_provs);
    pol->rules = calloc(nrules + 1, sizeof *pol->rules);
    c->cap_rules = nrules + 1;
    if (!pol->groups || !c->group_models || !c->group_defs || !c->rule_defs || !c->rule_prefer ||
        !c->rule_ff_set || !c->group_provs || !c->rule_provs || !pol->rules) {
        c->oom = true;
        return;
    }
    /* Tiers before rules, so a rule may name a tier defined after it. */
    for (uint32_t i = 0; i < c->nstmts && !c->stopped; i++) {
        const eng_stmt_t *st = s_stmt(c, i, &fi);
        if (st->kind == ENG_ST_TIER) {
            s_tier(c, fi, st);
        } else if (st->kind == ENG_ST_GROUP) {
            s_group(c, fi, st);
        } else if (st->kind == ENG_ST_SCORER) {
            s_scorer(c, fi, st);
        }
    }
    if (pol->ntiers == 0 && c->nerrors == 0) {
        eng_span_t at = {0, 0};
        s_err(c, 0, at, "the policy defines no tier (e.g. tier budget max $0.15)");
    }
    for (uint32_t i = 0; i < c->nstmts && !c->oom && !c->stopped; i++) {
        const eng_stmt_t *st = s_stmt(c, i, &fi);
        if (st->kind == ENG_ST_HINT) {
            s_hint(c, fi, st);
        } else if (st->kind == ENG_ST_ROUTE) {
            s_route(c, fi, st);
        }
    }
    /* Rules without their own step / free_fallback take the settings'. */
    for (uint32_t i = 0; i < pol->nrules; i++) {
        eng_prule_t *r = &pol->rules[i];
        if (r->step == S_STEP_UNSET) {
            r->step = pol->step;
        }
        if (!c->rule_ff_set[i]) {
            r->free_fallback = pol->free_fallback;
        }
    }
    if (pol->nrules == 0 && c->nerrors == 0) {
        eng_span_t at = {0, 0};
        if (c->flags & ENG_POLICY_REQUIRE_CATCH_ALL) {
            s_err(c, 0, at,
                  "the policy has no route rule, but the serving policy has a rule that matches "
                  "every request: every auto request would fail with no_candidate");
        } else {
            s_warn(c, 0, at,
                   "the policy has no route rule: every auto request fails with no_candidate");
        }
    }
    if (c->stopped) {
        return;
    }
    s_reachability(c);
    s_catalog_warnings(c);
    s_hint_keys(pol);
}

static void s_comp_free(s_comp_t *c)
{
    eng_scan_destroy(&c->scan);
    for (uint32_t i = 0; i < c->nfiles; i++) {
        eng_ast_destroy(&c->files[i].ast);
        free(c->files[i].path);
        free(c->files[i].dir);
        free(c->files[i].src);
    }
    free(c->files);
    free(c->stmts);
    s_pats_free(&c->prefer);
    s_pats_free(&c->providers);
    for (int t = 0; t < ENG_MAX_TIERS; t++) {
        s_pats_free(&c->tier_models[t]);
    }
    if (c->group_models) {
        for (int g = 0; g < c->pol->ngroups; g++) {
            s_pats_free(&c->group_models[g]);
        }
    }
    free(c->group_models);
    free(c->group_defs);
    for (int g = 0; c->group_provs && g < c->pol->ngroups; g++) {
        s_pats_free(&c->group_provs[g].allow);
        s_pats_free(&c->group_provs[g].deny);
    }
    free(c->group_provs);
    for (uint32_t r = 0; c->rule_provs && r < c->pol->nrules; r++) {
        s_pats_free(&c->rule_provs[r].allow);
        s_pats_free(&c->rule_provs[r].deny);
    }
    free(c->rule_provs);
    if (c->rule_prefer) {
        for (uint32_t r = 0; r < c->pol->nrules; r++) {
            s_pats_free(&c->rule_prefer[r]);
        }
    }
    free(c->rule_prefer);
    free(c->rule_ff_set);
    free(c->rule_defs);
}

/* Orders this compile's diagnostics by file position, except that a "too
 * many errors" stays last: it ends the report (nothing after it was checked),
 * and it is the last one added unless it was not kept (the list was full). */
static void s_sort_diags(s_comp_t *c, size_t first)
{
    size_t end = eng_diags_size(c->diags);
    size_t added =
        eng_diags_count(c->diags, ENG_DIAG_ERROR) + eng_diags_count(c->diags, ENG_DIAG_WARNING);
    if (c->stopped && !c->oom && end > first && added == end) {
        end--;
    }
    eng_diags_sort_range(c->diags, first, end);
}

/* eng_policy_compile, with a file observer (eng_policy_load_observed). */
static eng_policy_t *s_compile(const char *name, const char *src, size_t len, const char *base_dir,
                               const eng_catalog_t *catalog, eng_diags_t *diags, unsigned flags,
                               eng_source_fn on_source, void *source_ctx)
{
    if (!name) {
        name = "<policy>";
    }
    eng_policy_t *pol = calloc(1, sizeof *pol);
    if (!pol) {
        return NULL;
    }
    size_t first_diag = eng_diags_size(diags);
    s_comp_t comp;
    memset(&comp, 0, sizeof comp);
    s_comp_t *c = &comp;
    c->pol = pol;
    c->diags = diags;
    c->flags = flags;
    c->on_source = on_source;
    c->source_ctx = source_ctx;
    pol->default_output = ENG_DEFAULT_OUTPUT;
    pol->catch_all = -1;
    pol->step = ENG_STEP_UP_DOWN;
    pol->free_fallback = false;
    eng_health_cfg_defaults(&pol->health_cfg);
    if (!catalog) {
        s_err_noloc(c, name, "no catalog to compile the policy against");
        goto fail;
    }
    size_t nm = 0, ne = 0;
    pol->catalog = catalog;
    pol->models = eng_catalog_models(catalog, &nm);
    pol->eps = eng_catalog_endpoints(catalog, &ne);
    if (nm > INT32_MAX || ne > INT32_MAX) {
        s_err_noloc(c, name, "catalog too large");
        goto fail;
    }
    pol->nmodels = (uint32_t)nm;
    pol->neps = (uint32_t)ne;

    /* The top file, named as given; its includes are relative to base_dir
     * when given, else to the directory in its name. */
    char *dir = NULL;
    if (base_dir && *base_dir) {
        size_t bl = strlen(base_dir);
        dir = malloc(bl + 2);
        if (dir) {
            memcpy(dir, base_dir, bl);
            dir[bl] = '/';
            dir[bl + 1] = '\0';
            if (bl > 0 && base_dir[bl - 1] == '/') {
                dir[bl] = '\0';
            }
        }
    } else {
        dir = s_dirname(name);
    }
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, src, len);
        copy[len] = '\0';
    }
    int fi = s_add_file(c, strdup(name), dir, copy, len);
    if (fi < 0) {
        goto fail;
    }
    s_expand(c, (uint32_t)fi);
    if (c->oom) {
        goto fail;
    }
    s_passes(c);
    if (c->oom || c->nerrors > 0) {
        goto fail;
    }
    if (s_group_sets(c) != 0 || s_provider_sets(c) != 0 || s_tables(c) != 0) {
        goto fail;
    }
    s_anchor_table(pol);
    if (s_build_scan(c) != 0) {
        goto fail;
    }
    for (uint32_t i = 0; i < pol->nrules; i++) {
        s_rule_order(pol, &pol->rules[i]);
    }
    s_tier_warnings(c);
    s_tier_models_warnings(c);
    s_hint_word_warnings(c);
    s_comp_free(c);
    eng_diags_sort_from(diags, first_diag);
    return pol;
fail:
    if (c->oom) {
        s_err_noloc(c, name, "out of memory");
    }
    s_comp_free(c);
    s_sort_diags(c, first_diag);
    eng_policy_destroy(&pol);
    return NULL;
}

eng_policy_t *eng_policy_compile(const char *name, const char *src, size_t len,
                                 const char *base_dir, const eng_catalog_t *catalog,
                                 eng_diags_t *diags, unsigned flags)
{
    return s_compile(name, src, len, base_dir, catalog, diags, flags, NULL, NULL);
}

eng_policy_t *eng_policy_load(const char *path, const eng_catalog_t *catalog, eng_diags_t *diags)
{
    return eng_policy_load_observed(path, catalog, diags, NULL, NULL);
}

eng_policy_t *eng_policy_load_observed(const char *path, const eng_catalog_t *catalog,
                                       eng_diags_t *diags, eng_source_fn on_source, void *ctx)
{
    return eng_policy_load_opts(path, catalog, diags, 0, on_source, ctx);
}

eng_policy_t *eng_policy_load_opts(const char *path, const eng_catalog_t *catalog,
                                   eng_diags_t *diags, unsigned flags, eng_source_fn on_source,
                                   void *ctx)
{
    char *src = NULL;
    size_t len = 0;
    char why[128];
    if (!path || s_read_file(path, &src, &len, why, sizeof why) != 0) {
        eng_diags_add(diags, ENG_DIAG_ERROR, path ? path : "<policy>", NULL, 0, 0, 0,
                      "cannot read policy: %s", path ? why : "no file name");
        return NULL;
    }
    eng_policy_t *pol = s_compile(path, src, len, NULL, catalog, diags, flags, on_source, ctx);
    free(src);
    return pol;
}

eng_policy_t *eng_policy_load_buffer(const char *name, const char *src, size_t len,
                                     const eng_catalog_t *catalog, eng_diags_t *diags)
{
    return eng_policy_compile(name, src, len, NULL, catalog, diags, 0);
}

void eng_policy_set_scan(eng_policy_t *self, bool on)
{
    if (self) {
        self->scan_off = !on;
    }
}

void eng_policy_destroy(eng_policy_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_policy_t *pol = *self_p;
    for (uint32_t i = 0; i < pol->nregexes; i++) {
        eng_regex_destroy(&pol->regexes[i]);
    }
    free(pol->regexes);
    eng_scan_destroy(&pol->scan);
    if (pol->groups) {
        for (int g = 0; g < pol->ngroups; g++) {
            free(pol->groups[g].allow);
            free(pol->groups[g].ep_deny);
        }
    }
    free(pol->groups);
    if (pol->rules) {
        for (uint32_t r = 0; r < pol->nrules; r++) {
            free(pol->rules[r].pref_set);
            free(pol->rules[r].ep_deny);
        }
    }
    free(pol->rules);
    free(pol->hints);
    free(pol->nodes);
    free(pol->strs);
    free(pol->model_tier);
    free(pol->model_ep);
    free(pol->model_plain_ep);
    free(pol->model_plain_tier);
    free(pol->model_long_tier);
    free(pol->long_pool);
    free(pol->model_blend);
    free(pol->pool);
    free(pol->pool_min);
    free(pol->needle_sets);
    free(pol->prefer_pool);
    for (uint32_t i = 0; i < pol->nscorers; i++) {
        eng_scorer_destroy(&pol->scorers[i]);
    }
    s_arena_free(pol);
    free(pol);
    *self_p = NULL;
}

const eng_scorer_t *eng_policy_scorer(const eng_policy_t *self, const char *name,
                                      const char **name_out)
{
    int found = -1;
    if (!name) {
        found = self->nscorers == 1 ? 0 : -1;
    }
    for (uint32_t i = 0; name && i < self->nscorers && found < 0; i++) {
        if (strcmp(self->scorer_names[i], name) == 0) {
            found = (int)i;
        }
    }
    if (name_out) {
        *name_out = found >= 0 ? self->scorer_names[found] : NULL;
    }
    return found >= 0 ? self->scorers[found] : NULL;
}

const eng_catalog_t *eng_policy_catalog(const eng_policy_t *self)
{
    return self->catalog;
}

int eng_policy_tier_count(const eng_policy_t *self)
{
    return self->ntiers;
}

const char *eng_policy_tier_name(const eng_policy_t *self, int i)
{
    return i >= 0 && i < self->ntiers ? self->tiers[i].name : "";
}

int64_t eng_policy_default_output(const eng_policy_t *self)
{
    return self->default_output;
}

const char *eng_policy_catch_all(const eng_policy_t *self)
{
    return self->catch_all >= 0 ? self->rules[self->catch_all].name : NULL;
}
