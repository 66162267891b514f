/*
 * json_int.h: the lexical pieces of JSON text that rt_json_check (json.c) and
 * the Yjs codec's canonicaliser (yjs/yjsontext.c) share.  Internal to librt.
 */
#ifndef RT_JSON_INT_H
#define RT_JSON_INT_H

#include "rt/common.h"

/* A position in borrowed text [p, end). */
typedef struct rt_jscan {
    const uint8_t *p, *end;
} rt_jscan_t;

/* Skips JSON whitespace. */
void rt_jscan_ws(rt_jscan_t *j);
/* Reads four hex digits (a \u escape's) into *out. */
int rt_jscan_hex4(rt_jscan_t *j, uint32_t *out);
/* Steps over one number of RFC 8259's grammar; j->p < j->end.  RT_EINVAL if
 * none starts there. */
int rt_jscan_number(rt_jscan_t *j);

#endif
