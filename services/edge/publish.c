/* publish.c: the one publish path behind /ws and POST .../publish.
 *
 * Ephemeral messages go straight to the channel's fan-out subject.  Durable
 * ones are a request to chat-history, which sequences and commits them, then
 * fans them out and replies with the offset; only then is the publisher told. */
#include "edge.h"
#include "rt/log.h"

#include <stdlib.h>

typedef struct publish_wait {
    edge_publish_cb cb;
    void *ctx;
} publish_wait_t;

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

static void on_publish_reply(void *ctx, int err, rt_slice_t data)
{
    publish_wait_t w = *(publish_wait_t *)ctx;
    free(ctx);
    if (err != RT_OK) {
        w.cb(w.ctx, err, 0);
        return;
    }
    Rtsync__V1__PublishReply *reply = rtsync__v1__publish_reply__unpack(NULL, data.len, data.data);
    if (reply == NULL || reply->status == NULL) {
        RT_LOG_WARN("bus_bad_reply", "subject=rt.hist.publish bytes=%zu", data.len);
        err = RT_EUNAVAIL;
    } else if (reply->status->code == RTSYNC__V1__CODE__CODE_OK) {
        err = RT_OK;
    } else {
        err = reply->status->code == RTSYNC__V1__CODE__CODE_BAD_REQUEST ? RT_EINVAL : RT_EUNAVAIL;
    }
    uint64_t offset = err == RT_OK ? reply->offset : 0;
    if (reply != NULL)
        rtsync__v1__publish_reply__free_unpacked(reply, NULL);
    w.cb(w.ctx, err, offset);
}

void edge_publish(edge_thread_t *t, const edge_publish_t *p, edge_publish_cb cb, void *ctx)
{
    Rtsync__V1__ChannelMessage m = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    fill_message(t, p, &m);
    EDGE_COUNT(t, messages_in, 1);
    if (p->ephemeral) {
        uint8_t stackbuf[4096];
        size_t len = rtsync__v1__channel_message__get_packed_size(&m);
        uint8_t *buf = len <= sizeof(stackbuf) ? stackbuf : rt_xmalloc(len);
        rtsync__v1__channel_message__pack(&m, buf);
        char subject[160];
        rt_bus_subject(subject, sizeof(subject), "rt.ch", p->channel);
        int err = rt_bus_publish(t->server->bus, subject, buf, len);
        if (buf != stackbuf)
            free(buf);
        cb(ctx, err, 0);
        return;
    }
    Rtsync__V1__PublishRequest req = RTSYNC__V1__PUBLISH_REQUEST__INIT;
    req.message = &m;
    size_t len = rtsync__v1__publish_request__get_packed_size(&req);
    uint8_t *buf = rt_xmalloc(len);
    rtsync__v1__publish_request__pack(&req, buf);
    publish_wait_t *w = rt_xmalloc(sizeof(*w));
    *w = (publish_wait_t){cb, ctx};
    int err = rt_bus_request(t->requester, "rt.hist.publish", buf, len, on_publish_reply, w);
    free(buf);
    if (err != RT_OK) {
        free(w);
        cb(ctx, err, 0);
    }
}
