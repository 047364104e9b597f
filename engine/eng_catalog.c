/* eng_catalog.c - the catalog builder, freeze, lookups and file loading.
 *
 * Building and reading are two phases. While building, loaders append flat
 * records (one per endpoint) and aliases into a staging area backed by one
 * string arena; a failed load truncates the staging area back to where it
 * was, so the catalog is unchanged. Freeze applies the aliases, drops
 * endpoints superseded by a later file, groups records by model id, sorts
 * models by id and each model's endpoints cheapest first, merges model
 * attributes, and builds an open-addressing hash so eng_catalog_find() is
 * O(1) and allocation-free. After freeze nothing moves: the arrays and the
 * arena are read-only and shared by every worker thread.
 *
 * Owns: the arena, records, aliases, and the frozen arrays and indexes.
 */
#define _GNU_SOURCE /* qsort_r */
#include "eng_catalog_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t from;     /* arena offset of the provider-specific id */
    uint32_t to;       /* arena offset of the model id */
    uint32_t load_seq; /* later loads win */
} s_alias_t;

/* Open-addressing string -> uint32 index over strings that never move. */
typedef struct {
    const char **keys; /* key of each entry */
    uint32_t *lens;    /* its length */
    uint32_t *values;  /* payload (model index) */
    uint32_t *slots;   /* entry index + 1; 0 = empty */
    uint32_t mask;     /* slot count - 1 (a power of two) */
    uint32_t n;        /* entries used */
} s_index_t;

struct eng_catalog {
    char *arena;            /* every string, NUL-terminated */
    size_t arena_len;       /* bytes used */
    size_t arena_cap;       /* bytes allocated */
    eng_cat_record_t *recs; /* staged endpoints */
    size_t nrecs;           /* used */
    size_t recs_cap;        /* allocated */
    s_alias_t *aliases;     /* staged aliases */
    size_t naliases;        /* used */
    size_t aliases_cap;     /* allocated */
    uint32_t load_seq;      /* number of load calls so far */
    uint32_t cur_source;    /* arena offset of the file being loaded */
    bool frozen;            /* read-only from now on */
    eng_model_t *models;    /* frozen: sorted by id */
    size_t nmodels;         /* count */
    eng_endpoint_t *eps;    /* frozen: grouped by model, cheapest first */
    size_t neps;            /* count */
    s_index_t by_id;        /* model id -> model index */
    s_index_t by_alias;     /* alias and native id -> model index */
};

/* Lifecycle ---------------------------------------------------------------- */

eng_catalog_t *eng_catalog_new(void)
{
    return calloc(1, sizeof(eng_catalog_t));
}

static void s_index_free(s_index_t *ix)
{
    free(ix->keys);
    free(ix->lens);
    free(ix->values);
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

void eng_catalog_destroy(eng_catalog_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_catalog_t *self = *self_p;
    free(self->arena);
    free(self->recs);
    free(self->aliases);
    free(self->models);
    free(self->eps);
    s_index_free(&self->by_id);
    s_index_free(&self->by_alias);
    free(self);
    *self_p = NULL;
}

/* Key paths and errors ------------------------------------------------------ */

static size_t s_path_append(eng_cat_path_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t s_path_append(eng_cat_path_t *p, const char *fmt, ...)
{
    size_t old = p->len;
    if (p->len < sizeof p->buf - 1) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + p->len, sizeof p->buf - p->len, fmt, ap);
        va_end(ap);
        if (n > 0) {
            p->len += (size_t)n;
            if (p->len > sizeof p->buf - 1) {
                p->len = sizeof p->buf - 1;
            }
        }
    }
    p->buf[p->len] = '\0';
    return old;
}

