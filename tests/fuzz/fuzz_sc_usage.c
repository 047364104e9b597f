/* fuzz_sc_usage.c - libFuzzer target for what the sidecar reads of an upstream
 * answer (sidecar/sc_usage.c): a collected body's `usage`, and the events of
 * a stream, which arrive cut anywhere.
 *
 * The first byte chooses where the stream is cut in two. Any bytes must
 * give the same result whole and cut, and only figures the report op takes
 * (token counts in range, parts no larger than their wholes, a finite cost
 * in range), never a crash or a read out of bounds.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_request.h"
#include "sc_usage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static oai_jdoc_t *s_doc;
static sc_sse_t s_sse;

static void s_check(const sc_usage_t *u)
{
    const int64_t n[] = {u->prompt, u->completion, u->cached, u->reasoning};
    for (size_t i = 0; i < 4; i++) {
        if (n[i] < -1 || n[i] > HPP_MAX_TOKENS) {
            abort();
        }
    }
    if ((u->cached > 0 && u->prompt >= 0 && u->cached > u->prompt) ||
        (u->reasoning > 0 && u->completion >= 0 && u->reasoning > u->completion)) {
        abort();
    }
    if (!isfinite(u->cost_usd) || u->cost_usd > HPP_MAX_BUDGET_USD) {
        abort();
    }
}

/* The stream fed in two pieces cut at `cut`: the usage and first-token flag. */
static void s_stream(const char *p, size_t n, size_t cut, sc_usage_t *u, bool *first)
{
    sc_usage_init(u);
    sc_sse_reset(&s_sse);
    bool a = sc_sse_feed(&s_sse, s_doc, p, cut, u);
    bool b = sc_sse_feed(&s_sse, s_doc, p + cut, n - cut, u);
    if (a && b) {
        abort(); /* the first token is seen once */
    }
    *first = s_sse.first;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_doc && !(s_doc = oai_jdoc_new())) {
        abort();
    }
    if (size == 0) {
        return 0;
    }
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    size_t cut = n ? data[0] % (n + 1) : 0;
    sc_usage_t u, whole;
    sc_usage_init(&u);
    sc_usage_read(s_doc, p, n, &u);
    s_check(&u);
    bool f1, f2;
    s_stream(p, n, 0, &whole, &f1);
    s_stream(p, n, cut, &u, &f2);
    s_check(&u);
    if (f1 != f2 || memcmp(&u, &whole, sizeof u) != 0) {
        abort(); /* where the bytes were cut changed what was read */
    }
    return 0;
}
