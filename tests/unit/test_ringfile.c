/* test_ringfile.c - the ledger store's ring file (engine/eng_ringfile.c):
 * made, read back, and each way a file is refused or passed over, with the
 * place it names. A small layout keeps the files small. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_tmpdir.h"
#include "eng_ringfile.h"

static char s_dir[64];
static char s_path[128];
static const eng_ring_layout_t s_layout = {
    .name_len = 16, .max_accts = 4, .max_keys = 4, .entries = 8};

static void s_setup(void)
{
    cr_assert_eq(test_tmpdir_make(s_dir, sizeof s_dir, "ring"), 0, "%s", s_dir);
    snprintf(s_path, sizeof s_path, "%s/r.ring", s_dir);
}

static void s_teardown(void)
{
    cr_assert_eq(test_tmpdir_remove(s_dir), 0, "%s", s_dir);
}

TestSuite(ringfile, .init = s_setup, .fini = s_teardown);

static eng_ring_want_t s_want(void)
{
    return (eng_ring_want_t){.layout = s_layout,
                             .boot_id = "boot-1",
                             .state_path = "/var/lib/x/ledger.db",
                             .epoch = 42,
                             .from = 0};
}

/* A file of one account, one key and three entries published: an account's
 * row, a reservation and its end. */
static void s_make(void)
{
    char err[256];
    eng_ringfile_t *rf = eng_ringfile_create(s_path, &s_layout, "boot-1", "/var/lib/x/ledger.db",
                                             42, err, sizeof err);
    cr_assert_not_null(rf, "%s", err);
    eng_ringfile_set_acct(rf, 0, "acme");
    eng_ringfile_set_key(rf, 0, "sha256:aa");
    eng_ring_change_t *e = eng_ringfile_entries(rf);
    e[0] = (eng_ring_change_t){.kind = ENG_RING_ACCT, .acct = 0, .row = {5, 0}};
    e[1] = (eng_ring_change_t){
        .kind = ENG_RING_RESV_PUT, .key = 0, .acct = 0, .decision = 7, .amount_pd = 3};
    e[2] = (eng_ring_change_t){.kind = ENG_RING_RESV_DEL, .key = 0, .acct = 0, .decision = 7};
    atomic_store(eng_ringfile_head(rf), 3);
    eng_ringfile_destroy(&rf, false);
}

/* Opens the file as the store would; the result and its message. */
static int s_open(const eng_ring_want_t *w, char *err, size_t errlen)
{
    eng_ringfile_t *rf = NULL;
    int rc = eng_ringfile_open(s_path, w, &rf, err, errlen);
    cr_assert_eq(rf != NULL, rc == ENG_RING_OK);
    eng_ringfile_destroy(&rf, false);
    return rc;
}

/* The file as it is now, wanted as s_want says, is refused saying `says`. */
static void s_refused_saying(const char *says)
{
    eng_ring_want_t w = s_want();
    char err[256] = "";
    cr_assert_eq(s_open(&w, err, sizeof err), ENG_RING_BAD);
    cr_assert_str_eq(err, says);
}

