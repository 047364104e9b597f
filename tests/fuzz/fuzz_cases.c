/* fuzz_cases.c - libFuzzer target for the cases-file reader (engine/eng_cases.c).
 *
 * Each input is parsed as a cases file; when it parses, every case runs
 * against the default policy (compiled once against the bundled catalog)
 * and the report goes to /dev/null, so fuzzed requests reach the resolver
 * and the diff printer. Everything per input must be freed (ASan/LSan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "eng_cases.h"
#include "eng_catalog.h"
#include "eng_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char s_policy[] = "tier free max $0\ntier cheap max $1\ntier rest\n"
                               "group trial models \"ollama/*\"\n"
                               "hint code when text contains \"def \"\n"
                               "route code when hints has \"code\" { tier rest }\n"
                               "route any { tier cheap free_fallback on }\n";

/* Loaded once and kept for the whole run: still reachable, not a leak. */
static eng_policy_t *s_load(void)
{
    static eng_catalog_t *cat;
    static eng_policy_t *pol;
    if (pol) {
        return pol;
    }
    eng_error_t err;
    cat = eng_catalog_new();
    if (eng_catalog_load(cat, "policies/catalog.json", &err) != 0 ||
        eng_catalog_freeze(cat, &err) != 0) {
        abort(); /* run from the repository root */
    }
    pol = eng_policy_load("policies/default.policy", cat, NULL);
    if (!pol) {
        pol = eng_policy_load_buffer("fuzz", s_policy, sizeof s_policy - 1, cat, NULL);
    }
    if (!pol) {
        abort();
    }
    return pol;
}

/* Opened once: opening it for every input was two system calls and a FILE per input. */
static FILE *s_null(void)
{
    static FILE *null; /* kept for the whole run: still reachable, not a leak */
    if (!null) {
        null = fopen("/dev/null", "w");
    }
    return null;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const eng_policy_t *pol = s_load();
    eng_diags_t *d = eng_diags_new();
    eng_cases_t *cases = eng_cases_load_buffer("fuzz.cases", (const char *)data, size, d);
    FILE *null = s_null();
    if (null) {
        if (cases) {
            eng_cases_run(cases, pol, null, true);
        }
        eng_diags_print(d, null);
    }
    if (!cases && eng_diags_count(d, ENG_DIAG_ERROR) == 0) {
        abort(); /* a rejected file always says why */
    }
    eng_cases_destroy(&cases);
    eng_diags_destroy(&d);
    return 0;
}
