/* bench_scan.c - the cost of answering a policy's text tests on one text, three ways, in one run.
 *
 *   scan        what the resolver runs (eng_scan.h): one Vectorscan literal pass over the text
 *               (every `contains` text and every regex's prefix literals), the regex's own
 *               matcher anchored where its literals occur;
 *   vs-regex    Vectorscan as the whole matcher: one database of every regex (rendered by
 *               eng_regex_to_pcre) and every `contains` text, one pass;
 *   own-floor   the least any automaton of the project's own engine that reads every byte pays:
 *               one dependent table lookup per byte (a combined DFA of every pattern would do
 *               no better), no pattern at all.
 * The decision as a whole, with the per-pattern path (`--scan off`) and with the scan, is
 * bench_resolve's.
 *
 *   bench_scan [--policy FILE] [--text FILE]... [--repeats N] [--iters N] [--json]
 *
 * The regex sources are read back from the policy file (each `~ /.../flags` outside comment
 * lines; included files are not followed), the `contains` texts from the compiled policy. Each
 * repeat times --iters calls per mode one by one (clock_gettime pairs, timer cost included) and
 * keeps p50 and p99; the figures printed are the medians over the repeats. build_us is one build
 * of the mode's database (for scan, with its scratch pool), db_bytes its size (scan: with the
 * scratch spaces). Output, one line per text and mode:
 *   scan MODE text_bytes=N p50_ns=N p99_ns=N build_us=N db_bytes=N regexes=N covered=N literals=N
 */
#include <hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "eng_policy_internal.h"
#include "eng_regex.h"
#include "eng_scan.h"

#define S_MAX_TEXTS 8
#define S_MAX_RX 256
#define S_TEXT_MAX 65536
#define S_MAX_REPEATS 21

static inline uint64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The regexes of a policy file: (pattern, flags) of each `~ /.../flags`. */
typedef struct {
    char *pat[S_MAX_RX];
    size_t len[S_MAX_RX];
    int flags[S_MAX_RX];
    int n;
} s_rx_t;

static void s_read_regexes(const char *src, size_t n, s_rx_t *rx)
{
    bool line_start = true, comment = false;
    for (size_t i = 0; i < n && rx->n < S_MAX_RX; i++) {
        char c = src[i];
        if (c == '\n') {
            line_start = true;
            comment = false;
            continue;
        }
        if (line_start && c == '#') {
            comment = true;
        }
        if (c != ' ' && c != '\t') {
            line_start = false;
        }
        if (comment || c != '~') {
            continue;
        }
        size_t j = i + 1;
        while (j < n && (src[j] == ' ' || src[j] == '\t')) {
            j++;
        }
        if (j >= n || src[j] != '/') {
            continue;
        }
        size_t start = ++j;
        bool cls = false;
        while (j < n && (cls || src[j] != '/') && src[j] != '\n') {
            if (src[j] == '\\') {
                j++;
            } else if (src[j] == '[') {
                cls = true;
            } else if (src[j] == ']') {
                cls = false;
            }
            j++;
        }
        if (j >= n || src[j] != '/') {
            continue;
        }
        int flags = 0;
        size_t k = j + 1;
        while (k < n && src[k] == 'i') {
            flags |= ENG_REGEX_ICASE;
            k++;
        }
        rx->pat[rx->n] = strndup(src + start, j - start);
        rx->len[rx->n] = j - start;
        rx->flags[rx->n++] = flags;
        i = k - 1;
    }
}

static int s_on_match(unsigned int id, unsigned long long from, unsigned long long to,
                      unsigned int flags, void *ctx)
{
    (void)from;
    (void)to;
    (void)flags;
    ((uint64_t *)ctx)[id / 64 % 8] |= UINT64_C(1) << (id % 64);
    return 0;
}

/* Vectorscan as the whole matcher: every regex rendered, every needle caseless. */
static hs_database_t *s_vs_regex_db(const eng_policy_t *pol, const s_rx_t *rx, int *covered)
{
    static char buf[S_MAX_RX][65536];
    const char *exprs[S_MAX_RX + ENG_MAX_NEEDLES];
    unsigned flags[S_MAX_RX + ENG_MAX_NEEDLES], ids[S_MAX_RX + ENG_MAX_NEEDLES];
    static char lit[ENG_MAX_NEEDLES][1024];
    unsigned n = 0;
    *covered = 0;
    for (int i = 0; i < rx->n; i++) {
        if (eng_regex_to_pcre(rx->pat[i], rx->len[i], rx->flags[i], buf[i], sizeof buf[i]) > 0) {
            exprs[n] = buf[i];
            flags[n] = HS_FLAG_SINGLEMATCH;
            ids[n++] = (unsigned)i;
        }
    }
    for (uint32_t i = 0; i < pol->nneedles; i++) {
        size_t k = 0;
        for (uint32_t j = 0; j < pol->needles[i].len && k + 5 < sizeof lit[i]; j++) {
            k += (size_t)snprintf(lit[i] + k, sizeof lit[i] - k, "\\x%02x",
                                  (unsigned char)pol->needles[i].ptr[j]);
        }
        exprs[n] = lit[i];
        flags[n] = HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS;
        ids[n++] = 256 + i;
    }
    for (int tries = 0; tries < 64; tries++) {
        hs_database_t *db = NULL;
        hs_compile_error_t *err = NULL;
        if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, &db, &err) == HS_SUCCESS) {
            for (unsigned i = 0; i < n; i++) {
                *covered += ids[i] < 256;
            }
            return db;
        }
        int bad = err ? err->expression : -1;
        hs_free_compile_error(err);
        if (bad < 0 || (unsigned)bad >= n) {
            return NULL;
        }
        exprs[bad] = exprs[n - 1]; /* drop the refused pattern: its own matcher would answer */
        flags[bad] = flags[n - 1];
        ids[bad] = ids[n - 1];
        n--;
    }
    return NULL;
}

