/* bench_body.c - what reading a request body costs the sidecar's CPU, without the network.
 *
 *   bench_body [--iters N] [--repeats N] FILE...
 *
 * For each body file: oai_extract_body (the strict JSON parse, the walk over the messages with
 * the prompt token count, the text sample) on the same context, --iters times per repeat
 * (default 2,000), timed one call at a time; prints the median over --repeats (default 5) of
 * each repeat's p50, and that p50 per byte:
 *   body FILE bytes=N p50_ns=N ns_per_byte=N.NN prompt_tokens=N sample_bytes=N
 * prompt_tokens and sample_bytes are there to check two builds computed the same features.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oai_request.h"

#define S_MAX_REPEATS 21

static inline unsigned long long s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int s_cmp(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

static int s_body(oai_extract_t *x, const char *path, int iters, int repeats)
{
    size_t len = 0;
    char *body = s_read(path, &len);
    if (!body) {
        fprintf(stderr, "bench_body: %s: cannot read\n", path);
        return -1;
    }
    unsigned long long *t = malloc((size_t)iters * sizeof *t), p50[S_MAX_REPEATS];
    hpp_features_t f;
    oai_error_t err;
    int rc = t ? 0 : -1;
    for (int r = 0; r < repeats && rc == 0; r++) {
        for (int i = 0; i < iters; i++) {
            unsigned long long t0 = s_now();
            oai_extract_reset(x, &f);
            if (oai_extract_body(x, body, len, &f, &err) < 0) {
                fprintf(stderr, "bench_body: %s: %s\n", path, err.message);
                rc = -1;
                break;
            }
            t[i] = s_now() - t0;
        }
        qsort(t, (size_t)iters, sizeof *t, s_cmp);
        p50[r] = t[iters / 2];
    }
    if (rc == 0) {
        qsort(p50, (size_t)repeats, sizeof *p50, s_cmp);
        unsigned long long m = p50[repeats / 2];
        printf(
            "body %s bytes=%zu p50_ns=%llu ns_per_byte=%.2f prompt_tokens=%lld sample_bytes=%u\n",
            path, len, m, (double)m / (double)(len ? len : 1), (long long)f.prompt_tokens,
            (unsigned)f.text.len);
    }
    free(t);
    free(body);
    return rc;
}

int main(int argc, char **argv)
{
    int iters = 2000, repeats = 5, first = 1;
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first += 2) {
        if (first + 1 >= argc) {
            break;
        }
        if (strcmp(argv[first], "--iters") == 0) {
            iters = atoi(argv[first + 1]);
        } else if (strcmp(argv[first], "--repeats") == 0) {
            repeats = atoi(argv[first + 1]);
        } else {
            break;
        }
    }
    if (first >= argc || iters < 1 || iters > 1000000 || repeats < 1 || repeats > S_MAX_REPEATS) {
        fprintf(stderr, "usage: bench_body [--iters 1..1000000] [--repeats 1..%d] FILE...\n",
                S_MAX_REPEATS);
        return 2;
    }
    oai_extract_t *x = oai_extract_new();
    if (!x) {
        return 1;
    }
    int rc = 0;
    for (int i = first; i < argc && rc == 0; i++) {
        rc = s_body(x, argv[i], iters, repeats);
    }
    oai_extract_destroy(&x);
    return rc == 0 ? 0 : 1;
}
