/* cmd_catalog.c - `hpp-policy catalog` and `hpp-policy cost`.
 *
 * catalog lists every model of the loaded catalog files with its endpoints,
 * prices (USD per 1M tokens) and capabilities; cost prices one call on one
 * endpoint of one model, part by part. Both load --catalog files (default:
 * eng_catalog_default_path()), print text or JSON, and share one flag
 * parser driven by a per-command option table, from which --help is
 * generated. Money is printed from integer picodollars as exact decimals,
 * never through a double, so the JSON numbers are the catalog's numbers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_catalog.h"
#include "eng_cost.h"
#include "eng_decision.h"
#include "hpp_policy.h"

#define S_MAX_CATALOGS 32 /* --catalog files per run */

typedef enum {
    O_CATALOG,
    O_FORMAT,
    O_MODEL,
    O_PROVIDER,
    O_IN,
    O_OUT,
    O_CACHE_READ,
    O_CACHE_WRITE,
    O_REASONING,
    O_IMAGES,
    O_HELP,
} s_opt_id_t;

static const hpp_opt_t s_catalog_opts[] = {
    {"--catalog", "FILE", O_CATALOG, NULL,
     "catalog file, repeatable; \"native:\", \"openrouter:\", \"litellm:\" or \"portkey:\" "
     "forces a format (default $HPP_CATALOG or policies/catalog.json)"},
    {"--format", "text|json", O_FORMAT, NULL, "output format (default text)"},
    {"--help", NULL, O_HELP, NULL, "show this help"},
    {NULL, NULL, O_HELP, NULL, NULL},
};

static const hpp_opt_t s_cost_opts[] = {
    {"--model", "ID[:floor|:free]", O_MODEL, NULL,
     "model id (or a provider's spelling of it); :floor = cheapest endpoint (the default), "
     ":free = its $0 endpoint"},
    {"--provider", "P", O_PROVIDER, NULL, "price the endpoint of this provider instead"},
    {"--in", "N", O_IN, NULL, "prompt tokens (uncached)"},
    {"--out", "N", O_OUT, NULL, "completion tokens"},
    {"--cache-read", "N", O_CACHE_READ, NULL, "prompt tokens read from the cache"},
    {"--cache-write", "N", O_CACHE_WRITE, NULL, "prompt tokens written to the cache"},
    {"--reasoning", "N", O_REASONING, NULL, "reasoning tokens (billed as output)"},
    {"--images", "N", O_IMAGES, NULL, "input images"},
    {"--catalog", "FILE", O_CATALOG, NULL, "catalog file, repeatable (default as for `catalog`)"},
    {"--format", "text|json", O_FORMAT, NULL, "output format (default text)"},
    {"--help", NULL, O_HELP, NULL, "show this help"},
    {NULL, NULL, O_HELP, NULL, NULL},
};

/* Everything a command line can say. */
typedef struct {
    const char *cmd;                      /* subcommand name, for messages */
    const char *catalogs[S_MAX_CATALOGS]; /* --catalog specs */
    size_t ncatalogs;                     /* used entries */
    bool json;                            /* --format json */
    const char *model;                    /* --model */
    const char *provider;                 /* --provider */
    eng_usage_t usage;                    /* token counts */
    bool help;                            /* --help */
} s_args_t;

