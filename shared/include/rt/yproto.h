/*
 * rt/yproto.h: the y-websocket wire protocol around Yjs updates (yjs-spec
 * section 2): message framing (sync 0, awareness 1, auth 2, query-awareness 3),
 * lib0 varUints, state vectors and awareness updates.  The updates themselves
 * are the engine's business (rt/yjs.h).
 *
 * Pure functions over borrowed bytes; callable from any thread.  Decoders never
 * abort on hostile input: they return RT_EINVAL.
 */
#ifndef RT_YPROTO_H
#define RT_YPROTO_H

#include "rt/common.h"

#include <stdbool.h>
#include <stdint.h>

enum { RT_YMSG_SYNC = 0, RT_YMSG_AWARENESS = 1, RT_YMSG_AUTH = 2, RT_YMSG_QUERY_AWARENESS = 3 };
enum { RT_YSYNC_STEP1 = 0, RT_YSYNC_STEP2 = 1, RT_YSYNC_UPDATE = 2 };

/* lib0 varUint (at most 53 bits, like JavaScript numbers). */
int rt_yvar_read(const uint8_t **p, const uint8_t *end, uint64_t *out);
void rt_yvar_write(rt_buf_t *out, uint64_t v);

/* One decoded message; payload borrows the input. */
typedef struct rt_ymsg {
    uint32_t type;      /* RT_YMSG_* */
    uint32_t sync_type; /* RT_YSYNC_* when type is RT_YMSG_SYNC */
    rt_slice_t payload; /* sync: the state vector or update; awareness: the awareness update */
} rt_ymsg_t;

/* Decodes one y-websocket message.  Sync and awareness messages must carry
 * exactly one payload (no trailing bytes); auth is accepted as it is; an
 * unknown type or sync type is RT_EINVAL. */
int rt_ymsg_decode(rt_slice_t in, rt_ymsg_t *out);

/* Appends [0, sync_type, varUint8Array(payload)]. */
void rt_ymsg_encode_sync(rt_buf_t *out, uint32_t sync_type, rt_slice_t payload);
/* Appends [1, varUint8Array(update)]. */
void rt_ymsg_encode_awareness(rt_buf_t *out, rt_slice_t update);

/* Checks an encoded state vector: count, then count (client, clock) pairs, nothing after. */
int rt_ysv_validate(rt_slice_t sv);

/* ---- awareness updates: varUint n, n x (client, clock, varString JSON state) ---- */

typedef struct rt_yaw_entry {
    uint64_t client, clock;
    rt_slice_t state; /* JSON text; "null" removes the state */
} rt_yaw_entry_t;

typedef struct rt_yaw_reader {
    const uint8_t *p, *end;
    uint64_t remaining;
} rt_yaw_reader_t;

/* Starts reading `update` (borrowed).  RT_EINVAL if the count is impossible. */
int rt_yaw_begin(rt_yaw_reader_t *r, rt_slice_t update);
/* 1: *e filled; 0: the end (with no trailing bytes); RT_EINVAL: malformed. */
int rt_yaw_next(rt_yaw_reader_t *r, rt_yaw_entry_t *e);
/* The whole update is well formed and every state is one valid JSON value. */
int rt_yaw_validate(rt_slice_t update);
/* True if the state text is the JSON null. */
bool rt_yaw_state_is_null(rt_slice_t state);
/* Appends one entry (count is the caller's: write it first with rt_yvar_write). */
void rt_yaw_encode_entry(rt_buf_t *out, uint64_t client, uint64_t clock, rt_slice_t state);

#endif
