/* policy_fixture.h - a catalog from JSON text and policies compiled against
 * it, for the unit suites that resolve requests. Header-only: every suite is
 * its own binary, so each gets its own copy of these static functions. */
#ifndef POLICY_FIXTURE_H
#define POLICY_FIXTURE_H

#include <criterion/criterion.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"

/* A frozen catalog from native-format JSON text; fails the test otherwise. */
static inline eng_catalog_t *fixture_catalog(const char *json)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(
        eng_catalog_load_buffer(cat, "test.json", json, strlen(json), ENG_FMT_NATIVE, &err), 0,
        "catalog: %s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0);
    return cat;
}

/* Compiles policy text against `cat`; NULL (diagnostics on stderr) when it
 * does not compile. */
static inline eng_policy_t *fixture_policy(const char *src, const eng_catalog_t *cat)
{
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *p = eng_policy_load_buffer("test.policy", src, strlen(src), cat, d);
    if (!p) {
        eng_diags_print(d, stderr);
    }
    eng_diags_destroy(&d);
    return p;
}

#endif
