/*
 * api.c: the NATS face of crdt-merge, document ownership, and the service's
 * lifetime.  Everything runs on the loop thread.
 *
 * Ownership: replicas announce themselves on rt.doc.peer every 500 ms; a
 * replica is live while heard within 2 s.  A starting replica asks
 * rt.doc.peer.probe who is there: when nobody answers it serves at once,
 * otherwise requests wait until it has heard every heartbeat (700 ms).  The owner of a document
 * is the live replica with the highest rendezvous weight hash(instance, doc),
 * so a replica's arrival or loss moves only its share of documents.  Requests
 * reach any replica through the queue group "crdt"; one that does not own the
 * document forwards it (once) on rt.doc.fwd.<owner>, and the owner answers the
 * original inbox.  When the live set changes, a replica that loaded a document
 * it no longer owns sends the document's whole state to the new owner as an
 * ordinary update (the engine drops what the owner has; nothing is lost even if
 * the new owner loaded before our last commit), and unloads it once persisted.
 * Every applied update is committed by the writer within milliseconds, so the
 * loss of a replica loses nothing that was durable.
 *
 * Awareness (rt.doc.aw.>, rt.doc.conn, rt.doc.edge) is heard by every replica
 * without a queue group; the owner of the document keeps the states.
 */
#include "crdt.h"
#include "rt/log.h"
#include "rt/pb.h"
#include "rt/yproto.h"
#include "rtsync/v1/doc.pb-c.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MS_NS 1000000ull
#define PEER_INTERVAL_NS (500 * MS_NS)
#define PEER_TTL_NS (2000 * MS_NS)
#define WARMUP_NS (700 * MS_NS)
#define SWEEP_INTERVAL_NS (1000 * MS_NS)
#define STATS_INTERVAL_NS (10000 * MS_NS)
#define DRAIN_TIMEOUT_NS (20000 * MS_NS)
/* Requests that unpack to more than this come from the heap (unpack_request). */
#define ARENA_SIZE (1u << 20)

enum { KIND_SYNC = 1, KIND_UPDATE = 2, KIND_GET = 3 };
enum { PROBE_WAITING, PROBE_ALONE, PROBE_PEERS };

typedef struct peer {
    char instance[CRDT_MAX_ID + 1];
    uint64_t seen_ns;
    int leaving;
} peer_t;

/* A request that came while the replica was still learning its peers. */
typedef struct deferred {
    struct deferred *next;
    uint32_t kind;
    char *reply;
    size_t len;
    uint8_t data[];
} deferred_t;

typedef struct edge_seen {
    char edge[CRDT_MAX_ID + 1];
    uint64_t epoch;
    uint64_t seen_ns;
} edge_seen_t;

struct crdt_service {
    const crdt_config_t *cfg;
    rt_loop_t *loop;
    rt_bus_t *bus;
    rt_bus_sub_t *subs[12];
    rt_bus_requester_t *requester;
    int probe; /* PROBE_* */
    size_t nsubs;
    crdt_writer_t *writer;
    crdt_docs_t docs;
    rt_map_t peers; /* instance -> peer_t */
    rt_map_t edges; /* edge id -> edge_seen_t */
    uint64_t started_ns;
    uint64_t next_peer_ns, next_sweep_ns, next_stats_ns;
    int leaving;
    int warming; /* requests wait in `deferred` until the peers are known */
    deferred_t *deferred, **deferred_tail;
    rt_buf_t out;
    rt_pb_arena_t arena; /* requests are unpacked here (handle) */
    uint64_t applied, duplicates, bad, forwarded, moved;
};

/* ---- ownership ---------------------------------------------------------------------------- */

uint64_t crdt_owner_weight(const char *instance, const char *doc)
{
    char key[2 * CRDT_MAX_ID + 4];
    int n = snprintf(key, sizeof(key), "%s\n%s", instance, doc);
    /* rt_hash_bytes mixes well enough; a final avalanche keeps close names apart */
    uint64_t h = rt_hash_bytes(key, (size_t)n);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int peer_live(const crdt_service_t *svc, const peer_t *p, uint64_t now)
{
    return !p->leaving && now - p->seen_ns < PEER_TTL_NS && strcmp(p->instance, svc->cfg->instance_id) != 0;
}

/* The owner's instance id (borrowed). */
static const char *owner_of(crdt_service_t *svc, const char *doc)
{
    const char *best = svc->cfg->instance_id;
    uint64_t best_w = svc->leaving ? 0 : crdt_owner_weight(best, doc);
    int have = !svc->leaving;
    uint64_t now = rt_now_mono_ns();
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&svc->peers, &pos)) != NULL) {
        const peer_t *p = e->value;
        if (!peer_live(svc, p, now))
            continue;
        uint64_t w = crdt_owner_weight(p->instance, doc);
        if (!have || w > best_w || (w == best_w && strcmp(p->instance, best) > 0)) {
            best = p->instance;
            best_w = w;
            have = 1;
        }
    }
    return best;
}

