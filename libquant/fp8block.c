/* fp8block: not yet implemented */
typedef int lq_placeholder_fp8block;
