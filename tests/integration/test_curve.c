/* test_curve.c - the real hpp-engine with CURVE, and its policy hash.
 *
 * Keys are made by the engine's own --curve-keygen, the engine runs on
 * tcp://127.0.0.1:0 with --curve-secret and --curve-clients, and clients
 * are raw libzmq DEALER sockets with ZMQ_CURVE_SERVERKEY/PUBLICKEY/
 * SECRETKEY (the C client library is not needed to speak CURVE). Covered:
 * key files (mode 0600, never replaced), flags that need each other, an
 * unknown key or a plain client refused (no reply, the key logged, the log
 * rate-limited), a listed key served, the admin rule for stats and reload
 * (inline and with --route-workers), SIGHUP re-reading the allow-list and
 * keeping the last good one, and policy_hash in ping, reload and stats,
 * equal to SHA-256 over the files and changing with them.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "harness.h"
#include "hpp_keys.h"
#include "proto.h"

#define S_READY "hpp-engine: ready on "
#define S_TIMEOUT 5000 /* a reply that must come */
#define S_SILENCE 1000 /* how long a refused client waits for nothing */

/* Keys made once per test: the engine's, two clients, an admin, a stranger. */
typedef struct {
    char dir[200];   /* the test's private directory */
    char keys[260];  /* DIR/keys: every pair */
    char allow[260]; /* DIR/allow: the allow-list directory */
} s_env_t;

/* A running engine. */
typedef struct {
    hh_proc_t proc;     /* the process */
    char endpoint[256]; /* where it listens */
} s_engine_t;

static void s_path(char *out, size_t n, const s_env_t *env, const char *name, const char *ext)
{
    snprintf(out, n, "%s/%s.%s", env->keys, name, ext);
}

/* hpp-engine --curve-keygen DIR --curve-name NAME; returns its exit code
 * and output (caller frees). */
static int s_keygen(const char *dir, const char *name, char **out)
{
    char *argv[] = {hh_bin("hpp-engine"), "--curve-keygen", (char *)dir,
                    "--curve-name",       (char *)name,     NULL};
    return hh_run(argv, "keygen", S_TIMEOUT, out);
}

/* The allow-list: alice a client, root an admin (the admin mark added to
 * the .pub file keygen wrote); mallory and bob have keys nobody listed. */
static void s_env(s_env_t *env)
{
    cr_assert_eq(test_tmpdir_make(env->dir, sizeof env->dir, "test"), 0);
    snprintf(env->keys, sizeof env->keys, "%s/keys", env->dir);
    snprintf(env->allow, sizeof env->allow, "%s/allow", env->dir);
    const char *names[] = {"engine", "alice", "root", "mallory", "bob"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *out = NULL;
        cr_assert_eq(s_keygen(env->keys, names[i], &out), 0, "keygen %s: %s", names[i], out);
        free(out);
    }
    cr_assert_eq(mkdir(env->allow, 0700), 0);
    hpp_key_t alice, root;
    char p[400], why[512];
    s_path(p, sizeof p, env, "alice", "pub");
    cr_assert_eq(hpp_key_read_public(p, &alice, why, sizeof why), 0, "%s", why);
    s_path(p, sizeof p, env, "root", "pub");
    cr_assert_eq(hpp_key_read_public(p, &root, why, sizeof why), 0, "%s", why);
    char text[256];
    snprintf(p, sizeof p, "%s/alice.pub", env->allow);
    snprintf(text, sizeof text, "# the gateway\n%s alice\n", alice.z85);
    cr_assert_eq(hh_write_file(p, text), 0);
    snprintf(p, sizeof p, "%s/root.pub", env->allow);
    snprintf(text, sizeof text, "%s admin root # operations\n", root.z85);
    cr_assert_eq(hh_write_file(p, text), 0);
    /* Not a *.pub file: never read, so its garbage breaks nothing. */
    snprintf(p, sizeof p, "%s/README", env->allow);
    cr_assert_eq(hh_write_file(p, "not a key\n"), 0);
}

/* Starts the engine with CURVE on `clients` plus `extra` flags (NULL-ended,
 * may be NULL), waits for the readiness line. */
