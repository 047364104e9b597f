/* test_msgpool.c - the engine's pool of outgoing message blocks: bytes arrive
 * intact, blocks come back and are reused, the limits fall back to
 * zmq_send, and nothing is lost when messages die unsent. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "eng_msgpool.h"

#define BIG 4096 /* messages per burst: the pool's block limit */

typedef struct {
    void *ctx;
    void *tx;
    void *rx;
    eng_msgpool_t *pool;
} s_pair_t;

/* A connected pair over `endpoint` ("inproc://..." or "tcp://127.0.0.1:*"). */
static s_pair_t s_open(int tx_type, int rx_type, const char *endpoint)
{
    s_pair_t p = {.ctx = zmq_ctx_new()};
    cr_assert(p.ctx);
    p.tx = zmq_socket(p.ctx, tx_type);
    p.rx = zmq_socket(p.ctx, rx_type);
    int hwm = 100000, linger = 0;
    for (int i = 0; i < 2; i++) {
        void *s = i ? p.rx : p.tx;
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    }
    cr_assert_eq(zmq_bind(p.rx, endpoint), 0, "bind %s: %s", endpoint, zmq_strerror(errno));
    char ep[128];
    size_t len = sizeof ep;
    zmq_getsockopt(p.rx, ZMQ_LAST_ENDPOINT, ep, &len);
    cr_assert_eq(zmq_connect(p.tx, ep), 0);
    p.pool = eng_msgpool_new();
    cr_assert(p.pool);
    return p;
}

/* Closes the sockets, terminates the context (which drops what is unsent),
 * then frees the pool: the order eng_server keeps. */
static void s_close(s_pair_t *p)
{
    zmq_close(p->tx);
    zmq_close(p->rx);
    zmq_ctx_term(p->ctx);
    eng_msgpool_destroy(&p->pool);
    cr_assert_null(p->pool);
    eng_msgpool_destroy(&p->pool); /* idempotent */
}

/* Message i: its length and bytes follow from i, so a mix-up shows. */
static size_t s_fill(unsigned char *buf, size_t i, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        buf[k] = (unsigned char)(i * 31 + k * 7);
    }
    memcpy(buf, &i, sizeof i);
    return len;
}

static void s_expect(void *sock, size_t i, size_t len)
{
    unsigned char want[4096], got[4096];
    s_fill(want, i, len);
    int n = zmq_recv(sock, got, sizeof got, 0);
    cr_assert_eq(n, (int)len, "message %zu: %d bytes, expected %zu", i, n, len);
    cr_assert_eq(memcmp(got, want, len), 0, "message %zu: bytes differ", i);
}

static size_t s_len(size_t i)
{
    return 40 + (i * 97) % 1900; /* 40 .. 1939 bytes: all fit a block */
}

Test(msgpool, one_block_serves_a_request_reply_loop)
{
    s_pair_t p = s_open(ZMQ_PAIR, ZMQ_PAIR, "inproc://msgpool-loop");
    unsigned char buf[4096];
    for (size_t i = 0; i < 1000; i++) {
        size_t len = s_fill(buf, i, s_len(i));
        cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, len, 0), 0);
        s_expect(p.rx, i, len);
    }
    eng_msgpool_stats_t st = eng_msgpool_stats(p.pool);
    cr_assert_eq(st.pooled, 1000);
    cr_assert_eq(st.fallbacks, 0);
    /* Each reply was received (and its block released) before the next
     * send, so the first block was reused every time. */
    cr_assert_eq(st.blocks, 1, "%zu blocks for one message at a time", st.blocks);
    s_close(&p);
}

Test(msgpool, tiny_and_oversized_messages_go_through_zmq_send)
{
    s_pair_t p = s_open(ZMQ_PAIR, ZMQ_PAIR, "inproc://msgpool-sizes");
    unsigned char buf[4096];
    const size_t lens[] = {8, 33, 2048, 4096};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, s_fill(buf, i, lens[i]), 0), 0);
        s_expect(p.rx, i, lens[i]);
    }
    eng_msgpool_stats_t st = eng_msgpool_stats(p.pool);
    cr_assert_eq(st.pooled, 0);
    cr_assert_eq(st.fallbacks, 4);
    cr_assert_eq(st.blocks, 0);
    s_close(&p);
}

