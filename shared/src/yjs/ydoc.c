/*
 * ydoc.c: applying updates to a document the way Yjs 13.6 does
 * (encoding.js integrateStructs / readAndApplyDeleteSet, Item.js getMissing,
 * integrate, splitItem, delete, gc, mergeWith, Transaction.js cleanup), and
 * the document-level encoders (state vector, state as update, changed update).
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

static void add_to_ds(ytxn_t *t, uint64_t client, uint64_t clock, uint64_t len)
{
    PUSH(t->ds, t->n_ds, t->cap_ds, ((yrange_t){client, clock, len}));
}

/* addStruct: appends to the client's array, noting the state before. */
static void add_struct(rt_ydoc_t *doc, ytxn_t *t, yitem_t *it)
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

static bool mergeable_ref(uint8_t ref)
{
    return ref == YC_DELETED || ref == YC_JSON || ref == YC_STRING || ref == YC_ANY;
}

static bool countable_ref(uint8_t ref)
{
    return ref != YC_DELETED && ref != YC_FORMAT;
}

static void set_data(yitem_t *it, const uint8_t *p, size_t n)
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

static void append_data(yitem_t *it, const uint8_t *p, size_t n)
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
        set_data(left, l.data, l.len);
        set_data(right, r.data, r.len);
        rt_buf_dispose(&l);
        rt_buf_dispose(&r);
        break;
    }
    case YC_JSON:
    case YC_ANY: {
        size_t at = ypayload_skip(left->ref, left->data, left->size, diff);
        set_data(right, left->data + at, left->size - at);
        left->size = (uint32_t)at;
        break;
    }
    default:
        break;
    }
}

/* splitItem */
static yitem_t *split_item(rt_ydoc_t *doc, ytxn_t *t, yitem_t *l, uint64_t diff)
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
        yitem_t *r = split_item(doc, t, s, id.clock - s->id.clock);
        ystore_insert(c, i + 1, r);
        return r;
    }
    return s;
}

/* getItemCleanEnd */
static yitem_t *item_clean_end(rt_ydoc_t *doc, ytxn_t *t, yid_t id)
{
    yclient_t *c = ystore_client(doc, id.client);
    size_t i = ystore_find_index(c, id.clock);
    if (i == SIZE_MAX)
        return NULL;
    yitem_t *s = YS(c, i);
    if (id.clock != s->id.clock + s->len - 1 && s->kind == YK_ITEM)
        ystore_insert(c, i + 1, split_item(doc, t, s, id.clock - s->id.clock + 1));
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
    add_to_ds(t, it->id.client, it->id.clock, it->len);
    ydoc_changed_type(doc, t, it->parent);
    if (it->ref == YC_TYPE && it->type)
        type_delete(doc, t, it->type);
}

/* ---- integration -------------------------------------------------------------- */

static bool id_eq(bool ha, yid_t a, bool hb, yid_t b)
{
    return ha == hb && (!ha || (a.client == b.client && a.clock == b.clock));
}

/* A pointer set for the conflict scan, cleared in O(1) by bumping a
 * generation (conflictingItems is cleared often). */
typedef struct pset_slot {
    const void *p;
    uint32_t gen;
} pset_slot_t;

typedef struct pset {
    pset_slot_t *v;
    size_t cap, n;
    uint32_t gen;
    pset_slot_t inline_v[16];
} pset_t;

static void pset_init(pset_t *s)
{
    memset(s, 0, sizeof *s);
    s->v = s->inline_v;
    s->cap = RT_ARRAY_SIZE(s->inline_v);
    s->gen = 1;
}

static size_t pset_hash(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(x >> 32) & (cap - 1);
}

static bool pset_has(const pset_t *s, const void *p)
{
    for (size_t h = pset_hash(p, s->cap);; h = (h + 1) & (s->cap - 1)) {
        if (s->v[h].gen != s->gen)
            return false;
        if (s->v[h].p == p)
            return true;
    }
}

static void pset_add(pset_t *s, const void *p);

static void pset_grow(pset_t *s)
{
    pset_slot_t *old = s->v;
    size_t old_cap = s->cap;
    uint32_t gen = s->gen;
    s->cap *= 2;
    s->v = rt_xcalloc(s->cap, sizeof *s->v);
    s->n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].gen == gen)
            pset_add(s, old[i].p);
    if (old != s->inline_v)
        free(old);
}

