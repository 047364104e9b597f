/* sc_engine.h - the sidecar's calls to hpp-engine: one DEALER link per
 * engine (sc_link.h) in the libevent loop, many requests in flight, each
 * with a deadline.
 *
 * A call encodes a request (proto.h), sends it without blocking to the next
 * engine that is up (round robin over the connected links), and parks its
 * callback in a fixed table of slots keyed by the request id. The callback
 * runs exactly once, on the loop thread: with the decoded reply, or with a
 * timeout when no reply came within the deadline. When an engine's
 * connection goes away, its calls are encoded again (with new ids) and sent
 * to another engine that is up, keeping their deadline; with none up they
 * fail at once (SC_ENG_LOST). A call that cannot be sent at all (no engine
 * connected, table full) fails at once and its callback is never run. Links
 * reconnect by themselves; replies to calls that already timed out, were
 * cancelled or were sent again elsewhere are recognised by their id and
 * dropped.
 *
 * Every engine is also pinged every `ping_ms` for the policy it serves
 * (version and content hash), so that engines that disagree are noticed.
 */
#ifndef SC_ENGINE_H
#define SC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "sc_link.h"
#include "sc_metrics.h"

struct event_base;
struct eng_local;

/* Calls in flight at most; more fail at once (the engine is overloaded). */
#define SC_ENGINE_MAX_INFLIGHT 16384
/* Engines behind one sidecar at most (one link each). */
#define SC_ENGINE_MAX_ENGINES SC_METRICS_MAX_ENGINES

typedef enum {
    SC_ENG_REPLY = 0, /* a reply arrived (check reply->ok) */
    SC_ENG_TIMEOUT,   /* no reply within the deadline */
    SC_ENG_DECODE,    /* a reply arrived but could not be decoded */
    SC_ENG_LOST,      /* its engine went away and no other engine is up */
} sc_eng_result_t;

/* Runs once per call. `reply` (NULL unless SC_ENG_REPLY) and `raw`/`len`
 * (the reply frame, for ops whose payload is walked separately, such as
 * models) are valid only during the callback. */
typedef void (*sc_engine_cb)(void *arg, sc_eng_result_t res, const proto_reply_t *reply,
                             const void *raw, size_t len);

typedef struct sc_engine sc_engine_t;

typedef struct {
    const char *const *endpoints; /* 1 to SC_ENGINE_MAX_ENGINES, distinct; borrowed */
    size_t nendpoints;            /* entries of endpoints */
    sc_link_kind_t kind;          /* link kind for every engine */
    struct eng_local *local;      /* kind LOCAL: the engine in this process, borrowed */
    size_t reader;                /* kind LOCAL: our reader slot of it */
    const sc_link_curve_t *curve; /* NULL: no CURVE; read by sc_engine_new only */
    int timeout_ms;               /* deadline of every call */
    int ping_ms;                  /* policy pings to each engine; 0 = none */
} sc_engine_config_t;

/* Connects one link per endpoint and joins the loop. Returns NULL with a
 * message in errbuf on failure (bad endpoint, out of memory). */
sc_engine_t *sc_engine_new(struct event_base *base, const sc_engine_config_t *cfg, char *errbuf,
                           size_t errlen);

/* Closes the sockets and frees the table; pending callbacks are not run.
 * Sets *self_p to NULL. Idempotent. */
void sc_engine_destroy(sc_engine_t **self_p);

/* Why a call could not be sent (sc_engine_call returned 0). */
typedef enum {
    SC_CALL_OK = 0,      /* sent */
    SC_CALL_UNAVAILABLE, /* no engine connected, or the send failed */
    SC_CALL_OVERLOADED,  /* SC_ENGINE_MAX_INFLIGHT calls in flight, or no timer */
    SC_CALL_ENCODE,      /* the request does not encode (over the protocol's limits) */
} sc_call_err_t;

/* What a failure means, in words for logs and error bodies: "is not
 * connected", "has too many requests in flight", ... Never NULL. */
const char *sc_call_err_message(sc_call_err_t e);

/* Sends `req` (its id is assigned here). Returns a call handle (> 0), or 0
 * when the request could not be sent now, with *err (may be NULL) saying
 * why. `req`, and the strings its features borrow, must stay valid until
 * the callback runs or the call is cancelled: a call whose engine goes away
 * is encoded again from it. */
uint64_t sc_engine_call(sc_engine_t *self, proto_request_t *req, sc_engine_cb cb, void *arg,
                        sc_call_err_t *err);

/* Reports how `n` upstream attempts went (the report op, PROTOCOL.md
 * "Reports"): one frame without id and without ack, sent to every engine
 * that is up, so that each one's health knows (the engines decide
 * independently). Nothing waits for an answer; an engine answers only a
 * refused report, which is logged. Returns the engines it went to. */
size_t sc_engine_report(sc_engine_t *self, const proto_attempt_t *attempts, size_t n);

/* Forgets a call: its callback will not run. Unknown handles are ignored. */
void sc_engine_cancel(sc_engine_t *self, uint64_t handle);

/* The kind of link in use. */
sc_link_kind_t sc_engine_link_kind(const sc_engine_t *self);

/* Calls awaiting a reply (the policy pings included). */
size_t sc_engine_inflight(const sc_engine_t *self);

/* Engines configured, and how many of them are connected now. */
size_t sc_engine_count(const sc_engine_t *self);
size_t sc_engine_up(const sc_engine_t *self);

/* Engine i's state for /metrics (i < sc_engine_count). */
void sc_engine_state(const sc_engine_t *self, size_t i, sc_metrics_engine_t *out);

/* Ping replies whose policy hash differed from another live engine's. */
uint64_t sc_engine_disagreements(const sc_engine_t *self);

#endif