static void s_start(s_engine_t *e, const s_env_t *env, const char *clients,
                    const char *const *extra)
{
    static char secret[400];
    s_path(secret, sizeof secret, env, "engine", "sec");
    char *argv[32];
    int n = 0;
    argv[n++] = hh_bin("hpp-engine");
    argv[n++] = "--listen";
    argv[n++] = "tcp://127.0.0.1:0";
    argv[n++] = "--threads";
    argv[n++] = "2";
    argv[n++] = "--curve-secret";
    argv[n++] = secret;
    argv[n++] = "--curve-clients";
    argv[n++] = (char *)clients;
    for (int i = 0; extra && extra[i] && n < 30; i++) {
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    cr_assert_eq(hh_spawn(&e->proc, argv, "curve-engine"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&e->proc, S_READY, 15000, line, sizeof line), 0,
                 "engine did not become ready (log: %s)", e->proc.log);
    snprintf(e->endpoint, sizeof e->endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
}

static void s_stop(s_engine_t *e)
{
    int rc = hh_stop(&e->proc);
    cr_assert_eq(rc, 0, "engine exited %d (log: %s)", rc, e->proc.log);
}

/* A DEALER speaking CURVE to the engine as key pair `who`, or plain
 * (NULL mechanism) when `who` is NULL. */
static void *s_dealer(void *ctx, const s_env_t *env, const s_engine_t *e, const char *who)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    cr_assert_not_null(s);
    int zero = 0, t = S_TIMEOUT;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &t, sizeof t);
    if (who) {
        hpp_key_t server, pub, sec;
        char p[400], why[512];
        s_path(p, sizeof p, env, "engine", "pub");
        cr_assert_eq(hpp_key_read_public(p, &server, why, sizeof why), 0, "%s", why);
        s_path(p, sizeof p, env, who, "sec");
        cr_assert_eq(hpp_key_read_secret(p, &sec, &pub, why, sizeof why), 0, "%s", why);
        cr_assert_eq(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server.z85, HPP_KEY_LEN), 0);
        cr_assert_eq(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub.z85, HPP_KEY_LEN), 0);
        cr_assert_eq(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec.z85, HPP_KEY_LEN), 0);
    }
    cr_assert_eq(zmq_connect(s, e->endpoint), 0);
    return s;
}

/* Sends {v:1, id, op} (a route asks for 500 prompt tokens) and waits up to
 * `wait_ms` for the reply into buf. Returns its length, or -1 for none. */
static int s_call(void *s, proto_op_t op, uint64_t id, int wait_ms, char *buf, size_t cap)
{
    proto_request_t req;
    proto_request_init(&req, op);
    req.id = proto_id_uint(id);
    req.features.prompt_tokens = 500;
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 256), 0);
    cr_assert_eq(proto_request_encode(&b, &req), PROTO_OK);
    cr_assert_eq(zmq_send(s, b.data, b.len, 0), (int)b.len, "send: %s", zmq_strerror(errno));
    proto_buf_destroy(&b);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, wait_ms) != 1) {
        return -1;
    }
    int n = zmq_recv(s, buf, cap, 0);
    cr_assert_geq(n, 0, "recv: %s", zmq_strerror(errno));
    cr_assert_lt((size_t)n, cap, "reply of %d bytes truncated", n);
    return n;
}

