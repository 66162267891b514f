/*
 * doc.c: the thread's table of open documents.
 *
 * A document exists on a thread while a local /yjs connection has it open, and
 * holds the thread's NATS subscriptions to rt.doc.bcast.<doc> (the changes
 * crdt-merge applied) and rt.doc.aw.<doc> (awareness from every edge and
 * crdt-merge's removals) for exactly that long.  Each message is framed once
 * and the frame shared by every local connection of the document.
 *
 * A tick every 2 s, while the thread has documents, publishes the edge's
 * heartbeat on rt.doc.edge (crdt-merge removes the awareness states of an edge
 * that falls silent) and sends the empty awareness update 01 01 00 to every
 * connection idle for 15 s: y-websocket clients close a connection on which
 * nothing arrived for 30 s.
 *
 * The table is per thread (thread-local), created on first use.
 */
#include "docs.h"
#include "rt/log.h"
#include "rt/yproto.h"
#include "rtsync/v1/doc.pb-c.h"

#include <stdlib.h>
#include <string.h>

#define TICK_MS 2000
#define KEEPALIVE_IDLE_MS 15000

struct edge_ydoc {
    edge_thread_t *thread;
    char name[EDGE_DOC_NAME_MAX + 1];
    h2o_linklist_t sessions; /* edge_ysession_t.doc_link */
    uint32_t nsessions;
    rt_bus_sub_t *bcast_sub, *aw_sub;
};

typedef struct doc_table {
    edge_thread_t *thread;
    rt_map_t docs; /* name -> edge_ydoc_t */
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick_entry;
    h2o_timeout_t batch_timeout; /* 0 ms: the end of the loop turn */
    h2o_timeout_entry_t batch_entry;
    h2o_linklist_t batched;     /* edge_ysession_t.batch_link */
    h2o_timeout_t pace_timeout; /* EDGE_YJS_PACE_MS: edge_ysession_t.pace_entry */
} doc_table_t;

static __thread doc_table_t *table;

static const uint8_t keepalive_msg[] = {RT_YMSG_AWARENESS, 0x01, 0x00};

uint64_t edge_docs_epoch(edge_thread_t *t)
{
    return (uint64_t)t->server->started_ms;
}

void edge_ysession_send(edge_ysession_t *s, edge_frame_t *frame)
{
    if (s->conn == NULL) {
        edge_frame_release(frame);
        return;
    }
    s->last_tx_ms = h2o_now(s->conn->client.thread->ctx.loop);
    edge_ws_send(s->conn, frame);
}

/* Sends one frame (borrowed) to every session of the document. */
static void send_all(edge_ydoc_t *doc, edge_frame_t *frame)
{
    /* a send may close a slow connection, which leaves the document: walk with a saved next */
    for (h2o_linklist_t *n = doc->sessions.next, *next; n != &doc->sessions; n = next) {
        next = n->next;
        edge_ysession_send(RT_CONTAINER_OF(n, edge_ysession_t, doc_link), edge_frame_ref(frame));
    }
}

static void on_bcast(void *ctx, const rt_bus_msg_t *msg)
{
    edge_ydoc_t *doc = ctx;
    EDGE_COUNT(doc->thread, bus_messages, 1);
    Rtsync__V1__DocBroadcast *b = rtsync__v1__doc_broadcast__unpack(NULL, msg->data.len, msg->data.data);
    if (b == NULL || strcmp(b->doc, doc->name) != 0) {
        EDGE_COUNT(doc->thread, bus_bad, 1);
        RT_LOG_WARN("bus_bad_message", "subject=%s bytes=%zu", msg->subject, msg->data.len);
    } else {
        rt_buf_t out = {0};
        rt_ymsg_encode_sync(&out, RT_YSYNC_UPDATE, (rt_slice_t){b->update.data, b->update.len});
        edge_frame_t *frame = edge_frame_ws(0x2, out.data, out.len);
        rt_buf_dispose(&out);
        EDGE_COUNT(doc->thread, deliveries, doc->nsessions);
        send_all(doc, frame);
        edge_frame_release(frame);
        for (size_t i = 0; i < b->n_acks; i++) /* requests of ours it answers */
            rt_bus_requester_resolve(doc->thread->requester, b->acks[i], (rt_slice_t){NULL, 0});
    }
    rtsync__v1__doc_broadcast__free_unpacked(b, NULL);
}

