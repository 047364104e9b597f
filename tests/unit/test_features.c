/* test_features.c - OpenAI body and X-HPP-* headers -> routing features,
 * the forwarded body, error shapes, and the token estimator's calibration. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oai_error.h"
#include "oai_request.h"
#include "oai_tokens.h"

static oai_extract_t *s_x;
static hpp_features_t s_f;
static oai_error_t s_err;

static void s_setup(void)
{
    s_x = oai_extract_new();
    cr_assert_not_null(s_x);
    oai_extract_reset(s_x, &s_f);
    memset(&s_err, 0, sizeof s_err);
}

static void s_teardown(void)
{
    oai_extract_destroy(&s_x);
    oai_extract_destroy(&s_x); /* idempotent */
    cr_assert_null(s_x);
}

TestSuite(features, .init = s_setup, .fini = s_teardown);

static const char *s_sent; /* the last body given to oai_extract_body */

static int s_body(const char *json)
{
    s_sent = json;
    return oai_extract_body(s_x, json, strlen(json), &s_f, &s_err);
}

/* Forwards the last body sent, as the proxy does with the request's bytes. */
static char *s_forward(const char *model, size_t *len)
{
    return oai_extract_forward(s_x, s_sent, s_sent ? strlen(s_sent) : 0, model, len);
}

static void s_ok(const char *json)
{
    int rc = s_body(json);
    cr_assert_eq(rc, 0, "body rejected: %s (%s)", s_err.message, json);
}

static bool s_eq(hpp_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static bool s_has_hint(const char *h)
{
    for (uint32_t i = 0; i < s_f.nhints; i++) {
        if (s_eq(s_f.hints[i], h)) {
            return true;
        }
    }
    return false;
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you?\"}]"

Test(features, plain_body_fields)
{
    s_ok("{\"model\":\"openai/gpt-5\"," MSG ",\"max_tokens\":300,\"stream\":true}");
    cr_assert(s_eq(s_f.model, "openai/gpt-5"));
    cr_assert_eq(s_f.output_tokens, 300);
    cr_assert(oai_extract_stream(s_x));
    cr_assert(oai_extract_has_body(s_x));
    /* 3 reply + 4 framing + "Hello there, how are you?" (7 real tokens). */
    cr_assert_eq(s_f.prompt_tokens, oai_extract_estimate(s_x));
    cr_assert_geq(s_f.prompt_tokens, 12);
    cr_assert_leq(s_f.prompt_tokens, 16);
    cr_assert(s_eq(s_f.text, "Hello there, how are you?"));
    cr_assert_not(s_f.tools);
    cr_assert_not(s_f.json);
    cr_assert_not(s_f.vision);
    cr_assert_eq(s_f.images, 0);
    cr_assert_not(s_f.has_budget);
    cr_assert_eq(s_f.group.len, 0);
}

Test(features, defaults_without_optional_fields)
{
    s_ok("{" MSG "}");
    cr_assert_eq(s_f.model.len, 0, "no model means hpprouter/auto");
    cr_assert_eq(s_f.output_tokens, -1);
    cr_assert_not(oai_extract_stream(s_x));
}

Test(features, max_completion_tokens_wins_over_max_tokens)
{
    s_ok("{" MSG ",\"max_completion_tokens\":77,\"max_tokens\":5}");
    cr_assert_eq(s_f.output_tokens, 77);
    s_ok("{" MSG ",\"max_tokens\":5,\"max_completion_tokens\":null}");
    cr_assert_eq(s_f.output_tokens, 5);
}

Test(features, content_parts_and_images)
{
    s_ok("{\"messages\":[{\"role\":\"user\",\"content\":["
         "{\"type\":\"text\",\"text\":\"What is in\"},"
         "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/a.png\",\"detail\":\"low\"}},"
         "{\"type\":\"text\",\"text\":\"these pictures?\"},"
         "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}]}");
    cr_assert_eq(s_f.images, 2);
    cr_assert(s_f.vision);
    cr_assert(s_eq(s_f.text, "What is in\nthese pictures?"));
    int64_t text_only = OAI_TOK_REPLY + OAI_TOK_PER_MESSAGE + oai_tok_text("What is in", 10) +
                        oai_tok_text("these pictures?", 15);
    /* Counted per part, rounded per message: within a token of the sum. */
    int64_t images = s_f.prompt_tokens - text_only;
    cr_assert(images >= OAI_TOK_IMAGE_LOW + OAI_TOK_IMAGE_HIGH - 1 &&
                  images <= OAI_TOK_IMAGE_LOW + OAI_TOK_IMAGE_HIGH + 1,
              "image tokens %lld", (long long)images);
}

Test(features, image_url_as_plain_string_and_other_parts)
{
    s_ok("{\"messages\":[{\"role\":\"user\",\"content\":["
         "{\"type\":\"image_url\",\"image_url\":\"https://x/b.jpg\"},"
         "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AA\",\"format\":\"wav\"}},"
         "{\"type\":\"file\",\"file\":{\"file_id\":\"f1\"}}]},"
         "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"No.\"}]}]}");
    cr_assert_eq(s_f.images, 1);
    cr_assert(s_f.vision);
}

Test(features, tools_and_functions)
{
    s_ok("{" MSG "}");
    int64_t base = s_f.prompt_tokens;
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
         "\"description\":\"Weather for a city\",\"parameters\":{\"type\":\"object\","
         "\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}");
    cr_assert(s_f.tools);
    cr_assert_gt(s_f.prompt_tokens, base + OAI_TOK_PER_TOOL, "tool schema counts as prompt");
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"functions\":[{\"name\":\"f\",\"parameters\":{}}]}");
    cr_assert(s_f.tools);
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"tools\":[]}");
    cr_assert_not(s_f.tools, "an empty tools array needs no tool support");
}

