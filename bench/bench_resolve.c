/* bench_resolve.c - in-process decisions per second and latency of eng_resolve().
 *
 * Loads a policy and a catalog, builds a fixed mix of varied requests (auto
 * with text samples that run the hint regexes, hints, budgets, images,
 * tools, groups, long prompts, named models with :floor and :free), then
 * resolves them in a loop for a bounded time. Each decision is timed with a
 * pair of clock_gettime(CLOCK_MONOTONIC) calls into a 1 ns histogram
 * allocated beforehand; the timer's own cost is measured and reported
 * (timer_ns) and is included in the figures, so they are upper bounds.
 *
 * Heap allocations are counted by interposing malloc, calloc, realloc and
 * free in this binary (forwarding to glibc's __libc_* functions); counting
 * is on only inside the timed loop, and any allocation there fails the run.
 *
 *   bench_resolve [--policy FILE] [--catalog FILE]... [--seconds N] [--text FILE]
 *                 [--health off|on|cooling] [--scan on|off] [--per-spec] [--json]
 *
 * --scan off answers the policy's text tests with each pattern's own matcher
 * (regex by regex, then the needle scan), as before the one-pass multi-pattern
 * scan (eng_scan.h); on (the default) with that scan, once per request.
 *
 * --per-spec adds one line per request of the mix (its p50 and p99, each
 * decision's time also kept per request): the mix's p99 is the cost of its
 * slowest few requests, and this says which they are.
 *
 * --health gives the policy an endpoint health table (eng_health.h) filled
 * by reports before the timed loop: `on` measured figures for every
 * endpoint, `cooling` the same with every seventh endpoint on cooldown
 * (which makes each model's endpoint a per-request choice). With health,
 * the run also times the report path: decoding a one-attempt report frame,
 * finding its endpoint and recording it under a mutex, as the engine does
 * (report_ns, mean over the same number of reports).
 *
 * Without --catalog two scenarios run: the bundled catalog, and the bundled
 * catalog plus the full LiteLLM catalog. Output: one line per scenario
 *   resolve CATALOG models=N decisions=N decisions_per_s=N p50_ns=N p99_ns=N
 *           mean_ns=N max_ns=N timer_ns=N allocs=N
 * or with --json one JSON object per scenario, one per line.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "eng_catalog.h"
#include "eng_health.h"
#include "eng_policy.h"
#include "eng_policy_internal.h"

#include "../tests/alloc_count.h"

/* Requests ----------------------------------------------------------------- */

#define S_HIST_NS 200000 /* histogram range: 0..200 us in 1 ns buckets, then overflow */
#define S_MAX_CATALOGS 8
#define S_SPEC_SAMPLES 65536 /* --per-spec: the last this many times of each request */

typedef struct {
    const char *model; /* NULL = auto */
    int64_t prompt;    /* prompt tokens */
    int64_t output;    /* -1 = default */
    int64_t images;    /* images */
    bool tools;        /* tools */
    bool json;         /* json */
    const char *hints; /* one hint or NULL */
    double budget;     /* < 0: none */
    const char *group; /* NULL = default */
    const char *text;  /* text sample or NULL */
} s_spec_t;

static const char s_long_text[] =
    "Here is the module I am working on. It parses the configuration file, validates every "
    "section, and then builds the routing table. The tests pass locally but fail in CI with a "
    "timeout, and I cannot see why. The function that loads the file reads it in chunks of 4 KB "
    "and hands each chunk to the tokenizer; the tokenizer keeps state across chunks. Could the "
    "problem be in how the last chunk is flushed? Please review the approach and suggest fixes.";

