/* upstream_stub.c - a fast OpenAI-compatible upstream stand-in (bench and tests).
 *
 * Plays the LLM provider behind hpp-sidecar (proxy mode), the Portkey gateway
 * and any other peer in bench/run.sh, so that every system is measured in
 * front of the same, cheap upstream. One libevent evhttp loop, bound to
 * 127.0.0.1 by default, port 0 = ephemeral; the chosen address is printed as
 * "upstream_stub: ready on 127.0.0.1:PORT" on stderr, the readiness line
 * scripts wait for (GET /healthz answers too).
 *
 * POST /v1/chat/completions answers a canned completion that echoes the model
 * it was asked for (body "model" and header X-Upstream-Model) and the
 * Authorization it received (X-Upstream-Authorization), so tests can assert
 * what a proxy forwarded; with "stream": true it answers SSE chunks and
 * "data: [DONE]". Flags make it answer an error status for every request, for
 * one model, or for the first N requests, and add latency. It does not build
 * a JSON tree: stub_json.h scans the top level once (see there why).
 * GET /stats reports counters and the last model/authorization seen.
 * Owns: its event base, the listener, per-request timers while delayed.
 */
#include "stub_json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#define STUB_MAX_MODEL_STATUS 16         /* --model-status entries */
#define STUB_MAX_BODY (8u * 1024 * 1024) /* bigger bodies get 413 */
#define STUB_MAX_CHUNKS 100000           /* --chunks upper bound */
#define STUB_MAX_DELAY_MS 600000         /* --delay-ms / --chunk-delay-ms upper bound */
#define STUB_LAST_LEN 256                /* bytes kept of the last model / authorization */

typedef struct {
    char model[STUB_LAST_LEN]; /* model as it appears in the body (raw JSON string bytes) */
    int status;                /* status to answer for it */
} stub_model_status_t;

typedef struct {
    const char *listen; /* HOST:PORT to bind */
    int status;         /* 0, or the status for every request */
    stub_model_status_t model_status[STUB_MAX_MODEL_STATUS]; /* per-model statuses */
    int nmodel_status;                                       /* used entries */
    long fail_first;                                         /* -1, or only the first N fail */
    long delay_ms;                                           /* added before answering */
    long chunks;                                             /* SSE content chunks per stream */
    long chunk_delay_ms;                                     /* pause between SSE chunks */
    const char *content;                                     /* completion text (JSON-safe) */
} stub_opts_t;

struct stub_pending;

typedef struct {
    struct event_base *base;        /* the one loop */
    struct evhttp *http;            /* the server */
    stub_opts_t opts;               /* parsed flags */
    uint64_t requests;              /* chat requests received */
    uint64_t errors_sent;           /* chat requests answered with a configured error */
    uint64_t streams;               /* chat requests answered as SSE */
    uint64_t bad;                   /* malformed requests (400/404/405/413) */
    uint64_t seq;                   /* completion id counter */
    char last_model[STUB_LAST_LEN]; /* last model asked for */
    char last_auth[STUB_LAST_LEN];  /* last Authorization header, "" if none */
    struct stub_pending *pending;   /* replies waiting on a timer, freed at exit */
} stub_t;

/* A reply waiting on a timer: delayed answer or a stream between chunks. */
typedef struct stub_pending {
    struct stub_pending *prev;  /* in stub->pending */
    struct stub_pending *next;  /* in stub->pending */
    stub_t *stub;               /* owner */
    struct evhttp_request *req; /* the request; evhttp frees it after the reply */
    struct event *timer;        /* pending timer */
    int status;                 /* 0 = answer normally */
    bool stream;                /* SSE answer */
    bool started;               /* reply headers already sent */
    long sent;                  /* chunks sent so far */
    char model[STUB_LAST_LEN];  /* model to echo (raw JSON string bytes) */
} stub_pending_t;

/* Command line -------------------------------------------------------- */

static int s_parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        return -1;
    }
    *out = x;
    return 0;
}

static int s_opt_listen(stub_opts_t *o, const char *v)
{
    o->listen = v;
    return strchr(v, ':') ? 0 : -1;
}

