/* hpp_client.h - a small C client for hpp-engine.
 *
 * One client = one ZeroMQ DEALER connected to the engine. Requests may be
 * pipelined: send several, then receive replies in any order, matched by
 * id. ZeroMQ reconnects by itself when the engine restarts; a request sent
 * while it is away is answered late or not at all, which the caller sees as
 * HPP_ERR_TIMEOUT. Errors are values; nothing here aborts or prints.
 *
 *     hpp_client_t *c = hpp_client_new("tcp://127.0.0.1:5555", NULL, err, sizeof err);
 *     hpp_features_t f;
 *     hpp_features_init(&f);
 *     f.prompt_tokens = 1200;
 *     hpp_reply_t rep = {0};
 *     if (hpp_client_route(c, &f, &rep, 200) == HPP_OK)
 *         printf("%.*s\n", (int)rep.r.model.len, rep.r.model.ptr);
 *     hpp_reply_close(&rep);
 *     hpp_client_destroy(&c);
 *
 * A client is not thread-safe (neither is a ZeroMQ socket): use one per
 * thread, optionally sharing one ZeroMQ context.
 */
#ifndef HPP_CLIENT_H
#define HPP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#include "proto.h"

/* Return codes: HPP_OK (0, the contract's own, hpp_request.h) or one of these. */
typedef enum {
    HPP_ERR_ARG = -1,       /* invalid argument (NULL, bad endpoint) */
    HPP_ERR_TRANSPORT = -2, /* ZeroMQ failed */
    HPP_ERR_TIMEOUT = -3,   /* no reply (or no room to send) in time */
    HPP_ERR_PROTO = -4,     /* the reply is not valid protocol */
    HPP_ERR_ENGINE = -5,    /* the engine answered ok=false: see reply.r.status */
    HPP_ERR_NOMEM = -6,     /* allocation failed */
} hpp_rc_t;

/* "ok", "timeout", ... Never NULL. */
const char *hpp_strerror(int rc);

/* Replies the client keeps for hpp_client_recv_id while waiting for another
 * id. When full, the oldest is dropped (counted by hpp_client_dropped). */
#define HPP_CLIENT_STASH 1024

typedef struct hpp_client hpp_client_t;

/* Connects a DEALER to `endpoint`. `zmq_ctx` may be NULL (the client then
 * owns a context of its own) or a context shared by several clients, which
 * must outlive them. Returns NULL with a message in errbuf. */
hpp_client_t *hpp_client_new(const char *endpoint, void *zmq_ctx, char *errbuf, size_t errlen);

/* Closes the socket (pending requests are abandoned) and frees the client,
 * its stash and its own context; idempotent. */
void hpp_client_destroy(hpp_client_t **self_p);

/* A received reply. It owns the frame; `r` and `data` borrow from it until
 * hpp_reply_close() or the next receive into the same struct. Zero-initialise
 * before first use ({0}). */
typedef struct {
    proto_reply_t r;  /* decoded common fields and decision */
    const void *data; /* the raw reply frame (for proto_models_iter_init, proto_to_json) */
    size_t len;       /* its size */
    zmq_msg_t msg;    /* owner of the bytes */
    bool has_msg;     /* msg is initialised */
} hpp_reply_t;

/* Releases the frame; idempotent. */
void hpp_reply_close(hpp_reply_t *rep);

/* Sends a request without waiting for its reply. When req->id is
 * PROTO_ID_NONE a fresh integer id is assigned and written back, so the
 * caller can hpp_client_recv_id() it. Waits at most timeout_ms (-1 =
 * forever) for room in the send queue. */
int hpp_client_send(hpp_client_t *self, proto_request_t *req, int timeout_ms);

/* Receives the next reply, whatever its id (stashed replies first). */
int hpp_client_recv(hpp_client_t *self, hpp_reply_t *out, int timeout_ms);

/* Receives the reply to `id`; replies to other ids that arrive meanwhile are
 * stashed for later calls. */
int hpp_client_recv_id(hpp_client_t *self, const proto_id_t *id, hpp_reply_t *out, int timeout_ms);

/* send + recv_id within one time limit. Returns HPP_ERR_ENGINE (with the
 * reply in *out) when the engine answered ok=false. */
int hpp_client_call(hpp_client_t *self, proto_request_t *req, hpp_reply_t *out, int timeout_ms);

/* One routing decision, synchronously. */
int hpp_client_route(hpp_client_t *self, const hpp_features_t *features, hpp_reply_t *out,
                     int timeout_ms);

/* Any op without features (models, stats, reload, ping), synchronously. */
int hpp_client_op(hpp_client_t *self, proto_op_t op, hpp_reply_t *out, int timeout_ms);

/* Replies dropped from a full stash so far. */
size_t hpp_client_dropped(const hpp_client_t *self);

/* The last error's details ("reply: v: required key missing"), "" if none. */
const char *hpp_client_errstr(const hpp_client_t *self);

#endif
