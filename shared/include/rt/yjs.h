/*
 * rt/yjs.h: a Yjs-compatible (yjs 13.6) document engine and update algebra.
 *
 * An rt_ydoc_t is one in-memory document, integrated the way Yjs integrates
 * (YATA conflict resolution, pending structs and deletes, garbage collection,
 * merging of adjacent structs).  Updates are the V1 wire format unless a
 * function says V2.  Every input is validated; malformed or hostile bytes give
 * RT_EINVAL and leave the document untouched.
 *
 * Threads: an rt_ydoc_t may be used from one thread at a time (no internal
 * locking).  The rt_yupdate_* functions are pure and callable from any thread.
 * All functions borrow their slice arguments and append to caller-owned
 * rt_buf_t outputs (the buffer is only appended to, never reset).
 */
#ifndef RT_YJS_H
#define RT_YJS_H

#include "rt/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting limit for `any` values and nested types (hostile input guard). */
#define RT_YJS_MAX_DEPTH 64

typedef struct rt_ydoc rt_ydoc_t;

/* The kind of a root type, for content as JSON.  The wire does not carry it. */
typedef enum rt_ykind {
    RT_YKIND_AUTO = 0,     /* infer: map entries -> map, strings/formats -> text, else array */
    RT_YKIND_TEXT,         /* JSON string (Y.Text toString()) */
    RT_YKIND_MAP,          /* JSON object (Y.Map toJSON()) */
    RT_YKIND_ARRAY,        /* JSON array (Y.Array toJSON()) */
    RT_YKIND_XML_FRAGMENT, /* JSON string (Y.XmlFragment toString()) */
} rt_ykind_t;

/* A caller-supplied kind for one root name. */
typedef struct rt_ykind_hint {
    const char *name; /* NUL-terminated root name */
    rt_ykind_t kind;
} rt_ykind_hint_t;

/* ---- documents ---------------------------------------------------------- */

/* Creates an empty document with garbage collection on (Yjs's default).
 * Returns 0; *out is owned by the caller (rt_ydoc_destroy). */
int rt_ydoc_create(rt_ydoc_t **out);

/* Frees the document.  Accepts NULL. */
void rt_ydoc_destroy(rt_ydoc_t *doc);

/* Turns garbage collection off or on (Yjs `doc.gc`).  Call before applying updates. */
void rt_ydoc_set_gc(rt_ydoc_t *doc, bool gc);

/* Applies a V1 update (Y.applyUpdate).  Borrows `update`.  The whole update is
 * validated first: on RT_EINVAL the document is unchanged.  If `changed` is not
 * NULL, appends the V1 update Yjs would emit in its 'update' event for this
 * transaction (nothing is appended when nothing changed, e.g. a duplicate).
 * When the apply makes Yjs clean up the formatting of a nested Y.Text /
 * Y.XmlText, Yjs emits a second event; `changed` then gets the merge of both
 * (Y.mergeUpdates), which is what a server broadcasting both amounts to. */
int rt_ydoc_apply_update(rt_ydoc_t *doc, rt_slice_t update, rt_buf_t *changed);

/* The same for a V2 update (Y.applyUpdateV2); `changed` is still V1. */
int rt_ydoc_apply_update_v2(rt_ydoc_t *doc, rt_slice_t update_v2, rt_buf_t *changed);

/* Applies a V1 update like rt_ydoc_apply_update, but keeps what changed in the
 * document instead of encoding it: rt_ydoc_take_changes then encodes what all
 * such applies changed as one V1 update, equivalent to the merge of their
 * 'update' events and more compact (written from the store, where Yjs merged
 * adjacent structs).  Sets *changed when the document changed (a duplicate
 * does not).  Meant to be used alone between takes: what other applies
 * change in between may or may not be included. */
int rt_ydoc_apply_update_kept(rt_ydoc_t *doc, rt_slice_t update, bool *changed);

/* Appends the changes kept since the last take as one V1 update (nothing if
 * there are none) and forgets them. */
void rt_ydoc_take_changes(rt_ydoc_t *doc, rt_buf_t *out);

/* Appends Y.encodeStateVector(doc) (clients descending, pending not counted). */
void rt_ydoc_encode_state_vector(const rt_ydoc_t *doc, rt_buf_t *out);

/* Appends Y.encodeStateAsUpdate(doc, sv) as V1, pending structs and pending
 * delete set merged in as Yjs does.  `sv` is an encoded state vector; an empty
 * slice means the empty state vector.  RT_EINVAL if `sv` is malformed. */
int rt_ydoc_encode_state_as_update(rt_ydoc_t *doc, rt_slice_t sv, rt_buf_t *out);

/* Appends a JSON object {rootName: content} for every root type, keys in the
 * order roots were first created.  Text -> string, map -> object, array ->
 * array, XML fragment -> string as Yjs toString() shows it.  `hints` (may be
 * NULL, n_hints entries) overrides the inferred kind per root name; a hinted
 * root the document does not have is listed empty, after the others.  Numbers
 * are printed as JavaScript prints them; Uint8Array values as arrays of
 * bytes; undefined, NaN and infinities as null; bigints as numbers. */
int rt_ydoc_to_json(const rt_ydoc_t *doc, const rt_ykind_hint_t *hints, size_t n_hints, rt_buf_t *out);

/* Appends the JSON of one root type (kind RT_YKIND_AUTO infers it).
 * RT_ENOTFOUND if the document has no root of that name. */
int rt_ydoc_root_to_json(const rt_ydoc_t *doc, const char *name, rt_ykind_t kind, rt_buf_t *out);

/* True if structs or deletes wait for missing dependencies. */
bool rt_ydoc_has_pending(const rt_ydoc_t *doc);

/* Bytes currently held by the document (structs, content, indexes, pending). */
size_t rt_ydoc_memory_usage(const rt_ydoc_t *doc);

/* ---- encoded updates (no document) --------------------------------------- */

/* Checks that `update` is a well-formed V1 update.  0 or RT_EINVAL. */
int rt_yupdate_validate(rt_slice_t update);

/* Appends Y.mergeUpdates(updates) (V1).  Borrows the n slices. */
int rt_yupdate_merge(const rt_slice_t *updates, size_t n, rt_buf_t *out);

/* Appends Y.diffUpdate(update, sv) (V1); an empty `sv` slice = empty state vector. */
int rt_yupdate_diff(rt_slice_t update, rt_slice_t sv, rt_buf_t *out);

/* Appends Y.encodeStateVectorFromUpdate(update). */
int rt_yupdate_state_vector(rt_slice_t update, rt_buf_t *out);

/* Appends the V1 form of a V2 update (Y.convertUpdateFormatV2ToV1). */
int rt_yupdate_v2_to_v1(rt_slice_t update_v2, rt_buf_t *out);

#endif
