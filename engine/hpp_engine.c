/* hpp_engine.c - command line of the hpp-engine decision service.
 *
 * Parses flags from one table (which also prints --help), builds the server,
 * prints the readiness line tests and scripts wait for, and runs until
 * SIGTERM/SIGINT. Exit status: 0 after a clean stop, 2 for bad flags or a
 * policy/catalog, key file or allow-list that does not load or an invalid
 * endpoint, 1 when the service cannot start (address in use, out of
 * memory, unwritable log). --curve-keygen writes a key pair and exits.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "eng_allow.h"
#include "eng_cases.h"
#include "eng_flags.h"
#include "eng_metrics.h"
#include "eng_server.h"
#include "eng_snapshot.h"
#include "hpp_keys.h"
#include "proto.h"

enum { S_EXIT_OK = 0, S_EXIT_FAIL = 1, S_EXIT_USAGE = 2 };

/* Parsed command line. */
typedef struct {
    eng_server_cfg_t cfg; /* server configuration */
    bool check;           /* load, report, exit */
    const char *keygen;   /* --curve-keygen DIR: write a key pair, exit */
    const char *keyname;  /* --curve-name NAME for it */
    bool help;            /* print usage */
    bool version;         /* print version */
} s_opts_t;

static int s_catalog(void *opts, const char *flag, const char *arg)
{
    eng_server_cfg_t *cfg = &((s_opts_t *)opts)->cfg;
    if (cfg->ncatalogs >= ENG_SERVER_MAX_CATALOGS) {
        return eng_flag_error(flag, "at most 16 catalogs, '%s' is one too many", arg);
    }
    cfg->catalogs[cfg->ncatalogs++] = arg;
    return 0;
}

static int s_listen(void *opts, const char *flag, const char *arg)
{
    if (!strstr(arg, "://")) {
        return eng_flag_error(
            flag, "expected a ZeroMQ endpoint like tcp://127.0.0.1:5555, got '%s'", arg);
    }
    ((s_opts_t *)opts)->cfg.listen = arg;
    return 0;
}

static int s_threads(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, ENG_SERVER_MAX_THREADS, &((s_opts_t *)opts)->cfg.threads);
}

static int s_watch_ms(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 50, 600000, &((s_opts_t *)opts)->cfg.watch_ms);
}

static int s_watch_settle_ms(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 0, 600000, &((s_opts_t *)opts)->cfg.watch_settle_ms);
}

static int s_drain_ms(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 0, 600000, &((s_opts_t *)opts)->cfg.drain_ms);
}

static int s_peer_hwm(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 16, 1000000, &((s_opts_t *)opts)->cfg.peer_hwm);
}

static int s_peer_inflight(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 100000, &((s_opts_t *)opts)->cfg.peer_inflight);
}

static int s_peer_queue_kb(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 64, 4 << 20, &((s_opts_t *)opts)->cfg.peer_queue_kb);
}

static int s_queue_mb(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, 1 << 20, &((s_opts_t *)opts)->cfg.queue_mb);
}

/* Only the scheme is checked here; the engine refuses a non-loopback
 * address or a live socket when it binds (eng_direct.h). */
static int s_direct(void *opts, const char *flag, const char *arg)
{
    if (strncmp(arg, "tcp://", 6) != 0 && strncmp(arg, "ipc://", 6) != 0) {
        return eng_flag_error(flag, "expected tcp://127.0.0.1:PORT or ipc://PATH, got '%s'", arg);
    }
    ((s_opts_t *)opts)->cfg.direct = arg;
    return 0;
}

/* The form is checked here; resolving and binding come at startup. */
static int s_metrics_listen(void *opts, const char *flag, const char *arg)
{
    char host[256], port[8], why[128], fmt[200];
    if (eng_metrics_parse_addr(arg, host, sizeof host, port, sizeof port, why, sizeof why) != 0) {
        snprintf(fmt, sizeof fmt, "%s, got '%%s'", why);
        return eng_flag_error(flag, fmt, arg);
    }
    ((s_opts_t *)opts)->cfg.metrics_listen = arg;
    return 0;
}

