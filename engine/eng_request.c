/* eng_request.c - names of statuses and reject reasons, feature defaults.
 *
 * The status names are the wire error codes of proto/PROTOCOL.md; keeping
 * them in one table means codec, sidecar and CLI cannot disagree.
 */
#include "eng_request.h"

#include <string.h>

static const char *const s_status_names[ENG_STATUS_COUNT] = {
    [ENG_OK] = "ok",
    [ENG_E_BAD_REQUEST] = "bad_request",
    [ENG_E_UNKNOWN_OP] = "unknown_op",
    [ENG_E_UNKNOWN_MODEL] = "unknown_model",
    [ENG_E_MODEL_NOT_ALLOWED] = "model_not_allowed",
    [ENG_E_INSUFFICIENT_BUDGET] = "insufficient_budget",
    [ENG_E_NO_FREE_VARIANT] = "no_free_variant",
    [ENG_E_NO_CANDIDATE] = "no_candidate",
    [ENG_E_INTERNAL] = "internal",
};

static const char *const s_reject_names[ENG_REJ_COUNT] = {
    [ENG_REJ_CHOSEN] = "chosen",         [ENG_REJ_DISABLED] = "disabled",
    [ENG_REJ_GROUP] = "group",           [ENG_REJ_VISION] = "no_vision",
    [ENG_REJ_TOOLS] = "no_tools",        [ENG_REJ_JSON] = "no_json",
    [ENG_REJ_CAPABILITY] = "capability", [ENG_REJ_CONTEXT] = "context",
    [ENG_REJ_BUDGET] = "over_budget",    [ENG_REJ_NOT_FREE] = "not_free",
    [ENG_REJ_SHADOWED] = "shadowed",
};

void eng_features_init(eng_features_t *f)
{
    memset(f, 0, sizeof *f);
    f->output_tokens = -1;
}

const char *eng_status_name(eng_status_t s)
{
    if ((unsigned)s < ENG_STATUS_COUNT) {
        return s_status_names[s];
    }
    return "internal";
}

int eng_status_from_name(const char *name, size_t len)
{
    for (int i = 0; i < ENG_STATUS_COUNT; i++) {
        if (strlen(s_status_names[i]) == len && memcmp(s_status_names[i], name, len) == 0) {
            return i;
        }
    }
    return -1;
}

const char *eng_reject_name(eng_reject_t r)
{
    if ((unsigned)r < ENG_REJ_COUNT) {
        return s_reject_names[r];
    }
    return "unknown";
}