/* A key is written bare when it is an identifier-like word, else quoted. */
static bool s_is_plain_key(const char *key)
{
    if (!*key) {
        return false;
    }
    for (const char *c = key; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

size_t eng_cat_path_key(eng_cat_path_t *p, const char *key)
{
    if (s_is_plain_key(key)) {
        return s_path_append(p, "%s%s", p->len ? "." : "", key);
    }
    return s_path_append(p, "[\"%.100s\"]", key);
}

size_t eng_cat_path_index(eng_cat_path_t *p, size_t i)
{
    return s_path_append(p, "[%zu]", i);
}

void eng_cat_path_pop(eng_cat_path_t *p, size_t len)
{
    if (len < sizeof p->buf) {
        p->len = len;
        p->buf[len] = '\0';
    }
}

int eng_cat_fail(eng_error_t *err, const char *file, const eng_cat_path_t *path, eng_errcode_t code,
                 const char *fmt, ...)
{
    if (!err) {
        return -1;
    }
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *where = path && path->len ? path->buf : "(top level)";
    return eng_error_set(err, code, file, 0, 0, where, "%s", msg);
}

/* JSON value helpers --------------------------------------------------------- */

static const char *s_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

int eng_cat_json_price(const json_t *v, int scale_exp, bool na_minus_one, const char *file,
                       const eng_cat_path_t *path, hpp_pusd_t *out, eng_error_t *err)
{
    if (!v || json_is_null(v)) {
        *out = HPP_PRICE_NA;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (na_minus_one && len == 2 && memcmp(s, "-1", 2) == 0) {
            *out = HPP_PRICE_NA;
            return 0;
        }
        if (len > 0 && s[0] == '-') {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "negative price \"%.40s\"", s);
        }
        if (hpp_pusd_parse(s, len, scale_exp, out) < 0) {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE,
                                "price \"%.40s\" is not a decimal number (or overflows)", s);
        }
        return 0;
    }
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (na_minus_one && i == -1) {
            *out = HPP_PRICE_NA;
            return 0;
        }
        if (i < 0) {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "negative price %lld",
                                (long long)i);
        }
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lld", (long long)i);
        if (hpp_pusd_parse(buf, (size_t)n, scale_exp, out) < 0) {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "price %lld overflows",
                                (long long)i);
        }
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (na_minus_one && d == -1.0) {
            *out = HPP_PRICE_NA;
            return 0;
        }
        if (d < 0) {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "negative price %g", d);
        }
        if (hpp_pusd_from_double(d, scale_exp, out) < 0) {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "price %g overflows", d);
        }
        return 0;
    }
    return eng_cat_fail(err, file, path, ENG_ERR_TYPE,
                        "expected a price (number, decimal string or null), got %s",
                        s_json_type_name(v));
}

int eng_cat_json_count(const json_t *v, const char *file, const eng_cat_path_t *path, uint32_t *out,
                       eng_error_t *err)
{
    *out = 0;
    if (!v || json_is_null(v)) {
        return 0;
    }
    long long n = -1;
    if (json_is_integer(v)) {
        n = (long long)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 9e18 && d == (double)(long long)d) {
            n = (long long)d;
        } else {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE,
                                "expected a whole non-negative token count, got %g", d);
        }
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (end == s || *end || errno || s[0] == '-' || s[0] == ' ') {
            return eng_cat_fail(err, file, path, ENG_ERR_VALUE,
                                "token count \"%.40s\" is not a whole number", s);
        }
    } else {
        return eng_cat_fail(err, file, path, ENG_ERR_TYPE, "expected a token count, got %s",
                            s_json_type_name(v));
    }
    if (n < 0) {
        return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "negative token count %lld", n);
    }
    *out = n > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return 0;
}

int eng_cat_json_bool(const json_t *v, const char *file, const eng_cat_path_t *path, bool *out,
                      eng_error_t *err)
{
    *out = false;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return eng_cat_fail(err, file, path, ENG_ERR_TYPE, "expected true or false, got %s",
                            s_json_type_name(v));
    }
    *out = json_is_true(v);
    return 0;
}

int eng_cat_json_string(const json_t *obj, const char *key, const char *file, eng_cat_path_t *path,
                        const char **out, eng_error_t *err)
{
    *out = NULL;
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    size_t mark = eng_cat_path_key(path, key);
    if (!json_is_string(v)) {
        return eng_cat_fail(err, file, path, ENG_ERR_TYPE, "expected a string, got %s",
                            s_json_type_name(v));
    }
    if (json_string_length(v) > ENG_CATALOG_MAX_ID) {
        return eng_cat_fail(err, file, path, ENG_ERR_LIMIT, "longer than %u bytes",
                            ENG_CATALOG_MAX_ID);
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return eng_cat_fail(err, file, path, ENG_ERR_VALUE, "contains a NUL byte");
    }
    eng_cat_path_pop(path, mark);
    *out = json_string_value(v);
    return 0;
}

/* Staging area ------------------------------------------------------------- */

