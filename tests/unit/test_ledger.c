/* test_ledger.c - the ledger's logic on the embedded store (engine/
 * eng_store_sqlite.c, through the store interface of eng_store.h) and the
 * engine's ledger (eng_ledger.c): the checks in their order, reservation,
 * settlement once, release, expiry, the free counts, the day's rollover,
 * what a reopened store holds, and decision ids. Each test uses its own
 * database in a temporary directory. */
#define _GNU_SOURCE /* SCHED_IDLE, SCHED_BATCH */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>
#include <time.h>

#include "test_tmpdir.h"
#include "eng_journal.h"
#include "eng_ledger.h"
#include "eng_ringfile.h"
#include "eng_store.h"

#define USD INT64_C(1000000000000)

static char s_dir[64];
static char s_spec[128];

static void s_setup(void)
{
    cr_assert_eq(test_tmpdir_make(s_dir, sizeof s_dir, "ledger"), 0, "%s", s_dir);
    snprintf(s_spec, sizeof s_spec, "sqlite:%s/ledger.db", s_dir);
}

static void s_teardown(void)
{
    cr_assert_eq(test_tmpdir_remove(s_dir), 0, "%s", s_dir);
}

TestSuite(ledger, .init = s_setup, .fini = s_teardown);

/* The test's store, opened as a start opens it, or as --check does (read as it is, no
 * writer, no upgrade). */
static eng_store_t *s_open_as(bool check)
{
    char err[256];
    eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1, .check = check};
    eng_store_t *st = eng_store_open(s_spec, &cfg, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    return st;
}

static eng_store_t *s_open(void)
{
    return s_open_as(false);
}

static eng_store_key_t s_key(const char *hash, const char *account)
{
    eng_store_key_t k = {.hash = hash,
                         .account = account,
                         .limit_pd = ENG_STORE_NONE,
                         .daily_pd = ENG_STORE_NONE,
                         .daily_requests = ENG_STORE_NONE,
                         .free_daily_requests = 50,
                         .free_daily_requests_funded = 1000};
    return k;
}

static int s_reserve(eng_store_t *st, const eng_store_key_t *k, uint64_t decision, int64_t pd,
                     bool free_model, eng_store_state_t *out)
{
    eng_store_resv_t r = {.decision = decision,
                          .amount_pd = pd,
                          .free_model = free_model,
                          .day = 20000,
                          .now_ms = 1000,
                          .expires_ms = 1000 + 300000};
    char err[160];
    return st->ops->reserve(st, k, &r, out, err, sizeof err);
}

static void s_topup(eng_store_t *st, const char *account, int64_t pd)
{
    char err[160];
    int64_t b;
    cr_assert_eq(st->ops->adjust(st, account, pd, false, &b, err, sizeof err), HPP_OK, "%s", err);
}

static bool s_settle(eng_store_t *st, uint64_t decision, int64_t cost)
{
    eng_store_settle_t s = {.decision = decision,
                            .cost_pd = cost,
                            .prompt_tokens = 10,
                            .completion_tokens = 5,
                            .now_ms = 2000};
    bool hit = false;
    char err[160];
    cr_assert_eq(st->ops->settle(st, &s, &hit, err, sizeof err), HPP_OK);
    return hit;
}

static eng_store_state_t s_read(eng_store_t *st, const eng_store_key_t *k)
{
    eng_store_state_t out;
    char err[160];
    cr_assert_eq(st->ops->read(st, k, 20000, &out, err, sizeof err), HPP_OK);
    return out;
}

/* The state file through a connection of the test's own, opened and closed
 * per call: a connection left open would hold the file, which a store opens
 * only when nothing else has it (locking_mode EXCLUSIVE). */
static sqlite3 *s_db_at(const char *name)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                 SQLITE_OK);
    return db;
}

static int64_t s_int_at(const char *name, const char *sql)
{
    sqlite3 *db = s_db_at(name);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static int64_t s_db_int(const char *sql)
{
    return s_int_at("ledger.db", sql);
}

static void s_db_exec(const char *sql)
{
    sqlite3 *db = s_db_at("ledger.db");
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
    sqlite3_close(db);
}

/* What a crash now would leave, for a store that is open: copies of the
 * state file and its WAL; returns the copy's name. A commit torn by the
 * copy is not in it, as after a crash. (These files are far too small for
 * a checkpoint, the one writer of the main file, to run meanwhile.) */
static const char *s_snap(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && rm -f snap.db snap.db-wal && cp ledger.db snap.db &&"
             " { [ ! -e ledger.db-wal ] || cp ledger.db-wal snap.db-wal; }",
             s_dir);
    cr_assert_eq(system(cmd), 0);
    return "snap.db";
}

static int64_t s_snap_int(const char *sql)
{
    return s_int_at(s_snap(), sql);
}

Test(ledger, checks_run_in_order_and_refusals_reserve_nothing)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:aa", "acct");
    k.limit_pd = USD / 1000; /* $0.001 */
    k.daily_pd = USD / 2000; /* $0.0005: the daily limit is hit first */
    k.daily_requests = 3;
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 100, false, &s), HPP_E_INSUFFICIENT_BALANCE);
    s_topup(st, "acct", USD);
    cr_assert_eq(s_reserve(st, &k, 2, USD / 1000, false, &s), HPP_OK,
                 "a reservation is taken whole");
    /* Daily money before requests; the key's limit before the day's. */
    cr_assert_eq(s_reserve(st, &k, 3, 1, false, &s), HPP_E_KEY_LIMIT_REACHED);
    k.limit_pd = ENG_STORE_NONE;
    cr_assert_eq(s_reserve(st, &k, 3, 1, false, &s), HPP_E_DAILY_LIMIT_REACHED);
    k.daily_pd = ENG_STORE_NONE;
    cr_assert_eq(s_reserve(st, &k, 3, 1, false, &s), HPP_OK);
    cr_assert_eq(s_reserve(st, &k, 4, 1, false, &s), HPP_OK);
    cr_assert_eq(s_reserve(st, &k, 5, 1, false, &s), HPP_E_DAILY_LIMIT_REACHED, "3 requests a day");
    s = s_read(st, &k);
    cr_assert_eq(s.day_requests, 3, "refusals are not counted");
    cr_assert_eq(s.reserved_pd, USD / 1000 + 2);
    cr_assert_eq(s.acct_reserved_pd, s.reserved_pd);
    eng_store_destroy(&st);
}

Test(ledger, a_settlement_charges_once_and_releases_the_difference)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:bb", "acct");
    s_topup(st, "acct", USD);
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 7, 5000, false, &s), HPP_OK);
    cr_assert_eq(eng_store_remaining(&k, &s), USD - 5000);
    cr_assert(s_settle(st, 7, 1234));
    cr_assert_not(s_settle(st, 7, 1234), "a second settlement is a no-op");
    cr_assert_not(s_settle(st, 99, 1), "an unknown decision is a no-op");
    s = s_read(st, &k);
    cr_assert_eq(s.balance_pd, USD - 1234);
    cr_assert_eq(s.spent_pd, 1234);
    cr_assert_eq(s.day_spent_pd, 1234);
    cr_assert_eq(s.reserved_pd, 0);
    cr_assert_eq(s.acct_reserved_pd, 0);
    cr_assert_eq(s.requests, 1);
    cr_assert_eq(s.prompt_tokens, 10);
    /* -1: the reservation's estimate. */
    cr_assert_eq(s_reserve(st, &k, 8, 777, false, &s), HPP_OK);
    cr_assert(s_settle(st, 8, -1));
    cr_assert_eq(s_read(st, &k).spent_pd, 1234 + 777);
    eng_store_destroy(&st);
}

