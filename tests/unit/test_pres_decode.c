/* test_pres_decode.c: presence's decoding and validation of untrusted messages
 * (decode.c), and the election of the replica that announces leaves (peers.c). */
#include "../../services/presence/pres.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

typedef struct fixture {
    pres_arena_t arena;
    uint8_t buf[4096];
    size_t len;
    Rtsync__V1__Member m;
    Rtsync__V1__PresenceUpdate u, *up[1];
    Rtsync__V1__PresenceBatch b;
} fixture_t;

static fixture_t *fixture_new(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    rt_pb_arena_init(&f->arena, 1 << 16);
    rtsync__v1__member__init(&f->m);
    f->m.channel = "room";
    f->m.conn = "c1";
    f->m.user = "alice";
    f->m.state.data = (uint8_t *)"{\"typing\":\n true}";
    f->m.state.len = strlen((const char *)f->m.state.data);
    rtsync__v1__presence_update__init(&f->u);
    f->u.member = &f->m;
    f->up[0] = &f->u;
    rtsync__v1__presence_batch__init(&f->b);
    f->b.edge = "edge-1";
    f->b.seq = 1;
    f->b.n_updates = 1;
    f->b.updates = f->up;
    return f;
}

static void fixture_free(fixture_t *f)
{
    rt_pb_arena_dispose(&f->arena);
    free(f);
}

static int decode_batch(fixture_t *f, const char **why)
{
    f->len = rtsync__v1__presence_batch__pack(&f->b, f->buf);
    Rtsync__V1__PresenceBatch *out;
    *why = NULL;
    return pres_decode_batch(&f->arena, (rt_slice_t){f->buf, f->len}, &out, why);
}

static void test_batch(void)
{
    fixture_t *f = fixture_new();
    const char *why;
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_OK);
    Rtsync__V1__PresenceBatch *out;
    CU_ASSERT_EQUAL_FATAL(pres_decode_batch(&f->arena, (rt_slice_t){f->buf, f->len}, &out, &why), RT_OK);
    CU_ASSERT_STRING_EQUAL(out->updates[0]->member->edge, "edge-1"); /* filled from the batch */
    f->m.edge = "edge-2";
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    CU_ASSERT_STRING_EQUAL(why, "member of another edge");
    f->m.edge = "";
    f->m.channel = "bad channel";
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->m.channel = "room";
    f->m.conn = "";
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->m.conn = "c\x01";
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->m.conn = "c\xc3\xa9"; /* UTF-8 is fine */
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_OK);
    f->m.user = "\xc0\xaf"; /* overlong */
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->m.user = "";
    f->m.state.data = (uint8_t *)"\xed\xa0\x80"; /* a surrogate */
    f->m.state.len = 3;
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->m.state.len = 0;
    f->u.kind = 7;
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->u.kind = 0;
    f->u.member = NULL;
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->u.member = &f->m;
    f->b.edge = "";
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    f->b.edge = "edge-1";
    f->b.snapshot_more = 1;
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_EINVAL);
    fixture_free(f);
}

static void test_garbage_and_truncation(void)
{
    fixture_t *f = fixture_new();
    const char *why;
    CU_ASSERT_EQUAL(decode_batch(f, &why), RT_OK);
    size_t full = f->len;
    Rtsync__V1__PresenceBatch *b;
    Rtsync__V1__EdgeHeartbeat *hb;
    Rtsync__V1__PresenceQuery *q;
    Rtsync__V1__SignalRequest *s;
    Rtsync__V1__PeerHeartbeat *p;
    for (size_t n = 1; n < full; n++) { /* every cut: only one before the update may decode */
        int err = pres_decode_batch(&f->arena, (rt_slice_t){f->buf, n}, &b, &why);
        CU_ASSERT(err == RT_EINVAL || (err == RT_OK && b->n_updates == 0));
    }
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    rt_slice_t j = {junk, sizeof(junk)};
    CU_ASSERT_EQUAL(pres_decode_batch(&f->arena, j, &b, &why), RT_EINVAL);
    CU_ASSERT_EQUAL(pres_decode_heartbeat(&f->arena, j, &hb, &why), RT_EINVAL);
    CU_ASSERT_EQUAL(pres_decode_query(&f->arena, j, &q, &why), RT_EINVAL);
    CU_ASSERT_EQUAL(pres_decode_signal(&f->arena, j, &s, &why), RT_EINVAL);
    CU_ASSERT_EQUAL(pres_decode_peer(&f->arena, j, &p, &why), RT_EINVAL);
    /* an empty message decodes but lacks the required ids */
    rt_slice_t empty = {junk, 0};
    CU_ASSERT_EQUAL(pres_decode_heartbeat(&f->arena, empty, &hb, &why), RT_EINVAL);
    CU_ASSERT_EQUAL(pres_decode_query(&f->arena, empty, &q, &why), RT_EINVAL);
    CU_ASSERT_EQUAL(pres_decode_peer(&f->arena, empty, &p, &why), RT_EINVAL);
    rt_slice_t huge = {f->buf, PRES_MAX_MESSAGE + 1};
    CU_ASSERT_EQUAL(pres_decode_batch(&f->arena, huge, &b, &why), RT_ETOOBIG);
    fixture_free(f);
}

