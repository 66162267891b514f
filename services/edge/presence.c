/*
 * presence.c: the edge's side of presence.
 *
 * Every WebSocket subscription is a member of its channel.  Joins, leaves and
 * state changes go two ways: to the presence service (rt.pres.updates), which
 * answers snapshots and expires the members of edges that die, and to the
 * channel's subscribers on every edge (a ChannelMessage with `presence` set on
 * the fan-out subject).  A join or leave reaches NATS for the presence service
 * before anyone sees it, so an edge that dies right after leaves no ghost.
 * State changes to the presence service are coalesced per member (a cursor moving 100 times a second costs
 * at most 1000 / STATE_FLUSH_MS writes).  The registry of this edge's members
 * is shared by the threads under a mutex; it answers resync requests with a
 * snapshot, so a restarted presence service rebuilds its view.
 */
#include "edge.h"
#include "rt/log.h"

#include <stdlib.h>
#include <string.h>

#include "rtsync/v1/presence.pb-c.h"

#define TICK_MS 20
#define STATE_FLUSH_TICKS 5 /* states reach the presence service at most every 100 ms */
#define SNAPSHOT_PART_BYTES (256 * 1024)

typedef struct member {
    char *key; /* conn '\n' channel */
    char *channel;
    char *user;
    char *conn;
    rt_buf_t state; /* JSON text, empty: none */
    int64_t since_ms;
    int state_dirty;
} member_t;

struct edge_presence {
    edge_server_t *server;
    pthread_mutex_t lock;
    rt_map_t members; /* key -> member_t */
    rt_buf_t pending; /* packed PresenceUpdate messages, each prefixed by its length */
    size_t npending;
    uint64_t seq;
    uint64_t epoch;
    int states_dirty;
    rt_loop_t *loop; /* thread 0's: timers and the resync subscription */
    rt_bus_sub_t *resync_sub;
    h2o_timeout_t tick_timeout, heartbeat_timeout;
    h2o_timeout_entry_t tick_entry, heartbeat_entry;
    unsigned ticks;
    int tick_armed;     /* the tick runs (or arm_task is on its way): only while states wait */
    rt_task_t arm_task; /* links the tick, on the loop's thread */
};

static void member_free(member_t *m)
{
    free(m->key);
    free(m->channel);
    free(m->user);
    free(m->conn);
    rt_buf_dispose(&m->state);
    free(m);
}

static char *member_key(const char *conn, const char *channel)
{
    size_t a = strlen(conn), b = strlen(channel);
    char *key = rt_xmalloc(a + b + 2);
    memcpy(key, conn, a);
    key[a] = '\n';
    memcpy(key + a + 1, channel, b + 1);
    return key;
}

/* The update `kind` of member m, in caller-provided storage (borrows m). */
static void member_update(Rtsync__V1__PresenceUpdate *u, Rtsync__V1__Member *pb, Rtsync__V1__PresenceKind kind,
                          const member_t *m, const char *edge)
{
    rtsync__v1__member__init(pb);
    pb->channel = m->channel;
    pb->user = m->user;
    pb->conn = m->conn;
    pb->edge = (char *)edge;
    pb->state.data = m->state.data;
    pb->state.len = m->state.len;
    pb->since_ms = m->since_ms;
    rtsync__v1__presence_update__init(u);
    u->kind = kind;
    u->member = pb;
}

/* Under the lock: queues one update for the presence service. */
static void queue_update(edge_presence_t *p, Rtsync__V1__PresenceKind kind, const member_t *m)
{
    Rtsync__V1__Member member;
    Rtsync__V1__PresenceUpdate u;
    member_update(&u, &member, kind, m, p->server->config.edge_id);
    uint32_t len = (uint32_t)rtsync__v1__presence_update__get_packed_size(&u);
    rt_buf_append(&p->pending, &len, sizeof(len));
    rtsync__v1__presence_update__pack(&u, rt_buf_reserve(&p->pending, len));
    p->pending.len += len;
    p->npending++;
    EDGE_COUNT(&p->server->threads[0], presence_updates, 1);
}

