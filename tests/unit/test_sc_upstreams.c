/* test_sc_upstreams.c - the proxy's upstream file (sidecar/sc_upstreams.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_upstreams.h"

static char s_err[512];

static sc_upstreams_t *s_parse(const char *text, bool private_file)
{
    s_err[0] = '\0';
    return sc_upstreams_parse(text, strlen(text), "up", private_file, s_err, sizeof s_err);
}

Test(sc_upstreams, maps_providers_to_urls_and_credentials)
{
    setenv("HPP_TEST_OR_KEY", "sk-or-123", 1);
    sc_upstreams_t *t = s_parse("# providers\n"
                                "ollama   http://127.0.0.1:11434/v1\n"
                                "OpenRouter http://127.0.0.1:8081/api/v1/ key_env=HPP_TEST_OR_KEY\n"
                                "acme http://localhost key=sk-acme key_header=x-api-key # note\n",
                                true);
    cr_assert_not_null(t, "%s", s_err);
    cr_assert_eq(sc_upstreams_count(t), 3);
    const sc_upstream_def_t *o = sc_upstreams_find(t, "ollama", 6);
    cr_assert_not_null(o);
    cr_assert_str_eq(o->host, "127.0.0.1");
    cr_assert_eq(o->port, 11434);
    cr_assert_str_eq(o->hostport, "127.0.0.1:11434");
    cr_assert_str_eq(o->path, "/v1/chat/completions");
    cr_assert_null(o->key_value);
    const sc_upstream_def_t *r = sc_upstreams_find(t, "openrouter", 10);
    cr_assert_not_null(r, "names compare case-insensitively");
    cr_assert_str_eq(r->path, "/api/v1/chat/completions");
    cr_assert_str_eq(r->key_header, "Authorization");
    cr_assert_str_eq(r->key_value, "Bearer sk-or-123");
    const sc_upstream_def_t *a = sc_upstreams_find(t, "acme", 4);
    cr_assert_str_eq(a->hostport, "localhost");
    cr_assert_eq(a->port, 80);
    cr_assert_str_eq(a->path, "/v1/chat/completions", "an empty path means /v1");
    cr_assert_str_eq(a->key_header, "x-api-key");
    cr_assert_str_eq(a->key_value, "sk-acme");
    cr_assert_null(sc_upstreams_find(t, "openai", 6), "no line and no '*'");
    hpp_str_t reach[HPP_MAX_PROVIDERS];
    cr_assert_eq(sc_upstreams_reachable(t, reach), 3);
    cr_assert_eq(reach[1].len, 10);
    cr_assert(memcmp(reach[1].ptr, "OpenRouter", 10) == 0);
    sc_upstreams_destroy(&t);
    sc_upstreams_destroy(&t); /* idempotent */
    unsetenv("HPP_TEST_OR_KEY");
}

Test(sc_upstreams, star_serves_the_rest_and_makes_every_provider_reachable)
{
    sc_upstreams_t *t =
        s_parse("ollama http://127.0.0.1:11434/v1\n* http://127.0.0.1:9/v1\n", false);
    cr_assert_not_null(t, "%s", s_err);
    cr_assert_str_eq(sc_upstreams_find(t, "ollama", 6)->provider, "ollama");
    cr_assert_str_eq(sc_upstreams_find(t, "openai", 6)->provider, "*");
    hpp_str_t reach[HPP_MAX_PROVIDERS];
    cr_assert_eq(sc_upstreams_reachable(t, reach), 0);
    sc_upstreams_destroy(&t);
}

/* Each bad line is refused with its location and a message that never
 * quotes a secret. */
