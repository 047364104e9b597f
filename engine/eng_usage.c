/* eng_usage.c - decision-log summary: a bounded join of outcomes to decisions.
 *
 * Owns: the open joins (a ring in line order, so the oldest is settled
 * first, indexed by decision_id in an open-addressing table of sequence
 * numbers), the rows of each dimension (names copied, looked up by hash),
 * the JSON document reused for every line, and the kept bad-line reasons.
 * Every sum is overflow-checked: a sum that would overflow is left out and
 * counted, never wraps.
 */
#include "eng_usage.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_common.h"
#include "eng_cost.h"
#include "oai_json.h"

#define S_ROW_SLOTS 32768  /* most slots: > 2 x (ENG_USAGE_MAX_ROWS + 1), a power of two */
#define S_ROW_SLOTS_MIN 32 /* first slots of a dimension, a power of two */
#define S_ROWS_MIN 8       /* first rows of a dimension */
#define S_NAME_MAX 200     /* longer names are cut */
#define S_OTHER "(other)"

typedef struct {
    uint64_t id;   /* decision_id, 0 = none (never indexed) */
    uint64_t line; /* line that opened the join */
    bool decision; /* a decision line was seen */
    bool routed;   /* ...answered with a model */
    uint32_t row[ENG_USAGE_DIMS];
    uint32_t permille;     /* group multiplier */
    hpp_pusd_t estimate;   /* the decision's estimate (multiplier in it) */
    uint64_t attempts;     /* outcomes joined */
    uint64_t failed;       /* of them failed */
    int64_t prompt_tokens; /* summed */
    int64_t completion_tokens;
    hpp_pusd_t list_cost;   /* sum of the outcomes' list-price costs */
    bool answered;          /* a 2xx attempt was seen */
    bool answer_priced;     /* the last one carried a cost */
    hpp_pusd_t answer_cost; /* its list-price cost */
} s_join_t;

/* Rows and slots grow with the names seen (doubling, at most ENG_USAGE_MAX_ROWS + 1 rows and
 * S_ROW_SLOTS slots): a log of a few models would otherwise start with the full 1.2 MB per
 * dimension, zeroed. */
typedef struct {
    eng_usage_row_t *rows; /* first-seen order, cap allocated */
    uint64_t *hash;        /* per row: its name's hash, to refill the slots (a name may hold a
                            * NUL byte, so its length is not strlen's) */
    size_t n;
    size_t cap;
    uint32_t *slots; /* nslots, at least twice n; row index + 1, 0 = empty */
    size_t nslots;
} s_dim_t;

struct eng_usage_sum {
    uint64_t window;
    s_join_t *ring; /* cap entries, entry of sequence s at s & (cap - 1) */
    size_t cap;
    uint64_t head, tail; /* sequences: oldest open, next free */
    uint64_t *index;     /* icap slots: sequence + 1, 0 = empty */
    size_t icap;
    size_t indexed;
    s_dim_t dims[ENG_USAGE_DIMS];
    oai_jdoc_t *doc;
    eng_usage_totals_t tot;
    char bad[ENG_USAGE_BAD_KEPT][160];
    uint64_t bad_line[ENG_USAGE_BAD_KEPT];
    size_t nbad;
};

const char *eng_usage_dim_name(eng_usage_dim_t d)
{
    static const char *const names[ENG_USAGE_DIMS] = {"model", "group", "rule"};
    return (unsigned)d < ENG_USAGE_DIMS ? names[d] : "?";
}

