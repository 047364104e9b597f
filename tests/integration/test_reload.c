/* test_reload.c - no half-written policy ever serves: the reload gate and the
 * settle interval of --watch, on the real hpp-engine over ZeroMQ.
 *
 * Each test starts build/hpp-engine on tcp://127.0.0.1:0 with a copy of the
 * bundled policy, waits for the readiness line and a ping, then changes the
 * copy the way a careless deploy would (in place, cut short, slowly) and
 * checks what serves. Covered: a policy cut at a line boundary and written in
 * place is refused on reload (it lost the catch-all rule) and every route
 * keeps its answer; a slow in-place write under --watch fails no route and
 * is loaded once, whole; --reload-cases refuses a policy that breaks a case
 * and names the case; a policy that leaves a hint without a rule is refused;
 * a rejection quotes its first error, not a warning before it.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "hpp_client.h"

#define S_READY "hpp-engine: ready on "
#define S_TIMEOUT 5000
#define S_TRUNC_LINES 57 /* default.policy up to the end of its first routing rule */

typedef struct {
    hh_proc_t proc;     /* the process */
    char endpoint[256]; /* where it listens */
} s_engine_t;

/* Starts the engine with `extra` flags and waits for readiness and a ping. */
static void s_start(s_engine_t *e, const char *const *extra)
{
    char *argv[32];
    int n = 0;
    argv[n++] = hh_bin("hpp-engine");
    argv[n++] = "--listen";
    argv[n++] = "tcp://127.0.0.1:0";
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (int i = 0; extra && extra[i] && n < 30; i++) {
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    cr_assert_eq(hh_spawn(&e->proc, argv, "engine-reload"), 0);
    char line[512];
    cr_assert_eq(hh_wait_line(&e->proc, S_READY, 15000, line, sizeof line), 0,
                 "engine did not become ready (log: %s)", e->proc.log);
    snprintf(e->endpoint, sizeof e->endpoint, "%s", strstr(line, S_READY) + strlen(S_READY));
    char err[256];
    hpp_client_t *c = hpp_client_new(e->endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_PING, &rep, S_TIMEOUT), HPP_OK, "ping: %s",
                 hpp_client_errstr(c));
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
}

static void s_stop(s_engine_t *e)
{
    int rc = hh_stop(&e->proc);
    cr_assert_eq(rc, 0, "engine exited %d (log: %s)", rc, e->proc.log);
}

static hpp_client_t *s_client(const s_engine_t *e)
{
    char err[256];
    hpp_client_t *c = hpp_client_new(e->endpoint, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

/* A route with one hint. */
static int s_route_hint(hpp_client_t *c, const char *hint, hpp_reply_t *rep)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 500;
    f.hints[0] = (hpp_str_t){hint, (uint32_t)strlen(hint)};
    f.nhints = 1;
    return hpp_client_route(c, &f, rep, S_TIMEOUT);
}

/* The model a one-hint route resolves to; fails the test on an error. */
static const char *s_model(hpp_client_t *c, const char *hint, char *buf, size_t n)
{
    hpp_reply_t rep = {0};
    int rc = s_route_hint(c, hint, &rep);
    cr_assert_eq(rc, HPP_OK, "route %s: %s %.*s", hint, hpp_strerror(rc), (int)rep.r.message.len,
                 rep.r.message.ptr ? rep.r.message.ptr : "");
    snprintf(buf, n, "%.*s", (int)rep.r.model.len, rep.r.model.ptr);
    hpp_reply_close(&rep);
    return buf;
}

static json_t *s_as_json(const void *data, size_t len)
{
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 4096), 0);
    proto_error_t perr;
    cr_assert_eq(proto_to_json(data, len, &b, &perr), PROTO_OK, "%s", perr.msg);
    json_error_t jerr;
    json_t *j = json_loads(b.data, 0, &jerr);
    cr_assert_not_null(j, "%s in %s", jerr.text, b.data);
    proto_buf_destroy(&b);
    return j;
}

static json_t *s_stats(hpp_client_t *c)
{
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_STATS, &rep, S_TIMEOUT), HPP_OK, "%s",
                 hpp_client_errstr(c));
    json_t *j = s_as_json(rep.data, rep.len);
    hpp_reply_close(&rep);
    return j;
}