/* Asks and decodes; the reply must come. */
static void s_ask(void *s, proto_op_t op, char *buf, size_t cap, proto_reply_t *r)
{
    static uint64_t next_id = 100;
    uint64_t id = next_id++;
    int n = s_call(s, op, id, S_TIMEOUT, buf, cap);
    cr_assert_geq(n, 0, "no reply to %s", proto_op_name(op));
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(buf, (size_t)n, r, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(r->id.num, id);
}

static bool s_hex64(hpp_str_t s)
{
    if (s.len != 64) {
        return false;
    }
    for (size_t i = 0; i < 64; i++) {
        if (!strchr("0123456789abcdef", s.ptr[i])) {
            return false;
        }
    }
    return true;
}

static void s_rmtree(const char *dir)
{
    char *argv[] = {"/bin/rm", "-rf", (char *)dir, NULL};
    hh_run(argv, "rm", S_TIMEOUT, NULL);
}

/* Key files ----------------------------------------------------------------- */

Test(curve, keygen_writes_private_files_and_never_replaces_them)
{
    char dir[256], keys[300], pub[400], sec[400];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    char *out = NULL;
    char *argv[] = {hh_bin("hpp-engine"), "--curve-keygen", keys, NULL};
    cr_assert_eq(hh_run(argv, "keygen", S_TIMEOUT, &out), 0, "%s", out);
    snprintf(pub, sizeof pub, "%s/engine.pub", keys);
    snprintf(sec, sizeof sec, "%s/engine.sec", keys);
    cr_assert(strstr(out, pub) && strstr(out, sec), "the paths are printed: %s", out);
    hpp_key_t k, s, derived;
    char why[512];
    cr_assert_eq(hpp_key_read_public(pub, &k, why, sizeof why), 0, "%s", why);
    cr_assert(strstr(out, k.z85), "the public key is printed: %s", out);
    cr_assert_null(strstr(out, "secret key:"), "the secret is never printed: %s", out);
    cr_assert_eq(hpp_key_read_secret(sec, &s, &derived, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(derived.z85, k.z85, "the pair matches");
    cr_assert_null(strstr(out, s.z85), "the secret is never printed");
    struct stat st;
    cr_assert_eq(stat(sec, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "secret mode %o", st.st_mode & 0777);
    cr_assert_eq(stat(pub, &st), 0);
    cr_assert_eq(st.st_mode & 077, 0, "public mode %o", st.st_mode & 0777);
    free(out);

    /* A second run must not replace the pair: exit 1, files unchanged. */
    out = NULL;
    cr_assert_eq(hh_run(argv, "keygen", S_TIMEOUT, &out), 1, "%s", out);
    cr_assert(strstr(out, "not replaced"), "%s", out);
    free(out);
    hpp_key_t again;
    cr_assert_eq(hpp_key_read_secret(sec, &again, NULL, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(again.z85, s.z85, "the secret was not overwritten");

    /* --curve-name without --curve-keygen is bad usage. */
    out = NULL;
    char *bad[] = {hh_bin("hpp-engine"), "--curve-name", "x", NULL};
    cr_assert_eq(hh_run(bad, "keygen", S_TIMEOUT, &out), 2, "%s", out);
    cr_assert(strstr(out, "--curve-name needs --curve-keygen"), "%s", out);
    free(out);
    s_rmtree(dir);
}

Test(curve, bad_flags_and_files_refuse_to_start)
{
    s_env_t env;
    s_env(&env);
    char secret[400], list[400], missing[400];
    s_path(secret, sizeof secret, &env, "engine", "sec");
    s_path(missing, sizeof missing, &env, "nobody", "sec");
    struct {
        const char *a, *b, *c, *d; /* flags */
        const char *says;          /* in the output */
    } cases[] = {
        {"--curve-secret", secret, NULL, NULL, "--curve-secret needs --curve-clients"},
        {"--curve-clients", env.allow, NULL, NULL, "--curve-clients needs --curve-secret"},
        {"--curve-secret", secret, "--curve-clients", list, ":2:1: error: expected a 40-character"},
        {"--curve-secret", missing, "--curve-clients", env.allow, "nobody.sec: cannot open"},
    };
    snprintf(list, sizeof list, "%s/list.txt", env.dir);
    cr_assert_eq(hh_write_file(list, "# keys\nnot-a-key client\n"), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {
            hh_bin("hpp-engine"), "--listen",         "tcp://127.0.0.1:0", (char *)cases[i].a,
            (char *)cases[i].b,   (char *)cases[i].c, (char *)cases[i].d,  NULL};
        char *out = NULL;
        cr_assert_eq(hh_run(argv, "curve-bad", S_TIMEOUT, &out), 2, "case %zu: %s", i, out);
        cr_assert(strstr(out, cases[i].says), "case %zu: [%s] not in %s", i, cases[i].says, out);
        cr_assert_null(strstr(out, S_READY), "case %zu never serves", i);
        free(out);
    }
    /* A secret others may read is refused, and its text never printed. */
    cr_assert_eq(chmod(secret, 0644), 0);
    char *argv[] = {hh_bin("hpp-engine"),
                    "--listen",
                    "tcp://127.0.0.1:0",
                    "--curve-secret",
                    secret,
                    "--curve-clients",
                    env.allow,
                    NULL};
    char *out = NULL;
    cr_assert_eq(hh_run(argv, "curve-bad", S_TIMEOUT, &out), 2, "%s", out);
    cr_assert(strstr(out, "chmod 600"), "%s", out);
    free(out);
    s_rmtree(env.dir);
}

/* Who may connect ------------------------------------------------------------ */

Test(curve, unknown_keys_get_nothing_listed_keys_are_served)
{
    s_env_t env;
    s_env(&env);
    s_engine_t e;
    s_start(&e, &env, env.allow, NULL);
    void *ctx = zmq_ctx_new();
    char buf[65536];

    /* A stranger: no reply at all, and the log names its key. */
    void *m = s_dealer(ctx, &env, &e, "mallory");
    cr_assert_eq(s_call(m, PROTO_OP_PING, 1, S_SILENCE, buf, sizeof buf), -1,
                 "an unknown key got a reply");
    hpp_key_t mk;
    char p[400], why[512], needle[128];
    s_path(p, sizeof p, &env, "mallory", "pub");
    cr_assert_eq(hpp_key_read_public(p, &mk, why, sizeof why), 0, "%s", why);
    snprintf(needle, sizeof needle, "refused unknown client key %s from 127.0.0.1", mk.z85);
    cr_assert_eq(hh_wait_line(&e.proc, needle, S_TIMEOUT, NULL, 0), 0, "no [%s] in %s", needle,
                 e.proc.log);
    zmq_close(m);

    /* Plain ZeroMQ (the NULL mechanism) does not get through either. */
    void *plain = s_dealer(ctx, &env, &e, NULL);
    cr_assert_eq(s_call(plain, PROTO_OP_PING, 2, S_SILENCE, buf, sizeof buf), -1);
    zmq_close(plain);

    /* A listed client is served: ping with the policy hash, and a route. */
    void *a = s_dealer(ctx, &env, &e, "alice");
    proto_reply_t r;
    s_ask(a, PROTO_OP_PING, buf, sizeof buf, &r);
    cr_assert(r.ok);
    cr_assert_eq(r.policy_version, 1);
    cr_assert(s_hex64(r.policy_hash), "policy_hash %.*s", (int)r.policy_hash.len,
              r.policy_hash.ptr);
    s_ask(a, PROTO_OP_ROUTE, buf, sizeof buf, &r);
    cr_assert(r.ok, "%.*s", (int)r.message.len, r.message.ptr);
    cr_assert_gt(r.model.len, 0);
    s_ask(a, PROTO_OP_MODELS, buf, sizeof buf, &r);
    cr_assert(r.ok);
    zmq_close(a);
    zmq_ctx_term(ctx);
    s_stop(&e);
    s_rmtree(env.dir);
}

/* Sends a report of three 500s from openai's gpt-4o, acknowledged; returns
 * the reply's length or -1 when none came within `wait_ms`. */
static int s_report_500s(void *s, uint64_t id, int wait_ms, char *buf, size_t cap)
{
    proto_attempt_t a[3];
    for (int i = 0; i < 3; i++) {
        proto_attempt_init(&a[i]);
        a[i].model = (hpp_str_t){"openai/gpt-4o", 13};
        a[i].provider = (hpp_str_t){"openai", 6};
        a[i].status = 500;
    }
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 256), 0);
    proto_id_t rid = proto_id_uint(id);
    cr_assert_eq(proto_report_encode(&b, &rid, a, 3, true), PROTO_OK);
    cr_assert_eq(zmq_send(s, b.data, b.len, 0), (int)b.len);
    proto_buf_destroy(&b);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, wait_ms) != 1) {
        return -1;
    }
    return zmq_recv(s, buf, cap, 0);
}

/* Whether explain of openai/gpt-4o traces openai as cooling down. */
static bool s_openai_cooling(void *s, char *buf, size_t cap)
{
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_EXPLAIN);
    req.id = proto_id_uint(77);
    req.features.model = (hpp_str_t){"openai/gpt-4o", 13};
    req.features.prompt_tokens = 100;
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 256), 0);
    cr_assert_eq(proto_request_encode(&b, &req), PROTO_OK);
    cr_assert_eq(zmq_send(s, b.data, b.len, 0), (int)b.len);
    proto_buf_destroy(&b);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, S_TIMEOUT), 1, "no explain reply");
    int n = zmq_recv(s, buf, cap, 0);
    cr_assert_gt(n, 0);
    proto_buf_t j;
    cr_assert_eq(proto_buf_init(&j, 4096), 0);
    proto_error_t err;
    cr_assert_eq(proto_to_json(buf, (size_t)n, &j, &err), PROTO_OK);
    bool cooling = strstr(j.data, "\"reason\":\"cooling_down\"") != NULL;
    proto_buf_destroy(&j);
    return cooling;
}

