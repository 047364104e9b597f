/* eng_direct.c - the direct listener (eng_direct.h).
 *
 * One epoll set holds the listening socket, a timerfd for the handshake
 * deadline and every connection; the caller polls that set's descriptor
 * with its own. Connections live in a fixed table of ENG_DIRECT_CONNS
 * slots; a handle is slot | generation << 32, and a slot's generation moves
 * on when it closes. Epoll is level-triggered: one read per ready
 * connection per poll, so a busy client cannot starve the others, and what
 * it left unread is reported again on the next poll.
 *
 * Bytes per connection: a read buffer (S_RBUF to start, grown once to the
 * largest frame) and a write buffer of the replies not yet taken by the
 * kernel. Replies queued during a poll are written at its end, so the
 * answers to every request one read brought in go out in one write.
 */
#define _GNU_SOURCE
#include "eng_direct.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto_zmtp.h"

#define S_RBUF 16384           /* read buffer of a connection, grown for a larger frame */
#define S_READ 4096            /* bytes read at once, unless a frame needs more */
#define S_WBUF_KEEP (1u << 18) /* a write buffer larger than this is freed once empty */
#define S_EVENTS 64            /* epoll events per poll */
#define S_ACCEPTS 64           /* connections accepted per poll */
#define S_TAG_LISTEN 0         /* epoll data of the listener ... */
#define S_TAG_TIMER 1          /* ... of the timerfd; a connection's is slot + 2 */
#define S_TAG_CONN 2

typedef struct {
    int fd;            /* -1: the slot is free */
    uint32_t gen;      /* generation of the slot's current connection */
    bool ready;        /* the handshake is done */
    bool broken;       /* to be closed at the end of this poll */
    bool dirty;        /* bytes queued since the last flush */
    uint32_t interest; /* epoll events asked for */
    int64_t opened_ms; /* for the handshake deadline */
    proto_zmtp_t z;    /* the stream's reader */
    uint8_t *rbuf;     /* bytes read, not yet parsed */
    size_t rlen, rcap; /* ... used, allocated */
    uint8_t *wbuf;     /* reply bytes not yet written */
    size_t woff, wlen; /* ... written up to, queued up to */
    size_t wcap;       /* ... allocated */
    size_t need;       /* bytes the frame being read needs in all, 0 = unknown */
    uint32_t frames;   /* frames of the message being read */
    bool delim;        /* its first frame was empty */
} s_conn_t;

