/* hpp_apikeys.c - the API key file: parse, load, look a key up.
 *
 * The table is one array of (hash, grant) sorted by hash. A lookup hashes
 * the presented key and binary-searches the hashes: the ordering
 * comparisons there reveal, by their timing, at most where a SHA-256 output
 * would sit among the stored ones, which says nothing about any key (the
 * hashes are of high-entropy secrets); the equality that grants access is
 * sodium_memcmp, constant-time. Nothing is allocated per lookup.
 */
#include "hpp_apikeys.h"

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
    hpp_apikey_t info;              /* what it grants */
} s_entry_t;

struct hpp_apikeys {
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

bool hpp_apikeys_group_ok(const char *s, size_t n)
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

int hpp_apikeys_parse_usd(const char *s, size_t n, double *usd)
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

static bool s_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("_.:/@-", c));
}

bool hpp_apikeys_account_ok(const char *s, size_t n)
{
    if (n == 0 || n > HPP_APIKEY_HASH_TEXT - 1) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!s_name_char(s[i])) {
            return false;
        }
    }
    return true;
}

/* True when s[0..n) is only digits and at most one '.', so that
 * hpp_pusd_parse sees no sign, exponent or word. */
static bool s_plain_decimal(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            dots++;
        } else if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return n > 0 && dots <= 1 && !(n == 1 && dots == 1);
}

int hpp_apikeys_parse_pd(const char *s, size_t n, int64_t *pd)
{
    hpp_pusd_t p;
    if (!s_plain_decimal(s, n) || hpp_pusd_parse(s, n, 12, &p) != 0 || p < 0 ||
        p > (int64_t)HPP_APIKEY_MAX_USD * 1000000000000LL) {
        return -1;
    }
    *pd = p;
    return 0;
}

int hpp_apikeys_parse_count(const char *s, size_t n, int64_t *count)
{
    if (n == 0 || n > 13) {
        return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > HPP_APIKEY_MAX_COUNT) {
        return -1;
    }
    *count = v;
    return 0;
}

/* key=value handlers: NULL when the value is taken, else why. */
typedef const char *(*s_kv_fn)(hpp_apikey_t *k, const char *v, size_t n);

static const char *s_kv_group(hpp_apikey_t *k, const char *v, size_t n)
{
    if (!hpp_apikeys_group_ok(v, n)) {
        return "group: expected 1 to 64 characters from [A-Za-z0-9_.:/@-]";
    }
    memcpy(k->group, v, n);
    k->group[n] = '\0';
    return NULL;
}

static const char *s_kv_account(hpp_apikey_t *k, const char *v, size_t n)
{
    if (!hpp_apikeys_account_ok(v, n)) {
        return "account: expected 1 to 71 characters from [A-Za-z0-9_.:/@-]";
    }
    memcpy(k->account, v, n);
    k->account[n] = '\0';
    return NULL;
}

static const char *s_kv_budget(hpp_apikey_t *k, const char *v, size_t n)
{
    double usd;
    if (hpp_apikeys_parse_usd(v, n, &usd) != 0) {
        return "budget_usd: expected a plain decimal amount of USD from 0 to 1000000, such as "
               "0.05";
    }
    k->has_budget = true;
    k->budget_usd = usd;
    return NULL;
}

#define S_USD_WANT ": expected a plain decimal amount of USD from 0 to 1000000, such as 20.00"
#define S_COUNT_WANT ": expected a whole number from 0 to 1000000000000"

static const char *s_kv_limit(hpp_apikey_t *k, const char *v, size_t n)
{
    return hpp_apikeys_parse_pd(v, n, &k->limit_pd) ? "limit_usd" S_USD_WANT : NULL;
}

static const char *s_kv_daily(hpp_apikey_t *k, const char *v, size_t n)
{
    return hpp_apikeys_parse_pd(v, n, &k->daily_pd) ? "daily_usd" S_USD_WANT : NULL;
}