/* Who may report: any listed key (a client key as well as an admin); a
 * stranger's reports are never read, so they change no decision. */
Test(curve, reports_count_only_from_listed_keys)
{
    s_env_t env;
    s_env(&env);
    s_engine_t e;
    s_start(&e, &env, env.allow, NULL);
    void *ctx = zmq_ctx_new();
    char buf[65536];
    void *m = s_dealer(ctx, &env, &e, "mallory");
    cr_assert_eq(s_report_500s(m, 1, S_SILENCE, buf, sizeof buf), -1,
                 "a stranger's report was answered");
    zmq_close(m);
    void *a = s_dealer(ctx, &env, &e, "alice");
    cr_assert(!s_openai_cooling(a, buf, sizeof buf), "a stranger's report was counted");
    int n = s_report_500s(a, 2, S_TIMEOUT, buf, sizeof buf);
    cr_assert_gt(n, 0, "a listed client key may report");
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(buf, (size_t)n, &r, &err), PROTO_OK, "%s", err.msg);
    cr_assert(r.ok, "%.*s", (int)r.message.len, r.message.ptr);
    cr_assert(s_openai_cooling(a, buf, sizeof buf), "three 500s put openai on cooldown");
    zmq_close(a);
    zmq_ctx_term(ctx);
    s_stop(&e);
    s_rmtree(env.dir);
}

