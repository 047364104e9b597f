/* ldg_keyfile.c - locked, atomic edits of the API key file. */
#include "ldg_keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hpp_file.h"

/* A text being built: owned by the edit. */
typedef struct {
    char *p;    /* bytes (not NUL-terminated) */
    size_t n;   /* used */
    size_t cap; /* allocated */
} s_text_t;

static int s_put(s_text_t *t, const char *s, size_t n)
{
    if (n == 0) {
        return 0; /* t->p may still be NULL: nothing to copy */
    }
    if (t->n + n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->n + n) {
            cap *= 2;
        }
        char *p = realloc(t->p, cap);
        if (!p) {
            return -1;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    return 0;
}

/* Builds the new text from the old one; LDG_EDIT_* or -1 with err set. */
typedef ldg_edit_t (*s_change_fn)(const char *old, size_t len, const void *arg, s_text_t *out,
                                  char *err, size_t errlen);

/* Writes `t` to a temporary file beside `path` with `mode`, and renames it
 * over `path`. */
static int s_replace(const char *path, mode_t mode, const s_text_t *t, char *err, size_t errlen)
{
    char tmp[4096];
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    const char *dir = dirname(dirbuf);
    char basebuf[4096];
    snprintf(basebuf, sizeof basebuf, "%s", path);
    if (snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, basename(basebuf)) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: the path is too long", path);
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a temporary file beside it: %s", path,
                 strerror(errno));
        return -1;
    }
    size_t off = 0;
    int rc = fchmod(fd, mode & 07777);
    while (rc == 0 && off < t->n) {
        ssize_t w = write(fd, t->p + off, t->n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        rc = w < 0 ? -1 : 0;
        off += w > 0 ? (size_t)w : 0;
    }
    if (rc == 0) {
        rc = fsync(fd);
    }
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(saved));
        return -1;
    }
    /* The rename itself is durable once the folder is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Locks FILE.lock, reads FILE (absent: empty, mode 0600), checks it, runs
 * `change`, checks the result and replaces the file. */
static ldg_edit_t s_edit(const char *path, s_change_fn change, const void *arg, char *err,
                         size_t errlen)
{
    char lockpath[4096];
    if (snprintf(lockpath, sizeof lockpath, "%s.lock", path) >= (int)sizeof lockpath) {
        snprintf(err, errlen, "%s: the path is too long", path);
        return LDG_EDIT_FAILED;
    }
    int lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0) {
        snprintf(err, errlen, "%s: cannot open the lock file: %s", lockpath, strerror(errno));
        return LDG_EDIT_FAILED;
    }
    while (flock(lfd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "%s: cannot lock: %s", lockpath, strerror(errno));
            close(lfd);
            return LDG_EDIT_FAILED;
        }
    }
    ldg_edit_t result = LDG_EDIT_FAILED;
    char *old = NULL;
    size_t len = 0;
    mode_t mode = 0600;
    s_text_t t = {0};
    hpp_apikeys_t *check = NULL;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        old = calloc(1, 1);
        if (!old) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto done;
        }
    } else if (!(old = hpp_file_read(path, HPP_APIKEYS_MAX_FILE, "a key file", &len, &mode, err,
                                     errlen))) {
        goto done;
    }
    if (!(check = hpp_apikeys_parse(old, len, path, err, errlen))) {
        goto done;
    }
    hpp_apikeys_destroy(&check);
    result = change(old, len, arg, &t, err, errlen);
    if (result != LDG_EDIT_DONE) {
        goto done;
    }
    if (!(check = hpp_apikeys_parse(t.p ? t.p : "", t.n, path, err, errlen))) {
        result = LDG_EDIT_FAILED;
        goto done;
    }
    hpp_apikeys_destroy(&check);
    if (s_replace(path, mode, &t, err, errlen) != 0) {
        result = LDG_EDIT_FAILED;
    }
done:
    free(old);
    free(t.p);
    flock(lfd, LOCK_UN);
    close(lfd);
    return result;
}

static ldg_edit_t s_append(const char *old, size_t len, const void *arg, s_text_t *out, char *err,
                           size_t errlen)
{
    const char *line = arg;
    bool nl = len > 0 && old[len - 1] != '\n';
    if (s_put(out, old, len) != 0 || (nl && s_put(out, "\n", 1) != 0) ||
        s_put(out, line, strlen(line)) != 0 || s_put(out, "\n", 1) != 0) {
        snprintf(err, errlen, "out of memory");
        return LDG_EDIT_FAILED;
    }
    return LDG_EDIT_DONE;
}

ldg_edit_t ldg_keyfile_append(const char *path, const char *line, char *err, size_t errlen)
{
    return s_edit(path, s_append, line, err, errlen);
}

static bool s_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The line [s, s + n) with revoked=1: *changed false when it already was. */
static int s_revoke_line(const char *s, size_t n, s_text_t *out, bool *changed)
{
    size_t end = n; /* end of the last key=value word, before a comment */
    size_t i = 0;
    while (i < n) {
        while (i < n && s_space(s[i])) {
            i++;
        }
        if (i == n || s[i] == '#') {
            break;
        }
        size_t w = i;
        while (w < n && !s_space(s[w])) {
            w++;
        }
        if (w - i == 9 && memcmp(s + i, "revoked=1", 9) == 0) {
            *changed = false;
            return s_put(out, s, n);
        }
        if (w - i == 9 && memcmp(s + i, "revoked=0", 9) == 0) {
            *changed = true;
            return s_put(out, s, i + 8) || s_put(out, "1", 1) || s_put(out, s + w, n - w);
        }
        end = w;
        i = w;
    }
    *changed = true;
    return s_put(out, s, end) || s_put(out, " revoked=1", 10) || s_put(out, s + end, n - end);
}

static ldg_edit_t s_revoke(const char *old, size_t len, const void *arg, s_text_t *out, char *err,
                           size_t errlen)
{
    const char *hash = arg;
    size_t hlen = strlen(hash);
    ldg_edit_t r = LDG_EDIT_NOT_FOUND;
    for (size_t pos = 0; pos < len;) {
        const char *p = old + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        size_t body = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
        size_t i = 0;
        while (i < body && s_space(p[i])) {
            i++;
        }
        int rc;
        if (body - i >= hlen && memcmp(p + i, hash, hlen) == 0 &&
            (body - i == hlen || s_space(p[i + hlen]))) {
            bool changed = false;
            rc = s_revoke_line(p, body, out, &changed);
            r = changed ? LDG_EDIT_DONE : LDG_EDIT_UNCHANGED;
            rc = rc || s_put(out, p + body, n - body);
        } else {
            rc = s_put(out, p, n);
        }
        if (rc == 0 && nl) {
            rc = s_put(out, "\n", 1);
        }
        if (rc != 0) {
            snprintf(err, errlen, "out of memory");
            return LDG_EDIT_FAILED;
        }
        pos += n + (nl ? 1 : 0);
    }
    return r;
}

ldg_edit_t ldg_keyfile_revoke(const char *path, const char *hash, char *err, size_t errlen)
{
    return s_edit(path, s_revoke, hash, err, errlen);
}
