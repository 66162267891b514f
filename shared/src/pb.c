/* pb.c: the protobuf-c bump allocator, repeated fields built piecewise, and the name rule every service checks. */
#include "rt/pb.h"
#include "rt/common.h"

#include <stdlib.h>

void rt_pb_arena_init(rt_pb_arena_t *arena, size_t cap)
{
    arena->mem = rt_xmalloc(cap);
    arena->cap = cap;
    arena->used = 0;
}

void rt_pb_arena_dispose(rt_pb_arena_t *arena)
{
    if (arena == NULL)
        return;
    free(arena->mem);
    *arena = (rt_pb_arena_t){0};
}

void rt_pb_arena_reset(rt_pb_arena_t *arena)
{
    arena->used = 0;
}

static void *arena_alloc(void *ctx, size_t size)
{
    rt_pb_arena_t *a = ctx;
    size = (size + 15) & ~(size_t)15;
    if (size > a->cap - a->used)
        return NULL; /* protobuf-c then fails the unpack: the message is too large */
    void *p = a->mem + a->used;
    a->used += size;
    return p;
}

static void arena_free(void *ctx, void *p)
{
    (void)ctx, (void)p; /* everything goes at the next reset */
}

ProtobufCAllocator rt_pb_arena_allocator(rt_pb_arena_t *arena)
{
    return (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free, .allocator_data = arena};
}

static void append_varint(rt_buf_t *out, uint64_t v)
{
    while (v >= 0x80) {
        rt_buf_append_byte(out, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    rt_buf_append_byte(out, (uint8_t)v);
}

void rt_pb_append_message_field(rt_buf_t *out, uint32_t field, const ProtobufCMessage *m, size_t len)
{
    append_varint(out, (uint64_t)field << 3 | 2); /* wire type 2: length-delimited */
    append_varint(out, len);
    protobuf_c_message_pack(m, rt_buf_reserve(out, len));
    out->len += len;
}

int rt_name_is_valid(const char *name, size_t len)
{
    size_t n = 0;
    for (; n < len && name[n] != '\0'; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return 0;
    }
    return n >= 1 && n <= 128 && n == len;
}
