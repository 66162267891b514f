/*
 * ydoc.c: documents: applying an update as one transaction (with Yjs's
 * second, formatting-cleanup transaction when it happens), the 'update'
 * event, and the document-level encoders (state vector, state as update).
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- encoding from the store ----------------------------------------------------- */

/* writeStructs: one client block from `clock` on. */
static void write_client_structs(rt_buf_t *out, const yclient_t *c, uint64_t clock)
{
    if (clock < YS(c, 0)->id.clock)
        clock = YS(c, 0)->id.clock;
    size_t start = ystore_find_index(c, clock);
    ywrite_varuint(out, c->n - start);
    ywrite_varuint(out, c->client);
    ywrite_varuint(out, clock);
    ystruct_t v;
    yitem_view(YS(c, start), &v);
    yenc_struct(out, &v, clock - YS(c, start)->id.clock);
    for (size_t i = start + 1; i < c->n; i++) {
        yitem_view(YS(c, i), &v);
        yenc_struct(out, &v, 0);
    }
}

/* createDeleteSetFromStructStore, written. */
static void write_store_ds(const rt_ydoc_t *doc, rt_buf_t *out)
{
    size_t n_clients = 0;
    rt_buf_t body = {0};
    ystore_sort_clients(doc);
    for (size_t k = doc->n_clients; k-- > 0;) {
        const yclient_t *c = doc->clients[k];
        rt_buf_t ranges = {0};
        size_t n = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (!yitem_deleted(YS(c, i)))
                continue;
            uint64_t clock = YS(c, i)->id.clock, len = YS(c, i)->len;
            while (i + 1 < c->n && yitem_deleted(YS(c, i + 1)))
                len += YS(c, ++i)->len;
            ywrite_varuint(&ranges, clock);
            ywrite_varuint(&ranges, len);
            n++;
        }
        if (n) {
            ywrite_varuint(&body, c->client);
            ywrite_varuint(&body, n);
            rt_buf_append(&body, ranges.data, ranges.len);
            n_clients++;
        }
        rt_buf_dispose(&ranges);
    }
    ywrite_varuint(out, n_clients);
    rt_buf_append(out, body.data, body.len);
    rt_buf_dispose(&body);
}

static void write_state_as_update(const rt_ydoc_t *doc, const ysv_t *sv, rt_buf_t *out)
{
    size_t n = 0;
    for (size_t k = 0; k < doc->n_clients; k++) {
        const yclient_t *c = doc->clients[k];
        if (c->n && ystore_state(doc, c->client) > ysv_get(sv, c->client))
            n++;
    }
    ywrite_varuint(out, n);
    ystore_sort_clients(doc);
    for (size_t k = doc->n_clients; k-- > 0;) {
        const yclient_t *c = doc->clients[k];
        uint64_t clock = ysv_get(sv, c->client);
        if (c->n && ystore_state(doc, c->client) > clock)
            write_client_structs(out, c, clock);
    }
    write_store_ds(doc, out);
}

static int cmp_yid_desc(const void *a, const void *b)
{
    uint64_t x = ((const yid_t *)a)->client, y = ((const yid_t *)b)->client;
    return x > y ? -1 : x < y;
}

/* writeUpdateMessageFromTransaction */
static void write_changed(const rt_ydoc_t *doc, ytxn_t *t, rt_buf_t *out)
{
    if (t->n_ds == 0 && t->n_before == 0)
        return;
    ysort(t->before, t->n_before, sizeof *t->before, cmp_yid_desc);
    ywrite_varuint(out, t->n_before);
    for (size_t k = 0; k < t->n_before; k++)
        write_client_structs(out, ystore_client(doc, t->before[k].client), t->before[k].clock);
    yds_write(out, t->ds, t->n_ds);
}

static void txn_dispose(ytxn_t *t)
{
    free(t->before);
    free(t->ds);
    free(t->merge);
    free(t->texts);
}

/* Adds what transaction `t` changed to doc->kept: each client's state before
 * its first change since the last take, and the deletions. */
static void keep_changes(rt_ydoc_t *doc, const ytxn_t *t)
{
    ytxn_t *k = &doc->kept;
    for (size_t i = 0; i < t->n_before; i++) {
        yclient_t *c = ystore_client(doc, t->before[i].client);
        if (c->kept_epoch != doc->kept_epoch) {
            c->kept_epoch = doc->kept_epoch;
            PUSH(k->before, k->n_before, k->cap_before, t->before[i]);
        }
    }
    for (size_t i = 0; i < t->n_ds; i++)
        PUSH(k->ds, k->n_ds, k->cap_ds, t->ds[i]);
}

