/* test_usage.c - the decision-log summary (engine/eng_usage.c) on small
 * hand-written logs: the join by decision_id in either order, the answering
 * attempt (the last 2xx), the group multiplier on list-price outcomes, the
 * estimate error, bad lines, unmatched outcomes and the window. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "eng_usage.h"

static eng_usage_sum_t *s_feed(uint64_t window, const char *const *lines)
{
    eng_usage_sum_t *u = eng_usage_new(window);
    cr_assert_not_null(u);
    for (uint64_t i = 0; lines[i]; i++) {
        eng_usage_line(u, lines[i], strlen(lines[i]), i + 1);
    }
    eng_usage_finish(u);
    return u;
}

static const eng_usage_row_t *s_row(eng_usage_sum_t *u, eng_usage_dim_t d, const char *name)
{
    size_t n;
    const eng_usage_row_t *rows = eng_usage_rows(u, d, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            return &rows[i];
        }
    }
    cr_assert_fail("no row %s", name);
    return NULL;
}

/* Decision 7: group "team" at x1.5, estimate 300 000 000 pUSD. A 500 first
 * (priced at 0), then a 200 at 100 000 000 list. Decision 8: group
 * default, no outcome. An outcome of decision 9 that never was. */
static const char *const s_log[] = {
    "{\"type\":\"decision\",\"op\":\"route\",\"decision_id\":7,\"group\":\"team\","
    "\"status\":\"ok\",\"model\":\"m1\",\"rule\":\"cheap\",\"cost_pusd\":300000000,"
    "\"multiplier_permille\":1500}",
    "{\"type\":\"outcome\",\"decision_id\":7,\"status\":500,\"prompt_tokens\":0,"
    "\"cost_pusd\":0}",
    "{\"type\":\"outcome\",\"decision_id\":7,\"status\":200,\"prompt_tokens\":100,"
    "\"completion_tokens\":50,\"cached_tokens\":10,\"cost_pusd\":100000000}",
    "{\"op\":\"route\",\"decision_id\":8,\"status\":\"ok\",\"model\":\"m2\",\"rule\":\"cheap\","
    "\"cost_pusd\":1000}",
    "{\"type\":\"outcome\",\"decision_id\":9,\"error\":\"timeout\"}",
    "{\"type\":\"decision\",\"op\":\"route\",\"decision_id\":10,\"status\":\"bad_request\","
    "\"message\":\"x\"}",
    NULL,
};

Test(usage, joins_outcomes_and_applies_the_multiplier)
{
    eng_usage_sum_t *u = s_feed(1000, s_log);
    const eng_usage_row_t *m1 = s_row(u, ENG_USAGE_MODEL, "m1");
    cr_assert_eq(m1->requests, 1);
    cr_assert_eq(m1->attempts, 2);
    cr_assert_eq(m1->failed, 1);
    cr_assert_eq(m1->answered, 1);
    cr_assert_eq(m1->prompt_tokens, 100);
    cr_assert_eq(m1->completion_tokens, 50);
    cr_assert_eq(m1->cost, 150000000); /* 100 000 000 x 1.5 */
    cr_assert_eq(m1->estimate, 300000000);
    cr_assert_eq(m1->answered_est - m1->answered_cost, 150000000);
    cr_assert_eq(m1->rel_error_n, 1);
    cr_assert_float_eq(m1->rel_error_sum, 1.0, 1e-12); /* (3 - 1.5) / 1.5 */
    const eng_usage_row_t *team = s_row(u, ENG_USAGE_GROUP, "team");
    cr_assert_eq(team->cost, 150000000);
    const eng_usage_row_t *def = s_row(u, ENG_USAGE_GROUP, "default");
    cr_assert_eq(def->requests, 1);
    cr_assert_eq(def->attempts, 0);
    const eng_usage_row_t *cheap = s_row(u, ENG_USAGE_RULE, "cheap");
    cr_assert_eq(cheap->requests, 2);
    cr_assert_eq(cheap->estimate, 300001000);
    const eng_usage_totals_t *t = eng_usage_totals(u);
    cr_assert_eq(t->decisions, 3);
    cr_assert_eq(t->refused, 1);
    cr_assert_eq(t->outcomes, 3);
    cr_assert_eq(t->unmatched, 1);
    cr_assert_eq(t->no_outcome, 1);
    cr_assert_eq(t->bad_lines, 0);
    eng_usage_destroy(&u);
    cr_assert_null(u);
}

/* An engine thread may flush its outcome before another flushes the
 * decision: the join works either way. */
