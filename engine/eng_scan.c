/* eng_scan.c - one Vectorscan literal pass for every text pattern of a policy (see eng_scan.h).
 *
 * Database ids: literal (`contains` text) i is S_LIT_BASE + i, compiled HS_FLAG_SINGLEMATCH (its
 * first occurrence answers it); the regexes' prefix literals are numbered from 0, one entry per
 * (regex, literal), and report every occurrence, since the anchored check may fail at one and
 * succeed at the next. The library reports matches in order of their end offset.
 */
#include "eng_scan.h"

#include <hs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_LIT_BASE 0x10000u /* database id of literal 0 (prefix entries are below) */
#define S_SLOTS_MAX 64      /* scratch pool bound */
#define S_CACHE_LINE 64     /* one slot per line: threads on different slots share nothing */
#define S_KEPT 4            /* compiled literal sets kept for reuse (s_kept) */
/* Matches ending in the last S_TAIL bytes of the text are looked for again by this module's own
 * code: Debian's Vectorscan 5.4.9 misses some literal occurrences there (its "double shufti"
 * accelerator, used for sets of short literals, mishandles the last vector of the buffer: with
 * the literals "za" and "zb", a text of 66 to 96 bytes ending in "za" reports nothing; fixed
 * upstream after 5.4.9). The misses seen are within 32 bytes of the end. */
#define S_TAIL 64

/* A scratch space and its "taken" flag. */
typedef struct {
    _Alignas(S_CACHE_LINE) atomic_int busy; /* 1 while a scan uses it */
    hs_scratch_t *scratch;                  /* the library's per-scan state */
} s_slot_t;

/* A literal of the database: its bytes are in the scan's list (eng_scan.list). */
typedef struct {
    size_t off;    /* where its bytes begin in the list */
    size_t len;    /* their count */
    unsigned id;   /* database id */
    bool caseless; /* HS_FLAG_CASELESS */
} s_lit_t;

/* A literal kept for the tail check (the library's database holds its own copy). */
typedef struct {
    const unsigned char *bytes; /* into the set's key */
    uint32_t len;               /* length */
    uint32_t id;                /* database id */
    bool caseless;              /* ASCII letters match either case */
} s_tlit_t;

/* A regex prefix entry: where an occurrence sends the anchored check. */
typedef struct {
    uint16_t rx;  /* index into rx[] */
    uint16_t len; /* the literal's length: the match starts len bytes before the end */
} s_pfx_t;

/* A covered regex. */
typedef struct {
    const eng_regex_t *re; /* borrowed */
    uint32_t id;           /* the caller's regex id */
} s_rx_t;

/* A compiled literal set: the library's database and the scratch pool for it. Compiling is
 * most of a policy's load time (the library builds its matcher in C++, a few hundred allocations),
 * so scans built from the same literals, in the same order and with the same pool size, share
 * one: a reload that leaves the text patterns alone, the old and new policy while requests on the
 * old one finish, the fuzzer's mutations of one policy. Immutable once built but for the slots'
 * busy flags, which the pool shares like one scan's threads do. */
typedef struct {
    atomic_uint refs;   /* scans using it, plus one while s_kept holds it */
    uint64_t hash;      /* of key */
    unsigned char *key; /* the literal list it was compiled from (eng_scan.list) */
    size_t keylen;      /* its length */
    unsigned nslots;    /* pool size (part of the key) */
    hs_database_t *db;  /* the database */
    s_slot_t *slots;    /* scratch pool */
    size_t bytes;       /* database + scratch sizes */
} s_set_t;