/* One dependent table lookup per byte: a two-state automaton that never dies. */
static uint8_t s_floor_table[2][256];

static unsigned s_floor(const unsigned char *t, size_t len)
{
    unsigned st = 0;
    for (size_t i = 0; i < len; i++) {
        st = s_floor_table[st][t[i]];
    }
    return st;
}

static void s_report(const char *mode, size_t text_bytes, uint64_t *p50s, uint64_t *p99s,
                     int repeats, double build_us, size_t db_bytes, int nrx, int covered,
                     uint32_t nlits, bool json)
{
    qsort(p50s, (size_t)repeats, sizeof *p50s, s_cmp_u64);
    qsort(p99s, (size_t)repeats, sizeof *p99s, s_cmp_u64);
    if (json) {
        printf("{\"scenario\":\"scan\",\"mode\":\"%s\",\"text_bytes\":%zu,\"p50_ns\":%llu,"
               "\"p99_ns\":%llu,\"repeats\":%d,\"build_us\":%.0f,\"db_bytes\":%zu,\"regexes\":%d,"
               "\"covered\":%d,\"literals\":%u}\n",
               mode, text_bytes, (unsigned long long)p50s[repeats / 2],
               (unsigned long long)p99s[repeats / 2], repeats, build_us, db_bytes, nrx, covered,
               nlits);
    } else {
        printf("scan %-9s text_bytes=%zu p50_ns=%llu p99_ns=%llu repeats=%d build_us=%.0f "
               "db_bytes=%zu regexes=%d covered=%d literals=%u\n",
               mode, text_bytes, (unsigned long long)p50s[repeats / 2],
               (unsigned long long)p99s[repeats / 2], repeats, build_us, db_bytes, nrx, covered,
               nlits);
    }
    fflush(stdout);
}

static int s_usage(FILE *out, int rc)
{
    fprintf(out, "usage: bench_scan [--policy FILE] [--text FILE]... [--repeats N] [--iters N] "
                 "[--json]\n"
                 "  --policy FILE  policy (default policies/default.policy)\n"
                 "  --text FILE    a text sample (first 64 KiB), repeatable (default: the 1 KiB\n"
                 "                 and 8 KiB prompts of bench/bodies)\n"
                 "  --repeats N    timed rounds per mode, 1 to 21 (default 5): medians printed\n"
                 "  --iters N      calls per round (default 2000)\n");
    return rc;
}

