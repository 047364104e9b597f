/* test_zmtp.c - the ZMTP 3 codec (proto_zmtp.h): what it writes, what it
 * accepts, what it refuses and with which message, and that input split at
 * any byte parses the same as input in one piece. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto_zmtp.h"

/* A peer's greeting: ZMTP major.minor, mechanism. */
static size_t s_greeting(uint8_t *out, int major, int minor, const char *mech)
{
    memset(out, 0, PROTO_ZMTP_GREETING);
    out[0] = 0xFF;
    out[9] = 0x7F;
    out[10] = (uint8_t)major;
    out[11] = (uint8_t)minor;
    memcpy(out + 12, mech, strlen(mech));
    out[32] = 1; /* as-server */
    return PROTO_ZMTP_GREETING;
}

/* A command frame named `name` with `data`. */
static size_t s_command(uint8_t *out, const char *name, const void *data, size_t dlen)
{
    size_t nlen = strlen(name), body = 1 + nlen + dlen;
    out[0] = 0x04;
    out[1] = (uint8_t)body;
    out[2] = (uint8_t)nlen;
    memcpy(out + 3, name, nlen);
    memcpy(out + 3 + nlen, data, dlen);
    return 2 + body;
}

/* READY data with one Socket-Type property. */
static size_t s_ready_data(uint8_t *out, const char *type)
{
    size_t n = 0, tl = strlen(type);
    out[n++] = 11;
    memcpy(out + n, "Socket-Type", 11);
    n += 11;
    out[n++] = 0;
    out[n++] = 0;
    out[n++] = 0;
    out[n++] = (uint8_t)tl;
    memcpy(out + n, type, tl);
    return n + tl;
}

/* Greeting + READY(ROUTER) as hpp-engine's libzmq sends them. */
static size_t s_handshake(uint8_t *out)
{
    size_t n = s_greeting(out, 3, 1, "NULL");
    uint8_t data[64];
    size_t dl = s_ready_data(data, "ROUTER");
    return n + s_command(out + n, "READY", data, dl);
}

/* Reads all of buf, returning the events' kinds in `kinds` and the frames'
 * bytes concatenated in `frames`. Returns the event count, or -1 on error
 * (its message in err). Feeds `step` bytes more each time (0 = all). */
typedef struct {
    int kinds[64];
    int n;
    uint8_t frames[4096];
    size_t flen;
    char err[160];
} s_run_t;

static int s_run(const uint8_t *buf, size_t len, size_t step, s_run_t *r)
{
    proto_zmtp_t z;
    proto_zmtp_init(&z, 1 << 20);
    memset(r, 0, sizeof *r);
    size_t pos = 0, avail = step ? (step < len ? step : len) : len;
    for (;;) {
        proto_zmtp_ev_t ev;
        long n = proto_zmtp_read(&z, buf + pos, avail - pos, &ev);
        if (n < 0) {
            snprintf(r->err, sizeof r->err, "%s", ev.msg);
            return -1;
        }
        if (n == 0) {
            if (avail == len) {
                return r->n;
            }
            avail = step ? (avail + step < len ? avail + step : len) : len;
            continue;
        }
        pos += (size_t)n;
        if (ev.kind != PROTO_ZMTP_EV_NONE) {
            r->kinds[r->n++] = ev.kind;
        }
        if (ev.kind == PROTO_ZMTP_EV_FRAME) {
            memcpy(r->frames + r->flen, ev.data, ev.len);
            r->flen += ev.len;
        }
    }
}

Test(zmtp, hello_is_a_zmtp3_null_dealer)
{
    uint8_t out[PROTO_ZMTP_HELLO_MAX];
    size_t n = proto_zmtp_hello(out, sizeof out);
    cr_assert_eq(n, 64 + 2 + 1 + 5 + 1 + 11 + 4 + 6);
    cr_assert_eq(out[0], 0xFF);
    cr_assert_eq(out[9], 0x7F);
    cr_assert_eq(out[10], 3);
    cr_assert(memcmp(out + 12, "NULL\0\0", 6) == 0);
    cr_assert_eq(out[32], 0, "as-server is 0 for a client");
    cr_assert_eq(out[64], 0x04, "a short command");
    cr_assert_eq(out[65], n - 66);
    cr_assert(memcmp(out + 66,
                     "\x05READY\x0bSocket-Type\0\0\0\x06"
                     "DEALER",
                     28) == 0);
    cr_assert_eq(proto_zmtp_hello(out, 10), 0, "too small a buffer writes nothing");
}

