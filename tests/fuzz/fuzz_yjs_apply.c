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
 * A second document applies the same stream in kept mode, taking the changes
 * after the updates whose length is odd: it must agree on which updates
 * changed something, and its takes must rebuild it as the events do.
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

static void append_event(rt_buf_t *events, const rt_buf_t *ev)
{
    if (ev->len == 0)
        return;
    rt_buf_append(events, &ev->len, sizeof ev->len);
    rt_buf_append(events, ev->data, ev->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_ydoc_t *doc, *kept;
    rt_ydoc_create(&doc);
    rt_ydoc_create(&kept);
    rt_buf_t changed = {0}, events = {0}, taken = {0}, takes = {0};
    size_t off = 0;
    while (size - off >= 2) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len > size - off)
            len = size - off;
        rt_slice_t u = {data + off, len};
        changed.len = 0;
        int rc = rt_ydoc_apply_update(doc, u, &changed);
        append_event(&events, &changed);
        bool kept_changed = false;
        if (rt_ydoc_apply_update_kept(kept, u, &kept_changed) != rc || kept_changed != (changed.len > 0))
            abort();
        if (len % 2) {
            taken.len = 0;
            rt_ydoc_take_changes(kept, &taken);
            append_event(&takes, &taken);
        }
        off += len;
    }
    taken.len = 0;
    rt_ydoc_take_changes(kept, &taken);
    append_event(&takes, &taken);
    check_copies(doc, &events);
    check_copies(kept, &takes);
    rt_ydoc_destroy(doc);
    rt_ydoc_destroy(kept);
    rt_buf_dispose(&changed);
    rt_buf_dispose(&events);
    rt_buf_dispose(&taken);
    rt_buf_dispose(&takes);
    return 0;
}
