/* fuzz_catalog_native.c - libFuzzer target for the native catalog loader
 * (engine/eng_catalog_native.c); the checks are in fuzz_catalog.h. */
#include "fuzz_catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_catalog_one(data, size, "native.json", ENG_FMT_NATIVE);
}
