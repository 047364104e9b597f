/* fuzz_keys.c - libFuzzer target for the sidecar's API key file parser
 * (sidecar/sc_keys.c), which reads a file an operator edits by hand and
 * that SIGHUP reloads into a running sidecar.
 *
 * Any bytes must either parse or be refused with a message that starts
 * with the file name and a line and column ("keys:LINE:COL: ...", or the
 * out-of-memory message), never crash or read out of bounds. A table that
 * parsed holds one key per line that is neither blank nor a comment, and
 * looking keys up in it does not crash (which keys match cannot be checked
 * here: that would take a preimage of the hashes in the input).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = '\0';
    sc_keys_t *k = sc_keys_parse((const char *)data, size, "keys", err, sizeof err);
    if (!k) {
        unsigned line = 0, col = 0;
        if (sscanf(err, "keys:%u:%u: ", &line, &col) != 2 &&
            strcmp(err, "keys: out of memory") != 0) {
            abort(); /* a refusal without a location */
        }
        if (line == 0 || col == 0) {
            abort();
        }
        return 0;
    }
    /* Every data line is one key. */
    size_t lines = 0;
    for (size_t pos = 0; pos < size;) {
        const char *p = (const char *)data + pos;
        const char *nl = memchr(p, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - p) : size - pos;
        pos += n + (nl ? 1 : 0);
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        if (i < n && p[i] != '#' && p[i] != '\r') {
            lines++;
        }
    }
    if (lines != sc_keys_count(k)) {
        abort();
    }
    (void)sc_keys_find(k, (const char *)data, size < 64 ? size : 64);
    (void)sc_keys_find(k, "", 0);
    sc_keys_destroy(&k);
    return 0;
}