static long long s_jint(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

/* Sends a reload that must be refused; returns the reply as JSON and
 * checks the reply's common fields: bad_request, `version` still serving. */
static json_t *s_reload_refused(hpp_client_t *c, long long version)
{
    hpp_reply_t rep = {0};
    int rc = hpp_client_op(c, PROTO_OP_RELOAD, &rep, S_TIMEOUT);
    cr_assert_eq(rc, HPP_ERR_ENGINE, "the reload was not refused: %s", hpp_strerror(rc));
    cr_assert_eq(rep.r.status, HPP_E_BAD_REQUEST);
    cr_assert_eq((long long)rep.r.policy_version, version);
    json_t *j = s_as_json(rep.data, rep.len);
    hpp_reply_close(&rep);
    return j;
}

static const char *s_error_message(json_t *reply)
{
    const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    cr_assert_not_null(m);
    return m;
}

/* The stats after a refused reload: `version` serves, one failure, its
 * diagnostics in last_reload with an error first. */
static void s_check_refused_stats(hpp_client_t *c, long long version, long long failed)
{
    json_t *j = s_stats(c);
    cr_assert_eq(s_jint(j, "policy_version"), version);
    cr_assert_eq(s_jint(j, "reloads_failed"), failed);
    json_t *last = json_object_get(j, "last_reload");
    cr_assert(json_is_false(json_object_get(last, "ok")));
    const char *d0 = json_string_value(json_array_get(json_object_get(last, "diagnostics"), 0));
    cr_assert(d0 && strstr(d0, ": error: "), "last_reload's first diagnostic: %s", d0);
    json_decref(j);
}

/* A temporary copy of the bundled policy. */
typedef struct {
    char dir[256];
    char policy[300];
    char *orig; /* the bundled text */
} s_files_t;

static void s_files(s_files_t *f, const char *name)
{
    cr_assert_eq(test_tmpdir_make(f->dir, sizeof f->dir, "test"), 0);
    snprintf(f->policy, sizeof f->policy, "%s/%s", f->dir, name);
    f->orig = hh_read_file("policies/default.policy", NULL);
    cr_assert_not_null(f->orig);
    cr_assert_eq(hh_write_file(f->policy, f->orig), 0);
}

static void s_files_free(s_files_t *f, const char *const *others)
{
    unlink(f->policy);
    for (int i = 0; others && others[i]; i++) {
        unlink(others[i]);
    }
    rmdir(f->dir);
    free(f->orig);
}

/* Replaces `from` by `to` once. */
static char *s_edit(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "policy lacks '%s'", from);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

/* The length of the first `lines` lines of `text`. */
static size_t s_lines_len(const char *text, int lines)
{
    const char *p = text;
    for (int i = 0; i < lines; i++) {
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
    return (size_t)(p - text);
}

/* Writes `text` into `path` in place (same inode, truncated first): the
 * first `head` bytes, then, `pause_ms` later, the rest; with pause_ms < 0
 * only the head, as a writer that died would leave it. */
static void s_write_in_place(const char *path, const char *text, size_t head, int pause_ms)
{
    FILE *f = fopen(path, "r+");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 0), 0);
    cr_assert_eq(fwrite(text, 1, head, f), head);
    cr_assert_eq(fflush(f), 0);
    if (pause_ms > 0) {
        hh_sleep_ms(pause_ms); /* the slow writer being simulated, not a wait */
    }
    size_t rest = pause_ms < 0 ? 0 : strlen(text) - head;
    cr_assert_eq(fwrite(text + head, 1, rest, f), rest);
    cr_assert_eq(fclose(f), 0);
}

/* Concurrent chat and code routes, counting any that fails. */
typedef struct {
    const char *endpoint;
    atomic_bool *stop;
    atomic_long ok;
    atomic_long failed;
    char first_error[256];
} s_load_t;

static void *s_load_main(void *arg)
{
    s_load_t *l = arg;
    char err[256];
    hpp_client_t *c = hpp_client_new(l->endpoint, NULL, err, sizeof err);
    if (!c) {
        atomic_fetch_add(&l->failed, 1);
        return NULL;
    }
    for (long i = 0; !atomic_load(l->stop); i++) {
        hpp_reply_t rep = {0};
        int rc = s_route_hint(c, i % 2 ? "code" : "chat", &rep);
        if (rc == HPP_OK && rep.r.ok && rep.r.model.len > 0) {
            atomic_fetch_add(&l->ok, 1);
        } else if (atomic_fetch_add(&l->failed, 1) == 0) {
            snprintf(l->first_error, sizeof l->first_error, "%s: %.*s", hpp_strerror(rc),
                     (int)rep.r.message.len, rep.r.message.ptr ? rep.r.message.ptr : "");
        }
        hpp_reply_close(&rep);
    }
    hpp_client_destroy(&c);
    return NULL;
}

/* Waits (bounded) until the load has answered `n` more routes. */
static void s_load_progress(s_load_t *l, long n)
{
    long want = atomic_load(&l->ok) + n;
    long long deadline = hh_now_ms() + S_TIMEOUT;
    while (atomic_load(&l->ok) < want && hh_now_ms() < deadline) {
        hh_sleep_ms(5);
    }
    cr_assert_geq(atomic_load(&l->ok), want, "the load made no progress");
}

