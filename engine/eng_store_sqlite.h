/* eng_store_sqlite.h - the embedded store: the ledger's state in memory,
 * persisted to a SQLite database (WAL mode) by a writer thread.
 *
 * The decision path (reserve) touches memory only; settlements, top-ups
 * and reservations are queued for the writer, which commits them in
 * batches. What a crash of the engine can lose is said in
 * eng_store_sqlite.c and in engine/README.md ("Ledger").
 */
#ifndef ENG_STORE_SQLITE_H
#define ENG_STORE_SQLITE_H

#include "eng_store.h"

/* Opens (creating when absent) the database of "sqlite:PATH" and loads its
 * state; NULL with `err` saying why. */
eng_store_t *eng_store_sqlite_open(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                   size_t errlen);

/* True when another process holds the file of "sqlite:PATH" (an engine
 * runs on it: eng_store_sqlite_open would be refused); false when it is
 * free, absent or unreadable, which an open then reports. */
bool eng_store_sqlite_in_use(const char *spec);

#endif
