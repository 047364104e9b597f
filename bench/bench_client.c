/* bench_client.c - load through the C client (hpp_client.h) with several
 * engines, optionally killing one of them mid-run (loopback only).
 *
 *   bench_client --engine tcp://127.0.0.1:5555 --engine tcp://127.0.0.1:5556 --seconds 3
 *   bench_client --engine A --engine B --engine C --kill-pid PID --kill-after 2 --seconds 6
 *
 * Each thread (--threads, default 4) has its own client connected to every
 * engine and sends synchronous route requests back to back (closed loop),
 * each with --timeout-ms (default 1000): what a gateway with several
 * engines sees, resends included. With --kill-pid, SIGKILL goes to that
 * process (an engine the caller started) --kill-after seconds into the
 * run, and the report says what the kill cost: requests that failed, and
 * how long after the kill requests were still disturbed (failed, or slower
 * than 5x the p99.9 before the kill and at least 10 ms: a request that
 * waited for a resend, not the machine's usual hiccups): `recovery_ms`.
 *
 * Prints a summary, then one JSON line (--json: the JSON line only).
 * Exit status: 0 when every request was answered, 1 otherwise, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hpp_client.h"

#define S_MAX_THREADS 32

typedef struct {
    hpp_client_opts_t copts;                         /* endpoints, keys, resend */
    const char *endpoints[HPP_CLIENT_MAX_ENDPOINTS]; /* --engine */
    int threads;                                     /* clients, one thread each */
    double seconds;                                  /* run length */
    int timeout_ms;                                  /* per request */
    pid_t kill_pid;                                  /* 0: kill nothing */
    double kill_after;                               /* seconds into the run */
    bool json_only;                                  /* --json */
} s_opts_t;

/* One finished request. */
typedef struct {
    int64_t end_ns; /* completion, from the run's start */
    int64_t lat_ns; /* how long it took */
    bool ok;        /* answered ok */
} s_req_t;

typedef struct {
    const s_opts_t *o;
    void *ctx;
    int index;
    int64_t t0;                /* the run's start (monotonic ns) */
    s_req_t *reqs;             /* finished requests */
    size_t n, cap;             /* used, allocated */
    hpp_client_counters_t cnt; /* the client's counters at the end */
    char error[256];           /* the first failure */
} s_thread_t;

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *s_thread_main(void *arg)
{
    s_thread_t *t = arg;
    const s_opts_t *o = t->o;
    char err[512];
    hpp_client_t *c = hpp_client_new_opts(&o->copts, t->ctx, err, sizeof err);
    if (!c) {
        snprintf(t->error, sizeof t->error, "%.200s", err);
        return NULL;
    }
    static const char *const hints[] = {"chat", "code", "solidity", "summarize", "reasoning"};
    int64_t end = t->t0 + (int64_t)(o->seconds * 1e9);
    hpp_reply_t rep = {0};
    for (uint64_t k = (uint64_t)t->index;; k += (uint64_t)o->threads) {
        int64_t start = s_now_ns();
        if (start >= end) {
            break;
        }
        hpp_features_t f;
        hpp_features_init(&f);
        f.prompt_tokens = 200 + (int64_t)(k % 4000);
        f.hints[0].ptr = hints[k % 5];
        f.hints[0].len = (uint32_t)strlen(hints[k % 5]);
        f.nhints = 1;
        int rc = hpp_client_route(c, &f, &rep, o->timeout_ms);
        int64_t done = s_now_ns();
        if (rc != HPP_OK && !t->error[0]) {
            snprintf(t->error, sizeof t->error, "%s: %s", hpp_strerror(rc), hpp_client_errstr(c));
        }
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 65536;
            s_req_t *r = realloc(t->reqs, cap * sizeof *r);
            if (!r) {
                snprintf(t->error, sizeof t->error, "out of memory");
                break;
            }
            t->reqs = r;
            t->cap = cap;
        }
        t->reqs[t->n++] = (s_req_t){done - t->t0, done - start, rc == HPP_OK};
    }
    hpp_reply_close(&rep);
    hpp_client_counters(c, &t->cnt);
    hpp_client_destroy(&c);
    return NULL;
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Percentile of a sorted array, in microseconds. */
static double s_pct_us(const int64_t *v, size_t n, double pct)
{
    if (n == 0) {
        return 0;
    }
    size_t rank = (size_t)ceil(pct / 100.0 * (double)n);
    rank = rank ? rank : 1;
    return (double)v[rank - 1] / 1000.0;
}

