/* hpp_sidecar.c - the hpp-sidecar program: flags, then the server loop.
 *
 * Flags are one table (eng_flags.h) from which both the parser and --help
 * are driven. Every bad flag exits 2 with a message that names it.
 * Readiness is one line on stderr once the listener is bound:
 * "hpp-sidecar: ready on HOST:PORT" with the real port when 0 was asked.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "eng_catalog.h"
#include "eng_common.h"
#include "eng_flags.h"
#include "eng_local.h"
#include "eng_server.h"
#include "proto.h"
#include "hpp_apikeys.h"
#include "sc_server.h"
#include "sc_trust.h"
#include "sc_workers.h"

enum { S_EXIT_OK = 0, S_EXIT_FAIL = 1, S_EXIT_USAGE = 2 };

typedef struct {
    sc_config_t cfg; /* what the flags say */
    bool help;       /* --help given */
    bool version;    /* --version given */
    bool hash_key;   /* --hash-key given */

    /* --local-engine and the files it decides with. */
    bool local_engine;
    bool link_given;                               /* --engine-link given, even "auto" */
    const char *policy;                            /* --policy, or NULL: the default */
    const char *catalogs[ENG_SERVER_MAX_CATALOGS]; /* --catalog, repeatable */
    size_t ncatalogs;                              /* used entries */
} s_opts_t;

#define S_OPTS(p) ((s_opts_t *)(p))
#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

static int s_listen(void *opts, const char *flag, const char *arg)
{
    if (!strchr(arg, ':')) {
        return eng_flag_error(flag, "expected HOST:PORT, got '%s'", arg);
    }
    S_OPTS(opts)->cfg.listen = arg;
    return 0;
}

/* Repeatable: one link per engine, calls spread over those that are up. */
static int s_engine(void *opts, const char *flag, const char *arg)
{
    sc_config_t *cfg = &S_OPTS(opts)->cfg;
    if (strcmp(arg, "local") == 0) { /* --local-engine, spelt so a unit's --engine can say it */
        S_OPTS(opts)->local_engine = true;
        return 0;
    }
    if (!strstr(arg, "://")) {
        return eng_flag_error(
            flag, "expected a ZMQ endpoint such as tcp://127.0.0.1:5555, or local, got '%s'", arg);
    }
    if (cfg->nengines == SC_ENGINE_MAX_ENGINES) {
        return eng_flag_error(
            flag, "at most " S_STR(SC_ENGINE_MAX_ENGINES) " engines ('%s' is one more)", arg);
    }
    for (size_t i = 0; i < cfg->nengines; i++) {
        if (strcmp(cfg->engines[i], arg) == 0) {
            return eng_flag_error(flag, "'%s' is given twice", arg);
        }
    }
    cfg->engines[cfg->nengines++] = arg;
    return 0;
}

static int s_engine_link(void *opts, const char *flag, const char *arg)
{
    if (sc_link_kind_parse(arg, &S_OPTS(opts)->cfg.link) != 0) {
        return eng_flag_error(flag, "expected auto, zmtp or libzmq, got '%s'", arg);
    }
    S_OPTS(opts)->link_given = true;
    return 0;
}

static int s_catalog(void *opts, const char *flag, const char *arg)
{
    s_opts_t *o = S_OPTS(opts);
    if (o->ncatalogs == ENG_SERVER_MAX_CATALOGS) {
        return eng_flag_error(
            flag, "at most " S_STR(ENG_SERVER_MAX_CATALOGS) " catalogs ('%s' is one more)", arg);
    }
    o->catalogs[o->ncatalogs++] = arg;
    return 0;
}

static int s_upstream(void *opts, const char *flag, const char *arg)
{
    if (strncmp(arg, "http://", 7) != 0) {
        return eng_flag_error(flag,
                              "expected an http:// base URL such as http://127.0.0.1:4000/v1, "
                              "got '%s'",
                              arg);
    }
    S_OPTS(opts)->cfg.upstream = arg;
    return 0;
}

static int s_fail_open(void *opts, const char *flag, const char *arg)
{
    size_t len = strlen(arg);
    if (len == 0 || len > 256 || strpbrk(arg, " \t\r\n")) {
        return eng_flag_error(flag, "expected a model id, got '%s'", arg);
    }
    S_OPTS(opts)->cfg.fail_open = arg;
    return 0;
}

static int s_timeout(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 600000, &S_OPTS(opts)->cfg.timeout_ms);
}

