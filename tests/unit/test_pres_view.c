/* test_pres_view.c: presence's member view (view.c) and edge bookkeeping (edges.c):
 * joins, leaves, states, snapshots, epochs, sequence gaps and expiry. */
#include "../../services/presence/pres.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull
#define MAXU 4096

/* A batch under construction, with storage for its members. */
typedef struct batch {
    Rtsync__V1__PresenceBatch b;
    Rtsync__V1__PresenceUpdate u[MAXU], *up[MAXU];
    Rtsync__V1__Member m[MAXU];
    char names[MAXU][3][32];
} batch_t;

static batch_t *batch_new(const char *edge, uint64_t epoch, uint64_t seq, int snapshot)
{
    batch_t *b = calloc(1, sizeof(*b));
    rtsync__v1__presence_batch__init(&b->b);
    b->b.edge = (char *)edge;
    b->b.edge_epoch = epoch;
    b->b.seq = seq;
    b->b.snapshot = snapshot;
    b->b.updates = b->up;
    return b;
}

static void batch_add(batch_t *b, Rtsync__V1__PresenceKind kind, const char *channel, const char *conn,
                      const char *state, int64_t since)
{
    size_t i = b->b.n_updates++;
    snprintf(b->names[i][0], 32, "%s", channel);
    snprintf(b->names[i][1], 32, "%s", conn);
    snprintf(b->names[i][2], 32, "user-%s", conn);
    rtsync__v1__member__init(&b->m[i]);
    b->m[i].channel = b->names[i][0];
    b->m[i].conn = b->names[i][1];
    b->m[i].user = b->names[i][2];
    b->m[i].edge = b->b.edge;
    b->m[i].state.data = (uint8_t *)state;
    b->m[i].state.len = state ? strlen(state) : 0;
    b->m[i].since_ms = since;
    rtsync__v1__presence_update__init(&b->u[i]);
    b->u[i].kind = kind;
    b->u[i].member = &b->m[i];
    b->up[i] = &b->u[i];
}

#define JOIN RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_JOIN
#define LEAVE RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE
#define STATE RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE

typedef struct fixture {
    pres_edges_t e;
    int resyncs;
    char last_resync[64];
    int gone;
    char gone_conns[MAXU][32];
} fixture_t;

static void on_resync(void *ctx, const char *edge)
{
    fixture_t *f = ctx;
    f->resyncs++;
    snprintf(f->last_resync, sizeof(f->last_resync), "%s", edge);
}

static void on_gone(void *ctx, const pres_member_t *m)
{
    fixture_t *f = ctx;
    if (f->gone < MAXU)
        snprintf(f->gone_conns[f->gone], 32, "%s", m->conn);
    f->gone++;
}

static fixture_t *fixture_new(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    static const pres_edges_ops_t ops = {.request_resync = on_resync, .member_gone = on_gone};
    pres_edges_init(&f->e, 3000 * MS, 500 * MS, &ops, f);
    return f;
}

static void fixture_free(fixture_t *f)
{
    pres_edges_dispose(&f->e);
    free(f);
}

static void heartbeat(fixture_t *f, const char *edge, uint64_t epoch, uint64_t seq, uint32_t members, uint64_t now)
{
    Rtsync__V1__EdgeHeartbeat hb = RTSYNC__V1__EDGE_HEARTBEAT__INIT;
    hb.edge = (char *)edge;
    hb.edge_epoch = epoch;
    hb.seq = seq;
    hb.members = members;
    pres_edges_on_heartbeat(&f->e, &hb, now);
}

static size_t channel_size(fixture_t *f, const char *channel)
{
    const pres_channel_t *ch = pres_view_channel(&f->e.view, channel);
    return ch ? ch->members.len : 0;
}

