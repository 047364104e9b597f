/* cmd_policy.c - `hpp-policy check | test | explain | route`.
 *
 * The policy author's commands. Each loads the catalog files (default
 * eng_catalog_default_path()) and a policy (--policy FILE, an older
 * positional FILE, else $HPP_POLICY or policies/default.policy), then:
 *   check    prints every diagnostic (as JSON with --format json); exit 2 on
 *            an error, else 0
 *   test     runs a cases file (eng_cases_run, the code the unit tests use)
 *   explain  one decision with its trace, from a features JSON object or an
 *            OpenAI chat request body (read by the sidecar's extractor)
 *   route    one decision from flags, as JSON
 * Flags come from one table per command (which also generates --help);
 * bad usage exits 2. Money is printed from integer picodollars as exact
 * decimals, never through a double.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_cases.h"
#include "eng_catalog.h"
#include "eng_policy.h"
#include "hpp_policy.h"
#include "oai_request.h"

#define S_MAX_CATALOGS 32        /* --catalog files per run */
#define S_TRACE_CAP 4096         /* trace entries explain keeps */
#define S_MAX_REQUEST (4u << 20) /* bytes of a --request document */

typedef enum {
    O_CATALOG,
    O_POLICY,
    O_REQUEST,
    O_FORMAT,
    O_VERBOSE,
    O_MODEL,
    O_PROMPT,
    O_OUTPUT,
    O_CACHE_READ,
    O_IMAGES,
    O_TOOLS,
    O_JSON,
    O_VISION,
    O_TASK,
    O_BUDGET,
    O_GROUP,
    O_TEXT,
    O_META,
    O_TRACE,
    O_REMAINING,
    O_HELP,
} s_opt_id_t;

#define S_CATALOG_OPT                                                                              \
    {                                                                                              \
        "--catalog", "FILE", O_CATALOG, NULL,                                                      \
            "catalog file, repeatable (default $HPP_CATALOG or policies/catalog.json)"             \
    }
#define S_HELP_OPT                                                                                 \
    {                                                                                              \
        "--help", NULL, O_HELP, NULL, "show this help"                                             \
    }
#define S_END_OPT                                                                                  \
    {                                                                                              \
        NULL, NULL, O_HELP, NULL, NULL                                                             \
    }

#define S_POLICY_OPT                                                                               \
    {                                                                                              \
        "--policy", "FILE", O_POLICY, NULL,                                                        \
            "policy (default $HPP_POLICY or policies/default.policy)"                              \
    }

static const hpp_opt_t s_check_opts[] = {
    S_POLICY_OPT,
    {"--format", "text|json", O_FORMAT, NULL,
     "text (default) or a JSON array of diagnostics, for editors"},
    S_CATALOG_OPT,
    S_HELP_OPT,
    S_END_OPT};

static const hpp_opt_t s_test_opts[] = {
    S_POLICY_OPT,
    S_CATALOG_OPT,
    {"--verbose", NULL, O_VERBOSE, NULL, "also list the cases that pass"},
    S_HELP_OPT,
    S_END_OPT,
};

static const hpp_opt_t s_explain_opts[] = {
    {"--request", "JSON|@FILE|-", O_REQUEST, NULL,
     "the request: a features object or an OpenAI chat body, inline, from a file or stdin"},
    S_POLICY_OPT,
    S_CATALOG_OPT,
    {"--format", "text|json", O_FORMAT, NULL, "output format (default text)"},
    {"--remaining", "USD", O_REMAINING, NULL,
     "what the caller's key may still spend (the engine's ledger): applies the group's "
     "step_down"},
    S_HELP_OPT,
    S_END_OPT,
};

