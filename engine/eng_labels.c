/* eng_labels.c - labelled prompts: CSV and JSONL readers, the split, the
 * trainer (see eng_labels.h).
 *
 * These run in the tools (hpp-policy train-scorer and curve), never on a
 * request, so they allocate freely; what they must not do is crash or
 * guess on a bad file: each error names the file, line and column.
 */
#include "eng_labels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "hpp_file.h"
#include "hpp_request.h"
#include "oai_json.h"
#include "oai_tokens.h"

/* RFC 4180 ------------------------------------------------------------------ */

void eng_csv_init(eng_csv_t *c, const char *text, size_t len)
{
    c->text = text ? text : "";
    c->len = text ? len : 0;
    c->pos = 0;
    c->line = 1;
    c->col_base = 0;
    if (c->len >= 3 && memcmp(c->text, "\xEF\xBB\xBF", 3) == 0) {
        c->pos = c->col_base = 3;
    }
}

static int s_csv_err(const eng_csv_t *c, const char *file, eng_error_t *err, size_t line,
                     size_t col, const char *msg)
{
    (void)c;
    return eng_error_set(err, ENG_ERR_SYNTAX, file, (int)line, (int)col, "", "%s", msg);
}

/* True when a record ends at pos: LF, CRLF, or the end of the text. */
static bool s_csv_eol(const eng_csv_t *c, size_t pos)
{
    return pos >= c->len || c->text[pos] == '\n' ||
           (c->text[pos] == '\r' && pos + 1 < c->len && c->text[pos + 1] == '\n');
}

static int s_csv_quoted(eng_csv_t *c, const char *file, eng_csv_field_t *f, eng_error_t *err)
{
    size_t line = c->line, col = c->pos - c->col_base + 1;
    c->pos++; /* the opening quote */
    f->ptr = c->text + c->pos;
    f->quoted = true;
    for (;;) {
        if (c->pos >= c->len) {
            return s_csv_err(c, file, err, line, col,
                             "quoted field never closed (its opening quote is here)");
        }
        char ch = c->text[c->pos];
        if (ch == '"') {
            if (c->pos + 1 < c->len && c->text[c->pos + 1] == '"') {
                c->pos += 2;
                continue;
            }
            f->len = (size_t)(c->text + c->pos - f->ptr);
            c->pos++;
            break;
        }
        if (ch == '\n') {
            c->line++;
            c->col_base = c->pos + 1;
        }
        c->pos++;
    }
    if (c->pos < c->len && c->text[c->pos] != ',' && !s_csv_eol(c, c->pos)) {
        return s_csv_err(c, file, err, c->line, c->pos - c->col_base + 1,
                         "text after a closing quote (a quote inside a quoted field is "
                         "written twice: \"\")");
    }
    return 0;
}

int eng_csv_next(eng_csv_t *c, const char *file, eng_csv_field_t *f, size_t max, size_t *nf,
                 eng_error_t *err)
{
    *nf = 0;
    if (c->pos >= c->len) {
        return 0;
    }
    for (;;) {
        if (*nf >= max) {
            char msg[64];
            snprintf(msg, sizeof msg, "more than %zu fields in a record", max);
            return s_csv_err(c, file, err, c->line, c->pos - c->col_base + 1, msg);
        }
        eng_csv_field_t *cur = &f[(*nf)++];
        cur->line = c->line;
        if (c->pos < c->len && c->text[c->pos] == '"') {
            if (s_csv_quoted(c, file, cur, err) != 0) {
                return -1;
            }
        } else {
            cur->ptr = c->text + c->pos;
            cur->quoted = false;
            while (c->pos < c->len && c->text[c->pos] != ',' && !s_csv_eol(c, c->pos)) {
                if (c->text[c->pos] == '"') {
                    return s_csv_err(c, file, err, c->line, c->pos - c->col_base + 1,
                                     "a quote inside an unquoted field (quote the whole field)");
                }
                c->pos++;
            }
            cur->len = (size_t)(c->text + c->pos - cur->ptr);
        }
        if (c->pos >= c->len) {
            return 1;
        }
        if (c->text[c->pos] == ',') {
            c->pos++;
            continue;
        }
        c->pos += c->text[c->pos] == '\r' ? 2 : 1;
        c->line++;
        c->col_base = c->pos;
        return 1;
    }
}

