/* test_peers.c - the frontend's per-client accounting: entries found by
 * routing id, idle entries reused only when the table is full, and reply
 * bytes counted from the send until libzmq frees the message, whether it
 * was received or dropped with the context. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "eng_peers.h"

Test(peers, ids_map_to_stable_entries)
{
    eng_peers_t *t = eng_peers_new(4);
    cr_assert(t);
    eng_peer_t *a = eng_peers_get(t, "\0\0\0\0\1", 5);
    eng_peer_t *b = eng_peers_get(t, "\0\0\0\0\2", 5);
    cr_assert(a && b && a != b);
    cr_assert_eq(eng_peers_get(t, "\0\0\0\0\1", 5), a);
    cr_assert_eq(eng_peers_find(t, "\0\0\0\0\2", 5), b);
    cr_assert_null(eng_peers_find(t, "\0\0\0\0\3", 5));
    cr_assert_null(eng_peers_find(t, "", 0));
    char longid[300] = {0};
    cr_assert_null(eng_peers_get(t, longid, sizeof longid), "ids are at most 255 bytes");
    eng_peers_destroy(&t);
    cr_assert_null(t);
    eng_peers_destroy(&t);
}

Test(peers, a_full_table_reuses_only_idle_entries)
{
    eng_peers_t *t = eng_peers_new(3);
    eng_peer_t *p[3];
    for (int i = 0; i < 3; i++) {
        char id[8];
        int n = snprintf(id, sizeof id, "c%d", i);
        p[i] = eng_peers_get(t, id, (size_t)n);
        p[i]->at_workers = 1;
    }
    cr_assert_null(eng_peers_get(t, "c3", 2), "every entry busy: no room");
    p[1]->at_workers = 0;
    eng_peer_t *c3 = eng_peers_get(t, "c3", 2);
    cr_assert_eq(c3, p[1], "the idle entry is reused");
    cr_assert_null(eng_peers_find(t, "c1", 2), "and its old id forgotten");
    cr_assert_eq(eng_peers_find(t, "c0", 2), p[0], "busy ones keep theirs");
    cr_assert_eq(eng_peers_find(t, "c2", 2), p[2]);
    eng_peers_destroy(&t);
}

Test(peers, bytes_count_until_libzmq_frees_the_message)
{
    void *ctx = zmq_ctx_new();
    void *tx = zmq_socket(ctx, ZMQ_PAIR), *rx = zmq_socket(ctx, ZMQ_PAIR);
    cr_assert_eq(zmq_bind(rx, "inproc://peers-bytes"), 0);
    cr_assert_eq(zmq_connect(tx, "inproc://peers-bytes"), 0);
    eng_peers_t *t = eng_peers_new(2);
    eng_peer_t *p = eng_peers_get(t, "me", 2);
    char big[5000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 3; i++) {
        zmq_msg_t m;
        zmq_msg_init_size(&m, sizeof big);
        memcpy(zmq_msg_data(&m), big, sizeof big);
        cr_assert_eq(eng_peers_send(t, p, tx, &m, 0), 0);
    }
    cr_assert_eq(atomic_load(&p->queued), 3 * 5000);
    cr_assert_eq(eng_peers_queued(t), 3 * 5000);
    char got[6000];
    cr_assert_eq(zmq_recv(rx, got, sizeof got, 0), 5000);
    cr_assert_eq(memcmp(got, big, sizeof big), 0, "the bytes arrive unchanged");
    cr_assert_eq(atomic_load(&p->queued), 2 * 5000, "a received message gives its bytes back");
    /* A failed send gives them back at once. */
    void *lonely = zmq_socket(ctx, ZMQ_PUSH);
    zmq_msg_t m;
    zmq_msg_init_size(&m, 4000);
    cr_assert_eq(eng_peers_send(t, p, lonely, &m, ZMQ_DONTWAIT), -1);
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(eng_peers_queued(t), 2 * 5000);
    /* The unread two die with the context, and their bytes come back too. */
    zmq_close(lonely);
    zmq_close(tx);
    zmq_close(rx);
    zmq_ctx_term(ctx);
    cr_assert_eq(atomic_load(&p->queued), 0);
    cr_assert_eq(eng_peers_queued(t), 0);
    eng_peers_destroy(&t);
}
