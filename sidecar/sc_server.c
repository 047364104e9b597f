/* sc_server.c - endpoints, request lifecycle and replies of hpp-sidecar.
 *
 * Every request becomes an sc_call_t taken from a small pool: it owns the
 * extraction context (whose strings the features borrow), the engine call
 * handle and the copied decision. A call ends in exactly one reply; then it
 * records its metrics and goes back to the pool. If the client connection
 * closes first, libevent tells us through the connection's close callback:
 * pending engine and upstream work is cancelled and, when libevent left the
 * request to us, it is answered into the void so libevent frees it.
 *
 * Routes are a table (path, method, handler) so 404/405 and the Allow header
 * come from one place. Replies on the decision path are written straight
 * into the output evbuffer; no JSON library is involved there.
 */
#include "sc_server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "eng_common.h"
#include "hpp_keys.h"
#include "sc_accesslog.h"
#include "sc_api.h"
#include "sc_call.h"
#include "sc_engine.h"
#include "sc_failopen.h"
#include "sc_local.h"
#include "hpp_apikeys.h"
#include "sc_proxy.h"
#include "sc_report.h"
#include "sc_trust.h"

#define S_POOL_MAX 256        /* finished calls kept for reuse */
#define S_CONN_POOL_MAX 1024  /* closed connections' states kept for reuse */
#define S_ACCEPT_PAUSE_MS 100 /* accepting stops this long after a failed accept */
#define S_LOG_EVERY_S 5.0     /* a repeated warning is logged once in this interval */
#define S_EV_MAX_READ 4096    /* libevent 2.1's bytes per socket read (EVBUFFER_MAX_READ) */
#define S_PULL_CHUNK 65536    /* s_pull: bytes asked of one recv */
#define S_PULL_MAX (1u << 20) /* s_pull: bytes read in one go at most */

/* Where a client connection is in its request cycle; each phase but BUSY
 * has its own deadline, per request (never restarted by a byte). */
typedef enum {
    S_PH_HEAD, /* reading a request's headers: --header-timeout */
    S_PH_BODY, /* reading its body: --body-timeout */
    S_PH_BUSY, /* the request is ours, until its answer is written: no deadline */
    S_PH_IDLE, /* kept alive, waiting for a request's first byte: --idle-timeout */
} s_phase_t;

/* One client connection, from its accept to its close (libevent's close
 * callback). */
typedef struct s_conn {
    struct sc_server *srv;
    struct evhttp_connection *evcon; /* libevent's connection */
    struct bufferevent *bev;         /* its bufferevent */
    struct evbuffer_cb_entry *watch; /* our callback on its input buffer */
    struct event *deadline;          /* the phase's deadline (kept across reuse) */
    sc_call_t *call;                 /* the request being answered, NULL when none */
    int fd;                          /* its socket, the index in srv->conns */
    s_phase_t phase;                 /* see above */
    size_t line;                     /* S_PH_HEAD: bytes of the current line so far */
    bool cr;                         /* ... and whether the last one was CR */
    int lines;                       /* ... lines complete */
    bool pulling;                    /* s_pull is adding to the input buffer */
    struct s_conn *next;             /* pool link */
} s_conn_t;

/* A warning that may repeat fast (a failed accept, a refused connection):
 * logged at once, then at most once every S_LOG_EVERY_S with the count. */
typedef struct {
    double last;      /* when it was last logged, 0 = never */
    uint64_t pending; /* occurrences since */
} s_ratelog_t;

struct sc_server {
    sc_config_t cfg;                   /* configuration (strings borrowed) */
    struct event_base *base;           /* the loop */
    struct evhttp *http;               /* the HTTP server */
    struct evhttp_bound_socket *bound; /* the listener */
    int port;                          /* bound port */
    struct event *sigint;              /* SIGINT -> stop */
    struct event *sigterm;             /* SIGTERM -> stop */
    struct event *sighup;              /* SIGHUP -> reload the key file */
    hpp_apikeys_t *keys;               /* --keys table, NULL = none */
    sc_accesslog_t *access;            /* --access-log, NULL = none */
    sc_trust_config_t trust;           /* the trust boundary's settings (keys: the table above) */
    sc_report_t *reports;              /* proxy mode: reports waiting for the loop's next turn */
    sc_failopen_t *failopen;           /* --fail-open: what the model may answer, per group; one
                                          table for every worker, made by the first */
    sc_failopen_cache_t fo_seen;       /* the groups this worker handed to that table */
    sc_engine_t *engine;               /* link to hpp-engine */
    sc_metrics_t *metrics;             /* counters */
    sc_proxy_t *proxy;                 /* proxy mode: the upstream; NULL = decision only */
    struct sc_call *pool;              /* finished calls kept for reuse */
    int npool;                         /* their number */
    int live;                          /* calls in progress */

    /* Client connections. */
    int max_conns;              /* --max-connections, or its default */
    int open;                   /* tracked connections open */
    s_conn_t **conns;           /* by socket: the connection's state, or NULL */
    int nconns;                 /* entries of conns[] */
    s_conn_t *conn_pool;        /* closed connections' states kept for reuse */
    int nconn_pool;             /* their number */
    struct bufferevent **fresh; /* bufferevents of connections accepted this turn */
    int nfresh, cfresh;         /* used and allocated entries of fresh[] */
    struct event *adopt;        /* takes the fresh connections in, once libevent has */
    struct event *resume;       /* accepting again after a failed accept */
    s_ratelog_t accept_log;     /* failed accepts */
    s_ratelog_t refuse_log;     /* refused connections */
    struct sc_server *next_srv; /* s_servers link */

    /* One worker of several (sc_workers.h), or alone (worker.count 0). */
    sc_server_worker_t worker; /* index, peers, the shared connection count */
    int open_alone;            /* the connection count when alone */
    int *open_all;             /* connections open in the process: worker.open or &open_alone */
    int ctl[2];                /* control pipe: commands from other threads */
    struct event *ctl_ev;      /* reads them on the loop */
};

/* The servers of the process. The listener's error callback is given the
 * evhttp (libevent's own callback data), and finds its server here. Workers
 * are added and removed only while none runs (sc_workers.c), so the loops
 * read the list without a lock. */
static sc_server_t *s_servers;

void sc_config_defaults(sc_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = SC_DEFAULT_LISTEN;
    cfg->ping_ms = SC_DEFAULT_PING_MS;
    cfg->timeout_ms = SC_DEFAULT_TIMEOUT_MS;
    cfg->max_body = SC_DEFAULT_MAX_BODY;
    cfg->max_retries = SC_DEFAULT_MAX_RETRIES;
    cfg->upstream_timeout_s = SC_DEFAULT_UPSTREAM_TIMEOUT_S;
    cfg->header_timeout_s = SC_DEFAULT_HEADER_TIMEOUT_S;
    cfg->body_timeout_s = SC_DEFAULT_BODY_TIMEOUT_S;
    cfg->idle_timeout_s = SC_DEFAULT_IDLE_TIMEOUT_S;
}

int sc_server_max_connections(unsigned long long nofile, bool proxy)
{
    unsigned long long n = nofile > SC_FD_RESERVE ? nofile - SC_FD_RESERVE : 1;
    if (proxy) {
        n /= 2;
    }
    if (n > 1000000) {
        n = 1000000; /* an unlimited RLIMIT_NOFILE: memory is the bound then */
    }
    return n < 1 ? 1 : (int)n;
}

/* Reason phrases -------------------------------------------------------- */

static const struct {
    int status;         /* HTTP status */
    const char *reason; /* its phrase */
} s_reasons[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Payload Too Large"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {0, NULL},
};

static const char *s_reason(int status)
{
    for (int i = 0; s_reasons[i].reason; i++) {
        if (s_reasons[i].status == status) {
            return s_reasons[i].reason;
        }
    }
    return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* Client connections --------------------------------------------------------
 *
 * libevent's evhttp (2.1) says nothing when it accepts a connection and has
 * no limit on how many it keeps, and its timeouts are per byte: a client
 * that sends one byte a second keeps a connection forever. So the server
 * follows every connection itself:
 *
 * - evhttp asks us for each new connection's bufferevent (evhttp_set_bevcb);
 *   we keep a reference to it and, in an event activated for the same turn
 *   of the loop (before any byte is read), take the connection in: over
 *   --max-connections it is answered 503 and closed, else it gets a state
 *   (s_conn_t, indexed by its socket), a close callback and a deadline.
 * - A callback on its input buffer sees every byte as it arrives, before
 *   evhttp parses it: the first byte of a request after an idle pause, and
 *   the empty line that ends the headers, move the phase on. The request
 *   handler takes the request (BUSY) and its completion callback gives the
 *   connection back (IDLE).
 * - A deadline that expires while headers or body are read answers 408 and
 *   closes; an idle one closes.
 * - When accept() fails (EMFILE: out of descriptors) the listener stops for
 *   S_ACCEPT_PAUSE_MS instead of being called again at once for ever, and
 *   the warning is rate-limited.
 */

static void s_call_closed(sc_call_t *call);

static void s_ratelog(s_ratelog_t *rl, eng_log_level_t level, const char *fmt, const char *what)
{
    double now = sc_now();
    rl->pending++;
    if (rl->last != 0 && now - rl->last < S_LOG_EVERY_S) {
        return;
    }
    char times[64] = "";
    if (rl->last != 0 && rl->pending > 1) {
        snprintf(times, sizeof times, " (%llu times in the last %.0f s)",
                 (unsigned long long)rl->pending, now - rl->last);
    }
    eng_log(level, "sidecar", fmt, what, times);
    rl->last = now;
    rl->pending = 0;
}

static int s_phase_timeout(const sc_server_t *srv, s_phase_t ph)
{
    switch (ph) {
    case S_PH_HEAD:
        return srv->cfg.header_timeout_s;
    case S_PH_BODY:
        return srv->cfg.body_timeout_s;
    case S_PH_IDLE:
        return srv->cfg.idle_timeout_s;
    default:
        return 0;
    }
}

/* Enters a phase and (re)arms its deadline. */
static void s_phase(s_conn_t *c, s_phase_t ph)
{
    c->phase = ph;
    c->line = 0;
    c->cr = false;
    c->lines = 0;
    int secs = s_phase_timeout(c->srv, ph);
    if (secs > 0) {
        struct timeval tv = {.tv_sec = secs, .tv_usec = 0};
        evtimer_add(c->deadline, &tv);
    } else {
        evtimer_del(c->deadline);
    }
}

/* Scans header bytes for the empty line that ends them (LF or CRLF line
 * ends, as evhttp reads them). Returns true when found. */
static bool s_scan_bytes(s_conn_t *c, const char *b, size_t n)
{
    const char *end = b + n;
    while (b < end) {
        const char *nl = memchr(b, '\n', (size_t)(end - b));
        if (!nl) {
            c->line += (size_t)(end - b);
            c->cr = end[-1] == '\r';
            return false;
        }
        size_t k = (size_t)(nl - b);
        bool cr = k > 0 ? nl[-1] == '\r' : c->cr;
        size_t len = c->line + k;
        if (c->lines > 0 && (len == 0 || (len == 1 && cr))) {
            return true;
        }
        c->lines++;
        c->line = 0;
        c->cr = false;
        b = nl + 1;
    }
    return false;
}

/* Scans `n` bytes of buf from `off` while the headers are being read. */
static void s_scan(s_conn_t *c, struct evbuffer *buf, size_t off, size_t n)
{
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(buf, &p, off, EVBUFFER_PTR_SET) != 0) {
        return;
    }
    while (n > 0 && c->phase == S_PH_HEAD) {
        struct evbuffer_iovec v[8];
        int nv = evbuffer_peek(buf, (ev_ssize_t)n, &p, v, 8);
        if (nv <= 0) {
            return;
        }
        size_t done = 0;
        for (int i = 0; i < nv && i < 8 && n > 0; i++) {
            size_t len = v[i].iov_len < n ? v[i].iov_len : n;
            if (s_scan_bytes(c, v[i].iov_base, len)) {
                s_phase(c, S_PH_BODY);
                return;
            }
            n -= len;
            done += len;
        }
        if (evbuffer_ptr_set(buf, &p, done, EVBUFFER_PTR_ADD) != 0) {
            return;
        }
    }
}