Test(features, assistant_tool_calls_count)
{
    s_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
         "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
         "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
         "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
         "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"18C sunny\"}]}");
    cr_assert_gt(s_f.prompt_tokens, 3 + 3 * 4 + 10);
}

Test(features, response_format)
{
    s_ok("{" MSG ",\"response_format\":{\"type\":\"json_object\"}}");
    cr_assert(s_f.json);
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
         "\"schema\":{\"type\":\"object\"}}}}");
    cr_assert(s_f.json);
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"response_format\":{\"type\":\"text\"}}");
    cr_assert_not(s_f.json);
}

Test(features, metadata_becomes_meta)
{
    s_ok("{" MSG ",\"metadata\":{\"team\":\"search\",\"env\":\"prod\"}}");
    cr_assert_eq(s_f.nmeta, 2);
    cr_assert(s_eq(s_f.meta_keys[0], "team"));
    cr_assert(s_eq(s_f.meta_vals[0], "search"));
    cr_assert(s_eq(s_f.meta_keys[1], "env"));
    cr_assert(s_eq(s_f.meta_vals[1], "prod"));
}

Test(features, hpp_object)
{
    s_ok("{" MSG ",\"max_tokens\":10,\"hpp\":{\"task\":\"code, math\",\"budget_usd\":0.05,"
         "\"group\":\"team-a\",\"prompt_tokens\":1234,\"output_tokens\":99}}");
    cr_assert_eq(s_f.nhints, 2);
    cr_assert(s_has_hint("code"));
    cr_assert(s_has_hint("math"));
    cr_assert(s_f.has_budget);
    cr_assert_float_eq(s_f.budget_usd, 0.05, 1e-12);
    cr_assert(s_eq(s_f.group, "team-a"));
    cr_assert_eq(s_f.prompt_tokens, 1234, "override replaces the estimate");
    cr_assert_neq(oai_extract_estimate(s_x), 1234);
    cr_assert_eq(s_f.output_tokens, 99, "override replaces max_tokens");
}

/* No standard field counts cache writes or reasoning on top of max_tokens:
 * only the hpp object sets them. */
Test(features, hpp_cache_write_and_reasoning)
{
    s_ok("{" MSG ",\"max_completion_tokens\":500,\"reasoning_effort\":\"high\","
         "\"hpp\":{\"prompt_tokens\":1000,\"cache_write_tokens\":800,"
         "\"reasoning_tokens\":2000}}");
    cr_assert_eq(s_f.cache_write_tokens, 800);
    cr_assert_eq(s_f.reasoning_tokens, 2000);
    cr_assert_eq(s_f.output_tokens, 500);
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"reasoning_effort\":\"high\"}");
    cr_assert_eq(s_f.reasoning_tokens, 0, "an effort is not a count");
    oai_extract_reset(s_x, &s_f);
    cr_assert_eq(s_body("{" MSG ",\"hpp\":{\"prompt_tokens\":100,\"cache_write_tokens\":101}}"),
                 -1);
    cr_assert_str_eq(s_err.param, "hpp.cache_write_tokens");
    cr_assert(strstr(s_err.message, "101 > 100"), "%s", s_err.message);
}

Test(features, hpp_task_array_and_dedup)
{
    s_ok("{" MSG ",\"hpp\":{\"task\":[\"solidity\",\"code\",\"solidity\"],\"budget_usd\":2}}");
    cr_assert_eq(s_f.nhints, 2);
    cr_assert(s_has_hint("solidity"));
    cr_assert(s_has_hint("code"));
    cr_assert_float_eq(s_f.budget_usd, 2.0, 1e-12);
}

Test(features, headers_merge_and_override)
{
    s_ok("{" MSG ",\"hpp\":{\"task\":\"code\",\"budget_usd\":1,\"group\":\"body\"}}");
    cr_assert_eq(oai_extract_header(s_x, "x-hpp-task", " math ,code,, vision ", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Budget-USD", "0.25", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-Hpp-Group", "gold", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "Content-Type", "application/json", &s_f, &s_err), 0);
    cr_assert_eq(s_f.nhints, 3);
    cr_assert(s_has_hint("code") && s_has_hint("math") && s_has_hint("vision"));
    cr_assert_float_eq(s_f.budget_usd, 0.25, 1e-12);
    cr_assert(s_eq(s_f.group, "gold"));
}

