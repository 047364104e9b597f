/* hpp_ledger.c - hpp-ledger, the ledger's administration CLI.
 *
 *   hpp-ledger keys add --file F --group G [--account A] [--limit-usd X] ...
 *   hpp-ledger keys revoke --file F (--hash sha256:... | --key-stdin)
 *   hpp-ledger keys list --file F [--json]
 *   hpp-ledger balance set --account A --usd X [engine options]
 *   hpp-ledger topup --account A --usd X [engine options]
 *   hpp-ledger usage [--key HASH | --account A] [--json] [engine options]
 *
 * The `keys` commands edit the one key file (ldg_keyfile.c) and talk to no
 * engine: the engine and the sidecar read the file again on SIGHUP (or the
 * engine's reload op). The others speak the engine's `ledger` op through
 * the C client (proto/hpp_client.h), so this program needs only proto/.
 *
 * Exit codes: 0 done; 1 refused (by the engine, or the key file: a located
 * error, a hash not in the file); 2 a usage error; 3 the engine did not
 * answer in time (or could not be reached).
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_apikeys.h"
#include "hpp_client.h"
#include "hpp_types.h"
#include "ldg_keyfile.h"
#include "proto.h"

enum { S_OK = 0, S_REFUSED = 1, S_USAGE = 2, S_UNREACHABLE = 3 };

#define S_DEFAULT_ENGINE "tcp://127.0.0.1:5555"
#define S_DEFAULT_TIMEOUT_MS 5000
#define S_KEY_PREFIX "sk-hpp-v1-"

/* Every option any command takes; each command says which it accepts. */
typedef struct {
    const char *file, *group, *account, *budget, *limit, *daily, *daily_requests, *free_daily,
        *free_funded, *comment, *hash, *usd, *key, *engine, *server_key, *secret, *timeout;
    bool key_stdin, json;
} s_args_t;

typedef struct {
    const char *flag; /* "--file" */
    const char *arg;  /* its value's name in help, NULL for a switch */
    size_t off;       /* the field in s_args_t */
    const char *help; /* one line */
} s_opt_t;

#define S_O(flag, arg, field, help)                                                                \
    {                                                                                              \
        flag, arg, offsetof(s_args_t, field), help                                                 \
    }