static int s_usage(const char *msg)
{
    fprintf(msg ? stderr : stdout,
            "%s%s%s"
            "usage: bench_client --engine ENDPOINT [--engine ENDPOINT]... [--threads N]\n"
            "         [--seconds S] [--timeout-ms N] [--resend-ms N] [--heartbeat-ms N]\n"
            "         [--curve-server-key FILE --curve-secret FILE]\n"
            "         [--kill-pid PID --kill-after S] [--json]\n"
            "--kill-pid: SIGKILL this process (an engine you started) --kill-after seconds\n"
            "        into the run; the report gives the failed requests and recovery_ms\n"
            "Exit: 0 when every request was answered, 1 otherwise, 2 on bad usage.\n",
            msg ? "bench_client: " : "", msg ? msg : "", msg ? "\n" : "");
    return msg ? 2 : 0;
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json_only = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(NULL);
            return 1;
        }
        if (i + 1 >= argc) {
            return s_usage("missing value or unknown flag");
        }
        const char *v = argv[++i];
        char *end = NULL;
        double d = strtod(v, &end);
        bool num = end && *end == '\0' && end != v;
        if (!strcmp(a, "--engine")) {
            if (o->copts.nendpoints == HPP_CLIENT_MAX_ENDPOINTS) {
                return s_usage("too many --engine");
            }
            if (strncmp(v, "tcp://127.0.0.1:", 16) && strncmp(v, "ipc://", 6)) {
                return s_usage("an engine must be on tcp://127.0.0.1 or ipc://");
            }
            o->endpoints[o->copts.nendpoints++] = v;
        } else if (!strcmp(a, "--curve-server-key")) {
            o->copts.curve_server_key = v;
        } else if (!strcmp(a, "--curve-secret")) {
            o->copts.curve_secret_key = v;
        } else if (!num) {
            return s_usage("expected a number");
        } else if (!strcmp(a, "--threads") && d >= 1 && d <= S_MAX_THREADS) {
            o->threads = (int)d;
        } else if (!strcmp(a, "--seconds") && d > 0 && d <= 30) {
            o->seconds = d;
        } else if (!strcmp(a, "--timeout-ms") && d >= 1 && d <= 60000) {
            o->timeout_ms = (int)d;
        } else if (!strcmp(a, "--resend-ms") && d >= 0 && d <= 60000) {
            o->copts.resend_ms = (int)d;
        } else if (!strcmp(a, "--heartbeat-ms") && d >= 0 && d <= 60000) {
            o->copts.heartbeat_ms = (int)d;
        } else if (!strcmp(a, "--kill-pid") && d >= 2 && d == floor(d)) {
            o->kill_pid = (pid_t)d;
        } else if (!strcmp(a, "--kill-after") && d > 0 && d <= 30) {
            o->kill_after = d;
        } else {
            return s_usage("unknown flag or value out of range");
        }
    }
    if (o->copts.nendpoints == 0) {
        return s_usage("at least one --engine");
    }
    if (o->kill_pid && (o->kill_after <= 0 || o->kill_after >= o->seconds)) {
        return s_usage("--kill-pid needs --kill-after, inside --seconds");
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o = {.threads = 4, .seconds = 3, .timeout_ms = 1000};
    hpp_client_opts_init(&o.copts);
    o.copts.endpoints = o.endpoints;
    int prc = s_parse(argc, argv, &o);
    if (prc != 0) {
        return prc == 1 ? 0 : 2;
    }
    void *ctx = zmq_ctx_new();
    s_thread_t th[S_MAX_THREADS];
    pthread_t tid[S_MAX_THREADS];
    memset(th, 0, sizeof th);
    int64_t t0 = s_now_ns();
    for (int i = 0; i < o.threads; i++) {
        th[i] = (s_thread_t){.o = &o, .ctx = ctx, .index = i, .t0 = t0};
        pthread_create(&tid[i], NULL, s_thread_main, &th[i]);
    }
    int64_t killed_ns = -1;
    if (o.kill_pid) {
        struct timespec at = {0};
        int64_t when = t0 + (int64_t)(o.kill_after * 1e9);
        at.tv_sec = when / 1000000000LL;
        at.tv_nsec = when % 1000000000LL;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {
        }
        if (kill(o.kill_pid, SIGKILL) == 0) {
            killed_ns = s_now_ns() - t0;
        } else {
            fprintf(stderr, "bench_client: kill %d: %s\n", (int)o.kill_pid, strerror(errno));
        }
    }
    size_t total = 0;
    hpp_client_counters_t cnt = {0};
    const char *first_error = "";
    for (int i = 0; i < o.threads; i++) {
        pthread_join(tid[i], NULL);
        total += th[i].n;
        cnt.resent += th[i].cnt.resent;
        cnt.duplicates += th[i].cnt.duplicates;
        cnt.dropped += th[i].cnt.dropped;
        if (!first_error[0] && th[i].error[0]) {
            first_error = th[i].error;
        }
    }
    double wall = (double)(s_now_ns() - t0) / 1e9;
    /* Every latency, and those of the requests finished before the kill. */
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    int64_t *before = malloc((total ? total : 1) * sizeof *before);
    if (!all || !before) {
        fprintf(stderr, "bench_client: out of memory\n");
        return 1;
    }
    size_t n_all = 0, n_before = 0, ok = 0, failed = 0;
    for (int i = 0; i < o.threads; i++) {
        for (size_t j = 0; j < th[i].n; j++) {
            const s_req_t *r = &th[i].reqs[j];
            ok += r->ok;
            failed += !r->ok;
            if (r->ok) {
                all[n_all++] = r->lat_ns;
                if (killed_ns >= 0 && r->end_ns < killed_ns) {
                    before[n_before++] = r->lat_ns;
                }
            }
        }
    }
    qsort(all, n_all, sizeof *all, s_cmp_i64);
    qsort(before, n_before, sizeof *before, s_cmp_i64);
    /* After the kill: the last request that failed or was much slower than
     * the tail before it. */
    double base_p999 = s_pct_us(before, n_before, 99.9);
    double threshold_us = fmax(5 * base_p999, 10000);
    size_t disturbed = 0, failed_after = 0;
    int64_t last_bad = killed_ns;
    for (int i = 0; killed_ns >= 0 && i < o.threads; i++) {
        for (size_t j = 0; j < th[i].n; j++) {
            const s_req_t *r = &th[i].reqs[j];
            if (r->end_ns < killed_ns) {
                continue;
            }
            failed_after += !r->ok;
            if (!r->ok || (double)r->lat_ns / 1000.0 > threshold_us) {
                disturbed++;
                last_bad = r->end_ns > last_bad ? r->end_ns : last_bad;
            }
        }
    }
    double rps = (double)ok / wall;
    double p50 = s_pct_us(all, n_all, 50), p99 = s_pct_us(all, n_all, 99);
    double p999 = s_pct_us(all, n_all, 99.9);
    double max = n_all ? (double)all[n_all - 1] / 1000.0 : 0;
    double recovery_ms = killed_ns >= 0 ? (double)(last_bad - killed_ns) / 1e6 : 0;
    if (!o.json_only) {
        printf("bench_client engines=%zu threads=%d seconds=%.2f curve=%s resend_ms=%d\n",
               o.copts.nendpoints, o.threads, wall, o.copts.curve_server_key ? "yes" : "no",
               o.copts.resend_ms);
        printf("  requests %zu  ok %zu  failed %zu  resent %zu  duplicates %zu\n", total, ok,
               failed, cnt.resent, cnt.duplicates);
        printf("  throughput %.0f requests/s\n", rps);
        printf("  latency_us p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", p50, p99, p999, max);
        if (killed_ns >= 0) {
            printf("  killed pid %d at %.3f s: %zu failed after it, %zu disturbed (> %.0f us), "
                   "recovered in %.1f ms\n",
                   (int)o.kill_pid, (double)killed_ns / 1e9, failed_after, disturbed, threshold_us,
                   recovery_ms);
        }
        if (first_error[0]) {
            printf("  first error: %s\n", first_error);
        }
    }
    printf("{\"tool\":\"bench_client\",\"engines\":%zu,\"threads\":%d,\"seconds\":%.3f,"
           "\"curve\":%s,\"timeout_ms\":%d,\"resend_ms\":%d,\"heartbeat_ms\":%d,"
           "\"requests\":%zu,\"ok\":%zu,\"failed\":%zu,\"resent\":%zu,\"duplicates\":%zu,"
           "\"rps\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f",
           o.copts.nendpoints, o.threads, wall, o.copts.curve_server_key ? "true" : "false",
           o.timeout_ms, o.copts.resend_ms, o.copts.heartbeat_ms, total, ok, failed, cnt.resent,
           cnt.duplicates, rps, p50, p99, p999, max);
    if (killed_ns >= 0) {
        printf(",\"killed_at_s\":%.3f,\"failed_after_kill\":%zu,\"baseline_p999_us\":%.2f,"
               "\"disturbed_threshold_us\":%.0f,\"disturbed\":%zu,\"recovery_ms\":%.2f",
               (double)killed_ns / 1e9, failed_after, base_p999, threshold_us, disturbed,
               recovery_ms);
    }
    printf("}\n");
    for (int i = 0; i < o.threads; i++) {
        free(th[i].reqs);
    }
    free(all);
    free(before);
    zmq_ctx_term(ctx);
    return failed == 0 && ok > 0 && (!o.kill_pid || killed_ns >= 0) ? 0 : 1;
}