/* Reads what the socket holds into the input buffer, S_PULL_CHUNK bytes a
 * call, at most S_PULL_MAX in all: see s_on_input. Errors and the end of the
 * stream are left to libevent, whose next read on this socket sees them. */
static void s_pull(s_conn_t *c, struct evbuffer *buf)
{
    /* No more than a body may hold (and one chunk to see it is too long):
     * a client with a small --max-body cannot park a megabyte here. */
    size_t cap = c->srv->cfg.max_body + S_PULL_CHUNK;
    if (cap > S_PULL_MAX) {
        cap = S_PULL_MAX;
    }
    c->pulling = true;
    for (size_t total = 0; total < cap;) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(buf, S_PULL_CHUNK, &v, 1) < 1) {
            break; /* the buffer's end is frozen, or out of memory */
        }
        ssize_t n = recv(c->fd, v.iov_base, v.iov_len, MSG_DONTWAIT);
        if (n <= 0) {
            break; /* nothing more now (EAGAIN), or the end or an error: not committed */
        }
        v.iov_len = (size_t)n;
        if (evbuffer_commit_space(buf, &v, 1) != 0) {
            break;
        }
        total += (size_t)n;
        if ((size_t)n < S_PULL_CHUNK) {
            break; /* the socket is empty */
        }
    }
    c->pulling = false;
}

/* The connection's input buffer changed: bytes read from the socket (added
 * at its end, before evhttp parses them) or taken by evhttp.
 *
 * libevent 2.1 reads at most 4096 bytes from a socket per turn of the loop
 * (EVBUFFER_MAX_READ, not configurable before 2.2), so a 32 KB body took 9
 * turns, each a FIONREAD ioctl, a readv and a pass through evhttp's reader.
 * This callback runs inside that read, while the buffer's end is open: when
 * a body's read filled the 4096 bytes, the rest the socket holds is read
 * here at once (s_pull), and evhttp finds the whole body on this turn. */
static void s_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    s_conn_t *c = arg;
    if (info->n_added == 0) {
        return;
    }
    if (c->phase == S_PH_IDLE) {
        s_phase(c, S_PH_HEAD); /* a request's first byte */
    }
    if (c->phase == S_PH_HEAD) {
        size_t len = evbuffer_get_length(buf);
        size_t n = info->n_added < len ? info->n_added : len;
        s_scan(c, buf, len - n, n);
    }
    if (c->phase == S_PH_BODY && info->n_added >= S_EV_MAX_READ && !c->pulling) {
        s_pull(c, buf);
    }
}

/* The answer to the connection's request is written and it is kept alive:
 * the next request's deadline starts with its first byte, which may be
 * here already (pipelined). */
static void s_on_request_done(struct evhttp_request *req, void *arg)
{
    (void)req;
    s_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        s_phase(c, S_PH_IDLE);
        return;
    }
    s_phase(c, S_PH_HEAD);
    s_scan(c, in, 0, len);
}

/* libevent closes the connection. */
static void s_on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    s_conn_t *c = arg;
    sc_server_t *srv = c->srv;
    if (c->call) {
        sc_call_t *call = c->call;
        c->call = NULL;
        call->conn = NULL;
        s_call_closed(call);
    }
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
    c->watch = NULL;
    evtimer_del(c->deadline);
    if (c->fd >= 0 && c->fd < srv->nconns && srv->conns[c->fd] == c) {
        srv->conns[c->fd] = NULL;
    }
    srv->open--;
    __atomic_fetch_sub(srv->open_all, 1, __ATOMIC_RELAXED);
    sc_metrics_connections(srv->metrics, (uint64_t)srv->open);
    c->evcon = NULL;
    c->bev = NULL;
    c->call = NULL;
    if (srv->nconn_pool < S_CONN_POOL_MAX) {
        c->next = srv->conn_pool;
        srv->conn_pool = c;
        srv->nconn_pool++;
    } else {
        event_free(c->deadline);
        free(c);
    }
}

/* Closing after a last answer we wrote ourselves: what the client sends
 * meanwhile is read and dropped (closing with unread bytes would reset the
 * connection, and the client could lose the answer); once the answer is
 * written the connection is freed. evhttp's callbacks are replaced, so it
 * no longer acts on it; the server's write timeout bounds the wait. */
static void s_closing_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void s_closing_written(struct bufferevent *bev, void *arg)
{
    s_closing_read(bev, arg);
    evhttp_connection_free(arg);
}

static void s_closing_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    evhttp_connection_free(arg);
}

/* Sends one answer (status, JSON error) on a connection that has no request
 * of ours, and closes it. */
static void s_answer_close(struct evhttp_connection *evcon, struct bufferevent *bev,
                           const oai_error_t *err)
{
    char body[768];
    size_t n = oai_error_json(err, body, sizeof body);
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
                        err->status, s_reason(err->status), n,
                        err->status == 503 ? "Retry-After: 1\r\n" : "");
    evbuffer_add(out, body, n);
    bufferevent_setcb(bev, s_closing_read, s_closing_written, s_closing_event, evcon);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void s_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_conn_t *c = arg;
    sc_server_t *srv = c->srv;
    if (c->phase == S_PH_BUSY) {
        return;
    }
    if (c->phase == S_PH_IDLE) {
        sc_metrics_client_timeout(srv->metrics, SC_CTIMEOUT_IDLE);
        evhttp_connection_free(c->evcon); /* calls s_on_conn_close */
        return;
    }
    bool head = c->phase == S_PH_HEAD;
    sc_metrics_client_timeout(srv->metrics, head ? SC_CTIMEOUT_HEADER : SC_CTIMEOUT_BODY);
    oai_error_t err;
    oai_error_set(&err, 408, "request_timeout", NULL,
                  "the request's %s did not arrive within %d s (--%s-timeout)",
                  head ? "headers" : "body", s_phase_timeout(srv, c->phase),
                  head ? "header" : "body");
    c->phase = S_PH_BUSY; /* nothing more is read as a request */
    s_answer_close(c->evcon, c->bev, &err);
}

/* Makes room for socket fd in srv->conns. Returns 0 or -1. */
static int s_conns_fit(sc_server_t *srv, int fd)
{
    if (fd < srv->nconns) {
        return 0;
    }
    int n = srv->nconns ? srv->nconns : 256;
    while (n <= fd) {
        n *= 2;
    }
    s_conn_t **conns = realloc(srv->conns, (size_t)n * sizeof *conns);
    if (!conns) {
        return -1;
    }
    memset(conns + srv->nconns, 0, (size_t)(n - srv->nconns) * sizeof *conns);
    srv->conns = conns;
    srv->nconns = n;
    return 0;
}

/* Counts one more connection open in the process unless that would pass
 * --max-connections, a limit of the process: with several workers the count
 * is theirs together. Returns whether it was counted. */
static bool s_conn_reserve(sc_server_t *srv)
{
    if (__atomic_fetch_add(srv->open_all, 1, __ATOMIC_RELAXED) < srv->max_conns) {
        return true;
    }
    __atomic_fetch_sub(srv->open_all, 1, __ATOMIC_RELAXED);
    return false;
}

/* Follows a connection evhttp made (see above); `reserved`: it is counted
 * in open_all already (s_conn_reserve). Returns its state, or NULL when out
 * of memory (the connection then goes on untracked, and uncounted). */
static s_conn_t *s_conn_track(sc_server_t *srv, struct evhttp_connection *evcon,
                              struct bufferevent *bev, int fd, bool reserved)
{
    if (fd < 0 || s_conns_fit(srv, fd) != 0) {
        if (reserved) {
            __atomic_fetch_sub(srv->open_all, 1, __ATOMIC_RELAXED);
        }
        return NULL;
    }
    s_conn_t *c = srv->conn_pool;
    if (c) {
        srv->conn_pool = c->next;
        srv->nconn_pool--;
    } else {
        c = calloc(1, sizeof *c);
        if (!c || !(c->deadline = evtimer_new(srv->base, s_on_deadline, c))) {
            free(c);
            return NULL;
        }
    }
    c->srv = srv;
    c->evcon = evcon;
    c->bev = bev;
    c->fd = fd;
    c->call = NULL;
    c->next = NULL;
    c->watch = evbuffer_add_cb(bufferevent_get_input(bev), s_on_input, c);
    if (!c->watch) {
        event_free(c->deadline);
        free(c);
        if (reserved) {
            __atomic_fetch_sub(srv->open_all, 1, __ATOMIC_RELAXED);
        }
        return NULL;
    }
    if (!reserved) {
        __atomic_fetch_add(srv->open_all, 1, __ATOMIC_RELAXED);
    }
    srv->conns[fd] = c;
    srv->open++;
    sc_metrics_connections(srv->metrics, (uint64_t)srv->open);
    evhttp_connection_set_closecb(evcon, s_on_conn_close, c);
    s_phase(c, S_PH_HEAD);
    return c;
}

/* The state of a request's connection, tracked now if it was not yet. */
static s_conn_t *s_conn_of(sc_server_t *srv, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev) {
        return NULL;
    }
    int fd = (int)bufferevent_getfd(bev);
    if (fd >= 0 && fd < srv->nconns && srv->conns[fd] && srv->conns[fd]->evcon == evcon) {
        return srv->conns[fd];
    }
    return s_conn_track(srv, evcon, bev, fd, false);
}

/* A new connection's bufferevent, asked for by evhttp as it accepts. */
static struct bufferevent *s_on_new_bev(struct event_base *base, void *arg)
{
    sc_server_t *srv = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0); /* as evhttp's own */
    if (!bev) {
        return NULL;
    }
    if (srv->nfresh == srv->cfresh) {
        int n = srv->cfresh ? 2 * srv->cfresh : 64;
        struct bufferevent **f = realloc(srv->fresh, (size_t)n * sizeof *f);
        if (!f) {
            return bev; /* untracked until its first request */
        }
        srv->fresh = f;
        srv->cfresh = n;
    }
    /* Our reference keeps it valid even if evhttp gives up on the
     * connection before s_on_adopt runs. */
    bufferevent_incref(bev);
    srv->fresh[srv->nfresh++] = bev;
    event_active(srv->adopt, EV_TIMEOUT, 0);
    return bev;
}

/* Takes in the connections accepted in this turn of the loop: evhttp has set
 * them up (its callbacks carry the connection), and read nothing yet. */
static void s_on_adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_server_t *srv = arg;
    for (int i = 0; i < srv->nfresh; i++) {
        struct bufferevent *bev = srv->fresh[i];
        bufferevent_data_cb rcb = NULL;
        void *evcon = NULL;
        bufferevent_getcb(bev, &rcb, NULL, NULL, &evcon);
        int sock = (int)bufferevent_getfd(bev);
        if (rcb && evcon && sock >= 0) { /* else evhttp freed it already */
            if (!s_conn_reserve(srv)) {
                int open = __atomic_load_n(srv->open_all, __ATOMIC_RELAXED);
                sc_metrics_connection_refused(srv->metrics);
                char what_[96];
                snprintf(what_, sizeof what_, "%d open", open);
                s_ratelog(&srv->refuse_log, ENG_LOG_WARN,
                          "connection refused (503): %s, --max-connections reached%s", what_);
                oai_error_t err;
                oai_error_set(&err, 503, "too_many_connections", NULL,
                              "the sidecar has %d connections open, its --max-connections", open);
                s_answer_close(evcon, bev, &err);
            } else {
                s_conn_track(srv, evcon, bev, sock, true);
            }
        }
        bufferevent_decref(bev);
    }
    srv->nfresh = 0;
}