static void pset_add(pset_t *s, const void *p)
{
    if ((s->n + 1) * 2 > s->cap)
        pset_grow(s);
    size_t h = pset_hash(p, s->cap);
    while (s->v[h].gen == s->gen) {
        if (s->v[h].p == p)
            return;
        h = (h + 1) & (s->cap - 1);
    }
    s->v[h] = (pset_slot_t){p, s->gen};
    s->n++;
}

static void pset_clear(pset_t *s)
{
    s->gen++;
    s->n = 0;
    if (s->gen == 0) { /* wrapped: really clear */
        memset(s->v, 0, s->cap * sizeof *s->v);
        s->gen = 1;
    }
}

static void pset_dispose(pset_t *s)
{
    if (s->v != s->inline_v)
        free(s->v);
}

/* The conflict scan of Item.integrate; returns the resolved left. */
static yitem_t *resolve_conflicts(rt_ydoc_t *doc, yitem_t *it, yitem_t *left, yitem_t *right)
{
    yitem_t *o;
    if (left)
        o = left->right;
    else if (it->psub) {
        o = it->psub->cur;
        while (o && o->left)
            o = o->left;
    } else {
        o = it->parent->start;
    }
    pset_t before, conflicting;
    pset_init(&before);
    pset_init(&conflicting);
    bool has_o = it->flags & YF_ORIGIN;
    while (o && o != right) {
        pset_add(&before, o);
        pset_add(&conflicting, o);
        if (id_eq(has_o, it->origin, (o->flags & YF_ORIGIN) != 0, o->origin)) {
            if (o->id.client < it->id.client) {
                left = o;
                pset_clear(&conflicting);
            } else if (id_eq((it->flags & YF_RORIGIN) != 0, it->rorigin, (o->flags & YF_RORIGIN) != 0,
                             o->rorigin)) {
                break;
            }
        } else if (o->flags & YF_ORIGIN) {
            yitem_t *oo = ystore_find(doc, o->origin);
            if (oo && pset_has(&before, oo)) {
                if (!pset_has(&conflicting, oo)) {
                    left = o;
                    pset_clear(&conflicting);
                }
            } else {
                break;
            }
        } else {
            break;
        }
        o = o->right;
    }
    pset_dispose(&before);
    pset_dispose(&conflicting);
    return left;
}

/* Links an item with a resolved parent into its list (rest of Item.integrate). */
static void integrate_item(rt_ydoc_t *doc, ytxn_t *t, yitem_t *it)
{
    yitem_t *left = it->left, *right = it->right;
    if ((!left && (!right || right->left)) || (left && left->right != right))
        left = resolve_conflicts(doc, it, left, right);
    it->left = left;
    if (left) {
        it->right = left->right;
        left->right = it;
    } else {
        yitem_t *r;
        if (it->psub) {
            r = it->psub->cur;
            while (r && r->left)
                r = r->left;
        } else {
            r = it->parent->start;
            it->parent->start = it;
        }
        it->right = r;
    }
    if (it->right) {
        it->right->left = it;
    } else if (it->psub) {
        it->psub->cur = it;
        if (it->left)
            ydoc_item_delete(doc, t, it->left);
    }
    if (!it->psub && (it->flags & YF_COUNTABLE) && !(it->flags & YF_DELETED))
        it->parent->length += it->len;
    add_struct(doc, t, it);
    ydoc_changed_type(doc, t, it->parent);
    if (it->ref == YC_FORMAT)
        it->parent->has_formatting = true;
    if (it->ref == YC_TYPE) {
        uint64_t tref = 0;
        yreader_t r = yreader_of(it->data, it->size);
        yread_varuint(&r, &tref);
        it->type = ytype_create((uint8_t)tref, it, (uint16_t)(it->parent->depth + 1));
    } else if (it->ref == YC_DELETED) {
        add_to_ds(t, it->id.client, it->id.clock, it->len);
        it->flags |= YF_DELETED;
    }
    if (it->parent->dead || (it->parent->item && (it->parent->item->flags & YF_DELETED)) ||
        (it->psub && it->right))
        ydoc_item_delete(doc, t, it);
}

