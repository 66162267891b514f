/*
 * fuzz_edge_frame.c: the edge's parsers of client JSON, on arbitrary bytes: a
 * /ws frame (first byte even) or the body of POST .../publish (odd).  Whatever
 * is refused must come with an error frame that is valid JSON.
 */
#include "../../services/edge/protocol.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    edge_request_t req;
    edge_proto_error_t err;
    int rc = (data[0] & 1) ? edge_request_parse_publish_body(text, size - 1, &req, &err)
                           : edge_request_parse(text, size - 1, 4096, &req, &err);
    if (rc == RT_OK) {
        if (req.type != EDGE_FT_PING)
            assert(req.channel == NULL || rt_name_is_valid(req.channel, strlen(req.channel)));
        if (req.type == EDGE_FT_PUBLISH) {
            assert(req.data != NULL);
            char *dumped = json_dumps(req.data, JSON_COMPACT | JSON_ENCODE_ANY);
            assert(dumped != NULL);
            free(dumped);
        }
    } else {
        rt_buf_t out = {0};
        edge_proto_error_json(&err, &out);
        json_t *back = json_loadb((const char *)out.data, out.len, 0, NULL);
        assert(back != NULL);
        json_decref(back);
        rt_buf_dispose(&out);
    }
    edge_request_dispose(&req);
    return 0;
}
