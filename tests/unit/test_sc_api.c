/* test_sc_api.c - the sidecar's read endpoints' bodies (sidecar/sc_api.c)
 * from an engine `ledger` key reply, decoded by proto/proto_ledger.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "hpp_apikeys.h"
#include "proto.h"
#include "proto_ledger.h"
#include "sc_api.h"

/* A key reply as the engine encodes it. */
static void s_reply(proto_buf_t *b, const proto_ledger_key_t *k)
{
    cr_assert_eq(proto_buf_init(b, 512), 0);
    proto_id_t id = {0};
    cr_assert_eq(proto_reply_ledger_key(b, &id, k), PROTO_OK);
}

static proto_ledger_key_t s_key(const char *hash)
{
    proto_ledger_key_t k = {
        .key = {.ptr = hash, .len = (uint32_t)strlen(hash)},
        .group = {.ptr = "team-a", .len = 6},
        .account = {.ptr = "acme", .len = 4},
        .balance_pd = 10000000000000LL,  /* 10 USD */
        .limit_pd = 5000000000000LL,     /* 5 USD */
        .remaining_pd = 1250000000000LL, /* 1.25 USD */
        .daily_pd = PROTO_LEDGER_NONE_PD,
        .day_spent_pd = 250000000000LL,
        .day_requests = 3,
        .day_free_requests = 1,
        .requests = 7,
        .prompt_tokens = 1000,
        .completion_tokens = 234,
        .spent_pd = 3750000000001LL,
        .reserved_pd = 0,
    };
    return k;
}

static const char *S_PATHS[] = {"/api/quota-check", "/api/usage", "/api/v1/key"};

