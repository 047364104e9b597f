/* sc_metrics.c - counters, latency histograms (per route, and of the engine
 * and upstream calls inside a request), and the text exposition.
 *
 * Status codes are folded into a fixed list (anything else counts as its
 * class, "2xx" ... "5xx") so the request counter is a plain 2-D array.
 * Decision labels are copied once into the bounded table; rendering walks
 * the arrays and escapes label values as the exposition format requires.
 * hpp_sidecar_build_info and the process_* series come from
 * proto/hpp_procstats.c, which the engine's endpoint uses too.
 */
#include "sc_metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_decision.h"
#include "hpp_procstats.h"

/* Each sc_metrics_t has one writer, its worker's loop; another worker may
 * read it at any time to sum every worker's figures for /metrics
 * (sc_metrics_merge). So every field is stored and read whole, with relaxed
 * atomic operations: on the writer's side they compile to the plain loads
 * and stores of an increment (no lock, no fence), and a reader never sees a
 * torn value. A sum may miss the increments of the last microseconds. */
#define S_GET(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define S_SET(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)
#define S_INC(f) S_SET(f, S_GET(f) + 1)

static const int s_statuses[] = {200, 400, 402, 403, 404, 405, 413, 422,
                                 429, 431, 500, 502, 503, 504, 0};
#define S_NSTATUS (sizeof s_statuses / sizeof s_statuses[0]) /* last slot: other */

/* Histogram bounds in seconds: 25 us .. 10 s (an engine round trip on
 * loopback takes tens of microseconds). */
static const double s_buckets[] = {0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                   0.0025,   0.005,   0.01,   0.025,   0.05,   0.1,
                                   0.25,     0.5,     1,      2.5,     5,      10};
#define S_NBUCKETS (sizeof s_buckets / sizeof s_buckets[0])

static const char *const s_route_names[SC_ROUTE_COUNT] = {
    [SC_ROUTE_ROUTE] = "/v1/route",   [SC_ROUTE_CHAT] = "/v1/chat/completions",
    [SC_ROUTE_MODELS] = "/v1/models", [SC_ROUTE_HEALTH] = "/healthz",
    [SC_ROUTE_METRICS] = "/metrics",  [SC_ROUTE_API] = "/api",
    [SC_ROUTE_OTHER] = "other",
};
static const char *const s_engerr_names[SC_ENGERR_COUNT] = {
    [SC_ENGERR_UNAVAILABLE] = "unavailable",
    [SC_ENGERR_TIMEOUT] = "timeout",
    [SC_ENGERR_DECODE] = "decode",
    [SC_ENGERR_STATUS] = "status",
};
static const char *const s_ctimeout_names[SC_CTIMEOUT_COUNT] = {
    [SC_CTIMEOUT_HEADER] = "header",
    [SC_CTIMEOUT_BODY] = "body",
    [SC_CTIMEOUT_IDLE] = "idle",
};
static const char *const s_retry_names[SC_RETRY_COUNT] = {
    [SC_RETRY_402] = "402",
    [SC_RETRY_429] = "429",
    [SC_RETRY_5XX] = "5xx",
};

typedef struct {
    char model[257]; /* model id, "" = free slot */
    char tier[65];   /* tier name */
    uint64_t count;  /* decisions */
} s_decision_t;

typedef struct {
    uint64_t bucket[S_NBUCKETS]; /* non-cumulative counts; past the last: only in count */
    uint64_t count;              /* observations */
    double sum;                  /* seconds */
} s_hist_t;

