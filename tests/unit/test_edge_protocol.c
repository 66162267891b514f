/* test_edge_protocol.c: the edge's pure parts: client frame parsing, names,
 * WebSocket frame encoding and scanning, the output queue, SSE encoding. */
#include "../../services/edge/ws.h"
#include "unit.h"

#include <string.h>

#define MAX_FRAME 65536

static int parse(const char *text, edge_request_t *req, edge_proto_error_t *err)
{
    return edge_request_parse(text, strlen(text), MAX_FRAME, req, err);
}

static void expect_error(const char *text, const char *code)
{
    edge_request_t req;
    edge_proto_error_t err;
    CU_ASSERT_EQUAL(parse(text, &req, &err), RT_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err.code);
    if (strcmp(err.code, code) != 0)
        fprintf(stderr, "\n%s: got %s (%s), want %s\n", text, err.code, err.message, code);
    CU_ASSERT_STRING_EQUAL(err.code, code);
    edge_request_dispose(&req);
}

static void test_parse_valid(void)
{
    edge_request_t req;
    edge_proto_error_t err;
    CU_ASSERT_EQUAL(
        parse("{\"type\":\"subscribe\",\"channel\":\"a.b:c-d_e\",\"since\":5,\"presence\":true}", &req, &err), RT_OK);
    CU_ASSERT_EQUAL(req.type, EDGE_FT_SUBSCRIBE);
    CU_ASSERT_STRING_EQUAL(req.channel, "a.b:c-d_e");
    CU_ASSERT(req.has_since && req.since == 5 && req.presence);
    edge_request_dispose(&req);

    CU_ASSERT_EQUAL(parse("{\"type\":\"publish\",\"channel\":\"c\",\"data\":[1,{\"x\":null}],\"event\":\"token\","
                          "\"id\":\"m1\",\"ephemeral\":true}",
                          &req, &err),
                    RT_OK);
    CU_ASSERT_EQUAL(req.type, EDGE_FT_PUBLISH);
    CU_ASSERT_STRING_EQUAL(req.event, "token");
    CU_ASSERT_STRING_EQUAL(req.id, "m1");
    CU_ASSERT(req.ephemeral);
    CU_ASSERT(json_is_array(req.data));
    edge_request_dispose(&req);

    CU_ASSERT_EQUAL(parse("{\"type\":\"ping\"}", &req, &err), RT_OK);
    CU_ASSERT_EQUAL(req.type, EDGE_FT_PING);
    edge_request_dispose(&req);
}

static void test_parse_errors(void)
{
    expect_error("not json", "bad_request");
    expect_error("[1,2]", "bad_request");
    expect_error("{\"type\":42}", "bad_request");
    expect_error("{\"type\":\"launch\"}", "bad_request");
    expect_error("{\"type\":\"subscribe\"}", "bad_request");
    expect_error("{\"type\":\"subscribe\",\"channel\":7}", "bad_channel");
    expect_error("{\"type\":\"subscribe\",\"channel\":\"a/b\"}", "bad_channel");
    expect_error("{\"type\":\"subscribe\",\"channel\":\"\"}", "bad_channel");
    expect_error("{\"type\":\"subscribe\",\"channel\":\"c\",\"since\":-1}", "bad_request");
    expect_error("{\"type\":\"subscribe\",\"channel\":\"c\",\"since\":\"5\"}", "bad_request");
    expect_error("{\"type\":\"publish\",\"channel\":\"c\"}", "bad_request");
    expect_error("{\"type\":\"publish\",\"channel\":\"c\",\"data\":1,\"ephemeral\":\"yes\"}", "bad_request");
    expect_error("{\"type\":\"publish\",\"channel\":\"c\",\"data\":1,\"event\":\"a\\nb\"}", "bad_request");
    expect_error("{\"type\":\"publish\",\"channel\":\"c\",\"data\":1,\"id\":\"a\\u0000b\"}", "bad_request");
    expect_error("{\"type\":\"ping\",\"type\":\"ping\"}", "bad_request");
    expect_error("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}", "bad_request");
    char big[300];
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    char frame[400];
    snprintf(frame, sizeof(frame), "{\"type\":\"subscribe\",\"channel\":\"%s\"}", big);
    expect_error(frame, "bad_channel");
}

