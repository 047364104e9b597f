/* eng_decision.h - what the resolver answers, and why (the trace).
 *
 * The request side of the contract (features, statuses) is
 * proto/hpp_request.h. A decision borrows model/endpoint/rule names from the
 * policy snapshot that produced it, so it stays valid as long as that
 * snapshot lives. A plain fixed-size struct: no allocation per request.
 */
#ifndef ENG_DECISION_H
#define ENG_DECISION_H

#include "eng_catalog.h"
#include "eng_cost.h"
#include "hpp_request.h"

typedef struct {
    hpp_status_t status;            /* HPP_OK or an error */
    char message[192];              /* why, in words (always set) */
    const eng_model_t *model;       /* chosen model, NULL on error */
    const eng_endpoint_t *endpoint; /* chosen endpoint, NULL on error */
    int tier;                       /* index of the tier, -1 if none */
    const char *tier_name;          /* "budget", ..., "" if none */
    const char *rule;               /* deciding rule name, or "direct", "floor", "free" */
    hpp_cost_t cost;                /* estimate, group multiplier applied */
    int64_t output_tokens;          /* output tokens used for the estimate */
    uint32_t permille;              /* the group's price multiplier (1000 = x1.0) */
    const eng_endpoint_t *fallbacks[HPP_MAX_FALLBACKS]; /* next best, in order */
    const char *fallback_tier[HPP_MAX_FALLBACKS];       /* their tier names, "" if none */
    hpp_pusd_t fallback_cost[HPP_MAX_FALLBACKS]; /* their estimates (total, multiplier applied) */
    uint32_t nfallbacks;                         /* used entries of fallbacks[] */
    uint64_t decision_id; /* set by the server for reports to name; 0 = none */
    bool has_ledger;      /* the ledger reserved (eng_ledger.h): the two below are sent */
    int64_t reserved_pd;  /* the estimate reserved, picodollars */
    int64_t remaining_pd; /* what the key may still spend after it */
} eng_decision_t;

/* Why a candidate was passed over. */
typedef enum {
    ENG_REJ_CHOSEN = 0,      /* not rejected: this is the answer */
    ENG_REJ_DISABLED,        /* endpoint disabled */
    ENG_REJ_GROUP,           /* group may not reach the model */
    ENG_REJ_VISION,          /* request has images, model lacks vision */
    ENG_REJ_TOOLS,           /* request needs tools */
    ENG_REJ_JSON,            /* request needs JSON output */
    ENG_REJ_CAPABILITY,      /* a capability the rule requires */
    ENG_REJ_CONTEXT,         /* prompt + output exceed the context window */
    ENG_REJ_BUDGET,          /* estimate over budget_usd */
    ENG_REJ_NOT_FREE,        /* a free answer was required */
    ENG_REJ_SHADOWED,        /* fit, but a better candidate was chosen first */
    ENG_REJ_NOT_IN_MODELS,   /* the request's `models` does not list the model */
    ENG_REJ_PROVIDER,        /* providers_only / _ignore / allow_fallbacks exclude the endpoint */
    ENG_REJ_MAX_PRICE,       /* a price of the endpoint is above the request's max_price */
    ENG_REJ_MAX_OUTPUT,      /* output (+ reasoning) tokens exceed the model's max output */
    ENG_REJ_POLICY_PROVIDER, /* the group's or rule's allow_/deny_providers exclude the endpoint */
    ENG_REJ_MIN_CONTEXT,     /* the window is below the rule's min_context */
    ENG_REJ_COOLING,         /* the endpoint is on cooldown after repeated failures (reports) */
    ENG_REJ_COUNT
} eng_reject_t;

const char *eng_reject_name(eng_reject_t r);

/* One candidate seen while resolving (trace mode only). */
typedef struct {
    const eng_endpoint_t *endpoint; /* the candidate */
    int tier;                       /* tier it was considered in, -1 if none */
    eng_reject_t reason;            /* why not, or ENG_REJ_CHOSEN */
    hpp_pusd_t cost;                /* its estimate (total); HPP_PRICE_NA when it was
                                     * refused before one was made (e.g. context) */
} eng_trace_entry_t;

/* Scores a trace shows (ENG_MAX_SCORERS of eng_policy_internal.h). */
#define ENG_TRACE_SCORES 8

/* Caller-owned trace buffer. The resolver appends up to `cap` entries and
 * counts the rest in `dropped`. */
typedef struct {
    eng_trace_entry_t *entries;                /* caller-allocated array */
    size_t cap;                                /* its size */
    size_t n;                                  /* entries written */
    size_t dropped;                            /* entries that did not fit */
    uint64_t hints;                            /* final hint bit set (after hint rules) */
    const char *hint_names[64];                /* names of the set bits, NULL-terminated */
    const char *rules_tried[32];               /* names of routing rules evaluated, in order */
    uint32_t nrules_tried;                     /* used entries of rules_tried */
    const char *score_names[ENG_TRACE_SCORES]; /* the policy's scorers */
    double scores[ENG_TRACE_SCORES];           /* their scores of the request's text */
    uint32_t nscores;                          /* used entries */
} eng_trace_t;

#endif
