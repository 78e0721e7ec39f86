/* The Hugging Face tokenizer.json byte-level BPE tokenizer (the Qwen2 / MiMo configuration),
 * giving the same ids as the `tokenizers` library (docs/tokenizer.md).
 *
 * Supported: model BPE (vocab + merges as "a b" strings or [a, b] pairs; unk_token, fuse_unk and
 * ignore_merges honoured); normalizer null, NFC or a Sequence of NFC; pre_tokenizer ByteLevel
 * (add_prefix_space false, use_regex either way) alone or last in a Sequence after Split steps
 * (Regex or String pattern, behavior Isolated, invert false); decoder ByteLevel; post_processor
 * null or ByteLevel; added tokens with lstrip, rstrip, normalized and special. Everything else is
 * refused at open with a TOK_* rule naming the file and the item.
 *
 * A tokenizer is immutable after open: encode, decode and the lookups may run from many threads
 * at once. */
#ifndef MIMO_RUNTIME_TOKENIZER_H
#define MIMO_RUNTIME_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "libquant/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_tokenizer rt_tokenizer;

/* path: a tokenizer.json file or a directory holding one. Errors name the file and a TOK_* rule:
 * TOK_OPEN (missing or unreadable), TOK_JSON (not strict JSON; the message gives the JSON_* rule),
 * TOK_FIELD (a required member missing or of the wrong type), TOK_MODEL_TYPE, TOK_BPE_OPTION,
 * TOK_BPE_UNK, TOK_VOCAB_ID, TOK_VOCAB_DUP_ID, TOK_MERGE_FORMAT, TOK_MERGE_UNKNOWN, TOK_ADDED,
 * TOK_ADDED_ID, TOK_ADDED_OPTION, TOK_NORMALIZER, TOK_PRETOKENIZER, TOK_REGEX, TOK_DECODER,
 * TOK_POSTPROCESSOR, TOK_TRUNCATION, TOK_LIMIT. */
lq_status rt_tokenizer_open(const char *path, rt_tokenizer **out, lq_error *err);
void rt_tokenizer_close(rt_tokenizer *t); /* accepts NULL */
size_t rt_tokenizer_vocab_size(const rt_tokenizer *t); /* 1 + the largest id */

/* Encodes text[0..len) (NUL bytes allowed; text may be NULL when len is 0) as the library's
 * Tokenizer.encode(text).ids does: added/special tokens occurring in the text are matched first
 * (leftmost-longest), the rest is NFC-normalized, pre-tokenized and BPE-merged. No BOS/EOS is
 * added. ids are malloc'd (the caller frees; NULL when *n is 0). Text that is not strict UTF-8
 * is refused: LQ_ERR_INVALID_ARGUMENT, rule TOK_INPUT_UTF8, with the byte offset. */
lq_status rt_tokenizer_encode(const rt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                              size_t *n, lq_error *err);

/* The raw bytes one token stands for, for streaming output: the byte-level decoding of its string
 * (a string holding any character outside the byte-level alphabet, as an added token's content
 * usually is, stands for its own UTF-8 bytes, as the library's ByteLevel decoder does). NULL
 * (and *len = 0) for an id with no token. The bytes need not be valid UTF-8 on their own. */
const char *rt_tokenizer_token_bytes(const rt_tokenizer *t, int32_t id, size_t *len);
/* 1 when id is a special added token (or a vocab id with such a token's content), else 0. */
int rt_tokenizer_is_special(const rt_tokenizer *t, int32_t id);

/* Decodes like the library's decode(ids, skip_special_tokens = skip_special): the tokens' bytes
 * joined, then invalid UTF-8 replaced by U+FFFD per maximal ill-formed subpart (as Rust's
 * String::from_utf8_lossy and Python's bytes.decode('utf-8', 'replace') do). text malloc'd and
 * NUL-terminated. An id outside 0..vocab_size-1 or with no token is refused (the library drops it
 * silently): LQ_ERR_INVALID_ARGUMENT, rule TOK_DECODE_ID, naming the position. */
lq_status rt_tokenizer_decode(const rt_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **text, size_t *len, lq_error *err);

/* Id of a token string (an added token's content first, then the model vocab, both as written
 * in tokenizer.json, e.g. "Ġthe"), or -1. */
int32_t rt_tokenizer_find(const rt_tokenizer *t, const char *token);

/* ---- streaming helpers (docs/tokenizer.md, "Streaming") ---- */

/* Length of the longest prefix of buf[0..len) that does not end inside a UTF-8 sequence that
 * later bytes could still complete: the bytes a streaming printer may convert and emit now.
 * Converting the emitted prefixes one by one gives the same text as converting everything at
 * once. */
size_t rt_tokenizer_utf8_stable(const char *buf, size_t len);
/* buf[0..len) with every maximal ill-formed subpart replaced by U+FFFD (EF BF BD); malloc'd,
 * NUL-terminated. */
lq_status rt_tokenizer_utf8_lossy(const char *buf, size_t len, char **text, size_t *out_len,
                                  lq_error *err);

#ifdef __cplusplus
}
#endif
#endif
