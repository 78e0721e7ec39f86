/* metrics: not yet implemented */
typedef int lq_placeholder_metrics;