static void test_query_signal_peer(void)
{
    fixture_t *f = fixture_new();
    const char *why;
    Rtsync__V1__PresenceQuery q = RTSYNC__V1__PRESENCE_QUERY__INIT, *qo;
    q.channel = "a.b:c-d_1";
    f->len = rtsync__v1__presence_query__pack(&q, f->buf);
    CU_ASSERT_EQUAL(pres_decode_query(&f->arena, (rt_slice_t){f->buf, f->len}, &qo, &why), RT_OK);
    CU_ASSERT_STRING_EQUAL(qo->channel, "a.b:c-d_1");
    char longname[140];
    memset(longname, 'x', 129);
    longname[129] = '\0';
    q.channel = longname;
    f->len = rtsync__v1__presence_query__pack(&q, f->buf);
    CU_ASSERT_EQUAL(pres_decode_query(&f->arena, (rt_slice_t){f->buf, f->len}, &qo, &why), RT_EINVAL);

    Rtsync__V1__SignalRequest s = RTSYNC__V1__SIGNAL_REQUEST__INIT, *so;
    s.channel = "room";
    s.to_conn = "c2";
    s.data.data = (uint8_t *)"{}";
    s.data.len = 2;
    f->len = rtsync__v1__signal_request__pack(&s, f->buf);
    CU_ASSERT_EQUAL(pres_decode_signal(&f->arena, (rt_slice_t){f->buf, f->len}, &so, &why), RT_OK);
    s.to_conn = "";
    f->len = rtsync__v1__signal_request__pack(&s, f->buf);
    CU_ASSERT_EQUAL(pres_decode_signal(&f->arena, (rt_slice_t){f->buf, f->len}, &so, &why), RT_EINVAL);

    Rtsync__V1__PeerHeartbeat p = RTSYNC__V1__PEER_HEARTBEAT__INIT, *po;
    p.instance = "presence-1";
    p.ready = 1;
    f->len = rtsync__v1__peer_heartbeat__pack(&p, f->buf);
    CU_ASSERT_EQUAL(pres_decode_peer(&f->arena, (rt_slice_t){f->buf, f->len}, &po, &why), RT_OK);
    CU_ASSERT_TRUE(po->ready);
    fixture_free(f);
}

/* A PeerHeartbeat from instance/incarnation, naming the edges in `edges` (NULL-terminated). */
static int peer_seen(pres_peers_t *peers, const char *instance, uint64_t incarnation, int ready, const char **edges,
                     uint64_t now)
{
    Rtsync__V1__PeerHeartbeat hb = RTSYNC__V1__PEER_HEARTBEAT__INIT;
    hb.instance = (char *)instance;
    hb.incarnation = incarnation;
    hb.ready = ready;
    hb.edges = (char **)edges;
    while (edges != NULL && edges[hb.n_edges] != NULL)
        hb.n_edges++;
    return pres_peers_seen(peers, &hb, now);
}

static const char *E1[] = {"edge-1", NULL};
static const char *E12[] = {"edge-1", "edge-2", NULL};

