/* eng_scorer.c - hashed n-gram logistic regression (see eng_scorer.h).
 *
 * One pass over the text: a byte is folded (ASCII lower case, digits to
 * '0', white space to ' '), added to the running word hash and to the char
 * window; each feature is hashed to a bucket and its weight summed. The
 * extractor is one static function that both the scorer and the trainer's
 * callback use, so what is trained is exactly what is scored.
 */
#include "eng_scorer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_file.h"

struct eng_scorer {
    eng_scorer_params_t p; /* features */
    double bias;           /* intercept */
    float *w;              /* 2^bits weights, owned */
};

eng_scorer_params_t eng_scorer_default_params(void)
{
    eng_scorer_params_t p = {14, 2, 4, 512};
    return p;
}

static bool s_params_ok(const eng_scorer_params_t *p)
{
    return p->bits >= ENG_SCORER_MIN_BITS && p->bits <= ENG_SCORER_MAX_BITS && p->words <= 2 &&
           p->chars <= ENG_SCORER_MAX_CHARS && p->max_bytes >= 1 &&
           p->max_bytes <= ENG_SCORER_MAX_BYTES;
}

/* Feature extraction ------------------------------------------------------ */

/* Kinds of feature, mixed into the hash so that a word and a char window
 * with the same bytes land in different buckets. */
enum { S_WORD = 0x1u, S_PAIR = 0x2u, S_CHAR = 0x3u, S_LEN = 0x4u, S_NUMS = 0x5u };

/* murmur3's finaliser: every input bit moves every output bit. */
static inline uint32_t s_mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t s_bucket(uint32_t kind, uint32_t h, uint32_t mask)
{
    return s_mix(h ^ kind * 0x9e3779b9u) & mask;
}

/* Byte folding as a table: one load per byte instead of a chain of tests.
 * Built on first use (eng_scorer_new / parse call s_tables_init). */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static unsigned char s_fold_tab[256];
static bool s_word_tab[256];

static void s_tables_init(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char f = (unsigned char)c;
        if (c >= 'A' && c <= 'Z') {
            f = (unsigned char)(c + 32);
        } else if (c >= '0' && c <= '9') {
            f = '0';
        } else if (c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            f = ' ';
        }
        s_fold_tab[c] = f;
        s_word_tab[c] = (f >= 'a' && f <= 'z') || f == '0' || f >= 0x80;
    }
}

static inline unsigned char s_fold(unsigned char c)
{
    return s_fold_tab[c];
}

static inline bool s_word_byte(unsigned char c)
{
    return s_word_tab[c];
}

/* A char window's bucket: multiply-shift (the top bits of the product),
 * one multiplication per byte of text. */
static inline uint32_t s_char_bucket(uint64_t win, uint32_t bits)
{
    return (uint32_t)(((win ^ UINT64_C(0x5bd1e9955bd1e995)) * UINT64_C(0x9e3779b97f4a7c15)) >>
                      (64 - bits));
}

static inline uint32_t s_log2(uint32_t v)
{
    uint32_t k = 0;
    while (v > 1) {
        v >>= 1;
        k++;
    }
    return k;
}

/* Called with each feature's bucket and kind (S_*). */
typedef void (*s_feature_fn)(void *ctx, uint32_t bucket, uint32_t kind);

/* The extractor; `fn` is a constant at each call site, so the compiler
 * inlines it into the scorer's loop, where `kind` is a constant too. */
static inline uint32_t s_extract(const eng_scorer_params_t *p, const char *text, size_t len,
                                 s_feature_fn fn, void *ctx)
{
    const uint32_t mask = (1u << p->bits) - 1;
    const unsigned char *t = (const unsigned char *)text;
    size_t end = len < p->max_bytes ? len : p->max_bytes;
    uint32_t n = 0, nums = 0, win_len = 0;
    uint64_t win = 0;
    const uint64_t win_mask = p->chars >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * p->chars)) - 1;
    uint32_t wh = 0, prev = 0;
    bool in_word = false, have_prev = false, num_word = false;
    unsigned char last = ' ';
    for (size_t i = 0; i <= end; i++) {
        unsigned char c = i < end ? s_fold(t[i]) : ' ';
        bool wb = s_word_byte(c);
        if (wb) {
            if (!in_word) {
                wh = 2166136261u;
                in_word = true;
                num_word = c == '0';
            }
            wh = (wh ^ c) * 16777619u;
        } else if (in_word) {
            in_word = false;
            nums += num_word;
            if (p->words >= 1) {
                fn(ctx, s_bucket(S_WORD, wh, mask), S_WORD);
                n++;
            }
            if (p->words >= 2 && have_prev) {
                fn(ctx, s_bucket(S_PAIR, prev * 16777619u ^ wh, mask), S_PAIR);
                n++;
            }
            prev = wh;
            have_prev = true;
        }
        if (p->chars > 0 && i < end && !(c == ' ' && last == ' ')) {
            win = (win << 8 | c) & win_mask;
            if (++win_len >= p->chars) {
                fn(ctx, s_char_bucket(win, p->bits), S_CHAR);
                n++;
            }
        }
        last = c;
    }
    fn(ctx, s_bucket(S_LEN, s_log2((uint32_t)end + 1), mask), S_LEN);
    fn(ctx, s_bucket(S_NUMS, s_log2(nums + 1), mask), S_NUMS);
    return n + 2;
}

