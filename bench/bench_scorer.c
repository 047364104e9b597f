/* bench_scorer.c - what a scorer adds to a decision.
 *
 * Two policies that differ in one condition: the example quality policy
 * (route hard when score.difficulty > 0.17) and the same with
 * `text_length > 1000000` in its place (never true, no scoring). Each
 * resolves the same request with an 8 KiB text sample N times, the two
 * interleaved call by call; every call is timed alone; the run is repeated
 * R times and the median of each run's p50 and p99 reported.
 *
 *   bench_scorer [N [R]]    (defaults 20000 calls, 3 repeats)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "hpp_request.h"

static const char s_with[] = "scorer difficulty file \"policies/examples/difficulty.model\"\n"
                             "tier cheap max $1\ntier strong max $100\n"
                             "route hard when score.difficulty > 0.17 { tier strong }\n"
                             "route rest { tier cheap }\n";
static const char s_without[] = "tier cheap max $1\ntier strong max $100\n"
                                "route hard when text_length > 1000000 { tier strong }\n"
                                "route rest { tier cheap }\n";

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* One run, the two policies interleaved call by call (A B A B), so that
 * whatever else the machine does falls on both alike: p50 and p99 in ns. */
static void s_run(eng_policy_t *const pol[2], const hpp_features_t *f, int n, double *lat[2],
                  double p50[2], double p99[2])
{
    eng_decision_t d;
    for (int i = 0; i < n / 10; i++) {
        eng_resolve(pol[i & 1], f, &d, NULL); /* warm */
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            double t0 = s_now_ns();
            eng_resolve(pol[k], f, &d, NULL);
            lat[k][i] = s_now_ns() - t0;
        }
    }
    for (int k = 0; k < 2; k++) {
        qsort(lat[k], (size_t)n, sizeof *lat[k], s_cmp);
        p50[k] = lat[k][n / 2];
        p99[k] = lat[k][(size_t)n * 99 / 100];
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (n < 100 || n > 10000000 || reps < 1 || reps > 99) {
        fprintf(stderr, "usage: bench_scorer [N (100..1e7) [R (1..99)]]\n");
        return 2;
    }
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    if (!cat || eng_catalog_load(cat, "data/routellm/catalog.json", &err) != 0 ||
        eng_catalog_freeze(cat, &err) != 0) {
        fprintf(stderr, "catalog: %s\n", err.msg);
        return 1;
    }
    eng_policy_t *pol[2] = {
        eng_policy_load_buffer("without.policy", s_without, strlen(s_without), cat, NULL),
        eng_policy_load_buffer("with.policy", s_with, strlen(s_with), cat, NULL)};
    if (!pol[0] || !pol[1]) {
        fprintf(stderr, "policy failed to compile (run from the repository's root)\n");
        return 1;
    }
    static char text[8192];
    const char *words = "Natalia sold clips to 48 of her friends in April, and then she sold "
                        "half as many clips in May. How many clips did she sell altogether? ";
    for (size_t i = 0; i < sizeof text; i++) {
        text[i] = words[i % strlen(words)];
    }
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 2000;
    f.text = (hpp_str_t){text, sizeof text};
    double *lat[2] = {malloc((size_t)n * sizeof(double)), malloc((size_t)n * sizeof(double))};
    if (!lat[0] || !lat[1]) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double p50[2][99], p99[2][99];
    for (int r = 0; r < reps; r++) {
        double a[2], b[2];
        s_run(pol, &f, n, lat, a, b);
        for (int k = 0; k < 2; k++) {
            p50[k][r] = a[k];
            p99[k][r] = b[k];
        }
    }
    printf("decision with an 8 KiB text sample, %d calls x %d runs (median of runs):\n", n, reps);
    for (int k = 0; k < 2; k++) {
        qsort(p50[k], (size_t)reps, sizeof(double), s_cmp);
        qsort(p99[k], (size_t)reps, sizeof(double), s_cmp);
        printf("  %-16s p50 %8.2f us   p99 %8.2f us\n", k ? "with scorer" : "without scorer",
               p50[k][reps / 2] / 1e3, p99[k][reps / 2] / 1e3);
    }
    printf("  p99 difference: %.2f us\n", (p99[1][reps / 2] - p99[0][reps / 2]) / 1e3);
    free(lat[0]);
    free(lat[1]);
    eng_policy_destroy(&pol[0]);
    eng_policy_destroy(&pol[1]);
    eng_catalog_destroy(&cat);
    return 0;
}
