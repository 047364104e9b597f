/* hpp_procstats.h - the standard process_* metrics and a *_build_info
 * series, in the Prometheus text format, for every daemon alike.
 *
 * Both services (the engine's --metrics-listen, the sidecar's /metrics)
 * expose the series client libraries call "process collector": CPU time,
 * memory, descriptors and start time, read from /proc/self. One reader here
 * keeps names, units and HELP text identical in both outputs, so one
 * dashboard serves both. Read on a scrape only, never on a request path.
 */
#ifndef HPP_PROCSTATS_H
#define HPP_PROCSTATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One reading of the process. A field /proc did not give stays 0 and its
 * `has_` flag false (then its series is left out of the exposition). */
typedef struct {
    bool has_stat;           /* /proc/self/stat was read */
    double cpu_seconds;      /* user + system CPU time */
    uint64_t virtual_bytes;  /* virtual memory size */
    uint64_t resident_bytes; /* resident set size */
    double start_time;       /* Unix seconds the process started */
    bool has_fds;            /* /proc/self/fd was listed */
    uint64_t open_fds;       /* open file descriptors */
    uint64_t max_fds;        /* RLIMIT_NOFILE soft limit, 0 = unlimited or unknown */
    uint32_t threads;        /* threads of the process */
} hpp_procstats_t;

/* Reads /proc/self/stat, /proc/stat (boot time), /proc/self/fd and the
 * descriptor limit. Returns 0 when the stat line was read, -1 when not
 * (then out->has_stat is false; what else could be read is filled). */
int hpp_procstats_read(hpp_procstats_t *out);

/* Parses the text of a /proc/PID/stat line (the command name may hold
 * spaces and parentheses: fields are counted from the last ')'), with the
 * clock tick rate, page size and boot time (Unix seconds) to convert with.
 * Returns 0, or -1 on a line that does not have the fields. */
int hpp_procstats_parse_stat(const char *line, long ticks, long page, double boot_time,
                             hpp_procstats_t *out);

/* Writes the process_* series of `ps` with their HELP and TYPE lines. */
void hpp_procstats_write(FILE *fp, const hpp_procstats_t *ps);

/* Writes `NAME{version="...",protocol="N",commit="..."} 1` with its HELP
 * and TYPE lines; NAME is e.g. "hpp_engine_build_info". The commit is the
 * one the build defined as HPP_COMMIT (make passes `git describe`), or
 * "unknown" when it did not. */
void hpp_build_info_write(FILE *fp, const char *name);

/* Writes `s` as a label value: backslash, double quote and newline escaped
 * as the text format requires. */
void hpp_metrics_label(FILE *fp, const char *s);

#endif