static int is_mine(crdt_service_t *svc, const char *doc)
{
    return strcmp(owner_of(svc, doc), svc->cfg->instance_id) == 0;
}

/* Hands every loaded document this replica no longer owns to its owner. */
static void rehome(crdt_service_t *svc)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&svc->docs.map, &pos)) != NULL) {
        crdt_doc_t *doc = e->value;
        if (doc->moving || is_mine(svc, doc->name))
            continue;
        doc->moving = 1;
        svc->moved++;
        rt_buf_t state = {0};
        rt_ydoc_encode_state_as_update(doc->ydoc, (rt_slice_t){NULL, 0}, &state);
        Rtsync__V1__DocUpdateRequest r = RTSYNC__V1__DOC_UPDATE_REQUEST__INIT;
        r.doc = doc->name;
        r.update.data = state.data;
        r.update.len = state.len;
        r.edge = (char *)svc->cfg->instance_id;
        r.conn = (char *)"handoff";
        svc->out.len = 0;
        size_t n = rtsync__v1__doc_update_request__get_packed_size(&r);
        rtsync__v1__doc_update_request__pack(&r, rt_buf_reserve(&svc->out, n));
        if (rt_bus_publish(svc->bus, "rt.doc.update", svc->out.data, n) != RT_OK)
            RT_LOG_WARN("handoff_failed", "doc=%s bytes=%zu", doc->name, state.len);
        RT_LOG_INFO("doc_handoff", "doc=%s to=%s bytes=%zu", doc->name, owner_of(svc, doc->name), state.len);
        rt_buf_dispose(&state);
    }
}

static void on_peer(void *ctx, const rt_bus_msg_t *msg)
{
    crdt_service_t *svc = ctx;
    Rtsync__V1__DocPeerHeartbeat *hb = rtsync__v1__doc_peer_heartbeat__unpack(NULL, msg->data.len, msg->data.data);
    if (hb == NULL || *hb->instance == '\0' || strlen(hb->instance) > CRDT_MAX_ID ||
        strcmp(hb->instance, svc->cfg->instance_id) == 0)
        goto Exit;
    peer_t *p = rt_map_get(&svc->peers, hb->instance, strlen(hb->instance));
    uint64_t now = rt_now_mono_ns();
    int changed = p == NULL || !peer_live(svc, p, now) || p->leaving != hb->leaving;
    if (p == NULL) {
        p = rt_xcalloc(1, sizeof(*p));
        snprintf(p->instance, sizeof(p->instance), "%s", hb->instance);
        rt_map_put(&svc->peers, p->instance, strlen(p->instance), p);
    }
    p->seen_ns = now;
    p->leaving = hb->leaving;
    if (changed) {
        RT_LOG_INFO("peer", "instance=%s leaving=%d", p->instance, p->leaving);
        rehome(svc);
    }
Exit:
    rtsync__v1__doc_peer_heartbeat__free_unpacked(hb, NULL);
}

static size_t pack_peer_heartbeat(crdt_service_t *svc, uint8_t *buf)
{
    Rtsync__V1__DocPeerHeartbeat hb = RTSYNC__V1__DOC_PEER_HEARTBEAT__INIT;
    hb.instance = (char *)svc->cfg->instance_id;
    hb.leaving = svc->leaving;
    return rtsync__v1__doc_peer_heartbeat__pack(&hb, buf);
}

/* A starting replica asks who is there: the answer is a heartbeat. */
static void on_probe(void *ctx, const rt_bus_msg_t *msg)
{
    crdt_service_t *svc = ctx;
    uint8_t buf[CRDT_MAX_ID + 16];
    if (msg->reply != NULL)
        rt_bus_publish(svc->bus, msg->reply, buf, pack_peer_heartbeat(svc, buf));
}

static void on_probe_reply(void *ctx, int err, rt_slice_t data)
{
    crdt_service_t *svc = ctx;
    if (err == RT_EUNAVAIL) {
        svc->probe = PROBE_ALONE; /* no responders: no other replica runs */
        return;
    }
    svc->probe = PROBE_PEERS; /* or no answer in time: hear the heartbeats for the whole warm-up */
    if (err == RT_OK)
        on_peer(svc, &(rt_bus_msg_t){"rt.doc.peer.probe", NULL, data});
}

