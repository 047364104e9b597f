/* eng_server.h - the hpp-engine ZeroMQ decision service.
 *
 * A ROUTER socket on the listen endpoint serves REQ and DEALER clients; a
 * frontend loop checks each message's envelope, answers route and ping
 * itself, and passes the slower ops (explain, models, stats) over inproc to
 * N worker threads; a reloader thread compiles new snapshots off the hot
 * path. With route_workers, routes go to the workers too. See eng_server.c
 * for the design and proto/PROTOCOL.md for the wire format.
 */
#ifndef ENG_SERVER_H
#define ENG_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_common.h"
#include "eng_ledger.h"

#define ENG_SERVER_MAX_CATALOGS 16
#define ENG_SERVER_MAX_THREADS 64
#define ENG_DEFAULT_LISTEN "tcp://127.0.0.1:5555"
#define ENG_DEFAULT_POLICY "policies/default.policy"
#define ENG_DEFAULT_PEER_HWM 2048      /* messages per client connection, each way */
#define ENG_DEFAULT_PEER_INFLIGHT 1024 /* requests of one client at the workers */
#define ENG_DEFAULT_PEER_QUEUE_KB 4096 /* large reply bytes unread by one client */
#define ENG_DEFAULT_QUEUE_MB 16        /* large reply bytes unread, all clients */

typedef struct {
    const char *listen; /* ZMQ endpoint to bind */
    const char *direct; /* eng_direct.h listener (tcp loopback or ipc://), NULL = off */
    const char *policy; /* policy file */
    const char *catalogs[ENG_SERVER_MAX_CATALOGS]; /* catalog specs */
    size_t ncatalogs;                              /* entries of catalogs */
    int threads;                                   /* worker threads, >= 1 */
    bool route_workers;                            /* decide routes on the workers, not inline */
    const char *decision_log;                      /* JSON-lines path, NULL = off */
    bool watch;                                    /* reload when files change */
    int watch_ms;                                  /* mtime poll interval */
    int watch_settle_ms;       /* files unchanged this long before --watch reloads; -1 = default */
    const char *reload_cases;  /* cases file every (re)loaded policy must pass, NULL = none */
    int drain_ms;              /* longest shutdown drain */
    const char *curve_secret;  /* CURVE secret key file: serve CURVE, NULL = NULL mechanism */
    const char *curve_clients; /* allow-list file or directory (eng_allow.h), with curve_secret */
    /* What one client can make the engine hold (eng_peers.h): */
    int peer_hwm;      /* ZMQ_SNDHWM/RCVHWM of the client socket, messages per connection */
    int peer_inflight; /* requests of one client at the workers; more are refused */
    int peer_queue_kb; /* reply bytes (of replies >= 2 KiB) unread by one client */
    int queue_mb;      /* the same, all clients together */
    const char *metrics_listen; /* HOST:PORT of the Prometheus endpoint, NULL = off */
    eng_ledger_cfg_t ledger;    /* --ledger, --keys ...: off when neither store nor keys */
} eng_server_cfg_t;

/* Defaults: loopback :5555, bundled policy and catalog, one worker per core,
 * watch every 1000 ms when enabled and reload once the files have been
 * unchanged for the larger of ENG_SETTLE_MS and 2 x watch_ms, drain at most
 * 2000 ms. */
#define ENG_SETTLE_MS 2000
void eng_server_cfg_defaults(eng_server_cfg_t *cfg);

typedef struct eng_server eng_server_t;

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (so every thread
 * started afterwards inherits the mask and the server takes them through a
 * signalfd), loads the first snapshot, binds and starts the threads.
 * Returns NULL with `err` filled; a policy or catalog that does not compile
 * is ENG_ERR_SYNTAX (its diagnostics have been logged), a bad key file or
 * allow-list ENG_ERR_VALUE, a bind failure ENG_ERR_IO. Call it before
 * starting any other thread.
 *
 * With curve_secret the ROUTER is a CURVE server: only the keys of
 * curve_clients complete a handshake (eng_zap.h), SIGHUP re-reads that
 * list, and stats and reload are answered only to admin keys (others get
 * `forbidden`). Without it every client may do everything. */
eng_server_t *eng_server_new(const eng_server_cfg_t *cfg, eng_error_t *err);

/* The bound endpoint with the real port ("tcp://127.0.0.1:43817"). */
const char *eng_server_endpoint(const eng_server_t *self);

/* The bound --metrics-listen address with the real port ("127.0.0.1:9464"),
 * or NULL when metrics are off (eng_metrics.h). */
const char *eng_server_metrics_address(const eng_server_t *self);

/* The direct listener's endpoint as bound (real port), NULL without one. */
const char *eng_server_direct_endpoint(const eng_server_t *self);

/* Serves until SIGTERM/SIGINT, then drains (answers what is in flight and
 * what arrives within a short grace window, at most drain_ms) and returns 0.
 * SIGHUP reloads and reopens the decision log. */
int eng_server_run(eng_server_t *self);

/* Stops the threads and frees everything; idempotent. */
void eng_server_destroy(eng_server_t **self_p);

#endif
