/*
 * rt/json.h: JSON text checked and written without a parse tree.
 *
 * jansson builds a tree of allocated values for every document it reads and
 * writes; on the edge's per-message paths the text is only checked and copied,
 * so these work on bytes.  Everything else uses jansson.
 */
#ifndef RT_JSON_H
#define RT_JSON_H

#include "rt/common.h"

/* jansson's limit less one: a value it accepted inside an object still fits in
 * an object once more. */
#define RT_JSON_MAX_DEPTH 2047

/* RT_OK if text is exactly one JSON value (RFC 8259, surrounding whitespace
 * allowed) in valid UTF-8, nested at most RT_JSON_MAX_DEPTH deep, with no lone
 * surrogate among its \u escapes; else RT_EINVAL.  What it accepts, jansson
 * reads too, except numbers beyond jansson's integer and double range. */
int rt_json_check(const void *text, size_t len);

/* Appends s (UTF-8, borrowed) as a JSON string literal. */
void rt_json_append_string(rt_buf_t *out, const void *s, size_t len);

/* An object written field by field: "{", fields, "}".  A field goes after a
 * comma unless it is the object's first. */
void rt_json_field_str(rt_buf_t *out, const char *key, const char *value);
/* value is JSON text the caller has checked. */
void rt_json_field_raw(rt_buf_t *out, const char *key, const void *value, size_t len);
void rt_json_field_int(rt_buf_t *out, const char *key, int64_t value);

#endif
