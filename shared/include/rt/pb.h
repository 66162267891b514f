/*
 * rt/pb.h: protobuf helpers shared by the services.
 *
 * An arena is a bump allocator for protobuf-c: decoding a message from the bus
 * costs no malloc, a message that would not fit is refused (protobuf-c fails
 * the unpack), and one reset frees everything.  One arena per thread.
 */
#ifndef RT_PB_H
#define RT_PB_H

#include "rt/common.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_pb_arena {
    uint8_t *mem;
    size_t used, cap;
} rt_pb_arena_t;

void rt_pb_arena_init(rt_pb_arena_t *arena, size_t cap);
/* Frees the memory; the arena is empty afterwards.  Accepts NULL. */
void rt_pb_arena_dispose(rt_pb_arena_t *arena);
/* Forgets everything allocated: what was decoded from it is gone. */
void rt_pb_arena_reset(rt_pb_arena_t *arena);
/* A protobuf-c allocator drawing from the arena (borrows it). */
ProtobufCAllocator rt_pb_arena_allocator(rt_pb_arena_t *arena);

/* Appends `m`, whose packed size is `len` (the caller has it to check a limit
 * first), to `out` as field `field` of an enclosing message (a length-delimited
 * field): repeated message fields built one element at a time, from data that is
 * only borrowed meanwhile.  Borrows m. */
void rt_pb_append_message_field(rt_buf_t *out, uint32_t field, const ProtobufCMessage *m, size_t len);

/* 1 if `name` (NUL-terminated, at most len bytes read) is a channel or document
 * name: [A-Za-z0-9_.:-]{1,128} (PROTOCOL.md section 2). */
int rt_name_is_valid(const char *name, size_t len);

#endif
