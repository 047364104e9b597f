/* eng_server.c - the decision service: sockets, threads, reload, shutdown.
 *
 *   clients --tcp--> ROUTER (front)   frontend thread: envelope check, route
 *                       |             and ping answered inline, signals, drain
 *                       | explain, models, stats (or everything with
 *                       v                          --route-workers)
 *              inproc DEALER (back) --round-robin--> worker 1..N (DEALER each)
 *                       | reload
 *                       v
 *              reloader thread (PULL): compile, swap --PUSH--> frontend --> client
 *
 * Why routes are decided on the network thread: a decision costs about a
 * microsecond, while handing a message to a worker and back costs two
 * thread wake-ups, which on loopback dominate latency (bench/RESULTS.md).
 * Slow replies (a trace of thousands of candidates, the models list of a
 * full catalog) go to the workers so they never hold up a route.
 *
 * Threads share no mutable state on the request path: each answering
 * thread owns its reply buffer, trace buffer, decision-log buffer and
 * counter block (single writer, read by `stats` with relaxed loads); the
 * snapshot comes from the hazard-slot cell (eng_snapshot.h). Only the rare
 * reload report is behind a mutex. Nothing waits for a reload: compilation
 * runs in the reloader thread and the swap is one atomic exchange.
 *
 * The envelope is whatever the client's socket produced: [identity, "",
 * body] for REQ (and DEALER clients that add the delimiter), [identity,
 * body] for bare DEALER. Replies go back in the same shape, so both work.
 * Signals arrive through a signalfd polled with the sockets, so handlers
 * never run inside ZeroMQ calls.
 *
 * With --direct, a second door: clients on the direct listener
 * (eng_direct.h) are read, answered and written by the frontend thread
 * itself, with no libzmq I/O thread between. Their slower ops go to the
 * workers like the ROUTER's, under an identity that no ROUTER peer can
 * have (s_direct_id), and s_replies_out sends those replies back through
 * the listener.
 */
#define _GNU_SOURCE
#include "eng_server.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "eng_cases.h"
#include "eng_declog.h"
#include "eng_direct.h"
#include "eng_metrics.h"
#include "eng_health.h"
#include "eng_ledger.h"
#include "eng_msgpool.h"
#include "eng_peers.h"
#include "eng_policy_internal.h"
#include "eng_snapshot.h"
#include "eng_reply.h"
#include "eng_zap.h"
#include "hpp_keys.h"

#define S_BACKEND "inproc://hpp-workers"
#define S_RELOADS "inproc://hpp-reloads"
#define S_REPLIES "inproc://hpp-replies"
#define S_MONITOR "inproc://hpp-front-events"
#define S_BATCH 256          /* messages moved per socket per wakeup */
#define S_HWM 100000         /* queued messages per pipe before refusing */
#define S_REPLY_HWM 16       /* replies a worker may have waiting for the frontend */
#define S_QUIET_MS 100       /* drain: stop reading after this long with no request */
#define S_LINGER_MS 1000     /* time to flush replies at exit */
#define S_TRACE_CAP 4096     /* candidates recorded by explain */
#define S_IDLE_FLUSH_MS 100  /* decision log flush when a worker is idle */
#define S_PEERS 4096         /* clients with requests or large replies outstanding at once */
#define S_COUNTED_MIN 2048   /* replies this large count against the byte limits */
#define S_TRIM_MS 1000       /* at most one malloc_trim a second, after a burst */
#define S_TRIM_LOW (1 << 20) /* ... once the queued reply bytes fell under this */
#define S_POOL_KEEP 256      /* message pool blocks the frontend keeps after a burst */
#define S_STALL_MS 10        /* no refusal tried to a client whose queue was full */

/* Counters of one thread. Only that thread writes; stats reads them all. */
typedef struct {
    _Atomic uint64_t requests[PROTO_OP_COUNT]; /* decoded requests by op */
    _Atomic uint64_t errors[HPP_STATUS_COUNT]; /* error replies by code */
    _Atomic uint64_t malformed;                /* undecodable frames, bad envelopes */
    _Atomic uint64_t dropped;                  /* replies that could not be delivered */
    _Atomic uint64_t refused;                  /* requests refused by a per-client limit */
    _Atomic uint64_t reports;                  /* report frames applied */
    _Atomic uint64_t report_attempts;          /* attempts they carried */
    _Atomic uint64_t reports_refused;          /* report frames refused */
} __attribute__((aligned(64))) s_counters_t;

/* Single-writer increment: no locked instruction needed. */
static inline void s_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Identity of a watched file, to notice edits and replacements. */
typedef struct {
    bool exists;           /* stat succeeded */
    dev_t dev;             /* device */
    ino_t ino;             /* inode (editors replace files) */
    off_t size;            /* bytes */
    struct timespec mtime; /* last modification */
} s_stamp_t;

typedef struct s_worker s_worker_t;

struct s_worker {
    struct eng_server *server;  /* shared state */
    size_t index;               /* worker number = hazard slot */
    pthread_t thread;           /* its thread */
    void *sock;                 /* DEALER connected to the backend */
    void *reload;               /* PUSH to the reloader */
    s_counters_t *ctr;          /* its counter block */
    proto_buf_t out;            /* reply buffer, grows to the largest reply once */
    eng_msgpool_t *pool;        /* memory of the replies it sends */
    eng_trace_entry_t *trace;   /* explain's candidate buffer */
    eng_declog_writer_t declog; /* decision log lines */
    uint64_t decisions;         /* decisions it made: the sequence of decision ids */
    bool started;               /* its thread runs (and will close its sockets) */
};

struct eng_server {
    eng_server_cfg_t cfg;                          /* copy of the configuration */
    void *ctx;                                     /* ZeroMQ context */
    void *front;                                   /* ROUTER on cfg.listen */
    void *back;                                    /* DEALER to the workers */
    void *replies;                                 /* PULL: reload replies from the reloader */
    void *to_reloader;                             /* PUSH: commands (sighup) to the reloader */
    void *rl_pull;                                 /* reloader: PULL of requests and commands */
    void *rl_push;                                 /* reloader: PUSH of replies to the frontend */
    int sigfd;                                     /* signalfd of TERM, INT, HUP */
    int epfd;                                      /* frontend's epoll set (s_watch_set) */
    char endpoint[256];                            /* bound endpoint, real port */
    eng_snapcell_t *cell;                          /* current snapshot */
    eng_zap_t *zap;                                /* CURVE allow-list, NULL = NULL mechanism */
    eng_declog_t *declog;                          /* decision log, NULL = off */
    s_worker_t *workers;                           /* cfg.threads of them */
    int nstarted;                                  /* workers running */
    s_counters_t *ctr;                             /* threads + frontend + reloader blocks */
    pthread_t reloader;                            /* reloader thread */
    bool reloader_started;                         /* it runs */
    uint64_t next_version;                         /* reloader: version of the next snapshot */
    s_stamp_t stamps[2 + ENG_SERVER_MAX_CATALOGS]; /* reloader: watched files at the last load */
    s_stamp_t seen[2 + ENG_SERVER_MAX_CATALOGS];   /* reloader: the same at the last look */
    int64_t changed_at;                            /* reloader: when a look last saw a change */
    bool settling;                                 /* reloader: a change waits to settle */
    const eng_snapshot_t *rl_serving;              /* reloader: the snapshot it last published */
    uint64_t in_flight;                            /* frontend: forwarded, not yet answered */
    eng_peers_t *peers;                            /* frontend: what each client has outstanding */
    int64_t peer_queue_max;                        /* bytes: cfg.peer_queue_kb */
    int64_t queue_max;                             /* bytes: cfg.queue_mb */
    bool trim_due;                                 /* frontend: memory to give back after a burst */
    int64_t trim_at;                               /* frontend: last malloc_trim (mono ms) */
    int64_t pressure_at;                           /* frontend: last drop or refusal (mono ms) */
    bool burst;    /* frontend: there were drops or refusals: a client leaving calls for a trim */
    void *monitor; /* PAIR: disconnections of the client socket */
    eng_metrics_t *metrics;  /* --metrics-listen: rule counters and HTTP thread, NULL = off */
    struct timespec started; /* start time, for uptime */
    s_worker_t front_worker; /* the frontend's own answering state (fast path) */
    eng_direct_t *direct;    /* --direct listener, NULL = off */
    proto_buf_t fout;        /* frontend's reply buffer (envelope errors) */
    char fmem[1024];         /* its memory */

    pthread_mutex_t rl_mu;               /* guards the reload report below */
    eng_loadlog_t rl_log;                /* diagnostics of the last (re)load */
    bool rl_ok;                          /* it succeeded */
    double rl_at;                        /* when (Unix seconds) */
    const char *rl_trigger;              /* "startup", "sighup", "op", "watch" */
    char rl_hash[ENG_SNAPSHOT_HASH_HEX]; /* policy hash of the serving snapshot */
    _Atomic uint64_t reloads_ok;         /* successful reloads after startup */
    _Atomic uint64_t reloads_failed;     /* rejected reloads */
    pthread_mutex_t health_mu;           /* one health writer at a time: reports, reload carry */
    eng_ledger_t *ledger;                /* --ledger / --keys, NULL = off */
    bool ledger_store;                   /* the ledger keeps money (--ledger) */
    eng_ledger_keys_t *rl_keys;          /* reloader: the last good key table (a reference) */
    uint64_t id_base;                    /* with a store: where decision ids start (the clock) */
};

/* Helpers ------------------------------------------------------------------ */

static double s_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void eng_server_cfg_defaults(eng_server_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = ENG_DEFAULT_LISTEN;
    cfg->policy = eng_data_path(ENG_DEFAULT_POLICY, 1);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = n < 1 ? 1 : (n > ENG_SERVER_MAX_THREADS ? ENG_SERVER_MAX_THREADS : (int)n);
    cfg->watch_ms = 1000;
    cfg->ledger.hold_s = ENG_LEDGER_HOLD_S;
    cfg->watch_settle_ms = -1;
    cfg->drain_ms = 2000;
    cfg->peer_hwm = ENG_DEFAULT_PEER_HWM;
    cfg->peer_inflight = ENG_DEFAULT_PEER_INFLIGHT;
    cfg->peer_queue_kb = ENG_DEFAULT_PEER_QUEUE_KB;
    cfg->queue_mb = ENG_DEFAULT_QUEUE_MB;
}

/* Receives one whole message into parts[0..max-1]. Extra frames are read and
 * discarded; the return value then exceeds max. Returns the frame count, or
 * -1 with errno (EAGAIN, ETERM, EINTR). Closes what it opened on error. */
