/* eng_ringfile.h - the embedded ledger store's ring of changes, kept in a
 * file mapped shared in memory (tmpfs), so that it outlives the process.
 *
 * The deciding threads write each change to the ring (eng_store_sqlite.c)
 * and the writer commits it to SQLite about once a second. A commit is
 * what a power loss cannot undo; the ring is what a crash of the process
 * (kill -9, a fault) cannot undo: its pages belong to the file, so every
 * change published before the process died is still there, and the next
 * open of the state file commits what the database lacks (from the
 * position the database says it holds, to the ring's published head).
 * Committing once a second instead of every 10 ms is what brought the
 * ledger's 20k/s tail within its goal (bench/RESULTS.md, "Commits once a
 * second, the ring in a mapped file"); the ring keeps `kill -9` from losing
 * that second.
 *
 * The file: a header, the names of accounts and key hashes by the index
 * the changes use (the indexes are this process's own: a restart numbers
 * them again), then the entries. A file of another boot (its tmpfs would
 * be gone: only a directory on disk keeps one), of another state file, of
 * of another epoch (the database moved past it) is stale: ignored and
 * replaced. A file that should be read and cannot be (damaged, of another
 * layout, not the engine user's own 0600 file) is refused with the place
 * and the reason. The checks live here, where a
 * fuzz target (tests/fuzz/fuzz_ringfile.c) reaches them. */
#ifndef ENG_RINGFILE_H
#define ENG_RINGFILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a change is. A reservation's entry also carries its key's row. */
typedef enum {
    ENG_RING_ACCT,     /* row[0] balance, row[1] spent of account `acct` */
    ENG_RING_KEY,      /* the row of key `key`, its account `acct` */
    ENG_RING_RESV_PUT, /* a reservation made, and its key's row */
    ENG_RING_RESV_DEL, /* a reservation ended, and its key's row */
    ENG_RING_KINDS
} eng_ring_kind_t;

#define ENG_RING_ROW 8 /* a key's persisted counters (eng_store_sqlite.c, S_KROW_*) */

/* One entry, as memory has the row after the change. */
typedef struct {
    uint8_t kind;           /* eng_ring_kind_t */
    uint8_t free_model;     /* ENG_RING_RESV_PUT: 0 or 1 */
    uint32_t key;           /* not ENG_RING_ACCT: index of the key */
    uint32_t acct;          /* index of the account (a key's: its own) */
    uint64_t decision;      /* ENG_RING_RESV_* */
    int64_t expires_ms;     /* ENG_RING_RESV_* */
    int64_t amount_pd, day; /* ENG_RING_RESV_PUT */
    int64_t row[ENG_RING_ROW];
} eng_ring_change_t;

/* The sizes a file is laid out by (the store's capacities). */
typedef struct {
    uint32_t name_len; /* bytes of a name with its NUL */
    uint32_t max_accts, max_keys;
    uint32_t entries; /* a power of two */
} eng_ring_layout_t;

/* What a file must be to be read: this boot, this state file, this
 * layout, the epoch the database names, from its position on. */
typedef struct {
    eng_ring_layout_t layout;
    const char *boot_id;
    const char *state_path; /* its real path */
    uint64_t epoch;
    uint64_t from; /* the first entry the database lacks */
} eng_ring_want_t;

typedef struct eng_ringfile eng_ringfile_t;

enum { ENG_RING_OK, ENG_RING_ABSENT, ENG_RING_STALE, ENG_RING_BAD };

/* The file's path for a state file: DIR/hpp-ledger-HASH.ring, HASH of its
 * real path. -1 with err when the path is too long. */
int eng_ringfile_path(const char *dir, const char *state_path, char *out, size_t outlen, char *err,
                      size_t errlen);

/* This boot's id, "" when the system has none to read. */
void eng_ringfile_boot_id(char out[40]);

/* Checks the bytes of a file against `want`: ENG_RING_OK (every entry in
 * [from, head) names a kind, an account and a key whose names are there),
 * ENG_RING_STALE (not the one wanted: err says which field) or
 * ENG_RING_BAD (err says where and why). */
int eng_ringfile_check(const uint8_t *base, size_t size, const eng_ring_want_t *want, char *err,
                       size_t errlen);

/* Opens the file at `path` for reading and checks it (eng_ringfile_check);
 * ENG_RING_ABSENT when there is none. *out is set when ENG_RING_OK. */
int eng_ringfile_open(const char *path, const eng_ring_want_t *want, eng_ringfile_t **out,
                      char *err, size_t errlen);

/* Creates the file at `path` for a new epoch, replacing any (a temporary
 * file renamed over it, so a crash leaves the old one or the new one),
 * mode 0600, its entries' pages touched so that a decision never waits
 * for one. NULL with err. */
eng_ringfile_t *eng_ringfile_create(const char *path, const eng_ring_layout_t *layout,
                                    const char *boot_id, const char *state_path, uint64_t epoch,
                                    char *err, size_t errlen);

/* The parts of an open file. Names are name_len bytes each, by index. */
eng_ring_change_t *eng_ringfile_entries(eng_ringfile_t *rf);
char *eng_ringfile_acct_name(eng_ringfile_t *rf, uint32_t i);
char *eng_ringfile_key_name(eng_ringfile_t *rf, uint32_t i);
_Atomic uint64_t *eng_ringfile_head(eng_ringfile_t *rf); /* entries published (a made file's) */
/* Of a file opened for reading, the values its check passed (the live
 * header could change after it); of a made file, the live ones. */
uint64_t eng_ringfile_checked_head(eng_ringfile_t *rf);
uint32_t eng_ringfile_naccts(eng_ringfile_t *rf);
uint32_t eng_ringfile_nkeys(eng_ringfile_t *rf);

/* A name written (under the store's lock, before any entry names it). */
void eng_ringfile_set_acct(eng_ringfile_t *rf, uint32_t i, const char *name);
void eng_ringfile_set_key(eng_ringfile_t *rf, uint32_t i, const char *hash);

/* Unmaps; the file is removed when `remove` (a clean close: the database
 * holds everything). */
void eng_ringfile_destroy(eng_ringfile_t **self_p, bool remove);

#endif