Test(curve, refusals_are_logged_at_most_once_a_second)
{
    s_env_t env;
    s_env(&env);
    s_engine_t e;
    s_start(&e, &env, env.allow, NULL);
    void *ctx = zmq_ctx_new();
    enum { N = 8 };
    void *socks[N];
    char buf[256];
    for (int i = 0; i < N; i++) {
        socks[i] = s_dealer(ctx, &env, &e, i % 2 ? "mallory" : "bob");
        zmq_send(socks[i], "x", 1, ZMQ_DONTWAIT); /* any frame: only the handshake matters */
    }
    /* The ones not logged one by one are counted in a later line. */
    cr_assert_eq(hh_wait_line(&e.proc, "refused since the last line", 3 * S_TIMEOUT, NULL, 0), 0,
                 "no count of suppressed refusals in %s", e.proc.log);
    int lines = hh_count_lines(&e.proc, "refused unknown client key");
    cr_assert(lines >= 1 && lines < N, "%d refusal lines for %d refusals", lines, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(zmq_recv(socks[i], buf, sizeof buf, ZMQ_DONTWAIT), -1);
        zmq_close(socks[i]);
    }
    zmq_ctx_term(ctx);
    s_stop(&e);
    s_rmtree(env.dir);
}

/* The admin rule ------------------------------------------------------------- */

/* stats and reload: forbidden to alice, answered to root. */
static void s_admin_rule(const s_env_t *env, const char *const *extra)
{
    s_engine_t e;
    s_start(&e, env, env->allow, extra);
    void *ctx = zmq_ctx_new();
    char buf[65536];
    proto_reply_t r;

    void *a = s_dealer(ctx, env, &e, "alice");
    const proto_op_t admin_ops[] = {PROTO_OP_STATS, PROTO_OP_RELOAD};
    for (size_t i = 0; i < 2; i++) {
        s_ask(a, admin_ops[i], buf, sizeof buf, &r);
        cr_assert(!r.ok, "%s answered to a client key", proto_op_name(admin_ops[i]));
        cr_assert_eq(r.status, HPP_E_FORBIDDEN, "%s: %.*s", proto_op_name(admin_ops[i]),
                     (int)r.code.len, r.code.ptr);
    }
    s_ask(a, PROTO_OP_PING, buf, sizeof buf, &r);
    cr_assert_eq(r.policy_version, 1, "the refused reload changed nothing");

    void *root = s_dealer(ctx, env, &e, "root");
    s_ask(root, PROTO_OP_RELOAD, buf, sizeof buf, &r);
    cr_assert(r.ok, "%.*s", (int)r.message.len, r.message.ptr);
    cr_assert_eq(r.policy_version, 2);
    cr_assert(s_hex64(r.policy_hash));
    s_ask(root, PROTO_OP_STATS, buf, sizeof buf, &r);
    cr_assert(r.ok);
    cr_assert_eq(r.policy_version, 2);
    proto_buf_t j;
    cr_assert_eq(proto_buf_init(&j, 4096), 0);
    proto_error_t perr;
    int len = s_call(root, PROTO_OP_STATS, 7, S_TIMEOUT, buf, sizeof buf);
    cr_assert_gt(len, 0);
    cr_assert_eq(proto_to_json(buf, (size_t)len, &j, &perr), PROTO_OK, "%s", perr.msg);
    json_t *stats = json_loads(j.data, 0, NULL);
    cr_assert_not_null(stats, "%s", j.data);
    json_t *forb = json_object_get(json_object_get(stats, "errors"), "forbidden");
    cr_assert_eq(json_integer_value(forb), 2, "forbidden counted: %s", j.data);
    json_decref(stats);
    proto_buf_destroy(&j);
    zmq_close(a);
    zmq_close(root);
    zmq_ctx_term(ctx);
    s_stop(&e);
}