/* Ends the transaction (and the formatting cleanup transaction Yjs runs after
 * it, if any); `changed` gets the merge of their 'update' events, or with
 * `keep` they are added to doc->kept. */
static void finish(rt_ydoc_t *doc, ytxn_t *t, rt_buf_t *changed, bool keep)
{
    ytxn_t t2 = {.id = ++doc->txn_counter};
    yds_sort_merge(t->ds, &t->n_ds);
    bool second = ytext_needs_cleanup(t);
    if (second)
        ytext_cleanup(doc, t, &t2);
    ycleanup_txn(doc, t);
    if (keep) {
        keep_changes(doc, t);
        if (second) {
            ycleanup_txn(doc, &t2);
            keep_changes(doc, &t2);
        }
        txn_dispose(&t2);
        return;
    }
    rt_buf_t ev1 = {0}, ev2 = {0};
    if (changed && !second) {
        write_changed(doc, t, changed);
        txn_dispose(&t2);
        return;
    }
    if (changed)
        write_changed(doc, t, &ev1);
    if (second) {
        ycleanup_txn(doc, &t2);
        if (changed)
            write_changed(doc, &t2, &ev2);
    }
    if (changed && ev1.len && ev2.len) {
        rt_slice_t two[2] = {{ev1.data, ev1.len}, {ev2.data, ev2.len}};
        ymerge_updates(two, 2, changed);
    } else if (changed) {
        rt_buf_append(changed, ev1.data, ev1.len);
        rt_buf_append(changed, ev2.data, ev2.len);
    }
    rt_buf_dispose(&ev1);
    rt_buf_dispose(&ev2);
    txn_dispose(&t2);
}

/* Returns whether the document changed. */
static bool apply(rt_ydoc_t *doc, ydecoded_t *d, rt_buf_t *changed, bool keep)
{
    ytxn_t t = doc->txn;
    memset(&doc->txn, 0, sizeof doc->txn);
    t.id = ++doc->txn_counter;
    t.n_before = t.n_ds = t.n_merge = t.n_texts = 0;
    bool retry = yintegrate_update(doc, &t, d);
    while (retry) {
        rt_buf_t pending = doc->pending;
        memset(&doc->pending, 0, sizeof doc->pending);
        doc->has_pending = false;
        ydecoded_t pd;
        if (ydecode_v1((rt_slice_t){pending.data, pending.len}, &pd) < 0) {
            rt_buf_dispose(&pending);
            break;
        }
        retry = yintegrate_update(doc, &t, &pd);
        ydecoded_dispose(&pd);
        rt_buf_dispose(&pending);
    }
    finish(doc, &t, changed, keep);
    bool did = t.n_before || t.n_ds; /* a cleanup transaction only follows changes */
    if (t.cap_before > 256 || t.cap_ds > 256 || t.cap_merge > 256 || t.cap_texts > 256)
        txn_dispose(&t);
    else
        doc->txn = t; /* keep the arrays for the next update */
    return did;
}

/* ---- public API ------------------------------------------------------------------- */

int rt_ydoc_create(rt_ydoc_t **out)
{
    rt_ydoc_t *doc = rt_xcalloc(1, sizeof *doc);
    doc->gc = true;
    doc->kept_epoch = 1; /* clients start at 0: none is kept */
    *out = doc;
    return 0;
}

void rt_ydoc_destroy(rt_ydoc_t *doc)
{
    if (!doc)
        return;
    for (size_t k = 0; k < doc->n_clients; k++) {
        yclient_t *c = doc->clients[k];
        for (size_t i = 0; i < c->n; i++) {
            if (YS(c, i)->cap)
                free(YS(c, i)->data);
            ytype_destroy(YS(c, i)->type);
        }
        free(c->s);
        free(c);
    }
    free(doc->clients);
    free(doc->cindex);
    for (size_t i = 0; i < doc->roots.n; i++)
        ytype_destroy(doc->roots.entries[i]->type);
    for (size_t i = 0; i < doc->n_dead; i++)
        ytype_destroy(doc->dead_types[i]);
    free(doc->dead_types);
    ytable_dispose(&doc->roots);
    while (doc->chunks) {
        yitem_chunk_t *n = doc->chunks->next;
        free(doc->chunks);
        doc->chunks = n;
    }
    rt_buf_dispose(&doc->pending);
    free(doc->missing);
    free(doc->pending_ds);
    ydecoded_dispose(&doc->dec);
    free(doc->scratch.refs);
    free(doc->scratch.stack);
    free(doc->scratch.missing);
    txn_dispose(&doc->txn);
    txn_dispose(&doc->kept);
    free(doc);
}