Test(features, header_before_body_still_wins)
{
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Budget-USD", "3", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Group", "hdr", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Prompt-Tokens", "500", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Output-Tokens", "7", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Model", "anthropic/claude-x:floor", &s_f, &s_err),
                 0);
    s_ok("{\"model\":\"openai/gpt-5\"," MSG ",\"max_tokens\":40,\"hpp\":{\"budget_usd\":9,"
         "\"group\":\"body\",\"prompt_tokens\":1,\"output_tokens\":2}}");
    cr_assert_float_eq(s_f.budget_usd, 3.0, 1e-12);
    cr_assert(s_eq(s_f.group, "hdr"));
    cr_assert_eq(s_f.prompt_tokens, 500);
    cr_assert_eq(s_f.output_tokens, 7);
    cr_assert(s_eq(s_f.model, "anthropic/claude-x:floor"));
}

Test(features, headers_without_body)
{
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Task", "code", &s_f, &s_err), 0);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Prompt-Tokens", "2000", &s_f, &s_err), 0);
    cr_assert_not(oai_extract_has_body(s_x));
    cr_assert_eq(s_f.nhints, 1);
    cr_assert_eq(s_f.prompt_tokens, 2000);
    size_t len = 1;
    cr_assert_null(s_forward("m", &len));
}

Test(features, bad_headers)
{
    static const struct {
        const char *name, *value;
    } cases[] = {
        {"X-HPP-Budget-USD", "abc"},     {"X-HPP-Budget-USD", "-1"},
        {"X-HPP-Budget-USD", "1e3"},     {"X-HPP-Budget-USD", "inf"},
        {"X-HPP-Budget-USD", ""},        {"X-HPP-Budget-USD", "1.2.3"},
        {"X-HPP-Budget-USD", "2000000"}, {"X-HPP-Task", "bad hint"},
        {"X-HPP-Task", "c{d}"},          {"X-HPP-Group", ""},
        {"X-HPP-Group", "a b"},          {"X-HPP-Model", "has space"},
        {"X-HPP-Prompt-Tokens", "-5"},   {"X-HPP-Prompt-Tokens", "999999999999"},
        {"X-HPP-Output-Tokens", "12x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        oai_extract_reset(s_x, &s_f);
        memset(&s_err, 0, sizeof s_err);
        int rc = oai_extract_header(s_x, cases[i].name, cases[i].value, &s_f, &s_err);
        cr_expect_eq(rc, -1, "%s: %s accepted", cases[i].name, cases[i].value);
        cr_expect_eq(s_err.status, 400, "%s: %s", cases[i].name, cases[i].value);
        cr_expect_str_eq(s_err.param, cases[i].name);
        cr_expect_neq(strstr(s_err.message, cases[i].name), NULL, "message names the header");
    }
}

Test(features, too_many_hints)
{
    char hdr[256] = "";
    for (int i = 0; i < HPP_MAX_HINTS; i++) {
        char h[16];
        snprintf(h, sizeof h, "h%d,", i);
        strcat(hdr, h);
    }
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Task", hdr, &s_f, &s_err), 0);
    cr_assert_eq(s_f.nhints, HPP_MAX_HINTS);
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Task", "h3", &s_f, &s_err), 0, "dup is fine");
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Task", "one-more", &s_f, &s_err), -1);
    cr_assert_str_eq(s_err.code, "too_many_hints");
}

Test(features, header_space_is_bounded)
{
    char big[HPP_MAX_HINT_LEN + 1];
    memset(big, 'a', HPP_MAX_HINT_LEN);
    big[HPP_MAX_HINT_LEN] = '\0';
    int rc = 0;
    /* Each distinct hint keeps 64 bytes; the total space runs out before 16 hints... */
    for (int i = 0; i < 40 && rc == 0; i++) {
        big[0] = (char)('a' + i % 26);
        big[1] = (char)('a' + i / 26);
        rc = oai_extract_header(s_x, "X-HPP-Task", big, &s_f, &s_err);
    }
    cr_assert_eq(rc, -1, "either the hint count or the header space must stop it");
    cr_assert_eq(s_err.status, 400);
}

Test(features, forward_rewrites_model_and_drops_hpp)
{
    s_ok("{\"model\":\"hpprouter/auto\",\"temperature\":0.7,\"n\":1,\"user\":\"u1\"," MSG
         ",\"hpp\":{\"task\":\"code\"},\"stream\":false}");
    size_t len = 0;
    char *out = s_forward("openai/gpt-5-mini", &len);
    cr_assert_not_null(out);
    cr_assert_eq(len, strlen(out));
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "forwarded body is JSON: %s", out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "model")), "openai/gpt-5-mini");
    cr_assert_null(json_object_get(j, "hpp"));
    cr_assert_float_eq(json_real_value(json_object_get(j, "temperature")), 0.7, 0);
    cr_assert_not_null(strstr(out, "\"temperature\":0.7,"), "numbers print as sent: %s", out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "user")), "u1");
    cr_assert_eq(json_array_size(json_object_get(j, "messages")), 1);
    cr_assert(json_is_false(json_object_get(j, "stream")));
    json_decref(j);
    free(out);
    /* Features still point at live strings after forwarding. */
    cr_assert(s_eq(s_f.model, "hpprouter/auto"));
    cr_assert(s_has_hint("code"));
    /* Without a model the original is kept. */
    out = s_forward(NULL, &len);
    cr_assert_not_null(strstr(out, "\"model\":\"hpprouter/auto\""));
    cr_assert_null(strstr(out, "\"hpp\""));
    free(out);
}

