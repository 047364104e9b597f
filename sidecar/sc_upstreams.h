/* sc_upstreams.h - the proxy's upstream table: which base URL serves each
 * provider the engine may choose, and with which credential.
 *
 * One provider a line, then its base URL (what OpenAI SDKs call base_url),
 * then key=value options:
 *
 *   # provider   base URL                        options
 *   ollama       http://127.0.0.1:11434/v1
 *   openrouter   http://127.0.0.1:8081/api/v1    key_env=OPENROUTER_API_KEY
 *   acme         http://127.0.0.1:8082/v1        key=sk-...  key_header=x-api-key
 *   *            http://127.0.0.1:8083/v1        key_env=GATEWAY_KEY
 *
 * - Provider names are the catalog's, compared ASCII case-insensitively;
 *   `*` serves every provider without a line of its own. Without a `*` line
 *   only the listed providers are reachable (at most HPP_MAX_PROVIDERS), and
 *   the sidecar tells the engine so, so that nothing else is chosen.
 * - Only http:// (terminate TLS in the gateway or a local forward proxy); no
 *   query, fragment or user info. Host names are resolved when the proxy
 *   builds its pools, not here.
 * - Credentials: `key_env=NAME` reads the environment variable NAME when the
 *   file is loaded; `key=SECRET` holds it in the file, which must then be
 *   readable by its owner only (mode 0600 or stricter). The key is sent as
 *   `Authorization: Bearer KEY`, or as the raw value of `key_header=NAME`.
 *   Messages name the line and the variable, never a key.
 * - Blank lines and '#' comments are ignored; anything else that is wrong is
 *   an error naming FILE:LINE:COL, and a table is all or nothing, so a bad
 *   reload leaves the last good table serving.
 */
#ifndef SC_UPSTREAMS_H
#define SC_UPSTREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpp_request.h"

#define SC_UPSTREAMS_MAX_FILE (1u << 20)           /* bytes of an upstream file at most */
#define SC_UPSTREAMS_MAX (HPP_MAX_PROVIDERS + 1)   /* lines: named providers + `*` */
#define SC_UPSTREAMS_MAX_KEY 4096                  /* bytes of a credential at most */
#define SC_UPSTREAMS_CHAT_PATH "/chat/completions" /* appended to the base path */

/* One line of the table. */
typedef struct {
    char provider[HPP_MAX_PROVIDER_LEN + 1]; /* as written; "*" = every other provider */
    char host[256];                          /* from the URL, not resolved */
    int port;                                /* 80 when the URL has none */
    char hostport[264];                      /* the Host header */
    char path[512];                          /* base path + SC_UPSTREAMS_CHAT_PATH */
    char key_header[64];                     /* header that carries the key; "" = none */
    char *key_value;                         /* its value (secret, wiped on destroy); NULL = none */
    uint32_t line;                           /* where it was defined */
} sc_upstream_def_t;

typedef struct sc_upstreams sc_upstreams_t;

/* Parses an upstream file's text; `name` is the file name for messages.
 * `private_file` says whether the file is readable by its owner only
 * (inline `key=` is refused otherwise). Returns a table, or NULL with
 * "NAME:LINE:COL: what" in errbuf. The text may hold any bytes. */
sc_upstreams_t *sc_upstreams_parse(const char *text, size_t len, const char *name,
                                   bool private_file, char *errbuf, size_t errlen);

/* Reads and parses the file at `path` (a regular file of at most
 * SC_UPSTREAMS_MAX_FILE bytes). NULL with the reason in errbuf. */
sc_upstreams_t *sc_upstreams_load(const char *path, char *errbuf, size_t errlen);

/* Wipes the credentials and frees the table; sets *self_p to NULL. Idempotent. */
void sc_upstreams_destroy(sc_upstreams_t **self_p);

/* Lines in the table, and the i-th (in file order). */
size_t sc_upstreams_count(const sc_upstreams_t *self);
const sc_upstream_def_t *sc_upstreams_get(const sc_upstreams_t *self, size_t i);

/* The line that serves `provider` (len bytes): its own, else `*`, else NULL.
 * No allocation. */
const sc_upstream_def_t *sc_upstreams_find(const sc_upstreams_t *self, const char *provider,
                                           size_t len);

/* When the table has no `*` line, fills out[] with the named providers (at
 * most HPP_MAX_PROVIDERS, views into the table) and returns how many; with a
 * `*` line every provider is reachable and it returns 0. */
uint32_t sc_upstreams_reachable(const sc_upstreams_t *self, hpp_str_t out[HPP_MAX_PROVIDERS]);

#endif
