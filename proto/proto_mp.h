/* proto_mp.h - the msgpack layer under the codec: a bounds-checked reader and
 * the output buffer the msgpack-c packer writes into.
 *
 * Only proto_*.c include this header. Engine, sidecar and clients see the
 * schema (proto.h), never raw msgpack.
 */
#ifndef PROTO_MP_H
#define PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "proto.h"

/* Kinds of msgpack value. Integers are normalised: any integer >= 0 is
 * PROTO_MP_UINT whatever its encoding, a negative one PROTO_MP_INT. */
typedef enum {
    PROTO_MP_NIL,
    PROTO_MP_BOOL,
    PROTO_MP_UINT,
    PROTO_MP_INT,
    PROTO_MP_FLOAT,
    PROTO_MP_STR,
    PROTO_MP_BIN,
    PROTO_MP_ARRAY,
    PROTO_MP_MAP,
    PROTO_MP_EXT,
} proto_mp_type_t;

/* One value header. For str/bin/ext the body is included (borrowed from the
 * input); for array/map only the element count, the elements follow. */
typedef struct {
    proto_mp_type_t type; /* what was read */
    bool b;               /* PROTO_MP_BOOL */
    uint64_t u;           /* PROTO_MP_UINT */
    int64_t i;            /* PROTO_MP_INT (always < 0) */
    double f;             /* PROTO_MP_FLOAT (float32 widened) */
    const char *ptr;      /* STR / BIN / EXT body, borrowed */
    uint32_t len;         /* its byte count */
    uint32_t n;           /* ARRAY elements / MAP pairs */
} proto_mp_val_t;

/* A cursor over one msgpack buffer. Never reads outside [start, end). */
typedef struct {
    const uint8_t *start; /* first byte, for offsets in errors */
    const uint8_t *p;     /* next byte to read */
    const uint8_t *end;   /* one past the last byte */
} proto_rd_t;

void proto_rd_init(proto_rd_t *rd, const void *buf, size_t len);

/* Reads the next value header. Returns PROTO_OK, PROTO_ERR_TRUNCATED (the
 * buffer ends inside the value, or a container claims more elements than
 * bytes remain) or PROTO_ERR_MALFORMED (the reserved byte 0xc1). On error the
 * cursor does not move. */
int proto_rd_next(proto_rd_t *rd, proto_mp_val_t *out);

/* Skips one complete value of any depth, iteratively (no recursion, so no
 * depth limit is needed). Same returns as proto_rd_next. */
int proto_rd_skip(proto_rd_t *rd);

/* Byte offset of the cursor (inline: decoders note it before every value,
 * for their error messages). */
static inline size_t proto_rd_offset(const proto_rd_t *rd)
{
    return (size_t)(rd->p - rd->start);
}

/* Decoders' error exit: fills `err` (when not NULL) with the code, the byte
 * offset and the formatted message; returns `code`. */
int proto_fail(proto_error_t *err, int code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Marks known key number `index` of a map as seen (a bit of `*seen`). A
 * known key given twice is an error for every message (PROTOCOL.md):
 * PROTO_ERR_DUPLICATE "NAME: duplicate key" at the key's offset `koff`. */
int proto_key_once(uint32_t *seen, unsigned index, const char *name, size_t koff,
                   proto_error_t *err);

/* Decoders' start: `err` (when not NULL) says "no error". */
void proto_no_error(proto_error_t *err);

/* Name of a value type for error messages: "string", "map", ... */
const char *proto_mp_type_name(proto_mp_type_t t);

/* Appends raw bytes (already-encoded msgpack, or text). PROTO_ERR_NOSPACE
 * when a fixed buffer is full or growing fails. */
int proto_buf_append(proto_buf_t *b, const void *src, size_t len);

/* Length of the valid UTF-8 sequence at s (1..4 bytes), 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
size_t proto_utf8_len(const unsigned char *s, size_t left);

/* A msgpack-c packer writing into `b`. The pack helpers below require a
 * packer made here (they write to its proto_buf_t directly). */
void proto_packer_init(msgpack_packer *pk, proto_buf_t *b);

/* Packs a string from a NUL-terminated C string (NULL packs ""). */
void proto_pack_cstr(msgpack_packer *pk, const char *s);
/* Packs a map key (same encoding as any string). */
void proto_pack_key(msgpack_packer *pk, const char *k, size_t len);
/* Packs a string from pointer + length. */
void proto_pack_strn(msgpack_packer *pk, const char *s, size_t len);
/* Packs a string after replacing every byte that is not printable ASCII or
 * part of valid UTF-8 with '?', so any text that may quote client bytes is
 * still a valid msgpack str for strict decoders. */
void proto_pack_text(msgpack_packer *pk, const char *s, size_t len);
/* Packs the echoed request id (nothing is packed for PROTO_ID_NONE: the
 * caller packs the key only when proto_id_present()). */
void proto_pack_id(msgpack_packer *pk, const proto_id_t *id);

/* Checks the `n` entries of a report's attempts array, the cursor on the
 * first; on success the cursor is past the last entry and *out names their
 * bytes. An error names the entry and key: "attempts[2].status: ...". */
int proto_attempts_check(proto_rd_t *rd, uint32_t n, proto_attempts_t *out, proto_error_t *err);

#endif
