/* Test-side safetensors image assembly, independent of libquant's writer and dtype table.
 *
 * Images are built from (name, dtype, shape) lists with offsets laid out back to back in list
 * order, or from a raw header text, so tests can produce both valid files and every kind of
 * malformed one. Data bytes follow a fixed pattern (stb_pattern) so readers can be checked
 * byte for byte. Every function aborts on allocation failure: these are test helpers. */
#ifndef MIMO_TESTS_IO_ST_BUILD_H
#define MIMO_TESTS_IO_ST_BUILD_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. */
typedef struct stb_buf {
    uint8_t *p;
    size_t len, cap;
} stb_buf;

void stb_put(stb_buf *b, const void *src, size_t n);
void stb_puts(stb_buf *b, const char *s);
void stb_printf(stb_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void stb_free(stb_buf *b);

typedef struct stb_tensor {
    const char *name;
    const char *dtype; /* written as given, so tests may pass unknown names */
    unsigned rank;
    uint64_t shape[12];
} stb_tensor;

/* Bits per element from reference/mxfp4_formats.md 3.2; 0 for an unknown name. */
unsigned stb_dtype_bits(const char *dtype);
/* Bytes of a tensor: numel * bits / 8 (the caller keeps it whole and small). */
uint64_t stb_tensor_bytes(const stb_tensor *t);
/* Byte k of every data section built here. */
uint8_t stb_pattern(uint64_t k);

/* 8-byte little-endian length field `len_field`, then hlen header bytes, then dlen data bytes
 * (data NULL: the pattern). Returns a malloc'd image of *out_len bytes. */
uint8_t *stb_raw(uint64_t len_field, const void *header, size_t hlen, const void *data,
                 size_t dlen, size_t *out_len);
/* Same with the true header length. */
uint8_t *stb_image(const char *header, size_t dlen, size_t *out_len);

/* A valid file: metadata_json is the text of the __metadata__ object or NULL; pad8 pads the
 * header with spaces to a multiple of 8 as the reference writer does. Offsets follow list
 * order. The header text is returned through header_out when not NULL (malloc'd). */
uint8_t *stb_build(const stb_tensor *t, size_t n, const char *metadata_json, int pad8,
                   size_t *out_len, char **header_out);

/* Writes bytes to path; 0 on success. */
int stb_write_file(const char *path, const void *bytes, size_t len);

#endif
