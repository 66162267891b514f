/*
 * ws.c: rtctl's WebSocket client: the RFC 6455 upgrade over http.c (with the
 * Sec-WebSocket-Accept check), then libwslay for framing, masking, ping/pong
 * and the closing handshake.  Text messages are queued as they arrive and
 * handed out one at a time by ctl_ws_next().
 */
#include "rtctl.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_MESSAGE (16u << 20)

struct ctl_ws {
    ctl_conn_t conn; /* conn.in holds bytes read past the 101 head until wslay takes them */
    wslay_event_context_ptr ctx;
    rt_buf_t queue;   /* received text messages: 4-byte length, then the bytes */
    rt_buf_t current; /* the message last handed out */
    uint64_t last_rx_ns;
    bool eof;
    char close_reason[124]; /* of the server's close frame */
};

static void fill_random(uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);
        if (n <= 0)
            continue; /* EINTR; getrandom does not fail otherwise once the pool is ready */
        buf += n;
        len -= (size_t)n;
    }
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
    (void)flags;
    ctl_ws_t *ws = user_data;
    if (ws->conn.in.len > 0) { /* bytes that came with the handshake answer */
        size_t n = ws->conn.in.len < len ? ws->conn.in.len : len;
        memcpy(buf, ws->conn.in.data, n);
        rt_buf_consume(&ws->conn.in, n);
        return (ssize_t)n;
    }
    ssize_t n = recv(ws->conn.fd, buf, len, 0);
    if (n > 0) {
        ws->last_rx_ns = rt_now_mono_ns();
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->eof = true;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    (void)flags;
    ctl_ws_t *ws = user_data;
    ssize_t n = send(ws->conn.fd, data, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    wslay_event_set_error(ctx, errno == EAGAIN || errno == EINTR ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    (void)ctx;
    (void)user_data;
    fill_random(buf, len);
    return 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    (void)ctx;
    ctl_ws_t *ws = user_data;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->msg_length > 2) {
        size_t n = arg->msg_length - 2;
        if (n > sizeof ws->close_reason - 1)
            n = sizeof ws->close_reason - 1;
        memcpy(ws->close_reason, arg->msg + 2, n);
        ws->close_reason[n] = '\0';
    }
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return; /* rtsync's /ws speaks JSON text frames; ping, pong and close are wslay's */
    uint32_t len = (uint32_t)arg->msg_length;
    rt_buf_append(&ws->queue, &len, sizeof len);
    rt_buf_append(&ws->queue, arg->msg, arg->msg_length);
}

static void base64(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Sends the upgrade request; writes the Sec-WebSocket-Accept to expect into accept (29 bytes). */
static int send_upgrade(ctl_conn_t *c, const ctl_url_t *url, const char *path, const char *token, char *accept,
                        uint64_t deadline)
{
    uint8_t nonce[16];
    fill_random(nonce, sizeof nonce);
    char key[25], cat[64];
    base64(nonce, sizeof nonce, key);
    snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
    base64(md, mdlen, accept);
    rt_buf_t headers = {0};
    rt_buf_printf(&headers,
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n",
                  key);
    /* the token also rides the subprotocol list, which is what browsers can send */
    if (token != NULL && *token)
        rt_buf_printf(&headers, "Sec-WebSocket-Protocol: rt.v1, bearer.%s\r\n", token);
    rt_buf_append_byte(&headers, 0);
    int err = ctl_http_send(c, url, "GET", path, token, (const char *)headers.data, NULL, (rt_slice_t){0}, deadline);
    rt_buf_dispose(&headers);
    return err;
}

int ctl_ws_connect(const ctl_url_t *url, const char *path, const char *token, int timeout_ms, ctl_ws_t **out,
                   ctl_response_t *refused, char *error)
{
    ctl_ws_t *ws = rt_xcalloc(1, sizeof *ws);
    ctl_response_t r = {0};
    char accept[32], got[64];
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)timeout_ms * 1000000;
    int err = ctl_conn_open(&ws->conn, url, timeout_ms);
    if (err == 0)
        err = send_upgrade(&ws->conn, url, path, token, accept, deadline);
    if (err == 0)
        err = ctl_http_read_head(&ws->conn, &r, deadline);
    if (err != 0) {
        snprintf(error, 128, "%s", ws->conn.error);
        goto fail;
    }
    if (r.status != 101) {
        ctl_http_read_body(&ws->conn, &r, deadline); /* the error JSON, if it comes in time */
        snprintf(error, 128, "upgrade refused: HTTP %d", r.status);
        *refused = r;
        r = (ctl_response_t){0};
        err = RT_EINVAL;
        goto fail;
    }
    if (!ctl_response_header(&r, "sec-websocket-accept", got, sizeof got) || strcmp(got, accept) != 0) {
        snprintf(error, 128, "bad Sec-WebSocket-Accept in the upgrade answer");
        err = RT_EIO;
        goto fail;
    }
    struct wslay_event_callbacks cbs = {.recv_callback = on_recv,
                                        .send_callback = on_send,
                                        .genmask_callback = on_genmask,
                                        .on_msg_recv_callback = on_msg};
    if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0)
        abort(); /* WSLAY_ERR_NOMEM is its only failure */
    wslay_event_config_set_max_recv_msg_length(ws->ctx, MAX_MESSAGE);
    ws->last_rx_ns = rt_now_mono_ns();
    ctl_response_dispose(&r);
    *out = ws;
    return 0;
fail:
    ctl_response_dispose(&r);
    ctl_conn_close(&ws->conn);
    free(ws);
    return err;
}

