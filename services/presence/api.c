/*
 * api.c: the NATS face of presence, and the service's lifetime.
 *
 * Everything runs on one rt_loop on the main thread.  Every replica listens
 * (no queue group) to rt.pres.updates, rt.pres.heartbeat and rt.pres.peer, so
 * each holds the whole view.  At start it asks every edge for a snapshot
 * (rt.pres.resync) and becomes ready once a heartbeat interval has passed and
 * every edge heard from has answered (or a bounded wait ran out); only then
 * does it join the "pres" queue group on rt.pres.query and rt.pres.signal, so
 * a replica rebuilding its view never answers.  Leaves of dead or restarted
 * edges go out on rt.ch.<channel> from the elected replica only (peers.c):
 * every PeerHeartbeat says whether its sender is ready and which edges it knows.
 * Garbage on any subject is counted and dropped (answered with
 * CODE_BAD_REQUEST when a reply inbox is given).
 */
#include "pres.h"
#include "rt/log.h"
#include "rtsync/v1/channel.pb-c.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define ARENA_SIZE (3 * PRES_MAX_MESSAGE)
#define STATS_INTERVAL_NS 10000000000ull
#define MS ((uint64_t)1000000)

typedef struct pres_stats {
    uint64_t bad, batches, heartbeats, queries, signals, signals_not_found, leaves_announced;
} pres_stats_t;

struct pres_service {
    const pres_config_t *cfg;
    rt_loop_t *loop;
    rt_bus_t *bus;
    rt_bus_sub_t *updates_sub, *heartbeat_sub, *peer_sub, *query_sub, *signal_sub;
    pres_arena_t arena;
    pres_edges_t edges;
    pres_peers_t peers;
    pres_stats_t stats;
    rt_buf_t out;                   /* reused for every encoded message */
    Rtsync__V1__Member *reply_members; /* reused for query replies */
    Rtsync__V1__Member **reply_ptrs;
    size_t reply_cap;
    const pres_member_t **list; /* reused for query results */
    size_t list_cap;
    char **known; /* reused for the edges our PeerHeartbeat lists */
    size_t nknown, known_cap;
    uint64_t interval_ns;           /* edges' heartbeat period (TTL / 6); ours too */
    uint64_t started_ns;            /* when the first resync went out; 0: not yet */
    uint64_t next_peer_ns, next_stats_ns;
    int ready;
    uint64_t reconnects; /* rt_bus_reconnects when last handled */
    uint64_t duplicate_warnings;
};

/* ---- sending ------------------------------------------------------------------ */

static void add_known_edge(void *ctx, const char *id)
{
    pres_service_t *svc = ctx;
    if (svc->nknown == svc->known_cap) {
        svc->known_cap = svc->known_cap ? 2 * svc->known_cap : 16;
        svc->known = rt_xrealloc(svc->known, svc->known_cap * sizeof(*svc->known));
    }
    svc->known[svc->nknown++] = (char *)id;
}

static void send_peer_heartbeat(pres_service_t *svc)
{
    Rtsync__V1__PeerHeartbeat hb = RTSYNC__V1__PEER_HEARTBEAT__INIT;
    hb.instance = (char *)svc->cfg->instance_id;
    hb.ready = svc->ready;
    hb.incarnation = svc->peers.incarnation;
    svc->nknown = 0;
    pres_edges_each_known(&svc->edges, rt_now_mono_ns(), add_known_edge, svc);
    hb.edges = svc->known;
    hb.n_edges = svc->nknown;
    size_t n = rtsync__v1__peer_heartbeat__get_packed_size(&hb);
    svc->out.len = 0;
    rtsync__v1__peer_heartbeat__pack(&hb, rt_buf_reserve(&svc->out, n));
    rt_bus_publish(svc->bus, "rt.pres.peer", svc->out.data, n);
}

static void publish_on_channel(pres_service_t *svc, const Rtsync__V1__ChannelMessage *m)
{
    size_t n = rtsync__v1__channel_message__get_packed_size(m);
    svc->out.len = 0;
    rtsync__v1__channel_message__pack(m, rt_buf_reserve(&svc->out, n));
    char subject[PRES_MAX_CHANNEL + 16];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", m->channel);
    rt_bus_publish(svc->bus, subject, svc->out.data, n);
}

