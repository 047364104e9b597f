/* fuzz_allow.c - libFuzzer target for the CURVE allow-list parser
 * (engine/eng_allow.c), the reader of --curve-clients files.
 *
 * The input is parsed as one file; when it parses, it is parsed again as a
 * second file of the same list (every key then repeats with its role,
 * which must be accepted), and a key made of the input's first 32 bytes is
 * looked up. Nothing may crash, and every error must name a line of the
 * input: an error without its place would leave an operator guessing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_allow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_allow_t *allow = eng_allow_new();
    if (!allow) {
        return 0;
    }
    eng_error_t err = {0};
    const char *text = (const char *)data;
    if (eng_allow_parse(allow, "a.pub", text, size, &err) == 0) {
        size_t before = eng_allow_count(allow, NULL);
        if (eng_allow_parse(allow, "b.pub", text, size, &err) != 0 ||
            eng_allow_count(allow, NULL) != before) {
            abort(); /* the same keys with the same roles are no conflict */
        }
    } else if (err.code != ENG_ERR_NOMEM && (err.line < 1 || strcmp(err.file, "a.pub") != 0)) {
        abort();
    }
    uint8_t key[32] = {0};
    memcpy(key, data, size < 32 ? size : 32);
    size_t admins = 0;
    size_t n = eng_allow_count(allow, &admins);
    if (admins > n || (unsigned)eng_allow_find(allow, key) > ENG_ROLE_ADMIN) {
        abort();
    }
    eng_allow_destroy(&allow);
    return 0;
}
