/* eng_redis.c - the ledger's state in Redis (see eng_redis.h).
 *
 * The scripts are below as C strings, one Lua prelude shared by all. They
 * are loaded with SCRIPT LOAD when a store opens and called with EVALSHA; a
 * NOSCRIPT answer (Redis restarted, or SCRIPT FLUSH) loads them again on that
 * connection and calls once more.
 */
#include "eng_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "hpp_file.h"

/* ---- The scripts ------------------------------------------------------ */

/* Shared helpers. Money and counts stay decimal text: z() reads a missing
 * field as "0", neg() negates a canonical integer text, add() is HINCRBY
 * (skipped for 0, since "-0" is not an integer to Redis), cmp() compares two
 * canonical integer texts exactly (sign, then length, then digits byte by
 * byte, never through a Lua number nor the locale's collation). state()
 * answers {status, the account's balance and reserved, the key's spent,
 * reserved, requests, prompt and completion tokens, the day's spent,
 * reserved, requests and free requests}. finish() releases reservation r,
 * charging `cost` (text, >= 0; "-1": the reservation's amount) and the
 * tokens; false when r is not held. */
#define RS_PRELUDE                                                                                 \
    "local function z(s) if s then return s end return '0' end\n"                                  \
    "local function neg(s)\n"                                                                      \
    "  if s == '0' then return '0' end\n"                                                          \
    "  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end\n"                           \
    "  return '-' .. s\n"                                                                          \
    "end\n"                                                                                        \
    "local function add(k, f, s) if s ~= '0' then redis.call('HINCRBY', k, f, s) end end\n"        \
    "local function cmp(a, b)\n"                                                                   \
    "  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'\n"                    \
    "  if na ~= nb then if na then return -1 end return 1 end\n"                                   \
    "  if na then a, b = string.sub(b, 2), string.sub(a, 2) end\n"                                 \
    "  if #a ~= #b then if #a < #b then return -1 end return 1 end\n"                              \
    "  for i = 1, #a do\n"                                                                         \
    "    local x, y = string.byte(a, i), string.byte(b, i)\n"                                      \
    "    if x ~= y then if x < y then return -1 end return 1 end\n"                                \
    "  end\n"                                                                                      \
    "  return 0\n"                                                                                 \
    "end\n"                                                                                        \
    "local function state(st, a, k, d)\n"                                                          \
    "  local av = redis.call('HMGET', a, 'balance', 'reserved')\n"                                 \
    "  local kv = redis.call('HMGET', k, 'spent', 'reserved', 'requests', 'prompt_tokens',\n"      \
    "                        'completion_tokens')\n"                                               \
    "  local dv = redis.call('HMGET', d, 'spent', 'reserved', 'requests', 'free_requests')\n"      \
    "  return {st, z(av[1]), z(av[2]), z(kv[1]), z(kv[2]), z(kv[3]), z(kv[4]), z(kv[5]),\n"        \
    "          z(dv[1]), z(dv[2]), z(dv[3]), z(dv[4])}\n"                                          \
    "end\n"                                                                                        \
    "local function finish(r, id, expkey, cost, pt, ct, ttl, settle)\n"                            \
    "  local v = redis.call('HMGET', r, 'a', 'k', 'd', 'amt')\n"                                   \
    "  if not v[1] or not v[2] or not v[3] or not v[4] then\n"                                     \
    "    redis.call('ZREM', expkey, id)\n"                                                         \
    "    return false\n"                                                                           \
    "  end\n"                                                                                      \
    "  local a, k, d, amt = v[1], v[2], v[3], v[4]\n"                                              \
    "  if cost == '-1' then cost = amt end\n"                                                      \
    "  add(a, 'reserved', neg(amt)); add(a, 'avail', amt)\n"                                       \
    "  add(a, 'balance', neg(cost)); add(a, 'avail', neg(cost)); add(a, 'spent', cost)\n"          \
    "  add(k, 'reserved', neg(amt)); add(k, 'used', neg(amt))\n"                                   \
    "  add(k, 'spent', cost); add(k, 'used', cost)\n"                                              \
    "  add(k, 'prompt_tokens', pt); add(k, 'completion_tokens', ct)\n"                             \
    "  if settle then redis.call('HINCRBY', k, 'requests', 1) end\n"                               \
    "  add(d, 'reserved', neg(amt)); add(d, 'used', neg(amt))\n"                                   \
    "  add(d, 'spent', cost); add(d, 'used', cost)\n"                                              \
    "  redis.call('EXPIRE', d, ttl)\n"                                                             \
    "  redis.call('DEL', r)\n"                                                                     \
    "  redis.call('ZREM', expkey, id)\n"                                                           \
    "  return true\n"                                                                              \
    "end\n"

/* reserve: KEYS account, key, day, reservation, expiry set; ARGV amount,
 * free (0|1), limit, daily, daily_requests, free_daily, free_daily_funded
 * (-1: none), expires_ms, decision, day ttl (s). The checks in the order of
 * eng_redis.h; a decision already held answers its state unchanged. */
