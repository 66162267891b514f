/*
 * fuzz_yjs_apply.c: libFuzzer target for integration.  The input is a stream
 * of V1 updates, each prefixed by its length as a 2-byte little-endian
 * integer.  They are applied in order to one document (malformed ones are
 * rejected).  Then a copy built from the 'update' events alone must have
 * the document's state vector (what a server broadcasts must be enough to
 * rebuild what it integrated), and the encoded state must be accepted by a
 * fresh document.  Its state vector is not compared: on self-inconsistent
 * input (e.g. an item whose parent disagrees with its origin's) Yjs's own
 * state does not rebuild its document either, and pending structs in the
 * state may integrate in the copy.  Rendering the JSON must not crash.
 */
#include "rt/yjs.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless `copy` has the state vector `sv`. */
static void check_sv(const rt_ydoc_t *copy, const rt_buf_t *sv)
{
    rt_buf_t sv2 = {0};
    rt_ydoc_encode_state_vector(copy, &sv2);
    if (sv->len != sv2.len || memcmp(sv->data, sv2.data, sv->len) != 0)
        abort();
    rt_buf_dispose(&sv2);
}

/* `events` holds the 'update' events, each prefixed by its length (size_t). */
static void check_copies(rt_ydoc_t *doc, const rt_buf_t *events)
{
    rt_buf_t state = {0}, sv = {0}, json = {0};
    rt_ydoc_encode_state_vector(doc, &sv);
    rt_ydoc_t *copy;
    rt_ydoc_create(&copy);
    if (rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &state) != 0)
        abort();
    if (rt_ydoc_apply_update(copy, (rt_slice_t){state.data, state.len}, NULL) != 0)
        abort(); /* our own encoding must be accepted */
    rt_ydoc_destroy(copy);
    rt_ydoc_create(&copy);
    for (size_t off = 0; off < events->len;) {
        size_t len;
        memcpy(&len, events->data + off, sizeof len);
        if (rt_ydoc_apply_update(copy, (rt_slice_t){events->data + off + sizeof len, len}, NULL) != 0)
            abort(); /* our own events must be accepted */
        off += sizeof len + len;
    }
    check_sv(copy, &sv);
    rt_ydoc_destroy(copy);
    (void)rt_ydoc_to_json(doc, NULL, 0, &json); /* may refuse, must not crash */
    rt_buf_dispose(&state);
    rt_buf_dispose(&sv);
    rt_buf_dispose(&json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t changed = {0}, events = {0};
    size_t off = 0;
    while (size - off >= 2) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len > size - off)
            len = size - off;
        changed.len = 0;
        if (rt_ydoc_apply_update(doc, (rt_slice_t){data + off, len}, &changed) == 0 && changed.len > 0) {
            rt_buf_append(&events, &changed.len, sizeof changed.len);
            rt_buf_append(&events, changed.data, changed.len);
        }
        off += len;
    }
    check_copies(doc, &events);
    rt_ydoc_destroy(doc);
    rt_buf_dispose(&changed);
    rt_buf_dispose(&events);
    return 0;
}
