/* sc_link.c - the DEALER connection to hpp-engine, two ways (sc_link.h).
 *
 * ZMTP: a non-blocking TCP socket owned by the loop. States:
 *   DOWN --timer--> CONNECTING --writable--> HANDSHAKE --READY--> UP
 *     ^                  |                        |               |
 *     +---- s_down: error, EOF, handshake deadline, peer ERROR ---+
 * A send is copied into `batch`, and every frame one turn of the loop
 * produces (a turn reads many clients' requests when many are busy) is
 * written with one system call at the end of that turn (`flush`, an event
 * activated by the first frame: it runs after the callbacks already due in
 * this turn, before the loop waits again). So a lone request costs one
 * write and no added wait, and N requests read in one turn cost one write,
 * not N. Only what the kernel does not take waits in `wq` for the socket to
 * become writable; frames too large for the batch are written at once
 * after it. A failed write
 * never closes the socket under a caller: it shuts the socket down, and the
 * read event that this raises closes it from the loop.
 *
 * libzmq: the DEALER of earlier versions, kept for endpoints that are not
 * tcp:// or ipc://, for CURVE, and as the reference the ZMTP link is benchmarked
 * against. Its state comes from a socket monitor (handshake succeeded,
 * disconnected, handshake failed) read on the loop like the socket itself;
 * ZMTP heartbeats make a peer that stops answering (a host gone, not just
 * a process: that closes the TCP connection at once) a disconnection
 * within S_HB_TIMEOUT_MS. ZMQ_FD
 * signals edge-triggered: it becomes readable when ZMQ_EVENTS may have
 * changed, not while messages are waiting. So the socket is drained (recv
 * until ZMQ_EVENTS lacks POLLIN) on every wakeup, and after every send
 * ZMQ_EVENTS is re-read: a send can consume the edge of a reply that
 * already arrived, and if POLLIN is then set the read event is activated
 * by hand so the drain runs from the loop, never nested inside a callback.
 */
#define _GNU_SOURCE
#include "sc_link.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "eng_common.h"
#include "proto.h"
#include "proto_zmtp.h"
#include "sc_local.h"

#define S_RETRY_MIN_MS 100    /* first reconnect delay, as libzmq's ZMQ_RECONNECT_IVL */
#define S_RETRY_MAX_MS 1000   /* longest reconnect delay */
#define S_HANDSHAKE_MS 2000   /* connect + greeting + READY must finish within this */
#define S_RBUF_INITIAL 65536  /* read buffer; grows to the largest frame once */
#define S_WQ_MAX (64u << 20)  /* bytes queued for a slow engine before sends fail */
#define S_ZMQ_HWM (16384 * 2) /* libzmq queue limits, twice the calls in flight */
#define S_HB_IVL_MS 1000      /* libzmq: a ZMTP PING after this long without traffic */
#define S_HB_TIMEOUT_MS 3000  /* ... and the connection is given up without an answer */
#define S_BATCH_MAX 65536     /* frames of one loop turn written together, bytes at most */

enum { S_DOWN, S_CONNECTING, S_HANDSHAKE, S_UP, S_BROKEN };

struct sc_link {
    sc_link_kind_t kind;       /* ZMTP, LIBZMQ or LOCAL */
    sc_local_t *local;         /* LOCAL: the engine in this process */
    struct event_base *base;   /* the loop */
    sc_link_cb cb;             /* a message arrived */
    sc_link_state_cb on_state; /* the connection came up or went, may be NULL */
    void *arg;                 /* their argument */
    char endpoint[256];        /* for log lines */

    /* libzmq */
    void *ctx;            /* context */
    void *sock;           /* DEALER */
    struct event *ev;     /* ZMQ_FD readable */
    bool draining;        /* inside s_zmq_drain: do not nest */
    void *mon;            /* PAIR reading the DEALER's monitor events */
    struct event *mon_ev; /* its ZMQ_FD readable */
    bool up;              /* a handshake succeeded and no disconnect since */