static int s_recv(void *sock, zmq_msg_t *parts, int max, int flags)
{
    int n = 0;
    for (;;) {
        zmq_msg_t scratch;
        zmq_msg_t *m = n < max ? &parts[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, n == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(m);
            for (int i = 0; i < n && i < max; i++) {
                zmq_msg_close(&parts[i]);
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

static void s_close_parts(zmq_msg_t *parts, int n)
{
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&parts[i]);
    }
}

/* Sends parts[0..n-1] (consumed) followed by a copy of `body`, in a block of
 * `pool` when there is one, with `flags` (ZMQ_DONTWAIT or 0). On failure
 * closes what was not sent and returns -1 with errno. */
static int s_send_reply_flags(eng_msgpool_t *pool, void *sock, zmq_msg_t *env, int n,
                              const void *body, size_t len, int flags)
{
    for (int i = 0; i < n; i++) {
        if (zmq_msg_send(&env[i], sock, ZMQ_SNDMORE | flags) < 0) {
            int e = errno;
            s_close_parts(env + i, n - i);
            errno = e;
            return -1;
        }
    }
    if (pool) {
        return eng_msgpool_send(pool, sock, body, len, flags);
    }
    return zmq_send(sock, body, len, flags) < 0 ? -1 : 0;
}

/* The same, never waiting: for the frontend, which must not block. */
static int s_send_reply(eng_msgpool_t *pool, void *sock, zmq_msg_t *env, int n, const void *body,
                        size_t len)
{
    return s_send_reply_flags(pool, sock, env, n, body, len, ZMQ_DONTWAIT);
}

static void s_setint(void *sock, int opt, int v)
{
    zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* Snapshot loading and reload (reloader thread, and startup) ------------------ */

/* The file part of a catalog spec ("litellm:path" -> "path"). */
static const char *s_spec_path(const char *spec)
{
    static const char *const prefixes[] = {
        "native:", "openrouter:", "litellm:", "portkey:", "auto:"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(spec, prefixes[i], n) == 0) {
            return spec + n;
        }
    }
    return spec;
}

/* The watched files: the policy, each catalog, then the reload cases. */
static size_t s_nwatched(const eng_server_t *self)
{
    return 1 + self->cfg.ncatalogs + (self->cfg.reload_cases != NULL);
}

static const char *s_watched(const eng_server_t *self, size_t i)
{
    if (i == 0) {
        return self->cfg.policy;
    }
    return i <= self->cfg.ncatalogs ? s_spec_path(self->cfg.catalogs[i - 1])
                                    : self->cfg.reload_cases;
}

static s_stamp_t s_stamp(const char *path)
{
    s_stamp_t st = {0};
    struct stat sb;
    if (stat(path, &sb) == 0) {
        st.exists = true;
        st.dev = sb.st_dev;
        st.ino = sb.st_ino;
        st.size = sb.st_size;
        st.mtime = sb.st_mtim;
    }
    return st;
}

static bool s_stamp_eq(const s_stamp_t *a, const s_stamp_t *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Records the files' identities before every load attempt, so that a
 * broken file is not retried each tick (only when it changes again), and a
 * change made while the load reads the files is noticed afterwards. */
static void s_restamp(eng_server_t *self)
{
    for (size_t i = 0; i < s_nwatched(self); i++) {
        self->stamps[i] = s_stamp(s_watched(self, i));
        self->seen[i] = self->stamps[i];
    }
    self->settling = false;
}

/* How long the files must stay unchanged before --watch reloads them. */
static int s_settle_ms(const eng_server_t *self)
{
    if (self->cfg.watch_settle_ms >= 0) {
        return self->cfg.watch_settle_ms;
    }
    int twice = self->cfg.watch_ms > INT32_MAX / 2 ? INT32_MAX : 2 * self->cfg.watch_ms;
    return twice > ENG_SETTLE_MS ? twice : ENG_SETTLE_MS;
}

/* The reload gate: what a snapshot that compiled must also pass before it
 * serves. Against the serving one (NULL at startup), no request it routed
 * may be left without a routing rule (eng_policy_coverage_lost); with
 * --reload-cases, every case must pass. Failures go to `log` as errors.
 * Returns true when the snapshot may serve. */
static bool s_gate(eng_server_t *self, const eng_snapshot_t *next, eng_loadlog_t *log)
{
    uint32_t before = log->errors;
    if (self->rl_serving) {
        eng_policy_coverage_lost(eng_snapshot_policy(self->rl_serving), eng_snapshot_policy(next),
                                 self->cfg.policy, eng_loadlog_fail, log);
    }
    if (self->cfg.reload_cases) {
        eng_diags_t *diags = eng_diags_new();
        eng_cases_t *cases = diags ? eng_cases_load(self->cfg.reload_cases, diags) : NULL;
        if (!diags) {
            eng_loadlog_add(log, true, "%s: error: out of memory", self->cfg.reload_cases);
        } else if (!cases) {
            eng_loadlog_add_diags(log, diags);
            if (eng_diags_count(diags, ENG_DIAG_ERROR) == 0) {
                eng_loadlog_add(log, true, "%s: error: the cases did not load",
                                self->cfg.reload_cases);
            }
        } else {
            eng_cases_check(cases, eng_snapshot_policy(next), eng_loadlog_fail, log);
        }
        eng_cases_destroy(&cases);
        eng_diags_destroy(&diags);
    }
    return log->errors == before;
}

/* Loads a snapshot with version self->next_version and passes it through
 * the gate. On success publishes it (after startup) and returns true.
 * Either way records the report. */
/* Reads the key file again with the policy: a new table when it loads,
 * else the last good one keeps serving (said in the load log); the
 * snapshot gets a reference to the table serving. */
static void s_reload_keys(eng_server_t *self, eng_snapshot_t *snap, eng_loadlog_t *log)
{
    char err[320];
    eng_ledger_keys_t *k = eng_ledger_keys_load(self->ledger, err, sizeof err);
    if (k) {
        eng_ledger_keys_release(self->rl_keys);
        self->rl_keys = k;
    } else if (!self->rl_keys) {
        eng_loadlog_add(log, true, "%s", err);
        return;
    } else {
        eng_loadlog_add(log, false, "%s (the last good key table keeps serving)", err);
    }
    eng_snapshot_attach(snap, eng_ledger_keys_ref(self->rl_keys), eng_ledger_keys_release);
}

static bool s_reload(eng_server_t *self, const char *trigger, eng_snapshot_t **first)
{
    static eng_loadlog_t log; /* reloader thread (or startup) only */
    const eng_policy_t *serving_pol =
        self->rl_serving ? eng_snapshot_policy(self->rl_serving) : NULL;
    eng_snapshot_cfg_t scfg = {
        .policy = self->cfg.policy,
        .catalogs = self->cfg.catalogs,
        .ncatalogs = self->cfg.ncatalogs,
        /* Losing the catch-all rule the serving policy has is an error. */
        .policy_flags =
            serving_pol && eng_policy_catch_all(serving_pol) ? ENG_POLICY_REQUIRE_CATCH_ALL : 0,
    };
    s_restamp(self);
    eng_snapshot_t *snap = eng_snapshot_load(&scfg, self->next_version, &log);
    if (snap && !s_gate(self, snap, &log)) {
        eng_snapshot_destroy(&snap);
    }
    if (snap && self->ledger && self->cfg.ledger.keys) {
        s_reload_keys(self, snap, &log);
        if (!self->rl_keys) {
            eng_snapshot_destroy(&snap); /* no key table at all: startup fails */
        }
    }
    eng_loadlog_errors_first(&log);
    eng_loadlog_log(&log, "engine");
    uint64_t serving;
    bool ok = snap != NULL;
    char hash[ENG_SNAPSHOT_HASH_HEX] = "";
    if (ok) {
        serving = self->next_version++;
        memcpy(hash, eng_snapshot_hash(snap), sizeof hash);
        /* Stays valid: only this thread publishes, and so frees. */
        const eng_snapshot_t *prev = self->rl_serving;
        self->rl_serving = snap;
        eng_metrics_add_rules(self->metrics, eng_snapshot_policy(snap)); /* before it serves */
        if (first) {
            *first = snap;
        } else {
            /* What was measured carries over; no report lands in the old
             * table between the copy and the swap. Report writers take
             * the snapshot only under health_mu, so publishing (which waits
             * for readers of the old one) cannot wait on them. */
            pthread_mutex_lock(&self->health_mu);
            eng_snapshot_carry_health(snap, prev);
            eng_snapcell_publish(self->cell, &snap);
            pthread_mutex_unlock(&self->health_mu);
            atomic_fetch_add(&self->reloads_ok, 1);
        }
        eng_log(ENG_LOG_INFO, "engine",
                "%s: policy version %llu serving (%s, %u warnings), policy hash %s", trigger,
                (unsigned long long)serving, self->cfg.policy, log.warnings, hash);
    } else {
        serving = self->cell ? eng_snapcell_version(self->cell) : 0;
        if (!first) {
            atomic_fetch_add(&self->reloads_failed, 1);
        }
        if (first) {
            eng_log(ENG_LOG_ERROR, "engine", "%s: policy refused (%u errors)%s%s", trigger,
                    log.errors, log.n ? ": " : "", log.n ? log.lines[0] : "");
        } else {
            eng_log(ENG_LOG_ERROR, "engine",
                    "%s: reload rejected (%u errors), version %llu keeps serving%s%s", trigger,
                    log.errors, (unsigned long long)serving, log.n ? ": " : "",
                    log.n ? log.lines[0] : "");
        }
    }
    pthread_mutex_lock(&self->rl_mu);
    self->rl_log = log;
    self->rl_ok = ok;
    self->rl_at = s_unix_now();
    self->rl_trigger = trigger;
    if (ok) {
        memcpy(self->rl_hash, hash, sizeof hash);
    }
    pthread_mutex_unlock(&self->rl_mu);
    return ok;
}

/* Fills a reload info from the report; call with rl_mu held. `lines`
 * receives pointers into the report. */
static void s_reload_info(eng_server_t *self, proto_reload_info_t *r,
                          const char *lines[ENG_LOADLOG_LINES])
{
    for (uint32_t i = 0; i < self->rl_log.n; i++) {
        lines[i] = self->rl_log.lines[i];
    }
    r->ok = self->rl_ok;
    r->at = self->rl_at;
    r->trigger = self->rl_trigger;
    r->policy_version = eng_snapcell_version(self->cell);
    r->policy_hash = self->rl_hash;
    r->diags = lines;
    r->ndiags = self->rl_log.n;
}

/* One look at the watched files for --watch. A file seen changing since
 * the last look (re)starts the settle clock; files that differ from what
 * the last load read and have not changed for the settle interval are
 * reloaded. So a file written in place in several steps is read once,
 * whole, unless its writer pauses longer than the interval (and then the
 * gate still stands between a half-written file and the requests). Returns
 * the milliseconds until the next look. */
static int s_watch_tick(eng_server_t *self)
{
    int64_t now = s_mono_ms();
    bool moved = false, pending = false;
    for (size_t i = 0; i < s_nwatched(self); i++) {
        s_stamp_t st = s_stamp(s_watched(self, i));
        if (!s_stamp_eq(&st, &self->seen[i])) {
            self->seen[i] = st;
            moved = true;
        }
        pending = pending || !s_stamp_eq(&st, &self->stamps[i]);
    }
    int settle = s_settle_ms(self);
    if (moved) {
        self->changed_at = now;
        if (pending && settle > 0) {
            eng_log(ENG_LOG_INFO, "engine",
                    "watch: files changed; reloading once they are unchanged for %d ms%s", settle,
                    self->settling ? " (clock restarted)" : "");
        }
    }
    self->settling = pending;
    if (pending && now - self->changed_at >= settle) {
        s_reload(self, "watch", NULL);
        return self->cfg.watch_ms;
    }
    if (pending) {
        int64_t left = settle - (now - self->changed_at);
        return left < self->cfg.watch_ms ? (int)left : self->cfg.watch_ms;
    }
    return self->cfg.watch_ms;
}

static void *s_reloader_main(void *arg)
{
    pthread_setname_np(pthread_self(), "hpp-reloader"); /* as top -H, perf and /proc show it */
    eng_server_t *self = arg;
    s_counters_t *ctr = &self->ctr[self->cfg.threads + 1];
    proto_buf_t out;
    if (proto_buf_init(&out, 16 * 1024) != 0) {
        return NULL;
    }
    int64_t next_look = s_mono_ms() + self->cfg.watch_ms;
    for (;;) {
        int timeout = -1;
        if (self->cfg.watch) {
            int64_t left = next_look - s_mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        zmq_pollitem_t it = {self->rl_pull, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, timeout);
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            break; /* ETERM */
        }
        /* Looked at on time even when commands keep arriving. */
        if (self->cfg.watch && s_mono_ms() >= next_look) {
            next_look = s_mono_ms() + s_watch_tick(self);
        }
        if (rc == 0) {
            continue;
        }
        zmq_msg_t parts[3];
        int n = s_recv(self->rl_pull, parts, 3, ZMQ_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            break;
        }
        if (n == 1) {
            bool term =
                zmq_msg_size(&parts[0]) == 5 && memcmp(zmq_msg_data(&parts[0]), "$TERM", 5) == 0;
            zmq_msg_close(&parts[0]);
            if (term) {
                break;
            }
            /* systemd (Type=notify) sees the reload begin and end. */
            sd_notify(0, "RELOADING=1");
            s_reload(self, "sighup", NULL);
            if (self->zap) {
                eng_zap_reload(self->zap);
            }
            sd_notify(0, "READY=1");
            continue;
        }
        if (n > 3) {
            s_close_parts(parts, 3);
            continue; /* cannot happen: the frontend checked the envelope */
        }
        /* A reload request: [identity, ("",) body]. */
        proto_request_t req;
        proto_request_decode(zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), &req, NULL);
        s_reload(self, "op", NULL);
        proto_reload_info_t info;
        const char *lines[ENG_LOADLOG_LINES];
        proto_buf_reset(&out);
        pthread_mutex_lock(&self->rl_mu);
        s_reload_info(self, &info, lines);
        proto_reply_reload(&out, &req.id, &info);
        pthread_mutex_unlock(&self->rl_mu);
        if (!info.ok) {
            s_inc(&ctr->errors[HPP_E_BAD_REQUEST]);
        }
        zmq_msg_close(&parts[n - 1]);
        if (s_send_reply(NULL, self->rl_push, parts, n - 1, out.data, out.len) < 0) {
            s_inc(&ctr->dropped);
        }
    }
    proto_buf_destroy(&out);
    return NULL;
}

/* Workers ----------------------------------------------------------------- */

/* Everything stats reports but the last reload, read through hazard slot
 * `reader`; st->policy_hash points to `hash`. */
static void s_collect(eng_server_t *self, size_t reader, proto_stats_t *st,
                      char hash[ENG_SNAPSHOT_HASH_HEX])
{
    int nblocks = self->cfg.threads + 2;
    for (int b = 0; b < nblocks; b++) {
        s_counters_t *c = &self->ctr[b];
        for (int i = 0; i < PROTO_OP_COUNT; i++) {
            st->requests[i] += atomic_load_explicit(&c->requests[i], memory_order_relaxed);
        }
        for (int i = 0; i < HPP_STATUS_COUNT; i++) {
            st->errors[i] += atomic_load_explicit(&c->errors[i], memory_order_relaxed);
        }
        st->malformed += atomic_load_explicit(&c->malformed, memory_order_relaxed);
        st->dropped += atomic_load_explicit(&c->dropped, memory_order_relaxed);
        st->refused += atomic_load_explicit(&c->refused, memory_order_relaxed);
        st->reports += atomic_load_explicit(&c->reports, memory_order_relaxed);
        st->report_attempts += atomic_load_explicit(&c->report_attempts, memory_order_relaxed);
        st->reports_refused += atomic_load_explicit(&c->reports_refused, memory_order_relaxed);
    }
    st->queued_bytes =
        (uint64_t)eng_peers_queued(self->peers) + (uint64_t)eng_direct_queued(self->direct);
    st->decision_log_dropped = eng_declog_dropped(self->declog);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    st->uptime_s = (double)(now.tv_sec - self->started.tv_sec) +
                   (double)(now.tv_nsec - self->started.tv_nsec) / 1e9;
    st->threads = (uint32_t)self->cfg.threads;
    st->policy = self->cfg.policy;
    st->catalogs = self->cfg.catalogs;
    st->ncatalogs = (uint32_t)self->cfg.ncatalogs;
    st->reloads_ok = atomic_load(&self->reloads_ok);
    st->reloads_failed = atomic_load(&self->reloads_failed);
    const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, reader);
    size_t nm = 0, ne = 0;
    eng_catalog_models(eng_snapshot_catalog(snap), &nm);
    eng_catalog_endpoints(eng_snapshot_catalog(snap), &ne);
    st->models = nm;
    st->endpoints = ne;
    st->policy_version = eng_snapshot_version(snap);
    memcpy(hash, eng_snapshot_hash(snap), ENG_SNAPSHOT_HASH_HEX);
    st->policy_hash = hash;
    if (self->ledger) {
        eng_ledger_stats_t ls;
        eng_ledger_stats(self->ledger, &ls);
        st->ledger_store = ls.store;
        st->ledger_keys = eng_ledger_keys_count(eng_snapshot_attached(snap));
        st->ledger_reservations = ls.reservations;
        st->ledger_settled = ls.settled;
        st->ledger_released = ls.released;
        st->ledger_expired = ls.expired;
        st->ledger_duplicates = ls.duplicates;
        st->ledger_unavailable = ls.unavailable;
    }
    eng_snapcell_release(self->cell, reader);
}

static void s_stats(s_worker_t *w, const proto_id_t *id)
{
    eng_server_t *self = w->server;
    proto_stats_t st = {0};
    char hash[ENG_SNAPSHOT_HASH_HEX];
    s_collect(self, w->index, &st, hash);
    const char *lines[ENG_LOADLOG_LINES];
    pthread_mutex_lock(&self->rl_mu);
    s_reload_info(self, &st.last_reload, lines);
    proto_reply_stats(&w->out, id, &st);
    pthread_mutex_unlock(&self->rl_mu);
}

/* eng_metrics_collect_fn: the stats of one scrape, on the metrics thread
 * (hazard slot threads + 1). */
static void s_metrics_collect(void *ctx, proto_stats_t *st, char hash[65])
{
    eng_server_t *self = ctx;
    s_collect(self, (size_t)self->cfg.threads + 1, st, hash);
    pthread_mutex_lock(&self->rl_mu);
    st->last_reload.ok = self->rl_ok;
    st->last_reload.at = self->rl_at;
    st->last_reload.trigger = self->rl_trigger;
    pthread_mutex_unlock(&self->rl_mu);
}

/* A decision id unique in this process without a shared counter: each
 * answering thread numbers its own, interleaved with the others'. */
static uint64_t s_decision_id(s_worker_t *w)
{
    uint64_t slots = (uint64_t)w->server->cfg.threads + 1;
    uint64_t local = ++w->decisions * slots + w->index;
    if (w->server->ledger_store) {
        /* Unique across engines and restarts (eng_ledger.h). */
        return eng_ledger_decision_id(w->server->ledger, w->server->id_base + local);
    }
    return local;
}

/* Reports ------------------------------------------------------------------ */

/* The real cost of an attempt at the endpoint's list price (the group's
 * multiplier is the decision line's): prompt tokens less the cached ones at
 * the input price, cached ones at the cache-read price, completion tokens
 * (reasoning included, as OpenAI counts them) at the output price, with
 * the long-prompt prices past the endpoint's threshold, as the estimate.
 * False when the attempt carries no token count or the sum overflows. */
static bool s_attempt_cost(const eng_endpoint_t *ep, const proto_attempt_t *a, hpp_cost_t *out)
{
    if (a->prompt_tokens < 0 && a->completion_tokens < 0) {
        return false;
    }
    int64_t prompt = a->prompt_tokens > 0 ? a->prompt_tokens : 0;
    int64_t cached = a->cached_tokens > 0 ? a->cached_tokens : 0;
    cached = cached < prompt ? cached : prompt;
    eng_usage_t u = {
        .prompt_tokens = prompt - cached,
        .completion_tokens = a->completion_tokens > 0 ? a->completion_tokens : 0,
        .cache_read_tokens = cached,
    };
    const hpp_price_t *price =
        ep->long_above && prompt > (int64_t)ep->long_above ? &ep->long_price : &ep->price;
    return eng_cost_estimate(price, &u, out) == 0;
}

/* Applies a report: every attempt must name an endpoint of the serving
 * catalog, or none is counted (a frame is one unit: a gateway that sends
 * a wrong name learns it, rather than half its report counting). Returns
 * true when applied; otherwise `msg` says which attempt and why. */
static bool s_report(s_worker_t *w, const proto_request_t *req, char *msg, size_t cap)
{
    eng_server_t *self = w->server;
    uint32_t idx[PROTO_MAX_ATTEMPTS];
    proto_attempt_t at[PROTO_MAX_ATTEMPTS]; /* borrow from the frame, which outlives them */
    uint32_t n = proto_attempts_all(&req->attempts, at);
    int64_t now = eng_health_now_ms();
    /* The snapshot is taken under the mutex only: the reloader holds it
     * while it waits for readers of the old snapshot to let go. */
    pthread_mutex_lock(&self->health_mu);
    const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, w->index);
    const eng_catalog_t *cat = eng_snapshot_catalog(snap);
    bool ok = eng_health_endpoints(cat, at, n, idx, msg, cap);
    /* Real costs at the endpoints' list prices, for the decision log's
     * outcome lines, written once the mutex is let go (a flush may write). */
    hpp_cost_t cost[PROTO_MAX_ATTEMPTS];
    bool priced[PROTO_MAX_ATTEMPTS];
    if (ok) {
        eng_health_t *h = eng_snapshot_health(snap);
        size_t neps = 0;
        const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &neps);
        for (uint32_t i = 0; i < n; i++) {
            eng_health_record(h, idx[i], &at[i], now);
            priced[i] = (w->declog.log || self->ledger_store) &&
                        s_attempt_cost(&eps[idx[i]], &at[i], &cost[i]);
        }
    }
    eng_snapcell_release(self->cell, w->index);
    pthread_mutex_unlock(&self->health_mu);
    for (uint32_t i = 0; ok && w->declog.log && i < n; i++) {
        eng_declog_outcome(&w->declog, &at[i], priced[i] ? &cost[i] : NULL);
    }
    if (ok && self->ledger_store) {
        eng_ledger_report(self->ledger, at, n, cost, priced);
    }
    if (ok) {
        s_inc(&w->ctr->reports);
        atomic_store_explicit(&w->ctr->report_attempts,
                              atomic_load_explicit(&w->ctr->report_attempts, memory_order_relaxed) +
                                  n,
                              memory_order_relaxed);
    } else {
        s_inc(&w->ctr->reports_refused);
    }
    return ok;
}