static void test_error_carries_ref_and_is_ascii(void)
{
    edge_request_t req;
    edge_proto_error_t err;
    CU_ASSERT_EQUAL(parse("{\"type\":\"publish\",\"id\":\"r9\",\"channel\":\"c\"}", &req, &err), RT_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.ref, "r9");
    rt_buf_t out = {0};
    edge_proto_error_json(&err, &out);
    rt_buf_append_byte(&out, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)out.data, "\"ref\":\"r9\""));
    rt_buf_dispose(&out);
    edge_request_dispose(&req);
    /* a quoted type with multi-byte characters cut anywhere still gives valid output */
    CU_ASSERT_EQUAL(parse("{\"type\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                          "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                          "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}",
                          &req, &err),
                    RT_EINVAL);
    for (const char *p = err.message; *p; p++)
        CU_ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    edge_proto_error_json(&err, &out);
    CU_ASSERT(out.len > 0);
    rt_buf_dispose(&out);
    edge_request_dispose(&req);
}

static void test_too_large(void)
{
    edge_request_t req;
    edge_proto_error_t err;
    CU_ASSERT_EQUAL(edge_request_parse("{\"type\":\"ping\"}", 15, 10, &req, &err), RT_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.code, "too_large");
    edge_request_dispose(&req);
}

static void test_ws_frame_lengths(void)
{
    static uint8_t payload[70000];
    size_t sizes[] = {0, 125, 126, 65535, 65536};
    size_t hdrs[] = {2, 2, 4, 4, 10};
    for (size_t i = 0; i < RT_ARRAY_SIZE(sizes); i++) {
        edge_frame_t *f = edge_frame_ws(0x1, payload, sizes[i]);
        CU_ASSERT_EQUAL(f->len, sizes[i] + hdrs[i]);
        CU_ASSERT_EQUAL(f->data[0], 0x81);
        /* a server frame is unmasked, so the scanner must find it complete */
        CU_ASSERT_EQUAL(edge_ws_complete_frames_len(f->data, f->len, 1 << 20), f->len);
        CU_ASSERT_EQUAL(edge_ws_complete_frames_len(f->data, f->len - 1, 1 << 20), 0);
        edge_frame_release(f);
    }
    edge_frame_t *c = edge_frame_ws_close(4008, "slow");
    CU_ASSERT_EQUAL(c->len, 2 + 2 + 4);
    CU_ASSERT(c->data[0] == 0x88 && c->data[2] == (4008 >> 8) && c->data[3] == (4008 & 0xff));
    edge_frame_release(c);
}

