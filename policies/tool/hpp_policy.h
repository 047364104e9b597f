/* hpp_policy.h - subcommands of the hpp-policy tool.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)` with argv[0] the
 * subcommand name. It returns the process exit status: 0 success, 1 a failed
 * test or check with warnings only where documented, 2 bad input or usage.
 */
#ifndef HPP_POLICY_H
#define HPP_POLICY_H

#include <stdio.h>

/* Exit statuses shared by every subcommand. */
enum { HPP_EXIT_OK = 0, HPP_EXIT_FAIL = 1, HPP_EXIT_USAGE = 2 };

/* One row of a subcommand's option table; a {NULL} name ends the table. The
 * same table drives parsing and --help. */
typedef struct {
    const char *name;    /* flag, e.g. "--catalog" */
    const char *arg;     /* value placeholder; NULL = takes no value */
    int id;              /* the subcommand's own option id */
    const char *feature; /* eng_features_set key it maps to, or NULL */
    const char *help;    /* one line for --help */
} hpp_opt_t;

/* Prints "usage: hpp-policy CMD SYNOPSIS" and the option table. */
void hpp_usage(FILE *out, const char *cmd, const char *synopsis, const hpp_opt_t *opts);

/* Reads argv[*i] against `opts`. Returns 1 for an option (*opt set, *value its
 * value or NULL; *i advanced past a separate value), 0 for a positional
 * argument (argv[*i], including "-"), or -1 after printing why on stderr
 * (unknown option, missing value, value given to a flag). "-h" means "--help"
 * when the table has it. Accepts "--flag=value" and "--flag value". */
int hpp_opt_next(int argc, char **argv, int *i, const hpp_opt_t *opts, const hpp_opt_t **opt,
                 const char **value);

/* Writes `s` (NULL: "") as a JSON string: quotes, backslashes and control
 * characters escaped, other bytes as they are (the tools' output is UTF-8). */
void hpp_json_str(FILE *out, const char *s);

int cmd_catalog(int argc, char **argv);      /* list models, endpoints, prices */
int cmd_cost(int argc, char **argv);         /* cost of one call */
int cmd_check(int argc, char **argv);        /* compile a policy, print diagnostics */
int cmd_test(int argc, char **argv);         /* run a cases file against a policy */
int cmd_explain(int argc, char **argv);      /* one decision with its trace */
int cmd_route(int argc, char **argv);        /* one decision from flags, JSON out */
int cmd_fmt(int argc, char **argv);          /* canonical formatting of policy files */
int cmd_train_scorer(int argc, char **argv); /* labelled prompts -> scorer model */
int cmd_curve(int argc, char **argv);        /* a scorer's cost-quality curve */
int cmd_usage(int argc, char **argv);        /* a decision log's usage records */

#endif