Test(sc_api, bodies_from_the_engine_reply)
{
    char hash[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text("sk-alpha", 8, hash);
    proto_ledger_key_t in = s_key(hash), k;
    proto_buf_t b;
    s_reply(&b, &in);
    proto_error_t err;
    cr_assert_eq(proto_ledger_key_decode(b.data, b.len, &k, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(k.key.len, 71);
    cr_assert_eq(k.spent_pd, in.spent_pd);
    cr_assert_eq(k.daily_pd, PROTO_LEDGER_NONE_PD);
    cr_assert_eq(k.completion_tokens, 234);
    char body[2048];
    int n = sc_api_body(S_PATHS[0], strlen(S_PATHS[0]), &k, body, sizeof body);
    cr_assert_gt(n, 0);
    cr_assert(strstr(body, "\"remaining_usd\":1.25,\"exhausted\":false"), "%s", body);
    cr_assert(strstr(body, "\"daily_usd\":null,\"day_remaining_usd\":null"), "%s", body);
    n = sc_api_body(S_PATHS[1], strlen(S_PATHS[1]), &k, body, sizeof body);
    cr_assert_gt(n, 0);
    cr_assert(strstr(body, "\"requests\":7,\"prompt_tokens\":1000,\"completion_tokens\":234,"
                           "\"total_tokens\":1234,\"total_cost_usd\":3.750000000001"),
              "%s", body);
    n = sc_api_body(S_PATHS[2], strlen(S_PATHS[2]), &k, body, sizeof body);
    cr_assert_gt(n, 0);
    cr_assert(strstr(body,
                     "{\"data\":{\"label\":\"sha256:2179e632e892...\",\"usage\":3.750000000001,"
                     "\"usage_daily\":0.25,\"limit\":5,\"limit_remaining\":1.25,"),
              "%s", body);
    cr_assert(strstr(body, "\"is_free_tier\":false"), "%s", body);
    cr_assert_eq(sc_api_body("/api/other", 10, &k, body, sizeof body), -1);
    cr_assert_eq(sc_api_body(S_PATHS[1], strlen(S_PATHS[1]), &k, body, 40), -1);
    cr_assert(sc_api_serves("/api/usage", 10));
    cr_assert(!sc_api_serves("/api/usage/", 11));
    proto_buf_destroy(&b);
}

/* The day's limit and the balance bound the remaining quota too; a spent
 * key is exhausted; a negative balance is written with its sign. */
Test(sc_api, remaining_is_the_least)
{
    char hash[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text("sk-beta", 7, hash);
    proto_ledger_key_t k = s_key(hash);
    k.daily_pd = 500000000000LL; /* 0.50, 0.25 spent today */
    char body[2048];
    cr_assert_gt(sc_api_body(S_PATHS[0], strlen(S_PATHS[0]), &k, body, sizeof body), 0);
    cr_assert(strstr(body, "\"remaining_usd\":0.25,"), "%s", body);
    k.balance_pd = -20;
    cr_assert_gt(sc_api_body(S_PATHS[0], strlen(S_PATHS[0]), &k, body, sizeof body), 0);
    cr_assert(strstr(body, "\"remaining_usd\":0,\"exhausted\":true,\"balance_usd\":-0.00000000002"),
              "%s", body);
}

/* What is reserved counts as the engine's checks count it: the account's
 * reservations (all its keys) off the balance, the day's off the daily
 * limit; both travel in the key reply. */
Test(sc_api, reservations_in_flight_are_not_remaining)
{
    char hash[HPP_APIKEY_HASH_TEXT];
    hpp_apikeys_hash_text("sk-gamma", 8, hash);
    proto_ledger_key_t in = s_key(hash), k;
    in.limit_pd = in.remaining_pd = PROTO_LEDGER_NONE_PD;
    in.balance_pd = 1000000000000LL;         /* 1 USD */
    in.account_reserved_pd = 400000000000LL; /* 0.40 held by the account's keys */
    proto_buf_t b;
    s_reply(&b, &in);
    proto_error_t err;
    cr_assert_eq(proto_ledger_key_decode(b.data, b.len, &k, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(k.account_reserved_pd, in.account_reserved_pd);
    char body[2048];
    cr_assert_gt(sc_api_body(S_PATHS[0], strlen(S_PATHS[0]), &k, body, sizeof body), 0);
    cr_assert(strstr(body, "\"remaining_usd\":0.6,"), "%s", body);
    k.daily_pd = 500000000000LL;        /* 0.50 a day, 0.25 spent */
    k.day_reserved_pd = 200000000000LL; /* 0.20 of it held */
    cr_assert_gt(sc_api_body(S_PATHS[0], strlen(S_PATHS[0]), &k, body, sizeof body), 0);
    cr_assert(strstr(body, "\"remaining_usd\":0.05,"), "%s", body);
    cr_assert(strstr(body, "\"day_remaining_usd\":0.05"), "%s", body);
    proto_buf_destroy(&b);
}

/* A refusal, a frame that is not a map, and a reply without `key` do not
 * decode as a key's state. */
Test(sc_api, decode_refuses_what_is_not_a_key_reply)
{
    proto_buf_t b;
    cr_assert_eq(proto_buf_init(&b, 256), 0);
    proto_id_t id = {0};
    cr_assert_eq(proto_reply_error(&b, &id, HPP_E_UNKNOWN_KEY, "no such key"), PROTO_OK);
    proto_ledger_key_t k;
    proto_error_t err;
    cr_assert_neq(proto_ledger_key_decode(b.data, b.len, &k, &err), PROTO_OK);
    cr_assert_neq(proto_ledger_key_decode("\x93\x01\x02\x03", 4, &k, &err), PROTO_OK);
    cr_assert_neq(proto_ledger_key_decode("", 0, &k, &err), PROTO_OK);
    proto_buf_reset(&b);
    cr_assert_eq(proto_reply_ledger_balance(&b, &id, (hpp_str_t){.ptr = "a", .len = 1}, 5),
                 PROTO_OK);
    cr_assert_eq(proto_ledger_key_decode(b.data, b.len, &k, &err), PROTO_ERR_MISSING, "%s",
                 err.msg);
    proto_buf_destroy(&b);
}
