/* eng_declog.h - the per-decision log: one JSON object per line, for usage
 * records (the resolved model is what a gateway's usage log needs).
 *
 * One file shared by every worker; each worker formats into its own buffer
 * and appends whole lines with one write(2) on an O_APPEND descriptor, so
 * workers never lock or interleave, and the request path makes no system
 * call (lines are flushed when the buffer fills or the worker is idle).
 */
#ifndef ENG_DECLOG_H
#define ENG_DECLOG_H

#include <stddef.h>

#include "eng_decision.h"
#include "proto.h"

typedef struct eng_declog eng_declog_t;

/* Opens (creating, appending) the log file. NULL with `err` filled. */
eng_declog_t *eng_declog_open(const char *path, eng_error_t *err);

/* Lines not written (write failed: disk full, file too large...), counted
 * since startup; 0 for a NULL log. */
uint64_t eng_declog_dropped(const eng_declog_t *self);

/* Closes the file; idempotent. Writers must be flushed before. */
void eng_declog_destroy(eng_declog_t **self_p);

#define ENG_DECLOG_BUF 32768

/* One worker's line buffer (embed it in the worker; no allocation). */
typedef struct {
    eng_declog_t *log;        /* shared file, NULL = logging off */
    char buf[ENG_DECLOG_BUF]; /* pending lines */
    size_t len;               /* pending bytes */
} eng_declog_writer_t;

void eng_declog_writer_init(eng_declog_writer_t *w, eng_declog_t *log);

/* Appends the line for one route/explain answer (requested model, group,
 * status, chosen model/provider/tier/rule, cost, tokens, policy version).
 * Flushes first when the buffer is nearly full. */
void eng_declog_record(eng_declog_writer_t *w, const proto_request_t *req, const eng_decision_t *d,
                       uint64_t policy_version);

/* Writes pending lines. */
void eng_declog_flush(eng_declog_writer_t *w);

/* True when lines are waiting. */
static inline int eng_declog_pending(const eng_declog_writer_t *w)
{
    return w->log && w->len > 0;
}

#endif
