/*
 * ws.c: the edge's WebSocket connection, on h2o_http1_upgrade with wslay.
 *
 * Output: frames are queued per connection (edge_outq_t) and written at the
 * end of the loop turn, all pending frames in one send; the thread's sender
 * (sender.c) hands the turn's sends to the kernel in batches, and what a full
 * socket does not take is h2o's to finish.  The queue is bounded (RT_SEND_QUEUE;
 * beyond it the client is too slow and is closed with 4008).
 * Input: wslay parses frames.  Its context (4 KiB) exists only while a frame
 * or fragmented message is being received, so an idle connection costs a few
 * hundred bytes; to keep that true we hand wslay complete frames only.
 * Closing: the close frame is queued behind what is in flight and flushed;
 * then we wait for the peer's close (or a timeout) before closing the socket,
 * so that the client sees our code rather than a reset.
 */
#include "ws.h"
#include "rt/log.h"

#include <errno.h>
#include <h2o/http1.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_WRITE_VECS 256

/* ---- output ------------------------------------------------------------------ */

static void mark_dirty(edge_ws_conn_t *conn)
{
    if (!h2o_linklist_is_linked(&conn->dirty_link) && !conn->writing && conn->sock != NULL) {
        h2o_linklist_insert(&conn->client.thread->dirty, &conn->dirty_link);
        edge_thread_schedule_flush(conn->client.thread);
    }
}

void edge_ws_send(edge_ws_conn_t *conn, edge_frame_t *frame)
{
    if (conn->close_queued || conn->sock == NULL) {
        edge_frame_release(frame);
        return;
    }
    edge_outq_push(&conn->outq, frame);
    if (conn->outq.bytes > (size_t)conn->client.thread->server->config.send_queue) {
        EDGE_COUNT(conn->client.thread, slow_closes, 1);
        edge_outq_drop_pending(&conn->outq);
        edge_ws_close(conn, 4008, "send queue over its limit");
        return;
    }
    mark_dirty(conn);
}

void edge_ws_send_text(edge_ws_conn_t *conn, const char *text, size_t len)
{
    edge_ws_send(conn, edge_frame_ws(0x1, text, len));
}

/* From here on nothing but the close frame is sent, and the connection is
 * gone after the peer's close or the close timeout, whichever comes first. */
static void begin_closing(edge_ws_conn_t *conn)
{
    conn->close_queued = 1;
    h2o_timeout_link(conn->client.thread->ctx.loop, &conn->client.thread->close_timeout, &conn->close_entry);
}

void edge_ws_close(edge_ws_conn_t *conn, uint16_t code, const char *reason)
{
    if (conn->close_queued || conn->sock == NULL)
        return;
    edge_outq_push(&conn->outq, edge_frame_ws_close(code, reason));
    conn->close_code = code;
    edge_ws_resume_reading(conn); /* the peer's answering close */
    begin_closing(conn);
    mark_dirty(conn);
}

static void on_read(h2o_socket_t *sock, const char *err);

void edge_ws_pause_reading(edge_ws_conn_t *conn)
{
    if (conn->sock != NULL && !conn->close_queued && h2o_socket_is_reading(conn->sock))
        h2o_socket_read_stop(conn->sock);
}

int edge_ws_resume_reading(edge_ws_conn_t *conn)
{
    if (conn->sock == NULL || h2o_socket_is_reading(conn->sock))
        return 0;
    h2o_socket_read_start(conn->sock, on_read);
    int waiting = 0;
    return ioctl(h2o_socket_get_fd(conn->sock), FIONREAD, &waiting) == 0 && waiting > 0;
}