/* A decision the ledger refused before the resolver ran (unknown key,
 * store unreachable): an error with nothing chosen. */
static void s_refused(eng_decision_t *d, hpp_status_t st)
{
    d->status = st;
    d->model = NULL;
    d->endpoint = NULL;
    d->tier = -1;
    d->tier_name = "";
    d->rule = "ledger";
    memset(&d->cost, 0, sizeof d->cost);
    d->output_tokens = 0;
    d->permille = 1000;
    d->nfallbacks = 0;
    d->decision_id = 0;
    d->has_ledger = false;
}

/* What the key may still spend, for the group's step_down; none without. */
static hpp_pusd_t s_remaining(const eng_server_t *self, const eng_ledger_call_t *lc)
{
    return self->ledger && lc->has_remaining ? lc->remaining_pd : ENG_NO_REMAINING;
}

static void s_decide(s_worker_t *w, const proto_request_t *req)
{
    eng_server_t *self = w->server;
    const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, w->index);
    const eng_policy_t *pol = eng_snapshot_policy(snap);
    eng_decision_t d;
    /* With a ledger: the key's group replaces the request's, and the
     * checks run around the resolver (eng_ledger.h has their order). */
    const hpp_features_t *f = &req->features;
    eng_ledger_call_t lc;
    lc.has_remaining = false;
    hpp_status_t lst = HPP_OK;
    if (self->ledger) {
        lst = eng_ledger_begin(self->ledger, eng_snapshot_attached(snap), f, pol, &lc, d.message,
                               sizeof d.message);
        f = &lc.features;
    }
    if (req->op == PROTO_OP_ROUTE) {
        if (lst != HPP_OK) {
            s_refused(&d, lst);
        } else {
            eng_resolve_remaining(pol, f, s_remaining(self, &lc), &d, NULL);
            d.decision_id = s_decision_id(w);
            if (self->ledger) {
                eng_ledger_reserve(self->ledger, &lc, &d);
            }
        }
        if (d.status == HPP_OK) {
            eng_metrics_decision(self->metrics, w->index, eng_snapshot_version(snap), d.rule);
        }
        eng_reply_decision(&w->out, &req->id, &d, eng_snapshot_catalog(snap),
                           eng_snapshot_wire(snap));
    } else {
        eng_trace_t t;
        memset(&t, 0, sizeof t);
        t.entries = w->trace;
        t.cap = S_TRACE_CAP;
        if (lst != HPP_OK) {
            s_refused(&d, lst);
        } else {
            eng_resolve_remaining(pol, f, s_remaining(self, &lc), &d, &t);
            d.decision_id = s_decision_id(w);
        }
        eng_reply_explain(&w->out, &req->id, &d, &t, pol);
    }
    if (d.status != HPP_OK) {
        s_inc(&w->ctr->errors[(unsigned)d.status < HPP_STATUS_COUNT ? d.status : HPP_E_INTERNAL]);
    }
    eng_declog_record(&w->declog, req, &d, eng_snapshot_version(snap));
    eng_snapcell_release(self->cell, w->index);
}