static const hpp_opt_t s_route_opts[] = {
    {"--model", "M", O_MODEL, "model", "requested model (default hpprouter/auto)"},
    {"--prompt-tokens", "N", O_PROMPT, "prompt_tokens", "prompt tokens"},
    {"--output-tokens", "N", O_OUTPUT, "output_tokens", "max output tokens (default: policy's)"},
    {"--cache-read", "N", O_CACHE_READ, "cache_read_tokens", "prompt tokens served from cache"},
    {"--images", "N", O_IMAGES, "images", "input images"},
    {"--tools", NULL, O_TOOLS, "tools", "the request uses tools"},
    {"--json", NULL, O_JSON, "json", "the request needs JSON output"},
    {"--vision", NULL, O_VISION, "vision", "the request needs vision"},
    {"--task", "a,b", O_TASK, "hints", "task hints, comma-separated (repeatable)"},
    {"--budget", "USD", O_BUDGET, "budget", "most the request may cost"},
    {"--group", "G", O_GROUP, "group", "caller's key group"},
    {"--text", "S", O_TEXT, "text", "prompt text sample for hint rules"},
    {"--meta", "K=V", O_META, NULL, "a metadata key/value (repeatable)"},
    S_POLICY_OPT,
    S_CATALOG_OPT,
    {"--trace", NULL, O_TRACE, NULL, "include every candidate considered"},
    {"--remaining", "USD", O_REMAINING, NULL,
     "what the caller's key may still spend (the engine's ledger): applies the group's "
     "step_down"},
    S_HELP_OPT,
    S_END_OPT,
};

/* Everything a command line says. */
typedef struct {
    const char *cmd;                      /* subcommand, for messages */
    const char *catalogs[S_MAX_CATALOGS]; /* --catalog specs */
    size_t ncatalogs;                     /* used */
    const char *policy;                   /* --policy or a positional */
    const char *pos[4];                   /* positional arguments */
    size_t npos;                          /* used */
    const char *request;                  /* --request */
    bool json;                            /* --format json */
    bool verbose;                         /* --verbose */
    bool trace;                           /* --trace */
    bool help;                            /* --help */
    hpp_features_t f;                     /* route: the request */
    hpp_pusd_t remaining;                 /* --remaining, ENG_NO_REMAINING when not given */
} s_args_t;

static int s_bad(const s_args_t *a, const char *what, const char *v)
{
    fprintf(stderr, "hpp-policy %s: %s%s%s\n", a->cmd, what, v ? ": " : "", v ? v : "");
    return -1;
}

/* Applies one option. Features are validated as they are set. */
static int s_set(s_args_t *a, const hpp_opt_t *o, const char *v)
{
    if (o->feature) {
        char why[256];
        const char *val = v ? v : "true";
        if (eng_features_set(&a->f, o->feature, strlen(o->feature), val, strlen(val), why,
                             sizeof why) != 0) {
            fprintf(stderr, "hpp-policy %s: %s '%s': %s\n", a->cmd, o->name, val, why);
            return -1;
        }
        /* Flags are checked here, by the contract's rules, not left to the
         * resolver's bad_request. */
        const char *rule = NULL;
        switch (o->id) {
        case O_PROMPT:
            rule = hpp_check_tokens(a->f.prompt_tokens);
            break;
        case O_OUTPUT:
            rule = hpp_check_tokens(a->f.output_tokens);
            break;
        case O_CACHE_READ:
            rule = hpp_check_tokens(a->f.cache_read_tokens);
            break;
        case O_IMAGES:
            rule = hpp_check_images(a->f.images);
            break;
        case O_BUDGET:
            rule = hpp_check_budget(a->f.budget_usd);
            break;
        default:
            break;
        }
        if (rule) {
            fprintf(stderr, "hpp-policy %s: %s: %s, got '%s'\n", a->cmd, o->name, rule, v);
            return -1;
        }
        return 0;
    }
    switch (o->id) {
    case O_CATALOG:
        if (a->ncatalogs == S_MAX_CATALOGS) {
            return s_bad(a, "too many --catalog files", NULL);
        }
        a->catalogs[a->ncatalogs++] = v;
        return 0;
    case O_POLICY:
        a->policy = v;
        return 0;
    case O_REMAINING: {
        char *end = NULL;
        double usd = strtod(v, &end);
        hpp_pusd_t pd = 0;
        bool neg = usd < 0;
        if (!end || *end || end == v || hpp_pusd_from_double(neg ? -usd : usd, 12, &pd) != 0) {
            return s_bad(a, "--remaining: expected an amount of USD", v);
        }
        a->remaining = neg ? -pd : pd;
        return 0;
    }
    case O_REQUEST:
        a->request = v;
        return 0;
    case O_FORMAT:
        if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0) {
            return s_bad(a, "--format: expected text or json", v);
        }
        a->json = strcmp(v, "json") == 0;
        return 0;
    case O_VERBOSE:
        a->verbose = true;
        return 0;
    case O_TRACE:
        a->trace = true;
        return 0;
    case O_META: {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v) {
            return s_bad(a, "--meta: expected KEY=VALUE", v);
        }
        if (a->f.nmeta >= HPP_MAX_META) {
            return s_bad(a, "--meta: at most 16 keys", v);
        }
        /* Both halves borrow argv, which outlives the request. */
        a->f.meta_keys[a->f.nmeta].ptr = v;
        a->f.meta_keys[a->f.nmeta].len = (uint32_t)(eq - v);
        a->f.meta_vals[a->f.nmeta].ptr = eq + 1;
        a->f.meta_vals[a->f.nmeta].len = (uint32_t)strlen(eq + 1);
        a->f.nmeta++;
        return 0;
    }
    case O_HELP:
        a->help = true;
        return 0;
    default:
        return 0;
    }
}

