/* session.c: what each JSON frame on /ws does (PROTOCOL.md section 5). */
#include "rt/json.h"
#include "ws.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A request waiting for a back end (a publish for its acknowledgement, a
 * subscribe for NATS to confirm the subscription); outlives its connection if
 * need be. */
typedef struct pending {
    h2o_linklist_t link;  /* conn->pending */
    edge_ws_conn_t *conn; /* NULL once the connection is gone */
    int ephemeral;
    char *channel;
    char *id;
} pending_t;

static pending_t *pending_create(edge_ws_conn_t *conn, const edge_request_t *req)
{
    pending_t *p = rt_xcalloc(1, sizeof(*p));
    p->conn = conn;
    p->ephemeral = req->ephemeral;
    p->channel = rt_xstrdup(req->channel);
    p->id = req->id ? rt_xstrdup(req->id) : NULL;
    h2o_linklist_insert(&conn->pending, &p->link);
    return p;
}

static void pending_free(pending_t *p)
{
    if (p->conn != NULL)
        h2o_linklist_unlink(&p->link);
    free(p->channel);
    free(p->id);
    free(p);
}

static void send_json(edge_ws_conn_t *conn, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    edge_ws_send_text(conn, text, strlen(text));
    free(text);
}

static void send_error(edge_ws_conn_t *conn, const char *code, const char *message, const char *ref)
{
    edge_proto_error_t err = {.code = code, .ref = ref};
    snprintf(err.message, sizeof(err.message), "%s", message);
    rt_buf_t out = {0};
    edge_proto_error_json(&err, &out);
    edge_ws_send_text(conn, (const char *)out.data, out.len);
    rt_buf_dispose(&out);
}

static void session_start(edge_ws_conn_t *conn)
{
    h2o_linklist_init_anchor(&conn->pending);
    send_json(conn, json_pack("{s:s, s:s, s:s, s:s}", "type", "welcome", "conn", conn->client.conn_id, "user",
                              conn->client.user, "edge", conn->client.thread->server->config.edge_id));
}

static void on_subscription_confirmed(void *ctx, int err, rt_slice_t data)
{
    (void)data;
    pending_t *p = ctx;
    edge_ws_conn_t *conn = p->conn;
    edge_sub_t *sub = conn != NULL ? edge_client_find_sub(&conn->client, p->channel) : NULL;
    if (sub != NULL && err != RT_OK) {
        edge_channel_unsubscribe(sub);
        send_error(conn, "unavailable", "the message bus is unavailable", p->id);
    } else if (sub != NULL) {
        edge_channel_start_replay(sub); /* the client hears back through ws_subscribed */
    }
    pending_free(p);
}

static void on_subscribe(edge_ws_conn_t *conn, const edge_request_t *req)
{
    edge_thread_t *t = conn->client.thread;
    edge_sub_t *sub = edge_client_find_sub(&conn->client, req->channel);
    if (sub != NULL) {
        send_json(conn, json_pack("{s:s, s:s}", "type", "subscribed", "channel", req->channel));
        return;
    }
    if (conn->client.nsubs >= (uint32_t)t->server->config.max_subscriptions) {
        send_error(conn, "too_large", "subscription limit (RT_MAX_SUBSCRIPTIONS) reached", req->id);
        return;
    }
    if (edge_channel_subscribe(t, &conn->client, req->channel, req->has_since, req->since, &sub) != RT_OK) {
        send_error(conn, "unavailable", "the message bus is unavailable", req->id);
        return;
    }
    sub->want_presence = req->presence != 0;
    /* Go on once NATS has the subscription: nothing published after it is missed. */
    pending_t *p = pending_create(conn, req);
    if (rt_bus_barrier(t->requester, on_subscription_confirmed, p) != RT_OK)
        on_subscription_confirmed(p, RT_EUNAVAIL, (rt_slice_t){NULL, 0});
}

static void on_presence_snapshot(void *ctx, int err, json_t *result)
{
    pending_t *p = ctx;
    if (p->conn != NULL && err == RT_OK) {
        json_t *o = json_deep_copy(result);
        json_object_set_new(o, "type", json_string("presence"));
        json_object_set_new(o, "channel", json_string(p->channel));
        send_json(p->conn, o);
    } else if (p->conn != NULL) {
        send_error(p->conn, "unavailable", "the presence service is unavailable", p->id);
    }
    pending_free(p);
}