/* The forwarded body is the received one with two splices; every other byte
 * (spacing, number spelling, key order) stays as the client sent it. */
static const struct {
    const char *body;  /* what the client sent */
    const char *model; /* resolved model (NULL: keep) */
    const char *want;  /* what the upstream must get */
} s_splices[] = {
    {"{\"model\":\"a\"," MSG "}", "b/c", "{\"model\":\"b/c\"," MSG "}"},
    {"{ \"model\" : \"a\" ,\n " MSG " }", "b", "{ \"model\" : \"b\" ,\n " MSG " }"},
    {"{\"model\":\"a\"," MSG ",\"hpp\":{\"task\":\"x\"}}", "b", "{\"model\":\"b\"," MSG "}"},
    {"{\"hpp\":{\"task\":\"x\"}," MSG ",\"model\":\"a\"}", "b", "{" MSG ",\"model\":\"b\"}"},
    {"{\"model\":\"a\", \"hpp\" : {\"task\":[\"x\",\"y\"]} ,\"n\":1e2," MSG "}", "b",
     "{\"model\":\"b\" ,\"n\":1e2," MSG "}"},
    {"{" MSG "}", "b", "{\"model\":\"b\"," MSG "}"},
    {"{" MSG ",\"hpp\":{}}", "b", "{\"model\":\"b\"," MSG "}"},
    {"{\"hpp\":{}," MSG "}", "b", "{\"model\":\"b\"," MSG "}"},
    {"{\"model\":\"a\",\"temperature\":0.70," MSG "}", NULL,
     "{\"model\":\"a\",\"temperature\":0.70," MSG "}"},
    {"{\"model\":\"a\"," MSG "}", "q\"uote", "{\"model\":\"q\\\"uote\"," MSG "}"},
    {"{\"m\\u006fdel\":\"a\"," MSG "}", "b", "{\"m\\u006fdel\":\"b\"," MSG "}"},
    /* OpenRouter's `models` list is cut too: the engine decided among it. */
    {"{\"model\":\"a\"," MSG ",\"models\":[\"x/y\",\"z/w\"]}", "b", "{\"model\":\"b\"," MSG "}"},
    {"{\"hpp\":{},\"models\":[\"x/y\"]," MSG "}", "b", "{\"model\":\"b\"," MSG "}"},
    {"{\"models\":[\"x/y\"]," MSG ",\"hpp\":{\"task\":\"x\"},\"model\":\"a\"}", "b",
     "{" MSG ",\"model\":\"b\"}"},
    {"{\"model\":\"a\",\"hpp\":{}, \"models\" : [\"x/y\"]," MSG "}", "b",
     "{\"model\":\"b\"," MSG "}"},
    {"{\"model\":\"a\",\"models\":[\"x/y\"],\"n\":1,\"hpp\":{}," MSG "}", NULL,
     "{\"model\":\"a\",\"n\":1," MSG "}"},
    /* And the `provider` object: the engine chose the provider. Three
     * separate runs of cut members plus the model are four edits. */
    {"{\"provider\":{\"order\":[\"groq\"]},\"model\":\"a\"," MSG "}", "b",
     "{\"model\":\"b\"," MSG "}"},
    {"{\"hpp\":{},\"n\":1,\"models\":[\"x/y\"],\"t\":2,\"provider\":{},\"u\":3," MSG "}", "b",
     "{\"model\":\"b\",\"n\":1,\"t\":2,\"u\":3," MSG "}"},
    /* A stream asks for its usage chunk unless the client said either way. */
    {"{\"model\":\"a\",\"stream\":true," MSG "}", "b",
     "{\"model\":\"b\",\"stream\":true,\"stream_options\":{\"include_usage\":true}," MSG "}"},
    {"{" MSG ",\"stream\" : true }", "b",
     "{\"model\":\"b\"," MSG ",\"stream\" : true,\"stream_options\":{\"include_usage\":true} }"},
    {"{\"stream\":true,\"hpp\":{}," MSG "}", "b",
     "{\"model\":\"b\",\"stream\":true,\"stream_options\":{\"include_usage\":true}," MSG "}"},
    {"{\"model\":\"a\"," MSG ",\"stream\":true,\"hpp\":{},\"models\":[],\"provider\":{}}", "b",
     "{\"model\":\"b\"," MSG ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}"},
    {"{\"model\":\"a\",\"stream\":true,\"stream_options\":{}," MSG "}", "b",
     "{\"model\":\"b\",\"stream\":true,\"stream_options\":{\"include_usage\":true}," MSG "}"},
    {"{\"model\":\"a\",\"stream\":true,\"stream_options\":{\"x\":1}," MSG "}", "b",
     "{\"model\":\"b\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"x\":1}," MSG
     "}"},
    {"{\"model\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":false}," MSG "}", "b",
     "{\"model\":\"b\",\"stream\":true,\"stream_options\":{\"include_usage\":false}," MSG "}"},
    {"{\"model\":\"a\",\"stream\":false," MSG "}", "b",
     "{\"model\":\"b\",\"stream\":false," MSG "}"},
};