/* Parses argv[1..]: options from the table, the rest positional. */
static int s_parse(int argc, char **argv, const hpp_opt_t *opts, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    a->remaining = ENG_NO_REMAINING;
    hpp_features_init(&a->f);
    for (int i = 1; i < argc; i++) {
        const hpp_opt_t *o;
        const char *v;
        int rc = hpp_opt_next(argc, argv, &i, opts, &o, &v);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            if (a->npos == sizeof a->pos / sizeof a->pos[0]) {
                return s_bad(a, "too many arguments", argv[i]);
            }
            a->pos[a->npos++] = argv[i];
            continue;
        }
        if (s_set(a, o, v) != 0) {
            return -1;
        }
    }
    return 0;
}

static const char *s_default_policy(void)
{
    const char *p = getenv("HPP_POLICY");
    return p && *p ? p : eng_data_path("policies/default.policy", 1);
}

/* The policy: --policy, else (the older form, kept working) the first of
 * `extra` + 1 positional arguments when there are that many, else the
 * default. Leaves the other positionals in a->pos[]. NULL after a message
 * when the policy is given twice. */
static const char *s_policy_path(s_args_t *a, size_t extra)
{
    if (a->policy) {
        if (a->npos > extra) {
            fprintf(stderr, "hpp-policy %s: the policy is given twice (--policy and '%s')\n",
                    a->cmd, a->pos[0]);
            return NULL;
        }
        return a->policy;
    }
    if (a->npos > extra) {
        const char *p = a->pos[0];
        memmove(a->pos, a->pos + 1, (a->npos - 1) * sizeof a->pos[0]);
        a->npos--;
        return p;
    }
    return s_default_policy();
}

static eng_catalog_t *s_load_catalog(const s_args_t *a)
{
    eng_catalog_t *cat = eng_catalog_new();
    if (!cat) {
        fprintf(stderr, "hpp-policy %s: out of memory\n", a->cmd);
        return NULL;
    }
    const char *def = eng_catalog_default_path();
    size_t n = a->ncatalogs ? a->ncatalogs : 1;
    for (size_t i = 0; i < n; i++) {
        const char *spec = a->ncatalogs ? a->catalogs[i] : def;
        eng_error_t err;
        memset(&err, 0, sizeof err);
        if (eng_catalog_load(cat, spec, &err) != 0) {
            char buf[768];
            eng_error_format(&err, buf, sizeof buf);
            fprintf(stderr, "%s\n", buf);
            eng_catalog_destroy(&cat);
            return NULL;
        }
    }
    eng_error_t err;
    memset(&err, 0, sizeof err);
    if (eng_catalog_freeze(cat, &err) != 0) {
        char buf[768];
        eng_error_format(&err, buf, sizeof buf);
        fprintf(stderr, "%s\n", buf);
        eng_catalog_destroy(&cat);
    }
    return cat;
}

/* Loads the policy, printing diagnostics to stderr. NULL on error. */
static eng_policy_t *s_load_policy(const char *path, const eng_catalog_t *cat, bool warnings)
{
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *pol = eng_policy_load(path, cat, d);
    if (!pol || warnings) {
        eng_diags_print(d, stderr);
    }
    eng_diags_destroy(&d);
    return pol;
}

