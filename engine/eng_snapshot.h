/* eng_snapshot.h - what one version of the engine serves, and how workers
 * share it without locks.
 *
 * A snapshot is a frozen catalog, the policy compiled against it, a version
 * number and the pre-encoded models list. It never changes after it is built.
 * The cell holds the current snapshot as an atomic pointer; readers protect
 * the one they use with a hazard slot of their own (one store, two loads per
 * request, no lock, no shared counter to bounce between cores), and the
 * writer frees a replaced snapshot only once no slot points to it.
 */
#ifndef ENG_SNAPSHOT_H
#define ENG_SNAPSHOT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_policy.h"

/* Files a snapshot is built from. */
typedef struct {
    const char *policy;          /* policy file */
    const char *const *catalogs; /* catalog specs ("[format:]path") */
    size_t ncatalogs;            /* entries of catalogs */
    unsigned policy_flags;       /* compile options (ENG_POLICY_*, eng_policy_internal.h) */
} eng_snapshot_cfg_t;

/* Diagnostics of one load, as lines ready to log or report. */
#define ENG_LOADLOG_LINES 32
typedef struct {
    char lines[ENG_LOADLOG_LINES][320]; /* "file:line:col: error: message" */
    bool is_error[ENG_LOADLOG_LINES];   /* the line is an error (else a warning) */
    uint32_t n;                         /* used lines */
    uint32_t more;                      /* diagnostics that did not fit */
    uint32_t errors;                    /* error count */
    uint32_t warnings;                  /* warning count */
} eng_loadlog_t;

/* Adds a line (printf-style) to `log` (may be NULL) and counts it. When
 * the log is full an error still gets a line, in place of the last warning,
 * so a rejected load can always quote one of its errors. */
void eng_loadlog_add(eng_loadlog_t *log, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void eng_loadlog_vadd(eng_loadlog_t *log, bool error, const char *fmt, va_list ap);

/* Moves the errors of `log` before its warnings, each kept in order, so
 * that whatever quotes the first line of a rejection (a reload reply's
 * message, the log) quotes an error. */
void eng_loadlog_errors_first(eng_loadlog_t *log);

/* Logs every line (eng_log: errors as errors, warnings as warnings) under
 * `module`, and how many did not fit. */
void eng_loadlog_log(const eng_loadlog_t *log, const char *module);

/* An error of the load at file:line (line 0: none), with the signature of
 * eng_cases_fail_fn (`log` is the eng_loadlog_t): reload gates' failures. */
void eng_loadlog_fail(void *log, const char *file, int line, const char *msg);

/* Adds every diagnostic of `diags` as "file:line:col: error: message". */
void eng_loadlog_add_diags(eng_loadlog_t *log, const eng_diags_t *diags);

typedef struct eng_snapshot eng_snapshot_t;

/* Loads every catalog, freezes it, compiles the policy and encodes the models
 * list. Returns the snapshot, or NULL with the reasons in `log` (warnings are
 * recorded either way). Slow (file I/O, compilation): never on the hot path. */
eng_snapshot_t *eng_snapshot_load(const eng_snapshot_cfg_t *cfg, uint64_t version,
                                  eng_loadlog_t *log);

/* Gives the snapshot `obj` (the ledger's key table, eng_ledger.h), read
 * with the snapshot under the same hazard slot; `release` is called when
 * the snapshot goes (or another object replaces it). Before publishing. */
void eng_snapshot_attach(eng_snapshot_t *self, void *obj, void (*release)(void *));
void *eng_snapshot_attached(const eng_snapshot_t *self);

/* Frees the snapshot and what it owns; idempotent. */
void eng_snapshot_destroy(eng_snapshot_t **self_p);

const eng_policy_t *eng_snapshot_policy(const eng_snapshot_t *self);
const eng_catalog_t *eng_snapshot_catalog(const eng_snapshot_t *self);
uint64_t eng_snapshot_version(const eng_snapshot_t *self);
/* The policy hash: SHA-256, as lowercase hex, over the bytes of every
 * catalog file (in the given order), then the policy file, then each file
 * it includes (in the order read), exactly as this snapshot read them. Two
 * engines with the same hash serve the same files. */
#define ENG_SNAPSHOT_HASH_HEX 65 /* 64 hex digits and the NUL */
const char *eng_snapshot_hash(const eng_snapshot_t *self);
/* The catalog's endpoints pre-encoded for decision replies. */
struct eng_epwire; /* eng_reply.h */
const struct eng_epwire *eng_snapshot_wire(const eng_snapshot_t *self);
/* The endpoint health table (eng_health.h): the one part of a snapshot that
 * changes while it serves, written by whoever applies reports (one at a
 * time), read lock-free by the resolver. */
struct eng_health;
struct eng_health *eng_snapshot_health(const eng_snapshot_t *self);
/* Copies `prev`'s health into `self` for the endpoints both have (a
 * reload keeps what was measured). Call with report writers held off. */
void eng_snapshot_carry_health(eng_snapshot_t *self, const eng_snapshot_t *prev);
/* The encoded `models` array (see eng_reply_models_encode). */
const void *eng_snapshot_models(const eng_snapshot_t *self, size_t *len);

/* The cell ------------------------------------------------------------------ */

typedef struct eng_snapcell eng_snapcell_t;

/* A cell serving `*initial` (ownership taken, *initial set to NULL) to at most
 * `nreaders` concurrent readers, each with its own slot index. */
eng_snapcell_t *eng_snapcell_new(eng_snapshot_t **initial, size_t nreaders);

/* Frees the cell and the current snapshot. No reader may be active. */
void eng_snapcell_destroy(eng_snapcell_t **self_p);

/* Current snapshot, protected until eng_snapcell_release(reader). Lock-free;
 * a reader holds at most one snapshot at a time. */
const eng_snapshot_t *eng_snapcell_acquire(eng_snapcell_t *self, size_t reader);
void eng_snapcell_release(eng_snapcell_t *self, size_t reader);

/* Version of the current snapshot (a relaxed read, for reporting). */
uint64_t eng_snapcell_version(eng_snapcell_t *self);

/* Makes `*next` current (ownership taken), then waits until no reader still
 * holds the previous one and frees it. Only one thread may publish. */
void eng_snapcell_publish(eng_snapcell_t *self, eng_snapshot_t **next);

#endif
