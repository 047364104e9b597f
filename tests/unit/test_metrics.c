/* test_metrics.c - the engine's metrics (eng_metrics.h) and the process
 * metrics both daemons expose (hpp_procstats.h): the rule table and its
 * bound, counting without allocation, the exposition's text, the
 * --metrics-listen address form and the /proc/self/stat parser. The HTTP
 * side runs against a real engine in tests/integration/metrics.sh. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_metrics.h"
#include "hpp_procstats.h"
#include "policy_fixture.h"

#include "../alloc_count.h"

static const char s_catalog[] =
    "{\"data\":[{\"id\":\"a/m\",\"provider\":\"a\",\"pricing\":{\"input\":1,\"output\":2}}]}";

/* "route rN { tier t }" for N in [first, first + n): a policy of n rules. */
static char *s_policy_text(int first, int n)
{
    size_t cap = 64 + (size_t)n * 80;
    char *src = malloc(cap);
    cr_assert_not_null(src);
    size_t len = (size_t)snprintf(src, cap, "tier t\n");
    for (int i = first; i < first + n; i++) {
        len += (size_t)snprintf(src + len, cap - len,
                                "route r%d when prompt_tokens > %d { tier t }\n", i, i);
    }
    snprintf(src + len, cap - len, "route last { tier t }\n");
    return src;
}

/* The rendered text for empty stats. */
static char *s_render(const eng_metrics_t *m)
{
    proto_stats_t st;
    memset(&st, 0, sizeof st);
    st.policy_hash = "ab\"c";
    size_t len = 0;
    char *text = eng_metrics_render(m, &st, &len);
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), len);
    return text;
}

Test(metrics, decisions_are_counted_by_rule_across_threads)
{
    eng_catalog_t *cat = fixture_catalog(s_catalog);
    char *src = s_policy_text(0, 3);
    eng_policy_t *pol = fixture_policy(src, cat);
    cr_assert_not_null(pol);
    eng_metrics_t *m = eng_metrics_new(2, NULL);
    cr_assert_not_null(m);
    eng_metrics_add_rules(m, pol);
    eng_metrics_decision(m, 0, 1, "r1");
    eng_metrics_decision(m, 1, 1, "r1");
    eng_metrics_decision(m, 1, 1, "r1");
    eng_metrics_decision(m, 0, 1, "direct");
    eng_metrics_decision(m, 0, 1, "not-a-rule"); /* never named: other */
    eng_metrics_decision(m, 2, 1, "r1");         /* no such thread: ignored */
    eng_metrics_decision(NULL, 0, 1, "r1");      /* metrics off */
    char *text = s_render(m);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"r1\"} 3\n"), "%s", text);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"r0\"} 0\n"));
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"last\"} 0\n"));
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"direct\"} 1\n"));
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"other\"} 1\n"));
    cr_expect(strstr(text, "# TYPE hpp_engine_decisions_total counter\n"));
    /* Label values are escaped. */
    cr_expect(strstr(text, "hpp_engine_policy_info{version=\"0\",hash=\"ab\\\"c\"} 1\n"), "%s",
              text);
    cr_expect(strstr(text, "hpp_engine_build_info{version=\"" HPP_VERSION "\",protocol=\"1\""));
    cr_expect(strstr(text, "hpp_engine_errors_total{code=\"no_candidate\"} 0\n"));
    cr_expect(strstr(text, "hpp_engine_requests_total{op=\"route\"} 0\n"));
    cr_expect(strstr(text, "\nprocess_resident_memory_bytes "));
    free(text);
    eng_metrics_destroy(&m);
    eng_metrics_destroy(&m); /* idempotent */
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    free(src);
}

/* A thread remembers a name by its pointer and snapshot version: a new
 * snapshot may hold another name at the same address, and must count it. */
