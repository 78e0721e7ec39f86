/* Decompresses one .zst file of the repository's fixtures (the GPU host has libzstd but no zstd
 * program): usage: unzst DIR NAME.zst OUT. Exit 0, or 1 with a message. */
#include <stdio.h>
#include <stdlib.h>

#include "../runtime/golden_io.h"

int main(int argc, char **argv)
{
    (void)rel;
    if (argc != 4) {
        fprintf(stderr, "usage: unzst DIR NAME.zst OUT\n");
        return 2;
    }
    size_t n = 0;
    void *b = load_zst(argv[1], argv[2], &n);
    if (!b) {
        fprintf(stderr, "unzst: cannot read %s/%s\n", argv[1], argv[2]);
        return 1;
    }
    FILE *f = fopen(argv[3], "wb");
    int rc = f && fwrite(b, 1, n, f) == n ? 0 : 1;
    if (f && fclose(f) != 0)
        rc = 1;
    free(b);
    if (rc)
        fprintf(stderr, "unzst: cannot write %s\n", argv[3]);
    return rc;
}