Test(features, forward_splices_exactly)
{
    for (size_t i = 0; i < sizeof s_splices / sizeof s_splices[0]; i++) {
        oai_extract_reset(s_x, &s_f);
        s_ok(s_splices[i].body);
        size_t len = 0;
        char *out = s_forward(s_splices[i].model, &len);
        cr_assert_not_null(out);
        cr_assert_str_eq(out, s_splices[i].want, "case %zu", i);
        cr_assert_eq(len, strlen(out));
        free(out);
        /* Bytes of another length than the parsed body are refused. */
        size_t n = strlen(s_splices[i].body);
        cr_assert_null(oai_extract_forward(s_x, s_splices[i].body, n - 1, NULL, &len));
        cr_assert_null(oai_extract_forward(s_x, NULL, n, NULL, &len));
    }
}

Test(features, forward_adds_model_from_header_only_body)
{
    cr_assert_eq(oai_extract_header(s_x, "X-HPP-Model", "x/y", &s_f, &s_err), 0);
    s_ok("{" MSG ",\"hpp\":{\"group\":\"g\"}}");
    size_t len = 0;
    char *out = s_forward("openai/gpt-5", &len);
    cr_assert_str_eq(out, "{\"model\":\"openai/gpt-5\"," MSG "}");
    free(out);
}

Test(features, text_sample_puts_last_user_first_and_is_bounded)
{
    s_ok("{\"messages\":[{\"role\":\"system\",\"content\":\"SYS\"},"
         "{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"assistant\",\"content\":\"A\"},"
         "{\"role\":\"user\",\"content\":\"LAST\"}]}");
    cr_assert(s_eq(s_f.text, "LAST\nSYS\nfirst\nA"));
    /* A prompt larger than the sample: cut at a UTF-8 boundary. */
    size_t n = OAI_TEXT_MAX + 100;
    char *big = malloc(n * 2 + 128);
    strcpy(big, "{\"messages\":[{\"role\":\"user\",\"content\":\"x");
    char *p = big + strlen(big);
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(p, "\xc3\xa9", 2); /* e acute, two bytes */
        p += 2;
    }
    strcpy(p, "\"}]}");
    oai_extract_reset(s_x, &s_f);
    s_ok(big);
    cr_assert_leq(s_f.text.len, OAI_TEXT_MAX);
    cr_assert_geq(s_f.text.len, OAI_TEXT_MAX - 1);
    /* 'x' then whole 2-byte sequences: the length is odd. */
    cr_assert_eq(s_f.text.len % 2, 1);
    cr_assert_eq((unsigned char)s_f.text.ptr[s_f.text.len - 1], 0xa9);
    free(big);
}

