/* ldg_keyfile.h - editing the API key file (proto/hpp_apikeys.h) safely,
 * for hpp-ledger's `keys` commands.
 *
 * An edit takes an exclusive lock on "FILE.lock" (flock: two hpp-ledger
 * runs at once take turns, so neither loses the other's line), reads the
 * file, changes its text, checks that the result parses as a key file,
 * writes it to a temporary file in the same folder with the old file's
 * permission bits (0600 for a new file), fsyncs it and renames it over the
 * file: a reader (the engine or the sidecar on SIGHUP) sees the old file or
 * the new one, never half of one. Comments and the order of lines are kept.
 */
#ifndef LDG_KEYFILE_H
#define LDG_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "hpp_apikeys.h"

/* What changed, for the caller's message. */
typedef enum {
    LDG_EDIT_DONE = 0,    /* the file was rewritten */
    LDG_EDIT_UNCHANGED,   /* nothing to do (already revoked) */
    LDG_EDIT_NOT_FOUND,   /* no line holds the hash */
    LDG_EDIT_FAILED = -1, /* an error, in err */
} ldg_edit_t;

/* Appends `line` (one key line, no newline) to the file at `path`,
 * creating it (mode 0600) when absent. The new text must parse, and the
 * old one too: a broken file is not made larger, the error names its
 * FILE:LINE:COL. */
ldg_edit_t ldg_keyfile_append(const char *path, const char *line, char *err, size_t errlen);

/* Marks the key whose hash is `hash` revoked (revoked=1 added, or
 * revoked=0 turned into revoked=1), keeping the rest of its line. */
ldg_edit_t ldg_keyfile_revoke(const char *path, const char *hash, char *err, size_t errlen);

#endif
