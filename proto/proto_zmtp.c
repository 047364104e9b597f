/* proto_zmtp.c - ZMTP 3 framing without libzmq (see proto_zmtp.h).
 *
 * Wire shapes (RFC 23):
 *   greeting  = %xFF 8OCTET %x7F major minor mechanism[20] as-server filler[31]
 *   frame     = flags (size: 1 octet | 8 octets big-endian) body
 *   flags     = bit 0 MORE, bit 1 LONG, bit 2 COMMAND, bits 3-7 zero
 *   command   = name-size name data;  READY data = (name-size name value-size[4] value)*
 * A DEALER may talk to a ROUTER; hpp-engine is one, so any other peer type
 * is refused at the handshake rather than producing odd envelopes later.
 * On the ROUTER's side, the peers a ROUTER accepts (DEALER, REQ) are.
 */
#include "proto_zmtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { S_GREETING, S_READY, S_FRAMES, S_BROKEN };

#define S_FLAG_MORE 0x01
#define S_FLAG_LONG 0x02
#define S_FLAG_COMMAND 0x04

void proto_zmtp_init(proto_zmtp_t *z, size_t max_frame)
{
    memset(z, 0, sizeof *z);
    z->state = S_GREETING;
    z->max_frame = max_frame;
}

void proto_zmtp_init_router(proto_zmtp_t *z, size_t max_frame)
{
    proto_zmtp_init(z, max_frame);
    z->router = true;
}

