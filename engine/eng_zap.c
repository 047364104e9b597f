/* eng_zap.c - the ZAP handler thread (see eng_zap.h).
 *
 * The allow-list pointer is behind a mutex: a handshake takes it for one
 * lookup, a reload for one pointer swap, so neither waits for the other's
 * file I/O. Handshakes are rare (once per connection), which is why this
 * need not be lock-free like the snapshot cell on the request path.
 */
#define _GNU_SOURCE
#include "eng_zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "eng_allow.h"
#include "hpp_keys.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_LOG_EVERY_MS 1000 /* at most one refusal line per second */

/* ZAP request frames (RFC 27). */
enum { S_F_VERSION, S_F_REQID, S_F_DOMAIN, S_F_ADDRESS, S_F_IDENTITY, S_F_MECH, S_F_CRED, S_F_MAX };

struct eng_zap {
    char *path;          /* allow-list file or directory, owned */
    void *sock;          /* REP on S_ZAP_ENDPOINT; the thread's once it runs */
    pthread_t thread;    /* handler */
    bool started;        /* the thread runs */
    pthread_mutex_t mu;  /* guards allow */
    eng_allow_t *allow;  /* current list */
    int64_t last_log_ms; /* handler: when the last refusal line was written */
    uint64_t suppressed; /* handler: refusals since, not logged one by one */
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_log_list(const char *what, const char *path, const eng_allow_t *allow)
{
    size_t admins = 0;
    size_t n = eng_allow_count(allow, &admins);
    eng_log(ENG_LOG_INFO, "curve", "%s: %zu client keys (%zu admin) from %s", what, n, admins,
            path);
}

/* Logs a refused key unless a line went out less than a second ago; then
 * it is only counted, and the count goes with the next line. */
static void s_refused(eng_zap_t *self, const char *key, const char *address)
{
    int64_t now = s_mono_ms();
    if (self->last_log_ms != 0 && now - self->last_log_ms < S_LOG_EVERY_MS) {
        self->suppressed++;
        return;
    }
    char more[64] = "";
    if (self->suppressed) {
        snprintf(more, sizeof more, " (%llu more refused since the last line)",
                 (unsigned long long)self->suppressed);
    }
    eng_log(ENG_LOG_WARN, "curve", "refused unknown client key %s from %s%s", key, address, more);
    self->last_log_ms = now;
    self->suppressed = 0;
}

/* The count of refusals a quiet second left unreported. */
static void s_flush_refused(eng_zap_t *self)
{
    if (self->suppressed && s_mono_ms() - self->last_log_ms >= S_LOG_EVERY_MS) {
        eng_log(ENG_LOG_WARN, "curve", "%llu more unknown client keys refused since the last line",
                (unsigned long long)self->suppressed);
        self->suppressed = 0;
        self->last_log_ms = s_mono_ms();
    }
}

/* The frame as a NUL-terminated string for logs (control bytes as '?'). */
static void s_text(zmq_msg_t *m, char *out, size_t n)
{
    size_t len = zmq_msg_size(m) < n - 1 ? zmq_msg_size(m) : n - 1;
    const unsigned char *p = zmq_msg_data(m);
    for (size_t i = 0; i < len; i++) {
        out[i] = p[i] < 0x20 || p[i] >= 0x7f ? '?' : (char)p[i];
    }
    out[len] = '\0';
}

static bool s_is(zmq_msg_t *m, const char *lit)
{
    size_t n = strlen(lit);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), lit, n) == 0;
}

/* Decides one request: the status code and the User-Id of the reply. */
static const char *s_decide(eng_zap_t *self, zmq_msg_t *f, int n, const char **user)
{
    *user = "";
    if (n != S_F_MAX || !s_is(&f[S_F_VERSION], "1.0") || !s_is(&f[S_F_MECH], "CURVE") ||
        zmq_msg_size(&f[S_F_CRED]) != 32) {
        /* Only CURVE sockets use this handler; anything else is refused. */
        eng_log(ENG_LOG_WARN, "curve", "refused a handshake that is not a CURVE one (%d frames)",
                n);
        return "400";
    }
    const uint8_t *key = zmq_msg_data(&f[S_F_CRED]);
    pthread_mutex_lock(&self->mu);
    eng_role_t role = eng_allow_find(self->allow, key);
    pthread_mutex_unlock(&self->mu);
    char z85[HPP_KEY_LEN + 1], address[64];
    zmq_z85_encode(z85, key, 32);
    s_text(&f[S_F_ADDRESS], address, sizeof address);
    if (role == ENG_ROLE_NONE) {
        s_refused(self, z85, address);
        return "400";
    }
    eng_log(ENG_LOG_DEBUG, "curve", "%s key %s connected from %s", eng_role_name(role), z85,
            address);
    *user = eng_role_name(role);
    return "200";
}