static void publish_batch(edge_presence_t *p, int snapshot);

/* Publishes the member event to the channel's subscribers on every edge. */
static void fan_out(edge_presence_t *p, Rtsync__V1__PresenceKind kind, const member_t *m)
{
    Rtsync__V1__Member member;
    Rtsync__V1__PresenceUpdate u;
    member_update(&u, &member, kind, m, p->server->config.edge_id);
    Rtsync__V1__ChannelMessage msg = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    msg.channel = m->channel;
    msg.from_user = m->user;
    msg.from_conn = m->conn;
    msg.ts_ms = rt_now_wall_ms();
    msg.origin_edge = (char *)p->server->config.edge_id;
    msg.presence = &u;
    size_t len = rtsync__v1__channel_message__get_packed_size(&msg);
    uint8_t *buf = rt_xmalloc(len);
    rtsync__v1__channel_message__pack(&msg, buf);
    char subject[160];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", m->channel);
    rt_bus_publish(p->server->bus, subject, buf, len);
    free(buf);
}

void edge_presence_join(edge_presence_t *p, const char *channel, const edge_client_t *client)
{
    member_t *m = rt_xcalloc(1, sizeof(*m));
    m->key = member_key(client->conn_id, channel);
    m->channel = rt_xstrdup(channel);
    m->user = rt_xstrdup(client->user);
    m->conn = rt_xstrdup(client->conn_id);
    m->since_ms = rt_now_wall_ms();
    pthread_mutex_lock(&p->lock);
    member_t *old = rt_map_put(&p->members, m->key, strlen(m->key), m);
    queue_update(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_JOIN, m);
    publish_batch(p, 0);
    pthread_mutex_unlock(&p->lock);
    if (old != NULL)
        member_free(old);
    fan_out(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_JOIN, m);
}

void edge_presence_leave(edge_presence_t *p, const char *channel, const edge_client_t *client)
{
    char *key = member_key(client->conn_id, channel);
    pthread_mutex_lock(&p->lock);
    member_t *m = rt_map_remove(&p->members, key, strlen(key));
    if (m != NULL) {
        queue_update(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE, m);
        publish_batch(p, 0);
    }
    pthread_mutex_unlock(&p->lock);
    free(key);
    if (m != NULL) {
        fan_out(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE, m);
        member_free(m);
    }
}

int edge_presence_state(edge_presence_t *p, const char *channel, const edge_client_t *client, const char *state,
                        size_t len)
{
    char *key = member_key(client->conn_id, channel);
    pthread_mutex_lock(&p->lock);
    member_t *m = rt_map_get(&p->members, key, strlen(key));
    if (m != NULL) {
        m->state.len = 0;
        rt_buf_append(&m->state, state, len);
        m->state_dirty = 1;
        p->states_dirty = 1;
        if (!p->tick_armed && p->loop != NULL) {
            p->tick_armed = 1;
            rt_loop_post(p->loop, &p->arm_task);
        }
    }
    pthread_mutex_unlock(&p->lock);
    free(key);
    if (m == NULL)
        return RT_ENOTFOUND;
    /* only the member's own thread changes or removes it, so it can be read unlocked here */
    fan_out(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE, m);
    return RT_OK;
}

/* Under the lock: publishes the queued updates as one batch, or as part
 * `part` of a snapshot of all members (more: parts follow). */
