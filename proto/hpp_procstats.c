/* hpp_procstats.c - see hpp_procstats.h. */
#define _GNU_SOURCE
#include "hpp_procstats.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#ifndef HPP_COMMIT
#define HPP_COMMIT "unknown"
#endif

int hpp_procstats_parse_stat(const char *line, long ticks, long page, double boot_time,
                             hpp_procstats_t *out)
{
    const char *p = strrchr(line, ')');
    if (!p || ticks <= 0 || page <= 0) {
        return -1;
    }
    /* Fields 3.. after the name: state is 3, utime 14, stime 15,
     * num_threads 20, starttime 22, vsize 23, rss 24. */
    unsigned long long f[25] = {0};
    p++;
    for (int i = 3; i <= 24; i++) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0' || *p == '\n') {
            return -1;
        }
        if (i == 3) {
            p++; /* the state letter */
        } else {
            char *end = NULL;
            f[i] = strtoull(p, &end, 10);
            if (end == p) {
                /* Signed fields (priority, nice, tty) may be negative. */
                long long v = strtoll(p, &end, 10);
                if (end == p) {
                    return -1;
                }
                f[i] = (unsigned long long)v;
            }
            p = end;
        }
    }
    out->has_stat = true;
    out->cpu_seconds = (double)(f[14] + f[15]) / (double)ticks;
    out->threads = (uint32_t)f[20];
    out->start_time = boot_time + (double)f[22] / (double)ticks;
    out->virtual_bytes = f[23];
    out->resident_bytes = f[24] * (unsigned long long)page;
    return 0;
}

/* The boot time from /proc/stat's btime line, 0 when absent. */
static double s_boot_time(void)
{
    FILE *fp = fopen("/proc/stat", "re");
    if (!fp) {
        return 0;
    }
    char line[256];
    double bt = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "btime ", 6) == 0) {
            bt = (double)strtoull(line + 6, NULL, 10);
            break;
        }
    }
    fclose(fp);
    return bt;
}

/* Counts the entries of /proc/self/fd (the directory's own descriptor
 * included, as client libraries do). */
static int s_count_fds(uint64_t *n)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return -1;
    }
    uint64_t c = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] != '.') {
            c++;
        }
    }
    closedir(d);
    *n = c;
    return 0;
}

int hpp_procstats_read(hpp_procstats_t *out)
{
    memset(out, 0, sizeof *out);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        out->max_fds = (uint64_t)rl.rlim_cur;
    }
    out->has_fds = s_count_fds(&out->open_fds) == 0;
    FILE *fp = fopen("/proc/self/stat", "re");
    if (!fp) {
        return -1;
    }
    char line[1024];
    bool got = fgets(line, sizeof line, fp) != NULL;
    fclose(fp);
    if (!got) {
        return -1;
    }
    if (hpp_procstats_parse_stat(line, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), s_boot_time(),
                                 out) != 0) {
        return -1;
    }
    /* The stat line counts CPU time in clock ticks (10 ms); the clock has
     * nanoseconds, so an idle daemon does not read 0 for minutes. */
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0) {
        out->cpu_seconds = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    return 0;
}

void hpp_procstats_write(FILE *fp, const hpp_procstats_t *ps)
{
    if (ps->has_stat) {
        fprintf(fp,
                "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                "seconds.\n"
                "# TYPE process_cpu_seconds_total counter\n"
                "process_cpu_seconds_total %.6f\n"
                "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                "# TYPE process_virtual_memory_bytes gauge\n"
                "process_virtual_memory_bytes %llu\n"
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\n"
                "process_resident_memory_bytes %llu\n"
                "# HELP process_start_time_seconds Start time of the process since unix epoch "
                "in seconds.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %.2f\n"
                "# HELP process_threads Number of OS threads in the process.\n"
                "# TYPE process_threads gauge\n"
                "process_threads %u\n",
                ps->cpu_seconds, (unsigned long long)ps->virtual_bytes,
                (unsigned long long)ps->resident_bytes, ps->start_time, ps->threads);
    }
    if (ps->has_fds) {
        fprintf(fp,
                "# HELP process_open_fds Number of open file descriptors.\n"
                "# TYPE process_open_fds gauge\n"
                "process_open_fds %llu\n",
                (unsigned long long)ps->open_fds);
    }
    if (ps->max_fds) {
        fprintf(fp,
                "# HELP process_max_fds Maximum number of open file descriptors.\n"
                "# TYPE process_max_fds gauge\n"
                "process_max_fds %llu\n",
                (unsigned long long)ps->max_fds);
    }
}

void hpp_metrics_label(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', fp);
            fputc(*s, fp);
        } else if (*s == '\n') {
            fputs("\\n", fp);
        } else {
            fputc(*s, fp);
        }
    }
}

void hpp_build_info_write(FILE *fp, const char *name)
{
    fprintf(fp,
            "# HELP %s The program's release, protocol version and source commit; always 1.\n"
            "# TYPE %s gauge\n"
            "%s{version=\"",
            name, name, name);
    hpp_metrics_label(fp, HPP_VERSION);
    fprintf(fp, "\",protocol=\"%d\",commit=\"", PROTO_VERSION);
    hpp_metrics_label(fp, HPP_COMMIT);
    fputs("\"} 1\n", fp);
}
