/* test_sc_metrics.c - the sidecar's counters and their Prometheus text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_metrics.h"

static char *s_render(const sc_metrics_t *m)
{
    size_t len = 0;
    char *text = sc_metrics_render(m, &len);
    cr_assert_not_null(text);
    cr_assert_eq(len, strlen(text));
    return text;
}

static bool s_has(const char *text, const char *line)
{
    return strstr(text, line) != NULL;
}

Test(sc_metrics, requests_by_route_and_status)
{
    sc_metrics_t *m = sc_metrics_new();
    sc_metrics_request(m, SC_ROUTE_ROUTE, 200, 0.0002);
    sc_metrics_request(m, SC_ROUTE_ROUTE, 200, 0.003);
    sc_metrics_request(m, SC_ROUTE_CHAT, 418, 0.5); /* not in the table: "other" */
    sc_metrics_request(m, (sc_route_t)99, 404, 0.1);
    char *t = s_render(m);
    cr_assert(s_has(t, "hpp_sidecar_requests_total{route=\"/v1/route\",status=\"200\"} 2\n"), "%s",
              t);
    cr_assert(s_has(
        t, "hpp_sidecar_requests_total{route=\"/v1/chat/completions\",status=\"other\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_requests_total{route=\"other\",status=\"404\"} 1\n"));
    /* Cumulative buckets: 0.0002 is under 0.00025, 0.003 under 0.005. */
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"0.0001\"} 0\n"));
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"0.00025\"} 1\n"));
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"0.0025\"} 1\n"));
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"0.005\"} 2\n"));
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"+Inf\"} 2\n"));
    cr_assert(s_has(t, "hpp_sidecar_request_duration_seconds_count{route=\"/v1/route\"} 2\n"));
    cr_assert(s_has(t, "# TYPE hpp_sidecar_request_duration_seconds histogram\n"));
    free(t);
    sc_metrics_destroy(&m);
    sc_metrics_destroy(&m);
    cr_assert_null(m);
}

