/* fuzz_stub_json.c - libFuzzer target for the upstream stand-in's body scan.
 *
 * bench/upstream_stub.c answers any HTTP body sent to it, so its one-pass
 * scanner (bench/stub_json.h) must never read out of bounds, recurse without
 * limit or accept a model slice with raw control bytes (it becomes a header).
 */
#include "../../bench/stub_json.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stub_json_req_t req;
    int rc = stub_json_scan((const char *)data, size, &req);
    if (rc == STUB_JSON_OK) {
        /* The model is a non-empty slice inside the input without control bytes. */
        if (req.model_len == 0 || req.model < (const char *)data ||
            req.model + req.model_len > (const char *)data + size) {
            abort();
        }
        for (size_t i = 0; i < req.model_len; i++) {
            if ((unsigned char)req.model[i] < 0x20) {
                abort();
            }
        }
    } else if (req.err_off > size || req.model != NULL) {
        abort();
    }
    return 0;
}
