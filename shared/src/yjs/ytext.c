/*
 * ytext.c: the formatting cleanup Yjs runs after a remote transaction that
 * changed a typed (nested) Y.Text or Y.XmlText with formatting
 * (YText.js cleanupYTextAfterTransaction, cleanupFormattingGap,
 * cleanupContextlessFormattingGap, cleanupYTextFormatting).  It deletes
 * redundant format items in a second transaction, which Yjs broadcasts as a
 * second 'update' event.
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

/* A format attribute: key and JSON value text (the item it came from). */
typedef struct fattr {
    rt_slice_t key, val;
    const yitem_t *src;
} fattr_t;

typedef struct fattrs {
    fattr_t *v;
    size_t n, cap;
} fattrs_t;

static const rt_slice_t JSON_NULL = {(const uint8_t *)"null", 4};

static void format_of(const yitem_t *it, rt_slice_t *key, rt_slice_t *val)
{
    yreader_t r = yreader_of(it->data, it->size);
    yread_bytes(&r, key);
    yread_bytes(&r, val);
}

static bool slice_eq(rt_slice_t a, rt_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* `===` on parsed JSON values: objects and arrays are never equal across items. */
static bool value_same(rt_slice_t a, rt_slice_t b)
{
    if (a.len && (a.data[0] == '{' || a.data[0] == '['))
        return false;
    return slice_eq(a, b);
}

static fattr_t *fattrs_find(fattrs_t *m, rt_slice_t key)
{
    for (size_t i = 0; i < m->n; i++)
        if (slice_eq(m->v[i].key, key))
            return &m->v[i];
    return NULL;
}

/* map.get(key) ?? null */
static rt_slice_t fattrs_get(fattrs_t *m, rt_slice_t key)
{
    fattr_t *a = fattrs_find(m, key);
    return a ? a->val : JSON_NULL;
}

static void fattrs_set(fattrs_t *m, rt_slice_t key, rt_slice_t val, const yitem_t *src)
{
    fattr_t *a = fattrs_find(m, key);
    if (!a) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 4;
            m->v = rt_xrealloc(m->v, m->cap * sizeof *m->v);
        }
        a = &m->v[m->n++];
        a->key = key;
    }
    a->val = val;
    a->src = src;
}

static void fattrs_del(fattrs_t *m, rt_slice_t key)
{
    fattr_t *a = fattrs_find(m, key);
    if (a)
        *a = m->v[--m->n];
}

static void fattrs_copy(fattrs_t *dst, const fattrs_t *src)
{
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++)
        fattrs_set(dst, src->v[i].key, src->v[i].val, src->v[i].src);
}

/* updateCurrentAttributes */
static void update_attrs(fattrs_t *m, const yitem_t *fmt)
{
    rt_slice_t key, val;
    format_of(fmt, &key, &val);
    if (slice_eq(val, JSON_NULL))
        fattrs_del(m, key);
    else
        fattrs_set(m, key, val, fmt);
}

static bool live_item(const yitem_t *it)
{
    return it->kind == YK_ITEM && !(it->flags & YF_DELETED);
}

static bool countable(const yitem_t *it)
{
    return it->kind == YK_ITEM && (it->flags & YF_COUNTABLE);
}

/* cleanupFormattingGap */
static void cleanup_gap(rt_ydoc_t *doc, ytxn_t *t, yitem_t *start, const yitem_t *curr,
                        fattrs_t *start_attrs, fattrs_t *curr_attrs)
{
    yitem_t *end = start;
    fattrs_t end_formats = {0};
    while (end && (!countable(end) || (end->flags & YF_DELETED))) {
        if (live_item(end) && end->ref == YC_FORMAT) {
            rt_slice_t key, val;
            format_of(end, &key, &val);
            fattrs_set(&end_formats, key, val, end);
        }
        end = end->right;
    }
    bool reached = false;
    while (start != end) {
        if (curr == start)
            reached = true;
        if (live_item(start) && start->ref == YC_FORMAT) {
            rt_slice_t key, val;
            format_of(start, &key, &val);
            rt_slice_t start_val = fattrs_get(start_attrs, key);
            fattr_t *ef = fattrs_find(&end_formats, key);
            if (!ef || ef->src != start || value_same(start_val, val)) {
                ydoc_item_delete(doc, t, start);
                if (!reached && value_same(fattrs_get(curr_attrs, key), val) &&
                    !value_same(start_val, val)) {
                    if (slice_eq(start_val, JSON_NULL))
                        fattrs_del(curr_attrs, key);
                    else
                        fattrs_set(curr_attrs, key, start_val, fattrs_find(start_attrs, key)->src);
                }
            }
            if (!reached && !(start->flags & YF_DELETED))
                update_attrs(curr_attrs, start);
        }
        start = start->right;
    }
    free(end_formats.v);
}