Test(sc_metrics, engine_and_upstream_times)
{
    sc_metrics_t *m = sc_metrics_new();
    char *t = s_render(m);
    /* Declared and zero before the first call, so a dashboard has the series. */
    cr_assert(s_has(t, "# TYPE hpp_sidecar_engine_duration_seconds histogram\n"), "%s", t);
    cr_assert(s_has(t, "hpp_sidecar_engine_duration_seconds_count 0\n"));
    cr_assert(s_has(t, "hpp_sidecar_upstream_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
    free(t);
    sc_metrics_engine_time(m, 0.00004); /* under 50 us */
    sc_metrics_engine_time(m, 0.0003);
    sc_metrics_engine_time(m, 20); /* past the last bucket: only in +Inf */
    sc_metrics_upstream_time(m, 0.00002);
    static const char *const want[] = {
        "hpp_sidecar_engine_duration_seconds_bucket{le=\"2.5e-05\"} 0\n",
        "hpp_sidecar_engine_duration_seconds_bucket{le=\"5e-05\"} 1\n",
        "hpp_sidecar_engine_duration_seconds_bucket{le=\"0.0005\"} 2\n",
        "hpp_sidecar_engine_duration_seconds_bucket{le=\"10\"} 2\n",
        "hpp_sidecar_engine_duration_seconds_bucket{le=\"+Inf\"} 3\n",
        "hpp_sidecar_engine_duration_seconds_sum 20.000340000\n",
        "hpp_sidecar_engine_duration_seconds_count 3\n",
        "hpp_sidecar_upstream_duration_seconds_bucket{le=\"2.5e-05\"} 1\n",
        "hpp_sidecar_upstream_duration_seconds_count 1\n",
    };
    t = s_render(m);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert(s_has(t, want[i]), "missing %s in:\n%s", want[i], t);
    }
    free(t);
    sc_metrics_destroy(&m);
}

Test(sc_metrics, decisions_are_bounded_and_escaped)
{
    sc_metrics_t *m = sc_metrics_new();
    sc_metrics_decision(m, "openai/gpt-5", 12, "premium", 7);
    sc_metrics_decision(m, "openai/gpt-5", 12, "premium", 7);
    sc_metrics_decision(m, "odd\"model\\x", 12, "", 0);
    char name[32];
    for (int i = 0; i < 2 * SC_METRICS_MAX_DECISIONS; i++) {
        int n = snprintf(name, sizeof name, "m/%d", i);
        sc_metrics_decision(m, name, (size_t)n, "t", 1);
    }
    char *t = s_render(m);
    cr_assert(s_has(t, "hpp_sidecar_decisions_total{model=\"openai/gpt-5\",tier=\"premium\"} 2\n"));
    cr_assert(s_has(t, "{model=\"odd\\\"model\\\\x\",tier=\"\"} 1\n"), "label escaping");
    cr_assert(s_has(t, "hpp_sidecar_decisions_total{model=\"other\",tier=\"\"} "));
    /* At most 3/4 of the table is used: rendering stays bounded. */
    size_t lines = 0;
    for (const char *p = t; (p = strstr(p, "hpp_sidecar_decisions_total{")); p++) {
        lines++;
    }
    cr_assert_leq(lines, SC_METRICS_MAX_DECISIONS * 3 / 4 + 1);
    cr_assert_geq(lines, SC_METRICS_MAX_DECISIONS / 2);
    free(t);
    sc_metrics_destroy(&m);
}

Test(sc_metrics, engine_and_upstream_counters)
{
    sc_metrics_t *m = sc_metrics_new();
    sc_metrics_engine_error(m, SC_ENGERR_TIMEOUT, NULL);
    sc_metrics_engine_error(m, SC_ENGERR_STATUS, "unknown_model");
    sc_metrics_engine_error(m, SC_ENGERR_STATUS, "unknown_model");
    sc_metrics_engine_error(m, SC_ENGERR_STATUS, "garbage");
    sc_metrics_retry(m, SC_RETRY_429);
    sc_metrics_retry(m, SC_RETRY_5XX);
    sc_metrics_retry(m, SC_RETRY_5XX);
    sc_metrics_upstream(m, 200);
    sc_metrics_upstream(m, 0);
    sc_metrics_fail_open(m);
    sc_metrics_inflight(m, 7);
    char *t = s_render(m);
    cr_assert(s_has(t, "hpp_sidecar_engine_errors_total{kind=\"timeout\",code=\"\"} 1\n"));
    cr_assert(
        s_has(t, "hpp_sidecar_engine_errors_total{kind=\"status\",code=\"unknown_model\"} 2\n"));
    cr_assert(s_has(t, "hpp_sidecar_engine_errors_total{kind=\"status\",code=\"internal\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_upstream_retries_total{reason=\"429\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_upstream_retries_total{reason=\"5xx\"} 2\n"));
    cr_assert(s_has(t, "hpp_sidecar_upstream_retries_total{reason=\"402\"} 0\n"));
    cr_assert(s_has(t, "hpp_sidecar_upstream_responses_total{class=\"2xx\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_upstream_responses_total{class=\"error\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_fail_open_total 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_engine_inflight 7\n"));
    /* Every sample line is "name{labels} value" or "name value". */
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            continue;
        }
        char *sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "%s", line);
        char *end = NULL;
        strtod(sp + 1, &end);
        cr_assert_eq(*end, '\0', "value of: %s", line);
    }
    free(t);
    sc_metrics_destroy(&m);
}