/* JSON output ----------------------------------------------------------------- */

static void s_money(FILE *out, hpp_pusd_t v)
{
    char buf[48];
    hpp_pusd_format(v, false, buf, sizeof buf);
    fputs(buf, out);
}

static const char *s_model_of(const eng_policy_t *pol, const eng_endpoint_t *e)
{
    size_t n;
    const eng_model_t *models = eng_catalog_models(eng_policy_catalog(pol), &n);
    return e && e->model < n ? models[e->model].id : "";
}

static void s_decision_json(FILE *out, const eng_policy_t *pol, const eng_decision_t *d,
                            const eng_trace_t *tr)
{
    fputs("{\"status\":", out);
    hpp_json_str(out, hpp_status_name(d->status));
    fputs(",\"message\":", out);
    hpp_json_str(out, d->message);
    fputs(",\"rule\":", out);
    hpp_json_str(out, d->rule);
    if (d->status == HPP_OK) {
        fputs(",\"model\":", out);
        hpp_json_str(out, d->model->id);
        fputs(",\"provider\":", out);
        hpp_json_str(out, d->endpoint->provider);
        fputs(",\"native_id\":", out);
        hpp_json_str(out, d->endpoint->native_id);
        fputs(",\"tier\":", out);
        hpp_json_str(out, d->tier_name);
        fprintf(out, ",\"output_tokens\":%lld,\"cost\":{\"total\":", (long long)d->output_tokens);
        s_money(out, d->cost.total);
        fputs(",\"input\":", out);
        s_money(out, d->cost.input);
        fputs(",\"output\":", out);
        s_money(out, d->cost.output);
        fputs(",\"cache\":", out);
        s_money(out, d->cost.cache);
        fputs(",\"fees\":", out);
        s_money(out, d->cost.fees);
        fputs("},\"fallbacks\":[", out);
        for (uint32_t i = 0; i < d->nfallbacks; i++) {
            fputs(i ? ",{\"model\":" : "{\"model\":", out);
            hpp_json_str(out, s_model_of(pol, d->fallbacks[i]));
            fputs(",\"provider\":", out);
            hpp_json_str(out, d->fallbacks[i]->provider);
            fputc('}', out);
        }
        fputc(']', out);
    }
    if (tr) {
        fputs(",\"trace\":{\"hints\":[", out);
        for (int i = 0; tr->hint_names[i]; i++) {
            if (i) {
                fputc(',', out);
            }
            hpp_json_str(out, tr->hint_names[i]);
        }
        fputc(']', out);
        if (tr->nscores > 0) {
            fputs(",\"scores\":{", out);
            for (uint32_t i = 0; i < tr->nscores; i++) {
                fputs(i ? "," : "", out);
                hpp_json_str(out, tr->score_names[i]);
                fprintf(out, ":%.4f", tr->scores[i]);
            }
            fputc('}', out);
        }
        fputs(",\"rules_tried\":[", out);
        for (uint32_t i = 0; i < tr->nrules_tried; i++) {
            if (i) {
                fputc(',', out);
            }
            hpp_json_str(out, tr->rules_tried[i]);
        }
        fputs("],\"candidates\":[", out);
        for (size_t i = 0; i < tr->n; i++) {
            const eng_trace_entry_t *e = &tr->entries[i];
            fputs(i ? ",{\"model\":" : "{\"model\":", out);
            hpp_json_str(out, s_model_of(pol, e->endpoint));
            fputs(",\"provider\":", out);
            hpp_json_str(out, e->endpoint->provider);
            fputs(",\"tier\":", out);
            hpp_json_str(out, eng_policy_tier_name(pol, e->tier));
            fputs(",\"reason\":", out);
            hpp_json_str(out, eng_reject_name(e->reason));
            if (e->cost != HPP_PRICE_NA) { /* refused before an estimate: no cost */
                fputs(",\"cost\":", out);
                s_money(out, e->cost);
            }
            fputc('}', out);
        }
        fprintf(out, "],\"dropped\":%zu}", tr->dropped);
    }
    fputs("}\n", out);
}