static const char RS_RESERVE[] = RS_PRELUDE
    "local a, k, d, r = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "if redis.call('EXISTS', r) == 1 then return state('held', a, k, d) end\n"
    "local amt, free = ARGV[1], ARGV[2] == '1'\n"
    "local acct = redis.call('HMGET', a, 'balance', 'avail')\n"
    "local day = redis.call('HMGET', d, 'used', 'requests', 'free_requests')\n"
    "if not free then\n"
    "  if cmp(z(acct[2]), '0') <= 0 then return state('insufficient_balance', a, k, d) end\n"
    "  if ARGV[3] ~= '-1' and cmp(z(redis.call('HGET', k, 'used')), ARGV[3]) >= 0 then\n"
    "    return state('key_limit_reached', a, k, d)\n"
    "  end\n"
    "  if ARGV[4] ~= '-1' and cmp(z(day[1]), ARGV[4]) >= 0 then\n"
    "    return state('daily_limit_reached', a, k, d)\n"
    "  end\n"
    "end\n"
    "if ARGV[5] ~= '-1' and cmp(z(day[2]), ARGV[5]) >= 0 then\n"
    "  return state('daily_limit_reached', a, k, d)\n"
    "end\n"
    "if free then\n"
    "  local allow = ARGV[6]\n"
    "  if cmp(z(acct[1]), '0') > 0 then allow = ARGV[7] end\n"
    "  if allow ~= '-1' and cmp(z(day[3]), allow) >= 0 then\n"
    "    return state('daily_limit_reached', a, k, d)\n"
    "  end\n"
    "end\n"
    "add(a, 'reserved', amt); add(a, 'avail', neg(amt))\n"
    "add(k, 'reserved', amt); add(k, 'used', amt)\n"
    "add(d, 'reserved', amt); add(d, 'used', amt); redis.call('HINCRBY', d, 'requests', 1)\n"
    "if free then redis.call('HINCRBY', d, 'free_requests', 1) end\n"
    "redis.call('EXPIRE', d, ARGV[10])\n"
    "redis.call('HSET', r, 'a', a, 'k', k, 'd', d, 'amt', amt, 'free', ARGV[2], 'exp', ARGV[8])\n"
    "redis.call('ZADD', KEYS[5], ARGV[8], ARGV[9])\n"
    "return state('ok', a, k, d)\n";

/* settle: KEYS reservation, expiry set; ARGV decision, cost, prompt and
 * completion tokens, day ttl. 1 when settled, 0 when not held. release is
 * the same script at cost 0 without tokens. */
static const char RS_SETTLE[] = RS_PRELUDE
    "if finish(KEYS[1], ARGV[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1') "
    "then return 1 end\n"
    "return 0\n";

/* expire: KEYS expiry set; ARGV now_ms, batch, prefix, day ttl. The number
 * of reservations released (at most batch). */
static const char RS_EXPIRE[] = RS_PRELUDE
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "for _, id in ipairs(ids) do\n"
    "  finish(ARGV[3] .. 'r:' .. id, id, KEYS[1], '0', '0', '0', ARGV[4], false)\n"
    "end\n"
    "return #ids\n";

/* read: KEYS account, key, day. */
static const char RS_READ[] = RS_PRELUDE "return state('ok', KEYS[1], KEYS[2], KEYS[3])\n";

/* adjust: KEYS account; ARGV amount, absolute (0|1). The new balance. The
 * first write is a pcall: an overflowing balance changes nothing and
 * answers Redis's error. */
static const char RS_ADJUST[] =
    RS_PRELUDE "local a = KEYS[1]\n"
               "if ARGV[2] == '1' then\n"
               "  local old = z(redis.call('HGET', a, 'balance'))\n"
               "  local e = redis.pcall('HSET', a, 'balance', ARGV[1])\n"
               "  if type(e) == 'table' and e.err then return e end\n"
               "  add(a, 'avail', neg(old)); add(a, 'avail', ARGV[1])\n"
               "else\n"
               "  local e = redis.pcall('HINCRBY', a, 'balance', ARGV[1])\n"
               "  if type(e) == 'table' and e.err then return e end\n"
               "  add(a, 'avail', ARGV[1])\n"
               "end\n"
               "return z(redis.call('HGET', a, 'balance'))\n";

typedef enum {
    RS_S_RESERVE,
    RS_S_SETTLE,
    RS_S_EXPIRE,
    RS_S_READ,
    RS_S_ADJUST,
    RS_S_COUNT
} rs_script_t;

static const struct {
    const char *name; /* for messages */
    const char *text;
    bool retry; /* safe to send again when the first attempt's fate is unknown */
} RS_SCRIPTS[RS_S_COUNT] = {
    [RS_S_RESERVE] = {"reserve", RS_RESERVE, true}, /* a held decision is not reserved twice */
    [RS_S_SETTLE] = {"settle", RS_SETTLE, true},    /* settles once */
    [RS_S_EXPIRE] = {"expire", RS_EXPIRE, true},    [RS_S_READ] = {"read", RS_READ, true},
    [RS_S_ADJUST] = {"adjust", RS_ADJUST, false}, /* a top-up must not apply twice */
};

/* Money per call is bounded so that no sum the scripts keep can overflow
 * Redis's 64-bit integers in practice: $1M per amount, $4M per balance. */
#define RS_AMOUNT_MAX INT64_C(1000000000000000000)
#define RS_BALANCE_MAX INT64_C(4000000000000000000)

/* ---- The store ---------------------------------------------------------- */

typedef struct rs_conn {
    redisContext *c; /* NULL: not connected */
    struct rs_conn *next;
} rs_conn_t;

struct eng_redis {
    char name[300]; /* "redis+unix:PATH" / "redis://HOST:PORT" */
    char host[256];
    int port;
    char path[256]; /* unix socket, "" for TCP */
    char prefix[ENG_REDIS_PREFIX_MAX + 1];
    size_t prefix_len;
    int db;
    int connect_ms, command_ms;
    char *password; /* NULL: no AUTH; wiped and freed by destroy */
    size_t password_len;
    char sha[RS_S_COUNT][41];
    pthread_mutex_t mu; /* guards idle and nconns only */
    rs_conn_t *idle;
    size_t nconns;
    _Atomic int64_t retry_after_ms; /* no connect before this (monotonic ms) */
};

static int64_t rs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval rs_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* ---- Spec and secret ----------------------------------------------------- */

static bool rs_int_opt(const char *v, size_t n, int lo, int hi, int *out)
{
    if (n == 0 || n > 9) {
        return false;
    }
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        x = x * 10 + (v[i] - '0');
    }
    if (x < lo || x > hi) {
        return false;
    }
    *out = x;
    return true;
}

