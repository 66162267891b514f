/*
 * ws.h: a WebSocket connection speaking the JSON protocol of /ws.  ws.c owns
 * the transport (framing, queue, heartbeat, close); session.c the protocol
 * (what each client frame does).  Everything runs on the connection's thread.
 */
#ifndef EDGE_WS_H
#define EDGE_WS_H

#include "edge.h"

typedef struct edge_ws_conn edge_ws_conn_t;

/* What a connection speaks: the JSON protocol of /ws (session.c), or y-websocket on /yjs. */
typedef struct edge_ws_handler {
    void (*on_start)(edge_ws_conn_t *conn);
    void (*on_text)(edge_ws_conn_t *conn, const char *text, size_t len);
    void (*on_binary)(edge_ws_conn_t *conn, const uint8_t *data, size_t len);
    /* The connection is going away: detach what still refers to it. */
    void (*on_dispose)(edge_ws_conn_t *conn);
    /* The largest message accepted (1009 beyond); 0: RT_MAX_FRAME. */
    int binary_documents; /* messages up to RT_MAX_DOC_UPDATE instead of RT_MAX_FRAME */
    /* How channel subscriptions talk to it (deliver is usually edge_ws_deliver). */
    edge_client_ops_t client_ops;
} edge_ws_handler_t;

struct edge_ws_conn {
    edge_client_t client;
    const edge_ws_handler_t *handler;
    void *session;                     /* the handler's own state, if any */
    h2o_socket_t *sock;                /* NULL until the upgrade completes */
    struct wslay_event_context *wslay; /* only while a frame or message is being received */
    edge_outq_t outq;
    h2o_linklist_t conn_link;      /* thread->ws_conns */
    h2o_linklist_t heartbeat_link; /* thread->ws_heartbeat[its slot] */
    h2o_linklist_t dirty_link; /* thread->dirty */
    h2o_timeout_entry_t close_entry;
    h2o_linklist_t pending; /* session.c: publishes awaiting their ack */
    uint64_t last_rx;
    size_t feed; /* bytes of complete frames wslay may still read */
    uint16_t close_code;
    uint16_t strikes; /* session.c: frames refused by the rate limit in a row */
    unsigned writing : 1;
    unsigned msg_open : 1;
    unsigned close_queued : 1;
    unsigned close_received : 1;
};

/* Queues a frame (takes it); closes with 4008 past RT_SEND_QUEUE. */
void edge_ws_send(edge_ws_conn_t *conn, edge_frame_t *frame);
/* Queues a text frame with a copy of `text`. */
void edge_ws_send_text(edge_ws_conn_t *conn, const char *text, size_t len);
/* Starts the close handshake with `code`; nothing is sent after it. */
void edge_ws_close(edge_ws_conn_t *conn, uint16_t code, const char *reason);
/* Stops reading the connection for a while, so that what the peer streams
 * meanwhile is read in one go (not while closing: the peer's close must come in). */
void edge_ws_pause_reading(edge_ws_conn_t *conn);
/* Reads again; returns 1 if bytes already wait in the socket (their read follows). */
int edge_ws_resume_reading(edge_ws_conn_t *conn);

/* Length of the leading complete frames in buf.  A frame that declares more
 * than `max` bytes counts as complete, so that wslay sees it and refuses it. */
size_t edge_ws_complete_frames_len(const uint8_t *buf, size_t len, uint64_t max);

/* The edge_sender_cb of the thread's sender: a connection's batched send is back. */
void edge_ws_on_sent(void *owner, const struct iovec *vecs, size_t nvecs, ssize_t res);

/* Queues a channel message's WebSocket frame (the usual client_ops.deliver). */
void edge_ws_deliver(edge_client_t *client, edge_channel_t *ch, edge_message_t *msg);
static inline edge_ws_conn_t *edge_ws_of(edge_client_t *client)
{
    return (edge_ws_conn_t *)client;
}

/* Like edge_ws_accept, with the handler's state (conn->session, taken; the
 * handler's on_dispose frees it, even if the upgrade never completes).  When the
 * handshake is refused the caller still owns `session` and gets RT_EINVAL. */
int edge_ws_accept_session(edge_thread_t *t, h2o_req_t *req, edge_identity_t *identity,
                           const edge_ws_handler_t *handler, void *session);

/* session.c: the JSON protocol of /ws */
extern const edge_ws_handler_t edge_json_session;

#endif
