/*
 * pres.h: the presence service's internal interfaces.
 *
 * Threads: one.  The main thread runs an rt_loop; every rt_bus callback
 * (api.c), the edge bookkeeping (edges.c), the member view (view.c) and the
 * replica election (peers.c) run on it, so nothing here locks.  decode.c is
 * pure and may be called from any thread (the fuzz target does).
 */
#ifndef PRES_H
#define PRES_H

#include "rt/bus.h"
#include "rt/common.h"
#include "rt/loop.h"
#include "rt/map.h"
#include "rt/pb.h"
#include "rtsync/v1/presence.pb-c.h"

#include <stdint.h>

#define PRES_MAX_CHANNEL 128
#define PRES_MAX_ID 128            /* edge, conn and instance ids */
#define PRES_MAX_USER 256
#define PRES_MAX_STATE 65536       /* a member's JSON state (RT_MAX_FRAME's default) */
#define PRES_MAX_MESSAGE (8u << 20) /* larger input is refused before decoding */
#define PRES_MAX_REPLY (900 * 1024) /* a PresenceReply stays below NATS's 1 MiB payload limit */

typedef struct pres_config {
    const char *nats_url;
    const char *instance_id;
    int log_level; /* rt_log_level_t */
    int64_t ttl_ms;
} pres_config_t;

/* ---- decode.c: pure decoding and validation of untrusted bytes ---------------- */

/* A bump allocator for protobuf-c, reset before each message: decoding costs no malloc. */
typedef rt_pb_arena_t pres_arena_t; /* rt/pb.h */


/* Any thread.  Each resets the arena, decodes and validates; on success *out borrows the
 * arena until its next use.  RT_EINVAL (garbage or an invalid field; *why is a static
 * reason) or RT_ETOOBIG.  Never aborts on any input.  A batch's members all get the
 * batch's edge (a member naming another edge is invalid). */
int pres_decode_batch(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PresenceBatch **out, const char **why);
int pres_decode_heartbeat(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__EdgeHeartbeat **out, const char **why);
int pres_decode_query(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PresenceQuery **out, const char **why);
int pres_decode_signal(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__SignalRequest **out, const char **why);
int pres_decode_peer(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PeerHeartbeat **out, const char **why);

/* [A-Za-z0-9_.:-]{1,128} (PROTOCOL.md section 2). */
int pres_channel_valid(const char *s);
/* Valid UTF-8 without control characters, 1..max bytes (0..max if may_be_empty). */
int pres_text_valid(const char *s, size_t max, int may_be_empty);

/* ---- view.c: who is in which channel, by edge and by channel ------------------------ */

typedef struct pres_edge pres_edge_t;

/* One member: a connection subscribed to a channel through an edge.  `key` is
 * "channel\0conn" (the edge's map key); conn alone keys the channel's map. */
typedef struct pres_member {
    pres_edge_t *edge;
    const char *channel, *conn, *user; /* point into key[] */
    size_t keylen;                     /* strlen(channel) + 1 + strlen(conn) */
    uint8_t *state;                    /* owned, NULL when empty */
    size_t state_len;
    int64_t since_ms;
    char key[]; /* channel \0 conn \0 user \0 */
} pres_member_t;

/* One edge as presence knows it (edges.c decides when its members change). */
struct pres_edge {
    char *id;
    uint64_t epoch, last_seq;
    uint64_t claimed_seq, claimed_ns; /* the largest seq a heartbeat named, and since when */
    uint64_t first_heard_ns;          /* when this replica first heard of the edge */
    uint64_t last_heartbeat_ns, resync_sent_ns;
    uint32_t reported_members; /* from its last heartbeat */
    int synced;                /* its members are known completely (from a snapshot or its start) */
    int staging;               /* parts of a snapshot received so far, 0: none in progress */
    int restarted;             /* a new epoch began: members the next snapshot lacks are gone */
    int draining;
    rt_map_t members;          /* "channel\0conn" -> pres_member_t */
    pres_member_t **staged;    /* parts of a snapshot not complete yet (snapshot_more) */
    size_t nstaged, staged_cap;
};