Test(ledger, release_and_expiry_charge_nothing)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:cc", "acct");
    s_topup(st, "acct", USD);
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 100, false, &s), HPP_OK);
    cr_assert_eq(s_reserve(st, &k, 2, 200, false, &s), HPP_OK);
    char err[160];
    bool hit = false;
    cr_assert_eq(st->ops->release(st, 1, &hit, err, sizeof err), HPP_OK);
    cr_assert(hit);
    cr_assert_eq(st->ops->release(st, 1, &hit, err, sizeof err), HPP_OK);
    cr_assert_not(hit, "released once");
    uint64_t n = 0;
    cr_assert_eq(st->ops->expire(st, 1000 + 300000 - 1, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 0, "not yet");
    cr_assert_eq(st->ops->expire(st, 1000 + 300000, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 1);
    cr_assert_not(s_settle(st, 2, 50), "an expired decision settles nothing");
    s = s_read(st, &k);
    cr_assert_eq(s.balance_pd, USD);
    cr_assert_eq(s.reserved_pd, 0);
    cr_assert_eq(s.spent_pd, 0);
    eng_store_destroy(&st);
}

Test(ledger, free_models_are_counted_not_charged)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:dd", "poor");
    k.free_daily_requests = 2;
    k.free_daily_requests_funded = 3;
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 0, true, &s), HPP_OK, "no balance needed");
    cr_assert_eq(s_reserve(st, &k, 2, 0, true, &s), HPP_OK);
    cr_assert_eq(s_reserve(st, &k, 3, 0, true, &s), HPP_E_DAILY_LIMIT_REACHED);
    s_topup(st, "poor", 1);
    cr_assert_eq(s_reserve(st, &k, 4, 0, true, &s), HPP_OK, "funded: 3 a day");
    cr_assert_eq(s_reserve(st, &k, 5, 0, true, &s), HPP_E_DAILY_LIMIT_REACHED);
    cr_assert_eq(s_read(st, &k).day_free_requests, 3);
    eng_store_destroy(&st);
}

Test(ledger, a_new_day_starts_from_zero)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:ee", "acct");
    k.daily_requests = 1;
    s_topup(st, "acct", USD);
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 10, false, &s), HPP_OK);
    cr_assert_eq(s_reserve(st, &k, 2, 10, false, &s), HPP_E_DAILY_LIMIT_REACHED);
    eng_store_resv_t r = {
        .decision = 3, .amount_pd = 10, .day = 20001, .now_ms = 1, .expires_ms = 2};
    char err[160];
    cr_assert_eq(st->ops->reserve(st, &k, &r, &s, err, sizeof err), HPP_OK, "the next day");
    cr_assert_eq(s.day, 20001);
    cr_assert_eq(s.day_requests, 1);
    cr_assert(s_settle(st, 1, 10), "yesterday's reservation still settles");
    cr_assert_eq(s_read(st, &k).spent_pd, 10);
    eng_store_destroy(&st);
}

Test(ledger, a_reopened_store_holds_what_was_synced)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:ff", "acct");
    s_topup(st, "acct", USD);
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 100, false, &s), HPP_OK);
    cr_assert_eq(s_reserve(st, &k, 2, 300, false, &s), HPP_OK);
    cr_assert(s_settle(st, 1, 60));
    char err[160];
    cr_assert_eq(st->ops->sync(st, 5000, err, sizeof err), HPP_OK, "%s", err);
    eng_store_destroy(&st);
    st = s_open();
    s = s_read(st, &k);
    cr_assert_eq(s.balance_pd, USD - 60);
    cr_assert_eq(s.spent_pd, 60);
    cr_assert_eq(s.reserved_pd, 300, "the reservation in flight is back");
    cr_assert_eq(s.acct_reserved_pd, 300);
    cr_assert(s_settle(st, 2, 250), "and settles after the restart");
    cr_assert_not(s_settle(st, 1, 60), "a settled decision stays settled");
    cr_assert_eq(s_read(st, &k).spent_pd, 310);
    eng_store_destroy(&st);
}

/* A commit writes fewer, larger frames in a new file; a file that exists
 * keeps the page size it has (SQLite sets it only before the first write). */
Test(ledger, a_new_state_file_has_16_kib_pages_and_an_old_one_keeps_its_own)
{
    eng_store_t *st = s_open();
    eng_store_destroy(&st);
    cr_assert_eq(s_db_int("PRAGMA page_size"), 16384);
    char path[160];
    snprintf(path, sizeof path, "%s/ledger.db", s_dir);
    cr_assert_eq(unlink(path), 0);
    s_db_exec("PRAGMA page_size = 4096; CREATE TABLE pad(x)");
    st = s_open();
    eng_store_key_t k = s_key("sha256:ff", "acct");
    s_topup(st, "acct", USD);
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 100, false, &s), HPP_OK);
    eng_store_destroy(&st);
    cr_assert_eq(s_db_int("PRAGMA page_size"), 4096);
    st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 100, "the file of 4 KiB pages works as before");
    eng_store_destroy(&st);
}

typedef struct {
    int n;
    int64_t sum;
} s_acc_t;

static bool s_count_account(void *arg, const eng_store_account_t *a)
{
    s_acc_t *acc = arg;
    acc->n++;
    acc->sum += a->balance_pd;
    return true;
}

/* The writer commits by itself, without a sync: the first change after a
 * commit wakes it. Read from copies of the files, polled. */
Test(ledger, changes_reach_the_disk_without_a_sync)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:ab", "acct");
    s_topup(st, "acct", USD); /* synced: the writer is idle after it */
    eng_store_state_t s;
    cr_assert_eq(s_reserve(st, &k, 1, 100, false, &s), HPP_OK);
    cr_assert(s_settle(st, 1, 42));
    int64_t spent = -1;
    for (int i = 0; i < 500 && spent != 42; i++) {
        spent = s_snap_int("SELECT spent_pd FROM keys WHERE hash = 'sha256:ab'");
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    cr_assert_eq(spent, 42, "the settlement was not committed");
    eng_store_destroy(&st);
}

/* How many threads of this process run under scheduling policy `policy`. */
static int s_threads_at(int policy)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] != '.' && sched_getscheduler((pid_t)atoi(e->d_name)) == policy) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void *s_probe_main(void *arg)
{
    struct sched_param sp = {.sched_priority = 0};
    *(bool *)arg = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0 &&
                   pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) == 0;
    return NULL;
}

/* May a thread of this process leave SCHED_IDLE once there? */
static bool s_may_leave_idle(void)
{
    pthread_t t;
    bool ok = false;
    cr_assert_eq(pthread_create(&t, NULL, s_probe_main, &ok), 0);
    pthread_join(t, NULL);
    return ok;
}

/* Polls (the writer changes its own policy after a commit) for `want`
 * threads at `policy`. */
