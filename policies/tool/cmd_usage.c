/* cmd_usage.c - `hpp-policy usage`: a decision log's usage records.
 *
 * Streams the log (hpp-engine --decision-log) line by line into eng_usage
 * (the join of outcomes to decisions and the sums) and prints, per model,
 * group and rule (or the one --by names): requests, attempts, failed
 * attempts, tokens, real cost with the group's multiplier, the estimates
 * and the estimate error. Bad lines are reported with their number and
 * skipped; memory is bounded by --window.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_usage.h"
#include "hpp_policy.h"
#include "hpp_types.h"

enum { U_LOG, U_FORMAT, U_BY, U_WINDOW, U_HELP };

static const hpp_opt_t s_usage_opts[] = {
    {"--log", "FILE", U_LOG, NULL, "the decision log to read (- for stdin; required)"},
    {"--format", "text|json", U_FORMAT, NULL, "output format (default text)"},
    {"--by", "model|group|rule", U_BY, NULL, "one table only (default: all three)"},
    {"--window", "LINES", U_WINDOW, NULL,
     "lines a decision waits for its outcomes (default 200000)"},
    {"--help", NULL, U_HELP, NULL, "show this help"},
    {NULL, NULL, U_HELP, NULL, NULL},
};

static const char s_synopsis[] =
    "--log FILE [--format text|json] [--by model|group|rule] [--window LINES]";

static double s_usd(hpp_pusd_t v)
{
    return hpp_pusd_to_usd(v);
}

/* Mean relative error of the estimate, 0 when nothing to compare. */
static double s_mean_rel(const eng_usage_row_t *r)
{
    return r->rel_error_n ? r->rel_error_sum / (double)r->rel_error_n : 0;
}

static int s_by_name(const void *a, const void *b)
{
    const eng_usage_row_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* The rows of a dimension sorted by name (caller frees); NULL when none. */
static const eng_usage_row_t **s_sorted(const eng_usage_sum_t *u, eng_usage_dim_t d, size_t *n)
{
    const eng_usage_row_t *rows = eng_usage_rows(u, d, n);
    if (*n == 0) {
        return NULL;
    }
    const eng_usage_row_t **p = malloc(*n * sizeof *p);
    if (!p) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) {
        p[i] = &rows[i];
    }
    qsort(p, *n, sizeof *p, s_by_name);
    return p;
}

static void s_text_dim(FILE *out, const eng_usage_sum_t *u, eng_usage_dim_t d)
{
    size_t n;
    const eng_usage_row_t **rows = s_sorted(u, d, &n);
    fprintf(out, "by %s:\n", eng_usage_dim_name(d));
    fprintf(out, "  %-32s %8s %8s %6s %10s %10s %14s %14s %14s %9s\n", eng_usage_dim_name(d),
            "requests", "attempts", "failed", "prompt", "completion", "cost_usd", "estimate_usd",
            "est_error_usd", "mean_rel");
    for (size_t i = 0; i < n; i++) {
        const eng_usage_row_t *r = rows[i];
        fprintf(out,
                "  %-32s %8" PRIu64 " %8" PRIu64 " %6" PRIu64 " %10" PRId64 " %10" PRId64
                " %14.8f %14.8f %14.8f %+9.4f\n",
                r->name[0] ? r->name : "-", r->requests, r->attempts, r->failed, r->prompt_tokens,
                r->completion_tokens, s_usd(r->cost), s_usd(r->estimate),
                s_usd(r->answered_est - r->answered_cost), s_mean_rel(r));
    }
    free(rows);
}

static void s_json_dim(FILE *out, const eng_usage_sum_t *u, eng_usage_dim_t d)
{
    size_t n;
    const eng_usage_row_t **rows = s_sorted(u, d, &n);
    fprintf(out, "\"%s\":[", eng_usage_dim_name(d));
    for (size_t i = 0; i < n; i++) {
        const eng_usage_row_t *r = rows[i];
        fprintf(out, "%s{\"name\":", i ? "," : "");
        hpp_json_str(out, r->name);
        fprintf(out,
                ",\"requests\":%" PRIu64 ",\"answered\":%" PRIu64 ",\"attempts\":%" PRIu64
                ",\"failed\":%" PRIu64 ",\"prompt_tokens\":%" PRId64
                ",\"completion_tokens\":%" PRId64 ",\"cost_pusd\":%" PRId64
                ",\"cost_usd\":%.12g,\"estimate_pusd\":%" PRId64
                ",\"estimate_usd\":%.12g,\"answered_cost_pusd\":%" PRId64
                ",\"answered_estimate_pusd\":%" PRId64 ",\"estimate_error_pusd\":%" PRId64
                ",\"estimate_error_usd\":%.12g,\"mean_relative_error\":%.6g"
                ",\"compared\":%" PRIu64 "}",
                r->requests, r->answered, r->attempts, r->failed, r->prompt_tokens,
                r->completion_tokens, r->cost, s_usd(r->cost), r->estimate, s_usd(r->estimate),
                r->answered_cost, r->answered_est, r->answered_est - r->answered_cost,
                s_usd(r->answered_est - r->answered_cost), s_mean_rel(r), r->rel_error_n);
    }
    fputc(']', out);
    free(rows);
}

