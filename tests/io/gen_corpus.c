/* Writes every case of the malformed-safetensors corpus (corpus.c) as a file into the directory
 * given on the command line, e.g. as the seed corpus of tests/fuzz/fuzz_safetensors.c:
 *   gen_corpus DIR */
#include <stdio.h>

#include "corpus.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    corpus c;
    corpus_build(&c);
    int n = corpus_write_dir(&c, argv[1]);
    corpus_free(&c);
    if (n < 0) {
        fprintf(stderr, "gen_corpus: cannot write into %s\n", argv[1]);
        return 3;
    }
    fprintf(stderr, "gen_corpus: %d files in %s\n", n, argv[1]);
    return 0;
}
