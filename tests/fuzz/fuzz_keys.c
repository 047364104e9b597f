/* fuzz_keys.c - libFuzzer target for the API key file parser
 * (proto/hpp_apikeys.c), which reads a file an operator edits by hand and
 * that SIGHUP reloads into a running sidecar.
 *
 * Any bytes must either parse or be refused with a message that starts
 * with the file name and a line and column ("keys:LINE:COL: ...", or the
 * out-of-memory message), never crash or read out of bounds. A table that
 * parsed holds one key per line that is neither blank nor a comment, and
 * looking keys up in it does not crash (which keys match cannot be checked
 * here: that would take a preimage of the hashes in the input). Every key's
 * ledger values (account, limits, request counts) are within the format's
 * ranges, and each key is found again by its hash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_apikeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = '\0';
    hpp_apikeys_t *k = hpp_apikeys_parse((const char *)data, size, "keys", err, sizeof err);
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
    if (lines != hpp_apikeys_count(k)) {
        abort();
    }
    /* Every key's values stay in the file format's ranges, and each is
     * found again by its own hash. */
    for (size_t i = 0; i < hpp_apikeys_count(k); i++) {
        const hpp_apikey_t *e = hpp_apikeys_at(k, i);
        if (!e || !hpp_apikeys_hash_ok(e->hash, strlen(e->hash)) ||
            hpp_apikeys_find_hash(k, e->hash, strlen(e->hash)) != e || e->group[0] == '\0' ||
            !hpp_apikeys_account_ok(e->account, strlen(e->account)) || e->limit_pd < -1 ||
            e->limit_pd > (int64_t)HPP_APIKEY_MAX_USD * 1000000000000LL || e->daily_pd < -1 ||
            e->daily_pd > (int64_t)HPP_APIKEY_MAX_USD * 1000000000000LL || e->daily_requests < -1 ||
            e->daily_requests > HPP_APIKEY_MAX_COUNT || e->free_daily_requests < 0 ||
            e->free_daily_requests > HPP_APIKEY_MAX_COUNT || e->free_daily_requests_funded < 0 ||
            e->free_daily_requests_funded > HPP_APIKEY_MAX_COUNT || e->line == 0) {
            abort();
        }
    }
    (void)hpp_apikeys_find(k, (const char *)data, size < 64 ? size : 64);
    (void)hpp_apikeys_find_hash(k, (const char *)data, size < 71 ? size : 71);
    (void)hpp_apikeys_find(k, "", 0);
    hpp_apikeys_destroy(&k);
    return 0;
}
