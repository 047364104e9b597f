/* test_apikeys.c - the API key file (proto/hpp_apikeys.c) and the trust
 * rules that use it (sidecar/sc_trust.c), without a server. */
#include <criterion/criterion.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hpp_apikeys.h"
#include "sc_trust.h"

static char s_err[512];

static void s_line(char *buf, size_t n, const char *key, const char *rest)
{
    char h[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text(key, strlen(key), h);
    snprintf(buf, n, "%s %s\n", h, rest);
}

Test(apikeys, hash_text_is_sha256_hex)
{
    char h[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text("sk-alpha", 8, h);
    cr_assert_str_eq(h, "sha256:2179e632e89277f18aa600491b68ad55121fd6caa045e047fdeb426088a5a5f1");
}

Test(apikeys, finds_keys_and_their_grants)
{
    char a[200], b[200], text[600];
    s_line(a, sizeof a, "sk-alpha", "group=team-a budget_usd=0.50 # bot");
    s_line(b, sizeof b, "sk-beta", "group=trial");
    snprintf(text, sizeof text, "# keys\n\n  %s\t%s", a, b);
    hpp_apikeys_t *k = hpp_apikeys_parse(text, strlen(text), "k", s_err, sizeof s_err);
    cr_assert_not_null(k, "%s", s_err);
    cr_assert_eq(hpp_apikeys_count(k), 2);
    const hpp_apikey_t *i = hpp_apikeys_find(k, "sk-alpha", 8);
    cr_assert_not_null(i);
    cr_assert_str_eq(i->group, "team-a");
    cr_assert(i->has_budget);
    cr_assert_float_eq(i->budget_usd, 0.5, 1e-12);
    i = hpp_apikeys_find(k, "sk-beta", 7);
    cr_assert_not_null(i);
    cr_assert_str_eq(i->group, "trial");
    cr_assert(!i->has_budget);
    cr_assert_null(hpp_apikeys_find(k, "sk-alph", 7));
    cr_assert_null(hpp_apikeys_find(k, "", 0));
    hpp_apikeys_destroy(&k);
    cr_assert_null(k);
    hpp_apikeys_destroy(&k);
}

Test(apikeys, empty_file_has_no_keys)
{
    hpp_apikeys_t *k = hpp_apikeys_parse("", 0, "k", s_err, sizeof s_err);
    cr_assert_not_null(k);
    cr_assert_eq(hpp_apikeys_count(k), 0);
    cr_assert_null(hpp_apikeys_find(k, "x", 1));
    hpp_apikeys_destroy(&k);
}

Test(apikeys, refusals_name_line_and_column)
{
    char a[200];
    s_line(a, sizeof a, "sk-alpha", "group=a");
    a[strlen(a) - 1] = '\0'; /* no newline: rest appended below */
    const size_t h = 71;     /* bytes of "sha256:" + 64 hex digits */
    struct {
        const char *rest; /* after the hash */
        size_t col;       /* expected column */
        const char *what; /* expected text */
    } cases[] = {
        {" ledger=1", h + 10, "unknown key 'ledger'"},
        {" account=a\\b", h + 18, "account: expected"},
        {" account=", h + 18, "account: expected"},
        {" limit_usd=-5", h + 20, "limit_usd: expected"},
        {" limit_usd=1e3", h + 20, "limit_usd: expected"},
        {" limit_usd=1000001", h + 20, "limit_usd: expected"},
        {" daily_usd=abc", h + 20, "daily_usd: expected"},
        {" daily_requests=1.5", h + 25, "daily_requests: expected"},
        {" free_daily_requests=-1", h + 30, "free_daily_requests: expected"},
        {" free_daily_requests_funded=1000000000001", h + 37,
         "free_daily_requests_funded: expected"},
        {" revoked=yes", h + 18, "revoked: expected 0 or 1"},
        {" revoked=1 revoked=0", h + 20, "revoked given twice"},
        {" budget_usd=-1", h + 21, "budget_usd: expected"},
        {" budget_usd=2000000", h + 21, "budget_usd: expected"},
        {" budget_usd=", h + 21, "budget_usd: expected"},
        {" group=b", h + 10, "group given twice"},
        {" =x", h + 10, "expected key=value"},
        {" nothing", h + 10, "expected key=value"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char text[400], want[64];
        snprintf(text, sizeof text, "# x\n%s%s\n", a, cases[c].rest);
        hpp_apikeys_t *k = hpp_apikeys_parse(text, strlen(text), "f", s_err, sizeof s_err);
        cr_assert_null(k, "case %zu parsed", c);
        snprintf(want, sizeof want, "f:2:%zu: ", cases[c].col);
        cr_assert(strncmp(s_err, want, strlen(want)) == 0, "case %zu: %s (want %s)", c, s_err,
                  want);
        cr_assert(strstr(s_err, cases[c].what), "case %zu: %s", c, s_err);
    }
}

Test(apikeys, ledger_fields_and_their_defaults)
{
    char a[400], b[200], text[700];
    s_line(a, sizeof a, "sk-alpha",
           "group=team-a account=acme limit_usd=20.5 daily_usd=0.000000000001 daily_requests=100 "
           "free_daily_requests=7 free_daily_requests_funded=70 revoked=1");
    s_line(b, sizeof b, "sk-beta", "group=trial revoked=0");
    snprintf(text, sizeof text, "%s%s", a, b);
    hpp_apikeys_t *k = hpp_apikeys_parse(text, strlen(text), "k", s_err, sizeof s_err);
    cr_assert_not_null(k, "%s", s_err);
    const hpp_apikey_t *i = hpp_apikeys_find(k, "sk-alpha", 8);
    cr_assert_not_null(i);
    cr_assert_str_eq(i->account, "acme");
    cr_assert_eq(i->limit_pd, 20500000000000LL);
    cr_assert_eq(i->daily_pd, 1);
    cr_assert_eq(i->daily_requests, 100);
    cr_assert_eq(i->free_daily_requests, 7);
    cr_assert_eq(i->free_daily_requests_funded, 70);
    cr_assert(i->revoked);
    cr_assert_eq(i->line, 1);
    /* Not given: no limits, OpenRouter's free counts, one account per key. */
    i = hpp_apikeys_find(k, "sk-beta", 7);
    cr_assert_not_null(i);
    char h[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text("sk-beta", 7, h);
    cr_assert_str_eq(i->hash, h);
    cr_assert_str_eq(i->account, h);
    cr_assert_eq(i->limit_pd, -1);
    cr_assert_eq(i->daily_pd, -1);
    cr_assert_eq(i->daily_requests, -1);
    cr_assert_eq(i->free_daily_requests, 50);
    cr_assert_eq(i->free_daily_requests_funded, 1000);
    cr_assert(!i->revoked);
    cr_assert(!i->has_budget);
    cr_assert_eq(i->line, 2);
    hpp_apikeys_destroy(&k);
}

Test(apikeys, find_by_hash_and_in_order)
{
    char a[200], b[200], text[500], h[HPP_APIKEY_HASH_TEXT];
    s_line(a, sizeof a, "sk-alpha", "group=a");
    s_line(b, sizeof b, "sk-beta", "group=b");
    snprintf(text, sizeof text, "%s%s", a, b);
    hpp_apikeys_t *k = hpp_apikeys_parse(text, strlen(text), "k", s_err, sizeof s_err);
    cr_assert_not_null(k, "%s", s_err);
    hpp_apikeys_hash_text("sk-beta", 7, h);
    const hpp_apikey_t *i = hpp_apikeys_find_hash(k, h, strlen(h));
    cr_assert_not_null(i);
    cr_assert_str_eq(i->group, "b");
    cr_assert(hpp_apikeys_hash_ok(h, strlen(h)));
    cr_assert_null(hpp_apikeys_find_hash(k, h, strlen(h) - 1));
    h[10] = 'G'; /* not lowercase hex */
    cr_assert(!hpp_apikeys_hash_ok(h, strlen(h)));
    cr_assert_null(hpp_apikeys_find_hash(k, h, strlen(h)));
    hpp_apikeys_hash_text("sk-gamma", 8, h);
    cr_assert_null(hpp_apikeys_find_hash(k, h, strlen(h)));
    cr_assert_null(hpp_apikeys_find_hash(NULL, h, strlen(h)));
    cr_assert_not_null(hpp_apikeys_at(k, 0));
    cr_assert_not_null(hpp_apikeys_at(k, 1));
    cr_assert_null(hpp_apikeys_at(k, 2));
    cr_assert(strcmp(hpp_apikeys_at(k, 0)->hash, hpp_apikeys_at(k, 1)->hash) < 0);
    hpp_apikeys_destroy(&k);
}

Test(apikeys, amounts_and_counts_read_exactly)
{
    int64_t v;
    cr_assert_eq(hpp_apikeys_parse_pd("1000000", 7, &v), 0);
    cr_assert_eq(v, 1000000000000000000LL);
    cr_assert_eq(hpp_apikeys_parse_pd("0.1", 3, &v), 0);
    cr_assert_eq(v, 100000000000LL);
    cr_assert_eq(hpp_apikeys_parse_pd("1000000.000000000001", 20, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_pd(".", 1, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_pd("1.2.3", 5, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_pd("1e3", 3, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_pd("+1", 2, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_count("1000000000000", 13, &v), 0);
    cr_assert_eq(v, 1000000000000LL);
    cr_assert_eq(hpp_apikeys_parse_count("1000000000001", 13, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_count("99999999999999", 14, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_count("-1", 2, &v), -1);
    cr_assert_eq(hpp_apikeys_parse_count("", 0, &v), -1);
    cr_assert(hpp_apikeys_account_ok("acme", 4));
    cr_assert(!hpp_apikeys_account_ok("a b", 3));
    cr_assert(!hpp_apikeys_account_ok("", 0));
}

Test(apikeys, a_key_given_twice_is_refused)
{
    char a[200], text[500];
    s_line(a, sizeof a, "sk-alpha", "group=a");
    snprintf(text, sizeof text, "%s#\n%s", a, a);
    cr_assert_null(hpp_apikeys_parse(text, strlen(text), "f", s_err, sizeof s_err));
    cr_assert(strstr(s_err, "f:3:1: the same key as line 1"), "%s", s_err);
}

Test(apikeys, check_key)
{
    cr_assert_null(hpp_apikeys_check_key("sk-abc_123", 10));
    cr_assert_not_null(hpp_apikeys_check_key("", 0));
    cr_assert_not_null(hpp_apikeys_check_key("a b", 3));
    cr_assert_not_null(hpp_apikeys_check_key("a\x80", 2));
}

Test(apikeys, load_reports_a_missing_file)
{
    cr_assert_null(hpp_apikeys_load("/nonexistent/keys", s_err, sizeof s_err));
    cr_assert(strstr(s_err, "/nonexistent/keys: cannot open"), "%s", s_err);
}

/* The trust rules over a header list. */
Test(sc_trust, key_gateway_and_client)
{
    char a[200];
    s_line(a, sizeof a, "sk-alpha", "group=team-a budget_usd=0.5");
    hpp_apikeys_t *k = hpp_apikeys_parse(a, strlen(a), "k", s_err, sizeof s_err);
    cr_assert_not_null(k);
    sc_trust_config_t cfg = {.keys = k, .trusted_header = "X-Gw", .trust_client = false};
    struct evkeyvalq h;
    h.tqh_first = NULL; /* TAILQ_INIT, which libevent does not export */
    h.tqh_last = &h.tqh_first;
    sc_trust_t t;
    oai_error_t err;
    cr_assert_eq(sc_trust_headers(&cfg, &h, &t, &err), -1);
    cr_assert_eq(err.status, 401);
    evhttp_add_header(&h, "Authorization", "Bearer sk-alpha");
    cr_assert_eq(sc_trust_headers(&cfg, &h, &t, &err), 0);
    cr_assert_str_eq(t.group, "team-a");
    cr_assert_float_eq(t.budget_usd, 0.5, 1e-12);
    /* The gateway's group replaces the key's; the smaller budget wins. */
    evhttp_add_header(&h, "x-gw", "ops ; budget_usd=2");
    cr_assert_eq(sc_trust_headers(&cfg, &h, &t, &err), 0);
    cr_assert_str_eq(t.group, "ops");
    cr_assert_float_eq(t.budget_usd, 0.5, 1e-12);
    hpp_features_t f;
    hpp_features_init(&f);
    cr_assert_eq(sc_trust_apply(&cfg, &t, &f, &err), 0);
    cr_assert_eq(f.group.len, 3);
    /* The engine's ledger gets the key's hash, never the key. */
    char kh[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text("sk-alpha", 8, kh);
    cr_assert_eq(f.key.len, 71);
    cr_assert(memcmp(f.key.ptr, kh, 71) == 0);
    cr_assert(f.has_budget);
    /* A client's budget is refused, naming where it came from. */
    hpp_features_init(&f);
    f.has_budget = true;
    f.budget_usd = 0.1;
    cr_assert_eq(sc_trust_apply(&cfg, &t, &f, &err), -1);
    cr_assert_eq(err.status, 403);
    cr_assert_str_eq(err.param, "hpp.budget_usd");
    /* Trusted, it can only lower the budget. */
    cfg.trust_client = true;
    cr_assert_eq(sc_trust_apply(&cfg, &t, &f, &err), 0);
    cr_assert_float_eq(f.budget_usd, 0.1, 1e-12);
    evhttp_add_header(&h, "X-GW", "other");
    cr_assert_eq(sc_trust_headers(&cfg, &h, &t, &err), -1);
    cr_assert_str_eq(err.code, "duplicate_header");
    evhttp_clear_headers(&h);
    hpp_apikeys_destroy(&k);
}

/* A revoked key is refused like an unknown one (401), saying so. */
Test(sc_trust, a_revoked_key_is_refused)
{
    char a[200];
    s_line(a, sizeof a, "sk-alpha", "group=team-a revoked=1");
    hpp_apikeys_t *k = hpp_apikeys_parse(a, strlen(a), "k", s_err, sizeof s_err);
    cr_assert_not_null(k, "%s", s_err);
    sc_trust_config_t cfg = {.keys = k};
    struct evkeyvalq h;
    h.tqh_first = NULL;
    h.tqh_last = &h.tqh_first;
    evhttp_add_header(&h, "Authorization", "Bearer sk-alpha");
    sc_trust_t t;
    oai_error_t err;
    cr_assert_eq(sc_trust_headers(&cfg, &h, &t, &err), -1);
    cr_assert_eq(err.status, 401);
    cr_assert(strstr(err.message, "revoked"), "%s", err.message);
    evhttp_clear_headers(&h);
    hpp_apikeys_destroy(&k);
}

Test(sc_trust, header_names)
{
    cr_assert_null(sc_trust_header_name_check("X-HPP-Gateway-Group"));
    cr_assert_null(sc_trust_header_name_check("X-Consumer-Group"));
    cr_assert_not_null(sc_trust_header_name_check("X-HPP-Budget-USD"));
    cr_assert_not_null(sc_trust_header_name_check("authorization"));
    cr_assert_not_null(sc_trust_header_name_check("a:b"));
    cr_assert_not_null(sc_trust_header_name_check(""));
}

/* A FIFO put in the key file's place is refused at once: opening it for
 * reading would wait for a writer, and the sidecar reads its keys on SIGHUP
 * inside its event loop. */
Test(apikeys, a_fifo_is_not_read, .timeout = 10)
{
    char dir[] = "/tmp/hpp-keys-fifo-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/keys", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    cr_assert_null(hpp_apikeys_load(path, s_err, sizeof s_err));
    cr_assert(strstr(s_err, "not a regular file") != NULL, "%s", s_err);
    unlink(path);
    rmdir(dir);
}
