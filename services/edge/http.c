/* http.c: the edge's routes (PROTOCOL.md section 3): health, metrics, the
 * WebSocket and SSE entry points, and the HTTP publish API. */
#include "docs.h"
#include "static.h"
#include "ws.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct http_publish {
    h2o_req_t *req;
    int ephemeral;
} http_publish_t;

void edge_http_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    h2o_iovec_t copy = h2o_strdup(&req->pool, text, strlen(text));
    free(text);
    req->res.status = status;
    req->res.reason = status == 400   ? "Bad Request"
                      : status == 404 ? "Not Found"
                      : status == 405 ? "Method Not Allowed"
                      : status == 413 ? "Payload Too Large"
                      : status == 401 ? "Unauthorized"
                      : status == 403 ? "Forbidden"
                      : status == 429 ? "Too Many Requests"
                      : status == 503 ? "Service Unavailable"
                                      : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = copy.len;
    h2o_send_inline(req, copy.base, copy.len);
}

static void send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Service Unavailable";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int edge_http_query_param(h2o_req_t *req, const char *name, char *out, size_t outsize)
{
    if (req->query_at == SIZE_MAX)
        return RT_ENOTFOUND;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        if ((size_t)(pend - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t o = 0;
            for (const char *v = p + nlen + 1; v < pend; v++) {
                if (o + 1 >= outsize)
                    return RT_ETOOBIG;
                if (*v == '%' && pend - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    out[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else {
                    out[o++] = *v == '+' ? ' ' : *v;
                }
            }
            out[o] = '\0';
            return RT_OK;
        }
        p = pend + 1;
    }
    return RT_ENOTFOUND;
}

edge_identity_t *edge_http_identify(edge_thread_t *t, h2o_req_t *req, const char *anon_suffix, const char *name)
{
    edge_identity_t *id = rt_xmalloc(sizeof(*id));
    if (edge_guard_identify(t, req, anon_suffix, id) != RT_OK) {
        free(id);
        return NULL;
    }
    if (name != NULL && !edge_identity_allows(id, name)) {
        edge_identity_dispose(id);
        free(id);
        edge_http_error(req, 403, "forbidden", "the token does not allow this channel or document");
        return NULL;
    }
    return id;
}

static void identity_free(edge_identity_t *id)
{
    edge_identity_dispose(id);
    free(id);
}

static int path_is(h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

/* Matches prefix + NAME + suffix and copies NAME; 1 on a match (even if NAME is invalid). */
static int path_name(h2o_req_t *req, const char *prefix, const char *suffix, char *name, size_t namesize)
{
    const char *p = req->path_normalized.base;
    size_t len = req->path_normalized.len, plen = strlen(prefix), slen = strlen(suffix);
    if (len < plen + slen || memcmp(p, prefix, plen) != 0 || memcmp(p + len - slen, suffix, slen) != 0)
        return 0;
    size_t nlen = len - plen - slen;
    if (nlen >= namesize || memchr(p + plen, '/', nlen) != NULL) {
        name[0] = '\0';
        return memchr(p + plen, '/', nlen) == NULL; /* too long: still this route */
    }
    memcpy(name, p + plen, nlen);
    name[nlen] = '\0';
    return 1;
}

/* Sends `body` (taken) as a 200 JSON response, with "channel": the route's name added. */
static void send_channel_json(h2o_req_t *req, const char *prefix, const char *suffix, json_t *body)
{
    char channel[130]; /* validated before the back end was asked */
    path_name(req, prefix, suffix, channel, sizeof(channel));
    json_object_set_new(body, "channel", json_string(channel));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    h2o_iovec_t copy = h2o_strdup(&req->pool, text, strlen(text));
    free(text);
    send_body(req, 200, "application/json", copy.base, copy.len);
}

int edge_http_ws_admit(edge_thread_t *t, h2o_req_t *req, const char *route, char suffix[EDGE_CONN_SUFFIX_SIZE])
{
    if (!edge_ws_is_upgrade(req)) {
        char message[96];
        snprintf(message, sizeof(message), "%s expects a WebSocket upgrade", route);
        edge_http_error(req, 400, "bad_request", message);
        return 0;
    }
    if (atomic_load(&t->server->draining)) {
        edge_http_error(req, 503, "unavailable", "the edge is draining");
        return 0;
    }
    if (atomic_load(&t->server->open_conns) >= t->server->config.max_conns) {
        edge_http_error(req, 503, "unavailable", "connection limit (RT_MAX_CONNS) reached");
        return 0;
    }
    snprintf(suffix, EDGE_CONN_SUFFIX_SIZE, "%u-%" PRIu64, t->index, t->next_conn + 1);
    return 1;
}

static int on_ws(edge_thread_t *t, h2o_req_t *req)
{
    char suffix[EDGE_CONN_SUFFIX_SIZE];
    if (!edge_http_ws_admit(t, req, "/ws", suffix))
        return 0;
    edge_identity_t *id = edge_http_identify(t, req, suffix, NULL);
    if (id == NULL)
        return 0;
    return edge_ws_accept(t, req, id, &edge_json_session);
}

/* Parses a decimal offset; 0 or RT_EINVAL. */
static int parse_offset(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return RT_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RT_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return RT_OK;
}

/* Reads an optional numeric query parameter: 0 (absent: *present = 0) or RT_EINVAL. */
static int query_offset(h2o_req_t *req, const char *name, int *present, uint64_t *out)
{
    char text[32];
    int err = edge_http_query_param(req, name, text, sizeof(text));
    *present = err == RT_OK;
    if (err == RT_ENOTFOUND)
        return RT_OK;
    return err == RT_OK ? parse_offset(text, strlen(text), out) : RT_EINVAL;
}

static int on_sse(edge_thread_t *t, h2o_req_t *req, const char *channel)
{
    if (!rt_name_is_valid(channel, strlen(channel))) {
        edge_http_error(req, 400, "bad_channel", "channel names match [A-Za-z0-9_.:-]{1,128}");
        return 0;
    }
    /* Resume: the browser's Last-Event-ID first, else ?since= */
    int has_since = 0;
    uint64_t since = 0;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    int err = i >= 0 ? (has_since = 1,
                        parse_offset(req->headers.entries[i].value.base, req->headers.entries[i].value.len, &since))
                     : query_offset(req, "since", &has_since, &since);
    if (err != RT_OK) {
        edge_http_error(req, 400, "bad_request", "Last-Event-ID and since are offsets: decimal integers");
        return 0;
    }
    edge_identity_t *id = edge_http_identify(t, req, "sse", channel);
    if (id == NULL)
        return 0;
    return edge_sse_start(t, req, channel, id, has_since, since);
}

static void on_history(void *ctx, int err, Rtsync__V1__HistoryReply *reply)
{
    h2o_req_t *req = ctx;
    if (err == RT_EINVAL) {
        edge_http_error(req, 400, "bad_request", "the history query was refused");
        return;
    }
    if (err != RT_OK) {
        edge_http_error(req, 503, "unavailable", "the history service is unavailable");
        return;
    }
    json_t *messages = json_array();
    for (size_t i = 0; i < reply->n_messages; i++) {
        const Rtsync__V1__ChannelMessage *m = reply->messages[i];
        json_t *data = json_loadb((const char *)m->data.data, m->data.len, JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{s:I, s:s, s:o, s:s, s:I}", "offset", (json_int_t)m->offset, "event", m->event, "data",
                              data ? data : json_null(), "from", m->from_user, "ts", (json_int_t)m->ts_ms);
        if (*m->id)
            json_object_set_new(o, "id", json_string(m->id));
        json_array_append_new(messages, o);
    }
    send_channel_json(req, "/v1/channels/", "/messages",
                      json_pack("{s:o, s:I}", "messages", messages, "latest", (json_int_t)reply->latest));
}

static int on_messages(edge_thread_t *t, h2o_req_t *req, const char *channel)
{
    if (!rt_name_is_valid(channel, strlen(channel))) {
        edge_http_error(req, 400, "bad_channel", "channel names match [A-Za-z0-9_.:-]{1,128}");
        return 0;
    }
    int has_after, has_before, has_limit;
    uint64_t after = 0, before = 0, limit = 50;
    if (query_offset(req, "after", &has_after, &after) != RT_OK ||
        query_offset(req, "before", &has_before, &before) != RT_OK ||
        query_offset(req, "limit", &has_limit, &limit) != RT_OK || (has_after && has_before) || limit < 1 ||
        limit > 1000) {
        edge_http_error(req, 400, "bad_request", "use after=N or before=N (not both) and limit=1..1000");
        return 0;
    }
    edge_identity_t *id = edge_http_identify(t, req, "http", channel);
    if (id == NULL)
        return 0;
    identity_free(id);
    edge_history_query(t, channel, has_before, has_before ? before : after, (uint32_t)limit, on_history, req);
    return 0;
}

static void on_http_published(void *ctx, int err, uint64_t offset)
{
    http_publish_t *p = ctx;
    h2o_req_t *req = p->req;
    if (err == RT_EINVAL) {
        edge_http_error(req, 400, "bad_request", "the message was refused");
    } else if (err != RT_OK) {
        edge_http_error(req, 503, "unavailable", "the channel's history service is unavailable; not published");
    } else {
        char body[64];
        int n = p->ephemeral ? snprintf(body, sizeof(body), "{}")
                             : snprintf(body, sizeof(body), "{\"offset\":%" PRIu64 "}", offset);
        h2o_iovec_t copy = h2o_strdup(&req->pool, body, (size_t)n);
        send_body(req, 200, "application/json", copy.base, copy.len);
    }
}

static int on_publish(edge_thread_t *t, h2o_req_t *req, const char *channel)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        edge_http_error(req, 405, "bad_request", "use POST");
        return 0;
    }
    if (!rt_name_is_valid(channel, strlen(channel))) {
        edge_http_error(req, 400, "bad_channel", "channel names match [A-Za-z0-9_.:-]{1,128}");
        return 0;
    }
    if (req->entity.len > (size_t)t->server->config.max_frame) {
        edge_http_error(req, 413, "too_large", "body over the RT_MAX_FRAME limit");
        return 0;
    }
    edge_identity_t *id = edge_http_identify(t, req, "http", channel);
    if (id == NULL)
        return 0;
    int64_t retry_ms;
    if (edge_guard_rate(t->server->guard, id->user, rt_now_wall_ms(), &retry_ms) != RT_OK) {
        char seconds[24];
        int n = snprintf(seconds, sizeof(seconds), "%lld", (long long)(retry_ms + 999) / 1000);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       h2o_strdup(&req->pool, seconds, (size_t)n).base, (size_t)n);
        identity_free(id);
        edge_http_error(req, 429, "rate_limited", "too many messages: RT_RATE_LIMIT per RT_RATE_WINDOW");
        return 0;
    }
    edge_request_t body;
    edge_proto_error_t err;
    if (edge_request_parse_publish_body(req->entity.base, req->entity.len, &body, &err) != RT_OK) {
        edge_http_error(req, 400, err.code, err.message);
        edge_request_dispose(&body);
        identity_free(id);
        return 0;
    }
    char *data = json_dumps(body.data, JSON_COMPACT | JSON_ENCODE_ANY);
    http_publish_t *p = h2o_mem_alloc_pool(&req->pool, sizeof(*p));
    *p = (http_publish_t){req, body.ephemeral};
    edge_publish_t pub = {
        .channel = channel,
        .event = body.event,
        .data = data,
        .data_len = strlen(data),
        .id = body.id,
        .user = id->user,
        .ephemeral = body.ephemeral,
    };
    edge_publish(t, &pub, on_http_published, p);
    free(data);
    edge_request_dispose(&body);
    identity_free(id);
    return 0;
}

