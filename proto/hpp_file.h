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

#endif
