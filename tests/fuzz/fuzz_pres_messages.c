/*
 * fuzz_pres_messages.c: presence's message decoders on arbitrary bytes.  The
 * first byte picks the message (PresenceBatch, EdgeHeartbeat, PresenceQuery,
 * SignalRequest, PeerHeartbeat); whatever a decoder accepts must satisfy the
 * validation promises, and an accepted batch is applied to a view, which must
 * stay consistent.
 */
#include "../../services/presence/decode.c"
#include "../../services/presence/edges.c"
#include "../../services/presence/view.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore_resync(void *ctx, const char *edge)
{
    (void)ctx, (void)edge;
}

static void ignore_gone(void *ctx, const pres_member_t *m)
{
    (void)ctx;
    assert(m->edge != NULL);
}

static void check_batch(const Rtsync__V1__PresenceBatch *b)
{
    static pres_edges_t edges;
    static const pres_edges_ops_t ops = {.request_resync = ignore_resync, .member_gone = ignore_gone};
    static uint64_t now;
    if (edges.ops.member_gone == NULL)
        pres_edges_init(&edges, 3000000000u, 500000000u, &ops, NULL);
    assert(pres_text_valid(b->edge, PRES_MAX_ID, 0));
    for (size_t i = 0; i < b->n_updates; i++) {
        const Rtsync__V1__Member *m = b->updates[i]->member;
        assert(pres_channel_valid(m->channel) && m->state.len <= PRES_MAX_STATE);
        assert(strcmp(m->edge, b->edge) == 0);
    }
    now += 100000000u;
    pres_edges_on_batch(&edges, b, now);
    pres_edges_tick(&edges, now);
    size_t total = 0, pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&edges.view.channels, &pos)) != NULL)
        total += ((const pres_channel_t *)ent->value)->members.len;
    assert(total == edges.view.nmembers);
    if (edges.view.nmembers > 100000)
        pres_edges_dispose(&edges), memset(&edges, 0, sizeof(edges));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pres_arena_t arena;
    if (arena.mem == NULL)
        rt_pb_arena_init(&arena, 1 << 22);
    if (size == 0)
        return 0;
    rt_slice_t bytes = {data + 1, size - 1};
    const char *why = NULL;
    int err;
    switch (data[0] % 5) {
    case 0: {
        Rtsync__V1__PresenceBatch *b;
        if ((err = pres_decode_batch(&arena, bytes, &b, &why)) == RT_OK)
            check_batch(b);
        break;
    }
    case 1: {
        Rtsync__V1__EdgeHeartbeat *hb;
        if ((err = pres_decode_heartbeat(&arena, bytes, &hb, &why)) == RT_OK)
            assert(pres_text_valid(hb->edge, PRES_MAX_ID, 0));
        break;
    }
    case 2: {
        Rtsync__V1__PresenceQuery *q;
        if ((err = pres_decode_query(&arena, bytes, &q, &why)) == RT_OK)
            assert(pres_channel_valid(q->channel));
        break;
    }
    case 3: {
        Rtsync__V1__SignalRequest *s;
        if ((err = pres_decode_signal(&arena, bytes, &s, &why)) == RT_OK)
            assert(pres_channel_valid(s->channel) && s->to_conn[0] != '\0' && s->data.len <= PRES_MAX_STATE);
        break;
    }
    default: {
        Rtsync__V1__PeerHeartbeat *p;
        if ((err = pres_decode_peer(&arena, bytes, &p, &why)) == RT_OK)
            assert(pres_text_valid(p->instance, PRES_MAX_ID, 0));
        break;
    }
    }
    assert(err == RT_OK || why != NULL);
    return 0;
}
