/*
 * ystore.c: the document's storage: per-client struct arrays found by binary
 * search, a pooled item allocator, insertion-ordered key tables (map keys and
 * root names) and types.
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- ordered key tables ----------------------------------------------------- */

static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void table_rehash(ytable_t *t)
{
    size_t cap = t->index_cap ? t->index_cap * 2 : 16;
    free(t->index);
    t->index = rt_xcalloc(cap, sizeof *t->index);
    t->index_cap = cap;
    for (size_t i = 0; i < t->n; i++) {
        size_t h = t->entries[i]->hash & (cap - 1);
        while (t->index[h])
            h = (h + 1) & (cap - 1);
        t->index[h] = (uint32_t)(i + 1);
    }
}

ykey_t *ytable_find(const ytable_t *t, const uint8_t *key, size_t len)
{
    if (!t->index_cap)
        return NULL;
    uint32_t hash = hash_bytes(key, len);
    for (size_t h = hash & (t->index_cap - 1); t->index[h]; h = (h + 1) & (t->index_cap - 1)) {
        ykey_t *k = t->entries[t->index[h] - 1];
        if (k->hash == hash && k->len == len && memcmp(k->bytes, key, len) == 0)
            return k;
    }
    return NULL;
}

ykey_t *ytable_get(ytable_t *t, const uint8_t *key, size_t len)
{
    ykey_t *k = ytable_find(t, key, len);
    if (k)
        return k;
    k = rt_xcalloc(1, sizeof *k + len + 1);
    ymemcpy(k->bytes, key, len);
    k->len = (uint32_t)len;
    k->hash = hash_bytes(key, len);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->entries = rt_xrealloc(t->entries, t->cap * sizeof *t->entries);
    }
    t->entries[t->n++] = k;
    if (t->n * 2 > t->index_cap)
        table_rehash(t);
    else {
        size_t h = k->hash & (t->index_cap - 1);
        while (t->index[h])
            h = (h + 1) & (t->index_cap - 1);
        t->index[h] = (uint32_t)t->n;
    }
    return k;
}

void ytable_dispose(ytable_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->entries[i]);
    free(t->entries);
    free(t->index);
    memset(t, 0, sizeof *t);
}

ytype_t *ytype_create(uint8_t type_ref, yitem_t *item, uint16_t depth)
{
    ytype_t *t = rt_xcalloc(1, sizeof *t);
    t->type_ref = type_ref;
    t->item = item;
    if (item)
        t->item_id = item->id;
    t->depth = depth;
    return t;
}

void ytype_destroy(ytype_t *t)
{
    if (!t)
        return;
    ytable_dispose(&t->map);
    free(t);
}

/* ---- client arrays ------------------------------------------------------- */

/* Clients: an array in arrival order (sorted on demand) and a hash index,
 * so that an update naming many new clients costs O(1) per client. */
static size_t client_slot(uint64_t client, size_t cap)
{
    return (size_t)((client * UINT64_C(0x9e3779b97f4a7c15)) >> 20) & (cap - 1);
}

yclient_t *ystore_client(const rt_ydoc_t *doc, uint64_t client)
{
    if (!doc->cindex_cap)
        return NULL;
    for (size_t h = client_slot(client, doc->cindex_cap);; h = (h + 1) & (doc->cindex_cap - 1)) {
        yclient_t *c = doc->cindex[h];
        if (!c || c->client == client)
            return c;
    }
}

static void cindex_put(rt_ydoc_t *doc, yclient_t *c)
{
    size_t h = client_slot(c->client, doc->cindex_cap);
    while (doc->cindex[h])
        h = (h + 1) & (doc->cindex_cap - 1);
    doc->cindex[h] = c;
}