static int s_grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) {
        ncap *= 2;
    }
    void *p = realloc(*ptr, ncap * elem);
    if (!p) {
        return -1;
    }
    *ptr = p;
    *cap = ncap;
    return 0;
}

uint32_t eng_cat_str(eng_catalog_t *self, const char *s, size_t len)
{
    if (self->arena_len + len + 1 >= UINT32_MAX) {
        return ENG_CAT_NOSTR;
    }
    void *arena = self->arena;
    if (s_grow(&arena, &self->arena_cap, self->arena_len + len + 1, 1) < 0) {
        return ENG_CAT_NOSTR;
    }
    self->arena = arena;
    uint32_t off = (uint32_t)self->arena_len;
    if (len) {
        memcpy(self->arena + off, s, len);
    }
    self->arena[off + len] = '\0';
    self->arena_len += len + 1;
    return off;
}

const char *eng_cat_strat(const eng_catalog_t *self, uint32_t off)
{
    return off == ENG_CAT_NOSTR ? NULL : self->arena + off;
}

void eng_cat_record_init(eng_cat_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->model_id = rec->owner = rec->provider = rec->native_id = ENG_CAT_NOSTR;
    rec->source = ENG_CAT_NOSTR;
    rec->price.input = rec->price.output = HPP_PRICE_NA;
    rec->price.cache_read = rec->price.cache_write = HPP_PRICE_NA;
    rec->price.per_request = rec->price.per_image = HPP_PRICE_NA;
    rec->long_price = rec->price;
    rec->prio = ENG_REC_PRIO_FOREIGN;
    rec->enabled = true;
}

int64_t eng_cat_add_record(eng_catalog_t *self, const eng_cat_record_t *rec)
{
    if (self->nrecs >= ENG_CATALOG_MAX_RECORDS) {
        return -1;
    }
    void *recs = self->recs;
    if (s_grow(&recs, &self->recs_cap, self->nrecs + 1, sizeof *self->recs) < 0) {
        return -1;
    }
    self->recs = recs;
    eng_cat_record_t *r = &self->recs[self->nrecs];
    *r = *rec;
    r->load_seq = self->load_seq;
    r->source = self->cur_source;
    return (int64_t)self->nrecs++;
}

eng_cat_record_t *eng_cat_record(eng_catalog_t *self, size_t i)
{
    return i < self->nrecs ? &self->recs[i] : NULL;
}

uint32_t eng_cat_source(const eng_catalog_t *self)
{
    return self->cur_source;
}

int eng_cat_add_alias(eng_catalog_t *self, const char *from, size_t from_len, const char *to,
                      size_t to_len)
{
    if (self->naliases >= ENG_CATALOG_MAX_RECORDS) {
        return -1;
    }
    void *al = self->aliases;
    if (s_grow(&al, &self->aliases_cap, self->naliases + 1, sizeof *self->aliases) < 0) {
        return -1;
    }
    self->aliases = al;
    uint32_t f = eng_cat_str(self, from, from_len);
    uint32_t t = f == ENG_CAT_NOSTR ? ENG_CAT_NOSTR : eng_cat_str(self, to, to_len);
    if (t == ENG_CAT_NOSTR) {
        return -1;
    }
    self->aliases[self->naliases++] = (s_alias_t){f, t, self->load_seq};
    return 0;
}

/* Loading -------------------------------------------------------------------- */

typedef struct {
    const char *name;         /* spec prefix */
    eng_catalog_format_t fmt; /* format it selects */
    int (*load)(eng_catalog_t *, const char *, const json_t *, eng_error_t *); /* loader */
} s_format_t;

static const s_format_t s_formats[] = {
    {"native", ENG_FMT_NATIVE, eng_cat_load_native},
    {"openrouter", ENG_FMT_OPENROUTER, eng_cat_load_openrouter},
    {"litellm", ENG_FMT_LITELLM, eng_cat_load_litellm},
    {"portkey", ENG_FMT_PORTKEY, eng_cat_load_portkey},
    {NULL, ENG_FMT_AUTO, NULL},
};

