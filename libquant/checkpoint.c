/* checkpoint: not yet implemented */
typedef int lq_placeholder_checkpoint;
