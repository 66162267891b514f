/*
 * yjs_int.h: private declarations shared by the files of the Yjs engine
 * (lib0 codec, update decoding and encoding, the document store, the update
 * algebra, JSON output).
 */
#ifndef RT_YJS_INT_H
#define RT_YJS_INT_H

#include "rt/common.h"
#include "rt/json.h"
#include "rt/yjs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>

#define YJS_MAX_SAFE ((UINT64_C(1) << 53) - 1)

/* qsort and memcpy that accept empty (possibly NULL) arrays. */
static inline void ysort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static inline void ymemcpy(void *dst, const void *src, size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

/* ---- lib0 reader / writer (lib0.c) --------------------------------------- */

typedef struct yreader {
    const uint8_t *p;
    const uint8_t *end;
} yreader_t;

static inline void yreader_init(yreader_t *r, rt_slice_t s)
{
    r->p = s.data;
    r->end = s.data ? s.data + s.len : s.data;
}

static inline yreader_t yreader_of(const uint8_t *p, size_t n)
{
    yreader_t r = {p, p ? p + n : p};
    return r;
}

static inline size_t yreader_left(const yreader_t *r)
{
    return (size_t)(r->end - r->p);
}

int yread_u8(yreader_t *r, uint8_t *out);
int yread_varuint(yreader_t *r, uint64_t *out);
/* Magnitude, and the sign bit separately (negative zero exists). */
int yread_varint(yreader_t *r, uint64_t *mag, bool *neg);
/* varUint8Array: a borrowed slice into the input. */
int yread_bytes(yreader_t *r, rt_slice_t *out);
/* varString: validated UTF-8, borrowed. */
int yread_string(yreader_t *r, rt_slice_t *out);
int yread_fixed(yreader_t *r, size_t n, const uint8_t **out);

void ywrite_varuint(rt_buf_t *b, uint64_t v);
void ywrite_varint(rt_buf_t *b, uint64_t mag, bool neg);
void ywrite_bytes(rt_buf_t *b, const uint8_t *data, size_t len); /* varUint8Array */

/* Number of UTF-16 code units of valid UTF-8. */
uint64_t yutf8_utf16_len(const uint8_t *s, size_t n);
/* Byte position of UTF-16 offset `units`; *mid is set when the offset falls
 * between the two halves of a surrogate pair (then the position is that of
 * the 4-byte sequence's start). */
size_t yutf8_pos(const uint8_t *s, size_t n, uint64_t units, bool *mid);

/* Appends a code point as UTF-8. */
void yutf8_put(rt_buf_t *b, uint32_t cp);
/* Appends a number as JSON.stringify prints it (null if not finite). */
void yjson_number(rt_buf_t *out, double d);

/* An object member while ordering keys like Object.keys (yany.c). */
typedef struct yobj_entry {
    const uint8_t *key;
    size_t key_len;
    size_t val_off, val_len; /* the value, in the caller's scratch buffer */
    uint64_t index;
    bool is_index;
    bool dead;
} yobj_entry_t;
/* Duplicates keep the first position and the last value; array-index keys
 * come first, ascending; keys must point in insertion order.  Returns the
 * new count. */
size_t yobj_order(yobj_entry_t *e, size_t n);

/* Reads one `any` and appends its canonical form (what lib0 writeAny writes
 * after readAny) to `out`. */
int yany_canon(yreader_t *r, rt_buf_t *out, int depth);
/* Skips one already validated `any`. */
void yany_skip(yreader_t *r);
/* Appends one validated canonical `any` as rtsync's JSON: undefined, NaN and
 * infinities as null, Uint8Array as an array of bytes, bigint as a number. */
void yany_to_json(yreader_t *r, rt_buf_t *out);
/* JSON.stringify of one validated canonical `any` (undefined in an object is
 * left out, in an array null; Uint8Array as an object).  RT_EINVAL where
 * JSON.stringify throws or returns undefined (bigint, top-level undefined). */
int yany_stringify(yreader_t *r, rt_buf_t *out, bool top);
/* Canonicalises JSON text like JSON.stringify(JSON.parse(text)).  "undefined"
 * is accepted only if allow_undefined. */
int yjson_canon(rt_slice_t text, rt_buf_t *out, bool allow_undefined);

/* ---- decoded updates (ydecode.c) ----------------------------------------- */

enum { YK_GC = 0, YK_ITEM = 1, YK_SKIP = 10 };
enum { YC_DELETED = 1, YC_JSON, YC_BINARY, YC_STRING, YC_EMBED, YC_FORMAT, YC_TYPE, YC_ANY, YC_DOC };
enum { YP_NONE = 0, YP_KEY = 1, YP_ID = 2 };

typedef struct yid {
    uint64_t client;
    uint64_t clock;
} yid_t;

/* A struct as decoded from an update; content is in the "payload" form:
 *   Deleted: empty; JSON: varStrings; Binary/String/Embed: raw bytes;
 *   Format: varString key + varString JSON; Type: varUint ref [+ varString name];
 *   Any: anys; Doc: varString guid + any opts.
 * All slices are borrowed (from the input or from the decoded update's arena). */
typedef struct ystruct {
    yid_t id;
    uint64_t len;
    uint8_t kind;
    uint8_t ref;
    uint8_t parent_kind;
    bool has_origin, has_rorigin, has_psub;
    yid_t origin, rorigin, parent_id;
    rt_slice_t parent_key, psub, content;
} ystruct_t;

typedef struct yblock {
    uint64_t client;
    size_t first; /* index into structs */
    size_t n;
} yblock_t;

typedef struct yrange {
    uint64_t client, clock, len;
} yrange_t;

typedef struct ydecoded {
    ystruct_t *structs;
    size_t n_structs, cap_structs;
    yblock_t *blocks;
    size_t n_blocks, cap_blocks;
    yrange_t *ds; /* in wire order */
    size_t n_ds, cap_ds;
    struct yarena *arena;
} ydecoded_t;

/* Appends a zeroed struct / block / range (arrays grow geometrically, so
 * memory follows what was actually read, never a declared count). */
ystruct_t *ydecoded_push_struct(ydecoded_t *d);
yblock_t *ydecoded_push_block(ydecoded_t *d);
yrange_t *ydecoded_push_range(ydecoded_t *d);
/* Empties a decoded update but keeps its arrays for reuse. */
void ydecoded_clear(ydecoded_t *d);
/* ydecode_v1 into an update whose arrays are reused (cleared first). */
int ydecode_v1_reuse(rt_slice_t update, ydecoded_t *d);

/* Decodes and validates a whole V1 update.  0 or RT_EINVAL (then *out is empty). */
int ydecode_v1(rt_slice_t update, ydecoded_t *out);
/* The same for V2. */
int ydecode_v2(rt_slice_t update, ydecoded_t *out);
void ydecoded_dispose(ydecoded_t *d);

/* Arena for canonicalised content. */
uint8_t *yarena_alloc(struct yarena **a, size_t n);
void yarena_free(struct yarena *a);

/* Decodes a state vector into (client, clock) pairs (later duplicates win). */
typedef struct ysv {
    yid_t *e; /* client, clock */
    size_t n;
} ysv_t;
int ysv_decode(rt_slice_t sv, ysv_t *out);
uint64_t ysv_get(const ysv_t *sv, uint64_t client);
void ysv_dispose(ysv_t *sv);

/* Reads a content payload for `ref` (validating, canonicalising into the
 * arena when needed); sets *len to the clock length. */
int ydecode_content(yreader_t *r, uint8_t ref, struct yarena **arena, rt_slice_t *payload,
                    uint64_t *len);

/* Borrows `in` when `canon` equals it, else copies `canon` into the arena. */
rt_slice_t ydecode_keep(const uint8_t *in, size_t in_len, const rt_buf_t *canon,
                        struct yarena **arena);
/* Reads ContentDoc options (an any) and appends them as ContentDoc re-encodes them. */
int ydecode_doc_opts(yreader_t *r, rt_buf_t *out);

/* ---- encoding (yencode.c) ------------------------------------------------ */

/* Appends the V1 content bytes for a payload, skipping `offset` clock units. */
void yenc_content(rt_buf_t *out, uint8_t ref, const uint8_t *data, size_t size, uint64_t len,
                  uint64_t offset);
/* Byte position inside a JSON/Any payload after `k` elements. */
size_t ypayload_skip(uint8_t ref, const uint8_t *data, size_t size, uint64_t k);
/* Writes a decoded struct (Item.write / GC.write / Skip.write) with offset. */
void yenc_struct(rt_buf_t *out, const ystruct_t *s, uint64_t offset);

/* Splits a String payload at UTF-16 `offset` like ContentString.splice:
 * left and right bytes go to the buffers. */
void ystring_split(const uint8_t *s, size_t n, uint64_t offset, rt_buf_t *left, rt_buf_t *right);

/* Lazy struct writer (updates.js LazyStructWriter). */
typedef struct ylazy_writer {
    rt_buf_t blocks; /* finished blocks: varUint n, client, clock, structs */
    rt_buf_t cur;
    uint64_t cur_client;
    uint64_t written;
    uint64_t n_blocks;
    uint64_t next_clock; /* the clock a reader will give the next struct */
    bool overflow;       /* ... went past 2^53 */
} ylazy_writer_t;
void ylazy_write(ylazy_writer_t *w, const ystruct_t *s, uint64_t offset);
/* Appends the struct section to out and frees the writer.  RT_EINVAL if the
 * clocks a reader would assign pass 2^53 (structs of one client that were not
 * contiguous are written as one block, as Yjs does). */
int ylazy_finish(ylazy_writer_t *w, rt_buf_t *out);

/* Delete sets: sort and join overlapping or adjacent ranges per client, then
 * write clients descending. */
void yds_sort_merge(yrange_t *r, size_t *n);
void yds_write(rt_buf_t *out, const yrange_t *r, size_t n);

#endif

/* ---- update algebra (yupdates.c), used by the document too --------------- */

/* Y.mergeUpdates on V1 updates (n >= 1; n == 1 copies). */
int ymerge_updates(const rt_slice_t *updates, size_t n, rt_buf_t *out);
/* Y.diffUpdate on a decoded V1 update (RT_EINVAL: see ylazy_finish). */
int ydiff_decoded(const ydecoded_t *d, const ysv_t *sv, rt_buf_t *out);
/* Writes a delete set in readDeleteSet/writeDeleteSet form: clients
 * descending (stable), ranges of one client in input order, appended. */
void yds_write_grouped(rt_buf_t *out, const yrange_t *r, size_t n);
