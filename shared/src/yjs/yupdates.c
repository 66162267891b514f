/*
 * yupdates.c: the update algebra on encoded updates, as updates.js does it:
 * mergeUpdates (a k-way merge of lazy struct readers), diffUpdate,
 * encodeStateVectorFromUpdate, validation and V2 -> V1 conversion.
 */
#include "yjs_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- delete sets as readDeleteSet / writeDeleteSet see them ------------------ */

typedef struct ranked {
    yrange_t r;
    size_t order;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->r.client != y->r.client)
        return x->r.client > y->r.client ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void yds_write_grouped(rt_buf_t *out, const yrange_t *r, size_t n)
{
    ranked_t *v = rt_xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (ranked_t){r[i], i};
    ysort(v, n, sizeof *v, cmp_ranked);
    yrange_t *s = rt_xcalloc(n ? n : 1, sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = v[i].r;
    yds_write(out, s, n);
    free(v);
    free(s);
}

/* ---- struct readers ---------------------------------------------------------------- */

/* A lazy reader over a decoded update (LazyStructReader). */
typedef struct yreader_s {
    const ydecoded_t *d;
    size_t next;
    bool filter_skips;
    ystruct_t cur;
    bool has;
} ylazy_t;

static void lazy_next(ylazy_t *r)
{
    while (r->next < r->d->n_structs) {
        const ystruct_t *s = &r->d->structs[r->next++];
        if (r->filter_skips && s->kind == YK_SKIP)
            continue;
        r->cur = *s;
        r->has = true;
        return;
    }
    r->has = false;
}

/* sliceStruct: the part of `s` from `diff` on; new payloads go to the arena. */
static void slice_struct(ystruct_t *s, uint64_t diff, struct yarena **arena)
{
    if (s->kind == YK_ITEM) {
        if (s->ref == YC_STRING) {
            rt_buf_t l = {0}, r = {0};
            ystring_split(s->content.data, s->content.len, diff, &l, &r);
            uint8_t *p = yarena_alloc(arena, r.len ? r.len : 1);
            ymemcpy(p, r.data, r.len);
            s->content = (rt_slice_t){p, r.len};
            rt_buf_dispose(&l);
            rt_buf_dispose(&r);
        } else if (s->ref == YC_JSON || s->ref == YC_ANY) {
            size_t at = ypayload_skip(s->ref, s->content.data, s->content.len, diff);
            s->content = (rt_slice_t){s->content.data + at, s->content.len - at};
        }
        s->has_origin = true;
        s->origin = (yid_t){s->id.client, s->id.clock + diff - 1};
    }
    s->id.clock += diff;
    s->len -= diff;
}

static bool struct_merge(ystruct_t *l, const ystruct_t *r)
{
    if (l->kind == YK_ITEM || l->kind != r->kind)
        return false;
    l->len += r->len;
    return true;
}

/* The comparator of mergeUpdates: client descending, clock ascending.  For
 * equal ids of different kinds it answers -1 both ways (it is inconsistent),
 * so the order depends on the sort algorithm, emulated below. */
static int cmp_readers(const ylazy_t *a, const ylazy_t *b)
{
    if (a->cur.id.client == b->cur.id.client) {
        if (a->cur.id.clock == b->cur.id.clock) {
            if (a->cur.kind == b->cur.kind)
                return 0;
            return a->cur.kind == YK_SKIP ? 1 : -1;
        }
        return a->cur.id.clock < b->cur.id.clock ? -1 : 1;
    }
    return b->cur.id.client < a->cur.id.client ? -1 : 1;
}

/* V8's Array.prototype.sort (TimSort) for fewer than 64 elements: the first
 * run (reversed when descending), then binary insertion.  Longer arrays fall
 * back to a stable insertion sort. */
static void v8_sort(ylazy_t **a, size_t n)
{
    if (n < 2)
        return;
    size_t start = 1;
    if (n < 64) {
        size_t run = 2;
        bool desc = cmp_readers(a[1], a[0]) < 0;
        for (size_t i = 2; i < n; i++) {
            int order = cmp_readers(a[i], a[i - 1]);
            if (desc ? order >= 0 : order < 0)
                break;
            run++;
        }
        if (desc) {
            for (size_t i = 0, k = run - 1; i < k; i++, k--) {
                ylazy_t *t = a[i];
                a[i] = a[k];
                a[k] = t;
            }
        }
        start = run;
    }
    for (; start < n; start++) {
        size_t left = 0, right = start;
        ylazy_t *pivot = a[start];
        if (n >= 64) {
            while (right > 0 && cmp_readers(pivot, a[right - 1]) < 0)
                right--;
            left = right;
        } else {
            while (left < right) {
                size_t mid = left + ((right - left) >> 1);
                if (cmp_readers(pivot, a[mid]) < 0)
                    right = mid;
                else
                    left = mid + 1;
            }
        }
        for (size_t p = start; p > left; p--)
            a[p] = a[p - 1];
        a[left] = pivot;
    }
}

/* Drops finished readers and sorts the rest as JS does. */
static size_t sort_readers(ylazy_t **v, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i]->has)
            v[m++] = v[i];
    v8_sort(v, m);
    return m;
}

