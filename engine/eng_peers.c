/* eng_peers.c - per-client accounting of the frontend (eng_peers.h).
 *
 * Owns the entries and the index. The index is open addressing with linear
 * probing over twice as many slots as entries, so it is at most half full;
 * entries are never removed one by one (no tombstones): when every entry is
 * taken, the idle ones (nothing at the workers, no bytes in libzmq) are
 * freed and the index rebuilt from the others. A message sent through
 * eng_peers_send owns a small hold (the original message and where to give
 * its bytes back), freed by libzmq's free callback in whatever thread drops
 * the message.
 */
#include "eng_peers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"

struct eng_peers {
    eng_peer_t *entries;    /* cap of them */
    uint32_t cap;           /* entries */
    uint32_t *slots;        /* index: entry number + 1, 0 = empty */
    uint32_t mask;          /* slots - 1 (a power of two) */
    uint32_t *free;         /* numbers of free entries (a stack) */
    uint32_t nfree;         /* its depth */
    _Atomic int64_t queued; /* bytes in libzmq, all clients */
};

/* A sent message's link to its client (see eng_peers_send). */
typedef struct {
    zmq_msg_t msg;          /* the original, holding the bytes */
    eng_peer_t *peer;       /* whose bytes */
    _Atomic int64_t *total; /* the table's total */
    int64_t len;            /* bytes counted */
} s_hold_t;

eng_peers_t *eng_peers_new(uint32_t cap)
{
    if (cap < 1 || cap > (1u << 24)) {
        return NULL;
    }
    uint32_t nslots = 2;
    while (nslots < 2 * cap) {
        nslots <<= 1;
    }
    eng_peers_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->entries = calloc(cap, sizeof *self->entries);
    self->slots = calloc(nslots, sizeof *self->slots);
    self->free = calloc(cap, sizeof *self->free);
    if (!self->entries || !self->slots || !self->free) {
        eng_peers_destroy(&self);
        return NULL;
    }
    self->cap = cap;
    self->mask = nslots - 1;
    for (uint32_t i = 0; i < cap; i++) {
        self->free[i] = cap - 1 - i;
        atomic_init(&self->entries[i].queued, 0);
    }
    self->nfree = cap;
    atomic_init(&self->queued, 0);
    return self;
}

void eng_peers_destroy(eng_peers_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_peers_t *self = *self_p;
    free(self->entries);
    free(self->slots);
    free(self->free);
    free(self);
    *self_p = NULL;
}

/* FNV-1a: routing ids are short (5 bytes when libzmq makes them). */
static uint64_t s_hash(const unsigned char *p, size_t n)
{
    return eng_fnv1a(p, n);
}

/* The slot holding that id, or the empty slot where it would go. */
static uint32_t s_probe(const eng_peers_t *self, const unsigned char *id, size_t len, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & self->mask;; i = (i + 1) & self->mask) {
        uint32_t e = self->slots[i];
        if (e == 0) {
            return i;
        }
        const eng_peer_t *p = &self->entries[e - 1];
        if (p->hash == h && p->idlen == len && memcmp(p->id, id, len) == 0) {
            return i;
        }
    }
}

eng_peer_t *eng_peers_find(eng_peers_t *self, const void *id, size_t len)
{
    if (len == 0 || len > ENG_PEERS_ID_MAX) {
        return NULL;
    }
    uint32_t e = self->slots[s_probe(self, id, len, s_hash(id, len))];
    return e ? &self->entries[e - 1] : NULL;
}

/* Frees the entries with nothing outstanding and rebuilds the index. A zero
 * byte count read here is final: bytes come back only after they were
 * counted, and only this thread counts. */
static void s_reclaim(eng_peers_t *self)
{
    memset(self->slots, 0, ((size_t)self->mask + 1) * sizeof *self->slots);
    self->nfree = 0;
    for (uint32_t i = self->cap; i-- > 0;) {
        eng_peer_t *p = &self->entries[i];
        if (p->idlen &&
            (p->at_workers > 0 || atomic_load_explicit(&p->queued, memory_order_acquire) != 0)) {
            self->slots[s_probe(self, p->id, p->idlen, p->hash)] = i + 1;
        } else {
            p->idlen = 0;
            self->free[self->nfree++] = i;
        }
    }
}

eng_peer_t *eng_peers_get(eng_peers_t *self, const void *id, size_t len)
{
    if (len == 0 || len > ENG_PEERS_ID_MAX) {
        return NULL;
    }
    uint64_t h = s_hash(id, len);
    uint32_t slot = s_probe(self, id, len, h);
    if (self->slots[slot]) {
        return &self->entries[self->slots[slot] - 1];
    }
    if (self->nfree == 0) {
        s_reclaim(self);
        if (self->nfree == 0) {
            return NULL;
        }
        slot = s_probe(self, id, len, h);
    }
    uint32_t e = self->free[--self->nfree];
    eng_peer_t *p = &self->entries[e];
    p->idlen = (uint32_t)len;
    p->hash = h;
    p->at_workers = 0;
    p->stalled_until = 0;
    memcpy(p->id, id, len);
    self->slots[slot] = e + 1;
    return p;
}

int64_t eng_peers_queued(const eng_peers_t *self)
{
    return atomic_load_explicit(&self->queued, memory_order_relaxed);
}

/* libzmq's free function: runs in whichever thread drops the message. */
static void s_release(void *data, void *hint)
{
    (void)data;
    s_hold_t *hold = hint;
    atomic_fetch_sub_explicit(&hold->peer->queued, hold->len, memory_order_release);
    atomic_fetch_sub_explicit(hold->total, hold->len, memory_order_relaxed);
    zmq_msg_close(&hold->msg);
    free(hold);
}

int eng_peers_send(eng_peers_t *self, eng_peer_t *peer, void *sock, zmq_msg_t *body, int flags)
{
    s_hold_t *hold = malloc(sizeof *hold);
    if (!hold) {
        zmq_msg_close(body);
        errno = ENOMEM;
        return -1;
    }
    zmq_msg_init(&hold->msg);
    zmq_msg_move(&hold->msg, body);
    zmq_msg_close(body);
    hold->peer = peer;
    hold->total = &self->queued;
    hold->len = (int64_t)zmq_msg_size(&hold->msg);
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, zmq_msg_data(&hold->msg), zmq_msg_size(&hold->msg), s_release,
                          hold) != 0) {
        zmq_msg_close(&hold->msg);
        free(hold);
        errno = ENOMEM;
        return -1;
    }
    /* Counted before the send: the I/O thread may free it at once. */
    atomic_fetch_add_explicit(&peer->queued, hold->len, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->queued, hold->len, memory_order_relaxed);
    if (zmq_msg_send(&m, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m); /* gives the bytes back through s_release */
        errno = e;
        return -1;
    }
    return 0;
}
