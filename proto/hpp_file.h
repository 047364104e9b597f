/* hpp_file.h - reading a small configuration file whole, safely.
 *
 * For the files an operator edits and a daemon reads again on SIGHUP (API
 * keys, upstreams): only a regular file is read, opened without blocking
 * first, so a FIFO or a device put in its place cannot hang the caller; the
 * size is checked before anything is allocated; and the caller learns the
 * file's mode, to refuse secrets in a file others can read.
 */
#ifndef HPP_FILE_H
#define HPP_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Reads the whole of `path` (at most `max` bytes; `what` names the kind of
 * file in the message, "a key file"). Returns a malloc'd buffer of *len
 * bytes (not NUL-terminated; the caller frees it, and wipes it first when
 * it may hold secrets) and the file's permission bits in *mode, or NULL
 * with "PATH: why" in errbuf. */
char *hpp_file_read(const char *path, size_t max, const char *what, size_t *len, mode_t *mode,
                    char *errbuf, size_t errlen);

/* The lines of such a file's text, one at a time. */
typedef struct {
    const char *text; /* the whole text (not NUL-terminated) */
    size_t len;       /* its length */
    size_t pos;       /* where the next line starts */
    size_t lineno;    /* 1-based number of the line last returned */
} hpp_lines_t;

/* The next line that is neither blank nor a '#' comment, without its line
 * ending (LF or CRLF), in *line and *n, with the offset of its first
 * non-blank byte in *first: 1; 0 at the end; -1 when the line holds a
 * control byte other than a tab, at the 1-based column *first (the line is
 * still given, for the message). l->lineno numbers the line either way. */
int hpp_lines_next(hpp_lines_t *l, const char **line, size_t *n, size_t *first);

#endif