static int s_opt_status(stub_opts_t *o, const char *v)
{
    long x;
    if (s_parse_long(v, 100, 599, &x) != 0) {
        return -1;
    }
    o->status = (int)x;
    return 0;
}

static int s_opt_model_status(stub_opts_t *o, const char *v)
{
    const char *eq = strrchr(v, '=');
    long x;
    if (!eq || eq == v || (size_t)(eq - v) >= STUB_LAST_LEN ||
        o->nmodel_status >= STUB_MAX_MODEL_STATUS || s_parse_long(eq + 1, 100, 599, &x) != 0) {
        return -1;
    }
    stub_model_status_t *ms = &o->model_status[o->nmodel_status++];
    memcpy(ms->model, v, (size_t)(eq - v));
    ms->model[eq - v] = '\0';
    ms->status = (int)x;
    return 0;
}

static int s_opt_fail_first(stub_opts_t *o, const char *v)
{
    return s_parse_long(v, 0, LONG_MAX, &o->fail_first);
}

static int s_opt_delay(stub_opts_t *o, const char *v)
{
    return s_parse_long(v, 0, STUB_MAX_DELAY_MS, &o->delay_ms);
}

static int s_opt_chunks(stub_opts_t *o, const char *v)
{
    return s_parse_long(v, 1, STUB_MAX_CHUNKS, &o->chunks);
}

static int s_opt_chunk_delay(stub_opts_t *o, const char *v)
{
    return s_parse_long(v, 0, STUB_MAX_DELAY_MS, &o->chunk_delay_ms);
}

static int s_opt_content(stub_opts_t *o, const char *v)
{
    /* Copied verbatim into JSON: keep to characters that need no escaping. */
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') {
            return -1;
        }
    }
    o->content = v;
    return 0;
}

typedef struct {
    const char *name;                        /* flag */
    const char *arg;                         /* argument name */
    int (*set)(stub_opts_t *, const char *); /* parser; -1 = invalid value */
    const char *help;                        /* one line */
} stub_optdef_t;

static const stub_optdef_t s_optdefs[] = {
    {"--listen", "HOST:PORT", s_opt_listen, "address to bind (default 127.0.0.1:0, 0 = ephemeral)"},
    {"--status", "CODE", s_opt_status, "answer every chat request with this HTTP status"},
    {"--model-status", "MODEL=CODE", s_opt_model_status,
     "answer requests for MODEL with CODE (repeatable, up to 16)"},
    {"--fail-first", "N", s_opt_fail_first,
     "only the first N requests matching --status/--model-status fail, later ones succeed"},
    {"--delay-ms", "N", s_opt_delay, "wait N ms before answering (default 0)"},
    {"--chunks", "N", s_opt_chunks, "content chunks per SSE stream (default 3)"},
    {"--chunk-delay-ms", "N", s_opt_chunk_delay, "pause between SSE chunks (default 0)"},
    {"--content", "TEXT", s_opt_content, "completion text (default \"ok\")"},
    {NULL, NULL, NULL, NULL},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: upstream_stub [options]\n"
                 "OpenAI-compatible upstream stand-in: POST /v1/chat/completions, GET /stats,"
                 " GET /healthz.\n");
    for (const stub_optdef_t *d = s_optdefs; d->name; d++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "%s %s", d->name, d->arg);
        fprintf(out, "  %-28s %s\n", flag, d->help);
    }
    fprintf(out, "  %-28s %s\n", "--help", "this text");
}

/* Returns 0, 1 for --help, or 2 (message printed) on a bad flag. */
static int s_parse_args(int argc, char **argv, stub_opts_t *o)
{
    *o = (stub_opts_t){.listen = "127.0.0.1:0", .fail_first = -1, .chunks = 3, .content = "ok"};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
        const stub_optdef_t *d = s_optdefs;
        while (d->name && strcmp(d->name, argv[i]) != 0) {
            d++;
        }
        if (!d->name) {
            fprintf(stderr, "upstream_stub: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "upstream_stub: %s needs a value %s\n", d->name, d->arg);
            return 2;
        }
        if (d->set(o, argv[++i]) != 0) {
            fprintf(stderr, "upstream_stub: %s: invalid value '%s' (expected %s)\n", d->name,
                    argv[i], d->arg);
            return 2;
        }
    }
    return 0;
}

