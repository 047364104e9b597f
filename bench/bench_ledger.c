/* bench_ledger.c - what the ledger adds to a decision, in process.
 *
 * Loads the policy and catalog, a key file of one key, and the embedded
 * store in a temporary directory (its writer thread running, as in the
 * engine), funds the key's account, then times two loops over the same
 * request for a bounded time each:
 *   base:   eng_resolve                                       (no ledger)
 *   ledger: eng_ledger_begin + eng_resolve_remaining + eng_ledger_reserve
 * Each reservation is settled right after its timed decision (outside the
 * timing, as a report would), so the reservations in flight stay few and
 * the writer commits continuously. Each decision is timed with a pair of
 * clock_gettime(CLOCK_MONOTONIC) calls into 1 ns histograms; the loops
 * alternate in rounds so both see the same machine.
 *
 *   bench_ledger [--policy FILE] [--catalog FILE] [--seconds N] [--step]
 *
 * --step gives the key's group step_down thresholds (the ledger then also
 * reads the key's remaining money before resolving). Output, one line:
 *   ledger base_p50_ns=N ledger_p50_ns=N added_p50_ns=N base_p99_ns=N
 *          ledger_p99_ns=N decisions=N
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eng_catalog.h"
#include "eng_ledger.h"
#include "eng_policy.h"
#include "hpp_apikeys.h"

#define S_HIST_NS 100000

static int64_t s_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t s_pct(const uint64_t *h, uint64_t n, double p)
{
    uint64_t want = (uint64_t)ceil(p * (double)n), seen = 0;
    for (int i = 0; i <= S_HIST_NS; i++) {
        seen += h[i];
        if (seen >= want && want > 0) {
            return (uint64_t)i;
        }
    }
    return S_HIST_NS;
}

static void s_add(uint64_t *h, int64_t ns)
{
    h[ns < 0 ? 0 : ns > S_HIST_NS ? S_HIST_NS : ns]++;
}

int main(int argc, char **argv)
{
    const char *policy = "policies/default.policy", *catalog = "policies/catalog.json";
    double seconds = 2;
    bool step = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
            policy = argv[++i];
        } else if (strcmp(argv[i], "--catalog") == 0 && i + 1 < argc) {
            catalog = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--step") == 0) {
            step = true;
        } else {
            fprintf(stderr, "usage: bench_ledger [--policy FILE] [--catalog FILE] [--seconds N] "
                            "[--step]\n");
            return 2;
        }
    }
    eng_error_t err;
    eng_catalog_t *cat = eng_catalog_new();
    if (eng_catalog_load(cat, catalog, &err) != 0 || eng_catalog_freeze(cat, &err) != 0) {
        fprintf(stderr, "bench_ledger: %s: %s\n", catalog, err.msg);
        return 1;
    }
    /* The policy, plus a group with step_down for --step. */
    FILE *pf = fopen(policy, "rb");
    if (!pf) {
        fprintf(stderr, "bench_ledger: cannot read %s\n", policy);
        return 1;
    }
    static char src[1 << 20];
    size_t n = fread(src, 1, sizeof src - 256, pf);
    fclose(pf);
    n += (size_t)snprintf(src + n, 256, "\ngroup bench models \"*\" step_down $1 budget\n");
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *pol = eng_policy_load_buffer(policy, src, n, cat, d);
    if (!pol) {
        eng_diags_print(d, stderr);
        return 1;
    }
    eng_diags_destroy(&d);

    char dir[] = "/tmp/bench-ledger-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char keys[96], store[96], hash[HPP_APIKEY_HASH_TEXT];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(store, sizeof store, "sqlite:%s/ledger.db", dir);
    hpp_apikeys_hash_text("sk-bench", 8, hash);
    FILE *kf = fopen(keys, "w");
    fprintf(kf, "%s group=%s account=bench limit_usd=1000000\n", hash, step ? "bench" : "default");
    fclose(kf);
    eng_ledger_cfg_t lcfg = {.store = store, .keys = keys, .hold_s = 300, .node = 1};
    char lerr[256];
    eng_ledger_t *led = eng_ledger_new(&lcfg, lerr, sizeof lerr);
    eng_ledger_keys_t *kt = led ? eng_ledger_keys_load(led, lerr, sizeof lerr) : NULL;
    if (!led || !kt) {
        fprintf(stderr, "bench_ledger: %s\n", lerr);
        return 1;
    }
    /* Fund the account through the ledger op, as an admin would. */
    proto_request_t top;
    proto_request_init(&top, PROTO_OP_LEDGER);
    top.ledger.action = PROTO_LEDGER_TOPUP;
    top.ledger.account = (hpp_str_t){"bench", 5};
    top.ledger.has_amount = true;
    top.ledger.amount_pd = INT64_C(1000000) * INT64_C(1000000000000);
    proto_buf_t out;
    proto_buf_init(&out, 1024);
    eng_ledger_op(led, kt, &top, &out);

    hpp_features_t f;
    hpp_features_init(&f);
    f.prompt_tokens = 1000;
    f.output_tokens = 500;
    f.key = (hpp_str_t){hash, strlen(hash)};

    uint64_t *hb = calloc(S_HIST_NS + 1, sizeof *hb), *hl = calloc(S_HIST_NS + 1, sizeof *hl);
    uint64_t nb = 0, nl = 0, decision = 0, refused = 0;
    int64_t end = s_ns() + (int64_t)(seconds * 1e9);
    eng_decision_t dec;
    eng_ledger_call_t call;
    char msg[192];
    proto_attempt_t at;
    proto_attempt_init(&at);
    at.status = 200;
    hpp_cost_t cost = {0};
    bool priced = false;
    while (s_ns() < end) {
        for (int i = 0; i < 1000; i++) {
            int64_t t0 = s_ns();
            eng_resolve(pol, &f, &dec, NULL);
            int64_t t1 = s_ns();
            s_add(hb, t1 - t0);
            nb++;
        }
        for (int i = 0; i < 1000; i++) {
            int64_t t0 = s_ns();
            eng_ledger_begin(led, kt, &f, pol, &call, msg, sizeof msg);
            eng_resolve_remaining(pol, &call.features,
                                  call.has_remaining ? call.remaining_pd : ENG_NO_REMAINING, &dec,
                                  NULL);
            dec.decision_id = eng_ledger_decision_id(led, ++decision);
            eng_ledger_reserve(led, &call, &dec);
            int64_t t1 = s_ns();
            s_add(hl, t1 - t0);
            nl++;
            if (dec.status != HPP_OK && refused++ == 0) {
                fprintf(stderr, "bench_ledger: refused: %s (%s)\n", dec.message,
                        hpp_status_name(dec.status));
            }
            at.decision = dec.decision_id; /* settled as a report would, untimed */
            at.cost_usd = 0.0001;
            eng_ledger_report(led, &at, 1, &cost, &priced);
        }
    }
    uint64_t b50 = s_pct(hb, nb, 0.5), l50 = s_pct(hl, nl, 0.5);
    printf("ledger base_p50_ns=%llu ledger_p50_ns=%llu added_p50_ns=%lld base_p99_ns=%llu "
           "ledger_p99_ns=%llu decisions=%llu refused=%llu step=%d\n",
           (unsigned long long)b50, (unsigned long long)l50, (long long)l50 - (long long)b50,
           (unsigned long long)s_pct(hb, nb, 0.99), (unsigned long long)s_pct(hl, nl, 0.99),
           (unsigned long long)nl, (unsigned long long)refused, step);
    free(hb);
    free(hl);
    proto_buf_destroy(&out);
    eng_ledger_keys_release(kt);
    eng_ledger_destroy(&led);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 && refused == 0 ? 0 : 1;
}
