/* eng_reply.h - the engine's answers on the wire.
 *
 * The codec (proto.h) encodes replies from views that name things by their
 * wire strings; it knows nothing of catalogs or policies. This module makes
 * those views from the engine's objects (a decision and its catalog, a trace
 * and its policy, a whole catalog for the models list) and encodes them.
 * The decision path allocates nothing.
 */
#ifndef ENG_REPLY_H
#define ENG_REPLY_H

#include "eng_decision.h"
#include "eng_policy.h"
#include "proto.h"

/* A catalog's endpoints pre-encoded for decision replies (proto_epwire_t),
 * remembered with the catalog they came from. */
typedef struct eng_epwire eng_epwire_t;

/* The table of a frozen catalog, or NULL when out of memory. */
eng_epwire_t *eng_epwire_new(const eng_catalog_t *cat);
void eng_epwire_destroy(eng_epwire_t **self_p);

/* The wire view of `d`; names borrow from `cat` and the policy. Indexes
 * into an epwire table of `cat` are filled too. */
void eng_reply_view(const eng_decision_t *d, const eng_catalog_t *cat, proto_decision_t *out);

/* The reply to route. `wire` (may be NULL) is used only when it was made
 * from `cat`: the bytes are the same either way. */
int eng_reply_decision(proto_buf_t *b, const proto_id_t *id, const eng_decision_t *d,
                       const eng_catalog_t *cat, const eng_epwire_t *wire);

/* The reply to explain: as route plus the trace (also on error). */
int eng_reply_explain(proto_buf_t *b, const proto_id_t *id, const eng_decision_t *d,
                      const eng_trace_t *t, const eng_policy_t *pol);

/* The `models` array of a catalog: each model with an enabled endpoint. */
int eng_reply_models_encode(proto_buf_t *b, const eng_catalog_t *cat);

#endif
