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

void pres_arena_init(pres_arena_t *arena, size_t cap)
{
    arena->mem = rt_xmalloc(cap);
    arena->cap = cap;
    arena->used = 0;
}

void pres_arena_dispose(pres_arena_t *arena)
{
    free(arena->mem);
    *arena = (pres_arena_t){0};
}

static void *arena_alloc(void *ctx, size_t size)
{
    pres_arena_t *a = ctx;
    size = (size + 15) & ~(size_t)15;
    if (size > a->cap - a->used)
        return NULL; /* protobuf-c then fails the unpack */
    void *p = a->mem + a->used;
    a->used += size;
    return p;
}

static void arena_free(void *ctx, void *p)
{
    (void)ctx, (void)p;
}

/* Resets the arena and returns an allocator over it, or NULL for oversized input. */
static ProtobufCAllocator *arena_begin(pres_arena_t *arena, ProtobufCAllocator *alloc, rt_slice_t bytes,
                                       const char **why)
{
    if (bytes.len > PRES_MAX_MESSAGE) {
        *why = "message too large";
        return NULL;
    }
    arena->used = 0;
    *alloc = (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free, .allocator_data = arena};
    return alloc;
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

int pres_decode_batch(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PresenceBatch **out, const char **why)
{
    ProtobufCAllocator alloc;
    if (arena_begin(arena, &alloc, bytes, why) == NULL)
        return RT_ETOOBIG;
    Rtsync__V1__PresenceBatch *b = rtsync__v1__presence_batch__unpack(&alloc, bytes.len, bytes.data);
    if (b == NULL) {
        *why = "not a PresenceBatch";
        return RT_EINVAL;
    }
    if (!pres_text_valid(b->edge, PRES_MAX_ID, 0)) {
        *why = "bad edge";
        return RT_EINVAL;
    }
    if (b->snapshot_more && !b->snapshot) {
        *why = "snapshot_more without snapshot";
        return RT_EINVAL;
    }
    for (size_t i = 0; i < b->n_updates; i++) {
        Rtsync__V1__PresenceUpdate *u = b->updates[i];
        const char *bad = (unsigned)u->kind > RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_STATE
                              ? "unknown kind"
                              : member_invalid(u->member, b->edge);
        if (bad != NULL) {
            *why = bad;
            return RT_EINVAL;
        }
    }
    *out = b;
    return RT_OK;
}

int pres_decode_heartbeat(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__EdgeHeartbeat **out, const char **why)
{
    ProtobufCAllocator alloc;
    if (arena_begin(arena, &alloc, bytes, why) == NULL)
        return RT_ETOOBIG;
    Rtsync__V1__EdgeHeartbeat *hb = rtsync__v1__edge_heartbeat__unpack(&alloc, bytes.len, bytes.data);
    if (hb == NULL || !pres_text_valid(hb->edge, PRES_MAX_ID, 0)) {
        *why = hb ? "bad edge" : "not an EdgeHeartbeat";
        return RT_EINVAL;
    }
    *out = hb;
    return RT_OK;
}

int pres_decode_query(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PresenceQuery **out, const char **why)
{
    ProtobufCAllocator alloc;
    if (arena_begin(arena, &alloc, bytes, why) == NULL)
        return RT_ETOOBIG;
    Rtsync__V1__PresenceQuery *q = rtsync__v1__presence_query__unpack(&alloc, bytes.len, bytes.data);
    if (q == NULL || !pres_channel_valid(q->channel)) {
        *why = q ? "bad channel" : "not a PresenceQuery";
        return RT_EINVAL;
    }
    *out = q;
    return RT_OK;
}

int pres_decode_signal(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__SignalRequest **out, const char **why)
{
    ProtobufCAllocator alloc;
    if (arena_begin(arena, &alloc, bytes, why) == NULL)
        return RT_ETOOBIG;
    Rtsync__V1__SignalRequest *s = rtsync__v1__signal_request__unpack(&alloc, bytes.len, bytes.data);
    const char *bad = NULL;
    if (s == NULL)
        bad = "not a SignalRequest";
    else if (!pres_channel_valid(s->channel))
        bad = "bad channel";
    else if (!pres_text_valid(s->to_conn, PRES_MAX_ID, 0) || !pres_text_valid(s->from_conn, PRES_MAX_ID, 1))
        bad = "bad conn";
    else if (!pres_text_valid(s->from_user, PRES_MAX_USER, 1))
        bad = "bad user";
    else if (s->data.len > PRES_MAX_STATE || !utf8_valid(s->data.data, s->data.len, 1))
        bad = "bad data";
    if (bad != NULL) {
        *why = bad;
        return RT_EINVAL;
    }
    *out = s;
    return RT_OK;
}

int pres_decode_peer(pres_arena_t *arena, rt_slice_t bytes, Rtsync__V1__PeerHeartbeat **out, const char **why)
{
    ProtobufCAllocator alloc;
    if (arena_begin(arena, &alloc, bytes, why) == NULL)
        return RT_ETOOBIG;
    Rtsync__V1__PeerHeartbeat *p = rtsync__v1__peer_heartbeat__unpack(&alloc, bytes.len, bytes.data);
    if (p == NULL || !pres_text_valid(p->instance, PRES_MAX_ID, 0)) {
        *why = p ? "bad instance" : "not a PeerHeartbeat";
        return RT_EINVAL;
    }
    *out = p;
    return RT_OK;
}