static void request_resync(void *ctx, const char *edge)
{
    pres_service_t *svc = ctx;
    Rtsync__V1__ResyncRequest r = RTSYNC__V1__RESYNC_REQUEST__INIT;
    r.edge = (char *)edge;
    uint8_t buf[PRES_MAX_ID + 16];
    size_t n = rtsync__v1__resync_request__pack(&r, buf);
    RT_LOG_DEBUG("resync", "edge=%s", edge[0] ? edge : "*");
    rt_bus_publish(svc->bus, "rt.pres.resync", buf, n);
}

static void fill_member(Rtsync__V1__Member *out, const pres_member_t *m)
{
    rtsync__v1__member__init(out);
    out->channel = (char *)m->channel;
    out->user = (char *)m->user;
    out->conn = (char *)m->conn;
    out->edge = m->edge->id;
    out->state.data = m->state;
    out->state.len = m->state_len;
    out->since_ms = m->since_ms;
}

/* A member of a dead or restarted edge left: the elected replica says so. */
static void member_gone(void *ctx, const pres_member_t *m)
{
    pres_service_t *svc = ctx;
    if (!pres_peers_is_emitter(&svc->peers, svc->ready, m->edge->id, m->edge->first_heard_ns, rt_now_mono_ns()))
        return;
    Rtsync__V1__Member member;
    fill_member(&member, m);
    Rtsync__V1__PresenceUpdate u = RTSYNC__V1__PRESENCE_UPDATE__INIT;
    u.kind = RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE;
    u.member = &member;
    Rtsync__V1__ChannelMessage cm = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    cm.channel = member.channel;
    cm.event = "leave";
    cm.from_user = member.user;
    cm.from_conn = member.conn;
    cm.ts_ms = rt_now_wall_ms();
    cm.origin_edge = (char *)svc->cfg->instance_id; /* not the dead edge: a restarted one must not skip it as its own */
    cm.presence = &u;
    publish_on_channel(svc, &cm);
    svc->stats.leaves_announced++;
}

static void send_status_reply(pres_service_t *svc, const char *reply, int is_query, Rtsync__V1__Code code,
                              const char *why)
{
    if (reply == NULL || *reply == '\0')
        return;
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = code;
    status.message = (char *)(why ? why : "");
    uint8_t buf[256]; /* why is a short static text */
    size_t n;
    if (is_query) {
        Rtsync__V1__PresenceReply r = RTSYNC__V1__PRESENCE_REPLY__INIT;
        r.status = &status;
        n = rtsync__v1__presence_reply__pack(&r, buf);
    } else {
        Rtsync__V1__SignalReply r = RTSYNC__V1__SIGNAL_REPLY__INIT;
        r.status = &status;
        n = rtsync__v1__signal_reply__pack(&r, buf);
    }
    rt_bus_publish(svc->bus, reply, buf, n);
}

/* ---- receiving ---------------------------------------------------------------------- */

static void count_bad(pres_service_t *svc, const rt_bus_msg_t *msg, const char *why)
{
    uint64_t total = ++svc->stats.bad;
    /* the first few, then every 1000th: garbage must not flood the log */
    if (total <= 10 || total % 1000 == 0)
        RT_LOG_WARN("bad_message", "subject=%s why=\"%s\" bytes=%zu total=%" PRIu64, msg->subject, why,
                    msg->data.len, total);
}

static void on_updates(void *ctx, const rt_bus_msg_t *msg)
{
    pres_service_t *svc = ctx;
    Rtsync__V1__PresenceBatch *b;
    const char *why = NULL;
    if (pres_decode_batch(&svc->arena, msg->data, &b, &why) != RT_OK) {
        count_bad(svc, msg, why);
        return;
    }
    svc->stats.batches++;
    pres_edges_on_batch(&svc->edges, b, rt_now_mono_ns());
}

