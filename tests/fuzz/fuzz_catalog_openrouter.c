/* fuzz_catalog_openrouter.c - libFuzzer target for the openrouter catalog loader
 * (engine/eng_catalog_openrouter.c); the checks are in fuzz_catalog.h. */
#include "fuzz_catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_catalog_one(data, size, "openrouter.json", ENG_FMT_OPENROUTER);
}
