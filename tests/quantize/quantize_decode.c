/* Helper of interop_quantize.py: libquant's decode of MXFP4 tensors of a mimo-quantize output.
 *
 * usage: quantize_decode OUT_DIR DEST WEIGHT_NAME [WEIGHT_NAME...]
 *
 * For each name, finds the packed U8 weight (NAME, or NAME_packed in the compressed-tensors
 * layout) and NAME_scale in OUT_DIR through the strict checkpoint reader, decodes it with
 * lq_mxfp4_dequantize and appends the float32 values (native byte order) to DEST.
 * Exit 0 on success, 1 with a message otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/libquant.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s OUT_DIR DEST WEIGHT_NAME...\n", argv[0]);
        return 1;
    }
    lq_ckpt *ck = NULL;
    lq_error err;
    char buf[1600];
    lq_error_clear(&err);
    if (lq_ckpt_open(argv[1], NULL, &ck, &err) != LQ_OK) {
        fprintf(stderr, "quantize_decode: %s\n", lq_error_format(&err, buf, sizeof(buf)));
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    int rc = f ? 0 : 1;
    for (int i = 3; i < argc && rc == 0; i++) {
        char pn[1100], sn[1100];
        lq_ckpt_tensor w, s;
        snprintf(pn, sizeof(pn), "%s_packed", argv[i]);
        snprintf(sn, sizeof(sn), "%s_scale", argv[i]);
        if ((lq_ckpt_find(ck, argv[i], &w) != 0 && lq_ckpt_find(ck, pn, &w) != 0) || lq_ckpt_find(ck, sn, &s) != 0 ||
            w.info->rank != 2 || s.info->nbytes * 16 != w.info->nbytes) {
            fprintf(stderr, "quantize_decode: %s: no MXFP4 weight and scale pair\n", argv[i]);
            rc = 1;
            break;
        }
        size_t n = (size_t)w.info->nbytes * 2;
        float *out = malloc(n * sizeof(float));
        if (!out || lq_mxfp4_dequantize(lq_st_data(w.file, w.info), lq_st_data(s.file, s.info), n, out, NULL) != LQ_OK ||
            fwrite(out, sizeof(float), n, f) != n) {
            fprintf(stderr, "quantize_decode: %s: decode or write failed\n", argv[i]);
            rc = 1;
        }
        free(out);
    }
    if (f && fclose(f) != 0)
        rc = 1;
    lq_ckpt_close(ck);
    return rc;
}