Test(metrics, a_reused_address_under_a_new_version_is_looked_up_again)
{
    eng_catalog_t *cat = fixture_catalog(s_catalog);
    char *src = s_policy_text(0, 3);
    eng_policy_t *pol = fixture_policy(src, cat);
    cr_assert_not_null(pol);
    eng_metrics_t *m = eng_metrics_new(1, NULL);
    eng_metrics_add_rules(m, pol);
    char name[8];
    strcpy(name, "r1");
    eng_metrics_decision(m, 0, 1, name);
    eng_metrics_decision(m, 0, 1, name);
    strcpy(name, "r2");
    eng_metrics_decision(m, 0, 2, name);
    char *text = s_render(m);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"r1\"} 2\n"), "%s", text);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"r2\"} 1\n"), "%s", text);
    free(text);
    eng_metrics_destroy(&m);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    free(src);
}

/* Rule names only accumulate (a reload may rename every rule), so the table
 * is bounded: names past it count as "other" and the exposition stays
 * bounded too. */
Test(metrics, the_rule_table_is_bounded)
{
    eng_catalog_t *cat = fixture_catalog(s_catalog);
    eng_metrics_t *m = eng_metrics_new(1, NULL);
    cr_assert_not_null(m);
    for (int p = 0; p < 3; p++) {
        char *src = s_policy_text(p * 900, 900);
        eng_policy_t *pol = fixture_policy(src, cat);
        cr_assert_not_null(pol);
        eng_metrics_add_rules(m, pol);
        eng_metrics_add_rules(m, pol); /* again: nothing new */
        eng_policy_destroy(&pol);
        free(src);
    }
    eng_metrics_decision(m, 0, 1, "r0");
    eng_metrics_decision(m, 0, 1, "r2699"); /* the last policy's: past the table */
    char *text = s_render(m);
    size_t series = 0;
    for (const char *p = text; (p = strstr(p, "\nhpp_engine_decisions_total{")); p++) {
        series++;
    }
    cr_expect_eq(series, ENG_METRICS_MAX_RULES * 3 / 4 + 1, "%zu series", series);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"r0\"} 1\n"));
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"other\"} 1\n"));
    free(text);
    eng_metrics_destroy(&m);
    eng_catalog_destroy(&cat);
}

/* Counting is on the decision path: no allocation, ever. */
Test(metrics, counting_a_decision_allocates_nothing)
{
    if (!alloc_count_available()) {
        cr_skip_test("allocation counting is off under the sanitizers");
    }
    eng_catalog_t *cat = fixture_catalog(s_catalog);
    char *src = s_policy_text(0, 50);
    eng_policy_t *pol = fixture_policy(src, cat);
    cr_assert_not_null(pol);
    eng_metrics_t *m = eng_metrics_new(4, NULL);
    eng_metrics_add_rules(m, pol);
    static const char *const names[] = {"r7", "last", "free", "nope", ""};
    alloc_count_start();
    for (int i = 0; i < 1000; i++) {
        eng_metrics_decision(m, (size_t)i % 4, 1, names[i % 5]);
    }
    unsigned long n = alloc_count_stop();
    cr_expect_eq(n, 0, "%lu allocations", n);
    char *text = s_render(m);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"r7\"} 200\n"), "%s", text);
    cr_expect(strstr(text, "hpp_engine_decisions_total{rule=\"other\"} 400\n"));
    free(text);
    eng_metrics_destroy(&m);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    free(src);
}

Test(metrics, listen_addresses)
{
    static const struct {
        const char *in, *host, *port;
    } good[] = {
        {"127.0.0.1:9464", "127.0.0.1", "9464"},
        {"localhost:0", "localhost", "0"},
        {"[::1]:65535", "::1", "65535"},
    };
    char host[64], port[8], why[128];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert_eq(eng_metrics_parse_addr(good[i].in, host, sizeof host, port, sizeof port, why,
                                            sizeof why),
                     0, "%s: %s", good[i].in, why);
        cr_expect_str_eq(host, good[i].host);
        cr_expect_str_eq(port, good[i].port);
    }
    static const char *const bad[] = {
        "9464", ":9464",    "127.0.0.1", "127.0.0.1:", "h:65536", "h:12a",
        "h:-1", "::1:9464", "h:999999",  "[::1]9464",  ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        cr_expect_neq(
            eng_metrics_parse_addr(bad[i], host, sizeof host, port, sizeof port, why, sizeof why),
            0, "'%s' accepted", bad[i]);
        cr_expect_neq(why[0], '\0', "'%s': no reason", bad[i]);
    }
}