Test(usage, outcome_before_its_decision)
{
    const char *const log[] = {
        "{\"type\":\"outcome\",\"decision_id\":3,\"status\":201,\"prompt_tokens\":4,"
        "\"completion_tokens\":5,\"cost_pusd\":1001}",
        "{\"type\":\"decision\",\"decision_id\":3,\"status\":\"ok\",\"model\":\"m\","
        "\"rule\":\"r\",\"cost_pusd\":2000,\"multiplier_permille\":500}",
        NULL,
    };
    eng_usage_sum_t *u = s_feed(10, log);
    const eng_usage_row_t *m = s_row(u, ENG_USAGE_MODEL, "m");
    cr_assert_eq(m->attempts, 1);
    cr_assert_eq(m->cost, 501); /* 1001 x 0.5 rounded half up */
    cr_assert_eq(m->rel_error_n, 1);
    cr_assert_eq(eng_usage_totals(u)->unmatched, 0);
    eng_usage_destroy(&u);
}

/* The answer is the last 2xx attempt: its cost is what the estimate is
 * compared with, while every attempt's cost is summed. */
Test(usage, last_2xx_answers)
{
    const char *const log[] = {
        "{\"type\":\"decision\",\"decision_id\":1,\"status\":\"ok\",\"model\":\"m\","
        "\"rule\":\"r\",\"cost_pusd\":100}",
        "{\"type\":\"outcome\",\"decision_id\":1,\"status\":200,\"cost_pusd\":50}",
        "{\"type\":\"outcome\",\"decision_id\":1,\"status\":429}",
        "{\"type\":\"outcome\",\"decision_id\":1,\"status\":200,\"cost_pusd\":200}",
        NULL,
    };
    eng_usage_sum_t *u = s_feed(10, log);
    const eng_usage_row_t *m = s_row(u, ENG_USAGE_MODEL, "m");
    cr_assert_eq(m->cost, 250);
    cr_assert_eq(m->answered_cost, 200);
    cr_assert_eq(m->failed, 1);
    cr_assert_float_eq(m->rel_error_sum, -0.5, 1e-12);
    eng_usage_destroy(&u);
}

/* Bad lines are counted with their numbers and skipped; the rest is used. */
Test(usage, bad_lines_counted_and_skipped)
{
    const char *const log[] = {
        "not json",
        "[1,2]",
        "{\"type\":\"outcome\",\"decision_id\":\"x\",\"status\":200}",
        "{\"type\":\"decision\",\"decision_id\":1,\"status\":\"ok\",\"rule\":\"r\"}",
        "{\"type\":\"decision\",\"decision_id\":2,\"status\":\"ok\",\"model\":\"m\",\"rule\":\"r\","
        "\"cost_pusd\":-5}",
        "",
        "{\"type\":\"metric\"}",
        "{\"type\":\"decision\",\"decision_id\":3,\"status\":\"ok\",\"model\":\"m\","
        "\"rule\":\"r\"}",
        NULL,
    };
    eng_usage_sum_t *u = s_feed(10, log);
    const eng_usage_totals_t *t = eng_usage_totals(u);
    cr_assert_eq(t->bad_lines, 5);
    cr_assert_eq(t->other_lines, 2);
    cr_assert_eq(t->decisions, 1);
    uint64_t line = 0;
    cr_assert_not_null(eng_usage_bad(u, 0, &line));
    cr_assert_eq(line, 1);
    cr_assert_str_eq(eng_usage_bad(u, 2, &line), "decision_id: not a non-negative integer");
    cr_assert_eq(line, 3);
    cr_assert_str_eq(eng_usage_bad(u, 3, &line), "model: missing");
    cr_assert_null(eng_usage_bad(u, 5, &line));
    eng_usage_destroy(&u);
}

/* A join open longer than the window is settled: a later outcome is
 * unmatched, and memory holds at most a window's worth of joins. */
Test(usage, window_settles_old_joins)
{
    const char *const log[] = {
        "{\"type\":\"decision\",\"decision_id\":1,\"status\":\"ok\",\"model\":\"m\","
        "\"rule\":\"r\"}",
        "{\"type\":\"decision\",\"decision_id\":2,\"status\":\"ok\",\"model\":\"m\","
        "\"rule\":\"r\"}",
        "{\"type\":\"decision\",\"decision_id\":3,\"status\":\"ok\",\"model\":\"m\","
        "\"rule\":\"r\"}",
        "{\"type\":\"outcome\",\"decision_id\":1,\"status\":200}",
        "{\"type\":\"outcome\",\"decision_id\":3,\"status\":200}",
        NULL,
    };
    eng_usage_sum_t *u = s_feed(3, log);
    const eng_usage_totals_t *t = eng_usage_totals(u);
    cr_assert_eq(t->evicted, 2); /* decisions 1 and 2 at lines 4 and 5 */
    cr_assert_eq(t->unmatched, 1);
    cr_assert_eq(t->no_outcome, 2);
    cr_assert_eq(s_row(u, ENG_USAGE_MODEL, "m")->attempts, 1);
    eng_usage_destroy(&u);
}

