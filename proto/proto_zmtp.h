/* proto_zmtp.h - ZMTP 3 framing without libzmq, for a DEALER that talks to
 * hpp-engine's ROUTER and for the engine's direct listener, which plays the
 * ROUTER: the greeting, the READY handshake, and frames.
 *
 * Why it exists: a libzmq socket hands every message to its own I/O thread
 * and back, two cross-thread wake-ups per round trip on the client side
 * alone. A client that already runs an event loop (the sidecar) can speak
 * the wire protocol on its own TCP socket and save them; bench/RESULTS.md
 * has the measured difference. The engine keeps libzmq: it sees an ordinary
 * ZMTP 3.0 DEALER peer.
 *
 * The codec does no I/O (as hiredis's reader): the caller writes what
 * proto_zmtp_hello() and proto_zmtp_frame_head() produce, and feeds every
 * byte it reads to proto_zmtp_read(), which hands back one event at a time.
 * Only the NULL security mechanism is spoken. The specs are ZeroMQ RFC 23
 * (ZMTP 3.0) and RFC 37 (ZMTP 3.1, which adds PING/PONG).
 */
#ifndef PROTO_ZMTP_H
#define PROTO_ZMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_ZMTP_GREETING 64  /* bytes of a greeting */
#define PROTO_ZMTP_HELLO_MAX 96 /* bytes proto_zmtp_hello() writes at most */
#define PROTO_ZMTP_HEAD_MAX 9   /* bytes of a frame header at most */
#define PROTO_ZMTP_PONG_MAX 32  /* bytes proto_zmtp_pong() writes at most */

typedef enum {
    PROTO_ZMTP_EV_NONE = 0, /* nothing to act on (more bytes needed, or a command skipped) */
    PROTO_ZMTP_EV_READY,    /* handshake done: messages may be sent now */
    PROTO_ZMTP_EV_FRAME,    /* a message frame: data, len, more */
    PROTO_ZMTP_EV_PING,     /* the peer pings: answer proto_zmtp_pong() */
    PROTO_ZMTP_EV_ERROR,    /* protocol error or the peer's ERROR: msg; close the connection */
} proto_zmtp_kind_t;

typedef struct {
    proto_zmtp_kind_t kind;
    const uint8_t *data; /* FRAME: body; PING: context; borrowed from the input */
    size_t len;          /* its byte count */
    bool more;           /* FRAME: more frames of this message follow */
    size_t need;         /* NONE with nothing consumed: bytes the next unit needs in all */
    char msg[160];       /* ERROR: what went wrong */
} proto_zmtp_ev_t;

/* The reading side of one connection. Zero it with proto_zmtp_init. */
typedef struct {
    int state;        /* greeting, READY, frames (private) */
    bool router;      /* we are the ROUTER: the peer must be a DEALER or REQ */
    size_t max_frame; /* a larger frame is an error */
    uint64_t offset;  /* stream bytes consumed so far, for error messages */
} proto_zmtp_t;

void proto_zmtp_init(proto_zmtp_t *z, size_t max_frame);

/* The same for the ROUTER's side of a connection (a server). */
void proto_zmtp_init_router(proto_zmtp_t *z, size_t max_frame);

/* Our greeting (ZMTP 3.0, NULL, client) and READY (Socket-Type DEALER),
 * to be sent first, in one piece. Returns the byte count (<= cap), 0 if
 * cap is too small. */
size_t proto_zmtp_hello(uint8_t *out, size_t cap);

/* The ROUTER's greeting and READY (Socket-Type ROUTER), as above. */
size_t proto_zmtp_hello_router(uint8_t *out, size_t cap);

/* Writes the header of a message frame of `len` bytes; returns 2 or 9. */
size_t proto_zmtp_frame_head(uint8_t out[PROTO_ZMTP_HEAD_MAX], uint64_t len, bool more);

/* The PONG that answers `ping` (an EV_PING event). Returns its byte count. */
size_t proto_zmtp_pong(uint8_t out[PROTO_ZMTP_PONG_MAX], const proto_zmtp_ev_t *ping);

/* Reads the next unit (the greeting, a command or a frame) from
 * buf[0..len). Returns the bytes consumed: 0 with EV_NONE when the unit is
 * not complete (ev->need says how many bytes it needs from buf's start);
 * > 0 with the unit's event (EV_NONE for a command that needs no action).
 * Returns -1 with EV_ERROR on a protocol violation; the stream is then
 * unusable. Call it again while it consumes bytes. */
long proto_zmtp_read(proto_zmtp_t *z, const uint8_t *buf, size_t len, proto_zmtp_ev_t *ev);

#endif