/* Writes `n` bytes at `off` of the file. */
static void s_poke(size_t off, const void *p, size_t n)
{
    int fd = open(s_path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

Test(ringfile, made_and_read_back)
{
    s_make();
    struct stat sb;
    cr_assert_eq(stat(s_path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "private: it holds key hashes");
    eng_ring_want_t w = s_want();
    eng_ringfile_t *rf = NULL;
    char err[256] = "";
    cr_assert_eq(eng_ringfile_open(s_path, &w, &rf, err, sizeof err), ENG_RING_OK, "%s", err);
    cr_assert_eq(atomic_load(eng_ringfile_head(rf)), 3);
    cr_assert_eq(eng_ringfile_naccts(rf), 1);
    cr_assert_eq(eng_ringfile_nkeys(rf), 1);
    cr_assert_str_eq(eng_ringfile_acct_name(rf, 0), "acme");
    cr_assert_str_eq(eng_ringfile_key_name(rf, 0), "sha256:aa");
    cr_assert_eq(eng_ringfile_entries(rf)[1].decision, 7);
    eng_ringfile_destroy(&rf, true);
    cr_assert_neq(access(s_path, F_OK), 0, "removed");
    cr_assert_eq(eng_ringfile_open(s_path, &w, &rf, err, sizeof err), ENG_RING_ABSENT);
}

Test(ringfile, another_boot_file_or_epoch_is_stale_another_layout_is_not)
{
    s_make();
    static const struct {
        const char *boot, *state;
        uint64_t epoch;
        uint32_t entries;
        int rc;
        const char *says;
    } cases[] = {
        {"boot-2", "/var/lib/x/ledger.db", 42, 8, ENG_RING_STALE, "written before the last boot"},
        {"", "/var/lib/x/ledger.db", 42, 8, ENG_RING_STALE, "written before the last boot"},
        {"boot-1", "/var/lib/y/ledger.db", 42, 8, ENG_RING_STALE, "the ring of another state file"},
        {"boot-1", "/var/lib/x/ledger.db", 43, 8, ENG_RING_STALE,
         "of an epoch the state file has moved past"},
        /* The database waits for this one: another build's is an error. */
        {"boot-1", "/var/lib/x/ledger.db", 42, 16, ENG_RING_BAD,
         "laid out by another build (entries of 112 bytes, 8 of them): start the build that "
         "wrote it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_ring_want_t w = s_want();
        w.boot_id = cases[i].boot;
        w.state_path = cases[i].state;
        w.epoch = cases[i].epoch;
        w.layout.entries = cases[i].entries;
        char err[256] = "";
        cr_assert_eq(s_open(&w, err, sizeof err), cases[i].rc, "case %zu: %s", i, err);
        cr_assert_str_eq(err, cases[i].says, "case %zu", i);
    }
}

Test(ringfile, a_file_others_could_write_is_refused)
{
    s_make();
    cr_assert_eq(chmod(s_path, 0644), 0);
    s_refused_saying("readable or writable by others (not 0600)");
}

Test(ringfile, a_read_goes_by_the_values_checked)
{
    s_make();
    eng_ring_want_t w = s_want();
    eng_ringfile_t *rf = NULL;
    char err[256] = "";
    cr_assert_eq(eng_ringfile_open(s_path, &w, &rf, err, sizeof err), ENG_RING_OK, "%s", err);
    /* A writer of the file moves the head and the names past the check. */
    uint64_t head = 1000000;
    uint32_t n = 70000;
    s_poke(4176, &head, sizeof head); /* the header's head, then its account count */
    s_poke(4184, &n, sizeof n);
    cr_assert_eq(atomic_load(eng_ringfile_head(rf)), head, "the live header moved");
    cr_assert_eq(eng_ringfile_checked_head(rf), 3);
    cr_assert_eq(eng_ringfile_naccts(rf), 1);
    eng_ringfile_destroy(&rf, false);
}

/* Where the entries start in s_layout: after the header's 8 KiB and the
 * names (4 + 4 of 16 bytes), on a page. */
#define S_ENTRIES 12288u
#define S_ENTRY(i) (S_ENTRIES + (i) * sizeof(eng_ring_change_t))

Test(ringfile, a_damaged_file_is_refused_with_where)
{
    static const struct {
        size_t off;
        uint8_t byte;
        uint64_t from;
        const char *says;
    } cases[] = {
        {0, 'X', 0, "byte 0: not a ring file of this store (no \"HPPRING1\")"},
        {S_ENTRY(1), 9, 0, "entry 1 (at byte 12400): an unknown kind"},
        {S_ENTRY(2) + 1, 2, 0, "entry 2 (at byte 12512): a free_model other than 0 or 1"},
        {S_ENTRY(0) + 8, 1, 0, "entry 0 (at byte 12288): an account with no name"},
        {S_ENTRY(2) + 4, 1, 0, "entry 2 (at byte 12512): a key with no name"},
        {8192, 0, 0, "account name 0 (at byte 8192): empty or not ended"},
        {0, 'H', 4,
         "head 3, position 4, 1 accounts, 1 keys: its head is before the position "
         "the state file holds"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_make();
        s_poke(cases[i].off, &cases[i].byte, 1);
        eng_ring_want_t w = s_want();
        w.from = cases[i].from;
        char err[256] = "";
        cr_assert_eq(s_open(&w, err, sizeof err), ENG_RING_BAD, "case %zu: %s", i, err);
        cr_assert_str_eq(err, cases[i].says, "case %zu", i);
    }
}

Test(ringfile, entries_before_the_position_are_not_read)
{
    s_make();
    uint8_t bad = 9;
    s_poke(S_ENTRY(0), &bad, 1);
    eng_ring_want_t w = s_want();
    w.from = 1; /* the database holds entry 0 */
    char err[256] = "";
    cr_assert_eq(s_open(&w, err, sizeof err), ENG_RING_OK, "%s", err);
}

Test(ringfile, a_short_or_long_file_is_refused_with_its_size)
{
    s_make();
    cr_assert_eq(truncate(s_path, 20000), 0);
    s_refused_saying("20000 bytes where its layout makes 13184");
    cr_assert_eq(truncate(s_path, 100), 0);
    s_refused_saying("100 bytes: shorter than its header (4192)");
}

Test(ringfile, a_path_too_long_for_the_directory_is_refused)
{
    char dir[300], out[128], err[256] = "";
    memset(dir, 'd', sizeof dir - 1);
    dir[sizeof dir - 1] = '\0';
    cr_assert_eq(eng_ringfile_path(dir, "/x", out, sizeof out, err, sizeof err), -1);
    cr_assert(strstr(err, "--ledger-ring-dir ddd") && strstr(err, "the path is too long"), "%s",
              err);
    cr_assert_eq(eng_ringfile_path("/run/x", "/x", out, sizeof out, err, sizeof err), 0);
    cr_assert(strncmp(out, "/run/x/hpp-ledger-", 18) == 0 && strstr(out, ".ring"), "%s", out);
}

/* A ring path too long for its temporary name is refused whole, never
 * created under a name cut short; so is a state path too long for the header. */
Test(ringfile, a_path_too_long_to_create_is_refused_saying_which)
{
    static char path[4200];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    char err[512] = "";
    cr_assert_null(eng_ringfile_create(path, &s_layout, "boot-1", "/x.db", 1, err, sizeof err));
    cr_assert(strstr(err, "the ring's path is too long"), "%s", err);
    cr_assert_null(eng_ringfile_create(s_path, &s_layout, "boot-1", path, 1, err, sizeof err));
    cr_assert(strstr(err, "the state file's path is too long"), "%s", err);
    cr_assert_eq(access(s_path, F_OK), -1, "nothing made");
}