/* Many joins at once: the ring and the index grow, removal keeps every
 * other id findable. */
Test(usage, many_open_joins)
{
    eng_usage_sum_t *u = eng_usage_new(100000);
    char buf[256];
    uint64_t line = 0;
    for (int i = 1; i <= 5000; i++) {
        int n = snprintf(buf, sizeof buf,
                         "{\"type\":\"decision\",\"decision_id\":%d,\"status\":\"ok\","
                         "\"model\":\"m%d\",\"rule\":\"r\",\"cost_pusd\":10}",
                         i * 7919, i % 13);
        eng_usage_line(u, buf, (size_t)n, ++line);
    }
    for (int i = 5000; i >= 1; i -= 2) {
        int n = snprintf(buf, sizeof buf,
                         "{\"type\":\"outcome\",\"decision_id\":%d,\"status\":200,"
                         "\"cost_pusd\":10}",
                         i * 7919);
        eng_usage_line(u, buf, (size_t)n, ++line);
    }
    eng_usage_finish(u);
    const eng_usage_totals_t *t = eng_usage_totals(u);
    cr_assert_eq(t->unmatched, 0);
    cr_assert_eq(t->no_outcome, 2500);
    cr_assert_eq(s_row(u, ENG_USAGE_RULE, "r")->cost, 25000);
    eng_usage_destroy(&u);
}

/* A long name is cut at a character's start, never inside one. */
Test(usage, long_names_cut_at_a_character)
{
    char line[512], name[256];
    memset(name, 'a', 199);
    memcpy(name + 199, "\xc3\xa9zz", 5); /* é across the 200-byte cut */
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"decision\",\"decision_id\":1,\"status\":\"ok\",\"model\":\"%s\","
                     "\"rule\":\"r\"}",
                     name);
    eng_usage_sum_t *u = eng_usage_new(10);
    cr_assert_eq(eng_usage_line(u, line, (size_t)n, 1), 0);
    eng_usage_finish(u);
    size_t rows;
    const eng_usage_row_t *r = eng_usage_rows(u, ENG_USAGE_MODEL, &rows);
    cr_assert_eq(rows, 1);
    cr_assert_eq(strlen(r[0].name), 199);
    eng_usage_destroy(&u);
}

/* The rows and their slots grow with the names seen: names seen before are found again (not
 * added twice) at every size, and past ENG_USAGE_MAX_ROWS names a dimension has one more row,
 * "(other)", for the rest. */
static void s_decision(eng_usage_sum_t *u, uint64_t *line, int id, int model, int rule)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"decision\",\"decision_id\":%d,\"status\":\"ok\","
                     "\"model\":\"m%d\",\"rule\":\"r%d\",\"cost_pusd\":10}",
                     id, model, rule);
    cr_assert_eq(eng_usage_line(u, buf, (size_t)n, ++*line), 0);
}

Test(usage, rows_grow_to_the_bound_then_other)
{
    eng_usage_sum_t *u = eng_usage_new(1);
    uint64_t line = 0;
    int id = 0;
    for (int i = 0; i < ENG_USAGE_MAX_ROWS + 50; i++) {
        s_decision(u, &line, ++id, i, i % 3);
        if (i < ENG_USAGE_MAX_ROWS && (i & (i + 1)) == 0) { /* at 1, 2, 4, ... 8192 names */
            for (int k = 0; k <= i; k += 1 + i / 8) {
                s_decision(u, &line, ++id, k, 0);
            }
        }
    }
    /* Past the bound, a name that has a row keeps it: only new names are "(other)". */
    s_decision(u, &line, ++id, 0, 0);
    s_decision(u, &line, ++id, 9999, 0);
    eng_usage_finish(u);
    size_t n;
    const eng_usage_row_t *rows = eng_usage_rows(u, ENG_USAGE_MODEL, &n);
    cr_assert_eq(n, ENG_USAGE_MAX_ROWS + 1);
    uint64_t requests = 0;
    for (size_t i = 0; i < n; i++) {
        requests += rows[i].requests;
    }
    cr_assert_eq(requests, (uint64_t)id);
    cr_assert_str_eq(rows[ENG_USAGE_MAX_ROWS].name, "(other)");
    cr_assert_eq(rows[ENG_USAGE_MAX_ROWS].requests, 50);
    cr_assert_str_eq(rows[0].name, "m0");
    cr_assert_eq(rows[0].requests, 1 + 14 + 1); /* its own, once at each of 14 sizes, after */
    cr_assert_str_eq(rows[9999].name, "m9999");
    cr_assert_eq(rows[9999].requests, 2);
    rows = eng_usage_rows(u, ENG_USAGE_RULE, &n);
    cr_assert_eq(n, 3);
    eng_usage_destroy(&u);
}