/* Starting: with no other replica alive (NATS says nobody answers), serve at
 * once; otherwise hear every replica's heartbeat before serving. */
static void probe_peers(crdt_service_t *svc)
{
    uint8_t buf[CRDT_MAX_ID + 16];
    if (rt_bus_requester_create(svc->bus, svc->loop, (uint32_t)(WARMUP_NS / MS_NS), &svc->requester) != RT_OK ||
        rt_bus_request(svc->requester, "rt.doc.peer.probe", buf, pack_peer_heartbeat(svc, buf), on_probe_reply, svc) !=
            RT_OK)
        svc->probe = PROBE_PEERS;
}

static void send_peer_heartbeat(crdt_service_t *svc)
{
    uint8_t buf[CRDT_MAX_ID + 16];
    rt_bus_publish(svc->bus, "rt.doc.peer", buf, pack_peer_heartbeat(svc, buf));
}

/* Peers that fell silent: their documents come to the survivors (nothing of ours moves). */
static void expire_peers(crdt_service_t *svc, uint64_t now)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&svc->peers, &pos)) != NULL) {
        peer_t *p = e->value;
        if (now - p->seen_ns >= PEER_TTL_NS) {
            RT_LOG_INFO("peer_gone", "instance=%s", p->instance);
            rt_map_remove(&svc->peers, p->instance, strlen(p->instance));
            free(p);
        }
    }
}

/* ---- edges -------------------------------------------------------------------------------- */

static void on_edge_heartbeat(void *ctx, const rt_bus_msg_t *msg)
{
    crdt_service_t *svc = ctx;
    Rtsync__V1__DocEdgeHeartbeat *hb = rtsync__v1__doc_edge_heartbeat__unpack(NULL, msg->data.len, msg->data.data);
    if (hb == NULL || *hb->edge == '\0' || strlen(hb->edge) > CRDT_MAX_ID)
        goto Exit;
    edge_seen_t *s = rt_map_get(&svc->edges, hb->edge, strlen(hb->edge));
    if (s == NULL) {
        s = rt_xcalloc(1, sizeof(*s));
        snprintf(s->edge, sizeof(s->edge), "%s", hb->edge);
        rt_map_put(&svc->edges, s->edge, strlen(s->edge), s);
    }
    s->epoch = hb->edge_epoch;
    s->seen_ns = rt_now_mono_ns();
Exit:
    rtsync__v1__doc_edge_heartbeat__free_unpacked(hb, NULL);
}

/* An edge is alive while it heartbeats with this epoch (a restarted edge has
 * another).  One never heard is given the TTL from our own start. */
static int edge_alive(void *ctx, const char *edge, uint64_t epoch)
{
    crdt_service_t *svc = ctx;
    uint64_t now = rt_now_mono_ns(), ttl = (uint64_t)svc->cfg->edge_ttl_ms * MS_NS;
    const edge_seen_t *s = rt_map_get(&svc->edges, edge, strlen(edge));
    if (s == NULL)
        return now - svc->started_ns < ttl;
    return s->epoch == epoch && now - s->seen_ns < ttl;
}

/* ---- replies ------------------------------------------------------------------------------- */

static Rtsync__V1__Code code_of(int err)
{
    switch (err) {
    case RT_OK: return RTSYNC__V1__CODE__CODE_OK;
    case RT_EINVAL: return RTSYNC__V1__CODE__CODE_BAD_REQUEST;
    case RT_ENOTFOUND: return RTSYNC__V1__CODE__CODE_NOT_FOUND;
    case RT_ETOOBIG: return RTSYNC__V1__CODE__CODE_TOO_LARGE;
    case RT_EUNAVAIL: return RTSYNC__V1__CODE__CODE_UNAVAILABLE;
    default: return RTSYNC__V1__CODE__CODE_INTERNAL;
    }
}

static void reply_packed(crdt_service_t *svc, const char *reply, const ProtobufCMessage *m)
{
    if (reply == NULL || *reply == '\0')
        return;
    size_t n = protobuf_c_message_get_packed_size(m);
    svc->out.len = 0;
    protobuf_c_message_pack(m, rt_buf_reserve(&svc->out, n));
    if (rt_bus_publish(svc->bus, reply, svc->out.data, n) == RT_OK)
        return;
    /* Most likely over NATS's max_payload (1 MiB unless configured): say so in a
     * reply every message type decodes (field 1 is always the status). */
    RT_LOG_WARN("reply_failed", "bytes=%zu", n);
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = RTSYNC__V1__CODE__CODE_TOO_LARGE;
    status.message = (char *)"reply over the message bus's payload limit";
    Rtsync__V1__DocUpdateReply r = RTSYNC__V1__DOC_UPDATE_REPLY__INIT;
    r.status = &status;
    uint8_t buf[128];
    rt_bus_publish(svc->bus, reply, buf, rtsync__v1__doc_update_reply__pack(&r, buf));
}