/* "$0.0024"; "-" for a candidate refused before its cost was estimated. */
static void s_usd(char *buf, size_t n, hpp_pusd_t v)
{
    if (v == HPP_PRICE_NA) {
        snprintf(buf, n, "-");
        return;
    }
    buf[0] = '$';
    hpp_pusd_format(v, false, buf + 1, n - 1);
}

static void s_decision_text(FILE *out, const eng_policy_t *pol, const hpp_features_t *f,
                            const eng_decision_t *d, const eng_trace_t *tr)
{
    char a[48], b[48], c[48], e[48];
    hpp_str_t model = f->model.len ? f->model : (hpp_str_t){HPP_AUTO_MODEL, 14};
    fprintf(out, "request:   model=%.*s prompt_tokens=%lld output_tokens=", (int)model.len,
            model.ptr, (long long)f->prompt_tokens);
    if (f->output_tokens >= 0) {
        fprintf(out, "%lld", (long long)f->output_tokens);
    } else {
        fprintf(out, "(default)");
    }
    fprintf(out, " images=%lld%s%s%s", (long long)f->images, f->tools ? " tools" : "",
            f->json ? " json" : "", f->vision ? " vision" : "");
    if (f->has_budget) {
        fprintf(out, " budget=$%.12g", f->budget_usd);
    }
    if (f->group.len) {
        fprintf(out, " group=%.*s", (int)f->group.len, f->group.ptr);
    }
    fprintf(out, " text=%u bytes\n", f->text.len);
    fputs("hints:    ", out);
    for (int i = 0; tr->hint_names[i]; i++) {
        fprintf(out, " %s", tr->hint_names[i]);
    }
    if (tr->nscores > 0) {
        fputs("\nscores:   ", out);
        for (uint32_t i = 0; i < tr->nscores; i++) {
            fprintf(out, " %s=%.4f", tr->score_names[i], tr->scores[i]);
        }
    }
    fputs("\nrules:    ", out);
    for (uint32_t i = 0; i < tr->nrules_tried; i++) {
        fprintf(out, " %s%s", tr->rules_tried[i],
                i + 1 == tr->nrules_tried && d->rule && strcmp(d->rule, tr->rules_tried[i]) == 0
                    ? " (matched)"
                    : "");
    }
    fputc('\n', out);
    if (d->status != HPP_OK) {
        fprintf(out, "decision:  %s: %s\n", hpp_status_name(d->status), d->message);
    } else {
        fprintf(out, "decision:  %s via %s, tier %s, rule %s\n", d->model->id,
                d->endpoint->provider, d->tier_name[0] ? d->tier_name : "-", d->rule);
        fprintf(out, "why:       %s\n", d->message);
        s_usd(a, sizeof a, d->cost.total);
        s_usd(b, sizeof b, d->cost.input);
        s_usd(c, sizeof c, d->cost.output);
        s_usd(e, sizeof e, d->cost.cache + d->cost.fees);
        fprintf(out,
                "cost:      %s (input %s, output %s, cache and fees %s) for %lld output "
                "tokens\n",
                a, b, c, e, (long long)d->output_tokens);
        fputs("fallbacks:", out);
        for (uint32_t i = 0; i < d->nfallbacks; i++) {
            fprintf(out, "%s %s via %s", i ? "," : "", s_model_of(pol, d->fallbacks[i]),
                    d->fallbacks[i]->provider);
        }
        fputc('\n', out);
    }
    fprintf(out, "candidates (%zu%s):\n", tr->n, tr->dropped ? " shown, more dropped" : "");
    fprintf(out, "  %-10s %-40s %-12s %-14s %s\n", "tier", "model", "provider", "cost", "verdict");
    for (size_t i = 0; i < tr->n; i++) {
        const eng_trace_entry_t *t = &tr->entries[i];
        s_usd(a, sizeof a, t->cost);
        fprintf(out, "  %-10s %-40s %-12s %-14s %s\n",
                t->tier >= 0 ? eng_policy_tier_name(pol, t->tier) : "-",
                s_model_of(pol, t->endpoint), t->endpoint->provider, a, eng_reject_name(t->reason));
    }
}

/* check --------------------------------------------------------------------- */

