/*
 * ydoc_int.h: the in-memory document model (struct store, items, types,
 * ordered key tables) shared by ydoc.c, ystore.c and yjson.c.
 */
#ifndef RT_YDOC_INT_H
#define RT_YDOC_INT_H

#include "yjs_int.h"

/* Types nested deeper than this are integrated as GC (recursion guard). */
#define YDOC_MAX_TYPE_DEPTH 512

enum {
    YF_DELETED = 1,
    YF_KEEP = 2,
    YF_COUNTABLE = 4,
    YF_ORIGIN = 8,
    YF_RORIGIN = 16,
};

struct yitem;
struct ytype;

/* An entry of an insertion-ordered table: a map key or a root name. */
typedef struct ykey {
    struct yitem *cur;  /* map: the rightmost item of the key (current value) */
    struct ytype *type; /* roots: the root type */
    uint32_t len;
    uint32_t hash;
    uint8_t bytes[]; /* len bytes, then NUL */
} ykey_t;

typedef struct ytable {
    ykey_t **entries;
    size_t n, cap;
    uint32_t *index; /* open addressing: entry index + 1, 0 = empty */
    size_t index_cap;
} ytable_t;

typedef struct ytype {
    struct yitem *item; /* NULL for a root and for a collected type */
    ykey_t *root;       /* root name (roots only) */
    yid_t item_id;      /* the id of the item holding a nested type */
    bool dead;          /* collected: kept (empty) until the document goes, since
                           items linked elsewhere by clock collisions may still
                           name it as their parent */
    struct yitem *start;
    ytable_t map;
    uint64_t length;
    uint8_t type_ref; /* 0..6, 255 for roots */
    bool has_formatting; /* a format item was ever integrated (YText._hasFormatting) */
    uint64_t changed_txn; /* transaction that listed it as changed */
    uint64_t full_cleanup_mark; /* formatting cleanup that listed it */
    uint16_t depth;
} ytype_t;

/* A struct of the store: an Item or a GC range. */
typedef struct yitem {
    yid_t id;
    uint64_t len;
    struct yitem *left, *right;
    yid_t origin, rorigin;
    ytype_t *parent;
    ykey_t *psub;
    uint8_t *data; /* content payload (see ystruct_t), owned */
    uint32_t size, cap;
    ytype_t *type; /* ContentType */
    uint8_t kind;  /* YK_ITEM or YK_GC */
    uint8_t ref;
    uint8_t flags;
} yitem_t;

/* A client's structs in clock order: a gap buffer (edits cluster in one
 * place of the array while new structs are appended at the end). */
typedef struct yclient {
    uint64_t client;
    yitem_t **s;
    size_t n, cap;
    size_t gap, gap_len; /* logical position and length of the gap */
    uint64_t txn_before; /* state when transaction txn_id first added to it */
    uint64_t txn_id;
    uint64_t kept_epoch; /* == the document's: in rt_ydoc_t.kept.before */
} yclient_t;

typedef struct yitem_chunk {
    struct yitem_chunk *next;
    yitem_t items[256];
} yitem_chunk_t;

/* One transaction: what changed, for the cleanup and the 'update' event. */
typedef struct ytxn {
    uint64_t id;
    struct ytype **texts; /* changed typed texts (formatting cleanup candidates) */
    size_t n_texts, cap_texts;
    yid_t *before; /* (client, clock before) of clients that got new structs */
    size_t n_before, cap_before;
    yrange_t *ds;
    size_t n_ds, cap_ds;
    yid_t *merge; /* ids of structs to try merging (transaction._mergeStructs) */
    size_t n_merge, cap_merge;
} ytxn_t;

#define PUSH(arr, n, cap, val)                                                                     \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (arr) = rt_xrealloc((arr), (cap) * sizeof *(arr));                                     \
        }                                                                                          \
        (arr)[(n)++] = (val);                                                                      \
    } while (0)

struct yrefs;
/* Arrays kept between updates so that small updates allocate nothing. */
typedef struct yscratch {
    struct yrefs *refs;
    size_t cap_refs;
    const ystruct_t **stack;
    size_t cap_stack;
    yid_t *missing;
    size_t cap_missing;
} yscratch_t;

struct rt_ydoc {
    yclient_t **clients; /* ystore_sort_clients() sorts them by client id */
    size_t n_clients, cap_clients;
    bool clients_sorted;
    yclient_t **cindex; /* hash index by client id */
    size_t cindex_cap;
    ytable_t roots;
    bool gc;
    uint64_t txn_counter;
    yitem_chunk_t *chunks;
    yitem_t *free_items;
    size_t n_items;
    /* pending structs (a V1 update) and the clocks they wait for */
    rt_buf_t pending;
    bool has_pending;
    yid_t *missing;
    size_t n_missing;
    /* pending delete set */
    yrange_t *pending_ds;
    size_t n_pending_ds;
    struct ytype **dead_types;
    size_t n_dead, cap_dead;
    /* scratch reused by every apply */
    ydecoded_t dec;
    yscratch_t scratch;
    ytxn_t txn;
    /* what deferred applies changed since the last rt_ydoc_take_changes */
    ytxn_t kept;
    uint64_t kept_epoch;
};

