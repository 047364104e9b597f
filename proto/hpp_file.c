/* hpp_file.c - reading a small configuration file whole (see hpp_file.h). */
#include "hpp_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *hpp_file_read(const char *path, size_t max, const char *what, size_t *len, mode_t *mode,
                    char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(errbuf, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uintmax_t)st.st_size > max) {
        snprintf(errbuf, errlen, "%s: %jd bytes; %s has %zu at most", path, (intmax_t)st.st_size,
                 what, max);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *text = malloc(size ? size : 1);
    if (!text) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    /* A file that shrinks while read gives what is there; one that grows is
     * read up to the size it had. */
    while (got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(errbuf, errlen, "%s: read error: %s", path, strerror(errno));
            close(fd);
            free(text);
            return NULL;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    *mode = st.st_mode & 07777;
    return text;
}

int hpp_lines_next(hpp_lines_t *l, const char **line, size_t *n, size_t *first)
{
    while (l->pos < l->len) {
        l->lineno++;
        const char *s = l->text + l->pos;
        const char *nl = memchr(s, '\n', l->len - l->pos);
        size_t k = nl ? (size_t)(nl - s) : l->len - l->pos;
        l->pos += k + (nl ? 1 : 0);
        if (k > 0 && s[k - 1] == '\r') {
            k--; /* CRLF files */
        }
        *line = s;
        *n = k;
        for (size_t c = 0; c < k; c++) {
            unsigned char ch = (unsigned char)s[c];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                *first = c + 1;
                return -1;
            }
        }
        size_t f = 0;
        while (f < k && (s[f] == ' ' || s[f] == '\t')) {
            f++;
        }
        if (f < k && s[f] != '#') {
            *first = f;
            return 1;
        }
    }
    return 0;
}
