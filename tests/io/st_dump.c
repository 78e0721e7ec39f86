/* Prints what the strict reader sees in each safetensors file, one JSON line per file, for the
 * interop test (interop_st.py) to compare with the reference Python library:
 *   {"file": F, "ok": true, "tensors": [{"name", "dtype", "shape", "fnv"}...],
 *    "metadata": {...}}   or   {"file": F, "ok": false, "rule": R}
 * fnv is the 64-bit FNV-1a hash of the tensor's bytes, in hex. */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "libquant/safetensors.h"

static uint64_t fnv1a(const uint8_t *p, uint64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int dump(const char *path)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    lq_st_file *f = NULL;
    lq_error err;
    lq_error_clear(&err);
    if (lq_st_open(path, NULL, &f, &err) != LQ_OK) {
        cJSON_AddFalseToObject(o, "ok");
        cJSON_AddStringToObject(o, "rule", err.rule);
    } else {
        cJSON_AddTrueToObject(o, "ok");
        cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
        for (size_t i = 0; i < lq_st_count(f); i++) {
            const lq_tensor_info *t = lq_st_tensor(f, i);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t->name);
            cJSON_AddStringToObject(e, "dtype", lq_dtype_name(t->dtype));
            cJSON *shape = cJSON_AddArrayToObject(e, "shape");
            /* Shapes are at most 2^53, which a double holds exactly. */
            for (uint32_t r = 0; r < t->rank; r++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[r]));
            char hex[17];
            snprintf(hex, sizeof(hex), "%016llx",
                     (unsigned long long)fnv1a(lq_st_data(f, t), t->nbytes));
            cJSON_AddStringToObject(e, "fnv", hex);
            cJSON_AddItemToArray(ts, e);
        }
        cJSON *m = cJSON_AddObjectToObject(o, "metadata");
        const char *k, *v;
        for (size_t i = 0; lq_st_metadata_at(f, i, &k, &v) == 0; i++)
            cJSON_AddStringToObject(m, k, v);
        lq_st_close(f);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return -1;
    puts(text);
    cJSON_free(text);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (dump(argv[i]) != 0)
            rc = 1;
    return rc;
}
