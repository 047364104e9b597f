/* sc_keys.c - the API key file: parse, load, look a key up.
 *
 * The table is one array of (hash, grant) sorted by hash. A lookup hashes
 * the presented key and binary-searches the hashes: the ordering
 * comparisons there reveal, by their timing, at most where a SHA-256 output
 * would sit among the stored ones, which says nothing about any key (the
 * hashes are of high-entropy secrets); the equality that grants access is
 * sodium_memcmp, constant-time. Nothing is allocated per lookup.
 */
#include "sc_keys.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_file.h"
#include "hpp_types.h"

#define S_HASH_LEN crypto_hash_sha256_BYTES
#define S_PREFIX "sha256:"
#define S_PREFIX_LEN 7

typedef struct {
    unsigned char hash[S_HASH_LEN]; /* SHA-256 of the key */
    sc_key_info_t info;             /* what it grants */
    uint32_t line;                  /* where it was defined, for the duplicate message */
} s_entry_t;

struct sc_keys {
    s_entry_t *v; /* sorted by hash */
    size_t n;     /* entries */
};

/* "NAME:LINE:COL: message" into errbuf. Returns -1. */
__attribute__((format(printf, 6, 7))) static int
s_err(char *errbuf, size_t errlen, const char *name, size_t line, size_t col, const char *fmt, ...)
{
    int n = snprintf(errbuf, errlen, "%s:%zu:%zu: ", name, line, col);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool s_space(char c)
{
    return c == ' ' || c == '\t';
}

bool sc_keys_group_ok(const char *s, size_t n)
{
    if (n == 0 || n > HPP_MAX_GROUP_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_.:/@-", c))) {
            return false;
        }
    }
    return true;
}

int sc_keys_parse_usd(const char *s, size_t n, double *usd)
{
    /* Read exactly, as picodollars: no exponent, no sign, no "inf". */
    hpp_pusd_t p;
    size_t digits = 0;
    while (digits < n && ((s[digits] >= '0' && s[digits] <= '9') || s[digits] == '.')) {
        digits++;
    }
    if (n == 0 || digits < n || hpp_pusd_parse(s, n, 12, &p) != 0) {
        return -1;
    }
    double v = hpp_pusd_to_usd(p);
    if (hpp_check_budget(v) != NULL) {
        return -1;
    }
    *usd = v;
    return 0;
}

/* key=value handlers: NULL when the value is taken, else why. */
typedef const char *(*s_kv_fn)(s_entry_t *e, const char *v, size_t n);

static const char *s_kv_group(s_entry_t *e, const char *v, size_t n)
{
    if (!sc_keys_group_ok(v, n)) {
        return "group: expected 1 to 64 characters from [A-Za-z0-9_.:/@-]";
    }
    memcpy(e->info.group, v, n);
    e->info.group[n] = '\0';
    return NULL;
}

static const char *s_kv_budget(s_entry_t *e, const char *v, size_t n)
{
    double usd;
    if (sc_keys_parse_usd(v, n, &usd) != 0) {
        return "budget_usd: expected a plain decimal amount of USD from 0 to 1000000, such as "
               "0.05";
    }
    e->info.has_budget = true;
    e->info.budget_usd = usd;
    return NULL;
}

/* The keys a line may carry after its hash; a ledger will add some. */
static const struct {
    const char *key; /* name before '=' */
    s_kv_fn fn;      /* reads the value */
} s_kvs[] = {
    {"group", s_kv_group},
    {"budget_usd", s_kv_budget},
};
#define S_NKVS (sizeof s_kvs / sizeof s_kvs[0])

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* One non-comment line, [s, s + n), no line ending. Returns 0 with *e
 * filled, or -1 with errbuf set. */
static int s_line(const char *s, size_t n, const char *name, size_t lineno, s_entry_t *e,
                  char *errbuf, size_t errlen)
{
    memset(e, 0, sizeof *e);
    e->line = (uint32_t)(lineno > UINT32_MAX ? UINT32_MAX : lineno);
    size_t i = 0;
    while (i < n && s_space(s[i])) {
        i++;
    }
    /* The hash: sha256: and 64 lowercase hex digits, then a space or the end. */
    size_t w = i;
    while (w < n && !s_space(s[w])) {
        w++;
    }
    if (w - i != S_PREFIX_LEN + 2 * S_HASH_LEN || memcmp(s + i, S_PREFIX, S_PREFIX_LEN) != 0) {
        return s_err(errbuf, errlen, name, lineno, i + 1,
                     "expected sha256:<64 lowercase hex digits> (hpp-sidecar --hash-key makes "
                     "one), got a word of %zu bytes",
                     w - i);
    }
    for (size_t k = 0; k < S_HASH_LEN; k++) {
        size_t at = i + S_PREFIX_LEN + 2 * k;
        int hi = s_hexval(s[at]), lo = s_hexval(s[at + 1]);
        if (hi < 0 || lo < 0) {
            return s_err(errbuf, errlen, name, lineno, at + (hi < 0 ? 1 : 2),
                         "expected a lowercase hex digit in the hash");
        }
        e->hash[k] = (unsigned char)(hi << 4 | lo);
    }
    unsigned seen = 0;
    i = w;
    for (;;) {
        while (i < n && s_space(s[i])) {
            i++;
        }
        if (i == n || s[i] == '#') {
            break;
        }
        w = i;
        while (w < n && !s_space(s[w])) {
            w++;
        }
        const char *eq = memchr(s + i, '=', w - i);
        if (!eq || eq == s + i) {
            return s_err(errbuf, errlen, name, lineno, i + 1,
                         "expected key=value (group=NAME, budget_usd=USD)");
        }
        size_t klen = (size_t)(eq - (s + i));
        size_t k = 0;
        while (k < S_NKVS &&
               !(strlen(s_kvs[k].key) == klen && memcmp(s_kvs[k].key, s + i, klen) == 0)) {
            k++;
        }
        if (k == S_NKVS) {
            return s_err(errbuf, errlen, name, lineno, i + 1,
                         "unknown key '%.*s' (expected group or budget_usd)",
                         (int)(klen > 64 ? 64 : klen), s + i);
        }
        if (seen & (1u << k)) {
            return s_err(errbuf, errlen, name, lineno, i + 1, "%s given twice", s_kvs[k].key);
        }
        seen |= 1u << k;
        const char *why = s_kvs[k].fn(e, eq + 1, (size_t)(s + w - (eq + 1)));
        if (why) {
            return s_err(errbuf, errlen, name, lineno, (size_t)(eq + 1 - s) + 1, "%s", why);
        }
        i = w;
    }
    if (!(seen & 1u)) {
        return s_err(errbuf, errlen, name, lineno, i + 1, "missing group=NAME");
    }
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return memcmp(((const s_entry_t *)a)->hash, ((const s_entry_t *)b)->hash, S_HASH_LEN);
}

