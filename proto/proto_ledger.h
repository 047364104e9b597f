/* proto_ledger.h - reading the engine's `ledger` replies on the client side
 * (PROTOCOL.md "Ledger"): the sidecar's read endpoints and hpp-ledger take
 * a key's spend from the `key` action's reply with this, without touching
 * msgpack themselves.
 */
#ifndef PROTO_LEDGER_H
#define PROTO_LEDGER_H

#include <stddef.h>

#include "proto.h"

/* Decodes the reply to `ledger` action `key` (ok = true) into *out: the
 * strings borrow from buf; the *_pd amounts are exact picodollars, and a
 * limit the key does not have (nil on the wire) is PROTO_LEDGER_NONE_PD.
 * Keys it does not know are skipped (newer engines may add some). Returns
 * PROTO_OK, or an error code with `err` filled (a malformed frame, a value
 * of the wrong type, `key` or `balance_pd` missing). An error reply (ok =
 * false) is PROTO_ERR_RANGE: decode it with proto_reply_decode. */
int proto_ledger_key_decode(const void *buf, size_t len, proto_ledger_key_t *out,
                            proto_error_t *err);

#endif
