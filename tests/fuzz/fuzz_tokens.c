/* fuzz_tokens.c - libFuzzer target for the token counter: the count of any
 * bytes, 64 at a time, must equal the byte by byte oracle (tests/tok_ref.h),
 * also from an unaligned start.
 * The oracle is not instrumented for coverage: it is the reference, not the
 * code under test, and its comparisons, traced byte by byte, were 40 % of
 * the time per input while telling the fuzzer nothing the counter's own
 * branches do not. AddressSanitizer and UBSan still check it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tok_ref.h"
#include "oai_tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__clang__)
/* Not inlined: coverage is added after inlining, so an inlined copy would be
 * instrumented as its caller is. */
__attribute__((no_sanitize("coverage"), noinline))
#endif
static void
s_oracle(oai_tok_counts_t *c, const char *s, size_t len)
{
    tok_ref_count(c, s, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t off = 0; off < 2 && off <= size; off++) {
        oai_tok_counts_t got, want;
        oai_tok_counts_init(&got);
        oai_tok_counts_init(&want);
        oai_tok_count(&got, (const char *)data + off, size - off);
        s_oracle(&want, (const char *)data + off, size - off);
        if (memcmp(&got, &want, sizeof got) != 0) {
            abort();
        }
    }
    return 0;
}