static void s_on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_server_t *srv = arg;
    if (srv->bound) {
        evconnlistener_enable(evhttp_bound_socket_get_listener(srv->bound));
    }
}

/* accept() failed with an error that retrying at once cannot fix (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM): libevent would call it again on the next turn,
 * and the next, at full speed while the backlog is not empty. */
static void s_on_accept_error(struct evconnlistener *lev, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    sc_server_t *srv = s_servers;
    while (srv && srv->http != arg) {
        srv = srv->next_srv;
    }
    evconnlistener_disable(lev);
    if (!srv) {
        return;
    }
    sc_metrics_accept_error(srv->metrics);
    struct timeval tv = {.tv_sec = 0, .tv_usec = S_ACCEPT_PAUSE_MS * 1000};
    evtimer_add(srv->resume, &tv);
    char what_[160];
    snprintf(what_, sizeof what_, "%s with %d connections open; not accepting for %d ms",
             strerror(e), srv->open, S_ACCEPT_PAUSE_MS);
    s_ratelog(&srv->accept_log, ENG_LOG_WARN, "accept: %s%s", what_);
}

/* Call lifecycle -------------------------------------------------------- */

static void s_call_finish(sc_call_t *call);
static void s_detach(sc_call_t *call);
static void s_reply_error(sc_call_t *call, const oai_error_t *err);
static void s_add_decision_headers(const sc_call_t *call, struct evkeyvalq *h);

/* How the proxy hands a call back (sc_call.h). */
static const sc_call_ops_t s_call_ops = {
    .reply_error = s_reply_error,
    .add_decision_headers = s_add_decision_headers,
    .detach = s_detach,
    .finish = s_call_finish,
};

static sc_call_t *s_call_new(sc_server_t *srv, struct evhttp_request *req, sc_route_t route)
{
    /* Its connection's close cancels the call: without that state (out of
     * memory) it cannot be followed, so it is not taken. */
    s_conn_t *conn = s_conn_of(srv, req);
    if (!conn) {
        return NULL;
    }
    sc_call_t *call = srv->pool;
    if (call) {
        srv->pool = call->next;
        srv->npool--;
    } else {
        call = calloc(1, sizeof *call);
        if (!call) {
            return NULL;
        }
        call->x = oai_extract_new();
        if (!call->x) {
            free(call);
            return NULL;
        }
    }
    /* Reset what a previous request left; x and defer are kept. */
    call->srv = srv;
    call->ops = &s_call_ops;
    call->px = NULL;
    call->req = req;
    call->route = route;
    call->t0 = sc_now();
    call->eng = 0;
    memset(&call->d, 0, sizeof call->d);
    call->up_conn = NULL;
    call->up_req = NULL;
    memset(&call->at, 0, sizeof call->at);
    call->requested[0] = call->group[0] = '\0';
    call->nattempts = 0;
    call->up_reused = false;
    call->fresh_retried = false;
    call->retries = 0;
    call->next_fb = 0;
    call->retry = SC_RETRY_NONE;
    call->retry_status = 0;
    call->free_tried = false;
    call->streaming = false;
    call->buffered = false;
    call->up_status = 0;
    call->cancelled = false;
    call->up_error = 0;
    call->status = 0;
    call->next = NULL;
    srv->live++;
    conn->call = call;
    call->conn = conn;
    return call;
}

static void s_call_free(sc_call_t *call)
{
    if (call->defer) {
        event_free(call->defer);
    }
    oai_extract_destroy(&call->x);
    free(call);
}

/* The transport error class of an attempt that got no (whole) answer. */
static proto_xerr_t s_xerr(const sc_attempt_t *a, bool cancelled)
{
    if (cancelled) {
        return PROTO_XERR_CANCELED;
    }
    if (a->up_error == 0) {
        return PROTO_XERR_CONNECT; /* no error seen, no answer: never reached */
    }
    switch (a->up_error - 1) {
    case EVREQ_HTTP_TIMEOUT:
        return PROTO_XERR_TIMEOUT;
    case EVREQ_HTTP_EOF:
    case EVREQ_HTTP_BUFFER_ERROR:
        return a->status ? PROTO_XERR_RESET : PROTO_XERR_CONNECT;
    case EVREQ_HTTP_REQUEST_CANCEL:
        return PROTO_XERR_CANCELED;
    default: /* an invalid head, one too long: not the API's answer */
        return PROTO_XERR_PROTOCOL;
    }
}

/* The usage the answer returned, and the throughput it implies: output
 * tokens over the time after the first token for a stream, over the whole
 * answer otherwise (a lower bound: it includes reading the prompt). */
static void s_report_usage(proto_attempt_t *r, const sc_attempt_t *a, bool stream)
{
    r->prompt_tokens = a->usage.prompt;
    r->completion_tokens = a->usage.completion;
    r->cached_tokens = a->usage.cached;
    r->reasoning_tokens = a->usage.reasoning;
    r->cost_usd = a->usage.cost_usd;
    double span = r->latency_ms / 1000;
    if (stream) {
        span = r->ttft_ms >= 0 && r->latency_ms > r->ttft_ms ? (r->latency_ms - r->ttft_ms) / 1000
                                                             : -1;
    }
    if (a->usage.completion > 0 && span > 0) {
        double tps = (double)a->usage.completion / span;
        r->tokens_per_s = tps <= PROTO_MAX_TPS ? tps : -1;
    }
}

/* Proxy mode: tells the engines how each upstream attempt of the call went,
 * so that the next decisions avoid an endpoint that fails (the report op). */
static void s_report(sc_server_t *srv, const sc_call_t *call)
{
    proto_attempt_t at[SC_MAX_ATTEMPTS];
    /* A `:free` endpoint is reported as ID:free: at OpenRouter it shares its
     * provider with the paid one, and the engine tells them apart by name. */
    char free_ids[SC_MAX_ATTEMPTS][HPP_MAX_MODEL_LEN + sizeof ":free"];
    size_t n = 0;
    for (int i = 0; i < call->nattempts; i++) {
        const sc_attempt_t *a = &call->attempts[i];
        bool last = i + 1 == call->nattempts;
        if (a->unreported) {
            continue;
        }
        proto_attempt_t *r = &at[n++];
        proto_attempt_init(r);
        r->decision = call->d.decision_id;
        r->model = (hpp_str_t){a->model, (uint32_t)strlen(a->model)};
        if (a->free_variant) {
            int k = snprintf(free_ids[i], sizeof free_ids[i], "%s:free", a->model);
            r->model = (hpp_str_t){free_ids[i], (uint32_t)k};
        }
        r->provider = (hpp_str_t){a->provider, (uint32_t)strlen(a->provider)};
        /* An answer that broke off (or a client that left) is no status. */
        bool broke = last && (a->up_error != 0 || call->cancelled);
        if (a->status >= 100 && a->status <= 599 && !broke) {
            r->status = (uint32_t)a->status;
        } else {
            r->error = s_xerr(a, last && call->cancelled);
        }
        double total = a->total > 0 ? a->total : a->seconds;
        if (total > 0 && total * 1000 <= PROTO_MAX_LATENCY_MS) {
            r->latency_ms = total * 1000;
        }
        if (last && call->streaming) {
            /* The first token's event when one was seen, else the stream's head. */
            double first = a->first_token > 0 ? a->first_token : a->seconds;
            if (first > 0 && first <= total) {
                r->ttft_ms = first * 1000;
            }
        }
        if (last && !broke) {
            s_report_usage(r, a, call->streaming);
        }
    }
    if (srv->reports) {
        sc_report_add(srv->reports, at, n); /* sent once the answer is written */
    }
}

static void s_call_finish(sc_call_t *call)
{
    sc_server_t *srv = call->srv;
    double took = sc_now() - call->t0;
    if (call->nattempts > 0 && !call->d.fail_open) { /* a fail-open answer was not the engine's */
        s_report(srv, call);
    }
    sc_metrics_request(srv->metrics, call->route, call->status, took);
    sc_accesslog_write(srv->access, call, took);
    if (srv->access) { /* read by /metrics from any worker: kept in the metrics */
        sc_metrics_access_dropped(srv->metrics, sc_accesslog_dropped(srv->access));
    }
    sc_metrics_inflight(srv->metrics, sc_engine_inflight(srv->engine));
    if (call->defer) {
        event_del(call->defer);
    }
    s_detach(call);
    call->req = NULL;
    srv->live--;
    if (srv->npool < S_POOL_MAX) {
        call->next = srv->pool;
        srv->pool = call;
        srv->npool++;
    } else {
        s_call_free(call);
    }
}

/* Stops watching the client connection; call before the last reply call,
 * which may free the request and its connection. */
static void s_detach(sc_call_t *call)
{
    s_conn_t *conn = call->conn;
    if (conn) {
        conn->call = NULL;
        call->conn = NULL;
    }
}

/* The client connection is closing. When libevent detached the request from
 * it (client EOF or timeout while we worked) the request is still ours and
 * must be answered to be freed; otherwise (server shutdown) libevent frees
 * it itself right after this callback. */
static void s_call_closed(sc_call_t *call)
{
    if (!call->req) {
        return;
    }
    bool ours = evhttp_request_get_connection(call->req) == NULL;
    call->cancelled = true;
    if (call->eng) {
        sc_engine_cancel(call->srv->engine, call->eng);
        call->eng = 0;
    }
    sc_proxy_cancel(call);
    if (ours) {
        if (call->streaming) {
            evhttp_send_reply_end(call->req);
        } else {
            evhttp_send_reply(call->req, 499, "Client Closed Request", NULL);
        }
    }
    call->status = call->streaming ? call->status : 499;
    s_call_finish(call);
}

/* Replies ------------------------------------------------------------------ */