static void publish_snapshot_part(edge_presence_t *p, int snapshot, uint32_t part, int more)
{
    Rtsync__V1__PresenceBatch batch = RTSYNC__V1__PRESENCE_BATCH__INIT;
    batch.edge = (char *)p->server->config.edge_id;
    batch.edge_epoch = p->epoch;
    batch.seq = ++p->seq;
    batch.snapshot = snapshot;
    batch.snapshot_part = part;
    batch.snapshot_more = more;
    batch.n_updates = p->npending;
    batch.updates = rt_xcalloc(p->npending ? p->npending : 1, sizeof(*batch.updates));
    size_t off = 0;
    for (size_t i = 0; i < p->npending; i++) {
        uint32_t len;
        memcpy(&len, p->pending.data + off, sizeof(len));
        off += sizeof(len);
        batch.updates[i] = rtsync__v1__presence_update__unpack(NULL, len, p->pending.data + off);
        off += len;
    }
    size_t len = rtsync__v1__presence_batch__get_packed_size(&batch);
    uint8_t *buf = rt_xmalloc(len);
    rtsync__v1__presence_batch__pack(&batch, buf);
    rt_bus_publish(p->server->bus, "rt.pres.updates", buf, len);
    free(buf);
    for (size_t i = 0; i < p->npending; i++)
        rtsync__v1__presence_update__free_unpacked(batch.updates[i], NULL);
    free(batch.updates);
    p->pending.len = 0;
    p->npending = 0;
}

static void publish_batch(edge_presence_t *p, int snapshot)
{
    publish_snapshot_part(p, snapshot, 0, 0);
}

static void flush_states(edge_presence_t *p)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&p->members, &pos)) != NULL) {
        member_t *m = e->value;
        if (m->state_dirty) {
            m->state_dirty = 0;
            queue_update(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE, m);
        }
    }
    p->states_dirty = 0;
}

/* Every TICK_MS while states wait to be flushed, not otherwise: an idle edge sleeps. */
static void on_tick(h2o_timeout_entry_t *entry)
{
    edge_presence_t *p = RT_CONTAINER_OF(entry, edge_presence_t, tick_entry);
    pthread_mutex_lock(&p->lock);
    if (p->states_dirty && ++p->ticks % STATE_FLUSH_TICKS == 0)
        flush_states(p);
    if (p->npending > 0)
        publish_batch(p, 0);
    p->tick_armed = p->states_dirty;
    if (p->tick_armed)
        h2o_timeout_link(rt_loop_evloop(p->loop), &p->tick_timeout, &p->tick_entry);
    pthread_mutex_unlock(&p->lock);
}

static void on_arm(rt_task_t *task)
{
    edge_presence_t *p = RT_CONTAINER_OF(task, edge_presence_t, arm_task);
    if (!h2o_timeout_is_linked(&p->tick_entry))
        h2o_timeout_link(rt_loop_evloop(p->loop), &p->tick_timeout, &p->tick_entry);
}

static void send_heartbeat(edge_presence_t *p)
{
    Rtsync__V1__EdgeHeartbeat hb = RTSYNC__V1__EDGE_HEARTBEAT__INIT;
    hb.edge = (char *)p->server->config.edge_id;
    hb.edge_epoch = p->epoch;
    pthread_mutex_lock(&p->lock);
    hb.seq = p->seq;
    hb.members = (uint32_t)p->members.len;
    pthread_mutex_unlock(&p->lock);
    hb.draining = atomic_load(&p->server->draining) != 0;
    uint8_t buf[256];
    size_t len = rtsync__v1__edge_heartbeat__pack(&hb, buf);
    rt_bus_publish(p->server->bus, "rt.pres.heartbeat", buf, len);
}

static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    edge_presence_t *p = RT_CONTAINER_OF(entry, edge_presence_t, heartbeat_entry);
    send_heartbeat(p);
    h2o_timeout_link(rt_loop_evloop(p->loop), &p->heartbeat_timeout, &p->heartbeat_entry);
}