static void test_complete_frames_masked(void)
{
    /* two masked client frames of 3 and 200 bytes, then half of a third */
    uint8_t buf[512] = {0};
    size_t n = 0;
    buf[n++] = 0x81, buf[n++] = 0x80 | 3, n += 4 + 3;
    buf[n++] = 0x81, buf[n++] = 0x80 | 126, buf[n++] = 0, buf[n++] = 200, n += 4 + 200;
    size_t two = n;
    buf[n++] = 0x81, buf[n++] = 0x80 | 10, n += 4 + 5;
    CU_ASSERT_EQUAL(edge_ws_complete_frames_len(buf, n, 65536), two);
    CU_ASSERT_EQUAL(edge_ws_complete_frames_len(buf, 1, 65536), 0);
    /* a frame declaring more than the limit is handed over at once, to be refused */
    uint8_t huge[] = {0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(edge_ws_complete_frames_len(huge, sizeof(huge), 65536), sizeof(huge));
}

static void test_outq(void)
{
    edge_outq_t q = {0};
    edge_frame_t *shared = edge_frame_raw("abc", 3);
    for (int i = 0; i < 10; i++)
        edge_outq_push(&q, edge_frame_ref(shared));
    CU_ASSERT_EQUAL(q.bytes, 30);
    CU_ASSERT_EQUAL(shared->refs, 11);
    h2o_iovec_t vecs[4];
    CU_ASSERT_EQUAL(edge_outq_take(&q, vecs, 4), 4);
    CU_ASSERT_EQUAL(q.inflight, 4);
    edge_outq_drop_pending(&q);
    CU_ASSERT_EQUAL(q.count, 4);
    CU_ASSERT_EQUAL(q.bytes, 12);
    edge_outq_push(&q, edge_frame_ref(shared));
    edge_outq_written(&q);
    CU_ASSERT_EQUAL(q.count, 1);
    CU_ASSERT_EQUAL(q.bytes, 3);
    CU_ASSERT_EQUAL(edge_outq_take(&q, vecs, 4), 1);
    CU_ASSERT(vecs[0].len == 3 && memcmp(vecs[0].base, "abc", 3) == 0);
    edge_outq_dispose(&q);
    CU_ASSERT_EQUAL(shared->refs, 1);
    edge_frame_release(shared);
}

static edge_frame_t *sse_of(const char *event, const char *data, uint64_t offset, edge_message_t *m)
{
    static Rtsync__V1__ChannelMessage pb;
    rtsync__v1__channel_message__init(&pb);
    pb.channel = "c";
    pb.event = (char *)event;
    pb.data.data = (uint8_t *)data;
    pb.data.len = strlen(data);
    pb.offset = offset;
    *m = (edge_message_t){.pb = &pb};
    return edge_message_sse(m);
}

static void expect_sse(const char *event, const char *data, uint64_t offset, const char *want)
{
    edge_message_t m;
    edge_frame_t *f = sse_of(event, data, offset, &m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(f->len, strlen(want));
    CU_ASSERT(memcmp(f->data, want, f->len) == 0);
    edge_frame_release(m.sse);
}

static void test_sse_format(void)
{
    expect_sse("message", "\"hello\"", 7, "id: 7\ndata: hello\n\n");
    expect_sse("token", "\"a\\nb\\r\\nc\"", 0, "event: token\ndata: a\ndata: b\ndata: c\n\n");
    /* other values go out as their text, unchanged */
    expect_sse("done", "{\"n\": 1}", 12, "id: 12\nevent: done\ndata: {\"n\": 1}\n\n");
    expect_sse("", " \"x\" ", 0, "data: x\n\n");
    expect_sse("", "\"\"", 0, "data: \n\n");
    edge_message_t m;
    CU_ASSERT_PTR_NULL(sse_of("x", "{broken", 1, &m));
    CU_ASSERT_PTR_NULL(sse_of("x", "\"\\u0000\"", 1, &m));
}

static void expect_ws(const Rtsync__V1__ChannelMessage *pb, const char *want)
{
    edge_message_t m = {.pb = (Rtsync__V1__ChannelMessage *)pb};
    edge_frame_t *f = edge_message_ws(&m);
    if (want == NULL) {
        CU_ASSERT_PTR_NULL(f);
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t hdr = f->data[1] < 126 ? 2 : 4;
    CU_ASSERT_EQUAL(f->data[0], 0x81);
    CU_ASSERT_EQUAL(f->len - hdr, strlen(want));
    CU_ASSERT(memcmp(f->data + hdr, want, f->len - hdr) == 0);
    edge_frame_release(f);
}

static void test_ws_message_frames(void)
{
    Rtsync__V1__ChannelMessage pb = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    pb.channel = "room";
    pb.event = "chat";
    pb.data = (ProtobufCBinaryData){8, (uint8_t *)"{\"n\": 1}"};
    pb.from_user = "al\"ice";
    pb.id = "m1";
    pb.offset = 7;
    pb.ts_ms = 5;
    expect_ws(&pb, "{\"type\":\"message\",\"channel\":\"room\",\"offset\":7,\"event\":\"chat\",\"data\":{\"n\": 1},"
                   "\"from\":\"al\\\"ice\",\"id\":\"m1\",\"ts\":5}");
    pb.from_user = "\xc3";
    expect_ws(&pb, NULL); /* a text frame must be UTF-8 */
    pb.from_user = "u";
    pb.data = (ProtobufCBinaryData){5, (uint8_t *)"{\"n\":"};
    expect_ws(&pb, NULL);
    pb.to_conn = "c2";
    pb.from_conn = "c1";
    pb.data = (ProtobufCBinaryData){4, (uint8_t *)"\"hi\""};
    expect_ws(&pb, "{\"type\":\"signal\",\"channel\":\"room\",\"from\":\"u\",\"from_conn\":\"c1\",\"data\":\"hi\"}");
    Rtsync__V1__Member member = RTSYNC__V1__MEMBER__INIT;
    member.user = "u";
    member.conn = "c1";
    member.state = (ProtobufCBinaryData){3, (uint8_t *)"{x}"};
    Rtsync__V1__PresenceUpdate update = RTSYNC__V1__PRESENCE_UPDATE__INIT;
    update.kind = RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE;
    update.member = &member;
    pb.presence = &update;
    expect_ws(&pb, "{\"type\":\"state\",\"channel\":\"room\",\"user\":\"u\",\"conn\":\"c1\",\"state\":null}");
}

void test_edge_protocol_register(void)
{
    static const CU_TestInfo tests[] = {
        {"parse_valid", test_parse_valid},
        {"parse_errors", test_parse_errors},
        {"error_carries_ref_and_is_ascii", test_error_carries_ref_and_is_ascii},
        {"too_large", test_too_large},
        {"ws_frame_lengths", test_ws_frame_lengths},
        {"complete_frames_masked", test_complete_frames_masked},
        {"outq", test_outq},
        {"sse_format", test_sse_format},
        {"ws_message_frames", test_ws_message_frames},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("edge_protocol", tests);
}
