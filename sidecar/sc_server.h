/* sc_server.h - the hpp-sidecar HTTP server.
 *
 * One libevent loop serves every endpoint, talks to the hpp-engines over
 * one DEALER link each (sc_engine.h, sc_link.h) and, in proxy mode, to the
 * upstream over pooled keep-alive HTTP connections. Nothing on the loop
 * blocks. A process runs several such servers, one per thread, on one port
 * (sc_workers.h); each is then a worker, and shares with the others only
 * what sc_server_worker_t lists.
 */
#ifndef SC_SERVER_H
#define SC_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "sc_engine.h"
#include "sc_link.h"

struct eng_local;

typedef struct {
    const char *listen;                         /* "HOST:PORT" to bind; port 0 = ephemeral */
    const char *engines[SC_ENGINE_MAX_ENGINES]; /* ZMQ endpoints of the hpp-engines */
    size_t nengines;                            /* used entries; 0 = SC_DEFAULT_ENGINE */
    sc_link_kind_t link;                        /* how to speak to them: auto, zmtp or libzmq */
    const char *curve_server_key;               /* the engines' public key file; NULL = no CURVE */
    const char *curve_secret;   /* our secret key file (its public key derived), with it */
    int ping_ms;                /* policy pings to each engine (SC_DEFAULT_PING_MS) */
    const char *upstream;       /* base URL of the upstream API (http://host:port/v1), NULL =
                                   decision-only mode */
    const char *upstreams_file; /* --upstreams: provider -> upstream table (proxy mode) */
    const char *access_log;     /* --access-log: one JSON line per request, NULL = none */
    int timeout_ms;             /* deadline of each engine call */
    const char *fail_open;      /* model to answer when the engine is unreachable, NULL = 503 */
    size_t max_body;            /* request body limit in bytes (413 above) */
    int max_retries;            /* upstream retries with a fallback model (429/5xx), >= 0 */
    int upstream_timeout_s;     /* upstream connect / read inactivity timeout */
    int auth_refusal_status;    /* decision-only: every refusal of the auth route is sent with
                                   this status (401 or 403) and X-HPP-Router-Error; 0 = as is */

    /* Client connections: how many, and how long each part of a request may take. */
    int max_connections;  /* open client connections at most; more are refused with 503;
                             0 = derived from RLIMIT_NOFILE (sc_server_max_connections) */
    int header_timeout_s; /* a request's headers, from its first byte (the first request:
                             from the accept), else 408 and close */
    int body_timeout_s;   /* its body, from the end of its headers, else 408 and close */
    int idle_timeout_s;   /* a kept-alive connection with no request, else closed */

    /* The trust boundary (sc_trust.h). */
    const char *keys_file;      /* --keys: key hashes, groups, caps; NULL = no key asked */
    const char *trusted_header; /* --trusted-header: the gateway's group header, or NULL */
    bool trust_client_features; /* honour the client's group and budget (body, X-HPP-*) */

    int workers; /* --workers: event loops (threads) serving the port; 0 = one per online core
                    (sc_workers.h) */

    /* --local-engine: decisions made in this process (eng_local.h) instead
     * of by hpp-engine; made and freed by the caller, with a reader slot
     * for each worker. NULL = the engines above. */
    struct eng_local *local;
} sc_config_t;

/* Defaults used by hpp-sidecar. */
#define SC_DEFAULT_LISTEN "127.0.0.1:8080"
#define SC_DEFAULT_ENGINE "tcp://127.0.0.1:5555"
#define SC_DEFAULT_TIMEOUT_MS 1000
#define SC_DEFAULT_PING_MS 1000
#define SC_DEFAULT_MAX_BODY (4u << 20)
#define SC_DEFAULT_MAX_RETRIES 2
#define SC_DEFAULT_UPSTREAM_TIMEOUT_S 300
#define SC_DEFAULT_HEADER_TIMEOUT_S 10
#define SC_DEFAULT_BODY_TIMEOUT_S 30
#define SC_DEFAULT_IDLE_TIMEOUT_S 60
/* Descriptors kept back from client connections for the listener, the
 * engine links (libzmq's own included), the log and the key file. */
#define SC_FD_RESERVE 32
/* More request headers than this are refused with 431. */
#define SC_MAX_HEADERS 100

typedef struct sc_server sc_server_t;

/* What makes a server one worker of several (sc_workers.h). Set before the
 * worker is made; the workers share nothing else. */
typedef struct {
    int index;                 /* this worker's number, 0 .. count - 1 */
    int count;                 /* workers of the process; > 1 binds with SO_REUSEPORT */
    int port;                  /* the port to bind: the first worker's once it has one */
    sc_server_t *const *peers; /* every worker (filled before any runs): /metrics sums them */
    int *open;                 /* client connections open in all workers (atomic): the
                                  --max-connections limit is the process's */
    int ack_fd;                /* one byte is written here after each reload */
} sc_server_worker_t;

/* Commands another thread may post to a worker's loop (sc_server_post). */
typedef enum {
    SC_SERVER_RELOAD = 'r', /* SIGHUP's work: reload --keys, --upstreams, reopen the log */
    SC_SERVER_STOP = 's',   /* leave the loop: sc_server_run returns */
} sc_server_cmd_t;

/* Fills `cfg` with the defaults above. */
void sc_config_defaults(sc_config_t *cfg);

/* The --max-connections default for a descriptor limit of `nofile`: what
 * SC_FD_RESERVE leaves, halved in proxy mode (a client connection may hold
 * an upstream connection too); at least 1. */
int sc_server_max_connections(unsigned long long nofile, bool proxy);

/* Creates the loop, binds the listener, connects to the engine. Returns NULL
 * with a message in errbuf on failure (bad address, port in use, bad
 * upstream URL). The config strings must outlive the server. */
sc_server_t *sc_server_new(const sc_config_t *cfg, char *errbuf, size_t errlen);

/* A worker: as sc_server_new, but no signal is handled (the thread that
 * made the workers waits for them and posts commands), and with `w->count`
 * > 1 the listener is bound with SO_REUSEPORT on `w->port`. */
sc_server_t *sc_server_new_worker(const sc_config_t *cfg, const sc_server_worker_t *w, char *errbuf,
                                  size_t errlen);

/* Posts a command to the server's loop; safe from any thread (one byte on
 * its control pipe). Returns 0 or -1. */
int sc_server_post(sc_server_t *self, sc_server_cmd_t cmd);

/* The port actually bound (useful with port 0). */
int sc_server_port(const sc_server_t *self);

/* How it speaks to the engine (zmtp or libzmq, after auto is settled). */
sc_link_kind_t sc_server_link_kind(const sc_server_t *self);

/* Runs the loop until SIGINT or SIGTERM. Returns 0. */
int sc_server_run(sc_server_t *self);

/* Stops the loop from inside a callback or a signal handler. */
void sc_server_stop(sc_server_t *self);

/* Frees everything; sets *self_p to NULL. Idempotent. */
void sc_server_destroy(sc_server_t **self_p);

#endif