static void integrate_gc(rt_ydoc_t *doc, ytxn_t *t, yid_t id, uint64_t len)
{
    yitem_t *g = yitem_alloc(doc);
    g->kind = YK_GC;
    g->id = id;
    g->len = len;
    add_struct(doc, t, g);
}

static ytype_t *root_type(rt_ydoc_t *doc, rt_slice_t name)
{
    ykey_t *k = ytable_get(&doc->roots, name.data, name.len);
    if (!k->type) {
        k->type = ytype_create(255, NULL, 0);
        k->type->root = k;
    }
    return k->type;
}

/* Item.getMissing: the client whose struct is missing, or -1.  Every
 * dependency is checked (also the own client's), so hostile references never
 * reach a failed lookup. */
static int64_t get_missing(const rt_ydoc_t *doc, const ystruct_t *s)
{
    if (s->has_origin && s->origin.clock >= ystore_state(doc, s->origin.client))
        return (int64_t)s->origin.client;
    if (s->has_rorigin && s->rorigin.clock >= ystore_state(doc, s->rorigin.client))
        return (int64_t)s->rorigin.client;
    if (s->parent_kind == YP_ID && s->parent_id.clock >= ystore_state(doc, s->parent_id.client))
        return (int64_t)s->parent_id.client;
    return -1;
}

/* Resolves references (the second half of getMissing) and integrates a
 * decoded struct with `offset` (Item.integrate / GC.integrate).  Runs the
 * reference resolution (and its splits) even when nothing is integrated. */
static void integrate_struct(rt_ydoc_t *doc, ytxn_t *t, const ystruct_t *s, uint64_t offset,
                             bool apply)
{
    if (s->kind == YK_GC) {
        if (apply)
            integrate_gc(doc, t, (yid_t){s->id.client, s->id.clock + offset}, s->len - offset);
        return;
    }
    yitem_t *left = NULL, *right = NULL;
    yid_t origin = s->origin, rorigin = s->rorigin;
    if (s->has_origin) {
        left = item_clean_end(doc, t, s->origin);
        origin = (yid_t){left->id.client, left->id.clock + left->len - 1};
    }
    if (s->has_rorigin) {
        right = ydoc_clean_start(doc, t, s->rorigin);
        rorigin = right->id;
    }
    ytype_t *parent = NULL;
    ykey_t *psub = NULL;
    bool gc = false;
    if ((left && left->kind == YK_GC) || (right && right->kind == YK_GC)) {
        gc = true;
    } else if (s->parent_kind == YP_NONE) {
        yitem_t *from = left ? left : right;
        if (from) {
            parent = from->parent;
            psub = from->psub;
        }
    } else if (s->parent_kind == YP_ID) {
        yitem_t *p = ystore_find(doc, s->parent_id);
        if (p && p->kind == YK_ITEM && p->ref == YC_TYPE && p->type)
            parent = p->type;
    } else {
        parent = root_type(doc, s->parent_key);
    }
    if (!apply)
        return;
    if (!gc && parent && s->parent_kind != YP_NONE && s->has_psub)
        psub = ytable_get(&parent->map, s->psub.data, s->psub.len);
    yid_t id = {s->id.client, s->id.clock + offset};
    uint64_t len = s->len - offset;
    bool has_origin = s->has_origin;
    if (offset > 0) {
        left = item_clean_end(doc, t, (yid_t){id.client, id.clock - 1});
        origin = (yid_t){left->id.client, left->id.clock + left->len - 1};
        has_origin = true;
        if (left->kind == YK_GC)
            parent = NULL;
    }
    if (!parent || gc || (s->ref == YC_TYPE && parent->depth >= YDOC_MAX_TYPE_DEPTH)) {
        integrate_gc(doc, t, id, len);
        return;
    }
    yitem_t *it = yitem_alloc(doc);
    it->kind = YK_ITEM;
    it->id = id;
    it->len = len;
    it->left = left;
    it->right = right;
    it->origin = origin;
    it->rorigin = rorigin;
    it->parent = parent;
    it->psub = psub;
    it->ref = s->ref;
    it->flags = (uint8_t)((has_origin ? YF_ORIGIN : 0) | (s->has_rorigin ? YF_RORIGIN : 0) |
                          (countable_ref(s->ref) ? YF_COUNTABLE : 0));
    if (offset == 0) {
        set_data(it, s->content.data, s->content.len);
    } else if (s->ref == YC_STRING) {
        rt_buf_t l = {0}, r = {0};
        ystring_split(s->content.data, s->content.len, offset, &l, &r);
        set_data(it, r.data, r.len);
        rt_buf_dispose(&l);
        rt_buf_dispose(&r);
    } else if (s->ref == YC_JSON || s->ref == YC_ANY) {
        size_t at = ypayload_skip(s->ref, s->content.data, s->content.len, offset);
        set_data(it, s->content.data + at, s->content.len - at);
    }
    integrate_item(doc, t, it);
}

