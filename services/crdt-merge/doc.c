/*
 * doc.c: the loaded documents of this replica (loop thread only).
 *
 * A document is loaded on first use (snapshot + log, store.c) and applies
 * client updates through the engine, which keeps what they changed (a
 * duplicate changes nothing and is neither logged nor broadcast).  At the end
 * of the loop turn the engine encodes the turn's changes as one update, which
 * is broadcast and logged with the writer.  When its log has grown past
 * RT_DOC_COMPACT_UPDATES rows or RT_DOC_COMPACT_BYTES, the engine's encoded
 * state replaces snapshot and log.
 * An idle document without awareness states is unloaded once everything it
 * logged is committed, so that a reload sees all of it.
 *
 * Awareness (yjs-spec 2.4): the current state of every client id, with the
 * Yjs acceptance rule, and the connection that owns it: an id belongs to the
 * connection whose entry was last accepted with a non-null state, and is
 * detached by an accepted null (not only when it is first seen: y-websocket
 * issue 122, a reconnecting client keeps its id and clock).  When the owner
 * goes away, its states are removed for everyone with (id, same clock, null).
 */
#include "crdt.h"
#include "rt/log.h"
#include "rt/pg.h"
#include "rt/yproto.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define MS_NS 1000000ull

void crdt_docs_init(crdt_docs_t *d, const crdt_config_t *cfg, crdt_writer_t *writer, crdt_aw_publish_cb cb,
                    crdt_changes_cb changes, void *ctx)
{
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
    d->writer = writer;
    d->aw_publish = cb;
    d->changes_publish = changes;
    d->ctx = ctx;
}

static void aw_clear(crdt_doc_t *doc)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&doc->aw, &pos)) != NULL) {
        crdt_aw_state_t *s = e->value;
        free(s->state);
        free(s);
    }
    rt_map_dispose(&doc->aw);
}

static void doc_free(crdt_doc_t *doc)
{
    rt_ydoc_destroy(doc->ydoc);
    aw_clear(doc);
    rt_buf_dispose(&doc->acks);
    free(doc);
}

void crdt_docs_dispose(crdt_docs_t *d)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&d->map, &pos)) != NULL)
        doc_free(e->value);
    rt_map_dispose(&d->map);
    PQfinish(d->loader);
    rt_buf_dispose(&d->scratch);
    rt_buf_dispose(&d->merged);
}

crdt_doc_t *crdt_docs_find(crdt_docs_t *d, const char *name)
{
    return rt_map_get(&d->map, name, strlen(name));
}

static int loader_conn(crdt_docs_t *d, PGconn **out)
{
    if (d->loader != NULL && PQstatus(d->loader) == CONNECTION_OK) {
        *out = d->loader;
        return RT_OK;
    }
    PQfinish(d->loader);
    d->loader = NULL;
    int err = rt_pg_connect(d->cfg->database_url, &d->loader);
    if (err == RT_OK)
        *out = d->loader;
    return err;
}

int crdt_docs_get(crdt_docs_t *d, const char *name, crdt_doc_t **out)
{
    crdt_doc_t *doc = crdt_docs_find(d, name);
    if (doc != NULL) {
        doc->last_used_ns = rt_now_mono_ns();
        *out = doc;
        return RT_OK;
    }
    PGconn *conn;
    int err = loader_conn(d, &conn);
    if (err != RT_OK)
        return RT_EUNAVAIL;
    doc = rt_xcalloc(1, sizeof(*doc));
    snprintf(doc->name, sizeof(doc->name), "%s", name);
    rt_ydoc_create(&doc->ydoc);
    uint64_t t0 = rt_now_mono_ns();
    err = crdt_store_load(conn, name, doc->ydoc, &doc->log_rows, &doc->log_bytes, &doc->exists);
    if (err != RT_OK) {
        PQfinish(d->loader);
        d->loader = NULL;
        doc_free(doc);
        return RT_EUNAVAIL;
    }
    RT_LOG_INFO("doc_loaded", "doc=%s log_rows=%lld ms=%.1f memory=%zu", name, (long long)doc->log_rows,
                (double)(rt_now_mono_ns() - t0) / 1e6, rt_ydoc_memory_usage(doc->ydoc));
    doc->last_used_ns = rt_now_mono_ns();
    rt_map_put(&d->map, doc->name, strlen(doc->name), doc);
    *out = doc;
    return RT_OK;
}

