/* test_sc_usage.c - the usage of upstream answers (sidecar/sc_usage.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_usage.h"

static oai_jdoc_t *s_doc;
static sc_sse_t *s_sse;
static sc_usage_t s_u;

static void s_setup(void)
{
    s_doc = oai_jdoc_new();
    s_sse = calloc(1, sizeof *s_sse);
    cr_assert(s_doc && s_sse);
    sc_sse_reset(s_sse);
    sc_usage_init(&s_u);
}

static void s_teardown(void)
{
    oai_jdoc_destroy(&s_doc);
    free(s_sse);
}

TestSuite(sc_usage, .init = s_setup, .fini = s_teardown);

static bool s_read(const char *body)
{
    return sc_usage_read(s_doc, body, strlen(body), &s_u);
}

Test(sc_usage, reads_openai_usage_with_details_and_cost)
{
    cr_assert(s_read("{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"hi\"}}],"
                     "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":40,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":100},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":12},\"cost\":0.00125}}"));
    cr_assert_eq(s_u.prompt, 120);
    cr_assert_eq(s_u.completion, 40);
    cr_assert_eq(s_u.cached, 100);
    cr_assert_eq(s_u.reasoning, 12);
    cr_assert_float_eq(s_u.cost_usd, 0.00125, 1e-12);
}

Test(sc_usage, leaves_unset_what_is_absent_wrong_or_inconsistent)
{
    cr_assert(s_read("{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":\"2\","
                     "\"prompt_tokens_details\":{\"cached_tokens\":9},\"cost\":-1}}"));
    cr_assert_eq(s_u.prompt, 5);
    cr_assert_eq(s_u.completion, -1);
    cr_assert_eq(s_u.cached, -1, "cached over prompt is dropped");
    cr_assert_eq(s_u.reasoning, -1);
    cr_assert(s_u.cost_usd < 0);
    sc_usage_init(&s_u);
    cr_assert_not(s_read("{\"usage\":null}"));
    cr_assert_not(s_read("{\"usage\":{\"prompt_tokens\":1}"), "not JSON");
    cr_assert_not(s_read("{\"usage\":{\"prompt_tokens\":1},\"usage\":{}}"), "duplicate key");
    cr_assert_not(s_read("not json"));
    cr_assert_not(sc_usage_has(&s_u));
}

static bool s_feed(const char *text)
{
    return sc_sse_feed(s_sse, s_doc, text, strlen(text), &s_u);
}

Test(sc_usage, stream_first_token_and_final_usage_across_split_chunks)
{
    cr_assert_not(
        s_feed("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],"
               "\"usage\":null}\n\n"));
    cr_assert_not(s_sse->first);
    cr_assert_not(s_feed(": keep-alive comment\r\n\r\ndata: {\"choices\":[{\"del"));
    cr_assert(s_feed("ta\":{\"content\":\"Hi\"}}]}\n\n"), "the first token");
    cr_assert_not(s_feed("data: {\"choices\":[{\"delta\":{\"content\":\" there\"}}]}\n\n"));
    cr_assert_not(sc_usage_has(&s_u));
    cr_assert_not(s_feed("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,"
                         "\"completion_tokens\":3,\"cost\":2e-5}}\r\n\r\ndata: [DONE]\n\n"));
    cr_assert_eq(s_u.prompt, 7);
    cr_assert_eq(s_u.completion, 3);
    cr_assert_float_eq(s_u.cost_usd, 2e-5, 1e-15);
}

Test(sc_usage, stream_tool_calls_and_reasoning_count_as_tokens)
{
    cr_assert(s_feed("data: {\"choices\":[{\"delta\":{\"reasoning\":\"hmm\"}}]}\n"));
    sc_sse_reset(s_sse);
    cr_assert(s_feed("data:{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n"));
}

Test(sc_usage, stream_line_over_the_window_is_skipped_and_the_next_read)
{
    size_t big = SC_SSE_LINE_MAX + 100;
    char *line = malloc(big + 64);
    cr_assert_not_null(line);
    int n = snprintf(line, 64, "data: {\"usage\":{\"prompt_tokens\":1},\"pad\":\"");
    memset(line + n, 'x', big - (size_t)n);
    memcpy(line + big, "\"}\n", 4);
    /* In pieces, as a socket delivers it. */
    for (size_t at = 0; at < big + 3; at += 1000) {
        size_t k = big + 3 - at < 1000 ? big + 3 - at : 1000;
        sc_sse_feed(s_sse, s_doc, line + at, k, &s_u);
    }
    free(line);
    cr_assert_not(sc_usage_has(&s_u), "an oversized event is not parsed");
    s_feed("data: {\"choices\":[],\"usage\":{\"completion_tokens\":4}}\n");
    cr_assert_eq(s_u.completion, 4);
}