static void s_send(sc_call_t *call, int status, struct evbuffer *body)
{
    call->status = status;
    s_detach(call);
    /* An answer to HEAD has no body. libevent 2.1 sends one anyway (with no
     * Content-Length), which a kept-alive client would read as the start of
     * the next response. */
    if (body && evhttp_request_get_command(call->req) == EVHTTP_REQ_HEAD) {
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    evhttp_send_reply(call->req, status, s_reason(status), body);
}

/* The auth route: /v1/chat/completions in decision-only mode, where a
 * gateway in front (nginx auth_request, Caddy forward_auth, Traefik
 * forwardAuth, Envoy ext_authz) asks for the decision. */
static bool s_auth_route(const sc_server_t *srv, sc_route_t route)
{
    return route == SC_ROUTE_CHAT && !srv->proxy;
}

/* The status a refusal is sent with. nginx auth_request passes on 401 and
 * 403 only and turns anything else into its own 500 page; with
 * --auth-refusal-status every refusal of the auth route is sent with that
 * status instead (401 and 403 stay as they are), and the OpenAI error code
 * goes into X-HPP-Router-Error, which auth_request_set can read. */
static int s_refusal_status(const sc_call_t *call, const oai_error_t *err, struct evkeyvalq *h)
{
    int as = call->srv->cfg.auth_refusal_status;
    if (!as || !s_auth_route(call->srv, call->route)) {
        return err->status;
    }
    evhttp_add_header(h, "X-HPP-Router-Error", err->code ? err->code : "error");
    return err->status == 401 || err->status == 403 ? err->status : as;
}

static void s_reply_error(sc_call_t *call, const oai_error_t *err)
{
    char buf[768];
    size_t n = oai_error_json(err, buf, sizeof buf);
    struct evbuffer *body = evhttp_request_get_output_buffer(call->req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(call->req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evbuffer_add(body, buf, n);
    s_send(call, s_refusal_status(call, err, h), body);
    s_call_finish(call);
}

/* Appends "key":"escaped value" (with a leading comma unless first). */
static void s_json_str(struct evbuffer *b, const char *key, const char *v, bool first)
{
    char esc[2 * HPP_MAX_MODEL_LEN + 16];
    size_t pos = 0;
    esc[0] = '\0';
    oai_json_escape(esc, sizeof esc, &pos, v, strlen(v));
    evbuffer_add_printf(b, "%s\"%s\":\"%s\"", first ? "" : ",", key, esc);
}

/* Writes an integer's decimal digits at buf (room for 20); returns them. */
static size_t s_utoa(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

/* A cost the engine computed in whole picodollars (hpp_cost_t) arrives as
 * p / 1e12; when the double is exactly that, "%.12f" would print p's digits
 * (below 9,007 USD the double is far closer to p / 1e12 than half a
 * picodollar), so they are written without printf, whose floating-point
 * path is a visible part of a /v1/route answer's cost (a call per endpoint
 * of the decision). Returns false for any other value. */
static bool s_cost_fast(double usd, char *buf, size_t n)
{
    if (!(usd >= 0 && usd < 9000) || n < 32) {
        return false;
    }
    uint64_t p = (uint64_t)llround(usd * 1e12);
    if ((double)p / 1e12 != usd) {
        return false;
    }
    size_t k = s_utoa(p / 1000000000000ull, buf);
    buf[k++] = '.';
    uint64_t frac = p % 1000000000000ull;
    for (uint64_t div = 100000000000ull; div; div /= 10) {
        buf[k++] = (char)('0' + frac / div % 10);
    }
    buf[k] = '\0';
    return true;
}

static void s_cost_text(double usd, char *buf, size_t n)
{
    /* Up to picodollar precision, no exponent, no trailing zeros. */
    if (!s_cost_fast(usd, buf, n)) {
        snprintf(buf, n, "%.12f", usd);
    }
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf) - 1;
        while (end > dot && *end == '0') {
            *end-- = '\0';
        }
        if (end == dot) {
            *end = '\0';
        }
    }
}

/* The headers describe the endpoint that answers (call->at): after a
 * retry, the fallback's, not the first choice's; the rule stays the one
 * that decided. */
static void s_add_decision_headers(const sc_call_t *call, struct evkeyvalq *h)
{
    const sc_endpoint_t *at = &call->at;
    evhttp_add_header(h, "X-HPP-Router-Resolved-Model", at->model);
    if (at->provider[0]) {
        evhttp_add_header(h, "X-HPP-Router-Provider", at->provider);
    }
    if (at->provider_model[0]) {
        evhttp_add_header(h, "X-HPP-Router-Provider-Model", at->provider_model);
    }
    if (at->tier[0]) {
        evhttp_add_header(h, "X-HPP-Router-Tier", at->tier);
    }
    if (call->d.rule[0]) {
        evhttp_add_header(h, "X-HPP-Router-Rule", call->d.rule);
    }
    if (call->d.fail_open) {
        evhttp_add_header(h, "X-HPP-Router-Fail-Open", "true");
    } else if (at->has_cost) {
        char cost[48];
        s_cost_text(at->cost_usd, cost, sizeof cost);
        evhttp_add_header(h, "X-HPP-Router-Estimated-Cost-USD", cost);
    }
    if (call->nattempts > 1) {
        char n[16];
        snprintf(n, sizeof n, "%d", call->nattempts);
        evhttp_add_header(h, "X-HPP-Router-Attempts", n);
    }
}

/* A JSON text built in a caller's fixed buffer: the route answer is the hot
 * path, and this is a handful of memcpy calls instead of dozens of printf. */
typedef struct {
    char buf[8192]; /* the text */
    size_t n;       /* bytes used (n < sizeof buf always) */
} s_jbuf_t;

static void s_jlit(s_jbuf_t *j, const char *lit)
{
    size_t len = strlen(lit);
    if (j->n + len < sizeof j->buf) {
        memcpy(j->buf + j->n, lit, len);
        j->n += len;
    }
}

/* A signed integer, without printf. */
static void s_jint(s_jbuf_t *j, int64_t v)
{
    if (j->n + 21 >= sizeof j->buf) {
        return;
    }
    if (v < 0) {
        j->buf[j->n++] = '-';
    }
    j->n += s_utoa(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, j->buf + j->n);
}

/* ,"key":"escaped value" (no comma when first). */
static void s_jstr(s_jbuf_t *j, const char *key, const char *v, bool first)
{
    s_jlit(j, first ? "\"" : ",\"");
    s_jlit(j, key);
    s_jlit(j, "\":\"");
    /* Leaves room for the closing quote and the rest of the object. */
    size_t cap = sizeof j->buf - 64;
    size_t len = strlen(v), plain = 0;
    /* Ids and names rarely need escaping: copied whole when they do not
     * (what oai_json_escape would write, a byte at a time). */
    while (plain < len) {
        unsigned char c = (unsigned char)v[plain];
        if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f) {
            break;
        }
        plain++;
    }
    if (plain == len && j->n + len < cap) {
        memcpy(j->buf + j->n, v, len);
        j->n += len;
    } else if (j->n < cap) {
        oai_json_escape(j->buf, cap, &j->n, v, len);
    }
    s_jlit(j, "\"");
}

/* POST /v1/route answer: the decision as JSON. */
static void s_reply_route(sc_call_t *call)
{
    const sc_decision_t *d = &call->d;
    s_jbuf_t j;
    j.n = 0;
    char num[64];
    s_jlit(&j, "{");
    s_jstr(&j, "model", d->model, true);
    s_jstr(&j, "provider", d->provider, false);
    s_jstr(&j, "provider_model", d->provider_model, false);
    if (d->tier[0]) {
        s_jstr(&j, "tier", d->tier, false);
    } else {
        s_jlit(&j, ",\"tier\":null");
    }
    s_jstr(&j, "rule", d->rule, false);
    s_jlit(&j, ",\"estimated_cost_usd\":");
    s_cost_text(d->cost_usd, num, sizeof num);
    s_jlit(&j, num);
    s_jlit(&j, ",\"prompt_tokens\":");
    s_jint(&j, call->f.prompt_tokens);
    if (d->fail_open) {
        s_jlit(&j, ",\"output_tokens\":null,\"fail_open\":true");
    } else {
        s_jlit(&j, ",\"output_tokens\":");
        s_jint(&j, d->output_tokens);
        s_jlit(&j, ",\"fail_open\":false");
    }
    s_jlit(&j, ",\"fallbacks\":[");
    for (uint32_t i = 0; i < d->nfallbacks; i++) {
        s_jlit(&j, i ? ",{" : "{");
        s_jstr(&j, "model", d->fallbacks[i].model, true);
        s_jstr(&j, "provider", d->fallbacks[i].provider, false);
        s_jstr(&j, "provider_model", d->fallbacks[i].provider_model, false);
        if (d->fallbacks[i].tier[0]) {
            s_jstr(&j, "tier", d->fallbacks[i].tier, false);
        } else {
            s_jlit(&j, ",\"tier\":null");
        }
        if (d->fallbacks[i].has_cost) {
            s_jlit(&j, ",\"estimated_cost_usd\":");
            s_cost_text(d->fallbacks[i].cost_usd, num, sizeof num);
            s_jlit(&j, num);
        }
        s_jlit(&j, "}");
    }
    s_jlit(&j, "]}\n");
    struct evbuffer *b = evhttp_request_get_output_buffer(call->req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(call->req);
    evbuffer_add(b, j.buf, j.n);
    evhttp_add_header(h, "Content-Type", "application/json");
    s_add_decision_headers(call, h);
    s_send(call, 200, b);
    s_call_finish(call);
}

/* Decision-only POST /v1/chat/completions: 200, headers, empty body. */
static void s_reply_headers_only(sc_call_t *call)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(call->req);
    s_add_decision_headers(call, h);
    /* Otherwise libevent labels the empty body text/html. */
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    s_send(call, 200, NULL);
    s_call_finish(call);
}

/* Decisions ----------------------------------------------------------------- */

/* Whether the call is forwarded upstream (proxy mode, chat route). */
static bool s_proxied(const sc_call_t *call)
{
    return call->srv->proxy && call->route == SC_ROUTE_CHAT;
}

static void s_decided(sc_call_t *call)
{
    sc_decision_endpoint(&call->d, &call->at);
    if (call->route == SC_ROUTE_ROUTE) {
        s_reply_route(call);
    } else if (!call->srv->proxy) {
        s_reply_headers_only(call);
    } else {
        sc_proxy_start(call->srv->proxy, call);
    }
}

/* The engine could not answer: the fail-open model, or 503. */
static void s_engine_down(sc_call_t *call, sc_engerr_t kind, const char *why)
{
    sc_server_t *srv = call->srv;
    sc_metrics_engine_error(srv->metrics, kind, NULL);
    const char *fo = srv->cfg.fail_open;
    char not_open[200];
    not_open[0] = '\0';
    if (fo && (call->route == SC_ROUTE_ROUTE || call->route == SC_ROUTE_CHAT) &&
        sc_failopen_allows(srv->failopen, &call->f, not_open, sizeof not_open)) {
        memset(&call->d, 0, sizeof call->d);
        snprintf(call->d.model, sizeof call->d.model, "%s", fo);
        snprintf(call->d.rule, sizeof call->d.rule, "fail_open");
        call->d.fail_open = true;
        sc_metrics_fail_open(srv->metrics);
        eng_log(ENG_LOG_WARN, "sidecar", "engine %s: answering the fail-open model %s", why, fo);
        s_decided(call);
        return;
    }
    oai_error_t err;
    const char *code = kind == SC_ENGERR_TIMEOUT ? "engine_timeout" : "engine_unavailable";
    if (not_open[0]) {
        oai_error_set(&err, 503, code, NULL,
                      "the routing engine %s; retry later (no fail-open: %s)", why, not_open);
    } else {
        oai_error_set(&err, 503, code, NULL, "the routing engine %s; retry later", why);
    }
    s_reply_error(call, &err);
}

/* The error kind of a call that got no usable reply. */
static sc_engerr_t s_engerr(sc_eng_result_t res)
{
    switch (res) {
    case SC_ENG_TIMEOUT:
        return SC_ENGERR_TIMEOUT;
    case SC_ENG_LOST:
        return SC_ENGERR_UNAVAILABLE;
    case SC_ENG_REPLY:
        return SC_ENGERR_STATUS;
    default:
        return SC_ENGERR_DECODE;
    }
}

/* An engine error reply: its code mapped to an HTTP status. */
static void s_engine_refused(sc_call_t *call, const proto_reply_t *r)
{
    char code[48], msg[200];
    sc_strcopy(code, sizeof code, r->code);
    sc_strcopy(msg, sizeof msg, r->message);
    sc_metrics_engine_error(call->srv->metrics, SC_ENGERR_STATUS, code);
    oai_error_t err;
    oai_error_set(&err, oai_status_http(r->status), hpp_status_name(r->status), NULL, "%s",
                  msg[0] ? msg : code);
    if (r->status == HPP_E_UNKNOWN_MODEL || r->status == HPP_E_MODEL_NOT_ALLOWED ||
        r->status == HPP_E_NO_FREE_VARIANT) {
        snprintf(err.param, sizeof err.param, "model");
    }
    s_reply_error(call, &err);
}

static void s_on_route_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r,
                             const void *raw, size_t len)
{
    (void)raw;
    (void)len;
    sc_call_t *call = arg;
    call->eng = 0;
    if (res == SC_ENG_TIMEOUT) {
        s_engine_down(call, SC_ENGERR_TIMEOUT, "did not answer in time");
        return;
    }
    if (res == SC_ENG_LOST) {
        s_engine_down(call, SC_ENGERR_UNAVAILABLE, "went away and no other engine is connected");
        return;
    }
    if (res != SC_ENG_REPLY) {
        s_engine_down(call, SC_ENGERR_DECODE, "sent an undecodable reply");
        return;
    }
    sc_metrics_engine_time(call->srv->metrics, sc_now() - call->eng_t0);
    if (!r->ok) {
        s_engine_refused(call, r);
        return;
    }
    sc_decision_copy(&call->d, r);
    if (!s_proxied(call)) { /* proxy mode counts the endpoint that answers */
        sc_metrics_decision(call->srv->metrics, call->d.model, strlen(call->d.model), call->d.tier,
                            strlen(call->d.tier));
    }
    s_decided(call);
}

