/* eng_usage.h - usage records from a decision log: outcomes joined to their
 * decisions and summed per model, group and rule.
 *
 * The log is fed one line at a time (streamed: nothing keeps the file).
 * Decision lines ("type":"decision", or older lines with "op") and outcome
 * lines ("type":"outcome") meet by decision_id in a bounded table: a join
 * still open `window` lines after its first line is settled as it stands,
 * so a log of any size is summed in memory proportional to the window (an
 * outcome that comes later counts as unmatched). Either line may come
 * first: each engine thread flushes its own buffer.
 *
 * Per decision: its model, group, rule, group multiplier and estimate; its
 * attempts (failed ones: a transport error or a status outside 2xx), their
 * tokens, and their real cost (an outcome's cost is at list price; the
 * decision's multiplier is applied here to each attempt's total, rounded
 * half up). The attempt that answered is the last with a 2xx status; the
 * estimate error compares the estimate with its real cost.
 *
 * Bad lines (not JSON, wrong types) are counted and skipped; the first few
 * are kept with their line numbers for the caller to print.
 */
#ifndef ENG_USAGE_H
#define ENG_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "hpp_types.h"

typedef enum {
    ENG_USAGE_MODEL = 0,
    ENG_USAGE_GROUP,
    ENG_USAGE_RULE,
    ENG_USAGE_DIMS
} eng_usage_dim_t;

/* "model", "group", "rule". */
const char *eng_usage_dim_name(eng_usage_dim_t d);

/* One row of a summary. Money in picodollars. */
typedef struct {
    const char *name;          /* model id, group ("default" when none), rule */
    uint64_t requests;         /* decisions answered with a model */
    uint64_t answered;         /* of them, with an attempt that answered (2xx) */
    uint64_t attempts;         /* outcome lines joined */
    uint64_t failed;           /* of them, a transport error or a non-2xx status */
    int64_t prompt_tokens;     /* as reported, over every attempt */
    int64_t completion_tokens; /* likewise */
    hpp_pusd_t cost;           /* real cost, every attempt, the group's multiplier applied */
    hpp_pusd_t estimate;       /* the decisions' estimates */
    hpp_pusd_t answered_cost;  /* real cost of the answering attempts (priced ones) */
    hpp_pusd_t answered_est;   /* the estimates of those same decisions */
    double rel_error_sum;      /* sum of (estimate - real) / real over them (real > 0) */
    uint64_t rel_error_n;      /* how many */
} eng_usage_row_t;

/* Whole-log counts. */
typedef struct {
    uint64_t lines;       /* lines fed */
    uint64_t bad_lines;   /* skipped: not a JSON object, or a field of the wrong type */
    uint64_t other_lines; /* objects that are neither decisions nor outcomes */
    uint64_t decisions;   /* decision lines */
    uint64_t refused;     /* of them, answered with an error (no model) */
    uint64_t outcomes;    /* outcome lines */
    uint64_t unmatched;   /* outcomes whose decision was not found in the window */
    uint64_t no_outcome;  /* decisions with a model and no outcome */
    uint64_t no_id;       /* lines without a decision_id (not joinable) */
    uint64_t evicted;     /* joins settled because the window passed them */
    uint64_t overflow;    /* sums that would overflow int64 (left out) */
} eng_usage_totals_t;

typedef struct eng_usage_sum eng_usage_sum_t;

#define ENG_USAGE_DEFAULT_WINDOW 200000 /* lines a join stays open */
#define ENG_USAGE_MAX_WINDOW 10000000   /* ~1.2 GB of joins at most */
#define ENG_USAGE_MAX_ROWS 10000        /* names per dimension; more go to "(other)" */
#define ENG_USAGE_MAX_LINE 65536        /* longer lines are bad lines */
#define ENG_USAGE_BAD_KEPT 20           /* bad lines remembered with their reason */

/* A summary with joins open for `window` lines (1..ENG_USAGE_MAX_WINDOW).
 * NULL when out of memory or window out of range. */
eng_usage_sum_t *eng_usage_new(uint64_t window);

/* Frees it; idempotent. */
void eng_usage_destroy(eng_usage_sum_t **self_p);

/* Feeds line number `lineno` (without its newline). Returns 0 when used or
 * skipped as another kind of line, -1 for a bad line (counted; its reason
 * kept while fewer than ENG_USAGE_BAD_KEPT were). -2 when out of memory. */
int eng_usage_line(eng_usage_sum_t *self, const char *line, size_t len, uint64_t lineno);

/* Settles every open join (end of the log). Feeding after it goes on. */
void eng_usage_finish(eng_usage_sum_t *self);

/* The rows of a dimension, sorted by name; valid until the next feed. */
const eng_usage_row_t *eng_usage_rows(const eng_usage_sum_t *self, eng_usage_dim_t dim, size_t *n);

/* The whole log's counts. */
const eng_usage_totals_t *eng_usage_totals(const eng_usage_sum_t *self);

/* The i-th kept bad line: its number and reason; NULL past the last. */
const char *eng_usage_bad(const eng_usage_sum_t *self, size_t i, uint64_t *lineno);

#endif