struct sc_metrics {
    uint64_t requests[SC_ROUTE_COUNT][S_NSTATUS];        /* by route and status */
    s_hist_t latency[SC_ROUTE_COUNT];                    /* request durations by route */
    s_hist_t engine_time;                                /* route calls: send to reply */
    s_hist_t upstream_time;                              /* upstream calls: send to headers */
    uint64_t engine_errors[SC_ENGERR_COUNT];             /* by kind */
    uint64_t engine_codes[HPP_STATUS_COUNT];             /* SC_ENGERR_STATUS by code */
    uint64_t retries[SC_RETRY_COUNT];                    /* by reason */
    uint64_t upstream[6];                                /* by class: 0 = connect error, 1..5 */
    uint64_t fail_open;                                  /* answers with --fail-open */
    uint64_t access_dropped;                             /* access log lines not written */
    uint64_t inflight;                                   /* engine requests pending */
    uint64_t conns_open;                                 /* client connections open */
    uint64_t conns_refused;                              /* over --max-connections */
    uint64_t accept_errors;                              /* failed accept() calls */
    uint64_t ctimeouts[SC_CTIMEOUT_COUNT];               /* connections closed by a deadline */
    uint64_t decisions_other;                            /* pairs past the table */
    sc_metrics_engine_t engines[SC_METRICS_MAX_ENGINES]; /* per engine, set before rendering */
    size_t nengines;                                     /* used entries of engines[] */
    uint64_t disagreements;                              /* policy hash disagreements seen */
    size_t ndecisions;                                   /* used entries of decisions[] */
    s_decision_t decisions[SC_METRICS_MAX_DECISIONS];    /* open addressing */
    uint64_t worker_requests[SC_METRICS_MAX_WORKERS];    /* per worker, set before rendering */
    size_t nworkers;                                     /* used entries, 0 = not shown */
};

sc_metrics_t *sc_metrics_new(void)
{
    return calloc(1, sizeof(sc_metrics_t));
}

void sc_metrics_destroy(sc_metrics_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

const char *sc_route_name(sc_route_t route)
{
    return (unsigned)route < SC_ROUTE_COUNT ? s_route_names[route] : "other";
}

static void s_observe(s_hist_t *h, double seconds)
{
    size_t b = 0;
    while (b < S_NBUCKETS && seconds > s_buckets[b]) {
        b++;
    }
    if (b < S_NBUCKETS) {
        S_INC(h->bucket[b]);
    }
    S_INC(h->count);
    double sum;
    __atomic_load(&h->sum, &sum, __ATOMIC_RELAXED);
    sum += seconds;
    __atomic_store(&h->sum, &sum, __ATOMIC_RELAXED);
}

void sc_metrics_request(sc_metrics_t *self, sc_route_t route, int status, double seconds)
{
    if ((unsigned)route >= SC_ROUTE_COUNT) {
        route = SC_ROUTE_OTHER;
    }
    size_t i = 0;
    while (i < S_NSTATUS - 1 && s_statuses[i] != status) {
        i++;
    }
    S_INC(self->requests[route][i]);
    s_observe(&self->latency[route], seconds);
}

void sc_metrics_engine_time(sc_metrics_t *self, double seconds)
{
    s_observe(&self->engine_time, seconds);
}

void sc_metrics_upstream_time(sc_metrics_t *self, double seconds)
{
    s_observe(&self->upstream_time, seconds);
}

/* FNV-1a over model and tier. */
static uint64_t s_hash(const char *m, size_t ml, const char *t, size_t tl)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < ml; i++) {
        h = (h ^ (unsigned char)m[i]) * 1099511628211ull;
    }
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i < tl; i++) {
        h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
    }
    return h;
}

