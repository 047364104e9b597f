/* fuzz_catalog_portkey.c - libFuzzer target for the portkey catalog loader
 * (engine/eng_catalog_portkey.c); the checks are in fuzz_catalog.h. */
#include "fuzz_catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_catalog_one(data, size, "pricing/acme-ai.json", ENG_FMT_PORTKEY);
}