eng_usage_sum_t *eng_usage_new(uint64_t window)
{
    if (window < 1 || window > ENG_USAGE_MAX_WINDOW) {
        return NULL;
    }
    eng_usage_sum_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->window = window;
    self->cap = 64;
    self->icap = 128;
    self->ring = calloc(self->cap, sizeof *self->ring);
    self->index = calloc(self->icap, sizeof *self->index);
    self->doc = oai_jdoc_new();
    bool ok = self->ring && self->index && self->doc;
    for (int d = 0; d < ENG_USAGE_DIMS && ok; d++) {
        self->dims[d].slots = calloc(S_ROW_SLOTS_MIN, sizeof(uint32_t));
        self->dims[d].nslots = S_ROW_SLOTS_MIN;
        self->dims[d].rows = calloc(S_ROWS_MIN, sizeof(eng_usage_row_t));
        self->dims[d].hash = calloc(S_ROWS_MIN, sizeof(uint64_t));
        self->dims[d].cap = S_ROWS_MIN;
        ok = self->dims[d].slots && self->dims[d].rows && self->dims[d].hash;
    }
    if (!ok) {
        eng_usage_destroy(&self);
    }
    return self;
}

void eng_usage_destroy(eng_usage_sum_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    eng_usage_sum_t *self = *self_p;
    for (int d = 0; d < ENG_USAGE_DIMS; d++) {
        for (size_t i = 0; self->dims[d].rows && i < self->dims[d].n; i++) {
            free((char *)self->dims[d].rows[i].name);
        }
        free(self->dims[d].rows);
        free(self->dims[d].hash);
        free(self->dims[d].slots);
    }
    oai_jdoc_destroy(&self->doc);
    free(self->ring);
    free(self->index);
    free(self);
    *self_p = NULL;
}

/* Hashing ------------------------------------------------------------------ */

static uint64_t s_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t s_hash_str(const char *s, size_t n)
{
    return eng_fnv1a(s, n);
}

/* Room for one more row: the rows doubled when full, the slots doubled and refilled when the new
 * row would fill more than half of them. -1 when out of memory (the dimension unchanged). */
static int s_dim_reserve(s_dim_t *dim)
{
    if (dim->n >= ENG_USAGE_MAX_ROWS + 1) {
        return -1; /* not reached: past ENG_USAGE_MAX_ROWS every new name is "(other)" */
    }
    if (dim->n == dim->cap) {
        size_t cap = dim->cap * 2 < ENG_USAGE_MAX_ROWS + 1 ? dim->cap * 2 : ENG_USAGE_MAX_ROWS + 1;
        eng_usage_row_t *rows = realloc(dim->rows, cap * sizeof *rows);
        if (!rows) {
            return -1;
        }
        dim->rows = rows;
        uint64_t *hash = realloc(dim->hash, cap * sizeof *hash);
        if (!hash) {
            return -1; /* rows is only larger than needed */
        }
        dim->hash = hash;
        dim->cap = cap;
    }
    if (2 * (dim->n + 1) >= dim->nslots && dim->nslots < S_ROW_SLOTS) {
        size_t nslots = dim->nslots * 2;
        uint32_t *slots = calloc(nslots, sizeof *slots);
        if (!slots) {
            return -1;
        }
        for (size_t i = 0; i < dim->n; i++) {
            size_t k = dim->hash[i] & (nslots - 1);
            while (slots[k] != 0) {
                k = (k + 1) & (nslots - 1);
            }
            slots[k] = (uint32_t)i + 1;
        }
        free(dim->slots);
        dim->slots = slots;
        dim->nslots = nslots;
    }
    return 0;
}

/* Whether the dimension has a row named s[0..n). */
static bool s_has_row(const s_dim_t *dim, const char *s, size_t n)
{
    uint64_t h = s_hash_str(s, n);
    for (size_t k = h & (dim->nslots - 1); dim->slots[k] != 0; k = (k + 1) & (dim->nslots - 1)) {
        const char *name = dim->rows[dim->slots[k] - 1].name;
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            return true;
        }
    }
    return false;
}

/* The row named `s` of a dimension, made when new; past ENG_USAGE_MAX_ROWS
 * names, a name that has no row yet goes to "(other)" (one that has a row
 * keeps it). -1 when out of memory. */