Test(zmtp, frame_heads_short_and_long)
{
    uint8_t h[PROTO_ZMTP_HEAD_MAX];
    cr_assert_eq(proto_zmtp_frame_head(h, 0, false), 2);
    cr_assert(h[0] == 0 && h[1] == 0);
    cr_assert_eq(proto_zmtp_frame_head(h, 255, true), 2);
    cr_assert(h[0] == 1 && h[1] == 255);
    cr_assert_eq(proto_zmtp_frame_head(h, 256, false), 9);
    cr_assert_eq(h[0], 0x02);
    cr_assert(memcmp(h + 1, "\0\0\0\0\0\0\x01\x00", 8) == 0);
    cr_assert_eq(proto_zmtp_frame_head(h, 0x0102030405ull, true), 9);
    cr_assert_eq(h[0], 0x03);
    cr_assert(memcmp(h + 1, "\0\0\0\x01\x02\x03\x04\x05", 8) == 0);
}

Test(zmtp, handshake_then_frames)
{
    uint8_t buf[2048];
    size_t n = s_handshake(buf);
    n += proto_zmtp_frame_head(buf + n, 3, true);
    memcpy(buf + n, "abc", 3);
    n += 3;
    n += proto_zmtp_frame_head(buf + n, 300, false);
    memset(buf + n, 'x', 300);
    n += 300;
    s_run_t r;
    cr_assert_eq(s_run(buf, n, 0, &r), 3, "%s", r.err);
    cr_assert_eq(r.kinds[0], PROTO_ZMTP_EV_READY);
    cr_assert_eq(r.kinds[1], PROTO_ZMTP_EV_FRAME);
    cr_assert_eq(r.kinds[2], PROTO_ZMTP_EV_FRAME);
    cr_assert_eq(r.flen, 303);
    cr_assert(memcmp(r.frames, "abcxxx", 6) == 0);
    /* Every split gives the same events and bytes. */
    for (size_t step = 1; step < 80; step++) {
        s_run_t q;
        cr_assert_eq(s_run(buf, n, step, &q), 3, "step %zu: %s", step, q.err);
        cr_assert(memcmp(q.kinds, r.kinds, sizeof q.kinds) == 0, "step %zu", step);
        cr_assert_eq(q.flen, r.flen);
        cr_assert(memcmp(q.frames, r.frames, r.flen) == 0, "step %zu", step);
    }
}

Test(zmtp, more_flag_and_need)
{
    uint8_t buf[512];
    size_t n = s_handshake(buf);
    proto_zmtp_t z;
    proto_zmtp_init(&z, 1000);
    proto_zmtp_ev_t ev;
    cr_assert_eq(proto_zmtp_read(&z, buf, 10, &ev), 0);
    cr_assert_eq(ev.need, PROTO_ZMTP_GREETING);
    long used = proto_zmtp_read(&z, buf, n, &ev);
    cr_assert_eq(used, PROTO_ZMTP_GREETING);
    cr_assert_eq(ev.kind, PROTO_ZMTP_EV_NONE);
    used = proto_zmtp_read(&z, buf + 64, n - 64, &ev);
    cr_assert_eq((size_t)used, n - 64);
    cr_assert_eq(ev.kind, PROTO_ZMTP_EV_READY);
    uint8_t f[16];
    size_t hl = proto_zmtp_frame_head(f, 500, true);
    cr_assert_eq(proto_zmtp_read(&z, f, hl, &ev), 0);
    cr_assert_eq(ev.need, 9 + 500, "the whole frame is needed");
    cr_assert_eq(proto_zmtp_read(&z, f, 1, &ev), 0);
    cr_assert_eq(ev.need, 2);
}

