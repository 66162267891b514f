/*
 * rt/map.h: an open-addressing hash map from byte-string keys to pointers.
 *
 * The map borrows keys: a key's bytes must stay valid while its entry is in the
 * map (usually the key lives in the value).  Not thread-safe; zero-initialised
 * is an empty map.
 */
#ifndef RT_MAP_H
#define RT_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_map_entry {
    const char *key; /* NULL: empty; (const char *)1: deleted */
    size_t keylen;
    uint64_t hash;
    void *value;
} rt_map_entry_t;

typedef struct rt_map {
    rt_map_entry_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
    size_t used; /* live plus deleted slots */
} rt_map_t;

uint64_t rt_hash_bytes(const void *data, size_t len);
/* Returns the value or NULL. */
void *rt_map_get(const rt_map_t *map, const char *key, size_t keylen);
/* Inserts or replaces; returns the previous value or NULL. */
void *rt_map_put(rt_map_t *map, const char *key, size_t keylen, void *value);
/* Removes the key; returns its value or NULL. */
void *rt_map_remove(rt_map_t *map, const char *key, size_t keylen);
/* Iterates: start with *pos = 0; returns the next entry or NULL at the end.  The
 * map must not change during iteration except by removing the entry returned. */
rt_map_entry_t *rt_map_next(const rt_map_t *map, size_t *pos);
/* Frees the table (not the values). Accepts NULL. */
void rt_map_dispose(rt_map_t *map);

#endif