static int s_ledger(void *opts, const char *flag, const char *arg)
{
    if (strncmp(arg, "sqlite:", 7) != 0 && strncmp(arg, "redis://", 8) != 0 &&
        strncmp(arg, "redis+unix:", 11) != 0) {
        return eng_flag_error(flag,
                              "expected sqlite:PATH, redis://HOST:PORT or redis+unix:PATH, "
                              "got '%s'",
                              arg);
    }
    /* A user or password in a Redis address would sit in argv and be quoted
     * by every error about the address: refused here, and not echoed. */
    if (strncmp(arg, "redis://", 8) == 0 && memchr(arg + 8, '@', strcspn(arg + 8, "/?"))) {
        return eng_flag_error(flag, "%s",
                              "no user or password in a Redis address: --ledger-secret FILE "
                              "gives the password (the address is not repeated here)");
    }
    if (strcmp(arg, "sqlite:") == 0 || strcmp(arg, "redis+unix:") == 0) {
        return eng_flag_error(flag, "a path is missing in '%s'", arg);
    }
    ((s_opts_t *)opts)->cfg.ledger.store = arg;
    return 0;
}

/* An empty DIR would put the ring at the root ("/hpp-ledger-...ring"). */
static int s_ledger_ring_dir(void *opts, const char *flag, const char *arg)
{
    if (arg[0] == '\0') {
        return eng_flag_error(flag, "%s", "a directory is missing");
    }
    ((s_opts_t *)opts)->cfg.ledger.ring_dir = arg;
    return 0;
}

static int s_ledger_hold(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, 1, ENG_LEDGER_MAX_HOLD_S,
                        &((s_opts_t *)opts)->cfg.ledger.hold_s);
}

static int s_ledger_day_offset(void *opts, const char *flag, const char *arg)
{
    return eng_flag_int(flag, arg, -12, 14, &((s_opts_t *)opts)->cfg.ledger.day_offset_h);
}

static int s_ledger_node(void *opts, const char *flag, const char *arg)
{
    int n = 0;
    if (eng_flag_int(flag, arg, 1, 65535, &n) != 0) {
        return -1;
    }
    ((s_opts_t *)opts)->cfg.ledger.node = (uint64_t)n;
    return 0;
}

#define S_FIELD(f) offsetof(s_opts_t, f)