/* The ops only an admin key may ask for when CURVE is on: they reveal the
 * deployment (files, counters) or change what is served. */
static const bool s_admin_ops[PROTO_OP_COUNT] = {
    [PROTO_OP_STATS] = true,
    [PROTO_OP_RELOAD] = true,
};

/* Does this request need an admin key (under CURVE)? The ledger op's
 * `key` action is any client's (the sidecar's read endpoints); the
 * others change or list money. */
static bool s_admin_only(const proto_request_t *req)
{
    return s_admin_ops[req->op] ||
           (req->op == PROTO_OP_LEDGER && proto_ledger_action_admin(req->ledger.action));
}

/* What s_answer did with a request. */
typedef enum {
    S_REPLY,  /* w->out holds the reply */
    S_RELOAD, /* a reload: only the reloader answers */
    S_SILENT, /* a report applied without `ack`: no reply (fire and forget) */
} s_answer_t;

/* Answers a decoded request (or its decode failure `rc`/`err`) into
 * w->out; `admin`: the client may ask for admin ops. */
static s_answer_t s_answer(s_worker_t *w, const proto_request_t *req, int rc,
                           const proto_error_t *err, bool admin)
{
    eng_server_t *self = w->server;
    proto_buf_reset(&w->out);
    if (rc != PROTO_OK) {
        hpp_status_t st = proto_err_status(rc);
        s_inc(&w->ctr->malformed);
        s_inc(&w->ctr->errors[st]);
        if (req->op == PROTO_OP_REPORT) {
            s_inc(&w->ctr->reports_refused);
        }
        proto_reply_error(&w->out, &req->id, st, err->msg);
        return S_REPLY;
    }
    if (!admin && s_admin_only(req)) {
        char msg[96];
        if (req->op == PROTO_OP_LEDGER) {
            snprintf(msg, sizeof msg, "ledger action '%s' needs an admin key",
                     proto_ledger_action_name(req->ledger.action));
        } else {
            snprintf(msg, sizeof msg, "op '%s' needs an admin key", proto_op_name(req->op));
        }
        s_inc(&w->ctr->requests[req->op]);
        s_inc(&w->ctr->errors[HPP_E_FORBIDDEN]);
        proto_reply_error(&w->out, &req->id, HPP_E_FORBIDDEN, msg);
        return S_REPLY;
    }
    if (req->op == PROTO_OP_RELOAD) {
        return S_RELOAD;
    }
    s_inc(&w->ctr->requests[req->op]);
    switch (req->op) {
    case PROTO_OP_REPORT: {
        char msg[192];
        if (!s_report(w, req, msg, sizeof msg)) {
            s_inc(&w->ctr->errors[HPP_E_BAD_REQUEST]);
            proto_reply_error(&w->out, &req->id, HPP_E_BAD_REQUEST, msg);
            return S_REPLY;
        }
        if (!req->ack) {
            return S_SILENT;
        }
        /* The acknowledgement says the settlements are on disk. */
        if (self->ledger_store && eng_ledger_sync(self->ledger, msg, sizeof msg) != HPP_OK) {
            s_inc(&w->ctr->errors[HPP_E_LEDGER_UNAVAILABLE]);
            proto_reply_error(&w->out, &req->id, HPP_E_LEDGER_UNAVAILABLE, msg);
            return S_REPLY;
        }
        proto_reply_report(&w->out, &req->id, req->attempts.n);
        break;
    }
    case PROTO_OP_LEDGER: {
        const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, w->index);
        eng_ledger_op(self->ledger, eng_snapshot_attached(snap), req, &w->out);
        eng_snapcell_release(self->cell, w->index);
        proto_reply_t peek;
        if (proto_reply_peek(w->out.data, w->out.len, &peek, NULL) == PROTO_OK && !peek.ok) {
            s_inc(&w->ctr->errors[peek.status < HPP_STATUS_COUNT ? peek.status : HPP_E_INTERNAL]);
        }
        break;
    }
    case PROTO_OP_ROUTE:
    case PROTO_OP_EXPLAIN:
        s_decide(w, req);
        break;
    case PROTO_OP_MODELS: {
        const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, w->index);
        size_t mlen = 0;
        const void *models = eng_snapshot_models(snap, &mlen);
        proto_reply_models(&w->out, &req->id, models, mlen);
        eng_snapcell_release(self->cell, w->index);
        break;
    }
    case PROTO_OP_STATS:
        s_stats(w, &req->id);
        break;
    default: { /* PROTO_OP_PING: version and hash of one snapshot, never of two */
        const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, w->index);
        proto_reply_ping_hash(&w->out, &req->id, eng_snapshot_version(snap),
                              eng_snapshot_hash(snap), HPP_VERSION);
        eng_snapcell_release(self->cell, w->index);
        break;
    }
    }
    if (w->out.overflow) {
        /* Growing failed (out of memory): a short error still fits. */
        proto_buf_reset(&w->out);
        s_inc(&w->ctr->errors[HPP_E_INTERNAL]);
        proto_reply_error(&w->out, &req->id, HPP_E_INTERNAL, "reply could not be encoded");
    }
    return S_REPLY;
}

/* Decodes the body (last frame) and answers it; see s_answer. The frontend
 * has refused admin ops to non-admin clients already: a message's User-Id
 * does not survive the inproc hop to a worker. */
static s_answer_t s_handle(s_worker_t *w, zmq_msg_t *parts, int n)
{
    proto_request_t req;
    proto_error_t err;
    int rc =
        proto_request_decode(zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), &req, &err);
    if (rc == PROTO_OK && req.op == PROTO_OP_RELOAD) {
        s_inc(&w->ctr->requests[PROTO_OP_RELOAD]);
    }
    return s_answer(w, &req, rc, &err, true);
}

static void *s_worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "hpp-worker"); /* as top -H, perf and /proc show it */
    s_worker_t *w = arg;
    for (;;) {
        zmq_msg_t parts[3];
        int n = s_recv(w->sock, parts, 3, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                eng_declog_flush(&w->declog); /* idle: receive timed out */
                continue;
            }
            break; /* ETERM: the server is stopping */
        }
        if (n < 2 || n > 3) {
            s_close_parts(parts, n < 3 ? n : 3);
            continue; /* the frontend only forwards checked envelopes */
        }
        s_answer_t how = s_handle(w, parts, n);
        if (how == S_SILENT) {
            /* No reply for the client, but an empty one for the frontend,
             * which counts what each client has at the workers. */
            zmq_msg_close(&parts[n - 1]);
            if (s_send_reply_flags(w->pool, w->sock, parts, n - 1, "", 0, 0) < 0) {
                s_inc(&w->ctr->dropped);
            }
            continue;
        }
        if (how == S_RELOAD) {
            /* reload: the reloader answers, through the frontend */
            for (int i = 0; i < n; i++) {
                zmq_msg_send(&parts[i], w->reload, i + 1 < n ? ZMQ_SNDMORE : 0);
            }
            continue;
        }
        zmq_msg_close(&parts[n - 1]); /* the request body: nothing borrows it now */
        /* Blocking: when the frontend falls behind, the worker waits rather
         * than pile replies up (the pipe holds about 2 x S_REPLY_HWM). */
        if (s_send_reply_flags(w->pool, w->sock, parts, n - 1, w->out.data, w->out.len, 0) < 0) {
            s_inc(&w->ctr->dropped);
        }
    }
    eng_declog_flush(&w->declog);
    zmq_close(w->sock);
    zmq_close(w->reload);
    return NULL;
}

/* Frontend ----------------------------------------------------------------- */

static bool s_is_direct(zmq_msg_t *ident, eng_direct_conn_t *conn);

/* Answers a message whose frames are not an envelope plus one body. */
static void s_envelope_error(eng_server_t *self, zmq_msg_t *parts, int n, int nframes)
{
    s_counters_t *ctr = &self->ctr[self->cfg.threads];
    s_inc(&ctr->malformed);
    s_inc(&ctr->errors[HPP_E_BAD_REQUEST]);
    char msg[160];
    snprintf(msg, sizeof msg,
             "envelope: %d frames after the identity; expected the body, or an empty "
             "delimiter then the body",
             nframes - 1);
    proto_buf_reset(&self->fout);
    proto_reply_error(&self->fout, NULL, HPP_E_BAD_REQUEST, msg);
    /* Keep the identity and, when the client used one, the delimiter. */
    int keep = (n >= 2 && zmq_msg_size(&parts[1]) == 0) ? 2 : 1;
    s_close_parts(parts + keep, n - keep);
    if (s_send_reply(self->front_worker.pool, self->front, parts, keep, self->fout.data,
                     self->fout.len) < 0) {
        s_inc(&ctr->dropped);
    }
}

