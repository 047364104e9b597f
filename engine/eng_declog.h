/* eng_declog.h - the per-decision log: one JSON object per line, for usage
 * records (the resolved model is what a gateway's usage log needs).
 *
 * One file shared by every worker; each worker formats into its own buffer
 * and appends whole lines with one write(2) on its own O_APPEND descriptor,
 * so workers never lock or interleave, and the request path makes no system
 * call (lines are flushed when the buffer fills or the worker is idle).
 *
 * The file only ever holds whole lines. When a write fails (disk full, file
 * size limit) the lines are dropped and counted, decisions go on, a partial
 * line left by a short write is cut off again, and one error line a minute
 * at most says how many were lost. eng_declog_reopen (SIGHUP) opens the path
 * anew for every writer, so a rotated file is let go without copytruncate.
 */
#ifndef ENG_DECLOG_H
#define ENG_DECLOG_H

#include <stddef.h>

#include "eng_decision.h"
#include "proto.h"

typedef struct eng_declog eng_declog_t;

/* Opens (creating, appending) the log file. NULL with `err` filled. The
 * path is copied. */
eng_declog_t *eng_declog_open(const char *path, eng_error_t *err);

#define ENG_DECLOG_MAX_WRITERS 128

/* Opens `path` again for every writer and puts the new file under each
 * writer's descriptor number with dup2, which is atomic: a write running
 * meanwhile finishes on the old file, the next goes to the new one, and no
 * writer takes a lock. Returns 0, or -1 with `err` filled (the writers then
 * keep the files they had). Call from one thread at a time (the frontend,
 * on SIGHUP). */
int eng_declog_reopen(eng_declog_t *self, eng_error_t *err);

/* Lines not written (write failed: disk full, file too large...), counted
 * since startup; 0 for a NULL log. */
uint64_t eng_declog_dropped(const eng_declog_t *self);

/* Closes the file; idempotent. Writers must be flushed before. */
void eng_declog_destroy(eng_declog_t **self_p);

#define ENG_DECLOG_BUF 32768

/* One worker's line buffer (embed it in the worker; no allocation). */
typedef struct {
    eng_declog_t *log;        /* shared file, NULL = logging off */
    int fd;                   /* its own descriptor of the file (own offset) */
    char buf[ENG_DECLOG_BUF]; /* pending lines */
    size_t len;               /* pending bytes */
} eng_declog_writer_t;

/* Gives the writer its own descriptor of the log (`log` NULL: logging off).
 * Before the writer's thread starts, from the thread that opened the log.
 * Returns 0, or -1 with `err` filled (no descriptor left, at most
 * ENG_DECLOG_MAX_WRITERS writers). */
int eng_declog_writer_init(eng_declog_writer_t *w, eng_declog_t *log, eng_error_t *err);

/* Appends the line for one route/explain answer (requested model, group,
 * status, chosen model/provider/tier/rule, cost, tokens, policy version).
 * Flushes first when the buffer is nearly full. */
void eng_declog_record(eng_declog_writer_t *w, const proto_request_t *req, const eng_decision_t *d,
                       uint64_t policy_version);

/* Appends the outcome line of one attempt of a report: type "outcome", its
 * decision_id, model and provider as reported, status or error, the
 * measured figures and token counts, `cost` (the real cost at the
 * endpoint's list price, without the group's multiplier, which the
 * decision line carries; NULL: no token counts) and the provider's own
 * cost when reported. Flushes first when the buffer is nearly full. */
void eng_declog_outcome(eng_declog_writer_t *w, const proto_attempt_t *a, const hpp_cost_t *cost);

/* Writes pending lines; on failure drops and counts them (see above). */
void eng_declog_flush(eng_declog_writer_t *w);

/* True when lines are waiting. */
static inline int eng_declog_pending(const eng_declog_writer_t *w)
{
    return w->log && w->len > 0;
}

#endif
