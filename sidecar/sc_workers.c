/* sc_workers.c - several sidecar servers in one process (see sc_workers.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "sc_workers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "eng_common.h"
#include "eng_local.h"
#include "sc_local.h"

#define S_RELOAD_WAIT_MS 30000 /* a worker that has not reloaded by then is named */

struct sc_workers {
    int n;              /* workers */
    sc_server_t **srv;  /* n servers; worker i is srv[i] */
    pthread_t *threads; /* their threads, while sc_workers_run runs */
    int open;           /* client connections open in all of them (atomic) */
    int ack[2];         /* reload acknowledgements: one byte per worker */
    sigset_t signals;   /* SIGINT, SIGTERM, SIGHUP: blocked, waited for */
    eng_local_t *local; /* --local-engine: reloaded here, once for all; borrowed */
};

int sc_workers_default(void)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        n = CPU_COUNT(&set);
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)(c < SC_WORKERS_MAX ? c : SC_WORKERS_MAX) : 1;
    }
    return n < SC_WORKERS_MAX ? n : SC_WORKERS_MAX;
}

sc_workers_t *sc_workers_new(const sc_config_t *cfg, char *errbuf, size_t errlen)
{
    sc_workers_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    self->ack[0] = self->ack[1] = -1;
    self->local = cfg->local;
    self->n = cfg->workers > 0 ? cfg->workers : sc_workers_default();
    if (self->n > SC_WORKERS_MAX) {
        self->n = SC_WORKERS_MAX;
    }
    if (cfg->local && eng_local_readers(cfg->local) < (size_t)self->n) {
        snprintf(errbuf, errlen, "--local-engine: %zu reader slots for %d workers",
                 eng_local_readers(cfg->local), self->n);
        free(self);
        return NULL;
    }
    /* Blocked from now on in this thread and in every worker it starts: a
     * signal that comes before sc_workers_run waits for it instead of
     * killing the process. */
    sigemptyset(&self->signals);
    sigaddset(&self->signals, SIGINT);
    sigaddset(&self->signals, SIGTERM);
    sigaddset(&self->signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &self->signals, NULL);
    self->srv = calloc((size_t)self->n, sizeof *self->srv);
    self->threads = calloc((size_t)self->n, sizeof *self->threads);
    if (!self->srv || !self->threads || pipe2(self->ack, O_CLOEXEC) != 0) {
        snprintf(errbuf, errlen, "out of memory (or descriptors)");
        sc_workers_destroy(&self);
        return NULL;
    }
    sc_server_worker_t w = {
        .count = self->n,
        .peers = self->srv,
        .open = &self->open,
        .ack_fd = self->ack[1],
    };
    for (int i = 0; i < self->n; i++) {
        w.index = i;
        /* The first binds the port asked for (0: any free one), the others
         * the port it got. */
        self->srv[i] = sc_server_new_worker(cfg, &w, errbuf, errlen);
        if (!self->srv[i]) {
            sc_workers_destroy(&self);
            return NULL;
        }
        w.port = sc_server_port(self->srv[0]);
    }
    return self;
}

int sc_workers_count(const sc_workers_t *self)
{
    return self->n;
}

int sc_workers_port(const sc_workers_t *self)
{
    return sc_server_port(self->srv[0]);
}

sc_link_kind_t sc_workers_link_kind(const sc_workers_t *self)
{
    return sc_server_link_kind(self->srv[0]);
}

static void *s_thread(void *arg)
{
    sc_server_run(arg);
    return NULL;
}

/* Waits for `want` reload acknowledgements; returns how many came. */
static int s_acks(sc_workers_t *self, int want)
{
    int done = 0;
    while (done < want) {
        struct pollfd p = {.fd = self->ack[0], .events = POLLIN};
        int rc = poll(&p, 1, S_RELOAD_WAIT_MS);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        char acks[SC_WORKERS_MAX];
        ssize_t got = rc > 0 ? read(self->ack[0], acks, (size_t)(want - done)) : -1;
        if (got <= 0) {
            break;
        }
        done += (int)got;
    }
    return done;
}

/* SIGHUP: every worker reloads on its own loop, the first one last: it
 * alone logs the outcome (sc_server.c), so a log line about the reload
 * means every worker has the new files. systemd hears READY once they all
 * have (or after S_RELOAD_WAIT_MS, with the count that did). */
static void s_reload(sc_workers_t *self)
{
    sd_notify(0, "RELOADING=1");
    if (self->local) {
        sc_local_reload(self->local);
    }
    for (int i = 1; i < self->n; i++) {
        if (sc_server_post(self->srv[i], SC_SERVER_RELOAD) != 0) {
            eng_log(ENG_LOG_ERROR, "sidecar", "worker %d: cannot post the reload: %s", i,
                    strerror(errno));
        }
    }
    int done = s_acks(self, self->n - 1);
    if (sc_server_post(self->srv[0], SC_SERVER_RELOAD) == 0) {
        done += s_acks(self, 1);
    }
    if (done < self->n) {
        eng_log(ENG_LOG_WARN, "sidecar", "SIGHUP: %d of %d workers reloaded within %d ms", done,
                self->n, S_RELOAD_WAIT_MS);
    }
    sd_notify(0, "READY=1");
}

int sc_workers_run(sc_workers_t *self)
{
    int started = 0;
    for (; started < self->n; started++) {
        int rc = pthread_create(&self->threads[started], NULL, s_thread, self->srv[started]);
        if (rc != 0) {
            eng_log(ENG_LOG_ERROR, "sidecar", "cannot start worker %d: %s", started, strerror(rc));
            break;
        }
    }
    bool failed = started < self->n;
    while (!failed) {
        int sig = 0;
        if (sigwait(&self->signals, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            s_reload(self);
            continue;
        }
        eng_log(ENG_LOG_INFO, "sidecar", "signal %d: stopping", sig);
        sd_notify(0, "STOPPING=1");
        break;
    }
    for (int i = 0; i < started; i++) {
        sc_server_post(self->srv[i], SC_SERVER_STOP);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(self->threads[i], NULL);
    }
    return failed ? -1 : 0;
}

void sc_workers_destroy(sc_workers_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sc_workers_t *self = *self_p;
    /* Each frees its connections, whose close callbacks finish its calls;
     * the first last, as the others borrow its fail-open table. */
    for (int i = self->n - 1; self->srv && i >= 0; i--) {
        sc_server_destroy(&self->srv[i]);
    }
    free(self->srv);
    free(self->threads);
    for (int i = 0; i < 2; i++) {
        if (self->ack[i] >= 0) {
            close(self->ack[i]);
        }
    }
    free(self);
    *self_p = NULL;
}