static bool s_await_threads_at(int policy, int want)
{
    for (int i = 0; i < 500; i++) {
        if (s_threads_at(policy) == want) {
            return true;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    return false;
}

typedef struct {
    eng_store_t *st;
    bool settled;
} s_settler_t;

static void *s_settle_main(void *arg)
{
    s_settler_t *s = arg;
    s->settled = s_settle(s->st, 1, 7);
    return NULL;
}

/* A writer that cannot write (a full disk: RLIMIT_FSIZE at the WAL's size,
 * SIGXFSZ ignored, so each commit fails with EFBIG) holds up no
 * reservation: they go on until its queue of changes is full, then are
 * refused ledger_unavailable, never waited for. A settlement waits for room
 * instead (a report's charge is not dropped); once the disk takes writes
 * again, everything accepted is on disk. The writer, at SCHED_IDLE while it
 * keeps up, is raised to SCHED_BATCH while it is behind and goes back once
 * it has caught up. */
Test(ledger, a_stuck_writer_holds_up_no_reservation_and_loses_none, .timeout = 120)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:cd", "acct");
    s_topup(st, "acct", USD); /* synced */
    bool idle0 = s_may_leave_idle();
    if (!idle0) {
        cr_log_warn("this process may not leave SCHED_IDLE (RLIMIT_NICE < 20, no"
                    " CAP_SYS_NICE): the writer runs at SCHED_BATCH; its raising is not tested");
    }
    cr_assert_eq(s_threads_at(SCHED_IDLE), idle0, "the writer at idle time when it can leave it");
    cr_assert_eq(s_threads_at(SCHED_BATCH), !idle0, "else at batch time");
    char wal[160];
    snprintf(wal, sizeof wal, "%s/ledger.db-wal", s_dir);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0, "the top-up is in the WAL");
    struct rlimit was, full = {.rlim_cur = (rlim_t)sb.st_size};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
    full.rlim_max = was.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &full), 0);
    uint64_t n = 0;
    int rc;
    char err[160] = "";
    do {
        eng_store_resv_t r = {.decision = n + 1,
                              .amount_pd = 1,
                              .day = 20000,
                              .now_ms = 1000,
                              .expires_ms = 1000 + 300000};
        rc = st->ops->reserve(st, &k, &r, NULL, err, sizeof err);
        n += rc == HPP_OK;
    } while (rc == HPP_OK && n < (UINT64_C(1) << 21));
    cr_assert_eq(rc, HPP_E_LEDGER_UNAVAILABLE, "reservations were never refused");
    cr_assert(strstr(err, "the writer is behind"), "%s", err);
    cr_assert_gt(n, 1000);
    if (idle0) {
        cr_assert(s_await_threads_at(SCHED_BATCH, 1), "the writer behind was not raised");
        cr_assert_eq(s_threads_at(SCHED_IDLE), 0);
    }
    pthread_t t;
    s_settler_t settler = {.st = st};
    cr_assert_eq(pthread_create(&t, NULL, s_settle_main, &settler), 0);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &was), 0);
    pthread_join(t, NULL);
    cr_assert(settler.settled, "the settlement waited for room and was applied");
    /* The writer's failed attempt is reported by sync until a commit
     * succeeds: poll. */
    for (int i = 0; i < 300 && st->ops->sync(st, 1000, err, sizeof err) != HPP_OK; i++) {
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    cr_assert_eq(st->ops->sync(st, 5000, err, sizeof err), HPP_OK, "%s", err);
    if (idle0) {
        cr_assert(s_await_threads_at(SCHED_IDLE, 1), "the writer caught up, still raised");
    }
    eng_store_destroy(&st);
    st = s_open();
    eng_store_state_t s = s_read(st, &k);
    cr_assert_eq(s.reserved_pd, (int64_t)n - 1, "every accepted reservation is back");
    cr_assert_eq(s.spent_pd, 7);
    cr_assert_eq(s.balance_pd, USD - 7);
    cr_assert_eq(s.day_requests, (int64_t)n);
    eng_store_destroy(&st);
}

/* Expiry lets go of the store's lock every few reservations; one call
 * still expires every reservation due (up to its bound). */
Test(ledger, expiry_releases_every_reservation_due)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:ef", "acct");
    s_topup(st, "acct", USD);
    for (uint64_t d = 1; d <= 1000; d++) {
        cr_assert_eq(s_reserve(st, &k, d, 10, false, NULL), HPP_OK);
    }
    uint64_t n = 0;
    char err[160];
    cr_assert_eq(st->ops->expire(st, 1000 + 300000, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 1000);
    cr_assert_eq(s_read(st, &k).reserved_pd, 0);
    cr_assert_eq(s_read(st, &k).acct_reserved_pd, 0);
    eng_store_destroy(&st);
}

/* A reservation made expires two that are due, so under load the deciding
 * threads keep up with their own expiries and the pass finds little (a pass
 * of thousands held the store's lock by turns with them); the pass counts
 * them. */
Test(ledger, each_reservation_expires_two_that_are_due)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:e2", "acct");
    s_topup(st, "acct", USD);
    for (uint64_t d = 1; d <= 10; d++) {
        cr_assert_eq(s_reserve(st, &k, d, 10, false, NULL), HPP_OK); /* due at 301000 */
    }
    eng_store_resv_t later = {
        .decision = 11, .amount_pd = 1000, .day = 20000, .now_ms = 301000, .expires_ms = 601000};
    char err[160];
    eng_store_state_t s;
    cr_assert_eq(st->ops->reserve(st, &k, &later, &s, err, sizeof err), HPP_OK, "%s", err);
    cr_assert_eq(s.reserved_pd, 8 * 10 + 1000, "two expired: %lld", (long long)s.reserved_pd);
    cr_assert_not(s_settle(st, 1, 10), "the oldest went first");
    cr_assert_not(s_settle(st, 2, 10));
    uint64_t n = 0;
    cr_assert_eq(st->ops->expire(st, 301000, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 10, "the two, then the eight left");
    cr_assert_eq(s_read(st, &k).reserved_pd, 1000);
    cr_assert_eq(s_read(st, &k).acct_reserved_pd, 1000);
    cr_assert(s_settle(st, 11, 900));
    cr_assert_eq(s_read(st, &k).spent_pd, 900);
    eng_store_destroy(&st);
}

/* The expiry list stays in order at a bounded cost: a reservation that
 * expires before more than 64 made earlier (a hold shortened across a
 * restart, a clock stepped back) expires with them, never earlier. */