static void conn_destroy(edge_ws_conn_t *conn)
{
    edge_thread_t *t = conn->client.thread;
    conn->handler->on_dispose(conn);
    edge_client_unsubscribe_all(&conn->client);
    if (h2o_linklist_is_linked(&conn->dirty_link))
        h2o_linklist_unlink(&conn->dirty_link);
    h2o_linklist_unlink(&conn->conn_link);
    h2o_linklist_unlink(&conn->heartbeat_link);
    if (h2o_timeout_is_linked(&conn->close_entry))
        h2o_timeout_unlink(&conn->close_entry);
    if (conn->sock != NULL)
        h2o_socket_close(conn->sock);
    wslay_event_context_free(conn->wslay);
    edge_outq_dispose(&conn->outq);
    edge_guard_conn_close(t->server->guard, conn->client.user);
    edge_identity_dispose(conn->client.identity);
    free(conn->client.identity);
    free(conn->client.user);
    free(conn);
    atomic_fetch_sub(&t->server->open_conns, 1);
    EDGE_COUNT(t, connections, -1);
    edge_thread_on_conn_closed(t);
}

static void on_close_wait_timeout(h2o_timeout_entry_t *entry)
{
    conn_destroy(RT_CONTAINER_OF(entry, edge_ws_conn_t, close_entry));
}

/* What was in flight is out (or failed): the next frames go at the end of the
 * turn, or the close ends. */
static void on_written(edge_ws_conn_t *conn, int failed)
{
    conn->writing = 0;
    edge_outq_written(&conn->outq);
    if (failed)
        conn_destroy(conn);
    else if (conn->outq.count > 0)
        mark_dirty(conn);
    else if (conn->close_queued && conn->close_received)
        conn_destroy(conn); /* both close frames exchanged and ours is out */
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    on_written(sock->data, err != NULL);
}

static void write_vecs(edge_ws_conn_t *conn, h2o_iovec_t *vecs, size_t n)
{
    conn->writing = 1;
    EDGE_COUNT(conn->client.thread, writes, 1);
    h2o_socket_write(conn->sock, vecs, n, on_write_complete);
}

/* A batched send is back.  Part of it or none went out (the socket is full):
 * h2o writes the rest when the socket takes it. */
void edge_ws_on_sent(void *owner, const struct iovec *sent, size_t n, ssize_t res)
{
    edge_ws_conn_t *conn = owner;
    if (res < 0 && res != -EAGAIN) {
        on_written(conn, 1);
        return;
    }
    h2o_iovec_t rest[EDGE_SENDER_VECS];
    size_t k = 0, skip = res < 0 ? 0 : (size_t)res;
    for (size_t i = 0; i < n; i++) {
        if (skip >= sent[i].iov_len) {
            skip -= sent[i].iov_len;
            continue;
        }
        rest[k++] = h2o_iovec_init((char *)sent[i].iov_base + skip, sent[i].iov_len - skip);
        skip = 0;
    }
    if (k == 0)
        on_written(conn, 0);
    else
        write_vecs(conn, rest, k);
}

static void queue_send(edge_ws_conn_t *conn, edge_sender_t *s)
{
    h2o_iovec_t vecs[EDGE_SENDER_VECS];
    size_t n = edge_outq_take(&conn->outq, vecs, EDGE_SENDER_VECS);
    if (n == 0)
        return;
    struct iovec *out = edge_sender_vecs(s);
    for (size_t i = 0; i < n; i++)
        out[i] = (struct iovec){.iov_base = vecs[i].base, .iov_len = vecs[i].len};
    conn->writing = 1;
    EDGE_COUNT(conn->client.thread, writes, 1);
    edge_sender_queue(s, h2o_socket_get_fd(conn->sock), n, conn);
}

static int run_batch(edge_thread_t *t, edge_sender_t *s)
{
    int rc = edge_sender_run(s);
    if (rc > 0)
        EDGE_COUNT(t, write_batches, 1);
    return rc;
}

/* The next dirty connection with nothing in flight, taken off the list. */
static edge_ws_conn_t *next_dirty(edge_thread_t *t)
{
    while (!h2o_linklist_is_empty(&t->dirty)) {
        edge_ws_conn_t *conn = RT_CONTAINER_OF(t->dirty.next, edge_ws_conn_t, dirty_link);
        h2o_linklist_unlink(&conn->dirty_link);
        if (!conn->writing)
            return conn;
    }
    return NULL;
}

/* Sends every dirty connection's frames, a batch per system call; one whose
 * send left frames behind is dirty again and comes round in the next batch.
 * A full batch runs before the next connection is taken, so its callbacks
 * never meet a connection half queued. */
