/* cmd_fmt.c - `hpp-policy fmt`: canonical formatting of policy files.
 *
 * Prints the formatted text (default), rewrites the files (-w, through a
 * temporary file in the same directory renamed over the original, so a
 * crash never leaves half a policy), or only says which files are not
 * formatted (--check, exit 1, for CI). The rules are eng_fmt.h's. A file
 * with a syntax error is left alone and its errors printed (exit 2).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_common.h"
#include "eng_fmt.h"
#include "eng_lex.h"
#include "hpp_policy.h"

enum { F_POLICY, F_WRITE, F_CHECK, F_HELP };

static const hpp_opt_t s_fmt_opts[] = {
    {"--policy", "FILE", F_POLICY, NULL, "a policy file to format (repeatable; or give FILEs)"},
    {"--write", NULL, F_WRITE, NULL, "rewrite the files in place (also -w)"},
    {"-w", NULL, F_WRITE, NULL, "same as --write"},
    {"--check", NULL, F_CHECK, NULL, "print the files that are not formatted; exit 1 if any"},
    {"--help", NULL, F_HELP, NULL, "show this help"},
    {NULL, NULL, F_HELP, NULL, NULL},
};

#define S_MAX_FILES 256

/* Reads a whole file (or stdin for "-"), bounded by the lexer's limit. */
static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "hpp-policy fmt: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > ENG_LEX_MAX_SRC) {
                fprintf(stderr, "hpp-policy fmt: %s: larger than %u bytes\n", path,
                        (unsigned)ENG_LEX_MAX_SRC);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                fprintf(stderr, "hpp-policy fmt: cannot read %s: %s\n", path, strerror(errno));
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    *len = n;
    return buf;
}

/* Writes text to path atomically: a temporary file beside it, renamed over
 * it, with the original's permission bits. */
static int s_write_in_place(const char *path, const char *text, size_t len)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        return -1;
    }
    snprintf(tmp, pl + 16, "%s.fmt-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "hpp-policy fmt: cannot write beside %s: %s\n", path, strerror(errno));
        free(tmp);
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        (void)fchmod(fd, st.st_mode & 07777);
    }
    FILE *f = fdopen(fd, "wb");
    bool ok = f && fwrite(text, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    if (!f) {
        close(fd);
    }
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "hpp-policy fmt: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* Formats one file; returns the exit status it contributes. */
static int s_fmt_one(const char *path, bool write, bool check)
{
    size_t len;
    char *src = s_slurp(path, &len);
    if (!src) {
        return HPP_EXIT_USAGE;
    }
    eng_diags_t *d = eng_diags_new();
    char *out = NULL;
    size_t out_len = 0;
    int rc = HPP_EXIT_OK;
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    if (eng_fmt(name, src, len, &out, &out_len, d) != 0) {
        eng_diags_print(d, stderr);
        if (eng_diags_size(d) == 0) {
            fprintf(stderr, "hpp-policy fmt: %s: out of memory\n", name);
        }
        rc = HPP_EXIT_USAGE;
    } else if (check) {
        if (out_len != len || memcmp(out, src, len) != 0) {
            printf("%s\n", name);
            rc = HPP_EXIT_FAIL;
        }
    } else if (write && strcmp(path, "-") != 0) {
        if ((out_len != len || memcmp(out, src, len) != 0) &&
            s_write_in_place(path, out, out_len) != 0) {
            rc = HPP_EXIT_USAGE;
        }
    } else {
        fwrite(out, 1, out_len, stdout);
    }
    free(out);
    free(src);
    eng_diags_destroy(&d);
    return rc;
}

int cmd_fmt(int argc, char **argv)
{
    const char *files[S_MAX_FILES];
    size_t nfiles = 0;
    bool write = false, check = false;
    for (int i = 1; i < argc; i++) {
        const hpp_opt_t *o;
        const char *v;
        int rc = hpp_opt_next(argc, argv, &i, s_fmt_opts, &o, &v);
        if (rc < 0) {
            return HPP_EXIT_USAGE;
        }
        if (rc == 1 && o->id == F_HELP) {
            hpp_usage(stdout, "fmt", "[--write | --check] [--policy FILE | FILE...]", s_fmt_opts);
            printf("\nFormats policy files canonically (policies/README.md, \"Formatting\"):\n"
                   "prints the result, or rewrites the files (--write), or lists those that\n"
                   "are not formatted (--check; exit 1 when any). Only blanks change: tokens\n"
                   "and comments are kept. Without a file: $HPP_POLICY or\n"
                   "policies/default.policy; '-' reads stdin. A file with a syntax error is\n"
                   "left as it is and its errors printed (exit 2).\n");
            return HPP_EXIT_OK;
        }
        if (rc == 1 && o->id == F_WRITE) {
            write = true;
            continue;
        }
        if (rc == 1 && o->id == F_CHECK) {
            check = true;
            continue;
        }
        if (nfiles == S_MAX_FILES) {
            fprintf(stderr, "hpp-policy fmt: at most %d files\n", S_MAX_FILES);
            return HPP_EXIT_USAGE;
        }
        files[nfiles++] = rc == 1 ? v : argv[i];
    }
    if (write && check) {
        fprintf(stderr, "hpp-policy fmt: --write and --check exclude each other\n");
        return HPP_EXIT_USAGE;
    }
    if (nfiles == 0) {
        const char *p = getenv("HPP_POLICY");
        files[nfiles++] = p && *p ? p : eng_data_path("policies/default.policy", 1);
    }
    int worst = HPP_EXIT_OK;
    for (size_t i = 0; i < nfiles; i++) {
        int rc = s_fmt_one(files[i], write, check);
        worst = rc > worst ? rc : worst;
    }
    return worst;
}