yclient_t *ystore_client_add(rt_ydoc_t *doc, uint64_t client)
{
    yclient_t *c = ystore_client(doc, client);
    if (c)
        return c;
    if (doc->n_clients == doc->cap_clients) {
        doc->cap_clients = doc->cap_clients ? doc->cap_clients * 2 : 8;
        doc->clients = rt_xrealloc(doc->clients, doc->cap_clients * sizeof *doc->clients);
    }
    c = rt_xcalloc(1, sizeof *c);
    c->client = client;
    doc->clients[doc->n_clients++] = c;
    doc->clients_sorted = doc->n_clients < 2 ||
                          (doc->clients_sorted && doc->clients[doc->n_clients - 2]->client < client);
    if ((doc->n_clients + 1) * 2 > doc->cindex_cap) {
        free(doc->cindex);
        doc->cindex_cap = doc->cindex_cap ? doc->cindex_cap * 2 : 16;
        doc->cindex = rt_xcalloc(doc->cindex_cap, sizeof *doc->cindex);
        for (size_t i = 0; i < doc->n_clients; i++)
            cindex_put(doc, doc->clients[i]);
    } else {
        cindex_put(doc, c);
    }
    return c;
}

static int cmp_client(const void *a, const void *b)
{
    uint64_t x = (*(yclient_t *const *)a)->client, y = (*(yclient_t *const *)b)->client;
    return x < y ? -1 : x > y;
}

void ystore_sort_clients(const rt_ydoc_t *cdoc)
{
    rt_ydoc_t *doc = (rt_ydoc_t *)cdoc; /* the order is a cache, not content */
    if (doc->clients_sorted)
        return;
    ysort(doc->clients, doc->n_clients, sizeof *doc->clients, cmp_client);
    doc->clients_sorted = true;
}

uint64_t ystore_state(const rt_ydoc_t *doc, uint64_t client)
{
    const yclient_t *c = ystore_client(doc, client);
    if (!c || c->n == 0)
        return 0;
    const yitem_t *last = YS(c, c->n - 1);
    return last->id.clock + last->len;
}

size_t ystore_find_index(const yclient_t *c, uint64_t clock)
{
    if (!c || c->n == 0)
        return SIZE_MAX;
    size_t lo = 0, hi = c->n - 1;
    /* the common case: the last struct */
    const yitem_t *last = YS(c, hi);
    if (last->id.clock <= clock)
        return clock < last->id.clock + last->len ? hi : SIZE_MAX;
    while (lo <= hi) {
        size_t mid = (lo + hi) / 2;
        const yitem_t *m = YS(c, mid);
        if (m->id.clock <= clock) {
            if (clock < m->id.clock + m->len)
                return mid;
            lo = mid + 1;
        } else {
            if (mid == 0)
                break;
            hi = mid - 1;
        }
    }
    return SIZE_MAX;
}

yitem_t *ystore_find(const rt_ydoc_t *doc, yid_t id)
{
    const yclient_t *c = ystore_client(doc, id.client);
    size_t i = ystore_find_index(c, id.clock);
    return i == SIZE_MAX ? NULL : YS(c, i);
}

/* Moves the gap to logical position `to`. */
static void move_gap(yclient_t *c, size_t to)
{
    if (c->gap_len == 0) {
        c->gap = to;
        return;
    }
    if (to < c->gap)
        memmove(c->s + to + c->gap_len, c->s + to, (c->gap - to) * sizeof *c->s);
    else if (to > c->gap)
        memmove(c->s + c->gap, c->s + c->gap + c->gap_len, (to - c->gap) * sizeof *c->s);
    c->gap = to;
}

static void grow(yclient_t *c)
{
    c->cap = c->cap ? c->cap * 2 : 8;
    c->s = rt_xrealloc(c->s, c->cap * sizeof *c->s);
}

void ystore_insert(yclient_t *c, size_t at, yitem_t *it)
{
    if (at == c->n && (at >= c->gap || c->gap_len == 0)) {
        if (c->n + c->gap_len == c->cap)
            grow(c);
        if (c->gap_len == 0)
            c->gap = c->n + 1;
        c->s[c->n + c->gap_len] = it;
        c->n++;
        return;
    }
    move_gap(c, at);
    if (c->gap_len == 0) {
        /* open a gap: shift the tail once for many inserts */
        if (c->n == c->cap)
            grow(c);
        size_t want = c->n / 8 > 16 ? c->n / 8 : 16;
        size_t k = c->cap - c->n < want ? c->cap - c->n : want;
        memmove(c->s + at + k, c->s + at, (c->n - at) * sizeof *c->s);
        c->gap_len = k;
    }
    c->s[c->gap] = it;
    c->gap++;
    c->gap_len--;
    c->n++;
}

