/*
 * yjs.c: the y-websocket protocol on /yjs/{doc} (yjs-spec section 2), so that
 * `new WebsocketProvider('ws://host:8080/yjs', doc, ydoc)` works unchanged.
 *
 * On connect the edge opens the document (doc.c: its broadcast and awareness
 * subscriptions go out on the NATS connection before any request, so nothing
 * applied after our sync request is missed) and asks crdt-merge for the
 * state vector and the awareness states: it sends SyncStep1 and, if any,
 * the states.  A client's SyncStep1 is answered with SyncStep2 from
 * crdt-merge; its SyncStep2 and Updates are validated by the engine here,
 * then applied by crdt-merge, which broadcasts what changed to every edge
 * (the sender's included, as the reference server does).  Awareness updates
 * are validated and published on rt.doc.aw.<doc>; every edge relays them (the
 * sender's thread at once, its NATS connection having no echo) and crdt-merge
 * keeps the states.  A malformed message closes the connection with
 * 1008 and reaches nobody; a text frame closes it with 1003.  When crdt-merge
 * cannot be reached the connection is closed with 1013: the client reconnects
 * and syncs again, so nothing it sent is lost.
 */
#include "rt/yjs.h"
#include "docs.h"
#include "rt/log.h"
#include "rt/yproto.h"
#include "rtsync/v1/doc.pb-c.h"

#include <stdlib.h>
#include <string.h>

enum { REQ_CONNECT, REQ_STEP1, REQ_QUERY_AWARENESS, REQ_UPDATE };

/* A batch is sent before it passes this (NATS's payload limit is 1 MiB by default). */
#define BATCH_MAX_BYTES (256u << 10)

/* A request to crdt-merge; outlives its session if need be. */
typedef struct yreq {
    h2o_linklist_t link; /* s->pending */
    edge_ysession_t *s;  /* NULL once the session is gone */
    int kind;
} yreq_t;

static void send_msg(edge_ysession_t *s, const rt_buf_t *msg)
{
    edge_ysession_send(s, edge_frame_ws(0x2, msg->data, msg->len));
}

static void close_bad(edge_ysession_t *s, const char *why)
{
    s->batch.len = 0; /* what came before the bad message is not sent either */
    s->nbatch = 0;
    EDGE_COUNT(s->conn->client.thread, bad_frames, 1);
    RT_LOG_DEBUG("yjs_bad_message", "doc=%s conn=%s why=\"%s\"", s->name, s->conn->client.conn_id, why);
    edge_ws_close(s->conn, 1008, why);
}

static void close_unavailable(edge_ysession_t *s)
{
    edge_ws_close(s->conn, 1013, "document service unavailable");
}

static int status_of(const Rtsync__V1__Status *st)
{
    if (st == NULL)
        return RT_EUNAVAIL;
    switch (st->code) {
    case RTSYNC__V1__CODE__CODE_OK: return RT_OK;
    case RTSYNC__V1__CODE__CODE_BAD_REQUEST: return RT_EINVAL;
    case RTSYNC__V1__CODE__CODE_TOO_LARGE: return RT_ETOOBIG;
    default: return RT_EUNAVAIL;
    }
}

static void on_sync_reply(edge_ysession_t *s, int kind, Rtsync__V1__DocSyncReply *r)
{
    rt_buf_t msg = {0};
    if (kind == REQ_CONNECT)
        rt_ymsg_encode_sync(&msg, RT_YSYNC_STEP1, (rt_slice_t){r->state_vector.data, r->state_vector.len});
    else if (kind == REQ_STEP1)
        rt_ymsg_encode_sync(&msg, RT_YSYNC_STEP2, (rt_slice_t){r->update.data, r->update.len});
    if (msg.len > 0)
        send_msg(s, &msg);
    if ((kind == REQ_CONNECT || kind == REQ_QUERY_AWARENESS) && r->awareness.len > 0) {
        msg.len = 0;
        rt_ymsg_encode_awareness(&msg, (rt_slice_t){r->awareness.data, r->awareness.len});
        send_msg(s, &msg);
    }
    rt_buf_dispose(&msg);
}

