/* oai_error.h - an HTTP error value and its OpenAI-style JSON shape.
 *
 * Every failure the sidecar answers over HTTP (bad body, engine error,
 * upstream down) is an oai_error_t: an HTTP status, an OpenAI error `type`, a
 * machine `code`, the offending parameter and a message. It is a plain struct
 * so extraction (no libevent) and the server share it.
 */
#ifndef OAI_ERROR_H
#define OAI_ERROR_H

#include <stddef.h>

#include "hpp_request.h"

typedef struct {
    int status;        /* HTTP status: 400, 402, 403, 404, 413, 502, 503, ... */
    const char *type;  /* OpenAI error type, static: "invalid_request_error" ... */
    const char *code;  /* machine code, static: "invalid_json", "unknown_model" ... */
    char param[96];    /* offending field as a path ("messages[2].content"), "" if none */
    char message[256]; /* what is wrong, in words */
} oai_error_t;

/* Fills `err` (when not NULL); `type` follows from the status. `code` must be
 * a static string. Returns -1 so callers can `return oai_error_set(...)`. */
int oai_error_set(oai_error_t *err, int status, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* OpenAI error type for an HTTP status ("invalid_request_error" for 4xx
 * client errors, "permission_error" for 403, "server_error" for 5xx). */
const char *oai_error_type(int status);

/* HTTP status for an engine error code: insufficient_budget 402,
 * model_not_allowed 403, unknown_model 404, bad_request 400, no_free_variant
 * and no_candidate 422, internal and others 500. */
int oai_status_http(hpp_status_t status);

/* Writes {"error":{"message":...,"type":...,"param":...|null,"code":...}}
 * NUL-terminated into buf. Returns the length (truncated to n-1 like
 * snprintf, but always valid JSON when n >= 128). */
size_t oai_error_json(const oai_error_t *err, char *buf, size_t n);

/* Appends `s` (len bytes) as a JSON string body (no quotes) to buf at *pos,
 * escaping quotes, backslashes and control bytes; stops before overflowing,
 * never splitting an escape. buf stays NUL-terminated. */
void oai_json_escape(char *buf, size_t n, size_t *pos, const char *s, size_t len);

#endif