Test(ledger, a_reservation_passes_at_most_64_to_find_its_place)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:e3", "acct");
    s_topup(st, "acct", USD);
    char err[160];
    for (uint64_t d = 1; d <= 100; d++) {
        eng_store_resv_t r = {
            .decision = d, .amount_pd = 1, .day = 20000, .now_ms = 0, .expires_ms = 10000 + d};
        cr_assert_eq(st->ops->reserve(st, &k, &r, NULL, err, sizeof err), HPP_OK);
    }
    eng_store_resv_t near = {
        .decision = 101, .amount_pd = 1, .day = 20000, .now_ms = 0, .expires_ms = 10070};
    eng_store_resv_t early = {
        .decision = 102, .amount_pd = 1, .day = 20000, .now_ms = 0, .expires_ms = 5000};
    cr_assert_eq(st->ops->reserve(st, &k, &near, NULL, err, sizeof err), HPP_OK);
    cr_assert_eq(st->ops->reserve(st, &k, &early, NULL, err, sizeof err), HPP_OK);
    uint64_t n = 0;
    cr_assert_eq(st->ops->expire(st, 10036, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 36, "the 36 first; the early one waits for its neighbours (%llu)",
                 (unsigned long long)n);
    cr_assert_eq(st->ops->expire(st, 10037, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 2, "the 37th and the early one, placed after it (%llu)", (unsigned long long)n);
    cr_assert_eq(st->ops->expire(st, 10070, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 34, "up to 70, and the one that found its place (%llu)", (unsigned long long)n);
    cr_assert_eq(s_read(st, &k).reserved_pd, 30);
    eng_store_destroy(&st);
}

static void s_sync(eng_store_t *st)
{
    char err[160];
    cr_assert_eq(st->ops->sync(st, 5000, err, sizeof err), HPP_OK, "%s", err);
}

/* Reservations are written as a journal of batches: what a reopened store
 * finds is each batch's reservations less the ends of the same or a later
 * batch, with the accounts that never had a row of their own. */
Test(ledger, the_journal_keeps_reservations_and_their_ends_across_batches)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:j1", "acct");
    eng_store_key_t poor = s_key("sha256:j2", "never-topped-up");
    s_topup(st, "acct", USD);
    for (uint64_t d = 1; d <= 3; d++) {
        cr_assert_eq(s_reserve(st, &k, d, 100 * (int64_t)d, false, NULL), HPP_OK);
        s_sync(st); /* a batch each */
    }
    cr_assert_eq(s_reserve(st, &poor, 4, 0, true, NULL), HPP_OK, "free: no balance needed");
    cr_assert(s_settle(st, 1, 60));
    s_sync(st);
    char err[160];
    bool hit = false;
    cr_assert_eq(st->ops->release(st, 2, &hit, err, sizeof err), HPP_OK);
    cr_assert(hit);
    s_sync(st);
    eng_store_destroy(&st);
    for (int round = 0; round < 2; round++) {
        st = s_open();
        eng_store_state_t s = s_read(st, &k);
        cr_assert_eq(s.reserved_pd, round == 0 ? 300 : 0, "round %d: %lld", round,
                     (long long)s.reserved_pd);
        cr_assert_eq(s.spent_pd, round == 0 ? 60 : 60 + 250);
        cr_assert_not(s_settle(st, 1, 60), "settled before the restart");
        cr_assert_not(s_settle(st, 2, 60), "released before the restart");
        cr_assert_eq(s_settle(st, 3, 250), round == 0, "in flight until settled once");
        cr_assert_eq(s_settle(st, 4, 0), round == 0, "the free one, on a new account");
        s_sync(st);
        eng_store_destroy(&st);
    }
    cr_assert_eq(s_db_int("SELECT count(*) FROM accounts WHERE name = 'never-topped-up'"), 1);
}

/* Journal rows go once every reservation in them has ended, and only as a
 * prefix: a later row's end of a reservation in a kept row is kept, so a
 * settled decision never comes back to be charged twice. */
Test(ledger, expired_journal_rows_go_and_ended_reservations_stay_ended)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:j3", "acct");
    s_topup(st, "acct", USD);
    eng_store_resv_t late = {.decision = 3,
                             .amount_pd = 30,
                             .day = 20000,
                             .now_ms = 1000,
                             .expires_ms = INT64_C(1) << 50};
    char err[160];
    cr_assert_eq(s_reserve(st, &k, 1, 10, false, NULL), HPP_OK); /* expires at 301000 */
    s_sync(st);
    cr_assert_eq(s_reserve(st, &k, 2, 20, false, NULL), HPP_OK);
    cr_assert_eq(st->ops->reserve(st, &k, &late, NULL, err, sizeof err), HPP_OK, "%s", err);
    s_sync(st);
    cr_assert(s_settle(st, 2, 20));
    s_sync(st);
    cr_assert_eq(s_snap_int("SELECT count(*) FROM resv_log"), 3);
    uint64_t n = 0;
    cr_assert_eq(st->ops->expire(st, 400000, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 1, "decision 1 expired");
    s_topup(st, "acct", 0); /* rows go at the next commit (an expiry writes nothing) */
    /* The first row (decision 1) is gone; the second (2 and 3) stays for
     * 3, and with it the later end of 2. Expiry writes nothing: a reopened
     * store expires again what is due. */
    cr_assert_eq(s_snap_int("SELECT count(*) FROM resv_log"), 2);
    cr_assert_eq(s_snap_int("SELECT min(id) FROM resv_log"), 2);
    eng_store_destroy(&st);
    st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 30);
    cr_assert_not(s_settle(st, 2, 20), "settled once, before the restart");
    cr_assert_not(s_settle(st, 1, 10), "expired before the restart");
    cr_assert(s_settle(st, 3, 30));
    cr_assert_eq(s_read(st, &k).spent_pd, 50);
    cr_assert_eq(st->ops->expire(st, (INT64_C(1) << 50) + 1, &n, err, sizeof err), HPP_OK);
    cr_assert_eq(n, 0, "all settled");
    s_sync(st);
    cr_assert_eq(s_snap_int("SELECT count(*) FROM resv_log"), 0, "every row's hold is over");
    eng_store_destroy(&st);
}

/* A state file of the first schema (a row per reservation) is brought to
 * the journal when opened, its reservations in flight kept. */
Test(ledger, a_schema_1_file_is_upgraded_with_its_reservations)
{
    s_db_exec("CREATE TABLE accounts(name TEXT PRIMARY KEY, balance_pd INTEGER NOT NULL,"
              " spent_pd INTEGER NOT NULL);"
              "CREATE TABLE keys(hash TEXT PRIMARY KEY, account TEXT NOT NULL,"
              " spent_pd INTEGER NOT NULL, requests INTEGER NOT NULL, prompt_tokens INTEGER NOT"
              " NULL, completion_tokens INTEGER NOT NULL, day INTEGER NOT NULL, day_spent_pd"
              " INTEGER NOT NULL, day_requests INTEGER NOT NULL, day_free_requests INTEGER NOT"
              " NULL);"
              "CREATE TABLE reservations(decision INTEGER PRIMARY KEY, key TEXT NOT NULL,"
              " account TEXT NOT NULL, amount_pd INTEGER NOT NULL, day INTEGER NOT NULL,"
              " expires_ms INTEGER NOT NULL, free INTEGER NOT NULL);"
              "INSERT INTO accounts VALUES('acct', 1000000000000, 0);"
              "INSERT INTO keys VALUES('sha256:v1', 'acct', 0, 0, 0, 0, 20000, 0, 2, 1);"
              "INSERT INTO keys VALUES('sha256:v2', 'ghost', 0, 0, 0, 0, 20000, 0, 1, 1);"
              "INSERT INTO reservations VALUES(7, 'sha256:v1', 'acct', 100, 20000, 301000, 0);"
              "INSERT INTO reservations VALUES(8, 'sha256:v2', 'ghost', 0, 20000, 301000, 1);"
              "PRAGMA user_version = 1;");
    eng_store_t *st = s_open_as(true);
    eng_store_key_t k = s_key("sha256:v1", "acct");
    cr_assert_eq(s_read(st, &k).reserved_pd, 100, "read by a check");
    eng_store_destroy(&st);
    cr_assert_eq(s_db_int("PRAGMA user_version"), 1, "a check upgrades nothing");
    cr_assert_eq(s_db_int("SELECT count(*) FROM sqlite_master WHERE name = 'resv_log'"), 0);
    st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 100);
    cr_assert_eq(s_snap_int("PRAGMA user_version"), 4);
    cr_assert_eq(s_snap_int("SELECT count(*) FROM sqlite_master WHERE name = 'reservations'"), 0);
    eng_store_destroy(&st);
    st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 100, "kept by the journal");
    cr_assert(s_settle(st, 7, 60));
    cr_assert(s_settle(st, 8, 0), "on an account that had no row");
    s_sync(st);
    eng_store_destroy(&st);
    st = s_open();
    cr_assert_eq(s_read(st, &k).spent_pd, 60);
    cr_assert_eq(s_read(st, &k).reserved_pd, 0);
    eng_store_destroy(&st);
}

