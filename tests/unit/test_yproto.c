/* test_yproto.c: y-websocket message framing, state vectors and awareness updates (rt/yproto.h). */
#include "rt/yproto.h"
#include "unit.h"

#include <string.h>

#define SLICE(...) ((rt_slice_t){(const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})})

static void test_varuint(void)
{
    uint64_t values[] = {0, 1, 127, 128, 300, 1ull << 32, (1ull << 53) - 1};
    for (size_t i = 0; i < RT_ARRAY_SIZE(values); i++) {
        rt_buf_t b = {0};
        rt_yvar_write(&b, values[i]);
        const uint8_t *p = b.data;
        uint64_t v = 0;
        CU_ASSERT_EQUAL(rt_yvar_read(&p, b.data + b.len, &v), RT_OK);
        CU_ASSERT_EQUAL(v, values[i]);
        CU_ASSERT_PTR_EQUAL(p, b.data + b.len);
        rt_buf_dispose(&b);
    }
    rt_slice_t big = SLICE(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f); /* 56 bits */
    const uint8_t *p = big.data;
    uint64_t v;
    CU_ASSERT_EQUAL(rt_yvar_read(&p, big.data + big.len, &v), RT_EINVAL);
    rt_slice_t cut = SLICE(0x80, 0x80);
    p = cut.data;
    CU_ASSERT_EQUAL(rt_yvar_read(&p, cut.data + cut.len, &v), RT_EINVAL);
}

static void test_messages(void)
{
    rt_ymsg_t m;
    /* the captured handshake (yjs-spec 2.2); the payload borrows the input */
    static const uint8_t step1[] = {0x00, 0x00, 0x03, 0x01, 0x0b, 0x02};
    CU_ASSERT_EQUAL(rt_ymsg_decode((rt_slice_t){step1, sizeof(step1)}, &m), RT_OK);
    CU_ASSERT_EQUAL(m.type, RT_YMSG_SYNC);
    CU_ASSERT_EQUAL(m.sync_type, RT_YSYNC_STEP1);
    CU_ASSERT_EQUAL(m.payload.len, 3);
    CU_ASSERT_EQUAL(rt_ysv_validate(m.payload), RT_OK);
    CU_ASSERT_EQUAL(rt_ymsg_decode(SLICE(0x00, 0x01, 0x02, 0x00, 0x00), &m), RT_OK);
    CU_ASSERT_EQUAL(m.sync_type, RT_YSYNC_STEP2);
    static const uint8_t keepalive[] = {0x01, 0x01, 0x00};
    CU_ASSERT_EQUAL(rt_ymsg_decode((rt_slice_t){keepalive, sizeof(keepalive)}, &m), RT_OK);
    CU_ASSERT_EQUAL(m.type, RT_YMSG_AWARENESS);
    CU_ASSERT_EQUAL(rt_yaw_validate(m.payload), RT_OK);
    CU_ASSERT_EQUAL(rt_ymsg_decode(SLICE(0x03), &m), RT_OK);
    CU_ASSERT_EQUAL(m.type, RT_YMSG_QUERY_AWARENESS);
    /* malformed */
    CU_ASSERT_EQUAL(rt_ymsg_decode((rt_slice_t){NULL, 0}, &m), RT_EINVAL);
    CU_ASSERT_EQUAL(rt_ymsg_decode(SLICE(0x00, 0x03, 0x00), &m), RT_EINVAL);             /* sync type 3 */
    CU_ASSERT_EQUAL(rt_ymsg_decode(SLICE(0x00, 0x02, 0x05, 0x00), &m), RT_EINVAL);       /* short payload */
    CU_ASSERT_EQUAL(rt_ymsg_decode(SLICE(0x00, 0x02, 0x01, 0x00, 0x00), &m), RT_EINVAL); /* trailing */
    CU_ASSERT_EQUAL(rt_ymsg_decode(SLICE(0x07), &m), RT_EINVAL);
    CU_ASSERT_EQUAL(rt_ysv_validate(SLICE(0x02, 0x01, 0x01)), RT_EINVAL);
    CU_ASSERT_EQUAL(rt_ysv_validate(SLICE(0x00, 0x00)), RT_EINVAL);
}

static void test_encode_roundtrip(void)
{
    rt_buf_t b = {0};
    rt_ymsg_encode_sync(&b, RT_YSYNC_UPDATE, SLICE(0x00, 0x00));
    CU_ASSERT_EQUAL(b.len, 5);
    CU_ASSERT(memcmp(b.data, (const uint8_t[]){0, 2, 2, 0, 0}, 5) == 0);
    b.len = 0;
    rt_buf_t aw = {0};
    rt_yvar_write(&aw, 2);
    rt_yaw_encode_entry(&aw, 11, 1, RT_SLICE_LIT("{\"user\":{\"name\":\"A\"}}"));
    rt_yaw_encode_entry(&aw, 300, 7, RT_SLICE_LIT("null"));
    CU_ASSERT_EQUAL(rt_yaw_validate((rt_slice_t){aw.data, aw.len}), RT_OK);
    rt_ymsg_encode_awareness(&b, (rt_slice_t){aw.data, aw.len});
    rt_ymsg_t m;
    CU_ASSERT_EQUAL(rt_ymsg_decode((rt_slice_t){b.data, b.len}, &m), RT_OK);
    rt_yaw_reader_t r;
    rt_yaw_entry_t e;
    CU_ASSERT_EQUAL(rt_yaw_begin(&r, m.payload), RT_OK);
    CU_ASSERT_EQUAL(rt_yaw_next(&r, &e), 1);
    CU_ASSERT_EQUAL(e.client, 11);
    CU_ASSERT_FALSE(rt_yaw_state_is_null(e.state));
    CU_ASSERT_EQUAL(rt_yaw_next(&r, &e), 1);
    CU_ASSERT_EQUAL(e.client, 300);
    CU_ASSERT_EQUAL(e.clock, 7);
    CU_ASSERT_TRUE(rt_yaw_state_is_null(e.state));
    CU_ASSERT_EQUAL(rt_yaw_next(&r, &e), 0);
    rt_buf_dispose(&b);
    rt_buf_dispose(&aw);
}

static void test_awareness_malformed(void)
{
    CU_ASSERT_EQUAL(rt_yaw_validate(SLICE(0x01, 0x07, 0x01, 0x05, '{', 'b', 'a', 'd', '}')), RT_EINVAL);
    CU_ASSERT_EQUAL(rt_yaw_validate(SLICE(0x01, 0x07, 0x01, 0x09, '{', '}')), RT_EINVAL); /* string too short */
    CU_ASSERT_EQUAL(rt_yaw_validate(SLICE(0x05, 0x07, 0x01)), RT_EINVAL);                 /* impossible count */
    CU_ASSERT_EQUAL(rt_yaw_validate(SLICE(0x00, 0x00)), RT_EINVAL);                       /* trailing */
    CU_ASSERT_EQUAL(rt_yaw_validate(SLICE(0x01, 0x07, 0x01, 0x02, '{', '}')), RT_OK);
}

void test_yproto_register(void)
{
    static const CU_TestInfo tests[] = {
        {"varuint", test_varuint},
        {"messages", test_messages},
        {"encode_roundtrip", test_encode_roundtrip},
        {"awareness_malformed", test_awareness_malformed},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("yproto", tests);
}
