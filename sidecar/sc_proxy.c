/* sc_proxy.c - proxy mode: forward the rewritten body to the chosen
 * endpoint's upstream and stream the answer back as it arrives.
 *
 * Each attempt calls one endpoint (model, provider): the body goes to the
 * upstream the --upstreams table names for the provider, with the
 * provider's own model id and the upstream's credential, as one libevent
 * client request on a pooled keep-alive connection. The response header
 * callback decides before any byte reaches the client: 402 aborts the
 * attempt and asks the engine for the free variant (once); 429 and 5xx
 * abort it and try the next endpoint of the decision's fallbacks (the
 * engine lists the same model's other endpoints first), bounded by
 * --max-retries and skipping endpoints already called or unreachable; a
 * reused pooled connection that the upstream had closed is replaced once by
 * a new one; anything else starts the client reply with the upstream status
 * and headers plus the X-HPP-Router-* headers of the endpoint that
 * answered, and body chunks are moved (not copied) from the upstream buffer
 * to the client as the chunk callback delivers them, so SSE events flow
 * through one by one. An aborted attempt resumes from a deferred event,
 * never from inside libevent's own callback stack. Connection failures
 * before the reply started answer 502.
 */
#include "sc_proxy.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eng_common.h"
#include "sc_upstreams.h"

/* One upstream of the table: its resolved address and idle connections. */
typedef struct {
    char addr[64];                      /* numeric address, resolved when the table loads */
    struct evhttp_connection *idle[64]; /* keep-alive connections ready for reuse */
    int nidle;                          /* used entries of idle[] */
} s_pool_t;

struct sc_proxy {
    sc_proxy_config_t cfg;            /* the loop, engine, metrics and limits (borrowed) */
    sc_upstreams_t *table;            /* provider -> upstream */
    s_pool_t pools[SC_UPSTREAMS_MAX]; /* pools[i] serves line i of the table */
    uint32_t gen;                     /* bumped by each reload: older connections are freed */
    oai_jdoc_t *doc;                  /* reads the usage of answers (one loop, one at a time) */
};

/* Headers never forwarded in either direction (hop-by-hop, or rewritten). */
static const char *const s_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Connection",    "Transfer-Encoding",  "TE",
    "Trailer",    "Upgrade",    "Proxy-Authorization", "Proxy-Authenticate", NULL,
};
/* Upstream answers up to this size with a Content-Length (and not an event
 * stream) are collected and sent to the client in one reply: one write and
 * one segment instead of headers and body apart, and a 502 instead of a cut
 * body when the upstream fails mid-answer. Larger ones and streams are
 * relayed as they arrive. */
#define S_BUFFER_MAX (1024 * 1024)

/* An upstream's response head is bounded, so that a provider or gateway gone
 * wrong cannot hand the client (or this process's memory) megabytes of
 * headers: libevent enforces the total as it reads (the status line and the
 * header lines, CRLFs not counted) and reports an excess as an invalid
 * response; the bound per line is checked once the head is complete. Either
 * way the client gets 502 upstream_invalid_response. */
#define S_UP_HEAD_MAX (64 * 1024)
#define S_UP_LINE_MAX (8 * 1024)
#define S_UP_ERR_LINE                                                                              \
    1000 /* call->up_error: a header line over S_UP_LINE_MAX (not a                                \
            libevent code) */

/* Request headers the proxy sets itself. */
static const char *const s_req_own[] = {"Host", "Content-Length", "Content-Type", "Expect", NULL};

