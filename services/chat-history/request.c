/*
 * request.c: decoding and validation of the requests chat-history receives.
 *
 * Pure functions (no DB, no bus), called on the loop thread and by the fuzz
 * target tests/fuzz/fuzz_hist_request.c.  protobuf-c allocates from a bump
 * arena, so a request costs no malloc.
 */
#include "hist.h"
#include "rtsync/v1/channel.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* Strict UTF-8 as PostgreSQL accepts it: no overlong forms, surrogates or NUL. */
int hist_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0)
            n = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            n = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            n = 4, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

/* A text field: valid UTF-8 of at most `max` bytes. */
static int field_ok(const char *s, size_t max)
{
    size_t len = strlen(s);
    return len <= max && hist_utf8_valid((const uint8_t *)s, len);
}

/* A message of a publish request: validated, borrowed into *out. */
static int message_check(const Rtsync__V1__ChannelMessage *m, hist_publish_t *out, const char **why)
{
    if (!rt_name_is_valid(m->channel, strlen(m->channel))) {
        *why = "bad channel";
        return RT_EINVAL;
    }
    if (!field_ok(m->event, HIST_MAX_FIELD) || !field_ok(m->from_user, HIST_MAX_FIELD) ||
        !field_ok(m->id, HIST_MAX_FIELD) || !field_ok(m->from_conn, HIST_MAX_FIELD) ||
        !field_ok(m->origin_edge, HIST_MAX_FIELD)) {
        *why = "bad text field";
        return RT_EINVAL;
    }
    if (m->data.len > HIST_MAX_DATA) {
        *why = "data too large";
        return RT_ETOOBIG;
    }
    *out = (hist_publish_t){
        .channel = m->channel,
        .event = m->event[0] ? m->event : HIST_DEFAULT_EVENT,
        .user = m->from_user,
        .id = m->id,
        .conn = m->from_conn,
        .origin = m->origin_edge,
        .data = {m->data.data, m->data.len},
        .ts_ms = m->ts_ms > 0 ? m->ts_ms : 0,
    };
    return RT_OK;
}

int hist_publish_decode(hist_arena_t *arena, rt_slice_t bytes, hist_publish_t *out, const char **why)
{
    if (bytes.len > HIST_MAX_DATA + 4096) {
        *why = "request too large";
        return RT_ETOOBIG;
    }
    ProtobufCAllocator alloc = rt_pb_arena_allocator(arena);
    Rtsync__V1__PublishRequest *req = rtsync__v1__publish_request__unpack(&alloc, bytes.len, bytes.data);
    if (req == NULL || req->message == NULL) {
        *why = req ? "no message" : "not a PublishRequest";
        return RT_EINVAL;
    }
    return message_check(req->message, out, why);
}

int hist_publish_batch_decode(hist_arena_t *arena, rt_slice_t bytes, hist_publish_batch_t *out, const char **why)
{
    if (bytes.len > HIST_MAX_BATCH_BYTES) {
        *why = "request too large";
        return RT_ETOOBIG;
    }
    ProtobufCAllocator alloc = rt_pb_arena_allocator(arena);
    Rtsync__V1__PublishBatchRequest *req = rtsync__v1__publish_batch_request__unpack(&alloc, bytes.len, bytes.data);
    if (req == NULL) {
        *why = "not a PublishBatchRequest";
        return RT_EINVAL;
    }
    if (req->n_messages == 0 || req->n_messages > HIST_MAX_BATCH) {
        *why = req->n_messages ? "too many messages" : "no message";
        return req->n_messages ? RT_ETOOBIG : RT_EINVAL;
    }
    out->n = req->n_messages;
    for (size_t i = 0; i < out->n; i++) {
        out->why[i] = NULL;
        out->err[i] = message_check(req->messages[i], &out->items[i], &out->why[i]);
    }
    return RT_OK;
}

int hist_query_decode(hist_arena_t *arena, rt_slice_t bytes, hist_query_t *out, const char **why)
{
    ProtobufCAllocator alloc = rt_pb_arena_allocator(arena);
    Rtsync__V1__HistoryRequest *req = rtsync__v1__history_request__unpack(&alloc, bytes.len, bytes.data);
    if (req == NULL) {
        *why = "not a HistoryRequest";
        return RT_EINVAL;
    }
    if (!rt_name_is_valid(req->channel, strlen(req->channel))) {
        *why = "bad channel";
        return RT_EINVAL;
    }
    hist_query_t q = {
        .channel = req->channel,
        .cursor = req->cursor_case == RTSYNC__V1__HISTORY_REQUEST__CURSOR_BEFORE ? HIST_BEFORE : HIST_AFTER,
        .limit = req->limit > HIST_MAX_LIMIT ? HIST_MAX_LIMIT : req->limit,
    };
    if (req->cursor_case == RTSYNC__V1__HISTORY_REQUEST__CURSOR_AFTER)
        q.position = req->after;
    else if (req->cursor_case == RTSYNC__V1__HISTORY_REQUEST__CURSOR_BEFORE)
        q.position = req->before;
    /* offsets are bigint in the store */
    if (q.position > (uint64_t)INT64_MAX) {
        *why = "cursor out of range";
        return RT_EINVAL;
    }
    *out = q;
    return RT_OK;
}