void ystore_remove(yclient_t *c, size_t at, size_t n)
{
    if (at + n == c->n && at >= c->gap) {
        c->n -= n; /* at the end: the tail grows */
        return;
    }
    move_gap(c, at);
    c->gap_len += n;
    c->n -= n;
}

/* ---- items ------------------------------------------------------------------ */

yitem_t *yitem_alloc(rt_ydoc_t *doc)
{
    if (!doc->free_items) {
        yitem_chunk_t *ch = rt_xmalloc(sizeof *ch);
        ch->next = doc->chunks;
        doc->chunks = ch;
        for (size_t i = 0; i < RT_ARRAY_SIZE(ch->items); i++) {
            ch->items[i].left = doc->free_items;
            doc->free_items = &ch->items[i];
        }
    }
    yitem_t *it = doc->free_items;
    doc->free_items = it->left;
    memset(it, 0, sizeof *it);
    doc->n_items++;
    return it;
}

void yitem_free(rt_ydoc_t *doc, yitem_t *it)
{
    if (it->cap)
        free(it->data);
    it->data = NULL;
    it->cap = 0;
    it->left = doc->free_items;
    doc->free_items = it;
    doc->n_items--;
}

void yitem_view(const yitem_t *it, ystruct_t *s)
{
    memset(s, 0, sizeof *s);
    s->id = it->id;
    s->len = it->len;
    s->kind = it->kind;
    if (it->kind != YK_ITEM)
        return;
    s->ref = it->ref;
    s->has_origin = (it->flags & YF_ORIGIN) != 0;
    s->has_rorigin = (it->flags & YF_RORIGIN) != 0;
    s->origin = it->origin;
    s->rorigin = it->rorigin;
    if (!it->parent->root) {
        s->parent_kind = YP_ID;
        s->parent_id = it->parent->item_id;
    } else {
        s->parent_kind = YP_KEY;
        s->parent_key = (rt_slice_t){it->parent->root->bytes, it->parent->root->len};
    }
    if (it->psub) {
        s->has_psub = true;
        s->psub = (rt_slice_t){it->psub->bytes, it->psub->len};
    }
    s->content = (rt_slice_t){it->data, it->size};
}

size_t ystore_memory(const rt_ydoc_t *doc)
{
    size_t total = sizeof *doc + doc->cap_clients * sizeof *doc->clients +
                   doc->cindex_cap * sizeof *doc->cindex + doc->pending.cap +
                   doc->n_missing * sizeof(yid_t) + doc->n_pending_ds * sizeof(yrange_t);
    for (const yitem_chunk_t *ch = doc->chunks; ch; ch = ch->next)
        total += sizeof *ch;
    for (size_t i = 0; i < doc->n_clients; i++) {
        const yclient_t *c = doc->clients[i];
        total += sizeof *c + c->cap * sizeof *c->s;
        for (size_t j = 0; j < c->n; j++) {
            const yitem_t *it = YS(c, j);
            total += it->cap;
            if (it->type)
                total += sizeof *it->type + it->type->map.cap * sizeof(void *) +
                         it->type->map.index_cap * sizeof(uint32_t) +
                         it->type->map.n * (sizeof(ykey_t) + 16);
        }
    }
    total += doc->roots.n * (sizeof(ykey_t) + sizeof(ytype_t) + 16);
    total += doc->n_dead * sizeof(ytype_t) + doc->cap_dead * sizeof(void *);
    total += doc->dec.cap_structs * sizeof(ystruct_t) + doc->dec.cap_blocks * sizeof(yblock_t) +
             doc->dec.cap_ds * sizeof(yrange_t) + doc->txn.cap_before * sizeof(yid_t) +
             doc->txn.cap_ds * sizeof(yrange_t) + doc->txn.cap_merge * sizeof(yid_t) +
             doc->kept.cap_before * sizeof(yid_t) + doc->kept.cap_ds * sizeof(yrange_t);
    return total;
}
