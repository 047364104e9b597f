/* sc_accesslog.c - the access log (see sc_accesslog.h). */
#include "sc_accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eng_common.h"
#include "oai_error.h"
#include "sc_metrics.h"

#define S_LINE_MAX 8192   /* longest line: 10 attempts of 300-byte ids fit */
#define S_WARN_EVERY 60.0 /* seconds between two "cannot write" error lines */

struct sc_accesslog {
    char *path;        /* reopened on SIGHUP */
    int fd;            /* O_APPEND */
    uint64_t dropped;  /* lines not written */
    uint64_t reported; /* dropped when the last error line was logged */
    double warned_at;  /* monotonic time of that line, 0 = never */
};

static int s_open(const char *path, char *errbuf, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(errbuf, errlen, "--access-log %s: cannot open: %s", path, strerror(errno));
    }
    return fd;
}

sc_accesslog_t *sc_accesslog_open(const char *path, char *errbuf, size_t errlen)
{
    sc_accesslog_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if ((self->fd = s_open(path, errbuf, errlen)) < 0) {
        free(self->path);
        free(self);
        return NULL;
    }
    return self;
}

int sc_accesslog_reopen(sc_accesslog_t *self, char *errbuf, size_t errlen)
{
    int fd = s_open(self->path, errbuf, errlen);
    if (fd < 0) {
        return -1;
    }
    /* The same descriptor number from now on: nothing holds the old one. */
    int rc = dup2(fd, self->fd) < 0 ? -1 : 0;
    if (rc != 0) {
        snprintf(errbuf, errlen, "--access-log %s: %s", self->path, strerror(errno));
    }
    close(fd);
    return rc;
}

void sc_accesslog_destroy(sc_accesslog_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    close((*self_p)->fd);
    free((*self_p)->path);
    free(*self_p);
    *self_p = NULL;
}

uint64_t sc_accesslog_dropped(const sc_accesslog_t *self)
{
    return self ? self->dropped : 0;
}

/* A line built in a fixed buffer; once full, further text is dropped and the
 * line is not written. */
typedef struct {
    char buf[S_LINE_MAX];
    size_t n;
    bool full;
} s_line_t;

static void s_add(s_line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_add(s_line_t *l, const char *fmt, ...)
{
    if (l->full) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->n, sizeof l->buf - l->n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof l->buf - l->n) {
        l->full = true;
        return;
    }
    l->n += (size_t)n;
}

/* ,"key":"escaped" (no comma for the first member of an object). */
static void s_field(s_line_t *l, bool first, const char *key, const char *v, size_t len)
{
    s_add(l, "%s\"%s\":\"", first ? "" : ",", key);
    if (!l->full) {
        size_t room = sizeof l->buf - 64; /* the rest of the line needs some */
        if (l->n + 6 * len >= room) {
            l->full = true;
            return;
        }
        oai_json_escape(l->buf, room, &l->n, v, len);
    }
    s_add(l, "\"");
}

static void s_cstr(s_line_t *l, const char *key, const char *v)
{
    s_field(l, false, key, v, strlen(v));
}

static void s_write(sc_accesslog_t *self, const s_line_t *l)
{
    ssize_t w = l->full ? -1 : write(self->fd, l->buf, l->n);
    if (w == (ssize_t)l->n) {
        return;
    }
    int err = l->full ? ENOBUFS : w < 0 ? errno : ENOSPC;
    if (w > 0) {
        /* Part of the line went out (disk full): take it back, so that the
         * file holds whole lines only. O_APPEND wrote it at the end. */
        off_t end = lseek(self->fd, 0, SEEK_END);
        if (end >= w && ftruncate(self->fd, end - w) != 0) {
            err = errno;
        }
    }
    self->dropped++;
    double now = sc_now();
    if (self->warned_at == 0 || now - self->warned_at >= S_WARN_EVERY) {
        eng_log(ENG_LOG_ERROR, "sidecar", "access log %s: %llu line%s not written (%s)", self->path,
                (unsigned long long)(self->dropped - self->reported),
                self->dropped - self->reported == 1 ? "" : "s", strerror(err));
        self->warned_at = now;
        self->reported = self->dropped;
    }
}

/* An attempt's first-token time and the usage its answer returned (what
 * the engine was told), each only when known. */
static void s_usage(s_line_t *l, const sc_attempt_t *a)
{
    if (a->first_token > 0) {
        s_add(l, ",\"ttft_ms\":%.3f", a->first_token * 1e3);
    }
    const struct {
        const char *key;
        int64_t n;
    } toks[] = {{"prompt_tokens", a->usage.prompt},
                {"completion_tokens", a->usage.completion},
                {"cached_tokens", a->usage.cached},
                {"reasoning_tokens", a->usage.reasoning}};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        if (toks[i].n >= 0) {
            s_add(l, ",\"%s\":%lld", toks[i].key, (long long)toks[i].n);
        }
    }
    if (a->usage.cost_usd >= 0) {
        s_add(l, ",\"cost_usd\":%.12g", a->usage.cost_usd);
    }
}

void sc_accesslog_write(sc_accesslog_t *self, const sc_call_t *call, double seconds)
{
    if (!self) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s_line_t l;
    l.n = 0;
    l.full = false;
    s_add(&l, "{\"ts\":%lld.%03ld,\"route\":\"%s\",\"status\":%d,\"ms\":%.3f", (long long)ts.tv_sec,
          ts.tv_nsec / 1000000, sc_route_name(call->route), call->status, seconds * 1e3);
    if (call->group[0]) {
        s_cstr(&l, "group", call->group);
    }
    if (call->requested[0]) {
        s_cstr(&l, "requested", call->requested);
    }
    const sc_endpoint_t *at = &call->at;
    if (at->model[0]) {
        s_cstr(&l, "model", at->model);
        s_cstr(&l, "provider", at->provider);
        s_cstr(&l, "provider_model", at->provider_model);
        s_cstr(&l, "tier", at->tier);
        s_cstr(&l, "rule", call->d.rule);
        if (at->has_cost && isfinite(at->cost_usd)) {
            s_add(&l, ",\"estimated_cost_usd\":%.12g", at->cost_usd);
        }
        s_add(&l, ",\"fail_open\":%s", call->d.fail_open ? "true" : "false");
    }
    if (call->nattempts > 0) {
        s_add(&l, ",\"attempts\":[");
        for (int i = 0; i < call->nattempts; i++) {
            const sc_attempt_t *a = &call->attempts[i];
            s_add(&l, "%s{", i ? "," : "");
            s_field(&l, true, "model", a->model, strlen(a->model));
            s_cstr(&l, "provider", a->provider);
            s_add(&l, ",\"status\":%d,\"ms\":%.3f", a->status, a->seconds * 1e3);
            s_usage(&l, a);
            s_add(&l, "}");
        }
        s_add(&l, "]");
    }
    s_add(&l, "}\n");
    s_write(self, &l);
}