struct eng_direct {
    int ep;                    /* epoll set */
    int lfd;                   /* listening socket, -1 once stopped */
    int tfd;                   /* timerfd: the handshake deadline */
    bool stopped;              /* eng_direct_stop was called */
    size_t max_frame;          /* largest frame read */
    size_t out_max;            /* unwritten bytes at which reading stops */
    size_t total_max;          /* the same for all connections together */
    size_t total;              /* unwritten bytes of all connections */
    _Atomic size_t total_seen; /* total at the end of the last flush, for other threads */
    bool accept_paused;        /* out of descriptors: the listener rests until a tick */
    bool timer_on;             /* the timerfd ticks */
    ino_t inode;               /* of the ipc socket file we made */
    char endpoint[128];        /* as bound */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* ipc socket file, "" = tcp */
    unsigned open;                                          /* connections open */
    unsigned handshaking;                                   /* ... of them before READY */
    int64_t full_said;                /* last "table full" log line (mono ms) */
    uint32_t dirty[ENG_DIRECT_CONNS]; /* slots with queued bytes */
    unsigned ndirty;
    s_conn_t conns[ENG_DIRECT_CONNS];
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t s_pending(const s_conn_t *c)
{
    return c->wlen - c->woff;
}

/* Asks epoll for what the connection needs now: input unless it is closing,
 * stopped, or has replies unwritten while they are out_max bytes or all
 * connections' are total_max (a connection with none still reads: it is not
 * the one holding the memory); output while bytes wait. */
static void s_interest(eng_direct_t *self, s_conn_t *c, uint32_t slot)
{
    uint32_t want = 0;
    size_t pending = s_pending(c);
    if (!self->stopped && !c->broken && pending < self->out_max &&
        (pending == 0 || self->total < self->total_max)) {
        want |= EPOLLIN;
    }
    if (s_pending(c) > 0) {
        want |= EPOLLOUT;
    }
    if (want != c->interest) {
        struct epoll_event ev = {.events = want, .data.u64 = S_TAG_CONN + slot};
        epoll_ctl(self->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->interest = want;
    }
}

static void s_close(eng_direct_t *self, s_conn_t *c)
{
    if (c->fd < 0) {
        return;
    }
    epoll_ctl(self->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    self->total -= s_pending(c);
    if (!c->ready) {
        self->handshaking--;
    }
    free(c->rbuf);
    free(c->wbuf);
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->gen = gen;
    self->open--;
}

/* Appends bytes to the connection's write buffer; false when out of memory. */
static bool s_append(eng_direct_t *self, s_conn_t *c, const void *a, size_t alen, const void *b,
                     size_t blen)
{
    size_t need = c->wlen + alen + blen;
    if (need > c->wcap) {
        if (c->woff > 0) { /* reuse the written front first */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
            need = c->wlen + alen + blen;
        }
        if (need > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 4096;
            while (cap < need) {
                cap *= 2;
            }
            uint8_t *grown = realloc(c->wbuf, cap);
            if (!grown) {
                return false;
            }
            c->wbuf = grown;
            c->wcap = cap;
        }
    }
    memcpy(c->wbuf + c->wlen, a, alen);
    if (blen) {
        memcpy(c->wbuf + c->wlen + alen, b, blen);
    }
    c->wlen += alen + blen;
    self->total += alen + blen;
    return true;
}

/* Lists a connection for the next flush. Only the flush closes a
 * connection and clears the flag, so a slot is listed at most once and the
 * list never outgrows the table. */
static void s_mark(eng_direct_t *self, s_conn_t *c, uint32_t slot)
{
    if (!c->dirty) {
        c->dirty = true;
        self->dirty[self->ndirty++] = slot;
    }
}

/* Writes what the kernel takes now. A write error breaks the connection. */
static void s_write(eng_direct_t *self, s_conn_t *c, uint32_t slot)
{
    while (s_pending(c) > 0) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, s_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            self->total -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        c->broken = true; /* EPIPE, ECONNRESET: the client left */
        self->total -= s_pending(c);
        c->woff = c->wlen;
        break;
    }
    if (s_pending(c) == 0) {
        c->woff = c->wlen = 0;
        if (c->wcap > S_WBUF_KEEP) {
            free(c->wbuf); /* a burst is over: give its memory back */
            c->wbuf = NULL;
            c->wcap = 0;
        }
    }
    s_interest(self, c, slot);
}

/* Endpoints ----------------------------------------------------------------- */

/* Is `host` a loopback address (or "localhost")? Fills the address. */
static bool s_loopback(const char *host, struct sockaddr_storage *ss, socklen_t *sl)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        *sl = sizeof *in4;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        *sl = sizeof *in6;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* A listening TCP socket on a loopback HOST:PORT, or -1 with err set. */
static int s_listen_tcp(eng_direct_t *self, const char *ep, eng_error_t *err)
{
    const char *hp = ep + 6, *colon = strrchr(hp, ':');
    char host[64];
    size_t hl = colon ? (size_t)(colon - hp) : 0;
    if (!colon || hl == 0 || hl >= sizeof host) {
        return eng_error_set(err, ENG_ERR_VALUE, ep, 0, 0, NULL,
                             "direct listener: expected tcp://HOST:PORT or ipc://PATH");
    }
    if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {
        hp++;
        hl -= 2;
    }
    memcpy(host, hp, hl);
    host[hl] = '\0';
    const char *port = colon + 1;
    char *end = NULL;
    long pn = strcmp(port, "*") == 0 ? 0 : strtol(port, &end, 10);
    if (!*port || (end && *end) || pn < 0 || pn > 65535) {
        return eng_error_set(err, ENG_ERR_VALUE, ep, 0, 0, NULL,
                             "direct listener: the port must be 0-65535 or *");
    }
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (!s_loopback(host, &ss, &sl)) {
        return eng_error_set(err, ENG_ERR_VALUE, ep, 0, 0, NULL,
                             "direct listener: '%s' is not a loopback address; it speaks no "
                             "CURVE, so it binds 127.0.0.0/8, ::1 or an ipc:// path only",
                             host);
    }
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)pn); /* same offset in v6 */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 512) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return eng_error_set(err, ENG_ERR_IO, ep, 0, 0, NULL, "direct listener: cannot bind: %s",
                             strerror(e));
    }
    unsigned bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(self->endpoint, sizeof self->endpoint,
             ss.ss_family == AF_INET6 ? "tcp://[%s]:%u" : "tcp://%s:%u", host, bound);
    return fd;
}

