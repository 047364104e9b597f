/* test_allow.c - the CURVE client allow-list (engine/eng_allow.h): the line
 * format, roles, duplicates, directories of *.pub files, and errors that
 * name file, line and column. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "test_tmpdir.h"
#include "eng_allow.h"

static char s_dir[64];

static void s_setup(void)
{
    cr_assert_eq(test_tmpdir_make(s_dir, sizeof s_dir, "allow"), 0, "%s", s_dir);
}

static void s_teardown(void)
{
    cr_assert_eq(test_tmpdir_remove(s_dir), 0, "%s", s_dir);
}

static void s_write(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fresh key pair's public half, as text and raw. */
typedef struct {
    char z85[41];
    uint8_t raw[32];
} s_key_t;

static s_key_t s_key(void)
{
    s_key_t k;
    char sec[41];
    cr_assert_eq(zmq_curve_keypair(k.z85, sec), 0);
    cr_assert_not_null(zmq_z85_decode(k.raw, k.z85));
    return k;
}

/* Parses `text` as one file; returns the list (or NULL) and the error. */
static eng_allow_t *s_parse(const char *text, eng_error_t *err, char *msg, size_t n)
{
    eng_allow_t *a = eng_allow_new();
    cr_assert_not_null(a);
    memset(err, 0, sizeof *err);
    if (eng_allow_parse(a, "keys.txt", text, strlen(text), err) != 0) {
        eng_error_format(err, msg, n);
        eng_allow_destroy(&a);
    }
    return a;
}

TestSuite(eng_allow, .init = s_setup, .fini = s_teardown);

Test(eng_allow, roles_comments_and_names)
{
    s_key_t a = s_key(), b = s_key(), c = s_key(), d = s_key();
    char text[512], msg[512];
    snprintf(text, sizeof text,
             "\xef\xbb\xbf# who may connect\n"
             "%s\n"
             "  %s admin ops team # pager\r\n"
             "\n"
             "\t%s gateway-1\n"
             "%s # admin is in a comment here, not a mark\n",
             a.z85, b.z85, c.z85, d.z85);
    eng_error_t err;
    eng_allow_t *l = s_parse(text, &err, msg, sizeof msg);
    cr_assert_not_null(l, "%s", msg);
    size_t admins = 0;
    cr_assert_eq(eng_allow_count(l, &admins), 4);
    cr_assert_eq(admins, 1);
    cr_assert_eq(eng_allow_find(l, a.raw), ENG_ROLE_CLIENT);
    cr_assert_eq(eng_allow_find(l, b.raw), ENG_ROLE_ADMIN);
    cr_assert_eq(eng_allow_find(l, c.raw), ENG_ROLE_CLIENT);
    cr_assert_eq(eng_allow_find(l, d.raw), ENG_ROLE_CLIENT);
    s_key_t stranger = s_key();
    cr_assert_eq(eng_allow_find(l, stranger.raw), ENG_ROLE_NONE);
    cr_assert_str_eq(eng_role_name(ENG_ROLE_ADMIN), "admin");
    cr_assert_str_eq(eng_role_name(ENG_ROLE_CLIENT), "client");
    eng_allow_destroy(&l);
    eng_allow_destroy(&l); /* idempotent */
}