static const eng_flag_t s_flags[] = {
    {"--policy", "FILE", NULL, S_FIELD(cfg.policy),
     "routing policy (default " ENG_DEFAULT_POLICY ", in the working directory, else the "
     "bundled one next to the program: ../policies/ in a build tree, "
     "../share/hpprouter/ installed)"},
    {"--catalog", "[FORMAT:]FILE", s_catalog, 0,
     "catalog file, repeatable; FORMAT is native, openrouter, litellm or portkey "
     "(default: the bundled catalog, or $HPP_CATALOG)"},
    {"--listen", "ENDPOINT", s_listen, 0,
     "ZeroMQ endpoint to bind (default " ENG_DEFAULT_LISTEN "; port 0 = ephemeral)"},
    {"--direct", "ENDPOINT", s_direct, 0,
     "also serve on tcp://HOST:PORT (a loopback address) or ipc://PATH (mode 0660), read, "
     "decided and written by one thread with no ZeroMQ I/O thread between: about 65 us less "
     "per round trip at one request in flight. For a sidecar on the same host "
     "(hpp-sidecar --engine pointing at it). Speaks no CURVE; off by default"},
    {"--threads", "N", s_threads, 0,
     "worker threads for explain, models and stats (default: one per core)"},
    {"--route-workers", NULL, NULL, S_FIELD(cfg.route_workers),
     "decide routes on the worker threads too (default: the network thread decides them "
     "inline, which is faster unless one core cannot keep up)"},
    {"--decision-log", "FILE", NULL, S_FIELD(cfg.decision_log),
     "append one JSON line per decision and per reported attempt to FILE (whole lines only: lines "
     "that cannot be "
     "written, disk full or file too large, are dropped and counted in stats' "
     "decision_log_dropped, with one error line a minute at most; routing goes on). SIGHUP "
     "reopens FILE, so logrotate may rename it (no copytruncate needed)"},
    {"--watch", NULL, NULL, S_FIELD(cfg.watch), "reload when the policy or a catalog file changes"},
    {"--watch-ms", "MS", s_watch_ms, 0, "file check interval for --watch (default 1000)"},
    {"--watch-settle-ms", "MS", s_watch_settle_ms, 0,
     "--watch reloads only once the watched files have been unchanged for MS; a change "
     "seen meanwhile restarts the clock (default the larger of 2000 and 2 x --watch-ms; 0 = "
     "at the first look that sees a change)"},
    {"--reload-cases", "FILE", NULL, S_FIELD(cfg.reload_cases),
     "policy test cases (the format of hpp-policy test) every policy must pass before it "
     "serves, at startup and on each reload; a reload that fails one is refused and the "
     "current version keeps serving. Watched by --watch"},
    {"--drain-ms", "MS", s_drain_ms, 0, "longest shutdown drain (default 2000)"},
    {"--peer-hwm", "N", s_peer_hwm, 0,
     "messages queued per client connection, each way: requests read ahead of the engine and "
     "replies the client has not read; replies past it are dropped (stats: dropped). Keep it "
     "above twice the requests a client pipelines (default 2048)"},
    {"--peer-inflight", "N", s_peer_inflight, 0,
     "requests of one client at the worker threads (explain, models, stats, reload) at once; "
     "more are refused with an `internal` error (stats: refused) (default 1024)"},
    {"--peer-queue-kb", "KB", s_peer_queue_kb, 0,
     "bytes of large replies (2 KiB and more) sent to one client and not yet written to its "
     "connection; past it, its requests to the workers are refused and a reply that would not "
     "fit becomes a short error (stats: refused, dropped) (default 4096)"},
    {"--queue-mb", "MB", s_queue_mb, 0,
     "the same bound for all clients together (stats: queued_bytes) (default 16)"},
    {"--metrics-listen", "HOST:PORT", s_metrics_listen, 0,
     "serve Prometheus metrics (GET /metrics: the stats op's counters, decisions by rule, "
     "build info, process_*) over plain HTTP on HOST:PORT, e.g. 127.0.0.1:9464 (port 0 = "
     "ephemeral). Off by default; keep HOST on loopback or a private network: the page has "
     "no authentication"},
    {"--keys", "FILE", NULL, S_FIELD(cfg.ledger.keys),
     "the API key file (the sidecar's --keys format: sha256:HEX group=G [account=A] "
     "[limit_usd=X] [daily_usd=X] ...). A route's `key` (the hash the gateway sends) names the "
     "caller: its group replaces the request's, an unknown or revoked key is refused "
     "unknown_key. Re-read with the policy (SIGHUP, reload op); a bad file keeps the last good "
     "table"},
    {"--ledger", "STORE", s_ledger, 0,
     "keep a ledger of balances and spend (needs --keys): sqlite:PATH (embedded, one engine: "
     "held locked while it runs; PATH is created mode 0600), redis://HOST:PORT or redis+unix:PATH "
     "(shared by several engines). Each route is checked (balance, key limit, daily limits) and "
     "its estimate "
     "reserved until a report settles it; see proto/PROTOCOL.md \"Ledger\". Off by default"},
    {"--ledger-hold", "SECONDS", s_ledger_hold, 0,
     "a decision never reported releases its reservation after SECONDS (default 300)"},
    {"--ledger-optional", NULL, NULL, S_FIELD(cfg.ledger.optional),
     "serve a route without `key` unchecked (default: refused unknown_key when a ledger is on)"},
    {"--ledger-day-offset", "HOURS", s_ledger_day_offset, 0,
     "where the day of daily limits starts, in hours from 00:00 UTC, -12..14 (default 0)"},
    {"--ledger-node", "N", s_ledger_node, 0,
     "this engine's node id in decision ids, 1..65535 (default: random at start); engines "
     "sharing one store must have distinct ones"},
    {"--ledger-ring-dir", "DIR", s_ledger_ring_dir, 0,
     "where the embedded store keeps its ring of changes not committed yet, a file that outlives "
     "the process so that a crash loses none of them (default: $RUNTIME_DIRECTORY, else "
     "/dev/shm; a tmpfs, about 40 MB)"},
    {"--ledger-ring-lost", NULL, NULL, S_FIELD(cfg.ledger.ring_lost),
     "start although the ring the last run left (it stopped without closing the store) is "
     "missing or damaged: its changes since its last commit are lost (a damaged ring is kept "
     "as RING.bad). Without it such a start is refused"},
    {"--ledger-secret", "FILE", NULL, S_FIELD(cfg.ledger.secret),
     "the store's password (Redis AUTH), read from FILE (mode 0600), never from the command "
     "line"},
    {"--log-level", "LEVEL", eng_flag_log_level, 0, "debug, info, warn or error (default info)"},
    {"--log-format", "FORMAT", eng_flag_log_format, 0,
     "text (default) or json: one JSON object a line {ts, level, module, msg}"},
    {"--curve-secret", "FILE", NULL, S_FIELD(cfg.curve_secret),
     "serve CURVE (encrypted, authenticated) with the secret key in FILE (mode 0600, made by "
     "--curve-keygen); needs --curve-clients. Without it the engine speaks plain ZeroMQ: "
     "loopback only"},
    {"--curve-clients", "PATH", NULL, S_FIELD(cfg.curve_clients),
     "the client keys allowed to connect: a file, or a directory of *.pub files, one "
     "\"KEY [admin] [name]\" per line; only admin keys may ask for stats and reload. "
     "Re-read on SIGHUP"},
    {"--curve-keygen", "DIR", NULL, S_FIELD(keygen),
     "write a new key pair DIR/NAME.pub and DIR/NAME.sec (mode 0600, never replaced), print "
     "the public key, exit"},
    {"--curve-name", "NAME", NULL, S_FIELD(keyname), "the NAME of --curve-keygen (default engine)"},
    {"--check", NULL, NULL, S_FIELD(check),
     "load the policy and catalogs (and the --curve-* files, the --keys file and the --ledger "
     "store, and run the --reload-cases), print diagnostics and the policy hash, exit"},
    {"--help", NULL, NULL, S_FIELD(help), "this text"},
    {"--version", NULL, NULL, S_FIELD(version), "print the version"},
    {NULL, NULL, NULL, 0, NULL},
};