/* Request parsing ------------------------------------------------------------ */

/* The trust boundary before the body is read: duplicate headers, the API
 * key, the gateway's header (sc_trust.h). Returns 0 or -1 (answered). */
static int s_trust_headers(sc_call_t *call)
{
    oai_error_t err;
    if (sc_trust_headers(&call->srv->trust, evhttp_request_get_input_headers(call->req),
                         &call->trust, &err) < 0) {
        if (err.status == 401) {
            evhttp_add_header(evhttp_request_get_output_headers(call->req), "WWW-Authenticate",
                              "Bearer");
        }
        s_reply_error(call, &err);
        return -1;
    }
    return 0;
}

/* Proxy mode: only providers the upstream table reaches may be chosen, so
 * providers_only becomes the table's providers, or the client's own list
 * cut to them. The table's names are copied into the call when used: a
 * SIGHUP may replace the table while the engine decides (and a resend
 * encodes them again). The list of reachable providers is written only for
 * a refusal. Returns 0 or -1 (answered). */
static int s_reachable(sc_call_t *call)
{
    hpp_str_t reach[HPP_MAX_PROVIDERS];
    uint32_t n = sc_proxy_reachable(call->srv->proxy, reach);
    if (n == 0) {
        return 0; /* a '*' upstream serves every provider */
    }
    hpp_features_t *f = &call->f;
    if (f->nproviders_only == 0) {
        for (uint32_t i = 0; i < n; i++) {
            sc_strcopy(call->reach[i], sizeof call->reach[i], reach[i]);
            f->providers_only[i] = (hpp_str_t){call->reach[i], reach[i].len};
        }
        f->nproviders_only = n;
        return 0;
    }
    /* The client's own names (in its body) that the table reaches. */
    uint32_t kept = 0;
    for (uint32_t c = 0; c < f->nproviders_only; c++) {
        hpp_str_t name = f->providers_only[c];
        for (uint32_t i = 0; i < n; i++) {
            if (reach[i].len == name.len && strncasecmp(reach[i].ptr, name.ptr, name.len) == 0) {
                f->providers_only[kept++] = name;
                break;
            }
        }
    }
    f->nproviders_only = kept;
    if (kept > 0) {
        return 0;
    }
    char list[HPP_MAX_PROVIDERS * (HPP_MAX_PROVIDER_LEN + 2) + 1];
    size_t used = 0;
    list[0] = '\0';
    for (uint32_t i = 0; i < n && used < sizeof list; i++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%.*s", i ? ", " : "",
                                 (int)reach[i].len, reach[i].ptr);
    }
    oai_error_t err;
    oai_error_set(&err, 400, "no_reachable_provider", "provider.only",
                  "no provider in provider.only has an upstream here (reachable: %s)", list);
    s_reply_error(call, &err);
    return -1;
}

/* Features from the body and the X-HPP-* headers. Returns 0 or -1 (answered). */
static int s_features(sc_call_t *call)
{
    oai_error_t err;
    oai_extract_reset(call->x, &call->f);
    if (s_trust_headers(call) < 0) {
        return -1;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(call->req);
    size_t len = evbuffer_get_length(in);
    if (len > 0) {
        const char *body = (const char *)evbuffer_pullup(in, -1);
        if (!body || oai_extract_body(call->x, body, len, &call->f, &err) < 0) {
            if (!body) {
                oai_error_set(&err, 500, "internal", NULL, "out of memory reading the body");
            }
            s_reply_error(call, &err);
            return -1;
        }
    }
    struct evkeyvalq *h = evhttp_request_get_input_headers(call->req);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strncasecmp(kv->key, "X-HPP-", 6) == 0 &&
            oai_extract_header(call->x, kv->key, kv->value, &call->f, &err) < 0) {
            s_reply_error(call, &err);
            return -1;
        }
    }
    if (sc_trust_apply(&call->srv->trust, &call->trust, &call->f, &err) < 0) {
        s_reply_error(call, &err);
        return -1;
    }
    if (call->srv->failopen) {
        sc_failopen_seen(call->srv->failopen, &call->srv->fo_seen, call->f.group);
    }
    if (call->srv->access) {
        hpp_str_t m = call->f.model, g = call->f.group;
        sc_strcopy(call->requested, sizeof call->requested,
                   m.len ? m : (hpp_str_t){HPP_AUTO_MODEL, sizeof HPP_AUTO_MODEL - 1});
        sc_strcopy(call->group, sizeof call->group, g.len ? g : (hpp_str_t){"default", 7});
    }
    /* A proxy's /v1/route answers what its chat route would call. */
    bool decides = call->route == SC_ROUTE_CHAT || call->route == SC_ROUTE_ROUTE;
    return call->srv->proxy && decides ? s_reachable(call) : 0;
}

/* Sends one engine request for the call; answers itself when it cannot.
 * The request lives in the call, as the engine may have to send it again. */
static void s_engine_call(sc_call_t *call, proto_op_t op, sc_engine_cb cb)
{
    proto_request_t *req = &call->ereq;
    proto_request_init(req, op);
    if (op == PROTO_OP_ROUTE) {
        req->features = call->f;
    }
    sc_call_err_t why = SC_CALL_OK;
    call->eng_t0 = sc_now();
    call->eng = sc_engine_call(call->srv->engine, req, cb, call, &why);
    sc_metrics_inflight(call->srv->metrics, sc_engine_inflight(call->srv->engine));
    if (call->eng) {
        return;
    }
    if (why == SC_CALL_ENCODE) {
        oai_error_t err;
        oai_error_set(&err, 400, "bad_request", NULL,
                      "the request's features exceed the engine protocol's limits");
        s_reply_error(call, &err);
        return;
    }
    const char *what = sc_call_err_message(why);
    if (op == PROTO_OP_ROUTE) {
        s_engine_down(call, SC_ENGERR_UNAVAILABLE, what);
        return;
    }
    sc_metrics_engine_error(call->srv->metrics, SC_ENGERR_UNAVAILABLE, NULL);
    oai_error_t err;
    oai_error_set(&err, 503, "engine_unavailable", NULL, "the routing engine %s", what);
    s_reply_error(call, &err);
}

/* Handlers ------------------------------------------------------------------- */

static void s_handle_route(sc_call_t *call)
{
    if (s_features(call) == 0) {
        s_engine_call(call, PROTO_OP_ROUTE, s_on_route_reply);
    }
}

static void s_handle_chat(sc_call_t *call)
{
    /* Proxy mode needs a body to forward; decision-only accepts none
     * (nginx auth_request subrequests carry only headers). */
    if (s_features(call) == 0) {
        s_engine_call(call, PROTO_OP_ROUTE, s_on_route_reply);
    }
}

/* One price of a model's `pricing`: USD (per 1M tokens for tokens), or null
 * where it does not apply (negative = not given). */
static void s_price(struct evbuffer *b, const char *key, double v, bool first)
{
    if (v < 0 || !isfinite(v)) {
        evbuffer_add_printf(b, "%s\"%s\":null", first ? "" : ",", key);
    } else {
        evbuffer_add_printf(b, "%s\"%s\":%.10g", first ? "" : ",", key, v);
    }
}

/* One model as an OpenAI-style model object with the gateway's pricing. */
static void s_model_json(struct evbuffer *b, const proto_model_info_t *m)
{
    char id[HPP_MAX_MODEL_LEN + 1], owner[HPP_MAX_MODEL_LEN + 1];
    sc_strcopy(id, sizeof id, m->id);
    sc_strcopy(owner, sizeof owner, m->owned_by);
    evbuffer_add(b, "{", 1);
    s_json_str(b, "id", id, true);
    evbuffer_add_printf(b, ",\"object\":\"model\",\"created\":0");
    s_json_str(b, "owned_by", owner, false);
    if (strcmp(id, HPP_AUTO_MODEL) == 0) {
        evbuffer_add_printf(b, ",\"pricing\":null,\"description\":\"virtual model: each request is "
                               "routed by the policy\"}");
        return;
    }
    evbuffer_add_printf(b,
                        ",\"context_length\":%u,\"max_output_tokens\":%u,\"endpoints\":%u,"
                        "\"free\":%s,\"capabilities\":[",
                        m->context_length, m->max_output, m->endpoints, m->free ? "true" : "false");
    bool first = true;
    for (size_t i = 0; i < HPP_NCAPS; i++) {
        if (m->caps & hpp_caps[i].bit) {
            evbuffer_add_printf(b, "%s\"%s\"", first ? "" : ",", hpp_caps[i].name);
            first = false;
        }
    }
    /* The gateway's pricing: USD per 1M tokens, null where not applicable;
     * flat fees only when the model has them. */
    evbuffer_add_printf(b, "],\"pricing\":{");
    s_price(b, "input", m->prompt, true);
    s_price(b, "output", m->completion, false);
    s_price(b, "cache_write", m->cache_write, false);
    s_price(b, "cache_read", m->cache_read, false);
    if (m->request >= 0) {
        s_price(b, "request", m->request, false);
    }
    if (m->image >= 0) {
        s_price(b, "image", m->image, false);
    }
    evbuffer_add(b, "}}", 2);
}

/* GET /v1/models (call->model_id empty) or GET /v1/models/{id}. */
static void s_on_models_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r,
                              const void *raw, size_t len)
{
    sc_call_t *call = arg;
    call->eng = 0;
    oai_error_t err;
    if (res != SC_ENG_REPLY || !r->ok) {
        if (res == SC_ENG_REPLY) {
            s_engine_refused(call, r);
            return;
        }
        sc_metrics_engine_error(call->srv->metrics, s_engerr(res), NULL);
        oai_error_set(&err, 503, "engine_unavailable", NULL, "the routing engine did not answer");
        s_reply_error(call, &err);
        return;
    }
    proto_models_iter_t it;
    proto_error_t perr;
    if (proto_models_iter_init(&it, raw, len, &perr) != PROTO_OK) {
        sc_metrics_engine_error(call->srv->metrics, SC_ENGERR_DECODE, NULL);
        oai_error_set(&err, 502, "engine_bad_reply", NULL, "engine models reply: %s", perr.msg);
        s_reply_error(call, &err);
        return;
    }
    const char *want = call->model_id;
    size_t wlen = strlen(want);
    struct evbuffer *b = evhttp_request_get_output_buffer(call->req);
    if (!wlen) {
        evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[");
    }
    proto_model_info_t m;
    int rc;
    size_t n = 0;
    while ((rc = proto_models_iter_next(&it, &m, &perr)) == 1) {
        if (wlen && !(m.id.len == wlen && memcmp(m.id.ptr, want, wlen) == 0)) {
            continue;
        }
        if (n++) {
            evbuffer_add(b, ",", 1);
        }
        s_model_json(b, &m);
        if (wlen) {
            break;
        }
    }
    if (rc < 0) {
        evbuffer_drain(b, evbuffer_get_length(b));
        sc_metrics_engine_error(call->srv->metrics, SC_ENGERR_DECODE, NULL);
        oai_error_set(&err, 502, "engine_bad_reply", NULL, "engine models reply: %s", perr.msg);
        s_reply_error(call, &err);
        return;
    }
    if (wlen && n == 0) {
        oai_error_set(&err, 404, "model_not_found", "model", "no model '%s' in the catalog", want);
        s_reply_error(call, &err);
        return;
    }
    evbuffer_add(b, wlen ? "\n" : "]}\n", wlen ? 1 : 3);
    evhttp_add_header(evhttp_request_get_output_headers(call->req), "Content-Type",
                      "application/json");
    s_send(call, 200, b);
    s_call_finish(call);
}

static void s_handle_models(sc_call_t *call)
{
    call->model_id[0] = '\0';
    if (s_trust_headers(call) == 0) {
        s_engine_call(call, PROTO_OP_MODELS, s_on_models_reply);
    }
}

static void s_on_ping_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                            size_t len)
{
    (void)raw;
    (void)len;
    sc_call_t *call = arg;
    call->eng = 0;
    if (res != SC_ENG_REPLY || !r->ok) {
        sc_metrics_engine_error(call->srv->metrics, s_engerr(res), NULL);
        oai_error_t err;
        oai_error_set(&err, 503, "engine_unavailable", NULL, "the routing engine is %s",
                      res == SC_ENG_TIMEOUT ? "not answering"
                      : res == SC_ENG_LOST  ? "not connected"
                                            : "answering errors");
        s_reply_error(call, &err);
        return;
    }
    struct evbuffer *b = evhttp_request_get_output_buffer(call->req);
    sc_engine_t *eng = call->srv->engine;
    evbuffer_add_printf(b,
                        "{\"status\":\"ok\",\"engine\":\"up\",\"policy_version\":%llu,"
                        "\"engines_up\":%zu,\"engines\":%zu}\n",
                        (unsigned long long)r->policy_version, sc_engine_up(eng),
                        sc_engine_count(eng));
    evhttp_add_header(evhttp_request_get_output_headers(call->req), "Content-Type",
                      "application/json");
    s_send(call, 200, b);
    s_call_finish(call);
}