/* May this message's client ask for admin ops? Without CURVE everyone may
 * (the engine is then for loopback only); with it, the User-Id the ZAP
 * handler gave the connection says. */
static bool s_admin(const eng_server_t *self, zmq_msg_t *body)
{
    if (!self->zap) {
        return true;
    }
    const char *uid = zmq_msg_gets(body, "User-Id");
    return uid && strcmp(uid, "admin") == 0;
}

/* Under CURVE every message carries the User-Id the ZAP handler gave its
 * connection. One without it got in with no check: should the ZAP thread
 * ever stop, libzmq lets CURVE handshakes through unchecked, and the engine
 * must still not serve a key nobody listed. Such a message is dropped. */
static bool s_authorized(const eng_server_t *self, zmq_msg_t *body)
{
    return !self->zap || zmq_msg_gets(body, "User-Id") != NULL;
}

/* Something was dropped or refused, or many reply bytes are queued: once
 * that has stopped, the memory it took is given back (s_trim_timeout). */
static void s_pressure(eng_server_t *self)
{
    self->trim_due = true;
    self->burst = true;
    self->pressure_at = s_mono_ms();
}

/* The fast path: route and ping (and undecodable frames) are answered right
 * here, because on loopback the two inproc hops to a worker and back cost
 * more than the decision itself (see bench/RESULTS.md); so is an admin op
 * from a client that may not ask for it. Returns false for the other ops,
 * which go to the workers so that a large explain or models reply never
 * delays a route. */
typedef enum {
    S_FRONT_PASS,   /* for the workers; *id set */
    S_FRONT_REPLY,  /* the front worker's `out` holds the reply */
    S_FRONT_SILENT, /* answered with no reply (a report without ack) */
} s_front_t;

static s_front_t s_front_decide(eng_server_t *self, const void *body, size_t len, bool admin,
                                proto_id_t *id)
{
    s_worker_t *w = &self->front_worker;
    proto_request_t req;
    proto_error_t err;
    int rc = proto_request_decode(body, len, &req, &err);
    /* With a ledger, reports go to the workers: settling may wait for
     * the store (a full write queue, the acknowledgement's sync). */
    bool inline_op =
        !self->cfg.route_workers && (req.op == PROTO_OP_ROUTE || req.op == PROTO_OP_PING ||
                                     (req.op == PROTO_OP_REPORT && !self->ledger_store));
    if (rc == PROTO_OK && !inline_op && (admin || !s_admin_only(&req))) {
        *id = req.id; /* borrows from the body, alive until the request is passed on */
        return S_FRONT_PASS;
    }
    return s_answer(w, &req, rc, &err, admin) == S_SILENT ? S_FRONT_SILENT : S_FRONT_REPLY;
}

static bool s_front_answer(eng_server_t *self, zmq_msg_t *parts, int n, bool admin, proto_id_t *id)
{
    s_worker_t *w = &self->front_worker;
    s_front_t r =
        s_front_decide(self, zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), admin, id);
    if (r == S_FRONT_PASS) {
        return false;
    }
    if (r == S_FRONT_SILENT) {
        s_close_parts(parts, n); /* a report without ack: fire and forget */
        return true;
    }
    zmq_msg_close(&parts[n - 1]);
    if (s_send_reply(w->pool, self->front, parts, n - 1, w->out.data, w->out.len) < 0) {
        s_inc(&w->ctr->dropped);
        s_pressure(self);
    }
    return true;
}

/* Answers a request the engine will not take (parts: its envelope and body,
 * all consumed) with an `internal` error saying why; counted as refused.
 * `id`: the request's, NULL when not decoded yet. A client whose connection
 * queue was just found full gets no reply tried for S_STALL_MS: it is not
 * reading, and encoding errors it will never see would only slow the others. */
static void s_refuse(eng_server_t *self, zmq_msg_t *parts, int n, const char *why,
                     const proto_id_t *id, eng_peer_t *peer)
{
    s_counters_t *ctr = &self->ctr[self->cfg.threads];
    s_inc(&ctr->refused);
    s_inc(&ctr->errors[HPP_E_INTERNAL]);
    s_pressure(self);
    if (peer && peer->stalled_until > self->pressure_at) {
        s_close_parts(parts, n);
        s_inc(&ctr->dropped);
        return;
    }
    proto_request_t req;
    if (!id && proto_request_decode(zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), &req,
                                    NULL) == PROTO_OK) {
        id = &req.id; /* so that a pipelining client can tell which request it was */
    }
    proto_buf_reset(&self->fout);
    proto_reply_error(&self->fout, id, HPP_E_INTERNAL, why);
    zmq_msg_close(&parts[n - 1]);
    if (s_send_reply(self->front_worker.pool, self->front, parts, n - 1, self->fout.data,
                     self->fout.len) < 0) {
        s_inc(&ctr->dropped);
        if (peer && errno == EAGAIN) {
            peer->stalled_until = self->pressure_at + S_STALL_MS;
        }
    }
}

/* May the client of `ident` have one more request at the workers? Sets
 * *peer to its entry (NULL when the table is full); when not, writes why
 * into why[0..cap). */
static bool s_admit(eng_server_t *self, zmq_msg_t *ident, eng_peer_t **peer, char *why, size_t cap)
{
    eng_peer_t *p = eng_peers_get(self->peers, zmq_msg_data(ident), zmq_msg_size(ident));
    *peer = p;
    int64_t all = eng_peers_queued(self->peers);
    if (!p) {
        snprintf(why, cap, "engine overloaded: %d clients have requests in progress", S_PEERS);
        return false;
    }
    int64_t mine = atomic_load_explicit(&p->queued, memory_order_relaxed);
    if (p->at_workers >= (uint32_t)self->cfg.peer_inflight) {
        snprintf(why, cap,
                 "engine overloaded: %u requests of this client in progress (--peer-inflight)",
                 p->at_workers);
    } else if (mine >= self->peer_queue_max) {
        snprintf(why, cap,
                 "engine overloaded: %lld bytes of replies to this client unread "
                 "(--peer-queue-kb)",
                 (long long)mine);
    } else if (all >= self->queue_max) {
        snprintf(why, cap, "engine overloaded: %lld bytes of replies unread (--queue-mb)",
                 (long long)all);
    } else {
        return true;
    }
    return false;
}

/* Passes an admitted request (its envelope and body) to the workers. The
 * message is atomic, so only the first frame can fail (every worker queue
 * full): then false, and the parts are still the caller's. */
static bool s_to_workers(eng_server_t *self, zmq_msg_t *parts, int n, eng_peer_t *peer)
{
    for (int i = 0; i < n; i++) {
        if (zmq_msg_send(&parts[i], self->back, (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
            return false;
        }
    }
    self->in_flight++;
    peer->at_workers++;
    return true;
}

/* Moves up to S_BATCH requests from the clients to the workers (or answers
 * them inline). Returns the number of messages read. */
static int s_front_in(eng_server_t *self)
{
    int count = 0;
    for (; count < S_BATCH; count++) {
        zmq_msg_t parts[3];
        int n = s_recv(self->front, parts, 3, ZMQ_DONTWAIT);
        if (n < 0) {
            break;
        }
        bool shaped = n == 2 || (n == 3 && zmq_msg_size(&parts[1]) == 0);
        if (!shaped) {
            s_envelope_error(self, parts, n < 3 ? n : 3, n);
            continue;
        }
        eng_direct_conn_t spoof;
        if (self->direct && s_is_direct(&parts[0], &spoof)) {
            /* A routing id of the direct listener's, announced by a ROUTER
             * peer: its replies would go to that connection. */
            s_inc(&self->ctr[self->cfg.threads].malformed);
            s_close_parts(parts, n);
            continue;
        }
        if (!s_authorized(self, &parts[n - 1])) {
            static bool said;
            if (!said) {
                said = true;
                eng_log(ENG_LOG_ERROR, "engine",
                        "a message came with no ZAP User-Id: the ZAP handler is not answering; "
                        "such messages are dropped");
            }
            for (int i = 0; i < n; i++) {
                zmq_msg_close(&parts[i]);
            }
            continue;
        }
        /* With --route-workers the frontend decodes nothing, except for a
         * non-admin client under CURVE, whose admin ops it must refuse here. */
        bool admin = s_admin(self, &parts[n - 1]);
        proto_id_t id;
        bool decoded = !self->cfg.route_workers || !admin;
        if (decoded && s_front_answer(self, parts, n, admin, &id)) {
            continue;
        }
        /* To the workers, within the client's limits (eng_peers.h). */
        eng_peer_t *peer = NULL;
        char why[160];
        if (!s_admit(self, &parts[0], &peer, why, sizeof why)) {
            s_refuse(self, parts, n, why, decoded ? &id : NULL, peer);
            continue;
        }
        if (s_to_workers(self, parts, n, peer)) {
            continue;
        }
        s_refuse(self, parts, n, "engine overloaded: request queue full", decoded ? &id : NULL,
                 peer);
    }
    return count;
}

/* Direct listener ------------------------------------------------------------ */

/* The routing id a direct connection's requests carry to the workers: a
 * zero byte, 'D', then the connection handle. libzmq reserves ids that
 * start with a zero byte and makes its own 5 bytes long, so no ROUTER peer
 * can have one of these. */
#define S_DIRECT_ID 10

static void s_direct_id(uint8_t id[S_DIRECT_ID], eng_direct_conn_t conn)
{
    id[0] = 0;
    id[1] = 'D';
    memcpy(id + 2, &conn, sizeof conn);
}

static bool s_is_direct(zmq_msg_t *ident, eng_direct_conn_t *conn)
{
    const uint8_t *id = zmq_msg_data(ident);
    if (zmq_msg_size(ident) != S_DIRECT_ID || id[0] != 0 || id[1] != 'D') {
        return false;
    }
    memcpy(conn, id + 2, sizeof *conn);
    return true;
}

/* Queues a reply to a direct connection. A large one over the connection's
 * limit is replaced by a short error with the same id, as s_drop_large
 * does for the ROUTER's clients. */
static void s_direct_put(eng_server_t *self, eng_direct_conn_t conn, bool delim, const void *body,
                         size_t len)
{
    s_counters_t *ctr = &self->ctr[self->cfg.threads];
    int rc = eng_direct_send(self->direct, conn, delim, body, len);
    if (rc == -2) {
        s_inc(&ctr->errors[HPP_E_INTERNAL]);
        proto_reply_t r;
        bool peeked = proto_reply_peek(body, len, &r, NULL) == PROTO_OK;
        char msg[160];
        snprintf(msg, sizeof msg,
                 "reply of %zu bytes dropped: this connection has %d KiB of replies unread "
                 "(--peer-queue-kb)",
                 len, self->cfg.peer_queue_kb);
        proto_buf_reset(&self->fout);
        proto_reply_error(&self->fout, peeked ? &r.id : NULL, HPP_E_INTERNAL, msg);
        rc = eng_direct_send(self->direct, conn, delim, self->fout.data, self->fout.len);
    }
    if (rc != 0) {
        s_inc(&ctr->dropped); /* -1: the client left */
        s_pressure(self);
    }
}

/* An error reply made by the frontend (`id` NULL when the request was not
 * decoded), counted under `st`. */
static void s_direct_error(eng_server_t *self, eng_direct_conn_t conn, bool delim,
                           const proto_id_t *id, hpp_status_t st, const char *msg)
{
    s_inc(&self->ctr[self->cfg.threads].errors[st]);
    proto_buf_reset(&self->fout);
    proto_reply_error(&self->fout, id, st, msg);
    s_direct_put(self, conn, delim, self->fout.data, self->fout.len);
}

/* A request for the workers, under the limits the ROUTER's clients have. */
static void s_direct_pass(eng_server_t *self, eng_direct_conn_t conn, const eng_direct_msg_t *m,
                          const proto_id_t *id)
{
    s_counters_t *ctr = &self->ctr[self->cfg.threads];
    uint8_t ident[S_DIRECT_ID];
    s_direct_id(ident, conn);
    zmq_msg_t parts[3];
    int n = 0;
    zmq_msg_init_size(&parts[n++], sizeof ident);
    memcpy(zmq_msg_data(&parts[0]), ident, sizeof ident);
    if (m->delim) {
        zmq_msg_init(&parts[n++]);
    }
    const char *why = "engine overloaded: request queue full";
    char whybuf[160];
    eng_peer_t *peer = NULL;
    if (zmq_msg_init_size(&parts[n], m->len) != 0) {
        why = "engine out of memory";
    } else {
        memcpy(zmq_msg_data(&parts[n]), m->body, m->len);
        n++;
        if (!s_admit(self, &parts[0], &peer, whybuf, sizeof whybuf)) {
            why = whybuf;
        } else if (s_to_workers(self, parts, n, peer)) {
            return;
        }
    }
    s_close_parts(parts, n);
    s_inc(&ctr->refused);
    s_pressure(self);
    s_direct_error(self, conn, m->delim, id, HPP_E_INTERNAL, why);
}

/* One message from a direct connection. Its clients hold no key: they may
 * ask for admin ops only when the engine checks no keys at all, as on the
 * ROUTER without CURVE. */
static void s_direct_msg(void *arg, eng_direct_conn_t conn, const eng_direct_msg_t *m)
{
    eng_server_t *self = arg;
    s_worker_t *w = &self->front_worker;
    if (m->frames != 1 && !(m->frames == 2 && m->delim)) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "envelope: %u frames; expected the body, or an empty delimiter then the body",
                 m->frames);
        s_inc(&w->ctr->malformed);
        s_direct_error(self, conn, m->delim, NULL, HPP_E_BAD_REQUEST, msg);
        return;
    }
    proto_id_t id;
    switch (s_front_decide(self, m->body, m->len, !self->zap, &id)) {
    case S_FRONT_PASS:
        s_direct_pass(self, conn, m, &id);
        break;
    case S_FRONT_REPLY:
        s_direct_put(self, conn, m->delim, w->out.data, w->out.len);
        break;
    case S_FRONT_SILENT:
        break;
    }
}