static void on_awareness(void *ctx, const rt_bus_msg_t *msg)
{
    edge_ydoc_t *doc = ctx;
    EDGE_COUNT(doc->thread, bus_messages, 1);
    Rtsync__V1__DocAwareness *a = rtsync__v1__doc_awareness__unpack(NULL, msg->data.len, msg->data.data);
    if (a == NULL || strcmp(a->doc, doc->name) != 0 ||
        rt_yaw_validate((rt_slice_t){a->update.data, a->update.len}) != RT_OK) {
        EDGE_COUNT(doc->thread, bus_bad, 1);
        RT_LOG_WARN("bus_bad_message", "subject=%s bytes=%zu", msg->subject, msg->data.len);
    } else {
        edge_ydoc_relay_awareness(doc, (rt_slice_t){a->update.data, a->update.len});
    }
    rtsync__v1__doc_awareness__free_unpacked(a, NULL);
}

void edge_ydoc_relay_awareness(edge_ydoc_t *doc, rt_slice_t update)
{
    rt_buf_t out = {0};
    rt_ymsg_encode_awareness(&out, update);
    edge_frame_t *frame = edge_frame_ws(0x2, out.data, out.len);
    rt_buf_dispose(&out);
    send_all(doc, frame);
    edge_frame_release(frame);
}

static void send_heartbeat(edge_thread_t *t)
{
    Rtsync__V1__DocEdgeHeartbeat hb = RTSYNC__V1__DOC_EDGE_HEARTBEAT__INIT;
    hb.edge = (char *)t->server->config.edge_id;
    hb.edge_epoch = edge_docs_epoch(t);
    uint8_t buf[512];
    size_t n = rtsync__v1__doc_edge_heartbeat__get_packed_size(&hb);
    if (n <= sizeof(buf))
        rt_bus_publish(t->bus, "rt.doc.edge", buf, rtsync__v1__doc_edge_heartbeat__pack(&hb, buf));
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    doc_table_t *tb = RT_CONTAINER_OF(entry, doc_table_t, tick_entry);
    uint64_t now = h2o_now(tb->thread->ctx.loop);
    send_heartbeat(tb->thread);
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&tb->docs, &pos)) != NULL) {
        edge_ydoc_t *doc = e->value;
        for (h2o_linklist_t *n = doc->sessions.next, *next; n != &doc->sessions; n = next) {
            next = n->next;
            edge_ysession_t *s = RT_CONTAINER_OF(n, edge_ysession_t, doc_link);
            if (now - s->last_tx_ms >= KEEPALIVE_IDLE_MS)
                edge_ysession_send(s, edge_frame_ws(0x2, keepalive_msg, sizeof(keepalive_msg)));
        }
    }
    if (tb->docs.len > 0)
        h2o_timeout_link(tb->thread->ctx.loop, &tb->tick_timeout, &tb->tick_entry);
}

static void on_batch_timeout(h2o_timeout_entry_t *entry)
{
    doc_table_t *tb = RT_CONTAINER_OF(entry, doc_table_t, batch_entry);
    while (!h2o_linklist_is_empty(&tb->batched)) {
        edge_ysession_t *s = RT_CONTAINER_OF(tb->batched.next, edge_ysession_t, batch_link);
        h2o_linklist_unlink(&s->batch_link);
        edge_ysession_flush(s);
    }
}

static void on_pace_timeout(h2o_timeout_entry_t *entry)
{
    edge_ysession_resume(RT_CONTAINER_OF(entry, edge_ysession_t, pace_entry));
}

static doc_table_t *table_of(edge_thread_t *t)
{
    if (table == NULL) {
        table = rt_xcalloc(1, sizeof(*table));
        table->thread = t;
        h2o_timeout_init(t->ctx.loop, &table->tick_timeout, TICK_MS);
        table->tick_entry.cb = on_tick;
        h2o_timeout_init(t->ctx.loop, &table->batch_timeout, 0);
        table->batch_entry.cb = on_batch_timeout;
        h2o_linklist_init_anchor(&table->batched);
        h2o_timeout_init(t->ctx.loop, &table->pace_timeout, EDGE_YJS_PACE_MS);
    }
    return table;
}

