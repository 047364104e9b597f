/* eng_local.c - the engine's answers inside the caller's own process.
 *
 * The snapshot cell, the reload gate and the report path are the engine
 * service's (eng_server.c), without its sockets, threads, counters, ledger
 * or decision log: eng_local_answer is what one of its workers does with a
 * decoded request, on the caller's thread.
 */
#include "eng_local.h"

#include "eng_cases.h"
#include "eng_catalog.h"
#include "eng_health.h"
#include "eng_policy_internal.h"
#include "eng_reply.h"
#include "hpp_types.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TRACE_CAP 4096 /* candidates recorded by explain, as the engine */

/* One answering thread's own state, on a cache line of its own: decision
 * ids are numbered per reader (no shared counter), and explain's candidate
 * buffer is made at the reader's first explain. */
typedef struct {
    uint64_t decisions;       /* decision ids given */
    eng_trace_entry_t *trace; /* S_TRACE_CAP entries, or NULL */
} __attribute__((aligned(64))) s_reader_t;

struct eng_local {
    eng_snapshot_cfg_t cfg;    /* files, borrowed from the caller */
    eng_snapcell_t *cell;      /* what serves */
    eng_snapshot_t *serving;   /* the cell's snapshot: the reloader's view of it */
    uint64_t next_version;     /* of the next snapshot loaded */
    pthread_mutex_t health_mu; /* one report writer at a time; held while publishing */
    size_t nreaders;           /* entries of readers */
    s_reader_t *readers;       /* one per answering thread */
};

/* The policy a reload must keep, or NULL: a snapshot loaded against a
 * serving policy with a catch-all rule must have one too (as the engine). */
static eng_snapshot_t *s_load(eng_local_t *self, eng_loadlog_t *log)
{
    const eng_policy_t *serving = self->serving ? eng_snapshot_policy(self->serving) : NULL;
    self->cfg.policy_flags =
        serving && eng_policy_catch_all(serving) ? ENG_POLICY_REQUIRE_CATCH_ALL : 0;
    memset(log, 0, sizeof *log);
    eng_snapshot_t *snap = eng_snapshot_load(&self->cfg, self->next_version, log);
    if (snap && serving &&
        eng_policy_coverage_lost(serving, eng_snapshot_policy(snap), self->cfg.policy,
                                 eng_loadlog_fail, log) > 0) {
        eng_snapshot_destroy(&snap);
    }
    eng_loadlog_errors_first(log);
    self->next_version += snap != NULL;
    return snap;
}

eng_local_t *eng_local_new(const eng_local_config_t *cfg, eng_loadlog_t *log)
{
    eng_local_t *self = calloc(1, sizeof *self);
    if (!self) {
        memset(log, 0, sizeof *log);
        eng_loadlog_add(log, true, "out of memory");
        return NULL;
    }
    self->cfg.policy = cfg->policy;
    self->cfg.catalogs = cfg->catalogs;
    self->cfg.ncatalogs = cfg->ncatalogs;
    self->next_version = 1;
    self->nreaders = cfg->readers ? cfg->readers : 1;
    pthread_mutex_init(&self->health_mu, NULL);
    self->readers = aligned_alloc(64, self->nreaders * sizeof *self->readers);
    if (self->readers) {
        memset(self->readers, 0, self->nreaders * sizeof *self->readers);
    }
    eng_snapshot_t *snap = s_load(self, log);
    if (!self->readers || !snap) {
        if (!self->readers) {
            eng_loadlog_add(log, true, "out of memory");
        }
        eng_snapshot_destroy(&snap);
        eng_local_destroy(&self);
        return NULL;
    }
    self->serving = snap;
    self->cell = eng_snapcell_new(&snap, self->nreaders);
    if (!self->cell) {
        eng_loadlog_add(log, true, "out of memory");
        eng_snapshot_destroy(&self->serving);
        eng_local_destroy(&self);
    }
    return self;
}

void eng_local_destroy(eng_local_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_local_t *self = *self_p;
    eng_snapcell_destroy(&self->cell); /* frees the serving snapshot */
    if (self->readers) {
        for (size_t i = 0; i < self->nreaders; i++) {
            free(self->readers[i].trace);
        }
        free(self->readers);
    }
    pthread_mutex_destroy(&self->health_mu);
    free(self);
    *self_p = NULL;
}

bool eng_local_reload(eng_local_t *self, eng_loadlog_t *log)
{
    eng_snapshot_t *snap = s_load(self, log);
    if (!snap) {
        return false;
    }
    eng_snapshot_t *next = snap;
    /* What was measured carries over; reports take the snapshot under
     * health_mu only, so none lands in the old table after the copy. */
    pthread_mutex_lock(&self->health_mu);
    eng_snapshot_carry_health(snap, self->serving);
    eng_snapcell_publish(self->cell, &next); /* waits for readers of the old one, frees it */
    self->serving = snap;
    pthread_mutex_unlock(&self->health_mu);
    return true;
}

size_t eng_local_readers(const eng_local_t *self)
{
    return self->nreaders;
}

