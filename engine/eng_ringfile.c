/* eng_ringfile.c - the ledger store's ring of changes in a mapped file
 * (see eng_ringfile.h). */
#define _GNU_SOURCE
#include "eng_ringfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_common.h"

#define S_MAGIC "HPPRING1" /* 8 bytes, no NUL; the digit is the layout's version */
#define S_PATH_MAX 4096
#define S_PAGE 4096

/* The header, at offset 0; the names and the entries start on pages of
 * their own. */
typedef struct {
    char magic[8];
    uint32_t entry_size, name_len, max_accts, max_keys, entries, pad;
    uint64_t epoch;
    char boot_id[40];
    char state_path[S_PATH_MAX];
    _Atomic uint64_t head;          /* entries published */
    _Atomic uint32_t naccts, nkeys; /* names written */
} s_hdr_t;

struct eng_ringfile {
    uint8_t *base;
    size_t size;
    char *path;
    eng_ring_layout_t layout;
    /* As checked (eng_ringfile_open): what a read goes by, not the live
     * header, which a writer of the file could change after the check. */
    uint64_t head;
    uint32_t naccts, nkeys;
    bool checked;
};

static size_t s_round(size_t n)
{
    return (n + S_PAGE - 1) & ~(size_t)(S_PAGE - 1);
}

static size_t s_accts_off(void)
{
    return s_round(sizeof(s_hdr_t));
}

static size_t s_keys_off(const eng_ring_layout_t *l)
{
    return s_accts_off() + (size_t)l->max_accts * l->name_len;
}

static size_t s_entries_off(const eng_ring_layout_t *l)
{
    return s_round(s_keys_off(l) + (size_t)l->max_keys * l->name_len);
}

static size_t s_size(const eng_ring_layout_t *l)
{
    return s_entries_off(l) + (size_t)l->entries * sizeof(eng_ring_change_t);
}

int eng_ringfile_path(const char *dir, const char *state_path, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    int n = snprintf(out, outlen, "%s/hpp-ledger-%016" PRIx64 ".ring", dir,
                     eng_fnv1a(state_path, strlen(state_path)));
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "--ledger-ring-dir %.200s: the path is too long", dir);
        return -1;
    }
    return 0;
}

void eng_ringfile_boot_id(char out[40])
{
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f) {
        return;
    }
    if (!fgets(out, 40, f)) {
        out[0] = '\0';
    }
    out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* Is the name at p (len bytes) one the store writes: not empty, ended? */
static bool s_name_ok(const uint8_t *p, uint32_t len)
{
    return p[0] != '\0' && memchr(p, '\0', len) != NULL;
}

static int s_stale(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return ENG_RING_STALE;
}

static int s_check_entries(const uint8_t *base, const s_hdr_t *h, const eng_ring_want_t *w,
                           uint32_t naccts, uint32_t nkeys, char *err, size_t errlen)
{
    const uint8_t *entries = base + s_entries_off(&w->layout);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    for (uint64_t p = w->from; p < head; p++) {
        eng_ring_change_t c;
        memcpy(&c, entries + (p & (w->layout.entries - 1)) * sizeof c, sizeof c);
        const char *why = c.kind >= ENG_RING_KINDS ? "an unknown kind"
                          : c.free_model > 1       ? "a free_model other than 0 or 1"
                          : c.acct >= naccts       ? "an account with no name"
                          : c.kind != ENG_RING_ACCT && c.key >= nkeys ? "a key with no name"
                                                                      : NULL;
        if (why) {
            snprintf(err, errlen, "entry %" PRIu64 " (at byte %zu): %s", p,
                     s_entries_off(&w->layout) + (size_t)(p & (w->layout.entries - 1)) * sizeof c,
                     why);
            return ENG_RING_BAD;
        }
    }
    return ENG_RING_OK;
}

