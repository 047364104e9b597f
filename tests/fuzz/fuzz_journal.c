/* fuzz_journal.c - libFuzzer target for the records of the ledger store's
 * reservation journal (engine/eng_journal.c), read back from the state
 * file at every start.
 *
 * The input is split at its first byte's share of its length into the two
 * blobs of a journal row. Their sizes are accepted exactly when they hold
 * whole records; a record read back is refused only with a message naming
 * its decision, and one accepted is written again to the same bytes; an
 * end is always the decision it holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng_journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_puts(const uint8_t *p, size_t n)
{
    for (size_t off = 0; off + ENG_JOURNAL_PUT_BYTES <= n; off += ENG_JOURNAL_PUT_BYTES) {
        eng_journal_put_t r;
        char err[160] = "";
        if (!eng_journal_put_read(p + off, &r, err, sizeof err)) {
            if (strncmp(err, "reservation ", 12) != 0) {
                abort(); /* a refusal that does not say which */
            }
            continue;
        }
        if (r.key_rowid < 1 || r.acct_rowid < 1) {
            abort(); /* accepted a row the writer never names */
        }
        uint8_t again[ENG_JOURNAL_PUT_BYTES];
        eng_journal_put_write(again, &r);
        if (memcmp(again, p + off, sizeof again) != 0) {
            abort(); /* read and written differ: the layout is not one */
        }
    }
}

static void check_ends(const uint8_t *p, size_t n)
{
    for (size_t off = 0; off + ENG_JOURNAL_END_BYTES <= n; off += ENG_JOURNAL_END_BYTES) {
        uint8_t again[ENG_JOURNAL_END_BYTES];
        eng_journal_end_write(again, eng_journal_end_read(p + off));
        if (memcmp(again, p + off, sizeof again) != 0) {
            abort();
        }
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
    char err[160] = "";
    bool whole = nputs % ENG_JOURNAL_PUT_BYTES == 0 && nends % ENG_JOURNAL_END_BYTES == 0;
    if (eng_journal_sizes_ok(nputs, nends, err, sizeof err) != whole) {
        abort();
    }
    if (!whole && strncmp(err, "blobs of ", 9) != 0) {
        abort();
    }
    check_puts(puts, nputs);
    check_ends(ends, nends);
    return 0;
}