struct eng_scan {
    s_lit_t *lits;                     /* literals queued for the build */
    size_t nlits;                      /* count */
    size_t caplits;                    /* allocated */
    s_pfx_t *pfx;                      /* prefix entries, by database id */
    size_t npfx;                       /* count */
    size_t cappfx;                     /* allocated */
    s_rx_t rx[ENG_SCAN_MAX_REGEXES];   /* covered regexes */
    unsigned nrx;                      /* count */
    unsigned nlit_ids;                 /* literals (`contains` texts) queued */
    unsigned char *list;               /* the literals queued: per literal its id (4 bytes),
                                        * length (4), caseless flag (1), bytes; the key of
                                        * its compiled set */
    size_t nlist;                      /* bytes used */
    size_t caplist;                    /* allocated */
    s_set_t *set;                      /* the database and pool; NULL: not built, or unusable */
    uint64_t rx_cover[ENG_SCAN_WORDS]; /* regex ids covered */
    s_tlit_t *tail;                    /* every literal, by first byte (tail_off) */
    uint32_t tail_off[257];            /* byte b: tail[tail_off[b] .. tail_off[b + 1]) */
    uint8_t tail_pair[65536 / 8];      /* bit (a << 8 | b), a and b lower-cased: some literal
                                        * may begin with the two bytes a b (a one-byte literal
                                        * sets every b): most positions stop at this bit */
    uint8_t fold[256];                 /* ASCII lower case of each byte */
    size_t tail_max;                   /* longest literal */
    bool lit_all;                      /* every queued literal is in the database */
};

/* The slot a thread tries first: threads spread over the pool, so that with no more threads than
 * slots each keeps its own. */
static atomic_uint s_next_hint;
static _Thread_local unsigned s_hint = UINT32_MAX;

eng_scan_t *eng_scan_new(void)
{
    eng_scan_t *s = calloc(1, sizeof *s);
    if (s) {
        s->lit_all = true;
    }
    return s;
}

/* Appends a literal to the list: id, length, caseless flag, bytes (see eng_scan.list). */
static int s_push_lit(eng_scan_t *s, const char *b, size_t len, unsigned id, bool caseless)
{
    if (s->nlits == s->caplits) {
        size_t cap = s->caplits ? s->caplits * 2 : 32;
        s_lit_t *l = realloc(s->lits, cap * sizeof *l);
        if (!l) {
            return -1;
        }
        s->lits = l;
        s->caplits = cap;
    }
    uint32_t head[2] = {id, (uint32_t)len};
    size_t need = sizeof head + 1 + len;
    if (len > UINT32_MAX || need > SIZE_MAX - s->nlist) {
        return -1;
    }
    if (s->nlist + need > s->caplist) {
        size_t cap = s->caplist ? s->caplist : 1024;
        while (cap < s->nlist + need) {
            cap *= 2;
        }
        unsigned char *list = realloc(s->list, cap);
        if (!list) {
            return -1;
        }
        s->list = list;
        s->caplist = cap;
    }
    unsigned char *at = s->list + s->nlist;
    memcpy(at, head, sizeof head);
    at[sizeof head] = caseless;
    memcpy(at + sizeof head + 1, b, len);
    s->lits[s->nlits++] = (s_lit_t){s->nlist + sizeof head + 1, len, id, caseless};
    s->nlist += need;
    return 0;
}

int eng_scan_add_regex(eng_scan_t *s, uint32_t id, const eng_regex_t *re, const char *pat,
                       size_t len, int flags)
{
    if (!s || s->set || id >= ENG_SCAN_MAX_REGEXES || s->nrx >= ENG_SCAN_MAX_REGEXES ||
        !eng_regex_can_match_at(re)) {
        return 0;
    }
    eng_regex_prefixes_t px;
    if (eng_regex_prefixes(pat, len, flags, &px) != 1) {
        return 0;
    }
    if (s->npfx + (size_t)px.n > s->cappfx) {
        size_t cap = s->cappfx ? s->cappfx * 2 : 64;
        while (cap < s->npfx + (size_t)px.n) {
            cap *= 2;
        }
        s_pfx_t *p = realloc(s->pfx, cap * sizeof *p);
        if (!p) {
            return -1;
        }
        s->pfx = p;
        s->cappfx = cap;
    }
    for (int i = 0; i < px.n; i++) {
        if (s_push_lit(s, px.lit[i], px.len[i], (unsigned)s->npfx, px.caseless) != 0) {
            return -1;
        }
        s->pfx[s->npfx++] = (s_pfx_t){(uint16_t)s->nrx, px.len[i]};
    }
    s->rx[s->nrx++] = (s_rx_t){re, id};
    return 0;
}

