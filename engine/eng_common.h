/* eng_common.h - conventions shared by every engine module.
 *
 * The scalar types of the request contract (strings, money, prices, costs)
 * come from proto/hpp_types.h, the bottom layer.
 *
 * Errors are values: functions return 0 / -1 (or a status enum) and fill an
 * eng_error_t with a code, the file, a location and a message.
 */
#ifndef ENG_COMMON_H
#define ENG_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hpp_types.h"

/* Marks a function as not instrumented for coverage-guided fuzzing: for pure
 * computations (table building, string distance) whose comparisons, traced
 * one by one by the fuzzer, cost far more than they tell it about the
 * input. Sanitizers still check them. Not inlined: coverage is added after
 * inlining, so an inlined copy would be instrumented as its caller is.
 * Nothing outside a clang build. */
#if defined(__clang__) && __clang_major__ >= 13
#define ENG_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define ENG_NO_COVERAGE
#endif

/* Error codes for loaders and compilers (not request statuses, see eng_request.h). */
typedef enum {
    ENG_ERR_NONE = 0,
    ENG_ERR_IO,      /* file cannot be read */
    ENG_ERR_SYNTAX,  /* malformed JSON / policy text */
    ENG_ERR_TYPE,    /* a value of the wrong type */
    ENG_ERR_VALUE,   /* a value out of range: negative price, bad number */
    ENG_ERR_DUP,     /* duplicate id */
    ENG_ERR_UNKNOWN, /* reference to something not defined (provider, model) */
    ENG_ERR_LIMIT,   /* a size limit was exceeded */
    ENG_ERR_NOMEM,   /* allocation failed */
} eng_errcode_t;

/* One located error. `line`/`col` are 1-based and 0 when unknown; `where` is a
 * key path such as data[3].pricing.input when the position is a JSON key. */
typedef struct {
    eng_errcode_t code; /* ENG_ERR_NONE when no error */
    char file[256];     /* file name as given by the caller */
    int line;           /* 1-based line, 0 if unknown */
    int col;            /* 1-based column, 0 if unknown */
    char where[160];    /* key path, "" if unknown */
    char msg[512];      /* what is wrong, in words (a ledger's names two paths) */
} eng_error_t;

/* Fills `err` (when not NULL). Returns -1 so callers can `return eng_error_set(...)`. */
int eng_error_set(eng_error_t *err, eng_errcode_t code, const char *file, int line, int col,
                  const char *where, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Formats as "file:line:col: error: msg", "file: at where: error: msg",
 * "file: error: msg", or "error: msg" when there is no file, line or where
 * (an error of a flag or a system call, whose message names it).
 * Returns the length written (truncated to n-1), like snprintf. */
int eng_error_format(const eng_error_t *err, char *buf, size_t n);

/* Name of an error code, e.g. "syntax". */
const char *eng_errcode_name(eng_errcode_t code);

/* Called by a loader with the bytes of each file it reads, as read, and the
 * path it opened; the engine hashes them (eng_snapshot.h, policy_hash), so
 * what is reported is what was compiled, not the file as it is later. */
typedef void (*eng_source_fn)(void *ctx, const char *path, const void *bytes, size_t len);

/* Makes room for element n of a growable array (*arr, *cap elements of
 * `size` bytes): when n < *cap, nothing; else the capacity doubles, from
 * `first` when the array is empty. False when out of memory or past
 * UINT32_MAX elements, with the array and *cap left as they were: the caller
 * owns the array and frees it either way. */
bool eng_grow(void **arr, uint32_t n, uint32_t *cap, size_t size, uint32_t first);

/* Logging: one line per event to stderr, "ts level module: message", or
 * with ENG_LOG_JSON one JSON object a line:
 * {"ts":"2026-12-02T21:20:09.123Z","level":"info","module":"engine","msg":"..."}. */
typedef enum { ENG_LOG_DEBUG, ENG_LOG_INFO, ENG_LOG_WARN, ENG_LOG_ERROR } eng_log_level_t;
typedef enum { ENG_LOG_TEXT, ENG_LOG_JSON } eng_log_format_t;
void eng_log(eng_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void eng_log_set_level(eng_log_level_t level);
void eng_log_set_format(eng_log_format_t format);

/* Where a bundled data file (a path such as "policies/default.policy") is:
 * relative to the working directory when it is there; else next to the
 * program, in a build tree (<dir of the program>/../policies/...) or an
 * installed one (<dir of the program>/../share/hpprouter/...); else `rel`
 * as given, so that the error names it. For the defaults of flags, at
 * startup: the answer lives in a static buffer of one slot per call site
 * (`slot` 0..3). */
const char *eng_data_path(const char *rel, int slot);

/* 3 when `buf` starts with a UTF-8 byte order mark, else 0. Some editors
 * write one; policy, cases and catalog files skip it rather than failing
 * on a character the author cannot see. */
size_t eng_bom_len(const char *buf, size_t len);

/* The CLOCK_REALTIME instant `ms` milliseconds from now, the form
 * pthread_cond_timedwait takes (ms >= 0). */
struct timespec eng_abstime_in_ms(int64_t ms);

/* FNV-1a over n bytes: the hash of the engine's small tables (peers,
 * usage rows, the ledger's keys and accounts), of the ring file's name and
 * of the labels' train/test split (which must never change). */
uint64_t eng_fnv1a(const void *p, size_t n);

#endif
