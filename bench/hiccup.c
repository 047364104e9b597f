/* hiccup.c - how long this machine stops running a thread that never blocks.
 *
 *   hiccup [--seconds S] [--cpus LIST|all] [--json]
 *
 * A hiccup meter in the spirit of jHiccup: one thread per CPU, pinned to it,
 * does nothing but read CLOCK_MONOTONIC in a loop. Two consecutive reads are
 * normally a few tens of nanoseconds apart; a longer gap is time the thread
 * did not run: an interrupt, the local scheduler running something else, or
 * (in a virtual machine) the host not running the vCPU at all. No software
 * on this machine can answer faster than the stalls that hit it, so these
 * gaps are the latency floor under every benchmark measured here.
 *
 * Each gap goes into a log2 histogram; gaps >= 1 us are also kept one by one
 * (bounded, touched before the run) for the residual-wait percentile below,
 * each marked "preempted" when the thread's count of involuntary context
 * switches grew across it: then the local kernel ran another task of this
 * machine, which says something about what else ran, not about the machine.
 * Per CPU: gaps >= 50 us, >= 200 us, >= 1 ms, the longest gap, the time lost
 * in gaps >= 50 us as a share of the run (and the part of it preempted), the
 * residual-wait p99 with and without the preempted gaps, and the steal time
 * the kernel saw on that CPU (the host ran something else; from /proc/stat,
 * in 10 ms ticks).
 *
 * While it runs it keeps every selected CPU busy: it measures the machine
 * only when nothing else runs, and it slows down anything that does. Run it
 * alone. Bounded: at most 60 s. Exit 0 after a run, 1 when a thread could not
 * be started or pinned, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_SECONDS 60.0
#define S_BUCKETS 64             /* log2 buckets: bucket k holds gaps in [2^k, 2^(k+1)) ns */
#define S_LOG_MIN_NS 1000u       /* gaps this long or longer are kept one by one */
#define S_LOG_CAP (1u << 19)     /* per CPU: 4 MB, > 8000 such gaps/s for 60 s */
#define S_LOST_MIN_NS 50000u     /* "time lost" counts gaps from this length on */
#define S_STALL_PCT 99.0         /* the percentile of residual wait reported */
#define S_PREEMPTED (1ULL << 63) /* log flag: the thread was switched out during the gap */

/* The gap lengths counted separately: one row each, in output order. */
static const struct {
    uint64_t ns;     /* gaps >= this */
    const char *key; /* JSON field */
    const char *txt; /* human label */
} s_limits[] = {
    {50000, "gaps_ge_50us", ">=50us"},
    {200000, "gaps_ge_200us", ">=200us"},
    {1000000, "gaps_ge_1ms", ">=1ms"},
};
#define S_NLIMITS (sizeof s_limits / sizeof s_limits[0])

