/* sc_workers.h - several sidecar servers in one process, one per core.
 *
 * One event loop is one core at most, and a /v1/route answer costs a few
 * microseconds of it: with --workers N the process runs N servers
 * (sc_server.h), each a thread with its own libevent loop, its own
 * listening socket on the same port (SO_REUSEPORT: the kernel spreads new
 * connections over them), its own links to the engines, its own upstream
 * pool, key table, access log descriptor and counters. A connection lives
 * and dies in the worker that accepted it.
 *
 * Threads, not processes: /metrics must count the whole sidecar, and the
 * --max-connections limit is the process's; both are a read of the other
 * workers' memory here (sc_metrics.h, sc_engine.h say how each is read
 * while written), where processes would need shared memory or a collector.
 * Nothing else is shared; the request path takes no lock.
 *
 * The thread that makes the workers handles the signals (they are blocked
 * in every worker): SIGHUP posts a reload to each worker and waits until
 * each has reloaded (every worker reads the --keys and --upstreams files
 * and reopens its access log descriptor itself), SIGINT and SIGTERM post a
 * stop to each and join them; then sc_workers_destroy frees their
 * connections and calls as one server does.
 */
#ifndef SC_WORKERS_H
#define SC_WORKERS_H

#include "sc_server.h"

#define SC_WORKERS_MAX 256 /* --workers at most (SC_METRICS_MAX_WORKERS) */

typedef struct sc_workers sc_workers_t;

/* The --workers default: the cores this process may run on. */
int sc_workers_default(void);

/* Makes cfg->workers servers (0: sc_workers_default()) bound to one port;
 * nothing runs yet. Returns NULL with a message in errbuf on failure (as
 * sc_server_new). */
sc_workers_t *sc_workers_new(const sc_config_t *cfg, char *errbuf, size_t errlen);

/* Workers made, the port bound, and how the first speaks to the engine. */
int sc_workers_count(const sc_workers_t *self);
int sc_workers_port(const sc_workers_t *self);
sc_link_kind_t sc_workers_link_kind(const sc_workers_t *self);

/* Runs every worker in its thread and handles SIGINT, SIGTERM and SIGHUP
 * until SIGINT or SIGTERM; returns 0 once every worker has left its loop,
 * -1 when a thread could not be started (the others are stopped). */
int sc_workers_run(sc_workers_t *self);

/* Frees every worker; sets *self_p to NULL. Idempotent. */
void sc_workers_destroy(sc_workers_t **self_p);

#endif
