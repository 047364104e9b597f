/* hiccup.c - how long this machine stops running a thread, and how long it
 * takes to wake one up.
 *
 *   hiccup [--seconds S] [--cpus LIST|all] [--mode spin|wake|both] [--json]
 *
 * Spin (first): a hiccup meter in the spirit of jHiccup: one thread per CPU,
 * pinned to it, does nothing but read CLOCK_MONOTONIC in a loop. Two
 * consecutive reads are normally a few tens of nanoseconds apart; a longer gap
 * is time the thread did not run: an interrupt, the local scheduler running
 * something else, or (in a virtual machine) the host not running the vCPU at
 * all. No software on this machine can answer faster than the stalls that hit
 * it, so these gaps are the latency floor under every benchmark measured here.
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
 * Wake (second): a spinning thread never sleeps, so it never sees what a
 * blocking server pays on every request: the time from "this thread can run
 * again" to "it runs", with its CPU idle (halted) in between. See "Wake-up
 * latency" below for the three measurements and why each one matters.
 *
 * While the spin part runs it keeps every selected CPU busy: it measures the
 * machine only when nothing else runs, and it slows down anything that does.
 * Run it alone. Bounded: at most 60 s per part. Exit 0 after a run, 1 when a
 * thread could not be started or pinned, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
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
#define S_NAP_MIN_NS 20000       /* wake: the shortest random nap before a ping */
#define S_NAP_MAX_NS 200000      /* wake: the longest */
#define S_TIMER_NS 100000        /* wake: the timer's sleep */
#define S_SUB_BITS 5             /* latency histogram: 2^5 sub-buckets per power of 2 */
#define S_SUB (1u << S_SUB_BITS)
#define S_LAT_BUCKETS ((64 - S_SUB_BITS + 1) * S_SUB) /* covers every uint64_t */

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

/* Threads --------------------------------------------------------------------- */

static int s_oom(void)
{
    fprintf(stderr, "hiccup: out of memory\n");
    return 1;
}

/* Starts fn(arg) on a thread pinned to cpu. Returns 0, or 1 (message printed). */
static int s_start_pinned(pthread_t *thread, int cpu, void *(*fn)(void *), void *arg)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    int err = pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    if (!err) {
        err = pthread_create(thread, &attr, fn, arg);
    }
    pthread_attr_destroy(&attr);
    if (err) {
        fprintf(stderr, "hiccup: cannot start a thread pinned to CPU %d: %s\n", cpu, strerror(err));
        return 1;
    }
    return 0;
}

/* Wake-up latency -------------------------------------------------------------
 *
 * A request to a blocking server wakes sleeping threads. A ZeroMQ request from
 * the load generator to the echo server and back wakes about six: client app
 * thread -> its I/O thread -> server I/O thread -> server app thread, and the
 * same way back; most of these hops go from one CPU to another, and libzmq's
 * mailboxes signal with eventfd, as below. Waking a thread on an idle CPU takes
 * an inter-processor interrupt and that CPU leaving its idle state; in a
 * virtual machine the idle vCPU is halted, and the host must run it again,
 * which takes as long as the host is busy. The spin part never sees this cost:
 * its threads never sleep. Each wake-up of a request has its own chance of
 * being slow, so the p99 of a request is bounded below by roughly the p99 of
 * one cross-CPU wake-up, whatever the spin part says.
 *
 * cross-CPU: two threads pinned to two CPUs play ping-pong through two
 *   eventfds. The pinger reads CLOCK_MONOTONIC into shared memory and writes;
 *   the other end, blocked in read(), reads the clock as soon as read()
 *   returns: the difference is one wake-up (one clock for all CPUs). Before
 *   each ping the pinger naps a random 20-200 us, so that the other CPU really
 *   goes idle, like a server between requests at moderate load; random, so
 *   that the pings do not keep step with anything periodic of the host.
 * same-CPU: the same with both threads on one CPU: a context switch and no
 *   interrupt between CPUs. Set against cross-CPU it tells the cost of
 *   reaching another CPU from the cost of the scheduler.
 * timer: one thread sleeps 100 us with clock_nanosleep and records how late
 *   it wakes: what every timeout and sleep pays, e.g. a load generator that
 *   sends on schedule, or a server waiting in epoll_wait with a timeout.
 *
 * These threads set their timer slack to 1 ns: the default 50 us slack of a
 * normal thread would count as lateness although the kernel chose it. Each
 * measurement gets a share of --seconds (cross-CPU, the one that bounds a
 * request, half). Latencies go into a log-linear histogram: S_SUB buckets per
 * power of two, so a percentile is at most 1/S_SUB high, and bounded memory
 * for any run length. */

