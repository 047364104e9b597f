/* eng_common.c - located errors and logging shared by every engine module
 * (money lives with the request contract, proto/hpp_types.c). */
#include "eng_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oai_error.h"

int eng_error_set(eng_error_t *err, eng_errcode_t code, const char *file, int line, int col,
                  const char *where, const char *fmt, ...)
{
    if (!err) {
        return -1;
    }
    err->code = code;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    err->col = col;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int eng_error_format(const eng_error_t *err, char *buf, size_t n)
{
    if (!err->file[0] && err->line <= 0 && !err->where[0]) {
        return snprintf(buf, n, "error: %s", err->msg); /* no file: the message says where */
    }
    const char *file = err->file[0] ? err->file : "<input>";
    if (err->line > 0) {
        return snprintf(buf, n, "%s:%d:%d: error: %s", file, err->line, err->col > 0 ? err->col : 1,
                        err->msg);
    }
    if (err->where[0]) {
        return snprintf(buf, n, "%s: at %s: error: %s", file, err->where, err->msg);
    }
    return snprintf(buf, n, "%s: error: %s", file, err->msg);
}

const char *eng_errcode_name(eng_errcode_t code)
{
    static const char *const names[] = {
        [ENG_ERR_NONE] = "none",       [ENG_ERR_IO] = "io",       [ENG_ERR_SYNTAX] = "syntax",
        [ENG_ERR_TYPE] = "type",       [ENG_ERR_VALUE] = "value", [ENG_ERR_DUP] = "duplicate",
        [ENG_ERR_UNKNOWN] = "unknown", [ENG_ERR_LIMIT] = "limit", [ENG_ERR_NOMEM] = "nomem",
    };
    if ((unsigned)code < sizeof names / sizeof names[0] && names[code]) {
        return names[code];
    }
    return "unknown";
}

/* Logging --------------------------------------------------------------- */

static eng_log_level_t s_log_level = ENG_LOG_INFO;
static eng_log_format_t s_log_format = ENG_LOG_TEXT;

void eng_log_set_level(eng_log_level_t level)
{
    s_log_level = level;
}

size_t eng_bom_len(const char *buf, size_t len)
{
    return len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

void eng_log_set_format(eng_log_format_t format)
{
    s_log_format = format;
}

void eng_log(eng_log_level_t level, const char *module, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < s_log_level) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96]; /* what gcc can prove of the fields, not what they hold */
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One buffer, one write: concurrent threads never interleave a line. A
     * message can quote what a client sent: in JSON every byte is escaped
     * (6 bytes at most each), so the line stays one valid object. */
    char line[8 * 1024];
    size_t len = 0;
    if (s_log_format == ENG_LOG_JSON) {
        int n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"", when,
                         names[level]);
        len = n > 0 ? (size_t)n : 0;
        oai_json_escape(line, sizeof line - 16, &len, module, strlen(module));
        memcpy(line + len, "\",\"msg\":\"", 9);
        len += 9;
        oai_json_escape(line, sizeof line - 4, &len, msg, strlen(msg));
        memcpy(line + len, "\"}\n", 3);
        len += 3;
    } else {
        int n = snprintf(line, sizeof line, "%s %s %s: %s\n", when, names[level], module, msg);
        if (n <= 0) {
            return;
        }
        len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        line[len - 1] = '\n';
    }
    fwrite(line, 1, len, stderr);
}

const char *eng_data_path(const char *rel, int slot)
{
    static char found[4][4096];
    if (access(rel, R_OK) == 0 || slot < 0 || slot > 3) {
        return rel;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        return rel;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) {
        return rel;
    }
    *slash = '\0';
    /* "policies/x" in the source tree is "share/hpprouter/x" once installed. */
    const char *base = strncmp(rel, "policies/", 9) == 0 ? rel + 9 : rel;
    const char *const forms[] = {"%s/../%s", "%s/../share/hpprouter/%s"};
    const char *const args[] = {rel, base};
    for (int i = 0; i < 2; i++) {
        int w = snprintf(found[slot], sizeof found[slot], forms[i], exe, args[i]);
        if (w > 0 && (size_t)w < sizeof found[slot] && access(found[slot], R_OK) == 0) {
            return found[slot];
        }
    }
    return rel;
}

uint64_t eng_fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * UINT64_C(1099511628211);
    }
    return h;
}

struct timespec eng_abstime_in_ms(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

bool eng_grow(void **arr, uint32_t n, uint32_t *cap, size_t size, uint32_t first)
{
    if (n < *cap) {
        return true;
    }
    uint32_t ncap;
    size_t bytes;
    if (*cap == 0) {
        ncap = first ? first : 1;
    } else if (__builtin_mul_overflow(*cap, 2u, &ncap)) {
        return false;
    }
    if (ncap <= n || __builtin_mul_overflow((size_t)ncap, size, &bytes)) {
        return false;
    }
    void *a = realloc(*arr, bytes);
    if (!a) {
        return false;
    }
    *arr = a;
    *cap = ncap;
    return true;
}