/* A closed store holding one account, key `hash` and its reservation 1 of
 * 10 picodollars, synced; the key. */
static eng_store_key_t s_one_reservation(const char *hash)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key(hash, "acct");
    s_topup(st, "acct", USD);
    cr_assert_eq(s_reserve(st, &k, 1, 10, false, NULL), HPP_OK);
    s_sync(st);
    eng_store_destroy(&st);
    return k;
}

/* The store refuses to open, saying `says` and naming its file. */
static void s_open_fails(size_t i, const char *says)
{
    char err[256] = "";
    eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1};
    eng_store_t *st = eng_store_open(s_spec, &cfg, err, sizeof err);
    cr_assert_null(st, "case %zu opened", i);
    cr_assert(strstr(err, says) && strstr(err, "ledger.db"), "case %zu: %s", i, err);
}

/* The reservation of s_one_reservation's journal row, read back. */
static eng_journal_put_t s_the_put(const char *file)
{
    sqlite3 *db = s_db_at(file);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT puts FROM resv_log", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    eng_journal_put_t zero = {0}, r;
    char err[160];
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    cr_assert_eq(eng_journal_put_read(sqlite3_column_blob(q, 0), n, &zero, &r, err, sizeof err), n,
                 "one record: %s", err);
    sqlite3_finalize(q);
    sqlite3_close(db);
    cr_assert_eq(r.decision, 1);
    cr_assert_eq(r.amount_pd, 10);
    return r;
}

/* Sets column `col` of the journal row to `raw` (hex) followed by records rs[0..n) as the
 * writer writes them. */
static void s_set_blob(const char *col, const char *raw, const eng_journal_put_t *rs, size_t n)
{
    char sql[1024];
    int len = snprintf(sql, sizeof sql, "UPDATE resv_log SET %s = x'%s", col, raw);
    eng_journal_put_t last = {0};
    for (size_t i = 0; i < n; i++) {
        uint8_t rec[ENG_JOURNAL_PUT_MAX];
        size_t used = eng_journal_put_write(rec, &last, &rs[i]);
        for (size_t j = 0; j < used; j++) {
            len += snprintf(sql + len, sizeof sql - (size_t)len, "%02x", rec[j]);
        }
        last = rs[i];
    }
    snprintf(sql + len, sizeof sql - (size_t)len, "'");
    s_db_exec(sql);
}

/* A damaged journal row stops the start with its place, not a guess. */
Test(ledger, a_bad_journal_row_is_refused_with_its_place)
{
    eng_store_key_t k = s_one_reservation("sha256:j4");
    const eng_journal_put_t r = s_the_put("ledger.db");
    eng_journal_put_t other_key = r, negative = r, big = r, big2 = r;
    other_key.key_rowid = 99;
    negative.amount_pd = -1;
    big.amount_pd = big2.amount_pd = INT64_MAX;
    big2.decision = 2;
    const struct {
        const char *col, *raw;
        eng_journal_put_t rs[2];
        size_t n;
        const char *says;
    } cases[] = {
        {"puts", "0102", {{0}}, 0, "a record truncated or not the writer's (its varints)"},
        {"puts", "0f8000", {{0}}, 0, "a record truncated or not the writer's (its varints)"},
        {"puts", "e0", {{0}}, 0, "a record truncated or not the writer's (unknown flags)"},
        {"puts", "000000", {{0}}, 0, "reservation 0: key row 0, account row 0"},
        {"puts", "", {other_key}, 1, "reservation 1: no such key"},
        {"puts", "", {r, r}, 2, "reservation 1: twice"},
        {"puts", "", {negative}, 1, "reservation 1: twice, too many in flight, or a bad amount"},
        {"puts", "", {big, big2}, 2, "reservation 2: twice, too many in flight, or a bad amount"},
        {"dels", "80", {{0}}, 0, "an end truncated or not the writer's"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_set_blob(cases[i].col, cases[i].raw, cases[i].rs, cases[i].n);
        /* The place: the column and the byte its failing record starts at (the second's
         * when there are two). */
        uint8_t rec[ENG_JOURNAL_PUT_MAX];
        size_t at = cases[i].n == 2
                        ? eng_journal_put_write(rec, &(eng_journal_put_t){0}, &cases[i].rs[0])
                        : 0;
        char says[256];
        snprintf(says, sizeof says, "reservation journal row 1, %s at byte %zu: %s", cases[i].col,
                 at, cases[i].says);
        s_open_fails(i, says);
        s_set_blob("dels", "", NULL, 0);
        s_set_blob("puts", "", &r, 1);
    }
    eng_store_t *st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 10, "the row put back");
    eng_store_destroy(&st);
}

/* A state file of schema 2 (the journal's records fixed, 56 and 8 bytes) is
 * read as it is by a check and rewritten by a start, its reservations and
 * ends kept. */
Test(ledger, a_schema_2_file_is_upgraded_with_its_journal)
{
    eng_store_key_t k = s_one_reservation("sha256:s2");
    const eng_journal_put_t r = s_the_put("ledger.db");
    /* Reservation 1 as schema 2 wrote it, then 2 of 5 picodollars, ended in the same row. */
    char sql[1024];
    int len = snprintf(sql, sizeof sql, "UPDATE resv_log SET puts = x'");
    const uint64_t f[2][7] = {
        {1, (uint64_t)r.key_rowid, (uint64_t)r.acct_rowid, 10, (uint64_t)r.day,
         (uint64_t)r.expires_ms, 0},
        {2, (uint64_t)r.key_rowid, (uint64_t)r.acct_rowid, 5, (uint64_t)r.day,
         (uint64_t)r.expires_ms, 0},
    };
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 7; j++) {
            for (int b = 0; b < 8; b++) {
                len += snprintf(sql + len, sizeof sql - (size_t)len, "%02x",
                                (unsigned)(f[i][j] >> (8 * b)) & 0xff);
            }
        }
    }
    snprintf(sql + len, sizeof sql - (size_t)len, "', dels = x'0200000000000000'");
    s_db_exec(sql);
    s_db_exec("PRAGMA user_version = 2");
    eng_store_t *st = s_open_as(true);
    cr_assert_eq(s_read(st, &k).reserved_pd, 10, "read by a check: 2 ended");
    eng_store_destroy(&st);
    cr_assert_eq(s_db_int("PRAGMA user_version"), 2, "a check upgrades nothing");
    st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 10);
    cr_assert_eq(s_snap_int("PRAGMA user_version"), 4);
    cr_assert_eq(s_snap_int("SELECT count(*) FROM resv_log"), 1, "rewritten as one row");
    cr_assert_eq(s_the_put(s_snap()).expires_ms, r.expires_ms, "the reservation as it was");
    eng_store_destroy(&st);
    st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 10, "kept by the journal");
    cr_assert(s_settle(st, 1, 7));
    s_sync(st);
    eng_store_destroy(&st);
    st = s_open();
    cr_assert_eq(s_read(st, &k).spent_pd, 7);
    cr_assert_eq(s_read(st, &k).reserved_pd, 0);
    eng_store_destroy(&st);
}