/* Latencies in ns, log-linear. */
typedef struct {
    uint64_t count;                 /* latencies added */
    uint64_t max_ns;                /* the largest */
    uint64_t bucket[S_LAT_BUCKETS]; /* by s_lat_index() */
} s_lat_t;

/* Values below 2 * S_SUB have a bucket each; above, each power of two
 * [2^e, 2^(e+1)) is split into S_SUB buckets of equal width. */
static size_t s_lat_index(uint64_t ns)
{
    if (ns < 2 * S_SUB) {
        return (size_t)ns;
    }
    unsigned shift = 63u - (unsigned)__builtin_clzll(ns) - S_SUB_BITS;
    return (size_t)shift * S_SUB + (size_t)(ns >> shift);
}

/* The largest value that falls into bucket i. */
static uint64_t s_lat_top(size_t i)
{
    if (i < 2 * S_SUB) {
        return i;
    }
    unsigned shift = (unsigned)(i / S_SUB) - 1;
    uint64_t sub = i - (size_t)shift * S_SUB;
    return ((sub + 1) << shift) - 1;
}

static void s_lat_add(s_lat_t *h, int64_t ns)
{
    uint64_t v = ns > 0 ? (uint64_t)ns : 0; /* cannot be < 0: one monotonic clock */
    h->bucket[s_lat_index(v)]++;
    h->count++;
    h->max_ns = v > h->max_ns ? v : h->max_ns;
}

static void s_lat_merge(s_lat_t *into, const s_lat_t *from)
{
    for (size_t i = 0; i < S_LAT_BUCKETS; i++) {
        into->bucket[i] += from->bucket[i];
    }
    into->count += from->count;
    into->max_ns = from->max_ns > into->max_ns ? from->max_ns : into->max_ns;
}

/* The pct percentile in us: the top of the bucket that holds it, at most the
 * largest latency seen; 0 when there is none. */
static double s_lat_pct_us(const s_lat_t *h, double pct)
{
    if (h->count == 0) {
        return 0;
    }
    double want = pct / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want, seen = 0;
    if ((double)rank < want || rank == 0) {
        rank++; /* the smallest rank that covers pct of them */
    }
    for (size_t i = 0; i < S_LAT_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t top = s_lat_top(i);
            return (double)(top < h->max_ns ? top : h->max_ns) / 1e3;
        }
    }
    return (double)h->max_ns / 1e3;
}

typedef struct s_pingpong s_pingpong_t;

/* One end of a ping-pong. */
typedef struct {
    s_pingpong_t *pp; /* the game it plays in */
    int cpu;          /* CPU it is pinned to */
    int wait_fd;      /* eventfd it blocks on */
    int ping_fd;      /* eventfd that wakes the other end */
    bool leader;      /* pings first and decides when to stop */
    uint64_t rng;     /* xorshift64 state for the naps, never 0 */
    pthread_t thread; /* the thread playing this end */
    s_lat_t lat;      /* the wake-ups of this end */
} s_end_t;

struct s_pingpong {
    _Atomic int64_t sent_ns; /* when the last ping was written */
    atomic_bool stop;        /* set before the last ping: its receiver exits */
    int64_t end_ns;          /* the leader stops at its first wake-up after this */
    pthread_barrier_t go;    /* both ends start together */
    s_end_t end[2];          /* end[0] leads */
};