/* One pinned spinning thread and what it saw. */
typedef struct {
    int cpu;                    /* CPU it is pinned to */
    pthread_t thread;           /* the spinner */
    pthread_barrier_t *go;      /* all spinners start together */
    int64_t run_ns;             /* how long to spin */
    int64_t elapsed_ns;         /* first read to last read */
    uint64_t reads;             /* clock reads */
    uint64_t hist[S_BUCKETS];   /* every gap, by log2 bucket */
    uint64_t over[S_NLIMITS];   /* gaps >= each s_limits[i].ns */
    uint64_t max_ns;            /* longest gap */
    uint64_t lost_ns;           /* sum of gaps >= S_LOST_MIN_NS */
    uint64_t lost_preempted_ns; /* the part of lost_ns in preempted gaps */
    uint64_t *log;              /* gaps >= S_LOG_MIN_NS in order seen, | S_PREEMPTED */
    size_t nlog;                /* entries in log */
    uint64_t unlogged;          /* such gaps dropped because log was full */
    long csw;                   /* involuntary context switches at the last look */
    long preempted;             /* involuntary context switches while spinning */
    double steal_pct;           /* host steal on this CPU, % of the run; < 0 unknown */
} s_cpu_t;

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long s_nivcsw(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

/* The rare path of the loop, kept out of it so the loop stays a few
 * instructions: only gaps >= S_LOG_MIN_NS get here. */
static __attribute__((noinline)) void s_long_gap(s_cpu_t *c, uint64_t gap)
{
    long csw = s_nivcsw();
    bool preempted = csw != c->csw;
    c->csw = csw;
    if (c->nlog < S_LOG_CAP) {
        c->log[c->nlog++] = gap | (preempted ? S_PREEMPTED : 0);
    } else {
        c->unlogged++;
    }
    for (size_t i = 0; i < S_NLIMITS; i++) {
        c->over[i] += gap >= s_limits[i].ns;
    }
    if (gap >= S_LOST_MIN_NS) {
        c->lost_ns += gap;
        c->lost_preempted_ns += preempted ? gap : 0;
    }
}

static void *s_spin(void *arg)
{
    s_cpu_t *c = arg;
    /* Fault the log's pages in now: a page fault inside the loop would be
     * a gap this program made itself. */
    volatile uint64_t *touch = c->log;
    for (size_t i = 0; i < S_LOG_CAP; i += 512) {
        touch[i] = 0;
    }
    pthread_barrier_wait(c->go);
    c->csw = s_nivcsw();
    long csw0 = c->csw;
    int64_t first = s_now_ns(), prev = first, end = first + c->run_ns;
    for (;;) {
        int64_t now = s_now_ns();
        uint64_t gap = (uint64_t)(now - prev);
        prev = now;
        c->reads++;
        c->hist[63 - __builtin_clzll(gap | 1)]++;
        if (gap > c->max_ns) {
            c->max_ns = gap;
        }
        if (gap >= S_LOG_MIN_NS) {
            s_long_gap(c, gap);
            now = s_now_ns(); /* the rare path's own time is not the machine's */
            prev = now;
        }
        if (now >= end) {
            break;
        }
    }
    c->elapsed_ns = prev - first;
    c->preempted = s_nivcsw() - csw0;
    return NULL;
}

/* Residual wait ---------------------------------------------------------------
 *
 * A request arriving at a uniformly random instant of the run either finds the
 * thread running (it waits ~0) or lands inside a gap of length g, u after the
 * gap began, and waits g - u for the CPU to come back. u is uniform on [0, g],
 * so that wait is uniform on [0, g] (expected g/2), and the gap covers g/T of
 * a run of length T. Summed over the gaps, the share of arrival instants that
 * wait longer than w is
 *
 *     S(w) = (1/T) * sum over gaps of max(0, g - w)
 *
 * and the time-weighted p99 of the residual wait is the w with S(w) = 1%.
 * With the gaps sorted longest first, g1 >= g2 >= ... >= gn, S is linear
 * between consecutive gaps:
 *
 *     for g(k+1) <= w <= g(k):   T * S(w) = P(k) - k * w,   P(k) = g1 + ... + gk
 *
 * so the answer is w = (P(k) - 0.01 * T) / k for the first k at which
 * P(k) - k * g(k+1) reaches 0.01 * T. Only gaps >= S_LOG_MIN_NS are kept, which
 * is exact for every w >= S_LOG_MIN_NS; a smaller answer is reported as
 * S_LOG_MIN_NS ("at most 1 us"). A request whose path crosses several CPUs
 * can be stopped by any of them, so for it this floor is, if anything, low.
 * Without the preempted gaps (T unchanged) it answers: what if no other task
 * of this machine had wanted the CPU. */

static int s_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* Sorts gaps (longest first) and returns the residual-wait percentile in us. */
static double s_residual_pct_us(uint64_t *gaps, size_t n, double total_ns, double pct)
{
    qsort(gaps, n, sizeof *gaps, s_desc);
    double target = (1.0 - pct / 100.0) * total_ns, prefix = 0;
    for (size_t k = 1; k <= n; k++) {
        prefix += (double)gaps[k - 1];
        double next = k < n ? (double)gaps[k] : 0;
        if (prefix - (double)k * next >= target) {
            double w = (prefix - target) / (double)k;
            return (w > S_LOG_MIN_NS ? w : S_LOG_MIN_NS) / 1000.0;
        }
    }
    return S_LOG_MIN_NS / 1000.0;
}

/* Copies the logged gaps of cpus[0..n) into out without the flag, leaving out
 * the preempted ones unless with_preempted. Returns how many. */
static size_t s_gaps(const s_cpu_t *cpus, int n, bool with_preempted, uint64_t *out)
{
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < cpus[i].nlog; k++) {
            uint64_t g = cpus[i].log[k];
            if (with_preempted || !(g & S_PREEMPTED)) {
                out[m++] = g & ~S_PREEMPTED;
            }
        }
    }
    return m;
}

/* Residual-wait percentile in us over cpus[0..n) and their total time. */
static double s_stall_us(const s_cpu_t *cpus, int n, bool with_preempted, uint64_t *scratch)
{
    double total_ns = 0;
    for (int i = 0; i < n; i++) {
        total_ns += (double)cpus[i].elapsed_ns;
    }
    size_t m = s_gaps(cpus, n, with_preempted, scratch);
    return s_residual_pct_us(scratch, m, total_ns, S_STALL_PCT);
}

