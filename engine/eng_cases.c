/* eng_cases.c - parse and run policy test cases.
 *
 * The loader copies every key and unescaped value of a cases file into one
 * owned buffer and keeps offsets, so a case's features can borrow stable
 * strings when it runs. Loading checks everything it can without a policy
 * (known keys, values that parse, status names) and reports each problem at
 * its file:line:col through the policy diagnostics, so a broken cases file
 * reads like a broken policy. Running resolves each case and diffs the
 * expected values against the decision.
 */
#include "eng_cases.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_lex.h"
#include "eng_policy_internal.h"

typedef struct {
    uint32_t koff, klen; /* key in buf */
    uint32_t voff, vlen; /* value in buf */
    uint32_t src_off;    /* where the pair starts in the source */
} s_kv_t;

typedef struct {
    uint32_t name_off, name_len; /* case name in buf */
    int line;                    /* 1-based line of the case */
    uint32_t req_first, nreq;    /* request pairs in kvs[] */
    uint32_t exp_first, nexp;    /* expectations in kvs[] */
} s_case_t;

struct eng_cases {
    char *name;        /* file name for messages (owned) */
    char *buf;         /* keys and values (owned, stable after loading) */
    size_t buflen;     /* used */
    size_t bufcap;     /* allocated */
    s_kv_t *kvs;       /* all pairs */
    uint32_t nkvs;     /* used */
    uint32_t capkvs;   /* allocated */
    s_case_t *cases;   /* cases in file order */
    uint32_t ncases;   /* used */
    uint32_t capcases; /* allocated */
};

/* Expectation keys. */
static const char *const s_expect_keys[] = {"model",         "provider", "tier",     "rule",
                                            "error",         "cost",     "fallback", "nfallbacks",
                                            "output_tokens", NULL};

/* Features from text ------------------------------------------------------ */

static bool s_key_is(const char *k, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(k, lit, n) == 0;
}

/* Integer with an optional k / M suffix; negative allowed (for bad_request tests). */
static int s_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    if (i >= n) {
        return -1;
    }
    int64_t v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (INT64_MAX - 9) / 10) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    int64_t mul = 1;
    if (i < n && (s[i] == 'k' || s[i] == 'K')) {
        mul = 1000;
        i++;
    } else if (i < n && (s[i] == 'm' || s[i] == 'M')) {
        mul = 1000000;
        i++;
    }
    if (i != n || v > INT64_MAX / mul) {
        return -1;
    }
    *out = (neg ? -v : v) * mul;
    return 0;
}

