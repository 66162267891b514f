/* message.c: the client-facing encodings of a channel message, made once per
 * thread and shared by every local subscriber. */
#include "edge.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const presence_types[] = {"join", "leave", "state"};

/* A member event: {"type": "join"|"leave"|"state", "channel", "user", "conn"[, "state"]}. */
static json_t *presence_json(const Rtsync__V1__ChannelMessage *pb)
{
    const Rtsync__V1__PresenceUpdate *u = pb->presence;
    if (u->member == NULL || (size_t)u->kind >= RT_ARRAY_SIZE(presence_types))
        return NULL;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", presence_types[u->kind], "channel", pb->channel, "user",
                          u->member->user, "conn", u->member->conn);
    if (o != NULL && u->kind == RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE) {
        json_t *state = json_loadb((const char *)u->member->state.data, u->member->state.len, JSON_DECODE_ANY, NULL);
        json_object_set_new(o, "state", state ? state : json_null());
    }
    return o;
}

/* A signal: {"type": "signal", "channel", "from", "from_conn", "data"}. */
static json_t *signal_json(const Rtsync__V1__ChannelMessage *pb)
{
    json_t *data = json_loadb((const char *)pb->data.data, pb->data.len, JSON_DECODE_ANY, NULL);
    if (data == NULL)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "signal", "channel", pb->channel, "from", pb->from_user,
                     "from_conn", pb->from_conn, "data", data);
}

static json_t *message_json(const Rtsync__V1__ChannelMessage *pb)
{
    if (pb->presence != NULL)
        return presence_json(pb);
    if (*pb->to_conn)
        return signal_json(pb);
    json_t *data = json_loadb((const char *)pb->data.data, pb->data.len, JSON_DECODE_ANY, NULL);
    if (data == NULL)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("message"));
    json_object_set_new(o, "channel", json_string(pb->channel));
    if (pb->offset != 0)
        json_object_set_new(o, "offset", json_integer((json_int_t)pb->offset));
    json_object_set_new(o, "event", json_string(*pb->event ? pb->event : "message"));
    json_object_set_new(o, "data", data);
    json_object_set_new(o, "from", json_string(pb->from_user));
    if (*pb->id)
        json_object_set_new(o, "id", json_string(pb->id));
    json_object_set_new(o, "ts", json_integer(pb->ts_ms));
    return o;
}

edge_frame_t *edge_message_ws(edge_message_t *m)
{
    if (m->ws != NULL)
        return m->ws;
    json_t *o = message_json(m->pb);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return NULL;
    m->ws = edge_frame_ws(0x1, text, strlen(text));
    free(text);
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
    json_t *data = json_loadb((const char *)pb->data.data, pb->data.len, JSON_DECODE_ANY, NULL);
    if (data == NULL)
        return NULL;
    rt_buf_t out = {0};
    if (pb->offset != 0)
        rt_buf_printf(&out, "id: %" PRIu64 "\n", pb->offset);
    if (*pb->event && strcmp(pb->event, "message") != 0)
        append_field(&out, "event", pb->event);
    if (json_is_string(data)) {
        append_data_lines(&out, json_string_value(data), json_string_length(data));
    } else {
        char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        append_data_lines(&out, text, strlen(text));
        free(text);
    }
    json_decref(data);
    rt_buf_append_byte(&out, '\n');
    m->sse = edge_frame_raw(out.data, out.len);
    rt_buf_dispose(&out);
    return m->sse;
}