/* Replies -------------------------------------------------------------- */

static const char *s_error_type(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 405:
    case 413:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 402:
        return "insufficient_quota";
    case 429:
        return "rate_limit_exceeded";
    default:
        return "server_error";
    }
}

/* Answers an OpenAI-style error; `msg` must be JSON-safe (fixed strings). */
static void s_send_error(struct evhttp_request *req, int status, const char *msg)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add_printf(out, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"code\":%d}}\n", msg,
                        s_error_type(status), status);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, status, NULL, NULL);
}

/* Appends `s` as the inside of a JSON string. */
static void s_json_escape(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            evbuffer_add_printf(out, "\\%c", ch);
        } else if (ch < 0x20) {
            evbuffer_add_printf(out, "\\u%04x", ch);
        } else {
            evbuffer_add(out, s, 1);
        }
    }
}

static void s_send_completion(stub_t *stub, struct evhttp_request *req, const char *model)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evbuffer_add_printf(out,
                        "{\"id\":\"chatcmpl-stub-%" PRIu64 "\",\"object\":\"chat.completion\","
                        "\"created\":%lld,\"model\":\"%s\",\"choices\":[{\"index\":0,"
                        "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
                        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
                        "\"completion_tokens\":1,\"total_tokens\":2}}\n",
                        ++stub->seq, (long long)time(NULL), model, stub->opts.content);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void s_send_chunk(stub_t *stub, struct evhttp_request *req, const char *model, long i)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        return;
    }
    const char *role = i == 0 ? "\"role\":\"assistant\"," : "";
    evbuffer_add_printf(buf,
                        "data: {\"id\":\"chatcmpl-stub-%" PRIu64 "\",\"object\":"
                        "\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
                        "\"choices\":[{\"index\":0,\"delta\":{%s\"content\":\"%s\"},"
                        "\"finish_reason\":null}]}\n\n",
                        stub->seq, (long long)time(NULL), model, role, stub->opts.content);
    evhttp_send_reply_chunk(req, buf);
    evbuffer_free(buf);
}

static void s_send_stream_end(stub_t *stub, struct evhttp_request *req, const char *model)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf) {
        evbuffer_add_printf(buf,
                            "data: {\"id\":\"chatcmpl-stub-%" PRIu64 "\",\"object\":"
                            "\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
                            "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"
                            "\n\ndata: [DONE]\n\n",
                            stub->seq, (long long)time(NULL), model);
        evhttp_send_reply_chunk(req, buf);
        evbuffer_free(buf);
    }
    /* Frees the request even when the client went away meanwhile. */
    evhttp_send_reply_end(req);
}

static void s_stream_start(stub_t *stub, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    stub->seq++;
    stub->streams++;
    evhttp_send_reply_start(req, 200, "OK");
}

static void s_pending_free(stub_pending_t *p)
{
    if (p->prev) {
        p->prev->next = p->next;
    } else if (p->stub->pending == p) {
        p->stub->pending = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    }
    if (p->timer) {
        event_free(p->timer);
    }
    free(p);
}

/* Timer step of a delayed reply or of a paced stream. */
static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stub_pending_t *p = arg;
    stub_t *stub = p->stub;
    if (p->status != 0) {
        s_send_error(p->req, p->status, "upstream_stub: configured failure");
        s_pending_free(p);
        return;
    }
    if (!p->stream) {
        s_send_completion(stub, p->req, p->model);
        s_pending_free(p);
        return;
    }
    if (!p->started) {
        s_stream_start(stub, p->req);
        p->started = true;
    }
    if (p->sent < stub->opts.chunks) {
        s_send_chunk(stub, p->req, p->model, p->sent++);
        if (p->sent < stub->opts.chunks || stub->opts.chunk_delay_ms > 0) {
            struct timeval tv = {stub->opts.chunk_delay_ms / 1000,
                                 (stub->opts.chunk_delay_ms % 1000) * 1000};
            evtimer_add(p->timer, &tv);
            return;
        }
    }
    s_send_stream_end(stub, p->req, p->model);
    s_pending_free(p);
}