static int flush_batched(edge_thread_t *t, edge_sender_t *s)
{
    int rc;
    do {
        for (;;) {
            if (edge_sender_full(s) && (rc = run_batch(t, s)) < 0)
                return rc;
            edge_ws_conn_t *conn = next_dirty(t);
            if (conn == NULL)
                break;
            queue_send(conn, s);
        }
    } while ((rc = run_batch(t, s)) > 0);
    return rc;
}

void edge_ws_flush_dirty(edge_thread_t *t)
{
    int rc;
    if (t->sender != NULL && (rc = flush_batched(t, t->sender)) < 0) {
        RT_LOG_ERROR("io_uring_failed", "thread=%u error=\"%s\" (each socket is written on its own from now on)",
                     t->index, strerror(-rc));
        edge_sender_destroy(t->sender);
        t->sender = NULL;
    }
    h2o_iovec_t vecs[MAX_WRITE_VECS];
    for (edge_ws_conn_t *conn; (conn = next_dirty(t)) != NULL;) {
        size_t n = edge_outq_take(&conn->outq, vecs, MAX_WRITE_VECS);
        if (n > 0)
            write_vecs(conn, vecs, n);
    }
}

/* ---- input -------------------------------------------------------------------- */

size_t edge_ws_complete_frames_len(const uint8_t *p, size_t len, uint64_t max)
{
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *f = p + off;
        size_t hdr = 2 + ((f[1] & 0x80) ? 4 : 0);
        uint64_t plen = f[1] & 0x7f;
        if (plen == 126 || plen == 127) {
            size_t ext = plen == 126 ? 2 : 8;
            if (len - off < 2 + ext)
                break;
            plen = 0;
            for (size_t i = 0; i < ext; i++)
                plen = (plen << 8) | f[2 + i];
            hdr += ext;
        }
        if (plen > max)
            return len;
        if (len - off < hdr || len - off - hdr < plen)
            break;
        off += hdr + (size_t)plen;
    }
    return off;
}

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
    (void)flags;
    edge_ws_conn_t *conn = user_data;
    size_t n = conn->feed < len ? conn->feed : len;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, conn->sock->input->bytes, n);
    h2o_buffer_consume(&conn->sock->input, n);
    conn->feed -= n;
    return (ssize_t)n;
}

/* wslay's own frames (pongs, its close replies and refusals) join the queue. */
static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    (void)ctx, (void)flags;
    edge_ws_conn_t *conn = user_data;
    if (conn->close_queued) /* our own close frame went first */
        return (ssize_t)len;
    edge_outq_push(&conn->outq, edge_frame_raw(data, len));
    mark_dirty(conn);
    return (ssize_t)len;
}

static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user_data)
{
    (void)ctx;
    edge_ws_conn_t *conn = user_data;
    if (arg->opcode < 0x8) /* data or continuation: a message is open until its FIN frame */
        conn->msg_open = !arg->fin;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    (void)ctx;
    edge_ws_conn_t *conn = user_data;
    EDGE_COUNT(conn->client.thread, frames_in, 1);
    if (conn->close_queued && arg->opcode != WSLAY_CONNECTION_CLOSE)
        return; /* closing: only the peer's close matters now */
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME: conn->handler->on_text(conn, (const char *)arg->msg, arg->msg_length); break;
    case WSLAY_BINARY_FRAME: conn->handler->on_binary(conn, arg->msg, arg->msg_length); break;
    case WSLAY_CONNECTION_CLOSE: conn->close_received = 1; break;
    default: break; /* ping (answered by wslay) and pong */
    }
}

static const struct wslay_event_callbacks wslay_callbacks = {
    .recv_callback = on_wslay_recv,
    .send_callback = on_wslay_send,
    .on_frame_recv_start_callback = on_frame_start,
    .on_msg_recv_callback = on_msg,
};