/* ---- integrateStructs ----------------------------------------------------------- */

typedef struct yrefs {
    uint64_t client;
    const ystruct_t *refs;
    size_t n, i;
    size_t order;           /* block index, for "a later block wins" */
    const ystruct_t *rest;  /* restStructs entry */
    size_t n_rest;
} yrefs_t;

typedef struct yintegrator {
    rt_ydoc_t *doc;
    ytxn_t *txn;
    yrefs_t *refs; /* sorted by client */
    size_t n_refs, cap_refs;
    size_t n_ids; /* clientsStructRefsIds = clients of refs[0..n_ids), ascending */
    const ystruct_t **stack;
    size_t n_stack, cap_stack;
    size_t n_rest;
    yid_t *missing; /* appended; reduced to the minimum per client */
    size_t n_missing, cap_missing;
} yintegrator_t;

static yrefs_t *refs_get(yintegrator_t *g, uint64_t client)
{
    size_t lo = 0, hi = g->n_refs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->refs[mid].client < client)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->n_refs && g->refs[lo].client == client ? &g->refs[lo] : NULL;
}

static void update_missing(yintegrator_t *g, uint64_t client, uint64_t clock)
{
    PUSH(g->missing, g->n_missing, g->cap_missing, ((yid_t){client, clock}));
}

static void rest_set(yintegrator_t *g, yrefs_t *r, const ystruct_t *refs, size_t n)
{
    if (!r->rest)
        g->n_rest++;
    r->rest = refs;
    r->n_rest = n;
}

/* addStackToRestSS.  A client moved to the rest counts as exhausted (its refs
 * are emptied), which also takes it out of clientsStructRefsIds. */
static void stack_to_rest(yintegrator_t *g)
{
    for (size_t k = 0; k < g->n_stack; k++) {
        const ystruct_t *s = g->stack[k];
        yrefs_t *r = refs_get(g, s->id.client);
        if (r->n > 0) {
            r->i--;
            rest_set(g, r, r->refs + r->i, r->n - r->i);
            r->refs = NULL;
            r->n = r->i = 0;
        } else {
            rest_set(g, r, s, 1);
        }
    }
    g->n_stack = 0;
}