static int rs_parse_options(eng_redis_t *self, const char *spec, const char *q, char *err,
                            size_t errlen)
{
    while (*q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq) {
            snprintf(err, errlen, "%s: option '%.*s': expected NAME=VALUE", spec, (int)n, q);
            return -1;
        }
        size_t kn = (size_t)(eq - q);
        const char *v = eq + 1;
        size_t vn = n - kn - 1;
        bool good = true;
        if (kn == 6 && memcmp(q, "prefix", 6) == 0) {
            good = vn >= 1 && vn <= ENG_REDIS_PREFIX_MAX;
            for (size_t i = 0; good && i < vn; i++) {
                good = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.",
                              v[i]) != NULL;
            }
            if (good) {
                memcpy(self->prefix, v, vn);
                self->prefix[vn] = '\0';
            }
        } else if (kn == 2 && memcmp(q, "db", 2) == 0) {
            good = rs_int_opt(v, vn, 0, 1000000, &self->db);
        } else if (kn == 10 && memcmp(q, "connect_ms", 10) == 0) {
            good = rs_int_opt(v, vn, 1, 600000, &self->connect_ms);
        } else if (kn == 10 && memcmp(q, "timeout_ms", 10) == 0) {
            good = rs_int_opt(v, vn, 1, 600000, &self->command_ms);
        } else {
            snprintf(err, errlen, "%s: unknown option '%.*s' (prefix, db, connect_ms, timeout_ms)",
                     spec, (int)kn, q);
            return -1;
        }
        if (!good) {
            snprintf(err, errlen, "%s: option %.*s: bad value '%.*s'", spec, (int)kn, q, (int)vn,
                     v);
            return -1;
        }
        q = end ? end + 1 : q + n;
    }
    return 0;
}

static int rs_parse_spec(eng_redis_t *self, const char *spec, char *err, size_t errlen)
{
    const char *q = strchr(spec, '?');
    size_t n = q ? (size_t)(q - spec) : strlen(spec);
    if (n > 11 && memcmp(spec, "redis+unix:", 11) == 0) {
        if (n - 11 >= sizeof self->path) {
            snprintf(err, errlen, "%.40s...: socket path too long", spec);
            return -1;
        }
        memcpy(self->path, spec + 11, n - 11);
        self->path[n - 11] = '\0';
        snprintf(self->name, sizeof self->name, "redis+unix:%s", self->path);
    } else if (n > 8 && memcmp(spec, "redis://", 8) == 0) {
        const char *h = spec + 8, *e = spec + n;
        const char *colon;
        size_t hn;
        if (memchr(h, '@', (size_t)(e - h))) {
            /* The address is not quoted: what precedes '@' may be a password. */
            snprintf(err, errlen,
                     "redis://: no user or password in the address (--ledger-secret FILE gives "
                     "the password)");
            return -1;
        }
        if (*h == '[') { /* [v6]:port */
            const char *rb = memchr(h, ']', (size_t)(e - h));
            if (!rb) {
                snprintf(err, errlen, "%s: missing ']' after an IPv6 address", spec);
                return -1;
            }
            h++;
            hn = (size_t)(rb - h);
            colon = rb + 1 < e && rb[1] == ':' ? rb + 1 : NULL;
            if (!colon && rb + 1 != e) {
                snprintf(err, errlen, "%s: expected ':PORT' after ']'", spec);
                return -1;
            }
        } else {
            colon = memchr(h, ':', (size_t)(e - h));
            hn = colon ? (size_t)(colon - h) : (size_t)(e - h);
        }
        if (hn == 0 || hn >= sizeof self->host || memchr(h, '/', hn)) {
            snprintf(err, errlen, "%s: expected redis://HOST:PORT", spec);
            return -1;
        }
        memcpy(self->host, h, hn);
        self->host[hn] = '\0';
        self->port = 6379;
        if (colon && !rs_int_opt(colon + 1, (size_t)(e - colon - 1), 1, 65535, &self->port)) {
            snprintf(err, errlen, "%s: bad port '%.*s' (1-65535)", spec, (int)(e - colon - 1),
                     colon + 1);
            return -1;
        }
        snprintf(self->name, sizeof self->name, "redis://%s:%d", self->host, self->port);
    } else {
        snprintf(err, errlen, "%s: expected redis://HOST:PORT or redis+unix:PATH", spec);
        return -1;
    }
    return q ? rs_parse_options(self, spec, q + 1, err, errlen) : 0;
}

/* The password: the first line of `path` that is not blank or a comment.
 * The file must be a regular file that only its owner can read. */
static int rs_read_secret(eng_redis_t *self, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    mode_t mode = 0;
    char *text = hpp_file_read(path, 4096, "a secret file", &len, &mode, err, errlen);
    if (!text) {
        return -1;
    }
    int rc = -1;
    hpp_lines_t lines = {.text = text, .len = len};
    const char *line;
    size_t n, first;
    if (mode & 077) {
        snprintf(err, errlen,
                 "%s: a secret file must not be readable by others (mode %03o; chmod 600 it)", path,
                 (unsigned)(mode & 0777));
    } else {
        int got = hpp_lines_next(&lines, &line, &n, &first);
        if (got < 0) {
            snprintf(err, errlen, "%s:%zu:%zu: control byte in the password line", path,
                     lines.lineno, first);
        } else if (got == 0) {
            snprintf(err, errlen,
                     "%s: no password (its first line that is not blank or a '#' "
                     "comment is the password)",
                     path);
        } else {
            while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) {
                n--;
            }
            self->password = malloc(n - first + 1);
            if (!self->password) {
                snprintf(err, errlen, "%s: out of memory", path);
            } else {
                memcpy(self->password, line + first, n - first);
                self->password[n - first] = '\0';
                self->password_len = n - first;
                rc = 0;
            }
        }
    }
    sodium_memzero(text, len);
    free(text);
    return rc;
}

/* ---- Connections -------------------------------------------------------- */

/* The Redis errors that say "not now" rather than "wrong": the server is
 * loading, not the primary any more, not authenticated, out of memory. */