int cmd_check(int argc, char **argv)
{
    s_args_t a;
    if (s_parse(argc, argv, s_check_opts, &a) != 0) {
        return HPP_EXIT_USAGE;
    }
    if (a.help) {
        hpp_usage(stdout, "check", "[--policy FILE] [--catalog FILE]... [--format json]",
                  s_check_opts);
        printf("\nCompiles the policy and prints every error and warning. Exit 2 when there\n"
               "is an error, 0 otherwise. With --format json, stdout is a JSON array of\n"
               "{file, line, col, end_col, severity, code, message}. 'check FILE' is the\n"
               "older spelling of 'check --policy FILE'.\n");
        return HPP_EXIT_OK;
    }
    const char *path = s_policy_path(&a, 0);
    if (!path) {
        return HPP_EXIT_USAGE;
    }
    if (a.npos > 0) {
        fprintf(stderr, "hpp-policy check: one policy file at a time (see --help)\n");
        return HPP_EXIT_USAGE;
    }
    eng_catalog_t *cat = s_load_catalog(&a);
    if (!cat) {
        return HPP_EXIT_USAGE;
    }
    eng_diags_t *d = eng_diags_new();
    eng_policy_t *pol = eng_policy_load(path, cat, d);
    int rc = pol ? HPP_EXIT_OK : HPP_EXIT_USAGE;
    if (a.json) {
        eng_diags_print_json(d, stdout);
    } else {
        eng_diags_print(d, stderr);
    }
    if (pol && !a.json) {
        size_t nm;
        eng_catalog_models(cat, &nm);
        printf("%s: ok (%d tier%s, %zu models in the catalog, %zu warning%s)\n", path,
               eng_policy_tier_count(pol), eng_policy_tier_count(pol) == 1 ? "" : "s", nm,
               eng_diags_count(d, ENG_DIAG_WARNING),
               eng_diags_count(d, ENG_DIAG_WARNING) == 1 ? "" : "s");
    }
    eng_policy_destroy(&pol);
    eng_diags_destroy(&d);
    eng_catalog_destroy(&cat);
    return rc;
}

/* test ------------------------------------------------------------------------ */

int cmd_test(int argc, char **argv)
{
    s_args_t a;
    if (s_parse(argc, argv, s_test_opts, &a) != 0) {
        return HPP_EXIT_USAGE;
    }
    if (a.help) {
        hpp_usage(stdout, "test", "[--policy FILE] CASES [--catalog FILE]... [--verbose]",
                  s_test_opts);
        printf("\nRuns every case of CASES against the policy, prints a diff for each failure\n"
               "and the line \"N passed, N failed\". Exit 1 when a case fails, 2 on bad input.\n"
               "'test POLICY CASES' is the older spelling of 'test --policy POLICY CASES'.\n");
        return HPP_EXIT_OK;
    }
    const char *path = s_policy_path(&a, 1);
    if (!path) {
        return HPP_EXIT_USAGE;
    }
    if (a.npos != 1) {
        fprintf(stderr, "hpp-policy test: expected [--policy FILE] CASES (see --help)\n");
        return HPP_EXIT_USAGE;
    }
    eng_catalog_t *cat = s_load_catalog(&a);
    if (!cat) {
        return HPP_EXIT_USAGE;
    }
    int rc = HPP_EXIT_USAGE;
    eng_diags_t *d = eng_diags_new();
    eng_cases_t *cases = NULL;
    eng_policy_t *pol = s_load_policy(path, cat, false);
    if (pol) {
        cases = eng_cases_load(a.pos[0], d);
        eng_diags_print(d, stderr);
    }
    if (pol && cases) {
        rc = eng_cases_run(cases, pol, stdout, a.verbose) ? HPP_EXIT_FAIL : HPP_EXIT_OK;
    }
    eng_cases_destroy(&cases);
    eng_diags_destroy(&d);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    return rc;
}

/* explain ----------------------------------------------------------------------- */

