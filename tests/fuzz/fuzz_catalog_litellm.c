/* fuzz_catalog_litellm.c - libFuzzer target for the litellm catalog loader
 * (engine/eng_catalog_litellm.c); the checks are in fuzz_catalog.h. */
#include "fuzz_catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_catalog_one(data, size, "litellm.json", ENG_FMT_LITELLM);
}
