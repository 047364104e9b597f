/* eng_policy_internal.h - private layout of a compiled policy.
 *
 * Shared by the compiler (eng_compile.c), which builds it once, and the
 * resolver (eng_resolve.c), which only reads it. Everything a decision needs
 * is precomputed here so that eng_resolve() is a walk over flat arrays:
 * hint words are bits of a uint64, conditions are a small expression tree in
 * one array, and candidate lists are ready per (tier, capability mask).
 */
#ifndef ENG_POLICY_INTERNAL_H
#define ENG_POLICY_INTERNAL_H

#include <stdarg.h>

#include "eng_health.h"
#include "eng_policy.h"
#include "eng_regex.h"
#include "eng_scan.h"

/* Limits of one policy. */
#define ENG_MAX_TIERS 16         /* tier definitions */
#define ENG_LONG_SAME INT8_MIN   /* model_long_tier: a long prompt leaves the tier as it is */
#define ENG_MAX_GROUPS 64        /* group definitions */
#define ENG_MAX_WORDS 64         /* distinct hint words (bits of a uint64) */
#define ENG_MAX_RULES 1024       /* routing rules */
#define ENG_MAX_HINT_RULES 1024  /* hint rules */
#define ENG_MAX_INCLUDE_DEPTH 16 /* nested includes */
#define ENG_MAX_DIAGS 100        /* diagnostics kept (more are counted) */
#define ENG_MAX_NEEDLES 256      /* distinct `contains` texts: bits of a request's found-set */
#define ENG_DEFAULT_OUTPUT 1000  /* output tokens assumed when nothing says otherwise */
#define ENG_MAX_SCORERS 8        /* `scorer` statements */
/* Errors a compile reports before it stops, like a C compiler's error limit
 * (clang's is 20 too): one more says "too many errors" and the rest of the
 * policy is not checked. Documented in policies/README.md, section 3. */
#define ENG_MAX_ERRORS 20

/* Candidate lists are cut into blocks of this many entries for the budget
 * bound: a block whose least prices are over budget is skipped whole. */
#define ENG_BLOCK 16

/* A set of needles (bit per needles[] index): a CONTAINS node's texts, and
 * the needles one request's text was found to hold. */
#define ENG_NEEDLE_WORDS (ENG_MAX_NEEDLES / 64)
typedef uint64_t eng_needle_set_t[ENG_NEEDLE_WORDS];
_Static_assert(ENG_MAX_NEEDLES % 64 == 0 && ENG_MAX_NEEDLES <= 256,
               "needle sets are whole uint64 words; anchor_ids holds needle indexes in a byte");

/* Capability masks index candidate lists: 4 bits -> 16 lists per tier. */
#define ENG_CAP_BITS 4
#define ENG_CAP_MASKS (1u << ENG_CAP_BITS)

/* Load options (eng_policy_compile). */
enum {
    ENG_POLICY_NO_INCLUDES = 1, /* an include is an error: for untrusted text (fuzzing) */
    /* A policy without a rule that matches every request is an error, not a
     * warning: a reload whose serving policy has one must not lose it. */
    ENG_POLICY_REQUIRE_CATCH_ALL = 2,
    /* Compiled to be checked and resolved a few times, not to serve: no DFA for the regexes and
     * no one-pass scan (Vectorscan's build is most of a small policy's compile). The resolver
     * decides the same without them, each text test on its own matcher, only slower. */
    ENG_POLICY_CHECK_ONLY = 4,
};

/* Step orders: which neighbouring tiers a rule may try, and in what order. */
typedef enum {
    ENG_STEP_NONE = 0, /* the target tier only */
    ENG_STEP_UP,       /* dearer tiers only */
    ENG_STEP_DOWN,     /* cheaper tiers only */
    ENG_STEP_UP_DOWN,  /* both, the dearer one first at equal distance */
    ENG_STEP_DOWN_UP,  /* both, the cheaper one first at equal distance */
} eng_step_t;

/* Condition fields. */
typedef enum {
    ENG_F_PROMPT_TOKENS, /* number */
    ENG_F_OUTPUT_TOKENS, /* number: the request's, else the policy default */
    ENG_F_TOTAL_TOKENS,  /* number: prompt + output */
    ENG_F_CACHE_READ,    /* number */
    ENG_F_IMAGES,        /* number */
    ENG_F_BUDGET,        /* number, USD; +inf when absent */
    ENG_F_TEXT_LENGTH,   /* number: bytes of the text sample */
    ENG_F_TOOLS,         /* bool */
    ENG_F_JSON,          /* bool */
    ENG_F_VISION,        /* bool: images > 0 or vision asked */
    ENG_F_HAS_BUDGET,    /* bool */
    ENG_F_HINTS,         /* set of words */
    ENG_F_GROUP,         /* string */
    ENG_F_TEXT,          /* text sample */
    ENG_F_META,          /* string: meta.KEY, "" when absent */
    ENG_F_SCORE,         /* number: score.NAME, a scorer's score of the text sample */
    ENG_F_COUNT
} eng_field_t;

