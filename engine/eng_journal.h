/* eng_journal.h - the records of the embedded ledger store's reservation
 * journal (eng_store_sqlite.c): a batch's reservations and their ends, each
 * a fixed little-endian record in a blob of one row of the state file.
 * Reading them back is parsing a file an operator may copy, restore or
 * damage, so the layout and its checks live here, where a fuzz target
 * (tests/fuzz/fuzz_journal.c) reaches them. */
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

#define ENG_JOURNAL_PUT_BYTES 56 /* seven 8-byte fields, free_model last */
#define ENG_JOURNAL_END_BYTES 8  /* the decision whose reservation ended */

void eng_journal_put_write(uint8_t *p, const eng_journal_put_t *r);

/* Reads the record at p. False, with the reason in err, for one the
 * writer never makes (a free flag other than 0 or 1, a rowid below 1). */
bool eng_journal_put_read(const uint8_t *p, eng_journal_put_t *r, char *err, size_t errlen);

void eng_journal_end_write(uint8_t *p, uint64_t decision);
uint64_t eng_journal_end_read(const uint8_t *p);

/* Do blobs of these sizes hold whole records? False with the reason. */
bool eng_journal_sizes_ok(size_t puts_bytes, size_t ends_bytes, char *err, size_t errlen);

#endif