static const s_spec_t s_specs[] = {
    {NULL, 500, -1, 0, false, false, NULL, -1, NULL, "hi there"},
    {NULL, 2000, 800, 0, false, false, NULL, -1, NULL, "def parse(x):\n    return x.split()"},
    {NULL, 800, -1, 0, false, false, NULL, -1, NULL, "pragma solidity ^0.8.0; contract T {}"},
    {NULL, 3000, -1, 0, false, false, NULL, -1, NULL, s_long_text},
    {NULL, 1200, -1, 2, false, false, NULL, -1, NULL, "what is in this picture?"},
    {NULL, 150000, 4000, 0, false, false, NULL, -1, NULL, NULL},
    {NULL, 600, -1, 0, false, false, "math", 0.01, NULL, "Prove that sqrt(2) is irrational."},
    {NULL, 5000, -1, 0, true, true, NULL, -1, NULL, NULL},
    {NULL, 5000, -1, 0, false, false, NULL, 0.0001, NULL, NULL},
    {NULL, 5000, -1, 0, false, false, "chat", 0.0005, "partner", NULL},
    {NULL, 2000, -1, 0, false, false, "code", -1, "trial", NULL},
    {NULL, 400, -1, 0, false, false, "classify", -1, NULL, "Classify the sentiment: great!"},
    {NULL, 300000, 1000, 1, false, false, NULL, 5, NULL, NULL},
    {"hpprouter/auto:floor", 1000, -1, 0, false, false, "code", -1, NULL, NULL},
    {"hpprouter/auto:free", 1000, -1, 0, false, false, NULL, -1, NULL, "hello"},
    {"openai/gpt-5", 1000, 1000, 0, false, false, NULL, -1, NULL, NULL},
    {"anthropic/claude-sonnet-4:floor", 4000, 500, 0, false, false, NULL, 1, NULL, NULL},
    {"google/gemma-2-9b-it:free", 100, -1, 0, false, false, NULL, -1, NULL, NULL},
    {"no/such-model", 100, -1, 0, false, false, NULL, -1, NULL, NULL},
    {NULL, 20000, -1, 0, false, false, NULL, 0.000001, NULL, s_long_text},
};
#define S_NSPECS (sizeof s_specs / sizeof s_specs[0])

/* --text: every request carries this sample instead of its own (hint rules
 * scan it whole: this is where long prompts cost). */
#define S_TEXT_MAX 16384 /* twice the sidecar's sample size (OAI_TEXT_MAX): growth past it */
static char s_text[S_TEXT_MAX];
static size_t s_text_len;
static bool s_text_set;

static hpp_str_t s_str(const char *s)
{
    hpp_str_t r = {s, s ? (uint32_t)strlen(s) : 0};
    return r;
}

static void s_build(hpp_features_t *f, const s_spec_t *s)
{
    hpp_features_init(f);
    f->model = s_str(s->model);
    f->prompt_tokens = s->prompt;
    f->output_tokens = s->output;
    f->images = s->images;
    f->tools = s->tools;
    f->json = s->json;
    if (s->hints) {
        f->hints[0] = s_str(s->hints);
        f->nhints = 1;
    }
    if (s->budget >= 0) {
        f->has_budget = true;
        f->budget_usd = s->budget;
    }
    f->group = s_str(s->group);
    f->text = s_str(s->text);
    if (s_text_set) {
        f->text = (hpp_str_t){s_text, (uint32_t)s_text_len};
    }
}

static int s_load_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "bench_resolve: --text %s: %s\n", path, strerror(errno));
        return -1;
    }
    s_text_len = fread(s_text, 1, sizeof s_text, fp);
    fclose(fp);
    s_text_set = true;
    return 0;
}

/* Timing --------------------------------------------------------------------- */

static inline uint64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
    const char *name;       /* scenario label */
    size_t models;          /* catalog models */
    uint64_t decisions;     /* timed decisions */
    double per_s;           /* decisions per second (wall time of the loop) */
    uint64_t p50, p99, max; /* ns */
    double mean;            /* ns */
    uint64_t timer;         /* ns, median cost of one timer pair */
    unsigned long allocs;   /* heap allocations inside the loop */
    uint64_t ok;            /* decisions with status ok */
    const char *health;     /* "off", "on", "cooling" */
    double report_ns;       /* mean cost of one report (health on), 0 = not run */
} s_result_t;

