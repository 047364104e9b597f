/* eng_journal.c - the reservation journal's records (eng_journal.h). */
#include "eng_journal.h"

#include <stdio.h>

/* Schema 3 ------------------------------------------------------------------ */

/* What a record's first byte says changed from the record before it (or is
 * the flag itself, J_FREE). */
enum { J_KEY = 1, J_ACCT = 2, J_AMOUNT = 4, J_DAY = 8, J_FREE = 16, J_ALL = 31 };

static uint64_t j_zig(uint64_t x)
{
    return (x << 1) ^ (uint64_t) - (int64_t)(x >> 63);
}

static uint64_t j_unzig(uint64_t z)
{
    return (z >> 1) ^ (uint64_t) - (int64_t)(z & 1);
}

static size_t j_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint at *off (< n), the shortest form only; false when it is
 * truncated, longer than its value needs, or past 64 bits. */
static bool j_get_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; *off < n && shift < 64; shift += 7) {
        uint8_t b = p[(*off)++];
        if ((shift == 63 && b > 1) || (shift > 0 && b == 0)) {
            return false; /* past 64 bits, or a last byte of zero: not the shortest form */
        }
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = x;
            return true;
        }
    }
    return false;
}

size_t eng_journal_put_write(uint8_t *p, const eng_journal_put_t *prev, const eng_journal_put_t *r)
{
    uint8_t flags = (uint8_t)((r->key_rowid != prev->key_rowid ? J_KEY : 0) |
                              (r->acct_rowid != prev->acct_rowid ? J_ACCT : 0) |
                              (r->amount_pd != prev->amount_pd ? J_AMOUNT : 0) |
                              (r->day != prev->day ? J_DAY : 0) | (r->free_model ? J_FREE : 0));
    size_t n = 0;
    p[n++] = flags;
    n += j_put_varint(p + n, j_zig(r->decision - prev->decision));
    n += j_put_varint(p + n, j_zig((uint64_t)r->expires_ms - (uint64_t)prev->expires_ms));
    if (flags & J_KEY) {
        n += j_put_varint(p + n, (uint64_t)r->key_rowid);
    }
    if (flags & J_ACCT) {
        n += j_put_varint(p + n, (uint64_t)r->acct_rowid);
    }
    if (flags & J_AMOUNT) {
        n += j_put_varint(p + n, j_zig((uint64_t)r->amount_pd));
    }
    if (flags & J_DAY) {
        n += j_put_varint(p + n, j_zig((uint64_t)r->day));
    }
    return n;
}

/* Reads a field marked changed: it must differ from the previous record's,
 * else the writer would not have marked it. */
static bool j_get_changed(const uint8_t *p, size_t n, size_t *off, bool zigzag, int64_t prev,
                          int64_t *out)
{
    uint64_t v;
    if (!j_get_varint(p, n, off, &v)) {
        return false;
    }
    *out = (int64_t)(zigzag ? j_unzig(v) : v);
    return *out != prev;
}

size_t eng_journal_put_read(const uint8_t *p, size_t n, const eng_journal_put_t *prev,
                            eng_journal_put_t *r, char *err, size_t errlen)
{
    *r = *prev;
    size_t off = 1;
    uint64_t ddec, dexp;
    if (n == 0 || (p[0] & ~J_ALL) || !j_get_varint(p, n, &off, &ddec) ||
        !j_get_varint(p, n, &off, &dexp)) {
        snprintf(err, errlen, "a record truncated or not the writer's (%s)",
                 n > 0 && (p[0] & ~J_ALL) ? "unknown flags" : "its varints");
        return 0;
    }
    uint8_t flags = p[0];
    r->decision = prev->decision + j_unzig(ddec);
    r->expires_ms = (int64_t)((uint64_t)prev->expires_ms + j_unzig(dexp));
    r->free_model = flags & J_FREE;
    if (((flags & J_KEY) && !j_get_changed(p, n, &off, false, prev->key_rowid, &r->key_rowid)) ||
        ((flags & J_ACCT) && !j_get_changed(p, n, &off, false, prev->acct_rowid, &r->acct_rowid)) ||
        ((flags & J_AMOUNT) && !j_get_changed(p, n, &off, true, prev->amount_pd, &r->amount_pd)) ||
        ((flags & J_DAY) && !j_get_changed(p, n, &off, true, prev->day, &r->day))) {
        snprintf(err, errlen, "reservation %llu: a field truncated or marked changed but not",
                 (unsigned long long)r->decision);
        return 0;
    }
    if (r->key_rowid < 1 || r->acct_rowid < 1) {
        snprintf(err, errlen, "reservation %llu: key row %lld, account row %lld (rows start at 1)",
                 (unsigned long long)r->decision, (long long)r->key_rowid,
                 (long long)r->acct_rowid);
        return 0;
    }
    return off;
}

size_t eng_journal_end_write(uint8_t *p, uint64_t prev, uint64_t decision)
{
    return j_put_varint(p, j_zig(decision - prev));
}

size_t eng_journal_end_read(const uint8_t *p, size_t n, uint64_t prev, uint64_t *decision,
                            char *err, size_t errlen)
{
    size_t off = 0;
    uint64_t d;
    if (!j_get_varint(p, n, &off, &d)) {
        snprintf(err, errlen, "an end truncated or not the writer's (its varint)");
        return 0;
    }
    *decision = prev + j_unzig(d);
    return off;
}

/* Schema 2 ------------------------------------------------------------------ */

enum { J2_DECISION, J2_KEY, J2_ACCT, J2_AMOUNT, J2_DAY, J2_EXPIRES, J2_FREE, J2_N };
_Static_assert(ENG_JOURNAL_V2_PUT_BYTES == 8 * J2_N, "a put record is J2_N 8-byte fields");

static uint64_t j_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

bool eng_journal_v2_put_read(const uint8_t *p, eng_journal_put_t *r, char *err, size_t errlen)
{
    uint64_t f[J2_N];
    for (int i = 0; i < J2_N; i++) {
        f[i] = j_get64(p + 8 * i);
    }
    *r = (eng_journal_put_t){.decision = f[J2_DECISION],
                             .key_rowid = (int64_t)f[J2_KEY],
                             .acct_rowid = (int64_t)f[J2_ACCT],
                             .amount_pd = (int64_t)f[J2_AMOUNT],
                             .day = (int64_t)f[J2_DAY],
                             .expires_ms = (int64_t)f[J2_EXPIRES],
                             .free_model = f[J2_FREE] == 1};
    if (f[J2_FREE] > 1) {
        snprintf(err, errlen, "reservation %llu: free flag %llu (0 or 1)",
                 (unsigned long long)r->decision, (unsigned long long)f[J2_FREE]);
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

uint64_t eng_journal_v2_end_read(const uint8_t *p)
{
    return j_get64(p);
}

bool eng_journal_v2_sizes_ok(size_t puts_bytes, size_t ends_bytes, char *err, size_t errlen)
{
    if (puts_bytes % ENG_JOURNAL_V2_PUT_BYTES == 0 && ends_bytes % ENG_JOURNAL_V2_END_BYTES == 0) {
        return true;
    }
    snprintf(err, errlen, "blobs of %zu and %zu bytes (records of %d and %d)", puts_bytes,
             ends_bytes, ENG_JOURNAL_V2_PUT_BYTES, ENG_JOURNAL_V2_END_BYTES);
    return false;
}
