/* hpp_engine.c - command line of the hpp-engine decision service.
 *
 * Parses flags from one table (which also prints --help), builds the server,
 * prints the readiness line tests and scripts wait for, and runs until
 * SIGTERM/SIGINT. Exit status: 0 after a clean stop, 2 for bad flags or a
 * policy/catalog that does not load or an invalid endpoint, 1 when the
 * service cannot start (address in use, out of memory, unwritable log).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_server.h"
#include "eng_snapshot.h"
#include "proto.h"

enum { S_EXIT_OK = 0, S_EXIT_FAIL = 1, S_EXIT_USAGE = 2 };

/* Parsed command line. */
typedef struct {
    eng_server_cfg_t cfg; /* server configuration */
    bool check;           /* load, report, exit */
    bool help;            /* print usage */
    bool version;         /* print version */
} s_opts_t;

typedef int (*s_apply_fn)(s_opts_t *o, const char *flag, const char *arg);

/* One flag: name, its argument's name (NULL for switches), handler, help. */
typedef struct {
    const char *name;
    const char *arg;
    s_apply_fn apply;
    const char *help;
} s_flag_t;

static int s_usage_error(const char *flag, const char *fmt, const char *arg)
{
    fprintf(stderr, "hpp-engine: %s: ", flag);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return -1;
}

/* Integer in [lo, hi]. */
static int s_int(const char *flag, const char *arg, long lo, long hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < lo || v > hi) {
        char range[64];
        snprintf(range, sizeof range, "expected an integer %ld..%ld, got '%%s'", lo, hi);
        return s_usage_error(flag, range, arg);
    }
    *out = (int)v;
    return 0;
}

static int s_policy(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    o->cfg.policy = arg;
    return 0;
}

static int s_catalog(s_opts_t *o, const char *flag, const char *arg)
{
    if (o->cfg.ncatalogs >= ENG_SERVER_MAX_CATALOGS) {
        return s_usage_error(flag, "at most 16 catalogs, '%s' is one too many", arg);
    }
    o->cfg.catalogs[o->cfg.ncatalogs++] = arg;
    return 0;
}

static int s_listen(s_opts_t *o, const char *flag, const char *arg)
{
    if (!strstr(arg, "://")) {
        return s_usage_error(flag, "expected a ZeroMQ endpoint like tcp://127.0.0.1:5555, got '%s'",
                             arg);
    }
    o->cfg.listen = arg;
    return 0;
}

static int s_threads(s_opts_t *o, const char *flag, const char *arg)
{
    return s_int(flag, arg, 1, ENG_SERVER_MAX_THREADS, &o->cfg.threads);
}

static int s_route_workers(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    (void)arg;
    o->cfg.route_workers = true;
    return 0;
}

static int s_declog(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    o->cfg.decision_log = arg;
    return 0;
}

static int s_watch(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    (void)arg;
    o->cfg.watch = true;
    return 0;
}

static int s_watch_ms(s_opts_t *o, const char *flag, const char *arg)
{
    return s_int(flag, arg, 50, 600000, &o->cfg.watch_ms);
}

static int s_drain_ms(s_opts_t *o, const char *flag, const char *arg)
{
    return s_int(flag, arg, 0, 600000, &o->cfg.drain_ms);
}

static int s_log_level(s_opts_t *o, const char *flag, const char *arg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    (void)o;
    for (int i = 0; i < 4; i++) {
        if (strcmp(arg, names[i]) == 0) {
            eng_log_set_level((eng_log_level_t)i);
            return 0;
        }
    }
    return s_usage_error(flag, "expected debug, info, warn or error, got '%s'", arg);
}

static int s_check(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    (void)arg;
    o->check = true;
    return 0;
}

static int s_help(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    (void)arg;
    o->help = true;
    return 0;
}

static int s_version(s_opts_t *o, const char *flag, const char *arg)
{
    (void)flag;
    (void)arg;
    o->version = true;
    return 0;
}

static const s_flag_t s_flags[] = {
    {"--policy", "FILE", s_policy, "routing policy (default " ENG_DEFAULT_POLICY ")"},
    {"--catalog", "[FORMAT:]FILE", s_catalog,
     "catalog file, repeatable; FORMAT is native, openrouter, litellm or portkey "
     "(default: the bundled catalog, or $HPP_CATALOG)"},
    {"--listen", "ENDPOINT", s_listen,
     "ZeroMQ endpoint to bind (default " ENG_DEFAULT_LISTEN "; port 0 = ephemeral)"},
    {"--threads", "N", s_threads,
     "worker threads for explain, models and stats (default: one per core)"},
    {"--route-workers", NULL, s_route_workers,
     "decide routes on the worker threads too (default: the network thread decides them "
     "inline, which is faster unless one core cannot keep up)"},
    {"--decision-log", "FILE", s_declog, "append one JSON line per decision to FILE"},
    {"--watch", NULL, s_watch, "reload when the policy or a catalog file changes"},
    {"--watch-ms", "MS", s_watch_ms, "file check interval for --watch (default 1000)"},
    {"--drain-ms", "MS", s_drain_ms, "longest shutdown drain (default 2000)"},
    {"--log-level", "LEVEL", s_log_level, "debug, info, warn or error (default info)"},
    {"--check", NULL, s_check, "load the policy and catalogs, print diagnostics, exit"},
    {"--help", NULL, s_help, "this text"},
    {"--version", NULL, s_version, "print the version"},
    {NULL, NULL, NULL, NULL},
};

