/*
 * peers.c: the election of the one replica that announces the leaves of dead
 * edges.  Every replica hears every PeerHeartbeat; the emitter is the ready
 * replica with the smallest (instance id, incarnation) among those heard from
 * recently.  No
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
    char id[];
} peer_t;

void pres_peers_init(pres_peers_t *peers, const char *self, uint64_t incarnation, uint64_t dead_after_ns)
{
    *peers = (pres_peers_t){.self = rt_xstrdup(self), .incarnation = incarnation, .dead_after_ns = dead_after_ns};
}

void pres_peers_dispose(pres_peers_t *peers)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&peers->peers, &pos)) != NULL)
        free(ent->value);
    rt_map_dispose(&peers->peers);
    free(peers->self);
    peers->self = NULL;
}

int pres_peers_seen(pres_peers_t *peers, const char *instance, uint64_t incarnation, int ready, uint64_t now_ns)
{
    int same_id = strcmp(instance, peers->self) == 0;
    if (same_id && incarnation == peers->incarnation)
        return 0; /* our own */
    size_t len = strlen(instance);
    peer_t *p = rt_map_get(&peers->peers, instance, len);
    if (p == NULL) {
        p = rt_xmalloc(sizeof(*p) + len + 1);
        memcpy(p->id, instance, len + 1);
        rt_map_put(&peers->peers, p->id, len, p);
    }
    /* a new incarnation of an id replaces the old: that process restarted */
    p->incarnation = incarnation;
    p->seen_ns = now_ns;
    p->ready = ready != 0;
    return same_id;
}

static int alive(const pres_peers_t *peers, const peer_t *p, uint64_t now_ns)
{
    return now_ns - p->seen_ns <= peers->dead_after_ns;
}

int pres_peers_is_emitter(pres_peers_t *peers, int self_ready, uint64_t now_ns)
{
    if (!self_ready)
        return 0;
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&peers->peers, &pos)) != NULL) {
        const peer_t *p = ent->value;
        int cmp = strcmp(p->id, peers->self);
        if (p->ready && alive(peers, p, now_ns) && (cmp < 0 || (cmp == 0 && p->incarnation < peers->incarnation)))
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
            free(p);
        }
    }
    return peers->peers.len;
}
