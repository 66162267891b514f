/*
 * sse.c: Server-Sent Events streams (/sse/{ch}), PROTOCOL.md section 6.
 *
 * h2o allows one h2o_send in flight per response: events that arrive meanwhile
 * wait in the stream's queue and leave together when h2o asks to proceed.
 */
#include "edge.h"

#include <stdlib.h>
#include <string.h>

typedef struct edge_sse {
    edge_client_t client;
    h2o_req_t *req;
    h2o_generator_t generator;
    edge_outq_t outq;
    h2o_linklist_t link;           /* thread->sse_streams */
    h2o_linklist_t heartbeat_link; /* thread->sse_heartbeat[its slot] */
    unsigned started : 1; /* response headers sent: NATS confirmed the subscription */
    unsigned sending : 1;
    unsigned finishing : 1;
} edge_sse_t;

#define MAX_SEND_VECS 256

static void stream_destroy(edge_sse_t *s)
{
    edge_thread_t *t = s->client.thread;
    edge_client_unsubscribe_all(&s->client);
    h2o_linklist_unlink(&s->link);
    h2o_linklist_unlink(&s->heartbeat_link);
    edge_outq_dispose(&s->outq);
    edge_identity_dispose(s->client.identity);
    free(s->client.identity);
    free(s->client.user);
    free(s);
    EDGE_COUNT(t, sse_streams, -1);
    edge_thread_on_conn_closed(t);
}