static void test_election(void)
{
    pres_peers_t a, b;
    pres_peers_init(&a, "presence-1", 11, 1000 * MS, 100 * MS);
    pres_peers_init(&b, "presence-2", 22, 1000 * MS, 100 * MS);
    uint64_t now = 10000 * MS;
    CU_ASSERT_FALSE(pres_peers_is_emitter(&a, 0, "edge-1", 0, now)); /* not ready: never */
    CU_ASSERT_TRUE(pres_peers_is_emitter(&a, 1, "edge-1", 0, now));  /* alone */
    CU_ASSERT_EQUAL(peer_seen(&a, "presence-2", 22, 1, E1, now), 0);
    peer_seen(&b, "presence-1", 11, 1, E1, now);
    peer_seen(&b, "presence-2", 22, 1, E1, now); /* its own heartbeat is ignored */
    CU_ASSERT_TRUE(pres_peers_is_emitter(&a, 1, "edge-1", 0, now));
    CU_ASSERT_FALSE(pres_peers_is_emitter(&b, 1, "edge-1", 0, now)); /* exactly one */
    /* presence-1 restarts (a new incarnation, not ready): presence-2 takes over at once */
    peer_seen(&b, "presence-1", 33, 0, NULL, now + 100 * MS);
    CU_ASSERT_TRUE(pres_peers_is_emitter(&b, 1, "edge-1", 0, now + 100 * MS));
    /* ready again, but it never heard of edge-1 (which died meanwhile): presence-2 still
     * announces edge-1's leaves, presence-1 those of the edges both know */
    peer_seen(&b, "presence-1", 33, 1, (const char *[]){"edge-2", NULL}, now + 200 * MS);
    CU_ASSERT_TRUE(pres_peers_is_emitter(&b, 1, "edge-1", 0, now + 200 * MS));
    CU_ASSERT_FALSE(pres_peers_is_emitter(&b, 1, "edge-2", 0, now + 200 * MS));
    peer_seen(&b, "presence-1", 33, 1, E12, now + 300 * MS);
    CU_ASSERT_FALSE(pres_peers_is_emitter(&b, 1, "edge-1", 0, now + 300 * MS));
    /* an edge presence-2 heard of just now: presence-1's list is too early to tell */
    peer_seen(&b, "presence-1", 33, 1, E1, now + 310 * MS);
    CU_ASSERT_TRUE(pres_peers_is_emitter(&b, 1, "edge-9", 0, now + 310 * MS));
    CU_ASSERT_FALSE(pres_peers_is_emitter(&b, 1, "edge-9", now + 250 * MS, now + 310 * MS));
    peer_seen(&b, "presence-1", 33, 1, E12, now + 300 * MS);
    /* presence-1 dies silently: after dead_after, presence-2 emits */
    CU_ASSERT_FALSE(pres_peers_is_emitter(&b, 1, "edge-1", 0, now + 1300 * MS));
    CU_ASSERT_TRUE(pres_peers_is_emitter(&b, 1, "edge-1", 0, now + 1301 * MS));
    CU_ASSERT_EQUAL(pres_peers_expire(&b, now + 1301 * MS), 0);
    /* a third replica with a larger id never emits while a smaller one lives */
    peer_seen(&a, "presence-3", 44, 1, E1, now);
    CU_ASSERT_TRUE(pres_peers_is_emitter(&a, 1, "edge-1", 0, now));
    pres_peers_dispose(&a);
    pres_peers_dispose(&b);
}

static void test_election_same_id(void)
{
    /* two processes given the same RT_INSTANCE_ID: the smaller incarnation emits */
    pres_peers_t x, y;
    pres_peers_init(&x, "presence", 5, 1000 * MS, 100 * MS);
    pres_peers_init(&y, "presence", 9, 1000 * MS, 100 * MS);
    uint64_t now = 10000 * MS;
    CU_ASSERT_EQUAL(peer_seen(&x, "presence", 9, 1, E1, now), 1); /* noticed */
    CU_ASSERT_EQUAL(peer_seen(&y, "presence", 5, 1, E1, now), 1);
    CU_ASSERT_EQUAL(peer_seen(&x, "presence", 5, 1, E1, now), 0); /* its own */
    CU_ASSERT_TRUE(pres_peers_is_emitter(&x, 1, "edge-1", 0, now));
    CU_ASSERT_FALSE(pres_peers_is_emitter(&y, 1, "edge-1", 0, now));
    pres_peers_dispose(&x);
    pres_peers_dispose(&y);
}

static const CU_TestInfo tests[] = {
    {"batch validation", test_batch},
    {"garbage and truncated input on every decoder", test_garbage_and_truncation},
    {"query, signal and peer messages", test_query_signal_peer},
    {"election of the leave emitter", test_election},
    {"election between two processes with one instance id", test_election_same_id},
    CU_TEST_INFO_NULL,
};

void test_pres_decode_register(void)
{
    unit_add_suite("pres_decode", tests);
}