/* Two rows of one account (a file whose table lost its primary key) would
 * have two row ids for one account in memory: refused, with the name. */
Test(ledger, an_account_or_key_in_two_rows_is_refused)
{
    eng_store_key_t k = s_one_reservation("sha256:j5");
    static const struct {
        const char *table, *cols, *says;
    } cases[] = {
        {"accounts", "name TEXT, balance_pd INTEGER, spent_pd INTEGER", "account 'acct': two rows"},
        {"keys",
         "hash TEXT, account TEXT, spent_pd INTEGER, requests INTEGER, prompt_tokens INTEGER,"
         " completion_tokens INTEGER, day INTEGER, day_spent_pd INTEGER, day_requests INTEGER,"
         " day_free_requests INTEGER",
         "key 'sha256:j5': two rows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *sql = sqlite3_mprintf("ALTER TABLE %s RENAME TO old; CREATE TABLE %s(%s);"
                                    " INSERT INTO %s SELECT * FROM old;"
                                    " INSERT INTO %s SELECT * FROM old; DROP TABLE old",
                                    cases[i].table, cases[i].table, cases[i].cols, cases[i].table,
                                    cases[i].table);
        s_db_exec(sql);
        sqlite3_free(sql);
        s_open_fails(i, cases[i].says);
        sql = sqlite3_mprintf("DELETE FROM %s WHERE rowid NOT IN (SELECT min(rowid) FROM %s"
                              " GROUP BY %s)",
                              cases[i].table, cases[i].table, i == 0 ? "name" : "hash");
        s_db_exec(sql);
        sqlite3_free(sql);
    }
    eng_store_t *st = s_open();
    cr_assert_eq(s_read(st, &k).reserved_pd, 10, "one row each again");
    eng_store_destroy(&st);
}

/* Expiries are not journaled: a restart leaves out the reservations that
 * expired before it, instead of loading them to expire them again (and
 * failing to start once more were journaled than a start can hold). */
Test(ledger, a_restart_leaves_out_reservations_expired_before_it)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:j6", "acct");
    s_topup(st, "acct", USD);
    for (uint64_t d = 1; d <= 3; d++) {
        cr_assert_eq(s_reserve(st, &k, d, 10, false, NULL), HPP_OK); /* due at 301000 */
    }
    eng_store_resv_t later = {
        .decision = 4, .amount_pd = 1000, .day = 20000, .now_ms = 1000, .expires_ms = 900000};
    char err[256];
    cr_assert_eq(st->ops->reserve(st, &k, &later, NULL, err, sizeof err), HPP_OK, "%s", err);
    s_sync(st);
    eng_store_destroy(&st);
    eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1, .now_ms = 301000};
    st = eng_store_open(s_spec, &cfg, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_assert_eq(s_read(st, &k).reserved_pd, 1000, "only the one not expired");
    cr_assert_eq(s_read(st, &k).acct_reserved_pd, 1000);
    cr_assert_not(s_settle(st, 1, 10), "expired before the restart");
    cr_assert(s_settle(st, 4, 900));
    cr_assert_eq(s_read(st, &k).spent_pd, 900);
    eng_store_destroy(&st);
}

/* A decision checked on one day whose reservation comes after another has
 * moved the key to the next day counts in the key's day: the day's limits
 * apply to it, and its end gives back to that day. */
Test(ledger, a_reservation_of_an_earlier_day_counts_in_the_keys_day)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:j7", "acct");
    k.daily_pd = 100;
    s_topup(st, "acct", USD);
    char err[160];
    eng_store_resv_t next = {
        .decision = 1, .amount_pd = 100, .day = 20001, .now_ms = 1000, .expires_ms = 9000};
    cr_assert_eq(st->ops->reserve(st, &k, &next, NULL, err, sizeof err), HPP_OK);
    eng_store_resv_t late = next;
    late.decision = 2;
    late.day = 20000;
    late.amount_pd = 30;
    eng_store_state_t s;
    cr_assert_eq(st->ops->reserve(st, &k, &late, &s, err, sizeof err), HPP_E_DAILY_LIMIT_REACHED,
                 "the day's 100 are reserved");
    bool hit = false;
    cr_assert_eq(st->ops->release(st, 1, &hit, err, sizeof err), HPP_OK);
    cr_assert_eq(st->ops->reserve(st, &k, &late, &s, err, sizeof err), HPP_OK);
    cr_assert_eq(s.day, 20001);
    cr_assert_eq(s.day_reserved_pd, 30);
    cr_assert_eq(st->ops->release(st, 2, &hit, err, sizeof err), HPP_OK);
    cr_assert(hit);
    cr_assert_eq(st->ops->read(st, &k, 20001, &s, err, sizeof err), HPP_OK);
    cr_assert_eq(s.day_reserved_pd, 0, "given back to the day it was added to");
    eng_store_destroy(&st);
}

/* Costs are summed held at the int64 bounds (a report's cost is bounded,
 * their sum is not). */
Test(ledger, spend_is_held_at_the_bounds)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:j8", "acct");
    for (uint64_t d = 1; d <= 2; d++) {
        char err[160];
        int64_t b;
        cr_assert_eq(st->ops->adjust(st, "acct", USD, true, &b, err, sizeof err), HPP_OK);
        cr_assert_eq(s_reserve(st, &k, d, 10, false, NULL), HPP_OK);
        cr_assert(s_settle(st, d, INT64_MAX - 5));
    }
    eng_store_state_t s = s_read(st, &k);
    cr_assert_eq(s.spent_pd, INT64_MAX);
    cr_assert_eq(s.balance_pd, USD - (INT64_MAX - 5));
    eng_store_destroy(&st);
}

/* Commits reach the WAL every batch and the disk (an fdatasync) at least
 * every 100 ms or when someone waits: a sync that comes after the batch
 * was committed still gets its fdatasync, and so does nobody's waiting. */