static void s_print_help(FILE *out)
{
    fprintf(out, "usage: hpp-engine [options]\n\n"
                 "The hpprouter decision service: answers route, explain, models, stats,\n"
                 "reload and ping requests over ZeroMQ (see proto/PROTOCOL.md).\n\n"
                 "options:\n");
    eng_flags_help(out, s_flags, 26);
    fprintf(out, "\nSignals: SIGHUP reloads, re-reads --curve-clients and reopens --decision-log;\n"
                 "SIGTERM/SIGINT drain and exit 0.\n"
                 "Reloads (SIGHUP, the reload op, --watch) go through a gate: a policy that\n"
                 "does not compile, fails a --reload-cases case, or leaves requests the serving\n"
                 "policy routed with no rule (a catch-all rule lost, a hint no rule takes any\n"
                 "more) is refused and the serving version stays. Deploy a policy by writing\n"
                 "a temporary file in the same directory and renaming it over the old one.\n"
                 "Prints \"hpp-engine: ready on ENDPOINT\" to stderr once serving.\n");
}

/* eng_cases_fail_fn for --check: one line per failing case. */
static void s_print_case_fail(void *ctx, const char *file, int line, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "%s:%d:1: error: %s\n", file, line, msg);
}

/* --check with --reload-cases: the gate's cases, as a reload would run them.
 * Returns 0 when every case passes. */
static int s_check_cases(const char *path, const eng_snapshot_t *snap)
{
    eng_diags_t *diags = eng_diags_new();
    eng_cases_t *cases = diags ? eng_cases_load(path, diags) : NULL;
    int rc = -1;
    if (!cases) {
        if (diags) {
            eng_diags_print(diags, stderr);
        }
        fprintf(stderr, "hpp-engine: %s: the cases did not load\n", path);
    } else {
        size_t failed = eng_cases_check(cases, eng_snapshot_policy(snap), s_print_case_fail, NULL);
        fprintf(stderr, "hpp-engine: %s: %zu cases, %zu failed\n", path, eng_cases_count(cases),
                failed);
        rc = failed == 0 ? 0 : -1;
    }
    eng_cases_destroy(&cases);
    eng_diags_destroy(&diags);
    return rc;
}

/* --check with --keys / --ledger: the key file read and the store opened as
 * a start would (a SQLite state file is created when missing, as at start),
 * so a deploy learns of a bad path or an unreachable Redis before it
 * restarts the engine. A state file an engine is running on cannot be read
 * (it holds the file to itself): the check says so and passes, as that
 * engine is the proof that it opens. A state file of an older schema is
 * read, not upgraded. */