static void session_subscribed(edge_client_t *client, edge_sub_t *sub, uint64_t latest)
{
    edge_ws_conn_t *conn = edge_ws_of(client);
    json_t *o = json_pack("{s:s, s:s}", "type", "subscribed", "channel", sub->channel->name);
    if (sub->known) /* unknown while chat-history is unavailable */
        json_object_set_new(o, "offset", json_integer((json_int_t)latest));
    send_json(conn, o);
    sub->member = 1;
    edge_presence_join(client->thread->server->presence, sub->channel->name, client);
    if (sub->want_presence) {
        edge_request_t req = {.channel = sub->channel->name};
        edge_presence_query(client->thread, sub->channel->name, on_presence_snapshot, pending_create(conn, &req));
    }
}

/* Unsubscribes, telling the channel's members first. */
static void leave(edge_ws_conn_t *conn, edge_sub_t *sub)
{
    if (sub->member)
        edge_presence_leave(conn->client.thread->server->presence, sub->channel->name, &conn->client);
    edge_channel_unsubscribe(sub);
}

static void session_replay_failed(edge_client_t *client, const char *channel)
{
    edge_ws_conn_t *conn = edge_ws_of(client);
    char message[200];
    snprintf(message, sizeof(message), "cannot resume %s: the history service is unavailable", channel);
    send_error(conn, "unavailable", message, NULL);
}

static void on_unsubscribe(edge_ws_conn_t *conn, const edge_request_t *req)
{
    edge_sub_t *sub = edge_client_find_sub(&conn->client, req->channel);
    if (sub != NULL)
        leave(conn, sub);
    send_json(conn, json_pack("{s:s, s:s}", "type", "unsubscribed", "channel", req->channel));
}

static void on_published(void *ctx, int err, uint64_t offset)
{
    pending_t *p = ctx;
    edge_ws_conn_t *conn = p->conn;
    if (conn == NULL) {
        pending_free(p);
        return;
    }
    if (err == RT_OK && (!p->ephemeral || p->id != NULL)) {
        /* one per durable publish: written as text, without a jansson tree */
        rt_buf_t ack = {0};
        rt_buf_append_byte(&ack, '{');
        rt_json_field_str(&ack, "type", "ack");
        rt_json_field_str(&ack, "channel", p->channel);
        if (p->id != NULL)
            rt_json_field_str(&ack, "id", p->id);
        if (offset != 0)
            rt_json_field_int(&ack, "offset", (int64_t)offset);
        rt_buf_append_byte(&ack, '}');
        edge_ws_send_text(conn, (const char *)ack.data, ack.len);
        rt_buf_dispose(&ack);
    } else if (err == RT_EINVAL) {
        send_error(conn, "bad_request", "the message was refused", p->id);
    } else if (err != RT_OK) {
        send_error(conn, "unavailable", "the channel's history service is unavailable; not published", p->id);
    }
    pending_free(p);
}

static void on_publish(edge_ws_conn_t *conn, const edge_request_t *req)
{
    char *data = json_dumps(req->data, JSON_COMPACT | JSON_ENCODE_ANY);
    pending_t *p = pending_create(conn, req);
    edge_publish_t pub = {
        .channel = req->channel,
        .event = req->event,
        .data = data,
        .data_len = strlen(data),
        .id = req->id,
        .user = conn->client.user,
        .conn_id = conn->client.conn_id,
        .ephemeral = req->ephemeral,
    };
    edge_publish(conn->client.thread, &pub, on_published, p);
    free(data);
}

static void on_state(edge_ws_conn_t *conn, const edge_request_t *req)
{
    char *state = json_dumps(req->data, JSON_COMPACT);
    int err =
        edge_presence_state(conn->client.thread->server->presence, req->channel, &conn->client, state, strlen(state));
    free(state);
    if (err != RT_OK)
        send_error(conn, "not_found", "subscribe to the channel before setting a state in it", req->id);
}

static void on_signalled(void *ctx, int err, json_t *members)
{
    (void)members;
    pending_t *p = ctx;
    if (p->conn != NULL && err == RT_ENOTFOUND)
        send_error(p->conn, "not_found", "no such connection in the channel", p->id);
    else if (p->conn != NULL && err != RT_OK)
        send_error(p->conn, "unavailable", "the presence service is unavailable", p->id);
    pending_free(p);
}