static inline bool yitem_deleted(const yitem_t *it)
{
    return it->kind == YK_GC || (it->flags & YF_DELETED);
}

/* The struct at logical index i. */
static inline yitem_t **ystore_slot(const yclient_t *c, size_t i)
{
    return &c->s[i < c->gap ? i : i + c->gap_len];
}

#define YS(c, i) (*ystore_slot((c), (i)))

/* ordered tables (ystore.c) */
ykey_t *ytable_find(const ytable_t *t, const uint8_t *key, size_t len);
ykey_t *ytable_get(ytable_t *t, const uint8_t *key, size_t len);
void ytable_dispose(ytable_t *t);

/* store (ystore.c) */
yclient_t *ystore_client(const rt_ydoc_t *doc, uint64_t client);
yclient_t *ystore_client_add(rt_ydoc_t *doc, uint64_t client);
/* Sorts doc->clients by client id (ascending) before an ordered walk. */
void ystore_sort_clients(const rt_ydoc_t *doc);
uint64_t ystore_state(const rt_ydoc_t *doc, uint64_t client);
/* Index of the struct holding `clock`, or SIZE_MAX. */
size_t ystore_find_index(const yclient_t *c, uint64_t clock);
yitem_t *ystore_find(const rt_ydoc_t *doc, yid_t id);
yitem_t *yitem_alloc(rt_ydoc_t *doc);
void yitem_free(rt_ydoc_t *doc, yitem_t *it);
void ystore_insert(yclient_t *c, size_t at, yitem_t *it);
void ystore_remove(yclient_t *c, size_t at, size_t n);
ytype_t *ytype_create(uint8_t type_ref, yitem_t *item, uint16_t depth);
void ytype_destroy(ytype_t *t);
/* Fills a ystruct_t view of a stored struct for the encoders. */
void yitem_view(const yitem_t *it, ystruct_t *s);
size_t ystore_memory(const rt_ydoc_t *doc);

static inline bool yid_eq(bool ha, yid_t a, bool hb, yid_t b)
{
    return ha == hb && (!ha || (a.client == b.client && a.clock == b.clock));
}

/* items inside a transaction (yitem.c) */
uint64_t ydoc_before_state(const rt_ydoc_t *doc, const ytxn_t *t, uint64_t client);
/* addChangedTypeToTransaction, as far as the formatting cleanup needs it. */
void ydoc_changed_type(const rt_ydoc_t *doc, ytxn_t *t, ytype_t *type);
void ytxn_add_ds(ytxn_t *t, uint64_t client, uint64_t clock, uint64_t len);
/* addStruct: appends to the client's array, noting the state before. */
void ydoc_add_struct(rt_ydoc_t *doc, ytxn_t *t, yitem_t *it);
bool yref_countable(uint8_t ref);
/* Replaces an item's payload with a copy of p[0..n). */
void yitem_set_data(yitem_t *it, const uint8_t *p, size_t n);
void yitem_append_data(yitem_t *it, const uint8_t *p, size_t n);
/* splitItem: returns the new right part (not yet in the store array). */
yitem_t *ydoc_split(rt_ydoc_t *doc, ytxn_t *t, yitem_t *l, uint64_t diff);
yitem_t *ydoc_clean_start(rt_ydoc_t *doc, ytxn_t *t, yid_t id);
yitem_t *ydoc_clean_end(rt_ydoc_t *doc, ytxn_t *t, yid_t id);
void ydoc_item_delete(rt_ydoc_t *doc, ytxn_t *t, yitem_t *it);

/* integration (yintegrate.c): structs, then deletes, pending data kept;
 * returns whether the pending structs should be applied again. */
bool yintegrate_update(rt_ydoc_t *doc, ytxn_t *t, const ydecoded_t *d);

/* end of a transaction (ycleanup.c): gc and merging of adjacent structs. */
void ycleanup_txn(rt_ydoc_t *doc, ytxn_t *t);

/* Y.Text formatting cleanup after a remote transaction (ytext.c): deletes
 * redundant format items in `t2`, like cleanupYTextAfterTransaction. */
bool ytext_needs_cleanup(const ytxn_t *t);
void ytext_cleanup(rt_ydoc_t *doc, ytxn_t *t, ytxn_t *t2);

#endif