eng_catalog_format_t eng_cat_detect(const json_t *root)
{
    if (!json_is_object(root)) {
        return ENG_FMT_AUTO;
    }
    const json_t *data = json_object_get(root, "data");
    if (json_is_array(data)) {
        /* Both are {"data": [...]}; OpenRouter prices are "prompt"/"completion". */
        const json_t *first = json_array_get(data, 0);
        const json_t *pricing = json_object_get(first, "pricing");
        if (json_object_get(pricing, "prompt") || json_object_get(pricing, "completion") ||
            json_object_get(first, "architecture") || json_object_get(first, "top_provider")) {
            return ENG_FMT_OPENROUTER;
        }
        return ENG_FMT_NATIVE;
    }
    const json_t *def = json_object_get(root, "default");
    if (json_object_get(def, "pricing_config") || json_object_get(def, "params")) {
        return ENG_FMT_PORTKEY;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)root, key, v)
    {
        if (json_object_get(v, "litellm_provider") || strcmp(key, "sample_spec") == 0) {
            return ENG_FMT_LITELLM;
        }
        if (json_object_get(v, "pricing_config")) {
            return ENG_FMT_PORTKEY;
        }
    }
    return ENG_FMT_AUTO;
}

int eng_catalog_load_buffer(eng_catalog_t *self, const char *name, const char *buf, size_t len,
                            eng_catalog_format_t fmt, eng_error_t *err)
{
    if (!name) {
        name = "<buffer>";
    }
    if (self->frozen) {
        return eng_error_set(err, ENG_ERR_VALUE, name, 0, 0, NULL,
                             "catalog is frozen; load every file before freezing");
    }
    if (len > ENG_CATALOG_MAX_FILE) {
        return eng_error_set(err, ENG_ERR_LIMIT, name, 0, 0, NULL,
                             "file is %zu bytes, more than the %u byte limit", len,
                             ENG_CATALOG_MAX_FILE);
    }
    /* Staging marks: a failed load truncates back to them. */
    size_t mark_recs = self->nrecs, mark_aliases = self->naliases, mark_arena = self->arena_len;
    uint32_t mark_source = self->cur_source;

    json_error_t jerr;
    size_t bom = eng_bom_len(buf, len);
    json_t *root = json_loadb(buf + bom, len - bom, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        eng_errcode_t code =
            json_error_code(&jerr) == json_error_duplicate_key ? ENG_ERR_DUP : ENG_ERR_SYNTAX;
        return eng_error_set(err, code, name, jerr.line > 0 ? jerr.line : 1,
                             jerr.column > 0 ? jerr.column : 1, NULL, "%s", jerr.text);
    }
    if (fmt == ENG_FMT_AUTO) {
        fmt = eng_cat_detect(root);
    }
    const s_format_t *f = s_formats;
    while (f->name && f->fmt != fmt) {
        f++;
    }
    int rc = -1;
    if (!f->name) {
        eng_error_set(err, ENG_ERR_VALUE, name, 0, 0, NULL,
                      "cannot tell the catalog format; prefix the file with native:, "
                      "openrouter:, litellm: or portkey:");
        goto out;
    }
    if (!json_is_object(root)) {
        eng_error_set(err, ENG_ERR_TYPE, name, 0, 0, "(top level)",
                      "expected a JSON object, got %s", s_json_type_name(root));
        goto out;
    }
    self->load_seq++;
    self->cur_source = eng_cat_str(self, name, strlen(name));
    if (self->cur_source == ENG_CAT_NOSTR) {
        eng_error_set(err, ENG_ERR_NOMEM, name, 0, 0, NULL, "out of memory");
        goto out;
    }
    rc = f->load(self, name, root, err);
out:
    if (rc < 0) {
        self->nrecs = mark_recs;
        self->naliases = mark_aliases;
        self->arena_len = mark_arena;
        self->cur_source = mark_source;
    }
    json_decref(root);
    return rc;
}

/* Splits "fmt:path" when fmt is a known format name. */
static const char *s_split_spec(const char *spec, eng_catalog_format_t *fmt)
{
    *fmt = ENG_FMT_AUTO;
    for (const s_format_t *f = s_formats; f->name; f++) {
        size_t n = strlen(f->name);
        if (strncmp(spec, f->name, n) == 0 && spec[n] == ':') {
            *fmt = f->fmt;
            return spec + n + 1;
        }
    }
    return spec;
}

int eng_catalog_load(eng_catalog_t *self, const char *spec, eng_error_t *err)
{
    return eng_catalog_load_observed(self, spec, err, NULL, NULL);
}

