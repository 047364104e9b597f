/* sc_accesslog.h - the sidecar's access log: one JSON line per answered
 * request, with the decision and every upstream attempt, never prompt text.
 *
 *   {"ts":1764712345.123,"route":"/v1/chat/completions","status":200,
 *    "ms":41.2,"group":"default","requested":"hpprouter/auto",
 *    "model":"openai/gpt-4o","provider":"azure","provider_model":"gpt-4o-2024-11-20",
 *    "tier":"standard","rule":"direct","estimated_cost_usd":0.0132,
 *    "fail_open":false,"attempts":[{"model":"openai/gpt-4o","provider":"openai",
 *    "status":429,"ms":3.1},{"model":"openai/gpt-4o","provider":"azure",
 *    "status":200,"ms":35.0}]}
 *
 * `model` .. `estimated_cost_usd` describe the endpoint that answered (in
 * proxy mode, after retries); `attempts` lists each upstream call in order
 * with its status (0 = no response). A line is written with one write() to
 * an O_APPEND file: whole, or not at all (a short write on a full disk is
 * cut back), so a reader never sees half a line; lines that could not be
 * written are counted, and one error line a minute says so. reopen() (on
 * SIGHUP) lets logrotate move the file away without copytruncate.
 */
#ifndef SC_ACCESSLOG_H
#define SC_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "sc_call.h"

typedef struct sc_accesslog sc_accesslog_t;

/* Opens (creates, mode 0640) `path` for appending. NULL with the reason in
 * errbuf. */
sc_accesslog_t *sc_accesslog_open(const char *path, char *errbuf, size_t errlen);

/* Opens the path again and puts the new file in place of the old one.
 * Returns 0, or -1 with errbuf set (the old file stays in use). */
int sc_accesslog_reopen(sc_accesslog_t *self, char *errbuf, size_t errlen);

/* Closes the file and frees the log; sets *self_p to NULL. Idempotent. */
void sc_accesslog_destroy(sc_accesslog_t **self_p);

/* Writes the line of a finished call (`seconds` since it arrived). No
 * allocation. */
void sc_accesslog_write(sc_accesslog_t *self, const sc_call_t *call, double seconds);

/* Lines that could not be written since the start. */
uint64_t sc_accesslog_dropped(const sc_accesslog_t *self);

#endif