typedef struct pres_channel {
    rt_map_t members; /* conn -> pres_member_t */
    char name[];
} pres_channel_t;

/* Called for each member a change removes, before it is freed (leave announcements). */
typedef void (*pres_leave_cb)(void *ctx, const pres_member_t *m);

typedef struct pres_view {
    rt_map_t edges;    /* id -> pres_edge_t */
    rt_map_t channels; /* name -> pres_channel_t */
    size_t nmembers;
} pres_view_t;

/* Zero-initialised is an empty view; dispose frees every edge, channel and member. */
void pres_view_dispose(pres_view_t *view);
/* Returns the edge (borrowed, owned by the view), or NULL. */
pres_edge_t *pres_view_edge(const pres_view_t *view, const char *id);
/* Returns the edge (owned by the view), creating it with `epoch` and no members when
 * missing (*created = 1); borrows id (copied). */
pres_edge_t *pres_view_edge_get(pres_view_t *view, const char *id, uint64_t epoch, int *created);
/* Removes the edge and all its members; on_leave (may be NULL) sees each member first. */
void pres_view_edge_remove(pres_view_t *view, pres_edge_t *edge, pres_leave_cb on_leave, void *ctx);
/* Removes every member of the edge (keeps the edge); on_leave as above. */
void pres_view_edge_clear(pres_view_t *view, pres_edge_t *edge, pres_leave_cb on_leave, void *ctx);
/* Applies one join, leave or state change reported by `edge`.  Borrows u.  A join or
 * state of a (channel, conn) held by another edge moves it to this one. */
void pres_view_apply(pres_view_t *view, pres_edge_t *edge, const Rtsync__V1__PresenceUpdate *u);
/* Stages (copies) the joins and states of one snapshot part; borrows b.  Leaves in a
 * snapshot mean nothing and are ignored. */
void pres_view_stage(pres_edge_t *edge, const Rtsync__V1__PresenceBatch *b);
/* Replaces the edge's members with the staged ones (the edge's values win); on_leave
 * (may be NULL) sees each member that is not in the new set. */
void pres_view_commit(pres_view_t *view, pres_edge_t *edge, pres_leave_cb on_leave, void *ctx);
/* Drops a half-received snapshot. */
void pres_view_unstage(pres_edge_t *edge);
/* Returns the channel (borrowed until the view changes), or NULL when it has no members. */
const pres_channel_t *pres_view_channel(const pres_view_t *view, const char *name);
/* Returns the member (borrowed until the view changes), or NULL. */
const pres_member_t *pres_view_member(const pres_view_t *view, const char *channel, const char *conn);
/* Fills (*list)[0..n) with the channel's members sorted by (since_ms, conn); returns n.
 * *list is the caller's array of *cap entries, grown here when too small (free() it). */
size_t pres_view_list(const pres_view_t *view, const char *channel, const pres_member_t ***list, size_t *cap);

/* ---- peers.c: which replica announces the leaves of dead edges ----------------------- */

typedef struct pres_peers {
    rt_map_t peers; /* instance -> struct peer (its latest incarnation) */
    char *self;
    uint64_t incarnation; /* ours, random per process */
    uint64_t dead_after_ns;
    uint64_t list_lag_ns; /* a peer's list of edges may be this much behind ours */
} pres_peers_t;

/* Borrows self (copied). */
void pres_peers_init(pres_peers_t *peers, const char *self, uint64_t incarnation, uint64_t dead_after_ns,
                     uint64_t list_lag_ns);
void pres_peers_dispose(pres_peers_t *peers);
/* A validated PeerHeartbeat (borrowed, copied); our own are ignored.  Returns 1 when
 * another process uses our instance id (a configuration mistake), else 0. */
