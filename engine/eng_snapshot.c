/* eng_snapshot.c - immutable catalog+policy snapshots and the lock-free cell
 * that hands the current one to worker threads.
 *
 * Owns: a snapshot owns its catalog, policy, encoded models list and
 * endpoint table (eng_epwire_t); the cell
 * owns the current snapshot. Reclamation is by hazard slots: a reader stores
 * the pointer it is about to use in its own cache line, then re-reads the
 * current pointer; if it is unchanged the writer is guaranteed to see the
 * slot before freeing. Compared with a shared reference count this keeps
 * the hot path free of contended writes, and compared with a read-write lock
 * a reload can never stall a decision: the writer waits, readers never do.
 */
#include "eng_snapshot.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>

#include "eng_health.h"
#include "eng_policy_internal.h"
#include "eng_reply.h"

struct eng_snapshot {
    eng_catalog_t *catalog;           /* frozen, owned */
    eng_policy_t *policy;             /* compiled against catalog, owned */
    uint64_t version;                 /* 1 at startup, +1 per successful reload */
    char hash[ENG_SNAPSHOT_HASH_HEX]; /* SHA-256 of the files as read, lowercase hex */
    proto_buf_t models;               /* encoded `models` array, owned */
    eng_epwire_t *wire;               /* the catalog's endpoints encoded for replies, owned */
    eng_health_t *health;             /* measured endpoint health: the one mutable part */
    void *attached;                   /* the ledger's key table (a reference), NULL = none */
    void (*release)(void *);          /* lets go of `attached` */
};

/* Index of the last warning line, or ENG_LOADLOG_LINES when every line is
 * an error. */
static uint32_t s_last_warning(const eng_loadlog_t *log)
{
    for (uint32_t i = log->n; i-- > 0;) {
        if (!log->is_error[i]) {
            return i;
        }
    }
    return ENG_LOADLOG_LINES;
}

void eng_loadlog_add(eng_loadlog_t *log, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eng_loadlog_vadd(log, error, fmt, ap);
    va_end(ap);
}

void eng_loadlog_vadd(eng_loadlog_t *log, bool error, const char *fmt, va_list ap)
{
    if (!log) {
        return;
    }
    if (error) {
        log->errors++;
    } else {
        log->warnings++;
    }
    uint32_t at = log->n;
    if (at >= ENG_LOADLOG_LINES) {
        /* Full: an error still gets a line, in place of the last warning,
         * so a rejection can always quote one of its errors. */
        at = error ? s_last_warning(log) : ENG_LOADLOG_LINES;
        log->more++;
        if (at >= ENG_LOADLOG_LINES) {
            return;
        }
    } else {
        log->n++;
    }
    log->is_error[at] = error;
    vsnprintf(log->lines[at], sizeof log->lines[0], fmt, ap);
}

void eng_loadlog_errors_first(eng_loadlog_t *log)
{
    uint32_t k = 0; /* the lines before k are errors */
    for (uint32_t i = 0; i < log->n; i++) {
        if (!log->is_error[i]) {
            continue;
        }
        if (i != k) { /* move line i up to k, the warnings between down one */
            char line[sizeof log->lines[0]];
            memcpy(line, log->lines[i], sizeof line);
            memmove(log->lines[k + 1], log->lines[k], sizeof line * (i - k));
            memcpy(log->lines[k], line, sizeof line);
            memmove(&log->is_error[k + 1], &log->is_error[k], sizeof log->is_error[0] * (i - k));
            log->is_error[k] = true;
        }
        k++;
    }
}

void eng_loadlog_log(const eng_loadlog_t *log, const char *module)
{
    for (uint32_t i = 0; i < log->n; i++) {
        eng_log(log->is_error[i] ? ENG_LOG_ERROR : ENG_LOG_WARN, module, "%s", log->lines[i]);
    }
    if (log->more) {
        eng_log(ENG_LOG_WARN, module, "(%u more diagnostics not shown)", log->more);
    }
}

void eng_loadlog_fail(void *log, const char *file, int line, const char *msg)
{
    if (line > 0) {
        eng_loadlog_add(log, true, "%s:%d:1: error: %s", file, line, msg);
    } else {
        eng_loadlog_add(log, true, "%s: error: %s", file, msg);
    }
}