static bool rs_transient(const char *msg)
{
    static const char *const words[] = {"LOADING", "READONLY", "MASTERDOWN",  "NOAUTH", "WRONGPASS",
                                        "BUSY",    "TRYAGAIN", "CLUSTERDOWN", "OOM",    "NOPERM"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncmp(msg, words[i], n) == 0 && (msg[n] == ' ' || msg[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static void rs_drop(rs_conn_t *cn)
{
    if (cn->c) {
        redisFree(cn->c);
        cn->c = NULL;
    }
}

/* One command on a fresh connection during its setup (AUTH, SELECT, SCRIPT
 * LOAD): the reply, or NULL with err filled and the connection dropped. */
static redisReply *rs_setup_cmd(eng_redis_t *self, rs_conn_t *cn, const char *what, int argc,
                                const char **argv, const size_t *lens, int want_type, char *err,
                                size_t errlen)
{
    redisReply *r = redisCommandArgv(cn->c, argc, argv, lens);
    if (!r) {
        snprintf(err, errlen, "%s: %s: %s", self->name, what,
                 cn->c->errstr[0] ? cn->c->errstr : "no reply");
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s refused: %.200s", self->name, what, r->str);
    } else if (r->type != want_type) {
        snprintf(err, errlen, "%s: %s: unexpected reply type %d", self->name, what, r->type);
    } else {
        return r;
    }
    if (r) {
        freeReplyObject(r);
    }
    rs_drop(cn);
    return NULL;
}

static int rs_load_scripts(eng_redis_t *self, rs_conn_t *cn, char *err, size_t errlen)
{
    for (int i = 0; i < RS_S_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", RS_SCRIPTS[i].text};
        size_t lens[] = {6, 4, strlen(RS_SCRIPTS[i].text)};
        char what[64];
        snprintf(what, sizeof what, "SCRIPT LOAD %s", RS_SCRIPTS[i].name);
        redisReply *r =
            rs_setup_cmd(self, cn, what, 3, argv, lens, REDIS_REPLY_STRING, err, errlen);
        if (!r) {
            return -1;
        }
        bool good = r->len == 40;
        if (good && self->sha[i][0] == '\0') {
            memcpy(self->sha[i], r->str, 40);
            self->sha[i][40] = '\0';
        } else if (good) {
            good = memcmp(self->sha[i], r->str, 40) == 0;
        }
        freeReplyObject(r);
        if (!good) {
            snprintf(err, errlen, "%s: %s: unexpected SHA1", self->name, what);
            rs_drop(cn);
            return -1;
        }
    }
    return 0;
}

/* Connects cn: connect, per-command timeout, AUTH, SELECT. A failure sets
 * the store's backoff, so the calls that follow answer at once. */
static int rs_connect(eng_redis_t *self, rs_conn_t *cn, char *err, size_t errlen)
{
    int64_t now = rs_now_ms();
    int64_t after = atomic_load(&self->retry_after_ms);
    if (now < after) {
        snprintf(err, errlen, "%s: down (the last connect failed; next try in %" PRId64 " ms)",
                 self->name, after - now);
        return -1;
    }
    struct timeval tv = rs_tv(self->connect_ms);
    cn->c = self->path[0] ? redisConnectUnixWithTimeout(self->path, tv)
                          : redisConnectWithTimeout(self->host, self->port, tv);
    if (!cn->c || cn->c->err) {
        snprintf(err, errlen, "%s: connect: %s", self->name,
                 cn->c ? cn->c->errstr : "out of memory");
        rs_drop(cn);
        atomic_store(&self->retry_after_ms, rs_now_ms() + ENG_REDIS_BACKOFF_MS);
        return -1;
    }
    if (redisSetTimeout(cn->c, rs_tv(self->command_ms)) != REDIS_OK) {
        snprintf(err, errlen, "%s: setting the command timeout: %s", self->name, cn->c->errstr);
        rs_drop(cn);
        return -1;
    }
    redisReply *r;
    if (self->password) {
        const char *argv[] = {"AUTH", self->password};
        size_t lens[] = {4, self->password_len};
        r = rs_setup_cmd(self, cn, "AUTH", 2, argv, lens, REDIS_REPLY_STATUS, err, errlen);
        if (!r) {
            atomic_store(&self->retry_after_ms, rs_now_ms() + ENG_REDIS_BACKOFF_MS);
            return -1;
        }
        freeReplyObject(r);
    }
    if (self->db != 0) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", self->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        r = rs_setup_cmd(self, cn, "SELECT", 2, argv, lens, REDIS_REPLY_STATUS, err, errlen);
        if (!r) {
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Whether an idle connection was closed by the server meanwhile (Redis
 * restarted, its idle timeout): readable with nothing asked is the end of
 * the stream or an error. Checked before each command, so that a command
 * sent only once (a top-up) does not go out on a connection that can no
 * longer answer; one poll, no wait. */
static bool rs_stale(const rs_conn_t *cn)
{
    struct pollfd p = {.fd = cn->c->fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

static rs_conn_t *rs_take(eng_redis_t *self, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->mu);
    rs_conn_t *cn = self->idle;
    if (cn) {
        self->idle = cn->next;
    } else if (self->nconns < ENG_REDIS_MAX_CONNS && (cn = calloc(1, sizeof *cn)) != NULL) {
        self->nconns++;
    }
    pthread_mutex_unlock(&self->mu);
    if (!cn) {
        snprintf(err, errlen, "%s: more than %d calls at once", self->name, ENG_REDIS_MAX_CONNS);
    }
    return cn;
}

static void rs_give(eng_redis_t *self, rs_conn_t *cn)
{
    pthread_mutex_lock(&self->mu);
    cn->next = self->idle;
    self->idle = cn;
    pthread_mutex_unlock(&self->mu);
}

/* ---- Calling a script ---------------------------------------------------- */

#define RS_MAX_ARGS 24

typedef struct {
    const char *v[RS_MAX_ARGS];
    size_t len[RS_MAX_ARGS];
    int n;
} rs_args_t;

static void rs_arg(rs_args_t *a, const char *s, size_t n)
{
    if (a->n >= RS_MAX_ARGS) { /* a programming error: every call site is fixed */
        abort();
    }
    a->v[a->n] = s;
    a->len[a->n] = n;
    a->n++;
}

/* Runs script s with a's arguments (a->v[3..]: keys then ARGV; the first
 * three are filled here): the reply, else NULL with the outcome in *rc and
 * err. A NOSCRIPT answer loads the scripts on this connection and runs
 * again; a broken connection is dropped, and an idempotent script is sent
 * once more on a new one. */
static redisReply *rs_eval(eng_redis_t *self, rs_script_t s, rs_args_t *a, int nkeys,
                           eng_redis_rc_t *rc, int *sent, char *err, size_t errlen)
{
    int nsent = 0;
    char nk[8];
    int nkn = snprintf(nk, sizeof nk, "%d", nkeys);
    a->v[0] = "EVALSHA";
    a->len[0] = 7;
    a->v[1] = self->sha[s];
    a->len[1] = 40;
    a->v[2] = nk;
    a->len[2] = (size_t)nkn;
    *rc = ENG_REDIS_UNAVAILABLE;
    rs_conn_t *cn = rs_take(self, err, errlen);
    if (!cn) {
        return NULL;
    }
    redisReply *r = NULL;
    int sends = RS_SCRIPTS[s].retry ? 2 : 1;
    bool loaded = false;
    while (!r && sends > 0) {
        bool fresh = false;
        if (cn->c && rs_stale(cn)) {
            rs_drop(cn);
        }
        if (!cn->c) {
            if (rs_connect(self, cn, err, errlen) != 0) {
                break;
            }
            fresh = true;
        }
        sends--;
        nsent++;
        r = redisCommandArgv(cn->c, a->n, a->v, a->len);
        if (!r) {
            /* Sent or not, run or not: unknown. Only a connection that had
             * served before (Redis may have restarted since) is replaced
             * and the script sent again. */
            snprintf(err, errlen, "%s: %s: %s", self->name, RS_SCRIPTS[s].name,
                     cn->c->errstr[0] ? cn->c->errstr : "connection lost");
            rs_drop(cn);
            if (fresh) {
                break;
            }
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !loaded) {
            /* Not run: load the scripts and send again, at no cost to the
             * retries. */
            freeReplyObject(r);
            r = NULL;
            loaded = true;
            sends++;
            nsent--;
            if (rs_load_scripts(self, cn, err, errlen) != 0) {
                break;
            }
        }
    }
    if (r && r->type == REDIS_REPLY_ERROR) {
        *rc = rs_transient(r->str) ? ENG_REDIS_UNAVAILABLE : ENG_REDIS_ERROR;
        snprintf(err, errlen, "%s: %s: %.300s", self->name, RS_SCRIPTS[s].name, r->str);
        freeReplyObject(r);
        r = NULL;
    } else if (r) {
        *rc = ENG_REDIS_OK;
    }
    rs_give(self, cn);
    if (sent) {
        *sent = nsent;
    }
    return r;
}

/* ---- Replies -------------------------------------------------------------- */

static bool rs_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 20) {
        return false;
    }
    char buf[24];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end != buf + n) {
        return false;
    }
    *out = v;
    return true;
}

/* An integer in a reply element: a bulk string of digits or an integer. */
static bool rs_elem_i64(const redisReply *e, int64_t *out)
{
    if (e->type == REDIS_REPLY_INTEGER) {
        *out = e->integer;
        return true;
    }
    return e->type == REDIS_REPLY_STRING && rs_i64(e->str, e->len, out);
}

static const char *rs_type_name(int t)
{
    switch (t) {
    case REDIS_REPLY_STRING:
        return "string";
    case REDIS_REPLY_ARRAY:
        return "array";
    case REDIS_REPLY_INTEGER:
        return "integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "status";
    case REDIS_REPLY_ERROR:
        return "error";
    default:
        return "unknown";
    }
}

static eng_redis_rc_t rs_bad_reply(const eng_redis_t *self, const char *step, const char *what,
                                   char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s: unexpected reply: %s", self->name, step, what);
    return ENG_REDIS_ERROR;
}

static const struct {
    const char *name;
    eng_redis_rc_t rc;
} RS_STATUS[] = {
    {"ok", ENG_REDIS_OK},
    {"insufficient_balance", ENG_REDIS_INSUFFICIENT_BALANCE},
    {"key_limit_reached", ENG_REDIS_KEY_LIMIT},
    {"daily_limit_reached", ENG_REDIS_DAILY_LIMIT},
    {"held", ENG_REDIS_DUPLICATE},
};

/* The state reply: {status, 11 integers}; the status's code. */
static eng_redis_rc_t rs_state_reply(const eng_redis_t *self, const char *step, const redisReply *r,
                                     eng_redis_state_t *st, char *err, size_t errlen)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 12) {
        char what[64];
        snprintf(what, sizeof what, "%s of %zu, expected an array of 12", rs_type_name(r->type),
                 r->type == REDIS_REPLY_ARRAY ? r->elements : (size_t)0);
        return rs_bad_reply(self, step, what, err, errlen);
    }
    int64_t *fields[11] = {&st->balance_pd,        &st->acct_reserved_pd, &st->spent_pd,
                           &st->reserved_pd,       &st->requests,         &st->prompt_tokens,
                           &st->completion_tokens, &st->day_spent_pd,     &st->day_reserved_pd,
                           &st->day_requests,      &st->day_free_requests};
    for (size_t i = 0; i < 11; i++) {
        if (!rs_elem_i64(r->element[i + 1], fields[i])) {
            char what[80];
            snprintf(what, sizeof what, "element %zu: %s, expected an integer", i + 2,
                     rs_type_name(r->element[i + 1]->type));
            return rs_bad_reply(self, step, what, err, errlen);
        }
    }
    const redisReply *s = r->element[0];
    for (size_t i = 0; s->type == REDIS_REPLY_STRING && i < sizeof RS_STATUS / sizeof RS_STATUS[0];
         i++) {
        if (s->len == strlen(RS_STATUS[i].name) && memcmp(s->str, RS_STATUS[i].name, s->len) == 0) {
            if (RS_STATUS[i].rc != ENG_REDIS_OK) {
                snprintf(err, errlen, "%s", RS_STATUS[i].name);
            }
            return RS_STATUS[i].rc;
        }
    }
    return rs_bad_reply(self, step, "element 1: not a known status", err, errlen);
}

/* ---- Key names ----------------------------------------------------------- */

#define RS_KEY_MAX (ENG_REDIS_PREFIX_MAX + 2 * ENG_REDIS_NAME_MAX + 40)

static bool rs_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= ENG_REDIS_NAME_MAX;
}

/* Formats into buf; the length. */
static size_t rs_key(char *buf, const eng_redis_t *self, const char *kind, const char *name,
                     const char *suffix)
{
    int n = snprintf(buf, RS_KEY_MAX, "%s%s%s%s", self->prefix, kind, name, suffix ? suffix : "");
    return n < 0 ? 0 : (size_t)n;
}

/* ---- Operations ----------------------------------------------------------- */

static eng_redis_rc_t rs_bad_arg(const eng_redis_t *self, const char *step, const char *what,
                                 char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s: %s", self->name, step, what);
    return ENG_REDIS_ERROR;
}

#define RS_NUM 24 /* an int64 or uint64 in decimal, NUL included */

eng_redis_rc_t eng_redis_reserve(eng_redis_t *self, const char *account, const char *key,
                                 const eng_redis_limits_t *lim, uint64_t decision,
                                 int64_t amount_pd, bool free_model, int64_t day,
                                 int64_t expires_ms, eng_redis_state_t *state, char *err,
                                 size_t errlen)
{
    if (!rs_name_ok(account) || !rs_name_ok(key)) {
        return rs_bad_arg(self, "reserve", "account or key name empty or too long", err, errlen);
    }
    if (amount_pd < 0 || amount_pd > RS_AMOUNT_MAX || day < 0 || expires_ms < 0) {
        return rs_bad_arg(self, "reserve", "amount, day or expiry out of range", err, errlen);
    }
    char ka[RS_KEY_MAX], kk[RS_KEY_MAX], kd[RS_KEY_MAX], kr[RS_KEY_MAX], kx[RS_KEY_MAX];
    char dayn[RS_NUM], dec[RS_NUM], amt[RS_NUM], l[5][RS_NUM], exp[RS_NUM], ttl[RS_NUM];
    snprintf(dayn, sizeof dayn, ":%" PRId64, day);
    snprintf(dec, sizeof dec, "%" PRIu64, decision);
    rs_args_t a = {.n = 3};
    rs_arg(&a, ka, rs_key(ka, self, "a:", account, NULL));
    rs_arg(&a, kk, rs_key(kk, self, "k:", key, NULL));
    rs_arg(&a, kd, rs_key(kd, self, "d:", key, dayn));
    rs_arg(&a, kr, rs_key(kr, self, "r:", dec, NULL));
    rs_arg(&a, kx, rs_key(kx, self, "exp", "", NULL));
    rs_arg(&a, amt, (size_t)snprintf(amt, sizeof amt, "%" PRId64, amount_pd));
    rs_arg(&a, free_model ? "1" : "0", 1);
    const int64_t lims[5] = {lim->limit_pd, lim->daily_pd, lim->daily_requests,
                             lim->free_daily_requests, lim->free_daily_requests_funded};
    for (int i = 0; i < 5; i++) {
        rs_arg(&a, l[i],
               (size_t)snprintf(l[i], sizeof l[i], "%" PRId64, lims[i] < 0 ? -1 : lims[i]));
    }
    rs_arg(&a, exp, (size_t)snprintf(exp, sizeof exp, "%" PRId64, expires_ms));
    rs_arg(&a, dec, strlen(dec));
    rs_arg(&a, ttl, (size_t)snprintf(ttl, sizeof ttl, "%d", ENG_REDIS_DAY_TTL_S));
    eng_redis_rc_t rc;
    int sent = 0;
    redisReply *r = rs_eval(self, RS_S_RESERVE, &a, 5, &rc, &sent, err, errlen);
    if (!r) {
        return rc;
    }
    eng_redis_state_t tmp;
    rc = rs_state_reply(self, "reserve", r, state ? state : &tmp, err, errlen);
    freeReplyObject(r);
    if (rc == ENG_REDIS_DUPLICATE && sent > 1) {
        rc = ENG_REDIS_OK; /* our first attempt reserved it before its connection broke */
    } else if (rc == ENG_REDIS_DUPLICATE) {
        snprintf(err, errlen, "%s: reserve: decision %" PRIu64 " is already reserved", self->name,
                 decision);
    }
    return rc;
}

/* settle and release: one script, release at cost 0. */
static eng_redis_rc_t rs_finish(eng_redis_t *self, const char *step, bool settle, uint64_t decision,
                                int64_t cost_pd, int64_t pt, int64_t ct, bool *done, char *err,
                                size_t errlen)
{
    if (done) {
        *done = false;
    }
    if (cost_pd < -1 || cost_pd > RS_AMOUNT_MAX || pt < 0 || ct < 0) {
        return rs_bad_arg(self, step, "cost or tokens out of range", err, errlen);
    }
    char kr[RS_KEY_MAX], kx[RS_KEY_MAX], dec[RS_NUM], cost[RS_NUM], p[RS_NUM], c[RS_NUM],
        ttl[RS_NUM];
    snprintf(dec, sizeof dec, "%" PRIu64, decision);
    rs_args_t a = {.n = 3};
    rs_arg(&a, kr, rs_key(kr, self, "r:", dec, NULL));
    rs_arg(&a, kx, rs_key(kx, self, "exp", "", NULL));
    rs_arg(&a, dec, strlen(dec));
    rs_arg(&a, cost, (size_t)snprintf(cost, sizeof cost, "%" PRId64, cost_pd));
    rs_arg(&a, p, (size_t)snprintf(p, sizeof p, "%" PRId64, pt));
    rs_arg(&a, c, (size_t)snprintf(c, sizeof c, "%" PRId64, ct));
    rs_arg(&a, ttl, (size_t)snprintf(ttl, sizeof ttl, "%d", ENG_REDIS_DAY_TTL_S));
    rs_arg(&a, settle ? "1" : "0", 1);
    eng_redis_rc_t rc;
    redisReply *r = rs_eval(self, RS_S_SETTLE, &a, 2, &rc, NULL, err, errlen);
    if (!r) {
        return rc;
    }
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1)) {
        rc = rs_bad_reply(self, step, rs_type_name(r->type), err, errlen);
    } else if (done) {
        *done = r->integer == 1;
    }
    freeReplyObject(r);
    return rc;
}

