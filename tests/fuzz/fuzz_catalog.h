/* fuzz_catalog.h - the body shared by the four catalog loader fuzz targets.
 *
 * Each target loads the input as one catalog file of a fixed format into a
 * fresh catalog, freezes it when the load succeeded, checks the frozen
 * catalog's invariants (models sorted and findable, endpoints contiguous,
 * cheapest first, floor/free endpoints enabled), looks the input's first
 * bytes up as a model id (exercising the id normalisation), and destroys
 * it. A failed load must leave an error with a code and a message. Any
 * violated invariant aborts, which libFuzzer reports as a crash.
 */
#ifndef FUZZ_CATALOG_H
#define FUZZ_CATALOG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"

static void fuzz_catalog_check(const eng_catalog_t *cat)
{
    size_t nm, ne;
    const eng_model_t *m = eng_catalog_models(cat, &nm);
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    uint32_t next = 0;
    for (size_t i = 0; i < nm; i++) {
        if ((i > 0 && strcmp(m[i - 1].id, m[i].id) >= 0) || m[i].ep_first != next ||
            m[i].ep_count == 0 || eng_catalog_find(cat, m[i].id, strlen(m[i].id)) != &m[i]) {
            abort();
        }
        next += m[i].ep_count;
        if ((m[i].floor_ep >= 0 && !e[m[i].floor_ep].enabled) ||
            (m[i].free_ep >= 0 && (!e[m[i].free_ep].enabled || !e[m[i].free_ep].is_free))) {
            abort();
        }
        for (uint32_t k = m[i].ep_first; k < m[i].ep_first + m[i].ep_count; k++) {
            if (e[k].model != i || (k > m[i].ep_first && e[k].enabled && !e[k - 1].enabled)) {
                abort();
            }
        }
    }
    if (next != ne) {
        abort();
    }
}

static int fuzz_catalog_one(const uint8_t *data, size_t size, const char *name,
                            eng_catalog_format_t fmt)
{
    /* An exact-size copy so AddressSanitizer sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        return 0;
    }
    memcpy(buf, data, size);
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    memset(&err, 0, sizeof err);
    if (eng_catalog_load_buffer(cat, name, buf, size, fmt, &err) == 0) {
        if (eng_catalog_freeze(cat, &err) == 0) {
            fuzz_catalog_check(cat);
            (void)eng_catalog_lookup(cat, buf, size < 300 ? size : 300);
        }
    } else if (err.code == ENG_ERR_NONE || err.msg[0] == '\0') {
        abort();
    }
    char text[1024];
    eng_error_format(&err, text, sizeof text);
    eng_catalog_destroy(&cat);
    free(buf);
    return 0;
}

#endif