typedef struct {
    eng_scorer_feature_fn fn; /* the caller's */
    void *ctx;                /* its context */
} s_public_t;

static void s_public(void *ctx, uint32_t bucket, uint32_t kind)
{
    (void)kind;
    s_public_t *pc = ctx;
    pc->fn(pc->ctx, bucket);
}

uint32_t eng_scorer_features(const eng_scorer_params_t *p, const char *text, size_t len,
                             eng_scorer_feature_fn fn, void *ctx)
{
    if (!p || !s_params_ok(p) || !fn) {
        return 0;
    }
    pthread_once(&s_once, s_tables_init);
    s_public_t pc = {fn, ctx};
    return s_extract(p, text ? text : "", text ? len : 0, s_public, &pc);
}

/* Two sums, char windows and the rest: two independent chains of
 * additions instead of one, which the processor overlaps. */
typedef struct {
    const float *w; /* weights */
    float chars;    /* of the char windows' weights */
    float other;    /* of the other features' weights */
} s_sum_t;

static inline void s_add(void *ctx, uint32_t bucket, uint32_t kind)
{
    s_sum_t *s = ctx;
    if (kind == S_CHAR) {
        s->chars += s->w[bucket];
    } else {
        s->other += s->w[bucket];
    }
}

double eng_scorer_score(const eng_scorer_t *self, const char *text, size_t len)
{
    if (!self) {
        return 0.0;
    }
    s_sum_t s = {self->w, 0.0f, 0.0f};
    uint32_t n = s_extract(&self->p, text ? text : "", text ? len : 0, s_add, &s);
    double z = self->bias + ((double)s.chars + (double)s.other) / sqrt((double)n);
    return 1.0 / (1.0 + exp(-z));
}

/* Construction ------------------------------------------------------------ */

static eng_scorer_t *s_alloc(const eng_scorer_params_t *p)
{
    pthread_once(&s_once, s_tables_init);
    eng_scorer_t *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->p = *p;
    s->w = calloc((size_t)1 << p->bits, sizeof *s->w);
    if (!s->w) {
        free(s);
        return NULL;
    }
    return s;
}

eng_scorer_t *eng_scorer_new(const eng_scorer_params_t *p, double bias, const float *weights)
{
    if (!p || !s_params_ok(p) || !isfinite(bias)) {
        return NULL;
    }
    eng_scorer_t *s = s_alloc(p);
    if (s) {
        s->bias = bias;
        if (weights) {
            memcpy(s->w, weights, ((size_t)1 << p->bits) * sizeof *s->w);
        }
    }
    return s;
}

void eng_scorer_destroy(eng_scorer_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->w);
        free(*self_p);
        *self_p = NULL;
    }
}

const eng_scorer_params_t *eng_scorer_params(const eng_scorer_t *self)
{
    return &self->p;
}

double eng_scorer_bias(const eng_scorer_t *self)
{
    return self->bias;
}

const float *eng_scorer_weights(const eng_scorer_t *self)
{
    return self->w;
}