eng_redis_rc_t eng_redis_settle(eng_redis_t *self, uint64_t decision, int64_t cost_pd,
                                int64_t prompt_tokens, int64_t completion_tokens, bool *settled,
                                char *err, size_t errlen)
{
    return rs_finish(self, "settle", true, decision, cost_pd, prompt_tokens, completion_tokens,
                     settled, err, errlen);
}

eng_redis_rc_t eng_redis_release(eng_redis_t *self, uint64_t decision, bool *released, char *err,
                                 size_t errlen)
{
    return rs_finish(self, "release", false, decision, 0, 0, 0, released, err, errlen);
}

eng_redis_rc_t eng_redis_expire(eng_redis_t *self, int64_t now_ms, int64_t *count, char *err,
                                size_t errlen)
{
    int64_t total = 0;
    char kx[RS_KEY_MAX], now[RS_NUM], batch[RS_NUM], ttl[RS_NUM];
    size_t kxn = rs_key(kx, self, "exp", "", NULL);
    size_t nown = (size_t)snprintf(now, sizeof now, "%" PRId64, now_ms);
    size_t bn = (size_t)snprintf(batch, sizeof batch, "%d", ENG_REDIS_EXPIRE_BATCH);
    size_t tn = (size_t)snprintf(ttl, sizeof ttl, "%d", ENG_REDIS_DAY_TTL_S);
    eng_redis_rc_t rc = ENG_REDIS_OK;
    for (;;) {
        rs_args_t a = {.n = 3};
        rs_arg(&a, kx, kxn);
        rs_arg(&a, now, nown);
        rs_arg(&a, batch, bn);
        rs_arg(&a, self->prefix, self->prefix_len);
        rs_arg(&a, ttl, tn);
        redisReply *r = rs_eval(self, RS_S_EXPIRE, &a, 1, &rc, NULL, err, errlen);
        if (!r) {
            break;
        }
        int64_t n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (n < 0 || n > ENG_REDIS_EXPIRE_BATCH) {
            rc = rs_bad_reply(self, "expire", rs_type_name(r->type), err, errlen);
        }
        freeReplyObject(r);
        if (rc != ENG_REDIS_OK) {
            break;
        }
        total += n;
        if (n < ENG_REDIS_EXPIRE_BATCH) {
            break;
        }
    }
    if (count) {
        *count = total;
    }
    return rc;
}