/* Steal time ------------------------------------------------------------------ */

/* Reads the steal column of each "cpuN" line of /proc/stat into steal[N]
 * (USER_HZ ticks). Returns -1 when the file cannot be read. */
static int s_read_steal(unsigned long long *steal, int ncpu)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) {
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8];
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]) == 9 &&
            cpu >= 0 && cpu < ncpu) {
            steal[cpu] = v[7];
        }
    }
    fclose(f);
    return 0;
}

/* Command line ---------------------------------------------------------------- */

typedef struct {
    double seconds; /* --seconds */
    cpu_set_t cpus; /* --cpus */
    bool json;      /* --json */
} s_opts_t;

static void s_usage(FILE *out)
{
    fprintf(out, "usage: hiccup [--seconds S] [--cpus LIST|all] [--json]\n\n"
                 "  --seconds S     how long to measure, 0.1 to 60 (default 3)\n"
                 "  --cpus LIST     CPUs to measure, e.g. 0,2-3, or all (default: all the CPUs\n"
                 "                  this process may run on); one spinning thread per CPU\n"
                 "  --json          one JSON object instead of one line per CPU\n\n"
                 "Every selected CPU is kept busy while it runs: run it on an idle machine.\n"
                 "Exit 1 when a thread could not be started or pinned, 2 on bad usage.\n");
}

static int s_bad(const char *flag, const char *why, const char *value)
{
    fprintf(stderr, "hiccup: %s: %s (got '%s'; see --help)\n", flag, why, value);
    return 2;
}

/* Parses "all" or "0,2-3" into set, keeping only CPUs in allowed. */
static int s_parse_cpus(const char *v, const cpu_set_t *allowed, cpu_set_t *set)
{
    if (strcmp(v, "all") == 0) {
        *set = *allowed;
        return 0;
    }
    CPU_ZERO(set);
    const char *p = v;
    for (;;) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p || lo < 0 || lo >= CPU_SETSIZE) {
            return s_bad("--cpus", "expected a list like 0,2-3 or all", v);
        }
        p = end;
        if (*p == '-') {
            hi = strtol(++p, &end, 10);
            if (end == p || hi < lo || hi >= CPU_SETSIZE) {
                return s_bad("--cpus", "bad range", v);
            }
            p = end;
        }
        for (long c = lo; c <= hi; c++) {
            if (!CPU_ISSET((int)c, allowed)) {
                fprintf(stderr,
                        "hiccup: --cpus: CPU %ld is offline or not allowed for this "
                        "process (see taskset -p or /sys/devices/system/cpu/online)\n",
                        c);
                return 2;
            }
            CPU_SET((int)c, set);
        }
        if (*p == '\0') {
            return 0;
        }
        if (*p++ != ',') {
            return s_bad("--cpus", "expected a list like 0,2-3 or all", v);
        }
    }
}

/* Returns 0, 1 after printing --help, or 2 (message printed) on bad usage. */
static int s_parse(int argc, char **argv, s_opts_t *o)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        fprintf(stderr, "hiccup: sched_getaffinity: %s\n", strerror(errno));
        return 2;
    }
    o->cpus = allowed;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--seconds") == 0 && has_val) {
            const char *v = argv[++i];
            char *end;
            o->seconds = strtod(v, &end);
            if (end == v || *end || !(o->seconds >= 0.1 && o->seconds <= S_MAX_SECONDS)) {
                return s_bad("--seconds", "expected 0.1 to 60", v);
            }
        } else if (strcmp(a, "--cpus") == 0 && has_val) {
            int rc = s_parse_cpus(argv[++i], &allowed, &o->cpus);
            if (rc != 0) {
                return rc;
            }
        } else {
            bool takes_value = strcmp(a, "--seconds") == 0 || strcmp(a, "--cpus") == 0;
            fprintf(stderr, "hiccup: %s '%s' (see --help)\n",
                    takes_value ? "missing value for" : "unknown argument", a);
            return 2;
        }
    }
    return 0;
}

/* Output ---------------------------------------------------------------------- */

/* The figures of one CPU or of all: what a line or a JSON object prints. */
typedef struct {
    double elapsed_ns;                       /* summed over the CPUs */
    uint64_t reads, over[S_NLIMITS], max_ns; /* as in s_cpu_t, summed (max: the max) */
    uint64_t lost_ns, lost_preempted_ns, unlogged;
    long preempted;
    double steal_pct;       /* mean over the CPUs; < 0 unknown */
    double stall_p99_us;    /* residual-wait p99, all gaps */
    double stall_p99_np_us; /* the same without the preempted gaps */
} s_sum_t;

