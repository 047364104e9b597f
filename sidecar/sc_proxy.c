/* sc_proxy.c - proxy mode: forward the rewritten body upstream and stream
 * the answer back as it arrives.
 *
 * Each attempt is one libevent client request on a pooled keep-alive
 * connection. The response header callback decides before any byte reaches
 * the client: 402 aborts the attempt and asks the engine for the free
 * variant (once); 429 and 5xx abort it and try the next fallback model
 * (bounded by --max-retries, skipping models already tried); anything else
 * starts the client reply with the upstream status and headers plus
 * X-HPP-Router-Resolved-Model, and body chunks are moved (not copied) from
 * the upstream buffer to the client as the chunk callback delivers them, so
 * SSE events flow through one by one. An aborted attempt resumes from a
 * deferred event, never from inside libevent's own callback stack.
 * Connection failures before the reply started answer 502.
 */
#include "sc_proxy.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eng_common.h"

/* The upstream: parsed base URL and idle connections. */
typedef struct {
    char host[256];                     /* host name or address, as given */
    char addr[64];                      /* its numeric address, resolved once at startup */
    int port;                           /* TCP port */
    char hostport[300];                 /* Host header value */
    char path[512];                     /* request path: base path + /chat/completions */
    struct evhttp_connection *idle[64]; /* keep-alive connections ready for reuse */
    int nidle;                          /* used entries of idle[] */
} sc_upstream_t;

struct sc_proxy {
    sc_proxy_config_t cfg; /* the loop, engine, metrics and limits (borrowed) */
    sc_upstream_t up;      /* the upstream */
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

/* Upstream URL and connection pool ---------------------------------------- */

static int s_upstream_init(sc_upstream_t *up, const char *url, char *errbuf, size_t errlen)
{
    memset(up, 0, sizeof *up);
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) {
        snprintf(errbuf, errlen, "--upstream '%s': not a URL (expected http://HOST:PORT/v1)", url);
        return -1;
    }
    int rc = -1;
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *host = evhttp_uri_get_host(u);
    const char *path = evhttp_uri_get_path(u);
    int port = evhttp_uri_get_port(u);
    if (!scheme || strcasecmp(scheme, "http") != 0) {
        snprintf(errbuf, errlen,
                 "--upstream '%s': only http:// is supported (terminate TLS in the gateway)", url);
        goto out;
    }
    if (!host || !host[0] || strlen(host) >= sizeof up->host) {
        snprintf(errbuf, errlen, "--upstream '%s': missing host", url);
        goto out;
    }
    if (evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u) || evhttp_uri_get_userinfo(u)) {
        snprintf(errbuf, errlen, "--upstream '%s': no query, fragment or user info allowed", url);
        goto out;
    }
    snprintf(up->host, sizeof up->host, "%s", host);
    up->port = port > 0 ? port : 80;
    /* Resolved here, before the loop runs: libevent without a DNS base would
     * resolve a name with a blocking call on every (re)connect. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0 || !res ||
        getnameinfo(res->ai_addr, res->ai_addrlen, up->addr, sizeof up->addr, NULL, 0,
                    NI_NUMERICHOST) != 0) {
        snprintf(errbuf, errlen, "--upstream '%s': cannot resolve %s: %s", url, host,
                 gai ? gai_strerror(gai) : "no address");
        if (res) {
            freeaddrinfo(res);
        }
        goto out;
    }
    freeaddrinfo(res);
    if (port > 0) {
        snprintf(up->hostport, sizeof up->hostport, "%s:%d", host, port);
    } else {
        snprintf(up->hostport, sizeof up->hostport, "%s", host);
    }
    /* The base URL is what OpenAI SDKs call base_url (ends in /v1); an empty
     * path means /v1. */
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/') {
        plen--;
    }
    if (plen == 0) {
        snprintf(up->path, sizeof up->path, "/v1/chat/completions");
    } else if (plen + sizeof "/chat/completions" > sizeof up->path) {
        snprintf(errbuf, errlen, "--upstream '%s': path too long", url);
        goto out;
    } else {
        snprintf(up->path, sizeof up->path, "%.*s/chat/completions", (int)plen, path);
    }
    rc = 0;