void sc_metrics_decision(sc_metrics_t *self, const char *model, size_t model_len, const char *tier,
                         size_t tier_len)
{
    if (model_len == 0 || model_len > 256 || tier_len > 64) {
        S_INC(self->decisions_other);
        return;
    }
    size_t mask = SC_METRICS_MAX_DECISIONS - 1;
    size_t i = (size_t)s_hash(model, model_len, tier, tier_len) & mask;
    /* The table is filled to 3/4 at most, so a probe always meets a free slot
     * soon; pairs beyond that count as "other". */
    for (size_t probe = 0; probe < SC_METRICS_MAX_DECISIONS; probe++) {
        s_decision_t *d = &self->decisions[(i + probe) & mask];
        if (d->model[0] == '\0') {
            if (self->ndecisions >= SC_METRICS_MAX_DECISIONS * 3 / 4) {
                break;
            }
            self->ndecisions++;
            memcpy(d->model, model, model_len);
            d->model[model_len] = '\0';
            memcpy(d->tier, tier, tier_len);
            d->tier[tier_len] = '\0';
            /* Published: a reader that sees the count sees the names. */
            __atomic_store_n(&d->count, 1, __ATOMIC_RELEASE);
            return;
        }
        if (strlen(d->model) == model_len && memcmp(d->model, model, model_len) == 0 &&
            strlen(d->tier) == tier_len && memcmp(d->tier, tier, tier_len) == 0) {
            S_INC(d->count);
            return;
        }
    }
    S_INC(self->decisions_other);
}

void sc_metrics_engine_error(sc_metrics_t *self, sc_engerr_t kind, const char *code)
{
    if ((unsigned)kind >= SC_ENGERR_COUNT) {
        return;
    }
    S_INC(self->engine_errors[kind]);
    if (kind == SC_ENGERR_STATUS) {
        int s = code ? hpp_status_from_name(code, strlen(code)) : -1;
        S_INC(self->engine_codes[s > 0 ? s : HPP_E_INTERNAL]);
    }
}

void sc_metrics_fail_open(sc_metrics_t *self)
{
    S_INC(self->fail_open);
}

void sc_metrics_access_dropped(sc_metrics_t *self, uint64_t n)
{
    S_SET(self->access_dropped, n);
}

void sc_metrics_retry(sc_metrics_t *self, sc_retry_t why)
{
    if ((unsigned)why < SC_RETRY_COUNT) {
        S_INC(self->retries[why]);
    }
}

void sc_metrics_upstream(sc_metrics_t *self, int status)
{
    int cls = status / 100;
    S_INC(self->upstream[cls >= 1 && cls <= 5 ? cls : 0]);
}

void sc_metrics_connections(sc_metrics_t *self, uint64_t open)
{
    S_SET(self->conns_open, open);
}

void sc_metrics_connection_refused(sc_metrics_t *self)
{
    S_INC(self->conns_refused);
}

void sc_metrics_accept_error(sc_metrics_t *self)
{
    S_INC(self->accept_errors);
}

void sc_metrics_client_timeout(sc_metrics_t *self, sc_ctimeout_t phase)
{
    if ((unsigned)phase < SC_CTIMEOUT_COUNT) {
        S_INC(self->ctimeouts[phase]);
    }
}

void sc_metrics_inflight(sc_metrics_t *self, uint64_t n)
{
    S_SET(self->inflight, n);
}

void sc_metrics_engines(sc_metrics_t *self, const sc_metrics_engine_t *engines, size_t n,
                        uint64_t disagreements)
{
    n = n > SC_METRICS_MAX_ENGINES ? SC_METRICS_MAX_ENGINES : n;
    memcpy(self->engines, engines, n * sizeof *engines);
    self->nengines = n;
    self->disagreements = disagreements;
}

/* Sums `n` counters read from a live writer. */
static void s_add_all(uint64_t *sum, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sum[i] += S_GET(src[i]);
    }
}

static void s_merge_hist(s_hist_t *sum, const s_hist_t *src)
{
    s_add_all(sum->bucket, src->bucket, S_NBUCKETS);
    sum->count += S_GET(src->count);
    double v;
    __atomic_load(&src->sum, &v, __ATOMIC_RELAXED);
    sum->sum += v;
}

/* Adds `count` decisions of a pair to the table (a merge: no one else
 * writes `self`). */
