/* eng_declog.c - JSON-lines decision log.
 *
 * Owns the log's descriptors (one per writer, each its own open file
 * description, so a writer's offset after a write is where its bytes
 * ended) and a copy of the path. A line is built with snprintf into the
 * worker's buffer (no allocation); strings from the client (requested
 * model, group, id) are JSON-escaped, and a line that would not fit is cut
 * at a field boundary rather than written half. Lines never exceed ~2 KB,
 * and appends of whole buffers do not interleave between writers.
 */
#include "eng_declog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_FLAGS (O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC)
#define S_REPORT_MS 60000 /* at most one error line a minute */

struct eng_declog {
    char *path;                      /* as given */
    int fds[ENG_DECLOG_MAX_WRITERS]; /* the writers' descriptors */
    int nfds;                        /* opened */
    int given;                       /* handed to writers */
    _Atomic unsigned generation;     /* +1 per reopen */
    _Atomic uint64_t dropped;        /* lines not written, since start */
    _Atomic uint64_t reported;       /* `dropped` at the last error line */
    _Atomic int64_t report_at;       /* when (monotonic ms), 0 = never */
};

static int s_open_fd(const char *path, eng_error_t *err)
{
    int fd = open(path, S_FLAGS, 0644);
    if (fd < 0) {
        eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open decision log: %s",
                      strerror(errno));
    }
    return fd;
}