static int s_bool(const char *s, size_t n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    for (int i = 0; yes[i]; i++) {
        if (s_key_is(s, n, yes[i])) {
            *out = true;
            return 0;
        }
        if (s_key_is(s, n, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int s_why(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The count a request key sets, NULL when the key is not a count. */
static int64_t *s_count_key(hpp_features_t *f, const char *key, size_t klen)
{
    const struct {
        const char *name;
        int64_t *dst;
    } counts[] = {
        {"prompt_tokens", &f->prompt_tokens},
        {"output_tokens", &f->output_tokens},
        {"cache_read_tokens", &f->cache_read_tokens},
        {"cache_write_tokens", &f->cache_write_tokens},
        {"reasoning_tokens", &f->reasoning_tokens},
        {"images", &f->images},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (s_key_is(key, klen, counts[i].name)) {
            return counts[i].dst;
        }
    }
    return NULL;
}

static int s_why(char *why, size_t n, const char *fmt, ...)
{
    if (why && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int eng_features_set(hpp_features_t *f, const char *key, size_t klen, const char *val, size_t vlen,
                     char *why, size_t whylen)
{
    hpp_str_t sv = {val, (uint32_t)vlen};
    if (vlen > UINT32_MAX / 2) {
        return s_why(why, whylen, "value too long");
    }
    if (s_key_is(key, klen, "model")) {
        f->model = sv;
    } else if (s_key_is(key, klen, "group")) {
        f->group = sv;
    } else if (s_key_is(key, klen, "text")) {
        f->text = sv;
    } else if (s_count_key(f, key, klen)) {
        int64_t v;
        if (s_int(val, vlen, &v) != 0) {
            return s_why(why, whylen, "%.*s needs a whole number (suffixes k and M allowed)",
                         (int)klen, key);
        }
        *s_count_key(f, key, klen) = v;
    } else if (s_key_is(key, klen, "vision") || s_key_is(key, klen, "tools") ||
               s_key_is(key, klen, "json")) {
        bool *dst = key[0] == 'v' ? &f->vision : key[0] == 't' ? &f->tools : &f->json;
        if (s_bool(val, vlen, dst) != 0) {
            return s_why(why, whylen, "expected true or false");
        }
    } else if (s_key_is(key, klen, "budget") || s_key_is(key, klen, "budget_usd")) {
        char buf[64];
        if (vlen == 0 || vlen >= sizeof buf) {
            return s_why(why, whylen, "budget needs a number of USD");
        }
        memcpy(buf, val, vlen);
        buf[vlen] = '\0';
        char *end;
        errno = 0;
        double d = strtod(buf, &end);
        if (*end != '\0') {
            return s_why(why, whylen, "budget needs a number of USD");
        }
        /* NaN and negatives pass on purpose: the resolver answers bad_request. */
        f->has_budget = true;
        f->budget_usd = d;
    } else if (s_key_is(key, klen, "hints")) {
        size_t i = 0;
        while (i <= vlen) {
            size_t j = i;
            while (j < vlen && val[j] != ',') {
                j++;
            }
            if (j > i) {
                if (f->nhints >= HPP_MAX_HINTS) {
                    return s_why(why, whylen, "too many hints (at most 16)");
                }
                f->hints[f->nhints].ptr = val + i;
                f->hints[f->nhints].len = (uint32_t)(j - i);
                f->nhints++;
            }
            i = j + 1;
        }
    } else if (klen > 5 && memcmp(key, "meta.", 5) == 0) {
        if (f->nmeta >= HPP_MAX_META) {
            return s_why(why, whylen, "too many metadata entries (at most 16)");
        }
        f->meta_keys[f->nmeta].ptr = key + 5;
        f->meta_keys[f->nmeta].len = (uint32_t)(klen - 5);
        f->meta_vals[f->nmeta] = sv;
        f->nmeta++;
    } else {
        return s_why(why, whylen,
                     "unknown request key (expected one of: model, prompt_tokens, output_tokens, "
                     "cache_read_tokens, cache_write_tokens, reasoning_tokens, images, vision, "
                     "tools, json, hints, budget, group, text, meta.KEY)");
    }
    return 0;
}

/* Loading ------------------------------------------------------------------ */

typedef struct {
    eng_cases_t *c;     /* being built */
    eng_diags_t *diags; /* sink */
    const char *src;    /* source */
    size_t len;         /* its length */
    size_t pos;         /* cursor */
    int errors;         /* reported */
    bool oom;           /* allocation failed */
} s_loader_t;

static void s_err(s_loader_t *l, size_t off, size_t span, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_err(s_loader_t *l, size_t off, size_t span, const char *fmt, ...)
{
    l->errors++;
    va_list ap;
    va_start(ap, fmt);
    eng_diags_vadd(l->diags, ENG_DIAG_ERROR, l->c->name, l->src, l->len, (uint32_t)off,
                   (uint32_t)span, fmt, ap);
    va_end(ap);
}

static uint32_t s_put(s_loader_t *l, const char *s, size_t n)
{
    eng_cases_t *c = l->c;
    if (c->buflen + n + 1 > c->bufcap) {
        size_t cap = c->bufcap ? c->bufcap : 1024;
        while (cap < c->buflen + n + 1) {
            cap *= 2;
        }
        char *b = realloc(c->buf, cap);
        if (!b) {
            l->oom = true;
            return 0;
        }
        c->buf = b;
        c->bufcap = cap;
    }
    uint32_t off = (uint32_t)c->buflen;
    if (n) {
        memcpy(c->buf + off, s, n);
    }
    c->buf[off + n] = '\0';
    c->buflen += n + 1;
    return off;
}

/* Skips blanks and continuations; stops at a newline or a comment's end. */
static void s_blank(s_loader_t *l)
{
    while (l->pos < l->len) {
        char ch = l->src[l->pos];
        if (ch == ' ' || ch == '\t' || ch == '\r') {
            l->pos++;
        } else if (ch == '\\' && l->pos + 1 < l->len &&
                   (l->src[l->pos + 1] == '\n' ||
                    (l->src[l->pos + 1] == '\r' && l->pos + 2 < l->len &&
                     l->src[l->pos + 2] == '\n'))) {
            l->pos += l->src[l->pos + 1] == '\n' ? 2 : 3;
        } else if (ch == '#') {
            while (l->pos < l->len && l->src[l->pos] != '\n') {
                l->pos++;
            }
        } else {
            return;
        }
    }
}

static bool s_at_eol(const s_loader_t *l)
{
    return l->pos >= l->len || l->src[l->pos] == '\n';
}

static bool s_word_char(char ch)
{
    return ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n' && ch != '=' && ch != '"' &&
           ch != '#';
}

/* Reads a value: "quoted" with escapes, or a bare run. Copies it unescaped
 * into buf. Returns 0, or -1 after reporting. */
static int s_value(s_loader_t *l, uint32_t *off, uint32_t *n)
{
    if (l->pos < l->len && l->src[l->pos] == '"') {
        size_t start = l->pos++;
        char tmp[8192];
        size_t k = 0;
        while (l->pos < l->len && l->src[l->pos] != '"' && l->src[l->pos] != '\n') {
            char ch = l->src[l->pos++];
            if (ch == '\\' && l->pos < l->len && l->src[l->pos] != '\n') {
                ch = l->src[l->pos++];
                ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch == 'r' ? '\r' : ch;
            }
            if (k >= sizeof tmp) {
                s_err(l, start, 1, "quoted value longer than 8192 bytes");
                return -1;
            }
            tmp[k++] = ch;
        }
        if (l->pos >= l->len || l->src[l->pos] != '"') {
            s_err(l, start, 1, "unterminated string");
            return -1;
        }
        l->pos++;
        *off = s_put(l, tmp, k);
        *n = (uint32_t)k;
        return 0;
    }
    size_t start = l->pos;
    while (l->pos < l->len && s_word_char(l->src[l->pos])) {
        l->pos++;
    }
    *off = s_put(l, l->src + start, l->pos - start);
    *n = (uint32_t)(l->pos - start);
    return 0;
}

static int s_add_kv(s_loader_t *l, const s_kv_t *kv)
{
    eng_cases_t *c = l->c;
    if (c->nkvs == c->capkvs) {
        uint32_t cap = c->capkvs ? c->capkvs * 2 : 64;
        s_kv_t *k = realloc(c->kvs, cap * sizeof *k);
        if (!k) {
            l->oom = true;
            return -1;
        }
        c->kvs = k;
        c->capkvs = cap;
    }
    c->kvs[c->nkvs++] = *kv;
    return 0;
}

static bool s_expect_key(const char *k, size_t n)
{
    for (int i = 0; s_expect_keys[i]; i++) {
        if (s_key_is(k, n, s_expect_keys[i])) {
            return true;
        }
    }
    return false;
}

/* Checks an expectation's value where it can be checked without a policy. */
static void s_check_expect(s_loader_t *l, const s_kv_t *kv)
{
    const char *k = l->c->buf + kv->koff;
    const char *v = l->c->buf + kv->voff;
    if (s_key_is(k, kv->klen, "error") && hpp_status_from_name(v, kv->vlen) < 0) {
        s_err(l, kv->src_off, kv->klen,
              "unknown status '%s' (expected ok, bad_request, "
              "unknown_model, model_not_allowed, insufficient_budget, "
              "no_free_variant, no_candidate)",
              v);
    } else if (s_key_is(k, kv->klen, "cost")) {
        hpp_pusd_t p;
        if (hpp_pusd_parse(v, kv->vlen, 12, &p) != 0) {
            s_err(l, kv->src_off, kv->klen, "cost needs a decimal USD amount, got '%s'", v);
        }
    } else if (s_key_is(k, kv->klen, "nfallbacks") || s_key_is(k, kv->klen, "output_tokens")) {
        int64_t n;
        if (s_int(v, kv->vlen, &n) != 0 || n < 0) {
            s_err(l, kv->src_off, kv->klen, "expected a whole number, got '%s'", v);
        }
    }
}

/* Parses one logical line starting at l->pos (not blank). */
static void s_case(s_loader_t *l)
{
    eng_cases_t *c = l->c;
    size_t start = l->pos;
    s_case_t cs;
    memset(&cs, 0, sizeof cs);
    int col;
    uint32_t ls;
    eng_lex_locate(l->src, l->len, (uint32_t)start, &cs.line, &col, &ls);
    while (l->pos < l->len && s_word_char(l->src[l->pos])) {
        l->pos++;
    }
    if (l->pos == start || (l->pos < l->len && l->src[l->pos] == '=')) {
        s_err(l, start, 1, "a case starts with its name");
        goto skip;
    }
    cs.name_off = s_put(l, l->src + start, l->pos - start);
    cs.name_len = (uint32_t)(l->pos - start);
    cs.req_first = c->nkvs;
    bool expecting = false;
    for (;;) {
        s_blank(l);
        if (s_at_eol(l)) {
            break;
        }
        size_t at = l->pos;
        if (l->pos + 1 < l->len && l->src[l->pos] == '=' && l->src[l->pos + 1] == '>') {
            if (expecting) {
                s_err(l, at, 2, "second '=>' in one case");
                goto skip;
            }
            l->pos += 2;
            expecting = true;
            cs.nreq = c->nkvs - cs.req_first;
            cs.exp_first = c->nkvs;
            continue;
        }
        while (l->pos < l->len && s_word_char(l->src[l->pos])) {
            l->pos++;
        }
        if (l->pos == at || l->pos >= l->len || l->src[l->pos] != '=') {
            s_err(l, at, l->pos > at ? l->pos - at : 1, "expected key=value");
            goto skip;
        }
        s_kv_t kv;
        kv.src_off = (uint32_t)at;
        kv.klen = (uint32_t)(l->pos - at);
        kv.koff = s_put(l, l->src + at, kv.klen);
        l->pos++; /* = */
        if (s_value(l, &kv.voff, &kv.vlen) != 0 || s_add_kv(l, &kv) != 0) {
            goto skip;
        }
        const char *k = c->buf + kv.koff;
        if (expecting) {
            if (!s_expect_key(k, kv.klen)) {
                s_err(l, at, kv.klen,
                      "unknown expectation '%s' (expected one of: model, provider, tier, rule, "
                      "error, cost, fallback, nfallbacks, output_tokens)",
                      k);
            } else {
                s_check_expect(l, &kv);
            }
        } else {
            hpp_features_t scratch;
            hpp_features_init(&scratch);
            char why[256];
            if (eng_features_set(&scratch, k, kv.klen, c->buf + kv.voff, kv.vlen, why,
                                 sizeof why) != 0) {
                s_err(l, at, kv.klen, "%s", why);
            }
        }
    }
    if (!expecting) {
        s_err(l, start, cs.name_len, "case '%s' has no '=>' and expectations",
              c->buf + cs.name_off);
        return;
    }
    cs.nexp = c->nkvs - cs.exp_first;
    if (cs.nexp == 0) {
        s_err(l, start, cs.name_len, "case '%s' expects nothing", c->buf + cs.name_off);
        return;
    }
    if (c->ncases == c->capcases) {
        uint32_t cap = c->capcases ? c->capcases * 2 : 32;
        s_case_t *n = realloc(c->cases, cap * sizeof *n);
        if (!n) {
            l->oom = true;
            return;
        }
        c->cases = n;
        c->capcases = cap;
    }
    c->cases[c->ncases++] = cs;
    return;
skip:
    while (!s_at_eol(l)) {
        l->pos++;
    }
}

eng_cases_t *eng_cases_load_buffer(const char *name, const char *src, size_t len,
                                   eng_diags_t *diags)
{
    eng_cases_t *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->name = strdup(name ? name : "<cases>");
    s_loader_t l = {c, diags, src, len, eng_bom_len(src, len), 0, false};
    if (!c->name) {
        l.oom = true;
    }
    while (!l.oom && l.pos < l.len) {
        s_blank(&l);
        if (s_at_eol(&l)) {
            l.pos++;
            continue;
        }
        s_case(&l);
    }
    if (!l.oom && l.errors == 0 && c->ncases == 0) {
        l.errors++;
        eng_diags_add(diags, ENG_DIAG_ERROR, c->name, NULL, 0, 0, 0, "no cases in the file");
    }
    if (l.oom) {
        eng_diags_add(diags, ENG_DIAG_ERROR, name, NULL, 0, 0, 0, "out of memory");
    }
    if (l.oom || l.errors) {
        eng_cases_destroy(&c);
    }
    return c;
}

eng_cases_t *eng_cases_load(const char *path, eng_diags_t *diags)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eng_diags_add(diags, ENG_DIAG_ERROR, path, NULL, 0, 0, 0, "cannot read cases: %s",
                      strerror(errno));
        return NULL;
    }
    char *src = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *n = cap <= ENG_LEX_MAX_SRC ? realloc(src, cap) : NULL;
            if (!n) {
                free(src);
                fclose(f);
                eng_diags_add(diags, ENG_DIAG_ERROR, path, NULL, 0, 0, 0,
                              "cases file too large or out of memory");
                return NULL;
            }
            src = n;
        }
        size_t got = fread(src + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    eng_cases_t *c = eng_cases_load_buffer(path, src, len, diags);
    free(src);
    return c;
}

void eng_cases_destroy(eng_cases_t **self_p)
{
    if (self_p && *self_p) {
        eng_cases_t *c = *self_p;
        free(c->name);
        free(c->buf);
        free(c->kvs);
        free(c->cases);
        free(c);
        *self_p = NULL;
    }
}

size_t eng_cases_count(const eng_cases_t *self)
{
    return self ? self->ncases : 0;
}

/* Running ------------------------------------------------------------------- */

/* The actual value of an expectation key, as text. */
static const char *s_actual(const eng_policy_t *pol, const eng_decision_t *d, const char *key,
                            size_t klen, char *buf, size_t n)
{
    if (s_key_is(key, klen, "model")) {
        return d->model ? d->model->id : "-";
    }
    if (s_key_is(key, klen, "provider")) {
        return d->endpoint ? d->endpoint->provider : "-";
    }
    if (s_key_is(key, klen, "tier")) {
        return d->tier_name && d->tier_name[0] ? d->tier_name : "-";
    }
    if (s_key_is(key, klen, "rule")) {
        return d->rule && d->rule[0] ? d->rule : "-";
    }
    if (s_key_is(key, klen, "error")) {
        return hpp_status_name(d->status);
    }
    if (s_key_is(key, klen, "cost")) {
        hpp_pusd_format(d->status == HPP_OK ? d->cost.total : 0, false, buf, n);
        return buf;
    }
    if (s_key_is(key, klen, "fallback")) {
        if (d->nfallbacks == 0) {
            return "-";
        }
        size_t nm;
        const eng_model_t *models = eng_catalog_models(eng_policy_catalog(pol), &nm);
        return models[d->fallbacks[0]->model].id;
    }
    if (s_key_is(key, klen, "nfallbacks")) {
        snprintf(buf, n, "%u", d->nfallbacks);
        return buf;
    }
    if (s_key_is(key, klen, "output_tokens")) {
        snprintf(buf, n, "%lld", (long long)d->output_tokens);
        return buf;
    }
    return "?";
}

/* Does the actual text match the expected one? Costs compare as amounts. */
static bool s_match(const char *key, size_t klen, const char *exp, size_t elen, const char *act)
{
    if (s_key_is(key, klen, "cost")) {
        hpp_pusd_t a, b;
        return hpp_pusd_parse(exp, elen, 12, &a) == 0 &&
               hpp_pusd_parse(act, strlen(act), 12, &b) == 0 && a == b;
    }
    return strlen(act) == elen && memcmp(act, exp, elen) == 0;
}

static void s_print_request(const eng_cases_t *c, const s_case_t *cs, FILE *out)
{
    fputs("    request:", out);
    for (uint32_t i = 0; i < cs->nreq; i++) {
        const s_kv_t *kv = &c->kvs[cs->req_first + i];
        const char *v = c->buf + kv->voff;
        bool quote = kv->vlen == 0 || strpbrk(v, " \t\n\"") != NULL;
        fprintf(out, " %s=", c->buf + kv->koff);
        if (!quote) {
            fputs(v, out);
            continue;
        }
        fputc('"', out);
        for (uint32_t k = 0; k < kv->vlen && k < 80; k++) {
            char ch = v[k];
            if (ch == '\n') {
                fputs("\\n", out);
            } else if (ch == '"' || ch == '\\') {
                fprintf(out, "\\%c", ch);
            } else {
                fputc(ch, out);
            }
        }
        fputs(kv->vlen > 80 ? "...\"" : "\"", out);
    }
    fputc('\n', out);
}

/* Resolves case `cs` against `pol` into `d`. Returns true when it passes;
 * otherwise *first_bad is the index (in the case's expectations) of the
 * first one that differs, or nexp when only the status does (a model was
 * expected, the request failed). */
static bool s_case_eval(const eng_cases_t *self, const s_case_t *cs, const eng_policy_t *pol,
                        eng_decision_t *d, uint32_t *first_bad)
{
    hpp_features_t f;
    hpp_features_init(&f);
    for (uint32_t k = 0; k < cs->nreq; k++) {
        const s_kv_t *kv = &self->kvs[cs->req_first + k];
        eng_features_set(&f, self->buf + kv->koff, kv->klen, self->buf + kv->voff, kv->vlen, NULL,
                         0);
    }
    eng_resolve(pol, &f, d, NULL);
    bool ok = true, has_error = false;
    *first_bad = cs->nexp;
    for (uint32_t k = 0; k < cs->nexp; k++) {
        const s_kv_t *kv = &self->kvs[cs->exp_first + k];
        const char *key = self->buf + kv->koff;
        char buf[32];
        const char *act = s_actual(pol, d, key, kv->klen, buf, sizeof buf);
        if (!s_match(key, kv->klen, self->buf + kv->voff, kv->vlen, act)) {
            if (ok) {
                *first_bad = k;
            }
            ok = false;
        }
        has_error = has_error || s_key_is(key, kv->klen, "error");
    }
    /* Expecting a model means expecting success too. */
    if (!has_error && d->status != HPP_OK) {
        ok = false;
    }
    return ok;
}

/* When a failing expectation names a rule, tier or model the policy (or
 * its catalog) does not have, says so, with the nearest name: a typo in the
 * cases file reads as a wrong decision otherwise. "" when the name exists. */
static const char *s_unknown_name(const eng_policy_t *pol, const char *key, size_t klen,
                                  const char *exp, size_t elen, char *buf, size_t n)
{
    eng_suggest_t sg;
    eng_suggest_init(&sg, exp, elen);
    const char *what = NULL;
    if (elen == 1 && exp[0] == '-') {
        return "";
    }
    if (s_key_is(key, klen, "rule")) {
        what = "rule";
        for (uint32_t r = 0; r < pol->nrules; r++) {
            if (strlen(pol->rules[r].name) == elen && memcmp(pol->rules[r].name, exp, elen) == 0) {
                return "";
            }
            eng_suggest_add(&sg, pol->rules[r].name, strlen(pol->rules[r].name));
        }
    } else if (s_key_is(key, klen, "tier")) {
        what = "tier";
        for (int t = 0; t < pol->ntiers; t++) {
            if (strlen(pol->tiers[t].name) == elen && memcmp(pol->tiers[t].name, exp, elen) == 0) {
                return "";
            }
            eng_suggest_add(&sg, pol->tiers[t].name, strlen(pol->tiers[t].name));
        }
    } else if (s_key_is(key, klen, "model") || s_key_is(key, klen, "fallback")) {
        what = "model";
        if (eng_catalog_find(pol->catalog, exp, elen)) {
            return "";
        }
        for (uint32_t m = 0; m < pol->nmodels; m++) {
            eng_suggest_add(&sg, pol->models[m].id, strlen(pol->models[m].id));
        }
    } else {
        return "";
    }
    char dym[300];
    snprintf(buf, n, "  (no such %s%s)", what, eng_suggest_text(&sg, dym, sizeof dym));
    return buf;
}

size_t eng_cases_run(const eng_cases_t *self, const eng_policy_t *pol, FILE *out, bool verbose)
{
    size_t passed = 0, failed = 0;
    for (uint32_t i = 0; self && i < self->ncases; i++) {
        const s_case_t *cs = &self->cases[i];
        eng_decision_t d;
        uint32_t first_bad;
        if (s_case_eval(self, cs, pol, &d, &first_bad)) {
            passed++;
            if (verbose) {
                fprintf(out, "ok   %s\n", self->buf + cs->name_off);
            }
            continue;
        }
        failed++;
        fprintf(out, "FAIL %s:%d: %s\n", self->name, cs->line, self->buf + cs->name_off);
        s_print_request(self, cs, out);
        bool has_error = false;
        for (uint32_t k = 0; k < cs->nexp; k++) {
            const s_kv_t *kv = &self->kvs[cs->exp_first + k];
            const char *key = self->buf + kv->koff;
            char buf[32];
            const char *act = s_actual(pol, &d, key, kv->klen, buf, sizeof buf);
            has_error = has_error || s_key_is(key, kv->klen, "error");
            if (s_match(key, kv->klen, self->buf + kv->voff, kv->vlen, act)) {
                fprintf(out, "      %s: %s\n", key, act);
            } else {
                char note[400];
                fprintf(out, "  -   %s: %s%s\n", key, self->buf + kv->voff,
                        s_unknown_name(pol, key, kv->klen, self->buf + kv->voff, kv->vlen, note,
                                       sizeof note));
                fprintf(out, "  +   %s: %s\n", key, act);
            }
        }
        if (!has_error && d.status != HPP_OK) {
            fprintf(out, "  -   error: ok\n  +   error: %s\n", hpp_status_name(d.status));
        }
        fprintf(out, "      (%s)\n", d.message);
    }
    fprintf(out, "%zu passed, %zu failed\n", passed, failed);
    return failed;
}

size_t eng_cases_check(const eng_cases_t *self, const eng_policy_t *pol, eng_cases_fail_fn fn,
                       void *ctx)
{
    size_t failed = 0;
    for (uint32_t i = 0; self && i < self->ncases; i++) {
        const s_case_t *cs = &self->cases[i];
        eng_decision_t d;
        uint32_t k;
        if (s_case_eval(self, cs, pol, &d, &k)) {
            continue;
        }
        failed++;
        char msg[256];
        const char *name = self->buf + cs->name_off;
        if (k < cs->nexp) {
            const s_kv_t *kv = &self->kvs[cs->exp_first + k];
            const char *key = self->buf + kv->koff;
            char buf[32];
            const char *act = s_actual(pol, &d, key, kv->klen, buf, sizeof buf);
            snprintf(msg, sizeof msg, "case '%s' fails: %s: expected %.*s, got %s", name, key,
                     (int)(kv->vlen > 80 ? 80 : kv->vlen), self->buf + kv->voff, act);
        } else {
            snprintf(msg, sizeof msg, "case '%s' fails: error: expected ok, got %s (%s)", name,
                     hpp_status_name(d.status), d.message);
        }
        if (fn) {
            fn(ctx, self->name, cs->line, msg);
        }
    }
    return failed;
}

/* Coverage ------------------------------------------------------------------ */

/* Does `pol` match a routing rule for `f`? (A request that matches none
 * fails with no_candidate and an empty rule name.) */
static bool s_routes(const eng_policy_t *pol, const hpp_features_t *f, const char **rule)
{
    eng_decision_t d;
    eng_resolve(pol, f, &d, NULL);
    *rule = d.rule ? d.rule : "";
    return d.rule && d.rule[0];
}

/* Checks one probe: old routes it, next must too. Returns 1 when lost. */
static size_t s_probe(const eng_policy_t *old, const eng_policy_t *next, const hpp_features_t *f,
                      const char *what, const char *file, eng_cases_fail_fn fn, void *ctx)
{
    const char *old_rule, *new_rule;
    if (!s_routes(old, f, &old_rule) || s_routes(next, f, &new_rule)) {
        return 0;
    }
    if (fn) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "requests with %s matched rule '%s' of the serving policy and match no rule of "
                 "this one: they would fail with no_candidate",
                 what, old_rule);
        fn(ctx, file, 0, msg);
    }
    return 1;
}

size_t eng_policy_coverage_lost(const eng_policy_t *old, const eng_policy_t *next, const char *file,
                                eng_cases_fail_fn fn, void *ctx)
{
    size_t lost = 0;
    hpp_features_t f;
    char what[128];
    hpp_features_init(&f);
    lost += s_probe(old, next, &f, "no feature at all", file, fn, ctx);
    for (uint32_t w = 0; w < old->nwords; w++) {
        hpp_features_init(&f);
        f.hints[0] = (hpp_str_t){old->words[w], old->word_len[w]};
        f.nhints = 1;
        snprintf(what, sizeof what, "hint '%.*s'", (int)old->word_len[w], old->words[w]);
        lost += s_probe(old, next, &f, what, file, fn, ctx);
    }
    for (int g = 0; g < old->ngroups; g++) {
        hpp_features_init(&f);
        f.group = (hpp_str_t){old->groups[g].name, (uint32_t)strlen(old->groups[g].name)};
        snprintf(what, sizeof what, "group '%.60s'", old->groups[g].name);
        lost += s_probe(old, next, &f, what, file, fn, ctx);
    }
    static const char *const caps[] = {"vision", "tools", "json"};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        hpp_features_init(&f);
        f.vision = i == 0;
        f.tools = i == 1;
        f.json = i == 2;
        snprintf(what, sizeof what, "%s", caps[i]);
        lost += s_probe(old, next, &f, what, file, fn, ctx);
    }
    return lost;
}
