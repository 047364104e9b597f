/* sc_usage.h - what an upstream answer says it used: the `usage` object of
 * a chat completion, read in place from a buffered body, or from the events
 * of a streamed one as they pass (with the time of the first token).
 *
 * Both readers use a caller-owned oai_jdoc_t (the strict, allocation-free
 * tape reader), so after the first answers they allocate nothing. The stream
 * scanner keeps only the current line, bounded by SC_SSE_LINE_MAX: a longer
 * event is passed on to the client but not read.
 */
#ifndef SC_USAGE_H
#define SC_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oai_json.h"

/* Usage as the provider returned it; -1 (cost: negative) = not returned. */
typedef struct {
    int64_t prompt;     /* usage.prompt_tokens */
    int64_t completion; /* usage.completion_tokens */
    int64_t cached;     /* usage.prompt_tokens_details.cached_tokens */
    int64_t reasoning;  /* usage.completion_tokens_details.reasoning_tokens */
    double cost_usd;    /* usage.cost (OpenRouter's, in USD) */
} sc_usage_t;

/* No figure. */
void sc_usage_init(sc_usage_t *u);

/* Whether any figure was read. */
bool sc_usage_has(const sc_usage_t *u);

/* Reads the top-level `usage` of a chat completion body (`len` bytes, read
 * during the call only). Figures that are absent, of the wrong type, out of
 * the protocol's range or inconsistent (cached > prompt, reasoning >
 * completion) stay unset. Returns whether a usage object was found. */
bool sc_usage_read(oai_jdoc_t *doc, const char *body, size_t len, sc_usage_t *u);

/* Longest `data:` line of a stream that is read (16 KiB). */
#define SC_SSE_LINE_MAX (16 * 1024)

/* The scanner of one streamed answer. */
typedef struct {
    char line[SC_SSE_LINE_MAX]; /* the current line so far */
    size_t len;                 /* bytes of it in line[] */
    bool over;                  /* the current line outgrew line[]: it is skipped */
    bool first;                 /* an event with a token was seen */
} sc_sse_t;

/* Ready for a new stream. */
void sc_sse_reset(sc_sse_t *s);

/* Scans `n` bytes of an event stream: each complete `data:` line whose JSON
 * carries a `usage` object sets *u (the last one wins), and the first one
 * whose choices carry a token (delta content, reasoning or tool calls)
 * sets s->first. Returns true when this call saw that first token. */
bool sc_sse_feed(sc_sse_t *s, oai_jdoc_t *doc, const char *p, size_t n, sc_usage_t *u);

#endif
