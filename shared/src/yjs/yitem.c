/*
 * yitem.c: the operations on stored items inside a transaction, as Item.js and
 * StructStore.js do them: appending structs, splitting an item at a clock
 * (getItemCleanStart / getItemCleanEnd / splitItem, with ContentString's
 * U+FFFD repair), deleting items and, recursively, the content of types.
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

uint64_t ydoc_before_state(const rt_ydoc_t *doc, const ytxn_t *t, uint64_t client)
{
    const yclient_t *c = ystore_client(doc, client);
    if (c && c->txn_id == t->id)
        return c->txn_before;
    return ystore_state(doc, client);
}

void ydoc_changed_type(const rt_ydoc_t *doc, ytxn_t *t, ytype_t *type)
{
    const yitem_t *it = type->item;
    if (!it || (type->type_ref != 2 && type->type_ref != 6) || type->changed_txn == t->id)
        return;
    if (it->id.clock < ydoc_before_state(doc, t, it->id.client) && !(it->flags & YF_DELETED)) {
        type->changed_txn = t->id;
        PUSH(t->texts, t->n_texts, t->cap_texts, type);
    }
}

void ytxn_add_ds(ytxn_t *t, uint64_t client, uint64_t clock, uint64_t len)
{
    PUSH(t->ds, t->n_ds, t->cap_ds, ((yrange_t){client, clock, len}));
}

/* addStruct: appends to the client's array, noting the state before. */
void ydoc_add_struct(rt_ydoc_t *doc, ytxn_t *t, yitem_t *it)
{
    yclient_t *c = ystore_client_add(doc, it->id.client);
    if (c->txn_id != t->id) {
        uint64_t st = c->n ? YS(c, c->n - 1)->id.clock + YS(c, c->n - 1)->len : 0;
        c->txn_id = t->id;
        c->txn_before = st;
        PUSH(t->before, t->n_before, t->cap_before, ((yid_t){it->id.client, st}));
    }
    ystore_insert(c, c->n, it);
}

bool yref_countable(uint8_t ref)
{
    return ref != YC_DELETED && ref != YC_FORMAT;
}

void yitem_set_data(yitem_t *it, const uint8_t *p, size_t n)
{
    if (it->cap)
        free(it->data);
    it->data = NULL;
    it->size = it->cap = 0;
    if (n) {
        it->data = rt_xmalloc(n);
        ymemcpy(it->data, p, n);
        it->size = it->cap = (uint32_t)n;
    }
}

void yitem_append_data(yitem_t *it, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (it->size + n > it->cap) {
        size_t cap = it->cap ? it->cap : 16;
        while (cap < it->size + n)
            cap *= 2;
        uint8_t *d = rt_xmalloc(cap);
        ymemcpy(d, it->data, it->size);
        if (it->cap)
            free(it->data);
        it->data = d;
        it->cap = (uint32_t)cap;
    }
    ymemcpy(it->data + it->size, p, n);
    it->size += (uint32_t)n;
}

/* ContentX.splice(diff): the right part goes to `right`, `left` keeps the rest. */
static void splice_content(yitem_t *left, yitem_t *right, uint64_t diff)
{
    switch (left->ref) {
    case YC_STRING: {
        rt_buf_t l = {0}, r = {0};
        ystring_split(left->data, left->size, diff, &l, &r);
        yitem_set_data(left, l.data, l.len);
        yitem_set_data(right, r.data, r.len);
        rt_buf_dispose(&l);
        rt_buf_dispose(&r);
        break;
    }
    case YC_JSON:
    case YC_ANY: {
        size_t at = ypayload_skip(left->ref, left->data, left->size, diff);
        yitem_set_data(right, left->data + at, left->size - at);
        left->size = (uint32_t)at;
        break;
    }
    default:
        break;
    }
}

