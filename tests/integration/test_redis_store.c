/* test_redis_store.c - the ledger's Redis state (engine/eng_redis.c) against
 * a real redis-server.
 *
 * Each test starts its own redis-server on a unix socket in a private
 * temporary directory (no TCP port, no persistence), waits until it answers
 * PING, and stops it by PID at the end. Covered: reserve, settle (once),
 * release and expiry; each check and its order, with nothing reserved when
 * one fails; money above 2^53 picodollars kept exact; the scripts reloaded
 * after SCRIPT FLUSH; a Redis that goes away answers UNAVAILABLE and serves
 * again when it is back; wrongly typed data answered as a located error; the
 * password file (mode, wrong and right password, never in a message); bad
 * addresses; and two stores (two engines) under concurrent load spending an
 * account down to zero: the final balance is exactly the start less the sum
 * of the settled charges, and the overspend stays below one reservation.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "eng_redis.h"
#include "eng_store.h"
#include "harness.h"

#define PD_PER_USD INT64_C(1000000000000)
#define S_ACCT "acct-1"
#define S_KEY "sha256:0000000000000000000000000000000000000000000000000000000000000001"

typedef struct {
    hh_proc_t proc;
    char dir[256];
    char sock[320];
    char spec[340];
} s_redis_t;

static s_redis_t R;

static bool s_ping(const char *sock, const char *password)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    bool up = false;
    if (c && !c->err) {
        redisReply *r = password ? redisCommand(c, "AUTH %s", password) : NULL;
        if (r) {
            freeReplyObject(r);
        }
        r = redisCommand(c, "PING");
        up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r) {
            freeReplyObject(r);
        }
    }
    if (c) {
        redisFree(c);
    }
    return up;
}

/* redis-server's path, found in $PATH (the harness execs a path). */
static char *s_redis_server(void)
{
    static char found[512];
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", path && *path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/redis-server", d);
        if (access(found, X_OK) == 0) {
            return found;
        }
    }
    cr_skip_test("redis-server is not installed ('make deps' installs redis-server)");
    return NULL;
}

/* Starts redis-server on R.sock with extra args (NULL-terminated) and waits
 * for PONG (polling, at most 10 s). */
static void s_redis_start(const char *password)
{
    char *argv[24];
    int n = 0;
    argv[n++] = s_redis_server();
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--unixsocket";
    argv[n++] = R.sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--dir";
    argv[n++] = R.dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    if (password) {
        argv[n++] = "--requirepass";
        argv[n++] = (char *)password;
    }
    argv[n] = NULL;
    cr_assert_eq(hh_spawn(&R.proc, argv, "redis"), 0, "redis-server cannot start");
    long long deadline = hh_now_ms() + 10000;
    while (!s_ping(R.sock, password)) {
        cr_assert(hh_alive(&R.proc), "redis-server exited (log: %s)", R.proc.log);
        cr_assert(hh_now_ms() < deadline, "redis-server never answered PING (log: %s)", R.proc.log);
        hh_sleep_ms(10);
    }
}

static void s_setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as hpp-engine does: hiredis writes to sockets */
    cr_assert_eq(test_tmpdir_make(R.dir, sizeof R.dir, "test"), 0);
    snprintf(R.sock, sizeof R.sock, "%s/redis.sock", R.dir);
    snprintf(R.spec, sizeof R.spec, "redis+unix:%s", R.sock);
}

static void s_setup_start(void)
{
    s_setup();
    s_redis_start(NULL);
}

static void s_teardown(void)
{
    hh_stop(&R.proc);
    (void)test_tmpdir_remove(R.dir); /* empty when the setup stopped before it */
}

static eng_redis_t *s_open(const char *spec)
{
    char err[512] = "";
    eng_redis_t *s = eng_redis_new(spec ? spec : R.spec, NULL, err, sizeof err);
    cr_assert_not_null(s, "eng_redis_new: %s", err);
    return s;
}

static const eng_redis_limits_t NO_LIMITS = {-1, -1, -1, -1, -1};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static eng_redis_rc_t s_reserve(eng_redis_t *s, const eng_redis_limits_t *lim, uint64_t dec,
                                int64_t amount, bool free_model, eng_redis_state_t *st)
{
    char err[512] = "";
    eng_redis_rc_t rc = eng_redis_reserve(s, S_ACCT, S_KEY, lim, dec, amount, free_model, 20000,
                                          s_now_ms() + 300000, st, err, sizeof err);
    cr_assert(rc != ENG_REDIS_ERROR && rc != ENG_REDIS_UNAVAILABLE, "reserve: %s", err);
    return rc;
}

static void s_adjust(eng_redis_t *s, int64_t v, bool absolute, int64_t want)
{
    char err[512] = "";
    int64_t b = -1;
    cr_assert_eq(eng_redis_adjust(s, S_ACCT, v, absolute, &b, err, sizeof err), ENG_REDIS_OK,
                 "adjust: %s", err);
    cr_assert_eq(b, want, "balance %" PRId64 ", expected %" PRId64, b, want);
}

