/* hpp_keys.c - reading and writing CURVE key files (see hpp_keys.h). The
 * cryptography is libzmq's: keys are made by zmq_curve_keypair and a
 * secret's public half by zmq_curve_public. */
#include "hpp_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int hpp_key_valid(const char *s, size_t len)
{
    if (len != HPP_KEY_LEN) {
        return 0;
    }
    char buf[HPP_KEY_LEN + 1];
    uint8_t raw[32];
    memcpy(buf, s, len);
    buf[len] = '\0';
    return zmq_z85_decode(raw, buf) != NULL;
}

/* Opens `path` for reading only if it is a regular file: opened without
 * blocking first, so a FIFO or a device put in a key's place cannot hang
 * the caller (an engine reading its allow-list on SIGHUP, say). The stdio
 * buffer is off, so no copy of a secret stays in freed memory. */
static FILE *s_open_regular(const char *path, struct stat *st, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(errbuf, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IONBF, 0);
    return f;
}

/* The first key of an open file: its first line that is not blank or a
 * comment, up to the first space. A bad line of a secret file is not quoted
 * in the error: a damaged secret must not reach a log. */
static int s_read_key(FILE *f, const char *path, bool secret, hpp_key_t *out, char *errbuf,
                      size_t errlen)
{
    char line[512];
    int lineno = 0;
    int rc = -1;
    bool bad = false; /* a line was refused (and said so) */
    while (rc != 0 && !bad && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        size_t len = strcspn(p, " \t\r\n");
        if (len == 0 || p[0] == '#') {
            continue;
        }
        if (!hpp_key_valid(p, len)) {
            if (secret) {
                snprintf(errbuf, errlen,
                         "%s:%d: expected a %d-character Z85 key, got %zu characters", path, lineno,
                         HPP_KEY_LEN, len);
            } else {
                snprintf(errbuf, errlen, "%s:%d: expected a %d-character Z85 key, got \"%.*s\"",
                         path, lineno, HPP_KEY_LEN, (int)(len > 48 ? 48 : len), p);
            }
            bad = true;
            continue;
        }
        memcpy(out->z85, p, HPP_KEY_LEN);
        out->z85[HPP_KEY_LEN] = '\0';
        rc = 0;
    }
    explicit_bzero(line, sizeof line);
    if (rc != 0 && !bad) {
        snprintf(errbuf, errlen, "%s: no key in the file", path);
    }
    return rc;
}

int hpp_key_read_public(const char *path, hpp_key_t *out, char *errbuf, size_t errlen)
{
    struct stat st;
    FILE *f = s_open_regular(path, &st, errbuf, errlen);
    if (!f) {
        return -1;
    }
    int rc = s_read_key(f, path, false, out, errbuf, errlen);
    fclose(f);
    return rc;
}

int hpp_key_read_secret(const char *path, hpp_key_t *secret, hpp_key_t *public_out, char *errbuf,
                        size_t errlen)
{
    struct stat st;
    FILE *f = s_open_regular(path, &st, errbuf, errlen);
    if (!f) {
        return -1;
    }
    int rc = -1;
    if (st.st_mode & 077) {
        snprintf(errbuf, errlen,
                 "%s: a secret key file must not be readable by others (mode %03o; "
                 "chmod 600 it)",
                 path, (unsigned)(st.st_mode & 0777));
    } else {
        rc = s_read_key(f, path, true, secret, errbuf, errlen);
    }
    fclose(f);
    if (rc == 0 && public_out && zmq_curve_public(public_out->z85, secret->z85) != 0) {
        snprintf(errbuf, errlen, "%s: not a CURVE secret key", path);
        rc = -1;
    }
    return rc;
}

int hpp_key_name_valid(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= 64 &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789_.-") == n &&
           name[0] != '.';
}

/* Writes `text` to a new file of mode 0600; never replaces one. */
static int s_write_new(const char *path, const char *text, char *errbuf, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(errbuf, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int rc = (n == (ssize_t)len && fsync(fd) == 0) ? 0 : -1;
    if (close(fd) != 0 || rc != 0) {
        snprintf(errbuf, errlen, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int hpp_key_generate(const char *dir, const char *name, char *errbuf, size_t errlen)
{
    if (!hpp_key_name_valid(name)) {
        snprintf(errbuf, errlen,
                 "key name '%s': expected 1 to 64 characters of [A-Za-z0-9_.-], not starting with "
                 "'.'",
                 name);
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "%s: cannot create the directory: %s", dir, strerror(errno));
        return -1;
    }
    char pub[HPP_KEY_LEN + 1], sec[HPP_KEY_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(errbuf, errlen, "cannot make a CURVE key pair: %s (libzmq built without CURVE?)",
                 zmq_strerror(errno));
        return -1;
    }
    char ppath[4096], spath[4096], text[128];
    snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name);
    snprintf(spath, sizeof spath, "%s/%s.sec", dir, name);
    if (access(ppath, F_OK) == 0 || access(spath, F_OK) == 0) {
        snprintf(errbuf, errlen, "%s/%s.pub or .sec exists already: not replaced", dir, name);
        return -1;
    }
    snprintf(text, sizeof text, "%s\n", sec);
    if (s_write_new(spath, text, errbuf, errlen) != 0) {
        return -1;
    }
    /* The name goes in as a comment: a key pair named "admin" must not read
     * as an allow-list line that marks its key an admin. */
    snprintf(text, sizeof text, "%s # %s\n", pub, name);
    if (s_write_new(ppath, text, errbuf, errlen) != 0) {
        unlink(spath);
        return -1;
    }
    return 0;
}

int hpp_curve_client_load(hpp_curve_client_t *c, const char *server_file, const char *secret_file,
                          char *errbuf, size_t errlen)
{
    if (hpp_key_read_public(server_file, &c->server, errbuf, errlen) != 0 ||
        hpp_key_read_secret(secret_file, &c->secret, &c->public, errbuf, errlen) != 0) {
        hpp_curve_client_wipe(c);
        return -1;
    }
    return 0;
}

int hpp_curve_client_apply(const hpp_curve_client_t *c, void *zmq_socket, char *errbuf,
                           size_t errlen)
{
    if (!zmq_has("curve")) {
        snprintf(errbuf, errlen, "CURVE keys given, but this libzmq was built without CURVE");
        return -1;
    }
    /* Z85 text with its NUL: the 41-byte form zmq_setsockopt takes. */
    if (zmq_setsockopt(zmq_socket, ZMQ_CURVE_SERVERKEY, c->server.z85, sizeof c->server.z85) != 0 ||
        zmq_setsockopt(zmq_socket, ZMQ_CURVE_PUBLICKEY, c->public.z85, sizeof c->public.z85) != 0 ||
        zmq_setsockopt(zmq_socket, ZMQ_CURVE_SECRETKEY, c->secret.z85, sizeof c->secret.z85) != 0) {
        snprintf(errbuf, errlen, "CURVE keys refused by libzmq: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void hpp_curve_client_wipe(hpp_curve_client_t *c)
{
    explicit_bzero(c, sizeof *c);
}
