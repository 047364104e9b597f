/* eng_metrics.c - see eng_metrics.h.
 *
 * The rule table is open addressing with linear probing over
 * ENG_METRICS_MAX_RULES slots, filled to 3/4 at most so a probe for an
 * absent name ends at a free slot soon. A slot is written once (name, hash,
 * then `ready` with release order) and never changed, so deciding threads
 * read it without a lock; a name is never removed, so a rule dropped by a
 * reload keeps its series (a Prometheus counter does not vanish).
 *
 * The HTTP server reads one request per connection into a fixed buffer and
 * writes the whole answer with non-blocking sends from the poll loop, so a
 * slow or silent client holds one of ENG_METRICS_MAX_CONNS slots for at
 * most S_DEADLINE_MS and never the thread.
 */
#define _GNU_SOURCE
#include "eng_metrics.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eng_policy_internal.h"
#include "hpp_procstats.h"

#define S_MASK (ENG_METRICS_MAX_RULES - 1)
#define S_FILL (ENG_METRICS_MAX_RULES * 3 / 4) /* names the table takes */
#define S_OTHER ENG_METRICS_MAX_RULES          /* counter of names past the table */
#define S_ROW (ENG_METRICS_MAX_RULES + 8)      /* a thread's row: slots, other, padding */
#define S_REQ_MAX 4096                         /* request line and headers */
#define S_DEADLINE_MS 5000                     /* a connection's whole exchange */
#define S_PAUSE_MS 100                         /* no accept after a failed one (EMFILE) */
#define S_LINGER_MS 1000 /* reading what a client still sends, after the answer */
#define S_CACHE 16       /* a thread's remembered rule names */

_Static_assert((ENG_METRICS_MAX_RULES & S_MASK) == 0, "the table size is a power of two");
_Static_assert(S_ROW % 8 == 0, "rows start on a cache line");

typedef struct {
    _Atomic uint32_t ready; /* 1 once name and hash are set (release) */
    uint32_t hash;          /* FNV-1a of the name */
    char *name;             /* owned copy */
} s_rule_t;

/* A rule name a thread has looked up: the pointer the decision carried,
 * under the snapshot version it came from (a later snapshot may reuse the
 * address for another name), and the slot it found. */
typedef struct {
    const char *rule; /* the decision's pointer, NULL = empty */
    uint64_t version; /* its snapshot's version */
    uint32_t slot;    /* rules[] index or S_OTHER */
} s_cached_t;

typedef struct {
    int fd;             /* -1 = free */
    char in[S_REQ_MAX]; /* the request as read so far */
    size_t inlen;       /* its bytes */
    char *out;          /* the answer, once the request is whole (malloc'd) */
    size_t outlen;      /* its bytes */
    size_t outoff;      /* bytes sent */
    bool draining;      /* answer sent: reading to EOF before closing */
    int64_t deadline;   /* mono ms: closed then, whatever its state */
} s_conn_t;