static long s_row(s_dim_t *dim, const char *s, size_t n)
{
    if (n > S_NAME_MAX) {
        /* Cut at a character's start: names stay valid UTF-8 in the output. */
        n = S_NAME_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    if (dim->n >= ENG_USAGE_MAX_ROWS && !s_has_row(dim, s, n)) {
        s = S_OTHER;
        n = strlen(S_OTHER);
    }
    uint64_t h = s_hash_str(s, n);
    for (size_t k = h & (dim->nslots - 1);; k = (k + 1) & (dim->nslots - 1)) {
        uint32_t v = dim->slots[k];
        if (v == 0) {
            size_t nslots = dim->nslots;
            if (s_dim_reserve(dim) != 0) {
                return -1;
            }
            if (dim->nslots != nslots) { /* refilled: the name's free slot is elsewhere now */
                k = h & (dim->nslots - 1);
                while (dim->slots[k] != 0) {
                    k = (k + 1) & (dim->nslots - 1);
                }
            }
            char *copy = malloc(n + 1);
            if (!copy) {
                return -1;
            }
            memcpy(copy, s, n);
            copy[n] = '\0';
            eng_usage_row_t *r = &dim->rows[dim->n];
            memset(r, 0, sizeof *r);
            r->name = copy;
            dim->hash[dim->n] = h;
            dim->slots[k] = (uint32_t)++dim->n;
            return (long)dim->n - 1;
        }
        const char *name = dim->rows[v - 1].name;
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            return (long)v - 1;
        }
    }
}

static s_join_t *s_at(eng_usage_sum_t *self, uint64_t seq)
{
    return &self->ring[seq & (self->cap - 1)];
}

/* Slot of `id` in the index, or of the empty slot where it would go. */
static size_t s_slot(const eng_usage_sum_t *self, uint64_t id)
{
    size_t mask = self->icap - 1;
    size_t k = s_mix(id) & mask;
    while (self->index[k] != 0 && self->ring[(self->index[k] - 1) & (self->cap - 1)].id != id) {
        k = (k + 1) & mask;
    }
    return k;
}

/* Removes slot k, shifting back the entries after it that probed past it. */
static void s_unindex(eng_usage_sum_t *self, size_t k)
{
    size_t mask = self->icap - 1;
    self->index[k] = 0;
    self->indexed--;
    for (size_t j = (k + 1) & mask; self->index[j] != 0; j = (j + 1) & mask) {
        uint64_t seq = self->index[j];
        size_t home = s_mix(self->ring[(seq - 1) & (self->cap - 1)].id) & mask;
        /* Moves back unless its home lies cyclically in (k, j]. */
        bool stays = k <= j ? (home > k && home <= j) : (home > k || home <= j);
        if (!stays) {
            self->index[k] = seq;
            self->index[j] = 0;
            k = j;
        }
    }
}

/* Settling ----------------------------------------------------------------- */

/* *acc += v, or counted as an overflow and left out. */
static void s_sum(eng_usage_sum_t *self, int64_t *acc, int64_t v)
{
    int64_t r;
    if (__builtin_add_overflow(*acc, v, &r)) {
        self->tot.overflow++;
        return;
    }
    *acc = r;
}

/* A list-price total with the group's multiplier, as eng_cost_scale. */
static bool s_scaled(hpp_pusd_t list, uint32_t permille, hpp_pusd_t *out)
{
    hpp_cost_t c = {.input = list, .total = list};
    if (eng_cost_scale(&c, permille) != 0) {
        return false;
    }
    *out = c.total;
    return true;
}