eng_declog_t *eng_declog_open(const char *path, eng_error_t *err)
{
    int fd = s_open_fd(path, err);
    if (fd < 0) {
        return NULL;
    }
    eng_declog_t *self = calloc(1, sizeof *self);
    char *copy = strdup(path);
    if (!self || !copy) {
        close(fd);
        free(self);
        free(copy);
        eng_error_set(err, ENG_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
        return NULL;
    }
    self->path = copy;
    self->fds[0] = fd; /* the first writer's */
    self->nfds = 1;
    return self;
}

uint64_t eng_declog_dropped(const eng_declog_t *self)
{
    return self ? atomic_load_explicit(&self->dropped, memory_order_relaxed) : 0;
}

int eng_declog_reopen(eng_declog_t *self, eng_error_t *err)
{
    for (int i = 0; i < self->nfds; i++) {
        int fd = s_open_fd(self->path, err);
        if (fd < 0) {
            return -1;
        }
        atomic_fetch_add_explicit(&self->generation, 1, memory_order_release);
        /* Atomic: the writer never sees the number closed. */
        int rc = dup2(fd, self->fds[i]);
        int e = errno;
        close(fd);
        if (rc < 0) {
            return eng_error_set(err, ENG_ERR_IO, self->path, 0, 0, NULL,
                                 "cannot reopen decision log: %s", strerror(e));
        }
    }
    return 0;
}

void eng_declog_destroy(eng_declog_t **self_p)
{
    if (self_p && *self_p) {
        eng_declog_t *self = *self_p;
        for (int i = 0; i < self->nfds; i++) {
            close(self->fds[i]);
        }
        free(self->path);
        free(self);
        *self_p = NULL;
    }
}

int eng_declog_writer_init(eng_declog_writer_t *w, eng_declog_t *log, eng_error_t *err)
{
    w->log = log;
    w->len = 0;
    w->fd = -1;
    if (!log) {
        return 0;
    }
    if (log->given == log->nfds) {
        if (log->nfds == ENG_DECLOG_MAX_WRITERS) {
            w->log = NULL;
            return eng_error_set(err, ENG_ERR_VALUE, log->path, 0, 0, NULL,
                                 "decision log: more than %d writers", ENG_DECLOG_MAX_WRITERS);
        }
        int fd = s_open_fd(log->path, err);
        if (fd < 0) {
            w->log = NULL;
            return -1;
        }
        log->fds[log->nfds++] = fd;
    }
    w->fd = log->fds[log->given++];
    return 0;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t s_count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    for (const char *end = p + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
        lines++;
    }
    return lines;
}

/* A short write left the first `part` bytes of a line at the end of what
 * this writer wrote: cut them off again, unless the file moved on since
 * (reopened, or another writer appended after them, which cannot happen
 * while writes fail for want of space). */
static void s_cut_partial(eng_declog_writer_t *w, size_t part, unsigned gen)
{
    off_t end = lseek(w->fd, 0, SEEK_CUR);
    struct stat st;
    if (end < (off_t)part || fstat(w->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != end ||
        atomic_load_explicit(&w->log->generation, memory_order_acquire) != gen) {
        return;
    }
    int rc = ftruncate(w->fd, end - (off_t)part);
    (void)rc; /* should the cut fail too, nothing more can be done about that line */
}

/* Counts `lines` dropped and says so, at most once a minute for the whole
 * log, with the count since the last time. */
static void s_dropped(eng_declog_t *log, uint64_t lines, int err)
{
    uint64_t total = atomic_fetch_add_explicit(&log->dropped, lines, memory_order_relaxed) + lines;
    int64_t now = s_mono_ms();
    int64_t last = atomic_load_explicit(&log->report_at, memory_order_relaxed);
    if ((last != 0 && now - last < S_REPORT_MS) ||
        !atomic_compare_exchange_strong(&log->report_at, &last, now)) {
        return;
    }
    uint64_t since = total - atomic_exchange(&log->reported, total);
    eng_log(ENG_LOG_ERROR, "engine",
            "decision log %s: %llu lines dropped (%s), %llu since start; routing goes on, "
            "this is said at most once a minute",
            log->path, (unsigned long long)since, strerror(err), (unsigned long long)total);
}

void eng_declog_flush(eng_declog_writer_t *w)
{
    if (!w->log || w->len == 0) {
        w->len = 0;
        return;
    }
    unsigned gen = atomic_load_explicit(&w->log->generation, memory_order_acquire);
    size_t off = 0;
    int err = 0;
    while (off < w->len) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            err = n < 0 ? errno : EIO; /* disk full or similar: drop rather than stall */
            break;
        }
        off += (size_t)n;
    }
    if (off < w->len) {
        /* Whole lines only: the written bytes past the last newline are the
         * start of a line that did not make it. */
        size_t whole = off;
        while (whole > 0 && w->buf[whole - 1] != '\n') {
            whole--;
        }
        if (whole < off) {
            s_cut_partial(w, off - whole, gen);
        }
        s_dropped(w->log, s_count_lines(w->buf + whole, w->len - whole), err);
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
    /* "type" tells decision lines from outcome lines; readers that predate
     * outcomes skip lines without "op". */
    s_fmt(&l, "{\"type\":\"decision\",\"ts\":%lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    if (req->id.kind == PROTO_ID_UINT) {
        s_fmt(&l, ",\"id\":%llu", (unsigned long long)req->id.num);
    } else if (req->id.kind == PROTO_ID_STR) {
        s_str(&l, "id", req->id.str.ptr, req->id.str.len);
    }
    s_cstr(&l, "op", proto_op_name(req->op));
    if (d->decision_id) {
        /* What a report's `decision` names: the join of outcome and decision. */
        s_fmt(&l, ",\"decision_id\":%llu", (unsigned long long)d->decision_id);
    }
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
        /* The estimate has the group's multiplier in it; outcome lines are
         * at list price, and the summary applies this multiplier to them. */
        s_fmt(&l, ",\"cost_usd\":%.12g,\"cost_pusd\":%lld,\"multiplier_permille\":%u",
              hpp_pusd_to_usd(d->cost.total), (long long)d->cost.total,
              d->permille ? d->permille : 1000);
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

/* ,"key":N for a count the gateway measured (-1 = not). */
static void s_count(s_line_t *l, const char *key, int64_t v)
{
    if (v >= 0) {
        s_fmt(l, ",\"%s\":%lld", key, (long long)v);
    }
}

/* ,"key":X for a figure the gateway measured (negative = not). */
static void s_figure(s_line_t *l, const char *key, double v)
{
    if (v >= 0) {
        s_fmt(l, ",\"%s\":%.6g", key, v);
    }
}

/* Names from the frame are cut to this many bytes: a line stays ~2 KB. */
#define S_NAME_MAX 200

void eng_declog_outcome(eng_declog_writer_t *w, const proto_attempt_t *a, const hpp_cost_t *cost)
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
    s_fmt(&l, "{\"type\":\"outcome\",\"ts\":%lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    if (a->decision) {
        s_fmt(&l, ",\"decision_id\":%llu", (unsigned long long)a->decision);
    }
    s_str(&l, "model", a->model.ptr, a->model.len < S_NAME_MAX ? a->model.len : S_NAME_MAX);
    s_str(&l, "provider", a->provider.ptr,
          a->provider.len < S_NAME_MAX ? a->provider.len : S_NAME_MAX);
    if (a->error != PROTO_XERR_NONE) {
        s_cstr(&l, "error", proto_xerr_name(a->error));
    } else {
        s_fmt(&l, ",\"status\":%u", a->status);
    }
    s_figure(&l, "latency_ms", a->latency_ms);
    s_figure(&l, "ttft_ms", a->ttft_ms);
    s_figure(&l, "tokens_per_s", a->tokens_per_s);
    s_count(&l, "prompt_tokens", a->prompt_tokens);
    s_count(&l, "completion_tokens", a->completion_tokens);
    s_count(&l, "cached_tokens", a->cached_tokens);
    s_count(&l, "reasoning_tokens", a->reasoning_tokens);
    if (cost) {
        s_fmt(&l, ",\"cost_usd\":%.12g,\"cost_pusd\":%lld", hpp_pusd_to_usd(cost->total),
              (long long)cost->total);
    }
    if (a->cost_usd >= 0) {
        s_fmt(&l, ",\"provider_cost_usd\":%.12g", a->cost_usd);
    }
    s_raw(&l, "}\n", 2);
    if (!l.full) {
        w->len += l.len;
    }
}