static const s_opt_t s_opts[] = {
    S_O("--file", "FILE", file, "the API key file (the --keys file of hpp-engine and hpp-sidecar)"),
    S_O("--group", "G", group, "the key's group (1-64 of [A-Za-z0-9_.:/@-])"),
    S_O("--account", "A", account, "the account (keys add: default the key's own hash)"),
    S_O("--budget-usd", "X", budget, "the most one request may cost, USD"),
    S_O("--limit-usd", "X", limit, "the key's lifetime spending limit, USD"),
    S_O("--daily-usd", "X", daily, "the most the key may spend per day, USD"),
    S_O("--daily-requests", "N", daily_requests, "requests per day, all models"),
    S_O("--free-daily-requests", "N", free_daily, "requests per day to $0 models (default 50)"),
    S_O("--free-daily-requests-funded", "N", free_funded,
        "the same once the account holds credits (default 1000)"),
    S_O("--comment", "TEXT", comment, "a comment written after the key's line"),
    S_O("--hash", "HASH", hash, "the key's sha256:<64 hex> (keys list shows it)"),
    S_O("--key-stdin", NULL, key_stdin, "read the key itself from stdin (never from argv)"),
    S_O("--usd", "X", usd, "the amount, USD"),
    S_O("--key", "HASH", key, "one key's usage, by its sha256:<64 hex>"),
    S_O("--json", NULL, json, "print JSON (the engine's reply as it came)"),
    S_O("--engine", "ENDPOINT", engine, "the engine (default " S_DEFAULT_ENGINE ")"),
    S_O("--curve-server-key", "FILE", server_key,
        "CURVE: the engine's public key file; needs --curve-secret"),
    S_O("--curve-secret", "FILE", secret,
        "CURVE: this client's secret key file (mode 0600; an admin key of the engine's "
        "--curve-clients for balance set and topup)"),
    S_O("--timeout-ms", "N", timeout, "how long to wait for the engine (default 5000)"),
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

/* Option sets, by flag name (space separated). */
#define S_ENGINE_OPTS "--engine --curve-server-key --curve-secret --timeout-ms"

typedef int (*s_cmd_fn)(const s_args_t *a);

typedef struct {
    const char *name;     /* "keys add" */
    s_cmd_fn fn;          /* runs it */
    const char *synopsis; /* after the name */
    const char *about;    /* one line */
    const char *opts;     /* flags it takes, space separated */
} s_cmd_t;

static int s_keys_add(const s_args_t *a);
static int s_keys_revoke(const s_args_t *a);
static int s_keys_list(const s_args_t *a);
static int s_balance_set(const s_args_t *a);
static int s_topup(const s_args_t *a);
static int s_usage(const s_args_t *a);

static const s_cmd_t s_cmds[] = {
    {"keys add", s_keys_add, "--file F --group G [--account A] [limits]",
     "make a random API key, print it once, write only its SHA-256 to the file",
     "--file --group --account --budget-usd --limit-usd --daily-usd --daily-requests "
     "--free-daily-requests --free-daily-requests-funded --comment"},
    {"keys revoke", s_keys_revoke, "--file F (--hash HASH | --key-stdin)",
     "mark a key revoked (refused by the sidecar and the engine after their reload)",
     "--file --hash --key-stdin"},
    {"keys list", s_keys_list, "--file F [--json]",
     "list the keys of the file: hashes, groups, accounts, limits (never a key)", "--file --json"},
    {"balance set", s_balance_set, "--account A --usd X [engine options]",
     "set an account's balance (the engine's ledger op, an admin action)",
     "--account --usd " S_ENGINE_OPTS},
    {"topup", s_topup, "--account A --usd X [engine options]",
     "add credit to an account (the engine's ledger op, an admin action)",
     "--account --usd " S_ENGINE_OPTS},
    {"usage", s_usage, "[--key HASH | --account A] [--json] [engine options]",
     "a key's spend and limits, or the accounts' balances (admin without --key)",
     "--key --account --json " S_ENGINE_OPTS},
};
#define S_NCMDS (sizeof s_cmds / sizeof s_cmds[0])

static bool s_takes(const s_cmd_t *c, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = c->opts; (p = strstr(p, flag)) != NULL; p += n) {
        if ((p == c->opts || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static void s_help_line(FILE *o, const char *head, const char *text);

static void s_help_top(FILE *o)
{
    fprintf(o, "usage: hpp-ledger COMMAND [options]   (COMMAND --help: its options)\n"
               "\ncommands:\n");
    for (size_t i = 0; i < S_NCMDS; i++) {
        s_help_line(o, s_cmds[i].name, s_cmds[i].about);
    }
    fprintf(o, "\nThe keys commands edit the key file; hpp-engine and hpp-sidecar read it again\n"
               "on SIGHUP. The others ask the engine (--engine, default " S_DEFAULT_ENGINE ").\n"
               "Exit codes: 0 done, 1 refused, 2 usage error, 3 engine not answering.\n"
               "  -h, --help   this help\n");
}

/* "  HEAD  text" with the text wrapped at 80 columns under its first line. */
static void s_help_line(FILE *o, const char *head, const char *text)
{
    const int col = 30, width = 80;
    int at = fprintf(o, "  %-*s", col - 2, head);
    if (at > col) {
        fprintf(o, "\n%*s", col, "");
    }
    at = col;
    while (*text) {
        size_t w = strcspn(text, " ");
        if (at > col && at + 1 + (int)w > width) {
            fprintf(o, "\n%*s", col, "");
            at = col;
        } else if (at > col) {
            fputc(' ', o);
            at++;
        }
        fwrite(text, 1, w, o);
        at += (int)w;
        text += w;
        text += strspn(text, " ");
    }
    fputc('\n', o);
}

static void s_help_cmd(FILE *o, const s_cmd_t *c)
{
    fprintf(o, "usage: hpp-ledger %s %s\n\n", c->name, c->synopsis);
    fprintf(o, "%s\n", c->about);
    fprintf(o, "\noptions:\n");
    for (size_t i = 0; i < S_NOPTS; i++) {
        if (s_takes(c, s_opts[i].flag)) {
            char head[64];
            snprintf(head, sizeof head, "%s%s%s", s_opts[i].flag, s_opts[i].arg ? " " : "",
                     s_opts[i].arg ? s_opts[i].arg : "");
            s_help_line(o, head, s_opts[i].help);
        }
    }
    s_help_line(o, "-h, --help", "this help");
}

static int s_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hpp-ledger: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Keys ---------------------------------------------------------------------- */

/* " NAME=VALUE" into line when `v` is given, checked by `ok`. */
static int s_kv(char *line, size_t cap, const char *name, const char *flag, const char *v, bool ok)
{
    if (!v) {
        return 0;
    }
    if (!ok) {
        return s_fail(S_USAGE, "%s: '%s' is not valid (see hpp-ledger keys add --help)", flag, v);
    }
    size_t n = strlen(line);
    if ((size_t)snprintf(line + n, cap - n, " %s=%s", name, v) >= cap - n) {
        return s_fail(S_USAGE, "%s: too long", flag);
    }
    return 0;
}

static bool s_usd_ok(const char *v)
{
    int64_t pd;
    return v && hpp_apikeys_parse_pd(v, strlen(v), &pd) == 0;
}

static bool s_count_ok(const char *v)
{
    int64_t n;
    return v && hpp_apikeys_parse_count(v, strlen(v), &n) == 0;
}

static int s_keys_add(const s_args_t *a)
{
    if (!a->file || !a->group) {
        return s_fail(S_USAGE, "keys add: --file and --group are required");
    }
    if (a->comment && strpbrk(a->comment, "\r\n")) {
        return s_fail(S_USAGE, "--comment: one line");
    }
    unsigned char raw[32];
    char key[sizeof S_KEY_PREFIX + 2 * sizeof raw];
    randombytes_buf(raw, sizeof raw);
    memcpy(key, S_KEY_PREFIX, sizeof S_KEY_PREFIX - 1);
    sodium_bin2hex(key + sizeof S_KEY_PREFIX - 1, 2 * sizeof raw + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    char hash[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text(key, strlen(key), hash);

    char line[2048];
    double usd;
    snprintf(line, sizeof line, "%s", hash);
    int rc = 0;
    rc = rc ? rc
            : s_kv(line, sizeof line, "group", "--group", a->group,
                   hpp_apikeys_group_ok(a->group, strlen(a->group)));
    rc = rc ? rc
            : s_kv(line, sizeof line, "account", "--account", a->account,
                   a->account && hpp_apikeys_account_ok(a->account, strlen(a->account)));
    rc = rc ? rc
            : s_kv(line, sizeof line, "budget_usd", "--budget-usd", a->budget,
                   a->budget && hpp_apikeys_parse_usd(a->budget, strlen(a->budget), &usd) == 0);
    rc =
        rc ? rc : s_kv(line, sizeof line, "limit_usd", "--limit-usd", a->limit, s_usd_ok(a->limit));
    rc =
        rc ? rc : s_kv(line, sizeof line, "daily_usd", "--daily-usd", a->daily, s_usd_ok(a->daily));
    rc = rc ? rc
            : s_kv(line, sizeof line, "daily_requests", "--daily-requests", a->daily_requests,
                   s_count_ok(a->daily_requests));
    rc = rc ? rc
            : s_kv(line, sizeof line, "free_daily_requests", "--free-daily-requests", a->free_daily,
                   s_count_ok(a->free_daily));
    rc = rc ? rc
            : s_kv(line, sizeof line, "free_daily_requests_funded", "--free-daily-requests-funded",
                   a->free_funded, s_count_ok(a->free_funded));
    if (rc) {
        sodium_memzero(key, sizeof key);
        return rc;
    }
    if (a->comment) {
        size_t n = strlen(line);
        snprintf(line + n, sizeof line - n, "   # %s", a->comment);
    }
    char err[1024];
    if (ldg_keyfile_append(a->file, line, err, sizeof err) != LDG_EDIT_DONE) {
        sodium_memzero(key, sizeof key);
        return s_fail(S_REFUSED, "%s", err);
    }
    /* The key, once: only its hash is kept anywhere. */
    printf("%s\n", key);
    fflush(stdout);
    sodium_memzero(key, sizeof key);
    fprintf(stderr,
            "hpp-ledger: added %s (group %s) to %s; send SIGHUP to hpp-engine and hpp-sidecar "
            "(or the engine's reload op) to load it\n",
            hash, a->group, a->file);
    return S_OK;
}

static int s_keys_revoke(const s_args_t *a)
{
    if (!a->file || (!a->hash == !a->key_stdin)) {
        return s_fail(S_USAGE, "keys revoke: --file and one of --hash or --key-stdin are required");
    }
    char hash[HPP_APIKEY_HASH_TEXT];
    if (a->hash) {
        if (!hpp_apikeys_hash_ok(a->hash, strlen(a->hash))) {
            return s_fail(S_USAGE, "--hash: expected sha256:<64 lowercase hex digits>");
        }
        snprintf(hash, sizeof hash, "%s", a->hash);
    } else {
        char key[HPP_APIKEY_MAX_KEY + 3];
        size_t n = fread(key, 1, sizeof key - 1, stdin);
        while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r')) {
            n--;
        }
        const char *why = n > HPP_APIKEY_MAX_KEY ? "the key is longer than 1024 bytes"
                                                 : hpp_apikeys_check_key(key, n);
        if (why) {
            sodium_memzero(key, sizeof key);
            return s_fail(S_USAGE, "--key-stdin: %s", why);
        }
        hpp_apikeys_hash_text(key, n, hash);
        sodium_memzero(key, sizeof key);
    }
    char err[1024];
    switch (ldg_keyfile_revoke(a->file, hash, err, sizeof err)) {
    case LDG_EDIT_DONE:
        fprintf(stderr,
                "hpp-ledger: revoked %s in %s; send SIGHUP to hpp-engine and hpp-sidecar to "
                "refuse it\n",
                hash, a->file);
        return S_OK;
    case LDG_EDIT_UNCHANGED:
        fprintf(stderr, "hpp-ledger: %s was already revoked in %s\n", hash, a->file);
        return S_OK;
    case LDG_EDIT_NOT_FOUND:
        return s_fail(S_REFUSED, "%s: no key %s", a->file, hash);
    default:
        return s_fail(S_REFUSED, "%s", err);
    }
}

static int s_by_line(const void *x, const void *y)
{
    const hpp_apikey_t *a = *(const hpp_apikey_t *const *)x, *b = *(const hpp_apikey_t *const *)y;
    return (a->line > b->line) - (a->line < b->line);
}

/* An amount in picodollars as text: "none" for -1. */
static const char *s_pd(int64_t pd, char *buf, size_t n)
{
    if (pd < 0) {
        return "none";
    }
    hpp_pusd_format(pd, false, buf, n);
    return buf;
}

static json_t *s_key_json(const hpp_apikey_t *k)
{
    char b1[48], b2[48];
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "hash", k->hash, "group", k->group, "account",
                          k->account, "revoked", k->revoked);
    json_object_set_new(o, "budget_usd", k->has_budget ? json_real(k->budget_usd) : json_null());
    json_object_set_new(o, "limit_usd",
                        k->limit_pd < 0 ? json_null() : json_string(s_pd(k->limit_pd, b1, 48)));
    json_object_set_new(o, "daily_usd",
                        k->daily_pd < 0 ? json_null() : json_string(s_pd(k->daily_pd, b2, 48)));
    json_object_set_new(o, "daily_requests",
                        k->daily_requests < 0 ? json_null() : json_integer(k->daily_requests));
    json_object_set_new(o, "free_daily_requests", json_integer(k->free_daily_requests));
    json_object_set_new(o, "free_daily_requests_funded",
                        json_integer(k->free_daily_requests_funded));
    json_object_set_new(o, "line", json_integer(k->line));
    return o;
}

static int s_keys_list(const s_args_t *a)
{
    if (!a->file) {
        return s_fail(S_USAGE, "keys list: --file is required");
    }
    char err[1024];
    hpp_apikeys_t *keys = hpp_apikeys_load(a->file, err, sizeof err);
    if (!keys) {
        return s_fail(S_REFUSED, "%s", err);
    }
    size_t n = hpp_apikeys_count(keys);
    const hpp_apikey_t **v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        hpp_apikeys_destroy(&keys);
        return s_fail(S_REFUSED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = hpp_apikeys_at(keys, i);
    }
    qsort(v, n, sizeof *v, s_by_line);
    if (a->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(arr, s_key_json(v[i]));
        }
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
    } else {
        printf("%-71s  %-16s %-16s %10s %10s %8s %s\n", "hash", "group", "account", "limit_usd",
               "daily_usd", "requests", "state");
        for (size_t i = 0; i < n; i++) {
            char b1[48], b2[48], rq[24];
            const hpp_apikey_t *k = v[i];
            snprintf(rq, sizeof rq, "%lld", (long long)k->daily_requests);
            printf("%-71s  %-16s %-16s %10s %10s %8s %s\n", k->hash, k->group,
                   strcmp(k->account, k->hash) == 0 ? "(own)" : k->account,
                   s_pd(k->limit_pd, b1, 48), s_pd(k->daily_pd, b2, 48),
                   k->daily_requests < 0 ? "none" : rq, k->revoked ? "revoked" : "active");
        }
    }
    free(v);
    hpp_apikeys_destroy(&keys);
    return S_OK;
}

/* The engine ------------------------------------------------------------------ */

/* Sends `req` once (a topup must not be resent: it would be counted twice)
 * and prints the reply. */
static int s_ask(const s_args_t *a, proto_request_t *req, void (*print)(json_t *reply))
{
    long timeout = S_DEFAULT_TIMEOUT_MS;
    if (a->timeout) {
        char *end;
        errno = 0;
        timeout = strtol(a->timeout, &end, 10);
        if (errno || *end || end == a->timeout || timeout < 1 || timeout > 600000) {
            return s_fail(S_USAGE, "--timeout-ms: expected milliseconds from 1 to 600000");
        }
    }
    if (!a->server_key != !a->secret) {
        return s_fail(S_USAGE, "--curve-server-key and --curve-secret go together");
    }
    const char *ep = a->engine ? a->engine : S_DEFAULT_ENGINE;
    hpp_client_opts_t o;
    hpp_client_opts_init(&o);
    o.endpoints = &ep;
    o.nendpoints = 1;
    o.curve_server_key = a->server_key;
    o.curve_secret_key = a->secret;
    o.resend_ms = 0;
    char err[512];
    hpp_client_t *c = hpp_client_new_opts(&o, NULL, err, sizeof err);
    if (!c) {
        return s_fail(S_USAGE, "--engine %s: %s", ep, err);
    }
    hpp_reply_t rep = {0};
    int rc = hpp_client_call(c, req, &rep, (int)timeout);
    int status = S_OK;
    if (rc == HPP_ERR_TIMEOUT) {
        status = s_fail(S_UNREACHABLE, "%s: no answer in %ld ms (is hpp-engine running there%s?)",
                        ep, timeout, a->secret ? ", and does it allow this CURVE key" : "");
    } else if (rc == HPP_ERR_ENGINE) {
        status = s_fail(S_REFUSED, "the engine refused: %s", hpp_client_errstr(c));
    } else if (rc != HPP_OK) {
        status = s_fail(S_UNREACHABLE, "%s: %s", ep, hpp_client_errstr(c));
    } else {
        proto_buf_t out;
        proto_error_t perr = {0};
        json_t *j = NULL;
        if (proto_buf_init(&out, 4096) != 0) {
            snprintf(perr.msg, sizeof perr.msg, "out of memory");
        }
        if (!out.data || proto_to_json(rep.data, rep.len, &out, &perr) != PROTO_OK ||
            !(j = json_loadb((const char *)out.data, out.len, 0, NULL))) {
            status = s_fail(S_REFUSED, "the engine's reply does not read: %s", perr.msg);
        } else if (a->json) {
            fwrite(out.data, 1, out.len, stdout);
            fputc('\n', stdout);
        } else {
            print(j);
        }
        json_decref(j);
        proto_buf_destroy(&out);
    }
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    return status;
}

/* A `*_pd` member as exact USD text ("none" for nil); NULL if absent. */
static const char *s_money(json_t *o, const char *name, char *buf, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "%s_pd", name);
    json_t *v = json_object_get(o, key);
    if (json_is_null(v)) {
        return "none";
    }
    if (!json_is_integer(v)) {
        return NULL;
    }
    hpp_pusd_t pd = json_integer_value(v);
    if (pd < 0) {
        buf[0] = '-';
        hpp_pusd_format(-pd, false, buf + 1, n - 1);
    } else {
        hpp_pusd_format(pd, false, buf, n);
    }
    return buf;
}

static void s_print_balance(json_t *j)
{
    char b[48];
    const char *bal = s_money(j, "balance", b, sizeof b);
    printf("%s balance %s USD\n", json_string_value(json_object_get(j, "account")),
           bal ? bal : "?");
}

/* Every member of a key reply, one a line, amounts exact. */
static void s_print_key(json_t *j)
{
    const char *name;
    json_t *v;
    json_object_foreach(j, name, v)
    {
        size_t n = strlen(name);
        char b[48];
        if (!strcmp(name, "v") || !strcmp(name, "id") || !strcmp(name, "ok") ||
            (n > 3 && !strcmp(name + n - 3, "_pd"))) {
            continue;
        }
        if (n > 4 && !strcmp(name + n - 4, "_usd")) {
            char base[64];
            snprintf(base, sizeof base, "%.*s", (int)(n - 4), name);
            const char *m = s_money(j, base, b, sizeof b);
            printf("%-20s %s\n", name, m ? m : "?");
        } else if (json_is_string(v)) {
            printf("%-20s %s\n", name, json_string_value(v));
        } else if (json_is_integer(v)) {
            printf("%-20s %lld\n", name, (long long)json_integer_value(v));
        }
    }
}

static const char *s_filter_account; /* usage --account: the one account to print */

static void s_print_accounts(json_t *j)
{
    printf("%-40s %14s %14s %14s\n", "account", "balance_usd", "reserved_usd", "spent_usd");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "accounts"), i, a)
    {
        const char *name = json_string_value(json_object_get(a, "account"));
        if (!name || (s_filter_account && strcmp(name, s_filter_account) != 0)) {
            continue;
        }
        char b1[48], b2[48], b3[48];
        const char *bal = s_money(a, "balance", b1, 48), *res = s_money(a, "reserved", b2, 48),
                   *sp = s_money(a, "spent", b3, 48);
        printf("%-40s %14s %14s %14s\n", name, bal ? bal : "?", res ? res : "?", sp ? sp : "?");
    }
}