static void on_signal(edge_ws_conn_t *conn, const edge_request_t *req)
{
    if (edge_client_find_sub(&conn->client, req->channel) == NULL) {
        send_error(conn, "not_found", "subscribe to the channel before signaling in it", req->id);
        return;
    }
    char *data = json_dumps(req->data, JSON_COMPACT | JSON_ENCODE_ANY);
    edge_presence_signal(conn->client.thread, req->channel, &conn->client, req->to, data, strlen(data), on_signalled,
                         pending_create(conn, req));
    free(data);
}

#define ABUSE_STRIKES 20 /* refused frames in a row before the connection is closed */

/* Checks the token's claims and the user's rate; answers the refusals. */
static int allowed(edge_ws_conn_t *conn, const edge_request_t *req)
{
    if (req->type == EDGE_FT_PING || req->type == EDGE_FT_UNSUBSCRIBE)
        return 1;
    if (!edge_identity_allows(conn->client.identity, req->channel)) {
        send_error(conn, "forbidden", "the token does not allow this channel", req->id);
        return 0;
    }
    if (req->type == EDGE_FT_SUBSCRIBE)
        return 1;
    int64_t retry_ms;
    if (edge_guard_rate(conn->client.thread->server->guard, conn->client.user, rt_now_wall_ms(), &retry_ms) == RT_OK) {
        conn->strikes = 0;
        return 1;
    }
    if (++conn->strikes > ABUSE_STRIKES) {
        edge_ws_close(conn, 4008, "rate limit abused");
        return 0;
    }
    char message[120];
    snprintf(message, sizeof(message), "over RT_RATE_LIMIT: retry in %lld ms", (long long)retry_ms);
    send_error(conn, "rate_limited", message, req->id);
    return 0;
}

static void session_on_text(edge_ws_conn_t *conn, const char *text, size_t len)
{
    edge_request_t req;
    edge_proto_error_t err;
    if (edge_request_parse(text, len, (size_t)conn->client.thread->server->config.max_frame, &req, &err) != RT_OK) {
        EDGE_COUNT(conn->client.thread, bad_frames, 1);
        send_error(conn, err.code, err.message, err.ref);
        edge_request_dispose(&req);
        return;
    }
    if (!allowed(conn, &req)) {
        edge_request_dispose(&req);
        return;
    }
    switch (req.type) {
    case EDGE_FT_SUBSCRIBE: on_subscribe(conn, &req); break;
    case EDGE_FT_UNSUBSCRIBE: on_unsubscribe(conn, &req); break;
    case EDGE_FT_PUBLISH: on_publish(conn, &req); break;
    case EDGE_FT_PING: edge_ws_send_text(conn, H2O_STRLIT("{\"type\":\"pong\"}")); break;
    case EDGE_FT_STATE: on_state(conn, &req); break;
    case EDGE_FT_SIGNAL: on_signal(conn, &req); break;
    }
    edge_request_dispose(&req);
}

static void session_on_binary(edge_ws_conn_t *conn, const uint8_t *data, size_t len)
{
    (void)data, (void)len;
    EDGE_COUNT(conn->client.thread, bad_frames, 1);
    send_error(conn, "bad_request", "binary frames are not accepted on /ws: send JSON text frames", NULL);
}

static void session_dispose(edge_ws_conn_t *conn)
{
    if (conn->pending.next == NULL)
        return; /* the session never started */
    while (!h2o_linklist_is_empty(&conn->client.subs))
        leave(conn, RT_CONTAINER_OF(conn->client.subs.next, edge_sub_t, client_link));
    while (!h2o_linklist_is_empty(&conn->pending)) {
        pending_t *p = RT_CONTAINER_OF(conn->pending.next, pending_t, link);
        h2o_linklist_unlink(&p->link);
        p->conn = NULL;
    }
}

const edge_ws_handler_t edge_json_session = {
    .on_start = session_start,
    .on_text = session_on_text,
    .on_binary = session_on_binary,
    .on_dispose = session_dispose,
    .client_ops = {.deliver = edge_ws_deliver,
                   .subscribed = session_subscribed,
                   .replay_failed = session_replay_failed},
};