uint64_t eng_local_version(eng_local_t *self, char hash[ENG_SNAPSHOT_HASH_HEX])
{
    const eng_snapshot_t *snap = self->serving; /* the reloader's own view */
    memcpy(hash, eng_snapshot_hash(snap), ENG_SNAPSHOT_HASH_HEX);
    return eng_snapshot_version(snap);
}

/* Applies a report to the serving snapshot's health: every attempt must
 * name an endpoint of its catalog, or none counts (as the engine). */
static bool s_report(eng_local_t *self, size_t reader, const proto_request_t *req, char *msg,
                     size_t cap)
{
    proto_attempt_t at[PROTO_MAX_ATTEMPTS]; /* borrow from the frame */
    uint32_t idx[PROTO_MAX_ATTEMPTS];
    uint32_t n = proto_attempts_all(&req->attempts, at);
    int64_t now = eng_health_now_ms();
    pthread_mutex_lock(&self->health_mu);
    const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, reader);
    bool ok = eng_health_endpoints(eng_snapshot_catalog(snap), at, n, idx, msg, cap);
    for (uint32_t i = 0; ok && i < n; i++) {
        eng_health_record(eng_snapshot_health(snap), idx[i], &at[i], now);
    }
    eng_snapcell_release(self->cell, reader);
    pthread_mutex_unlock(&self->health_mu);
    return ok;
}

/* Route or explain, as the engine without a ledger decides them. */
static void s_decide(eng_local_t *self, size_t reader, const proto_request_t *req, proto_buf_t *out)
{
    s_reader_t *r = &self->readers[reader];
    const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, reader);
    const eng_policy_t *pol = eng_snapshot_policy(snap);
    eng_decision_t d;
    if (req->op == PROTO_OP_ROUTE) {
        eng_resolve(pol, &req->features, &d, NULL);
        d.decision_id = ++r->decisions * self->nreaders + reader; /* unique in the process */
        eng_reply_decision(out, &req->id, &d, eng_snapshot_catalog(snap), eng_snapshot_wire(snap));
    } else if (!r->trace && !(r->trace = calloc(S_TRACE_CAP, sizeof *r->trace))) {
        proto_reply_error(out, &req->id, HPP_E_INTERNAL, "explain: out of memory");
    } else {
        eng_trace_t t;
        memset(&t, 0, sizeof t);
        t.entries = r->trace;
        t.cap = S_TRACE_CAP;
        eng_resolve(pol, &req->features, &d, &t);
        d.decision_id = ++r->decisions * self->nreaders + reader;
        eng_reply_explain(out, &req->id, &d, &t, pol);
    }
    eng_snapcell_release(self->cell, reader);
}

bool eng_local_answer(eng_local_t *self, size_t reader, const void *frame, size_t len,
                      proto_buf_t *out)
{
    size_t start = out->len; /* the reply goes after what `out` holds */
    proto_request_t req;
    proto_error_t err;
    int rc = proto_request_decode(frame, len, &req, &err);
    if (rc != PROTO_OK) {
        proto_reply_error(out, &req.id, proto_err_status(rc), err.msg);
        return true;
    }
    if (reader >= self->nreaders) { /* a caller's bug: never touch another's slot */
        proto_reply_error(out, &req.id, HPP_E_INTERNAL, "no reader slot for this thread");
        return true;
    }
    switch (req.op) {
    case PROTO_OP_ROUTE:
    case PROTO_OP_EXPLAIN:
        s_decide(self, reader, &req, out);
        break;
    case PROTO_OP_REPORT: {
        char msg[192];
        if (!s_report(self, reader, &req, msg, sizeof msg)) {
            proto_reply_error(out, &req.id, HPP_E_BAD_REQUEST, msg);
            break;
        }
        if (!req.ack) {
            return false;
        }
        proto_reply_report(out, &req.id, req.attempts.n);
        break;
    }
    case PROTO_OP_MODELS:
    case PROTO_OP_PING: {
        const eng_snapshot_t *snap = eng_snapcell_acquire(self->cell, reader);
        if (req.op == PROTO_OP_MODELS) {
            size_t mlen = 0;
            const void *models = eng_snapshot_models(snap, &mlen);
            proto_reply_models(out, &req.id, models, mlen);
        } else {
            proto_reply_ping_hash(out, &req.id, eng_snapshot_version(snap), eng_snapshot_hash(snap),
                                  HPP_VERSION);
        }
        eng_snapcell_release(self->cell, reader);
        break;
    }
    case PROTO_OP_LEDGER:
        proto_reply_error(out, &req.id, HPP_E_LEDGER_UNAVAILABLE,
                          "no ledger: decisions are made in this process (the sidecar's "
                          "--local-engine), and the ledger lives in hpp-engine");
        break;
    default: {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "op '%s' is not served in process (the sidecar's --local-engine): ask "
                 "hpp-engine; SIGHUP reloads the sidecar's policy",
                 proto_op_name(req.op));
        proto_reply_error(out, &req.id, HPP_E_UNKNOWN_OP, msg);
        break;
    }
    }
    if (out->overflow) { /* growing failed (out of memory): a short error may still fit */
        out->len = start;
        out->overflow = false;
        proto_reply_error(out, &req.id, HPP_E_INTERNAL, "reply could not be encoded");
    }
    return true;
}