static eng_redis_state_t s_read(eng_redis_t *s)
{
    char err[512] = "";
    eng_redis_state_t st;
    cr_assert_eq(eng_redis_read(s, S_ACCT, S_KEY, 20000, &st, err, sizeof err), ENG_REDIS_OK,
                 "read: %s", err);
    return st;
}

static int64_t s_held(eng_redis_t *s)
{
    char err[512] = "";
    int64_t n = -1;
    cr_assert_eq(eng_redis_held(s, &n, err, sizeof err), ENG_REDIS_OK, "held: %s", err);
    return n;
}

TestSuite(redis_store, .init = s_setup_start, .fini = s_teardown, .timeout = 60);

Test(redis_store, reserve_then_settle_once_releases_the_difference)
{
    eng_redis_t *s = s_open(NULL);
    s_adjust(s, 10 * PD_PER_USD, false, 10 * PD_PER_USD);
    eng_redis_state_t st;
    cr_assert_eq(s_reserve(s, &NO_LIMITS, 7, PD_PER_USD, false, &st), ENG_REDIS_OK);
    cr_assert_eq(st.balance_pd, 10 * PD_PER_USD);
    cr_assert_eq(st.acct_reserved_pd, PD_PER_USD);
    cr_assert_eq(st.reserved_pd, PD_PER_USD);
    cr_assert_eq(st.day_reserved_pd, PD_PER_USD);
    cr_assert_eq(st.requests, 0, "the key's requests count settled ones");
    cr_assert_eq(st.day_requests, 1, "the day's count reserved ones");
    cr_assert_eq(s_held(s), 1);

    char err[512] = "";
    bool settled = false;
    cr_assert_eq(eng_redis_settle(s, 7, 400000000000, 120, 30, &settled, err, sizeof err),
                 ENG_REDIS_OK, "%s", err);
    cr_assert(settled);
    st = s_read(s);
    cr_assert_eq(st.balance_pd, 9600000000000);
    cr_assert_eq(st.acct_reserved_pd, 0);
    cr_assert_eq(st.spent_pd, 400000000000);
    cr_assert_eq(st.reserved_pd, 0);
    cr_assert_eq(st.day_spent_pd, 400000000000);
    cr_assert_eq(st.day_reserved_pd, 0);
    cr_assert_eq(st.prompt_tokens, 120);
    cr_assert_eq(st.completion_tokens, 30);
    cr_assert_eq(st.requests, 1);
    cr_assert_eq(s_held(s), 0);

    /* A second report of the same decision changes nothing. */
    cr_assert_eq(eng_redis_settle(s, 7, 900000000000, 5, 5, &settled, err, sizeof err),
                 ENG_REDIS_OK, "%s", err);
    cr_assert(!settled);
    eng_redis_state_t again = s_read(s);
    cr_assert_eq(memcmp(&again, &st, sizeof st), 0, "a second settle changed the state");

    /* A decision reserved twice is refused, and reserved once. */
    cr_assert_eq(s_reserve(s, &NO_LIMITS, 8, PD_PER_USD, false, &st), ENG_REDIS_OK);
    cr_assert_eq(s_reserve(s, &NO_LIMITS, 8, PD_PER_USD, false, &st), ENG_REDIS_DUPLICATE);
    cr_assert_eq(st.acct_reserved_pd, PD_PER_USD);
    cr_assert_eq(st.day_requests, 2);

    /* A cost of -1 charges what was reserved (an answer with no cost). */
    cr_assert_eq(eng_redis_settle(s, 8, -1, 0, 0, &settled, err, sizeof err), ENG_REDIS_OK, "%s",
                 err);
    cr_assert(settled);
    st = s_read(s);
    cr_assert_eq(st.spent_pd, 400000000000 + PD_PER_USD);
    cr_assert_eq(st.balance_pd, 9600000000000 - PD_PER_USD);
    cr_assert_eq(st.acct_reserved_pd, 0);
    cr_assert_eq(eng_redis_settle(s, 9, -2, 0, 0, &settled, err, sizeof err), ENG_REDIS_ERROR);
    eng_redis_destroy(&s);
}