Test(curve, stats_and_reload_need_an_admin_key)
{
    s_env_t env;
    s_env(&env);
    s_admin_rule(&env, NULL);
    /* The frontend decodes nothing for the workers there: same rule. */
    const char *workers[] = {"--route-workers", NULL};
    s_admin_rule(&env, workers);
    s_rmtree(env.dir);
}

/* The ledger op: `key` is any client's (the sidecar's read endpoints),
 * topup, set_balance and accounts are admin-only, like stats. */
static proto_reply_t s_ledger(void *s, proto_ledger_action_t action, const char *key, char *buf,
                              size_t cap)
{
    static uint64_t next_id = 900;
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_LEDGER);
    req.id = proto_id_uint(next_id++);
    req.ledger.action = action;
    if (action == PROTO_LEDGER_KEY) {
        req.features.key = (hpp_str_t){key, strlen(key)};
    } else if (action != PROTO_LEDGER_ACCOUNTS) {
        req.ledger.account = (hpp_str_t){"acme", 4};
        req.ledger.has_amount = true;
        req.ledger.amount_pd = 1000000000000;
    }
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 256), 0);
    cr_assert_eq(proto_request_encode(&b, &req), PROTO_OK);
    cr_assert_eq(zmq_send(s, b.data, b.len, 0), (int)b.len);
    proto_buf_destroy(&b);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, S_TIMEOUT), 1, "no reply to ledger %s",
                 proto_ledger_action_name(action));
    int n = zmq_recv(s, buf, cap, 0);
    cr_assert_gt(n, 0);
    proto_reply_t r;
    proto_error_t err;
    cr_assert_eq(proto_reply_decode(buf, (size_t)n, &r, &err), PROTO_OK, "%s", err.msg);
    return r;
}