/* Compiled condition node operations. */
typedef enum {
    ENG_C_TRUE,
    ENG_C_FALSE,
    ENG_C_OR,       /* a or b */
    ENG_C_AND,      /* a and b */
    ENG_C_NOT,      /* not a */
    ENG_C_NUM,      /* field cmp num */
    ENG_C_BOOL,     /* field is true */
    ENG_C_HINT_ANY, /* hints & mask != 0 */
    ENG_C_HINT_ALL, /* hints & mask == mask */
    ENG_C_STR_IN,   /* string field (group, meta.KEY) equals one of strs[a..a+b) */
    ENG_C_STR_NOT,  /* string field equals none of strs[a..a+b) (for !=) */
    ENG_C_REGEX,    /* text matches regexes[a] */
    ENG_C_CONTAINS, /* text contains one of strs[a..a+b), ASCII case-insensitive; the
                     * resolver reads needle_sets[key] */
    ENG_C_SCORE,    /* scorers[a]'s score cmp num, num replaced by the request's
                     * meta threshold.NAME when it holds a number in [0, 1] */
} eng_cop_t;

typedef struct {
    uint8_t op;    /* eng_cop_t */
    uint8_t field; /* eng_field_t */
    uint8_t cmp;   /* eng_op_t for ENG_C_NUM */
    uint8_t pad;   /* unused */
    int32_t a;     /* child, or first string / regex index */
    int32_t b;     /* child, or string count */
    int32_t key;   /* ENG_F_META: key in strs[]; HINT_*: 1 + last hint rule that can set
                    * a word of mask (0: none); CONTAINS: its needles in needle_sets[] */
    double num;    /* ENG_C_NUM operand */
    uint64_t mask; /* ENG_C_HINT_*: word bits */
} eng_cnode_t;

/* An interned string: lowercased for `contains` needles. */
typedef struct {
    const char *ptr; /* in the policy's arena */
    uint32_t len;    /* byte count */
    uint32_t anchor; /* needles[]: offset of the rarest byte, searched for first (else 0) */
} eng_pstr_t;

typedef struct {
    const char *name; /* "budget" */
    hpp_pusd_t max;   /* inclusive upper bound of the blended price; -1 = unbounded */
    bool has_band;    /* membership by price band (else explicit models only) */
    bool is_free;     /* the band is $0: visited only as a target or free fallback */
} eng_ptier_t;

#define ENG_MAX_STEP_DOWN 8 /* step_down thresholds of a group */

/* One step_down threshold: below `below` of the key's remaining money, the
 * request may use tier `tier` at most. */
typedef struct {
    hpp_pusd_t below; /* picodollars */
    int tier;         /* tier index */
} eng_pstep_t;

typedef struct {
    const char *name;                     /* "default" */
    uint32_t permille;                    /* price multiplier in thousandths */
    eng_pstep_t steps[ENG_MAX_STEP_DOWN]; /* step_down, highest threshold first */
    uint32_t nsteps;                      /* used entries */
    uint64_t *allow;                      /* bit per model: reachable; NULL = every model */
    uint64_t *ep_deny;    /* bit per endpoint: excluded by allow_/deny_providers; NULL = none */
    uint32_t min_context; /* least window a model needs (0 = none) */
} eng_pgroup_t;

typedef struct {
    uint32_t word;    /* bit index of the hint it adds */
    int32_t cond;     /* root in nodes[] */
    const char *name; /* the hint word */
} eng_phint_t;

typedef struct {
    const char *name;                /* rule name */
    int32_t cond;                    /* root in nodes[], -1 = always */
    int tier;                        /* target tier index */
    uint32_t caps;                   /* capabilities the rule requires */
    int64_t output;                  /* default output tokens, -1 = the policy's */
    eng_step_t step;                 /* how it steps */
    bool free_fallback;              /* free fallback allowed */
    uint32_t pref_first;             /* preferred model indexes in prefer_pool[] */
    uint32_t pref_count;             /* their count (0 = none) */
    uint64_t *pref_set;              /* bit per model: preferred by this rule; NULL if none */
    uint64_t *ep_deny;               /* bit per endpoint: excluded by allow_/deny_providers;
                                      * NULL = none */
    uint32_t min_context;            /* least window a candidate needs (0 = none) */
    uint8_t order[2][ENG_MAX_TIERS]; /* tiers to visit: [0] without budget, [1] with */
    uint8_t norder[2];               /* used entries of order[] */
    hpp_sort_t sort;                 /* `sort`: HPP_SORT_DEFAULT = the request's */
} eng_prule_t;

