/*
 * fuzz_hist_request.c: chat-history's request decoders on arbitrary bytes.  The
 * first byte picks the decoder (odd: HistoryRequest; else bit 1: PublishBatchRequest,
 * or PublishRequest; the seeds start with 0, 1 and 2); whatever it accepts must
 * satisfy the validation promises (names, UTF-8, limits).
 */
#include "../../services/chat-history/request.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_publish(const hist_publish_t *p)
{
    assert(rt_name_is_valid(p->channel, strlen(p->channel)));
    assert(hist_utf8_valid((const uint8_t *)p->user, strlen(p->user)));
    assert(hist_utf8_valid((const uint8_t *)p->id, strlen(p->id)));
    assert(hist_utf8_valid((const uint8_t *)p->event, strlen(p->event)) && p->event[0] != '\0');
    assert(p->data.len <= HIST_MAX_DATA);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hist_arena_t arena;
    if (arena.mem == NULL)
        rt_pb_arena_init(&arena, 3 << 20);
    if (size == 0)
        return 0;
    rt_pb_arena_reset(&arena);
    rt_slice_t bytes = {data + 1, size - 1};
    const char *why = NULL;
    if (data[0] & 1) {
        hist_query_t q;
        if (hist_query_decode(&arena, bytes, &q, &why) == RT_OK) {
            assert(rt_name_is_valid(q.channel, strlen(q.channel)));
            assert(q.limit <= HIST_MAX_LIMIT);
            assert(q.position <= (uint64_t)INT64_MAX);
        } else {
            assert(why != NULL);
        }
    } else if (!(data[0] & 2)) {
        hist_publish_t p;
        if (hist_publish_decode(&arena, bytes, &p, &why) == RT_OK)
            check_publish(&p);
        else
            assert(why != NULL);
    } else {
        static hist_publish_batch_t b;
        if (hist_publish_batch_decode(&arena, bytes, &b, &why) == RT_OK) {
            assert(b.n >= 1 && b.n <= HIST_MAX_BATCH);
            for (size_t i = 0; i < b.n; i++) {
                if (b.err[i] == RT_OK)
                    check_publish(&b.items[i]);
                else
                    assert(b.why[i] != NULL);
            }
        } else {
            assert(why != NULL);
        }
    }
    return 0;
}