static uint64_t s_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Sleeps a random S_NAP_MIN_NS to S_NAP_MAX_NS: the other end's CPU goes idle. */
static void s_nap(s_end_t *e)
{
    uint64_t span = S_NAP_MAX_NS - S_NAP_MIN_NS + 1;
    struct timespec ts = {.tv_nsec = S_NAP_MIN_NS + (long)(s_rand(&e->rng) % span)};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
    }
}

/* Stamps the time, then wakes the other end. */
static void s_ping(s_end_t *e)
{
    atomic_store_explicit(&e->pp->sent_ns, s_now_ns(), memory_order_release);
    uint64_t one = 1;
    while (write(e->ping_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void *s_pingpong_end(void *arg)
{
    s_end_t *e = arg;
    s_pingpong_t *pp = e->pp;
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    pthread_barrier_wait(&pp->go);
    if (e->leader) {
        s_nap(e);
        s_ping(e);
    }
    for (;;) {
        uint64_t value;
        ssize_t got = read(e->wait_fd, &value, sizeof value);
        int64_t woke = s_now_ns();
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (atomic_load(&pp->stop)) {
            break;
        }
        bool failed = got != (ssize_t)sizeof value;
        if (!failed) {
            s_lat_add(&e->lat, woke - atomic_load_explicit(&pp->sent_ns, memory_order_acquire));
        }
        /* A failed read cannot happen on a good eventfd; were it to, stopping
         * both ends beats leaving the other one blocked for ever. */
        if (failed || (e->leader && woke >= pp->end_ns)) {
            atomic_store(&pp->stop, true);
            s_ping(e);
            break;
        }
        s_nap(e);
        s_ping(e);
    }
    return NULL;
}

/* Plays ping-pong between cpu_a and cpu_b (the same CPU or not) for run_ns and
 * adds both ends' wake-ups to out. Returns 0, or 1 (message printed). */
static int s_pingpong_run(int cpu_a, int cpu_b, int64_t run_ns, s_lat_t *out)
{
    s_pingpong_t *pp = calloc(1, sizeof *pp);
    if (!pp) {
        return s_oom();
    }
    int fd[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    if (fd[0] < 0 || fd[1] < 0) {
        fprintf(stderr, "hiccup: eventfd: %s\n", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (fd[i] >= 0) {
                close(fd[i]);
            }
        }
        free(pp);
        return 1;
    }
    pthread_barrier_init(&pp->go, NULL, 2);
    for (int i = 0; i < 2; i++) {
        s_end_t *e = &pp->end[i];
        e->pp = pp;
        e->cpu = i == 0 ? cpu_a : cpu_b;
        e->wait_fd = fd[i];
        e->ping_fd = fd[1 - i];
        e->leader = i == 0;
        e->rng = (0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1)) ^ (uint64_t)s_now_ns();
        e->rng |= 1;
    }
    pp->end_ns = s_now_ns() + run_ns;
    for (int i = 0; i < 2; i++) {
        /* A thread already started waits at the barrier for one that never
         * comes: nothing can be measured, and exit ends it. */
        if (s_start_pinned(&pp->end[i].thread, pp->end[i].cpu, s_pingpong_end, &pp->end[i])) {
            return 1;
        }
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(pp->end[i].thread, NULL);
        s_lat_merge(out, &pp->end[i].lat);
    }
    pthread_barrier_destroy(&pp->go);
    close(fd[0]);
    close(fd[1]);
    free(pp);
    return 0;
}

/* A thread that sleeps S_TIMER_NS at a time until end_ns. */
typedef struct {
    int64_t end_ns; /* when to stop */
    s_lat_t *lat;   /* how late each sleep ended */
} s_timer_t;

static void *s_timer(void *arg)
{
    s_timer_t *t = arg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    for (int64_t now = s_now_ns(); now < t->end_ns;) {
        /* An absolute deadline: the lateness is exact, whatever the call costs. */
        int64_t due = now + S_TIMER_NS;
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        now = s_now_ns();
        s_lat_add(t->lat, now - due);
    }
    return NULL;
}

static int s_timer_run(int cpu, int64_t run_ns, s_lat_t *out)
{
    s_timer_t t = {.end_ns = s_now_ns() + run_ns, .lat = out};
    pthread_t thread;
    if (s_start_pinned(&thread, cpu, s_timer, &t)) {
        return 1;
    }
    pthread_join(thread, NULL);
    return 0;
}

/* The wake-up measurements, in the order they run and print. */
enum { S_WAKE_CROSS, S_WAKE_SAME, S_WAKE_TIMER, S_NWAKES };

static const struct {
    const char *key; /* JSON field */
    const char *txt; /* human label */
    double share;    /* of --seconds it runs */
} s_wakes[S_NWAKES] = {
    [S_WAKE_CROSS] = {"cross_cpu", "cross-CPU", 0.5},
    [S_WAKE_SAME] = {"same_cpu", "same-CPU", 0.25},
    [S_WAKE_TIMER] = {"timer", "timer", 0.25},
};

/* One wake-up measurement. */
typedef struct {
    bool measured;  /* false: cross-CPU with one CPU selected */
    int cpu[2];     /* CPUs used; cpu[1] == cpu[0] but for cross-CPU */
    double seconds; /* how long it ran */
    s_lat_t lat;    /* the wake-ups */
} s_wake_t;

/* Runs the three measurements one after the other on the first two CPUs of
 * cpus. Returns 0, or 1 (message printed). */
static int s_wake_measure(const cpu_set_t *cpus, double seconds, s_wake_t *w)
{
    int first[2] = {-1, -1}, n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++) {
        if (CPU_ISSET(cpu, cpus)) {
            first[n++] = cpu;
        }
    }
    for (int k = 0; k < S_NWAKES; k++) {
        s_wake_t *x = &w[k];
        x->cpu[0] = first[0];
        x->cpu[1] = k == S_WAKE_CROSS ? first[1] : first[0];
        x->measured = x->cpu[1] >= 0;
        if (!x->measured) {
            continue;
        }
        int64_t run_ns = (int64_t)(seconds * s_wakes[k].share * 1e9), t0 = s_now_ns();
        int rc = k == S_WAKE_TIMER ? s_timer_run(x->cpu[0], run_ns, &x->lat)
                                   : s_pingpong_run(x->cpu[0], x->cpu[1], run_ns, &x->lat);
        if (rc != 0) {
            return rc;
        }
        x->seconds = (double)(s_now_ns() - t0) / 1e9;
    }
    return 0;
}

/* Command line ---------------------------------------------------------------- */

/* What --mode selects: bits. */
enum { S_MODE_SPIN = 1, S_MODE_WAKE = 2, S_MODE_BOTH = S_MODE_SPIN | S_MODE_WAKE };

static const struct {
    const char *name; /* --mode value */
    int mode;         /* S_MODE_* */
} s_modes[] = {
    {"spin", S_MODE_SPIN},
    {"wake", S_MODE_WAKE},
    {"both", S_MODE_BOTH},
};
#define S_NMODES (sizeof s_modes / sizeof s_modes[0])

typedef struct {
    double seconds; /* --seconds */
    cpu_set_t cpus; /* --cpus */
    int mode;       /* --mode, S_MODE_* */
    bool json;      /* --json */
} s_opts_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hiccup [--seconds S] [--cpus LIST|all] [--mode spin|wake|both] [--json]\n\n"
            "  --seconds S     how long each part measures, 0.1 to 60 (default 3)\n"
            "  --cpus LIST     CPUs to measure, e.g. 0,2-3, or all (default: all the CPUs\n"
            "                  this process may run on); spin: one spinning thread per CPU;\n"
            "                  wake: the first two of them\n"
            "  --mode M        spin: gaps seen by a thread that never sleeps;\n"
            "                  wake: wake-up latency of sleeping threads: cross-CPU and\n"
            "                  same-CPU eventfd ping-pong after random %d-%d us naps (half and\n"
            "                  a quarter of S), lateness of a %d us clock_nanosleep (a quarter);\n"
            "                  both (default): spin, then wake\n"
            "  --json          one JSON object instead of one line per CPU and wake-up kind\n\n"
            "Every selected CPU is kept busy while spin runs: run it on an idle machine.\n"
            "Exit 1 when a thread could not be started or pinned, 2 on bad usage.\n",
            S_NAP_MIN_NS / 1000, S_NAP_MAX_NS / 1000, S_TIMER_NS / 1000);
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

/* Parses a --mode value into *mode. */
static int s_parse_mode(const char *v, int *mode)
{
    for (size_t i = 0; i < S_NMODES; i++) {
        if (strcmp(v, s_modes[i].name) == 0) {
            *mode = s_modes[i].mode;
            return 0;
        }
    }
    return s_bad("--mode", "expected spin, wake or both", v);
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
        } else if (strcmp(a, "--mode") == 0 && has_val) {
            if (s_parse_mode(argv[++i], &o->mode) != 0) {
                return 2;
            }
        } else {
            bool takes_value =
                strcmp(a, "--seconds") == 0 || strcmp(a, "--cpus") == 0 || strcmp(a, "--mode") == 0;
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

/* The spin part's fields of the JSON object. */
static void s_json_spin(const s_cpu_t *cpus, int n, uint64_t *scratch)
{
    s_sum_t all = s_sum(cpus, n, scratch);
    printf("\"stall_p99_us\":%.1f,\"stall_p99_not_preempted_us\":%.1f,\"ncpus\":%d,\"cpus\":[",
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
    printf("}");
}

/* The wake part's "wake" object: one object per kind, null when not measured. */
static void s_json_wake(const s_wake_t *w)
{
    printf("\"wake\":{\"nap_us\":[%d,%d],\"timer_sleep_us\":%d", S_NAP_MIN_NS / 1000,
           S_NAP_MAX_NS / 1000, S_TIMER_NS / 1000);
    for (int k = 0; k < S_NWAKES; k++) {
        const s_wake_t *x = &w[k];
        printf(",\"%s\":", s_wakes[k].key);
        if (!x->measured) {
            printf("null");
            continue;
        }
        printf("{\"cpus\":[%d", x->cpu[0]);
        if (x->cpu[1] != x->cpu[0]) {
            printf(",%d", x->cpu[1]);
        }
        printf("],\"seconds\":%.3f,\"count\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f,"
               "\"p999_us\":%.1f,\"max_us\":%.1f}",
               x->seconds, (unsigned long long)x->lat.count, s_lat_pct_us(&x->lat, 50),
               s_lat_pct_us(&x->lat, 99), s_lat_pct_us(&x->lat, 99.9), (double)x->lat.max_ns / 1e3);
    }
    printf("}");
}

/* "12.3 us" or "4.56 ms" into buf. */
static const char *s_fmt_us(char *buf, size_t size, double us)
{
    if (us < 1000) {
        snprintf(buf, size, "%.1f us", us);
    } else {
        snprintf(buf, size, "%.2f ms", us / 1e3);
    }
    return buf;
}

static void s_print_wake_text(const s_wake_t *w)
{
    printf("wake-ups: a thread blocked in read() woken through eventfd by another after a "
           "random %d-%d us nap, from before write() to after read(); timer: lateness of a "
           "%d us clock_nanosleep\n",
           S_NAP_MIN_NS / 1000, S_NAP_MAX_NS / 1000, S_TIMER_NS / 1000);
    for (int k = 0; k < S_NWAKES; k++) {
        const s_wake_t *x = &w[k];
        if (!x->measured) {
            printf("%-10s not measured: needs two CPUs (see --cpus)\n", s_wakes[k].txt);
            continue;
        }
        char where[32], p50[16], p99[16], p999[16], max[16];
        if (x->cpu[1] != x->cpu[0]) {
            snprintf(where, sizeof where, "cpu%d<->cpu%d", x->cpu[0], x->cpu[1]);
        } else {
            snprintf(where, sizeof where, "cpu%d", x->cpu[0]);
        }
        printf("%-10s %-12s %.1f s  n %llu  p50 %s  p99 %s  p99.9 %s  max %s\n", s_wakes[k].txt,
               where, x->seconds, (unsigned long long)x->lat.count,
               s_fmt_us(p50, sizeof p50, s_lat_pct_us(&x->lat, 50)),
               s_fmt_us(p99, sizeof p99, s_lat_pct_us(&x->lat, 99)),
               s_fmt_us(p999, sizeof p999, s_lat_pct_us(&x->lat, 99.9)),
               s_fmt_us(max, sizeof max, (double)x->lat.max_ns / 1e3));
    }
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
        cpus[i].go = &go;
        /* The threads already started wait at the barrier for ones that never
         * come: nothing can be measured, and exit ends them. */
        if (s_start_pinned(&cpus[i].thread, cpus[i].cpu, s_spin, &cpus[i])) {
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

/* The spin part: its threads, and what they logged. */
typedef struct {
    s_cpu_t *cpus;     /* one per selected CPU */
    int n;             /* how many */
    uint64_t *scratch; /* room for every logged gap, for the percentiles */
} s_spin_t;

static void s_spin_free(s_spin_t *sp)
{
    for (int i = 0; sp->cpus && i < sp->n; i++) {
        free(sp->cpus[i].log);
    }
    free(sp->cpus);
    free(sp->scratch);
    sp->cpus = NULL;
    sp->scratch = NULL;
}

/* Runs the spin part on every selected CPU. Returns 0, or 1 (message printed). */
static int s_spin_measure(const s_opts_t *o, s_spin_t *sp)
{
    int n = CPU_COUNT(&o->cpus), ncpu_ids = 0;
    s_cpu_t *cpus = calloc((size_t)n, sizeof *cpus);
    if (!cpus) {
        return s_oom();
    }
    sp->cpus = cpus;
    sp->n = n;
    for (int cpu = 0, i = 0; cpu < CPU_SETSIZE && i < n; cpu++) {
        if (CPU_ISSET(cpu, &o->cpus)) {
            cpus[i].cpu = cpu;
            cpus[i].run_ns = (int64_t)(o->seconds * 1e9);
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
    free(steal0);
    free(steal1);

    size_t logged = 0;
    for (int i = 0; i < n; i++) {
        logged += cpus[i].nlog;
    }
    sp->scratch = malloc((logged ? logged : 1) * sizeof *sp->scratch);
    return sp->scratch ? 0 : s_oom();
}

static const char *s_mode_name(int mode)
{
    for (size_t i = 0; i < S_NMODES; i++) {
        if (s_modes[i].mode == mode) {
            return s_modes[i].name;
        }
    }
    return "?";
}

int main(int argc, char **argv)
{
    s_opts_t o = {.seconds = 3, .mode = S_MODE_BOTH};
    int rc = s_parse(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc; /* 1: --help was printed */
    }
    s_spin_t spin = {0};
    if ((o.mode & S_MODE_SPIN) && s_spin_measure(&o, &spin) != 0) {
        return 1;
    }
    /* Static: three histograms are too big for a stack frame worth having. */
    static s_wake_t wake[S_NWAKES];
    if ((o.mode & S_MODE_WAKE) && s_wake_measure(&o.cpus, o.seconds, wake) != 0) {
        return 1;
    }
    if (o.json) {
        printf("{\"tool\":\"hiccup\",\"clock\":\"CLOCK_MONOTONIC\",\"mode\":\"%s\"",
               s_mode_name(o.mode));
        if (o.mode & S_MODE_SPIN) {
            printf(",");
            s_json_spin(spin.cpus, spin.n, spin.scratch);
        }
        if (o.mode & S_MODE_WAKE) {
            printf(",");
            s_json_wake(wake);
        }
        printf("}\n");
    } else {
        if (o.mode & S_MODE_SPIN) {
            s_print_text(spin.cpus, spin.n, o.seconds, spin.scratch);
        }
        if (o.mode & S_MODE_WAKE) {
            s_print_wake_text(wake);
        }
    }
    s_spin_free(&spin);
    return 0;
}