static void s_settle(eng_usage_sum_t *self, const s_join_t *j)
{
    if (!j->decision || !j->routed) {
        self->tot.unmatched += j->attempts;
        return;
    }
    if (j->attempts == 0) {
        self->tot.no_outcome++;
    }
    hpp_pusd_t cost = 0, answer = 0;
    bool cost_ok = s_scaled(j->list_cost, j->permille, &cost);
    bool answer_ok = j->answer_priced && s_scaled(j->answer_cost, j->permille, &answer);
    if (!cost_ok || (j->answer_priced && !answer_ok)) {
        self->tot.overflow++;
    }
    for (int d = 0; d < ENG_USAGE_DIMS; d++) {
        eng_usage_row_t *r = &self->dims[d].rows[j->row[d]];
        r->requests++;
        r->attempts += j->attempts;
        r->failed += j->failed;
        s_sum(self, &r->prompt_tokens, j->prompt_tokens);
        s_sum(self, &r->completion_tokens, j->completion_tokens);
        if (cost_ok) {
            s_sum(self, &r->cost, cost);
        }
        s_sum(self, &r->estimate, j->estimate);
        if (j->answered) {
            r->answered++;
        }
        if (answer_ok) {
            s_sum(self, &r->answered_cost, answer);
            s_sum(self, &r->answered_est, j->estimate);
            if (answer > 0) {
                r->rel_error_sum += ((double)j->estimate - (double)answer) / (double)answer;
                r->rel_error_n++;
            }
        }
    }
}

/* Settles and removes the oldest open join. */
static void s_pop(eng_usage_sum_t *self)
{
    s_join_t *j = s_at(self, self->head);
    if (j->id != 0) {
        size_t k = s_slot(self, j->id);
        if (self->index[k] == self->head + 1) {
            s_unindex(self, k);
        }
    }
    s_settle(self, j);
    self->head++;
}

static void s_evict(eng_usage_sum_t *self, uint64_t lineno)
{
    while (self->head < self->tail && s_at(self, self->head)->line + self->window <= lineno) {
        s_pop(self);
        self->tot.evicted++;
    }
}

void eng_usage_finish(eng_usage_sum_t *self)
{
    while (self->head < self->tail) {
        s_pop(self);
    }
}

/* Doubles the ring (entries keep their sequence numbers) or the index. */
static int s_grow(eng_usage_sum_t *self)
{
    if (self->tail - self->head == self->cap) {
        s_join_t *ring = calloc(self->cap * 2, sizeof *ring);
        if (!ring) {
            return -1;
        }
        for (uint64_t s = self->head; s < self->tail; s++) {
            ring[s & (self->cap * 2 - 1)] = *s_at(self, s);
        }
        free(self->ring);
        self->ring = ring;
        self->cap *= 2;
    }
    if ((self->indexed + 1) * 2 > self->icap) {
        uint64_t *old = self->index;
        size_t oldcap = self->icap;
        self->index = calloc(oldcap * 2, sizeof *self->index);
        if (!self->index) {
            self->index = old;
            return -1;
        }
        self->icap = oldcap * 2;
        for (size_t k = 0; k < oldcap; k++) {
            if (old[k] != 0) {
                self->index[s_slot(self, s_at(self, old[k] - 1)->id)] = old[k];
            }
        }
        free(old);
    }
    return 0;
}

/* The open join of `id` (0: a new one that is never found again), made
 * when absent. NULL when out of memory. */
static s_join_t *s_join(eng_usage_sum_t *self, uint64_t id, uint64_t lineno, bool *fresh)
{
    *fresh = false;
    if (id != 0) {
        size_t k = s_slot(self, id);
        if (self->index[k] != 0) {
            return s_at(self, self->index[k] - 1);
        }
    }
    if (s_grow(self) != 0) {
        return NULL;
    }
    uint64_t seq = self->tail++;
    s_join_t *j = s_at(self, seq);
    memset(j, 0, sizeof *j);
    j->id = id;
    j->line = lineno;
    j->permille = 1000;
    if (id != 0) {
        self->index[s_slot(self, id)] = seq + 1;
        self->indexed++;
    }
    *fresh = true;
    return j;
}

/* Lines --------------------------------------------------------------------- */

typedef struct {
    eng_usage_sum_t *self;
    oai_jv_t obj;
    const char *why; /* first problem, NULL = none */
    char buf[96];
} s_rd_t;

static void s_bad(s_rd_t *r, const char *key, const char *what)
{
    if (!r->why) {
        snprintf(r->buf, sizeof r->buf, "%s: %s", key, what);
        r->why = r->buf;
    }
}