    /* ZMTP */
    struct sockaddr_storage addr; /* resolved once, at start */
    socklen_t addrlen;            /* its length */
    int fd;                       /* -1 while DOWN */
    int state;                    /* S_DOWN ... */
    struct event *rev, *wev;      /* readable / writable, per connection */
    struct event *timer;          /* reconnect delay and handshake deadline */
    int retry_ms;                 /* next reconnect delay */
    struct evbuffer *wq;          /* bytes the kernel has not taken yet */
    uint8_t *batch;               /* whole frames sent this turn, not written yet */
    size_t blen;                  /* bytes in it */
    struct event *flush;          /* writes the batch at the end of the turn */
    uint64_t writes;              /* system calls that wrote to the socket */
    uint8_t *rbuf;                /* bytes read, not yet parsed */
    size_t rcap, rlen;            /* its size and fill */
    proto_zmtp_t z;               /* framing state of this connection */
    bool ever_up;                 /* a connection has been up once */
    bool logged_down;             /* this outage has been logged */
    char why[192];                /* why a broken connection broke */
};

/* Names ------------------------------------------------------------------ */

static const char *const s_kind_names[] = {"auto", "zmtp", "libzmq", "local"};

int sc_link_kind_parse(const char *s, sc_link_kind_t *out)
{
    for (int k = SC_LINK_AUTO; k <= SC_LINK_LIBZMQ; k++) {
        if (strcmp(s, s_kind_names[k]) == 0) {
            *out = (sc_link_kind_t)k;
            return 0;
        }
    }
    return -1;
}

const char *sc_link_kind_name(sc_link_kind_t kind)
{
    return (unsigned)kind <= SC_LINK_LOCAL ? s_kind_names[kind] : "?";
}

sc_link_kind_t sc_link_kind(const sc_link_t *self)
{
    return self->kind;
}

bool sc_link_up(const sc_link_t *self)
{
    return self->kind == SC_LINK_LOCAL    ? true
           : self->kind == SC_LINK_LIBZMQ ? self->up
                                          : self->state == S_UP;
}

/* libzmq ------------------------------------------------------------------- */

static void s_zmq_drain(sc_link_t *self)
{
    if (self->draining) {
        return; /* the outer drain re-reads ZMQ_EVENTS before it stops */
    }
    self->draining = true;
    for (;;) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &sz) != 0 || !(events & ZMQ_POLLIN)) {
            break;
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        /* We send bare bodies, so replies are one frame; anything else is
         * read to its end and only its last frame considered. */
        while (zmq_msg_more(&msg)) {
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
                break;
            }
        }
        self->cb(self->arg, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    self->draining = false;
}

static void s_zmq_on_fd(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_zmq_drain(arg);
}

static int s_zmq_send(sc_link_t *self, const void *buf, size_t len)
{
    int rc = zmq_send(self->sock, buf, len, ZMQ_DONTWAIT);
    /* After a send the edge may be gone: when a message is waiting, make
     * the loop run the drain. */
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &sz) == 0 && (events & ZMQ_POLLIN)) {
        event_active(self->ev, EV_READ, 0);
    }
    return rc < 0 ? -1 : 0;
}

/* Logs the up/down transitions the way the ZMTP link does: an outage once,
 * when it starts (warn), and the reconnection (info). */
static void s_log_up(sc_link_t *self)
{
    eng_log(self->ever_up || self->logged_down ? ENG_LOG_INFO : ENG_LOG_DEBUG, "sidecar",
            "engine %s: connected", self->endpoint);
    self->ever_up = true;
    self->logged_down = false;
}

static void s_log_down(sc_link_t *self, bool was_up, const char *why)
{
    if (was_up || !self->logged_down) {
        eng_log(ENG_LOG_WARN, "sidecar", "engine %s: %s; reconnecting", self->endpoint, why);
        self->logged_down = true;
    } else {
        eng_log(ENG_LOG_DEBUG, "sidecar", "engine %s: %s", self->endpoint, why);
    }
}

