/* eng_peers.h - what each client of the engine has outstanding, so that no
 * client can make the engine hold an unbounded amount of memory for it.
 *
 * A client that sends requests and never reads its replies makes libzmq keep
 * every reply in that connection's pipe until the high-water mark (a count of
 * messages, whatever their size: a models reply of a full catalog is hundreds
 * of kilobytes). The frontend therefore counts, per client (ZeroMQ routing
 * id), the requests it has at the workers and the bytes of the large replies
 * handed to libzmq and not yet written to the connection, and refuses or
 * drops past its limits (eng_server.c). Small replies (route, ping, errors)
 * stay bounded by the high-water mark alone.
 *
 * The table belongs to the frontend thread: only it looks up, adds and
 * counts requests. The byte counts are atomics, because libzmq's I/O thread
 * gives the bytes back when it frees a sent message (eng_peers_send). Entries
 * have fixed addresses for the table's life (a message in flight points at
 * its client's entry); an entry with nothing outstanding is reused for
 * another client only when the table is full.
 */
#ifndef ENG_PEERS_H
#define ENG_PEERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define ENG_PEERS_ID_MAX 255 /* longest ZeroMQ routing id */

/* One client. */
typedef struct {
    _Atomic int64_t queued;             /* reply bytes in libzmq for it (eng_peers_send) */
    uint32_t at_workers;                /* its requests at the workers (frontend only) */
    int64_t stalled_until;              /* its connection's queue was full: no reply tried
                                           before this (monotonic ms, frontend only) */
    uint32_t idlen;                     /* bytes of id; 0 = free entry */
    uint64_t hash;                      /* of id */
    unsigned char id[ENG_PEERS_ID_MAX]; /* routing id */
} eng_peer_t;

typedef struct eng_peers eng_peers_t;

/* A table of at most `cap` clients (>= 1), or NULL when out of memory. */
eng_peers_t *eng_peers_new(uint32_t cap);

/* Frees the table; idempotent. Only once no message sent with
 * eng_peers_send is alive (after zmq_ctx_term). */
void eng_peers_destroy(eng_peers_t **self_p);

/* The entry of routing id id[0..len), or NULL when it has none. */
eng_peer_t *eng_peers_find(eng_peers_t *self, const void *id, size_t len);

/* The entry of that id, added when missing; NULL when every entry has
 * something outstanding (or the id is longer than ENG_PEERS_ID_MAX). */
eng_peer_t *eng_peers_get(eng_peers_t *self, const void *id, size_t len);

/* Reply bytes in libzmq for all clients together. */
int64_t eng_peers_queued(const eng_peers_t *self);

/* Sends `body` (consumed, also on failure) on `sock` as the last frame,
 * counting its size against `peer` and the total until libzmq frees it
 * (written to the connection, or dropped when the client leaves). No copy:
 * the message keeps the original's bytes. Returns 0, or -1 with errno. */
int eng_peers_send(eng_peers_t *self, eng_peer_t *peer, void *sock, zmq_msg_t *body, int flags);

#endif
