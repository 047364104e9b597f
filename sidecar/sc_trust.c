/* sc_trust.c - duplicates, the API key, the gateway's header, and which
 * group and budget a request ends up with (rules: sc_trust.h).
 *
 * Only the header list is walked, once per request plus a short inner walk
 * for the duplicate check over the few headers that matter; nothing is
 * allocated.
 */
#include "sc_trust.h"

#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "oai_request.h"

#define S_MAX_HEADER_NAME 64

/* Headers --trusted-header may not name: read or rewritten elsewhere. */
static const char *const s_reserved[] = {
    "Authorization",
    "Proxy-Authorization",
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Content-Type",
    "Connection",
    "Keep-Alive",
    "TE",
    "Trailer",
    "Upgrade",
    "Cookie",
    NULL,
};

const char *sc_trust_header_name_check(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > S_MAX_HEADER_NAME) {
        return "expected a header name of 1 to 64 characters";
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c))) {
            return "expected a header name (letters, digits and !#$%&'*+-.^_`|~)";
        }
    }
    if (oai_header_is_hint(name) || strncasecmp(name, "X-HPP-Router-", 13) == 0) {
        return "names a header the sidecar reads or writes itself; pick another "
               "(e.g. X-HPP-Gateway-Group)";
    }
    for (int i = 0; s_reserved[i]; i++) {
        if (strcasecmp(name, s_reserved[i]) == 0) {
            return "names a standard HTTP header; pick another (e.g. X-HPP-Gateway-Group)";
        }
    }
    return NULL;
}

/* True when a header named `name` must appear at most once. */
static bool s_single(const sc_trust_config_t *cfg, const char *name)
{
    return strncasecmp(name, "X-HPP-", 6) == 0 ||
           (cfg->trusted_header && strcasecmp(name, cfg->trusted_header) == 0) ||
           (cfg->keys && strcasecmp(name, "Authorization") == 0);
}

/* The budget lowered to `usd` when that is smaller (or the first one). */
static void s_cap(sc_trust_t *t, double usd)
{
    if (!t->has_budget || usd < t->budget_usd) {
        t->budget_usd = usd;
    }
    t->has_budget = true;
}

/* `Bearer KEY` (scheme in any case) -> the key's grant into t. */
static int s_api_key(const sc_trust_config_t *cfg, const char *auth, sc_trust_t *t,
                     oai_error_t *err)
{
    if (!auth) {
        return oai_error_set(err, 401, "invalid_api_key", NULL,
                             "no API key: send it as 'Authorization: Bearer KEY'");
    }
    size_t i = 0;
    while (auth[i] == ' ' || auth[i] == '\t') {
        i++;
    }
    if (strncasecmp(auth + i, "Bearer", 6) != 0 || (auth[i + 6] != ' ' && auth[i + 6] != '\t')) {
        return oai_error_set(err, 401, "invalid_api_key", NULL,
                             "the Authorization header is not 'Bearer KEY'");
    }
    i += 6;
    while (auth[i] == ' ' || auth[i] == '\t') {
        i++;
    }
    size_t n = strlen(auth + i);
    while (n > 0 && (auth[i + n - 1] == ' ' || auth[i + n - 1] == '\t')) {
        n--;
    }
    /* The key is never quoted back: it may be someone's secret with a typo. */
    const hpp_apikey_t *k =
        hpp_apikeys_check_key(auth + i, n) ? NULL : hpp_apikeys_find(cfg->keys, auth + i, n);
    if (!k) {
        return oai_error_set(err, 401, "invalid_api_key", NULL, "incorrect API key provided");
    }
    if (k->revoked) {
        return oai_error_set(err, 401, "invalid_api_key", NULL, "the API key was revoked");
    }
    memcpy(t->group, k->group, sizeof t->group);
    memcpy(t->key_hash, k->hash, sizeof t->key_hash);
    if (k->has_budget) {
        s_cap(t, k->budget_usd);
    }
    return 0;
}