/* A candidate list: model indexes in pool[off..off+len). */
typedef struct {
    uint32_t off; /* first entry */
    uint32_t len; /* entry count */
} eng_plist_t;

struct eng_policy {
    const eng_catalog_t *catalog; /* borrowed */
    const eng_model_t *models;    /* catalog models */
    uint32_t nmodels;             /* their count */
    const eng_endpoint_t *eps;    /* catalog endpoints */
    uint32_t neps;                /* their count */

    void *arena; /* chunks holding names and strings, owned */

    const char *words[ENG_MAX_WORDS]; /* hint words by bit */
    uint32_t word_len[ENG_MAX_WORDS]; /* their lengths */
    uint32_t nwords;                  /* used bits */

    eng_ptier_t tiers[ENG_MAX_TIERS]; /* cheapest first */
    bool tier_fees[ENG_MAX_TIERS];    /* a model of the tier pays per-request or per-image
                                       * fees at its auto endpoint (see s_cheapest_first) */
    int ntiers;                       /* count */

    eng_pgroup_t *groups; /* group definitions */
    int ngroups;          /* count; 0 = every group reaches everything at x1 */

    eng_cnode_t *nodes;    /* condition trees */
    uint32_t nnodes;       /* count */
    eng_pstr_t *strs;      /* string operands */
    uint32_t nstrs;        /* count */
    eng_regex_t **regexes; /* regex operands, owned */
    uint32_t nregexes;     /* count */
    /* Every regex and `contains` text in one multi-pattern scan, run once per request at the
     * first text test (eng_scan.h); NULL when none could be built. Owned. */
    eng_scan_t *scan;
    bool scan_off; /* tests and bench: answer with the per-pattern matchers only */

    /* `contains` texts, deduplicated over the whole policy, so that one pass
     * over a request's text answers every CONTAINS node (eng_resolve.c). */
    eng_pstr_t needles[ENG_MAX_NEEDLES];     /* lower-cased, with their anchor */
    uint32_t nneedles;                       /* count */
    eng_needle_set_t *needle_sets;           /* per CONTAINS node: the needles it asks for */
    uint32_t nneedle_sets;                   /* count */
    uint16_t anchor_off[257];                /* byte value b -> its needles are anchor_ids
                                              * [anchor_off[b]..anchor_off[b + 1]) */
    uint8_t anchor_ids[2 * ENG_MAX_NEEDLES]; /* needle indexes by anchor byte (both ASCII
                                              * cases of a letter list the needle) */

    eng_phint_t *hints; /* hint rules in order */
    uint32_t nhints;    /* count */
    eng_prule_t *rules; /* routing rules in order */
    uint32_t nrules;    /* count */
    int32_t catch_all;  /* first rule that matches every request, -1 = none */

    int8_t *model_tier;           /* per model: tier index, -1 none */
    int8_t *model_long_tier;      /* per model: tier of model_ep at its long-prompt prices
                                   * (a prompt above its long_above), ENG_LONG_SAME when
                                   * that is model_tier */
    uint32_t *long_pool;          /* models whose long-prompt tier differs, by long price */
    uint32_t nlong;               /* their count */
    int8_t *model_plain_tier;     /* per model: tier of model_plain_ep (differs when auto
                                   * calls the model through its `:free` variant) */
    int32_t *model_ep;            /* per model: endpoint auto picks, -1 none */
    int32_t *model_plain_ep;      /* per model: endpoint the plain id names (model_ep, never
                                   * a `:free` variant), -1 none */
    hpp_pusd_t *model_blend;      /* per model: blended price of model_ep */
    uint32_t *pool;               /* candidate model indexes */
    hpp_pusd_t (*pool_min)[2][3]; /* per pool entry, for the budget bound: [0] least input,
                                   * cache-read and output price from it to the end of its
                                   * list; [1] the same over its block of ENG_BLOCK entries
                                   * (kept at block starts) */
    uint32_t npool;               /* used */
    uint32_t *prefer_pool;        /* rule preferences (model indexes) */
    uint32_t nprefer_pool;        /* used */
    eng_plist_t lists[ENG_MAX_TIERS][ENG_CAP_MASKS];       /* by policy order then price */
    eng_plist_t floor_lists[ENG_MAX_TIERS][ENG_CAP_MASKS]; /* by price only (auto:floor) */
    eng_plist_t free_lists[ENG_CAP_MASKS];                 /* models with a $0 endpoint */