Test(redis_store, release_and_expiry_free_the_reservation_without_a_charge)
{
    eng_redis_t *s = s_open(NULL);
    s_adjust(s, 5 * PD_PER_USD, false, 5 * PD_PER_USD);
    char err[512] = "";
    eng_redis_state_t st;
    int64_t now = s_now_ms();
    cr_assert_eq(eng_redis_reserve(s, S_ACCT, S_KEY, &NO_LIMITS, 1, PD_PER_USD, false, 20000,
                                   now + 1000, &st, err, sizeof err),
                 ENG_REDIS_OK, "%s", err);
    cr_assert_eq(eng_redis_reserve(s, S_ACCT, S_KEY, &NO_LIMITS, 2, PD_PER_USD, false, 20000,
                                   now + 5000, &st, err, sizeof err),
                 ENG_REDIS_OK, "%s", err);
    cr_assert_eq(eng_redis_reserve(s, S_ACCT, S_KEY, &NO_LIMITS, 3, PD_PER_USD, false, 20000,
                                   now + 9000, &st, err, sizeof err),
                 ENG_REDIS_OK, "%s", err);
    cr_assert_eq(st.acct_reserved_pd, 3 * PD_PER_USD);

    bool released = false;
    cr_assert_eq(eng_redis_release(s, 2, &released, err, sizeof err), ENG_REDIS_OK, "%s", err);
    cr_assert(released);
    cr_assert_eq(eng_redis_release(s, 2, &released, err, sizeof err), ENG_REDIS_OK, "%s", err);
    cr_assert(!released);

    /* The clock is the caller's: expiry at now + 1 s releases decision 1 only. */
    int64_t n = -1;
    cr_assert_eq(eng_redis_expire(s, now + 1000, &n, err, sizeof err), ENG_REDIS_OK, "%s", err);
    cr_assert_eq(n, 1);
    st = s_read(s);
    cr_assert_eq(st.acct_reserved_pd, PD_PER_USD);
    cr_assert_eq(st.balance_pd, 5 * PD_PER_USD);
    cr_assert_eq(st.spent_pd, 0);
    cr_assert_eq(st.requests, 0, "nothing settled");
    cr_assert_eq(st.day_requests, 3, "released requests stay counted in the day");
    cr_assert_eq(s_held(s), 1);

    /* A late report of an expired decision charges nothing. */
    bool settled = true;
    cr_assert_eq(eng_redis_settle(s, 1, PD_PER_USD, 1, 1, &settled, err, sizeof err), ENG_REDIS_OK);
    cr_assert(!settled);
    cr_assert_eq(s_read(s).balance_pd, 5 * PD_PER_USD);

    /* More than one batch expires in one call. */
    for (uint64_t d = 100; d < 100 + ENG_REDIS_EXPIRE_BATCH + 20; d++) {
        cr_assert_eq(eng_redis_reserve(s, S_ACCT, S_KEY, &NO_LIMITS, d, 1, false, 20000, now + 2000,
                                       NULL, err, sizeof err),
                     ENG_REDIS_OK, "%s", err);
    }
    cr_assert_eq(eng_redis_expire(s, now + 9000, &n, err, sizeof err), ENG_REDIS_OK, "%s", err);
    cr_assert_eq(n, ENG_REDIS_EXPIRE_BATCH + 20 + 1);
    cr_assert_eq(s_held(s), 0);
    st = s_read(s);
    cr_assert_eq(st.acct_reserved_pd, 0);
    cr_assert_eq(st.reserved_pd, 0);
    cr_assert_eq(st.day_reserved_pd, 0);
    eng_redis_destroy(&s);
}

Test(redis_store, each_check_in_order_and_nothing_reserved_on_a_refusal)
{
    eng_redis_t *s = s_open(NULL);
    eng_redis_state_t st;
    eng_redis_limits_t lim = {.limit_pd = 2 * PD_PER_USD,
                              .daily_pd = PD_PER_USD,
                              .daily_requests = 4,
                              .free_daily_requests = 2,
                              .free_daily_requests_funded = 3};
    char err[512] = "";
    /* No balance: insufficient_balance comes first, whatever else fails. */
    cr_assert_eq(s_reserve(s, &lim, 1, PD_PER_USD, false, &st), ENG_REDIS_INSUFFICIENT_BALANCE);
    cr_assert_eq(st.day_requests, 0);
    cr_assert_eq(st.acct_reserved_pd, 0);
    cr_assert_eq(s_held(s), 0);

    /* Funded: the free allowance is the funded one; unfunded it was 2. */
    s_adjust(s, 10 * PD_PER_USD, false, 10 * PD_PER_USD);
    /* The day's money: 0.6 then 0.6 passes (0.6 < 1.0), then 1.2 >= 1.0. */
    cr_assert_eq(s_reserve(s, &lim, 2, 600000000000, false, &st), ENG_REDIS_OK);
    cr_assert_eq(s_reserve(s, &lim, 3, 600000000000, false, &st), ENG_REDIS_OK);
    cr_assert_eq(s_reserve(s, &lim, 4, 1, false, &st), ENG_REDIS_DAILY_LIMIT);
    cr_assert_eq(st.day_requests, 2);
    cr_assert_eq(st.acct_reserved_pd, 1200000000000);
    /* Free models skip the money checks; the request count still applies. */
    cr_assert_eq(s_reserve(s, &lim, 5, 0, true, &st), ENG_REDIS_OK);
    cr_assert_eq(s_reserve(s, &lim, 6, 0, true, &st), ENG_REDIS_OK);
    cr_assert_eq(st.day_requests, 4);
    cr_assert_eq(st.day_free_requests, 2);
    /* daily_requests (4) reached: even a free model is refused. */
    cr_assert_eq(s_reserve(s, &lim, 7, 0, true, &st), ENG_REDIS_DAILY_LIMIT);

    /* The key's lifetime limit comes before the day's: settle 2 at 1.0 each. */
    bool settled;
    cr_assert_eq(eng_redis_settle(s, 2, PD_PER_USD, 0, 0, &settled, err, sizeof err), ENG_REDIS_OK);
    cr_assert_eq(eng_redis_settle(s, 3, PD_PER_USD, 0, 0, &settled, err, sizeof err), ENG_REDIS_OK);
    eng_redis_limits_t lim2 = lim;
    lim2.daily_requests = -1;
    cr_assert_eq(s_reserve(s, &lim2, 8, 1, false, &st), ENG_REDIS_KEY_LIMIT);
    cr_assert_eq(st.spent_pd, 2 * PD_PER_USD);
    lim2.limit_pd = -1;
    cr_assert_eq(s_reserve(s, &lim2, 9, 1, false, &st), ENG_REDIS_DAILY_LIMIT);
    /* Free allowance: funded 3, 2 used; one more, then refused. */
    cr_assert_eq(s_reserve(s, &lim2, 10, 0, true, &st), ENG_REDIS_OK);
    cr_assert_eq(s_reserve(s, &lim2, 11, 0, true, &st), ENG_REDIS_DAILY_LIMIT);
    cr_assert_eq(st.day_free_requests, 3);
    /* At a zero balance the unfunded allowance (2) applies: already used. */
    s_adjust(s, 0, true, 0);
    lim2.free_daily_requests_funded = 100;
    cr_assert_eq(s_reserve(s, &lim2, 12, 0, true, &st), ENG_REDIS_DAILY_LIMIT);
    cr_assert_eq(s_held(s), 3, "held: the free decisions 5, 6 and 10, nothing refused");
    eng_redis_destroy(&s);
}

