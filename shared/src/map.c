/* map.c: linear probing over a power-of-two table with tombstones. */
#include "rt/map.h"
#include "rt/common.h"

#include <stdlib.h>
#include <string.h>

#define DELETED ((const char *)1)

uint64_t rt_hash_bytes(const void *data, size_t len)
{
    /* FNV-1a, then a final mix so that low bits depend on every byte. */
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static rt_map_entry_t *find(const rt_map_t *map, const char *key, size_t keylen, uint64_t hash)
{
    if (map->cap == 0)
        return NULL;
    for (size_t i = hash & (map->cap - 1);; i = (i + 1) & (map->cap - 1)) {
        rt_map_entry_t *e = &map->slots[i];
        if (e->key == NULL)
            return NULL;
        if (e->key != DELETED && e->hash == hash && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return e;
    }
}

static void insert_fresh(rt_map_t *map, const rt_map_entry_t *src)
{
    size_t i = src->hash & (map->cap - 1);
    while (map->slots[i].key != NULL)
        i = (i + 1) & (map->cap - 1);
    map->slots[i] = *src;
}

static void grow(rt_map_t *map)
{
    rt_map_t old = *map;
    size_t cap = old.cap ? old.cap : 8;
    while (cap / 2 < map->len + 1)
        cap *= 2;
    map->slots = rt_xcalloc(cap, sizeof(*map->slots));
    map->cap = cap;
    map->used = map->len;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key != NULL && old.slots[i].key != DELETED)
            insert_fresh(map, &old.slots[i]);
    free(old.slots);
}

void *rt_map_get(const rt_map_t *map, const char *key, size_t keylen)
{
    rt_map_entry_t *e = find(map, key, keylen, rt_hash_bytes(key, keylen));
    return e ? e->value : NULL;
}

void *rt_map_put(rt_map_t *map, const char *key, size_t keylen, void *value)
{
    uint64_t hash = rt_hash_bytes(key, keylen);
    rt_map_entry_t *e = find(map, key, keylen, hash);
    if (e != NULL) {
        void *prev = e->value;
        e->key = key;
        e->value = value;
        return prev;
    }
    if ((map->used + 1) * 4 > map->cap * 3)
        grow(map);
    insert_fresh(map, &(rt_map_entry_t){key, keylen, hash, value});
    map->len++;
    map->used++;
    return NULL;
}

void *rt_map_remove(rt_map_t *map, const char *key, size_t keylen)
{
    rt_map_entry_t *e = find(map, key, keylen, rt_hash_bytes(key, keylen));
    if (e == NULL)
        return NULL;
    void *value = e->value;
    e->key = DELETED;
    e->value = NULL;
    map->len--;
    return value;
}

rt_map_entry_t *rt_map_next(const rt_map_t *map, size_t *pos)
{
    for (; *pos < map->cap; (*pos)++) {
        rt_map_entry_t *e = &map->slots[*pos];
        if (e->key != NULL && e->key != DELETED) {
            (*pos)++;
            return e;
        }
    }
    return NULL;
}

void rt_map_dispose(rt_map_t *map)
{
    if (map == NULL)
        return;
    free(map->slots);
    *map = (rt_map_t){0};
}
