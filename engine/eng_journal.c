/* eng_journal.c - the reservation journal's records (eng_journal.h). */
#include "eng_journal.h"

#include <stdio.h>

enum { J_DECISION, J_KEY, J_ACCT, J_AMOUNT, J_DAY, J_EXPIRES, J_FREE, J_N };
_Static_assert(ENG_JOURNAL_PUT_BYTES == 8 * J_N, "a put record is J_N 8-byte fields");

static void j_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t j_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

void eng_journal_put_write(uint8_t *p, const eng_journal_put_t *r)
{
    const uint64_t f[J_N] = {
        [J_DECISION] = r->decision,         [J_KEY] = (uint64_t)r->key_rowid,
        [J_ACCT] = (uint64_t)r->acct_rowid, [J_AMOUNT] = (uint64_t)r->amount_pd,
        [J_DAY] = (uint64_t)r->day,         [J_EXPIRES] = (uint64_t)r->expires_ms,
        [J_FREE] = r->free_model,
    };
    for (int i = 0; i < J_N; i++) {
        j_put64(p + 8 * i, f[i]);
    }
}

bool eng_journal_put_read(const uint8_t *p, eng_journal_put_t *r, char *err, size_t errlen)
{
    uint64_t f[J_N];
    for (int i = 0; i < J_N; i++) {
        f[i] = j_get64(p + 8 * i);
    }
    *r = (eng_journal_put_t){.decision = f[J_DECISION],
                             .key_rowid = (int64_t)f[J_KEY],
                             .acct_rowid = (int64_t)f[J_ACCT],
                             .amount_pd = (int64_t)f[J_AMOUNT],
                             .day = (int64_t)f[J_DAY],
                             .expires_ms = (int64_t)f[J_EXPIRES],
                             .free_model = f[J_FREE] == 1};
    if (f[J_FREE] > 1) {
        snprintf(err, errlen, "reservation %llu: free flag %llu (0 or 1)",
                 (unsigned long long)r->decision, (unsigned long long)f[J_FREE]);
        return false;
    }
    if (r->key_rowid < 1 || r->acct_rowid < 1) {
        snprintf(err, errlen, "reservation %llu: key row %lld, account row %lld (rows start at 1)",
                 (unsigned long long)r->decision, (long long)r->key_rowid,
                 (long long)r->acct_rowid);
        return false;
    }
    return true;
}

void eng_journal_end_write(uint8_t *p, uint64_t decision)
{
    j_put64(p, decision);
}

uint64_t eng_journal_end_read(const uint8_t *p)
{
    return j_get64(p);
}

bool eng_journal_sizes_ok(size_t puts_bytes, size_t ends_bytes, char *err, size_t errlen)
{
    if (puts_bytes % ENG_JOURNAL_PUT_BYTES == 0 && ends_bytes % ENG_JOURNAL_END_BYTES == 0) {
        return true;
    }
    snprintf(err, errlen, "blobs of %zu and %zu bytes (records of %d and %d)", puts_bytes,
             ends_bytes, ENG_JOURNAL_PUT_BYTES, ENG_JOURNAL_END_BYTES);
    return false;
}