static const char *s_health = "off";
static bool s_scan_on = true;

/* --per-spec: each request's last S_SPEC_SAMPLES times (ns), allocated
 * before the timed loop; NULL when off. */
static uint32_t (*s_spec_ns)[S_SPEC_SAMPLES];
static uint64_t s_spec_n; /* timed rounds of the mix */

/* Fills `h` as reports would: every endpoint measured (latency, throughput,
 * a few failures), every seventh on cooldown when `cool`. */
static void s_fill_health(eng_health_t *h, size_t neps, bool cool)
{
    int64_t now = eng_health_now_ms();
    for (size_t e = 0; e < neps; e++) {
        proto_attempt_t a;
        proto_attempt_init(&a);
        a.status = 200;
        a.latency_ms = 100 + (double)(e * 37 % 900);
        a.ttft_ms = a.latency_ms / 4;
        a.tokens_per_s = 20 + (double)(e * 13 % 200);
        eng_health_record(h, e, &a, now);
        if (cool && e % 7 == 3) {
            a.status = 503;
            for (int k = 0; k < ENG_HEALTH_FAILS; k++) {
                eng_health_record(h, e, &a, now);
            }
        }
    }
}

/* The engine's report path, timed: decode, find the endpoint, record. */
static double s_time_reports(const eng_catalog_t *cat, eng_health_t *h, uint64_t n)
{
    static char frame[512];
    proto_attempt_t a;
    proto_attempt_init(&a);
    a.model = (hpp_str_t){"openai/gpt-4o", 13};
    a.provider = (hpp_str_t){"azure", 5};
    a.status = 200;
    a.latency_ms = 640;
    a.ttft_ms = 180;
    a.tokens_per_s = 75;
    a.prompt_tokens = 1200;
    a.completion_tokens = 300;
    proto_buf_t b;
    proto_buf_init_fixed(&b, frame, sizeof frame);
    if (proto_report_encode(&b, NULL, &a, 1, false) != PROTO_OK) {
        return -1;
    }
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    size_t neps = 0;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &neps);
    uint64_t t0 = s_now();
    for (uint64_t i = 0; i < n; i++) {
        proto_request_t req;
        if (proto_request_decode(frame, b.len, &req, NULL) != PROTO_OK) {
            return -1;
        }
        int64_t now = eng_health_now_ms();
        pthread_mutex_lock(&mu);
        size_t pos = 0;
        proto_attempt_t x;
        while (proto_attempts_next(&req.attempts, &pos, &x, NULL) == 1) {
            const eng_model_t *m = eng_catalog_lookup(cat, x.model.ptr, x.model.len);
            for (uint32_t k = 0; m && k < m->ep_count; k++) {
                const eng_endpoint_t *ep = &eps[m->ep_first + k];
                if (ep->provider_len == x.provider.len &&
                    memcmp(ep->provider, x.provider.ptr, x.provider.len) == 0) {
                    eng_health_record(h, m->ep_first + k, &x, now);
                }
            }
        }
        pthread_mutex_unlock(&mu);
    }
    return (double)(s_now() - t0) / (double)n;
}

static uint64_t s_percentile(const uint32_t *hist, uint64_t total, uint64_t overflow_max, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)total);
    uint64_t seen = 0;
    for (uint64_t i = 0; i <= S_HIST_NS; i++) {
        seen += hist[i];
        if (seen >= want) {
            return i < S_HIST_NS ? i : overflow_max;
        }
    }
    return overflow_max;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* --per-spec: one line per request of the mix, after its scenario's line
 * (on stderr with --json, which keeps stdout one JSON object a line). */
