/*
 * decode.c: decoding and validation of every message presence receives.
 *
 * Pure functions (no bus, no view), called on the loop thread and by the fuzz
 * target tests/fuzz/fuzz_pres_messages.c.  protobuf-c allocates from a bump
 * arena, so a message costs no malloc; whatever passes here is safe to store
 * and to echo to clients (names, ids and states are bounded UTF-8).
 */
#include "pres.h"

#include <stdlib.h>
#include <string.h>

/* Unpacks one message of `desc` into the (reset) arena; NULL with *why set on failure. */
static ProtobufCMessage *unpack(pres_arena_t *arena, const ProtobufCMessageDescriptor *desc, rt_slice_t bytes,
                                const char **why, int *err)
{
    *err = RT_EINVAL;
    if (bytes.len > PRES_MAX_MESSAGE) {
        *why = "message too large";
        *err = RT_ETOOBIG;
        return NULL;
    }
    rt_pb_arena_reset(arena);
    ProtobufCAllocator alloc = rt_pb_arena_allocator(arena);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, bytes.len, bytes.data);
    if (m == NULL)
        *why = "not protobuf of the subject's type";
    return m;
}

/* A decoder's verdict: RT_OK when the message unpacked (m) and passed (bad == NULL). */
static int verdict(const void *m, const char *bad, const char **why, int err)
{
    if (m == NULL)
        return err;
    if (bad != NULL) {
        *why = bad;
        return RT_EINVAL;
    }
    return RT_OK;
}

int pres_channel_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '.' || c == ':' || c == '-';
        if (!ok || n >= PRES_MAX_CHANNEL)
            return 0;
    }
    return n > 0;
}

/* Length of the UTF-8 sequence at s[0..left), 0 when invalid (overlong, surrogate, > U+10FFFF). */
static size_t utf8_seq(const uint8_t *s, size_t left)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n = s[0] >= 0xF0 && s[0] < 0xF8 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (n == 0 || n > left)
        return 0;
    uint32_t cp = s[0] & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int utf8_valid(const uint8_t *s, size_t len, int allow_controls)
{
    for (size_t i = 0; i < len;) {
        if (s[i] >= 0x80) {
            size_t n = utf8_seq(s + i, len - i);
            if (n == 0)
                return 0;
            i += n;
        } else if (s[i] == 0 || (s[i] < 0x20 && !allow_controls) || s[i] == 0x7F) {
            return 0;
        } else {
            i++;
        }
    }
    return 1;
}

int pres_text_valid(const char *s, size_t max, int may_be_empty)
{
    size_t len = strnlen(s, max + 1);
    return len <= max && (len > 0 || may_be_empty) && utf8_valid((const uint8_t *)s, len, 0);
}

/* Fills a member's edge from its batch and checks every field. */
static const char *member_invalid(Rtsync__V1__Member *m, const char *edge)
{
    if (m == NULL)
        return "update without member";
    if (!pres_channel_valid(m->channel))
        return "bad channel";
    if (!pres_text_valid(m->conn, PRES_MAX_ID, 0))
        return "bad conn";
    if (!pres_text_valid(m->user, PRES_MAX_USER, 1))
        return "bad user";
    if (m->edge[0] == '\0')
        m->edge = (char *)edge;
    else if (strcmp(m->edge, edge) != 0)
        return "member of another edge";
    if (m->state.len > PRES_MAX_STATE)
        return "state too large";
    if (!utf8_valid(m->state.data, m->state.len, 1)) /* JSON text: newlines and tabs allowed */
        return "state not UTF-8";
    return NULL;
}

static const char *batch_invalid(Rtsync__V1__PresenceBatch *b)
{
    if (!pres_text_valid(b->edge, PRES_MAX_ID, 0))
        return "bad edge";
    if ((b->snapshot_more || b->snapshot_part) && !b->snapshot)
        return "snapshot part without snapshot";
    for (size_t i = 0; i < b->n_updates; i++) {
        Rtsync__V1__PresenceUpdate *u = b->updates[i];
        if ((unsigned)u->kind > RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE)
            return "unknown kind";
        const char *bad = member_invalid(u->member, b->edge);
        if (bad != NULL)
            return bad;
    }
    return NULL;
}

static const char *signal_invalid(const Rtsync__V1__SignalRequest *s)
{
    if (!pres_channel_valid(s->channel))
        return "bad channel";
    if (!pres_text_valid(s->to_conn, PRES_MAX_ID, 0) || !pres_text_valid(s->from_conn, PRES_MAX_ID, 1))
        return "bad conn";
    if (!pres_text_valid(s->from_user, PRES_MAX_USER, 1))
        return "bad user";
    if (s->data.len > PRES_MAX_STATE || !utf8_valid(s->data.data, s->data.len, 1))
        return "bad data";
    return NULL;
}

static const char *peer_invalid(const Rtsync__V1__PeerHeartbeat *p)
{
    if (!pres_text_valid(p->instance, PRES_MAX_ID, 0))
        return "bad instance";
    for (size_t i = 0; i < p->n_edges; i++)
        if (!pres_text_valid(p->edges[i], PRES_MAX_ID, 0))
            return "bad edge";
    return NULL;
}

int pres_decode_batch(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PresenceBatch **out, const char **why)
{
    int err;
    Rtsync__V1__PresenceBatch *b = (void *)unpack(arena, &rtsync__v1__presence_batch__descriptor, bytes, why, &err);
    err = verdict(b, b ? batch_invalid(b) : NULL, why, err);
    if (err == RT_OK)
        *out = b;
    return err;
}

int pres_decode_heartbeat(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__EdgeHeartbeat **out, const char **why)
{
    int err;
    Rtsync__V1__EdgeHeartbeat *hb = (void *)unpack(arena, &rtsync__v1__edge_heartbeat__descriptor, bytes, why, &err);
    err = verdict(hb, hb && !pres_text_valid(hb->edge, PRES_MAX_ID, 0) ? "bad edge" : NULL, why, err);
    if (err == RT_OK)
        *out = hb;
    return err;
}

int pres_decode_query(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PresenceQuery **out, const char **why)
{
    int err;
    Rtsync__V1__PresenceQuery *q = (void *)unpack(arena, &rtsync__v1__presence_query__descriptor, bytes, why, &err);
    err = verdict(q, q && !pres_channel_valid(q->channel) ? "bad channel" : NULL, why, err);
    if (err == RT_OK)
        *out = q;
    return err;
}

int pres_decode_signal(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__SignalRequest **out, const char **why)
{
    int err;
    Rtsync__V1__SignalRequest *s = (void *)unpack(arena, &rtsync__v1__signal_request__descriptor, bytes, why, &err);
    err = verdict(s, s ? signal_invalid(s) : NULL, why, err);
    if (err == RT_OK)
        *out = s;
    return err;
}

int pres_decode_peer(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PeerHeartbeat **out, const char **why)
{
    int err;
    Rtsync__V1__PeerHeartbeat *p = (void *)unpack(arena, &rtsync__v1__peer_heartbeat__descriptor, bytes, why, &err);
    err = verdict(p, p ? peer_invalid(p) : NULL, why, err);
    if (err == RT_OK)
        *out = p;
    return err;
}
