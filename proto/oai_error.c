/* oai_error.c - OpenAI-style error values and their JSON.
 *
 * Formatting is done into caller buffers with no allocation, so the error
 * path cannot fail for lack of memory and costs nothing on a flood of bad
 * requests.
 */
#include "oai_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *oai_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

int oai_error_set(oai_error_t *err, int status, const char *code, const char *param,
                  const char *fmt, ...)
{
    if (!err) {
        return -1;
    }
    err->status = status;
    err->type = oai_error_type(status);
    err->code = code ? code : "error";
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int oai_status_http(hpp_status_t status)
{
    switch (status) {
    case HPP_OK:
        return 200;
    case HPP_E_BAD_REQUEST:
    case HPP_E_UNKNOWN_OP:
        return 400;
    case HPP_E_INSUFFICIENT_BUDGET:
    case HPP_E_INSUFFICIENT_BALANCE:
    case HPP_E_KEY_LIMIT_REACHED:
        return 402;
    case HPP_E_UNKNOWN_KEY:
        return 401;
    case HPP_E_DAILY_LIMIT_REACHED:
        return 429;
    case HPP_E_LEDGER_UNAVAILABLE:
        return 503;
    case HPP_E_MODEL_NOT_ALLOWED:
    case HPP_E_FORBIDDEN:
        return 403;
    case HPP_E_UNKNOWN_MODEL:
        return 404;
    case HPP_E_NO_FREE_VARIANT:
    case HPP_E_NO_CANDIDATE:
        /* The request is well-formed but nothing in the catalog can serve it. */
        return 422;
    default:
        return 500;
    }
}

void oai_json_escape(char *buf, size_t n, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    if (n == 0) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c == '\n') {
            esc[k++] = '\\';
            esc[k++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            esc[k++] = '\\';
            esc[k++] = 'u';
            esc[k++] = '0';
            esc[k++] = '0';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        } else {
            esc[k++] = (char)c;
        }
        if (p + k >= n) {
            break;
        }
        memcpy(buf + p, esc, k);
        p += k;
    }
    buf[p < n ? p : n - 1] = '\0';
    *pos = p;
}

/* Appends a literal; stops at the buffer end. */
static void s_put(char *buf, size_t n, size_t *pos, const char *lit)
{
    size_t len = strlen(lit);
    if (*pos + len >= n) {
        len = *pos + 1 < n ? n - 1 - *pos : 0;
    }
    memcpy(buf + *pos, lit, len);
    *pos += len;
    buf[*pos] = '\0';
}

size_t oai_error_json(const oai_error_t *err, char *buf, size_t n)
{
    if (n == 0) {
        return 0;
    }
    /* Keep room for the fields after the message so the JSON stays whole. */
    size_t tail = 16 + strlen(err->type) + strlen(err->code) + 2 * strlen(err->param) + 32;
    size_t pos = 0;
    buf[0] = '\0';
    s_put(buf, n, &pos, "{\"error\":{\"message\":\"");
    oai_json_escape(buf, n > tail ? n - tail : 1, &pos, err->message, strlen(err->message));
    s_put(buf, n, &pos, "\",\"type\":\"");
    s_put(buf, n, &pos, err->type);
    s_put(buf, n, &pos, "\",\"param\":");
    if (err->param[0]) {
        s_put(buf, n, &pos, "\"");
        oai_json_escape(buf, n, &pos, err->param, strlen(err->param));
        s_put(buf, n, &pos, "\"");
    } else {
        s_put(buf, n, &pos, "null");
    }
    s_put(buf, n, &pos, ",\"code\":\"");
    s_put(buf, n, &pos, err->code);
    s_put(buf, n, &pos, "\"}}");
    return pos;
}
