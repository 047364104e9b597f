/* fuzz_json.c - differential libFuzzer target: oai_json against jansson.
 *
 * oai_json replaces json_loadb(JSON_REJECT_DUPLICATES) on the sidecar's hot
 * path, so for every input both must accept or both refuse, and accepted
 * trees must be the same (tests/fuzz/json_diff.h), with spans that fit the
 * source. A refusal must carry a message and a position inside the input.
 *
 * Two known differences, where jansson accepts and oai_json refuses: nesting
 * deeper than 512 (jansson allows 2048), and a NUL byte right after a number
 * or literal, which jansson drops (see json_diff_jansson_nul_quirk).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_diff.h"
#include "oai_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static oai_jdoc_t *s_doc;

static void s_die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s: %s\n", what, detail);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_doc) {
        s_doc = oai_jdoc_new(); /* reused across inputs, like the sidecar's */
    }
    /* A private copy of exactly `size` bytes, so ASan sees any read past it. */
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        return 0;
    }
    memcpy(buf, data, size);

    oai_jerr_t err;
    oai_jv_t root = oai_jdoc_parse(s_doc, buf, size, &err);
    json_error_t jerr;
    json_t *j = json_loadb(buf, size, JSON_DIFF_FLAGS, &jerr);

    if (root == OAI_JNONE) {
        if (!err.text[0] || err.offset > size || err.line < 1 || err.column < 1) {
            s_die("refusal without a message or position", err.text);
        }
        if (oai_jtype(s_doc, 1) != OAI_J_NONE) {
            s_die("a refused parse left nodes behind", err.text);
        }
        if (j && strcmp(err.text, "nesting too deep") != 0 &&
            !json_diff_jansson_nul_quirk(buf, size, err.offset)) {
            s_die("oai_json refuses what jansson accepts", err.text);
        }
    } else {
        if (!j) {
            s_die("oai_json accepts what jansson refuses", jerr.text);
        }
        const char *why = json_diff(s_doc, root, j, buf, size);
        if (why) {
            s_die("trees differ", why);
        }
    }
    json_decref(j);
    free(buf);
    return 0;
}
