/* eng_diags.c - located errors and warnings of the policy compiler.
 *
 * The compiler reports every problem it finds, not just the first, so a
 * policy author fixes a file in one pass. A diagnostic is resolved to
 * file:line:col and a copy of its source line when it is added, while the
 * source text is still at hand; the list then outlives the sources. At most
 * ENG_MAX_DIAGS are kept (the rest are counted), which bounds memory on a
 * hostile input. Printing follows the compiler convention:
 *
 *   policies/x.policy:3:12: error: unknown tier 'midd'
 *       route chat { tier midd }
 *                         ^^^^
 *   1 error, 0 warnings
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_lex.h"
#include "eng_policy_internal.h"

struct eng_diags {
    eng_diag_t *items; /* kept diagnostics, in order */
    size_t n;          /* kept */
    size_t cap;        /* allocated */
    size_t counts[2];  /* all added, by severity (kept or not) */
};

eng_diags_t *eng_diags_new(void)
{
    return calloc(1, sizeof(eng_diags_t));
}

void eng_diags_destroy(eng_diags_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->items);
        free(*self_p);
        *self_p = NULL;
    }
}

size_t eng_diags_count(const eng_diags_t *self, eng_diag_severity_t severity)
{
    if (!self || (unsigned)severity > ENG_DIAG_WARNING) {
        return 0;
    }
    return self->counts[severity];
}

size_t eng_diags_size(const eng_diags_t *self)
{
    return self ? self->n : 0;
}

const eng_diag_t *eng_diags_get(const eng_diags_t *self, size_t i)
{
    if (!self || i >= self->n) {
        return NULL;
    }
    return &self->items[i];
}

/* Copies the line starting at `ls` (without its newline) into d->source_line.
 * Only what is shown is scanned, with memchr: a policy can report many
 * diagnostics, and on a long line each would otherwise walk all of it. */
static void s_copy_line(eng_diag_t *d, const char *src, size_t srclen, uint32_t ls)
{
    size_t n = ls < srclen ? srclen - ls : 0;
    if (n >= sizeof d->source_line) {
        n = sizeof d->source_line - 1;
    }
    const char *nl = memchr(src + ls, '\n', n);
    if (nl) {
        n = (size_t)(nl - (src + ls));
    }
    const char *cr = memchr(src + ls, '\r', n);
    if (cr) {
        n = (size_t)(cr - (src + ls));
    }
    memcpy(d->source_line, src + ls, n);
    d->source_line[n] = '\0';
    /* A NUL byte inside the line would cut the display short: show it as '?'. */
    for (char *z = memchr(d->source_line, '\0', n); z;
         z = memchr(z, '\0', n - (size_t)(z - d->source_line))) {
        *z = '?';
    }
}

/* Codes by message: the first row whose text the message contains (in
 * order, so specific rows come first). A table rather than a code at each
 * call site: the messages are the reference, the codes a stable index. */
static const struct {
    const char *text;
    const char *code;
} s_codes[] = {
    {"unknown property", "unknown-property"},
    {"unknown tier", "unknown-tier"},
    {"unknown field", "unknown-field"},
    {"unknown capability", "unknown-capability"},
    {"unknown regex flag", "bad-regex"},
    {"bad regex", "bad-regex"},
    {"expected a statement", "unknown-statement"},
    {"is money", "money"},
    {"not money", "money"},
    {"are quoted", "quote"},
    {"in quotes", "quote"},
    {"type mismatch", "type-mismatch"},
    {"already defined", "duplicate"},
    {"duplicate property", "duplicate"},
    {"include", "include"},
    {"is not in the catalog", "unknown-model"},
    {"matches no model", "unknown-model"},
    {"serves no model", "unknown-provider"},
    {"holds no model", "empty-tier"},
    {"out of its price tier", "tier-models"},
    {"out of their price tiers", "tier-models"},
    {"no hint rule sets", "unset-hint"},
    {"never matches", "unreachable-rule"},
    {"unreachable", "unreachable-rule"},
    {"no route rule", "no-rule"},
    {"matches every request", "catch-all"},
    {"too many", "limit"},
    {"unterminated", "syntax"},
    {"unexpected", "syntax"},
    {"expected", "syntax"},
    {"missing", "syntax"},
};

