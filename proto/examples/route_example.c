/* route_example.c - the smallest useful program on hpp_client.h.
 *
 *   route_example --engine tcp://127.0.0.1:5555 --prompt-tokens 1200 --hint code
 *   route_example --engine tcp://127.0.0.1:5555 --op models
 *   route_example --engine tcp://10.0.0.1:5555 --engine tcp://10.0.0.2:5555 \
 *       --curve-server-key keys/engine.pub --curve-secret keys/gateway.sec --op ping
 *
 * Sends one request and prints the engine's reply as one line of JSON.
 * With several --engine, the client connects to all of them and the
 * request goes to one (resent to the next if unanswered, hpp_client.h).
 * Exit status: 0 ok (also --help), 1 the engine answered an error or did
 * not answer in time, 2 bad flags or key files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpp_client.h"

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

static hpp_str_t s_str(const char *s)
{
    hpp_str_t r = {s, (uint32_t)strlen(s)};
    return r;
}

int main(int argc, char **argv)
{
    const char *endpoints[HPP_CLIENT_MAX_ENDPOINTS];
    hpp_client_opts_t opts;
    hpp_client_opts_init(&opts);
    opts.endpoints = endpoints;
    long long timeout = 1000, n = 0;
    proto_request_t req;
    proto_request_init(&req, PROTO_OP_ROUTE);
    hpp_features_t *f = &req.features;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return s_usage(NULL);
        }
        if (!strcmp(a, "--tools") || !strcmp(a, "--json") || !strcmp(a, "--vision")) {
            f->tools |= !strcmp(a, "--tools");
            f->json |= !strcmp(a, "--json");
            f->vision |= !strcmp(a, "--vision");
            takes = false;
        } else if (!v) {
            return s_usage("missing value or unknown flag");
        } else if (!strcmp(a, "--engine")) {
            if (opts.nendpoints >= HPP_CLIENT_MAX_ENDPOINTS) {
                return s_usage("too many --engine");
            }
            endpoints[opts.nendpoints++] = v;
        } else if (!strcmp(a, "--curve-server-key")) {
            opts.curve_server_key = v;
        } else if (!strcmp(a, "--curve-secret")) {
            opts.curve_secret_key = v;
        } else if (!strcmp(a, "--op")) {
            int op = proto_op_from_name(v, strlen(v));
            if (op < 0) {
                return s_usage("unknown --op");
            }
            req.op = (proto_op_t)op;
        } else if (!strcmp(a, "--model")) {
            f->model = s_str(v);
        } else if (!strcmp(a, "--group")) {
            f->group = s_str(v);
        } else if (!strcmp(a, "--text")) {
            f->text = s_str(v);
        } else if (!strcmp(a, "--hint")) {
            if (f->nhints >= HPP_MAX_HINTS) {
                return s_usage("too many --hint");
            }
            f->hints[f->nhints++] = s_str(v);
        } else if (!strcmp(a, "--budget")) {
            char *end = NULL;
            f->budget_usd = strtod(v, &end);
            f->has_budget = true;
            if (*end || f->budget_usd < 0) {
                return s_usage("--budget wants a non-negative number of USD");
            }
        } else if (!strcmp(a, "--prompt-tokens") || !strcmp(a, "--output-tokens") ||
                   !strcmp(a, "--images") || !strcmp(a, "--timeout-ms")) {
            if (s_num(v, HPP_MAX_TOKENS, &n) != 0) {
                return s_usage("expected a non-negative integer");
            }
            if (!strcmp(a, "--prompt-tokens")) {
                f->prompt_tokens = n;
            } else if (!strcmp(a, "--output-tokens")) {
                f->output_tokens = n;
            } else if (!strcmp(a, "--images")) {
                f->images = n;
            } else {
                timeout = n;
            }
        } else {
            return s_usage("unknown flag");
        }
        i += takes;
    }
    if (opts.nendpoints == 0) {
        return s_usage("--engine is required");
    }
    char err[512];
    hpp_client_t *c = hpp_client_new_opts(&opts, NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "route_example: %s\n", err);
        return 2;
    }
    hpp_reply_t rep = {0};
    int rc = hpp_client_call(c, &req, &rep, (int)timeout);
    if (rep.has_msg) {
        proto_buf_t json;
        proto_error_t perr;
        if (proto_buf_init(&json, 4096) == 0 &&
            proto_to_json(rep.data, rep.len, &json, &perr) == PROTO_OK) {
            printf("%s\n", json.data);
        }
        proto_buf_destroy(&json);
    }
    if (rc != HPP_OK) {
        fprintf(stderr, "route_example: %s: %s\n", hpp_strerror(rc), hpp_client_errstr(c));
    }
    hpp_reply_close(&rep);
    hpp_client_destroy(&c);
    return rc == HPP_OK ? 0 : 1;
}