static void s_print_specs(const char *label, FILE *out)
{
    if (!s_spec_ns) {
        return;
    }
    uint64_t n = s_spec_n < S_SPEC_SAMPLES ? s_spec_n : S_SPEC_SAMPLES;
    for (size_t i = 0; n && i < S_NSPECS; i++) {
        const s_spec_t *sp = &s_specs[i];
        const char *text = sp->text ? sp->text : "-";
        if (s_text_set) {
            text = "(--text)";
        }
        qsort(s_spec_ns[i], n, sizeof s_spec_ns[i][0], s_cmp_u32);
        fprintf(out,
                "  spec %s %2zu p50_ns=%u p99_ns=%u model=%s prompt=%lld hint=%s budget=%g "
                "group=%s text=",
                label, i, s_spec_ns[i][(n - 1) / 2], s_spec_ns[i][(n * 99 - 1) / 100],
                sp->model ? sp->model : "auto", (long long)sp->prompt, sp->hints ? sp->hints : "-",
                sp->budget, sp->group ? sp->group : "-");
        for (size_t k = 0; text[k] && k < 24; k++) { /* one line a request */
            if (text[k] == '\n') {
                fputs("\\n", out);
            } else {
                fputc(text[k], out);
            }
        }
        fputs(strlen(text) > 24 ? "...\n" : "\n", out);
    }
}

static uint64_t s_timer_cost(void)
{
    uint64_t best[101];
    for (int i = 0; i < 101; i++) {
        uint64_t a = s_now();
        uint64_t b = s_now();
        best[i] = b - a;
    }
    /* median by partial selection */
    for (int i = 0; i <= 50; i++) {
        for (int j = i + 1; j < 101; j++) {
            if (best[j] < best[i]) {
                uint64_t t = best[i];
                best[i] = best[j];
                best[j] = t;
            }
        }
    }
    return best[50];
}

static int s_scenario(const char *label, const char *policy, const char **catalogs, size_t ncat,
                      double seconds, uint32_t *hist, s_result_t *res)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    for (size_t i = 0; i < ncat; i++) {
        if (eng_catalog_load(cat, catalogs[i], &err) != 0) {
            char buf[768];
            eng_error_format(&err, buf, sizeof buf);
            fprintf(stderr, "bench_resolve: %s\n", buf);
            eng_catalog_destroy(&cat);
            return -1;
        }
    }
    if (eng_catalog_freeze(cat, &err) != 0) {
        fprintf(stderr, "bench_resolve: catalog: %s\n", err.msg);
        eng_catalog_destroy(&cat);
        return -1;
    }
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *pol = eng_policy_load(policy, cat, d);
    if (!pol) {
        eng_diags_print(d, stderr);
        eng_diags_destroy(&d);
        eng_catalog_destroy(&cat);
        return -1;
    }
    eng_diags_destroy(&d);
    eng_policy_set_scan(pol, s_scan_on);
    eng_health_t *health = NULL;
    if (strcmp(s_health, "off") != 0) {
        size_t neps = 0;
        eng_catalog_endpoints(cat, &neps);
        eng_health_cfg_t hc;
        eng_health_cfg_defaults(&hc);
        hc.cooldown_ms = hc.cooldown_max_ms = 3600000; /* cooling through the run */
        health = eng_health_new(neps, &hc);
        if (!health) {
            eng_policy_destroy(&pol);
            eng_catalog_destroy(&cat);
            return -1;
        }
        s_fill_health(health, neps, strcmp(s_health, "cooling") == 0);
        eng_policy_set_health(pol, health);
    }

    hpp_features_t reqs[S_NSPECS];
    for (size_t i = 0; i < S_NSPECS; i++) {
        s_build(&reqs[i], &s_specs[i]);
    }
    memset(hist, 0, (S_HIST_NS + 1) * sizeof *hist);
    memset(res, 0, sizeof *res);
    res->name = label;
    eng_catalog_models(cat, &res->models);
    res->timer = s_timer_cost();

    eng_decision_t dec;
    for (int w = 0; w < 20000; w++) { /* warm caches and branch predictors */
        eng_resolve(pol, &reqs[w % S_NSPECS], &dec, NULL);
    }
    uint64_t total_ns = 0, n = 0, ok = 0, maxv = 0;
    s_spec_n = 0;
    uint64_t deadline = s_now() + (uint64_t)(seconds * 1e9);
    uint64_t t_start = s_now();
    alloc_count_start();
    for (;;) {
        for (size_t i = 0; i < S_NSPECS; i++) {
            uint64_t a = s_now();
            hpp_status_t st = eng_resolve(pol, &reqs[i], &dec, NULL);
            uint64_t b = s_now();
            uint64_t dt = b - a;
            hist[dt < S_HIST_NS ? dt : S_HIST_NS]++;
            maxv = dt > maxv ? dt : maxv;
            total_ns += dt;
            ok += st == HPP_OK;
            if (s_spec_ns) {
                s_spec_ns[i][s_spec_n & (S_SPEC_SAMPLES - 1)] =
                    dt < UINT32_MAX ? (uint32_t)dt : UINT32_MAX;
            }
        }
        s_spec_n++;
        n += S_NSPECS;
        if ((n & 1023) < S_NSPECS && s_now() >= deadline) {
            break;
        }
    }
    unsigned long allocs = alloc_count_stop();
    uint64_t wall = s_now() - t_start;
    res->allocs = allocs;
    res->decisions = n;
    res->ok = ok;
    res->per_s = (double)n / ((double)wall / 1e9);
    res->mean = (double)total_ns / (double)n;
    res->p50 = s_percentile(hist, n, maxv, 0.50);
    res->p99 = s_percentile(hist, n, maxv, 0.99);
    res->max = maxv;
    res->health = s_health;
    if (health) {
        alloc_count_start();
        res->report_ns = s_time_reports(cat, health, n);
        res->allocs += alloc_count_stop();
    }
    eng_policy_destroy(&pol);
    eng_health_destroy(&health);
    eng_catalog_destroy(&cat);
    return 0;
}