static void s_decisions_add(sc_metrics_t *self, const char *model, const char *tier, uint64_t count)
{
    size_t ml = strlen(model), tl = strlen(tier);
    size_t mask = SC_METRICS_MAX_DECISIONS - 1;
    size_t i = (size_t)s_hash(model, ml, tier, tl) & mask;
    for (size_t probe = 0; probe < SC_METRICS_MAX_DECISIONS; probe++) {
        s_decision_t *d = &self->decisions[(i + probe) & mask];
        if (d->model[0] == '\0') {
            if (self->ndecisions >= SC_METRICS_MAX_DECISIONS * 3 / 4) {
                break;
            }
            self->ndecisions++;
            memcpy(d->model, model, ml + 1);
            memcpy(d->tier, tier, tl + 1);
            d->count = count;
            return;
        }
        if (strcmp(d->model, model) == 0 && strcmp(d->tier, tier) == 0) {
            d->count += count;
            return;
        }
    }
    self->decisions_other += count;
}

void sc_metrics_merge(sc_metrics_t *sum, const sc_metrics_t *src)
{
    for (int r = 0; r < SC_ROUTE_COUNT; r++) {
        s_add_all(sum->requests[r], src->requests[r], S_NSTATUS);
        s_merge_hist(&sum->latency[r], &src->latency[r]);
    }
    s_merge_hist(&sum->engine_time, &src->engine_time);
    s_merge_hist(&sum->upstream_time, &src->upstream_time);
    s_add_all(sum->engine_errors, src->engine_errors, SC_ENGERR_COUNT);
    s_add_all(sum->engine_codes, src->engine_codes, HPP_STATUS_COUNT);
    s_add_all(sum->retries, src->retries, SC_RETRY_COUNT);
    s_add_all(sum->upstream, src->upstream, 6);
    s_add_all(sum->ctimeouts, src->ctimeouts, SC_CTIMEOUT_COUNT);
    sum->fail_open += S_GET(src->fail_open);
    sum->access_dropped += S_GET(src->access_dropped);
    sum->inflight += S_GET(src->inflight);
    sum->conns_open += S_GET(src->conns_open);
    sum->conns_refused += S_GET(src->conns_refused);
    sum->accept_errors += S_GET(src->accept_errors);
    sum->decisions_other += S_GET(src->decisions_other);
    for (size_t i = 0; i < SC_METRICS_MAX_DECISIONS; i++) {
        const s_decision_t *d = &src->decisions[i];
        /* Acquire: the names were written before the count was published. */
        uint64_t c = __atomic_load_n(&d->count, __ATOMIC_ACQUIRE);
        if (c) {
            s_decisions_add(sum, d->model, d->tier, c);
        }
    }
}

uint64_t sc_metrics_requests_total(const sc_metrics_t *self)
{
    uint64_t n = 0;
    for (int r = 0; r < SC_ROUTE_COUNT; r++) {
        for (size_t i = 0; i < S_NSTATUS; i++) {
            n += S_GET(self->requests[r][i]);
        }
    }
    return n;
}

void sc_metrics_workers(sc_metrics_t *self, const uint64_t *requests, size_t n)
{
    n = n > SC_METRICS_MAX_WORKERS ? SC_METRICS_MAX_WORKERS : n;
    memcpy(self->worker_requests, requests, n * sizeof *requests);
    self->nworkers = n;
}

/* The workers' series: how many serve, and the requests each answered. */
static void s_render_workers(const sc_metrics_t *self, FILE *fp)
{
    if (self->nworkers == 0) {
        return;
    }
    fprintf(fp,
            "# HELP hpp_sidecar_workers Event loops (threads) serving the port (--workers).\n"
            "# TYPE hpp_sidecar_workers gauge\n"
            "hpp_sidecar_workers %zu\n"
            "# HELP hpp_sidecar_worker_requests_total HTTP requests answered, by worker.\n"
            "# TYPE hpp_sidecar_worker_requests_total counter\n",
            self->nworkers);
    for (size_t i = 0; i < self->nworkers; i++) {
        fprintf(fp, "hpp_sidecar_worker_requests_total{worker=\"%zu\"} %llu\n", i,
                (unsigned long long)self->worker_requests[i]);
    }
}