/* Tests ------------------------------------------------------------------------ */

Test(reload, truncated_policy_written_in_place_is_refused_and_routes_keep_working)
{
    s_files_t f;
    s_files(&f, "cut.policy");
    const char *flags[] = {"--policy", f.policy, NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    char chat[128], code[128], now[128];
    s_model(c, "chat", chat, sizeof chat);
    s_model(c, "code", code, sizeof code);

    /* The first 57 lines compile: settings, tiers, hints and the solidity
     * rule, but no rule for anything else. */
    s_write_in_place(f.policy, f.orig, s_lines_len(f.orig, S_TRUNC_LINES), -1);
    json_t *j = s_reload_refused(c, 1);
    const char *msg = s_error_message(j);
    cr_assert(strstr(msg, "cut.policy:") && strstr(msg, ": error: ") &&
                  strstr(msg, "no rule matches every request"),
              "%s", msg);
    json_decref(j);
    s_check_refused_stats(c, 1, 1);
    cr_assert_gt(hh_count_lines(&e.proc, "reload rejected"), 0, "the rejection is logged");

    /* Version 1 answers as before. */
    cr_assert_str_eq(s_model(c, "chat", now, sizeof now), chat);
    cr_assert_str_eq(s_model(c, "code", now, sizeof now), code);

    /* SIGHUP takes the same gate. */
    cr_assert_eq(hh_signal(&e.proc, SIGHUP), 0);
    long long deadline = hh_now_ms() + S_TIMEOUT;
    long long failed = 1;
    while (failed < 2 && hh_now_ms() < deadline) {
        j = s_stats(c);
        failed = s_jint(j, "reloads_failed");
        json_decref(j);
    }
    s_check_refused_stats(c, 1, 2);
    cr_assert_str_eq(s_model(c, "code", now, sizeof now), code);

    hpp_client_destroy(&c);
    s_stop(&e);
    s_files_free(&f, NULL);
}

Test(reload, slow_in_place_write_under_watch_fails_no_route_and_loads_once, .timeout = 60)
{
    s_files_t f;
    s_files(&f, "slow.policy");
    /* The settle interval is left at its default. */
    const char *flags[] = {"--policy", f.policy, "--watch", "--watch-ms", "200", NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    char model[128];
    cr_assert_str_eq(s_model(c, "solidity", model, sizeof model), "ollama/solidity-master:2");

    atomic_bool stop = false;
    s_load_t load = {.endpoint = e.endpoint, .stop = &stop};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_load_main, &load), 0);
    s_load_progress(&load, 20);

    /* The new version, written in place: the first 57 lines, a pause of a
     * second (five looks of --watch), then the rest. */
    char *next =
        s_edit(f.orig, "prefer \"ollama/solidity-master:2\"", "prefer \"ollama/gpt-oss:120b\"");
    s_write_in_place(f.policy, next, s_lines_len(next, S_TRUNC_LINES), 1000);

    long long deadline = hh_now_ms() + 15000;
    long long version = 1;
    json_t *j = NULL;
    while (hh_now_ms() < deadline) {
        j = s_stats(c);
        version = s_jint(j, "policy_version");
        if (version >= 2) {
            break;
        }
        json_decref(j);
        j = NULL;
        hh_sleep_ms(20);
    }
    cr_assert_not_null(j, "the new version was not loaded (log: %s)", e.proc.log);
    cr_assert_eq(version, 2);
    cr_assert_eq(s_jint(j, "reloads_ok"), 1, "loaded more than once");
    cr_assert_eq(s_jint(j, "reloads_failed"), 0, "the half-written file was read");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "last_reload"), "trigger")), "watch");
    json_decref(j);
    cr_assert_str_eq(s_model(c, "solidity", model, sizeof model), "ollama/gpt-oss:120b");
    s_load_progress(&load, 20);

    atomic_store(&stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&load.failed), 0, "%ld routes failed (first: %s)",
                 atomic_load(&load.failed), load.first_error);
    cr_assert_eq(hh_count_lines(&e.proc, "watch: policy version"), 1);
    hpp_client_destroy(&c);
    s_stop(&e);
    free(next);
    s_files_free(&f, NULL);
}

