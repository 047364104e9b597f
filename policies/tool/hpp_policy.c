/* hpp-policy - the command-line tool for policy authors and operators.
 *
 * A table of subcommands; each lives in its own file (cmd_*.c) and parses its
 * own flags. This file only dispatches and prints the overview.
 */
#include <stdio.h>
#include <string.h>

#include "eng_flags.h"
#include "hpp_types.h"
#include "hpp_policy.h"

typedef struct {
    const char *name;                  /* subcommand word */
    int (*run)(int argc, char **argv); /* its entry point */
    const char *summary;               /* one line for --help */
} s_command_t;

static const s_command_t s_commands[] = {
    {"catalog", cmd_catalog, "list models, endpoints, prices and capabilities"},
    {"cost", cmd_cost, "estimate the cost of one call to a model"},
    {"check", cmd_check, "compile a policy and report every error and warning"},
    {"test", cmd_test, "run a cases file against a policy"},
    {"explain", cmd_explain, "show a decision and every candidate considered"},
    {"route", cmd_route, "make one decision from flags, print JSON"},
    {"fmt", cmd_fmt, "format policy files canonically (--check for CI, --write in place)"},
    {"train-scorer", cmd_train_scorer, "train a prompt scorer from labelled prompts"},
    {"curve", cmd_curve, "a scorer's cost-quality curve on labelled prompts"},
    {"usage", cmd_usage, "sum a decision log: tokens, real cost and estimate error per model"},
    {NULL, NULL, NULL},
};

void hpp_usage(FILE *out, const char *cmd, const char *synopsis, const hpp_opt_t *opts)
{
    fprintf(out, "usage: hpp-policy %s %s\n\noptions:\n", cmd, synopsis);
    for (const hpp_opt_t *o = opts; o->name; o++) {
        eng_help_flag(out, o->name, o->arg, 30, o->help);
    }
}

void hpp_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static const hpp_opt_t *s_find(const hpp_opt_t *opts, const char *name, size_t len)
{
    for (const hpp_opt_t *o = opts; o->name; o++) {
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
            return o;
        }
    }
    return NULL;
}

int hpp_opt_next(int argc, char **argv, int *i, const hpp_opt_t *opts, const hpp_opt_t **opt,
                 const char **value)
{
    const char *arg = argv[*i];
    *opt = NULL;
    *value = NULL;
    if (arg[0] != '-' || strcmp(arg, "-") == 0) {
        return 0;
    }
    /* Only long options take "=value": "-h=x" is just an unknown option. */
    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    const hpp_opt_t *o = s_find(opts, arg, nlen);
    if (!o && strcmp(arg, "-h") == 0) {
        o = s_find(opts, "--help", 6);
    }
    if (!o) {
        fprintf(stderr, "hpp-policy %s: unknown option '%s' (see --help)\n", argv[0], arg);
        return -1;
    }
    if (o->arg) {
        if (eq) {
            *value = eq + 1;
        } else if (*i + 1 < argc) {
            *value = argv[++*i];
        } else {
            fprintf(stderr, "hpp-policy %s: %s needs a value (%s)\n", argv[0], o->name, o->arg);
            return -1;
        }
    } else if (eq) {
        fprintf(stderr, "hpp-policy %s: %s takes no value\n", argv[0], o->name);
        return -1;
    }
    *opt = o;
    return 1;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: hpp-policy COMMAND [options]\n\ncommands:\n");
    for (const s_command_t *c = s_commands; c->name; c++) {
        fprintf(out, "  %-8s %s\n", c->name, c->summary);
    }
    fprintf(out, "\n'hpp-policy COMMAND --help' describes each command's options;\n"
                 "'hpp-policy --version' (-V) prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return HPP_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return HPP_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
        strcmp(argv[1], "version") == 0) {
        printf("hpp-policy %s\n", HPP_VERSION);
        return HPP_EXIT_OK;
    }
    for (const s_command_t *c = s_commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0) {
            return c->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "hpp-policy: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return HPP_EXIT_USAGE;
}
