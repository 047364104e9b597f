/* sc_upstreams.c - the upstream file: parse, load, look a provider up.
 *
 * The table is a small array in file order (a handful of providers): a
 * lookup is a linear case-insensitive scan, which beats any index at this
 * size and allocates nothing. Credentials are the only secrets here: they
 * live in their own allocations, are wiped on destroy, and no message
 * quotes them (nor the value of a `key=` word).
 */
#include "sc_upstreams.h"

#include "hpp_file.h"

#include <event2/http.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sc_upstreams {
    sc_upstream_def_t v[SC_UPSTREAMS_MAX]; /* file order */
    size_t n;                              /* used entries */
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

/* A word of the line: [*at, *at + *len), skipping leading blanks. */
static bool s_word(const char *s, size_t n, size_t *pos, size_t *at, size_t *len)
{
    size_t i = *pos;
    while (i < n && s_space(s[i])) {
        i++;
    }
    if (i == n || s[i] == '#') {
        *pos = i;
        return false;
    }
    size_t w = i;
    while (w < n && !s_space(s[w])) {
        w++;
    }
    *at = i;
    *len = w - i;
    *pos = w;
    return true;
}

/* The base URL: fills host, port, hostport and path. NULL or why. */
static const char *s_url(sc_upstream_def_t *e, const char *s, size_t n)
{
    char url[1024];
    if (n >= sizeof url) {
        return "the URL is longer than 1023 bytes";
    }
    memcpy(url, s, n);
    url[n] = '\0';
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) {
        return "not a URL (expected http://HOST[:PORT]/PATH, such as http://127.0.0.1:11434/v1)";
    }
    const char *why = NULL;
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *host = evhttp_uri_get_host(u);
    const char *path = evhttp_uri_get_path(u);
    int port = evhttp_uri_get_port(u);
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/') {
        plen--;
    }
    if (!scheme || strcasecmp(scheme, "http") != 0) {
        why = "only http:// is supported (terminate TLS in the gateway or a local forward proxy)";
    } else if (!host || !host[0] || strlen(host) >= sizeof e->host) {
        why = "the URL has no host, or one longer than 255 bytes";
    } else if (evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u) ||
               evhttp_uri_get_userinfo(u)) {
        why = "no query, fragment or user info allowed (put credentials in key= or key_env=)";
    } else if (plen + sizeof SC_UPSTREAMS_CHAT_PATH > sizeof e->path) {
        why = "the path is longer than 490 bytes";
    } else {
        snprintf(e->host, sizeof e->host, "%s", host);
        e->port = port > 0 ? port : 80;
        if (port > 0) {
            snprintf(e->hostport, sizeof e->hostport, "%s:%d", host, port);
        } else {
            snprintf(e->hostport, sizeof e->hostport, "%s", host);
        }
        /* An empty path means /v1, as the single --upstream URL does. */
        snprintf(e->path, sizeof e->path, "%.*s%s", plen ? (int)plen : 3, plen ? path : "/v1",
                 SC_UPSTREAMS_CHAT_PATH);
    }
    evhttp_uri_free(u);
    return why;
}

/* A credential's bytes: visible ASCII only (it goes into a header). */
static bool s_key_ok(const char *k, size_t n)
{
    if (n == 0 || n > SC_UPSTREAMS_MAX_KEY) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* An HTTP header name (RFC 9110 token) of at most 63 bytes. */
static bool s_header_ok(const char *h, size_t n)
{
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c))) {
            return false;
        }
    }
    return true;
}

typedef struct {
    const char *key;   /* raw key from key=, or NULL */
    size_t key_len;    /* its length */
    char env[128];     /* variable named by key_env=, or "" */
    char header[64];   /* key_header=, or "" */
    bool private_file; /* the file is owner-only */
} s_opts_t;

