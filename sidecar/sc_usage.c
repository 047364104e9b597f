/* sc_usage.c - the usage of an upstream answer (see sc_usage.h). */
#define _GNU_SOURCE /* memmem */
#include "sc_usage.h"

#include <math.h>
#include <string.h>

#include "hpp_request.h"

void sc_usage_init(sc_usage_t *u)
{
    u->prompt = u->completion = u->cached = u->reasoning = -1;
    u->cost_usd = -1;
}

bool sc_usage_has(const sc_usage_t *u)
{
    return u->prompt >= 0 || u->completion >= 0 || u->cached >= 0 || u->reasoning >= 0 ||
           u->cost_usd >= 0;
}

/* A token count the report op accepts, else -1. */
static int64_t s_count(const oai_jdoc_t *d, oai_jv_t v)
{
    if (!oai_jis(d, v, OAI_J_INT)) {
        return -1;
    }
    int64_t n = oai_jint(d, v);
    return n >= 0 && n <= HPP_MAX_TOKENS ? n : -1;
}

/* Fills *u from a `usage` object; false when it is not one. */
static bool s_usage(const oai_jdoc_t *d, oai_jv_t usage, sc_usage_t *u)
{
    if (!oai_jis(d, usage, OAI_J_OBJECT)) {
        return false;
    }
    sc_usage_t got;
    got.prompt = s_count(d, oai_jget(d, usage, "prompt_tokens"));
    got.completion = s_count(d, oai_jget(d, usage, "completion_tokens"));
    got.cached =
        s_count(d, oai_jget(d, oai_jget(d, usage, "prompt_tokens_details"), "cached_tokens"));
    got.reasoning = s_count(
        d, oai_jget(d, oai_jget(d, usage, "completion_tokens_details"), "reasoning_tokens"));
    /* The engine refuses a report whose parts exceed their whole: drop the part. */
    if (got.cached > 0 && got.prompt >= 0 && got.cached > got.prompt) {
        got.cached = -1;
    }
    if (got.reasoning > 0 && got.completion >= 0 && got.reasoning > got.completion) {
        got.reasoning = -1;
    }
    oai_jv_t cost = oai_jget(d, usage, "cost");
    double c = oai_jnum(d, cost);
    got.cost_usd = (oai_jis(d, cost, OAI_J_INT) || oai_jis(d, cost, OAI_J_REAL)) && isfinite(c) &&
                           c >= 0 && c <= HPP_MAX_BUDGET_USD
                       ? c
                       : -1;
    *u = got;
    return true;
}

bool sc_usage_read(oai_jdoc_t *doc, const char *body, size_t len, sc_usage_t *u)
{
    oai_jerr_t err;
    oai_jv_t root = oai_jdoc_parse(doc, body, len, &err);
    return s_usage(doc, oai_jget(doc, root, "usage"), u);
}

void sc_sse_reset(sc_sse_t *s)
{
    s->len = 0;
    s->over = false;
    s->first = false;
}

static bool s_nonempty(const oai_jdoc_t *d, oai_jv_t v)
{
    size_t n = 0;
    return (oai_jstr(d, v, &n) && n > 0) || oai_jsize(d, v) > 0;
}

/* Whether a chunk's choices carry a token. */
static bool s_token(const oai_jdoc_t *d, oai_jv_t root)
{
    static const char *const keys[] = {"content",    "reasoning", "reasoning_content",
                                       "tool_calls", "refusal",   NULL};
    oai_jv_t choices = oai_jget(d, root, "choices");
    for (oai_jv_t c = oai_jfirst(d, choices); c; c = oai_jnext(d, c)) {
        oai_jv_t delta = oai_jget(d, c, "delta");
        if (s_nonempty(d, oai_jget(d, c, "text"))) { /* legacy completions */
            return true;
        }
        for (int i = 0; keys[i]; i++) {
            if (s_nonempty(d, oai_jget(d, delta, keys[i]))) {
                return true;
            }
        }
    }
    return false;
}

/* One complete line (without its end). */
static bool s_line(sc_sse_t *s, oai_jdoc_t *doc, const char *p, size_t n, sc_usage_t *u)
{
    if (n < 5 || memcmp(p, "data:", 5) != 0) {
        return false; /* blank, comment, event:, id:, retry: */
    }
    p += 5;
    n -= 5;
    if (n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    /* After the first token only the events that mention usage are parsed. */
    if (s->first && !memmem(p, n, "\"usage\"", 7)) {
        return false;
    }
    oai_jerr_t err;
    oai_jv_t root = oai_jdoc_parse(doc, p, n, &err); /* "[DONE]" is no JSON: OAI_JNONE */
    sc_usage_t got;
    if (s_usage(doc, oai_jget(doc, root, "usage"), &got) && sc_usage_has(&got)) {
        *u = got;
    }
    if (!s->first && s_token(doc, root)) {
        s->first = true;
        return true;
    }
    return false;
}

bool sc_sse_feed(sc_sse_t *s, oai_jdoc_t *doc, const char *p, size_t n, sc_usage_t *u)
{
    bool first = false;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!s->over && s->len + take <= sizeof s->line) {
            memcpy(s->line + s->len, p, take);
            s->len += take;
        } else {
            s->over = true;
        }
        if (!nl) {
            break;
        }
        size_t len = s->len;
        if (len > 0 && s->line[len - 1] == '\r') {
            len--;
        }
        if (!s->over) {
            first |= s_line(s, doc, s->line, len, u);
        }
        s->len = 0;
        s->over = false;
        p = nl + 1;
        n -= take + 1;
    }
    return first;
}
