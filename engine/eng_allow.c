/* eng_allow.c - the CURVE client allow-list (see eng_allow.h).
 *
 * Keys are kept raw (32 bytes), as ZAP hands them over, in an array
 * searched linearly: a lookup happens once per connection handshake, never
 * per request, and a list holds dozens of keys, not millions. Each key
 * remembers the file and line it came from, so a conflicting duplicate can
 * name both places.
 */
#define _GNU_SOURCE
#include "eng_allow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "hpp_keys.h"

typedef struct {
    uint8_t key[32]; /* raw public key */
    eng_role_t role; /* client or admin */
    uint32_t file;   /* index in files[] */
    uint32_t line;   /* 1-based */
} s_entry_t;

struct eng_allow {
    s_entry_t *v;  /* keys */
    size_t n;      /* used */
    size_t cap;    /* allocated */
    char **files;  /* names of the files read, owned */
    size_t nfiles; /* used */
};

const char *eng_role_name(eng_role_t role)
{
    static const char *const names[] = {
        [ENG_ROLE_NONE] = "none", [ENG_ROLE_CLIENT] = "client", [ENG_ROLE_ADMIN] = "admin"};
    return (unsigned)role < sizeof names / sizeof names[0] ? names[role] : "none";
}

eng_allow_t *eng_allow_new(void)
{
    return calloc(1, sizeof(eng_allow_t));
}

void eng_allow_destroy(eng_allow_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_allow_t *self = *self_p;
    for (size_t i = 0; i < self->nfiles; i++) {
        free(self->files[i]);
    }
    free(self->files);
    free(self->v);
    free(self);
    *self_p = NULL;
}

/* Remembers a file name; returns its index or -1 (out of memory). */
static int s_add_file(eng_allow_t *self, const char *file)
{
    char **nf = realloc(self->files, (self->nfiles + 1) * sizeof *nf);
    if (!nf) {
        return -1;
    }
    self->files = nf;
    if (!(nf[self->nfiles] = strdup(file))) {
        return -1;
    }
    return (int)self->nfiles++;
}

static const s_entry_t *s_find(const eng_allow_t *self, const uint8_t key[32])
{
    for (size_t i = 0; i < self->n; i++) {
        if (memcmp(self->v[i].key, key, 32) == 0) {
            return &self->v[i];
        }
    }
    return NULL;
}

/* Adds one key; a second listing with the same role is a no-op. */
static int s_add_key(eng_allow_t *self, const uint8_t key[32], eng_role_t role, uint32_t file,
                     uint32_t line, int col, eng_error_t *err)
{
    const char *name = self->files[file];
    const s_entry_t *dup = s_find(self, key);
    if (dup) {
        if (dup->role == role) {
            return 0;
        }
        return eng_error_set(err, ENG_ERR_DUP, name, (int)line, col, NULL,
                             "key listed as %s here and as %s at %s:%u; which is meant?",
                             eng_role_name(role), eng_role_name(dup->role), self->files[dup->file],
                             dup->line);
    }
    if (self->n >= ENG_ALLOW_MAX_KEYS) {
        return eng_error_set(err, ENG_ERR_LIMIT, name, (int)line, col, NULL,
                             "more than %d keys in the allow-list", ENG_ALLOW_MAX_KEYS);
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_entry_t *nv = realloc(self->v, cap * sizeof *nv);
        if (!nv) {
            return eng_error_set(err, ENG_ERR_NOMEM, name, 0, 0, NULL, "out of memory");
        }
        self->v = nv;
        self->cap = cap;
    }
    s_entry_t *e = &self->v[self->n++];
    memcpy(e->key, key, 32);
    e->role = role;
    e->file = file;
    e->line = line;
    return 0;
}

/* Skips blanks, then one word of p[..len) from *i: returns where the word
 * starts and leaves *i at its end (equal when there is none). */
static size_t s_skip_word(const char *p, size_t len, size_t *i)
{
    while (*i < len && (p[*i] == ' ' || p[*i] == '\t')) {
        (*i)++;
    }
    size_t w = *i;
    while (*i < len && p[*i] != ' ' && p[*i] != '\t') {
        (*i)++;
    }
    return w;
}