/* One option word; col is its 1-based column. 0 or -1 with errbuf set. */
static int s_option(s_opts_t *o, const char *s, size_t n, const char *name, size_t lineno,
                    size_t col, char *errbuf, size_t errlen)
{
    const char *eq = memchr(s, '=', n);
    if (!eq || eq == s) {
        return s_err(errbuf, errlen, name, lineno, col,
                     "expected key=value (key_env=NAME, key=SECRET, key_header=NAME)");
    }
    size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
    const char *v = eq + 1;
    size_t vcol = col + klen + 1;
    if (klen == 3 && memcmp(s, "key", 3) == 0) {
        if (o->key || o->env[0]) {
            return s_err(errbuf, errlen, name, lineno, col, "one of key= or key_env=, once");
        }
        if (!o->private_file) {
            return s_err(errbuf, errlen, name, lineno, col,
                         "key= holds a secret, but the file is readable by group or others "
                         "(chmod 600 it, or use key_env=)");
        }
        if (!s_key_ok(v, vlen)) {
            return s_err(errbuf, errlen, name, lineno, vcol,
                         "the key must be 1 to %u visible ASCII bytes", SC_UPSTREAMS_MAX_KEY);
        }
        o->key = v;
        o->key_len = vlen;
    } else if (klen == 7 && memcmp(s, "key_env", 7) == 0) {
        if (o->key || o->env[0]) {
            return s_err(errbuf, errlen, name, lineno, col, "one of key= or key_env=, once");
        }
        bool ok = vlen > 0 && vlen < sizeof o->env && !(v[0] >= '0' && v[0] <= '9');
        for (size_t i = 0; ok && i < vlen; i++) {
            char c = v[i];
            ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_';
        }
        if (!ok) {
            return s_err(errbuf, errlen, name, lineno, vcol,
                         "key_env: expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*, "
                         "at most 127 bytes)");
        }
        memcpy(o->env, v, vlen);
        o->env[vlen] = '\0';
    } else if (klen == 10 && memcmp(s, "key_header", 10) == 0) {
        if (o->header[0]) {
            return s_err(errbuf, errlen, name, lineno, col, "key_header given twice");
        }
        if (!s_header_ok(v, vlen)) {
            return s_err(errbuf, errlen, name, lineno, vcol,
                         "key_header: expected an HTTP header name of 1 to 63 bytes");
        }
        memcpy(o->header, v, vlen);
        o->header[vlen] = '\0';
    } else {
        return s_err(errbuf, errlen, name, lineno, col,
                     "unknown option '%.*s' (expected key_env, key or key_header)",
                     (int)(klen > 64 ? 64 : klen), s);
    }
    return 0;
}

/* Sets e->key_header/key_value from the options. 0 or -1 with errbuf set. */
static int s_credential(sc_upstream_def_t *e, const s_opts_t *o, const char *name, size_t lineno,
                        char *errbuf, size_t errlen)
{
    const char *key = o->key;
    size_t klen = o->key_len;
    if (o->env[0]) {
        key = getenv(o->env);
        klen = key ? strlen(key) : 0;
        if (!key || klen == 0) {
            return s_err(errbuf, errlen, name, lineno, 1,
                         "provider '%s': the environment variable %s is not set", e->provider,
                         o->env);
        }
        if (!s_key_ok(key, klen)) {
            return s_err(errbuf, errlen, name, lineno, 1,
                         "provider '%s': %s must be 1 to %u visible ASCII bytes", e->provider,
                         o->env, SC_UPSTREAMS_MAX_KEY);
        }
    }
    if (!key) {
        if (o->header[0]) {
            return s_err(errbuf, errlen, name, lineno, 1,
                         "provider '%s': key_header without key= or key_env=", e->provider);
        }
        return 0;
    }
    bool bearer = !o->header[0] || strcasecmp(o->header, "Authorization") == 0;
    size_t size = (bearer ? 7 : 0) + klen + 1;
    e->key_value = malloc(size);
    if (!e->key_value) {
        return s_err(errbuf, errlen, name, lineno, 1, "out of memory");
    }
    snprintf(e->key_value, size, "%s%.*s", bearer ? "Bearer " : "", (int)klen, key);
    snprintf(e->key_header, sizeof e->key_header, "%s", o->header[0] ? o->header : "Authorization");
    return 0;
}

/* One non-comment line, [s, s + n). 0 with *e filled, or -1. */
static int s_line(const sc_upstreams_t *self, const char *s, size_t n, const char *name,
                  size_t lineno, bool private_file, sc_upstream_def_t *e, char *errbuf,
                  size_t errlen)
{
    memset(e, 0, sizeof *e);
    e->line = (uint32_t)(lineno > UINT32_MAX ? UINT32_MAX : lineno);
    size_t pos = 0, at = 0, len = 0;
    s_word(s, n, &pos, &at, &len);
    hpp_str_t prov = {s + at, (uint32_t)len};
    bool star = len == 1 && s[at] == '*';
    const char *why = star ? NULL : hpp_check_provider(prov);
    if (why) {
        return s_err(errbuf, errlen, name, lineno, at + 1, "provider: %s", why);
    }
    for (size_t i = 0; i < self->n; i++) {
        if (strlen(self->v[i].provider) == len &&
            strncasecmp(self->v[i].provider, s + at, len) == 0) {
            return s_err(errbuf, errlen, name, lineno, at + 1,
                         "provider '%.*s' already has an upstream (line %u)", (int)len, s + at,
                         (unsigned)self->v[i].line);
        }
    }
    memcpy(e->provider, s + at, len);
    e->provider[len] = '\0';
    if (!s_word(s, n, &pos, &at, &len)) {
        return s_err(errbuf, errlen, name, lineno, pos + 1,
                     "provider '%s': expected its base URL, such as http://127.0.0.1:11434/v1",
                     e->provider);
    }
    if ((why = s_url(e, s + at, len)) != NULL) {
        return s_err(errbuf, errlen, name, lineno, at + 1, "%s", why);
    }
    s_opts_t o = {.private_file = private_file};
    while (s_word(s, n, &pos, &at, &len)) {
        if (s_option(&o, s + at, len, name, lineno, at + 1, errbuf, errlen) != 0) {
            return -1;
        }
    }
    return s_credential(e, &o, name, lineno, errbuf, errlen);
}