Test(redis_store, money_above_2_pow_53_picodollars_stays_exact)
{
    eng_redis_t *s = s_open(NULL);
    /* $3,000,000.000000000001 and odd amounts: a double would round them. */
    const int64_t start = INT64_C(3000000000000000001);
    s_adjust(s, start, true, start);
    s_adjust(s, 7, false, start + 7);
    eng_redis_state_t st;
    const int64_t amt = INT64_C(900000000000000003); /* $900,000.000000000003 */
    cr_assert_eq(s_reserve(s, &NO_LIMITS, 1, amt, false, &st), ENG_REDIS_OK);
    cr_assert_eq(st.acct_reserved_pd, amt);
    char err[512] = "";
    bool settled;
    const int64_t cost = INT64_C(899999999999999999);
    cr_assert_eq(eng_redis_settle(s, 1, cost, 0, 0, &settled, err, sizeof err), ENG_REDIS_OK, "%s",
                 err);
    st = s_read(s);
    cr_assert_eq(st.balance_pd, start + 7 - cost, "balance %" PRId64, st.balance_pd);
    cr_assert_eq(st.spent_pd, cost);
    cr_assert_eq(st.acct_reserved_pd, 0);
    /* A limit one picodollar above the spend still admits; at it, refuses. */
    eng_redis_limits_t lim = NO_LIMITS;
    lim.limit_pd = cost + 1;
    cr_assert_eq(s_reserve(s, &lim, 2, 1, false, &st), ENG_REDIS_OK);
    lim.limit_pd = cost + 1;
    cr_assert_eq(s_reserve(s, &lim, 3, 1, false, &st), ENG_REDIS_KEY_LIMIT);
    /* Out of range amounts are refused before Redis is asked. */
    cr_assert_eq(eng_redis_adjust(s, S_ACCT, INT64_MAX, false, NULL, err, sizeof err),
                 ENG_REDIS_ERROR);
    cr_assert(strstr(err, "out of range"), "%s", err);
    eng_redis_destroy(&s);
}

static void s_redis_cmd(const char *cmd)
{
    redisContext *c = redisConnectUnix(R.sock);
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, cmd);
    cr_assert_not_null(r);
    freeReplyObject(r);
    redisFree(c);
}

Test(redis_store, scripts_are_loaded_again_after_script_flush)
{
    eng_redis_t *s = s_open(NULL);
    s_adjust(s, PD_PER_USD, false, PD_PER_USD);
    s_redis_cmd("SCRIPT FLUSH");
    eng_redis_state_t st;
    cr_assert_eq(s_reserve(s, &NO_LIMITS, 1, 5, false, &st), ENG_REDIS_OK);
    cr_assert_eq(st.acct_reserved_pd, 5);
    eng_redis_destroy(&s);
}

