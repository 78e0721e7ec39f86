/* mxfp4: not yet implemented */
typedef int lq_placeholder_mxfp4;