static void on_reply(void *ctx, int err, rt_slice_t data)
{
    yreq_t *q = ctx;
    edge_ysession_t *s = q->s;
    int kind = q->kind;
    if (s != NULL)
        h2o_linklist_unlink(&q->link);
    free(q);
    if (s == NULL || s->conn == NULL)
        return;
    if (kind == REQ_UPDATE) {
        /* no data: answered by the broadcast of its changes (doc.c, on_bcast) */
        int replied = err == RT_OK && data.len > 0;
        Rtsync__V1__DocUpdateReply *r =
            replied ? rtsync__v1__doc_update_reply__unpack(NULL, data.len, data.data) : NULL;
        err = replied ? status_of(r ? r->status : NULL) : err;
        rtsync__v1__doc_update_reply__free_unpacked(r, NULL);
        s->updating = 0;
        if (err == RT_OK)
            edge_ysession_resume(s); /* what came meanwhile goes next */
    } else {
        Rtsync__V1__DocSyncReply *r =
            err == RT_OK ? rtsync__v1__doc_sync_reply__unpack(NULL, data.len, data.data) : NULL;
        err = err == RT_OK ? status_of(r ? r->status : NULL) : err;
        if (err == RT_OK)
            on_sync_reply(s, kind, r);
        rtsync__v1__doc_sync_reply__free_unpacked(r, NULL);
    }
    if (err == RT_EINVAL)
        close_bad(s, "refused by the document service");
    else if (err == RT_ETOOBIG)
        edge_ws_close(s->conn, 1009, "document or update too large for the message bus");
    else if (err != RT_OK)
        close_unavailable(s);
}

/* Sends a packed request; the reply comes to on_reply. */
static void request(edge_ysession_t *s, int kind, const char *subject, const ProtobufCMessage *m)
{
    edge_thread_t *t = s->conn->client.thread;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t stack[1024];
    uint8_t *buf = n <= sizeof(stack) ? stack : rt_xmalloc(n);
    protobuf_c_message_pack(m, buf);
    yreq_t *q = rt_xcalloc(1, sizeof(*q));
    q->s = s;
    q->kind = kind;
    h2o_linklist_insert(&s->pending, &q->link);
    int err = rt_bus_request(t->requester, subject, buf, n, on_reply, q);
    if (buf != stack)
        free(buf);
    if (err != RT_OK) {
        h2o_linklist_unlink(&q->link);
        free(q);
        close_unavailable(s);
    }
}

static void request_sync(edge_ysession_t *s, int kind, rt_slice_t sv)
{
    Rtsync__V1__DocSyncRequest r = RTSYNC__V1__DOC_SYNC_REQUEST__INIT;
    r.doc = s->name;
    r.want_update = kind == REQ_STEP1;
    r.want_state = kind != REQ_STEP1;
    r.state_vector = (ProtobufCBinaryData){sv.len, (uint8_t *)sv.data};
    request(s, kind, "rt.doc.sync", &r.base);
}

static void yjs_start(edge_ws_conn_t *conn)
{
    edge_ysession_t *s = conn->session;
    s->conn = conn;
    h2o_linklist_init_anchor(&s->pending);
    if (edge_ydoc_join(conn->client.thread, s) != RT_OK) {
        close_unavailable(s);
        return;
    }
    request_sync(s, REQ_CONNECT, (rt_slice_t){NULL, 0});
}

static int is_empty_update(rt_slice_t u)
{
    return u.len == 2 && u.data[0] == 0 && u.data[1] == 0;
}

/* Sends the batched updates as one request.  A client replaying edits sends
 * many small updates, and one request, one apply pass and one broadcast for
 * all of them costs far less than one each. */
