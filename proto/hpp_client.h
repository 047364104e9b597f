/* hpp_client.h - the C client of hpp-engine, the project's own view.
 *
 * The public API is hpprouter/client.h (libhppclient, standard headers
 * only, opaque requests and replies). This header adds what the project's
 * own programs (tests, benchmarks) use on top of it: the reply as a struct
 * to keep on the stack, and calls that take the codec's types
 * (proto_request_t, hpp_features_t, proto_op_t, proto_id_t). Its functions
 * are not exported by the shared library.
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

#include "hpprouter/client.h"
#include "proto.h"

/* A received reply. It owns the frame; `r` and `data` borrow from it until
 * hpp_reply_close() or the next receive into the same struct. Zero-initialise
 * before first use ({0}). */
struct hpp_reply {
    proto_reply_t r;  /* decoded common fields and decision */
    const void *data; /* the raw reply frame (for proto_models_iter_init, proto_to_json) */
    size_t len;       /* its size */
    zmq_msg_t msg;    /* owner of the bytes */
    bool has_msg;     /* msg is initialised */
};

/* Sends a request without waiting for its reply. When req->id is
 * PROTO_ID_NONE a fresh integer id is assigned and written back, so the
 * caller can hpp_client_recv_id() it. Waits at most timeout_ms (-1 =
 * forever) for room in the send queue. */
int hpp_client_send(hpp_client_t *self, proto_request_t *req, int timeout_ms);

/* Receives the reply to `id`; replies to other ids that arrive meanwhile are
 * stashed for later calls. */
int hpp_client_recv_id(hpp_client_t *self, const proto_id_t *id, hpp_reply_t *out, int timeout_ms);

/* send + recv_id within one time limit, resending as the opts say (see
 * the top of this file). Returns HPP_ERR_ENGINE (with the reply in *out)
 * when the engine answered ok=false. */
int hpp_client_call(hpp_client_t *self, proto_request_t *req, hpp_reply_t *out, int timeout_ms);

/* HPP_ERR_ENGINE, with the engine's error as the client's errstr, when
 * `rep` says ok=false; else HPP_OK. */
int hpp_client_engine_rc(hpp_client_t *self, const hpp_reply_t *rep);

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

#endif