/* --usd X as exact picodollars; `positive` for a topup. */
static int s_amount(const s_args_t *a, bool positive, int64_t *pd)
{
    if (!a->account || !a->usd) {
        return s_fail(S_USAGE, "--account and --usd are required");
    }
    if (!hpp_apikeys_account_ok(a->account, strlen(a->account))) {
        return s_fail(S_USAGE, "--account: expected 1 to 71 characters from [A-Za-z0-9_.:/@-]");
    }
    const char *u = a->usd;
    bool neg = !positive && u[0] == '-';
    if (hpp_apikeys_parse_pd(u + neg, strlen(u + neg), pd) != 0 || (positive && *pd == 0)) {
        return s_fail(S_USAGE, "--usd: expected a plain decimal amount of USD %s1000000",
                      positive ? "above 0 up to " : "from -1000000 to ");
    }
    *pd = neg ? -*pd : *pd;
    return 0;
}

static int s_money_op(const s_args_t *a, proto_ledger_action_t action)
{
    int64_t pd;
    int rc = s_amount(a, action == PROTO_LEDGER_TOPUP, &pd);
    if (rc) {
        return rc;
    }
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_LEDGER);
    req.ledger.action = action;
    req.ledger.account = (hpp_str_t){.ptr = a->account, .len = (uint32_t)strlen(a->account)};
    req.ledger.has_amount = true;
    req.ledger.amount_pd = pd;
    return s_ask(a, &req, s_print_balance);
}