void eng_loadlog_add_diags(eng_loadlog_t *log, const eng_diags_t *diags)
{
    size_t n = eng_diags_size(diags);
    for (size_t i = 0; i < n; i++) {
        const eng_diag_t *d = eng_diags_get(diags, i);
        bool err = d->severity == ENG_DIAG_ERROR;
        const char *sev = err ? "error" : "warning";
        if (d->line > 0) {
            eng_loadlog_add(log, err, "%s:%d:%d: %s: %s", d->file, d->line, d->col, sev, d->msg);
        } else {
            eng_loadlog_add(log, err, "%s: %s: %s", d->file, sev, d->msg);
        }
    }
    /* Diagnostics the policy compiler counted but did not keep. */
    size_t total =
        eng_diags_count(diags, ENG_DIAG_ERROR) + eng_diags_count(diags, ENG_DIAG_WARNING);
    if (log && total > n) {
        log->more += (uint32_t)(total - n);
    }
}

/* eng_source_fn: every file the loaders read goes into the snapshot's hash. */
static void s_hash_source(void *ctx, const char *path, const void *bytes, size_t len)
{
    (void)path;
    crypto_hash_sha256_update(ctx, bytes, len);
}

static void s_hex(char *out, const unsigned char *raw, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

eng_snapshot_t *eng_snapshot_load(const eng_snapshot_cfg_t *cfg, uint64_t version,
                                  eng_loadlog_t *log)
{
    if (log) {
        memset(log, 0, sizeof *log);
    }
    eng_snapshot_t *self = calloc(1, sizeof *self);
    eng_diags_t *diags = eng_diags_new();
    eng_error_t err = {0};
    char msg[512];
    if (!self || !diags || proto_buf_init(&self->models, 64 * 1024) != 0) {
        eng_loadlog_add(log, true, "out of memory loading a snapshot");
        goto fail;
    }
    if (sodium_init() < 0) {
        eng_loadlog_add(log, true, "libsodium could not be initialised");
        goto fail;
    }
    crypto_hash_sha256_state sha;
    crypto_hash_sha256_init(&sha);
    self->version = version;
    self->catalog = eng_catalog_new();
    if (!self->catalog) {
        eng_loadlog_add(log, true, "out of memory loading a snapshot");
        goto fail;
    }
    for (size_t i = 0; i < cfg->ncatalogs; i++) {
        if (eng_catalog_load_observed(self->catalog, cfg->catalogs[i], &err, s_hash_source, &sha) !=
            0) {
            eng_error_format(&err, msg, sizeof msg);
            eng_loadlog_add(log, true, "%s", msg);
            goto fail;
        }
    }
    if (eng_catalog_freeze(self->catalog, &err) != 0) {
        eng_error_format(&err, msg, sizeof msg);
        eng_loadlog_add(log, true, "%s", msg);
        goto fail;
    }
    self->policy = eng_policy_load_opts(cfg->policy, self->catalog, diags, cfg->policy_flags,
                                        s_hash_source, &sha);
    eng_loadlog_add_diags(log, diags);
    if (!self->policy) {
        if (!log || log->errors == 0) {
            eng_loadlog_add(log, true, "%s: error: policy did not compile", cfg->policy);
        }
        goto fail;
    }
    if (eng_reply_models_encode(&self->models, self->catalog) != PROTO_OK ||
        !(self->wire = eng_epwire_new(self->catalog))) {
        eng_loadlog_add(log, true, "out of memory encoding the models list and endpoints");
        goto fail;
    }
    size_t neps = 0;
    eng_catalog_endpoints(self->catalog, &neps);
    self->health = eng_health_new(neps, eng_health_policy_cfg(self->policy));
    if (!self->health) {
        eng_loadlog_add(log, true, "out of memory for the endpoint health table");
        goto fail;
    }
    eng_policy_set_health(self->policy, self->health);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&sha, digest);
    s_hex(self->hash, digest, sizeof digest);
    eng_diags_destroy(&diags);
    return self;
fail:
    eng_diags_destroy(&diags);
    eng_snapshot_destroy(&self);
    return NULL;
}

void eng_snapshot_destroy(eng_snapshot_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_snapshot_t *self = *self_p;
    /* The policy borrows the catalog: free it first. */
    eng_policy_destroy(&self->policy);
    eng_catalog_destroy(&self->catalog);
    proto_buf_destroy(&self->models);
    eng_epwire_destroy(&self->wire);
    eng_health_destroy(&self->health);
    if (self->attached && self->release) {
        self->release(self->attached);
    }
    free(self);
    *self_p = NULL;
}

void eng_snapshot_attach(eng_snapshot_t *self, void *obj, void (*release)(void *))
{
    if (self->attached && self->release) {
        self->release(self->attached);
    }
    self->attached = obj;
    self->release = release;
}