static void test_join_state_leave(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    batch_add(b, JOIN, "room", "c1", NULL, 10);
    batch_add(b, JOIN, "room", "c2", "{\"typing\":true}", 5);
    batch_add(b, JOIN, "other", "c1", NULL, 7);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    CU_ASSERT_EQUAL(channel_size(f, "room"), 2);
    CU_ASSERT_EQUAL(f->e.view.nmembers, 3);
    const pres_member_t **list = NULL;
    size_t cap = 0;
    size_t n = pres_view_list(&f->e.view, "room", &list, &cap);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(list[0]->conn, "c2"); /* by since_ms */
    CU_ASSERT_STRING_EQUAL(list[0]->user, "user-c2");
    CU_ASSERT_EQUAL(list[0]->state_len, 15);
    free(list);
    free(b);

    b = batch_new("e1", 1, 2, 0);
    batch_add(b, STATE, "room", "c1", "{\"cursor\":3}", 99);
    batch_add(b, LEAVE, "room", "c2", NULL, 0);
    pres_edges_on_batch(&f->e, &b->b, 2 * MS);
    const pres_member_t *m = pres_view_member(&f->e.view, "room", "c1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->since_ms, 10); /* a state change keeps the join time */
    CU_ASSERT_NSTRING_EQUAL(m->state, "{\"cursor\":3}", m->state_len);
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "c2"));
    free(b);
    b = batch_new("e1", 1, 3, 0); /* same size, then cleared */
    batch_add(b, STATE, "room", "c1", "{\"cursor\":4}", 99);
    pres_edges_on_batch(&f->e, &b->b, 2 * MS);
    CU_ASSERT_NSTRING_EQUAL(m->state, "{\"cursor\":4}", m->state_len);
    free(b);
    b = batch_new("e1", 1, 4, 0);
    batch_add(b, STATE, "room", "c1", NULL, 99);
    pres_edges_on_batch(&f->e, &b->b, 2 * MS);
    CU_ASSERT_EQUAL(m->state_len, 0);
    CU_ASSERT_PTR_NULL(m->state);
    CU_ASSERT_EQUAL(f->resyncs, 0);
    CU_ASSERT_EQUAL(f->gone, 0); /* a live edge announces its own leaves */
    free(b);

    b = batch_new("e1", 1, 5, 0);
    batch_add(b, LEAVE, "room", "c1", NULL, 0);
    batch_add(b, LEAVE, "other", "c1", NULL, 0);
    pres_edges_on_batch(&f->e, &b->b, 3 * MS);
    CU_ASSERT_PTR_NULL(pres_view_channel(&f->e.view, "room")); /* empty channels go */
    CU_ASSERT_EQUAL(f->e.view.nmembers, 0);
    CU_ASSERT_EQUAL(f->e.view.channels.len, 0);
    free(b);
    fixture_free(f);
}

static void test_stale_and_gap(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    batch_add(b, JOIN, "room", "c1", NULL, 1);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS); /* a duplicate */
    CU_ASSERT_EQUAL(f->e.stale, 1);
    free(b);
    b = batch_new("e1", 1, 3, 0); /* seq 2 was lost */
    batch_add(b, JOIN, "room", "c3", NULL, 3);
    pres_edges_on_batch(&f->e, &b->b, 2 * MS);
    CU_ASSERT_EQUAL(f->resyncs, 1);
    CU_ASSERT_STRING_EQUAL(f->last_resync, "e1");
    CU_ASSERT_EQUAL(pres_edges_unsynced(&f->e), 1);
    CU_ASSERT_EQUAL(channel_size(f, "room"), 2); /* applied anyway */
    free(b);
    /* the snapshot answer: c2 (the lost join) and c3; c1 left meanwhile */
    b = batch_new("e1", 1, 4, 1);
    batch_add(b, JOIN, "room", "c2", NULL, 2);
    batch_add(b, JOIN, "room", "c3", NULL, 3);
    pres_edges_on_batch(&f->e, &b->b, 3 * MS);
    CU_ASSERT_EQUAL(pres_edges_unsynced(&f->e), 0);
    CU_ASSERT_EQUAL(channel_size(f, "room"), 2);
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "c1"));
    CU_ASSERT_EQUAL(f->gone, 0); /* same epoch: the edge announced that leave */
    free(b);
    fixture_free(f);
}