static void send_batch(edge_ysession_t *s)
{
    if (s->nbatch == 0 || s->conn == NULL)
        return;
    ProtobufCBinaryData stack[64],
        *parts = s->nbatch <= RT_ARRAY_SIZE(stack) ? stack : rt_xmalloc(s->nbatch * sizeof(*parts));
    size_t k = 0;
    for (size_t off = 0; off < s->batch.len; k++) {
        uint32_t n;
        memcpy(&n, s->batch.data + off, 4);
        parts[k] = (ProtobufCBinaryData){n, s->batch.data + off + 4};
        off += 4 + n;
    }
    Rtsync__V1__DocUpdateRequest r = RTSYNC__V1__DOC_UPDATE_REQUEST__INIT;
    r.doc = s->name;
    r.update = parts[0];
    r.updates = parts + 1;
    r.n_updates = k - 1;
    r.edge = (char *)s->conn->client.thread->server->config.edge_id;
    r.conn = s->conn->client.conn_id;
    s->updating = 1;
    s->last_request_ms = h2o_now(s->conn->client.thread->ctx.loop);
    request(s, REQ_UPDATE, "rt.doc.update", &r.base);
    if (parts != stack)
        free(parts);
    s->batch.len = 0;
    s->nbatch = 0;
}

/* One update request in flight per connection: what arrives meanwhile waits
 * for its reply and goes in the next one.  A lone update leaves at the end of
 * the loop turn; several waiting mean a stream (a replay, a paste, a client
 * back online), and a stream's requests leave at most every EDGE_YJS_PACE_MS,
 * its connection unread in between: what it sends meanwhile waits in the
 * socket and is read in one go, not a wake-up per frame.  So the work per
 * update (reads, NATS messages, apply passes, broadcasts) shrinks as the rate
 * grows, for a delay that an editor's keystroke, which waits for nothing,
 * never sees. */
void edge_ysession_flush(edge_ysession_t *s)
{
    if (s->updating || s->nbatch == 0 || s->conn == NULL)
        return;
    if (s->nbatch > 1 && h2o_now(s->conn->client.thread->ctx.loop) - s->last_request_ms < EDGE_YJS_PACE_MS) {
        edge_ws_pause_reading(s->conn);
        edge_ysession_flush_later(s);
    } else {
        send_batch(s);
    }
}

void edge_ysession_resume(edge_ysession_t *s)
{
    if (s->conn == NULL)
        return;
    if (edge_ws_resume_reading(s->conn))
        edge_ysession_flush_later(s); /* the read flushes; this, if it held only part of a frame */
    else if (s->nbatch > 0)
        edge_ysession_schedule_flush(s);
}

static void on_update(edge_ysession_t *s, rt_slice_t update)
{
    if (rt_yupdate_validate(update) != RT_OK) {
        close_bad(s, "malformed update");
        return;
    }
    if (is_empty_update(update))
        return; /* the usual SyncStep2 of a client with nothing new */
    EDGE_COUNT(s->conn->client.thread, messages_in, 1);
    if (s->batch.len + update.len > BATCH_MAX_BYTES)
        send_batch(s); /* in flight or not: a batch stays under NATS's payload limit */
    uint32_t n = (uint32_t)update.len;
    rt_buf_append(&s->batch, &n, 4);
    rt_buf_append(&s->batch, update.data, update.len);
    s->nbatch++;
    if (s->updating && s->nbatch > 1)
        edge_ws_pause_reading(s->conn); /* a stream: the reply resumes */
    edge_ysession_schedule_flush(s);
}