static const char *s_kv_daily_requests(hpp_apikey_t *k, const char *v, size_t n)
{
    return hpp_apikeys_parse_count(v, n, &k->daily_requests) ? "daily_requests" S_COUNT_WANT : NULL;
}

static const char *s_kv_free(hpp_apikey_t *k, const char *v, size_t n)
{
    return hpp_apikeys_parse_count(v, n, &k->free_daily_requests)
               ? "free_daily_requests" S_COUNT_WANT
               : NULL;
}

static const char *s_kv_free_funded(hpp_apikey_t *k, const char *v, size_t n)
{
    return hpp_apikeys_parse_count(v, n, &k->free_daily_requests_funded)
               ? "free_daily_requests_funded" S_COUNT_WANT
               : NULL;
}

static const char *s_kv_revoked(hpp_apikey_t *k, const char *v, size_t n)
{
    if (n != 1 || (v[0] != '0' && v[0] != '1')) {
        return "revoked: expected 0 or 1";
    }
    k->revoked = v[0] == '1';
    return NULL;
}

/* The keys a line may carry after its hash. `group` first: it is required. */
static const struct {
    const char *key; /* name before '=' */
    s_kv_fn fn;      /* reads the value */
} s_kvs[] = {
    {"group", s_kv_group},
    {"account", s_kv_account},
    {"budget_usd", s_kv_budget},
    {"limit_usd", s_kv_limit},
    {"daily_usd", s_kv_daily},
    {"daily_requests", s_kv_daily_requests},
    {"free_daily_requests", s_kv_free},
    {"free_daily_requests_funded", s_kv_free_funded},
    {"revoked", s_kv_revoked},
};
#define S_NKVS (sizeof s_kvs / sizeof s_kvs[0])

const char *const hpp_apikeys_fields[] = {
    "group",
    "account",
    "budget_usd",
    "limit_usd",
    "daily_usd",
    "daily_requests",
    "free_daily_requests",
    "free_daily_requests_funded",
    "revoked",
    NULL,
};

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
    e->info.limit_pd = -1;
    e->info.daily_pd = -1;
    e->info.daily_requests = -1;
    e->info.free_daily_requests = HPP_APIKEY_FREE_DAILY;
    e->info.free_daily_requests_funded = HPP_APIKEY_FREE_DAILY_FUNDED;
    e->info.line = (uint32_t)(lineno > UINT32_MAX ? UINT32_MAX : lineno);
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
    memcpy(e->info.hash, s + i, w - i);
    e->info.hash[w - i] = '\0';
    memcpy(e->info.account, e->info.hash, sizeof e->info.account);
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
                         "expected key=value (group=NAME, account=NAME, limit_usd=USD, ...)");
        }
        size_t klen = (size_t)(eq - (s + i));
        size_t k = 0;
        while (k < S_NKVS &&
               !(strlen(s_kvs[k].key) == klen && memcmp(s_kvs[k].key, s + i, klen) == 0)) {
            k++;
        }
        if (k == S_NKVS) {
            return s_err(
                errbuf, errlen, name, lineno, i + 1,
                "unknown key '%.*s' (expected group, account, budget_usd, limit_usd, daily_usd, "
                "daily_requests, free_daily_requests, free_daily_requests_funded or "
                "revoked)",
                (int)(klen > 64 ? 64 : klen), s + i);
        }
        if (seen & (1u << k)) {
            return s_err(errbuf, errlen, name, lineno, i + 1, "%s given twice", s_kvs[k].key);
        }
        seen |= 1u << k;
        const char *why = s_kvs[k].fn(&e->info, eq + 1, (size_t)(s + w - (eq + 1)));
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