static bool s_in(const char *name, const char *const *list)
{
    for (int i = 0; list[i]; i++) {
        if (strcasecmp(name, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Writes what evhttp queued on a connection in this turn of the loop.
 * A socket bufferevent writes from its write event, which libevent adds
 * when data is queued and which fires only after the next epoll_wait has
 * reported the socket writable: one more turn of the loop (an epoll_ctl and
 * an epoll_wait) before each upstream request and each answer leaves, on
 * the latency of every proxied request. Making that event active runs the
 * same write callback (libevent's own: partial writes, EAGAIN, errors and
 * evhttp's state after the write stay its business) at the end of this
 * turn's callbacks instead, and the event's add and delete cancel out in
 * epoll's change list. Only when libevent is waiting to write already
 * (the event is pending): never while connecting, suspended or disabled. */
static void s_write_now(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0 &&
        (bufferevent_get_enabled(bev) & EV_WRITE) &&
        event_pending(&bev->ev_write, EV_WRITE, NULL)) {
        event_active(&bev->ev_write, EV_WRITE, 0);
    }
}

/* Upstream table and connection pools ------------------------------------ */

/* Resolves every host of the table (at startup and on SIGHUP, never per
 * request: libevent without a DNS base would resolve with a blocking call
 * on every connect). */
static int s_resolve(const sc_upstreams_t *t, s_pool_t *pools, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < sc_upstreams_count(t); i++) {
        const sc_upstream_def_t *u = sc_upstreams_get(t, i);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(u->host, NULL, &hints, &res);
        if (gai != 0 || !res ||
            getnameinfo(res->ai_addr, res->ai_addrlen, pools[i].addr, sizeof pools[i].addr, NULL, 0,
                        NI_NUMERICHOST) != 0) {
            snprintf(errbuf, errlen, "upstream for '%s' (line %u): cannot resolve %s: %s",
                     u->provider, (unsigned)u->line, u->host,
                     gai ? gai_strerror(gai) : "no address");
            if (res) {
                freeaddrinfo(res);
            }
            return -1;
        }
        freeaddrinfo(res);
    }
    return 0;
}

/* The table a single --upstream URL stands for: one `*` line. */
static sc_upstreams_t *s_single(const char *url, char *errbuf, size_t errlen)
{
    char text[1200];
    if (strlen(url) > 1023 || strpbrk(url, " \t\r\n#")) {
        snprintf(errbuf, errlen, "--upstream '%.64s': not a URL (expected http://HOST:PORT/v1)",
                 url);
        return NULL;
    }
    snprintf(text, sizeof text, "* %s\n", url);
    char why[512];
    sc_upstreams_t *t =
        sc_upstreams_parse(text, strlen(text), "--upstream", false, why, sizeof why);
    if (!t) {
        /* "--upstream:1:COL: what" -> "--upstream 'URL': what" */
        const char *what = strstr(why, ": ");
        what = what ? strstr(what + 2, ": ") : NULL;
        snprintf(errbuf, errlen, "--upstream '%s': %s", url, what ? what + 2 : why);
    }
    return t;
}

static void s_pools_close(s_pool_t *pools)
{
    for (size_t i = 0; i < SC_UPSTREAMS_MAX; i++) {
        for (int k = 0; k < pools[i].nidle; k++) {
            evhttp_connection_free(pools[i].idle[k]);
        }
        pools[i].nidle = 0;
    }
}

/* Reads the upstream file (or the single URL), resolves its hosts and, only
 * when all of that worked, puts it in service. */
static int s_load(sc_proxy_t *self, char *errbuf, size_t errlen)
{
    sc_upstreams_t *t = self->cfg.upstreams_file
                            ? sc_upstreams_load(self->cfg.upstreams_file, errbuf, errlen)
                            : s_single(self->cfg.url, errbuf, errlen);
    s_pool_t fresh[SC_UPSTREAMS_MAX];
    memset(fresh, 0, sizeof fresh);
    if (!t || s_resolve(t, fresh, errbuf, errlen) != 0) {
        sc_upstreams_destroy(&t);
        return -1;
    }
    s_pools_close(self->pools);
    memcpy(self->pools, fresh, sizeof fresh);
    sc_upstreams_destroy(&self->table);
    self->table = t;
    self->gen++;
    return 0;
}

sc_proxy_t *sc_proxy_new(const sc_proxy_config_t *cfg, char *errbuf, size_t errlen)
{
    sc_proxy_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->doc = oai_jdoc_new();
    if (!self->doc) {
        snprintf(errbuf, errlen, "out of memory");
        free(self);
        return NULL;
    }
    if (s_load(self, errbuf, errlen) < 0) {
        oai_jdoc_destroy(&self->doc);
        free(self);
        return NULL;
    }
    return self;
}

int sc_proxy_reload(sc_proxy_t *self, char *errbuf, size_t errlen)
{
    if (!self->cfg.upstreams_file) {
        snprintf(errbuf, errlen, "no --upstreams file");
        return 1;
    }
    return s_load(self, errbuf, errlen);
}

size_t sc_proxy_upstreams(const sc_proxy_t *self)
{
    return sc_upstreams_count(self->table);
}

uint32_t sc_proxy_reachable(const sc_proxy_t *self, hpp_str_t out[HPP_MAX_PROVIDERS])
{
    return sc_upstreams_reachable(self->table, out);
}

void sc_proxy_destroy(sc_proxy_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    s_pools_close((*self_p)->pools);
    sc_upstreams_destroy(&(*self_p)->table);
    oai_jdoc_destroy(&(*self_p)->doc);
    free(*self_p);
    *self_p = NULL;
}

/* An idle connection of pool i, or a new one; *reused says which. */
static struct evhttp_connection *s_conn_get(sc_proxy_t *px, int i, bool fresh, bool *reused)
{
    s_pool_t *p = &px->pools[i];
    const sc_upstream_def_t *u = sc_upstreams_get(px->table, (size_t)i);
    *reused = !fresh && p->nidle > 0;
    if (*reused) {
        return p->idle[--p->nidle];
    }
    struct evhttp_connection *c =
        evhttp_connection_base_new(px->cfg.base, NULL, p->addr, (ev_uint16_t)u->port);
    if (c) {
        evhttp_connection_set_timeout(c, px->cfg.timeout_s);
        evhttp_connection_set_max_headers_size(c, S_UP_HEAD_MAX);
        /* One retry of the connect itself is libevent's business; endpoint
         * retries are ours. */
        evhttp_connection_set_retries(c, 0);
    }
    return c;
}

/* Returns the call's connection to its pool (or frees it when the table it
 * came from was replaced, or the pool is full). */
static void s_conn_put(sc_proxy_t *px, sc_call_t *call)
{
    struct evhttp_connection *c = call->up_conn;
    call->up_conn = NULL;
    if (!c) {
        return;
    }
    s_pool_t *p = &px->pools[call->up_pool];
    if (call->up_gen == px->gen && p->nidle < (int)(sizeof p->idle / sizeof p->idle[0])) {
        p->idle[p->nidle++] = c;
    } else {
        evhttp_connection_free(c);
    }
}

/* Attempts ------------------------------------------------------------------ */

static void s_attempt(sc_call_t *call, const sc_endpoint_t *ep, bool fresh);
static void s_free_reroute(sc_call_t *call);

static void s_free_body(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* Whether an attempt already called this endpoint (model and provider). */
static bool s_tried(const sc_call_t *call, const char *model, const char *provider)
{
    for (int i = 0; i < call->nattempts; i++) {
        if (strcmp(call->attempts[i].model, model) == 0 &&
            strcasecmp(call->attempts[i].provider, provider) == 0) {
            return true;
        }
    }
    return false;
}

/* Index of the next fallback worth trying, or -1. The engine lists the
 * chosen model's other endpoints first, then the next best models, so this
 * order is "same model elsewhere, then another model". */
static int s_next_fallback(const sc_call_t *call)
{
    for (uint32_t i = call->next_fb; i < call->d.nfallbacks; i++) {
        const sc_endpoint_t *fb = &call->d.fallbacks[i];
        if (!s_tried(call, fb->model, fb->provider) &&
            sc_upstreams_find(call->px->table, fb->provider, strlen(fb->provider))) {
            return (int)i;
        }
    }
    return -1;
}

/* The current attempt's entry in the call's attempt list. */
static sc_attempt_t *s_current(sc_call_t *call)
{
    return call->nattempts > 0 ? &call->attempts[call->nattempts - 1] : NULL;
}

/* Answers an attempt that produced no response (nothing was sent yet). */
static void s_fail(sc_call_t *call, int status, const char *code, const char *fmt, const char *arg)
{
    oai_error_t err;
    oai_error_set(&err, status, code, NULL, fmt, arg);
    call->ops->reply_error(call, &err);
}

static const char *s_error_name(int e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "closed the connection or refused it";
    case EVREQ_HTTP_INVALID_HEADER:
        return "sent an invalid response head, or one over the limit of 64 KiB";
    case S_UP_ERR_LINE:
        return "sent a response header line over the limit of 8 KiB";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "could not be reached";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "sent headers too large";
    default:
        return "failed";
    }
}

static void s_on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_call_t *call = arg;
    sc_retry_kind_t kind = call->retry;
    call->retry = SC_RETRY_NONE;
    if (kind == SC_RETRY_FREE) {
        s_free_reroute(call);
        return;
    }
    if (kind == SC_RETRY_FRESH) {
        sc_endpoint_t same = call->at;
        s_attempt(call, &same, true);
        return;
    }
    int i = s_next_fallback(call);
    if (i < 0) { /* cannot happen: checked before aborting */
        s_fail(call, 502, "upstream_error", "upstream answered %s and no fallback is left",
               "an error");
        return;
    }
    call->next_fb = (uint32_t)i + 1;
    call->retries++;
    s_attempt(call, &call->d.fallbacks[i], false);
}

static void s_schedule(sc_call_t *call)
{
    if (!call->defer) {
        call->defer = event_new(call->px->cfg.base, -1, 0, s_on_defer, call);
    }
    if (!call->defer) {
        s_fail(call, 500, "internal", "out of memory %s", "retrying upstream");
        return;
    }
    event_active(call->defer, EV_TIMEOUT, 0);
}

static void s_on_up_error(enum evhttp_request_error e, void *arg)
{
    sc_call_t *call = arg;
    if (call->up_error != S_UP_ERR_LINE) { /* the header callback's reason stays */
        call->up_error = (int)e;
    }
    sc_attempt_t *a = s_current(call);
    if (a) {
        a->up_error = call->up_error + 1;
    }
}

/* Whether a response header line (name, ": ", value) is over S_UP_LINE_MAX. */
static bool s_head_line_over(const struct evkeyvalq *h)
{
    for (const struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strlen(kv->key) + 2 + strlen(kv->value) > S_UP_LINE_MAX) {
            return true;
        }
    }
    return false;
}

/* Whether an upstream answer with these headers is collected (S_BUFFER_MAX). */
static bool s_bufferable(const struct evkeyvalq *h)
{
    const char *cl = evhttp_find_header(h, "Content-Length");
    const char *ct = evhttp_find_header(h, "Content-Type");
    if (!cl || (ct && strncasecmp(ct, "text/event-stream", 17) == 0)) {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno == 0 && end != cl && *end == '\0' && n <= S_BUFFER_MAX;
}

/* Response headers arrived: retry, or start the client reply. */
static int s_on_up_headers(struct evhttp_request *up, void *arg)
{
    sc_call_t *call = arg;
    if (call->cancelled) {
        return -1;
    }
    sc_proxy_t *px = call->px;
    if (s_head_line_over(evhttp_request_get_input_headers(up))) {
        call->up_error = S_UP_ERR_LINE;
        return -1;
    }
    int status = evhttp_request_get_response_code(up);
    call->up_status = status;
    double took = sc_now() - call->up_t0;
    sc_attempt_t *a = s_current(call);
    if (a) {
        a->status = status;
        a->seconds = took;
    }
    sc_metrics_upstream(px->cfg.metrics, status);
    sc_metrics_upstream_time(px->cfg.metrics, took);
    if (status == 402 && !call->free_tried) {
        call->retry = SC_RETRY_FREE;
        call->retry_status = status;
        sc_metrics_retry(px->cfg.metrics, SC_RETRY_402);
        return -1;
    }
    if ((status == 429 || status >= 500) && call->retries < px->cfg.max_retries &&
        s_next_fallback(call) >= 0) {
        call->retry = SC_RETRY_NEXT;
        call->retry_status = status;
        sc_metrics_retry(px->cfg.metrics, status == 429 ? SC_RETRY_429 : SC_RETRY_5XX);
        return -1;
    }
    struct evkeyvalq *in = evhttp_request_get_input_headers(up);
    struct evkeyvalq *out = evhttp_request_get_output_headers(call->req);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        if (!s_in(kv->key, s_hop)) {
            evhttp_add_header(out, kv->key, kv->value);
        }
    }
    call->ops->add_decision_headers(call, out);
    sc_metrics_decision(px->cfg.metrics, call->at.model, strlen(call->at.model), call->at.tier,
                        strlen(call->at.tier));
    call->status = status;
    const char *reason = evhttp_request_get_response_code_line(up);
    snprintf(call->reason, sizeof call->reason, "%s", reason && reason[0] ? reason : "Upstream");
    if (s_bufferable(in)) {
        call->buffered = true;
        return 0;
    }
    call->streaming = true;
    sc_sse_reset(&call->sse);
    evhttp_send_reply_start(call->req, status, call->reason);
    s_write_now(evhttp_request_get_connection(call->req));
    return 0;
}

/* Reads the events of a streamed answer as they pass, in place: the usage
 * chunk (the last wins) and the time of the first token. */
static void s_scan(sc_call_t *call, struct evbuffer *b)
{
    sc_attempt_t *a = s_current(call);
    if (!a) {
        return;
    }
    struct evbuffer_iovec v[8];
    size_t off = 0, len = evbuffer_get_length(b);
    while (off < len) {
        struct evbuffer_ptr at;
        if (evbuffer_ptr_set(b, &at, off, EVBUFFER_PTR_SET) != 0) {
            return;
        }
        int n = evbuffer_peek(b, -1, &at, v, 8);
        if (n <= 0) {
            return;
        }
        for (int i = 0; i < n && i < 8; i++) {
            if (sc_sse_feed(&call->sse, call->px->doc, v[i].iov_base, v[i].iov_len, &a->usage) &&
                a->first_token == 0) {
                a->first_token = sc_now() - call->up_t0;
            }
            off += v[i].iov_len;
        }
    }
}

/* Reads the usage of a collected answer (before it is sent). The body is
 * read where it lies; only when it arrived in several pieces are they made
 * one, in the reply's own buffer. */
static void s_read_usage(sc_call_t *call, struct evbuffer *b)
{
    sc_attempt_t *a = s_current(call);
    size_t len = evbuffer_get_length(b);
    const char *body = len ? (const char *)evbuffer_pullup(b, -1) : NULL;
    if (a && body) {
        sc_usage_read(call->px->doc, body, len, &a->usage);
    }
}

static void s_on_up_chunk(struct evhttp_request *up, void *arg)
{
    sc_call_t *call = arg;
    if (call->cancelled) {
        return;
    }
    if (call->buffered) {
        /* Moves the bytes into the reply, sent when the answer is complete. */
        evbuffer_add_buffer(evhttp_request_get_output_buffer(call->req),
                            evhttp_request_get_input_buffer(up));
        return;
    }
    if (!call->streaming) {
        return;
    }
    s_scan(call, evhttp_request_get_input_buffer(up));
    /* Moves the bytes: the upstream buffer is drained into the client's. */
    evhttp_send_reply_chunk(call->req, evhttp_request_get_input_buffer(up));
    s_write_now(evhttp_request_get_connection(call->req));
}

/* Closes a client connection once what is already queued for it is written
 * (the bufferevent's output cannot be flushed by hand: libevent freezes it
 * for its own write callback). evhttp's callbacks are replaced, so it no
 * longer acts on this connection; freeing the connection frees the request.
 * The server's write timeout bounds the wait; evhttp_free frees it too. */
static void s_drop_written(struct bufferevent *bev, void *arg)
{
    (void)bev;
    evhttp_connection_free(arg);
}

static void s_drop_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    evhttp_connection_free(arg);
}

