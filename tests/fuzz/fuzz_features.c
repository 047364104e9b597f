/* fuzz_features.c - libFuzzer target for the OpenAI body / X-HPP-* header
 * extractor. Input: optional header lines "Name: value\n" ended by an empty
 * line, then the body. Every input must give 0 or an error value with a
 * status and message, never a crash or a leak; a forwarded body must be JSON. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oai_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static oai_extract_t *s_x;

/* Applies the header block; returns the offset of the body. */
static size_t s_headers(const char *d, size_t size, hpp_features_t *f)
{
    const char *end = NULL;
    for (size_t i = 0; i + 1 < size; i++) {
        if (d[i] == '\n' && d[i + 1] == '\n') {
            end = d + i;
            break;
        }
    }
    if (!end) {
        return 0;
    }
    const char *p = d;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && eol - p < 512) {
            char name[512], value[512];
            snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
            const char *v = colon + 1;
            while (v < eol && *v == ' ') {
                v++;
            }
            snprintf(value, sizeof value, "%.*s", (int)(eol - v), v);
            oai_error_t err;
            if (oai_extract_header(s_x, name, value, f, &err) < 0 &&
                (err.status != 400 || !err.message[0])) {
                abort();
            }
        }
        p = eol + 1;
    }
    return (size_t)(end - d) + 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_x) {
        s_x = oai_extract_new(); /* reused across inputs, like a server worker */
    }
    hpp_features_t f;
    oai_extract_reset(s_x, &f);
    const char *d = (const char *)data;
    size_t off = s_headers(d, size, &f);
    oai_error_t err;
    if (oai_extract_body(s_x, d + off, size - off, &f, &err) < 0) {
        if (err.status != 400 || !err.message[0] || !err.code) {
            abort();
        }
        return 0;
    }
    if (f.prompt_tokens < 0 || f.text.len > OAI_TEXT_MAX || f.nhints > HPP_MAX_HINTS) {
        abort();
    }
    size_t len = 0;
    char *out = oai_extract_forward(s_x, d + off, size - off, "openai/gpt-5", &len);
    size_t other = 0;
    if (out && oai_extract_forward(s_x, d + off, size - off + 1, NULL, &other) != NULL) {
        abort(); /* a length other than the parsed one is refused */
    }
    if (out) {
        /* The splice must give JSON with our model, no hpp, models nor provider, and
         * every other member as parsed from the original (a stream's
         * stream_options.include_usage added, see oai_extract_forward). */
        json_t *j = json_loadb(out, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *orig = json_loadb(d + off, size - off, JSON_REJECT_DUPLICATES, NULL);
        if (!j || !orig || !json_is_object(j) ||
            strcmp(json_string_value(json_object_get(j, "model")) ?: "", "openai/gpt-5") != 0 ||
            json_object_get(j, "hpp") || json_object_get(j, "models") ||
            json_object_get(j, "provider")) {
            abort();
        }
        json_object_del(orig, "hpp");
        json_object_del(orig, "models");
        json_object_del(orig, "provider");
        json_object_set_new(orig, "model", json_string("openai/gpt-5"));
        /* A stream asks for its usage unless the client set include_usage. */
        json_t *opts = json_object_get(orig, "stream_options");
        if (json_is_true(json_object_get(orig, "stream"))) {
            if (!opts) {
                json_object_set_new(orig, "stream_options", json_pack("{s:b}", "include_usage", 1));
            } else if (json_is_object(opts) && !json_object_get(opts, "include_usage")) {
                json_object_set_new(opts, "include_usage", json_true());
            }
        }
        if (!json_equal(j, orig)) {
            abort();
        }
        json_decref(orig);
        json_decref(j);
        free(out);
    }
    return 0;
}