void rt_ydoc_set_gc(rt_ydoc_t *doc, bool gc)
{
    doc->gc = gc;
}

static int apply_v1(rt_ydoc_t *doc, rt_slice_t update, rt_buf_t *changed, bool keep, bool *did)
{
    if (ydecode_v1_reuse(update, &doc->dec) < 0)
        return RT_EINVAL;
    *did = apply(doc, &doc->dec, changed, keep);
    if (doc->dec.cap_structs > 256 || doc->dec.cap_ds > 256 || doc->dec.cap_blocks > 64)
        ydecoded_dispose(&doc->dec); /* keep only a small scratch */
    else
        ydecoded_clear(&doc->dec);
    return RT_OK;
}

int rt_ydoc_apply_update(rt_ydoc_t *doc, rt_slice_t update, rt_buf_t *changed)
{
    bool did;
    return apply_v1(doc, update, changed, false, &did);
}

int rt_ydoc_apply_update_kept(rt_ydoc_t *doc, rt_slice_t update, bool *changed)
{
    *changed = false;
    return apply_v1(doc, update, NULL, true, changed);
}

void rt_ydoc_take_changes(rt_ydoc_t *doc, rt_buf_t *out)
{
    yds_sort_merge(doc->kept.ds, &doc->kept.n_ds);
    write_changed(doc, &doc->kept, out);
    doc->kept.n_before = doc->kept.n_ds = 0;
    doc->kept_epoch++;
    if (doc->kept.cap_before > 256 || doc->kept.cap_ds > 256) { /* as for doc->txn: a small scratch only */
        txn_dispose(&doc->kept);
        memset(&doc->kept, 0, sizeof doc->kept);
    }
}

int rt_ydoc_apply_update_v2(rt_ydoc_t *doc, rt_slice_t update_v2, rt_buf_t *changed)
{
    ydecoded_t d;
    if (ydecode_v2(update_v2, &d) < 0)
        return RT_EINVAL;
    apply(doc, &d, changed, false);
    ydecoded_dispose(&d);
    return RT_OK;
}

void rt_ydoc_encode_state_vector(const rt_ydoc_t *doc, rt_buf_t *out)
{
    size_t n = 0;
    for (size_t k = 0; k < doc->n_clients; k++)
        n += doc->clients[k]->n > 0;
    ywrite_varuint(out, n);
    ystore_sort_clients(doc);
    for (size_t k = doc->n_clients; k-- > 0;) {
        if (!doc->clients[k]->n)
            continue;
        ywrite_varuint(out, doc->clients[k]->client);
        ywrite_varuint(out, ystore_state(doc, doc->clients[k]->client));
    }
}

int rt_ydoc_encode_state_as_update(rt_ydoc_t *doc, rt_slice_t sv, rt_buf_t *out)
{
    ysv_t v;
    if (ysv_decode(sv, &v) < 0)
        return RT_EINVAL;
    if (!doc->has_pending && !doc->n_pending_ds) {
        write_state_as_update(doc, &v, out);
        ysv_dispose(&v);
        return 0;
    }
    rt_buf_t parts[3] = {{0}};
    size_t n = 0;
    write_state_as_update(doc, &v, &parts[n++]);
    if (doc->n_pending_ds) {
        ywrite_varuint(&parts[n], 0);
        yds_write(&parts[n], doc->pending_ds, doc->n_pending_ds);
        n++;
    }
    if (doc->has_pending) {
        ydecoded_t d;
        if (ydecode_v1((rt_slice_t){doc->pending.data, doc->pending.len}, &d) == 0) {
            if (ydiff_decoded(&d, &v, &parts[n]) == 0)
                n++;
            ydecoded_dispose(&d);
        }
    }
    rt_slice_t s[3];
    for (size_t i = 0; i < n; i++)
        s[i] = (rt_slice_t){parts[i].data, parts[i].len};
    int rc = ymerge_updates(s, n, out);
    for (size_t i = 0; i < 3; i++)
        rt_buf_dispose(&parts[i]);
    ysv_dispose(&v);
    return rc;
}

bool rt_ydoc_has_pending(const rt_ydoc_t *doc)
{
    return doc->has_pending || doc->n_pending_ds > 0;
}

size_t rt_ydoc_memory_usage(const rt_ydoc_t *doc)
{
    return ystore_memory(doc);
}