static long s_fail(proto_zmtp_t *z, proto_zmtp_ev_t *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static long s_fail(proto_zmtp_t *z, proto_zmtp_ev_t *ev, const char *fmt, ...)
{
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(ev->msg, sizeof ev->msg, "zmtp: byte %llu: %s", (unsigned long long)z->offset, what);
    ev->kind = PROTO_ZMTP_EV_ERROR;
    z->state = S_BROKEN;
    return -1;
}

static void s_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t s_hello(uint8_t *out, size_t cap, const char *type)
{
    static const char name[] = "Socket-Type";
    size_t tlen = strlen(type);
    size_t body = 1 + 5 + 1 + (sizeof name - 1) + 4 + tlen;
    size_t total = PROTO_ZMTP_GREETING + 2 + body;
    if (cap < total) {
        return 0;
    }
    memset(out, 0, PROTO_ZMTP_GREETING);
    out[0] = 0xFF;
    out[9] = 0x7F;
    out[10] = 3; /* ZMTP 3.0: the minor version asks nothing of the peer */
    memcpy(out + 12, "NULL", 4);
    uint8_t *p = out + PROTO_ZMTP_GREETING;
    *p++ = S_FLAG_COMMAND;
    *p++ = (uint8_t)body;
    *p++ = 5;
    memcpy(p, "READY", 5);
    p += 5;
    *p++ = (uint8_t)(sizeof name - 1);
    memcpy(p, name, sizeof name - 1);
    p += sizeof name - 1;
    s_put32(p, (uint32_t)tlen);
    p += 4;
    memcpy(p, type, tlen);
    return total;
}

size_t proto_zmtp_hello(uint8_t *out, size_t cap)
{
    return s_hello(out, cap, "DEALER");
}

size_t proto_zmtp_hello_router(uint8_t *out, size_t cap)
{
    return s_hello(out, cap, "ROUTER");
}

size_t proto_zmtp_frame_head(uint8_t out[PROTO_ZMTP_HEAD_MAX], uint64_t len, bool more)
{
    uint8_t flags = more ? S_FLAG_MORE : 0;
    if (len <= 255) {
        out[0] = flags;
        out[1] = (uint8_t)len;
        return 2;
    }
    out[0] = flags | S_FLAG_LONG;
    for (int i = 0; i < 8; i++) {
        out[1 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return 9;
}

size_t proto_zmtp_pong(uint8_t out[PROTO_ZMTP_PONG_MAX], const proto_zmtp_ev_t *ping)
{
    size_t ctx = ping->len > 16 ? 16 : ping->len;
    out[0] = S_FLAG_COMMAND;
    out[1] = (uint8_t)(1 + 4 + ctx);
    out[2] = 4;
    memcpy(out + 3, "PONG", 4);
    if (ctx) {
        memcpy(out + 7, ping->data, ctx);
    }
    return 7 + ctx;
}

/* Greeting ------------------------------------------------------------------ */

static long s_greeting(proto_zmtp_t *z, const uint8_t *buf, size_t len, proto_zmtp_ev_t *ev)
{
    /* Judge what has arrived as soon as it can be judged, so that a peer
     * that is no ZMTP 3 server is refused at once instead of waited for. */
    if (len >= 1 && buf[0] != 0xFF) {
        return s_fail(z, ev, "the peer does not speak ZMTP (first byte 0x%02x)", buf[0]);
    }
    if (len >= 10 && !(buf[9] & 0x01)) {
        return s_fail(z, ev, "the peer speaks ZMTP 1.0, not 3");
    }
    if (len >= 11 && buf[10] < 3) {
        /* Byte 10 is the major version from ZMTP 3 on; before, a revision. */
        return s_fail(z, ev, "the peer speaks an older ZMTP (revision byte %u), not 3", buf[10]);
    }
    if (len < PROTO_ZMTP_GREETING) {
        ev->need = PROTO_ZMTP_GREETING;
        return 0;
    }
    static const uint8_t null_mech[20] = {'N', 'U', 'L', 'L'};
    if (memcmp(buf + 12, null_mech, sizeof null_mech) != 0) {
        char mech[21];
        size_t n = 0;
        for (; n < 20 && buf[12 + n] >= 0x20 && buf[12 + n] < 0x7F; n++) {
            mech[n] = (char)buf[12 + n];
        }
        mech[n] = '\0';
        return s_fail(z, ev, "the peer asks for the '%s' security mechanism; only NULL is spoken",
                      mech);
    }
    z->state = S_READY;
    return PROTO_ZMTP_GREETING;
}

/* Commands ------------------------------------------------------------------ */

/* Finds property `want` in READY's metadata; returns its value or NULL.
 * Sets *bad when the metadata does not parse. */
static const uint8_t *s_property(const uint8_t *p, const uint8_t *end, const char *want,
                                 uint32_t *vlen, bool *bad)
{
    size_t wlen = strlen(want);
    while (p < end) {
        size_t nlen = *p++;
        if (nlen == 0 || (size_t)(end - p) < nlen + 4) {
            *bad = true;
            return NULL;
        }
        const uint8_t *name = p;
        p += nlen;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        if ((size_t)(end - p) < v) {
            *bad = true;
            return NULL;
        }
        if (nlen == wlen && strncasecmp((const char *)name, want, wlen) == 0) {
            *vlen = v;
            return p;
        }
        p += v;
    }
    return NULL;
}

static long s_ready(proto_zmtp_t *z, const uint8_t *data, size_t len, proto_zmtp_ev_t *ev)
{
    bool bad = false;
    uint32_t vlen = 0;
    const uint8_t *type = s_property(data, data + len, "Socket-Type", &vlen, &bad);
    if (bad) {
        return s_fail(z, ev, "the peer's READY has malformed metadata");
    }
    if (!type) {
        return s_fail(z, ev, "the peer's READY names no Socket-Type");
    }
    bool fits = z->router ? (vlen == 6 && memcmp(type, "DEALER", 6) == 0) ||
                                (vlen == 3 && memcmp(type, "REQ", 3) == 0)
                          : vlen == 6 && memcmp(type, "ROUTER", 6) == 0;
    if (!fits) {
        char shown[17];
        size_t n = 0;
        for (; n < vlen && n < 16 && type[n] >= 0x20 && type[n] < 0x7F; n++) {
            shown[n] = (char)type[n];
        }
        shown[n] = '\0';
        return s_fail(z, ev,
                      z->router ? "the peer is a %s socket; a ROUTER serves DEALER and REQ"
                                : "the peer is a %s socket; hpp-engine's is a ROUTER",
                      shown);
    }
    z->state = S_FRAMES;
    ev->kind = PROTO_ZMTP_EV_READY;
    return 0;
}

/* One command body: READY during the handshake, then PING, ERROR or
 * anything else (ignored, as RFC 37 asks of unknown commands). */
static long s_command(proto_zmtp_t *z, const uint8_t *body, size_t len, proto_zmtp_ev_t *ev)
{
    if (len < 1 || (size_t)body[0] + 1 > len || body[0] == 0) {
        return s_fail(z, ev, "a command without a valid name");
    }
    size_t nlen = body[0];
    const uint8_t *name = body + 1, *data = body + 1 + nlen;
    size_t dlen = len - 1 - nlen;
    bool is_error = nlen == 5 && memcmp(name, "ERROR", 5) == 0;
    if (is_error) {
        size_t rlen = 0;
        if (dlen >= 1) {
            rlen = data[0] < dlen - 1 ? data[0] : dlen - 1;
        }
        char reason[101];
        size_t n = 0;
        for (; n < rlen && n < 100; n++) {
            uint8_t c = data[1 + n];
            reason[n] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
        }
        reason[n] = '\0';
        return s_fail(z, ev, "the peer sent ERROR: %s", n ? reason : "(no reason)");
    }
    if (z->state == S_READY) {
        if (nlen != 5 || memcmp(name, "READY", 5) != 0) {
            return s_fail(z, ev, "expected READY, got the command '%.*s'", (int)nlen,
                          (const char *)name);
        }
        return s_ready(z, data, dlen, ev);
    }
    if (nlen == 4 && memcmp(name, "PING", 4) == 0) {
        if (dlen < 2) {
            return s_fail(z, ev, "a PING without its TTL");
        }
        ev->kind = PROTO_ZMTP_EV_PING;
        ev->data = data + 2;
        ev->len = dlen - 2;
    }
    return 0;
}

/* Frames --------------------------------------------------------------------- */

long proto_zmtp_read(proto_zmtp_t *z, const uint8_t *buf, size_t len, proto_zmtp_ev_t *ev)
{
    ev->kind = PROTO_ZMTP_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    ev->more = false;
    ev->need = 0;
    ev->msg[0] = '\0';
    if (z->state == S_BROKEN) {
        return s_fail(z, ev, "the stream broke earlier");
    }
    if (z->state == S_GREETING) {
        long n = s_greeting(z, buf, len, ev);
        z->offset += n > 0 ? (uint64_t)n : 0;
        return n;
    }
    if (len < 2) {
        ev->need = 2;
        return 0;
    }
    uint8_t flags = buf[0];
    if (flags & ~(S_FLAG_MORE | S_FLAG_LONG | S_FLAG_COMMAND)) {
        return s_fail(z, ev, "reserved frame flags 0x%02x", flags);
    }
    bool command = flags & S_FLAG_COMMAND;
    if (command && (flags & S_FLAG_MORE)) {
        return s_fail(z, ev, "a command frame with MORE set");
    }
    size_t head = (flags & S_FLAG_LONG) ? 9 : 2;
    if (len < head) {
        ev->need = head;
        return 0;
    }
    uint64_t size = buf[1];
    if (head == 9) {
        size = 0;
        for (int i = 1; i < 9; i++) {
            size = size << 8 | buf[i];
        }
    }
    if (size > z->max_frame) {
        return s_fail(z, ev, "a frame of %llu bytes, over the limit of %zu",
                      (unsigned long long)size, z->max_frame);
    }
    if (!command && z->state == S_READY) {
        return s_fail(z, ev, "a message before the READY command");
    }
    if (len - head < size) {
        ev->need = head + (size_t)size;
        return 0;
    }
    const uint8_t *body = buf + head;
    long used = (long)(head + size);
    if (command) {
        if (s_command(z, body, (size_t)size, ev) < 0) {
            return -1;
        }
    } else {
        ev->kind = PROTO_ZMTP_EV_FRAME;
        ev->data = body;
        ev->len = (size_t)size;
        ev->more = flags & S_FLAG_MORE;
    }
    z->offset += (uint64_t)used;
    return used;
}