/* Bad bodies: status, code, param. */
static const struct {
    const char *body;  /* request body */
    const char *code;  /* expected error code */
    const char *param; /* expected param, "" for none */
} s_bad[] = {
    {"{\"messages\":[", "invalid_json", ""},
    {"{" MSG ",\"max_tokens\":0}", "invalid_value", "max_tokens"},
    {"{" MSG ",\"max_completion_tokens\":0}", "invalid_value", "max_completion_tokens"},
    {"{" MSG ",\"hpp\":{\"reasoning_tokens\":-5}}", "invalid_value", "hpp.reasoning_tokens"},
    {"{" MSG ",\"hpp\":{\"cache_write_tokens\":\"x\"}}", "invalid_type", "hpp.cache_write_tokens"},
    {"", "invalid_json", ""},
    {"[1,2]", "invalid_json", ""},
    {"{\"model\":\"a\",\"model\":\"b\"," MSG "}", "invalid_json", ""},
    {"{\"model\":\"a\"}", "missing_required_parameter", "messages"},
    {"{\"messages\":{}}", "invalid_type", "messages"},
    {"{\"messages\":[]}", "invalid_value", "messages"},
    {"{\"messages\":[42]}", "invalid_type", "messages[0]"},
    {"{\"messages\":[{\"content\":\"x\"}]}", "missing_required_parameter", "messages[0].role"},
    {"{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "invalid_value",
     "messages[0].role"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "invalid_type", "messages[0].content"},
    {"{\"messages\":[{\"role\":\"user\"}]}", "missing_required_parameter", "messages[0].content"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}", "invalid_value",
     "messages[0].content[0]"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}", "invalid_value",
     "messages[0].content[0]"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[\"hi\"]}]}", "invalid_type",
     "messages[0].content[0]"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}",
     "invalid_type", "messages[0].content[0].text"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
     "missing_required_parameter", "messages[0].content[0].image_url"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
     "{\"url\":\"u\",\"detail\":\"ultra\"}}]}]}",
     "invalid_value", "messages[0].content[0].image_url.detail"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":3}]}", "invalid_type",
     "messages[0].name"},
    /* Paths are rendered only on error: deeper and later positions too. */
    {"{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":"
     "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":4}}]}]}",
     "invalid_type", "messages[1].content[1].image_url.url"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
     "\"content\":null,\"tool_calls\":{}}]}",
     "invalid_type", "messages[1].tool_calls"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\"}]}",
     "missing_required_parameter", "messages[1].content"},
    {"{\"model\":7," MSG "}", "invalid_type", "model"},
    {"{\"model\":\"\"," MSG "}", "invalid_value", "model"},
    {"{\"model\":\"a b\"," MSG "}", "invalid_value", "model"},
    {"{" MSG ",\"max_tokens\":-1}", "invalid_value", "max_tokens"},
    {"{" MSG ",\"max_tokens\":1.5}", "invalid_type", "max_tokens"},
    {"{" MSG ",\"max_completion_tokens\":\"9\"}", "invalid_type", "max_completion_tokens"},
    {"{" MSG ",\"max_tokens\":100000001}", "invalid_value", "max_tokens"},
    {"{" MSG ",\"stream\":\"yes\"}", "invalid_type", "stream"},
    {"{" MSG ",\"tools\":{}}", "invalid_type", "tools"},
    {"{" MSG ",\"tools\":[1]}", "invalid_type", "tools[0]"},
    {"{" MSG ",\"functions\":\"f\"}", "invalid_type", "functions"},
    {"{" MSG ",\"response_format\":\"json\"}", "invalid_type", "response_format"},
    {"{" MSG ",\"response_format\":{\"type\":\"xml\"}}", "invalid_value", "response_format.type"},
    {"{" MSG ",\"metadata\":{\"k\":1}}", "invalid_type", "metadata.k"},
    {"{" MSG ",\"hpp\":[]}", "invalid_type", "hpp"},
    {"{" MSG ",\"hpp\":{\"budget\":1}}", "unknown_parameter", "hpp.budget"},
    {"{" MSG ",\"hpp\":{\"budget_usd\":\"1\"}}", "invalid_type", "hpp.budget_usd"},
    {"{" MSG ",\"hpp\":{\"budget_usd\":-0.5}}", "invalid_value", "hpp.budget_usd"},
    {"{" MSG ",\"hpp\":{\"budget_usd\":1e300}}", "invalid_value", "hpp.budget_usd"},
    {"{" MSG ",\"hpp\":{\"task\":5}}", "invalid_type", "hpp.task"},
    {"{" MSG ",\"hpp\":{\"task\":[\"ok\",7]}}", "invalid_type", "hpp.task[1]"},
    {"{" MSG ",\"hpp\":{\"task\":\"has space\"}}", "invalid_value", "hpp.task"},
    {"{" MSG ",\"hpp\":{\"group\":\"\"}}", "invalid_value", "hpp.group"},
    {"{" MSG ",\"hpp\":{\"prompt_tokens\":-3}}", "invalid_value", "hpp.prompt_tokens"},
    {"{" MSG ",\"hpp\":{\"output_tokens\":true}}", "invalid_type", "hpp.output_tokens"},
    /* OpenRouter's provider object and models array: honoured or refused by name. */
    {"{" MSG ",\"provider\":[]}", "invalid_type", "provider"},
    {"{" MSG ",\"provider\":{\"data_collection\":\"deny\"}}", "unsupported_parameter",
     "provider.data_collection"},
    {"{" MSG ",\"provider\":{\"quantizations\":[\"int8\"]}}", "unsupported_parameter",
     "provider.quantizations"},
    {"{" MSG ",\"provider\":{\"zdr\":true}}", "unsupported_parameter", "provider.zdr"},
    {"{" MSG ",\"provider\":{\"order\":\"openai\"}}", "invalid_type", "provider.order"},
    {"{" MSG ",\"provider\":{\"only\":[\"ok\",3]}}", "invalid_type", "provider.only[1]"},
    {"{" MSG ",\"provider\":{\"ignore\":[\"a b\"]}}", "invalid_value", "provider.ignore[0]"},
    {"{" MSG ",\"provider\":{\"order\":[\"\"]}}", "invalid_value", "provider.order[0]"},
    {"{" MSG ",\"provider\":{\"order\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\","
     "\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}}",
     "invalid_value", "provider.order"},
    {"{" MSG ",\"provider\":{\"allow_fallbacks\":\"no\"}}", "invalid_type",
     "provider.allow_fallbacks"},
    {"{" MSG ",\"provider\":{\"require_parameters\":1}}", "invalid_type",
     "provider.require_parameters"},
    {"{" MSG ",\"provider\":{\"preferred_max_latency\":-1}}", "invalid_value",
     "provider.preferred_max_latency"},
    {"{" MSG ",\"provider\":{\"preferred_min_throughput\":{\"p50\":10}}}", "invalid_type",
     "provider.preferred_min_throughput"},
    {"{" MSG ",\"provider\":{\"sort\":\"fastest\"}}", "invalid_value", "provider.sort"},
    {"{" MSG ",\"provider\":{\"max_price\":{\"prompt\":\"1\"}}}", "invalid_type",
     "provider.max_price.prompt"},
    {"{" MSG ",\"provider\":{\"max_price\":{\"completion\":-1}}}", "invalid_value",
     "provider.max_price.completion"},
    {"{" MSG ",\"provider\":{\"max_price\":{\"tokens\":1}}}", "unknown_parameter",
     "provider.max_price.tokens"},
    {"{" MSG ",\"models\":\"a/b\"}", "invalid_type", "models"},
    {"{" MSG ",\"models\":[\"a/b\",5]}", "invalid_type", "models[1]"},
    {"{" MSG ",\"models\":[\"a b\"]}", "invalid_value", "models[0]"},
};

