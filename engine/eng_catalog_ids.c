/* eng_catalog_ids.c - one canonical id per model, whatever the source said.
 *
 * Price lists name the same model many ways: "claude-3-5-sonnet-20241022"
 * (Anthropic), "anthropic.claude-3-5-sonnet-20241022-v2:0" (Bedrock, maybe
 * behind "us." or "bedrock/us-east-1/"), "vertex_ai/claude-3-5-sonnet@20241022"
 * (Vertex), "anthropic/claude-3.5-sonnet" (OpenRouter, the canonical form).
 * The rules below rewrite the foreign spellings to the OpenRouter-style
 * "author/slug" so that the same model from several files becomes several
 * endpoints of one model. They are data-driven tables plus a fixed sequence
 * of steps, documented step by step in policies/CATALOG.md; the alias table of
 * a native catalog handles whatever the rules cannot. Everything works in
 * caller buffers: no allocation, usable from lookups.
 */
#include "eng_catalog_internal.h"

#include <string.h>

typedef struct {
    const char *spelling; /* how a source writes the author */
    const char *author;   /* canonical author */
} s_author_t;

/* Author spellings seen as a path component ("together_ai/meta-llama/...")
 * or as a Bedrock vendor prefix ("meta.llama3-..."). */
static const s_author_t s_authors[] = {
    {"openai", "openai"},
    {"anthropic", "anthropic"},
    {"google", "google"},
    {"meta-llama", "meta-llama"},
    {"meta", "meta-llama"},
    {"mistralai", "mistralai"},
    {"mistral", "mistralai"},
    {"deepseek", "deepseek"},
    {"deepseek-ai", "deepseek"},
    {"qwen", "qwen"},
    {"moonshotai", "moonshotai"},
    {"moonshot", "moonshotai"},
    {"x-ai", "x-ai"},
    {"xai", "x-ai"},
    {"cohere", "cohere"},
    {"microsoft", "microsoft"},
    {"amazon", "amazon"},
    {"nvidia", "nvidia"},
    {"ai21", "ai21"},
    {"z-ai", "z-ai"},
    {"zai-org", "z-ai"},
    {"minimax", "minimax"},
    {"minimaxai", "minimax"},
    {NULL, NULL},
};

/* Author inferred from the start of a slug when no source named it. */
static const s_author_t s_families[] = {
    {"claude", "anthropic"},    {"gpt-", "openai"},
    {"chatgpt", "openai"},      {"o1", "openai"},
    {"o3", "openai"},           {"o4", "openai"},
    {"codex", "openai"},        {"gemini", "google"},
    {"gemma", "google"},        {"llama", "meta-llama"},
    {"mistral", "mistralai"},   {"mixtral", "mistralai"},
    {"codestral", "mistralai"}, {"ministral", "mistralai"},
    {"pixtral", "mistralai"},   {"magistral", "mistralai"},
    {"devstral", "mistralai"},  {"deepseek", "deepseek"},
    {"qwen", "qwen"},           {"qwq", "qwen"},
    {"kimi", "moonshotai"},     {"grok", "x-ai"},
    {"command", "cohere"},      {"phi-", "microsoft"},
    {"nova-", "amazon"},        {"titan-", "amazon"},
    {"jamba", "ai21"},          {"glm-", "z-ai"},
    {"minimax", "minimax"},     {NULL, NULL},
};

/* Region prefixes of Bedrock cross-region inference profiles. */
static const char *const s_regions[] = {"us.", "eu.", "apac.",   "global.", "jp.",
                                        "au.", "ca.", "us-gov.", "apne1.",  NULL};

/* Providers that run models on the caller's own hardware: $0. */
static const char *const s_local_providers[] = {"ollama", "lmstudio", "llamacpp", "local", NULL};

static const char *s_author_of(const char *s, size_t len)
{
    for (const s_author_t *a = s_authors; a->spelling; a++) {
        if (strlen(a->spelling) == len && memcmp(a->spelling, s, len) == 0) {
            return a->author;
        }
    }
    return NULL;
}

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool s_starts(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool s_ends(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static bool s_has_digit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s_is_digit(s[i])) {
            return true;
        }
    }
    return false;
}

/* Bedrock version suffix: ":0", "-v2:0", "-1:0". */
static size_t s_strip_bedrock_version(const char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && s_is_digit(s[i - 1])) {
        i--;
    }
    if (i == len || i == 0 || s[i - 1] != ':') {
        return len;
    }
    size_t cut = i - 1; /* at ':' */
    size_t j = cut;
    while (j > 0 && s_is_digit(s[j - 1]) && cut - j < 2) {
        j--;
    }
    if (j < cut && j > 0) {
        size_t k = j;
        if (s[k - 1] == 'v' && k > 1) {
            k--;
        }
        /* Keep "claude-v2" whole (the version is the model's name): strip
         * only when the rest is more than one bare word ("nova-pro-v1"). */
        if (s[k - 1] == '-' && (s_has_digit(s, k - 1) || memchr(s, '-', k - 1))) {
            return k - 1;
        }
    }
    return cut;
}

/* "-20241022" (an 8-digit date) at the end. */
static size_t s_strip_compact_date(const char *s, size_t len)
{
    if (len > 9 && s[len - 9] == '-') {
        for (size_t i = len - 8; i < len; i++) {
            if (!s_is_digit(s[i])) {
                return len;
            }
        }
        return len - 9;
    }
    return len;
}