static void on_presence(void *ctx, int err, json_t *members)
{
    h2o_req_t *req = ctx;
    if (err != RT_OK) {
        edge_http_error(req, 503, "unavailable", "the presence service is unavailable");
        return;
    }
    send_channel_json(req, "/v1/channels/", "/presence", json_deep_copy(members));
}

static int on_presence_route(edge_thread_t *t, h2o_req_t *req, const char *channel)
{
    if (!rt_name_is_valid(channel, strlen(channel))) {
        edge_http_error(req, 400, "bad_channel", "channel names match [A-Za-z0-9_.:-]{1,128}");
        return 0;
    }
    edge_identity_t *id = edge_http_identify(t, req, "http", channel);
    if (id == NULL)
        return 0;
    identity_free(id);
    edge_presence_query(t, channel, on_presence, req);
    return 0;
}

static int on_metrics(edge_thread_t *t, h2o_req_t *req)
{
    rt_buf_t out = {0};
    edge_metrics_render(t->server, &out);
    h2o_iovec_t copy = h2o_strdup(&req->pool, (const char *)out.data, out.len);
    rt_buf_dispose(&out);
    send_body(req, 200, "text/plain; version=0.0.4", copy.base, copy.len);
    return 0;
}

int edge_http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    edge_thread_t *t = RT_CONTAINER_OF(req->conn->ctx, edge_thread_t, ctx);
    char name[130];
    if (path_is(req, "/healthz")) {
        send_body(req, 200, "text/plain", H2O_STRLIT("ok\n"));
        return 0;
    }
    if (path_is(req, "/readyz")) {
        int ready = edge_server_bus_connected(t->server) && !atomic_load(&t->server->draining);
        if (ready)
            send_body(req, 200, "text/plain", H2O_STRLIT("ready\n"));
        else
            send_body(req, 503, "text/plain", H2O_STRLIT("not ready\n"));
        return 0;
    }
    if (path_is(req, "/metrics"))
        return on_metrics(t, req);
    if (path_is(req, "/ws"))
        return on_ws(t, req);
    if (path_name(req, "/sse/", "", name, sizeof(name)))
        return on_sse(t, req, name);
    if (path_name(req, "/v1/channels/", "/publish", name, sizeof(name)))
        return on_publish(t, req, name);
    if (path_name(req, "/v1/channels/", "/messages", name, sizeof(name)))
        return on_messages(t, req, name);
    if (path_name(req, "/v1/channels/", "/presence", name, sizeof(name)))
        return on_presence_route(t, req, name);
    if (edge_docs_route(t, req) || edge_static_route(req))
        return 0;
    edge_http_error(req, 404, "not_found", "no such route");
    return 0;
}
