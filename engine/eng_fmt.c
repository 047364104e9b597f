/* eng_fmt.c - canonical formatting of policy text.
 *
 * Two passes over the source. The first lexes it and splits it into lines as
 * the author wrote them: each line is a run of tokens (slices of the
 * source, never rewritten) with its comment, and remembers whether a blank
 * line preceded it. The syntax tree says which lines start a statement or a
 * property, which decides indentation exactly (a word such as `group` may
 * start a statement or be a field in a condition). The second pass prints
 * the lines with the spacing, indentation and alignment rules of eng_fmt.h.
 * Nothing here is on a request path; the text it returns is the caller's.
 */
#include "eng_fmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "eng_lex.h"
#include "eng_parse.h"

#define S_INDENT 4 /* spaces per level */

typedef struct {
    uint32_t first;       /* first token in toks[] */
    uint32_t ntok;        /* token count (0: a comment-only line) */
    uint32_t comment;     /* offset of its comment's '#' in the source */
    uint32_t comment_len; /* its length without trailing blanks (0: none) */
    bool blank_before;    /* an empty line preceded it */
    int indent;           /* spaces before the first token or the comment */
    bool stmt;            /* starts a statement */
    int name_pad;         /* spaces after the statement's name (alignment), 0 = one */
} s_line_t;

typedef struct {
    const char *src;
    const eng_ast_t *ast;
    eng_token_t *toks;
    uint32_t ntoks, cap_toks;
    s_line_t *lines;
    uint32_t nlines, cap_lines;
    s_line_t cur;       /* the line being read */
    bool pending_blank; /* an empty line since the last pushed line */
    bool oom;
} s_fmt_t;

/* eng_grow, with the first capacity of this module's arrays; out of memory is noted. */
static bool s_grow(s_fmt_t *f, void **arr, uint32_t n, uint32_t *cap, size_t size)
{
    if (eng_grow(arr, n, cap, size, 64)) {
        return true;
    }
    f->oom = true;
    return false;
}

/* Ends the current line: kept when it holds a token or a comment, else it
 * counts as a blank line. */
static void s_flush(s_fmt_t *f)
{
    if (f->cur.ntok == 0 && f->cur.comment_len == 0) {
        f->pending_blank = f->nlines > 0;
        f->cur.first = f->ntoks;
        return;
    }
    if (!s_grow(f, (void **)&f->lines, f->nlines, &f->cap_lines, sizeof *f->lines)) {
        return;
    }
    f->cur.blank_before = f->pending_blank;
    f->lines[f->nlines++] = f->cur;
    f->pending_blank = false;
    memset(&f->cur, 0, sizeof f->cur);
    f->cur.first = f->ntoks;
}

/* The blanks and comments in src[from, to): line ends and comments. */
static void s_gap(s_fmt_t *f, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        char c = f->src[i];
        if (c == '\n') {
            s_flush(f);
        } else if (c == '#') {
            uint32_t e = i;
            while (e < to && f->src[e] != '\n') {
                e++;
            }
            uint32_t end = e;
            while (end > i &&
                   (f->src[end - 1] == ' ' || f->src[end - 1] == '\t' || f->src[end - 1] == '\r' ||
                    f->src[end - 1] == '\f' || f->src[end - 1] == '\v')) {
                end--;
            }
            f->cur.comment = i;
            f->cur.comment_len = end - i;
            i = e - 1;
        }
    }
}

static bool s_split(s_fmt_t *f, size_t len)
{
    eng_lex_t lx;
    eng_lex_init(&lx, f->src, len);
    uint32_t pos = lx.pos; /* after a byte order mark, which is dropped */
    f->cur.first = 0;
    for (;;) {
        eng_token_t t;
        eng_tok_kind_t k = eng_lex_next(&lx, &t);
        if (k == ENG_TOK_ERROR) {
            return false; /* the parser reported it */
        }
        s_gap(f, pos, t.start);
        if (k == ENG_TOK_EOF || f->oom) {
            break;
        }
        if (!s_grow(f, (void **)&f->toks, f->ntoks, &f->cap_toks, sizeof *f->toks)) {
            break;
        }
        f->toks[f->ntoks++] = t;
        f->cur.ntok++;
        pos = t.end;
    }
    s_flush(f);
    return !f->oom;
}

