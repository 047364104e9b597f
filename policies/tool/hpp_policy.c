/* hpp-policy - the command-line tool for policy authors and operators.
 *
 * A table of subcommands; each lives in its own file (cmd_*.c) and parses its
 * own flags. This file only dispatches and prints the overview.
 */
#include <stdio.h>
#include <string.h>

#include "hpp_policy.h"

typedef struct {
    const char *name;                 /* subcommand word */
    int (*run)(int argc, char **argv); /* its entry point */
    const char *summary;              /* one line for --help */
} s_command_t;

static const s_command_t s_commands[] = {
    {"catalog", cmd_catalog, "list models, endpoints, prices and capabilities"},
    {"cost", cmd_cost, "estimate the cost of one call to a model"},
    {"check", cmd_check, "compile a policy and report every error and warning"},
    {"test", cmd_test, "run a cases file against a policy"},
    {"explain", cmd_explain, "show a decision and every candidate considered"},
    {"route", cmd_route, "make one decision from flags, print JSON"},
    {NULL, NULL, NULL},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: hpp-policy COMMAND [options]\n\ncommands:\n");
    for (const s_command_t *c = s_commands; c->name; c++) {
        fprintf(out, "  %-8s %s\n", c->name, c->summary);
    }
    fprintf(out, "\n'hpp-policy COMMAND --help' describes each command's options.\n");
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
    for (const s_command_t *c = s_commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0) {
            return c->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "hpp-policy: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return HPP_EXIT_USAGE;
}