static void s_handle_health(sc_call_t *call)
{
    s_engine_call(call, PROTO_OP_PING, s_on_ping_reply);
}

/* Engine i as every worker sees it: calls and resends summed, up only when
 * each worker's link to it is, the policy of the first worker that knows. */
static void s_engine_sum(const sc_server_t *srv, size_t i, sc_metrics_engine_t *out)
{
    int n = srv->worker.count > 0 ? srv->worker.count : 1;
    for (int w = 0; w < n; w++) {
        const sc_server_t *p = srv->worker.count > 0 ? srv->worker.peers[w] : srv;
        sc_metrics_engine_t e;
        sc_engine_state(p->engine, i, &e);
        if (w == 0) {
            *out = e;
            continue;
        }
        out->up = out->up && e.up;
        out->calls += e.calls;
        out->resends += e.resends;
        if (!out->policy_known && e.policy_known) {
            out->policy_known = true;
            out->policy_version = e.policy_version;
            memcpy(out->policy_hash, e.policy_hash, sizeof out->policy_hash);
        }
    }
}

/* The figures of every worker, summed into `sum` (a scratch table of this
 * request); each worker's own are read as they are being written
 * (sc_metrics.h), the engine states through sc_engine_state. */
static void s_metrics_sum(sc_server_t *srv, sc_metrics_t *sum)
{
    int n = srv->worker.count > 0 ? srv->worker.count : 1;
    uint64_t per[SC_METRICS_MAX_WORKERS];
    uint64_t disagreements = 0;
    for (int w = 0; w < n && w < SC_METRICS_MAX_WORKERS; w++) {
        const sc_server_t *p = srv->worker.count > 0 ? srv->worker.peers[w] : srv;
        sc_metrics_merge(sum, p->metrics);
        per[w] = sc_metrics_requests_total(p->metrics);
        disagreements += sc_engine_disagreements(p->engine);
    }
    sc_metrics_workers(sum, per, (size_t)n);
    sc_metrics_engine_t engines[SC_ENGINE_MAX_ENGINES];
    size_t ne = sc_engine_count(srv->engine);
    for (size_t i = 0; i < ne; i++) {
        s_engine_sum(srv, i, &engines[i]);
    }
    sc_metrics_engines(sum, engines, ne, disagreements);
}

static void s_handle_metrics(sc_call_t *call)
{
    sc_server_t *srv = call->srv;
    sc_metrics_inflight(srv->metrics, sc_engine_inflight(srv->engine));
    sc_metrics_t *sum = sc_metrics_new();
    if (sum) {
        s_metrics_sum(srv, sum);
    }
    size_t len = 0;
    char *text = sum ? sc_metrics_render(sum, &len) : NULL;
    sc_metrics_destroy(&sum);
    if (!text) {
        oai_error_t err;
        oai_error_set(&err, 500, "internal", NULL, "out of memory rendering metrics");
        s_reply_error(call, &err);
        return;
    }
    struct evbuffer *b = evhttp_request_get_output_buffer(call->req);
    evbuffer_add(b, text, len);
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(call->req), "Content-Type",
                      "text/plain; version=0.0.4");
    s_send(call, 200, b);
    s_call_finish(call);
}

/* GET /v1/models/{id}: the id is the rest of the path, percent-decoded
 * (model ids hold slashes: /v1/models/openai/gpt-4o and
 * /v1/models/openai%2Fgpt-4o both name openai/gpt-4o). */
static void s_handle_model(sc_call_t *call)
{
    const char *uri = evhttp_request_get_uri(call->req);
    size_t skip = strlen("/v1/models/"), plen = strcspn(uri, "?#");
    char raw[3 * HPP_MAX_MODEL_LEN + 1];
    oai_error_t err;
    size_t n = plen - skip;
    char *id = NULL;
    size_t idlen = 0;
    if (n < sizeof raw) {
        memcpy(raw, uri + skip, n);
        raw[n] = '\0';
        id = evhttp_uridecode(raw, 0, &idlen);
    }
    if (!id || idlen == 0 || idlen > HPP_MAX_MODEL_LEN || memchr(id, '\0', idlen)) {
        free(id);
        oai_error_set(&err, 400, "invalid_value", "model",
                      "the path must end in a model id of 1 to %d bytes", HPP_MAX_MODEL_LEN);
        s_reply_error(call, &err);
        return;
    }
    memcpy(call->model_id, id, idlen + 1);
    free(id);
    if (s_trust_headers(call) == 0) {
        s_engine_call(call, PROTO_OP_MODELS, s_on_models_reply);
    }
}

/* GET /api/quota-check, /api/usage, /api/v1/key: sc_api.c. */
static void s_handle_api(sc_call_t *call)
{
    sc_api_handle(call, call->srv->engine, &call->srv->trust);
}

/* Routing table ----------------------------------------------------------- */

typedef struct {
    const char *path;        /* exact path, or the prefix of one with `prefix` */
    bool prefix;             /* matches paths that start with `path` and go on */
    int methods;             /* EVHTTP_REQ_* bits accepted */
    const char *allow;       /* Allow header for 405 */
    int auth_methods;        /* accepted too where this is the auth route (decision-only) */
    const char *auth_allow;  /* Allow header for 405 there */
    sc_route_t route;        /* metrics label */
    void (*fn)(sc_call_t *); /* handler */
} s_route_def_t;

/* Forward-auth callers (Traefik forwardAuth, Caddy forward_auth, nginx
 * auth_request without proxy_method) ask with GET, HAProxy's Lua
 * auth-request with HEAD: the auth route takes them as it takes a POST,
 * body or no body. */
static const s_route_def_t s_routes[] = {
    {"/v1/route", false, EVHTTP_REQ_POST, "POST", 0, NULL, SC_ROUTE_ROUTE, s_handle_route},
    {"/v1/chat/completions", false, EVHTTP_REQ_POST, "POST", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD,
     "POST, GET, HEAD", SC_ROUTE_CHAT, s_handle_chat},
    {"/v1/models", false, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", 0, NULL, SC_ROUTE_MODELS,
     s_handle_models},
    {"/v1/models/", true, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", 0, NULL, SC_ROUTE_MODELS,
     s_handle_model},
    {"/healthz", false, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", 0, NULL, SC_ROUTE_HEALTH,
     s_handle_health},
    {"/metrics", false, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD", 0, NULL, SC_ROUTE_METRICS,
     s_handle_metrics},
    {"/api/quota-check", false, EVHTTP_REQ_GET, "GET", 0, NULL, SC_ROUTE_API, s_handle_api},
    {"/api/usage", false, EVHTTP_REQ_GET, "GET", 0, NULL, SC_ROUTE_API, s_handle_api},
    {"/api/v1/key", false, EVHTTP_REQ_GET, "GET", 0, NULL, SC_ROUTE_API, s_handle_api},
    {NULL, false, 0, NULL, 0, NULL, SC_ROUTE_OTHER, NULL},
};

/* The 404's list of endpoints, "POST /v1/route, ..., GET /api/v1/key", made
 * once from s_routes so that it names every route the table has. */
static char s_endpoints[512];
static pthread_once_t s_endpoints_once = PTHREAD_ONCE_INIT;

static void s_endpoints_build(void)
{
    size_t n = 0;
    for (const s_route_def_t *r = s_routes; r->path && n < sizeof s_endpoints; r++) {
        /* The first method of Allow is the one to name ("GET, HEAD": GET). */
        int w = snprintf(s_endpoints + n, sizeof s_endpoints - n, "%s%.*s %s%s", n ? ", " : "",
                         (int)strcspn(r->allow, ","), r->allow, r->path, r->prefix ? "{id}" : "");
        n += w > 0 ? (size_t)w : 0;
    }
}

static const char *s_endpoint_list(void)
{
    pthread_once(&s_endpoints_once, s_endpoints_build);
    return s_endpoints;
}

/* Whether route r serves the path uri[0..plen). */
static bool s_route_match(const s_route_def_t *r, const char *uri, size_t plen)
{
    size_t n = strlen(r->path);
    return r->prefix ? plen > n && strncmp(r->path, uri, n) == 0
                     : plen == n && strncmp(r->path, uri, n) == 0;
}

/* The methods a route accepts on this server, and its Allow header. */
static int s_route_methods(const sc_server_t *srv, const s_route_def_t *r, const char **allow)
{
    if (r->auth_methods && s_auth_route(srv, r->route)) {
        *allow = r->auth_allow;
        return r->methods | r->auth_methods;
    }
    *allow = r->allow;
    return r->methods;
}

/* Answers a request that never became a call (no route, limits). */
static void s_reject(sc_server_t *srv, struct evhttp_request *req, sc_route_t route,
                     const oai_error_t *err, const char *allow)
{
    sc_call_t *call = s_call_new(srv, req, route);
    if (!call) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    if (allow) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    }
    s_reply_error(call, err);
}

/* As s_reject, and the connection is closed after the answer: where this
 * request ends is in doubt, so nothing after it may be read as a request. */
static void s_reject_close(sc_server_t *srv, struct evhttp_request *req, sc_route_t route,
                           const oai_error_t *err)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    s_reject(srv, req, route, err, NULL);
}

/* The first control character of s that RFC 9110 section 5.5 forbids in a
 * field (0x00-0x1f but HTAB, and DEL), or 0. libevent lets them through,
 * except CR and LF, and NUL, at which its parser ends the value. */
static int s_ctl_char(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return *p;
        }
    }
    return 0;
}

/* Refuses a request whose length two HTTP parsers could read differently
 * (RFC 9112 section 6.3). libevent takes the first of several
 * Content-Lengths, "+5" for 5, and a Transfer-Encoding other than chunked
 * for no body; a proxy in front that framed the same bytes otherwise would
 * pass the rest on as a request it never saw (request smuggling). Equal
 * duplicate Content-Lengths are refused too: no client sends them. Returns
 * 0, or -1 with err set. */