static void s_drop_client(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    if (!bev || evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        evhttp_connection_free(evcon);
        return;
    }
    bufferevent_setcb(bev, NULL, s_drop_written, s_drop_event, evcon);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_disable(bev, EV_READ);
    bufferevent_enable(bev, EV_WRITE);
}

/* The attempt is over: complete, aborted for a retry, or failed. */
static void s_on_up_done(struct evhttp_request *up, void *arg)
{
    sc_call_t *call = arg;
    if (call->cancelled) {
        return;
    }
    sc_proxy_t *px = call->px;
    call->up_req = NULL;
    bool reused = call->up_reused;
    sc_attempt_t *cur = s_current(call);
    if (cur) {
        cur->total = sc_now() - call->up_t0;
    }
    if (call->retry == SC_RETRY_NONE && call->up_status == 0 && !call->streaming &&
        !call->buffered) {
        /* No response at all: a connection from the pool may have been
         * closed by the upstream while idle (keep-alive timeouts differ).
         * That is no fault of the endpoint: once, on a new connection. */
        if (reused && !call->fresh_retried) {
            if (call->up_conn) {
                evhttp_connection_free(call->up_conn);
                call->up_conn = NULL;
            }
            call->fresh_retried = true;
            call->retry = SC_RETRY_FRESH;
            if (cur) {
                cur->unreported = true; /* the pool's doing, not the endpoint's */
            }
            eng_log(ENG_LOG_INFO, "sidecar",
                    "pooled connection to %s's upstream %s: once more on a new one",
                    call->at.provider, s_error_name(call->up_error));
            s_schedule(call);
            return;
        }
        sc_attempt_t *a = s_current(call);
        if (a) {
            a->seconds = sc_now() - call->up_t0;
        }
    }
    s_conn_put(px, call);
    if (call->retry != SC_RETRY_NONE) {
        eng_log(ENG_LOG_INFO, "sidecar", "upstream answered %d for %s at %s: retrying",
                call->retry_status, call->at.model, call->at.provider);
        s_schedule(call);
        return;
    }
    if (call->buffered && up && call->up_error == 0) {
        s_read_usage(call, evhttp_request_get_output_buffer(call->req));
        struct evhttp_connection *evcon = evhttp_request_get_connection(call->req);
        call->ops->detach(call);
        evhttp_send_reply(call->req, call->status, call->reason, NULL);
        s_write_now(evcon);
        call->req = NULL;
        call->ops->finish(call);
        return;
    }
    if (call->buffered) {
        /* Nothing reached the client yet: drop the partial answer, answer 502. */
        struct evbuffer *part = evhttp_request_get_output_buffer(call->req);
        evbuffer_drain(part, evbuffer_get_length(part));
        evhttp_clear_headers(evhttp_request_get_output_headers(call->req));
        call->buffered = false;
    }
    if (call->streaming) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(call->req);
        call->ops->detach(call);
        if (up && call->up_error == 0) {
            evhttp_send_reply_end(call->req);
        } else if (evcon) {
            /* The upstream broke mid-answer. Ending the reply normally would
             * pass a truncated body off as complete (or leave a client
             * waiting for the rest of a Content-Length): drop the client
             * connection instead, which also frees the request. */
            eng_log(ENG_LOG_WARN, "sidecar", "upstream of %s %s mid-answer: closing the client",
                    call->at.provider, s_error_name(call->up_error));
            s_drop_client(evcon);
        } else {
            evhttp_send_reply_end(call->req); /* detached: this only frees it */
        }
        call->req = NULL;
        call->ops->finish(call);
        return;
    }
    if (call->up_status == 0) {
        sc_metrics_upstream(px->cfg.metrics, 0); /* no response at all (a cut one was counted) */
    }
    eng_log(ENG_LOG_WARN, "sidecar", "upstream of %s %s", call->at.provider,
            s_error_name(call->up_error));
    char what[400];
    snprintf(what, sizeof what, "of %s %s", call->at.provider, s_error_name(call->up_error));
    bool bad_head = call->up_error == EVREQ_HTTP_INVALID_HEADER || call->up_error == S_UP_ERR_LINE;
    s_fail(call, 502, bad_head ? "upstream_invalid_response" : "upstream_unavailable",
           "upstream %s", what);
}

