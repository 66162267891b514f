/*
 * batch.c: a group of publishes committed in one transaction, and the pure
 * parts of committing it: grouping by channel, duplicate keys inside the batch
 * and offset assignment.  Owned by one thread at a time (the loop thread while
 * filling, then the sequencer thread, then the loop thread for the replies).
 */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

void hist_batch_init(hist_batch_t *b)
{
    memset(b, 0, sizeof(*b));
}

void hist_batch_dispose(hist_batch_t *b)
{
    free(b->items);
    free(b->chans);
    rt_buf_dispose(&b->arena);
    rt_buf_dispose(&b->keybuf);
    rt_map_dispose(&b->keys);
    memset(b, 0, sizeof(*b));
}

void hist_batch_clear(hist_batch_t *b)
{
    b->n = 0;
    b->nchans = 0;
    b->arena.len = 0;
    b->data_bytes = 0;
    b->keybuf.len = 0;
    b->status = RT_OK;
    b->commit_ns = 0;
}

static hist_span_t put_str(hist_batch_t *b, const char *s, size_t len)
{
    hist_span_t span = {(uint32_t)b->arena.len, (uint32_t)len};
    rt_buf_append(&b->arena, s, len);
    rt_buf_append_byte(&b->arena, 0);
    return span;
}

static hist_span_t put_cstr(hist_batch_t *b, const char *s)
{
    return put_str(b, s ? s : "", s ? strlen(s) : 0);
}

void hist_batch_add(hist_batch_t *b, const hist_publish_t *p, const hist_reply_to_t *to, int64_t now_ms)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->items = rt_xrealloc(b->items, b->cap * sizeof(*b->items));
    }
    hist_item_t *it = &b->items[b->n++];
    b->data_bytes += p->data.len;
    *it = (hist_item_t){
        .reply = put_cstr(b, to->reply),
        .group = to->group,
        .slot = to->slot,
        .channel = put_cstr(b, p->channel),
        .event = put_cstr(b, p->event),
        .data = put_str(b, (const char *)p->data.data, p->data.len),
        .user = put_cstr(b, p->user),
        .id = put_cstr(b, p->id),
        .conn = put_cstr(b, p->conn),
        .origin = put_cstr(b, p->origin),
        .ts_ms = p->ts_ms > 0 ? p->ts_ms : now_ms,
        .first = -1,
    };
}

const char *hist_batch_str(const hist_batch_t *b, hist_span_t s)
{
    return (const char *)b->arena.data + s.off;
}

static int span_cmp(const hist_batch_t *b, hist_span_t x, const char *y, size_t ylen)
{
    size_t n = x.len < ylen ? x.len : ylen;
    int c = memcmp(hist_batch_str(b, x), y, n);
    return c ? c : (x.len > ylen) - (x.len < ylen);
}

static int chan_cmp(const void *a, const void *c, void *ctx)
{
    const hist_batch_t *b = ctx;
    const hist_chan_t *x = a, *y = c;
    return span_cmp(b, x->name, hist_batch_str(b, y->name), y->name.len);
}

int hist_batch_find_chan(const hist_batch_t *b, const char *name, size_t len)
{
    size_t lo = 0, hi = b->nchans;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = span_cmp(b, b->chans[mid].name, name, len);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Distinct channels, sorted bytewise (PostgreSQL's COLLATE "C" order). */
static void group_channels(hist_batch_t *b)
{
    rt_map_t seen = {0};
    for (size_t i = 0; i < b->n; i++) {
        hist_span_t name = b->items[i].channel;
        if (rt_map_get(&seen, hist_batch_str(b, name), name.len) != NULL)
            continue;
        rt_map_put(&seen, hist_batch_str(b, name), name.len, (void *)1);
        if (b->nchans == b->chans_cap) {
            b->chans_cap = b->chans_cap ? 2 * b->chans_cap : 64;
            b->chans = rt_xrealloc(b->chans, b->chans_cap * sizeof(*b->chans));
        }
        b->chans[b->nchans++] = (hist_chan_t){.name = name};
    }
    rt_map_dispose(&seen);
    qsort_r(b->chans, b->nchans, sizeof(*b->chans), chan_cmp, b);
    for (size_t i = 0; i < b->n; i++) {
        hist_span_t name = b->items[i].channel;
        b->items[i].chan = (uint32_t)hist_batch_find_chan(b, hist_batch_str(b, name), name.len);
        b->chans[b->items[i].chan].claimed++;
    }
}

/* "channel\0user\0id" of an item; NULL-free key bytes in b->keybuf. */
static void key_build(rt_buf_t *out, const char *channel, const char *user, const char *id)
{
    rt_buf_append(out, channel, strlen(channel) + 1);
    rt_buf_append(out, user, strlen(user) + 1);
    rt_buf_append(out, id, strlen(id));
}

/* Marks later items with a key seen earlier in the batch; the map borrows keybuf,
 * so its final size is reserved first. */
static void find_repeats(hist_batch_t *b)
{
    rt_map_dispose(&b->keys);
    memset(&b->keys, 0, sizeof(b->keys));
    b->keybuf.len = 0;
    size_t total = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].id.len > 0)
            total += b->items[i].channel.len + b->items[i].user.len + b->items[i].id.len + 2;
    rt_buf_reserve(&b->keybuf, total + 1);
    for (size_t i = 0; i < b->n; i++) {
        hist_item_t *it = &b->items[i];
        if (it->id.len == 0)
            continue;
        size_t start = b->keybuf.len;
        key_build(&b->keybuf, hist_batch_str(b, it->channel), hist_batch_str(b, it->user), hist_batch_str(b, it->id));
        const char *key = (const char *)b->keybuf.data + start;
        size_t keylen = b->keybuf.len - start;
        uintptr_t first = (uintptr_t)rt_map_get(&b->keys, key, keylen);
        if (first != 0) {
            it->first = (int32_t)(first - 1);
            b->chans[it->chan].claimed--;
        } else
            rt_map_put(&b->keys, key, keylen, (void *)(uintptr_t)(i + 1));
    }
}

void hist_batch_prepare(hist_batch_t *b)
{
    b->nchans = 0;
    for (size_t i = 0; i < b->n; i++) {
        b->items[i].first = -1;
        b->items[i].offset = 0;
        b->items[i].duplicate = 0;
    }
    group_channels(b);
    find_repeats(b);
}

int hist_batch_mark_existing(hist_batch_t *b, const char *channel, const char *user, const char *id, uint64_t offset)
{
    rt_buf_t key = {0};
    key_build(&key, channel, user, id);
    uintptr_t first = (uintptr_t)rt_map_get(&b->keys, (const char *)key.data, key.len);
    rt_buf_dispose(&key);
    if (first == 0)
        return 0;
    hist_item_t *it = &b->items[first - 1];
    it->offset = offset;
    it->duplicate = 1;
    return 1;
}

void hist_batch_assign(hist_batch_t *b)
{
    for (size_t c = 0; c < b->nchans; c++) {
        b->chans[c].last -= b->chans[c].claimed; /* the offset before the first claimed one */
        b->chans[c].count = 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        hist_item_t *it = &b->items[i];
        if (it->first >= 0 || it->duplicate)
            continue;
        hist_chan_t *ch = &b->chans[it->chan];
        it->offset = ++ch->last;
        ch->count++;
    }
    for (size_t i = 0; i < b->n; i++) {
        hist_item_t *it = &b->items[i];
        if (it->first >= 0) {
            it->offset = b->items[it->first].offset;
            it->duplicate = 1;
        }
    }
}

size_t hist_batch_new_count(const hist_batch_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += !b->items[i].duplicate;
    return n;
}