static int s_check_framing(struct evkeyvalq *h, oai_error_t *err)
{
    int ncl = 0, nte = 0;
    const char *cl = "", *te = "";
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        int c = s_ctl_char(kv->key);
        if (c || (c = s_ctl_char(kv->value))) {
            return oai_error_set(err, 400, "invalid_header", kv->key,
                                 "header %.64s: control character 0x%02x in a header field",
                                 kv->key, c);
        }
        if (strcasecmp(kv->key, "Content-Length") == 0) {
            ncl++;
            cl = kv->value;
        } else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
            nte++;
            te = kv->value;
        }
    }
    if (ncl > 1) {
        return oai_error_set(err, 400, "duplicate_content_length", "Content-Length",
                             "%d Content-Length headers: a request has one at most", ncl);
    }
    if (ncl == 1 && (!*cl || cl[strspn(cl, "0123456789")] != '\0')) {
        return oai_error_set(err, 400, "invalid_content_length", "Content-Length",
                             "Content-Length \"%.32s\": expected digits only", cl);
    }
    if (nte > 0 && ncl > 0) {
        return oai_error_set(err, 400, "content_length_with_transfer_encoding", "Transfer-Encoding",
                             "Transfer-Encoding and Content-Length together: the body's length is "
                             "ambiguous");
    }
    if (nte > 1 || (nte == 1 && strcasecmp(te, "chunked") != 0)) {
        return oai_error_set(err, 400, "unsupported_transfer_encoding", "Transfer-Encoding",
                             "Transfer-Encoding \"%.32s\"%s: only a single chunked is accepted", te,
                             nte > 1 ? " (and others)" : "");
    }
    return 0;
}

/* A POST to the decision endpoints without a body (Content-Length 0 or none,
 * which for HTTP/1.0 means none as well) would be routed as an empty request
 * of 0 prompt tokens. The one body-less request there is: an auth
 * subrequest (nginx auth_request, Envoy ext_authz without the body) to
 * /v1/chat/completions in decision-only mode, its features in X-HPP-* hint
 * headers. Returns 0, or -1 with err set. */
static int s_check_body(const sc_server_t *srv, struct evhttp_request *req, sc_route_t route,
                        oai_error_t *err)
{
    if ((route != SC_ROUTE_ROUTE && route != SC_ROUTE_CHAT) ||
        evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0) {
        return 0;
    }
    bool auth = route == SC_ROUTE_CHAT && !srv->proxy;
    if (auth) {
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
            if (oai_header_is_hint(kv->key)) {
                return 0;
            }
        }
    }
    return oai_error_set(err, 400, "invalid_json", NULL,
                         "request body is empty: a Chat Completions JSON object is required%s",
                         auth ? " (or, in a body-less auth subrequest, X-HPP-* hint headers)" : "");
}

static void s_on_request(struct evhttp_request *req, void *arg)
{
    sc_server_t *srv = arg;
    s_conn_t *conn = s_conn_of(srv, req);
    if (conn) {
        /* The request is read: no deadline until its answer is written. */
        conn->phase = S_PH_BUSY;
        evtimer_del(conn->deadline);
        evhttp_request_set_on_complete_cb(req, s_on_request_done, conn);
    }
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri ? uri : "", "?#");
    int i = 0;
    while (s_routes[i].path && !s_route_match(&s_routes[i], uri ? uri : "", plen)) {
        i++;
    }
    oai_error_t err;
    if (s_check_framing(evhttp_request_get_input_headers(req), &err) < 0) {
        s_reject_close(srv, req, s_routes[i].route, &err);
        return;
    }
    if (!s_routes[i].path) {
        oai_error_set(&err, 404, "not_found", NULL, "unknown path %.*s (endpoints: %s)",
                      (int)(plen > 64 ? 64 : plen), uri, s_endpoint_list());
        s_reject(srv, req, SC_ROUTE_OTHER, &err, NULL);
        return;
    }
    const char *allow = NULL;
    if (!(evhttp_request_get_command(req) & s_route_methods(srv, &s_routes[i], &allow))) {
        oai_error_set(&err, 405, "method_not_allowed", NULL, "%s accepts %s only", s_routes[i].path,
                      allow);
        s_reject(srv, req, s_routes[i].route, &err, allow);
        return;
    }
    int nheaders = 0;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        nheaders++;
    }
    if (nheaders > SC_MAX_HEADERS) {
        oai_error_set(&err, 431, "too_many_headers", NULL,
                      "%d request headers; at most %d are accepted", nheaders, SC_MAX_HEADERS);
        s_reject(srv, req, s_routes[i].route, &err, NULL);
        return;
    }
    size_t blen = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (blen > srv->cfg.max_body) {
        oai_error_set(&err, 413, "body_too_large", NULL,
                      "request body of %zu bytes exceeds the limit of %zu bytes", blen,
                      srv->cfg.max_body);
        s_reject(srv, req, s_routes[i].route, &err, NULL);
        return;
    }
    if (s_check_body(srv, req, s_routes[i].route, &err) < 0) {
        s_reject(srv, req, s_routes[i].route, &err, NULL);
        return;
    }
    sc_call_t *call = s_call_new(srv, req, s_routes[i].route);
    if (!call) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    s_routes[i].fn(call);
}

/* Server ------------------------------------------------------------------------ */

static void s_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    sc_server_t *srv = arg;
    eng_log(ENG_LOG_INFO, "sidecar", "signal %d: stopping", (int)sig);
    sd_notify(0, "STOPPING=1");
    sc_server_stop(srv);
}

/* How a worker logs its reload: every worker reloads, the first last
 * (sc_workers.c), and only the first says so at `level`, the others at
 * debug: one line per file, written once every worker has it. */
static eng_log_level_t s_hup_level(const sc_server_t *srv, eng_log_level_t level)
{
    return srv->worker.index > 0 ? ENG_LOG_DEBUG : level;
}

/* SIGHUP: the key file is read again; a bad one leaves the last good table
 * serving, and says where it is bad. */
static void s_reload_keys(sc_server_t *srv)
{
    if (!srv->cfg.keys_file) {
        return;
    }
    char err[512];
    hpp_apikeys_t *keys = hpp_apikeys_load(srv->cfg.keys_file, err, sizeof err);
    if (!keys) {
        eng_log(s_hup_level(srv, ENG_LOG_ERROR), "sidecar",
                "SIGHUP: keeping the %zu keys loaded before: %s", hpp_apikeys_count(srv->keys),
                err);
        return;
    }
    /* Calls copied what they needed from the old table (sc_trust_t). */
    hpp_apikeys_destroy(&srv->keys);
    srv->keys = keys;
    srv->trust.keys = keys;
    eng_log(s_hup_level(srv, ENG_LOG_INFO), "sidecar", "SIGHUP: %s reloaded, %zu keys",
            srv->cfg.keys_file, hpp_apikeys_count(keys));
}

static void s_reload_upstreams(sc_server_t *srv)
{
    if (!srv->proxy || !srv->cfg.upstreams_file) {
        return;
    }
    char err[512];
    if (sc_proxy_reload(srv->proxy, err, sizeof err) != 0) {
        eng_log(s_hup_level(srv, ENG_LOG_ERROR), "sidecar",
                "SIGHUP: keeping the %zu upstreams loaded before: %s",
                sc_proxy_upstreams(srv->proxy), err);
        return;
    }
    eng_log(s_hup_level(srv, ENG_LOG_INFO), "sidecar", "SIGHUP: %s reloaded, %zu upstreams",
            srv->cfg.upstreams_file, sc_proxy_upstreams(srv->proxy));
}

/* SIGHUP: the key and upstream files are read again (each bad one leaves
 * its last good table serving, and says where it is bad). */
static void s_reload_files(sc_server_t *srv)
{
    if (srv->cfg.local && srv->worker.count == 0) {
        sc_local_reload(srv->cfg.local); /* a lone server; a pool reloads it once (sc_workers.c) */
    }
    if (!srv->cfg.keys_file && !srv->cfg.upstreams_file && !srv->access) {
        if (srv->cfg.local) {
            return; /* the policy was the reload's work */
        }
        eng_log(s_hup_level(srv, ENG_LOG_INFO), "sidecar",
                "SIGHUP: no --keys, --upstreams or --access-log file, nothing to reload");
        return;
    }
    s_reload_keys(srv);
    s_reload_upstreams(srv);
    char err[512];
    if (srv->access && sc_accesslog_reopen(srv->access, err, sizeof err) != 0) {
        eng_log(s_hup_level(srv, ENG_LOG_ERROR), "sidecar",
                "SIGHUP: keeping the access log open before: %s", err);
    } else if (srv->access) {
        eng_log(s_hup_level(srv, ENG_LOG_INFO), "sidecar", "SIGHUP: %s reopened",
                srv->cfg.access_log);
    }
}

/* systemd (Type=notify) sees the reload begin and end. */
static void s_on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    sd_notify(0, "RELOADING=1");
    s_reload_files(arg);
    sd_notify(0, "READY=1");
}

/* Splits "host:port" / "[v6]:port". Returns 0 or -1. */
static int s_split_listen(const char *spec, char *host, size_t hn, int *port)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec) {
        return -1;
    }
    const char *h = spec;
    size_t len = (size_t)(colon - spec);
    if (h[0] == '[' && len >= 2 && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len == 0 || len >= hn) {
        return -1;
    }
    memcpy(host, h, len);
    host[len] = '\0';
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535) {
        return -1;
    }
    *port = (int)p;
    return 0;
}

static int s_bound_port(struct evhttp_bound_socket *bound)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Reads the CURVE key files, when given. Returns 0 or -1 with errbuf set. */
static int s_read_keys(const sc_config_t *cfg, sc_link_curve_t *c, char *errbuf, size_t errlen)
{
    char why[400];
    if (hpp_key_read_public(cfg->curve_server_key, &c->server, why, sizeof why) != 0) {
        snprintf(errbuf, errlen, "--engine-curve-server-key: %s", why);
        return -1;
    }
    if (hpp_key_read_secret(cfg->curve_secret, &c->secret, &c->public, why, sizeof why) != 0) {
        snprintf(errbuf, errlen, "--curve-secret: %s", why);
        return -1;
    }
    return 0;
}

/* One link per engine. The secret key lives on the stack only while the
 * links are made (libzmq keeps its own copy) and is wiped after. */
static int s_engines_new(sc_server_t *srv, char *errbuf, size_t errlen)
{
    const sc_config_t *cfg = &srv->cfg;
    static const char *const dflt[1] = {SC_DEFAULT_ENGINE};
    sc_link_curve_t curve;
    memset(&curve, 0, sizeof curve);
    bool use_curve = cfg->curve_server_key && cfg->curve_secret;
    if (use_curve && s_read_keys(cfg, &curve, errbuf, errlen) != 0) {
        explicit_bzero(&curve, sizeof curve);
        return -1;
    }
    static const char *const local[1] = {"local"};
    sc_engine_config_t ec = {
        .endpoints = cfg->local      ? local
                     : cfg->nengines ? cfg->engines
                                     : dflt,
        .nendpoints = cfg->nengines && !cfg->local ? cfg->nengines : 1,
        .kind = cfg->local ? SC_LINK_LOCAL : cfg->link,
        .local = cfg->local,
        .reader = (size_t)srv->worker.index,
        .curve = use_curve ? &curve : NULL,
        .timeout_ms = cfg->timeout_ms,
        .ping_ms = cfg->ping_ms,
    };
    srv->engine = sc_engine_new(srv->base, &ec, errbuf, errlen);
    explicit_bzero(&curve, sizeof curve);
    return srv->engine ? 0 : -1;
}