static int s_max_body(void *opts, const char *flag, const char *arg)
{
    int v;
    if (eng_flag_int(flag, arg, 1024, 1 << 30, &v) != 0) {
        return -1;
    }
    S_OPTS(opts)->cfg.max_body = (size_t)v;
    return 0;
}

static int s_max_retries(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 0, 8, &S_OPTS(opts)->cfg.max_retries);
}

static int s_upstream_timeout(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 3600, &S_OPTS(opts)->cfg.upstream_timeout_s);
}

static int s_max_connections(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 10000000, &S_OPTS(opts)->cfg.max_connections);
}

static int s_workers(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, SC_WORKERS_MAX, &S_OPTS(opts)->cfg.workers);
}

static int s_header_timeout(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 3600, &S_OPTS(opts)->cfg.header_timeout_s);
}

static int s_body_timeout(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 3600, &S_OPTS(opts)->cfg.body_timeout_s);
}

static int s_idle_timeout(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 3600, &S_OPTS(opts)->cfg.idle_timeout_s);
}

static int s_auth_refusal_status(void *opts, const char *flag, const char *arg)
{
    if (strcmp(arg, "401") != 0 && strcmp(arg, "403") != 0) {
        return eng_flag_error(flag,
                              "expected 401 or 403 (what nginx auth_request passes on), "
                              "got '%s'",
                              arg);
    }
    S_OPTS(opts)->cfg.auth_refusal_status = atoi(arg);
    return 0;
}

static int s_trusted_header(void *opts, const char *flag, const char *arg)
{
    const char *why = sc_trust_header_name_check(arg);
    if (why) {
        /* Not through eng_flag_error's format: `why` lists '%'. */
        fprintf(stderr, "hpp-sidecar: %s: '%s': %s (see --help)\n", flag, arg, why);
        return -1;
    }
    S_OPTS(opts)->cfg.trusted_header = arg;
    return 0;
}

/* --hash-key: one key from stdin (never argv: it would be in ps and shell
 * history), its "sha256:" form on stdout for the key file. */
