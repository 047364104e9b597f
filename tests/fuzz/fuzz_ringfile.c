/* fuzz_ringfile.c - libFuzzer target for the ledger store's ring file
 * (engine/eng_ringfile.c), read back at the start that follows a crash.
 *
 * A valid file of a small layout (one account, one key, three entries) is
 * made once; each input is a list of patches applied to a copy of it (two
 * bytes of offset, one of length, then the bytes), so that short inputs
 * reach the names and the entries past the header. The first byte is the
 * position the database holds. The check must answer every file: a refusal
 * or a pass-over always says why, and a file it accepts has the layout's
 * size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_ringfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const eng_ring_layout_t s_layout = {
    .name_len = 16, .max_accts = 4, .max_keys = 4, .entries = 8};
static uint8_t *s_file;
static size_t s_size;

/* The valid file every input starts from. */
static void s_template(void)
{
    char dir[] = "/tmp/hpp-fuzz-ring-XXXXXX", path[64], err[256];
    if (!mkdtemp(dir)) {
        abort();
    }
    snprintf(path, sizeof path, "%s/r.ring", dir);
    eng_ringfile_t *rf =
        eng_ringfile_create(path, &s_layout, "boot-1", "/var/lib/x/ledger.db", 42, err, sizeof err);
    if (!rf) {
        abort();
    }
    eng_ringfile_set_acct(rf, 0, "acme");
    eng_ringfile_set_key(rf, 0, "sha256:aa");
    eng_ring_change_t *e = eng_ringfile_entries(rf);
    e[0] = (eng_ring_change_t){.kind = ENG_RING_ACCT, .row = {5, 0}};
    e[1] = (eng_ring_change_t){.kind = ENG_RING_RESV_PUT, .decision = 7, .amount_pd = 3};
    e[2] = (eng_ring_change_t){.kind = ENG_RING_RESV_DEL, .decision = 7};
    atomic_store(eng_ringfile_head(rf), 3);
    eng_ringfile_destroy(&rf, false);
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        abort();
    }
    s_size = (size_t)sb.st_size;
    s_file = malloc(s_size);
    if (!s_file || fread(s_file, 1, s_size, f) != s_size) {
        abort();
    }
    fclose(f);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_file) {
        s_template();
    }
    if (size == 0) {
        return 0;
    }
    /* The last patch may cut the file short: a truncated ring. */
    uint8_t *file = malloc(s_size);
    if (!file) {
        abort();
    }
    memcpy(file, s_file, s_size);
    size_t len = s_size;
    eng_ring_want_t want = {.layout = s_layout,
                            .boot_id = "boot-1",
                            .state_path = "/var/lib/x/ledger.db",
                            .epoch = 42,
                            .from = data[0] % 16};
    for (size_t i = 1; i + 3 <= size;) {
        size_t off = ((size_t)data[i] << 8 | data[i + 1]) % (s_size + 1);
        size_t n = data[i + 2];
        i += 3;
        if (n == 0) {
            len = off; /* a zero-length patch truncates */
            continue;
        }
        for (size_t j = 0; j < n && i < size && off + j < s_size; j++, i++) {
            file[off + j] = data[i];
        }
    }
    char err[256] = "";
    int rc = eng_ringfile_check(file, len, &want, err, sizeof err);
    if (rc != ENG_RING_OK && err[0] == '\0') {
        abort(); /* a refusal that does not say why */
    }
    if (rc == ENG_RING_OK && len != s_size) {
        abort(); /* accepted at another size than its layout's */
    }
    free(file);
    return 0;
}