static void s_print(const s_result_t *r, bool json)
{
    if (json) {
        printf("{\"scenario\":\"resolve\",\"catalog\":\"%s\",\"models\":%zu,\"decisions\":%llu,"
               "\"decisions_per_s\":%.0f,\"p50_ns\":%llu,\"p99_ns\":%llu,\"mean_ns\":%.1f,"
               "\"max_ns\":%llu,\"timer_ns\":%llu,\"allocs\":%lu,\"allocs_per_decision\":%g,"
               "\"ok_fraction\":%.3f,\"text_bytes\":%zu,\"health\":\"%s\",\"report_ns\":%.1f,"
               "\"scan\":\"%s\"}\n",
               r->name, r->models, (unsigned long long)r->decisions, r->per_s,
               (unsigned long long)r->p50, (unsigned long long)r->p99, r->mean,
               (unsigned long long)r->max, (unsigned long long)r->timer, r->allocs,
               (double)r->allocs / (double)r->decisions, (double)r->ok / (double)r->decisions,
               s_text_set ? s_text_len : (size_t)0, r->health, r->report_ns,
               s_scan_on ? "on" : "off");
    } else {
        printf("resolve %-8s models=%zu decisions=%llu decisions_per_s=%.0f p50_ns=%llu "
               "p99_ns=%llu mean_ns=%.0f max_ns=%llu timer_ns=%llu allocs=%lu health=%s "
               "report_ns=%.0f text_bytes=%zu scan=%s\n",
               r->name, r->models, (unsigned long long)r->decisions, r->per_s,
               (unsigned long long)r->p50, (unsigned long long)r->p99, r->mean,
               (unsigned long long)r->max, (unsigned long long)r->timer, r->allocs, r->health,
               r->report_ns, s_text_set ? s_text_len : (size_t)0, s_scan_on ? "on" : "off");
    }
    fflush(stdout);
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: bench_resolve [--policy FILE] [--catalog FILE]... [--seconds N] "
                 "[--text FILE] [--health off|on|cooling] [--scan on|off] [--json]\n\n"
                 "  --policy FILE   policy (default policies/default.policy)\n"
                 "  --catalog FILE  catalog, repeatable (default: two runs, bundled catalog and\n"
                 "                  bundled + full LiteLLM catalog)\n"
                 "  --seconds N     timed seconds per run, 0.1 to 60 (default 2)\n"
                 "  --text FILE     every request's text sample is this file's first 16 KiB\n"
                 "  --health MODE   off (default), on (every endpoint measured) or cooling\n"
                 "                  (and every seventh endpoint on cooldown); times reports too\n"
                 "  --scan MODE     on (default): text tests answered by one multi-pattern scan\n"
                 "                  per request; off: by each pattern's own matcher\n"
                 "  --per-spec      also one line per request of the mix: its p50 and p99\n"
                 "  --json          one JSON object per run instead of text\n"
                 "Exit 1 when a decision allocated heap memory, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
    const char *policy = "policies/default.policy";
    const char *catalogs[S_MAX_CATALOGS];
    size_t ncat = 0;
    double seconds = 2;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--per-spec") == 0) {
            if (!s_spec_ns && !(s_spec_ns = calloc(S_NSPECS, sizeof *s_spec_ns))) {
                return 2;
            }
        } else if (strcmp(a, "--policy") == 0 && has_val) {
            policy = argv[++i];
        } else if (strcmp(a, "--catalog") == 0 && has_val && ncat < S_MAX_CATALOGS) {
            catalogs[ncat++] = argv[++i];
        } else if (strcmp(a, "--text") == 0 && has_val) {
            if (s_load_text(argv[++i]) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--health") == 0 && has_val) {
            s_health = argv[++i];
            if (strcmp(s_health, "off") != 0 && strcmp(s_health, "on") != 0 &&
                strcmp(s_health, "cooling") != 0) {
                fprintf(stderr, "bench_resolve: --health: expected off, on or cooling\n");
                return 2;
            }
        } else if (strcmp(a, "--scan") == 0 && has_val) {
            const char *v = argv[++i];
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
                fprintf(stderr, "bench_resolve: --scan: expected on or off\n");
                return 2;
            }
            s_scan_on = strcmp(v, "on") == 0;
        } else if (strcmp(a, "--seconds") == 0 && has_val) {
            char *end;
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds >= 0.1 && seconds <= 60)) {
                fprintf(stderr, "bench_resolve: --seconds: expected 0.1 to 60\n");
                return 2;
            }
        } else {
            fprintf(stderr, "bench_resolve: bad argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (!alloc_count_available()) {
        fprintf(stderr,
                "bench_resolve: a sanitizer build counts no allocations (allocs reads 0)\n");
    }
    uint32_t *hist = calloc(S_HIST_NS + 1, sizeof *hist);
    if (!hist) {
        return 2;
    }
    s_result_t res;
    int rc = 0;
    if (ncat) {
        const char *label = ncat > 1 || strstr(catalogs[0], "litellm") ? "litellm" : "bundled";
        if (s_scenario(label, policy, catalogs, ncat, seconds, hist, &res) != 0) {
            rc = 2;
        } else {
            s_print(&res, json);
            s_print_specs(res.name, json ? stderr : stdout);
            rc = res.allocs ? 1 : 0;
        }
    } else {
        const char *bundled[] = {eng_catalog_default_path()};
        const char *full[] = {eng_catalog_default_path(),
                              "litellm:tests/data/litellm/model_prices_and_context_window.json"};
        if (s_scenario("bundled", policy, bundled, 1, seconds, hist, &res) != 0) {
            rc = 2;
        } else {
            s_print(&res, json);
            s_print_specs(res.name, json ? stderr : stdout);
            rc = res.allocs ? 1 : rc;
        }
        if (rc != 2 && s_scenario("litellm", policy, full, 2, seconds, hist, &res) == 0) {
            s_print(&res, json);
            s_print_specs(res.name, json ? stderr : stdout);
            rc = res.allocs ? 1 : rc;
        } else if (rc != 2) {
            rc = 2;
        }
    }
    if (rc == 1) {
        fprintf(stderr, "bench_resolve: FAIL: the decision path allocated heap memory\n");
    }
    free(hist);
    free(s_spec_ns);
    return rc;
}