/* Family rewrites for claude and llama, in place on a NUL-terminated slug:
 * "meta-llama-3.1" -> "llama-3.1", "llama3-1" -> "llama-3-1", then single
 * digit pairs "-3-5-" -> "-3.5-" ("claude-3-5-sonnet" -> "claude-3.5-sonnet",
 * "claude-sonnet-4-5" -> "claude-sonnet-4.5"). Returns the new length. */
static size_t s_family_rewrite(char *s, size_t len, size_t cap)
{
    if (s_starts(s, len, "meta-llama-")) {
        memmove(s, s + 5, len - 5 + 1);
        len -= 5;
    }
    bool claude = s_starts(s, len, "claude"), llama = s_starts(s, len, "llama");
    if (!claude && !llama) {
        return len;
    }
    if (llama && len > 5 && s_is_digit(s[5]) && len + 1 < cap) {
        memmove(s + 6, s + 5, len - 5 + 1);
        s[5] = '-';
        len++;
    }
    for (size_t i = 1; i + 2 < len; i++) {
        bool single_a = s[i - 1] == '-' && s_is_digit(s[i]) && s[i + 1] == '-';
        if (single_a && s_is_digit(s[i + 2]) && (i + 3 == len || s[i + 3] == '-')) {
            s[i + 1] = '.';
        }
    }
    return len;
}

static const char *s_family_author(const char *slug, size_t len)
{
    for (const s_author_t *f = s_families; f->spelling; f++) {
        size_t n = strlen(f->spelling);
        if (len < n || memcmp(slug, f->spelling, n) != 0) {
            continue;
        }
        /* "o1" must be the whole word ("o1", "o1-mini"), not "o1x...". */
        if (f->spelling[0] == 'o' && n == 2 && len > 2 && slug[2] != '-') {
            continue;
        }
        return f->author;
    }
    return NULL;
}

size_t eng_cat_normalize_id(const char *provider, const char *id, size_t len, char *out, size_t n)
{
    char low[ENG_CATALOG_MAX_ID + 2];
    if (len == 0 || len > ENG_CATALOG_MAX_ID || n < 4) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    low[len] = '\0';
    /* 1. Path components: the last is the slug; the one before it may name
     * the author ("together_ai/meta-llama/Meta-Llama-3.1-8B-Instruct"). */
    const char *author = NULL;
    char *slug = low;
    char *last = strrchr(low, '/');
    if (last) {
        slug = last + 1;
        char *prev = last;
        while (prev > low && prev[-1] != '/') {
            prev--;
        }
        author = s_author_of(prev, (size_t)(last - prev));
    }
    size_t sl = strlen(slug);
    /* 2. Bedrock cross-region prefix, then vendor prefix "anthropic.". */
    for (const char *const *r = s_regions; *r; r++) {
        if (s_starts(slug, sl, *r)) {
            slug += strlen(*r);
            sl -= strlen(*r);
            break;
        }
    }
    const char *dot = memchr(slug, '.', sl);
    if (dot) {
        const char *vendor = s_author_of(slug, (size_t)(dot - slug));
        if (vendor) {
            author = vendor;
            sl -= (size_t)(dot + 1 - slug);
            slug = (char *)dot + 1;
            sl = s_strip_bedrock_version(slug, sl);
        }
    }
    /* 3. Vertex "@version", "-latest", an 8-digit date. */
    char *at = memchr(slug, '@', sl);
    if (at && at > slug) {
        sl = (size_t)(at - slug);
    }
    if (s_ends(slug, sl, "-latest")) {
        sl -= 7;
    }
    sl = s_strip_compact_date(slug, sl);
    if (sl == 0) {
        return 0;
    }
    char sbuf[ENG_CATALOG_MAX_ID + 8];
    memcpy(sbuf, slug, sl);
    sbuf[sl] = '\0';
    /* 4. Family rewrites, 5. author from the family or the provider. */
    sl = s_family_rewrite(sbuf, sl, sizeof sbuf);
    if (!author) {
        author = s_family_author(sbuf, sl);
    }
    char pbuf[64];
    if (!author) {
        size_t pl = provider
                        ? eng_cat_normalize_provider(provider, strlen(provider), pbuf, sizeof pbuf)
                        : 0;
        author = pl ? pbuf : "unknown";
    }
    size_t al = strlen(author);
    if (al + 1 + sl + 1 > n) {
        return 0;
    }
    memcpy(out, author, al);
    out[al] = '/';
    memcpy(out + al + 1, sbuf, sl);
    out[al + 1 + sl] = '\0';
    return al + 1 + sl;
}

typedef struct {
    const char *prefix; /* normalised spelling prefix */
    const char *name;   /* canonical provider */
} s_provider_family_t;

static const s_provider_family_t s_provider_families[] = {
    {"bedrock", "bedrock"}, {"vertex-ai", "vertex-ai"},  {"azure-openai", "azure"},
    {"gemini", "google"},   {"together-ai", "together"}, {"together", "together"},
    {NULL, NULL},
};

size_t eng_cat_normalize_provider(const char *p, size_t len, char *out, size_t n)
{
    if (n == 0) {
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n; i++) {
        char c = p[i];
        c = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        out[k++] = c == '_' ? '-' : c;
    }
    out[k] = '\0';
    for (const s_provider_family_t *f = s_provider_families; f->prefix; f++) {
        if (s_starts(out, k, f->prefix)) {
            size_t nl = strlen(f->name);
            if (nl < n) {
                memcpy(out, f->name, nl + 1);
                k = nl;
            }
            break;
        }
    }
    return k;
}

bool eng_cat_provider_is_local(const char *p)
{
    for (const char *const *l = s_local_providers; *l; l++) {
        if (strcmp(p, *l) == 0) {
            return true;
        }
    }
    return false;
}
