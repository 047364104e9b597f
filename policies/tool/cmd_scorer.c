/* cmd_scorer.c - `hpp-policy train-scorer` and `hpp-policy curve`.
 *
 * train-scorer: labelled prompts (RouteLLM CSV or JSONL, eng_labels.h) ->
 * a scorer model file that predicts when the weak model fails.
 *
 * curve: a scorer (from a policy's `scorer` statement, or a model file),
 * a catalog with both models' prices and labelled prompts -> the
 * cost-quality curve of "send the prompts scoring above a threshold to the
 * strong model": the strong share, quality as a fraction of always-strong,
 * cost as a fraction of always-strong, next to the random router and the
 * oracle, and the threshold that meets a quality target.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_cost.h"
#include "eng_labels.h"
#include "eng_policy.h"
#include "hpp_request.h"
#include "hpp_policy.h"

enum {
    O_HELP,
    O_STRONG,
    O_WEAK,
    O_STRONG_MODEL,
    O_WEAK_MODEL,
    O_OUT,
    O_SEED,
    O_LABEL,
    O_SPLIT,
    O_BITS,
    O_WORDS,
    O_CHARS,
    O_MAX_BYTES,
    O_EPOCHS,
    O_RATE,
    O_L2,
    O_POLICY,
    O_CATALOG,
    O_SCORER,
    O_MODEL,
    O_OUTPUT_TOKENS,
    O_TARGET,
    O_THRESHOLD,
    O_MAX_COST,
    O_FORMAT,
};

#define S_DATA_OPTS                                                                                \
    {"--strong", "NAME", O_STRONG, NULL, "the strong model's column (required)"},                  \
        {"--weak", "NAME", O_WEAK, NULL, "the weak model's column (required)"},                    \
    {                                                                                              \
        "--split", "SPLIT", O_SPLIT, NULL,                                                         \
            "examples used: all, train, test, fit, valid, foldK or notfoldK (K = 2..9: "           \
            "cross-validation over train); train-scorer: train, curve: test"                       \
    }

static const hpp_opt_t s_train_opts[] = {
    S_DATA_OPTS,
    {"--output", "FILE", O_OUT, NULL, "model file to write (required; - for stdout)"},
    {"-o", "FILE", O_OUT, NULL, "same as --output"},
    {"--seed", "N", O_SEED, NULL, "shuffle seed (default 1): a seed gives one model"},
    {"--label", "L", O_LABEL, NULL,
     "target: strong-gain (default: strong right, weak wrong) or weak-wrong"},
    {"--bits", "N", O_BITS, NULL, "hash buckets 2^N (4-24, default 14)"},
    {"--words", "N", O_WORDS, NULL, "0 none, 1 words, 2 words and word pairs (default 2)"},
    {"--chars", "N", O_CHARS, NULL, "char window length, 0 none (default 4)"},
    {"--max-bytes", "N", O_MAX_BYTES, NULL, "bytes of text read (default 512)"},
    {"--epochs", "N", O_EPOCHS, NULL, "passes over the data (default 3)"},
    {"--rate", "X", O_RATE, NULL, "AdaGrad learning rate (default 0.1)"},
    {"--l2", "X", O_L2, NULL, "L2 penalty (default 1e-5)"},
    {"--help", NULL, O_HELP, NULL, "this help"},
    {NULL, NULL, 0, NULL, NULL},
};

static const hpp_opt_t s_curve_opts[] = {
    S_DATA_OPTS,
    {"--policy", "FILE", O_POLICY, NULL, "policy whose scorer is used"},
    {"--scorer", "NAME", O_SCORER, NULL, "which scorer of the policy (default: its only one)"},
    {"--model", "FILE", O_MODEL, NULL, "a model file instead of a policy"},
    {"--catalog", "FILE", O_CATALOG, NULL, "catalog with both models' prices (required)"},
    {"--strong-model", "ID", O_STRONG_MODEL, NULL, "catalog id of the strong model (default NAME)"},
    {"--weak-model", "ID", O_WEAK_MODEL, NULL, "catalog id of the weak model (default NAME)"},
    {"--output-tokens", "N", O_OUTPUT_TOKENS, NULL,
     "output tokens of an answer when the data has no response column (default 256)"},
    {"--target", "Q", O_TARGET, NULL, "quality target as a fraction of strong (default 0.95)"},
    {"--threshold", "T", O_THRESHOLD, NULL, "also report this threshold's point"},
    {"--max-cost", "C", O_MAX_COST, NULL, "also report the best quality at this cost fraction"},
    {"--format", "F", O_FORMAT, NULL, "text (default) or json"},
    {"--help", NULL, O_HELP, NULL, "this help"},
    {NULL, NULL, 0, NULL, NULL},
};

typedef struct {
    const char *cmd;
    const char *strong, *weak, *strong_model, *weak_model;
    const char *out, *policy, *scorer, *model, *catalog;
    const char *files[256];
    int nfiles;
    int split;
    eng_train_opts_t train;
    int64_t output_tokens;
    double target, threshold, max_cost;
    bool has_threshold, has_max_cost, json;
} s_args_t;

static int s_bad(const s_args_t *a, const char *opt, const char *v, const char *why)
{
    fprintf(stderr, "hpp-policy %s: %s '%s': %s\n", a->cmd, opt, v, why);
    return -1;
}

static int s_num(const s_args_t *a, const char *opt, const char *v, double lo, double hi,
                 double *out)
{
    char *end = NULL;
    double d = strtod(v, &end);
    if (!*v || *end || !isfinite(d) || d < lo || d > hi) {
        char why[96];
        snprintf(why, sizeof why, "expected a number from %g to %g", lo, hi);
        return s_bad(a, opt, v, why);
    }
    *out = d;
    return 0;
}

static int s_uint(const s_args_t *a, const char *opt, const char *v, double lo, double hi,
                  uint32_t *out)
{
    double d;
    if (s_num(a, opt, v, lo, hi, &d) != 0) {
        return -1;
    }
    if (d != floor(d)) {
        return s_bad(a, opt, v, "expected a whole number");
    }
    *out = (uint32_t)d;
    return 0;
}

static int s_opt(s_args_t *a, const hpp_opt_t *o, const char *v)
{
    uint32_t u;
    double d;
    switch (o->id) {
    case O_STRONG:
        a->strong = v;
        return 0;
    case O_WEAK:
        a->weak = v;
        return 0;
    case O_STRONG_MODEL:
        a->strong_model = v;
        return 0;
    case O_WEAK_MODEL:
        a->weak_model = v;
        return 0;
    case O_OUT:
        a->out = v;
        return 0;
    case O_POLICY:
        a->policy = v;
        return 0;
    case O_SCORER:
        a->scorer = v;
        return 0;
    case O_MODEL:
        a->model = v;
        return 0;
    case O_CATALOG:
        a->catalog = v;
        return 0;
    case O_SPLIT:
        a->split = eng_split_parse(v);
        return a->split < 0 ? s_bad(a, o->name, v,
                                    "expected all, train, test, fit, valid, foldK or notfoldK")
                            : 0;
    case O_LABEL:
        if (strcmp(v, "weak-wrong") == 0 || strcmp(v, "strong-gain") == 0) {
            a->train.label = v[0] == 'w' ? ENG_LABEL_WEAK_WRONG : ENG_LABEL_STRONG_GAIN;
            return 0;
        }
        return s_bad(a, o->name, v, "expected weak-wrong or strong-gain");
    case O_SEED:
        if (s_num(a, o->name, v, 0, 9007199254740991.0, &d) != 0) {
            return -1;
        }
        if (d != floor(d)) {
            return s_bad(a, o->name, v, "expected a whole number");
        }
        a->train.seed = (uint64_t)d;
        return 0;
    case O_BITS:
        return s_uint(a, o->name, v, ENG_SCORER_MIN_BITS, ENG_SCORER_MAX_BITS,
                      &a->train.features.bits);
    case O_WORDS:
        return s_uint(a, o->name, v, 0, 2, &a->train.features.words);
    case O_CHARS:
        return s_uint(a, o->name, v, 0, ENG_SCORER_MAX_CHARS, &a->train.features.chars);
    case O_MAX_BYTES:
        return s_uint(a, o->name, v, 1, ENG_SCORER_MAX_BYTES, &a->train.features.max_bytes);
    case O_EPOCHS:
        return s_uint(a, o->name, v, 1, 1000, &a->train.epochs);
    case O_RATE:
        return s_num(a, o->name, v, 1e-9, 100, &a->train.rate);
    case O_L2:
        return s_num(a, o->name, v, 0, 1, &a->train.l2);
    case O_OUTPUT_TOKENS:
        if (s_uint(a, o->name, v, 0, HPP_MAX_TOKENS, &u) != 0) {
            return -1;
        }
        a->output_tokens = u;
        return 0;
    case O_TARGET:
        return s_num(a, o->name, v, 0, 2, &a->target);
    case O_THRESHOLD:
        a->has_threshold = true;
        return s_num(a, o->name, v, 0, 1, &a->threshold);
    case O_MAX_COST:
        a->has_max_cost = true;
        return s_num(a, o->name, v, 0, 1, &a->max_cost);
    case O_FORMAT:
        if (strcmp(v, "json") == 0 || strcmp(v, "text") == 0) {
            a->json = v[0] == 'j';
            return 0;
        }
        return s_bad(a, o->name, v, "expected text or json");
    default:
        return -1;
    }
}

/* Parses argv; 1 when --help was printed, -1 on a usage error. */
static int s_args(int argc, char **argv, const hpp_opt_t *opts, const char *synopsis, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    a->train = eng_train_default_opts();
    a->output_tokens = 256;
    a->target = 0.95;
    a->split = -1;
    for (int i = 1; i < argc; i++) {
        const hpp_opt_t *o;
        const char *v;
        int rc = hpp_opt_next(argc, argv, &i, opts, &o, &v);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            if (a->nfiles >= (int)(sizeof a->files / sizeof a->files[0])) {
                fprintf(stderr, "hpp-policy %s: too many data files\n", a->cmd);
                return -1;
            }
            a->files[a->nfiles++] = argv[i];
            continue;
        }
        if (o->id == O_HELP) {
            hpp_usage(stdout, a->cmd, synopsis, opts);
            return 1;
        }
        if (s_opt(a, o, v) != 0) {
            return -1;
        }
    }
    if (!a->strong || !a->weak) {
        fprintf(stderr, "hpp-policy %s: --strong and --weak name the models' columns\n", a->cmd);
        return -1;
    }
    if (a->nfiles == 0) {
        fprintf(stderr, "hpp-policy %s: no data file (RouteLLM CSV or JSONL)\n", a->cmd);
        return -1;
    }
    return 0;
}

