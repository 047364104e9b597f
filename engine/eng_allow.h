/* eng_allow.h - the CURVE client allow-list: which public keys may talk to
 * the engine, and which of them are admins.
 *
 * The list is a file, or a directory whose every `*.pub` file counts (read
 * in name order, so errors and logs are reproducible). Each line that is not
 * blank or a comment ('#' first) is
 *
 *     <40-character Z85 public key> [admin] [name or # comment]
 *
 * so a `NAME.pub` made by `hpp-engine --curve-keygen` ("<key> NAME") is a
 * client as it is, and becomes an admin when "admin" is written after the
 * key. A key listed twice with the same role counts once; with two roles it
 * is an error, since which one was meant cannot be guessed. Every error
 * names the file and line (eng_error_t, code ENG_ERR_SYNTAX for the text,
 * ENG_ERR_IO for the file system); a list without a single key is refused
 * too, because it would shut every client out.
 */
#ifndef ENG_ALLOW_H
#define ENG_ALLOW_H

#include <stddef.h>
#include <stdint.h>

#include "eng_common.h"

#define ENG_ALLOW_MAX_KEYS 4096          /* keys in one list */
#define ENG_ALLOW_MAX_FILE (1024 * 1024) /* bytes of one file */
#define ENG_ALLOW_MAX_LINE 1024          /* bytes of one line */

/* What a key may do. ENG_ROLE_NONE: not listed. */
typedef enum { ENG_ROLE_NONE = 0, ENG_ROLE_CLIENT, ENG_ROLE_ADMIN } eng_role_t;

/* "client" or "admin" (the ZAP User-Id of the role), "none". */
const char *eng_role_name(eng_role_t role);

typedef struct eng_allow eng_allow_t;

/* An empty list, or NULL when out of memory. */
eng_allow_t *eng_allow_new(void);
void eng_allow_destroy(eng_allow_t **self_p);

/* Adds the keys of one file's text (`file` names it in errors). Returns 0,
 * or -1 with `err` located at the offending line; the list may then hold
 * the keys of the lines before it. */
int eng_allow_parse(eng_allow_t *self, const char *file, const char *text, size_t len,
                    eng_error_t *err);

/* Reads `path` (a file or a directory of *.pub files) into a new list.
 * Returns it, or NULL with `err` filled. */
eng_allow_t *eng_allow_load(const char *path, eng_error_t *err);

/* The role of a raw 32-byte public key (ZAP's CURVE credential). */
eng_role_t eng_allow_find(const eng_allow_t *self, const uint8_t key[32]);

/* Keys listed; `*admins` (may be NULL) receives how many are admins. */
size_t eng_allow_count(const eng_allow_t *self, size_t *admins);

#endif
