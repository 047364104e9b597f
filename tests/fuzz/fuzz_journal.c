/* fuzz_journal.c - libFuzzer target for the records of the ledger store's
 * reservation journal (engine/eng_journal.c), read back from the state
 * file at every start.
 *
 * The input is split at its first byte's share of its length into the two
 * blobs of a journal row, each read as a run of schema 3 records and as
 * schema 2's fixed ones. A refusal always says why; every record accepted
 * stays inside its blob, and the run accepted is written again to the same
 * bytes (a record has one form); schema 2's sizes are accepted exactly when
 * they hold whole records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_puts(const uint8_t *p, size_t n)
{
    eng_journal_put_t last = {0};
    for (size_t off = 0; off < n;) {
        eng_journal_put_t r;
        char err[160] = "";
        size_t used = eng_journal_put_read(p + off, n - off, &last, &r, err, sizeof err);
        if (used == 0) {
            if (err[0] == '\0') {
                abort(); /* a refusal that does not say why */
            }
            return;
        }
        if (used > n - off || used > ENG_JOURNAL_PUT_MAX || r.key_rowid < 1 || r.acct_rowid < 1) {
            abort(); /* read past the blob, or accepted a row the writer never names */
        }
        uint8_t again[ENG_JOURNAL_PUT_MAX];
        if (eng_journal_put_write(again, &last, &r) != used || memcmp(again, p + off, used) != 0) {
            abort(); /* read and written differ: a record has two forms */
        }
        last = r;
        off += used;
    }
}

static void check_ends(const uint8_t *p, size_t n)
{
    uint64_t last = 0;
    for (size_t off = 0; off < n;) {
        uint64_t d;
        char err[160] = "";
        size_t used = eng_journal_end_read(p + off, n - off, last, &d, err, sizeof err);
        if (used == 0) {
            if (err[0] == '\0') {
                abort();
            }
            return;
        }
        uint8_t again[ENG_JOURNAL_END_MAX];
        if (used > n - off || eng_journal_end_write(again, last, d) != used ||
            memcmp(again, p + off, used) != 0) {
            abort();
        }
        last = d;
        off += used;
    }
}

static void check_v2(const uint8_t *puts, size_t nputs, const uint8_t *ends, size_t nends)
{
    char err[160] = "";
    bool whole = nputs % ENG_JOURNAL_V2_PUT_BYTES == 0 && nends % ENG_JOURNAL_V2_END_BYTES == 0;
    if (eng_journal_v2_sizes_ok(nputs, nends, err, sizeof err) != whole) {
        abort();
    }
    if (!whole && strncmp(err, "blobs of ", 9) != 0) {
        abort();
    }
    for (size_t off = 0; off + ENG_JOURNAL_V2_PUT_BYTES <= nputs; off += ENG_JOURNAL_V2_PUT_BYTES) {
        eng_journal_put_t r;
        if (!eng_journal_v2_put_read(puts + off, &r, err, sizeof err)) {
            if (strncmp(err, "reservation ", 12) != 0) {
                abort(); /* a refusal that does not say which */
            }
        } else if (r.key_rowid < 1 || r.acct_rowid < 1) {
            abort();
        }
    }
    for (size_t off = 0; off + ENG_JOURNAL_V2_END_BYTES <= nends; off += ENG_JOURNAL_V2_END_BYTES) {
        (void)eng_journal_v2_end_read(ends + off);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t rest = size - 1;
    size_t nputs = rest * data[0] / 255;
    const uint8_t *puts = data + 1, *ends = data + 1 + nputs;
    size_t nends = rest - nputs;
    check_puts(puts, nputs);
    check_ends(ends, nends);
    check_v2(puts, nputs, ends, nends);
    return 0;
}