Test(ledger, a_sync_after_the_commit_is_still_a_sync)
{
    eng_store_t *st = s_open();
    eng_store_key_t k = s_key("sha256:ac", "acct");
    s_topup(st, "acct", USD); /* synced */
    cr_assert_eq(s_reserve(st, &k, 1, 100, false, NULL), HPP_OK);
    int64_t requests = 0;
    for (int i = 0; i < 500 && requests != 1; i++) { /* committed by the writer alone */
        requests = s_snap_int("SELECT day_requests FROM keys WHERE hash = 'sha256:ac'");
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    cr_assert_eq(requests, 1, "the reservation was not committed");
    char err[160];
    cr_assert_eq(st->ops->sync(st, 5000, err, sizeof err), HPP_OK, "%s", err);
    eng_store_destroy(&st);
}

Test(ledger, accounts_list_every_account)
{
    eng_store_t *st = s_open();
    s_topup(st, "a", 5);
    s_topup(st, "b", 7);
    s_topup(st, "a", 1);
    s_acc_t acc = {0, 0};
    char err[160];
    cr_assert_eq(st->ops->accounts(st, s_count_account, &acc, err, sizeof err), HPP_OK);
    cr_assert_eq(acc.n, 2);
    cr_assert_eq(acc.sum, 13);
    eng_store_destroy(&st);
}

Test(ledger, remaining_is_the_least_that_applies)
{
    eng_store_key_t k = s_key("sha256:00", "x");
    eng_store_state_t s = {.balance_pd = 100, .acct_reserved_pd = 10};
    cr_assert_eq(eng_store_remaining(&k, &s), 90);
    k.limit_pd = 50;
    s.spent_pd = 20;
    s.reserved_pd = 5;
    cr_assert_eq(eng_store_remaining(&k, &s), 25);
    k.daily_pd = 30;
    s.day_spent_pd = 10;
    s.day_reserved_pd = 5;
    cr_assert_eq(eng_store_remaining(&k, &s), 15);
}

Test(ledger, decision_ids_carry_the_node)
{
    eng_ledger_cfg_t cfg = {.hold_s = 300, .node = 513};
    char err[160];
    eng_ledger_t *l = eng_ledger_new(&cfg, err, sizeof err);
    cr_assert_not_null(l, "%s", err);
    cr_assert_eq(eng_ledger_node(l), 513);
    uint64_t id = eng_ledger_decision_id(l, 12345);
    cr_assert_eq(id >> 48, 513);
    cr_assert_eq(id & ((UINT64_C(1) << 48) - 1), 12345);
    cr_assert_gt(eng_ledger_id_base(), 0);
    eng_ledger_destroy(&l);
}

Test(ledger, an_unknown_store_is_refused)
{
    char err[256];
    eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1};
    cr_assert_null(eng_store_open("mysql://x", &cfg, err, sizeof err));
    cr_assert(strstr(err, "unknown store"), "%s", err);
    cr_assert_null(eng_store_open("sqlite:/nonexistent-dir/x.db", &cfg, err, sizeof err));
    cr_assert(strstr(err, "cannot open"), "%s", err);
    char fifo[96];
    snprintf(fifo, sizeof fifo, "%s/fifo.db", s_dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    snprintf(s_spec, sizeof s_spec, "sqlite:%s", fifo);
    cr_assert_not(eng_store_in_use(s_spec), "a FIFO is no engine's: the open says what it is");
    cr_assert_null(eng_store_open(s_spec, &cfg, err, sizeof err));
    cr_assert(strstr(err, "fifo.db: not a regular file"), "%s", err);
}

/* The ring files in the test's folder. */
static int s_rings(void)
{
    int n = 0;
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        n += len > 5 && strcmp(e->d_name + len - 5, ".ring") == 0;
    }
    closedir(d);
    return n;
}

/* Runs `body` on the store in a child process that then dies without
 * closing it, as if killed; the child's store must have worked. */
static void s_in_a_child_killed(bool (*body)(eng_store_t *, const eng_store_key_t *),
                                const eng_store_key_t *k)
{
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        char err[256];
        eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1};
        eng_store_t *c = eng_store_open(s_spec, &cfg, err, sizeof err);
        _exit(c && body(c, k) ? 0 : 1); /* no close */
    }
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's store worked");
}

static bool s_three_and_a_settle(eng_store_t *c, const eng_store_key_t *k)
{
    char err[256];
    eng_store_settle_t set = {.decision = 1, .cost_pd = 7, .now_ms = 2000};
    return s_reserve(c, k, 1, 10, false, NULL) == HPP_OK &&
           s_reserve(c, k, 2, 20, false, NULL) == HPP_OK &&
           s_reserve(c, k, 3, 30, false, NULL) == HPP_OK &&
           c->ops->settle(c, &set, NULL, err, sizeof err) == HPP_OK;
}

/* A process that dies with its store open (the writer commits about once
 * a second, so nothing of this was committed): what it published is in
 * its ring file, which the next open commits. */
Test(ledger, a_store_its_process_never_closed_is_committed_from_its_ring)
{
    eng_store_key_t k = s_key("sha256:r1", "acct");
    eng_store_t *st = s_open();
    s_topup(st, "acct", USD); /* synced */
    eng_store_destroy(&st);
    cr_assert_eq(s_rings(), 0, "a clean close removes the ring");
    s_in_a_child_killed(s_three_and_a_settle, &k);
    cr_assert_eq(s_rings(), 1, "the ring outlives the process");
    cr_assert_eq(s_db_int("SELECT pos FROM ring"), 0, "nothing of it was committed");
    cr_assert_eq(s_db_int("SELECT count(*) FROM resv_log"), 0);
    st = s_open();
    eng_store_state_t s = s_read(st, &k);
    cr_assert_eq(s.reserved_pd, 50, "reservations 2 and 3");
    cr_assert_eq(s.spent_pd, 7, "reservation 1 settled");
    cr_assert_eq(s.day_requests, 3);
    cr_assert_not(s_settle(st, 1, 7), "a settle replayed is not settled again");
    cr_assert(s_settle(st, 2, 20));
    eng_store_destroy(&st);
    cr_assert_eq(s_rings(), 0);
    st = s_open();
    s = s_read(st, &k);
    cr_assert_eq(s.reserved_pd, 30);
    cr_assert_eq(s.spent_pd, 27);
    eng_store_destroy(&st);
}

/* The path of the one ring file in the test's folder. */
static void s_ring_path(char *out, size_t n)
{
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    out[0] = '\0';
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".ring") == 0) {
            snprintf(out, n, "%s/%s", s_dir, e->d_name);
        }
    }
    closedir(d);
    cr_assert(out[0], "a ring file");
}

static bool s_one_synced_one_not(eng_store_t *c, const eng_store_key_t *k)
{
    char err[256];
    return s_reserve(c, k, 1, 10, false, NULL) == HPP_OK &&
           c->ops->sync(c, 5000, err, sizeof err) == HPP_OK &&
           s_reserve(c, k, 2, 20, false, NULL) == HPP_OK;
}

/* A ring whose entries pass its own checks but not the load's (here the
 * entry of decision 2 made to repeat decision 1, which the state file
 * holds already: as a program other than the engine could write it): the
 * open refuses and commits none of it, the ring stays, and once it is
 * moved aside --ledger-ring-lost starts from the state file as it was. */