struct eng_metrics {
    s_rule_t rules[ENG_METRICS_MAX_RULES]; /* the names */
    size_t nrules;                         /* used slots (the adding thread's) */
    size_t nthreads;                       /* rows of counts */
    _Atomic uint64_t *counts;              /* nthreads rows of S_ROW counters */
    s_cached_t (*cache)[S_CACHE];          /* per thread: its lookups (that thread only) */
    eng_metrics_collect_fn collect;        /* the server's stats, per scrape */
    void *collect_ctx;                     /* its context */
    int lfd;                               /* listening socket, -1 = none */
    int stopfd;                            /* eventfd: the thread stops when readable */
    pthread_t thread;                      /* the HTTP thread */
    bool started;                          /* it runs */
    char address[300];                     /* bound "host:port" */
    s_conn_t conns[ENG_METRICS_MAX_CONNS]; /* open connections (HTTP thread only) */
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t s_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

/* Rule counters ------------------------------------------------------------- */

/* Adds `name` unless present or the table is full. Single writer. */
static void s_add_rule(eng_metrics_t *self, const char *name)
{
    uint32_t h = s_hash(name);
    for (size_t i = h & S_MASK;; i = (i + 1) & S_MASK) {
        s_rule_t *r = &self->rules[i];
        if (atomic_load_explicit(&r->ready, memory_order_relaxed)) {
            if (r->hash == h && strcmp(r->name, name) == 0) {
                return;
            }
            continue;
        }
        if (self->nrules >= S_FILL) {
            return; /* counted as "other" */
        }
        r->name = strdup(name);
        if (!r->name) {
            return; /* out of memory: counted as "other" */
        }
        r->hash = h;
        self->nrules++;
        atomic_store_explicit(&r->ready, 1, memory_order_release);
        return;
    }
}

eng_metrics_t *eng_metrics_new(size_t nthreads, eng_error_t *err)
{
    eng_metrics_t *self = calloc(1, sizeof *self);
    if (self) {
        self->lfd = self->stopfd = -1;
        self->nthreads = nthreads;
        size_t bytes = sizeof(_Atomic uint64_t) * S_ROW * (nthreads ? nthreads : 1);
        self->counts = aligned_alloc(64, bytes);
        if (self->counts) {
            memset(self->counts, 0, bytes);
        }
        self->cache = calloc(nthreads ? nthreads : 1, sizeof *self->cache);
        for (size_t i = 0; i < ENG_METRICS_MAX_CONNS; i++) {
            self->conns[i].fd = -1;
        }
    }
    if (!self || !self->counts || !self->cache) {
        eng_metrics_destroy(&self);
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        return NULL;
    }
    static const char *const fixed[] = {"direct", "floor", "free"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        s_add_rule(self, fixed[i]);
    }
    return self;
}

void eng_metrics_add_rules(eng_metrics_t *self, const eng_policy_t *pol)
{
    if (!self || !pol) {
        return;
    }
    for (uint32_t i = 0; i < pol->nrules; i++) {
        if (pol->rules[i].name) {
            s_add_rule(self, pol->rules[i].name);
        }
    }
}

/* The slot of `rule` by hashing and probing; S_OTHER when absent. */
static uint32_t s_find(const eng_metrics_t *self, const char *rule)
{
    uint32_t slot = S_OTHER;
    if (rule && *rule) {
        uint32_t h = s_hash(rule);
        for (size_t i = h & S_MASK;; i = (i + 1) & S_MASK) {
            const s_rule_t *r = &self->rules[i];
            if (!atomic_load_explicit(&r->ready, memory_order_acquire)) {
                break;
            }
            if (r->hash == h && strcmp(r->name, rule) == 0) {
                slot = (uint32_t)i;
                break;
            }
        }
    }
    return slot;
}

void eng_metrics_decision(eng_metrics_t *self, size_t thread, uint64_t version, const char *rule)
{
    if (!self || thread >= self->nthreads) {
        return;
    }
    /* The same few names come again and again: remembered by pointer, a
     * decision costs a compare instead of a hash and a string compare. */
    uintptr_t p = (uintptr_t)rule;
    s_cached_t *e = &self->cache[thread][(p >> 3 ^ p >> 9) & (S_CACHE - 1)];
    if (e->rule != rule || e->version != version || !rule) {
        e->rule = rule;
        e->version = version;
        e->slot = s_find(self, rule);
    }
    uint32_t slot = e->slot;
    /* One writer per row: a plain load and store, no locked instruction. */
    _Atomic uint64_t *c = &self->counts[thread * S_ROW + slot];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static uint64_t s_rule_total(const eng_metrics_t *self, size_t slot)
{
    uint64_t n = 0;
    for (size_t t = 0; t < self->nthreads; t++) {
        n += atomic_load_explicit(&self->counts[t * S_ROW + slot], memory_order_relaxed);
    }
    return n;
}

/* Rendering ----------------------------------------------------------------- */

static void s_head(FILE *fp, const char *name, const char *type, const char *help)
{
    fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_render_policy(FILE *fp, const proto_stats_t *st)
{
    s_head(fp, "hpp_engine_policy_info", "gauge",
           "The policy snapshot serving: its version (1 at startup, +1 per successful reload) "
           "and the SHA-256 of its files; always 1.");
    fprintf(fp, "hpp_engine_policy_info{version=\"%llu\",hash=\"",
            (unsigned long long)st->policy_version);
    hpp_metrics_label(fp, st->policy_hash ? st->policy_hash : "");
    fputs("\"} 1\n", fp);
    s_head(fp, "hpp_engine_policy_version", "gauge", "Version of the serving policy snapshot.");
    fprintf(fp, "hpp_engine_policy_version %llu\n", (unsigned long long)st->policy_version);
    s_head(fp, "hpp_engine_reloads_total", "counter",
           "Reloads after startup (SIGHUP, the reload op, --watch), by result: ok (the new "
           "snapshot serves) or failed (refused, the previous one keeps serving).");
    fprintf(fp, "hpp_engine_reloads_total{result=\"ok\"} %llu\n",
            (unsigned long long)st->reloads_ok);
    fprintf(fp, "hpp_engine_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)st->reloads_failed);
    s_head(fp, "hpp_engine_last_reload_success", "gauge",
           "1 when the most recent load (startup included) succeeded, else 0.");
    fprintf(fp, "hpp_engine_last_reload_success %d\n", st->last_reload.ok ? 1 : 0);
    s_head(fp, "hpp_engine_last_reload_timestamp_seconds", "gauge",
           "When the most recent load was tried, Unix seconds.");
    fprintf(fp, "hpp_engine_last_reload_timestamp_seconds %.3f\n", st->last_reload.at);
    s_head(fp, "hpp_engine_catalog_models", "gauge", "Models in the serving catalog.");
    fprintf(fp, "hpp_engine_catalog_models %llu\n", (unsigned long long)st->models);
    s_head(fp, "hpp_engine_catalog_endpoints", "gauge", "Endpoints in the serving catalog.");
    fprintf(fp, "hpp_engine_catalog_endpoints %llu\n", (unsigned long long)st->endpoints);
}

static void s_render_decisions(FILE *fp, const eng_metrics_t *self)
{
    s_head(fp, "hpp_engine_decisions_total", "counter",
           "Successful route decisions, by the rule that decided (a policy rule, or direct, "
           "floor, free for a request that named its model); other = past the name table.");
    for (size_t i = 0; i < ENG_METRICS_MAX_RULES; i++) {
        const s_rule_t *r = &self->rules[i];
        if (!atomic_load_explicit(&r->ready, memory_order_acquire)) {
            continue;
        }
        fputs("hpp_engine_decisions_total{rule=\"", fp);
        hpp_metrics_label(fp, r->name);
        fprintf(fp, "\"} %llu\n", (unsigned long long)s_rule_total(self, i));
    }
    uint64_t other = s_rule_total(self, S_OTHER);
    if (other) {
        fprintf(fp, "hpp_engine_decisions_total{rule=\"other\"} %llu\n", (unsigned long long)other);
    }
}

/* The ledger's counters (--ledger); its refusals are errors_total by code. */
static void s_render_ledger(FILE *fp, const proto_stats_t *st)
{
    s_head(fp, "hpp_engine_ledger_total", "counter",
           "The ledger's reservations and how they ended: reserved, settled (by a report), "
           "released (a report with no answer), expired (--ledger-hold), duplicate (a report of a "
           "decision already settled or unknown), unavailable (store failures).");
    const struct {
        const char *event;
        uint64_t v;
    } ev[] = {
        {"reserved", st->ledger_reservations}, {"settled", st->ledger_settled},
        {"released", st->ledger_released},     {"expired", st->ledger_expired},
        {"duplicate", st->ledger_duplicates},  {"unavailable", st->ledger_unavailable},
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
        fprintf(fp, "hpp_engine_ledger_total{event=\"%s\"} %llu\n", ev[i].event,
                (unsigned long long)ev[i].v);
    }
    s_head(fp, "hpp_engine_ledger_keys", "gauge", "Keys in the key table serving (--keys).");
    fprintf(fp, "hpp_engine_ledger_keys %llu\n", (unsigned long long)st->ledger_keys);
}

static void s_render_traffic(FILE *fp, const proto_stats_t *st)
{
    s_head(fp, "hpp_engine_requests_total", "counter", "Decoded requests, by op.");
    for (int i = 0; i < PROTO_OP_COUNT; i++) {
        fprintf(fp, "hpp_engine_requests_total{op=\"%s\"} %llu\n", proto_op_name((proto_op_t)i),
                (unsigned long long)st->requests[i]);
    }
    s_head(fp, "hpp_engine_errors_total", "counter", "Error replies, by error code.");
    for (int i = 1; i < HPP_STATUS_COUNT; i++) {
        fprintf(fp, "hpp_engine_errors_total{code=\"%s\"} %llu\n", hpp_status_name((hpp_status_t)i),
                (unsigned long long)st->errors[i]);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"hpp_engine_malformed_total", "Frames that failed to decode or came with a bad envelope.",
         offsetof(proto_stats_t, malformed)},
        {"hpp_engine_replies_dropped_total",
         "Replies that could not be delivered (the client's queue was full or it left).",
         offsetof(proto_stats_t, dropped)},
        {"hpp_engine_refused_total",
         "Requests refused by a per-client or engine-wide limit (--peer-inflight, "
         "--peer-queue-kb, --queue-mb).",
         offsetof(proto_stats_t, refused)},
        {"hpp_engine_decision_log_dropped_total",
         "Decision log lines that could not be written (disk full, file too large).",
         offsetof(proto_stats_t, decision_log_dropped)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        s_head(fp, counters[i].name, "counter", counters[i].help);
        fprintf(fp, "%s %llu\n", counters[i].name,
                (unsigned long long)*(const uint64_t *)((const char *)st + counters[i].off));
    }
    s_head(fp, "hpp_engine_queued_reply_bytes", "gauge",
           "Bytes of large replies handed to clients' connections and not yet written "
           "(bounded by --queue-mb).");
    fprintf(fp, "hpp_engine_queued_reply_bytes %llu\n", (unsigned long long)st->queued_bytes);
    s_head(fp, "hpp_engine_worker_threads", "gauge", "Worker threads (--threads).");
    fprintf(fp, "hpp_engine_worker_threads %u\n", st->threads);
    if (st->ledger_store) {
        s_render_ledger(fp, st);
    }
}

char *eng_metrics_render(const eng_metrics_t *self, const proto_stats_t *st, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    if (!fp) {
        return NULL;
    }
    hpp_build_info_write(fp, "hpp_engine_build_info");
    s_render_policy(fp, st);
    s_render_decisions(fp, self);
    s_render_traffic(fp, st);
    hpp_procstats_t ps;
    hpp_procstats_read(&ps);
    hpp_procstats_write(fp, &ps);
    if (fclose(fp) != 0) {
        free(buf);
        return NULL;
    }
    if (len) {
        *len = n;
    }
    return buf;
}

/* The HTTP server ------------------------------------------------------------ */

int eng_metrics_parse_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen,
                           char *why, size_t whylen)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2; /* [::1]:9464 */
    } else if (colon && memchr(addr, ':', hl)) {
        snprintf(why, whylen, "an IPv6 address goes in brackets, as [::1]:9464");
        return -1;
    }
    const char *p = colon ? colon + 1 : "";
    size_t pl = strlen(p);
    bool digits = pl > 0 && pl <= 5 && strspn(p, "0123456789") == pl;
    if (!colon || hl == 0 || !digits || atol(p) > 65535) {
        snprintf(why, whylen, "expected HOST:PORT (PORT 0..65535), as 127.0.0.1:9464");
        return -1;
    }
    if (hl >= hostlen || pl >= portlen) {
        snprintf(why, whylen, "address too long");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

/* Binds and listens on addr; fills self->address with the real port. */
static int s_bind(eng_metrics_t *self, const char *addr, eng_error_t *err)
{
    char host[256], port[8], why[128];
    if (eng_metrics_parse_addr(addr, host, sizeof host, port, sizeof port, why, sizeof why) != 0) {
        return eng_error_set(err, ENG_ERR_VALUE, addr, 0, 0, NULL, "--metrics-listen: %s", why);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        return eng_error_set(err, ENG_ERR_VALUE, addr, 0, 0, NULL,
                             "--metrics-listen: cannot resolve '%s': %s", host, gai_strerror(gai));
    }
    int e = 0;
    for (struct addrinfo *ai = res; ai && self->lfd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int on = 1;
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
            self->lfd = fd;
            break;
        }
        e = errno;
        if (fd >= 0) {
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (self->lfd < 0) {
        return eng_error_set(err, ENG_ERR_IO, addr, 0, 0, NULL, "--metrics-listen: cannot bind: %s",
                             strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char nh[NI_MAXHOST] = "?", ns[NI_MAXSERV] = "?";
    if (getsockname(self->lfd, (struct sockaddr *)&ss, &sl) == 0) {
        getnameinfo((struct sockaddr *)&ss, sl, nh, sizeof nh, ns, sizeof ns,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    }
    snprintf(self->address, sizeof self->address, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
             nh, ns);
    return 0;
}

static void s_conn_close(s_conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->inlen = c->outlen = c->outoff = 0;
    c->draining = false;
}

/* Sets the answer: status line, headers, and the body unless `head_only`. */
static void s_answer(s_conn_t *c, int status, const char *extra, const char *body, size_t blen,
                     bool head_only)
{
    static const struct {
        int code;
        const char *text;
    } reasons[] = {{200, "OK"},
                   {400, "Bad Request"},
                   {404, "Not Found"},
                   {405, "Method Not Allowed"},
                   {431, "Request Header Fields Too Large"},
                   {500, "Internal Server Error"}};
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        if (reasons[i].code == status) {
            reason = reasons[i].text;
        }
    }
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, reason,
                      status == 200 ? "text/plain; version=0.0.4; charset=utf-8"
                                    : "text/plain; charset=utf-8",
                      blen, extra ? extra : "");
    size_t n = (size_t)hl + (head_only ? 0 : blen);
    c->out = malloc(n);
    if (!c->out) {
        s_conn_close(c); /* out of memory: nothing better to say */
        return;
    }
    memcpy(c->out, head, (size_t)hl);
    if (!head_only) {
        memcpy(c->out + hl, body, blen);
    }
    c->outlen = n;
    c->outoff = 0;
}

static void s_answer_text(s_conn_t *c, int status, const char *extra, const char *msg)
{
    s_answer(c, status, extra, msg, strlen(msg), false);
}

/* The length of the run of in[at..len) bytes that `ok` accepts. */
static size_t s_span(const char *in, size_t at, size_t len, int (*ok)(int))
{
    size_t n = 0;
    while (at + n < len && ok((unsigned char)in[at + n])) {
        n++;
    }
    return n;
}

static int s_is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}

static int s_is_target(int c)
{
    return c > ' ' && c < 0x7f;
}

int eng_metrics_request(const char *in, size_t len, bool *head)
{
    /* "METHOD SP TARGET SP HTTP/1.x CRLF" (or LF), single spaces. */
    size_t m = s_span(in, 0, len, s_is_upper);
    if (m == 0 || m >= len || in[m] != ' ') {
        return 400;
    }
    size_t t0 = m + 1, t = s_span(in, t0, len, s_is_target);
    size_t v0 = t0 + t + 1;
    if (t == 0 || v0 > len || in[t0 + t] != ' ' || len - v0 < 9 ||
        memcmp(in + v0, "HTTP/1.", 7) != 0 || in[v0 + 7] < '0' || in[v0 + 7] > '9' ||
        (in[v0 + 8] != '\r' && in[v0 + 8] != '\n')) {
        return 400;
    }
    *head = m == 4 && memcmp(in, "HEAD", 4) == 0;
    if (!*head && !(m == 3 && memcmp(in, "GET", 3) == 0)) {
        return 405;
    }
    const char *q = memchr(in + t0, '?', t);
    size_t path = q ? (size_t)(q - (in + t0)) : t;
    return path == 8 && memcmp(in + t0, "/metrics", 8) == 0 ? 200 : 404;
}

/* A whole header block is in c->in: answers it (the rest is not read). */
static void s_request(eng_metrics_t *self, s_conn_t *c)
{
    bool head = false;
    switch (eng_metrics_request(c->in, c->inlen, &head)) {
    case 200:
        break;
    case 405:
        s_answer_text(c, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD\n");
        return;
    case 404:
        s_answer_text(c, 404, NULL, "not found: the metrics are at /metrics\n");
        return;
    default:
        s_answer_text(c, 400, NULL, "malformed request line\n");
        return;
    }
    proto_stats_t st;
    char hash[65] = "";
    memset(&st, 0, sizeof st);
    self->collect(self->collect_ctx, &st, hash);
    size_t len = 0;
    char *text = eng_metrics_render(self, &st, &len);
    if (!text) {
        s_answer_text(c, 500, NULL, "out of memory\n");
        return;
    }
    s_answer(c, 200, NULL, text, len, head);
    free(text);
}

/* Reads what the client sent; answers once the header block is whole. */
static void s_conn_read(eng_metrics_t *self, s_conn_t *c)
{
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        s_conn_close(c);
        return;
    }
    if (n < 0) {
        return;
    }
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
        s_request(self, c);
    } else if (c->inlen >= sizeof c->in - 1) {
        s_answer_text(c, 431, NULL, "request headers too large\n");
    }
}

static void s_conn_write(s_conn_t *c)
{
    ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        s_conn_close(c);
        return;
    }
    c->outoff += n > 0 ? (size_t)n : 0;
    if (c->outoff == c->outlen) {
        /* Connection: close. Closing with unread bytes (the rest of an
         * oversized request) would send a reset that can destroy the answer
         * before the client reads it: end our side, read to EOF, then close. */
        shutdown(c->fd, SHUT_WR);
        free(c->out);
        c->out = NULL;
        c->draining = true;
        int64_t until = s_mono_ms() + S_LINGER_MS;
        c->deadline = until < c->deadline ? until : c->deadline;
    }
}

static void s_conn_drain(s_conn_t *c)
{
    char buf[4096];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        s_conn_close(c);
    }
}

static void s_accept(eng_metrics_t *self, int64_t now, int64_t *paused_until)
{
    for (size_t i = 0; i < ENG_METRICS_MAX_CONNS; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->fd >= 0) {
            continue;
        }
        int fd = accept4(self->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                /* Out of descriptors, mostly: the connection waits in the
                 * backlog; accepting again at once would spin. */
                *paused_until = now + S_PAUSE_MS;
            }
            return;
        }
        c->fd = fd;
        c->deadline = now + S_DEADLINE_MS;
        return;
    }
}

