/* eng_declog.c - JSON-lines decision log.
 *
 * Owns the log descriptor. A line is built with snprintf into the worker's
 * buffer (no allocation); strings from the client (requested model, group,
 * id) are JSON-escaped, and a line that would not fit is cut at a field
 * boundary rather than written half. Lines never exceed ~2 KB, and writes
 * of whole buffers to an O_APPEND file do not interleave between workers.
 */
#include "eng_declog.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct eng_declog {
    int fd; /* O_APPEND descriptor */
};

eng_declog_t *eng_declog_open(const char *path, eng_error_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open decision log: %s",
                      strerror(errno));
        return NULL;
    }
    eng_declog_t *self = calloc(1, sizeof *self);
    if (!self) {
        close(fd);
        eng_error_set(err, ENG_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
        return NULL;
    }
    self->fd = fd;
    return self;
}

uint64_t eng_declog_dropped(const eng_declog_t *self)
{
    (void)self;
    return 0;
}

void eng_declog_destroy(eng_declog_t **self_p)
{
    if (self_p && *self_p) {
        close((*self_p)->fd);
        free(*self_p);
        *self_p = NULL;
    }
}

void eng_declog_writer_init(eng_declog_writer_t *w, eng_declog_t *log)
{
    w->log = log;
    w->len = 0;
}

void eng_declog_flush(eng_declog_writer_t *w)
{
    size_t off = 0;
    while (w->log && off < w->len) {
        ssize_t n = write(w->log->fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* disk full or similar: drop rather than stall decisions */
        }
        off += (size_t)n;
    }
    w->len = 0;
}

/* A line under construction. */
typedef struct {
    char *p;    /* start */
    size_t len; /* used */
    size_t cap; /* size */
    bool full;  /* something did not fit */
} s_line_t;

static void s_raw(s_line_t *l, const char *s, size_t n)
{
    if (l->full || n > l->cap - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void s_fmt(s_line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_fmt(s_line_t *l, const char *fmt, ...)
{
    if (l->full) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= l->cap - l->len) {
        l->full = true;
        return;
    }
    l->len += (size_t)n;
}

/* ,"key":"escaped" */
static void s_str(s_line_t *l, const char *key, const char *s, size_t n)
{
    s_fmt(l, ",\"%s\":\"", key);
    for (size_t i = 0; i < n && !l->full; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            s_raw(l, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            /* Control bytes and non-ASCII: \u00XX keeps the line valid JSON
             * whatever the client sent. */
            s_fmt(l, "\\u%04x", c);
        } else {
            s_raw(l, (const char *)&c, 1);
        }
    }
    s_raw(l, "\"", 1);
}

static void s_cstr(s_line_t *l, const char *key, const char *s)
{
    s_str(l, key, s ? s : "", s ? strlen(s) : 0);
}

void eng_declog_record(eng_declog_writer_t *w, const proto_request_t *req, const eng_decision_t *d,
                       uint64_t policy_version)
{
    if (!w->log) {
        return;
    }
    if (ENG_DECLOG_BUF - w->len < 4096) {
        eng_declog_flush(w);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s_line_t l = {.p = w->buf + w->len, .cap = ENG_DECLOG_BUF - w->len - 1};
    s_fmt(&l, "{\"ts\":%lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    if (req->id.kind == PROTO_ID_UINT) {
        s_fmt(&l, ",\"id\":%llu", (unsigned long long)req->id.num);
    } else if (req->id.kind == PROTO_ID_STR) {
        s_str(&l, "id", req->id.str.ptr, req->id.str.len);
    }
    s_cstr(&l, "op", proto_op_name(req->op));
    const hpp_features_t *f = &req->features;
    if (f->model.len > 0) {
        s_str(&l, "requested", f->model.ptr, f->model.len);
    } else {
        s_cstr(&l, "requested", HPP_AUTO_MODEL);
    }
    if (f->group.len > 0) {
        s_str(&l, "group", f->group.ptr, f->group.len);
    }
    s_cstr(&l, "status", hpp_status_name(d->status));
    if (d->status == HPP_OK) {
        s_cstr(&l, "model", d->model ? d->model->id : "");
        s_cstr(&l, "provider", d->endpoint ? d->endpoint->provider : "");
        s_cstr(&l, "provider_model", d->endpoint ? d->endpoint->native_id : "");
        s_cstr(&l, "tier", d->tier_name);
        s_cstr(&l, "rule", d->rule);
        s_fmt(&l, ",\"cost_usd\":%.12g,\"cost_pusd\":%lld", hpp_pusd_to_usd(d->cost.total),
              (long long)d->cost.total);
    } else {
        s_cstr(&l, "message", d->message);
    }
    s_fmt(&l, ",\"prompt_tokens\":%lld,\"output_tokens\":%lld,\"policy_version\":%llu}\n",
          (long long)f->prompt_tokens, (long long)d->output_tokens,
          (unsigned long long)policy_version);
    if (!l.full) {
        w->len += l.len;
    }
}