void edge_ysession_flush_later(edge_ysession_t *s)
{
    doc_table_t *tb = table_of(s->conn->client.thread);
    s->pace_entry.cb = on_pace_timeout;
    if (!h2o_timeout_is_linked(&s->pace_entry))
        h2o_timeout_link(tb->thread->ctx.loop, &tb->pace_timeout, &s->pace_entry);
}

void edge_ysession_schedule_flush(edge_ysession_t *s)
{
    doc_table_t *tb = table_of(s->conn->client.thread);
    if (h2o_linklist_is_linked(&s->batch_link))
        return;
    h2o_linklist_insert(&tb->batched, &s->batch_link);
    if (!h2o_timeout_is_linked(&tb->batch_entry))
        h2o_timeout_link(tb->thread->ctx.loop, &tb->batch_timeout, &tb->batch_entry);
}

void edge_ysession_cancel_flush(edge_ysession_t *s)
{
    if (h2o_linklist_is_linked(&s->batch_link))
        h2o_linklist_unlink(&s->batch_link);
    if (h2o_timeout_is_linked(&s->pace_entry))
        h2o_timeout_unlink(&s->pace_entry);
}

static void doc_destroy(doc_table_t *tb, edge_ydoc_t *doc)
{
    rt_map_remove(&tb->docs, doc->name, strlen(doc->name));
    rt_bus_unsubscribe(doc->bcast_sub);
    rt_bus_unsubscribe(doc->aw_sub);
    free(doc);
    if (tb->docs.len == 0 && h2o_timeout_is_linked(&tb->tick_entry))
        h2o_timeout_unlink(&tb->tick_entry);
}

static int doc_create(doc_table_t *tb, const char *name, edge_ydoc_t **out)
{
    edge_thread_t *t = tb->thread;
    edge_ydoc_t *doc = rt_xcalloc(1, sizeof(*doc));
    doc->thread = t;
    snprintf(doc->name, sizeof(doc->name), "%s", name);
    h2o_linklist_init_anchor(&doc->sessions);
    rt_map_put(&tb->docs, doc->name, strlen(doc->name), doc);
    char subject[EDGE_DOC_NAME_MAX + 32];
    rt_bus_subject(subject, sizeof(subject), "rt.doc.bcast", name);
    int err = rt_bus_subscribe(t->bus, t->loop, subject, NULL, on_bcast, doc, &doc->bcast_sub);
    if (err == RT_OK) {
        rt_bus_subject(subject, sizeof(subject), "rt.doc.aw", name);
        err = rt_bus_subscribe(t->bus, t->loop, subject, NULL, on_awareness, doc, &doc->aw_sub);
    }
    if (err != RT_OK) {
        doc_destroy(tb, doc);
        return err;
    }
    if (!h2o_timeout_is_linked(&tb->tick_entry)) {
        send_heartbeat(t);
        h2o_timeout_link(t->ctx.loop, &tb->tick_timeout, &tb->tick_entry);
    }
    *out = doc;
    return RT_OK;
}

int edge_ydoc_join(edge_thread_t *t, edge_ysession_t *s)
{
    doc_table_t *tb = table_of(t);
    edge_ydoc_t *doc = rt_map_get(&tb->docs, s->name, strlen(s->name));
    if (doc == NULL) {
        int err = doc_create(tb, s->name, &doc);
        if (err != RT_OK)
            return err;
    }
    s->doc = doc;
    s->last_tx_ms = h2o_now(t->ctx.loop);
    h2o_linklist_insert(&doc->sessions, &s->doc_link);
    doc->nsessions++;
    return RT_OK;
}

void edge_ydoc_leave(edge_ysession_t *s)
{
    edge_ydoc_t *doc = s->doc;
    if (doc == NULL)
        return;
    h2o_linklist_unlink(&s->doc_link);
    s->doc = NULL;
    if (--doc->nsessions == 0)
        doc_destroy(table, doc);
}