/* A command from another thread (sc_server_post). */
static void s_on_ctl(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sc_server_t *srv = arg;
    char cmds[16];
    ssize_t n = read(fd, cmds, sizeof cmds);
    for (ssize_t i = 0; i < n; i++) {
        if (cmds[i] == SC_SERVER_STOP) {
            sc_server_stop(srv);
        } else if (cmds[i] == SC_SERVER_RELOAD) {
            s_reload_files(srv);
            char done = 1;
            if (srv->worker.ack_fd >= 0 && write(srv->worker.ack_fd, &done, 1) != 1) {
                eng_log(ENG_LOG_WARN, "sidecar", "worker %d: reload not acknowledged: %s",
                        srv->worker.index, strerror(errno));
            }
        }
    }
}

int sc_server_post(sc_server_t *self, sc_server_cmd_t cmd)
{
    char c = (char)cmd;
    ssize_t n;
    do {
        n = write(self->ctl[1], &c, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

/* Several workers share the port: each binds its own listening socket with
 * SO_REUSEPORT and the kernel spreads new connections over them, so no two
 * loops ever contend for an accept. Returns the bound socket or NULL. */
static struct evhttp_bound_socket *s_bind_shared(sc_server_t *srv, const char *host, int port)
{
    struct evutil_addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    if (evutil_getaddrinfo(host, ps, &hints, &ai) != 0 || !ai) {
        return NULL;
    }
    /* SO_REUSEPORT would also let this process share a port another one
     * serves with it: the first worker makes sure first that the port is
     * free, with a socket that does not share. */
    if (srv->worker.index == 0 && port != 0) {
        evutil_socket_t probe = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        bool free_ = probe >= 0 &&
                     setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                     bind(probe, ai->ai_addr, ai->ai_addrlen) == 0;
        if (probe >= 0) {
            close(probe);
        }
        if (!free_) {
            evutil_freeaddrinfo(ai);
            return NULL;
        }
    }
    struct evconnlistener *lev = evconnlistener_new_bind(
        srv->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        128, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!lev) {
        return NULL;
    }
    struct evhttp_bound_socket *bound = evhttp_bind_listener(srv->http, lev);
    if (!bound) {
        evconnlistener_free(lev);
    }
    return bound;
}

/* The worker's control pipe, read on its loop. Returns 0 or -1. */
static int s_ctl_new(sc_server_t *srv)
{
    if (pipe(srv->ctl) != 0) {
        srv->ctl[0] = srv->ctl[1] = -1;
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (fcntl(srv->ctl[i], F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(srv->ctl[i], F_SETFL, O_NONBLOCK) != 0) {
            return -1;
        }
    }
    srv->ctl_ev = event_new(srv->base, srv->ctl[0], EV_READ | EV_PERSIST, s_on_ctl, srv);
    return srv->ctl_ev && event_add(srv->ctl_ev, NULL) == 0 ? 0 : -1;
}

/* The loop. With epoll's change list a descriptor's interest changes are
 * applied once per turn of the loop, only where they differ from what the
 * kernel has: evhttp turns a connection's reading off when a request is
 * read and on again once its answer is written, and its writing on and off
 * around each answer; without the list each of those is an epoll_ctl call,
 * about four per request. (The list is unsafe only for descriptors that are
 * dup()ed while watched, which the server never does.) */
static struct event_base *s_base_new(void)
{
    struct event_config *ec = event_config_new();
    if (!ec) {
        return NULL;
    }
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

static sc_server_t *s_server_new(const sc_config_t *cfg, const sc_server_worker_t *w, char *errbuf,
                                 size_t errlen)
{
    sc_server_t *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    srv->ctl[0] = srv->ctl[1] = -1;
    srv->open_all = &srv->open_alone;
    srv->worker.ack_fd = -1;
    if (w) {
        srv->worker = *w;
        srv->open_all = w->open;
    }
    char host[256];
    int port = 0;
    if (s_split_listen(cfg->listen, host, sizeof host, &port) < 0) {
        snprintf(errbuf, errlen, "--listen '%s': expected HOST:PORT, e.g. 127.0.0.1:8080",
                 cfg->listen);
        goto fail;
    }
    srv->base = s_base_new();
    srv->metrics = sc_metrics_new();
    srv->http = srv->base ? evhttp_new(srv->base) : NULL;
    if (!srv->base || !srv->metrics || !srv->http) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    srv->next_srv = s_servers;
    s_servers = srv;
    srv->adopt = event_new(srv->base, -1, 0, s_on_adopt, srv);
    srv->resume = evtimer_new(srv->base, s_on_resume, srv);
    if (!srv->adopt || !srv->resume || (w && s_ctl_new(srv) != 0)) {
        snprintf(errbuf, errlen, "out of memory (or descriptors)");
        goto fail;
    }
    struct rlimit rl;
    unsigned long long nofile = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        nofile = rl.rlim_cur == RLIM_INFINITY ? ~0ull : (unsigned long long)rl.rlim_cur;
    }
    int fit = sc_server_max_connections(nofile, cfg->upstream != NULL);
    srv->max_conns = cfg->max_connections > 0 ? cfg->max_connections : fit;
    /* Said once, by the first (or only) worker: the limit is the process's. */
    eng_log(srv->max_conns > fit ? ENG_LOG_WARN
            : srv->worker.index  ? ENG_LOG_DEBUG
                                 : ENG_LOG_INFO,
            "sidecar",
            "at most %d client connections%s (descriptor limit %llu); deadlines: headers %d s, "
            "body %d s, idle %d s",
            srv->max_conns,
            srv->max_conns > fit ? ", more than the descriptors allow: accepts will fail" : "",
            nofile, cfg->header_timeout_s, cfg->body_timeout_s, cfg->idle_timeout_s);
    if (s_engines_new(srv, errbuf, errlen) != 0) {
        goto fail;
    }
    if (cfg->access_log && !(srv->access = sc_accesslog_open(cfg->access_log, errbuf, errlen))) {
        goto fail;
    }
    if (cfg->keys_file) {
        srv->keys = hpp_apikeys_load(cfg->keys_file, errbuf, errlen);
        if (!srv->keys) {
            goto fail;
        }
    }
    srv->trust.keys = srv->keys;
    srv->trust.trusted_header = cfg->trusted_header;
    srv->trust.trust_client = cfg->trust_client_features;
    srv->fo_seen.prober = srv->worker.index == 0;
    if (srv->worker.index > 0) {
        srv->failopen = w->peers[0]->failopen; /* the first worker's, shared */
    } else if (cfg->fail_open &&
               !(srv->failopen = sc_failopen_new(srv->base, srv->engine, cfg->fail_open,
                                                 cfg->ping_ms, errbuf, errlen))) {
        goto fail;
    }
    if (cfg->upstream || cfg->upstreams_file) {
        sc_proxy_config_t pc = {
            .base = srv->base,
            .engine = srv->engine,
            .metrics = srv->metrics,
            .upstreams_file = cfg->upstreams_file,
            .url = cfg->upstream,
            .strip_auth = cfg->keys_file != NULL,
            .timeout_s = cfg->upstream_timeout_s,
            .max_retries = cfg->max_retries,
            .strip_header = cfg->trusted_header,
        };
        if (!(srv->proxy = sc_proxy_new(&pc, errbuf, errlen)) ||
            !(srv->reports = sc_report_new(srv->base, srv->engine))) {
            if (srv->proxy) {
                snprintf(errbuf, errlen, "out of memory");
            }
            goto fail;
        }
    }
    /* Bodies up to max_body get a JSON 413 from us; libevent itself refuses
     * (with its own 413 page) anything so large that buffering it would be
     * the problem. */
    size_t hard = cfg->max_body + (cfg->max_body > 65536 ? cfg->max_body : 65536);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)hard);
    evhttp_set_max_headers_size(srv->http, 65536);
    /* libevent's own timeout is per byte (a read or a write that makes no
     * progress); the deadlines per request are ours (s_phase). */
    evhttp_set_timeout(srv->http, cfg->idle_timeout_s > 60 ? cfg->idle_timeout_s : 60);
    evhttp_set_bevcb(srv->http, s_on_new_bev, srv);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, s_on_request, srv);
    srv->bound = w && w->count > 1
                     ? s_bind_shared(srv, host, w->index > 0 ? w->port : port)
                     : evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!srv->bound) {
        snprintf(errbuf, errlen, "cannot listen on %s (address in use or not local?)", cfg->listen);
        goto fail;
    }
    srv->port = s_bound_port(srv->bound);
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(srv->bound), s_on_accept_error);
    if (w) {
        return srv; /* the thread that made the workers handles the signals */
    }
    srv->sigint = evsignal_new(srv->base, SIGINT, s_on_signal, srv);
    srv->sigterm = evsignal_new(srv->base, SIGTERM, s_on_signal, srv);
    srv->sighup = evsignal_new(srv->base, SIGHUP, s_on_hup, srv);
    if (!srv->sigint || !srv->sigterm || !srv->sighup || evsignal_add(srv->sigint, NULL) != 0 ||
        evsignal_add(srv->sigterm, NULL) != 0 || evsignal_add(srv->sighup, NULL) != 0) {
        snprintf(errbuf, errlen, "cannot install signal handlers");
        goto fail;
    }
    return srv;
fail:
    sc_server_destroy(&srv);
    return NULL;
}

sc_server_t *sc_server_new(const sc_config_t *cfg, char *errbuf, size_t errlen)
{
    return s_server_new(cfg, NULL, errbuf, errlen);
}

sc_server_t *sc_server_new_worker(const sc_config_t *cfg, const sc_server_worker_t *w, char *errbuf,
                                  size_t errlen)
{
    return s_server_new(cfg, w, errbuf, errlen);
}

sc_link_kind_t sc_server_link_kind(const sc_server_t *self)
{
    return sc_engine_link_kind(self->engine);
}

int sc_server_port(const sc_server_t *self)
{
    return self->port;
}

int sc_server_run(sc_server_t *self)
{
    event_base_dispatch(self->base);
    return 0;
}

void sc_server_stop(sc_server_t *self)
{
    event_base_loopbreak(self->base);
}

void sc_server_destroy(sc_server_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_server_t *srv = *self_p;
    for (sc_server_t **p = &s_servers; *p; p = &(*p)->next_srv) {
        if (*p == srv) {
            *p = srv->next_srv;
            break;
        }
    }
    if (srv->sigint) {
        event_free(srv->sigint);
    }
    if (srv->sigterm) {
        event_free(srv->sigterm);
    }
    if (srv->sighup) {
        event_free(srv->sighup);
    }
    /* Frees client connections (their close callbacks finish live calls). */
    if (srv->http) {
        evhttp_free(srv->http);
    }
    for (int i = 0; i < srv->nfresh; i++) {
        bufferevent_decref(srv->fresh[i]);
    }
    free(srv->fresh);
    while (srv->conn_pool) {
        s_conn_t *c = srv->conn_pool;
        srv->conn_pool = c->next;
        event_free(c->deadline);
        free(c);
    }
    free(srv->conns);
    if (srv->adopt) {
        event_free(srv->adopt);
    }
    if (srv->resume) {
        event_free(srv->resume);
    }
    sc_report_destroy(&srv->reports); /* sends what waits, before the engine goes */
    if (srv->ctl_ev) {
        event_free(srv->ctl_ev);
    }
    for (int i = 0; i < 2; i++) {
        if (srv->ctl[i] >= 0) {
            close(srv->ctl[i]);
        }
    }
    sc_proxy_destroy(&srv->proxy);
    if (srv->worker.index == 0) {
        sc_failopen_destroy(&srv->failopen); /* the others only borrow it */
    }
    sc_engine_destroy(&srv->engine);
    hpp_apikeys_destroy(&srv->keys);
    sc_accesslog_destroy(&srv->access);
    while (srv->pool) {
        sc_call_t *c = srv->pool;
        srv->pool = c->next;
        s_call_free(c);
    }
    sc_metrics_destroy(&srv->metrics);
    if (srv->base) {
        event_base_free(srv->base);
    }
    free(srv);
    *self_p = NULL;
}