static void on_resync(void *ctx, const rt_bus_msg_t *msg)
{
    edge_presence_t *p = ctx;
    Rtsync__V1__ResyncRequest *req = rtsync__v1__resync_request__unpack(NULL, msg->data.len, msg->data.data);
    if (req == NULL) {
        RT_LOG_WARN("bus_bad_message", "subject=%s bytes=%zu", msg->subject, msg->data.len);
        return;
    }
    int mine = *req->edge == '\0' || strcmp(req->edge, p->server->config.edge_id) == 0;
    rtsync__v1__resync_request__free_unpacked(req, NULL);
    if (!mine)
        return;
    pthread_mutex_lock(&p->lock);
    /* queued updates are part of the snapshot: drop them, then list everyone */
    p->pending.len = 0;
    p->npending = 0;
    size_t pos = 0;
    uint32_t part = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&p->members, &pos)) != NULL) {
        member_t *m = e->value;
        m->state_dirty = 0;
        queue_update(p, RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_JOIN, m);
        /* parts well under NATS's 1 MiB payload limit */
        if (p->pending.len >= SNAPSHOT_PART_BYTES)
            publish_snapshot_part(p, 1, part++, 1);
    }
    publish_snapshot_part(p, 1, part, 0);
    pthread_mutex_unlock(&p->lock);
    send_heartbeat(p);
}

int edge_presence_create(edge_server_t *server, edge_presence_t **out)
{
    edge_presence_t *p = rt_xcalloc(1, sizeof(*p));
    p->server = server;
    pthread_mutex_init(&p->lock, NULL);
    /* a new epoch per process: the presence service forgets what an earlier one announced */
    p->epoch = (uint64_t)rt_now_wall_ms() * 1000 + (uint64_t)(rt_now_mono_ns() % 1000);
    *out = p;
    return RT_OK;
}

void edge_presence_start(edge_presence_t *p, rt_loop_t *loop)
{
    h2o_evloop_t *ev = rt_loop_evloop(loop);
    h2o_timeout_init(ev, &p->tick_timeout, TICK_MS);
    h2o_timeout_init(ev, &p->heartbeat_timeout, (uint64_t)p->server->config.presence_ttl_ms / 6);
    p->tick_entry.cb = on_tick;
    p->heartbeat_entry.cb = on_heartbeat;
    p->arm_task.cb = on_arm;
    pthread_mutex_lock(&p->lock);
    p->loop = loop;    /* other threads may take states from now on */
    p->tick_armed = 1; /* a first tick flushes states taken before (other threads run already) */
    h2o_timeout_link(ev, &p->tick_timeout, &p->tick_entry);
    pthread_mutex_unlock(&p->lock);
    h2o_timeout_link(ev, &p->heartbeat_timeout, &p->heartbeat_entry);
    if (rt_bus_subscribe(p->server->bus, loop, "rt.pres.resync", NULL, on_resync, p, &p->resync_sub) != RT_OK)
        RT_LOG_ERROR("presence_resync_unavailable", "subject=rt.pres.resync");
    send_heartbeat(p);
}

void edge_presence_stop(edge_presence_t *p)
{
    /* flush the leaves of the drained connections, say we are going */
    pthread_mutex_lock(&p->lock);
    if (p->npending > 0)
        publish_batch(p, 0);
    pthread_mutex_unlock(&p->lock);
    send_heartbeat(p);
    rt_bus_unsubscribe(p->resync_sub);
    p->resync_sub = NULL;
    if (h2o_timeout_is_linked(&p->tick_entry))
        h2o_timeout_unlink(&p->tick_entry);
    if (h2o_timeout_is_linked(&p->heartbeat_entry))
        h2o_timeout_unlink(&p->heartbeat_entry);
}

void edge_presence_destroy(edge_presence_t *p)
{
    if (p == NULL)
        return;
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&p->members, &pos)) != NULL)
        member_free(e->value);
    rt_map_dispose(&p->members);
    rt_buf_dispose(&p->pending);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- queries and signals, through the presence service ------------------------------ */

