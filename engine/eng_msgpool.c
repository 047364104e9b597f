/* eng_msgpool.c - reusable blocks for outgoing ZeroMQ messages.
 *
 * Owns: the pool owns every block it allocated, idle or not; a block in a
 * message is lent to libzmq, which hands it back through s_release. The
 * returned stack only ever gets single pushes and whole-stack takes, so it
 * has no ABA problem and needs no counter or lock.
 */
#include "eng_msgpool.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_BLOCK 2048      /* bytes per block, header included: a route reply fits */
#define S_MAX_BLOCKS 4096 /* at most 8 MiB per pool, all in messages at once */
#define S_INLINE 33       /* libzmq stores messages this small inline, no malloc */

typedef struct s_block s_block_t;
struct s_block {
    s_block_t *next;                  /* in the owner's list or the returned stack */
    alignas(16) unsigned char data[]; /* the message bytes */
};
#define S_DATA (S_BLOCK - offsetof(s_block_t, data))

struct eng_msgpool {
    alignas(64) _Atomic(s_block_t *) returned; /* released blocks, any thread pushes */
    alignas(64) s_block_t *idle;               /* owner's blocks ready for use */
    eng_msgpool_stats_t stats;                 /* owner's counters */
};

eng_msgpool_t *eng_msgpool_new(void)
{
    eng_msgpool_t *self = aligned_alloc(64, sizeof *self);
    if (self) {
        memset(self, 0, sizeof *self);
        atomic_init(&self->returned, NULL);
    }
    return self;
}

static void s_free_list(s_block_t *b)
{
    while (b) {
        s_block_t *next = b->next;
        free(b);
        b = next;
    }
}

void eng_msgpool_destroy(eng_msgpool_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_msgpool_t *self = *self_p;
    s_free_list(self->idle);
    s_free_list(atomic_exchange_explicit(&self->returned, NULL, memory_order_acquire));
    free(self);
    *self_p = NULL;
}

/* libzmq's free function: runs in whichever thread drops the message. */
static void s_release(void *data, void *hint)
{
    eng_msgpool_t *self = hint;
    s_block_t *b = (s_block_t *)((unsigned char *)data - offsetof(s_block_t, data));
    s_block_t *head = atomic_load_explicit(&self->returned, memory_order_relaxed);
    do {
        b->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&self->returned, &head, b, memory_order_release,
                                                    memory_order_relaxed));
}

/* An idle block, or NULL when the pool is at its limit (or out of memory). */
static s_block_t *s_take(eng_msgpool_t *self)
{
    if (!self->idle) {
        self->idle = atomic_exchange_explicit(&self->returned, NULL, memory_order_acquire);
    }
    s_block_t *b = self->idle;
    if (b) {
        self->idle = b->next;
        return b;
    }
    if (self->stats.blocks >= S_MAX_BLOCKS || !(b = malloc(S_BLOCK))) {
        return NULL;
    }
    self->stats.blocks++;
    return b;
}

int eng_msgpool_send(eng_msgpool_t *self, void *sock, const void *data, size_t len, int flags)
{
    s_block_t *b = len > S_INLINE && len <= S_DATA ? s_take(self) : NULL;
    zmq_msg_t m;
    if (b && zmq_msg_init_data(&m, b->data, len, s_release, self) != 0) {
        b->next = self->idle; /* no memory for libzmq's message header */
        self->idle = b;
        b = NULL;
    }
    if (!b) {
        self->stats.fallbacks++;
        return zmq_send(sock, data, len, flags) < 0 ? -1 : 0;
    }
    memcpy(b->data, data, len);
    if (zmq_msg_send(&m, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m); /* gives the block back through s_release */
        errno = e;
        return -1;
    }
    self->stats.pooled++;
    return 0;
}

size_t eng_msgpool_trim(eng_msgpool_t *self, size_t keep)
{
    size_t freed = 0;
    for (int pass = 0; pass < 2 && self->stats.blocks > keep; pass++) {
        if (!self->idle) {
            self->idle = atomic_exchange_explicit(&self->returned, NULL, memory_order_acquire);
        }
        while (self->idle && self->stats.blocks > keep) {
            s_block_t *b = self->idle;
            self->idle = b->next;
            free(b);
            self->stats.blocks--;
            freed++;
        }
    }
    return freed;
}

eng_msgpool_stats_t eng_msgpool_stats(const eng_msgpool_t *self)
{
    return self->stats;
}