static void count_bad(crdt_service_t *svc, const char *what, const char *doc)
{
    if (++svc->bad <= 10 || svc->bad % 1000 == 0)
        RT_LOG_WARN("bad_request", "what=%s doc=%.128s total=%" PRIu64, what, doc ? doc : "", svc->bad);
}

static int name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CRDT_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void reply_sync(crdt_service_t *svc, const char *reply, int err, rt_buf_t *update, rt_buf_t *sv, rt_buf_t *aw)
{
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = code_of(err);
    status.message = (char *)"";
    Rtsync__V1__DocSyncReply r = RTSYNC__V1__DOC_SYNC_REPLY__INIT;
    r.status = &status;
    if (err == RT_OK) {
        r.update = (ProtobufCBinaryData){update->len, update->data};
        r.state_vector = (ProtobufCBinaryData){sv->len, sv->data};
        r.awareness = (ProtobufCBinaryData){aw->len, aw->data};
    }
    reply_packed(svc, reply, &r.base);
}

static void serve_sync(crdt_service_t *svc, const char *reply, const Rtsync__V1__DocSyncRequest *q)
{
    rt_buf_t update = {0}, sv = {0}, aw = {0};
    crdt_doc_t *doc = NULL;
    int err = crdt_docs_get(&svc->docs, q->doc, &doc);
    if (err == RT_OK && q->want_update)
        err =
            rt_ydoc_encode_state_as_update(doc->ydoc, (rt_slice_t){q->state_vector.data, q->state_vector.len}, &update);
    if (err == RT_OK && q->want_state) {
        rt_ydoc_encode_state_vector(doc->ydoc, &sv);
        crdt_doc_awareness_encode(doc, &aw);
    }
    if (err == RT_EINVAL)
        count_bad(svc, "sync", q->doc);
    reply_sync(svc, reply, err, &update, &sv, &aw);
    rt_buf_dispose(&update);
    rt_buf_dispose(&sv);
    rt_buf_dispose(&aw);
}

static void reply_status(crdt_service_t *svc, const char *reply, int err)
{
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = code_of(err);
    status.message = (char *)"";
    Rtsync__V1__DocUpdateReply r = RTSYNC__V1__DOC_UPDATE_REPLY__INIT;
    r.status = &status;
    reply_packed(svc, reply, &r.base);
}

/* The end-of-turn changes of a document go to every edge holding it, and
 * answer the update requests that made them: the requesting edge gets one
 * message instead of two, and NATS carries one less. */
static void broadcast(void *ctx, const crdt_doc_t *doc, rt_slice_t changed)
{
    crdt_service_t *svc = ctx;
    char *stack[64], **acks = doc->nacks <= RT_ARRAY_SIZE(stack) ? stack : rt_xmalloc(doc->nacks * sizeof(*acks));
    size_t k = 0;
    for (size_t off = 0; off < doc->acks.len; k++) {
        acks[k] = (char *)doc->acks.data + off;
        off += strlen(acks[k]) + 1;
    }
    Rtsync__V1__DocBroadcast b = RTSYNC__V1__DOC_BROADCAST__INIT;
    b.doc = (char *)doc->name;
    b.update = (ProtobufCBinaryData){changed.len, (uint8_t *)changed.data};
    b.ts_ms = rt_now_wall_ms();
    b.acks = acks;
    b.n_acks = k;
    size_t n = rtsync__v1__doc_broadcast__get_packed_size(&b);
    svc->out.len = 0;
    rtsync__v1__doc_broadcast__pack(&b, rt_buf_reserve(&svc->out, n));
    char subject[CRDT_MAX_NAME + 32];
    rt_bus_subject(subject, sizeof(subject), "rt.doc.bcast", doc->name);
    if (rt_bus_publish(svc->bus, subject, svc->out.data, n) != RT_OK) {
        RT_LOG_WARN("broadcast_failed", "doc=%s bytes=%zu", doc->name, n);
        for (size_t i = 0; i < k; i++)
            reply_status(svc, acks[i], RT_OK); /* applied all the same */
    }
    if (acks != stack)
        free(acks);
}

