/* libquant: the public API of mimo-quant's pure-C11 library.
 *
 * Checkpoint I/O (strict safetensors reader, streaming writer, HF directories), element types,
 * block-FP8 dequantization, the MXFP4 codec, and error metrics. Nothing here needs CUDA.
 * Conventions: every non-trivial call returns lq_status; results come back through *out
 * parameters; failures fill an lq_error naming file, tensor and rule; free/close/abort
 * functions accept NULL; the library never prints and never exits. */
#ifndef LIBQUANT_LIBQUANT_H
#define LIBQUANT_LIBQUANT_H

#include "status.h"
#include "dtype.h"
#include "mxfp4.h"
#include "metrics.h"
#include "fp8block.h"
#include "json.h"
#include "safetensors.h"
#include "checkpoint.h"
#include "outfile.h"
#include "stwriter.h"
#include "torchzip.h"
#include "crc32c.h"
#include "plan.h"
#include "jsonw.h"
#include "sign.h"
#include "mimo_config.h"
#include "drafter.h"
#include "convert.h"
#include "inventory.h"
#include "pool.h"
#include "values.h"

#define LQ_VERSION_STRING "0.1.0"

#endif
