/*
 * peers.c: the election of the one replica that announces the leaves of dead
 * edges.  Every replica hears every PeerHeartbeat, which lists the edges its
 * sender knows; the emitter for a dead edge is the ready replica with the
 * smallest (instance id, incarnation) among those heard from recently that
 * know the edge.  (Only replicas that know an edge ever decide about it; one
 * restarted after the edge died knows nothing of it and must not be waited for.)
 * A peer's list lags behind: for an edge we heard of less than a heartbeat
 * interval before the peer's last heartbeat, the peer counts as knowing it.  No
 * messages are exchanged to agree: replicas that heard the same heartbeats
 * reach the same answer, and a replica that is not ready (just restarted,
 * still rebuilding its view) never announces, so it cannot announce leaves
 * from a partial view.  A replica is counted dead after dead_after (api.c: about
 * TTL / 2), well before an edge's TTL runs out: when a node crash takes an edge
 * and the emitter down together, the next replica is the emitter by the time
 * the edge's members expire, and their leaves are not lost.  A replica that
 * stops (SIGTERM) says ready = false first, so the next one takes over at once.
 * Loop thread only.
 */
#include "pres.h"

#include <stdlib.h>
#include <string.h>

typedef struct peer {
    uint64_t seen_ns, incarnation;
    int ready;
    rt_map_t edges; /* the edges it knows: id -> its own copy of the id */
    char id[];
} peer_t;

static void forget_edges(peer_t *p)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&p->edges, &pos)) != NULL)
        free(ent->value);
    rt_map_dispose(&p->edges);
    p->edges = (rt_map_t){0};
}

static void peer_free(peer_t *p)
{
    forget_edges(p);
    free(p);
}

void pres_peers_init(pres_peers_t *peers, const char *self, uint64_t incarnation, uint64_t dead_after_ns,
                     uint64_t list_lag_ns)
{
    *peers = (pres_peers_t){.self = rt_xstrdup(self),
                            .incarnation = incarnation,
                            .dead_after_ns = dead_after_ns,
                            .list_lag_ns = list_lag_ns};
}

void pres_peers_dispose(pres_peers_t *peers)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&peers->peers, &pos)) != NULL)
        peer_free(ent->value);
    rt_map_dispose(&peers->peers);
    free(peers->self);
    peers->self = NULL;
}

int pres_peers_seen(pres_peers_t *peers, const Rtsync__V1__PeerHeartbeat *hb, uint64_t now_ns)
{
    int same_id = strcmp(hb->instance, peers->self) == 0;
    if (same_id && hb->incarnation == peers->incarnation)
        return 0; /* our own */
    size_t len = strlen(hb->instance);
    peer_t *p = rt_map_get(&peers->peers, hb->instance, len);
    if (p == NULL) {
        p = rt_xcalloc(1, sizeof(*p) + len + 1);
        memcpy(p->id, hb->instance, len + 1);
        rt_map_put(&peers->peers, p->id, len, p);
    }
    /* a new incarnation of an id replaces the old: that process restarted */
    p->incarnation = hb->incarnation;
    p->seen_ns = now_ns;
    p->ready = hb->ready;
    forget_edges(p);
    for (size_t i = 0; i < hb->n_edges; i++) {
        char *id = rt_xstrdup(hb->edges[i]);
        free(rt_map_put(&p->edges, id, strlen(id), id)); /* a repeated id replaces itself */
    }
    return same_id;
}

static int alive(const pres_peers_t *peers, const peer_t *p, uint64_t now_ns)
{
    return now_ns - p->seen_ns <= peers->dead_after_ns;
}

/* Whether p knows the edge (see pres_peers_is_emitter). */
static int knows(const pres_peers_t *peers, const peer_t *p, const char *edge, size_t elen, uint64_t first_heard_ns)
{
    return rt_map_get(&p->edges, edge, elen) != NULL || p->seen_ns < first_heard_ns + peers->list_lag_ns;
}

int pres_peers_is_emitter(pres_peers_t *peers, int self_ready, const char *edge, uint64_t first_heard_ns,
                          uint64_t now_ns)
{
    if (!self_ready)
        return 0;
    size_t pos = 0, elen = strlen(edge);
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&peers->peers, &pos)) != NULL) {
        const peer_t *p = ent->value;
        int cmp = strcmp(p->id, peers->self);
        int before_us = cmp < 0 || (cmp == 0 && p->incarnation < peers->incarnation);
        if (before_us && p->ready && alive(peers, p, now_ns) && knows(peers, p, edge, elen, first_heard_ns))
            return 0;
    }
    return 1;
}

size_t pres_peers_expire(pres_peers_t *peers, uint64_t now_ns)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&peers->peers, &pos)) != NULL) {
        peer_t *p = ent->value;
        if (!alive(peers, p, now_ns)) {
            rt_map_remove(&peers->peers, p->id, strlen(p->id));
            peer_free(p);
        }
    }
    return peers->peers.len;
}