/* Receives one request (at most S_F_MAX frames kept). Returns the frame
 * count, or -1 with errno. */
static int s_recv(void *sock, zmq_msg_t *f)
{
    int n = 0;
    for (;;) {
        zmq_msg_t scratch, *m = n < S_F_MAX ? &f[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(m);
            for (int i = 0; i < n && i < S_F_MAX; i++) {
                zmq_msg_close(&f[i]);
            }
            errno = e;
            return -1;
        }
        bool more = zmq_msg_more(m);
        if (m == &scratch) {
            zmq_msg_close(m);
        }
        n++;
        if (!more) {
            return n;
        }
    }
}

static void *s_main(void *arg)
{
    pthread_setname_np(pthread_self(), "hpp-zap"); /* as top -H, perf and /proc show it */
    eng_zap_t *self = arg;
    for (;;) {
        int timeout = -1;
        if (self->suppressed) {
            int64_t left = S_LOG_EVERY_MS - (s_mono_ms() - self->last_log_ms);
            timeout = left < 1 ? 1 : (int)left;
        }
        zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, timeout);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0) {
            break; /* ETERM: the engine is stopping */
        }
        s_flush_refused(self);
        if (rc == 0) {
            continue;
        }
        zmq_msg_t f[S_F_MAX];
        int n = s_recv(self->sock, f);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            break;
        }
        const char *user;
        const char *status = s_decide(self, f, n, &user);
        /* A REP socket must answer before it can receive again. */
        const void *reqid = n > S_F_REQID ? zmq_msg_data(&f[S_F_REQID]) : "";
        size_t reqlen = n > S_F_REQID ? zmq_msg_size(&f[S_F_REQID]) : 0;
        zmq_send(self->sock, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(self->sock, reqid, reqlen, ZMQ_SNDMORE);
        zmq_send(self->sock, status, 3, ZMQ_SNDMORE);
        zmq_send(self->sock, status[0] == '2' ? "OK" : "unknown key", status[0] == '2' ? 2 : 11,
                 ZMQ_SNDMORE);
        zmq_send(self->sock, user, strlen(user), ZMQ_SNDMORE);
        zmq_send(self->sock, "", 0, 0);
        for (int i = 0; i < n && i < S_F_MAX; i++) {
            zmq_msg_close(&f[i]);
        }
    }
    s_flush_refused(self);
    zmq_close(self->sock);
    self->sock = NULL;
    return NULL;
}

eng_zap_t *eng_zap_new(void *zmq_ctx, const char *path, eng_error_t *err)
{
    eng_zap_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    self->allow = eng_allow_load(path, err);
    if (!self->allow) {
        goto fail;
    }
    s_log_list("allow-list", path, self->allow);
    self->sock = zmq_socket(zmq_ctx, ZMQ_REP);
    int linger = 0;
    if (!self->sock || zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(self->sock, S_ZAP_ENDPOINT) != 0) {
        eng_error_set(err, ENG_ERR_IO, S_ZAP_ENDPOINT, 0, 0, NULL, "cannot bind: %s",
                      zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "no ZAP thread");
        goto fail;
    }
    self->started = true;
    return self;
fail:
    eng_zap_destroy(&self);
    return NULL;
}

int eng_zap_reload(eng_zap_t *self)
{
    eng_error_t err = {0};
    eng_allow_t *next = eng_allow_load(self->path, &err);
    if (!next) {
        char msg[768];
        eng_error_format(&err, msg, sizeof msg);
        pthread_mutex_lock(&self->mu);
        size_t n = eng_allow_count(self->allow, NULL);
        pthread_mutex_unlock(&self->mu);
        eng_log(ENG_LOG_ERROR, "curve", "%s; the previous allow-list (%zu keys) keeps serving", msg,
                n);
        return -1;
    }
    s_log_list("allow-list reloaded", self->path, next);
    pthread_mutex_lock(&self->mu);
    eng_allow_t *old = self->allow;
    self->allow = next;
    pthread_mutex_unlock(&self->mu);
    eng_allow_destroy(&old);
    return 0;
}

void eng_zap_destroy(eng_zap_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_zap_t *self = *self_p;
    if (self->started) {
        pthread_join(self->thread, NULL); /* it closes its socket */
    } else if (self->sock) {
        zmq_close(self->sock);
    }
    eng_allow_destroy(&self->allow);
    pthread_mutex_destroy(&self->mu);
    free(self->path);
    free(self);
    *self_p = NULL;
}
