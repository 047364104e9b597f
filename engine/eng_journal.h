/* eng_journal.h - the records of the embedded ledger store's reservation
 * journal (eng_store_sqlite.c): a batch's reservations and their ends, each
 * blob of one row of the state file holding a run of records.
 *
 * Schema 3 writes each record as what changed from the one before it in its
 * blob (the first from zeros): a decision's id and expiry as varint deltas,
 * its key, account, amount and day only when they differ. A run of one
 * key's decisions is about 3 bytes a reservation and 1 to 3 an end, against
 * 56 and 8 for schema 2's fixed records. The writer's CPU is what the
 * ledger adds to the p99 of decisions on two cores, and at 20,000
 * decisions/s this cut its bytes from 259 to 79 a decision and its CPU from
 * 2.75 to 2.05 us (bench/RESULTS.md, "The journal's bytes set the tail").
 * Schema 2's fixed records are still read, to upgrade a state file.
 *
 * Reading them back is parsing a file an operator may copy, restore or
 * damage, so the layouts and their checks live here, where a fuzz target
 * (tests/fuzz/fuzz_journal.c) reaches them. A record is read only in its
 * canonical form (shortest varints, no field marked changed that is not),
 * so what is accepted is written again to the same bytes. */
#ifndef ENG_JOURNAL_H
#define ENG_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A reservation: the decision, the rows of its key and account in the
 * state file, and what it holds. */
typedef struct {
    uint64_t decision;
    int64_t key_rowid, acct_rowid;
    int64_t amount_pd, day, expires_ms;
    bool free_model;
} eng_journal_put_t;

#define ENG_JOURNAL_PUT_MAX 61 /* bytes of a record at most: flags and six 10-byte varints */
#define ENG_JOURNAL_END_MAX 10 /* one varint */

/* Writes r after prev (zeros for a blob's first record) at p, which has
 * room for ENG_JOURNAL_PUT_MAX bytes; the bytes written. */
size_t eng_journal_put_write(uint8_t *p, const eng_journal_put_t *prev, const eng_journal_put_t *r);

/* Reads the record at p (n bytes left in the blob) after prev into r; the
 * bytes it took, or 0 with the reason in err for a record the writer never
 * makes (truncated, not canonical, a rowid below 1). */
size_t eng_journal_put_read(const uint8_t *p, size_t n, const eng_journal_put_t *prev,
                            eng_journal_put_t *r, char *err, size_t errlen);

/* An end: the decision whose reservation ended, after the blob's previous
 * end (0 for its first). */
size_t eng_journal_end_write(uint8_t *p, uint64_t prev, uint64_t decision);
size_t eng_journal_end_read(const uint8_t *p, size_t n, uint64_t prev, uint64_t *decision,
                            char *err, size_t errlen);

/* Schema 2, read only: fixed little-endian records. */
#define ENG_JOURNAL_V2_PUT_BYTES 56 /* seven 8-byte fields, free_model last */
#define ENG_JOURNAL_V2_END_BYTES 8  /* the decision whose reservation ended */

bool eng_journal_v2_put_read(const uint8_t *p, eng_journal_put_t *r, char *err, size_t errlen);
uint64_t eng_journal_v2_end_read(const uint8_t *p);

/* Do blobs of these sizes hold whole schema 2 records? False with the reason. */
bool eng_journal_v2_sizes_ok(size_t puts_bytes, size_t ends_bytes, char *err, size_t errlen);

#endif
