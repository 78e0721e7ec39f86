/* The PyTorch zip container for one small tensor dict, as `mask_embedding.pt` is shipped:
 * {"mask_token_id": int, "embedding": bf16[H]} saved by torch.save. We write it without Python:
 * an uncompressed (stored) zip with the entries torch expects (data.pkl, byteorder, data/0,
 * version, .data/serialization_id), where data.pkl is a protocol-2 pickle that rebuilds the
 * tensor through torch._utils._rebuild_tensor_v2 from persistent storage "0". The reader never
 * executes pickle: it reads the stored entry data/0 and the mask id through a whitelist scan. */
#ifndef LIBQUANT_TORCHZIP_H
#define LIBQUANT_TORCHZIP_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes path atomically. `archive` is the zip's top folder name (torch uses the file stem,
 * e.g. "mask_embedding"; 1..200 printable bytes without '/' or '\\', else TZ_ZIP).
 * embedding is bf16[h] (raw uint16, stored little-endian), 1 <= h <= 2^26 (else TZ_SHAPE).
 * Records, order, alignment and pickle bytes follow current torch.save (see torchzip.c), so
 * torch.load(path, weights_only=True) returns {"mask_token_id": id, "embedding": tensor}.
 * I/O errors carry the OUT_* rules of outfile.h. */
lq_status lq_torchzip_write_mask(const char *path, const char *archive, int64_t mask_token_id,
                                 const uint16_t *embedding, uint64_t h, uint8_t sha256[32],
                                 lq_error *err);

/* Reads a mask embedding file: *h_out elements into a malloc'ed bf16 buffer (*emb_out, free()
 * it) and the mask id. Rejects compressed entries, encrypted entries, bad CRCs, entries outside
 * the archive and pickles using anything but the whitelisted opcodes and globals
 * (LQ_ERR_CORRUPT with rules TZ_ZIP, TZ_CRC, TZ_COMPRESSED, TZ_PICKLE, TZ_SHAPE). Accepted
 * pickle opcodes: PROTO 2 (first), EMPTY_DICT (once), BINPUT, MARK, BINUNICODE, BININT1,
 * BININT2, BININT, LONG1, GLOBAL (torch._utils._rebuild_tensor_v2, torch.BFloat16Storage,
 * collections.OrderedDict only), TUPLE, TUPLE1-3, EMPTY_TUPLE, NEWTRUE, NEWFALSE, BINPERSID,
 * REDUCE, SETITEMS, SETITEM, STOP. The dict must hold exactly "mask_token_id" (int) and
 * "embedding" (a contiguous 1-D bf16 tensor at offset 0 whose storage entry has 2*h bytes).
 * Opening or reading the file fails with rule TZ_IO (LQ_ERR_NOT_FOUND or LQ_ERR_IO); files
 * above 256 MiB are LQ_ERR_LIMIT/TZ_ZIP; a byteorder record other than "little" is
 * LQ_ERR_UNSUPPORTED/TZ_ZIP. */
lq_status lq_torchzip_read_mask(const char *path, int64_t *mask_token_id, uint16_t **emb_out,
                                uint64_t *h_out, lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
