/* A map from C strings to indices: open addressing with linear probing over FNV-1a hashes, for
 * the name lookups that bookkeeping over every tensor of a model needs (hundreds of thousands
 * of names). Keys are borrowed, not copied: they must outlive the map. */
#ifndef LIBQUANT_INTERNAL_STRMAP_H
#define LIBQUANT_INTERNAL_STRMAP_H

#include <stddef.h>

typedef struct lq_strmap {
    const char **keys;        /* nslots entries; NULL = empty */
    size_t *vals;
    size_t nslots;            /* a power of two, at least 4/3 of the capacity asked for */
    size_t n;
} lq_strmap;

/* Prepares a map for up to cap keys. Returns 0, or -1 when out of memory. */
int lq_strmap_init(lq_strmap *m, size_t cap);
void lq_strmap_free(lq_strmap *m);
/* Adds key -> val unless key is there already (the first value is kept). Returns 1 when added,
 * 0 when key was there, -1 when the map is full (more keys than cap). */
int lq_strmap_add(lq_strmap *m, const char *key, size_t val);
/* The value of key, or (size_t)-1 when absent. */
size_t lq_strmap_get(const lq_strmap *m, const char *key);

#endif