/* Whether a client header is passed to the upstream `u`. */
static bool s_forwarded(const sc_proxy_t *px, const sc_upstream_def_t *u, const char *key)
{
    if (s_in(key, s_hop) || s_in(key, s_req_own) || strncasecmp(key, "X-HPP-", 6) == 0) {
        return false; /* our hints and hop-by-hop headers end here */
    }
    if (px->cfg.strip_header && strcasecmp(key, px->cfg.strip_header) == 0) {
        return false; /* the gateway's group header */
    }
    /* The client's key is for us (--keys) or is replaced by the upstream's. */
    if ((px->cfg.strip_auth || u->key_value) && strcasecmp(key, "Authorization") == 0) {
        return false;
    }
    return !(u->key_value && strcasecmp(key, u->key_header) == 0);
}

/* Whether an id ends in ":free". */
static bool s_free_suffix(const char *id)
{
    size_t n = strlen(id);
    return n > 5 && memcmp(id + n - 5, ":free", 5) == 0;
}

/* Sends the call's body to the upstream of `ep`'s provider, with `ep`'s own
 * model id; `fresh` skips the idle pool. */
static void s_attempt(sc_call_t *call, const sc_endpoint_t *ep, bool fresh)
{
    sc_proxy_t *px = call->px;
    call->at = *ep;
    if (call->nattempts < SC_MAX_ATTEMPTS) {
        sc_attempt_t *a = &call->attempts[call->nattempts++];
        memcpy(a->model, ep->model, sizeof a->model);
        memcpy(a->provider, ep->provider, sizeof a->provider);
        a->status = 0;
        a->seconds = 0;
        a->total = 0;
        a->up_error = 0;
        a->unreported = false;
        a->first_token = 0;
        sc_usage_init(&a->usage);
        a->free_variant = s_free_suffix(ep->provider_model) && !s_free_suffix(ep->model);
    }
    const sc_upstream_def_t *u = sc_upstreams_find(px->table, ep->provider, strlen(ep->provider));
    if (!u) {
        if (s_current(call)) {
            s_current(call)->unreported = true; /* never called */
        }
        s_fail(call, 502, "upstream_unavailable",
               "no upstream serves provider '%s' (see --upstreams)", ep->provider);
        return;
    }
    int pool = (int)(u - sc_upstreams_get(px->table, 0));
    /* The provider's own id: an OpenRouter `:free` endpoint keeps its
     * suffix, a provider's native name replaces the catalog id. */
    const char *model = ep->provider_model[0] ? ep->provider_model : ep->model;
    /* The client's body is still whole in the request's input buffer
     * (contiguous since s_features pulled it up). */
    struct evbuffer *in_body = evhttp_request_get_input_buffer(call->req);
    size_t in_len = evbuffer_get_length(in_body);
    const char *sent = (const char *)evbuffer_pullup(in_body, -1);
    size_t len = 0;
    char *body = oai_extract_forward(call->x, sent, in_len, model, &len);
    if (!body) {
        s_fail(call, 500, "internal", "out of memory %s", "building the upstream body");
        return;
    }
    bool reused = false;
    struct evhttp_connection *conn = s_conn_get(px, pool, fresh, &reused);
    struct evhttp_request *up = conn ? evhttp_request_new(s_on_up_done, call) : NULL;
    if (!up) {
        free(body);
        if (conn) {
            evhttp_connection_free(conn);
        }
        s_fail(call, 502, "upstream_unavailable", "cannot create a connection to %s", u->hostport);
        return;
    }
    evhttp_request_set_header_cb(up, s_on_up_headers);
    evhttp_request_set_chunked_cb(up, s_on_up_chunk);
    evhttp_request_set_error_cb(up, s_on_up_error);
    struct evkeyvalq *in = evhttp_request_get_input_headers(call->req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(up);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        if (s_forwarded(px, u, kv->key)) {
            evhttp_add_header(out, kv->key, kv->value);
        }
    }
    evhttp_add_header(out, "Host", u->hostport);
    /* The body is the client's JSON (spliced), whatever it was labelled. */
    evhttp_add_header(out, "Content-Type", "application/json");
    if (u->key_value) {
        evhttp_add_header(out, u->key_header, u->key_value);
    }
    evhttp_add_header(out, "X-HPP-Router-Resolved-Model", ep->model);
    evhttp_add_header(out, "X-HPP-Router-Provider", ep->provider);
    evbuffer_add_reference(evhttp_request_get_output_buffer(up), body, len, s_free_body, NULL);
    call->up_conn = conn;
    call->up_pool = pool;
    call->up_gen = px->gen;
    call->up_reused = reused;
    call->up_req = up;
    call->up_error = 0;
    call->up_status = 0;
    call->up_t0 = sc_now();
    if (evhttp_make_request(conn, up, EVHTTP_REQ_POST, u->path) != 0) {
        /* libevent freed the request */
        call->up_req = NULL;
        s_conn_put(px, call);
        s_fail(call, 502, "upstream_unavailable", "cannot send to %s", u->hostport);
        return;
    }
    s_write_now(conn); /* a connected one: the request is queued (a new one connects first) */
}