static void test_heartbeat_ahead(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    batch_add(b, JOIN, "room", "c1", NULL, 1);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    heartbeat(f, "e1", 1, 1, 1, 2 * MS);
    pres_edges_tick(&f->e, 2 * MS);
    CU_ASSERT_EQUAL(f->resyncs, 0);
    heartbeat(f, "e1", 1, 2, 2, 3 * MS); /* names seq 2: may still be on its way */
    pres_edges_tick(&f->e, 100 * MS);
    CU_ASSERT_EQUAL(f->resyncs, 0);
    CU_ASSERT_EQUAL(pres_edges_unsynced(&f->e), 1);
    pres_edges_tick(&f->e, 600 * MS); /* it did not come */
    CU_ASSERT_EQUAL(f->resyncs, 1);
    pres_edges_tick(&f->e, 700 * MS); /* asked again only after the resync interval */
    CU_ASSERT_EQUAL(f->resyncs, 1);
    pres_edges_tick(&f->e, 1200 * MS);
    CU_ASSERT_EQUAL(f->resyncs, 2);
    /* a count that differs at the same seq */
    b = batch_new("e1", 1, 3, 1);
    batch_add(b, JOIN, "room", "c1", NULL, 1);
    pres_edges_on_batch(&f->e, &b->b, 1300 * MS);
    free(b);
    CU_ASSERT_EQUAL(pres_edges_unsynced(&f->e), 0);
    heartbeat(f, "e1", 1, 3, 5, 1800 * MS);
    CU_ASSERT_EQUAL(f->resyncs, 3);
    fixture_free(f);
}

static void test_epoch_change(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    batch_add(b, JOIN, "room", "old1", NULL, 1);
    batch_add(b, JOIN, "room", "keep", NULL, 2);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    /* the edge restarted; its snapshot lists keep only */
    b = batch_new("e1", 2, 1, 1);
    batch_add(b, JOIN, "room", "keep", NULL, 2);
    batch_add(b, JOIN, "room", "new1", NULL, 3);
    pres_edges_on_batch(&f->e, &b->b, 2 * MS);
    free(b);
    CU_ASSERT_EQUAL(f->gone, 1);
    CU_ASSERT_STRING_EQUAL(f->gone_conns[0], "old1");
    CU_ASSERT_EQUAL(channel_size(f, "room"), 2);
    /* an old-epoch message is stale */
    b = batch_new("e1", 1, 2, 0);
    batch_add(b, JOIN, "room", "zombie", NULL, 4);
    pres_edges_on_batch(&f->e, &b->b, 3 * MS);
    free(b);
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "zombie"));
    /* a restart seen first in a heartbeat: every member goes, once */
    heartbeat(f, "e1", 3, 0, 0, 4 * MS);
    CU_ASSERT_EQUAL(f->gone, 3);
    CU_ASSERT_EQUAL(f->e.view.nmembers, 0);
    heartbeat(f, "e1", 3, 0, 0, 5 * MS);
    CU_ASSERT_EQUAL(f->gone, 3);
    CU_ASSERT_EQUAL(f->resyncs, 0);
    fixture_free(f);
}

static void collect_id(void *ctx, const char *id)
{
    strcat(ctx, id);
    strcat(ctx, " ");
}

static void test_expiry(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    for (int i = 0; i < 2000; i++) {
        char conn[16];
        snprintf(conn, sizeof(conn), "c%d", i);
        batch_add(b, JOIN, "big", conn, NULL, i);
    }
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    b = batch_new("e2", 1, 1, 0);
    batch_add(b, JOIN, "big", "other", NULL, 0);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    CU_ASSERT_EQUAL(channel_size(f, "big"), 2001);
    heartbeat(f, "e1", 1, 1, 2000, 1000 * MS);
    heartbeat(f, "e2", 1, 1, 1, 3500 * MS);
    pres_edges_tick(&f->e, 3900 * MS);
    CU_ASSERT_EQUAL(f->gone, 0);
    pres_edges_tick(&f->e, 4001 * MS); /* e1 silent for more than the TTL */
    CU_ASSERT_EQUAL(f->gone, 2000);
    CU_ASSERT_EQUAL(channel_size(f, "big"), 1);
    CU_ASSERT_PTR_NULL(pres_view_edge(&f->e.view, "e1"));
    CU_ASSERT_EQUAL(f->e.expired_edges, 1);
    pres_edges_tick(&f->e, 4002 * MS);
    CU_ASSERT_EQUAL(f->gone, 2000); /* no second announcement */
    /* our PeerHeartbeats keep naming e1 for two resync intervals */
    char known[256] = "";
    pres_edges_each_known(&f->e, 5001 * MS, collect_id, known);
    CU_ASSERT_STRING_EQUAL(known, "e2 e1 ");
    known[0] = '\0';
    pres_edges_each_known(&f->e, 5002 * MS, collect_id, known);
    CU_ASSERT_STRING_EQUAL(known, "e2 ");
    fixture_free(f);
}