void *eng_snapshot_attached(const eng_snapshot_t *self)
{
    return self->attached;
}

const eng_policy_t *eng_snapshot_policy(const eng_snapshot_t *self)
{
    return self->policy;
}

const eng_catalog_t *eng_snapshot_catalog(const eng_snapshot_t *self)
{
    return self->catalog;
}

uint64_t eng_snapshot_version(const eng_snapshot_t *self)
{
    return self->version;
}

const char *eng_snapshot_hash(const eng_snapshot_t *self)
{
    return self->hash;
}

const eng_epwire_t *eng_snapshot_wire(const eng_snapshot_t *self)
{
    return self->wire;
}

eng_health_t *eng_snapshot_health(const eng_snapshot_t *self)
{
    return self->health;
}

void eng_snapshot_carry_health(eng_snapshot_t *self, const eng_snapshot_t *prev)
{
    if (prev) {
        eng_health_carry(self->health, self->catalog, prev->health, prev->catalog);
    }
}

const void *eng_snapshot_models(const eng_snapshot_t *self, size_t *len)
{
    *len = self->models.len;
    return self->models.data;
}

/* The cell ------------------------------------------------------------------ */

/* One reader's hazard slot, alone in its cache line so that readers do not
 * invalidate each other's lines on every request. */
typedef struct {
    _Atomic(eng_snapshot_t *) ptr; /* snapshot in use, NULL when idle */
    char pad[64 - sizeof(void *)]; /* to a full cache line */
} s_slot_t;

struct eng_snapcell {
    _Atomic(eng_snapshot_t *) current; /* served to new readers */
    _Atomic uint64_t version;          /* of current, for reporting */
    size_t nslots;                     /* readers */
    s_slot_t *slots;                   /* one per reader */
};

eng_snapcell_t *eng_snapcell_new(eng_snapshot_t **initial, size_t nreaders)
{
    eng_snapcell_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->slots = aligned_alloc(64, sizeof(s_slot_t) * (nreaders ? nreaders : 1));
    if (!self->slots) {
        free(self);
        return NULL;
    }
    self->nslots = nreaders;
    for (size_t i = 0; i < nreaders; i++) {
        atomic_init(&self->slots[i].ptr, NULL);
    }
    atomic_init(&self->current, *initial);
    atomic_init(&self->version, *initial ? (*initial)->version : 0);
    *initial = NULL;
    return self;
}

void eng_snapcell_destroy(eng_snapcell_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_snapcell_t *self = *self_p;
    eng_snapshot_t *cur = atomic_load(&self->current);
    eng_snapshot_destroy(&cur);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

const eng_snapshot_t *eng_snapcell_acquire(eng_snapcell_t *self, size_t reader)
{
    _Atomic(eng_snapshot_t *) *slot = &self->slots[reader].ptr;
    eng_snapshot_t *p = atomic_load_explicit(&self->current, memory_order_acquire);
    for (;;) {
        /* seq_cst store then load: the writer either sees our slot, or we see
         * its new pointer and retry (store-load ordering is what matters). */
        atomic_store(slot, p);
        eng_snapshot_t *again = atomic_load(&self->current);
        if (again == p) {
            return p;
        }
        p = again;
    }
}

void eng_snapcell_release(eng_snapcell_t *self, size_t reader)
{
    atomic_store_explicit(&self->slots[reader].ptr, NULL, memory_order_release);
}

uint64_t eng_snapcell_version(eng_snapcell_t *self)
{
    return atomic_load_explicit(&self->version, memory_order_relaxed);
}

static bool s_in_use(eng_snapcell_t *self, const eng_snapshot_t *old)
{
    for (size_t i = 0; i < self->nslots; i++) {
        if (atomic_load(&self->slots[i].ptr) == old) {
            return true;
        }
    }
    return false;
}

void eng_snapcell_publish(eng_snapcell_t *self, eng_snapshot_t **next)
{
    eng_snapshot_t *old = atomic_exchange(&self->current, *next);
    atomic_store_explicit(&self->version, (*next)->version, memory_order_relaxed);
    *next = NULL;
    /* A reader holds a snapshot for one request (microseconds; a models or
     * explain reply a little longer): poll gently until all have let go. */
    struct timespec nap = {0, 200 * 1000};
    while (s_in_use(self, old)) {
        nanosleep(&nap, NULL);
    }
    eng_snapshot_destroy(&old);
}