/* A listening unix socket at PATH, mode 0660; a stale socket file left by
 * an engine that died is replaced, anything else at PATH is not. */
static int s_listen_ipc(eng_direct_t *self, const char *ep, eng_error_t *err)
{
    const char *path = ep + 6;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (!*path || strlen(path) >= sizeof un.sun_path) {
        return eng_error_set(err, ENG_ERR_VALUE, ep, 0, 0, NULL,
                             "direct listener: the socket path must be 1-%zu bytes",
                             sizeof un.sun_path - 1);
    }
    memcpy(un.sun_path, path, strlen(path));
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return eng_error_set(err, ENG_ERR_IO, ep, 0, 0, NULL,
                                 "direct listener: '%s' exists and is not a socket", path);
        }
        /* Stale only if nobody answers on it. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&un, sizeof un) == 0;
        if (probe >= 0) {
            close(probe);
        }
        if (live) {
            return eng_error_set(err, ENG_ERR_IO, ep, 0, 0, NULL,
                                 "direct listener: another process serves '%s'", path);
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0117); /* the file is created 0660, never wider for a moment */
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&un, sizeof un);
    umask(old);
    if (rc != 0 || listen(fd, 512) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return eng_error_set(err, ENG_ERR_IO, ep, 0, 0, NULL, "direct listener: cannot bind: %s",
                             strerror(e));
    }
    snprintf(self->path, sizeof self->path, "%s", path);
    snprintf(self->endpoint, sizeof self->endpoint, "ipc://%s", path);
    if (stat(path, &st) == 0) {
        self->inode = st.st_ino; /* so that exit removes our file and no other */
    }
    return fd;
}

eng_direct_t *eng_direct_new(const char *endpoint, size_t max_frame, size_t out_max,
                             size_t total_max, eng_error_t *err)
{
    eng_direct_t *self = calloc(1, sizeof *self);
    if (!self) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "direct listener: out of memory");
        return NULL;
    }
    self->ep = self->lfd = self->tfd = -1;
    self->max_frame = max_frame;
    self->out_max = out_max ? out_max : 1;
    self->total_max = total_max ? total_max : 1;
    for (unsigned i = 0; i < ENG_DIRECT_CONNS; i++) {
        self->conns[i].fd = -1;
    }
    if (strncmp(endpoint, "tcp://", 6) == 0) {
        self->lfd = s_listen_tcp(self, endpoint, err);
    } else if (strncmp(endpoint, "ipc://", 6) == 0) {
        self->lfd = s_listen_ipc(self, endpoint, err);
    } else {
        eng_error_set(err, ENG_ERR_VALUE, endpoint, 0, 0, NULL,
                      "direct listener: expected tcp://HOST:PORT or ipc://PATH");
    }
    if (self->lfd < 0) {
        eng_direct_destroy(&self);
        return NULL;
    }
    self->ep = epoll_create1(EPOLL_CLOEXEC);
    self->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = S_TAG_LISTEN};
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = S_TAG_TIMER};
    if (self->ep < 0 || self->tfd < 0 || epoll_ctl(self->ep, EPOLL_CTL_ADD, self->lfd, &lev) ||
        epoll_ctl(self->ep, EPOLL_CTL_ADD, self->tfd, &tev)) {
        eng_error_set(err, ENG_ERR_IO, endpoint, 0, 0, NULL, "direct listener: %s",
                      strerror(errno));
        eng_direct_destroy(&self);
        return NULL;
    }
    return self;
}

const char *eng_direct_endpoint(const eng_direct_t *self)
{
    return self->endpoint;
}

int eng_direct_fd(const eng_direct_t *self)
{
    return self->ep;
}

unsigned eng_direct_open(const eng_direct_t *self)
{
    return self->open;
}

/* Connections ---------------------------------------------------------------- */

/* The timer ticks every 500 ms while handshakes are open or the listener
 * rests. Only a change of state sets it: setting it on every accept would
 * restart its period, and a client connecting more often than that would
 * keep the deadline from ever being checked. */