static void on_awareness(edge_ysession_t *s, rt_slice_t update)
{
    if (rt_yaw_validate(update) != RT_OK) {
        close_bad(s, "malformed awareness update");
        return;
    }
    edge_thread_t *t = s->conn->client.thread;
    Rtsync__V1__DocAwareness a = RTSYNC__V1__DOC_AWARENESS__INIT;
    a.doc = s->name;
    a.update = (ProtobufCBinaryData){update.len, (uint8_t *)update.data};
    a.edge = (char *)t->server->config.edge_id;
    a.edge_epoch = edge_docs_epoch(t);
    a.conn = s->conn->client.conn_id;
    size_t n = rtsync__v1__doc_awareness__get_packed_size(&a);
    rt_buf_t buf = {0};
    rtsync__v1__doc_awareness__pack(&a, rt_buf_reserve(&buf, n));
    char subject[EDGE_DOC_NAME_MAX + 32];
    rt_bus_subject(subject, sizeof(subject), "rt.doc.aw", s->name);
    if (rt_bus_publish(t->bus, subject, buf.data, n) == RT_OK) {
        s->sent_awareness = 1;
        edge_ydoc_relay_awareness(s->doc, update); /* the thread's connection has no echo */
    }
    rt_buf_dispose(&buf);
}

static void yjs_on_binary(edge_ws_conn_t *conn, const uint8_t *data, size_t len)
{
    edge_ysession_t *s = conn->session;
    rt_ymsg_t m;
    if (s->doc == NULL)
        return; /* the connection is closing */
    if (rt_ymsg_decode((rt_slice_t){data, len}, &m) != RT_OK) {
        close_bad(s, "malformed message");
        return;
    }
    switch (m.type) {
    case RT_YMSG_SYNC:
        if (m.sync_type == RT_YSYNC_STEP1) {
            if (rt_ysv_validate(m.payload) != RT_OK)
                close_bad(s, "malformed state vector");
            else
                request_sync(s, REQ_STEP1, m.payload);
        } else {
            on_update(s, m.payload);
        }
        break;
    case RT_YMSG_AWARENESS: on_awareness(s, m.payload); break;
    case RT_YMSG_QUERY_AWARENESS: request_sync(s, REQ_QUERY_AWARENESS, (rt_slice_t){NULL, 0}); break;
    default: break; /* auth: nothing for a server to do */
    }
}

static void yjs_on_text(edge_ws_conn_t *conn, const char *text, size_t len)
{
    (void)text, (void)len;
    EDGE_COUNT(conn->client.thread, bad_frames, 1);
    edge_ws_close(conn, 1003, "y-websocket messages are binary");
}

/* Tells crdt-merge the connection's awareness states are gone. */
static void publish_closed(edge_ysession_t *s)
{
    edge_thread_t *t = s->conn->client.thread;
    Rtsync__V1__DocConnClosed c = RTSYNC__V1__DOC_CONN_CLOSED__INIT;
    c.edge = (char *)t->server->config.edge_id;
    c.edge_epoch = edge_docs_epoch(t);
    c.conn = s->conn->client.conn_id;
    char *docs[1] = {s->name};
    c.docs = docs;
    c.n_docs = 1;
    uint8_t buf[1024];
    if (rtsync__v1__doc_conn_closed__get_packed_size(&c) <= sizeof(buf))
        rt_bus_publish(t->bus, "rt.doc.conn", buf, rtsync__v1__doc_conn_closed__pack(&c, buf));
}

static void yjs_dispose(edge_ws_conn_t *conn)
{
    edge_ysession_t *s = conn->session;
    if (s == NULL)
        return;
    if (s->conn != NULL) { /* started */
        send_batch(s);     /* what the client sent before it left, now: no reply will pace it */
        edge_ysession_cancel_flush(s);
        if (s->sent_awareness)
            publish_closed(s);
        edge_ydoc_leave(s);
        while (!h2o_linklist_is_empty(&s->pending)) {
            yreq_t *q = RT_CONTAINER_OF(s->pending.next, yreq_t, link);
            h2o_linklist_unlink(&q->link);
            q->s = NULL;
        }
    }
    rt_buf_dispose(&s->batch);
    free(s);
    conn->session = NULL;
}

const edge_ws_handler_t edge_yjs_handler = {
    .on_start = yjs_start,
    .on_text = yjs_on_text,
    .on_binary = yjs_on_binary,
    .on_dispose = yjs_dispose,
    .binary_documents = 1,
    .client_ops = {.deliver = edge_ws_deliver},
};
