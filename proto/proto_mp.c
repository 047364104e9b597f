/* proto_mp.c - bounds-checked msgpack reader and the packer's output buffer.
 *
 * Decoding does not use msgpack-c's object unpacker on purpose: it allocates
 * every array and map up front from the count in its header, before seeing
 * the elements, so a 5-byte frame (dd ff ff ff ff) asks for ~100 GB, and it
 * allocates per message. This reader is a cursor over the frame: each header
 * is checked against the bytes that remain (an element takes at least one
 * byte), strings are borrowed, nothing is allocated, and skipping a value is
 * a loop with a counter instead of recursion. Encoding uses msgpack-c's
 * packer, writing into a proto_buf_t.
 */
#include "proto_mp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output buffer -------------------------------------------------------------- */

void proto_buf_init_fixed(proto_buf_t *b, void *mem, size_t cap)
{
    b->data = mem;
    b->len = 0;
    b->cap = cap;
    b->growable = false;
    b->overflow = false;
}

int proto_buf_init(proto_buf_t *b, size_t initial)
{
    proto_buf_init_fixed(b, NULL, 0);
    b->growable = true;
    if (initial == 0) {
        initial = 256;
    }
    b->data = malloc(initial);
    if (!b->data) {
        b->overflow = true;
        return -1;
    }
    b->cap = initial;
    return 0;
}

void proto_buf_reset(proto_buf_t *b)
{
    b->len = 0;
    b->overflow = false;
}

