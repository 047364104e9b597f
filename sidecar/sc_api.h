/* sc_api.h - the gateway's own read endpoints for the calling key:
 *
 *   GET /api/quota-check   what the key may still spend
 *   GET /api/usage         its requests, tokens, cost and remaining quota
 *   GET /api/v1/key        the same, shaped as OpenRouter's /api/v1/key
 *
 * The caller is the `Authorization: Bearer` key, checked against the
 * --keys file as /v1/route checks it (401 when unknown or revoked); the
 * figures are the engine's, from its `ledger` op (action `key`), asked with
 * the key's SHA-256, never the key. Amounts are exact: the engine's
 * picodollars written as decimal USD.
 */
#ifndef SC_API_H
#define SC_API_H

#include <stdbool.h>
#include <stddef.h>

#include "sc_call.h"
#include "sc_engine.h"
#include "sc_trust.h"

/* True when the path uri[0..plen) is one of the endpoints above. */
bool sc_api_serves(const char *uri, size_t plen);

/* Answers `call` (a GET of one of the endpoints): authenticates it with
 * `trust`, asks `engine`, replies and finishes the call through its ops. */
void sc_api_handle(sc_call_t *call, sc_engine_t *engine, const sc_trust_config_t *trust);

/* The JSON body of endpoint `path` for the key state `k` into buf[n].
 * Returns its length, or -1 when it does not fit or the path is not one of
 * the endpoints (exposed for the unit tests). */
int sc_api_body(const char *path, size_t plen, const proto_ledger_key_t *k, char *buf, size_t n);

#endif
