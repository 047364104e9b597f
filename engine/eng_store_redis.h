/* eng_store_redis.h - the ledger's Redis store: several engines, on
 * several machines, share one ledger.
 *
 * The store interface (eng_store.h) over eng_redis.h, which holds the key
 * schema, the server-side scripts, the connections and what each failure
 * answers. Every step that reads and changes money is one Lua script run
 * atomically by Redis, so engines sharing a Redis can never both take the
 * last dollar of a key.
 *
 * Spec: "redis://HOST:PORT[?OPTIONS]" or "redis+unix:PATH[?OPTIONS]"
 * (OPTIONS: prefix=P, db=N, connect_ms=N, timeout_ms=N; eng_redis.h); the
 * password, when Redis wants one, comes from cfg->secret_file (mode 0600).
 *
 * Threads: any thread may call at once; each call uses a connection of the
 * store's pool for its duration (one per calling thread in practice; the
 * pool's mutex guards a list pointer only, never I/O).
 *
 * A Redis that cannot be reached, times out or refuses answers
 * HPP_E_LEDGER_UNAVAILABLE with the reason; the store reconnects by itself
 * when Redis is back. Durability is Redis's own (its RDB/AOF settings):
 * `sync` has nothing to wait for, a settle is applied when it returns.
 */
#ifndef ENG_STORE_REDIS_H
#define ENG_STORE_REDIS_H

#include "eng_store.h"

/* Connects, authenticates, loads the scripts and releases what expired
 * before cfg->now_ms; NULL with err saying why (bad spec, secret file,
 * Redis unreachable or refusing). */
eng_store_t *eng_store_redis_open(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                  size_t errlen);

#endif