void sc_proxy_start(sc_proxy_t *self, sc_call_t *call)
{
    call->px = self;
    sc_endpoint_t first;
    sc_decision_endpoint(&call->d, &first);
    s_attempt(call, &first, false);
}

void sc_proxy_cancel(sc_call_t *call)
{
    if (!call->px) {
        return;
    }
    if (call->defer) {
        event_del(call->defer);
    }
    if (call->up_req) {
        struct evhttp_request *up = call->up_req;
        call->up_req = NULL;
        call->cancelled = true; /* the callbacks run inside the cancel: ignore them */
        evhttp_cancel_request(up);
    }
    if (call->up_conn) {
        s_conn_put(call->px, call);
    }
    if (call->eng) {
        sc_engine_cancel(call->px->cfg.engine, call->eng);
        call->eng = 0;
    }
}

/* 402: the free variant ------------------------------------------------------- */

static void s_on_free_reply(void *arg, sc_eng_result_t res, const proto_reply_t *r, const void *raw,
                            size_t len)
{
    (void)raw;
    (void)len;
    sc_call_t *call = arg;
    call->eng = 0;
    if (res == SC_ENG_REPLY) {
        sc_metrics_engine_time(call->px->cfg.metrics, sc_now() - call->eng_t0);
    }
    if (res != SC_ENG_REPLY || !r->ok) {
        char why[160];
        if (res == SC_ENG_REPLY) {
            size_t n = r->message.len < sizeof why - 1 ? r->message.len : sizeof why - 1;
            if (n > 0) {
                memcpy(why, r->message.ptr, n);
            }
            why[n] = '\0';
        } else {
            snprintf(why, sizeof why, "the routing engine did not answer");
        }
        s_fail(call, 402, "payment_required",
               "the upstream answered 402 Payment Required and no free fallback is "
               "available: %s",
               why);
        return;
    }
    sc_decision_t d;
    sc_decision_copy(&d, r);
    if (s_tried(call, d.model, d.provider)) {
        s_fail(call, 402, "payment_required",
               "the upstream answered 402 Payment Required for the free fallback %s too", d.model);
        return;
    }
    /* Keep the original fallbacks; the attempt (and every header, metric
     * and log line after it) reports the free endpoint, and the rule that
     * chose it. */
    snprintf(call->d.rule, sizeof call->d.rule, "%s", d.rule);
    sc_endpoint_t ep;
    sc_decision_endpoint(&d, &ep);
    s_attempt(call, &ep, false);
}

