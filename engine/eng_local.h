/* eng_local.h - the engine's answers inside the caller's own process.
 *
 * For an embedder that wants decisions without a round trip to hpp-engine
 * (the sidecar's --local-engine): the same snapshot (the policy compiled
 * against the catalogs), resolver and reply encoder as the engine, fed the
 * same request frames (proto.h) and answering the same reply frames, so
 * the caller's codec, deadlines and fallbacks do not change.
 *
 * What it answers: route, explain, models, ping (the policy's version and
 * hash) and report (the endpoint health the resolver reads, as in the
 * engine). What needs state beyond one process is not here, and is
 * answered with an error: the ledger op (`ledger_unavailable`: there is no
 * ledger), stats and reload (`unknown_op`: the embedder reloads with
 * eng_local_reload). Decisions carry no ledger fields and go to no
 * decision log.
 *
 * Threads: eng_local_answer runs on up to `readers` threads at once, each
 * with its own reader index (two threads never share one), without a lock
 * and without allocating (its output buffer aside). A report takes the
 * health mutex, which a reload holds while it waits for the readers of the
 * old snapshot to let go (a few hundred microseconds): a report sent
 * during a reload waits that long. eng_local_reload runs on one thread at
 * a time. Decision ids are unique in the process, not across restarts
 * (no ledger or decision log needs them here).
 */
#ifndef ENG_LOCAL_H
#define ENG_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_snapshot.h"
#include "proto.h"

typedef struct {
    const char *policy;          /* policy file; borrowed for the object's life */
    const char *const *catalogs; /* catalog specs ("[format:]path"); borrowed, as is the array */
    size_t ncatalogs;            /* entries of catalogs, >= 1 */
    size_t readers;              /* threads that may answer at once, >= 1 */
} eng_local_config_t;

typedef struct eng_local eng_local_t;

/* Loads the policy and catalogs. Returns NULL with the reasons in `log`
 * (warnings are recorded either way). Slow: file I/O and compilation. */
eng_local_t *eng_local_new(const eng_local_config_t *cfg, eng_loadlog_t *log);

/* Frees it; no thread may be answering. Sets *self_p to NULL. Idempotent. */
void eng_local_destroy(eng_local_t **self_p);

/* Loads the files again and, when they load and pass the engine's reload
 * gate (a request the serving policy routed must not be left without a
 * rule), serves them; the health measured so far carries over. Otherwise
 * the serving version stays. Returns true when the new files serve; `log`
 * has the diagnostics either way. */
bool eng_local_reload(eng_local_t *self, eng_loadlog_t *log);

/* The reader slots it was made with: answering threads at most. */
size_t eng_local_readers(const eng_local_t *self);

/* The version and policy hash serving now (for log lines). The hash is
 * copied into hash[ENG_SNAPSHOT_HASH_HEX]. */
uint64_t eng_local_version(eng_local_t *self, char hash[ENG_SNAPSHOT_HASH_HEX]);

/* Answers one request frame, appending the reply to `out` (after what it
 * holds: a caller queueing replies encodes each in place). Returns true
 * when a reply was appended, false for a report applied without `ack` (no
 * reply, as the engine; nothing appended). A frame that does not decode is answered with the
 * decoder's located error; a `reader` out of range with `internal`. */
bool eng_local_answer(eng_local_t *self, size_t reader, const void *frame, size_t len,
                      proto_buf_t *out);

#endif