/* An optional non-negative integer member; `dflt` when absent or null. */
static int64_t s_int(s_rd_t *r, const char *key, int64_t dflt)
{
    oai_jv_t v = oai_jget(r->self->doc, r->obj, key);
    oai_jtype_t t = oai_jtype(r->self->doc, v);
    if (t == OAI_J_NONE || t == OAI_J_NULL) {
        return dflt;
    }
    if (t != OAI_J_INT || oai_jint(r->self->doc, v) < 0) {
        s_bad(r, key, "not a non-negative integer");
        return dflt;
    }
    return oai_jint(r->self->doc, v);
}

/* An optional string member; NULL when absent. */
static const char *s_str(s_rd_t *r, const char *key, size_t *len)
{
    oai_jv_t v = oai_jget(r->self->doc, r->obj, key);
    oai_jtype_t t = oai_jtype(r->self->doc, v);
    *len = 0;
    if (t == OAI_J_NONE) {
        return NULL;
    }
    if (t != OAI_J_STRING) {
        s_bad(r, key, "not a string");
        return NULL;
    }
    return oai_jstr(r->self->doc, v, len);
}

static int s_decision(s_rd_t *r, uint64_t lineno)
{
    eng_usage_sum_t *self = r->self;
    size_t slen = 0, mlen = 0, glen = 0, rlen = 0;
    const char *status = s_str(r, "status", &slen);
    int64_t id = s_int(r, "decision_id", 0);
    bool routed = status && strcmp(status, "ok") == 0;
    const char *model = s_str(r, "model", &mlen);
    const char *group = s_str(r, "group", &glen);
    const char *rule = s_str(r, "rule", &rlen);
    int64_t est = s_int(r, "cost_pusd", 0);
    int64_t permille = s_int(r, "multiplier_permille", 1000);
    if (!status) {
        s_bad(r, "status", "missing");
    }
    if (routed && !model) {
        s_bad(r, "model", "missing");
    }
    if (permille > UINT32_MAX) {
        s_bad(r, "multiplier_permille", "out of range");
    }
    if (r->why) {
        return -1;
    }
    self->tot.decisions++;
    if (!routed) {
        self->tot.refused++;
    }
    if (id == 0) {
        self->tot.no_id++;
    }
    bool fresh;
    s_join_t *j = s_join(self, (uint64_t)id, lineno, &fresh);
    if (j && j->decision) {
        /* The same id twice: the first decision is settled as it stands. */
        s_join_t keep = *j;
        keep.id = 0;
        size_t k = s_slot(self, (uint64_t)id);
        uint64_t seq = self->index[k] - 1;
        s_unindex(self, k);
        *s_at(self, seq) = keep; /* settled when the window passes it */
        j = s_join(self, (uint64_t)id, lineno, &fresh);
    }
    if (!j) {
        return -2;
    }
    j->decision = true;
    j->routed = routed;
    if (routed) {
        long rows[ENG_USAGE_DIMS] = {
            s_row(&self->dims[ENG_USAGE_MODEL], model, mlen),
            group ? s_row(&self->dims[ENG_USAGE_GROUP], group, glen)
                  : s_row(&self->dims[ENG_USAGE_GROUP], "default", 7),
            s_row(&self->dims[ENG_USAGE_RULE], rule ? rule : "", rule ? rlen : 0),
        };
        for (int d = 0; d < ENG_USAGE_DIMS; d++) {
            if (rows[d] < 0) {
                j->routed = false; /* never settled into a row it does not have */
                return -2;
            }
            j->row[d] = (uint32_t)rows[d];
        }
        j->estimate = est;
        j->permille = (uint32_t)permille;
    }
    return 0;
}

