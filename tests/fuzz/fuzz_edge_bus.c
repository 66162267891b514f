/*
 * fuzz_edge_bus.c: what the edge does with a message from NATS: decode the
 * ChannelMessage and encode it for WebSocket and SSE clients.  Hostile bytes
 * must be refused or turned into a valid frame, never crash.
 */
#include "../../services/edge/frame.c"
#include "../../services/edge/message.c"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    edge_message_t m = {.pb = rtsync__v1__channel_message__unpack(NULL, size, data)};
    if (m.pb == NULL)
        return 0;
    edge_frame_t *ws = edge_message_ws(&m);
    if (ws != NULL) {
        /* a text frame whose payload is one JSON object */
        assert(ws->data[0] == 0x81);
        size_t hdr = ws->data[1] < 126 ? 2 : ws->data[1] == 126 ? 4 : 10;
        json_error_t err;
        json_t *o = json_loadb((const char *)ws->data + hdr, ws->len - hdr, JSON_ALLOW_NUL, &err);
        /* unless a number in the data is past jansson's range (see fuzz_json_check) */
        assert(json_is_object(o) || strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL);
        json_decref(o);
    }
    edge_frame_t *sse = edge_message_sse(&m);
    if (sse != NULL) {
        assert(sse->len >= 2 && sse->data[sse->len - 1] == '\n' && sse->data[sse->len - 2] == '\n');
    }
    edge_frame_release(m.ws);
    edge_frame_release(m.sse);
    rtsync__v1__channel_message__free_unpacked(m.pb, NULL);
    return 0;
}