static void s_print_err(const eng_error_t *err)
{
    char buf[1024];
    eng_error_format(err, buf, sizeof buf);
    fprintf(stderr, "%s\n", buf);
}

static eng_labels_t *s_load_data(const s_args_t *a)
{
    eng_labels_t *set = eng_labels_new(a->strong, a->weak);
    if (!set) {
        fprintf(stderr, "hpp-policy %s: out of memory\n", a->cmd);
        return NULL;
    }
    for (int i = 0; i < a->nfiles; i++) {
        eng_error_t err;
        memset(&err, 0, sizeof err);
        if (eng_labels_load(set, a->files[i], &err) != 0) {
            s_print_err(&err);
            eng_labels_destroy(&set);
            return NULL;
        }
    }
    return set;
}

/* train-scorer ----------------------------------------------------------------- */

int cmd_train_scorer(int argc, char **argv)
{
    s_args_t a;
    int rc = s_args(argc, argv, s_train_opts, "--strong NAME --weak NAME -o FILE DATA...", &a);
    if (rc != 0) {
        return rc > 0 ? HPP_EXIT_OK : HPP_EXIT_USAGE;
    }
    if (!a.out) {
        fprintf(stderr, "hpp-policy %s: -o FILE names the model file to write\n", a.cmd);
        return HPP_EXIT_USAGE;
    }
    a.train.split = a.split < 0 ? ENG_SPLIT_TRAIN : (eng_split_t)a.split;
    eng_labels_t *set = s_load_data(&a);
    if (!set) {
        return HPP_EXIT_USAGE;
    }
    eng_error_t err;
    memset(&err, 0, sizeof err);
    size_t used = 0;
    eng_scorer_t *s = eng_scorer_train(set, &a.train, &used, &err);
    if (!s) {
        fprintf(stderr, "hpp-policy %s: %s\n", a.cmd, err.msg);
        eng_labels_destroy(&set);
        return HPP_EXIT_USAGE;
    }
    char comment[512];
    snprintf(comment, sizeof comment,
             "trained by hpp-policy train-scorer: label %s, split %s (%zu examples), seed %llu, "
             "epochs %u, rate %g, l2 %g; strong %s, weak %s",
             a.train.label == ENG_LABEL_WEAK_WRONG ? "weak-wrong" : "strong-gain",
             eng_split_name(a.train.split), used, (unsigned long long)a.train.seed, a.train.epochs,
             a.train.rate, a.train.l2, a.strong, a.weak);
    FILE *f = strcmp(a.out, "-") == 0 ? stdout : fopen(a.out, "w");
    int wr = f ? eng_scorer_write(s, comment, f) : -1;
    if (f && f != stdout && fclose(f) != 0) {
        wr = -1;
    }
    if (wr != 0) {
        fprintf(stderr, "hpp-policy %s: cannot write '%s'\n", a.cmd, a.out);
    } else {
        fprintf(stderr, "%s: %zu examples (%s split)\n", a.out, used,
                eng_split_name(a.train.split));
    }
    eng_scorer_destroy(&s);
    eng_labels_destroy(&set);
    return wr == 0 ? HPP_EXIT_OK : HPP_EXIT_USAGE;
}