/* One line (without its '\n'), already checked for control bytes. */
static int s_line(eng_allow_t *self, uint32_t file, uint32_t lineno, const char *p, size_t len,
                  eng_error_t *err)
{
    const char *name = self->files[file];
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    if (i == len || p[i] == '#') {
        return 0; /* blank or comment */
    }
    size_t k = i;
    while (i < len && p[i] != ' ' && p[i] != '\t') {
        i++;
    }
    size_t klen = i - k;
    int col = (int)k + 1;
    if (!hpp_key_valid(p + k, klen)) {
        /* Quote only the start: a damaged secret key put here by mistake
         * must not end up in the log. */
        return eng_error_set(err, ENG_ERR_SYNTAX, name, (int)lineno, col, NULL,
                             "expected a %d-character Z85 public key, got %zu characters "
                             "\"%.*s%s\"",
                             HPP_KEY_LEN, klen, (int)(klen > 8 ? 8 : klen), p + k,
                             klen > 8 ? "..." : "");
    }
    char z85[HPP_KEY_LEN + 1];
    uint8_t raw[32];
    memcpy(z85, p + k, HPP_KEY_LEN);
    z85[HPP_KEY_LEN] = '\0';
    zmq_z85_decode(raw, z85);
    while (i < len && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    size_t w = i;
    while (i < len && p[i] != ' ' && p[i] != '\t') {
        i++;
    }
    eng_role_t role = ENG_ROLE_CLIENT;
    if (i - w == 5 && memcmp(p + w, "admin", 5) == 0) {
        role = ENG_ROLE_ADMIN;
        w = s_skip_word(p, len, &i); /* the name, if any */
    } else if (i - w == 5 && strncasecmp(p + w, "admin", 5) == 0) {
        /* "Admin" would silently be a client's name: say so instead. */
        return eng_error_set(err, ENG_ERR_SYNTAX, name, (int)lineno, (int)w + 1, NULL,
                             "write the admin mark as \"admin\", in lower case");
    }
    /* The name may have several words, but not the mark: "KEY ops admin"
     * must not quietly make a client named "ops admin" of a key meant to be
     * an admin. */
    while (i > w && p[w] != '#') {
        w = s_skip_word(p, len, &i);
        if (i - w == 5 && strncasecmp(p + w, "admin", 5) == 0) {
            return eng_error_set(err, ENG_ERR_SYNTAX, name, (int)lineno, (int)w + 1, NULL,
                                 "\"admin\" inside the name: the admin mark goes right after "
                                 "the key (KEY admin [NAME] [# comment])");
        }
    }
    return s_add_key(self, raw, role, file, lineno, col, err);
}

int eng_allow_parse(eng_allow_t *self, const char *file, const char *text, size_t len,
                    eng_error_t *err)
{
    int fi = s_add_file(self, file ? file : "<allow-list>");
    if (fi < 0) {
        return eng_error_set(err, ENG_ERR_NOMEM, file, 0, 0, NULL, "out of memory");
    }
    const char *name = self->files[fi];
    size_t pos = eng_bom_len(text, len);
    for (uint32_t lineno = 1; pos < len; lineno++) {
        const char *p = text + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        pos += n + (nl != NULL);
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (n > ENG_ALLOW_MAX_LINE) {
            return eng_error_set(err, ENG_ERR_LIMIT, name, (int)lineno, 1, NULL,
                                 "line longer than %d bytes", ENG_ALLOW_MAX_LINE);
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return eng_error_set(err, ENG_ERR_SYNTAX, name, (int)lineno, (int)i + 1, NULL,
                                     "control byte 0x%02x in the line (a binary file?)", c);
            }
        }
        if (s_line(self, (uint32_t)fi, lineno, p, n, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Whoever may write the allow-list may make themselves an admin: like
 * sshd's StrictModes, a list (or its directory) that group or others may
 * write is refused. */
static int s_check_mode(const char *path, const struct stat *st, eng_error_t *err)
{
    if (st->st_mode & 022) {
        return eng_error_set(err, ENG_ERR_VALUE, path, 0, 0, NULL,
                             "writable by group or others (mode %03o): anyone who can write it "
                             "can add an admin key; chmod go-w it",
                             (unsigned)(st->st_mode & 0777));
    }
    return 0;
}

/* Reads and parses one regular file. It is opened without blocking and
 * checked before a byte is read: a FIFO put in its place must not hang the
 * reloader thread. */
static int s_load_file(eng_allow_t *self, const char *path, eng_error_t *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "not a regular file");
    }
    if (s_check_mode(path, &st, err) != 0) {
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
    }
    if (st.st_size > ENG_ALLOW_MAX_FILE) {
        fclose(f);
        return eng_error_set(err, ENG_ERR_LIMIT, path, 0, 0, NULL,
                             "file larger than %d bytes: not an allow-list", ENG_ALLOW_MAX_FILE);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return eng_error_set(err, ENG_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
    }
    size_t got = fread(buf, 1, n, f);
    bool bad = ferror(f);
    fclose(f);
    int rc = bad ? eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "read error")
                 : eng_allow_parse(self, path, buf, got, err);
    free(buf);
    return rc;
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True for "NAME.pub" with a NAME that is not hidden. */
static bool s_is_pub(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".pub") == 0;
}

/* Every *.pub file of a directory, in name order. */
static int s_load_dir(eng_allow_t *self, const char *path, eng_error_t *err)
{
    DIR *d = opendir(path);
    if (!d) {
        return eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!s_is_pub(de->d_name)) {
            continue;
        }
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn || !(nn[n] = strdup(de->d_name))) {
            names = nn ? nn : names;
            rc = eng_error_set(err, ENG_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        rc = eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL,
                           "no *.pub file in the directory: every client would be refused");
    }
    if (names) {
        qsort(names, n, sizeof *names, s_cmp_names);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char file[4096];
            snprintf(file, sizeof file, "%s/%s", path, names[i]);
            rc = s_load_file(self, file, err);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

eng_allow_t *eng_allow_load(const char *path, eng_error_t *err)
{
    eng_allow_t *self = eng_allow_new();
    if (!self) {
        eng_error_set(err, ENG_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
        return NULL;
    }
    struct stat st;
    int rc;
    if (stat(path, &st) != 0) {
        rc = eng_error_set(err, ENG_ERR_IO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        rc = s_check_mode(path, &st, err);
        rc = rc == 0 ? s_load_dir(self, path, err) : rc;
    } else {
        rc = s_load_file(self, path, err);
    }
    if (rc == 0 && self->n == 0) {
        rc = eng_error_set(err, ENG_ERR_SYNTAX, path, 0, 0, NULL,
                           "no key in the allow-list: every client would be refused");
    }
    if (rc != 0) {
        eng_allow_destroy(&self);
    }
    return self;
}

eng_role_t eng_allow_find(const eng_allow_t *self, const uint8_t key[32])
{
    const s_entry_t *e = self ? s_find(self, key) : NULL;
    return e ? e->role : ENG_ROLE_NONE;
}

size_t eng_allow_count(const eng_allow_t *self, size_t *admins)
{
    size_t a = 0;
    for (size_t i = 0; i < self->n; i++) {
        a += self->v[i].role == ENG_ROLE_ADMIN;
    }
    if (admins) {
        *admins = a;
    }
    return self->n;
}
