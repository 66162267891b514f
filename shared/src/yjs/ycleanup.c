/*
 * ycleanup.c: the end of a transaction (Transaction.js cleanupTransactions):
 * garbage collection of deleted content (Item.gc, ContentType.gc) and merging
 * of adjacent structs (tryToMergeWithLefts, Item.mergeWith).
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

/* Recursion guard for collecting nested types (see yitem.c). */
static _Thread_local int walk_depth;

static bool mergeable_ref(uint8_t ref)
{
    return ref == YC_DELETED || ref == YC_JSON || ref == YC_STRING || ref == YC_ANY;
}

static void item_gc(rt_ydoc_t *doc, yitem_t *it, bool parent_gcd);

/* ContentType.gc: the children become GC structs. */
static void type_gc(rt_ydoc_t *doc, ytype_t *ty)
{
    if (walk_depth > YDOC_MAX_TYPE_DEPTH)
        return; /* left in place: the dead type and its items are freed with the document */
    walk_depth++;
    for (yitem_t *it = ty->start, *next; it; it = next) {
        next = it->right;
        item_gc(doc, it, true);
    }
    ty->start = NULL;
    for (size_t i = 0; i < ty->map.n; i++) {
        for (yitem_t *it = ty->map.entries[i]->cur, *next; it; it = next) {
            next = it->left;
            item_gc(doc, it, true);
        }
        ty->map.entries[i]->cur = NULL;
    }
    walk_depth--;
}

static void item_gc(rt_ydoc_t *doc, yitem_t *it, bool parent_gcd)
{
    if (it->kind != YK_ITEM)
        return;
    if (it->ref == YC_TYPE && it->type) {
        ytype_t *ty = it->type;
        type_gc(doc, ty);
        ty->dead = true;
        ty->item = NULL;
        PUSH(doc->dead_types, doc->n_dead, doc->cap_dead, ty);
        it->type = NULL;
    }
    if (parent_gcd) {
        if (it->psub && it->psub->cur == it)
            it->psub->cur = NULL; /* only for items linked elsewhere by collisions */
        yclient_t *c = ystore_client(doc, it->id.client);
        size_t i = ystore_find_index(c, it->id.clock);
        yitem_t *g = yitem_alloc(doc);
        g->kind = YK_GC;
        g->id = it->id;
        g->len = it->len;
        *ystore_slot(c, i) = g;
        yitem_free(doc, it);
    } else {
        it->ref = YC_DELETED;
        it->flags &= (uint8_t)~YF_COUNTABLE;
        yitem_set_data(it, NULL, 0);
    }
}

/* Item.mergeWith / GC.mergeWith */
static bool merge_with(yitem_t *l, yitem_t *r)
{
    if (l->kind == YK_GC) {
        l->len += r->len;
        return true;
    }
    if (!(r->flags & YF_ORIGIN) || r->origin.client != l->id.client ||
        r->origin.clock != l->id.clock + l->len - 1 || l->right != r ||
        !yid_eq((l->flags & YF_RORIGIN) != 0, l->rorigin, (r->flags & YF_RORIGIN) != 0, r->rorigin) ||
        l->id.client != r->id.client || l->id.clock + l->len != r->id.clock ||
        ((l->flags ^ r->flags) & YF_DELETED) || l->ref != r->ref || !mergeable_ref(l->ref) ||
        (uint64_t)l->size + r->size > UINT32_MAX)
        return false;
    if (l->ref != YC_DELETED)
        yitem_append_data(l, r->data, r->size);
    if (r->flags & YF_KEEP)
        l->flags |= YF_KEEP;
    l->right = r->right;
    if (l->right)
        l->right->left = l;
    l->len += r->len;
    return true;
}

/* tryToMergeWithLefts: returns the number of structs merged away. */
static size_t merge_with_lefts(rt_ydoc_t *doc, yclient_t *c, size_t pos)
{
    yitem_t *right = YS(c, pos);
    yitem_t *left = YS(c, pos - 1);
    size_t i = pos;
    for (; i > 0; right = left, left = i >= 2 ? YS(c, i - 2) : NULL, i--) {
        if (yitem_deleted(left) == yitem_deleted(right) && left->kind == right->kind &&
            merge_with(left, right)) {
            if (right->kind == YK_ITEM && right->psub && right->psub->cur == right)
                right->psub->cur = left;
            yitem_free(doc, right);
            continue;
        }
        break;
    }
    size_t merged = pos - i;
    if (merged)
        ystore_remove(c, pos + 1 - merged, merged);
    return merged;
}

static void gc_delete_set(rt_ydoc_t *doc, const yrange_t *ds, size_t n)
{
    for (size_t k = n; k-- > 0;) {
        yclient_t *c = ystore_client(doc, ds[k].client);
        uint64_t end = ds[k].clock + ds[k].len;
        size_t si = ystore_find_index(c, ds[k].clock);
        if (si == SIZE_MAX)
            continue;
        for (; si < c->n && YS(c, si)->id.clock < end; si++) {
            yitem_t *s = YS(c, si);
            if (s->kind == YK_ITEM && (s->flags & YF_DELETED) && !(s->flags & YF_KEEP))
                item_gc(doc, s, false);
        }
    }
}

static void merge_delete_set(rt_ydoc_t *doc, const yrange_t *ds, size_t n)
{
    for (size_t k = n; k-- > 0;) {
        yclient_t *c = ystore_client(doc, ds[k].client);
        if (!c || c->n == 0)
            continue;
        size_t last = ystore_find_index(c, ds[k].clock + ds[k].len - 1);
        if (last == SIZE_MAX)
            continue;
        size_t si = c->n - 1 < last + 1 ? c->n - 1 : last + 1;
        while (si > 0 && YS(c, si)->id.clock >= ds[k].clock) {
            size_t m = merge_with_lefts(doc, c, si);
            if (si < 1 + m)
                break;
            si -= 1 + m;
        }
    }
}

void ycleanup_txn(rt_ydoc_t *doc, ytxn_t *t)
{
    yds_sort_merge(t->ds, &t->n_ds);
    if (doc->gc)
        gc_delete_set(doc, t->ds, t->n_ds);
    merge_delete_set(doc, t->ds, t->n_ds);
    for (size_t k = 0; k < t->n_before; k++) {
        yclient_t *c = ystore_client(doc, t->before[k].client);
        size_t first = ystore_find_index(c, t->before[k].clock);
        if (first == SIZE_MAX || first < 1)
            first = 1;
        for (size_t i = c->n - 1; i >= first && i < c->n;) {
            size_t m = merge_with_lefts(doc, c, i);
            if (i < 1 + m)
                break;
            i -= 1 + m;
        }
    }
    for (size_t k = t->n_merge; k-- > 0;) {
        yclient_t *c = ystore_client(doc, t->merge[k].client);
        size_t pos = ystore_find_index(c, t->merge[k].clock);
        if (pos == SIZE_MAX)
            continue;
        if (pos + 1 < c->n && merge_with_lefts(doc, c, pos + 1) > 1)
            continue;
        if (pos > 0)
            merge_with_lefts(doc, c, pos);
    }
}