/* Sums cpus[0..n); scratch holds every logged gap of them. For n > 1 the
 * residual wait pools all CPUs' gaps over all CPUs' time: a request arriving
 * at a random instant on a random one of them. */
static s_sum_t s_sum(const s_cpu_t *cpus, int n, uint64_t *scratch)
{
    s_sum_t s = {0};
    for (int i = 0; i < n; i++) {
        const s_cpu_t *c = &cpus[i];
        s.elapsed_ns += (double)c->elapsed_ns;
        s.reads += c->reads;
        for (size_t k = 0; k < S_NLIMITS; k++) {
            s.over[k] += c->over[k];
        }
        s.max_ns = c->max_ns > s.max_ns ? c->max_ns : s.max_ns;
        s.lost_ns += c->lost_ns;
        s.lost_preempted_ns += c->lost_preempted_ns;
        s.unlogged += c->unlogged;
        s.preempted += c->preempted;
        s.steal_pct = s.steal_pct < 0 || c->steal_pct < 0 ? -1 : s.steal_pct + c->steal_pct / n;
    }
    s.stall_p99_us = s_stall_us(cpus, n, true, scratch);
    s.stall_p99_np_us = s_stall_us(cpus, n, false, scratch);
    return s;
}

static double s_pct(uint64_t part_ns, double whole_ns)
{
    return whole_ns > 0 ? 100.0 * (double)part_ns / whole_ns : 0;
}

static void s_print_line(const char *name, const s_sum_t *s)
{
    printf("%-5s read every %.0f ns", name, s->elapsed_ns / (double)(s->reads ? s->reads : 1));
    for (size_t k = 0; k < S_NLIMITS; k++) {
        printf("  %s %llu", s_limits[k].txt, (unsigned long long)s->over[k]);
    }
    printf("  max %.0f us  lost %.2f%% (preempted %.2f%%)  stall p99 %.0f us (%.0f us not "
           "preempted)  preempted %ld times",
           s->max_ns / 1e3, s_pct(s->lost_ns, s->elapsed_ns),
           s_pct(s->lost_preempted_ns, s->elapsed_ns), s->stall_p99_us, s->stall_p99_np_us,
           s->preempted);
    if (s->steal_pct >= 0) {
        printf("  steal %.1f%%", s->steal_pct);
    }
    printf("\n");
}

static void s_json_fields(const s_sum_t *s)
{
    printf("\"seconds\":%.3f,\"reads\":%llu,\"read_ns\":%.1f", s->elapsed_ns / 1e9,
           (unsigned long long)s->reads, s->elapsed_ns / (double)(s->reads ? s->reads : 1));
    for (size_t k = 0; k < S_NLIMITS; k++) {
        printf(",\"%s\":%llu", s_limits[k].key, (unsigned long long)s->over[k]);
    }
    printf(",\"max_gap_us\":%.1f,\"lost_pct\":%.3f,\"lost_preempted_pct\":%.3f,"
           "\"stall_p99_us\":%.1f,\"stall_p99_not_preempted_us\":%.1f,\"preempted\":%ld,"
           "\"unlogged_gaps\":%llu,\"steal_pct\":",
           s->max_ns / 1e3, s_pct(s->lost_ns, s->elapsed_ns),
           s_pct(s->lost_preempted_ns, s->elapsed_ns), s->stall_p99_us, s->stall_p99_np_us,
           s->preempted, (unsigned long long)s->unlogged);
    if (s->steal_pct >= 0) {
        printf("%.2f", s->steal_pct);
    } else {
        printf("null");
    }
}

static void s_print_json(const s_cpu_t *cpus, int n, uint64_t *scratch)
{
    s_sum_t all = s_sum(cpus, n, scratch);
    printf("{\"tool\":\"hiccup\",\"clock\":\"CLOCK_MONOTONIC\",\"stall_p99_us\":%.1f,"
           "\"stall_p99_not_preempted_us\":%.1f,\"ncpus\":%d,\"cpus\":[",
           all.stall_p99_us, all.stall_p99_np_us, n);
    for (int i = 0; i < n; i++) {
        const s_cpu_t *c = &cpus[i];
        s_sum_t one = s_sum(c, 1, scratch);
        printf("%s{\"cpu\":%d,", i ? "," : "", c->cpu);
        s_json_fields(&one);
        /* The histogram: [lower bound of the bucket in ns, gaps], non-empty buckets. */
        printf(",\"hist_log2_ns\":[");
        bool first = true;
        for (int k = 0; k < S_BUCKETS; k++) {
            if (c->hist[k]) {
                printf("%s[%llu,%llu]", first ? "" : ",", 1ULL << k,
                       (unsigned long long)c->hist[k]);
                first = false;
            }
        }
        printf("]}");
    }
    printf("],\"overall\":{");
    s_json_fields(&all);
    printf("}}\n");
}

