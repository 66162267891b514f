/* frame.c: reference-counted output frames and the per-connection queue.
 * A channel message is encoded once per thread; every subscriber's queue holds
 * a reference to the same bytes, and a connection's pending frames leave in
 * one writev. */
#include "edge.h"

#include <stdlib.h>
#include <string.h>

static edge_frame_t *frame_alloc(size_t len)
{
    edge_frame_t *f = rt_xmalloc(sizeof(*f) + len);
    f->refs = 1;
    f->len = (uint32_t)len;
    return f;
}

edge_frame_t *edge_frame_raw(const void *data, size_t len)
{
    edge_frame_t *f = frame_alloc(len);
    memcpy(f->data, data, len);
    return f;
}

edge_frame_t *edge_frame_ws(int opcode, const void *payload, size_t len)
{
    size_t hdr = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    edge_frame_t *f = frame_alloc(hdr + len);
    uint8_t *p = f->data;
    *p++ = (uint8_t)(0x80 | (opcode & 0x0f)); /* FIN, unfragmented */
    if (len < 126) {
        *p++ = (uint8_t)len;
    } else if (len <= 0xffff) {
        *p++ = 126;
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
    } else {
        *p++ = 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            *p++ = (uint8_t)((uint64_t)len >> shift);
    }
    memcpy(p, payload, len);
    return f;
}

edge_frame_t *edge_frame_ws_close(uint16_t code, const char *reason)
{
    uint8_t payload[125];
    size_t rlen = strlen(reason);
    if (rlen > sizeof(payload) - 2)
        rlen = sizeof(payload) - 2;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    memcpy(payload + 2, reason, rlen);
    return edge_frame_ws(0x8, payload, rlen + 2);
}

void edge_frame_release(edge_frame_t *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

static edge_frame_t **slot(edge_outq_t *q, uint32_t i)
{
    return &q->frames[(q->head + i) & (q->cap - 1)];
}

void edge_outq_push(edge_outq_t *q, edge_frame_t *frame)
{
    if (q->count == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 4;
        edge_frame_t **frames = rt_xmalloc(cap * sizeof(*frames));
        for (uint32_t i = 0; i < q->count; i++)
            frames[i] = *slot(q, i);
        free(q->frames);
        q->frames = frames;
        q->cap = cap;
        q->head = 0;
    }
    *slot(q, q->count++) = frame;
    q->bytes += frame->len;
}

size_t edge_outq_take(edge_outq_t *q, h2o_iovec_t *vecs, size_t max)
{
    size_t n = 0;
    while (q->inflight < q->count && n < max) {
        edge_frame_t *f = *slot(q, q->inflight++);
        vecs[n++] = h2o_iovec_init(f->data, f->len);
    }
    return n;
}

static void pop_front(edge_outq_t *q)
{
    edge_frame_t *f = *slot(q, 0);
    q->bytes -= f->len;
    edge_frame_release(f);
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
}

void edge_outq_written(edge_outq_t *q)
{
    for (; q->inflight > 0; q->inflight--)
        pop_front(q);
}

void edge_outq_drop_pending(edge_outq_t *q)
{
    while (q->count > q->inflight) {
        edge_frame_t *f = *slot(q, q->count - 1);
        q->bytes -= f->len;
        edge_frame_release(f);
        q->count--;
    }
}

void edge_outq_dispose(edge_outq_t *q)
{
    while (q->count > 0)
        pop_front(q);
    free(q->frames);
    *q = (edge_outq_t){0};
}