/* splitItem */
yitem_t *ydoc_split(rt_ydoc_t *doc, ytxn_t *t, yitem_t *l, uint64_t diff)
{
    yitem_t *r = yitem_alloc(doc);
    r->kind = YK_ITEM;
    r->id = (yid_t){l->id.client, l->id.clock + diff};
    r->len = l->len - diff;
    r->left = l;
    r->origin = (yid_t){l->id.client, l->id.clock + diff - 1};
    r->right = l->right;
    r->rorigin = l->rorigin;
    r->parent = l->parent;
    r->psub = l->psub;
    r->ref = l->ref;
    r->flags = (uint8_t)(YF_ORIGIN | (l->flags & (YF_RORIGIN | YF_DELETED | YF_KEEP | YF_COUNTABLE)));
    splice_content(l, r, diff);
    l->right = r;
    if (r->right)
        r->right->left = r;
    PUSH(t->merge, t->n_merge, t->cap_merge, r->id);
    if (r->psub && !r->right)
        r->psub->cur = r;
    l->len = diff;
    return r;
}

/* getItemCleanStart */
yitem_t *ydoc_clean_start(rt_ydoc_t *doc, ytxn_t *t, yid_t id)
{
    yclient_t *c = ystore_client(doc, id.client);
    size_t i = ystore_find_index(c, id.clock);
    if (i == SIZE_MAX)
        return NULL;
    yitem_t *s = YS(c, i);
    if (s->id.clock < id.clock && s->kind == YK_ITEM) {
        yitem_t *r = ydoc_split(doc, t, s, id.clock - s->id.clock);
        ystore_insert(c, i + 1, r);
        return r;
    }
    return s;
}

/* getItemCleanEnd */
yitem_t *ydoc_clean_end(rt_ydoc_t *doc, ytxn_t *t, yid_t id)
{
    yclient_t *c = ystore_client(doc, id.client);
    size_t i = ystore_find_index(c, id.clock);
    if (i == SIZE_MAX)
        return NULL;
    yitem_t *s = YS(c, i);
    if (id.clock != s->id.clock + s->len - 1 && s->kind == YK_ITEM)
        ystore_insert(c, i + 1, ydoc_split(doc, t, s, id.clock - s->id.clock + 1));
    return s;
}


/* ContentType.delete */
/* Recursion guard for deleting and collecting nested types.  Clock collisions
 * can link items into lists other than their parent's, so the nesting seen
 * while walking lists is not bounded by the depth limit at integration. */
static _Thread_local int walk_depth;

static void type_delete(rt_ydoc_t *doc, ytxn_t *t, ytype_t *ty)
{
    if (walk_depth > YDOC_MAX_TYPE_DEPTH)
        return;
    walk_depth++;
    for (yitem_t *it = ty->start; it; it = it->right) {
        if (!(it->flags & YF_DELETED))
            ydoc_item_delete(doc, t, it);
        else if (it->id.clock < ydoc_before_state(doc, t, it->id.client))
            PUSH(t->merge, t->n_merge, t->cap_merge, it->id);
    }
    for (size_t i = 0; i < ty->map.n; i++) {
        yitem_t *it = ty->map.entries[i]->cur;
        if (!it)
            continue;
        if (!(it->flags & YF_DELETED))
            ydoc_item_delete(doc, t, it);
        else if (it->id.clock < ydoc_before_state(doc, t, it->id.client))
            PUSH(t->merge, t->n_merge, t->cap_merge, it->id);
    }
    walk_depth--;
}

/* Item.delete */
void ydoc_item_delete(rt_ydoc_t *doc, ytxn_t *t, yitem_t *it)
{
    if (it->kind != YK_ITEM || (it->flags & YF_DELETED))
        return;
    if ((it->flags & YF_COUNTABLE) && !it->psub)
        it->parent->length -= it->len;
    it->flags |= YF_DELETED;
    ytxn_add_ds(t, it->id.client, it->id.clock, it->len);
    ydoc_changed_type(doc, t, it->parent);
    if (it->ref == YC_TYPE && it->type)
        type_delete(doc, t, it->type);
}
