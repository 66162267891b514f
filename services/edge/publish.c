/* publish.c: the one publish path behind /ws and POST .../publish.
 *
 * Ephemeral messages go straight to the channel's fan-out subject.  Durable
 * ones are a request to chat-history, which sequences and commits them, then
 * fans them out and replies with the offset; only then is the publisher told.
 * What a thread's connections publish during one loop turn goes in one
 * rt.hist.publish_batch request: one NATS message and one reply for all of
 * them instead of one each (each costs a hand-off between cnats's threads and
 * the loop), and chat-history commits them together anyway. */
#include "edge.h"
#include "rt/log.h"

#include <stdlib.h>

/* The proto's limits of one PublishBatchRequest: 256 messages, 1 MiB of data
 * plus 64 KiB for the rest. */
#define BATCH_MAX 256
#define BATCH_MAX_BYTES ((1u << 20) + 65536u)

typedef struct publish_wait {
    edge_publish_cb cb;
    void *ctx;
} publish_wait_t;

typedef struct edge_publish_batch {
    rt_buf_t body; /* PublishBatchRequest: the messages so far */
    size_t n;
    publish_wait_t waits[BATCH_MAX];
} edge_publish_batch_t;

static void fill_message(edge_thread_t *t, const edge_publish_t *p, Rtsync__V1__ChannelMessage *m)
{
    m->channel = (char *)p->channel;
    m->event = (char *)(p->event ? p->event : "message");
    m->data.data = (uint8_t *)p->data;
    m->data.len = p->data_len;
    m->from_user = (char *)p->user;
    m->from_conn = (char *)(p->conn_id ? p->conn_id : "");
    m->id = (char *)(p->id ? p->id : "");
    m->ts_ms = rt_now_wall_ms();
    m->origin_edge = (char *)t->server->config.edge_id;
}

static void batch_fail(edge_publish_batch_t *b, int err)
{
    for (size_t i = 0; i < b->n; i++)
        b->waits[i].cb(b->waits[i].ctx, err, 0);
}

static void batch_destroy(edge_publish_batch_t *b)
{
    if (b == NULL)
        return;
    rt_buf_dispose(&b->body);
    free(b);
}

static int code_to_err(const Rtsync__V1__Status *status)
{
    if (status == NULL)
        return RT_EUNAVAIL;
    if (status->code == RTSYNC__V1__CODE__CODE_OK)
        return RT_OK;
    return status->code == RTSYNC__V1__CODE__CODE_BAD_REQUEST ? RT_EINVAL : RT_EUNAVAIL;
}

/* RT_OK when the reply answers each of the n publishes. */
static int batch_reply_check(const Rtsync__V1__PublishBatchReply *reply, size_t n, size_t bytes)
{
    if (reply != NULL && reply->n_replies == n)
        return RT_OK;
    if (reply != NULL && reply->status != NULL && reply->status->code != RTSYNC__V1__CODE__CODE_OK)
        return code_to_err(reply->status); /* refused as a whole */
    RT_LOG_WARN("bus_bad_reply", "subject=rt.hist.publish_batch bytes=%zu", bytes);
    return RT_EUNAVAIL;
}

static void on_batch_reply(void *ctx, int err, rt_slice_t data)
{
    edge_publish_batch_t *b = ctx;
    Rtsync__V1__PublishBatchReply *reply = NULL;
    if (err == RT_OK) {
        reply = rtsync__v1__publish_batch_reply__unpack(NULL, data.len, data.data);
        err = batch_reply_check(reply, b->n, data.len);
    }
    for (size_t i = 0; i < b->n; i++) {
        const Rtsync__V1__PublishReply *r = err == RT_OK ? reply->replies[i] : NULL;
        int e = r ? code_to_err(r->status) : err;
        b->waits[i].cb(b->waits[i].ctx, e, e == RT_OK ? r->offset : 0);
    }
    if (reply != NULL)
        rtsync__v1__publish_batch_reply__free_unpacked(reply, NULL);
    batch_destroy(b);
}

void edge_publish_flush(edge_thread_t *t)
{
    edge_publish_batch_t *b = t->publishes;
    if (b == NULL)
        return;
    t->publishes = NULL;
    int err = t->requester
                  ? rt_bus_request(t->requester, "rt.hist.publish_batch", b->body.data, b->body.len, on_batch_reply, b)
                  : RT_EUNAVAIL;
    if (err != RT_OK) {
        batch_fail(b, err);
        batch_destroy(b);
    }
}

static int publish_ephemeral(edge_thread_t *t, const edge_publish_t *p, const Rtsync__V1__ChannelMessage *m)
{
    uint8_t stackbuf[4096];
    size_t len = rtsync__v1__channel_message__get_packed_size(m);
    uint8_t *buf = len <= sizeof(stackbuf) ? stackbuf : rt_xmalloc(len);
    rtsync__v1__channel_message__pack(m, buf);
    char subject[160];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", p->channel);
    int err = rt_bus_publish(t->server->bus, subject, buf, len);
    if (buf != stackbuf)
        free(buf);
    return err;
}

void edge_publish(edge_thread_t *t, const edge_publish_t *p, edge_publish_cb cb, void *ctx)
{
    Rtsync__V1__ChannelMessage m = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    fill_message(t, p, &m);
    EDGE_COUNT(t, messages_in, 1);
    if (p->ephemeral) {
        cb(ctx, publish_ephemeral(t, p, &m), 0);
        return;
    }
    size_t len = rtsync__v1__channel_message__get_packed_size(&m) + 8; /* tag and length */
    if (t->publishes != NULL && t->publishes->body.len + len > BATCH_MAX_BYTES)
        edge_publish_flush(t);
    if (t->publishes == NULL)
        t->publishes = rt_xcalloc(1, sizeof(*t->publishes));
    edge_publish_batch_t *b = t->publishes;
    rt_pb_append_message_field(&b->body, 1, &m.base);
    b->waits[b->n++] = (publish_wait_t){cb, ctx};
    if (b->n == BATCH_MAX)
        edge_publish_flush(t);
    else
        edge_thread_schedule_flush(t);
}
