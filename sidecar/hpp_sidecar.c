/* hpp_sidecar.c - the hpp-sidecar program: flags, then the server loop.
 *
 * Flags are one table (name, argument, parser, help) from which both the
 * parser and --help are driven. Every bad flag exits 2 with a message that
 * names it. Readiness is one line on stderr once the listener is bound:
 * "hpp-sidecar: ready on HOST:PORT" with the real port when 0 was asked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "proto.h"
#include "sc_server.h"

enum { S_EXIT_OK = 0, S_EXIT_FAIL = 1, S_EXIT_USAGE = 2 };

typedef struct {
    sc_config_t cfg; /* what the flags say */
    bool help;       /* --help given */
    bool version;    /* --version given */
} s_opts_t;

static int s_usage_error(const char *flag, const char *fmt, const char *arg)
{
    fprintf(stderr, "hpp-sidecar: %s: ", flag);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return -1;
}

/* Parses a decimal integer in [lo, hi]. */
static int s_int(const char *flag, const char *arg, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (!arg[0] || *end || errno || v < lo || v > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "expected an integer from %lld to %lld, got '%%s'", lo, hi);
        return s_usage_error(flag, msg, arg);
    }
    *out = v;
    return 0;
}

static int s_listen(s_opts_t *o, const char *flag, const char *arg)
{
    if (!strchr(arg, ':')) {
        return s_usage_error(flag, "expected HOST:PORT, got '%s'", arg);
    }
    (void)flag;
    o->cfg.listen = arg;
    return 0;
}

static int s_engine(s_opts_t *o, const char *flag, const char *arg)
{
    if (!strstr(arg, "://")) {
        return s_usage_error(flag, "expected a ZMQ endpoint such as tcp://127.0.0.1:5555, got '%s'",
                             arg);
    }
    o->cfg.engine = arg;
    return 0;
}

static int s_upstream(s_opts_t *o, const char *flag, const char *arg)
{
    if (strncmp(arg, "http://", 7) != 0) {
        return s_usage_error(flag,
                             "expected an http:// base URL such as http://127.0.0.1:4000/v1, "
                             "got '%s'",
                             arg);
    }
    o->cfg.upstream = arg;
    return 0;
}

static int s_timeout(s_opts_t *o, const char *flag, const char *arg)
{
    long long v;
    if (s_int(flag, arg, 1, 600000, &v) < 0) {
        return -1;
    }
    o->cfg.timeout_ms = (int)v;
    return 0;
}

static int s_fail_open(s_opts_t *o, const char *flag, const char *arg)
{
    size_t len = strlen(arg);
    if (len == 0 || len > 256 || strpbrk(arg, " \t\r\n")) {
        return s_usage_error(flag, "expected a model id, got '%s'", arg);
    }
    o->cfg.fail_open = arg;
    return 0;
}

static int s_max_body(s_opts_t *o, const char *flag, const char *arg)
{
    long long v;
    if (s_int(flag, arg, 1024, 1LL << 30, &v) < 0) {
        return -1;
    }
    o->cfg.max_body = (size_t)v;
    return 0;
}

static int s_max_retries(s_opts_t *o, const char *flag, const char *arg)
{
    long long v;
    if (s_int(flag, arg, 0, 8, &v) < 0) {
        return -1;
    }
    o->cfg.max_retries = (int)v;
    return 0;
}

static int s_upstream_timeout(s_opts_t *o, const char *flag, const char *arg)
{
    long long v;
    if (s_int(flag, arg, 1, 3600, &v) < 0) {
        return -1;
    }
    o->cfg.upstream_timeout_s = (int)v;
    return 0;
}

static int s_log_level(s_opts_t *o, const char *flag, const char *arg)
{
    (void)o;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(arg, names[i]) == 0) {
            eng_log_set_level((eng_log_level_t)i);
            return 0;
        }
    }
    return s_usage_error(flag, "expected debug, info, warn or error, got '%s'", arg);
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

