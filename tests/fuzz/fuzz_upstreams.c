/* fuzz_upstreams.c - libFuzzer target for the proxy's upstream file parser
 * (sidecar/sc_upstreams.c), which reads a file an operator edits by hand and
 * that SIGHUP reloads into a running sidecar.
 *
 * Any bytes must either parse or be refused with a message that starts with
 * the file name and a line and column, never crash or read out of bounds.
 * A table that parsed has at most one line per provider, at most one `*`,
 * answers a lookup of each of its providers with that line, and its list of
 * reachable providers agrees with whether it has a `*` line. The input's
 * first byte chooses whether the file counts as private (key= allowed).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_upstreams.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    bool private_file = data[0] & 1;
    char err[512];
    err[0] = '\0';
    sc_upstreams_t *t =
        sc_upstreams_parse((const char *)data + 1, size - 1, "up", private_file, err, sizeof err);
    if (!t) {
        unsigned line = 0, col = 0;
        if ((sscanf(err, "up:%u:%u: ", &line, &col) != 2 || line == 0 || col == 0) &&
            strcmp(err, "up: out of memory") != 0) {
            abort(); /* a refusal without a location */
        }
        return 0;
    }
    size_t n = sc_upstreams_count(t), stars = 0;
    if (n == 0 || n > SC_UPSTREAMS_MAX) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        const sc_upstream_def_t *e = sc_upstreams_get(t, i);
        if (!e || !e->host[0] || e->port <= 0 || !e->path[0] ||
            (e->key_value != NULL) != (e->key_header[0] != '\0')) {
            abort();
        }
        if (strcmp(e->provider, "*") == 0) {
            stars++;
        } else if (sc_upstreams_find(t, e->provider, strlen(e->provider)) != e) {
            abort();
        }
    }
    hpp_str_t reach[HPP_MAX_PROVIDERS];
    uint32_t r = sc_upstreams_reachable(t, reach);
    if (stars > 1 || (stars ? r != 0 : r != n)) {
        abort();
    }
    sc_upstreams_destroy(&t);
    return 0;
}
