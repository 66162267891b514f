/*
 * docs_http.c: the document routes of the edge.
 *
 *   /yjs/{doc}                 WebSocket upgrade to y-websocket (yjs.c).  The name
 *                              is the raw path after /yjs/ up to '?', not
 *                              percent-decoded, as y-websocket servers take it
 *                              (yjs-spec 2.3); names outside [A-Za-z0-9_.:-]{1,128}
 *                              are refused with 400 before the upgrade.
 *   GET /v1/docs/{doc}         the whole state as one V1 update (404: never existed)
 *   GET /v1/docs/{doc}?format=json   the content as JSON
 */
#include "docs.h"
#include "rtsync/v1/doc.pb-c.h"

#include <stdlib.h>
#include <string.h>

#define YJS_PREFIX "/yjs/"
#define DOCS_PREFIX "/v1/docs/"

static int on_yjs(edge_thread_t *t, h2o_req_t *req)
{
    size_t end = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    size_t plen = sizeof(YJS_PREFIX) - 1;
    const char *name = req->path.base + plen;
    size_t nlen = end - plen;
    if (nlen > EDGE_DOC_NAME_MAX || !rt_name_is_valid(name, nlen)) {
        edge_http_error(req, 400, "bad_channel", "document names match [A-Za-z0-9_.:-]{1,128}");
        return 0;
    }
    char suffix[EDGE_CONN_SUFFIX_SIZE];
    if (!edge_http_ws_admit(t, req, "/yjs/{doc}", suffix))
        return 0;
    edge_ysession_t *s = rt_xcalloc(1, sizeof(*s));
    memcpy(s->name, name, nlen);
    edge_identity_t *id = edge_http_identify(t, req, suffix, s->name);
    if (id == NULL || edge_ws_accept_session(t, req, id, &edge_yjs_handler, s) != RT_OK)
        free(s);
    return 0;
}

static void send_bytes(h2o_req_t *req, const char *content_type, const uint8_t *data, size_t len)
{
    h2o_iovec_t copy = h2o_strdup(&req->pool, (const char *)data, len);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    req->res.content_length = len;
    h2o_send_inline(req, copy.base, copy.len);
}

typedef struct get_wait {
    h2o_req_t *req;
    int json;
} get_wait_t;

static void on_get_reply(void *ctx, int err, rt_slice_t data)
{
    get_wait_t *w = ctx;
    h2o_req_t *req = w->req;
    int json = w->json;
    free(w);
    Rtsync__V1__DocGetReply *r = err == RT_OK ? rtsync__v1__doc_get_reply__unpack(NULL, data.len, data.data) : NULL;
    int code = r && r->status ? (int)r->status->code : -1;
    if (code == RTSYNC__V1__CODE__CODE_OK)
        send_bytes(req, json ? "application/json" : "application/octet-stream", r->data.data, r->data.len);
    else if (code == RTSYNC__V1__CODE__CODE_NOT_FOUND)
        edge_http_error(req, 404, "not_found", "no such document");
    else if (code == RTSYNC__V1__CODE__CODE_BAD_REQUEST)
        edge_http_error(req, 400, "bad_request", "the document request was refused");
    else
        edge_http_error(req, 503, "unavailable", "the document service is unavailable");
    rtsync__v1__doc_get_reply__free_unpacked(r, NULL);
}

static int on_get(edge_thread_t *t, h2o_req_t *req)
{
    const char *name = req->path_normalized.base + sizeof(DOCS_PREFIX) - 1;
    size_t nlen = req->path_normalized.len - (sizeof(DOCS_PREFIX) - 1);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        edge_http_error(req, 405, "bad_request", "use GET");
        return 0;
    }
    if (nlen > EDGE_DOC_NAME_MAX || !rt_name_is_valid(name, nlen)) {
        edge_http_error(req, 400, "bad_channel", "document names match [A-Za-z0-9_.:-]{1,128}");
        return 0;
    }
    char doc[EDGE_DOC_NAME_MAX + 1], format[16];
    memcpy(doc, name, nlen);
    doc[nlen] = '\0';
    int json = edge_http_query_param(req, "format", format, sizeof(format)) == RT_OK && strcmp(format, "json") == 0;
    edge_identity_t *id = edge_http_identify(t, req, "http", doc);
    if (id == NULL)
        return 0;
    edge_identity_dispose(id);
    free(id);
    Rtsync__V1__DocGetRequest q = RTSYNC__V1__DOC_GET_REQUEST__INIT;
    q.doc = doc;
    q.json = json;
    uint8_t buf[EDGE_DOC_NAME_MAX + 16];
    size_t n = rtsync__v1__doc_get_request__pack(&q, buf);
    get_wait_t *w = rt_xmalloc(sizeof(*w));
    *w = (get_wait_t){req, json};
    if (rt_bus_request(t->requester, "rt.doc.get", buf, n, on_get_reply, w) != RT_OK) {
        free(w);
        edge_http_error(req, 503, "unavailable", "the message bus is unavailable");
    }
    return 0;
}

int edge_docs_route(edge_thread_t *t, h2o_req_t *req)
{
    if (req->path.len > sizeof(YJS_PREFIX) - 1 && memcmp(req->path.base, YJS_PREFIX, sizeof(YJS_PREFIX) - 1) == 0) {
        on_yjs(t, req);
        return 1;
    }
    if (req->path_normalized.len > sizeof(DOCS_PREFIX) - 1 &&
        memcmp(req->path_normalized.base, DOCS_PREFIX, sizeof(DOCS_PREFIX) - 1) == 0) {
        on_get(t, req);
        return 1;
    }
    return 0;
}