/* Status configured for this request, 0 when it should succeed. */
static int s_configured_status(stub_t *stub, const char *model)
{
    int status = stub->opts.status;
    for (int i = 0; i < stub->opts.nmodel_status; i++) {
        if (strcmp(stub->opts.model_status[i].model, model) == 0) {
            status = stub->opts.model_status[i].status;
        }
    }
    if (status != 0 && stub->opts.fail_first >= 0 &&
        stub->errors_sent >= (uint64_t)stub->opts.fail_first) {
        status = 0;
    }
    return status;
}

static void s_copy_bounded(char *dst, const char *src, size_t len)
{
    if (len >= STUB_LAST_LEN) {
        len = STUB_LAST_LEN - 1;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void s_handle_chat(stub_t *stub, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        stub->bad++;
        s_send_error(req, 405, "use POST");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (len > 0 && !body) {
        s_send_error(req, 500, "out of memory");
        return;
    }
    stub_json_req_t cr;
    int rc = stub_json_scan(body, len, &cr);
    if (rc != STUB_JSON_OK) {
        stub->bad++;
        s_send_error(req, 400,
                     rc == STUB_JSON_NO_MODEL ? "body has no \\\"model\\\" string"
                     : rc == STUB_JSON_DEPTH  ? "body nested too deep"
                                              : "body is not a JSON object");
        return;
    }
    stub->requests++;
    /* A model longer than STUB_LAST_LEN is truncated for the echo only. */
    char model[STUB_LAST_LEN];
    s_copy_bounded(model, cr.model, cr.model_len);
    /* Cut a truncated escape so the echoed JSON stays valid. */
    size_t mlen = strlen(model);
    size_t bs = 0;
    while (bs < mlen && model[mlen - 1 - bs] == '\\') {
        bs++;
    }
    if (bs % 2 == 1) {
        model[mlen - 1] = '\0';
    }
    memcpy(stub->last_model, model, sizeof(model));
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    s_copy_bounded(stub->last_auth, auth ? auth : "", auth ? strlen(auth) : 0);

    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "X-Upstream-Model", model);
    if (auth) {
        evhttp_add_header(h, "X-Upstream-Authorization", auth);
    }
    int status = s_configured_status(stub, model);
    if (status != 0) {
        stub->errors_sent++;
    }
    bool paced = stub->opts.delay_ms > 0 || (cr.stream && stub->opts.chunk_delay_ms > 0);
    if (!paced) {
        if (status != 0) {
            s_send_error(req, status, "upstream_stub: configured failure");
        } else if (!cr.stream) {
            s_send_completion(stub, req, model);
        } else {
            s_stream_start(stub, req);
            for (long i = 0; i < stub->opts.chunks; i++) {
                s_send_chunk(stub, req, model, i);
            }
            s_send_stream_end(stub, req, model);
        }
        return;
    }
    stub_pending_t *p = calloc(1, sizeof(*p));
    if (!p) {
        s_send_error(req, 500, "out of memory");
        return;
    }
    *p = (stub_pending_t){.stub = stub, .req = req, .status = status, .stream = cr.stream};
    memcpy(p->model, model, sizeof(model));
    p->next = stub->pending;
    if (p->next) {
        p->next->prev = p;
    }
    stub->pending = p;
    p->timer = evtimer_new(stub->base, s_on_timer, p);
    if (!p->timer) {
        s_pending_free(p);
        s_send_error(req, 500, "out of memory");
        return;
    }
    struct timeval tv = {stub->opts.delay_ms / 1000, (stub->opts.delay_ms % 1000) * 1000};
    evtimer_add(p->timer, &tv);
}

static void s_handle_stats(stub_t *stub, struct evhttp_request *req)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add_printf(out,
                        "{\"requests\":%" PRIu64 ",\"errors_sent\":%" PRIu64 ",\"streams\":%" PRIu64
                        ",\"bad\":%" PRIu64 ",\"last_model\":\"",
                        stub->requests, stub->errors_sent, stub->streams, stub->bad);
    /* last_model is already JSON-escaped text from a body. */
    evbuffer_add(out, stub->last_model, strlen(stub->last_model));
    evbuffer_add_printf(out, "\",\"last_authorization\":\"");
    s_json_escape(out, stub->last_auth);
    evbuffer_add_printf(out, "\"}\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void s_handle_health(stub_t *stub, struct evhttp_request *req)
{
    (void)stub;
    evbuffer_add_printf(evhttp_request_get_output_buffer(req), "ok\n");
    evhttp_send_reply(req, 200, "OK", NULL);
}

typedef struct {
    const char *path;                                  /* exact path */
    void (*handle)(stub_t *, struct evhttp_request *); /* handler */
} stub_route_t;

static const stub_route_t s_routes[] = {
    {"/v1/chat/completions", s_handle_chat},
    {"/chat/completions", s_handle_chat},
    {"/stats", s_handle_stats},
    {"/healthz", s_handle_health},
    {NULL, NULL},
};

static void s_on_request(struct evhttp_request *req, void *arg)
{
    stub_t *stub = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    for (const stub_route_t *r = s_routes; path && r->path; r++) {
        if (strcmp(r->path, path) == 0) {
            r->handle(stub, req);
            return;
        }
    }
    stub->bad++;
    s_send_error(req, 404, "no such path");
}

/* Startup ---------------------------------------------------------------- */

static void s_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

/* Binds opts.listen; prints the ready line. Returns 0 or -1 (message printed). */
static int s_bind(stub_t *stub)
{
    char host[128];
    const char *colon = strrchr(stub->opts.listen, ':');
    size_t hlen = (size_t)(colon - stub->opts.listen);
    long port;
    if (hlen == 0 || hlen >= sizeof(host) || s_parse_long(colon + 1, 0, 65535, &port) != 0) {
        fprintf(stderr, "upstream_stub: --listen: expected HOST:PORT, got '%s'\n",
                stub->opts.listen);
        return -1;
    }
    memcpy(host, stub->opts.listen, hlen);
    host[hlen] = '\0';
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(stub->http, host, (ev_uint16_t)port);
    if (!bs) {
        fprintf(stderr, "upstream_stub: cannot bind %s: %s\n", stub->opts.listen, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        fprintf(stderr, "upstream_stub: getsockname: %s\n", strerror(errno));
        return -1;
    }
    unsigned bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    fprintf(stderr, "upstream_stub: ready on %s:%u\n", host, bound);
    fflush(stderr);
    return 0;
}

int main(int argc, char **argv)
{
    stub_t stub = {0};
    int rc = s_parse_args(argc, argv, &stub.opts);
    if (rc == 1) {
        s_usage(stdout);
        return 0;
    }
    if (rc != 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event *sigint = NULL, *sigterm = NULL;
    int exit_code = 1;
    stub.base = event_base_new();
    stub.http = stub.base ? evhttp_new(stub.base) : NULL;
    if (!stub.http) {
        fprintf(stderr, "upstream_stub: cannot create the event loop\n");
        goto out;
    }
    evhttp_set_max_body_size(stub.http, STUB_MAX_BODY);
    evhttp_set_timeout(stub.http, 60);
    evhttp_set_allowed_methods(stub.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(stub.http, s_on_request, &stub);
    sigint = evsignal_new(stub.base, SIGINT, s_on_signal, stub.base);
    sigterm = evsignal_new(stub.base, SIGTERM, s_on_signal, stub.base);
    if (!sigint || !sigterm || evsignal_add(sigint, NULL) != 0 ||
        evsignal_add(sigterm, NULL) != 0) {
        fprintf(stderr, "upstream_stub: cannot install signal handlers\n");
        goto out;
    }
    if (s_bind(&stub) != 0) {
        exit_code = 2;
        goto out;
    }
    event_base_dispatch(stub.base);
    fprintf(stderr, "upstream_stub: stopping after %" PRIu64 " requests\n", stub.requests);
    exit_code = 0;
out:
    while (stub.pending) {
        /* Finish what is in flight so evhttp frees the requests with their connections. */
        stub_pending_t *p = stub.pending;
        if (p->started) {
            evhttp_send_reply_end(p->req);
        } else {
            s_send_error(p->req, 503, "upstream_stub: shutting down");
        }
        s_pending_free(p);
    }
    if (sigint) {
        event_free(sigint);
    }
    if (sigterm) {
        event_free(sigterm);
    }
    if (stub.http) {
        evhttp_free(stub.http);
    }
    if (stub.base) {
        event_base_free(stub.base);
    }
    return exit_code;
}