/* One monitor event: [u16 event, u32 value] then the endpoint frame. */
static void s_mon_event(sc_link_t *self, uint16_t event, uint32_t value)
{
    char why[160];
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        if (!self->up) {
            self->up = true;
            s_log_up(self);
            if (self->on_state) {
                self->on_state(self->arg, true);
            }
        }
        return;
    case ZMQ_EVENT_DISCONNECTED:
        if (self->up) {
            self->up = false;
            s_log_down(self, true, "the connection was lost");
            if (self->on_state) {
                self->on_state(self->arg, false);
            }
        }
        return;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        snprintf(why, sizeof why,
                 "the engine refused us (status %u): is our public key in its --curve-clients?",
                 (unsigned)value);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        snprintf(why, sizeof why,
                 "handshake failed (protocol error 0x%x: with CURVE, a wrong server key or a "
                 "mechanism that does not match the engine's)",
                 (unsigned)value);
        break;
    default:
        snprintf(why, sizeof why, "handshake failed (%s)", zmq_strerror((int)value));
        break;
    }
    s_log_down(self, false, why);
}

/* Reads every waiting monitor event (ZMQ_FD is edge-triggered). */
static void s_mon_on_fd(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_link_t *self = arg;
    for (;;) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(self->mon, ZMQ_EVENTS, &events, &sz) != 0 || !(events & ZMQ_POLLIN)) {
            break;
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        bool ok = zmq_msg_size(&msg) == 6;
        if (ok) {
            memcpy(&event, zmq_msg_data(&msg), 2);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&msg) + 2, 4);
        }
        while (zmq_msg_more(&msg)) { /* the endpoint frame: we know it */
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, self->mon, ZMQ_DONTWAIT) < 0) {
                break;
            }
        }
        zmq_msg_close(&msg);
        if (ok) {
            s_mon_event(self, event, value);
        }
    }
}

/* Watches a libzmq socket's ZMQ_FD on the loop. */
static struct event *s_zmq_watch(sc_link_t *self, void *sock, event_callback_fn fn)
{
    int fd = -1;
    size_t fdsz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &fdsz) != 0) {
        return NULL;
    }
    struct event *ev = event_new(self->base, fd, EV_READ | EV_PERSIST, fn, self);
    if (ev && event_add(ev, NULL) != 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}

static int s_zmq_curve(sc_link_t *self, const sc_link_curve_t *c, char *errbuf, size_t errlen)
{
    return hpp_curve_client_apply(c, self->sock, errbuf, errlen);
}

static int s_zmq_open(sc_link_t *self, const char *endpoint, const sc_link_curve_t *curve,
                      char *errbuf, size_t errlen)
{
    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_DEALER) : NULL;
    self->mon = self->ctx ? zmq_socket(self->ctx, ZMQ_PAIR) : NULL;
    if (!self->sock || !self->mon) {
        snprintf(errbuf, errlen, "zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    int zero = 0, one = 1, hwm = S_ZMQ_HWM, ivl = S_RETRY_MIN_MS, ivlmax = S_RETRY_MAX_MS;
    int hb = S_HB_IVL_MS, hbt = S_HB_TIMEOUT_MS;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->mon, ZMQ_LINGER, &zero, sizeof zero);
    /* Fail a send at once while no engine is connected (503/fail-open now,
     * not after the deadline), and never queue for a dead peer. */
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL_MAX, &ivlmax, sizeof ivlmax);
    /* A silent peer (host gone, cable cut) is a disconnection, and the
     * engine drops us after the same time if we vanish (TTL). */
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TTL, &hbt, sizeof hbt);
    if (curve && s_zmq_curve(self, curve, errbuf, errlen) != 0) {
        return -1;
    }
    /* The monitor is connected before the DEALER is, so that its first
     * handshake is seen. */
    char mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://hpp-sidecar-link-%p", (void *)self);
    if (zmq_socket_monitor(self->sock, mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
        zmq_connect(self->mon, mon_ep) != 0) {
        snprintf(errbuf, errlen, "zmq_socket_monitor: %s", zmq_strerror(errno));
        return -1;
    }
    if (zmq_connect(self->sock, endpoint) != 0) {
        snprintf(errbuf, errlen, "cannot connect to engine endpoint '%s': %s", endpoint,
                 zmq_strerror(errno));
        return -1;
    }
    self->ev = s_zmq_watch(self, self->sock, s_zmq_on_fd);
    self->mon_ev = s_zmq_watch(self, self->mon, s_mon_on_fd);
    if (!self->ev || !self->mon_ev) {
        snprintf(errbuf, errlen, "cannot watch the engine socket");
        return -1;
    }
    /* Events that came before the watch began raised no edge. */
    event_active(self->mon_ev, EV_READ, 0);
    return 0;
}