static int s_balance_set(const s_args_t *a)
{
    return s_money_op(a, PROTO_LEDGER_SET_BALANCE);
}

static int s_topup(const s_args_t *a)
{
    return s_money_op(a, PROTO_LEDGER_TOPUP);
}

static int s_usage(const s_args_t *a)
{
    if (a->key && a->account) {
        return s_fail(S_USAGE, "usage: --key or --account, not both");
    }
    proto_request_t req;
    if (a->key) {
        if (!hpp_apikeys_hash_ok(a->key, strlen(a->key))) {
            return s_fail(S_USAGE, "--key: expected sha256:<64 lowercase hex digits> (keys list "
                                   "shows them)");
        }
        proto_request_init(&req, PROTO_OP_LEDGER);
        req.ledger.action = PROTO_LEDGER_KEY;
        req.features.key = (hpp_str_t){.ptr = a->key, .len = (uint32_t)strlen(a->key)};
        return s_ask(a, &req, s_print_key);
    }
    proto_request_init(&req, PROTO_OP_LEDGER);
    req.ledger.action = PROTO_LEDGER_ACCOUNTS;
    s_filter_account = a->account;
    return s_ask(a, &req, s_print_accounts);
}

/* Main ------------------------------------------------------------------------ */

static bool s_is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

