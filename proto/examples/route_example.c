/* route_example.c - the smallest useful program on the public client API
 * (hpprouter/client.h, libhppclient): it includes nothing else of the
 * project, and builds against the installed library alone:
 *
 *   cc route_example.c $(pkg-config --cflags --libs hppclient)
 *
 *   route_example --engine tcp://127.0.0.1:5555 --prompt-tokens 1200 --hint code
 *   route_example --engine tcp://127.0.0.1:5555 --op models
 *   route_example --engine tcp://10.0.0.1:5555 --engine tcp://10.0.0.2:5555 \
 *       --curve-server-key keys/engine.pub --curve-secret keys/gateway.sec --op ping
 *
 * Sends one request and prints the engine's reply as one line of JSON.
 * With several --engine, the client connects to all of them and the
 * request goes to one (resent to the next if unanswered).
 * Exit status: 0 ok (also --help), 1 the engine answered an error or did
 * not answer in time, 2 bad flags or key files.
 */
#include <hpprouter/client.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the usage: to stdout for --help (msg NULL, exit 0), else to
 * stderr after the complaint (exit 2). */
static int s_usage(const char *msg)
{
    fprintf(msg ? stderr : stdout,
            "%s%s%s"
            "usage: route_example --engine ENDPOINT [--engine ENDPOINT]...\n"
            "         [--curve-server-key FILE --curve-secret FILE]\n"
            "         [--op route|explain|models|stats|reload|ping]\n"
            "         [--model ID] [--prompt-tokens N] [--output-tokens N] [--images N]\n"
            "         [--tools] [--json] [--vision] [--hint WORD]... [--budget USD]\n"
            "         [--group NAME] [--text SAMPLE] [--timeout-ms N]\n"
            "--engine: repeat it (up to %d) to connect to several engines; each request\n"
            "          goes to one of them, and to the next if it does not answer\n"
            "--curve-server-key: the engines' CURVE public key file; --curve-secret: this\n"
            "          client's secret key file (mode 0600, hpp-engine --curve-keygen)\n",
            msg ? "route_example: " : "", msg ? msg : "", msg ? "\n" : "",
            HPP_CLIENT_MAX_ENDPOINTS);
    return msg ? 2 : 0;
}

static int s_num(const char *s, long long max, long long *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0 || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Flags that set a feature of the request, by wire key and type. */
typedef enum { S_STR, S_INT, S_NUM, S_BOOL, S_ADD } s_type_t;

static const struct {
    const char *flag;
    const char *key;
    s_type_t type;
} s_flags[] = {
    {"--op", "op", S_STR},
    {"--model", "model", S_STR},
    {"--group", "group", S_STR},
    {"--text", "text", S_STR},
    {"--hint", "hints", S_ADD},
    {"--budget", "budget_usd", S_NUM},
    {"--prompt-tokens", "prompt_tokens", S_INT},
    {"--output-tokens", "output_tokens", S_INT},
    {"--images", "images", S_INT},
    {"--tools", "tools", S_BOOL},
    {"--json", "json", S_BOOL},
    {"--vision", "vision", S_BOOL},
};

/* Sets the feature of flag `i` from `v`; 0 or a message. */
static const char *s_set(hpp_request_t *req, size_t i, const char *v)
{
    const char *key = s_flags[i].key;
    long long n = 0;
    char *end = NULL;
    int rc = 0;
    switch (s_flags[i].type) {
    case S_STR:
        rc = hpp_request_set_str(req, key, v);
        break;
    case S_ADD:
        rc = hpp_request_add_str(req, key, v);
        break;
    case S_BOOL:
        rc = hpp_request_set_bool(req, key, true);
        break;
    case S_INT:
        if (s_num(v, LLONG_MAX, &n) != 0) {
            return "expected a non-negative integer";
        }
        rc = hpp_request_set_int(req, key, n);
        break;
    case S_NUM:
        rc = hpp_request_set_num(req, key, strtod(v, &end));
        if (!*v || *end) {
            return "expected a number";
        }
        break;
    }
    return rc == 0 ? NULL : hpp_request_errstr(req);
}

/* Sends the request, prints the reply as JSON; the exit status. */
static int s_run(const hpp_client_opts_t *opts, hpp_request_t *req, int timeout)
{
    char err[512];
    hpp_client_t *c = hpp_client_new_opts(opts, NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "route_example: %s\n", err);
        return 2;
    }
    hpp_reply_t *rep = hpp_reply_new();
    int rc = rep ? hpp_client_request(c, req, rep, timeout) : HPP_ERR_NOMEM;
    char *json = hpp_reply_json(rep);
    if (json) {
        printf("%s\n", json);
        free(json);
    }
    if (rc != HPP_CLIENT_OK) {
        fprintf(stderr, "route_example: %s: %s\n", hpp_strerror(rc), hpp_client_errstr(c));
    }
    hpp_reply_destroy(&rep);
    hpp_client_destroy(&c);
    return rc == HPP_CLIENT_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *endpoints[HPP_CLIENT_MAX_ENDPOINTS];
    hpp_client_opts_t opts;
    hpp_client_opts_init(&opts);
    opts.endpoints = endpoints;
    long long timeout = 1000;
    hpp_request_t *req = hpp_request_new();
    if (!req) {
        fprintf(stderr, "route_example: out of memory\n");
        return 2;
    }
    int status = -1;
    for (int i = 1; i < argc && status < 0; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t f = 0;
        while (f < sizeof s_flags / sizeof s_flags[0] && strcmp(a, s_flags[f].flag) != 0) {
            f++;
        }
        bool known = f < sizeof s_flags / sizeof s_flags[0];
        bool takes = !known || s_flags[f].type != S_BOOL;
        const char *why = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            status = s_usage(NULL);
            break;
        }
        if (takes && !v) {
            why = "missing value or unknown flag";
        } else if (known) {
            why = s_set(req, f, v);
        } else if (!strcmp(a, "--engine")) {
            why = opts.nendpoints >= HPP_CLIENT_MAX_ENDPOINTS ? "too many --engine" : NULL;
            endpoints[opts.nendpoints < HPP_CLIENT_MAX_ENDPOINTS ? opts.nendpoints++ : 0] = v;
        } else if (!strcmp(a, "--curve-server-key")) {
            opts.curve_server_key = v;
        } else if (!strcmp(a, "--curve-secret")) {
            opts.curve_secret_key = v;
        } else if (!strcmp(a, "--timeout-ms")) {
            why = s_num(v, 100000000, &timeout) != 0 ? "expected a non-negative integer" : NULL;
        } else {
            why = "unknown flag";
        }
        if (why) {
            status = s_usage(why);
        }
        i += takes;
    }
    if (status < 0 && opts.nendpoints == 0) {
        status = s_usage("--engine is required");
    }
    if (status < 0) {
        status = s_run(&opts, req, (int)timeout);
    }
    hpp_request_destroy(&req);
    return status;
}
