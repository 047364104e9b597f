/* eng_cases.h - test cases for routing policies.
 *
 * A cases file lists requests and what a policy must answer for each; it is
 * what `hpp-policy test POLICY CASES` runs, and the unit tests run the same
 * code. One case per line (a trailing backslash continues a line):
 *
 *   NAME  key=value ...  =>  expect=value ...
 *
 * Request keys are those of eng_features_set(); expectations are model,
 * provider, tier, rule, error (a status name, "ok" included), cost (USD),
 * output_tokens, fallback (the first fallback's model) and nfallbacks.
 * Values are bare words or "quoted strings" with \" \\ \n \t escapes.
 * `#` starts a comment outside quotes. See policies/README.md.
 */
#ifndef ENG_CASES_H
#define ENG_CASES_H

#include <stdio.h>

#include "eng_policy.h"

typedef struct eng_cases eng_cases_t;

/* Reads and parses a cases file. Returns the cases, or NULL with every
 * error in `diags` (file:line:col). */
eng_cases_t *eng_cases_load(const char *path, eng_diags_t *diags);

/* Same from memory; `name` is used in messages. */
eng_cases_t *eng_cases_load_buffer(const char *name, const char *src, size_t len,
                                   eng_diags_t *diags);

/* Frees the cases; sets *self_p to NULL. Idempotent. */
void eng_cases_destroy(eng_cases_t **self_p);

/* Number of cases. */
size_t eng_cases_count(const eng_cases_t *self);

/* Runs every case against `pol`. Prints each failure to `out` as the case's
 * location and name, its request, and a diff of expected (-) and actual (+)
 * values; with `verbose` also a line per passing case. Ends with the line
 * "N passed, N failed". Returns the number of failures. */
size_t eng_cases_run(const eng_cases_t *self, const eng_policy_t *pol, FILE *out, bool verbose);

/* What a gate reports for each failure: the file, the 1-based line (0 =
 * none) and a one-line message. */
typedef void (*eng_cases_fail_fn)(void *ctx, const char *file, int line, const char *msg);

/* Runs every case against `pol` as eng_cases_run does, and calls `fn` (may
 * be NULL) once per failing case with the case's file and line and "case
 * 'NAME' fails: KEY: expected X, got Y" (its first expectation that
 * differs). Returns the number of failures. The engine's reload gate. */
size_t eng_cases_check(const eng_cases_t *self, const eng_policy_t *pol, eng_cases_fail_fn fn,
                       void *ctx);

/* The requests the serving policy `old` routes and `next` would leave with
 * no routing rule at all (so they would fail with no_candidate): the
 * engine's reload gate. Probes, one request each, with no other feature:
 * the empty request, each hint word `old` knows (from its hint rules and
 * conditions), each of its key groups, and vision, tools and json. A probe
 * `old` matches a rule for and `next` matches none is lost: `fn` (may be
 * NULL) gets `file`, line 0 and a message naming the probe and the old
 * rule. Returns the number lost. Deterministic, about a hundred resolves at
 * most, no allocation. */
size_t eng_policy_coverage_lost(const eng_policy_t *old, const eng_policy_t *next, const char *file,
                                eng_cases_fail_fn fn, void *ctx);

/* Sets one request feature from text, as cases files, `hpp-policy route`
 * and explain's JSON spell them:
 *   model S, prompt_tokens N, output_tokens N, cache_read_tokens N, images N,
 *   vision B, tools B, json B, hints a,b,c (appends), budget USD (alias
 *   budget_usd), group S, text S, meta.KEY S
 * B is true/false/yes/no/on/off/1/0. Strings are borrowed: `key` and `val`
 * must outlive `f`. Returns 0, or -1 with a message in `why`. */
int eng_features_set(hpp_features_t *f, const char *key, size_t klen, const char *val, size_t vlen,
                     char *why, size_t whylen);

#endif