static void on_heartbeat(void *ctx, const rt_bus_msg_t *msg)
{
    pres_service_t *svc = ctx;
    Rtsync__V1__EdgeHeartbeat *hb;
    const char *why = NULL;
    if (pres_decode_heartbeat(&svc->arena, msg->data, &hb, &why) != RT_OK) {
        count_bad(svc, msg, why);
        return;
    }
    svc->stats.heartbeats++;
    pres_edges_on_heartbeat(&svc->edges, hb, rt_now_mono_ns());
}

static void on_peer(void *ctx, const rt_bus_msg_t *msg)
{
    pres_service_t *svc = ctx;
    Rtsync__V1__PeerHeartbeat *p;
    const char *why = NULL;
    if (pres_decode_peer(&svc->arena, msg->data, &p, &why) != RT_OK) {
        count_bad(svc, msg, why);
        return;
    }
    if (pres_peers_seen(&svc->peers, p, rt_now_mono_ns()) &&
        svc->duplicate_warnings++ % 100 == 0)
        RT_LOG_WARN("duplicate_instance", "instance=%s: another presence process uses this RT_INSTANCE_ID",
                    p->instance);
}

/* Room for n members in the reused reply arrays. */
static void reply_reserve(pres_service_t *svc, size_t n)
{
    if (n <= svc->reply_cap)
        return;
    svc->reply_cap = n;
    svc->reply_members = rt_xrealloc(svc->reply_members, n * sizeof(*svc->reply_members));
    svc->reply_ptrs = rt_xrealloc(svc->reply_ptrs, n * sizeof(*svc->reply_ptrs));
}

static void on_query(void *ctx, const rt_bus_msg_t *msg)
{
    pres_service_t *svc = ctx;
    Rtsync__V1__PresenceQuery *q;
    const char *why = NULL;
    if (pres_decode_query(&svc->arena, msg->data, &q, &why) != RT_OK) {
        count_bad(svc, msg, why);
        send_status_reply(svc, msg->reply, 1, RTSYNC__V1__CODE__CODE_BAD_REQUEST, why);
        return;
    }
    if (msg->reply == NULL || *msg->reply == '\0')
        return;
    svc->stats.queries++;
    size_t n = pres_view_list(&svc->edges.view, q->channel, &svc->list, &svc->list_cap);
    reply_reserve(svc, n);
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    Rtsync__V1__PresenceReply r = RTSYNC__V1__PRESENCE_REPLY__INIT;
    r.status = &status;
    r.members = svc->reply_ptrs;
    r.total = (uint32_t)n;
    size_t size = 64;
    for (size_t i = 0; i < n; i++) {
        Rtsync__V1__Member *m = &svc->reply_members[i];
        fill_member(m, svc->list[i]);
        size += rtsync__v1__member__get_packed_size(m) + 6; /* tag and length */
        if (size > PRES_MAX_REPLY) {
            r.truncated = 1;
            break;
        }
        svc->reply_ptrs[r.n_members++] = m;
    }
    size_t len = rtsync__v1__presence_reply__get_packed_size(&r);
    svc->out.len = 0;
    rtsync__v1__presence_reply__pack(&r, rt_buf_reserve(&svc->out, len));
    rt_bus_publish(svc->bus, msg->reply, svc->out.data, len);
}

static void on_signal(void *ctx, const rt_bus_msg_t *msg)
{
    pres_service_t *svc = ctx;
    Rtsync__V1__SignalRequest *s;
    const char *why = NULL;
    if (pres_decode_signal(&svc->arena, msg->data, &s, &why) != RT_OK) {
        count_bad(svc, msg, why);
        send_status_reply(svc, msg->reply, 0, RTSYNC__V1__CODE__CODE_BAD_REQUEST, why);
        return;
    }
    svc->stats.signals++;
    const pres_member_t *to = pres_view_member(&svc->edges.view, s->channel, s->to_conn);
    if (to == NULL) {
        svc->stats.signals_not_found++;
        send_status_reply(svc, msg->reply, 0, RTSYNC__V1__CODE__CODE_NOT_FOUND, "not in the channel");
        return;
    }
    Rtsync__V1__ChannelMessage cm = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    cm.channel = s->channel;
    cm.event = "signal";
    cm.data = s->data;
    cm.from_user = s->from_user;
    cm.from_conn = s->from_conn;
    cm.to_conn = s->to_conn;
    cm.ts_ms = rt_now_wall_ms();
    cm.origin_edge = to->edge->id; /* the edge that holds the target */
    publish_on_channel(svc, &cm);
    send_status_reply(svc, msg->reply, 0, RTSYNC__V1__CODE__CODE_OK, NULL);
}