static int apply_one(crdt_service_t *svc, crdt_doc_t *doc, ProtobufCBinaryData u)
{
    if (u.len > (size_t)svc->cfg->max_update)
        return RT_ETOOBIG;
    size_t before = doc->nchanges;
    int err = crdt_doc_apply(&svc->docs, doc, (rt_slice_t){u.data, u.len});
    if (err == RT_OK && doc->nchanges > before)
        svc->applied++;
    else if (err == RT_OK)
        svc->duplicates++;
    return err;
}

/* Applies the request's updates in order; the first bad one stops it (the edge
 * validated them all: a refusal here means a client or edge misbehaves). */
static void serve_update(crdt_service_t *svc, const char *reply, const Rtsync__V1__DocUpdateRequest *q)
{
    crdt_doc_t *doc = NULL;
    int err = crdt_docs_get(&svc->docs, q->doc, &doc);
    uint64_t applied = svc->applied;
    if (err == RT_OK && q->update.len > 0)
        err = apply_one(svc, doc, q->update);
    for (size_t i = 0; err == RT_OK && i < q->n_updates; i++)
        err = apply_one(svc, doc, q->updates[i]);
    if (err == RT_EINVAL || err == RT_ETOOBIG)
        count_bad(svc, "update", q->doc);
    if (err == RT_OK && svc->applied > applied && reply != NULL && *reply != '\0')
        crdt_doc_ack_later(doc, reply); /* the broadcast of what it changed answers it */
    else
        reply_status(svc, reply, err);
}

static void serve_get(crdt_service_t *svc, const char *reply, const Rtsync__V1__DocGetRequest *q)
{
    rt_buf_t data = {0};
    crdt_doc_t *doc = NULL;
    int err = crdt_docs_get(&svc->docs, q->doc, &doc);
    if (err == RT_OK && !doc->exists)
        err = RT_ENOTFOUND;
    if (err == RT_OK)
        err = q->json ? rt_ydoc_to_json(doc->ydoc, NULL, 0, &data)
                      : rt_ydoc_encode_state_as_update(doc->ydoc, (rt_slice_t){NULL, 0}, &data);
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = code_of(err);
    status.message = (char *)"";
    Rtsync__V1__DocGetReply r = RTSYNC__V1__DOC_GET_REPLY__INIT;
    r.status = &status;
    r.data = (ProtobufCBinaryData){data.len, data.data};
    reply_packed(svc, reply, &r.base);
    rt_buf_dispose(&data);
}

/* Forwards to the owner; returns 1 if it did. */
static int forward(crdt_service_t *svc, const char *doc, const rt_bus_msg_t *msg, uint32_t kind, uint32_t hops)
{
    const char *owner = owner_of(svc, doc);
    if (hops > 0 || strcmp(owner, svc->cfg->instance_id) == 0)
        return 0;
    Rtsync__V1__DocForward f = RTSYNC__V1__DOC_FORWARD__INIT;
    f.reply = (char *)(msg->reply ? msg->reply : "");
    f.kind = kind;
    f.request = (ProtobufCBinaryData){msg->data.len, (uint8_t *)msg->data.data};
    f.hops = hops + 1;
    size_t n = rtsync__v1__doc_forward__get_packed_size(&f);
    svc->out.len = 0;
    rtsync__v1__doc_forward__pack(&f, rt_buf_reserve(&svc->out, n));
    char subject[CRDT_MAX_ID + 32];
    rt_bus_subject(subject, sizeof(subject), "rt.doc.fwd", owner);
    rt_bus_publish(svc->bus, subject, svc->out.data, n);
    svc->forwarded++;
    return 1;
}

/* A request unpacked from the arena, or from the heap when it did not fit
 * there: an update request of a replay carries hundreds of updates, and
 * protobuf-c allocates each. */
typedef struct unpacked {
    ProtobufCMessage *m;
    ProtobufCAllocator arena, *alloc;
} unpacked_t;

static void unpack_request(crdt_service_t *svc, const ProtobufCMessageDescriptor *desc, rt_slice_t data, unpacked_t *u)
{
    u->arena = rt_pb_arena_allocator(&svc->arena);
    u->alloc = &u->arena;
    u->m = protobuf_c_message_unpack(desc, u->alloc, data.len, data.data);
    if (u->m == NULL) {
        rt_pb_arena_reset(&svc->arena);
        u->alloc = NULL;
        u->m = protobuf_c_message_unpack(desc, NULL, data.len, data.data);
    }
}