/* Each bad stream is refused with a message naming the problem. */
static void s_refused(const uint8_t *buf, size_t len, const char *want)
{
    s_run_t r;
    cr_assert_eq(s_run(buf, len, 0, &r), -1, "accepted; wanted '%s'", want);
    cr_assert(strstr(r.err, want), "message '%s' lacks '%s'", r.err, want);
    cr_assert(strncmp(r.err, "zmtp: byte ", 11) == 0, "message '%s' has no offset", r.err);
}

Test(zmtp, refuses_peers_it_cannot_talk_to)
{
    uint8_t buf[512];
    s_refused((const uint8_t *)"HTTP/1.1 400 Bad Request\r\n", 26, "does not speak ZMTP");
    s_greeting(buf, 3, 0, "NULL");
    buf[9] = 0x00;
    s_refused(buf, 64, "ZMTP 1.0");
    s_greeting(buf, 2, 0, "NULL");
    s_refused(buf, 11, "older ZMTP (revision byte 2), not 3");
    s_greeting(buf, 3, 0, "CURVE");
    s_refused(buf, 64, "'CURVE' security mechanism");
    /* Peer socket types other than ROUTER. */
    size_t n = s_greeting(buf, 3, 1, "NULL");
    uint8_t data[64];
    size_t dl = s_ready_data(data, "PUB");
    s_refused(buf, n + s_command(buf + n, "READY", data, dl), "a PUB socket");
    s_refused(buf, n + s_command(buf + n, "READY", "\x08Identity\0\0\0\0", 13), "no Socket-Type");
    s_refused(buf, n + s_command(buf + n, "READY", "\x0bSocket-Type\0\0\0\x09ROU", 19),
              "malformed metadata");
    s_refused(buf, n + s_command(buf + n, "HELLO", "", 0), "expected READY");
    memcpy(buf + n, "\x00\x01x", 3);
    s_refused(buf, n + 3, "a message before the READY");
}

Test(zmtp, refuses_bad_frames)
{
    static const struct {
        const char *bytes; /* what follows the handshake */
        size_t len;
        const char *want; /* in the message */
    } cases[] = {
        {"\x08\x01x", 3, "reserved frame flags 0x08"},
        {"\x05\x01x", 3, "command frame with MORE"},
        {"\x02\x00\x00\x00\x00\x00\x20\x00\x00", 9, "over the limit"},
        {"\x02\xff\xff\xff\xff\xff\xff\xff\xff", 9, "over the limit"},
        {"\x04\x01\x09", 3, "without a valid name"},
        {"\x04\x00", 2, "without a valid name"},
    };
    uint8_t buf[512];
    size_t n = s_handshake(buf);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(buf + n, cases[i].bytes, cases[i].len);
        s_refused(buf, n + cases[i].len, cases[i].want);
    }
    s_refused(buf, n + s_command(buf + n, "ERROR", "\x0cno such user", 13),
              "the peer sent ERROR: no such user");
    s_refused(buf, n + s_command(buf + n, "ERROR", "\x30short", 6), "sent ERROR: short");
    s_refused(buf, n + s_command(buf + n, "PING", "", 0), "PING without its TTL");
}

Test(zmtp, broken_stays_broken)
{
    proto_zmtp_t z;
    proto_zmtp_init(&z, 100);
    proto_zmtp_ev_t ev;
    cr_assert_eq(proto_zmtp_read(&z, (const uint8_t *)"x", 1, &ev), -1);
    uint8_t buf[512];
    size_t n = s_handshake(buf);
    cr_assert_eq(proto_zmtp_read(&z, buf, n, &ev), -1);
    cr_assert(strstr(ev.msg, "broke earlier"));
}

