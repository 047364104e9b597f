/* sc_report.h - proxy mode's reports to the engines, sent once the answer
 * they follow is on its way to the client.
 *
 * A call's report (the report op: how each upstream attempt went) was sent
 * when the call finished, before libevent wrote the client's answer: one
 * more send on the latency of every proxied request. The queue copies the
 * attempts and sends them from a zero-delay timer, which libevent runs
 * after the I/O callbacks of its next iteration, so after the answer is
 * written. Each call is still one frame. A connection's next request can
 * only be read after its answer was written, an iteration later at the
 * soonest, so the engine still has a call's report before the next request
 * of the same client. Up to SC_REPORT_QUEUE calls wait; one more sends the
 * queue at once. No allocation after sc_report_new.
 */
#ifndef SC_REPORT_H
#define SC_REPORT_H

#include <stddef.h>

#include "proto.h"
#include "sc_engine.h"

struct event_base;

/* Calls whose reports wait at most. */
#define SC_REPORT_QUEUE 64

typedef struct sc_report sc_report_t;

/* A queue that sends through `engine` (borrowed, must outlive it). Returns
 * NULL when out of memory. */
sc_report_t *sc_report_new(struct event_base *base, sc_engine_t *engine);

/* Sends what waits, then frees the queue; sets *self_p to NULL. Idempotent. */
void sc_report_destroy(sc_report_t **self_p);

/* Queues one call's report (n attempts, at most PROTO_MAX_ATTEMPTS are
 * kept: as many as a call makes): the strings are copied, `at` may go away. Returns 0, or -1 when n
 * is 0 or a name is longer than the protocol allows (nothing queued). */
int sc_report_add(sc_report_t *self, const proto_attempt_t *at, size_t n);

/* Sends every queued report now, oldest first (sc_engine_report each).
 * Returns how many calls' reports went to at least one engine. */
size_t sc_report_flush(sc_report_t *self);

/* Calls whose reports wait. */
size_t sc_report_pending(const sc_report_t *self);

#endif