typedef struct ywrite_cur {
    ystruct_t s;
    bool has;
} ywrite_cur_t;

/* The reader order of mergeUpdates.  Fewer than 64 readers: re-sorted every
 * step exactly as V8 does.  More: a binary heap on (client desc, clock asc,
 * then the order a stable re-sort would keep), O(log n) per step instead of
 * JavaScript's O(n). */
typedef struct yqueue {
    ylazy_t **v; /* small mode: all live readers, sorted */
    size_t n;
    bool heap;
    struct qent {
        ylazy_t *r;
        int64_t seq;
    } *h;
    size_t hn;
    int64_t next_seq;
    ylazy_t *out; /* heap mode: the reader handed out last step */
} yqueue_t;

static bool qent_before(const struct qent *a, const struct qent *b)
{
    if (a->r->cur.id.client != b->r->cur.id.client)
        return a->r->cur.id.client > b->r->cur.id.client;
    if (a->r->cur.id.clock != b->r->cur.id.clock)
        return a->r->cur.id.clock < b->r->cur.id.clock;
    return a->seq < b->seq;
}

static void heap_push(yqueue_t *q, ylazy_t *r, int64_t seq)
{
    size_t i = q->hn++;
    q->h[i] = (struct qent){r, seq};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!qent_before(&q->h[i], &q->h[p]))
            break;
        struct qent t = q->h[i];
        q->h[i] = q->h[p];
        q->h[p] = t;
        i = p;
    }
}

static ylazy_t *heap_pop(yqueue_t *q)
{
    ylazy_t *top = q->h[0].r;
    q->h[0] = q->h[--q->hn];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->hn && qent_before(&q->h[l], &q->h[m]))
            m = l;
        if (r < q->hn && qent_before(&q->h[r], &q->h[m]))
            m = r;
        if (m == i)
            break;
        struct qent t = q->h[i];
        q->h[i] = q->h[m];
        q->h[m] = t;
        i = m;
    }
    return top;
}

static void queue_init(yqueue_t *q, ylazy_t *readers, size_t n)
{
    memset(q, 0, sizeof *q);
    q->heap = n >= 64;
    if (!q->heap) {
        q->v = rt_xcalloc(n ? n : 1, sizeof *q->v);
        for (size_t i = 0; i < n; i++)
            q->v[i] = &readers[i];
        q->n = n;
        return;
    }
    q->h = rt_xcalloc(n, sizeof *q->h);
    for (size_t i = 0; i < n; i++)
        if (readers[i].has)
            heap_push(q, &readers[i], (int64_t)i);
    q->next_seq = -1;
}

/* The first reader after this step's re-sort, or NULL when all are done. */
static ylazy_t *queue_first(yqueue_t *q)
{
    if (!q->heap) {
        q->n = sort_readers(q->v, q->n);
        return q->n ? q->v[0] : NULL;
    }
    if (q->out && q->out->has)
        heap_push(q, q->out, q->next_seq--); /* a stable re-sort keeps it first among equals */
    q->out = q->hn ? heap_pop(q) : NULL;
    return q->out;
}

static void queue_dispose(yqueue_t *q)
{
    free(q->v);
    free(q->h);
}