int eng_scan_add_literal(eng_scan_t *s, uint32_t id, const char *lower, size_t len)
{
    if (!s || s->set) {
        return 0;
    }
    if (id >= ENG_SCAN_MAX_LITERALS || len == 0) {
        s->lit_all = false; /* the caller's needle scan answers every literal then */
        return 0;
    }
    s->nlit_ids++;
    return s_push_lit(s, lower, len, S_LIT_BASE + id, true);
}

static void s_set(uint64_t *set, unsigned i)
{
    set[i / 64] |= UINT64_C(1) << (i % 64);
}

static bool s_get(const uint64_t *set, unsigned i)
{
    return (set[i / 64] >> (i % 64)) & 1;
}

static unsigned s_default_slots(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus > 0 ? (unsigned)cpus * 2 : 4;
    return n < 4 ? 4 : n > S_SLOTS_MAX ? S_SLOTS_MAX : n;
}

/* Compiled sets ------------------------------------------------------------------------------ */

/* The last S_KEPT sets built, most recent first, each holding a reference: a set stays for reuse
 * after its scans are gone (the policy a reload replaced, the fuzzer's previous input), and at
 * most S_KEPT of them do. Taken only at policy load, never by a request. */
static struct {
    pthread_mutex_t mu;
    s_set_t *set[S_KEPT];
} s_kept = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void s_set_release(s_set_t *set)
{
    if (!set || atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    if (set->slots) {
        for (unsigned i = 0; i < set->nslots; i++) {
            hs_free_scratch(set->slots[i].scratch);
        }
    }
    free(set->slots);
    hs_free_database(set->db);
    free(set->key);
    free(set);
}

/* FNV-1a of the key and the pool size. */
static uint64_t s_set_hash(const unsigned char *key, size_t len, unsigned nslots)
{
    uint64_t h = 0xcbf29ce484222325u ^ nslots;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ key[i]) * 0x100000001b3u;
    }
    return h;
}

