/* fuzz_tokens.c - libFuzzer target for the token counter: the count of any
 * bytes, 64 at a time, must equal the byte by byte oracle (tests/tok_ref.h),
 * also from an unaligned start. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tok_ref.h"
#include "oai_tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t off = 0; off < 2 && off <= size; off++) {
        oai_tok_counts_t got, want;
        oai_tok_counts_init(&got);
        oai_tok_counts_init(&want);
        oai_tok_count(&got, (const char *)data + off, size - off);
        tok_ref_count(&want, (const char *)data + off, size - off);
        if (memcmp(&got, &want, sizeof got) != 0) {
            abort();
        }
    }
    return 0;
}
