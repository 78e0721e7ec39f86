/* safetensors: not yet implemented */
typedef int lq_placeholder_safetensors;