static yrefs_t *next_target(yintegrator_t *g)
{
    while (g->n_ids > 0) {
        yrefs_t *r = &g->refs[g->n_ids - 1];
        if (r->i < r->n)
            return r;
        g->n_ids--;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_refs(const void *a, const void *b)
{
    const yrefs_t *x = a, *y = b;
    int c = cmp_u64(&x->client, &y->client);
    return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

/* Builds clientsStructRefs: a later block of the same client replaces an
 * earlier one (Map.set). */
static void build_refs(yintegrator_t *g, const ydecoded_t *d)
{
    if (g->cap_refs < d->n_blocks) {
        free(g->refs);
        g->cap_refs = d->n_blocks;
        g->refs = rt_xcalloc(g->cap_refs, sizeof *g->refs);
    }
    for (size_t b = 0; b < d->n_blocks; b++) {
        const yblock_t *bl = &d->blocks[b];
        g->refs[b] = (yrefs_t){.client = bl->client, .refs = d->structs ? d->structs + bl->first : NULL, .n = bl->n, .order = b};
    }
    ysort(g->refs, d->n_blocks, sizeof *g->refs, cmp_refs);
    size_t m = 0;
    for (size_t b = 0; b < d->n_blocks; b++) {
        if (m > 0 && g->refs[m - 1].client == g->refs[b].client)
            g->refs[m - 1] = g->refs[b];
        else
            g->refs[m++] = g->refs[b];
    }
    g->n_refs = g->n_ids = m;
}

static void integrate_structs(yintegrator_t *g, const ydecoded_t *d)
{
    rt_ydoc_t *doc = g->doc;
    build_refs(g, d);
    yrefs_t *cur = next_target(g);
    if (!cur)
        return;
    const ystruct_t *head = &cur->refs[cur->i++];
    for (;;) {
        if (head->kind != YK_SKIP) {
            uint64_t local = ystore_state(doc, head->id.client);
            if (local < head->id.clock) {
                PUSH(g->stack, g->n_stack, g->cap_stack, head);
                update_missing(g, head->id.client, head->id.clock - 1);
                stack_to_rest(g);
            } else {
                int64_t missing = head->kind == YK_ITEM ? get_missing(doc, head) : -1;
                if (missing >= 0) {
                    PUSH(g->stack, g->n_stack, g->cap_stack, head);
                    yrefs_t *r = refs_get(g, (uint64_t)missing);
                    if (!r || r->i == r->n) {
                        update_missing(g, (uint64_t)missing, ystore_state(doc, (uint64_t)missing));
                        stack_to_rest(g);
                    } else {
                        head = &r->refs[r->i++];
                        continue;
                    }
                } else {
                    uint64_t offset = local - head->id.clock;
                    integrate_struct(doc, g->txn, head, offset, offset < head->len);
                }
            }
        }
        if (g->n_stack > 0) {
            head = g->stack[--g->n_stack];
        } else if (cur && cur->i < cur->n) {
            head = &cur->refs[cur->i++];
        } else {
            cur = next_target(g);
            if (!cur)
                break;
            head = &cur->refs[cur->i++];
        }
    }
}

/* writeClientsStructs(restStructs) + an empty delete set. */
static void encode_rest(yintegrator_t *g, rt_buf_t *out)
{
    ywrite_varuint(out, g->n_rest);
    for (size_t i = g->n_refs; i-- > 0;) {
        const yrefs_t *r = &g->refs[i];
        if (!r->rest)
            continue;
        ywrite_varuint(out, r->n_rest);
        ywrite_varuint(out, r->client);
        ywrite_varuint(out, r->rest[0].id.clock);
        for (size_t k = 0; k < r->n_rest; k++)
            yenc_struct(out, &r->rest[k], 0);
    }
    ywrite_varuint(out, 0);
}

/* Keeps small arrays for the next update; large ones are freed. */
static void integrator_dispose(yintegrator_t *g)
{
    rt_ydoc_t *doc = g->doc;
    if (g->cap_refs > 256 || g->cap_stack > 256 || g->cap_missing > 256) {
        free(g->refs);
        free(g->stack);
        free(g->missing);
        memset(&doc->scratch, 0, sizeof doc->scratch);
        return;
    }
    doc->scratch = (yscratch_t){g->refs, g->cap_refs, g->stack, g->cap_stack, g->missing, g->cap_missing};
}

/* ---- delete sets ------------------------------------------------------------------ */

/* readAndApplyDeleteSet: returns the ranges that could not be applied. */
static void apply_ds(rt_ydoc_t *doc, ytxn_t *t, const yrange_t *ds, size_t n, yrange_t **rest,
                     size_t *n_rest)
{
    size_t cap = 0;
    *rest = NULL;
    *n_rest = 0;
    for (size_t k = 0; k < n; k++) {
        const yrange_t *g = &ds[k];
        uint64_t state = ystore_state(doc, g->client);
        uint64_t clock = g->clock, end = g->clock + g->len;
        if (clock >= state) {
            PUSH(*rest, *n_rest, cap, *g);
            continue;
        }
        if (state < end)
            PUSH(*rest, *n_rest, cap, ((yrange_t){g->client, state, end - state}));
        yclient_t *c = ystore_client(doc, g->client);
        size_t i = ystore_find_index(c, clock);
        yitem_t *s = YS(c, i);
        if (!yitem_deleted(s) && s->id.clock < clock) {
            ystore_insert(c, i + 1, split_item(doc, t, s, clock - s->id.clock));
            i++;
        }
        while (i < c->n) {
            s = YS(c, i++);
            if (s->id.clock >= end)
                break;
            if (!yitem_deleted(s)) {
                if (end < s->id.clock + s->len)
                    ystore_insert(c, i, split_item(doc, t, s, end - s->id.clock));
                ydoc_item_delete(doc, t, s);
            }
        }
    }
}

/* ---- transaction cleanup: gc and merging ----------------------------------------------- */

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
        set_data(it, NULL, 0);
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
        !id_eq((l->flags & YF_RORIGIN) != 0, l->rorigin, (r->flags & YF_RORIGIN) != 0, r->rorigin) ||
        l->id.client != r->id.client || l->id.clock + l->len != r->id.clock ||
        ((l->flags ^ r->flags) & YF_DELETED) || l->ref != r->ref || !mergeable_ref(l->ref) ||
        (uint64_t)l->size + r->size > UINT32_MAX)
        return false;
    if (l->ref != YC_DELETED)
        append_data(l, r->data, r->size);
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

static void cleanup(rt_ydoc_t *doc, ytxn_t *t)
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

/* ---- applying ------------------------------------------------------------------ */

static int cmp_yid(const void *a, const void *b)
{
    const yid_t *x = a, *y = b;
    if (x->client != y->client)
        return x->client < y->client ? -1 : 1;
    return x->clock < y->clock ? -1 : x->clock > y->clock;
}

/* pending.missing: the minimum clock per client. */
static void merge_missing(rt_ydoc_t *doc, const yid_t *m, size_t n)
{
    doc->missing = rt_xrealloc(doc->missing, (doc->n_missing + n + 1) * sizeof *doc->missing);
    ymemcpy(doc->missing + doc->n_missing, m, n * sizeof *m);
    n += doc->n_missing;
    ysort(doc->missing, n, sizeof *doc->missing, cmp_yid);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || doc->missing[k - 1].client != doc->missing[i].client)
            doc->missing[k++] = doc->missing[i];
    doc->n_missing = k;
}

/* readUpdateV2 minus the retry; returns whether the pending structs should be retried. */
static bool apply_decoded(rt_ydoc_t *doc, ytxn_t *t, const ydecoded_t *d)
{
    for (size_t i = 0; i < d->n_structs; i++)
        if (d->structs[i].kind == YK_ITEM && d->structs[i].parent_kind == YP_KEY)
            root_type(doc, d->structs[i].parent_key);
    yintegrator_t g = {.doc = doc,
                       .txn = t,
                       .refs = doc->scratch.refs,
                       .cap_refs = doc->scratch.cap_refs,
                       .stack = doc->scratch.stack,
                       .cap_stack = doc->scratch.cap_stack,
                       .missing = doc->scratch.missing,
                       .cap_missing = doc->scratch.cap_missing};
    memset(&doc->scratch, 0, sizeof doc->scratch);
    integrate_structs(&g, d);
    bool retry = false;
    if (doc->has_pending) {
        for (size_t i = 0; i < doc->n_missing && !retry; i++)
            retry = doc->missing[i].clock < ystore_state(doc, doc->missing[i].client);
        if (g.n_rest) {
            merge_missing(doc, g.missing, g.n_missing);
            rt_buf_t rest = {0}, merged = {0};
            encode_rest(&g, &rest);
            rt_slice_t two[2] = {{doc->pending.data, doc->pending.len}, {rest.data, rest.len}};
            if (ymerge_updates(two, 2, &merged) == 0) {
                rt_buf_dispose(&doc->pending);
                doc->pending = merged;
            }
            rt_buf_dispose(&rest);
        }
    } else if (g.n_rest) {
        doc->has_pending = true;
        doc->pending.len = 0;
        encode_rest(&g, &doc->pending);
        free(doc->missing);
        doc->missing = NULL;
        doc->n_missing = 0;
        merge_missing(doc, g.missing, g.n_missing);
    }
    integrator_dispose(&g);

    yrange_t *rest1, *rest2 = NULL;
    size_t n1, n2 = 0;
    apply_ds(doc, t, d->ds, d->n_ds, &rest1, &n1);
    if (doc->n_pending_ds) {
        apply_ds(doc, t, doc->pending_ds, doc->n_pending_ds, &rest2, &n2);
        free(doc->pending_ds);
        rest1 = rt_xrealloc(rest1, (n1 + n2 + 1) * sizeof *rest1);
        if (n2)
            ymemcpy(rest1 + n1, rest2, n2 * sizeof *rest2);
        n1 += n2;
        free(rest2);
    }
    yds_sort_merge(rest1, &n1);
    doc->pending_ds = rest1;
    doc->n_pending_ds = n1;
    if (!n1) {
        free(rest1);
        doc->pending_ds = NULL;
    }
    return retry;
}

static void txn_dispose(ytxn_t *t)
{
    free(t->before);
    free(t->ds);
    free(t->merge);
    free(t->texts);
}

/* Ends the transaction (and the formatting cleanup transaction Yjs runs after
 * it, if any); `changed` gets the merge of their 'update' events. */
static void finish(rt_ydoc_t *doc, ytxn_t *t, rt_buf_t *changed)
{
    ytxn_t t2 = {.id = ++doc->txn_counter};
    yds_sort_merge(t->ds, &t->n_ds);
    bool second = ytext_needs_cleanup(t);
    if (second)
        ytext_cleanup(doc, t, &t2);
    cleanup(doc, t);
    rt_buf_t ev1 = {0}, ev2 = {0};
    if (changed && !second) {
        write_changed(doc, t, changed);
        txn_dispose(&t2);
        return;
    }
    if (changed)
        write_changed(doc, t, &ev1);
    if (second) {
        cleanup(doc, &t2);
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

static int apply(rt_ydoc_t *doc, ydecoded_t *d, rt_buf_t *changed)
{
    ytxn_t t = doc->txn;
    memset(&doc->txn, 0, sizeof doc->txn);
    t.id = ++doc->txn_counter;
    t.n_before = t.n_ds = t.n_merge = t.n_texts = 0;
    bool retry = apply_decoded(doc, &t, d);
    while (retry) {
        rt_buf_t pending = doc->pending;
        memset(&doc->pending, 0, sizeof doc->pending);
        doc->has_pending = false;
        ydecoded_t pd;
        if (ydecode_v1((rt_slice_t){pending.data, pending.len}, &pd) < 0) {
            rt_buf_dispose(&pending);
            break;
        }
        retry = apply_decoded(doc, &t, &pd);
        ydecoded_dispose(&pd);
        rt_buf_dispose(&pending);
    }
    finish(doc, &t, changed);
    if (t.cap_before > 256 || t.cap_ds > 256 || t.cap_merge > 256 || t.cap_texts > 256)
        txn_dispose(&t);
    else
        doc->txn = t; /* keep the arrays for the next update */
    return 0;
}

/* ---- public API ------------------------------------------------------------------- */

int rt_ydoc_create(rt_ydoc_t **out)
{
    rt_ydoc_t *doc = rt_xcalloc(1, sizeof *doc);
    doc->gc = true;
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
    free(doc);
}

void rt_ydoc_set_gc(rt_ydoc_t *doc, bool gc)
{
    doc->gc = gc;
}

int rt_ydoc_apply_update(rt_ydoc_t *doc, rt_slice_t update, rt_buf_t *changed)
{
    if (ydecode_v1_reuse(update, &doc->dec) < 0)
        return RT_EINVAL;
    int rc = apply(doc, &doc->dec, changed);
    if (doc->dec.cap_structs > 256 || doc->dec.cap_ds > 256 || doc->dec.cap_blocks > 64)
        ydecoded_dispose(&doc->dec); /* keep only a small scratch */
    else
        ydecoded_clear(&doc->dec);
    return rc;
}

int rt_ydoc_apply_update_v2(rt_ydoc_t *doc, rt_slice_t update_v2, rt_buf_t *changed)
{
    ydecoded_t d;
    if (ydecode_v2(update_v2, &d) < 0)
        return RT_EINVAL;
    int rc = apply(doc, &d, changed);
    ydecoded_dispose(&d);
    return rc;
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
