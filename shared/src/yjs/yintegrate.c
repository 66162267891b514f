/*
 * yintegrate.c: integrating a decoded update into a document, as Yjs 13.6
 * does (encoding.js readUpdateV2 / integrateStructs, Item.js getMissing and
 * integrate with the YATA conflict scan, DeleteSet.js readAndApplyDeleteSet),
 * with pending structs and pending deletes kept for later.
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

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
        if (yid_eq(has_o, it->origin, (o->flags & YF_ORIGIN) != 0, o->origin)) {
            if (o->id.client < it->id.client) {
                left = o;
                pset_clear(&conflicting);
            } else if (yid_eq((it->flags & YF_RORIGIN) != 0, it->rorigin, (o->flags & YF_RORIGIN) != 0,
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
    ydoc_add_struct(doc, t, it);
    ydoc_changed_type(doc, t, it->parent);
    if (it->ref == YC_FORMAT)
        it->parent->has_formatting = true;
    if (it->ref == YC_TYPE) {
        uint64_t tref = 0;
        yreader_t r = yreader_of(it->data, it->size);
        yread_varuint(&r, &tref);
        it->type = ytype_create((uint8_t)tref, it, (uint16_t)(it->parent->depth + 1));
    } else if (it->ref == YC_DELETED) {
        ytxn_add_ds(t, it->id.client, it->id.clock, it->len);
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
    ydoc_add_struct(doc, t, g);
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
        left = ydoc_clean_end(doc, t, s->origin);
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
        left = ydoc_clean_end(doc, t, (yid_t){id.client, id.clock - 1});
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
                          (yref_countable(s->ref) ? YF_COUNTABLE : 0));
    if (offset == 0) {
        yitem_set_data(it, s->content.data, s->content.len);
    } else if (s->ref == YC_STRING) {
        rt_buf_t l = {0}, r = {0};
        ystring_split(s->content.data, s->content.len, offset, &l, &r);
        yitem_set_data(it, r.data, r.len);
        rt_buf_dispose(&l);
        rt_buf_dispose(&r);
    } else if (s->ref == YC_JSON || s->ref == YC_ANY) {
        size_t at = ypayload_skip(s->ref, s->content.data, s->content.len, offset);
        yitem_set_data(it, s->content.data + at, s->content.len - at);
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
            ystore_insert(c, i + 1, ydoc_split(doc, t, s, clock - s->id.clock));
            i++;
        }
        while (i < c->n) {
            s = YS(c, i++);
            if (s->id.clock >= end)
                break;
            if (!yitem_deleted(s)) {
                if (end < s->id.clock + s->len)
                    ystore_insert(c, i, ydoc_split(doc, t, s, end - s->id.clock));
                ydoc_item_delete(doc, t, s);
            }
        }
    }
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
bool yintegrate_update(rt_ydoc_t *doc, ytxn_t *t, const ydecoded_t *d)
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