/* The header h of a file of file_size bytes, against w. */
static int s_check_header(const s_hdr_t *h, size_t file_size, const eng_ring_want_t *w, char *err,
                          size_t errlen)
{
    if (memcmp(h->magic, S_MAGIC, sizeof h->magic) != 0) {
        snprintf(err, errlen, "byte 0: not a ring file of this store (no \"%s\")", S_MAGIC);
        return ENG_RING_BAD;
    }
    if (memchr(h->boot_id, '\0', sizeof h->boot_id) == NULL ||
        memchr(h->state_path, '\0', sizeof h->state_path) == NULL) {
        snprintf(err, errlen, "byte %zu: its boot id or state path is not ended",
                 offsetof(s_hdr_t, boot_id));
        return ENG_RING_BAD;
    }
    /* Whose it is first: a ring of this state file and epoch is one the
     * database waits for, and another layout then is an error, not stale.
     * An empty boot id (no /proc) cannot tell boots apart: never this one. */
    if (w->boot_id[0] == '\0' || strcmp(h->boot_id, w->boot_id) != 0) {
        return s_stale(err, errlen, "written before the last boot");
    }
    if (strcmp(h->state_path, w->state_path) != 0) {
        return s_stale(err, errlen, "the ring of another state file");
    }
    if (h->epoch != w->epoch) {
        return s_stale(err, errlen, "of an epoch the state file has moved past");
    }
    const eng_ring_layout_t *l = &w->layout;
    if (h->entry_size != sizeof(eng_ring_change_t) || h->name_len != l->name_len ||
        h->max_accts != l->max_accts || h->max_keys != l->max_keys || h->entries != l->entries) {
        snprintf(err, errlen,
                 "laid out by another build (entries of %" PRIu32 " bytes, %" PRIu32
                 " of them): start the build that wrote it",
                 h->entry_size, h->entries);
        return ENG_RING_BAD;
    }
    if (file_size != s_size(l)) {
        snprintf(err, errlen, "%zu bytes where its layout makes %zu", file_size, s_size(l));
        return ENG_RING_BAD;
    }
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint32_t naccts = atomic_load_explicit(&h->naccts, memory_order_relaxed);
    uint32_t nkeys = atomic_load_explicit(&h->nkeys, memory_order_relaxed);
    const char *why = head < w->from ? "its head is before the position the state file holds"
                      : head - w->from > l->entries ? "more entries past the state file's "
                                                      "position than the ring holds"
                      : naccts > l->max_accts       ? "more account names than it holds"
                      : nkeys > l->max_keys         ? "more key names than it holds"
                                                    : NULL;
    if (why) {
        snprintf(err, errlen,
                 "head %" PRIu64 ", position %" PRIu64 ", %" PRIu32 " accounts, %" PRIu32
                 " keys: %s",
                 head, w->from, naccts, nkeys, why);
        return ENG_RING_BAD;
    }
    return ENG_RING_OK;
}

int eng_ringfile_check(const uint8_t *base, size_t size, const eng_ring_want_t *w, char *err,
                       size_t errlen)
{
    s_hdr_t h;
    if (size < sizeof h) {
        snprintf(err, errlen, "%zu bytes: shorter than its header (%zu)", size, sizeof h);
        return ENG_RING_BAD;
    }
    memcpy(&h, base, sizeof h);
    int rc = s_check_header(&h, size, w, err, errlen);
    if (rc != ENG_RING_OK) {
        return rc;
    }
    const eng_ring_layout_t *l = &w->layout;
    uint32_t naccts = atomic_load_explicit(&h.naccts, memory_order_relaxed);
    uint32_t nkeys = atomic_load_explicit(&h.nkeys, memory_order_relaxed);
    for (uint32_t i = 0; i < naccts + nkeys; i++) {
        size_t off = i < naccts ? s_accts_off() + (size_t)i * l->name_len
                                : s_keys_off(l) + (size_t)(i - naccts) * l->name_len;
        if (!s_name_ok(base + off, l->name_len)) {
            snprintf(err, errlen, "%s name %" PRIu32 " (at byte %zu): empty or not ended",
                     i < naccts ? "account" : "key", i < naccts ? i : i - naccts, off);
            return ENG_RING_BAD;
        }
    }
    return s_check_entries(base, &h, w, naccts, nkeys, err, errlen);
}

static eng_ringfile_t *s_new(uint8_t *base, size_t size, const char *path,
                             const eng_ring_layout_t *l)
{
    eng_ringfile_t *rf = calloc(1, sizeof *rf);
    if (rf) {
        rf->path = strdup(path);
    }
    if (!rf || !rf->path) {
        free(rf);
        munmap(base, size);
        return NULL;
    }
    rf->base = base;
    rf->size = size;
    rf->layout = *l;
    return rf;
}

int eng_ringfile_open(const char *path, const eng_ring_want_t *want, eng_ringfile_t **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            return ENG_RING_ABSENT;
        }
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return ENG_RING_BAD;
    }
    /* Ours alone: a file another user could write could change under
     * the check (a directory such as /dev/shm is shared). */
    struct stat sb;
    const char *why = fstat(fd, &sb) != 0        ? strerror(errno)
                      : !S_ISREG(sb.st_mode)     ? "not a regular file"
                      : sb.st_uid != geteuid()   ? "owned by another user"
                      : (sb.st_mode & 0077) != 0 ? "readable or writable by others (not 0600)"
                                                 : NULL;
    if (why) {
        close(fd);
        snprintf(err, errlen, "%s", why);
        return ENG_RING_BAD;
    }
    size_t size = (size_t)sb.st_size;
    if (size != s_size(&want->layout)) {
        /* Stale (another layout) or bad, by its header: never mapped past its end. */
        s_hdr_t h;
        bool whole = pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h;
        close(fd);
        if (!whole) {
            snprintf(err, errlen, "%zu bytes: shorter than its header (%zu)", size, sizeof h);
            return ENG_RING_BAD;
        }
        return s_check_header(&h, size, want, err, errlen);
    }
    uint8_t *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "cannot map: %s", strerror(errno));
        return ENG_RING_BAD;
    }
    int rc = eng_ringfile_check(base, size, want, err, errlen);
    if (rc != ENG_RING_OK) {
        munmap(base, size);
        return rc;
    }
    *out = s_new(base, size, path, &want->layout);
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return ENG_RING_BAD;
    }
    s_hdr_t h;
    memcpy(&h, base, sizeof h);
    (*out)->head = atomic_load_explicit(&h.head, memory_order_relaxed);
    (*out)->naccts = atomic_load_explicit(&h.naccts, memory_order_relaxed);
    (*out)->nkeys = atomic_load_explicit(&h.nkeys, memory_order_relaxed);
    (*out)->checked = true;
    return ENG_RING_OK;
}