/* Would `len` more reply bytes for `peer` pass the limits? One reply always
 * may when nothing is queued, or a reply larger than a limit could never be
 * sent. */
static bool s_over_budget(const eng_server_t *self, const eng_peer_t *peer, size_t len)
{
    int64_t mine = atomic_load_explicit(&peer->queued, memory_order_relaxed);
    int64_t all = eng_peers_queued(self->peers);
    return (mine > 0 && mine + (int64_t)len > self->peer_queue_max) ||
           (all > 0 && all + (int64_t)len > self->queue_max);
}

/* Sends, instead of a large reply over the limits (parts, consumed), a
 * short error with the same id: the client learns its request failed
 * without the engine holding the bytes. Counted as dropped. */
static void s_drop_large(eng_server_t *self, zmq_msg_t *parts, int n, const eng_peer_t *peer)
{
    s_counters_t *ctr = &self->ctr[self->cfg.threads];
    s_inc(&ctr->dropped);
    s_inc(&ctr->errors[HPP_E_INTERNAL]);
    s_pressure(self);
    proto_reply_t r;
    bool peeked = proto_reply_peek(zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), &r,
                                   NULL) == PROTO_OK;
    char msg[200];
    snprintf(msg, sizeof msg,
             "reply of %zu bytes dropped: %lld bytes of replies to this client and %lld in all "
             "are unread (--peer-queue-kb, --queue-mb)",
             zmq_msg_size(&parts[n - 1]),
             (long long)atomic_load_explicit(&peer->queued, memory_order_relaxed),
             (long long)eng_peers_queued(self->peers));
    proto_buf_reset(&self->fout);
    proto_reply_error(&self->fout, peeked ? &r.id : NULL, HPP_E_INTERNAL, msg);
    zmq_msg_close(&parts[n - 1]);
    if (s_send_reply(self->front_worker.pool, self->front, parts, n - 1, self->fout.data,
                     self->fout.len) < 0) {
        s_inc(&ctr->dropped);
    }
}