static void s_json_totals(FILE *out, const eng_usage_totals_t *t)
{
    fprintf(out,
            "\"totals\":{\"lines\":%" PRIu64 ",\"bad_lines\":%" PRIu64 ",\"other_lines\":%" PRIu64
            ",\"decisions\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"outcomes\":%" PRIu64
            ",\"unmatched_outcomes\":%" PRIu64 ",\"decisions_without_outcome\":%" PRIu64
            ",\"without_decision_id\":%" PRIu64 ",\"evicted\":%" PRIu64 ",\"overflow\":%" PRIu64
            "}",
            t->lines, t->bad_lines, t->other_lines, t->decisions, t->refused, t->outcomes,
            t->unmatched, t->no_outcome, t->no_id, t->evicted, t->overflow);
}

static void s_text_totals(FILE *out, const eng_usage_totals_t *t)
{
    fprintf(out,
            "lines %" PRIu64 " (bad %" PRIu64 ", other %" PRIu64 "), decisions %" PRIu64
            " (refused %" PRIu64 ", without outcome %" PRIu64 "), outcomes %" PRIu64
            " (unmatched %" PRIu64 "), joins settled by the window %" PRIu64 "\n",
            t->lines, t->bad_lines, t->other_lines, t->decisions, t->refused, t->no_outcome,
            t->outcomes, t->unmatched, t->evicted);
}

/* Feeds every line of `f`; -1 on a read error or out of memory. */
static int s_feed(eng_usage_sum_t *u, FILE *f, const char *path)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int rc = 0;
    errno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (eng_usage_line(u, line, len, lineno) == -2) {
            fprintf(stderr, "hpp-policy usage: %s:%" PRIu64 ": out of memory\n", path, lineno);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "hpp-policy usage: cannot read %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

int cmd_usage(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    int by = -1;
    uint64_t window = ENG_USAGE_DEFAULT_WINDOW;
    for (int i = 1; i < argc; i++) {
        const hpp_opt_t *o;
        const char *v;
        int k = hpp_opt_next(argc, argv, &i, s_usage_opts, &o, &v);
        if (k < 0) {
            return HPP_EXIT_USAGE;
        }
        if (k == 0) {
            fprintf(stderr, "hpp-policy usage: unexpected argument '%s' (--log FILE)\n", argv[i]);
            return HPP_EXIT_USAGE;
        }
        switch (o->id) {
        case U_LOG:
            path = v;
            break;
        case U_FORMAT:
            if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0) {
                fprintf(stderr, "hpp-policy usage: --format: expected text or json, got '%s'\n", v);
                return HPP_EXIT_USAGE;
            }
            json = strcmp(v, "json") == 0;
            break;
        case U_BY:
            for (int d = 0; d < ENG_USAGE_DIMS; d++) {
                by = strcmp(v, eng_usage_dim_name((eng_usage_dim_t)d)) == 0 ? d : by;
            }
            if (by < 0) {
                fprintf(stderr, "hpp-policy usage: --by: expected model, group or rule, got '%s'\n",
                        v);
                return HPP_EXIT_USAGE;
            }
            break;
        case U_WINDOW: {
            char *end;
            errno = 0;
            unsigned long long w = strtoull(v, &end, 10);
            if (errno || *end || end == v || v[0] == '-' || w < 1 || w > ENG_USAGE_MAX_WINDOW) {
                fprintf(stderr, "hpp-policy usage: --window: expected 1..%d lines, got '%s'\n",
                        ENG_USAGE_MAX_WINDOW, v);
                return HPP_EXIT_USAGE;
            }
            window = w;
            break;
        }
        default:
            hpp_usage(stdout, "usage", s_synopsis, s_usage_opts);
            return HPP_EXIT_OK;
        }
    }
    if (!path) {
        fprintf(stderr, "hpp-policy usage: --log FILE is required\n");
        hpp_usage(stderr, "usage", s_synopsis, s_usage_opts);
        return HPP_EXIT_USAGE;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "hpp-policy usage: cannot open %s: %s\n", path, strerror(errno));
        return HPP_EXIT_USAGE;
    }
    eng_usage_sum_t *u = eng_usage_new(window);
    int rc = u ? s_feed(u, f, path) : -1;
    if (f != stdin) {
        fclose(f);
    }
    if (rc != 0) {
        if (!u) {
            fprintf(stderr, "hpp-policy usage: out of memory\n");
        }
        eng_usage_destroy(&u);
        return HPP_EXIT_USAGE;
    }
    eng_usage_finish(u);
    uint64_t lineno;
    const char *why;
    for (size_t i = 0; (why = eng_usage_bad(u, i, &lineno)) != NULL; i++) {
        fprintf(stderr, "hpp-policy usage: %s:%" PRIu64 ": bad line skipped: %s\n", path, lineno,
                why);
    }
    const eng_usage_totals_t *t = eng_usage_totals(u);
    if (t->bad_lines > ENG_USAGE_BAD_KEPT) {
        fprintf(stderr, "hpp-policy usage: %s: %" PRIu64 " bad lines in all\n", path, t->bad_lines);
    }
    if (json) {
        fputc('{', stdout);
        for (int d = 0; d < ENG_USAGE_DIMS; d++) {
            if (by < 0 || by == d) {
                s_json_dim(stdout, u, (eng_usage_dim_t)d);
                fputc(',', stdout);
            }
        }
        s_json_totals(stdout, t);
        fputs("}\n", stdout);
    } else {
        for (int d = 0; d < ENG_USAGE_DIMS; d++) {
            if (by < 0 || by == d) {
                s_text_dim(stdout, u, (eng_usage_dim_t)d);
            }
        }
        s_text_totals(stdout, t);
    }
    eng_usage_destroy(&u);
    return HPP_EXIT_OK;
}
