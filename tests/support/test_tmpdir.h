/* test_tmpdir.h - a test's own folder, and its removal with everything in
 * it: the one way the unit and integration tests take a folder and give it
 * back. Linked into every Criterion binary. */
#ifndef TEST_TMPDIR_H
#define TEST_TMPDIR_H

#include <stddef.h>

/* Makes $TMPDIR/hpp-NAME-XXXXXX (/tmp without $TMPDIR; mkdtemp: mode 0700)
 * and writes its path to out. 0, or -1 with errno (ENAMETOOLONG when out is
 * too small). */
int test_tmpdir_make(char *out, size_t n, const char *name);

/* Removes dir and everything under it, links not followed. 0, or -1 with errno. */
int test_tmpdir_remove(const char *dir);

#endif