int eng_scorer_write(const eng_scorer_t *self, const char *comment, FILE *f)
{
    fprintf(f, "hpp-scorer %d\n", ENG_SCORER_VERSION);
    if (comment && *comment) {
        fprintf(f, "# %s\n", comment);
    }
    fprintf(f, "bits %u\nwords %u\nchars %u\nmax_bytes %u\nbias %.9g\n", self->p.bits,
            self->p.words, self->p.chars, self->p.max_bytes, self->bias);
    size_t nb = (size_t)1 << self->p.bits;
    for (size_t i = 0; i < nb; i++) {
        if (fabsf(self->w[i]) >= 1e-6f) {
            fprintf(f, "w %zu %.6g\n", i, (double)self->w[i]);
        }
    }
    return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

/* Model file parsing -------------------------------------------------------- */

/* Header keys, each required once before the first weight. */
enum { K_BITS, K_WORDS, K_CHARS, K_MAX_BYTES, K_BIAS, K_COUNT };
static const char *const s_keys[K_COUNT] = {"bits", "words", "chars", "max_bytes", "bias"};

typedef struct {
    const char *file; /* for errors */
    eng_error_t *err; /* where errors go */
    size_t line;      /* current line */
    const char *text; /* the line */
    size_t n;         /* its length */
    size_t pos;       /* next byte of it */
    eng_scorer_t *s;  /* built once the header is complete */
    double head[K_COUNT];
    bool seen[K_COUNT];
    uint8_t *set; /* per bucket: a weight was given (duplicate check) */
} s_reader_t;

static int s_fail(s_reader_t *r, size_t col, eng_errcode_t code, const char *msg, const char *arg)
{
    return eng_error_set(r->err, code, r->file, (int)r->line, (int)col, "", "%s%s%s%s", msg,
                         arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
}

/* The next blank-separated token of the line, copied (NUL-terminated) into
 * buf; its 1-based column in *col. Returns its length, 0 at the end, or
 * -1 when it is longer than buf can hold. */
static int s_token(s_reader_t *r, char *buf, size_t cap, size_t *col)
{
    while (r->pos < r->n && (r->text[r->pos] == ' ' || r->text[r->pos] == '\t')) {
        r->pos++;
    }
    *col = r->pos + 1;
    size_t k = 0;
    while (r->pos < r->n && r->text[r->pos] != ' ' && r->text[r->pos] != '\t') {
        if (k + 1 >= cap) {
            return -1;
        }
        buf[k++] = r->text[r->pos++];
    }
    buf[k] = '\0';
    return (int)k;
}

static int s_number(s_reader_t *r, double *v, size_t *col)
{
    char buf[64];
    int k = s_token(r, buf, sizeof buf, col);
    if (k <= 0) {
        return s_fail(r, *col, ENG_ERR_SYNTAX, k < 0 ? "number too long" : "expected a number",
                      NULL);
    }
    char *end = NULL;
    errno = 0;
    *v = strtod(buf, &end);
    if (*end != '\0' || errno != 0 || !isfinite(*v)) {
        return s_fail(r, *col, ENG_ERR_SYNTAX, "not a finite number:", buf);
    }
    return 0;
}

static int s_line_end(s_reader_t *r)
{
    char buf[16];
    size_t col;
    int k = s_token(r, buf, sizeof buf, &col);
    if (k != 0) {
        return s_fail(r, col, ENG_ERR_SYNTAX, "unexpected text at the end of the line", NULL);
    }
    return 0;
}

static int s_whole(s_reader_t *r, int key, size_t col, double lo, double hi)
{
    double v = r->head[key];
    if (v != floor(v) || v < lo || v > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a whole number from %.0f to %.0f:", s_keys[key], lo,
                 hi);
        char num[32];
        snprintf(num, sizeof num, "%g", v);
        return s_fail(r, col, ENG_ERR_VALUE, msg, num);
    }
    return 0;
}

/* The header is complete: checks it and allocates the weights. */
static int s_build(s_reader_t *r, size_t col)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (!r->seen[k]) {
            return s_fail(r, col, ENG_ERR_SYNTAX, "the header lacks", s_keys[k]);
        }
    }
    if (s_whole(r, K_BITS, col, ENG_SCORER_MIN_BITS, ENG_SCORER_MAX_BITS) ||
        s_whole(r, K_WORDS, col, 0, 2) || s_whole(r, K_CHARS, col, 0, ENG_SCORER_MAX_CHARS) ||
        s_whole(r, K_MAX_BYTES, col, 1, ENG_SCORER_MAX_BYTES)) {
        return -1;
    }
    eng_scorer_params_t p = {(uint32_t)r->head[K_BITS], (uint32_t)r->head[K_WORDS],
                             (uint32_t)r->head[K_CHARS], (uint32_t)r->head[K_MAX_BYTES]};
    r->s = eng_scorer_new(&p, r->head[K_BIAS], NULL);
    r->set = calloc((size_t)1 << p.bits, 1);
    if (!r->s || !r->set) {
        return eng_error_set(r->err, ENG_ERR_NOMEM, r->file, (int)r->line, 0, "",
                             "out of memory for 2^%u weights", p.bits);
    }
    return 0;
}