size_t eng_csv_unescape(const eng_csv_field_t *f, char *out)
{
    if (!f->quoted) {
        memcpy(out, f->ptr, f->len);
        return f->len;
    }
    size_t n = 0;
    for (size_t i = 0; i < f->len; i++) {
        out[n++] = f->ptr[i];
        if (f->ptr[i] == '"' && i + 1 < f->len && f->ptr[i + 1] == '"') {
            i++;
        }
    }
    return n;
}

/* The set ---------------------------------------------------------------------- */

struct eng_labels {
    char *strong, *weak; /* model names (column names), owned */
    eng_example_t *v;    /* examples */
    size_t n, cap;       /* used, allocated */
    char **files;        /* file names, owned */
    uint32_t nfiles;     /* count */
};

eng_labels_t *eng_labels_new(const char *strong, const char *weak)
{
    eng_labels_t *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->strong = strdup(strong ? strong : "");
    s->weak = strdup(weak ? weak : "");
    if (!s->strong || !s->weak) {
        eng_labels_destroy(&s);
    }
    return s;
}

static void s_truncate(eng_labels_t *s, size_t n)
{
    while (s->n > n) {
        free(s->v[--s->n].prompt);
    }
}

void eng_labels_destroy(eng_labels_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_labels_t *s = *self_p;
    s_truncate(s, 0);
    free(s->v);
    for (uint32_t i = 0; i < s->nfiles; i++) {
        free(s->files[i]);
    }
    free(s->files);
    free(s->strong);
    free(s->weak);
    free(s);
    *self_p = NULL;
}

size_t eng_labels_count(const eng_labels_t *self)
{
    return self ? self->n : 0;
}

const eng_example_t *eng_labels_at(const eng_labels_t *self, size_t i)
{
    return self && i < self->n ? &self->v[i] : NULL;
}

const char *eng_labels_file(const eng_labels_t *self, uint32_t i)
{
    return self && i < self->nfiles ? self->files[i] : "";
}