sc_upstreams_t *sc_upstreams_parse(const char *text, size_t len, const char *name,
                                   bool private_file, char *errbuf, size_t errlen)
{
    sc_upstreams_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "%s: out of memory", name);
        return NULL;
    }
    size_t named = 0;
    hpp_lines_t lines = {.text = text, .len = len};
    const char *line;
    size_t n, f;
    int rc;
    while ((rc = hpp_lines_next(&lines, &line, &n, &f)) == 1) {
        size_t lineno = lines.lineno;
        bool star = n - f >= 1 && line[f] == '*' && (n - f == 1 || s_space(line[f + 1]));
        if (self->n == SC_UPSTREAMS_MAX || (!star && named == HPP_MAX_PROVIDERS)) {
            s_err(errbuf, errlen, name, lineno, f + 1,
                  "more than %u providers (the engine takes at most %u reachable ones; serve the "
                  "rest with a '*' line)",
                  HPP_MAX_PROVIDERS, HPP_MAX_PROVIDERS);
            goto fail;
        }
        sc_upstream_def_t *e = &self->v[self->n];
        if (s_line(self, line, n, name, lineno, private_file, e, errbuf, errlen) != 0) {
            if (e->key_value) {
                sodium_memzero(e->key_value, strlen(e->key_value));
                free(e->key_value);
            }
            goto fail;
        }
        named += !star;
        self->n++;
    }
    if (rc < 0) {
        s_err(errbuf, errlen, name, lines.lineno, f, "control character 0x%02x",
              (unsigned char)line[f - 1]);
        goto fail;
    }
    if (self->n == 0) {
        s_err(errbuf, errlen, name, lines.lineno ? lines.lineno : 1, 1,
              "no upstream (one line per provider: NAME http://HOST:PORT/PATH [options])");
        goto fail;
    }
    return self;
fail:
    sc_upstreams_destroy(&self);
    return NULL;
}

sc_upstreams_t *sc_upstreams_load(const char *path, char *errbuf, size_t errlen)
{
    size_t len = 0;
    mode_t mode = 0;
    char *text =
        hpp_file_read(path, SC_UPSTREAMS_MAX_FILE, "an upstream file", &len, &mode, errbuf, errlen);
    if (!text) {
        return NULL;
    }
    sc_upstreams_t *self = sc_upstreams_parse(text, len, path, (mode & 077) == 0, errbuf, errlen);
    sodium_memzero(text, len); /* may hold key= secrets */
    free(text);
    return self;
}

void sc_upstreams_destroy(sc_upstreams_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_upstreams_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++) {
        if (self->v[i].key_value) {
            sodium_memzero(self->v[i].key_value, strlen(self->v[i].key_value));
            free(self->v[i].key_value);
        }
    }
    free(self);
    *self_p = NULL;
}

size_t sc_upstreams_count(const sc_upstreams_t *self)
{
    return self ? self->n : 0;
}

const sc_upstream_def_t *sc_upstreams_get(const sc_upstreams_t *self, size_t i)
{
    return self && i < self->n ? &self->v[i] : NULL;
}

const sc_upstream_def_t *sc_upstreams_find(const sc_upstreams_t *self, const char *provider,
                                           size_t len)
{
    const sc_upstream_def_t *star = NULL;
    for (size_t i = 0; self && i < self->n; i++) {
        const sc_upstream_def_t *e = &self->v[i];
        if (strcmp(e->provider, "*") == 0) {
            star = e;
        } else if (strlen(e->provider) == len && strncasecmp(e->provider, provider, len) == 0) {
            return e;
        }
    }
    return star;
}

uint32_t sc_upstreams_reachable(const sc_upstreams_t *self, hpp_str_t out[HPP_MAX_PROVIDERS])
{
    uint32_t k = 0;
    for (size_t i = 0; self && i < self->n; i++) {
        if (strcmp(self->v[i].provider, "*") == 0) {
            return 0;
        }
        if (k < HPP_MAX_PROVIDERS) {
            out[k].ptr = self->v[i].provider;
            out[k].len = (uint32_t)strlen(self->v[i].provider);
            k++;
        }
    }
    return k;
}
