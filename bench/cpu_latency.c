/* cpu_latency.c - run a command while idle CPUs wake up fast.
 *
 *   cpu_latency [--us N] [--] COMMAND [ARG]...
 *
 * Asks the kernel, through /dev/cpu_dma_latency (the CPU latency PM QoS
 * request), to keep every CPU in idle states it can leave within N
 * microseconds (default 0), runs COMMAND, and exits with its status. The
 * request lives as long as the file stays open: it ends when this process
 * exits, however that happens, so the machine goes back to its own setting.
 *
 * Why the benchmarks want it: a blocking server sleeps between requests, and
 * each request wakes several threads (a ZeroMQ round trip wakes the app and
 * I/O threads of both ends). When the CPU a thread wakes on is idle, the wake
 * waits for that CPU to leave its idle state. On a virtual machine whose idle
 * vCPUs halt, leaving it means the hypervisor scheduling the vCPU again: tens
 * of microseconds per wake, several times per request (bench/hiccup measures
 * it). With a limit of 0 the kernel's idle loop polls instead of halting, and
 * a wake costs what a context switch costs. Latency benchmarks commonly hold
 * this while they measure (cyclictest does by default; the latency-performance
 * profile of tuned does it for a whole host). It makes idle CPUs spin, so it
 * is for measuring and for hosts tuned for latency, not a default.
 *
 * Exit status: COMMAND's (128 + N when a signal N ended it); 125 when the
 * request cannot be made (no /dev/cpu_dma_latency, not permitted), with the
 * reason on stderr; 126 when COMMAND cannot be run; 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_DEVICE "/dev/cpu_dma_latency"
#define S_MAX_US 2000000000L /* the kernel takes a signed 32-bit count of microseconds */
#define S_EXIT_NO_QOS 125
#define S_EXIT_NO_EXEC 126

static volatile sig_atomic_t s_child; /* the command's pid, once started */

/* Passes a stop or interrupt on to the command: the caller (a benchmark
 * script stopping what it started) knows this process's pid, not the
 * command's. The status is still reported once the command has exited. */
static void s_forward(int sig)
{
    if (s_child > 0) {
        kill((pid_t)s_child, sig);
    }
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: cpu_latency [--us N] [--] COMMAND [ARG]...\n"
               "Runs COMMAND while every CPU stays in idle states it leaves within N\n"
               "microseconds (default 0: idle CPUs poll instead of halting), through\n"
               "the CPU latency PM QoS request in " S_DEVICE " (needs root).\n"
               "The request ends when cpu_latency exits. Exit: COMMAND's status; 125 when\n"
               "the request cannot be made; 126 when COMMAND cannot be run; 2 on bad usage.\n");
}

/* Parses a whole decimal count in [0, S_MAX_US]; false otherwise. */
static bool s_parse_us(const char *s, int32_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > S_MAX_US) {
        return false;
    }
    *out = (int32_t)v;
    return true;
}

/* Opens the PM QoS device and writes the limit. Returns the open fd (the
 * request lasts while it stays open), or -1 with the reason printed. */
static int s_request(int32_t us)
{
    int fd = open(S_DEVICE, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "cpu_latency: %s: %s\n", S_DEVICE, strerror(errno));
        return -1;
    }
    /* The binary form: a native s32. (A hex string works too; this one
     * cannot be misread.) */
    if (write(fd, &us, sizeof us) != (ssize_t)sizeof us) {
        fprintf(stderr, "cpu_latency: %s: write: %s\n", S_DEVICE, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    int32_t us = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--us")) {
            if (i + 1 >= argc || !s_parse_us(argv[i + 1], &us)) {
                fprintf(stderr, "cpu_latency: --us: expected a whole number of microseconds "
                                "from 0 to 2000000000\n");
                return 2;
            }
            i++;
            continue;
        }
        fprintf(stderr, "cpu_latency: unknown option '%s'\n", a);
        s_usage(stderr);
        return 2;
    }
    if (i >= argc) {
        fprintf(stderr, "cpu_latency: missing COMMAND\n");
        s_usage(stderr);
        return 2;
    }
    int fd = s_request(us);
    if (fd < 0) {
        return S_EXIT_NO_QOS;
    }
    /* Signals stay blocked from before the fork until the pid is known, so a
     * stop that comes early still reaches the command. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "cpu_latency: fork: %s\n", strerror(errno));
        return S_EXIT_NO_EXEC;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[i], argv + i);
        fprintf(stderr, "cpu_latency: %s: %s\n", argv[i], strerror(errno));
        _exit(S_EXIT_NO_EXEC);
    }
    s_child = pid;
    struct sigaction sa = {.sa_handler = s_forward};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "cpu_latency: waitpid: %s\n", strerror(errno));
            return S_EXIT_NO_EXEC;
        }
    }
    close(fd);
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}
