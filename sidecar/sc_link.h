/* sc_link.h - the byte pipe under sc_engine: one DEALER connection to one
 * hpp-engine, driven by the sidecar's libevent loop.
 *
 * Two kinds, one contract:
 *   SC_LINK_ZMTP    the loop's own TCP or unix socket speaking ZMTP 3
 *                   (proto_zmtp.h).
 *                   A round trip wakes no other thread of the sidecar, and a
 *                   send is written by the loop itself, not handed to an I/O
 *                   thread: every frame of one turn of the loop in one write,
 *                   at the end of that turn.
 *                   The NULL mechanism only.
 *   SC_LINK_LIBZMQ  a libzmq DEALER watched through ZMQ_FD. Any endpoint
 *                   libzmq knows (hostnames resolved per connect), and CURVE.
 *   SC_LINK_LOCAL   no engine process: the engine's answers in this one
 *                   (sc_local.h, eng_local.h); up from the first turn of
 *                   the loop, never down. Chosen by the caller, never by
 *                   AUTO.
 * SC_LINK_AUTO picks libzmq when CURVE is asked for, else ZMTP for
 * tcp://HOST:PORT and ipc://PATH, and libzmq for the rest.
 *
 * Both send only while a connection to the engine is up (libzmq with
 * ZMQ_IMMEDIATE), reconnect by themselves (100 ms, doubling to 1 s), and
 * hand each received message's last frame to the callback, on the loop.
 * Messages lost with a connection are not reported; the state callback
 * says when the connection comes up and when it goes, so the caller can
 * send what it lost elsewhere (sc_engine.h).
 */
#ifndef SC_LINK_H
#define SC_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpp_keys.h"

struct event_base;
struct eng_local;

typedef enum { SC_LINK_AUTO = 0, SC_LINK_ZMTP, SC_LINK_LIBZMQ, SC_LINK_LOCAL } sc_link_kind_t;

/* Parses "auto", "zmtp" or "libzmq" (the kinds a flag may name); returns
 * -1 for anything else. */
int sc_link_kind_parse(const char *s, sc_link_kind_t *out);
const char *sc_link_kind_name(sc_link_kind_t kind);

/* One received message: its last frame, valid during the call only. */
typedef void (*sc_link_cb)(void *arg, const void *buf, size_t len);

/* The connection came up (handshake done) or went away. Runs on the loop,
 * never inside sc_link_send; the link already reports the new state. */
typedef void (*sc_link_state_cb)(void *arg, bool up);

/* CURVE client keys (hpp_keys.h): the engine's public key and our own
 * pair, whose public half is in the engine's --curve-clients. */
typedef hpp_curve_client_t sc_link_curve_t;

typedef struct {
    const char *endpoint;         /* e.g. tcp://127.0.0.1:5555 (LOCAL: a name for logs) */
    sc_link_kind_t kind;          /* AUTO, ZMTP, LIBZMQ or LOCAL */
    struct eng_local *local;      /* LOCAL: the engine answering, borrowed */
    size_t reader;                /* LOCAL: our reader slot of it */
    const sc_link_curve_t *curve; /* NULL: the NULL mechanism; read by sc_link_new only */
    sc_link_cb on_message;        /* a reply arrived */
    sc_link_state_cb on_state;    /* may be NULL */
    void *arg;                    /* for both callbacks */
} sc_link_config_t;

typedef struct sc_link sc_link_t;

/* Starts connecting in the background. Returns NULL with a message in
 * errbuf when the endpoint cannot work with that kind (ZMTP: not
 * tcp://HOST:PORT, a host that does not resolve, or CURVE asked for), when
 * libzmq has no CURVE support, or on no memory. */
sc_link_t *sc_link_new(struct event_base *base, const sc_link_config_t *cfg, char *errbuf,
                       size_t errlen);

/* Closes the connection; no callback runs after. Idempotent. */
void sc_link_destroy(sc_link_t **self_p);

/* Sends one single-frame message. Returns 0, or -1 when no connection is
 * up or the send queue is full. Never blocks, never calls back. */
int sc_link_send(sc_link_t *self, const void *buf, size_t len);

/* System calls that wrote to the engine's socket (zmtp; 0 for libzmq,
 * whose I/O thread writes): the frames sent in one turn of the loop go out
 * in one. */
uint64_t sc_link_writes(const sc_link_t *self);

/* The kind in use (never SC_LINK_AUTO). */
sc_link_kind_t sc_link_kind(const sc_link_t *self);

/* True while the connection is up: the handshake is done and it has not
 * been seen to break. A send may still fail (sc_link_send). */
bool sc_link_up(const sc_link_t *self);

#endif
