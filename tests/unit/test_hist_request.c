/* test_hist_request.c: chat-history's decoding and validation of untrusted requests. */
#include "../../services/chat-history/hist.h"
#include "rtsync/v1/channel.pb-c.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    hist_arena_t arena;
    uint8_t buf[4096];
    size_t len;
} fixture_t;

static fixture_t *fixture_new(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    rt_pb_arena_init(&f->arena, 1 << 16);
    return f;
}

static void fixture_free(fixture_t *f)
{
    rt_pb_arena_dispose(&f->arena);
    free(f);
}

static void pack_publish(fixture_t *f, const char *channel, const char *event, const char *id, const char *user)
{
    Rtsync__V1__ChannelMessage m = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    m.channel = (char *)channel;
    m.event = (char *)event;
    m.id = (char *)id;
    m.from_user = (char *)user;
    m.data.data = (uint8_t *)"{\"a\":1}";
    m.data.len = 7;
    Rtsync__V1__PublishRequest r = RTSYNC__V1__PUBLISH_REQUEST__INIT;
    r.message = &m;
    f->len = rtsync__v1__publish_request__pack(&r, f->buf);
}

static int decode_publish(fixture_t *f, hist_publish_t *out)
{
    const char *why = NULL;
    rt_pb_arena_reset(&f->arena);
    return hist_publish_decode(&f->arena, (rt_slice_t){f->buf, f->len}, out, &why);
}

static void test_publish_valid(void)
{
    fixture_t *f = fixture_new();
    hist_publish_t p;
    pack_publish(f, "room.1:a-b_c", "", "k1", "alice");
    CU_ASSERT_EQUAL(decode_publish(f, &p), RT_OK);
    CU_ASSERT_STRING_EQUAL(p.channel, "room.1:a-b_c");
    CU_ASSERT_STRING_EQUAL(p.event, "message"); /* empty event defaults */
    CU_ASSERT_STRING_EQUAL(p.id, "k1");
    CU_ASSERT_STRING_EQUAL(p.user, "alice");
    CU_ASSERT_EQUAL(p.data.len, 7);
    CU_ASSERT_EQUAL(p.ts_ms, 0);
    fixture_free(f);
}

static void test_publish_rejects(void)
{
    fixture_t *f = fixture_new();
    hist_publish_t p;
    char long_channel[200];
    memset(long_channel, 'a', sizeof(long_channel) - 1);
    long_channel[sizeof(long_channel) - 1] = '\0';
    const char *bad_channels[] = {"", "a b", "a/b", "ä", long_channel};
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad_channels); i++) {
        pack_publish(f, bad_channels[i], "message", "", "u");
        CU_ASSERT_EQUAL(decode_publish(f, &p), RT_EINVAL);
    }
    pack_publish(f, "ok", "message", "\xc0\xaf", "u"); /* overlong UTF-8 */
    CU_ASSERT_EQUAL(decode_publish(f, &p), RT_EINVAL);
    f->len = 3;
    memcpy(f->buf, "\x0a\x40\x0a", 3); /* truncated */
    CU_ASSERT_EQUAL(decode_publish(f, &p), RT_EINVAL);
    f->len = 0; /* no message at all */
    CU_ASSERT_EQUAL(decode_publish(f, &p), RT_EINVAL);
    fixture_free(f);
}