/* A token or image count: a whole number from 0 to max. */
static int s_count(const char *cmd, const char *flag, const char *v, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < 0 || n > max || v[0] == '-' || v[0] == '+' || v[0] == ' ') {
        fprintf(stderr, "hpp-policy %s: %s: expected a whole number from 0 to %lld, got '%s'\n",
                cmd, flag, (long long)max, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int s_set(s_args_t *a, const hpp_opt_t *o, const char *v)
{
    switch (o->id) {
    case O_CATALOG:
        if (a->ncatalogs == S_MAX_CATALOGS) {
            fprintf(stderr, "hpp-policy %s: at most %d --catalog files\n", a->cmd, S_MAX_CATALOGS);
            return -1;
        }
        a->catalogs[a->ncatalogs++] = v;
        return 0;
    case O_FORMAT:
        if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0) {
            fprintf(stderr, "hpp-policy %s: --format: expected text or json, got '%s'\n", a->cmd,
                    v);
            return -1;
        }
        a->json = strcmp(v, "json") == 0;
        return 0;
    case O_MODEL:
        a->model = v;
        return 0;
    case O_PROVIDER:
        a->provider = v;
        return 0;
    case O_IN:
        return s_count(a->cmd, o->name, v, HPP_MAX_TOKENS, &a->usage.prompt_tokens);
    case O_OUT:
        return s_count(a->cmd, o->name, v, HPP_MAX_TOKENS, &a->usage.completion_tokens);
    case O_CACHE_READ:
        return s_count(a->cmd, o->name, v, HPP_MAX_TOKENS, &a->usage.cache_read_tokens);
    case O_CACHE_WRITE:
        return s_count(a->cmd, o->name, v, HPP_MAX_TOKENS, &a->usage.cache_write_tokens);
    case O_REASONING:
        return s_count(a->cmd, o->name, v, HPP_MAX_TOKENS, &a->usage.reasoning_tokens);
    case O_IMAGES:
        return s_count(a->cmd, o->name, v, HPP_MAX_IMAGES, &a->usage.images);
    case O_HELP:
        a->help = true;
        return 0;
    }
    return -1;
}

/* Parses argv[1..] against the table; "--flag=value" and "--flag value". */
static int s_parse(int argc, char **argv, const hpp_opt_t *opts, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    for (int i = 1; i < argc; i++) {
        const hpp_opt_t *o;
        const char *v;
        int rc = hpp_opt_next(argc, argv, &i, opts, &o, &v);
        if (rc == 0) {
            fprintf(stderr, "hpp-policy %s: unexpected argument '%s' (see --help)\n", argv[0],
                    argv[i]);
        }
        if (rc <= 0) {
            return -1;
        }
        if (s_set(a, o, v) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Loads and freezes the requested catalogs; prints the error and returns NULL. */
static eng_catalog_t *s_load(const s_args_t *a)
{
    eng_catalog_t *cat = eng_catalog_new();
    if (!cat) {
        fprintf(stderr, "hpp-policy: out of memory\n");
        return NULL;
    }
    const char *def = eng_catalog_default_path();
    const char *const *specs = a->ncatalogs ? a->catalogs : &def;
    size_t n = a->ncatalogs ? a->ncatalogs : 1;
    eng_error_t err;
    for (size_t i = 0; i < n; i++) {
        if (eng_catalog_load(cat, specs[i], &err) < 0) {
            goto fail;
        }
    }
    if (eng_catalog_freeze(cat, &err) < 0) {
        goto fail;
    }
    return cat;
fail:;
    char buf[1024];
    eng_error_format(&err, buf, sizeof buf);
    fprintf(stderr, "%s\n", buf);
    eng_catalog_destroy(&cat);
    return NULL;
}

/* Output helpers ----------------------------------------------------------- */

/* Money as an exact decimal: per 1M tokens for token prices, else USD. NA is
 * "null" in JSON and "n/a" in text. */
static void s_money(FILE *out, hpp_pusd_t v, bool per_million, bool json)
{
    char buf[64];
    if (v == HPP_PRICE_NA) {
        fputs(json ? "null" : "n/a", out);
        return;
    }
    hpp_pusd_format(v, per_million, buf, sizeof buf);
    fprintf(out, "%s%s", json ? "" : "$", buf);
}

typedef struct {
    const char *name; /* capability word */
    uint32_t bit;     /* ENG_CAP_* */
} s_cap_name_t;

static const s_cap_name_t s_caps[] = {
    {"vision", HPP_CAP_VISION},
    {"tools", HPP_CAP_TOOLS},
    {"json", HPP_CAP_JSON},
    {"reasoning", HPP_CAP_REASONING},
    {NULL, 0},
};

static void s_caps_out(FILE *out, uint32_t caps, bool json)
{
    const char *sep = "";
    fputs(json ? "[" : "", out);
    for (const s_cap_name_t *c = s_caps; c->name; c++) {
        if (caps & c->bit) {
            fprintf(out, json ? "%s\"%s\"" : "%s%s", sep, c->name);
            sep = json ? ", " : ",";
        }
    }
    fputs(json ? "]" : (*sep ? "" : "-"), out);
}

typedef struct {
    const char *key; /* JSON key / text label */
    size_t off;      /* field in hpp_price_t */
    bool per_token;  /* per-token price (shown per 1M tokens) or a fee */
} s_price_field_t;

static const s_price_field_t s_price_fields[] = {
    {"input", offsetof(hpp_price_t, input), true},
    {"output", offsetof(hpp_price_t, output), true},
    {"cache_read", offsetof(hpp_price_t, cache_read), true},
    {"cache_write", offsetof(hpp_price_t, cache_write), true},
    {"per_request", offsetof(hpp_price_t, per_request), false},
    {"per_image", offsetof(hpp_price_t, per_image), false},
    {NULL, 0, false},
};

static hpp_pusd_t s_field(const hpp_price_t *p, const s_price_field_t *f)
{
    return *(const hpp_pusd_t *)((const char *)p + f->off);
}

static void s_price_json(FILE *out, const hpp_price_t *p)
{
    fputc('{', out);
    for (const s_price_field_t *f = s_price_fields; f->key; f++) {
        fprintf(out, "%s\"%s\": ", f == s_price_fields ? "" : ", ", f->key);
        s_money(out, s_field(p, f), f->per_token, true);
    }
    fputc('}', out);
}

/* "in $3 out $15 cache r $0.3 w $3.75 /1M" plus fees when set. */
static void s_price_text(FILE *out, const hpp_price_t *p)
{
    fputs("in ", out);
    s_money(out, p->input, true, false);
    fputs(" out ", out);
    s_money(out, p->output, true, false);
    if (p->cache_read != HPP_PRICE_NA || p->cache_write != HPP_PRICE_NA) {
        fputs(" cache r ", out);
        s_money(out, p->cache_read, true, false);
        fputs(" w ", out);
        s_money(out, p->cache_write, true, false);
    }
    fputs(" /1M", out);
    if (p->per_request != HPP_PRICE_NA && p->per_request != 0) {
        fputs(" + ", out);
        s_money(out, p->per_request, false, false);
        fputs("/request", out);
    }
    if (p->per_image != HPP_PRICE_NA && p->per_image != 0) {
        fputs(" + ", out);
        s_money(out, p->per_image, false, false);
        fputs("/image", out);
    }
}

/* catalog ------------------------------------------------------------------ */

static void s_endpoint_json(FILE *out, const eng_model_t *m, const eng_endpoint_t *e, int32_t k)
{
    fputs("{\"provider\": ", out);
    hpp_json_str(out, e->provider);
    fputs(", \"native_id\": ", out);
    hpp_json_str(out, e->native_id);
    fputs(", \"source\": ", out);
    hpp_json_str(out, e->source);
    fprintf(out, ", \"enabled\": %s, \"free\": %s, \"floor\": %s, \"context_length\": %u",
            e->enabled ? "true" : "false", e->is_free ? "true" : "false",
            k == m->floor_ep ? "true" : "false",
            e->context_length ? e->context_length : m->context_length);
    fputs(", \"pricing_per_1m\": ", out);
    s_price_json(out, &e->price);
    fputc('}', out);
}

static void s_list_json(FILE *out, const eng_catalog_t *cat)
{
    size_t nm, ne;
    const eng_model_t *m = eng_catalog_models(cat, &nm);
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    fprintf(out, "{\"object\": \"list\", \"models\": %zu, \"endpoints\": %zu, \"data\": [", nm, ne);
    for (size_t i = 0; i < nm; i++) {
        fputs(i ? ",\n  {\"id\": " : "\n  {\"id\": ", out);
        hpp_json_str(out, m[i].id);
        fputs(", \"owned_by\": ", out);
        if (m[i].owner) {
            hpp_json_str(out, m[i].owner);
        } else {
            fputs("null", out);
        }
        fprintf(out, ", \"context_length\": %u, \"max_output\": %u, \"capabilities\": ",
                m[i].context_length, m[i].max_output);
        s_caps_out(out, m[i].caps, true);
        fputs(", \"endpoints\": [", out);
        for (uint32_t k = m[i].ep_first; k < m[i].ep_first + m[i].ep_count; k++) {
            fputs(k == m[i].ep_first ? "" : ", ", out);
            s_endpoint_json(out, &m[i], &e[k], (int32_t)k);
        }
        fputs("]}", out);
    }
    fputs("\n]}\n", out);
}

static void s_list_text(FILE *out, const eng_catalog_t *cat)
{
    size_t nm, ne;
    const eng_model_t *m = eng_catalog_models(cat, &nm);
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    for (size_t i = 0; i < nm; i++) {
        fprintf(out, "%s  context %u  max output %u  caps ", m[i].id, m[i].context_length,
                m[i].max_output);
        s_caps_out(out, m[i].caps, false);
        fputc('\n', out);
        for (uint32_t k = m[i].ep_first; k < m[i].ep_first + m[i].ep_count; k++) {
            const char *mark = (int32_t)k == m[i].floor_ep ? "*" : " ";
            fprintf(out, "  %s %-16s %-44s ", mark, e[k].provider, e[k].native_id);
            s_price_text(out, &e[k].price);
            fprintf(out, "%s%s\n", e[k].is_free ? "  [free]" : "",
                    e[k].enabled ? "" : "  [disabled]");
        }
    }
    fprintf(out, "%zu models, %zu endpoints (* = floor: cheapest enabled endpoint)\n", nm, ne);
}

int cmd_catalog(int argc, char **argv)
{
    static const char synopsis[] = "[--catalog FILE]... [--format text|json]";
    s_args_t a;
    if (s_parse(argc, argv, s_catalog_opts, &a) < 0) {
        return HPP_EXIT_USAGE;
    }
    if (a.help) {
        hpp_usage(stdout, "catalog", synopsis, s_catalog_opts);
        return HPP_EXIT_OK;
    }
    eng_catalog_t *cat = s_load(&a);
    if (!cat) {
        return HPP_EXIT_USAGE;
    }
    if (a.json) {
        s_list_json(stdout, cat);
    } else {
        s_list_text(stdout, cat);
    }
    eng_catalog_destroy(&cat);
    return HPP_EXIT_OK;
}

/* cost --------------------------------------------------------------------- */

typedef enum { S_PICK_FLOOR, S_PICK_FREE } s_pick_t;

/* Splits "id:floor" / "id:free"; returns the id length. */
static size_t s_split_model(const char *model, s_pick_t *pick)
{
    size_t len = strlen(model);
    *pick = S_PICK_FLOOR;
    if (len > 6 && strcmp(model + len - 6, ":floor") == 0) {
        return len - 6;
    }
    if (len > 5 && strcmp(model + len - 5, ":free") == 0) {
        *pick = S_PICK_FREE;
        return len - 5;
    }
    return len;
}

/* The endpoint to price, or -1 after printing why there is none. */
static int32_t s_choose(const eng_catalog_t *cat, const eng_model_t *m, s_pick_t pick,
                        const char *provider, const char **why)
{
    size_t ne;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne);
    if (provider) {
        *why = "provider";
        for (uint32_t k = m->ep_first; k < m->ep_first + m->ep_count; k++) {
            bool ok = strcmp(e[k].provider, provider) == 0 && e[k].enabled &&
                      (pick != S_PICK_FREE || e[k].is_free);
            if (ok) {
                return (int32_t)k; /* cheapest first: the first match is its cheapest */
            }
        }
        fprintf(stderr,
                "hpp-policy cost: %s has no enabled%s endpoint at provider '%s' (it has:", m->id,
                pick == S_PICK_FREE ? " free" : "", provider);
        for (uint32_t k = m->ep_first; k < m->ep_first + m->ep_count; k++) {
            fprintf(stderr, " %s", e[k].provider);
        }
        fputs(")\n", stderr);
        return -1;
    }
    *why = pick == S_PICK_FREE ? "free" : "floor";
    int32_t k = pick == S_PICK_FREE ? m->free_ep : m->floor_ep;
    if (k < 0) {
        fprintf(stderr, "hpp-policy cost: %s has no %s endpoint\n", m->id,
                pick == S_PICK_FREE ? "free ($0)" : "enabled");
    }
    return k;
}

static void s_cost_json(FILE *out, const eng_model_t *m, const eng_endpoint_t *e, const char *why,
                        const eng_usage_t *u, const hpp_cost_t *c)
{
    fputs("{\"model\": ", out);
    hpp_json_str(out, m->id);
    fputs(", \"provider\": ", out);
    hpp_json_str(out, e->provider);
    fputs(", \"native_id\": ", out);
    hpp_json_str(out, e->native_id);
    fprintf(out, ", \"endpoint\": \"%s\", \"free\": %s, \"pricing_per_1m\": ", why,
            e->is_free ? "true" : "false");
    s_price_json(out, &e->price);
    fprintf(out,
            ", \"usage\": {\"prompt_tokens\": %lld, \"completion_tokens\": %lld, "
            "\"reasoning_tokens\": %lld, \"cache_read_tokens\": %lld, \"cache_write_tokens\": "
            "%lld, \"images\": %lld}",
            (long long)u->prompt_tokens, (long long)u->completion_tokens,
            (long long)u->reasoning_tokens, (long long)u->cache_read_tokens,
            (long long)u->cache_write_tokens, (long long)u->images);
    const struct {
        const char *key;
        hpp_pusd_t v;
    } parts[] = {{"input", c->input},
                 {"output", c->output},
                 {"cache", c->cache},
                 {"fees", c->fees},
                 {"total", c->total}};
    fputs(", \"cost_usd\": {", out);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        fprintf(out, "%s\"%s\": ", i ? ", " : "", parts[i].key);
        s_money(out, parts[i].v, false, true);
    }
    fputs("}}\n", out);
}

static void s_cost_text(FILE *out, const eng_model_t *m, const eng_endpoint_t *e, const char *why,
                        const eng_usage_t *u, const hpp_cost_t *c)
{
    fprintf(out, "model     %s\n", m->id);
    if (strcmp(why, "floor") == 0) {
        fprintf(out, "endpoint  %s %s (floor: cheapest enabled of %u endpoints)\n", e->provider,
                e->native_id, m->ep_count);
    } else {
        fprintf(out, "endpoint  %s %s (%s endpoint)\n", e->provider, e->native_id, why);
    }
    fputs("prices    ", out);
    s_price_text(out, &e->price);
    fprintf(out,
            "\nusage     %lld in, %lld out, %lld reasoning, %lld cache read, %lld cache write, "
            "%lld images\n",
            (long long)u->prompt_tokens, (long long)u->completion_tokens,
            (long long)u->reasoning_tokens, (long long)u->cache_read_tokens,
            (long long)u->cache_write_tokens, (long long)u->images);
    const struct {
        const char *label;
        hpp_pusd_t v;
    } parts[] = {{"input", c->input},
                 {"output", c->output},
                 {"cache", c->cache},
                 {"fees", c->fees},
                 {"total", c->total}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        fprintf(out, "%-9s ", parts[i].label);
        s_money(out, parts[i].v, false, false);
        fputc('\n', out);
    }
}

int cmd_cost(int argc, char **argv)
{
    static const char synopsis[] =
        "--model ID[:floor|:free] --in N --out N [--cache-read N] [--cache-write N] "
        "[--reasoning N] [--images N] [--provider P] [--catalog FILE]... [--format text|json]";
    s_args_t a;
    if (s_parse(argc, argv, s_cost_opts, &a) < 0) {
        return HPP_EXIT_USAGE;
    }
    if (a.help) {
        hpp_usage(stdout, "cost", synopsis, s_cost_opts);
        return HPP_EXIT_OK;
    }
    if (!a.model || !*a.model) {
        fprintf(stderr, "hpp-policy cost: --model is required (see --help)\n");
        return HPP_EXIT_USAGE;
    }
    eng_catalog_t *cat = s_load(&a);
    if (!cat) {
        return HPP_EXIT_USAGE;
    }
    int rc = HPP_EXIT_USAGE;
    s_pick_t pick;
    size_t len = s_split_model(a.model, &pick);
    const eng_model_t *m = eng_catalog_lookup(cat, a.model, len);
    if (!m) {
        fprintf(stderr, "hpp-policy cost: unknown model '%.*s' (see `hpp-policy catalog`)\n",
                (int)len, a.model);
        goto out;
    }
    const char *why = "floor";
    int32_t k = s_choose(cat, m, pick, a.provider, &why);
    if (k < 0) {
        goto out;
    }
    size_t ne;
    const eng_endpoint_t *e = eng_catalog_endpoints(cat, &ne) + k;
    hpp_cost_t c;
    if (eng_cost_estimate(&e->price, &a.usage, &c) < 0) {
        fprintf(stderr, "hpp-policy cost: the cost overflows\n");
        goto out;
    }
    if (a.json) {
        s_cost_json(stdout, m, e, why, &a.usage, &c);
    } else {
        s_cost_text(stdout, m, e, why, &a.usage, &c);
    }
    rc = HPP_EXIT_OK;
out:
    eng_catalog_destroy(&cat);
    return rc;
}