static int s_hash_key(void)
{
    char key[HPP_APIKEY_MAX_KEY + 3];
    size_t n = fread(key, 1, sizeof key, stdin);
    if (ferror(stdin)) {
        fprintf(stderr, "hpp-sidecar: --hash-key: cannot read stdin\n");
        return S_EXIT_FAIL;
    }
    if (n > 0 && key[n - 1] == '\n') {
        n--;
    }
    if (n > 0 && key[n - 1] == '\r') {
        n--;
    }
    const char *why = n > HPP_APIKEY_MAX_KEY ? "the key is longer than 1024 bytes"
                                             : hpp_apikeys_check_key(key, n);
    if (why) {
        fprintf(stderr, "hpp-sidecar: --hash-key: %s (one key on stdin, one line)\n", why);
        explicit_bzero(key, sizeof key);
        return S_EXIT_FAIL;
    }
    char out[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text(key, n, out);
    explicit_bzero(key, sizeof key);
    printf("%s\n", out);
    return S_EXIT_OK;
}

static const eng_flag_t s_flags[] = {
    {"--listen", "HOST:PORT", s_listen, 0,
     "address to serve HTTP on (default " SC_DEFAULT_LISTEN "; port 0 = any free port)"},
    {"--engine", "ENDPOINT", s_engine, 0,
     "hpp-engine ZMQ endpoint (default " SC_DEFAULT_ENGINE "); repeat it for several "
     "engines (up to " S_STR(
         SC_ENGINE_MAX_ENGINES) "): calls go round robin to those that are "
                                "up, and calls of an engine that goes away are sent to another; "
                                "'local' is --local-engine"},
    {"--engine-link", "KIND", s_engine_link, 0,
     "zmtp: speak ZMTP on the loop's own socket (tcp:// and ipc://, no CURVE); libzmq: a "
     "libzmq DEALER (any endpoint); auto (default): libzmq with CURVE, else zmtp for "
     "tcp:// and ipc:// and libzmq for the rest"},
    {"--local-engine", NULL, NULL, offsetof(s_opts_t, local_engine),
     "decide in this process, with hpp-engine's resolver and the --policy and --catalog "
     "files, instead of asking an hpp-engine: no round trip, but no ledger, no decision log, "
     "and endpoint health learnt from this sidecar's own upstream calls only. SIGHUP reloads "
     "the files (a bad file keeps the serving version)"},
    {"--policy", "FILE", NULL, offsetof(s_opts_t, policy),
     "--local-engine: routing policy (default " ENG_DEFAULT_POLICY
     ", in the working directory, else the bundled one, as hpp-engine)"},
    {"--catalog", "[FORMAT:]FILE", s_catalog, 0,
     "--local-engine: catalog file, repeatable; FORMAT is native, openrouter, litellm or "
     "portkey (default: the bundled catalog, or $HPP_CATALOG)"},
    {"--engine-curve-server-key", "FILE", NULL, offsetof(s_opts_t, cfg.curve_server_key),
     "CURVE: the engines' public key file (hpp-engine --curve-keygen); needs "
     "--curve-secret"},
    {"--curve-secret", "FILE", NULL, offsetof(s_opts_t, cfg.curve_secret),
     "CURVE: this sidecar's secret key file (mode 0600); its public key must be in "
     "the engines' --curve-clients; needs --engine-curve-server-key"},
    {"--upstream", "URL", s_upstream, 0,
     "proxy mode: forward chat completions to this OpenAI-compatible base URL "
     "(http://HOST:PORT/v1) whatever the provider; without it or --upstreams, decision-only mode"},
    {"--upstreams", "FILE", NULL, offsetof(s_opts_t, cfg.upstreams_file),
     "proxy mode: each provider's upstream base URL and credential, one line each "
     "(\"PROVIDER URL [key_env=VAR|key=SECRET] [key_header=NAME]\", '*' for the rest; see "
     "sidecar/README.md); only providers listed are chosen. Re-read on SIGHUP"},
    {"--access-log", "FILE", NULL, offsetof(s_opts_t, cfg.access_log),
     "append one JSON line per answered request (status, decision, each upstream attempt; "
     "never prompt text); SIGHUP reopens it"},
    {"--timeout-ms", "N", s_timeout, 0, "engine deadline per request (default 1000)"},
    {"--fail-open", "MODEL", s_fail_open, 0,
     "answer with MODEL when the engine is down or late, only to a group the engine said "
     "may use it and within the request's budget (else, and by default: 503)"},
    {"--max-body", "BYTES", s_max_body, 0, "request body limit, 413 above (default 4194304)"},
    {"--max-retries", "N", s_max_retries, 0,
     "proxy: retries with fallback models on 429/5xx (default 2, 0-8)"},
    {"--upstream-timeout", "SECONDS", s_upstream_timeout, 0,
     "proxy: upstream connect/read inactivity timeout (default 300)"},
    {"--max-connections", "N", s_max_connections, 0,
     "client connections open at once; more are answered 503 and closed (default: the "
     "descriptor limit, RLIMIT_NOFILE, less " S_STR(SC_FD_RESERVE) " kept for the rest; "
                                                                   "halved in proxy mode)"},
    {"--workers", "N", s_workers, 0,
     "event loops (threads) serving the port, each with its own listening socket "
     "(SO_REUSEPORT), engine links and upstream pool (default: one per core the process may "
     "run on; at most " S_STR(SC_WORKERS_MAX) ")"},
    {"--header-timeout", "SECONDS", s_header_timeout, 0,
     "a request's headers must arrive within this, from its first byte (the first request: "
     "from the connection), else 408 and close (default " S_STR(SC_DEFAULT_HEADER_TIMEOUT_S) ")"},
    {"--body-timeout", "SECONDS", s_body_timeout, 0,
     "a request's body must arrive within this, from the end of its headers, else 408 and "
     "close (default " S_STR(SC_DEFAULT_BODY_TIMEOUT_S) ")"},
    {"--idle-timeout", "SECONDS", s_idle_timeout, 0,
     "a kept-alive connection without a request is closed after this (default " S_STR(
         SC_DEFAULT_IDLE_TIMEOUT_S) ")"},
    {"--keys", "FILE", NULL, offsetof(s_opts_t, cfg.keys_file),
     "API keys: lines 'sha256:HEX group=NAME [budget_usd=USD]'; every request to /v1/route, "
     "/v1/chat/completions and /v1/models then needs 'Authorization: Bearer KEY' (else 401), "
     "and gets the key's group and budget cap. SIGHUP reloads it"},
    {"--trusted-header", "NAME", s_trusted_header, 0,
     "a header the gateway in front sets (overwriting the client's), value GROUP or "
     "GROUP;budget_usd=USD: the request's group and budget. Never forwarded upstream"},
    {"--trust-client-features", NULL, NULL, offsetof(s_opts_t, cfg.trust_client_features),
     "honour a group or budget the client sends (hpp.group, hpp.budget_usd, X-HPP-Group, "
     "X-HPP-Budget-USD); without it they are refused with 403"},
    {"--hash-key", NULL, NULL, offsetof(s_opts_t, hash_key),
     "read one API key from stdin, print its sha256: form for --keys, and exit"},
    {"--log-level", "LEVEL", eng_flag_log_level, 0, "debug, info, warn or error (default info)"},
    {"--log-format", "FORMAT", eng_flag_log_format, 0,
     "text (default) or json: one JSON object a line {ts, level, module, msg}"},
    {"--auth-refusal-status", "N", s_auth_refusal_status, 0,
     "decision-only: send every refusal of POST/GET /v1/chat/completions with status N "
     "(401 or 403; nginx auth_request turns any other into a 500) and its error code in "
     "X-HPP-Router-Error (default: the error's own status)"},
    {"--help", NULL, NULL, offsetof(s_opts_t, help), "this text"},
    {"--version", NULL, NULL, offsetof(s_opts_t, version), "print the version"},
    {NULL, NULL, NULL, 0, NULL},
};

static void s_print_help(void)
{
    printf("usage: hpp-sidecar [options]\n\n"
           "HTTP sidecar of hpprouter: resolves hpprouter/auto (and any model id) through\n"
           "hpp-engine and sets X-HPP-Router-Resolved-Model.\n\n"
           "Endpoints: POST /v1/route, POST /v1/chat/completions, GET /v1/models,\n"
           "GET /healthz, GET /metrics.\n\noptions:\n");
    eng_flags_help(stdout, s_flags, 26);
    printf("\nPrints \"hpp-sidecar: ready on HOST:PORT\" to stderr once listening.\n"
           "SIGHUP reloads the --keys and --upstreams files (a bad file keeps the last\n"
           "good one) and reopens the --access-log, in every worker; with --local-engine\n"
           "it reloads the --policy and --catalog files too.\n"
           "Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start, 2 on bad flags.\n");
}

/* The flags that go with --local-engine, and those that cannot. */
static int s_check_local(const s_opts_t *o)
{
    const char *without = o->policy ? "--policy" : o->ncatalogs ? "--catalog" : NULL;
    if (!o->local_engine && without) {
        fprintf(stderr,
                "hpp-sidecar: %s is for --local-engine (hpp-engine reads its own; see "
                "--help)\n",
                without);
        return -1;
    }
    const char *clash = o->cfg.nengines       ? "--engine"
                        : o->link_given       ? "--engine-link"
                        : o->cfg.curve_secret ? "--curve-secret"
                                              : NULL;
    if (o->local_engine && clash) {
        fprintf(stderr,
                "hpp-sidecar: --local-engine decides in this process: %s names an "
                "hpp-engine link (see --help)\n",
                clash);
        return -1;
    }
    return 0;
}

/* Loads --local-engine's policy and catalogs, with a reader slot for each
 * worker; NULL after printing why. */
static eng_local_t *s_local_new(const s_opts_t *o)
{
    static const char *def[1];
    def[0] = eng_catalog_default_path();
    eng_local_config_t lc = {
        .policy = o->policy ? o->policy : eng_data_path(ENG_DEFAULT_POLICY, 1),
        .catalogs = o->ncatalogs ? o->catalogs : def,
        .ncatalogs = o->ncatalogs ? o->ncatalogs : 1,
        .readers = (size_t)o->cfg.workers, /* one slot per worker, counted once in main */
    };
    static eng_loadlog_t log; /* large: not on the stack */
    eng_local_t *local = eng_local_new(&lc, &log);
    for (uint32_t i = 0; i < log.n; i++) {
        fprintf(stderr, "hpp-sidecar: %s\n", log.lines[i]);
    }
    if (!local) {
        fprintf(stderr, "hpp-sidecar: --local-engine: %s refused (%u errors)\n", lc.policy,
                log.errors);
        return NULL;
    }
    char hash[ENG_SNAPSHOT_HASH_HEX];
    uint64_t version = eng_local_version(local, hash);
    eng_log(ENG_LOG_INFO, "sidecar", "local engine: %s, policy version %llu, policy hash %s",
            lc.policy, (unsigned long long)version, hash);
    return local;
}

int main(int argc, char **argv)
{
    s_opts_t o;
    memset(&o, 0, sizeof o);
    sc_config_defaults(&o.cfg);
    if (eng_flags_parse("hpp-sidecar", s_flags, argc, argv, &o) != 0) {
        return S_EXIT_USAGE;
    }
    if (o.help) {
        s_print_help();
        return S_EXIT_OK;
    }
    if (o.version) {
        printf("hpp-sidecar %s (protocol v%d)\n", HPP_VERSION, PROTO_VERSION);
        return S_EXIT_OK;
    }
    if (o.hash_key) {
        return s_hash_key();
    }
    if (!o.cfg.curve_server_key != !o.cfg.curve_secret) {
        fprintf(stderr, "hpp-sidecar: %s needs %s too (see --help)\n",
                o.cfg.curve_secret ? "--curve-secret" : "--engine-curve-server-key",
                o.cfg.curve_secret ? "--engine-curve-server-key" : "--curve-secret");
        return S_EXIT_USAGE;
    }
    if (o.cfg.curve_secret && o.cfg.link == SC_LINK_ZMTP) {
        fprintf(stderr, "hpp-sidecar: --engine-link zmtp speaks only the NULL mechanism; "
                        "CURVE needs --engine-link libzmq or auto (see --help)\n");
        return S_EXIT_USAGE;
    }
    if (o.cfg.upstream && o.cfg.upstreams_file) {
        fprintf(stderr, "hpp-sidecar: --upstream and --upstreams are exclusive: the file's '*' "
                        "line is what --upstream would be (see --help)\n");
        return S_EXIT_USAGE;
    }
    if (o.cfg.auth_refusal_status && (o.cfg.upstream || o.cfg.upstreams_file)) {
        fprintf(stderr, "hpp-sidecar: --auth-refusal-status is for decision-only mode (the auth "
                        "route of a gateway); proxy mode (--upstream) has none (see --help)\n");
        return S_EXIT_USAGE;
    }
    if (s_check_local(&o) != 0) {
        return S_EXIT_USAGE;
    }
    eng_local_t *local = NULL;
    if (o.local_engine && o.cfg.workers <= 0) {
        o.cfg.workers = sc_workers_default(); /* the engine's reader slots and the workers agree */
    }
    if (o.local_engine && !(local = s_local_new(&o))) {
        return S_EXIT_FAIL;
    }
    o.cfg.local = local;
    /* A client that vanishes mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    sc_workers_t *srv = sc_workers_new(&o.cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "hpp-sidecar: %s\n", err);
        eng_local_destroy(&local);
        return S_EXIT_FAIL;
    }
    char host[256];
    size_t hl = strrchr(o.cfg.listen, ':') - o.cfg.listen;
    snprintf(host, sizeof host, "%.*s", (int)hl, o.cfg.listen);
    char engines[SC_ENGINE_MAX_ENGINES * 64];
    size_t el = 0;
    engines[0] = '\0';
    for (size_t i = 0; i < o.cfg.nengines && el < sizeof engines; i++) {
        el += (size_t)snprintf(engines + el, sizeof engines - el, "%s%s", i ? " " : "",
                               o.cfg.engines[i]);
    }
    int nw = sc_workers_count(srv);
    eng_log(ENG_LOG_INFO, "sidecar", "%d worker%s; engine%s %s (%s link%s), %s, timeout %d ms%s%s",
            nw, nw > 1 ? "s" : "", o.cfg.nengines > 1 ? "s" : "",
            local            ? "in this process"
            : o.cfg.nengines ? engines
                             : SC_DEFAULT_ENGINE,
            sc_link_kind_name(sc_workers_link_kind(srv)), o.cfg.curve_secret ? ", CURVE" : "",
            o.cfg.upstream         ? o.cfg.upstream
            : o.cfg.upstreams_file ? o.cfg.upstreams_file
                                   : "decision-only mode",
            o.cfg.timeout_ms, o.cfg.fail_open ? ", fail-open " : "",
            o.cfg.fail_open ? o.cfg.fail_open : "");
    fprintf(stderr, "hpp-sidecar: ready on %s:%d\n", host, sc_workers_port(srv));
    fflush(stderr);
    /* The same news for systemd (Type=notify); nothing without NOTIFY_SOCKET. */
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s:%d", host, sc_workers_port(srv));
    int rc = sc_workers_run(srv);
    sc_workers_destroy(&srv);
    eng_local_destroy(&local);
    eng_log(ENG_LOG_INFO, "sidecar", "stopped (%d worker%s)", nw, nw > 1 ? "s" : "");
    return rc == 0 ? S_EXIT_OK : S_EXIT_FAIL;
}