static const struct {
    const char *name; /* flag */
    const char *arg;  /* argument name, NULL for none */
    int (*fn)(s_opts_t *, const char *, const char *);
    const char *help; /* one line */
} s_flags[] = {
    {"--listen", "HOST:PORT", s_listen,
     "address to serve HTTP on (default " SC_DEFAULT_LISTEN "; port 0 = any free port)"},
    {"--engine", "ENDPOINT", s_engine, "hpp-engine ZMQ endpoint (default " SC_DEFAULT_ENGINE ")"},
    {"--upstream", "URL", s_upstream,
     "proxy mode: forward chat completions to this OpenAI-compatible base URL "
     "(http://HOST:PORT/v1); without it, decision-only mode"},
    {"--timeout-ms", "N", s_timeout, "engine deadline per request (default 1000)"},
    {"--fail-open", "MODEL", s_fail_open,
     "answer with MODEL when the engine is down or late (default: 503)"},
    {"--max-body", "BYTES", s_max_body, "request body limit, 413 above (default 4194304)"},
    {"--max-retries", "N", s_max_retries,
     "proxy: retries with fallback models on 429/5xx (default 2, 0-8)"},
    {"--upstream-timeout", "SECONDS", s_upstream_timeout,
     "proxy: upstream connect/read inactivity timeout (default 300)"},
    {"--log-level", "LEVEL", s_log_level, "debug, info, warn or error (default info)"},
    {"--help", NULL, s_help, "this text"},
    {"--version", NULL, s_version, "print the version"},
    {NULL, NULL, NULL, NULL},
};

static void s_print_help(void)
{
    printf("usage: hpp-sidecar [options]\n\n"
           "HTTP sidecar of hpprouter: resolves hpprouter/auto (and any model id) through\n"
           "hpp-engine and sets X-HPP-Router-Resolved-Model.\n\n"
           "Endpoints: POST /v1/route, POST /v1/chat/completions, GET /v1/models,\n"
           "GET /healthz, GET /metrics.\n\noptions:\n");
    for (int i = 0; s_flags[i].name; i++) {
        eng_help_flag(stdout, s_flags[i].name, s_flags[i].arg, 26, s_flags[i].help);
    }
    printf("\nPrints \"hpp-sidecar: ready on HOST:PORT\" to stderr once listening.\n"
           "Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start, 2 on bad flags.\n");
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a); /* --flag=value */
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        int k = 0;
        while (s_flags[k].name && strcmp(s_flags[k].name, name) != 0) {
            k++;
        }
        if (!s_flags[k].name) {
            fprintf(stderr, "hpp-sidecar: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (s_flags[k].arg && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hpp-sidecar: %s needs %s (see --help)\n", name, s_flags[k].arg);
                return -1;
            }
            val = argv[++i];
        } else if (!s_flags[k].arg && val) {
            fprintf(stderr, "hpp-sidecar: %s takes no value (see --help)\n", name);
            return -1;
        }
        if (s_flags[k].fn(o, name, val) < 0) {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o;
    memset(&o, 0, sizeof o);
    sc_config_defaults(&o.cfg);
    if (s_parse(argc, argv, &o) < 0) {
        return S_EXIT_USAGE;
    }
    if (o.help) {
        s_print_help();
        return S_EXIT_OK;
    }
    if (o.version) {
        printf("hpp-sidecar %s (protocol v%d)\n", ENG_VERSION, PROTO_VERSION);
        return S_EXIT_OK;
    }
    /* A client that vanishes mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    sc_server_t *srv = sc_server_new(&o.cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "hpp-sidecar: %s\n", err);
        return S_EXIT_FAIL;
    }
    char host[256];
    size_t hl = strrchr(o.cfg.listen, ':') - o.cfg.listen;
    snprintf(host, sizeof host, "%.*s", (int)hl, o.cfg.listen);
    eng_log(ENG_LOG_INFO, "sidecar", "engine %s, %s, timeout %d ms%s%s", o.cfg.engine,
            o.cfg.upstream ? o.cfg.upstream : "decision-only mode", o.cfg.timeout_ms,
            o.cfg.fail_open ? ", fail-open " : "", o.cfg.fail_open ? o.cfg.fail_open : "");
    fprintf(stderr, "hpp-sidecar: ready on %s:%d\n", host, sc_server_port(srv));
    fflush(stderr);
    sc_server_run(srv);
    sc_server_destroy(&srv);
    eng_log(ENG_LOG_INFO, "sidecar", "stopped");
    return S_EXIT_OK;
}