/* Reads --request: inline JSON, @FILE or - (stdin). Caller frees. */
static char *s_read_request(const s_args_t *a, size_t *len)
{
    const char *v = a->request;
    if (v[0] != '@' && strcmp(v, "-") != 0) {
        *len = strlen(v);
        return strdup(v);
    }
    FILE *f = strcmp(v, "-") == 0 ? stdin : fopen(v + 1, "rb");
    if (!f) {
        fprintf(stderr, "hpp-policy %s: cannot read %s: %s\n", a->cmd, v + 1, strerror(errno));
        return NULL;
    }
    char *buf = malloc(S_MAX_REQUEST + 1);
    size_t n = buf ? fread(buf, 1, S_MAX_REQUEST + 1, f) : 0;
    if (f != stdin) {
        fclose(f);
    }
    if (!buf || n > S_MAX_REQUEST) {
        fprintf(stderr, "hpp-policy %s: request larger than %u bytes\n", a->cmd, S_MAX_REQUEST);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Sets one feature from a JSON value; numbers and booleans are parsed on the
 * spot, strings are borrowed from the document. */
static int s_json_feature(hpp_features_t *f, const char *key, json_t *v, char *why, size_t n)
{
    char num[64];
    const char *s = NULL;
    size_t len = 0;
    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else if (json_is_integer(v)) {
        len = (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        len = (size_t)snprintf(num, sizeof num, "%.17g", json_real_value(v));
        s = num;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
        len = strlen(s);
    } else {
        snprintf(why, n, "expected a string, a number or a boolean");
        return -1;
    }
    return eng_features_set(f, key, strlen(key), s, len, why, n);
}

/* A features object: the keys of eng_features_set, "hints" also as an array,
 * "meta" / "metadata" as an object of strings. */
static int s_features_json(const s_args_t *a, json_t *doc, hpp_features_t *f)
{
    const char *key;
    json_t *v;
    char why[256];
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "hints") == 0 && json_is_array(v)) {
            size_t i;
            json_t *h;
            json_array_foreach(v, i, h)
            {
                if (!json_is_string(h) ||
                    eng_features_set(f, "hints", 5, json_string_value(h), json_string_length(h),
                                     why, sizeof why) != 0) {
                    fprintf(stderr, "hpp-policy %s: hints[%zu]: %s\n", a->cmd, i,
                            json_is_string(h) ? why : "expected a string");
                    return -1;
                }
            }
            continue;
        }
        if ((strcmp(key, "meta") == 0 || strcmp(key, "metadata") == 0) && json_is_object(v)) {
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv)
            {
                if (!json_is_string(mv) || f->nmeta >= HPP_MAX_META) {
                    fprintf(stderr, "hpp-policy %s: %s.%s: expected a string (at most %d keys)\n",
                            a->cmd, key, mk, HPP_MAX_META);
                    return -1;
                }
                f->meta_keys[f->nmeta].ptr = mk;
                f->meta_keys[f->nmeta].len = (uint32_t)strlen(mk);
                f->meta_vals[f->nmeta].ptr = json_string_value(mv);
                f->meta_vals[f->nmeta].len = (uint32_t)json_string_length(mv);
                f->nmeta++;
            }
            continue;
        }
        if (s_json_feature(f, key, v, why, sizeof why) != 0) {
            fprintf(stderr, "hpp-policy %s: request key '%s': %s\n", a->cmd, key, why);
            return -1;
        }
    }
    return 0;
}