static void s_print_help(FILE *out)
{
    fprintf(out, "usage: hpp-engine [options]\n\n"
                 "The hpprouter decision service: answers route, explain, models, stats,\n"
                 "reload and ping requests over ZeroMQ (see proto/PROTOCOL.md).\n\n"
                 "options:\n");
    for (const s_flag_t *f = s_flags; f->name; f++) {
        eng_help_flag(out, f->name, f->arg, 26, f->help);
    }
    fprintf(out, "\nSignals: SIGHUP reloads; SIGTERM/SIGINT drain and exit 0.\n"
                 "Prints \"hpp-engine: ready on ENDPOINT\" to stderr once serving.\n");
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const s_flag_t *f = s_flags;
        while (f->name && !(strlen(f->name) == nlen && strncmp(f->name, a, nlen) == 0)) {
            f++;
        }
        if (!f->name) {
            fprintf(stderr, "hpp-engine: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        const char *arg = NULL;
        if (f->arg) {
            if (eq) {
                arg = eq + 1;
            } else if (i + 1 < argc) {
                arg = argv[++i];
            } else {
                fprintf(stderr, "hpp-engine: %s needs %s (see --help)\n", f->name, f->arg);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "hpp-engine: %s takes no value (see --help)\n", f->name);
            return -1;
        }
        if (f->apply(o, f->name, arg) != 0) {
            return -1;
        }
    }
    return 0;
}

/* --check: the same loader as the server, without serving. */
static int s_run_check(const eng_server_cfg_t *cfg)
{
    const char *def = eng_catalog_default_path();
    eng_snapshot_cfg_t scfg = {
        .policy = cfg->policy,
        .catalogs = cfg->ncatalogs ? cfg->catalogs : &def,
        .ncatalogs = cfg->ncatalogs ? cfg->ncatalogs : 1,
    };
    static eng_loadlog_t log;
    eng_snapshot_t *snap = eng_snapshot_load(&scfg, 1, &log);
    for (uint32_t i = 0; i < log.n; i++) {
        fprintf(stderr, "%s\n", log.lines[i]);
    }
    if (log.more) {
        fprintf(stderr, "(%u more diagnostics not shown)\n", log.more);
    }
    fprintf(stderr, "hpp-engine: %s: %u errors, %u warnings\n", snap ? "ok" : "rejected",
            log.errors, log.warnings);
    int rc = snap ? S_EXIT_OK : S_EXIT_USAGE;
    eng_snapshot_destroy(&snap);
    return rc;
}

int main(int argc, char **argv)
{
    s_opts_t o = {0};
    eng_server_cfg_defaults(&o.cfg);
    if (s_parse(argc, argv, &o) != 0) {
        return S_EXIT_USAGE;
    }
    if (o.help) {
        s_print_help(stdout);
        return S_EXIT_OK;
    }
    if (o.version) {
        printf("hpp-engine %s (protocol v%d)\n", ENG_VERSION, PROTO_VERSION);
        return S_EXIT_OK;
    }
    if (o.check) {
        return s_run_check(&o.cfg);
    }
    signal(SIGPIPE, SIG_IGN);
    eng_error_t err = {0};
    eng_server_t *server = eng_server_new(&o.cfg, &err);
    if (!server) {
        char msg[768];
        eng_error_format(&err, msg, sizeof msg);
        fprintf(stderr, "hpp-engine: %s\n", msg);
        /* Bad files or flag values are usage errors; the rest (address in
         * use, no memory, unwritable log) is a failure to start. */
        return err.code == ENG_ERR_SYNTAX || err.code == ENG_ERR_VALUE ? S_EXIT_USAGE : S_EXIT_FAIL;
    }
    fprintf(stderr, "hpp-engine: ready on %s\n", eng_server_endpoint(server));
    fflush(stderr);
    int rc = eng_server_run(server);
    eng_server_destroy(&server);
    return rc == 0 ? S_EXIT_OK : S_EXIT_FAIL;
}
