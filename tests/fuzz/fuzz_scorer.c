/* fuzz_scorer.c - libFuzzer target for the scorer model loader
 * (engine/eng_scorer.c) and the labelled-data readers (engine/eng_labels.c:
 * RFC 4180 CSV and JSONL), the external inputs of a policy's `scorer`
 * statement and of hpp-policy train-scorer / curve.
 *
 * The first byte picks the reader. Nothing may crash or leak; every error
 * must name the file and, unless memory ran out, a line; a model that
 * loads must score the input in [0, 1].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_labels.h"
#include "eng_scorer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    eng_error_t err = {0};
    switch (data[0] % 3) {
    case 0: {
        eng_scorer_t *s = eng_scorer_parse("f.model", text, len, &err);
        if (s) {
            double v = eng_scorer_score(s, text, len);
            if (!(v >= 0 && v <= 1)) {
                abort();
            }
            eng_scorer_destroy(&s);
        } else if (strcmp(err.file, "f.model") != 0 || err.msg[0] == '\0') {
            abort();
        }
        break;
    }
    default: {
        eng_labels_t *set = eng_labels_new("strong", "weak");
        if (!set) {
            return 0;
        }
        bool jsonl = data[0] % 3 == 2;
        if (eng_labels_add(set, "f.data", text, len, jsonl, &err) != 0) {
            if (err.code != ENG_ERR_NOMEM && (err.line < 1 || strcmp(err.file, "f.data") != 0)) {
                abort();
            }
            if (eng_labels_count(set) != 0) {
                abort();
            }
        }
        eng_labels_destroy(&set);
        break;
    }
    }
    return 0;
}