/* A kept set for this key, with a reference for the caller, or NULL. */
static s_set_t *s_kept_find(const unsigned char *key, size_t len, unsigned nslots, uint64_t hash)
{
    s_set_t *found = NULL;
    pthread_mutex_lock(&s_kept.mu);
    for (int i = 0; i < S_KEPT && !found; i++) {
        s_set_t *set = s_kept.set[i];
        if (set && set->hash == hash && set->keylen == len && set->nslots == nslots &&
            memcmp(set->key, key, len) == 0) {
            found = set;
            memmove(&s_kept.set[1], &s_kept.set[0], (size_t)i * sizeof found);
            s_kept.set[0] = found;
            atomic_fetch_add_explicit(&found->refs, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&s_kept.mu);
    return found;
}

/* Keeps a new set first, giving up the oldest's reference. */
static void s_kept_add(s_set_t *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&s_kept.mu);
    s_set_t *oldest = s_kept.set[S_KEPT - 1];
    memmove(&s_kept.set[1], &s_kept.set[0], (S_KEPT - 1) * sizeof set);
    s_kept.set[0] = set;
    pthread_mutex_unlock(&s_kept.mu);
    s_set_release(oldest);
}

/* Compiles the scan's literals into a new set that takes over its list as the key; NULL when
 * out of memory or the library refused them. */
static s_set_t *s_set_compile(eng_scan_t *s, unsigned nslots, uint64_t hash)
{
    size_t n = s->nlits;
    s_set_t *set = calloc(1, sizeof *set);
    const char **exprs = calloc(n, sizeof *exprs);
    unsigned *flags = calloc(n, sizeof *flags);
    unsigned *ids = calloc(n, sizeof *ids);
    size_t *lens = calloc(n, sizeof *lens);
    if (set) {
        atomic_init(&set->refs, 1);
    }
    bool ok = set && exprs && flags && ids && lens && n <= UINT32_MAX;
    if (ok) {
        for (size_t i = 0; i < n; i++) {
            const s_lit_t *l = &s->lits[i];
            exprs[i] = (const char *)s->list + l->off;
            lens[i] = l->len;
            ids[i] = l->id;
            flags[i] = (l->caseless ? HS_FLAG_CASELESS : 0) |
                       (l->id >= S_LIT_BASE ? HS_FLAG_SINGLEMATCH : 0);
        }
        hs_compile_error_t *err = NULL;
        ok = hs_compile_lit_multi(exprs, flags, ids, lens, (unsigned)n, HS_MODE_BLOCK, NULL,
                                  &set->db, &err) == HS_SUCCESS;
        hs_free_compile_error(err);
    }
    free(exprs);
    free(flags);
    free(ids);
    free(lens);
    if (ok) {
        set->nslots = nslots;
        set->slots = aligned_alloc(S_CACHE_LINE, nslots * sizeof *set->slots);
        ok = set->slots != NULL;
    }
    if (ok) {
        memset(set->slots, 0, nslots * sizeof *set->slots);
        hs_database_size(set->db, &set->bytes);
        for (unsigned i = 0; i < nslots && ok; i++) {
            atomic_init(&set->slots[i].busy, 0);
            size_t scsize = 0;
            ok = hs_alloc_scratch(set->db, &set->slots[i].scratch) == HS_SUCCESS &&
                 hs_scratch_size(set->slots[i].scratch, &scsize) == HS_SUCCESS;
            set->bytes += scsize;
        }
    }
    if (!ok) {
        s_set_release(set);
        return NULL;
    }
    set->hash = hash;
    set->key = s->list;
    set->keylen = s->nlist;
    s->list = NULL;
    s->nlist = s->caplist = 0;
    return set;
}

/* Forgets the database and everything built from it: the scan answers nothing. */
static void s_unusable(eng_scan_t *s)
{
    s_set_release(s->set);
    s->set = NULL;
    free(s->tail);
    s->tail = NULL;
    s->nrx = 0;
    memset(s->rx_cover, 0, sizeof s->rx_cover);
    s->lit_all = false;
}

static int s_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The literals indexed by first byte, both cases of a caseless letter; their bytes are the
 * set's key, which lives as long as the scan's reference to it. */
static int s_build_tail(eng_scan_t *s)
{
    const unsigned char *bytes = s->set->key;
    size_t entries = 0;
    uint32_t count[256] = {0};
    for (size_t i = 0; i < s->nlits; i++) {
        const s_lit_t *l = &s->lits[i];
        const unsigned char *lb = bytes + l->off;
        unsigned b = lb[0];
        bool two = l->caseless && s_lower((int)b) >= 'a' && s_lower((int)b) <= 'z';
        count[two ? (unsigned)s_lower((int)b) : b]++;
        if (two) {
            count[(unsigned)s_lower((int)b) - 32]++;
        }
        entries += two ? 2 : 1;
        unsigned a = (unsigned)s_lower((int)b);
        for (unsigned c = 0; c < 256; c++) {
            if (l->len == 1 || (unsigned)s_lower(lb[1]) == c) {
                s->tail_pair[(a << 8 | c) / 8] |= (uint8_t)(1u << (c % 8));
            }
        }
        s->tail_max = l->len > s->tail_max ? l->len : s->tail_max;
    }
    s->tail = calloc(entries ? entries : 1, sizeof *s->tail);
    if (!s->tail) {
        return -1;
    }
    for (int c = 0; c < 256; c++) {
        s->fold[c] = (uint8_t)s_lower(c);
    }
    s->tail_off[0] = 0;
    for (int b = 0; b < 256; b++) {
        s->tail_off[b + 1] = s->tail_off[b] + count[b];
    }
    uint32_t next[256];
    memcpy(next, s->tail_off, sizeof next);
    for (size_t i = 0; i < s->nlits; i++) {
        const s_lit_t *l = &s->lits[i];
        s_tlit_t t = {bytes + l->off, (uint32_t)l->len, l->id, l->caseless};
        unsigned b = t.bytes[0];
        bool two = l->caseless && s_lower((int)b) >= 'a' && s_lower((int)b) <= 'z';
        if (two) {
            s->tail[next[s_lower((int)b)]++] = t;
            s->tail[next[s_lower((int)b) - 32]++] = t;
        } else {
            s->tail[next[b]++] = t;
        }
    }
    return 0;
}

int eng_scan_build(eng_scan_t *s, unsigned slots)
{
    if (!s || s->set || s->nlits == 0) {
        return -1;
    }
    unsigned nslots = slots ? (slots > S_SLOTS_MAX ? S_SLOTS_MAX : slots) : s_default_slots();
    uint64_t hash = s_set_hash(s->list, s->nlist, nslots);
    s->set = s_kept_find(s->list, s->nlist, nslots, hash);
    if (!s->set) {
        s->set = s_set_compile(s, nslots, hash);
        if (s->set) {
            s_kept_add(s->set);
        }
    }
    int rc = s->set && s_build_tail(s) == 0 ? 0 : -1;
    free(s->lits);
    s->lits = NULL;
    s->nlits = s->caplits = 0;
    free(s->list);
    s->list = NULL;
    s->nlist = s->caplist = 0;
    if (rc != 0) {
        s_unusable(s);
        return -1;
    }
    for (unsigned i = 0; i < s->nrx; i++) {
        s_set(s->rx_cover, s->rx[i].id);
    }
    return 0;
}

bool eng_scan_covers_regex(const eng_scan_t *s, uint32_t id)
{
    return s && s->set && id < ENG_SCAN_MAX_REGEXES && s_get(s->rx_cover, id);
}

bool eng_scan_covers_literals(const eng_scan_t *s)
{
    return s && s->set && s->lit_all;
}

/* One scan's state, on the caller's stack. */
typedef struct {
    const eng_scan_t *s;                 /* the scan */
    const char *text;                    /* the text */
    size_t len;                          /* its length */
    eng_scan_hits_t *hits;               /* the answers */
    uint64_t decided[ENG_SCAN_WORDS];    /* rx[] entries answered (matched, or over budget) */
    uint64_t over[ENG_SCAN_WORDS];       /* rx[] entries over budget: the full matcher answers */
    size_t budget[ENG_SCAN_MAX_REGEXES]; /* per rx[] entry: bytes its anchored checks may step */
    unsigned left;                       /* literals and regexes not answered yet */
} s_run_t;

static int s_on_match(unsigned int id, unsigned long long from, unsigned long long to,
                      unsigned int flags, void *ctx)
{
    (void)from;
    (void)flags;
    s_run_t *r = ctx;
    if (id >= S_LIT_BASE) {
        if (s_get(r->hits->lit, id - S_LIT_BASE)) {
            return 0; /* seen again by the tail check */
        }
        s_set(r->hits->lit, id - S_LIT_BASE);
        r->left--;
    } else {
        const s_pfx_t *p = &r->s->pfx[id];
        if (s_get(r->decided, p->rx)) {
            return 0;
        }
        const s_rx_t *x = &r->s->rx[p->rx];
        int m = eng_regex_match_at(x->re, r->text, r->len, (size_t)to - p->len, &r->budget[p->rx]);
        if (m == 0) {
            return 0;
        }
        s_set(r->decided, p->rx);
        s_set(m > 0 ? r->hits->rx : r->over, m > 0 ? x->id : p->rx);
        r->left--;
    }
    return r->left == 0; /* non-zero stops the scan: every answer is in */
}

/* Does literal l occur at t? */
static bool s_lit_at(const s_tlit_t *l, const unsigned char *t)
{
    for (uint32_t i = 0; i < l->len; i++) {
        int a = t[i], b = l->bytes[i];
        if (a != b && !(l->caseless && s_lower(a) == s_lower(b))) {
            return false;
        }
    }
    return true;
}

/* Reports again, in the library's callback, every literal occurrence that ends in the last S_TAIL
 * bytes (see S_TAIL). An occurrence the library did report is harmless twice: answers are set
 * once, and an anchored check that failed fails again. */
static void s_tail_check(const eng_scan_t *s, s_run_t *r)
{
    const uint8_t *fold = s->fold;
    const unsigned char *t = (const unsigned char *)r->text;
    size_t from = r->len > S_TAIL + s->tail_max ? r->len - S_TAIL - s->tail_max : 0;
    for (size_t p = from; p < r->len && r->left > 0; p++) {
        if (p + 1 < r->len) {
            unsigned pair = (unsigned)fold[t[p]] << 8 | fold[t[p + 1]];
            if (!(s->tail_pair[pair >> 3] >> (pair & 7) & 1)) {
                continue;
            }
        }
        for (uint32_t k = s->tail_off[t[p]]; k < s->tail_off[t[p] + 1]; k++) {
            const s_tlit_t *l = &s->tail[k];
            if (l->len <= r->len - p && p + l->len + S_TAIL > r->len && s_lit_at(l, t + p)) {
                s_on_match(l->id, 0, p + l->len, 0, r);
            }
        }
    }
}

bool eng_scan_run(const eng_scan_t *s, const char *text, size_t len, eng_scan_hits_t *hits)
{
    memset(hits, 0, sizeof *hits);
    if (!s || !s->set || len > UINT32_MAX || (text == NULL && len > 0)) {
        return false;
    }
    if (s_hint == UINT32_MAX) {
        s_hint = atomic_fetch_add_explicit(&s_next_hint, 1, memory_order_relaxed);
    }
    s_slot_t *slot = NULL;
    const s_set_t *set = s->set;
    for (unsigned k = 0; k < set->nslots && !slot; k++) {
        s_slot_t *c = &set->slots[(s_hint + k) % set->nslots];
        if (atomic_load_explicit(&c->busy, memory_order_relaxed) == 0 &&
            atomic_exchange_explicit(&c->busy, 1, memory_order_acquire) == 0) {
            slot = c;
        }
    }
    if (!slot) {
        return false;
    }
    s_run_t r;
    r.s = s;
    r.text = text ? text : "";
    r.len = len;
    r.hits = hits;
    memset(r.decided, 0, sizeof r.decided);
    memset(r.over, 0, sizeof r.over);
    for (unsigned i = 0; i < s->nrx; i++) {
        r.budget[i] = 2 * len + 64; /* linear in all, whatever the number of occurrences */
    }
    r.left = s->nlit_ids + s->nrx;
    hs_error_t e = hs_scan(set->db, r.text, (unsigned)len, 0, slot->scratch, s_on_match, &r);
    atomic_store_explicit(&slot->busy, 0, memory_order_release);
    if (e != HS_SUCCESS && e != HS_SCAN_TERMINATED) {
        memset(hits, 0, sizeof *hits);
        return false;
    }
    s_tail_check(s, &r);
    for (unsigned i = 0; i < s->nrx; i++) {
        if (s_get(r.over, i) && eng_regex_match(s->rx[i].re, r.text, len)) {
            s_set(hits->rx, s->rx[i].id);
        }
    }
    return true;
}

bool eng_scan_shares(const eng_scan_t *a, const eng_scan_t *b)
{
    return a && b && a->set && a->set == b->set;
}

size_t eng_scan_bytes(const eng_scan_t *s)
{
    return s && s->set ? s->set->bytes : 0;
}

void eng_scan_destroy(eng_scan_t **s_p)
{
    if (!s_p || !*s_p) {
        return;
    }
    eng_scan_t *s = *s_p;
    free(s->lits);
    free(s->list);
    free(s->pfx);
    s_unusable(s);
    free(s);
    *s_p = NULL;
}