void proto_buf_destroy(proto_buf_t *b)
{
    if (b->growable) {
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* The slow half of s_reserve: grows a growable buffer, flags overflow
 * otherwise. */
static char *s_reserve_grow(proto_buf_t *b, size_t len)
{
    if (b->overflow) {
        return NULL;
    }
    if (!b->growable) {
        b->overflow = true;
        return NULL;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap - b->len < len) {
        if (ncap > SIZE_MAX / 2) {
            b->overflow = true;
            return NULL;
        }
        ncap *= 2;
    }
    char *nd = realloc(b->data, ncap);
    if (!nd) {
        b->overflow = true;
        return NULL;
    }
    b->data = nd;
    b->cap = ncap;
    return b->data + b->len;
}

/* Room for `len` more bytes. Returns where to write, or NULL. Every value
 * of a reply comes through here, so the common case is kept inline. */
static inline char *s_reserve(proto_buf_t *b, size_t len)
{
    if (__builtin_expect(!b->overflow && len <= b->cap - b->len, 1)) {
        return b->data + b->len;
    }
    return s_reserve_grow(b, len);
}

/* msgpack_packer_write callback: appends. */
static int s_buf_write(void *data, const char *src, size_t len)
{
    proto_buf_t *b = data;
    char *p = s_reserve(b, len);
    if (!p) {
        return -1;
    }
    memcpy(p, src, len);
    b->len += len;
    return 0;
}

int proto_buf_append(proto_buf_t *b, const void *src, size_t len)
{
    return s_buf_write(b, src, len) == 0 ? PROTO_OK : PROTO_ERR_NOSPACE;
}

void proto_packer_init(msgpack_packer *pk, proto_buf_t *b)
{
    msgpack_packer_init(pk, b, s_buf_write);
}

void proto_pack_strn(msgpack_packer *pk, const char *s, size_t len)
{
    /* Header and body in one reservation: strings are most of a reply, and
     * the packer would call back twice for each. Same bytes as
     * msgpack_pack_str + msgpack_pack_str_body (fixstr, str8/16/32). */
    proto_buf_t *b = pk->data;
    char *p = s_reserve(b, len + 5);
    if (!p) {
        return;
    }
    size_t h;
    if (len < 32) {
        p[0] = (char)(0xa0 | len);
        h = 1;
    } else if (len < 256) {
        p[0] = (char)0xd9;
        p[1] = (char)len;
        h = 2;
    } else if (len < 65536) {
        p[0] = (char)0xda;
        p[1] = (char)(len >> 8);
        p[2] = (char)len;
        h = 3;
    } else {
        p[0] = (char)0xdb;
        p[1] = (char)(len >> 24);
        p[2] = (char)(len >> 16);
        p[3] = (char)(len >> 8);
        p[4] = (char)len;
        h = 5;
    }
    if (len > 0) {
        memcpy(p + h, s, len);
    }
    b->len += h + len;
}

void proto_pack_key(msgpack_packer *pk, const char *k, size_t len)
{
    proto_pack_strn(pk, k, len);
}

void proto_pack_cstr(msgpack_packer *pk, const char *s)
{
    proto_pack_strn(pk, s ? s : "", s ? strlen(s) : 0);
}

size_t proto_utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > left) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

void proto_pack_text(msgpack_packer *pk, const char *s, size_t len)
{
    /* Messages are short (<= a few hundred bytes): sanitise on the stack. */
    char tmp[512];
    if (len > sizeof tmp) {
        len = sizeof tmp;
    }
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t i = 0;
    while (i < len) {
        size_t n = proto_utf8_len(u + i, len - i);
        if (n == 0 || (n == 1 && (u[i] < 0x20 || u[i] == 0x7f))) {
            tmp[i] = '?';
            i++;
        } else {
            memcpy(tmp + i, u + i, n);
            i += n;
        }
    }
    proto_pack_strn(pk, tmp, len);
}

void proto_pack_id(msgpack_packer *pk, const proto_id_t *id)
{
    if (id->kind == PROTO_ID_UINT) {
        msgpack_pack_uint64(pk, id->num);
    } else if (id->kind == PROTO_ID_STR) {
        proto_pack_strn(pk, id->str.ptr, id->str.len);
    } else {
        msgpack_pack_nil(pk);
    }
}

/* Reader ------------------------------------------------------------------ */

void proto_rd_init(proto_rd_t *rd, const void *buf, size_t len)
{
    rd->start = buf;
    rd->p = buf;
    rd->end = rd->start + (buf ? len : 0);
}

int proto_fail(proto_error_t *err, int code, size_t offset, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        err->offset = offset;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int proto_key_once(uint32_t *seen, unsigned index, const char *name, size_t koff,
                   proto_error_t *err)
{
    if (*seen & (1u << index)) {
        return proto_fail(err, PROTO_ERR_DUPLICATE, koff, "%s: duplicate key", name);
    }
    *seen |= 1u << index;
    return PROTO_OK;
}

void proto_no_error(proto_error_t *err)
{
    if (err) {
        err->code = PROTO_OK;
        err->offset = 0;
        err->msg[0] = '\0';
    }
}

static uint64_t s_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Sets a signed integer value, normalising non-negative ones to UINT. */
static void s_set_int(proto_mp_val_t *out, int64_t v)
{
    if (v >= 0) {
        out->type = PROTO_MP_UINT;
        out->u = (uint64_t)v;
    } else {
        out->type = PROTO_MP_INT;
        out->i = v;
    }
}

int proto_rd_next(proto_rd_t *rd, proto_mp_val_t *out)
{
    const uint8_t *p = rd->p;
    size_t left = (size_t)(rd->end - p);
    if (left == 0) {
        return PROTO_ERR_TRUNCATED;
    }
    uint8_t c = *p;
    size_t hdr = 1;     /* header bytes */
    size_t body = 0;    /* body bytes for str/bin/ext */
    uint64_t count = 0; /* elements for array/map, pairs count double */
    memset(out, 0, sizeof *out);

    if (c <= 0x7f) {
        out->type = PROTO_MP_UINT;
        out->u = c;
    } else if (c >= 0xe0) {
        out->type = PROTO_MP_INT;
        out->i = (int8_t)c;
    } else if ((c & 0xf0) == 0x80) {
        out->type = PROTO_MP_MAP;
        count = c & 0x0f;
    } else if ((c & 0xf0) == 0x90) {
        out->type = PROTO_MP_ARRAY;
        count = c & 0x0f;
    } else if ((c & 0xe0) == 0xa0) {
        out->type = PROTO_MP_STR;
        body = c & 0x1f;
    } else {
        /* 0xc0 .. 0xdf: typed headers with a size field. */
        static const uint8_t extra[32] = {
            /* c0 nil */ 0,
            /* c1 never */ 0,         0,     0,
            /* c4-c6 bin */ 1,        2,     4,
            /* c7-c9 ext */ 1 + 1,    2 + 1, 4 + 1,
            /* ca cb float */ 4,      8,
            /* cc-cf uint */ 1,       2,     4,     8,
            /* d0-d3 int */ 1,        2,     4,     8,
            /* d4-d8 fixext */ 1 + 1, 1 + 2, 1 + 4, 1 + 8, 1 + 16,
            /* d9-db str */ 1,        2,     4,
            /* dc dd array */ 2,      4,
            /* de df map */ 2,        4};
        if (c == 0xc1) {
            return PROTO_ERR_MALFORMED;
        }
        hdr = 1 + (size_t)extra[c - 0xc0];
        if (c >= 0xd4 && c <= 0xd8) {
            hdr = 2; /* fixext: type byte, then a fixed body */
            body = (size_t)1 << (c - 0xd4);
        }
        if (left < hdr) {
            return PROTO_ERR_TRUNCATED;
        }
        const uint8_t *q = p + 1;
        switch (c) {
        case 0xc0:
            out->type = PROTO_MP_NIL;
            break;
        case 0xc2:
        case 0xc3:
            out->type = PROTO_MP_BOOL;
            out->b = c == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            out->type = PROTO_MP_BIN;
            body = (size_t)s_be(q, (int)(hdr - 1));
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            out->type = PROTO_MP_EXT;
            body = (size_t)s_be(q, (int)(hdr - 2));
            break;
        case 0xca: {
            uint32_t bits = (uint32_t)s_be(q, 4);
            float f;
            memcpy(&f, &bits, sizeof f);
            out->type = PROTO_MP_FLOAT;
            out->f = f;
            break;
        }
        case 0xcb: {
            uint64_t bits = s_be(q, 8);
            memcpy(&out->f, &bits, sizeof out->f);
            out->type = PROTO_MP_FLOAT;
            break;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            out->type = PROTO_MP_UINT;
            out->u = s_be(q, (int)(hdr - 1));
            break;
        case 0xd0:
            s_set_int(out, (int8_t)q[0]);
            break;
        case 0xd1:
            s_set_int(out, (int16_t)s_be(q, 2));
            break;
        case 0xd2:
            s_set_int(out, (int32_t)s_be(q, 4));
            break;
        case 0xd3:
            s_set_int(out, (int64_t)s_be(q, 8));
            break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            out->type = PROTO_MP_EXT;
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            out->type = PROTO_MP_STR;
            body = (size_t)s_be(q, (int)(hdr - 1));
            break;
        case 0xdc:
        case 0xdd:
            out->type = PROTO_MP_ARRAY;
            count = s_be(q, (int)(hdr - 1));
            break;
        default: /* 0xde, 0xdf */
            out->type = PROTO_MP_MAP;
            count = s_be(q, (int)(hdr - 1));
            break;
        }
    }
    if (left < hdr) {
        return PROTO_ERR_TRUNCATED;
    }
    left -= hdr;
    if (out->type == PROTO_MP_ARRAY || out->type == PROTO_MP_MAP) {
        /* Every element needs at least one byte: a count larger than what
         * is left cannot be satisfied, whatever follows. */
        uint64_t need = out->type == PROTO_MP_MAP ? count * 2 : count;
        if (need > left) {
            return PROTO_ERR_TRUNCATED;
        }
        out->n = (uint32_t)count;
    } else if (out->type == PROTO_MP_STR || out->type == PROTO_MP_BIN ||
               out->type == PROTO_MP_EXT) {
        if (body > left) {
            return PROTO_ERR_TRUNCATED;
        }
        out->ptr = (const char *)p + hdr;
        out->len = (uint32_t)body;
        hdr += body;
    }
    rd->p = p + hdr;
    return PROTO_OK;
}

int proto_rd_skip(proto_rd_t *rd)
{
    const uint8_t *save = rd->p;
    /* Values still to skip; bounded by the bytes left, so it cannot wrap. */
    uint64_t pending = 1;
    while (pending > 0) {
        proto_mp_val_t v;
        int rc = proto_rd_next(rd, &v);
        if (rc != PROTO_OK) {
            rd->p = save;
            return rc;
        }
        pending--;
        if (v.type == PROTO_MP_ARRAY) {
            pending += v.n;
        } else if (v.type == PROTO_MP_MAP) {
            pending += (uint64_t)v.n * 2;
        }
    }
    return PROTO_OK;
}

const char *proto_mp_type_name(proto_mp_type_t t)
{
    static const char *const names[] = {
        [PROTO_MP_NIL] = "nil",      [PROTO_MP_BOOL] = "boolean",
        [PROTO_MP_UINT] = "integer", [PROTO_MP_INT] = "negative integer",
        [PROTO_MP_FLOAT] = "float",  [PROTO_MP_STR] = "string",
        [PROTO_MP_BIN] = "binary",   [PROTO_MP_ARRAY] = "array",
        [PROTO_MP_MAP] = "map",      [PROTO_MP_EXT] = "extension",
    };
    if ((unsigned)t < sizeof names / sizeof names[0]) {
        return names[t];
    }
    return "unknown";
}
