/* sc_trust.h - the trust boundary of a request: who says which group it is
 * in and what it may cost.
 *
 * Three sources may name a group and a budget, trusted in this order:
 *   1. the API key (`Authorization: Bearer KEY`, looked up in --keys): its
 *      group, and its budget cap;
 *   2. a header set by a gateway in front (--trusted-header NAME), value
 *      `GROUP` or `GROUP;budget_usd=USD`: the gateway overwrites whatever
 *      the client sent under that name, so its value is trusted;
 *   3. the client itself (body `hpp.group` / `hpp.budget_usd`, headers
 *      X-HPP-Group / X-HPP-Budget-USD), refused unless
 *      --trust-client-features.
 * The group is the gateway's when it sent one, else the key's, else (when
 * client features are trusted) the client's. The budget is the smallest of
 * those given: a cap only ever lowers it.
 *
 * sc_trust_headers runs before the body is read (duplicates, the key, the
 * gateway's header) so an unauthenticated caller learns nothing about its
 * body; sc_trust_apply runs after the reader filled the features.
 */
#ifndef SC_TRUST_H
#define SC_TRUST_H

#include <stdbool.h>

#include "hpp_request.h"
#include "oai_error.h"
#include "hpp_apikeys.h"

struct evkeyvalq;

typedef struct {
    const hpp_apikeys_t *keys;  /* --keys table; NULL = no key needed */
    const char *trusted_header; /* --trusted-header NAME; NULL = none */
    bool trust_client;          /* --trust-client-features */
} sc_trust_config_t;

/* What the headers of one request said. Lives in the call: the features
 * point at `group`. */
typedef struct {
    char group[HPP_MAX_GROUP_LEN + 1];   /* trusted group, "" = none */
    char key_hash[HPP_APIKEY_HASH_TEXT]; /* the caller's key, "sha256:<hex>"; "" = none */
    bool has_budget;                     /* a trusted budget or cap applies */
    double budget_usd;                   /* the smallest of them */
    bool hdr_group;                      /* the client sent X-HPP-Group */
    bool hdr_budget;                     /* the client sent X-HPP-Budget-USD */
} sc_trust_t;

/* NULL when `name` may be used with --trusted-header, else why. An HTTP
 * token of 1 to 64 bytes that is not a header the sidecar reads otherwise
 * (the X-HPP-* hints, Authorization, framing and hop-by-hop headers). */
const char *sc_trust_header_name_check(const char *name);

/* Checks the headers and fills `t`. Refuses (returns -1 with err):
 *   400 duplicate_header  an X-HPP-* header, the trusted header, or (with
 *                         keys) Authorization given twice, any case;
 *   401 invalid_api_key   with keys: no Bearer key, an unknown or a revoked one;
 *   400 invalid_value     a trusted header value that does not parse. */
int sc_trust_headers(const sc_trust_config_t *cfg, const struct evkeyvalq *h, sc_trust_t *t,
                     oai_error_t *err);

/* After extraction: refuses a client's group or budget unless trusted
 * (403 client_features_not_trusted, param naming the field), then sets the
 * features' group and budget from `t` (the group borrows t->group). */
int sc_trust_apply(const sc_trust_config_t *cfg, const sc_trust_t *t, hpp_features_t *f,
                   oai_error_t *err);

#endif
