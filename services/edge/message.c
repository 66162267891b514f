/* message.c: the client-facing encodings of a channel message, made once per
 * thread and shared by every local subscriber. */
#include "edge.h"
#include "rt/json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const presence_types[] = {"join", "leave", "state"};

/* The frames are written as text, not built as jansson trees: the data comes
 * as JSON text and goes out as the same text, checked but not re-encoded. */

/* The strings came over the bus, and a text frame must be UTF-8 (the data's
 * check covers the data). */
static bool strings_valid(const char *const *strings, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!rt_utf8_valid((const uint8_t *)strings[i], strlen(strings[i])))
            return false;
    return true;
}

/* A member event: {"type": "join"|"leave"|"state", "channel", "user", "conn"[, "state"]}. */
static int presence_json(const Rtsync__V1__ChannelMessage *pb, rt_buf_t *out)
{
    const Rtsync__V1__PresenceUpdate *u = pb->presence;
    if (u->member == NULL || (size_t)u->kind >= RT_ARRAY_SIZE(presence_types) ||
        !strings_valid((const char *const[]){pb->channel, u->member->user, u->member->conn}, 3))
        return RT_EINVAL;
    rt_buf_append_byte(out, '{');
    rt_json_field_str(out, "type", presence_types[u->kind]);
    rt_json_field_str(out, "channel", pb->channel);
    rt_json_field_str(out, "user", u->member->user);
    rt_json_field_str(out, "conn", u->member->conn);
    if (u->kind == RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE) {
        const ProtobufCBinaryData *state = &u->member->state;
        if (rt_json_check(state->data, state->len) == RT_OK)
            rt_json_field_raw(out, "state", state->data, state->len);
        else
            rt_json_field_raw(out, "state", "null", 4);
    }
    return RT_OK;
}

/* A signal: {"type": "signal", "channel", "from", "from_conn", "data"}. */
static int signal_json(const Rtsync__V1__ChannelMessage *pb, rt_buf_t *out)
{
    if (!strings_valid((const char *const[]){pb->channel, pb->from_user, pb->from_conn}, 3))
        return RT_EINVAL;
    rt_buf_append_byte(out, '{');
    rt_json_field_str(out, "type", "signal");
    rt_json_field_str(out, "channel", pb->channel);
    rt_json_field_str(out, "from", pb->from_user);
    rt_json_field_str(out, "from_conn", pb->from_conn);
    rt_json_field_raw(out, "data", pb->data.data, pb->data.len);
    return RT_OK;
}

/* {"type": "message", "channel"[, "offset"], "event", "data", "from"[, "id"], "ts"}. */
static int message_json(const Rtsync__V1__ChannelMessage *pb, rt_buf_t *out)
{
    if (pb->presence != NULL)
        return presence_json(pb, out);
    if (rt_json_check(pb->data.data, pb->data.len) < 0)
        return RT_EINVAL;
    if (*pb->to_conn)
        return signal_json(pb, out);
    if (!strings_valid((const char *const[]){pb->channel, pb->event, pb->from_user, pb->id}, 4))
        return RT_EINVAL;
    rt_buf_append_byte(out, '{');
    rt_json_field_str(out, "type", "message");
    rt_json_field_str(out, "channel", pb->channel);
    if (pb->offset != 0)
        rt_json_field_int(out, "offset", (int64_t)pb->offset);
    rt_json_field_str(out, "event", *pb->event ? pb->event : "message");
    rt_json_field_raw(out, "data", pb->data.data, pb->data.len);
    rt_json_field_str(out, "from", pb->from_user);
    if (*pb->id)
        rt_json_field_str(out, "id", pb->id);
    rt_json_field_int(out, "ts", pb->ts_ms);
    return RT_OK;
}

edge_frame_t *edge_message_ws(edge_message_t *m)
{
    if (m->ws != NULL)
        return m->ws;
    rt_buf_t out = {0};
    if (message_json(m->pb, &out) == RT_OK) {
        rt_buf_append_byte(&out, '}');
        m->ws = edge_frame_ws(0x1, out.data, out.len);
    }
    rt_buf_dispose(&out);
    return m->ws;
}

/* Appends `data: ` lines: every CR, LF or CRLF in the text starts a new line. */
static void append_data_lines(rt_buf_t *out, const char *s, size_t len)
{
    rt_buf_append_str(out, "data: ");
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
                i++;
            rt_buf_append_str(out, "\ndata: ");
        } else {
            rt_buf_append_byte(out, (uint8_t)s[i]);
        }
    }
    rt_buf_append_byte(out, '\n');
}

/* Appends one line "name: value\n", with line breaks in value replaced. */
static void append_field(rt_buf_t *out, const char *name, const char *value)
{
    rt_buf_append_str(out, name);
    rt_buf_append_str(out, ": ");
    for (const char *p = value; *p; p++)
        rt_buf_append_byte(out, (*p == '\r' || *p == '\n') ? ' ' : (uint8_t)*p);
    rt_buf_append_byte(out, '\n');
}

edge_frame_t *edge_message_sse(edge_message_t *m)
{
    if (m->sse != NULL)
        return m->sse;
    const Rtsync__V1__ChannelMessage *pb = m->pb;
    if (pb->presence != NULL || *pb->to_conn)
        return NULL; /* streams carry messages only */
    const char *text = (const char *)pb->data.data;
    size_t len = pb->data.len, lead = 0;
    while (lead < len && (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\r' || text[lead] == '\n'))
        lead++;
    /* a string's text goes out as it is (jansson reads and checks it: a \u0000,
     * which the publishing edge's jansson refused too, is refused); other values
     * as their JSON text, checked */
    json_t *string = NULL;
    if (lead < len && text[lead] == '"') {
        string = json_loadb(text, len, JSON_DECODE_ANY, NULL);
        if (string == NULL)
            return NULL;
        text = json_string_value(string);
        len = json_string_length(string);
    } else if (rt_json_check(text, len) < 0) {
        return NULL;
    }
    rt_buf_t out = {0};
    if (pb->offset != 0)
        rt_buf_printf(&out, "id: %" PRIu64 "\n", pb->offset);
    if (*pb->event && strcmp(pb->event, "message") != 0)
        append_field(&out, "event", pb->event);
    append_data_lines(&out, text, len);
    json_decref(string);
    rt_buf_append_byte(&out, '\n');
    m->sse = edge_frame_raw(out.data, out.len);
    rt_buf_dispose(&out);
    return m->sse;
}