int pres_peers_seen(pres_peers_t *peers, const Rtsync__V1__PeerHeartbeat *hb, uint64_t now_ns);
/* Whether this replica (being ready or not) announces the leaves of `edge`, which it
 * first heard of at first_heard_ns, now: it is ready and no ready replica with a
 * smaller (id (strcmp), incarnation) that knows the edge was heard from within
 * dead_after.  A peer knows the edge if its last list names it, or if that list is
 * too early to tell (sent less than list_lag after we first heard of the edge). */
int pres_peers_is_emitter(pres_peers_t *peers, int self_ready, const char *edge, uint64_t first_heard_ns,
                          uint64_t now_ns);
/* Forgets replicas silent for longer than dead_after; returns how many are left. */
size_t pres_peers_expire(pres_peers_t *peers, uint64_t now_ns);

/* ---- edges.c: heartbeats, epochs, sequence gaps, resync and expiry -------------------- */

/* What the edge bookkeeping asks of its owner (api.c). */
typedef struct pres_edges_ops {
    void (*request_resync)(void *ctx, const char *edge); /* "" = every edge */
    /* A member of a dead or restarted edge is gone and nobody else said so; the owner
     * announces it if it is the elected emitter.  Borrows m for the call. */
    void (*member_gone)(void *ctx, const pres_member_t *m);
} pres_edges_ops_t;

typedef struct pres_edges {
    pres_view_t view;
    pres_edges_ops_t ops;
    void *ctx;
    uint64_t ttl_ns, resync_every_ns, all_resync_ns;
    uint64_t claim_grace_ns; /* how long batches a heartbeat named may lag behind it */
    struct pres_expired {
        char *id;
        uint64_t at_ns;
    } *expired;               /* edges expired lately, still named in our PeerHeartbeats */
    size_t nexpired, expired_cap;
    uint64_t stale, gaps, expired_edges, restarted_edges, resyncs;
} pres_edges_t;

/* Borrows ops (copied) and ctx.  A missing snapshot is asked for again every resync_every_ns. */
void pres_edges_init(pres_edges_t *e, uint64_t ttl_ns, uint64_t resync_every_ns, const pres_edges_ops_t *ops,
                     void *ctx);
void pres_edges_dispose(pres_edges_t *e);
/* A batch / heartbeat that passed pres_decode_*, received at now_ns; borrowed for the call. */
void pres_edges_on_batch(pres_edges_t *e, const Rtsync__V1__PresenceBatch *b, uint64_t now_ns);
void pres_edges_on_heartbeat(pres_edges_t *e, const Rtsync__V1__EdgeHeartbeat *hb, uint64_t now_ns);
/* Removes edges silent for the TTL (member_gone for each of their members) and
 * asks again for snapshots that did not come. */
void pres_edges_tick(pres_edges_t *e, uint64_t now_ns);
/* Asks every edge for its snapshot (at start, and after our own connection to NATS
 * came back: then fresh_ttl gives every edge a new TTL, since we, not they, were away). */
void pres_edges_resync_all(pres_edges_t *e, int fresh_ttl, uint64_t now_ns);
/* Calls fn for each edge we know or expired within the last 2 resync intervals (what
 * our PeerHeartbeat lists); borrows the ids for the call. */
void pres_edges_each_known(pres_edges_t *e, uint64_t now_ns, void (*fn)(void *ctx, const char *id), void *ctx);
/* How many known edges have not sent their snapshot yet. */
size_t pres_edges_unsynced(const pres_edges_t *e);

/* ---- api.c: the NATS face and the lifetime ---------------------------------------- */

typedef struct pres_service pres_service_t;

/* Main thread.  Returns an owned service in *out; borrows cfg for its lifetime.
 * RT_EINVAL for a bad RT_NATS_URL. */
int pres_service_create(const pres_config_t *cfg, pres_service_t **out);
/* Main thread: runs the loop until *stop is set (by a signal handler). */
void pres_service_run(pres_service_t *svc, volatile int *stop);
/* Main thread: stops answering (other replicas take over), tells the peers, flushes. */
void pres_service_drain(pres_service_t *svc);
/* Main thread.  Accepts NULL. */
void pres_service_destroy(pres_service_t *svc);

#endif
