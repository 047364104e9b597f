/* fuzz_zmtp.c - libFuzzer target for the ZMTP 3 codec (proto/proto_zmtp.c),
 * the parser of every byte the engine sends the sidecar's zmtp link, and of
 * every byte a client sends the engine's direct listener (the ROUTER's side,
 * picked by bit 4 of the first input byte).
 *
 * The input is read twice: in one piece, and fed a few bytes at a time
 * (the first input byte picks how many), as a socket delivers it. Neither
 * may crash or read out of bounds, and both must see the same events with
 * the same bytes and end the same way: a parser whose answer depends on
 * where reads split the stream would lose or invent messages.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_zmtp.h"

typedef struct {
    uint64_t hash; /* of the events' kinds, flags and bytes */
    int events;
    int rc; /* 0 = ran out of input, -1 = refused */
} s_trace_t;

static void s_mix(s_trace_t *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        t->hash = (t->hash ^ b[i]) * 1099511628211ull;
    }
}

static void s_run(const uint8_t *buf, size_t len, size_t step, bool router, s_trace_t *t)
{
    proto_zmtp_t z;
    if (router) {
        proto_zmtp_init_router(&z, 4096);
    } else {
        proto_zmtp_init(&z, 4096);
    }
    memset(t, 0, sizeof *t);
    t->hash = 14695981039346656037ull;
    size_t pos = 0, avail = step < len ? step : len;
    for (;;) {
        proto_zmtp_ev_t ev;
        long n = proto_zmtp_read(&z, buf + pos, avail - pos, &ev);
        if (n < 0) {
            t->rc = -1;
            return;
        }
        if (n == 0) {
            if (ev.need <= avail - pos && ev.kind == PROTO_ZMTP_EV_NONE) {
                abort(); /* asked for bytes it already had */
            }
            if (avail == len) {
                return;
            }
            avail = avail + step < len ? avail + step : len;
            continue;
        }
        if ((size_t)n > avail - pos) {
            abort(); /* consumed bytes it was not given */
        }
        pos += (size_t)n;
        if (ev.kind != PROTO_ZMTP_EV_NONE) {
            t->events++;
            uint8_t head[2] = {(uint8_t)ev.kind, (uint8_t)ev.more};
            s_mix(t, head, 2);
            s_mix(t, ev.data, ev.len);
        }
        if (ev.kind == PROTO_ZMTP_EV_PING) {
            uint8_t pong[PROTO_ZMTP_PONG_MAX];
            if (proto_zmtp_pong(pong, &ev) > PROTO_ZMTP_PONG_MAX) {
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t step = 1 + data[0] % 16;
    bool router = data[0] & 0x10;
    data++;
    size--;
    /* Copies, so that reading past the end is caught at the exact byte. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    s_trace_t whole, split;
    s_run(buf, size, size ? size : 1, router, &whole);
    s_run(buf, size, step, router, &split);
    if (whole.hash != split.hash || whole.events != split.events || whole.rc != split.rc) {
        abort();
    }
    free(buf);
    return 0;
}
