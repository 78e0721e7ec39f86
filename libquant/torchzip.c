/* torchzip: not yet implemented */
typedef int lq_placeholder_torchzip;