static void maybe_compact(crdt_docs_t *d, crdt_doc_t *doc)
{
    if (doc->log_rows < d->cfg->compact_updates && doc->log_bytes < d->cfg->compact_bytes)
        return;
    d->scratch.len = 0;
    rt_ydoc_encode_state_as_update(doc->ydoc, (rt_slice_t){NULL, 0}, &d->scratch);
    doc->last_seq = crdt_writer_compact(d->writer, doc->name, (rt_slice_t){d->scratch.data, d->scratch.len});
    doc->log_rows = 0;
    doc->log_bytes = 0;
}

int crdt_doc_apply(crdt_docs_t *d, crdt_doc_t *doc, rt_slice_t update)
{
    bool changed;
    int err = rt_ydoc_apply_update_kept(doc->ydoc, update, &changed);
    if (err != RT_OK || !changed)
        return err;  /* malformed, or a duplicate */
    doc->exists = 1; /* last_used_ns: crdt_docs_get, once per request */
    if (doc->nchanges++ == 0) {
        doc->next_dirty = d->dirty;
        d->dirty = doc;
    }
    return RT_OK;
}

void crdt_doc_ack_later(crdt_doc_t *doc, const char *reply)
{
    assert(doc->nchanges > 0); /* a broadcast will come */
    rt_buf_append(&doc->acks, reply, strlen(reply) + 1);
    doc->nacks++;
}

void crdt_docs_flush(crdt_docs_t *d)
{
    while (d->dirty != NULL) {
        crdt_doc_t *doc = d->dirty;
        d->dirty = doc->next_dirty;
        doc->next_dirty = NULL;
        d->merged.len = 0; /* the turn's changes, as one update */
        rt_ydoc_take_changes(doc->ydoc, &d->merged);
        rt_slice_t changed = {d->merged.data, d->merged.len};
        d->changes_publish(d->ctx, doc, changed);
        doc->last_seq = crdt_writer_append(d->writer, doc->name, changed);
        doc->log_rows++;
        doc->log_bytes += (int64_t)changed.len;
        doc->nchanges = 0;
        doc->acks.len = 0;
        doc->nacks = 0;
        maybe_compact(d, doc);
    }
}

/* ---- awareness ------------------------------------------------------------------------ */

static crdt_aw_state_t *aw_find(crdt_doc_t *doc, uint64_t client)
{
    return rt_map_get(&doc->aw, (const char *)&client, sizeof(client));
}

void crdt_doc_awareness(crdt_doc_t *doc, rt_slice_t update, const char *edge, uint64_t epoch, const char *conn,
                        uint64_t now_ns)
{
    rt_yaw_reader_t r;
    rt_yaw_entry_t e;
    if (rt_yaw_begin(&r, update) != RT_OK)
        return;
    doc->last_used_ns = now_ns;
    while (rt_yaw_next(&r, &e) == 1) {
        crdt_aw_state_t *s = aw_find(doc, e.client);
        int is_null = rt_yaw_state_is_null(e.state);
        uint64_t curr = s ? s->clock : 0;
        if (!(curr < e.clock || (curr == e.clock && is_null && s != NULL && s->state != NULL)))
            continue; /* not newer: an echo or a stale state */
        if (s == NULL) {
            s = rt_xcalloc(1, sizeof(*s));
            s->client = e.client;
            rt_map_put(&doc->aw, (const char *)&s->client, sizeof(s->client), s);
        }
        s->clock = e.clock;
        s->updated_ns = now_ns;
        free(s->state);
        s->state = NULL;
        s->state_len = 0;
        s->owner_edge[0] = s->owner_conn[0] = '\0';
        s->owner_epoch = 0;
        if (is_null)
            continue;
        s->state = rt_xmalloc(e.state.len ? e.state.len : 1);
        memcpy(s->state, e.state.data, e.state.len);
        s->state_len = e.state.len;
        snprintf(s->owner_edge, sizeof(s->owner_edge), "%s", edge);
        snprintf(s->owner_conn, sizeof(s->owner_conn), "%s", conn);
        s->owner_epoch = epoch;
    }
}