static void unpacked_dispose(crdt_service_t *svc, unpacked_t *u)
{
    if (u->m != NULL)
        protobuf_c_message_free_unpacked(u->m, u->alloc);
    rt_pb_arena_reset(&svc->arena);
}

/* Decodes and serves (or forwards) one request of `kind`. */
static void handle(crdt_service_t *svc, uint32_t kind, rt_slice_t data, const char *reply, const rt_bus_msg_t *msg,
                   uint32_t hops)
{
    unpacked_t u = {0};
    switch (kind) {
    case KIND_SYNC: {
        unpack_request(svc, &rtsync__v1__doc_sync_request__descriptor, data, &u);
        Rtsync__V1__DocSyncRequest *q = (Rtsync__V1__DocSyncRequest *)u.m;
        if (q == NULL || !name_valid(q->doc)) {
            count_bad(svc, "sync", q ? q->doc : NULL);
            reply_sync(svc, reply, RT_EINVAL, NULL, NULL, NULL);
        } else if (!forward(svc, q->doc, msg, kind, hops)) {
            serve_sync(svc, reply, q);
        }
        break;
    }
    case KIND_UPDATE: {
        unpack_request(svc, &rtsync__v1__doc_update_request__descriptor, data, &u);
        Rtsync__V1__DocUpdateRequest *q = (Rtsync__V1__DocUpdateRequest *)u.m;
        if (q == NULL || !name_valid(q->doc)) {
            count_bad(svc, "update", q ? q->doc : NULL);
            reply_status(svc, reply, RT_EINVAL);
        } else if (!forward(svc, q->doc, msg, kind, hops)) {
            serve_update(svc, reply, q);
        }
        break;
    }
    case KIND_GET: {
        unpack_request(svc, &rtsync__v1__doc_get_request__descriptor, data, &u);
        Rtsync__V1__DocGetRequest *q = (Rtsync__V1__DocGetRequest *)u.m;
        if (q == NULL || !name_valid(q->doc)) {
            count_bad(svc, "get", q ? q->doc : NULL);
            reply_status(svc, reply, RT_EINVAL);
        } else if (!forward(svc, q->doc, msg, kind, hops)) {
            serve_get(svc, reply, q);
        }
        break;
    }
    default: count_bad(svc, "forward", NULL);
    }
    unpacked_dispose(svc, &u);
}

static void defer(crdt_service_t *svc, uint32_t kind, const rt_bus_msg_t *msg)
{
    deferred_t *d = rt_xmalloc(sizeof(*d) + msg->data.len);
    d->next = NULL;
    d->kind = kind;
    d->reply = msg->reply ? rt_xstrdup(msg->reply) : NULL;
    d->len = msg->data.len;
    memcpy(d->data, msg->data.data, msg->data.len);
    *svc->deferred_tail = d;
    svc->deferred_tail = &d->next;
}

/* Warm-up is over: serve what came meanwhile, in order. */
static void run_deferred(crdt_service_t *svc)
{
    svc->warming = 0;
    while (svc->deferred != NULL) {
        deferred_t *d = svc->deferred;
        svc->deferred = d->next;
        rt_bus_msg_t msg = {"deferred", d->reply, {d->data, d->len}};
        handle(svc, d->kind, msg.data, d->reply, &msg, 0);
        free(d->reply);
        free(d);
    }
    svc->deferred_tail = &svc->deferred;
}

static void on_request(crdt_service_t *svc, uint32_t kind, const rt_bus_msg_t *msg)
{
    if (svc->warming)
        defer(svc, kind, msg);
    else
        handle(svc, kind, msg->data, msg->reply, msg, 0);
}

static void on_sync(void *ctx, const rt_bus_msg_t *msg)
{
    on_request(ctx, KIND_SYNC, msg);
}

static void on_update(void *ctx, const rt_bus_msg_t *msg)
{
    on_request(ctx, KIND_UPDATE, msg);
}

static void on_get(void *ctx, const rt_bus_msg_t *msg)
{
    on_request(ctx, KIND_GET, msg);
}

static void on_forward(void *ctx, const rt_bus_msg_t *msg)
{
    crdt_service_t *svc = ctx;
    Rtsync__V1__DocForward *f = rtsync__v1__doc_forward__unpack(NULL, msg->data.len, msg->data.data);
    if (f == NULL) {
        count_bad(svc, "forward", NULL);
        return;
    }
    rt_bus_msg_t inner = {msg->subject, f->reply, {f->request.data, f->request.len}};
    handle(svc, f->kind, inner.data, *f->reply ? f->reply : NULL, &inner, f->hops);
    rtsync__v1__doc_forward__free_unpacked(f, NULL);
}