/* Whether a statement keyword (or, with `props`, a property key) is at
 * `off`: both arrays are in source order. */
static bool s_starts(const eng_ast_t *a, uint32_t off, bool props)
{
    uint32_t lo = 0, hi = props ? a->nprops : a->nstmts;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t v = props ? a->props[mid].key.off : a->stmts[mid].kw.off;
        if (v == off) {
            return true;
        }
        if (v < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* The kind of the statement whose keyword is at `off` (statements are in
 * source order), or ENG_ST_COUNT. */
static eng_stkind_t s_stmt_at(const eng_ast_t *a, uint32_t off)
{
    uint32_t lo = 0, hi = a->nstmts;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t v = a->stmts[mid].kw.off;
        if (v == off) {
            return a->stmts[mid].kind;
        }
        if (v < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return ENG_ST_COUNT;
}

/* Indentation from brace depth; continuation lines one level more. */
static void s_indent(s_fmt_t *f)
{
    int depth = 0;
    for (uint32_t i = 0; i < f->nlines; i++) {
        s_line_t *ln = &f->lines[i];
        if (ln->ntok == 0) {
            ln->indent = depth * S_INDENT;
            continue;
        }
        const eng_token_t *t0 = &f->toks[ln->first];
        if (t0->kind == ENG_TOK_RBRACE) {
            ln->indent = (depth > 0 ? depth - 1 : 0) * S_INDENT;
        } else if (depth == 0) {
            ln->stmt = s_starts(f->ast, t0->start, false);
            ln->indent = ln->stmt ? 0 : S_INDENT;
        } else {
            ln->indent = (depth + (s_starts(f->ast, t0->start, true) ? 0 : 1)) * S_INDENT;
        }
        for (uint32_t k = 0; k < ln->ntok; k++) {
            eng_tok_kind_t kind = f->toks[ln->first + k].kind;
            depth += kind == ENG_TOK_LBRACE;
            depth -= kind == ENG_TOK_RBRACE && depth > 0;
        }
    }
    /* A comment line goes with the code after it (a comment between the
     * lines of a long condition is indented as they are), but never left of
     * its block (a comment before a '}'). */
    int next = 0;
    for (uint32_t i = f->nlines; i-- > 0;) {
        s_line_t *ln = &f->lines[i];
        if (ln->ntok > 0) {
            next = ln->indent;
        } else if (next > ln->indent) {
            ln->indent = next;
        }
    }
}

/* Runs of consecutive tier / group / hint statements of one kind: what
 * follows their names starts at one column. Continuation lines belong to
 * the run; a blank line, a comment line or another statement ends it. */
static void s_align_names(s_fmt_t *f)
{
    uint32_t i = 0;
    while (i < f->nlines) {
        const s_line_t *ln = &f->lines[i];
        eng_stkind_t kind = ln->stmt ? s_stmt_at(f->ast, f->toks[ln->first].start) : ENG_ST_COUNT;
        if (kind != ENG_ST_TIER && kind != ENG_ST_GROUP && kind != ENG_ST_HINT) {
            i++;
            continue;
        }
        uint32_t end = i, width = 0;
        for (uint32_t j = i; j < f->nlines; j++) {
            const s_line_t *l = &f->lines[j];
            if (j > i && (l->blank_before || l->ntok == 0)) {
                break;
            }
            if (l->stmt) {
                if (s_stmt_at(f->ast, f->toks[l->first].start) != kind) {
                    break;
                }
                if (l->ntok > 2) {
                    const eng_token_t *name = &f->toks[l->first + 1];
                    uint32_t w = name->end - name->start;
                    width = w > width ? w : width;
                }
            }
            end = j + 1;
        }
        for (uint32_t j = i; j < end; j++) {
            s_line_t *l = &f->lines[j];
            if (l->stmt && l->ntok > 2) {
                const eng_token_t *name = &f->toks[l->first + 1];
                l->name_pad = (int)(width - (name->end - name->start)) + 2;
            }
        }
        i = end;
    }
}

/* No blank between these two tokens. */
static bool s_glued(const eng_token_t *prev, const eng_token_t *cur)
{
    switch (cur->kind) {
    case ENG_TOK_RPAREN:
    case ENG_TOK_RBRACKET:
    case ENG_TOK_COMMA:
    case ENG_TOK_SEMI:
        return true;
    case ENG_TOK_DOT:
        return prev->kind == ENG_TOK_IDENT;
    default:
        break;
    }
    return prev->kind == ENG_TOK_LPAREN || prev->kind == ENG_TOK_LBRACKET ||
           (prev->kind == ENG_TOK_DOT &&
            (cur->kind == ENG_TOK_IDENT || cur->kind == ENG_TOK_STRING));
}

/* Width of a line's code (indent and tokens), as s_code prints it. */
static size_t s_code(const s_fmt_t *f, const s_line_t *ln, FILE *out)
{
    size_t w = 0;
    if (ln->ntok == 0) {
        return 0;
    }
    for (int i = 0; i < ln->indent; i++) {
        if (out) {
            fputc(' ', out);
        }
        w++;
    }
    for (uint32_t k = 0; k < ln->ntok; k++) {
        const eng_token_t *t = &f->toks[ln->first + k];
        if (k > 0 && !s_glued(&f->toks[ln->first + k - 1], t)) {
            int n = k == 2 && ln->name_pad > 0 ? ln->name_pad : 1;
            for (int s = 0; s < n; s++) {
                if (out) {
                    fputc(' ', out);
                }
                w++;
            }
        }
        if (out) {
            fwrite(f->src + t->start, 1, t->end - t->start, out);
        }
        w += t->end - t->start;
    }
    return w;
}

static void s_print(const s_fmt_t *f, FILE *out)
{
    uint32_t i = 0;
    while (i < f->nlines) {
        /* A run of consecutive code lines with trailing comments shares
         * the comments' column. */
        uint32_t end = i + 1;
        size_t col = 0;
        if (f->lines[i].ntok > 0 && f->lines[i].comment_len > 0) {
            end = i;
            while (end < f->nlines && f->lines[end].ntok > 0 && f->lines[end].comment_len > 0 &&
                   (end == i || !f->lines[end].blank_before)) {
                size_t w = s_code(f, &f->lines[end], NULL);
                col = w > col ? w : col;
                end++;
            }
        }
        for (uint32_t j = i; j < end; j++) {
            const s_line_t *ln = &f->lines[j];
            if (ln->blank_before) {
                fputc('\n', out);
            }
            size_t w = s_code(f, ln, out);
            if (ln->comment_len > 0) {
                size_t pad = ln->ntok == 0 ? (size_t)ln->indent : col + 2 - w;
                for (size_t s = 0; s < pad; s++) {
                    fputc(' ', out);
                }
                fwrite(f->src + ln->comment, 1, ln->comment_len, out);
            }
            fputc('\n', out);
        }
        i = end;
    }
}

int eng_fmt(const char *name, const char *src, size_t len, char **out, size_t *out_len,
            eng_diags_t *diags)
{
    *out = NULL;
    *out_len = 0;
    eng_ast_t *ast = eng_parse(name, src, len, diags);
    if (!ast) {
        return -1;
    }
    if (ast->nerrors > 0) {
        eng_ast_destroy(&ast);
        return -1;
    }
    s_fmt_t f;
    memset(&f, 0, sizeof f);
    f.src = src;
    f.ast = ast;
    int rc = -1;
    if (s_split(&f, len)) {
        s_indent(&f);
        s_align_names(&f);
        char *buf = NULL;
        size_t n = 0;
        FILE *mem = open_memstream(&buf, &n);
        if (mem) {
            s_print(&f, mem);
            if (fclose(mem) == 0 && buf) {
                *out = buf;
                *out_len = n;
                rc = 0;
            } else {
                free(buf);
            }
        }
    }
    free(f.toks);
    free(f.lines);
    eng_ast_destroy(&ast);
    return rc;
}