/* ZMTP: connection lifecycle ---------------------------------------------- */

static void s_connect(sc_link_t *self);

static void s_close_fd(sc_link_t *self)
{
    if (self->rev) {
        event_free(self->rev);
        self->rev = NULL;
    }
    if (self->wev) {
        event_free(self->wev);
        self->wev = NULL;
    }
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
    evbuffer_drain(self->wq, evbuffer_get_length(self->wq));
    self->blen = 0; /* lost with the connection, as what waits in wq */
    self->rlen = 0;
}

/* Closes the connection and schedules the next attempt. An outage is
 * logged once, when it starts; the attempts during it only at debug. */
static void s_down(sc_link_t *self, const char *why)
{
    bool was_up = self->state == S_UP || self->state == S_BROKEN;
    s_close_fd(self);
    self->state = S_DOWN;
    s_log_down(self, was_up, why);
    struct timeval tv = {self->retry_ms / 1000, (self->retry_ms % 1000) * 1000};
    evtimer_add(self->timer, &tv);
    self->retry_ms = self->retry_ms * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : self->retry_ms * 2;
    /* Last: the callback may send on other links, never on this one. */
    if (was_up && self->on_state) {
        self->on_state(self->arg, false);
    }
}

/* A write failed: stop sending and let the loop close the socket (the
 * caller may be inside a read callback that still walks the buffer). */
static void s_break(sc_link_t *self, const char *why)
{
    if (self->state == S_BROKEN) {
        return;
    }
    snprintf(self->why, sizeof self->why, "%s", why);
    self->state = S_BROKEN;
    shutdown(self->fd, SHUT_RDWR);
    if (self->rev) {
        event_active(self->rev, EV_READ, 0);
    }
}

/* Writes what is queued; returns -1 when the connection broke. */
static int s_flush(sc_link_t *self)
{
    while (evbuffer_get_length(self->wq) > 0) {
        struct evbuffer_iovec v[16];
        struct iovec iov[16];
        int n = evbuffer_peek(self->wq, -1, NULL, v, 16);
        n = n > 16 ? 16 : n;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(self->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        self->writes++;
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                break;
            }
            s_break(self, strerror(errno));
            return -1;
        }
        evbuffer_drain(self->wq, (size_t)w);
    }
    if (evbuffer_get_length(self->wq) == 0) {
        event_del(self->wev);
    } else {
        event_add(self->wev, NULL);
    }
    return 0;
}

static int s_write(sc_link_t *self, const void *head, size_t hlen, const void *body, size_t blen);

/* Writes the frames batched in this turn (before any other write, which
 * would otherwise pass them). Returns 0, or -1 when the connection broke. */
static int s_batch_out(sc_link_t *self)
{
    size_t n = self->blen;
    if (n == 0) {
        return 0;
    }
    self->blen = 0; /* s_write copies what the kernel does not take */
    return s_write(self, self->batch, n, NULL, 0);
}

static void s_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_link_t *self = arg;
    if (self->state == S_UP) {
        s_batch_out(self);
    } else {
        self->blen = 0;
    }
}

