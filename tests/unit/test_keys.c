/* test_keys.c - CURVE key files (proto/hpp_keys.h): generation, modes,
 * reading, and the located refusals. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "test_tmpdir.h"
#include "hpp_keys.h"

static char s_dir[64];

static void s_setup(void)
{
    cr_assert_eq(test_tmpdir_make(s_dir, sizeof s_dir, "keys"), 0, "%s", s_dir);
}

static void s_teardown(void)
{
    cr_assert_eq(test_tmpdir_remove(s_dir), 0, "%s", s_dir);
}

static void s_write(const char *name, const char *text, mode_t mode)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
}

TestSuite(hpp_keys, .init = s_setup, .fini = s_teardown);

Test(hpp_keys, generated_pair_reads_back_and_matches)
{
    char err[256], dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/state", s_dir);
    cr_assert_eq(hpp_key_generate(dir, "engine", err, sizeof err), 0, "%s", err);
    struct stat st;
    snprintf(path, sizeof path, "%s/engine.sec", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/engine.pub", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);

    hpp_key_t pub, sec, derived;
    cr_assert_eq(hpp_key_read_public(path, &pub, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/engine.sec", dir);
    cr_assert_eq(hpp_key_read_secret(path, &sec, &derived, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(pub.z85, derived.z85);
    cr_assert_str_neq(pub.z85, sec.z85);
    /* Never replaced. */
    cr_assert_eq(hpp_key_generate(dir, "engine", err, sizeof err), -1);
    cr_assert(strstr(err, "exists already"), "%s", err);
}

Test(hpp_keys, secret_readable_by_others_is_refused)
{
    char pub[41], sec[41], text[64], path[128], err[256];
    cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "%s\n", sec);
    s_write("open.sec", text, 0644);
    snprintf(path, sizeof path, "%s/open.sec", s_dir);
    hpp_key_t k;
    cr_assert_eq(hpp_key_read_secret(path, &k, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "mode 644"), "%s", err);
}

Test(hpp_keys, comments_blank_lines_and_trailing_words)
{
    char pub[41], sec[41], text[128], path[128], err[256];
    cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "# gateway 1\n\n  %s admin # note\n", pub);
    s_write("gw.pub", text, 0644);
    snprintf(path, sizeof path, "%s/gw.pub", s_dir);
    hpp_key_t k;
    cr_assert_eq(hpp_key_read_public(path, &k, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(k.z85, pub);
}

Test(hpp_keys, bad_files_are_located)
{
    char path[128], err[256];
    hpp_key_t k;
    s_write("short.pub", "# c\nabc\n", 0600);
    snprintf(path, sizeof path, "%s/short.pub", s_dir);
    cr_assert_eq(hpp_key_read_public(path, &k, err, sizeof err), -1);
    cr_assert(strstr(err, "short.pub:2: expected a 40-character Z85 key"), "%s", err);
    s_write("empty.pub", "\n# only a comment\n", 0600);
    snprintf(path, sizeof path, "%s/empty.pub", s_dir);
    cr_assert_eq(hpp_key_read_public(path, &k, err, sizeof err), -1);
    cr_assert(strstr(err, "no key in the file"), "%s", err);
    snprintf(path, sizeof path, "%s/absent.pub", s_dir);
    cr_assert_eq(hpp_key_read_public(path, &k, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot open"), "%s", err);
    /* 40 characters that are not Z85 (a quote is not in its alphabet). */
    s_write("bad.pub",
            "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\n",
            0600);
    snprintf(path, sizeof path, "%s/bad.pub", s_dir);
    cr_assert_eq(hpp_key_read_public(path, &k, err, sizeof err), -1);
}

Test(hpp_keys, names_are_checked)
{
    char err[256];
    cr_assert_eq(hpp_key_generate(s_dir, "../x", err, sizeof err), -1);
    cr_assert(strstr(err, "key name"), "%s", err);
    cr_assert_eq(hpp_key_generate(s_dir, "", err, sizeof err), -1);
}

/* A damaged secret file is reported without its content. */
Test(hpp_keys, a_bad_secret_line_is_not_quoted)
{
    char path[128], err[256];
    hpp_key_t k;
    s_write("bad.sec", "SECRETSECRETSECRET\n", 0600);
    snprintf(path, sizeof path, "%s/bad.sec", s_dir);
    cr_assert_eq(hpp_key_read_secret(path, &k, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "bad.sec:1: expected a 40-character Z85 key, got 18 characters"), "%s",
              err);
    cr_assert_null(strstr(err, "SECRET"), "%s", err);
}

/* A FIFO in a key file's place is refused at once, not waited on. */
Test(hpp_keys, a_fifo_is_refused_without_blocking, .timeout = 5)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/fifo.pub", s_dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    hpp_key_t k;
    cr_assert_eq(hpp_key_read_public(path, &k, err, sizeof err), -1);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
    cr_assert_eq(hpp_key_read_secret(path, &k, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/* The name is written as a comment: a pair named "admin" reads as a plain
 * key line, never as one carrying the admin mark. */
Test(hpp_keys, the_public_file_names_the_key_in_a_comment)
{
    char err[256], path[128], line[128];
    cr_assert_eq(hpp_key_generate(s_dir, "admin", err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/admin.pub", s_dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert_str_eq(line + HPP_KEY_LEN, " # admin\n");
    cr_assert(hpp_key_name_valid("gw-1.eu"));
    cr_assert_not(hpp_key_name_valid(".hidden"));
}

/* A client's keys: loaded from the engine's .pub and its own .sec, applied
 * to a socket, wiped. */
Test(hpp_keys, curve_client_load_apply_wipe)
{
    char err[256], spub[128], csec[128];
    cr_assert_eq(hpp_key_generate(s_dir, "engine", err, sizeof err), 0, "%s", err);
    cr_assert_eq(hpp_key_generate(s_dir, "gw", err, sizeof err), 0, "%s", err);
    snprintf(spub, sizeof spub, "%s/engine.pub", s_dir);
    snprintf(csec, sizeof csec, "%s/gw.sec", s_dir);
    hpp_curve_client_t c;
    cr_assert_eq(hpp_curve_client_load(&c, spub, csec, err, sizeof err), 0, "%s", err);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    cr_assert_eq(hpp_curve_client_apply(&c, sock, err, sizeof err), 0, "%s", err);
    int is_server = 1;
    size_t len = sizeof is_server;
    cr_assert_eq(zmq_getsockopt(sock, ZMQ_CURVE_SERVER, &is_server, &len), 0);
    cr_assert_eq(is_server, 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    hpp_curve_client_wipe(&c);
    cr_assert_eq(c.secret.z85[0], '\0');
    /* A missing file is named. */
    cr_assert_eq(hpp_curve_client_load(&c, spub, "/nonexistent/gw.sec", err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/gw.sec: cannot open"), "%s", err);
}
