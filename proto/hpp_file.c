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