int cmd_explain(int argc, char **argv)
{
    s_args_t a;
    if (s_parse(argc, argv, s_explain_opts, &a) != 0) {
        return HPP_EXIT_USAGE;
    }
    if (a.help) {
        hpp_usage(stdout, "explain",
                  "--request JSON [--policy FILE] [--catalog FILE]... [--format json]",
                  s_explain_opts);
        printf("\nThe request is either a features object, e.g.\n"
               "  {\"prompt_tokens\": 1200, \"hints\": [\"code\"], \"budget_usd\": 0.01, "
               "\"text\": \"def f(): ...\"}\n"
               "(keys: model prompt_tokens output_tokens cache_read_tokens images vision tools\n"
               "json hints budget_usd group text meta), or an OpenAI chat request body (an object\n"
               "with \"messages\"), read the way hpp-sidecar reads it.\n");
        return HPP_EXIT_OK;
    }
    const char *path = s_policy_path(&a, 0);
    if (!path) {
        return HPP_EXIT_USAGE;
    }
    if (a.npos > 0 || !a.request) {
        fprintf(stderr,
                "hpp-policy explain: expected --request JSON [--policy FILE] (see --help)\n");
        return HPP_EXIT_USAGE;
    }
    size_t len = 0;
    char *text = s_read_request(&a, &len);
    if (!text) {
        return HPP_EXIT_USAGE;
    }
    int rc = HPP_EXIT_USAGE;
    eng_catalog_t *cat = NULL;
    eng_policy_t *pol = NULL;
    oai_extract_t *x = NULL;
    eng_trace_entry_t *entries = NULL;
    json_error_t jerr;
    /* A file saved by an editor that starts it with a byte order mark. */
    size_t bom = eng_bom_len(text, len);
    const char *body = text + bom;
    size_t body_len = len - bom;
    json_t *doc = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc)) {
        fprintf(stderr, "hpp-policy explain: --request: %s (line %d, column %d)\n",
                doc ? "expected a JSON object" : jerr.text, jerr.line, jerr.column);
        goto out;
    }
    hpp_features_t f;
    hpp_features_init(&f);
    if (json_object_get(doc, "messages")) {
        x = oai_extract_new();
        oai_error_t serr;
        memset(&serr, 0, sizeof serr);
        if (!x) {
            goto out;
        }
        oai_extract_reset(x, &f);
        if (oai_extract_body(x, body, body_len, &f, &serr) != 0) {
            fprintf(stderr, "hpp-policy explain: --request: %s\n", serr.message);
            goto out;
        }
    } else if (s_features_json(&a, doc, &f) != 0) {
        goto out;
    }
    cat = s_load_catalog(&a);
    pol = cat ? s_load_policy(path, cat, false) : NULL;
    entries = calloc(S_TRACE_CAP, sizeof *entries);
    if (!pol || !entries) {
        goto out;
    }
    eng_trace_t tr;
    memset(&tr, 0, sizeof tr);
    tr.entries = entries;
    tr.cap = S_TRACE_CAP;
    eng_decision_t d;
    eng_resolve_remaining(pol, &f, a.remaining, &d, &tr);
    if (a.json) {
        s_decision_json(stdout, pol, &d, &tr);
    } else {
        s_decision_text(stdout, pol, &f, &d, &tr);
    }
    rc = d.status == HPP_OK ? HPP_EXIT_OK : HPP_EXIT_FAIL;
out:
    free(entries);
    oai_extract_destroy(&x);
    json_decref(doc);
    free(text);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    return rc;
}

/* route ----------------------------------------------------------------------- */

int cmd_route(int argc, char **argv)
{
    s_args_t a;
    if (s_parse(argc, argv, s_route_opts, &a) != 0) {
        return HPP_EXIT_USAGE;
    }
    if (a.help) {
        hpp_usage(stdout, "route", "[options]", s_route_opts);
        printf("\nPrints one decision as JSON. Exit 0 when a model was chosen, 1 when the\n"
               "decision is an error (insufficient_budget, no_candidate, ...), 2 on bad usage.\n");
        return HPP_EXIT_OK;
    }
    if (a.npos) {
        fprintf(stderr, "hpp-policy route: unexpected argument '%s' (see --help)\n", a.pos[0]);
        return HPP_EXIT_USAGE;
    }
    eng_catalog_t *cat = s_load_catalog(&a);
    eng_policy_t *pol =
        cat ? s_load_policy(a.policy ? a.policy : s_default_policy(), cat, false) : NULL;
    eng_trace_entry_t *entries = a.trace ? calloc(S_TRACE_CAP, sizeof *entries) : NULL;
    int rc = HPP_EXIT_USAGE;
    if (pol && (!a.trace || entries)) {
        eng_trace_t tr;
        memset(&tr, 0, sizeof tr);
        tr.entries = entries;
        tr.cap = S_TRACE_CAP;
        eng_decision_t d;
        eng_resolve_remaining(pol, &a.f, a.remaining, &d, a.trace ? &tr : NULL);
        s_decision_json(stdout, pol, &d, a.trace ? &tr : NULL);
        rc = d.status == HPP_OK ? HPP_EXIT_OK : HPP_EXIT_FAIL;
    }
    free(entries);
    eng_policy_destroy(&pol);
    eng_catalog_destroy(&cat);
    return rc;
}