/* `GROUP` or `GROUP;budget_usd=USD` (spaces around ';' allowed). */
static int s_gateway(const char *name, const char *v, sc_trust_t *t, oai_error_t *err)
{
    const char *semi = strchr(v, ';');
    size_t glen = semi ? (size_t)(semi - v) : strlen(v);
    while (glen > 0 && (v[glen - 1] == ' ' || v[glen - 1] == '\t')) {
        glen--;
    }
    size_t g0 = strspn(v, " \t");
    if (g0 > glen || !hpp_apikeys_group_ok(v + g0, glen - g0)) {
        return oai_error_set(err, 400, "invalid_value", name,
                             "%s: expected GROUP or GROUP;budget_usd=USD, the group 1 to %d "
                             "characters from [A-Za-z0-9_.:/@-]",
                             name, HPP_MAX_GROUP_LEN);
    }
    memcpy(t->group, v + g0, glen - g0);
    t->group[glen - g0] = '\0';
    if (!semi) {
        return 0;
    }
    const char *p = semi + 1;
    p += strspn(p, " \t");
    size_t plen = strlen(p);
    while (plen > 0 && (p[plen - 1] == ' ' || p[plen - 1] == '\t')) {
        plen--;
    }
    double usd;
    if (plen < 11 || strncmp(p, "budget_usd=", 11) != 0) {
        return oai_error_set(err, 400, "invalid_value", name,
                             "%s: after the group, expected ;budget_usd=USD", name);
    }
    if (hpp_apikeys_parse_usd(p + 11, plen - 11, &usd) != 0) {
        return oai_error_set(err, 400, "invalid_value", name,
                             "%s: budget_usd: expected a plain decimal amount of USD from 0 to "
                             "1000000, such as 0.05",
                             name);
    }
    s_cap(t, usd);
    return 0;
}

int sc_trust_headers(const sc_trust_config_t *cfg, const struct evkeyvalq *h, sc_trust_t *t,
                     oai_error_t *err)
{
    memset(t, 0, sizeof *t);
    const char *auth = NULL, *gw = NULL;
    for (const struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        if (!s_single(cfg, kv->key)) {
            continue;
        }
        for (const struct evkeyval *o = kv->next.tqe_next; o; o = o->next.tqe_next) {
            if (strcasecmp(o->key, kv->key) == 0) {
                return oai_error_set(err, 400, "duplicate_header", kv->key,
                                     "%.64s: given more than once; the sidecar and the upstream "
                                     "could read different values",
                                     kv->key);
            }
        }
        if (strcasecmp(kv->key, "X-HPP-Group") == 0) {
            t->hdr_group = true;
        } else if (strcasecmp(kv->key, "X-HPP-Budget-USD") == 0) {
            t->hdr_budget = true;
        }
        if (cfg->keys && strcasecmp(kv->key, "Authorization") == 0) {
            auth = kv->value;
        }
        if (cfg->trusted_header && strcasecmp(kv->key, cfg->trusted_header) == 0) {
            gw = kv->value;
        }
    }
    if (cfg->keys && s_api_key(cfg, auth, t, err) < 0) {
        return -1;
    }
    if (gw && s_gateway(cfg->trusted_header, gw, t, err) < 0) {
        return -1;
    }
    return 0;
}

int sc_trust_apply(const sc_trust_config_t *cfg, const sc_trust_t *t, hpp_features_t *f,
                   oai_error_t *err)
{
    if (!cfg->trust_client) {
        const char *field = f->group.len ? (t->hdr_group ? "X-HPP-Group" : "hpp.group")
                            : f->has_budget
                                ? (t->hdr_budget ? "X-HPP-Budget-USD" : "hpp.budget_usd")
                                : NULL;
        if (field) {
            return oai_error_set(err, 403, "client_features_not_trusted", field,
                                 "%s: the caller's group and budget come from its API key or "
                                 "the gateway, not from the request (the sidecar runs without "
                                 "--trust-client-features)",
                                 field);
        }
    }
    if (t->group[0]) {
        f->group.ptr = t->group;
        f->group.len = strlen(t->group);
    }
    /* The engine's ledger charges the key by its hash (never the key). */
    if (t->key_hash[0]) {
        f->key.ptr = t->key_hash;
        f->key.len = HPP_KEY_HASH_LEN;
    }
    if (t->has_budget && (!f->has_budget || t->budget_usd < f->budget_usd)) {
        f->has_budget = true;
        f->budget_usd = t->budget_usd;
    }
    return 0;
}