static void s_arm(eng_direct_t *self)
{
    bool on = self->handshaking > 0 || self->accept_paused;
    if (on == self->timer_on) {
        return;
    }
    struct itimerspec it = {0};
    if (on) {
        it.it_value.tv_nsec = 500 * 1000000L;
        it.it_interval.tv_nsec = 500 * 1000000L;
    }
    timerfd_settime(self->tfd, 0, &it, NULL);
    self->timer_on = on;
}

/* Logs at most once a second (a flood of refusals is one line). */
static bool s_say(eng_direct_t *self)
{
    int64_t now = s_now_ms();
    if (now - self->full_said < 1000) {
        return false;
    }
    self->full_said = now;
    return true;
}

static void s_accept(eng_direct_t *self)
{
    for (int i = 0; i < S_ACCEPTS && self->lfd >= 0; i++) {
        int fd = accept4(self->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* The pending connection stays, so the listener would wake
                 * us at once, forever: it rests until the next tick. */
                if (s_say(self)) {
                    eng_log(ENG_LOG_WARN, "direct", "accept: %s; retrying in 500 ms",
                            strerror(errno));
                }
                epoll_ctl(self->ep, EPOLL_CTL_DEL, self->lfd, NULL);
                self->accept_paused = true;
                s_arm(self);
            }
            return;
        }
        uint32_t slot = 0;
        while (slot < ENG_DIRECT_CONNS && self->conns[slot].fd >= 0) {
            slot++;
        }
        if (slot == ENG_DIRECT_CONNS) {
            if (s_say(self)) {
                eng_log(ENG_LOG_WARN, "direct", "connection refused: all %d slots in use",
                        ENG_DIRECT_CONNS);
            }
            close(fd);
            continue;
        }
        s_conn_t *c = &self->conns[slot];
        uint8_t hello[PROTO_ZMTP_HELLO_MAX];
        size_t hl = proto_zmtp_hello_router(hello, sizeof hello);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = S_TAG_CONN + slot};
        c->rbuf = malloc(S_RBUF);
        c->rcap = S_RBUF;
        if (!c->rbuf || !s_append(self, c, hello, hl, NULL, 0) ||
            epoll_ctl(self->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            eng_log(ENG_LOG_WARN, "direct", "connection refused: %s", strerror(errno));
            self->total -= s_pending(c);
            free(c->rbuf);
            free(c->wbuf);
            uint32_t gen = c->gen;
            memset(c, 0, sizeof *c);
            c->fd = -1;
            c->gen = gen;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on ipc: harmless */
        c->fd = fd;
        c->interest = EPOLLIN;
        c->opened_ms = s_now_ms();
        proto_zmtp_init_router(&c->z, self->max_frame);
        self->open++;
        self->handshaking++;
        s_arm(self);
        s_mark(self, c, slot);
    }
}

/* Closes the connections whose handshake is overdue. */
static void s_deadline(eng_direct_t *self)
{
    uint64_t ticks;
    if (read(self->tfd, &ticks, sizeof ticks) < 0) {
        /* nothing to consume: a spurious wake-up */
    }
    if (self->accept_paused && self->lfd >= 0) {
        struct epoll_event lev = {.events = EPOLLIN, .data.u64 = S_TAG_LISTEN};
        epoll_ctl(self->ep, EPOLL_CTL_ADD, self->lfd, &lev);
    }
    self->accept_paused = false;
    int64_t now = s_now_ms();
    for (uint32_t i = 0; i < ENG_DIRECT_CONNS && self->handshaking > 0; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->fd >= 0 && !c->ready && !c->broken &&
            now - c->opened_ms >= ENG_DIRECT_HANDSHAKE_MS) {
            eng_log(ENG_LOG_DEBUG, "direct", "closed a connection: no handshake within %d ms",
                    ENG_DIRECT_HANDSHAKE_MS);
            c->broken = true;
            s_mark(self, c, i); /* closed by the flush at the end of this poll */
        }
    }
    s_arm(self);
}