Test(procstats, stat_line_with_an_awkward_command_name)
{
    /* comm "a) (b c" : fields after the last ')' only. utime 150, stime 50,
     * threads 7, starttime 1000, vsize 4096000, rss 10 pages. */
    const char *line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 7 0 "
                       "1000 4096000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
    hpp_procstats_t ps;
    memset(&ps, 0, sizeof ps);
    cr_assert_eq(hpp_procstats_parse_stat(line, 100, 4096, 1700000000.0, &ps), 0);
    cr_expect(ps.has_stat);
    cr_expect_float_eq(ps.cpu_seconds, 2.0, 1e-9);
    cr_expect_eq(ps.threads, 7);
    cr_expect_float_eq(ps.start_time, 1700000010.0, 1e-6);
    cr_expect_eq(ps.virtual_bytes, 4096000);
    cr_expect_eq(ps.resident_bytes, 40960);
    static const char *const bad[] = {"", "no paren", "1 (x) S 1 2", "1 (x)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&ps, 0, sizeof ps);
        cr_expect_neq(hpp_procstats_parse_stat(bad[i], 100, 4096, 0, &ps), 0, "'%s'", bad[i]);
        cr_expect(!ps.has_stat);
    }
}

Test(procstats, this_process)
{
    hpp_procstats_t ps;
    cr_assert_eq(hpp_procstats_read(&ps), 0);
    cr_expect(ps.resident_bytes > 0);
    cr_expect(ps.virtual_bytes >= ps.resident_bytes);
    cr_expect(ps.has_fds && ps.open_fds >= 3, "%llu fds", (unsigned long long)ps.open_fds);
    cr_expect(ps.threads >= 1);
    double now = (double)time(NULL);
    cr_expect(ps.start_time > now - 3600 && ps.start_time <= now + 1, "start %f, now %f",
              ps.start_time, now);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    hpp_procstats_write(fp, &ps);
    hpp_metrics_label(fp, "q\"b\\n\nx");
    fclose(fp);
    static const char *const want[] = {
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ",
        "# TYPE process_resident_memory_bytes gauge\n",
        "# TYPE process_virtual_memory_bytes gauge\n",
        "# TYPE process_open_fds gauge\n",
        "# TYPE process_start_time_seconds gauge\n",
        "q\\\"b\\\\n\\nx",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_expect(strstr(buf, want[i]), "missing %s in\n%s", want[i], buf);
    }
    free(buf);
}

/* The request line, as the server reads it: single spaces, HTTP/1.x, GET
 * or HEAD of /metrics (a query ignored). The old sscanf reading took
 * "GET/metrics HTTP/1.1" and tabs for spaces. */
Test(metrics, request_line)
{
    static const struct {
        const char *in;
        int want;
        bool head;
    } cases[] = {
        {"GET /metrics HTTP/1.1\r\n\r\n", 200, false},
        {"HEAD /metrics HTTP/1.0\n\n", 200, true},
        {"GET /metrics?name[]=x HTTP/1.1\r\n", 200, false},
        {"GET / HTTP/1.1\r\n", 404, false},
        {"GET /metricsx HTTP/1.1\r\n", 404, false},
        {"POST /metrics HTTP/1.1\r\n", 405, false},
        {"GET/metrics HTTP/1.1\r\n", 400, false},
        {"GET  /metrics HTTP/1.1\r\n", 400, false},
        {"GET\t/metrics HTTP/1.1\r\n", 400, false},
        {"GET /metrics HTTP/2.0\r\n", 400, false},
        {"GET /metrics HTTP/1.1", 400, false},
        {"GET /metrics HTTP/1.1 \r\n", 400, false},
        {"", 400, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool head = false;
        int got = eng_metrics_request(cases[i].in, strlen(cases[i].in), &head);
        cr_assert_eq(got, cases[i].want, "'%s': %d", cases[i].in, got);
        cr_assert_eq(head, cases[i].head, "'%s'", cases[i].in);
    }
}
