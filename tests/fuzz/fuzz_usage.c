/* fuzz_usage.c - libFuzzer target for the decision-log summary
 * (engine/eng_usage.c, read by `hpp-policy usage`): any bytes, split into
 * lines, are summed without crashing or growing past the window, and the
 * sums stay consistent with the counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_usage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A small window, from the first byte, so eviction is exercised. */
    uint64_t window = size > 0 ? (uint64_t)(data[0] % 8) + 1 : 1;
    eng_usage_sum_t *u = eng_usage_new(window);
    if (!u) {
        abort();
    }
    const char *p = (const char *)data, *end = p + size;
    uint64_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (eng_usage_line(u, p, len, ++lineno) == -2) {
            abort(); /* out of memory on a small input */
        }
        p += len + (nl ? 1 : 0);
    }
    eng_usage_finish(u);
    const eng_usage_totals_t *t = eng_usage_totals(u);
    for (int d = 0; d < ENG_USAGE_DIMS; d++) {
        size_t n;
        const eng_usage_row_t *rows = eng_usage_rows(u, (eng_usage_dim_t)d, &n);
        uint64_t requests = 0, attempts = 0;
        for (size_t i = 0; i < n; i++) {
            requests += rows[i].requests;
            attempts += rows[i].attempts;
            if (rows[i].failed > rows[i].attempts || rows[i].answered > rows[i].requests) {
                abort();
            }
        }
        /* Every routed decision lands in one row of each dimension, every
         * outcome is joined or unmatched. */
        if (requests != t->decisions - t->refused || attempts + t->unmatched != t->outcomes) {
            abort();
        }
    }
    if (t->decisions + t->outcomes + t->bad_lines + t->other_lines != t->lines) {
        abort();
    }
    eng_usage_destroy(&u);
    return 0;
}