eng_ringfile_t *eng_ringfile_create(const char *path, const eng_ring_layout_t *l,
                                    const char *boot_id, const char *state_path, uint64_t epoch,
                                    char *err, size_t errlen)
{
    char tmp[S_PATH_MAX + 8];
    const char *too_long = strlen(state_path) >= S_PATH_MAX ? "the state file's path"
                           : strlen(boot_id) >= 40          ? "the boot id"
                           : (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp
                               ? "the ring's path"
                               : NULL;
    if (too_long) {
        snprintf(err, errlen, "%.200s: %s is too long", path, too_long);
        return NULL;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return NULL;
    }
    size_t size = s_size(l);
    /* Every page allocated now: a full tmpfs is an error here, not a
     * SIGBUS when a decision writes an entry. */
    int e = posix_fallocate(fd, 0, (off_t)size);
    uint8_t *base = e == 0
                        ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
                        : MAP_FAILED;
    if (base == MAP_FAILED) {
        e = e ? e : errno;
    }
    close(fd);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot allocate %zu bytes: %s", tmp, size, strerror(e));
        unlink(tmp);
        return NULL;
    }
    s_hdr_t *h = (s_hdr_t *)base;
    memcpy(h->magic, S_MAGIC, sizeof h->magic);
    h->entry_size = sizeof(eng_ring_change_t);
    h->name_len = l->name_len;
    h->max_accts = l->max_accts;
    h->max_keys = l->max_keys;
    h->entries = l->entries;
    h->epoch = epoch;
    snprintf(h->boot_id, sizeof h->boot_id, "%s", boot_id);
    snprintf(h->state_path, sizeof h->state_path, "%s", state_path);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        munmap(base, size);
        unlink(tmp);
        return NULL;
    }
    eng_ringfile_t *rf = s_new(base, size, path, l);
    if (!rf) {
        snprintf(err, errlen, "%s: out of memory", path);
    }
    return rf;
}

eng_ring_change_t *eng_ringfile_entries(eng_ringfile_t *rf)
{
    return (eng_ring_change_t *)(rf->base + s_entries_off(&rf->layout));
}

char *eng_ringfile_acct_name(eng_ringfile_t *rf, uint32_t i)
{
    return (char *)rf->base + s_accts_off() + (size_t)i * rf->layout.name_len;
}

char *eng_ringfile_key_name(eng_ringfile_t *rf, uint32_t i)
{
    return (char *)rf->base + s_keys_off(&rf->layout) + (size_t)i * rf->layout.name_len;
}

_Atomic uint64_t *eng_ringfile_head(eng_ringfile_t *rf)
{
    return &((s_hdr_t *)rf->base)->head;
}

uint64_t eng_ringfile_checked_head(eng_ringfile_t *rf)
{
    return rf->checked ? rf->head : atomic_load(&((s_hdr_t *)rf->base)->head);
}

uint32_t eng_ringfile_naccts(eng_ringfile_t *rf)
{
    return rf->checked ? rf->naccts
                       : atomic_load_explicit(&((s_hdr_t *)rf->base)->naccts, memory_order_acquire);
}

uint32_t eng_ringfile_nkeys(eng_ringfile_t *rf)
{
    return rf->checked ? rf->nkeys
                       : atomic_load_explicit(&((s_hdr_t *)rf->base)->nkeys, memory_order_acquire);
}

void eng_ringfile_set_acct(eng_ringfile_t *rf, uint32_t i, const char *name)
{
    snprintf(eng_ringfile_acct_name(rf, i), rf->layout.name_len, "%s", name);
    atomic_store_explicit(&((s_hdr_t *)rf->base)->naccts, i + 1, memory_order_release);
}

void eng_ringfile_set_key(eng_ringfile_t *rf, uint32_t i, const char *hash)
{
    snprintf(eng_ringfile_key_name(rf, i), rf->layout.name_len, "%s", hash);
    atomic_store_explicit(&((s_hdr_t *)rf->base)->nkeys, i + 1, memory_order_release);
}

void eng_ringfile_destroy(eng_ringfile_t **self_p, bool remove)
{
    eng_ringfile_t *rf = *self_p;
    if (!rf) {
        return;
    }
    *self_p = NULL;
    munmap(rf->base, rf->size);
    if (remove) {
        unlink(rf->path);
    }
    free(rf->path);
    free(rf);
}
