/* fuzz_policy_fmt.c - libFuzzer target for the policy formatter (eng_fmt).
 *
 * Every input is formatted: text that parses must format to the same tokens,
 * byte for byte and in order, and formatting the result must change nothing
 * (the formatter is idempotent, and what it writes parses). Split from
 * fuzz_policy, which compiles the same inputs: there the formatter doubled
 * the parsing of every input. Seeds: tests/fuzz/corpus/fuzz_policy_fmt, the
 * policy seeds that add coverage here.
 * Everything must be freed: the target runs under ASan/LSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_fmt.h"
#include "eng_lex.h"
#include "../lex_same.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    char *out = NULL, *again = NULL;
    size_t out_len = 0, again_len = 0;
    if (eng_fmt("fuzz.policy", src, size, &out, &out_len, NULL) != 0) {
        return 0;
    }
    if (!lex_same_tokens(src, size, out, out_len)) {
        abort(); /* formatting changed a token */
    }
    if (eng_fmt("fuzz.policy", out, out_len, &again, &again_len, NULL) != 0 ||
        again_len != out_len || memcmp(out, again, out_len) != 0) {
        abort(); /* not idempotent, or the formatted text no longer parses */
    }
    free(again);
    free(out);
    return 0;
}