/* Moves up to S_BATCH replies from `from` (workers or reloader) to clients. */
static void s_replies_out(eng_server_t *self, void *from)
{
    s_counters_t *ctr = &self->ctr[self->cfg.threads];
    for (int count = 0; count < S_BATCH; count++) {
        zmq_msg_t parts[3];
        int n = s_recv(from, parts, 3, ZMQ_DONTWAIT);
        if (n < 0) {
            return;
        }
        if (self->in_flight > 0) {
            self->in_flight--;
        }
        if (n < 2 || n > 3) {
            s_close_parts(parts, n < 3 ? n : 3);
            continue;
        }
        eng_peer_t *peer =
            eng_peers_find(self->peers, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
        if (peer && peer->at_workers > 0) {
            peer->at_workers--;
        }
        size_t len = zmq_msg_size(&parts[n - 1]);
        if (len == 0) {
            s_close_parts(parts, n); /* a report that asked for no reply */
            continue;
        }
        eng_direct_conn_t conn;
        if (self->direct && s_is_direct(&parts[0], &conn)) {
            s_direct_put(self, conn, n == 3, zmq_msg_data(&parts[n - 1]), len);
            s_close_parts(parts, n);
            continue;
        }
        bool counted = peer && len >= S_COUNTED_MIN;
        if (counted && s_over_budget(self, peer, len)) {
            s_drop_large(self, parts, n, peer);
            continue;
        }
        int i = 0;
        for (; i < n; i++) {
            int flags = (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT;
            int rc = counted && i + 1 == n
                         ? eng_peers_send(self->peers, peer, self->front, &parts[i], flags)
                         : zmq_msg_send(&parts[i], self->front, flags);
            if (rc < 0) {
                /* EHOSTUNREACH: the client is gone; EAGAIN: it stopped reading. */
                s_close_parts(parts + i, counted && i + 1 == n ? 0 : n - i);
                s_inc(&ctr->dropped);
                s_pressure(self);
                break;
            }
        }
        if (i == n && counted && eng_peers_queued(self->peers) > S_TRIM_LOW) {
            s_pressure(self);
        }
    }
}

/* After a burst of drops or refusals, once it has been over for a second and
 * the queued reply bytes are low again (the clients read them or left),
 * gives the freed memory back to the system: glibc keeps freed heap pages
 * otherwise, and a flood would leave the engine at its peak size for good.
 * Returns the epoll timeout to use so that this check comes round. */
static int s_trim_timeout(eng_server_t *self, int timeout)
{
    if (!self->trim_due) {
        return timeout;
    }
    int64_t now = s_mono_ms();
    if (now - self->pressure_at >= S_TRIM_MS && now - self->trim_at >= S_TRIM_MS &&
        eng_peers_queued(self->peers) <= S_TRIM_LOW) {
        size_t blocks = eng_msgpool_trim(self->front_worker.pool, S_POOL_KEEP);
        malloc_trim(0);
        eng_log(ENG_LOG_DEBUG, "engine", "after a burst: %zu message blocks freed, heap trimmed",
                blocks);
        self->trim_due = false;
        self->trim_at = now;
        return timeout;
    }
    return timeout < 0 || timeout > S_TRIM_MS ? S_TRIM_MS : timeout;
}

/* Reads the client socket's disconnection events. A client that leaves
 * frees what libzmq held for it (its unread replies): once the engine has
 * seen drops or refusals, which is when clients hold much, a departure
 * calls for a trim a second later (at most one a second). */
static void s_monitor_in(eng_server_t *self)
{
    for (int count = 0; count < S_BATCH; count++) {
        zmq_msg_t parts[2];
        int n = s_recv(self->monitor, parts, 2, ZMQ_DONTWAIT);
        if (n < 0) {
            return;
        }
        s_close_parts(parts, n < 2 ? n : 2);
        if (self->burst) {
            self->trim_due = true;
            self->pressure_at = s_mono_ms();
        }
    }
}

/* SIGHUP: the decision log path is opened anew (logrotate renames the file,
 * then signals), so new lines go to the new file. The frontend's own lines
 * go out first, to the file they were decided under. */
static void s_reopen_declog(eng_server_t *self)
{
    if (!self->declog) {
        return;
    }
    eng_declog_flush(&self->front_worker.declog);
    eng_error_t err = {0};
    if (eng_declog_reopen(self->declog, &err) != 0) {
        char msg[768];
        eng_error_format(&err, msg, sizeof msg);
        eng_log(ENG_LOG_ERROR, "engine", "SIGHUP: %s; lines keep going to the previous file", msg);
        return;
    }
    eng_log(ENG_LOG_INFO, "engine", "SIGHUP: decision log %s reopened", self->cfg.decision_log);
}

/* Returns 1 to start draining, 2 to exit at once, 0 otherwise. */
static int s_on_signal(eng_server_t *self, bool draining)
{
    struct signalfd_siginfo si;
    int action = 0;
    while (read(self->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            eng_log(ENG_LOG_INFO, "engine", "SIGHUP: reloading");
            zmq_send(self->to_reloader, "sighup", 6, ZMQ_DONTWAIT);
            s_reopen_declog(self);
        } else if (draining || action == 1) {
            eng_log(ENG_LOG_WARN, "engine", "second stop signal: exiting without draining");
            action = 2;
        } else {
            eng_log(ENG_LOG_INFO, "engine", "%s: draining, then exiting",
                    si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            sd_notify(0, "STOPPING=1");
            action = 1;
        }
    }
    return action;
}

/* The frontend waits in epoll on the sockets' ZMQ_FDs and the signalfd
 * rather than in zmq_poll. zmq_poll asks every socket for ZMQ_EVENTS before
 * and after its poll(2), and each ask costs libzmq two or three system calls
 * (a fork check and a poll of the socket's mailbox): about thirty per request
 * at one request in flight. Here a socket is asked only when its descriptor
 * fired or when the loop itself sent or received on it, since either can
 * leave a message waiting with no edge on the descriptor (ZMQ_FD signals
 * mailbox commands, not messages). */
enum {
    S_WAIT_FRONT,
    S_WAIT_BACK,
    S_WAIT_REPLIES,
    S_WAIT_MONITOR,
    S_WAIT_SOCKS,
    S_WAIT_SIGNAL = S_WAIT_SOCKS,
    S_WAIT_DIRECT, /* the direct listener's epoll set */
    S_WAIT_ALL
};

/* Does the direct listener's due work (eng_direct_poll). True when it read
 * requests: passing them on may have taken the back socket's edge, so the
 * caller asks that socket again. */
static bool s_direct_in(eng_server_t *self, bool draining, int64_t *last_in)
{
    if (eng_direct_poll(self->direct, s_direct_msg, self) == 0) {
        return false;
    }
    if (draining) {
        *last_in = s_mono_ms();
    }
    return true;
}

/* Returns the bits of `check` whose socket has a message waiting. */
static unsigned s_ready(void *const *socks, unsigned check)
{
    unsigned ready = 0;
    for (unsigned i = 0; i < S_WAIT_SOCKS; i++) {
        int events = 0;
        size_t sz = sizeof events;
        if ((check & (1u << i)) && zmq_getsockopt(socks[i], ZMQ_EVENTS, &events, &sz) == 0 &&
            (events & ZMQ_POLLIN)) {
            ready |= 1u << i;
        }
    }
    return ready;
}

/* An epoll set of the frontend's sockets and the signalfd, or -1. */
static int s_watch_set(void *const *socks, int sigfd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        return -1;
    }
    for (unsigned i = 0; i <= S_WAIT_SOCKS; i++) {
        int fd = sigfd;
        size_t sz = sizeof fd;
        if (i < S_WAIT_SOCKS && zmq_getsockopt(socks[i], ZMQ_FD, &fd, &sz) != 0) {
            close(ep);
            return -1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(ep);
            return -1;
        }
    }
    return ep;
}

int eng_server_run(eng_server_t *self)
{
    void *const socks[S_WAIT_SOCKS] = {self->front, self->back, self->replies, self->monitor};
    const int ep = self->epfd;
    int rc = 0;
    const unsigned all = (1u << S_WAIT_SOCKS) - 1;
    unsigned check = all, serve = all; /* serve: the sockets read from */
    bool draining = false;
    int64_t drain_start = 0, last_in = 0;
    for (;;) {
        int timeout = -1;
        if (draining) {
            int64_t now = s_mono_ms();
            if ((serve & (1u << S_WAIT_FRONT)) && now - last_in >= S_QUIET_MS) {
                /* Quiet: take no more requests. Its descriptor leaves the
                 * set, or the commands nobody reads would wake us forever. */
                serve &= ~(1u << S_WAIT_FRONT);
                if (self->direct) {
                    eng_direct_stop(self->direct);
                }
                int fd = -1;
                size_t sz = sizeof fd;
                if (zmq_getsockopt(self->front, ZMQ_FD, &fd, &sz) == 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                }
            }
            if (!(serve & (1u << S_WAIT_FRONT)) && self->in_flight == 0) {
                break;
            }
            if (now - drain_start >= self->cfg.drain_ms) {
                eng_log(ENG_LOG_WARN, "engine", "drain time over with %llu requests unanswered",
                        (unsigned long long)self->in_flight);
                break;
            }
            timeout = (serve & (1u << S_WAIT_FRONT)) ? (int)(S_QUIET_MS - (now - last_in)) : 10;
            if (timeout < 1) {
                timeout = 1;
            }
        }
        unsigned ready = s_ready(socks, check & serve);
        bool signalled = false;
        if (!ready) {
            bool flush_due = eng_declog_pending(&self->front_worker.declog);
            if (flush_due && (timeout < 0 || timeout > S_IDLE_FLUSH_MS)) {
                timeout = S_IDLE_FLUSH_MS;
            }
            timeout = s_trim_timeout(self, timeout);
            struct epoll_event evs[S_WAIT_ALL];
            int n = epoll_wait(ep, evs, S_WAIT_ALL, timeout);
            if (n < 0 && errno != EINTR) {
                eng_log(ENG_LOG_ERROR, "engine", "epoll_wait failed: %s", strerror(errno));
                rc = 1;
                break;
            }
            if (n == 0 && flush_due) {
                eng_declog_flush(&self->front_worker.declog); /* idle */
            }
            check = 0;
            bool direct = false;
            for (int i = 0; i < n; i++) {
                if (evs[i].data.u32 == S_WAIT_SIGNAL) {
                    signalled = true;
                } else if (evs[i].data.u32 == S_WAIT_DIRECT) {
                    direct = true;
                } else {
                    check |= 1u << evs[i].data.u32;
                }
            }
            if (direct && s_direct_in(self, draining, &last_in)) {
                check |= 1u << S_WAIT_BACK;
            }
            if (!signalled) {
                continue; /* ask the sockets that fired */
            }
        }
        /* What the loop touches now must be asked again before it sleeps. */
        check = ready;
        /* Sockets with messages waiting skip the epoll_wait above, which
         * alone reports the direct listener: it is asked here too, or a
         * ROUTER that never runs dry would starve it. */
        if (ready && self->direct && s_direct_in(self, draining, &last_in)) {
            check |= 1u << S_WAIT_BACK;
        }
        if (signalled) {
            int act = s_on_signal(self, draining);
            if (act == 2) {
                break;
            }
            if (act == 1) {
                draining = true;
                drain_start = last_in = s_mono_ms();
            }
            check = all;
        }
        if (ready & (1u << S_WAIT_FRONT)) {
            if (s_front_in(self) > 0 && draining) {
                last_in = s_mono_ms();
            }
            check |= 1u << S_WAIT_BACK;
        }
        if (ready & (1u << S_WAIT_BACK)) {
            s_replies_out(self, self->back);
            check |= 1u << S_WAIT_FRONT;
        }
        if (ready & (1u << S_WAIT_REPLIES)) {
            s_replies_out(self, self->replies);
            check |= 1u << S_WAIT_FRONT;
        }
        if (self->direct && (ready & (1u << S_WAIT_BACK | 1u << S_WAIT_REPLIES))) {
            eng_direct_flush(self->direct); /* what those replies queued */
        }
        if (ready & (1u << S_WAIT_MONITOR)) {
            s_monitor_in(self);
        }
    }
    if (self->direct) {
        eng_direct_linger(self->direct, S_LINGER_MS); /* as the ROUTER's ZMQ_LINGER */
    }
    eng_log(ENG_LOG_INFO, "engine", "stopped");
    return rc;
}

/* Setup and teardown ------------------------------------------------------------ */

const char *eng_server_endpoint(const eng_server_t *self)
{
    return self->endpoint;
}

const char *eng_server_direct_endpoint(const eng_server_t *self)
{
    return self->direct ? eng_direct_endpoint(self->direct) : NULL;
}

const char *eng_server_metrics_address(const eng_server_t *self)
{
    return self->metrics ? eng_metrics_address(self->metrics) : NULL;
}

static void *s_socket(eng_server_t *self, int type, eng_error_t *err)
{
    void *s = zmq_socket(self->ctx, type);
    if (!s) {
        eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    s_setint(s, ZMQ_SNDHWM, S_HWM);
    s_setint(s, ZMQ_RCVHWM, S_HWM);
    s_setint(s, ZMQ_LINGER, 0);
    return s;
}

static int s_bind(void *s, const char *ep, eng_error_t *err)
{
    if (zmq_bind(s, ep) != 0) {
        /* A malformed endpoint is bad input; EADDRINUSE and the like are not. */
        int e = errno;
        bool bad = e == EINVAL || e == EPROTONOSUPPORT || e == ENODEV || e == ENOCOMPATPROTO;
        return eng_error_set(err, bad ? ENG_ERR_VALUE : ENG_ERR_IO, ep, 0, 0, NULL,
                             "cannot bind: %s", zmq_strerror(e));
    }
    return 0;
}

/* Makes the ROUTER a CURVE server behind the ZAP handler; both before it
 * binds, so no connection is ever accepted unchecked. The secret is read
 * from a file only (never argv), handed to libzmq and wiped. */
static int s_curve(eng_server_t *self, eng_error_t *err)
{
    if (!self->cfg.curve_clients) {
        return eng_error_set(err, ENG_ERR_VALUE, self->cfg.curve_secret, 0, 0, NULL,
                             "a CURVE server needs the allowed client keys (--curve-clients)");
    }
    hpp_key_t secret, public;
    char why[512];
    if (hpp_key_read_secret(self->cfg.curve_secret, &secret, &public, why, sizeof why) != 0) {
        return eng_error_set(err, ENG_ERR_VALUE, NULL, 0, 0, NULL, "%s", why);
    }
    self->zap = eng_zap_new(self->ctx, self->cfg.curve_clients, err);
    int on = 1;
    int rc = self->zap && zmq_setsockopt(self->front, ZMQ_CURVE_SERVER, &on, sizeof on) == 0 &&
                     zmq_setsockopt(self->front, ZMQ_CURVE_SECRETKEY, secret.z85, HPP_KEY_LEN) == 0
                 ? 0
                 : -1;
    explicit_bzero(&secret, sizeof secret);
    if (!self->zap) {
        /* A bad list is bad input, whatever the loader called it. */
        if (err && err->code != ENG_ERR_NOMEM) {
            err->code = ENG_ERR_VALUE;
        }
        return -1;
    }
    if (rc != 0) {
        return eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "CURVE: %s%s", zmq_strerror(errno),
                             zmq_has("curve") ? "" : " (libzmq was built without CURVE)");
    }
    eng_log(ENG_LOG_INFO, "curve", "CURVE server, public key %s", public.z85);
    return 0;
}

/* The direct listener, watched by the frontend's epoll set. It speaks no
 * CURVE, so under CURVE it may only be a unix socket, whose file mode is
 * the check (eng_direct.h). */
static int s_open_direct(eng_server_t *self, eng_error_t *err)
{
    if (self->zap && strncmp(self->cfg.direct, "ipc://", 6) != 0) {
        return eng_error_set(err, ENG_ERR_VALUE, self->cfg.direct, 0, 0, NULL,
                             "--direct speaks no CURVE: with --curve-secret it must be an "
                             "ipc:// path, whose file mode says who may connect");
    }
    self->direct = eng_direct_new(self->cfg.direct, PROTO_MAX_HARD_FRAME,
                                  (size_t)self->peer_queue_max, (size_t)self->queue_max, err);
    if (!self->direct) {
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = S_WAIT_DIRECT};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, eng_direct_fd(self->direct), &ev) != 0) {
        return eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "epoll: %s", strerror(errno));
    }
    return 0;
}

static int s_start_workers(eng_server_t *self, eng_error_t *err)
{
    int n = self->cfg.threads;
    self->workers = calloc((size_t)n, sizeof *self->workers);
    if (!self->workers) {
        return eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        s_worker_t *w = &self->workers[i];
        w->server = self;
        w->index = (size_t)i;
        w->ctr = &self->ctr[i];
        w->trace = calloc(S_TRACE_CAP, sizeof *w->trace);
        if (eng_declog_writer_init(&w->declog, self->declog, err) != 0) {
            return -1;
        }
        w->sock = s_socket(self, ZMQ_DEALER, err);
        if (w->sock) {
            s_setint(w->sock, ZMQ_SNDHWM, S_REPLY_HWM);
        }
        w->reload = s_socket(self, ZMQ_PUSH, err);
        w->pool = eng_msgpool_new();
        if (!w->trace || !w->sock || !w->reload || !w->pool ||
            proto_buf_init(&w->out, 64 * 1024) != 0) {
            return eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "worker %d: setup failed",
                                 i);
        }
        if (self->declog) {
            s_setint(w->sock, ZMQ_RCVTIMEO, S_IDLE_FLUSH_MS);
        }
        if (zmq_connect(w->sock, S_BACKEND) != 0 || zmq_connect(w->reload, S_RELOADS) != 0) {
            return eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "worker %d: connect: %s", i,
                                 zmq_strerror(errno));
        }
        if (pthread_create(&w->thread, NULL, s_worker_main, w) != 0) {
            return eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "worker %d: no thread", i);
        }
        w->started = true;
        self->nstarted++;
    }
    return 0;
}