static const char *s_code(const char *msg)
{
    for (size_t i = 0; i < sizeof s_codes / sizeof s_codes[0]; i++) {
        if (strstr(msg, s_codes[i].text)) {
            return s_codes[i].code;
        }
    }
    return "policy";
}

void eng_diags_vadd(eng_diags_t *self, eng_diag_severity_t sev, const char *file, const char *src,
                    size_t srclen, uint32_t off, uint32_t span, const char *fmt, va_list ap)
{
    if (!self) {
        return;
    }
    self->counts[sev == ENG_DIAG_WARNING ? 1 : 0]++;
    if (self->n >= ENG_MAX_DIAGS) {
        return;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        eng_diag_t *items = realloc(self->items, cap * sizeof *items);
        if (!items) {
            return;
        }
        self->items = items;
        self->cap = cap;
    }
    eng_diag_t *d = &self->items[self->n++];
    memset(d, 0, sizeof *d);
    d->severity = sev;
    snprintf(d->file, sizeof d->file, "%s", file ? file : "<policy>");
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    d->code = s_code(d->msg);
    d->span = span > 0 ? (int)span : 1;
    if (src) {
        uint32_t ls = 0;
        eng_lex_locate(src, srclen, off, &d->line, &d->col, &ls);
        s_copy_line(d, src, srclen, ls);
        /* Clip the caret to the end of the shown line. */
        int room = (int)strlen(d->source_line) - (d->col - 1);
        if (d->span > room) {
            d->span = room > 0 ? room : 1;
        }
    }
}

void eng_diags_add(eng_diags_t *self, eng_diag_severity_t sev, const char *file, const char *src,
                   size_t srclen, uint32_t off, uint32_t span, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eng_diags_vadd(self, sev, file, src, srclen, off, span, fmt, ap);
    va_end(ap);
}

void eng_diags_sort_from(eng_diags_t *self, size_t from)
{
    if (!self) {
        return;
    }
    /* Insertion sort: stable, and an entry never moves past one of another
     * file, so files keep the order they were reported in. */
    for (size_t i = from + 1; i < self->n; i++) {
        eng_diag_t d = self->items[i];
        size_t j = i;
        while (j > from) {
            const eng_diag_t *p = &self->items[j - 1];
            if (strcmp(p->file, d.file) != 0 || p->line < d.line ||
                (p->line == d.line && p->col <= d.col)) {
                break;
            }
            self->items[j] = *p;
            j--;
        }
        self->items[j] = d;
    }
}

/* Prints the caret line under `line`: tabs are kept so the caret lines up. */
static void s_print_caret(FILE *out, const eng_diag_t *d)
{
    fputs("    ", out);
    size_t len = strlen(d->source_line);
    for (int i = 0; i < d->col - 1; i++) {
        fputc((size_t)i < len && d->source_line[i] == '\t' ? '\t' : ' ', out);
    }
    for (int i = 0; i < d->span; i++) {
        fputc('^', out);
    }
    fputc('\n', out);
}

void eng_diags_print(const eng_diags_t *self, FILE *out)
{
    if (!self) {
        return;
    }
    for (size_t i = 0; i < self->n; i++) {
        const eng_diag_t *d = &self->items[i];
        const char *sev = d->severity == ENG_DIAG_WARNING ? "warning" : "error";
        if (d->line > 0) {
            fprintf(out, "%s:%d:%d: %s: %s\n", d->file, d->line, d->col, sev, d->msg);
            fprintf(out, "    %s\n", d->source_line);
            s_print_caret(out, d);
        } else {
            fprintf(out, "%s: %s: %s\n", d->file, sev, d->msg);
        }
    }
    size_t kept = self->n;
    size_t total = self->counts[0] + self->counts[1];
    if (total > kept) {
        fprintf(out, "(%zu more not shown)\n", total - kept);
    }
    if (total > 0) {
        fprintf(out, "%zu error%s, %zu warning%s\n", self->counts[0],
                self->counts[0] == 1 ? "" : "s", self->counts[1], self->counts[1] == 1 ? "" : "s");
    }
}