out:
    evhttp_uri_free(u);
    return rc;
}

static void s_upstream_close(sc_upstream_t *up)
{
    for (int i = 0; i < up->nidle; i++) {
        evhttp_connection_free(up->idle[i]);
    }
    up->nidle = 0;
}

sc_proxy_t *sc_proxy_new(const sc_proxy_config_t *cfg, char *errbuf, size_t errlen)
{
    sc_proxy_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    if (s_upstream_init(&self->up, cfg->url, errbuf, errlen) < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void sc_proxy_destroy(sc_proxy_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    s_upstream_close(&(*self_p)->up);
    free(*self_p);
    *self_p = NULL;
}

static struct evhttp_connection *s_conn_get(sc_proxy_t *px)
{
    sc_upstream_t *up = &px->up;
    if (up->nidle > 0) {
        return up->idle[--up->nidle];
    }
    struct evhttp_connection *c =
        evhttp_connection_base_new(px->cfg.base, NULL, up->addr, (ev_uint16_t)up->port);
    if (c) {
        evhttp_connection_set_timeout(c, px->cfg.timeout_s);
        evhttp_connection_set_max_headers_size(c, S_UP_HEAD_MAX);
        /* One retry of the connect itself is libevent's business; model
         * retries are ours. */
        evhttp_connection_set_retries(c, 0);
    }
    return c;
}

static void s_conn_put(sc_proxy_t *px, struct evhttp_connection *c)
{
    sc_upstream_t *up = &px->up;
    if (!c) {
        return;
    }
    if (up->nidle < (int)(sizeof up->idle / sizeof up->idle[0])) {
        up->idle[up->nidle++] = c;
    } else {
        evhttp_connection_free(c);
    }
}

/* Attempts ------------------------------------------------------------------ */

static void s_attempt(sc_call_t *call, const char *model);
static void s_free_reroute(sc_call_t *call);

static void s_free_body(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

static bool s_tried(const sc_call_t *call, const char *model)
{
    for (int i = 0; i < call->ntried; i++) {
        if (strcmp(call->tried[i], model) == 0) {
            return true;
        }
    }
    return false;
}

/* Index of the next fallback worth trying, or -1. */
static int s_next_fallback(const sc_call_t *call)
{
    for (uint32_t i = call->next_fb; i < call->d.nfallbacks; i++) {
        if (!s_tried(call, call->d.fallbacks[i].model)) {
            return (int)i;
        }
    }
    return -1;
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
    int i = s_next_fallback(call);
    if (i < 0) { /* cannot happen: checked before aborting */
        s_fail(call, 502, "upstream_error", "upstream answered %s and no fallback is left",
               "an error");
        return;
    }
    call->next_fb = (uint32_t)i + 1;
    call->retries++;
    s_attempt(call, call->d.fallbacks[i].model);
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
    sc_metrics_upstream(px->cfg.metrics, status);
    sc_metrics_upstream_time(px->cfg.metrics, sc_now() - call->up_t0);
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
    call->ops->add_decision_headers(call, out, call->model);
    call->status = status;
    const char *reason = evhttp_request_get_response_code_line(up);
    snprintf(call->reason, sizeof call->reason, "%s", reason && reason[0] ? reason : "Upstream");
    if (s_bufferable(in)) {
        call->buffered = true;
        return 0;
    }
    call->streaming = true;
    evhttp_send_reply_start(call->req, status, call->reason);
    return 0;
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
    /* Moves the bytes: the upstream buffer is drained into the client's. */
    evhttp_send_reply_chunk(call->req, evhttp_request_get_input_buffer(up));
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
    s_conn_put(px, call->up_conn);
    call->up_conn = NULL;
    if (call->retry != SC_RETRY_NONE) {
        eng_log(ENG_LOG_INFO, "sidecar", "upstream answered %d for %s: retrying",
                call->retry_status, call->model);
        s_schedule(call);
        return;
    }
    if (call->buffered && up && call->up_error == 0) {
        call->ops->detach(call);
        evhttp_send_reply(call->req, call->status, call->reason, NULL);
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
            eng_log(ENG_LOG_WARN, "sidecar", "upstream %s %s mid-answer: closing the client",
                    px->up.hostport, s_error_name(call->up_error));
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
    eng_log(ENG_LOG_WARN, "sidecar", "upstream %s %s", px->up.hostport,
            s_error_name(call->up_error));
    char what[400];
    snprintf(what, sizeof what, "%s %s", px->up.hostport, s_error_name(call->up_error));
    bool bad_head = call->up_error == EVREQ_HTTP_INVALID_HEADER || call->up_error == S_UP_ERR_LINE;
    s_fail(call, 502, bad_head ? "upstream_invalid_response" : "upstream_unavailable",
           "upstream %s", what);
}

static void s_attempt(sc_call_t *call, const char *model)
{
    sc_proxy_t *px = call->px;
    snprintf(call->model, sizeof call->model, "%s", model);
    if (call->ntried < (int)(sizeof call->tried / sizeof call->tried[0])) {
        snprintf(call->tried[call->ntried++], sizeof call->tried[0], "%s", model);
    }
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
    struct evhttp_connection *conn = s_conn_get(px);
    struct evhttp_request *up = conn ? evhttp_request_new(s_on_up_done, call) : NULL;
    if (!up) {
        free(body);
        s_conn_put(px, conn);
        s_fail(call, 502, "upstream_unavailable", "cannot create a connection to %s",
               px->up.hostport);
        return;
    }
    evhttp_request_set_header_cb(up, s_on_up_headers);
    evhttp_request_set_chunked_cb(up, s_on_up_chunk);
    evhttp_request_set_error_cb(up, s_on_up_error);
    struct evkeyvalq *in = evhttp_request_get_input_headers(call->req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(up);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        if (s_in(kv->key, s_hop) || s_in(kv->key, s_req_own) ||
            strncasecmp(kv->key, "X-HPP-", 6) == 0 ||
            (px->cfg.strip_header && strcasecmp(kv->key, px->cfg.strip_header) == 0)) {
            continue; /* our hints and the gateway's group are consumed here */
        }
        evhttp_add_header(out, kv->key, kv->value);
    }
    evhttp_add_header(out, "Host", px->up.hostport);
    /* The body is the client's JSON (spliced), whatever it was labelled. */
    evhttp_add_header(out, "Content-Type", "application/json");
    evhttp_add_header(out, "X-HPP-Router-Resolved-Model", model);
    evbuffer_add_reference(evhttp_request_get_output_buffer(up), body, len, s_free_body, NULL);
    call->up_conn = conn;
    call->up_req = up;
    call->up_error = 0;
    call->up_status = 0;
    call->up_t0 = sc_now();
    if (evhttp_make_request(conn, up, EVHTTP_REQ_POST, px->up.path) != 0) {
        /* libevent freed the request */
        call->up_req = NULL;
        call->up_conn = NULL;
        s_conn_put(px, conn);
        s_fail(call, 502, "upstream_unavailable", "cannot send to %s", px->up.hostport);
    }
}

void sc_proxy_start(sc_proxy_t *self, sc_call_t *call)
{
    call->px = self;
    s_attempt(call, call->d.model);
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
        s_conn_put(call->px, call->up_conn);
        call->up_conn = NULL;
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
    if (s_tried(call, d.model)) {
        s_fail(call, 402, "payment_required",
               "the upstream answered 402 Payment Required for the free fallback %s too", d.model);
        return;
    }
    /* Keep the original fallbacks; the attempt reports the free model. */
    snprintf(call->d.rule, sizeof call->d.rule, "%s", d.rule);
    snprintf(call->d.provider, sizeof call->d.provider, "%s", d.provider);
    snprintf(call->d.tier, sizeof call->d.tier, "%s", d.tier);
    call->d.cost_usd = d.cost_usd;
    s_attempt(call, d.model);
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