/* Returns -1 if the connection was destroyed. */
static int feed_wslay(edge_ws_conn_t *conn)
{
    edge_thread_t *t = conn->client.thread;
    size_t max =
        (size_t)(conn->handler->binary_documents ? t->server->config.max_doc_update : t->server->config.max_frame);
    conn->feed = edge_ws_complete_frames_len((const uint8_t *)conn->sock->input->bytes, conn->sock->input->size, max);
    if (conn->feed == 0)
        return 0;
    if (conn->wslay == NULL) {
        wslay_event_context_server_init(&conn->wslay, &wslay_callbacks, conn);
        wslay_event_config_set_max_recv_msg_length(conn->wslay, max);
    }
    int r = wslay_event_recv(conn->wslay);
    if (r == 0)
        r = wslay_event_send(conn->wslay);
    if (r != 0 && !wslay_event_get_close_sent(conn->wslay) && !conn->close_queued) {
        /* wslay gave up on the peer's bytes without saying why: say it was a protocol error */
        edge_ws_close(conn, 1002, "protocol error");
    } else if (r != 0 && !conn->close_queued) {
        begin_closing(conn);
    }
    if (wslay_event_get_close_sent(conn->wslay) && !conn->close_queued) {
        /* wslay answered a close or refused a frame (1009, 1002, 1007): its close frame is queued. */
        begin_closing(conn);
    }
    if (conn->close_queued && conn->close_received && conn->outq.count == 0) {
        conn_destroy(conn);
        return -1;
    }
    if (!conn->msg_open && !conn->close_queued && !wslay_event_want_write(conn->wslay)) {
        wslay_event_context_free(conn->wslay);
        conn->wslay = NULL;
    }
    return 0;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    edge_ws_conn_t *conn = sock->data;
    if (err != NULL) {
        conn_destroy(conn);
        return;
    }
    conn->last_rx = h2o_now(conn->client.thread->ctx.loop);
    if (conn->close_queued && conn->wslay != NULL && !wslay_event_get_read_enabled(conn->wslay)) {
        /* wslay stopped reading (close or refusal): the rest is discarded until EOF */
        h2o_buffer_consume(&sock->input, sock->input->size);
    } else if (feed_wslay(conn) != 0) {
        return;
    }
    if (sock->input->size == 0) {
        /* An idle connection keeps no input buffer. */
        h2o_buffer_dispose(&sock->input);
        h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    }
}

/* ---- delivery and heartbeat ------------------------------------------------------ */

void edge_ws_deliver(edge_client_t *client, edge_channel_t *ch, edge_message_t *msg)
{
    (void)ch;
    edge_frame_t *frame = edge_message_ws(msg);
    if (frame == NULL)
        return;
    EDGE_COUNT(client->thread, deliveries, 1);
    edge_ws_send(edge_ws_of(client), edge_frame_ref(frame));
}

void edge_ws_heartbeat(edge_thread_t *t, unsigned slot)
{
    uint64_t now = h2o_now(t->ctx.loop);
    uint64_t silent_limit = 2 * (uint64_t)t->server->config.heartbeat_ms;
    h2o_linklist_t *conns = &t->ws_heartbeat[slot];
    for (h2o_linklist_t *node = conns->next, *next; node != conns; node = next) {
        next = node->next;
        edge_ws_conn_t *conn = RT_CONTAINER_OF(node, edge_ws_conn_t, heartbeat_link);
        if (conn->close_queued)
            continue;
        if (now - conn->last_rx >= silent_limit) {
            conn_destroy(conn); /* silent for two heartbeats: the peer is gone */
            continue;
        }
        edge_ws_send(conn, edge_frame_ref(t->ping_frame));
    }
}

void edge_ws_expire_tokens(edge_thread_t *t, int64_t now_s)
{
    for (h2o_linklist_t *node = t->ws_conns.next; node != &t->ws_conns; node = node->next) {
        edge_ws_conn_t *conn = RT_CONTAINER_OF(node, edge_ws_conn_t, conn_link);
        const edge_identity_t *id = conn->client.identity;
        if (id->authenticated && id->claims.exp <= now_s)
            edge_ws_close(conn, 4001, "token expired");
    }
}

void edge_ws_drain_all(edge_thread_t *t)
{
    for (h2o_linklist_t *node = t->ws_conns.next; node != &t->ws_conns; node = node->next)
        edge_ws_close(RT_CONTAINER_OF(node, edge_ws_conn_t, conn_link), 1001, "server going away");
}