static int s_block_signals(eng_server_t *self, eng_error_t *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    self->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (self->sigfd < 0) {
        return eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "signalfd: %s", strerror(errno));
    }
    return 0;
}

eng_server_t *eng_server_new(const eng_server_cfg_t *cfg, eng_error_t *err)
{
    eng_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->sigfd = -1;
    self->epfd = -1;
    pthread_mutex_init(&self->rl_mu, NULL);
    pthread_mutex_init(&self->health_mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &self->started);
    proto_buf_init_fixed(&self->fout, self->fmem, sizeof self->fmem);
    if (self->cfg.threads < 1) {
        self->cfg.threads = 1;
    }
    if (self->cfg.threads > ENG_SERVER_MAX_THREADS) {
        self->cfg.threads = ENG_SERVER_MAX_THREADS;
    }
    if (self->cfg.ncatalogs == 0) {
        self->cfg.catalogs[0] = eng_catalog_default_path();
        self->cfg.ncatalogs = 1;
    }
    if (s_block_signals(self, err) != 0) {
        goto fail;
    }
    self->ctr = aligned_alloc(64, sizeof(s_counters_t) * (size_t)(self->cfg.threads + 2));
    if (!self->ctr) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        goto fail;
    }
    memset(self->ctr, 0, sizeof(s_counters_t) * (size_t)(self->cfg.threads + 2));

    /* The first snapshot: failing here is a startup error. */
    self->peers = eng_peers_new(S_PEERS);
    self->peer_queue_max = (int64_t)self->cfg.peer_queue_kb << 10;
    self->queue_max = (int64_t)self->cfg.queue_mb << 20;
    if (!self->peers) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        goto fail;
    }
    /* Counting threads: the workers and the frontend (w->index). */
    if (self->cfg.metrics_listen &&
        !(self->metrics = eng_metrics_new((size_t)self->cfg.threads + 1, err))) {
        goto fail;
    }
    if (self->cfg.ledger.store || self->cfg.ledger.keys) {
        char lerr[512];
        self->ledger = eng_ledger_new(&self->cfg.ledger, lerr, sizeof lerr);
        if (!self->ledger) {
            /* No file: the message names the store (--ledger PATH, or the Redis address). */
            eng_error_set(err, ENG_ERR_VALUE, NULL, 0, 0, NULL, "%s", lerr);
            goto fail;
        }
        self->ledger_store = eng_ledger_has_store(self->ledger);
        self->id_base = self->ledger_store ? eng_ledger_id_base() : 0;
        if (self->ledger_store) {
            eng_log(ENG_LOG_INFO, "engine", "ledger: %s, node %llu, hold %d s%s",
                    self->cfg.ledger.store, (unsigned long long)eng_ledger_node(self->ledger),
                    self->cfg.ledger.hold_s,
                    self->cfg.ledger.optional ? ", routes without a key unchecked" : "");
        }
    }
    self->next_version = 1;
    eng_snapshot_t *first = NULL;
    if (!s_reload(self, "startup", &first)) {
        eng_error_set(err, ENG_ERR_SYNTAX, self->cfg.policy, 0, 0, NULL,
                      "policy or catalog did not load, or failed a --reload-cases case "
                      "(see the diagnostics above)");
        goto fail;
    }
    /* Readers: the workers, the frontend (slot `threads`), metrics (`threads` + 1). */
    self->cell = eng_snapcell_new(&first, (size_t)self->cfg.threads + 2);
    if (!self->cell) {
        eng_snapshot_destroy(&first);
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        goto fail;
    }
    if (self->cfg.decision_log) {
        self->declog = eng_declog_open(self->cfg.decision_log, err);
        if (!self->declog) {
            goto fail;
        }
    }

    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    self->front = s_socket(self, ZMQ_ROUTER, err);
    self->back = s_socket(self, ZMQ_DEALER, err);
    if (self->back) {
        /* Replies a worker made but the frontend has not taken: a models
         * reply can be hundreds of kilobytes, so few. */
        s_setint(self->back, ZMQ_RCVHWM, S_REPLY_HWM);
    }
    self->replies = s_socket(self, ZMQ_PULL, err);
    self->to_reloader = s_socket(self, ZMQ_PUSH, err);
    self->rl_pull = s_socket(self, ZMQ_PULL, err);
    self->rl_push = s_socket(self, ZMQ_PUSH, err);
    if (!self->front || !self->back || !self->replies || !self->to_reloader || !self->rl_pull ||
        !self->rl_push) {
        goto fail;
    }
    if (self->cfg.curve_secret && s_curve(self, err) != 0) {
        goto fail;
    }
    s_setint(self->front, ZMQ_ROUTER_MANDATORY, 1);
    if (zmq_socket_monitor(self->front, S_MONITOR, ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(self->monitor = s_socket(self, ZMQ_PAIR, err)) ||
        zmq_connect(self->monitor, S_MONITOR) != 0) {
        if (err && err->code == ENG_ERR_NONE) {
            eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "monitor: %s", zmq_strerror(errno));
        }
        goto fail;
    }
    /* Per client connection: requests read ahead, replies not yet written. */
    s_setint(self->front, ZMQ_SNDHWM, self->cfg.peer_hwm);
    s_setint(self->front, ZMQ_RCVHWM, self->cfg.peer_hwm);
    s_setint(self->front, ZMQ_LINGER, S_LINGER_MS);
    int64_t maxmsg = PROTO_MAX_HARD_FRAME;
    zmq_setsockopt(self->front, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (s_bind(self->back, S_BACKEND, err) != 0 || s_bind(self->rl_pull, S_RELOADS, err) != 0 ||
        s_bind(self->replies, S_REPLIES, err) != 0 || zmq_connect(self->rl_push, S_REPLIES) != 0 ||
        zmq_connect(self->to_reloader, S_RELOADS) != 0) {
        if (err && err->code == ENG_ERR_NONE) {
            eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "inproc: %s", zmq_strerror(errno));
        }
        goto fail;
    }
    if (s_bind(self->front, self->cfg.listen, err) != 0) {
        goto fail;
    }
    size_t eplen = sizeof self->endpoint;
    if (zmq_getsockopt(self->front, ZMQ_LAST_ENDPOINT, self->endpoint, &eplen) != 0) {
        snprintf(self->endpoint, sizeof self->endpoint, "%s", self->cfg.listen);
    }
    if (self->metrics && eng_metrics_serve(self->metrics, self->cfg.metrics_listen,
                                           s_metrics_collect, self, err) != 0) {
        goto fail;
    }
    void *const socks[S_WAIT_SOCKS] = {self->front, self->back, self->replies, self->monitor};
    self->epfd = s_watch_set(socks, self->sigfd);
    if (self->epfd < 0) {
        eng_error_set(err, ENG_ERR_IO, NULL, 0, 0, NULL, "epoll: %s", strerror(errno));
        goto fail;
    }
    if (self->cfg.direct && s_open_direct(self, err) != 0) {
        goto fail;
    }
    s_worker_t *fw = &self->front_worker;
    fw->server = self;
    fw->index = (size_t)self->cfg.threads;
    fw->ctr = &self->ctr[self->cfg.threads];
    if (eng_declog_writer_init(&fw->declog, self->declog, err) != 0) {
        goto fail;
    }
    fw->pool = eng_msgpool_new();
    if (!fw->pool || proto_buf_init(&fw->out, 64 * 1024) != 0) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "out of memory");
        goto fail;
    }
    if (s_start_workers(self, err) != 0) {
        goto fail;
    }
    if (pthread_create(&self->reloader, NULL, s_reloader_main, self) != 0) {
        eng_error_set(err, ENG_ERR_NOMEM, NULL, 0, 0, NULL, "no reloader thread");
        goto fail;
    }
    self->reloader_started = true;
    eng_log(ENG_LOG_INFO, "engine", "listening on %s%s%s with %d workers%s", self->endpoint,
            self->direct ? " and directly on " : "",
            self->direct ? eng_direct_endpoint(self->direct) : "", self->cfg.threads,
            self->cfg.watch ? ", watching files" : "");
    return self;
fail:
    eng_server_destroy(&self);
    return NULL;
}

static void s_stop_threads(eng_server_t *self)
{
    eng_metrics_stop(self->metrics); /* its thread reads what the rest frees */
    if (self->reloader_started) {
        zmq_send(self->to_reloader, "$TERM", 5, 0);
        pthread_join(self->reloader, NULL);
        self->reloader_started = false;
    }
    if (self->ctx) {
        /* Wakes every worker blocked in a receive with ETERM. */
        zmq_ctx_shutdown(self->ctx);
    }
    for (int i = 0; i < self->nstarted; i++) {
        pthread_join(self->workers[i].thread, NULL);
    }
    self->nstarted = 0;
    eng_zap_destroy(&self->zap); /* its thread, woken the same way */
}

void eng_server_destroy(eng_server_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_server_t *self = *self_p;
    s_stop_threads(self);
    eng_direct_destroy(&self->direct); /* the workers are gone: no reply is on its way */
    if (self->workers) {
        for (int i = 0; i < self->cfg.threads; i++) {
            s_worker_t *w = &self->workers[i];
            if (!w->started) {
                /* Never started: no thread closed its sockets. */
                if (w->sock) {
                    zmq_close(w->sock);
                }
                if (w->reload) {
                    zmq_close(w->reload);
                }
            }
        }
    }
    eng_declog_flush(&self->front_worker.declog);
    void **socks[] = {&self->monitor,     &self->front,   &self->back,   &self->replies,
                      &self->to_reloader, &self->rl_pull, &self->rl_push};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        if (*socks[i]) {
            zmq_close(*socks[i]);
            *socks[i] = NULL;
        }
    }
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    /* Every message is released now, so the pools' blocks are all back. */
    for (int i = 0; self->workers && i < self->cfg.threads; i++) {
        s_worker_t *w = &self->workers[i];
        proto_buf_destroy(&w->out);
        free(w->trace);
        eng_msgpool_destroy(&w->pool);
    }
    free(self->workers);
    proto_buf_destroy(&self->front_worker.out);
    eng_msgpool_destroy(&self->front_worker.pool);
    eng_declog_destroy(&self->declog);
    eng_peers_destroy(&self->peers); /* after zmq_ctx_term: no message counts on it now */
    eng_snapcell_destroy(&self->cell);
    eng_ledger_keys_release(self->rl_keys);
    eng_ledger_destroy(&self->ledger);   /* after every thread that settles: the store's writer
                                          * commits what is left */
    eng_metrics_destroy(&self->metrics); /* no thread counts on it now */
    if (self->epfd >= 0) {
        close(self->epfd);
    }
    if (self->sigfd >= 0) {
        close(self->sigfd);
    }
    free(self->ctr);
    pthread_mutex_destroy(&self->rl_mu);
    pthread_mutex_destroy(&self->health_mu);
    free(self);
    *self_p = NULL;
}