/* ---- lifetime ------------------------------------------------------------------------ */

static uint64_t random_u64(void)
{
    uint64_t r;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = rt_now_mono_ns() ^ ((uint64_t)getpid() << 40);
    return r;
}

int pres_service_create(const pres_config_t *cfg, pres_service_t **out)
{
    pres_service_t *svc = rt_xcalloc(1, sizeof(*svc));
    svc->cfg = cfg;
    uint64_t ttl_ns = (uint64_t)cfg->ttl_ms * MS;
    svc->interval_ns = ttl_ns / 6 < 100 * MS ? 100 * MS : ttl_ns / 6;
    rt_pb_arena_init(&svc->arena, ARENA_SIZE);
    static const pres_edges_ops_t ops = {.request_resync = request_resync, .member_gone = member_gone};
    pres_edges_init(&svc->edges, ttl_ns, svc->interval_ns, &ops, svc);
    pres_peers_init(&svc->peers, cfg->instance_id, random_u64(), 3 * svc->interval_ns + 100 * MS,
                    svc->interval_ns + 100 * MS);
    rt_loop_create(&svc->loop);
    int err = rt_bus_create(cfg->nats_url, cfg->instance_id, 0, &svc->bus);
    if (err != RT_OK) {
        pres_service_destroy(svc);
        return err;
    }
    err = rt_bus_subscribe(svc->bus, svc->loop, "rt.pres.updates", NULL, on_updates, svc, &svc->updates_sub);
    if (err == RT_OK)
        err = rt_bus_subscribe(svc->bus, svc->loop, "rt.pres.heartbeat", NULL, on_heartbeat, svc,
                               &svc->heartbeat_sub);
    if (err == RT_OK)
        err = rt_bus_subscribe(svc->bus, svc->loop, "rt.pres.peer", NULL, on_peer, svc, &svc->peer_sub);
    if (err != RT_OK) {
        pres_service_destroy(svc);
        return err;
    }
    RT_LOG_INFO("started", "instance=%s nats=%s ttl_ms=%lld", cfg->instance_id, cfg->nats_url,
                (long long)cfg->ttl_ms);
    *out = svc;
    return RT_OK;
}

/* Ready: a heartbeat interval and a half has passed (every live edge and replica was
 * heard from) and every edge sent its snapshot, or the bounded wait ran out. */
static void check_ready(pres_service_t *svc, uint64_t now)
{
    uint64_t waited = now - svc->started_ns, min_wait = svc->interval_ns * 3 / 2;
    uint64_t max_wait = 2 * svc->interval_ns < 10000 * MS ? 2 * svc->interval_ns : 10000 * MS;
    if (max_wait < min_wait + svc->interval_ns / 2)
        max_wait = min_wait + svc->interval_ns / 2;
    size_t unsynced = pres_edges_unsynced(&svc->edges);
    if (waited < min_wait || (unsynced > 0 && waited < max_wait))
        return;
    int err = RT_OK;
    if (svc->query_sub == NULL)
        err = rt_bus_subscribe(svc->bus, svc->loop, "rt.pres.query", "pres", on_query, svc, &svc->query_sub);
    if (err == RT_OK && svc->signal_sub == NULL)
        err = rt_bus_subscribe(svc->bus, svc->loop, "rt.pres.signal", "pres", on_signal, svc, &svc->signal_sub);
    if (err != RT_OK)
        return; /* tried again on the next tick */
    svc->ready = 1;
    send_peer_heartbeat(svc);
    svc->next_peer_ns = now + svc->interval_ns;
    RT_LOG_INFO("ready", "instance=%s edges=%zu members=%zu unsynced=%zu waited_ms=%" PRIu64, svc->cfg->instance_id,
                svc->edges.view.edges.len, svc->edges.view.nmembers, unsynced, waited / MS);
}