size_t crdt_doc_awareness_encode(const crdt_doc_t *doc, rt_buf_t *out)
{
    size_t n = 0, pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&doc->aw, &pos)) != NULL)
        n += ((crdt_aw_state_t *)e->value)->state != NULL;
    if (n == 0)
        return 0;
    rt_yvar_write(out, n);
    pos = 0;
    while ((e = rt_map_next(&doc->aw, &pos)) != NULL) {
        const crdt_aw_state_t *s = e->value;
        if (s->state != NULL)
            rt_yaw_encode_entry(out, s->client, s->clock, (rt_slice_t){s->state, s->state_len});
    }
    return n;
}

/* Removes the states matching `drop` and publishes one removal update. */
typedef int (*aw_match_cb)(const crdt_aw_state_t *s, const void *arg);

static void drop_matching(crdt_docs_t *d, crdt_doc_t *doc, aw_match_cb match, const void *arg)
{
    rt_buf_t entries = {0};
    size_t n = 0, pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&doc->aw, &pos)) != NULL) {
        crdt_aw_state_t *s = e->value;
        if (s->state == NULL || !match(s, arg))
            continue;
        rt_yaw_encode_entry(&entries, s->client, s->clock, RT_SLICE_LIT("null"));
        free(s->state);
        s->state = NULL;
        s->state_len = 0;
        s->owner_edge[0] = s->owner_conn[0] = '\0';
        n++;
    }
    if (n > 0) {
        rt_buf_t update = {0};
        rt_yvar_write(&update, n);
        rt_buf_append(&update, entries.data, entries.len);
        d->aw_publish(d->ctx, doc, (rt_slice_t){update.data, update.len});
        rt_buf_dispose(&update);
    }
    rt_buf_dispose(&entries);
}

typedef struct owner_key {
    const char *edge, *conn;
    uint64_t epoch;
} owner_key_t;

static int match_owner(const crdt_aw_state_t *s, const void *arg)
{
    const owner_key_t *k = arg;
    return strcmp(s->owner_edge, k->edge) == 0 && s->owner_epoch == k->epoch && strcmp(s->owner_conn, k->conn) == 0;
}

void crdt_docs_drop_owner(crdt_docs_t *d, crdt_doc_t *doc, const char *edge, uint64_t epoch, const char *conn)
{
    owner_key_t k = {edge, conn, epoch};
    drop_matching(d, doc, match_owner, &k);
}

typedef struct sweep_arg {
    uint64_t now_ns, ttl_ns;
    crdt_edge_alive_cb alive;
    void *ctx;
} sweep_arg_t;

/* Stale (no renewal for the awareness TTL; clients renew every 15 s) or owned
 * by a dead edge. */
static int match_gone(const crdt_aw_state_t *s, const void *arg)
{
    const sweep_arg_t *a = arg;
    if (a->now_ns - s->updated_ns > a->ttl_ns)
        return 1;
    return s->owner_edge[0] != '\0' && !a->alive(a->ctx, s->owner_edge, s->owner_epoch);
}

static int has_states(const crdt_doc_t *doc)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&doc->aw, &pos)) != NULL)
        if (((crdt_aw_state_t *)e->value)->state != NULL)
            return 1;
    return 0;
}

void crdt_docs_sweep(crdt_docs_t *d, uint64_t now_ns, crdt_edge_alive_cb alive, void *ctx)
{
    sweep_arg_t arg = {now_ns, (uint64_t)d->cfg->awareness_ttl_ms * MS_NS, alive, ctx};
    uint64_t idle_ns = (uint64_t)d->cfg->idle_ms * MS_NS;
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&d->map, &pos)) != NULL) {
        crdt_doc_t *doc = e->value;
        drop_matching(d, doc, match_gone, &arg);
        int idle = now_ns - doc->last_used_ns > idle_ns && !has_states(doc);
        if ((idle || doc->moving) && doc->last_seq <= d->committed_seq) {
            RT_LOG_DEBUG("doc_unloaded", "doc=%s moving=%d", doc->name, doc->moving);
            rt_map_remove(&d->map, doc->name, strlen(doc->name));
            doc_free(doc);
        }
    }
}
