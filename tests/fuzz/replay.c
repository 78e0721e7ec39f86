/* Runs a fuzz target's LLVMFuzzerTestOneInput outside libFuzzer, so the ordinary (sanitizer)
 * test build checks the same invariants over a fixed set of inputs.
 *   replay_X FILE|DIR...   every named file, and every regular file of every named directory
 *   replay_X               the generated malformed-safetensors corpus (tests/io/corpus.c):
 *                          each image whole, its header alone, and its header behind the
 *                          flag bytes 0x00, 0x01, 0x07 and 0x27 (the JSON target reads the
 *                          first byte as limits); then the images again, written to a
 *                          temporary directory and read back through the directory path.
 * Each input is copied into a block of exactly its size, so ASan sees any over-read. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/corpus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t runs;

static void run(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    if (size)
        memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    runs++;
}

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, fp);
        len += r;
        if (r == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!bad)
        run(buf, len);
    free(buf);
    return bad ? -1 : 0;
}

/* Runs (or, with remove_files, deletes) every regular file of dir. */
static int for_dir(const char *dir, int remove_files)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s\n", dir);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (remove_files ? unlink(path) != 0 : run_file(path) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

static int replay_generated(void)
{
    corpus c;
    corpus_build(&c);
    static const uint8_t flags[] = {0x00, 0x01, 0x07, 0x27};
    for (size_t i = 0; i < c.n; i++) {
        const corpus_case *k = &c.cases[i];
        run(k->bytes, k->len);
        if (k->len <= 8)
            continue;
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = (n << 8) | k->bytes[b];
        size_t hlen = n <= k->len - 8 ? (size_t)n : k->len - 8;
        run(k->bytes + 8, hlen);
        uint8_t *buf = malloc(hlen + 1);
        if (!buf)
            abort();
        memcpy(buf + 1, k->bytes + 8, hlen);
        for (size_t f = 0; f < sizeof(flags); f++) {
            buf[0] = flags[f];
            run(buf, hlen + 1);
        }
        free(buf);
    }

    int rc = 0;
    char dir[] = "/tmp/lqreplay-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "replay: mkdtemp failed\n");
        rc = -1;
    } else {
        if (corpus_write_dir(&c, dir) != (int)c.n || for_dir(dir, 0) != 0)
            rc = -1;
        if (for_dir(dir, 1) != 0 || rmdir(dir) != 0)
            rc = -1;
    }
    corpus_free(&c);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc < 2) {
        rc = replay_generated();
    } else {
        for (int i = 1; i < argc; i++) {
            struct stat sb;
            if (stat(argv[i], &sb) != 0) {
                fprintf(stderr, "replay: cannot stat %s\n", argv[i]);
                rc = -1;
            } else if (S_ISDIR(sb.st_mode) ? for_dir(argv[i], 0) != 0 : run_file(argv[i]) != 0) {
                rc = -1;
            }
        }
    }
    fprintf(stderr, "replay: %zu inputs%s\n", runs, rc ? ", with errors" : "");
    return rc ? 1 : 0;
}