Test(sc_metrics, per_engine_series)
{
    sc_metrics_t *m = sc_metrics_new();
    sc_metrics_engine_t e[2];
    memset(e, 0, sizeof e);
    snprintf(e[0].endpoint, sizeof e[0].endpoint, "tcp://127.0.0.1:5555");
    e[0].up = true;
    e[0].calls = 12;
    e[0].resends = 3;
    e[0].policy_known = true;
    e[0].policy_version = 4;
    snprintf(e[0].policy_hash, sizeof e[0].policy_hash, "ab12");
    snprintf(e[1].endpoint, sizeof e[1].endpoint, "ipc:///tmp/\"x\"");
    e[1].policy_known = true; /* but down: no policy series */
    sc_metrics_engines(m, e, 2, 5);
    char *t = s_render(m);
    cr_assert(s_has(t, "hpp_sidecar_engine_up{engine=\"tcp://127.0.0.1:5555\"} 1\n"), "%s", t);
    cr_assert(s_has(t, "hpp_sidecar_engine_up{engine=\"ipc:///tmp/\\\"x\\\"\"} 0\n"));
    cr_assert(s_has(t, "hpp_sidecar_engine_calls_total{engine=\"tcp://127.0.0.1:5555\"} 12\n"));
    cr_assert(s_has(t, "hpp_sidecar_engine_resends_total{engine=\"tcp://127.0.0.1:5555\"} 3\n"));
    cr_assert(s_has(t, "hpp_sidecar_engine_policy_info{engine=\"tcp://127.0.0.1:5555\",hash="
                       "\"ab12\",version=\"4\"} 1\n"));
    cr_assert_not(s_has(t, "hpp_sidecar_engine_policy_info{engine=\"ipc"));
    cr_assert(s_has(t, "hpp_sidecar_engine_policy_disagreements_total 5\n"));
    free(t);
    sc_metrics_destroy(&m);
}

/* Workers: /metrics renders the sum of every worker's table. */
Test(sc_metrics, merge_sums_workers)
{
    sc_metrics_t *a = sc_metrics_new(), *b = sc_metrics_new(), *sum = sc_metrics_new();
    sc_metrics_request(a, SC_ROUTE_ROUTE, 200, 0.0002);
    sc_metrics_request(b, SC_ROUTE_ROUTE, 200, 0.003);
    sc_metrics_request(b, SC_ROUTE_HEALTH, 503, 0.001);
    sc_metrics_decision(a, "m/x", 3, "cheap", 5);
    sc_metrics_decision(b, "m/x", 3, "cheap", 5);
    sc_metrics_decision(b, "m/y", 3, "", 0);
    sc_metrics_connections(a, 3);
    sc_metrics_connections(b, 4);
    sc_metrics_engine_error(b, SC_ENGERR_STATUS, "unknown_model");
    sc_metrics_merge(sum, a);
    sc_metrics_merge(sum, b);
    uint64_t per[2] = {sc_metrics_requests_total(a), sc_metrics_requests_total(b)};
    cr_assert_eq(per[0], 1);
    cr_assert_eq(per[1], 2);
    sc_metrics_workers(sum, per, 2);
    char *t = s_render(sum);
    cr_assert(s_has(t, "hpp_sidecar_requests_total{route=\"/v1/route\",status=\"200\"} 2\n"), "%s",
              t);
    cr_assert(s_has(t, "hpp_sidecar_requests_total{route=\"/healthz\",status=\"503\"} 1\n"));
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"0.00025\"} 1\n"));
    cr_assert(s_has(t, "_bucket{route=\"/v1/route\",le=\"0.005\"} 2\n"));
    cr_assert(s_has(t, "hpp_sidecar_decisions_total{model=\"m/x\",tier=\"cheap\"} 2\n"), "%s", t);
    cr_assert(s_has(t, "hpp_sidecar_decisions_total{model=\"m/y\",tier=\"\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_connections_open 7\n"));
    cr_assert(
        s_has(t, "hpp_sidecar_engine_errors_total{kind=\"status\",code=\"unknown_model\"} 1\n"),
        "%s", t);
    cr_assert(s_has(t, "hpp_sidecar_workers 2\n"));
    cr_assert(s_has(t, "hpp_sidecar_worker_requests_total{worker=\"0\"} 1\n"));
    cr_assert(s_has(t, "hpp_sidecar_worker_requests_total{worker=\"1\"} 2\n"));
    free(t);
    /* A table rendered alone has no worker series. */
    t = s_render(a);
    cr_assert_null(strstr(t, "hpp_sidecar_workers"));
    free(t);
    sc_metrics_destroy(&a);
    sc_metrics_destroy(&b);
    sc_metrics_destroy(&sum);
}
