/* test_no_alloc_scorer.c - a decision that runs a scorer allocates nothing.
 *
 * The scorer reads the text sample with fixed state and weights allocated
 * when the policy was loaded; this suite counts allocations over warm
 * decisions of the example quality policy on an 8 KiB sample (skipped under
 * the sanitizers, whose allocator replaces the counter's).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy.h"
#include "hpp_request.h"

#include "../alloc_count.h"

Test(no_alloc, decision_with_a_scorer)
{
    if (!alloc_count_available()) {
        cr_skip_test("allocation counting is off under the sanitizers");
    }
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    cr_assert_eq(eng_catalog_load(cat, "data/routellm/catalog.json", &err), 0, "%s", err.msg);
    cr_assert_eq(eng_catalog_freeze(cat, &err), 0, "%s", err.msg);
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *pol = eng_policy_load("policies/examples/quality.policy", cat, d);
    if (!pol) {
        eng_diags_print(d, stderr);
    }
    cr_assert_not_null(pol);
    static char text[8192];
    const char *words = "Natalia sold clips to 48 of her friends in April, and then she sold "
                        "half as many clips in May. How many clips did she sell altogether? ";
    for (size_t i = 0; i < sizeof text; i++) {
        text[i] = words[i % strlen(words)];
    }
    hpp_features_t f;
    hpp_features_init(&f);
    int hard = 0;
    unsigned long n = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            alloc_count_start();
        }
        for (int i = 0; i < 60; i++) {
            /* Samples of several sizes, so both rules match. */
            f.text = (hpp_str_t){text, (uint32_t)(i % 2 ? sizeof text : 40 + (size_t)i)};
            eng_decision_t dec;
            eng_resolve(pol, &f, &dec, NULL);
            hard += round == 1 && dec.status == HPP_OK && strcmp(dec.rule, "hard") == 0;
        }
    }
    n = alloc_count_stop();
    cr_assert_eq(n, 0, "%lu allocations in 60 warm decisions with a scorer", n);
    cr_assert_gt(hard, 0, "no request reached the score rule's tier");
    eng_policy_destroy(&pol);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
}