/* ---- awareness ------------------------------------------------------------------------------ */

static void on_awareness(void *ctx, const rt_bus_msg_t *msg)
{
    crdt_service_t *svc = ctx;
    Rtsync__V1__DocAwareness *a = rtsync__v1__doc_awareness__unpack(NULL, msg->data.len, msg->data.data);
    crdt_doc_t *doc;
    if (a == NULL || !name_valid(a->doc) || strlen(a->edge) > CRDT_MAX_ID || strlen(a->conn) > CRDT_MAX_ID) {
        count_bad(svc, "awareness", a ? a->doc : NULL);
    } else if (*a->edge != '\0' && is_mine(svc, a->doc) && crdt_docs_get(&svc->docs, a->doc, &doc) == RT_OK) {
        crdt_doc_awareness(doc, (rt_slice_t){a->update.data, a->update.len}, a->edge, a->edge_epoch, a->conn,
                           rt_now_mono_ns());
    }
    rtsync__v1__doc_awareness__free_unpacked(a, NULL);
}

static void publish_awareness(void *ctx, const crdt_doc_t *doc, rt_slice_t update)
{
    crdt_service_t *svc = ctx;
    Rtsync__V1__DocAwareness a = RTSYNC__V1__DOC_AWARENESS__INIT;
    a.doc = (char *)doc->name;
    a.update = (ProtobufCBinaryData){update.len, (uint8_t *)update.data};
    size_t n = rtsync__v1__doc_awareness__get_packed_size(&a);
    rt_buf_t buf = {0};
    rtsync__v1__doc_awareness__pack(&a, rt_buf_reserve(&buf, n));
    char subject[CRDT_MAX_NAME + 32];
    rt_bus_subject(subject, sizeof(subject), "rt.doc.aw", doc->name);
    rt_bus_publish(svc->bus, subject, buf.data, n);
    rt_buf_dispose(&buf);
}