static int s_outcome(s_rd_t *r, uint64_t lineno)
{
    eng_usage_sum_t *self = r->self;
    size_t elen = 0;
    int64_t id = s_int(r, "decision_id", 0);
    int64_t status = s_int(r, "status", -1);
    const char *error = s_str(r, "error", &elen);
    int64_t pt = s_int(r, "prompt_tokens", 0);
    int64_t ct = s_int(r, "completion_tokens", 0);
    int64_t cost = s_int(r, "cost_pusd", -1);
    if (status < 0 && !error) {
        s_bad(r, "status", "missing (and no error)");
    }
    if (r->why) {
        return -1;
    }
    self->tot.outcomes++;
    if (id == 0) {
        self->tot.no_id++;
        self->tot.unmatched++;
        return 0;
    }
    bool fresh;
    s_join_t *j = s_join(self, (uint64_t)id, lineno, &fresh);
    if (!j) {
        return -2;
    }
    bool ok = !error && status >= 200 && status <= 299;
    j->attempts++;
    j->failed += !ok;
    s_sum(self, &j->prompt_tokens, pt);
    s_sum(self, &j->completion_tokens, ct);
    if (cost >= 0) {
        s_sum(self, &j->list_cost, cost);
    }
    if (ok) {
        j->answered = true;
        j->answer_priced = cost >= 0;
        j->answer_cost = cost >= 0 ? cost : 0;
    }
    return 0;
}

static int s_bad_line(eng_usage_sum_t *self, uint64_t lineno, const char *why)
{
    self->tot.bad_lines++;
    if (self->nbad < ENG_USAGE_BAD_KEPT) {
        snprintf(self->bad[self->nbad], sizeof self->bad[0], "%s", why);
        self->bad_line[self->nbad++] = lineno;
    }
    return -1;
}

int eng_usage_line(eng_usage_sum_t *self, const char *line, size_t len, uint64_t lineno)
{
    self->tot.lines++;
    s_evict(self, lineno);
    if (len > ENG_USAGE_MAX_LINE) {
        return s_bad_line(self, lineno, "line longer than 65536 bytes");
    }
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
        i++;
    }
    if (i == len) {
        self->tot.other_lines++; /* blank */
        return 0;
    }
    oai_jerr_t e;
    oai_jv_t root = oai_jdoc_parse(self->doc, line, len, &e);
    if (root == OAI_JNONE) {
        if (strcmp(e.text, "out of memory") == 0) {
            return -2;
        }
        char why[160];
        snprintf(why, sizeof why, "not JSON: %s at column %d", e.text, e.column);
        return s_bad_line(self, lineno, why);
    }
    if (!oai_jis(self->doc, root, OAI_J_OBJECT)) {
        return s_bad_line(self, lineno, "not a JSON object");
    }
    s_rd_t r = {.self = self, .obj = root};
    size_t tlen = 0;
    const char *type = s_str(&r, "type", &tlen);
    int rc;
    if (r.why) {
        rc = -1;
    } else if (type ? strcmp(type, "decision") == 0
                    : oai_jget(self->doc, root, "op") != OAI_JNONE) {
        rc = s_decision(&r, lineno); /* older logs: decision lines without "type" */
    } else if (type && strcmp(type, "outcome") == 0) {
        rc = s_outcome(&r, lineno);
    } else {
        self->tot.other_lines++;
        return 0;
    }
    if (rc == -1) {
        return s_bad_line(self, lineno, r.why);
    }
    return rc;
}

const eng_usage_row_t *eng_usage_rows(const eng_usage_sum_t *self, eng_usage_dim_t dim, size_t *n)
{
    if ((unsigned)dim >= ENG_USAGE_DIMS) {
        *n = 0;
        return NULL;
    }
    *n = self->dims[dim].n;
    return self->dims[dim].rows;
}

const eng_usage_totals_t *eng_usage_totals(const eng_usage_sum_t *self)
{
    return &self->tot;
}

const char *eng_usage_bad(const eng_usage_sum_t *self, size_t i, uint64_t *lineno)
{
    if (i >= self->nbad) {
        return NULL;
    }
    *lineno = self->bad_line[i];
    return self->bad[i];
}