static void *s_thread_main(void *arg)
{
    pthread_setname_np(pthread_self(), "hpp-metrics"); /* as top -H, perf and /proc show it */
    eng_metrics_t *self = arg;
    int64_t paused_until = 0;
    for (;;) {
        struct pollfd pfd[2 + ENG_METRICS_MAX_CONNS];
        s_conn_t *who[2 + ENG_METRICS_MAX_CONNS];
        nfds_t n = 0;
        int64_t now = s_mono_ms(), next = now + 1000;
        pfd[n++] = (struct pollfd){.fd = self->stopfd, .events = POLLIN};
        bool free_slot = false;
        for (size_t i = 0; i < ENG_METRICS_MAX_CONNS; i++) {
            s_conn_t *c = &self->conns[i];
            if (c->fd >= 0 && now >= c->deadline) {
                s_conn_close(c);
            }
            if (c->fd < 0) {
                free_slot = true;
                continue;
            }
            next = c->deadline < next ? c->deadline : next;
            who[n] = c;
            pfd[n++] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
        }
        bool listening = free_slot && now >= paused_until;
        if (listening) {
            who[n] = NULL;
            pfd[n++] = (struct pollfd){.fd = self->lfd, .events = POLLIN};
        } else if (free_slot) {
            next = paused_until < next ? paused_until : next;
        }
        int rc = poll(pfd, n, (int)(next > now ? next - now : 0));
        if (rc < 0 && errno != EINTR) {
            eng_log(ENG_LOG_ERROR, "metrics", "poll failed: %s", strerror(errno));
            break;
        }
        if (rc <= 0) {
            continue;
        }
        if (pfd[0].revents) {
            break; /* eng_metrics_destroy */
        }
        now = s_mono_ms();
        for (nfds_t i = 1; i < n; i++) {
            if (!pfd[i].revents) {
                continue;
            }
            if (!who[i]) {
                s_accept(self, now, &paused_until);
            } else if (who[i]->out) {
                s_conn_write(who[i]);
            } else if (who[i]->draining) {
                s_conn_drain(who[i]);
            } else {
                s_conn_read(self, who[i]);
                if (who[i]->out) {
                    s_conn_write(who[i]); /* most answers leave at once */
                }
            }
        }
    }
    return NULL;
}