static void stream_send(edge_sse_t *s)
{
    if (s->sending || !s->started)
        return;
    h2o_iovec_t vecs[MAX_SEND_VECS];
    size_t n = edge_outq_take(&s->outq, vecs, MAX_SEND_VECS);
    if (n == 0 && !s->finishing)
        return;
    if (n == 0) {
        /* everything is out: end the response; h2o owns the request from here */
        h2o_req_t *req = s->req;
        stream_destroy(s);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    s->sending = 1;
    EDGE_COUNT(s->client.thread, writes, 1);
    h2o_send(s->req, vecs, n, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    edge_sse_t *s = RT_CONTAINER_OF(generator, edge_sse_t, generator);
    s->sending = 0;
    edge_outq_written(&s->outq);
    stream_send(s);
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    stream_destroy(RT_CONTAINER_OF(generator, edge_sse_t, generator));
}

static void stream_finish(edge_sse_t *s)
{
    s->finishing = 1; /* a stream not started yet is refused when NATS confirms it */
    edge_outq_drop_pending(&s->outq);
    stream_send(s);
}

static void stream_push(edge_sse_t *s, edge_frame_t *frame)
{
    if (s->finishing) {
        edge_frame_release(frame);
        return;
    }
    edge_outq_push(&s->outq, frame);
    if (s->outq.bytes > (size_t)s->client.thread->server->config.send_queue) {
        EDGE_COUNT(s->client.thread, slow_closes, 1);
        stream_finish(s); /* too slow: the client reconnects and resumes with Last-Event-ID */
        return;
    }
    stream_send(s);
}

static void sse_deliver(edge_client_t *client, edge_channel_t *ch, edge_message_t *msg)
{
    (void)ch;
    edge_frame_t *frame = edge_message_sse(msg);
    if (frame == NULL)
        return;
    EDGE_COUNT(client->thread, deliveries, 1);
    stream_push(RT_CONTAINER_OF(client, edge_sse_t, client), edge_frame_ref(frame));
}

static void sse_subscribed(edge_client_t *client, edge_sub_t *sub, uint64_t latest)
{
    (void)client, (void)sub, (void)latest; /* the stream has already started */
}

/* The resume cannot be served now: end the stream; EventSource comes back with Last-Event-ID. */
static void sse_replay_failed(edge_client_t *client, const char *channel)
{
    (void)channel;
    stream_finish(RT_CONTAINER_OF(client, edge_sse_t, client));
}

static const edge_client_ops_t sse_client_ops = {
    .deliver = sse_deliver,
    .subscribed = sse_subscribed,
    .replay_failed = sse_replay_failed,
};

static void start_response(edge_sse_t *s)
{
    h2o_req_t *req = s->req;
    s->started = 1;
    s->generator.proceed = on_proceed;
    s->generator.stop = on_stop;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL, H2O_STRLIT("no"));
    h2o_start_response(req, &s->generator);
    stream_send(s);
}

/* Refuses a stream whose response has not started. */
static void stream_refuse(edge_sse_t *s, int status, const char *code, const char *message)
{
    h2o_req_t *req = s->req;
    stream_destroy(s);
    edge_http_error(req, status, code, message);
}

static void on_subscription_confirmed(void *ctx, int err, rt_slice_t data)
{
    (void)data;
    edge_sse_t *s = ctx;
    if (err != RT_OK)
        stream_refuse(s, 503, "unavailable", "the message bus is unavailable");
    else if (s->finishing)
        stream_refuse(s, 503, "unavailable", "the edge is draining");
    else {
        start_response(s);
        edge_channel_start_replay(RT_CONTAINER_OF(s->client.subs.next, edge_sub_t, client_link));
    }
}

int edge_sse_start(edge_thread_t *t, h2o_req_t *req, const char *channel, edge_identity_t *identity, int has_since,
                   uint64_t since)
{
    edge_sse_t *s = rt_xcalloc(1, sizeof(*s));
    s->client.ops = &sse_client_ops;
    s->client.thread = t;
    s->client.user = rt_xstrdup(identity->user);
    s->client.identity = identity;
    h2o_linklist_init_anchor(&s->client.subs);
    unsigned slot = edge_thread_name_client(t, &s->client);
    s->req = req;
    h2o_linklist_insert(&t->sse_streams, &s->link);
    h2o_linklist_insert(&t->sse_heartbeat[slot], &s->heartbeat_link);
    EDGE_COUNT(t, sse_streams, 1);
    edge_sub_t *sub;
    if (edge_channel_subscribe(t, &s->client, channel, has_since, since, &sub) != RT_OK) {
        stream_refuse(s, 503, "unavailable", "the message bus is unavailable");
        return 0;
    }
    /* The first bytes go out once NATS has the subscription, so that a client
     * that saw the stream open misses nothing published afterwards. */
    edge_outq_push(&s->outq, edge_frame_ref(t->sse_retry_frame));
    if (rt_bus_barrier(t->requester, on_subscription_confirmed, s) != RT_OK)
        stream_refuse(s, 503, "unavailable", "the message bus is unavailable");
    return 0;
}

void edge_sse_heartbeat(edge_thread_t *t, unsigned slot)
{
    h2o_linklist_t *streams = &t->sse_heartbeat[slot];
    for (h2o_linklist_t *node = streams->next, *next; node != streams; node = next) {
        next = node->next;
        stream_push(RT_CONTAINER_OF(node, edge_sse_t, heartbeat_link), edge_frame_ref(t->sse_hb_frame));
    }
}

void edge_sse_expire_tokens(edge_thread_t *t, int64_t now_s)
{
    for (h2o_linklist_t *node = t->sse_streams.next, *next; node != &t->sse_streams; node = next) {
        next = node->next;
        edge_sse_t *s = RT_CONTAINER_OF(node, edge_sse_t, link);
        const edge_identity_t *id = s->client.identity;
        if (!s->finishing && id->authenticated && id->claims.exp <= now_s)
            stream_finish(s);
    }
}

void edge_sse_drain_all(edge_thread_t *t)
{
    for (h2o_linklist_t *node = t->sse_streams.next, *next; node != &t->sse_streams; node = next) {
        next = node->next;
        edge_sse_t *s = RT_CONTAINER_OF(node, edge_sse_t, link);
        if (!s->finishing)
            stream_finish(s);
    }
}