Test(redis_store, a_redis_that_goes_away_is_unavailable_then_serves_again)
{
    eng_redis_t *s = s_open(NULL);
    s_adjust(s, PD_PER_USD, false, PD_PER_USD);
    hh_stop(&R.proc);
    char err[512] = "";
    eng_redis_state_t st;
    eng_redis_rc_t rc = eng_redis_reserve(s, S_ACCT, S_KEY, &NO_LIMITS, 1, 5, false, 20000,
                                          s_now_ms() + 1000, &st, err, sizeof err);
    cr_assert_eq(rc, ENG_REDIS_UNAVAILABLE, "rc %d: %s", rc, err);
    cr_assert(strstr(err, R.spec), "the message names the server: %s", err);
    bool settled;
    cr_assert_eq(eng_redis_settle(s, 1, 5, 0, 0, &settled, err, sizeof err), ENG_REDIS_UNAVAILABLE);
    cr_assert_eq(eng_redis_adjust(s, S_ACCT, 1, false, NULL, err, sizeof err),
                 ENG_REDIS_UNAVAILABLE);
    /* Back (empty: no persistence in the tests): the store reconnects by
     * itself, within its backoff. */
    s_redis_start(NULL);
    long long deadline = hh_now_ms() + 5000;
    do {
        rc = eng_redis_adjust(s, S_ACCT, 3, false, NULL, err, sizeof err);
        if (rc == ENG_REDIS_OK) {
            break;
        }
        cr_assert_eq(rc, ENG_REDIS_UNAVAILABLE, "%s", err);
        hh_sleep_ms(20);
    } while (hh_now_ms() < deadline);
    cr_assert_eq(rc, ENG_REDIS_OK, "never reconnected: %s", err);
    cr_assert_eq(s_reserve(s, &NO_LIMITS, 2, 1, false, &st), ENG_REDIS_OK);
    cr_assert_eq(st.balance_pd, 3);
    eng_redis_destroy(&s);
}

/* A connection left idle in the pool while Redis restarted: a top-up, sent
 * only once (its fate unknown, a second send could apply it twice), must
 * not be lost on it. */
Test(redis_store, a_top_up_after_a_restart_is_not_sent_on_a_dead_connection)
{
    eng_redis_t *s = s_open(NULL);
    s_adjust(s, 5, false, 5); /* the pool now holds one connection, idle */
    hh_stop(&R.proc);
    s_redis_start(NULL); /* empty again: no persistence in the tests */
    s_adjust(s, 7, false, 7);
    eng_redis_destroy(&s);
}

Test(redis_store, a_store_cannot_open_on_a_redis_that_is_not_there)
{
    hh_stop(&R.proc);
    char err[512] = "";
    eng_redis_t *s = eng_redis_new(R.spec, NULL, err, sizeof err);
    cr_assert_null(s);
    cr_assert(strstr(err, "connect"), "%s", err);
}

Test(redis_store, wrongly_typed_data_is_a_located_error)
{
    eng_redis_t *s = s_open(NULL);
    s_redis_cmd("SET hpp:a:" S_ACCT " not-a-hash");
    char err[512] = "";
    eng_redis_state_t st;
    eng_redis_rc_t rc = eng_redis_reserve(s, S_ACCT, S_KEY, &NO_LIMITS, 1, 5, false, 20000,
                                          s_now_ms() + 1000, &st, err, sizeof err);
    cr_assert_eq(rc, ENG_REDIS_ERROR, "%s", err);
    cr_assert(strstr(err, "reserve") && strstr(err, "WRONGTYPE"), "%s", err);
    s_redis_cmd("DEL hpp:a:" S_ACCT);
    s_redis_cmd("HSET hpp:a:" S_ACCT " balance 12.5 avail 12.5");
    rc = eng_redis_adjust(s, S_ACCT, 1, false, NULL, err, sizeof err);
    cr_assert_eq(rc, ENG_REDIS_ERROR, "%s", err);
    cr_assert(strstr(err, "adjust") && strstr(err, "not an integer"), "%s", err);
    /* The connection still serves. */
    s_redis_cmd("DEL hpp:a:" S_ACCT);
    s_adjust(s, 4, false, 4);
    eng_redis_destroy(&s);
}

Test(redis_store, the_prefix_separates_two_ledgers)
{
    char spec[400];
    snprintf(spec, sizeof spec, "%s?prefix=team-b:&timeout_ms=2000&connect_ms=300", R.spec);
    eng_redis_t *a = s_open(NULL), *b = s_open(spec);
    cr_assert_str_eq(eng_redis_prefix(b), "team-b:");
    s_adjust(a, 10, false, 10);
    s_adjust(b, 3, false, 3);
    cr_assert_eq(s_read(a).balance_pd, 10);
    cr_assert_eq(s_read(b).balance_pd, 3);
    eng_redis_destroy(&a);
    eng_redis_destroy(&b);
}

TestSuite(redis_spec, .init = s_setup, .fini = s_teardown, .timeout = 30);

