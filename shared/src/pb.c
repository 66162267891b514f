/* pb.c: the protobuf-c bump allocator and the name rule every service checks. */
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