/* One histogram's series; `label` is `route="..."` or "" for none. */
static void s_render_hist(FILE *fp, const char *name, const char *label, const s_hist_t *h)
{
    const char *sep = label[0] ? "," : "";
    uint64_t cum = 0;
    for (size_t b = 0; b < S_NBUCKETS; b++) {
        cum += h->bucket[b];
        fprintf(fp, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, s_buckets[b],
                (unsigned long long)cum);
    }
    fprintf(fp, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep,
            (unsigned long long)h->count);
    char braced[80] = ""; /* "{label}", or nothing without a label */
    if (label[0]) {
        snprintf(braced, sizeof braced, "{%s}", label);
    }
    fprintf(fp, "%s_sum%s %.9f\n%s_count%s %llu\n", name, braced, h->sum, name, braced,
            (unsigned long long)h->count);
}

static void s_render_requests(const sc_metrics_t *self, FILE *fp)
{
    fputs("# HELP hpp_sidecar_requests_total HTTP requests answered, by route and status.\n"
          "# TYPE hpp_sidecar_requests_total counter\n",
          fp);
    for (int r = 0; r < SC_ROUTE_COUNT; r++) {
        for (size_t i = 0; i < S_NSTATUS; i++) {
            if (self->requests[r][i] == 0) {
                continue;
            }
            char st[8];
            if (s_statuses[i]) {
                snprintf(st, sizeof st, "%d", s_statuses[i]);
            } else {
                snprintf(st, sizeof st, "other");
            }
            fprintf(fp, "hpp_sidecar_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                    s_route_names[r], st, (unsigned long long)self->requests[r][i]);
        }
    }
    fputs("# HELP hpp_sidecar_request_duration_seconds Time from request to the last byte "
          "handed to the client.\n"
          "# TYPE hpp_sidecar_request_duration_seconds histogram\n",
          fp);
    for (int r = 0; r < SC_ROUTE_COUNT; r++) {
        if (self->latency[r].count == 0) {
            continue;
        }
        char label[64];
        snprintf(label, sizeof label, "route=\"%s\"", s_route_names[r]);
        s_render_hist(fp, "hpp_sidecar_request_duration_seconds", label, &self->latency[r]);
    }
}

static void s_render_decisions(const sc_metrics_t *self, FILE *fp)
{
    fputs("# HELP hpp_sidecar_decisions_total Routing decisions, by resolved model and tier.\n"
          "# TYPE hpp_sidecar_decisions_total counter\n",
          fp);
    for (size_t i = 0; i < SC_METRICS_MAX_DECISIONS; i++) {
        const s_decision_t *d = &self->decisions[i];
        if (!d->model[0]) {
            continue;
        }
        fputs("hpp_sidecar_decisions_total{model=\"", fp);
        hpp_metrics_label(fp, d->model);
        fputs("\",tier=\"", fp);
        hpp_metrics_label(fp, d->tier);
        fprintf(fp, "\"} %llu\n", (unsigned long long)d->count);
    }
    if (self->decisions_other) {
        fprintf(fp, "hpp_sidecar_decisions_total{model=\"other\",tier=\"\"} %llu\n",
                (unsigned long long)self->decisions_other);
    }
}

static void s_render_engine(const sc_metrics_t *self, FILE *fp)
{
    fputs("# HELP hpp_sidecar_engine_errors_total Engine calls that gave no decision, by kind "
          "and engine error code.\n"
          "# TYPE hpp_sidecar_engine_errors_total counter\n",
          fp);
    for (int k = 0; k < SC_ENGERR_COUNT; k++) {
        if (k != SC_ENGERR_STATUS) {
            fprintf(fp, "hpp_sidecar_engine_errors_total{kind=\"%s\",code=\"\"} %llu\n",
                    s_engerr_names[k], (unsigned long long)self->engine_errors[k]);
            continue;
        }
        for (int c = 1; c < HPP_STATUS_COUNT; c++) {
            if (self->engine_codes[c]) {
                fprintf(fp, "hpp_sidecar_engine_errors_total{kind=\"status\",code=\"%s\"} %llu\n",
                        hpp_status_name((hpp_status_t)c),
                        (unsigned long long)self->engine_codes[c]);
            }
        }
    }
    fprintf(fp,
            "# HELP hpp_sidecar_engine_inflight Engine requests awaiting a reply.\n"
            "# TYPE hpp_sidecar_engine_inflight gauge\n"
            "hpp_sidecar_engine_inflight %llu\n"
            "# HELP hpp_sidecar_fail_open_total Answers given with the --fail-open model.\n"
            "# TYPE hpp_sidecar_fail_open_total counter\n"
            "hpp_sidecar_fail_open_total %llu\n"
            "# HELP hpp_sidecar_access_log_dropped_total Access log lines that could not be "
            "written.\n"
            "# TYPE hpp_sidecar_access_log_dropped_total counter\n"
            "hpp_sidecar_access_log_dropped_total %llu\n",
            (unsigned long long)self->inflight, (unsigned long long)self->fail_open,
            (unsigned long long)self->access_dropped);
    fputs("# HELP hpp_sidecar_engine_duration_seconds Round trip of a route decision, from the "
          "send to the engine's answer.\n"
          "# TYPE hpp_sidecar_engine_duration_seconds histogram\n",
          fp);
    s_render_hist(fp, "hpp_sidecar_engine_duration_seconds", "", &self->engine_time);
}

/* One series per engine; the label values are the configured endpoints
 * (at most SC_METRICS_MAX_ENGINES) and the hash the engine reports. */
static void s_render_engines(const sc_metrics_t *self, FILE *fp)
{
    static const struct {
        const char *name, *help, *type;
    } series[3] = {
        {"hpp_sidecar_engine_up", "1 while the engine's link is connected, else 0.", "gauge"},
        {"hpp_sidecar_engine_calls_total",
         "Engine calls sent to this engine, calls resent to it included.", "counter"},
        {"hpp_sidecar_engine_resends_total",
         "Calls in flight on this engine that were sent again to another engine when its "
         "connection went away.",
         "counter"},
    };
    for (int k = 0; k < 3; k++) {
        fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help, series[k].name,
                series[k].type);
        for (size_t i = 0; i < self->nengines; i++) {
            const sc_metrics_engine_t *e = &self->engines[i];
            uint64_t v = k == 0 ? e->up : k == 1 ? e->calls : e->resends;
            fprintf(fp, "%s{engine=\"", series[k].name);
            hpp_metrics_label(fp, e->endpoint);
            fprintf(fp, "\"} %llu\n", (unsigned long long)v);
        }
    }
    fputs("# HELP hpp_sidecar_engine_policy_info The policy a connected engine serves, from "
          "its latest ping reply.\n"
          "# TYPE hpp_sidecar_engine_policy_info gauge\n",
          fp);
    for (size_t i = 0; i < self->nengines; i++) {
        const sc_metrics_engine_t *e = &self->engines[i];
        if (!e->up || !e->policy_known) {
            continue;
        }
        fputs("hpp_sidecar_engine_policy_info{engine=\"", fp);
        hpp_metrics_label(fp, e->endpoint);
        fputs("\",hash=\"", fp);
        hpp_metrics_label(fp, e->policy_hash);
        fprintf(fp, "\",version=\"%llu\"} 1\n", (unsigned long long)e->policy_version);
    }
    fprintf(fp,
            "# HELP hpp_sidecar_engine_policy_disagreements_total Engine ping replies whose "
            "policy hash differed from another connected engine's.\n"
            "# TYPE hpp_sidecar_engine_policy_disagreements_total counter\n"
            "hpp_sidecar_engine_policy_disagreements_total %llu\n",
            (unsigned long long)self->disagreements);
}