/* cleanupContextlessFormattingGap */
static void cleanup_contextless(rt_ydoc_t *doc, ytxn_t *t, yitem_t *item)
{
    while (item && item->right && ((item->right->flags & YF_DELETED) || !countable(item->right)))
        item = item->right;
    fattrs_t seen = {0};
    while (item && ((item->flags & YF_DELETED) || !countable(item))) {
        if (live_item(item) && item->ref == YC_FORMAT) {
            rt_slice_t key, val;
            format_of(item, &key, &val);
            if (fattrs_find(&seen, key))
                ydoc_item_delete(doc, t, item);
            else
                fattrs_set(&seen, key, val, item);
        }
        item = item->left;
    }
    free(seen.v);
}

/* cleanupYTextFormatting */
static void cleanup_full(rt_ydoc_t *doc, ytxn_t *t, ytype_t *type)
{
    yitem_t *start = type->start, *end = type->start;
    fattrs_t start_attrs = {0}, curr_attrs = {0};
    while (end) {
        if (live_item(end)) {
            if (end->ref == YC_FORMAT) {
                update_attrs(&curr_attrs, end);
            } else {
                cleanup_gap(doc, t, start, end, &start_attrs, &curr_attrs);
                fattrs_copy(&start_attrs, &curr_attrs);
                start = end;
            }
        }
        end = end->right;
    }
    free(start_attrs.v);
    free(curr_attrs.v);
}

bool ytext_needs_cleanup(const ytxn_t *t)
{
    for (size_t i = 0; i < t->n_texts; i++) {
        const ytype_t *ty = t->texts[i];
        if (ty->item && !(ty->item->flags & YF_DELETED) && ty->has_formatting)
            return true;
    }
    return false;
}

/* needFullCleanup: types in insertion order, membership by a mark. */
typedef struct tset {
    ytype_t **v;
    size_t n, cap;
    uint64_t mark;
} tset_t;

static bool tset_has(const tset_t *s, const ytype_t *t)
{
    return t->full_cleanup_mark == s->mark;
}

static void tset_add(tset_t *s, ytype_t *t)
{
    if (tset_has(s, t))
        return;
    t->full_cleanup_mark = s->mark;
    PUSH(s->v, s->n, s->cap, t);
}

void ytext_cleanup(rt_ydoc_t *doc, ytxn_t *t, ytxn_t *t2)
{
    tset_t full = {.mark = t2->id};
    /* a format item inserted by the transaction: clean its whole type */
    for (size_t k = 0; k < t->n_before; k++) {
        yclient_t *c = ystore_client(doc, t->before[k].client);
        size_t i = ystore_find_index(c, t->before[k].clock);
        for (; i != SIZE_MAX && i < c->n; i++) {
            yitem_t *it = YS(c, i);
            if (live_item(it) && it->ref == YC_FORMAT)
                tset_add(&full, it->parent);
        }
    }
    /* iterateDeletedStructs over the transaction's delete set */
    for (size_t k = 0; k < t->n_ds; k++) {
        const yrange_t *g = &t->ds[k];
        yclient_t *c = ystore_client(doc, g->client);
        if (!c || c->n == 0 || g->len == 0)
            continue;
        uint64_t end = g->clock + g->len;
        yitem_t *first = ydoc_clean_start(doc, t, (yid_t){g->client, g->clock});
        if (!first)
            continue;
        size_t i = ystore_find_index(c, g->clock);
        while (i < c->n && YS(c, i)->id.clock < end) {
            yitem_t *it = YS(c, i);
            if (end < it->id.clock + it->len)
                ydoc_clean_start(doc, t, (yid_t){g->client, end});
            i++;
            if (it->kind != YK_ITEM || !it->parent->has_formatting || tset_has(&full, it->parent))
                continue;
            if (it->ref == YC_FORMAT)
                tset_add(&full, it->parent);
            else
                cleanup_contextless(doc, t2, it);
        }
    }
    for (size_t i = 0; i < full.n; i++)
        cleanup_full(doc, t2, full.v[i]);
    free(full.v);
}