int eng_catalog_load_observed(eng_catalog_t *self, const char *spec, eng_error_t *err,
                              eng_source_fn on_source, void *ctx)
{
    if (!spec || !*spec) {
        return eng_error_set(err, ENG_ERR_IO, "", 0, 0, NULL, "empty catalog file name");
    }
    eng_catalog_format_t fmt;
    const char *path = s_split_spec(spec, &fmt);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        return eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (len == cap) {
            if (cap >= ENG_CATALOG_MAX_FILE) {
                eng_error_set(err, ENG_ERR_LIMIT, path, 0, 0, NULL,
                              "file is larger than the %u byte limit", ENG_CATALOG_MAX_FILE);
                goto out;
            }
            void *nb = buf;
            if (s_grow(&nb, &cap, cap ? cap * 2 : 65536, 1) < 0) {
                eng_error_set(err, ENG_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
                goto out;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "read error: %s", strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (on_source) {
        on_source(ctx, path, buf, len);
    }
    rc = eng_catalog_load_buffer(self, path, buf, len, fmt, err);
out:
    free(buf);
    fclose(fp);
    return rc;
}

const char *eng_catalog_default_path(void)
{
    const char *env = getenv("HPP_CATALOG");
    return env && *env ? env : eng_data_path("policies/catalog.json", 0);
}

/* Indexes -------------------------------------------------------------------- */

static uint32_t s_hash(const char *s, size_t len)
{
    /* FNV-1a: short ids, no adversary controls the catalog at lookup time. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int s_index_init(s_index_t *ix, size_t n)
{
    uint32_t cap = 16;
    while (cap < 2 * n + 1) {
        cap *= 2;
    }
    ix->keys = calloc(n ? n : 1, sizeof *ix->keys);
    ix->lens = calloc(n ? n : 1, sizeof *ix->lens);
    ix->values = calloc(n ? n : 1, sizeof *ix->values);
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    ix->n = 0;
    return ix->keys && ix->lens && ix->values && ix->slots ? 0 : -1;
}

static int64_t s_index_get(const s_index_t *ix, const char *key, size_t len)
{
    if (!ix->slots) {
        return -1;
    }
    for (uint32_t i = s_hash(key, len) & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t e = ix->slots[i];
        if (e == 0) {
            return -1;
        }
        e--;
        if (ix->lens[e] == len && memcmp(ix->keys[e], key, len) == 0) {
            return ix->values[e];
        }
    }
}

/* Adds key -> value unless present (the first insert wins). The index was
 * sized for every insert, so a free slot always exists. */
static void s_index_put(s_index_t *ix, const char *key, uint32_t value)
{
    size_t len = strlen(key);
    uint32_t i = s_hash(key, len) & ix->mask;
    for (; ix->slots[i]; i = (i + 1) & ix->mask) {
        uint32_t e = ix->slots[i] - 1;
        if (ix->lens[e] == len && memcmp(ix->keys[e], key, len) == 0) {
            return;
        }
    }
    ix->keys[ix->n] = key;
    ix->lens[ix->n] = (uint32_t)len;
    ix->values[ix->n] = value;
    ix->slots[i] = ++ix->n;
}

/* Freeze ---------------------------------------------------------------------- */

typedef struct {
    const eng_catalog_t *cat; /* for string access */
    const uint32_t *final_id; /* model id of each record after aliases */
} s_sort_ctx_t;

static const char *s_str(const eng_catalog_t *cat, uint32_t off)
{
    return off == ENG_CAT_NOSTR ? "" : cat->arena + off;
}

/* Groups records by model id and endpoint identity, newest load first. */
static int s_cmp_identity(const void *a, const void *b, void *ctx_)
{
    const s_sort_ctx_t *ctx = ctx_;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    const eng_cat_record_t *ri = &ctx->cat->recs[i], *rj = &ctx->cat->recs[j];
    int c = strcmp(s_str(ctx->cat, ctx->final_id[i]), s_str(ctx->cat, ctx->final_id[j]));
    if (c == 0) {
        c = strcmp(s_str(ctx->cat, ri->provider), s_str(ctx->cat, rj->provider));
    }
    if (c == 0) {
        c = strcmp(s_str(ctx->cat, ri->native_id), s_str(ctx->cat, rj->native_id));
    }
    if (c == 0) {
        c = ri->load_seq > rj->load_seq ? -1 : ri->load_seq < rj->load_seq ? 1 : 0;
    }
    if (c == 0) {
        c = i > j ? -1 : i < j ? 1 : 0;
    }
    return c;
}

static hpp_pusd_t s_na0(hpp_pusd_t v)
{
    return v == HPP_PRICE_NA ? 0 : v;
}

static hpp_pusd_t s_sat_add(hpp_pusd_t a, hpp_pusd_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static bool s_price_unknown(const hpp_price_t *p)
{
    return p->input == HPP_PRICE_NA && p->output == HPP_PRICE_NA && p->per_request == HPP_PRICE_NA;
}

static bool s_price_is_zero(const hpp_price_t *p)
{
    const hpp_pusd_t parts[] = {p->input,       p->output,      p->cache_read,
                                p->cache_write, p->per_request, p->per_image};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        if (parts[k] != HPP_PRICE_NA && parts[k] != 0) {
            return false;
        }
    }
    return !s_price_unknown(p);
}

/* Endpoint order within a model: enabled first, then the price of a typical
 * request (input + output per token), then input, provider, native id. */
static int s_cmp_endpoint(const void *a, const void *b, void *ctx_)
{
    const eng_catalog_t *cat = ctx_;
    const eng_endpoint_t *x = a, *y = b;
    if (x->enabled != y->enabled) {
        return x->enabled ? -1 : 1;
    }
    hpp_pusd_t sx = s_sat_add(s_na0(x->price.input), s_na0(x->price.output));
    hpp_pusd_t sy = s_sat_add(s_na0(y->price.input), s_na0(y->price.output));
    if (sx != sy) {
        return sx < sy ? -1 : 1;
    }
    if (s_na0(x->price.input) != s_na0(y->price.input)) {
        return s_na0(x->price.input) < s_na0(y->price.input) ? -1 : 1;
    }
    int c = strcmp(x->provider, y->provider);
    if (c == 0) {
        c = strcmp(x->native_id, y->native_id);
    }
    (void)cat;
    return c;
}

/* Fills the model-level fields of m from the records of its group. */
static void s_merge_model(eng_catalog_t *self, eng_model_t *m, const uint32_t *grp, size_t n)
{
    uint8_t prio = 0;
    for (size_t k = 0; k < n; k++) {
        if (self->recs[grp[k]].prio > prio) {
            prio = self->recs[grp[k]].prio;
        }
    }
    uint32_t owner = ENG_CAT_NOSTR, owner_seq = UINT32_MAX;
    for (size_t k = 0; k < n; k++) {
        const eng_cat_record_t *r = &self->recs[grp[k]];
        if (r->prio != prio) {
            continue;
        }
        if (r->context_length > m->context_length) {
            m->context_length = r->context_length;
        }
        if (r->max_output > m->max_output) {
            m->max_output = r->max_output;
        }
        m->caps |= r->caps;
        if (r->owner != ENG_CAT_NOSTR && r->load_seq < owner_seq) {
            owner = r->owner;
            owner_seq = r->load_seq;
        }
    }
    m->owner = owner != ENG_CAT_NOSTR ? self->arena + owner : NULL;
}

static void s_free_frozen(eng_catalog_t *self)
{
    free(self->models);
    free(self->eps);
    self->models = NULL;
    self->eps = NULL;
    self->nmodels = self->neps = 0;
    s_index_free(&self->by_id);
    s_index_free(&self->by_alias);
}

/* Model id of each record after the alias table: an alias of the native id
 * wins over an alias of the canonical id; later aliases win. */
static int s_apply_aliases(eng_catalog_t *self, uint32_t *final_id)
{
    s_index_t ix = {0};
    if (s_index_init(&ix, self->naliases) < 0) {
        s_index_free(&ix);
        return -1;
    }
    for (size_t k = self->naliases; k-- > 0;) {
        s_index_put(&ix, self->arena + self->aliases[k].from, (uint32_t)k);
    }
    for (size_t i = 0; i < self->nrecs; i++) {
        const eng_cat_record_t *r = &self->recs[i];
        const char *nat = s_str(self, r->native_id), *mid = s_str(self, r->model_id);
        int64_t a = s_index_get(&ix, nat, strlen(nat));
        if (a < 0) {
            a = s_index_get(&ix, mid, strlen(mid));
        }
        final_id[i] = a >= 0 ? self->aliases[a].to : r->model_id;
    }
    s_index_free(&ix);
    return 0;
}

/* Builds the alias/native-id lookup index of a frozen catalog. */
static int s_build_alias_index(eng_catalog_t *self, const uint32_t *final_id)
{
    if (s_index_init(&self->by_alias, self->naliases + self->neps) < 0) {
        return -1;
    }
    for (size_t k = self->naliases; k-- > 0;) {
        const char *to = self->arena + self->aliases[k].to;
        int64_t m = s_index_get(&self->by_id, to, strlen(to));
        if (m >= 0) {
            s_index_put(&self->by_alias, self->arena + self->aliases[k].from, (uint32_t)m);
        }
    }
    for (size_t e = 0; e < self->neps; e++) {
        s_index_put(&self->by_alias, self->eps[e].native_id, self->eps[e].model);
    }
    (void)final_id;
    return 0;
}

static void s_fill_endpoint(eng_catalog_t *self, eng_endpoint_t *ep, const eng_cat_record_t *r,
                            uint32_t model_ctx)
{
    ep->provider = s_str(self, r->provider);
    ep->native_id = s_str(self, r->native_id);
    ep->provider_len = (uint32_t)strlen(ep->provider);
    ep->native_id_len = (uint32_t)strlen(ep->native_id);
    ep->source = s_str(self, r->source);
    ep->price = r->price;
    ep->long_above = r->long_above;
    ep->long_price = r->price;
    if (r->long_above) {
        /* A part the long-prompt list does not give keeps its usual price. */
        hpp_pusd_t *dst = &ep->long_price.input;
        const hpp_pusd_t *src = &r->long_price.input;
        for (size_t k = 0; k < sizeof ep->long_price / sizeof *dst; k++) {
            dst[k] = src[k] != HPP_PRICE_NA ? src[k] : dst[k];
        }
    }
    ep->context_length = r->ep_context;
    if (!ep->context_length && r->context_length && r->context_length != model_ctx) {
        ep->context_length = r->context_length;
    }
    /* Without any token or request price we cannot estimate: never chosen. */
    ep->enabled = r->enabled && !s_price_unknown(&r->price);
    ep->is_free = r->free_variant || s_price_is_zero(&r->price);
    ep->free_variant = r->free_variant;
}

static bool s_same_endpoint(const eng_catalog_t *self, const uint32_t *final_id, uint32_t a,
                            uint32_t b)
{
    const eng_cat_record_t *ra = &self->recs[a], *rb = &self->recs[b];
    return strcmp(s_str(self, final_id[a]), s_str(self, final_id[b])) == 0 &&
           strcmp(s_str(self, ra->provider), s_str(self, rb->provider)) == 0 &&
           strcmp(s_str(self, ra->native_id), s_str(self, rb->native_id)) == 0;
}

/* One model from the records order[g..h) sharing its id (sorted by identity,
 * newest first): attributes merge over all of them, endpoints keep only the
 * newest record of each (provider, native id). */
static void s_build_model(eng_catalog_t *self, const uint32_t *order, size_t g, size_t h,
                          const uint32_t *final_id)
{
    eng_model_t *m = &self->models[self->nmodels];
    m->id = s_str(self, final_id[order[g]]);
    m->id_len = (uint32_t)strlen(m->id);
    s_merge_model(self, m, order + g, h - g);
    m->ep_first = (uint32_t)self->neps;
    int64_t last = -1; /* record of the last endpoint emitted */
    for (size_t k = g; k < h; k++) {
        if (self->recs[order[k]].attrs_only) {
            continue; /* capabilities only, merged above */
        }
        if (last >= 0 && s_same_endpoint(self, final_id, (uint32_t)last, order[k])) {
            continue; /* superseded by a later file */
        }
        last = order[k];
        eng_endpoint_t *ep = &self->eps[self->neps++];
        s_fill_endpoint(self, ep, &self->recs[order[k]], m->context_length);
        ep->model = (uint32_t)self->nmodels;
    }
    m->ep_count = (uint32_t)self->neps - m->ep_first;
    if (m->ep_count == 0) {
        memset(m, 0, sizeof *m); /* described but sold by nobody: not a model */
        return;
    }
    qsort_r(self->eps + m->ep_first, m->ep_count, sizeof *self->eps, s_cmp_endpoint, self);
    m->floor_ep = m->free_ep = -1;
    for (uint32_t k = m->ep_first; k < m->ep_first + m->ep_count; k++) {
        /* The plain id and :floor mean the paid endpoints (OpenRouter's
         * `:free` is a model of its own there): never the free variant. */
        if (self->eps[k].enabled && !self->eps[k].free_variant && m->floor_ep < 0) {
            m->floor_ep = (int32_t)k;
        }
        if (self->eps[k].enabled && self->eps[k].is_free && m->free_ep < 0) {
            m->free_ep = (int32_t)k;
        }
    }
    self->nmodels++;
}

static int s_build_models(eng_catalog_t *self, const uint32_t *order, size_t n,
                          const uint32_t *final_id)
{
    self->models = calloc(n, sizeof *self->models);
    self->eps = calloc(n, sizeof *self->eps);
    if (!self->models || !self->eps) {
        return -1;
    }
    for (size_t g = 0; g < n;) {
        size_t h = g + 1;
        const char *id = s_str(self, final_id[order[g]]);
        while (h < n && strcmp(s_str(self, final_id[order[h]]), id) == 0) {
            h++;
        }
        s_build_model(self, order, g, h, final_id);
        g = h;
    }
    return 0;
}

int eng_catalog_freeze(eng_catalog_t *self, eng_error_t *err)
{
    if (self->frozen) {
        return 0;
    }
    if (self->nrecs == 0) {
        return eng_error_set(err, ENG_ERR_VALUE, "", 0, 0, NULL,
                             "empty catalog: no model was loaded");
    }
    uint32_t *final_id = malloc(self->nrecs * sizeof *final_id);
    uint32_t *order = malloc(self->nrecs * sizeof *order);
    int rc = -1;
    if (!final_id || !order || s_apply_aliases(self, final_id) < 0) {
        goto nomem;
    }
    for (size_t i = 0; i < self->nrecs; i++) {
        order[i] = (uint32_t)i;
    }
    s_sort_ctx_t ctx = {self, final_id};
    qsort_r(order, self->nrecs, sizeof *order, s_cmp_identity, &ctx);
    if (s_build_models(self, order, self->nrecs, final_id) < 0 ||
        s_index_init(&self->by_id, self->nmodels) < 0) {
        goto nomem;
    }
    if (self->nmodels == 0) {
        s_free_frozen(self);
        eng_error_set(err, ENG_ERR_VALUE, "", 0, 0, NULL,
                      "empty catalog: no model has a priced endpoint");
        goto out;
    }
    for (size_t m = 0; m < self->nmodels; m++) {
        s_index_put(&self->by_id, self->models[m].id, (uint32_t)m);
    }
    if (s_build_alias_index(self, final_id) < 0) {
        goto nomem;
    }
    self->frozen = true;
    rc = 0;
    goto out;
nomem:
    s_free_frozen(self);
    eng_error_set(err, ENG_ERR_NOMEM, "", 0, 0, NULL, "out of memory while freezing the catalog");
out:
    free(final_id);
    free(order);
    return rc;
}

/* Read-only access ------------------------------------------------------------ */

const eng_model_t *eng_catalog_models(const eng_catalog_t *self, size_t *n)
{
    *n = self->frozen ? self->nmodels : 0;
    return self->frozen ? self->models : NULL;
}

const eng_endpoint_t *eng_catalog_endpoints(const eng_catalog_t *self, size_t *n)
{
    *n = self->frozen ? self->neps : 0;
    return self->frozen ? self->eps : NULL;
}

const eng_model_t *eng_catalog_find(const eng_catalog_t *self, const char *id, size_t len)
{
    if (!self->frozen || !id) {
        return NULL;
    }
    int64_t m = s_index_get(&self->by_id, id, len);
    return m >= 0 ? &self->models[m] : NULL;
}

const eng_model_t *eng_catalog_lookup(const eng_catalog_t *self, const char *id, size_t len)
{
    const eng_model_t *m = eng_catalog_find(self, id, len);
    if (m || !self->frozen || !id) {
        return m;
    }
    int64_t k = s_index_get(&self->by_alias, id, len);
    if (k >= 0) {
        return &self->models[k];
    }
    char norm[ENG_CATALOG_MAX_ID + 64];
    size_t n = eng_cat_normalize_id(NULL, id, len, norm, sizeof norm);
    if (n == 0) {
        return NULL;
    }
    m = eng_catalog_find(self, norm, n);
    if (!m) {
        k = s_index_get(&self->by_alias, norm, n);
        m = k >= 0 ? &self->models[k] : NULL;
    }
    return m;
}

uint32_t eng_catalog_model_index(const eng_catalog_t *self, const eng_model_t *m)
{
    return (uint32_t)(m - self->models);
}