/* ---- handshake ------------------------------------------------------------------- */

static h2o_iovec_t find_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

int edge_ws_is_upgrade(h2o_req_t *req)
{
    return req->upgrade.base != NULL && h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket"));
}

static void on_upgrade_complete(void *user_data, h2o_socket_t *sock, size_t reqsize)
{
    edge_ws_conn_t *conn = user_data;
    if (sock == NULL) {
        conn_destroy(conn);
        return;
    }
    conn->sock = sock;
    sock->data = conn;
    h2o_buffer_consume(&sock->input, reqsize);
    conn->last_rx = h2o_now(conn->client.thread->ctx.loop);
    conn->handler->on_start(conn);
    h2o_socket_read_start(sock, on_read);
    if (sock->input->size > 0)
        on_read(sock, NULL);
}

/* Selects rt.v1 if the client offers it (it may also offer bearer.<jwt>). */
static int offers_rt_v1(h2o_iovec_t protocols)
{
    return protocols.base != NULL && h2o_contains_token(protocols.base, protocols.len, H2O_STRLIT("rt.v1"), ',');
}

int edge_ws_accept(edge_thread_t *t, h2o_req_t *req, edge_identity_t *identity, const edge_ws_handler_t *handler)
{
    h2o_iovec_t key = find_header(req, "sec-websocket-key");
    h2o_iovec_t version = find_header(req, "sec-websocket-version");
    if (key.len != 24 || !h2o_memis(version.base, version.len, H2O_STRLIT("13"))) {
        edge_identity_dispose(identity);
        free(identity);
        edge_http_error(req, 400, "bad_request", "not a WebSocket version 13 handshake");
        return 0;
    }
    if (edge_guard_conn_open(t->server->guard, identity->user) != RT_OK) {
        edge_identity_dispose(identity);
        free(identity);
        edge_http_error(req, 429, "rate_limited", "too many connections for this user (RT_MAX_USER_CONNS)");
        return 0;
    }
    edge_ws_conn_t *conn = rt_xcalloc(1, sizeof(*conn));
    conn->handler = handler;
    conn->client.ops = &handler->client_ops;
    conn->client.thread = t;
    conn->client.user = rt_xstrdup(identity->user);
    conn->client.identity = identity;
    h2o_linklist_init_anchor(&conn->client.subs);
    unsigned slot = edge_thread_name_client(t, &conn->client);
    conn->close_entry.cb = on_close_wait_timeout;
    h2o_linklist_insert(&t->ws_conns, &conn->conn_link);
    h2o_linklist_insert(&t->ws_heartbeat[slot], &conn->heartbeat_link);
    atomic_fetch_add(&t->server->open_conns, 1);
    EDGE_COUNT(t, connections, 1);

    char keyed[24 + sizeof(WS_GUID) - 1];
    memcpy(keyed, key.base, 24);
    memcpy(keyed + 24, WS_GUID, sizeof(WS_GUID) - 1);
    uint8_t digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)keyed, sizeof(keyed), digest);
    char *accept = h2o_mem_alloc_pool(&req->pool, h2o_base64_encode_capacity(sizeof(digest)));
    size_t accept_len = h2o_base64_encode(accept, digest, sizeof(digest), 0);

    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL, accept,
                          accept_len);
    if (offers_rt_v1(find_header(req, "sec-websocket-protocol")))
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-protocol"), 0, NULL,
                              H2O_STRLIT("rt.v1"));
    h2o_http1_upgrade(req, NULL, 0, on_upgrade_complete, conn);
    return 0;
}

int edge_ws_accept_session(edge_thread_t *t, h2o_req_t *req, edge_identity_t *identity,
                           const edge_ws_handler_t *handler, void *session)
{
    /* an accepted connection joins the tail of t->ws_conns at once */
    h2o_linklist_t *tail = t->ws_conns.prev;
    edge_ws_accept(t, req, identity, handler);
    if (t->ws_conns.prev == tail)
        return RT_EINVAL;
    RT_CONTAINER_OF(t->ws_conns.prev, edge_ws_conn_t, conn_link)->session = session;
    return RT_OK;
}