Test(features, openrouter_provider_and_models)
{
    s_ok("{\"model\":\"openai/gpt-4o\"," MSG ",\"models\":[\"a/x\",\"b/y:free\"],"
         "\"provider\":{\"order\":[\"Azure\",\"openai\"],\"only\":[\"azure\",\"openai\"],"
         "\"ignore\":[\"groq\"],\"allow_fallbacks\":false,\"require_parameters\":true,"
         "\"sort\":\"price\",\"max_price\":{\"prompt\":2.5,\"completion\":10,\"request\":0.01,"
         "\"image\":null}}}");
    cr_assert(s_eq(s_f.model, "openai/gpt-4o"));
    cr_assert_eq(s_f.nmodels, 2);
    cr_assert(s_eq(s_f.models[0], "a/x") && s_eq(s_f.models[1], "b/y:free"));
    cr_assert_eq(s_f.nproviders_order, 2);
    cr_assert(s_eq(s_f.providers_order[0], "Azure") && s_eq(s_f.providers_order[1], "openai"));
    cr_assert_eq(s_f.nproviders_only, 2);
    cr_assert_eq(s_f.nproviders_ignore, 1);
    cr_assert(s_eq(s_f.providers_ignore[0], "groq"));
    cr_assert(s_f.no_fallbacks);
    cr_assert_eq(s_f.sort, HPP_SORT_PRICE);
    cr_assert_eq(s_f.max_price.set, HPP_MAXP_PROMPT | HPP_MAXP_COMPLETION | HPP_MAXP_REQUEST);
    cr_assert_eq(s_f.max_price.prompt, 2500000);      /* $2.5 per 1M = 2.5 pusd per token x 1e6 */
    cr_assert_eq(s_f.max_price.completion, 10000000); /* $10 per 1M */
    cr_assert_eq(s_f.max_price.request, 10000000000); /* $0.01 */
    const char *field = NULL;
    cr_assert_null(hpp_features_check(&s_f, &field), "%s", field);
    /* Defaults: allow_fallbacks true, nothing set; null members are absent. */
    oai_extract_reset(s_x, &s_f);
    s_ok("{" MSG ",\"provider\":{\"allow_fallbacks\":true,\"order\":null},\"models\":null}");
    cr_assert_not(s_f.no_fallbacks);
    cr_assert_eq(s_f.nproviders_order + s_f.nmodels + s_f.max_price.set, 0);
    cr_assert_eq(s_f.sort, HPP_SORT_DEFAULT);
}

Test(features, bad_bodies_are_400_with_param)
{
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        oai_extract_reset(s_x, &s_f);
        memset(&s_err, 0, sizeof s_err);
        int rc = s_body(s_bad[i].body);
        cr_expect_eq(rc, -1, "accepted: %s", s_bad[i].body);
        if (rc != -1) {
            continue;
        }
        cr_expect_eq(s_err.status, 400, "%s", s_bad[i].body);
        cr_expect_str_eq(s_err.code, s_bad[i].code, "%s: %s", s_bad[i].body, s_err.message);
        cr_expect_str_eq(s_err.param, s_bad[i].param, "%s: %s", s_bad[i].body, s_err.message);
        cr_expect_str_eq(s_err.type, "invalid_request_error");
        cr_expect_gt(strlen(s_err.message), 5);
        cr_expect_not(oai_extract_has_body(s_x), "a rejected body is not kept");
    }
}

Test(features, too_many_metadata_pairs)
{
    char body[2048];
    int n = snprintf(body, sizeof body, "{" MSG ",\"metadata\":{");
    for (int i = 0; i <= HPP_MAX_META; i++) {
        n += snprintf(body + n, sizeof body - (size_t)n, "%s\"k%d\":\"v\"", i ? "," : "", i);
    }
    snprintf(body + n, sizeof body - (size_t)n, "}}");
    cr_assert_eq(s_body(body), -1);
    cr_assert_str_eq(s_err.param, "metadata");
}