static void on_conn_closed(void *ctx, const rt_bus_msg_t *msg)
{
    crdt_service_t *svc = ctx;
    Rtsync__V1__DocConnClosed *c = rtsync__v1__doc_conn_closed__unpack(NULL, msg->data.len, msg->data.data);
    if (c == NULL) {
        count_bad(svc, "conn_closed", NULL);
        return;
    }
    for (size_t i = 0; i < c->n_docs; i++) {
        crdt_doc_t *doc = crdt_docs_find(&svc->docs, c->docs[i]);
        if (doc != NULL)
            crdt_docs_drop_owner(&svc->docs, doc, c->edge, c->edge_epoch, c->conn);
    }
    rtsync__v1__doc_conn_closed__free_unpacked(c, NULL);
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void on_committed(void *ctx, uint64_t seq)
{
    crdt_service_t *svc = ctx;
    if (seq > svc->docs.committed_seq)
        svc->docs.committed_seq = seq;
}

static int subscribe(crdt_service_t *svc, const char *subject, const char *group, rt_bus_msg_cb cb)
{
    return rt_bus_subscribe(svc->bus, svc->loop, subject, group, cb, svc, &svc->subs[svc->nsubs++]);
}

int crdt_service_create(const crdt_config_t *cfg, crdt_service_t **out)
{
    crdt_service_t *svc = rt_xcalloc(1, sizeof(*svc));
    svc->cfg = cfg;
    svc->started_ns = rt_now_mono_ns();
    rt_loop_create(&svc->loop);
    rt_pb_arena_init(&svc->arena, ARENA_SIZE);
    int err = rt_bus_create(cfg->nats_url, cfg->instance_id, 0, &svc->bus);
    if (err != RT_OK) {
        crdt_service_destroy(svc);
        return err;
    }
    svc->writer = crdt_writer_create(cfg, svc->loop, on_committed, svc);
    crdt_docs_init(&svc->docs, cfg, svc->writer, publish_awareness, broadcast, svc);
    char fwd[CRDT_MAX_ID + 32];
    rt_bus_subject(fwd, sizeof(fwd), "rt.doc.fwd", cfg->instance_id);
    svc->warming = 1;
    svc->deferred_tail = &svc->deferred;
    err = subscribe(svc, "rt.doc.peer", NULL, on_peer);
    if (err == RT_OK)
        err = subscribe(svc, fwd, NULL, on_forward);
    if (err == RT_OK)
        err = subscribe(svc, "rt.doc.sync", "crdt", on_sync);
    if (err == RT_OK)
        err = subscribe(svc, "rt.doc.update", "crdt", on_update);
    if (err == RT_OK)
        err = subscribe(svc, "rt.doc.get", "crdt", on_get);
    if (err == RT_OK)
        err = subscribe(svc, "rt.doc.aw.>", NULL, on_awareness);
    if (err == RT_OK)
        err = subscribe(svc, "rt.doc.conn", NULL, on_conn_closed);
    if (err == RT_OK)
        err = subscribe(svc, "rt.doc.edge", NULL, on_edge_heartbeat);
    /* Hear the other replicas before serving, so as not to serve their documents:
     * requests wait meanwhile. */
    send_peer_heartbeat(svc);
    probe_peers(svc);
    for (uint64_t until = rt_now_mono_ns() + WARMUP_NS;
         err == RT_OK && svc->probe != PROBE_ALONE && rt_now_mono_ns() < until;)
        rt_loop_run_once(svc->loop, 20);
    if (err == RT_OK) /* from now on, answer the probes of replicas that start */
        err = subscribe(svc, "rt.doc.peer.probe", NULL, on_probe);
    run_deferred(svc);
    if (err != RT_OK) {
        crdt_service_destroy(svc);
        return err;
    }
    RT_LOG_INFO("started", "instance=%s nats=%s", cfg->instance_id, cfg->nats_url);
    *out = svc;
    return RT_OK;
}

static void log_stats(crdt_service_t *svc)
{
    RT_LOG_INFO("stats",
                "docs=%zu applied=%" PRIu64 " duplicates=%" PRIu64 " bad=%" PRIu64 " forwarded=%" PRIu64
                " moved=%" PRIu64 " backlog=%zu",
                svc->docs.map.len, svc->applied, svc->duplicates, svc->bad, svc->forwarded, svc->moved,
                crdt_writer_backlog(svc->writer));
}

static void tick(crdt_service_t *svc)
{
    uint64_t now = rt_now_mono_ns();
    if (now >= svc->next_peer_ns) {
        send_peer_heartbeat(svc);
        expire_peers(svc, now);
        svc->next_peer_ns = now + PEER_INTERVAL_NS;
    }
    if (now >= svc->next_sweep_ns) {
        crdt_docs_sweep(&svc->docs, now, edge_alive, svc);
        svc->next_sweep_ns = now + SWEEP_INTERVAL_NS;
    }
    if (now >= svc->next_stats_ns) {
        log_stats(svc);
        svc->next_stats_ns = now + STATS_INTERVAL_NS;
    }
}

void crdt_service_run(crdt_service_t *svc, volatile int *stop)
{
    while (!*stop) {
        rt_loop_run_once(svc->loop, 100);
        crdt_docs_flush(&svc->docs); /* one broadcast and one log row per changed document and turn */
        tick(svc);
    }
}

void crdt_service_drain(crdt_service_t *svc)
{
    RT_LOG_INFO("draining", "instance=%s", svc->cfg->instance_id);
    for (size_t i = 0; i < svc->nsubs; i++)
        rt_bus_unsubscribe(svc->subs[i]);
    svc->nsubs = 0;
    crdt_docs_flush(&svc->docs);
    svc->leaving = 1;
    send_peer_heartbeat(svc); /* our documents move now; everything we applied is being committed */
    uint64_t deadline = rt_now_mono_ns() + DRAIN_TIMEOUT_NS;
    while (crdt_writer_backlog(svc->writer) > 0 && rt_now_mono_ns() < deadline)
        rt_loop_run_once(svc->loop, 10);
    rt_bus_flush(svc->bus, 2000);
    log_stats(svc);
}

void crdt_service_destroy(crdt_service_t *svc)
{
    if (svc == NULL)
        return;
    for (size_t i = 0; i < svc->nsubs; i++)
        rt_bus_unsubscribe(svc->subs[i]);
    rt_bus_requester_destroy(svc->requester);
    crdt_writer_destroy(svc->writer);
    rt_loop_run_once(svc->loop, 0); /* the writer's last report */
    crdt_docs_dispose(&svc->docs);
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&svc->peers, &pos)) != NULL)
        free(e->value);
    rt_map_dispose(&svc->peers);
    pos = 0;
    while ((e = rt_map_next(&svc->edges, &pos)) != NULL)
        free(e->value);
    rt_map_dispose(&svc->edges);
    rt_bus_destroy(svc->bus);
    rt_loop_destroy(svc->loop);
    rt_buf_dispose(&svc->out);
    rt_pb_arena_dispose(&svc->arena);
    free(svc);
}