Test(zmtp, ping_is_answered_and_other_commands_skipped)
{
    uint8_t buf[512];
    size_t n = s_handshake(buf);
    n += s_command(buf + n, "PONG", "ctx", 3);
    n += s_command(buf + n, "SUBSCRIBE", "", 0);
    n += s_command(buf + n, "PING", "\x00\x64hello", 7);
    s_run_t r;
    cr_assert_eq(s_run(buf, n, 0, &r), 2, "%s", r.err);
    cr_assert_eq(r.kinds[1], PROTO_ZMTP_EV_PING);
    /* The pong carries the ping's context. */
    proto_zmtp_t z;
    proto_zmtp_init(&z, 100);
    proto_zmtp_ev_t ev;
    size_t pos = 0;
    while (pos < n) {
        long used = proto_zmtp_read(&z, buf + pos, n - pos, &ev);
        cr_assert_gt(used, 0);
        pos += (size_t)used;
    }
    cr_assert_eq(ev.kind, PROTO_ZMTP_EV_PING);
    cr_assert_eq(ev.len, 5);
    uint8_t pong[PROTO_ZMTP_PONG_MAX];
    size_t pl = proto_zmtp_pong(pong, &ev);
    cr_assert_eq(pl, 2 + 1 + 4 + 5);
    cr_assert(memcmp(pong, "\x04\x0a\x04PONGhello", pl) == 0);
}

/* The ROUTER's side (the engine's direct listener): it reads what the
 * DEALER side writes, takes a REQ too, and refuses another ROUTER. */
Test(zmtp, router_side_reads_a_dealer_and_refuses_a_router)
{
    uint8_t buf[512];
    size_t n = proto_zmtp_hello(buf, sizeof buf);
    n += proto_zmtp_frame_head(buf + n, 0, true);
    n += proto_zmtp_frame_head(buf + n, 2, false);
    memcpy(buf + n, "hi", 2);
    n += 2;
    proto_zmtp_t z;
    proto_zmtp_init_router(&z, 100);
    proto_zmtp_ev_t ev;
    int kinds[8], nk = 0;
    size_t pos = 0;
    while (pos < n) {
        long used = proto_zmtp_read(&z, buf + pos, n - pos, &ev);
        cr_assert_gt(used, 0, "%s", ev.msg);
        pos += (size_t)used;
        if (ev.kind != PROTO_ZMTP_EV_NONE) {
            kinds[nk++] = ev.kind;
        }
    }
    cr_assert_eq(nk, 3);
    cr_assert_eq(kinds[0], PROTO_ZMTP_EV_READY);
    cr_assert_eq(kinds[2], PROTO_ZMTP_EV_FRAME);
    cr_assert(ev.len == 2 && memcmp(ev.data, "hi", 2) == 0 && !ev.more);

    uint8_t hello[PROTO_ZMTP_HELLO_MAX];
    size_t hl = proto_zmtp_hello_router(hello, sizeof hello);
    cr_assert(memcmp(hello + 66, "\x05READY\x0bSocket-Type\0\0\0\x06ROUTER", 28) == 0);
    /* A ROUTER's hello read by a ROUTER: refused, with the peer's type. */
    proto_zmtp_init_router(&z, 100);
    pos = 0;
    long used = 0;
    while ((used = proto_zmtp_read(&z, hello + pos, hl - pos, &ev)) > 0) {
        pos += (size_t)used;
    }
    cr_assert_eq(used, -1);
    cr_assert(strstr(ev.msg, "a ROUTER socket; a ROUTER serves DEALER and REQ"), "%s", ev.msg);
    /* A REQ is served. */
    size_t rn = s_greeting(buf, 3, 0, "NULL");
    uint8_t data[64];
    rn += s_command(buf + rn, "READY", data, s_ready_data(data, "REQ"));
    proto_zmtp_init_router(&z, 100);
    cr_assert_eq(proto_zmtp_read(&z, buf, rn, &ev), PROTO_ZMTP_GREETING);
    cr_assert_gt(proto_zmtp_read(&z, buf + 64, rn - 64, &ev), 0, "%s", ev.msg);
    cr_assert_eq(ev.kind, PROTO_ZMTP_EV_READY);
}
