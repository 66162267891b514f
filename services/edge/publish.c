/* publish.c: the one publish path behind /ws and POST .../publish.
 *
 * Ephemeral messages go straight to the channel's fan-out subject, and to the
 * thread's own subscribers from here (its NATS connection has no echo).  Durable
 * ones are a request to chat-history, which sequences and commits them, then
 * fans them out and replies with the offset; only then is the publisher told.
 * What a thread's connections publish during one loop turn goes in one
 * rt.hist.publish_batch request: one NATS message and one reply for all of
 * them instead of one each (each costs a hand-off between cnats's threads and
 * the loop), and chat-history commits them together anyway.  A thread has one
 * request in flight: what is published meanwhile waits for its reply, so its
 * publishes are committed in the order they came, whichever chat-history
 * replica takes each request. */
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
    struct edge_publish_batch *next;
    edge_thread_t *thread;
    rt_buf_t body; /* PublishBatchRequest: the messages so far */
    size_t n;
    publish_wait_t waits[BATCH_MAX];
} edge_publish_batch_t;

/* A thread's durable publishes: the batch being filled, those closed and waiting,
 * and the one in flight. */
typedef struct edge_publisher {
    edge_publish_batch_t *open, *head, *tail, *inflight;
} edge_publisher_t;

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

static void send_next(edge_thread_t *t);

static void on_batch_reply(void *ctx, int err, rt_slice_t data)
{
    edge_publish_batch_t *b = ctx;
    edge_thread_t *t = b->thread;
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
    t->publisher->inflight = NULL;
    send_next(t);
}

/* Closes the batch being filled (full, or about to be sent): it goes after those
 * closed before it. */
static void close_open(edge_publisher_t *pub)
{
    edge_publish_batch_t *b = pub->open;
    pub->open = NULL;
    if (pub->tail != NULL)
        pub->tail->next = b;
    else
        pub->head = b;
    pub->tail = b;
}

/* Unless one is in flight, sends the oldest full batch, else the one being
 * filled (which takes whatever comes while a request is out); with the requester
 * gone (shutdown), fails every waiting one. */
static void send_next(edge_thread_t *t)
{
    edge_publisher_t *pub = t->publisher;
    while (pub->inflight == NULL) {
        if (pub->head == NULL && pub->open != NULL)
            close_open(pub);
        if (pub->head == NULL)
            break;
        edge_publish_batch_t *b = pub->head;
        pub->head = b->next;
        if (pub->head == NULL)
            pub->tail = NULL;
        pub->inflight = b;
        int err = t->requester ? rt_bus_request(t->requester, "rt.hist.publish_batch", b->body.data, b->body.len,
                                                on_batch_reply, b)
                               : RT_EUNAVAIL;
        if (err != RT_OK) {
            pub->inflight = NULL;
            batch_fail(b, err);
            batch_destroy(b);
        }
    }
}

void edge_publish_flush(edge_thread_t *t)
{
    if (t->publisher != NULL)
        send_next(t);
}

void edge_publish_dispose(edge_thread_t *t)
{
    edge_publish_flush(t);
    free(t->publisher);
    t->publisher = NULL;
}

/* Publishes to the other threads and edges, and delivers to this thread's subscribers. */
static int publish_ephemeral(edge_thread_t *t, const edge_publish_t *p, Rtsync__V1__ChannelMessage *m)
{
    uint8_t stackbuf[4096];
    size_t len = rtsync__v1__channel_message__get_packed_size(m);
    uint8_t *buf = len <= sizeof(stackbuf) ? stackbuf : rt_xmalloc(len);
    rtsync__v1__channel_message__pack(m, buf);
    char subject[160];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", p->channel);
    int err = rt_bus_publish(t->bus, subject, buf, len);
    if (buf != stackbuf)
        free(buf);
    if (err == RT_OK)
        edge_channel_deliver_local(t, m);
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
    if (t->publisher == NULL)
        t->publisher = rt_xcalloc(1, sizeof(*t->publisher));
    edge_publisher_t *pub = t->publisher;
    size_t len = rtsync__v1__channel_message__get_packed_size(&m);
    if (pub->open != NULL && pub->open->body.len + len + 8 /* tag and length */ > BATCH_MAX_BYTES)
        close_open(pub);
    if (pub->open == NULL) {
        pub->open = rt_xcalloc(1, sizeof(*pub->open));
        pub->open->thread = t;
    }
    edge_publish_batch_t *b = pub->open;
    rt_pb_append_message_field(&b->body, 1, &m.base, len);
    b->waits[b->n++] = (publish_wait_t){cb, ctx};
    if (b->n == BATCH_MAX)
        close_open(pub);
    edge_thread_schedule_flush(t);
}