static void merge_structs(ylazy_t *readers, size_t n, struct yarena **arena, ylazy_writer_t *w)
{
    yqueue_t q;
    queue_init(&q, readers, n);
    ywrite_cur_t cw = {0};
    for (;;) {
        ylazy_t *dec = queue_first(&q);
        if (!dec)
            break;
        uint64_t first_client = dec->cur.id.client;
        if (cw.has) {
            bool iterated = false;
            while (dec->has && dec->cur.id.clock + dec->cur.len <= cw.s.id.clock + cw.s.len &&
                   dec->cur.id.client >= cw.s.id.client) {
                lazy_next(dec);
                iterated = true;
            }
            if (!dec->has || dec->cur.id.client != first_client ||
                (iterated && dec->cur.id.clock > cw.s.id.clock + cw.s.len))
                continue;
            ystruct_t curr = dec->cur;
            if (first_client != cw.s.id.client) {
                ylazy_write(w, &cw.s, 0);
                cw.s = curr;
                lazy_next(dec);
            } else if (cw.s.id.clock + cw.s.len < curr.id.clock) {
                if (cw.s.kind == YK_SKIP) {
                    cw.s.len = curr.id.clock + curr.len - cw.s.id.clock;
                } else {
                    ylazy_write(w, &cw.s, 0);
                    uint64_t diff = curr.id.clock - cw.s.id.clock - cw.s.len;
                    ystruct_t skip = {.id = {first_client, cw.s.id.clock + cw.s.len}, .len = diff,
                                      .kind = YK_SKIP};
                    cw.s = skip;
                }
            } else {
                uint64_t diff = cw.s.id.clock + cw.s.len - curr.id.clock;
                if (diff > 0) {
                    if (cw.s.kind == YK_SKIP)
                        cw.s.len -= diff;
                    else
                        slice_struct(&curr, diff, arena);
                }
                if (!struct_merge(&cw.s, &curr)) {
                    ylazy_write(w, &cw.s, 0);
                    cw.s = curr;
                    lazy_next(dec);
                }
            }
        } else {
            cw.s = dec->cur;
            cw.has = true;
            lazy_next(dec);
        }
        while (dec->has && dec->cur.id.client == first_client &&
               dec->cur.id.clock == cw.s.id.clock + cw.s.len && dec->cur.kind != YK_SKIP) {
            ylazy_write(w, &cw.s, 0);
            cw.s = dec->cur;
            lazy_next(dec);
        }
    }
    if (cw.has)
        ylazy_write(w, &cw.s, 0);
    queue_dispose(&q);
}

/* Decoded updates kept for the next merge or validation on this thread: the
 * merge of a turn's changes (crdt-merge) decodes hundreds of small updates,
 * and each fresh decode costs a few mallocs.  Only small ones are kept, so
 * a thread holds at most POOL_MAX of them, of about POOL_KEEP structs each. */
#define POOL_MAX 256
#define POOL_KEEP 16
static __thread ydecoded_t *pool;
static __thread size_t pool_len;

static ydecoded_t *pool_take(size_t n)
{
    if (n > pool_len) {
        pool = rt_xrealloc(pool, n * sizeof *pool);
        memset(pool + pool_len, 0, (n - pool_len) * sizeof *pool);
        pool_len = n;
    }
    return pool;
}

static void pool_give_back(size_t used)
{
    for (size_t i = 0; i < used; i++) {
        ydecoded_t *d = &pool[i];
        if (i >= POOL_MAX || d->cap_structs > POOL_KEEP || d->cap_blocks > POOL_KEEP || d->cap_ds > POOL_KEEP)
            ydecoded_dispose(d);
        else
            ydecoded_clear(d);
    }
    if (pool_len > POOL_MAX) {
        pool = rt_xrealloc(pool, POOL_MAX * sizeof *pool);
        pool_len = POOL_MAX;
    }
}

static int merge_into(const rt_slice_t *updates, size_t n, rt_buf_t *out)
{
    ydecoded_t *d = pool_take(n ? n : 1);
    ylazy_t *readers = rt_xcalloc(n ? n : 1, sizeof *readers);
    struct yarena *arena = NULL;
    int rc = 0;
    size_t ok = 0;
    for (; ok < n; ok++) {
        if ((rc = ydecode_v1_reuse(updates[ok], &d[ok])) < 0)
            goto out;
    }
    if (n == 1) {
        rt_buf_append(out, updates[0].data, updates[0].len);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        readers[i] = (ylazy_t){.d = &d[i], .filter_skips = true};
        lazy_next(&readers[i]);
    }
    ylazy_writer_t w = {0};
    merge_structs(readers, n, &arena, &w);
    if ((rc = ylazy_finish(&w, out)) < 0)
        goto out;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += d[i].n_ds;
    yrange_t *ds = rt_xcalloc(total ? total : 1, sizeof *ds);
    total = 0;
    for (size_t i = 0; i < n; i++) {
        ymemcpy(ds + total, d[i].ds, d[i].n_ds * sizeof *ds);
        total += d[i].n_ds;
    }
    yds_sort_merge(ds, &total);
    yds_write(out, ds, total);
    free(ds);
out:
    pool_give_back(ok < n ? ok + 1 : n);
    free(readers);
    yarena_free(arena);
    return rc;
}