int main(int argc, char **argv)
{
    const char *policy = "policies/default.policy";
    const char *texts[S_MAX_TEXTS];
    int ntexts = 0, repeats = 5, iters = 2000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (strcmp(argv[i], "--policy") == 0 && has) {
            policy = argv[++i];
        } else if (strcmp(argv[i], "--text") == 0 && has && ntexts < S_MAX_TEXTS) {
            texts[ntexts++] = argv[++i];
        } else if (strcmp(argv[i], "--repeats") == 0 && has) {
            repeats = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--iters") == 0 && has) {
            iters = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            return s_usage(stdout, 0);
        } else {
            return s_usage(stderr, 2);
        }
    }
    if (repeats < 1 || repeats > S_MAX_REPEATS || iters < 10 || iters > 1000000) {
        return s_usage(stderr, 2);
    }
    if (ntexts == 0) {
        texts[ntexts++] = "bench/bodies/prompt_1k.txt";
        texts[ntexts++] = "bench/bodies/prompt_8k.txt";
    }
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    if (eng_catalog_load(cat, eng_catalog_default_path(), &err) != 0 ||
        eng_catalog_freeze(cat, &err) != 0) {
        fprintf(stderr, "bench_scan: catalog: %s\n", err.msg);
        return 2;
    }
    eng_diags_t *d = eng_diags_new();
    uint64_t t0 = s_now();
    eng_policy_t *pol = eng_policy_load(policy, cat, d);
    double policy_us = (double)(s_now() - t0) / 1e3;
    if (!pol) {
        eng_diags_print(d, stderr);
        return 2;
    }
    eng_diags_destroy(&d);
    FILE *fp = fopen(policy, "rb");
    static char src[1 << 20];
    size_t srclen = fp ? fread(src, 1, sizeof src, fp) : 0;
    if (fp) {
        fclose(fp);
    }
    s_rx_t rx = {0};
    s_read_regexes(src, srclen, &rx);
    int covered = 0;
    for (uint32_t i = 0; i < pol->nregexes; i++) {
        covered += eng_scan_covers_regex(pol->scan, i);
    }
    /* The scan's share of the load: the same scan built again (regexes read back in order),
     * with one scratch slot, so that it compiles its own database rather than share the one
     * the policy's scan keeps (eng_scan_build). */
    t0 = s_now();
    eng_scan_t *again = eng_scan_new();
    for (int i = 0; again && i < rx.n && (uint32_t)i < pol->nregexes; i++) {
        eng_scan_add_regex(again, (uint32_t)i, pol->regexes[i], rx.pat[i], rx.len[i], rx.flags[i]);
    }
    for (uint32_t i = 0; again && i < pol->nneedles; i++) {
        eng_scan_add_literal(again, i, pol->needles[i].ptr, pol->needles[i].len);
    }
    eng_scan_build(again, 1);
    double scan_build_us = (double)(s_now() - t0) / 1e3;
    eng_scan_destroy(&again);
    t0 = s_now();
    int vs_covered = 0;
    hs_database_t *vsdb = s_vs_regex_db(pol, &rx, &vs_covered);
    double vs_build_us = (double)(s_now() - t0) / 1e3;
    hs_scratch_t *vss = NULL;
    size_t vs_bytes = 0;
    if (!vsdb || hs_alloc_scratch(vsdb, &vss) != HS_SUCCESS) {
        fprintf(stderr, "bench_scan: Vectorscan refused the policy's regexes\n");
        return 2;
    }
    hs_database_size(vsdb, &vs_bytes);
    for (int s = 0; s < 2; s++) {
        for (int b = 0; b < 256; b++) {
            s_floor_table[s][b] = (uint8_t)((b ^ s) & 1);
        }
    }
    static char text[S_TEXT_MAX];
    uint64_t *dt = malloc((size_t)iters * sizeof *dt);
    if (!dt) {
        return 2;
    }
    printf("# policy %s: %u regexes (%d read back from the file), %u contains texts; policy load "
           "%.0f us (scan included)\n",
           policy, pol->nregexes, rx.n, pol->nneedles, policy_us);
    for (int ti = 0; ti < ntexts; ti++) {
        fp = fopen(texts[ti], "rb");
        if (!fp) {
            fprintf(stderr, "bench_scan: %s: cannot open\n", texts[ti]);
            return 2;
        }
        size_t len = fread(text, 1, sizeof text, fp);
        fclose(fp);
        for (int mode = 0; mode < 3; mode++) {
            uint64_t p50s[S_MAX_REPEATS], p99s[S_MAX_REPEATS];
            volatile unsigned sink = 0;
            for (int r = 0; r < repeats; r++) {
                for (int i = -iters / 10; i < iters; i++) { /* a tenth as warm-up */
                    uint64_t a = s_now();
                    if (mode == 0) {
                        eng_scan_hits_t h;
                        sink += eng_scan_run(pol->scan, text, len, &h);
                    } else if (mode == 1) {
                        uint64_t hits[8] = {0};
                        sink += hs_scan(vsdb, text, (unsigned)len, 0, vss, s_on_match, hits) ==
                                HS_SUCCESS;
                    } else {
                        sink += s_floor((const unsigned char *)text, len);
                    }
                    uint64_t b = s_now();
                    if (i >= 0) {
                        dt[i] = b - a;
                    }
                }
                qsort(dt, (size_t)iters, sizeof *dt, s_cmp_u64);
                p50s[r] = dt[iters / 2];
                p99s[r] = dt[(size_t)iters * 99 / 100];
            }
            (void)sink;
            if (mode == 0) {
                s_report("scan", len, p50s, p99s, repeats, scan_build_us, eng_scan_bytes(pol->scan),
                         (int)pol->nregexes, covered, pol->nneedles, json);
            } else if (mode == 1) {
                s_report("vs-regex", len, p50s, p99s, repeats, vs_build_us, vs_bytes, rx.n,
                         vs_covered, pol->nneedles, json);
            } else {
                s_report("own-floor", len, p50s, p99s, repeats, 0, 0, 0, 0, 0, json);
            }
        }
    }
    free(dt);
    hs_free_scratch(vss);
    hs_free_database(vsdb);
    for (int i = 0; i < rx.n; i++) {
        free(rx.pat[i]);
    }
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    return 0;
}