/* One frame of a message: an envelope check, then the message to `cb`. */
static int s_frame(s_conn_t *c, uint32_t slot, const proto_zmtp_ev_t *ev, eng_direct_cb cb,
                   void *arg)
{
    if (ev->more) {
        if (c->frames == 0 && ev->len == 0) {
            c->delim = true;
        }
        if (c->frames < UINT32_MAX) {
            c->frames++;
        }
        return 0;
    }
    eng_direct_msg_t m = {
        .body = ev->data, .len = ev->len, .delim = c->delim, .frames = c->frames + 1};
    c->frames = 0;
    c->delim = false;
    cb(arg, (eng_direct_conn_t)slot | (eng_direct_conn_t)c->gen << 32, &m);
    return 1;
}

/* Parses what was read; returns the messages handed to `cb`. */
static int s_parse(eng_direct_t *self, s_conn_t *c, uint32_t slot, eng_direct_cb cb, void *arg)
{
    int msgs = 0;
    size_t pos = 0;
    while (!c->broken) {
        proto_zmtp_ev_t ev;
        long n = proto_zmtp_read(&c->z, c->rbuf + pos, c->rlen - pos, &ev);
        if (n < 0) {
            eng_log(ENG_LOG_DEBUG, "direct", "closed a connection: %s", ev.msg);
            c->broken = true;
            break;
        }
        if (n == 0) {
            c->need = ev.need;
            if (ev.need > c->rcap) { /* a frame larger than any before: grow for it */
                uint8_t *grown = realloc(c->rbuf, ev.need);
                if (!grown) {
                    eng_log(ENG_LOG_WARN, "direct",
                            "closed a connection: no memory for a "
                            "frame of %zu bytes",
                            ev.need);
                    c->broken = true;
                    break;
                }
                c->rbuf = grown;
                c->rcap = ev.need;
            }
            break;
        }
        pos += (size_t)n;
        if (ev.kind == PROTO_ZMTP_EV_READY) {
            c->ready = true;
            self->handshaking--;
        } else if (ev.kind == PROTO_ZMTP_EV_PING) {
            uint8_t pong[PROTO_ZMTP_PONG_MAX];
            if (!s_append(self, c, pong, proto_zmtp_pong(pong, &ev), NULL, 0)) {
                c->broken = true;
            }
            s_mark(self, c, slot);
        } else if (ev.kind == PROTO_ZMTP_EV_FRAME) {
            msgs += s_frame(c, slot, &ev, cb, arg);
        }
    }
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    if (c->rcap > S_RBUF && c->rlen <= S_RBUF && c->need <= S_RBUF) {
        uint8_t *small = realloc(c->rbuf, S_RBUF); /* the large frame is done */
        if (small) {
            c->rbuf = small;
            c->rcap = S_RBUF;
        }
    }
    return msgs;
}

/* One read from a ready connection, and what it brought. */
static int s_read(eng_direct_t *self, s_conn_t *c, uint32_t slot, uint32_t events, eng_direct_cb cb,
                  void *arg)
{
    if (!(c->interest & EPOLLIN)) {
        /* Reading is paused: leave the input where it is. A hang-up is
         * reported whatever was asked for, and would be again and again. */
        if (events & (EPOLLHUP | EPOLLERR)) {
            c->broken = true;
        }
        return 0;
    }
    /* A few kilobytes at a time, unless a frame is known to need more: the
     * replies to what one read brings in are queued before reading pauses,
     * and small requests with large replies must not make that unbounded. */
    size_t want = S_READ;
    if (c->need > c->rlen + want) {
        want = c->need - c->rlen;
    }
    if (want > c->rcap - c->rlen) {
        want = c->rcap - c->rlen;
    }
    c->need = 0;
    ssize_t n = read(c->fd, c->rbuf + c->rlen, want);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->broken = true;
        }
        return 0;
    }
    c->rlen += (size_t)n;
    return s_parse(self, c, slot, cb, arg);
}

int eng_direct_poll(eng_direct_t *self, eng_direct_cb cb, void *arg)
{
    struct epoll_event evs[S_EVENTS];
    int n = epoll_wait(self->ep, evs, S_EVENTS, 0);
    int msgs = 0;
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        if (tag == S_TAG_LISTEN) {
            s_accept(self);
            continue;
        }
        if (tag == S_TAG_TIMER) {
            s_deadline(self);
            continue;
        }
        uint32_t slot = (uint32_t)(tag - S_TAG_CONN);
        s_conn_t *c = &self->conns[slot];
        if (c->fd < 0) {
            continue; /* closed earlier in this poll */
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            msgs += s_read(self, c, slot, evs[i].events, cb, arg);
        }
        if (evs[i].events & EPOLLOUT) {
            s_mark(self, c, slot);
        }
        if (c->broken) {
            s_mark(self, c, slot); /* closed by the flush, after its callbacks ran */
        }
    }
    eng_direct_flush(self);
    return msgs;
}