static int s_check_ledger(const eng_ledger_cfg_t *cfg_in)
{
    char why[512];
    eng_ledger_cfg_t checking = *cfg_in;
    checking.check = true;
    const eng_ledger_cfg_t *cfg = &checking;
    if (cfg->store && eng_store_in_use(cfg->store)) {
        fprintf(stderr,
                "hpp-engine: ledger store %s: in use by another process (an engine running on"
                " it), not read; the next start reads it, once that process has stopped\n",
                cfg->store);
        checking.store = NULL;
    }
    eng_ledger_t *ledger = eng_ledger_new(cfg, why, sizeof why);
    if (!ledger) {
        fprintf(stderr, "hpp-engine: %s\n", why); /* it names the store */
        return S_EXIT_USAGE;
    }
    int rc = S_EXIT_OK;
    if (cfg->keys) {
        eng_ledger_keys_t *keys = eng_ledger_keys_load(ledger, why, sizeof why);
        if (!keys) {
            fprintf(stderr, "hpp-engine: %s\n", why);
            rc = S_EXIT_USAGE;
        } else {
            fprintf(stderr, "hpp-engine: %s: %zu keys\n", cfg->keys, eng_ledger_keys_count(keys));
        }
        eng_ledger_keys_release(keys);
    }
    if (cfg->store) {
        fprintf(stderr, "hpp-engine: ledger store %s: opened\n", cfg->store);
    }
    eng_ledger_destroy(&ledger);
    return rc;
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
    if (snap) {
        fprintf(stderr, "hpp-engine: policy hash %s\n", eng_snapshot_hash(snap));
    }
    fprintf(stderr, "hpp-engine: %s: %u errors, %u warnings\n", snap ? "ok" : "rejected",
            log.errors, log.warnings);
    int rc = snap ? S_EXIT_OK : S_EXIT_USAGE;
    if (snap && cfg->reload_cases && s_check_cases(cfg->reload_cases, snap) != 0) {
        rc = S_EXIT_USAGE;
    }
    eng_snapshot_destroy(&snap);
    if (cfg->curve_secret) {
        /* The key files too, so a deploy can check every file it ships. */
        hpp_key_t secret, public;
        char why[512];
        if (hpp_key_read_secret(cfg->curve_secret, &secret, &public, why, sizeof why) != 0) {
            fprintf(stderr, "hpp-engine: %s\n", why);
            rc = S_EXIT_USAGE;
        } else {
            fprintf(stderr, "hpp-engine: %s: CURVE public key %s\n", cfg->curve_secret, public.z85);
        }
        explicit_bzero(&secret, sizeof secret);
    }
    if ((cfg->ledger.keys || cfg->ledger.store) && s_check_ledger(&cfg->ledger) != S_EXIT_OK) {
        rc = S_EXIT_USAGE;
    }
    if (cfg->curve_clients) {
        eng_error_t err = {0};
        eng_allow_t *allow = eng_allow_load(cfg->curve_clients, &err);
        char msg[768];
        if (!allow) {
            eng_error_format(&err, msg, sizeof msg);
            fprintf(stderr, "hpp-engine: %s\n", msg);
            rc = S_EXIT_USAGE;
        } else {
            size_t admins = 0, n = eng_allow_count(allow, &admins);
            fprintf(stderr, "hpp-engine: %s: %zu client keys (%zu admin)\n", cfg->curve_clients, n,
                    admins);
        }
        eng_allow_destroy(&allow);
    }
    return rc;
}

/* --curve-keygen: a key pair for the engine or for a client. */
static int s_run_keygen(const char *dir, const char *name)
{
    char why[512];
    if (!hpp_key_name_valid(name)) {
        fprintf(stderr,
                "hpp-engine: --curve-name '%s': expected 1 to 64 characters of [A-Za-z0-9_.-], "
                "not starting with '.' (see --help)\n",
                name);
        return S_EXIT_USAGE;
    }
    if (hpp_key_generate(dir, name, why, sizeof why) != 0) {
        fprintf(stderr, "hpp-engine: %s\n", why);
        return S_EXIT_FAIL;
    }
    char pub[4096], sec[4096];
    snprintf(pub, sizeof pub, "%s/%s.pub", dir, name);
    snprintf(sec, sizeof sec, "%s/%s.sec", dir, name);
    hpp_key_t key;
    if (hpp_key_read_public(pub, &key, why, sizeof why) != 0) {
        fprintf(stderr, "hpp-engine: %s\n", why);
        return S_EXIT_FAIL;
    }
    printf("public key file: %s\nsecret key file: %s (mode 0600, keep it private)\n"
           "public key: %s\n",
           pub, sec, key.z85);
    return S_EXIT_OK;
}