static void log_stats(pres_service_t *svc)
{
    const pres_stats_t *s = &svc->stats;
    const pres_edges_t *e = &svc->edges;
    RT_LOG_INFO("stats",
                "ready=%d edges=%zu channels=%zu members=%zu batches=%" PRIu64 " heartbeats=%" PRIu64
                " queries=%" PRIu64 " signals=%" PRIu64 " signals_not_found=%" PRIu64 " bad=%" PRIu64
                " stale=%" PRIu64 " gaps=%" PRIu64 " resyncs=%" PRIu64 " expired_edges=%" PRIu64
                " restarted_edges=%" PRIu64 " leaves_announced=%" PRIu64,
                svc->ready, e->view.edges.len, e->view.channels.len, e->view.nmembers, s->batches, s->heartbeats,
                s->queries, s->signals, s->signals_not_found, s->bad, e->stale, e->gaps, e->resyncs,
                e->expired_edges, e->restarted_edges, s->leaves_announced);
}

static void tick(pres_service_t *svc, uint64_t now)
{
    int connected = rt_bus_is_connected(svc->bus);
    if (svc->started_ns == 0) {
        if (!connected)
            return;
        rt_bus_flush(svc->bus, 2000); /* our subscriptions are in place before edges answer */
        svc->started_ns = now;
        svc->reconnects = rt_bus_reconnects(svc->bus);
        pres_edges_resync_all(&svc->edges, 0, now);
        send_peer_heartbeat(svc);
        svc->next_peer_ns = now + svc->interval_ns;
        return;
    }
    /* Polled rather than taken from the state callback, which comes from cnats's
     * thread after the connection is up again: a tick in between would take the
     * outage's missing heartbeats for dead edges. */
    uint64_t reconnects = connected ? rt_bus_reconnects(svc->bus) : svc->reconnects;
    if (reconnects != svc->reconnects) {
        svc->reconnects = reconnects;
        RT_LOG_INFO("reconnected", "instance=%s", svc->cfg->instance_id);
        pres_edges_resync_all(&svc->edges, 1, now);
    }
    if (!svc->ready)
        check_ready(svc, now);
    if (connected) /* while we are cut off, edges are not dead: we just cannot hear them */
        pres_edges_tick(&svc->edges, now);
    if (now >= svc->next_peer_ns) {
        pres_peers_expire(&svc->peers, now);
        send_peer_heartbeat(svc);
        svc->next_peer_ns = now + svc->interval_ns;
    }
    if (now >= svc->next_stats_ns) {
        log_stats(svc);
        svc->next_stats_ns = now + STATS_INTERVAL_NS;
    }
}

void pres_service_run(pres_service_t *svc, volatile int *stop)
{
    svc->next_stats_ns = rt_now_mono_ns() + STATS_INTERVAL_NS;
    while (!*stop) {
        rt_loop_run_once(svc->loop, 20);
        tick(svc, rt_now_mono_ns());
    }
}

void pres_service_drain(pres_service_t *svc)
{
    RT_LOG_INFO("draining", "instance=%s", svc->cfg->instance_id);
    rt_bus_unsubscribe(svc->query_sub);
    rt_bus_unsubscribe(svc->signal_sub);
    svc->query_sub = svc->signal_sub = NULL;
    svc->ready = 0;
    send_peer_heartbeat(svc); /* the others stop counting on us at once */
    rt_bus_flush(svc->bus, 1000);
    log_stats(svc);
}

void pres_service_destroy(pres_service_t *svc)
{
    if (svc == NULL)
        return;
    rt_bus_unsubscribe(svc->query_sub);
    rt_bus_unsubscribe(svc->signal_sub);
    rt_bus_unsubscribe(svc->updates_sub);
    rt_bus_unsubscribe(svc->heartbeat_sub);
    rt_bus_unsubscribe(svc->peer_sub);
    rt_bus_destroy(svc->bus);
    rt_loop_destroy(svc->loop);
    pres_edges_dispose(&svc->edges);
    pres_peers_dispose(&svc->peers);
    rt_pb_arena_dispose(&svc->arena);
    rt_buf_dispose(&svc->out);
    free(svc->reply_members);
    free(svc->reply_ptrs);
    free(svc->list);
    free(svc->known);
    free(svc);
}
