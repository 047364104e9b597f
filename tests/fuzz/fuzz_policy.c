/* fuzz_policy.c - libFuzzer target for the policy front end and compiler.
 *
 * Each input is compiled as a policy against the bundled catalog (loaded
 * once; an embedded two-model catalog when the file is not there) with
 * includes forbidden, so the fuzzer never opens files. When the input
 * compiles, a few fixed requests are resolved with and without a trace, so
 * fuzzed condition trees, regexes and tier layouts reach the resolver too,
 * each twice: with the one-pass text scan (eng_scan.h) and with each
 * pattern's own matcher, which must decide the same.
 * One input in 16 (by its size, so a replay does the same) is compiled to
 * serve, with the scan and the regexes' DFAs; the others are compiled
 * ENG_POLICY_CHECK_ONLY. Building the scan is Vectorscan's compiler: about
 * 3 ms under ASan, a quarter of the target's time when every input that
 * compiled paid it, and still a sixth at one in four. fuzz_regex checks the
 * DFA and the scan's pieces on their own, with fuzzed texts.
 * The diagnostics of every input are printed (text and JSON). The formatter
 * has its own target, fuzz_policy_fmt: in this one it doubled the parsing
 * of every input and added its coverage to libFuzzer's work per input.
 * Everything must be freed: the target runs under ASan/LSan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_policy_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char s_fallback_catalog[] =
    "{\"object\":\"list\",\"providers\":[\"p\",{\"id\":\"local\",\"local\":true}],\"data\":["
    "{\"id\":\"a/paid\",\"provider\":\"p\",\"pricing\":{\"input\":1,\"output\":2},"
    "\"context_length\":10000,\"capabilities\":[\"vision\",\"tools\"]},"
    "{\"id\":\"b/free\",\"provider\":\"local\",\"context_length\":4000}]}";

static eng_catalog_t *s_catalog(void)
{
    static eng_catalog_t *cat; /* kept for the whole run: still reachable, not a leak */
    if (cat) {
        return cat;
    }
    eng_error_t err;
    cat = eng_catalog_new();
    if (eng_catalog_load(cat, "policies/catalog.json", &err) != 0) {
        eng_catalog_load_buffer(cat, "fallback.json", s_fallback_catalog,
                                sizeof s_fallback_catalog - 1, ENG_FMT_NATIVE, &err);
    }
    if (eng_catalog_freeze(cat, &err) != 0) {
        abort(); /* the embedded catalog is valid: this is a harness bug */
    }
    return cat;
}

/* The decision with the scan on and off: the same model, endpoint, rule and hints. */
static void s_resolve_both(eng_policy_t *pol, const hpp_features_t *f, eng_trace_t *tr)
{
    eng_decision_t a, b;
    uint64_t hints_a = 0;
    eng_policy_set_scan(pol, false);
    eng_resolve(pol, f, &a, tr);
    if (tr) {
        hints_a = tr->hints;
        tr->n = 0;
    }
    eng_policy_set_scan(pol, true);
    eng_resolve(pol, f, &b, tr);
    if (a.status != b.status || a.model != b.model || a.endpoint != b.endpoint ||
        (a.rule != b.rule && (!a.rule || !b.rule || strcmp(a.rule, b.rule) != 0)) ||
        (tr && tr->hints != hints_a)) {
        abort(); /* the scan answered a text test differently */
    }
}

static void s_resolve_some(eng_policy_t *pol)
{
    static const char *const texts[] = {"", "def f(): pass", "pragma solidity", "hello world",
                                        "Prove the lemma: contract X is Y; #include <x.h> tl;dr"};
    static const char *const models[] = {"", "hpprouter/auto:floor", "hpprouter/auto:free",
                                         "openai/gpt-5:floor", "a/paid"};
    eng_trace_entry_t entries[16];
    for (int i = 0; i < 8; i++) {
        hpp_features_t f;
        hpp_features_init(&f);
        f.prompt_tokens = i * 3000;
        f.images = i & 1;
        f.tools = (i & 2) != 0;
        f.has_budget = (i & 4) != 0;
        f.budget_usd = 0.001 * i;
        f.text.ptr = texts[i % 5];
        f.text.len = (uint32_t)strlen(texts[i % 5]);
        f.model.ptr = models[i % 5];
        f.model.len = (uint32_t)strlen(models[i % 5]);
        f.hints[0].ptr = "code";
        f.hints[0].len = 4;
        f.nhints = i & 1;
        eng_trace_t tr;
        memset(&tr, 0, sizeof tr);
        tr.entries = entries;
        tr.cap = 16;
        eng_decision_t d;
        eng_resolve(pol, &f, &d, (i & 1) ? &tr : NULL);
        if (d.status == HPP_OK && (!d.model || !d.endpoint)) {
            abort();
        }
        s_resolve_both(pol, &f, (i & 1) ? &tr : NULL);
    }
}

/* Opened once: opening it for every input was a system call per input. A
 * 64 KB buffer: a write(2) per 64 KB of diagnostics, not per 4 KB. */
static FILE *s_null(void)
{
    static FILE *null;          /* kept for the whole run: still reachable, not a leak */
    static char buf[64 * 1024]; /* its buffer */
    if (!null) {
        null = fopen("/dev/null", "w");
        if (null) {
            setvbuf(null, buf, _IOFBF, sizeof buf);
        }
    }
    return null;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_diags_t *d = eng_diags_new();
    unsigned flags = ENG_POLICY_NO_INCLUDES | (size % 16 != 0 ? ENG_POLICY_CHECK_ONLY : 0);
    eng_policy_t *pol =
        eng_policy_compile("fuzz.policy", (const char *)data, size, NULL, s_catalog(), d, flags);
    if (pol) {
        s_resolve_some(pol);
    } else if (eng_diags_count(d, ENG_DIAG_ERROR) == 0) {
        abort(); /* a rejected policy always says why */
    }
    /* Printing walks every stored diagnostic (source lines, carets). */
    FILE *null = s_null();
    if (null) {
        eng_diags_print(d, null);
        eng_diags_print_json(d, null);
    }
    eng_policy_destroy(&pol);
    eng_diags_destroy(&d);
    return 0;
}