Test(redis_spec, bad_addresses_and_options_are_refused_with_the_reason)
{
    static const struct {
        const char *spec, *want;
    } cases[] = {
        {"redis:/x", "expected redis://HOST:PORT or redis+unix:PATH"},
        {"redis://", "expected redis://HOST:PORT or redis+unix:PATH"},
        {"redis://127.0.0.1:0", "bad port"},
        {"redis://127.0.0.1:99999", "bad port"},
        {"redis://user:pw@127.0.0.1:6379", "no user or password in the address"},
        {"redis://[::1", "missing ']'"},
        {"redis+unix:/tmp/x.sock?prefix=", "bad value"},
        {"redis+unix:/tmp/x.sock?prefix=a b", "bad value"},
        {"redis+unix:/tmp/x.sock?db=x", "bad value"},
        {"redis+unix:/tmp/x.sock?colour=red", "unknown option 'colour'"},
        {"redis+unix:/tmp/x.sock?timeout_ms", "expected NAME=VALUE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        eng_redis_t *s = eng_redis_new(cases[i].spec, NULL, err, sizeof err);
        cr_expect_null(s, "%s opened", cases[i].spec);
        cr_expect(strstr(err, cases[i].want), "%s: got \"%s\", want \"%s\"", cases[i].spec, err,
                  cases[i].want);
        cr_expect_null(strstr(err, "pw@"), "%s: the password is quoted: \"%s\"", cases[i].spec,
                       err);
        eng_redis_destroy(&s);
    }
}

static void s_write_secret(const char *path, const char *text, mode_t mode)
{
    cr_assert_eq(hh_write_file(path, text), 0);
    cr_assert_eq(chmod(path, mode), 0);
}

Test(redis_spec, the_password_file_mode_and_password_are_checked_and_never_shown)
{
    const char *pw = "s3cret-pw-for-the-test";
    s_redis_start(pw);
    char path[400], err[512] = "";
    snprintf(path, sizeof path, "%s/secret", R.dir);

    /* Readable by others: refused before anything is sent. */
    s_write_secret(path, "# the ledger's Redis password\ns3cret-pw-for-the-test\n", 0644);
    eng_redis_t *s = eng_redis_new(R.spec, path, err, sizeof err);
    cr_assert_null(s);
    cr_assert(strstr(err, "must not be readable by others"), "%s", err);
    cr_assert_null(strstr(err, pw));

    /* Empty: refused with the reason. */
    s_write_secret(path, "# nothing\n\n", 0600);
    s = eng_redis_new(R.spec, path, err, sizeof err);
    cr_assert_null(s);
    cr_assert(strstr(err, "no password"), "%s", err);

    /* Wrong password: Redis refuses AUTH; the message does not quote it. */
    s_write_secret(path, "wrong-password-here\n", 0600);
    s = eng_redis_new(R.spec, path, err, sizeof err);
    cr_assert_null(s);
    cr_assert(strstr(err, "AUTH refused"), "%s", err);
    cr_assert_null(strstr(err, "wrong-password-here"), "%s", err);

    /* No password at all: NOAUTH, refused at start. */
    s = eng_redis_new(R.spec, NULL, err, sizeof err);
    cr_assert_null(s);
    cr_assert(strstr(err, "NOAUTH"), "%s", err);

    /* The right one (after a comment line, trailing blanks cut) serves. */
    s_write_secret(path, "# the ledger's Redis password\ns3cret-pw-for-the-test  \n", 0600);
    s = eng_redis_new(R.spec, path, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    s_adjust(s, 42, false, 42);
    eng_redis_destroy(&s);

    /* A missing file names itself. */
    snprintf(path, sizeof path, "%s/no-such-secret", R.dir);
    s = eng_redis_new(R.spec, path, err, sizeof err);
    cr_assert_null(s);
    cr_assert(strstr(err, "no-such-secret"), "%s", err);
}

/* ---- Through the store interface (eng_store.h) ---- */

static bool s_count_account(void *arg, const eng_store_account_t *a)
{
    int *seen = arg;
    if (strcmp(a->name, "acct-x") == 0) {
        cr_expect_eq(a->balance_pd, 5 * PD_PER_USD - 250);
        cr_expect_eq(a->spent_pd, 250);
        cr_expect_eq(a->reserved_pd, 0);
        seen[0]++;
    } else if (strcmp(a->name, "acct-y") == 0) {
        cr_expect_eq(a->balance_pd, 7);
        seen[1]++;
    } else {
        seen[2]++;
    }
    return true;
}

Test(redis_store, the_store_interface_answers_the_wire_statuses)
{
    char err[512] = "";
    eng_store_cfg_t cfg = {.node = 1, .now_ms = s_now_ms()};
    eng_store_t *st = eng_store_open(R.spec, &cfg, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_assert_str_eq(st->ops->name, "redis");
    eng_store_key_t key = {.hash = S_KEY,
                           .account = "acct-x",
                           .limit_pd = ENG_STORE_NONE,
                           .daily_pd = ENG_STORE_NONE,
                           .daily_requests = 2,
                           .free_daily_requests = ENG_STORE_NONE,
                           .free_daily_requests_funded = ENG_STORE_NONE};
    eng_store_resv_t r = {.decision = (UINT64_C(7) << 48) | 1,
                          .amount_pd = 1000,
                          .day = 20001,
                          .now_ms = s_now_ms(),
                          .expires_ms = s_now_ms() + 300000};
    eng_store_state_t state;
    cr_assert_eq(st->ops->reserve(st, &key, &r, &state, err, sizeof err),
                 HPP_E_INSUFFICIENT_BALANCE);
    int64_t bal = 0;
    cr_assert_eq(st->ops->adjust(st, "acct-x", 5 * PD_PER_USD, false, &bal, err, sizeof err),
                 HPP_OK, "%s", err);
    cr_assert_eq(st->ops->adjust(st, "acct-y", 7, true, &bal, err, sizeof err), HPP_OK);
    cr_assert_eq(st->ops->reserve(st, &key, &r, &state, err, sizeof err), HPP_OK, "%s", err);
    cr_assert_eq(state.day, 20001);
    cr_assert_eq(state.day_reserved_pd, 1000);
    cr_assert_eq(eng_store_remaining(&key, &state), 5 * PD_PER_USD - 1000);
    cr_assert_eq(st->ops->reserve(st, &key, &r, &state, err, sizeof err), HPP_E_INTERNAL);
    r.decision++;
    cr_assert_eq(st->ops->reserve(st, &key, &r, &state, err, sizeof err), HPP_OK, "%s", err);
    r.decision++;
    cr_assert_eq(st->ops->reserve(st, &key, &r, &state, err, sizeof err),
                 HPP_E_DAILY_LIMIT_REACHED);
    bool done = false;
    eng_store_settle_t s = {.decision = (UINT64_C(7) << 48) | 1, .cost_pd = 250};
    cr_assert_eq(st->ops->settle(st, &s, &done, err, sizeof err), HPP_OK, "%s", err);
    cr_assert(done);
    cr_assert_eq(st->ops->settle(st, &s, &done, err, sizeof err), HPP_OK);
    cr_assert(!done);
    cr_assert_eq(st->ops->release(st, (UINT64_C(7) << 48) | 2, &done, err, sizeof err), HPP_OK);
    cr_assert(done);
    uint64_t n = 9;
    cr_assert_eq(st->ops->expire(st, s_now_ms(), &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(st->ops->read(st, &key, 20001, &state, err, sizeof err), HPP_OK);
    cr_assert_eq(state.requests, 1);
    cr_assert_eq(state.spent_pd, 250);
    cr_assert_eq(state.day_requests, 2);
    cr_assert_eq(st->ops->sync(st, 100, err, sizeof err), HPP_OK);
    int seen[3] = {0, 0, 0};
    cr_assert_eq(st->ops->accounts(st, s_count_account, seen, err, sizeof err), HPP_OK, "%s", err);
    cr_assert_eq(seen[0], 1);
    cr_assert_eq(seen[1], 1);
    cr_assert_eq(seen[2], 0);

    /* Redis gone: ledger_unavailable, with the reason. */
    hh_stop(&R.proc);
    r.decision++;
    key.daily_requests = ENG_STORE_NONE;
    cr_assert_eq(st->ops->reserve(st, &key, &r, &state, err, sizeof err), HPP_E_LEDGER_UNAVAILABLE);
    cr_assert(strstr(err, "redis+unix:"), "%s", err);
    eng_store_destroy(&st);
    cr_assert_null(st);
}

/* ---- Two engines, one Redis, concurrent load ---- */

#define S_ENGINES 2
#define S_THREADS 4                       /* per engine */
#define S_AMOUNT_MIN INT64_C(1000000000)  /* $0.001 */
#define S_AMOUNT_MAX INT64_C(50000000000) /* $0.05 */

typedef struct {
    eng_redis_t *store;
    uint64_t id; /* engine << 56 | thread << 48: ids never collide */
    unsigned seed;
    int64_t settled_pd; /* sum of the costs this worker's settles charged */
    int64_t settled_n, released_n, unreported_n, refused_n;
    int64_t worst_avail; /* least balance - reserved a reserve answered */
    char err[512];
    bool failed;
} s_worker_t;

static void *s_work(void *arg)
{
    s_worker_t *w = arg;
    w->worst_avail = INT64_MAX;
    for (uint64_t seq = 1; seq < 100000; seq++) {
        int64_t amount = S_AMOUNT_MIN + (int64_t)(rand_r(&w->seed) % (S_AMOUNT_MAX - S_AMOUNT_MIN));
        eng_redis_state_t st;
        int64_t now = s_now_ms();
        int fate = rand_r(&w->seed) % 20; /* 0: released, 1: never reported, else settled */
        eng_redis_rc_t rc =
            eng_redis_reserve(w->store, S_ACCT, S_KEY, &NO_LIMITS, w->id | seq, amount, false,
                              20000, fate == 1 ? now : now + 300000, &st, w->err, sizeof w->err);
        if (rc == ENG_REDIS_INSUFFICIENT_BALANCE) {
            w->refused_n++;
            return NULL;
        }
        if (rc != ENG_REDIS_OK) {
            w->failed = true;
            return NULL;
        }
        if (st.balance_pd - st.acct_reserved_pd < w->worst_avail) {
            w->worst_avail = st.balance_pd - st.acct_reserved_pd;
        }
        bool done = false;
        if (fate == 0) {
            rc = eng_redis_release(w->store, w->id | seq, &done, w->err, sizeof w->err);
            w->released_n += done;
        } else if (fate == 1) {
            w->unreported_n++;
            continue;
        } else {
            /* The real cost: at most the estimate, often all of it. */
            int64_t cost = fate < 10 ? amount : (int64_t)(rand_r(&w->seed) % (amount + 1));
            rc =
                eng_redis_settle(w->store, w->id | seq, cost, 10, 10, &done, w->err, sizeof w->err);
            if (done) {
                w->settled_pd += cost;
                w->settled_n++;
            }
            /* A duplicated report charges nothing more. */
            bool again = true;
            if (rc == ENG_REDIS_OK && fate == 2) {
                rc = eng_redis_settle(w->store, w->id | seq, cost, 10, 10, &again, w->err,
                                      sizeof w->err);
                if (again) {
                    snprintf(w->err, sizeof w->err, "decision settled twice");
                    w->failed = true;
                    return NULL;
                }
            }
        }
        if (rc != ENG_REDIS_OK || !done) {
            w->failed = true;
            return NULL;
        }
    }
    return NULL;
}

Test(redis_store, two_engines_spend_a_key_to_zero_exactly)
{
    const int64_t start = 5 * PD_PER_USD + 37; /* odd picodollars: nothing rounds */
    eng_redis_t *engines[S_ENGINES];
    for (int e = 0; e < S_ENGINES; e++) {
        engines[e] = s_open(NULL);
    }
    s_adjust(engines[0], start, true, start);
    s_worker_t w[S_ENGINES * S_THREADS];
    pthread_t th[S_ENGINES * S_THREADS];
    for (int i = 0; i < S_ENGINES * S_THREADS; i++) {
        w[i] = (s_worker_t){.store = engines[i / S_THREADS],
                            .id = ((uint64_t)(i / S_THREADS + 1) << 56) |
                                  ((uint64_t)(i % S_THREADS + 1) << 48),
                            .seed = 1234u + (unsigned)i};
        cr_assert_eq(pthread_create(&th[i], NULL, s_work, &w[i]), 0);
    }
    int64_t settled = 0, n_settled = 0, n_released = 0, n_unreported = 0;
    int64_t worst = INT64_MAX;
    for (int i = 0; i < S_ENGINES * S_THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert(!w[i].failed, "worker %d: %s", i, w[i].err);
        cr_assert_eq(w[i].refused_n, 1, "worker %d ended without a refusal", i);
        settled += w[i].settled_pd;
        n_settled += w[i].settled_n;
        n_released += w[i].released_n;
        n_unreported += w[i].unreported_n;
        worst = w[i].worst_avail < worst ? w[i].worst_avail : worst;
    }
    /* Decisions never reported are released by the sweep, charging nothing. */
    char err[512] = "";
    int64_t expired = -1;
    cr_assert_eq(eng_redis_expire(engines[1], s_now_ms() + 600000, &expired, err, sizeof err),
                 ENG_REDIS_OK, "%s", err);
    cr_assert_eq(expired, n_unreported);
    /* Whatever costs under their estimate left: one engine spends it to the end. */
    s_worker_t tail = {.store = engines[1], .id = UINT64_C(9) << 56, .seed = 99};
    for (uint64_t seq = 1;; seq++) {
        eng_redis_state_t st;
        eng_redis_rc_t rc =
            eng_redis_reserve(tail.store, S_ACCT, S_KEY, &NO_LIMITS, tail.id | seq, S_AMOUNT_MAX,
                              false, 20000, s_now_ms() + 300000, &st, err, sizeof err);
        if (rc == ENG_REDIS_INSUFFICIENT_BALANCE) {
            break;
        }
        cr_assert_eq(rc, ENG_REDIS_OK, "%s", err);
        bool done = false;
        cr_assert_eq(
            eng_redis_settle(tail.store, tail.id | seq, S_AMOUNT_MAX, 0, 0, &done, err, sizeof err),
            ENG_REDIS_OK, "%s", err);
        settled += S_AMOUNT_MAX;
        n_settled++;
    }
    eng_redis_state_t st = s_read(engines[0]);
    fprintf(stderr,
            "two engines x %d threads: %" PRId64 " settled, %" PRId64 " released, %" PRId64
            " expired; final balance %" PRId64 " pd, least available seen %" PRId64 " pd\n",
            S_THREADS, n_settled, n_released, expired, st.balance_pd, worst);
    /* The balance is exactly the start less every settled charge. */
    cr_assert_eq(st.balance_pd, start - settled, "balance %" PRId64 " != %" PRId64 " - %" PRId64,
                 st.balance_pd, start, settled);
    cr_assert_eq(st.spent_pd, settled);
    cr_assert_eq(st.requests, n_settled);
    cr_assert_eq(st.acct_reserved_pd, 0);
    cr_assert_eq(st.reserved_pd, 0);
    cr_assert_eq(s_held(engines[0]), 0);
    /* Spent down to zero: nothing more can be reserved ... */
    cr_assert_leq(st.balance_pd, 0);
    /* ... and the overspend is less than one reservation (the last one
     * admitted while something was left), so never more than those in flight;
     * nor did the balance less reservations ever fall below that. */
    cr_assert_gt(st.balance_pd, -S_AMOUNT_MAX, "overspend %" PRId64 " pd", -st.balance_pd);
    cr_assert_gt(worst, -S_AMOUNT_MAX, "least available %" PRId64 " pd", worst);
    for (int e = 0; e < S_ENGINES; e++) {
        eng_redis_destroy(&engines[e]);
    }
}
