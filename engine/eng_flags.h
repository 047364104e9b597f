/* eng_flags.h - a program's flags from one table: parsing and --help.
 *
 * hpp-engine and hpp-sidecar describe their flags as rows of a table, and
 * the same rows drive the parser and the --help listing, so no flag is
 * parsed without being documented and both programs answer bad flags alike:
 * "PROG: --flag: what is wrong (see --help)" on stderr, exit status 2 (the
 * caller's). Values come as "--flag value" or "--flag=value".
 *
 * A row either names a handler, or leaves it NULL and gives the offset of
 * the field it sets in the caller's options struct: a bool for a switch
 * (no argument), a const char * for a flag with a value, which then points
 * into argv.
 */
#ifndef ENG_FLAGS_H
#define ENG_FLAGS_H

#include <stddef.h>
#include <stdio.h>

/* Stores one flag's value in `opts`. Returns 0, or -1 after eng_flag_error. */
typedef int (*eng_flag_fn)(void *opts, const char *flag, const char *arg);

typedef struct {
    const char *name;  /* "--listen"; a NULL name ends the table */
    const char *arg;   /* value placeholder for --help; NULL for a switch */
    eng_flag_fn apply; /* handler, or NULL to set the field at `off` */
    size_t off;        /* offset of that bool or const char * in opts */
    const char *help;  /* description, wrapped by eng_flags_help */
} eng_flag_t;

/* Applies argv[1..argc-1] to `opts` in order. Returns 0, or -1 after
 * printing why on stderr (unknown flag, missing or unexpected value, a
 * handler's refusal), with `prog` as the prefix of every message. */
int eng_flags_parse(const char *prog, const eng_flag_t *flags, int argc, char **argv, void *opts);

/* One flag of a --help listing: "  NAME ARG" padded to `width` columns, then
 * `help` word-wrapped at 80 columns and aligned under itself (a word longer
 * than the line gets a line of its own). Shared by every program so their
 * listings look alike. */
void eng_help_flag(FILE *out, const char *name, const char *arg, int width, const char *help);

/* The "options:" rows of --help, names padded to `width` columns. */
void eng_flags_help(FILE *out, const eng_flag_t *flags, int width);

/* For handlers: prints "PROG: FLAG: " then fmt with `arg` as its one %s,
 * then " (see --help)". Returns -1. */
int eng_flag_error(const char *flag, const char *fmt, const char *arg);

/* For handlers: a decimal integer in [lo, hi] into *out, or -1 with the
 * error printed ("expected an integer LO..HI, got 'ARG'"). */
int eng_flag_int(const char *flag, const char *arg, int lo, int hi, int *out);

/* Handler for --log-level: debug, info, warn or error (eng_log_set_level). */
int eng_flag_log_level(void *opts, const char *flag, const char *arg);
/* --log-format: "text" or "json" (eng_log_set_format). */
int eng_flag_log_format(void *opts, const char *flag, const char *arg);

#endif
