/* eng_policy.h - compiled routing policy and the resolver.
 *
 * A policy file is lexed, parsed and compiled against a frozen catalog into an
 * immutable eng_policy_t (flat arrays, candidate lists indexed by tier and
 * capability). eng_resolve() is a pure function of (policy, features): the
 * same input gives the same answer, and it allocates nothing. A policy
 * borrows its catalog, which must outlive it.
 *
 * Semantics are specified in policies/README.md.
 */
#ifndef ENG_POLICY_H
#define ENG_POLICY_H

#include <stdio.h>

#include "eng_decision.h"
#include "eng_scorer.h"

typedef struct eng_policy eng_policy_t;

/* Diagnostics ----------------------------------------------------------- */

typedef enum { ENG_DIAG_ERROR, ENG_DIAG_WARNING } eng_diag_severity_t;

typedef struct {
    eng_diag_severity_t severity; /* error or warning */
    char file[256];               /* file name as opened (include-relative) */
    int line;                     /* 1-based */
    int col;                      /* 1-based */
    int span;                     /* caret width, >= 1 */
    char msg[256];                /* message */
    const char *code;             /* stable kind for tools, e.g. "unknown-tier" (static) */
    char source_line[256];        /* the text of the line, for the caret display */
} eng_diag_t;

typedef struct eng_diags eng_diags_t;

eng_diags_t *eng_diags_new(void);
void eng_diags_destroy(eng_diags_t **self_p);
size_t eng_diags_count(const eng_diags_t *self, eng_diag_severity_t severity);
size_t eng_diags_size(const eng_diags_t *self);
const eng_diag_t *eng_diags_get(const eng_diags_t *self, size_t i);
/* Prints every diagnostic as "file:line:col: error: message", the source line
 * and a caret, then a summary line "N errors, M warnings" when any. */
void eng_diags_print(const eng_diags_t *self, FILE *out);
/* Prints them as one JSON array (then a newline) for editors and CI:
 * [{"file", "line", "col", "end_col", "severity", "code", "message"}, ...];
 * line and col are 1-based, end_col is one past the caret, and a diagnostic
 * without a location has line and col 0. */
void eng_diags_print_json(const eng_diags_t *self, FILE *out);

/* Policy ---------------------------------------------------------------- */

/* Reads, parses and compiles the policy at `path` (following includes,
 * relative to the including file). Returns the policy, or NULL with every
 * error in `diags`. Warnings (unreachable rules, models missing from the
 * catalog) are added to `diags` either way. `diags` may be NULL. */
eng_policy_t *eng_policy_load(const char *path, const eng_catalog_t *catalog, eng_diags_t *diags);

/* Same, and `on_source` (may be NULL) sees the bytes of the policy file and
 * then of each included file, in the order they are read (depth first; a
 * file included twice is read once). */
eng_policy_t *eng_policy_load_observed(const char *path, const eng_catalog_t *catalog,
                                       eng_diags_t *diags, eng_source_fn on_source, void *ctx);

/* Same from memory; includes are resolved relative to the current directory. */
eng_policy_t *eng_policy_load_buffer(const char *name, const char *src, size_t len,
                                     const eng_catalog_t *catalog, eng_diags_t *diags);

void eng_policy_destroy(eng_policy_t **self_p);

/* The catalog this policy was compiled against. */
const eng_catalog_t *eng_policy_catalog(const eng_policy_t *self);

/* Endpoint health (eng_health.h): the table the resolver reads, NULL when
 * none (tools, tests: decisions from prices alone), and the policy's
 * cooldown settings a table is made with. Set once by the owner of both
 * (the snapshot), before the policy serves. */
struct eng_health;
struct eng_health_cfg;
const struct eng_health *eng_policy_health(const eng_policy_t *self);
void eng_policy_set_health(eng_policy_t *self, const struct eng_health *health);

/* Number of tiers and the name of tier i (declaration order, cheapest first). */
int eng_policy_tier_count(const eng_policy_t *self);
const char *eng_policy_tier_name(const eng_policy_t *self, int i);

/* The scorer the policy loaded as `name` (NULL: its only one), with its
 * name in *name_out (may be NULL); NULL when there is none such. */
const eng_scorer_t *eng_policy_scorer(const eng_policy_t *self, const char *name,
                                      const char **name_out);

/* Output tokens assumed when a request gives none. */
int64_t eng_policy_default_output(const eng_policy_t *self);

/* The name of the first routing rule that matches every request (no 'when',
 * or a condition that is always true), or NULL when requests can match no
 * rule at all. */
const char *eng_policy_catch_all(const eng_policy_t *self);

/* Resolves one request. Always fills `out` (status, message); returns
 * out->status. `trace` may be NULL; when given, every candidate considered is
 * recorded. Allocation-free and lock-free; safe from many threads at once. */
hpp_status_t eng_resolve(const eng_policy_t *self, const hpp_features_t *features,
                         eng_decision_t *out, eng_trace_t *trace);

/* The same, knowing what the caller's key may still spend (the ledger's
 * remaining, picodollars, may be negative): when the request's group has
 * `step_down` thresholds, the lowest one above `remaining` caps the tier
 * (the rule's target steps down to it, then cheaper; a free tier means free
 * models only) and `remaining` is the most the request may cost, free
 * models excepted. ENG_NO_REMAINING: as eng_resolve. */
#define ENG_NO_REMAINING INT64_MIN
hpp_status_t eng_resolve_remaining(const eng_policy_t *self, const hpp_features_t *features,
                                   hpp_pusd_t remaining, eng_decision_t *out, eng_trace_t *trace);

/* Whether `group` ("" = default) has step_down thresholds, so the ledger
 * reads the key's remaining money before resolving. */
bool eng_policy_group_steps(const eng_policy_t *self, hpp_str_t group);

#endif