Test(ledger, a_ring_that_does_not_load_with_the_state_file_changes_neither)
{
    eng_store_key_t k = s_key("sha256:r2", "acct");
    eng_store_t *st = s_open();
    s_topup(st, "acct", USD);
    eng_store_destroy(&st);
    s_in_a_child_killed(s_one_synced_one_not, &k);
    int64_t pos = s_db_int("SELECT pos FROM ring"), epoch = s_db_int("SELECT epoch FROM ring");
    cr_assert_gt(pos, 0, "decision 1 was committed");
    char ring[256];
    s_ring_path(ring, sizeof ring);
    int fd = open(ring, O_RDWR);
    cr_assert_geq(fd, 0);
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    uint8_t *base = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(base, MAP_FAILED);
    /* The entries end the file: S_RING (2^18) of them. */
    eng_ring_change_t *e =
        (eng_ring_change_t *)(base + sb.st_size - (1u << 18) * sizeof(eng_ring_change_t));
    cr_assert_eq(e[pos].kind, ENG_RING_RESV_PUT);
    cr_assert_eq(e[pos].decision, 2);
    e[pos].decision = e[pos - 1].decision; /* decision 1's, again */
    munmap(base, (size_t)sb.st_size);
    close(fd);

    char err[512];
    eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1};
    cr_assert_null(eng_store_open(s_spec, &cfg, err, sizeof err));
    cr_assert(strstr(err, "reservation 1: twice"), "the load's reason: %s", err);
    cr_assert(strstr(err, "read with the 1 change of its ring"), "%s", err);
    cr_assert(strstr(err, ring), "names the ring: %s", err);
    cr_assert_eq(s_db_int("SELECT pos FROM ring"), pos, "the state file is as it was");
    cr_assert_eq(s_db_int("SELECT epoch FROM ring"), epoch);
    cr_assert_eq(s_rings(), 1, "the ring stays");

    char aside[300];
    snprintf(aside, sizeof aside, "%s.aside", ring);
    cr_assert_eq(rename(ring, aside), 0);
    cr_assert_null(eng_store_open(s_spec, &cfg, err, sizeof err), "a ring missing is refused");
    cfg.ring_lost = true;
    st = eng_store_open(s_spec, &cfg, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    eng_store_state_t s2 = s_read(st, &k);
    cr_assert_eq(s2.reserved_pd, 10, "decision 1, committed before; not the ring's");
    cr_assert(s_settle(st, 1, 10));
    eng_store_destroy(&st);
}

/* A state file is one engine's: a second store on it (another engine, or a
 * --check while one runs) is refused, saying so, until the first closes,
 * and eng_store_in_use says so beforehand (--check then reads nothing); a
 * file that is not a database is refused as such. */
Test(ledger, a_state_file_in_use_is_refused)
{
    cr_assert_not(eng_store_in_use(s_spec), "no file yet");
    eng_store_t *st = s_open();
    s_topup(st, "acct", USD);
    cr_assert(eng_store_in_use(s_spec));
    cr_assert_not(eng_store_in_use("redis+unix:/nonexistent.sock"), "shared by design");
    char err[256] = "";
    for (int check = 0; check < 2; check++) {
        eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 2, .check = check};
        cr_assert_null(eng_store_open(s_spec, &cfg, err, sizeof err), "check %d opened", check);
        cr_assert(strstr(err, "ledger.db: the state file is in use by another process"), "%s", err);
    }
    eng_store_destroy(&st);
    cr_assert_not(eng_store_in_use(s_spec), "closed");
    st = s_open();
    cr_assert_eq(
        s_read(st, &(eng_store_key_t){.hash = "sha256:none", .account = "acct"}).balance_pd, USD,
        "open again once the first has closed");
    eng_store_destroy(&st);
    s_db_exec("PRAGMA user_version = 0"); /* the file is free: a connection of our own may write */
    char cmd[320];
    snprintf(cmd, sizeof cmd, "printf 'not a database, not at all...' > '%s/ledger.db'", s_dir);
    cr_assert_eq(system(cmd), 0);
    eng_store_cfg_t cfg = {.ring_dir = s_dir, .node = 1};
    cr_assert_null(eng_store_open(s_spec, &cfg, err, sizeof err));
    cr_assert(strstr(err, "not a SQLite database"), "%s", err);
    /* A database whose WAL cannot be opened (here a directory in its place)
     * is no less a database: the refusal names the WAL, not the file. */
    snprintf(cmd, sizeof cmd, "rm -f '%s/ledger.db'", s_dir);
    cr_assert_eq(system(cmd), 0);
    st = s_open();
    eng_store_destroy(&st);
    snprintf(cmd, sizeof cmd, "rm -f '%s/ledger.db-wal' && mkdir '%s/ledger.db-wal'", s_dir, s_dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_null(eng_store_open(s_spec, &cfg, err, sizeof err));
    cr_assert(strstr(err, "ledger.db: cannot use it or its WAL (") && strstr(err, "ledger.db-wal)"),
              "%s", err);
    cr_assert_null(strstr(err, "not a SQLite database"), "%s", err);
}

/* step_down in the policy --------------------------------------------------- */

#include "policy_fixture.h"

static char *s_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s (tests run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static const char s_step_policy[] = "settings { free_fallback off }\n"
                                    "tier free max $0\n"
                                    "tier budget max $0.15\n"
                                    "tier mid max $1.50\n"
                                    "tier standard max $10\n"
                                    "tier premium\n"
                                    "group team models \"*\" step_down $5 mid, $0.50 budget, "
                                    "$0.01 free\n"
                                    "group plain models \"*\"\n"
                                    "route r { tier standard }\n";

static const char *s_tier_for(const eng_policy_t *pol, const char *group, hpp_pusd_t remaining,
                              hpp_status_t *st)
{
    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 1000;
    f.output_tokens = 500;
    f.group = (hpp_str_t){group, strlen(group)};
    static eng_decision_t d;
    *st = eng_resolve_remaining(pol, &f, remaining, &d, NULL);
    return d.status == HPP_OK ? d.tier_name : "";
}

Test(ledger_policy, step_down_caps_the_tier_and_ends_free)
{
    char *json = s_file("policies/catalog.json");
    eng_catalog_t *cat = fixture_catalog(json);
    eng_policy_t *pol = fixture_policy(s_step_policy, cat);
    cr_assert_not_null(pol);
    hpp_status_t st;
    cr_assert_str_eq(s_tier_for(pol, "team", ENG_NO_REMAINING, &st), "standard", "no ledger");
    cr_assert_str_eq(s_tier_for(pol, "team", 10 * USD, &st), "standard");
    cr_assert_str_eq(s_tier_for(pol, "team", 4 * USD, &st), "mid");
    cr_assert_str_eq(s_tier_for(pol, "team", USD / 4, &st), "budget");
    cr_assert_str_eq(s_tier_for(pol, "team", USD / 1000, &st), "free", "free at the end");
    cr_assert_str_eq(s_tier_for(pol, "team", -5, &st), "free", "even overspent");
    /* Below the first threshold, the remaining money is the budget: $0.00005
     * buys nothing paid (free_fallback off here: the answer is the 402). */
    cr_assert_str_eq(s_tier_for(pol, "team", USD / 20000, &st), "free");
    cr_assert_str_eq(s_tier_for(pol, "plain", USD / 1000, &st), "standard",
                     "a group without step_down is not stepped");
    cr_assert(eng_policy_group_steps(pol, (hpp_str_t){"team", 4}));
    cr_assert_not(eng_policy_group_steps(pol, (hpp_str_t){"plain", 5}));
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    free(json);
}

Test(ledger_policy, step_down_is_checked)
{
    char *json = s_file("policies/catalog.json");
    eng_catalog_t *cat = fixture_catalog(json);
    const char *bad[] = {
        "tier a max $1\ntier b\ngroup g models \"*\" step_down $5\nroute r { tier b }\n",
        "tier a max $1\ntier b\ngroup g models \"*\" step_down 5 a\nroute r { tier b }\n",
        "tier a max $1\ntier b\ngroup g models \"*\" step_down $5 zz\nroute r { tier b }\n",
        "tier a max $1\ntier b\ngroup g models \"*\" step_down $1 a, $5 a\nroute r { tier b }\n",
        "tier a max $1\ntier b\ngroup g models \"*\" step_down $5 a, $1 b\nroute r { tier b }\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eng_policy_t *pol = fixture_policy(bad[i], cat);
        cr_assert_null(pol, "accepted: %s", bad[i]);
    }
    eng_catalog_destroy(&cat);
    free(json);
}
