/* String-to-index map (internal/strmap.h). */
#include "internal/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 29));
}

int lq_strmap_init(lq_strmap *m, size_t cap)
{
    /* At most 3/4 full: linear probing stays short (about 2.5 probes per hit), and a map over
     * every tensor of a model costs 21-43 bytes per key rather than 32-64. */
    size_t ns = 16;
    while (ns < cap + cap / 3 + 1)
        ns *= 2;
    m->keys = calloc(ns, sizeof(*m->keys));
    m->vals = calloc(ns, sizeof(*m->vals));
    m->nslots = ns;
    m->n = 0;
    if (!m->keys || !m->vals) {
        lq_strmap_free(m);
        return -1;
    }
    return 0;
}

void lq_strmap_free(lq_strmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->nslots = m->n = 0;
}

int lq_strmap_add(lq_strmap *m, const char *key, size_t val)
{
    if (!m->nslots || !key)
        return -1;
    size_t mask = m->nslots - 1;
    for (size_t s = hash(key) & mask;; s = (s + 1) & mask) {
        if (!m->keys[s]) {
            if (4 * (m->n + 1) > 3 * m->nslots)
                return -1;
            m->keys[s] = key;
            m->vals[s] = val;
            m->n++;
            return 1;
        }
        if (!strcmp(m->keys[s], key))
            return 0;
    }
}

size_t lq_strmap_get(const lq_strmap *m, const char *key)
{
    if (!m->nslots || !key)
        return (size_t)-1;
    size_t mask = m->nslots - 1;
    for (size_t s = hash(key) & mask; m->keys[s]; s = (s + 1) & mask)
        if (!strcmp(m->keys[s], key))
            return m->vals[s];
    return (size_t)-1;
}
