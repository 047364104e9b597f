/* test_tmpdir.c - see test_tmpdir.h. */
#define _GNU_SOURCE
#include "test_tmpdir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

int test_tmpdir_make(char *out, size_t n, const char *name)
{
    const char *t = getenv("TMPDIR");
    int len = snprintf(out, n, "%s/hpp-%s-XXXXXX", t && *t ? t : "/tmp", name);
    if (len < 0 || (size_t)len >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(out) ? 0 : -1;
}

static int s_remove(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int test_tmpdir_remove(const char *dir)
{
    return nftw(dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}