typedef struct presence_wait {
    edge_presence_reply_cb cb;
    void *ctx;
    int signal;
} presence_wait_t;

static void on_presence_reply(void *ctx, int err, rt_slice_t data)
{
    presence_wait_t w = *(presence_wait_t *)ctx;
    free(ctx);
    json_t *members = NULL;
    if (err == RT_OK && w.signal) {
        Rtsync__V1__SignalReply *r = rtsync__v1__signal_reply__unpack(NULL, data.len, data.data);
        err = r == NULL || r->status == NULL                        ? RT_EUNAVAIL
              : r->status->code == RTSYNC__V1__CODE__CODE_OK        ? RT_OK
              : r->status->code == RTSYNC__V1__CODE__CODE_NOT_FOUND ? RT_ENOTFOUND
                                                                    : RT_EUNAVAIL;
        if (r != NULL)
            rtsync__v1__signal_reply__free_unpacked(r, NULL);
    } else if (err == RT_OK) {
        Rtsync__V1__PresenceReply *r = rtsync__v1__presence_reply__unpack(NULL, data.len, data.data);
        if (r == NULL || r->status == NULL || r->status->code != RTSYNC__V1__CODE__CODE_OK) {
            err = RT_EUNAVAIL;
        } else {
            json_t *list = json_array();
            members =
                json_pack("{s:o, s:I}", "members", list, "total", (json_int_t)(r->truncated ? r->total : r->n_members));
            if (r->truncated)
                json_object_set_new(members, "truncated", json_true());
            for (size_t i = 0; i < r->n_members; i++) {
                const Rtsync__V1__Member *m = r->members[i];
                json_t *state =
                    m->state.len ? json_loadb((const char *)m->state.data, m->state.len, JSON_DECODE_ANY, NULL) : NULL;
                json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:I}", "user", m->user, "conn", m->conn,
                                                      "edge", m->edge, "state", state ? state : json_null(), "since",
                                                      (json_int_t)m->since_ms));
            }
        }
        if (r != NULL)
            rtsync__v1__presence_reply__free_unpacked(r, NULL);
    }
    w.cb(w.ctx, err, members);
    json_decref(members);
}

static void presence_request(edge_thread_t *t, const char *subject, const uint8_t *buf, size_t len, int signal,
                             edge_presence_reply_cb cb, void *ctx)
{
    presence_wait_t *w = rt_xmalloc(sizeof(*w));
    *w = (presence_wait_t){cb, ctx, signal};
    int err = rt_bus_request(t->requester, subject, buf, len, on_presence_reply, w);
    if (err != RT_OK) {
        free(w);
        cb(ctx, err, NULL);
    }
}

void edge_presence_query(edge_thread_t *t, const char *channel, edge_presence_reply_cb cb, void *ctx)
{
    Rtsync__V1__PresenceQuery q = RTSYNC__V1__PRESENCE_QUERY__INIT;
    q.channel = (char *)channel;
    uint8_t buf[256];
    presence_request(t, "rt.pres.query", buf, rtsync__v1__presence_query__pack(&q, buf), 0, cb, ctx);
}

void edge_presence_signal(edge_thread_t *t, const char *channel, const edge_client_t *from, const char *to,
                          const char *data, size_t len, edge_presence_reply_cb cb, void *ctx)
{
    Rtsync__V1__SignalRequest r = RTSYNC__V1__SIGNAL_REQUEST__INIT;
    r.channel = (char *)channel;
    r.to_conn = (char *)to;
    r.from_user = from->user;
    r.from_conn = (char *)from->conn_id;
    r.data.data = (uint8_t *)data;
    r.data.len = len;
    size_t n = rtsync__v1__signal_request__get_packed_size(&r);
    uint8_t *buf = rt_xmalloc(n);
    rtsync__v1__signal_request__pack(&r, buf);
    presence_request(t, "rt.pres.signal", buf, n, 1, cb, ctx);
    free(buf);
}
