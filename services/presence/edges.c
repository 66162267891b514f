/*
 * edges.c: what presence believes about each edge, and when it stops believing.
 *
 * An edge numbers its batches (seq) within one process lifetime (epoch).  A
 * batch that skips a seq, or a heartbeat naming a seq not received, means
 * batches were lost: the edge is asked for a snapshot (ResyncRequest), which
 * replaces its members.  A larger epoch means the edge restarted: the members
 * of the old process are gone, and since no live edge will say so, presence
 * does (member_gone).  An edge silent for the TTL is dead: same.  Messages of
 * an older epoch, and batches already seen, are stale and dropped.
 * Loop thread only.
 */
#include "pres.h"

#include <string.h>

void pres_edges_init(pres_edges_t *e, uint64_t ttl_ns, uint64_t resync_every_ns, const pres_edges_ops_t *ops,
                     void *ctx)
{
    *e = (pres_edges_t){.ops = *ops, .ctx = ctx, .ttl_ns = ttl_ns, .resync_every_ns = resync_every_ns};
    e->claim_grace_ns = resync_every_ns < 1000000000u ? resync_every_ns : 1000000000u;
}

void pres_edges_dispose(pres_edges_t *e)
{
    pres_view_dispose(&e->view);
    for (size_t i = 0; i < e->nexpired; i++)
        free(e->expired[i].id);
    free(e->expired);
}

/* Remembers an expired edge for a while: our peers keep seeing that we knew it. */
static void remember_expired(pres_edges_t *e, const char *id, uint64_t now_ns)
{
    if (e->nexpired == e->expired_cap) {
        e->expired_cap = e->expired_cap ? 2 * e->expired_cap : 8;
        e->expired = rt_xrealloc(e->expired, e->expired_cap * sizeof(*e->expired));
    }
    e->expired[e->nexpired++] = (struct pres_expired){rt_xstrdup(id), now_ns};
}

static void forget_expired(pres_edges_t *e, uint64_t now_ns)
{
    size_t kept = 0;
    for (size_t i = 0; i < e->nexpired; i++) {
        if (now_ns - e->expired[i].at_ns <= 2 * e->resync_every_ns)
            e->expired[kept++] = e->expired[i];
        else
            free(e->expired[i].id);
    }
    e->nexpired = kept;
}

void pres_edges_each_known(pres_edges_t *e, uint64_t now_ns, void (*fn)(void *ctx, const char *id), void *ctx)
{
    forget_expired(e, now_ns);
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&e->view.edges, &pos)) != NULL)
        fn(ctx, ((const pres_edge_t *)ent->value)->id);
    for (size_t i = 0; i < e->nexpired; i++)
        fn(ctx, e->expired[i].id);
}

static void member_gone(void *ctx, const pres_member_t *m)
{
    pres_edges_t *e = ctx;
    e->ops.member_gone(e->ctx, m);
}

/* Asks the edge for a snapshot, at most once per resync interval. */
static void want_snapshot(pres_edges_t *e, pres_edge_t *edge, uint64_t now_ns)
{
    edge->synced = 0;
    if (edge->resync_sent_ns != 0 && now_ns - edge->resync_sent_ns < e->resync_every_ns)
        return;
    if (e->all_resync_ns != 0 && now_ns - e->all_resync_ns < e->resync_every_ns)
        return; /* every edge was just asked */
    edge->resync_sent_ns = now_ns;
    e->resyncs++;
    e->ops.request_resync(e->ctx, edge->id);
}

/* A new process behind the same edge id.  Its old members go now, unless a snapshot
 * is coming that may still list them (then the snapshot's commit decides). */
static void restart(pres_edges_t *e, pres_edge_t *edge, uint64_t epoch, int snapshot_follows)
{
    e->restarted_edges++;
    pres_view_unstage(edge);
    edge->staging = 0;
    if (!snapshot_follows)
        pres_view_edge_clear(&e->view, edge, member_gone, e);
    edge->restarted = snapshot_follows;
    edge->epoch = epoch;
    edge->last_seq = edge->claimed_seq = 0;
    edge->synced = 1; /* a new process starts empty: seq 1 is its first change */
}

/* Looks the edge up for a message of `epoch`; NULL when the message is stale. */
static pres_edge_t *edge_for(pres_edges_t *e, const char *id, uint64_t epoch, int snapshot, uint64_t now_ns)
{
    int created;
    pres_edge_t *edge = pres_view_edge_get(&e->view, id, epoch, &created);
    if (created) {
        edge->first_heard_ns = now_ns;
        edge->last_heartbeat_ns = now_ns; /* its TTL starts now */
        edge->synced = 1;
    } else if (epoch < edge->epoch) {
        e->stale++;
        return NULL;
    } else if (epoch > edge->epoch) {
        restart(e, edge, epoch, snapshot);
    }
    return edge;
}

/* One part of a snapshot (parts are numbered from 0 and take consecutive seqs).
 * Returns 0, or RT_EINVAL when a part is missing: the half snapshot is dropped. */
