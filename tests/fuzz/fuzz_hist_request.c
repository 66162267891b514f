/*
 * fuzz_hist_request.c: chat-history's request decoders on arbitrary bytes.  The
 * first byte picks the decoder (PublishRequest or HistoryRequest); whatever it
 * accepts must satisfy the validation promises (names, UTF-8, limits).
 */
#include "../../services/chat-history/request.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hist_arena_t arena;
    if (arena.mem == NULL)
        rt_pb_arena_init(&arena, 1 << 20);
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
    } else {
        hist_publish_t p;
        if (hist_publish_decode(&arena, bytes, &p, &why) == RT_OK) {
            assert(rt_name_is_valid(p.channel, strlen(p.channel)));
            assert(hist_utf8_valid((const uint8_t *)p.user, strlen(p.user)));
            assert(hist_utf8_valid((const uint8_t *)p.id, strlen(p.id)));
            assert(hist_utf8_valid((const uint8_t *)p.event, strlen(p.event)) && p.event[0] != '\0');
            assert(p.data.len <= HIST_MAX_DATA);
        } else {
            assert(why != NULL);
        }
    }
    return 0;
}