static void s_render_upstream(const sc_metrics_t *self, FILE *fp)
{
    fputs("# HELP hpp_sidecar_upstream_retries_total Upstream calls retried with another "
          "model, by reason.\n"
          "# TYPE hpp_sidecar_upstream_retries_total counter\n",
          fp);
    for (int i = 0; i < SC_RETRY_COUNT; i++) {
        fprintf(fp, "hpp_sidecar_upstream_retries_total{reason=\"%s\"} %llu\n", s_retry_names[i],
                (unsigned long long)self->retries[i]);
    }
    fputs("# HELP hpp_sidecar_upstream_responses_total Upstream responses by status class "
          "(error = no response).\n"
          "# TYPE hpp_sidecar_upstream_responses_total counter\n",
          fp);
    static const char *const cls[6] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++) {
        if (self->upstream[i]) {
            fprintf(fp, "hpp_sidecar_upstream_responses_total{class=\"%s\"} %llu\n", cls[i],
                    (unsigned long long)self->upstream[i]);
        }
    }
    fputs("# HELP hpp_sidecar_upstream_duration_seconds Time from sending a request upstream "
          "to its response headers, per attempt.\n"
          "# TYPE hpp_sidecar_upstream_duration_seconds histogram\n",
          fp);
    s_render_hist(fp, "hpp_sidecar_upstream_duration_seconds", "", &self->upstream_time);
}