Test(msgpool, a_failed_send_gives_the_block_back)
{
    s_pair_t p = s_open(ZMQ_PAIR, ZMQ_PAIR, "inproc://msgpool-fail");
    void *lonely = zmq_socket(p.ctx, ZMQ_PUSH); /* no peer: DONTWAIT fails */
    unsigned char buf[512];
    size_t len = s_fill(buf, 1, sizeof buf);
    errno = 0;
    cr_assert_eq(eng_msgpool_send(p.pool, lonely, buf, len, ZMQ_DONTWAIT), -1);
    cr_assert_eq(errno, EAGAIN, "errno %d", errno);
    cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, len, 0), 0);
    s_expect(p.rx, 1, len);
    eng_msgpool_stats_t st = eng_msgpool_stats(p.pool);
    cr_assert_eq(st.blocks, 1, "the failed send's block was not reused");
    cr_assert_eq(st.pooled, 1);
    zmq_close(lonely);
    s_close(&p);
}

Test(msgpool, past_the_limit_sends_still_arrive_in_order)
{
    s_pair_t p = s_open(ZMQ_PAIR, ZMQ_PAIR, "inproc://msgpool-limit");
    unsigned char buf[4096];
    size_t total = BIG + 50;
    for (size_t i = 0; i < total; i++) {
        cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, s_fill(buf, i, s_len(i)), 0), 0);
    }
    eng_msgpool_stats_t st = eng_msgpool_stats(p.pool);
    cr_assert_eq(st.blocks, BIG, "%zu blocks", st.blocks);
    cr_assert_eq(st.pooled, BIG);
    cr_assert_eq(st.fallbacks, 50);
    for (size_t i = 0; i < total; i++) {
        s_expect(p.rx, i, s_len(i));
    }
    /* All released: a second burst reuses them without allocating. */
    for (size_t i = 0; i < BIG; i++) {
        cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, s_fill(buf, i, s_len(i)), 0), 0);
    }
    st = eng_msgpool_stats(p.pool);
    cr_assert_eq(st.blocks, BIG);
    cr_assert_eq(st.pooled, 2 * BIG);
    /* The second burst is never received: terminating the context drops
     * it, and the blocks must come back before the pool is freed (the
     * sanitizers' leak check watches this). */
    s_close(&p);
}

Test(msgpool, blocks_released_by_the_io_thread_over_tcp)
{
    /* Over tcp libzmq's I/O thread releases the blocks while this thread
     * keeps taking them: the lock-free hand-back under real concurrency. */
    s_pair_t p = s_open(ZMQ_PUSH, ZMQ_PULL, "tcp://127.0.0.1:*");
    unsigned char buf[4096];
    size_t sent = 0;
    for (int round = 0; round < 20; round++) {
        size_t first = sent;
        for (int k = 0; k < 500; k++, sent++) {
            cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, s_fill(buf, sent, s_len(sent)), 0), 0);
        }
        for (size_t i = first; i < sent; i++) {
            s_expect(p.rx, i, s_len(i));
        }
    }
    eng_msgpool_stats_t st = eng_msgpool_stats(p.pool);
    cr_assert_eq(st.pooled + st.fallbacks, sent);
    cr_assert_eq(st.fallbacks, 0);
    /* Every round was received before the next began, so the blocks of one
     * round were enough for all of them (plus one: libzmq's encoder may hold
     * a round's last message until the next message comes). */
    cr_assert_leq(st.blocks, 501, "%zu blocks for rounds of 500", st.blocks);
    s_close(&p);
}

Test(msgpool, trim_frees_idle_blocks_down_to_what_it_keeps)
{
    s_pair_t p = s_open(ZMQ_PAIR, ZMQ_PAIR, "inproc://msgpool-trim");
    unsigned char buf[4096];
    for (size_t i = 0; i < 300; i++) {
        cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, s_fill(buf, i, s_len(i)), 0), 0);
    }
    /* 100 received (blocks back), 200 still in the pipe (lent). */
    for (size_t i = 0; i < 100; i++) {
        s_expect(p.rx, i, s_len(i));
    }
    cr_assert_eq(eng_msgpool_stats(p.pool).blocks, 300);
    cr_assert_eq(eng_msgpool_trim(p.pool, 10), 100, "only the idle blocks are freed");
    cr_assert_eq(eng_msgpool_stats(p.pool).blocks, 200);
    for (size_t i = 100; i < 300; i++) {
        s_expect(p.rx, i, s_len(i));
    }
    cr_assert_eq(eng_msgpool_trim(p.pool, 10), 190);
    cr_assert_eq(eng_msgpool_stats(p.pool).blocks, 10);
    cr_assert_eq(eng_msgpool_trim(p.pool, 10), 0);
    /* What is kept still serves. */
    cr_assert_eq(eng_msgpool_send(p.pool, p.tx, buf, s_fill(buf, 7, s_len(7)), 0), 0);
    s_expect(p.rx, 7, s_len(7));
    cr_assert_eq(eng_msgpool_stats(p.pool).blocks, 10);
    s_close(&p);
}
