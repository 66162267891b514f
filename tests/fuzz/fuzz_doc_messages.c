/*
 * fuzz_doc_messages.c: the document path's decoders on arbitrary bytes.  The
 * first byte picks the target:
 *   0  a y-websocket message as the edge decodes it (framing, state vector,
 *      awareness validation); what is accepted re-encodes to the same bytes
 *   1  a DocAwareness as crdt-merge applies it to a document's states, then the
 *      removal of its connection and the encoding of what is left
 *   2  the other doc.proto requests and replies (unpack must never crash)
 */
#include "../../services/crdt-merge/doc.c"
#include "../../services/crdt-merge/store.c"
#include "rtsync/v1/doc.pb-c.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_publish(void *ctx, const crdt_doc_t *doc, rt_slice_t update)
{
    (void)ctx, (void)doc;
    assert(rt_yaw_validate(update) == RT_OK);
}

static void fuzz_message(rt_slice_t in)
{
    rt_ymsg_t m;
    if (rt_ymsg_decode(in, &m) != RT_OK)
        return;
    rt_buf_t out = {0};
    if (m.type == RT_YMSG_SYNC) {
        if (m.sync_type == RT_YSYNC_STEP1)
            (void)rt_ysv_validate(m.payload);
        rt_ymsg_encode_sync(&out, m.sync_type, m.payload);
    } else if (m.type == RT_YMSG_AWARENESS) {
        (void)rt_yaw_validate(m.payload);
        rt_ymsg_encode_awareness(&out, m.payload);
    }
    /* varUints may be written longer than needed, so compare only canonical inputs' lengths */
    assert(out.len == 0 || out.len <= in.len);
    rt_buf_dispose(&out);
}

static void fuzz_awareness(rt_slice_t in)
{
    Rtsync__V1__DocAwareness *a = rtsync__v1__doc_awareness__unpack(NULL, in.len, in.data);
    if (a == NULL)
        return;
    rt_slice_t update = {a->update.data, a->update.len};
    if (rt_yaw_validate(update) == RT_OK && strlen(a->edge) <= CRDT_MAX_ID && strlen(a->conn) <= CRDT_MAX_ID) {
        crdt_config_t cfg = {.awareness_ttl_ms = 30000, .idle_ms = 60000};
        crdt_docs_t docs;
        crdt_docs_init(&docs, &cfg, NULL, on_publish, NULL, NULL);
        crdt_doc_t *doc = rt_xcalloc(1, sizeof(*doc));
        strcpy(doc->name, "fuzz");
        rt_map_put(&docs.map, doc->name, strlen(doc->name), doc);
        crdt_doc_awareness(doc, update, a->edge, a->edge_epoch, a->conn, 1);
        crdt_doc_awareness(doc, update, "other", 2, "c", 2); /* echoes change nothing */
        rt_buf_t all = {0};
        if (crdt_doc_awareness_encode(doc, &all) > 0)
            assert(rt_yaw_validate((rt_slice_t){all.data, all.len}) == RT_OK);
        crdt_docs_drop_owner(&docs, doc, a->edge, a->edge_epoch, a->conn);
        rt_buf_dispose(&all);
        crdt_docs_dispose(&docs);
    }
    rtsync__v1__doc_awareness__free_unpacked(a, NULL);
}

static void fuzz_protos(rt_slice_t in)
{
    rtsync__v1__doc_sync_request__free_unpacked(rtsync__v1__doc_sync_request__unpack(NULL, in.len, in.data), NULL);
    rtsync__v1__doc_sync_reply__free_unpacked(rtsync__v1__doc_sync_reply__unpack(NULL, in.len, in.data), NULL);
    rtsync__v1__doc_update_request__free_unpacked(rtsync__v1__doc_update_request__unpack(NULL, in.len, in.data), NULL);
    rtsync__v1__doc_broadcast__free_unpacked(rtsync__v1__doc_broadcast__unpack(NULL, in.len, in.data), NULL);
    rtsync__v1__doc_conn_closed__free_unpacked(rtsync__v1__doc_conn_closed__unpack(NULL, in.len, in.data), NULL);
    rtsync__v1__doc_forward__free_unpacked(rtsync__v1__doc_forward__unpack(NULL, in.len, in.data), NULL);
    rtsync__v1__doc_get_reply__free_unpacked(rtsync__v1__doc_get_reply__unpack(NULL, in.len, in.data), NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    rt_slice_t in = {data + 1, size - 1};
    switch (data[0] % 3) {
    case 0: fuzz_message(in); break;
    case 1: fuzz_awareness(in); break;
    default: fuzz_protos(in);
    }
    return 0;
}
