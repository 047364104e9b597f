/* harness.h - process helpers for integration tests that start real binaries.
 *
 * Header-only (static functions), so any tests/integration/test_*.c can
 * include it. A child's stdout and stderr go to a log file rather than a
 * pipe: the child can never block on a full pipe the test forgot to read,
 * the test waits for a readiness line by polling the file, and the log is
 * left behind for debugging a failure. Every wait has a timeout; nothing
 * sleeps blindly. Children are stopped by PID only.
 *
 *     hh_proc_t eng;
 *     char *argv[] = {hh_bin("hpp-engine"), "--listen", "tcp://127.0.0.1:0", NULL};
 *     hh_spawn(&eng, argv, "engine");
 *     char line[256];
 *     hh_wait_line(&eng, "hpp-engine: ready on ", 5000, line, sizeof line);
 *     ...
 *     hh_stop(&eng);
 */
#ifndef HARNESS_H
#define HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_tmpdir.h" /* test_tmpdir_make, test_tmpdir_remove */

/* One child process. */
typedef struct {
    pid_t pid;     /* 0 when not running */
    char log[512]; /* file receiving its stdout and stderr */
    int status;    /* wait status once reaped */
    bool reaped;   /* waitpid returned it */
} hh_proc_t;

static inline long long hh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void hh_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The build directory: $HPP_BUILD, or "build". */
static inline const char *hh_build_dir(void)
{
    const char *b = getenv("HPP_BUILD");
    return b && *b ? b : "build";
}

/* "<build>/<name>" in a static buffer (one of 8 rotating slots). */
static inline char *hh_bin(const char *name)
{
    static char slots[8][512];
    static int next;
    char *s = slots[next++ % 8];
    snprintf(s, sizeof slots[0], "%s/%s", hh_build_dir(), name);
    return s;
}

/* Writes `text` to `path`, replacing it atomically (write + rename), the way
 * an editor or a deploy would. */
static inline int hh_write_file(const char *path, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        return -1;
    }
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

/* Reads a whole file into a malloc'd NUL-terminated buffer (NULL on error). */
static inline char *hh_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len) {
            *len = n;
        }
    }
    return buf;
}

/* Starts argv[0] with stdout+stderr appended to a log file named after `tag`
 * in the build directory's test-logs folder. extra_env: "K=V" strings, NULL
 * terminated, or NULL. Returns 0 or -1. */
static inline int hh_spawn_env(hh_proc_t *p, char *const argv[], const char *tag,
                               char *const extra_env[])
{
    memset(p, 0, sizeof *p);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test-logs", hh_build_dir());
    mkdir(dir, 0755);
    snprintf(p->log, sizeof p->log, "%.300s/%.40s-%d-%lld.log", dir, tag, (int)getpid(),
             hh_now_ms());
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
        }
        for (int i = 0; extra_env && extra_env[i]; i++) {
            putenv(extra_env[i]);
        }
        /* Die with the test's thread: a test that fails an assertion exits
         * at once, without stopping what it started (SIGKILL also ends a
         * child the test had stopped). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Start from a clean signal state: Criterion's runner may have
         * blocked or ignored some. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        dprintf(STDERR_FILENO, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    p->pid = pid;
    return 0;
}

static inline int hh_spawn(hh_proc_t *p, char *const argv[], const char *tag)
{
    return hh_spawn_env(p, argv, tag, NULL);
}

/* True while the child runs (reaps it when it has exited). */
static inline bool hh_alive(hh_proc_t *p)
{
    if (p->pid <= 0 || p->reaped) {
        return false;
    }
    pid_t r = waitpid(p->pid, &p->status, WNOHANG);
    if (r == p->pid) {
        p->reaped = true;
        return false;
    }
    return r == 0;
}

/* Waits until a line of the log contains `needle`, copying that line into
 * `line` (may be NULL). Returns 0, or -1 on timeout or when the child exits
 * first (the log then says why). */
static inline int hh_wait_line(hh_proc_t *p, const char *needle, int timeout_ms, char *line,
                               size_t n)
{
    long long deadline = hh_now_ms() + timeout_ms;
    for (;;) {
        char *text = hh_read_file(p->log, NULL);
        char *hit = text ? strstr(text, needle) : NULL;
        if (hit) {
            char *start = hit;
            while (start > text && start[-1] != '\n') {
                start--;
            }
            char *end = strchr(hit, '\n');
            if (end) { /* only complete lines count */
                if (line && n > 0) {
                    size_t len = (size_t)(end - start);
                    len = len < n - 1 ? len : n - 1;
                    memcpy(line, start, len);
                    line[len] = '\0';
                }
                free(text);
                return 0;
            }
        }
        free(text);
        if (!hh_alive(p) || hh_now_ms() >= deadline) {
            return -1;
        }
        hh_sleep_ms(10);
    }
}

/* Counts the log lines containing `needle`. */
static inline int hh_count_lines(hh_proc_t *p, const char *needle)
{
    char *text = hh_read_file(p->log, NULL);
    int count = 0;
    for (char *s = text; s && (s = strstr(s, needle)) != NULL; s += strlen(needle)) {
        count++;
    }
    free(text);
    return count;
}

static inline int hh_signal(hh_proc_t *p, int sig)
{
    return p->pid > 0 && !p->reaped ? kill(p->pid, sig) : -1;
}

/* Waits for the child to exit. Returns its exit code (128+N when killed by
 * signal N), or -1 on timeout (the child keeps running). */
static inline int hh_wait_exit(hh_proc_t *p, int timeout_ms)
{
    long long deadline = hh_now_ms() + timeout_ms;
    while (hh_alive(p)) {
        if (hh_now_ms() >= deadline) {
            return -1;
        }
        hh_sleep_ms(5);
    }
    if (!p->reaped) {
        return -1;
    }
    if (WIFEXITED(p->status)) {
        return WEXITSTATUS(p->status);
    }
    return WIFSIGNALED(p->status) ? 128 + WTERMSIG(p->status) : -1;
}

/* SIGTERM, a grace period, then SIGKILL. Returns the exit code. */
static inline int hh_stop(hh_proc_t *p)
{
    if (p->pid <= 0) {
        return -1;
    }
    if (!p->reaped) {
        hh_signal(p, SIGTERM);
    }
    int rc = hh_wait_exit(p, 5000);
    if (rc < 0 && !p->reaped) {
        hh_signal(p, SIGKILL);
        rc = hh_wait_exit(p, 5000);
    }
    return rc;
}

/* Runs argv to completion with stdout+stderr captured into a malloc'd string
 * (*out, may be NULL). Returns the exit code, or -1 (timeout: killed). */
static inline int hh_run(char *const argv[], const char *tag, int timeout_ms, char **out)
{
    hh_proc_t p;
    if (hh_spawn(&p, argv, tag) != 0) {
        return -1;
    }
    int rc = hh_wait_exit(&p, timeout_ms);
    if (rc < 0) {
        hh_signal(&p, SIGKILL);
        hh_wait_exit(&p, 2000);
    }
    if (out) {
        *out = hh_read_file(p.log, NULL);
    }
    return rc;
}

#endif