/* Flags that only make sense together. Returns 0, or -1 after saying why. */
static int s_check_combos(const s_opts_t *o)
{
    static const struct {
        size_t flag, needs;            /* offsets in s_opts_t of two strings */
        const char *name, *needs_name; /* their flags */
        const char *why;               /* what the second one gives */
    } rules[] = {
        {S_FIELD(keyname), S_FIELD(keygen), "--curve-name", "--curve-keygen",
         "it names the key pair --curve-keygen writes"},
        {S_FIELD(cfg.curve_secret), S_FIELD(cfg.curve_clients), "--curve-secret", "--curve-clients",
         "the client keys allowed to connect; a CURVE server without them "
         "would refuse everyone"},
        {S_FIELD(cfg.curve_clients), S_FIELD(cfg.curve_secret), "--curve-clients", "--curve-secret",
         "the engine's own key; without it the engine speaks plain ZeroMQ and "
         "checks no key"},
        {S_FIELD(cfg.ledger.store), S_FIELD(cfg.ledger.keys), "--ledger", "--keys",
         "the keys whose spend the ledger keeps"},
        {S_FIELD(cfg.ledger.secret), S_FIELD(cfg.ledger.store), "--ledger-secret", "--ledger",
         "the store the password is for"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const char *set = *(const char *const *)((const char *)o + rules[i].flag);
        const char *need = *(const char *const *)((const char *)o + rules[i].needs);
        if (set && !need) {
            fprintf(stderr, "hpp-engine: %s needs %s: %s (see --help)\n", rules[i].name,
                    rules[i].needs_name, rules[i].why);
            return -1;
        }
    }
    /* The ring is the embedded store's: with another, or none, these would do nothing. */
    const eng_ledger_cfg_t *l = &o->cfg.ledger;
    if ((l->ring_dir || l->ring_lost) && (!l->store || strncmp(l->store, "sqlite:", 7) != 0)) {
        fprintf(stderr,
                "hpp-engine: %s needs --ledger sqlite:PATH: the ring is the embedded store's "
                "(see --help)\n",
                l->ring_dir ? "--ledger-ring-dir" : "--ledger-ring-lost");
        return -1;
    }
    return 0;
}

/* True for an endpoint only this host can reach. */
static bool s_local_endpoint(const char *ep)
{
    static const char *const local[] = {"tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://",
                                        "inproc://"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        if (strncmp(ep, local[i], strlen(local[i])) == 0) {
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    s_opts_t o = {0};
    eng_server_cfg_defaults(&o.cfg);
    if (eng_flags_parse("hpp-engine", s_flags, argc, argv, &o) != 0) {
        return S_EXIT_USAGE;
    }
    if (o.help) {
        s_print_help(stdout);
        return S_EXIT_OK;
    }
    if (o.version) {
        printf("hpp-engine %s (protocol v%d)\n", HPP_VERSION, PROTO_VERSION);
        return S_EXIT_OK;
    }
    if (s_check_combos(&o) != 0) {
        return S_EXIT_USAGE;
    }
    if (o.keygen) {
        return s_run_keygen(o.keygen, o.keyname ? o.keyname : "engine");
    }
    if (o.check) {
        return s_run_check(&o.cfg);
    }
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit must fail the decision log's writes (EFBIG), which
     * it counts, not kill the engine. */
    signal(SIGXFSZ, SIG_IGN);
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
    if (!o.cfg.curve_secret && !s_local_endpoint(eng_server_endpoint(server))) {
        eng_log(ENG_LOG_WARN, "engine",
                "%s is reachable from other hosts without CURVE: anyone who reaches it may "
                "route, read stats and reload (see --curve-secret)",
                eng_server_endpoint(server));
    }
    if (eng_server_metrics_address(server)) {
        fprintf(stderr, "hpp-engine: metrics on http://%s/metrics\n",
                eng_server_metrics_address(server));
    }
    if (eng_server_direct_endpoint(server)) {
        fprintf(stderr, "hpp-engine: direct on %s\n", eng_server_direct_endpoint(server));
    }
    fprintf(stderr, "hpp-engine: ready on %s\n", eng_server_endpoint(server));
    fflush(stderr);
    /* The same news for systemd (Type=notify); nothing without NOTIFY_SOCKET. */
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s", eng_server_endpoint(server));
    int rc = eng_server_run(server);
    eng_server_destroy(&server);
    return rc == 0 ? S_EXIT_OK : S_EXIT_FAIL;
}