/* Writes head + body now if nothing waits before them, else queues them. */
static int s_write(sc_link_t *self, const void *head, size_t hlen, const void *body, size_t blen)
{
    if (s_batch_out(self) != 0 || evbuffer_get_length(self->wq) + hlen + blen > S_WQ_MAX) {
        return -1;
    }
    size_t done = 0;
    if (evbuffer_get_length(self->wq) == 0) {
        struct iovec iov[2] = {{(void *)head, hlen}, {(void *)body, blen}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = blen ? 2 : 1};
        ssize_t w = sendmsg(self->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        self->writes++;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            s_break(self, strerror(errno));
            return -1;
        }
        done = w < 0 ? 0 : (size_t)w;
        if (done == hlen + blen) {
            return 0;
        }
    }
    /* The kernel took `done` bytes; the rest waits, in order. A frame cut
     * short by a failed queue would corrupt the stream, so that breaks it. */
    int rc = 0;
    if (done < hlen) {
        rc = evbuffer_add(self->wq, (const uint8_t *)head + done, hlen - done);
        done = hlen;
    }
    if (rc == 0 && blen > done - hlen) {
        rc = evbuffer_add(self->wq, (const uint8_t *)body + (done - hlen), blen - (done - hlen));
    }
    if (rc != 0) {
        s_break(self, "out of memory for the send queue");
        return -1;
    }
    event_add(self->wev, NULL);
    return 0;
}

/* Acts on one parsed unit. */
static void s_on_event(sc_link_t *self, const proto_zmtp_ev_t *ev)
{
    switch (ev->kind) {
    case PROTO_ZMTP_EV_READY:
        self->state = S_UP;
        self->retry_ms = S_RETRY_MIN_MS;
        evtimer_del(self->timer);
        s_log_up(self);
        if (self->on_state) {
            self->on_state(self->arg, true);
        }
        break;
    case PROTO_ZMTP_EV_FRAME:
        /* Only a message's last frame is its body: we send bare bodies, so
         * the engine's replies have one frame, and anything longer is read
         * to its end as libzmq's DEALER would. */
        if (!ev->more) {
            self->cb(self->arg, ev->data, ev->len);
        }
        break;
    case PROTO_ZMTP_EV_PING: {
        uint8_t pong[PROTO_ZMTP_PONG_MAX];
        size_t n = proto_zmtp_pong(pong, ev);
        if (self->state == S_UP) {
            s_write(self, pong, n, NULL, 0);
        }
        break;
    }
    default:
        break;
    }
}

/* Parses and acts on what is buffered, until a unit is incomplete. Leaves
 * the state DOWN when the stream is bad, BROKEN when a write failed. */
static void s_parse(sc_link_t *self)
{
    size_t pos = 0;
    while (self->state != S_BROKEN) {
        proto_zmtp_ev_t ev;
        long n = proto_zmtp_read(&self->z, self->rbuf + pos, self->rlen - pos, &ev);
        if (n < 0) {
            s_down(self, ev.msg);
            return;
        }
        if (n == 0) {
            if (ev.need > self->rcap) {
                /* A frame larger than any before: grow once, keep reading. */
                uint8_t *grown = realloc(self->rbuf, ev.need);
                if (!grown) {
                    s_down(self, "out of memory for a large reply");
                    return;
                }
                self->rbuf = grown;
                self->rcap = ev.need;
            }
            break;
        }
        pos += (size_t)n;
        s_on_event(self, &ev);
    }
    memmove(self->rbuf, self->rbuf + pos, self->rlen - pos);
    self->rlen -= pos;
}

static void s_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sc_link_t *self = arg;
    if (self->state == S_BROKEN) {
        s_down(self, self->why);
        return;
    }
    ssize_t n = read(fd, self->rbuf + self->rlen, self->rcap - self->rlen);
    if (n == 0) {
        s_down(self, "the engine closed the connection");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            s_down(self, strerror(errno));
        }
        return;
    }
    self->rlen += (size_t)n;
    s_parse(self);
    if (self->state == S_BROKEN) {
        s_down(self, self->why);
    }
}

static void s_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sc_link_t *self = arg;
    if (self->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err) {
            s_down(self, strerror(err));
            return;
        }
        self->state = S_HANDSHAKE;
        uint8_t hello[PROTO_ZMTP_HELLO_MAX];
        size_t hl = proto_zmtp_hello(hello, sizeof hello);
        event_add(self->rev, NULL);
        if (s_write(self, hello, hl, NULL, 0) != 0) {
            return; /* broke: the read event closes it */
        }
        if (evbuffer_get_length(self->wq) == 0) {
            event_del(self->wev);
        }
        return;
    }
    s_flush(self);
}