sc_keys_t *sc_keys_parse(const char *text, size_t len, const char *name, char *errbuf,
                         size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(errbuf, errlen, "%s: libsodium cannot start", name);
        return NULL;
    }
    sc_keys_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "%s: out of memory", name);
        return NULL;
    }
    size_t cap = 0;
    hpp_lines_t lines = {.text = text, .len = len};
    const char *line;
    size_t n, f;
    int rc;
    while ((rc = hpp_lines_next(&lines, &line, &n, &f)) == 1) {
        if (self->n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            s_entry_t *v = realloc(self->v, ncap * sizeof *v);
            if (!v) {
                snprintf(errbuf, errlen, "%s: out of memory", name);
                goto fail;
            }
            self->v = v;
            cap = ncap;
        }
        if (s_line(line, n, name, lines.lineno, &self->v[self->n], errbuf, errlen) != 0) {
            goto fail;
        }
        self->n++;
    }
    if (rc < 0) {
        s_err(errbuf, errlen, name, lines.lineno, f, "control character 0x%02x",
              (unsigned char)line[f - 1]);
        goto fail;
    }
    if (self->n > 1) {
        qsort(self->v, self->n, sizeof *self->v, s_cmp);
        for (size_t i = 1; i < self->n; i++) {
            if (memcmp(self->v[i - 1].hash, self->v[i].hash, S_HASH_LEN) == 0) {
                const s_entry_t *a = &self->v[i - 1], *b = &self->v[i];
                const s_entry_t *later = a->line > b->line ? a : b;
                s_err(errbuf, errlen, name, later->line, 1, "the same key as line %u",
                      (unsigned)(later == a ? b->line : a->line));
                goto fail;
            }
        }
    }
    return self;
fail:
    sc_keys_destroy(&self);
    return NULL;
}

sc_keys_t *sc_keys_load(const char *path, char *errbuf, size_t errlen)
{
    size_t len = 0;
    mode_t mode = 0;
    char *text = hpp_file_read(path, SC_KEYS_MAX_FILE, "a key file", &len, &mode, errbuf, errlen);
    if (!text) {
        return NULL;
    }
    sc_keys_t *self = sc_keys_parse(text, len, path, errbuf, errlen);
    free(text);
    return self;
}

void sc_keys_destroy(sc_keys_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->v);
    free(*self_p);
    *self_p = NULL;
}

size_t sc_keys_count(const sc_keys_t *self)
{
    return self ? self->n : 0;
}

const sc_key_info_t *sc_keys_find(const sc_keys_t *self, const char *key, size_t len)
{
    if (!self || self->n == 0) {
        return NULL;
    }
    unsigned char h[S_HASH_LEN];
    crypto_hash_sha256(h, (const unsigned char *)key, len);
    size_t lo = 0, hi = self->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(self->v[mid].hash, h, S_HASH_LEN) <= 0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    const s_entry_t *e = &self->v[lo];
    bool eq = sodium_memcmp(e->hash, h, S_HASH_LEN) == 0;
    sodium_memzero(h, sizeof h);
    return eq ? &e->info : NULL;
}

const char *sc_keys_check_key(const char *key, size_t len)
{
    if (len == 0) {
        return "the key is empty";
    }
    if (len > SC_KEYS_MAX_KEY) {
        return "the key is longer than 1024 bytes";
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7e) {
            return "the key has a byte other than visible ASCII (0x21-0x7e)";
        }
    }
    return NULL;
}

void sc_keys_hash_text(const char *key, size_t len, char out[SC_KEYS_HASH_TEXT])
{
    unsigned char h[S_HASH_LEN];
    crypto_hash_sha256(h, (const unsigned char *)key, len);
    memcpy(out, S_PREFIX, S_PREFIX_LEN);
    sodium_bin2hex(out + S_PREFIX_LEN, SC_KEYS_HASH_TEXT - S_PREFIX_LEN, h, sizeof h);
    sodium_memzero(h, sizeof h);
}
