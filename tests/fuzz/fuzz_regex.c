/* fuzz_regex.c - libFuzzer target for the hint-rule regex engine (engine/eng_regex.c).
 *
 * Input layout: byte 0 selects the flags (bit 0: ENG_REGEX_ICASE); the bytes up to the first NUL
 * are the pattern; the bytes after it are the text to search. Pattern and text are copied into
 * exact-size heap buffers so that AddressSanitizer catches any read past their lengths.
 * Checked: no crash, no leak, no over-read, the DFA agreeing with the NFA matchers, and the error
 * contract (a message and an offset
 * inside the pattern on failure; offset -1 and an empty message on success).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_regex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int flags = data[0] & ENG_REGEX_ICASE;
    data++;
    size--;
    const uint8_t *sep = memchr(data, 0, size);
    size_t plen = sep != NULL ? (size_t)(sep - data) : size;
    size_t tlen = sep != NULL ? size - plen - 1 : 0;

    char *pat = malloc(plen ? plen : 1);
    char *text = malloc(tlen ? tlen : 1);
    if (pat == NULL || text == NULL) {
        free(pat);
        free(text);
        return 0;
    }
    memcpy(pat, data, plen);
    if (tlen) {
        memcpy(text, sep + 1, tlen);
    }

    char err[128];
    int off = -2;
    eng_regex_t *re = eng_regex_compile(pat, plen, flags, err, sizeof(err), &off);
    if (re == NULL) {
        if (off < 0 || (size_t)off > plen || err[0] == '\0' ||
            memchr(err, 0, sizeof(err)) == NULL) {
            __builtin_trap();
        }
    } else {
        if (off != -1 || err[0] != '\0' || eng_regex_states(re) < 1 ||
            eng_regex_states(re) > ENG_REGEX_MAX_STATES) {
            __builtin_trap();
        }
        bool whole = eng_regex_match(re, text, tlen);
        /* Searching is deterministic and needs no state between calls. */
        if (eng_regex_match(re, text, tlen) != whole) {
            __builtin_trap();
        }
        (void)eng_regex_match(re, text, tlen / 2);
        /* The DFA (when one was built) and the NFA matchers give the same answers. */
        eng_regex_t *nfa = eng_regex_compile(pat, plen, flags | ENG_REGEX_NO_DFA, NULL, 0, NULL);
        if (nfa == NULL || eng_regex_match(nfa, text, tlen) != whole ||
            eng_regex_match(nfa, text, tlen / 2) != eng_regex_match(re, text, tlen / 2)) {
            __builtin_trap();
        }
        eng_regex_destroy(&nfa);
        eng_regex_destroy(&re);
        if (re != NULL) {
            __builtin_trap();
        }
    }
    free(pat);
    free(text);
    return 0;
}
