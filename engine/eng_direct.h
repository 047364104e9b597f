/* eng_direct.h - the engine's direct listener: ZMTP 3 spoken on the
 * frontend thread's own sockets, without libzmq.
 *
 * Why it exists: the ROUTER (libzmq) hands every message from its I/O
 * thread to the frontend thread and every reply back, two cross-thread
 * wake-ups per request. At one request in flight those wake-ups are most of
 * the round trip: 71 us against 4.5 us for the same echo on a plain socket
 * (bench/RESULTS.md). A direct connection is read, decided and written by
 * the frontend thread alone. Clients see an ordinary ROUTER: the sidecar's
 * zmtp link, a libzmq DEALER or REQ connect to it unchanged.
 *
 * What it does not do: security. It speaks ZMTP's NULL mechanism only, so
 * it binds loopback TCP addresses or a unix socket (ipc://PATH, mode 0660:
 * the file's owner and group are the check), and the engine refuses to open
 * it on TCP when the ROUTER serves CURVE (eng_server.c).
 *
 * Limits: at most ENG_DIRECT_CONNS connections; a frame over max_frame
 * closes its connection; a connection that has not finished its handshake
 * within ENG_DIRECT_HANDSHAKE_MS is closed; while `out_max` reply bytes are
 * unwritten to a connection, nothing more is read from it (the client is
 * not reading, so it gets no more answers to wait for), nor from any
 * connection with replies unwritten while all of them hold `total_max`; a
 * large reply (>= ENG_DIRECT_LARGE bytes) past its connection's limit is
 * refused to the caller. Requests are read a few kilobytes at a time, so
 * what one read can add on top of those limits stays small.
 *
 * The module owns every socket and buffer; the caller owns the messages'
 * meaning. Only the thread that polls may call it.
 */
#ifndef ENG_DIRECT_H
#define ENG_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_common.h"

#define ENG_DIRECT_CONNS 1024        /* connections at once; more are closed at accept */
#define ENG_DIRECT_HANDSHAKE_MS 2000 /* greeting and READY must arrive within this */
#define ENG_DIRECT_LARGE 2048        /* replies this large may be refused (see above) */

typedef struct eng_direct eng_direct_t;

/* A connection, as a handle that goes stale when it closes (the slot is
 * reused with another generation), so a late reply never reaches another
 * client. */
typedef uint64_t eng_direct_conn_t;

/* One message a client sent. A well-shaped one is the body alone, or an
 * empty delimiter then the body (REQ, and DEALERs that copy it). */
typedef struct {
    const uint8_t *body; /* the last frame, borrowed until the callback returns */
    size_t len;          /* its bytes */
    bool delim;          /* an empty delimiter came first: the reply carries one too */
    uint32_t frames;     /* frames in all; well-shaped: 1, or 2 with delim */
} eng_direct_msg_t;

typedef void (*eng_direct_cb)(void *arg, eng_direct_conn_t conn, const eng_direct_msg_t *msg);

/* Binds `endpoint` (tcp://HOST:PORT with HOST a loopback address or
 * "localhost", PORT 0 or * for any; or ipc://PATH, refused while another
 * process serves it) and listens. `max_frame`: the largest frame read;
 * `out_max`: the unwritten reply bytes per connection at which reading from
 * it stops; `total_max`: the same for all connections together (then only
 * connections with nothing unwritten are read). NULL with `err` set on
 * failure. */
eng_direct_t *eng_direct_new(const char *endpoint, size_t max_frame, size_t out_max,
                             size_t total_max, eng_error_t *err);

/* The endpoint as bound (the real port), for logs and --help's readers. */
const char *eng_direct_endpoint(const eng_direct_t *self);

/* A descriptor that becomes readable when the listener has work: add it to
 * the caller's poll set. */
int eng_direct_fd(const eng_direct_t *self);

/* Does the work that is due without waiting: accepts, reads and hands
 * every complete message to `cb`, answers pings, closes what broke, and
 * writes what was queued. Returns the messages handed over. */
int eng_direct_poll(eng_direct_t *self, eng_direct_cb cb, void *arg);

/* Queues a reply to `conn`, written by the next poll or flush. Returns 0;
 * -1 when the connection is gone; -2 when `len` >= ENG_DIRECT_LARGE and
 * the connection already has out_max bytes unwritten (the caller may send
 * a short error instead). */
int eng_direct_send(eng_direct_t *self, eng_direct_conn_t conn, bool delim, const void *body,
                    size_t len);

/* Writes what eng_direct_send queued since the last poll or flush. */
void eng_direct_flush(eng_direct_t *self);

/* Reply bytes queued and not yet taken by clients' connections, as of the
 * last poll or flush; safe from any thread (stats), 0 for NULL. */
size_t eng_direct_queued(const eng_direct_t *self);

/* Shutdown's last step: writes what is queued, waiting up to `ms` for
 * clients to take it. */
void eng_direct_linger(eng_direct_t *self, int ms);

/* Shutdown's first step: accept no more connections and read no more
 * requests; replies still go out. */
void eng_direct_stop(eng_direct_t *self);

/* Open connections (for stats and tests). */
unsigned eng_direct_open(const eng_direct_t *self);

/* Writes what it can without waiting, closes everything, and removes the
 * socket file of an ipc:// endpoint. Idempotent. */
void eng_direct_destroy(eng_direct_t **self_p);

#endif