Test(eng_allow, errors_name_file_line_and_column)
{
    s_key_t a = s_key();
    char ok_line[128];
    snprintf(ok_line, sizeof ok_line, "%s\n", a.z85);
    struct {
        const char *tail; /* after one good line */
        const char *says; /* in the formatted error */
    } cases[] = {
        {"short-key admin\n", "keys.txt:2:1: error: expected a 40-character Z85 public key, got 9 "
                              "characters \"short-ke...\""},
        {"  ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n", "keys.txt:2:3: error: expected a"},
        {"KEY Admin\n", "keys.txt:2:42: error: write the admin mark as \"admin\""},
        {"KEY admin\n", "keys.txt:2:1: error: key listed as admin here and as client at "
                        "keys.txt:1"},
        {"bin\x01"
         "ary\n",
         "keys.txt:2:4: error: control byte 0x01"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[2048], tail[256], msg[512] = "";
        /* "KEY" stands for the good line's key. */
        const char *k = strstr(cases[i].tail, "KEY");
        if (k) {
            snprintf(tail, sizeof tail, "%s%s", a.z85, k + 3);
        } else {
            snprintf(tail, sizeof tail, "%s", cases[i].tail);
        }
        snprintf(text, sizeof text, "%s%s", ok_line, tail);
        eng_error_t err;
        eng_allow_t *l = s_parse(text, &err, msg, sizeof msg);
        cr_assert_null(l, "case %zu parsed", i);
        cr_assert(strstr(msg, cases[i].says), "case %zu: [%s] not in [%s]", i, cases[i].says, msg);
    }
    /* A line longer than the limit. */
    char *big = malloc(ENG_ALLOW_MAX_LINE + 8);
    memset(big, 'x', ENG_ALLOW_MAX_LINE + 2);
    big[ENG_ALLOW_MAX_LINE + 2] = '\0';
    eng_error_t err;
    char msg[512] = "";
    cr_assert_null(s_parse(big, &err, msg, sizeof msg));
    cr_assert(strstr(msg, "keys.txt:1:1: error: line longer than"), "%s", msg);
    free(big);
}

Test(eng_allow, a_repeated_key_with_the_same_role_counts_once)
{
    s_key_t a = s_key();
    char text[256], msg[512] = "";
    snprintf(text, sizeof text, "%s alice\n%s alice again\n", a.z85, a.z85);
    eng_error_t err;
    eng_allow_t *l = s_parse(text, &err, msg, sizeof msg);
    cr_assert_not_null(l, "%s", msg);
    cr_assert_eq(eng_allow_count(l, NULL), 1);
    eng_allow_destroy(&l);
}

Test(eng_allow, a_directory_reads_its_pub_files_in_name_order)
{
    s_key_t a = s_key(), b = s_key(), c = s_key();
    char text[256], path[128];
    snprintf(text, sizeof text, "%s admin root\n", a.z85);
    s_write("b-root.pub", text);
    snprintf(text, sizeof text, "%s gateway\n", b.z85);
    s_write("a-gateway.pub", text);
    snprintf(text, sizeof text, "%s hidden\n", c.z85);
    s_write(".hidden.pub", text); /* an editor's or a half-copied file */
    s_write("engine.sec", "not read: not a .pub file\n");
    s_write("notes.txt", "not read either\n");
    eng_error_t err = {0};
    eng_allow_t *l = eng_allow_load(s_dir, &err);
    cr_assert_not_null(l, "%s", err.msg);
    size_t admins = 0;
    cr_assert_eq(eng_allow_count(l, &admins), 2);
    cr_assert_eq(admins, 1);
    cr_assert_eq(eng_allow_find(l, a.raw), ENG_ROLE_ADMIN);
    cr_assert_eq(eng_allow_find(l, b.raw), ENG_ROLE_CLIENT);
    cr_assert_eq(eng_allow_find(l, c.raw), ENG_ROLE_NONE);
    eng_allow_destroy(&l);

    /* A conflict across files names both, the earlier file first read. */
    snprintf(text, sizeof text, "%s\n", a.z85);
    s_write("c-again.pub", text);
    l = eng_allow_load(s_dir, &err);
    cr_assert_null(l);
    char msg[768];
    eng_error_format(&err, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/c-again.pub:1:1: error: key listed as client here", s_dir);
    cr_assert(strstr(msg, path), "%s", msg);
    cr_assert(strstr(msg, "b-root.pub:1"), "%s", msg);
}

Test(eng_allow, an_empty_list_is_refused)
{
    eng_error_t err = {0};
    char msg[768];
    /* A directory without a *.pub file. */
    s_write("README", "keys go here\n");
    cr_assert_null(eng_allow_load(s_dir, &err));
    eng_error_format(&err, msg, sizeof msg);
    cr_assert(strstr(msg, "no *.pub file"), "%s", msg);
    /* A file of comments only. */
    s_write("only-comments.pub", "# nobody yet\n\n");
    cr_assert_null(eng_allow_load(s_dir, &err));
    eng_error_format(&err, msg, sizeof msg);
    cr_assert(strstr(msg, "no key in the allow-list"), "%s", msg);
    /* A path that is not there. */
    char path[128];
    snprintf(path, sizeof path, "%s/missing", s_dir);
    cr_assert_null(eng_allow_load(path, &err));
    cr_assert_eq(err.code, ENG_ERR_IO);
    eng_error_format(&err, msg, sizeof msg);
    cr_assert(strstr(msg, "missing: error: cannot open"), "%s", msg);
}

/* The review's cases: a FIFO must not hang the reader, a list others may
 * write is refused, and the admin mark after a name is an error, not a
 * client named "ops admin". */
Test(eng_allow, a_fifo_a_writable_list_and_a_late_admin_mark, .timeout = 5)
{
    s_key_t a = s_key();
    char text[256], path[128], msg[768];
    eng_error_t err = {0};
    snprintf(text, sizeof text, "%s gateway\n", a.z85);
    s_write("a.pub", text);
    snprintf(path, sizeof path, "%s/z.pub", s_dir);
    cr_assert_eq(mkfifo(path, 0644), 0);
    cr_assert_null(eng_allow_load(s_dir, &err));
    eng_error_format(&err, msg, sizeof msg);
    cr_assert(strstr(msg, "z.pub") && strstr(msg, "not a regular file"), "%s", msg);
    cr_assert_eq(unlink(path), 0);

    snprintf(path, sizeof path, "%s/a.pub", s_dir);
    cr_assert_eq(chmod(path, 0666), 0);
    cr_assert_null(eng_allow_load(path, &err));
    eng_error_format(&err, msg, sizeof msg);
    cr_assert(strstr(msg, "writable by group or others (mode 666)"), "%s", msg);
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(chmod(s_dir, 0777), 0);
    cr_assert_null(eng_allow_load(s_dir, &err));
    cr_assert_eq(chmod(s_dir, 0700), 0);

    snprintf(text, sizeof text, "%s ops admin\n", a.z85);
    eng_allow_t *l = s_parse(text, &err, msg, sizeof msg);
    cr_assert_null(l);
    cr_assert(strstr(msg, "keys.txt:1:46: error: \"admin\" inside the name"), "%s", msg);
}