/* Asks the engine for a $0 answer: the `:free` variant of an explicitly
 * requested model, or, for hpprouter/auto, any model within a zero budget. */
static void s_free_reroute(sc_call_t *call)
{
    call->free_tried = true;
    /* The request lives in the call: if its engine goes away it is sent
     * again from there. */
    proto_request_t *req = &call->ereq;
    proto_request_init(req, PROTO_OP_ROUTE);
    req->features = call->f;
    hpp_str_t asked = call->f.model;
    bool is_auto = asked.len == 0 || (asked.len == strlen(HPP_AUTO_MODEL) &&
                                      memcmp(asked.ptr, HPP_AUTO_MODEL, asked.len) == 0);
    if (is_auto) {
        req->features.has_budget = true;
        req->features.budget_usd = 0;
    } else {
        /* The resolved id without any ":variant", plus ":free". */
        char *model = call->free_model;
        size_t n = strcspn(call->d.model, ":");
        if (n + sizeof ":free" > sizeof call->free_model) {
            n = sizeof call->free_model - sizeof ":free";
        }
        snprintf(model, sizeof call->free_model, "%.*s:free", (int)n, call->d.model);
        req->features.model.ptr = model;
        req->features.model.len = (uint32_t)strlen(model);
    }
    sc_call_err_t why = SC_CALL_OK;
    call->eng_t0 = sc_now();
    call->eng = sc_engine_call(call->px->cfg.engine, req, s_on_free_reply, call, &why);
    if (!call->eng) {
        s_fail(call, 402, "payment_required",
               "the upstream answered 402 Payment Required and the routing engine %s",
               sc_call_err_message(why));
    }
}
