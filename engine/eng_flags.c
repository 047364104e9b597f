/* eng_flags.c - see eng_flags.h. */
#include "eng_flags.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"

/* The program name for messages: set by eng_flags_parse, which runs once,
 * before any thread, in main. */
static const char *s_prog = "hpprouter";

int eng_flag_error(const char *flag, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: %s: ", s_prog, flag);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return -1;
}

int eng_flag_int(const char *flag, const char *arg, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < lo || v > hi) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "expected an integer %d..%d, got '%%s'", lo, hi);
        return eng_flag_error(flag, fmt, arg);
    }
    *out = (int)v;
    return 0;
}

int eng_flag_log_level(void *opts, const char *flag, const char *arg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    (void)opts;
    for (int i = 0; i < 4; i++) {
        if (strcmp(arg, names[i]) == 0) {
            eng_log_set_level((eng_log_level_t)i);
            return 0;
        }
    }
    return eng_flag_error(flag, "expected debug, info, warn or error, got '%s'", arg);
}

int eng_flag_log_format(void *opts, const char *flag, const char *arg)
{
    (void)opts;
    if (strcmp(arg, "text") == 0 || strcmp(arg, "json") == 0) {
        eng_log_set_format(arg[0] == 'j' ? ENG_LOG_JSON : ENG_LOG_TEXT);
        return 0;
    }
    return eng_flag_error(flag, "expected text or json, got '%s'", arg);
}

/* The short spellings every daemon's users expect: -h and -V. */
static const struct {
    const char *shorthand, *name;
} s_aliases[] = {{"-h", "--help"}, {"-V", "--version"}};

static const eng_flag_t *s_find(const eng_flag_t *flags, const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_aliases / sizeof s_aliases[0]; i++) {
        if (strlen(s_aliases[i].shorthand) == len &&
            strncmp(s_aliases[i].shorthand, name, len) == 0) {
            name = s_aliases[i].name;
            len = strlen(name);
        }
    }
    for (const eng_flag_t *f = flags; f->name; f++) {
        if (strlen(f->name) == len && strncmp(f->name, name, len) == 0) {
            return f;
        }
    }
    return NULL;
}

int eng_flags_parse(const char *prog, const eng_flag_t *flags, int argc, char **argv, void *opts)
{
    s_prog = prog;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        const eng_flag_t *f = s_find(flags, a, eq ? (size_t)(eq - a) : strlen(a));
        if (!f) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, a);
            return -1;
        }
        const char *arg = NULL;
        if (f->arg) {
            if (eq) {
                arg = eq + 1;
            } else if (i + 1 < argc) {
                arg = argv[++i];
            } else {
                fprintf(stderr, "%s: %s needs %s (see --help)\n", prog, f->name, f->arg);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "%s: %s takes no value (see --help)\n", prog, f->name);
            return -1;
        }
        if (f->apply) {
            if (f->apply(opts, f->name, arg) != 0) {
                return -1;
            }
        } else if (f->arg) {
            *(const char **)((char *)opts + f->off) = arg;
        } else {
            *(bool *)((char *)opts + f->off) = true;
        }
    }
    return 0;
}

void eng_help_flag(FILE *out, const char *name, const char *arg, int width, const char *help)
{
    enum { LINE = 80 };
    int col = fprintf(out, "  %s%s%s", name, arg ? " " : "", arg ? arg : "");
    int indent = 2 + width + 1;
    if (col >= indent) {
        fprintf(out, "\n%*s", indent, ""); /* too long to share a line */
    } else {
        fprintf(out, "%*s", indent - col, "");
    }
    col = indent;
    bool first = true;
    for (const char *h = help;;) {
        h += strspn(h, " ");
        size_t w = strcspn(h, " ");
        if (w == 0) {
            break;
        }
        if (!first && col + 1 + (int)w > LINE) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)w, h);
        col += (int)w;
        h += w;
        first = false;
    }
    fputc('\n', out);
}

void eng_flags_help(FILE *out, const eng_flag_t *flags, int width)
{
    for (const eng_flag_t *f = flags; f->name; f++) {
        eng_help_flag(out, f->name, f->arg, width, f->help);
    }
}