static void s_render_connections(const sc_metrics_t *self, FILE *fp)
{
    fprintf(fp,
            "# HELP hpp_sidecar_connections_open Client connections open.\n"
            "# TYPE hpp_sidecar_connections_open gauge\n"
            "hpp_sidecar_connections_open %llu\n"
            "# HELP hpp_sidecar_connections_refused_total Client connections refused (503, "
            "closed) over --max-connections.\n"
            "# TYPE hpp_sidecar_connections_refused_total counter\n"
            "hpp_sidecar_connections_refused_total %llu\n"
            "# HELP hpp_sidecar_accept_errors_total Failed accepts (out of file descriptors, "
            "mostly); each pauses accepting briefly.\n"
            "# TYPE hpp_sidecar_accept_errors_total counter\n"
            "hpp_sidecar_accept_errors_total %llu\n",
            (unsigned long long)self->conns_open, (unsigned long long)self->conns_refused,
            (unsigned long long)self->accept_errors);
    fputs("# HELP hpp_sidecar_client_timeouts_total Client connections closed by a deadline: "
          "header and body (answered 408), idle (kept alive, no request).\n"
          "# TYPE hpp_sidecar_client_timeouts_total counter\n",
          fp);
    for (int i = 0; i < SC_CTIMEOUT_COUNT; i++) {
        fprintf(fp, "hpp_sidecar_client_timeouts_total{phase=\"%s\"} %llu\n", s_ctimeout_names[i],
                (unsigned long long)self->ctimeouts[i]);
    }
}

char *sc_metrics_render(const sc_metrics_t *self, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    if (!fp) {
        return NULL;
    }
    s_render_requests(self, fp);
    s_render_decisions(self, fp);
    s_render_engine(self, fp);
    s_render_engines(self, fp);
    s_render_upstream(self, fp);
    s_render_connections(self, fp);
    s_render_workers(self, fp);
    hpp_build_info_write(fp, "hpp_sidecar_build_info");
    hpp_procstats_t ps;
    hpp_procstats_read(&ps);
    hpp_procstats_write(fp, &ps);
    if (fclose(fp) != 0) {
        free(buf);
        return NULL;
    }
    if (len) {
        *len = n;
    }
    return buf;
}
