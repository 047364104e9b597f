/* hpp_policy.h - subcommands of the hpp-policy tool.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)` with argv[0] the
 * subcommand name. It returns the process exit status: 0 success, 1 a failed
 * test or check with warnings only where documented, 2 bad input or usage.
 */
#ifndef HPP_POLICY_H
#define HPP_POLICY_H

/* Exit statuses shared by every subcommand. */
enum { HPP_EXIT_OK = 0, HPP_EXIT_FAIL = 1, HPP_EXIT_USAGE = 2 };

int cmd_catalog(int argc, char **argv); /* list models, endpoints, prices */
int cmd_cost(int argc, char **argv);    /* cost of one call */
int cmd_check(int argc, char **argv);   /* compile a policy, print diagnostics */
int cmd_test(int argc, char **argv);    /* run a cases file against a policy */
int cmd_explain(int argc, char **argv); /* one decision with its trace */
int cmd_route(int argc, char **argv);   /* one decision from flags, JSON out */

#endif
