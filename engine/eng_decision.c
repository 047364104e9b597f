/* eng_decision.c - names of the reasons a candidate was passed over. */
#include "eng_decision.h"

#include <string.h>

static const char *const s_reject_names[ENG_REJ_COUNT] = {
    [ENG_REJ_CHOSEN] = "chosen",
    [ENG_REJ_DISABLED] = "disabled",
    [ENG_REJ_GROUP] = "group",
    [ENG_REJ_VISION] = "no_vision",
    [ENG_REJ_TOOLS] = "no_tools",
    [ENG_REJ_JSON] = "no_json",
    [ENG_REJ_CAPABILITY] = "capability",
    [ENG_REJ_CONTEXT] = "context",
    [ENG_REJ_BUDGET] = "over_budget",
    [ENG_REJ_NOT_FREE] = "not_free",
    [ENG_REJ_SHADOWED] = "shadowed",
    [ENG_REJ_NOT_IN_MODELS] = "not_in_models",
    [ENG_REJ_PROVIDER] = "provider_excluded",
    [ENG_REJ_MAX_PRICE] = "over_max_price",
    [ENG_REJ_MAX_OUTPUT] = "max_output",
    [ENG_REJ_POLICY_PROVIDER] = "policy_provider",
    [ENG_REJ_MIN_CONTEXT] = "min_context",
    [ENG_REJ_COOLING] = "cooling_down",
};

const char *eng_reject_name(eng_reject_t r)
{
    if ((unsigned)r < ENG_REJ_COUNT) {
        return s_reject_names[r];
    }
    return "unknown";
}
