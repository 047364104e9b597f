/* fuzz_metrics_http.c - libFuzzer target for the request line the engine's
 * metrics server reads (engine/eng_metrics.c, eng_metrics_request), the one
 * part of it a stranger on the network writes.
 *
 * Any bytes must get one of the four answers, never crash or read out of
 * bounds; 200 only for GET or HEAD of /metrics on an HTTP/1.x line.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool head = false;
    int st = eng_metrics_request((const char *)data, size, &head);
    if (st != 200 && st != 400 && st != 404 && st != 405) {
        abort();
    }
    if (st == 200) {
        const char *want = head ? "HEAD /metrics" : "GET /metrics";
        if (size < strlen(want) || memcmp(data, want, strlen(want)) != 0) {
            abort(); /* served for something that does not ask for /metrics */
        }
    }
    return 0;
}