static void test_utf8(void)
{
    CU_ASSERT(hist_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    CU_ASSERT(!hist_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    CU_ASSERT(!hist_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CU_ASSERT(!hist_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
    CU_ASSERT(!hist_utf8_valid((const uint8_t *)"a\0b", 3));
}

static int decode_query(fixture_t *f, Rtsync__V1__HistoryRequest *r, hist_query_t *out)
{
    f->len = rtsync__v1__history_request__pack(r, f->buf);
    const char *why = NULL;
    rt_pb_arena_reset(&f->arena);
    return hist_query_decode(&f->arena, (rt_slice_t){f->buf, f->len}, out, &why);
}

static void test_query(void)
{
    fixture_t *f = fixture_new();
    hist_query_t q;
    Rtsync__V1__HistoryRequest r = RTSYNC__V1__HISTORY_REQUEST__INIT;
    r.channel = "c";
    r.limit = 5000;
    CU_ASSERT_EQUAL(decode_query(f, &r, &q), RT_OK);
    CU_ASSERT_EQUAL(q.cursor, HIST_AFTER);
    CU_ASSERT_EQUAL(q.position, 0);
    CU_ASSERT_EQUAL(q.limit, HIST_MAX_LIMIT); /* clamped */
    r.cursor_case = RTSYNC__V1__HISTORY_REQUEST__CURSOR_BEFORE;
    r.before = 42;
    r.limit = 0;
    CU_ASSERT_EQUAL(decode_query(f, &r, &q), RT_OK);
    CU_ASSERT_EQUAL(q.cursor, HIST_BEFORE);
    CU_ASSERT_EQUAL(q.position, 42);
    CU_ASSERT_EQUAL(q.limit, 0);
    r.before = UINT64_MAX; /* beyond bigint */
    CU_ASSERT_EQUAL(decode_query(f, &r, &q), RT_EINVAL);
    r.channel = "bad channel";
    r.before = 1;
    CU_ASSERT_EQUAL(decode_query(f, &r, &q), RT_EINVAL);
    fixture_free(f);
}

static void test_arena_too_small(void)
{
    fixture_t *f = fixture_new();
    rt_pb_arena_dispose(&f->arena);
    rt_pb_arena_init(&f->arena, 64);
    hist_publish_t p;
    pack_publish(f, "c", "message", "some-id", "some-user");
    CU_ASSERT_EQUAL(decode_publish(f, &p), RT_EINVAL);
    fixture_free(f);
}

/* Appends a message to a PublishBatchRequest with the edge's encoder (shared/pb.c). */
static void batch_add(rt_buf_t *req, const char *channel, size_t data_len)
{
    static uint8_t data[1000];
    memset(data, 'x', sizeof(data));
    data[0] = '"', data[data_len - 1] = '"';
    Rtsync__V1__ChannelMessage m = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    m.channel = (char *)channel;
    m.from_user = "u";
    m.data.data = data;
    m.data.len = data_len;
    rt_pb_append_message_field(req, 1, &m.base, rtsync__v1__channel_message__get_packed_size(&m));
}

static void test_publish_batch(void)
{
    fixture_t *f = fixture_new();
    hist_publish_batch_t *b = calloc(1, sizeof(*b));
    rt_buf_t req = {0};
    batch_add(&req, "a", 2);
    batch_add(&req, "bad channel", 2);
    batch_add(&req, "b", 300); /* a two-byte length */
    /* what the edge builds is what protobuf-c reads */
    Rtsync__V1__PublishBatchRequest *r = rtsync__v1__publish_batch_request__unpack(NULL, req.len, req.data);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(r->n_messages, 3);
    CU_ASSERT_STRING_EQUAL(r->messages[2]->channel, "b");
    CU_ASSERT_EQUAL(r->messages[2]->data.len, 300);
    rtsync__v1__publish_batch_request__free_unpacked(r, NULL);

    const char *why = NULL;
    CU_ASSERT_EQUAL(hist_publish_batch_decode(&f->arena, (rt_slice_t){req.data, req.len}, b, &why), RT_OK);
    CU_ASSERT_EQUAL(b->n, 3);
    CU_ASSERT_EQUAL(b->err[0], RT_OK);
    CU_ASSERT_STRING_EQUAL(b->items[0].channel, "a");
    CU_ASSERT_EQUAL(b->err[1], RT_EINVAL); /* refused alone */
    CU_ASSERT_STRING_EQUAL(b->why[1], "bad channel");
    CU_ASSERT_EQUAL(b->err[2], RT_OK);
    CU_ASSERT_EQUAL(b->items[2].data.len, 300);

    /* refused as a whole: no message, too many, not protobuf */
    rt_pb_arena_reset(&f->arena);
    CU_ASSERT_EQUAL(hist_publish_batch_decode(&f->arena, (rt_slice_t){NULL, 0}, b, &why), RT_EINVAL);
    req.len = 0;
    for (int i = 0; i <= HIST_MAX_BATCH; i++)
        batch_add(&req, "a", 2);
    rt_pb_arena_dispose(&f->arena);
    rt_pb_arena_init(&f->arena, 1 << 20);
    CU_ASSERT_EQUAL(hist_publish_batch_decode(&f->arena, (rt_slice_t){req.data, req.len}, b, &why), RT_ETOOBIG);
    rt_pb_arena_reset(&f->arena);
    CU_ASSERT_EQUAL(hist_publish_batch_decode(&f->arena, RT_SLICE_LIT("\x0a\xff"), b, &why), RT_EINVAL);
    rt_buf_dispose(&req);
    free(b);
    fixture_free(f);
}

void test_hist_request_register(void)
{
    static const CU_TestInfo tests[] = {
        {"publish_valid", test_publish_valid},
        {"publish_rejects", test_publish_rejects},
        {"utf8", test_utf8},
        {"query", test_query},
        {"arena_too_small", test_arena_too_small},
        {"publish_batch", test_publish_batch},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("hist_request", tests);
}