/* Did you mean --------------------------------------------------------------- */

/* Longest name compared: longer ones are not misspellings worth a hint. */
#define S_SUGGEST_MAX 128

static int s_fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Optimal string alignment distance, rows of the dynamic programme on the
 * stack (both lengths are at most S_SUGGEST_MAX). */
static unsigned s_distance(const char *a, size_t la, const char *b, size_t lb)
{
    unsigned prev2[S_SUGGEST_MAX + 1], prev[S_SUGGEST_MAX + 1], cur[S_SUGGEST_MAX + 1];
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = (unsigned)j;
        prev2[j] = 0;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = s_fold((unsigned char)a[i - 1]) != s_fold((unsigned char)b[j - 1]);
            unsigned d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) {
                d = cur[j - 1] + 1;
            }
            if (prev[j - 1] + cost < d) {
                d = prev[j - 1] + cost;
            }
            if (i > 1 && j > 1 &&
                s_fold((unsigned char)a[i - 1]) == s_fold((unsigned char)b[j - 2]) &&
                s_fold((unsigned char)a[i - 2]) == s_fold((unsigned char)b[j - 1]) &&
                prev2[j - 2] + 1 < d) {
                d = prev2[j - 2] + 1;
            }
            cur[j] = d;
        }
        memcpy(prev2, prev, (lb + 1) * sizeof *prev);
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

void eng_suggest_init(eng_suggest_t *s, const char *word, size_t len)
{
    s->word = word;
    s->len = len;
    s->best = NULL;
    s->best_len = 0;
    s->best_d = UINT32_MAX;
}

void eng_suggest_add(eng_suggest_t *s, const char *name, size_t len)
{
    if (!name || len == 0 || len > S_SUGGEST_MAX || s->len == 0 || s->len > S_SUGGEST_MAX) {
        return;
    }
    size_t diff = len > s->len ? len - s->len : s->len - len;
    size_t longer = len > s->len ? len : s->len;
    unsigned limit = (unsigned)(longer / 3 > 0 ? longer / 3 : 1);
    if (diff > limit || (s->best && diff >= s->best_d)) {
        return; /* the length alone rules it out */
    }
    unsigned d = s_distance(s->word, s->len, name, len);
    if (d == 0 && len == s->len && memcmp(name, s->word, len) == 0) {
        return; /* the word itself: nothing to suggest */
    }
    if (d > limit || d >= s->len || (s->best && d >= s->best_d)) {
        return;
    }
    s->best = name;
    s->best_len = len;
    s->best_d = d;
}

const char *eng_suggest_text(const eng_suggest_t *s, char *buf, size_t n)
{
    if (n == 0) {
        return "";
    }
    buf[0] = '\0';
    if (s->best) {
        snprintf(buf, n, "; did you mean '%.*s'?", (int)s->best_len, s->best);
    }
    return buf;
}

static void s_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

void eng_diags_print_json(const eng_diags_t *self, FILE *out)
{
    fputc('[', out);
    for (size_t i = 0; self && i < self->n; i++) {
        const eng_diag_t *d = &self->items[i];
        fputs(i ? ",\n {\"file\": " : "{\"file\": ", out);
        s_json_str(out, d->file);
        fprintf(out,
                ", \"line\": %d, \"col\": %d, \"end_col\": %d, \"severity\": \"%s\", \"code\": ",
                d->line, d->col, d->line > 0 ? d->col + d->span : 0,
                d->severity == ENG_DIAG_WARNING ? "warning" : "error");
        s_json_str(out, d->code ? d->code : "policy");
        fputs(", \"message\": ", out);
        s_json_str(out, d->msg);
        fputc('}', out);
    }
    fputs("]\n", out);
}