    int64_t default_output; /* output tokens when none given */
    eng_step_t step;        /* default step order */
    bool free_fallback;     /* default free fallback */

    eng_health_cfg_t health_cfg;     /* cooldown_* and health_window settings */
    const struct eng_health *health; /* measured endpoint health, NULL = none (eng_health.h);
                                      * set by the snapshot that owns both */
    /* `scorer NAME file "PATH"` statements: ENG_C_SCORE nodes name them by index. */
    eng_scorer_t *scorers[ENG_MAX_SCORERS]; /* owned */
    const char *scorer_names[ENG_MAX_SCORERS];
    const char *scorer_knobs[ENG_MAX_SCORERS]; /* "threshold.NAME": the request's override */
    uint32_t nscorers;
};

/* Diagnostics (eng_diags.c) ---------------------------------------------- */

/* Adds a diagnostic located at src[off..off+span) of file `file`, computing
 * line, column and the source line. src may be NULL (no location). */
void eng_diags_add(eng_diags_t *self, eng_diag_severity_t sev, const char *file, const char *src,
                   size_t srclen, uint32_t off, uint32_t span, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
void eng_diags_vadd(eng_diags_t *self, eng_diag_severity_t sev, const char *file, const char *src,
                    size_t srclen, uint32_t off, uint32_t span, const char *fmt, va_list ap);

/* "Did you mean": the known name nearest to a misspelt one, by edit distance
 * (ASCII case-insensitive; a swap of two neighbours counts one). Used only on
 * error paths: init with the word, add each known name, then ask. */
typedef struct {
    const char *word; /* the misspelt word (borrowed) */
    size_t len;       /* its length */
    const char *best; /* nearest name so far (borrowed), NULL if none close */
    size_t best_len;  /* its length */
    unsigned best_d;  /* its distance */
} eng_suggest_t;

void eng_suggest_init(eng_suggest_t *s, const char *word, size_t len);
void eng_suggest_add(eng_suggest_t *s, const char *name, size_t len);
/* "; did you mean 'NAME'?" when a name is close enough (at most a third of
 * the word's letters differ, and not all), else "". Writes into buf. */
const char *eng_suggest_text(const eng_suggest_t *s, char *buf, size_t n);

/* Orders the diagnostics added since index `from` by line and column within
 * each file (stable; files keep their order). */
void eng_diags_sort_from(eng_diags_t *self, size_t from);
/* The same over the kept diagnostics [from, end). */
void eng_diags_sort_range(eng_diags_t *self, size_t from, size_t end);

/* Compiler entry with options (ENG_POLICY_*). `base_dir` is the directory
 * includes of the top file are relative to (NULL = current directory). */
eng_policy_t *eng_policy_compile(const char *name, const char *src, size_t len,
                                 const char *base_dir, const eng_catalog_t *catalog,
                                 eng_diags_t *diags, unsigned flags);

/* On (the default) the resolver answers text tests from one multi-pattern scan per request
 * (eng_scan.h); off, from each pattern's own matcher, as before the scan existed: for tests that
 * compare both and for the bench. Not while the policy serves. */
void eng_policy_set_scan(eng_policy_t *self, bool on);

/* eng_policy_load_observed with options (ENG_POLICY_*). */
eng_policy_t *eng_policy_load_opts(const char *path, const eng_catalog_t *catalog,
                                   eng_diags_t *diags, unsigned flags, eng_source_fn on_source,
                                   void *ctx);

/* Tokens of the reference request that prices an endpoint for tier placement
 * and ordering: 750 prompt + 250 output (the 3:1 of the blend), so a flat
 * per-request fee counts as fee / 1000 per token (policies/README.md 2.4). */
#define ENG_REF_REQUEST_TOKENS 1000

/* Blended price of an endpoint per token in picodollars: (3 x input + output) / 4
 * plus the per-request fee spread over ENG_REF_REQUEST_TOKENS, rounded down
 * (what the reference request costs, per token); per-image fees, which only
 * requests with images pay, are not part of it. */
hpp_pusd_t eng_policy_blend(const hpp_price_t *price);

/* True when `pattern` (with '*' matching any run of bytes) matches s[0..len). */
bool eng_glob_match(const char *pattern, size_t plen, const char *s, size_t len);

#endif
