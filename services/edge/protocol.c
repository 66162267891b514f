/* protocol.c: parsing and validation of the JSON frames clients send (/ws and
 * the HTTP publish body).  Pure functions: no I/O, unit-tested and fuzzed. */
#include "edge.h"

#include <stdio.h>
#include <string.h>

#define MAX_EVENT_LEN 128
#define MAX_ID_LEN 128

static int fail(edge_proto_error_t *err, const char *code, const char *fmt, const char *arg)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), fmt, arg);
    /* The message may quote client bytes, cut anywhere: keep it printable ASCII. */
    for (char *p = err->message; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return RT_EINVAL;
}

/* Reads an optional string member; 0 if absent or a valid string. */
static int get_string(json_t *root, const char *key, size_t max_len, const char **out, edge_proto_error_t *err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v))
        return RT_OK;
    if (!json_is_string(v))
        return fail(err, "bad_request", "'%s' must be a string", key);
    if (json_string_length(v) > max_len || strlen(json_string_value(v)) != json_string_length(v))
        return fail(err, "bad_request", "'%s' is too long or contains NUL", key);
    *out = json_string_value(v);
    return RT_OK;
}

static int get_bool(json_t *root, const char *key, int *out, edge_proto_error_t *err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v))
        return RT_OK;
    if (!json_is_boolean(v))
        return fail(err, "bad_request", "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return RT_OK;
}

static int get_channel(json_t *root, const char **out, edge_proto_error_t *err)
{
    json_t *v = json_object_get(root, "channel");
    if (v == NULL)
        return fail(err, "bad_request", "'%s' is required", "channel");
    if (!json_is_string(v))
        return fail(err, "bad_channel", "'%s' must be a string", "channel");
    if (!rt_name_is_valid(json_string_value(v), json_string_length(v)))
        return fail(err, "bad_channel", "channel names match [A-Za-z0-9_.:-]{1,128}%s", "");
    *out = json_string_value(v);
    return RT_OK;
}

static int parse_publish_fields(json_t *root, edge_request_t *req, edge_proto_error_t *err)
{
    if (get_string(root, "event", MAX_EVENT_LEN, &req->event, err) != RT_OK ||
        get_bool(root, "ephemeral", &req->ephemeral, err) != RT_OK)
        return RT_EINVAL;
    if (req->event != NULL && (*req->event == '\0' || strpbrk(req->event, "\r\n") != NULL))
        return fail(err, "bad_request", "'%s' must be one non-empty line", "event");
    req->data = json_object_get(root, "data");
    if (req->data == NULL)
        return fail(err, "bad_request", "'%s' is required", "data");
    return RT_OK;
}

static int parse_since(json_t *root, edge_request_t *req, edge_proto_error_t *err)
{
    json_t *v = json_object_get(root, "since");
    if (v == NULL || json_is_null(v))
        return RT_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(err, "bad_request", "'%s' must be a non-negative integer", "since");
    req->has_since = 1;
    req->since = (uint64_t)json_integer_value(v);
    return RT_OK;
}

static const struct {
    const char *name;
    edge_frame_type_t type;
} frame_types[] = {
    {"subscribe", EDGE_FT_SUBSCRIBE}, {"unsubscribe", EDGE_FT_UNSUBSCRIBE},
    {"publish", EDGE_FT_PUBLISH},     {"ping", EDGE_FT_PING},
    {"state", EDGE_FT_STATE},         {"signal", EDGE_FT_SIGNAL},
};

static int parse_root(const char *text, size_t len, size_t max_len, edge_request_t *req, edge_proto_error_t *err)
{
    memset(req, 0, sizeof(*req));
    memset(err, 0, sizeof(*err));
    if (len > max_len)
        return fail(err, "too_large", "frame over the %s limit", "RT_MAX_FRAME");
    json_error_t jerr;
    req->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req->root == NULL)
        return fail(err, "bad_request", "invalid JSON: %.120s", jerr.text);
    if (!json_is_object(req->root))
        return fail(err, "bad_request", "a frame is a JSON object%s", "");
    /* The id travels back as `ref` in errors, so read it before anything can fail. */
    json_t *id = json_object_get(req->root, "id");
    if (json_is_string(id) && json_string_length(id) <= MAX_ID_LEN)
        err->ref = json_string_value(id);
    return get_string(req->root, "id", MAX_ID_LEN, &req->id, err);
}

int edge_request_parse(const char *text, size_t len, size_t max_len, edge_request_t *req, edge_proto_error_t *err)
{
    if (parse_root(text, len, max_len, req, err) != RT_OK)
        return RT_EINVAL;
    json_t *type = json_object_get(req->root, "type");
    if (!json_is_string(type))
        return fail(err, "bad_request", "'%s' must be a string", "type");
    size_t i;
    for (i = 0; i < RT_ARRAY_SIZE(frame_types); i++)
        if (strcmp(json_string_value(type), frame_types[i].name) == 0)
            break;
    if (i == RT_ARRAY_SIZE(frame_types))
        return fail(err, "bad_request", "unknown frame type '%.60s'", json_string_value(type));
    req->type = frame_types[i].type;
    switch (req->type) {
    case EDGE_FT_PING: return RT_OK;
    case EDGE_FT_UNSUBSCRIBE: return get_channel(req->root, &req->channel, err);
    case EDGE_FT_SUBSCRIBE:
        if (get_channel(req->root, &req->channel, err) != RT_OK || parse_since(req->root, req, err) != RT_OK)
            return RT_EINVAL;
        return get_bool(req->root, "presence", &req->presence, err);
    case EDGE_FT_PUBLISH:
        if (get_channel(req->root, &req->channel, err) != RT_OK)
            return RT_EINVAL;
        return parse_publish_fields(req->root, req, err);
    case EDGE_FT_STATE:
        if (get_channel(req->root, &req->channel, err) != RT_OK)
            return RT_EINVAL;
        req->data = json_object_get(req->root, "state");
        if (!json_is_object(req->data))
            return fail(err, "bad_request", "'%s' must be an object", "state");
        return RT_OK;
    case EDGE_FT_SIGNAL:
        if (get_channel(req->root, &req->channel, err) != RT_OK ||
            get_string(req->root, "to", MAX_ID_LEN, &req->to, err) != RT_OK)
            return RT_EINVAL;
        if (req->to == NULL)
            return fail(err, "bad_request", "'%s' is required", "to");
        req->data = json_object_get(req->root, "data");
        if (req->data == NULL)
            return fail(err, "bad_request", "'%s' is required", "data");
        return RT_OK;
    }
    return RT_EINVAL;
}

int edge_request_parse_publish_body(const char *text, size_t len, edge_request_t *req, edge_proto_error_t *err)
{
    if (parse_root(text, len, SIZE_MAX, req, err) != RT_OK)
        return RT_EINVAL;
    req->type = EDGE_FT_PUBLISH;
    return parse_publish_fields(req->root, req, err);
}

void edge_request_dispose(edge_request_t *req)
{
    if (req == NULL)
        return;
    json_decref(req->root);
    req->root = NULL;
}

void edge_proto_error_json(const edge_proto_error_t *err, rt_buf_t *out)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", err->code, "message", err->message);
    if (err->ref != NULL)
        json_object_set_new(o, "ref", json_string(err->ref));
    char *text = json_dumps(o, JSON_COMPACT);
    rt_buf_append_str(out, text);
    free(text);
    json_decref(o);
}