static int s_weight(s_reader_t *r)
{
    double idx, v;
    size_t col, vcol;
    if (s_number(r, &idx, &col) || s_number(r, &v, &vcol) || s_line_end(r)) {
        return -1;
    }
    size_t nb = (size_t)1 << r->s->p.bits;
    if (idx != floor(idx) || idx < 0 || idx >= (double)nb) {
        char msg[64];
        snprintf(msg, sizeof msg, "weight index out of range 0..%zu:", nb - 1);
        char num[32];
        snprintf(num, sizeof num, "%g", idx);
        return s_fail(r, col, ENG_ERR_VALUE, msg, num);
    }
    if (fabs(v) > 1e30) {
        return s_fail(r, vcol, ENG_ERR_VALUE, "weight too large", NULL);
    }
    size_t i = (size_t)idx;
    if (r->set[i]) {
        char num[32];
        snprintf(num, sizeof num, "%zu", i);
        return s_fail(r, col, ENG_ERR_DUP, "second weight for index", num);
    }
    r->set[i] = 1;
    r->s->w[i] = (float)v;
    return 0;
}

static int s_line(s_reader_t *r)
{
    char key[32];
    size_t col;
    int k = s_token(r, key, sizeof key, &col);
    if (k < 0) {
        return s_fail(r, col, ENG_ERR_SYNTAX, "unknown key (too long)", NULL);
    }
    if (strcmp(key, "w") == 0) {
        if (!r->s && s_build(r, col) != 0) {
            return -1;
        }
        return s_weight(r);
    }
    for (int h = 0; h < K_COUNT; h++) {
        if (strcmp(key, s_keys[h]) == 0) {
            if (r->s) {
                return s_fail(r, col, ENG_ERR_SYNTAX, "header key after the weights:", key);
            }
            if (r->seen[h]) {
                return s_fail(r, col, ENG_ERR_DUP, "second", key);
            }
            r->seen[h] = true;
            return s_number(r, &r->head[h], &col) || s_line_end(r) ? -1 : 0;
        }
    }
    return s_fail(r, col, ENG_ERR_SYNTAX,
                  "unknown key (expected bits, words, chars, max_bytes, bias or w):", key);
}

eng_scorer_t *eng_scorer_parse(const char *file, const char *text, size_t len, eng_error_t *err)
{
    s_reader_t r;
    memset(&r, 0, sizeof r);
    r.file = file ? file : "<scorer>";
    r.err = err;
    hpp_lines_t lines = {text ? text : "", text ? len : 0, 0, 0};
    const char *line;
    size_t n, first;
    bool magic = false;
    int rc;
    while ((rc = hpp_lines_next(&lines, &line, &n, &first)) != 0) {
        r.line = lines.lineno;
        if (rc < 0) {
            s_fail(&r, first, ENG_ERR_SYNTAX, "control byte in the line", NULL);
            goto fail;
        }
        r.text = line;
        r.n = n;
        r.pos = 0;
        if (!magic) {
            char word[16];
            size_t col;
            double v;
            if (s_token(&r, word, sizeof word, &col) <= 0 || strcmp(word, "hpp-scorer") != 0) {
                s_fail(&r, col, ENG_ERR_SYNTAX, "not a scorer model (expected 'hpp-scorer 1')",
                       NULL);
                goto fail;
            }
            if (s_number(&r, &v, &col) || s_line_end(&r)) {
                goto fail;
            }
            if (v != ENG_SCORER_VERSION) {
                s_fail(&r, col, ENG_ERR_VALUE, "unsupported model version (this build reads 1)",
                       NULL);
                goto fail;
            }
            magic = true;
            continue;
        }
        if (s_line(&r) != 0) {
            goto fail;
        }
    }
    r.line = lines.lineno;
    if (!magic) {
        s_fail(&r, 0, ENG_ERR_SYNTAX, "empty file: not a scorer model", NULL);
        goto fail;
    }
    if (!r.s && s_build(&r, 0) != 0) {
        goto fail;
    }
    free(r.set);
    return r.s;
fail:
    free(r.set);
    eng_scorer_destroy(&r.s);
    return NULL;
}

eng_scorer_t *eng_scorer_load(const char *path, eng_error_t *err)
{
    return eng_scorer_load_observed(path, err, NULL, NULL);
}

eng_scorer_t *eng_scorer_load_observed(const char *path, eng_error_t *err, eng_source_fn on_source,
                                       void *ctx)
{
    char why[320];
    size_t len = 0;
    mode_t mode;
    char *text =
        hpp_file_read(path, ENG_SCORER_MAX_FILE, "a scorer model", &len, &mode, why, sizeof why);
    if (!text) {
        eng_error_set(err, ENG_ERR_IO, path, 0, 0, "", "%s", why);
        return NULL;
    }
    if (on_source) {
        on_source(ctx, path, text, len);
    }
    eng_scorer_t *s = eng_scorer_parse(path, text, len, err);
    free(text);
    return s;
}
