/* sc_local.h - sc_link's third kind: the engine inside this process
 * (eng_local.h, the sidecar's --local-engine).
 *
 * A frame sent is answered at once, on the caller's thread, into a queue;
 * the queue is handed to the message callback at the end of the same turn
 * of the loop, never inside the send (sc_link's contract). No system call
 * and no other thread is on the way: the round trip that another process
 * costs (two wake-ups and four socket calls) is gone.
 *
 * The link is up from its first turn of the loop to its end: there is no
 * connection to lose.
 */
#ifndef SC_LOCAL_H
#define SC_LOCAL_H

#include <stddef.h>

#include "eng_local.h"
#include "sc_link.h"

struct event_base;

typedef struct sc_local sc_local_t;

/* A link answering through `eng` (borrowed; it must outlive the link) as
 * its reader `reader` (the worker's index: one link per reader). The state
 * callback reports "up" at the loop's first turn. NULL with a message in
 * errbuf when out of memory. */
sc_local_t *sc_local_new(struct event_base *base, eng_local_t *eng, size_t reader, sc_link_cb cb,
                         sc_link_state_cb on_state, void *arg, char *errbuf, size_t errlen);

/* No callback runs after. Sets *self_p to NULL. Idempotent. Not from
 * inside its own message callback. */
void sc_local_destroy(sc_local_t **self_p);

/* Answers one request frame; its reply (if the request has one) reaches
 * the callback at the end of this turn. Returns 0, or -1 when the replies
 * waiting hold SC_LOCAL_QUEUE_MAX bytes or more could not be allocated. */
#define SC_LOCAL_QUEUE_MAX (64u << 20)
int sc_local_send(sc_local_t *self, const void *buf, size_t len);

/* SIGHUP's work for --local-engine: `eng` reads its files again (once for
 * every worker sharing it), and the outcome is logged: the version
 * serving, or why the serving one stays and where the file is bad. */
void sc_local_reload(eng_local_t *eng);

#endif