static void s_print_text(const s_cpu_t *cpus, int n, double seconds, uint64_t *scratch)
{
    printf("hiccup: %d CPU%s, %.1f s, gaps between CLOCK_MONOTONIC reads of a pinned "
           "spinning thread\n",
           n, n == 1 ? "" : "s", seconds);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "cpu%d", cpus[i].cpu);
        s_sum_t one = s_sum(&cpus[i], 1, scratch);
        s_print_line(name, &one);
    }
    s_sum_t all = s_sum(cpus, n, scratch);
    if (n > 1) {
        s_print_line("all", &all);
    }
    if (all.unlogged) {
        printf("warning: %llu gaps >= 1 us did not fit the log: stall p99 is a lower bound\n",
               (unsigned long long)all.unlogged);
    }
}

/* Run -------------------------------------------------------------------------- */

/* Starts one pinned spinner per CPU in cpus[] and waits for them all. */
static int s_run(s_cpu_t *cpus, int n)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        s_cpu_t *c = &cpus[i];
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(c->cpu, &one);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        int err = pthread_attr_setaffinity_np(&attr, sizeof one, &one);
        c->go = &go;
        if (!err) {
            err = pthread_create(&c->thread, &attr, s_spin, c);
        }
        pthread_attr_destroy(&attr);
        if (err) {
            /* The threads already started wait at the barrier for ones that
             * never come: nothing can be measured, and exit ends them. */
            fprintf(stderr, "hiccup: cannot start a thread pinned to CPU %d: %s\n", c->cpu,
                    strerror(err));
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(cpus[i].thread, NULL);
    }
    pthread_barrier_destroy(&go);
    return 0;
}

/* Fills in each CPU's steal time from two /proc/stat snapshots. */
static void s_set_steal(s_cpu_t *cpus, int n, const unsigned long long *before,
                        const unsigned long long *after, bool known)
{
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n; i++) {
        s_cpu_t *c = &cpus[i];
        double ticks = (double)(after[c->cpu] - before[c->cpu]);
        c->steal_pct = known && hz > 0 && c->elapsed_ns > 0
                           ? 100.0 * ticks / (double)hz / ((double)c->elapsed_ns / 1e9)
                           : -1;
    }
}

static int s_oom(void)
{
    fprintf(stderr, "hiccup: out of memory\n");
    return 1;
}

int main(int argc, char **argv)
{
    s_opts_t o = {.seconds = 3};
    int rc = s_parse(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc; /* 1: --help was printed */
    }
    int n = CPU_COUNT(&o.cpus), ncpu_ids = 0;
    s_cpu_t *cpus = calloc((size_t)n, sizeof *cpus);
    if (!cpus) {
        return s_oom();
    }
    for (int cpu = 0, i = 0; cpu < CPU_SETSIZE && i < n; cpu++) {
        if (CPU_ISSET(cpu, &o.cpus)) {
            cpus[i].cpu = cpu;
            cpus[i].run_ns = (int64_t)(o.seconds * 1e9);
            cpus[i].log = malloc(S_LOG_CAP * sizeof *cpus[i].log);
            if (!cpus[i].log) {
                return s_oom();
            }
            ncpu_ids = cpu + 1;
            i++;
        }
    }
    unsigned long long *steal0 = calloc((size_t)ncpu_ids, sizeof *steal0);
    unsigned long long *steal1 = calloc((size_t)ncpu_ids, sizeof *steal1);
    if (!steal0 || !steal1) {
        return s_oom();
    }
    bool have_steal = s_read_steal(steal0, ncpu_ids) == 0;
    if (s_run(cpus, n) != 0) {
        return 1;
    }
    have_steal = have_steal && s_read_steal(steal1, ncpu_ids) == 0;
    s_set_steal(cpus, n, steal0, steal1, have_steal);

    size_t logged = 0;
    for (int i = 0; i < n; i++) {
        logged += cpus[i].nlog;
    }
    uint64_t *scratch = malloc((logged ? logged : 1) * sizeof *scratch);
    if (!scratch) {
        return s_oom();
    }
    if (o.json) {
        s_print_json(cpus, n, scratch);
    } else {
        s_print_text(cpus, n, o.seconds, scratch);
    }
    for (int i = 0; i < n; i++) {
        free(cpus[i].log);
    }
    free(cpus);
    free(scratch);
    free(steal0);
    free(steal1);
    return 0;
}