static void s_ledger_rule(const s_env_t *env, const char *const *workers)
{
    char keys[300], store[320];
    snprintf(keys, sizeof keys, "%s/api.keys", env->dir);
    snprintf(store, sizeof store, "sqlite:%s/ledger.db", env->dir);
    const char *hash = "sha256:456f1612bd25c6c8455039437bf441f43aa3b7d1c0b0047c712d5036dfebef0d";
    FILE *f = fopen(keys, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s group=default account=acme\n", hash);
    fclose(f);
    const char *extra[] = {"--keys", keys, "--ledger", store, workers ? workers[0] : NULL, NULL};
    s_engine_t e;
    s_start(&e, env, env->allow, extra);
    void *ctx = zmq_ctx_new();
    char buf[4096];
    void *a = s_dealer(ctx, env, &e, "alice");
    const proto_ledger_action_t admin[] = {PROTO_LEDGER_TOPUP, PROTO_LEDGER_SET_BALANCE,
                                           PROTO_LEDGER_ACCOUNTS};
    for (size_t i = 0; i < 3; i++) {
        proto_reply_t r = s_ledger(a, admin[i], NULL, buf, sizeof buf);
        cr_assert_eq(r.status, HPP_E_FORBIDDEN, "ledger %s answered to a client key",
                     proto_ledger_action_name(admin[i]));
    }
    proto_reply_t r = s_ledger(a, PROTO_LEDGER_KEY, hash, buf, sizeof buf);
    cr_assert(r.ok, "ledger key refused to a client key: %.*s", (int)r.message.len, r.message.ptr);
    void *root = s_dealer(ctx, env, &e, "root");
    r = s_ledger(root, PROTO_LEDGER_TOPUP, NULL, buf, sizeof buf);
    cr_assert(r.ok, "topup refused to an admin: %.*s", (int)r.message.len, r.message.ptr);
    zmq_close(a);
    zmq_close(root);
    zmq_ctx_term(ctx);
    s_stop(&e);
}

Test(curve, ledger_admin_actions_need_an_admin_key)
{
    s_env_t env;
    s_env(&env);
    s_ledger_rule(&env, NULL);
    const char *workers[] = {"--route-workers", NULL};
    s_ledger_rule(&env, workers);
    s_rmtree(env.dir);
}

/* SIGHUP --------------------------------------------------------------------- */

/* Pings as `who` on a fresh connection (the allow-list is asked at the
 * handshake): true when answered. */
static bool s_admitted(void *ctx, const s_env_t *env, const s_engine_t *e, const char *who)
{
    void *s = s_dealer(ctx, env, e, who);
    char buf[4096];
    int n = s_call(s, PROTO_OP_PING, 1, S_SILENCE * 2, buf, sizeof buf);
    zmq_close(s);
    return n > 0;
}

Test(curve, sighup_rereads_the_list_and_a_broken_one_keeps_the_last_good)
{
    s_env_t env;
    s_env(&env);
    hpp_key_t alice, bob;
    char p[400], why[512], list[400], text[512];
    s_path(p, sizeof p, &env, "alice", "pub");
    cr_assert_eq(hpp_key_read_public(p, &alice, why, sizeof why), 0, "%s", why);
    s_path(p, sizeof p, &env, "bob", "pub");
    cr_assert_eq(hpp_key_read_public(p, &bob, why, sizeof why), 0, "%s", why);
    snprintf(list, sizeof list, "%s/clients.txt", env.dir);
    snprintf(text, sizeof text, "%s alice\n", alice.z85);
    cr_assert_eq(hh_write_file(list, text), 0);

    s_engine_t e;
    s_start(&e, &env, list, NULL);
    void *ctx = zmq_ctx_new();
    cr_assert(s_admitted(ctx, &env, &e, "alice"));
    cr_assert(!s_admitted(ctx, &env, &e, "bob"), "bob is not listed yet");

    snprintf(text, sizeof text, "%s alice\n%s bob\n", alice.z85, bob.z85);
    cr_assert_eq(hh_write_file(list, text), 0);
    cr_assert_eq(hh_signal(&e.proc, SIGHUP), 0);
    cr_assert_eq(hh_wait_line(&e.proc, "allow-list reloaded: 2 client keys", S_TIMEOUT, NULL, 0), 0,
                 "%s", e.proc.log);
    cr_assert(s_admitted(ctx, &env, &e, "bob"), "bob is listed now");

    /* Broken on line 2: logged with file:line, the two keys keep serving. */
    snprintf(text, sizeof text, "%s alice\n%.20s bob\n", alice.z85, bob.z85);
    cr_assert_eq(hh_write_file(list, text), 0);
    cr_assert_eq(hh_signal(&e.proc, SIGHUP), 0);
    char needle[700];
    snprintf(needle, sizeof needle, "%s:2:1: error: expected a 40-character Z85 public key", list);
    char line[1024];
    cr_assert_eq(hh_wait_line(&e.proc, needle, S_TIMEOUT, line, sizeof line), 0, "no [%s] in %s",
                 needle, e.proc.log);
    cr_assert(strstr(line, "previous allow-list (2 keys) keeps serving"), "%s", line);
    cr_assert(s_admitted(ctx, &env, &e, "bob"), "the last good list still admits bob");
    cr_assert(s_admitted(ctx, &env, &e, "alice"));
    cr_assert(!s_admitted(ctx, &env, &e, "mallory"));
    zmq_ctx_term(ctx);
    s_stop(&e);
    s_rmtree(env.dir);
}

/* Policy hash ------------------------------------------------------------------ */

/* SHA-256 of the files' bytes, one after the other, as lowercase hex. */
static void s_sha_files(const char *const *files, char out[65])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; files[i]; i++) {
        size_t len = 0;
        char *text = hh_read_file(files[i], &len);
        cr_assert_not_null(text, "%s", files[i]);
        crypto_hash_sha256_update(&st, (const unsigned char *)text, len);
        free(text);
    }
    unsigned char d[32];
    crypto_hash_sha256_final(&st, d);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static void s_assert_hash(hpp_str_t got, const char *want, const char *what)
{
    cr_assert(got.len == 64 && memcmp(got.ptr, want, 64) == 0, "%s: policy_hash %.*s, want %s",
              what, (int)got.len, got.ptr ? got.ptr : "", want);
}