static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_link_t *self = arg;
    if (self->state == S_DOWN) {
        s_connect(self);
    } else if (self->state == S_CONNECTING || self->state == S_HANDSHAKE) {
        s_down(self, "no ZMTP handshake within 2 s");
    }
}

static void s_connect(sc_link_t *self)
{
    int fd = socket(self->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        s_down(self, strerror(errno));
        return;
    }
    int one = 1;
    if (self->addr.ss_family != AF_UNIX) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    self->fd = fd;
    self->rev = event_new(self->base, fd, EV_READ | EV_PERSIST, s_on_read, self);
    self->wev = event_new(self->base, fd, EV_WRITE | EV_PERSIST, s_on_write, self);
    if (!self->rev || !self->wev) {
        s_down(self, "out of memory");
        return;
    }
    proto_zmtp_init(&self->z, PROTO_MAX_HARD_FRAME);
    if (connect(fd, (struct sockaddr *)&self->addr, self->addrlen) != 0 && errno != EINPROGRESS) {
        s_down(self, strerror(errno));
        return;
    }
    self->state = S_CONNECTING;
    event_add(self->wev, NULL);
    struct timeval tv = {S_HANDSHAKE_MS / 1000, (S_HANDSHAKE_MS % 1000) * 1000};
    evtimer_add(self->timer, &tv);
}

/* ipc://PATH: a unix socket (hpp-engine --direct ipc://PATH). */
static int s_resolve_ipc(sc_link_t *self, const char *endpoint, char *errbuf, size_t errlen)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&self->addr;
    const char *path = endpoint + 6;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof un->sun_path) {
        snprintf(errbuf, errlen, "engine endpoint '%s': the socket path must be 1-%zu bytes",
                 endpoint, sizeof un->sun_path - 1);
        return -1;
    }
    memcpy(un->sun_path, path, strlen(path));
    self->addrlen = sizeof *un;
    return 0;
}

/* Splits tcp://HOST:PORT (HOST may be [v6]) and resolves it once; or
 * takes ipc://PATH. */