int eng_direct_send(eng_direct_t *self, eng_direct_conn_t conn, bool delim, const void *body,
                    size_t len)
{
    uint32_t slot = (uint32_t)conn, gen = (uint32_t)(conn >> 32);
    if (slot >= ENG_DIRECT_CONNS) {
        return -1;
    }
    s_conn_t *c = &self->conns[slot];
    if (c->fd < 0 || c->gen != gen || c->broken || !c->ready) {
        return -1;
    }
    if (len >= ENG_DIRECT_LARGE && s_pending(c) >= self->out_max) {
        return -2;
    }
    uint8_t head[2 + PROTO_ZMTP_HEAD_MAX];
    size_t hl = 0;
    if (delim) {
        hl = proto_zmtp_frame_head(head, 0, true);
    }
    hl += proto_zmtp_frame_head(head + hl, len, false);
    if (!s_append(self, c, head, hl, body, len)) {
        c->broken = true; /* out of memory: the client's replies cannot be kept in order */
    }
    s_mark(self, c, slot);
    return 0;
}

void eng_direct_flush(eng_direct_t *self)
{
    for (unsigned i = 0; i < self->ndirty; i++) {
        uint32_t slot = self->dirty[i];
        s_conn_t *c = &self->conns[slot];
        c->dirty = false;
        if (c->fd < 0) {
            continue;
        }
        if (!c->broken) {
            s_write(self, c, slot);
        }
        if (c->broken) {
            s_close(self, c);
        }
    }
    self->ndirty = 0;
    atomic_store_explicit(&self->total_seen, self->total, memory_order_relaxed);
}

size_t eng_direct_queued(const eng_direct_t *self)
{
    return self ? atomic_load_explicit(&self->total_seen, memory_order_relaxed) : 0;
}

void eng_direct_linger(eng_direct_t *self, int ms)
{
    eng_direct_stop(self); /* input left unread would wake the wait below at once */
    int64_t end = s_now_ms() + ms;
    for (;;) {
        eng_direct_flush(self);
        if (self->total == 0) {
            return;
        }
        int left = (int)(end - s_now_ms());
        if (left <= 0) {
            eng_log(ENG_LOG_WARN, "direct", "exit: %zu bytes of replies not taken by clients",
                    self->total);
            return;
        }
        struct epoll_event evs[S_EVENTS];
        int n = epoll_wait(self->ep, evs, S_EVENTS, left < 10 ? left : 10);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag >= S_TAG_CONN && self->conns[tag - S_TAG_CONN].fd >= 0) {
                s_mark(self, &self->conns[tag - S_TAG_CONN], (uint32_t)(tag - S_TAG_CONN));
            }
        }
    }
}

void eng_direct_stop(eng_direct_t *self)
{
    if (self->stopped) {
        return;
    }
    self->stopped = true;
    if (self->lfd >= 0) {
        epoll_ctl(self->ep, EPOLL_CTL_DEL, self->lfd, NULL);
        close(self->lfd);
        self->lfd = -1;
    }
    for (uint32_t i = 0; i < ENG_DIRECT_CONNS; i++) {
        if (self->conns[i].fd >= 0) {
            s_interest(self, &self->conns[i], i);
        }
    }
}

void eng_direct_destroy(eng_direct_t **self_p)
{
    eng_direct_t *self = self_p ? *self_p : NULL;
    if (!self) {
        return;
    }
    eng_direct_flush(self);
    for (uint32_t i = 0; i < ENG_DIRECT_CONNS; i++) {
        s_close(self, &self->conns[i]);
    }
    if (self->lfd >= 0) {
        close(self->lfd);
    }
    struct stat st;
    if (self->path[0] && lstat(self->path, &st) == 0 && st.st_ino == self->inode) {
        unlink(self->path);
    }
    if (self->tfd >= 0) {
        close(self->tfd);
    }
    if (self->ep >= 0) {
        close(self->ep);
    }
    free(self);
    *self_p = NULL;
}