int main(int argc, char **argv)
{
    if (argc < 2 || s_is_help(argv[1])) {
        s_help_top(argc < 2 ? stderr : stdout);
        return argc < 2 ? S_USAGE : S_OK;
    }
    if (sodium_init() < 0) {
        return s_fail(S_REFUSED, "libsodium cannot start");
    }
    /* The command: one word, or two for keys and balance. */
    const s_cmd_t *cmd = NULL;
    int i = 1;
    for (size_t c = 0; c < S_NCMDS && !cmd; c++) {
        const char *sp = strchr(s_cmds[c].name, ' ');
        if (!sp && !strcmp(argv[1], s_cmds[c].name)) {
            cmd = &s_cmds[c];
            i = 2;
        } else if (sp && strlen(argv[1]) == (size_t)(sp - s_cmds[c].name) &&
                   !strncmp(argv[1], s_cmds[c].name, (size_t)(sp - s_cmds[c].name)) && argc > 2 &&
                   !strcmp(argv[2], sp + 1)) {
            cmd = &s_cmds[c];
            i = 3;
        }
    }
    if (!cmd) {
        bool group = !strcmp(argv[1], "keys") || !strcmp(argv[1], "balance");
        if (group && (argc < 3 || s_is_help(argv[2]))) {
            s_help_top(argc < 3 ? stderr : stdout);
            return argc < 3 ? S_USAGE : S_OK;
        }
        s_fail(S_USAGE, "unknown command '%s%s%s' (hpp-ledger --help lists them)", argv[1],
               group ? " " : "", group ? argv[2] : "");
        return S_USAGE;
    }
    s_args_t a = {0};
    for (; i < argc; i++) {
        if (s_is_help(argv[i])) {
            s_help_cmd(stdout, cmd);
            return S_OK;
        }
        size_t o = 0;
        while (o < S_NOPTS && strcmp(argv[i], s_opts[o].flag) != 0) {
            o++;
        }
        if (o == S_NOPTS || !s_takes(cmd, argv[i])) {
            s_fail(S_USAGE, "%s: unknown option '%s' (hpp-ledger %s --help lists them)", cmd->name,
                   argv[i], cmd->name);
            return S_USAGE;
        }
        char *field = (char *)&a + s_opts[o].off;
        if (!s_opts[o].arg) {
            *(bool *)(void *)field = true;
            continue;
        }
        if (i + 1 >= argc) {
            return s_fail(S_USAGE, "%s needs a value (%s)", argv[i], s_opts[o].arg);
        }
        const char **slot = (const char **)(void *)field;
        if (*slot) {
            return s_fail(S_USAGE, "%s given twice", argv[i]);
        }
        *slot = argv[++i];
    }
    return cmd->fn(&a);
}