static int s_resolve(sc_link_t *self, const char *endpoint, char *errbuf, size_t errlen)
{
    if (strncmp(endpoint, "ipc://", 6) == 0) {
        return s_resolve_ipc(self, endpoint, errbuf, errlen);
    }
    const char *hp = endpoint + 6;
    const char *colon = strrchr(hp, ':');
    char host[256];
    if (strncmp(endpoint, "tcp://", 6) != 0 || !colon || colon == hp ||
        (size_t)(colon - hp) >= sizeof host) {
        snprintf(errbuf, errlen, "engine endpoint '%s': expected tcp://HOST:PORT or ipc://PATH",
                 endpoint);
        return -1;
    }
    const char *port = colon + 1;
    char *end = NULL;
    long pn = strtol(port, &end, 10);
    if (!*port || *end || pn < 1 || pn > 65535) {
        snprintf(errbuf, errlen, "engine endpoint '%s': port must be 1-65535", endpoint);
        return -1;
    }
    size_t hl = (size_t)(colon - hp);
    if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {
        hp++;
        hl -= 2;
    }
    memcpy(host, hp, hl);
    host[hl] = '\0';
    if (strchr(host, ';') || strcmp(host, "*") == 0) {
        snprintf(errbuf, errlen,
                 "engine endpoint '%s': the zmtp link connects to one host (no source "
                 "address, no wildcard); use --engine-link libzmq",
                 endpoint);
        return -1;
    }
    /* IPv4 first, as libzmq does without ZMQ_IPV6: "localhost" must reach
     * an engine bound to 127.0.0.1 even where it resolves to ::1 first. */
    struct addrinfo hints = {
        .ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host, port, &hints, &res);
    }
    if (rc != 0 || !res) {
        snprintf(errbuf, errlen, "engine endpoint '%s': cannot resolve '%s': %s", endpoint, host,
                 rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(&self->addr, res->ai_addr, res->ai_addrlen);
    self->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int s_zmtp_open(sc_link_t *self, const char *endpoint, char *errbuf, size_t errlen)
{
    if (s_resolve(self, endpoint, errbuf, errlen) != 0) {
        return -1;
    }
    self->wq = evbuffer_new();
    self->rbuf = malloc(S_RBUF_INITIAL);
    self->rcap = S_RBUF_INITIAL;
    self->batch = malloc(S_BATCH_MAX);
    self->timer = evtimer_new(self->base, s_on_timer, self);
    self->flush = event_new(self->base, -1, 0, s_on_flush, self);
    if (!self->wq || !self->rbuf || !self->batch || !self->timer || !self->flush) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    self->retry_ms = S_RETRY_MIN_MS;
    s_connect(self);
    return 0;
}

/* Public ------------------------------------------------------------------- */

sc_link_t *sc_link_new(struct event_base *base, const sc_link_config_t *cfg, char *errbuf,
                       size_t errlen)
{
    const char *endpoint = cfg->endpoint;
    sc_link_kind_t kind = cfg->kind;
    if (kind == SC_LINK_ZMTP && cfg->curve) {
        snprintf(errbuf, errlen,
                 "engine %s: the zmtp link speaks only the NULL mechanism; CURVE needs the "
                 "libzmq link",
                 endpoint);
        return NULL;
    }
    sc_link_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->base = base;
    self->cb = cfg->on_message;
    self->on_state = cfg->on_state;
    self->arg = cfg->arg;
    self->fd = -1;
    self->state = S_DOWN;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    if (kind == SC_LINK_AUTO) {
        bool own = strncmp(endpoint, "tcp://", 6) == 0 || strncmp(endpoint, "ipc://", 6) == 0;
        kind = !cfg->curve && own ? SC_LINK_ZMTP : SC_LINK_LIBZMQ;
    }
    self->kind = kind;
    int rc = 0;
    if (kind == SC_LINK_LOCAL) {
        self->local = sc_local_new(base, cfg->local, cfg->reader, cfg->on_message, cfg->on_state,
                                   cfg->arg, errbuf, errlen);
        rc = self->local ? 0 : -1;
    } else {
        rc = kind == SC_LINK_ZMTP ? s_zmtp_open(self, endpoint, errbuf, errlen)
                                  : s_zmq_open(self, endpoint, cfg->curve, errbuf, errlen);
    }
    if (rc != 0) {
        sc_link_destroy(&self);
    }
    return self;
}

void sc_link_destroy(sc_link_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_link_t *self = *self_p;
    sc_local_destroy(&self->local);
    if (self->ev) {
        event_free(self->ev);
    }
    if (self->mon_ev) {
        event_free(self->mon_ev);
    }
    if (self->sock) {
        zmq_socket_monitor(self->sock, NULL, 0);
        zmq_close(self->sock);
    }
    if (self->mon) {
        zmq_close(self->mon);
    }
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    if (self->wq) {
        s_close_fd(self);
        evbuffer_free(self->wq);
    }
    if (self->timer) {
        event_free(self->timer);
    }
    if (self->flush) {
        event_free(self->flush);
    }
    free(self->batch);
    free(self->rbuf);
    free(self);
    *self_p = NULL;
}

int sc_link_send(sc_link_t *self, const void *buf, size_t len)
{
    if (self->kind == SC_LINK_LOCAL) {
        return sc_local_send(self->local, buf, len);
    }
    if (self->kind == SC_LINK_LIBZMQ) {
        return s_zmq_send(self, buf, len);
    }
    if (self->state != S_UP) {
        return -1;
    }
    uint8_t head[PROTO_ZMTP_HEAD_MAX];
    size_t hl = proto_zmtp_frame_head(head, len, false);
    /* Into this turn's batch when nothing waits for the socket already (a
     * full kernel buffer: then the frame joins the queue behind it). */
    if (evbuffer_get_length(self->wq) == 0 && hl + len <= S_BATCH_MAX - self->blen) {
        if (self->blen == 0) {
            event_active(self->flush, EV_TIMEOUT, 0);
        }
        memcpy(self->batch + self->blen, head, hl);
        memcpy(self->batch + self->blen + hl, buf, len);
        self->blen += hl + len;
        return 0;
    }
    return s_write(self, head, hl, buf, len);
}

uint64_t sc_link_writes(const sc_link_t *self)
{
    return self->writes;
}
