/* eng_msgpool.h - reusable memory for outgoing ZeroMQ messages.
 *
 * zmq_send copies every message of more than 33 bytes into a block it
 * mallocs, and libzmq's I/O thread frees that block once it is written. A
 * route reply (about 1 KiB) is too big for glibc's per-thread caches, so the
 * answering thread's malloc and the I/O thread's free take the same arena
 * lock for every reply; pipelined, the two threads spent about 15% of their
 * time waiting on each other in futex calls (bench/README.md).
 *
 * A pool belongs to one sending thread. That thread takes blocks from its
 * own list without atomics; whoever releases a sent message (the I/O thread,
 * or the owner after a failed send) pushes the block on a lock-free stack,
 * and the owner takes that stack whole when its list runs dry. A pool never
 * holds more than a fixed number of blocks; past that, or for a message that
 * does not fit a block, sending falls back to zmq_send.
 */
#ifndef ENG_MSGPOOL_H
#define ENG_MSGPOOL_H

#include <stddef.h>

typedef struct eng_msgpool eng_msgpool_t;

/* Counters of a pool, read by its owner (tests, diagnostics). */
typedef struct {
    size_t blocks;    /* allocated so far (idle or in a message) */
    size_t pooled;    /* messages sent from a block */
    size_t fallbacks; /* messages sent with zmq_send instead */
} eng_msgpool_stats_t;

/* An empty pool, or NULL when out of memory. Blocks are allocated on first
 * use and then reused. */
eng_msgpool_t *eng_msgpool_new(void);

/* Frees the pool and its blocks; idempotent. Only once no message sent from
 * it is alive, that is after zmq_ctx_term of the context it sent on. */
void eng_msgpool_destroy(eng_msgpool_t **self_p);

/* Sends a copy of data[0..len) on `sock`, as zmq_send(sock, data, len, flags)
 * would: 0 on success, -1 with errno (the bytes are not sent). Owner thread
 * only. */
int eng_msgpool_send(eng_msgpool_t *self, void *sock, const void *data, size_t len, int flags);

eng_msgpool_stats_t eng_msgpool_stats(const eng_msgpool_t *self);

/* Frees idle blocks until at most `keep` remain allocated (blocks lent to
 * messages stay), so that a burst does not keep its peak of blocks for
 * good. Owner thread only. Returns the blocks freed. */
size_t eng_msgpool_trim(eng_msgpool_t *self, size_t keep);

#endif