hpp_apikeys_t *hpp_apikeys_parse(const char *text, size_t len, const char *name, char *errbuf,
                                 size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(errbuf, errlen, "%s: libsodium cannot start", name);
        return NULL;
    }
    hpp_apikeys_t *self = calloc(1, sizeof *self);
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
                const s_entry_t *later = a->info.line > b->info.line ? a : b;
                s_err(errbuf, errlen, name, later->info.line, 1, "the same key as line %u",
                      (unsigned)(later == a ? b->info.line : a->info.line));
                goto fail;
            }
        }
    }
    return self;
fail:
    hpp_apikeys_destroy(&self);
    return NULL;
}

hpp_apikeys_t *hpp_apikeys_load(const char *path, char *errbuf, size_t errlen)
{
    size_t len = 0;
    mode_t mode = 0;
    char *text =
        hpp_file_read(path, HPP_APIKEYS_MAX_FILE, "a key file", &len, &mode, errbuf, errlen);
    if (!text) {
        return NULL;
    }
    hpp_apikeys_t *self = hpp_apikeys_parse(text, len, path, errbuf, errlen);
    free(text);
    return self;
}

void hpp_apikeys_destroy(hpp_apikeys_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->v);
    free(*self_p);
    *self_p = NULL;
}

size_t hpp_apikeys_count(const hpp_apikeys_t *self)
{
    return self ? self->n : 0;
}

/* The entry holding hash h, or NULL; the final comparison is constant-time. */
static const s_entry_t *s_search(const hpp_apikeys_t *self, const unsigned char *h)
{
    if (!self || self->n == 0) {
        return NULL;
    }
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
    return sodium_memcmp(e->hash, h, S_HASH_LEN) == 0 ? e : NULL;
}

const hpp_apikey_t *hpp_apikeys_find(const hpp_apikeys_t *self, const char *key, size_t len)
{
    if (!self || self->n == 0) {
        return NULL;
    }
    unsigned char h[S_HASH_LEN];
    crypto_hash_sha256(h, (const unsigned char *)key, len);
    const s_entry_t *e = s_search(self, h);
    sodium_memzero(h, sizeof h);
    return e ? &e->info : NULL;
}

bool hpp_apikeys_hash_ok(const char *s, size_t n)
{
    if (n != S_PREFIX_LEN + 2 * S_HASH_LEN || memcmp(s, S_PREFIX, S_PREFIX_LEN) != 0) {
        return false;
    }
    for (size_t i = S_PREFIX_LEN; i < n; i++) {
        if (s_hexval(s[i]) < 0) {
            return false;
        }
    }
    return true;
}

const hpp_apikey_t *hpp_apikeys_find_hash(const hpp_apikeys_t *self, const char *hash, size_t len)
{
    if (!hpp_apikeys_hash_ok(hash, len)) {
        return NULL;
    }
    unsigned char h[S_HASH_LEN];
    for (size_t k = 0; k < S_HASH_LEN; k++) {
        const char *p = hash + S_PREFIX_LEN + 2 * k;
        h[k] = (unsigned char)(s_hexval(p[0]) << 4 | s_hexval(p[1]));
    }
    const s_entry_t *e = s_search(self, h);
    return e ? &e->info : NULL;
}

const hpp_apikey_t *hpp_apikeys_at(const hpp_apikeys_t *self, size_t i)
{
    return self && i < self->n ? &self->v[i].info : NULL;
}

const char *hpp_apikeys_check_key(const char *key, size_t len)
{
    if (len == 0) {
        return "the key is empty";
    }
    if (len > HPP_APIKEY_MAX_KEY) {
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

void hpp_apikeys_hash_text(const char *key, size_t len, char out[HPP_APIKEY_HASH_TEXT])
{
    unsigned char h[S_HASH_LEN];
    crypto_hash_sha256(h, (const unsigned char *)key, len);
    memcpy(out, S_PREFIX, S_PREFIX_LEN);
    sodium_bin2hex(out + S_PREFIX_LEN, HPP_APIKEY_HASH_TEXT - S_PREFIX_LEN, h, sizeof h);
    sodium_memzero(h, sizeof h);
}