/* Appends an example owning `prompt`; -1 when out of memory or full. */
static int s_push(eng_labels_t *s, char *prompt, size_t plen, const eng_example_t *proto,
                  const char *file, size_t line, eng_error_t *err)
{
    if (s->n >= ENG_LABELS_MAX_EXAMPLES) {
        free(prompt);
        return eng_error_set(err, ENG_ERR_LIMIT, file, (int)line, 0, "", "more than %u examples",
                             ENG_LABELS_MAX_EXAMPLES);
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        eng_example_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(prompt);
            return eng_error_set(err, ENG_ERR_NOMEM, file, (int)line, 0, "", "out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    eng_example_t *e = &s->v[s->n++];
    *e = *proto;
    e->prompt = prompt;
    e->prompt_len = plen;
    e->in_tokens = oai_tok_text(prompt, plen) + OAI_TOK_PER_MESSAGE + OAI_TOK_REPLY;
    e->file = s->nfiles - 1;
    return 0;
}

static char *s_dup(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* CSV files ----------------------------------------------------------------- */

/* Columns of the header. */
typedef struct {
    int prompt, strong, weak, strong_resp, weak_resp; /* -1 when absent */
    size_t n;                                         /* fields per record */
} s_cols_t;

static bool s_field_is(const eng_csv_field_t *f, const char *name, const char *suffix)
{
    size_t a = strlen(name), b = suffix ? strlen(suffix) : 0;
    return !f->quoted
               ? f->len == a + b && memcmp(f->ptr, name, a) == 0 &&
                     (b == 0 || memcmp(f->ptr + a, suffix, b) == 0)
               : f->len == a + b && memchr(f->ptr, '"', f->len) == NULL &&
                     memcmp(f->ptr, name, a) == 0 && (b == 0 || memcmp(f->ptr + a, suffix, b) == 0);
}

static int s_header(const eng_labels_t *s, const char *file, const eng_csv_field_t *f, size_t nf,
                    s_cols_t *cols, eng_error_t *err)
{
    cols->prompt = cols->strong = cols->weak = cols->strong_resp = cols->weak_resp = -1;
    cols->n = nf;
    for (size_t i = 0; i < nf; i++) {
        if (s_field_is(&f[i], "prompt", NULL)) {
            cols->prompt = (int)i;
        } else if (s_field_is(&f[i], s->strong, NULL)) {
            cols->strong = (int)i;
        } else if (s_field_is(&f[i], s->weak, NULL)) {
            cols->weak = (int)i;
        } else if (s_field_is(&f[i], s->strong, "_response")) {
            cols->strong_resp = (int)i;
        } else if (s_field_is(&f[i], s->weak, "_response")) {
            cols->weak_resp = (int)i;
        }
    }
    const char *missing = cols->prompt < 0   ? "prompt"
                          : cols->strong < 0 ? s->strong
                          : cols->weak < 0   ? s->weak
                                             : NULL;
    if (missing) {
        return eng_error_set(err, ENG_ERR_UNKNOWN, file, 1, 1, "",
                             "the header has no column '%s' (it needs prompt and one "
                             "True/False column per model, named by the model)",
                             missing);
    }
    return 0;
}

static int s_truth(const eng_csv_field_t *f, const char *file, const char *col, bool *v,
                   eng_error_t *err)
{
    static const char *const yes[] = {"True", "true", "TRUE", "1"};
    static const char *const no[] = {"False", "false", "FALSE", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (f->len == strlen(yes[i]) && memcmp(f->ptr, yes[i], f->len) == 0) {
            *v = true;
            return 0;
        }
        if (f->len == strlen(no[i]) && memcmp(f->ptr, no[i], f->len) == 0) {
            *v = false;
            return 0;
        }
    }
    return eng_error_set(err, ENG_ERR_VALUE, file, (int)f->line, 0, "",
                         "column '%s' is '%.*s', not True or False", col,
                         (int)(f->len > 40 ? 40 : f->len), f->ptr);
}

/* Output tokens of an answer field; -1 when there is none. */
static int64_t s_answer_tokens(const eng_csv_field_t *f, char *buf)
{
    size_t n = eng_csv_unescape(f, buf);
    return oai_tok_text(buf, n);
}

static int s_add_csv(eng_labels_t *s, const char *file, const char *text, size_t len,
                     eng_error_t *err)
{
    eng_csv_t c;
    eng_csv_init(&c, text, len);
    eng_csv_field_t f[ENG_CSV_MAX_FIELDS];
    size_t nf;
    int rc = eng_csv_next(&c, file, f, ENG_CSV_MAX_FIELDS, &nf, err);
    if (rc <= 0) {
        return rc < 0 ? -1 : eng_error_set(err, ENG_ERR_SYNTAX, file, 1, 1, "", "empty file");
    }
    s_cols_t cols;
    if (s_header(s, file, f, nf, &cols, err) != 0) {
        return -1;
    }
    char *buf = malloc(len + 1); /* any field fits */
    if (!buf) {
        return eng_error_set(err, ENG_ERR_NOMEM, file, 0, 0, "", "out of memory");
    }
    while ((rc = eng_csv_next(&c, file, f, ENG_CSV_MAX_FIELDS, &nf, err)) > 0) {
        if (nf == 1 && f[0].len == 0) {
            continue; /* a blank line */
        }
        if (nf != cols.n) {
            rc = eng_error_set(err, ENG_ERR_SYNTAX, file, (int)f[0].line, 1, "",
                               "the record has %zu fields, the header %zu", nf, cols.n);
            break;
        }
        eng_example_t e;
        memset(&e, 0, sizeof e);
        if (s_truth(&f[cols.strong], file, s->strong, &e.strong_ok, err) != 0 ||
            s_truth(&f[cols.weak], file, s->weak, &e.weak_ok, err) != 0) {
            rc = -1;
            break;
        }
        e.strong_out = cols.strong_resp >= 0 ? s_answer_tokens(&f[cols.strong_resp], buf) : -1;
        e.weak_out = cols.weak_resp >= 0 ? s_answer_tokens(&f[cols.weak_resp], buf) : -1;
        const eng_csv_field_t *p = &f[cols.prompt];
        size_t plen = eng_csv_unescape(p, buf);
        char *prompt = s_dup(buf, plen);
        if (!prompt) {
            rc = eng_error_set(err, ENG_ERR_NOMEM, file, (int)p->line, 0, "", "out of memory");
            break;
        }
        if (s_push(s, prompt, plen, &e, file, p->line, err) != 0) {
            rc = -1;
            break;
        }
    }
    free(buf);
    return rc < 0 ? -1 : 0;
}

/* JSONL files -------------------------------------------------------------------- */

static int s_jbool(const oai_jdoc_t *d, oai_jv_t root, const char *key, const char *file,
                   size_t line, bool *v, eng_error_t *err)
{
    oai_jv_t x = oai_jget(d, root, key);
    if (oai_jis(d, x, OAI_J_TRUE) || oai_jis(d, x, OAI_J_FALSE)) {
        *v = oai_jis(d, x, OAI_J_TRUE);
        return 0;
    }
    return eng_error_set(err, x == OAI_JNONE ? ENG_ERR_UNKNOWN : ENG_ERR_TYPE, file, (int)line, 1,
                         key, "\"%s\" must be true or false, got %s", key,
                         oai_jtype_name(oai_jtype(d, x)));
}

/* Output tokens from "MODEL_response" (a string) or "MODEL_output_tokens". */
static int s_jout(const oai_jdoc_t *d, oai_jv_t root, const char *model, const char *file,
                  size_t line, int64_t *out, eng_error_t *err)
{
    char key[512];
    snprintf(key, sizeof key, "%s_response", model);
    size_t n;
    const char *r = oai_jstr(d, oai_jget(d, root, key), &n);
    *out = r ? oai_tok_text(r, n) : -1;
    snprintf(key, sizeof key, "%s_output_tokens", model);
    oai_jv_t t = oai_jget(d, root, key);
    if (t != OAI_JNONE) {
        if (!oai_jis(d, t, OAI_J_INT) || oai_jint(d, t) < 0 || oai_jint(d, t) > HPP_MAX_TOKENS) {
            return eng_error_set(err, ENG_ERR_VALUE, file, (int)line, 1, key,
                                 "\"%s\" must be a whole number of tokens", key);
        }
        *out = oai_jint(d, t);
    }
    return 0;
}

static int s_jline(eng_labels_t *s, oai_jdoc_t *d, const char *file, size_t line, const char *p,
                   size_t n, eng_error_t *err)
{
    oai_jerr_t je;
    oai_jv_t root = oai_jdoc_parse(d, p, n, &je);
    if (root == OAI_JNONE) {
        return eng_error_set(err, ENG_ERR_SYNTAX, file, (int)line, je.column, "", "%s", je.text);
    }
    if (!oai_jis(d, root, OAI_J_OBJECT)) {
        return eng_error_set(err, ENG_ERR_TYPE, file, (int)line, 1, "",
                             "each line must be a JSON object");
    }
    size_t plen;
    const char *prompt = oai_jstr(d, oai_jget(d, root, "prompt"), &plen);
    if (!prompt) {
        return eng_error_set(err, ENG_ERR_UNKNOWN, file, (int)line, 1, "prompt",
                             "\"prompt\" must be a string");
    }
    eng_example_t e;
    memset(&e, 0, sizeof e);
    if (s_jbool(d, root, s->strong, file, line, &e.strong_ok, err) ||
        s_jbool(d, root, s->weak, file, line, &e.weak_ok, err) ||
        s_jout(d, root, s->strong, file, line, &e.strong_out, err) ||
        s_jout(d, root, s->weak, file, line, &e.weak_out, err)) {
        return -1;
    }
    char *copy = s_dup(prompt, plen);
    if (!copy) {
        return eng_error_set(err, ENG_ERR_NOMEM, file, (int)line, 0, "", "out of memory");
    }
    return s_push(s, copy, plen, &e, file, line, err);
}

static int s_add_jsonl(eng_labels_t *s, const char *file, const char *text, size_t len,
                       eng_error_t *err)
{
    oai_jdoc_t *d = oai_jdoc_new();
    if (!d) {
        return eng_error_set(err, ENG_ERR_NOMEM, file, 0, 0, "", "out of memory");
    }
    hpp_lines_t lines = {text ? text : "", text ? len : 0, 0, 0};
    const char *line;
    size_t n, first;
    int rc, out = 0;
    while ((rc = hpp_lines_next(&lines, &line, &n, &first)) != 0) {
        if (rc < 0) {
            out = eng_error_set(err, ENG_ERR_SYNTAX, file, (int)lines.lineno, (int)first, "",
                                "control byte in the line");
            break;
        }
        if (s_jline(s, d, file, lines.lineno, line, n, err) != 0) {
            out = -1;
            break;
        }
    }
    oai_jdoc_destroy(&d);
    return out;
}

int eng_labels_add(eng_labels_t *self, const char *file, const char *text, size_t len, bool jsonl,
                   eng_error_t *err)
{
    if (!file) {
        file = "<data>";
    }
    char **files = realloc(self->files, (self->nfiles + 1) * sizeof *files);
    if (!files) {
        return eng_error_set(err, ENG_ERR_NOMEM, file, 0, 0, "", "out of memory");
    }
    self->files = files;
    if (!(files[self->nfiles] = strdup(file))) {
        return eng_error_set(err, ENG_ERR_NOMEM, file, 0, 0, "", "out of memory");
    }
    self->nfiles++;
    size_t before = self->n;
    int rc =
        jsonl ? s_add_jsonl(self, file, text, len, err) : s_add_csv(self, file, text, len, err);
    if (rc != 0) {
        s_truncate(self, before);
    }
    return rc;
}

int eng_labels_load(eng_labels_t *self, const char *path, eng_error_t *err)
{
    char why[320];
    size_t len = 0;
    mode_t mode;
    char *text =
        hpp_file_read(path, ENG_LABELS_MAX_FILE, "a data file", &len, &mode, why, sizeof why);
    if (!text) {
        return eng_error_set(err, ENG_ERR_IO, path, 0, 0, "", "%s", why);
    }
    size_t pl = strlen(path);
    bool jsonl = pl >= 6 && strcmp(path + pl - 6, ".jsonl") == 0;
    int rc = eng_labels_add(self, path, text, len, jsonl, err);
    free(text);
    return rc;
}

/* The split ------------------------------------------------------------------ */

static const char *const s_split_names[] = {"all", "train", "test", "fit", "valid"};

static const char *const s_fold_names[2][10] = {
    {"", "", "fold2", "fold3", "fold4", "fold5", "fold6", "fold7", "fold8", "fold9"},
    {"", "", "notfold2", "notfold3", "notfold4", "notfold5", "notfold6", "notfold7", "notfold8",
     "notfold9"}};

int eng_split_parse(const char *s)
{
    for (int i = 0; s && i < 5; i++) {
        if (strcmp(s, s_split_names[i]) == 0) {
            return i;
        }
    }
    for (int k = 2; s && k < 10; k++) {
        if (strcmp(s, s_fold_names[0][k]) == 0) {
            return ENG_SPLIT_FOLD + k;
        }
        if (strcmp(s, s_fold_names[1][k]) == 0) {
            return ENG_SPLIT_NOT_FOLD + k;
        }
    }
    return -1;
}

const char *eng_split_name(eng_split_t s)
{
    unsigned u = (unsigned)s;
    if (u < 5) {
        return s_split_names[u];
    }
    if (u >= ENG_SPLIT_FOLD + 2 && u < ENG_SPLIT_FOLD + 10) {
        return s_fold_names[0][u - ENG_SPLIT_FOLD];
    }
    if (u >= ENG_SPLIT_NOT_FOLD + 2 && u < ENG_SPLIT_NOT_FOLD + 10) {
        return s_fold_names[1][u - ENG_SPLIT_NOT_FOLD];
    }
    return "?";
}

bool eng_labels_in_split(const char *prompt, size_t len, eng_split_t s)
{
    unsigned k = (unsigned)(eng_fnv1a(prompt, len) % 10);
    switch (s) {
    case ENG_SPLIT_ALL:
        return true;
    case ENG_SPLIT_TRAIN:
        return k >= 2;
    case ENG_SPLIT_TEST:
        return k < 2;
    case ENG_SPLIT_FIT:
        return k >= 3;
    case ENG_SPLIT_VALID:
        return k == 2;
    default:
        break;
    }
    if ((unsigned)s >= ENG_SPLIT_NOT_FOLD) {
        return k >= 2 && k != (unsigned)s - ENG_SPLIT_NOT_FOLD;
    }
    return (unsigned)s >= ENG_SPLIT_FOLD && k == (unsigned)s - ENG_SPLIT_FOLD;
}

/* Training ------------------------------------------------------------------ */

eng_train_opts_t eng_train_default_opts(void)
{
    eng_train_opts_t o;
    o.features = eng_scorer_default_params();
    o.label = ENG_LABEL_STRONG_GAIN;
    o.epochs = 3;
    o.rate = 0.1;
    o.l2 = 1e-5;
    o.seed = 1;
    o.split = ENG_SPLIT_TRAIN;
    return o;
}

/* Features of every training example, in one array. */
typedef struct {
    uint32_t *v;   /* buckets */
    size_t n, cap; /* used, allocated */
    bool oom;      /* an append failed */
} s_feats_t;

static void s_feat_push(void *ctx, uint32_t bucket)
{
    s_feats_t *f = ctx;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 65536;
        uint32_t *v = f->oom ? NULL : realloc(f->v, cap * sizeof *v);
        if (!v) {
            f->oom = true;
            return;
        }
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = bucket;
}

/* xorshift64*: the shuffle's generator, fixed so a seed means one order. */
static uint64_t s_rand(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * UINT64_C(2685821657736338717);
}

typedef struct {
    size_t *ex;      /* example index per row */
    size_t *off;     /* first feature per row, n + 1 entries */
    double *y;       /* target per row */
    size_t n;        /* rows */
    s_feats_t feats; /* the buckets */
} s_rows_t;

static void s_rows_free(s_rows_t *r)
{
    free(r->ex);
    free(r->off);
    free(r->y);
    free(r->feats.v);
}

static int s_rows(const eng_labels_t *set, const eng_train_opts_t *o, s_rows_t *r)
{
    memset(r, 0, sizeof *r);
    size_t n = set->n;
    r->ex = malloc((n + 1) * sizeof *r->ex);
    r->off = malloc((n + 1) * sizeof *r->off);
    r->y = malloc((n + 1) * sizeof *r->y);
    if (!r->ex || !r->off || !r->y) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const eng_example_t *e = &set->v[i];
        if (!eng_labels_in_split(e->prompt, e->prompt_len, o->split)) {
            continue;
        }
        r->off[r->n] = r->feats.n;
        eng_scorer_features(&o->features, e->prompt, e->prompt_len, s_feat_push, &r->feats);
        bool pos = o->label == ENG_LABEL_WEAK_WRONG ? !e->weak_ok : e->strong_ok && !e->weak_ok;
        r->y[r->n] = pos ? 1.0 : 0.0;
        r->ex[r->n++] = i;
    }
    r->off[r->n] = r->feats.n;
    return r->feats.oom ? -1 : 0;
}

eng_scorer_t *eng_scorer_train(const eng_labels_t *set, const eng_train_opts_t *opts, size_t *used,
                               eng_error_t *err)
{
    eng_train_opts_t o = opts ? *opts : eng_train_default_opts();
    if (used) {
        *used = 0;
    }
    eng_scorer_t *tmp = eng_scorer_new(&o.features, 0.0, NULL); /* checks the parameters */
    if (!tmp) {
        eng_error_set(err, ENG_ERR_VALUE, "", 0, 0, "", "bad feature parameters");
        return NULL;
    }
    eng_scorer_destroy(&tmp);
    s_rows_t r;
    memset(&r, 0, sizeof r);
    size_t nb = (size_t)1 << o.features.bits;
    double *w = calloc(nb, sizeof *w), *g2 = calloc(nb, sizeof *g2);
    float *wf = malloc(nb * sizeof *wf);
    size_t *order = NULL;
    eng_scorer_t *out = NULL;
    if (!w || !g2 || !wf || s_rows(set, &o, &r) != 0 ||
        !(order = malloc((r.n + 1) * sizeof *order))) {
        eng_error_set(err, ENG_ERR_NOMEM, "", 0, 0, "", "out of memory");
        goto done;
    }
    if (r.n == 0) {
        eng_error_set(err, ENG_ERR_VALUE, "", 0, 0, "", "no example in the '%s' split",
                      eng_split_name(o.split));
        goto done;
    }
    double bias = 0.0, gb2 = 0.0;
    uint64_t st = o.seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
    for (size_t i = 0; i < r.n; i++) {
        order[i] = i;
    }
    for (uint32_t ep = 0; ep < o.epochs; ep++) {
        for (size_t i = r.n - 1; i > 0; i--) {
            size_t j = (size_t)(s_rand(&st) % (i + 1));
            size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t k = 0; k < r.n; k++) {
            size_t i = order[k];
            const uint32_t *f = r.feats.v + r.off[i];
            size_t nf = r.off[i + 1] - r.off[i];
            double x = 1.0 / sqrt((double)nf);
            double z = bias;
            for (size_t j = 0; j < nf; j++) {
                z += w[f[j]] * x;
            }
            double g = 1.0 / (1.0 + exp(-z)) - r.y[i];
            for (size_t j = 0; j < nf; j++) {
                double gj = g * x + o.l2 * w[f[j]];
                g2[f[j]] += gj * gj;
                w[f[j]] -= o.rate * gj / sqrt(g2[f[j]] + 1e-8);
            }
            gb2 += g * g;
            bias -= o.rate * g / sqrt(gb2 + 1e-8);
        }
    }
    for (size_t i = 0; i < nb; i++) {
        wf[i] = (float)w[i];
    }
    out = eng_scorer_new(&o.features, bias, wf);
    if (!out) {
        eng_error_set(err, ENG_ERR_NOMEM, "", 0, 0, "", "out of memory");
    } else if (used) {
        *used = r.n;
    }
done:
    s_rows_free(&r);
    free(order);
    free(w);
    free(g2);
    free(wf);
    return out;
}