int eng_metrics_serve(eng_metrics_t *self, const char *addr, eng_metrics_collect_fn collect,
                      void *ctx, eng_error_t *err)
{
    if (s_bind(self, addr, err) != 0) {
        return -1;
    }
    self->collect = collect;
    self->collect_ctx = ctx;
    self->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->stopfd < 0) {
        return eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "eventfd: %s", strerror(errno));
    }
    if (pthread_create(&self->thread, NULL, s_thread_main, self) != 0) {
        return eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "no metrics thread");
    }
    self->started = true;
    return 0;
}

const char *eng_metrics_address(const eng_metrics_t *self)
{
    return self ? self->address : "";
}

void eng_metrics_stop(eng_metrics_t *self)
{
    if (!self) {
        return;
    }
    if (self->started) {
        uint64_t one = 1;
        if (write(self->stopfd, &one, sizeof one) != sizeof one) {
            eng_log(ENG_LOG_ERROR, "metrics", "cannot stop the metrics thread: %s",
                    strerror(errno));
        }
        pthread_join(self->thread, NULL);
        self->started = false;
    }
    for (size_t i = 0; i < ENG_METRICS_MAX_CONNS; i++) {
        s_conn_close(&self->conns[i]);
    }
    if (self->lfd >= 0) {
        close(self->lfd);
        self->lfd = -1;
    }
    if (self->stopfd >= 0) {
        close(self->stopfd);
        self->stopfd = -1;
    }
}

void eng_metrics_destroy(eng_metrics_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_metrics_t *self = *self_p;
    eng_metrics_stop(self);
    for (size_t i = 0; i < ENG_METRICS_MAX_RULES; i++) {
        free(self->rules[i].name);
    }
    free(self->counts);
    free(self->cache);
    free(self);
    *self_p = NULL;
}