Test(policy_hash, is_sha256_of_the_files_and_follows_them)
{
    /* A policy with an include, copied where the test may edit it. */
    char dir[256], shared[300], policy[300], tiers[300], catalog[300];
    cr_assert_eq(test_tmpdir_make(dir, sizeof dir, "test"), 0);
    snprintf(shared, sizeof shared, "%s/shared", dir);
    cr_assert_eq(mkdir(shared, 0700), 0);
    snprintf(policy, sizeof policy, "%s/teams.policy", dir);
    snprintf(tiers, sizeof tiers, "%s/shared/tiers.policy", dir);
    snprintf(catalog, sizeof catalog, "%s/catalog.json", dir);
    const char *copies[][2] = {{"policies/examples/teams.policy", policy},
                               {"policies/examples/shared/tiers.policy", tiers},
                               {"policies/catalog.json", catalog}};
    for (size_t i = 0; i < 3; i++) {
        char *text = hh_read_file(copies[i][0], NULL);
        cr_assert_not_null(text, "%s", copies[i][0]);
        cr_assert_eq(hh_write_file(copies[i][1], text), 0);
        free(text);
    }
    /* Load order: the catalogs, the policy, then what it includes. */
    const char *files[] = {catalog, policy, tiers, NULL};
    char want[65];
    s_sha_files(files, want);

    /* --check prints the hash the engine will serve. */
    char *check[] = {hh_bin("hpp-engine"), "--check", "--policy", policy,
                     "--catalog",          catalog,   NULL};
    char *out = NULL;
    cr_assert_eq(hh_run(check, "check", S_TIMEOUT, &out), 0, "%s", out);
    cr_assert(strstr(out, want), "--check: [%s] not in %s", want, out);
    free(out);

    /* Plain ZeroMQ on loopback: every op allowed, the hash reported alike. */
    s_engine_t e;
    char *argv[] = {hh_bin("hpp-engine"), "--listen", "tcp://127.0.0.1:0", "--threads", "1",
                    "--policy",           policy,     "--catalog",         catalog,     NULL};
    cr_assert_eq(hh_spawn(&e.proc, argv, "hash-engine"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&e.proc, S_READY, 15000, line, sizeof line), 0, "%s", e.proc.log);
    snprintf(e.endpoint, sizeof e.endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
    void *ctx = zmq_ctx_new();
    void *s = s_dealer(ctx, NULL, &e, NULL);
    char buf[65536];
    proto_reply_t r;
    s_ask(s, PROTO_OP_PING, buf, sizeof buf, &r);
    s_assert_hash(r.policy_hash, want, "ping");
    s_ask(s, PROTO_OP_STATS, buf, sizeof buf, &r);
    s_assert_hash(r.policy_hash, want, "stats");

    /* An edit of the included file alone changes it. */
    char *text = hh_read_file(tiers, NULL);
    size_t tl = strlen(text);
    char *edited = malloc(tl + 64);
    snprintf(edited, tl + 64, "%s# edited\n", text);
    cr_assert_eq(hh_write_file(tiers, edited), 0);
    free(text);
    free(edited);
    char want2[65];
    s_sha_files(files, want2);
    cr_assert_str_neq(want, want2);
    s_ask(s, PROTO_OP_RELOAD, buf, sizeof buf, &r);
    cr_assert(r.ok, "%.*s", (int)r.message.len, r.message.ptr);
    cr_assert_eq(r.policy_version, 2);
    s_assert_hash(r.policy_hash, want2, "reload");
    s_ask(s, PROTO_OP_PING, buf, sizeof buf, &r);
    s_assert_hash(r.policy_hash, want2, "ping after the reload");

    /* A rejected reload keeps version and hash of what still serves. */
    cr_assert_eq(hh_write_file(policy, "route x { tier nowhere }\n"), 0);
    s_ask(s, PROTO_OP_RELOAD, buf, sizeof buf, &r);
    cr_assert(!r.ok);
    cr_assert_eq(r.policy_version, 2);
    s_assert_hash(r.policy_hash, want2, "rejected reload");
    zmq_close(s);
    zmq_ctx_term(ctx);
    s_stop(&e);
    s_rmtree(dir);
}
