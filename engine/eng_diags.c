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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
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

#define S_NCODES (sizeof s_codes / sizeof s_codes[0])

/* Rows of s_codes by the first byte of their text, as bit masks. */
static uint64_t s_first[256];
static pthread_once_t s_first_once = PTHREAD_ONCE_INIT;

static void s_first_init(void)
{
    for (size_t i = 0; i < S_NCODES; i++) {
        s_first[(unsigned char)s_codes[i].text[0]] |= UINT64_C(1) << i;
    }
}

/* One pass over the message, comparing only the rows whose text starts with
 * the byte at hand, rather than a strstr per row: this lookup runs for every
 * diagnostic, and a broken policy reports up to ENG_MAX_DIAGS of them. Not
 * instrumented for coverage: a pure function of the message, whose branches
 * say nothing about the input (and which the fuzzer traced byte by byte). */
ENG_NO_COVERAGE static const char *s_code(const char *msg)
{
    _Static_assert(S_NCODES <= 64, "s_codes rows must fit a 64-bit mask");
    pthread_once(&s_first_once, s_first_init);
    uint64_t found = 0;
    for (const char *m = msg; *m; m++) {
        uint64_t rows = s_first[(unsigned char)*m] & ~found;
        while (rows) {
            int i = __builtin_ctzll(rows);
            rows &= rows - 1;
            const char *t = s_codes[i].text;
            size_t k = 1;
            while (t[k] && m[k] == t[k]) {
                k++;
            }
            if (!t[k]) {
                found |= UINT64_C(1) << i;
            }
        }
    }
    return found ? s_codes[__builtin_ctzll(found)].code : "policy";
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
    /* A bounded copy (d is zeroed, so it stays terminated): snprintf's format parsing, for
     * every diagnostic, was a measurable part of compiling a broken policy. */
    const char *f = file ? file : "<policy>";
    memcpy(d->file, f, strnlen(f, sizeof d->file - 1));
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
    eng_diags_sort_range(self, from, self ? self->n : 0);
}

void eng_diags_sort_range(eng_diags_t *self, size_t from, size_t end)
{
    if (!self) {
        return;
    }
    if (end > self->n) {
        end = self->n;
    }
    /* Insertion sort: stable, and an entry never moves past one of another
     * file, so files keep the order they were reported in. */
    for (size_t i = from + 1; i < end; i++) {
        const eng_diag_t *q = &self->items[i - 1], *e = &self->items[i];
        if (strcmp(q->file, e->file) != 0 || q->line < e->line ||
            (q->line == e->line && q->col <= e->col)) {
            continue; /* in order already (the usual case): no copy */
        }
        eng_diag_t d = *e;
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

/* Writes `n` copies of byte `c`, a buffer at a time. */
static void s_put_run(FILE *out, char c, size_t n)
{
    char buf[256];
    memset(buf, c, n < sizeof buf ? n : sizeof buf);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        fwrite(buf, 1, k, out);
        n -= k;
    }
}

/* Blanks as wide as src[0..n): tabs kept, any other byte a space. A pure
 * copy, not instrumented for coverage (see s_code). */
ENG_NO_COVERAGE static void s_blank_like(char *out, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = src[i] == '\t' ? '\t' : ' ';
    }
}

/* Prints the caret line under `line`: tabs are kept so the caret lines up.
 * Built in a buffer rather than a byte at a time: a policy may show 99
 * diagnostics, each on a line of up to 255 bytes. */
static void s_print_caret(FILE *out, const eng_diag_t *d)
{
    char pad[sizeof d->source_line];
    size_t len = strlen(d->source_line);
    size_t ncol = d->col > 1 ? (size_t)(d->col - 1) : 0;
    size_t shown = ncol < len ? ncol : len;
    s_blank_like(pad, d->source_line, shown);
    fputs("    ", out);
    fwrite(pad, 1, shown, out);
    s_put_run(out, ' ', ncol - shown);
    s_put_run(out, '^', d->span > 0 ? (size_t)d->span : 0);
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

/* The distance below is a pure computation over two short words: not
 * instrumented for coverage, whose comparison tracing made it several times
 * slower under a fuzzer (ASan still checks it). */
ENG_NO_COVERAGE static int s_fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Optimal string alignment distance, rows of the dynamic programme on the
 * stack (both lengths are at most S_SUGGEST_MAX). */
ENG_NO_COVERAGE static unsigned s_distance(const char *a, size_t la, const char *b, size_t lb)
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

/* A JSON string: runs of plain bytes are written whole, escapes one by one.
 * Not instrumented for coverage (see s_code): its branches follow the text of
 * messages, and the fuzzer traced them byte by byte. */
ENG_NO_COVERAGE static void s_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (; *p; p++) {
        if (*p != '"' && *p != '\\' && *p >= 0x20 && *p != 0x7f) {
            continue;
        }
        fwrite(run, 1, (size_t)(p - run), out);
        run = p + 1;
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else {
            fprintf(out, "\\u%04x", *p);
        }
    }
    fwrite(run, 1, (size_t)(p - run), out);
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