/* Sends what wslay has queued, as far as the socket takes it now. */
static int flush(ctl_ws_t *ws)
{
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
        return RT_EIO;
    return 0;
}

int ctl_ws_send_text(ctl_ws_t *ws, const char *text, size_t len)
{
    struct wslay_event_msg msg = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = len};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0)
        return RT_EIO;
    return flush(ws);
}

/* Moves the first queued message to ws->current; false when none. */
static bool pop(ctl_ws_t *ws, rt_slice_t *msg)
{
    if (ws->queue.len == 0)
        return false;
    uint32_t len;
    memcpy(&len, ws->queue.data, sizeof len);
    ws->current.len = 0;
    rt_buf_append(&ws->current, ws->queue.data + sizeof len, len);
    rt_buf_consume(&ws->queue, sizeof len + len);
    *msg = (rt_slice_t){ws->current.data, ws->current.len};
    return true;
}

int ctl_ws_next(ctl_ws_t *ws, rt_slice_t *msg, int idle_ms)
{
    for (;;) {
        if (pop(ws, msg))
            return 0;
        if (ctl_stop)
            return RT_ESTATE;
        if (ws->conn.in.len > 0 && wslay_event_recv(ws->ctx) != 0)
            return RT_EIO;
        if (ws->queue.len > 0)
            continue;
        if (!wslay_event_want_read(ws->ctx) || ws->eof)
            return RT_EIO;
        uint64_t idle_deadline = ws->last_rx_ns + (uint64_t)idle_ms * 1000000, now = rt_now_mono_ns();
        if (now >= idle_deadline)
            return RT_ETIMEOUT;
        struct pollfd p = {.fd = ws->conn.fd, .events = POLLIN | (wslay_event_want_write(ws->ctx) ? POLLOUT : 0)};
        int n = poll(&p, 1, (int)((idle_deadline - now) / 1000000) + 1);
        if (n < 0 && errno != EINTR)
            return RT_EIO;
        if (n <= 0)
            continue;
        if ((p.revents & POLLOUT) && flush(ws) != 0)
            return RT_EIO;
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && wslay_event_recv(ws->ctx) != 0 && ws->queue.len == 0)
            return RT_EIO;
        if (flush(ws) != 0) /* pongs and the close reply */
            return RT_EIO;
    }
}

int ctl_ws_close_info(const ctl_ws_t *ws, const char **reason)
{
    *reason = ws->close_reason;
    if (!wslay_event_get_close_received(ws->ctx))
        return 0;
    return wslay_event_get_status_code_received(ws->ctx);
}

void ctl_ws_destroy(ctl_ws_t *ws)
{
    if (ws == NULL)
        return;
    if (!ws->eof && !wslay_event_get_close_sent(ws->ctx)) {
        wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
        flush(ws);
    }
    wslay_event_context_free(ws->ctx);
    ctl_conn_close(&ws->conn);
    rt_buf_dispose(&ws->queue);
    rt_buf_dispose(&ws->current);
    free(ws);
}