int ymerge_updates(const rt_slice_t *updates, size_t n, rt_buf_t *out)
{
    rt_buf_t tmp = {0};
    int rc = merge_into(updates, n, &tmp);
    if (rc == 0)
        rt_buf_append(out, tmp.data, tmp.len);
    rt_buf_dispose(&tmp);
    return rc;
}

int ydiff_decoded(const ydecoded_t *d, const ysv_t *sv, rt_buf_t *out)
{
    ylazy_writer_t w = {0};
    ylazy_t r = {.d = d};
    lazy_next(&r);
    while (r.has) {
        uint64_t client = r.cur.id.client;
        uint64_t sv_clock = ysv_get(sv, client);
        if (r.cur.kind == YK_SKIP) {
            lazy_next(&r);
            continue;
        }
        if (r.cur.id.clock + r.cur.len > sv_clock) {
            uint64_t off = sv_clock > r.cur.id.clock ? sv_clock - r.cur.id.clock : 0;
            ylazy_write(&w, &r.cur, off);
            lazy_next(&r);
            while (r.has && r.cur.id.client == client) {
                ylazy_write(&w, &r.cur, 0);
                lazy_next(&r);
            }
        } else {
            while (r.has && r.cur.id.client == client && r.cur.id.clock + r.cur.len <= sv_clock)
                lazy_next(&r);
        }
    }
    int rc = ylazy_finish(&w, out);
    yds_write_grouped(out, d->ds, d->n_ds);
    return rc;
}

/* ---- public API --------------------------------------------------------------- */

int rt_yupdate_validate(rt_slice_t update)
{
    int rc = ydecode_v1_reuse(update, pool_take(1)) < 0 ? RT_EINVAL : 0;
    pool_give_back(1);
    return rc;
}

int rt_yupdate_merge(const rt_slice_t *updates, size_t n, rt_buf_t *out)
{
    return ymerge_updates(updates, n, out);
}

int rt_yupdate_diff(rt_slice_t update, rt_slice_t sv, rt_buf_t *out)
{
    ydecoded_t d;
    ysv_t v;
    if (ysv_decode(sv, &v) < 0)
        return RT_EINVAL;
    if (ydecode_v1(update, &d) < 0) {
        ysv_dispose(&v);
        return RT_EINVAL;
    }
    rt_buf_t tmp = {0};
    int rc = ydiff_decoded(&d, &v, &tmp);
    if (rc == 0)
        rt_buf_append(out, tmp.data, tmp.len);
    rt_buf_dispose(&tmp);
    ydecoded_dispose(&d);
    ysv_dispose(&v);
    return rc;
}

int rt_yupdate_state_vector(rt_slice_t update, rt_buf_t *out)
{
    ydecoded_t d;
    if (ydecode_v1(update, &d) < 0)
        return RT_EINVAL;
    rt_buf_t body = {0};
    size_t size = 0;
    if (d.n_structs > 0) {
        const ystruct_t *s = &d.structs[0];
        uint64_t cur_client = s->id.client;
        bool stop = s->id.clock != 0;
        uint64_t cur_clock = stop ? 0 : s->id.clock + s->len;
        for (size_t i = 0; i < d.n_structs; i++) {
            s = &d.structs[i];
            if (cur_client != s->id.client) {
                if (cur_clock != 0) {
                    size++;
                    ywrite_varuint(&body, cur_client);
                    ywrite_varuint(&body, cur_clock);
                }
                cur_client = s->id.client;
                cur_clock = 0;
                stop = s->id.clock != 0;
            }
            if (s->kind == YK_SKIP)
                stop = true;
            if (!stop)
                cur_clock = s->id.clock + s->len;
        }
        if (cur_clock != 0) {
            size++;
            ywrite_varuint(&body, cur_client);
            ywrite_varuint(&body, cur_clock);
        }
    }
    ywrite_varuint(out, size);
    rt_buf_append(out, body.data, body.len);
    rt_buf_dispose(&body);
    ydecoded_dispose(&d);
    return 0;
}

int rt_yupdate_v2_to_v1(rt_slice_t update_v2, rt_buf_t *out)
{
    ydecoded_t d;
    if (ydecode_v2(update_v2, &d) < 0)
        return RT_EINVAL;
    ylazy_writer_t w = {0};
    rt_buf_t v1 = {0};
    for (size_t i = 0; i < d.n_structs; i++)
        ylazy_write(&w, &d.structs[i], 0);
    int rc = ylazy_finish(&w, &v1);
    yds_write_grouped(&v1, d.ds, d.n_ds);
    ydecoded_dispose(&d);
    if (rc == 0)
        rt_buf_append(out, v1.data, v1.len);
    rt_buf_dispose(&v1);
    return rc;
}
