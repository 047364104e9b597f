/* hpp_client.h - a small C client for hpp-engine.
 *
 * One client = one ZeroMQ DEALER connected to one or several engines.
 * Requests may be pipelined: send several, then receive replies in any
 * order, matched by id. ZeroMQ reconnects by itself when an engine
 * restarts. Errors are values; nothing here aborts or prints.
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
 * Several engines, CURVE (hpp_client_new_opts):
 *
 *     const char *eps[] = {"tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"};
 *     hpp_client_opts_t o;
 *     hpp_client_opts_init(&o);
 *     o.endpoints = eps;
 *     o.nendpoints = 2;
 *     o.curve_server_key = "keys/engine.pub";   (the engines' public key)
 *     o.curve_secret_key = "keys/gateway.sec";  (this client's, mode 0600)
 *     hpp_client_t *c = hpp_client_new_opts(&o, NULL, err, sizeof err);
 *
 * With one endpoint, a request sent while the engine is away waits in
 * ZeroMQ's queue and goes out when the engine is back (answered late, or
 * HPP_ERR_TIMEOUT for a caller that did not wait that long). What happens
 * to a request with several engines:
 *
 *   - Each request goes to one engine, the next connected one in turn
 *     (ZeroMQ's round robin). Only engines the client is connected to take
 *     part (ZMQ_IMMEDIATE): a request is never queued for an engine that is
 *     away, and with none connected a send waits, within its timeout, for
 *     the first one to come (or back).
 *   - A dead engine is dropped from the turn when its connection closes (a
 *     killed process: at once) or, for one that stops answering without
 *     closing (a hung process, a host gone), when the ZMTP heartbeat has had
 *     no answer for 3 x heartbeat_ms.
 *   - Requests the dead engine had taken are lost with it. The synchronous
 *     helpers (hpp_client_call, _route, _op) therefore send a request again,
 *     with the same id, when it is unanswered after resend_ms, then after
 *     2x, 4x ... that (each time to the next engine in turn), until its
 *     reply comes or the caller's timeout ends. The first reply wins; a
 *     later reply to the same id (the engine was only slow) is dropped and
 *     counted (hpp_client_counters). A `reload` is never sent twice. The
 *     plain hpp_client_send / _recv / _recv_id send exactly once: a
 *     pipelining caller resends what it wants itself.
 *   - Route, explain, models, stats and ping change nothing in the engine
 *     but its request counters, so an engine that answers a request twice
 *     does no harm. An op that is
 *     about one engine (stats, reload, ping) is answered by whichever engine
 *     the turn picks: to reach a given engine, use a client connected to it
 *     alone.
 *
 * CURVE: with curve_server_key and curve_secret_key, every connection is
 * encrypted and authenticated (ZeroMQ's CURVE: the engine proves it holds
 * the secret of the public key given here, the client proves it holds its
 * own secret, which the engine checks against its allow-list). The key
 * files are those of hpp_keys.h; the secret is read from a file that only
 * its owner may read, never from argv, and wiped from memory once ZeroMQ
 * has it. A client whose key the engine does not allow is not told so: its
 * requests are not answered, and the caller sees HPP_ERR_TIMEOUT.
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

#define HPP_CLIENT_MAX_ENDPOINTS 8  /* engines one client connects to */
#define HPP_CLIENT_HEARTBEAT_MS 500 /* default ZMTP heartbeat interval */
#define HPP_CLIENT_RESEND_MS 100    /* default first resend of an unanswered request */

/* How to connect. Start from hpp_client_opts_init(); a field left zero
 * (a struct zeroed by hand) means "off". */
typedef struct {
    const char *const *endpoints; /* 1 .. HPP_CLIENT_MAX_ENDPOINTS engines */
    size_t nendpoints;            /* how many */
    const char *curve_server_key; /* file: the engines' CURVE public key, or NULL */
    const char
        *curve_secret_key; /* file: this client's CURVE secret key, or NULL (both or neither) */
    int heartbeat_ms;      /* ZMTP PING every this many ms; an engine silent for 3x is
                              dropped. 0 = no heartbeat */
    int resend_ms;         /* call/route/op: first resend of an unanswered request after this
                              many ms, then doubling. 0 = send once */
} hpp_client_opts_t;

/* No endpoint, no CURVE, heartbeat HPP_CLIENT_HEARTBEAT_MS, resend
 * HPP_CLIENT_RESEND_MS. */
void hpp_client_opts_init(hpp_client_opts_t *opts);

/* Connects one DEALER to every endpoint of `opts` (read during the call
 * only). `zmq_ctx` may be NULL (the client then owns a context of its own)
 * or a context shared by several clients, which must outlive them. Returns
 * NULL with a message in errbuf: a bad endpoint, a key file that cannot be
 * read or is readable by others, a libzmq without CURVE. */
hpp_client_t *hpp_client_new_opts(const hpp_client_opts_t *opts, void *zmq_ctx, char *errbuf,
                                  size_t errlen);

/* One endpoint, the defaults of hpp_client_opts_init except resend_ms = 0:
 * each request is sent once, as in the first versions of this client. */
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

/* send + recv_id within one time limit, resending as the opts say (see
 * the top of this file). Returns HPP_ERR_ENGINE (with the reply in *out)
 * when the engine answered ok=false. */
int hpp_client_call(hpp_client_t *self, proto_request_t *req, hpp_reply_t *out, int timeout_ms);

/* One routing decision, synchronously. */
int hpp_client_route(hpp_client_t *self, const hpp_features_t *features, hpp_reply_t *out,
                     int timeout_ms);

/* Any op without features (models, stats, reload, ping), synchronously. */
int hpp_client_op(hpp_client_t *self, proto_op_t op, hpp_reply_t *out, int timeout_ms);

/* Reports: the outcome of each call to an endpoint (the report op). ------ */

/* Sends `n` attempts (1 .. PROTO_MAX_ATTEMPTS) in one report frame, once
 * (never resent: the engine would count them twice). Without `ack` it
 * returns once the frame is handed to ZeroMQ: the engine answers only a
 * refused report, with an error reply carrying the report's id, which a
 * later receive returns (or stashes). With `ack` it waits for the engine's
 * answer in *out: ok with the count, or HPP_ERR_ENGINE and the located
 * refusal ("attempts[1].status: ..."). */
int hpp_client_report(hpp_client_t *self, const proto_attempt_t *attempts, size_t n, bool ack,
                      hpp_reply_t *out, int timeout_ms);

/* Replies dropped from a full stash so far. */
size_t hpp_client_dropped(const hpp_client_t *self);

/* What the client did on its own so far. */
typedef struct {
    size_t dropped;    /* replies dropped from a full stash (hpp_client_dropped) */
    size_t resent;     /* requests sent again for want of a reply */
    size_t duplicates; /* second replies to a resent request, dropped */
} hpp_client_counters_t;

void hpp_client_counters(const hpp_client_t *self, hpp_client_counters_t *out);

/* The last error's details ("reply: v: required key missing"), "" if none. */
const char *hpp_client_errstr(const hpp_client_t *self);

#endif