/* curve ----------------------------------------------------------------------- */

typedef struct {
    double score;  /* the scorer's */
    int dq;        /* strong_ok - weak_ok */
    double cs, cw; /* cost with the strong, the weak model (USD) */
    size_t index;  /* in the set, to break ties */
} s_row_t;

static int s_by_score(const void *pa, const void *pb)
{
    const s_row_t *x = pa, *y = pb;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct {
    s_row_t *rows;
    size_t n;
    double q_strong, q_weak; /* correct answers */
    double c_strong, c_weak; /* costs */
    double oracle_n;         /* prompts only the strong model gets right */
    double *pq, *pc;         /* prefix: quality and cost with the top k to strong */
} s_curve_t;

static double s_cost(const eng_model_t *m, const eng_endpoint_t *eps, int64_t in, int64_t out)
{
    int32_t e = m->floor_ep >= 0 ? m->floor_ep : (int32_t)m->ep_first;
    eng_usage_t u;
    memset(&u, 0, sizeof u);
    u.prompt_tokens = in;
    u.completion_tokens = out;
    hpp_cost_t c;
    if (eng_cost_estimate(&eps[e].price, &u, &c) < 0) {
        return 0;
    }
    return (double)c.total / (double)HPP_PUSD_PER_USD;
}

static const eng_model_t *s_find_model(const s_args_t *a, const eng_catalog_t *cat, const char *id)
{
    const eng_model_t *m = eng_catalog_lookup(cat, id, strlen(id));
    if (!m) {
        fprintf(stderr,
                "hpp-policy %s: model '%s' is not in the catalog (name it with --strong-model / "
                "--weak-model)\n",
                a->cmd, id);
    }
    return m;
}

/* Point with the top k prompts sent to the strong model. */
static double s_threshold_at(const s_curve_t *c, size_t k)
{
    if (k == 0) {
        return 1.0;
    }
    if (k >= c->n) {
        return 0.0;
    }
    return (c->rows[k - 1].score + c->rows[k].score) / 2;
}

static size_t s_count_above(const s_curve_t *c, double t)
{
    size_t k = 0;
    while (k < c->n && c->rows[k].score > t) {
        k++;
    }
    return k;
}

static void s_point(FILE *o, const s_curve_t *c, size_t k, bool json, const char *label)
{
    double share = c->n ? (double)k / (double)c->n : 0;
    double rq = (c->q_weak + share * (c->q_strong - c->q_weak)) / c->q_strong;
    if (json) {
        fprintf(o,
                "{\"strong_share\":%.4f,\"quality\":%.4f,\"cost\":%.4f,\"threshold\":%.6f,"
                "\"random_quality\":%.4f}",
                share, c->pq[k], c->pc[k], s_threshold_at(c, k), rq);
    } else {
        fprintf(o, "%-10s %7.1f%% %8.4f %8.4f %10.6f %8.4f\n", label, 100 * share, c->pq[k],
                c->pc[k], s_threshold_at(c, k), rq);
    }
}

static int s_curve_build(s_curve_t *c, const s_args_t *a, const eng_labels_t *set,
                         const eng_scorer_t *sc, const eng_catalog_t *cat)
{
    const eng_model_t *ms = s_find_model(a, cat, a->strong_model ? a->strong_model : a->strong);
    const eng_model_t *mw = s_find_model(a, cat, a->weak_model ? a->weak_model : a->weak);
    if (!ms || !mw) {
        return -1;
    }
    size_t ne;
    const eng_endpoint_t *eps = eng_catalog_endpoints(cat, &ne);
    size_t total = eng_labels_count(set);
    c->rows = calloc(total + 1, sizeof *c->rows);
    c->pq = calloc(total + 1, sizeof *c->pq);
    c->pc = calloc(total + 1, sizeof *c->pc);
    if (!c->rows || !c->pq || !c->pc) {
        fprintf(stderr, "hpp-policy %s: out of memory\n", a->cmd);
        return -1;
    }
    eng_split_t split = a->split < 0 ? ENG_SPLIT_TEST : (eng_split_t)a->split;
    for (size_t i = 0; i < total; i++) {
        const eng_example_t *e = eng_labels_at(set, i);
        if (!eng_labels_in_split(e->prompt, e->prompt_len, split)) {
            continue;
        }
        s_row_t *r = &c->rows[c->n++];
        r->score = eng_scorer_score(sc, e->prompt, e->prompt_len);
        r->dq = (int)e->strong_ok - (int)e->weak_ok;
        r->cs =
            s_cost(ms, eps, e->in_tokens, e->strong_out >= 0 ? e->strong_out : a->output_tokens);
        r->cw = s_cost(mw, eps, e->in_tokens, e->weak_out >= 0 ? e->weak_out : a->output_tokens);
        r->index = i;
        c->q_strong += e->strong_ok;
        c->q_weak += e->weak_ok;
        c->c_strong += r->cs;
        c->c_weak += r->cw;
        c->oracle_n += e->strong_ok && !e->weak_ok;
    }
    if (c->n == 0 || c->q_strong == 0 || c->c_strong <= 0) {
        fprintf(stderr,
                "hpp-policy %s: no example in the '%s' split, or the strong model is never right "
                "or costs nothing\n",
                a->cmd, eng_split_name(split));
        return -1;
    }
    qsort(c->rows, c->n, sizeof *c->rows, s_by_score);
    double q = c->q_weak, cost = c->c_weak;
    for (size_t k = 0; k <= c->n; k++) {
        c->pq[k] = q / c->q_strong;
        c->pc[k] = cost / c->c_strong;
        if (k < c->n) {
            q += c->rows[k].dq;
            cost += c->rows[k].cs - c->rows[k].cw;
        }
    }
    return 0;
}

static void s_curve_print(const s_curve_t *c, const s_args_t *a)
{
    FILE *o = stdout;
    eng_split_t split = a->split < 0 ? ENG_SPLIT_TEST : (eng_split_t)a->split;
    /* The target: the fewest strong calls whose quality meets it. */
    size_t kt = c->n + 1;
    for (size_t k = 0; k <= c->n && kt > c->n; k++) {
        if (c->pq[k] >= a->target) {
            kt = k;
        }
    }
    size_t kc = 0; /* the most strong calls within the cost cap */
    if (a->has_max_cost) {
        for (size_t k = 0; k <= c->n; k++) {
            if (c->pc[k] <= a->max_cost) {
                kc = k;
            }
        }
    }
    /* The oracle calls the strong model exactly when only it is right. */
    double orc_cost = 0;
    for (size_t i = 0; i < c->n; i++) {
        orc_cost += c->rows[i].dq > 0 ? c->rows[i].cs : c->rows[i].cw;
    }
    orc_cost /= c->c_strong;
    double orc_q = (c->q_weak + c->oracle_n) / c->q_strong;
    if (a->json) {
        fprintf(o,
                "{\"split\":\"%s\",\"examples\":%zu,\"strong_accuracy\":%.4f,"
                "\"weak_accuracy\":%.4f,\"weak_cost\":%.4f,\"target\":%.4f,",
                eng_split_name(split), c->n, c->q_strong / (double)c->n, c->q_weak / (double)c->n,
                c->c_weak / c->c_strong, a->target);
        fprintf(o, "\"oracle\":{\"strong_share\":%.4f,\"quality\":%.4f,\"cost\":%.4f},",
                c->oracle_n / (double)c->n, orc_q, orc_cost);
        fprintf(o, "\"meets_target\":");
        if (kt <= c->n) {
            s_point(o, c, kt, true, NULL);
        } else {
            fprintf(o, "null");
        }
        if (a->has_threshold) {
            fprintf(o, ",\"at_threshold\":");
            s_point(o, c, s_count_above(c, a->threshold), true, NULL);
        }
        if (a->has_max_cost) {
            fprintf(o, ",\"at_max_cost\":");
            s_point(o, c, kc, true, NULL);
        }
        fprintf(o, ",\"points\":[");
        for (int s = 0; s <= 20; s++) {
            fprintf(o, s ? "," : "");
            s_point(o, c, (size_t)llround((double)c->n * s / 20.0), true, NULL);
        }
        fprintf(o, "]}\n");
        return;
    }
    fprintf(o, "split %s: %zu prompts; strong accuracy %.4f, weak %.4f (%.4f of strong)\n",
            eng_split_name(split), c->n, c->q_strong / (double)c->n, c->q_weak / (double)c->n,
            c->q_weak / c->q_strong);
    fprintf(o,
            "always-weak cost: %.4f of always-strong; oracle: %.1f%% strong, quality %.4f, "
            "cost %.4f\n\n",
            c->c_weak / c->c_strong, 100 * c->oracle_n / (double)c->n, orc_q, orc_cost);
    fprintf(o, "%-10s %8s %8s %8s %10s %8s\n", "point", "strong", "quality", "cost", "threshold",
            "random");
    for (int s = 0; s <= 20; s++) {
        s_point(o, c, (size_t)llround((double)c->n * s / 20.0), false, "");
    }
    fprintf(o, "\n");
    if (kt <= c->n) {
        char label[32];
        snprintf(label, sizeof label, "q>=%.3g", a->target);
        s_point(o, c, kt, false, label);
    } else {
        fprintf(o, "no threshold reaches quality %.4f\n", a->target);
    }
    if (a->has_threshold) {
        s_point(o, c, s_count_above(c, a->threshold), false, "threshold");
    }
    if (a->has_max_cost) {
        char label[32];
        snprintf(label, sizeof label, "c<=%.3g", a->max_cost);
        s_point(o, c, kc, false, label);
    }
}

static eng_catalog_t *s_catalog(const s_args_t *a)
{
    eng_catalog_t *cat = eng_catalog_new();
    eng_error_t err;
    memset(&err, 0, sizeof err);
    if (!cat || eng_catalog_load(cat, a->catalog, &err) != 0 ||
        eng_catalog_freeze(cat, &err) != 0) {
        if (cat) {
            s_print_err(&err);
        }
        eng_catalog_destroy(&cat);
    }
    return cat;
}

int cmd_curve(int argc, char **argv)
{
    s_args_t a;
    int rc = s_args(argc, argv, s_curve_opts,
                    "--strong NAME --weak NAME --catalog FILE (--policy FILE | --model FILE) "
                    "DATA...",
                    &a);
    if (rc != 0) {
        return rc > 0 ? HPP_EXIT_OK : HPP_EXIT_USAGE;
    }
    if (!a.catalog || (!a.policy == !a.model)) {
        fprintf(stderr,
                "hpp-policy %s: needs --catalog and one of --policy (with a scorer) or --model\n",
                a.cmd);
        return HPP_EXIT_USAGE;
    }
    int out = HPP_EXIT_USAGE;
    eng_catalog_t *cat = s_catalog(&a);
    eng_labels_t *set = cat ? s_load_data(&a) : NULL;
    eng_scorer_t *own = NULL;
    eng_policy_t *pol = NULL;
    const eng_scorer_t *sc = NULL;
    s_curve_t c;
    memset(&c, 0, sizeof c);
    if (!set) {
        goto done;
    }
    if (a.model) {
        eng_error_t err;
        memset(&err, 0, sizeof err);
        if (!(sc = own = eng_scorer_load(a.model, &err))) {
            s_print_err(&err);
            goto done;
        }
    } else {
        eng_diags_t *d = eng_diags_new();
        pol = d ? eng_policy_load(a.policy, cat, d) : NULL;
        if (!pol) {
            eng_diags_print(d, stderr);
            eng_diags_destroy(&d);
            goto done;
        }
        eng_diags_destroy(&d);
        const char *name = NULL;
        sc = eng_policy_scorer(pol, a.scorer, &name);
        if (!sc) {
            fprintf(stderr, "hpp-policy %s: the policy has %s\n", a.cmd,
                    a.scorer ? "no scorer of that name" : "no scorer, or more than one (--scorer)");
            goto done;
        }
    }
    if (s_curve_build(&c, &a, set, sc, cat) == 0) {
        s_curve_print(&c, &a);
        out = HPP_EXIT_OK;
    }
done:
    free(c.rows);
    free(c.pq);
    free(c.pc);
    eng_policy_destroy(&pol);
    eng_scorer_destroy(&own);
    eng_labels_destroy(&set);
    eng_catalog_destroy(&cat);
    return out;
}