Test(sc_upstreams, refuses_bad_lines_with_their_location)
{
    static const struct {
        const char *text;
        bool private_file;
        const char *want;
    } cases[] = {
        {"a https://h/v1\n", true, "up:1:3: only http://"},
        {"a http://u:p@h/v1\n", true, "up:1:3: no query, fragment or user info"},
        {"a http://h/v1?x=1\n", true, "up:1:3: no query"},
        {"a not-a-url\n", true, "up:1:3: "},
        {"\n\na\n", true, "up:3:2: provider 'a': expected its base URL"},
        {"a http://h/v1\nA http://g/v1\n", true,
         "up:2:1: provider 'A' already has an upstream (line 1)"},
        {"* http://h/v1\n* http://g/v1\n", true, "up:2:1: provider '*' already has"},
        {"a http://h/v1 key=sk-secret\n", false,
         "up:1:15: key= holds a secret, but the file is readable"},
        {"a http://h/v1 key=sk-1 key_env=X\n", true, "up:1:24: one of key= or key_env="},
        {"a http://h/v1 key_env=HPP_TEST_UNSET_VAR\n", true,
         "up:1:1: provider 'a': the environment variable HPP_TEST_UNSET_VAR is not set"},
        {"a http://h/v1 key_env=1X\n", true, "up:1:23: key_env: expected an environment variable"},
        {"a http://h/v1 key_header=x-api-key\n", true, "up:1:1: provider 'a': key_header without"},
        {"a http://h/v1 key_header=bad:name key=k\n", true, "up:1:26: key_header: expected"},
        {"a http://h/v1 colour=blue\n", true, "up:1:15: unknown option 'colour'"},
        {"a http://h/v1 bare\n", true, "up:1:15: expected key=value"},
        {"a http://h/v1\x01\n", true, "up:1:14: control character 0x01"},
        {"# nothing\n\n", true, "up:2:1: no upstream"},
    };
    unsetenv("HPP_TEST_UNSET_VAR");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_upstreams_t *t = s_parse(cases[i].text, cases[i].private_file);
        cr_expect_null(t, "case %zu parsed", i);
        cr_expect(strncmp(s_err, cases[i].want, strlen(cases[i].want)) == 0,
                  "case %zu: got '%s', want '%s...'", i, s_err, cases[i].want);
        cr_expect(strstr(s_err, "sk-secret") == NULL && strstr(s_err, "sk-1") == NULL,
                  "case %zu quotes a secret: %s", i, s_err);
        sc_upstreams_destroy(&t);
    }
}

Test(sc_upstreams, at_most_sixteen_named_providers)
{
    char text[4096];
    size_t len = 0;
    for (int i = 0; i < HPP_MAX_PROVIDERS + 1; i++) {
        len += (size_t)snprintf(text + len, sizeof text - len, "p%d http://h/v1\n", i);
    }
    cr_assert_null(s_parse(text, true));
    cr_assert(strstr(s_err, "up:17:1: more than 16 providers") == s_err, "%s", s_err);
    snprintf(text + len, sizeof text - len, "* http://h/v1\n");
    char *cut = strstr(text, "p16 ");
    memmove(cut, "* http://h/v1\n", sizeof "* http://h/v1\n");
    sc_upstreams_t *t = s_parse(text, true);
    cr_assert_not_null(t, "16 named and a '*' fit: %s", s_err);
    sc_upstreams_destroy(&t);
    /* A line past the full table is refused, not written past it. */
    strcat(text, "* http://g/v1\n");
    cr_assert_null(s_parse(text, true));
    cr_assert(strstr(s_err, "up:18:1: ") == s_err, "%s", s_err);
}

Test(sc_upstreams, load_checks_the_file_mode_for_inline_keys)
{
    char path[] = "/tmp/hpp-upstreams-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "acme http://127.0.0.1:8082/v1 key=sk-acme\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, 0600);
    sc_upstreams_t *t = sc_upstreams_load(path, s_err, sizeof s_err);
    cr_assert_not_null(t, "%s", s_err);
    sc_upstreams_destroy(&t);
    chmod(path, 0640);
    cr_assert_null(sc_upstreams_load(path, s_err, sizeof s_err));
    cr_assert(strstr(s_err, "readable by group or others") != NULL, "%s", s_err);
    unlink(path);
    cr_assert_null(sc_upstreams_load(path, s_err, sizeof s_err));
    cr_assert(strstr(s_err, "cannot open") != NULL, "%s", s_err);
    cr_assert_null(sc_upstreams_load("/dev/null", s_err, sizeof s_err));
    cr_assert(strstr(s_err, "not a regular file") != NULL, "%s", s_err);
}