static int on_snapshot_part(pres_edges_t *e, pres_edge_t *edge, const Rtsync__V1__PresenceBatch *b, int next)
{
    if (b->snapshot_part == 0) {
        pres_view_unstage(edge); /* a new snapshot: one in progress ended without its last part */
        edge->staging = 0;
    } else if (!edge->staging || !next || b->snapshot_part != (uint32_t)edge->staging) {
        pres_view_unstage(edge);
        edge->staging = 0;
        return RT_EINVAL;
    }
    pres_view_stage(edge, b);
    edge->staging++;
    if (b->snapshot_more)
        return RT_OK;
    pres_view_commit(&e->view, edge, edge->restarted ? member_gone : NULL, e);
    edge->staging = 0;
    edge->restarted = 0;
    edge->synced = 1;
    return RT_OK;
}

static void on_changes(pres_edges_t *e, pres_edge_t *edge, const Rtsync__V1__PresenceBatch *b, int next)
{
    if (edge->staging) { /* the snapshot ended without its last part */
        pres_view_unstage(edge);
        edge->staging = 0;
        edge->synced = 0;
    }
    if (edge->restarted) { /* the snapshot that was to follow the restart never came */
        pres_view_edge_clear(&e->view, edge, member_gone, e);
        edge->restarted = 0;
    }
    if (!next)
        edge->synced = 0;
    for (size_t i = 0; i < b->n_updates; i++) /* best effort even when out of sync */
        pres_view_apply(&e->view, edge, b->updates[i]);
}

void pres_edges_on_batch(pres_edges_t *e, const Rtsync__V1__PresenceBatch *b, uint64_t now_ns)
{
    pres_edge_t *edge = edge_for(e, b->edge, b->edge_epoch, b->snapshot, now_ns);
    if (edge == NULL)
        return;
    int next = b->seq == edge->last_seq + 1;
    /* a one-part snapshot may reuse the last seq (an edge that does not count it);
     * anything else at or below the last seq was seen already */
    if (b->seq <= edge->last_seq && !(b->snapshot && !b->snapshot_more && b->snapshot_part == 0 &&
                                      b->seq == edge->last_seq)) {
        e->stale++;
        return;
    }
    edge->last_seq = b->seq;
    int gap = !next;
    if (b->snapshot)
        gap = on_snapshot_part(e, edge, b, next) != RT_OK; /* a gap before a first part is no loss */
    else
        on_changes(e, edge, b, next);
    if (gap) {
        e->gaps++;
        edge->synced = 0;
    }
    if (!edge->synced && !edge->staging)
        want_snapshot(e, edge, now_ns);
}

void pres_edges_on_heartbeat(pres_edges_t *e, const Rtsync__V1__EdgeHeartbeat *hb, uint64_t now_ns)
{
    pres_edge_t *edge = edge_for(e, hb->edge, hb->edge_epoch, 0, now_ns);
    if (edge == NULL)
        return;
    edge->last_heartbeat_ns = now_ns;
    edge->draining = hb->draining;
    edge->reported_members = hb->members;
    if (hb->seq > edge->last_seq) {
        /* batches up to hb->seq were sent and not received yet: cnats delivers each
         * subject on its own thread, so they may still come; tick() waits a little */
        if (edge->claimed_seq < hb->seq)
            edge->claimed_ns = now_ns;
        edge->claimed_seq = hb->seq;
    } else if (edge->synced && !edge->staging && hb->seq == edge->last_seq && hb->members != edge->members.len) {
        edge->synced = 0; /* same history, different count: trust a snapshot over our view */
        want_snapshot(e, edge, now_ns);
    }
}

/* A heartbeat named a seq that did not arrive in time: those batches are lost (or, for
 * an edge first heard of now, were sent before this replica started). */
static void check_claimed(pres_edges_t *e, pres_edge_t *edge, uint64_t now_ns)
{
    if (edge->claimed_seq <= edge->last_seq || edge->staging || now_ns - edge->claimed_ns < e->claim_grace_ns)
        return;
    e->gaps++;
    edge->last_seq = edge->claimed_seq;
    want_snapshot(e, edge, now_ns);
}

void pres_edges_tick(pres_edges_t *e, uint64_t now_ns)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&e->view.edges, &pos)) != NULL) {
        pres_edge_t *edge = ent->value;
        if (now_ns - edge->last_heartbeat_ns > e->ttl_ns) {
            e->expired_edges++;
            remember_expired(e, edge->id, now_ns);
            pres_view_edge_remove(&e->view, edge, member_gone, e);
            continue;
        }
        check_claimed(e, edge, now_ns);
        if (!edge->synced && !edge->staging)
            want_snapshot(e, edge, now_ns);
    }
}

void pres_edges_resync_all(pres_edges_t *e, int fresh_ttl, uint64_t now_ns)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&e->view.edges, &pos)) != NULL) {
        pres_edge_t *edge = ent->value;
        if (fresh_ttl)
            edge->last_heartbeat_ns = now_ns;
        edge->synced = 0;
    }
    e->all_resync_ns = now_ns;
    e->resyncs++;
    e->ops.request_resync(e->ctx, "");
}

size_t pres_edges_unsynced(const pres_edges_t *e)
{
    size_t n = 0, pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&e->view.edges, &pos)) != NULL) {
        const pres_edge_t *edge = ent->value;
        n += !edge->synced || edge->staging || edge->claimed_seq > edge->last_seq;
    }
    return n;
}