static void test_snapshot_parts(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    batch_add(b, JOIN, "room", "a", NULL, 1);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    b = batch_new("e1", 1, 2, 1);
    b->b.snapshot_more = 1;
    batch_add(b, JOIN, "room", "b", NULL, 2);
    pres_edges_on_batch(&f->e, &b->b, 2 * MS);
    free(b);
    CU_ASSERT_PTR_NOT_NULL(pres_view_member(&f->e.view, "room", "a")); /* not replaced yet */
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "b"));
    CU_ASSERT_EQUAL(pres_edges_unsynced(&f->e), 1);
    b = batch_new("e1", 1, 3, 1);
    b->b.snapshot_part = 1;
    batch_add(b, JOIN, "room", "c", NULL, 3);
    pres_edges_on_batch(&f->e, &b->b, 3 * MS);
    free(b);
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "a"));
    CU_ASSERT_PTR_NOT_NULL(pres_view_member(&f->e.view, "room", "b"));
    CU_ASSERT_PTR_NOT_NULL(pres_view_member(&f->e.view, "room", "c"));
    CU_ASSERT_EQUAL(pres_edges_unsynced(&f->e), 0);
    /* a part lost in the middle: the half snapshot is dropped, a new one asked for */
    b = batch_new("e1", 1, 4, 1);
    b->b.snapshot_more = 1;
    batch_add(b, JOIN, "room", "x", NULL, 4);
    pres_edges_on_batch(&f->e, &b->b, 4 * MS);
    free(b);
    b = batch_new("e1", 1, 6, 1);
    b->b.snapshot_part = 2;
    batch_add(b, JOIN, "room", "y", NULL, 5);
    pres_edges_on_batch(&f->e, &b->b, 5 * MS);
    free(b);
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "x"));
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "y"));
    CU_ASSERT_PTR_NOT_NULL(pres_view_member(&f->e.view, "room", "b"));
    CU_ASSERT_EQUAL(f->resyncs, 1);
    /* a lost first part: the second alone replaces nothing */
    b = batch_new("e1", 1, 8, 1);
    b->b.snapshot_part = 1;
    batch_add(b, JOIN, "room", "z", NULL, 6);
    pres_edges_on_batch(&f->e, &b->b, 600 * MS);
    free(b);
    CU_ASSERT_PTR_NULL(pres_view_member(&f->e.view, "room", "z"));
    CU_ASSERT_EQUAL(f->resyncs, 2);
    fixture_free(f);
}

static void test_conn_moves(void)
{
    fixture_t *f = fixture_new();
    batch_t *b = batch_new("e1", 1, 1, 0);
    batch_add(b, JOIN, "room", "c1", NULL, 1);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    b = batch_new("e2", 1, 1, 0);
    batch_add(b, JOIN, "room", "c1", NULL, 2);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    const pres_member_t *m = pres_view_member(&f->e.view, "room", "c1");
    CU_ASSERT_STRING_EQUAL(m->edge->id, "e2");
    CU_ASSERT_EQUAL(f->e.view.nmembers, 1);
    b = batch_new("e1", 1, 2, 0); /* the old edge's late leave does not remove it */
    batch_add(b, LEAVE, "room", "c1", NULL, 0);
    pres_edges_on_batch(&f->e, &b->b, 1 * MS);
    free(b);
    CU_ASSERT_PTR_NOT_NULL(pres_view_member(&f->e.view, "room", "c1"));
    fixture_free(f);
}

static const CU_TestInfo tests[] = {
    {"join, state, leave", test_join_state_leave},
    {"stale batches, gaps, resync snapshot", test_stale_and_gap},
    {"a heartbeat ahead of its batches", test_heartbeat_ahead},
    {"epoch change: leaves of the old process once", test_epoch_change},
    {"expiry of a silent edge with 2000 members", test_expiry},
    {"snapshot in parts", test_snapshot_parts},
    {"a conn that moves to another edge", test_conn_moves},
    CU_TEST_INFO_NULL,
};

void test_pres_view_register(void)
{
    unit_add_suite("pres_view", tests);
}