eng_redis_rc_t eng_redis_read(eng_redis_t *self, const char *account, const char *key, int64_t day,
                              eng_redis_state_t *state, char *err, size_t errlen)
{
    if (!rs_name_ok(account) || !rs_name_ok(key) || day < 0) {
        return rs_bad_arg(self, "read", "account or key name empty or too long, or bad day", err,
                          errlen);
    }
    char ka[RS_KEY_MAX], kk[RS_KEY_MAX], kd[RS_KEY_MAX], dayn[RS_NUM];
    snprintf(dayn, sizeof dayn, ":%" PRId64, day);
    rs_args_t a = {.n = 3};
    rs_arg(&a, ka, rs_key(ka, self, "a:", account, NULL));
    rs_arg(&a, kk, rs_key(kk, self, "k:", key, NULL));
    rs_arg(&a, kd, rs_key(kd, self, "d:", key, dayn));
    eng_redis_rc_t rc;
    redisReply *r = rs_eval(self, RS_S_READ, &a, 3, &rc, NULL, err, errlen);
    if (!r) {
        return rc;
    }
    rc = rs_state_reply(self, "read", r, state, err, errlen);
    freeReplyObject(r);
    return rc;
}

eng_redis_rc_t eng_redis_adjust(eng_redis_t *self, const char *account, int64_t delta_pd,
                                bool absolute, int64_t *balance_pd, char *err, size_t errlen)
{
    if (!rs_name_ok(account)) {
        return rs_bad_arg(self, "adjust", "account name empty or too long", err, errlen);
    }
    if (delta_pd > RS_BALANCE_MAX || delta_pd < -RS_BALANCE_MAX) {
        return rs_bad_arg(self, "adjust", "amount out of range (at most $4,000,000)", err, errlen);
    }
    char ka[RS_KEY_MAX], v[RS_NUM];
    rs_args_t a = {.n = 3};
    rs_arg(&a, ka, rs_key(ka, self, "a:", account, NULL));
    rs_arg(&a, v, (size_t)snprintf(v, sizeof v, "%" PRId64, delta_pd));
    rs_arg(&a, absolute ? "1" : "0", 1);
    eng_redis_rc_t rc;
    redisReply *r = rs_eval(self, RS_S_ADJUST, &a, 1, &rc, NULL, err, errlen);
    if (!r) {
        return rc;
    }
    int64_t b = 0;
    if (!rs_elem_i64(r, &b)) {
        rc = rs_bad_reply(self, "adjust", rs_type_name(r->type), err, errlen);
    } else if (balance_pd) {
        *balance_pd = b;
    }
    freeReplyObject(r);
    return rc;
}

