/* eng_zap.h - who may connect: a ZAP handler over the CURVE allow-list.
 *
 * libzmq asks a ZAP handler (ZeroMQ RFC 27, a REP socket bound on
 * inproc://zeromq.zap.01 in the same context) about every CURVE handshake
 * of a server socket. This one answers 200 with User-Id "admin" or "client"
 * for a key of the allow-list (eng_allow.h), which then rides on every
 * message of that connection (zmq_msg_gets "User-Id"), and 400 for any
 * other key: the handshake fails and the client gets no reply at all.
 * Refusals are logged with the key and the peer's address, at most one
 * line a second; the refusals in between are counted in the next line.
 */
#ifndef ENG_ZAP_H
#define ENG_ZAP_H

#include "eng_common.h"

typedef struct eng_zap eng_zap_t;

/* Loads the allow-list at `path`, binds the ZAP socket in `zmq_ctx` and
 * starts the handler thread. Call it before binding the CURVE socket: a
 * handshake that finds no handler is not checked. Returns NULL with `err`
 * filled (a bad list names its file and line). */
eng_zap_t *eng_zap_new(void *zmq_ctx, const char *path, eng_error_t *err);

/* Re-reads the allow-list (SIGHUP). A list that does not load is logged,
 * file:line included, and the current one keeps serving. Returns 0 when
 * the new list serves. Any thread; connections being checked meanwhile
 * see the old list or the new one, never a mix. */
int eng_zap_reload(eng_zap_t *self);

/* Ends the thread and frees. The context must be shut down (or terminated
 * from another thread) first: the thread leaves on ETERM. Idempotent. */
void eng_zap_destroy(eng_zap_t **self_p);

#endif