Test(features, error_json_shape)
{
    oai_error_t e;
    oai_error_set(&e, 413, "body_too_large", NULL, "body over \"%d\" bytes\n", 10);
    char buf[512];
    size_t n = oai_error_json(&e, buf, sizeof buf);
    cr_assert_eq(n, strlen(buf));
    json_error_t jerr;
    json_t *j = json_loads(buf, 0, &jerr);
    cr_assert_not_null(j, "%s", buf);
    json_t *o = json_object_get(j, "error");
    cr_assert_str_eq(json_string_value(json_object_get(o, "message")), "body over \"10\" bytes\n");
    cr_assert_str_eq(json_string_value(json_object_get(o, "type")), "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(o, "code")), "body_too_large");
    cr_assert(json_is_null(json_object_get(o, "param")));
    json_decref(j);
    /* A small buffer truncates the message but keeps the JSON whole. */
    oai_error_set(&e, 503, "engine_unavailable", "model", "%0200d", 0);
    n = oai_error_json(&e, buf, 160);
    cr_assert_lt(n, 160);
    j = json_loads(buf, 0, &jerr);
    cr_assert_not_null(j, "%s", buf);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                     "server_error");
    json_decref(j);
}

Test(features, engine_status_to_http)
{
    cr_assert_eq(oai_status_http(HPP_E_INSUFFICIENT_BUDGET), 402);
    cr_assert_eq(oai_status_http(HPP_E_MODEL_NOT_ALLOWED), 403);
    cr_assert_eq(oai_status_http(HPP_E_FORBIDDEN), 403);
    cr_assert_eq(oai_status_http(HPP_E_UNKNOWN_MODEL), 404);
    cr_assert_eq(oai_status_http(HPP_E_BAD_REQUEST), 400);
    cr_assert_eq(oai_status_http(HPP_E_INTERNAL), 500);
    cr_assert_eq(oai_status_http(HPP_OK), 200);
}

Test(tokens, feature_counts)
{
    oai_tok_counts_t c;
    oai_tok_counts_init(&c);
    const char *s =
        "Hello, world!  12345 internationalization\n\t\xe4\xbd\xa0\xe5\xa5\xbd caf\xc3\xa9";
    oai_tok_count(&c, s, strlen(s));
    cr_assert_eq(c.words, 4);   /* Hello world internationalization café */
    cr_assert_eq(c.longer, 12); /* "internationalization" is 20 letters */
    cr_assert_eq(c.digits, 2);  /* 123 45 */
    cr_assert_eq(c.punct, 2);   /* , ! */
    cr_assert_eq(c.space, 2);   /* "  " and "\n\t" (single spaces are free) */
    cr_assert_eq(c.cjk, 2);
    cr_assert_eq(c.other, 1); /* é */
    /* Truncated UTF-8 does not read past the end. */
    oai_tok_counts_init(&c);
    oai_tok_count(&c, "ab\xe4\xbd", 4);
    cr_assert_eq(c.words, 1);
    cr_assert_eq(c.other, 2);
    cr_assert_eq(oai_tok_text("", 0), 0);
}

/* Replays the calibration corpus: the C estimate must equal, to the token,
 * the one the calibration script computed with the same coefficients, and the
 * error against the real tokenizer must stay within what the README states. */
Test(tokens, calibration_corpus)
{
    FILE *fp = fopen("tests/data/tokens/calibration.jsonl", "r");
    cr_assert_not_null(fp, "run from the repository root");
    static char line[1 << 17];
    int n = 0;
    double sum = 0, worst = 0;
    oai_extract_t *x = oai_extract_new();
    while (fgets(line, sizeof line, fp)) {
        json_error_t jerr;
        json_t *rec = json_loads(line, 0, &jerr);
        cr_assert_not_null(rec, "line %d: %s", n + 1, jerr.text);
        json_t *body = json_pack("{sO}", "messages", json_object_get(rec, "messages"));
        char *text = json_dumps(body, JSON_COMPACT);
        hpp_features_t f;
        oai_error_t err;
        oai_extract_reset(x, &f);
        cr_assert_eq(oai_extract_body(x, text, strlen(text), &f, &err), 0, "%s", err.message);
        int64_t real = json_integer_value(json_object_get(rec, "tokens"));
        int64_t want = json_integer_value(json_object_get(rec, "estimate"));
        const char *id = json_string_value(json_object_get(rec, "id"));
        cr_expect_eq(f.prompt_tokens, want, "%s: C estimate %lld, calibration script %lld", id,
                     (long long)f.prompt_tokens, (long long)want);
        double rel = (double)llabs(f.prompt_tokens - real) / (double)real;
        sum += rel;
        worst = rel > worst ? rel : worst;
        n++;
        free(text);
        json_decref(body);
        json_decref(rec);
    }
    fclose(fp);
    oai_extract_destroy(&x);
    cr_assert_geq(n, 150);
    /* README: mean 3.3 %, max 20.4 % on this corpus. */
    cr_expect_lt(sum / n, 0.035, "mean error %.2f%%", 100 * sum / n);
    cr_expect_lt(worst, 0.21, "max error %.2f%%", 100 * worst);
}
