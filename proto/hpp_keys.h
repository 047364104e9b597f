/* hpp_keys.h - CURVE key files, shared by the engine and every client.
 *
 * A key is ZeroMQ's Z85 text of 40 characters (zmq_z85_encode of 32 bytes).
 * A key file holds one key on its first line that is not blank or a
 * comment ('#'); what follows the key on that line (after a space) is left
 * to the caller, e.g. an allow-list's "admin" mark. A secret key file must
 * not be readable by group or others (mode 0600 or stricter): a secret is
 * never taken from argv, and never from a file anyone can read.
 *
 * Every error names the file and, where it applies, the line:
 * "keys/engine.sec:1: expected a 40-character Z85 key".
 */
#ifndef HPP_KEYS_H
#define HPP_KEYS_H

#include <stddef.h>

#define HPP_KEY_LEN 40 /* Z85 characters of a CURVE key */

/* A key as text, NUL-terminated. */
typedef struct {
    char z85[HPP_KEY_LEN + 1];
} hpp_key_t;

/* True when `s` (len bytes) is a valid Z85 CURVE key. */
int hpp_key_valid(const char *s, size_t len);

/* Key files are opened only when they are regular files (a FIFO in their
 * place is refused, not waited on).
 *
 * Reads a public key file into *out. Returns 0, or -1 with the reason in
 * errbuf. */
int hpp_key_read_public(const char *path, hpp_key_t *out, char *errbuf, size_t errlen);

/* Reads a secret key file (mode checked) into *secret, and the matching
 * public key into *public_out (may be NULL). Returns 0, or -1 with the
 * reason in errbuf. */
int hpp_key_read_secret(const char *path, hpp_key_t *secret, hpp_key_t *public_out, char *errbuf,
                        size_t errlen);

/* A CURVE client's keys: the server's public key, its own pair. The engine's
 * clients (the C client library, the sidecar, the bench) all load and apply
 * them the same way. */
typedef struct {
    hpp_key_t server; /* the engine's public key (ZMQ_CURVE_SERVERKEY) */
    hpp_key_t public; /* this client's public key, derived from its secret */
    hpp_key_t secret; /* this client's secret key */
} hpp_curve_client_t;

/* Reads the server's public key file and this client's secret key file.
 * Returns 0, or -1 with the reason in errbuf (nothing of a secret quoted). */
int hpp_curve_client_load(hpp_curve_client_t *c, const char *server_file, const char *secret_file,
                          char *errbuf, size_t errlen);

/* Sets the three CURVE options on a libzmq socket (before it connects).
 * Returns 0, or -1 with the reason (no CURVE in this libzmq, refused). */
int hpp_curve_client_apply(const hpp_curve_client_t *c, void *zmq_socket, char *errbuf,
                           size_t errlen);

/* Clears the keys from memory. */
void hpp_curve_client_wipe(hpp_curve_client_t *c);

/* True when NAME is a usable key name: 1 to 64 characters of
 * [A-Za-z0-9_.-], not starting with '.'. */
int hpp_key_name_valid(const char *name);

/* Makes a new key pair and writes DIR/NAME.pub ("<key> # NAME") and
 * DIR/NAME.sec, both mode 0600, creating DIR (mode 0700) when missing. Refuses to overwrite an
 * existing file. NAME is 1 to 64 characters of [A-Za-z0-9_.-]. Returns 0, or
 * -1 with the reason in errbuf. */
int hpp_key_generate(const char *dir, const char *name, char *errbuf, size_t errlen);

#endif