/* One SCAN page's accounts: HMGET each, then fn. -1 with err on a failure,
 * 1 when fn asked to stop. */
static int rs_accounts_page(eng_redis_t *self, rs_conn_t *cn, const redisReply *keys,
                            eng_redis_account_fn fn, void *arg, eng_redis_rc_t *rc, char *err,
                            size_t errlen)
{
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= self->prefix_len + 2) {
            *rc = rs_bad_reply(self, "accounts", "SCAN element not a key name", err, errlen);
            return -1;
        }
        const char *argv[] = {"HMGET", k->str, "balance", "reserved", "spent"};
        size_t lens[] = {5, k->len, 7, 8, 5};
        redisReply *r = redisCommandArgv(cn->c, 5, argv, lens);
        if (!r) {
            snprintf(err, errlen, "%s: accounts: %s", self->name, cn->c->errstr);
            rs_drop(cn);
            return -1;
        }
        int64_t v[3] = {0, 0, 0};
        bool good = r->type == REDIS_REPLY_ARRAY && r->elements == 3;
        for (size_t j = 0; good && j < 3; j++) {
            good = r->element[j]->type == REDIS_REPLY_NIL || rs_elem_i64(r->element[j], &v[j]);
        }
        if (!good) {
            /* A key of another type under the prefix (WRONGTYPE), or a
             * field that is not an integer: say which. */
            char what[200];
            snprintf(what, sizeof what, "%.*s: %s", (int)(k->len < 120 ? k->len : 120), k->str,
                     r->type == REDIS_REPLY_ERROR ? r->str : "not integers");
            freeReplyObject(r);
            *rc = rs_bad_reply(self, "accounts", what, err, errlen);
            return -1;
        }
        freeReplyObject(r);
        if (!fn(arg, k->str + self->prefix_len + 2, k->len - self->prefix_len - 2, v[0], v[1],
                v[2])) {
            return 1;
        }
    }
    return 0;
}

