/* fuzz_local.c - libFuzzer target for the engine's answers in the caller's
 * process (engine/eng_local.h, the sidecar's --local-engine).
 *
 * Each input is one request frame, answered with the bundled policy and
 * catalog (loaded once, from the repository's root, where `make fuzz` and
 * the smoke run start): routes and explains go through the resolver, reports
 * through the endpoint lookup and the health table that later inputs' routes
 * read. Every answer must decode as a reply with the request's id when the
 * request decoded, and be absent only for a report without ack that was
 * applied. Nothing may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "eng_local.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static eng_local_t *s_local;
static proto_buf_t s_out;

static void s_init(void)
{
    static const char *const catalogs[1] = {"policies/catalog.json"};
    static eng_loadlog_t log;
    eng_local_config_t cfg = {
        .policy = "policies/default.policy", .catalogs = catalogs, .ncatalogs = 1, .readers = 1};
    s_local = eng_local_new(&cfg, &log);
    if (!s_local || proto_buf_init(&s_out, 256) != 0) {
        fprintf(stderr, "fuzz_local: run from the repository's root: %s\n",
                log.n ? log.lines[0] : "out of memory");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_local) {
        s_init();
    }
    proto_request_t req;
    bool decoded = proto_request_decode(data, size, &req, NULL) == PROTO_OK;
    proto_buf_reset(&s_out);
    bool replied = eng_local_answer(s_local, 0, data, size, &s_out);
    if (!replied) {
        /* Only an applied report without ack goes unanswered. */
        if (!decoded || req.op != PROTO_OP_REPORT || req.ack || s_out.len != 0) {
            abort();
        }
        return 0;
    }
    proto_reply_t r;
    if (proto_reply_decode(s_out.data, s_out.len, &r, NULL) != PROTO_OK) {
        abort();
    }
    if (decoded && !proto_id_equal(&r.id, &req.id)) {
        abort();
    }
    return 0;
}