Test(reload, reload_cases_refuse_a_policy_that_breaks_a_case_and_name_it)
{
    s_files_t f;
    s_files(&f, "cased.policy");
    char cases[300];
    snprintf(cases, sizeof cases, "%s/default.cases", f.dir);
    char *ctext = hh_read_file("policies/cases/default.cases", NULL);
    cr_assert_not_null(ctext);
    cr_assert_eq(hh_write_file(cases, ctext), 0);
    const char *flags[] = {"--policy", f.policy, "--reload-cases", cases, NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);

    /* Compiles, keeps every rule, but solidity goes elsewhere. */
    char *next =
        s_edit(f.orig, "prefer \"ollama/solidity-master:2\"", "prefer \"ollama/gpt-oss:120b\"");
    cr_assert_eq(hh_write_file(f.policy, next), 0);
    json_t *j = s_reload_refused(c, 1);
    const char *msg = s_error_message(j);
    cr_assert(strstr(msg, "default.cases:") &&
                  strstr(msg, "case 'solidity-text' fails: model: expected "
                              "ollama/solidity-master:2, got ollama/gpt-oss:120b"),
              "%s", msg);
    json_decref(j);
    s_check_refused_stats(c, 1, 1);
    char model[128];
    cr_assert_str_eq(s_model(c, "solidity", model, sizeof model), "ollama/solidity-master:2");

    /* A change the cases accept goes through. */
    char *fine = s_edit(f.orig, "# Everything else.", "# Everything else, at mid price.");
    cr_assert_eq(hh_write_file(f.policy, fine), 0);
    hpp_reply_t rep = {0};
    cr_assert_eq(hpp_client_op(c, PROTO_OP_RELOAD, &rep, S_TIMEOUT), HPP_OK, "%.*s",
                 (int)rep.r.message.len, rep.r.message.ptr ? rep.r.message.ptr : "");
    cr_assert_eq(rep.r.policy_version, 2);
    hpp_reply_close(&rep);

    hpp_client_destroy(&c);
    s_stop(&e);
    free(next);
    free(fine);
    free(ctext);
    const char *others[] = {cases, NULL};
    s_files_free(&f, others);
}

Test(reload, a_policy_that_leaves_a_hint_without_a_rule_is_refused)
{
    /* Serving: no catch-all (allowed, with a warning), but code is routed. */
    s_files_t f;
    s_files(&f, "nocatch.policy");
    char *serving = s_edit(f.orig, "route default {\n    tier mid\n}", "");
    cr_assert_eq(hh_write_file(f.policy, serving), 0);
    const char *flags[] = {"--policy", f.policy, NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);
    char code[128], now[128];
    s_model(c, "code", code, sizeof code);

    /* The code rule's condition no longer takes the code hint. */
    char *next = s_edit(serving, "route code when hints has \"code\" or tools",
                        "route code when hints has \"rust\" or tools");
    cr_assert_eq(hh_write_file(f.policy, next), 0);
    json_t *j = s_reload_refused(c, 1);
    const char *msg = s_error_message(j);
    cr_assert(strstr(msg, "nocatch.policy: error: requests with hint 'code' matched rule 'code'"),
              "%s", msg);
    json_decref(j);
    s_check_refused_stats(c, 1, 1);
    cr_assert_str_eq(s_model(c, "code", now, sizeof now), code);

    hpp_client_destroy(&c);
    s_stop(&e);
    free(serving);
    free(next);
    s_files_free(&f, NULL);
}

Test(reload, a_rejection_quotes_its_first_error_not_a_warning)
{
    s_files_t f;
    s_files(&f, "warn.policy");
    const char *flags[] = {"--policy", f.policy, NULL};
    s_engine_t e;
    s_start(&e, flags);
    hpp_client_t *c = s_client(&e);

    /* A warning (an unreachable rule) at line 58, an error at line 99. */
    char *w = s_edit(f.orig, "# Images need a vision model",
                     "route solidity2 when hints has \"solidity\" {\n    tier free\n}\n\n"
                     "# Images need a vision model");
    char *bad =
        s_edit(w, "route default {\n    tier mid\n}", "route default {\n    tier middle\n}");
    cr_assert_eq(hh_write_file(f.policy, bad), 0);
    json_t *j = s_reload_refused(c, 1);
    const char *msg = s_error_message(j);
    cr_assert(strstr(msg, ": error: unknown tier 'middle'"), "%s", msg);
    cr_assert_null(strstr(msg, "warning"), "%s", msg);
    /* Both diagnostics are still reported, the error first. */
    json_t *diags = json_object_get(j, "diagnostics");
    cr_assert_eq(json_array_size(diags), 2);
    const char *d1 = json_string_value(json_array_get(diags, 1));
    cr_assert(d1 && strstr(d1, ": warning: rule 'solidity2' is unreachable"), "%s", d1);
    json_decref(j);
    /* So does the log line of the rejection. */
    char *log = hh_read_file(e.proc.log, NULL);
    cr_assert_not_null(log);
    const char *at = strstr(log, "reload rejected");
    cr_assert_not_null(at);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(at, "\n"), at);
    cr_assert(strstr(line, "keeps serving: ") && strstr(line, ": error: unknown tier 'middle'"),
              "%s", line);
    free(log);

    hpp_client_destroy(&c);
    s_stop(&e);
    free(w);
    free(bad);
    s_files_free(&f, NULL);
}