eng_redis_rc_t eng_redis_accounts(eng_redis_t *self, eng_redis_account_fn fn, void *arg, char *err,
                                  size_t errlen)
{
    char match[ENG_REDIS_PREFIX_MAX + 8];
    size_t mn = (size_t)snprintf(match, sizeof match, "%sa:*", self->prefix);
    rs_conn_t *cn = rs_take(self, err, errlen);
    if (!cn) {
        return ENG_REDIS_UNAVAILABLE;
    }
    eng_redis_rc_t rc = ENG_REDIS_UNAVAILABLE;
    char cursor[RS_NUM] = "0";
    if (cn->c || rs_connect(self, cn, err, errlen) == 0) {
        rc = ENG_REDIS_OK;
        do {
            const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "200"};
            size_t lens[] = {4, strlen(cursor), 5, mn, 5, 3};
            redisReply *r = redisCommandArgv(cn->c, 6, argv, lens);
            if (!r) {
                snprintf(err, errlen, "%s: accounts: SCAN: %s", self->name, cn->c->errstr);
                rs_drop(cn);
                rc = ENG_REDIS_UNAVAILABLE;
                break;
            }
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= RS_NUM ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                rc = rs_bad_reply(self, "accounts", r->type == REDIS_REPLY_ERROR ? r->str : "SCAN",
                                  err, errlen);
                freeReplyObject(r);
                break;
            }
            memcpy(cursor, r->element[0]->str, r->element[0]->len);
            cursor[r->element[0]->len] = '\0';
            int page = rs_accounts_page(self, cn, r->element[1], fn, arg, &rc, err, errlen);
            freeReplyObject(r);
            if (page != 0) {
                break;
            }
        } while (strcmp(cursor, "0") != 0);
    }
    rs_give(self, cn);
    return rc;
}

eng_redis_rc_t eng_redis_held(eng_redis_t *self, int64_t *count, char *err, size_t errlen)
{
    char kx[RS_KEY_MAX];
    size_t kxn = rs_key(kx, self, "exp", "", NULL);
    const char *argv[] = {"ZCARD", kx};
    size_t lens[] = {5, kxn};
    rs_conn_t *cn = rs_take(self, err, errlen);
    if (!cn) {
        return ENG_REDIS_UNAVAILABLE;
    }
    eng_redis_rc_t rc = ENG_REDIS_UNAVAILABLE;
    if (cn->c || rs_connect(self, cn, err, errlen) == 0) {
        redisReply *r = redisCommandArgv(cn->c, 2, argv, lens);
        if (!r) {
            snprintf(err, errlen, "%s: ZCARD: %s", self->name, cn->c->errstr);
            rs_drop(cn);
        } else {
            rc = r->type == REDIS_REPLY_INTEGER
                     ? ENG_REDIS_OK
                     : rs_bad_reply(self, "ZCARD", rs_type_name(r->type), err, errlen);
            if (rc == ENG_REDIS_OK && count) {
                *count = r->integer;
            }
            freeReplyObject(r);
        }
    }
    rs_give(self, cn);
    return rc;
}

/* ---- Life cycle ----------------------------------------------------------- */

eng_redis_t *eng_redis_new(const char *spec, const char *secret_file, char *err, size_t errlen)
{
    if (!spec) {
        snprintf(err, errlen, "no Redis address");
        return NULL;
    }
    eng_redis_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "%s: out of memory", spec);
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    strcpy(self->prefix, "hpp:");
    self->connect_ms = 500;
    self->command_ms = 1000;
    atomic_init(&self->retry_after_ms, 0);
    if (rs_parse_spec(self, spec, err, errlen) != 0 ||
        (secret_file && rs_read_secret(self, secret_file, err, errlen) != 0)) {
        eng_redis_destroy(&self);
        return NULL;
    }
    self->prefix_len = strlen(self->prefix);
    /* The first connection: reachable, authenticated, scripts loaded. */
    rs_conn_t *cn = rs_take(self, err, errlen);
    if (!cn || rs_connect(self, cn, err, errlen) != 0 ||
        rs_load_scripts(self, cn, err, errlen) != 0) {
        if (cn) {
            rs_give(self, cn);
        }
        eng_redis_destroy(&self);
        return NULL;
    }
    rs_give(self, cn);
    return self;
}

void eng_redis_destroy(eng_redis_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_redis_t *self = *self_p;
    while (self->idle) {
        rs_conn_t *cn = self->idle;
        self->idle = cn->next;
        rs_drop(cn);
        free(cn);
    }
    if (self->password) {
        sodium_memzero(self->password, self->password_len);
        free(self->password);
    }
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

const char *eng_redis_name(const eng_redis_t *self)
{
    return self->name;
}

const char *eng_redis_prefix(const eng_redis_t *self)
{
    return self->prefix;
}
